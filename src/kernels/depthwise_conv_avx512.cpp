// Depthwise convolution (forward) for AVX-512, float32: one input and one
// output channel per group, every channel an independent memory-bound problem.
//
// Math (conv_geometry.hpp, per channel): small[i] = bias + sum over taps t of
// w[t] * big[i*stride - pad + t*dilation], positions outside the input left out
// (never multiplied, so a non-finite weight meets no padding zero).
// Channels-first, src [N*C][D][H][W], dst [N*C][D'][H'][W']: tiles of 4
// output rows x 2 vectors of 16 output columns; x tap t reads input columns
// first + lane*stride (one masked load for stride 1, a load of the plane's
// rows split into even and odd columns for stride 2, a gather otherwise) and a
// masked FMA leaves out lanes outside. Common kernel rows (run_band_plane) use
// bands of 8 output rows that load each input row's tap vectors once; the
// common square kernels at stride 1 and 2 bands that build them in registers
// from the input row (run_rows_band_plane: no split, and 7 x 7 kernel rows).
// Channels-last, src [N][D][H][W][C], dst [N][D'][H'][W'][C]: per output
// position, vectors of 16 channels, the weights kept tap-major [taps][C].
// Both sum each output in one order, so the two layouts give the same bits:
// bias, then the x taps, each over the (z, y) source rows; or, for the
// geometries of the rows-outer bands (rows_outer), from +0 over the source
// rows, each over its x taps, then the bias.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "kernels/cpu_features.hpp"
#include "kernels/isa_target.hpp"
#include "kernels/kernel.hpp"
#include "kernels/simd_avx512.hpp"

