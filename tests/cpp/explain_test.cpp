// tconv::explain against the library's other, independent descriptions of the
// same convolution: conv_matrix (the reference matrix builder) for the matrix,
// and the scatter reference on all-ones tensors for the overlap counts.
#include <gtest/gtest.h>

#include <sstream>

#include "tconv/explain.hpp"

namespace tconv {
namespace {

struct Case {
  ConvKind kind;
  Shape input_size, kernel_size;
  ConvParams params;
};

std::vector<Case> cases() {
  ConvParams strided;
  strided.stride = 2;
  strided.padding = 1;
  ConvParams transposed = strided;
  transposed.output_padding = 1;
  ConvParams dilated;
  dilated.dilation = SpatialParam({2, 1});
  dilated.stride = SpatialParam({1, 3});
  return {{ConvKind::conv, {4, 4}, {3, 3}, {}},
          {ConvKind::conv, {7, 6}, {3, 2}, strided},
          {ConvKind::conv, {9, 8}, {2, 3}, dilated},
          {ConvKind::conv_transpose, {3, 3}, {3, 3}, strided},
          {ConvKind::conv_transpose, {3, 4}, {3, 3}, transposed},
          {ConvKind::conv_transpose, {4, 3}, {2, 3}, dilated},
          {ConvKind::conv_transpose, {5}, {3}, transposed}};
}

Shape one_channel(const Shape& spatial) {
  Shape shape{1, 1};
  shape.insert(shape.end(), spatial.begin(), spatial.end());
  return shape;
}

std::int64_t count(const Shape& shape) {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

TEST(Explain, MatrixIsTheConvolutionMatrixOrItsTranspose) {
  for (const Case& c : cases()) {
    const Explanation e = explain({c.kind, c.input_size, c.kernel_size, c.params});
    // conv_matrix describes the convolution whose input is the big side.
    const Shape output = output_shape(c.kind, one_channel(c.input_size), one_channel(c.kernel_size), c.params);
    const Shape big_spatial = c.kind == ConvKind::conv ? c.input_size : Shape(output.begin() + 2, output.end());
    ConvParams conv_params = c.params;
    conv_params.output_padding = 0;
    const TensorView weight(e.kernel.values.data(), one_channel(c.kernel_size));
    Shape big_shape{1};  // unbatched, one channel
    big_shape.insert(big_shape.end(), big_spatial.begin(), big_spatial.end());
    const Tensor m = conv_matrix(big_shape, weight, conv_params);
    const std::int64_t rows = m.shape()[0], cols = m.shape()[1];
    const bool transposed = c.kind == ConvKind::conv_transpose;
    ASSERT_EQ(e.matrix_rows, transposed ? cols : rows);
    ASSERT_EQ(e.matrix_cols, transposed ? rows : cols);
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t k = 0; k < cols; ++k) {
        const double expected = m.data_as<double>()[r * cols + k];
        const std::int64_t at = transposed ? k * e.matrix_cols + r : r * e.matrix_cols + k;
        ASSERT_EQ(e.matrix[static_cast<std::size_t>(at)], expected) << conv_kind_name(c.kind) << " row " << r;
      }
    }
  }
}

TEST(Explain, OverlapIsTheOperationOnOnes) {
  for (const Case& c : cases()) {
    const Explanation e = explain({c.kind, c.input_size, c.kernel_size, c.params});
    const std::vector<double> ones_in(static_cast<std::size_t>(count(c.input_size)), 1.0);
    const std::vector<double> ones_kernel(static_cast<std::size_t>(count(c.kernel_size)), 1.0);
    const Tensor counted = reference::compute(reference::Method::scatter, c.kind,
                                              TensorView(ones_in.data(), one_channel(c.input_size)),
                                              TensorView(ones_kernel.data(), one_channel(c.kernel_size)), nullptr,
                                              c.params);
    ASSERT_EQ(static_cast<std::int64_t>(e.overlap.size()), counted.numel());
    for (std::int64_t k = 0; k < counted.numel(); ++k) {
      EXPECT_EQ(static_cast<double>(e.overlap[static_cast<std::size_t>(k)]), counted.data_as<double>()[k])
          << conv_kind_name(c.kind) << " output cell " << k;
    }
  }
}

TEST(Explain, AsymmetricPaddingFramesTheInputAndNamesBothEnds) {
  ConvParams params;
  params.padding = SpatialParam({2, 0});
  params.padding_end = SpatialParam({1, 3});
  const Explanation e = explain({ConvKind::conv, {4, 4}, {3, 3}, params});
  EXPECT_EQ(e.input.row_frame.before, 2);
  EXPECT_EQ(e.input.row_frame.after, 1);
  EXPECT_EQ(e.input.col_frame.before, 0);
  EXPECT_EQ(e.input.col_frame.after, 3);
  // (4 + 2 + 1 - 2 - 1) / 1 + 1 = 5 rows, (4 + 0 + 3 - 2 - 1) / 1 + 1 = 5 columns
  EXPECT_EQ(e.output.rows, 5);
  EXPECT_EQ(e.output.cols, 5);
  EXPECT_NE(e.size_formulas[0].find("floor((4 + (2 + 1) - 1*(3-1) - 1) / 1) + 1 = 5"), std::string::npos)
      << e.size_formulas[0];
}

TEST(Explain, TooWideMatrixIsPrintedAsAPattern) {
  const Explanation e = explain({ConvKind::conv_transpose, {3, 3}, {3, 3}, {}});
  std::istringstream text(explanation_text(e, 12));
  std::string line;
  int pattern_rows = 0;
  while (std::getline(text, line)) {
    if (line.size() == 2 + 9 && line.find_first_not_of("#.", 2) == std::string::npos) ++pattern_rows;
  }
  EXPECT_EQ(pattern_rows, 25);  // one line per output cell of the 5x5 output
}

TEST(Explain, RefusesWhatItCannotDraw) {
  auto refused = [](const ExplainRequest& request, const std::string& words) {
    try {
      explain(request);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
      return;
    }
    ADD_FAILURE() << "not refused: " << words;
  };
  refused({ConvKind::conv, {4, 4, 4}, {3, 3, 3}, {}}, "1-D and 2-D");
  ConvParams grouped;
  grouped.groups = 2;
  refused({ConvKind::conv, {4, 4}, {3, 3}, grouped}, "groups (2) must be 1");
  refused({ConvKind::conv_transpose, {}, {3, 3}, {}}, "input_size is missing");
}

}  // namespace
}  // namespace tconv
