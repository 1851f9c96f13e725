// Channels-last activations ([N, spatial..., C]): every implementation that
// reads them against the oracle, and the same bits as the channels-first
// computation transposed, on random sweeps and on the performance suite.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <limits>
#include <map>
#include <random>

#include "kernels/cpu_features.hpp"
#include "kernels/layout_transpose.hpp"
#include "test_support.hpp"
#include "tconv/gradients.hpp"
#include "tconv/tconv.hpp"

namespace tconv {
namespace {

using testing::Case;
using testing::CaseLimits;
using testing::bits_equal;
using testing::close_to;
using testing::error_of;
using testing::forced;
using testing::oracle;
using testing::oracle_scale;
using testing::random_case;
using testing::random_operands;
using testing::tolerance;

// The dimension order of a channels-last tensor as channels-first indices:
// [N, S..., C] <- [N, C, S...] (batched) or [S..., C] <- [C, S...].
std::vector<std::size_t> channels_last_order(std::size_t rank, bool batched) {
  std::vector<std::size_t> order;
  const std::size_t channel = batched ? 1 : 0;
  for (std::size_t d = 0; d < channel; ++d) order.push_back(d);
  for (std::size_t d = channel + 1; d < rank; ++d) order.push_back(d);
  order.push_back(channel);
  return order;
}

// A channels-first tensor's values laid out channels-last (written through a permuted view).
Tensor to_channels_last(const Tensor& channels_first, bool batched) {
  const Shape& shape = channels_first.shape();
  const auto order = channels_last_order(shape.size(), batched);
  Shape last_shape;
  for (std::size_t d : order) last_shape.push_back(shape[d]);
  Tensor out = Tensor::uninitialized(channels_first.dtype(), last_shape);
  const Shape last_strides = out.view().effective_strides();
  Shape strides(shape.size());
  for (std::size_t k = 0; k < order.size(); ++k) strides[order[k]] = last_strides[k];
  copy(channels_first.view(), MutableTensorView(out.data(), out.dtype(), shape, strides));
  return out;
}

ConvParams channels_last(ConvParams params) {
  params.layout = Layout::channels_last;
  return params;
}

// The transposing copy between the layouts against its element-by-element
// twin: 1 to 3 matrices of 1 to 40 rows and columns (partial 16 x 16 blocks on
// both edges), contiguous and as windows of bigger matrices (row and matrix
// strides past the window's), with every ISA's block mover the CPU runs, on 1 and 3 threads; every element must land
// where the twin puts it and every element outside the window stay as it was.
TEST(ChannelsLast, TransposingCopyMatchesItsTwin) {
  std::vector<detail::TransposeIsa> isas{detail::TransposeIsa::portable};
  if (detail::cpu_has_avx2_fma()) isas.push_back(detail::TransposeIsa::avx2);
  if (detail::cpu_has_avx512()) isas.push_back(detail::TransposeIsa::avx512);
  std::mt19937_64 rng(5);
  int cases = 0;
  for (std::int64_t count = 1; count <= 3; ++count)
    for (std::int64_t rows = 1; rows <= 40; rows += 3)
      for (std::int64_t columns = 1; columns <= 40; columns += 2)
        for (const std::int64_t margin : {0, 5}) {
          detail::TransposeShape shape = detail::TransposeShape::contiguous(count, rows, columns);
          shape.src_row_stride += margin;
          shape.src_matrix_stride = rows * shape.src_row_stride + 2 * margin;
          shape.dst_row_stride += 3 * margin;
          shape.dst_matrix_stride = columns * shape.dst_row_stride + margin;
          std::vector<float> src(static_cast<std::size_t>(count * shape.src_matrix_stride));
          for (float& v : src) v = std::uniform_real_distribution<float>(-1, 1)(rng);
          const auto dst_size = static_cast<std::size_t>(count * shape.dst_matrix_stride);
          std::vector<float> want(dst_size, -7.0f);
          detail::transpose_matrices_reference(src.data(), want.data(), shape);
          for (const auto isa : isas)
            for (int threads : {1, 3}) {
              std::vector<float> got(dst_size, -7.0f);
              detail::transpose_matrices_with(isa, src.data(), got.data(), shape, threads);
              ASSERT_EQ(got, want) << count << " x " << rows << " x " << columns << " margin " << margin << ", ISA "
                                   << static_cast<int>(isa) << ", " << threads << " threads";
            }
          ++cases;
        }
  EXPECT_EQ(cases, 3 * 14 * 20 * 2);
}

TEST(ChannelsLast, ShapesFollowTheLayout) {
  const Shape weight{4, 3, 3, 3};  // conv_transpose: 4 in, 3 out
  ConvParams p;
  p.stride = 2;
  p.padding = 1;
  p.output_padding = 1;
  EXPECT_EQ(output_shape(ConvKind::conv_transpose, {2, 5, 6, 4}, weight, channels_last(p)), (Shape{2, 10, 12, 3}));
  EXPECT_EQ(output_shape(ConvKind::conv_transpose, {5, 6, 4}, weight, channels_last(p)), (Shape{10, 12, 3}));
  EXPECT_EQ(output_shape(ConvKind::conv, {2, 9, 9, 3}, {5, 3, 3, 3}, channels_last({})), (Shape{2, 7, 7, 5}));
  const auto e = error_of([&] { output_shape(ConvKind::conv_transpose, {2, 4, 6, 5}, weight, channels_last(p)); });
  ASSERT_TRUE(e);
  EXPECT_EQ(std::string(e->what()), "input has 5 channels (its last dimension: layout channels_last) but the weight's "
                                    "dimension 0 (in_channels) is 4");
  ConvParams bad;
  bad.layout = static_cast<Layout>(7);
  EXPECT_TRUE(error_of([&] { output_shape(ConvKind::conv, {1, 3, 5, 5}, {5, 3, 3, 3}, bad); }));
  EXPECT_EQ(std::string(layout_name(Layout::channels_last)), "channels_last");
}

// Every implementation that reads channels-last tensors, on random cases, against the oracle.
TEST(ChannelsLast, MatchTheOracleOnARandomSweep) {
  CaseLimits lim;
  lim.asymmetric_padding = true;
  lim.max_channels_per_group = 20;
  std::map<std::string, int> ran;
  for (const std::string& name : available_implementations()) {
    SCOPED_TRACE(name);
    std::mt19937_64 rng(101);
    for (int k = 0; k < 300; ++k) {
      const Case c = random_case(rng, lim);
      const testing::Operands o = random_operands(c, rng);
      const auto op = forced(name, c.kind, o.weight.view(), o.bias_view(), channels_last(c.params()));
      if (!op) continue;
      const Tensor got = op->run(to_channels_last(o.input, c.batched).view());
      const Tensor want = oracle(c, o.input.view(), o.weight.view(), o.bias_view());
      const Tensor scale = oracle_scale(c, o.input.view(), o.weight.view(), o.bias_view());
      EXPECT_TRUE(close_to(got, to_channels_last(want, c.batched), to_channels_last(scale, c.batched),
                           tolerance(c.dtype), c.dtype))
          << c.describe();
      ++ran[name];
    }
    std::cout << name << ": " << ran[name] << " channels-last cases\n";
  }
  EXPECT_GT(ran["direct"], 250);
  for (const char* fast : {"igemm_avx512", "igemm_avx2"}) {
    const auto names = available_implementations();
    if (std::find(names.begin(), names.end(), fast) != names.end()) {
      EXPECT_GT(ran[fast], 80) << fast;
    }
  }
}

// Output-channel counts around the vector width and block sizes, pixel counts
// around the tile height, every phase, in both kinds.
TEST(ChannelsLast, MatchTheOracleAcrossPartialTiles) {
  const std::vector<std::int64_t> channels{1, 3, 16, 17, 33, 48, 65, 100};
  for (const std::string& name : available_implementations()) {
    SCOPED_TRACE(name);
    std::mt19937_64 rng(103);
    for (std::int64_t width = 1; width <= 24; ++width) {
      Case c;
      c.kind = width % 2 ? ConvKind::conv_transpose : ConvKind::conv;
      c.dtype = DType::f32;
      c.batch = 1 + width % 3;
      c.groups = width % 7 == 0 ? 2 : 1;
      c.in_channels = c.groups * channels[static_cast<std::size_t>(width % 8)];
      c.out_channels = c.groups * channels[static_cast<std::size_t>((3 * width + 1) % 8)];
      c.size = width % 3 == 0 ? std::vector<std::int64_t>{1 + width % 5, width} : std::vector<std::int64_t>{width};
      for (std::size_t d = 0; d < c.size.size(); ++d) {
        c.kernel.push_back(1 + (width + static_cast<std::int64_t>(d)) % 4);
        c.stride.push_back(1 + width % 3);
        c.dilation.push_back(1 + (width / 3) % 2);
        c.padding.push_back(width % 2);
        c.output_padding.push_back(c.kind == ConvKind::conv_transpose ? width % std::max(c.stride[d], c.dilation[d]) : 0);
      }
      c.bias = width % 4 != 0;
      if (!c.valid()) continue;
      const testing::Operands o = random_operands(c, rng);
      const auto op = forced(name, c.kind, o.weight.view(), o.bias_view(), channels_last(c.params()));
      if (!op) continue;
      const Tensor want = oracle(c, o.input.view(), o.weight.view(), o.bias_view());
      const Tensor scale = oracle_scale(c, o.input.view(), o.weight.view(), o.bias_view());
      EXPECT_TRUE(close_to(op->run(to_channels_last(o.input, c.batched).view()), to_channels_last(want, c.batched),
                           to_channels_last(scale, c.batched), 1e-5, DType::f32))
          << c.describe();
    }
  }
}

// The implementation pairs that sum in the same order: channels-last bits equal
// the channels-first bits transposed.
TEST(ChannelsLast, SameBitsAsChannelsFirstTransposed) {
  const std::vector<std::pair<std::string, std::string>> pairs{
      {"phase_gemm_avx512", "igemm_avx512"}, {"phase_gemm_avx2", "igemm_avx2"}, {"plane_gemm_avx512", "igemm_avx512"},
      {"depthwise_avx512", "depthwise_avx512"}, {"depthwise_avx2", "depthwise_avx2"},
      {"depthwise_conv_avx512", "depthwise_conv_avx512"}, {"scatter_gemm_avx512", "scatter_gemm_avx512"},
      {"scatter_gemm_avx2", "scatter_gemm_avx2"}, {"direct", "direct"}};
  const auto names = available_implementations();
  auto has = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  CaseLimits lim;
  lim.asymmetric_padding = true;
  lim.max_channels_per_group = 24;
  lim.dtype = DType::f32;
  for (const auto& [first, last] : pairs) {
    if (!has(first) || !has(last)) continue;
    SCOPED_TRACE(first + " / " + last);
    std::mt19937_64 rng(107);
    int compared = 0;
    for (int k = 0; k < 200; ++k) {
      const Case c = random_case(rng, lim);
      const testing::Operands o = random_operands(c, rng);
      const auto a = forced(first, c.kind, o.weight.view(), o.bias_view(), c.params());
      const auto b = forced(last, c.kind, o.weight.view(), o.bias_view(), channels_last(c.params()));
      if (!a || !b) continue;
      EXPECT_TRUE(bits_equal(b->run(to_channels_last(o.input, c.batched).view()),
                             to_channels_last(a->run(o.input.view()), c.batched)))
          << c.describe();
      ++compared;
    }
    EXPECT_GT(compared, first.rfind("phase_gemm", 0) == 0 || first == "direct" ? 100 : 10);
  }
}

// depthwise_conv's bands that build their x taps out of the input rows
// (square kernels of 3, 4 and 5 taps at stride 2, of 3 and 7 at stride 1) and its
// loaded bands (5 taps at stride 1) give its channels-last bits,
// also with a non-finite weight, where they multiply no padding zero (an
// infinity times one would be a NaN where the channels-last path, which
// leaves those positions out, has a number).
TEST(ChannelsLast, DepthwiseBandsGiveTheChannelsLastBits) {
  const std::string family = "depthwise_conv_avx512";
  const auto names = available_implementations();
  if (std::find(names.begin(), names.end(), family) == names.end()) GTEST_SKIP() << family << " does not run here";
  std::mt19937_64 rng(113);
  for (const auto& [k, stride] : {std::pair<std::int64_t, std::int64_t>{3, 1}, {5, 1}, {7, 1}, {3, 2}, {4, 2}, {5, 2}}) {
    for (const std::int64_t width : {9, 33, 64, 97}) {
      for (const float special : {0.5f, std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
        Case c;
        c.kind = ConvKind::conv;
        c.batch = 2;
        c.in_channels = c.out_channels = c.groups = 3;
        c.size = {width / 2 + 3, width};
        c.kernel = {k, k};
        c.stride = {stride, stride};
        c.padding = {k / 2, k == 4 ? 1 : k / 2};
        c.output_padding = {0, 0};
        c.dilation = {1, 1};
        c.bias = true;
        SCOPED_TRACE(c.describe() + ", a weight " + std::to_string(special));
        testing::Operands o = random_operands(c, rng);
        // Channel 1's four kernel corners: the taps that reach past every edge.
        for (const std::int64_t corner : {std::int64_t{0}, k - 1, (k - 1) * k, k * k - 1}) testing::set_value(o.weight, k * k + corner, special);
        const auto a = forced(family, c.kind, o.weight.view(), o.bias_view(), c.params());
        const auto b = forced(family, c.kind, o.weight.view(), o.bias_view(), channels_last(c.params()));
        ASSERT_TRUE(a && b);
        EXPECT_TRUE(bits_equal(b->run(to_channels_last(o.input, true).view()), to_channels_last(a->run(o.input.view()), true)));
      }
    }
  }
}

// The performance suite (shared/bench/suite_public.txt) with the automatic
// choice in both layouts: the same bits, transposed.
TEST(ChannelsLast, SameBitsAsChannelsFirstOnThePublicSuite) {
  struct SuiteCase {
    const char* name;
    std::int64_t n, cin, cout;
    std::vector<std::int64_t> size;
    std::int64_t k, s, p, op, d, g;
  };
  const std::vector<SuiteCase> suite = {
      {"dcgan_512_256_4x4", 8, 512, 256, {4, 4}, 4, 2, 1, 0, 1, 1},
      {"dcgan_256_128_8x8", 8, 256, 128, {8, 8}, 4, 2, 1, 0, 1, 1},
      {"dcgan_64_3_32x32", 8, 64, 3, {32, 32}, 4, 2, 1, 0, 1, 1},
      {"unet_128_64_64x64_k2s2", 1, 128, 64, {64, 64}, 2, 2, 0, 0, 1, 1},
      {"s1_k3_64_56x56", 1, 64, 64, {56, 56}, 3, 1, 1, 0, 1, 1},
      {"fcn32_21_k64s32", 1, 21, 21, {10, 10}, 64, 32, 16, 0, 1, 1},
      {"hifigan_1d_512_256_k16s8", 1, 512, 256, {100}, 16, 8, 4, 0, 1, 1},
      {"vnet_3d_64_32_16c_k2s2", 1, 64, 32, {16, 16, 16}, 2, 2, 0, 0, 1, 1},
      {"depthwise_128_k4s2_32x32", 1, 128, 128, {32, 32}, 4, 2, 1, 0, 1, 128},
      {"dilated_64_k3d2_32x32", 1, 64, 64, {32, 32}, 3, 1, 2, 0, 2, 1},
  };
  std::mt19937_64 rng(109);
  for (const SuiteCase& s : suite) {
    SCOPED_TRACE(s.name);
    const auto r = s.size.size();
    Case c;
    c.batch = s.n;
    c.in_channels = s.cin;
    c.out_channels = s.cout;
    c.groups = s.g;
    c.size = s.size;
    c.kernel.assign(r, s.k);
    c.stride.assign(r, s.s);
    c.padding.assign(r, s.p);
    c.output_padding.assign(r, s.op);
    c.dilation.assign(r, s.d);
    c.bias = true;
    const testing::Operands o = random_operands(c, rng);
    const Operator first = Operator::create(c.kind, o.weight.view(), o.bias_view(), c.params());
    const Operator last = Operator::create(c.kind, o.weight.view(), o.bias_view(), channels_last(c.params()));
    std::cout << s.name << ": " << first.implementation() << " / " << last.implementation() << "\n";
    EXPECT_TRUE(bits_equal(last.run(to_channels_last(o.input, true).view()),
                           to_channels_last(first.run(o.input.view()), true)));
  }
}

TEST(ChannelsLast, SameBitsForAnyThreadCount) {
  testing::ThreadCountGuard guard;
  CaseLimits lim;
  lim.max_channels_per_group = 20;
  lim.max_size = 12;
  lim.max_batch = 4;
  lim.dtype = DType::f32;
  for (const std::string& name : available_implementations()) {
    SCOPED_TRACE(name);
    std::mt19937_64 rng(113);
    for (int k = 0; k < 20; ++k) {
      const Case c = random_case(rng, lim);
      const testing::Operands o = random_operands(c, rng);
      const auto op = forced(name, c.kind, o.weight.view(), o.bias_view(), channels_last(c.params()));
      if (!op) continue;
      const Tensor x = to_channels_last(o.input, c.batched);
      set_num_threads(1);
      const Tensor one = op->run(x.view());
      for (int threads : {2, 3, 7}) {
        set_num_threads(threads);
        EXPECT_TRUE(bits_equal(op->run(x.view()), one)) << threads << " threads: " << c.describe();
      }
    }
  }
}

// The channels-last kernels' workspace is their pointer tables, never a column buffer.
TEST(ChannelsLast, WorkspaceStaysSmall) {
  const Tensor w(DType::f32, {512, 256, 4, 4});
  ConvParams p;
  p.stride = 2;
  p.padding = 1;
  p.layout = Layout::channels_last;
  for (const std::string& name : available_implementations()) {
    const auto op = forced(name, ConvKind::conv_transpose, w.view(), nullptr, p);
    if (!op) continue;
    const Plan plan = op->plan({8, 4, 4, 512});
    EXPECT_EQ(plan.output_shape, (Shape{8, 8, 8, 256}));
    EXPECT_LE(plan.workspace_bytes, static_cast<std::size_t>(plan.threads) * (64u << 10)) << name;
  }
}

// The reference methods and the gradients take the layout too.
TEST(ChannelsLast, ReferenceAndGradientsFollowTheLayout) {
  std::mt19937_64 rng(127);
  CaseLimits lim;
  lim.dtype = DType::f64;
  for (int k = 0; k < 30; ++k) {
    const Case c = random_case(rng, lim);
    SCOPED_TRACE(c.describe());
    const testing::Operands o = random_operands(c, rng);
    const Tensor x_last = to_channels_last(o.input, c.batched);
    // The same method in both layouts sums in the same order: the same bits.
    for (auto method : {reference::Method::gather, reference::Method::matrix, reference::Method::scatter}) {
      const Tensor want = reference::compute(method, c.kind, o.input.view(), o.weight.view(), o.bias_view(), c.params());
      const Tensor got = reference::compute(method, c.kind, x_last.view(), o.weight.view(), o.bias_view(),
                                            channels_last(c.params()));
      EXPECT_TRUE(bits_equal(got, to_channels_last(want, c.batched))) << reference::method_name(method);
    }
    const Tensor grad_out = testing::random_tensor(DType::f64, c.output_shape(), rng);
    const auto backward = c.kind == ConvKind::conv ? conv_backward : conv_transpose_backward;
    const Gradients first = backward(grad_out.view(), o.input.view(), o.weight.view(), c.params(), true);
    const Tensor grad_out_last = to_channels_last(grad_out, c.batched);
    const Gradients last = backward(grad_out_last.view(), x_last.view(), o.weight.view(), channels_last(c.params()), true);
    EXPECT_TRUE(bits_equal(last.input, to_channels_last(first.input, c.batched)));
    EXPECT_TRUE(bits_equal(last.weight, first.weight));
    EXPECT_TRUE(bits_equal(*last.bias, *first.bias));
  }
}

}  // namespace
}  // namespace tconv
