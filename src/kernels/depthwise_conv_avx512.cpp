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
// bands of 8 output rows that load each input row's tap vectors once.
// Channels-last, src [N][D][H][W][C], dst [N][D'][H'][W'][C]: per output
// position, vectors of 16 channels, the weights kept tap-major [taps][C].
// Both sum each output in one order (bias, then the x taps, each over the
// (z, y) source rows), so the two layouts give the same bits.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
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
    std::int64_t z_rows[kMaxBandZTaps], z_taps[kMaxBandZTaps], z_count = 0;  // the z taps that read inside
    for (std::int64_t tz = 0; tz < g.kernel[0]; ++tz) {
      const std::int64_t iz = oz * g.stride[0] - g.pad_begin[0] + tz * g.dilation[0];
      if (iz < 0 || iz >= g.big_size[0]) continue;
      z_rows[z_count] = iz * in_rows;
      z_taps[z_count++] = tz;
    }
    for (std::int64_t oy0 = 0; oy0 < out_rows; oy0 += kBandRows) {
      const std::int64_t iy0 = oy0 * kStrideY - g.pad_begin[1];  // the input row of ty = 0 for output row oy0
      // Bit i: input row iy0 + i lies in the input.
      const std::int64_t first_inside = std::clamp<std::int64_t>(-iy0, 0, kInputRows);
      const std::int64_t end_inside = std::clamp<std::int64_t>(in_rows - iy0, first_inside, kInputRows);
      const std::uint32_t inside = ((1u << end_inside) - 1) & ~((1u << first_inside) - 1);
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
        float* out = p.out + (oz * out_rows + oy0) * out_columns + j0;
        TCONV_UNROLL_TILE
        for (int r = 0; r < kBandRows; ++r) {
          if (oy0 + r >= out_rows) break;
          TCONV_UNROLL_TILE
          for (int v = 0; v < kTileVectors; ++v)
            _mm512_mask_storeu_ps(out + r * out_columns + v * kLanes,
                                  simd::Avx512::first_lanes(out_columns - j0 - v * kLanes), acc[r][v]);
        }
      }
    }
  }
}

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
  static std::int64_t split_floats(const Geometry& g) {
    const bool split = g.layout == Layout::channels_first && g.stride[2] == 2;
    return split ? g.big_size[0] * g.big_size[1] * 2 * split_pitch(g) : 0;
  }
  static std::size_t split_bytes(const Geometry& g) { return static_cast<std::size_t>(split_floats(g)) * sizeof(float); }

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
    for (std::int64_t ox = 0; ox < out_w; ++ox)
      for (std::int64_t c = 0; c < channels; c += kLanes) {
        const __mmask16 lanes = simd::Avx512::first_lanes(channels - c);
        __m512 acc = _mm512_maskz_loadu_ps(lanes, bias_.data() + c);
        for (std::int64_t tx = 0; tx < g.kernel[2]; ++tx) {
          const std::int64_t ix = ox * g.stride[2] - g.pad_begin[2] + tx * g.dilation[2];
          if (ix < 0 || ix >= in_w) continue;
          for (const SourceRow& source : rows) {
            const __m512 x = _mm512_maskz_loadu_ps(lanes, in + (source.offset + ix) * channels + c);
            const float* w = weight_by_tap_.data() + (source.kernel_row * g.kernel[2] + tx) * channels + c;
            acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(lanes, w), x, acc);
          }
        }
        _mm512_mask_storeu_ps(out + ox * channels + c, lanes, acc);
      }
  }

  void (*band_plane_)(const BandPlane&) = nullptr;  // channels-first band tiles, when the geometry has them
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
