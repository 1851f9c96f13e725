// Row-GEMM family for AVX-512: channels-first convolutions of any stride and
// transposed convolutions with stride 1 or 2 in x (s1_k3, dilated, the DCGAN
// layers, unet's and vnet's k2s2 upsampling), at least 16 output channels per
// group. The phase-GEMM family packs B, the input patches, per call: every
// input element once per tap. This family copies each input row about once,
// zero-padded, and broadcasts the GEMM's rows straight from that copy.
//
// Math. The stride phases of phase_gemm.hpp; a phase's output row holds every
// stride_x-th output column. Per (group, phase), output row (jz, jy) and phase
// column j (output column x = rx + stride_x * j):
//     dst[m, row, x] = bias[m] + sum_{k = e*C + c} W[k, m] * src[c, iz_e, iy_e, j * in_step_x + ox_e]
//     iz_e = jz * in_step_z + oz_e,  iy_e = jy * in_step_y + oy_e     (0 outside the input)
// (in_step is a convolution's stride, 1 for a transposed one). The GEMM's rows
// are R = H x W <= 16 phase positions, W consecutive columns of H consecutive
// rows (H > 1 only when rows are shorter than 16), and its columns 16 output
// channels m0 .. m0+15, one vector:
//     acc[r] += broadcast(band[position r + tap e's offset, channel c]) * W[k, m0 .. m0+15]
// Each output element is summed over k ascending from zero, bias added last:
// the order of phase_gemm and igemm, so the three give the same bits. A tile
// whose rows all read padding rows through some taps (the DCGAN convolutions'
// first and last output rows) runs only the range of taps that reads the
// input, when every weight is finite: the others' products are zeros, and a
// sum that started from +0 keeps its bits when a zero is added.
// Layouts (floats):
//   W (packed at creation): per group, phase and block of 16 output channels,
//     [K][16], k = e*C + c, channels past M zero. Bias padded likewise.
//   Band (per call, per thread, in the workspace): the input rows a band of
//     output rows reads, for columns [x0 * in_step + min ox, ...):
//     [channel block][z offset][row][x residue mod in_step][position][channel in block],
//     blocks of 16 channels (of 1 when there are fewer than 16). A convolution's
//     columns are split by residue so that a tap's consecutive output columns
//     read consecutive positions; positions outside the input are zeros, so
//     no tap needs a bounds check. Channels innermost keep a short-row tile's
//     H x W broadcasts within a few cache lines per 16 channels.
// The micro-kernel transposes its R x 16 tile in registers: each channel's R
// positions are one vector, stored row by row as masked stores, or, for
// stride 2, the x phase 0 tile is kept and phase 1's interleaved with it.
// The x phases of one output row share their band (their taps differ in x only).
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "kernels/cpu_features.hpp"
#include "kernels/isa_target.hpp"
#include "kernels/kernel.hpp"
#include "kernels/phase_gemm.hpp"
#include "kernels/simd_avx512.hpp"

