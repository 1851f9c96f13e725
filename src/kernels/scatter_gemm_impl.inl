// Scatter-GEMM family over an ISA traits type `Isa` (simd::Avx512 or
// simd::Avx2 plus the micro-kernels' limits: kMaxAccumulators, kMaxRows,
// rows_for), included inside a namespace of scatter_gemm_avx512.cpp and
// scatter_gemm_avx2.cpp under that ISA's target region.
//
// Transposed convolutions with few output channels per group (dcgan_64_3's
// 64 -> 3), where the phase GEMMs would have
// a handful of rows. It computes the scatter of the definition as a GEMM and
// an addition: every input position times every kernel tap, then each product
// added into the output position the tap reaches.
//
// Math. For input row (iz, iy) and kernel row (tz, ty) (a "slab"), output row
// (oz, oy) = (iz*sz - pz + tz*dz, iy*sy - py + ty*dy), and per input column ix
//     P[(co, tx), ix] = sum_c w[c, co, (tz, ty, tx)] * src[c, iz, iy, ix]   (c, co within the group)
//     dst[co, oz, oy, ix*sx - px + tx*dx] += P[(co, tx), ix]                 (when inside the output)
// after dst was set to the bias. P is one GEMM per (input row, slab, chunk of
// NR input columns): rows (co, tx) with tx fastest, K = input channels, and
// every product is of an input element, so nothing is multiplied by padding.
// Order: each output element starts from its bias and receives its terms by
// input row, then chunk, then tx, ascending (per term one FMA chain over c from
// zero). Both layouts keep that order, so they give the same bits.
// Channels-first: P comes from the phase-GEMM direct micro-kernel, A = the
//   slab's weights packed once as blocks of mr rows [K][mr], B = the chunk's
//   input columns read in place (copying them to a [K][NR] panel first cost
//   dcgan_64_3 7% on the Zen 4: 0.586 -> 0.546 ms on 1 thread, 0.296 -> 0.275
//   on 2); stride-2 rows add as interleaved pairs (tx, tx+1).
// Channels-last: P^T comes from the igemm micro-kernel (input positions as rows,
//   weights packed [K][NR'] per slab), then is added position by position.
// Threads own bands of output rows; an input row that feeds two bands is
// multiplied in both, so no two threads add into one element.

using V = Isa::V;

namespace pg {
#include "kernels/phase_gemm_microkernels.inl"
}  // namespace pg
namespace ig {
#include "kernels/igemm_microkernels.inl"
}  // namespace ig

class ScatterGemmKernel final : public PreparedKernel {
 public:
  ScatterGemmKernel(const Geometry& g, const float* weight, const float* bias) {
    groups_ = g.groups;
    cin_ = g.small_per_group();
    cout_ = g.big_per_group();
    kx_ = g.kernel[2];
    slabs_ = g.kernel[0] * g.kernel[1];
    rows_ = cout_ * kx_;
    mr_ = static_cast<int>(std::min<std::int64_t>(rows_, Isa::kMaxAccumulators));
    blocks_ = (rows_ + mr_ - 1) / mr_;
    // Tile width: accumulators, B vectors and a broadcast within the ISA's registers.
    nv_ = std::clamp((Isa::kRegisters - 1) / (mr_ + 1), 1, std::min(4, Isa::kMaxAccumulators / mr_));
    nr_ = static_cast<std::int64_t>(nv_) * Isa::kLanes;
    nv_last_ = static_cast<int>(std::min<std::int64_t>((rows_ + Isa::kLanes - 1) / Isa::kLanes, kMaxLastVectors));
    nr_last_ = static_cast<std::int64_t>(nv_last_) * Isa::kLanes;
    const std::int64_t taps = g.kernel_taps();
    auto w_at = [&](std::int64_t grp, std::int64_t c, std::int64_t row, std::int64_t slab) {
      const std::int64_t co = row / kx_, tx = row % kx_;
      return weight[((grp * cin_ + c) * cout_ + co) * taps + slab * kx_ + tx];
    };
    // Channels-first A: [group][slab][block][K][mr]; channels-last W: [group][slab][K][nr_last].
    a_.assign(static_cast<std::size_t>(groups_ * slabs_ * blocks_ * cin_ * mr_), 0.0f);
    w_last_.assign(static_cast<std::size_t>(groups_ * slabs_ * cin_ * nr_last_), 0.0f);
    for (std::int64_t grp = 0; grp < groups_; ++grp)
      for (std::int64_t slab = 0; slab < slabs_; ++slab)
        for (std::int64_t c = 0; c < cin_; ++c)
          for (std::int64_t row = 0; row < rows_; ++row) {
            const float w = w_at(grp, c, row, slab);
            const std::int64_t block = row / mr_;
            a_[static_cast<std::size_t>((((grp * slabs_ + slab) * blocks_ + block) * cin_ + c) * mr_ + row % mr_)] = w;
            w_last_[static_cast<std::size_t>(((grp * slabs_ + slab) * cin_ + c) * nr_last_ + row)] = w;
          }
    bias_.assign(static_cast<std::size_t>(groups_ * cout_), 0.0f);
    if (bias) std::copy(bias, bias + groups_ * cout_, bias_.begin());
    zeros_.assign(static_cast<std::size_t>(nr_last_), 0.0f);
  }

