// Plane-GEMM family for AVX-512 (F, VL, BW, DQ): 16 float lanes, tiles of 8
// output channels x 3 vectors (24 of the 32 zmm registers accumulate).
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "kernels/channels_last_detour.hpp"
#include "kernels/cpu_features.hpp"
#include "kernels/isa_target.hpp"
#include "kernels/kernel.hpp"
#include "kernels/phase_gemm.hpp"
#include "kernels/simd_avx512.hpp"
#include "kernels/slabs.hpp"
#include "kernels/unit_queues.hpp"

namespace tconv::detail::plane_gemm {
namespace {

TCONV_TARGET_AVX512_BEGIN

struct Isa : simd::Avx512 {
  static constexpr int kTileChannels = 8;
  static constexpr int kTileVectors = 3;
  static constexpr DetourIsa kDetour = DetourIsa::avx512;
  static constexpr const char* kDetourIgemm = "igemm_avx512";
  // Never by channels alone: the detour took 1.31 (unet) and 1.50 (vnet) of
  // plane_gemm's time as convolutions (see PlaneGemmKernel::detours).
  static constexpr std::int64_t kDetourInputChannels = std::numeric_limits<std::int64_t>::max();
  static constexpr bool kReadsStridedInPlace = true;  // see PlaneGemmKernel::splits
  using Mask = __mmask16;
  static Mask mask(std::uint32_t lanes) { return static_cast<Mask>(lanes); }
  static V maskz_load(Mask lanes, const float* p) { return _mm512_maskz_loadu_ps(lanes, p); }
  // The even elements of a, b by an in-lane vshufps, not a cross-lane
  // vpermt2ps: on the Zen 4 a 512-bit vpermt2ps takes about 0.6 of an FMA's
  // issue slot and vshufps none (measured in a loop of 8 FMAs each). Lane
  // 4q + t holds position 2q + t for t < 2 and 8 + 2q + t - 2 for t >= 2
  // (positions 0, 1, 8, 9, 2, 3, 10, 11, ...).
  static V even_pairs(V a, V b) { return _mm512_shuffle_ps(a, b, 0x88); }
  static V even_pairs_in_order(V v) {
    // maskz: GCC 12 builds the unmasked form on an uninitialized source (-Wmaybe-uninitialized).
    return _mm512_maskz_permutexvar_ps(0xffff, _mm512_setr_epi32(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15), v);
  }
};

#include "kernels/plane_gemm_impl.inl"

TCONV_TARGET_END

std::string rejects(const Geometry& g, DType dtype, const WeightFacts& weights) {
  return phase_gemm::interleaved_phase_rejects(g, dtype, weights, Isa::kTileChannels);
}

}  // namespace
}  // namespace tconv::detail::plane_gemm

namespace tconv::detail {
extern const KernelFamily kPlaneGemmAvx512Family{"plane_gemm_avx512", "AVX-512 (F, VL, BW, DQ)", cpu_has_avx512,
                                                 plane_gemm::rejects, prepare_float32<plane_gemm::PlaneGemmKernel>};
}  // namespace tconv::detail