namespace tconv::detail {
namespace {

constexpr int kLanes = 16;
constexpr int kTileRows = 4;     // channels-first: output rows per tile
constexpr int kBandRows = 8;     // channels-first: output rows per band tile (kernel rows known at compile time)
constexpr int kTileVectors = 2;  // channels-first: vectors of 16 output columns per tile row

TCONV_TARGET_AVX512_BEGIN

// The (z, y) input rows feeding output row (oz, oy), with their kernel row index.
struct SourceRow {
  std::int64_t offset, kernel_row;  // offset: the row's first position in the plane
};

void source_rows(const Geometry& g, std::int64_t oz, std::int64_t oy, std::vector<SourceRow>& rows) {
  rows.clear();
  for (std::int64_t tz = 0; tz < g.kernel[0]; ++tz) {
    const std::int64_t iz = oz * g.stride[0] - g.pad_begin[0] + tz * g.dilation[0];
    if (iz < 0 || iz >= g.big_size[0]) continue;
    for (std::int64_t ty = 0; ty < g.kernel[1]; ++ty) {
      const std::int64_t iy = oy * g.stride[1] - g.pad_begin[1] + ty * g.dilation[1];
      if (iy >= 0 && iy < g.big_size[1]) rows.push_back({(iz * g.big_size[1] + iy) * g.big_size[2], tz * g.kernel[1] + ty});
    }
  }
}

constexpr std::int64_t kMaxBandZTaps = 8;  // z taps a band tile takes (its list of them is on the stack)

// Channels-first: for every chunk of kTileVectors vectors of output columns,
// x tap and vector, [chunk][tx][v], where the vector's first lane reads in its
// input row (run_plane's row layout) and which lanes it reads. The same for
// every plane, so worked out once per run.
struct ColumnTaps {
  std::vector<std::int64_t> at;
  std::vector<std::uint32_t> lanes;
};

// The z taps of output depth oz that read inside the input: their first
// input rows (iz * rows) and kernel indices; returns how many.
std::int64_t z_taps_inside(const Geometry& g, std::int64_t oz, std::int64_t (&z_rows)[kMaxBandZTaps],
                           std::int64_t (&z_taps)[kMaxBandZTaps]) {
  std::int64_t count = 0;
  for (std::int64_t tz = 0; tz < g.kernel[0]; ++tz) {
    const std::int64_t iz = oz * g.stride[0] - g.pad_begin[0] + tz * g.dilation[0];
    if (iz < 0 || iz >= g.big_size[0]) continue;
    z_rows[count] = iz * g.big_size[1];
    z_taps[count++] = tz;
  }
  return count;
}

// Bit i: input row first + i of a band's `count` (below 32) lies among the input's `rows`.
std::uint32_t rows_inside(std::int64_t first, std::int64_t rows, int count) {
  const std::int64_t first_inside = std::clamp<std::int64_t>(-first, 0, count);
  const std::int64_t end_inside = std::clamp<std::int64_t>(rows - first, first_inside, count);
  return ((1u << end_inside) - 1) & ~((1u << first_inside) - 1);
}

// A band tile's accumulators, finished by `finish`, into its rows of the
// output plane (out: the tile's first element; rows_left: output rows from
// the tile's first on; columns past the plane's left out).
template <int kRows, int kVectors, class Finish>
[[gnu::always_inline]] inline void store_band(float* out, std::int64_t rows_left, std::int64_t out_columns, std::int64_t j0,
                                              const __m512 (&acc)[kRows][kVectors], Finish&& finish) {
  TCONV_UNROLL_TILE
  for (int r = 0; r < kRows; ++r) {
    if (r >= rows_left) break;
    TCONV_UNROLL_TILE
    for (int v = 0; v < kVectors; ++v)
      _mm512_mask_storeu_ps(out + r * out_columns + v * kLanes, simd::Avx512::first_lanes(out_columns - j0 - v * kLanes),
                            finish(acc[r][v]));
  }
}

// Band tiles: kBandRows output rows x kTileVectors vectors of columns of one
// plane, for a kernel of kKernelY rows, y stride kStrideY and no y dilation.
// A tile walks its input rows once per x tap (and z tap): each row's tap
// vectors are loaded once for every output row that reads them, and the
// unrolled walk knows at compile time which rows those are. Per output the sum
// order is the generic tile's: bias, then the x taps, each over the (z, y)
// source rows in order. A function of its own for the whole plane, so that its
// few live values stay in registers and its set-up is paid once per plane.
struct BandPlane {
  const Geometry* g;
  const float* in;         // the plane (split into even and odd columns for x stride 2)
  std::int64_t row_pitch;  // floats between input rows in `in`
  const float* weight;     // the channel's [kz][kKernelY][kx]
  float bias;
  float* out;              // the plane's output
  const ColumnTaps* columns;
};

template <int kKernelY, int kStrideY>
void run_band_plane(const BandPlane& p) {
  constexpr int kInputRows = (kBandRows - 1) * kStrideY + kKernelY;
  static_assert(kInputRows < 32, "rows are flags of one word");
  // Locals, not loads through p: the compiler keeps them in registers.
  const Geometry& g = *p.g;
  const float* const in = p.in;
  const std::int64_t pitch = p.row_pitch, kx = g.kernel[2], in_rows = g.big_size[1];
  const std::int64_t out_rows = g.small_size[1], out_columns = g.small_size[2];
  const std::int64_t* const column_at = p.columns->at.data();  // a band reads vector v at vector 0's place + 16 v
  const std::uint32_t* const column_lanes = p.columns->lanes.data();
  for (std::int64_t oz = 0; oz < g.small_size[0]; ++oz) {
    std::int64_t z_rows[kMaxBandZTaps], z_taps[kMaxBandZTaps];
    const std::int64_t z_count = z_taps_inside(g, oz, z_rows, z_taps);
    for (std::int64_t oy0 = 0; oy0 < out_rows; oy0 += kBandRows) {
      const std::int64_t iy0 = oy0 * kStrideY - g.pad_begin[1];  // the input row of ty = 0 for output row oy0
      const std::uint32_t inside = rows_inside(iy0, in_rows, kInputRows);
      const bool all_inside = inside == (1u << kInputRows) - 1;
      for (std::int64_t j0 = 0; j0 < out_columns; j0 += kTileVectors * kLanes) {
        const std::int64_t chunk = j0 / (kTileVectors * kLanes);
        __m512 acc[kBandRows][kTileVectors];
        TCONV_UNROLL_TILE
        for (int r = 0; r < kBandRows; ++r) {
          TCONV_UNROLL_TILE
          for (int v = 0; v < kTileVectors; ++v) acc[r][v] = _mm512_set1_ps(p.bias);
        }
        // One walk over the tile's input rows for one x tap and z tap. row0: where input row iy0 is read
        // (below 0 when iy0 is: only rows inside are read).
        const auto walk = [&](const float* w, std::int64_t row0, const __mmask16 (&lanes)[kTileVectors], auto every_row_inside) {
          __m512 weight[kKernelY];
          TCONV_UNROLL_TILE
          for (int ty = 0; ty < kKernelY; ++ty) weight[ty] = _mm512_set1_ps(w[ty * kx]);
          TCONV_UNROLL_TILE
          for (int i = 0; i < kInputRows; ++i) {
            if (every_row_inside || (inside >> i & 1)) {
              __m512 x[kTileVectors];
              TCONV_UNROLL_TILE
              for (int v = 0; v < kTileVectors; ++v) x[v] = _mm512_maskz_loadu_ps(lanes[v], in + (row0 + i * pitch + v * kLanes));
              TCONV_UNROLL_TILE
              for (int r = 0; r < kBandRows; ++r) {
                const int ty = i - r * kStrideY;  // a constant once unrolled
                if (ty >= 0 && ty < kKernelY) {
                  TCONV_UNROLL_TILE
                  for (int v = 0; v < kTileVectors; ++v)
                    acc[r][v] = _mm512_mask3_fmadd_ps(weight[ty], x[v], acc[r][v], lanes[v]);
                }
              }
            }
          }
        };
        for (std::int64_t tx = 0; tx < kx; ++tx) {
          __mmask16 lanes[kTileVectors];
          std::uint32_t any = 0;  // a tap that reads only padding for this chunk is left out
          TCONV_UNROLL_TILE
          for (int v = 0; v < kTileVectors; ++v)
            any |= lanes[v] = static_cast<__mmask16>(column_lanes[(chunk * kx + tx) * kTileVectors + v]);
          if (any == 0) continue;
          for (std::int64_t z = 0; z < z_count; ++z) {
            const std::int64_t row0 = (z_rows[z] + iy0) * pitch + column_at[(chunk * kx + tx) * kTileVectors];
            const float* w = p.weight + z_taps[z] * kKernelY * kx + tx;
            if (all_inside) {
              walk(w, row0, lanes, std::true_type{});
            } else {
              walk(w, row0, lanes, std::false_type{});
            }
          }
        }
        store_band(p.out + (oz * out_rows + oy0) * out_columns + j0, out_rows - oy0, out_columns, j0, acc,
                   std::identity{});
      }
    }
  }
}

// ShuffledTaps: the taps built in registers from the input row itself, no
// split and one masked load per raw vector (the masks fixed per chunk). Tap
// tx of output column j reads column kStrideX j + tx - kPadX (tx - kPadX in
// -3..3): the row's kStrideX x 16 kVectors columns of a chunk and 16 on each side are
// the raw vectors; a tap vector is a raw vector shifted (valignd), and for x
// stride 2 the even or odd elements of two raw vectors shifted by an even
// count (vshufps). On a Zen 4 4 valignd or 8 vshufps per 8 FMAs cost nothing
// measurable (both together 3%), where a split pass stores 16 KB per plane
// and a vpermt2ps costs 0.6 of an FMA. vshufps leaves the columns in the order
// j = 2k + (i & 1) + 8 (i >> 1) for lane 4k + i; the accumulators keep it and
// are put back in order once, before the store.
TCONV_UNINSTRUMENTED_BEGIN
template <int kStrideX, int kKernelX, int kPadX, int kVectorsPerRow>
struct ShuffledTaps {
  static_assert(kStrideX == 1 || kStrideX == 2);
  static constexpr int kVectors = kVectorsPerRow;  // of 16 output columns per tile row
  static constexpr int kRaw = kStrideX * kVectors + 2;  // raw vector m: columns kStrideX j0 + 16 (m - 1) + [0, 16)
  struct Chunk {
    __mmask16 load[kRaw];
    __mmask16 lanes[kKernelX][kVectors];  // in the lanes' column order
  };
  // The chunk of output columns from j0 on.
  static Chunk chunk(const BandPlane& p, std::int64_t j0) {
    const std::int64_t width = p.g->big_size[2], out_columns = p.g->small_size[2];
    Chunk c{};
    for (int m = 0; m < kRaw; ++m) {
      const std::int64_t first = kStrideX * j0 + kLanes * (m - 1);
      c.load[m] = static_cast<__mmask16>(simd::Avx512::strided_lanes(-first, width - first, 1).lanes);
    }
    for (int tx = 0; tx < kKernelX; ++tx)
      for (int v = 0; v < kVectors; ++v)
        for (int lane = 0; lane < kLanes; ++lane) {
          const std::int64_t j = j0 + v * kLanes + column_of_lane(lane), column = kStrideX * j + tx - kPadX;
          if (j < out_columns && column >= 0 && column < width) c.lanes[tx][v] |= static_cast<__mmask16>(1u << lane);
        }
    return c;
  }
  static constexpr int column_of_lane(int lane) {
    return kStrideX == 1 ? lane : 2 * (lane / 4) + (lane & 1) + 8 * ((lane & 3) >> 1);
  }
  // row: the input row's element kStrideX j0 (columns before it are read as zeros where outside).
  template <class Fn>
  [[gnu::always_inline]] static void for_each_tap(const Chunk& c, const float* row, Fn&& fn) {
    __m512i raw[kRaw];
    TCONV_UNROLL_TILE
    for (int m = 0; m < kRaw; ++m) raw[m] = _mm512_castps_si512(_mm512_maskz_loadu_ps(c.load[m], row + kLanes * (m - 1)));
    taps_from<0>(c, raw, fn);
  }
  // Taps kTx, kTx + 1, ... as template arguments: valignd's count is an immediate.
  template <int kTx, class Fn>
  [[gnu::always_inline]] static void taps_from(const Chunk& c, const __m512i (&raw)[kRaw], Fn& fn) {
    __m512 x[kVectors];
    TCONV_UNROLL_TILE
    for (int v = 0; v < kVectors; ++v) x[v] = tap_vector<kTx - kPadX>(raw, kStrideX * v + 1);
    fn(kTx, x, c.lanes[kTx]);
    if constexpr (kTx + 1 < kKernelX) taps_from<kTx + 1>(c, raw, fn);
  }
  // Raw vector m shifted by kShift columns (|kShift| < 16).
  template <int kShift>
  [[gnu::always_inline]] static __m512i shifted(const __m512i (&raw)[kRaw], int m) {
    // The zero-masking form with every lane (as for the permute below): the
    // same instruction, without the undefined source that GCC 12 warns about.
    constexpr __mmask16 kAll = 0xffff;
    if constexpr (kShift > 0) return _mm512_maskz_alignr_epi32(kAll, raw[m + 1], raw[m], kShift);
    if constexpr (kShift < 0) return _mm512_maskz_alignr_epi32(kAll, raw[m], raw[m - 1], kLanes + kShift);
    return raw[m];
  }
  // Columns kStrideX l + kShift of the raw columns from vector m on, in the lanes' order.
  template <int kShift>
  [[gnu::always_inline]] static __m512 tap_vector(const __m512i (&raw)[kRaw], int m) {
    if constexpr (kStrideX == 1) {
      return _mm512_castsi512_ps(shifted<kShift>(raw, m));
    } else {
      constexpr int kEven = kShift >= 0 ? kShift / 2 * 2 : -((-kShift + 1) / 2 * 2);  // kShift rounded down to even
      const __m512 a = _mm512_castsi512_ps(shifted<kEven>(raw, m)), b = _mm512_castsi512_ps(shifted<kEven>(raw, m + 1));
      if constexpr (kShift == kEven) return _mm512_shuffle_ps(a, b, 0x88);
      return _mm512_shuffle_ps(a, b, 0xDD);
    }
  }
  static __m512 in_column_order(__m512 v) {
    if constexpr (kStrideX == 1) return v;
    return _mm512_maskz_permutexvar_ps(0xffff, _mm512_setr_epi32(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15), v);
  }
};

// Rows-outer band tiles (kRows output rows x Taps::kVectors vectors) walked once
// over their input rows (per z tap), each row's x-tap vectors built once in registers (Taps) and fed
// to every output row that reads it, so that no split pass is needed. Per
// output the sum runs from +0 over the (z, y) source rows, each over its x
// taps, and the bias comes last (the channels-last path then takes the same
// order for these geometries).
// kFinite: every weight finite, so that a lane outside the input (a zero in
// its tap vector) may be multiplied: its product is a zero, which leaves a sum
// that started from +0 bit for bit as it is. Otherwise the FMA is masked.
// This for the output columns [j_begin, j_end) of a plane, j_begin a multiple of 16.
template <int kKernelY, int kStrideY, class Taps, bool kFinite>
void run_rows_band_columns(const BandPlane& p, std::int64_t j_begin, std::int64_t j_end) {
  // Output rows per tile: 4 for tiles of 2 vectors but for 3 x 3 at stride 1,
  // 8 otherwise. With 8 and 2 vectors GCC spills (the accumulators, the raw
  // vectors and the weights it keeps across the unrolled rows pass 32
  // registers): depthwise_128 as a convolution, 1 thread, 0.084 -> 0.074 ms
  // with 4; 3 x 3 stride 1 0.106 -> 0.113. 1-vector tiles: 8 rows 0-6% faster.
  constexpr int kVectors = Taps::kVectors;
  constexpr int kRows = kVectors == 1 || (kKernelY == 3 && kStrideY == 1) ? 8 : 4;
  constexpr int kInputRows = (kRows - 1) * kStrideY + kKernelY;
  static_assert(kInputRows < 32, "rows are flags of one word");
  // Locals, not loads through p: the compiler keeps them in registers.
  const Geometry& g = *p.g;
  const float* const in = p.in;
  const std::int64_t pitch = p.row_pitch, kx = g.kernel[2], in_rows = g.big_size[1];
  const std::int64_t out_rows = g.small_size[1], out_columns = g.small_size[2];
  const __m512 bias = _mm512_set1_ps(p.bias);
  for (std::int64_t j0 = j_begin; j0 < j_end; j0 += kVectors * kLanes) {
    const typename Taps::Chunk columns = Taps::chunk(p, j0);
    const std::int64_t row_offset = g.stride[2] * j0;  // the chunk's raw vector 1
    for (std::int64_t oz = 0; oz < g.small_size[0]; ++oz) {
      std::int64_t z_rows[kMaxBandZTaps], z_taps[kMaxBandZTaps];
      const std::int64_t z_count = z_taps_inside(g, oz, z_rows, z_taps);
      for (std::int64_t oy0 = 0; oy0 < out_rows; oy0 += kRows) {
        const std::int64_t iy0 = oy0 * kStrideY - g.pad_begin[1];  // the input row of ty = 0 for output row oy0
        const std::uint32_t inside = rows_inside(iy0, in_rows, kInputRows);
        const bool all_inside = inside == (1u << kInputRows) - 1;
        __m512 acc[kRows][kVectors];
        TCONV_UNROLL_TILE
        for (int r = 0; r < kRows; ++r) {
          TCONV_UNROLL_TILE
          for (int v = 0; v < kVectors; ++v) acc[r][v] = _mm512_setzero_ps();
        }
        // The tile's input rows for one z tap, each row's taps into every output row that reads it.
        const auto walk = [&](const float* rows, const float* w, auto every_row_inside) {
          TCONV_UNROLL_TILE
          for (int i = 0; i < kInputRows; ++i) {
            if (!every_row_inside && !(inside >> i & 1)) continue;
            Taps::for_each_tap(columns, rows + i * pitch, [&](auto tx, const __m512 (&x)[kVectors], const __mmask16* lanes) {
              TCONV_UNROLL_TILE
              for (int r = 0; r < kRows; ++r) {
                const int ty = i - r * kStrideY;  // a constant once unrolled
                if (ty >= 0 && ty < kKernelY) {
                  const __m512 weight = _mm512_set1_ps(w[ty * kx + tx]);
                  TCONV_UNROLL_TILE
                  for (int v = 0; v < kVectors; ++v)
                    acc[r][v] = kFinite ? _mm512_fmadd_ps(weight, x[v], acc[r][v])
                                        : _mm512_mask3_fmadd_ps(weight, x[v], acc[r][v], lanes[v]);
                }
              }
            });
          }
        };
        for (std::int64_t z = 0; z < z_count; ++z) {
          const float* rows = in + (z_rows[z] + iy0) * pitch + row_offset;
          const float* w = p.weight + z_taps[z] * kKernelY * kx;
          if (all_inside) {
            walk(rows, w, std::true_type{});
          } else {
            walk(rows, w, std::false_type{});
          }
        }
        store_band(p.out + (oz * out_rows + oy0) * out_columns + j0, out_rows - oy0, out_columns, j0, acc,
                   [&](__m512 v) { return Taps::in_column_order(_mm512_add_ps(v, bias)); });
      }
    }
  }
}

// A plane in tiles of 2 vectors, but for a last chunk of at most 16 columns
// (MobileNet's 7 x 7 and 14 x 14 planes): a tile of 1 vector, half of whose work would
// otherwise be on columns past the row.
template <int kKernel, int kStride, int kPad, bool kFinite>
void run_rows_band_plane(const BandPlane& p) {
  constexpr std::int64_t kWide = 2 * kLanes;
  const std::int64_t out_columns = p.g->small_size[2], tail = out_columns % kWide;
  const std::int64_t wide_end = tail >= 1 && tail <= kLanes ? out_columns - tail : out_columns;
  run_rows_band_columns<kKernel, kStride, ShuffledTaps<kStride, kKernel, kPad, 2>, kFinite>(p, 0, wide_end);
  if (wide_end < out_columns)
    run_rows_band_columns<kKernel, kStride, ShuffledTaps<kStride, kKernel, kPad, 1>, kFinite>(p, wide_end, out_columns);
}

TCONV_UNINSTRUMENTED_END

// Rows of `width` floats at `from` split into their even and odd columns, row r
// to to[r][0][pitch] and to[r][1][pitch]. Not inlined: inlined into the plane
// loop it measured 8% slower on the whole plane.
[[gnu::noinline]] void split_rows(const float* from, float* to, std::int64_t rows, std::int64_t width, std::int64_t pitch) {
  for (std::int64_t row = 0; row < rows; ++row, from += width, to += 2 * pitch) {
    simd::Avx512::split_row(from, width, to, to + pitch);
  }
}

class DepthwiseConvKernel final : public PreparedKernel {
 public:
  DepthwiseConvKernel(const Geometry& g, const float* weight, const float* bias)
      : weight_(weight, weight + g.small_channels * g.kernel_taps()),
        weight_by_tap_(static_cast<std::size_t>(g.small_channels * g.kernel_taps())),
        bias_(static_cast<std::size_t>(g.small_channels), 0.0f) {
    if (bias) std::copy(bias, bias + g.small_channels, bias_.begin());
    const std::int64_t taps = g.kernel_taps(), channels = g.small_channels;
    for (std::int64_t c = 0; c < channels; ++c)
      for (std::int64_t t = 0; t < taps; ++t) weight_by_tap_[static_cast<std::size_t>(t * channels + c)] = weight[c * taps + t];
    band_plane_ = band_plane(g);
    const bool finite = std::all_of(weight, weight + channels * taps, [](float w) { return std::isfinite(w); });
    rows_band_ = rows_band(g, finite);
  }