  std::size_t workspace_bytes(const Geometry&, int threads) const override {
    return per_thread_workspace_bytes(scratch_floats() * sizeof(float), threads);
  }

  void run(const Geometry& g, const void* src_v, void* dst_v, void* workspace, int threads) const override {
    const auto* src = static_cast<const float*>(src_v);
    auto* dst = static_cast<float*>(dst_v);
    const std::int64_t out_rows = g.big_size[0] * g.big_size[1];
    const std::int64_t per_sample = g.batch * groups_;
    const std::int64_t bands_wanted = std::max<std::int64_t>(1, kItemsPerThread * threads / std::max<std::int64_t>(1, per_sample));
    const std::int64_t band = std::max<std::int64_t>(1, (out_rows + bands_wanted - 1) / bands_wanted);
    const std::int64_t bands = (out_rows + band - 1) / band;
    const std::int64_t items = per_sample * bands;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (std::int64_t item = 0; item < items; ++item) {
      float* scratch = thread_slot<float>(workspace, scratch_floats() * sizeof(float), omp_get_thread_num());
      run_band(g, src, dst, item / bands, item % bands * band, std::min(out_rows, (item % bands + 1) * band), scratch);
    }
  }

 private:
  // Per thread: P^T [nr][nr_last] (channels-last) or the tile [mr][nr] (channels-first).
  std::size_t scratch_floats() const {
    return static_cast<std::size_t>(std::max(nr_ * nr_last_, Isa::kMaxAccumulators * nr_));
  }

