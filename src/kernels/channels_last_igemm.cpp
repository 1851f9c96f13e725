// channels_last_igemm_avx512 and _avx2: the channels-last detour
// (channels_last_detour.hpp) as a family of its own, and the detour itself.
#include <algorithm>
#include <memory>
#include <string>

#include "kernels/channels_last_detour.hpp"
#include "kernels/cpu_features.hpp"
#include "kernels/kernel.hpp"
#include "kernels/layout_transpose.hpp"
#include "kernels/slabs.hpp"

namespace tconv::detail {

extern const KernelFamily kIgemmAvx512Family;
extern const KernelFamily kIgemmAvx2Family;
extern const KernelFamily kPlaneGemmAvx2Family;

namespace {

// The igemm family a detour computes with, and the output channels its vectors hold.
struct DetourIgemm {
  const KernelFamily& family;
  std::int64_t lanes;
};
const DetourIgemm kAvx512Igemm{kIgemmAvx512Family, 16};
const DetourIgemm kAvx2Igemm{kIgemmAvx2Family, 8};
const DetourIgemm& igemm_of(DetourIsa isa) { return isa == DetourIsa::avx512 ? kAvx512Igemm : kAvx2Igemm; }

std::size_t aligned_bytes(std::int64_t floats) {
  return (static_cast<std::size_t>(floats) * sizeof(float) + 63) / 64 * 64;
}

Geometry channels_last(Geometry g) {
  g.layout = Layout::channels_last;
  return g;
}

// Samples whose copies pass kBatchChunkBytes go through in slabs (slabs.hpp),
// computed by a second igemm kernel where the slab frame moves the padding.
class ChannelsLastDetour final : public PreparedKernel {
 public:
  ChannelsLastDetour(const KernelFamily& igemm, const Geometry& g, const float* weight, const float* bias)
      : slabs_(g), inner_(igemm.prepare(channels_last(g), DType::f32, weight, bias)) {
    if (slabs_.moves_padding()) {
      slab_inner_ = igemm.prepare(channels_last(slabs_.slab_frame(g)), DType::f32, weight, bias);
    }
  }

  std::size_t workspace_bytes(const Geometry& g, int threads) const override {
    const Geometry piece = slabs_.largest(g, cut_of(g)).g;
    std::size_t inner = inner_->workspace_bytes(channels_last(piece), threads);
    if (slab_inner_) inner = std::max(inner, slab_inner_->workspace_bytes(channels_last(piece), threads));
    return aligned_bytes(in_floats(piece)) + aligned_bytes(out_floats(piece)) + inner;
  }

  std::string strategy(const Geometry& g, int) const override {
    const Slabs::Cut cut = cut_of(g);
    return cut.rows == slabs_.out_rows(g) ? std::string() : "in slabs of " + std::to_string(cut.rows) + " output rows";
  }

  void run(const Geometry& g, const void* src_v, void* dst_v, void* workspace, int threads) const override {
    const auto* src = static_cast<const float*>(src_v);
    auto* dst = static_cast<float*>(dst_v);
    const Slabs::Cut cut = cut_of(g);
    const Geometry largest = slabs_.largest(g, cut).g;
    auto* src_last = static_cast<float*>(workspace);
    auto* dst_last = src_last + aligned_bytes(in_floats(largest)) / sizeof(float);
    auto* rest = dst_last + aligned_bytes(out_floats(largest)) / sizeof(float);
    const std::int64_t c_in = g.input_channels(), c_out = g.output_channels();
    const std::int64_t in_plane = spatial(g.input_size()), out_plane = spatial(g.output_size());
    const std::int64_t in_row = in_plane / slabs_.in_rows(g), out_row = out_plane / slabs_.out_rows(g);
    slabs_.for_each(g, cut, [&](const Slabs::Piece& piece, std::int64_t n, std::int64_t o0) {
      const std::int64_t sample_floats = in_floats(piece.g) / piece.g.batch;
      const auto [lo, hi] = slabs_.inside(g, piece);
      const std::int64_t zeros_before = (lo - piece.first_input_row) * in_row * c_in;
      const std::int64_t zeros_from = (hi - piece.first_input_row) * in_row * c_in;
      for (std::int64_t i = 0; i < piece.g.batch; ++i) {
        std::fill(src_last + i * sample_floats, src_last + i * sample_floats + zeros_before, 0.0f);
        std::fill(src_last + i * sample_floats + zeros_from, src_last + (i + 1) * sample_floats, 0.0f);
      }
      if (hi > lo) {
        transpose_matrices(src + n * c_in * in_plane + lo * in_row, src_last + zeros_before,
                           {piece.g.batch, c_in, (hi - lo) * in_row, in_plane, c_in * in_plane, c_in, sample_floats},
                           threads);
      }
      const PreparedKernel& inner = piece.slab_frame && slab_inner_ ? *slab_inner_ : *inner_;
      inner.run(channels_last(piece.g), src_last, dst_last, rest, threads);
      const std::int64_t positions = spatial(piece.g.output_size());
      transpose_matrices(dst_last, dst + n * c_out * out_plane + o0 * out_row,
                         {piece.g.batch, positions, c_out, c_out, positions * c_out, out_plane, c_out * out_plane},
                         threads);
    });
  }

