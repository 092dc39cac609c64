#!/usr/bin/env python3
"""make_sd15_full.py: a complete full-size SD1.5 single-file checkpoint with random weights (UNet 860M,
CLIP ViT-L/14 text encoder with the full vocabulary, the SD VAE) and a rank-32 kohya LoRA for it, for
bench/bench_serve.py's per-request overhead on real shapes. Not a test fixture; a few GB.

The checkpoint is bench/make_full_model.py's (diffusers/transformers SD1.5 configurations, default
initialisation from seeds, LDM layout through scripts/golden/ldm.py, F16), with this script's seeds.
The LoRA is bench/make_sd15_bench.py's (kohya names on the attention layers and the text encoder).

Usage: /work/.venv-golden/bin/python bench/make_sd15_full.py [OUTDIR]   (default /tmp/lf-bench-serve;
writes OUTDIR/sd15-full.safetensors and OUTDIR/lora/sd15_r32.safetensors)
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, HERE)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/lf-bench-serve"
    os.makedirs(os.path.join(out, "lora"), exist_ok=True)
    import make_full_model
    n = make_full_model.write_checkpoint(os.path.join(out, "sd15-full.safetensors"), seeds=(1501, 1502, 1503),
                                         meta={"lorafuse.source": "bench/make_sd15_full.py"})
    import make_sd15_bench as mb
    rng = np.random.default_rng(1234)
    mods = mb.rows("sd15_modules.tsv") + [r for r in mb.rows("te_modules.tsv") if r[0].startswith("lora_te_")]
    mb.write_lora(os.path.join(out, "lora", "sd15_r32.safetensors"), mods, rng)
    print(f"wrote {out}/sd15-full.safetensors ({n} params) and {out}/lora/sd15_r32.safetensors")


if __name__ == "__main__":
    main()
