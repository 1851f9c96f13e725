// What every phase_gemm_<isa>.cpp shares besides the templated run loop.
#pragma once

#include <string>

#include "kernels/kernel.hpp"
#include "kernels/phase_gemm.hpp"

namespace tconv::detail::phase_gemm {

// Empty when the phase-GEMM family handles this problem.
inline std::string rejects(const Geometry& g, DType dtype, const WeightFacts& weights) {
  if (dtype != DType::f32) return "it computes float32 only";
  if (g.layout != Layout::channels_first) return "it reads channels-first tensors (the igemm families read channels-last)";
  if (std::string why_not = phase_plan_rejects(g, weights); !why_not.empty()) return why_not;
  // One channel in and out per group makes each GEMM a single row fed by a
  // handful of taps: packing costs more than the arithmetic it feeds.
  if (g.small_per_group() == 1 && g.big_per_group() == 1) return "depthwise problems are GEMMs of one row";
  return {};
}

}  // namespace tconv::detail::phase_gemm