 private:
  static std::int64_t spatial(const Dims& size) { return size[0] * size[1] * size[2]; }
  static std::int64_t in_floats(const Geometry& g) { return g.batch * g.input_channels() * spatial(g.input_size()); }
  static std::int64_t out_floats(const Geometry& g) { return g.batch * g.output_channels() * spatial(g.output_size()); }
  Slabs::Cut cut_of(const Geometry& g) const {
    return slabs_.cut(g, [](const Geometry& piece) {
      return (in_floats(piece) + out_floats(piece)) * static_cast<std::int64_t>(sizeof(float));
    });
  }

  Slabs slabs_;
  std::unique_ptr<PreparedKernel> inner_;       // the problem's own frame
  std::unique_ptr<PreparedKernel> slab_inner_;  // the slab frame, where it moves the padding
};

std::string detour_rejects(const DetourIgemm& igemm, const Geometry& g, const WeightFacts& weights) {
  if (g.layout != Layout::channels_first) {
    return std::string("it takes channels-first tensors (") + igemm.family.name + " reads channels-last directly)";
  }
  if (g.output_per_group() % igemm.lanes != 0) {
    return "output channels per group are not a multiple of " + std::to_string(igemm.lanes);
  }
  return igemm.family.rejects(channels_last(g), DType::f32, weights);
}

std::string rejects_avx512(const Geometry& g, DType dtype, const WeightFacts& weights) {
  if (dtype != DType::f32) return "it computes float32 only";
  if (std::string why_not = detour_rejects(kAvx512Igemm, g, weights); !why_not.empty()) return why_not;
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

// Without AVX-512 the channels-first GEMM is phase_gemm_avx2, which packs
// panels of the input; igemm_avx2 on channels-last copies beats it wherever
// each input element takes part in enough products to pay for its copies.
// Zen 4 held to AVX2, 1 thread, min of 5 alternating rounds, detour time /
// phase_gemm_avx2's, transposed and as a convolution (products per element):
//   dcgan_512 (1024) 0.82, 0.71;  s1_k3 (576) 0.83, 0.87;  hifigan (512, 1024) 0.74, 1.01
//   unet (64, 128) 1.26, 1.22;  vnet (32, 64) 1.15, 1.09
// Strided convolutions go to plane_gemm_avx2 where it takes them (it detours
// itself where its phase planes would leave lanes empty): dcgan_64_3 as a
// convolution, 1 thread, 1.104 ms here, 0.563 there.
constexpr std::int64_t kAvx2DetourProducts = 128;  // at most: phase_gemm_avx2 instead

std::string rejects_avx2(const Geometry& g, DType dtype, const WeightFacts& weights) {
  if (dtype != DType::f32) return "it computes float32 only";
  if (std::string why_not = detour_rejects(kAvx2Igemm, g, weights); !why_not.empty()) return why_not;
  if (kPlaneGemmAvx2Family.rejects(g, dtype, weights).empty()) {
    return "plane_gemm_avx2 takes strided convolutions (and detours itself where that pays)";
  }
  const std::int64_t products = g.output_per_group() * g.kernel_taps() / (g.stride[0] * g.stride[1] * g.stride[2]);
  if (products <= kAvx2DetourProducts) {
    return "each input element takes part in " + std::to_string(products) + " products, too few to pay for its copies";
  }
  return {};
}

template <DetourIsa kIsa>
std::unique_ptr<PreparedKernel> prepare(const Geometry& g, DType, const void* weight, const void* bias) {
  return make_channels_last_detour(kIsa, g, static_cast<const float*>(weight), static_cast<const float*>(bias));
}

}  // namespace

std::string channels_last_detour_rejects(DetourIsa isa, const Geometry& g, const WeightFacts& weights) {
  return detour_rejects(igemm_of(isa), g, weights);
}

std::unique_ptr<PreparedKernel> make_channels_last_detour(DetourIsa isa, const Geometry& g, const float* weight,
                                                          const float* bias) {
  return std::make_unique<ChannelsLastDetour>(igemm_of(isa).family, g, weight, bias);
}

extern const KernelFamily kChannelsLastIgemmAvx512Family{"channels_last_igemm_avx512", "AVX-512 (F, VL, BW, DQ)",
                                                         cpu_has_avx512, rejects_avx512, prepare<DetourIsa::avx512>};
extern const KernelFamily kChannelsLastIgemmAvx2Family{"channels_last_igemm_avx2", "AVX2 + FMA", cpu_has_avx2_fma,
                                                       rejects_avx2, prepare<DetourIsa::avx2>};

}  // namespace tconv::detail
