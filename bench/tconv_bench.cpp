// tconv_bench: times one implementation of transposed convolution (or, with
// --op conv, of convolution) on every case of a suite file (tconv itself, oneDNN,
// XNNPACK) or measures the machine's FMA peak. bench/run.py runs it once per
// implementation per round and merges.
//
//   tconv_bench --impl tconv|tconv_nhwc|onednn_blocked|onednn_nchw|xnnpack|peak|bandwidth|list
//               [--op conv_transpose|conv] [--suite FILE] [--budget 0.3] [--max-iters 20]
//               [--min-iters 3] [--threads 2] [--verify] [--json] [--allow-ref]
//
// --op conv reads every suite case (a transposed convolution) as the convolution
// it is the gradient of: input [N, Cout, transposed output spatial...], weight
// [Cin, Cout/g, k...] (PyTorch's conv layout, the same tensor), output
// [N, Cin, suite input spatial...], same stride, padding, dilation and groups;
// output_padding plays no part. The work, 2*N*Cin*(Cout/g)*prod(k)*prod(suite
// input spatial), is the same.
//
// Each case: weights prepared once (untimed), one warm-up run, then timed runs
// until `budget` seconds have passed or `max-iters` runs were made (at least
// `min-iters`); the minimum time is reported. --verify compares the peer's
// output on every case with tconv's (layout conversions included).
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "tconv/tconv.hpp"

#ifdef TCONV_BENCH_ONEDNN
#include <dnnl.hpp>
#endif
#ifdef TCONV_BENCH_XNNPACK
// Debian ships libpthreadpool without its header: bench/shim/pthreadpool.h declares what is used.
#include <pthreadpool.h>
#include <xnnpack.h>
#endif

namespace {

using Clock = std::chrono::steady_clock;

struct Case {
  std::string name;
  int dims = 2;
  std::int64_t n = 1, cin = 1, cout = 1;
  std::vector<std::int64_t> spatial;
  std::int64_t k = 1, s = 1, p = 0, op = 0, d = 1, g = 1;
  bool conv = false;  // --op conv: the convolution this transposed convolution is the gradient of

  // The suite's transposed convolution: output size, input and output shapes.
  std::int64_t out_size(int i) const { return (spatial[i] - 1) * s - 2 * p + d * (k - 1) + op + 1; }
  tconv::Shape input_shape() const {
    tconv::Shape sh{n, cin};
    sh.insert(sh.end(), spatial.begin(), spatial.end());
    return sh;
  }
  tconv::Shape output_shape() const {
    tconv::Shape sh{n, cout};
    for (int i = 0; i < dims; ++i) sh.push_back(out_size(i));
    return sh;
  }
  tconv::Shape weight_shape() const {
    tconv::Shape sh{cin, cout / g};
    for (int i = 0; i < dims; ++i) sh.push_back(k);
    return sh;
  }
  // What is measured: the transposed convolution's shapes, or the convolution's
  // (its input is the transposed convolution's output and the other way round).
  tconv::ConvKind kind() const { return conv ? tconv::ConvKind::conv : tconv::ConvKind::conv_transpose; }
  tconv::Shape x_shape() const { return conv ? output_shape() : input_shape(); }
  tconv::Shape y_shape() const { return conv ? input_shape() : output_shape(); }
  std::int64_t x_channels() const { return conv ? cout : cin; }
  std::int64_t y_channels() const { return conv ? cin : cout; }
  tconv::ConvParams params() const {
    tconv::ConvParams pr;
    pr.stride = s;
    pr.padding = p;
    pr.output_padding = conv ? 0 : op;
    pr.dilation = d;
    pr.groups = g;
    return pr;
  }
};

std::int64_t numel(const tconv::Shape& sh) {
  std::int64_t e = 1;
  for (auto v : sh) e *= v;
  return e;
}

std::vector<Case> read_suite(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open suite file " + path);
  std::vector<Case> cases;
  std::string line;
  while (std::getline(in, line)) {
    auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    std::istringstream ls(line);
    Case c;
    std::string spatial;
    if (!(ls >> c.name)) continue;
    if (!(ls >> c.dims >> c.n >> c.cin >> c.cout >> spatial >> c.k >> c.s >> c.p >> c.op >> c.d >> c.g)) {
      throw std::runtime_error("bad suite line: " + line);
    }
    std::replace(spatial.begin(), spatial.end(), ',', ' ');
    std::istringstream ss(spatial);
    std::int64_t v;
    while (ss >> v) c.spatial.push_back(v);
    if (static_cast<int>(c.spatial.size()) != c.dims) throw std::runtime_error("bad spatial size: " + line);
    cases.push_back(c);
  }
  return cases;
}

// Every tensor buffer 64-byte aligned, as PyTorch's CPU allocator hands its
// tensors over. A std::vector<float> of a large tensor starts 16 bytes past a
// page boundary (glibc maps it), so that every 64-byte vector access of it
// straddles two cache lines, a cost no PyTorch user pays.
template <class T>
struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::size_t kAlignment = 64;
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{kAlignment})); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t{kAlignment}); }
  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const { return true; }
};
using Floats = std::vector<float, CacheLineAllocator<float>>;