  std::size_t workspace_bytes(const Geometry& g, int threads) const override {
    return per_thread_workspace_bytes(split_bytes(g), threads);
  }

  void run(const Geometry& g, const void* src_v, void* dst_v, void* workspace, int threads) const override {
    const auto* src = static_cast<const float*>(src_v);
    auto* dst = static_cast<float*>(dst_v);
    const bool last = g.layout == Layout::channels_last;
    const PlaneRunner run_plane_of_stride = plane_runner(g);
    // Channels-first: one (sample, channel) plane per step; channels-last: one output row.
    const std::int64_t steps = last ? g.batch * g.small_size[0] * g.small_size[1] : g.batch * g.small_channels;
    const ColumnTaps columns = last ? ColumnTaps{} : column_taps(g);
#pragma omp parallel num_threads(threads)
    {
      std::vector<SourceRow> rows;
      auto* split = thread_slot<float>(workspace, split_bytes(g), omp_get_thread_num());
#pragma omp for schedule(static)
      for (std::int64_t step = 0; step < steps; ++step) {
        if (last) {
          run_row_channels_last(g, src, dst, step, rows);
        } else {
          (this->*run_plane_of_stride)(g, src, dst, step, split, columns);
        }
      }
    }
  }

 private:
  // Stride 2 in x: the floats of a plane's rows split into even and odd columns,
  // [rows][2][split_pitch], so that every tap reads 16 consecutive floats.
  static std::int64_t split_pitch(const Geometry& g) { return (g.big_size[2] + 2 * kLanes - 1) / (2 * kLanes) * kLanes; }
  std::int64_t split_floats(const Geometry& g) const {
    const bool split = g.layout == Layout::channels_first && g.stride[2] == 2 && !rows_outer(g);
    return split ? g.big_size[0] * g.big_size[1] * 2 * split_pitch(g) : 0;
  }
  std::size_t split_bytes(const Geometry& g) const { return static_cast<std::size_t>(split_floats(g)) * sizeof(float); }

