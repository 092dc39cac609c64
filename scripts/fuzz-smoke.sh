#!/usr/bin/env bash
# fuzz-smoke.sh SECONDS: short libFuzzer run of the safetensors reader.
# Builds the fuzz targets with clang (build-fuzz, LF_FUZZ=ON: libFuzzer + ASan + UBSan), then fuzzes
# fuzz_safetensors for SECONDS on a scratch copy of tests/fuzz/corpus/fuzz_safetensors (the committed
# corpus is never grown). Exits non-zero if the build fails or the fuzzer finds a crash, a leak, a
# timeout or an out-of-memory; crashing inputs are kept in build-fuzz/fuzz-artifacts/.
# BUILD_DIR (default build-fuzz) may be set by the caller.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
case $secs in ''|*[!0-9]*) echo "usage: $0 SECONDS" >&2; exit 2 ;; esac
dir=${BUILD_DIR:-build-fuzz}
target=fuzz_safetensors
corpus=tests/fuzz/corpus/$target

cmake -S . -B "$dir" -G Ninja -DLF_CUDA=OFF -DLF_FUZZ=ON -DCMAKE_C_COMPILER=clang
cmake --build "$dir" --target "$target" "${target}_replay"
bin="$dir/tests/$target"
[ -x "$bin" ] || { echo "fuzz-smoke: $bin was not built" >&2; exit 1; }
[ -d "$corpus" ] && [ -n "$(ls -A "$corpus")" ] || { echo "fuzz-smoke: empty corpus $corpus" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/lf-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"
cp "$corpus"/* "$work/corpus/"
# Dictionary of the header's tokens (cJSON is not instrumented, so the fuzzer gets no hints from it).
{
  for tok in '{' '}' '[' ']' ',' ':' '"' ' ' '\u0000' '\u00e9' '__metadata__' 'dtype' 'shape' \
             'data_offsets' 'BOOL' 'U8' 'I8' 'I16' 'U16' 'F16' 'BF16' 'I32' 'U32' 'F32' 'F64' 'I64' 'U64' \
             'C64' 'F4' 'F6_E2M3' 'F6_E3M2' 'F8_E4M3' 'F8_E5M2' 'F8_E8M0' 'F8_E4M3FNUZ' 'F8_E5M2FNUZ' \
             '1e400' '-1' '1.5' '9007199254740992' '4294967296'; do
    printf '"%s"\n' "$(printf '%s' "$tok" | sed 's/\\/\\\\/g; s/"/\\"/g')"
  done
} > "$work/dict"
artifacts="$dir/fuzz-artifacts"
mkdir -p "$artifacts"

echo "fuzz-smoke: $target for ${secs}s on a copy of $corpus ($(ls "$work/corpus" | wc -l) seeds)"
set +e
"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -dict="$work/dict" \
       -artifact_prefix="$artifacts/" -print_final_stats=1 "$work/corpus"
rc=$?
set -e
if [ $rc -ne 0 ]; then
  echo "fuzz-smoke: FAILED (exit $rc); reproducer(s) in $artifacts/" >&2
  exit $rc
fi
echo "fuzz-smoke: OK (no crash in ${secs}s)"
