#!/usr/bin/env python3
"""make_sd15_bench.py: write a full-size SD1.5 fp16 checkpoint with random weights and a rank-32
kohya LoRA for it, for bench/bench_merge.sh. Not a test fixture: files go to OUTDIR (default
/tmp/lf-bench) and are a few GB.

Checkpoint: every LoRA-targetable SD1.5 UNet module and every CLIP-L text-encoder Linear with its real
key and shape (tests/data/sd15_modules.tsv, te_modules.tsv: the module tables of docs/keymap.md), plus
filler tensors "first_stage_model.bench_filler.N" so that the total is SD1.5's 1.066e9 parameters
(UNet 859.5M + TE 123.1M + VAE 83.7M), i.e. the bytes a real merge reads and writes.
LoRA: kohya naming, rank 32, alpha 16, fp16 factors, on the default kohya targets (every Linear / 1x1
conv in the transformer blocks: 192 UNet modules) and the 72 text-encoder Linears.
Usage: python3 bench/make_sd15_bench.py [OUTDIR]   (needs numpy)
"""
import json
import os
import struct
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOTAL_PARAMS = 1_066_235_307
RANK, ALPHA = 32, 16.0


def rows(name):
    out = []
    with open(os.path.join(ROOT, "tests", "data", name)) as f:
        for line in f:
            if line.startswith("#"):
                continue
            kohya, key, sl, shape = line.rstrip("\n").split("\t")
            out.append((kohya, key, sl, tuple(int(x) for x in shape.split(","))))
    return out


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, dtype string, shape, generator of bytes-like chunks, nbytes)."""
    header, off = {}, 0
    if metadata:
        header["__metadata__"] = metadata
    for name, dt, shape, _, nbytes in tensors:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + nbytes]}
        off += nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, _, chunks, _ in tensors:
            for c in chunks:
                f.write(c)
    os.replace(tmp, path)


def random_f16(rng, shape, std):
    n = int(np.prod(shape)) if shape else 1
    step = 1 << 24
    for i in range(0, n, step):
        k = min(step, n - i)
        yield (rng.standard_normal(k, dtype=np.float32) * std).astype(np.float16).tobytes()


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/lf-bench"
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(1234)
    mods = rows("sd15_modules.tsv") + [r for r in rows("te_modules.tsv") if r[0].startswith("lora_te_")]
    ckpt, params = [], 0
    for _, key, _, shape in mods:
        n = int(np.prod(shape))
        params += n
        ckpt.append((key, "F16", shape, random_f16(rng, shape, 0.02), 2 * n))
    i = 0
    while params < TOTAL_PARAMS:
        n = min(64 << 20, TOTAL_PARAMS - params)
        ckpt.append((f"first_stage_model.bench_filler.{i}", "F16", (n,), random_f16(rng, (n,), 0.02), 2 * n))
        params += n
        i += 1
    write_safetensors(os.path.join(out, "sd15-f16.safetensors"), ckpt)

    n = write_lora(os.path.join(out, "lora-r32.safetensors"), mods, rng)
    print(f"wrote {out}/sd15-f16.safetensors ({params} params) and {out}/lora-r32.safetensors ({n} modules)")


def write_lora(path, mods, rng):
    """The rank-32 kohya LoRA on the default kohya targets of mods; returns its module count."""
    lora = []
    for kohya, _, _, shape in mods:
        linear_or_1x1 = len(shape) == 2 or shape[2:] == (1, 1)
        if not (kohya.startswith("lora_te_") or ("_attentions_" in kohya and linear_or_1x1)):
            continue
        o, i_ = shape[0], int(np.prod(shape[1:]))
        tail = (1, 1) if len(shape) == 4 else ()
        lora.append((kohya + ".lora_down.weight", "F16", (RANK, i_) + tail, random_f16(rng, (RANK, i_), 0.05), 2 * RANK * i_))
        lora.append((kohya + ".lora_up.weight", "F16", (o, RANK) + tail, random_f16(rng, (o, RANK), 0.05), 2 * o * RANK))
        lora.append((kohya + ".alpha", "F16", (), iter([np.float16(ALPHA).tobytes()]), 2))
    meta = {"ss_network_module": "networks.lora", "ss_network_dim": str(RANK), "ss_network_alpha": str(ALPHA),
            "ss_base_model_version": "sd_v1"}
    write_safetensors(path, lora, meta)
    return len(lora) // 3


if __name__ == "__main__":
    main()
