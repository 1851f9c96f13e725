// Row-scatter family for AVX-512: channels-first transposed convolutions with
// huge kernel rows at an x stride of 16, 32 or 64, such as fcn32's 64 x 64
// kernel at stride 32. There the phase GEMMs have 1024 phases of 2 x 2 taps,
// each writing every 32nd output column; here each input element's kernel row
// lands on whole vectors of an output row, in the scatter order.
//
// Math. Output row (n, m, oz, oy) is cut into cells of s = stride_x columns:
// cell j holds the columns s*j - pad_x + [0, s), s / 16 vectors (which start
// on any column: stores are unaligned when pad_x is not a multiple of 16, and
// masked at the row's ends). Column s*j - pad_x + u (u < s) takes, for every
// kernel row (tz, ty) whose input row (iz, iy) exists, every x tap tx = u + s*q
// (q < T = kernel_x / s) and every input channel c, the product
//     W[c, m, tz, ty, tx] * src[c, iz, iy, j - q]
// (zero when j - q lies outside the input row), so vector v of cell j is
//     acc[j][v] += broadcast(src[c, iz, iy, j - q]) * W[c, m, tz, ty, 16 v + s q .. 16 v + s q + 15].
// Sum order per output: kernel rows (tz, ty) ascending, then q (tx
// ascending), then c, from zero, and the bias last: the phase GEMM families'
// k = e*C + c over a phase's taps in ascending order, so the same bits as
// phase_gemm, plane_gemm and the channels-last igemm.
// Tile: kCells cells' worth of vectors (kCellVectors = s / 16 a cell) x
// kChannels output channels, at most 24 accumulators, starting at vector
// kShift of its first cell (a row starts at its first vector that holds an
// output column); per (kernel row, q, c) step one broadcast per cell touched
// and kCellVectors * kChannels weight loads feed all of them.
// Input columns outside the input are read as zeros from a padded copy of the
// output row's input rows (per thread, in the workspace); with finite weights
// (which the family requires) their products are zeros, and adding a zero to
// a sum that started from +0 leaves its bits as they are.
// Packed weights (at creation): [group][block of kChannels output channels]
// [kernel row][q][c][kChannels][s], channels past the group's zero.
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cpu_features.hpp"
#include "kernels/isa_target.hpp"
#include "kernels/kernel.hpp"
#include "kernels/simd_avx512.hpp"

