// Channels-last IGEMM micro-kernels over an ISA traits type (V, kLanes,
// kMaxRows, rows_for(nv), zero, load, store, broadcast, fmadd, add,
// masked_store). Included inside a namespace of a kernel file, under that ISA's
// target region, by igemm_impl.inl and by the scatter-GEMM family.

// See igemm.hpp: rows[i * kMaxRows + r] is row r's input pointer for the
// tile's i-th tap, tap_w[i] that tap's weight panel.
using MicroKernel = void (*)(std::int64_t n_taps, std::int64_t channels, const float* const* rows,
                             const float* const* tap_w, const float* bias, float* const* dst, std::int64_t columns);

template <class Isa, int R, int NV>
void micro_kernel(std::int64_t n_taps, std::int64_t channels, const float* const* rows, const float* const* tap_w,
                  const float* bias, float* const* dst, std::int64_t columns) {
  using V = typename Isa::V;
  constexpr int kNr = NV * Isa::kLanes;
  V acc[R][NV];
  TCONV_UNROLL_TILE
  for (int r = 0; r < R; ++r)
    TCONV_UNROLL_TILE
    for (int v = 0; v < NV; ++v) acc[r][v] = Isa::zero();
  for (std::int64_t e = 0; e < n_taps; ++e) {
    const float* a[R];
    TCONV_UNROLL_TILE
    for (int r = 0; r < R; ++r) a[r] = rows[e * Isa::kMaxRows + r];
    const float* w = tap_w[e];
    for (std::int64_t c = 0; c < channels; ++c, w += kNr) {
      V wv[NV];
      TCONV_UNROLL_TILE
      for (int v = 0; v < NV; ++v) wv[v] = Isa::load(w + v * Isa::kLanes);
      TCONV_UNROLL_TILE
      for (int r = 0; r < R; ++r) {
        const V av = Isa::broadcast(a[r] + c);
        TCONV_UNROLL_TILE
        for (int v = 0; v < NV; ++v) acc[r][v] = Isa::fmadd(av, wv[v], acc[r][v]);
      }
    }
  }
  // The row pointers in locals: the compiler cannot tell that the stores leave dst[] alone.
  float* out_rows[R];
  TCONV_UNROLL_TILE
  for (int r = 0; r < R; ++r) out_rows[r] = dst[r];
  TCONV_UNROLL_TILE
  for (int v = 0; v < NV; ++v) {
    const V b = Isa::load(bias + v * Isa::kLanes);
    const std::int64_t left = columns - v * Isa::kLanes;
    if (left <= 0) break;
    TCONV_UNROLL_TILE
    for (int r = 0; r < R; ++r) {
      const V out = Isa::add(acc[r][v], b);
      if (left >= Isa::kLanes) {
        Isa::store(out_rows[r] + v * Isa::kLanes, out);
      } else {
        Isa::masked_store(out_rows[r] + v * Isa::kLanes, (std::uint32_t{1} << left) - 1, out);
      }
    }
  }
}

template <class Isa, int NV, std::size_t... Rows>
constexpr std::array<MicroKernel, sizeof...(Rows)> micro_kernels_for(std::index_sequence<Rows...>) {
  return {&micro_kernel<Isa, static_cast<int>(Rows) + 1, NV>...};
}

template <class Isa, int NV>
MicroKernel kernel_for_rows(int rows) {
  static constexpr auto table = micro_kernels_for<Isa, NV>(std::make_index_sequence<Isa::rows_for(NV)>());
  return table[static_cast<std::size_t>(rows - 1)];
}

template <class Isa, std::size_t... Nv>
MicroKernel micro_kernel_for(int rows, int nv, std::index_sequence<Nv...>) {
  MicroKernel kernel = nullptr;
  ((nv == static_cast<int>(Nv) + 1 ? (kernel = kernel_for_rows<Isa, static_cast<int>(Nv) + 1>(rows), 0) : 0), ...);
  return kernel;
}

