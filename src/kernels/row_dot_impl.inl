// Row-dot family over an ISA traits type `Isa` (simd::Avx512 or simd::Avx2
// plus the tile, kTileChannels x kTilePositions),
// included inside a namespace of row_dot_avx512.cpp and row_dot_avx2.cpp under
// that ISA's target region; what it takes is row_dot.hpp's.
//
// Channels-first convolutions (forward) with long kernel rows, such as
// fcn32's 64 x 64 kernel at stride 32. There a GEMM over
// input patches has K = C * 4096 and a patch matrix as large as the input,
// and plane_gemm's tiles would walk K = C * 4096 taps for every 48 outputs.
//
// Math. Per group, output channel m and output position p = (oz, oy, ox):
//     dst[m, p] = bias[m] + sum over input channels c, kernel rows (tz, ty) and x taps tx of
//         W[m, c, tz, ty, tx] * src[c, iz, iy, ox * stride_x - pad_x + tx]
//     iz = oz * stride_z - pad_z + tz * dilation_z,  iy likewise
// (dilation 1 in x). A vector holds L (Isa::kLanes) consecutive x taps, so it
// multiplies L consecutive input columns. A tile is MR output channels x NR
// positions of one output row; each accumulator acc[i][j] holds L partial
// sums, one per tap lane:
//     acc[i][j] += W[m0 + i, c, row, Lv .. Lv + L - 1] * src[c, row's input row, col_j + Lv .. col_j + Lv + L - 1]
// Input columns outside the input and taps past the kernel width are masked
// out of the loads (read as zeros, never read from memory); kernel rows
// outside the input are skipped. When every channel is done, each
// accumulator's L lanes are added up (pairwise halves) and the bias added.
// Layouts (floats):
//   W, packed at creation: [group][block of MR output channels][c][kernel row][v][MR][L],
//     taps past the kernel width and channels past M zero.
//   Partial sums, in the workspace per thread: [m][position in the item][L].
// Each output's sum has one order (c, then kernel row, then v, per lane; then

constexpr int kLanes = Isa::kLanes;
constexpr int kTileChannels = Isa::kTileChannels;    // MR: output channels per tile
constexpr int kTilePositions = Isa::kTilePositions;  // NR: output positions per tile (MR x NR accumulators, MR + NR loads per step)
constexpr std::int64_t kRowChunk = 8;  // kernel rows (of one or more input channels) per pass over the item's tiles
constexpr std::int64_t kPartialBudgetFloats = 64 * 1024;  // an item's partial sums (256 KB, in L2)

using V = Isa::V;

// One tile's operands: `rows` kernel rows of input channels (input row pointers, weight offsets),
// columns col[j] of its positions' first tap, masks[j * kv + v] per tap vector.
struct TileOperands {
  const float* const* input_rows;
  const std::int64_t* weight_rows;  // per row: offset of its [v][MR][L] weights
  std::int64_t rows;
  std::int64_t kv;                  // vectors per kernel row
  const std::int64_t* col;
  const std::uint32_t* masks;
  const float* weights;             // the channel block's weights
};

// acc[i][j] (partial sums at sums + (i * channel_stride + j) * L) += products over the rows and vectors.
template <int MR, int NR>
void tile(const TileOperands& t, float* sums, std::int64_t channel_stride) {
  V acc[MR * NR];
  TCONV_UNROLL_TILE
  for (int a = 0; a < MR * NR; ++a) acc[a] = Isa::load(sums + (a / NR * channel_stride + a % NR) * kLanes);
  for (std::int64_t r = 0; r < t.rows; ++r) {
    const float* in = t.input_rows[r];
    const float* w = t.weights + t.weight_rows[r];
    for (std::int64_t v = 0; v < t.kv; ++v, w += kTileChannels * kLanes) {
      V x[NR];
      TCONV_UNROLL_TILE
      for (int j = 0; j < NR; ++j) x[j] = Isa::load_lanes(t.masks[j * t.kv + v], in + t.col[j] + v * kLanes);
      TCONV_UNROLL_TILE
      for (int i = 0; i < MR; ++i) {
        const V wv = Isa::load(w + i * kLanes);
        TCONV_UNROLL_TILE
        for (int j = 0; j < NR; ++j) acc[i * NR + j] = Isa::fmadd(wv, x[j], acc[i * NR + j]);
      }
    }
  }
  TCONV_UNROLL_TILE
  for (int a = 0; a < MR * NR; ++a) Isa::store(sums + (a / NR * channel_stride + a % NR) * kLanes, acc[a]);
}

