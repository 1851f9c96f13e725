// Parameter checking: from what the user gave to a Geometry, or a precise Error.
#pragma once

#include <optional>

#include "kernels/conv_geometry.hpp"
#include "tconv/params.hpp"

namespace tconv::detail {

// Checks everything PyTorch checks (and sizes for overflow) and returns the
// geometry, or throws Error naming the parameter, its value and the rule.
Geometry resolve_geometry(ConvKind kind, const Shape& input_shape, const Shape& weight_shape,
                          const std::optional<Shape>& bias_shape, const ConvParams& params);

// Checks the parts that do not depend on the input (for Operator::create).
Geometry resolve_weight_geometry(ConvKind kind, const Shape& weight_shape,
                                 const std::optional<Shape>& bias_shape, const ConvParams& params);

}  // namespace tconv::detail
