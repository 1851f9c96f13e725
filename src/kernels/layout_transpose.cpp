#include "kernels/layout_transpose.hpp"

#include <immintrin.h>

#include <algorithm>

#include "kernels/cpu_features.hpp"
#include "kernels/isa_target.hpp"
#include "kernels/simd_avx2.hpp"

namespace tconv::detail {
namespace {

constexpr std::int64_t kBlock = 16;

// One block: rows [r0, r0 + nr) and columns [c0, c0 + nc) of one matrix,
// src_ld and dst_ld its row strides (TransposeShape).
void transpose_block_portable(const float* src, float* dst, std::int64_t src_ld, std::int64_t dst_ld,
                              std::int64_t r0, std::int64_t c0, std::int64_t nr, std::int64_t nc) {
  for (std::int64_t c = 0; c < nc; ++c)
    for (std::int64_t r = 0; r < nr; ++r) dst[(c0 + c) * dst_ld + r0 + r] = src[(r0 + r) * src_ld + c0 + c];
}

TCONV_TARGET_AVX512_BEGIN

// Four steps, one per bit b of the row and column index within the block:
// step b swaps that bit between the two, exchanging the half of rows i and
// i + 2^b whose column has bit b set with its counterpart. Each step is one
// two-source permute per row, whose lane c takes
//     row i:       bit b of c ? row i + 2^b at c - 2^b : row i at c
//     row i + 2^b: bit b of c ? row i + 2^b at c       : row i at c + 2^b
// (permute index 16 + j names lane j of the second source).
struct SwapIndices {
  alignas(64) std::int32_t low[4][kBlock], high[4][kBlock];
};
constexpr SwapIndices swap_indices() {
  SwapIndices s{};
  for (int b = 0; b < 4; ++b) {
    const int d = 1 << b;
    for (int c = 0; c < kBlock; ++c) {
      s.low[b][c] = (c & d) != 0 ? 16 + c - d : c;
      s.high[b][c] = (c & d) != 0 ? 16 + c : c + d;
    }
  }
  return s;
}
constexpr SwapIndices kSwap = swap_indices();

void transpose_block_avx512(const float* src, float* dst, std::int64_t src_ld, std::int64_t dst_ld,
                            std::int64_t r0, std::int64_t c0, std::int64_t nr, std::int64_t nc) {
  const __mmask16 in_lanes = static_cast<__mmask16>((1u << nc) - 1), out_lanes = static_cast<__mmask16>((1u << nr) - 1);
  // Fully unrolled, so that the block stays in registers; rows past the
  // matrix load nothing (a masked load with no lanes reads no memory).
  __m512 v[kBlock];
  TCONV_UNROLL_TILE
  for (int r = 0; r < kBlock; ++r) {
    const std::int64_t row = r0 + std::min<std::int64_t>(r, nr - 1);
    v[r] = _mm512_maskz_loadu_ps(r < nr ? in_lanes : 0, src + row * src_ld + c0);
  }
  TCONV_UNROLL_TILE
  for (int b = 0; b < 4; ++b) {
    const int d = 1 << b;
    const __m512i low = _mm512_load_si512(kSwap.low[b]), high = _mm512_load_si512(kSwap.high[b]);
    TCONV_UNROLL_TILE
    for (int i = 0; i < kBlock; ++i) {
      if ((i & d) != 0) continue;
      const __m512 upper = v[i], lower = v[i + d];
      v[i] = _mm512_permutex2var_ps(upper, low, lower);
      v[i + d] = _mm512_permutex2var_ps(upper, high, lower);
    }
  }
  TCONV_UNROLL_TILE
  for (int c = 0; c < kBlock; ++c) {
    if (c < nc) _mm512_mask_storeu_ps(dst + (c0 + c) * dst_ld + r0, out_lanes, v[c]);
  }
}

TCONV_TARGET_END

TCONV_TARGET_AVX2_BEGIN

// The same block as four 8 x 8 quarters, each transposed in registers: pairs
// of rows interleaved, then pairs of pairs, then the 128-bit halves swapped.
void transpose_quarter_avx2(const float* src, float* dst, std::int64_t src_ld, std::int64_t dst_ld, std::int64_t r0,
                            std::int64_t c0, std::int64_t nr, std::int64_t nc) {
  using Isa = simd::Avx2;
  const std::uint32_t in_lanes = (1u << nc) - 1, out_lanes = (1u << nr) - 1;
  __m256 v[8];
  for (int r = 0; r < 8; ++r) v[r] = r < nr ? Isa::masked_load(Isa::zero(), in_lanes, src + (r0 + r) * src_ld + c0) : Isa::zero();
  __m256 pairs[8], quads[8];
  for (int r = 0; r < 8; r += 2) {
    pairs[r] = _mm256_unpacklo_ps(v[r], v[r + 1]);
    pairs[r + 1] = _mm256_unpackhi_ps(v[r], v[r + 1]);
  }
  for (int r = 0; r < 8; r += 4) {
    quads[r] = _mm256_shuffle_ps(pairs[r], pairs[r + 2], 0x44);
    quads[r + 1] = _mm256_shuffle_ps(pairs[r], pairs[r + 2], 0xEE);
    quads[r + 2] = _mm256_shuffle_ps(pairs[r + 1], pairs[r + 3], 0x44);
    quads[r + 3] = _mm256_shuffle_ps(pairs[r + 1], pairs[r + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {
    if (c < nc) Isa::masked_store(dst + (c0 + c) * dst_ld + r0, out_lanes, _mm256_permute2f128_ps(quads[c], quads[c + 4], 0x20));
    if (c + 4 < nc) Isa::masked_store(dst + (c0 + c + 4) * dst_ld + r0, out_lanes, _mm256_permute2f128_ps(quads[c], quads[c + 4], 0x31));
  }
}

void transpose_block_avx2(const float* src, float* dst, std::int64_t src_ld, std::int64_t dst_ld, std::int64_t r0,
                          std::int64_t c0, std::int64_t nr, std::int64_t nc) {
  for (std::int64_t r = 0; r < nr; r += 8)
    for (std::int64_t c = 0; c < nc; c += 8)
      transpose_quarter_avx2(src, dst, src_ld, dst_ld, r0 + r, c0 + c, std::min<std::int64_t>(8, nr - r),
                             std::min<std::int64_t>(8, nc - c));
}

TCONV_TARGET_END

using BlockMover = void (*)(const float*, float*, std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                            std::int64_t, std::int64_t);

void transpose_with(BlockMover move, const float* src, float* dst, const TransposeShape& t, int threads) {
  const std::int64_t bands = (t.rows + kBlock - 1) / kBlock, items = t.count * bands;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && items > 1)
  for (std::int64_t it = 0; it < items; ++it) {
    const std::int64_t i = it / bands, r0 = it % bands * kBlock, nr = std::min(kBlock, t.rows - r0);
    for (std::int64_t c0 = 0; c0 < t.columns; c0 += kBlock) {
      move(src + i * t.src_matrix_stride, dst + i * t.dst_matrix_stride, t.src_row_stride, t.dst_row_stride, r0, c0,
           nr, std::min(kBlock, t.columns - c0));
    }
  }
}

}  // namespace

void transpose_matrices(const float* src, float* dst, const TransposeShape& shape, int threads) {
  transpose_matrices_with(cpu_has_avx512() ? TransposeIsa::avx512 : cpu_has_avx2_fma() ? TransposeIsa::avx2
                                                                                       : TransposeIsa::portable,
                          src, dst, shape, threads);
}

void transpose_matrices_with(TransposeIsa isa, const float* src, float* dst, const TransposeShape& shape, int threads) {
  const BlockMover move = isa == TransposeIsa::avx512 ? &transpose_block_avx512
                          : isa == TransposeIsa::avx2 ? &transpose_block_avx2
                                                      : &transpose_block_portable;
  transpose_with(move, src, dst, shape, threads);
}

void transpose_matrices_reference(const float* src, float* dst, const TransposeShape& t) {
  for (std::int64_t i = 0; i < t.count; ++i)
    for (std::int64_t r = 0; r < t.rows; ++r)
      for (std::int64_t c = 0; c < t.columns; ++c)
        dst[i * t.dst_matrix_stride + c * t.dst_row_stride + r] = src[i * t.src_matrix_stride + r * t.src_row_stride + c];
}

}  // namespace tconv::detail
