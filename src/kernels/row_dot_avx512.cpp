// Row-dot family for AVX-512 (F, VL, BW, DQ): 16 float lanes, tiles of 5
// output channels x 5 positions (row_dot_impl.inl).
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
#include "kernels/simd_avx512.hpp"

namespace tconv::detail::row_dot {
namespace {

TCONV_TARGET_AVX512_BEGIN

struct Isa : simd::Avx512 {
  static constexpr int kTileChannels = 5;
  static constexpr int kTilePositions = 5;
};

#include "kernels/row_dot_impl.inl"

TCONV_TARGET_END

}  // namespace
}  // namespace tconv::detail::row_dot

namespace tconv::detail {
extern const KernelFamily kRowDotAvx512Family{"row_dot_avx512", "AVX-512 (F, VL, BW, DQ)", cpu_has_avx512,
                                              row_dot::rejects, prepare_float32<row_dot::RowDotKernel>};
}  // namespace tconv::detail