  // One sample and group (`unit` = n * groups + group), output rows [first, end) (flattened (oz, oy)).
  void run_band(const Geometry& g, const float* src, float* dst, std::int64_t unit, std::int64_t first,
                std::int64_t end, float* scratch) const {
    const bool last = g.layout == Layout::channels_last;
    const std::int64_t n = unit / groups_, grp = unit % groups_;
    const std::int64_t out_w = g.big_size[2], in_w = g.small_size[2];
    const std::int64_t in_plane = g.small_spatial(), out_plane = g.big_spatial();
    const std::int64_t in_channels = cin_ * groups_, out_channels = cout_ * groups_;
    // Element steps: channel and position, for src and dst.
    const std::int64_t src_c = last ? 1 : in_plane, src_p = last ? in_channels : 1;
    const std::int64_t dst_c = last ? 1 : out_plane, dst_p = last ? out_channels : 1;
    const float* in = src + n * in_channels * in_plane + grp * cin_ * src_c;
    float* out = dst + n * out_channels * out_plane + grp * cout_ * dst_c;
    const float* bias = bias_.data() + grp * cout_;
    if (last) {
      for (std::int64_t row = first; row < end; ++row)
        for (std::int64_t ox = 0; ox < out_w; ++ox) std::copy_n(bias, cout_, out + (row * out_w + ox) * dst_p);
    } else {
      for (std::int64_t co = 0; co < cout_; ++co) std::fill_n(out + co * dst_c + first * out_w, (end - first) * out_w, bias[co]);
    }
    // The output row of the band that slab `slab` of input row (iz, iy) reaches, or -1.
    const auto out_row_of = [&](std::int64_t iz, std::int64_t iy, std::int64_t slab) -> std::int64_t {
      const std::int64_t oz = iz * g.stride[0] - g.pad_begin[0] + slab / g.kernel[1] * g.dilation[0];
      const std::int64_t oy = iy * g.stride[1] - g.pad_begin[1] + slab % g.kernel[1] * g.dilation[1];
      if (oz < 0 || oz >= g.big_size[0] || oy < 0 || oy >= g.big_size[1]) return -1;
      const std::int64_t out_row = oz * g.big_size[1] + oy;
      return out_row >= first && out_row < end ? out_row : -1;
    };
    for (std::int64_t in_row = 0; in_row < g.small_size[0] * g.small_size[1]; ++in_row) {
      const std::int64_t iz = in_row / g.small_size[1], iy = in_row % g.small_size[1];
      const float* row_start = in + in_row * in_w * src_p;
      for (std::int64_t x0 = 0; x0 < in_w; x0 += nr_) {
        const std::int64_t columns = std::min(nr_, in_w - x0);
        for (std::int64_t slab = 0; slab < slabs_; ++slab) {
          const std::int64_t out_row = out_row_of(iz, iy, slab);
          if (out_row < 0) continue;
          float* out_line = out + out_row * out_w * dst_p;
          if (last) {
            add_channels_last(g, grp, slab, row_start + x0 * src_p, src_p, columns, x0, out_line, dst_p, scratch);
          } else {
            add_channels_first(g, grp, slab, row_start, columns, x0, out_line, dst_c, scratch);
          }
        }
      }
    }
  }

  // P for one slab and chunk from the micro-kernel, added into the output line (tx ascending per element).
  void add_channels_first(const Geometry& g, std::int64_t grp, std::int64_t slab, const float* in_row, std::int64_t columns,
                          std::int64_t x0, float* out_line, std::int64_t dst_c, float* tile) const {
    // B's row c is input channel c's columns [x0, x0 + columns), read in place (zeros past them).
    pg::Load runs[4 * Isa::kLanes];
    for (int v = 0; v < nv_; ++v)
      runs[v * Isa::kLanes] = {x0 + v * Isa::kLanes, static_cast<std::uint32_t>(Isa::first_lanes(columns - v * Isa::kLanes))};
    const std::int64_t out_w = g.big_size[2], sx = g.stride[2], dx = g.dilation[2], px = g.pad_begin[2];
    for (std::int64_t block = 0; block < blocks_; ++block) {
      const int rows = static_cast<int>(std::min<std::int64_t>(mr_, rows_ - block * mr_));
      const float* a = a_.data() + ((grp * slabs_ + slab) * blocks_ + block) * cin_ * mr_;
      pg::direct_micro_kernel_for<Isa>(rows, nv_)(cin_, 1, a, mr_, in_row, g.small_spatial(), runs, 0, tile);
      for (int r = 0; r < rows; ++r) {
        const std::int64_t row = block * mr_ + r, co = row / kx_, tx = row % kx_;
        float* line = out_line + co * dst_c;
        const float* values = tile + r * nr_;
        // Output column of input column x0 + j: x0*sx - px + tx*dx + j*sx.
        const std::int64_t base = x0 * sx - px + tx * dx;
        const bool pair = sx == 2 && dx == 1 && tx % 2 == 0 && tx + 1 < kx_ && r + 1 < rows;
        if (pair) {
          // Rows tx and tx+1 interleave into consecutive outputs base, base+1, ...
          const float* next = values + nr_;
          for (int v = 0; v < nv_; ++v) {
            const std::int64_t start = base + 2 * v * Isa::kLanes;
            const std::int64_t count = std::min<std::int64_t>(2 * Isa::kLanes, 2 * (columns - v * Isa::kLanes));
            if (count <= 0) break;
            add_interleaved(line, start, count, out_w, Isa::load(values + v * Isa::kLanes),
                            Isa::load(next + v * Isa::kLanes));
          }
          ++r;
          continue;
        }
        for (std::int64_t j = 0; j < columns; ++j) {
          const std::int64_t ox = base + j * sx;
          if (ox >= 0 && ox < out_w) line[ox] += values[j];
        }
      }
    }
  }

