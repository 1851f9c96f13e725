// ONNX's Conv / ConvTranspose attributes translated into ConvParams (see
// include/tconv/onnx.hpp and docs/conventions.md for the rules).
#include "tconv/onnx.hpp"

#include <algorithm>
#include <string>

namespace tconv::onnx {
namespace {

using Wide = __int128;

// Attribute values beyond this are refused before any arithmetic, so that
// every product below fits 128 bits (the convolution itself refuses sizes
// beyond 2^56 anyway).
constexpr std::int64_t kMaxValue = std::int64_t{1} << 56;

[[noreturn]] void refuse(const std::string& message) { throw Error(ErrorKind::invalid_argument, message); }

std::string to_s(std::int64_t v) { return std::to_string(v); }

// A list as ONNX (and Python) print it: [1, 2, 3].
std::string list(const Ints& values) {
  std::string text(1, '[');
  text += shape_to_string(values, ", ");
  text += ']';
  return text;
}

// An INTS attribute with exactly `count` values, or `fallback` repeated when absent.
Ints ints(const std::string& name, const std::optional<Ints>& value, std::size_t count, std::int64_t fallback) {
  if (!value) return Ints(count, fallback);
  if (value->size() != count) refuse(name + " " + list(*value) + " must have " + to_s(static_cast<std::int64_t>(count)) + " values");
  return *value;
}

void check_range(const std::string& name, const Ints& values, std::int64_t minimum, const char* rule) {
  for (const std::int64_t v : values) {
    if (v < minimum) refuse(name + " " + list(values) + " must be " + rule);
    if (v > kMaxValue) refuse(name + " " + list(values) + " has a value beyond 2^56");
  }
}

std::int64_t narrow(Wide value, const std::string& what) {
  if (value > kMaxValue || value < -kMaxValue) refuse(what + " is beyond 2^56 in magnitude");
  return static_cast<std::int64_t>(value);
}

// floor(a / b) for b > 0.
Wide floor_div(Wide a, Wide b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// (begin, end) halves of `total`, the odd unit at the end or at the beginning.
void split(std::int64_t total, bool extra_at_end, std::int64_t& begin, std::int64_t& end) {
  const std::int64_t small = total / 2, big = total - total / 2;
  begin = extra_at_end ? small : big;
  end = extra_at_end ? big : small;
}

Tensor run(ConvKind kind, const TensorView& X, const TensorView& W, const TensorView* B,
           const Attributes& attributes) {
  const Resolved resolved = resolve(kind, X.shape, W.shape, attributes);
  Tensor y = kind == ConvKind::conv ? tconv::conv(X, W, B, resolved.params)
                                    : tconv::conv_transpose(X, W, B, resolved.params);
  if (std::all_of(resolved.output_extension.begin(), resolved.output_extension.end(),
                  [](std::int64_t e) { return e == 0; })) {
    return y;
  }
  // The requested output is larger than what the transposed convolution
  // reaches: its extra elements at the end hold the bias (zero without one).
  Tensor out(y.dtype(), resolved.output_shape);
  const std::int64_t batch = out.shape()[0], channels = out.shape()[1];
  const std::int64_t plane = channels == 0 || batch == 0 ? 0 : out.numel() / (batch * channels);
  if (B != nullptr && plane > 0) {
    const std::int64_t bias_stride = B->effective_strides().at(0);
    auto fill = [&](auto* values, const auto* bias) {
      for (std::int64_t n = 0; n < batch; ++n) {
        for (std::int64_t c = 0; c < channels; ++c) {
          std::fill_n(values + (n * channels + c) * plane, plane, bias[c * bias_stride]);
        }
      }
    };
    if (out.dtype() == DType::f32) fill(out.data_as<float>(), static_cast<const float*>(B->data));
    else fill(out.data_as<double>(), static_cast<const double*>(B->data));
  }
  copy(y.view(), MutableTensorView(out.data(), out.dtype(), y.shape(), out.view().effective_strides()));
  return out;
}

}  // namespace

AutoPad parse_auto_pad(const std::string& text) {
  for (const AutoPad a : {AutoPad::NOTSET, AutoPad::SAME_UPPER, AutoPad::SAME_LOWER, AutoPad::VALID}) {
    if (text == auto_pad_name(a)) return a;
  }
  refuse("auto_pad must be one of NOTSET, SAME_UPPER, SAME_LOWER, VALID, got '" + text + "'");
}

const char* auto_pad_name(AutoPad auto_pad) {
  switch (auto_pad) {
    case AutoPad::NOTSET: return "NOTSET";
    case AutoPad::SAME_UPPER: return "SAME_UPPER";
    case AutoPad::SAME_LOWER: return "SAME_LOWER";
    case AutoPad::VALID: return "VALID";
  }
  return "?";
}

Resolved resolve(ConvKind kind, const Shape& input_shape, const Shape& weight_shape, const Attributes& a) {
  const std::size_t weight_rank = weight_shape.size();
  if (weight_rank < 3 || weight_rank > 5) {
    refuse("W must have 3, 4 or 5 dimensions (1-, 2- or 3-D convolution), got " +
           to_s(static_cast<std::int64_t>(weight_rank)) + " (shape " + list(weight_shape) + ")");
  }
  const std::size_t rank = weight_rank - 2;
  if (input_shape.size() != rank + 2) {
    refuse("X must have " + to_s(static_cast<std::int64_t>(rank + 2)) + " dimensions [N, C, spatial...] for a W of shape " +
           list(weight_shape) + ", got " + to_s(static_cast<std::int64_t>(input_shape.size())) + " (shape " +
           list(input_shape) + ")");
  }
  if (a.pads && a.auto_pad != AutoPad::NOTSET) {
    refuse("pads (" + list(*a.pads) + ") cannot be used with auto_pad='" + auto_pad_name(a.auto_pad) +
           "' (only with NOTSET)");
  }
  const Ints kernel(weight_shape.begin() + 2, weight_shape.end());
  if (a.kernel_shape && ints("kernel_shape", a.kernel_shape, rank, 0) != kernel) {
    refuse("kernel_shape " + list(*a.kernel_shape) + " must match W's spatial dimensions " + list(kernel));
  }
  const Ints strides = ints("strides", a.strides, rank, 1);
  const Ints dilations = ints("dilations", a.dilations, rank, 1);
  const Ints pads = ints("pads", a.pads, 2 * rank, 0);
  check_range("pads", pads, 0, "non-negative");
  check_range("strides", strides, 1, "positive");
  check_range("dilations", dilations, 1, "positive");
  if (a.group < 1) refuse("group (" + to_s(a.group) + ") must be positive");
  for (std::size_t d = 0; d < rank; ++d) {
    const std::int64_t n = input_shape[2 + d];
    if (n < 1) {
      refuse("X dimension " + to_s(static_cast<std::int64_t>(2 + d)) + " has size " + to_s(n) +
             "; only the batch dimension may be empty (X shape " + list(input_shape) + ")");
    }
  }

  Ints begins(pads.begin(), pads.begin() + static_cast<std::ptrdiff_t>(rank));
  Ints ends(pads.begin() + static_cast<std::ptrdiff_t>(rank), pads.end());
  Ints adjust(rank, 0);
  Shape extension(rank, 0);
  // Everything below is exact: the sizes are below 2^63 and the attributes at most 2^56.
  auto effective_kernel = [&](std::size_t d) { return (Wide{kernel[d]} - 1) * dilations[d] + 1; };
  const bool same = a.auto_pad == AutoPad::SAME_UPPER || a.auto_pad == AutoPad::SAME_LOWER;
  const bool extra_at_end = a.auto_pad != AutoPad::SAME_LOWER;

  if (kind == ConvKind::conv) {
    if (a.output_padding) refuse("output_padding (" + list(*a.output_padding) + ") is a ConvTranspose attribute; Conv has none");
    if (a.output_shape) refuse("output_shape (" + list(*a.output_shape) + ") is a ConvTranspose attribute; Conv has none");
    if (same) {
      // out = ceil(in / stride), total = max(0, (out - 1) * stride + K - in).
      for (std::size_t d = 0; d < rank; ++d) {
        const Wide n = input_shape[2 + d], s = strides[d];
        const Wide out = floor_div(n + s - 1, s);
        const Wide total = std::max<Wide>(0, (out - 1) * s + effective_kernel(d) - n);
        split(narrow(total, "the SAME padding of spatial axis " + to_s(static_cast<std::int64_t>(d))), extra_at_end,
              begins[d], ends[d]);
      }
    } else if (a.auto_pad == AutoPad::VALID) {
      std::fill(begins.begin(), begins.end(), 0);
      std::fill(ends.begin(), ends.end(), 0);
    }
  } else {
    adjust = ints("output_padding", a.output_padding, rank, 0);
    check_range("output_padding", adjust, 0, "non-negative");
    std::optional<Ints> targets;
    if (a.output_shape) {
      if (a.pads) {
        refuse("pads (" + list(*a.pads) + ") cannot be used with output_shape (" + list(*a.output_shape) +
               "): output_shape sets the pads");
      }
      const Ints& shape = *a.output_shape;
      const Ints spatial = shape.size() == rank + 2 ? Ints(shape.begin() + 2, shape.end()) : shape;
      targets = ints("output_shape", spatial, rank, 0);
      for (const std::int64_t t : *targets) {
        if (t < 1) refuse("output_shape " + list(shape) + " must be positive");
        if (t > kMaxValue) refuse("output_shape " + list(shape) + " has a value beyond 2^56");
      }
    } else if (same) {
      targets = Ints(rank);
      for (std::size_t d = 0; d < rank; ++d) {
        (*targets)[d] = narrow(Wide{input_shape[2 + d]} * strides[d],
                               "input size times stride of spatial axis " + to_s(static_cast<std::int64_t>(d)));
      }
    } else if (a.auto_pad == AutoPad::VALID) {
      std::fill(begins.begin(), begins.end(), 0);
      std::fill(ends.begin(), ends.end(), 0);
    }
    if (targets) {
      // total_padding = stride * (in - 1) + output_padding + K - output_shape; a negative total crops
      // nothing and appends the missing elements at the end.
      for (std::size_t d = 0; d < rank; ++d) {
        const Wide natural = Wide{strides[d]} * (input_shape[2 + d] - 1) + adjust[d] + effective_kernel(d);
        const std::int64_t total =
            narrow(natural - (*targets)[d], "the total padding of spatial axis " + to_s(static_cast<std::int64_t>(d)));
        extension[d] = std::max<std::int64_t>(0, -total);
        split(std::max<std::int64_t>(0, total), extra_at_end, begins[d], ends[d]);
      }
    }
  }

  Resolved resolved;
  resolved.params.stride = SpatialParam(strides);
  resolved.params.dilation = SpatialParam(dilations);
  resolved.params.padding = SpatialParam(begins);
  resolved.params.padding_end = SpatialParam(ends);
  resolved.params.output_padding = SpatialParam(adjust);
  resolved.params.groups = a.group;
  resolved.output_extension = extension;
  resolved.output_shape = tconv::output_shape(kind, input_shape, weight_shape, resolved.params);
  for (std::size_t d = 0; d < rank; ++d) resolved.output_shape[2 + d] += extension[d];
  return resolved;
}

Tensor conv(const TensorView& X, const TensorView& W, const TensorView* B, const Attributes& attributes) {
  return run(ConvKind::conv, X, W, B, attributes);
}

Tensor conv_transpose(const TensorView& X, const TensorView& W, const TensorView* B, const Attributes& attributes) {
  return run(ConvKind::conv_transpose, X, W, B, attributes);
}

}  // namespace tconv::onnx
