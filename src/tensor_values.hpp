// Tensor elements as double, for the code that computes in double (the
// reference methods, explain) whatever the caller's dtype.
#pragma once

#include <vector>

#include "tconv/tensor.hpp"

namespace tconv::detail {

// The elements of any (strided) view, in C order.
std::vector<double> to_double(const TensorView& view);
// A C-contiguous tensor of `shape` holding `values` rounded to `dtype`.
Tensor from_double(const std::vector<double>& values, DType dtype, const Shape& shape);

}  // namespace tconv::detail
