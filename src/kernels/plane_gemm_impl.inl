// Plane-GEMM family over an ISA traits type `Isa` (simd::Avx512 or simd::Avx2
// plus the tile: kTileChannels, kTileVectors; the masks of its loads: Mask,
// mask, maskz_load; the x-stride-2 shuffle even_pairs, even_pairs_in_order;
// the detour's igemm: kDetour, kDetourIgemm, kDetourInputChannels; kReadsStridedInPlace), included
// inside a namespace of
// plane_gemm_avx512.cpp and plane_gemm_avx2.cpp under that ISA's target region.
//
// Channels-first transposed convolutions with stride 1 or 2 in x and
// convolutions of any stride (unet's and vnet's k2s2 upsampling, the DCGAN
// layers, s1_k3, dilated, and the convolutions they are the gradients of), at
// least kTileChannels output channels per group. It packs no input patches and
// transposes no result tile: a vector's lanes are L (Isa::kLanes) consecutive
// positions of one output phase, loaded straight from the input planes (or a
// strided convolution's phase planes, below; masked where a tap falls
// outside) and stored straight into the output, the two x phases of stride 2
// interleaved in registers.
//
// Math. The stride phases of phase_gemm.hpp with in_step 1. Per (group,
// phase), output channel m and phase position (jz, jy, j):
//     dst[m, out_start + out_step * (jz, jy, j)] = bias[m] + sum_{k = e*C + c} W[k, m] * src[c, (jz, jy, j) + offset_e]
// (zero outside the input), summed over k ascending from zero with the bias
// last: the order of the other GEMM families, so all of them give the same bits.
// Strided convolutions. A convolution of stride s reads input position
// s*j + o_e for tap e (o_e = t*dilation - pad). Writing o_e = s*a_e + b_e
// (0 <= b_e < s), that is position j + a_e of the input's phase plane b_e,
//     split[c, b, u] = src[c, s*u + b]    (u < ceil((size - b) / s), per dimension),
// so when the output rows are short the run first splits the input into its
// s^dims phase planes ([N][phase][C][depth][rows][columns], every plane phase
// 0's size and zero margins as wide as the taps reach past it, in x one margin
// between a row's end and the next row's start) and then runs the stride-1
// computation over them: tap e reads plane b_e at shift a_e, the margins'
// zeros standing in for the input outside, so no load needs a mask and the
// taps' channels are one run of source offsets (split_kernel; dcgan_64_3 as a
// convolution, 1 thread, 0.542 -> 0.508 ms on a Zen 4). The batch goes
// through in chunks of samples whose planes fit kBatchChunkBytes (one sample
// at least), so the workspace does not grow with it. Phase outside channel: a
// tap then walks the channels of one phase, a contiguous block that the
// kernel's other taps of the same phase read again. When the output rows fill
// whole vectors (x stride 1 or 2) the vectors stay within rows and read the
// input directly instead: lane l of a tap's vector is input column
// x_stride * (j0 + l) + o_e, two masked loads and a shuffle for stride 2
// (wide_step2_kernel; measured as fast as one load on a Zen 5, where the split
// cost vnet's 3-D k2s2 layer a fifth of its time). Either way the taps and
// their order are unchanged, so are the bits.
// Positions. A phase plane's positions (jy, j) are numbered q = jy * pitch + j
// and cut into vectors of L. The pitch is the input's row length when the
// phase rows are no longer: then a tap's input for position q is the input
// position q plus a fixed shift, and vectors run on across row ends, so a
// short row does not leave a vector mostly empty (s1_k3's 56 columns are 3.5
// vectors). Otherwise the pitch is the phase row rounded up to L and no
// vector crosses a row end. The vectors of every sample and depth row form
// one sequence, (sample, jz, vector), cut into as few tiles of at most P vectors
// as it takes, their sizes differing by one at most (7 vectors: 2, 2, 3, not
// 3, 3, 1), so that small planes still fill a tile.
// Micro-kernel, for M = kTileChannels output channels and P = kTileVectors vectors:
//     acc[m][p] = sum_e sum_c w[(e*C + c) * M + m] * load(mask[e][p], at[p] + shift[e] + c * plane)
// where at[p] is vector p's first lane's input position for a zero offset,
// shift[e] tap e's offset as a position difference, and mask[e][p] the lanes
// whose position is in the phase and whose input is inside. The micro-kernel
// adds the bias and stores its results into the output rows itself; for x
// stride 2 the even phase's wait in a tile [M][P][L] in L1 until the odd
// phase's micro-kernel interleaves them with its own (measured against a
// separate store pass over the tile: dcgan_64_3 as a convolution, K = 48,
// 0.179 -> 0.164 ms; 2-4% on the others).
// A tap whose masks are empty for all P vectors (a tile of border rows that
// the tap reads above or below the input: dilated's first and last two rows)
// is skipped when every weight is finite: its products are zeros, and adding
// a zero leaves a sum that started from +0 bit for bit as it is.
// Packed weights (at creation): per group, phase and block of M output
// channels, [K][M], channels past the group's zero.
// Work units are single tiles with a range of channel blocks (every block
// unless the tiles are too few to keep the threads busy), shared out by

constexpr int kLanes = Isa::kLanes;
constexpr int kTileChannels = Isa::kTileChannels;  // M: output channels per micro-kernel
constexpr int kTileVectors = Isa::kTileVectors;    // P: vectors of positions per micro-kernel (M x P accumulators)
constexpr std::int64_t kUnitsPerThread = 8;  // at least, splitting channel blocks where the tiles are fewer
constexpr std::int64_t kDirectProducts = 128;  // see PlaneGemmKernel::splits
constexpr int kMaxParts = kLanes;  // row pieces of one vector: one per lane when rows are one position long

// A phase's taps, fixed at creation.
struct PhaseTaps {
  std::array<std::int64_t, kMaxSpatial> residue;
  std::vector<std::int64_t> tap;                                // flat kernel tap of each e
  std::vector<std::array<std::int64_t, kMaxSpatial>> offset;    // input offset of each e
  std::int64_t packed_at = 0;                                   // where its weights start
};

// Where a tap reads in the source (the input, or its phase planes when a
// strided convolution splits it): shift from a lane's source element for a
// zero offset to the one it reads, and per dimension the phase positions
// [lo, hi) for which that element is inside.
struct TapSource {
  std::int64_t shift;
  Dims lo, hi;
};

// One vector's lanes within a row: lanes [lane, lane + count) are phase row
// `row`, columns [column, column + count).
struct Part {
  std::int64_t row, column;
  int lane, count;
};

// Where one vector's results go: per part, the output element that lane 0
// (element 0 of the interleaved pair when stride 2) would have, and which
// lanes (elements) of the part to write.
struct Placement {
  std::int64_t at;
  std::uint32_t elements;
};

// Where a tile's results go: the output of the block's first channel, the
// bias of its channels, and per vector its placements.
struct TileOutput {
  float* dst;
  std::int64_t out_plane;
  const float* bias;
  int channels;  // of the block that exist (the last may be partial)
  const std::array<Placement, kMaxParts>* placements;
  const int* placed;
};

// How a micro-kernel leaves its results: in the tile (the even x phase of a
// stride-2 transposed convolution, which waits for the odd one), or with the
// bias in the output, on their own or interleaved with the tile's even phase.
enum class Epilogue { to_tile, store, interleave_with_tile };

// Rounded towards minus and plus infinity, for b > 0.
std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return -floor_div(-a, b); }

using V = Isa::V;

constexpr std::uint32_t kAllLanes = (std::uint32_t{1} << kLanes) - 1;  // every lane of a vector's load

