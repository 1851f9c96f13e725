// Channels-last implicit-GEMM family: (transposed) convolution on [N, D, H, W, C]
// tensors, float32, read and written in place.
//
// Math. The stride phases are phase_gemm.hpp's (one residue each, never
// merged): phase r of a transposed convolution is output positions
// o = r + s*j fed by the taps T_r from input positions i = j + offset_t; a
// convolution is one phase with i = j*stride + offset_t and every tap. In the
// channels-last layout each position's channels are contiguous, so each
// (group, phase) is one GEMM with pixels as rows and output channels as columns:
//     C[j, m] = sum_k A[j, k] * W_r[k, m]
//     j = output position of the phase (rows, batch included)
//     m = output channel in the group (columns)
//     k = (tap e in T_r, input channel c), k = e * C + c (C = input channels / groups)
//     A[j, k] = src[n, i(j, e), group * C + c]   (0 outside the input)
// and dst[n, o(j), group * M + m] = C[j, m] + bias[m]. A is never packed: a
// tile's rows read the input through one pointer per (tap, row), the
// indirection XNNPACK calls IGEMM, with a zero row for positions outside.
// Each output element is one FMA chain over k in the order above, starting
// from zero, bias added last: the order phase_gemm uses, so a channels-last
// result equals the channels-first one bit for bit.
//
// Packed layout (floats, at creation): per phase, group and block of NR = NV *
// lanes output channels, W_r as [K][NR] (row k = e * C + c, columns past the
// group's M zero); bias per group and block as [NR].
// Micro-kernel contract (rows R <= MR, NV vectors, n taps):
//   for r < R, m < columns:  dst_rows[r][m] = bias[m] + sum_{i < n, c} rows[i * MR + r][c] * tap_w[i][c * NR + m]
// where tap_w[i] is the [C][NR] panel of the i-th tap the tile takes.
// Taps outside the input. A tile leaves out the taps that read no row inside
// the input (their products are zeros and adding them changes no bit, see
// phase_gemm::may_skip_zero_products; so only when every weight is finite).
// For that to happen often, each phase's positions are cut into boxes in which
// every position has the same taps inside (per dimension: the border
// positions one by one and the interior as one run) and tiles never straddle
// two boxes: a 4 x 4 plane under a k4s2p1 convolution multiplies 9 to 16 of
// its 16 taps instead of all 16 everywhere.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/kernel.hpp"
#include "kernels/phase_gemm.hpp"

namespace tconv::detail::igemm {

struct PackedProblem {
  ConvKind kind = ConvKind::conv;
  std::int64_t groups = 1, m_per_group = 0, c_per_group = 0;
  int nv = 1;                          // vectors per tile row
  std::int64_t nr = 0;                 // columns per block: nv * lanes
  std::int64_t n_blocks = 0;           // column blocks per group
  std::vector<phase_gemm::Phase> phases;  // one member each
  std::vector<std::int64_t> packed_offset;  // per phase: where its panels start in `weights`
  std::vector<float> weights;          // per phase, group, block: [K][nr]
  std::vector<float> bias;             // per group and block: [nr]
  std::vector<float> zeros;            // one input row of zeros (c_per_group floats)
  std::int64_t max_taps = 0;
  bool skip_outside = false;           // every weight finite: tiles leave out taps that read nothing inside

  std::int64_t k_of(const phase_gemm::Phase& p) const {
    return c_per_group * static_cast<std::int64_t>(p.offsets.size());
  }
};

// A box of a phase's output grid (positions [lo, hi) per dimension, every
// sample) whose positions have the same taps inside the input; `taps` holds
// them (e ascending), or every tap when taps outside are not skipped.
struct TapBox {
  Dims lo, hi;
  std::vector<std::int64_t> taps;
  std::int64_t first_tile = 0, tiles = 0;  // the phase's tiles [first_tile, first_tile + tiles) are this box's
  bool alike = false;  // every tap in `taps` is inside for every position (else rows outside read zeros)
};

// The phase's grid cut into boxes, tiles of `rows` positions each (the last of a box partial).
std::vector<TapBox> tap_boxes(const Geometry& g, const phase_gemm::Phase& phase,
                              const std::array<phase_gemm::Axis, kMaxSpatial>& axes, bool skip_outside, int rows);

// Plans phases and packs weights; `lanes` is the ISA's vector width and
// `max_nv` the most vectors its tiles take.
PackedProblem pack(const Geometry& g, const float* weight, const float* bias, int lanes, int max_nv);

// Empty when the family handles this problem.
std::string rejects(const Geometry& g, DType dtype, const WeightFacts& weights);

}  // namespace tconv::detail::igemm
