// Phase-GEMM micro-kernels over an ISA traits type (V, kLanes,
// kMaxAccumulators, zero, load, store, broadcast, fmadd, masked_load).
// Included inside a namespace of a kernel file, under that ISA's target region,
// by phase_gemm_impl.inl and by the scatter-GEMM family.

using MicroKernel = void (*)(std::int64_t k_count, const float* a, std::int64_t a_stride, const float* b, float* c);

// acc[m][v] = sum_k A[k*a_stride + m] * B[k*NR + v*lanes ...]; stored to c[m*NR + ...].
template <class Isa, int MR, int NV>
void micro_kernel(std::int64_t k_count, const float* a, std::int64_t a_stride, const float* b, float* c) {
  using V = typename Isa::V;
  constexpr int kNr = NV * Isa::kLanes;
  V acc[MR][NV];
  TCONV_UNROLL_TILE
  for (int m = 0; m < MR; ++m)
    TCONV_UNROLL_TILE
    for (int v = 0; v < NV; ++v) acc[m][v] = Isa::zero();
  for (std::int64_t k = 0; k < k_count; ++k) {
    V bv[NV];
    TCONV_UNROLL_TILE
    for (int v = 0; v < NV; ++v) bv[v] = Isa::load(b + k * kNr + v * Isa::kLanes);
    TCONV_UNROLL_TILE
    for (int m = 0; m < MR; ++m) {
      const V av = Isa::broadcast(a + k * a_stride + m);
      TCONV_UNROLL_TILE
      for (int v = 0; v < NV; ++v) acc[m][v] = Isa::fmadd(av, bv[v], acc[m][v]);
    }
  }
  TCONV_UNROLL_TILE
  for (int m = 0; m < MR; ++m)
    TCONV_UNROLL_TILE
    for (int v = 0; v < NV; ++v) Isa::store(c + m * kNr + v * Isa::kLanes, acc[m][v]);
}

// One run of lanes that reads consecutive input elements: lane l reads plane[base + l].
struct Load {
  std::int64_t base;
  std::uint32_t lanes;
};

// The same product with B read straight from the input, for blocks whose B would
// be used once (packing it would only copy it): row k = e * channels + c of B is,
// for vector v, the run runs[e * tap_stride + v * kLanes] of channel c (lanes 0: zero).
using DirectMicroKernel = void (*)(std::int64_t channels, std::int64_t n_taps, const float* a, std::int64_t a_stride,
                                   const float* src, std::int64_t in_plane, const Load* runs, std::int64_t tap_stride,
                                   float* c);

template <class Isa, int MR, int NV>
void direct_micro_kernel(std::int64_t channels, std::int64_t n_taps, const float* a, std::int64_t a_stride,
                         const float* src, std::int64_t in_plane, const Load* runs, std::int64_t tap_stride, float* c) {
  using V = typename Isa::V;
  constexpr int kNr = NV * Isa::kLanes;
  V acc[MR][NV];
  TCONV_UNROLL_TILE
  for (int m = 0; m < MR; ++m)
    TCONV_UNROLL_TILE
    for (int v = 0; v < NV; ++v) acc[m][v] = Isa::zero();
  for (std::int64_t e = 0; e < n_taps; ++e) {
    const Load* row = runs + e * tap_stride;
    for (std::int64_t ch = 0; ch < channels; ++ch, a += a_stride) {
      const float* plane = src + ch * in_plane;
      V bv[NV];
      TCONV_UNROLL_TILE
      for (int v = 0; v < NV; ++v) {
        bv[v] = Isa::masked_load(Isa::zero(), row[v * Isa::kLanes].lanes, plane + row[v * Isa::kLanes].base);
      }
      TCONV_UNROLL_TILE
      for (int m = 0; m < MR; ++m) {
        const V av = Isa::broadcast(a + m);
        TCONV_UNROLL_TILE
        for (int v = 0; v < NV; ++v) acc[m][v] = Isa::fmadd(av, bv[v], acc[m][v]);
      }
    }
  }
  TCONV_UNROLL_TILE
  for (int m = 0; m < MR; ++m)
    TCONV_UNROLL_TILE
    for (int v = 0; v < NV; ++v) Isa::store(c + m * kNr + v * Isa::kLanes, acc[m][v]);
}

template <class Isa, int NV, std::size_t... Rows>
constexpr std::array<DirectMicroKernel, sizeof...(Rows)> direct_micro_kernels_for(std::index_sequence<Rows...>) {
  return {&direct_micro_kernel<Isa, static_cast<int>(Rows) + 1, NV>...};
}

template <class Isa, int NV, std::size_t... Rows>
constexpr std::array<MicroKernel, sizeof...(Rows)> micro_kernels_for(std::index_sequence<Rows...>) {
  return {&micro_kernel<Isa, static_cast<int>(Rows) + 1, NV>...};
}

// Tiles are rows x nv vectors with rows * nv <= kMaxAccumulators, nv <= kMaxVectors.
constexpr int kMaxVectors = 8;

template <class Isa, int NV>
MicroKernel packed_for_rows(int rows) {
  static constexpr auto table = micro_kernels_for<Isa, NV>(std::make_index_sequence<Isa::kMaxAccumulators / NV>());
  return table[static_cast<std::size_t>(rows - 1)];
}

template <class Isa, int NV>
DirectMicroKernel direct_for_rows(int rows) {
  static constexpr auto table = direct_micro_kernels_for<Isa, NV>(std::make_index_sequence<Isa::kMaxAccumulators / NV>());
  return table[static_cast<std::size_t>(rows - 1)];
}

// The instantiations for a block of `rows` output channels and nv vectors.
template <class Isa, template <class, int> class Pick, std::size_t... Nv>
auto kernel_for(int rows, int nv, std::index_sequence<Nv...>) {
  using Kernel = decltype(Pick<Isa, 1>::get(1));
  Kernel kernel = nullptr;
  ((nv == static_cast<int>(Nv) + 1 ? (kernel = Pick<Isa, static_cast<int>(Nv) + 1>::get(rows), 0) : 0), ...);
  return kernel;
}
template <class Isa, int NV>
struct PickPacked {
  static MicroKernel get(int rows) { return packed_for_rows<Isa, NV>(rows); }
};
template <class Isa, int NV>
struct PickDirect {
  static DirectMicroKernel get(int rows) { return direct_for_rows<Isa, NV>(rows); }
};
template <class Isa>
MicroKernel micro_kernel_for(int rows, int nv) {
  return kernel_for<Isa, PickPacked>(rows, nv, std::make_index_sequence<kMaxVectors>());
}
template <class Isa>
DirectMicroKernel direct_micro_kernel_for(int rows, int nv) {
  return kernel_for<Isa, PickDirect>(rows, nv, std::make_index_sequence<kMaxVectors>());
}

