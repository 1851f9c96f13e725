// Depthwise convolution (forward) for AVX2 + FMA, float32, channels-first, 1-D
// and 2-D: one input and one output channel per group, each channel plane an
// independent problem (CPUs without AVX-512; depthwise_conv_avx512 otherwise).
//
// Math (conv_geometry.hpp, per plane): small[oy, ox] = bias + sum over taps
// (ky, kx) of w[ky, kx] * big[oy*sy - py + ky*dy, ox*sx - px + kx*dx], summed
// from +0 with ky outer and kx inner, the bias added last; rows and columns
// outside the input read as zeros.
// Each input row the output rows read is copied once into a slot of a ring
// (as many slots as the taps of one tile's output rows span rows), padded
//     line[X] = row[X - px]   (zero outside the row)
// and for x stride s > 1 split into its phases phase_b[u] = line[u*s + b]
// (s = 2 straight from the row). Tap kx of output column j then reads phase
// (kx*dx) mod s at u = j + (kx*dx) div s: plain loads, no masks. A tile is 3
// output rows x 4 vectors (32 columns), 12 accumulator chains sharing each
// tap's broadcast weight; rows above and below the input point at a row of
// zeros.
// Zero products leave a sum that started from +0 as it is, so the zeros give
// the bits of leaving those taps out, but for an infinite or NaN weight,
// whose product with a zero is NaN: problems with such weights are left to
// `direct`.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cpu_features.hpp"
#include "kernels/isa_target.hpp"
#include "kernels/kernel.hpp"
#include "kernels/simd_avx2.hpp"

namespace tconv::detail {
namespace {

using Isa = simd::Avx2;
constexpr std::int64_t kLanes = Isa::kLanes;
constexpr int kTileVectors = 4;  // of 8 output columns
constexpr int kTileRows = 3;     // output rows: 12 accumulator chains of 16 ymm registers
constexpr std::int64_t kTileColumns = kTileVectors * kLanes;

// One plane's shape, with what the ring of padded rows needs.
struct PlaneShape {
  std::int64_t in_rows, in_columns, out_rows, out_columns;
  std::int64_t kh, kw, sy, sx, dy, dx, py, px;
  std::int64_t slots;   // ring slots: rows the taps of one tile's output rows span
  std::int64_t phase;   // floats of one phase row: tiles of output columns and the taps' reach past them
  std::int64_t line;    // floats of a padded row: sx phases
  std::int64_t slot;    // floats of a slot: the line (x stride 1), its 2 phases, or the line and its phases
  std::vector<std::int64_t> column_of;  // per x tap kx: where output column 0 reads it in the slot's phases

