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
#include "kernels/simd_avx512.hpp"

namespace tconv::detail::phase_gemm {
namespace {

TCONV_TARGET_AVX512_BEGIN

struct Avx512 : simd::Avx512 {
  static constexpr int kMaxMr = 24;
  static constexpr int kMaxAccumulators = 24;  // of 32 zmm registers: the rest hold B and broadcasts
  static constexpr TileLimits kTiles{kMaxMr, kMaxAccumulators, 8, true, kLanes};
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
