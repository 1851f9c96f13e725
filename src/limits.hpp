// The memory limit (tconv::max_bytes) and checked size arithmetic.
#pragma once

#include <cstdint>
#include <string>

#include "tconv/error.hpp"
#include "tconv/tensor.hpp"

namespace tconv::detail {

// The bytes of a tensor of `shape` with elements of `element_size` bytes, or
// Error(kind) "<what> of shape [..] ..." when a dimension is negative or the
// product overflows 64 bits.
std::uint64_t checked_bytes(const Shape& shape, std::size_t element_size, const std::string& what, ErrorKind kind);

// Throws Error(kind) naming `what`, `bytes` and the limit when `bytes` exceeds max_bytes().
void check_memory(const std::string& what, std::uint64_t bytes, ErrorKind kind);

}  // namespace tconv::detail
