// Gradients: the blocked weight-gradient kernel against its reference twin,
// and conv_backward / conv_transpose_backward against the dense convolution
// matrix (conv(x) = M x, so conv's input gradient is M^T g and the transpose's is M g).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/weight_grad.hpp"
#include "tconv/gradients.hpp"
#include "validate.hpp"

namespace tconv {
namespace {

struct RandomConv {
  ConvKind kind = ConvKind::conv;
  Shape input_shape, weight_shape;
  ConvParams params;
  detail::Geometry geometry;

  std::string describe() const {
    return std::string(conv_kind_name(kind)) + " input " + shape_to_string(input_shape) + " weight " +
           shape_to_string(weight_shape) + " stride " + shape_to_string(params.stride.values()) + " padding " +
           shape_to_string(params.padding.values()) + " output_padding " +
           shape_to_string(params.output_padding.values()) + " dilation " +
           shape_to_string(params.dilation.values()) + " groups " + std::to_string(params.groups);
  }
};

// A valid problem with odd sizes, groups and every parameter drawn at random.
RandomConv random_conv(std::mt19937& rng, std::int64_t max_batch, std::int64_t max_per_group) {
  auto pick = [&rng](std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng); };
  while (true) {
    RandomConv p;
    p.kind = pick(0, 1) ? ConvKind::conv : ConvKind::conv_transpose;
    const int rank = static_cast<int>(pick(1, 3));
    const std::int64_t groups = pick(1, 3);
    const std::int64_t in_per_group = pick(1, max_per_group), out_per_group = pick(1, max_per_group);
    std::vector<std::int64_t> stride, padding, output_padding, dilation;
    p.input_shape = {pick(0, max_batch), groups * in_per_group};
    p.weight_shape = {groups * (p.kind == ConvKind::conv ? out_per_group : in_per_group),
                      p.kind == ConvKind::conv ? in_per_group : out_per_group};
    for (int d = 0; d < rank; ++d) {
      stride.push_back(pick(1, 3));
      dilation.push_back(pick(1, 2));
      padding.push_back(pick(0, 2));
      output_padding.push_back(p.kind == ConvKind::conv ? 0 : pick(0, std::max(stride[d], dilation[d]) - 1));
      p.input_shape.push_back(pick(1, rank == 3 ? 5 : 11));
      p.weight_shape.push_back(pick(1, 3));
    }
    p.params.stride = SpatialParam(stride);
    p.params.padding = SpatialParam(padding);
    p.params.output_padding = SpatialParam(output_padding);
    p.params.dilation = SpatialParam(dilation);
    p.params.groups = groups;
    try {
      p.geometry = detail::resolve_geometry(p.kind, p.input_shape, p.weight_shape, std::nullopt, p.params);
      return p;
    } catch (const Error&) {
      // output would be empty: draw again
    }
  }
}

template <typename T>
Tensor random_tensor(std::mt19937& rng, const Shape& shape) {
  Tensor t(dtype_of<T>(), shape);
  std::normal_distribution<double> normal;
  for (std::int64_t k = 0; k < t.numel(); ++k) t.data_as<T>()[k] = static_cast<T>(normal(rng));
  return t;
}

template <typename T>
void check_against_reference(const detail::WeightGradFamily& family, std::uint32_t seed) {
  std::mt19937 rng(seed);
  int checked = 0;
  while (checked < 60) {
    // Up to 20 channels per group, so that the blocked family's vectors fill
    // both fully and partly.
    const RandomConv p = random_conv(rng, 3, 20);
    const detail::Geometry& g = p.geometry;
    if (!family.rejects(g, dtype_of<T>()).empty()) continue;
    ++checked;
    const Tensor small = random_tensor<T>(rng, {g.batch, g.small_channels, g.small_spatial()});
    const Tensor big = random_tensor<T>(rng, {g.batch, g.big_channels, g.big_spatial()});
    Tensor expected = random_tensor<T>(rng, p.weight_shape);  // garbage: the contract overwrites it all
    Tensor one_thread = random_tensor<T>(rng, p.weight_shape);
    Tensor two_threads = random_tensor<T>(rng, p.weight_shape);
    detail::weight_grad_reference(g, dtype_of<T>(), small.data(), big.data(), expected.data());
    family.run(g, dtype_of<T>(), small.data(), big.data(), one_thread.data(), 1);
    family.run(g, dtype_of<T>(), small.data(), big.data(), two_threads.data(), 2);

    ASSERT_EQ(0, std::memcmp(one_thread.data(), two_threads.data(), sizeof(T) * one_thread.numel()))
        << family.name << ": 1 and 2 threads differ for " << p.describe();
    const double tolerance = std::is_same_v<T, float> ? 1e-5 : 1e-13;
    for (std::int64_t k = 0; k < expected.numel(); ++k) {
      const double e = expected.data_as<T>()[k];
      ASSERT_NEAR(one_thread.data_as<T>()[k], e, tolerance * std::max(1.0, std::abs(e)))
          << family.name << ": dw element " << k << " of " << p.describe();
    }
  }
}

TEST(WeightGradKernel, EveryFamilyMatchesTheReferenceTwin) {
  std::uint32_t seed = 7;
  for (const auto& family : detail::weight_grad_families()) {
    if (!family.cpu_supports()) continue;
    SCOPED_TRACE(family.name);
    check_against_reference<float>(family, seed++);
    check_against_reference<double>(family, seed++);
  }
}

TEST(WeightGradKernel, NarrowGroupsGoToTheRowDotFamily) {
  const auto& families = detail::weight_grad_families();
  ASSERT_EQ(families.size(), 2u);
  ASSERT_STREQ(families[0].name, "blocked");
  ASSERT_STREQ(families[1].name, "row_dot");
  const detail::Geometry depthwise = detail::resolve_weight_geometry(ConvKind::conv, {8, 1, 3, 3}, std::nullopt, [] {
    ConvParams p;
    p.groups = 8;
    return p;
  }());
  EXPECT_EQ(families[0].rejects(depthwise, DType::f32), "only 1 of its 8 vector lanes per group would hold a big channel");
  EXPECT_EQ(families[1].rejects(depthwise, DType::f32), "");
}

// One sample's input gradient from the dense matrix M of the conv whose input is the big tensor.
std::vector<double> input_gradient_from_matrix(const RandomConv& p, const Tensor& weight, const double* grad_output) {
  const detail::Geometry& g = p.geometry;
  ConvParams conv_params = p.params;
  conv_params.output_padding = 0;
  Shape big_shape{g.big_channels};
  for (int d = detail::kMaxSpatial - g.spatial_rank; d < detail::kMaxSpatial; ++d) big_shape.push_back(g.big_size[d]);
  const Tensor m = conv_matrix(big_shape, weight.view(), conv_params);
  const std::int64_t rows = m.shape()[0], cols = m.shape()[1];
  const double* values = m.data_as<double>();
  const bool conv = p.kind == ConvKind::conv;
  std::vector<double> result(static_cast<std::size_t>(conv ? cols : rows), 0.0);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) {
      if (conv) result[c] += values[r * cols + c] * grad_output[r];
      else result[r] += values[r * cols + c] * grad_output[c];
    }
  return result;
}

