// _tconv.explain: the explanation model as plain Python values and NumPy
// arrays; tconv/explain.py wraps them in the Explanation class.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "tconv/explain.hpp"

namespace py = pybind11;

namespace {

// tconv/explain.py passes C-contiguous float32 or float64 arrays only.
tconv::TensorView contiguous_view(const py::array& a) {
  const bool single = py::isinstance<py::array_t<float>>(a);
  return tconv::TensorView(a.data(), single ? tconv::DType::f32 : tconv::DType::f64,
                           tconv::Shape(a.shape(), a.shape() + a.ndim()));
}

template <typename T>
py::array_t<T> numpy_of(const std::vector<T>& values, std::vector<py::ssize_t> shape) {
  py::array_t<T> array(shape);
  std::copy(values.begin(), values.end(), array.mutable_data());
  return array;
}

std::vector<py::ssize_t> grid_shape(const tconv::Explanation& e, const tconv::ExplainGrid& grid) {
  if (e.spatial_rank == 1) return {static_cast<py::ssize_t>(grid.cols)};
  return {static_cast<py::ssize_t>(grid.rows), static_cast<py::ssize_t>(grid.cols)};
}

py::object values_of(const tconv::Explanation& e, const tconv::ExplainGrid& grid) {
  if (grid.values.empty()) return py::none();
  return numpy_of(grid.values, grid_shape(e, grid));
}

}  // namespace

void bind_explain(py::module_& m) {
  m.def(
      "explain",
      [](const std::string& op, const std::vector<std::int64_t>& input_size,
         const std::vector<std::int64_t>& kernel_size, const tconv::ConvParams& params,
         const std::optional<py::array>& input, const std::optional<py::array>& weight,
         const std::optional<std::vector<std::int64_t>>& highlight) {
        tconv::ExplainRequest request;
        if (op == "conv") request.kind = tconv::ConvKind::conv;
        else if (op == "conv_transpose") request.kind = tconv::ConvKind::conv_transpose;
        else throw tconv::Error(tconv::ErrorKind::invalid_argument, "op must be 'conv' or 'conv_transpose', got '" + op + "'");
        request.input_size = input_size;
        request.kernel_size = kernel_size;
        request.params = params;
        request.highlight = highlight;
        std::optional<tconv::TensorView> input_view, weight_view;
        if (input) request.input = &input_view.emplace(contiguous_view(*input));
        if (weight) request.weight = &weight_view.emplace(contiguous_view(*weight));

        const tconv::Explanation e = tconv::explain(request);
        py::dict result;
        result["matrix"] = numpy_of(e.matrix, {static_cast<py::ssize_t>(e.matrix_rows),
                                               static_cast<py::ssize_t>(e.matrix_cols)});
        result["overlap"] = numpy_of(e.overlap, grid_shape(e, e.output));
        result["input"] = values_of(e, e.input);
        result["kernel"] = values_of(e, e.kernel);
        result["output"] = values_of(e, e.output);
        result["touched"] = e.touched;
        result["highlighted"] = e.highlighted;
        result["size_formulas"] = e.size_formulas;
        result["text"] = tconv::explanation_text(e, 100);
        result["svg"] = tconv::explanation_svg(e);
        return result;
      },
      py::arg("op"), py::arg("input_size"), py::arg("kernel_size"), py::arg("params"), py::arg("input"),
      py::arg("weight"), py::arg("highlight"));
}
