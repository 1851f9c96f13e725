// `tconv demo`: convolution as a sliding window, as a matrix product, and its
// transpose as both a matrix product and a scatter, each pair checked.
#include <cmath>
#include <cstdio>
#include <string>

#include "cli.hpp"
#include "tconv/tconv.hpp"

namespace tconv::cli {
namespace {

using reference::Method;

void print_matrix(const char* title, const float* values, std::int64_t rows, std::int64_t cols) {
  std::printf("%s (%lld x %lld):\n", title, static_cast<long long>(rows), static_cast<long long>(cols));
  for (std::int64_t r = 0; r < rows; ++r) {
    std::printf("  [");
    for (std::int64_t c = 0; c < cols; ++c) std::printf("%s%4g", c ? " " : "", values[r * cols + c]);
    std::printf(" ]\n");
  }
}

bool same(const Tensor& a, const Tensor& b) {
  if (a.numel() != b.numel()) return false;
  for (std::int64_t k = 0; k < a.numel(); ++k) {
    if (std::fabs(a.data_as<float>()[k] - b.data_as<float>()[k]) > 1e-4f) return false;
  }
  return true;
}

int g_failures = 0;
void check(const char* what, bool agree) {
  std::printf("  check: %s ... %s\n\n", what, agree ? "agree" : "DISAGREE");
  if (!agree) ++g_failures;
}

// y = M x (or M^T x) for one sample, M as returned by conv_matrix.
Tensor multiply(const Tensor& m, const Tensor& x, bool transposed, const Shape& out_shape) {
  Tensor y(DType::f32, out_shape);
  const std::int64_t rows = m.shape()[0], cols = m.shape()[1];
  const std::int64_t out_len = transposed ? cols : rows, in_len = transposed ? rows : cols;
  for (std::int64_t r = 0; r < out_len; ++r) {
    float sum = 0;
    for (std::int64_t k = 0; k < in_len; ++k) {
      sum += (transposed ? m.data_as<float>()[k * cols + r] : m.data_as<float>()[r * cols + k]) * x.data_as<float>()[k];
    }
    y.data_as<float>()[r] = sum;
  }
  return y;
}

}  // namespace

int run_demo() {
  std::printf("tconv demo: a convolution, its matrix, and the transposed convolution\n\n");

  // 1. A convolution slides the kernel over the input.
  const float image[16] = {4, 5, 8, 7, 1, 8, 8, 8, 3, 6, 6, 4, 6, 5, 7, 8};
  const float kernel[9] = {1, 4, 1, 1, 4, 3, 3, 3, 1};
  const TensorView x(image, Shape{1, 1, 4, 4});
  const TensorView w(kernel, Shape{1, 1, 3, 3});
  std::printf("1. Convolution (stride 1, no padding): slide the 3x3 kernel over the 4x4 input.\n");
  print_matrix("input", image, 4, 4);
  print_matrix("kernel", kernel, 3, 3);
  const Tensor slid = reference::compute(Method::gather, ConvKind::conv, x, w, nullptr);
  print_matrix("output: each cell is the sum of a 3x3 window times the kernel", slid.data_as<float>(), 2, 2);

  // 2. The same map as a matrix product.
  std::printf("2. The same convolution is a matrix product.\n");
  const Tensor m = conv_matrix({1, 1, 4, 4}, w);
  print_matrix("convolution matrix M: one row per output cell, one column per input cell", m.data_as<float>(), 4, 16);
  const Tensor flat = Tensor::copy_of(TensorView(image, Shape{16}));
  const Tensor product = multiply(m, flat, false, {1, 1, 2, 2});
  print_matrix("M times the flattened input, reshaped to 2x2", product.data_as<float>(), 2, 2);
  check("sliding window == matrix product", same(slid, product));

  // 3. Its transpose maps 4 values back to 16.
  std::printf("3. The transposed convolution multiplies by M^T: 4 values in, a 4x4 grid out.\n");
  Tensor mt(DType::f32, {16, 4});
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 16; ++c) mt.data_as<float>()[c * 4 + r] = m.data_as<float>()[r * 16 + c];
  print_matrix("M^T", mt.data_as<float>(), 16, 4);
  const Tensor from_matrix = multiply(m, slid, true, {1, 1, 4, 4});
  const Tensor from_library = conv_transpose(slid.view(), w, nullptr);
  print_matrix("M^T times the 2x2 output above", from_matrix.data_as<float>(), 4, 4);
  check("M^T product == tconv::conv_transpose", same(from_matrix, from_library));

  // 4. Computed directly, the transposed convolution is a scatter.
  std::printf("4. Directly, a transposed convolution scatters: each input cell times the kernel is added\n"
              "   into the output window at its position.\n");
  const float small[4] = {1, 2, 3, 4};
  const float kernel2[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  const TensorView y(small, Shape{1, 1, 2, 2});
  const TensorView w2(kernel2, Shape{1, 1, 3, 3});
  print_matrix("input", small, 2, 2);
  print_matrix("kernel", kernel2, 3, 3);
  const Tensor scattered = reference::compute(Method::scatter, ConvKind::conv_transpose, y, w2, nullptr);
  print_matrix("scatter-add result (what torch.nn.ConvTranspose2d(1, 1, 3) gives)", scattered.data_as<float>(), 4, 4);
  const Tensor m2 = conv_matrix({1, 1, 4, 4}, w2);
  const Tensor by_matrix = multiply(m2, Tensor::copy_of(y), true, {1, 1, 4, 4});
  check("scatter == M^T product", same(scattered, by_matrix));
  const Tensor by_gather = reference::compute(Method::gather, ConvKind::conv_transpose, y, w2, nullptr);
  check("scatter == gather (each output cell collecting what lands on it)", same(scattered, by_gather));
  const Operator op = Operator::create(ConvKind::conv_transpose, w2, nullptr, {});
  check(("scatter == the engine (implementation '" + op.implementation() + "')").c_str(),
        same(scattered, op.run(y)));

  std::printf(g_failures == 0 ? "All ways agree.\n" : "%d check(s) disagree.\n", g_failures);
  return g_failures == 0 ? 0 : 1;
}

}  // namespace tconv::cli
