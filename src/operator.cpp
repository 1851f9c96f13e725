// Operators: validate, choose a kernel family once, pack weights once, run.
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <optional>

#include "kernels/kernel.hpp"
#include "limits.hpp"
#include "tconv/tconv.hpp"
#include "validate.hpp"

namespace tconv {

using detail::Geometry;
using detail::KernelFamily;
using detail::PreparedKernel;

namespace {

std::atomic<int> g_threads{0};  // 0: OpenMP's default

// TCONV_POISON_WORKSPACE (set, not "0") fills every run's workspace with NaNs
// before the kernel runs: a kernel that reads scratch it did not write then
// gives NaNs, not whatever the memory held by chance (the tests set it).
bool poison_workspace() {
  static const bool on = [] {
    const char* env = std::getenv("TCONV_POISON_WORKSPACE");
    return env != nullptr && *env != '\0' && std::string(env) != "0";
  }();
  return on;
}

void check_same_dtype(const char* what, DType got, DType expected) {
  if (got != expected) {
    throw Error(ErrorKind::wrong_type, std::string(what) + " is " + dtype_name(got) + " but the weight is " +
                                           dtype_name(expected) + "; all operands must share one dtype");
  }
}

std::optional<Shape> shape_of(const TensorView* view) {
  return view ? std::optional<Shape>(view->shape) : std::nullopt;
}

struct Choice {
  const KernelFamily* family;
  std::string reason;
};

template <typename T>
bool all_finite(const T* values, std::int64_t count) {
  for (std::int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(values[i])) return false;
  }
  return true;
}

detail::WeightFacts facts_of(const Tensor& weight) {
  detail::WeightFacts facts;
  facts.all_finite = weight.dtype() == DType::f32 ? all_finite(weight.data_as<float>(), weight.numel())
                                                  : all_finite(weight.data_as<double>(), weight.numel());
  return facts;
}

Choice choose_family(const Geometry& g, DType dtype, const detail::WeightFacts& weights, const std::string& forced) {
  const auto& families = detail::kernel_families();
  if (!forced.empty()) {
    for (const auto& family : families) {
      if (forced != family.name) continue;
      if (!family.cpu_supports()) {
        throw Error(ErrorKind::invalid_argument, "implementation '" + forced + "' was forced but this CPU lacks " +
                                                     family.isa);
      }
      const std::string why_not = family.rejects(g, dtype, weights);
      if (!why_not.empty()) {
        throw Error(ErrorKind::invalid_argument, "implementation '" + forced + "' was forced but " + why_not);
      }
      return {&family, "forced (TCONV_IMPL or OperatorOptions::implementation)"};
    }
    std::string known;
    for (const auto& family : families) known += std::string(known.empty() ? "" : ", ") + family.name;
    throw Error(ErrorKind::invalid_argument, "implementation '" + forced + "' does not exist (known: " + known + ")");
  }
  std::string passed_over;
  for (const auto& family : families) {
    std::string why_not =
        family.cpu_supports() ? family.rejects(g, dtype, weights) : "this CPU lacks " + std::string(family.isa);
    if (why_not.empty()) {
      return {&family, passed_over.empty() ? "highest-priority implementation for this problem and CPU ("
                                                 + std::string(family.isa) + ")"
                                           : "chosen (" + std::string(family.isa) + ") after " + passed_over};
    }
    passed_over += std::string(passed_over.empty() ? "" : "; ") + family.name + ": " + why_not;
  }
  throw Error(ErrorKind::internal, "no kernel family accepts this problem: " + passed_over);
}

}  // namespace

struct Operator::State {
  ConvKind kind;
  DType dtype;
  ConvParams params;
  Shape weight_shape;
  std::optional<Shape> bias_shape;
  std::string implementation;
  std::string reason;
  std::unique_ptr<PreparedKernel> kernel;

  Geometry geometry_for(const Shape& input_shape) const {
    return detail::resolve_geometry(kind, input_shape, weight_shape, bias_shape, params);
  }

  // The workspace one run needs, after checking that it and the output fit in max_bytes().
  std::size_t checked_workspace_bytes(const Geometry& g, int threads) const {
    const Shape out = g.output_shape();
    const std::uint64_t output_bytes =
        detail::checked_bytes(out, dtype_size(dtype), "output", ErrorKind::invalid_argument);
    // An empty output is never computed, so it needs no workspace.
    const std::size_t workspace = output_bytes == 0 ? 0 : kernel->workspace_bytes(g, threads);
    std::uint64_t total = 0;
    if (__builtin_add_overflow(output_bytes, workspace, &total)) total = UINT64_MAX;
    detail::check_memory(std::string(conv_kind_name(kind)) + " output " + shape_to_string(out) + " (" +
                             std::to_string(output_bytes) + " bytes) with workspace (" + std::to_string(workspace) +
                             " bytes for " + std::to_string(threads) + " threads)",
                         total, ErrorKind::invalid_argument);
    return workspace;
  }
};

Operator::Operator(std::unique_ptr<State> state) : state_(std::move(state)) {}
Operator::Operator(Operator&&) noexcept = default;
Operator& Operator::operator=(Operator&&) noexcept = default;
Operator::~Operator() = default;

