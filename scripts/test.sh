#!/usr/bin/env bash
# test.sh: build lorafuse and run every test (the README's test command; .ci/run calls it).
# BUILD_DIR (default build) and CMAKE_ARGS may be set by the caller.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
dir=${BUILD_DIR:-build}
cmake -S . -B "$dir" -G Ninja ${CMAKE_ARGS:-}
cmake --build "$dir" -j"$(nproc)"
ctest --test-dir "$dir" --output-on-failure -j"$(nproc)"
