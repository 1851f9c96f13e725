// Phase-GEMM kernel family: (transposed) convolution as dense GEMMs, float32.
//
// Math. A stride-s transposed convolution never multiplies by inserted zeros
// here: its output positions split into s^dims phases by o mod s, and within
// phase r every output position o = r + s*j is fed by the same taps
//     T_r = { t : (r + pad - t*dilation) mod s == 0 }      (per dimension)
// from input position i = j + offset_t, offset_t = (r + pad - t*dilation) / s.
// So each phase is a dense stride-1 gather, i.e. one GEMM per (group, phase):
//     C[m, j] = sum_k A_r[m, k] * B_r[k, j]
//     m = output channel in the group     (M = out channels / groups)
//     k = (tap e in T_r, input channel c) (K = |T_r| * in channels / groups), k = e * C + c
//     j = output position of the phase    (N = batch * phase positions)
//     B_r[k, j] = src[c, j * in_step + offset_e]   (0 outside the input)
// and dst[m, out_start + j * out_step] = C[m, j] + bias[m]. Phases whose taps
// have the same offsets in depth and height (k2s2 layers: all of them) share
// B, so they are one GEMM with their A rows stacked (see Phase).
// A convolution is the same GEMM with one phase: out_step 1, in_step = stride,
// offset_t = t*dilation - pad, all taps. Every output element belongs to
// exactly one phase, so dst is fully written; each element is summed by one
// thread in one fixed k order (from zero, bias added last), so results do not
// depend on the thread count, and the channels-last igemm family, which sums
// in the same order, gives the same bits.
//
// Packed layouts (floats, 64-byte aligned):
//   A (at creation, per group and phase): M blocks of mr rows, each [K][mr],
//     rows past M zero. A micro-kernel for a block of MR <= mr rows reads
//     A[k * mr + m], m < MR.
//   B (per call, per work item, in the workspace): sub-panels of NR = NV * lanes
//     columns, each [K][NR]; columns past N zero.
// Micro-kernel contract: acc[m][n] = sum_{k<K} A[k*mr + m] * B[k*NR + n]
// for m < MR, n < NR, written to C[m * NR + n].
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/kernel.hpp"

namespace tconv::detail::phase_gemm {

// One GEMM's view of the problem, per spatial dimension.
struct Axis {
  std::int64_t out_start = 0, out_step = 1, out_count = 1;  // output positions out_start + j*out_step
  std::int64_t in_step = 1;                                  // input position j*in_step + tap offset
};

// A set of phases that read the same input footprint and share one GEMM: their
// taps have the same input offsets, and their residues differ in depth and
// height, or also in width when the x stride is above 2 (stride-2 phases stay
// apart so that their rows interleave into whole vectors). They share B
// and stack their rows of A: GEMM row m * members() + q is output channel m of
// member q.
struct Phase {
  std::vector<std::array<std::int64_t, kMaxSpatial>> residues;  // r of each member, ascending
  std::vector<std::vector<std::int64_t>> taps;                   // per member: flat kernel tap of each e
  std::vector<std::array<std::int64_t, kMaxSpatial>> offsets;    // input offset of each tap e (shared)
  std::int64_t packed_offset = 0;                                // where this set's A panels start
  // Members come x residue fastest; when those residues are consecutive, each
  // run of x_run members (one output channel) writes consecutive outputs.
  std::int64_t x_run = 1;

  std::int64_t members() const { return static_cast<std::int64_t>(residues.size()); }
};

// Everything fixed at creation: phases, packed weights, blocking.
struct PackedProblem {
  ConvKind kind;
  std::int64_t groups = 1, m_per_group = 0, c_per_group = 0;
  int mr = 1;            // rows per M block (and A's row stride)
  int min_nv = 2, max_nv = 8;  // vectors per tile the run may choose from (mr * nv within the ISA's accumulators)
  std::vector<Phase> phases;
  std::vector<float> packed_a;          // per set: groups x m-blocks x K x mr
  std::vector<float> bias;              // per output channel (zeros when none)

  std::int64_t rows_of(const Phase& p) const { return m_per_group * p.members(); }
  std::int64_t m_blocks_of(const Phase& p) const { return (rows_of(p) + mr - 1) / mr; }
  std::int64_t k_of(const Phase& p) const { return c_per_group * static_cast<std::int64_t>(p.offsets.size()); }
};

// What an ISA's micro-kernels allow.
struct TileLimits {
  int max_mr;            // rows per micro-kernel
  int max_accumulators;  // accumulator registers a micro-kernel may use
  int min_accumulators;  // independent accumulators that hide the FMA latency
  bool free_broadcast;   // an FMA can take its broadcast operand from memory
  int lanes;             // floats per vector
};
PackedProblem pack(const Geometry& g, const float* weight, const float* bias, const TileLimits& tiles);

// Why a problem cannot be planned per stride phase (empty when it can): the
// rules every family that uses these phases shares.
std::string phase_plan_rejects(const Geometry& g, const WeightFacts& weights);

// The rules of the channels-first GEMM family that interleaves stride-2 x
// phases in registers (plane_gemm): float32, channels-first, a
// transposed x stride of 1 or 2, a phase plan, and at least
// `min_output_channels` output channels per group (empty when all hold).
std::string interleaved_phase_rejects(const Geometry& g, DType dtype, const WeightFacts& weights,
                                      std::int64_t min_output_channels);

// The phase of one residue alone (a set of one member), its taps in the order
// pack() gives them. A convolution has the one residue {0, 0, 0}.
Phase single_phase(const Geometry& g, const std::array<std::int64_t, kMaxSpatial>& residue);

// The weights of one single-member phase (taps: its flat kernel taps, in the
// order of e) packed for the families that sweep blocks of `block` output
// channels: per group and block, [K][block] with K = e * C + c, channels past
// the group's left zero (the caller zero-fills). `packed` is the phase's start.
void pack_phase_blocks(const Geometry& g, const float* weight, const std::vector<std::int64_t>& taps,
                       std::int64_t block, float* packed);
// Its inverse: the weights of those taps back into weight [small_channels,
// big_channels/groups, k...] (the other taps' entries are left as they are).
void unpack_phase_blocks(const Geometry& g, const float* packed, const std::vector<std::int64_t>& taps,
                         std::int64_t block, float* weight);

// Whether a family may skip the taps that read only positions outside the
// input for a whole tile: those products are zeros, and adding a zero leaves a
// sum that started from +0 bit for bit as it is, unless a weight is NaN or
// infinite (0 * Inf is NaN; PyTorch multiplies a convolution's padding too).
// `packed` is the family's packed weights.
bool may_skip_zero_products(const std::vector<float>& packed);

// The per-dimension axes of the phase with this residue, for this input's geometry.
std::array<Axis, kMaxSpatial> axes_of(const Geometry& g, const std::array<std::int64_t, kMaxSpatial>& residue);

}  // namespace tconv::detail::phase_gemm
