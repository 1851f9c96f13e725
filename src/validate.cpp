#include "validate.hpp"

#include <algorithm>
#include <string>

namespace tconv::detail {
namespace {

[[noreturn]] void refuse(const std::string& message) { throw Error(ErrorKind::invalid_argument, message); }

std::string to_s(std::int64_t v) { return std::to_string(v); }

// Largest element count tconv accepts for one tensor: beyond it byte counts
// overflow 64-bit arithmetic long before any machine could hold the data.
constexpr std::int64_t kMaxElements = std::int64_t{1} << 56;

std::int64_t checked_numel(const Shape& shape, const char* what) {
  std::int64_t n = 1;
  for (auto d : shape) {
    if (__builtin_mul_overflow(n, d, &n) || n > kMaxElements) {
      refuse(std::string(what) + " of shape " + shape_to_string(shape) + " has more than 2^56 elements");
    }
  }
  return n;
}

// The value of a spatial parameter for each dimension, checked against a rule.
Dims read_param(const SpatialParam& param, const char* name, int rank, std::int64_t minimum,
                const char* rule) {
  if (!param.fits(rank)) {
    refuse(std::string(name) + " has " + to_s(static_cast<std::int64_t>(param.values().size())) +
           " values but the convolution is " + to_s(rank) + "-D (give one value, or one per spatial dimension)");
  }
  Dims dims{};
  for (int d = 0; d < rank; ++d) {
    const std::int64_t v = param.at(d);
    if (v < minimum) refuse(std::string(name) + " (" + to_s(v) + ") must be " + rule);
    if (v > kMaxElements) refuse(std::string(name) + " (" + to_s(v) + ") is too large");
    dims[d] = v;
  }
  return dims;
}

// Moves the first `rank` entries to the end of a 3-entry array, filling the front.
Dims align_right(const Dims& dims, int rank, std::int64_t fill) {
  Dims out{fill, fill, fill};
  for (int d = 0; d < rank; ++d) out[kMaxSpatial - rank + d] = dims[d];
  return out;
}

std::string spatial_string(const Dims& dims, int rank, const char* separator = "x") {
  return shape_to_string(Shape(dims.begin(), dims.begin() + rank), separator);
}

struct WeightPart {
  Geometry geometry;
  Dims stride, dilation, pad_begin, pad_end, output_padding;
};

WeightPart resolve_weight_part(ConvKind kind, const Shape& weight_shape, const std::optional<Shape>& bias_shape,
                               const ConvParams& params) {
  WeightPart part;
  Geometry& g = part.geometry;
  g.kind = kind;
  if (params.layout != Layout::channels_first && params.layout != Layout::channels_last) {
    refuse("layout (" + to_s(static_cast<std::int64_t>(params.layout)) + ") must be channels_first or channels_last");
  }
  g.layout = params.layout;
  const auto weight_rank = static_cast<std::int64_t>(weight_shape.size());
  if (weight_rank < 3 || weight_rank > 5) {
    refuse("weight must have 3, 4 or 5 dimensions ([" +
           std::string(kind == ConvKind::conv ? "C_out, C_in/groups" : "C_in, C_out/groups") +
           ", kernel...] for a 1-, 2- or 3-D convolution), got " + to_s(weight_rank) + " (shape " +
           shape_to_string(weight_shape) + ")");
  }
  for (int d = 0; d < 2; ++d) {
    if (weight_shape[d] < 0) {
      refuse("weight dimension " + to_s(d) + " (" + to_s(weight_shape[d]) + ") must be non-negative (weight shape " +
             shape_to_string(weight_shape) + ")");
    }
  }
  checked_numel(weight_shape, "weight");
  const int rank = static_cast<int>(weight_rank) - 2;
  g.spatial_rank = rank;

  if (params.groups < 1) refuse("groups (" + to_s(params.groups) + ") must be positive");
  g.groups = params.groups;
  part.stride = read_param(params.stride, "stride", rank, 1, "positive");
  part.dilation = read_param(params.dilation, "dilation", rank, 1, "positive");
  part.pad_begin = read_param(params.padding, "padding", rank, 0, "non-negative");
  part.pad_end = params.padding_end ? read_param(*params.padding_end, "padding_end", rank, 0, "non-negative")
                                    : part.pad_begin;
  part.output_padding = read_param(params.output_padding, "output_padding", rank, 0, "non-negative");
  for (int d = 0; d < rank; ++d) {
    const std::int64_t op = part.output_padding[d];
    if (kind == ConvKind::conv && op != 0) {
      refuse("output_padding (" + to_s(op) + ") applies to conv_transpose only; a convolution takes 0");
    }
    if (op >= part.stride[d] && op >= part.dilation[d]) {
      refuse("output_padding (" + to_s(op) + ") must be smaller than stride (" + to_s(part.stride[d]) +
             ") or dilation (" + to_s(part.dilation[d]) + ")");
    }
  }

  Dims kernel{};
  for (int d = 0; d < rank; ++d) {
    kernel[d] = weight_shape[2 + d];
    if (kernel[d] < 1) {
      refuse("kernel size (" + to_s(kernel[d]) + ", weight dimension " + to_s(2 + d) + ") must be positive");
    }
  }

  const std::int64_t dim0 = weight_shape[0];
  const std::int64_t dim1 = weight_shape[1];
  if (dim0 % g.groups != 0) {
    refuse(std::string(kind == ConvKind::conv ? "out_channels" : "in_channels") + " (" + to_s(dim0) +
           ", weight dimension 0) is not divisible by groups (" + to_s(g.groups) + ")");
  }
  g.small_channels = dim0;
  if (__builtin_mul_overflow(dim1, g.groups, &g.big_channels) || g.big_channels > kMaxElements) {
    refuse("weight dimension 1 (" + to_s(dim1) + ") times groups (" + to_s(g.groups) + ") is too large");
  }

  if (bias_shape) {
    const std::int64_t out_channels = g.output_channels();
    if (bias_shape->size() != 1 || (*bias_shape)[0] != out_channels) {
      refuse("bias must have shape [" + to_s(out_channels) + "] (one value per output channel), got [" +
             shape_to_string(*bias_shape, ", ") + "]");
    }
  }

  g.kernel = align_right(kernel, rank, 1);
  g.stride = align_right(part.stride, rank, 1);
  g.dilation = align_right(part.dilation, rank, 1);
  g.pad_begin = align_right(part.pad_begin, rank, 0);
  return part;
}

}  // namespace

Geometry resolve_weight_geometry(ConvKind kind, const Shape& weight_shape, const std::optional<Shape>& bias_shape,
                                 const ConvParams& params) {
  return resolve_weight_part(kind, weight_shape, bias_shape, params).geometry;
}

Geometry resolve_geometry(ConvKind kind, const Shape& input_shape, const Shape& weight_shape,
                          const std::optional<Shape>& bias_shape, const ConvParams& params) {
  WeightPart part = resolve_weight_part(kind, weight_shape, bias_shape, params);
  Geometry& g = part.geometry;
  const int rank = g.spatial_rank;

  const auto input_rank = static_cast<int>(input_shape.size());
  if (input_rank != rank + 1 && input_rank != rank + 2) {
    refuse("input must have " + to_s(rank + 1) + " (unbatched) or " + to_s(rank + 2) + " (batched) dimensions for a " +
           to_s(rank) + "-D convolution (the weight has " + to_s(rank + 2) + "), got " + to_s(input_rank) +
           " (shape " + shape_to_string(input_shape) + ")");
  }
  checked_numel(input_shape, "input");
  g.batched = input_rank == rank + 2;
  const int first = g.batched ? 1 : 0;
  g.batch = g.batched ? input_shape[0] : 1;
  if (g.batch < 0) refuse("input batch size (" + to_s(g.batch) + ") must be non-negative");
  for (int d = first; d < input_rank; ++d) {
    if (input_shape[d] < 1) {
      refuse("input dimension " + to_s(d) + " has size " + to_s(input_shape[d]) +
             "; only the batch dimension may be empty (input shape " + shape_to_string(input_shape) + ")");
    }
  }

  const bool channels_last = g.layout == Layout::channels_last;
  const int channel_dim = channels_last ? input_rank - 1 : first;
  const int first_spatial = channels_last ? first : first + 1;
  const std::int64_t channels = input_shape[channel_dim];
  const std::string has_channels =
      "input has " + to_s(channels) + " channels" + (channels_last ? " (its last dimension: layout channels_last)" : "");
  if (kind == ConvKind::conv && channels != g.big_channels) {
    refuse(has_channels + " but the weight expects " + to_s(g.big_channels) +
           " (weight dimension 1 is " + to_s(g.big_per_group()) + ", times groups " + to_s(g.groups) + ")");
  }
  if (kind == ConvKind::conv_transpose && channels != g.small_channels) {
    refuse(has_channels + " but the weight's dimension 0 (in_channels) is " +
           to_s(g.small_channels));
  }

  Dims in_size{}, out_size{};
  bool empty = false;
  for (int d = 0; d < rank; ++d) {
    const std::int64_t i = input_shape[first_spatial + d];
    in_size[d] = i;
    // Every factor is at most 2^56, so 128-bit arithmetic cannot overflow.
    using Wide = __int128;
    const std::int64_t k = g.kernel[kMaxSpatial - rank + d];
    const Wide span = Wide{part.dilation[d]} * (k - 1);
    const Wide pads = Wide{part.pad_begin[d]} + part.pad_end[d];
    const Wide stride = part.stride[d];
    Wide out = 0;
    if (kind == ConvKind::conv) {
      const Wide room = i + pads - span - 1;
      out = room < 0 ? (room - stride + 1) / stride + 1 : room / stride + 1;
    } else {
      out = Wide{i - 1} * stride - pads + span + part.output_padding[d] + 1;
    }
    if (out > kMaxElements || out < -kMaxElements) {
      refuse("computed output size of spatial dimension " + to_s(d) + " is beyond 2^56 in magnitude (input " +
             to_s(i) + ", kernel " + to_s(k) + ", stride " + to_s(part.stride[d]) + ", dilation " +
             to_s(part.dilation[d]) + ", padding " + to_s(part.pad_begin[d]) + " + " + to_s(part.pad_end[d]) +
             ", output_padding " + to_s(part.output_padding[d]) + ")");
    }
    out_size[d] = static_cast<std::int64_t>(out);
    empty = empty || out_size[d] < 1;
  }
  if (empty) {
    Dims kernel{};
    for (int d = 0; d < rank; ++d) kernel[d] = g.kernel[kMaxSpatial - rank + d];
    std::string padding = spatial_string(part.pad_begin, rank);
    if (part.pad_end != part.pad_begin) padding += " (begin) and " + spatial_string(part.pad_end, rank) + " (end)";
    std::string why = kind == ConvKind::conv
                          ? "input " + spatial_string(in_size, rank) + " is too small for kernel " +
                                spatial_string(kernel, rank) + " with dilation " +
                                spatial_string(part.dilation, rank) + " and padding " + padding
                          : "padding " + padding + " crops more than input " + spatial_string(in_size, rank) +
                                " with stride " + spatial_string(part.stride, rank) + ", kernel " +
                                spatial_string(kernel, rank) + ", dilation " + spatial_string(part.dilation, rank) +
                                " and output_padding " + spatial_string(part.output_padding, rank) + " produces";
    refuse("computed output size is " + spatial_string(out_size, rank, " x ") + ": " + why);
  }

  const Dims in3 = align_right(in_size, rank, 1);
  const Dims out3 = align_right(out_size, rank, 1);
  g.big_size = kind == ConvKind::conv ? in3 : out3;
  g.small_size = kind == ConvKind::conv ? out3 : in3;
  checked_numel(g.output_shape(), "output");
  return g;
}

}  // namespace tconv::detail
