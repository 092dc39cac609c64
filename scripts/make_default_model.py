#!/usr/bin/env python3
"""The default model `lorafuse generate` runs out of the box, written deterministically.

    .venv-golden/bin/python scripts/make_default_model.py [--only sd15|sdxl]   # from the repository root

Writes (random weights from fixed seeds, every tensor F16 like a distributed checkpoint):

  models/sd15-mini.safetensors   single-file LDM layout with the SD1.5 structure:
      UNet   diffusers UNet2DConditionModel, CrossAttnDownBlock2D x3 + DownBlock2D / UpBlock2D +
             CrossAttnUpBlock2D x3, layers_per_block 2, block_out_channels (32, 32, 64, 64), 8 heads
             (attention_head_dim 8 as SD1.5's config), GroupNorm 32, 1x1-conv proj_in/out,
             cross_attention_dim 32
      CLIP   transformers CLIPTextModel with the FULL 49408-token vocabulary (so every prompt the real
             tokenizer produces fits), width 32, 12 layers, 4 heads, quick_gelu, 77 positions
      VAE    AutoencoderKL, 4 levels (32, 32, 64, 64), layers_per_block 1, GroupNorm 32, scaling 0.18215
      converted by scripts/golden/ldm.py and validated against diffusers' single-file converters.
      Metadata: lorafuse.default_size = "256x256" (generate's default size for this model), the
      architecture (JSON) and this script's name.
  models/lora/mini_lora.safetensors   kohya LoRA (lora_unet_* / lora_te_*, rank 4, alpha 8) on the
      attention and CLIP layers, with ss_tag_frequency (trigger word "mini style");
  models/lora/mini_loha.safetensors   LyCORIS 3.3.0 LoHa (create_lycoris, UNet, dim 4, alpha 2);
  models/lora/mini_lokr.safetensors   LyCORIS LoKr (factor 4);
  models/lora/mini_dora.safetensors   LyCORIS LoRA with weight decomposition (dora_wd).
The tiny test model tests/data/tiny/tiny-sd15.safetensors is not touched (other tests depend on it).

With `--only sdxl` (or without --only), also the SDXL-structured test model (scripts/golden/sdxl_mini.py; tests
only, not under models/): tests/data/pipeline/sdxl-mini.safetensors (full-vocabulary TE1 + TE2, 3-level
SDXL UNet, VAE) and its kohya SDXL LoRA tests/data/pipeline/lora/sdxl_mini_lora.safetensors.
"""
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from golden.common import round_to_f16  # noqa: E402

torch.manual_seed(0)
random.seed(0)
np.random.seed(0)
torch.set_num_threads(1)

UNET_CFG = dict(sample_size=32, in_channels=4, out_channels=4,
                down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                block_out_channels=(32, 32, 64, 64), layers_per_block=2, cross_attention_dim=32,
                attention_head_dim=8, norm_num_groups=32, use_linear_projection=False)
CLIP_CFG = dict(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=12,
                num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
                projection_dim=32, bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
VAE_CFG = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
               up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(32, 32, 64, 64),
               layers_per_block=1, latent_channels=4, norm_num_groups=32, sample_size=256,
               scaling_factor=0.18215)
MODEL = "models/sd15-mini.safetensors"
LORA_DIR = "models/lora"



