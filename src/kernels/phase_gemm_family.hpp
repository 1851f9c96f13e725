// What every phase_gemm_<isa>.cpp shares besides the templated run loop.
#pragma once

#include <string>

#include "kernels/kernel.hpp"

namespace tconv::detail::phase_gemm {

// Empty when the phase-GEMM family handles this problem.
inline std::string rejects(const Geometry&, DType dtype) {
  if (dtype != DType::f32) return "it computes float32 only";
  return {};
}

}  // namespace tconv::detail::phase_gemm