// How a micro-kernel leaves its accumulators (kEpilogue).
template <int P, Epilogue kEpilogue>
[[gnu::always_inline]] inline void finish_tile(const V (&acc)[kTileChannels][P], float* tile, const TileOutput& out) {
  if constexpr (kEpilogue == Epilogue::to_tile) {
    TCONV_UNROLL_TILE
    for (int m = 0; m < kTileChannels; ++m) {
      TCONV_UNROLL_TILE
      for (int p = 0; p < P; ++p) Isa::store(tile + (m * kTileVectors + p) * kLanes, acc[m][p]);
    }
    return;
  }
  // Locals, not loads through `out`: the compiler cannot tell that the stores
  // leave it alone and reloaded its fields after every store (unet's k2s2
  // layer, transposed: 2.765 -> 2.583 ms on 1 thread, 8 alternating rounds on a
  // Zen 4; the same on 2, where writing its 4 MB output sets the pace).
  float* const dst = out.dst;
  const std::int64_t out_plane = out.out_plane;
  const int stored_channels = out.channels;
  const float* const bias_of = out.bias;
  const Placement* where[P];
  int placed[P];
  TCONV_UNROLL_TILE
  for (int p = 0; p < P; ++p) {
    where[p] = out.placements[p].data();
    placed[p] = out.placed[p];
  }
  TCONV_UNROLL_TILE
  for (int m = 0; m < kTileChannels; ++m) {
    if (m >= stored_channels) break;
    const V bias = Isa::set1(bias_of[m]);
    float* channel = dst + m * out_plane;
    TCONV_UNROLL_TILE
    for (int p = 0; p < P; ++p) {
      const V result = Isa::add(acc[m][p], bias);
      if constexpr (kEpilogue == Epilogue::store) {
        for (int i = 0; i < placed[p]; ++i) Isa::masked_store(channel + where[p][i].at, where[p][i].elements, result);
      } else {
        V low, high;
        Isa::interleave(Isa::add(Isa::load(tile + (m * kTileVectors + p) * kLanes), bias), result, low, high);
        for (int i = 0; i < placed[p]; ++i) {
          Isa::masked_store(channel + where[p][i].at, where[p][i].elements & kAllLanes, low);
          Isa::masked_store(channel + where[p][i].at + kLanes, where[p][i].elements >> kLanes, high);
        }
      }
    }
  }
}

// Neighbouring lanes read neighbouring source elements (x-stride-2 reads go
// through wide_step2_kernel).
template <int P, Epilogue kEpilogue>
void micro_kernel(std::int64_t n_taps, std::int64_t channels, std::int64_t plane, const float* const* at,
                  const std::int64_t* shift, const std::uint32_t* masks, bool skip_empty_taps, const float* w,
                  float* tile, const TileOutput& out) {
  V acc[kTileChannels][P];
  TCONV_UNROLL_TILE
  for (int m = 0; m < kTileChannels; ++m) {
    TCONV_UNROLL_TILE
    for (int p = 0; p < P; ++p) acc[m][p] = Isa::zero();
  }
  for (std::int64_t e = 0; e < n_taps; ++e) {
    const float* from[P];
    Isa::Mask lanes[P];
    std::uint32_t any_lane = 0, all_lanes = kAllLanes;
    TCONV_UNROLL_TILE
    for (int p = 0; p < P; ++p) {
      from[p] = at[p] + shift[e];
      lanes[p] = Isa::mask(masks[e * kTileVectors + p]);
      any_lane |= masks[e * kTileVectors + p];
      all_lanes &= masks[e * kTileVectors + p];
    }
    if (any_lane == 0 && skip_empty_taps) {
      w += channels * kTileChannels;
      continue;
    }
    const auto channel_loop = [&](auto masked) {
      for (std::int64_t c = 0, offset = 0; c < channels; ++c, offset += plane) {
        V v[P];
        TCONV_UNROLL_TILE
        for (int p = 0; p < P; ++p)
          v[p] = masked ? Isa::maskz_load(lanes[p], from[p] + offset) : Isa::load(from[p] + offset);
        TCONV_UNROLL_TILE
        for (int m = 0; m < kTileChannels; ++m) {
          const V weight = Isa::broadcast(w + m);
          TCONV_UNROLL_TILE
          for (int p = 0; p < P; ++p) acc[m][p] = Isa::fmadd(v[p], weight, acc[m][p]);
        }
        w += kTileChannels;
      }
    };
    // Plain loads where every lane reads: taps inside the input's borders
    // (split phase planes go through split_kernel).
    if (all_lanes == kAllLanes) {
      channel_loop(std::false_type{});
    } else {
      channel_loop(std::true_type{});
    }
  }
  finish_tile<P, kEpilogue>(acc, tile, out);
}

// The same sums over a split convolution's phase planes, whose margins hold
// every zero a tap reads: no masks, and the K = taps x channels products one
// run over their source offsets (offsets[k] for k = e*C + c, from a lane's
// source element for a zero offset), so that few channels per tap (dcgan_64_3
// as a convolution: 3) do not pay a tap's set-up every 3 steps.
template <int P>
void split_kernel(std::int64_t k_count, const std::int64_t* offsets, const float* const* at, const float* w,
                  const TileOutput& out) {
  V acc[kTileChannels][P];
  TCONV_UNROLL_TILE
  for (int m = 0; m < kTileChannels; ++m) {
    TCONV_UNROLL_TILE
    for (int p = 0; p < P; ++p) acc[m][p] = Isa::zero();
  }
  const float* from[P];
  TCONV_UNROLL_TILE
  for (int p = 0; p < P; ++p) from[p] = at[p];
  for (std::int64_t k = 0; k < k_count; ++k, w += kTileChannels) {
    V v[P];
    TCONV_UNROLL_TILE
    for (int p = 0; p < P; ++p) v[p] = Isa::load(from[p] + offsets[k]);
    TCONV_UNROLL_TILE
    for (int m = 0; m < kTileChannels; ++m) {
      const V weight = Isa::broadcast(w + m);
      TCONV_UNROLL_TILE
      for (int p = 0; p < P; ++p) acc[m][p] = Isa::fmadd(v[p], weight, acc[m][p]);
    }
  }
  finish_tile<P, Epilogue::store>(acc, nullptr, out);
}

using SplitKernel = decltype(&split_kernel<1>);
template <std::size_t... P>
constexpr std::array<SplitKernel, sizeof...(P)> split_kernels(std::index_sequence<P...>) {
  return {&split_kernel<static_cast<int>(P) + 1>...};
}
// By vectors - 1.
constexpr auto kSplitKernels = split_kernels(std::make_index_sequence<kTileVectors>());

