// ONNX's Conv and ConvTranspose operators (opset 11 and later) on tconv.
//
// The attributes are spelled as the ONNX operator specification spells them;
// an attribute ONNX lets a model leave out is a std::optional (absent), with
// ONNX's default. resolve() turns them, for one input and weight shape, into
// tconv's PyTorch-convention ConvParams: begin padding in `padding`, end
// padding in `padding_end`, ONNX's output_padding in `output_padding`, and an
// output_shape (or SAME_UPPER / SAME_LOWER, which ask for in * stride)
// translated into pads as the specification's total_padding formula says.
// The rules, and where tconv picks the specification over ONNX Runtime (or
// the other way round), are in docs/conventions.md. The command line
// (`tconv run --convention onnx`) and Python (tconv.onnx) both use this.
//
// Layouts: X [N, C, spatial...] (the batch dimension is required, as in ONNX),
// W [M, C/group, k...] for Conv and [C, M/group, k...] for ConvTranspose.
// Every function throws tconv::Error naming the attribute, its value and the rule.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tconv/tconv.hpp"

namespace tconv::onnx {

enum class AutoPad { NOTSET, SAME_UPPER, SAME_LOWER, VALID };

// "NOTSET", "SAME_UPPER", "SAME_LOWER" or "VALID"; anything else is an Error.
AutoPad parse_auto_pad(const std::string& text);
const char* auto_pad_name(AutoPad auto_pad);

using Ints = std::vector<std::int64_t>;

struct Attributes {
  AutoPad auto_pad = AutoPad::NOTSET;
  std::optional<Ints> dilations;       // one per spatial axis; default 1
  std::int64_t group = 1;
  std::optional<Ints> kernel_shape;    // checked against W's spatial dimensions
  std::optional<Ints> output_padding;  // ConvTranspose only; one per spatial axis; default 0
  std::optional<Ints> output_shape;    // ConvTranspose only; one per spatial axis, or the full [N, C, ...] shape
  std::optional<Ints> pads;            // [x1_begin, x2_begin, ..., x1_end, x2_end, ...]; default 0
  std::optional<Ints> strides;         // one per spatial axis; default 1
};

struct Resolved {
  ConvParams params;  // every field set per spatial dimension, padding_end included
  // Elements appended at the end of each spatial dimension of a ConvTranspose
  // output: an output_shape beyond the natural size (total_padding < 0) adds
  // them; no input element reaches them, so they hold the bias (or zero).
  // All zero for Conv.
  Shape output_extension;
  Shape output_shape;  // Y's shape
};

// The ConvParams (and output extension) ONNX's attributes mean for X and W of these shapes.
Resolved resolve(ConvKind kind, const Shape& input_shape, const Shape& weight_shape, const Attributes& attributes);

// Y of ONNX's Conv / ConvTranspose. B may be null.
Tensor conv(const TensorView& X, const TensorView& W, const TensorView* B, const Attributes& attributes = {});
Tensor conv_transpose(const TensorView& X, const TensorView& W, const TensorView* B,
                      const Attributes& attributes = {});

}  // namespace tconv::onnx
