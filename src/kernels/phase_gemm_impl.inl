// Phase-GEMM run loop and micro-kernels, written once over an ISA traits type.
// Included inside an anonymous namespace by each phase_gemm_<isa>.cpp, under
// that ISA's target pragma, so every instantiation is private to its file.
// The traits provide: V, kLanes, kMaxMr, kMaxAccumulators, kTiles, zero, load, store,
// broadcast, fmadd, set1, add, masked_load(into, lane bits, pointer),
// masked_store(pointer, lane bits, v) and
// store_interleaved(p, even, odd, count) (even[l] at p[2l], odd[l] at p[2l+1], the first `count` of those).

#include "kernels/phase_gemm_microkernels.inl"

// B panels aim to stay in L2 next to the streaming A panel.
constexpr std::int64_t kPanelBudgetBytes = 192 * 1024;
constexpr std::int64_t kMaxSubPanels = 8;
// Enough work items per thread that uneven items still balance.
constexpr std::int64_t kItemsPerThread = 4;

template <class Isa>
class PhaseGemmKernel final : public PreparedKernel {
 public:
  PhaseGemmKernel(const Geometry& g, const float* weight, const float* bias)
      : pp_(pack(g, weight, bias, Isa::kTiles)), stride_x_(g.stride[2]) {
    for (const auto& phase : pp_.phases) {
      max_k_ = std::max(max_k_, pp_.k_of(phase));
      max_taps_ = std::max(max_taps_, static_cast<std::int64_t>(phase.offsets.size()));
      max_members_ = std::max(max_members_, phase.members());
      max_m_blocks_ = std::max(max_m_blocks_, pp_.m_blocks_of(phase));
    }
  }

  std::size_t workspace_bytes(const Geometry& g, int threads) const override {
    return per_thread_workspace_bytes(scratch_bytes(blocking(g, threads)), threads);
  }

  // Work items are (group, block of grid columns); each runs every phase of its
  // block, so the output lines a block touches are finished while in cache.
  void run(const Geometry& g, const void* src_v, void* dst_v, void* workspace, int threads) const override {
    const auto* src = static_cast<const float*>(src_v);
    auto* dst = static_cast<float*>(dst_v);
    const Blocking b = blocking(g, threads);
    const std::int64_t block = b.sub_panels * nr(b.nv);
    const std::int64_t blocks = (b.columns + block - 1) / block;
    const std::size_t per_thread = scratch_bytes(b);
    const std::int64_t count = pp_.groups * blocks * b.m_chunks;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (std::int64_t it = 0; it < count; ++it) {
      const Scratch scratch = carve(thread_slot<std::byte>(workspace, per_thread, omp_get_thread_num()), b);
      const std::int64_t chunk = it % b.m_chunks, column_block = (it / b.m_chunks) % blocks;
      const std::int64_t first = column_block * block;
      const WorkItem item{it / (b.m_chunks * blocks), first, std::min(block, b.columns - first), chunk, b.m_chunks,
                          b.nv};
      decode_columns(b.grid, item, scratch);
      const int together = phases_per_write();
      for (std::size_t p = 0; p < pp_.phases.size(); p += static_cast<std::size_t>(together)) {
        process(g, &pp_.phases[p], together, item, src, dst, scratch);
      }
    }
  }

 private:
  struct WorkItem {
    std::int64_t group, first_column, columns;
    std::int64_t m_chunk, m_chunks;  // this item's share of every phase set's GEMM rows
    int nv;
  };
  // Columns index the grid batch x grid[0] x grid[1] x grid[2], the largest
  // phase's positions (rows possibly padded); a smaller phase leaves its last columns unused.
  struct Blocking {
    Dims grid;
    std::int64_t columns;
    std::int64_t sub_panels;
    std::int64_t m_chunks;  // output channels split this many ways when columns alone give too few items
    int nv;                 // vectors per register tile (NR = nv * lanes columns)
  };
  // What one phase of a work item needs, in one thread's workspace.
  struct Slot {
    float* panel;              // [sub-panels][K][NR]
    float* tile;               // [kMaxMr][NR]
    std::int64_t* out_offset;  // per column: dst offset of its group's channel 0, -1 if unused
    std::int64_t* in_offset;   // per tap and column: src offset of the group's channel 0, -1 outside
    Load* runs;                // per tap and vector: up to kLanes runs
    int* run_count;            // per tap and vector (kStridedRun: one run of every other element)
  };
  struct Scratch {
    std::array<Slot, 2> slot;  // phases written together (see phases_per_write)
    std::int64_t* position;    // per column: batch index and grid position j (kPositionFields each)
    Load* write_runs;          // per member and vector: kMaxWriteRuns runs of outputs stored as (masked) vectors
    int* write_count;          // per member and vector: runs (one phase) or outputs (two interleaved); -1: one by one
    std::int64_t* member;      // per member: dst offset from member 0, then its depth and height counts
    std::int64_t* lane_offset; // per slot, member, vector and lane written one by one: dst offset or -1
  };
  static constexpr int kPositionFields = 1 + kMaxSpatial;
  static constexpr int kStridedRun = -1;