// The same sums for one vector of a strided convolution's x-stride-2 read and
// B blocks of output channels at once (B * M accumulators): each even-element
// shuffle feeds B * M FMAs instead of M (vnet's k2s2 layer as a convolution,
// 0.701 -> 0.637 ms on a Zen 4). The shuffle (Isa::even_pairs) stays within
// 128-bit lanes, so the positions come out of order, and one permute per
// accumulator (Isa::even_pairs_in_order) puts them back before the store
// (unet's k2s2 convolution 1%). w[b] is block b's panel; out holds the B
// blocks' channels (out.channels of them) and vector p's placements.
template <int B>
void wide_step2_kernel(std::int64_t n_taps, std::int64_t channels, std::int64_t plane, const float* at,
                       const std::int64_t* shift, const std::uint32_t* masks, bool skip_empty_taps,
                       const float* const* w_blocks, const TileOutput& out, int p) {
  V acc[B * kTileChannels];
  TCONV_UNROLL_TILE
  for (int m = 0; m < B * kTileChannels; ++m) acc[m] = Isa::zero();
  const float* w[B];
  TCONV_UNROLL_TILE
  for (int b = 0; b < B; ++b) w[b] = w_blocks[b];
  for (std::int64_t e = 0; e < n_taps; ++e) {
    const std::uint32_t mask = masks[e * kTileVectors];
    if (mask == 0 && skip_empty_taps) {
      TCONV_UNROLL_TILE
      for (int b = 0; b < B; ++b) w[b] += channels * kTileChannels;
      continue;
    }
    const float* from = at + shift[e];
    const Isa::Mask lanes = Isa::mask(mask & kAllLanes), upper = Isa::mask(mask >> kLanes);
    for (std::int64_t c = 0, offset = 0; c < channels; ++c, offset += plane) {
      const V v = Isa::even_pairs(Isa::maskz_load(lanes, from + offset), Isa::maskz_load(upper, from + offset + kLanes));
      TCONV_UNROLL_TILE
      for (int b = 0; b < B; ++b) {
        TCONV_UNROLL_TILE
        for (int m = 0; m < kTileChannels; ++m) acc[b * kTileChannels + m] = Isa::fmadd(v, Isa::broadcast(w[b] + m), acc[b * kTileChannels + m]);
        w[b] += kTileChannels;
      }
    }
  }
  // Locals, as in micro_kernel.
  const Placement* const where = out.placements[p].data();
  const int placed = out.placed[p], stored_channels = out.channels;
  float* const dst = out.dst;
  const std::int64_t out_plane = out.out_plane;
  const float* const bias_of = out.bias;
  TCONV_UNROLL_TILE
  for (int m = 0; m < B * kTileChannels; ++m) {
    if (m >= stored_channels) break;
    const V result = Isa::add(Isa::even_pairs_in_order(acc[m]), Isa::set1(bias_of[m]));
    float* channel = dst + m * out_plane;
    for (int i = 0; i < placed; ++i) Isa::masked_store(channel + where[i].at, where[i].elements, result);
  }
}

using WideKernel = decltype(&wide_step2_kernel<1>);
constexpr std::array<WideKernel, 3> kWideKernels{&wide_step2_kernel<1>, &wide_step2_kernel<2>, &wide_step2_kernel<3>};

using MicroKernel = decltype(&micro_kernel<1, Epilogue::store>);
template <Epilogue kEpilogue, std::size_t... P>
constexpr std::array<MicroKernel, sizeof...(P)> micro_kernels(std::index_sequence<P...>) {
  return {&micro_kernel<static_cast<int>(P) + 1, kEpilogue>...};
}
template <Epilogue kEpilogue>
constexpr auto kByVectors = micro_kernels<kEpilogue>(std::make_index_sequence<kTileVectors>());
// By epilogue and vectors - 1.
constexpr std::array<std::array<MicroKernel, kTileVectors>, 3> kMicroKernels{
    kByVectors<Epilogue::to_tile>, kByVectors<Epilogue::store>, kByVectors<Epilogue::interleave_with_tile>};

// Lanes [first, end) of a vector as a mask.
std::uint32_t lane_range(std::int64_t first, std::int64_t end) {
  return static_cast<std::uint32_t>(Isa::first_lanes(end) & ~Isa::first_lanes(first));
}

// The elements 2 * first to 2 * (end - 1) of two vectors, the lanes [first, end) of a step-2 load.
std::uint32_t element_range(std::int64_t first, std::int64_t end) {
  if (first >= end) return 0;
  const auto below = [](std::int64_t n) { return n >= 32 ? ~std::uint32_t{0} : (std::uint32_t{1} << n) - 1; };
  return below(2 * end - 1) & ~below(2 * first);
}

class PlaneGemmKernel final : public PreparedKernel {
 public:
  PlaneGemmKernel(const Geometry& g, const float* weight, const float* bias)
      : groups_(g.groups),
        cin_(g.input_per_group()),
        cout_(g.output_per_group()),
        blocks_((g.output_per_group() + kTileChannels - 1) / kTileChannels),
        slabs_(g) {
    const bool transposed = g.kind == ConvKind::conv_transpose;
    x_members_ = transposed ? g.stride[2] : 1;
    if (!transposed) split_ = g.stride;
    for (std::int64_t rz = 0; rz < (transposed ? g.stride[0] : 1); ++rz)
      for (std::int64_t ry = 0; ry < (transposed ? g.stride[1] : 1); ++ry)
        for (std::int64_t rx = 0; rx < x_members_; ++rx) {
          const phase_gemm::Phase ph = phase_gemm::single_phase(g, {rz, ry, rx});
          phases_.push_back(PhaseTaps{{rz, ry, rx}, ph.taps[0], ph.offsets, 0});
        }
    // Weights: [group][phase][block][K][M].
    std::int64_t total = 0;
    for (auto& p : phases_) {
      p.packed_at = total;
      total += groups_ * blocks_ * k_of(p) * kTileChannels;
    }
    packed_.assign(static_cast<std::size_t>(total), 0.0f);
    for (const auto& p : phases_) phase_gemm::pack_phase_blocks(g, weight, p.tap, kTileChannels, packed_.data() + p.packed_at);
    bias_.assign(static_cast<std::size_t>(g.output_channels()), 0.0f);
    if (bias) std::copy(bias, bias + g.output_channels(), bias_.begin());
    skip_empty_taps_ = phase_gemm::may_skip_zero_products(packed_);
    WeightFacts facts;
    facts.all_finite = skip_empty_taps_;
    may_detour_ = channels_last_detour_rejects(Isa::kDetour, g, facts).empty();
    detours_every_shape_ = may_detour_ && split_ != Dims{1, 1, 1} && cin_ >= Isa::kDetourInputChannels;
    weight_geometry_ = g;
  }

  std::size_t workspace_bytes(const Geometry& g, int threads) const override {
    if (detours(g)) return detour().workspace_bytes(g, threads);
    if (!splits(g)) return 0;
    const Slabs::Cut cut = split_cut(g);
    const Geometry largest = slabs_.largest(g, cut).g;
    if (cut.rows == slabs_.out_rows(g)) return static_cast<std::size_t>(plane_floats(largest)) * sizeof(float);
    const Geometry first = slabs_.piece(g, 1, 0, cut.rows).g;
    return static_cast<std::size_t>(std::max(plane_floats(first), slab_kernel().plane_floats(largest))) * sizeof(float);
  }

  std::string strategy(const Geometry& g, int threads) const override {
    if (detours(g)) {
      const std::string slabs = detour().strategy(g, threads);
      const std::string via = std::string("channels-last detour via ") + Isa::kDetourIgemm + (slabs.empty() ? "" : " " + slabs);
      if (detours_every_shape_) {
        return via + "; a strided convolution of " + std::to_string(cin_) + " input channels per group (at least " +
               std::to_string(Isa::kDetourInputChannels) + ")";
      }
      return via + "; here " +
             std::to_string(static_cast<int>(100 * lane_use(g))) + "% of plane_gemm's lanes would hold a position and " +
             std::to_string(static_cast<int>(100 * inside_share(g))) + "% of its products read inside the input";
    }
    if (splits(g)) {
      const Slabs::Cut cut = split_cut(g);
      if (cut.rows == slabs_.out_rows(g)) return "input split into its stride phases";
      return "input split into its stride phases, in slabs of " + std::to_string(cut.rows) + " output rows";
    }
    return split_ == Dims{1, 1, 1} ? "input read in place" : "strided input read in place";
  }

