// Channels-last IGEMM run loop and micro-kernels, written once over an ISA
// traits type. Included inside an anonymous namespace by each igemm_<isa>.cpp,
// under that ISA's target region. The traits provide: V, kLanes, kMaxNv,
// kMaxRows, rows_for(nv) (tile rows for nv vectors, at most kMaxRows), zero,
// load, store, broadcast, fmadd, add, masked_store(pointer, lane bits, v).

#include "kernels/igemm_microkernels.inl"

// Enough work items per thread that uneven items still balance, and few
// enough tiles per item that the pointer tables stay cheap to rebuild.
constexpr std::int64_t kItemsPerThread = 4;
constexpr std::int64_t kMaxTilesPerItem = 64;

template <class Isa>
class IgemmKernel final : public PreparedKernel {
 public:
  IgemmKernel(const Geometry& g, const float* weight, const float* bias)
      : pp_(pack(g, weight, bias, Isa::kLanes, Isa::kMaxNv)), rows_(Isa::rows_for(pp_.nv)) {}

  std::size_t workspace_bytes(const Geometry&, int threads) const override {
    return per_thread_workspace_bytes(table_entries() * sizeof(void*), threads);
  }

  void run(const Geometry& g, const void* src_v, void* dst_v, void* workspace, int threads) const override {
    const auto* src = static_cast<const float*>(src_v);
    auto* dst = static_cast<float*>(dst_v);
    const std::shared_ptr<const Layout> layout = layout_for(g, threads);
    const std::vector<PhaseRun>& phase_runs = layout->phase_runs;
    const std::vector<std::int64_t>& first_item = layout->first_item;
    const std::int64_t per_item = layout->per_item, count = first_item.back();
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (std::int64_t it = 0; it < count; ++it) {
      const auto p = static_cast<std::size_t>(std::upper_bound(first_item.begin(), first_item.end(), it) -
                                              first_item.begin() - 1);
      const PhaseRun& pr = phase_runs[p];
      const std::int64_t local = it - first_item[p];
      const std::int64_t group = local / pr.items_per_group, first_tile = local % pr.items_per_group * per_item;
      auto** table = thread_slot<const float*>(workspace, table_entries() * sizeof(void*), omp_get_thread_num());
      for (std::int64_t tile = first_tile; tile < std::min(pr.tiles, first_tile + per_item); ++tile) {
        run_tile(g, p, pr, group, tile, src, dst, table);
      }
    }
  }

 private:
  struct PhaseRun {
    std::array<phase_gemm::Axis, kMaxSpatial> axes;
    std::vector<TapBox> boxes;  // the GEMM's rows (positions, batch included), box by box
    std::int64_t tiles, items_per_group;
  };

  // Tiles of each phase (box by box), then items of `per_item` tiles of one (phase, group).
  struct Layout {
    Dims small_size, big_size;
    std::int64_t batch;
    int threads;
    std::vector<PhaseRun> phase_runs;
    std::vector<std::int64_t> first_item;  // per phase, its first item; then the count
    std::int64_t per_item;
  };

  // The boxes take a pass over every phase's taps (fcn32 has 1024 phases), so
  // the layout of the last input shape is kept for the calls that follow.
  std::shared_ptr<const Layout> layout_for(const Geometry& g, int threads) const {
    {
      const std::lock_guard<std::mutex> lock(layout_mutex_);
      const Layout* last = last_layout_.get();
      if (last && last->batch == g.batch && last->small_size == g.small_size && last->big_size == g.big_size &&
          last->threads == threads) {
        return last_layout_;
      }
    }
    auto layout = std::make_shared<Layout>();
    layout->small_size = g.small_size;
    layout->big_size = g.big_size;
    layout->batch = g.batch;
    layout->threads = threads;
    std::int64_t total_tiles = 0;
    for (const auto& phase : pp_.phases) {
      PhaseRun pr{phase_gemm::axes_of(g, phase.residues[0]), {}, 0, 0};
      pr.boxes = tap_boxes(g, phase, pr.axes, pp_.skip_outside, rows_);
      pr.tiles = pr.boxes.back().first_tile + pr.boxes.back().tiles;
      total_tiles += pr.tiles * pp_.groups;
      layout->phase_runs.push_back(std::move(pr));
    }
    layout->per_item = std::clamp<std::int64_t>(total_tiles / (kItemsPerThread * threads), 1, kMaxTilesPerItem);
    layout->first_item = {0};
    for (auto& pr : layout->phase_runs) {
      pr.items_per_group = (pr.tiles + layout->per_item - 1) / layout->per_item;
      layout->first_item.push_back(layout->first_item.back() + pr.items_per_group * pp_.groups);
    }
    const std::lock_guard<std::mutex> lock(layout_mutex_);
    last_layout_ = layout;
    return layout;
  }

