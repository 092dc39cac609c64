#!/usr/bin/env bash
# bench_generate.sh: the speed figures of `lorafuse generate` on the CPU backend, as JSON lines.
#   (a) seconds per image for the default model (models/sd15-mini.safetensors, its default 256x256,
#       20 steps, DPM++ 2M Karras, CFG 7), without a LoRA and with the demo's scheduled LoRA tag;
#   (b) seconds per step for full-size SD1.5 (512x512, batch 2 = CFG) with and without a rank-32 kohya
#       LoRA whose UNet strength changes at every step, and the scheduling overhead as a fraction of the
#       step time: lf_bench_generate_sd15 (bench/bench_generate_sd15.c).
#
#   bash bench/bench_generate.sh [BUILD_DIR] [--images N] [--skip-sd15] [--sd15-args "ARGS"]
#
# BUILD_DIR (default build) must hold lorafuse and lf_bench_generate_sd15. (b) needs the full-size files
# of bench/make_sd15_bench.py in /tmp/lf-bench (about 2.2 GB, numpy; made here with /usr/bin/python3 when
# missing and numpy is there, else (b) prints a "skipped" line). Threads: LF_NUM_THREADS (default: all
# CPUs). Results: bench/RESULTS.md; description: bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build
images=3
skip_sd15=0
sd15_args=""
while [ $# -gt 0 ]; do
    case "$1" in
        --images) images=$2; shift 2 ;;
        --skip-sd15) skip_sd15=1; shift ;;
        --sd15-args) sd15_args=$2; shift 2 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) build=$1; shift ;;
    esac
done
bin=$build/lorafuse
[ -x "$bin" ] || { echo "no $bin: build first (cmake --build $build)" >&2; exit 2; }
out=$(mktemp -d /tmp/lf-bench-gen.XXXXXX)
trap 'rm -rf "$out"' EXIT

# (a) the default model: one process per case, N images (--batch-count), seconds per image = wall / N
# (load, text encoders and VAE included) and the sampler's share per image from --json.
mini() { # name prompt
    local name=$1 prompt=$2 t0 t1
    t0=$(date +%s.%N)
    "$bin" generate --model models/sd15-mini.safetensors --prompt "$prompt" --negative "blurry" --seed 42 \
        --batch-count "$images" --output-dir "$out/$name" --json > "$out/$name.jsonl" 2> "$out/$name.err"
    t1=$(date +%s.%N)
    python3 - "$name" "$images" "$t0" "$t1" "$out/$name.jsonl" "$out/$name.err" <<'EOF'
import json, re, sys
name, n, t0, t1, jl, err = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6]
recs = [json.loads(l) for l in open(jl) if l.strip()]
sample = sum(r["timings"]["sample"] for r in recs) / max(len(recs), 1)
decode = sum(r["timings"]["decode"] for r in recs) / max(len(recs), 1)
summ = [l for l in open(err) if l.startswith("lorafuse generate:")]
m = re.search(r"weight updates ([0-9.]+) s \((\d+)\), UNet ([0-9.]+) s \((\d+) calls\)", summ[-1]) if summ else None
line = {"bench": "gen_mini", "case": name, "model": "sd15-mini", "size": f'{recs[0]["width"]}x{recs[0]["height"]}',
        "steps": 20, "sampler": "DPM++ 2M Karras", "images": len(recs), "seconds_per_image": round((t1 - t0) / n, 3),
        "sample_s_per_image": round(sample, 3), "decode_s_per_image": round(decode, 3)}
if m:
    line.update({"weights_s": float(m.group(1)), "weight_updates": int(m.group(2)), "unet_s": float(m.group(3)),
                 "unet_calls": int(m.group(4)), "s_per_step": round(float(m.group(3)) / int(m.group(4)), 4),
                 "overhead_fraction": round(float(m.group(1)) / (float(m.group(1)) + float(m.group(3))), 4)})
print(json.dumps(line))
EOF
}
mini no_lora "a lighthouse at dusk, pixel art"
mini lora_every_step "a lighthouse at dusk, pixel art <lora:mini_lora:te=0.8:unet=0@0,1@1.0:ramp=linear>"

# (b) full-size SD1.5
if [ "$skip_sd15" = 1 ]; then
    echo '{"bench":"gen_sd15","skipped":"--skip-sd15"}'
    exit 0
fi
if [ ! -f /tmp/lf-bench/sd15-f16.safetensors ] || [ ! -f /tmp/lf-bench/lora-r32.safetensors ]; then
    /usr/bin/python3 bench/make_sd15_bench.py /tmp/lf-bench >&2 || true
fi
# shellcheck disable=SC2086
"$build/lf_bench_generate_sd15" $sd15_args