  void run(const Geometry& g, const void* src_v, void* dst_v, void* workspace, int threads) const override {
    if (detours(g)) {
      detour().run(g, src_v, dst_v, workspace, threads);
      return;
    }
    const auto* src = static_cast<const float*>(src_v);
    auto* dst = static_cast<float*>(dst_v);
    if (!splits(g)) {
      const Plan plan = plan_for(g, threads, false);
      UnitQueues queues(plan.group_units * groups_, threads);
#pragma omp parallel num_threads(threads)
      {
        std::vector<RowPhaseTaps> row_phases_taps(static_cast<std::size_t>(row_phases()));
        queues.work(omp_get_thread_num(), [&](std::int64_t unit) { run_unit(g, plan, unit, src, dst, row_phases_taps); });
      }
      return;
    }
    // A chunk of samples at a time, or a slab of one (kBatchChunkBytes, kernel.hpp; slabs.hpp).
    const Slabs::Cut cut = split_cut(g);
    if (cut.rows == slabs_.out_rows(g)) {
      slabs_.for_each(g, cut, [&](const Slabs::Piece& chunk, std::int64_t n, std::int64_t) {
        run_split(chunk.g, whole(chunk.g), src + n * g.input_channels() * g.big_spatial(),
                  dst + n * g.output_channels() * g.small_spatial(), static_cast<float*>(workspace), threads);
      });
      return;
    }
    run_slabs(g, cut, src, dst, static_cast<float*>(workspace), threads);
  }

 private:
  // What the micro-kernels read: the input itself, or its phase planes.
  struct Source {
    bool split = false;               // the phase planes
    Dims step{1, 1, 1};               // source positions between neighbouring phase positions
    Dims size;                        // positions per dimension of a plane (phase 0's when split)
    Dims margin{};                    // zeros before position 0 per dimension (split planes only)
    Dims extent;                      // positions per dimension as laid out: size and margins
    std::int64_t channel_stride = 0;  // floats from one channel's plane to the next's
    std::int64_t phase_stride = 0;    // from one phase's channels to the next's
    std::int64_t sample_stride = 0;   // from one sample to the next
  };
  struct Plan {
    Source source;
    std::int64_t pitch = kLanes;             // q = jy * pitch + j
    bool flat = false;                       // pitch is the source's row length: vectors run across row ends
    std::vector<std::int64_t> vectors;       // per row phase: vectors per (sample, depth row) plane
    std::vector<std::int64_t> tiles;         // per row phase: tiles its sequence of vectors is cut into
    // Work units: tile t of row phase rp (the x phases of one depth and
    // height residue) for a range of channel blocks, numbered group by group,
    // in each by t, rp and block range, so that a thread's contiguous range
    // covers every row phase of one stretch of the output. A row phase with
    // fewer tiles than the most leaves its last units empty.
    std::int64_t block_ranges = 1;  // every block, unless the tiles are too few to keep the threads busy
    std::int64_t most_tiles = 0;    // of any row phase
    std::int64_t group_units = 0;
    std::int64_t out_plane = 0;     // floats from one output channel to the next (and a sample's channels on)
  };
  // Where a split's piece of the problem lies in its tensors (slabs.hpp): the
  // input's and the output's channel strides and, in dimension d, the input
  // row of the piece's row 0 and the input's sizes (piece rows outside them
  // read as zeros). A whole chunk of samples is its own window.
  struct Window {
    std::int64_t in_plane, out_plane;
    int d = 0;
    std::int64_t first_row = 0;
    Dims input;
  };
  static Window whole(const Geometry& g) { return {g.big_spatial(), g.small_spatial(), 0, 0, g.input_size()}; }
  // What a thread works out once for a row phase, for all the tiles of it that it takes.
  struct RowPhaseTaps {
    std::int64_t row_phase = -1;
    std::array<std::int64_t, 2> columns_of{};
    std::array<std::vector<TapSource>, 2> taps;
    std::array<std::vector<std::int64_t>, 2> shift;
    std::array<std::vector<std::uint32_t>, 2> masks;         // per tile, [e][p]
    std::vector<std::int64_t> split_offsets;                 // split sources: per product, its source offset
    std::array<std::vector<std::uint32_t>, 2> column_masks;  // pitch of whole vectors: [e][k]
  };

  // The share of the vector lanes that carry an output position.
  double lane_use(const Geometry& g) const {
    const Plan plan = vector_layout(g, splits(g));
    std::int64_t lanes = 0;
    for (std::int64_t rp = 0; rp < row_phases(); ++rp) {
      const auto axes = phase_gemm::axes_of(g, phases_[static_cast<std::size_t>(rp * x_members_)].residue);
      lanes += g.batch * axes[0].out_count * plan.vectors[static_cast<std::size_t>(rp)] * kLanes * x_members_;
    }
    const Dims& out = g.output_size();
    return lanes == 0 ? 1.0 : static_cast<double>(g.batch * out[0] * out[1] * out[2]) / static_cast<double>(lanes);
  }

  // The share of the taps' products that read inside the input (the rest
  // multiply the zeros of masked lanes; igemm leaves those taps out).
  double inside_share(const Geometry& g) const {
    const Dims& in = g.input_size();
    double inside = 0, all = 0;
    for (const auto& p : phases_) {
      const auto axes = phase_gemm::axes_of(g, p.residue);
      for (const auto& o : p.offset) {
        double count = 1, positions = 1;
        for (int d = 0; d < kMaxSpatial; ++d) {
          const std::int64_t s = axes[d].in_step;
          const std::int64_t lo = std::max<std::int64_t>(0, ceil_div(-o[d], s));
          const std::int64_t hi = std::min(axes[d].out_count, ceil_div(in[d] - o[d], s));
          count *= static_cast<double>(std::max<std::int64_t>(0, hi - lo));
          positions *= static_cast<double>(axes[d].out_count);
        }
        inside += count;
        all += positions;
      }
    }
    return all == 0 ? 1.0 : inside / all;
  }

  // Shapes on which less than 9/10 of plane_gemm's products would count (lanes
  // holding a position, taps reading inside the input) go through the
  // channels-last detour when the output channels fill its vectors; igemm
  // wastes neither. Measured (Zen 4, 2 threads, min of 4 alternating rounds,
  // detour time / plane_gemm's, transposed and as a convolution), by share:
  //   0.63  3x3 s1 512->512 on 7 x 7           0.69 / 0.69   (batch 8: 0.80 / 0.79)
  //   0.66  k4s2 256->128 from 7 x 7           0.68 / 0.73
  //   0.77  dcgan_512 (4 x 4, k4s2p1)          0.78 / 0.77
  //   0.77  1x1 512->512 on 7 x 7, batch 4     0.84 / 0.84
  //   0.78  3x3 s1 128->128 on 10 x 10         0.87 / 0.91
  //   0.85  3x3 s1 256->256 on 14 x 14         0.91 / 0.91
  //   0.88  dcgan_256 (8 x 8, k4s2p1)          0.93 / 0.89
  //   0.92  dilated (32 x 32, k3d2)            1.09 / 1.09
  //   0.94  1x1 256->256 on 14 x 14            1.14 / 1.15
  //   0.95  3x3 s1 128->128 on 28 x 28         0.99 / 0.99
  //   0.98  s1_k3 (56 x 56)                    1.09 / 1.07
  //   1.00  unet, vnet (k2s2)                  1.36 / 1.31, 1.63 / 1.50
  // Isa::kDetourInputChannels: where an ISA's detour runs strided
  // convolutions of that many input channels faster whatever their shape.
  bool detours(const Geometry& g) const {
    return detours_every_shape_ || (may_detour_ && 10 * lane_use(g) * inside_share(g) < 9);
  }

