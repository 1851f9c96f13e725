// The weight-gradient reference twin: the contract's reduction as plain loops,
// for clarity and as the oracle of the fast families. Sums are formed in double.
#include "kernels/weight_grad.hpp"

namespace tconv::detail {
namespace {

template <typename T>
void reduce(const Geometry& g, const T* small, const T* big, T* dw) {
  const std::int64_t taps = g.kernel_taps();
  for (std::int64_t cs = 0; cs < g.small_channels; ++cs) {
    const std::int64_t group = cs / g.small_per_group();
    for (std::int64_t cb_in_group = 0; cb_in_group < g.big_per_group(); ++cb_in_group) {
      const std::int64_t cb = group * g.big_per_group() + cb_in_group;
      for (std::int64_t t = 0; t < taps; ++t) {
        const Dims tap{t / (g.kernel[1] * g.kernel[2]), (t / g.kernel[2]) % g.kernel[1], t % g.kernel[2]};
        double sum = 0;
        for (std::int64_t n = 0; n < g.batch; ++n) {
          const T* small_plane = small + (n * g.small_channels + cs) * g.small_spatial();
          const T* big_plane = big + (n * g.big_channels + cb) * g.big_spatial();
          for (std::int64_t i = 0; i < g.small_spatial(); ++i) {
            const Dims pos{i / (g.small_size[1] * g.small_size[2]), (i / g.small_size[2]) % g.small_size[1],
                           i % g.small_size[2]};
            std::int64_t o = 0;
            bool inside = true;
            for (int d = 0; d < kMaxSpatial; ++d) {
              const std::int64_t od = pos[d] * g.stride[d] - g.pad_begin[d] + tap[d] * g.dilation[d];
              inside = inside && od >= 0 && od < g.big_size[d];
              o = o * g.big_size[d] + od;
            }
            if (inside) sum += static_cast<double>(small_plane[i]) * static_cast<double>(big_plane[o]);
          }
        }
        dw[(cs * g.big_per_group() + cb_in_group) * taps + t] = static_cast<T>(sum);
      }
    }
  }
}

}  // namespace

void weight_grad_reference(const Geometry& g, DType dtype, const void* small, const void* big, void* dw) {
  with_element_type(dtype, small, big, dw, [&](auto s, auto b, auto w) { reduce(g, s, b, w); });
}

}  // namespace tconv::detail
