// Moving activations between the channels-first and channels-last layouts.
//
// Math. For each of `count` matrices, row-major [rows][columns] at src +
// i * rows * columns, dst[i][c][r] = src[i][r][c]: [N][C][S] -> [N][S][C] is
// rows = C, columns = S, and back is rows = S, columns = C. Values are copied,
// never combined, so the result is exact in any order.
//
// The AVX-512 path moves 16 x 16 blocks through registers (masked at the
// edges); other CPUs take 16 x 16 blocks element by element, which keeps both
// sides' cache lines in use. Work is shared out by (matrix, band of 16 rows).
#pragma once

#include <cstdint>

namespace tconv::detail {

void transpose_matrices(const float* src, float* dst, std::int64_t count, std::int64_t rows, std::int64_t columns,
                        int threads);

// The element-by-element twin, one thread: the oracle of the tests.
void transpose_matrices_reference(const float* src, float* dst, std::int64_t count, std::int64_t rows,
                                  std::int64_t columns);

}  // namespace tconv::detail