namespace tconv::detail::row_scatter {
namespace {

constexpr int kLanes = 16;
constexpr int kMaxTileChannels = 3;
constexpr std::int64_t kChunkCells = 240;  // cells' worth of an output row at a time: whole tiles of 8, 12 and 6

// The tile shape for s / 16 vectors per cell: output channels and cells.
struct TileShape {
  int channels, cells;
};
constexpr TileShape tile_shape(int cell_vectors) {
  return cell_vectors == 1 ? TileShape{3, 8} : cell_vectors == 2 ? TileShape{1, 12} : TileShape{1, 6};
}

TCONV_TARGET_AVX512_BEGIN

using Isa = simd::Avx512;
using V = Isa::V;

// One tile's K loop and stores. rows[r]: kernel row r's padded input rows
// ([c][padded width]) at the tile's first cell for q = 0; w: the block's
// packed weights; out[b]: channel b's output row at the tile's first column;
// columns: the output row's length; first_column: the tile's first column.
struct TileArgs {
  const float* const* rows;
  const std::int64_t* weight_rows;  // per r: offset of its [q][c][kChannels][s] weights in w
  std::int64_t n_rows, taps_per_cell, channels, padded_width;
  const float* w;
  const float* bias;  // of the block's channels
  float* const* out;
  int stored_channels;
  std::int64_t first_column, columns;
};

// kVectors = kCells * kCellVectors consecutive vectors of an output row,
// starting at vector kShift of the tile's first cell: vector i belongs to cell
// (kShift + i) / kCellVectors and takes that cell's weight vector
// (kShift + i) % kCellVectors, so a row whose padding leaves the first cell's
// leading vectors outside the output starts there instead of computing them
// (fcn32: 20 vectors a row instead of 22).
template <int kCellVectors, int kShift, int kCells>
void tile_kernel(const TileArgs& a) {
  constexpr int kChannels = tile_shape(kCellVectors).channels;
  constexpr int kStride = kCellVectors * kLanes;
  constexpr int kVectors = kCells * kCellVectors;
  constexpr int kTouched = (kShift + kVectors - 1) / kCellVectors + 1;  // cells the tile's vectors lie in
  V acc[kChannels][kVectors];
  TCONV_UNROLL_TILE
  for (int b = 0; b < kChannels; ++b) {
    TCONV_UNROLL_TILE
    for (int i = 0; i < kVectors; ++i) acc[b][i] = Isa::zero();
  }
  for (std::int64_t r = 0; r < a.n_rows; ++r) {
    const float* w = a.w + a.weight_rows[r];
    for (std::int64_t q = 0; q < a.taps_per_cell; ++q) {
      const float* row = a.rows[r] - q;  // cell j reads column j - q
      for (std::int64_t c = 0; c < a.channels; ++c, row += a.padded_width, w += kChannels * kStride) {
        V weight[kChannels][kCellVectors];
        TCONV_UNROLL_TILE
        for (int b = 0; b < kChannels; ++b) {
          TCONV_UNROLL_TILE
          for (int u = 0; u < kCellVectors; ++u) weight[b][u] = Isa::load(w + b * kStride + u * kLanes);
        }
        TCONV_UNROLL_TILE
        for (int j = 0; j < kTouched; ++j) {
          const V x = Isa::broadcast(row + j);
          TCONV_UNROLL_TILE
          for (int i = 0; i < kVectors; ++i) {
            if ((kShift + i) / kCellVectors != j) continue;  // resolved at compile time
            TCONV_UNROLL_TILE
            for (int b = 0; b < kChannels; ++b)
              acc[b][i] = Isa::fmadd(x, weight[b][(kShift + i) % kCellVectors], acc[b][i]);
          }
        }
      }
    }
  }
  // Locals, not loads through `a`: the compiler cannot tell that the stores leave it alone.
  const std::int64_t first = a.first_column, columns = a.columns;
  float* out[kChannels];
  TCONV_UNROLL_TILE
  for (int b = 0; b < kChannels; ++b) out[b] = a.out[b];
  TCONV_UNROLL_TILE
  for (int b = 0; b < kChannels; ++b) {
    if (b >= a.stored_channels) break;
    const V bias = Isa::set1(a.bias[b]);
    TCONV_UNROLL_TILE
    for (int i = 0; i < kVectors; ++i) {
      const std::int64_t column = first + i * kLanes;
      // Lanes [lo, hi) of this vector are output columns.
      const std::int64_t lo = std::clamp<std::int64_t>(-column, 0, kLanes);
      const std::int64_t hi = std::clamp<std::int64_t>(columns - column, 0, kLanes);
      if (lo >= hi) continue;
      Isa::masked_store(out[b] + i * kLanes, static_cast<std::uint32_t>(Isa::first_lanes(hi) & ~Isa::first_lanes(lo)),
                        Isa::add(acc[b][i], bias));
    }
  }
}

using TileKernel = void (*)(const TileArgs&);
template <int kCellVectors, int kShift, std::size_t... Cells>
constexpr std::array<TileKernel, sizeof...(Cells)> tile_kernels_for(std::index_sequence<Cells...>) {
  return {&tile_kernel<kCellVectors, kShift, static_cast<int>(Cells) + 1>...};
}
template <int kCellVectors, std::size_t... Shifts>
constexpr auto shifted_tile_kernels(std::index_sequence<Shifts...>) {
  constexpr auto kCells = static_cast<std::size_t>(tile_shape(kCellVectors).cells);
  return std::array<std::array<TileKernel, kCells>, sizeof...(Shifts)>{
      tile_kernels_for<kCellVectors, static_cast<int>(Shifts)>(std::make_index_sequence<kCells>{})...};
}
// By shift and cells - 1, for 1, 2 and 4 vectors per cell.
constexpr auto kTileKernels1 = shifted_tile_kernels<1>(std::make_index_sequence<1>{});
constexpr auto kTileKernels2 = shifted_tile_kernels<2>(std::make_index_sequence<2>{});
constexpr auto kTileKernels4 = shifted_tile_kernels<4>(std::make_index_sequence<4>{});

TileKernel tile_kernel_for(int cell_vectors, int shift, int cells) {
  const auto s = static_cast<std::size_t>(shift), at = static_cast<std::size_t>(cells - 1);
  return cell_vectors == 1 ? kTileKernels1[s][at] : cell_vectors == 2 ? kTileKernels2[s][at] : kTileKernels4[s][at];
}

class RowScatterKernel final : public PreparedKernel {
 public:
  RowScatterKernel(const Geometry& g, const float* weight, const float* bias)
      : groups_(g.groups),
        cin_(g.input_per_group()),
        cout_(g.output_per_group()),
        stride_(g.stride[2]),
        cell_vectors_(static_cast<int>(g.stride[2] / kLanes)),
        shape_(tile_shape(cell_vectors_)),
        taps_per_cell_(g.kernel[2] / g.stride[2]),
        kernel_rows_(g.kernel[0] * g.kernel[1]),
        blocks_((cout_ + shape_.channels - 1) / shape_.channels),
        bias_(static_cast<std::size_t>(g.output_channels()), 0.0f) {
    if (bias) std::copy(bias, bias + g.output_channels(), bias_.begin());
    packed_.assign(static_cast<std::size_t>(groups_ * blocks_ * block_floats()), 0.0f);
    for (std::int64_t grp = 0; grp < groups_; ++grp)
      for (std::int64_t m = 0; m < cout_; ++m)
        for (std::int64_t r = 0; r < kernel_rows_; ++r)
          for (std::int64_t tx = 0; tx < g.kernel[2]; ++tx)
            for (std::int64_t c = 0; c < cin_; ++c) {
              const std::int64_t q = tx / stride_, u = tx % stride_;
              const std::int64_t at = (grp * blocks_ + m / shape_.channels) * block_floats() + row_weights(r) +
                                      ((q * cin_ + c) * shape_.channels + m % shape_.channels) * stride_ + u;
              packed_[static_cast<std::size_t>(at)] = weight[g.weight_index(grp, m, c, r * g.kernel[2] + tx)];
            }
  }