namespace tconv::detail::row_gemm {
namespace {

constexpr int kLanes = 16;                                // output channels per vector
constexpr int kTileColumns = 16;                          // GEMM rows per micro-kernel: output columns (the transpose is 16 x 16)
constexpr std::int64_t kMaxChunkColumns = 256;            // output columns per work item
constexpr std::int64_t kBandBudgetFloats = 48 * 1024;     // a band of rows in L2 (192 KB)
constexpr std::int64_t kMaxBandFloats = 1024 * 1024;      // the least band a problem may need (4 MB)
constexpr std::int64_t kMaxBandRows = 8;
constexpr std::int64_t kItemsPerThread = 4;

// The shape of a phase's taps, fixed at creation.
struct PhaseTaps {
  std::array<std::int64_t, 3> residue;      // depth, height, width
  std::vector<std::int64_t> tap;            // flat kernel tap of each e
  std::vector<std::array<std::int64_t, 3>> offset;  // input offset of each e
  std::vector<std::int64_t> z_offsets;      // its distinct depth offsets, ascending
  std::vector<std::int64_t> z_index;        // per e: index into z_offsets
  std::int64_t min_oy = 0, max_oy = 0;
  std::int64_t packed_at = 0;               // where its weights start
};

TCONV_TARGET_AVX512_BEGIN

using Isa = simd::Avx512;
using V = Isa::V;

// Where a micro-kernel's transposed tile goes. Its R = H x W GEMM rows are W
// consecutive phase columns of H consecutive phase rows, r = h * W + w, and
// out[j][r] = acc[r][j] + bias[j] for channel j < channels.
enum class Store {
  rows,         // dst[j * plane + h * row_pitch + w]
  tile,         // tile[j * 16 + r], all 16 r (an even x phase, kept for the odd one)
  interleaved,  // per row h: dst[j * plane + h * row_pitch + 2w] = tile[j * 16 + r],
                // dst[... + 2w + 1] = out[j][r], the first `count` of those
};
struct Output {
  float* dst;
  std::int64_t plane, row_pitch;
  int channels;
  Store store;
  float* tile;
  int count;
};

// acc[h * W + w] = sum over taps e in [first_tap, end_tap) and channels c = Block * b + i of
//     band[tap_at[e] + b * block_step + (h * row_step + w) * Block + i] * weights[k][0..15], k = e * channels + c;
// then stored as `out` says.
template <int Block, int W, int H>
void micro_kernel(std::int64_t first_tap, std::int64_t end_tap, std::int64_t channels, const float* band,
                  const std::int64_t* tap_at, std::int64_t block_step, std::int64_t row_step, const float* weights,
                  const float* bias, const Output& out) {
  static_assert(W * H <= kTileColumns);
  constexpr int R = W * H;
  V acc[kTileColumns];
  TCONV_UNROLL_TILE
  for (int r = 0; r < R; ++r) acc[r] = Isa::zero();
  const float* w = weights + first_tap * channels * Isa::kLanes;
  // Channel i of the block at p, for every GEMM row.
  const auto step = [&](const float* p) {
    const V wv = Isa::load(w);
    w += Isa::kLanes;
    TCONV_UNROLL_TILE
    for (int r = 0; r < R; ++r) acc[r] = Isa::fmadd(Isa::broadcast(p + (r / W * row_step + r % W) * Block), wv, acc[r]);
  };
  for (std::int64_t e = first_tap; e < end_tap; ++e) {
    const float* block = band + tap_at[e];
    std::int64_t c0 = 0;
    // Whole blocks with a fixed trip count, then the partial one.
    for (; c0 + Block <= channels; c0 += Block, block += block_step) {
      for (int i = 0; i < Block; ++i) step(block + i);
    }
    for (std::int64_t i = 0; i < channels - c0; ++i) step(block + i);
  }
  TCONV_UNROLL_TILE
  for (int r = R; r < kTileColumns; ++r) acc[r] = Isa::zero();
  Isa::transpose(acc);
  TCONV_UNROLL_TILE
  for (int j = 0; j < kTileColumns; ++j) {
    if (j >= out.channels) continue;
    const V value = Isa::add(acc[j], Isa::set1(bias[j]));
    if (out.store == Store::tile) {
      Isa::store(out.tile + j * kTileColumns, value);
      continue;
    }
    V low = value, high = value;
    if (out.store == Store::interleaved) Isa::interleave(Isa::load(out.tile + j * kTileColumns), value, low, high);
    // Row h's lanes start at lane h * W (twice that when interleaved): each
    // row is a masked store at an address shifted back by as many floats.
    for (int h = 0; h < H; ++h) {
      float* row = out.dst + j * out.plane + h * out.row_pitch;
      if (out.store == Store::rows) {
        Isa::masked_store(row - h * W, Isa::first_lanes(W) << (h * W), value);
      } else {
        const std::uint32_t positions = static_cast<std::uint32_t>(
            (out.count >= 32 ? ~std::uint64_t{0} : (std::uint64_t{1} << out.count) - 1) << (2 * h * W));
        Isa::masked_store(row - 2 * h * W, positions & 0xffffu, low);
        Isa::masked_store(row - 2 * h * W + Isa::kLanes, positions >> 16, high);
      }
    }
  }
}

using MicroKernel = decltype(&micro_kernel<1, 1, 1>);
constexpr std::int64_t kMaxTileRows = 4;  // H: each row's broadcasts need their own base address

// Micro-kernels of one band layout by [W - 1][H - 1]; null where W * H > 16.
using MicroKernels = std::array<std::array<MicroKernel, static_cast<std::size_t>(kMaxTileRows)>, kTileColumns>;
template <int Block, int W, int H>
constexpr MicroKernel micro_kernel_if_fits() {
  if constexpr (W * H <= kTileColumns) {
    return &micro_kernel<Block, W, H>;
  } else {
    return nullptr;
  }
}
template <int Block, int W, std::size_t... Hs>
constexpr std::array<MicroKernel, static_cast<std::size_t>(kMaxTileRows)> micro_kernels_of_width(std::index_sequence<Hs...>) {
  return {micro_kernel_if_fits<Block, W, static_cast<int>(Hs) + 1>()...};
}
template <int Block, std::size_t... Ws>
constexpr MicroKernels micro_kernels(std::index_sequence<Ws...>) {
  return {micro_kernels_of_width<Block, static_cast<int>(Ws) + 1>(
      std::make_index_sequence<static_cast<std::size_t>(kMaxTileRows)>())...};
}
// Band blocks of 16 channels, or of one for problems with fewer channels.
constexpr MicroKernels kWideMicroKernels = micro_kernels<kLanes>(std::make_index_sequence<kTileColumns>());
constexpr MicroKernels kNarrowMicroKernels = micro_kernels<1>(std::make_index_sequence<kTileColumns>());

class RowGemmKernel final : public PreparedKernel {
 public:
  RowGemmKernel(const Geometry& g, const float* weight, const float* bias)
      : kind_(g.kind),
        groups_(g.groups),
        cin_(g.input_per_group()),
        cout_(g.output_per_group()),
        blocks_((g.output_per_group() + Isa::kLanes - 1) / Isa::kLanes) {
    const bool transposed = g.kind == ConvKind::conv_transpose;
    x_members_ = transposed ? g.stride[2] : 1;
    x_step_ = transposed ? 1 : g.stride[2];
    block_ = cin_ < kLanes ? 1 : kLanes;
    for (std::int64_t rz = 0; rz < (transposed ? g.stride[0] : 1); ++rz)
      for (std::int64_t ry = 0; ry < (transposed ? g.stride[1] : 1); ++ry)
        for (std::int64_t rx = 0; rx < x_members_; ++rx) {
          const phase_gemm::Phase ph = phase_gemm::single_phase(g, {rz, ry, rx});
          PhaseTaps p;
          p.residue = {rz, ry, rx};
          p.tap = ph.taps[0];
          p.offset = ph.offsets;
          for (const auto& o : ph.offsets) {
            if (std::find(p.z_offsets.begin(), p.z_offsets.end(), o[0]) == p.z_offsets.end()) p.z_offsets.push_back(o[0]);
            min_ox_ = std::min(min_ox_, o[2]);
            max_ox_ = std::max(max_ox_, o[2]);
          }
          std::sort(p.z_offsets.begin(), p.z_offsets.end());
          for (const auto& o : ph.offsets) {
            p.z_index.push_back(std::find(p.z_offsets.begin(), p.z_offsets.end(), o[0]) - p.z_offsets.begin());
          }
          if (!p.offset.empty()) {
            p.min_oy = p.max_oy = p.offset[0][1];
            for (const auto& o : p.offset) p.min_oy = std::min(p.min_oy, o[1]), p.max_oy = std::max(p.max_oy, o[1]);
          }
          phases_.push_back(std::move(p));
      }
    // Weights: [group][phase][block][K][16].
    std::int64_t total = 0;
    for (auto& p : phases_) {
      p.packed_at = total;
      total += groups_ * blocks_ * k_of(p) * Isa::kLanes;
    }
    packed_.assign(static_cast<std::size_t>(total), 0.0f);
    for (const auto& p : phases_) phase_gemm::pack_phase_blocks(g, weight, p.tap, Isa::kLanes, packed_.data() + p.packed_at);
    bias_.assign(static_cast<std::size_t>(groups_ * blocks_ * Isa::kLanes), 0.0f);
    if (bias) {
      for (std::int64_t grp = 0; grp < groups_; ++grp)
        std::copy(bias + grp * cout_, bias + (grp + 1) * cout_, bias_.begin() + grp * blocks_ * Isa::kLanes);
    }
    skip_empty_taps_ = phase_gemm::may_skip_zero_products(packed_);
  }

