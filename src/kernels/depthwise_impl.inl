// Depthwise transposed convolution over an ISA traits type `Isa` (simd::Avx512
// or simd::Avx2 plus Mask, mask and masked_fma: lanes outside the input left
// out of the sum exactly, not multiplied by zero), included inside a namespace
// of depthwise_avx512.cpp and depthwise_avx2.cpp under that ISA's target
// region. Float32, one input and one
// output channel per group, so every channel is an independent 2-D problem
// that is memory-bound; the kernel touches each input and output element once
// per tap from L1 and writes each output element exactly once.
//
// Math (conv_geometry.hpp, per channel): out[o] = bias + sum over taps t with
// o = i*stride - pad + t*dilation of w[t] * in[i]. Along x the output splits
// into stride phases r = o mod stride: phase position j is output r + stride*j
// and reads input j + offset(tx) for the taps tx of that phase, so each
// vector of one phase is one masked load per tap. Phases are then
// interleaved into contiguous output rows (stride 1: stored as is; stride 2:
// two permutes; larger strides: element stores). Lanes outside the input are
// left out of the sum (masked FMA), so a non-finite weight never meets a
// padding zero that PyTorch would not have multiplied.
// Layouts: channels-first src [N*C][D][H][W], dst [N*C][D'][H'][W'], weights
// as given [C][1][taps]; channels-last src [N][D][H][W][C], dst [N][D'][H'][W'][C],
// where a vector holds L (Isa::kLanes) channels of one position and the weights are kept
// tap-major [taps][C]. Both sum each output in the same order (bias, then the
// x taps of its phase, each over the (z, y) source rows), so they give the same bits.

constexpr int kLanes = Isa::kLanes;
constexpr int kRowVectors = 4;  // channels-first: vectors of one phase summed side by side
using V = Isa::V;

// The x taps feeding one output phase, with their input offsets.
struct PhaseTaps {
  std::vector<std::int64_t> taps, offsets;
};

class DepthwiseKernel final : public PreparedKernel {
 public:
  DepthwiseKernel(const Geometry& g, const float* weight, const float* bias)
      : weight_(weight, weight + g.small_channels * g.kernel_taps()), bias_(static_cast<std::size_t>(g.big_channels), 0.0f) {
    if (bias) std::copy(bias, bias + g.big_channels, bias_.begin());
    const std::int64_t taps = g.kernel_taps(), channels = g.big_channels;
    weight_by_tap_.resize(static_cast<std::size_t>(taps * channels));
    for (std::int64_t c = 0; c < channels; ++c)
      for (std::int64_t t = 0; t < taps; ++t) weight_by_tap_[static_cast<std::size_t>(t * channels + c)] = weight[c * taps + t];
    for (std::int64_t r = 0; r < g.stride[2]; ++r) {
      PhaseTaps phase;
      for (std::int64_t t = 0; t < g.kernel[2]; ++t) {
        const std::int64_t shifted = r + g.pad_begin[2] - t * g.dilation[2];
        if (((shifted % g.stride[2]) + g.stride[2]) % g.stride[2] != 0) continue;
        phase.taps.push_back(t);
        phase.offsets.push_back(shifted / g.stride[2]);
      }
      x_phases_.push_back(std::move(phase));
    }
  }

  std::size_t workspace_bytes(const Geometry&, int) const override { return 0; }

  void run(const Geometry& g, const void* src_v, void* dst_v, void*, int threads) const override {
    const auto* src = static_cast<const float*>(src_v);
    auto* dst = static_cast<float*>(dst_v);
    if (g.layout == Layout::channels_last) {
      run_channels_last(g, src, dst, threads);
      return;
    }
    // The source rows of every output row, the same in every plane: worked out
    // once (each takes integer divisions, which cost as much as the row's FMAs).
    std::vector<SourceRow> rows;
    std::vector<std::size_t> first_row{0};
    for (std::int64_t oz = 0; oz < g.big_size[0]; ++oz)
      for (std::int64_t oy = 0; oy < g.big_size[1]; ++oy) {
        append_source_rows(g, oz, oy, rows);
        first_row.push_back(rows.size());
      }
    const std::int64_t planes = g.batch * g.big_channels;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (std::int64_t plane = 0; plane < planes; ++plane) {
      const std::int64_t channel = plane % g.big_channels;
      run_plane(g, src + plane * g.small_spatial(), dst + plane * g.big_spatial(),
                weight_.data() + channel * g.kernel_taps(), bias_[static_cast<std::size_t>(channel)], rows, first_row);
    }
  }

