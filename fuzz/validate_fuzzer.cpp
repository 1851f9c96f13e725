// libFuzzer target: parameter validation and shape arithmetic. The bytes pick
// a kind, shapes and parameters (small values or any 64-bit value); every
// request is either accepted with a sane output shape and plan, or refused
// with tconv::Error. Problems small enough are also run through the chosen
// implementation, so a sanitizer sees its memory accesses.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "tconv/tconv.hpp"

namespace {

std::int64_t any_value(FuzzedDataProvider& p) {
  return p.ConsumeBool() ? p.ConsumeIntegralInRange<std::int64_t>(-1, 6) : p.ConsumeIntegral<std::int64_t>();
}

std::vector<std::int64_t> values(FuzzedDataProvider& p, std::size_t count) {
  std::vector<std::int64_t> v(count);
  for (auto& x : v) x = any_value(p);
  return v;
}

// One value, or a list of 0 to 4 (the right count or not).
tconv::SpatialParam spatial(FuzzedDataProvider& p) {
  return tconv::SpatialParam(values(p, p.ConsumeBool() ? 1 : p.ConsumeIntegralInRange<std::size_t>(0, 4)));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tconv::set_max_bytes(std::uint64_t{1} << 26);
  tconv::set_num_threads(1);
  FuzzedDataProvider p(data, size);
  const auto kind = p.ConsumeBool() ? tconv::ConvKind::conv : tconv::ConvKind::conv_transpose;
  const tconv::Shape weight_shape = values(p, p.ConsumeIntegralInRange<std::size_t>(0, 6));
  const tconv::Shape input_shape = values(p, p.ConsumeIntegralInRange<std::size_t>(0, 6));
  tconv::ConvParams params;
  params.stride = spatial(p);
  params.padding = spatial(p);
  params.output_padding = spatial(p);
  params.dilation = spatial(p);
  params.groups = any_value(p);
  if (p.ConsumeBool()) params.padding_end = spatial(p);
  const bool with_bias = p.ConsumeBool();
  const auto implementations = tconv::available_implementations();
  const std::size_t forced = p.ConsumeIntegralInRange<std::size_t>(0, implementations.size());

  tconv::Shape out;
  try {
    out = tconv::output_shape(kind, input_shape, weight_shape, params);
  } catch (const tconv::Error&) {
    return 0;
  }
  std::int64_t out_numel = 1;
  for (const auto d : out) {
    if (d < 0 || __builtin_mul_overflow(out_numel, d, &out_numel)) __builtin_trap();
  }
  // Operators only for weights small enough to make; runs only for small problems.
  std::int64_t weight_numel = 1, input_numel = 1;
  for (const auto d : weight_shape) weight_numel *= d;  // validated: no overflow
  for (const auto d : input_shape) input_numel *= d;
  if (weight_numel > 4096) return 0;
  try {
    const tconv::Tensor weight(tconv::DType::f32, weight_shape);
    const std::int64_t out_channels = out.size() == weight_shape.size() ? out[1] : out[0];
    const tconv::Tensor bias(tconv::DType::f32, {out_channels});
    const tconv::TensorView bias_view = bias.view();
    tconv::OperatorOptions options;
    if (forced < implementations.size()) options.implementation = implementations[forced];
    const auto op = tconv::Operator::create(kind, weight.view(), with_bias ? &bias_view : nullptr, params, options);
    const tconv::Plan plan = op.plan(input_shape);
    if (plan.output_shape != out) __builtin_trap();
    if (input_numel > 4096 || out_numel > 4096) return 0;
    const tconv::Tensor input(tconv::DType::f32, input_shape);
    const tconv::Tensor output = op.run(input.view());
    if (output.shape() != out) __builtin_trap();
  } catch (const tconv::Error&) {
  }
  return 0;
}
