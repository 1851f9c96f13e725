// The compiled half of the Python module; tconv/__init__.py normalizes
// arguments (ints or tuples, dtypes, byte order) and calls these.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "tconv/gradients.hpp"
#include "tconv/onnx.hpp"
#include "tconv/tconv.hpp"

namespace py = pybind11;

namespace {

using tconv::ConvKind;
using tconv::DType;

tconv::ConvKind kind_from(const std::string& name) {
  if (name == "conv") return ConvKind::conv;
  if (name == "conv_transpose") return ConvKind::conv_transpose;
  throw tconv::Error(tconv::ErrorKind::invalid_argument, "op must be 'conv' or 'conv_transpose', got '" + name + "'");
}

tconv::TensorView view_of(const py::array& a, const char* name) {
  DType dtype;
  if (py::isinstance<py::array_t<float>>(a)) dtype = DType::f32;
  else if (py::isinstance<py::array_t<double>>(a)) dtype = DType::f64;
  else throw tconv::Error(tconv::ErrorKind::wrong_type, std::string(name) + " must be float32 or float64");
  tconv::Shape shape(a.shape(), a.shape() + a.ndim());
  tconv::Shape strides(static_cast<std::size_t>(a.ndim()));
  const auto itemsize = static_cast<py::ssize_t>(a.itemsize());
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    if (a.strides(d) % itemsize != 0) {
      throw tconv::Error(tconv::ErrorKind::wrong_type, std::string(name) + " has a stride that is not a whole number of elements");
    }
    strides[static_cast<std::size_t>(d)] = a.strides(d) / itemsize;
  }
  return tconv::TensorView(a.data(), dtype, std::move(shape), std::move(strides));
}

py::array to_numpy(tconv::Tensor tensor) {
  auto* owned = new tconv::Tensor(std::move(tensor));
  py::capsule free_when_done(owned, [](void* p) { delete static_cast<tconv::Tensor*>(p); });
  const std::size_t item = tconv::dtype_size(owned->dtype());
  std::vector<py::ssize_t> shape(owned->shape().begin(), owned->shape().end());
  std::vector<py::ssize_t> strides(shape.size());
  py::ssize_t step = static_cast<py::ssize_t>(item);
  for (std::size_t d = shape.size(); d-- > 0;) {
    strides[d] = step;
    step *= shape[d];
  }
  py::dtype dt = owned->dtype() == DType::f32 ? py::dtype::of<float>() : py::dtype::of<double>();
  return py::array(dt, shape, strides, owned->data(), free_when_done);
}

tconv::ConvParams params_from(const std::vector<std::int64_t>& stride, const std::vector<std::int64_t>& padding,
                              const std::vector<std::int64_t>& output_padding,
                              const std::vector<std::int64_t>& dilation, std::int64_t groups,
                              const std::optional<std::vector<std::int64_t>>& padding_end, bool channels_last) {
  tconv::ConvParams p;
  p.layout = channels_last ? tconv::Layout::channels_last : tconv::Layout::channels_first;
  p.stride = tconv::SpatialParam(stride);
  p.padding = tconv::SpatialParam(padding);
  p.output_padding = tconv::SpatialParam(output_padding);
  p.dilation = tconv::SpatialParam(dilation);
  p.groups = groups;
  if (padding_end) p.padding_end = tconv::SpatialParam(*padding_end);
  return p;
}

// The arrays of one call as views; they stay owned by Python.
struct Operands {
  tconv::TensorView weight;
  std::optional<tconv::TensorView> bias;
  const tconv::TensorView* bias_or_null() const { return bias ? &*bias : nullptr; }
};

Operands operands_of(const py::array& weight, const std::optional<py::array>& bias) {
  Operands operands{view_of(weight, "weight"), std::nullopt};
  if (bias) operands.bias = view_of(*bias, "bias");
  return operands;
}

// Runs a computation without holding the GIL and hands its result to NumPy.
template <typename Compute>
py::array without_gil(Compute&& compute) {
  tconv::Tensor out;
  {
    py::gil_scoped_release release;
    out = compute();
  }
  return to_numpy(std::move(out));
}

// A prepared operator that keeps its weights packed between calls.
class PyOperator {
 public:
  PyOperator(const std::string& op, const py::array& weight, const std::optional<py::array>& bias,
             const tconv::ConvParams& params, const std::string& implementation)
      : op_(make(op, weight, bias, params, implementation)) {}

