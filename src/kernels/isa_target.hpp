// Regions of a kernel file compiled for one instruction set, with GCC and with
// Clang alike, so the rest of the file (the family's registration, its
// `rejects`, the CPU check) stays plain x86-64 and the library loads and
// chooses a family on any x86-64 CPU:
//
//   TCONV_TARGET_AVX512_BEGIN
//   ... functions that use AVX-512 intrinsics ...
//   TCONV_TARGET_END
//
// GCC: `#pragma GCC push_options` + `#pragma GCC target(...)`, popped at the
// end. Clang ignores those pragmas; it gets `#pragma clang attribute push` of
// `__attribute__((target(...)))` applied to every function declared inside
// (member functions, lambdas and templates included), popped at the end.
// A region must not straddle a namespace's braces unevenly, and code in it runs
// only after the family's CPU check (`cpu_has_avx512` / `cpu_has_avx2_fma`).
// Clang compiles the body of an `#pragma omp parallel` as a function of its own
// that the attribute does not reach: intrinsics there fail to compile ("AVX
// vector argument ... without 'avx512f' enabled"), so such a body calls a
// function of the region instead (GCC accepts either).
#pragma once

#if defined(__clang__)
#define TCONV_TARGET_BEGIN_(features) \
  _Pragma(TCONV_TARGET_STRINGIFY_(clang attribute push(__attribute__((target(features))), apply_to = function)))
#define TCONV_TARGET_END _Pragma("clang attribute pop")
#elif defined(__GNUC__)
#define TCONV_TARGET_BEGIN_(features) _Pragma("GCC push_options") _Pragma(TCONV_TARGET_STRINGIFY_(GCC target(features)))
#define TCONV_TARGET_END _Pragma("GCC pop_options")
#else
#error "tconv's kernels need GCC or Clang (ISA regions, __builtin_cpu_supports)"
#endif
#define TCONV_TARGET_STRINGIFY_(...) #__VA_ARGS__

#define TCONV_TARGET_AVX512_BEGIN TCONV_TARGET_BEGIN_("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
#define TCONV_TARGET_AVX2_BEGIN TCONV_TARGET_BEGIN_("avx2,fma")

// Put before each loop over a micro-kernel's register tile (rows, vectors). The
// loops must unroll completely or the accumulators are kept on the stack: GCC 12
// stops by itself at 17 rows of one vector, and a 24 x 1 tile then ran at 86
// instead of 118 GFLOP/s on one Zen 4 core. Clang reads the same pragma.
#define TCONV_UNROLL_TILE _Pragma("GCC unroll 64")