  explicit PlaneShape(const Geometry& g)
      : in_rows(g.big_size[1]),
        in_columns(g.big_size[2]),
        out_rows(g.small_size[1]),
        out_columns(g.small_size[2]),
        kh(g.kernel[1]),
        kw(g.kernel[2]),
        sy(g.stride[1]),
        sx(g.stride[2]),
        dy(g.dilation[1]),
        dx(g.dilation[2]),
        py(g.pad_begin[1]),
        px(g.pad_begin[2]) {
    slots = (kTileRows - 1) * sy + (kh - 1) * dy + 1;
    const std::int64_t tiles = (out_columns + kTileColumns - 1) / kTileColumns;
    phase = (tiles * kTileColumns + (kw - 1) * dx / sx + kLanes - 1) / kLanes * kLanes;
    line = sx * phase;
    slot = sx > 2 ? 2 * line : line;
    for (std::int64_t kx = 0; kx < kw; ++kx) column_of.push_back(kx * dx % sx * phase + kx * dx / sx);
  }
};

TCONV_TARGET_AVX2_BEGIN

// Input row `row` into a slot: for x stride 1 the padded line, for 2 its two
// phases straight from the row (masked loads where the line's zeros are), for
// more the line and its phases after it.
void fill_slot(const PlaneShape& s, const float* row, float* slot) {
  if (s.sx == 2) {
    for (std::int64_t u = 0; u < s.phase; u += kLanes) {
      // Line elements [2u, 2u + 16) are row columns from x0; lanes outside the row read nothing.
      const std::int64_t x0 = 2 * u - s.px;
      __m256 a, b;
      if (x0 >= 0 && x0 + 2 * kLanes <= s.in_columns) {
        a = Isa::load(row + x0);
        b = Isa::load(row + x0 + kLanes);
      } else {
        // At the row's ends: masked loads, whose lanes outside the row read nothing.
        const auto inside = [&](std::int64_t from) {
          const std::int64_t lo = std::clamp<std::int64_t>(-from, 0, kLanes);
          const std::int64_t hi = std::clamp<std::int64_t>(s.in_columns - from, lo, kLanes);
          return ((std::uint32_t{1} << hi) - 1) & ~((std::uint32_t{1} << lo) - 1);
        };
        a = Isa::masked_load(Isa::zero(), inside(x0), row + x0);
        b = Isa::masked_load(Isa::zero(), inside(x0 + kLanes), row + x0 + kLanes);
      }
      __m256 evens, odds;
      Isa::deinterleave(a, b, evens, odds);
      Isa::store(slot + u, evens);
      Isa::store(slot + s.phase + u, odds);
    }
    return;
  }
  const std::int64_t first = std::min(s.px, s.line), last = std::clamp<std::int64_t>(s.px + s.in_columns, first, s.line);
  std::fill(slot, slot + first, 0.0f);
  if (last > first) std::memcpy(slot + first, row + (first - s.px), static_cast<std::size_t>(last - first) * sizeof(float));
  std::fill(slot + last, slot + s.line, 0.0f);
  if (s.sx == 1) return;
  float* phases = slot + s.line;
  for (std::int64_t b = 0; b < s.sx; ++b)
    for (std::int64_t u = 0; u < s.phase; ++u) phases[b * s.phase + u] = slot[u * s.sx + b];
}

// R output rows: rows[r * kh + ky] the phases of tap row ky for row r (a slot
// of zeros outside the input). The rows share each tap's broadcast weight and
// keep R x 4 accumulator chains in flight.
template <int R>
void output_rows(const PlaneShape& s, const float* const* rows, const float* w, float bias, float* dst) {
  for (std::int64_t j0 = 0; j0 < s.out_columns; j0 += kTileColumns) {
    __m256 acc[R][kTileVectors];
    TCONV_UNROLL_TILE
    for (int r = 0; r < R; ++r) {
      TCONV_UNROLL_TILE
      for (int v = 0; v < kTileVectors; ++v) acc[r][v] = Isa::zero();
    }
    for (std::int64_t ky = 0; ky < s.kh; ++ky) {
      const float* from[R];
      TCONV_UNROLL_TILE
      for (int r = 0; r < R; ++r) from[r] = rows[r * s.kh + ky] + j0;
      for (std::int64_t kx = 0; kx < s.kw; ++kx) {
        const std::int64_t at = s.column_of[static_cast<std::size_t>(kx)];
        const __m256 weight = Isa::broadcast(w + ky * s.kw + kx);
        TCONV_UNROLL_TILE
        for (int r = 0; r < R; ++r) {
          TCONV_UNROLL_TILE
          for (int v = 0; v < kTileVectors; ++v) acc[r][v] = Isa::fmadd(Isa::load(from[r] + at + v * kLanes), weight, acc[r][v]);
        }
      }
    }
    const __m256 b = Isa::set1(bias);
    TCONV_UNROLL_TILE
    for (int r = 0; r < R; ++r) {
      TCONV_UNROLL_TILE
      for (int v = 0; v < kTileVectors; ++v) {
        const std::int64_t j = j0 + v * kLanes;
        if (j < s.out_columns) {
          Isa::store_first(dst + r * s.out_columns + j, Isa::add(acc[r][v], b),
                           static_cast<int>(std::min(kLanes, s.out_columns - j)));
        }
      }
    }
  }
}

// One channel plane through a ring of `s.slots` slots; `zeros` a slot of zeros.
// `rows` holds kTileRows x kh pointers.
void run_plane(const PlaneShape& s, const float* src, const float* w, float bias, float* dst, float* ring,
               std::int64_t* held, const float* zeros, const float** rows) {
  std::fill(held, held + s.slots, std::int64_t{-1});
  for (std::int64_t oy0 = 0; oy0 < s.out_rows; oy0 += kTileRows) {
    const int tile_rows = static_cast<int>(std::min<std::int64_t>(kTileRows, s.out_rows - oy0));
    for (int r = 0; r < tile_rows; ++r)
      for (std::int64_t ky = 0; ky < s.kh; ++ky) {
        const std::int64_t y = (oy0 + r) * s.sy - s.py + ky * s.dy;
        const float*& row = rows[r * s.kh + ky];
        if (y < 0 || y >= s.in_rows) {
          row = zeros;
          continue;
        }
        const std::int64_t k = y % s.slots;
        float* slot = ring + k * s.slot;
        if (held[k] != y) {
          fill_slot(s, src + y * s.in_columns, slot);
          held[k] = y;
        }
        row = slot + (s.sx > 2 ? s.line : 0);
      }
    float* out = dst + oy0 * s.out_columns;
    static_assert(kTileRows == 3);
    if (tile_rows == 3) output_rows<3>(s, rows, w, bias, out);
    else if (tile_rows == 2) output_rows<2>(s, rows, w, bias, out);
    else output_rows<1>(s, rows, w, bias, out);
  }
}

TCONV_TARGET_END

class DepthwiseConvAvx2 final : public PreparedKernel {
 public:
  DepthwiseConvAvx2(const Geometry& g, const float* weight, const float* bias)
      : taps_(g.kernel_taps()), weight_(weight, weight + g.small_channels * taps_), bias_(g.small_channels, 0.0f) {
    if (bias) std::copy(bias, bias + g.small_channels, bias_.begin());
  }

