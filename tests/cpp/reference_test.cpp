// The three reference methods (gather, matrix, scatter) against an oracle
// written from PyTorch's definitions, on a randomized sweep over every
// parameter; the convolution matrix's two identities; the adjoint identity.
#include <gtest/gtest.h>

#include <random>

#include "test_support.hpp"
#include "tconv/tconv.hpp"

namespace tconv {
namespace {

using testing::Case;
using testing::CaseLimits;
using testing::close_to;
using testing::error_of;
using testing::oracle;
using testing::oracle_scale;
using testing::random_case;
using testing::random_operands;
using testing::tolerance;
using testing::value_at;

constexpr reference::Method kMethods[] = {reference::Method::gather, reference::Method::matrix,
                                          reference::Method::scatter};

TEST(Reference, ThreeMethodsAgreeWithTheOracleOnARandomSweep) {
  std::mt19937_64 rng(20261124);
  CaseLimits lim;
  lim.asymmetric_padding = true;
  int cases = 0, per_rank[4] = {0, 0, 0, 0}, transposed = 0, grouped = 0, strided = 0, dilated = 0, op = 0;
  for (; cases < 400; ++cases) {
    const Case c = random_case(rng, lim);
    const testing::Operands o = random_operands(c, rng);
    const Tensor want = oracle(c, o.input.view(), o.weight.view(), o.bias_view());
    const Tensor scale = oracle_scale(c, o.input.view(), o.weight.view(), o.bias_view());
    EXPECT_EQ(output_shape(c.kind, c.input_shape(), c.weight_shape(), c.params()), c.output_shape()) << c.describe();
    for (auto method : kMethods) {
      const Tensor got = reference::compute(method, c.kind, o.input.view(), o.weight.view(), o.bias_view(), c.params());
      EXPECT_TRUE(close_to(got, want, scale, tolerance(c.dtype), c.dtype))
          << reference::method_name(method) << ": " << c.describe();
    }
    ++per_rank[c.rank()];
    transposed += c.kind == ConvKind::conv_transpose;
    grouped += c.groups > 1;
    for (int d = 0; d < c.rank(); ++d) {
      strided += c.stride[d] > 1;
      dilated += c.dilation[d] > 1;
      op += c.output_padding[d] > 0;
    }
  }
  // The sweep covered what it claims to.
  EXPECT_GT(per_rank[1], 50);
  EXPECT_GT(per_rank[2], 50);
  EXPECT_GT(per_rank[3], 50);
  EXPECT_GT(transposed, 100);
  EXPECT_GT(grouped, 100);
  EXPECT_GT(strided, 100);
  EXPECT_GT(dilated, 100);
  EXPECT_GT(op, 50);
}

TEST(Reference, DepthwiseAndKernelsLargerThanTheInput) {
  std::mt19937_64 rng(7);
  for (auto kind : {ConvKind::conv, ConvKind::conv_transpose}) {
    Case c;
    c.kind = kind;
    c.dtype = DType::f64;
    c.batch = 2;
    c.groups = c.in_channels = c.out_channels = 4;  // depthwise
    c.size = {3, 2};
    c.kernel = {5, 4};  // larger than the input
    c.stride = {2, 1};
    c.padding = kind == ConvKind::conv ? std::vector<std::int64_t>{2, 1} : std::vector<std::int64_t>{1, 0};
    c.output_padding = {kind == ConvKind::conv_transpose ? 1 : 0, 0};
    c.dilation = {1, 1};
    c.bias = true;
    ASSERT_TRUE(c.valid()) << c.describe();
    const testing::Operands o = random_operands(c, rng);
    const Tensor want = oracle(c, o.input.view(), o.weight.view(), o.bias_view());
    const Tensor scale = oracle_scale(c, o.input.view(), o.weight.view(), o.bias_view());
    for (auto method : kMethods) {
      EXPECT_TRUE(close_to(reference::compute(method, kind, o.input.view(), o.weight.view(), o.bias_view(), c.params()),
                           want, scale, 1e-12, DType::f64))
          << reference::method_name(method) << ": " << c.describe();
    }
  }
}

TEST(Reference, OnePixelInputs) {
  std::mt19937_64 rng(11);
  for (int rank = 1; rank <= 3; ++rank)
    for (auto kind : {ConvKind::conv, ConvKind::conv_transpose}) {
      Case c;
      c.kind = kind;
      c.dtype = DType::f32;
      c.in_channels = 2;
      c.out_channels = 3;
      c.size.assign(static_cast<std::size_t>(rank), 1);
      c.kernel.assign(static_cast<std::size_t>(rank), kind == ConvKind::conv ? 1 : 3);
      c.stride.assign(static_cast<std::size_t>(rank), 2);
      c.padding.assign(static_cast<std::size_t>(rank), kind == ConvKind::conv ? 1 : 0);
      c.output_padding.assign(static_cast<std::size_t>(rank), kind == ConvKind::conv ? 0 : 1);
      c.dilation.assign(static_cast<std::size_t>(rank), 1);
      ASSERT_TRUE(c.valid()) << c.describe();
      const testing::Operands o = random_operands(c, rng);
      const Tensor want = oracle(c, o.input.view(), o.weight.view(), o.bias_view());
      const Tensor scale = oracle_scale(c, o.input.view(), o.weight.view(), o.bias_view());
      for (auto method : kMethods) {
        EXPECT_TRUE(close_to(reference::compute(method, kind, o.input.view(), o.weight.view(), nullptr, c.params()), want,
                             scale, 1e-6, DType::f32))
            << reference::method_name(method) << ": " << c.describe();
      }
    }
}

TEST(Reference, StridedViewsAreReadThroughTheirStrides) {
  // The input is the transpose of a contiguous buffer: [N, C, W, H] stored, read as [N, C, H, W].
  std::mt19937_64 rng(3);
  const Tensor storage = testing::random_tensor(DType::f64, {2, 3, 5, 4}, rng);  // N, C, W, H
  const TensorView transposed(storage.data(), DType::f64, {2, 3, 4, 5}, {60, 20, 1, 4});
  // The same values laid out contiguously, element by element (not through tconv's own copy).
  Tensor contiguous(DType::f64, {2, 3, 4, 5});
  for (std::int64_t n = 0; n < 2; ++n)
    for (std::int64_t c = 0; c < 3; ++c)
      for (std::int64_t h = 0; h < 4; ++h)
        for (std::int64_t w_ = 0; w_ < 5; ++w_)
          contiguous.data_as<double>()[((n * 3 + c) * 4 + h) * 5 + w_] =
              storage.data_as<double>()[((n * 3 + c) * 5 + w_) * 4 + h];
  const Tensor w = testing::random_tensor(DType::f64, {3, 2, 3, 2}, rng);
  ConvParams p;
  p.stride = {2, 1};
  p.padding = 1;
  for (auto method : kMethods) {
    const Tensor a = reference::compute(method, ConvKind::conv_transpose, transposed, w.view(), nullptr, p);
    const Tensor b = reference::compute(method, ConvKind::conv_transpose, contiguous.view(), w.view(), nullptr, p);
    EXPECT_TRUE(testing::bits_equal(a, b)) << reference::method_name(method);
  }
}

TEST(Reference, EmptyBatchGivesAnEmptyOutput) {
  const Tensor x(DType::f32, {0, 2, 3, 3}), w(DType::f32, {2, 4, 3, 3});
  for (auto method : kMethods) {
    const Tensor y = reference::compute(method, ConvKind::conv_transpose, x.view(), w.view(), nullptr);
    EXPECT_EQ(y.shape(), (Shape{0, 4, 5, 5})) << reference::method_name(method);
  }
}

// conv(x) == M x and conv_transpose(y) == M^T y, for one sample, with groups,
// stride, padding and dilation; output_padding makes the transpose's output x's size.
TEST(ConvMatrix, ConvIsMTimesXAndTheTransposeIsMTransposedTimesY) {
  std::mt19937_64 rng(5);
  CaseLimits lim;
  lim.kind = ConvKind::conv;
  lim.dtype = DType::f64;
  lim.max_size = 6;
  lim.max_rank = 2;
  for (int k = 0; k < 60; ++k) {
    Case c = random_case(rng, lim);
    c.batched = k % 2 == 0;
    c.batch = 1;
    const testing::Operands o = random_operands(c, rng);
    const Tensor m = conv_matrix(c.input_shape(), o.weight.view(), c.params());
    const std::int64_t rows = m.shape()[0], cols = m.shape()[1];
    ASSERT_EQ(cols, o.input.numel()) << c.describe();
    const Tensor y = conv(o.input.view(), o.weight.view(), nullptr, c.params());
    ASSERT_EQ(rows, y.numel()) << c.describe();
    const double* md = m.data_as<double>();
    for (std::int64_t r = 0; r < rows; ++r) {
      double sum = 0, bound = 0;
      for (std::int64_t q = 0; q < cols; ++q) {
        sum += md[r * cols + q] * value_at(o.input, q);
        bound += std::fabs(md[r * cols + q] * value_at(o.input, q));
      }
      EXPECT_NEAR(value_at(y, r), sum, 1e-12 * bound + 1e-300) << "row " << r << ": " << c.describe();
    }
    // The transpose, back to x's size.
    Case t = c;
    t.kind = ConvKind::conv_transpose;
    std::swap(t.in_channels, t.out_channels);
    t.size.clear();
    for (int d = 0; d < c.rank(); ++d) t.size.push_back(c.output_size(d));
    for (int d = 0; d < c.rank(); ++d) {
      t.output_padding[d] = c.size[d] - t.output_size(d);  // output_size read op 0 so far
      ASSERT_GE(t.output_padding[d], 0);
    }
    ASSERT_TRUE(t.valid()) << t.describe();
    const Tensor yt = testing::random_tensor(DType::f64, t.input_shape(), rng);
    const Tensor xt = conv_transpose(yt.view(), o.weight.view(), nullptr, t.params());
    ASSERT_EQ(xt.numel(), cols) << t.describe();
    for (std::int64_t q = 0; q < cols; ++q) {
      double sum = 0, bound = 0;
      for (std::int64_t r = 0; r < rows; ++r) {
        sum += md[r * cols + q] * value_at(yt, r);
        bound += std::fabs(md[r * cols + q] * value_at(yt, r));
      }
      EXPECT_NEAR(value_at(xt, q), sum, 1e-12 * bound + 1e-300) << "column " << q << ": " << t.describe();
    }
  }
}

TEST(ConvMatrix, DescribesOneSampleOnly) {
  const Tensor w(DType::f32, {1, 1, 3, 3});
  const auto e = error_of([&] { conv_matrix({2, 1, 4, 4}, w.view()); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind(), ErrorKind::invalid_argument);
  EXPECT_NE(std::string(e->what()).find("one sample"), std::string::npos) << e->what();
}

TEST(ConvMatrix, RefusesAMatrixTooLargeToBuild) {
  const Tensor w(DType::f32, {64, 64, 3, 3});
  const Tensor x(DType::f32, {1, 64, 128, 128});
  const auto e = error_of([&] { reference::compute(reference::Method::matrix, ConvKind::conv, x.view(), w.view(), nullptr); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind(), ErrorKind::invalid_argument);
  EXPECT_NE(std::string(e->what()).find("2^28"), std::string::npos) << e->what();
}

// <conv(x, w), y> == <x, conv_transpose(y, w)> in float64, to 1e-10 relative.
TEST(Adjoint, ConvAndConvTransposeAreAdjoint) {
  std::mt19937_64 rng(13);
  CaseLimits lim;
  lim.kind = ConvKind::conv;
  lim.dtype = DType::f64;
  for (int k = 0; k < 150; ++k) {
    Case c = random_case(rng, lim);
    c.bias = false;
    const testing::Operands o = random_operands(c, rng);
    const Tensor cx = conv(o.input.view(), o.weight.view(), nullptr, c.params());
    const Tensor y = testing::random_tensor(DType::f64, cx.shape(), rng);
    ConvParams tp = c.params();
    std::vector<std::int64_t> op;
    for (int d = 0; d < c.rank(); ++d) {
      const std::int64_t o_size = c.output_size(d);
      const std::int64_t natural = (o_size - 1) * c.stride[d] - 2 * c.padding[d] + c.dilation[d] * (c.kernel[d] - 1) + 1;
      op.push_back(c.size[d] - natural);
    }
    tp.output_padding = SpatialParam(op);
    const Tensor ty = conv_transpose(y.view(), o.weight.view(), nullptr, tp);
    ASSERT_EQ(ty.shape(), o.input.shape()) << c.describe();
    double lhs = 0, rhs = 0, bound = 0;
    for (std::int64_t q = 0; q < cx.numel(); ++q) {
      lhs += value_at(cx, q) * value_at(y, q);
      bound += std::fabs(value_at(cx, q) * value_at(y, q));
    }
    for (std::int64_t q = 0; q < ty.numel(); ++q) rhs += value_at(o.input, q) * value_at(ty, q);
    EXPECT_NEAR(lhs, rhs, 1e-10 * std::max(bound, 1.0)) << c.describe();
  }
}

TEST(Reference, RefusesMixedDtypes) {
  const Tensor x(DType::f32, {1, 1, 4, 4});
  const Tensor w(DType::f64, {1, 1, 3, 3});
  for (auto method : kMethods) {
    const auto e = error_of([&] { reference::compute(method, ConvKind::conv, x.view(), w.view(), nullptr); });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->kind(), ErrorKind::wrong_type);
    EXPECT_NE(std::string(e->what()).find("float64"), std::string::npos) << e->what();
  }
}

TEST(Reference, MethodNames) {
  EXPECT_STREQ(reference::method_name(reference::Method::gather), "gather");
  EXPECT_STREQ(reference::method_name(reference::Method::matrix), "matrix");
  EXPECT_STREQ(reference::method_name(reference::Method::scatter), "scatter");
}

}  // namespace
}  // namespace tconv
