// Shared pieces of the C++ tests: random cases, an independent oracle, and
// comparisons with an error bound.
//
// The oracle below is written from PyTorch's definitions alone (it shares no
// code with the library's geometry or reference methods):
//   conv:           y[n, co, o] = b[co] + sum_{ci in group(co), t} w[co, ci mod Cin_g, t] * x[n, ci, o*s - p + t*d]
//   conv_transpose: y[n, co, o] = b[co] + sum over (ci in group(co), i, t) with i*s - p + t*d == o
//                                         of x[n, ci, i] * w[ci, co mod Cout_g, t]
// Positions outside the input are zeros (padding). The result is accumulated
// in double.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#include "tconv/tconv.hpp"

namespace tconv::testing {

inline double value_at(const Tensor& t, std::int64_t k) {
  return t.dtype() == DType::f32 ? static_cast<double>(t.data_as<float>()[k]) : t.data_as<double>()[k];
}

inline void set_value(Tensor& t, std::int64_t k, double v) {
  if (t.dtype() == DType::f32) {
    t.data_as<float>()[k] = static_cast<float>(v);
  } else {
    t.data_as<double>()[k] = v;
  }
}

// Uniform values in [-1, 1).
inline Tensor random_tensor(DType dtype, const Shape& shape, std::mt19937_64& rng) {
  Tensor t(dtype, shape);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  for (std::int64_t k = 0; k < t.numel(); ++k) set_value(t, k, dist(rng));
  return t;
}

// Small integers in [-lo, hi]: every sum of a few thousand products of them is
// exact in float32, so results can be compared for equality.
inline Tensor random_ints(DType dtype, const Shape& shape, std::mt19937_64& rng, int lo = -4, int hi = 4) {
  Tensor t(dtype, shape);
  std::uniform_int_distribution<int> dist(lo, hi);
  for (std::int64_t k = 0; k < t.numel(); ++k) set_value(t, k, dist(rng));
  return t;
}

inline Tensor convert(const TensorView& view, DType dtype) {
  const Tensor src = Tensor::copy_of(view);
  Tensor out(dtype, src.shape());
  for (std::int64_t k = 0; k < src.numel(); ++k) set_value(out, k, value_at(src, k));
  return out;
}

inline Tensor absolute(const TensorView& view) {
  Tensor out = convert(view, DType::f64);
  for (std::int64_t k = 0; k < out.numel(); ++k) out.data_as<double>()[k] = std::fabs(out.data_as<double>()[k]);
  return out;
}

inline Tensor from_values(DType dtype, const Shape& shape, const std::vector<double>& values) {
  Tensor t(dtype, shape);
  EXPECT_EQ(t.numel(), static_cast<std::int64_t>(values.size()));
  for (std::size_t k = 0; k < values.size(); ++k) set_value(t, static_cast<std::int64_t>(k), values[k]);
  return t;
}

inline std::vector<double> values_of(const Tensor& t) {
  std::vector<double> v(static_cast<std::size_t>(t.numel()));
  for (std::int64_t k = 0; k < t.numel(); ++k) v[static_cast<std::size_t>(k)] = value_at(t, k);
  return v;
}

// One (transposed) convolution problem, described the way PyTorch's user writes it.
struct Case {
  ConvKind kind = ConvKind::conv_transpose;
  DType dtype = DType::f32;
  bool batched = true;
  std::int64_t batch = 1, in_channels = 1, out_channels = 1, groups = 1;
  std::vector<std::int64_t> size, kernel, stride, padding, padding_end, output_padding, dilation;
  bool bias = false;

