// Blocked weight-gradient family: portable C++ (GCC/Clang generic vectors),
// any geometry whose groups have enough big channels to fill its vectors,
// float32 and float64.
//
// Math and layout: weight_grad.hpp. For one tap t the reduction is a small
// matrix product over the (sample, small position) pairs that tap links:
//     dw[cs, cb', t] = sum_k small[cs, k] * big_t[k, cb'].
// The big tensor is first packed channel-last per group ([n, group, big
// position, cb'], cb' padded to kLanes), so that one big position's channels
// are one contiguous vector. A work item is one block of kRows small channels
// of one group and one tap; it owns dw[those cs, :, t], so threads never share
// an output element and the bits do not depend on the thread count. Within an
// item, kRows x kLanes sums stay in registers while k runs; each output
// element is summed over k in one fixed order, per sample in T and across
// samples in double, which keeps float32 sums over large batches accurate.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/weight_grad.hpp"

namespace tconv::detail {
namespace {

constexpr std::int64_t kLanes = 8;  // big channels per vector of sums
constexpr int kRows = 4;            // small channels sharing each loaded vector

std::int64_t padded_per_group(const Geometry& g) { return (g.big_per_group() + kLanes - 1) / kLanes * kLanes; }

// packed[n, group, o, cb'] = big[n, group * big_per_group + cb', o], zero for cb' past big_per_group.
template <typename T>
std::vector<T> pack_channel_last(const Geometry& g, const T* big, int threads) {
  const std::int64_t per_group = g.big_per_group();
  const std::int64_t padded = padded_per_group(g);
  const std::int64_t plane = g.big_spatial();
  std::vector<T> packed(static_cast<std::size_t>(g.batch * g.groups * plane * padded), T(0));
#pragma omp parallel for schedule(static) num_threads(threads)
  for (std::int64_t ng = 0; ng < g.batch * g.groups; ++ng) {
    const T* src = big + ng * per_group * plane;  // n * big_channels + group * per_group, in planes
    T* dst = packed.data() + ng * plane * padded;
    for (std::int64_t c = 0; c < per_group; ++c)
      for (std::int64_t o = 0; o < plane; ++o) dst[o * padded + c] = src[c * plane + o];
  }
  return packed;
}

// kLanes sums as one value: GCC's and Clang's generic vectors, lowered to
// whatever vector registers the target has.
template <typename T>
using Lanes [[gnu::vector_size(kLanes * sizeof(T))]] = T;

// sums[r][l] += over n and the window: small[n, cs_first + r, i] * packed[n, group, o(i, t), chunk + l]
template <typename T, int kRowCount>
void reduce_rows(const Geometry& g, const TapWindow& w, std::int64_t group, std::int64_t cs_first, std::int64_t chunk,
                 const T* small, const T* packed, double (*sums)[kLanes]) {
  const std::int64_t padded = padded_per_group(g);
  for (std::int64_t n = 0; n < g.batch; ++n) {
    const T* small_planes[kRowCount];
    for (int r = 0; r < kRowCount; ++r) small_planes[r] = small + (n * g.small_channels + cs_first + r) * g.small_spatial();
    const T* big = packed + (n * g.groups + group) * g.big_spatial() * padded + chunk;
    Lanes<T> sample[kRowCount] = {};
    for (std::int64_t z = w.range[0].lo; z < w.range[0].hi; ++z) {
      const std::int64_t oz = z * g.stride[0] - g.pad_begin[0] + w.tap[0] * g.dilation[0];
      for (std::int64_t y = w.range[1].lo; y < w.range[1].hi; ++y) {
        const std::int64_t oy = y * g.stride[1] - g.pad_begin[1] + w.tap[1] * g.dilation[1];
        const std::int64_t small_row = (z * g.small_size[1] + y) * g.small_size[2];
        const std::int64_t big_row = (oz * g.big_size[1] + oy) * g.big_size[2] - g.pad_begin[2] + w.tap[2] * g.dilation[2];
        for (std::int64_t x = w.range[2].lo; x < w.range[2].hi; ++x) {
          Lanes<T> b;
          std::memcpy(&b, big + (big_row + x * g.stride[2]) * padded, sizeof(b));
          for (int r = 0; r < kRowCount; ++r) sample[r] += small_planes[r][small_row + x] * b;
        }
      }
    }
    for (int r = 0; r < kRowCount; ++r)
      for (int l = 0; l < kLanes; ++l) sums[r][l] += sample[r][l];
  }
}

template <typename T>
void run_typed(const Geometry& g, const T* small, const T* big, T* dw, int threads) {
  const std::vector<T> packed = pack_channel_last(g, big, threads);
  const std::int64_t taps = g.kernel_taps();
  const std::int64_t per_group = g.big_per_group();
  const std::int64_t row_blocks = (g.small_per_group() + kRows - 1) / kRows;
  const std::int64_t items = g.groups * row_blocks * taps;
#pragma omp parallel for schedule(dynamic) num_threads(threads)
  for (std::int64_t item = 0; item < items; ++item) {
    const std::int64_t t = item % taps;
    const std::int64_t group = item / taps / row_blocks;
    const std::int64_t cs_first = group * g.small_per_group() + item / taps % row_blocks * kRows;
    const int rows = static_cast<int>(std::min<std::int64_t>(kRows, (group + 1) * g.small_per_group() - cs_first));
    const TapWindow w = tap_window(g, t);
    for (std::int64_t chunk = 0; chunk < per_group; chunk += kLanes) {
      double sums[kRows][kLanes] = {};
      if (rows == kRows) {
        reduce_rows<T, kRows>(g, w, group, cs_first, chunk, small, packed.data(), sums);
      } else {
        for (int r = 0; r < rows; ++r) reduce_rows<T, 1>(g, w, group, cs_first + r, chunk, small, packed.data(), sums + r);
      }
      const std::int64_t lanes = std::min(kLanes, per_group - chunk);
      for (int r = 0; r < rows; ++r)
        for (std::int64_t l = 0; l < lanes; ++l) {
          dw[((cs_first + r) * per_group + chunk + l) * taps + t] = static_cast<T>(sums[r][l]);
        }
    }
  }
}

bool always() { return true; }

std::string rejects(const Geometry& g, DType) {
  const std::int64_t per_group = g.big_per_group();
  const std::int64_t padded = padded_per_group(g);
  if (3 * per_group < 2 * padded) {
    return "only " + std::to_string(per_group) + " of its " + std::to_string(padded) +
           " vector lanes per group would hold a big channel";
  }
  return {};
}

void run(const Geometry& g, DType dtype, const void* small, const void* big, void* dw, int threads) {
  with_element_type(dtype, small, big, dw, [&](auto s, auto b, auto w) { run_typed(g, s, b, w, threads); });
}

}  // namespace

extern const WeightGradFamily kBlockedWeightGradFamily{"blocked", "portable C++", always, rejects, run};

}  // namespace tconv::detail
