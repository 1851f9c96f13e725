// One prepared Operator used from several threads at once gives each thread
// the right result. Built on its own as well, so scripts/hardening.sh can run
// it under ThreadSanitizer.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "kernels/unit_queues.hpp"
#include "tconv/tconv.hpp"
#include "test_support.hpp"

namespace tconv {
namespace {

TEST(Concurrency, OneOperatorFromManyThreads) {
  constexpr int kThreads = 4;
  constexpr int kRunsPerThread = 3;
  std::mt19937_64 rng(7);
  // 16 output channels as well: plane_gemm then builds its channels-last
  // detour on the first run that needs it, and igemm keeps the layout of the
  // last shape, while the threads alternate between two input shapes.
  for (const std::int64_t out_channels : {4, 16}) {
    for (const ConvKind kind : {ConvKind::conv, ConvKind::conv_transpose}) {
      for (const std::string& implementation : available_implementations()) {
        SCOPED_TRACE(std::string(conv_kind_name(kind)) + " " + implementation + " " + std::to_string(out_channels));
        ConvParams params;
        params.stride = 2;
        params.padding = 1;
        const Shape weight_shape = kind == ConvKind::conv ? Shape{out_channels, 4, 3, 3} : Shape{4, out_channels, 3, 3};
        const Tensor weight = testing::random_ints(DType::f32, weight_shape, rng);
        const Tensor bias = testing::random_ints(DType::f32, {out_channels}, rng);
        const TensorView bias_view = bias.view();
        OperatorOptions options;
        options.implementation = implementation;
        std::optional<Operator> op;
        try {
          op = Operator::create(kind, weight.view(), &bias_view, params, options);
        } catch (const Error&) {
          continue;  // this implementation does not take this problem
        }
        // Different inputs per thread, so a result mixed up between threads shows.
        std::vector<Tensor> inputs, expected;
        for (int t = 0; t < kThreads; ++t) {
          inputs.push_back(testing::random_ints(DType::f32, {2, 4, 9 + t % 2, 7}, rng));
          expected.push_back(reference::compute(reference::Method::gather, kind, inputs.back().view(), weight.view(),
                                                &bias_view, params));
        }
        std::vector<int> mismatches(kThreads, 0);
        std::vector<std::thread> threads;
        for (int t = 0; t < kThreads; ++t) {
          threads.emplace_back([&, t] {
            for (int r = 0; r < kRunsPerThread; ++r) {
              const Tensor got = op->run(inputs[t].view());
              const Tensor& want = expected[t];
              if (got.shape() != want.shape()) {
                ++mismatches[t];
                continue;
              }
              for (std::int64_t k = 0; k < got.numel(); ++k) {
                if (testing::value_at(got, k) != testing::value_at(want, k)) ++mismatches[t];
              }
            }
          });
        }
        for (auto& thread : threads) thread.join();
        for (int t = 0; t < kThreads; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
      }
    }
  }
}

// Every unit is run exactly once, by its owner or by a thread that takes it
// from the back of another's range, also when fewer threads come than the
// queues were made for (their ranges are taken by the others).
TEST(Concurrency, UnitQueuesRunEveryUnitOnce) {
  for (const std::int64_t units : {0, 1, 3, 7, 64, 1001}) {
    for (const int made_for : {1, 2, 3, 4}) {
      for (int coming = 1; coming <= made_for; ++coming) {
        SCOPED_TRACE(std::to_string(units) + " units, queues for " + std::to_string(made_for) + ", " + std::to_string(coming) +
                     " threads");
        detail::UnitQueues queues(units, made_for);
        std::vector<std::atomic<int>> runs(static_cast<std::size_t>(units));
        std::vector<std::thread> team;
        for (int t = 0; t < coming; ++t) {
          team.emplace_back([&, t] {
            queues.work(t, [&](std::int64_t unit) {
              ASSERT_GE(unit, 0);
              ASSERT_LT(unit, units);
              runs[static_cast<std::size_t>(unit)].fetch_add(1);
            });
          });
        }
        for (auto& thread : team) thread.join();
        for (std::int64_t u = 0; u < units; ++u) EXPECT_EQ(runs[static_cast<std::size_t>(u)].load(), 1) << "unit " << u;
      }
    }
  }
}

}  // namespace
}  // namespace tconv
