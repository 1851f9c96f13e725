// The explanation model: every field follows from the one index relation of
// conv_geometry.hpp (big o = small i * stride - pad_begin + tap * dilation),
// enumerated once per (input cell, kernel tap) pair.
#include "tconv/explain.hpp"

#include <algorithm>
#include <sstream>

#include "tensor_values.hpp"
#include "validate.hpp"

namespace tconv {
namespace {

using detail::Dims;
using detail::Geometry;
using detail::kMaxSpatial;
using detail::to_double;

[[noreturn]] void refuse(const std::string& message) { throw Error(ErrorKind::invalid_argument, message); }

// Geometry keeps three spatial dimensions, leading ones of size 1; the drawn
// rows and columns are its last two.
constexpr int kRowAxis = kMaxSpatial - 2;
constexpr int kColAxis = kMaxSpatial - 1;

// The spatial size of a one-channel tensor: `given_size` when the tensor is
// that size preceded by up to two 1s, else its shape without leading 1s.
Shape spatial_shape_of(const TensorView& view, const char* name, const Shape& given_size) {
  const Shape& shape = view.shape;
  const std::string rule = std::string(": explain takes one channel, [H, W] or [W], optionally preceded by dimensions of size 1");
  auto all_ones = [](auto begin, auto end) { return std::all_of(begin, end, [](std::int64_t d) { return d == 1; }); };
  if (!given_size.empty()) {
    const std::size_t rank = given_size.size();
    const bool fits = shape.size() >= rank && shape.size() <= rank + 2 &&
                      std::equal(given_size.rbegin(), given_size.rend(), shape.rbegin()) &&
                      all_ones(shape.begin(), shape.end() - static_cast<std::ptrdiff_t>(rank));
    if (!fits) {
      refuse(std::string(name) + " of shape " + shape_to_string(shape) + " does not hold one channel of size " +
             shape_to_string(given_size) + rule);
    }
    return given_size;
  }
  std::size_t first = 0;
  while (shape.size() - first > 2 && shape[first] == 1) ++first;
  const Shape spatial(shape.begin() + static_cast<std::ptrdiff_t>(first), shape.end());
  if (spatial.empty() || spatial.size() > 3 || shape.size() > spatial.size() + 2) {
    refuse(std::string(name) + " of shape " + shape_to_string(shape) + " is not one channel" + rule);
  }
  return spatial;
}

Shape size_of(const Shape& given, const TensorView* tensor, const char* name, const char* size_name) {
  if (tensor) return spatial_shape_of(*tensor, name, given);
  if (given.empty()) refuse(std::string(size_name) + " is missing (and no " + name + " values were given)");
  return given;
}

Shape one_channel_shape(const Shape& spatial) {
  Shape shape{1, 1};
  shape.insert(shape.end(), spatial.begin(), spatial.end());
  return shape;
}

// `view` reshaped to [1, 1, spatial...], the layout `tconv run` takes.
Tensor one_channel(const TensorView& view, const Shape& spatial) {
  const Tensor contiguous = Tensor::copy_of(view);
  return Tensor::copy_of(TensorView(contiguous.data(), contiguous.dtype(), one_channel_shape(spatial)));
}

Dims per_dimension(const SpatialParam& param, int rank, std::int64_t fill) {
  Dims dims{fill, fill, fill};
  for (int d = 0; d < rank; ++d) dims[kMaxSpatial - rank + d] = param.at(d);
  return dims;
}

// "2" when every dimension has the same value, "2x1" when they differ.
std::string per_dimension_text(const Dims& dims, int rank) {
  const Shape values(dims.end() - rank, dims.end());
  const bool same = std::all_of(values.begin(), values.end(), [&](std::int64_t v) { return v == values[0]; });
  return same ? std::to_string(values[0]) : shape_to_string(values, "x");
}

// One axis of the drawing: where input position `in` goes through tap `tap`
// in output coordinates, if anywhere (a convolution's output position must be
// a whole number of strides).
struct Axis {
  ConvKind kind;
  std::int64_t stride, dilation, pad_begin;

