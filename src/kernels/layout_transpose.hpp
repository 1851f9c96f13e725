// Moving activations between the channels-first and channels-last layouts.
//
// Math. For each of `count` matrices, row-major [rows][columns],
//     dst[i * dst_matrix_stride + c * dst_row_stride + r] = src[i * src_matrix_stride + r * src_row_stride + c]
// (contiguous: row strides columns and rows, matrix strides rows * columns):
// [N][C][S] -> [N][S][C] is rows = C, columns = S, and back is rows = S,
// columns = C; row strides past the row length copy a window of a bigger
// matrix, as the channels-last detour's slabs do. Values are copied, never
// combined, so the result is exact in any order.
//
// The AVX-512 path moves 16 x 16 blocks through registers (masked at the
// edges), the AVX2 path each block as four 8 x 8 quarters; other CPUs take
// 16 x 16 blocks element by element, which keeps both sides' cache lines in use. Work is shared out by (matrix, band of 16 rows).
#pragma once

#include <cstdint>

namespace tconv::detail {

struct TransposeShape {
  std::int64_t count = 1, rows = 0, columns = 0;
  std::int64_t src_row_stride = 0, src_matrix_stride = 0;
  std::int64_t dst_row_stride = 0, dst_matrix_stride = 0;

  static TransposeShape contiguous(std::int64_t count, std::int64_t rows, std::int64_t columns) {
    return {count, rows, columns, columns, rows * columns, rows, rows * columns};
  }
};

void transpose_matrices(const float* src, float* dst, const TransposeShape& shape, int threads);

// The same with the given ISA's block mover, which the CPU must have: the
// tests run every path the machine can (transpose_matrices picks the best).
enum class TransposeIsa { portable, avx2, avx512 };
void transpose_matrices_with(TransposeIsa isa, const float* src, float* dst, const TransposeShape& shape, int threads);

// The element-by-element twin, one thread: the oracle of the tests.
void transpose_matrices_reference(const float* src, float* dst, const TransposeShape& shape);

}  // namespace tconv::detail
