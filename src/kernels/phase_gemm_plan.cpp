// Phase-GEMM planning and weight packing: ISA-independent, done once at creation.
#include <algorithm>
#include <cmath>

#include "kernels/phase_gemm.hpp"

namespace tconv::detail::phase_gemm {
namespace {

std::int64_t floor_mod(std::int64_t a, std::int64_t b) { return ((a % b) + b) % b; }

// The taps of each dimension that feed residue r (transposed) or all taps (conv),
// with their input offsets.
struct AxisTaps {
  std::vector<std::int64_t> taps, offsets;
};

AxisTaps axis_taps(const Geometry& g, int d, std::int64_t residue) {
  AxisTaps a;
  for (std::int64_t t = 0; t < g.kernel[d]; ++t) {
    if (g.kind == ConvKind::conv) {
      a.taps.push_back(t);
      a.offsets.push_back(t * g.dilation[d] - g.pad_begin[d]);
      continue;
    }
    const std::int64_t shifted = residue + g.pad_begin[d] - t * g.dilation[d];
    if (floor_mod(shifted, g.stride[d]) != 0) continue;
    a.taps.push_back(t);
    a.offsets.push_back(shifted / g.stride[d]);
  }
  return a;
}

// Residues of depth or height grouped by identical tap offsets.
std::vector<std::vector<std::int64_t>> residue_classes(const Geometry& g, int d) {
  std::vector<std::vector<std::int64_t>> classes;
  std::vector<std::vector<std::int64_t>> class_offsets;
  const std::int64_t residues = g.kind == ConvKind::conv ? 1 : g.stride[d];
  for (std::int64_t r = 0; r < residues; ++r) {
    const auto offsets = axis_taps(g, d, r).offsets;
    const auto same = std::find(class_offsets.begin(), class_offsets.end(), offsets);
    if (same != class_offsets.end()) {
      classes[static_cast<std::size_t>(same - class_offsets.begin())].push_back(r);
    } else {
      classes.push_back({r});
      class_offsets.push_back(offsets);
    }
  }
  return classes;
}

Phase make_phase(const Geometry& g, const std::vector<std::int64_t>& z_class, const std::vector<std::int64_t>& y_class,
                 const std::vector<std::int64_t>& x_class) {
  Phase p;
  for (std::int64_t rz : z_class)
    for (std::int64_t ry : y_class)
      for (std::int64_t rx : x_class) {
        const AxisTaps z = axis_taps(g, 0, rz), y = axis_taps(g, 1, ry), x = axis_taps(g, 2, rx);
        p.residues.push_back({rz, ry, rx});
        std::vector<std::int64_t> taps;
        for (std::size_t a = 0; a < z.taps.size(); ++a)
          for (std::size_t b = 0; b < y.taps.size(); ++b)
            for (std::size_t c = 0; c < x.taps.size(); ++c) {
              taps.push_back((z.taps[a] * g.kernel[1] + y.taps[b]) * g.kernel[2] + x.taps[c]);
              if (p.residues.size() == 1) p.offsets.push_back({z.offsets[a], y.offsets[b], x.offsets[c]});
            }
        p.taps.push_back(std::move(taps));
      }
  bool consecutive = true;
  for (std::size_t i = 1; i < x_class.size(); ++i) consecutive = consecutive && x_class[i] == x_class[0] + std::int64_t(i);
  p.x_run = consecutive ? static_cast<std::int64_t>(x_class.size()) : 1;
  return p;
}

}  // namespace

PackedProblem pack(const Geometry& g, const float* weight, const float* bias, const TileLimits& tiles) {
  PackedProblem pp;
  pp.kind = g.kind;
  pp.groups = g.groups;
  const bool transposed = g.kind == ConvKind::conv_transpose;
  pp.m_per_group = g.output_per_group();
  pp.c_per_group = g.input_per_group();
  // Width residues are merged too when their rows cannot interleave anyway
  // (stride above 2): fcn32's 1024 phases become 4 GEMMs, hifigan's 8 become 2.
  const auto z_classes = residue_classes(g, 0), y_classes = residue_classes(g, 1);
  std::vector<std::vector<std::int64_t>> x_classes;
  if (transposed && g.stride[2] > 2) {
    x_classes = residue_classes(g, 2);
  } else {
    for (std::int64_t rx = 0; rx < (transposed ? g.stride[2] : 1); ++rx) x_classes.push_back({rx});
  }
  std::int64_t max_members = 1;
  for (const auto& zc : z_classes)
    for (const auto& yc : y_classes)
      for (const auto& xc : x_classes) {
        max_members = std::max<std::int64_t>(max_members, static_cast<std::int64_t>(zc.size() * yc.size() * xc.size()));
        pp.phases.push_back(make_phase(g, zc, yc, xc));
      }

  // The register tile is mr GEMM rows by nv vectors (nv is chosen per input,
  // mr * nv <= max_accumulators). With free broadcasts (an FMA's embedded
  // broadcast operand) one vector by many rows needs the fewest loads;
  // otherwise several vectors share each broadcast. Few rows need several
  // vectors anyway, to keep enough independent accumulators in flight.
  const std::int64_t m = std::max<std::int64_t>(1, pp.m_per_group * max_members);
  const bool one_vector = tiles.free_broadcast && m >= tiles.min_accumulators;
  pp.min_nv = one_vector ? 1 : 2;
  pp.max_nv = one_vector ? 1 : 8;
  // Padded rows are multiplied for nothing. One-vector tiles take the mr that
  // pads least (then the tallest); with separate broadcasts a short tile costs
  // more loads per FMA than a little padding, so take the tallest mr that pads
  // at most an eighth.
  // Sets whose x runs fill whole vectors store transposed tiles, which needs
  // blocks of whole runs (see multiply_and_write).
  bool whole_runs = true;
  for (const auto& phase : pp.phases) whole_runs = whole_runs && phase.x_run % tiles.lanes == 0;
  whole_runs = whole_runs && tiles.lanes <= tiles.max_mr && tiles.lanes * pp.min_nv <= tiles.max_accumulators;
  pp.mr = 1;
  std::int64_t best_padded = -1;
  for (int mr = 1; mr <= std::min<std::int64_t>(tiles.max_mr, m); ++mr) {
    if (mr * pp.min_nv > tiles.max_accumulators) break;
    if (one_vector && mr < tiles.min_accumulators) continue;
    if (whole_runs && mr % tiles.lanes != 0) continue;
    const std::int64_t padded = (m + mr - 1) / mr * mr;
    const bool better = one_vector ? best_padded < 0 || padded <= best_padded : padded * 8 <= m * 9;
    if (better) {
      best_padded = padded;
      pp.mr = mr;
    }
  }

  std::int64_t total = 0;
  for (auto& phase : pp.phases) {
    phase.packed_offset = total;
    total += pp.groups * pp.m_blocks_of(phase) * pp.k_of(phase) * pp.mr;
  }
  pp.packed_a.assign(static_cast<std::size_t>(total), 0.0f);
  for (const auto& phase : pp.phases) {
    const std::int64_t k_count = pp.k_of(phase), members = phase.members();
    const auto n_taps = static_cast<std::int64_t>(phase.offsets.size());
    for (std::int64_t grp = 0; grp < pp.groups; ++grp)
      for (std::int64_t m_out = 0; m_out < pp.m_per_group; ++m_out)
        for (std::int64_t q = 0; q < members; ++q)
          for (std::int64_t c = 0; c < pp.c_per_group; ++c)
            for (std::int64_t e = 0; e < n_taps; ++e) {
              const std::int64_t tap = phase.taps[static_cast<std::size_t>(q)][static_cast<std::size_t>(e)];
              const float w = weight[g.weight_index(grp, m_out, c, tap)];
              const std::int64_t row = m_out * members + q, k = e * pp.c_per_group + c;
              pp.packed_a[static_cast<std::size_t>(phase.packed_offset +
                                                   ((grp * pp.m_blocks_of(phase) + row / pp.mr) * k_count + k) * pp.mr +
                                                   row % pp.mr)] = w;
            }
  }
  const std::int64_t out_channels = g.output_channels();
  pp.bias.assign(static_cast<std::size_t>(out_channels), 0.0f);
  if (bias) std::copy(bias, bias + out_channels, pp.bias.begin());
  return pp;
}

std::string phase_plan_rejects(const Geometry& g, const WeightFacts& weights) {
  // The plan walks every tap, and an empty weight's taps are not bounded by its size.
  if (g.small_channels == 0 || g.big_per_group() == 0) return "the weight has no elements";
  const std::int64_t phases = g.kind == ConvKind::conv ? 1 : g.stride[0] * g.stride[1] * g.stride[2];
  if (phases > kMaxPlanSteps / (g.kernel[0] + g.kernel[1] + g.kernel[2])) {
    return "its plan for " + std::to_string(phases) + " stride phases would take more than " +
           std::to_string(kMaxPlanSteps) + " steps";
  }
  // Positions outside the input enter the GEMMs as zeros, which a transposed
  // convolution never multiplies: 0 * Inf would be NaN where PyTorch, which
  // never forms those products, has a number.
  if (g.kind == ConvKind::conv_transpose && !weights.all_finite) {
    return "the weight holds NaN or infinity, which it would multiply by positions outside the input";
  }
  return {};
}

std::string interleaved_phase_rejects(const Geometry& g, DType dtype, const WeightFacts& weights,
                                      std::int64_t min_output_channels) {
  if (dtype != DType::f32) return "it computes float32 only";
  if (g.layout != Layout::channels_first) return "it reads channels-first tensors (the igemm families read channels-last)";
  if (g.kind == ConvKind::conv_transpose && g.stride[2] > 2) {
    return "its transposed convolutions need stride 1 or 2 in x (the phase-GEMM family takes others)";
  }
  if (std::string why_not = phase_plan_rejects(g, weights); !why_not.empty()) return why_not;
  if (g.output_per_group() < min_output_channels) {
    return "it is for at least " + std::to_string(min_output_channels) + " output channels per group, this has " +
           std::to_string(g.output_per_group());
  }
  return {};
}

Phase single_phase(const Geometry& g, const std::array<std::int64_t, kMaxSpatial>& residue) {
  return make_phase(g, {residue[0]}, {residue[1]}, {residue[2]});
}

namespace {

// Calls at(packed index, weight index) for every weight of a phase packed as
// pack_phase_blocks lays it out.
template <class At>
void for_each_phase_block_weight(const Geometry& g, const std::vector<std::int64_t>& taps, std::int64_t block, At at) {
  const std::int64_t cin = g.input_per_group(), cout = g.output_per_group();
  const std::int64_t blocks = (cout + block - 1) / block, k_count = static_cast<std::int64_t>(taps.size()) * cin;
  for (std::int64_t grp = 0; grp < g.groups; ++grp)
    for (std::int64_t m = 0; m < cout; ++m) {
      const std::int64_t panel = (grp * blocks + m / block) * k_count * block + m % block;
      for (std::size_t e = 0; e < taps.size(); ++e)
        for (std::int64_t c = 0; c < cin; ++c) {
          at(panel + (static_cast<std::int64_t>(e) * cin + c) * block, g.weight_index(grp, m, c, taps[e]));
        }
    }
}

}  // namespace

void pack_phase_blocks(const Geometry& g, const float* weight, const std::vector<std::int64_t>& taps,
                       std::int64_t block, float* packed) {
  for_each_phase_block_weight(g, taps, block, [&](std::int64_t at, std::int64_t w) { packed[at] = weight[w]; });
}

void unpack_phase_blocks(const Geometry& g, const float* packed, const std::vector<std::int64_t>& taps,
                         std::int64_t block, float* weight) {
  for_each_phase_block_weight(g, taps, block, [&](std::int64_t at, std::int64_t w) { weight[w] = packed[at]; });
}

bool may_skip_zero_products(const std::vector<float>& packed) {
  return std::all_of(packed.begin(), packed.end(), [](float w) { return std::isfinite(w); });
}

std::array<Axis, kMaxSpatial> axes_of(const Geometry& g, const std::array<std::int64_t, kMaxSpatial>& residue) {
  std::array<Axis, kMaxSpatial> axes{};
  for (int d = 0; d < kMaxSpatial; ++d) {
    Axis& a = axes[d];
    if (g.kind == ConvKind::conv) {
      a.out_count = g.small_size[d];
      a.in_step = g.stride[d];
    } else {
      a.out_start = residue[d];
      a.out_step = g.stride[d];
      a.out_count = g.big_size[d] > a.out_start ? (g.big_size[d] - a.out_start + g.stride[d] - 1) / g.stride[d] : 0;
    }
  }
  return axes;
}

}  // namespace tconv::detail::phase_gemm
