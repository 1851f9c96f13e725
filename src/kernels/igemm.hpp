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
// Micro-kernel contract (rows R <= MR, NV vectors):
//   for r < R, m < columns:  dst_rows[r][m] = bias[m] + sum_{e, c} rows[e * MR + r][c] * w[(e * C + c) * NR + m]
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

  std::int64_t k_of(const phase_gemm::Phase& p) const {
    return c_per_group * static_cast<std::int64_t>(p.offsets.size());
  }
};

// Plans phases and packs weights; `lanes` is the ISA's vector width and
// `max_nv` the most vectors its tiles take.
PackedProblem pack(const Geometry& g, const float* weight, const float* bias, int lanes, int max_nv);

// Empty when the family handles this problem.
std::string rejects(const Geometry& g, DType dtype, const WeightFacts& weights);

}  // namespace tconv::detail::igemm