  // True (and the run) when the vector's valid lanes read base + step * lane.
  static bool strided_run(const std::int64_t* offsets, std::int64_t step, Load& run) {
    run = {-1, 0};
    for (int lane = 0; lane < Isa::kLanes; ++lane) {
      if (offsets[lane] < 0) continue;
      if (run.lanes == 0) run.base = offsets[lane] - step * lane;
      if (offsets[lane] != run.base + step * lane) return false;
      run.lanes |= 1u << lane;
    }
    return run.lanes != 0;
  }
  static constexpr int kSlotParts = 6;
  static constexpr int kMaxWriteRuns = 4;
  static constexpr int kMemberFields = 4;
  // A phase whose B is ready for the micro-kernels: packed, or read directly.
  struct PreparedPhase {
    std::int64_t k_count;
    const float* a_group;  // packed A of this phase and group
    bool direct;
    std::int64_t n_taps, in_plane;
  };

  static std::int64_t nr(int nv) { return static_cast<std::int64_t>(nv) * Isa::kLanes; }

  // Stride-2 transposed convolutions compute both x phases of a block before
  // writing, so the two interleave into whole output vectors.
  int phases_per_write() const { return pp_.kind == ConvKind::conv_transpose && stride_x_ == 2 ? 2 : 1; }

  static std::size_t aligned(std::size_t bytes) { return (bytes + 63) / 64 * 64; }

  std::array<std::size_t, kSlotParts> slot_parts(std::int64_t sub_panels, int nv) const {
    const auto columns = static_cast<std::size_t>(sub_panels * nr(nv));
    const auto taps = static_cast<std::size_t>(std::max<std::int64_t>(max_taps_, 1));
    const std::size_t vectors = static_cast<std::size_t>(sub_panels) * static_cast<std::size_t>(nv);
    return {aligned(columns * static_cast<std::size_t>(std::max<std::int64_t>(max_k_, 1)) * sizeof(float)),
            aligned(static_cast<std::size_t>(Isa::kMaxMr) * static_cast<std::size_t>(nr(nv)) * sizeof(float)),
            aligned(columns * sizeof(std::int64_t)),
            aligned(taps * columns * sizeof(std::int64_t)),
            aligned(taps * vectors * Isa::kLanes * sizeof(Load)),
            aligned(taps * vectors * sizeof(int))};
  }

  std::array<std::size_t, 5> shared_parts(std::int64_t sub_panels, int nv) const {
    const auto columns = static_cast<std::size_t>(sub_panels * nr(nv));
    const auto members = static_cast<std::size_t>(max_members_);
    const std::size_t vectors = static_cast<std::size_t>(sub_panels) * static_cast<std::size_t>(nv) * members;
    return {aligned(columns * kPositionFields * sizeof(std::int64_t)), aligned(vectors * kMaxWriteRuns * sizeof(Load)),
            aligned(vectors * sizeof(int)), aligned(members * kMemberFields * sizeof(std::int64_t)),
            aligned(2 * vectors * Isa::kLanes * sizeof(std::int64_t))};
  }

  std::size_t scratch_bytes(const Blocking& b) const {
    std::size_t total = 0;
    for (std::size_t part : slot_parts(b.sub_panels, b.nv)) total += part * static_cast<std::size_t>(phases_per_write());
    for (std::size_t part : shared_parts(b.sub_panels, b.nv)) total += part;
    return total;
  }

