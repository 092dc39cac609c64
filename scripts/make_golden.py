#!/usr/bin/env python3
"""Generate lorafuse's golden fixtures with the REFERENCE implementations.

Rerun (offline, deterministic; from the repository root):

    /usr/bin/python3 -m venv --system-site-packages .venv-golden      # once; needs Debian python3-torch, python3-pil
    .venv-golden/bin/pip install --no-deps -r scripts/requirements-golden.txt
    .venv-golden/bin/python scripts/make_golden.py [--only PART]   # PARTS below

torch is Debian's python3-torch 1.13 (CPU), numpy Debian's; everything else is pinned in
scripts/requirements-golden.txt.  Outputs:

  tests/data/golden/<case>.adapter.safetensors + <case>.expect.safetensors
      one adapter on one small layer (Linear 48x64, Conv 40x32 1x1 / 3x3, LayerNorm 48, GroupNorm 32),
      built with LyCORIS 3.3.0 module classes or PEFT 0.12.0, expectation from their merge/forward code
      (details and every deviation from the raw library result: scripts/golden/adapters.py docstring).
  tests/data/tiny/tiny-sd15.safetensors (the tiny cases reference it there), tests/data/tiny/tiny-sdxl.safetensors
      tiny diffusers/transformers models with the real SD1.5 / SDXL block structure, converted to the
      single-file LDM/SGM layout by our own code and validated against diffusers' single-file converters.
  tests/data/tiny/<case>.lora.safetensors + <case>.expect.safetensors
      LoRA files in every naming scheme for the tiny models, expectation from the reference merge
      (scripts/golden/tiny.py docstring).
  tests/data/extract/: a four-module model, adapters of every kind and a fine-tune, with each module's
      dW, numpy's singular values and best rank-R residuals and kohya's rank policies
      (scripts/golden/extract.py docstring).

Fixture format (read by the C tests):
  expect: W0 [, b0], W.k [, b.k] for k = 0,1,2...; metadata scenario.k = "FILE@STRENGTH[,FILE@STRENGTH...]"
  (FILE relative to tests/data/golden/), algo, layer (linear|conv1x1|conv3x3|layernorm|groupnorm), source.
  W.k is computed in fp32 and rounded once with torch .to(dtype of W0).
"""
import argparse
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.manual_seed(0)
random.seed(0)
np.random.seed(0)
torch.set_num_threads(1)  # deterministic reductions


# Each part: (name, module in scripts/golden/, what it writes). Run all, or one with --only NAME.
PARTS = [
    ("adapters", "adapters", "per-algorithm adapter math -> tests/data/golden/"),
    ("tiny", "tiny", "tiny SD1.5/SDXL checkpoints + naming-scheme LoRAs -> tests/data/tiny/"),
    ("model-unet", "model_unet", "UNet/VAE outputs and diffusers folders -> tests/data/model/"),
    ("vae-tiling", "vae_tiling", "diffusers' tiled VAE decode -> tests/data/model/sd15_vae_tiled.*"),
    ("model-clip", "model_clip", "tokenizer ids, CLIP encoders, emphasis -> tests/data/model/clip_*"),
    ("sampler", "model_sampler", "torch/NV randn, scheduler tables and loops -> tests/data/sampler/"),
    ("pipeline", "model_pipeline", "diffusers pipelines with scheduled LoRAs -> tests/data/pipeline/"),
    ("pipeline-sdxl", "model_pipeline_sdxl", "SDXL pipeline on sdxl-mini -> tests/data/pipeline/pipeline-sdxl.*"),
    ("pipeline-demo", "model_pipeline_demo", "pipeline on the trained demo model -> tests/data/pipeline/pipeline-demo.*"),
    ("extract", "extract", "extraction: dW, numpy's SVD optimum, kohya's rank policies -> tests/data/extract/"),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=[p[0] for p in PARTS], default=None)
    args = ap.parse_args()
    import importlib
    import logging
    logging.disable(logging.WARNING)
    for name, module, what in PARTS:
        if args.only not in (None, name):
            continue
        print(f"[{name}] {what}")
        importlib.import_module(f"golden.{module}").run(ROOT)


if __name__ == "__main__":
    main()
