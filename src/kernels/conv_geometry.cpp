#include "kernels/conv_geometry.hpp"

#include <algorithm>
#include <iterator>

namespace tconv::detail {

Shape Geometry::output_shape() const {
  Shape shape;
  if (batched) shape.push_back(batch);
  shape.push_back(output_channels());
  for (int d = kMaxSpatial - spatial_rank; d < kMaxSpatial; ++d) shape.push_back(output_size()[d]);
  return shape;
}

Shape Geometry::input_shape() const {
  Shape shape;
  if (batched) shape.push_back(batch);
  shape.push_back(input_channels());
  for (int d = kMaxSpatial - spatial_rank; d < kMaxSpatial; ++d) shape.push_back(input_size()[d]);
  return shape;
}

Shape Geometry::weight_shape() const {
  Shape shape{small_channels, big_per_group()};
  for (int d = kMaxSpatial - spatial_rank; d < kMaxSpatial; ++d) shape.push_back(kernel[d]);
  return shape;
}

TapRange tap_range(std::int64_t small, std::int64_t big, std::int64_t stride, std::int64_t pad,
                   std::int64_t dilation, std::int64_t tap) {
  // 0 <= i*stride + offset < big, with offset = t*dilation - pad.
  const std::int64_t offset = tap * dilation - pad;
  auto ceil_div = [](std::int64_t a, std::int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); };
  const std::int64_t lo = std::max<std::int64_t>(0, ceil_div(-offset, stride));
  const std::int64_t hi = std::min<std::int64_t>(small, ceil_div(big - offset, stride));
  return {lo, std::max(lo, hi)};
}

TapWindow tap_window(const Geometry& g, std::int64_t t) {
  TapWindow w;
  w.tap = {t / (g.kernel[1] * g.kernel[2]), (t / g.kernel[2]) % g.kernel[1], t % g.kernel[2]};
  for (int d = 0; d < kMaxSpatial; ++d) {
    w.range[d] = tap_range(g.small_size[d], g.big_size[d], g.stride[d], g.pad_begin[d], g.dilation[d], w.tap[d]);
  }
  return w;
}

bool TapWindow::empty() const {
  return std::any_of(std::begin(range), std::end(range), [](const TapRange& r) { return r.lo >= r.hi; });
}

}  // namespace tconv::detail
