// Direct kernel family: portable C++, any geometry, float32 and float64.
//
// Math (conv_geometry.hpp): every (small position i, tap t) pair links to big
// position o = i*stride - pad + t*dilation. One thread owns one destination
// plane [n, c]; it starts from the bias and, for each partner channel and
// each tap, walks the small positions whose link stays inside the big extent
// (tap_range), so no multiplication by an inserted zero or a padded value is
// ever done. Weights are kept as given: [small_channels, big_channels/groups, taps].
// Both layouts are read in place: a plane is the channel's elements, one
// pixel_step apart (1 channels-first, the channel count channels-last).
#include <vector>

#include "kernels/kernel.hpp"

namespace tconv::detail {
namespace {

// Positions of a plane are `small_step` (small tensor) and `big_step` (big tensor) elements apart.
template <typename T, bool kSmallToBig>
void accumulate_tap(const Geometry& g, const TapWindow& window, T w, const T* small_plane_src,
                    const T* big_plane_src, T* dst, std::int64_t small_step, std::int64_t big_step) {
  if (window.empty()) return;
  const Dims& tap = window.tap;
  const TapRange* r = window.range;
  const std::int64_t sx = g.stride[2] * big_step;
  for (std::int64_t z = r[0].lo; z < r[0].hi; ++z) {
    const std::int64_t oz = z * g.stride[0] - g.pad_begin[0] + tap[0] * g.dilation[0];
    for (std::int64_t y = r[1].lo; y < r[1].hi; ++y) {
      const std::int64_t oy = y * g.stride[1] - g.pad_begin[1] + tap[1] * g.dilation[1];
      const std::int64_t small_row = (z * g.small_size[1] + y) * g.small_size[2];
      const std::int64_t big_row = (oz * g.big_size[1] + oy) * g.big_size[2] - g.pad_begin[2] + tap[2] * g.dilation[2];
      if constexpr (kSmallToBig) {
        const T* s = small_plane_src + small_row * small_step;
        T* b = dst + big_row * big_step;
        for (std::int64_t x = r[2].lo; x < r[2].hi; ++x) b[x * sx] += w * s[x * small_step];
      } else {
        T* s = dst + small_row * small_step;
        const T* b = big_plane_src + big_row * big_step;
        for (std::int64_t x = r[2].lo; x < r[2].hi; ++x) s[x * small_step] += w * b[x * sx];
      }
    }
  }
}

template <typename T>
class DirectKernel final : public PreparedKernel {
 public:
  DirectKernel(const Geometry& g, const void* weight, const void* bias) {
    const auto* w = static_cast<const T*>(weight);
    weight_.assign(w, w + g.small_channels * g.big_per_group() * g.kernel_taps());
    const std::int64_t out_channels = g.output_channels();
    if (bias) bias_.assign(static_cast<const T*>(bias), static_cast<const T*>(bias) + out_channels);
    else bias_.assign(static_cast<std::size_t>(out_channels), T(0));
  }

  std::size_t workspace_bytes(const Geometry&, int) const override { return 0; }

  void run(const Geometry& g, const void* src_v, void* dst_v, void*, int threads) const override {
    const T* src = static_cast<const T*>(src_v);
    T* dst = static_cast<T*>(dst_v);
    const bool small_to_big = g.kind == ConvKind::conv_transpose;
    const std::int64_t dst_channels = g.output_channels();
    const std::int64_t src_channels = g.input_channels();
    const std::int64_t dst_plane = small_to_big ? g.big_spatial() : g.small_spatial();
    const std::int64_t src_plane = small_to_big ? g.small_spatial() : g.big_spatial();
    const std::int64_t taps = g.kernel_taps();
    const std::int64_t planes = g.batch * dst_channels;
    const std::int64_t dst_pixel = g.pixel_step(dst_channels), src_pixel = g.pixel_step(src_channels);
    const std::int64_t dst_channel = g.channel_step(dst_plane), src_channel = g.channel_step(src_plane);
    const std::int64_t small_step = small_to_big ? src_pixel : dst_pixel, big_step = small_to_big ? dst_pixel : src_pixel;
    std::vector<TapWindow> windows;
    for (std::int64_t t = 0; t < taps; ++t) windows.push_back(tap_window(g, t));
#pragma omp parallel for schedule(static) num_threads(threads)
    for (std::int64_t plane = 0; plane < planes; ++plane) {
      const std::int64_t n = plane / dst_channels;
      const std::int64_t c = plane % dst_channels;
      T* out = dst + n * dst_channels * dst_plane + c * dst_channel;
      for (std::int64_t k = 0; k < dst_plane; ++k) out[k * dst_pixel] = bias_[static_cast<std::size_t>(c)];
      // Partner channels on the source side, and where each one's weights live.
      const std::int64_t per_group_dst = small_to_big ? g.big_per_group() : g.small_per_group();
      const std::int64_t per_group_src = small_to_big ? g.small_per_group() : g.big_per_group();
      const std::int64_t group = c / per_group_dst;
      for (std::int64_t p = 0; p < per_group_src; ++p) {
        const std::int64_t src_c = group * per_group_src + p;
        const T* in = src + n * src_channels * src_plane + src_c * src_channel;
        const std::int64_t small_c = small_to_big ? src_c : c;
        const std::int64_t big_in_group = small_to_big ? c % g.big_per_group() : p;
        const T* w = weight_.data() + (small_c * g.big_per_group() + big_in_group) * taps;
        for (std::int64_t t = 0; t < taps; ++t) {
          const TapWindow& window = windows[static_cast<std::size_t>(t)];
          if (small_to_big) {
            accumulate_tap<T, true>(g, window, w[t], in, nullptr, out, small_step, big_step);
          } else {
            accumulate_tap<T, false>(g, window, w[t], nullptr, in, out, small_step, big_step);
          }
        }
      }
    }
  }

 private:
  std::vector<T> weight_;
  std::vector<T> bias_;
};

bool always() { return true; }
std::string accepts_all(const Geometry&, DType, const WeightFacts&) { return {}; }

std::unique_ptr<PreparedKernel> prepare(const Geometry& g, DType dtype, const void* weight, const void* bias) {
  if (dtype == DType::f32) return std::make_unique<DirectKernel<float>>(g, weight, bias);
  return std::make_unique<DirectKernel<double>>(g, weight, bias);
}

}  // namespace

extern const KernelFamily kDirectFamily{"direct", "portable C++", always, accepts_all, prepare};

}  // namespace tconv::detail
