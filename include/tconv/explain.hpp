// tconv::explain: everything needed to draw one small 1-D or 2-D (transposed)
// convolution for a person: the grids and the formula of their sizes, the
// convolution matrix, which output cells each input cell reaches, and how many
// kernel taps land on each output cell (the checkerboard of a strided
// transposed convolution). One channel in, one channel out.
//
// A 1-D convolution is described as a single row, so that every grid below is
// rows x cols and flat indices are row-major.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tconv/tconv.hpp"

namespace tconv {

struct ExplainRequest {
  ConvKind kind = ConvKind::conv;
  // Spatial sizes ({W} or {H, W}); either may be left empty when the matching
  // tensor below is given, which then provides it.
  Shape input_size;
  Shape kernel_size;
  ConvParams params;  // groups must be 1
  // Optional values: one channel, the spatial shape optionally preceded by
  // dimensions of size 1 (so the [1, 1, H, W] arrays `tconv run` takes fit).
  // Without a weight the kernel is 1, 2, ..., k so every tap is told apart.
  const TensorView* input = nullptr;
  const TensorView* weight = nullptr;
  // The input cell whose contribution window is drawn, {row, col} ({0, col} in 1-D);
  // the centre cell when not given.
  std::optional<std::vector<std::int64_t>> highlight;
};

// Cells drawn around a grid along one axis.
struct Margin {
  std::int64_t before = 0;
  std::int64_t after = 0;
};

struct ExplainGrid {
  std::int64_t rows = 1;
  std::int64_t cols = 1;
  std::vector<double> values;  // row-major; empty when there are no values to show
  // Cells outside the grid: the zero padding around a convolution's input, or
  // the border a transposed convolution's padding cropped from its output.
  Margin row_frame;
  Margin col_frame;

  std::int64_t cells() const { return rows * cols; }
  bool contains(std::int64_t row, std::int64_t col) const { return row >= 0 && row < rows && col >= 0 && col < cols; }
  bool has_frame() const { return row_frame.before + row_frame.after + col_frame.before + col_frame.after > 0; }
};

// Where one kernel tap carries the highlighted input cell, in output
// coordinates (negative or past the end: inside the cropped frame).
struct WindowCell {
  std::int64_t row = 0;
  std::int64_t col = 0;
  std::int64_t tap = 0;  // flat index into the kernel
};

struct Explanation {
  ConvKind kind = ConvKind::conv;
  int spatial_rank = 2;
  ExplainGrid input;
  ExplainGrid kernel;
  ExplainGrid output;
  // Trailing output rows / columns that exist only because of output_padding.
  std::int64_t output_padding_rows = 0;
  std::int64_t output_padding_cols = 0;
  // One line per spatial dimension: the output-size formula with its values.
  std::vector<std::string> size_formulas;
  // The operation as a matrix: flat output = matrix x flat input, row-major
  // [output cells, input cells] (a transposed convolution's is the transpose
  // of the convolution's).
  std::int64_t matrix_rows = 0;
  std::int64_t matrix_cols = 0;
  std::vector<double> matrix;
  // Per output cell: how many (input cell, kernel tap) pairs land on it.
  std::vector<std::int64_t> overlap;
  // Per input cell: the output cells it contributes to, ascending.
  std::vector<std::vector<std::int64_t>> touched;
  std::int64_t highlighted = 0;  // flat input cell
  std::vector<WindowCell> window;
  std::string parameters;  // "stride 2, padding 1, ..." as a person reads them
};

// Throws Error for everything the operation itself would refuse, and for 3-D
// convolutions, groups other than 1, and values that are not one channel.
Explanation explain(const ExplainRequest& request);

// The explanation as terminal text, at most `width` columns wide where the
// matrix allows (a wider matrix is printed as a zero / non-zero pattern).
std::string explanation_text(const Explanation& explanation, int width = 80);
// The explanation as one self-contained SVG document.
std::string explanation_svg(const Explanation& explanation);

}  // namespace tconv