  std::size_t workspace_bytes(const Geometry& g, int threads) const override {
    return static_cast<std::size_t>(threads) * static_cast<std::size_t>(band_floats(g, blocking(g, threads))) * sizeof(float);
  }

  void run(const Geometry& g, const void* src_v, void* dst_v, void* workspace, int threads) const override {
    const auto* src = static_cast<const float*>(src_v);
    auto* dst = static_cast<float*>(dst_v);
    const Blocking b = blocking(g, threads);
    const std::int64_t per_thread = band_floats(g, b);
    const std::int64_t items = b.items;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (std::int64_t it = 0; it < items; ++it) {
      run_item(g, b, it, src, dst, static_cast<float*>(workspace) + omp_get_thread_num() * per_thread);
    }
  }

 private:
  // Work items: (sample, group, row phase, output depth row, band of output rows, chunk of phase columns).
  // A row phase is the x_members_ phases (x residues) of one depth and height residue, adjacent in phases_.
  struct Blocking {
    std::int64_t band_rows = 1, bands = 1;      // per phase: bands of the largest phase's rows
    std::int64_t chunk = 1, chunks = 1;         // phase columns per item
    std::int64_t max_rows = 1, max_depth = 1;   // the largest phase's extent in height and depth
    std::int64_t items = 0;
  };