  std::size_t workspace_bytes(const Geometry& g, int threads) const override {
    return per_thread_workspace_bytes(static_cast<std::size_t>(padded_floats(g)) * sizeof(float), threads);
  }

  void run(const Geometry& g, const void* src_v, void* dst_v, void* workspace, int threads) const override {
    const auto* src = static_cast<const float*>(src_v);
    auto* dst = static_cast<float*>(dst_v);
    const std::int64_t rows = g.big_size[0] * g.big_size[1], items = g.batch * groups_ * rows;
    const std::size_t per_thread = static_cast<std::size_t>(padded_floats(g)) * sizeof(float);
    // Output rows (oz, oy) by stride phase (oz mod stride_z, oy mod stride_y), then in order: the rows of a
    // phase take the same kernel rows, whose weights then stay in L2 from one row to the next (fcn32's are
    // 224 KB a row of its 7 MB; 1 thread 4.76 -> 4.66 ms against rows in plain order).
    std::vector<std::int64_t> order(static_cast<std::size_t>(rows));
    for (std::int64_t r = 0; r < rows; ++r) order[static_cast<std::size_t>(r)] = r;
    const auto phase_of = [&](std::int64_t r) {
      return r / g.big_size[1] % g.stride[0] * g.stride[1] + r % g.big_size[1] % g.stride[1];
    };
    std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return phase_of(a) < phase_of(b); });
#pragma omp parallel num_threads(threads)
    {
      RowScratch scratch;
      float* padded = thread_slot<float>(workspace, per_thread, omp_get_thread_num());
#pragma omp for schedule(dynamic, 1)
      for (std::int64_t item = 0; item < items; ++item) {
        run_row(g, item / rows, order[static_cast<std::size_t>(item % rows)], src, dst, padded, scratch);
      }
    }
  }

 private:
  std::int64_t block_floats() const { return kernel_rows_ * row_weights(1); }
  // Offset of kernel row r's [q][c][kChannels][s] weights in a block.
  std::int64_t row_weights(std::int64_t r) const { return r * taps_per_cell_ * cin_ * shape_.channels * stride_; }

  // An output row's vectors: vector t lies in cell first_cell + (shift + t) / V (cell j holding the columns
  // stride * j - pad + [0, stride)), its first column start_column + 16 t; the first `shift` vectors of the
  // first cell lie wholly before column 0 and are left out.
  struct RowVectors {
    std::int64_t first_cell, shift, start_column, count;
  };
  RowVectors row_vectors(const Geometry& g) const {
    RowVectors v;
    v.first_cell = g.pad_begin[2] / stride_;
    v.shift = g.pad_begin[2] % stride_ / kLanes;
    v.start_column = v.first_cell * stride_ - g.pad_begin[2] + v.shift * kLanes;
    v.count = (g.big_size[2] - v.start_column + kLanes - 1) / kLanes;
    return v;
  }
  // Cells a run of `vectors` vectors (rounded up to whole tiles of cells) lies in.
  std::int64_t cells_touched(const RowVectors& v, std::int64_t vectors) const {
    return (vectors + cell_vectors_ - 1) / cell_vectors_ + (v.shift > 0 ? 1 : 0);
  }
  // Vectors of a row at a time (kChunkCells cells' worth, whole tiles), each chunk with a padded copy of the
  // input columns its cells read, [first - (T - 1), first + touched), so that the copy stays small however
  // long the row.
  std::int64_t chunk_vectors() const { return kChunkCells * cell_vectors_; }
  std::int64_t padded_width(const Geometry& g) const {
    const RowVectors v = row_vectors(g);
    return cells_touched(v, std::min(v.count, chunk_vectors())) + taps_per_cell_ - 1;
  }

