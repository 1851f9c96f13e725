// `tconv explain`: a small 1-D or 2-D (transposed) convolution drawn for a
// person, as terminal text or as one SVG file.
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>

#include "cli.hpp"
#include "io/npy.hpp"
#include "tconv/explain.hpp"

namespace tconv::cli {
namespace {

// Terminal width for the matrix: $COLUMNS when the shell exports it.
int terminal_width() {
  const char* columns = std::getenv("COLUMNS");
  const int width = columns ? std::atoi(columns) : 0;
  return width > 0 ? width : 80;
}

std::optional<Tensor> optional_npy(const Arguments& args, const std::string& flag) {
  auto it = args.flags.find(flag);
  if (it == args.flags.end()) return std::nullopt;
  return io::read_npy(it->second);
}

}  // namespace

int run_explain(int argc, char** argv) {
  const Arguments args = parse(argc, argv,
                               {"--input-shape", "--kernel-shape", "--stride", "--padding", "--output-padding",
                                "--dilation", "--input", "--weight", "--highlight", "--svg"});
  ExplainRequest request;
  request.kind = args.kind;
  request.params = params_from(args);
  if (args.flags.count("--input-shape")) request.input_size = parse_ints("--input-shape", args.flags.at("--input-shape"));
  if (args.flags.count("--kernel-shape")) request.kernel_size = parse_ints("--kernel-shape", args.flags.at("--kernel-shape"));
  if (args.flags.count("--highlight")) request.highlight = parse_ints("--highlight", args.flags.at("--highlight"));
  const std::optional<Tensor> input = optional_npy(args, "--input");
  const std::optional<Tensor> weight = optional_npy(args, "--weight");
  const std::optional<TensorView> input_view = input ? std::optional(input->view()) : std::nullopt;
  const std::optional<TensorView> weight_view = weight ? std::optional(weight->view()) : std::nullopt;
  request.input = input_view ? &*input_view : nullptr;
  request.weight = weight_view ? &*weight_view : nullptr;

  const Explanation explanation = explain(request);
  if (!args.flags.count("--svg")) {
    std::cout << explanation_text(explanation, terminal_width());
    return 0;
  }
  const std::string& path = args.flags.at("--svg");
  std::ofstream file(path, std::ios::binary);
  file << explanation_svg(explanation);
  if (!file.flush()) throw Error(ErrorKind::io, "--svg: could not write '" + path + "'");
  std::cout << "wrote " << path << "\n";
  return 0;
}

}  // namespace tconv::cli