  // Per thread: input pointers [max taps][kMaxRows], weight panels [max taps]
  // and the taps' flattened offsets [max taps] (one pointer-sized entry each).
  std::size_t table_entries() const {
    return static_cast<std::size_t>(std::max<std::int64_t>(pp_.max_taps, 1) * (Isa::kMaxRows + 2));
  }

  void run_tile(const Geometry& g, std::size_t p, const PhaseRun& pr, std::int64_t group, std::int64_t tile,
                const float* src, float* dst, const float** table) const {
    const phase_gemm::Phase& phase = pp_.phases[p];
    const bool transposed = pp_.kind == ConvKind::conv_transpose;
    const Dims& in_size = transposed ? g.small_size : g.big_size;
    const Dims& out_size = transposed ? g.big_size : g.small_size;
    const std::int64_t in_channels = pp_.c_per_group * pp_.groups, out_channels = pp_.m_per_group * pp_.groups;
    const TapBox& box = *(std::upper_bound(pr.boxes.begin(), pr.boxes.end(), tile,
                                           [](std::int64_t t, const TapBox& b) { return t < b.first_tile; }) - 1);
    const auto n_taps = static_cast<std::int64_t>(box.taps.size());
    Dims extent;
    std::int64_t positions = g.batch;
    for (int d = 0; d < kMaxSpatial; ++d) {
      extent[d] = box.hi[d] - box.lo[d];
      positions *= extent[d];
    }
    const std::int64_t first = (tile - box.first_tile) * rows_;
    const int rows = static_cast<int>(std::min<std::int64_t>(rows_, positions - first));
    float* out_rows[Isa::kMaxRows];

    // Position (batch, z, y, x) of the tile's first row within the box, then row by row.
    std::int64_t j[kMaxSpatial], rest = first;
    for (int d = kMaxSpatial - 1; d >= 0; --d) {
      j[d] = rest % extent[d];
      rest /= extent[d];
    }
    std::int64_t n = rest;
    // A tap's input row is the row's position plus the tap's offset, flattened;
    // in a box of alike positions every tap it takes is inside for every row.
    std::int64_t* tap_shift = reinterpret_cast<std::int64_t*>(table + std::max<std::int64_t>(pp_.max_taps, 1) * (Isa::kMaxRows + 1));
    for (std::int64_t i = 0; i < n_taps; ++i) {
      const auto& offset = phase.offsets[static_cast<std::size_t>(box.taps[static_cast<std::size_t>(i)])];
      tap_shift[i] = ((offset[0] * in_size[1]) + offset[1]) * in_size[2] + offset[2];
    }
    const float* group_src = src + group * pp_.c_per_group;
    // The rows' output and input positions move by these steps per grid step
    // in each dimension (and by a whole sample after the last).
    std::int64_t out_jump[kMaxSpatial], in_jump[kMaxSpatial], out_pos = n, in_pos = n;
    for (int d = 0; d < kMaxSpatial; ++d) {
      std::int64_t out_stride = 1, in_stride = 1;
      for (int e = d + 1; e < kMaxSpatial; ++e) {
        out_stride *= out_size[e];
        in_stride *= in_size[e];
      }
      out_jump[d] = pr.axes[d].out_step * out_stride;
      in_jump[d] = pr.axes[d].in_step * in_stride;
      out_pos = out_pos * out_size[d] + pr.axes[d].out_start + (box.lo[d] + j[d]) * pr.axes[d].out_step;
      in_pos = in_pos * in_size[d] + (box.lo[d] + j[d]) * pr.axes[d].in_step;
    }
    const std::int64_t out_sample = out_size[0] * out_size[1] * out_size[2], in_sample = in_size[0] * in_size[1] * in_size[2];
    for (int r = 0; r < rows; ++r) {
      out_rows[r] = dst + out_pos * out_channels + group * pp_.m_per_group;
      if (box.alike) {
        for (std::int64_t i = 0; i < n_taps; ++i) table[i * Isa::kMaxRows + r] = group_src + (in_pos + tap_shift[i]) * in_channels;
      } else {
        std::int64_t at_row[kMaxSpatial];
        for (int d = 0; d < kMaxSpatial; ++d) at_row[d] = (box.lo[d] + j[d]) * pr.axes[d].in_step;
        for (std::int64_t i = 0; i < n_taps; ++i) {
          const auto& offset = phase.offsets[static_cast<std::size_t>(box.taps[static_cast<std::size_t>(i)])];
          bool inside = true;
          for (int d = 0; d < kMaxSpatial; ++d) {
            inside = inside && static_cast<std::uint64_t>(at_row[d] + offset[d]) < static_cast<std::uint64_t>(in_size[d]);
          }
          table[i * Isa::kMaxRows + r] = inside ? group_src + (in_pos + tap_shift[i]) * in_channels : pp_.zeros.data();
        }
      }
      for (int d = kMaxSpatial - 1; d >= 0; --d) {
        if (++j[d] < extent[d]) {
          out_pos += out_jump[d];
          in_pos += in_jump[d];
          break;
        }
        out_pos -= (extent[d] - 1) * out_jump[d];
        in_pos -= (extent[d] - 1) * in_jump[d];
        j[d] = 0;
        if (d == 0) {
          ++n;
          out_pos += out_sample;
          in_pos += in_sample;
        }
      }
    }

    const MicroKernel kernel = micro_kernel_for<Isa>(rows, pp_.nv, std::make_index_sequence<Isa::kMaxNv>());
    const std::int64_t k_count = pp_.k_of(phase);
    const float** tap_w = table + std::max<std::int64_t>(pp_.max_taps, 1) * Isa::kMaxRows;
    for (std::int64_t block = 0; block < pp_.n_blocks; ++block) {
      float* block_rows[Isa::kMaxRows];
      for (int r = 0; r < rows; ++r) block_rows[r] = out_rows[r] + block * pp_.nr;
      const std::int64_t panel = (group * pp_.n_blocks + block);
      const float* weights = pp_.weights.data() + pp_.packed_offset[p] + panel * k_count * pp_.nr;
      for (std::int64_t i = 0; i < n_taps; ++i) {
        tap_w[i] = weights + box.taps[static_cast<std::size_t>(i)] * pp_.c_per_group * pp_.nr;
      }
      kernel(n_taps, pp_.c_per_group, table, tap_w, pp_.bias.data() + panel * pp_.nr, block_rows,
             std::min(pp_.nr, pp_.m_per_group - block * pp_.nr));
    }
  }

  PackedProblem pp_;
  int rows_;  // tile rows for pp_.nv
  mutable std::mutex layout_mutex_;
  mutable std::shared_ptr<const Layout> last_layout_;
};

template <class Isa>
std::unique_ptr<PreparedKernel> prepare_igemm(const Geometry& g, DType, const void* weight, const void* bias) {
  return std::make_unique<IgemmKernel<Isa>>(g, static_cast<const float*>(weight), static_cast<const float*>(bias));
}
