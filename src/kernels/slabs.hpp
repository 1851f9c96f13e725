// Slabs: a problem whose scratch grows with its samples (the channels-last
// detour's copies, plane_gemm's phase planes) computed a run of output rows
// at a time, so that the scratch stays within kBatchChunkBytes (kernel.hpp)
// however large a sample is (hifigan's 1-D layer at 100,000 positions took
// 977 MB of detour copies in one piece).
//
// Math. Slabs cut the outermost spatial dimension D (x in 1-D, y in 2-D, z
// in 3-D): output rows [o0, o0 + R) read the input rows
//     conv:           [o0*s - p,     o0*s - p     + (R-1)*s + reach]
//     conv_transpose: [o0/s - lead,  o0/s - lead  + floor((R-1+p)/s) + lead]
// (s, p the stride and padding in D, reach = (k-1)*dilation, lead =
// ceil((reach - p)/s) or 0; o0 a multiple of s when transposed, so that a
// slab keeps the stride phases). A slab after the first is computed in the
// slab frame: the problem with D's padding p' = 0 (conv) or p + lead*s
// (transposed), under which its first input row is its row 0; rows of that
// range outside the input are zeros in the slab's copy. A zero row gives zero
// products where the input's border has a tap skipped, and adding a zero
// leaves a sum that started from +0 as it is, so every slab has the bits of
// the whole. The first slab keeps the problem's own frame, and with it the
// taps its kernel skips past the input's start (a 4 x 4 plane under k4s2p1
// skips up to 7 of its 16 taps), cut after the last input row it reads.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/kernel.hpp"

namespace tconv::detail {

class Slabs {
 public:
  // How a run cuts the problem: chunks of `batch` samples in slabs of `rows` output rows.
  struct Cut {
    std::int64_t batch, rows;
  };
  // One chunk's slab: its geometry (batch and sizes; in the slab frame but for
  // a first slab), where in D its input rows start in that frame, and
  // whether it is in the slab frame.
  struct Piece {
    Geometry g;
    std::int64_t first_input_row = 0;
    bool slab_frame = false;
  };

  explicit Slabs(const Geometry& g)
      : d_(kMaxSpatial - g.spatial_rank),
        stride_(g.stride[d_]),
        pad_(g.pad_begin[d_]),
        reach_((g.kernel[d_] - 1) * g.dilation[d_]),
        lead_(std::max<std::int64_t>(0, (reach_ - pad_ + stride_ - 1) / stride_)),
        transposed_(g.kind == ConvKind::conv_transpose) {}

  int dimension() const { return d_; }
  // g in the slab frame, and whether that moves its padding.
  Geometry slab_frame(Geometry g) const {
    g.pad_begin[d_] = slab_pad();
    return g;
  }
  bool moves_padding() const { return slab_pad() != pad_; }

  // Whole samples, as many as fit kBatchChunkBytes, when one fits in one
  // piece; else one sample in slabs of the most rows (a multiple of s when
  // transposed) that fit, one such step at least. bytes(piece geometry) is
  // what a piece holds.
  template <class Bytes>
  Cut cut(const Geometry& g, Bytes&& bytes) const {
    const std::int64_t whole = bytes(piece(g, 1, 0, out_rows(g)).g);
    if (whole <= kBatchChunkBytes) return {samples_per_chunk(g, whole), out_rows(g)};
    const std::int64_t step = transposed_ ? stride_ : 1;
    std::int64_t fits = 1, too_many = (out_rows(g) + step - 1) / step;  // in steps
    while (too_many - fits > 1) {
      const std::int64_t mid = (fits + too_many) / 2;
      (bytes(piece(g, 1, step, mid * step).g) <= kBatchChunkBytes ? fits : too_many) = mid;
    }
    return {1, std::min(fits * step, out_rows(g))};
  }

  // The piece of the cut with the most input rows: a first slab reads no
  // more than the others (its frame starts at or before the input's start).
  Piece largest(const Geometry& g, const Cut& cut) const {
    return piece(g, cut.batch, cut.rows == out_rows(g) ? 0 : cut.rows, cut.rows);
  }

  // The piece of `batch` samples from output row o0 (a multiple of s when
  // transposed), `rows` rows.
  Piece piece(const Geometry& g, std::int64_t batch, std::int64_t o0, std::int64_t rows) const {
    Piece piece{g, 0, false};
    piece.g.batch = batch;
    Dims& in = transposed_ ? piece.g.small_size : piece.g.big_size;
    Dims& out = transposed_ ? piece.g.big_size : piece.g.small_size;
    out[d_] = rows;
    if (o0 == 0) {
      if (rows < out_rows(g)) in[d_] = std::clamp<std::int64_t>(first_input_row(0) + input_rows(rows), 1, in_rows(g));
      return piece;
    }
    piece.g.pad_begin[d_] = slab_pad();
    piece.first_input_row = first_input_row(o0);
    piece.slab_frame = true;
    in[d_] = input_rows(rows);
    return piece;
  }

  // fn(piece, n, o0) for each chunk of samples from n and slab from output row o0.
  template <class Fn>
  void for_each(const Geometry& g, const Cut& cut, Fn&& fn) const {
    for (std::int64_t n = 0; n < g.batch; n += cut.batch)
      for (std::int64_t o0 = 0; o0 < out_rows(g); o0 += cut.rows)
        fn(piece(g, std::min(cut.batch, g.batch - n), o0, std::min(cut.rows, out_rows(g) - o0)), n, o0);
  }

  // The rows of a piece's input that lie inside the problem's, [lo, hi) in
  // the problem's numbering; the piece's own numbering puts row lo at
  // lo - first_input_row, and the rest of its rows are zeros.
  struct RowRange {
    std::int64_t lo, hi;
  };
  RowRange inside(const Geometry& g, const Piece& p) const {
    const std::int64_t lo = std::clamp<std::int64_t>(p.first_input_row, 0, in_rows(g));
    return {lo, std::clamp<std::int64_t>(p.first_input_row + in_rows(p.g), lo, in_rows(g))};
  }

  std::int64_t in_rows(const Geometry& g) const { return g.input_size()[d_]; }
  std::int64_t out_rows(const Geometry& g) const { return g.output_size()[d_]; }

 private:
  std::int64_t slab_pad() const { return transposed_ ? pad_ + lead_ * stride_ : 0; }
  std::int64_t first_input_row(std::int64_t o0) const { return transposed_ ? o0 / stride_ - lead_ : o0 * stride_ - pad_; }
  // Input rows that `rows` output rows read in the slab frame.
  std::int64_t input_rows(std::int64_t rows) const {
    if (!transposed_) return (rows - 1) * stride_ + reach_ + 1;
    const std::int64_t last = rows - 1 + pad_;  // >= 0
    return last / stride_ + lead_ + 1;
  }

  int d_;
  std::int64_t stride_, pad_, reach_, lead_;
  bool transposed_;
};

}  // namespace tconv::detail
