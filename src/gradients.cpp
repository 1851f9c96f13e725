// Backward passes: validate, then compute each gradient from the shared index
// relation (kernels/conv_geometry.hpp). Input gradients run through the other
// operator's forward Operator, so they use whichever fast kernel it chooses;
// weight gradients run through a weight-gradient family (kernels/weight_grad.hpp).
#include "tconv/gradients.hpp"

#include <optional>
#include <string>

#include "kernels/weight_grad.hpp"
#include "validate.hpp"

namespace tconv {
namespace {

using detail::Geometry;
using detail::kMaxSpatial;

void check_same_dtype(const char* what, DType got, DType expected) {
  if (got != expected) {
    throw Error(ErrorKind::wrong_type, std::string(what) + " is " + dtype_name(got) + " but the weight is " +
                                           dtype_name(expected) + "; all operands must share one dtype");
  }
}

// The output_padding that makes conv_transpose(conv's output size) give back
// the conv input's size. It is (input + pads - span - 1) mod stride, the rows
// the forward's floor left unread, so it always obeys output_padding < stride.
SpatialParam rows_left_unread(const Geometry& g, const ConvParams& params) {
  std::vector<std::int64_t> output_padding;
  for (int d = 0; d < g.spatial_rank; ++d) {
    const int dim = kMaxSpatial - g.spatial_rank + d;
    const std::int64_t pads = params.padding.at(d) + (params.padding_end ? params.padding_end->at(d) : params.padding.at(d));
    const std::int64_t reached = (g.small_size[dim] - 1) * g.stride[dim] - pads +
                                 g.dilation[dim] * (g.kernel[dim] - 1) + 1;
    output_padding.push_back(g.big_size[dim] - reached);
  }
  return SpatialParam(std::move(output_padding));
}

// The input gradient is the other operator applied to grad_output with the same weight.
Tensor input_gradient(const Geometry& g, const TensorView& grad_output, const TensorView& weight,
                      const ConvParams& params) {
  ConvParams adjoint = params;
  ConvKind other = ConvKind::conv;
  if (g.kind == ConvKind::conv) {
    other = ConvKind::conv_transpose;
    adjoint.output_padding = rows_left_unread(g, params);
  } else {
    adjoint.output_padding = 0;
  }
  Tensor full = Operator::create(other, weight, nullptr, adjoint).run(grad_output);
  const Shape input_shape = g.input_shape();
  if (full.shape() == input_shape) return full;
  // A conv_transpose whose output_padding reaches a whole stride (possible
  // when dilation > stride) has big positions no small one feeds through a
  // tap from the front; the conv over them yields floor(output_padding /
  // stride) extra small positions past the input's end, which are dropped.
  return Tensor::copy_of(TensorView(full.data(), full.dtype(), input_shape, full.view().effective_strides()));
}

const detail::WeightGradFamily& choose_weight_grad_family(const Geometry& g, DType dtype) {
  std::string passed_over;
  for (const auto& family : detail::weight_grad_families()) {
    const std::string why_not =
        family.cpu_supports() ? family.rejects(g, dtype) : "this CPU lacks " + std::string(family.isa);
    if (why_not.empty()) return family;
    passed_over += std::string(passed_over.empty() ? "" : "; ") + family.name + ": " + why_not;
  }
  throw Error(ErrorKind::internal, "no weight-gradient family accepts this problem: " + passed_over);
}

// A contiguous view's data, or a contiguous copy kept alive in `storage`.
const void* contiguous_data(const TensorView& view, std::optional<Tensor>& storage) {
  if (view.is_contiguous()) return view.data;
  storage = Tensor::copy_of(view);
  return storage->data();
}

Tensor weight_gradient(const Geometry& g, const TensorView& small, const TensorView& big, const Shape& weight_shape,
                       DType dtype) {
  Tensor dw(dtype, weight_shape);
  std::optional<Tensor> small_copy, big_copy;
  const void* small_data = contiguous_data(small, small_copy);
  const void* big_data = contiguous_data(big, big_copy);
  choose_weight_grad_family(g, dtype).run(g, dtype, small_data, big_data, dw.data(), num_threads());
  return dw;
}

template <typename T>
void sum_per_channel(const Geometry& g, const T* grad_output, T* bias_grad) {
  const std::int64_t channels = g.output_channels();
  const std::int64_t plane = g.kind == ConvKind::conv ? g.small_spatial() : g.big_spatial();
  for (std::int64_t c = 0; c < channels; ++c) {
    double sum = 0;
    for (std::int64_t n = 0; n < g.batch; ++n) {
      const T* values = grad_output + (n * channels + c) * plane;
      for (std::int64_t k = 0; k < plane; ++k) sum += values[k];
    }
    bias_grad[c] = static_cast<T>(sum);
  }
}

Tensor bias_gradient(const Geometry& g, const TensorView& grad_output, DType dtype) {
  Tensor db(dtype, {g.output_channels()});
  std::optional<Tensor> copy;
  const void* data = contiguous_data(grad_output, copy);
  if (dtype == DType::f32) {
    sum_per_channel(g, static_cast<const float*>(data), db.data_as<float>());
  } else {
    sum_per_channel(g, static_cast<const double*>(data), db.data_as<double>());
  }
  return db;
}

Gradients backward(ConvKind kind, const TensorView& grad_output, const TensorView& input, const TensorView& weight,
                   const ConvParams& params, bool has_bias) {
  check_same_dtype("input", input.dtype, weight.dtype);
  check_same_dtype("grad_output", grad_output.dtype, weight.dtype);
  const Geometry g = detail::resolve_geometry(kind, input.shape, weight.shape, std::nullopt, params);
  const Shape expected = g.output_shape();
  if (grad_output.shape != expected) {
    throw Error(ErrorKind::invalid_argument,
                "grad_output has shape " + shape_to_string(grad_output.shape) + " but the forward " +
                    conv_kind_name(kind) + " of input " + shape_to_string(input.shape) + " produces " +
                    shape_to_string(expected) + "; grad_output must have exactly the forward output's shape");
  }
  const bool conv = kind == ConvKind::conv;
  Gradients grads;
  grads.input = input_gradient(g, grad_output, weight, params);
  // The reductions read channels-first tensors: channels-last ones are copied
  // through a permuted view (the input gradient above reads them in place).
  Geometry channels_first = g;
  channels_first.layout = Layout::channels_first;
  const TensorView grad_output_cf = detail::channels_first_view(grad_output, g);
  const TensorView input_cf = detail::channels_first_view(input, g);
  grads.weight = weight_gradient(channels_first, conv ? grad_output_cf : input_cf, conv ? input_cf : grad_output_cf,
                                 weight.shape, weight.dtype);
  if (has_bias) grads.bias = bias_gradient(channels_first, grad_output_cf, weight.dtype);
  return grads;
}

}  // namespace

Gradients conv_backward(const TensorView& grad_output, const TensorView& input, const TensorView& weight,
                        const ConvParams& params, bool has_bias) {
  return backward(ConvKind::conv, grad_output, input, weight, params, has_bias);
}

Gradients conv_transpose_backward(const TensorView& grad_output, const TensorView& input, const TensorView& weight,
                                  const ConvParams& params, bool has_bias) {
  return backward(ConvKind::conv_transpose, grad_output, input, weight, params, has_bias);
}

}  // namespace tconv
