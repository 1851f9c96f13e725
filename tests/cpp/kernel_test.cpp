// The engine: every implementation this CPU runs (forced one at a time) against
// the oracle on a randomized sweep and on the public performance suite; the
// operator lifecycle (plan, caller buffers with strides, concurrency, choice of
// implementation); the same bits for any thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <cstdlib>
#include <limits>
#include <functional>
#include <numeric>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "test_support.hpp"
#include "tconv/tconv.hpp"

namespace tconv {
namespace {

// Every run's workspace starts as NaNs (src/operator.cpp), so that a kernel
// which reads scratch it did not write fails here, not only when the memory
// it got by chance held garbage. Set before main, so before the first run
// reads it, for every test of this executable.
const bool kWorkspacePoisoned = setenv("TCONV_POISON_WORKSPACE", "1", 1) == 0;

TEST(Implementations, RunOnPoisonedWorkspaces) { EXPECT_TRUE(kWorkspacePoisoned); }

// The page guards of the family sweeps below: the element after a tensor
// guarded after it, and the one before a tensor guarded before it, fault.
TEST(Implementations, GuardedTensorsFaultOnTheFirstElementOutside) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  using Guard = testing::PageGuardedTensor::Guard;
  const testing::PageGuardedTensor after(DType::f32, {3, 5}, Guard::after), before(DType::f32, {3, 5}, Guard::before);
  const volatile float* last = static_cast<const float*>(after.view().data) + 14;
  const volatile float* first = static_cast<const float*>(before.view().data);
  EXPECT_EQ(last[0] + first[0], 0.0f);
  EXPECT_DEATH((void)last[1], "");
  EXPECT_DEATH((void)first[-1], "");
}

using testing::Case;
using testing::CaseLimits;
using testing::bits_equal;
using testing::close_to;
using testing::error_of;
using testing::forced;
using testing::oracle;
using testing::oracle_scale;
using testing::random_case;
using testing::random_operands;
using testing::tolerance;
using testing::value_at;

std::optional<Operator> forced(const std::string& name, const Case& c, const testing::Operands& o) {
  return forced(name, c.kind, o.weight.view(), o.bias_view(), c.params());
}

// Every implementation that accepts case c against the oracle (computed once),
// on 3 threads, and the same bits on 1; counts the runs per implementation.
// The input and the output lie against an inaccessible page: after them on 3
// threads, before them on 1.
void check_every_implementation(const Case& c, const testing::Operands& o, const std::vector<std::string>& names,
                                std::map<std::string, int>& ran) {
  using Guard = testing::PageGuardedTensor::Guard;
  const Tensor want = oracle(c, o.input.view(), o.weight.view(), o.bias_view());
  const Tensor scale = oracle_scale(c, o.input.view(), o.weight.view(), o.bias_view());
  const auto run_guarded = [&](const Operator& op, Guard guard) {
    const testing::PageGuardedTensor input(o.input.view(), guard), output(c.dtype, c.output_shape(), guard);
    op.run(input.view(), output.mutable_view());
    return Tensor::copy_of(output.view());
  };
  for (const std::string& name : names) {
    const auto op = forced(name, c, o);
    if (!op) continue;
    set_num_threads(3);
    const Tensor got = run_guarded(*op, Guard::after);
    EXPECT_TRUE(close_to(got, want, scale, tolerance(c.dtype), c.dtype)) << name << ": " << c.describe();
    set_num_threads(1);
    EXPECT_TRUE(bits_equal(run_guarded(*op, Guard::before), got)) << name << ", 1 thread: " << c.describe();
    ++ran[name];
  }
}

// A draw of a number in [lo, hi] from a sweep's generator.
using Pick = std::function<std::int64_t(std::int64_t, std::int64_t)>;

// A sweep made for `families`: draws random cases from `limits` until `count`
// were kept (`reshape` may change a case, drawing from the same generator, and
// says whether to keep it), runs each through every implementation, prints how
// many each ran, and expects each of `families` that this CPU has to have run
// them all.
void sweep_for_families(const char* sweep, const std::vector<std::string>& families, const CaseLimits& limits,
                        std::uint64_t seed, int count, const std::function<bool(Case&, const Pick&)>& reshape) {
  const auto names = available_implementations();
  std::map<std::string, int> ran;
  std::mt19937_64 rng(seed);
  const Pick pick = [&](std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng); };
  for (int kept = 0; kept < count;) {
    Case c = random_case(rng, limits);
    if (!reshape(c, pick)) continue;
    ++kept;
    check_every_implementation(c, random_operands(c, rng), names, ran);
  }
  for (const std::string& name : names) std::cout << name << ": " << ran[name] << " " << sweep << " cases run\n";
  for (const std::string& family : families) {
    if (std::find(names.begin(), names.end(), family) != names.end()) {
      EXPECT_EQ(ran[family], count) << family << " declined cases of its own kind";
    }
  }
}
void sweep_for_family(const char* sweep, const std::string& family, const CaseLimits& limits, std::uint64_t seed,
                      int count, const std::function<bool(Case&, const Pick&)>& reshape) {
  sweep_for_families(sweep, {family}, limits, seed, count, reshape);
}

TEST(Implementations, DirectIsAlwaysAvailable) {
  const auto names = available_implementations();
  EXPECT_NE(std::find(names.begin(), names.end(), "direct"), names.end());
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), names.size()) << "duplicate names";
}

// Every implementation against the oracle on random cases over every parameter;
// half of them depthwise (one channel per group), which specialist families take.
TEST(Implementations, MatchTheOracleOnARandomSweep) {
  CaseLimits general;
  general.asymmetric_padding = true;
  CaseLimits depthwise = general;
  depthwise.max_channels_per_group = 1;
  depthwise.max_groups = 8;
  for (const std::string& name : available_implementations()) {
    SCOPED_TRACE(name);
    std::mt19937_64 rng(99);
    int ran = 0, declined = 0;
    for (int k = 0; k < 600; ++k) {
      const Case c = random_case(rng, k % 2 == 0 ? general : depthwise);
      const testing::Operands o = random_operands(c, rng);
      const auto op = forced(name, c, o);
      if (!op) {
        ++declined;
        continue;
      }
      const Tensor want = oracle(c, o.input.view(), o.weight.view(), o.bias_view());
      const Tensor scale = oracle_scale(c, o.input.view(), o.weight.view(), o.bias_view());
      EXPECT_TRUE(close_to(op->run(o.input.view()), want, scale, tolerance(c.dtype), c.dtype)) << c.describe();
      ++ran;
    }
    std::cout << name << ": " << ran << " cases run, " << declined << " declined\n";
    // The channels-last families decline these channels-first cases; layout_test.cpp sweeps them.
    // The plane-GEMM family wants half a vector of output channels (sweeps of its own), row-dot long kernel rows,
    // row-scatter x strides of 16 to 64, the channels-last detour 16 output channels per group.
    if (name.rfind("igemm_", 0) != 0 && name.rfind("plane_gemm_", 0) != 0 && name.rfind("row_dot_", 0) != 0 &&
        name.rfind("row_scatter_", 0) != 0 && name.rfind("channels_last_", 0) != 0) {
      EXPECT_GT(ran, 40) << "the sweep barely reaches this family: widen it";
    }
  }
}

// Random cases with 16 to 40 channels per group, for the families that want
// several output channels: partial blocks of 8 and 16 output channels, rows of
// any width (partial tiles of 16 columns), every rank, and the same bits on 1
// and 3 threads.
TEST(Implementations, MatchTheOracleOnAWideChannelSweep) {
  testing::ThreadCountGuard guard;
  CaseLimits wide;
  wide.min_channels_per_group = 16;
  wide.max_channels_per_group = 40;
  wide.max_groups = 2;
  wide.max_rank = 2;
  wide.max_size = 21;
  wide.max_stride = 3;
  wide.depthwise_share = 0;
  wide.asymmetric_padding = true;
  wide.dtype = DType::f32;
  CaseLimits wide_3d = wide;
  wide_3d.min_rank = wide_3d.max_rank = 3;
  wide_3d.max_size = 6;
  const auto names = available_implementations();
  std::map<std::string, int> ran;
  std::mt19937_64 rng(31);
  for (int k = 0; k < 120; ++k) {
    Case c = random_case(rng, k % 4 == 3 ? wide_3d : wide);
    // Every third case has few input channels.
    if (k % 3 == 1) c.in_channels = c.groups * (1 + k % 15);
    check_every_implementation(c, random_operands(c, rng), names, ran);
  }
  for (const std::string& name : names) std::cout << name << ": " << ran[name] << " wide cases run\n";
  if (std::find(names.begin(), names.end(), "plane_gemm_avx512") != names.end()) {
    EXPECT_GT(ran["plane_gemm_avx512"], 40) << "plane_gemm_avx512: the sweep barely reaches this family: widen it";
  }
}

// What the sweeps made for plane_gemm draw from: float32, 8 to 20 output
// channels per group (partial blocks of 8), up to 2 groups, asymmetric padding.
CaseLimits plane_gemm_limits() {
  CaseLimits limits;
  limits.dtype = DType::f32;
  limits.min_channels_per_group = 8;
  limits.max_channels_per_group = 20;
  limits.max_groups = 2;
  limits.depthwise_share = 0;
  limits.asymmetric_padding = true;
  return limits;
}

// Planes whose rows are 1 to 70 positions long (vectors running across row
// ends, and rows rounded up to whole vectors where a phase row is longer than
// the input's), 8 to 20 output channels (partial blocks of 8), samples and
// depth rows sharing a tile, transposed convolutions of x stride 1 and 2 with
// any other stride, convolutions of stride 1 to 3 (split into phase planes of
// unequal extents), dilation with stride, asymmetric padding; the same bits on
// 1 and 3 threads.
TEST(Implementations, MatchTheOracleOnPlanesOfAnyRowLength) {
  testing::ThreadCountGuard guard;
  CaseLimits planes = plane_gemm_limits();
  planes.max_batch = 3;
  sweep_for_family("plane", "plane_gemm_avx512", planes, 71, 60, [](Case& c, const Pick& pick) {
    const std::size_t x = c.size.size() - 1;
    c.size[x] = pick(1, 70);
    if (c.kind == ConvKind::conv) {
      std::fill(c.output_padding.begin(), c.output_padding.end(), 0);
    } else {
      c.stride[x] = pick(1, 2);
      c.output_padding[x] = std::min(c.output_padding[x], std::max(c.stride[x], c.dilation[x]) - 1);
    }
    return c.valid();
  });
}