TEST(Gradients, InputGradientIsTheConvolutionMatrixTransposeProduct) {
  std::mt19937 rng(11);
  int checked = 0;
  while (checked < 80) {
    const RandomConv p = random_conv(rng, 2, 5);
    const detail::Geometry& g = p.geometry;
    // M's rows are the conv-of-big's output, which is longer
    // than the small side where output_padding reaches a whole stride (that
    // case is covered by the Python sweep against torch).
    bool whole_stride = false;
    for (int d = 0; d < g.spatial_rank; ++d) {
      whole_stride = whole_stride || p.params.output_padding.at(d) >= p.params.stride.at(d);
    }
    if (whole_stride) continue;
    ++checked;
    const Tensor x = random_tensor<double>(rng, p.input_shape);
    const Tensor w = random_tensor<double>(rng, p.weight_shape);
    const Tensor dy = random_tensor<double>(rng, g.output_shape());
    const Gradients grads = p.kind == ConvKind::conv ? conv_backward(dy.view(), x.view(), w.view(), p.params, true)
                                                     : conv_transpose_backward(dy.view(), x.view(), w.view(), p.params, true);
    ASSERT_EQ(grads.input.shape(), p.input_shape) << p.describe();
    ASSERT_EQ(grads.weight.shape(), p.weight_shape) << p.describe();
    ASSERT_TRUE(grads.bias.has_value());
    const std::int64_t per_sample_out = g.output_channels() * (p.kind == ConvKind::conv ? g.small_spatial() : g.big_spatial());
    const std::int64_t per_sample_in = g.input_channels() * (p.kind == ConvKind::conv ? g.big_spatial() : g.small_spatial());
    for (std::int64_t n = 0; n < g.batch; ++n) {
      const std::vector<double> expected =
          input_gradient_from_matrix(p, w, dy.data_as<double>() + n * per_sample_out);
      for (std::int64_t k = 0; k < per_sample_in; ++k) {
        ASSERT_NEAR(grads.input.data_as<double>()[n * per_sample_in + k], expected[k], 1e-11)
            << "sample " << n << " element " << k << " of " << p.describe();
      }
    }
    // The bias gradient: the output gradient summed per channel.
    const std::int64_t plane = per_sample_out / g.output_channels();
    for (std::int64_t c = 0; c < g.output_channels(); ++c) {
      double sum = 0;
      for (std::int64_t n = 0; n < g.batch; ++n)
        for (std::int64_t k = 0; k < plane; ++k) sum += dy.data_as<double>()[n * per_sample_out + c * plane + k];
      ASSERT_NEAR(grads.bias->data_as<double>()[c], sum, 1e-12) << p.describe();
    }
  }
}

TEST(Gradients, RefusesGradOutputOfAnotherShape) {
  const Tensor x(DType::f32, {2, 4, 9});
  const Tensor w(DType::f32, {4, 3, 3});
  const Tensor wrong(DType::f32, {2, 3, 10});  // the transpose makes 2x3x11
  try {
    conv_transpose_backward(wrong.view(), x.view(), w.view(), ConvParams{}, false);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
    EXPECT_STREQ(e.what(),
                 "grad_output has shape 2x3x10 but the forward conv_transpose of input 2x4x9 produces 2x3x11; "
                 "grad_output must have exactly the forward output's shape");
  }
}

TEST(Gradients, NoBiasGradientWhenNotAsked) {
  const Tensor x(DType::f64, {3, 5});
  const Tensor w(DType::f64, {2, 3, 2});
  const Tensor dy(DType::f64, {2, 4});
  EXPECT_FALSE(conv_backward(dy.view(), x.view(), w.view(), ConvParams{}, false).bias.has_value());
}

}  // namespace
}  // namespace tconv
