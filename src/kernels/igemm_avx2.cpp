// Channels-last IGEMM family for AVX2 + FMA: 8 float lanes; tiles of 8 rows by 1 vector or 6 rows by 2 (12 accumulators of 16 ymm registers).
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
#include "kernels/simd_avx2.hpp"

namespace tconv::detail::igemm {
namespace {

TCONV_TARGET_AVX2_BEGIN

struct Avx2 : simd::Avx2 {
  static constexpr int kMaxNv = 2;
  static constexpr int kMaxRows = 8;
  static constexpr int rows_for(int nv) { return nv == 1 ? 8 : 6; }
};

#include "kernels/igemm_impl.inl"

TCONV_TARGET_END

}  // namespace
}  // namespace tconv::detail::igemm

namespace tconv::detail {
extern const KernelFamily kIgemmAvx2Family{"igemm_avx2", "AVX2 + FMA", cpu_has_avx2_fma, igemm::rejects,
                                             igemm::prepare_igemm<igemm::Avx2>};
}  // namespace tconv::detail
