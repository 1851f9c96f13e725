// Depthwise convolution (forward) for AVX-512, float32: one input and one
// output channel per group, every channel an independent memory-bound problem.
//
// Math (conv_geometry.hpp, per channel): small[i] = bias + sum over taps t of
// w[t] * big[i*stride - pad + t*dilation], positions outside the input left out
// (never multiplied, so a non-finite weight meets no padding zero).
// Channels-first, src [N*C][D][H][W], dst [N*C][D'][H'][W']: tiles of 4
// output rows x 2 vectors of 16 output columns; x tap t reads input columns
// first + lane*stride (one masked load for stride 1, two and a permute for
// stride 2, a gather otherwise) and a masked FMA leaves out lanes outside.
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
  }

  std::size_t workspace_bytes(const Geometry& g, int threads) const override {
    return static_cast<std::size_t>(threads) * static_cast<std::size_t>(split_floats(g)) * sizeof(float);
  }

  void run(const Geometry& g, const void* src_v, void* dst_v, void* workspace, int threads) const override {
    const auto* src = static_cast<const float*>(src_v);
    auto* dst = static_cast<float*>(dst_v);
    const bool last = g.layout == Layout::channels_last;
    const PlaneRunner run_plane_of_stride = plane_runner(g);
    // Channels-first: one (sample, channel) plane per step; channels-last: one output row.
    const std::int64_t steps = last ? g.batch * g.small_size[0] * g.small_size[1] : g.batch * g.small_channels;
#pragma omp parallel num_threads(threads)
    {
      std::vector<SourceRow> rows;
#pragma omp for schedule(static)
      for (std::int64_t step = 0; step < steps; ++step) {
        if (last) {
          run_row_channels_last(g, src, dst, step, rows);
        } else {
          (this->*run_plane_of_stride)(g, src, dst, step,
                                       static_cast<float*>(workspace) + omp_get_thread_num() * split_floats(g));
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

  // One (sample, channel) plane, in tiles of kTileRows output rows x kTileVectors
  // vectors of columns: each output's sum is one chain of dependent FMAs, so a
  // tile keeps that many chains in flight. kStepX is the x stride when it is 1
  // or 2, 0 for any other (a gather per load). Stride 2 first splits the
  // plane's rows into even and odd columns in `split` (one permute per 16
  // floats, not one per load).
  template <int kStepX>
  void run_plane(const Geometry& g, const float* src, float* dst, std::int64_t plane, float* split) const {
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
      const std::int64_t pitch = split_pitch(g), width = in_size[2];
      for (std::int64_t row = 0; row < in_size[0] * in_size[1]; ++row) {
        const float* from = plane_src + row * width;
        float* to = split + row * 2 * pitch;
        for (std::int64_t j = 0; j < pitch; j += kLanes) {
          __m512 even, odd;
          Isa::load_deinterleaved(from + 2 * j, width - 2 * j, even, odd);
          _mm512_storeu_ps(to + j, even);
          _mm512_storeu_ps(to + pitch + j, odd);
        }
      }
      in = split;
      row_pitch = 2 * pitch;
    }
    const std::int64_t row_step = stride[1] * row_pitch;  // between the input rows of neighbouring output rows
    // Vector v of x tap tx: lanes l hold input column first[v] + l * step_x, read at `at[v]` in its row.
    const auto load = [&](const Isa::StridedLanes& lanes, const float* at) {
      if constexpr (kStepX == 0) return Isa::masked_load_strided(lanes.lanes, at, step_x);
      return _mm512_maskz_loadu_ps(static_cast<__mmask16>(lanes.lanes), at);
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
            // Vector v's lanes l read column first[v] + l * step_x where that lies in [0, in_size[2]).
            std::int64_t first[kTileVectors];
            std::int64_t at[kTileVectors];
            Isa::StridedLanes lanes[kTileVectors];
            TCONV_UNROLL_TILE
            for (int v = 0; v < kTileVectors; ++v) {
              const std::int64_t j = j0 + v * kLanes;
              first[v] = j * step_x - pad[2] + tx * dilation[2];
              const std::int64_t lo = first[v] >= 0 ? 0 : (-first[v] + step_x - 1) / step_x;
              const std::int64_t hi = std::min(out_size[2] - j, (in_size[2] - first[v] + step_x - 1) / step_x);
              lanes[v] = Isa::strided_lanes(lo, hi, step_x);
              // Column first[v] is split row (first[v] mod 2), position first[v] div 2 (floor).
              at[v] = kStepX == 2 ? (first[v] & 1) * (row_pitch / 2) + (first[v] >> 1) : first[v];
            }
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
                    const auto inside = static_cast<__mmask16>(lanes[v].lanes);
                    acc[r][v] = _mm512_mask3_fmadd_ps(weight, load(lanes[v], row + at[v]), acc[r][v], inside);
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

  using PlaneRunner = void (DepthwiseConvKernel::*)(const Geometry&, const float*, float*, std::int64_t, float*) const;
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
