// Row-dot family for AVX2 + FMA: 8 float lanes, tiles of 4 output channels x
// 3 positions (12 of the 16 ymm registers accumulate, 3 hold the input
// vectors, one a weight vector; row_dot_impl.inl).
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cpu_features.hpp"
#include "kernels/isa_target.hpp"
#include "kernels/kernel.hpp"
#include "kernels/row_dot.hpp"
#include "kernels/simd_avx2.hpp"

namespace tconv::detail::row_dot {
namespace {

TCONV_TARGET_AVX2_BEGIN

struct Isa : simd::Avx2 {
  static constexpr int kTileChannels = 4;
  static constexpr int kTilePositions = 3;
};

#include "kernels/row_dot_impl.inl"

TCONV_TARGET_END

}  // namespace
}  // namespace tconv::detail::row_dot

namespace tconv::detail {
extern const KernelFamily kRowDotAvx2Family{"row_dot_avx2", "AVX2 + FMA", cpu_has_avx2_fma, row_dot::rejects,
                                            prepare_float32<row_dot::RowDotKernel>};
}  // namespace tconv::detail
