// Plane-GEMM family for AVX2 + FMA: 8 float lanes, tiles of 4 output channels
// x 3 vectors (12 of the 16 ymm registers accumulate, 3 hold the loads and
// one a broadcast weight).
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "kernels/channels_last_detour.hpp"
#include "kernels/cpu_features.hpp"
#include "kernels/isa_target.hpp"
#include "kernels/kernel.hpp"
#include "kernels/phase_gemm.hpp"
#include "kernels/simd_avx2.hpp"
#include "kernels/slabs.hpp"
#include "kernels/unit_queues.hpp"

namespace tconv::detail::plane_gemm {
namespace {

TCONV_TARGET_AVX2_BEGIN

struct Isa : simd::Avx2 {
  static constexpr int kTileChannels = 4;
  static constexpr int kTileVectors = 3;
  static constexpr DetourIsa kDetour = DetourIsa::avx2;
  static constexpr const char* kDetourIgemm = "igemm_avx2";
  // With this many input channels a tap's products fill the detour's 8-lane
  // igemm better than phase planes fill plane_gemm_avx2's tiles. Zen 4 held to
  // AVX2, 2 threads, min of 4-8 alternating rounds in four runs, detour time /
  // plane_gemm_avx2's: unet's k2s2 layer as a convolution (64 input channels)
  // 0.79-0.97, vnet's (32) 0.77-0.94; dcgan_64_3 (3) 1.62, so it keeps those.
  static constexpr std::int64_t kDetourInputChannels = 32;
  // One broadcast per FMA in wide_step2_kernel's x-stride-2 reads keeps the
  // load ports busier than 8-lane FMAs can pay for; the phase planes of a
  // split take M broadcasts per M x P FMAs. Zen 4 held to AVX2, 1 thread, min
  // of 4 alternating rounds, read in place -> split: unet's k2s2 convolution
  // 4.67 -> 3.82 ms.
  static constexpr bool kReadsStridedInPlace = false;
  using Mask = __m256i;
  static Mask mask(std::uint32_t lanes) { return lane_mask(lanes); }
  static V maskz_load(Mask lanes, const float* p) { return _mm256_maskload_ps(p, lanes); }
  // The even elements of a, b within 128-bit lanes: positions 0, 1, 4, 5, 2, 3, 6, 7.
  static V even_pairs(V a, V b) { return _mm256_shuffle_ps(a, b, 0x88); }
  static V even_pairs_in_order(V v) { return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0xD8)); }
};

#include "kernels/plane_gemm_impl.inl"

TCONV_TARGET_END

// Strided convolutions only, through their phase planes: elsewhere the
// masked loads (vmaskmovps runs at a third of a plain load's rate on a Zen 4)
// and, on power-of-two planes, reads that keep to one L1 set from channel to
// channel leave it behind the families after it. Zen 4 held to AVX2, 1
// thread, min of 3-4 alternating rounds, plane_gemm_avx2 against what takes
// the problem without it (ms):
//   convolutions:  dcgan_64_3 0.563 / 1.104 (detour);  vnet 1.790 / 2.116 and unet 3.818 / 3.835 (phase_gemm_avx2)
//   stride 1:      s1_k3 2.354 / 2.353, dilated 0.976 / 0.703 (detour)
//   transposed:    0.87 (dilated) to 0.72 (s1_k3) of the others' speed
//   x stride 32:   fcn32 as a convolution 26.7 / 16.8 (phase_gemm_avx2; its phase planes of one column)
std::string rejects(const Geometry& g, DType dtype, const WeightFacts& weights) {
  if (g.kind == ConvKind::conv_transpose) return "it computes convolutions only (phase_gemm_avx2 and the detour are faster)";
  if (g.stride == Dims{1, 1, 1}) return "stride 1: nothing to split into phase planes (the detour and phase_gemm_avx2 are faster)";
  if (g.stride[2] > 2) return "x stride " + std::to_string(g.stride[2]) + " above 2 leaves its phase planes' lanes mostly empty";
  return phase_gemm::interleaved_phase_rejects(g, dtype, weights, Isa::kTileChannels);
}

}  // namespace
}  // namespace tconv::detail::plane_gemm

namespace tconv::detail {
extern const KernelFamily kPlaneGemmAvx2Family{"plane_gemm_avx2", "AVX2 + FMA", cpu_has_avx2_fma, plane_gemm::rejects,
                                               prepare_float32<plane_gemm::PlaneGemmKernel>};
}  // namespace tconv::detail