  int rank() const { return static_cast<int>(size.size()); }
  ConvParams params() const {
    ConvParams p;
    p.stride = SpatialParam(stride);
    p.padding = SpatialParam(padding);
    if (!padding_end.empty()) p.padding_end = SpatialParam(padding_end);
    p.output_padding = SpatialParam(output_padding);
    p.dilation = SpatialParam(dilation);
    p.groups = groups;
    return p;
  }
  Shape input_shape() const {
    Shape s;
    if (batched) s.push_back(batch);
    s.push_back(in_channels);
    s.insert(s.end(), size.begin(), size.end());
    return s;
  }
  Shape weight_shape() const {
    Shape s = kind == ConvKind::conv ? Shape{out_channels, in_channels / groups}
                                     : Shape{in_channels, out_channels / groups};
    s.insert(s.end(), kernel.begin(), kernel.end());
    return s;
  }
  std::int64_t pad_end(int d) const { return padding_end.empty() ? padding[d] : padding_end[d]; }
  // The output size per dimension by PyTorch's formulas (may be < 1: an invalid case).
  std::int64_t output_size(int d) const {
    const std::int64_t span = dilation[d] * (kernel[d] - 1);
    if (kind == ConvKind::conv) {
      const std::int64_t room = size[d] + padding[d] + pad_end(d) - span - 1;
      // floor division (room may be negative)
      const std::int64_t q = room >= 0 ? room / stride[d] : -((-room + stride[d] - 1) / stride[d]);
      return q + 1;
    }
    return (size[d] - 1) * stride[d] - padding[d] - pad_end(d) + span + output_padding[d] + 1;
  }
  Shape output_shape() const {
    Shape s;
    if (batched) s.push_back(batch);
    s.push_back(out_channels);
    for (int d = 0; d < rank(); ++d) s.push_back(output_size(d));
    return s;
  }
  bool valid() const {
    for (int d = 0; d < rank(); ++d) {
      if (output_size(d) < 1) return false;
      if (kind == ConvKind::conv_transpose && output_padding[d] >= stride[d] && output_padding[d] >= dilation[d])
        return false;
    }
    return true;
  }
  std::string describe() const {
    std::ostringstream o;
    auto list = [&](const char* name, const std::vector<std::int64_t>& v) {
      o << " " << name << "=";
      for (std::size_t k = 0; k < v.size(); ++k) o << (k ? "," : "") << v[k];
    };
    o << conv_kind_name(kind) << " " << dtype_name(dtype) << " input=" << shape_to_string(input_shape())
      << " weight=" << shape_to_string(weight_shape()) << " groups=" << groups;
    list("stride", stride);
    list("padding", padding);
    if (!padding_end.empty()) list("padding_end", padding_end);
    if (kind == ConvKind::conv_transpose) list("output_padding", output_padding);
    list("dilation", dilation);
    o << (bias ? " bias" : " no-bias");
    return o.str();
  }
};

struct CaseLimits {
  int min_rank = 1, max_rank = 3;
  std::int64_t max_batch = 2, min_channels_per_group = 1, max_channels_per_group = 3, max_groups = 3, max_size = 7,
               max_kernel = 4;
  std::int64_t max_stride = 3, max_padding = 3, max_dilation = 3;
  bool asymmetric_padding = false;
  double depthwise_share = 0.2;  // cases with one input and one output channel per group
  std::optional<ConvKind> kind;
  std::optional<DType> dtype;
};

// A random valid case (retries until PyTorch's formulas give a positive output).
inline Case random_case(std::mt19937_64& rng, const CaseLimits& lim = {}) {
  auto pick = [&](std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng); };
  for (;;) {
    Case c;
    c.kind = lim.kind ? *lim.kind : (pick(0, 1) ? ConvKind::conv_transpose : ConvKind::conv);
    c.dtype = lim.dtype ? *lim.dtype : (pick(0, 1) ? DType::f64 : DType::f32);
    const int rank = static_cast<int>(pick(lim.min_rank, lim.max_rank));
    c.batched = pick(0, 4) != 0;
    c.batch = c.batched ? pick(1, lim.max_batch) : 1;
    const bool depthwise = std::uniform_real_distribution<double>(0, 1)(rng) < lim.depthwise_share;
    c.groups = depthwise ? pick(1, std::max<std::int64_t>(lim.max_groups, 4)) : pick(1, lim.max_groups);
    c.in_channels = c.groups * (depthwise ? 1 : pick(lim.min_channels_per_group, lim.max_channels_per_group));
    c.out_channels = c.groups * (depthwise ? 1 : pick(lim.min_channels_per_group, lim.max_channels_per_group));
    c.bias = pick(0, 1) != 0;
    for (int d = 0; d < rank; ++d) {
      c.size.push_back(pick(1, lim.max_size));
      c.kernel.push_back(pick(1, lim.max_kernel));
      c.stride.push_back(pick(1, lim.max_stride));
      c.padding.push_back(pick(0, lim.max_padding));
      c.dilation.push_back(pick(1, lim.max_dilation));
      const std::int64_t op_limit = std::max(c.stride.back(), c.dilation.back()) - 1;
      c.output_padding.push_back(c.kind == ConvKind::conv_transpose ? pick(0, op_limit) : 0);
    }
    if (lim.asymmetric_padding && pick(0, 1)) {
      for (int d = 0; d < rank; ++d) c.padding_end.push_back(pick(0, lim.max_padding));
    }
    if (c.valid()) return c;
  }
}