  // A thread's lists for one output row, kept from row to row.
  struct RowScratch {
    std::vector<std::int64_t> taps, input_rows, weight_rows;
    std::vector<const float*> row_at;
  };

  // The (tz, ty) kernel rows whose input rows exist for output row (oz, oy), ascending, and those rows.
  void kernel_rows_of(const Geometry& g, std::int64_t oz, std::int64_t oy, std::vector<std::int64_t>& taps,
                      std::vector<std::int64_t>& input_rows) const {
    taps.clear();
    input_rows.clear();
    for (std::int64_t tz = 0; tz < g.kernel[0]; ++tz) {
      const std::int64_t z = oz + g.pad_begin[0] - tz * g.dilation[0];
      if (z < 0 || z % g.stride[0] != 0 || z / g.stride[0] >= g.small_size[0]) continue;
      for (std::int64_t ty = 0; ty < g.kernel[1]; ++ty) {
        const std::int64_t y = oy + g.pad_begin[1] - ty * g.dilation[1];
        if (y < 0 || y % g.stride[1] != 0 || y / g.stride[1] >= g.small_size[1]) continue;
        taps.push_back(tz * g.kernel[1] + ty);
        input_rows.push_back(z / g.stride[0] * g.small_size[1] + y / g.stride[1]);
      }
    }
  }

  // At most as many kernel rows as an output row can take (taps t with o + pad - t * dilation a multiple of
  // the stride: one in every stride / gcd(stride, dilation) per dimension), times the channels' padded rows.
  std::int64_t padded_floats(const Geometry& g) const {
    std::int64_t most = 1;
    for (int d = 0; d < 2; ++d) {
      const std::int64_t period = g.stride[d] / std::gcd(g.stride[d], g.dilation[d]);
      most *= (g.kernel[d] + period - 1) / period;
    }
    return most * cin_ * padded_width(g);
  }

  // Output row (oz * H + oy) of sample and group n * groups + grp, every channel of the group.
  void run_row(const Geometry& g, std::int64_t sample_group, std::int64_t row, const float* src, float* dst,
               float* padded, RowScratch& scratch) const {
    const std::int64_t grp = sample_group % groups_, n = sample_group / groups_;
    const std::int64_t oz = row / g.big_size[1], oy = row % g.big_size[1];
    std::vector<std::int64_t>& taps = scratch.taps;
    std::vector<std::int64_t>& weight_rows = scratch.weight_rows;
    std::vector<const float*>& row_at = scratch.row_at;
    kernel_rows_of(g, oz, oy, taps, scratch.input_rows);
    const std::vector<std::int64_t>& input_rows = scratch.input_rows;
    const std::int64_t width = padded_width(g), in_w = g.small_size[2];
    const std::int64_t in_plane = g.small_spatial(), out_plane = g.big_spatial(), out_w = g.big_size[2];
    const float* src_group = src + (n * g.small_channels + grp * cin_) * in_plane;
    row_at.resize(taps.size());
    weight_rows.resize(taps.size());
    for (std::size_t r = 0; r < taps.size(); ++r) weight_rows[r] = row_weights(taps[r]);
    float* dst_row = dst + (n * g.big_channels + grp * cout_) * out_plane + row * out_w;
    const RowVectors vectors = row_vectors(g);
    for (std::int64_t v0 = 0; v0 < vectors.count; v0 += chunk_vectors()) {
      const std::int64_t v1 = std::min(v0 + chunk_vectors(), vectors.count);
      const std::int64_t cell = vectors.first_cell + v0 / cell_vectors_;
      const std::int64_t lo = cell - (taps_per_cell_ - 1);  // the input column of padded[0]
      const std::int64_t columns = cells_touched(vectors, v1 - v0) + taps_per_cell_ - 1;
      for (std::size_t r = 0; r < taps.size(); ++r)
        for (std::int64_t c = 0; c < cin_; ++c) {
          float* to = padded + (static_cast<std::int64_t>(r) * cin_ + c) * width;
          const float* from = src_group + c * in_plane + input_rows[r] * in_w;
          for (std::int64_t i = 0; i < columns; ++i) to[i] = lo + i >= 0 && lo + i < in_w ? from[lo + i] : 0.0f;
        }
      run_chunk(g, vectors, v0, v1, lo, padded, dst_row, grp, scratch);
    }
  }

