// tconv: command-line front end of the library.
//   tconv demo
//   tconv run conv|conv_transpose --input X.npy --weight W.npy [--bias B.npy] [flags] --output Y.npy
//   tconv shape conv|conv_transpose --input-shape 1,3,32,32 --weight-shape 8,3,3,3 [flags]
//   (flags: PyTorch's parameters, or ONNX's attributes after --convention onnx)
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
#include "tconv/onnx.hpp"
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
    "            [--output-padding OP] [--dilation D] [--groups G] [--layout nchw|nhwc] --output Y.npy\n"
    "  tconv shape conv|conv_transpose --input-shape 1,3,32,32 --weight-shape 8,3,3,3 [same flags]\n"
    "  tconv run|shape conv|conv_transpose ... --convention onnx [--auto-pad NOTSET|SAME_UPPER|SAME_LOWER|VALID]\n"
    "            [--pads B1,B2,..,E1,E2,..] [--strides S] [--dilations D] [--group G] [--kernel-shape K]\n"
    "            [--output-padding OP] [--output-shape O]   (ONNX Conv / ConvTranspose attributes)\n"
    "  tconv explain conv|conv_transpose --input-shape H,W --kernel-shape KH,KW [--stride S] [--padding P]\n"
    "            [--output-padding OP] [--dilation D] [--input X.npy] [--weight W.npy] [--highlight R,C] [--svg FILE]\n"
    "S, P, OP, D: one integer, or one per spatial dimension separated by commas (2 or 2,1).\n"
    "--layout nhwc (also nwc, ndhwc, channels_last): input and output are [N, spatial..., C]; weights keep [C, C/g, k...].\n"
    "--convention torch (the default) takes --stride/--padding/--output-padding/--dilation/--groups/--layout; --convention\n"
    "onnx takes ONNX's attribute lists instead (one value per spatial axis; --output-shape may be the full shape).\n";

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

const std::vector<std::string> kParamFlags{"--stride", "--padding", "--output-padding", "--dilation", "--groups",
                                           "--layout"};

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
  if (auto it = args.flags.find("--layout"); it != args.flags.end()) {
    const std::string& name = it->second;
    if (name == "nchw" || name == "ncw" || name == "ncdhw" || name == "channels_first") {
      params.layout = tconv::Layout::channels_first;
    } else if (name == "nhwc" || name == "nwc" || name == "ndhwc" || name == "channels_last") {
      params.layout = tconv::Layout::channels_last;
    } else {
      usage_error("--layout must be nchw, ncw, ncdhw, channels_first, nhwc, nwc, ndhwc or channels_last, got '" + name +
                  "'");
    }
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

// --convention onnx: ONNX's Conv / ConvTranspose attributes (tconv/onnx.hpp), spelled with dashes.
const std::vector<std::string> kOnnxFlags{"--auto-pad", "--pads", "--strides", "--dilations",
                                          "--group", "--kernel-shape", "--output-padding", "--output-shape"};

// The flags of `run` / `shape` for both conventions, plus --convention.
std::vector<std::string> with_conventions(std::vector<std::string> flags) {
  flags = with_params(std::move(flags));
  for (const auto& flag : kOnnxFlags) {
    if (std::find(flags.begin(), flags.end(), flag) == flags.end()) flags.push_back(flag);
  }
  flags.push_back("--convention");
  return flags;
}

// True for --convention onnx, false for torch (the default). A flag of the
// other convention is refused (--output-padding belongs to both).
bool onnx_convention(const Arguments& args) {
  bool onnx = false;
  if (auto it = args.flags.find("--convention"); it != args.flags.end()) {
    if (it->second == "onnx") onnx = true;
    else if (it->second != "torch") usage_error("--convention must be torch or onnx, got '" + it->second + "'");
  }
  for (const auto& [flag, value] : args.flags) {
    const bool torch_flag = std::find(kParamFlags.begin(), kParamFlags.end(), flag) != kParamFlags.end();
    const bool onnx_flag = std::find(kOnnxFlags.begin(), kOnnxFlags.end(), flag) != kOnnxFlags.end();
    if (torch_flag && onnx_flag) continue;
    if (onnx && torch_flag) {
      usage_error(flag + " is a flag of the torch convention; --convention onnx takes ONNX's attributes "
                         "(--strides, --pads, --dilations, --group, --auto-pad, ...)");
    }
    if (!onnx && onnx_flag) usage_error("unknown option '" + flag + "' (an ONNX attribute: add --convention onnx)");
  }
  return onnx;
}

tconv::onnx::Attributes onnx_attributes_from(const Arguments& args) {
  tconv::onnx::Attributes attributes;
  auto ints = [&](const char* flag, std::optional<tconv::onnx::Ints>& target) {
    if (auto it = args.flags.find(flag); it != args.flags.end()) target = parse_ints(flag, it->second);
  };
  if (auto it = args.flags.find("--auto-pad"); it != args.flags.end()) {
    attributes.auto_pad = tconv::onnx::parse_auto_pad(it->second);
  }
  ints("--dilations", attributes.dilations);
  ints("--kernel-shape", attributes.kernel_shape);
  ints("--output-padding", attributes.output_padding);
  ints("--output-shape", attributes.output_shape);
  ints("--pads", attributes.pads);
  ints("--strides", attributes.strides);
  if (auto it = args.flags.find("--group"); it != args.flags.end()) {
    const auto group = parse_ints("--group", it->second);
    if (group.size() != 1) usage_error("--group takes one integer, got '" + it->second + "'");
    attributes.group = group[0];
  }
  return attributes;
}

int command_run(int argc, char** argv) {
  const Arguments args = parse(argc, argv, with_conventions({"--input", "--weight", "--bias", "--output"}));
  const bool onnx = onnx_convention(args);
  const tconv::ConvParams params = onnx ? tconv::ConvParams{} : params_from(args);
  const tconv::onnx::Attributes attributes = onnx ? onnx_attributes_from(args) : tconv::onnx::Attributes{};
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
  tconv::Tensor output;
  if (onnx) {
    output = args.kind == ConvKind::conv
                 ? tconv::onnx::conv(input.view(), weight.view(), bias_ptr, attributes)
                 : tconv::onnx::conv_transpose(input.view(), weight.view(), bias_ptr, attributes);
  } else {
    output = args.kind == ConvKind::conv ? tconv::conv(input.view(), weight.view(), bias_ptr, params)
                                         : tconv::conv_transpose(input.view(), weight.view(), bias_ptr, params);
  }
  tconv::io::write_npy(output_path, output.view());
  return 0;
}

int command_shape(int argc, char** argv) {
  const Arguments args = parse(argc, argv, with_conventions({"--input-shape", "--weight-shape"}));
  const bool onnx = onnx_convention(args);
  const tconv::Shape input_shape = parse_ints("--input-shape", required(args, "--input-shape"));
  const tconv::Shape weight_shape = parse_ints("--weight-shape", required(args, "--weight-shape"));
  const tconv::Shape shape =
      onnx ? tconv::onnx::resolve(args.kind, input_shape, weight_shape, onnx_attributes_from(args)).output_shape
           : tconv::output_shape(args.kind, input_shape, weight_shape, params_from(args));
  std::cout << tconv::shape_to_string(shape, ",") << "\n";
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