// Strided convolutions whose output rows fill whole vectors or nearly (14 to
// 16, 28 to 32 or 42 to 48 columns), which plane_gemm reads straight from the
// input (x stride 1 or 2, any other stride) instead of splitting it into phase
// planes: tap offsets on both sides of zero, dilation, asymmetric padding,
// partial blocks of 8 output channels, up to 8 blocks (x stride 2 takes them
// in runs of at most 3 of sizes differing by one: 3 + 3 + 2, 2 + 2); the same
// bits on 1 and 3 threads.
TEST(Implementations, MatchTheOracleOnStridedConvolutionsReadInPlace) {
  testing::ThreadCountGuard guard;
  CaseLimits strided = plane_gemm_limits();
  strided.kind = ConvKind::conv;
  sweep_for_family("strided in-place", "plane_gemm_avx512", strided, 43, 40, [](Case& c, const Pick& pick) {
    const std::size_t x = c.size.size() - 1;
    c.stride[x] = pick(1, 2);
    if (std::all_of(c.stride.begin(), c.stride.end(), [](std::int64_t s) { return s == 1; })) c.stride[x] = 2;
    c.out_channels = c.groups * pick(8, 64);
    const std::int64_t vectors = pick(1, 3), columns = 16 * vectors - pick(0, 2 * vectors);
    // The input columns that give `columns` outputs, plus any the stride leaves unread.
    c.size[x] = (columns - 1) * c.stride[x] + c.dilation[x] * (c.kernel[x] - 1) + 1 - c.padding[x] - c.pad_end(static_cast<int>(x)) +
                pick(0, c.stride[x] - 1);
    return c.size[x] >= 1 && c.valid() && c.output_size(static_cast<int>(x)) == columns;
  });
}

// Strided convolutions (stride 2 or 3 in some dimension, every rank, rows of
// 1 to 40 input positions, batch up to 3) that plane_gemm splits into phase
// planes with zero margins and then reads without masks: tap offsets on both
// sides of zero, dilation, asymmetric padding, phases of unequal extents,
// partial blocks of 8 output channels; the same bits on 1 and 3 threads.
TEST(Implementations, MatchTheOracleOnConvolutionsSplitIntoPhasePlanes) {
  testing::ThreadCountGuard guard;
  CaseLimits strided = plane_gemm_limits();
  strided.kind = ConvKind::conv;
  strided.max_batch = 3;
  const auto names = available_implementations();
  const bool runs_here = std::find(names.begin(), names.end(), "plane_gemm_avx512") != names.end();
  int split = 0;
  sweep_for_family("split", "plane_gemm_avx512", strided, 59, 50, [&](Case& c, const Pick& pick) {
    const std::size_t x = c.size.size() - 1;
    c.size[x] = pick(1, 40);
    const std::size_t d = static_cast<std::size_t>(pick(0, static_cast<std::int64_t>(x)));
    c.stride[d] = pick(2, 3);
    if (!c.valid()) return false;
    if (runs_here) {
      std::mt19937_64 rng(static_cast<std::uint64_t>(pick(0, 1 << 30)));
      const auto plane = forced("plane_gemm_avx512", c, random_operands(c, rng));
      if (plane && plane->plan(c.input_shape()).strategy == "input split into its stride phases") ++split;
    }
    return true;
  });
  std::cout << split << " cases split into phase planes\n";
  if (runs_here) EXPECT_GE(split, 30);
}

// Whether `family` and `twin` both took c and gave the same bits (the test
// fails where they differ), on operands seeded from `pick`.
int gives_the_bits_of(const Case& c, const Pick& pick, const std::string& family, const std::string& twin) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(pick(0, 1 << 30)));
  const testing::Operands o = random_operands(c, rng);
  const auto tested = forced(family, c, o), reference = forced(twin, c, o);
  if (!tested || !reference) return 0;
  EXPECT_TRUE(bits_equal(tested->run(o.input.view()), reference->run(o.input.view()))) << c.describe();
  return 1;
}

// Whether family's plan for c goes through the channels-last detour, after
// checking that its bits equal twin's (nothing where either refuses c).
std::optional<bool> detours_with_the_bits_of(const Case& c, const Pick& pick, const std::string& family, const std::string& twin) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(pick(0, 1 << 30)));
  const testing::Operands o = random_operands(c, rng);
  const auto tested = forced(family, c, o), reference = forced(twin, c, o);
  if (!tested || !reference) return std::nullopt;
  const std::string strategy = tested->plan(o.input.shape()).strategy;
  EXPECT_TRUE(bits_equal(tested->run(o.input.view()), reference->run(o.input.view()))) << strategy << ": " << c.describe();
  return strategy.find("channels-last detour") != std::string::npos;
}

// Strides of 1 to 3 in the outer dimensions and 1 or 2 in x, at least one
// above 1: the strided convolutions plane_gemm_avx2 takes.
void pick_strides_plane_gemm_avx2_takes(Case& c, const Pick& pick) {
  const std::size_t x = c.size.size() - 1;
  for (std::size_t d = 0; d < x; ++d) c.stride[d] = pick(1, 3);
  c.stride[x] = pick(1, 2);
  if (std::all_of(c.stride.begin(), c.stride.end(), [](std::int64_t s) { return s == 1; })) c.stride[x] = 2;
}

// The same for plane_gemm_avx2, which splits every strided convolution of x
// stride 1 or 2 (stride 2 or 3 in the other dimensions, at least one above 1):
// 4 to 20 output channels per group (partial blocks of 4), rows of 1 to 40
// input positions, every rank, batch up to 3, and its bits equal to
// phase_gemm_avx2's.
TEST(Implementations, MatchTheOracleOnAvx2ConvolutionsSplitIntoPhasePlanes) {
  testing::ThreadCountGuard guard;
  CaseLimits strided = plane_gemm_limits();
  strided.kind = ConvKind::conv;
  strided.min_channels_per_group = 4;
  strided.max_batch = 3;
  int same_bits = 0;
  sweep_for_family("AVX2 split", "plane_gemm_avx2", strided, 89, 50, [&](Case& c, const Pick& pick) {
    const std::size_t x = c.size.size() - 1;
    c.size[x] = pick(1, 40);
    pick_strides_plane_gemm_avx2_takes(c, pick);
    if (!c.valid()) return false;
    same_bits += gives_the_bits_of(c, pick, "plane_gemm_avx2", "phase_gemm_avx2");
    return true;
  });
  const auto names = available_implementations();
  if (std::find(names.begin(), names.end(), "plane_gemm_avx2") != names.end()) EXPECT_EQ(same_bits, 50);
}

// Strided convolutions of 32 to 40 input channels per group (1 or 2 groups)
// and 8 or 16 output channels per group, which plane_gemm_avx2 hands to the
// channels-last detour whatever their planes (Isa::kDetourInputChannels):
// its plan must say so, and its bits equal phase_gemm_avx2's, as well as the
// oracle's sums; every rank, x stride 1 or 2, dilation, asymmetric padding,
// and planes whose lanes all hold a position.
TEST(Implementations, MatchTheOracleOnAvx2ConvolutionsOfManyInputChannels) {
  testing::ThreadCountGuard guard;
  CaseLimits strided = plane_gemm_limits();
  strided.kind = ConvKind::conv;
  strided.min_channels_per_group = 32;
  strided.max_channels_per_group = 40;
  const auto names = available_implementations();
  const bool runs_here = std::find(names.begin(), names.end(), "plane_gemm_avx2") != names.end();
  int detoured = 0;
  sweep_for_family("AVX2 many input channels", "plane_gemm_avx2", strided, 97, 30, [&](Case& c, const Pick& pick) {
    const std::size_t x = c.size.size() - 1;
    pick_strides_plane_gemm_avx2_takes(c, pick);
    c.out_channels = c.groups * 8 * pick(1, 2);
    if (pick(0, 1) == 0) {
      // Half the cases on planes whose every lane and product counts (k = s,
      // no padding, whole vectors of output columns), which plane_gemm_avx2
      // would otherwise run itself.
      for (std::size_t d = 0; d <= x; ++d) {
        c.kernel[d] = c.stride[d];
        c.size[d] = c.stride[d] * (d == x ? 8 * pick(1, 3) : pick(4, 8));
        c.padding[d] = 0;
        c.dilation[d] = 1;
      }
      c.padding_end.clear();
    }
    if (!c.valid()) return false;
    if (runs_here) detoured += detours_with_the_bits_of(c, pick, "plane_gemm_avx2", "phase_gemm_avx2").value_or(false);
    return true;
  });
  if (runs_here) EXPECT_EQ(detoured, 30);
}

// Convolutions and transposed convolutions of x stride 3 to 5 with 16 or 32
// output channels per group (1 or 2 groups), for the channels-last detour:
// rows of 1 to 40 input positions, every rank, batch up to 3, dilation and
// asymmetric padding. The detour must also give the bits of the channels-first
// family it stands in for, which its header promises.
TEST(Implementations, MatchTheOracleOnTheChannelsLastDetour) {
  testing::ThreadCountGuard guard;
  CaseLimits detour = plane_gemm_limits();
  detour.max_batch = 3;
  const std::string family = "channels_last_igemm_avx512";
  const auto names = available_implementations();
  const bool runs_here = std::find(names.begin(), names.end(), family) != names.end();
  int compared = 0;
  sweep_for_family("channels-last detour", family, detour, 29, 60, [&](Case& c, const Pick& pick) {
    const std::size_t x = c.size.size() - 1;
    c.size[x] = pick(1, 40);
    c.stride[x] = pick(3, 5);
    if (c.kind == ConvKind::conv) {
      std::fill(c.output_padding.begin(), c.output_padding.end(), 0);
    } else {
      c.output_padding[x] = std::min(pick(0, 2), std::max(c.stride[x], c.dilation[x]) - 1);
    }
    c.out_channels = c.groups * 16 * pick(1, 2);
    if (!c.valid()) return false;
    const char* twin = c.kind == ConvKind::conv ? "plane_gemm_avx512" : "phase_gemm_avx512";
    if (runs_here) compared += gives_the_bits_of(c, pick, family, twin);
    return true;
  });
  std::cout << compared << " cases compared bit for bit with the channels-first family\n";
  if (runs_here) EXPECT_EQ(compared, 60);
}

