// Row-dot families (row_dot_avx512, row_dot_avx2; the kernel is
// row_dot_impl.inl): which problems they take.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/kernel.hpp"

namespace tconv::detail::row_dot {

constexpr std::int64_t kMinKernelWidth = 32;

inline std::string rejects(const Geometry& g, DType dtype, const WeightFacts&) {
  if (dtype != DType::f32) return "it computes float32 only";
  if (g.kind != ConvKind::conv) return "it computes convolutions (forward) only";
  if (g.layout != Layout::channels_first) return "it reads channels-first tensors";
  if (g.dilation[2] != 1) return "its vectors run along kernel rows: x dilation must be 1";
  if (g.kernel[2] < kMinKernelWidth) {
    return "it is for kernel rows of at least " + std::to_string(kMinKernelWidth) + " taps (plane_gemm takes shorter ones), this has " +
           std::to_string(g.kernel[2]);
  }
  return {};
}

}  // namespace tconv::detail::row_dot