// Deterministic data in [-1, 1).
void fill(Floats& v, std::uint32_t seed) {
  std::uint32_t x = seed * 2654435761u + 12345u;
  for (auto& e : v) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    e = static_cast<float>(x >> 8) / static_cast<float>(1u << 23) - 1.0f;
  }
}

struct Options {
  std::string impl;
  std::string suite = "../shared/bench/suite_public.txt";
  bool conv = false;  // --op conv
  double budget = 0.3;
  int max_iters = 20, min_iters = 3, threads = 2;
  bool verify = false, json = false, allow_ref = false;
};

// Times `fn` as described at the top; returns {best seconds, runs}.
std::pair<double, int> time_best(const Options& o, const std::function<void()>& fn) {
  fn();  // warm-up
  double best = 1e30;
  int iters = 0;
  auto start = Clock::now();
  while (true) {
    auto t0 = Clock::now();
    fn();
    auto t1 = Clock::now();
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
    ++iters;
    double elapsed = std::chrono::duration<double>(t1 - start).count();
    if (iters >= o.min_iters && (elapsed >= o.budget || iters >= o.max_iters)) break;
  }
  return {best, iters};
}

struct Result {
  std::string name;
  double seconds = -1;
  int iters = 0;
  std::string detail;  // chosen implementation
  std::int64_t workspace = -1;
  double max_abs_err = -1;  // vs tconv, when verified
  std::string skipped;
};

// The problem's data and tconv's output, which peers are checked against.
struct Data {
  Floats x, w, b;
  explicit Data(const Case& c)
      : x(numel(c.x_shape())), w(numel(c.weight_shape())), b(c.y_channels()) {
    fill(x, 1);
    fill(w, 2);
    fill(b, 3);
    // 1/sqrt(fan-in): the input channels per group (of the measured operation) times the taps.
    float scale = 1.0f / std::sqrt(static_cast<float>(c.x_channels() / c.g * std::pow(c.k, c.dims)));
    for (auto& e : w) e *= scale;
  }
  Floats tconv_output(const Case& c) const {
    tconv::TensorView wv(w.data(), c.weight_shape());
    tconv::TensorView bv(b.data(), tconv::Shape{c.y_channels()});
    auto op = tconv::Operator::create(c.kind(), wv, &bv, c.params());
    Floats y(numel(c.y_shape()));
    op.run(tconv::TensorView(x.data(), c.x_shape()), tconv::MutableTensorView(y.data(), c.y_shape()));
    return y;
  }
};

double max_abs_diff(const Floats& a, const Floats& b) {
  if (a.size() != b.size()) return 1e30;
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, static_cast<double>(std::fabs(a[i] - b[i])));
  return m;
}

// A channels-first shape's dimensions moved to channels-last: [N, C, S...] -> [N, S..., C].
tconv::Shape channels_last_shape(const tconv::Shape& s) {
  tconv::Shape out{s[0]};
  out.insert(out.end(), s.begin() + 2, s.end());
  out.push_back(s[1]);
  return out;
}