// The AVX2 detour (channels_last_igemm_avx2): both directions, every rank,
// 8 to 32 output channels per group (1 or 2 groups), any stride, dilation and
// asymmetric padding, batch up to 3, where each input element takes part in
// more than 128 products and plane_gemm_avx2 does not take the problem (the
// family's rules); against the oracle, the same bits on 1 and 3 threads, and
// phase_gemm_avx2's bits, which its header promises.
TEST(Implementations, MatchTheOracleOnTheAvx2ChannelsLastDetour) {
  testing::ThreadCountGuard guard;
  CaseLimits detour = plane_gemm_limits();
  detour.max_batch = 3;
  detour.max_kernel = 5;
  const std::string family = "channels_last_igemm_avx2";
  const auto names = available_implementations();
  const bool runs_here = std::find(names.begin(), names.end(), family) != names.end();
  int compared = 0;
  sweep_for_family("AVX2 channels-last detour", family, detour, 41, 40, [&](Case& c, const Pick& pick) {
    c.out_channels = c.groups * 8 * pick(1, 4);
    std::int64_t taps = 1, strides = 1;
    for (std::size_t d = 0; d < c.size.size(); ++d) {
      taps *= c.kernel[d];
      strides *= c.stride[d];
    }
    if (!c.valid() || c.out_channels / c.groups * taps / strides <= 128) return false;
    // Strided convolutions of x stride 1 or 2 are plane_gemm_avx2's.
    if (c.kind == ConvKind::conv && strides > 1 && c.stride.back() <= 2) return false;
    if (runs_here) compared += gives_the_bits_of(c, pick, family, "phase_gemm_avx2");
    return true;
  });
  if (runs_here) EXPECT_EQ(compared, 40);
}

// Short planes (1 to 9 positions a dimension, every rank, batch up to 3) with
// 16 or 32 output channels per group, the shapes on which plane_gemm takes the
// channels-last detour (its plan says so), and now and then one it runs
// itself: both directions, x stride 1 or 2, dilation, asymmetric padding.
// Detoured or not, plane_gemm must give phase_gemm's bits.
TEST(Implementations, MatchTheOracleOnShortPlanesThroughTheDetour) {
  testing::ThreadCountGuard guard;
  CaseLimits planes = plane_gemm_limits();
  planes.max_batch = 3;
  planes.max_size = 9;
  const auto names = available_implementations();
  const bool runs_here = std::find(names.begin(), names.end(), "plane_gemm_avx512") != names.end();
  int detoured = 0, direct = 0;
  sweep_for_family("short-plane", "plane_gemm_avx512", planes, 83, 50, [&](Case& c, const Pick& pick) {
    const std::size_t x = c.size.size() - 1;
    c.stride[x] = pick(1, 2);
    if (c.kind == ConvKind::conv) std::fill(c.output_padding.begin(), c.output_padding.end(), 0);
    for (std::size_t d = 0; d < c.size.size(); ++d) {
      c.output_padding[d] = std::min(c.output_padding[d], std::max(c.stride[d], c.dilation[d]) - 1);
    }
    c.out_channels = c.groups * 16 * pick(1, 2);
    if (pick(0, 4) == 0) {
      // Now and then a shape whose products all count (1 x 1 taps over 16
      // positions a row), which plane_gemm runs itself.
      for (std::size_t d = 0; d < c.size.size(); ++d) {
        c.size[d] = 16;
        c.kernel[d] = 1;
        c.stride[d] = 1;
        c.padding[d] = 0;
        c.output_padding[d] = 0;
        c.dilation[d] = 1;
      }
      c.padding_end.clear();
    }
    if (!c.valid()) return false;
    if (runs_here) {
      if (const std::optional<bool> detours = detours_with_the_bits_of(c, pick, "plane_gemm_avx512", "phase_gemm_avx512")) {
        (*detours ? detoured : direct) += 1;
      }
    }
    return true;
  });
  std::cout << detoured << " cases through the detour, " << direct << " without\n";
  if (runs_here) {
    EXPECT_GE(detoured, 25);
    EXPECT_GE(direct, 1);
  }
}

// Float32 depthwise convolutions (one channel per group) with asymmetric
// padding, for the depthwise_conv sweeps.
CaseLimits depthwise_conv_limits(std::int64_t max_groups) {
  CaseLimits depthwise;
  depthwise.kind = ConvKind::conv;
  depthwise.dtype = DType::f32;
  depthwise.max_channels_per_group = 1;
  depthwise.max_groups = max_groups;
  depthwise.depthwise_share = 1;
  depthwise.asymmetric_padding = true;
  return depthwise;
}

// Depthwise convolutions on planes larger than a tile (rows of 1 to 90 columns,
// 1 to 13 rows: partial tiles of 4 rows x 32 columns), x stride 1 to 3 (stride
// 2 reads rows split into even and odd columns), dilation, asymmetric padding,
// every rank; the same bits on 1 and 3 threads.
TEST(Implementations, MatchTheOracleOnLargeDepthwisePlanes) {
  testing::ThreadCountGuard guard;
  sweep_for_family("depthwise plane", "depthwise_conv_avx512", depthwise_conv_limits(5), 23, 40, [](Case& c, const Pick& pick) {
    const std::size_t x = c.size.size() - 1;
    c.size[x] = pick(1, 90);
    if (x > 0) c.size[x - 1] = pick(1, 13);
    return c.valid();
  });
}

// Depthwise transposed convolutions for every ISA's depthwise family: rows
// of 1 to 40 input columns (up to about 120 output columns: one, two or four
// vectors of a phase side by side, partial vectors), x stride 1 to 3 (stride 2 interleaves two phases, larger
// ones store element by element), dilation, padding that cuts taps off at both
// ends, output padding, every rank; the same bits on 1 and 3 threads, and the
// same bits across ISAs (both leave the lanes outside out of the sum and keep
// one order).
TEST(Implementations, MatchTheOracleOnDepthwiseTransposedRows) {
  testing::ThreadCountGuard guard;
  CaseLimits depthwise = depthwise_conv_limits(4);
  depthwise.kind = ConvKind::conv_transpose;
  const auto names = available_implementations();
  const bool both = std::find(names.begin(), names.end(), "depthwise_avx512") != names.end() &&
                    std::find(names.begin(), names.end(), "depthwise_avx2") != names.end();
  int compared = 0;
  sweep_for_families("depthwise transposed", {"depthwise_avx512", "depthwise_avx2"}, depthwise, 43, 40,
                     [&](Case& c, const Pick& pick) {
    const std::size_t x = c.size.size() - 1;
    c.size[x] = pick(1, 40);
    c.stride[x] = pick(1, 3);
    c.output_padding[x] = std::min(pick(0, 2), std::max(c.stride[x], c.dilation[x]) - 1);
    if (!c.valid()) return false;
    if (both) compared += gives_the_bits_of(c, pick, "depthwise_avx2", "depthwise_avx512");
    return true;
  });
  if (both) EXPECT_EQ(compared, 40);
}

// Depthwise convolutions whose kernel rows depthwise_conv walks in band tiles
// of 8 output rows (3 or 5 kernel rows of y stride 1 or 2, 4 rows of stride 2,
// no y dilation): 1 to 40 output rows (partial bands, input rows cut off by
// padding on both sides), rows of 1 to 70 columns, x stride 1 or 2, any x
// kernel, dilation and padding, 2-D and 3-D; the same bits on 1 and 3 threads.
TEST(Implementations, MatchTheOracleOnDepthwiseBandTiles) {
  testing::ThreadCountGuard guard;
  CaseLimits depthwise = depthwise_conv_limits(3);
  depthwise.min_rank = 2;
  sweep_for_family("depthwise band", "depthwise_conv_avx512", depthwise, 29, 40, [](Case& c, const Pick& pick) {
    const std::size_t x = c.size.size() - 1, y = x - 1;
    static constexpr std::int64_t kBandShapes[][2] = {{3, 1}, {3, 2}, {4, 2}, {5, 1}, {5, 2}};  // kernel rows, stride
    const auto& shape = kBandShapes[pick(0, 4)];
    c.kernel[y] = shape[0];
    c.stride[y] = shape[1];
    c.dilation[y] = 1;
    c.padding[y] = pick(0, shape[0] - 1);
    if (!c.padding_end.empty()) c.padding_end[y] = pick(0, shape[0] - 1);
    c.stride[x] = pick(1, 2);
    c.size[x] = pick(1, 70 * c.stride[x]);
    c.size[y] = pick(1, 40 * c.stride[y]);
    return c.valid();
  });
}

// Depthwise convolutions whose bands build their x taps from the input rows
// themselves (square kernels of 3 and 7 taps at stride 1, of 3, 4 and 5 at
// stride 2, x padding k / 2 before (1 for 4 taps), anything after): rows of 1 to 150
// columns (partial chunks, the row's end inside any of their raw vectors), 1
// to 60 rows, 2-D and 3-D; the same bits on 1 and 3 threads.
TEST(Implementations, MatchTheOracleOnShuffledDepthwiseBands) {
  testing::ThreadCountGuard guard;
  CaseLimits depthwise = depthwise_conv_limits(3);
  depthwise.min_rank = 2;
  sweep_for_family("depthwise shuffled band", "depthwise_conv_avx512", depthwise, 31, 40, [](Case& c, const Pick& pick) {
    const std::size_t x = c.size.size() - 1, y = x - 1;
    const std::int64_t stride = pick(1, 2), k = stride == 1 ? 3 + 4 * pick(0, 1) : pick(3, 5);
    for (const std::size_t d : {x, y}) {
      c.kernel[d] = k;
      c.stride[d] = stride;
      c.dilation[d] = 1;
      if (!c.padding_end.empty()) c.padding_end[d] = pick(0, k - 1);
    }
    c.padding[x] = k == 4 ? 1 : k / 2;
    c.padding[y] = pick(0, k - 1);
    c.size[x] = pick(1, 75 * stride);
    c.size[y] = pick(1, 60);
    return c.valid();
  });
}

