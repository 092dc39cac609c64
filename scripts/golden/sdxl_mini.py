"""The SDXL-structured mini model for `lorafuse generate`'s end-to-end test, and its LoRA.

Called by scripts/make_default_model.py (`--only sdxl`); tests only, nothing under models/:

  tests/data/pipeline/sdxl-mini.safetensors   single-file SGM layout with the SDXL structure:
      UNet   diffusers UNet2DConditionModel as SDXL base: DownBlock2D + CrossAttnDownBlock2D x2 /
             CrossAttnUpBlock2D x2 + UpBlock2D, use_linear_projection, addition_embed_type text_time
             (6 time ids, addition_time_embed_dim 8), block_out_channels (32, 64, 64),
             layers_per_block 1 and transformer_layers_per_block (1, 1, 1) (SDXL: 2 and (1, 2, 10); these
             keep the file small; test_unet's tiny SDXL model covers depth > 1), head width 64 as SDXL (one
             head per 64 channels: lorafuse's SDXL rule), GroupNorm 32, cross_attention_dim 32 = TE1 + TE2 width
      TE1    transformers CLIPTextModel (CLIP-L layout, quick_gelu), FULL 49408-token vocabulary,
             width 16, 12 layers, 2 heads, 77 positions -> conditioner.embedders.0.transformer.*
      TE2    CLIPTextModelWithProjection (OpenCLIP bigG layout: fused in_proj, ln_1/ln_2, mlp.c_fc/c_proj,
             text_projection), gelu, FULL vocabulary, width 16, 32 layers (as bigG), 2 heads, projection 16
             -> conditioner.embedders.1.model.*
      VAE    AutoencoderKL, 4 levels (32, 32, 32, 32), layers_per_block 1, GroupNorm 32, scaling 0.13025 (SDXL)
      converted by scripts/golden/ldm.py, validated against diffusers' single-file converters; F16.
  tests/data/pipeline/lora/sdxl_mini_lora.safetensors   kohya SDXL LoRA (lora_unet_<SGM path>,
      lora_te1_<HF path>, lora_te2_<HF path>; rank 4, alpha 8, up x2) on the attention / CLIP layers.
"""
import copy
import json
import os

import torch

from .common import round_to_f16

UNET_CFG = dict(sample_size=16, in_channels=4, out_channels=4,
                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                block_out_channels=(32, 64, 64), layers_per_block=1, transformer_layers_per_block=(1, 1, 1),
                cross_attention_dim=32, attention_head_dim=(1, 1, 1), norm_num_groups=32,
                use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
                projection_class_embeddings_input_dim=16 + 6 * 8)
TE1_CFG = dict(vocab_size=49408, hidden_size=16, intermediate_size=64, num_hidden_layers=12,
               num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu",
               bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
TE2_CFG = dict(vocab_size=49408, hidden_size=16, intermediate_size=64, num_hidden_layers=32,
               num_attention_heads=2, max_position_embeddings=77, hidden_act="gelu", projection_dim=16,
               bos_token_id=49406, eos_token_id=49407, pad_token_id=0)
VAE_CFG = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
               up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(32, 32, 32, 32),
               layers_per_block=1, latent_channels=4, norm_num_groups=32, sample_size=128,
               scaling_factor=0.13025)
MODEL = "tests/data/pipeline/sdxl-mini.safetensors"
LORA_DIR = "tests/data/pipeline/lora"
LORA_NAME = "sdxl_mini_lora"



def build():
    """(unet, te1, te2, vae): f32 models holding F16-exact values."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    torch.manual_seed(6601)
    unet = UNet2DConditionModel(**UNET_CFG)
    torch.manual_seed(6602)
    te1 = CLIPTextModel(CLIPTextConfig(**TE1_CFG))
    torch.manual_seed(6603)
    te2 = CLIPTextModelWithProjection(CLIPTextConfig(**TE2_CFG))
    torch.manual_seed(6604)
    vae = AutoencoderKL(**VAE_CFG)
    return [round_to_f16(m) for m in (unet, te1, te2, vae)]


def arch_json():
    def j(d):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
    return json.dumps({"unet": j(UNET_CFG), "te1": TE1_CFG, "te2": TE2_CFG, "vae": j(VAE_CFG)}, sort_keys=True)


def lora(unet, te1, te2):
    """kohya SDXL LoRA from PEFT LoRAs (rank 4, alpha 8; up factors x2 so the effect is well above the
    test tolerance)."""
    from . import ldm
    from .tiny import TE_T, UNET_ATTN, kohya_from_peft, peft_inject
    hu = ldm.unet_has_attn_up(unet.config)
    u = peft_inject(copy.deepcopy(unet), UNET_ATTN, 8, 6701)
    a = peft_inject(copy.deepcopy(te1), TE_T, 8, 6702)
    b = peft_inject(copy.deepcopy(te2), TE_T, 8, 6703)
    sd = {}
    sd.update(kohya_from_peft(u, "lora_unet", lambda p: ldm.unet_path(p, unet.config, hu)))
    sd.update(kohya_from_peft(a, "lora_te1"))
    sd.update(kohya_from_peft(b, "lora_te2"))
    return {k: (v * 2 if k.endswith(".lora_up.weight") else v).half() for k, v in sd.items()}


def write(root):
    from .common import save_file
    from .tiny import sdxl_ldm, validate
    unet, te1, te2, vae = build()
    ckpt = sdxl_ldm(unet, te1, te2, vae)
    validate(ckpt, unet, vae, te1=te1, te2=te2)
    meta = {"lorafuse.default_size": "128x128", "lorafuse.arch": arch_json(),
            "source": "scripts/make_default_model.py --only sdxl (scripts/golden/sdxl_mini.py; diffusers 0.30.3 / "
                      "transformers 4.44.2, random weights from fixed seeds, converted to the SGM single-file "
                      "layout)"}
    path = os.path.join(root, MODEL)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file({k: v.half() for k, v in ckpt.items()}, path, meta)
    print(f"wrote {MODEL} ({os.path.getsize(path)} bytes)")
    sd = lora(unet, te1, te2)
    assert any(k.startswith("lora_te2_") for k in sd) and any(k.startswith("lora_unet_") for k in sd)
    d = os.path.join(root, LORA_DIR)
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, LORA_NAME + ".safetensors")
    tags = {"10_xl style": {"xl style": 10}}
    save_file(sd, p, {"ss_network_module": "networks.lora", "ss_base_model_version": "sdxl_base_v1-0",
                      "ss_network_dim": "4", "ss_network_alpha": "8.0", "ss_output_name": LORA_NAME,
                      "ss_tag_frequency": json.dumps(tags)})
    print(f"wrote {LORA_DIR}/{LORA_NAME}.safetensors ({os.path.getsize(p)} bytes, {len(sd)} tensors)")