  // Built from the packed weights on the first shape that takes it, so that
  // problems which never do keep one copy of the weights.
  const PreparedKernel& detour() const {
    std::call_once(detour_once_, [&] { detour_ = make_channels_last_detour(Isa::kDetour, weight_geometry_, unpacked_weights().data(), bias_.data()); });
    return *detour_;
  }

  // The weights in the user's layout, from the packed ones.
  std::vector<float> unpacked_weights() const {
    const Geometry& g = weight_geometry_;
    std::vector<float> weight(static_cast<std::size_t>(g.small_channels * g.big_per_group() * g.kernel_taps()));
    for (const auto& p : phases_) phase_gemm::unpack_phase_blocks(g, packed_.data() + p.packed_at, p.tap, kTileChannels, weight.data());
    return weight;
  }

  // A strided convolution reads the input directly when its output rows fill
  // whole vectors (an eighth of the lanes left empty at most), x stride is 1
  // or 2, and the split would weigh: each input element takes part in few
  // products (output channels x taps / strides, at most kDirectProducts),
  // else its phase planes. Measured split -> direct, 2 threads, min of
  // alternating rounds: on a Zen 5, vnet's 3-D k2s2 layer (64 products per
  // element) 0.420 -> 0.383 ms; on a Zen 4 with wide_step2_kernel, unet's 2-D
  // k2s2 (128) 1.382 -> 1.302, 1.413 -> 1.322 and 1.497 -> 1.304 in three
  // runs of 8-10 rounds (an earlier run, with more memory bandwidth free,
  // 1.288 -> 1.341: the split writes and reads back an input-sized
  // workspace, the direct read needs none), dcgan_64_3 (256) 0.308 -> 0.325
  // and 0.328 -> 0.327. Also read directly, whatever the products: samples
  // whose phase planes exceed kBatchChunkBytes, which would otherwise take a
  // workspace of a whole sample and leave the cache before their use (Zen 4,
  // 2 threads, min of 3 alternating rounds, split -> direct: k4s2 64 -> 64
  // from 128 x 128, 4.2 MB of phase planes, 2.60 -> 2.40 ms; k3s2 64 -> 128
  // from 128 x 128, batch 2, 7.43 -> 5.72). An ISA whose strided reads do
  // not pay (Isa::kReadsStridedInPlace) always splits.
  bool splits(const Geometry& g) const {
    if (split_ == Dims{1, 1, 1}) return false;
    if (!Isa::kReadsStridedInPlace) return true;
    const std::int64_t columns = g.output_size()[2], rounded = (columns + kLanes - 1) / kLanes * kLanes;
    if (split_[2] > 2 || 8 * (rounded - columns) > rounded) return true;
    const std::int64_t products = g.output_per_group() * g.kernel_taps() / (split_[0] * split_[1] * split_[2]);
    return products > kDirectProducts && sample_bytes(source_for(g, true)) <= kBatchChunkBytes;
  }

  // The source as the phase planes (`split`) or the input itself.
  Source source_for(const Geometry& g, bool split) const {
    Source source;
    const Dims& in = g.input_size();
    source.split = split;
    if (!source.split) source.step = split_;
    const Dims& parts = source.split ? split_ : Dims{1, 1, 1};
    std::int64_t phases = 1;
    for (int d = 0; d < kMaxSpatial; ++d) {
      source.size[d] = (in[d] + parts[d] - 1) / parts[d];
      phases *= parts[d];
    }
    source.extent = source.size;
    if (source.split) {
      // Margins wide enough for every tap's reads at every output position:
      // positions j + a for j < out, a = floor(o / s) of each tap offset o.
      // In x the zeros after a row are those before the next one, so a row
      // takes the wider of its two margins once.
      const Dims& out = g.output_size();
      Dims before{}, after{};
      for (const auto& o : phases_[0].offset) {
        for (int d = 0; d < kMaxSpatial; ++d) {
          const std::int64_t a = floor_div(o[d], split_[d]);
          before[d] = std::max(before[d], -a);
          after[d] = std::max(after[d], out[d] - 1 + a - (source.size[d] - 1));
        }
      }
      for (int d = 0; d < kMaxSpatial; ++d) {
        source.margin[d] = before[d];
        source.extent[d] = source.size[d] + (d + 1 == kMaxSpatial ? std::max(before[d], after[d]) : before[d] + after[d]);
      }
    }
    source.channel_stride = source.extent[0] * source.extent[1] * source.extent[2];
    source.phase_stride = g.input_channels() * source.channel_stride;
    source.sample_stride = phases * source.phase_stride;
    return source;
  }

  // Floats of a split's phase planes for g (what run_split takes).
  std::int64_t plane_floats(const Geometry& g) const {
    const Source source = source_for(g, true);
    return g.batch * source.sample_stride + overrun(source);
  }
  Slabs::Cut split_cut(const Geometry& g) const {
    return slabs_.cut(g, [&](const Geometry& piece) {
      const PlaneGemmKernel& kernel = piece.pad_begin == weight_geometry_.pad_begin ? *this : slab_kernel();
      return kernel.plane_floats(piece) * static_cast<std::int64_t>(sizeof(float));
    });
  }

  // A sample in slabs, each split from the input rows it reads (zeros
  // outside the input) and computed by this kernel (a first slab) or its
  // slab-frame twin into its output rows.
  void run_slabs(const Geometry& g, const Slabs::Cut& cut, const float* src, float* dst, float* planes,
                 int threads) const {
    const std::int64_t in_plane = g.big_spatial(), out_plane = g.small_spatial();
    const std::int64_t out_row = out_plane / slabs_.out_rows(g);
    slabs_.for_each(g, cut, [&](const Slabs::Piece& piece, std::int64_t n, std::int64_t o0) {
      const Window window{in_plane, out_plane, slabs_.dimension(), piece.first_input_row, g.input_size()};
      const PlaneGemmKernel& kernel = piece.slab_frame ? slab_kernel() : *this;
      kernel.run_split(piece.g, window, src + n * g.input_channels() * in_plane,
                       dst + n * g.output_channels() * out_plane + o0 * out_row, planes, threads);
    });
  }

  // The kernel of the slab frame: this one, or where that moves the padding
  // a twin, built from the packed weights on the first sample that needs it.
  const PlaneGemmKernel& slab_kernel() const {
    if (!slabs_.moves_padding()) return *this;
    std::call_once(slab_twin_once_, [&] {
      slab_twin_ = std::make_unique<PlaneGemmKernel>(slabs_.slab_frame(weight_geometry_), unpacked_weights().data(), bias_.data());
    });
    return *slab_twin_;
  }