// The sum of L partial sums, halves added pairwise (lane i + L/2 into lane i, and so on).
float lane_sum(const float* lanes) {
  std::array<float, kLanes> s;
  std::copy_n(lanes, kLanes, s.begin());
  for (int width = kLanes / 2; width >= 1; width /= 2)
    for (int i = 0; i < width; ++i) s[static_cast<std::size_t>(i)] += s[static_cast<std::size_t>(i + width)];
  return s[0];
}

using Tile = decltype(&tile<1, 1>);
template <int MR, std::size_t... Js>
constexpr std::array<Tile, kTilePositions> tiles_of(std::index_sequence<Js...>) {
  return {&tile<MR, static_cast<int>(Js) + 1>...};
}
template <std::size_t... Is>
constexpr std::array<std::array<Tile, kTilePositions>, kTileChannels> all_tiles(std::index_sequence<Is...>) {
  return {tiles_of<static_cast<int>(Is) + 1>(std::make_index_sequence<kTilePositions>())...};
}
// By [MR - 1][NR - 1].
constexpr std::array<std::array<Tile, kTilePositions>, kTileChannels> kTiles =
    all_tiles(std::make_index_sequence<kTileChannels>());

class RowDotKernel final : public PreparedKernel {
 public:
  RowDotKernel(const Geometry& g, const float* weight, const float* bias)
      : groups_(g.groups),
        cin_(g.big_per_group()),
        cout_(g.small_per_group()),
        blocks_((cout_ + kTileChannels - 1) / kTileChannels),
        kernel_rows_(g.kernel[0] * g.kernel[1]),
        kv_((g.kernel[2] + kLanes - 1) / kLanes),
        packed_(static_cast<std::size_t>(groups_ * blocks_ * cin_ * kernel_rows_ * kv_ * kTileChannels * kLanes), 0.0f),
        bias_(static_cast<std::size_t>(g.small_channels), 0.0f) {
    if (bias) std::copy(bias, bias + g.small_channels, bias_.begin());
    for (std::int64_t grp = 0; grp < groups_; ++grp)
      for (std::int64_t m = 0; m < cout_; ++m)
        for (std::int64_t c = 0; c < cin_; ++c)
          for (std::int64_t row = 0; row < kernel_rows_; ++row)
            for (std::int64_t tx = 0; tx < g.kernel[2]; ++tx) {
              const std::int64_t at = weights_of(grp, m / kTileChannels, c) +
                                      ((row * kv_ + tx / kLanes) * kTileChannels + m % kTileChannels) * kLanes + tx % kLanes;
              packed_[static_cast<std::size_t>(at)] = weight[g.weight_index(grp, m, c, row * g.kernel[2] + tx)];
            }
  }

  std::size_t workspace_bytes(const Geometry& g, int threads) const override {
    return per_thread_workspace_bytes(static_cast<std::size_t>(partial_floats(g, blocking(g, threads))) * sizeof(float),
                                      threads);
  }

  void run(const Geometry& g, const void* src_v, void* dst_v, void* workspace, int threads) const override {
    const auto* src = static_cast<const float*>(src_v);
    auto* dst = static_cast<float*>(dst_v);
    const Blocking b = blocking(g, threads);
    const std::size_t per_thread = static_cast<std::size_t>(partial_floats(g, b)) * sizeof(float);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (std::int64_t item = 0; item < b.items; ++item) {
      run_item(g, b, item, src, dst, thread_slot<float>(workspace, per_thread, omp_get_thread_num()));
    }
  }

