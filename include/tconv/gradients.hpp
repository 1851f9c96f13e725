// Gradients of conv and conv_transpose (tconv.hpp) with respect to their
// input, weight and bias, for every parameter the forward calls take.
//
// Given grad_output = dL/d(output) of the forward call with the same input,
// weight and params, these return dL/d(input), dL/d(weight) and, when the
// forward call had a bias, dL/d(bias), as torch.autograd computes them:
//   conv:            grad_input = conv_transpose(grad_output, weight) sized like the input
//   conv_transpose:  grad_input = conv(grad_output, weight) sized like the input
//   grad_weight:     the reduction of kernels/weight_grad.hpp, one for both operators
//   grad_bias[c]:    the sum of grad_output[:, c, ...] over batch and space
// The bias values themselves do not enter any gradient, so only whether there
// was one is asked. Results have the weight's dtype and are C-contiguous.
#pragma once

#include <optional>

#include "tconv/tconv.hpp"

namespace tconv {

struct Gradients {
  Tensor input;                // the input's shape
  Tensor weight;               // the weight's shape
  std::optional<Tensor> bias;  // [output channels], present when asked for
};

// grad_output must have exactly the shape the forward call returns for this
// input (batch dimension included or left out as in the input).
Gradients conv_backward(const TensorView& grad_output, const TensorView& input, const TensorView& weight,
                        const ConvParams& params = {}, bool has_bias = true);
Gradients conv_transpose_backward(const TensorView& grad_output, const TensorView& input, const TensorView& weight,
                                  const ConvParams& params = {}, bool has_bias = true);

}  // namespace tconv