  Scratch carve(std::byte* base, const Blocking& b) const {
    Scratch s{};
    auto take = [&base](std::size_t bytes) {
      std::byte* at = base;
      base += bytes;
      return at;
    };
    const auto parts = slot_parts(b.sub_panels, b.nv);
    for (int q = 0; q < phases_per_write(); ++q) {
      Slot& slot = s.slot[static_cast<std::size_t>(q)];
      slot.panel = reinterpret_cast<float*>(take(parts[0]));
      slot.tile = reinterpret_cast<float*>(take(parts[1]));
      slot.out_offset = reinterpret_cast<std::int64_t*>(take(parts[2]));
      slot.in_offset = reinterpret_cast<std::int64_t*>(take(parts[3]));
      slot.runs = reinterpret_cast<Load*>(take(parts[4]));
      slot.run_count = reinterpret_cast<int*>(take(parts[5]));
    }
    const auto shared = shared_parts(b.sub_panels, b.nv);
    s.position = reinterpret_cast<std::int64_t*>(take(shared[0]));
    s.write_runs = reinterpret_cast<Load*>(take(shared[1]));
    s.write_count = reinterpret_cast<int*>(take(shared[2]));
    s.member = reinterpret_cast<std::int64_t*>(take(shared[3]));
    s.lane_offset = reinterpret_cast<std::int64_t*>(take(shared[4]));
    return s;
  }

  Blocking blocking(const Geometry& g, int threads) const {
    Blocking b{};
    b.columns = g.batch;
    for (int d = 0; d < kMaxSpatial; ++d) {
      b.grid[d] = pp_.kind == ConvKind::conv ? g.small_size[d] : (g.big_size[d] + g.stride[d] - 1) / g.stride[d];
    }
    // Interleaved phases store whole vectors only when a vector stays inside one
    // output row: pad rows to whole vectors, while that wastes little.
    const std::int64_t padded_row = (b.grid[2] + Isa::kLanes - 1) / Isa::kLanes * Isa::kLanes;
    if (phases_per_write() == 2 && b.grid[1] * b.grid[0] > 1 && padded_row * 3 <= b.grid[2] * 4) b.grid[2] = padded_row;
    for (int d = 0; d < kMaxSpatial; ++d) b.columns *= b.grid[d];
    // Vectors per tile: the count that pads the columns least (then the widest).
    std::int64_t best_padded = -1;
    // Accumulators, the nv vectors of B and a broadcast must fit the registers, or the tile spills.
    const int fitting = (Isa::kRegisters - 1) / (pp_.mr + 1);
    for (int nv = pp_.min_nv; nv <= std::max(pp_.min_nv, std::min({pp_.max_nv, kMaxVectors, Isa::kMaxAccumulators / pp_.mr,
                                                                    fitting}));
         ++nv) {
      const std::int64_t padded = (b.columns + nr(nv) - 1) / nr(nv) * nr(nv);
      if (best_padded < 0 || padded <= best_padded) {
        best_padded = padded;
        b.nv = nv;
      }
    }
    const std::int64_t nr_ = nr(b.nv);
    const std::int64_t bytes_per_sub = std::max<std::int64_t>(max_k_, 1) * nr_ * static_cast<std::int64_t>(sizeof(float));
    // Sub-panels per item: within the panel budget, the count whose items
    // finish soonest on `threads` threads (rounds of items times their width),
    // the widest on a tie since wider items reload A less.
    const std::int64_t most = std::clamp<std::int64_t>(kPanelBudgetBytes / bytes_per_sub, 1, kMaxSubPanels);
    std::int64_t best_span = -1;
    for (std::int64_t subs = 1; subs <= most; ++subs) {
      const std::int64_t items = pp_.groups * ((b.columns + subs * nr_ - 1) / (subs * nr_));
      const std::int64_t span = (items + threads - 1) / threads * subs;
      if (best_span < 0 || span <= best_span) {
        best_span = span;
        b.sub_panels = subs;
      }
    }
    // An empty batch has no columns: one (empty) item keeps the arithmetic whole.
    const std::int64_t items =
        std::max<std::int64_t>(1, pp_.groups * ((b.columns + b.sub_panels * nr_ - 1) / (b.sub_panels * nr_)));
    b.m_chunks = std::clamp<std::int64_t>((kItemsPerThread * threads + items - 1) / items, 1, max_m_blocks_);
    return b;
  }