  std::int64_t k_of(const PhaseTaps& p) const { return static_cast<std::int64_t>(p.tap.size()) * cin_; }
  std::int64_t weights_of(const PhaseTaps& p, std::int64_t grp, std::int64_t block) const {
    return p.packed_at + (grp * blocks_ + block) * k_of(p) * Isa::kLanes;
  }
  std::int64_t in_step(const Geometry& g, int d) const { return kind_ == ConvKind::conv ? g.stride[d] : 1; }
  std::int64_t channel_blocks() const { return (cin_ + block_ - 1) / block_; }
  std::int64_t row_phases() const { return static_cast<std::int64_t>(phases_.size()) / x_members_; }

  // Input rows a band of `rows` output rows reads in phase p (per depth offset).
  std::int64_t band_span(const Geometry& g, const PhaseTaps& p, std::int64_t rows) const {
    return (rows - 1) * in_step(g, 1) + p.max_oy - p.min_oy + 1;
  }
  // Positions per x residue of a band row for `columns` output columns.
  std::int64_t residue_width(std::int64_t columns) const { return columns + (max_ox_ - min_ox_) / x_step_; }
  std::int64_t band_floats(const Geometry& g, const Blocking& b) const {
    std::int64_t most = 1;
    for (const auto& p : phases_) {
      most = std::max(most, channel_blocks() * block_ * static_cast<std::int64_t>(p.z_offsets.size()) *
                                band_span(g, p, b.band_rows) * x_step_ * residue_width(b.chunk));
    }
    return (most + 15) / 16 * 16;
  }

