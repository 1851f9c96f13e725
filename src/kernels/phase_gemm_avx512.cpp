// Phase-GEMM family for AVX-512 (F, VL, BW, DQ): 16 float lanes, 12 x 32 register tile.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "kernels/cpu_features.hpp"
#include "kernels/isa_target.hpp"
#include "kernels/phase_gemm.hpp"
#include "kernels/phase_gemm_family.hpp"

namespace tconv::detail::phase_gemm {
namespace {

TCONV_TARGET_AVX512_BEGIN

struct Avx512 {
  using V = __m512;
  static constexpr int kLanes = 16;
  static constexpr int kMaxMr = 24;
  static constexpr int kMaxAccumulators = 24;  // of 32 zmm registers: the rest hold B and broadcasts
  static constexpr TileLimits kTiles{kMaxMr, kMaxAccumulators, 8, true};
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V masked_load(V into, std::uint32_t lanes, const float* p) {
    return _mm512_mask_loadu_ps(into, static_cast<__mmask16>(lanes), p);
  }
  static V set1(float value) { return _mm512_set1_ps(value); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static __mmask16 first_lanes(int count) {
    return count <= 0 ? 0 : count >= kLanes ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << count) - 1);
  }
  static void masked_store(float* p, std::uint32_t lanes, V v) {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>(lanes), v);
  }
  static void store_interleaved(float* p, V even, V odd, int count) {
    const __m512i low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i high = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    _mm512_mask_storeu_ps(p, first_lanes(count), _mm512_permutex2var_ps(even, low, odd));
    _mm512_mask_storeu_ps(p + kLanes, first_lanes(count - kLanes), _mm512_permutex2var_ps(even, high, odd));
  }
};

#include "kernels/phase_gemm_impl.inl"

TCONV_TARGET_END

}  // namespace
}  // namespace tconv::detail::phase_gemm

namespace tconv::detail {
extern const KernelFamily kPhaseGemmAvx512Family{"phase_gemm_avx512", "AVX-512 (F, VL, BW, DQ)",
                                                 cpu_has_avx512, phase_gemm::rejects,
                                                 phase_gemm::prepare_phase_gemm<phase_gemm::Avx512>};
}  // namespace tconv::detail
