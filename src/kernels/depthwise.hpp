// Depthwise transposed-convolution families (depthwise_avx512, depthwise_avx2;
// the kernel is depthwise_impl.inl): which problems they take.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/kernel.hpp"

namespace tconv::detail::depthwise {

inline std::string rejects(const Geometry& g, DType dtype, const WeightFacts&) {
  if (dtype != DType::f32) return "it computes float32 only";
  if (g.kind != ConvKind::conv_transpose) return "it computes transposed convolutions only";
  if (g.small_per_group() != 1 || g.big_per_group() != 1) return "it needs one input and one output channel per group";
  if (g.stride[2] > kMaxPlanSteps / g.kernel[2]) {
    return "its plan for " + std::to_string(g.stride[2]) + " width phases would take more than " +
           std::to_string(kMaxPlanSteps) + " steps";
  }
  // Lane indices are 32-bit.
  if (g.small_size[2] + g.kernel[2] * g.dilation[2] + g.big_size[2] > (std::int64_t{1} << 30)) return "rows are too long";
  return {};
}

}  // namespace tconv::detail::depthwise
