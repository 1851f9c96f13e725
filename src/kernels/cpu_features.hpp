// Run-time CPU feature checks shared by the kernel families, and TCONV_ISA,
// which caps them: `avx2` makes a machine with AVX-512 choose and run as one
// without it, `portable` as one with neither, `avx512` (or unset) leaves the
// CPU's own. Every ISA choice in the library (family dispatch, the kernels'
// own paths) goes through these two checks, so a cap reaches all of them.
#pragma once

namespace tconv::detail {

enum class IsaCap { portable, avx2, avx512 };

// TCONV_ISA, read once; an unknown value is an Error naming the ones it takes.
IsaCap isa_cap();

inline bool cpu_has_avx512() {
  return isa_cap() >= IsaCap::avx512 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
}

inline bool cpu_has_avx2_fma() {
  return isa_cap() >= IsaCap::avx2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

}  // namespace tconv::detail
