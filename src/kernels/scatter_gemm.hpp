// Scatter-GEMM families (scatter_gemm_avx512, scatter_gemm_avx2; the kernel is
// scatter_gemm_impl.inl): which problems they take.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/kernel.hpp"

namespace tconv::detail::scatter_gemm {

constexpr std::int64_t kMaxRowsPerGroup = 8;  // output channels per group it takes
constexpr std::int64_t kItemsPerThread = 4;
constexpr std::int64_t kMaxLastVectors = 4;   // of a channels-last GEMM's rows (output channel, x tap)

// `lanes`: the ISA's vector width.
inline std::string rejects_for(const Geometry& g, DType dtype, std::int64_t lanes) {
  if (dtype != DType::f32) return "it computes float32 only";
  if (g.kind != ConvKind::conv_transpose) return "it computes transposed convolutions only";
  if (g.big_per_group() > kMaxRowsPerGroup) {
    return "it is for few output channels per group (at most " + std::to_string(kMaxRowsPerGroup) + "), this has " +
           std::to_string(g.big_per_group());
  }
  if (g.small_per_group() == 1 && g.big_per_group() == 1) return "depthwise problems go to the depthwise family";
  if (g.small_per_group() == 0 || g.big_per_group() == 0) return "the weight has no elements";
  if (g.big_per_group() * g.kernel[2] > kMaxLastVectors * lanes) {
    return "output channels times kernel width exceed " + std::to_string(kMaxLastVectors * lanes);
  }
  return {};
}

}  // namespace tconv::detail::scatter_gemm
