// Shared pieces of the tconv command-line tool.
#pragma once

#include <string>
#include <vector>

namespace tconv::cli {

// `tconv demo`: the walk-through of convolution, its matrix and its transpose.
int run_demo();

}  // namespace tconv::cli
