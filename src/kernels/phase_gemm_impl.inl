// Phase-GEMM run loop and micro-kernels, written once over an ISA traits type.
// Included inside an anonymous namespace by each phase_gemm_<isa>.cpp, under
// that ISA's target pragma, so every instantiation is private to its file.
// The traits provide: V, kLanes, kMaxMr, kMaxAccumulators, zero, load, store,
// broadcast, fmadd, masked_load(into, lane bits, pointer).

using MicroKernel = void (*)(std::int64_t k_count, const float* a, const float* b, float* c);

// acc[m][v] = sum_k A[k*kMaxMr + m] * B[k*NR + v*lanes ...]; stored to c[m*NR + ...].
template <class Isa, int MR, int NV>
void micro_kernel(std::int64_t k_count, const float* a, const float* b, float* c) {
  using V = typename Isa::V;
  constexpr int kNr = NV * Isa::kLanes;
  V acc[MR][NV];
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) acc[m][v] = Isa::zero();
  for (std::int64_t k = 0; k < k_count; ++k) {
    V bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = Isa::load(b + k * kNr + v * Isa::kLanes);
    for (int m = 0; m < MR; ++m) {
      const V av = Isa::broadcast(a + k * Isa::kMaxMr + m);
      for (int v = 0; v < NV; ++v) acc[m][v] = Isa::fmadd(av, bv[v], acc[m][v]);
    }
  }
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) Isa::store(c + m * kNr + v * Isa::kLanes, acc[m][v]);
}

template <class Isa, int NV, std::size_t... Rows>
constexpr std::array<MicroKernel, sizeof...(Rows)> micro_kernels_for(std::index_sequence<Rows...>) {
  return {&micro_kernel<Isa, static_cast<int>(Rows) + 1, NV>...};
}

// micro_kernel_for(rows, nv): the instantiation for a block of `rows` output channels.
template <class Isa>
MicroKernel micro_kernel_for(int rows, int nv) {
  static constexpr auto two = micro_kernels_for<Isa, 2>(std::make_index_sequence<Isa::kMaxAccumulators / 2>());
  static constexpr auto four = micro_kernels_for<Isa, 4>(std::make_index_sequence<Isa::kMaxAccumulators / 4>());
  return nv == 4 ? four[static_cast<std::size_t>(rows - 1)] : two[static_cast<std::size_t>(rows - 1)];
}

// B panels aim to stay in L2 next to the streaming A panel.
constexpr std::int64_t kPanelBudgetBytes = 192 * 1024;
constexpr std::int64_t kMaxSubPanels = 8;

template <class Isa>
class PhaseGemmKernel final : public PreparedKernel {
 public:
  PhaseGemmKernel(const Geometry& g, const float* weight, const float* bias)
      : pp_(pack(g, weight, bias, Isa::kMaxMr, Isa::kMaxAccumulators)) {
    for (const auto& phase : pp_.phases) max_k_ = std::max(max_k_, pp_.k_of(phase));
  }

  std::size_t workspace_bytes(const Geometry& g, int threads) const override {
    return static_cast<std::size_t>(threads) * static_cast<std::size_t>(scratch_floats(blocking(g, threads).sub_panels)) *
           sizeof(float);
  }

  // Work items are (group, block of grid columns); each runs every phase of its
  // block, so the output lines a block touches are finished while in cache.
  void run(const Geometry& g, const void* src_v, void* dst_v, void* workspace, int threads) const override {
    const auto* src = static_cast<const float*>(src_v);
    auto* dst = static_cast<float*>(dst_v);
    const Blocking b = blocking(g, threads);
    const std::int64_t block = b.sub_panels * nr();
    const std::int64_t blocks = (b.columns + block - 1) / block;
    const std::int64_t per_thread = scratch_floats(b.sub_panels);
    const std::int64_t count = pp_.groups * blocks;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (std::int64_t it = 0; it < count; ++it) {
      float* scratch = static_cast<float*>(workspace) + omp_get_thread_num() * per_thread;
      const std::int64_t first = (it % blocks) * block;
      const WorkItem item{it / blocks, first, std::min(block, b.columns - first)};
      for (const Phase& phase : pp_.phases) process(g, b.grid, phase, item, src, dst, scratch);
    }
  }

