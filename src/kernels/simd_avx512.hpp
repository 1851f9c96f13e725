// AVX-512 (F, VL, BW, DQ) vector operations on 16 float lanes, shared by the
// kernel families' templated run loops (phase_gemm_impl.inl, igemm_impl.inl).
// Include it only from a kernel file, after isa_target.hpp: it opens its own region.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "kernels/isa_target.hpp"
#include "kernels/lane_bits.hpp"

namespace tconv::detail::simd {

TCONV_TARGET_AVX512_BEGIN

struct Avx512 {
  using V = __m512;
  static constexpr int kLanes = 16;
  static constexpr int kRegisters = 32;  // vector registers
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V masked_load(V into, std::uint32_t lanes, const float* p) {
    return _mm512_mask_loadu_ps(into, static_cast<__mmask16>(lanes), p);
  }
  // Lane l holds p[2l] where bit l of `lanes` is set, zero elsewhere; reads only those elements.
  static V masked_load_pairs(std::uint32_t lanes, const float* p) {
    const std::uint32_t low = even_bits(lanes & ((1u << kLanes / 2) - 1)), high = even_bits(lanes >> kLanes / 2);
    const V a = _mm512_maskz_loadu_ps(static_cast<__mmask16>(low), p);
    const V b = _mm512_maskz_loadu_ps(static_cast<__mmask16>(high), p + kLanes);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_permutex2var_ps(a, even, b);
  }
  // Lane l holds p[l * step] where bit l of `lanes` is set, zero elsewhere (16 * step < 2^31).
  static V masked_load_strided(std::uint32_t lanes, const float* p, std::int64_t step) {
    if (step == 1) return masked_load(zero(), lanes, p);
    if (step == 2) return masked_load_pairs(lanes, p);
    const __m512i index = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                             _mm512_set1_epi32(static_cast<int>(step)));
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), static_cast<__mmask16>(lanes), index, p, 4);
  }
  // Which lanes of a strided load are read: lanes [a, b) of p[lane * step].
  // For stride 1 and 2, masks of the element range: cheaper to build than
  // spreading a lane mask to every other bit, and the elements between the
  // lanes' (stride 2) lie inside the range.
  struct StridedLanes {
    std::int64_t step;
    std::uint32_t lanes, low, high;  // lane mask; element masks of p[0..15] and p[16..31]
  };
  static StridedLanes strided_lanes(std::int64_t a, std::int64_t b, std::int64_t step) {
    a = std::max<std::int64_t>(a, 0);
    b = std::min<std::int64_t>(b, kLanes);
    if (a >= b) return {step, 0, 0, 0};
    const auto range = [](std::int64_t first, std::int64_t end) {
      return static_cast<std::uint32_t>(first_lanes(end) & ~first_lanes(first));
    };
    const std::int64_t first = step == 2 ? 2 * a : a, end = step == 2 ? 2 * b - 1 : b;
    return {step, range(a, b), range(first, end), range(first - kLanes, end - kLanes)};
  }
  // Lane l holds p[l * step] for the lanes of `s`, zero elsewhere; reads nothing outside their range.
  static V load_strided(const StridedLanes& s, const float* p) {
    if (s.lanes == 0) return zero();
    if (s.step == 1) return _mm512_maskz_loadu_ps(static_cast<__mmask16>(s.low), p);
    if (s.step == 2) {
      const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
      return _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(static_cast<__mmask16>(s.low), p), even,
                                    _mm512_maskz_loadu_ps(static_cast<__mmask16>(s.high), p + kLanes));
    }
    return masked_load_strided(s.lanes, p, s.step);
  }
  // The first `count` elements of p split by parity: even[l] = p[2l], odd[l] = p[2l + 1], zero past count;
  // reads nothing past them.
  static void load_deinterleaved(const float* p, std::int64_t count, V& even, V& odd) {
    deinterleave(_mm512_maskz_loadu_ps(first_lanes(count), p), _mm512_maskz_loadu_ps(first_lanes(count - kLanes), p + kLanes),
                 even, odd);
  }
  // The same for 2 * kLanes elements, without masks. The empty asm keeps the
  // two loads in registers: GCC otherwise folds each into both permutes, four
  // loads instead of two, and the depthwise split measured 15% slower.
  static void load_deinterleaved(const float* p, V& even, V& odd) {
    V low = _mm512_loadu_ps(p), high = _mm512_loadu_ps(p + kLanes);
    asm("" : "+v"(low), "+v"(high));
    deinterleave(low, high, even, odd);
  }
  // A row of `width` floats split by parity: its ceil(width / 2) even columns to
  // even[], its floor(width / 2) odd ones to odd[]; writes nothing past them.
  static void split_row(const float* row, std::int64_t width, float* even, float* odd) {
    const std::int64_t whole = width / (2 * kLanes) * kLanes;  // of each half, from whole chunks of 32 floats
    V e, o;
    for (std::int64_t j = 0; j < whole; j += kLanes) {
      load_deinterleaved(row + 2 * j, e, o);
      store(even + j, e);
      store(odd + j, o);
    }
    for (std::int64_t j = whole; 2 * j < width; j += kLanes) {
      load_deinterleaved(row + 2 * j, width - 2 * j, e, o);
      masked_store(even + j, first_lanes((width + 1) / 2 - j), e);
      masked_store(odd + j, first_lanes(width / 2 - j), o);
    }
  }
  static void deinterleave(V low, V high, V& even, V& odd) {
    even = _mm512_permutex2var_ps(low, _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), high);
    odd = _mm512_permutex2var_ps(low, _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31), high);
  }
  static V set1(float value) { return _mm512_set1_ps(value); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static __mmask16 first_lanes(std::int64_t count) {
    return count <= 0 ? 0 : count >= kLanes ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << count) - 1);
  }
  // Lane l holds p[l] where bit l of `lanes` is set, zero elsewhere.
  static V load_lanes(std::uint32_t lanes, const float* p) { return _mm512_maskz_loadu_ps(static_cast<__mmask16>(lanes), p); }
  static void masked_store(float* p, std::uint32_t lanes, V v) {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>(lanes), v);
  }
  // low = a0 b0 a1 b1 ... a7 b7, high = a8 b8 ... a15 b15.
  static void interleave(V a, V b, V& low, V& high) {
    low = _mm512_permutex2var_ps(a, _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23), b);
    high = _mm512_permutex2var_ps(a, _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), b);
  }
  static void store_interleaved(float* p, V even, V odd, int count) {
    const __m512i low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i high = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    _mm512_mask_storeu_ps(p, first_lanes(count), _mm512_permutex2var_ps(even, low, odd));
    _mm512_mask_storeu_ps(p + kLanes, first_lanes(count - kLanes), _mm512_permutex2var_ps(even, high, odd));
  }
};

TCONV_TARGET_END

}  // namespace tconv::detail::simd