  // One (sample, channel) plane, in tiles of kTileRows output rows x kTileVectors
  // vectors of columns: each output's sum is one chain of dependent FMAs, so a
  // tile keeps that many chains in flight. kStepX is the x stride when it is 1
  // or 2, 0 for any other (a gather per load). Stride 2 first splits the
  // plane's rows into even and odd columns in `split` (one permute per 16
  // floats, not one per load).
  template <int kStepX>
  void run_plane(const Geometry& g, const float* src, float* dst, std::int64_t plane, float* split,
                 const ColumnTaps& columns) const {
    using Isa = simd::Avx512;
    const std::int64_t channel = plane % g.small_channels;
    const float* plane_src = src + plane * g.big_spatial();
    float* out = dst + plane * g.small_spatial();
    const float* w = weight_.data() + channel * g.kernel_taps();
    const __m512 bias = _mm512_set1_ps(bias_[static_cast<std::size_t>(channel)]);
    // Locals, not loads through g: the compiler cannot tell that the stores leave g alone.
    const Dims kernel = g.kernel, stride = g.stride, dilation = g.dilation, pad = g.pad_begin;
    const Dims in_size = g.big_size, out_size = g.small_size;
    const std::int64_t step_x = kStepX > 0 ? kStepX : stride[2];
    const float* in = plane_src;
    std::int64_t row_pitch = in_size[2];
    if (rows_outer(g)) {
      rows_band_({&g, plane_src, row_pitch, w, bias_[static_cast<std::size_t>(channel)], out, &columns});
      return;
    }
    if constexpr (kStepX == 2) {
      split_rows(plane_src, split, in_size[0] * in_size[1], in_size[2], split_pitch(g));
      in = split;
      row_pitch = 2 * split_pitch(g);
    }
    if (kStepX != 0 && band_plane_ != nullptr) {
      band_plane_({&g, in, row_pitch, w, bias_[static_cast<std::size_t>(channel)], out, &columns});
      return;
    }
    const std::int64_t row_step = stride[1] * row_pitch;  // between the input rows of neighbouring output rows
    // Vector v of x tap tx: lanes l hold input column first + l * step_x, read at `at[v]` in its row.
    const auto load = [&](std::uint32_t lanes, const float* at) {
      if constexpr (kStepX == 0) return Isa::masked_load_strided(lanes, at, step_x);
      return _mm512_maskz_loadu_ps(static_cast<__mmask16>(lanes), at);
    };
    for (std::int64_t oz = 0; oz < out_size[0]; ++oz)
      for (std::int64_t oy0 = 0; oy0 < out_size[1]; oy0 += kTileRows)
        for (std::int64_t j0 = 0; j0 < out_size[2]; j0 += kTileVectors * kLanes) {
          __m512 acc[kTileRows][kTileVectors];
          TCONV_UNROLL_TILE
          for (int r = 0; r < kTileRows; ++r) {
            TCONV_UNROLL_TILE
            for (int v = 0; v < kTileVectors; ++v) acc[r][v] = bias;
          }
          for (std::int64_t tx = 0; tx < kernel[2]; ++tx) {
            const std::size_t column = static_cast<std::size_t>((j0 / (kTileVectors * kLanes) * kernel[2] + tx) * kTileVectors);
            const std::int64_t* at = columns.at.data() + column;
            const std::uint32_t* lanes = columns.lanes.data() + column;
            for (std::int64_t tz = 0; tz < kernel[0]; ++tz) {
              const std::int64_t iz = oz * stride[0] - pad[0] + tz * dilation[0];
              if (iz < 0 || iz >= in_size[0]) continue;
              for (std::int64_t ty = 0; ty < kernel[1]; ++ty) {
                const __m512 weight = _mm512_set1_ps(w[(tz * kernel[1] + ty) * kernel[2] + tx]);
                const std::int64_t iy0 = oy0 * stride[1] - pad[1] + ty * dilation[1];
                const std::int64_t row0 = (iz * in_size[1] + iy0) * row_pitch;
                // Every row of the tile inside: the common case, without a test per row.
                const bool all_rows = oy0 + kTileRows <= out_size[1] && iy0 >= 0 &&
                                      iy0 + (kTileRows - 1) * stride[1] < in_size[1];
                TCONV_UNROLL_TILE
                for (int r = 0; r < kTileRows; ++r) {
                  const std::int64_t iy = iy0 + r * stride[1];
                  if (!all_rows && (oy0 + r >= out_size[1] || iy < 0 || iy >= in_size[1])) continue;
                  const float* row = in + (row0 + r * row_step);
                  TCONV_UNROLL_TILE
                  for (int v = 0; v < kTileVectors; ++v) {
                    acc[r][v] = _mm512_mask3_fmadd_ps(weight, load(lanes[v], row + at[v]), acc[r][v],
                                                      static_cast<__mmask16>(lanes[v]));
                  }
                }
              }
            }
          }
          TCONV_UNROLL_TILE
          for (int r = 0; r < kTileRows; ++r) {
            if (oy0 + r >= out_size[1]) break;
            float* out_row = out + (oz * out_size[1] + oy0 + r) * out_size[2] + j0;
            TCONV_UNROLL_TILE
            for (int v = 0; v < kTileVectors; ++v) {
              const std::int64_t left = out_size[2] - j0 - v * kLanes;
              if (left > 0) _mm512_mask_storeu_ps(out_row + v * kLanes, Isa::first_lanes(left), acc[r][v]);
            }
          }
        }
  }