// Depthwise convolutions for depthwise_conv_avx2's rings of padded rows: 1-D
// and 2-D, 1 to 7 kernel rows with y dilation up to 3 (rings of 1 to 19
// slots), x stride 1 to 4 (copied lines, rows split in two, and phases split
// element by element), x dilation, rows of 1 to 100 output columns (partial
// tiles of 32), padding past the kernel's reach; the same bits on 1 and 3 threads.
TEST(Implementations, MatchTheOracleOnDepthwiseConvRings) {
  testing::ThreadCountGuard guard;
  CaseLimits depthwise = depthwise_conv_limits(3);
  depthwise.max_rank = 2;
  sweep_for_family("depthwise ring", "depthwise_conv_avx2", depthwise, 37, 40, [](Case& c, const Pick& pick) {
    const std::size_t x = c.size.size() - 1;
    c.stride[x] = pick(1, 4);
    c.dilation[x] = pick(1, 3);
    c.kernel[x] = pick(1, 5);
    c.padding[x] = pick(0, 5);
    if (!c.padding_end.empty()) c.padding_end[x] = pick(0, 5);
    if (x > 0) {
      c.kernel[x - 1] = pick(1, 7);
      c.dilation[x - 1] = pick(1, 3);
      c.stride[x - 1] = pick(1, 3);
      c.size[x - 1] = pick(1, 30);
    }
    c.size[x] = pick(1, 100 * c.stride[x]);
    return c.valid();
  });
}

// Float32 cases of few channels (up to 7 per group, 2 groups) and small y and
// z extents, whose x dimension the long-row sweeps then set.
CaseLimits long_row_limits(ConvKind kind, std::int64_t max_size) {
  CaseLimits small;
  small.kind = kind;
  small.dtype = DType::f32;
  small.max_size = max_size;
  small.max_kernel = 3;
  small.max_channels_per_group = 7;
  small.max_groups = 2;
  small.depthwise_share = 0.1;
  small.asymmetric_padding = true;
  return small;
}

// Convolutions with long kernel rows (32 to 70 taps in x: partial tap
// vectors), any stride and padding in x (columns read as zeros on both sides),
// output channel counts that leave partial tiles, groups, every rank; the same
// bits on 1 and 3 threads; on every ISA's row_dot.
TEST(Implementations, MatchTheOracleOnLongKernelRows) {
  testing::ThreadCountGuard guard;
  sweep_for_families("long-row", {"row_dot_avx512", "row_dot_avx2"}, long_row_limits(ConvKind::conv, 5), 57, 40,
                     [](Case& c, const Pick& pick) {
    const std::size_t x = c.size.size() - 1;
    c.kernel[x] = pick(32, 70);
    c.dilation[x] = 1;
    c.stride[x] = pick(1, 40);
    c.padding[x] = pick(0, 15);
    if (!c.padding_end.empty()) c.padding_end[x] = pick(0, 15);
    const std::int64_t pads = c.padding[x] + (c.padding_end.empty() ? c.padding[x] : c.padding_end[x]);
    c.size[x] = pick(std::max<std::int64_t>(1, c.kernel[x] - pads), c.kernel[x] + 90);
    return true;
  });
}

