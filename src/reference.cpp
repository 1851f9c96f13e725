// The three reference ways of computing a (transposed) convolution.
// Written for clarity, not speed: every element is read into double, every
// sum is formed in double, and only the result is rounded to the dtype.
#include <vector>

#include "tensor_values.hpp"
#include "validate.hpp"
#include "tconv/tconv.hpp"

namespace tconv {
namespace reference {
namespace {

using detail::Dims;
using detail::from_double;
using detail::Geometry;
using detail::kMaxSpatial;
using detail::to_double;

// Iterates a 3-D box in C order.
template <typename F>
void for_each_position(const Dims& extent, F&& f) {
  for (std::int64_t z = 0; z < extent[0]; ++z)
    for (std::int64_t y = 0; y < extent[1]; ++y)
      for (std::int64_t x = 0; x < extent[2]; ++x) f(Dims{z, y, x});
}

std::int64_t flatten(const Dims& pos, const Dims& extent) { return (pos[0] * extent[1] + pos[1]) * extent[2] + pos[2]; }

// The big position that small position `i` reaches through tap `t`, if inside.
bool big_from_small(const Geometry& g, const Dims& i, const Dims& t, Dims& o) {
  for (int d = 0; d < kMaxSpatial; ++d) {
    o[d] = i[d] * g.stride[d] - g.pad_begin[d] + t[d] * g.dilation[d];
    if (o[d] < 0 || o[d] >= g.big_size[d]) return false;
  }
  return true;
}

// The small position that reaches big position `o` through tap `t`, if any.
bool small_from_big(const Geometry& g, const Dims& o, const Dims& t, Dims& i) {
  for (int d = 0; d < kMaxSpatial; ++d) {
    const std::int64_t scaled = o[d] + g.pad_begin[d] - t[d] * g.dilation[d];
    if (scaled < 0 || scaled % g.stride[d] != 0) return false;
    i[d] = scaled / g.stride[d];
    if (i[d] >= g.small_size[d]) return false;
  }
  return true;
}

// Weight element w[cs, cb', t] for small channel cs and big channel cb (same group).
double weight_at(const Geometry& g, const std::vector<double>& w, std::int64_t cs, std::int64_t cb, const Dims& t) {
  const std::int64_t cb_in_group = cb % g.big_per_group();
  return w[static_cast<std::size_t>((cs * g.big_per_group() + cb_in_group) * g.kernel_taps() + flatten(t, g.kernel))];
}

struct Problem {
  Geometry g;
  std::vector<double> src, weight, bias;
  std::int64_t src_channels, dst_channels;
  Dims src_size, dst_size;
};

Problem load(ConvKind kind, const TensorView& input, const TensorView& weight, const TensorView* bias,
             const ConvParams& params) {
  Problem p;
  p.g = detail::resolve_geometry(kind, input.shape, weight.shape,
                                 bias ? std::optional<Shape>(bias->shape) : std::nullopt, params);
  p.src = to_double(detail::channels_first_view(input, p.g));
  p.weight = to_double(weight);
  p.bias = bias ? to_double(*bias) : std::vector<double>(static_cast<std::size_t>(p.g.output_channels()), 0.0);
  p.src_channels = p.g.input_channels();
  p.dst_channels = p.g.output_channels();
  p.src_size = p.g.input_size();
  p.dst_size = p.g.output_size();
  return p;
}

// The channels of the other side that share a group with channel c of this side.
struct ChannelRange {
  std::int64_t first, count;
};
ChannelRange partner_channels(const Geometry& g, bool from_small, std::int64_t c) {
  const std::int64_t group = from_small ? c / g.small_per_group() : c / g.big_per_group();
  return from_small ? ChannelRange{group * g.big_per_group(), g.big_per_group()}
                    : ChannelRange{group * g.small_per_group(), g.small_per_group()};
}

// Each output element sums what its window covers.
std::vector<double> gather(const Problem& p) {
  const Geometry& g = p.g;
  const bool dst_is_small = g.kind == ConvKind::conv;
  const std::int64_t src_plane = g.kind == ConvKind::conv ? g.big_spatial() : g.small_spatial();
  const std::int64_t dst_plane = g.kind == ConvKind::conv ? g.small_spatial() : g.big_spatial();
  std::vector<double> dst(static_cast<std::size_t>(g.batch * p.dst_channels * dst_plane));
  for (std::int64_t n = 0; n < g.batch; ++n)
    for (std::int64_t c = 0; c < p.dst_channels; ++c) {
      const ChannelRange partners = partner_channels(g, dst_is_small, c);
      for_each_position(p.dst_size, [&](const Dims& out) {
        double sum = p.bias[static_cast<std::size_t>(c)];
        for (std::int64_t pc = partners.first; pc < partners.first + partners.count; ++pc)
          for_each_position(g.kernel, [&](const Dims& t) {
            Dims in{};
            const bool linked = dst_is_small ? big_from_small(g, out, t, in) : small_from_big(g, out, t, in);
            if (!linked) return;
            const double w = dst_is_small ? weight_at(g, p.weight, c, pc, t) : weight_at(g, p.weight, pc, c, t);
            sum += w * p.src[static_cast<std::size_t>((n * p.src_channels + pc) * src_plane + flatten(in, p.src_size))];
          });
        dst[static_cast<std::size_t>((n * p.dst_channels + c) * dst_plane + flatten(out, p.dst_size))] = sum;
      });
    }
  return dst;
}

// Each input element adds itself, times the kernel, into the output positions it reaches.
std::vector<double> scatter(const Problem& p) {
  const Geometry& g = p.g;
  const bool src_is_small = g.kind == ConvKind::conv_transpose;
  const std::int64_t src_plane = src_is_small ? g.small_spatial() : g.big_spatial();
  const std::int64_t dst_plane = src_is_small ? g.big_spatial() : g.small_spatial();
  std::vector<double> dst(static_cast<std::size_t>(g.batch * p.dst_channels * dst_plane));
  for (std::int64_t n = 0; n < g.batch; ++n)
    for (std::int64_t c = 0; c < p.dst_channels; ++c)
      for (std::int64_t k = 0; k < dst_plane; ++k)
        dst[static_cast<std::size_t>((n * p.dst_channels + c) * dst_plane + k)] = p.bias[static_cast<std::size_t>(c)];
  for (std::int64_t n = 0; n < g.batch; ++n)
    for (std::int64_t c = 0; c < p.src_channels; ++c) {
      const ChannelRange partners = partner_channels(g, src_is_small, c);
      for_each_position(p.src_size, [&](const Dims& in) {
        const double value = p.src[static_cast<std::size_t>((n * p.src_channels + c) * src_plane + flatten(in, p.src_size))];
        for (std::int64_t pc = partners.first; pc < partners.first + partners.count; ++pc)
          for_each_position(g.kernel, [&](const Dims& t) {
            Dims out{};
            const bool linked = src_is_small ? big_from_small(g, in, t, out) : small_from_big(g, in, t, out);
            if (!linked) return;
            const double w = src_is_small ? weight_at(g, p.weight, c, pc, t) : weight_at(g, p.weight, pc, c, t);
            dst[static_cast<std::size_t>((n * p.dst_channels + pc) * dst_plane + flatten(out, p.dst_size))] += w * value;
          });
      });
    }
  return dst;
}

// Largest convolution matrix the reference builds (in elements): 2 GiB of doubles.
constexpr std::int64_t kMaxMatrixElements = std::int64_t{1} << 28;

// M[(cs, i), (cb, o)] = w[cs, cb', t] for every link i --t--> o.
std::vector<double> build_matrix(const Geometry& g, const std::vector<double>& w) {
  const std::int64_t rows = g.small_channels * g.small_spatial();
  const std::int64_t cols = g.big_channels * g.big_spatial();
  if (rows * cols > kMaxMatrixElements) {
    throw Error(ErrorKind::invalid_argument,
                "the convolution matrix would be " + std::to_string(rows) + " x " + std::to_string(cols) +
                    ", more than the 2^28 elements the matrix method builds");
  }
  std::vector<double> m(static_cast<std::size_t>(rows * cols), 0.0);
  for (std::int64_t cs = 0; cs < g.small_channels; ++cs) {
    const ChannelRange partners = partner_channels(g, true, cs);
    for_each_position(g.small_size, [&](const Dims& i) {
      const std::int64_t row = cs * g.small_spatial() + flatten(i, g.small_size);
      for (std::int64_t cb = partners.first; cb < partners.first + partners.count; ++cb)
        for_each_position(g.kernel, [&](const Dims& t) {
          Dims o{};
          if (!big_from_small(g, i, t, o)) return;
          // Taps of a dilated kernel never share a position, but keep the sum honest anyway.
          m[static_cast<std::size_t>(row * cols + cb * g.big_spatial() + flatten(o, g.big_size))] +=
              weight_at(g, w, cs, cb, t);
        });
    });
  }
  return m;
}

// conv: y = M x per sample; conv_transpose: y = M^T x per sample.
std::vector<double> matrix(const Problem& p) {
  const Geometry& g = p.g;
  const std::vector<double> m = build_matrix(g, p.weight);
  const std::int64_t rows = g.small_channels * g.small_spatial();
  const std::int64_t cols = g.big_channels * g.big_spatial();
  const bool transposed = g.kind == ConvKind::conv_transpose;
  const std::int64_t src_len = transposed ? rows : cols;
  const std::int64_t dst_len = transposed ? cols : rows;
  const std::int64_t dst_plane = dst_len / p.dst_channels;
  std::vector<double> dst(static_cast<std::size_t>(g.batch * dst_len));
  for (std::int64_t n = 0; n < g.batch; ++n) {
    const double* x = p.src.data() + n * src_len;
    double* y = dst.data() + n * dst_len;
    for (std::int64_t r = 0; r < dst_len; ++r) {
      double sum = p.bias[static_cast<std::size_t>(r / dst_plane)];
      for (std::int64_t k = 0; k < src_len; ++k) {
        sum += (transposed ? m[static_cast<std::size_t>(k * cols + r)] : m[static_cast<std::size_t>(r * cols + k)]) * x[k];
      }
      y[r] = sum;
    }
  }
  return dst;
}

void check_dtypes(const TensorView& input, const TensorView& weight, const TensorView* bias) {
  if (weight.dtype != input.dtype || (bias && bias->dtype != input.dtype)) {
    throw Error(ErrorKind::wrong_type, "input, weight and bias must share one dtype; got input " +
                                           std::string(dtype_name(input.dtype)) + ", weight " +
                                           dtype_name(weight.dtype) + (bias ? std::string(", bias ") + dtype_name(bias->dtype) : ""));
  }
}

}  // namespace

const char* method_name(Method method) {
  switch (method) {
    case Method::gather: return "gather";
    case Method::matrix: return "matrix";
    case Method::scatter: return "scatter";
  }
  return "?";
}

Tensor compute(Method method, ConvKind kind, const TensorView& input, const TensorView& weight, const TensorView* bias,
               const ConvParams& params) {
  check_dtypes(input, weight, bias);
  const Problem p = load(kind, input, weight, bias, params);
  std::vector<double> out;
  switch (method) {
    case Method::gather: out = gather(p); break;
    case Method::matrix: out = matrix(p); break;
    case Method::scatter: out = scatter(p); break;
  }
  if (p.g.layout == Layout::channels_first) return from_double(out, input.dtype, p.g.output_shape());
  // The methods work channels-first; the result goes back to the caller's layout.
  Geometry channels_first = p.g;
  channels_first.layout = Layout::channels_first;
  const Tensor computed = from_double(out, input.dtype, channels_first.output_shape());
  Tensor result = Tensor::uninitialized(input.dtype, p.g.output_shape());
  copy(computed.view(), detail::channels_first_view(result.mutable_view(), p.g));
  return result;
}

}  // namespace reference

Tensor conv_matrix(const Shape& input_shape, const TensorView& weight, const ConvParams& params) {
  const detail::Geometry g = detail::resolve_geometry(ConvKind::conv, input_shape, weight.shape, std::nullopt, params);
  if (g.layout != Layout::channels_first) {
    throw Error(ErrorKind::invalid_argument, "conv_matrix orders elements channels-first ([C, spatial...] flattened); "
                                             "layout must be channels_first");
  }
  if (g.batched && g.batch != 1) {
    throw Error(ErrorKind::invalid_argument, "conv_matrix describes one sample: input_shape must be unbatched [C, ...] "
                                             "or have batch 1, got " + shape_to_string(input_shape));
  }
  const std::vector<double> m = reference::build_matrix(g, detail::to_double(weight));
  return detail::from_double(m, weight.dtype, {g.small_channels * g.small_spatial(), g.big_channels * g.big_spatial()});
}

}  // namespace tconv
