// ONNX's Conv / ConvTranspose attributes (tconv/onnx.hpp): the resolved pads
// and the outputs of the ONNX operator specification's worked examples
// (onnx/docs/Operators.md: Conv's conv_with_strides_padding, _no_padding,
// _and_asymmetric_padding and conv_with_autopad_same; ConvTranspose's
// convtranspose_pads, _output_shape and _autopad_same), the odd-total splits
// of docs/conventions.md, and the refusals.
#include "tconv/onnx.hpp"

#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

namespace tconv {
namespace {

using onnx::Attributes;
using onnx::AutoPad;
using onnx::Ints;

Tensor iota(const Shape& shape) {
  Tensor t(DType::f32, shape);
  std::iota(t.data_as<float>(), t.data_as<float>() + t.numel(), 0.0f);
  return t;
}

Tensor ones(const Shape& shape) {
  Tensor t(DType::f32, shape);
  std::fill_n(t.data_as<float>(), t.numel(), 1.0f);
  return t;
}

std::vector<float> values(const Tensor& t) { return {t.data_as<float>(), t.data_as<float>() + t.numel()}; }

// The values of channel `c` of sample 0.
std::vector<float> channel(const Tensor& t, std::int64_t c) {
  const std::int64_t plane = t.numel() / (t.shape()[0] * t.shape()[1]);
  return {t.data_as<float>() + c * plane, t.data_as<float>() + (c + 1) * plane};
}

std::vector<float> flat(const std::vector<std::vector<float>>& rows) {
  std::vector<float> out;
  for (const auto& row : rows) out.insert(out.end(), row.begin(), row.end());
  return out;
}

void expect_pads(const onnx::Resolved& r, const Ints& begins, const Ints& ends) {
  ASSERT_TRUE(r.params.padding_end.has_value());
  EXPECT_EQ(r.params.padding.values(), begins);
  EXPECT_EQ(r.params.padding_end->values(), ends);
}

// --- Conv ------------------------------------------------------------------------------------------------------

TEST(OnnxConv, SpecificationStridesAndPadding) {
  const Tensor x = iota({1, 1, 7, 5}), w = ones({1, 1, 3, 3});
  Attributes a;
  a.strides = Ints{2, 2};
  a.pads = Ints{1, 1, 1, 1};
  const Tensor y = onnx::conv(x.view(), w.view(), nullptr, a);
  EXPECT_EQ(y.shape(), (Shape{1, 1, 4, 3}));
  EXPECT_EQ(values(y), flat({{12, 27, 24}, {63, 108, 81}, {123, 198, 141}, {112, 177, 124}}));

  a.pads = Ints{0, 0, 0, 0};
  EXPECT_EQ(values(onnx::conv(x.view(), w.view(), nullptr, a)), flat({{54, 72}, {144, 162}, {234, 252}}));

  // pads [x1_begin, x2_begin, x1_end, x2_end]: one row above and below, no column.
  a.pads = Ints{1, 0, 1, 0};
  const Tensor asymmetric = onnx::conv(x.view(), w.view(), nullptr, a);
  EXPECT_EQ(asymmetric.shape(), (Shape{1, 1, 4, 2}));
  EXPECT_EQ(values(asymmetric), flat({{21, 33}, {99, 117}, {189, 207}, {171, 183}}));
}

TEST(OnnxConv, SpecificationAutoPadSameLower) {
  const Tensor x = iota({1, 1, 5, 5}), w = ones({1, 1, 3, 3});
  Attributes a;
  a.auto_pad = AutoPad::SAME_LOWER;
  a.strides = Ints{2, 2};
  const onnx::Resolved r = onnx::resolve(ConvKind::conv, x.shape(), w.shape(), a);
  expect_pads(r, {1, 1}, {1, 1});  // total 2 * 2 + 3 - 5 = 2
  EXPECT_EQ(r.output_shape, (Shape{1, 1, 3, 3}));
  EXPECT_EQ(values(onnx::conv(x.view(), w.view(), nullptr, a)), flat({{12, 27, 24}, {63, 108, 81}, {72, 117, 84}}));
}

TEST(OnnxConv, SameSplitsAnOddTotal) {
  // in 6, k 3, s 2: out 3, total 1: SAME_UPPER (0, 1), SAME_LOWER (1, 0).
  Attributes a;
  a.strides = Ints{2};
  a.auto_pad = AutoPad::SAME_UPPER;
  expect_pads(onnx::resolve(ConvKind::conv, {1, 1, 6}, {1, 1, 3}, a), {0}, {1});
  a.auto_pad = AutoPad::SAME_LOWER;
  expect_pads(onnx::resolve(ConvKind::conv, {1, 1, 6}, {1, 1, 3}, a), {1}, {0});
  // Dilation enlarges the kernel: K = 5, total = 2 * 2 + 5 - 6 = 3.
  a.dilations = Ints{2};
  expect_pads(onnx::resolve(ConvKind::conv, {1, 1, 6}, {1, 1, 3}, a), {2}, {1});
  a.auto_pad = AutoPad::VALID;
  const onnx::Resolved valid = onnx::resolve(ConvKind::conv, {1, 1, 6}, {1, 1, 3}, a);
  expect_pads(valid, {0}, {0});
  EXPECT_EQ(valid.output_shape, (Shape{1, 1, 1}));
  EXPECT_EQ(valid.output_extension, (Shape{0}));
}

TEST(OnnxConv, AbsentAttributesTakeOnnxDefaults) {
  const onnx::Resolved r = onnx::resolve(ConvKind::conv, {2, 4, 5, 6, 7}, {6, 2, 1, 2, 3}, Attributes{.group = 2});
  EXPECT_EQ(r.params.stride.values(), (Ints{1, 1, 1}));
  EXPECT_EQ(r.params.dilation.values(), (Ints{1, 1, 1}));
  EXPECT_EQ(r.params.groups, 2);
  expect_pads(r, {0, 0, 0}, {0, 0, 0});
  EXPECT_EQ(r.output_shape, (Shape{2, 6, 5, 5, 5}));
}

// --- ConvTranspose -------------------------------------------------------------------------------------------------

const std::vector<float> kPadsRows = flat({{1, 1, 3}, {1, 1, 3}, {7, 4, 9}, {7, 4, 9}, {7, 4, 9}, {13, 7, 15}, {13, 7, 15}});

TEST(OnnxConvTranspose, SpecificationPads) {
  const Tensor x = iota({1, 1, 3, 3}), w = ones({1, 2, 3, 3});
  Attributes a;
  a.strides = Ints{3, 2};
  a.pads = Ints{1, 2, 1, 2};
  const onnx::Resolved r = onnx::resolve(ConvKind::conv_transpose, x.shape(), w.shape(), a);
  expect_pads(r, {1, 2}, {1, 2});
  EXPECT_EQ(r.output_shape, (Shape{1, 2, 7, 3}));
  const Tensor y = onnx::conv_transpose(x.view(), w.view(), nullptr, a);
  EXPECT_EQ(y.shape(), (Shape{1, 2, 7, 3}));
  EXPECT_EQ(channel(y, 0), kPadsRows);
  EXPECT_EQ(channel(y, 1), kPadsRows);
}

TEST(OnnxConvTranspose, SpecificationOutputShapeBeyondTheNaturalSize) {
  // Natural size 9x7, asked 10x8: total_padding -1 per axis, one more row and column at the end holding the bias.
  const Tensor x = iota({1, 1, 3, 3}), w = ones({1, 2, 3, 3});
  Attributes a;
  a.strides = Ints{3, 2};
  a.output_shape = Ints{10, 8};
  const onnx::Resolved r = onnx::resolve(ConvKind::conv_transpose, x.shape(), w.shape(), a);
  expect_pads(r, {0, 0}, {0, 0});
  EXPECT_EQ(r.output_extension, (Shape{1, 1}));
  EXPECT_EQ(r.output_shape, (Shape{1, 2, 10, 8}));
  const std::vector<std::vector<float>> rows = {
      {0, 0, 1, 1, 3, 2, 2, 0},     {0, 0, 1, 1, 3, 2, 2, 0},     {0, 0, 1, 1, 3, 2, 2, 0},
      {3, 3, 7, 4, 9, 5, 5, 0},     {3, 3, 7, 4, 9, 5, 5, 0},     {3, 3, 7, 4, 9, 5, 5, 0},
      {6, 6, 13, 7, 15, 8, 8, 0},   {6, 6, 13, 7, 15, 8, 8, 0},   {6, 6, 13, 7, 15, 8, 8, 0},
      {0, 0, 0, 0, 0, 0, 0, 0}};
  const Tensor y = onnx::conv_transpose(x.view(), w.view(), nullptr, a);
  ASSERT_EQ(y.shape(), (Shape{1, 2, 10, 8}));
  EXPECT_EQ(channel(y, 0), flat(rows));
  EXPECT_EQ(channel(y, 1), flat(rows));

  // The same with a bias and the full [N, C, H, W] spelling: the extra elements hold the bias.
  a.output_shape = Ints{1, 2, 10, 8};
  Tensor b(DType::f32, {2});
  b.data_as<float>()[0] = 0.5f;
  b.data_as<float>()[1] = -2.0f;
  const TensorView bias = b.view();
  const Tensor with_bias = onnx::conv_transpose(x.view(), w.view(), &bias, a);
  ASSERT_EQ(with_bias.shape(), (Shape{1, 2, 10, 8}));
  for (std::int64_t c = 0; c < 2; ++c) {
    std::vector<float> expected = flat(rows);
    for (float& v : expected) v += b.data_as<float>()[c];
    EXPECT_EQ(channel(with_bias, c), expected);
  }
}

TEST(OnnxConvTranspose, SpecificationAutoPadSameUpper) {
  // Natural size 7, asked 3 * 2 = 6: total 1, SAME_UPPER crops it from the end (the specification's rule).
  const Tensor x = iota({1, 1, 3, 3}), w = ones({1, 2, 3, 3});
  Attributes a;
  a.strides = Ints{2, 2};
  a.auto_pad = AutoPad::SAME_UPPER;
  const onnx::Resolved r = onnx::resolve(ConvKind::conv_transpose, x.shape(), w.shape(), a);
  expect_pads(r, {0, 0}, {1, 1});
  const std::vector<float> expected = flat({{0, 0, 1, 1, 3, 2}, {0, 0, 1, 1, 3, 2}, {3, 3, 8, 5, 12, 7},
                                            {3, 3, 7, 4, 9, 5}, {9, 9, 20, 11, 24, 13}, {6, 6, 13, 7, 15, 8}});
  const Tensor y = onnx::conv_transpose(x.view(), w.view(), nullptr, a);
  ASSERT_EQ(y.shape(), (Shape{1, 2, 6, 6}));
  EXPECT_EQ(channel(y, 0), expected);
  EXPECT_EQ(channel(y, 1), expected);

  a.auto_pad = AutoPad::SAME_LOWER;  // crops it from the beginning instead
  expect_pads(onnx::resolve(ConvKind::conv_transpose, x.shape(), w.shape(), a), {1, 1}, {0, 0});
}

TEST(OnnxConvTranspose, OutputShapeOddTotalGoesToTheEnd) {
  // in 4, k 3, s 2, output_padding 1: natural 2 * 3 + 1 + 3 = 10; asked 7: total 3, pads (1, 2).
  Attributes a;
  a.strides = Ints{2};
  a.output_padding = Ints{1};
  a.output_shape = Ints{7};
  const onnx::Resolved r = onnx::resolve(ConvKind::conv_transpose, {1, 1, 4}, {1, 1, 3}, a);
  expect_pads(r, {1}, {2});
  EXPECT_EQ(r.params.output_padding.values(), (Ints{1}));
  EXPECT_EQ(r.output_shape, (Shape{1, 1, 7}));
  a.auto_pad = AutoPad::SAME_LOWER;  // with output_shape, SAME_LOWER still puts the odd unit at the beginning
  expect_pads(onnx::resolve(ConvKind::conv_transpose, {1, 1, 4}, {1, 1, 3}, a), {2}, {1});
}

TEST(OnnxConvTranspose, SameWithAKernelSmallerThanTheStrideExtendsTheOutput) {
  // K 1 < s 3: natural 3 * 1 + 1 = 4, asked 2 * 3 = 6: nothing cropped, two elements added at the end.
  Attributes a;
  a.strides = Ints{3};
  a.auto_pad = AutoPad::SAME_UPPER;
  const onnx::Resolved r = onnx::resolve(ConvKind::conv_transpose, {1, 1, 2}, {1, 1, 1}, a);
  expect_pads(r, {0}, {0});
  EXPECT_EQ(r.output_extension, (Shape{2}));
  EXPECT_EQ(r.output_shape, (Shape{1, 1, 6}));
}

TEST(OnnxConvTranspose, ValidIgnoresNothingAndPadsNothing) {
  Attributes a;
  a.auto_pad = AutoPad::VALID;
  a.strides = Ints{2};
  const onnx::Resolved r = onnx::resolve(ConvKind::conv_transpose, {1, 1, 4}, {1, 1, 3}, a);
  expect_pads(r, {0}, {0});
  EXPECT_EQ(r.output_shape, (Shape{1, 1, 9}));
}

// --- refusals ------------------------------------------------------------------------------------------------------

void expect_refused(ConvKind kind, const Shape& x, const Shape& w, const Attributes& a, const std::string& message) {
  try {
    onnx::resolve(kind, x, w, a);
    ADD_FAILURE() << "expected the refusal: " << message;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
    EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
  }
}

TEST(OnnxRefusals, NameTheAttributeItsValueAndTheRule) {
  const Shape x{1, 1, 3, 3}, w{1, 1, 3, 3};
  const ConvKind conv = ConvKind::conv, transpose = ConvKind::conv_transpose;
  expect_refused(conv, x, w, {.auto_pad = AutoPad::VALID, .pads = Ints{1, 1, 1, 1}},
                 "pads ([1, 1, 1, 1]) cannot be used with auto_pad='VALID' (only with NOTSET)");
  expect_refused(conv, x, w, {.pads = Ints{1, 1}}, "pads [1, 1] must have 4 values");
  expect_refused(conv, x, w, {.pads = Ints{1, 1, -1, 0}}, "pads [1, 1, -1, 0] must be non-negative");
  expect_refused(conv, x, w, {.strides = Ints{2, 0}}, "strides [2, 0] must be positive");
  expect_refused(conv, x, w, {.dilations = Ints{1}}, "dilations [1] must have 2 values");
  expect_refused(conv, x, w, {.strides = Ints{1, std::int64_t{1} << 60}}, "strides [1, 1152921504606846976] has a value beyond 2^56");
  expect_refused(conv, x, w, {.group = 0}, "group (0) must be positive");
  expect_refused(conv, x, w, {.kernel_shape = Ints{2, 2}}, "kernel_shape [2, 2] must match W's spatial dimensions [3, 3]");
  expect_refused(conv, {1, 3, 3}, w, {}, "X must have 4 dimensions [N, C, spatial...] for a W of shape [1, 1, 3, 3], got 3");
  expect_refused(conv, x, {1, 1}, {}, "W must have 3, 4 or 5 dimensions");
  expect_refused(conv, {1, 1, 0, 3}, w, {}, "X dimension 2 has size 0");
  expect_refused(conv, x, w, {.output_shape = Ints{3, 3}}, "output_shape ([3, 3]) is a ConvTranspose attribute");
  expect_refused(conv, x, w, {.output_padding = Ints{1, 1}}, "output_padding ([1, 1]) is a ConvTranspose attribute");
  expect_refused(transpose, x, w, {.output_shape = Ints{4, 4}, .pads = Ints{0, 0, 0, 0}},
                 "pads ([0, 0, 0, 0]) cannot be used with output_shape ([4, 4]): output_shape sets the pads");
  expect_refused(transpose, x, w, {.output_shape = Ints{0, 4}}, "output_shape [0, 4] must be positive");
  expect_refused(transpose, x, w, {.output_shape = Ints{4, 4, 4}}, "output_shape [4, 4, 4] must have 2 values");
  expect_refused(transpose, x, w, {.output_padding = Ints{2, 0}, .strides = Ints{2, 2}},
                 "output_padding (2) must be smaller than stride (2) or dilation (1)");
  EXPECT_THROW(onnx::parse_auto_pad("SAME"), Error);
  try {
    onnx::parse_auto_pad("same_upper");
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "auto_pad must be one of NOTSET, SAME_UPPER, SAME_LOWER, VALID, got 'same_upper'");
  }
  for (const AutoPad a : {AutoPad::NOTSET, AutoPad::SAME_UPPER, AutoPad::SAME_LOWER, AutoPad::VALID}) {
    EXPECT_EQ(onnx::parse_auto_pad(onnx::auto_pad_name(a)), a);
  }
}

}  // namespace
}  // namespace tconv