  py::array call(const py::array& input) const {
    const tconv::TensorView x = view_of(input, "input");
    return without_gil([&] { return op_.run(x); });
  }
  const std::string& implementation() const { return op_.implementation(); }
  const std::string& reason() const { return op_.reason(); }
  std::size_t workspace_bytes(const std::vector<std::int64_t>& shape) const { return op_.plan(shape).workspace_bytes; }
  std::string strategy(const std::vector<std::int64_t>& shape) const { return op_.plan(shape).strategy; }
  std::vector<std::int64_t> output_shape(const std::vector<std::int64_t>& shape) const {
    return op_.plan(shape).output_shape;
  }

 private:
  static tconv::Operator make(const std::string& op, const py::array& weight, const std::optional<py::array>& bias,
                              const tconv::ConvParams& params, const std::string& implementation) {
    const Operands operands = operands_of(weight, bias);
    tconv::OperatorOptions options;
    options.implementation = implementation;
    return tconv::Operator::create(kind_from(op), operands.weight, operands.bias_or_null(), params, options);
  }
  tconv::Operator op_;
};

}  // namespace

void bind_explain(py::module_& m);  // explain_bindings.cpp

PYBIND11_MODULE(_tconv, m) {
  m.doc() = "tconv compiled core";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const tconv::Error& e) {
      if (e.kind() == tconv::ErrorKind::wrong_type) PyErr_SetString(PyExc_TypeError, e.what());
      else if (e.kind() == tconv::ErrorKind::internal) PyErr_SetString(PyExc_RuntimeError, e.what());
      else PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  py::class_<tconv::ConvParams>(m, "ConvParams");
  m.def("make_params", &params_from, py::arg("stride"), py::arg("padding"), py::arg("output_padding"),
        py::arg("dilation"), py::arg("groups"), py::arg("padding_end") = py::none(), py::arg("channels_last") = false);

  m.def(
      "compute",
      [](const std::string& op, const py::array& input, const py::array& weight, const std::optional<py::array>& bias,
         const tconv::ConvParams& params) {
        const tconv::TensorView x = view_of(input, "input");
        const Operands operands = operands_of(weight, bias);
        const ConvKind kind = kind_from(op);
        return without_gil([&] {
          return kind == ConvKind::conv ? tconv::conv(x, operands.weight, operands.bias_or_null(), params)
                                        : tconv::conv_transpose(x, operands.weight, operands.bias_or_null(), params);
        });
      },
      py::arg("op"), py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("params"));

  m.def(
      "reference",
      [](const std::string& method, const std::string& op, const py::array& input, const py::array& weight,
         const std::optional<py::array>& bias, const tconv::ConvParams& params) {
        tconv::reference::Method which;
        if (method == "gather") which = tconv::reference::Method::gather;
        else if (method == "matrix") which = tconv::reference::Method::matrix;
        else if (method == "scatter") which = tconv::reference::Method::scatter;
        else throw tconv::Error(tconv::ErrorKind::invalid_argument,
                                "method must be 'gather', 'matrix' or 'scatter', got '" + method + "'");
        const tconv::TensorView x = view_of(input, "input");
        const Operands operands = operands_of(weight, bias);
        const ConvKind kind = kind_from(op);
        return without_gil([&] {
          return tconv::reference::compute(which, kind, x, operands.weight, operands.bias_or_null(), params);
        });
      },
      py::arg("method"), py::arg("op"), py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("params"));

  m.def(
      "conv_matrix",
      [](const std::vector<std::int64_t>& input_shape, const py::array& weight, const tconv::ConvParams& params) {
        return to_numpy(tconv::conv_matrix(input_shape, view_of(weight, "weight"), params));
      },
      py::arg("input_shape"), py::arg("weight"), py::arg("params"));

  m.def(
      "output_shape",
      [](const std::string& op, const std::vector<std::int64_t>& input_shape,
         const std::vector<std::int64_t>& weight_shape, const tconv::ConvParams& params) {
        return tconv::output_shape(kind_from(op), input_shape, weight_shape, params);
      },
      py::arg("op"), py::arg("input_shape"), py::arg("weight_shape"), py::arg("params"));

  py::class_<PyOperator>(m, "Operator")
      .def(py::init<const std::string&, const py::array&, const std::optional<py::array>&, const tconv::ConvParams&,
                    const std::string&>(),
           py::arg("op"), py::arg("weight"), py::arg("bias"), py::arg("params"), py::arg("implementation"))
      .def("__call__", &PyOperator::call, py::arg("input"))
      .def_property_readonly("implementation", &PyOperator::implementation)
      .def_property_readonly("reason", &PyOperator::reason)
      .def("workspace_bytes", &PyOperator::workspace_bytes, py::arg("input_shape"))
      .def("strategy", &PyOperator::strategy, py::arg("input_shape"))
      .def("output_shape", &PyOperator::output_shape, py::arg("input_shape"));

  m.def(
      "backward",
      [](const std::string& op, const py::array& grad_output, const py::array& input, const py::array& weight,
         const tconv::ConvParams& params, bool has_bias) {
        const tconv::TensorView dy = view_of(grad_output, "grad_output");
        const tconv::TensorView x = view_of(input, "input");
        const tconv::TensorView w = view_of(weight, "weight");
        tconv::Gradients grads;
        {
          py::gil_scoped_release release;
          grads = kind_from(op) == ConvKind::conv ? tconv::conv_backward(dy, x, w, params, has_bias)
                                                  : tconv::conv_transpose_backward(dy, x, w, params, has_bias);
        }
        py::object bias = grads.bias ? py::object(to_numpy(std::move(*grads.bias))) : py::none();
        return py::make_tuple(to_numpy(std::move(grads.input)), to_numpy(std::move(grads.weight)), bias);
      },
      py::arg("op"), py::arg("grad_output"), py::arg("input"), py::arg("weight"), py::arg("params"),
      py::arg("has_bias"));

  // ONNX's Conv / ConvTranspose (tconv/onnx.hpp); tconv/onnx.py checks the Python types.
  py::class_<tconv::onnx::Attributes>(m, "OnnxAttributes");
  using Ints = std::optional<std::vector<std::int64_t>>;
  m.def(
      "onnx_attributes",
      [](const std::string& auto_pad, const Ints& dilations, std::int64_t group, const Ints& kernel_shape,
         const Ints& output_padding, const Ints& output_shape, const Ints& pads, const Ints& strides) {
        return tconv::onnx::Attributes{tconv::onnx::parse_auto_pad(auto_pad), dilations, group, kernel_shape,
                                       output_padding, output_shape, pads, strides};
      },
      py::arg("auto_pad"), py::arg("dilations"), py::arg("group"), py::arg("kernel_shape"), py::arg("output_padding"),
      py::arg("output_shape"), py::arg("pads"), py::arg("strides"));
  m.def(
      "onnx_compute",
      [](const std::string& op, const py::array& X, const py::array& W, const std::optional<py::array>& B,
         const tconv::onnx::Attributes& attributes) {
        const tconv::TensorView x = view_of(X, "X");
        const tconv::TensorView w = view_of(W, "W");
        std::optional<tconv::TensorView> b;
        if (B) b = view_of(*B, "B");
        const ConvKind kind = kind_from(op);
        return without_gil([&] {
          return kind == ConvKind::conv ? tconv::onnx::conv(x, w, b ? &*b : nullptr, attributes)
                                        : tconv::onnx::conv_transpose(x, w, b ? &*b : nullptr, attributes);
        });
      },
      py::arg("op"), py::arg("X"), py::arg("W"), py::arg("B"), py::arg("attributes"));
  m.def(
      "onnx_output_shape",
      [](const std::string& op, const std::vector<std::int64_t>& input_shape,
         const std::vector<std::int64_t>& weight_shape, const tconv::onnx::Attributes& attributes) {
        return tconv::onnx::resolve(kind_from(op), input_shape, weight_shape, attributes).output_shape;
      },
      py::arg("op"), py::arg("input_shape"), py::arg("weight_shape"), py::arg("attributes"));

  m.def("set_num_threads", &tconv::set_num_threads, py::arg("threads"));
  m.def("num_threads", &tconv::num_threads);
  m.def("available_implementations", &tconv::available_implementations);
  m.def("set_max_bytes", &tconv::set_max_bytes, py::arg("bytes"));
  m.def("max_bytes", &tconv::max_bytes);
  bind_explain(m);
}