  Blocking blocking(const Geometry& g, int threads) const {
    Blocking b;
    const Dims& out = g.output_size();
    for (const auto& p : phases_) {
      const auto axes = phase_gemm::axes_of(g, p.residue);
      b.max_depth = std::max(b.max_depth, axes[0].out_count);
      b.max_rows = std::max(b.max_rows, axes[1].out_count);
    }
    // x residue 0 has the most columns.
    const std::int64_t columns = (out[2] + x_members_ - 1) / x_members_;
    // Few rows (1-D problems, batch 1) split their columns too, down to one
    // tile per item, so that every thread has items.
    const std::int64_t row_items = std::max<std::int64_t>(1, g.batch * groups_ * row_phases() * b.max_depth * b.max_rows);
    const std::int64_t tiles = (columns + kTileColumns - 1) / kTileColumns;
    b.chunks = std::max((columns + kMaxChunkColumns - 1) / kMaxChunkColumns,
                        std::min(tiles, (kItemsPerThread * threads + row_items - 1) / row_items));
    b.chunk = std::max<std::int64_t>(1, (columns + b.chunks - 1) / b.chunks);
    b.chunk = (b.chunk + kTileColumns - 1) / kTileColumns * kTileColumns;
    b.chunks = std::max<std::int64_t>(1, (columns + b.chunk - 1) / b.chunk);
    const std::int64_t outer = g.batch * groups_ * row_phases() * b.max_depth * b.chunks;
    // Band height: the one whose items finish soonest on `threads` threads
    // (rounds times height), the tallest on a tie, within the band budget.
    std::int64_t best = -1;
    for (std::int64_t rows = 1; rows <= std::min(kMaxBandRows, b.max_rows); ++rows) {
      Blocking t = b;
      t.band_rows = rows;
      if (rows > 1 && band_floats(g, t) > kBandBudgetFloats) break;
      const std::int64_t items = outer * ((b.max_rows + rows - 1) / rows);
      const std::int64_t span = (items + threads - 1) / threads * rows;
      if (best < 0 || span <= best) {
        best = span;
        b.band_rows = rows;
      }
    }
    b.bands = (b.max_rows + b.band_rows - 1) / b.band_rows;
    b.items = outer * b.bands;
    if (g.batch == 0) b.items = 0;
    return b;
  }