  // The row's vectors [v0, v1), every channel block, from the padded copy (input column lo at 0).
  void run_chunk(const Geometry& g, const RowVectors& vectors, std::int64_t v0, std::int64_t v1, std::int64_t lo,
                 const float* padded, float* dst_row, std::int64_t grp, RowScratch& scratch) const {
    const std::int64_t width = padded_width(g), out_plane = g.big_spatial(), out_w = g.big_size[2];
    std::vector<const float*>& row_at = scratch.row_at;
    const std::vector<std::int64_t>& weight_rows = scratch.weight_rows;
    const auto rows = static_cast<std::int64_t>(row_at.size());
    const std::int64_t tile_vectors = static_cast<std::int64_t>(shape_.cells) * cell_vectors_;
    for (std::int64_t block = 0; block < blocks_; ++block) {
      const std::int64_t m0 = block * shape_.channels;
      std::array<float*, kMaxTileChannels> out{};
      for (int b = 0; b < shape_.channels; ++b)
        out[static_cast<std::size_t>(b)] = dst_row + std::min(m0 + b, cout_ - 1) * out_plane;
      for (std::int64_t t0 = v0; t0 < v1; t0 += tile_vectors) {
        const int cells = static_cast<int>((std::min(tile_vectors, v1 - t0) + cell_vectors_ - 1) / cell_vectors_);
        const std::int64_t cell = vectors.first_cell + t0 / cell_vectors_;
        for (std::int64_t r = 0; r < rows; ++r) row_at[static_cast<std::size_t>(r)] = padded + r * cin_ * width + (cell - lo);
        const std::int64_t first_column = vectors.start_column + t0 * kLanes;
        std::array<float*, kMaxTileChannels> out_tile{};
        for (int b = 0; b < shape_.channels; ++b)
          out_tile[static_cast<std::size_t>(b)] = out[static_cast<std::size_t>(b)] + first_column;
        const TileArgs args{row_at.data(), weight_rows.data(), rows, taps_per_cell_, cin_, width,
                            packed_.data() + (grp * blocks_ + block) * block_floats(), bias_.data() + grp * cout_ + m0,
                            out_tile.data(), static_cast<int>(std::min<std::int64_t>(shape_.channels, cout_ - m0)),
                            first_column, out_w};
        tile_kernel_for(cell_vectors_, static_cast<int>(vectors.shift), cells)(args);
      }
    }
  }

  std::int64_t groups_, cin_, cout_, stride_;
  int cell_vectors_;
  TileShape shape_;
  std::int64_t taps_per_cell_, kernel_rows_, blocks_;
  std::vector<float> packed_, bias_;
};

TCONV_TARGET_END

std::string rejects(const Geometry& g, DType dtype, const WeightFacts& weights) {
  if (dtype != DType::f32) return "it computes float32 only";
  if (g.kind != ConvKind::conv_transpose) return "it computes transposed convolutions only";
  if (g.layout != Layout::channels_first) return "it reads channels-first tensors";
  const std::int64_t s = g.stride[2];
  if (s != 16 && s != 32 && s != 64) return "its cells are whole vectors: x stride must be 16, 32 or 64, this has " + std::to_string(s);
  if (g.dilation[2] != 1) return "a cell's taps are consecutive: x dilation must be 1";
  if (g.kernel[2] % s != 0) return "a kernel row must be whole cells: x kernel a multiple of the x stride";
  if (!weights.all_finite) {
    return "the weight holds NaN or infinity, which it would multiply by the zeros it reads for columns outside the input";
  }
  return {};
}

}  // namespace
}  // namespace tconv::detail::row_scatter

namespace tconv::detail {
extern const KernelFamily kRowScatterAvx512Family{"row_scatter_avx512", "AVX-512 (F, VL, BW, DQ)", cpu_has_avx512,
                                                  row_scatter::rejects, prepare_float32<row_scatter::RowScatterKernel>};
}  // namespace tconv::detail
