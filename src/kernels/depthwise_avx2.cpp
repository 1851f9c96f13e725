// Depthwise transposed convolution for AVX2 + FMA: 8 float lanes (depthwise_impl.inl).
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cpu_features.hpp"
#include "kernels/depthwise.hpp"
#include "kernels/isa_target.hpp"
#include "kernels/kernel.hpp"
#include "kernels/simd_avx2.hpp"

namespace tconv::detail {
namespace {

TCONV_TARGET_AVX2_BEGIN

struct Isa : simd::Avx2 {
  using Mask = __m256i;
  static Mask mask(std::uint32_t lanes) { return lane_mask(lanes); }
  // sum + w * p[lane] for the lanes in m (`lanes` as bits), sum elsewhere
  // (nothing read there): a blend, so that no product of a non-finite weight
  // and a zero reaches the sum. Plain loads where every lane reads.
  static V masked_fma(V w, Mask m, std::uint32_t lanes, const float* p, V sum) {
    if (lanes == first_lanes(kLanes)) return fmadd(w, load(p), sum);
    if (lanes == 0) return sum;
    return _mm256_blendv_ps(sum, fmadd(w, _mm256_maskload_ps(p, m), sum), _mm256_castsi256_ps(m));
  }
};

#include "kernels/depthwise_impl.inl"

TCONV_TARGET_END

}  // namespace

extern const KernelFamily kDepthwiseAvx2Family{"depthwise_avx2", "AVX2 + FMA", cpu_has_avx2_fma, depthwise::rejects,
                                          prepare_float32<DepthwiseKernel>};

}  // namespace tconv::detail
