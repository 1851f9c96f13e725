#!/usr/bin/env bash
# One command for the whole benchmark: builds tconv_bench (tconv + the C++ peers
# found) in build-bench/, then runs tconv and every peer on the suite, rounds
# interleaved, and prints the table (also written to bench/latest.md).
#   bash bench/run.sh [--op conv_transpose|conv] [--suite FILE] [--rounds N] [--budget SEC] [--only a,b] ...
# --op conv (every implementation) measures the convolutions the suite's transposed
# convolutions are the gradients of; that table goes to bench/latest_conv.md. --isa avx2 holds
# tconv, oneDNN and PyTorch to AVX2 (bench/latest_avx2.md, latest_conv_avx2.md).
# Peers from PyPI (onnxruntime, openvino) are used when the python3 first on PATH
# has them; this script never installs anything.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
build="${TCONV_BENCH_BUILD_DIR:-$root/build-bench}"
mkdir -p "$build"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTCONV_BUILD_TESTS=OFF \
      -DTCONV_BUILD_PYTHON=OFF -DTCONV_BUILD_BENCH=ON > "$build/configure.log" 2>&1 \
  || { cat "$build/configure.log"; exit 1; }
cmake --build "$build" --target tconv_bench > "$build/build.log" 2>&1 \
  || { tail -50 "$build/build.log"; exit 1; }
exec /usr/bin/python3 bench/run.py --build-dir "$build" "$@"
