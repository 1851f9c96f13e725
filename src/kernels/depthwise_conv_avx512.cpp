// Depthwise convolution (forward) for AVX-512, float32: one input and one
// output channel per group, every channel an independent memory-bound problem.
//
// Math (conv_geometry.hpp, per channel): small[i] = bias + sum over taps t of
// w[t] * big[i*stride - pad + t*dilation], positions outside the input left out
// (never multiplied, so a non-finite weight meets no padding zero).
// Channels-first, src [N*C][D][H][W], dst [N*C][D'][H'][W']: per output row,
// vectors of 16 output positions; x tap t reads input columns
// first + lane*stride (one masked load for stride 1, two and a permute for
// stride 2, a gather otherwise) and a masked FMA leaves out lanes outside.
// Channels-last, src [N][D][H][W][C], dst [N][D'][H'][W'][C]: per output
// position, vectors of 16 channels, the weights kept tap-major [taps][C].
// Both sum each output in one order (bias, then the x taps, each over the
// (z, y) source rows), so the two layouts give the same bits.
#include <immintrin.h>

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

  std::size_t workspace_bytes(const Geometry&, int) const override { return 0; }

  void run(const Geometry& g, const void* src_v, void* dst_v, void*, int threads) const override {
    const auto* src = static_cast<const float*>(src_v);
    auto* dst = static_cast<float*>(dst_v);
    const bool last = g.layout == Layout::channels_last;
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
          run_plane(g, src, dst, step, rows);
        }
      }
    }
  }

 private:
  void run_plane(const Geometry& g, const float* src, float* dst, std::int64_t plane,
                 std::vector<SourceRow>& rows) const {
    const std::int64_t channel = plane % g.small_channels;
    const float* in = src + plane * g.big_spatial();
    float* out = dst + plane * g.small_spatial();
    const float* w = weight_.data() + channel * g.kernel_taps();
    const float bias = bias_[static_cast<std::size_t>(channel)];
    const std::int64_t in_w = g.big_size[2], out_w = g.small_size[2], stride_x = g.stride[2];
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i lane_step = _mm512_mullo_epi32(lane, _mm512_set1_epi32(static_cast<int>(stride_x)));
    for (std::int64_t oz = 0; oz < g.small_size[0]; ++oz)
      for (std::int64_t oy = 0; oy < g.small_size[1]; ++oy) {
        source_rows(g, oz, oy, rows);
        float* out_row = out + (oz * g.small_size[1] + oy) * out_w;
        for (std::int64_t j0 = 0; j0 < out_w; j0 += kLanes) {
          const __mmask16 valid = simd::Avx512::first_lanes(out_w - j0);
          __m512 acc = _mm512_set1_ps(bias);
          for (std::int64_t tx = 0; tx < g.kernel[2]; ++tx) {
            // Lanes whose input column first + lane*stride lies in [0, in_w).
            const std::int64_t first = j0 * stride_x - g.pad_begin[2] + tx * g.dilation[2];
            const __m512i column = _mm512_add_epi32(lane_step, _mm512_set1_epi32(static_cast<int>(first)));
            const __mmask16 inside = valid & _mm512_cmpge_epi32_mask(column, _mm512_setzero_si512()) &
                                     _mm512_cmplt_epi32_mask(column, _mm512_set1_epi32(static_cast<int>(in_w)));
            if (inside == 0) continue;
            for (const SourceRow& row : rows) {
              const __m512 x = simd::Avx512::masked_load_strided(inside, in + row.offset + first, stride_x);
              acc = _mm512_mask3_fmadd_ps(_mm512_set1_ps(w[row.kernel_row * g.kernel[2] + tx]), x, acc, inside);
            }
          }
          _mm512_mask_storeu_ps(out_row + j0, valid, acc);
        }
      }
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