def build():
    """The mini model's diffusers/transformers components (f32 holding F16-exact values)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    torch.manual_seed(6101)
    unet = UNet2DConditionModel(**UNET_CFG)
    torch.manual_seed(6102)
    te = CLIPTextModel(CLIPTextConfig(**CLIP_CFG))
    torch.manual_seed(6103)
    vae = AutoencoderKL(**VAE_CFG)
    return round_to_f16(unet), round_to_f16(te), round_to_f16(vae)


def checkpoint(unet, te, vae):
    from golden import ldm
    from golden.tiny import plain_sd
    c = {}
    c.update(ldm.unet_to_ldm(plain_sd(unet), unet.config))
    c.update(ldm.clip_to_ldm(plain_sd(te), "cond_stage_model.transformer."))
    c.update(ldm.vae_to_ldm(plain_sd(vae), vae.config))
    return c


def lycoris_adapter(unet, algo, seed, **kw):
    import copy
    from lycoris import create_lycoris
    u = copy.deepcopy(unet)
    net = create_lycoris(u, 1.0, linear_dim=4, linear_alpha=2.0, algo=algo, conv_dim=4, conv_alpha=2.0, **kw)
    net.apply_to()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in net.named_parameters():
            if n.endswith("dora_scale"):
                p.mul_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif n.endswith("scalar"):
                continue
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    sd = {k: v.detach().clone().half() for k, v in net.state_dict().items()}
    assert all(k.startswith("lycoris_") for k in sd), list(sd)[:3]
    return sd


def main():
    import argparse
    import logging
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["sd15", "sdxl"], default=None)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    if args.only in (None, "sdxl"):
        from golden import sdxl_mini
        sdxl_mini.write(ROOT)
    if args.only == "sdxl":
        return
    from golden.common import save_file
    from golden.tiny import TE_T, UNET_ATTN, kohya_from_peft, peft_inject, validate
    unet, te, vae = build()
    ckpt = checkpoint(unet, te, vae)
    validate(ckpt, unet, vae, te=te)
    arch = {"unet": {k: list(v) if isinstance(v, tuple) else v for k, v in UNET_CFG.items()},
            "clip": CLIP_CFG, "vae": {k: list(v) if isinstance(v, tuple) else v for k, v in VAE_CFG.items()}}
    meta = {"lorafuse.default_size": "256x256", "lorafuse.arch": json.dumps(arch, sort_keys=True),
            "source": "scripts/make_default_model.py (diffusers 0.30.3 / transformers 4.44.2, random weights "
                      "from fixed seeds, converted to the LDM single-file layout)"}
    path = os.path.join(ROOT, MODEL)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file({k: v.half() for k, v in ckpt.items()}, path, meta)
    print(f"wrote {MODEL} ({os.path.getsize(path)} bytes)")

    lora_dir = os.path.join(ROOT, LORA_DIR)
    os.makedirs(lora_dir, exist_ok=True)
    import copy
    u = peft_inject(copy.deepcopy(unet), UNET_ATTN, 8, 6201)
    t = peft_inject(copy.deepcopy(te), TE_T, 8, 6202)
    lora = {}
    lora.update(kohya_from_peft(u, "lora_unet"))
    lora.update(kohya_from_peft(t, "lora_te"))
    # up factors x2 (alpha 8 / rank 4 = 2): a LoRA whose effect on the image is well above test tolerances
    lora = {k: (v * 2 if k.endswith(".lora_up.weight") else v).half() for k, v in lora.items()}
    tags = {"10_mini style": {"mini style": 10, "pixel": 4}}
    files = {
        "mini_lora": (lora, {"ss_network_module": "networks.lora", "ss_base_model_version": "sd_v1",
                             "ss_network_dim": "4", "ss_network_alpha": "8.0", "ss_output_name": "mini_lora",
                             "ss_tag_frequency": json.dumps(tags)}),
        "mini_loha": (lycoris_adapter(unet, "loha", 6301), {"ss_network_module": "lycoris.kohya",
                                                            "ss_base_model_version": "sd_v1"}),
        "mini_lokr": (lycoris_adapter(unet, "lokr", 6401, factor=4), {"ss_network_module": "lycoris.kohya",
                                                                      "ss_base_model_version": "sd_v1"}),
        "mini_dora": (lycoris_adapter(unet, "lora", 6501, dora_wd=True), {"ss_network_module": "lycoris.kohya",
                                                                          "ss_base_model_version": "sd_v1"}),
    }
    for name, (sd, m) in files.items():
        p = os.path.join(lora_dir, name + ".safetensors")
        save_file(sd, p, m)
        print(f"wrote {LORA_DIR}/{name}.safetensors ({os.path.getsize(p)} bytes, {len(sd)} tensors)")


if __name__ == "__main__":
    main()
