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

// A region of fully unrolled kernel code left out of the sanitizers' and
// libFuzzer's instrumentation (scripts/hardening.sh builds with clang 14 under
// ASan + UBSan + coverage). Why: ASan splits every lane of a masked load with a
// variable mask into a block of its own, and clang 14's branch-probability
// analysis is quadratic in such blocks: depthwise_conv's rows-outer bands (80
// such loads per plane walk) did not compile in 6 minutes, and take well under
// a second each without. What the instrumentation would check there, that no
// active lane reads or writes outside a tensor, the family sweeps of
// tests/cpp/kernel_test.cpp check in every build: their tensors lie against an
// inaccessible page (PageGuardedTensor). GCC builds instrument everything (the
// region is empty for them).
#if defined(__clang__)
#define TCONV_UNINSTRUMENTED_BEGIN \
  _Pragma("clang attribute push(__attribute__((no_sanitize(\"address\", \"undefined\", \"coverage\"))), apply_to = function)")
#define TCONV_UNINSTRUMENTED_END _Pragma("clang attribute pop")
#else
#define TCONV_UNINSTRUMENTED_BEGIN
#define TCONV_UNINSTRUMENTED_END
#endif

// Put before each loop over a micro-kernel's register tile (rows, vectors). The
// loops must unroll completely or the accumulators are kept on the stack: GCC 12
// stops by itself at 17 rows of one vector, and a 24 x 1 tile then ran at 86
// instead of 118 GFLOP/s on one Zen 4 core. Clang reads the same pragma.
#define TCONV_UNROLL_TILE _Pragma("GCC unroll 64")
