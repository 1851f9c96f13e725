// What every phase_gemm_<isa>.cpp shares besides the templated run loop.
#pragma once

#include <string>

#include "kernels/kernel.hpp"

namespace tconv::detail::phase_gemm {

// Empty when the phase-GEMM family handles this problem.
inline std::string rejects(const Geometry& g, DType dtype, const WeightFacts& weights) {
  if (dtype != DType::f32) return "it computes float32 only";
  // Its plan walks every tap, and an empty weight's taps are not bounded by its size.
  if (g.small_channels == 0 || g.big_per_group() == 0) return "the weight has no elements";
  const std::int64_t phases = g.kind == ConvKind::conv ? 1 : g.stride[0] * g.stride[1] * g.stride[2];
  if (phases > kMaxPlanSteps / (g.kernel[0] + g.kernel[1] + g.kernel[2])) {
    return "its plan for " + std::to_string(phases) + " stride phases would take more than " +
           std::to_string(kMaxPlanSteps) + " steps";
  }
  // Its B panels hold zeros for positions outside the input, which a
  // transposed convolution never reads: 0 * Inf would be NaN where PyTorch,
  // which never forms those products, has a number.
  if (g.kind == ConvKind::conv_transpose && !weights.all_finite) {
    return "the weight holds NaN or infinity, which it would multiply by positions outside the input";
  }
  // One channel in and out per group makes each GEMM a single row fed by a
  // handful of taps: packing costs more than the arithmetic it feeds.
  if (g.small_per_group() == 1 && g.big_per_group() == 1) return "depthwise problems are GEMMs of one row";
  return {};
}

}  // namespace tconv::detail::phase_gemm
