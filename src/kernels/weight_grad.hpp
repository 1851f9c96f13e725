// The contract of weight-gradient kernel families.
//
// A convolution and its transpose share one index relation (conv_geometry.hpp):
// big position o and small position i are linked by tap t when
//     o = i * stride - pad_begin + t * dilation.
// Because both operators multiply the same pairs (small element, big element)
// by the same weight element, the gradient of the loss with respect to the
// weight is the same reduction for both:
//     dw[cs, cb', t] = sum_{n, i : o(i, t) inside big} small[n, cs, i] * big[n, cb, o(i, t)]
// with cb = group(cs) * big_per_group + cb'. What "small" and "big" hold differs:
//     conv:            small = grad_output, big = input
//     conv_transpose:  small = input,       big = grad_output
// Layout: C-contiguous tensors in the geometry's normalized shapes
//     small [N, small_channels, small_size]   (3 spatial dims, leading ones 1)
//     big   [N, big_channels,   big_size]
//     dw    [small_channels, big_channels / groups, kernel taps]  (the weight's layout)
// dw is fully overwritten (zeros where no pair exists, also when N is 0).
// run() must give the same bits for any thread count.
#pragma once

#include <string>
#include <vector>

#include "kernels/conv_geometry.hpp"

namespace tconv::detail {

struct WeightGradFamily {
  const char* name;
  const char* isa;  // the instruction set it needs, for messages
  bool (*cpu_supports)();
  // Empty when the family handles this problem, otherwise why it does not.
  std::string (*rejects)(const Geometry& g, DType dtype);
  void (*run)(const Geometry& g, DType dtype, const void* small, const void* big, void* dw, int threads);
};

// Calls typed(small, big, dw) with the pointers cast to the dtype's element type.
template <typename Typed>
void with_element_type(DType dtype, const void* small, const void* big, void* dw, Typed&& typed) {
  if (dtype == DType::f32) {
    typed(static_cast<const float*>(small), static_cast<const float*>(big), static_cast<float*>(dw));
  } else {
    typed(static_cast<const double*>(small), static_cast<const double*>(big), static_cast<double*>(dw));
  }
}

// Every family compiled in (weight_grad_families.def), highest priority first.
const std::vector<WeightGradFamily>& weight_grad_families();

// The reference twin: the reduction above written as plain loops over the
// relation, every sum formed in double. Same layouts and contract as run().
void weight_grad_reference(const Geometry& g, DType dtype, const void* small, const void* big, void* dw);

}  // namespace tconv::detail
