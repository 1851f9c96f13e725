// What PyTorch refuses, tconv refuses: a table of bad inputs, each with the
// exact message (it names the parameter, its value and the rule) and the error
// kind; and the output-size formulas on a grid of parameters.
#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "test_support.hpp"
#include "tconv/tconv.hpp"

namespace tconv {
namespace {

using testing::error_of;

struct BadInput {
  const char* name;
  ConvKind kind;
  Shape input, weight;
  std::optional<Shape> bias;
  ConvParams params;
  const char* message;  // the whole message
};

ConvParams with(std::function<void(ConvParams&)> edit) {
  ConvParams p;
  edit(p);
  return p;
}

const ConvKind T = ConvKind::conv_transpose;
const ConvKind C = ConvKind::conv;

std::vector<BadInput> bad_inputs() {
  return {
      {"output_padding_not_smaller_than_stride", T, {1, 2, 5, 5}, {2, 3, 3, 3}, std::nullopt,
       with([](ConvParams& p) { p.stride = 2; p.output_padding = 2; }),
       "output_padding (2) must be smaller than stride (2) or dilation (1)"},
      {"output_padding_per_dimension", T, {1, 2, 5, 5}, {2, 3, 3, 3}, std::nullopt,
       with([](ConvParams& p) { p.stride = {2, 3}; p.output_padding = {1, 3}; }),
       "output_padding (3) must be smaller than stride (3) or dilation (1)"},
      {"output_padding_on_a_convolution", C, {1, 2, 5, 5}, {3, 2, 3, 3}, std::nullopt,
       with([](ConvParams& p) { p.stride = 2; p.output_padding = 1; }),
       "output_padding (1) applies to conv_transpose only; a convolution takes 0"},
      {"in_channels_not_divisible_by_groups", T, {1, 6, 5, 5}, {6, 1, 3, 3}, std::nullopt,
       with([](ConvParams& p) { p.groups = 4; }), "in_channels (6, weight dimension 0) is not divisible by groups (4)"},
      {"out_channels_not_divisible_by_groups", C, {1, 8, 5, 5}, {6, 2, 3, 3}, std::nullopt,
       with([](ConvParams& p) { p.groups = 4; }), "out_channels (6, weight dimension 0) is not divisible by groups (4)"},
      {"input_too_small_for_kernel", C, {1, 1, 2, 2}, {1, 1, 5, 5}, std::nullopt, {},
       "computed output size is -2 x -2: input 2x2 is too small for kernel 5x5 with dilation 1x1 and padding 0x0"},
      {"input_too_small_in_one_dimension", C, {1, 1, 4, 3}, {1, 1, 5, 5}, std::nullopt, {},
       "computed output size is 0 x -1: input 4x3 is too small for kernel 5x5 with dilation 1x1 and padding 0x0"},
      {"dilated_kernel_too_large", C, {1, 1, 5, 5}, {1, 1, 3, 3}, std::nullopt, with([](ConvParams& p) { p.dilation = 3; }),
       "computed output size is -1 x -1: input 5x5 is too small for kernel 3x3 with dilation 3x3 and padding 0x0"},
      {"transposed_padding_crops_everything", T, {1, 1, 2, 2}, {1, 1, 1, 1}, std::nullopt,
       with([](ConvParams& p) { p.padding = 1; }),
       "computed output size is 0 x 0: padding 1x1 crops more than input 2x2 with stride 1x1, kernel 1x1, dilation 1x1 "
       "and output_padding 0x0 produces"},
      {"stride_zero", C, {1, 2, 5, 5}, {3, 2, 3, 3}, std::nullopt, with([](ConvParams& p) { p.stride = 0; }),
       "stride (0) must be positive"},
      {"stride_negative", T, {1, 2, 5, 5}, {2, 3, 3, 3}, std::nullopt, with([](ConvParams& p) { p.stride = {1, -2}; }),
       "stride (-2) must be positive"},
      {"dilation_zero", C, {1, 2, 5, 5}, {3, 2, 3, 3}, std::nullopt, with([](ConvParams& p) { p.dilation = 0; }),
       "dilation (0) must be positive"},
      {"padding_negative", C, {1, 2, 5, 5}, {3, 2, 3, 3}, std::nullopt, with([](ConvParams& p) { p.padding = -1; }),
       "padding (-1) must be non-negative"},
      {"output_padding_negative", T, {1, 2, 5, 5}, {2, 3, 3, 3}, std::nullopt,
       with([](ConvParams& p) { p.output_padding = -1; }), "output_padding (-1) must be non-negative"},
      {"groups_zero", C, {1, 2, 5, 5}, {3, 2, 3, 3}, std::nullopt, with([](ConvParams& p) { p.groups = 0; }),
       "groups (0) must be positive"},
      {"stride_with_too_many_values", C, {1, 2, 5, 5}, {3, 2, 3, 3}, std::nullopt,
       with([](ConvParams& p) { p.stride = {1, 2, 3}; }),
       "stride has 3 values but the convolution is 2-D (give one value, or one per spatial dimension)"},
      {"padding_with_too_few_values", T, {1, 2, 5, 5, 5}, {2, 3, 3, 3, 3}, std::nullopt,
       with([](ConvParams& p) { p.padding = {1, 1}; }),
       "padding has 2 values but the convolution is 3-D (give one value, or one per spatial dimension)"},
      {"weight_of_rank_two", C, {1, 2, 5}, {3, 2}, std::nullopt, {},
       "weight must have 3, 4 or 5 dimensions ([C_out, C_in/groups, kernel...] for a 1-, 2- or 3-D convolution), got 2 "
       "(shape 3x2)"},
      {"weight_of_rank_six", T, {1, 2, 5, 5, 5, 5}, {2, 3, 3, 3, 3, 3}, std::nullopt, {},
       "weight must have 3, 4 or 5 dimensions ([C_in, C_out/groups, kernel...] for a 1-, 2- or 3-D convolution), got 6 "
       "(shape 2x3x3x3x3x3)"},
      {"kernel_size_zero", C, {1, 2, 5, 5}, {3, 2, 0, 3}, std::nullopt, {},
       "kernel size (0, weight dimension 2) must be positive"},
      {"negative_weight_channels", T, {1, 6, 6}, {6, -1, 6}, std::nullopt, {},
       "weight dimension 1 (-1) must be non-negative (weight shape 6x-1x6)"},
      {"input_rank_mismatch", C, {1, 1, 5, 5, 5}, {1, 1, 3}, std::nullopt, {},
       "input must have 2 (unbatched) or 3 (batched) dimensions for a 1-D convolution (the weight has 3), got 5 (shape "
       "1x1x5x5x5)"},
      {"conv_channel_mismatch", C, {1, 4, 5, 5}, {3, 2, 3, 3}, std::nullopt, {},
       "input has 4 channels but the weight expects 2 (weight dimension 1 is 2, times groups 1)"},
      {"conv_channel_mismatch_grouped", C, {1, 4, 5, 5}, {4, 1, 3, 3}, std::nullopt,
       with([](ConvParams& p) { p.groups = 2; }),
       "input has 4 channels but the weight expects 2 (weight dimension 1 is 1, times groups 2)"},
      {"transposed_channel_mismatch", T, {1, 3, 5, 5}, {2, 3, 3, 3}, std::nullopt, {},
       "input has 3 channels but the weight's dimension 0 (in_channels) is 2"},
      {"bias_wrong_length", C, {1, 2, 5, 5}, {3, 2, 3, 3}, Shape{4}, {},
       "bias must have shape [3] (one value per output channel), got [4]"},
      {"bias_two_dimensional", C, {1, 2, 5, 5}, {3, 2, 3, 3}, Shape{3, 1}, {},
       "bias must have shape [3] (one value per output channel), got [3, 1]"},
      {"transposed_bias_is_per_output_channel", T, {1, 2, 5, 5}, {2, 3, 3, 3}, Shape{2}, {},
       "bias must have shape [3] (one value per output channel), got [2]"},
      {"empty_spatial_dimension", T, {1, 2, 0, 5}, {2, 3, 3, 3}, std::nullopt, {},
       "input dimension 2 has size 0; only the batch dimension may be empty (input shape 1x2x0x5)"},
      {"empty_channels", C, {1, 0, 5, 5}, {3, 0, 3, 3}, std::nullopt, {},
       "input dimension 1 has size 0; only the batch dimension may be empty (input shape 1x0x5x5)"},
      {"negative_batch", C, {-1, 2, 5, 5}, {3, 2, 3, 3}, std::nullopt, {},
       "input batch size (-1) must be non-negative"},
      {"weight_too_large", C, {1, 2, 5, 5}, {std::int64_t{1} << 30, 2, 1 << 14, 1 << 14}, std::nullopt, {},
       "weight of shape 1073741824x2x16384x16384 has more than 2^56 elements"},
      {"stride_too_large", C, {1, 2, 5, 5}, {3, 2, 3, 3}, std::nullopt,
       with([](ConvParams& p) { p.stride = std::int64_t{1} << 60; }), "stride (1152921504606846976) is too large"},
  };
}

// Test names carry the case; keep gtest from dumping the struct's bytes.
void PrintTo(const BadInput& b, std::ostream* os) { *os << b.name; }

class Refused : public ::testing::TestWithParam<BadInput> {};

TEST_P(Refused, WithItsMessage) {
  const BadInput& b = GetParam();
  // output_shape and both one-shot calls (when the shapes can be allocated) give the same error.
  if (!b.bias) {  // output_shape takes no bias
    const auto e = error_of([&] { output_shape(b.kind, b.input, b.weight, b.params); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->kind(), ErrorKind::invalid_argument);
    EXPECT_EQ(std::string(e->what()), b.message);
  }
  const bool small = std::string(b.name) != "weight_too_large";
  if (!small) return;
  for (DType dt : {DType::f32, DType::f64}) {
    // Give every tensor at least one element so the buffers exist whatever the shapes say.
    auto alloc_shape = [](const Shape& s) {
      Shape a = s;
      for (auto& d : a) d = std::max<std::int64_t>(d, 1);
      return a;
    };
    const Tensor x(dt, alloc_shape(b.input)), w(dt, alloc_shape(b.weight));
    const TensorView xv(x.data(), dt, b.input), wv(w.data(), dt, b.weight);
    std::optional<Tensor> bias;
    TensorView bv;
    if (b.bias) {
      bias.emplace(dt, alloc_shape(*b.bias));
      bv = TensorView(bias->data(), dt, *b.bias);
    }
    const TensorView* bp = b.bias ? &bv : nullptr;
    const auto run = error_of([&] {
      if (b.kind == ConvKind::conv) conv(xv, wv, bp, b.params);
      else conv_transpose(xv, wv, bp, b.params);
    });
    ASSERT_TRUE(run) << b.name;
    EXPECT_EQ(run->kind(), ErrorKind::invalid_argument) << b.name;
    EXPECT_EQ(std::string(run->what()), b.message) << b.name;
    for (auto method : {reference::Method::gather, reference::Method::matrix, reference::Method::scatter}) {
      const auto ref = error_of([&] { reference::compute(method, b.kind, xv, wv, bp, b.params); });
      ASSERT_TRUE(ref) << b.name;
      EXPECT_EQ(std::string(ref->what()), b.message) << b.name << " " << reference::method_name(method);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Table, Refused, ::testing::ValuesIn(bad_inputs()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Refused, MixedDtypesAreWrongType) {
  const Tensor x32(DType::f32, {1, 1, 4, 4}), w64(DType::f64, {1, 1, 3, 3}), w32(DType::f32, {1, 1, 3, 3});
  const Tensor b64(DType::f64, {1});
  const TensorView bv = b64.view();
  auto e = error_of([&] { conv(x32.view(), w64.view(), nullptr); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind(), ErrorKind::wrong_type);
  EXPECT_EQ(std::string(e->what()), "input is float32 but the weight is float64; all operands must share one dtype");
  e = error_of([&] { conv_transpose(x32.view(), w32.view(), &bv); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind(), ErrorKind::wrong_type);
  EXPECT_EQ(std::string(e->what()), "bias is float64 but the weight is float32; all operands must share one dtype");
}

TEST(Refused, ViewWithStridesOfTheWrongRank) {
  const float data[4] = {};
  const auto e = error_of([&] { TensorView(data, Shape{2, 2}, Shape{1}); });
  ASSERT_TRUE(e);
  EXPECT_EQ(std::string(e->what()), "tensor view has 2 dimensions but 1 strides");
}

TEST(Refused, ThreadCountMustBePositive) {
  const auto e = error_of([] { set_num_threads(0); });
  ASSERT_TRUE(e);
  EXPECT_EQ(std::string(e->what()), "threads (0) must be positive");
}

TEST(Refused, OutputSizeArithmeticCannotOverflow) {
  ConvParams p;
  p.stride = std::int64_t{1} << 50;
  const auto e = error_of([&] { output_shape(ConvKind::conv_transpose, {1, 1, 1 << 20}, {1, 1, 3}, p); });
  ASSERT_TRUE(e);
  EXPECT_EQ(std::string(e->what()),
            "computed output size of spatial dimension 0 is beyond 2^56 in magnitude (input 1048576, kernel 3, stride "
            "1125899906842624, dilation 1, padding 0 + 0, output_padding 0)");
}

// Sets the memory limit for one scope; the default comes back after it.
struct MemoryLimit {
  explicit MemoryLimit(std::uint64_t bytes) { set_max_bytes(bytes); }
  ~MemoryLimit() { set_max_bytes(0); }
};

TEST(Refused, RequestsBeyondTheMemoryLimitBeforeAllocating) {
  const std::uint64_t machine = max_bytes();
  EXPECT_GT(machine, std::uint64_t{1} << 20);
  const Tensor w(DType::f32, {1, 1, 3, 3});
  const Operator op = Operator::create(ConvKind::conv, w.view(), nullptr, {}, {.implementation = "direct"});
  const MemoryLimit limit(1 << 20);
  EXPECT_EQ(max_bytes(), std::uint64_t{1} << 20);
  EXPECT_EQ(op.plan({1, 1, 100, 100}).output_shape, (Shape{1, 1, 98, 98}));
  const std::string expected =
      "conv output 1x1x1022x1022 (4177936 bytes) with workspace (0 bytes for " + std::to_string(num_threads()) +
      " threads) needs 4177936 bytes, more than the limit of 1048576 bytes (set by TCONV_MAX_BYTES or set_max_bytes; "
      "default: the machine's physical memory)";
  for (const auto& call : std::vector<std::function<void()>>{
           [&] { op.plan({1, 1, 1024, 1024}); },
           [&] { op.run(TensorView(w.data(), DType::f32, {1, 1, 1024, 1024})); }}) {
    const auto e = error_of(call);  // the input is never read: the refusal comes first
    ASSERT_TRUE(e);
    EXPECT_EQ(e->kind(), ErrorKind::invalid_argument);
    EXPECT_EQ(std::string(e->what()), expected);
  }
  const auto e = error_of([] { Tensor(DType::f64, {1024, 1024}); });
  ASSERT_TRUE(e);
  EXPECT_EQ(std::string(e->what()).substr(0, 80),
            "tensor of shape 1024x1024 needs 8388608 bytes, more than the limit of 1048576 by");
}

TEST(Refused, OperatorChecksTheWeightAtCreation) {
  const Tensor w(DType::f32, {6, 1, 3, 3});
  ConvParams p;
  p.groups = 4;
  const auto e = error_of([&] { Operator::create(ConvKind::conv_transpose, w.view(), nullptr, p); });
  ASSERT_TRUE(e);
  EXPECT_EQ(std::string(e->what()), "in_channels (6, weight dimension 0) is not divisible by groups (4)");
}

// PyTorch's accepted corner cases are accepted: output_padding at least the
// stride but below the dilation; an empty batch; unbatched input.
TEST(Accepted, CornerCasesPyTorchAccepts) {
  ConvParams p;
  p.dilation = 3;
  p.output_padding = 2;
  EXPECT_EQ(output_shape(ConvKind::conv_transpose, {1, 2, 5, 5}, {2, 3, 3, 3}, p), (Shape{1, 3, 13, 13}));
  EXPECT_EQ(output_shape(ConvKind::conv, {0, 2, 5, 5}, {3, 2, 3, 3}, {}), (Shape{0, 3, 3, 3}));
  EXPECT_EQ(output_shape(ConvKind::conv_transpose, {0, 2, 5, 5}, {2, 3, 3, 3}, {}), (Shape{0, 3, 7, 7}));
  EXPECT_EQ(output_shape(ConvKind::conv, {2, 5, 5}, {3, 2, 3, 3}, {}), (Shape{3, 3, 3}));
  EXPECT_EQ(output_shape(ConvKind::conv_transpose, {2, 5, 5, 5}, {2, 3, 3, 3, 3}, {}), (Shape{3, 7, 7, 7}));
  ConvParams big_stride;
  big_stride.stride = 100;
  EXPECT_EQ(output_shape(ConvKind::conv, {1, 1, 5, 5}, {1, 1, 3, 3}, big_stride), (Shape{1, 1, 1, 1}));
  ConvParams wide_pad;
  wide_pad.padding = 5;
  EXPECT_EQ(output_shape(ConvKind::conv, {1, 1, 5, 5}, {1, 1, 3, 3}, wide_pad), (Shape{1, 1, 13, 13}));
  // An empty batch computes nothing and returns the empty output.
  const Tensor x(DType::f32, {0, 2, 5, 5}), w(DType::f32, {2, 3, 3, 3});
  EXPECT_EQ(conv_transpose(x.view(), w.view(), nullptr).shape(), (Shape{0, 3, 7, 7}));
}

// conv: floor((i + 2p - d(k-1) - 1)/s) + 1; conv_transpose: (i-1)s - 2p + d(k-1) + op + 1.
TEST(OutputSize, FollowsPyTorchsFormulasOnAGrid) {
  int checked = 0, refused = 0;
  for (std::int64_t i = 1; i <= 7; ++i)
    for (std::int64_t k = 1; k <= 5; ++k)
      for (std::int64_t s = 1; s <= 3; ++s)
        for (std::int64_t p = 0; p <= 3; ++p)
          for (std::int64_t d = 1; d <= 3; ++d) {
            ConvParams params;
            params.stride = s;
            params.padding = p;
            params.dilation = d;
            const std::int64_t room = i + 2 * p - d * (k - 1) - 1;
            const std::int64_t conv_size = (room >= 0 ? room / s : -((-room + s - 1) / s)) + 1;
            if (conv_size >= 1) {
              EXPECT_EQ(output_shape(ConvKind::conv, {1, 1, i}, {1, 1, k}, params), (Shape{1, 1, conv_size}));
              ++checked;
            } else {
              EXPECT_TRUE(error_of([&] { output_shape(ConvKind::conv, {1, 1, i}, {1, 1, k}, params); }));
              ++refused;
            }
            for (std::int64_t op = 0; op < std::max(s, d); ++op) {
              params.output_padding = op;
              const std::int64_t t_size = (i - 1) * s - 2 * p + d * (k - 1) + op + 1;
              if (t_size >= 1) {
                EXPECT_EQ(output_shape(ConvKind::conv_transpose, {1, 1, i}, {1, 1, k}, params), (Shape{1, 1, t_size}));
                ++checked;
              } else {
                EXPECT_TRUE(error_of([&] { output_shape(ConvKind::conv_transpose, {1, 1, i}, {1, 1, k}, params); }));
                ++refused;
              }
            }
            params.output_padding = 0;
          }
  EXPECT_GT(checked, 1000);
  EXPECT_GT(refused, 100);
}

TEST(OutputSize, PerDimensionParametersAndAsymmetricPadding) {
  ConvParams p;
  p.stride = {2, 1, 3};
  p.padding = {1, 0, 2};
  p.dilation = {1, 2, 1};
  p.output_padding = {1, 1, 0};
  // (i-1)s - 2p + d(k-1) + op + 1 per dimension
  EXPECT_EQ(output_shape(ConvKind::conv_transpose, {2, 4, 5, 6, 7}, {4, 3, 3, 2, 4}, p),
            (Shape{2, 3, (5 - 1) * 2 - 2 + 2 + 1 + 1, (6 - 1) * 1 - 0 + 2 + 1 + 1, (7 - 1) * 3 - 4 + 3 + 0 + 1}));
  ConvParams a;
  a.padding = {1, 0};
  a.padding_end = SpatialParam({0, 2});
  EXPECT_EQ(output_shape(ConvKind::conv, {1, 1, 5, 5}, {1, 1, 3, 3}, a), (Shape{1, 1, 4, 5}));
  EXPECT_EQ(output_shape(ConvKind::conv_transpose, {1, 1, 5, 5}, {1, 1, 3, 3}, a), (Shape{1, 1, 6, 5}));
}

}  // namespace
}  // namespace tconv
