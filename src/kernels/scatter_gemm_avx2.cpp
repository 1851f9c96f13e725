// Scatter-GEMM family for AVX2 + FMA: 8 float lanes, at most 12 accumulators
// of the 16 ymm registers (scatter_gemm_impl.inl).
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cpu_features.hpp"
#include "kernels/isa_target.hpp"
#include "kernels/kernel.hpp"
#include "kernels/scatter_gemm.hpp"
#include "kernels/simd_avx2.hpp"

namespace tconv::detail::scatter_gemm {
namespace {

TCONV_TARGET_AVX2_BEGIN

struct Isa : simd::Avx2 {
  static constexpr int kMaxAccumulators = 12;
  static constexpr int kMaxRows = 8;  // igemm tile rows: rows x nv accumulators, nv weight vectors, a broadcast
  static constexpr int rows_for(int nv) { return nv == 1 ? 8 : nv == 2 ? 6 : nv == 3 ? 4 : 2; }
};

#include "kernels/scatter_gemm_impl.inl"

TCONV_TARGET_END

std::string rejects(const Geometry& g, DType dtype, const WeightFacts&) { return rejects_for(g, dtype, Isa::kLanes); }

}  // namespace
}  // namespace tconv::detail::scatter_gemm

namespace tconv::detail {
extern const KernelFamily kScatterGemmAvx2Family{"scatter_gemm_avx2", "AVX2 + FMA", cpu_has_avx2_fma, scatter_gemm::rejects,
                                                 prepare_float32<scatter_gemm::ScatterGemmKernel>};
}  // namespace tconv::detail
