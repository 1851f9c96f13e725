#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine:
#   scripts/dev.sh demo   install what is missing, build, run `tconv demo`
#   scripts/dev.sh test   install what is missing, build, run scripts/hardening.sh (sanitizer builds and
#                         fuzzing, clang-14), then every test (ctest: GoogleTest + pytest)
#   scripts/dev.sh build  install what is missing and build
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the build and the tests need. python3-torch is the test oracle
# (Debian's CPU build of PyTorch for /usr/bin/python3). clang-14 and its
# runtimes (sanitizers, libFuzzer) build scripts/hardening.sh's checks.
packages=(g++ cmake ninja-build libgtest-dev libgmock-dev libomp-dev python3 python3-dev python3-numpy
          python3-pybind11 pybind11-dev python3-pytest python3-torch librsvg2-bin clang-14 libclang-rt-14-dev)

install_missing() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  echo "Installing Debian packages: ${missing[*]}"
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

build() {
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build
}

case "${1:-}" in
  demo) install_missing; build; ./build/tconv demo ;;
  # The sanitizer and fuzzing checks first, so the suite's ctest summary closes the run.
  test) install_missing; build; bash scripts/hardening.sh; ctest --test-dir build --output-on-failure ;;
  build) install_missing; build ;;
  *) echo "usage: scripts/dev.sh demo|test|build" >&2; exit 2 ;;
esac
