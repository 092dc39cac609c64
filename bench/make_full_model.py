#!/usr/bin/env python3
"""make_full_model.py: a loadable full-size SD1.5 checkpoint with random weights (every UNet, CLIP-L and
VAE tensor at its real key, shape and f16 dtype, as a distributed checkpoint) and a rank-8 kohya LoRA on
every UNet transformer Linear / 1x1 conv and every text-encoder Linear, for the memory benchmark
(bench/bench_memory.sh). Not a test fixture: about 2.2 GB in OUTDIR (default /tmp/lf-mem).

    /work/.venv-golden/bin/python bench/make_full_model.py [OUTDIR]     # from the repository root

Weights: diffusers/transformers default initialisation from fixed seeds (so activations stay finite),
converted to the LDM single-file layout by scripts/golden/ldm.py, stored f16. Components are built one
at a time and dropped after conversion (peak ~4 GB).
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "scripts"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

RANK, ALPHA = 8, 4.0
UNET = dict(sample_size=64, in_channels=4, out_channels=4, cross_attention_dim=768, attention_head_dim=8,
            block_out_channels=(320, 640, 1280, 1280), layers_per_block=2)
CLIP = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
            num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)
VAE = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
           up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
           layers_per_block=2, latent_channels=4, sample_size=512)


def f16(sd):
    return {k: v.detach().to(torch.float16).contiguous() for k, v in sd.items()}


def write_checkpoint(path, seeds=(1, 2, 3), meta=None):
    """The full-size SD1.5 checkpoint at `path` (UNet, CLIP-L, VAE from `seeds`); its parameter count.
    Shared with bench/make_sd15_full.py."""
    torch.set_num_threads(1)
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    from golden import ldm
    from golden.common import save_file
    ckpt = {}
    with torch.no_grad():
        torch.manual_seed(seeds[0])
        m = UNet2DConditionModel(**UNET)
        cfg = m.config
        sd = {k: v.float() for k, v in m.state_dict().items()}
        del m
        ckpt.update(f16(ldm.unet_to_ldm(sd, cfg)))
        del sd
        torch.manual_seed(seeds[1])
        m = CLIPTextModel(CLIPTextConfig(**CLIP))
        sd = {k: v.float() for k, v in m.state_dict().items() if not k.endswith("position_ids")}
        del m
        ckpt.update(f16(ldm.clip_to_ldm(sd, "cond_stage_model.transformer.")))
        torch.manual_seed(seeds[2])
        m = AutoencoderKL(**VAE)
        cfg = m.config
        sd = {k: v.float() for k, v in m.state_dict().items()}
        del m
        ckpt.update(f16(ldm.vae_to_ldm(sd, cfg)))
    save_file(ckpt, path, meta or {})
    return sum(v.numel() for v in ckpt.values())


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/lf-mem"
    os.makedirs(out, exist_ok=True)
    from golden.common import save_file
    n = write_checkpoint(os.path.join(out, "sd15-full-f16.safetensors"), meta={"lorafuse.default_size": "512x512"})
    print(f"wrote {out}/sd15-full-f16.safetensors ({n} params)")

    # the LoRA: kohya names from the module tables (docs/keymap.md)
    rng = np.random.default_rng(8)
    lora = {}
    for table in ("sd15_modules.tsv", "te_modules.tsv"):
        for line in open(os.path.join(ROOT, "tests", "data", table)):
            if line.startswith("#"):
                continue
            kohya, key, _, shape = line.rstrip("\n").split("\t")
            shape = tuple(int(x) for x in shape.split(","))
            lin = len(shape) == 2 or shape[2:] == (1, 1)
            if not (kohya.startswith("lora_te_") or ("_attentions_" in kohya and lin)):
                continue
            o, i = shape[0], int(np.prod(shape[1:]))
            tail = (1, 1) if len(shape) == 4 else ()
            lora[kohya + ".lora_down.weight"] = torch.from_numpy(
                (rng.standard_normal((RANK, i), dtype=np.float32) * 0.05).reshape((RANK, i) + tail)).half()
            lora[kohya + ".lora_up.weight"] = torch.from_numpy(
                (rng.standard_normal((o, RANK), dtype=np.float32) * 0.05).reshape((o, RANK) + tail)).half()
            lora[kohya + ".alpha"] = torch.tensor(ALPHA, dtype=torch.float16)
    os.makedirs(os.path.join(out, "lora"), exist_ok=True)
    save_file(lora, os.path.join(out, "lora", "full-r8.safetensors"),
              {"ss_network_module": "networks.lora", "ss_network_dim": str(RANK), "ss_network_alpha": str(ALPHA),
               "ss_base_model_version": "sd_v1"})
    print(f"wrote {out}/lora/full-r8.safetensors ({len(lora) // 3} modules)")


if __name__ == "__main__":
    main()