  // Grid position of each column of the item, shared by all its phases.
  static void decode_columns(const Dims& grid, const WorkItem& item, const Scratch& scratch) {
    for (std::int64_t col = 0; col < item.columns; ++col) {
      std::int64_t rest = item.first_column + col;
      std::int64_t* position = scratch.position + col * kPositionFields;
      for (int d = kMaxSpatial - 1; d >= 0; --d) {
        position[1 + d] = rest % grid[d];
        rest /= grid[d];
      }
      position[0] = rest;
    }
  }

  // Offsets, load runs and B of one phase. B is packed unless it is used once:
  // read straight from the input it was measured slower when reused, since its
  // rows are a channel plane apart.
  PreparedPhase prepare_phase(const Geometry& g, const Phase& phase, const WorkItem& item, const float* src,
                              const Slot& slot, const Scratch& scratch) const {
    // Member 0 has the smallest residues, so the most positions: B covers its columns.
    const auto axes = axes_of(g, phase.residues[0]);
    const bool transposed = pp_.kind == ConvKind::conv_transpose;
    const Dims& in_size = transposed ? g.small_size : g.big_size;
    const Dims& out_size = transposed ? g.big_size : g.small_size;
    const std::int64_t in_plane = in_size[0] * in_size[1] * in_size[2];
    const std::int64_t out_plane = out_size[0] * out_size[1] * out_size[2];
    const std::int64_t in_channels = pp_.c_per_group * pp_.groups, out_channels = pp_.m_per_group * pp_.groups;
    const auto n_taps = static_cast<std::int64_t>(phase.offsets.size());
    const std::int64_t k_count = pp_.k_of(phase);
    const std::int64_t nr_ = nr(item.nv);
    const std::int64_t subs = (item.columns + nr_ - 1) / nr_;
    const std::int64_t vectors = subs * item.nv;
    const std::int64_t padded_columns = subs * nr_;

    std::fill(slot.out_offset, slot.out_offset + padded_columns, -1);
    std::fill(slot.run_count, slot.run_count + n_taps * vectors, 0);
    if (axes[2].in_step == 1) {
      // A vector's columns fall into a few row segments (consecutive positions of
      // one grid row); per tap each segment reads one run of its input row.
      for (std::int64_t v = 0; v < vectors; ++v) {
        std::int64_t lane = 0;
        while (lane < Isa::kLanes) {
          const std::int64_t col0 = v * Isa::kLanes + lane;
          if (col0 >= item.columns) break;
          const std::int64_t n = scratch.position[col0 * kPositionFields];
          const std::int64_t* j = scratch.position + col0 * kPositionFields + 1;
          // The segment: lanes [lane, end) continue the row of col0.
          std::int64_t end = lane + 1;
          while (end < Isa::kLanes && v * Isa::kLanes + end < item.columns &&
                 scratch.position[(v * Isa::kLanes + end) * kPositionFields + 3] == j[2] + (end - lane)) {
            ++end;
          }
          const std::int64_t first_lane = lane;
          lane = end;
          if (j[0] >= axes[0].out_count || j[1] >= axes[1].out_count) continue;
          const std::int64_t in_row = std::min(end - first_lane, axes[2].out_count - j[2]);  // columns in the phase
          if (in_row <= 0) continue;
          const std::int64_t row_out = (n * out_channels + item.group * pp_.m_per_group) * out_plane +
                                       ((axes[0].out_start + j[0] * axes[0].out_step) * out_size[1] +
                                        axes[1].out_start + j[1] * axes[1].out_step) * out_size[2] + axes[2].out_start;
          for (std::int64_t l = 0; l < in_row; ++l) slot.out_offset[col0 + l] = row_out + (j[2] + l) * axes[2].out_step;
          const std::int64_t group_base = (n * in_channels + item.group * pp_.c_per_group) * in_plane;
          for (std::int64_t e = 0; e < n_taps; ++e) {
            const auto& offset = phase.offsets[static_cast<std::size_t>(e)];
            const std::int64_t iz = j[0] * axes[0].in_step + offset[0], iy = j[1] * axes[1].in_step + offset[1];
            if (iz < 0 || iz >= in_size[0] || iy < 0 || iy >= in_size[1]) continue;
            const std::int64_t ix0 = j[2] + offset[2];  // input column of lane first_lane
            const std::int64_t lo = first_lane + std::max<std::int64_t>(0, -ix0);
            const std::int64_t hi = first_lane + std::min(in_row, in_size[2] - ix0);
            if (lo >= hi) continue;
            const auto mask = static_cast<std::uint32_t>(((std::uint64_t{1} << hi) - 1) & ~((std::uint64_t{1} << lo) - 1));
            int& count = slot.run_count[e * vectors + v];
            slot.runs[(e * vectors + v) * Isa::kLanes + count++] = {
                group_base + (iz * in_size[1] + iy) * in_size[2] + ix0 - first_lane, mask};
          }
        }
      }
    } else {
      std::fill(slot.in_offset, slot.in_offset + n_taps * padded_columns, -1);
      for (std::int64_t col = 0; col < item.columns; ++col) {
        const std::int64_t n = scratch.position[col * kPositionFields];
        const std::int64_t* j = scratch.position + col * kPositionFields + 1;
        bool in_phase = true;
        for (int d = 0; d < kMaxSpatial; ++d) in_phase = in_phase && j[d] < axes[d].out_count;
        if (!in_phase) continue;
        std::int64_t out_pos = 0;
        for (int d = 0; d < kMaxSpatial; ++d) out_pos = out_pos * out_size[d] + axes[d].out_start + j[d] * axes[d].out_step;
        slot.out_offset[col] = (n * out_channels + item.group * pp_.m_per_group) * out_plane + out_pos;
        const std::int64_t group_base = (n * in_channels + item.group * pp_.c_per_group) * in_plane;
        for (std::int64_t e = 0; e < n_taps; ++e) {
          std::int64_t in_pos = 0;
          bool inside = true;
          for (int d = 0; d < kMaxSpatial; ++d) {
            const std::int64_t i = j[d] * axes[d].in_step + phase.offsets[static_cast<std::size_t>(e)][d];
            inside = inside && i >= 0 && i < in_size[d];
            in_pos = in_pos * in_size[d] + i;
          }
          if (inside) slot.in_offset[e * padded_columns + col] = group_base + in_pos;
        }
      }
      // Runs of consecutive input elements per (tap, vector): one masked load
      // each; a vector that reads every other element (stride-2 convolutions)
      // is one strided run instead: two loads and a permute. (Gathers for
      // larger strides were measured slower than the single-lane loads: fcn32
      // read as a convolution 9.8 -> 10.6 ms.)
      for (std::int64_t e = 0; e < n_taps; ++e)
        for (std::int64_t v = 0; v < vectors; ++v) {
          Load* runs = slot.runs + (e * vectors + v) * Isa::kLanes;
          int& count = slot.run_count[e * vectors + v];
          const std::int64_t* offsets = slot.in_offset + e * padded_columns + v * Isa::kLanes;
          if (axes[2].in_step == 2 && strided_run(offsets, 2, runs[0])) {
            count = kStridedRun;
            continue;
          }
          for (int lane = 0; lane < Isa::kLanes; ++lane) {
            if (offsets[lane] < 0) continue;
            if (count > 0 && lane > 0 && offsets[lane - 1] >= 0 && offsets[lane] == offsets[lane - 1] + 1) {
              runs[count - 1].lanes |= 1u << lane;
            } else {
              runs[count++] = {offsets[lane] - lane, 1u << lane};
            }
          }
        }
    }

    // A block used once (a single output-channel block) reads B straight from
    // the input when every vector is one run; packing would only copy it.
    const MBlocks blocks = m_blocks_of(phase, item);
    bool direct = blocks.end - blocks.first == 1;
    for (std::int64_t r = 0; direct && r < n_taps * vectors; ++r) {
      if (slot.run_count[r] == 0) slot.runs[r * Isa::kLanes] = {0, 0};
      direct = slot.run_count[r] >= 0 && slot.run_count[r] <= 1;
    }
    const float* a_group =
        pp_.packed_a.data() + phase.packed_offset + item.group * pp_.m_blocks_of(phase) * k_count * pp_.mr;
    if (direct) return {k_count, a_group, true, n_taps, in_plane};

    // B as sub-panels [K][NR], row k = e * C + c.
    {
      for (std::int64_t v = 0; v < vectors; ++v) {
        float* column_block = slot.panel + (v / item.nv) * k_count * nr_ + (v % item.nv) * Isa::kLanes;
        for (std::int64_t e = 0; e < n_taps; ++e) {
          const Load* runs = slot.runs + (e * vectors + v) * Isa::kLanes;
          const int count = slot.run_count[e * vectors + v];
          float* packed = column_block + e * pp_.c_per_group * nr_;
          if (count == kStridedRun) {
            for (std::int64_t c = 0; c < pp_.c_per_group; ++c, packed += nr_) {
              Isa::store(packed, Isa::masked_load_strided(runs[0].lanes, src + c * in_plane + runs[0].base,
                                                          axes[2].in_step));
            }
            continue;
          }
          for (std::int64_t c = 0; c < pp_.c_per_group; ++c, packed += nr_) {
            typename Isa::V value = Isa::zero();
            const float* plane = src + c * in_plane;
            for (int r = 0; r < count; ++r) value = Isa::masked_load(value, runs[r].lanes, plane + runs[r].base);
            Isa::store(packed, value);
          }
        }
      }
    }
    return {k_count, a_group, false, n_taps, in_plane};
  }

