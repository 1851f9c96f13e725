// Channels-last IGEMM planning and weight packing: ISA-independent, done once at creation.
#include <algorithm>
#include <utility>

#include "kernels/igemm.hpp"

namespace tconv::detail::igemm {

PackedProblem pack(const Geometry& g, const float* weight, const float* bias, int lanes, int max_nv) {
  PackedProblem pp;
  pp.kind = g.kind;
  pp.groups = g.groups;
  const bool transposed = g.kind == ConvKind::conv_transpose;
  pp.m_per_group = g.output_per_group();
  pp.c_per_group = g.input_per_group();
  pp.nv = static_cast<int>(std::clamp<std::int64_t>((pp.m_per_group + lanes - 1) / lanes, 1, max_nv));
  pp.nr = static_cast<std::int64_t>(pp.nv) * lanes;
  pp.n_blocks = (pp.m_per_group + pp.nr - 1) / pp.nr;

  const Dims residues = transposed ? g.stride : Dims{1, 1, 1};
  for (std::int64_t rz = 0; rz < residues[0]; ++rz)
    for (std::int64_t ry = 0; ry < residues[1]; ++ry)
      for (std::int64_t rx = 0; rx < residues[2]; ++rx) pp.phases.push_back(phase_gemm::single_phase(g, {rz, ry, rx}));

  std::int64_t total = 0;
  for (const auto& phase : pp.phases) {
    pp.packed_offset.push_back(total);
    total += pp.groups * pp.n_blocks * pp.k_of(phase) * pp.nr;
    pp.max_taps = std::max(pp.max_taps, static_cast<std::int64_t>(phase.offsets.size()));
  }
  pp.weights.assign(static_cast<std::size_t>(total), 0.0f);
  for (std::size_t p = 0; p < pp.phases.size(); ++p) {
    const auto& tap_of = pp.phases[p].taps[0];
    const auto n_taps = static_cast<std::int64_t>(tap_of.size());
    for (std::int64_t grp = 0; grp < pp.groups; ++grp)
      for (std::int64_t e = 0; e < n_taps; ++e)
        for (std::int64_t c = 0; c < pp.c_per_group; ++c)
          for (std::int64_t m = 0; m < pp.m_per_group; ++m) {
            const std::int64_t block = m / pp.nr, k = e * pp.c_per_group + c;
            const std::int64_t at = pp.packed_offset[p] + ((grp * pp.n_blocks + block) * pp.k_of(pp.phases[p]) + k) * pp.nr +
                                    m % pp.nr;
            pp.weights[static_cast<std::size_t>(at)] =
                weight[g.weight_index(grp, m, c, tap_of[static_cast<std::size_t>(e)])];
          }
  }
  pp.bias.assign(static_cast<std::size_t>(pp.groups * pp.n_blocks * pp.nr), 0.0f);
  if (bias) {
    for (std::int64_t grp = 0; grp < pp.groups; ++grp)
      for (std::int64_t m = 0; m < pp.m_per_group; ++m) {
        pp.bias[static_cast<std::size_t>((grp * pp.n_blocks + m / pp.nr) * pp.nr + m % pp.nr)] =
            bias[grp * pp.m_per_group + m];
      }
  }
  pp.zeros.assign(static_cast<std::size_t>(pp.c_per_group), 0.0f);
  pp.skip_outside = phase_gemm::may_skip_zero_products(pp.weights);
  return pp;
}

namespace {

// Along one dimension, the runs of grid positions j whose taps' input
// positions j * in_step + offset fall inside [0, size) for the same offsets.
std::vector<std::pair<std::int64_t, std::int64_t>> runs_alike(const phase_gemm::Axis& axis, std::int64_t size,
                                                              const std::vector<std::int64_t>& offsets) {
  std::vector<std::pair<std::int64_t, std::int64_t>> runs;
  std::vector<bool> previous, inside(offsets.size());
  for (std::int64_t j = 0; j < axis.out_count; ++j) {
    for (std::size_t i = 0; i < offsets.size(); ++i) {
      const std::int64_t at = j * axis.in_step + offsets[i];
      inside[i] = at >= 0 && at < size;
    }
    if (j == 0 || inside != previous) {
      runs.push_back({j, j + 1});
    } else {
      runs.back().second = j + 1;
    }
    previous = inside;
  }
  return runs;
}

}  // namespace

std::vector<TapBox> tap_boxes(const Geometry& g, const phase_gemm::Phase& phase,
                              const std::array<phase_gemm::Axis, kMaxSpatial>& axes, bool skip_outside, int rows) {
  const Dims& in_size = g.kind == ConvKind::conv_transpose ? g.small_size : g.big_size;
  const auto n_taps = static_cast<std::int64_t>(phase.offsets.size());
  std::array<std::vector<std::pair<std::int64_t, std::int64_t>>, kMaxSpatial> runs;
  for (int d = 0; d < kMaxSpatial; ++d) {
    if (!skip_outside || axes[d].out_count == 0) {
      runs[d] = {{0, axes[d].out_count}};
      continue;
    }
    std::vector<std::int64_t> offsets;
    for (const auto& o : phase.offsets) offsets.push_back(o[d]);
    std::sort(offsets.begin(), offsets.end());
    offsets.erase(std::unique(offsets.begin(), offsets.end()), offsets.end());
    runs[d] = runs_alike(axes[d], in_size[d], offsets);
  }
  std::vector<TapBox> boxes;
  std::int64_t tiles = 0;
  for (const auto& z : runs[0])
    for (const auto& y : runs[1])
      for (const auto& x : runs[2]) {
        TapBox box{{z.first, y.first, x.first}, {z.second, y.second, x.second}, {}, tiles, 0, skip_outside};
        for (std::int64_t e = 0; e < n_taps; ++e) {
          bool inside = true;
          for (int d = 0; d < kMaxSpatial; ++d) {
            // Alike along the run: its first position speaks for all.
            const std::int64_t at = box.lo[d] * axes[d].in_step + phase.offsets[static_cast<std::size_t>(e)][d];
            inside = inside && at >= 0 && at < in_size[d];
          }
          if (inside || !skip_outside) box.taps.push_back(e);
        }
        std::int64_t positions = g.batch;
        for (int d = 0; d < kMaxSpatial; ++d) positions *= box.hi[d] - box.lo[d];
        box.tiles = (positions + rows - 1) / rows;
        tiles += box.tiles;
        boxes.push_back(std::move(box));
      }
  return boxes;
}

std::string rejects(const Geometry& g, DType dtype, const WeightFacts& weights) {
  if (dtype != DType::f32) return "it computes float32 only";
  if (g.layout != Layout::channels_last) return "it reads channels-last tensors (phase_gemm reads channels-first)";
  if (std::string why_not = phase_gemm::phase_plan_rejects(g, weights); !why_not.empty()) return why_not;
  if (g.small_per_group() == 1 && g.big_per_group() == 1) {
    return "depthwise problems fill one lane of each vector (the depthwise family reads channels-last)";
  }
  return {};
}

}  // namespace tconv::detail::igemm