 private:
  // Work items: (sample, group, chunk of output rows, chunk of output channel
  // blocks); an output row is (oz, oy).
  struct Blocking {
    std::int64_t row_chunk = 1, row_chunks = 1;
    std::int64_t block_chunk = 1, block_chunks = 1;
    std::int64_t items = 0;
  };

  std::int64_t weights_of(std::int64_t grp, std::int64_t block, std::int64_t c) const {
    return ((grp * blocks_ + block) * cin_ + c) * kernel_rows_ * kv_ * kTileChannels * kLanes;
  }
  std::int64_t partial_floats(const Geometry& g, const Blocking& b) const {
    return b.block_chunk * kTileChannels * b.row_chunk * g.small_size[2] * kLanes;
  }

  // The fewest items that give every thread one and whose partial sums fit
  // the budget: rows are split first (an item streams all the weights of its
  // channel blocks once), then channel blocks (each streams the input once).
  Blocking blocking(const Geometry& g, int threads) const {
    Blocking b;
    const std::int64_t rows = g.small_size[0] * g.small_size[1];
    if (rows == 0 || g.batch == 0) return b;
    const std::int64_t pieces = (threads + g.batch * groups_ - 1) / (g.batch * groups_);
    const auto settle = [&] {
      b.row_chunk = (rows + b.row_chunks - 1) / b.row_chunks;
      b.row_chunks = (rows + b.row_chunk - 1) / b.row_chunk;
      b.block_chunk = (blocks_ + b.block_chunks - 1) / b.block_chunks;
      b.block_chunks = (blocks_ + b.block_chunk - 1) / b.block_chunk;
    };
    b.row_chunks = std::min(rows, pieces);
    b.block_chunks = std::min(blocks_, (pieces + b.row_chunks - 1) / b.row_chunks);
    settle();
    while (partial_floats(g, b) > kPartialBudgetFloats && (b.row_chunk > 1 || b.block_chunk > 1)) {
      if (b.row_chunk > 1) {
        ++b.row_chunks;
      } else {
        ++b.block_chunks;
      }
      settle();
    }
    b.items = g.batch * groups_ * b.row_chunks * b.block_chunks;
    return b;
  }

