// Channels-last IGEMM family for AVX-512 (F, VL, BW, DQ): 16 float lanes; tiles of up to 8 rows by 1-3 vectors or 6 rows by 4 (24 accumulators of 32 zmm registers).
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "kernels/cpu_features.hpp"
#include "kernels/igemm.hpp"
#include "kernels/isa_target.hpp"
#include "kernels/simd_avx512.hpp"

namespace tconv::detail::igemm {
namespace {

TCONV_TARGET_AVX512_BEGIN

struct Avx512 : simd::Avx512 {
  static constexpr int kMaxNv = 4;
  static constexpr int kMaxRows = 8;
  static constexpr int rows_for(int nv) { return nv == 4 ? 6 : 8; }
};

#include "kernels/igemm_impl.inl"

TCONV_TARGET_END

}  // namespace
}  // namespace tconv::detail::igemm

namespace tconv::detail {
extern const KernelFamily kIgemmAvx512Family{"igemm_avx512", "AVX-512 (F, VL, BW, DQ)", cpu_has_avx512, igemm::rejects,
                                             igemm::prepare_igemm<igemm::Avx512>};
}  // namespace tconv::detail