  // This item's range of a phase set's row blocks.
  struct MBlocks {
    std::int64_t first, end;
  };
  MBlocks m_blocks_of(const Phase& phase, const WorkItem& item) const {
    const std::int64_t blocks = pp_.m_blocks_of(phase);
    const std::int64_t per_chunk = (blocks + item.m_chunks - 1) / item.m_chunks;
    return {std::min(blocks, item.m_chunk * per_chunk), std::min(blocks, (item.m_chunk + 1) * per_chunk)};
  }

  // Where each member of a phase set writes relative to member 0, and how far it reaches.
  void describe_members(const Geometry& g, const Phase& phase, const Scratch& scratch) const {
    const Dims& out_size = pp_.kind == ConvKind::conv_transpose ? g.big_size : g.small_size;
    for (std::int64_t q = 0; q < phase.members(); ++q) {
      const auto& r = phase.residues[static_cast<std::size_t>(q)];
      const auto axes = axes_of(g, r);
      std::int64_t* member = scratch.member + q * kMemberFields;
      member[0] = ((r[0] - phase.residues[0][0]) * out_size[1] + (r[1] - phase.residues[0][1])) * out_size[2] +
                  (r[2] - phase.residues[0][2]);
      member[1] = axes[0].out_count;
      member[2] = axes[1].out_count;
      member[3] = axes[2].out_count;
    }
  }