  std::size_t workspace_bytes(const Geometry& g, int threads) const override {
    return per_thread_workspace_bytes(slot_bytes(PlaneShape(g)), threads);
  }

  void run(const Geometry& g, const void* src_v, void* dst_v, void* workspace, int threads) const override {
    const auto* src = static_cast<const float*>(src_v);
    auto* dst = static_cast<float*>(dst_v);
    const PlaneShape s(g);
    const std::int64_t planes = g.batch * g.small_channels, channels = g.small_channels;
    const std::size_t bytes = slot_bytes(s);
    const std::int64_t in_plane = s.in_rows * s.in_columns, out_plane = s.out_rows * s.out_columns;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (std::int64_t plane = 0; plane < planes; ++plane) {
      auto* held = thread_slot<std::int64_t>(workspace, bytes, omp_get_thread_num());
      auto** rows = reinterpret_cast<const float**>(held + s.slots);
      auto* zeros = reinterpret_cast<float*>(reinterpret_cast<std::byte*>(held) + held_bytes(s));
      float* ring = zeros + s.line;
      std::fill(zeros, zeros + s.line, 0.0f);
      const std::int64_t c = plane % channels;
      run_plane(s, src + plane * in_plane, weight_.data() + c * taps_, bias_[static_cast<std::size_t>(c)],
                dst + plane * out_plane, ring, held, zeros, rows);
    }
  }

 private:
  // One thread's scratch: the input row each slot holds and a tile's row
  // pointers, then (64-byte aligned) a row of zeros and the ring.
  static std::size_t held_bytes(const PlaneShape& s) {
    return (static_cast<std::size_t>(s.slots) * sizeof(std::int64_t) +
            static_cast<std::size_t>(kTileRows * s.kh) * sizeof(const float*) + 63) / 64 * 64;
  }
  static std::size_t slot_bytes(const PlaneShape& s) {
    return held_bytes(s) + static_cast<std::size_t>(s.line + s.slots * s.slot) * sizeof(float);
  }

  std::int64_t taps_;
  std::vector<float> weight_, bias_;
};

std::string rejects(const Geometry& g, DType dtype, const WeightFacts& weights) {
  if (dtype != DType::f32) return "it computes float32 only";
  if (g.kind != ConvKind::conv) return "it computes convolutions (forward) only";
  if (g.layout != Layout::channels_first) return "it takes channels-first tensors";
  if (g.input_per_group() != 1 || g.output_per_group() != 1) return "it takes one input and one output channel per group";
  if (g.spatial_rank > 2) return "it computes 1-D and 2-D convolutions";
  if (!weights.all_finite) return "the weight holds NaN or infinity, which it would multiply by the zeros it reads outside the input";
  return {};
}

}  // namespace

extern const KernelFamily kDepthwiseConvAvx2Family{"depthwise_conv_avx2", "AVX2 + FMA", cpu_has_avx2_fma, rejects,
                                                   prepare_float32<DepthwiseConvAvx2>};

}  // namespace tconv::detail
