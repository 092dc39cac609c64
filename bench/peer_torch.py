#!/usr/bin/env python3
"""peer_torch.py: the PyTorch way of applying a LoRA, as SD.Next and diffusers do it, timed on the GPU.

Same layers as lf_bench_apply (tests/data/{sd15,sdxl}_modules.tsv, kohya coverage: every Linear /
1x1 conv in the transformer blocks), random fp16 weights on the GPU, random fp16 LoRA factors.
Per case and per variant, CUDA events around the whole loop over the layers (warm-up first, median
of --iters), one JSON line each:

  restore           W.copy_(W0) for every layer (the backup copy SD.Next makes before a new merge)
  merge_fp16        W.addmm_(up, down, alpha=s) per layer and adapter (W += s * up @ down, in fp16)
  merge_fp32        diffusers fuse_lora: W.copy_((W.float() + s * (up.float() @ down.float())).half())
  restore+merge     restore, then merge_fp16: what changing a strength costs; this is the "primary"
                    line compared with lorafuse (whose apply always starts again from W0)

With --compare BENCH_JSONL (lf_bench_apply's output), every line gets lorafuse_ms (same case name)
and speedup = peer ms / lorafuse ms. Without torch or without a CUDA device it prints one
{"bench": "peer_torch", "skipped": ...} line and exits 0.

Usage: python3 bench/peer_torch.py [--json FILE] [--compare BENCH_JSONL] [--cases S1,S2] [--iters N]
                                   [--budget SEC] [--data DIR]
"""
import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (case name as in lf_bench_apply, model, rank, adapters)
CASES = [
    ("sd15_kohya_lora_r32_x1", "sd15", 32, 1),
    ("sdxl_kohya_lora_r32_x1", "sdxl", 32, 1),
    ("sd15_kohya_lora_r32_x8", "sd15", 32, 8),
    ("sdxl_kohya_lora_r32_x8", "sdxl", 32, 8),
    ("sd15_kohya_lora_r8_x1", "sd15", 8, 1),
    ("sd15_kohya_lora_r128_x1", "sd15", 128, 1),
]


def read_table(data_dir, model):
    """[(kohya_name, checkpoint_key, shape)] of the kohya-covered layers (same rule as bench_apply.c)."""
    out = []
    with open(os.path.join(data_dir, "%s_modules.tsv" % model)) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            kohya, key, _rows, shape = line.rstrip("\n").split("\t")
            shape = tuple(int(x) for x in shape.split(","))
            lin = len(shape) == 2 or (len(shape) == 4 and shape[2:] == (1, 1))
            if lin and (".transformer_blocks." in key or ".proj_in." in key or ".proj_out." in key):
                out.append((kohya, key, shape))
    return out


def emit(line, sink):
    s = json.dumps(line)
    print(s, flush=True)
    if sink:
        sink.write(s + "\n")
        sink.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="also write the JSON lines to this file")
    ap.add_argument("--compare", help="lf_bench_apply JSON lines to compare with")
    ap.add_argument("--cases", default="", help="comma list of substrings selecting cases")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--budget", type=float, default=50.0, help="start no new case after this many seconds")
    ap.add_argument("--data", default=os.path.join(ROOT, "tests", "data"))
    args = ap.parse_args()
    sink = open(args.json, "w") if args.json else None

    try:
        import torch
    except Exception as e:  # ImportError, or a broken install
        emit({"bench": "peer_torch", "skipped": "torch not importable: %s" % str(e)[:200]}, sink)
        return 0
    if not torch.cuda.is_available():
        emit({"bench": "peer_torch", "skipped": "torch %s sees no CUDA device" % torch.__version__}, sink)
        return 0

    lf = {}
    if args.compare and os.path.exists(args.compare):
        with open(args.compare) as f:
            for l in f:
                try:
                    r = json.loads(l)
                except ValueError:
                    continue
                if r.get("bench") == "apply" and isinstance(r.get("ms"), (int, float)):
                    lf[r["case"]] = r["ms"]

    dev = torch.device("cuda")
    name = torch.cuda.get_device_name(dev)
    meta = {"device": name, "torch": torch.__version__}
    start = time.time()
    sel = [c for c in CASES if not args.cases or any(s and s in c[0] for s in args.cases.split(","))]
    tables = {}
    for case, model, rank, nad in sel:
        if time.time() - start > args.budget:
            emit({"bench": "peer_torch", "case": case, "skipped": "time budget of %.0f s used up" % args.budget}, sink)
            continue
        if model not in tables:
            tables[model] = read_table(args.data, model)
        layers = tables[model]
        g = torch.Generator(device=dev)
        g.manual_seed(1234)
        # 2-D views (O, K): a 1x1 conv weight merges exactly like a Linear
        W = [torch.randn(s[0], _cols(s), generator=g, device=dev, dtype=torch.float16) * 0.02 for _, _, s in layers]
        W0 = [w.clone() for w in W]
        F = [[(torch.randn(s[0], rank, generator=g, device=dev, dtype=torch.float16) * 0.05,
               torch.randn(rank, _cols(s), generator=g, device=dev, dtype=torch.float16) * 0.05)
              for _, _, s in layers] for _ in range(nad)]
        scale = 0.5  # alpha / rank = 1/2, strength 1

        def restore():
            for w, w0 in zip(W, W0):
                w.copy_(w0)

        def merge_fp16():
            for a in range(nad):
                for w, (up, down) in zip(W, F[a]):
                    w.addmm_(up, down, alpha=scale)

        def merge_fp32():
            for a in range(nad):
                for w, (up, down) in zip(W, F[a]):
                    w.copy_((w.float() + scale * (up.float() @ down.float())).to(torch.float16))

        def restore_merge():
            restore()
            merge_fp16()

        variants = [("restore", restore, len(layers)), ("merge_fp16", merge_fp16, len(layers) * nad),
                    ("merge_fp32", merge_fp32, len(layers) * nad),
                    ("restore+merge", restore_merge, len(layers) * (nad + 1))]
        wbytes = sum(w.numel() * 2 for w in W)
        for vname, fn, layer_ops in variants:
            times = _time(torch, fn, args.iters)
            ms = statistics.median(times)
            line = {"bench": "peer_torch", "case": case, "variant": vname, "model": model, "rank": rank,
                    "adapters": nad, "layers": len(layers), "layer_ops": layer_ops, "iters": len(times),
                    "ms": round(ms, 4), "ms_min": round(min(times), 4), "weight_bytes": wbytes}
            line.update(meta)
            if vname == "restore+merge":
                line["primary"] = True
            if case in lf and lf[case] > 0:
                line["lorafuse_ms"] = lf[case]
                line["speedup"] = round(ms / lf[case], 1)
            emit(line, sink)
        del W, W0, F
        torch.cuda.empty_cache()
    if sink:
        sink.close()
    return 0


def _cols(shape):
    k = 1
    for d in shape[1:]:
        k *= d
    return k


def _time(torch, fn, iters):
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(max(iters, 1)):
        e0 = torch.cuda.Event(enable_timing=True)
        e1 = torch.cuda.Event(enable_timing=True)
        e0.record()
        fn()
        e1.record()
        e1.synchronize()
        out.append(e0.elapsed_time(e1))
    return out


if __name__ == "__main__":
    sys.exit(main())
