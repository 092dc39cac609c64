"""Tiny SD1.5 / SDXL single-file checkpoints and naming-scheme LoRA cases (tests/data/tiny/).

Models (seeded, diffusers 0.30.3 / transformers 4.44.2, parameters rounded to F16 before anything else):
  SD1.5: UNet2DConditionModel block_out_channels (16,16,32,32) (brief suggested (32,32,64,64): halved
         to keep the F16 files small), CrossAttnDownBlock2D x3 + DownBlock2D,
         UpBlock2D + CrossAttnUpBlock2D x3, layers_per_block 2, cross_attention_dim 32,
         use_linear_projection False (proj_in/out are 1x1 convs); CLIPTextModel width 32, 12 layers
         (vocab reduced to 1000); AutoencoderKL with 4 levels (8,8,16,16).
  SDXL:  UNet (16,32,32), DownBlock2D + CrossAttnDownBlock2D x2, transformer_layers_per_block (1,2,3)
         (real: (1,2,10); 3 keeps the file small but still > 2), use_linear_projection True,
         addition_embed_type text_time (addition_time_embed_dim 8, projection dim 32 + 6*8 = 80),
         cross_attention_dim 64 = TE1 width + TE2 width; TE1 CLIPTextModel width 32 x 12 layers; TE2
         CLIPTextModelWithProjection width 32, 32 layers (the real count), projection 32; same tiny VAE.
Single-file layout: our own converter (ldm.py), validated by converting back with diffusers'
single_file_utils (convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint, convert_ldm_clip_checkpoint,
convert_open_clip_checkpoint) and asserting exact equality with the diffusers/transformers state dicts.

LoRA cases (file F16 like real kohya files; expectation = the checkpoint tensors the LoRA changes, F16):
  sd15_kohya   kohya SD1 names (lora_unet_<diffusers path>, lora_te_<HF path>), alpha != rank, s = 0.8.
               Expectation: diffusers' own kohya loader (StableDiffusionLoraLoaderMixin.lora_state_dict +
               load_lora_into_unet/text_encoder, PEFT underneath), scale_lora_layers(s), PEFT merge, then our
               converter; cross-checked against merging the PEFT model the file was made from.
  sd15_lycoris LyCORIS create_lycoris(unet, algo lora, preset full) -> lycoris_<diffusers path> names
               (incl. conv_in / time_embedding / conv_out / resnet convs, Linear and k x k convs), UNet only.
               Expectation: LycorisNetwork.merge_to(s) (LoCon merge applies gamma once).
  sd15_peft    PEFT/diffusers names unet.<path>.lora_A/lora_B + text_encoder.<path>, written by
               StableDiffusionLoraLoaderMixin.save_lora_weights; lora_alpha = r because the PEFT format
               carries no alpha (readers use gamma = 1).  Expectation: diffusers loader + PEFT merge.
  sdxl_kohya   kohya SDXL names (lora_unet_<SGM path>, lora_te1_<HF path>, lora_te2_<HF path>; TE2 q/k/v land
               in row slices of in_proj_weight).  Expectation: merge of the source PEFT models (scale s), then
               our converter; cross-checked by loading the file with diffusers' SDXL kohya loader
               (SGM->diffusers block mapping) and merging.
  sdxl_locon   kohya SDXL names, LoCon (3x3 lora_down, 1x1 lora_up) on the resnet conv1/conv2 convs plus
               attention Linear layers; expectation as sdxl_kohya.
"""
import copy
import json
import os
import shutil
import tempfile

import torch
from safetensors.torch import load_file

from . import ldm
from .common import gen, round_to_f16, save_file

R = 4



def build_sd15():
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    torch.manual_seed(1501)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        block_out_channels=(16, 16, 32, 32), layers_per_block=2, cross_attention_dim=32,
        attention_head_dim=4, norm_num_groups=4, use_linear_projection=False)
    torch.manual_seed(1502)
    te = CLIPTextModel(CLIPTextConfig(vocab_size=1000, hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=12, num_attention_heads=4,
                                      max_position_embeddings=77, hidden_act="quick_gelu",
                                      projection_dim=32))
    vae = build_vae(1503)
    return [round_to_f16(m.eval()) for m in (unet, te, vae)]