 private:
  struct WorkItem {
    std::int64_t group, first_column, columns;
  };
  // One run of lanes that reads consecutive input elements: lane l reads plane[base + l].
  struct Load {
    std::int64_t base;
    std::uint32_t lanes;
  };
  // Columns index the grid batch x grid[0] x grid[1] x grid[2], the largest
  // phase's positions; a smaller phase leaves its last columns unused.
  struct Blocking {
    Dims grid;
    std::int64_t columns;
    std::int64_t sub_panels;
  };

  std::int64_t nr() const { return static_cast<std::int64_t>(pp_.nv) * Isa::kLanes; }
  std::int64_t scratch_floats(std::int64_t sub_panels) const {
    return sub_panels * std::max<std::int64_t>(max_k_, 1) * nr() + static_cast<std::int64_t>(Isa::kMaxMr) * nr();
  }

  Blocking blocking(const Geometry& g, int threads) const {
    Blocking b{};
    b.columns = g.batch;
    for (int d = 0; d < kMaxSpatial; ++d) {
      b.grid[d] = pp_.kind == ConvKind::conv ? g.small_size[d] : (g.big_size[d] + g.stride[d] - 1) / g.stride[d];
      b.columns *= b.grid[d];
    }
    const std::int64_t bytes_per_sub = std::max<std::int64_t>(max_k_, 1) * nr() * static_cast<std::int64_t>(sizeof(float));
    b.sub_panels = std::clamp<std::int64_t>(kPanelBudgetBytes / bytes_per_sub, 1, kMaxSubPanels);
    // Keep at least two items per thread so both cores stay busy at batch 1.
    while (b.sub_panels > 1 && pp_.groups * ((b.columns + b.sub_panels * nr() - 1) / (b.sub_panels * nr())) < 2 * threads) {
      --b.sub_panels;
    }
    return b;
  }

