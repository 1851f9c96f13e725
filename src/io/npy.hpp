// NumPy .npy files (float32 and float64) for the command-line tool.
#pragma once

#include <string>

#include "tconv/tensor.hpp"

namespace tconv::io {

// Reads a .npy file of float32 or float64 (either byte order, C or Fortran
// order, format version 1, 2 or 3) into a C-ordered tensor in native byte
// order. Anything else throws Error(ErrorKind::io) naming the file and the problem.
Tensor read_npy(const std::string& path);

// Writes a C-ordered little-endian .npy (version 1.0) through a temporary
// file in the same folder renamed into place, so a failure leaves no file.
void write_npy(const std::string& path, const TensorView& tensor);

}  // namespace tconv::io
