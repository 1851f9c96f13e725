// The checked, normalized description of one (transposed) convolution.
//
// A convolution and its transpose share one index relation. Call the
// convolution's input the "big" tensor and its output the "small" one; a
// transposed convolution reads the small tensor and writes the big one. Per
// spatial dimension, big position o and small position i are linked by kernel
// tap t when
//     o = i * stride - pad_begin + t * dilation.
// Both operators use the same weight layout [small_channels, big_channels / groups, k...]:
// PyTorch's conv weight is [C_out, C_in/g, k...] (C_out is the small side) and
// its conv_transpose weight is [C_in, C_out/g, k...] (C_in is the small side).
//     conv:            small[n, cs, i] = sum_{cb, t} w[cs, cb', t] * big[n, cb, o(i, t)]
//     conv_transpose:  big[n, cb, o]   = sum_{cs, t} w[cs, cb', t] * small[n, cs, i]  (over o(i, t) = o)
// with cb' = cb mod (big_channels / groups), cs and cb in the same group.
// Spatial dimensions are normalized to three by leading dimensions of size 1,
// so a 1-D convolution is a 3-D one with extent 1 in depth and height.
#pragma once

#include <array>
#include <cstdint>

#include "tconv/tconv.hpp"

namespace tconv::detail {

constexpr int kMaxSpatial = 3;
using Dims = std::array<std::int64_t, kMaxSpatial>;

struct Geometry {
  ConvKind kind = ConvKind::conv;
  int spatial_rank = 2;  // as the user gave it: 1, 2 or 3
  bool batched = true;   // false when the input had no batch dimension
  Layout layout = Layout::channels_first;  // of src and dst: [N, C, D, H, W] or [N, D, H, W, C]
  std::int64_t batch = 1;
  std::int64_t groups = 1;
  std::int64_t small_channels = 0;
  std::int64_t big_channels = 0;
  Dims small_size{1, 1, 1};
  Dims big_size{1, 1, 1};
  Dims kernel{1, 1, 1};
  Dims stride{1, 1, 1};
  Dims dilation{1, 1, 1};
  Dims pad_begin{0, 0, 0};

  std::int64_t small_spatial() const { return small_size[0] * small_size[1] * small_size[2]; }
  std::int64_t big_spatial() const { return big_size[0] * big_size[1] * big_size[2]; }
  std::int64_t kernel_taps() const { return kernel[0] * kernel[1] * kernel[2]; }
  std::int64_t small_per_group() const { return small_channels / groups; }
  std::int64_t big_per_group() const { return big_channels / groups; }

  std::int64_t input_channels() const { return kind == ConvKind::conv ? big_channels : small_channels; }
  std::int64_t output_channels() const { return kind == ConvKind::conv ? small_channels : big_channels; }
  std::int64_t input_per_group() const { return kind == ConvKind::conv ? big_per_group() : small_per_group(); }
  std::int64_t output_per_group() const { return kind == ConvKind::conv ? small_per_group() : big_per_group(); }
  const Dims& input_size() const { return kind == ConvKind::conv ? big_size : small_size; }
  const Dims& output_size() const { return kind == ConvKind::conv ? small_size : big_size; }
  // The output shape in the user's rank and layout (batch dimension kept or left out as given).
  Shape output_shape() const;
  Shape input_shape() const;
  // Element steps between neighbouring channels and neighbouring spatial
  // positions of a contiguous activation with `channels` channels and `spatial` positions.
  std::int64_t channel_step(std::int64_t spatial) const { return layout == Layout::channels_first ? spatial : 1; }
  std::int64_t pixel_step(std::int64_t channels) const { return layout == Layout::channels_first ? 1 : channels; }
  Shape weight_shape() const;
  // Index in the weight [small_channels, big_channels/groups, taps] of the tap
  // linking input channel c to output channel m (both counted within group grp).
  std::int64_t weight_index(std::int64_t grp, std::int64_t m, std::int64_t c, std::int64_t tap) const {
    const bool transposed = kind == ConvKind::conv_transpose;
    const std::int64_t small = grp * (transposed ? input_per_group() : output_per_group()) + (transposed ? c : m);
    return (small * big_per_group() + (transposed ? m : c)) * kernel_taps() + tap;
  }
};

// The range [lo, hi) of small positions i whose tap `t` lands inside the big
// extent, i.e. 0 <= i*stride - pad + t*dilation < big.
struct TapRange {
  std::int64_t lo, hi;
};
TapRange tap_range(std::int64_t small, std::int64_t big, std::int64_t stride, std::int64_t pad,
                   std::int64_t dilation, std::int64_t tap);

// One kernel tap (flat index t, C order over the kernel) and, per dimension,
// the small positions it links to the big extent.
struct TapWindow {
  Dims tap;
  TapRange range[kMaxSpatial];
  bool empty() const;  // no small position links through this tap
};
TapWindow tap_window(const Geometry& g, std::int64_t t);

// An activation of this geometry seen as [N, C, spatial...] whatever its layout:
// a channels-last view gets its dimensions permuted (no copy).
TensorView channels_first_view(const TensorView& view, const Geometry& g);
MutableTensorView channels_first_view(const MutableTensorView& view, const Geometry& g);

}  // namespace tconv::detail