// Copies between a channels-first buffer and a channels-last one of the same problem.
void transpose_channels(const Floats& src, Floats& dst, const tconv::Shape& channels_first,
                        bool to_last) {
  const std::int64_t n = channels_first[0], ch = channels_first[1], plane = numel(channels_first) / (n * ch);
  for (std::int64_t b = 0; b < n; ++b)
    for (std::int64_t c = 0; c < ch; ++c)
      for (std::int64_t i = 0; i < plane; ++i) {
        const std::int64_t first = (b * ch + c) * plane + i, last = (b * plane + i) * ch + c;
        dst[static_cast<std::size_t>(to_last ? last : first)] = src[static_cast<std::size_t>(to_last ? first : last)];
      }
}

// tconv on NCHW as PyTorch hands it over, or on NHWC (input transposed untimed,
// as for XNNPACK; verified bit for bit against the NCHW result).
Result bench_tconv(const Options& o, const Case& c, tconv::Layout layout) {
  Result r;
  Data data(c);
  const bool last = layout == tconv::Layout::channels_last;
  tconv::TensorView wv(data.w.data(), c.weight_shape());
  tconv::TensorView bv(data.b.data(), tconv::Shape{c.y_channels()});
  tconv::ConvParams params = c.params();
  params.layout = layout;
  auto op = tconv::Operator::create(c.kind(), wv, &bv, params);
  const tconv::Shape in_shape = last ? channels_last_shape(c.x_shape()) : c.x_shape();
  const tconv::Shape out_shape = last ? channels_last_shape(c.y_shape()) : c.y_shape();
  Floats x = data.x;
  if (last) transpose_channels(data.x, x, c.x_shape(), true);
  Floats y(numel(out_shape));
  tconv::TensorView xv(x.data(), in_shape);
  tconv::MutableTensorView yv(y.data(), out_shape);
  auto [t, it] = time_best(o, [&] { op.run(xv, yv); });
  r.seconds = t;
  r.iters = it;
  const tconv::Plan plan = op.plan(in_shape);
  r.detail = op.implementation() + (plan.strategy.empty() ? "" : " (" + plan.strategy + ")");
  r.workspace = static_cast<std::int64_t>(plan.workspace_bytes);
  if (o.verify && last) {
    Floats y_first(y.size());
    transpose_channels(y, y_first, c.y_shape(), false);
    const Floats want = data.tconv_output(c);
    r.max_abs_err = std::memcmp(y_first.data(), want.data(), want.size() * sizeof(float)) == 0
                        ? 0.0 : std::max(max_abs_diff(y_first, want), 1e-30);
  }
  return r;
}

