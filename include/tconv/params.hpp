// Convolution parameters, with PyTorch's conventions.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <vector>

namespace tconv {

// One value per spatial dimension, or a single value used for every dimension
// (as PyTorch accepts `stride=2` or `stride=(2, 1)`).
class SpatialParam {
 public:
  SpatialParam(std::int64_t value) : values_{value} {}  // NOLINT: an int is the common spelling
  SpatialParam(std::initializer_list<std::int64_t> values) : values_(values) {}
  explicit SpatialParam(std::vector<std::int64_t> values) : values_(std::move(values)) {}

  const std::vector<std::int64_t>& values() const { return values_; }
  // True when the parameter can be read for `spatial_rank` dimensions.
  bool fits(int spatial_rank) const {
    return values_.size() == 1 || static_cast<int>(values_.size()) == spatial_rank;
  }
  std::int64_t at(int dim) const { return values_.size() == 1 ? values_[0] : values_.at(dim); }

 private:
  std::vector<std::int64_t> values_;
};

// Where the channel dimension of activations (input and output) sits. Weights
// keep PyTorch's layout [C, C/groups, k...] in both cases.
enum class Layout {
  channels_first,  // [N, C, spatial...]: PyTorch's NCW / NCHW / NCDHW
  channels_last,   // [N, spatial..., C]: NWC / NHWC / NDHWC (TensorFlow's default, XNNPACK's only layout)
};
const char* layout_name(Layout layout);

// The parameters of torch.nn.functional.conv{1,2,3}d and conv_transpose{1,2,3}d.
// dilation 1 means no dilation; output_padding is read by conv_transpose only.
struct ConvParams {
  SpatialParam stride = 1;
  SpatialParam padding = 0;          // zeros added at both ends (conv) / cropped from both ends (conv_transpose)
  SpatialParam output_padding = 0;   // extra size at the end of a transposed convolution's output
  SpatialParam dilation = 1;
  std::int64_t groups = 1;
  // Asymmetric padding: when set, `padding` is the amount at the beginning of
  // each dimension and this is the amount at the end.
  std::optional<SpatialParam> padding_end;
  // The activations' layout; the fast kernels read and write both in place.
  Layout layout = Layout::channels_first;
};

}  // namespace tconv
