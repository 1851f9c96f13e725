// The contract between operators and kernel families.
//
// An operator validates parameters, then asks the registry (families.def, in
// priority order) for the first family that runs on this CPU and accepts the
// problem. The family packs the weights once into a PreparedKernel; the
// operator then calls run() for each input with C-contiguous tensors in the
// geometry's normalized shape [N, C, D, H, W] (see conv_geometry.hpp):
//   conv:           src = big  [N, big_channels,   big_size],   dst = small [N, small_channels, small_size]
//   conv_transpose: src = small [N, small_channels, small_size], dst = big  [N, big_channels,   big_size]
// dst is fully overwritten (bias included). run() must give the same bits
// for any thread count.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "kernels/conv_geometry.hpp"

namespace tconv::detail {

class PreparedKernel {
 public:
  virtual ~PreparedKernel() = default;
  // Scratch bytes one run() needs (the operator allocates them per call).
  virtual std::size_t workspace_bytes(const Geometry& g, int threads) const = 0;
  virtual void run(const Geometry& g, const void* src, void* dst, void* workspace, int threads) const = 0;
  // How run() computes this geometry when the kernel has more than one way
  // (chosen per input shape, as Plan::strategy reports); empty when it has one.
  virtual std::string strategy(const Geometry&, int) const { return {}; }
};

// Bytes from one thread's slot of per-thread scratch to the next for slots of
// `bytes`: whole 4 KB pages and one page more, so that no page holds two
// threads' scratch. Hardware prefetchers run ahead within a page; where two
// cores' slots shared one, the prefetches of one pulled in lines the other
// was writing. depthwise_128 as a convolution (16 KB a thread), 2 threads on
// a Zen 4, min of 10-12 alternating rounds: 0.055 -> 0.050, 0.056 -> 0.051 and
// 0.081 -> 0.073 ms with the slots a page apart; 0.055 -> 0.054 with 128 bytes
// between them, unchanged with both moved 1 KB. The other families' suite
// cases measured the same either way (within 3%).
constexpr std::size_t thread_slot_bytes(std::size_t bytes) {
  constexpr std::size_t kPage = 4096;
  return bytes == 0 ? 0 : (bytes + kPage - 1) / kPage * kPage + kPage;
}

// The workspace for `threads` slots of `bytes` each, and thread `thread`'s slot in it.
constexpr std::size_t per_thread_workspace_bytes(std::size_t bytes, int threads) {
  return static_cast<std::size_t>(threads) * thread_slot_bytes(bytes);
}
template <class T>
T* thread_slot(void* workspace, std::size_t bytes, int thread) {
  return reinterpret_cast<T*>(static_cast<std::byte*>(workspace) + static_cast<std::size_t>(thread) * thread_slot_bytes(bytes));
}

// Workspace that grows with the batch (a split convolution's phase planes,
// the channels-last detour's copies) is held for a chunk of samples at a
// time: as many as fit kBatchChunkBytes (samples_per_chunk, one at least),
// and a sample that does not fit in slabs of it (slabs.hpp).
constexpr std::int64_t kBatchChunkBytes = std::int64_t{2} << 20;
inline std::int64_t samples_per_chunk(const Geometry& g, std::int64_t sample_bytes) {
  const std::int64_t fit = kBatchChunkBytes / (sample_bytes > 0 ? sample_bytes : 1);
  return fit < 1 ? 1 : fit > g.batch ? g.batch : fit;
}

// Families that plan per stride phase and kernel tap refuse problems whose plan
// takes more steps (phases times kernel extent) than this: huge strides would
// cost time and memory out of all proportion to the arithmetic.
constexpr std::int64_t kMaxPlanSteps = std::int64_t{1} << 22;

// What the operator knows of the weights when it chooses a family.
struct WeightFacts {
  bool all_finite = true;  // no NaN or infinity
};

struct KernelFamily {
  const char* name;
  const char* isa;  // the instruction set it needs, for messages
  bool (*cpu_supports)();
  // Empty when the family handles this problem, otherwise why it does not.
  // Only the input-independent part of the geometry is filled in.
  std::string (*rejects)(const Geometry& g, DType dtype, const WeightFacts& weights);
  // weight: [small_channels, big_channels/groups, k...] contiguous; bias may be null.
  std::unique_ptr<PreparedKernel> (*prepare)(const Geometry& g, DType dtype, const void* weight, const void* bias);
};

// The `prepare` of a float32 family whose kernel is built from the geometry,
// the weight and the bias (null when none).
template <class Kernel>
std::unique_ptr<PreparedKernel> prepare_float32(const Geometry& g, DType, const void* weight, const void* bias) {
  return std::make_unique<Kernel>(g, static_cast<const float*>(weight), static_cast<const float*>(bias));
}

// Every family compiled in, highest priority first.
const std::vector<KernelFamily>& kernel_families();

}  // namespace tconv::detail