#ifdef TCONV_BENCH_ONEDNN
// oneDNN's deconvolution_forward, or convolution_forward with --op conv.
Result bench_onednn(const Options& o, const Case& c, bool blocked) {
  using namespace dnnl;
  using tag = memory::format_tag;
  using dt = memory::data_type;
  Result r;
  Data data(c);
  engine eng(engine::kind::cpu, 0);
  stream strm(eng);
  memory::dims src_dims = c.x_shape(), dst_dims = c.y_shape();
  // oneDNN's weights are [g][oc][ic][k...] with oc the dst channels, in both directions.
  const std::int64_t gic = c.x_channels() / c.g, goc = c.y_channels() / c.g;
  memory::dims wdims;
  if (c.g > 1) wdims = {c.g, goc, gic};
  else wdims = {c.y_channels(), c.x_channels()};
  for (int i = 0; i < c.dims; ++i) wdims.push_back(c.k);
  // Trailing padding p - output_padding: the deconvolution's dst grows by
  // output_padding; the convolution then leaves those last input rows unread
  // (the same as padding p with the output size floored).
  memory::dims strides(c.dims, c.s), dilates(c.dims, c.d - 1), pad_l(c.dims, c.p), pad_r(c.dims, c.p - c.op);
  const tag act_tag = c.dims == 1 ? tag::ncw : c.dims == 2 ? tag::nchw : tag::ncdhw;
  const tag w_tag = c.g > 1 ? (c.dims == 1 ? tag::goiw : c.dims == 2 ? tag::goihw : tag::goidhw)
                            : (c.dims == 1 ? tag::oiw : c.dims == 2 ? tag::oihw : tag::oidhw);
  memory::desc user_src(src_dims, dt::f32, act_tag), user_dst(dst_dims, dt::f32, act_tag),
      user_w(wdims, dt::f32, w_tag), bias_md({c.y_channels()}, dt::f32, tag::x);
  memory::desc src_md = blocked ? memory::desc(src_dims, dt::f32, tag::any) : user_src;
  memory::desc dst_md = blocked ? memory::desc(dst_dims, dt::f32, tag::any) : user_dst;
  memory::desc w_md = blocked ? memory::desc(wdims, dt::f32, tag::any) : user_w;
  primitive_desc pd;
  if (c.conv) {
    convolution_forward::desc desc(prop_kind::forward_inference, algorithm::convolution_direct, src_md, w_md,
                                   bias_md, dst_md, strides, dilates, pad_l, pad_r);
    pd = convolution_forward::primitive_desc(desc, eng);
  } else {
    deconvolution_forward::desc desc(prop_kind::forward_inference, algorithm::deconvolution_direct, src_md, w_md,
                                     bias_md, dst_md, strides, dilates, pad_l, pad_r);
    pd = deconvolution_forward::primitive_desc(desc, eng);
  }
  r.detail = pd.impl_info_str();
  r.workspace = static_cast<std::int64_t>(pd.scratchpad_desc().get_size());
  if (r.detail.rfind("ref", 0) == 0 && !o.allow_ref) {
    r.skipped = "oneDNN offers only its reference loop (" + r.detail +
                ") for these layouts: minutes per run, not timed (--allow-ref times it)";
    return r;
  }

  // PyTorch's transposed-convolution weight [Cin, Cout/g, k...] -> oneDNN [g][oc][ic][k...]; a convolution's
  // [Cout, Cin/g, k...] is that already.
  const std::int64_t ksz = numel(c.weight_shape()) / (c.cin * (c.cout / c.g));
  Floats wperm(data.w.size());
  if (c.conv) {
    wperm = data.w;
  } else {
    for (std::int64_t gi = 0; gi < c.g; ++gi)
      for (std::int64_t oc = 0; oc < goc; ++oc)
        for (std::int64_t ic = 0; ic < gic; ++ic)
          for (std::int64_t kk = 0; kk < ksz; ++kk)
            wperm[((gi * goc + oc) * gic + ic) * ksz + kk] = data.w[((gi * gic + ic) * goc + oc) * ksz + kk];
  }

  memory usrc(user_src, eng, data.x.data()), uw(user_w, eng, wperm.data()), ubias(bias_md, eng, data.b.data());
  Floats y(numel(c.y_shape()));
  memory udst(user_dst, eng, y.data());
  auto prepare = [&](memory& user, const memory::desc& want) {
    if (want == user.get_desc()) return user;
    memory m(want, eng);
    reorder(user, m).execute(strm, user, m);
    strm.wait();
    return m;
  };
  memory src = prepare(usrc, pd.src_desc()), w = prepare(uw, pd.weights_desc());
  memory dst = pd.dst_desc() == user_dst ? udst : memory(pd.dst_desc(), eng);
  memory scratch(pd.scratchpad_desc(), eng);
  primitive prim(pd);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_BIAS, ubias},
                                       {DNNL_ARG_DST, dst}, {DNNL_ARG_SCRATCHPAD, scratch}};
  auto [t, it] = time_best(o, [&] {
    prim.execute(strm, args);
    strm.wait();
  });
  r.seconds = t;
  r.iters = it;
  if (o.verify) {
    if (!(pd.dst_desc() == user_dst)) {
      reorder(dst, udst).execute(strm, dst, udst);
      strm.wait();
    }
    r.max_abs_err = max_abs_diff(y, data.tconv_output(c));
  }
  return r;
}
#endif

