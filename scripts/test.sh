#!/usr/bin/env bash
# test.sh: build lorafuse and run every test (the README's test command; .ci/run calls it).
# BUILD_DIR (default build) and CMAKE_ARGS may be set by the caller.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
dir=${BUILD_DIR:-build}
gen=Ninja
command -v ninja >/dev/null 2>&1 || gen="Unix Makefiles"
cmake -S . -B "$dir" -G "$gen" ${CMAKE_ARGS:-}
cmake --build "$dir" -j"$(nproc)"
ctest --test-dir "$dir" --output-on-failure -j"$(nproc)"
