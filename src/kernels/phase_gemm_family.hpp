// What every phase_gemm_<isa>.cpp shares besides the templated run loop.
#pragma once

#include <string>

#include "kernels/kernel.hpp"

namespace tconv::detail::phase_gemm {

// Empty when the phase-GEMM family handles this problem.
inline std::string rejects(const Geometry& g, DType dtype, const WeightFacts& weights) {
  if (dtype != DType::f32) return "it computes float32 only";
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
