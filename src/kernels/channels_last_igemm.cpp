// channels_last_igemm_avx512: the channels-last detour (channels_last_detour.hpp)
// as a family of its own, for x strides above 2, and the detour itself.
#include <memory>
#include <string>

#include "kernels/channels_last_detour.hpp"
#include "kernels/cpu_features.hpp"
#include "kernels/kernel.hpp"
#include "kernels/layout_transpose.hpp"

namespace tconv::detail {

extern const KernelFamily kIgemmAvx512Family;

namespace {

constexpr std::int64_t kLanes = 16;

std::size_t aligned_bytes(std::int64_t floats) {
  return (static_cast<std::size_t>(floats) * sizeof(float) + 63) / 64 * 64;
}

Geometry channels_last(Geometry g) {
  g.layout = Layout::channels_last;
  return g;
}

class ChannelsLastDetour final : public PreparedKernel {
 public:
  ChannelsLastDetour(const Geometry& g, const float* weight, const float* bias)
      : inner_(kIgemmAvx512Family.prepare(channels_last(g), DType::f32, weight, bias)) {}

  std::size_t workspace_bytes(const Geometry& g, int threads) const override {
    Geometry chunk = g;
    chunk.batch = samples_per_chunk(g, sample_bytes(g));
    return aligned_bytes(chunk.batch * g.input_channels() * in_spatial(g)) +
           aligned_bytes(chunk.batch * g.output_channels() * out_spatial(g)) +
           inner_->workspace_bytes(channels_last(chunk), threads);
  }

  void run(const Geometry& g, const void* src, void* dst, void* workspace, int threads) const override {
    // The copies a chunk of samples at a time (kBatchChunkBytes, kernel.hpp).
    const std::int64_t per_chunk = samples_per_chunk(g, sample_bytes(g));
    const std::int64_t in_floats = g.input_channels() * in_spatial(g), out_floats = g.output_channels() * out_spatial(g);
    auto* src_last = static_cast<float*>(workspace);
    auto* dst_last = src_last + aligned_bytes(per_chunk * in_floats) / sizeof(float);
    auto* rest = dst_last + aligned_bytes(per_chunk * out_floats) / sizeof(float);
    for_each_batch_chunk(g, sample_bytes(g), [&](const Geometry& chunk, std::int64_t n) {
      transpose_matrices(static_cast<const float*>(src) + n * in_floats, src_last, chunk.batch, g.input_channels(),
                         in_spatial(g), threads);
      inner_->run(channels_last(chunk), src_last, dst_last, rest, threads);
      transpose_matrices(dst_last, static_cast<float*>(dst) + n * out_floats, chunk.batch, out_spatial(g),
                         g.output_channels(), threads);
    });
  }

 private:
  static std::int64_t in_spatial(const Geometry& g) {
    return g.kind == ConvKind::conv ? g.big_spatial() : g.small_spatial();
  }
  static std::int64_t out_spatial(const Geometry& g) {
    return g.kind == ConvKind::conv ? g.small_spatial() : g.big_spatial();
  }
  // One sample's two copies.
  static std::int64_t sample_bytes(const Geometry& g) {
    return (g.input_channels() * in_spatial(g) + g.output_channels() * out_spatial(g)) * static_cast<std::int64_t>(sizeof(float));
  }

  std::unique_ptr<PreparedKernel> inner_;
};

std::string rejects(const Geometry& g, DType dtype, const WeightFacts& weights) {
  if (dtype != DType::f32) return "it computes float32 only";
  if (std::string why_not = channels_last_detour_rejects(g, weights); !why_not.empty()) return why_not;
  // Measured (2 threads, Zen 4, min of 4 alternating rounds, detour time / the
  // channels-first family's: phase_gemm transposed, plane_gemm as convolutions):
  //   hifigan's 1-D k16s8 512->256 layer, 100 positions:  0.87 transposed, 0.88 as a convolution
  //   the same at 96 / 112 / 800 positions, batch 4:     0.95 / 0.97 / 0.99 / 0.94;  0.99 / 1.03 / 1.02 / 0.91
  //   2-D k8s4 64->64 16x16, 2 groups / 1:               0.88 / 0.87;  1.04 / 1.05
  //   2-D k3s3 20x20, 2-D k4s4 24x24 batch 2:            0.82 / 0.94;  0.84 / 0.86
  //   3-D k4s4 8x8x8, 1-D k8s4 256->128:                 0.82 / 0.86;  0.58 / 1.01
  // A convolution of x stride above 2 splits its input into that many phase
  // planes and more; the detour loses up to 5% where their rows fill whole
  // vectors and saves up to 42% of the time where they do not. A 2-D k64s32 layer with 32
  // channels, whose 10 x 10 input grows into a 13 MB output, 1.04 transposed
  // (as a convolution row_dot takes such kernel rows first; fcn32 has 21 channels).
  if (g.stride[2] <= 2) return "an x stride of 1 or 2 lets plane_gemm keep whole rows in its vectors";
  return {};
}

std::unique_ptr<PreparedKernel> prepare(const Geometry& g, DType, const void* weight, const void* bias) {
  return make_channels_last_detour(g, static_cast<const float*>(weight), static_cast<const float*>(bias));
}

}  // namespace

std::string channels_last_detour_rejects(const Geometry& g, const WeightFacts& weights) {
  if (g.layout != Layout::channels_first) return "it takes channels-first tensors (igemm_avx512 reads channels-last directly)";
  if (g.output_per_group() % kLanes != 0) return "output channels per group are not a multiple of 16";
  return kIgemmAvx512Family.rejects(channels_last(g), DType::f32, weights);
}

std::unique_ptr<PreparedKernel> make_channels_last_detour(const Geometry& g, const float* weight, const float* bias) {
  return std::make_unique<ChannelsLastDetour>(g, weight, bias);
}

extern const KernelFamily kChannelsLastIgemmAvx512Family{"channels_last_igemm_avx512", "AVX-512 (F, VL, BW, DQ)",
                                                         cpu_has_avx512, rejects, prepare};

}  // namespace tconv::detail
