#!/usr/bin/env bash
# bench_memory.sh: peak RSS and time of `lorafuse generate` on a full-size SD1.5 checkpoint (f16, random
# weights) at 512x512, without and with a rank-8 kohya LoRA on every UNet transformer and text-encoder
# Linear, as JSON lines: the whole-process peak from /usr/bin/time -v, the parts generate --json reports
# (weights, adapter backups, activations, scratch: lf_gen_memory), the UNet seconds per call and whether
# the image equals the one of the first build given (bit for bit, decoded PNG pixels).
#
#   bash bench/bench_memory.sh [--steps N] [--size PX] [--runs R] BUILD_DIR [BUILD_DIR ...]
#
# Several build dirs (e.g. one built from the commit before a change) are run interleaved, R rounds, so
# other load on the machine hits them alike. Inputs: /tmp/lf-mem/sd15-full-f16.safetensors and
# /tmp/lf-mem/lora/full-r8.safetensors, written by
#   /work/.venv-golden/bin/python bench/make_full_model.py /tmp/lf-mem      (about 2.2 GB)
# Threads: LF_NUM_THREADS (default: all CPUs). Results: bench/RESULTS.md; description: bench/README.md.
set -euo pipefail
steps=2 size=512 runs=1 builds=()
while [ $# -gt 0 ]; do
    case "$1" in
        --steps) steps=$2; shift 2 ;;
        --size) size=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) builds+=("$1"); shift ;;
    esac
done
[ ${#builds[@]} -gt 0 ] || builds=(build)
dir=/tmp/lf-mem
model=$dir/sd15-full-f16.safetensors
[ -f "$model" ] || { echo "{\"bench\":\"memory\",\"skipped\":\"no $model (bench/make_full_model.py)\"}"; exit 0; }
out=$(mktemp -d /tmp/lf-bench-mem.XXXXXX)
trap 'rm -rf "$out"' EXIT
for r in $(seq 1 "$runs"); do
    for case in no_lora lora; do
        prompt="a photo of a cat"
        [ $case = lora ] && prompt="$prompt <lora:full-r8:0.8>"
        for i in "${!builds[@]}"; do
            b=${builds[$i]}
            tag=b$i-$case-$r
            /usr/bin/time -v "$b/lorafuse" generate --model "$model" --prompt "$prompt" --negative "" --steps "$steps" \
                --sampler Euler --seed 1 --width "$size" --height "$size" --lora-dir "$dir/lora" \
                --output-dir "$out/$tag" --json > "$out/$tag.json" 2> "$out/$tag.err" || true
            python3 - "$b" "$case" "$r" "$out/$tag" "$out/b0-$case-$r" \
                "$steps" "$size" <<'PY'
import json, re, struct, sys, zlib, os
b, case, r, tag, ref, steps, size = sys.argv[1:]
err = open(tag + ".err").read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1)) * 1024
wall = re.search(r"Elapsed \(wall clock\) time.*: ([\d:.]+)", err).group(1)
m = re.search(r"UNet ([0-9.]+) s \((\d+) calls\)", err)
recs = [json.loads(l) for l in open(tag + ".json") if l.strip()]
def pixels(d):
    f = [os.path.join(d, x) for x in sorted(os.listdir(d)) if x.endswith(".png")][0]
    data, i, idat = open(f, "rb").read(), 8, b""
    while i < len(data):
        n = struct.unpack(">I", data[i:i + 4])[0]
        if data[i + 4:i + 8] == b"IDAT":
            idat += data[i + 8:i + 8 + n]
        i += 12 + n
    return zlib.decompress(idat)
try:
    same = pixels(tag) == pixels(ref)
except Exception:
    same = None
line = {"bench": "memory", "build": b, "case": case, "round": int(r), "model": "sd15-full-f16", "size": int(size),
        "steps": int(steps), "peak_rss_gb": round(rss / 1e9, 3), "wall": wall,
        "unet_s_per_call": round(float(m.group(1)) / int(m.group(2)), 2) if m else None,
        "same_image_as_first_build": same}
if recs and "memory" in recs[0]:
    line["parts_gb"] = {k: round(v / 1e9, 3) for k, v in recs[0]["memory"].items()}
print(json.dumps(line))
PY
        done
    done
done