  static ColumnTaps column_taps(const Geometry& g) {
    const std::int64_t chunks = (g.small_size[2] + kTileVectors * kLanes - 1) / (kTileVectors * kLanes);
    const std::int64_t step_x = g.stride[2], half_pitch = split_pitch(g);
    ColumnTaps c;
    for (std::int64_t chunk = 0; chunk < chunks; ++chunk)
      for (std::int64_t tx = 0; tx < g.kernel[2]; ++tx)
        for (int v = 0; v < kTileVectors; ++v) {
          const std::int64_t j = (chunk * kTileVectors + v) * kLanes;
          const std::int64_t first = j * step_x - g.pad_begin[2] + tx * g.dilation[2];
          const std::int64_t lo = first >= 0 ? 0 : (-first + step_x - 1) / step_x;
          const std::int64_t hi = std::min(g.small_size[2] - j, (g.big_size[2] - first + step_x - 1) / step_x);
          c.lanes.push_back(simd::Avx512::strided_lanes(lo, hi, step_x).lanes);
          // Stride 2: column `first` is split row (first mod 2), position first div 2 (floor).
          c.at.push_back(step_x == 2 ? (first & 1) * half_pitch + (first >> 1) : first);
        }
    return c;
  }

  using PlaneRunner = void (DepthwiseConvKernel::*)(const Geometry&, const float*, float*, std::int64_t, float*,
                                                    const ColumnTaps&) const;
  // Band tiles for 3 x 3 and 5 x 5 kernel rows of y stride 1 and 2 and the 4 rows of stride 2 whose
  // transpose upsamples by 2, with x stride 1 or 2 and at most kMaxBandZTaps z taps.
  static void (*band_plane(const Geometry& g))(const BandPlane&) {
    if (g.layout != Layout::channels_first || g.stride[2] > 2 || g.dilation[1] != 1 || g.kernel[0] > kMaxBandZTaps)
      return nullptr;
    const std::int64_t ky = g.kernel[1], sy = g.stride[1];
    if (ky == 3 && sy == 1) return run_band_plane<3, 1>;
    if (ky == 3 && sy == 2) return run_band_plane<3, 2>;
    if (ky == 4 && sy == 2) return run_band_plane<4, 2>;
    if (ky == 5 && sy == 1) return run_band_plane<5, 1>;
    if (ky == 5 && sy == 2) return run_band_plane<5, 2>;
    return nullptr;
  }

