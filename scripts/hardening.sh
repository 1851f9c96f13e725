#!/usr/bin/env bash
# The sanitizer and fuzzing checks, with clang-14 (Debian's clang-14 and
# libclang-rt-14-dev; scripts/dev.sh installs them and runs this before ctest).
# Any x86-64 CPU: the kernels' ISA regions (src/kernels/isa_target.hpp) compile
# for both compilers, and the tests skip the families the CPU lacks.
#   1. build-asan: the library under AddressSanitizer + UBSan with libFuzzer
#      coverage; runs the GoogleTest suite once, then
#   2. the Python suite (tests/python, Debian's /usr/bin/python3 -m pytest) once
#      against the module and the CLI of build-asan: Python is not instrumented,
#      so the shared ASan runtime (which carries UBSan's handlers too) is
#      LD_PRELOADed into it, with leak detection off (CPython and torch keep
#      memory to the end by design). The CLI links the static runtime, which
#      refuses to start beside a preloaded one, so the suite runs with
#      LD_PRELOAD (and that ASAN_OPTIONS) taken out of its environment once
#      Python has started: the CLI runs with ASan's defaults, leak checks
#      included (scripts/lsan.supp).
#   3. each libFuzzer target in fuzz/ for FUZZ_SECONDS (default 30) from its
#      seed corpus fuzz/corpus/<name>/ (regression-* seeds there are inputs
#      that once found a bug).
#   4. build-tsan: the library under ThreadSanitizer; runs the concurrency test.
# Closing lines: GoogleTest's summaries, pytest's, then "fuzz: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
fuzz_seconds=${FUZZ_SECONDS:-30}
export CC=clang-14 CXX=clang++-14
# libomp keeps its thread pool to the end: not a leak of tconv's.
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp"

configure() {  # build dir, sanitizer flags, extra cmake arguments
  local dir=$1 flags=$2
  shift 2
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_CXX_FLAGS="$flags -fno-omit-frame-pointer -fno-sanitize-recover=all" \
        -DCMAKE_EXE_LINKER_FLAGS="$flags" "$@" >/dev/null
}

echo "== AddressSanitizer + UBSan: GoogleTest suite"
configure build-asan "-fsanitize=address,undefined -fsanitize=fuzzer-no-link" -DTCONV_BUILD_FUZZ=ON -DTCONV_BUILD_PYTHON=ON
cmake --build build-asan --target tconv_tests tconv_cli _tconv npy_fuzzer validate_fuzzer
./build-asan/tests/tconv_tests --gtest_brief=1

echo "== AddressSanitizer + UBSan: Python suite"
# The tests that start Python interpreters of their own (test_isa_cap.py) hand
# them the runtime the instrumented module needs, TCONV_TEST_PYTHON_PRELOAD.
asan_runtime=$(clang-14 -print-file-name=libclang_rt.asan-x86_64.so)
LD_PRELOAD=$asan_runtime ASAN_OPTIONS=detect_leaks=0 TCONV_TEST_PYTHON_PRELOAD=$asan_runtime \
  PYTHONPATH="$PWD/build-asan/python" TCONV_CLI="$PWD/build-asan/tconv" /usr/bin/python3 -c '
import os, sys
del os.environ["LD_PRELOAD"], os.environ["ASAN_OPTIONS"]  # for the subprocesses (the CLI) only
import pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "tests/python"]))'

echo "== ThreadSanitizer: one operator from several threads"
configure build-tsan "-fsanitize=thread" -DTCONV_BUILD_PYTHON=OFF
cmake --build build-tsan --target tconv_concurrency_test
# Debian's libomp is not instrumented: TSan ignores its accesses and sees the
# threads of the test (several std::threads on one Operator, each with 2 OpenMP threads).
OMP_NUM_THREADS=2 TSAN_OPTIONS="halt_on_error=1 ignore_noninstrumented_modules=1" \
  ./build-tsan/tests/tconv_concurrency_test --gtest_brief=1

echo "== libFuzzer, ${fuzz_seconds} s per target"
passed=0 failed=0
for target in npy validate; do
  corpus=$(mktemp -d)  # new inputs go here; the committed seeds stay as they are
  log=build-asan/fuzz/${target}_fuzzer.log
  if ./build-asan/fuzz/${target}_fuzzer -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 -timeout=10 \
       -print_final_stats=1 -artifact_prefix=build-asan/fuzz/${target}- "$corpus" "fuzz/corpus/$target" >"$log" 2>&1; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    tail -n 40 "$log"
  fi
  echo "$target: $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?') executions"
  rm -rf "$corpus"
done
echo "fuzz: $passed passed, $failed failed"
((failed == 0))
