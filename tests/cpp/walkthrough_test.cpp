// The walk-through's numbers (shared/origin/transposed-convolution-walkthrough.txt),
// through every way tconv computes them: the three reference methods, the
// convolution matrix, the one-shot calls and every implementation this CPU runs.
#include <gtest/gtest.h>

#include <vector>

#include "test_support.hpp"
#include "tconv/tconv.hpp"

namespace tconv {
namespace {

using testing::from_values;
using testing::values_of;

const std::vector<double> kImage = {4, 5, 8, 7, 1, 8, 8, 8, 3, 6, 6, 4, 6, 5, 7, 8};
const std::vector<double> kKernel = {1, 4, 1, 1, 4, 3, 3, 3, 1};
const std::vector<double> kConvOut = {122, 148, 126, 134};
// The walk-through's 4 x 16 convolution matrix.
const std::vector<double> kMatrix = {
    1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0, 0, 0, 0, 0,  //
    0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0, 0, 0, 0,  //
    0, 0, 0, 0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0,  //
    0, 0, 0, 0, 0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1,  //
};
const std::vector<double> kSmall = {1, 2, 3, 4};
const std::vector<double> kKernel2 = {1, 2, 3, 4, 5, 6, 7, 8, 9};
// torch.nn.ConvTranspose2d(1, 1, 3, 1, 0, bias=False) with kKernel2, on kSmall.
const std::vector<double> kTransposedOut = {1, 4, 7, 6, 7, 23, 33, 24, 19, 53, 63, 42, 21, 52, 59, 36};

constexpr reference::Method kMethods[] = {reference::Method::gather, reference::Method::matrix,
                                          reference::Method::scatter};
constexpr DType kDtypes[] = {DType::f32, DType::f64};

class Walkthrough : public ::testing::TestWithParam<DType> {};

TEST_P(Walkthrough, ConvolutionSlidesTheKernel) {
  const DType dt = GetParam();
  const Tensor x = from_values(dt, {1, 1, 4, 4}, kImage), w = from_values(dt, {1, 1, 3, 3}, kKernel);
  for (auto method : kMethods) {
    const Tensor y = reference::compute(method, ConvKind::conv, x.view(), w.view(), nullptr);
    EXPECT_EQ(y.shape(), (Shape{1, 1, 2, 2})) << reference::method_name(method);
    EXPECT_EQ(values_of(y), kConvOut) << reference::method_name(method);
    EXPECT_EQ(y.dtype(), dt);
  }
  const Tensor y = conv(x.view(), w.view(), nullptr);
  EXPECT_EQ(y.shape(), (Shape{1, 1, 2, 2}));
  EXPECT_EQ(values_of(y), kConvOut);
  EXPECT_EQ(y.dtype(), dt);
}

TEST_P(Walkthrough, ConvolutionMatrixIsTheWalkthroughsMatrix) {
  const DType dt = GetParam();
  const Tensor w = from_values(dt, {1, 1, 3, 3}, kKernel);
  for (const Shape& input_shape : {Shape{1, 1, 4, 4}, Shape{1, 4, 4}}) {
    const Tensor m = conv_matrix(input_shape, w.view());
    EXPECT_EQ(m.shape(), (Shape{4, 16}));
    EXPECT_EQ(m.dtype(), dt);
    EXPECT_EQ(values_of(m), kMatrix) << shape_to_string(input_shape);
  }
}

TEST_P(Walkthrough, MatrixTimesFlattenedInputIsTheConvolution) {
  const DType dt = GetParam();
  const Tensor m = conv_matrix({1, 1, 4, 4}, from_values(dt, {1, 1, 3, 3}, kKernel).view());
  const std::vector<double> mv = values_of(m);
  for (int r = 0; r < 4; ++r) {
    double sum = 0;
    for (int c = 0; c < 16; ++c) sum += mv[static_cast<std::size_t>(r * 16 + c)] * kImage[static_cast<std::size_t>(c)];
    EXPECT_EQ(sum, kConvOut[static_cast<std::size_t>(r)]) << "row " << r;
  }
}

TEST_P(Walkthrough, TransposedMatrixMapsTwoByTwoBackToFourByFour) {
  // M^T (16 x 4) times a 2x2 input is conv_transpose with the same kernel.
  const DType dt = GetParam();
  const Tensor w = from_values(dt, {1, 1, 3, 3}, kKernel);
  const std::vector<double> mv = values_of(conv_matrix({1, 1, 4, 4}, w.view()));
  std::vector<double> expected(16, 0.0);
  for (int c = 0; c < 16; ++c)
    for (int r = 0; r < 4; ++r) expected[static_cast<std::size_t>(c)] += mv[static_cast<std::size_t>(r * 16 + c)] * kConvOut[static_cast<std::size_t>(r)];
  const Tensor y = from_values(dt, {1, 1, 2, 2}, kConvOut);
  const Tensor out = conv_transpose(y.view(), w.view(), nullptr);
  EXPECT_EQ(out.shape(), (Shape{1, 1, 4, 4}));
  EXPECT_EQ(values_of(out), expected);
  for (auto method : kMethods) {
    EXPECT_EQ(values_of(reference::compute(method, ConvKind::conv_transpose, y.view(), w.view(), nullptr)), expected)
        << reference::method_name(method);
  }
}

TEST_P(Walkthrough, TransposedConvolutionScattersAsPyTorchDoes) {
  const DType dt = GetParam();
  const Tensor x = from_values(dt, {1, 1, 2, 2}, kSmall), w = from_values(dt, {1, 1, 3, 3}, kKernel2);
  for (auto method : kMethods) {
    const Tensor y = reference::compute(method, ConvKind::conv_transpose, x.view(), w.view(), nullptr);
    EXPECT_EQ(y.shape(), (Shape{1, 1, 4, 4})) << reference::method_name(method);
    EXPECT_EQ(values_of(y), kTransposedOut) << reference::method_name(method);
  }
  EXPECT_EQ(values_of(conv_transpose(x.view(), w.view(), nullptr)), kTransposedOut);
  // Unbatched input gives the unbatched output, same numbers.
  const Tensor unbatched = conv_transpose(TensorView(x.data(), dt, {1, 2, 2}), w.view(), nullptr);
  EXPECT_EQ(unbatched.shape(), (Shape{1, 4, 4}));
  EXPECT_EQ(values_of(unbatched), kTransposedOut);
}

TEST_P(Walkthrough, EveryImplementationGivesTheWalkthroughsNumbers) {
  const DType dt = GetParam();
  const Tensor x = from_values(dt, {1, 1, 4, 4}, kImage), w = from_values(dt, {1, 1, 3, 3}, kKernel);
  const Tensor small = from_values(dt, {1, 1, 2, 2}, kSmall), w2 = from_values(dt, {1, 1, 3, 3}, kKernel2);
  struct Example {
    ConvKind kind;
    const Tensor &weight, &input;
    const std::vector<double>& expected;
  };
  const Example examples[] = {{ConvKind::conv, w, x, kConvOut}, {ConvKind::conv_transpose, w2, small, kTransposedOut}};
  for (const Example& e : examples) {
    int ran = 0;
    for (const std::string& name : available_implementations()) {
      OperatorOptions options;
      options.implementation = name;
      try {
        const Operator op = Operator::create(e.kind, e.weight.view(), nullptr, {}, options);
        EXPECT_EQ(op.implementation(), name);
        EXPECT_EQ(values_of(op.run(e.input.view())), e.expected) << name << " " << conv_kind_name(e.kind);
        ++ran;
      } catch (const Error& error) {
        // A family may decline a problem; it must say so, and the direct family never does.
        EXPECT_NE(name, "direct") << error.what();
        EXPECT_NE(std::string(error.what()).find("was forced but"), std::string::npos) << error.what();
      }
    }
    EXPECT_GE(ran, 1);
  }
}

TEST_P(Walkthrough, BiasIsAddedToEveryOutputElement) {
  const DType dt = GetParam();
  const Tensor x = from_values(dt, {1, 1, 2, 2}, kSmall), w = from_values(dt, {1, 1, 3, 3}, kKernel2);
  const Tensor b = from_values(dt, {1}, {0.5});
  const TensorView bv = b.view();
  std::vector<double> expected = kTransposedOut;
  for (auto& v : expected) v += 0.5;
  EXPECT_EQ(values_of(conv_transpose(x.view(), w.view(), &bv)), expected);
  for (auto method : kMethods) {
    EXPECT_EQ(values_of(reference::compute(method, ConvKind::conv_transpose, x.view(), w.view(), &bv)), expected)
        << reference::method_name(method);
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, Walkthrough, ::testing::ValuesIn(kDtypes),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace tconv