// An operator forced to `name`, or nothing when that family declines the
// problem (it must then say so in the documented words).
inline std::optional<Operator> forced(const std::string& name, ConvKind kind, const TensorView& weight,
                               const TensorView* bias, const ConvParams& params) {
  OperatorOptions options;
  options.implementation = name;
  try {
    Operator op = Operator::create(kind, weight, bias, params, options);
    EXPECT_EQ(op.implementation(), name);
    return op;
  } catch (const Error& e) {
    EXPECT_NE(name, "direct") << "the direct family accepts everything: " << e.what();
    EXPECT_EQ(std::string(e.what()).rfind("implementation '" + name + "' was forced but ", 0), 0u) << e.what();
    return std::nullopt;
  }
}

struct Operands {
  Tensor input, weight, bias;
  bool has_bias = false;
  const TensorView* bias_view() const { return has_bias ? &bias_view_ : nullptr; }
  TensorView bias_view_;
};

inline Operands random_operands(const Case& c, std::mt19937_64& rng, bool integers = false) {
  Operands o;
  auto make = [&](const Shape& s) { return integers ? random_ints(c.dtype, s, rng) : random_tensor(c.dtype, s, rng); };
  o.input = make(c.input_shape());
  o.weight = make(c.weight_shape());
  o.has_bias = c.bias;
  if (c.bias) {
    o.bias = make({c.out_channels});
    o.bias_view_ = o.bias.view();
  }
  return o;
}