  // Rows-outer bands for the square kernels whose x taps ShuffledTaps builds:
  // 3 and 7 taps at stride 1, 3, 4 and 5 at stride 2, with the padding that
  // keeps or halves the size (1, 3; 1, 1, 2). Taken whatever the layout, so that a
  // channels-last operator knows the sum order of the channels-first one.
  using BandRunner = void (*)(const BandPlane&);
  template <int kKernel, int kStride, int kPad>
  static BandRunner rows_band_of(bool finite) {
    return finite ? run_rows_band_plane<kKernel, kStride, kPad, true> : run_rows_band_plane<kKernel, kStride, kPad, false>;
  }
  BandRunner rows_band(const Geometry& g, bool finite) {
    if (g.stride[2] != g.stride[1] || g.dilation[1] != 1 || g.dilation[2] != 1 || g.kernel[1] != g.kernel[2] ||
        g.kernel[0] > kMaxBandZTaps)
      return nullptr;
    const std::int64_t k = g.kernel[2], s = g.stride[2];
    rows_padding_ = k == 4 ? 1 : k / 2;
    if (k == 3 && s == 1) return rows_band_of<3, 1, 1>(finite);
    if (k == 3 && s == 2) return rows_band_of<3, 2, 1>(finite);
    if (k == 4 && s == 2) return rows_band_of<4, 2, 1>(finite);
    if (k == 5 && s == 2) return rows_band_of<5, 2, 2>(finite);
    if (k == 7 && s == 1) return rows_band_of<7, 1, 3>(finite);
    return nullptr;
  }
  bool rows_outer(const Geometry& g) const { return rows_band_ != nullptr && g.pad_begin[2] == rows_padding_; }

