// AVX2 + FMA vector operations on 8 float lanes, shared by the kernel
// families' templated run loops (phase_gemm_impl.inl, igemm_impl.inl).
// Include it only from a kernel file: it opens its own ISA region.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/isa_target.hpp"
#include "kernels/lane_bits.hpp"

namespace tconv::detail::simd {

TCONV_TARGET_AVX2_BEGIN

struct Avx2 {
  using V = __m256;
  static constexpr int kLanes = 8;
  static constexpr int kRegisters = 16;  // vector registers
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  // The lanes whose bit is set in `lanes`, as a vector mask.
  static __m256i lane_mask(std::uint32_t lanes) {
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int>(lanes)), bit), bit);
  }
  static V masked_load(V into, std::uint32_t lanes, const float* p) {
    const __m256i selected = lane_mask(lanes);
    return _mm256_blendv_ps(into, _mm256_maskload_ps(p, selected), _mm256_castsi256_ps(selected));
  }
  // Lane l holds p[l] where bit l of `lanes` is set, zero elsewhere; plain
  // loads and stores where every lane is set: vmaskmovps loads run at a third
  // of a plain load's rate on a Zen 4 and its stores are microcoded on AMD's
  // cores (about 22 cycles each). masked_load keeps no such test: a branch
  // per load in phase_gemm_avx2's inner loop cost it a fifth.
  static V load_lanes(std::uint32_t lanes, const float* p) {
    if (lanes == (1u << kLanes) - 1) return load(p);
    if (lanes == 0) return zero();
    return _mm256_maskload_ps(p, lane_mask(lanes));
  }
  static void masked_store(float* p, std::uint32_t lanes, V v) {
    if (lanes == (1u << kLanes) - 1) {
      store(p, v);
      return;
    }
    _mm256_maskstore_ps(p, lane_mask(lanes), v);
  }
  // Lane l holds p[2l] where bit l of `lanes` is set, zero elsewhere; reads only those elements.
  static V masked_load_pairs(std::uint32_t lanes, const float* p) {
    const std::uint32_t low = even_bits(lanes & ((1u << kLanes / 2) - 1)), high = even_bits(lanes >> kLanes / 2);
    V evens, odds;
    deinterleave(masked_load(zero(), low, p), masked_load(zero(), high, p + kLanes), evens, odds);
    return evens;
  }
  // The 16 elements a, b split by parity: evens = a0 a2 ... b6, odds = a1 a3 ... b7.
  static void deinterleave(V a, V b, V& evens, V& odds) {
    // a0 a2 b0 b2 | a4 a6 b4 b6 (and the odd ones), then the 64-bit pairs in order.
    evens = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
    odds = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
  }
  // Lane l holds p[l * step] where bit l of `lanes` is set, zero elsewhere (8 * step < 2^31).
  static V masked_load_strided(std::uint32_t lanes, const float* p, std::int64_t step) {
    if (step == 1) return masked_load(zero(), lanes, p);
    if (step == 2) return masked_load_pairs(lanes, p);
    const __m256i index = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                             _mm256_set1_epi32(static_cast<int>(step)));
    return _mm256_mask_i32gather_ps(zero(), p, index, _mm256_castsi256_ps(lane_mask(lanes)), 4);
  }
  // A row of `width` floats split by parity: its ceil(width / 2) even columns to
  // even[], its floor(width / 2) odd ones to odd[]; writes nothing past them.
  static void split_row(const float* row, std::int64_t width, float* even, float* odd) {
    V e, o;
    std::int64_t j = 0;
    for (; 2 * (j + kLanes) <= width; j += kLanes) {
      deinterleave(load(row + 2 * j), load(row + 2 * j + kLanes), e, o);
      store(even + j, e);
      store(odd + j, o);
    }
    for (; 2 * j < width; j += kLanes) {
      deinterleave(masked_load(zero(), first_lanes(width - 2 * j), row + 2 * j),
                   masked_load(zero(), first_lanes(width - 2 * j - kLanes), row + 2 * j + kLanes), e, o);
      masked_store(even + j, first_lanes((width + 1) / 2 - j), e);
      masked_store(odd + j, first_lanes(width / 2 - j), o);
    }
  }
  static std::uint32_t first_lanes(std::int64_t count) {
    return count <= 0 ? 0u : count >= kLanes ? (1u << kLanes) - 1 : (1u << count) - 1;
  }
  static V set1(float value) { return _mm256_set1_ps(value); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  // A plain store where all 8 are written: vmaskmovps stores are microcoded on
  // AMD's cores (depthwise_avx2's interleaved rows: a quarter of its time).
  static void store_first(float* p, V v, int count) {
    if (count >= kLanes) {
      store(p, v);
      return;
    }
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(count), lane), v);
  }
  // low = a0 b0 a1 b1 a2 b2 a3 b3, high = a4 b4 ... a7 b7.
  static void interleave(V a, V b, V& low, V& high) {
    const V low_pairs = _mm256_unpacklo_ps(a, b), high_pairs = _mm256_unpackhi_ps(a, b);
    low = _mm256_permute2f128_ps(low_pairs, high_pairs, 0x20);
    high = _mm256_permute2f128_ps(low_pairs, high_pairs, 0x31);
  }
  static void store_interleaved(float* p, V even, V odd, int count) {
    const V low_pairs = _mm256_unpacklo_ps(even, odd);   // e0 o0 e1 o1 | e4 o4 e5 o5
    const V high_pairs = _mm256_unpackhi_ps(even, odd);  // e2 o2 e3 o3 | e6 o6 e7 o7
    store_first(p, _mm256_permute2f128_ps(low_pairs, high_pairs, 0x20), count);
    store_first(p + kLanes, _mm256_permute2f128_ps(low_pairs, high_pairs, 0x31), count - kLanes);
  }
};

TCONV_TARGET_END

}  // namespace tconv::detail::simd
