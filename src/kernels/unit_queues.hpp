// Sharing a run's work units out between threads: every thread owns one
// contiguous range of units and works through it from the front; a thread
// whose range is done takes single units from the back of the others' ranges
// until none is left (the scheme of pthreadpool, which XNNPACK runs on).
//
// Contiguous ranges keep what each thread reads and writes in the strides the
// hardware prefetchers follow (alternating small items between two threads
// measured 1-15% slower on plane_gemm's cases); taking single units at the
// end leaves at most one unit's time idle where a thread's last item used to
// (s1_k3 transposed, 22 items on 2 threads: 30 us of 1 ms).
//
// Which thread computes a unit never changes its result: units write disjoint
// outputs, so the bits do not depend on the thread count.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>

namespace tconv::detail {

class UnitQueues {
 public:
  UnitQueues(std::int64_t units, int threads)
      : threads_(std::max(threads, 1)), queues_(std::make_unique<Queue[]>(static_cast<std::size_t>(threads_))) {
    for (int t = 0; t < threads_; ++t) {
      Queue& q = queues_[static_cast<std::size_t>(t)];
      const std::int64_t begin = units * t / threads_, end = units * (t + 1) / threads_;
      q.front.store(begin, std::memory_order_relaxed);
      q.back.store(end, std::memory_order_relaxed);
      q.left.store(end - begin, std::memory_order_relaxed);
    }
  }

  // Called by every thread of a parallel region with its number (below the
  // threads given at construction; a range whose thread never comes is taken
  // by the others): fn(unit) for its own units, then for those it takes.
  template <class Fn>
  void work(int thread, Fn&& fn) {
    Queue& own = queues_[static_cast<std::size_t>(thread)];
    // The owner alone moves `front`; whoever first counts a unit off `left` has it.
    while (own.left.fetch_sub(1, std::memory_order_acquire) > 0) fn(own.front.fetch_add(1, std::memory_order_relaxed));
    for (int step = 1; step < threads_; ++step) {
      Queue& other = queues_[static_cast<std::size_t>((thread + step) % threads_)];
      while (other.left.fetch_sub(1, std::memory_order_acquire) > 0) fn(other.back.fetch_sub(1, std::memory_order_relaxed) - 1);
    }
  }

 private:
  // A cache line each, so that the owners' counting does not contend.
  struct alignas(64) Queue {
    std::atomic<std::int64_t> front{0}, back{0}, left{0};
  };
  int threads_;
  std::unique_ptr<Queue[]> queues_;
};

}  // namespace tconv::detail
