// Phase-GEMM family for AVX2 + FMA: 8 float lanes, 6 x 16 register tile.
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
#include "kernels/simd_avx2.hpp"

namespace tconv::detail::phase_gemm {
namespace {

TCONV_TARGET_AVX2_BEGIN

struct Avx2 : simd::Avx2 {
  static constexpr int kMaxMr = 6;
  static constexpr int kMaxAccumulators = 12;  // of 16 ymm registers
  static constexpr TileLimits kTiles{kMaxMr, kMaxAccumulators, 8, false, kLanes};
};

#include "kernels/phase_gemm_impl.inl"

TCONV_TARGET_END

}  // namespace
}  // namespace tconv::detail::phase_gemm

namespace tconv::detail {
extern const KernelFamily kPhaseGemmAvx2Family{"phase_gemm_avx2", "AVX2 + FMA", cpu_has_avx2_fma,
                                               phase_gemm::rejects, phase_gemm::prepare_phase_gemm<phase_gemm::Avx2>};
}  // namespace tconv::detail