// Transposed convolutions whose kernel rows are 1 to 3 cells of an x stride
// of 16, 32 or 64 (fcn32's shape), any x padding (cells starting off the
// vectors of 16 columns), output padding, 1 to 10 input columns (partial tiles
// of cells, cells cut off by the padding at both ends), any y and z
// parameters, partial blocks of output channels, groups; the same bits on 1
// and 3 threads, and the same bits as phase_gemm, whose sum order row_scatter
// keeps.
TEST(Implementations, MatchTheOracleOnHugeKernelRowsAtLargeStrides) {
  testing::ThreadCountGuard guard;
  std::vector<std::pair<Case, testing::Operands>> kept;
  std::mt19937_64 operands(67);
  sweep_for_family("huge-row", "row_scatter_avx512", long_row_limits(ConvKind::conv_transpose, 4), 61, 40, [&](Case& c, const Pick& pick) {
    const std::size_t x = c.size.size() - 1;
    const std::int64_t stride = std::int64_t{16} << pick(0, 2);
    c.stride[x] = stride;
    c.kernel[x] = stride * pick(1, 3);
    c.dilation[x] = 1;
    c.padding[x] = pick(0, c.kernel[x] - 1);
    if (!c.padding_end.empty()) c.padding_end[x] = pick(0, c.kernel[x] - 1);
    c.output_padding[x] = pick(0, stride - 1);
    c.size[x] = pick(1, 10);
    if (!c.valid()) return false;
    kept.emplace_back(c, random_operands(c, operands));
    return true;
  });
  const auto names = available_implementations();
  const auto has = [&](const char* n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  if (!has("row_scatter_avx512") || !has("phase_gemm_avx512")) return;
  int compared = 0;
  for (const auto& [c, o] : kept) {
    const auto scatter = forced("row_scatter_avx512", c, o), phase = forced("phase_gemm_avx512", c, o);
    if (!scatter || !phase) continue;  // phase_gemm leaves depthwise problems to its specialists
    EXPECT_TRUE(bits_equal(scatter->run(o.input.view()), phase->run(o.input.view()))) << c.describe();
    ++compared;
  }
  EXPECT_GE(compared, 30);
}

// Input rows of 300 columns, which scatter_gemm reads in 10 chunks of 32
// (AVX-512; 38 chunks of 8 on AVX2, the last ones partial), 64 channels,
// against the oracle and on 1 and 3 threads.
TEST(Implementations, MatchTheOracleOnScatterGemmRowsOfSeveralChunks) {
  testing::ThreadCountGuard guard;
  const Case c{.kind = ConvKind::conv_transpose, .dtype = DType::f32, .batch = 1, .in_channels = 64, .out_channels = 3,
               .size = {8, 300}, .kernel = {4, 4}, .stride = {2, 2}, .padding = {1, 1}, .output_padding = {0, 0},
               .dilation = {1, 1}, .bias = true};
  std::mt19937_64 rng(73);
  std::map<std::string, int> ran;
  const auto names = available_implementations();
  check_every_implementation(c, random_operands(c, rng), names, ran);
  for (const std::string family : {"scatter_gemm_avx512", "scatter_gemm_avx2"}) {
    if (std::find(names.begin(), names.end(), family) != names.end()) EXPECT_EQ(ran[family], 1) << family;
  }
}

// Rows longer than row_scatter's chunk of 240 cells (a padded copy per chunk):
// 1-D, x stride 16, 260 input columns, against the oracle and phase_gemm's bits.
TEST(Implementations, MatchTheOracleOnRowsOfSeveralScatterChunks) {
  testing::ThreadCountGuard guard;
  const Case c{.kind = ConvKind::conv_transpose, .dtype = DType::f32, .batch = 2, .in_channels = 3, .out_channels = 5,
               .size = {260}, .kernel = {32}, .stride = {16}, .padding = {8}, .output_padding = {3}, .dilation = {1},
               .bias = true};
  ASSERT_TRUE(c.valid());
  std::mt19937_64 rng(71);
  const testing::Operands o = random_operands(c, rng);
  std::map<std::string, int> ran;
  const auto names = available_implementations();
  check_every_implementation(c, o, names, ran);
  if (std::find(names.begin(), names.end(), "row_scatter_avx512") == names.end()) return;
  EXPECT_EQ(ran["row_scatter_avx512"], 1);
  const auto scatter = forced("row_scatter_avx512", c, o), phase = forced("phase_gemm_avx512", c, o);
  ASSERT_TRUE(scatter && phase);
  EXPECT_TRUE(bits_equal(scatter->run(o.input.view()), phase->run(o.input.view())));
}

// Channel counts and widths that leave partial vector lanes, channel blocks and
// column panels, with every stride phase and dilation under stride, in both dtypes.
TEST(Implementations, MatchTheOracleAcrossPartialTiles) {
  const std::vector<std::int64_t> channels{1, 3, 17, 33, 65};
  for (const std::string& name : available_implementations()) {
    SCOPED_TRACE(name);
    std::mt19937_64 rng(53);
    for (std::int64_t width = 1; width <= 40; ++width) {
      Case c;
      c.kind = width % 2 ? ConvKind::conv_transpose : ConvKind::conv;
      c.dtype = width % 4 < 2 ? DType::f32 : DType::f64;
      c.batch = 1 + width % 2;
      c.in_channels = channels[static_cast<std::size_t>(width % 5)];
      c.out_channels = channels[static_cast<std::size_t>((3 * width + 1) % 5)];
      c.size = width % 3 == 0 ? std::vector<std::int64_t>{1 + width % 4, width} : std::vector<std::int64_t>{width};
      for (std::size_t d = 0; d < c.size.size(); ++d) {
        c.kernel.push_back(1 + (width + static_cast<std::int64_t>(d)) % 5);
        c.stride.push_back(1 + width % 4);
        c.dilation.push_back(1 + (width / 4) % 2);
        c.padding.push_back(width % 3);
        c.output_padding.push_back(c.kind == ConvKind::conv_transpose ? width % std::max(c.stride[d], c.dilation[d]) : 0);
      }
      c.bias = width % 5 != 0;
      if (!c.valid()) continue;
      const testing::Operands o = random_operands(c, rng);
      const auto op = forced(name, c, o);
      if (!op) continue;
      const Tensor want = oracle(c, o.input.view(), o.weight.view(), o.bias_view());
      const Tensor scale = oracle_scale(c, o.input.view(), o.weight.view(), o.bias_view());
      EXPECT_TRUE(close_to(op->run(o.input.view()), want, scale, tolerance(c.dtype), c.dtype)) << c.describe();
    }
  }
}

// Small integers make every sum exact: the results must equal the oracle's bit for bit.
TEST(Implementations, ExactOnIntegerValuedData) {
  for (const std::string& name : available_implementations()) {
    SCOPED_TRACE(name);
    std::mt19937_64 rng(17);
    CaseLimits lim;
    lim.max_channels_per_group = 5;
    for (int k = 0; k < 150; ++k) {
      const Case c = random_case(rng, lim);
      const testing::Operands o = random_operands(c, rng, /*integers=*/true);
      const auto op = forced(name, c, o);
      if (!op) continue;
      const Tensor want = testing::convert(oracle(c, o.input.view(), o.weight.view(), o.bias_view()).view(), c.dtype);
      EXPECT_TRUE(bits_equal(op->run(o.input.view()), want)) << c.describe();
    }
  }
}

// Shapes big enough to cross every blocking boundary: channel blocks, vector
// lanes, panels of columns, several phases, groups, all three ranks.
TEST(Implementations, MatchTheOracleOnLargerShapes) {
  auto make = [](ConvKind kind, std::int64_t n, std::int64_t cin, std::int64_t cout, std::int64_t g,
                 std::vector<std::int64_t> size, std::int64_t k, std::int64_t s, std::int64_t p, std::int64_t op,
                 std::int64_t d, bool bias) {
    Case c;
    c.kind = kind;
    c.dtype = DType::f32;
    c.batch = n;
    c.in_channels = cin;
    c.out_channels = cout;
    c.groups = g;
    c.size = size;
    const auto r = size.size();
    c.kernel.assign(r, k);
    c.stride.assign(r, s);
    c.padding.assign(r, p);
    c.output_padding.assign(r, op);
    c.dilation.assign(r, d);
    c.bias = bias;
    return c;
  };
  const ConvKind T = ConvKind::conv_transpose, C = ConvKind::conv;
  const std::vector<Case> cases = {
      make(T, 3, 20, 30, 1, {9, 11}, 4, 2, 1, 0, 1, true),
      make(T, 2, 13, 27, 1, {7, 5}, 3, 2, 1, 1, 1, false),
      make(T, 1, 16, 3, 1, {16, 16}, 4, 2, 1, 0, 1, true),
      make(T, 1, 24, 16, 1, {17, 13}, 2, 2, 0, 0, 1, false),
      // k2s2 with an odd output width (the second x phase one column short), 2-D and 3-D, partial channel blocks.
      make(T, 2, 20, 33, 1, {9, 13}, 2, 2, 0, 1, 1, true),
      make(T, 1, 16, 17, 1, {3, 4, 21}, 2, 2, 0, 1, 1, true),
      make(T, 1, 8, 8, 1, {300}, 16, 8, 4, 0, 1, true),
      make(T, 1, 12, 10, 2, {6, 7, 5}, 2, 2, 0, 1, 1, true),
      make(T, 2, 32, 32, 32, {9, 9}, 4, 2, 1, 0, 1, true),
      make(T, 1, 6, 6, 3, {10, 12}, 3, 1, 2, 0, 2, false),
      make(T, 1, 5, 7, 1, {3, 3}, 7, 3, 2, 2, 1, true),
      make(T, 2, 4, 5, 1, {2, 3}, 6, 5, 3, 4, 1, true),
      // Width phases merged into runs of 16 consecutive residues (transposed tile stores), the last
      // column written by only some of them (output_padding).
      make(T, 1, 4, 3, 1, {3, 4}, 32, 16, 0, 5, 1, true),
      make(T, 2, 3, 2, 1, {2, 3}, 16, 16, 0, 0, 1, false),
      make(C, 3, 30, 20, 1, {12, 10}, 3, 1, 1, 0, 1, true),
      make(C, 2, 27, 13, 1, {15, 11}, 4, 2, 1, 0, 1, false),
      make(C, 1, 8, 16, 2, {40}, 5, 3, 2, 0, 2, true),
      make(C, 1, 10, 12, 1, {6, 7, 8}, 3, 2, 1, 0, 1, true),
      make(C, 2, 32, 32, 32, {11, 9}, 3, 2, 1, 0, 1, false),
  };
  for (const std::string& name : available_implementations()) {
    SCOPED_TRACE(name);
    std::mt19937_64 rng(23);
    for (const Case& c : cases) {
      ASSERT_TRUE(c.valid()) << c.describe();
      const testing::Operands o = random_operands(c, rng);
      const auto op = forced(name, c, o);
      if (!op) continue;
      const Tensor want = oracle(c, o.input.view(), o.weight.view(), o.bias_view());
      const Tensor scale = oracle_scale(c, o.input.view(), o.weight.view(), o.bias_view());
      EXPECT_TRUE(close_to(op->run(o.input.view()), want, scale, 1e-5, DType::f32)) << c.describe();
    }
  }
}

// The public performance suite (shared/bench/suite_public.txt), every
// implementation in float32 against the direct family in float64.
TEST(Implementations, MatchFloat64OnThePublicSuite) {
  struct SuiteCase {
    const char* name;
    int dims;
    std::int64_t n, cin, cout;
    std::vector<std::int64_t> size;
    std::int64_t k, s, p, op, d, g;
  };
  const std::vector<SuiteCase> suite = {
      {"dcgan_512_256_4x4", 2, 8, 512, 256, {4, 4}, 4, 2, 1, 0, 1, 1},
      {"dcgan_256_128_8x8", 2, 8, 256, 128, {8, 8}, 4, 2, 1, 0, 1, 1},
      {"dcgan_64_3_32x32", 2, 8, 64, 3, {32, 32}, 4, 2, 1, 0, 1, 1},
      {"unet_128_64_64x64_k2s2", 2, 1, 128, 64, {64, 64}, 2, 2, 0, 0, 1, 1},
      {"s1_k3_64_56x56", 2, 1, 64, 64, {56, 56}, 3, 1, 1, 0, 1, 1},
      {"fcn32_21_k64s32", 2, 1, 21, 21, {10, 10}, 64, 32, 16, 0, 1, 1},
      {"hifigan_1d_512_256_k16s8", 1, 1, 512, 256, {100}, 16, 8, 4, 0, 1, 1},
      {"vnet_3d_64_32_16c_k2s2", 3, 1, 64, 32, {16, 16, 16}, 2, 2, 0, 0, 1, 1},
      {"depthwise_128_k4s2_32x32", 2, 1, 128, 128, {32, 32}, 4, 2, 1, 0, 1, 128},
      {"dilated_64_k3d2_32x32", 2, 1, 64, 64, {32, 32}, 3, 1, 2, 0, 2, 1},
  };
  std::mt19937_64 rng(31);
  for (const SuiteCase& s : suite) {
    SCOPED_TRACE(s.name);
    Case c;
    c.kind = ConvKind::conv_transpose;
    c.dtype = DType::f32;
    c.batch = s.n;
    c.in_channels = s.cin;
    c.out_channels = s.cout;
    c.groups = s.g;
    c.size = s.size;
    c.kernel.assign(s.size.size(), s.k);
    c.stride.assign(s.size.size(), s.s);
    c.padding.assign(s.size.size(), s.p);
    c.output_padding.assign(s.size.size(), s.op);
    c.dilation.assign(s.size.size(), s.d);
    c.bias = true;
    const testing::Operands o = random_operands(c, rng);
    // The float64 answer, and its error scale, from the direct family.
    OperatorOptions direct;
    direct.implementation = "direct";
    const Tensor x64 = testing::convert(o.input.view(), DType::f64), w64 = testing::convert(o.weight.view(), DType::f64);
    const Tensor b64 = testing::convert(o.bias.view(), DType::f64);
    const TensorView b64v = b64.view();
    const Tensor want = Operator::create(c.kind, w64.view(), &b64v, c.params(), direct).run(x64.view());
    const Tensor ax = testing::absolute(o.input.view()), aw = testing::absolute(o.weight.view()),
                 ab = testing::absolute(o.bias.view());
    const TensorView abv = ab.view();
    const Tensor scale = Operator::create(c.kind, aw.view(), &abv, c.params(), direct).run(ax.view());
    EXPECT_EQ(want.shape(), c.output_shape());
    for (const std::string& name : available_implementations()) {
      const auto op = forced(name, c, o);
      if (!op) continue;
      EXPECT_TRUE(close_to(op->run(o.input.view()), want, scale, 1e-4, DType::f32)) << name;
    }
    // And the automatic choice.
    const Operator automatic = Operator::create(c.kind, o.weight.view(), o.bias_view(), c.params());
    EXPECT_TRUE(close_to(automatic.run(o.input.view()), want, scale, 1e-4, DType::f32)) << automatic.implementation();
  }
}

// run() gives the same bits for any thread count.
TEST(Implementations, SameBitsForAnyThreadCount) {
  testing::ThreadCountGuard guard;
  for (const std::string& name : available_implementations()) {
    SCOPED_TRACE(name);
    std::mt19937_64 rng(41);
    CaseLimits lim;
    lim.max_channels_per_group = 16;
    lim.max_groups = 2;
    lim.max_size = 12;
    lim.max_batch = 4;
    lim.max_rank = 2;
    for (int k = 0; k < 20; ++k) {
      const Case c = random_case(rng, lim);
      const testing::Operands o = random_operands(c, rng);
      const auto op = forced(name, c, o);
      if (!op) continue;
      set_num_threads(1);
      const Tensor one = op->run(o.input.view());
      for (int threads : {2, 3, 7}) {
        set_num_threads(threads);
        EXPECT_EQ(op->plan(c.input_shape()).threads, threads);
        EXPECT_TRUE(bits_equal(op->run(o.input.view()), one)) << threads << " threads: " << c.describe();
      }
    }
  }
}

// Output elements that no kernel tap reaches (stride larger than the kernel)
// hold the bias: the kernel overwrites the whole caller buffer.
TEST(Implementations, EveryOutputElementIsWrittenEvenWhereNoTapLands) {
  for (const std::string& name : available_implementations()) {
    SCOPED_TRACE(name);
    std::mt19937_64 rng(43);
    for (std::int64_t k : {1, 2}) {
      Case c;
      c.dtype = DType::f32;
      c.kind = ConvKind::conv_transpose;
      c.batch = 2;
      c.in_channels = 3;
      c.out_channels = 5;
      c.size = {4, 3};
      c.kernel = {k, k};
      c.stride = {3, 4};
      c.padding = {0, 0};
      c.output_padding = {2, 3};
      c.dilation = {1, 1};
      c.bias = true;
      const testing::Operands o = random_operands(c, rng);
      const auto op = forced(name, c, o);
      if (!op) continue;
      Tensor out(DType::f32, c.output_shape());
      for (std::int64_t q = 0; q < out.numel(); ++q) out.data_as<float>()[q] = std::numeric_limits<float>::quiet_NaN();
      op->run(o.input.view(), out.mutable_view());
      const Tensor want = oracle(c, o.input.view(), o.weight.view(), o.bias_view());
      const Tensor scale = oracle_scale(c, o.input.view(), o.weight.view(), o.bias_view());
      EXPECT_TRUE(close_to(out, want, scale, 1e-5, DType::f32)) << c.describe();
    }
  }
}

// plane_gemm skips a tap wherever a whole tile reads only padding through it
// (zeros, which leave the sums' bits as they are). With an infinite weight
// those products are NaN, and it must multiply them as phase_gemm does: the
// same NaNs, including the border rows whose tiles it would otherwise skip.
TEST(Implementations, TapsOverPaddingAreMultipliedWhenAWeightIsInfinite) {
  const auto names = available_implementations();
  const auto has = [&](const std::string& name) { return std::find(names.begin(), names.end(), name) != names.end(); };
  if (!has("phase_gemm_avx512") || !has("plane_gemm_avx512")) GTEST_SKIP() << "the AVX-512 families do not run here";
  Case c;
  c.dtype = DType::f32;
  c.kind = ConvKind::conv;
  c.in_channels = 3;
  c.out_channels = 16;
  c.size = {6, 40};  // rows of 40: the first tiles lie in the two rows above the input for tap (0, 0)
  c.kernel = {3, 3};
  c.stride = {1, 1};
  c.padding = {2, 2};
  c.output_padding = {0, 0};
  c.dilation = {2, 2};
  c.bias = true;
  std::mt19937_64 rng(61);
  testing::Operands o = random_operands(c, rng);
  o.weight.data_as<float>()[0] = std::numeric_limits<float>::infinity();  // output channel 0, tap (0, 0)
  const Tensor want = forced("phase_gemm_avx512", c, o)->run(o.input.view());
  const Tensor got = forced("plane_gemm_avx512", c, o)->run(o.input.view());
  int nans = 0;
  for (std::int64_t k = 0; k < got.numel(); ++k) {
    EXPECT_EQ(std::isnan(value_at(got, k)), std::isnan(value_at(want, k))) << "element " << k;
    nans += std::isnan(value_at(got, k)) ? 1 : 0;
  }
  // Tap (0, 0) reads padding for the first two rows and columns: 6 * 40 - 4 * 38 outputs of channel 0.
  EXPECT_EQ(nans, 88);
}

TEST(Operator, PlanReportsTheOutputShapeWorkspaceAndThreads) {
  const Tensor w(DType::f32, {4, 3, 3, 3});
  ConvParams p;
  p.stride = 2;
  p.padding = 1;
  p.output_padding = 1;
  const Operator op = Operator::create(ConvKind::conv_transpose, w.view(), nullptr, p);
  const Plan plan = op.plan({2, 4, 5, 6});
  EXPECT_EQ(plan.output_shape, (Shape{2, 3, 10, 12}));
  EXPECT_EQ(plan.output_shape, output_shape(ConvKind::conv_transpose, {2, 4, 5, 6}, {4, 3, 3, 3}, p));
  EXPECT_EQ(plan.threads, num_threads());
  EXPECT_EQ(op.plan({4, 5, 6}).output_shape, (Shape{3, 10, 12}));
  EXPECT_EQ(op.kind(), ConvKind::conv_transpose);
  EXPECT_EQ(op.dtype(), DType::f32);
  EXPECT_FALSE(op.reason().empty());
  // A plan for a bad input gives the computation's error.
  const auto e = error_of([&] { op.plan({2, 3, 5, 6}); });
  ASSERT_TRUE(e);
  EXPECT_EQ(std::string(e->what()), "input has 3 channels but the weight's dimension 0 (in_channels) is 4");
}

TEST(Operator, PlanReportsTheStrategyChosenForTheShape) {
  const auto names = available_implementations();
  if (std::find(names.begin(), names.end(), "plane_gemm_avx512") == names.end()) {
    GTEST_SKIP() << "plane_gemm_avx512 does not run here";
  }
  const Tensor w(DType::f32, {64, 64, 3, 3});
  ConvParams p;
  p.padding = 1;
  const Operator op = Operator::create(ConvKind::conv, w.view(), nullptr, p);
  ASSERT_EQ(op.implementation(), "plane_gemm_avx512");
  // 49 positions in 4 vectors of 16, against 3136 in 196.
  EXPECT_NE(op.plan({1, 64, 7, 7}).strategy.find("channels-last detour"), std::string::npos) << op.plan({1, 64, 7, 7}).strategy;
  EXPECT_EQ(op.plan({1, 64, 56, 56}).strategy, "input read in place");
  EXPECT_EQ(Operator::create(ConvKind::conv, Tensor(DType::f32, {8, 8, 3, 3}).view(), nullptr, p).plan({1, 8, 7, 7}).strategy,
            "input read in place")
      << "8 output channels do not fill igemm's vectors";
}

TEST(Operator, WorkspaceStaysSmallNotAColumnBuffer) {
  // No hidden col2im buffer of Cout*k*k*H*W floats: the workspace of the
  // largest suite layer stays below a few MiB per thread.
  const Tensor w(DType::f32, {512, 256, 4, 4});
  ConvParams p;
  p.stride = 2;
  p.padding = 1;
  for (const std::string& name : available_implementations()) {
    const auto op = forced(name, ConvKind::conv_transpose, w.view(), nullptr, p);
    if (!op) continue;
    const Plan plan = op->plan({8, 512, 4, 4});
    EXPECT_LE(plan.workspace_bytes, static_cast<std::size_t>(plan.threads) * (4u << 20)) << name;
  }
}

TEST(Operator, SplitAndDetourWorkspacesDoNotGrowWithTheBatch) {
  // plane_gemm's phase planes of a split convolution and the channels-last
  // detour's copies are held a few samples at a time (2 MB of them, or one
  // sample), not for the whole batch.
  ConvParams split_params;
  split_params.stride = 2;
  split_params.padding = 1;
  ConvParams detour_params;
  detour_params.stride = 4;
  const struct {
    std::string family;
    Shape weight, input;
    ConvParams params;
    std::size_t limit;  // bytes
  } cases[] = {{"plane_gemm_avx512", {64, 3, 4, 4}, {256, 3, 64, 64}, split_params, 5u << 19},
               {"channels_last_igemm_avx512", {32, 64, 4, 4}, {64, 64, 64, 64}, detour_params, 3u << 20}};
  for (const auto& c : cases) {
    const Tensor w(DType::f32, c.weight);
    const auto op = forced(c.family, ConvKind::conv, w.view(), nullptr, c.params);
    if (!op) continue;
    const Plan plan = op->plan(c.input);
    EXPECT_LE(plan.workspace_bytes, c.limit) << c.family << ": " << plan.strategy;
  }
}

// A stride-2 convolution whose samples' phase planes would pass the chunk
// budget reads its input in place (no workspace) even where a small sample,
// with as many products per input element, is split.
TEST(Operator, LargeSamplesOfStrideTwoConvolutionsAreReadInPlace) {
  const Tensor w(DType::f32, {36, 33, 4, 4});  // 36 x 16 / 4 = 144 products per input element
  ConvParams p;
  p.stride = 2;
  p.padding = 1;
  const auto op = forced("plane_gemm_avx512", ConvKind::conv, w.view(), nullptr, p);
  if (!op) GTEST_SKIP() << "plane_gemm_avx512 does not run here";
  EXPECT_EQ(op->plan({1, 33, 32, 32}).strategy, "input split into its stride phases");
  const Plan large = op->plan({2, 33, 128, 128});  // 2.2 MB of phase planes a sample
  EXPECT_EQ(large.strategy, "strided input read in place");
  EXPECT_EQ(large.workspace_bytes, 0u);
}

// `tested` gives the bits of `reference` (run on 3 threads) on 3 threads and on 1.
void expect_the_bits_of(const Operator& reference, const Operator& tested, const TensorView& input) {
  testing::ThreadCountGuard guard;
  set_num_threads(3);
  const Tensor want = reference.run(input);
  EXPECT_TRUE(bits_equal(tested.run(input), want));
  set_num_threads(1);
  EXPECT_TRUE(bits_equal(tested.run(input), want));
}

// The same, computed: bit for bit phase_gemm's (an oracle run on this size
// would take seconds), on 3 threads and on 1.
TEST(Implementations, LargeStridedSamplesReadInPlaceGivePhaseGemmsBits) {
  const Case c{.kind = ConvKind::conv, .batch = 2, .in_channels = 33, .out_channels = 36, .size = {128, 128},
               .kernel = {4, 4}, .stride = {2, 2}, .padding = {1, 1}, .padding_end = {1, 1}, .output_padding = {0, 0},
               .dilation = {1, 1}, .bias = true};
  std::mt19937_64 rng(67);
  const testing::Operands o = random_operands(c, rng);
  const auto plane = forced("plane_gemm_avx512", c, o), phase = forced("phase_gemm_avx512", c, o);
  if (!plane || !phase) GTEST_SKIP() << "plane_gemm_avx512 or phase_gemm_avx512 does not run here";
  expect_the_bits_of(*phase, *plane, o.input.view());
}

// Batches taken in chunks of samples: by the channels-last detour (its two
// copies about 1 MB a sample, 3 samples) and by plane_gemm's split (3 MB of
// phase planes a sample, 2 samples; 24 output channels keep it off the detour).
TEST(Implementations, MatchTheOracleOnBatchesInChunks) {
  const Case cases[] = {
      {.kind = ConvKind::conv, .batch = 3, .in_channels = 64, .out_channels = 32, .size = {64, 64}, .kernel = {4, 4},
       .stride = {4, 4}, .padding = {1, 0}, .padding_end = {2, 0}, .output_padding = {0, 0}, .dilation = {1, 1}, .bias = true},
      {.kind = ConvKind::conv, .batch = 2, .in_channels = 64, .out_channels = 24, .size = {110, 112}, .kernel = {4, 4},
       .stride = {4, 4}, .padding = {1, 0}, .padding_end = {2, 1}, .output_padding = {0, 0}, .dilation = {1, 1}, .bias = true}};
  const auto names = available_implementations();
  std::map<std::string, int> ran;
  std::mt19937_64 rng(61);
  for (const Case& c : cases) check_every_implementation(c, random_operands(c, rng), names, ran);
  for (const std::string family : {"channels_last_igemm_avx512", "plane_gemm_avx512"}) {
    if (std::find(names.begin(), names.end(), family) != names.end()) EXPECT_GE(ran[family], 1) << family;
  }
}

// Samples whose channels-last copies pass the 2 MB chunk budget go through the
// detour in slabs of output rows along the outermost dimension: every rank,
// both directions, a first slab in the problem's frame and the others in the
// slab frame (padding below and above the taps' reach, none, asymmetric,
// dilation, batch 2). Each must give the bits of the channels-first family, on
// 3 threads and on 1 (an oracle run on these sizes would take seconds), with
// the copies held to the budget.
TEST(Implementations, DetourSlabsOfLargeSamplesGiveTheChannelsFirstBits) {
  const std::vector<std::int64_t> none1{0}, none2{0, 0}, none3{0, 0, 0};
  const Case cases[] = {
      {.kind = ConvKind::conv_transpose, .in_channels = 24, .out_channels = 16, .size = {6000}, .kernel = {16},
       .stride = {8}, .padding = {4}, .padding_end = {4}, .output_padding = none1, .dilation = {1}, .bias = true},
      {.kind = ConvKind::conv, .batch = 2, .in_channels = 16, .out_channels = 32, .size = {20000}, .kernel = {7},
       .stride = {3}, .padding = {5}, .padding_end = {2}, .output_padding = none1, .dilation = {1}, .bias = true},
      {.kind = ConvKind::conv_transpose, .in_channels = 8, .out_channels = 16, .size = {40000}, .kernel = {3},
       .stride = {4}, .padding = {3}, .padding_end = {3}, .output_padding = {2}, .dilation = {1}, .bias = true},
      {.kind = ConvKind::conv, .in_channels = 8, .out_channels = 16, .size = {70000}, .kernel = {4}, .stride = {4},
       .padding = {0}, .padding_end = {0}, .output_padding = none1, .dilation = {1}, .bias = false},
      {.kind = ConvKind::conv_transpose, .in_channels = 8, .out_channels = 16, .size = {60, 61}, .kernel = {5, 5},
       .stride = {3, 3}, .padding = {1, 2}, .padding_end = {1, 2}, .output_padding = {1, 0}, .dilation = {1, 1},
       .bias = true},
      {.kind = ConvKind::conv, .in_channels = 16, .out_channels = 32, .size = {200, 203}, .kernel = {3, 3},
       .stride = {3, 3}, .padding = {3, 1}, .padding_end = {1, 1}, .output_padding = none2, .dilation = {2, 2},
       .bias = true},
      {.kind = ConvKind::conv_transpose, .batch = 2, .in_channels = 4, .out_channels = 16, .size = {12, 11, 12},
       .kernel = {3, 3, 3}, .stride = {3, 3, 3}, .padding = {0, 1, 0}, .padding_end = {0, 1, 0},
       .output_padding = {2, 0, 1}, .dilation = {1, 1, 1}, .bias = true},
      {.kind = ConvKind::conv, .in_channels = 8, .out_channels = 16, .size = {60, 33, 36}, .kernel = {3, 2, 3},
       .stride = {3, 3, 3}, .padding = {2, 0, 1}, .padding_end = {0, 0, 1}, .output_padding = none3,
       .dilation = {1, 1, 1}, .bias = true}};
  testing::ThreadCountGuard guard;
  std::mt19937_64 rng(71);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.describe());
    ASSERT_TRUE(c.valid());
    const testing::Operands o = random_operands(c, rng);
    const auto detour = forced("channels_last_igemm_avx512", c, o);
    const auto direct = forced(c.kind == ConvKind::conv ? "plane_gemm_avx512" : "phase_gemm_avx512", c, o);
    if (!detour || !direct) GTEST_SKIP() << "the AVX-512 families do not run here";
    const Shape out = output_shape(c.kind, c.input_shape(), c.weight_shape(), c.params());
    const auto elements = [](const Shape& s) { return std::accumulate(s.begin() + 1, s.end(), std::int64_t{1}, std::multiplies<>()); };
    ASSERT_GT((elements(c.input_shape()) + elements(out)) * 4, std::int64_t{2} << 20) << "one sample's copies fit the budget";
    EXPECT_LE(detour->plan(c.input_shape()).workspace_bytes, std::size_t{5} << 19);
    expect_the_bits_of(*direct, *detour, o.input.view());
  }
}