#ifdef TCONV_BENCH_XNNPACK
// XNNPACK's deconvolution (or, with --op conv, convolution), NHWC: the input is
// transposed from NCHW untimed, the output back for --verify.
Result bench_xnnpack(const Options& o, const Case& c) {
  Result r;
  if (c.dims != 2) {
    r.skipped = c.conv ? "XNNPACK has 2-D convolution only" : "XNNPACK has 2-D deconvolution only";
    return r;
  }
  Data data(c);
  static bool initialized = xnn_initialize(nullptr) == xnn_status_success;
  if (!initialized) throw std::runtime_error("xnn_initialize failed");
  const std::int64_t xc = c.x_channels(), yc = c.y_channels();
  const std::int64_t gic = xc / c.g, goc = yc / c.g, kk2 = c.k * c.k;
  const tconv::Shape xs = c.x_shape(), ys = c.y_shape();
  const std::int64_t H = xs[2], W = xs[3], OH = ys[2], OW = ys[3];
  // XNNPACK's weights are [g][oc][kh][kw][ic] in both directions. From PyTorch's
  // transposed-convolution weight [g][ic][oc][kh][kw], or its convolution weight [g][oc][ic][kh][kw].
  Floats wperm(data.w.size());
  for (std::int64_t gi = 0; gi < c.g; ++gi)
    for (std::int64_t ic = 0; ic < gic; ++ic)
      for (std::int64_t oc = 0; oc < goc; ++oc)
        for (std::int64_t kk = 0; kk < kk2; ++kk) {
          const std::int64_t from = c.conv ? ((gi * goc + oc) * gic + ic) * kk2 + kk
                                           : ((gi * gic + ic) * goc + oc) * kk2 + kk;
          wperm[((gi * goc + oc) * kk2 + kk) * gic + ic] = data.w[from];
        }
  // NCHW -> NHWC (untimed), with the XNN_EXTRA_BYTES XNNPACK may read past the end.
  Floats xh(data.x.size() + XNN_EXTRA_BYTES / sizeof(float));
  for (std::int64_t n = 0; n < c.n; ++n)
    for (std::int64_t ch = 0; ch < xc; ++ch)
      for (std::int64_t i = 0; i < H * W; ++i) xh[(n * H * W + i) * xc + ch] = data.x[(n * xc + ch) * H * W + i];
  Floats yh(c.n * OH * OW * yc);
  xnn_operator_t op = nullptr;
  const auto p = static_cast<uint32_t>(c.p);
  const auto k = static_cast<uint32_t>(c.k), s = static_cast<uint32_t>(c.s), d = static_cast<uint32_t>(c.d),
             g = static_cast<uint32_t>(c.g);
  const char* what = c.conv ? "xnn_convolution2d_nhwc_f32" : "xnn_deconvolution2d_nhwc_f32";
  const xnn_status created =
      c.conv ? xnn_create_convolution2d_nhwc_f32(p, p, p, p, k, k, s, s, d, d, g, gic, goc, xc, yc, wperm.data(),
                                                 data.b.data(), -INFINITY, INFINITY, 0, &op)
             : xnn_create_deconvolution2d_nhwc_f32(p, p, p, p, k, k, s, s, d, d, g, gic, goc, xc, yc, wperm.data(),
                                                   data.b.data(), -INFINITY, INFINITY, 0, &op);
  if (created != xnn_status_success) {
    r.skipped = std::string(what) + ": create failed";
    return r;
  }
  pthreadpool_t pool = pthreadpool_create(o.threads);
  const xnn_status set_up =
      c.conv ? xnn_setup_convolution2d_nhwc_f32(op, c.n, H, W, xh.data(), yh.data(), pool)
             : xnn_setup_deconvolution2d_nhwc_f32(op, c.n, H, W, c.op, c.op, xh.data(), yh.data(), pool);
  if (set_up != xnn_status_success) {
    r.skipped = std::string(what) + ": setup failed";
  } else {
    auto [t, it] = time_best(o, [&] { xnn_run_operator(op, pool); });
    r.seconds = t;
    r.iters = it;
    r.detail = what;
    if (o.verify) {
      Floats y(yh.size());
      for (std::int64_t n = 0; n < c.n; ++n)
        for (std::int64_t ch = 0; ch < yc; ++ch)
          for (std::int64_t i = 0; i < OH * OW; ++i)
            y[(n * yc + ch) * OH * OW + i] = yh[(n * OH * OW + i) * yc + ch];
      r.max_abs_err = max_abs_diff(y, data.tconv_output(c));
    }
  }
  xnn_delete_operator(op);
  pthreadpool_destroy(pool);
  return r;
}
#endif