  // A split convolution's batch, a chunk of one or a slab of a sample (in
  // `window`): the input into its phase planes, then the units over them.
  void run_split(const Geometry& g, const Window& window, const float* src, float* dst, float* split, int threads) const {
    Plan plan = plan_for(g, threads, true);
    plan.out_plane = window.out_plane;
    UnitQueues queues(plan.group_units * groups_, threads);
    const std::int64_t planes = g.batch * g.input_channels();
    std::fill_n(split + g.batch * plan.source.sample_stride, overrun(plan.source), 0.0f);
#pragma omp parallel num_threads(threads)
    {
#pragma omp for schedule(static)
      for (std::int64_t plane = 0; plane < planes; ++plane) {
        const std::int64_t n = plane / g.input_channels(), c = plane % g.input_channels();
        split_plane(g, plan.source, window, src + plane * window.in_plane,
                    split + n * plan.source.sample_stride + c * plan.source.channel_stride);
      }
      // Units in sample order, each thread's range in the split's static
      // order: a thread reads the phase planes it wrote itself (but for one
      // border sample and the units it takes from the other's range) from its
      // own L2, not the other core's (dcgan_64_3 as a convolution, 2 threads,
      // Zen 4: 0.308 -> 0.281 ms, min of 10 alternating rounds).
      std::vector<RowPhaseTaps> row_phases_taps(static_cast<std::size_t>(row_phases()));
      queues.work(omp_get_thread_num(), [&](std::int64_t unit) { run_unit(g, plan, unit, split, dst, row_phases_taps); });
    }
  }
  static std::int64_t sample_bytes(const Source& source) {
    return source.sample_stride * static_cast<std::int64_t>(sizeof(float));
  }

  // Floats past the last phase plane that lanes past the output's positions
  // (never stored) may read: a vector that runs on across a flat row end or
  // past the plane's last row, and the widest tap shift past a row.
  static std::int64_t overrun(const Source& source) { return 2 * source.extent[2] + 2 * kLanes; }

  // Where tap offset o (input positions) reads in the source.
  TapSource tap_source(const Geometry& g, const Source& source, const std::array<std::int64_t, kMaxSpatial>& o) const {
    const Dims& in = g.input_size();
    TapSource tap{};
    Dims shift{};
    std::int64_t phase = 0;
    for (int d = 0; d < kMaxSpatial; ++d) {
      if (source.split) {
        // Source position j + a of phase plane b, inside its margins at every output position.
        const std::int64_t s = split_[d], a = floor_div(o[d], s), b = o[d] - a * s;
        shift[d] = a;
        tap.lo[d] = std::numeric_limits<std::int64_t>::min();
        tap.hi[d] = std::numeric_limits<std::int64_t>::max();
        phase = phase * s + b;
      } else {
        // Input position step * j + o.
        const std::int64_t s = source.step[d];
        shift[d] = o[d];
        tap.lo[d] = ceil_div(-o[d], s);
        tap.hi[d] = ceil_div(in[d] - o[d], s);
      }
    }
    const Dims& n = source.extent;
    tap.shift = phase * source.phase_stride + (shift[0] * n[1] + shift[1]) * n[2] + shift[2];
    return tap;
  }

  // One input channel's plane `from` into its phase planes, the first at `to`
  // (planes of the source's extent, phase_stride apart), every element of
  // each written once: the input's, or a zero in the margins, past a phase's
  // own extent and, for a slab, where its rows pass the input's (`window`).
  void split_plane(const Geometry& g, const Source& source, const Window& window, const float* from, float* to) const {
    const Dims& in = g.input_size();
    const Dims& full = window.input;
    const Dims& e = source.extent;
    const Dims& m = source.margin;
    const std::int64_t sx = split_[2];
    Dims shift{};  // input position of the piece's position 0
    shift[window.d] = window.first_row;
    const bool whole_rows = shift[2] == 0 && full[2] == in[2];
    for (std::int64_t bz = 0; bz < split_[0]; ++bz)
      for (std::int64_t by = 0; by < split_[1]; ++by)
        for (std::int64_t uz = 0; uz < e[0]; ++uz)
          for (std::int64_t uy = 0; uy < e[1]; ++uy) {
            // Row (uz, uy) of the phases (bz, by, bx) for every bx is input row (z, y).
            const std::int64_t z = (uz - m[0]) * split_[0] + bz, y = (uy - m[1]) * split_[1] + by;
            const std::int64_t input_z = z + shift[0], input_y = y + shift[1];
            float* into = to + (bz * split_[1] + by) * sx * source.phase_stride + (uz * e[1] + uy) * e[2];
            if (uz < m[0] || uy < m[1] || z >= in[0] || y >= in[1] || input_z < 0 || input_z >= full[0] ||
                input_y < 0 || input_y >= full[1]) {
              for (std::int64_t bx = 0; bx < sx; ++bx) std::fill_n(into + bx * source.phase_stride, e[2], 0.0f);
              continue;
            }
            const float* row = from + (input_z * full[1] + input_y) * full[2];
            if (sx == 2 && whole_rows) {
              for (std::int64_t bx = 0; bx < sx; ++bx) {
                float* phase_row = into + bx * source.phase_stride;
                std::fill_n(phase_row, m[2], 0.0f);
                std::fill(phase_row + m[2] + (in[2] - bx + 1) / 2, phase_row + e[2], 0.0f);
              }
              Isa::split_row(row, in[2], into + m[2], into + source.phase_stride + m[2]);
              continue;
            }
            for (std::int64_t bx = 0; bx < sx; ++bx) {
              // Phase positions [lo, hi) of the row read the input; the rest are zeros.
              const std::int64_t columns = (in[2] - bx + sx - 1) / sx, x0 = bx + shift[2];
              const std::int64_t lo = std::clamp<std::int64_t>(ceil_div(-x0, sx), 0, columns);
              const std::int64_t hi = std::clamp<std::int64_t>(ceil_div(full[2] - x0, sx), lo, columns);
              float* phase_row = into + bx * source.phase_stride + m[2];
              std::fill(phase_row - m[2], phase_row + lo, 0.0f);
              std::fill(phase_row + hi, phase_row - m[2] + e[2], 0.0f);
              for (std::int64_t u = lo; u < hi; u += kLanes) {
                const V v = Isa::masked_load_strided(Isa::first_lanes(hi - u), row + x0 + u * sx, sx);
                Isa::masked_store(phase_row + u, Isa::first_lanes(hi - u), v);
              }
            }
          }
  }

  std::int64_t k_of(const PhaseTaps& p) const { return static_cast<std::int64_t>(p.tap.size()) * cin_; }
  std::int64_t weights_of(const PhaseTaps& p, std::int64_t grp, std::int64_t block) const {
    return p.packed_at + (grp * blocks_ + block) * k_of(p) * kTileChannels;
  }
  std::int64_t row_phases() const { return static_cast<std::int64_t>(phases_.size()) / x_members_; }

  // The plan's source, pitch, vectors and tiles, without the work units.
  Plan vector_layout(const Geometry& g, bool split) const {
    Plan plan;
    plan.source = source_for(g, split);
    plan.out_plane = g.output_size()[0] * g.output_size()[1] * g.output_size()[2];
    const Dims& in = plan.source.extent;
    // x residue 0 has the most columns.
    const std::int64_t columns = phase_gemm::axes_of(g, phases_[0].residue)[2].out_count;
    const std::int64_t rounded = (columns + kLanes - 1) / kLanes * kLanes;
    // Flat when the phase rows fit the source's and that wastes fewer lanes
    // (columns past the phase's, masked) than rounding each row up to whole vectors.
    plan.flat = plan.source.step == Dims{1, 1, 1} && columns <= in[2] &&
                (in[2] - columns) * rounded <= (rounded - columns) * in[2];
    plan.pitch = plan.flat ? in[2] : std::max<std::int64_t>(rounded, kLanes);
    for (std::int64_t rp = 0; rp < row_phases(); ++rp) {
      const auto axes = phase_gemm::axes_of(g, phases_[static_cast<std::size_t>(rp * x_members_)].residue);
      const std::int64_t positions = axes[1].out_count * plan.pitch;
      plan.vectors.push_back(axes[2].out_count > 0 ? (positions + kLanes - 1) / kLanes : 0);
      plan.tiles.push_back((g.batch * axes[0].out_count * plan.vectors.back() + kTileVectors - 1) / kTileVectors);
    }
    return plan;
  }