  static PlaneRunner plane_runner(const Geometry& g) {
    if (g.stride[2] == 1) return &DepthwiseConvKernel::run_plane<1>;
    if (g.stride[2] == 2) return &DepthwiseConvKernel::run_plane<2>;
    return &DepthwiseConvKernel::run_plane<0>;
  }

  void run_row_channels_last(const Geometry& g, const float* src, float* dst, std::int64_t row,
                             std::vector<SourceRow>& rows) const {
    const std::int64_t channels = g.small_channels, in_w = g.big_size[2], out_w = g.small_size[2];
    const std::int64_t n = row / (g.small_size[0] * g.small_size[1]);
    const std::int64_t oz = row / g.small_size[1] % g.small_size[0], oy = row % g.small_size[1];
    source_rows(g, oz, oy, rows);
    const float* in = src + n * g.big_spatial() * channels;
    float* out = dst + row * out_w * channels;
    const bool rows_first = rows_outer(g);
    for (std::int64_t ox = 0; ox < out_w; ++ox)
      for (std::int64_t c = 0; c < channels; c += kLanes) {
        const __mmask16 lanes = simd::Avx512::first_lanes(channels - c);
        const __m512 bias = _mm512_maskz_loadu_ps(lanes, bias_.data() + c);
        const auto product = [&](const SourceRow& source, std::int64_t tx, std::int64_t ix, __m512 acc) {
          const __m512 x = _mm512_maskz_loadu_ps(lanes, in + (source.offset + ix) * channels + c);
          const float* w = weight_by_tap_.data() + (source.kernel_row * g.kernel[2] + tx) * channels + c;
          return _mm512_fmadd_ps(_mm512_maskz_loadu_ps(lanes, w), x, acc);
        };
        __m512 acc = rows_first ? _mm512_setzero_ps() : bias;
        if (rows_first) {
          for (const SourceRow& source : rows)
            for (std::int64_t tx = 0; tx < g.kernel[2]; ++tx) {
              const std::int64_t ix = ox * g.stride[2] - g.pad_begin[2] + tx * g.dilation[2];
              if (ix >= 0 && ix < in_w) acc = product(source, tx, ix, acc);
            }
          acc = _mm512_add_ps(acc, bias);
        } else {
          for (std::int64_t tx = 0; tx < g.kernel[2]; ++tx) {
            const std::int64_t ix = ox * g.stride[2] - g.pad_begin[2] + tx * g.dilation[2];
            if (ix < 0 || ix >= in_w) continue;
            for (const SourceRow& source : rows) acc = product(source, tx, ix, acc);
          }
        }
        _mm512_mask_storeu_ps(out + ox * channels + c, lanes, acc);
      }
  }