 private:
  // The input rows (z, y) feeding output row (oz, oy), with their kernel row index.
  struct SourceRow {
    std::int64_t offset, kernel_row;
  };

  // rows[first_row[i] .. first_row[i + 1]): the source rows of output row i (oz * rows + oy).
  void run_plane(const Geometry& g, const float* in, float* out, const float* w, float bias,
                 const std::vector<SourceRow>& rows, const std::vector<std::size_t>& first_row) const {
    const std::int64_t out_w = g.big_size[2], stride_x = g.stride[2];
    const std::int64_t phase_width = (out_w + stride_x - 1) / stride_x;
    // Vectors of one phase summed side by side: each output's sum is a chain of
    // dependent FMAs, and one vector at a time left the core waiting on it.
    const auto row_runner = phase_width <= kLanes ? &DepthwiseKernel::run_row<1>
                            : phase_width <= 2 * kLanes ? &DepthwiseKernel::run_row<2>
                                                        : &DepthwiseKernel::run_row<kRowVectors>;
    for (std::int64_t row = 0; row < g.big_size[0] * g.big_size[1]; ++row) {
      (this->*row_runner)(g, in, w, rows.data() + first_row[static_cast<std::size_t>(row)],
                          rows.data() + first_row[static_cast<std::size_t>(row) + 1], bias, out + row * out_w);
    }
  }

  // One output row, kVectors vectors of every phase at a time.
  template <int kVectors>
  void run_row(const Geometry& g, const float* in, const float* w, const SourceRow* rows, const SourceRow* rows_end,
               float bias, float* out_row) const {
    const std::int64_t out_w = g.big_size[2], stride_x = g.stride[2];
    const std::int64_t phase_width = (out_w + stride_x - 1) / stride_x;
    for (std::int64_t j0 = 0; j0 < phase_width; j0 += kVectors * kLanes) {
      V even[kVectors] = {};  // stride 2: phase 0's sums, to interleave with phase 1's
      for (std::int64_t r = 0; r < stride_x; ++r) {
        V sum[kVectors];
        phase_sums<kVectors>(g, in, w, rows, rows_end, x_phases_[static_cast<std::size_t>(r)], j0, bias, sum);
        TCONV_UNROLL_TILE
        for (int v = 0; v < kVectors; ++v) {
          const std::int64_t j = j0 + v * kLanes;
          if (stride_x == 2) {
            // Phase 0 holds the even outputs, phase 1 the odd ones.
            if (r == 0) {
              even[v] = sum[v];
            } else if (2 * j < out_w) {
              Isa::store_interleaved(out_row + 2 * j, even[v], sum[v],
                                     static_cast<int>(std::min<std::int64_t>(out_w - 2 * j, 2 * kLanes)));
            }
            continue;
          }
          const std::int64_t valid = std::min<std::int64_t>(kLanes, (out_w - r + stride_x - 1) / stride_x - j);
          if (valid <= 0) continue;
          if (stride_x == 1) {
            Isa::masked_store(out_row + j, static_cast<std::uint32_t>(Isa::first_lanes(valid)), sum[v]);
          } else {
            alignas(64) float lanes[kLanes];
            Isa::store(lanes, sum[v]);
            for (std::int64_t l = 0; l < valid; ++l) out_row[r + stride_x * (j + l)] = lanes[l];
          }
        }
      }
    }
  }

  // The (z, y) source rows of output row (oz, oy), in the order the sums take them.
  static void source_rows(const Geometry& g, std::int64_t oz, std::int64_t oy, std::vector<SourceRow>& rows) {
    rows.clear();
    append_source_rows(g, oz, oy, rows);
  }
  static void append_source_rows(const Geometry& g, std::int64_t oz, std::int64_t oy, std::vector<SourceRow>& rows) {
    for (std::int64_t tz = 0; tz < g.kernel[0]; ++tz) {
      const std::int64_t iz = source_index(oz, tz, 0, g);
      if (iz < 0) continue;
      for (std::int64_t ty = 0; ty < g.kernel[1]; ++ty) {
        const std::int64_t iy = source_index(oy, ty, 1, g);
        if (iy >= 0) rows.push_back({(iz * g.small_size[1] + iy) * g.small_size[2], tz * g.kernel[1] + ty});
      }
    }
  }