  Plan plan_for(const Geometry& g, int threads, bool split) const {
    Plan plan = vector_layout(g, split);
    const std::vector<std::int64_t>& tiles = plan.tiles;
    std::int64_t total = 0;
    for (const std::int64_t n : tiles) total += n;
    // When the tiles are too few for every thread to have several, each also
    // splits into ranges of channel blocks.
    const std::int64_t wanted = std::max<std::int64_t>(1, (kUnitsPerThread * threads + groups_ - 1) / groups_);
    plan.block_ranges = std::clamp<std::int64_t>((wanted + total - 1) / std::max<std::int64_t>(total, 1), 1, blocks_);
    plan.most_tiles = *std::max_element(tiles.begin(), tiles.end());
    plan.group_units = plan.most_tiles * row_phases() * plan.block_ranges;
    return plan;
  }

  // The taps of row phase rp as the tiles read them (a thread works them out
  // once per run, for all its units of the row phase).
  void set_up_row_phase(const Geometry& g, const Plan& plan, std::int64_t rp, RowPhaseTaps& rows) const {
    rows.row_phase = rp;
    const PhaseTaps* members = &phases_[static_cast<std::size_t>(rp * x_members_)];
    const std::int64_t in_plane = plan.source.channel_stride;
    for (std::int64_t q = 0; q < 2; ++q) {
      const auto qi = static_cast<std::size_t>(q);
      rows.taps[qi].clear();
      rows.shift[qi].clear();
      rows.column_masks[qi].clear();
      if (q >= x_members_) continue;
      rows.columns_of[qi] = phase_gemm::axes_of(g, members[q].residue)[2].out_count;
      for (const auto& o : members[q].offset) {
        rows.taps[qi].push_back(tap_source(g, plan.source, o));
        rows.shift[qi].push_back(rows.taps[qi].back().shift);
      }
      rows.masks[qi].resize(members[q].tap.size() * kTileVectors);
    }
    // Phase planes hold zeros in their margins: every lane of every tap reads
    // inside, in place or past the output's positions (lanes never stored),
    // so split_kernel needs no masks, only each product's source offset.
    rows.split_offsets.clear();
    if (plan.source.split) {
      for (const std::int64_t tap_shift : rows.shift[0])
        for (std::int64_t c = 0; c < cin_; ++c) rows.split_offsets.push_back(tap_shift + c * in_plane);
    }
    // With a pitch of whole vectors (always unless flat), a vector is the
    // columns [L k, L k + L) (L lanes) of one phase row (never past the last row), and
    // a tap's mask is its row test and a mask of k, worked out here once per tap
    // and k ([e][k]) instead of per vector (dcgan_64_3 as a convolution spent
    // 14% of its time in this function).
    if (plan.pitch % kLanes == 0 && !plan.source.split) {
      for (std::int64_t q = 0; q < x_members_; ++q) {
        const auto qi = static_cast<std::size_t>(q);
        for (const TapSource& tap : rows.taps[qi]) {
          for (std::int64_t k = 0; k < plan.pitch / kLanes; ++k) {
            const std::int64_t lo = std::max(k * kLanes, tap.lo[2]) - k * kLanes;
            const std::int64_t hi = std::min({(k + 1) * kLanes, rows.columns_of[qi], tap.hi[2]}) - k * kLanes;
            rows.column_masks[qi].push_back(plan.source.step[2] == 1 ? lane_range(lo, hi) : element_range(lo, hi));
          }
        }
      }
    }
  }