  void run_item(const Geometry& g, const Blocking& b, std::int64_t item, const float* src, float* dst,
                float* sums) const {
    const std::int64_t block_chunk = item % b.block_chunks;
    item /= b.block_chunks;
    const std::int64_t row_chunk = item % b.row_chunks;
    item /= b.row_chunks;
    const std::int64_t grp = item % groups_, n = item / groups_;
    const std::int64_t block0 = block_chunk * b.block_chunk, block1 = std::min(blocks_, block0 + b.block_chunk);
    const std::int64_t out_w = g.small_size[2], in_w = g.big_size[2];
    const std::int64_t row0 = row_chunk * b.row_chunk, row1 = std::min(g.small_size[0] * g.small_size[1], row0 + b.row_chunk);
    const std::int64_t positions = (row1 - row0) * out_w, channel_stride = positions;
    // Partial sums of output channel m0 + m at sums + (m * channel_stride + position) * L.
    const std::int64_t m0 = block0 * kTileChannels, m1 = std::min(cout_, block1 * kTileChannels);
    std::fill(sums, sums + (block1 - block0) * kTileChannels * positions * kLanes, 0.0f);

    // Per output column: its first tap's input column, and the masks of its tap vectors.
    std::vector<std::int64_t> col(static_cast<std::size_t>(out_w));
    std::vector<std::uint32_t> masks(static_cast<std::size_t>(out_w * kv_));
    for (std::int64_t ox = 0; ox < out_w; ++ox) {
      col[static_cast<std::size_t>(ox)] = ox * g.stride[2] - g.pad_begin[2];
      for (std::int64_t v = 0; v < kv_; ++v) {
        const std::int64_t first = col[static_cast<std::size_t>(ox)] + v * kLanes;  // input column of lane 0
        const std::int64_t lo = std::max<std::int64_t>(0, -first);
        const std::int64_t hi = std::min<std::int64_t>({kLanes, in_w - first, g.kernel[2] - v * kLanes});
        masks[static_cast<std::size_t>(ox * kv_ + v)] =
            lo < hi ? Isa::first_lanes(hi) & ~static_cast<std::uint32_t>(Isa::first_lanes(lo)) : 0u;
      }
    }

    const std::int64_t in_plane = g.big_spatial();
    const float* src_group = src + (n * g.big_channels + grp * cin_) * in_plane;
    std::vector<const float*> input_rows(static_cast<std::size_t>(std::max(kRowChunk, kernel_rows_)));
    std::vector<std::int64_t> weight_rows(input_rows.size());
    // A few kernel rows (of one input channel, or of a few when a kernel
    // has few rows) at a time: every tile of the item then reads the same few
    // kilobytes of weights and input rows from L1. The sums keep their order:
    // channels, then kernel rows.
    const std::int64_t rows_per_pass = std::min(kernel_rows_, kRowChunk);
    const std::int64_t channels_per_pass = std::max<std::int64_t>(1, kRowChunk / kernel_rows_);
    for (std::int64_t c0 = 0; c0 < cin_; c0 += channels_per_pass) {
      const std::int64_t c1 = std::min(cin_, c0 + channels_per_pass);
      for (std::int64_t kr0 = 0; kr0 < kernel_rows_; kr0 += rows_per_pass) {
        const std::int64_t kr1 = std::min(kernel_rows_, kr0 + rows_per_pass);
        for (std::int64_t row = row0; row < row1; ++row) {
          // The pass's kernel rows inside the input for output row (oz, oy).
          const std::int64_t oz = row / g.small_size[1], oy = row % g.small_size[1];
          std::int64_t rows = 0;
          for (std::int64_t c = c0; c < c1; ++c)
            for (std::int64_t kr = kr0; kr < kr1; ++kr) {
              const std::int64_t iz = oz * g.stride[0] - g.pad_begin[0] + kr / g.kernel[1] * g.dilation[0];
              const std::int64_t iy = oy * g.stride[1] - g.pad_begin[1] + kr % g.kernel[1] * g.dilation[1];
              if (iz < 0 || iz >= g.big_size[0] || iy < 0 || iy >= g.big_size[1]) continue;
              input_rows[static_cast<std::size_t>(rows)] = src_group + c * in_plane + (iz * g.big_size[1] + iy) * in_w;
              weight_rows[static_cast<std::size_t>(rows)] = (c * kernel_rows_ + kr) * kv_ * kTileChannels * kLanes;
              ++rows;
            }
          if (rows == 0) continue;
          for (std::int64_t block = block0; block < block1; ++block) {
            const int mr = static_cast<int>(std::min<std::int64_t>(kTileChannels, cout_ - block * kTileChannels));
            for (std::int64_t ox = 0; ox < out_w; ox += kTilePositions) {
              const int nr = static_cast<int>(std::min<std::int64_t>(kTilePositions, out_w - ox));
              const TileOperands t{input_rows.data(), weight_rows.data(), rows, kv_, col.data() + ox,
                                   masks.data() + ox * kv_, packed_.data() + weights_of(grp, block, 0)};
              kTiles[static_cast<std::size_t>(mr - 1)][static_cast<std::size_t>(nr - 1)](
                  t, sums + ((block * kTileChannels - m0) * channel_stride + (row - row0) * out_w + ox) * kLanes, channel_stride);
            }
          }
        }
      }
    }

    const std::int64_t out_plane = g.small_spatial();
    float* dst_group = dst + (n * g.small_channels + grp * cout_) * out_plane;
    for (std::int64_t m = m0; m < m1; ++m) {
      const float bias = bias_[static_cast<std::size_t>(grp * cout_ + m)];
      for (std::int64_t p = 0; p < positions; ++p) {
        dst_group[m * out_plane + row0 * out_w + p] = lane_sum(sums + ((m - m0) * channel_stride + p) * kLanes) + bias;
      }
    }
  }

  std::int64_t groups_, cin_, cout_, blocks_, kernel_rows_, kv_;
  std::vector<float> packed_, bias_;
};