  void process(const Geometry& g, const Dims& grid, const Phase& phase, const WorkItem& item, const float* src,
               float* dst, float* scratch) const {
    const auto axes = axes_of(g, phase);
    const bool transposed = pp_.kind == ConvKind::conv_transpose;
    const Dims& in_size = transposed ? g.small_size : g.big_size;
    const Dims& out_size = transposed ? g.big_size : g.small_size;
    const std::int64_t in_plane = in_size[0] * in_size[1] * in_size[2];
    const std::int64_t out_plane = out_size[0] * out_size[1] * out_size[2];
    const std::int64_t in_channels = pp_.c_per_group * pp_.groups, out_channels = pp_.m_per_group * pp_.groups;
    const auto n_taps = static_cast<std::int64_t>(phase.taps.size());
    const std::int64_t k_count = pp_.k_of(phase);
    const std::int64_t nr_ = nr();
    const std::int64_t subs = (item.columns + nr_ - 1) / nr_;
    const std::int64_t vectors = subs * pp_.nv;

    // Where each column lands in dst (channel 0 of the group) and reads src per tap; -1: nowhere.
    std::vector<std::int64_t> out_offset(static_cast<std::size_t>(subs * nr_), -1);
    std::vector<std::int64_t> in_offset(static_cast<std::size_t>(subs * nr_ * n_taps), -1);
    for (std::int64_t col = 0; col < item.columns; ++col) {
      std::int64_t rest = item.first_column + col;
      std::int64_t j[kMaxSpatial];
      bool in_phase = true;
      for (int d = kMaxSpatial - 1; d >= 0; --d) {
        j[d] = rest % grid[d];
        rest /= grid[d];
        in_phase = in_phase && j[d] < axes[d].out_count;
      }
      if (!in_phase) continue;
      const std::int64_t n = rest;
      std::int64_t out_pos = 0;
      for (int d = 0; d < kMaxSpatial; ++d) out_pos = out_pos * out_size[d] + axes[d].out_start + j[d] * axes[d].out_step;
      out_offset[static_cast<std::size_t>(col)] = (n * out_channels + item.group * pp_.m_per_group) * out_plane + out_pos;
      for (std::int64_t e = 0; e < n_taps; ++e) {
        std::int64_t in_pos = 0;
        bool inside = true;
        for (int d = 0; d < kMaxSpatial; ++d) {
          const std::int64_t i = j[d] * axes[d].in_step + phase.offsets[static_cast<std::size_t>(e)][d];
          inside = inside && i >= 0 && i < in_size[d];
          in_pos = in_pos * in_size[d] + i;
        }
        if (inside) {
          in_offset[static_cast<std::size_t>(e * subs * nr_ + col)] =
              (n * in_channels + item.group * pp_.c_per_group) * in_plane + in_pos;
        }
      }
    }

    // Runs of consecutive input elements per (tap, vector): one masked load each.
    std::vector<std::vector<Load>> loads(static_cast<std::size_t>(n_taps * vectors));
    for (std::int64_t e = 0; e < n_taps; ++e)
      for (std::int64_t v = 0; v < vectors; ++v) {
        auto& runs = loads[static_cast<std::size_t>(e * vectors + v)];
        const std::int64_t* offsets = in_offset.data() + e * subs * nr_ + v * Isa::kLanes;
        for (int lane = 0; lane < Isa::kLanes; ++lane) {
          if (offsets[lane] < 0) continue;
          if (!runs.empty() && lane > 0 && offsets[lane - 1] >= 0 && offsets[lane] == offsets[lane - 1] + 1) {
            runs.back().lanes |= 1u << lane;
          } else {
            runs.push_back({offsets[lane] - lane, 1u << lane});
          }
        }
      }

    // Pack B: sub-panel s, row k = c * n_taps + e, NR columns.
    float* panel = scratch;
    for (std::int64_t v = 0; v < vectors; ++v) {
      float* column_block = panel + (v / pp_.nv) * k_count * nr_ + (v % pp_.nv) * Isa::kLanes;
      for (std::int64_t e = 0; e < n_taps; ++e) {
        const auto& runs = loads[static_cast<std::size_t>(e * vectors + v)];
        for (std::int64_t c = 0; c < pp_.c_per_group; ++c) {
          typename Isa::V value = Isa::zero();
          const float* plane = src + c * in_plane;
          for (const Load& run : runs) value = Isa::masked_load(value, run.lanes, plane + run.base);
          Isa::store(column_block + (c * n_taps + e) * nr_, value);
        }
      }
    }

    // Multiply and write out.
    float* tile = scratch + subs * std::max<std::int64_t>(k_count, 1) * nr_;
    const std::int64_t groups_blocks = pp_.m_blocks();
    const float* a_group = pp_.packed_a.data() + phase.packed_offset + item.group * groups_blocks * k_count * pp_.max_mr;
    for (std::int64_t mb = 0; mb < groups_blocks; ++mb) {
      const int rows = static_cast<int>(std::min<std::int64_t>(pp_.mr, pp_.m_per_group - mb * pp_.mr));
      const MicroKernel kernel = micro_kernel_for<Isa>(rows, pp_.nv);
      const float* a_block = a_group + mb * k_count * pp_.max_mr;
      for (std::int64_t s = 0; s < subs; ++s) {
        kernel(k_count, a_block, panel + s * k_count * nr_, tile);
        const std::int64_t cols = std::min(nr_, item.columns - s * nr_);
        for (int m = 0; m < rows; ++m) {
          const std::int64_t channel = mb * pp_.mr + m;
          const float bias = pp_.bias[static_cast<std::size_t>(item.group * pp_.m_per_group + channel)];
          float* out = dst + channel * out_plane;
          const float* row = tile + m * nr_;
          const std::int64_t* where = out_offset.data() + s * nr_;
          for (std::int64_t col = 0; col < cols; ++col) {
            if (where[col] >= 0) out[where[col]] = row[col] + bias;
          }
        }
      }
    }
  }

  PackedProblem pp_;
  std::int64_t max_k_ = 0;
};

template <class Isa>
std::unique_ptr<PreparedKernel> prepare_phase_gemm(const Geometry& g, DType, const void* weight, const void* bias) {
  return std::make_unique<PhaseGemmKernel<Isa>>(g, static_cast<const float*>(weight), static_cast<const float*>(bias));
}