// FMA peak: each thread runs many independent FMA chains held in registers.
constexpr int kChains = 16;

__attribute__((target("avx512f"))) double peak_avx512(long iters) {
  double flops = 0;
#pragma omp parallel reduction(+ : flops)
  {
    __m512 acc[kChains];
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i + omp_get_thread_num()));
    for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 16
      for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    }
    __m512 s = acc[0];
    for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
    volatile float sink = _mm512_reduce_add_ps(s);
    (void)sink;
    flops += 2.0 * 16 * kChains * static_cast<double>(iters);
  }
  return flops;
}

// AVX2 has 16 vector registers: 12 chains and the two constants stay in
// them (16 chains spilled, which halved the figure on a Zen 4), and 12 still
// cover two FMA pipes of latency 4 or 5.
constexpr int kChainsAvx2 = 12;

__attribute__((target("avx2,fma"))) double peak_avx2(long iters) {
  double flops = 0;
#pragma omp parallel reduction(+ : flops)
  {
    __m256 acc[kChainsAvx2];
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < kChainsAvx2; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i + omp_get_thread_num()));
    for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 16
      for (int i = 0; i < kChainsAvx2; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    }
    __m256 s = acc[0];
    for (int i = 1; i < kChainsAvx2; ++i) s = _mm256_add_ps(s, acc[i]);
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, s);
    volatile float sink = lanes[0];
    (void)sink;
    flops += 2.0 * 8 * kChainsAvx2 * static_cast<double>(iters);
  }
  return flops;
}

std::string json_str(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    if (static_cast<unsigned char>(ch) < 0x20) continue;
    out += ch;
  }
  return out + "\"";
}

int run_peak(const Options& o) {
  // TCONV_ISA=avx2 (bench/run.py --isa avx2) holds the peak to AVX2 as it holds tconv.
  const char* cap = std::getenv("TCONV_ISA");
  const bool avx512 = __builtin_cpu_supports("avx512f") && !(cap && std::string(cap) == "avx2");
  omp_set_num_threads(o.threads);
  double best = 0;
  // Many short repetitions (about 1 ms each), best kept: robust to a busy machine.
  for (int rep = 0; rep < 300; ++rep) {
    auto t0 = Clock::now();
    double flops = avx512 ? peak_avx512(200'000) : peak_avx2(200'000);
    double sec = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::max(best, flops / sec);
  }
  const char* isa = avx512 ? "avx512" : "avx2";
  if (o.json) {
    std::printf("{\"impl\": \"peak\", \"isa\": \"%s\", \"threads\": %d, \"gflops\": %.2f}\n", isa, o.threads,
                best * 1e-9);
  } else {
    std::printf("FMA peak (%s, %d threads): %.1f GFLOP/s\n", isa, o.threads, best * 1e-9);
  }
  return 0;
}

// Streaming bandwidth: each thread copies its half of a 256 MB buffer (far past
// the caches) into another; bytes read plus bytes written per second, best of 5.
int run_bandwidth(const Options& o) {
  constexpr std::size_t kBytes = std::size_t{256} << 20;
  std::vector<char, CacheLineAllocator<char>> from(kBytes, 1), to(kBytes, 2);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = Clock::now();
#pragma omp parallel num_threads(o.threads)
    {
      const std::size_t share = kBytes / static_cast<std::size_t>(omp_get_num_threads());
      const std::size_t at = share * static_cast<std::size_t>(omp_get_thread_num());
      std::memcpy(to.data() + at, from.data() + at, share);
    }
    best = std::max(best, 2.0 * kBytes / std::chrono::duration<double>(Clock::now() - t0).count());
  }
  if (o.json) {
    std::printf("{\"impl\": \"bandwidth\", \"threads\": %d, \"gbs\": %.2f}\n", o.threads, best * 1e-9);
  } else {
    std::printf("streaming copy bandwidth (%d threads, read + write): %.1f GB/s\n", o.threads, best * 1e-9);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--impl") o.impl = next();
    else if (a == "--suite") o.suite = next();
    else if (a == "--op") {
      const std::string v = next();
      if (v != "conv" && v != "conv_transpose") {
        std::fprintf(stderr, "--op takes conv or conv_transpose, not %s\n", v.c_str());
        return 2;
      }
      o.conv = v == "conv";
    }
    else if (a == "--budget") o.budget = std::stod(next());
    else if (a == "--max-iters") o.max_iters = std::stoi(next());
    else if (a == "--min-iters") o.min_iters = std::stoi(next());
    else if (a == "--threads") o.threads = std::stoi(next());
    else if (a == "--rounds") next();  // one round per process; accepted for symmetry with peers.py
    else if (a == "--verify") o.verify = true;
    else if (a == "--json") o.json = true;
    else if (a == "--allow-ref") o.allow_ref = true;
    else {
      std::fprintf(stderr, "unknown argument %s (see the header of bench/tconv_bench.cpp)\n", a.c_str());
      return 2;
    }
  }
  std::vector<std::string> impls{"tconv", "tconv_nhwc"};
