// Shared pieces of the tconv command-line tool.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tconv/tconv.hpp"

namespace tconv::cli {

// A command line `tconv COMMAND conv|conv_transpose --flag value ...`.
struct Arguments {
  ConvKind kind;
  std::map<std::string, std::string> flags;
};
// Throws Error naming the flag for unknown, repeated or valueless flags.
Arguments parse(int argc, char** argv, const std::vector<std::string>& allowed);
std::vector<std::int64_t> parse_ints(const std::string& flag, const std::string& text);
// --stride, --padding, --output-padding, --dilation and --groups, where given.
ConvParams params_from(const Arguments& args);

// `tconv explain`: one small convolution drawn as text or SVG (tools/explain.cpp).
int run_explain(int argc, char** argv);

// `tconv demo`: the walk-through of convolution, its matrix and its transpose.
int run_demo();

}  // namespace tconv::cli
