#!/usr/bin/env bash
# bench_merge.sh: time `lorafuse merge` of a rank-32 kohya LoRA into a full-size SD1.5 fp16 checkpoint
# on the CPU (files from bench/make_sd15_bench.py). Prints one JSON line per run and a summary line
# with the medians: read+check, compute, write seconds; bytes read/written; LoRA FLOPs (2*O*K*r per
# module) and the achieved GFLOP/s; and, measured in the same run as the floor, the time `cp` takes
# to copy the checkpoint (the merge must read and write every byte at least once).
# Usage: bash bench/bench_merge.sh [BUILD_DIR] [RUNS]      (BENCH_DIR, default /tmp/lf-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
runs=${2:-3}
dir=${BENCH_DIR:-/tmp/lf-bench}
# numpy: Debian python3-numpy (the system python3)
py=${PYTHON:-/usr/bin/python3}
[ -f "$dir/sd15-f16.safetensors" ] || "$py" bench/make_sd15_bench.py "$dir" >&2
ckpt=$dir/sd15-f16.safetensors
lora=$dir/lora-r32.safetensors
bytes=$(stat -c %s "$ckpt")
flops=$(python3 - "$lora" <<'PY'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    h = json.loads(f.read(n))
tot = 0
for k, v in h.items():
    if k.endswith(".lora_up.weight"):
        o, r = v["shape"][0], v["shape"][1]
        d = h[k.replace("lora_up", "lora_down")]["shape"]
        kk = 1
        for x in d[1:]:
            kk *= x
        tot += 2 * o * kk * r
print(tot)
PY
)
sync
t0=$(date +%s.%N); cp "$ckpt" "$dir/copy.safetensors"; sync; t1=$(date +%s.%N)
cp_s=$(echo "$t1 - $t0" | bc -l); rm -f "$dir/copy.safetensors"
results=()
for i in $(seq "$runs"); do
  t0=$(date +%s.%N)
  line=$("$build/lorafuse" merge --model "$ckpt" --lora "$lora:1" --output "$dir/merged.safetensors" --force --stats 2>/dev/null)
  sync
  t1=$(date +%s.%N)
  total=$(echo "$t1 - $t0" | bc -l)
  echo "{\"bench\": \"merge_sd15_r32_cpu\", \"run\": $i, \"total_s\": $total, ${line#\{}"
  results+=("$total $line")
done
printf '%s\n' "${results[@]}" | python3 -c "
import json, sys, statistics
rows = [l.split(' ', 1) for l in sys.stdin.read().splitlines()]
tot = statistics.median(float(r[0]) for r in rows)
st = [json.loads(r[1]) for r in rows]
med = lambda k: statistics.median(s[k] for s in st)
print(json.dumps({'bench': 'merge_sd15_r32_cpu', 'runs': len(rows), 'total_s': round(tot, 3),
  'read_s': round(med('read_s'), 3), 'compute_s': round(med('compute_s'), 3), 'write_s': round(med('write_s'), 3),
  'bytes_in': $bytes, 'bytes_out': st[0]['bytes'], 'lora_flops': $flops,
  'gflops_s': round($flops / 1e9 / med('compute_s'), 1), 'cp_floor_s': round($cp_s, 3),
  'ratio_to_cp': round(tot / $cp_s, 2), 'patched': st[0]['patched']}))
"
rm -f "$dir/merged.safetensors"