  // Unit `unit` (Plan): one tile for a range of channel blocks.
  // `row_phases_taps`: the thread's RowPhaseTaps, one per row phase.
  void run_unit(const Geometry& g, const Plan& plan, std::int64_t unit, const float* src, float* dst,
                std::vector<RowPhaseTaps>& row_phases_taps) const {
    const std::int64_t grp = unit / plan.group_units, in_group = unit % plan.group_units;
    const std::int64_t range = in_group % plan.block_ranges, rp = in_group / plan.block_ranges % row_phases();
    const std::int64_t t = in_group / plan.block_ranges / row_phases();
    const std::int64_t tiles = plan.tiles[static_cast<std::size_t>(rp)];
    if (t >= tiles) return;
    const std::int64_t first_block = range * blocks_ / plan.block_ranges, end_block = (range + 1) * blocks_ / plan.block_ranges;
    RowPhaseTaps& row_taps = row_phases_taps[static_cast<std::size_t>(rp)];
    if (row_taps.row_phase != rp) set_up_row_phase(g, plan, rp, row_taps);
    const auto& columns_of = row_taps.columns_of;
    const auto& taps = row_taps.taps;
    const auto& shift = row_taps.shift;
    auto& masks = row_taps.masks;
    const auto& split_offsets = row_taps.split_offsets;
    const auto& column_masks = row_taps.column_masks;
    const PhaseTaps* members = &phases_[static_cast<std::size_t>(rp * x_members_)];
    const Dims& in = plan.source.extent;
    const Dims& margin = plan.source.margin;
    const Dims& out = g.output_size();
    const auto axes = phase_gemm::axes_of(g, members[0].residue);
    const std::int64_t depth = axes[0].out_count, rows = axes[1].out_count;
    const std::int64_t vectors = plan.vectors[static_cast<std::size_t>(rp)];
    const std::int64_t in_plane = plan.source.channel_stride, out_plane = plan.out_plane;
    const std::int64_t sequence = g.batch * depth * vectors;
    const std::int64_t step_x = plan.source.step[2];
    const bool whole_vectors = plan.pitch % kLanes == 0;
    const std::int64_t row_vectors = plan.pitch / kLanes;
    std::array<const float*, kTileVectors> at{};
    std::array<std::array<Placement, kMaxParts>, kTileVectors> placements{};
    std::array<int, kTileVectors> placed{};
    alignas(64) float tile[kTileChannels * kTileVectors * kLanes];  // the even x phase's results

    const std::int64_t first = t * sequence / tiles;
    const int count = static_cast<int>((t + 1) * sequence / tiles - first);
    for (int p = 0; p < count; ++p) {
      const std::int64_t s = first + p;
      const std::int64_t n = s / (depth * vectors), jz = s / vectors % depth, q0 = s % vectors * kLanes;
      // The vector's lanes, row by row.
      std::array<Part, kMaxParts> parts;  // the first n_parts are set
      int n_parts = 0;
      for (std::int64_t lane = 0, row = q0 / plan.pitch, column = q0 % plan.pitch; lane < kLanes; ++row, column = 0) {
        const std::int64_t length = std::min(kLanes - lane, plan.pitch - column);
        if (row < rows) parts[static_cast<std::size_t>(n_parts++)] = {row, column, static_cast<int>(lane), static_cast<int>(length)};
        lane += length;
      }
      // Input position of lane 0 (rows past the input's are never read: every lane there is masked).
      const std::int64_t jy0 = q0 / plan.pitch, j0 = q0 % plan.pitch;
      const Dims& step = plan.source.step;
      at[static_cast<std::size_t>(p)] = src + n * plan.source.sample_stride + grp * cin_ * in_plane +
                                        ((step[0] * jz + margin[0]) * in[1] + step[1] * jy0 + margin[1]) * in[2] +
                                        step[2] * j0 + margin[2];
      for (std::int64_t q = 0; q < x_members_; ++q) {
        const PhaseTaps& member = members[q];
        const std::int64_t columns = columns_of[static_cast<std::size_t>(q)];
        if (plan.source.split) continue;
        if (whole_vectors) {
          const std::int64_t row = jy0, k = j0 / kLanes;
          for (std::size_t e = 0; e < member.tap.size(); ++e) {
            const TapSource& tap = taps[static_cast<std::size_t>(q)][e];
            const bool inside = jz >= tap.lo[0] && jz < tap.hi[0] && row >= tap.lo[1] && row < tap.hi[1];
            masks[static_cast<std::size_t>(q)][e * kTileVectors + static_cast<std::size_t>(p)] =
                inside ? column_masks[static_cast<std::size_t>(q)][e * static_cast<std::size_t>(row_vectors) + static_cast<std::size_t>(k)] : 0;
          }
          continue;
        }
        for (std::size_t e = 0; e < member.tap.size(); ++e) {
          const TapSource& tap = taps[static_cast<std::size_t>(q)][e];
          std::uint32_t lanes = 0;
          if (jz >= tap.lo[0] && jz < tap.hi[0]) {
            for (int i = 0; i < n_parts; ++i) {
              const Part& part = parts[static_cast<std::size_t>(i)];
              if (part.row < tap.lo[1] || part.row >= tap.hi[1]) continue;
              // Columns j of the part with j < columns and lo <= j < hi.
              const std::int64_t lo = std::max(part.column, tap.lo[2]) - part.column + part.lane;
              const std::int64_t hi = std::min({part.column + part.count, columns, tap.hi[2]}) - part.column + part.lane;
              // With x step 2, the elements from the first lane's to the last's.
              lanes |= step_x == 1 ? lane_range(lo, hi) : element_range(lo, hi);
            }
          }
          masks[static_cast<std::size_t>(q)][e * kTileVectors + static_cast<std::size_t>(p)] = lanes;
        }
      }
      // Output element of each part's lane 0 and the elements it writes.
      const std::int64_t oz = axes[0].out_start + jz * axes[0].out_step;
      int& k = placed[static_cast<std::size_t>(p)];
      k = 0;
      for (int i = 0; i < n_parts; ++i) {
        const Part& part = parts[static_cast<std::size_t>(i)];
        const std::int64_t oy = axes[1].out_start + part.row * axes[1].out_step;
        const std::int64_t row_at = n * g.output_channels() * out_plane + (oz * out[1] + oy) * out[2];
        if (x_members_ == 1) {
          const std::int64_t written = std::clamp<std::int64_t>(columns_of[0] - part.column, 0, part.count);
          placements[static_cast<std::size_t>(p)][static_cast<std::size_t>(k++)] = {
              row_at + part.column - part.lane, lane_range(part.lane, part.lane + written)};
        } else {
          // Element 2l + x is lane l of x phase x, output column 2 * (column + l - lane) + x.
          const std::int64_t written = std::clamp<std::int64_t>(out[2] - 2 * part.column, 0, 2 * part.count);
          const std::int64_t begin = 2 * part.lane, end = begin + written;
          const std::uint64_t elements = (end >= 32 ? ~std::uint64_t{0} : (std::uint64_t{1} << end) - 1) &
                                         ~((std::uint64_t{1} << begin) - 1);
          placements[static_cast<std::size_t>(p)][static_cast<std::size_t>(k++)] = {
              row_at + 2 * (part.column - part.lane), static_cast<std::uint32_t>(elements)};
        }
      }
    }
    if (step_x == 2) {
      // Vector by vector, three blocks of channels at a time (wide_step2_kernel).
      const PhaseTaps& member = members[0];
      const std::int64_t panel = static_cast<std::int64_t>(member.tap.size()) * cin_ * kTileChannels;
      // Runs of at most 3 blocks, their sizes differing by one at most (16 blocks: 3, 3, 3, 3, 2, 2, not
      // 3, 3, 3, 3, 3, 1, whose single block's 8 accumulators cost unet's k2s2 convolution 11% of its time).
      const std::int64_t unit_blocks = end_block - first_block, runs = (unit_blocks + 2) / 3;
      for (int p = 0; p < count; ++p) {
        for (std::int64_t run = 0; run < runs; ++run) {
          const std::int64_t block = first_block + run * unit_blocks / runs;
          const std::int64_t m0 = grp * cout_ + block * kTileChannels;
          const std::int64_t blocks = first_block + (run + 1) * unit_blocks / runs - block;
          const TileOutput out{dst + m0 * out_plane, out_plane, bias_.data() + m0,
                               static_cast<int>(std::min<std::int64_t>(blocks * kTileChannels, cout_ - block * kTileChannels)),
                               placements.data(), placed.data()};
          const float* w[3];
          for (std::int64_t b = 0; b < blocks; ++b) w[b] = packed_.data() + weights_of(member, grp, block) + b * panel;
          kWideKernels[static_cast<std::size_t>(blocks - 1)](static_cast<std::int64_t>(member.tap.size()), cin_, in_plane,
                                                              at[static_cast<std::size_t>(p)], shift[0].data(),
                                                              masks[0].data() + p, skip_empty_taps_, w, out, p);
        }
      }
      return;
    }
    const auto kernel_for = [&](Epilogue epilogue) {
      return kMicroKernels[static_cast<std::size_t>(epilogue)][static_cast<std::size_t>(count - 1)];
    };
    // One x phase stores its own results; of two, the odd one stores both, interleaved.
    const std::array<MicroKernel, 2> kernels =
        x_members_ == 1 ? std::array<MicroKernel, 2>{kernel_for(Epilogue::store), nullptr}
                        : std::array<MicroKernel, 2>{kernel_for(Epilogue::to_tile), kernel_for(Epilogue::interleave_with_tile)};
    for (std::int64_t block = first_block; block < end_block; ++block) {
      const std::int64_t m0 = grp * cout_ + block * kTileChannels;
      const TileOutput out{dst + m0 * out_plane, out_plane, bias_.data() + m0,
                           static_cast<int>(std::min<std::int64_t>(kTileChannels, cout_ - block * kTileChannels)),
                           placements.data(), placed.data()};
      if (plan.source.split) {
        kSplitKernels[static_cast<std::size_t>(count - 1)](static_cast<std::int64_t>(split_offsets.size()), split_offsets.data(),
                                                            at.data(), packed_.data() + weights_of(members[0], grp, block), out);
        continue;
      }
      for (std::int64_t q = 0; q < x_members_; ++q) {
        const PhaseTaps& member = members[q];
        kernels[static_cast<std::size_t>(q)](static_cast<std::int64_t>(member.tap.size()), cin_, in_plane, at.data(),
                                             shift[static_cast<std::size_t>(q)].data(), masks[static_cast<std::size_t>(q)].data(),
                                             skip_empty_taps_, packed_.data() + weights_of(member, grp, block), tile, out);
      }
    }
  }

  std::int64_t groups_, cin_, cout_, blocks_;
  std::int64_t x_members_ = 1;  // phases per output row: the x stride of a transposed convolution, else 1
  Dims split_{1, 1, 1};         // phase planes per dimension of the source: a convolution's stride
  std::vector<PhaseTaps> phases_;
  std::vector<float> packed_, bias_;
  bool skip_empty_taps_ = false;  // see phase_gemm::may_skip_zero_products
  bool may_detour_ = false;       // see channels_last_detour_rejects
  bool detours_every_shape_ = false;  // see detours
  Geometry weight_geometry_;      // the one the weights were packed for
  mutable std::once_flag detour_once_;
  mutable std::unique_ptr<PreparedKernel> detour_;
  Slabs slabs_;  // of samples whose phase planes pass kBatchChunkBytes
  mutable std::once_flag slab_twin_once_;
  mutable std::unique_ptr<PlaneGemmKernel> slab_twin_;
};
