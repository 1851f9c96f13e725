#include "kernels/conv_geometry.hpp"

#include <algorithm>
#include <iterator>

namespace tconv::detail {

namespace {
Shape activation_shape(const Geometry& g, std::int64_t channels, const Dims& size) {
  Shape shape;
  if (g.batched) shape.push_back(g.batch);
  if (g.layout == Layout::channels_first) shape.push_back(channels);
  for (int d = kMaxSpatial - g.spatial_rank; d < kMaxSpatial; ++d) shape.push_back(size[d]);
  if (g.layout == Layout::channels_last) shape.push_back(channels);
  return shape;
}
}  // namespace

Shape Geometry::output_shape() const { return activation_shape(*this, output_channels(), output_size()); }
Shape Geometry::input_shape() const { return activation_shape(*this, input_channels(), input_size()); }

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

TensorView channels_first_view(const TensorView& view, const Geometry& g) {
  if (g.layout == Layout::channels_first) return view;
  const Shape strides = view.effective_strides();
  const auto channel = static_cast<std::ptrdiff_t>(view.shape.size()) - 1;
  const std::ptrdiff_t first_spatial = g.batched ? 1 : 0;
  auto permute = [&](const Shape& dims) {
    Shape out(dims.begin(), dims.begin() + first_spatial);
    out.push_back(dims[static_cast<std::size_t>(channel)]);
    out.insert(out.end(), dims.begin() + first_spatial, dims.begin() + channel);
    return out;
  };
  return TensorView(view.data, view.dtype, permute(view.shape), permute(strides));
}

MutableTensorView channels_first_view(const MutableTensorView& view, const Geometry& g) {
  const TensorView permuted = channels_first_view(static_cast<const TensorView&>(view), g);
  return MutableTensorView(view.mutable_data(), view.dtype, permuted.shape, permuted.strides);
}

}  // namespace tconv::detail
