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
    return static_cast<std::size_t>(threads) * table_entries() * sizeof(void*);
  }

  void run(const Geometry& g, const void* src_v, void* dst_v, void* workspace, int threads) const override {
    const auto* src = static_cast<const float*>(src_v);
    auto* dst = static_cast<float*>(dst_v);
    // Tiles of each phase, then items of `per_item` tiles of one (phase, group).
    std::vector<PhaseRun> phase_runs;
    std::int64_t total_tiles = 0;
    for (const auto& phase : pp_.phases) {
      PhaseRun pr{phase_gemm::axes_of(g, phase.residues[0]), g.batch, 0, 0};
      for (const auto& axis : pr.axes) pr.pixels *= axis.out_count;
      pr.tiles = (pr.pixels + rows_ - 1) / rows_;
      total_tiles += pr.tiles * pp_.groups;
      phase_runs.push_back(pr);
    }
    const std::int64_t per_item =
        std::clamp<std::int64_t>(total_tiles / (kItemsPerThread * threads), 1, kMaxTilesPerItem);
    std::vector<std::int64_t> first_item{0};  // per phase, its first item
    for (auto& pr : phase_runs) {
      pr.items_per_group = (pr.tiles + per_item - 1) / per_item;
      first_item.push_back(first_item.back() + pr.items_per_group * pp_.groups);
    }
    const std::int64_t count = first_item.back();
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (std::int64_t it = 0; it < count; ++it) {
      const auto p = static_cast<std::size_t>(std::upper_bound(first_item.begin(), first_item.end(), it) -
                                              first_item.begin() - 1);
      const PhaseRun& pr = phase_runs[p];
      const std::int64_t local = it - first_item[p];
      const std::int64_t group = local / pr.items_per_group, first_tile = local % pr.items_per_group * per_item;
      auto** table = reinterpret_cast<const float**>(static_cast<std::byte*>(workspace) +
                                                     omp_get_thread_num() * table_entries() * sizeof(void*));
      for (std::int64_t tile = first_tile; tile < std::min(pr.tiles, first_tile + per_item); ++tile) {
        run_tile(g, p, pr, group, tile, src, dst, table);
      }
    }
  }

 private:
  struct PhaseRun {
    std::array<phase_gemm::Axis, kMaxSpatial> axes;
    std::int64_t pixels;  // batch times the phase's positions: the GEMM's rows
    std::int64_t tiles, items_per_group;
  };

  // Per thread: input pointers [max taps][kMaxRows].
  std::size_t table_entries() const {
    return static_cast<std::size_t>(std::max<std::int64_t>(pp_.max_taps, 1) * Isa::kMaxRows);
  }

  void run_tile(const Geometry& g, std::size_t p, const PhaseRun& pr, std::int64_t group, std::int64_t tile,
                const float* src, float* dst, const float** table) const {
    const phase_gemm::Phase& phase = pp_.phases[p];
    const bool transposed = pp_.kind == ConvKind::conv_transpose;
    const Dims& in_size = transposed ? g.small_size : g.big_size;
    const Dims& out_size = transposed ? g.big_size : g.small_size;
    const std::int64_t in_channels = pp_.c_per_group * pp_.groups, out_channels = pp_.m_per_group * pp_.groups;
    const auto n_taps = static_cast<std::int64_t>(phase.offsets.size());
    const std::int64_t first = tile * rows_;
    const int rows = static_cast<int>(std::min<std::int64_t>(rows_, pr.pixels - first));
    float* out_rows[Isa::kMaxRows];

    // Grid position (batch, z, y, x) of the tile's first row, then row by row.
    std::int64_t j[kMaxSpatial], rest = first;
    for (int d = kMaxSpatial - 1; d >= 0; --d) {
      j[d] = rest % pr.axes[d].out_count;
      rest /= pr.axes[d].out_count;
    }
    std::int64_t n = rest;
    for (int r = 0; r < rows; ++r) {
      std::int64_t out_pos = n;
      for (int d = 0; d < kMaxSpatial; ++d) out_pos = out_pos * out_size[d] + pr.axes[d].out_start + j[d] * pr.axes[d].out_step;
      out_rows[r] = dst + out_pos * out_channels + group * pp_.m_per_group;
      for (std::int64_t e = 0; e < n_taps; ++e) {
        const auto& offset = phase.offsets[static_cast<std::size_t>(e)];
        std::int64_t in_pos = n;
        bool inside = true;
        for (int d = 0; d < kMaxSpatial; ++d) {
          const std::int64_t i = j[d] * pr.axes[d].in_step + offset[d];
          inside = inside && i >= 0 && i < in_size[d];
          in_pos = in_pos * in_size[d] + i;
        }
        table[e * Isa::kMaxRows + r] =
            inside ? src + in_pos * in_channels + group * pp_.c_per_group : pp_.zeros.data();
      }
      for (int d = kMaxSpatial - 1; d >= 0; --d) {
        if (++j[d] < pr.axes[d].out_count) break;
        j[d] = 0;
        if (d == 0) ++n;
      }
    }

    const MicroKernel kernel = micro_kernel_for<Isa>(rows, pp_.nv, std::make_index_sequence<Isa::kMaxNv>());
    const std::int64_t k_count = pp_.k_of(phase);
    for (std::int64_t block = 0; block < pp_.n_blocks; ++block) {
      float* block_rows[Isa::kMaxRows];
      for (int r = 0; r < rows; ++r) block_rows[r] = out_rows[r] + block * pp_.nr;
      const std::int64_t panel = (group * pp_.n_blocks + block);
      kernel(n_taps, pp_.c_per_group, table, pp_.weights.data() + pp_.packed_offset[p] + panel * k_count * pp_.nr,
             pp_.bias.data() + panel * pp_.nr, block_rows, std::min(pp_.nr, pp_.m_per_group - block * pp_.nr));
    }
  }

  PackedProblem pp_;
  int rows_;  // tile rows for pp_.nv
};

template <class Isa>
std::unique_ptr<PreparedKernel> prepare_igemm(const Geometry& g, DType, const void* weight, const void* bias) {
  return std::make_unique<IgemmKernel<Isa>>(g, static_cast<const float*>(weight), static_cast<const float*>(bias));
}