  // Channels-last: one thread per output row (n, oz, oy); per position, vectors of L channels.
  void run_channels_last(const Geometry& g, const float* src, float* dst, int threads) const {
    const std::int64_t out_rows = g.batch * g.big_size[0] * g.big_size[1];
#pragma omp parallel num_threads(threads)
    {
      std::vector<SourceRow> rows;
#pragma omp for schedule(static)
      for (std::int64_t row = 0; row < out_rows; ++row) run_channels_last_row(g, src, dst, row, rows);
    }
  }

  // One output row of run_channels_last. A function of its own because Clang compiles the body of an
  // `omp parallel` region as a function outside the ISA region (see kernels/isa_target.hpp).
  void run_channels_last_row(const Geometry& g, const float* src, float* dst, std::int64_t row,
                             std::vector<SourceRow>& rows) const {
    const std::int64_t channels = g.big_channels, out_w = g.big_size[2], in_w = g.small_size[2];
    const std::int64_t n = row / (g.big_size[0] * g.big_size[1]);
    const std::int64_t oz = row / g.big_size[1] % g.big_size[0], oy = row % g.big_size[1];
    source_rows(g, oz, oy, rows);
    const float* in = src + n * g.small_spatial() * channels;
    float* out = dst + row * out_w * channels;
    for (std::int64_t ox = 0; ox < out_w; ++ox) {
      const PhaseTaps& phase = x_phases_[static_cast<std::size_t>(ox % g.stride[2])];
      const std::int64_t j = ox / g.stride[2];
      for (std::int64_t c = 0; c < channels; c += kLanes) {
        const auto lanes = static_cast<std::uint32_t>(Isa::first_lanes(channels - c));
        V acc = Isa::load_lanes(lanes, bias_.data() + c);
        for (std::size_t e = 0; e < phase.taps.size(); ++e) {
          const std::int64_t ix = j + phase.offsets[e];
          if (ix < 0 || ix >= in_w) continue;
          for (const SourceRow& source : rows) {
            const V x = Isa::load_lanes(lanes, in + (source.offset + ix) * channels + c);
            const float* w = weight_by_tap_.data() + (source.kernel_row * g.kernel[2] + phase.taps[e]) * channels + c;
            acc = Isa::fmadd(Isa::load_lanes(lanes, w), x, acc);
          }
        }
        Isa::masked_store(out + ox * channels + c, lanes, acc);
      }
    }
  }

  // The input index that reaches output `o` through tap `t` along dimension d, or -1.
  static std::int64_t source_index(std::int64_t o, std::int64_t t, int d, const Geometry& g) {
    const std::int64_t shifted = o + g.pad_begin[d] - t * g.dilation[d];
    if (shifted < 0 || shifted % g.stride[d] != 0) return -1;
    const std::int64_t i = shifted / g.stride[d];
    return i < g.small_size[d] ? i : -1;
  }

  // bias + sum of w * in over the phase's taps for phase positions j0 + L v .. j0 + L v + L - 1, into sum[v].
  template <int kVectors>
  static void phase_sums(const Geometry& g, const float* in, const float* w, const SourceRow* rows,
                         const SourceRow* rows_end, const PhaseTaps& phase, std::int64_t j0, float bias,
                         V (&sum)[kVectors]) {
    const std::int64_t in_w = g.small_size[2];
    TCONV_UNROLL_TILE
    for (int v = 0; v < kVectors; ++v) sum[v] = Isa::set1(bias);
    for (std::size_t e = 0; e < phase.taps.size(); ++e) {
      // Lanes whose input column j0 + L v + lane + offset lies in [0, in_w).
      std::uint32_t lanes[kVectors];
      typename Isa::Mask inside[kVectors];
      const std::int64_t first = j0 + phase.offsets[e];
      TCONV_UNROLL_TILE
      for (int v = 0; v < kVectors; ++v) {
        const std::int64_t column = first + v * kLanes;
        lanes[v] = static_cast<std::uint32_t>(Isa::first_lanes(in_w - column) & ~Isa::first_lanes(-column));
        inside[v] = Isa::mask(lanes[v]);
      }
      for (const SourceRow* row = rows; row != rows_end; ++row) {
        const V wv = Isa::set1(w[row->kernel_row * g.kernel[2] + phase.taps[e]]);
        const float* at = in + row->offset + first;
        TCONV_UNROLL_TILE
        for (int v = 0; v < kVectors; ++v) sum[v] = Isa::masked_fma(wv, inside[v], lanes[v], at + v * kLanes, sum[v]);
      }
    }
  }

  std::vector<float> weight_;
  std::vector<float> weight_by_tap_;  // [taps][C], for channels-last
  std::vector<float> bias_;
  std::vector<PhaseTaps> x_phases_;
};