  void (*band_plane_)(const BandPlane&) = nullptr;  // channels-first band tiles, when the geometry has them
  BandRunner rows_band_ = nullptr;                  // and rows-outer ones (rows_outer)
  std::int64_t rows_padding_ = 0;                   // the x padding before that rows_band_ needs
  std::vector<float> weight_;         // [C][taps], for channels-first
  std::vector<float> weight_by_tap_;  // [taps][C], for channels-last
  std::vector<float> bias_;
};

TCONV_TARGET_END

std::string rejects(const Geometry& g, DType dtype, const WeightFacts&) {
  if (dtype != DType::f32) return "it computes float32 only";
  if (g.kind != ConvKind::conv) return "it computes convolutions only (depthwise_avx512 takes transposed ones)";
  if (g.small_per_group() != 1 || g.big_per_group() != 1) return "it needs one input and one output channel per group";
  // Lane columns (first + lane * stride) are 32-bit.
  constexpr std::int64_t kLimit = std::int64_t{1} << 24;
  if (g.stride[2] > kLimit || g.dilation[2] > kLimit || g.kernel[2] > kLimit) return "rows are too long";
  const std::int64_t reach = (g.small_size[2] + kLanes) * g.stride[2] + g.kernel[2] * g.dilation[2] + g.big_size[2];
  if (reach > (std::int64_t{1} << 30)) return "rows are too long";
  return {};
}

}  // namespace

extern const KernelFamily kDepthwiseConvAvx512Family{"depthwise_conv_avx512", "AVX-512 (F, VL, BW, DQ)",
                                                     cpu_has_avx512, rejects, prepare_float32<DepthwiseConvKernel>};

}  // namespace tconv::detail
