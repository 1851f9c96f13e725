// NumPy .npy files (float32 and float64) for the command-line tool.
#pragma once

#include <istream>
#include <string>

#include "tconv/tensor.hpp"

namespace tconv::io {

// Reads a .npy file of float32 or float64 (either byte order, C or Fortran
// order, format version 1, 2 or 3, any number of dimensions including 0-d
// and empty arrays) into a C-ordered tensor in native byte order; Fortran-
// ordered data is converted. Anything else (bad magic, truncated or trailing
// data, a malformed header, another dtype, object or structured arrays, data
// beyond tconv::max_bytes()) throws Error(ErrorKind::io) naming the file and
// the problem, before the data is allocated.
Tensor read_npy(const std::string& path);
// The same from a stream; `name` stands for the file in messages.
Tensor read_npy(std::istream& in, const std::string& name);

// Writes a C-ordered little-endian .npy (version 1.0) so that a failure, or
// the process killed at any moment, leaves no partial file: the data goes to
// an unnamed file (O_TMPFILE) in the path's folder, which is linked to the
// path when complete (through a temporary name renamed over the path when the
// path exists). Where the filesystem has no unnamed files, a named temporary
// file is renamed into place instead (removed on failure, left by a kill).
void write_npy(const std::string& path, const TensorView& tensor);

}  // namespace tconv::io
