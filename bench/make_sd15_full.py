#!/usr/bin/env python3
"""make_sd15_full.py: a complete full-size SD1.5 single-file checkpoint with random weights (UNet 860M,
CLIP ViT-L/14 text encoder with the full vocabulary, the SD VAE) and a rank-32 kohya LoRA for it, for
bench/bench_serve.py's per-request overhead on real shapes. Not a test fixture; a few GB.

The components are diffusers' UNet2DConditionModel / AutoencoderKL and transformers' CLIPTextModel with
SD1.5's configurations and their default initialisation (seeded), converted to the LDM single-file layout
by scripts/golden/ldm.py (as scripts/make_default_model.py does for the mini model), stored in F16.
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
import torch  # noqa: E402

UNET_CFG = dict(sample_size=64, in_channels=4, out_channels=4,
                down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=768,
                attention_head_dim=8, norm_num_groups=32, use_linear_projection=False)
CLIP_CFG = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                projection_dim=768, bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
VAE_CFG = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
               up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
               layers_per_block=2, latent_channels=4, norm_num_groups=32, sample_size=512,
               scaling_factor=0.18215)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/lf-bench-serve"
    os.makedirs(os.path.join(out, "lora"), exist_ok=True)
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    from golden import ldm
    from golden.common import save_file
    from golden.tiny import plain_sd
    torch.manual_seed(1501)
    ckpt = {}
    unet = UNet2DConditionModel(**UNET_CFG)
    ckpt.update({k: v.half() for k, v in ldm.unet_to_ldm(plain_sd(unet), unet.config).items()})
    del unet
    torch.manual_seed(1502)
    te = CLIPTextModel(CLIPTextConfig(**CLIP_CFG))
    ckpt.update({k: v.half() for k, v in ldm.clip_to_ldm(plain_sd(te), "cond_stage_model.transformer.").items()})
    del te
    torch.manual_seed(1503)
    vae = AutoencoderKL(**VAE_CFG)
    ckpt.update({k: v.half() for k, v in ldm.vae_to_ldm(plain_sd(vae), vae.config).items()})
    del vae
    save_file(ckpt, os.path.join(out, "sd15-full.safetensors"), {"lorafuse.source": "bench/make_sd15_full.py"})
    n = sum(v.numel() for v in ckpt.values())
    del ckpt
    import make_sd15_bench as mb
    rng = np.random.default_rng(1234)
    mods = mb.rows("sd15_modules.tsv") + [r for r in mb.rows("te_modules.tsv") if r[0].startswith("lora_te_")]
    mb.write_lora(os.path.join(out, "lora", "sd15_r32.safetensors"), mods, rng)
    print(f"wrote {out}/sd15-full.safetensors ({n} params) and {out}/lora/sd15_r32.safetensors")


if __name__ == "__main__":
    main()