// Whether `family` and `twin` both run c (a sample past the 2 MB chunk
// budget); where they do, the family must split it in slabs, hold its
// workspace to the budget and give the twin's bits on 3 threads and on 1.
bool split_slabs_give_the_bits_of(const Case& c, const std::string& family, const std::string& twin, std::mt19937_64& rng) {
  SCOPED_TRACE(family + ": " + c.describe());
  EXPECT_TRUE(c.valid());
  const testing::Operands o = random_operands(c, rng);
  const auto plane = forced(family, c, o), phase = forced(twin, c, o);
  if (!plane || !phase) return false;
  const Plan plan = plane->plan(c.input_shape());
  EXPECT_NE(plan.strategy.find("input split into its stride phases, in slabs of"), std::string::npos) << plan.strategy;
  EXPECT_LE(plan.workspace_bytes, std::size_t{5} << 19) << plan.strategy;
  testing::ThreadCountGuard guard;
  expect_the_bits_of(*phase, *plane, o.input.view());
  return true;
}

// plane_gemm's split of samples whose phase planes pass the 2 MB chunk
// budget: x strides above 2 and rows shorter than a vector, in slabs along the
// outermost dimension (1-D, 2-D, 3-D, padding moved by the slab frame or not,
// dilation, asymmetric padding, batch 2), each giving phase_gemm's bits on 3
// threads and on 1 with the workspace held to the budget.
TEST(Implementations, SplitSlabsOfLargeSamplesGivePhaseGemmsBits) {
  const std::vector<std::int64_t> none1{0}, none2{0, 0}, none3{0, 0, 0};
  const Case cases[] = {
      {.kind = ConvKind::conv, .in_channels = 8, .out_channels = 8, .size = {400, 400}, .kernel = {4, 4},
       .stride = {4, 4}, .padding = {1, 1}, .padding_end = {1, 2}, .output_padding = none2, .dilation = {1, 1},
       .bias = true},
      {.kind = ConvKind::conv, .in_channels = 16, .out_channels = 8, .size = {60000}, .kernel = {5}, .stride = {3},
       .padding = {0}, .padding_end = {0}, .output_padding = none1, .dilation = {2}, .bias = false},
      {.kind = ConvKind::conv, .in_channels = 8, .out_channels = 12, .size = {1200, 8, 8}, .kernel = {2, 2, 2},
       .stride = {2, 2, 2}, .padding = {1, 0, 0}, .padding_end = {0, 0, 1}, .output_padding = none3,
       .dilation = {1, 1, 1}, .bias = true},
      {.kind = ConvKind::conv, .batch = 2, .in_channels = 6, .out_channels = 24, .size = {300, 301}, .kernel = {3, 3},
       .stride = {3, 3}, .padding = {2, 2}, .padding_end = {2, 0}, .output_padding = none2, .dilation = {2, 2},
       .bias = true}};
  std::mt19937_64 rng(73);
  for (const Case& c : cases) {
    if (!split_slabs_give_the_bits_of(c, "plane_gemm_avx512", "phase_gemm_avx512", rng)) {
      GTEST_SKIP() << "plane_gemm_avx512 or phase_gemm_avx512 does not run here";
    }
  }
}

