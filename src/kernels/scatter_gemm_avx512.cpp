// Scatter-GEMM family for AVX-512 (F, VL, BW, DQ): 16 float lanes
// (scatter_gemm_impl.inl).
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
#include "kernels/simd_avx512.hpp"

namespace tconv::detail::scatter_gemm {
namespace {

TCONV_TARGET_AVX512_BEGIN

struct Isa : simd::Avx512 {
  static constexpr int kMaxAccumulators = 24;
  static constexpr int kMaxRows = 8;  // igemm tile rows
  static constexpr int rows_for(int nv) { return nv == 4 ? 6 : 8; }
};

#include "kernels/scatter_gemm_impl.inl"

TCONV_TARGET_END

std::string rejects(const Geometry& g, DType dtype, const WeightFacts&) { return rejects_for(g, dtype, Isa::kLanes); }

}  // namespace
}  // namespace tconv::detail::scatter_gemm

namespace tconv::detail {
extern const KernelFamily kScatterGemmAvx512Family{"scatter_gemm_avx512", "AVX-512 (F, VL, BW, DQ)", cpu_has_avx512,
                                                   scatter_gemm::rejects, prepare_float32<scatter_gemm::ScatterGemmKernel>};
}  // namespace tconv::detail
