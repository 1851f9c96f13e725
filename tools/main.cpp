// tconv: command-line front end of the library.
//   tconv demo
//   tconv run conv|conv_transpose --input X.npy --weight W.npy [--bias B.npy] [flags] --output Y.npy
//   tconv shape conv|conv_transpose --input-shape 1,3,32,32 --weight-shape 8,3,3,3 [flags]
//   tconv explain conv|conv_transpose --input-shape H,W --kernel-shape KH,KW [flags] [--svg FILE]
// Exit status: 0 success, 2 bad input or usage, 1 internal error; one line on stderr.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <string>

#include "cli.hpp"
#include "io/npy.hpp"
#include "tconv/tconv.hpp"

// The parsing helpers are shared with the other commands' files through cli.hpp.
namespace tconv::cli {

using tconv::ConvKind;
using tconv::Error;
using tconv::ErrorKind;

constexpr int kExitBadInput = 2;
constexpr int kExitInternal = 1;

const char* kUsage =
    "usage:\n"
    "  tconv demo\n"
    "  tconv run conv|conv_transpose --input X.npy --weight W.npy [--bias B.npy] [--stride S] [--padding P]\n"
    "            [--output-padding OP] [--dilation D] [--groups G] --output Y.npy\n"
    "  tconv shape conv|conv_transpose --input-shape 1,3,32,32 --weight-shape 8,3,3,3 [same flags]\n"
    "  tconv explain conv|conv_transpose --input-shape H,W --kernel-shape KH,KW [--stride S] [--padding P]\n"
    "            [--output-padding OP] [--dilation D] [--input X.npy] [--weight W.npy] [--highlight R,C] [--svg FILE]\n"
    "S, P, OP, D: one integer, or one per spatial dimension separated by commas (2 or 2,1).\n";

[[noreturn]] void usage_error(const std::string& message) { throw Error(ErrorKind::invalid_argument, message); }

std::vector<std::int64_t> parse_ints(const std::string& flag, const std::string& text) {
  std::vector<std::int64_t> values;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    std::size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size()) usage_error(flag + ": '" + text + "' is not a comma-separated list of integers");
    values.push_back(v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return values;
}

Arguments parse(int argc, char** argv, const std::vector<std::string>& allowed) {
  if (argc < 3) usage_error("missing the operation: conv or conv_transpose");
  Arguments args;
  const std::string op = argv[2];
  if (op == "conv") args.kind = ConvKind::conv;
  else if (op == "conv_transpose") args.kind = ConvKind::conv_transpose;
  else usage_error("unknown operation '" + op + "' (expected conv or conv_transpose)");
  for (int i = 3; i < argc; ++i) {
    const std::string flag = argv[i];
    if (std::find(allowed.begin(), allowed.end(), flag) == allowed.end()) usage_error("unknown option '" + flag + "'");
    if (i + 1 >= argc) usage_error(flag + " needs a value");
    if (args.flags.count(flag)) usage_error(flag + " given twice");
    args.flags[flag] = argv[++i];
  }
  return args;
}

const std::vector<std::string> kParamFlags{"--stride", "--padding", "--output-padding", "--dilation", "--groups"};

tconv::ConvParams params_from(const Arguments& args) {
  tconv::ConvParams params;
  auto spatial = [&](const char* flag, tconv::SpatialParam& target) {
    if (auto it = args.flags.find(flag); it != args.flags.end()) target = tconv::SpatialParam(parse_ints(flag, it->second));
  };
  spatial("--stride", params.stride);
  spatial("--padding", params.padding);
  spatial("--output-padding", params.output_padding);
  spatial("--dilation", params.dilation);
  if (auto it = args.flags.find("--groups"); it != args.flags.end()) {
    const auto groups = parse_ints("--groups", it->second);
    if (groups.size() != 1) usage_error("--groups takes one integer, got '" + it->second + "'");
    params.groups = groups[0];
  }
  return params;
}

const std::string& required(const Arguments& args, const std::string& flag) {
  auto it = args.flags.find(flag);
  if (it == args.flags.end()) usage_error("missing " + flag);
  return it->second;
}

std::vector<std::string> with_params(std::vector<std::string> flags) {
  flags.insert(flags.end(), kParamFlags.begin(), kParamFlags.end());
  return flags;
}

int command_run(int argc, char** argv) {
  const Arguments args = parse(argc, argv, with_params({"--input", "--weight", "--bias", "--output"}));
  const tconv::ConvParams params = params_from(args);
  const std::string& output_path = required(args, "--output");
  namespace fs = std::filesystem;
  for (const char* flag : {"--input", "--weight", "--bias"}) {
    auto it = args.flags.find(flag);
    std::error_code ec;
    if (it != args.flags.end() && fs::equivalent(it->second, output_path, ec)) {
      usage_error("--output '" + output_path + "' is also " + flag + "; write the result elsewhere");
    }
  }
  const tconv::Tensor input = tconv::io::read_npy(required(args, "--input"));
  const tconv::Tensor weight = tconv::io::read_npy(required(args, "--weight"));
  std::optional<tconv::Tensor> bias;
  if (args.flags.count("--bias")) bias = tconv::io::read_npy(args.flags.at("--bias"));
  const tconv::TensorView bias_view = bias ? bias->view() : tconv::TensorView();
  const tconv::TensorView* bias_ptr = bias ? &bias_view : nullptr;
  const tconv::Tensor output = args.kind == ConvKind::conv
                                   ? tconv::conv(input.view(), weight.view(), bias_ptr, params)
                                   : tconv::conv_transpose(input.view(), weight.view(), bias_ptr, params);
  tconv::io::write_npy(output_path, output.view());
  return 0;
}

int command_shape(int argc, char** argv) {
  const Arguments args = parse(argc, argv, with_params({"--input-shape", "--weight-shape"}));
  const tconv::Shape input_shape = parse_ints("--input-shape", required(args, "--input-shape"));
  const tconv::Shape weight_shape = parse_ints("--weight-shape", required(args, "--weight-shape"));
  std::cout << tconv::shape_to_string(tconv::output_shape(args.kind, input_shape, weight_shape, params_from(args)), ",")
            << "\n";
  return 0;
}

}  // namespace tconv::cli

using namespace tconv::cli;

int main(int argc, char** argv) {
  const std::string command = argc > 1 ? argv[1] : "";
  try {
    if (command == "demo") return tconv::cli::run_demo();
    if (command == "run") return command_run(argc, argv);
    if (command == "shape") return command_shape(argc, argv);
    if (command == "explain") return tconv::cli::run_explain(argc, argv);
    if (command == "--help" || command == "-h" || command == "help") {
      std::cout << kUsage;
      return 0;
    }
    std::cerr << "tconv: unknown command '" << command << "'\n" << kUsage;
    return kExitBadInput;
  } catch (const Error& e) {
    std::cerr << "tconv: " << e.what() << "\n";
    return e.kind() == ErrorKind::internal ? kExitInternal : kExitBadInput;
  } catch (const std::exception& e) {
    std::cerr << "tconv: internal error: " << e.what() << "\n";
    return kExitInternal;
  }
}
