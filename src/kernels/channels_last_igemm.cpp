// channels_last_igemm_avx512: the channels-last detour (channels_last_detour.hpp)
// as a family of its own, for x strides above 2, and the detour itself.
#include <algorithm>
#include <memory>
#include <string>
#include <utility>

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

// Rounded towards minus infinity, for b > 0.
std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Slabs. The copies of a sample grow with it (hifigan's 1-D layer at 100,000
// positions would need 977 MB), so a sample whose copies pass
// kBatchChunkBytes goes through in slabs: runs of output rows [o0, o0 + R)
// along its outermost spatial dimension D (x in 1-D, y in 2-D, z in 3-D),
// each with the input rows its outputs read,
//     conv:           input rows [o0*s - p, o0*s - p + (R-1)*s + reach]
//     conv_transpose: input rows [o0/s - lead, o0/s - lead + floor((R-1+p)/s) + lead]
// (reach = (k-1)*dilation, lead = ceil((reach - p)/s) rows or none, o0 a
// multiple of s when transposed so that the slab keeps the stride phases).
// Every slab but a first one computes in the slab frame: the geometry with
// D's padding p' = 0 (conv) or p + lead*s (transposed), under which the slab's
// first input row is its row 0; rows of it outside the input are zeros in the
// copy. A zero row multiplies to zero products where an input's border has a
// tap skipped, and adding a zero leaves a sum that started from +0 as it is,
// so every slab gives the bits of the whole. The first slab computes in the
// problem's own frame, its taps past the input's start skipped as they are in
// one piece (a 4 x 4 plane under k4s2p1 skips up to 7 of 16 taps).
struct SlabFrame {
  int d = 0;                  // D
  std::int64_t stride = 1, pad = 0, reach = 0, lead = 0;
  bool transposed = false;

  explicit SlabFrame(const Geometry& g)
      : d(kMaxSpatial - g.spatial_rank),
        stride(g.stride[d]),
        pad(g.pad_begin[d]),
        reach((g.kernel[d] - 1) * g.dilation[d]),
        lead(std::max<std::int64_t>(0, (reach - pad + stride - 1) / stride)),
        transposed(g.kind == ConvKind::conv_transpose) {}

  std::int64_t slab_pad() const { return transposed ? pad + lead * stride : 0; }
  // Output rows a slab starts at a multiple of.
  std::int64_t step() const { return transposed ? stride : 1; }
  // Where, in D, the input rows of the slab starting at output row o0 begin
  // (in the slab frame), and how many rows R output rows read.
  std::int64_t first_input_row(std::int64_t o0) const { return transposed ? o0 / stride - lead : o0 * stride - pad; }
  std::int64_t input_rows(std::int64_t rows) const {
    return transposed ? floor_div(rows - 1 + pad, stride) + lead + 1 : (rows - 1) * stride + reach + 1;
  }
};

class ChannelsLastDetour final : public PreparedKernel {
 public:
  ChannelsLastDetour(const Geometry& g, const float* weight, const float* bias)
      : frame_(g), inner_(kIgemmAvx512Family.prepare(channels_last(g), DType::f32, weight, bias)) {
    Geometry slab = g;
    slab.pad_begin[frame_.d] = frame_.slab_pad();
    if (slab.pad_begin != g.pad_begin) slab_inner_ = kIgemmAvx512Family.prepare(channels_last(slab), DType::f32, weight, bias);
  }

  std::size_t workspace_bytes(const Geometry& g, int threads) const override {
    const Cut cut = cut_of(g);
    const auto [in_floats, out_floats] = copy_floats(g, cut);
    const Geometry piece = piece_of(g, cut.batch, 0, cut.rows).g;
    std::size_t inner = inner_->workspace_bytes(channels_last(piece), threads);
    if (slab_inner_) inner = std::max(inner, slab_inner_->workspace_bytes(channels_last(piece), threads));
    return aligned_bytes(in_floats) + aligned_bytes(out_floats) + inner;
  }

  void run(const Geometry& g, const void* src_v, void* dst_v, void* workspace, int threads) const override {
    const auto* src = static_cast<const float*>(src_v);
    auto* dst = static_cast<float*>(dst_v);
    const Cut cut = cut_of(g);
    const auto [in_floats, out_floats] = copy_floats(g, cut);
    auto* src_last = static_cast<float*>(workspace);
    auto* dst_last = src_last + aligned_bytes(in_floats) / sizeof(float);
    auto* rest = dst_last + aligned_bytes(out_floats) / sizeof(float);
    const std::int64_t c_in = g.input_channels(), c_out = g.output_channels();
    const std::int64_t in_plane = spatial(g.input_size()), out_plane = spatial(g.output_size());
    const std::int64_t in_inner = in_plane / g.input_size()[frame_.d], out_inner = out_plane / g.output_size()[frame_.d];
    for (std::int64_t n = 0; n < g.batch; n += cut.batch) {
      const std::int64_t batch = std::min(cut.batch, g.batch - n);
      for (std::int64_t o0 = 0; o0 < out_rows(g); o0 += cut.rows) {
        const Piece piece = piece_of(g, batch, o0, std::min(cut.rows, out_rows(g) - o0));
        const std::int64_t rows = piece.g.input_size()[frame_.d], slab_floats = rows * in_inner * c_in;
        // Input rows [first, first + rows) of the frame, of which [lo, hi) are inside the input.
        const std::int64_t lo = std::clamp<std::int64_t>(piece.first, 0, in_rows(g));
        const std::int64_t hi = std::clamp<std::int64_t>(piece.first + rows, lo, in_rows(g));
        for (std::int64_t i = 0; i < batch; ++i) {
          float* sample = src_last + i * slab_floats;
          std::fill(sample, sample + (lo - piece.first) * in_inner * c_in, 0.0f);
          std::fill(sample + (hi - piece.first) * in_inner * c_in, sample + slab_floats, 0.0f);
        }
        if (hi > lo) {
          transpose_matrices(src + n * c_in * in_plane + lo * in_inner, src_last + (lo - piece.first) * in_inner * c_in,
                             {batch, c_in, (hi - lo) * in_inner, in_plane, c_in * in_plane, c_in, slab_floats}, threads);
        }
        piece.inner->run(channels_last(piece.g), src_last, dst_last, rest, threads);
        const std::int64_t positions = piece.g.output_size()[frame_.d] * out_inner;
        transpose_matrices(dst_last, dst + n * c_out * out_plane + o0 * out_inner,
                           {batch, positions, c_out, c_out, positions * c_out, out_plane, c_out * out_plane}, threads);
      }
    }
  }

 private:
  // How run() cuts the problem: chunks of `batch` samples, slabs of `rows` output rows.
  struct Cut {
    std::int64_t batch, rows;
  };
  // One chunk's slab: its geometry (in the problem's frame for the first
  // slab, the slab frame for the others), first input row in that frame and
  // kernel.
  struct Piece {
    Geometry g;
    std::int64_t first;
    const PreparedKernel* inner;
  };

  static std::int64_t spatial(const Dims& size) { return size[0] * size[1] * size[2]; }
  std::int64_t out_rows(const Geometry& g) const { return g.output_size()[frame_.d]; }
  std::int64_t in_rows(const Geometry& g) const { return g.input_size()[frame_.d]; }

  // Floats of the two copies for `batch` samples of `input_rows` and `output_rows` rows in D.
  std::pair<std::int64_t, std::int64_t> copy_floats(const Geometry& g, std::int64_t batch, std::int64_t input_rows,
                                                    std::int64_t output_rows) const {
    const std::int64_t in_inner = spatial(g.input_size()) / in_rows(g), out_inner = spatial(g.output_size()) / out_rows(g);
    return {batch * g.input_channels() * input_rows * in_inner, batch * g.output_channels() * output_rows * out_inner};
  }
  // The most any piece of the cut copies: a first slab reads no more input
  // rows than the others (its frame starts at or before the input's start).
  std::pair<std::int64_t, std::int64_t> copy_floats(const Geometry& g, const Cut& cut) const {
    return copy_floats(g, cut.batch, cut.rows == out_rows(g) ? in_rows(g) : frame_.input_rows(cut.rows), cut.rows);
  }
  std::int64_t copy_bytes(const Geometry& g, std::int64_t batch, std::int64_t input_rows, std::int64_t output_rows) const {
    const auto [in, out] = copy_floats(g, batch, input_rows, output_rows);
    return (in + out) * static_cast<std::int64_t>(sizeof(float));
  }

  // Whole samples, as many as fit kBatchChunkBytes, when one does in one
  // piece; else one sample in slabs of the most rows (a multiple of the step)
  // that fit it, one step at least.
  Cut cut_of(const Geometry& g) const {
    const std::int64_t whole = copy_bytes(g, 1, in_rows(g), out_rows(g));
    if (whole <= kBatchChunkBytes) return {samples_per_chunk(g, whole), out_rows(g)};
    const std::int64_t step = frame_.step();
    std::int64_t fits = 1, too_many = (out_rows(g) + step - 1) / step;  // in steps
    while (too_many - fits > 1) {
      const std::int64_t mid = (fits + too_many) / 2;
      (copy_bytes(g, 1, frame_.input_rows(mid * step), mid * step) <= kBatchChunkBytes ? fits : too_many) = mid;
    }
    return {1, std::min(fits * step, out_rows(g))};
  }

  Piece piece_of(const Geometry& g, std::int64_t batch, std::int64_t o0, std::int64_t rows) const {
    Piece piece{g, 0, inner_.get()};
    piece.g.batch = batch;
    Dims& in = g.kind == ConvKind::conv ? piece.g.big_size : piece.g.small_size;
    Dims& out = g.kind == ConvKind::conv ? piece.g.small_size : piece.g.big_size;
    out[frame_.d] = rows;
    if (o0 == 0 && rows == out_rows(g)) return piece;
    if (o0 == 0) {
      // The problem's frame, cut after the last row the slab reads.
      in[frame_.d] = std::clamp<std::int64_t>(frame_.first_input_row(0) + frame_.input_rows(rows), 1, in_rows(g));
      return piece;
    }
    piece.g.pad_begin[frame_.d] = frame_.slab_pad();
    piece.first = frame_.first_input_row(o0);
    in[frame_.d] = frame_.input_rows(rows);
    if (slab_inner_) piece.inner = slab_inner_.get();
    return piece;
  }

  SlabFrame frame_;
  std::unique_ptr<PreparedKernel> inner_;       // the problem's own frame
  std::unique_ptr<PreparedKernel> slab_inner_;  // the slab frame, where its padding differs
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