// The same for plane_gemm_avx2 (x strides of 1 and 2, which it splits where
// plane_gemm_avx512 would read them in place) against phase_gemm_avx2.
TEST(Implementations, Avx2SplitSlabsOfLargeSamplesGivePhaseGemmsBits) {
  const std::vector<std::int64_t> none1{0}, none2{0, 0}, none3{0, 0, 0};
  const Case cases[] = {
      {.kind = ConvKind::conv, .in_channels = 8, .out_channels = 8, .size = {600, 601}, .kernel = {4, 4},
       .stride = {2, 2}, .padding = {1, 1}, .padding_end = {1, 2}, .output_padding = none2, .dilation = {1, 1},
       .bias = true},
      {.kind = ConvKind::conv, .batch = 2, .in_channels = 16, .out_channels = 12, .size = {50000}, .kernel = {5},
       .stride = {2}, .padding = {3}, .padding_end = {0}, .output_padding = none1, .dilation = {2}, .bias = false},
      {.kind = ConvKind::conv, .in_channels = 8, .out_channels = 12, .size = {1200, 8, 8}, .kernel = {2, 2, 2},
       .stride = {2, 2, 2}, .padding = {1, 0, 0}, .padding_end = {0, 0, 1}, .output_padding = none3,
       .dilation = {1, 1, 1}, .bias = true},
      {.kind = ConvKind::conv, .in_channels = 6, .out_channels = 20, .size = {500, 301}, .kernel = {3, 3},
       .stride = {3, 1}, .padding = {2, 2}, .padding_end = {2, 0}, .output_padding = none2, .dilation = {2, 2},
       .bias = true}};
  std::mt19937_64 rng(79);
  for (const Case& c : cases) {
    if (!split_slabs_give_the_bits_of(c, "plane_gemm_avx2", "phase_gemm_avx2", rng)) {
      GTEST_SKIP() << "plane_gemm_avx2 or phase_gemm_avx2 does not run here";
    }
  }
}

