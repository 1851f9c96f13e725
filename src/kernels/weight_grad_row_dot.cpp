// Row-dot weight-gradient family: portable C++, any geometry, float32 and
// float64; the fallback for groups too narrow to fill the blocked family's
// vectors (depthwise and other few-channel groups).
//
// Math and layout: weight_grad.hpp. One work item is one (small channel cs,
// tap t) pair; it owns dw[cs, :, t], so threads never share an output element
// and the bits do not depend on the thread count. Inside an item, big channels
// go in blocks of kBlock so that each small row is loaded once per block; only
// the small positions whose tap lands inside the big extent are visited
// (tap_range). Each row's dot products are formed in T and the
// rows are added up in double, which keeps float32 sums over large batches
// and images accurate.
#include <algorithm>

#include "kernels/weight_grad.hpp"

namespace tconv::detail {
namespace {

constexpr int kBlock = 4;

// acc[j] += sum over n and the window of small[n, cs, i] * big[n, cb_first + j, o(i, t)], for j < kWidth.
template <typename T, int kWidth>
void reduce_block(const Geometry& g, const TapWindow& w, std::int64_t cs, std::int64_t cb_first, const T* small,
                  const T* big, double* acc) {
  const std::int64_t x_stride = g.stride[2];
  const std::int64_t x_lo = w.range[2].lo;
  const std::int64_t x_hi = w.range[2].hi;
  for (std::int64_t n = 0; n < g.batch; ++n) {
    const T* small_plane = small + (n * g.small_channels + cs) * g.small_spatial();
    const T* big_planes[kWidth];
    for (int j = 0; j < kWidth; ++j) big_planes[j] = big + (n * g.big_channels + cb_first + j) * g.big_spatial();
    for (std::int64_t z = w.range[0].lo; z < w.range[0].hi; ++z) {
      const std::int64_t oz = z * g.stride[0] - g.pad_begin[0] + w.tap[0] * g.dilation[0];
      for (std::int64_t y = w.range[1].lo; y < w.range[1].hi; ++y) {
        const std::int64_t oy = y * g.stride[1] - g.pad_begin[1] + w.tap[1] * g.dilation[1];
        const T* s = small_plane + (z * g.small_size[1] + y) * g.small_size[2];
        const std::int64_t big_row = (oz * g.big_size[1] + oy) * g.big_size[2] - g.pad_begin[2] + w.tap[2] * g.dilation[2];
        T row[kWidth] = {};
        for (std::int64_t x = x_lo; x < x_hi; ++x) {
          const T sv = s[x];
          for (int j = 0; j < kWidth; ++j) row[j] += sv * big_planes[j][big_row + x * x_stride];
        }
        for (int j = 0; j < kWidth; ++j) acc[j] += row[j];
      }
    }
  }
}

template <typename T>
void run_typed(const Geometry& g, const T* small, const T* big, T* dw, int threads) {
  const std::int64_t taps = g.kernel_taps();
  const std::int64_t per_group = g.big_per_group();
  const std::int64_t items = g.small_channels * taps;
#pragma omp parallel for schedule(dynamic) num_threads(threads)
  for (std::int64_t item = 0; item < items; ++item) {
    const std::int64_t cs = item / taps;
    const std::int64_t t = item % taps;
    const TapWindow w = tap_window(g, t);
    const std::int64_t cb_group_first = cs / g.small_per_group() * per_group;
    T* out = dw + cs * per_group * taps + t;
    for (std::int64_t block = 0; block < per_group; block += kBlock) {
      double acc[kBlock] = {};
      const std::int64_t width = std::min<std::int64_t>(kBlock, per_group - block);
      if (!w.empty()) {
        if (width == kBlock) {
          reduce_block<T, kBlock>(g, w, cs, cb_group_first + block, small, big, acc);
        } else {
          for (std::int64_t j = 0; j < width; ++j) reduce_block<T, 1>(g, w, cs, cb_group_first + block + j, small, big, acc + j);
        }
      }
      for (std::int64_t j = 0; j < width; ++j) out[(block + j) * taps] = static_cast<T>(acc[j]);
    }
  }
}

bool always() { return true; }
std::string accepts_all(const Geometry&, DType) { return {}; }

void run(const Geometry& g, DType dtype, const void* small, const void* big, void* dw, int threads) {
  with_element_type(dtype, small, big, dw, [&](auto s, auto b, auto w) { run_typed(g, s, b, w, threads); });
}

}  // namespace

extern const WeightGradFamily kRowDotWeightGradFamily{"row_dot", "portable C++", always, accepts_all, run};

}  // namespace tconv::detail