Operator Operator::create(ConvKind kind, const TensorView& weight, const TensorView* bias, const ConvParams& params,
                          const OperatorOptions& options) {
  if (bias) check_same_dtype("bias", bias->dtype, weight.dtype);
  const Geometry g = detail::resolve_weight_geometry(kind, weight.shape, shape_of(bias), params);
  std::string forced = options.implementation;
  if (forced.empty()) {
    if (const char* env = std::getenv("TCONV_IMPL")) forced = env;
  }
  const Tensor packed_weight = Tensor::copy_of(weight);
  const Choice choice = choose_family(g, weight.dtype, facts_of(packed_weight), forced);

  auto state = std::make_unique<State>();
  state->kind = kind;
  state->dtype = weight.dtype;
  state->params = params;
  state->weight_shape = weight.shape;
  state->bias_shape = shape_of(bias);
  state->implementation = choice.family->name;
  state->reason = choice.reason;
  const std::optional<Tensor> packed_bias = bias ? std::optional<Tensor>(Tensor::copy_of(*bias)) : std::nullopt;
  state->kernel = choice.family->prepare(g, weight.dtype, packed_weight.data(),
                                         packed_bias ? packed_bias->data() : nullptr);
  return Operator(std::move(state));
}

ConvKind Operator::kind() const { return state_->kind; }
DType Operator::dtype() const { return state_->dtype; }
const std::string& Operator::implementation() const { return state_->implementation; }
const std::string& Operator::reason() const { return state_->reason; }

Plan Operator::plan(const Shape& input_shape) const {
  const Geometry g = state_->geometry_for(input_shape);
  Plan plan;
  plan.output_shape = g.output_shape();
  plan.threads = num_threads();
  plan.workspace_bytes = state_->checked_workspace_bytes(g, plan.threads);
  plan.strategy = state_->kernel->strategy(g, plan.threads);
  return plan;
}

Tensor Operator::run(const TensorView& input) const {
  // Kernels overwrite every output element.
  Tensor output = Tensor::uninitialized(state_->dtype, plan(input.shape).output_shape);
  run(input, output.mutable_view());
  return output;
}

void Operator::run(const TensorView& input, const MutableTensorView& output) const {
  check_same_dtype("input", input.dtype, state_->dtype);
  check_same_dtype("output", output.dtype, state_->dtype);
  const Geometry g = state_->geometry_for(input.shape);
  const Shape expected = g.output_shape();
  if (output.shape != expected) {
    throw Error(ErrorKind::invalid_argument, "output has shape " + shape_to_string(output.shape) +
                                                 " but this convolution produces " + shape_to_string(expected));
  }
  if (output.numel() == 0) return;
  const int threads = num_threads();
  const std::size_t workspace_bytes = state_->checked_workspace_bytes(g, threads);
  // Kernels take contiguous tensors; strided callers' views go through a copy.
  std::optional<Tensor> contiguous_input;
  if (!input.is_contiguous()) contiguous_input = Tensor::copy_of(input);
  std::optional<Tensor> contiguous_output;
  if (!output.is_contiguous()) contiguous_output = Tensor::uninitialized(state_->dtype, expected);
  // 64-byte aligned scratch (Tensor storage); kernels initialize what they use.
  Tensor workspace = Tensor::uninitialized(
      DType::f32, {static_cast<std::int64_t>((workspace_bytes + sizeof(float) - 1) / sizeof(float))});
  if (poison_workspace()) {
    std::fill_n(static_cast<float*>(workspace.data()), workspace.numel(), std::numeric_limits<float>::quiet_NaN());
  }
  state_->kernel->run(g, contiguous_input ? contiguous_input->data() : input.data,
                      contiguous_output ? contiguous_output->data() : output.mutable_data(), workspace.data(), threads);
  if (contiguous_output) copy(contiguous_output->view(), output);
}

std::vector<std::string> available_implementations() {
  std::vector<std::string> names;
  for (const auto& family : detail::kernel_families()) {
    if (family.cpu_supports()) names.emplace_back(family.name);
  }
  return names;
}

void set_num_threads(int threads) {
  if (threads < 1) {
    throw Error(ErrorKind::invalid_argument, "threads (" + std::to_string(threads) + ") must be positive");
  }
  g_threads = threads;
}

int num_threads() {
  const int set = g_threads.load();
  return set > 0 ? set : omp_get_max_threads();
}

const char* conv_kind_name(ConvKind kind) { return kind == ConvKind::conv ? "conv" : "conv_transpose"; }
const char* layout_name(Layout layout) { return layout == Layout::channels_first ? "channels_first" : "channels_last"; }

Shape output_shape(ConvKind kind, const Shape& input_shape, const Shape& weight_shape, const ConvParams& params) {
  return detail::resolve_geometry(kind, input_shape, weight_shape, std::nullopt, params).output_shape();
}

namespace {
Tensor run_once(ConvKind kind, const TensorView& input, const TensorView& weight, const TensorView* bias,
                const ConvParams& params) {
  check_same_dtype("input", input.dtype, weight.dtype);
  // Validate against the input first so errors name the input, as PyTorch's do.
  detail::resolve_geometry(kind, input.shape, weight.shape, shape_of(bias), params);
  return Operator::create(kind, weight, bias, params).run(input);
}
}  // namespace

Tensor conv(const TensorView& input, const TensorView& weight, const TensorView* bias, const ConvParams& params) {
  return run_once(ConvKind::conv, input, weight, bias, params);
}

Tensor conv_transpose(const TensorView& input, const TensorView& weight, const TensorView* bias,
                      const ConvParams& params) {
  return run_once(ConvKind::conv_transpose, input, weight, bias, params);
}

}  // namespace tconv