// The oracle: PyTorch's definition, loop by loop, in double, over any rank.
inline Tensor oracle(const Case& c, const TensorView& input, const TensorView& weight, const TensorView* bias) {
  const Tensor x = convert(input, DType::f64), w = convert(weight, DType::f64);
  const std::optional<Tensor> b = bias ? std::optional<Tensor>(convert(*bias, DType::f64)) : std::nullopt;
  const int rank = c.rank();
  std::vector<std::int64_t> out_size(static_cast<std::size_t>(rank));
  for (int d = 0; d < rank; ++d) out_size[static_cast<std::size_t>(d)] = c.output_size(d);
  auto volume = [](const std::vector<std::int64_t>& v) {
    std::int64_t n = 1;
    for (auto e : v) n *= e;
    return n;
  };
  const std::int64_t in_plane = volume(c.size), out_plane = volume(out_size), taps = volume(c.kernel);
  const std::int64_t cin_g = c.in_channels / c.groups, cout_g = c.out_channels / c.groups;
  Tensor y(DType::f64, c.output_shape());
  double* yd = y.data_as<double>();
  const double* xd = x.data_as<double>();
  const double* wd = w.data_as<double>();
  // Unravel a flat index over `extent` into coordinates.
  auto unravel = [&](std::int64_t flat, const std::vector<std::int64_t>& extent) {
    std::vector<std::int64_t> pos(extent.size());
    for (std::size_t d = extent.size(); d-- > 0;) {
      pos[d] = flat % extent[d];
      flat /= extent[d];
    }
    return pos;
  };
  for (std::int64_t n = 0; n < c.batch; ++n)
    for (std::int64_t co = 0; co < c.out_channels; ++co)
      for (std::int64_t flat = 0; flat < out_plane; ++flat) {
        yd[(n * c.out_channels + co) * out_plane + flat] = b ? b->data_as<double>()[co] : 0.0;
      }
  const std::int64_t group_of_out_divisor = cout_g;
  for (std::int64_t n = 0; n < c.batch; ++n)
    for (std::int64_t ci = 0; ci < c.in_channels; ++ci) {
      const std::int64_t group = ci / cin_g;
      for (std::int64_t col = 0; col < cout_g; ++col) {
        const std::int64_t co = group * group_of_out_divisor + col;
        for (std::int64_t t_flat = 0; t_flat < taps; ++t_flat) {
          const auto t = unravel(t_flat, c.kernel);
          const double wv = c.kind == ConvKind::conv ? wd[(co * cin_g + ci % cin_g) * taps + t_flat]
                                                     : wd[(ci * cout_g + col) * taps + t_flat];
          if (c.kind == ConvKind::conv) {
            for (std::int64_t o_flat = 0; o_flat < out_plane; ++o_flat) {
              const auto o = unravel(o_flat, out_size);
              std::int64_t i_flat = 0;
              bool inside = true;
              for (int d = 0; d < rank; ++d) {
                const std::int64_t i = o[d] * c.stride[d] - c.padding[d] + t[d] * c.dilation[d];
                inside = inside && i >= 0 && i < c.size[d];
                i_flat = i_flat * c.size[d] + i;
              }
              if (inside) {
                yd[(n * c.out_channels + co) * out_plane + o_flat] += wv * xd[(n * c.in_channels + ci) * in_plane + i_flat];
              }
            }
          } else {
            for (std::int64_t i_flat = 0; i_flat < in_plane; ++i_flat) {
              const auto i = unravel(i_flat, c.size);
              std::int64_t o_flat = 0;
              bool inside = true;
              for (int d = 0; d < rank; ++d) {
                const std::int64_t o = i[d] * c.stride[d] - c.padding[d] + t[d] * c.dilation[d];
                inside = inside && o >= 0 && o < out_size[static_cast<std::size_t>(d)];
                o_flat = o_flat * out_size[static_cast<std::size_t>(d)] + o;
              }
              if (inside) {
                yd[(n * c.out_channels + co) * out_plane + o_flat] += wv * xd[(n * c.in_channels + ci) * in_plane + i_flat];
              }
            }
          }
        }
      }
    }
  return y;
}

// The error bound's scale per element: the same computation on |x|, |w|, |b|.
inline Tensor oracle_scale(const Case& c, const TensorView& input, const TensorView& weight, const TensorView* bias) {
  const Tensor ax = absolute(input), aw = absolute(weight);
  std::optional<Tensor> ab;
  if (bias) ab = absolute(*bias);
  const TensorView abv = ab ? ab->view() : TensorView();
  return oracle(c, ax.view(), aw.view(), ab ? &abv : nullptr);
}