  void run_item(const Geometry& g, const Blocking& b, std::int64_t it, const float* src, float* dst, float* band) const {
    const std::int64_t chunk = it % b.chunks;
    it /= b.chunks;
    const std::int64_t band_index = it % b.bands;
    it /= b.bands;
    const std::int64_t jz = it % b.max_depth;
    it /= b.max_depth;
    const PhaseTaps* members = &phases_[static_cast<std::size_t>(it % row_phases() * x_members_)];
    it /= row_phases();
    const std::int64_t grp = it % groups_, n = it / groups_;

    // Members with taps share their depth and height offsets (only x taps
    // differ), which set the band's rows; x residue 0 has the most columns.
    const PhaseTaps& p = *std::find_if(members, members + x_members_ - 1, [](const PhaseTaps& m) { return !m.tap.empty(); });
    const auto axes = phase_gemm::axes_of(g, members[0].residue);
    const std::int64_t j0 = band_index * b.band_rows;
    const std::int64_t j1 = std::min(axes[1].out_count, j0 + b.band_rows);
    if (jz >= axes[0].out_count || j0 >= j1) return;
    const Dims& in = g.input_size();
    const Dims& out = g.output_size();
    const std::int64_t x0 = chunk * b.chunk, x1 = std::min(axes[2].out_count, x0 + b.chunk);
    // The band: per block of channels, rows iy in [iy0, iy0 + span), input
    // columns ix0 + rho + x_step * t at [rho][t] of each row (rho < x_step, t <
    // residue width), each position the block's channels.
    const std::int64_t span = band_span(g, p, j1 - j0);
    const std::int64_t iy0 = j0 * in_step(g, 1) + p.min_oy;
    const std::int64_t width = residue_width(x1 - x0), row_floats = x_step_ * width;
    const std::int64_t ix0 = x0 * x_step_ + min_ox_;
    const auto nz = static_cast<std::int64_t>(p.z_offsets.size());
    const std::int64_t block_step = nz * span * row_floats * block_;
    const std::int64_t in_plane = in[0] * in[1] * in[2];
    const float* src_group = src + (n * g.input_channels() + grp * cin_) * in_plane;
    for (std::int64_t cb = 0; cb < channel_blocks(); ++cb)
      for (std::int64_t zi = 0; zi < nz; ++zi) {
        const std::int64_t iz = jz * in_step(g, 0) + p.z_offsets[static_cast<std::size_t>(zi)];
        for (std::int64_t r = 0; r < span; ++r) {
          const std::int64_t iy = iy0 + r;
          const bool inside = iz >= 0 && iz < in[0] && iy >= 0 && iy < in[1];
          float* row = band + cb * block_step + (zi * span + r) * row_floats * block_;
          const float* from = src_group + cb * block_ * in_plane + (iz * in[1] + iy) * in[2] + ix0;
          for (std::int64_t rho = 0; rho < x_step_; ++rho) {
            // Positions outside the input are never read, wherever `from` points.
            const TapRange copied = inside ? tap_range(width, in[2], x_step_, -(ix0 + rho), 1, 0) : TapRange{0, 0};
            Isa::copy_band_row(row + rho * width * block_, from + rho, in_plane,
                            static_cast<int>(std::min(block_, cin_ - cb * block_)), static_cast<int>(block_), x_step_,
                            copied.lo, copied.hi, width);
          }
        }
      }

    const std::int64_t out_plane = out[0] * out[1] * out[2];
    float* dst_group = dst + (n * g.output_channels() + grp * cout_) * out_plane;
    std::array<std::int64_t, 2> columns_of{};  // phase columns of each member
    std::array<std::vector<std::int64_t>, 2> tap_at;
    for (std::int64_t q = 0; q < x_members_; ++q) {
      columns_of[static_cast<std::size_t>(q)] = phase_gemm::axes_of(g, members[q].residue)[2].out_count;
      tap_at[static_cast<std::size_t>(q)].resize(members[q].tap.size());
    }
    // Band offset of each tap's first element for row j0, phase column x0.
    for (std::int64_t q = 0; q < x_members_; ++q) {
      const PhaseTaps& member = members[q];
      for (std::size_t e = 0; e < member.tap.size(); ++e) {
        const auto& o = member.offset[e];
        const std::int64_t dx = o[2] - min_ox_;  // input column ix0 + dx + x_step * (phase column - x0)
        tap_at[static_cast<std::size_t>(q)][e] =
            ((member.z_index[e] * span + j0 * in_step(g, 1) + o[1] - iy0) * row_floats + dx % x_step_ * width + dx / x_step_) *
            block_;
      }
    }
    alignas(64) float tile[kTileColumns * kLanes];
    std::array<TapRange, 2> active{};  // per member: the taps a tile runs
    const MicroKernels& micro_kernels = block_ == 1 ? kNarrowMicroKernels : kWideMicroKernels;
    const std::int64_t oz = axes[0].out_start + jz * axes[0].out_step;
    const std::int64_t row_step = in_step(g, 1) * row_floats, row_pitch = axes[1].out_step * out[2];
    // The tile of output channel block `block`, phase columns [x, x + columns) and rows [j, j + rows).
    const auto multiply = [&](std::int64_t block, std::int64_t x, int columns, std::int64_t j, std::int64_t rows) {
      // Output columns per row this tile writes: its columns of every member.
      int written = 0;
      for (std::int64_t q = 0; q < x_members_; ++q) {
        written += static_cast<int>(std::clamp<std::int64_t>(columns_of[static_cast<std::size_t>(q)] - x, 0, columns));
      }
      const std::int64_t oy = axes[1].out_start + j * axes[1].out_step;
      Output o{dst_group + block * Isa::kLanes * out_plane + (oz * out[1] + oy) * out[2] + x * x_members_, out_plane,
               row_pitch, static_cast<int>(std::min<std::int64_t>(Isa::kLanes, cout_ - block * Isa::kLanes)),
               x_members_ == 1 ? Store::rows : Store::tile, tile, written};
      for (std::int64_t q = 0; q < x_members_; ++q) {
        if (q == 1) o.store = Store::interleaved;
        const PhaseTaps& member = members[q];
        const TapRange taps = active[static_cast<std::size_t>(q)];
        // An odd member one column short computes that column too; `written` leaves it out.
        micro_kernels[static_cast<std::size_t>(columns - 1)][static_cast<std::size_t>(rows - 1)](
            taps.lo, taps.hi, cin_, band + ((j - j0) * row_step + (x - x0)) * block_,
            tap_at[static_cast<std::size_t>(q)].data(), block_step, row_step, packed_.data() + weights_of(member, grp, block),
            bias_.data() + (grp * blocks_ + block) * Isa::kLanes, o);
      }
    };
    // Tiles: up to 16 columns of a row, or short rows stacked, 16 / W rows of
    // W columns, W the first (widest) tile's; a narrower last tile of the row
    // stacks as many rows (its W * H stays within 16).
    const std::int64_t tile_rows =
        std::min<std::int64_t>(kMaxTileRows, kTileColumns / std::min<std::int64_t>(kTileColumns, x1 - x0));
    for (std::int64_t j = j0; j < j1; j += tile_rows) {
      const std::int64_t rows = std::min(tile_rows, j1 - j);
      // Each member's taps: those that read an input row for at least one of
      // the tile's rows when they are a range (always in 2-D: e runs over
      // kernel rows), else all.
      for (std::int64_t q = 0; q < x_members_; ++q) {
        const PhaseTaps& member = members[q];
        const auto n_taps = static_cast<std::int64_t>(member.tap.size());
        TapRange reading{n_taps, 0};
        bool range = true;
        for (std::int64_t e = 0; e < n_taps && skip_empty_taps_; ++e) {
          const auto& off = member.offset[static_cast<std::size_t>(e)];
          const std::int64_t iz = jz * in_step(g, 0) + off[0];
          const std::int64_t first_iy = j * in_step(g, 1) + off[1], last_iy = (j + rows - 1) * in_step(g, 1) + off[1];
          if (iz < 0 || iz >= in[0] || last_iy < 0 || first_iy >= in[1]) continue;
          range = range && (reading.hi == 0 || reading.hi == e);
          reading = {std::min(reading.lo, e), e + 1};
        }
        active[static_cast<std::size_t>(q)] = skip_empty_taps_ && range ? (reading.hi == 0 ? TapRange{0, 0} : reading) : TapRange{0, n_taps};
      }
      for (std::int64_t x = x0; x < x1; x += kTileColumns) {
        const int columns = static_cast<int>(std::min<std::int64_t>(kTileColumns, x1 - x));
        for (std::int64_t block = 0; block < blocks_; ++block) multiply(block, x, columns, j, rows);
      }
    }
  }