  std::optional<std::int64_t> output_of(std::int64_t in, std::int64_t tap) const {
    if (kind == ConvKind::conv_transpose) return in * stride - pad_begin + tap * dilation;
    const std::int64_t scaled = in + pad_begin - tap * dilation;
    if (scaled < 0 || scaled % stride != 0) return std::nullopt;
    return scaled / stride;
  }
};

Axis axis_of(const Geometry& g, int axis) { return {g.kind, g.stride[axis], g.dilation[axis], g.pad_begin[axis]}; }

std::string size_formula(ConvKind kind, const std::string& name, std::int64_t in, std::int64_t kernel,
                         std::int64_t stride, std::int64_t pad_begin, std::int64_t pad_end,
                         std::int64_t dilation, std::int64_t output_padding, std::int64_t out) {
  const bool symmetric = pad_begin == pad_end;
  const std::string pad_rule = symmetric ? "2*padding" : "(padding_begin + padding_end)";
  const std::string pad_value = symmetric ? "2*" + std::to_string(pad_begin)
                                          : "(" + std::to_string(pad_begin) + " + " + std::to_string(pad_end) + ")";
  std::ostringstream text;
  const auto k = std::to_string(kernel), d = std::to_string(dilation), s = std::to_string(stride);
  if (kind == ConvKind::conv) {
    text << name << "_out = floor((" << name << "_in + " << pad_rule << " - dilation*(k-1) - 1) / stride) + 1"
         << " = floor((" << in << " + " << pad_value << " - " << d << "*(" << k << "-1) - 1) / " << s << ") + 1";
  } else {
    text << name << "_out = (" << name << "_in - 1)*stride - " << pad_rule
         << " + dilation*(k-1) + output_padding + 1 = (" << in << " - 1)*" << s << " - " << pad_value << " + " << d
         << "*(" << k << "-1) + " << output_padding << " + 1";
  }
  text << " = " << out;
  return text.str();
}

ExplainGrid grid(const Dims& size) {
  ExplainGrid g;
  g.rows = size[kRowAxis];
  g.cols = size[kColAxis];
  return g;
}

// Kernel values (given, or 1..k), and input and output values when an input is given.
void fill_values(const ExplainRequest& request, const Shape& input_size, const Shape& kernel_size, Explanation& e) {
  if (request.weight) {
    e.kernel.values = to_double(*request.weight);
  } else {
    e.kernel.values.resize(static_cast<std::size_t>(e.kernel.cells()));
    for (std::size_t t = 0; t < e.kernel.values.size(); ++t) e.kernel.values[t] = static_cast<double>(t + 1);
  }
  if (!request.input) return;
  e.input.values = to_double(*request.input);
  // The values `tconv run` would write: the same call on the same arrays.
  const Tensor x = one_channel(*request.input, input_size);
  const Tensor w = request.weight ? one_channel(*request.weight, kernel_size)
                                  : detail::from_double(e.kernel.values, x.dtype(), one_channel_shape(kernel_size));
  const Tensor y = request.kind == ConvKind::conv ? conv(x.view(), w.view(), nullptr, request.params)
                                                  : conv_transpose(x.view(), w.view(), nullptr, request.params);
  e.output.values = to_double(y.view());
}

// The flat input cell asked for, or the centre one.
std::int64_t highlighted_cell(const std::optional<std::vector<std::int64_t>>& asked, const Shape& input_size,
                              const ExplainGrid& input) {
  if (!asked) return (input.rows - 1) / 2 * input.cols + (input.cols - 1) / 2;
  const auto& cell = *asked;
  bool inside = cell.size() == input_size.size();
  for (std::size_t d = 0; inside && d < cell.size(); ++d) inside = cell[d] >= 0 && cell[d] < input_size[d];
  if (!inside) {
    refuse("highlight (" + shape_to_string(cell, ",") + ") must be an input cell: " +
           std::to_string(input_size.size()) + " indices within " + shape_to_string(input_size));
  }
  return cell.size() == 1 ? cell[0] : cell[0] * input.cols + cell[1];
}

// Every (input cell, kernel tap) pair: the matrix, overlap and touched cells
// from those that land in the output, the highlighted cell's window from those
// that land in the output or its cropped frame.
void link_cells(const Axis& row_axis, const Axis& col_axis, Explanation& e) {
  e.matrix_rows = e.output.cells();
  e.matrix_cols = e.input.cells();
  e.matrix.assign(static_cast<std::size_t>(e.matrix_rows * e.matrix_cols), 0.0);
  e.overlap.assign(static_cast<std::size_t>(e.output.cells()), 0);
  e.touched.resize(static_cast<std::size_t>(e.input.cells()));
  const Margin& rows_drawn = e.output.row_frame;
  const Margin& cols_drawn = e.output.col_frame;
  for (std::int64_t r = 0; r < e.input.rows; ++r) {
    for (std::int64_t c = 0; c < e.input.cols; ++c) {
      const std::int64_t in = r * e.input.cols + c;
      auto& touched = e.touched[static_cast<std::size_t>(in)];
      for (std::int64_t tr = 0; tr < e.kernel.rows; ++tr) {
        for (std::int64_t tc = 0; tc < e.kernel.cols; ++tc) {
          const auto out_r = row_axis.output_of(r, tr);
          const auto out_c = col_axis.output_of(c, tc);
          if (!out_r || !out_c) continue;
          const std::int64_t tap = tr * e.kernel.cols + tc;
          if (in == e.highlighted && *out_r >= -rows_drawn.before && *out_r < e.output.rows + rows_drawn.after &&
              *out_c >= -cols_drawn.before && *out_c < e.output.cols + cols_drawn.after) {
            e.window.push_back({*out_r, *out_c, tap});
          }
          if (!e.output.contains(*out_r, *out_c)) continue;
          const std::int64_t out = *out_r * e.output.cols + *out_c;
          e.matrix[static_cast<std::size_t>(out * e.matrix_cols + in)] += e.kernel.values[static_cast<std::size_t>(tap)];
          ++e.overlap[static_cast<std::size_t>(out)];
          touched.push_back(out);
        }
      }
      std::sort(touched.begin(), touched.end());
    }
  }
}

}  // namespace

Explanation explain(const ExplainRequest& request) {
  const Shape input_size = size_of(request.input_size, request.input, "input", "input_size");
  const Shape kernel_size = size_of(request.kernel_size, request.weight, "weight", "kernel_size");
  const int rank = static_cast<int>(input_size.size());
  if (rank == 3 || kernel_size.size() == 3) {
    refuse("explain draws 1-D and 2-D convolutions; input " + shape_to_string(input_size) + " with kernel " +
           shape_to_string(kernel_size) + " is 3-D");
  }
  if (rank > 3) refuse("input_size " + shape_to_string(input_size) + " must have 1 or 2 values");
  if (kernel_size.size() != input_size.size()) {
    refuse("kernel_size " + shape_to_string(kernel_size) + " has " + std::to_string(kernel_size.size()) +
           " values but input_size " + shape_to_string(input_size) + " has " + std::to_string(rank));
  }
  if (request.params.layout != Layout::channels_first) {
    refuse("layout must be channels_first: explain draws one channel, whose pictures do not depend on the layout");
  }
  if (request.params.groups != 1) {
    refuse("groups (" + std::to_string(request.params.groups) + ") must be 1: explain draws one channel in and one out");
  }
  const Geometry g = detail::resolve_geometry(request.kind, one_channel_shape(input_size),
                                              one_channel_shape(kernel_size), std::nullopt, request.params);
  // The matrix is dense: a picture of more cells than this would not be read anyway.
  constexpr std::int64_t kMostMatrixCells = std::int64_t{1} << 22;
  if (g.small_spatial() * g.big_spatial() > kMostMatrixCells) {
    refuse("explain draws small convolutions: input " + shape_to_string(input_size) + " gives a matrix of " +
           std::to_string(g.small_spatial()) + " x " + std::to_string(g.big_spatial()) + " cells, more than " +
           std::to_string(kMostMatrixCells) + "; use a smaller input_size");
  }

  Explanation e;
  e.kind = request.kind;
  e.spatial_rank = rank;
  e.input = grid(g.input_size());
  e.output = grid(g.output_size());
  e.kernel = grid(g.kernel);

  const Dims pad_end = request.params.padding_end ? per_dimension(*request.params.padding_end, rank, 0)
                                                  : g.pad_begin;
  const Dims output_padding = per_dimension(request.params.output_padding, rank, 0);
  const Dims in_size = g.input_size(), out_size = g.output_size();
  const char* names[] = {"H", "W"};
  for (int axis = kMaxSpatial - rank; axis < kMaxSpatial; ++axis) {
    const std::string name = rank == 1 ? "L" : names[axis - kRowAxis];
    e.size_formulas.push_back(size_formula(g.kind, name, in_size[axis], g.kernel[axis], g.stride[axis],
                                           g.pad_begin[axis], pad_end[axis], g.dilation[axis],
                                           output_padding[axis], out_size[axis]));
  }
  ExplainGrid& framed = g.kind == ConvKind::conv ? e.input : e.output;
  auto frame = [&](int axis) {
    // A transposed convolution's output_padding is taken from the cropped end first.
    const std::int64_t after = g.kind == ConvKind::conv ? pad_end[axis] : std::max<std::int64_t>(0, pad_end[axis] - output_padding[axis]);
    return Margin{g.pad_begin[axis], after};
  };
  framed.row_frame = frame(kRowAxis);
  framed.col_frame = frame(kColAxis);
  e.output_padding_rows = output_padding[kRowAxis];
  e.output_padding_cols = output_padding[kColAxis];
  e.parameters = "stride " + per_dimension_text(g.stride, rank) + ", padding " + per_dimension_text(g.pad_begin, rank) +
                 (request.params.padding_end ? " (begin), " + per_dimension_text(pad_end, rank) + " (end)" : "") +
                 ", dilation " + per_dimension_text(g.dilation, rank) +
                 (g.kind == ConvKind::conv_transpose ? ", output_padding " + per_dimension_text(output_padding, rank)
                                                     : "");

  fill_values(request, input_size, kernel_size, e);
  e.highlighted = highlighted_cell(request.highlight, input_size, e.input);
  link_cells(axis_of(g, kRowAxis), axis_of(g, kColAxis), e);
  return e;
}

}  // namespace tconv