def build_vae(seed):
    from diffusers import AutoencoderKL
    torch.manual_seed(seed)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 8, 16, 16),
                         layers_per_block=2, latent_channels=4, norm_num_groups=4, sample_size=32)


def build_sdxl():
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    torch.manual_seed(1601)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(16, 32, 32), layers_per_block=2, transformer_layers_per_block=(1, 2, 3),
        cross_attention_dim=64, attention_head_dim=(2, 4, 4), norm_num_groups=4,
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=80)
    torch.manual_seed(1602)
    te1 = CLIPTextModel(CLIPTextConfig(vocab_size=1000, hidden_size=32, intermediate_size=64,
                                       num_hidden_layers=12, num_attention_heads=4,
                                       max_position_embeddings=77, hidden_act="quick_gelu"))
    torch.manual_seed(1603)
    te2 = CLIPTextModelWithProjection(CLIPTextConfig(vocab_size=1000, hidden_size=32, intermediate_size=64,
                                                     num_hidden_layers=32, num_attention_heads=4,
                                                     max_position_embeddings=77, hidden_act="gelu",
                                                     projection_dim=32))
    vae = build_vae(1604)
    return [round_to_f16(m.eval()) for m in (unet, te1, te2, vae)]


def plain_sd(model):
    """State dict of a (possibly PEFT-injected, merged) model without adapter tensors."""
    out = {}
    for k, v in model.state_dict().items():
        if "lora_" in k or k.endswith("position_ids"):
            continue
        out[k.replace(".base_layer.", ".")] = v.detach().clone().float()
    return out


def sd15_ldm(unet, te, vae):
    c = {}
    c.update(ldm.unet_to_ldm(plain_sd(unet), unet.config))
    c.update(ldm.clip_to_ldm(plain_sd(te), "cond_stage_model.transformer."))
    c.update(ldm.vae_to_ldm(plain_sd(vae), vae.config))
    return c


def sdxl_ldm(unet, te1, te2, vae):
    c = {}
    c.update(ldm.unet_to_ldm(plain_sd(unet), unet.config))
    c.update(ldm.clip_to_ldm(plain_sd(te1), "conditioner.embedders.0.transformer."))
    c.update(ldm.openclip_to_ldm(plain_sd(te2), "conditioner.embedders.1.model."))
    c.update(ldm.vae_to_ldm(plain_sd(vae), vae.config))
    return c


def _same(a, b, what):
    ka, kb = set(a), set(b)
    assert ka == kb, f"{what}: key mismatch: only ours {sorted(ka - kb)[:5]} only ref {sorted(kb - ka)[:5]}"
    for k in ka:
        assert a[k].shape == b[k].shape and torch.equal(a[k].float(), b[k].float()), f"{what}: {k} differs"


def validate(ckpt, unet, vae, te=None, te1=None, te2=None):
    from diffusers.loaders import single_file_utils as sfu
    _same(sfu.convert_ldm_unet_checkpoint(dict(ckpt), dict(unet.config)), plain_sd(unet), "unet")
    _same(sfu.convert_ldm_vae_checkpoint(dict(ckpt), dict(vae.config)), plain_sd(vae), "vae")
    if te is not None:
        _same(sfu.convert_ldm_clip_checkpoint(dict(ckpt)), plain_sd(te), "text encoder")
    if te1 is not None:
        _same(sfu.convert_ldm_clip_checkpoint(dict(ckpt)), plain_sd(te1), "text encoder 1")
        got = sfu.convert_open_clip_checkpoint(te2, dict(ckpt), prefix="conditioner.embedders.1.model.")
        got = {k: v for k, v in got.items() if not k.endswith("position_ids")}
        _same(got, plain_sd(te2), "text encoder 2")


def save16(path, sd, meta=None):
    save_file({k: v.detach().half().contiguous() for k, v in sd.items()}, path, meta or {})
    print(f"  wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")