  ConvKind kind_;
  std::int64_t groups_, cin_, cout_, blocks_;
  std::int64_t x_members_ = 1;  // phases per output row: the x stride of a transposed convolution, else 1
  std::int64_t x_step_ = 1;     // input columns per output column: a convolution's x stride, else 1
  // Channels per band block (innermost at each position): 16, or 1 when there
  // are fewer, where blocks of 16 would mostly copy zeros.
  std::int64_t block_ = kLanes;
  std::int64_t min_ox_ = 0, max_ox_ = 0;
  std::vector<PhaseTaps> phases_;
  std::vector<float> packed_, bias_;
  bool skip_empty_taps_ = false;  // see phase_gemm::may_skip_zero_products
};

TCONV_TARGET_END

std::string rejects(const Geometry& g, DType dtype, const WeightFacts& weights) {
  // Taps outside the input are read as zeros, as the phase GEMMs do; PyTorch
  // multiplies a convolution's padding too, so non-finite weights agree there.
  if (std::string why_not = phase_gemm::interleaved_phase_rejects(g, dtype, weights, kLanes); !why_not.empty()) {
    return why_not;
  }
  const std::int64_t reach_x = g.dilation[2] * (g.kernel[2] - 1) + 1, reach_y = g.dilation[1] * (g.kernel[1] - 1) + 1;
  const std::int64_t x_step = g.kind == ConvKind::conv ? g.stride[2] : 1;
  const std::int64_t block = g.input_per_group() < kLanes ? 1 : kLanes;
  const std::int64_t least = (g.input_per_group() + block - 1) / block * block * g.kernel[0] * reach_y * (kTileColumns * x_step + reach_x);
  if (least > kMaxBandFloats) {
    return "one band of its input rows (" + std::to_string(least * 4) + " bytes) would not fit the cache-sized workspace";
  }
  return {};
}

}  // namespace
}  // namespace tconv::detail::row_gemm

namespace tconv::detail {
extern const KernelFamily kRowGemmAvx512Family{"row_gemm_avx512", "AVX-512 (F, VL, BW, DQ)", cpu_has_avx512,
                                               row_gemm::rejects, prepare_float32<row_gemm::RowGemmKernel>};
}  // namespace tconv::detail