  // Does column `col` hold an output of member q (slot's phase)?
  bool member_writes(const Slot& slot, const Scratch& scratch, std::int64_t q, std::int64_t col) const {
    const std::int64_t* member = scratch.member + q * kMemberFields;
    const std::int64_t* j = scratch.position + col * kPositionFields + 1;
    return slot.out_offset[col] >= 0 && j[0] < member[1] && j[1] < member[2] && j[2] < member[3];
  }

  // Per member and vector, how its results reach dst. One phase: as up to
  // kMaxWriteRuns masked stores of consecutive outputs. Two phases:
  // interleaved into one contiguous run (slot p's lane l at base + 2l + p,
  // valid lanes first). Anything else: element by element.
  void plan_writes(int phases, std::int64_t members, std::int64_t vectors, std::int64_t columns,
                   const Scratch& scratch) const {
    for (std::int64_t q = 0; q < members; ++q)
      for (std::int64_t v = 0; v < vectors; ++v) {
        Load* runs = scratch.write_runs + (q * vectors + v) * kMaxWriteRuns;
        int& count = scratch.write_count[q * vectors + v];
        count = 0;
        auto at = [&](int p, int lane) -> std::int64_t {
          const std::int64_t col = v * Isa::kLanes + lane;
          const Slot& slot = scratch.slot[static_cast<std::size_t>(p)];
          return col < columns && member_writes(slot, scratch, q, col) ? slot.out_offset[col] : -1;
        };
        if (phases == 1) {
          std::int64_t previous = -1;
          for (int lane = 0; lane < Isa::kLanes && count >= 0; ++lane) {
            const std::int64_t here = at(0, lane);
            if (here < 0) {
              previous = -1;
              continue;
            }
            if (previous >= 0 && here == previous + 1) {
              runs[count - 1].lanes |= 1u << lane;
            } else if (count < kMaxWriteRuns) {
              runs[count++] = {here - lane, 1u << lane};
            } else {
              count = -1;
            }
            previous = here;
          }
          continue;
        }
        const std::int64_t base = at(0, 0);
        bool contiguous = base >= 0;
        for (int lane = 0; lane < Isa::kLanes && contiguous; ++lane)
          for (int p = 0; p < phases; ++p) {
            const std::int64_t here = at(p, lane);
            if (here < 0) continue;
            const int position = phases * lane + p;
            contiguous = contiguous && here == base + position && position == count;
            ++count;
          }
        runs[0] = {base, 0};
        if (!contiguous) count = -1;
      }
    // Vectors stored one by one get their lanes' offsets once, for all their rows.
    for (std::int64_t q = 0; q < members; ++q)
      for (std::int64_t v = 0; v < vectors; ++v) {
        if (scratch.write_count[q * vectors + v] >= 0) continue;
        for (int p = 0; p < phases; ++p) {
          const Slot& slot = scratch.slot[static_cast<std::size_t>(p)];
          std::int64_t* offsets = scratch.lane_offset + ((p * members + q) * vectors + v) * Isa::kLanes;
          for (int lane = 0; lane < Isa::kLanes; ++lane) {
            const std::int64_t col = v * Isa::kLanes + lane;
            offsets[lane] = col < columns && member_writes(slot, scratch, q, col) ? slot.out_offset[col] : -1;
          }
        }
      }
  }