// |got - want| <= tol * scale elementwise (plus a denormal-sized floor), same shape and dtype.
inline ::testing::AssertionResult close_to(const Tensor& got, const Tensor& want, const Tensor& scale, double tol,
                                           DType expected_dtype) {
  if (got.dtype() != expected_dtype) {
    return ::testing::AssertionFailure() << "dtype " << dtype_name(got.dtype()) << ", expected " << dtype_name(expected_dtype);
  }
  if (got.shape() != want.shape()) {
    return ::testing::AssertionFailure() << "shape " << shape_to_string(got.shape()) << ", expected "
                                         << shape_to_string(want.shape());
  }
  std::int64_t bad = 0, first = -1;
  double worst = 0;
  for (std::int64_t k = 0; k < got.numel(); ++k) {
    const double g = value_at(got, k), w = value_at(want, k), s = value_at(scale, k);
    const double err = std::fabs(g - w);
    if (!(err <= tol * s + 1e-300)) {
      if (bad++ == 0) first = k;
      worst = std::max(worst, s > 0 ? err / s : err);
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << got.numel() << " elements off (first at flat index " << first
                                       << ": got " << value_at(got, first) << ", expected " << value_at(want, first)
                                       << "); worst relative error " << worst << " > " << tol;
}

inline ::testing::AssertionResult bits_equal(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) {
    return ::testing::AssertionFailure() << "dtype or shape differ: " << shape_to_string(a.shape()) << " vs "
                                         << shape_to_string(b.shape());
  }
  const std::size_t bytes = static_cast<std::size_t>(a.numel()) * dtype_size(a.dtype());
  if (bytes == 0 || std::memcmp(a.data(), b.data(), bytes) == 0) return ::testing::AssertionSuccess();
  for (std::int64_t k = 0; k < a.numel(); ++k) {
    if (std::memcmp(static_cast<const char*>(a.data()) + k * static_cast<std::int64_t>(dtype_size(a.dtype())),
                    static_cast<const char*>(b.data()) + k * static_cast<std::int64_t>(dtype_size(a.dtype())),
                    dtype_size(a.dtype())) != 0) {
      return ::testing::AssertionFailure() << "first difference at flat index " << k << ": " << value_at(a, k) << " vs "
                                           << value_at(b, k);
    }
  }
  return ::testing::AssertionFailure() << "bytes differ";
}

// Tolerances: results accumulated in the dtype may differ from the exact sum by
// a few ulps per term relative to the sum of |terms|.
inline double tolerance(DType dtype) { return dtype == DType::f32 ? 1e-5 : 1e-12; }

// Runs `f` and returns the tconv::Error it throws (failing the test if it throws nothing or something else).
inline std::optional<Error> error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-tconv exception: " << e.what();
    return std::nullopt;
  }
  ADD_FAILURE() << "threw nothing";
  return std::nullopt;
}

// A tensor whose storage lies flush against an inaccessible page, after its
// last byte or before its first, so that a kernel reading or writing anything
// outside it (an active SIMD lane past a row's end, say) faults here instead of
// touching a neighbour's memory. It checks what ASan would, also where kernels
// are compiled uninstrumented (src/kernels/isa_target.hpp) and in every build.
// Masked-off lanes may touch the page: the CPU suppresses their faults.
class PageGuardedTensor {
 public:
  enum class Guard { after, before };
  PageGuardedTensor(DType dtype, Shape shape, Guard guard) : view_(nullptr, dtype, std::move(shape)) {
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    const std::size_t bytes = static_cast<std::size_t>(view_.numel()) * dtype_size(dtype);
    mapped_bytes_ = (bytes + page - 1) / page * page + page;
    void* mapped = mmap(nullptr, mapped_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED) throw std::runtime_error("mmap failed");
    mapped_ = static_cast<char*>(mapped);
    char* const guard_page = guard == Guard::after ? mapped_ + mapped_bytes_ - page : mapped_;
    if (mprotect(guard_page, page, PROT_NONE) != 0) throw std::runtime_error("mprotect failed");
    view_.data = guard == Guard::after ? guard_page - bytes : guard_page + page;
  }
  PageGuardedTensor(const TensorView& contents, Guard guard) : PageGuardedTensor(contents.dtype, contents.shape, guard) {
    copy(contents, mutable_view());
  }
  PageGuardedTensor(const PageGuardedTensor&) = delete;
  PageGuardedTensor& operator=(const PageGuardedTensor&) = delete;
  ~PageGuardedTensor() { munmap(mapped_, mapped_bytes_); }

  const TensorView& view() const { return view_; }
  MutableTensorView mutable_view() const {
    return MutableTensorView(const_cast<void*>(view_.data), view_.dtype, view_.shape);
  }

 private:
  char* mapped_ = nullptr;
  std::size_t mapped_bytes_ = 0;
  TensorView view_;
};

// Restores the thread count a test changes.
class ThreadCountGuard {
 public:
  ThreadCountGuard() : saved_(num_threads()) {}
  ~ThreadCountGuard() { set_num_threads(saved_); }

 private:
  int saved_;
};

}  // namespace tconv::testing
