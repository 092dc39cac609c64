#!/usr/bin/env bash
# fuzz-smoke.sh SECONDS [TARGET...]: short libFuzzer runs of the parsers (default: every tests/fuzz/
# fuzz_*.c target: the safetensors reader, the prompt-tag parser, the LBW presets file, ...).
# Builds the fuzz targets with clang (build-fuzz, LF_FUZZ=ON: libFuzzer + ASan + UBSan), then fuzzes
# each target for SECONDS on a scratch copy of tests/fuzz/corpus/<target> (the committed corpus is
# never grown). Exits non-zero if the build fails or the fuzzer finds a crash, a leak, a
# timeout or an out-of-memory; crashing inputs are kept in build-fuzz/fuzz-artifacts/.
# BUILD_DIR (default build-fuzz) may be set by the caller.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
case $secs in ''|*[!0-9]*) echo "usage: $0 SECONDS [TARGET...]" >&2; exit 2 ;; esac
shift || true
dir=${BUILD_DIR:-build-fuzz}
targets=("$@")
if ((${#targets[@]} == 0)); then
  for f in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi

cmake -S . -B "$dir" -G Ninja -DLF_CUDA=OFF -DLF_FUZZ=ON -DCMAKE_C_COMPILER=clang
cmake --build "$dir" --target "${targets[@]}"

fuzz_one() {
local target=$1
local corpus=tests/fuzz/corpus/$target
local bin="$dir/tests/$target"
[ -x "$bin" ] || { echo "fuzz-smoke: $bin was not built" >&2; exit 1; }
[ -d "$corpus" ] && [ -n "$(ls -A "$corpus")" ] || { echo "fuzz-smoke: empty corpus $corpus" >&2; exit 1; }

local work
work=$(mktemp -d "${TMPDIR:-/tmp}/lf-fuzz.XXXXXX")
mkdir "$work/corpus"
cp "$corpus"/* "$work/corpus/"
# Dictionary of the safetensors header's tokens (cJSON is not instrumented, so the fuzzer gets no
# hints from it); the tag parser is ours and instrumented, so it needs none.
local dict=()
if [ "$target" = fuzz_safetensors ]; then
dict=(-dict="$work/dict")
{
  for tok in '{' '}' '[' ']' ',' ':' '"' ' ' '\u0000' '\u00e9' '__metadata__' 'dtype' 'shape' \
             'data_offsets' 'BOOL' 'U8' 'I8' 'I16' 'U16' 'F16' 'BF16' 'I32' 'U32' 'F32' 'F64' 'I64' 'U64' \
             'C64' 'F4' 'F6_E2M3' 'F6_E3M2' 'F8_E4M3' 'F8_E5M2' 'F8_E8M0' 'F8_E4M3FNUZ' 'F8_E5M2FNUZ' \
             '1e400' '-1' '1.5' '9007199254740992' '4294967296'; do
    printf '"%s"\n' "$(printf '%s' "$tok" | sed 's/\\/\\\\/g; s/"/\\"/g')"
  done
} > "$work/dict"
fi
local artifacts="$dir/fuzz-artifacts"
mkdir -p "$artifacts"

echo "fuzz-smoke: $target for ${secs}s on a copy of $corpus ($(ls "$work/corpus" | wc -l) seeds)"
set +e
"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 "${dict[@]}" \
       -artifact_prefix="$artifacts/" -print_final_stats=1 "$work/corpus"
local rc=$?
set -e
rm -rf "$work"
if [ $rc -ne 0 ]; then
  echo "fuzz-smoke: $target FAILED (exit $rc); reproducer(s) in $artifacts/" >&2
  return $rc
fi
echo "fuzz-smoke: $target OK (no crash in ${secs}s)"
}

for t in "${targets[@]}"; do fuzz_one "$t"; done