  // Multiplies the prepared phases for row block mb and sub-panel s and stores the results.
  void multiply_and_write(const std::array<PreparedPhase, 2>& phases, int count, const Phase& set, std::int64_t mb,
                          std::int64_t s, const WorkItem& item, const Geometry& g, const float* src, float* dst,
                          const Scratch& scratch) const {
    const Dims& out_size = pp_.kind == ConvKind::conv_transpose ? g.big_size : g.small_size;
    const std::int64_t out_plane = out_size[0] * out_size[1] * out_size[2];
    const std::int64_t nr_ = nr(item.nv);
    const std::int64_t vectors = (item.columns + nr_ - 1) / nr_ * item.nv;
    const std::int64_t members = set.members();
    const int rows = static_cast<int>(std::min<std::int64_t>(pp_.mr, pp_.rows_of(set) - mb * pp_.mr));
    for (int p = 0; p < count; ++p) {
      const PreparedPhase& prepared = phases[static_cast<std::size_t>(p)];
      const Slot& slot = scratch.slot[static_cast<std::size_t>(p)];
      const float* a_block = prepared.a_group + mb * prepared.k_count * pp_.mr;
      if (prepared.direct) {
        direct_micro_kernel_for<Isa>(rows, item.nv)(pp_.c_per_group, prepared.n_taps, a_block, pp_.mr, src,
                                                    prepared.in_plane, slot.runs + s * item.nv * Isa::kLanes,
                                                    vectors * Isa::kLanes, slot.tile);
      } else {
        micro_kernel_for<Isa>(rows, item.nv)(prepared.k_count, a_block, pp_.mr, slot.panel + s * prepared.k_count * nr_,
                                             slot.tile);
      }
    }
    int r = 0;
    if (count == 1 && set.x_run % Isa::kLanes == 0 && pp_.mr % Isa::kLanes == 0) {
      for (; r + Isa::kLanes <= rows; r += Isa::kLanes) write_transposed(g, set, mb * pp_.mr + r, r, s, item, dst, scratch);
    }
    for (; r < rows; ++r) {
      const std::int64_t row = mb * pp_.mr + r;
      const std::int64_t channel = row / members, q = row % members;
      const float bias = pp_.bias[static_cast<std::size_t>(item.group * pp_.m_per_group + channel)];
      const typename Isa::V bias_v = Isa::set1(bias);
      float* out = dst + channel * out_plane + scratch.member[q * kMemberFields];
      for (int v = 0; v < item.nv; ++v) {
        const std::int64_t vector = s * item.nv + v;
        const std::int64_t lane0 = r * nr_ + v * Isa::kLanes;
        const int writes = scratch.write_count[q * vectors + vector];
        if (writes >= 0) {
          const Load* runs = scratch.write_runs + (q * vectors + vector) * kMaxWriteRuns;
          const typename Isa::V first = Isa::add(Isa::load(scratch.slot[0].tile + lane0), bias_v);
          if (count == 1) {
            for (int w = 0; w < writes; ++w) Isa::masked_store(out + runs[w].base, runs[w].lanes, first);
          } else {
            Isa::store_interleaved(out + runs[0].base, first, Isa::add(Isa::load(scratch.slot[1].tile + lane0), bias_v),
                                   writes);
          }
          continue;
        }
        for (int p = 0; p < count; ++p) {
          const float* values = scratch.slot[static_cast<std::size_t>(p)].tile + lane0;
          const std::int64_t* offsets = scratch.lane_offset + ((p * members + q) * vectors + vector) * Isa::kLanes;
          for (int lane = 0; lane < Isa::kLanes; ++lane) {
            if (offsets[lane] >= 0) out[offsets[lane]] = values[lane] + bias;
          }
        }
      }
    }
  }