  // line[start + l] += (l even: even[l/2], odd: odd[l/2]) for l < count, within [0, out_w).
  static void add_interleaved(float* line, std::int64_t start, std::int64_t count, std::int64_t out_w, V even, V odd) {
    V halves[2];
    Isa::interleave(even, odd, halves[0], halves[1]);
    for (int h = 0; h < 2; ++h) {
      const std::int64_t first = start + h * Isa::kLanes;
      // Lanes l with l < count - h * L and 0 <= first + l < out_w.
      const std::int64_t lo = std::max<std::int64_t>(0, -first);
      const std::int64_t hi = std::min<std::int64_t>({Isa::kLanes, count - h * Isa::kLanes, out_w - first});
      if (lo >= hi) continue;
      const std::uint32_t lanes = ((1u << hi) - 1) & ~((1u << lo) - 1);
      float* at = line + first;
      Isa::masked_store(at, lanes, Isa::add(Isa::load_lanes(lanes, at), halves[h]));
    }
  }

  // P^T for one slab and chunk (input positions as rows), added position by position (tx ascending per element).
  void add_channels_last(const Geometry& g, std::int64_t grp, std::int64_t slab, const float* in, std::int64_t src_p,
                         std::int64_t columns, std::int64_t x0, float* out_line, std::int64_t dst_p,
                         float* scratch) const {
    float* product = scratch;  // [nr][nr_last]
    const float* w = w_last_.data() + (grp * slabs_ + slab) * cin_ * nr_last_;
    for (std::int64_t j0 = 0; j0 < columns; j0 += Isa::rows_for(nv_last_)) {
      const int rows = static_cast<int>(std::min<std::int64_t>(Isa::rows_for(nv_last_), columns - j0));
      const float* table[Isa::kMaxRows];
      float* products[Isa::kMaxRows];
      for (int r = 0; r < rows; ++r) {
        table[r] = in + (j0 + r) * src_p;
        products[r] = product + (j0 + r) * nr_last_;
      }
      ig::micro_kernel_for<Isa>(rows, nv_last_, std::make_index_sequence<kMaxLastVectors>())(1, cin_, table, &w, zeros_.data(),
                                                                                products, rows_);
    }
    const std::int64_t out_w = g.big_size[2], sx = g.stride[2], dx = g.dilation[2], px = g.pad_begin[2];
    for (std::int64_t tx = 0; tx < kx_; ++tx)
      for (std::int64_t j = 0; j < columns; ++j) {
        const std::int64_t ox = (x0 + j) * sx - px + tx * dx;
        if (ox < 0 || ox >= out_w) continue;
        float* at = out_line + ox * dst_p;
        const float* p = product + j * nr_last_ + tx;
        for (std::int64_t co = 0; co < cout_; ++co) at[co] += p[co * kx_];
      }
  }

  std::int64_t groups_ = 1, cin_ = 0, cout_ = 0, kx_ = 1, slabs_ = 1, rows_ = 0, blocks_ = 1;
  int mr_ = 1, nv_ = 1, nv_last_ = 1;
  std::int64_t nr_ = Isa::kLanes, nr_last_ = Isa::kLanes;
  std::vector<float> a_, w_last_, bias_, zeros_;
};