#ifdef TCONV_BENCH_ONEDNN
  impls.push_back("onednn_blocked");
  impls.push_back("onednn_nchw");
#endif
#ifdef TCONV_BENCH_XNNPACK
  impls.push_back("xnnpack");
#endif
  if (o.impl == "list" || o.impl.empty()) {
    for (auto& n : impls) std::printf("%s\n", n.c_str());
    return o.impl.empty() ? 2 : 0;
  }
  if (o.impl == "peak") return run_peak(o);
  if (o.impl == "bandwidth") return run_bandwidth(o);
  if (std::find(impls.begin(), impls.end(), o.impl) == impls.end()) {
    if (o.json) std::printf("{\"impl\": %s, \"available\": false}\n", json_str(o.impl).c_str());
    else std::fprintf(stderr, "implementation %s is not built in\n", o.impl.c_str());
    return o.json ? 0 : 1;
  }
  tconv::set_num_threads(o.threads);
  omp_set_num_threads(o.threads);
  std::vector<Case> cases;
  try {
    cases = read_suite(o.suite);
    for (auto& c : cases) c.conv = o.conv;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  std::vector<Result> results;
  for (const auto& c : cases) {
    Result r;
    try {
      if (o.impl == "tconv") r = bench_tconv(o, c, tconv::Layout::channels_first);
      else if (o.impl == "tconv_nhwc") r = bench_tconv(o, c, tconv::Layout::channels_last);
#ifdef TCONV_BENCH_ONEDNN
      else if (o.impl == "onednn_blocked") r = bench_onednn(o, c, true);
      else if (o.impl == "onednn_nchw") r = bench_onednn(o, c, false);
#endif
#ifdef TCONV_BENCH_XNNPACK
      else if (o.impl == "xnnpack") r = bench_xnnpack(o, c);
#endif
    } catch (const std::exception& e) {
      r = Result{};
      r.skipped = e.what();
    }
    r.name = c.name;
    results.push_back(r);
    if (!o.json) {
      std::printf("%-28s %10.3f ms  %3d runs  %s%s\n", c.name.c_str(), r.seconds * 1e3, r.iters, r.detail.c_str(),
                  r.skipped.c_str());
      std::fflush(stdout);
    }
  }
  if (o.json) {
    std::printf("{\"impl\": %s, \"op\": \"%s\", \"available\": true, \"cases\": [\n", json_str(o.impl).c_str(),
                o.conv ? "conv" : "conv_transpose");
    for (std::size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      std::printf("  {\"name\": %s, \"seconds\": %.9g, \"iters\": %d, \"detail\": %s, \"workspace_bytes\": %lld, "
                  "\"max_abs_err\": %.3g, \"skipped\": %s}%s\n",
                  json_str(r.name).c_str(), r.seconds, r.iters, json_str(r.detail).c_str(),
                  static_cast<long long>(r.workspace), r.max_abs_err, json_str(r.skipped).c_str(),
                  i + 1 < results.size() ? "," : "");
    }
    std::printf("]}\n");
  }
  return 0;
}
