// Depthwise transposed convolution for AVX-512 (F, VL, BW, DQ): 16 float lanes (depthwise_impl.inl).
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
#include "kernels/simd_avx512.hpp"

namespace tconv::detail {
namespace {

TCONV_TARGET_AVX512_BEGIN

struct Isa : simd::Avx512 {
  using Mask = __mmask16;
  static Mask mask(std::uint32_t lanes) { return static_cast<Mask>(lanes); }
  // sum + w * p[lane] for the lanes in m, sum elsewhere (nothing read there).
  static V masked_fma(V w, Mask m, std::uint32_t, const float* p, V sum) {
    return _mm512_mask3_fmadd_ps(w, _mm512_maskz_loadu_ps(m, p), sum, m);
  }
};

#include "kernels/depthwise_impl.inl"

TCONV_TARGET_END

}  // namespace

extern const KernelFamily kDepthwiseAvx512Family{"depthwise_avx512", "AVX-512 (F, VL, BW, DQ)", cpu_has_avx512, depthwise::rejects,
                                          prepare_float32<DepthwiseKernel>};

}  // namespace tconv::detail