  // Rows row0 .. row0 + lanes - 1 of a set whose x runs fill vectors: one
  // channel's members with consecutive x residues, so per column the tile's
  // lanes-row block transposed is a vector of consecutive outputs.
  void write_transposed(const Geometry& g, const Phase& set, std::int64_t row0, int r0, std::int64_t s,
                        const WorkItem& item, float* dst, const Scratch& scratch) const {
    const Dims& out_size = pp_.kind == ConvKind::conv_transpose ? g.big_size : g.small_size;
    const std::int64_t members = set.members(), nr_ = nr(item.nv);
    const std::int64_t channel = row0 / members, q0 = row0 % members;
    const Slot& slot = scratch.slot[0];
    const typename Isa::V bias_v = Isa::set1(pp_.bias[static_cast<std::size_t>(item.group * pp_.m_per_group + channel)]);
    float* out = dst + channel * out_size[0] * out_size[1] * out_size[2] + scratch.member[q0 * kMemberFields];
    for (int v = 0; v < item.nv; ++v) {
      // Perfect shuffles of row i with row i + lanes/2, log2(lanes) times, transpose the block.
      typename Isa::V block[Isa::kLanes], next[Isa::kLanes];
      for (int i = 0; i < Isa::kLanes; ++i) block[i] = Isa::load(slot.tile + (r0 + i) * nr_ + v * Isa::kLanes);
      for (int round = 1; round < Isa::kLanes; round *= 2) {
        for (int i = 0; i < Isa::kLanes / 2; ++i) Isa::interleave(block[i], block[i + Isa::kLanes / 2], next[2 * i], next[2 * i + 1]);
        for (int i = 0; i < Isa::kLanes; ++i) block[i] = next[i];
      }
      for (int j = 0; j < Isa::kLanes; ++j) {
        const std::int64_t col = (s * item.nv + v) * Isa::kLanes + j;
        if (col >= item.columns || slot.out_offset[col] < 0) continue;
        std::uint32_t lanes = 0;
        for (int i = 0; i < Isa::kLanes; ++i) {
          if (member_writes(slot, scratch, q0 + i, col)) lanes |= 1u << i;
        }
        Isa::masked_store(out + slot.out_offset[col], lanes, Isa::add(block[j], bias_v));
      }
    }
  }

  // Runs `count` consecutive phase sets (x phases of one row when stride is 2) over one work item.
  void process(const Geometry& g, const Phase* phases, int count, const WorkItem& item, const float* src, float* dst,
               const Scratch& scratch) const {
    std::array<PreparedPhase, 2> prepared{};
    for (int p = 0; p < count; ++p) {
      prepared[static_cast<std::size_t>(p)] =
          prepare_phase(g, phases[p], item, src, scratch.slot[static_cast<std::size_t>(p)], scratch);
    }
    describe_members(g, phases[0], scratch);
    const std::int64_t subs = (item.columns + nr(item.nv) - 1) / nr(item.nv);
    plan_writes(count, phases[0].members(), subs * item.nv, item.columns, scratch);
    const MBlocks blocks = m_blocks_of(phases[0], item);
    for (std::int64_t mb = blocks.first; mb < blocks.end; ++mb)
      for (std::int64_t s = 0; s < subs; ++s) {
        multiply_and_write(prepared, count, phases[0], mb, s, item, g, src, dst, scratch);
      }
  }

  PackedProblem pp_;
  std::int64_t max_k_ = 0;
  std::int64_t max_taps_ = 0;
  std::int64_t max_members_ = 1;
  std::int64_t max_m_blocks_ = 1;
  std::int64_t stride_x_ = 1;
};

template <class Isa>
std::unique_ptr<PreparedKernel> prepare_phase_gemm(const Geometry& g, DType, const void* weight, const void* bias) {
  return std::make_unique<PhaseGemmKernel<Isa>>(g, static_cast<const float*>(weight), static_cast<const float*>(bias));
}