# ----------------------------------------------------------------------------------------------
UNET_ATTN = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"]
TE_T = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


def peft_inject(model, targets, alpha, seed):
    from peft import LoraConfig, inject_adapter_in_model
    cfg = LoraConfig(r=R, lora_alpha=alpha, target_modules=targets, init_lora_weights=False)
    model = inject_adapter_in_model(cfg, model)
    g = gen(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.copy_((torch.randn(p.shape, generator=g) * 0.1).half().float())
    return model


def peft_merge(model, s):
    from peft.tuners.tuners_utils import BaseTunerLayer
    from diffusers.utils import scale_lora_layers
    scale_lora_layers(model, s)
    for m in model.modules():
        if isinstance(m, BaseTunerLayer):
            m.merge()
    return model


def lora_modules(model):
    from peft.tuners.lora import LoraLayer
    return {n: m for n, m in model.named_modules() if isinstance(m, LoraLayer)}


def kohya_from_peft(model, prefix, pathmap=lambda p: p):
    """kohya names: prefix + '_' + path with '.' -> '_'; lora_down/up + alpha (the kohya name rule)."""
    out = {}
    for n, m in lora_modules(model).items():
        key = prefix + "_" + pathmap(n).replace(".", "_")
        out[key + ".lora_down.weight"] = m.lora_A["default"].weight.detach().clone()
        out[key + ".lora_up.weight"] = m.lora_B["default"].weight.detach().clone()
        out[key + ".alpha"] = torch.tensor(float(m.lora_alpha["default"]))
    return out


def changed(base, merged):
    return {k: v for k, v in merged.items() if not torch.equal(v, base[k])}


def write_case(outdir, name, lora_sd, exp, base_ckpt, s, model_rel, source, lora_meta=None):
    save16(os.path.join(outdir, f"{name}.lora.safetensors"), lora_sd, lora_meta)
    assert exp, name
    for k, v in exp.items():
        assert k in base_ckpt and v.shape == base_ckpt[k].shape, k
    save16(os.path.join(outdir, f"{name}.expect.safetensors"), exp,
           {"strength": repr(float(s)), "model": model_rel, "source": source})
    print(f"    {name}: {len(lora_sd)} LoRA tensors, {len(exp)} changed checkpoint tensors")


def _check_close(a, b, what, tol=1e-5):
    assert set(a) == set(b), f"{what}: changed key sets differ: {sorted(set(a) ^ set(b))[:6]}"
    for k in a:
        err = (a[k] - b[k]).abs().max().item()
        assert err < tol, f"{what}: {k} differs by {err}"


def diffusers_load(mixin, lora_sd, unet, tes, unet_config=None):
    """Load a LoRA state dict through diffusers' own loader into (unet, text encoders)."""
    kw = {"unet_config": unet_config} if unet_config is not None else {}
    sd, alphas = mixin.lora_state_dict(dict(lora_sd), **kw)
    mixin.load_lora_into_unet(sd, alphas, unet)
    for prefix, te in tes:
        mixin.load_lora_into_text_encoder(sd, alphas, te, prefix=prefix)
    return unet, [te for _, te in tes]


# ----------------------------------------------------------------------------------------------
def run(root):
    from diffusers.loaders.lora_pipeline import StableDiffusionLoraLoaderMixin as SD1Mixin
    from diffusers.loaders.lora_pipeline import StableDiffusionXLLoraLoaderMixin as SDXLMixin
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    tiny = os.path.join(root, "tests", "data", "tiny")
    os.makedirs(tiny, exist_ok=True)

    # ---------------- SD1.5 ----------------
    unet, te, vae = build_sd15()
    base = sd15_ldm(unet, te, vae)
    validate(base, unet, vae, te=te)
    sd15_path = os.path.join(tiny, "tiny-sd15.safetensors")
    meta15 = {"lorafuse_tiny": "sd15", "source": "scripts/make_golden.py (diffusers 0.30.3 UNet2DConditionModel "
              "+ transformers CLIPTextModel + AutoencoderKL, converted to LDM, validated with diffusers "
              "single_file_utils)"}
    save16(sd15_path, base, meta15)
    # tests reference the SD1 model at tests/data/tiny/tiny-sd15.safetensors (metadata `model`), no copy
    M15 = "tests/data/tiny/tiny-sd15.safetensors"

    def fresh15():
        return copy.deepcopy(unet), copy.deepcopy(te)

    # (a) kohya SD1, alpha 2 / rank 4, strength 0.8
    s = 0.8
    u, t = fresh15()
    u = peft_inject(u, UNET_ATTN, 2, 2001)
    t = peft_inject(t, TE_T, 2, 2002)
    lora = {}
    lora.update(kohya_from_peft(u, "lora_unet"))
    lora.update(kohya_from_peft(t, "lora_te"))
    lora = {k: v.half() for k, v in lora.items()}
    src_exp = changed(base, sd15_ldm(peft_merge(u, s), peft_merge(t, s), vae))
    u2, t2 = fresh15()
    u2, (t2,) = diffusers_load(SD1Mixin, lora, u2, [("text_encoder", t2)])
    ref_exp = changed(base, sd15_ldm(peft_merge(u2, s), peft_merge(t2, s), vae))
    _check_close(ref_exp, src_exp, "sd15_kohya")
    write_case(tiny, "sd15_kohya", lora, ref_exp, base, s, M15,
               "diffusers 0.30.3 kohya loader (lora_state_dict + load_lora_into_unet/text_encoder) + "
               "scale_lora_layers(s) + PEFT 0.12.0 merge, converted to LDM; equals merging the source PEFT model",
               {"ss_network_module": "networks.lora", "ss_base_model_version": "sd_v1",
                "ss_network_dim": str(R), "ss_network_alpha": "2.0"})

    # (b) LyCORIS lycoris_ + diffusers path (UNet only), strength 1
    from lycoris import create_lycoris
    s = 1.0
    u, _ = fresh15()
    net = create_lycoris(u, 1.0, linear_dim=R, linear_alpha=2.0, algo="lora", conv_dim=R, conv_alpha=3.0)
    net.apply_to()
    g = gen(2101)
    with torch.no_grad():
        for n, p in net.named_parameters():
            p.copy_((torch.randn(p.shape, generator=g) * 0.05).half().float())
    lora = {k: v.detach().clone().half() for k, v in net.state_dict().items()}
    assert all(k.startswith("lycoris_") for k in lora), list(lora)[:3]
    net.merge_to(s)
    exp = changed(base, sd15_ldm(u, te, vae))
    write_case(tiny, "sd15_lycoris", lora, exp, base, s, M15,
               "LyCORIS 3.3.0 create_lycoris(unet, algo=lora, preset full, dim 4, alpha 2, conv alpha 3) "
               "state_dict(); expectation LycorisNetwork.merge_to(s) on the diffusers UNet, converted to LDM",
               {"ss_network_module": "lycoris.kohya", "ss_base_model_version": "sd_v1"})

    # (c) PEFT / diffusers names via diffusers' save_lora_weights, strength 0.5
    s = 0.5
    u, t = fresh15()
    u = peft_inject(u, UNET_ATTN, R, 2201)
    t = peft_inject(t, TE_T, R, 2202)
    with tempfile.TemporaryDirectory() as d:
        SD1Mixin.save_lora_weights(
            d, unet_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(u)),
            text_encoder_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(t)),
            safe_serialization=True)
        lora = load_file(os.path.join(d, "pytorch_lora_weights.safetensors"))
    lora = {k: v.half() for k, v in lora.items()}
    assert any(k.startswith("unet.") for k in lora) and any(k.startswith("text_encoder.") for k in lora)
    src_exp = changed(base, sd15_ldm(peft_merge(u, s), peft_merge(t, s), vae))
    u2, t2 = fresh15()
    u2, (t2,) = diffusers_load(SD1Mixin, lora, u2, [("text_encoder", t2)])
    ref_exp = changed(base, sd15_ldm(peft_merge(u2, s), peft_merge(t2, s), vae))
    _check_close(ref_exp, src_exp, "sd15_peft")
    write_case(tiny, "sd15_peft", lora, ref_exp, base, s, M15,
               "PEFT 0.12.0 LoRA (r=4, lora_alpha=4: the PEFT file carries no alpha) saved by diffusers "
               "save_lora_weights; expectation: diffusers loader + scale_lora_layers(s) + PEFT merge, LDM")

    # ---------------- SDXL ----------------
    unet, te1, te2, vae = build_sdxl()
    base = sdxl_ldm(unet, te1, te2, vae)
    validate(base, unet, vae, te1=te1, te2=te2)
    xl_path = os.path.join(tiny, "tiny-sdxl.safetensors")
    save16(xl_path, base, {"lorafuse_tiny": "sdxl", "source": meta15["source"].replace(
        "CLIPTextModel", "CLIPTextModel + CLIPTextModelWithProjection (OpenCLIP layout)")})
    MXL = "tests/data/tiny/tiny-sdxl.safetensors"
    hu = ldm.unet_has_attn_up(unet.config)

    def fresh_xl():
        return copy.deepcopy(unet), copy.deepcopy(te1), copy.deepcopy(te2)

    def sgm(p):
        return ldm.unet_path(p, unet.config, hu)

    def xl_case(name, unet_targets, s, seed, te_too, src):
        u, a, b = fresh_xl()
        u = peft_inject(u, unet_targets, 2, seed)
        lora = kohya_from_peft(u, "lora_unet", sgm)
        if te_too:
            a = peft_inject(a, TE_T, 2, seed + 1)
            b = peft_inject(b, TE_T, 8, seed + 2)
            lora.update(kohya_from_peft(a, "lora_te1"))
            lora.update(kohya_from_peft(b, "lora_te2"))
        lora = {k: v.half() for k, v in lora.items()}
        exp = changed(base, sdxl_ldm(peft_merge(u, s), peft_merge(a, s) if te_too else a,
                                     peft_merge(b, s) if te_too else b, vae))
        note = ""
        try:
            u2, a2, b2 = fresh_xl()
            tes = [("text_encoder", a2), ("text_encoder_2", b2)] if te_too else []
            u2, _ = diffusers_load(SDXLMixin, lora, u2, tes, unet_config=unet.config)
            ref = changed(base, sdxl_ldm(peft_merge(u2, s), peft_merge(a2, s) if te_too else a2,
                                         peft_merge(b2, s) if te_too else b2, vae))
            _check_close(ref, exp, name)
            note = "; cross-checked: diffusers' SDXL kohya loader on this file gives the same merge"
        except Exception as e:  # documented in the metadata and the run log
            note = f"; diffusers SDXL kohya loader cross-check not possible: {type(e).__name__}: {e}"[:300]
            print("   ", name, note)
        write_case(tiny, name, lora, exp, base, s, MXL, src + note,
                   {"ss_network_module": "networks.lora", "ss_base_model_version": "sdxl_base_v1-0"})

    xl_case("sdxl_kohya", UNET_ATTN, 1.0, 2301, True,
            "kohya SDXL names (lora_unet_<SGM path>, lora_te1_/lora_te2_<HF CLIP path>, TE2 q/k/v -> "
            "in_proj_weight rows) from PEFT 0.12.0 LoRAs (alpha 2 unet/te1, 8 te2, rank 4); expectation: "
            "PEFT merge at s on the diffusers/transformers models, converted to SGM")
    xl_case("sdxl_locon", [r"resnets\.\d+\.conv1", r"resnets\.\d+\.conv2", "to_q", "to_v"], 0.5, 2401, False,
            "kohya SDXL names, LoCon on resnet conv1/conv2 (3x3 lora_down, 1x1 lora_up) + to_q/to_v, "
            "PEFT 0.12.0 (rank 4, alpha 2); expectation: PEFT merge at s, converted to SGM")