TEST(Operator, WritesIntoAStridedCallerBufferAndLeavesTheRestAlone) {
  std::mt19937_64 rng(47);
  for (const std::string& name : available_implementations()) {
    SCOPED_TRACE(name);
    for (DType dt : {DType::f32, DType::f64}) {
      const Tensor w = testing::random_tensor(dt, {3, 2, 3, 3}, rng);
      const Tensor b = testing::random_tensor(dt, {2}, rng);
      const TensorView bv = b.view();
      ConvParams p;
      p.stride = 2;
      OperatorOptions options;
      options.implementation = name;
      std::optional<Operator> op;
      try {
        op.emplace(Operator::create(ConvKind::conv_transpose, w.view(), &bv, p, options));
      } catch (const Error&) {
        continue;
      }
      const Tensor x = testing::random_tensor(dt, {2, 3, 4, 4}, rng);
      const Tensor want = op->run(x.view());  // [2, 2, 9, 9]
      ASSERT_EQ(want.shape(), (Shape{2, 2, 9, 9}));
      // A buffer [2, 2, 11, 10] with the output in its [.., 1:10, 0:9] window, filled with a sentinel.
      Tensor big(dt, {2, 2, 11, 10});
      for (std::int64_t q = 0; q < big.numel(); ++q) testing::set_value(big, q, -777.0);
      const std::int64_t offset = 10;  // row 1
      void* origin = static_cast<char*>(big.data()) + offset * static_cast<std::int64_t>(dtype_size(dt));
      const MutableTensorView window(origin, dt, {2, 2, 9, 9}, {220, 110, 10, 1});
      op->run(x.view(), window);
      for (std::int64_t n = 0; n < 2; ++n)
        for (std::int64_t c = 0; c < 2; ++c)
          for (std::int64_t r = 0; r < 11; ++r)
            for (std::int64_t q = 0; q < 10; ++q) {
              const double got = value_at(big, ((n * 2 + c) * 11 + r) * 10 + q);
              if (r >= 1 && r <= 9 && q < 9) {
                EXPECT_EQ(got, value_at(want, ((n * 2 + c) * 9 + (r - 1)) * 9 + q));
              } else {
                EXPECT_EQ(got, -777.0) << "wrote outside the window at " << n << "," << c << "," << r << "," << q;
              }
            }
    }
  }
}

TEST(Operator, StridedInputsGiveTheSameBitsAsContiguousOnes) {
  std::mt19937_64 rng(53);
  // A [N, C, H, W] view of storage laid out [H, N, W, C] (channels-last-like and batch-inner).
  const std::int64_t N = 2, C = 3, H = 5, W = 4;
  for (DType dt : {DType::f32, DType::f64}) {
    const Tensor storage = testing::random_tensor(dt, {H, N, W, C}, rng);
    const TensorView view(storage.data(), dt, {N, C, H, W}, {W * C, 1, N * W * C, C});
    const Tensor contiguous = Tensor::copy_of(view);
    EXPECT_FALSE(view.is_contiguous());
    const Tensor w = testing::random_tensor(dt, {3, 4, 2, 3}, rng);
    // The weight, too, may be a strided view: the same values laid out [k..., in, out].
    Tensor w_storage(dt, {2, 3, 3, 4});
    for (std::int64_t i = 0; i < 3; ++i)
      for (std::int64_t o = 0; o < 4; ++o)
        for (std::int64_t a = 0; a < 2; ++a)
          for (std::int64_t b = 0; b < 3; ++b)
            testing::set_value(w_storage, ((a * 3 + b) * 3 + i) * 4 + o, value_at(w, ((i * 4 + o) * 2 + a) * 3 + b));
    const TensorView w_view(w_storage.data(), dt, {3, 4, 2, 3}, {4, 1, 36, 12});
    ConvParams p;
    p.stride = {2, 1};
    p.padding = {1, 0};
    p.output_padding = {1, 0};
    const Tensor a = conv_transpose(view, w_view, nullptr, p);
    const Tensor b = conv_transpose(contiguous.view(), w.view(), nullptr, p);
    EXPECT_TRUE(bits_equal(a, b)) << dtype_name(dt);
    const Tensor ca = conv(view, testing::random_tensor(dt, {2, 3, 2, 2}, rng).view(), nullptr);
    EXPECT_EQ(ca.shape(), (Shape{2, 2, 4, 3}));
  }
}

TEST(Operator, RefusesAnOutputOfTheWrongShapeOrDtype) {
  const Tensor w(DType::f32, {1, 1, 3, 3});
  const Operator op = Operator::create(ConvKind::conv_transpose, w.view(), nullptr, {});
  const Tensor x(DType::f32, {1, 1, 2, 2});
  Tensor wrong(DType::f32, {1, 1, 3, 3});
  auto e = error_of([&] { op.run(x.view(), wrong.mutable_view()); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind(), ErrorKind::invalid_argument);
  EXPECT_EQ(std::string(e->what()), "output has shape 1x1x3x3 but this convolution produces 1x1x4x4");
  Tensor wrong_type(DType::f64, {1, 1, 4, 4});
  e = error_of([&] { op.run(x.view(), wrong_type.mutable_view()); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind(), ErrorKind::wrong_type);
  EXPECT_EQ(std::string(e->what()), "output is float64 but the weight is float32; all operands must share one dtype");
  const Tensor x64(DType::f64, {1, 1, 2, 2});
  e = error_of([&] { op.run(x64.view()); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind(), ErrorKind::wrong_type);
  EXPECT_EQ(std::string(e->what()), "input is float64 but the weight is float32; all operands must share one dtype");
}

TEST(Operator, KeepsItsOwnCopyOfTheWeights) {
  std::mt19937_64 rng(59);
  Tensor w = testing::random_tensor(DType::f32, {2, 3, 3, 3}, rng);
  const Tensor x = testing::random_tensor(DType::f32, {1, 2, 4, 4}, rng);
  const Operator op = Operator::create(ConvKind::conv_transpose, w.view(), nullptr, {});
  const Tensor before = op.run(x.view());
  for (std::int64_t q = 0; q < w.numel(); ++q) w.data_as<float>()[q] = 0;
  EXPECT_TRUE(bits_equal(op.run(x.view()), before));
}

TEST(Operator, MovedOperatorsKeepWorking) {
  std::mt19937_64 rng(61);
  const Tensor w = testing::random_tensor(DType::f32, {2, 3, 3, 3}, rng);
  const Tensor x = testing::random_tensor(DType::f32, {1, 2, 4, 4}, rng);
  Operator a = Operator::create(ConvKind::conv_transpose, w.view(), nullptr, {});
  const Tensor want = a.run(x.view());
  Operator b = std::move(a);
  EXPECT_TRUE(bits_equal(b.run(x.view()), want));
  Operator c = Operator::create(ConvKind::conv, w.view(), nullptr, {});
  c = std::move(b);
  EXPECT_TRUE(bits_equal(c.run(x.view()), want));
}

TEST(Operator, OneConstOperatorFromSeveralThreadsAtOnce) {
  std::mt19937_64 rng(67);
  const Tensor w = testing::random_tensor(DType::f32, {16, 8, 4, 4}, rng);
  ConvParams p;
  p.stride = 2;
  p.padding = 1;
  for (const std::string& name : available_implementations()) {
    SCOPED_TRACE(name);
    const auto forced_op = forced(name, ConvKind::conv_transpose, w.view(), nullptr, p);
    if (!forced_op) continue;
    const Operator& op = *forced_op;
    std::vector<Tensor> inputs, expected;
    for (int t = 0; t < 4; ++t) {
      inputs.push_back(testing::random_tensor(DType::f32, {2, 16, 6 + t, 5}, rng));
      expected.push_back(op.run(inputs.back().view()));
    }
    std::vector<std::vector<Tensor>> got(4);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int rep = 0; rep < 5; ++rep) got[static_cast<std::size_t>(t)].push_back(op.run(inputs[static_cast<std::size_t>(t)].view()));
      });
    }
    for (auto& th : threads) th.join();
    for (int t = 0; t < 4; ++t)
      for (const Tensor& g : got[static_cast<std::size_t>(t)]) EXPECT_TRUE(bits_equal(g, expected[static_cast<std::size_t>(t)])) << "thread " << t;
  }
}

TEST(Choice, UnknownImplementationNamesTheKnownOnes) {
  const Tensor w(DType::f32, {1, 1, 3, 3});
  OperatorOptions options;
  options.implementation = "nope";
  const auto e = error_of([&] { Operator::create(ConvKind::conv, w.view(), nullptr, {}, options); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind(), ErrorKind::invalid_argument);
  const std::string what = e->what();
  EXPECT_EQ(what.rfind("implementation 'nope' does not exist (known: ", 0), 0u) << what;
  EXPECT_NE(what.find("direct"), std::string::npos) << what;
}

TEST(Choice, EnvironmentVariableForcesAnImplementation) {
  const Tensor w(DType::f32, {1, 1, 3, 3});
  ASSERT_EQ(setenv("TCONV_IMPL", "direct", 1), 0);
  const Operator op = Operator::create(ConvKind::conv, w.view(), nullptr, {});
  ASSERT_EQ(setenv("TCONV_IMPL", "nope", 1), 0);
  const auto e = error_of([&] { Operator::create(ConvKind::conv, w.view(), nullptr, {}); });
  unsetenv("TCONV_IMPL");
  EXPECT_EQ(op.implementation(), "direct");
  EXPECT_NE(op.reason().find("forced"), std::string::npos) << op.reason();
  ASSERT_TRUE(e);
  EXPECT_EQ(std::string(e->what()).rfind("implementation 'nope' does not exist", 0), 0u) << e->what();
}

TEST(Choice, AutomaticChoiceNamesAnAvailableImplementationAndWhy) {
  const auto names = available_implementations();
  for (DType dt : {DType::f32, DType::f64}) {
    const Tensor w(dt, {8, 8, 4, 4});
    const Operator op = Operator::create(ConvKind::conv_transpose, w.view(), nullptr, {});
    EXPECT_NE(std::find(names.begin(), names.end(), op.implementation()), names.end()) << op.implementation();
    EXPECT_FALSE(op.reason().empty());
  }
}

TEST(Threads, SetAndRead) {
  testing::ThreadCountGuard guard;
  set_num_threads(3);
  EXPECT_EQ(num_threads(), 3);
  set_num_threads(1);
  EXPECT_EQ(num_threads(), 1);
}

}  // namespace
}  // namespace tconv
