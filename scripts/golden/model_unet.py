"""UNet and VAE forward-pass goldens for the model runtime (tests/data/model/, read by tests/runtime/test_unet.c
and tests/runtime/test_vae.c).

Oracle: diffusers 0.30.3 UNet2DConditionModel / AutoencoderKL on torch 1.13 CPU, f32.
Weights: the tiny single-file checkpoints written by tiny.py (tests/data/tiny/tiny-sd15.safetensors,
tests/data/tiny/tiny-sdxl.safetensors, F16 on disk). They are read back from those files, converted
with diffusers' own single-file converters (single_file_utils.convert_ldm_unet_checkpoint /
convert_ldm_vae_checkpoint) and upcast to f32, so diffusers runs exactly the F16-rounded weights the C
loader reads. The module configs are those of tiny.build_sd15 / build_sdxl (same constructor
arguments); load_state_dict is strict.

Files (all tensors f32; inputs and outputs side by side):
  sd15_unet.safetensors   x (2,4,16,16) seeded, t (2,) = [999, 250], context (2,77,32) seeded;
                          emb (2,64) = time_embedding(time_proj(t)); mid (2,32,2,2) = mid_block output;
                          out (2,4,16,16) = unet(x, t, context).sample
  sdxl_unet.safetensors   as above with context (2,77,64), text_embeds (2,32), time_ids (2,6);
                          y (2,80) = cat(text_embeds, add_time_proj(time_ids).reshape(2,-1)) (the LDM
                          `y` vector); emb (2,64) = time emb + add_embedding(y); mid (2,32,4,4); out.
  <model>_unet_odd.safetensors  the same tensors for a latent whose sizes are not multiples of 8:
                          x (2,4,10,6) for SD1.5 (3 downsamplers: 10x6 -> 5x3 -> 3x2 -> 2x1, mid (2,32,2,1)),
                          (2,4,6,10) for SDXL (2 downsamplers: 6x10 -> 3x5 -> 2x3); seeds 5111.. instead of
                          5101..; on the way up diffusers interpolates to the skip connections' sizes
                          (forward_upsample_size / upsample_size).
  <model>_vae.safetensors dec_in (1,4,8,8) seeded sampler-space latent; dec_out (1,3,64,64) =
                          vae.decode(dec_in / sf).sample; enc_in (1,3,64,64) seeded image in [-1,1];
                          enc_mean (1,4,8,8) = sf * latent_dist.mean; enc_logvar (1,4,8,8) =
                          latent_dist.logvar (clamped to [-30, 20] by diffusers).
                          sf = 0.18215 (SD1.x) / 0.13025 (SDXL), metadata scaling_factor.
  demo_unet.safetensors, demo_vae.safetensors  the same tensors on the trained demo model
                          (models/demo/shapes-sd1.safetensors, configs from its lorafuse.arch, loaded as
                          model_pipeline.components does), on structured inputs instead of noise: enc_in is a
                          64x64 image of its training set (scripts/train_demo.render: a red square on blue,
                          seed 5301, in [-1,1]); dec_in = its enc_mean; x = that latent noised as DDPM does at
                          t = 999 and 250 (seed 5302); context rows = the text encoder's last hidden state of
                          model_pipeline_demo.CAPTION and of "" (CFG's cond and uncond), real CLIP tokenizer.
Metadata: model (the checkpoint path), heads rule used by the tests, scaling_factor, source.

Diffusers folders (read by tests/runtime/test_model_dir.c; diffusers' own save_pretrained, F16 like the checkpoint,
so the folder holds exactly the single file's values under diffusers names):
  tiny-sd15-diffusers/  unet/, vae/ (config.json + diffusion_pytorch_model.safetensors), text_encoder/
                        (transformers save_pretrained: config.json + model.safetensors),
                        scheduler/scheduler_config.json (PNDMScheduler as SD1.5 ships it: epsilon),
                        model_index.json. About 1.8 MB.
  tiny-sdxl-diffusers-unet/  config.json of the tiny SDXL UNet and keys.json (every diffusers tensor
                        name -> shape) without weights (2.1 MB of weights would pass the data budget):
                        the test checks our config -> tensor list -> diffusers names derivation against
                        it and builds the weight file from the single-file checkpoint itself.
"""
import json
import os

import torch
from safetensors.torch import load_file

from . import tiny
from .common import gen, save_file

ODD = {"sd15": (10, 6), "sdxl": (6, 10)}  # latent (H, W) of the *_unet_odd goldens
SF = {"sd15": 0.18215, "sdxl": 0.13025, "demo": 0.18215}
SRC = "diffusers 0.30.3 UNet2DConditionModel/AutoencoderKL, torch 1.13 CPU f32, weights from the F16 checkpoint"


def _load_ckpt(path):
    return {k: v.float() for k, v in load_file(path).items()}


def _strict_load(model, sd, what):
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    assert not missing and not unexpected, f"{what}: missing {missing[:5]} unexpected {unexpected[:5]}"


def _models(name, root):
    from diffusers.loaders import single_file_utils as sfu
    if name == "sd15":
        unet, _, vae = tiny.build_sd15()
        path = "tests/data/tiny/tiny-sd15.safetensors"
    else:
        unet, _, _, vae = tiny.build_sdxl()
        path = "tests/data/tiny/tiny-sdxl.safetensors"
    ckpt = _load_ckpt(os.path.join(root, path))
    _strict_load(unet, sfu.convert_ldm_unet_checkpoint(dict(ckpt), dict(unet.config)), name + " unet")
    _strict_load(vae, sfu.convert_ldm_vae_checkpoint(dict(ckpt), dict(vae.config)), name + " vae")
    return unet.float().eval(), vae.float().eval(), path


def _unet_case(name, unet, path, outdir, hw=(16, 16), seed=5101, suffix="", x=None, ctx=None):
    """x (2,4,H,W) and context (2,77,D): seeded normal values unless given."""
    xl = name == "sdxl"
    N = 2
    ctx_dim = unet.config.cross_attention_dim
    x = torch.randn((N, 4) + hw, generator=gen(seed)) if x is None else x
    t = torch.tensor([999.0, 250.0])
    ctx = torch.randn((N, 77, ctx_dim), generator=gen(seed + 1)) if ctx is None else ctx
    tensors = {"x": x, "t": t, "context": ctx}
    kwargs = {}
    if xl:
        text_embeds = torch.randn((N, 32), generator=gen(seed + 2))
        time_ids = torch.tensor([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0], [128.0, 96.0, 8.0, 16.0, 128.0, 96.0]])
        kwargs["added_cond_kwargs"] = {"text_embeds": text_embeds, "time_ids": time_ids}
        tensors.update(text_embeds=text_embeds, time_ids=time_ids)
    taps = {}
    h = unet.mid_block.register_forward_hook(lambda m, i, o: taps.__setitem__("mid", o.detach().clone()))
    with torch.no_grad():
        out = unet(x, t, encoder_hidden_states=ctx, **kwargs).sample
        emb = unet.time_embedding(unet.time_proj(t).to(x.dtype))
        if xl:
            te = unet.add_time_proj(time_ids.flatten()).reshape(N, -1)
            y = torch.cat([text_embeds, te], dim=-1)
            emb = emb + unet.add_embedding(y)
            tensors["y"] = y
    h.remove()
    tensors.update(emb=emb, mid=taps["mid"], out=out)
    heads = f"num_heads={unet.config.attention_head_dim}" if not xl else "head_dim=8"
    meta = {"model": path, "heads": heads, "source": SRC,
            "timesteps": "999,250",
            "config": json.dumps({k: v for k, v in dict(unet.config).items() if not k.startswith("_")},
                                 sort_keys=True, default=list)[:3000]}
    p = os.path.join(outdir, f"{name}_unet{suffix}.safetensors")
    save_file({k: v.float().contiguous() for k, v in tensors.items()}, p, meta)
    print(f"  wrote {os.path.relpath(p)} ({os.path.getsize(p)} bytes), |out| = {out.norm():.4f}")


def _vae_case(name, vae, path, outdir, z=None, img=None):
    """z (1,4,8,8) sampler-space latent and img (1,3,64,64) in [-1,1]: seeded noise unless given."""
    sf = SF[name]
    z = torch.randn((1, 4, 8, 8), generator=gen(5201)) if z is None else z
    img = torch.rand((1, 3, 64, 64), generator=gen(5202)) * 2.0 - 1.0 if img is None else img
    with torch.no_grad():
        dec = vae.decode(z / sf).sample
        dist = vae.encode(img).latent_dist
    tensors = {"dec_in": z, "dec_out": dec, "enc_in": img, "enc_mean": dist.mean * sf,
               "enc_logvar": dist.logvar}
    p = os.path.join(outdir, f"{name}_vae.safetensors")
    save_file({k: v.float().contiguous() for k, v in tensors.items()}, p,
              {"model": path, "scaling_factor": repr(sf), "source": SRC})
    print(f"  wrote {os.path.relpath(p)} ({os.path.getsize(p)} bytes), |dec| = {dec.norm():.4f}")


def _save_sd15_folder(unet, vae, root, outdir):
    import shutil

    from diffusers import PNDMScheduler
    from .model_clip import load_encoders
    d = os.path.join(outdir, "tiny-sd15-diffusers")
    shutil.rmtree(d, ignore_errors=True)
    unet.half().save_pretrained(os.path.join(d, "unet"), safe_serialization=True)
    vae.half().save_pretrained(os.path.join(d, "vae"), safe_serialization=True)
    unet.float(), vae.float()
    te = load_encoders(root)[0]
    te.half().save_pretrained(os.path.join(d, "text_encoder"), safe_serialization=True)
    sched = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                          skip_prk_steps=True, steps_offset=1, prediction_type="epsilon")
    sched.save_pretrained(os.path.join(d, "scheduler"))
    with open(os.path.join(d, "model_index.json"), "w") as f:
        json.dump({"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.3",
                   "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
                   "text_encoder": ["transformers", "CLIPTextModel"],
                   "scheduler": ["diffusers", "PNDMScheduler"]}, f, indent=2)
    total = sum(os.path.getsize(os.path.join(a, f)) for a, _, fs in os.walk(d) for f in fs)
    print(f"  wrote {os.path.relpath(d)}/ ({total} bytes)")


def _save_sdxl_unet_layout(unet, outdir):
    import shutil
    d = os.path.join(outdir, "tiny-sdxl-diffusers-unet")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    unet.save_config(d)
    keys = {k: list(v.shape) for k, v in unet.state_dict().items()}
    with open(os.path.join(d, "keys.json"), "w") as f:
        json.dump(keys, f, indent=0, sort_keys=True)
    print(f"  wrote {os.path.relpath(d)}/ ({len(keys)} tensor names)")


def _demo_cases(root, outdir):
    """The UNet and VAE goldens of the trained demo model on structured inputs (module docstring)."""
    import numpy as np
    import train_demo
    from diffusers import DDPMScheduler
    from .model_pipeline import clip_tokenizer, components
    from .model_pipeline_demo import CAPTION, MODEL as DEMO
    unet, vae, te = components(root, DEMO)
    unet, vae, te = unet.float().eval(), vae.float().eval(), te.float().eval()
    img = torch.from_numpy(train_demo.render(np.random.default_rng(5301), "square", "red", "blue"))
    img = img.permute(2, 0, 1)[None].contiguous() * 2.0 - 1.0
    with torch.no_grad():
        z0 = vae.encode(img).latent_dist.mean * SF["demo"]
    sched = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    x = sched.add_noise(z0.expand(2, -1, -1, -1), torch.randn((2, 4, 8, 8), generator=gen(5302)),
                        torch.tensor([999, 250]))
    tok = clip_tokenizer(root)
    ids = tok([CAPTION, ""], padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        ctx = te(ids).last_hidden_state
    _unet_case("demo", unet, DEMO, outdir, x=x, ctx=ctx)
    _vae_case("demo", vae, DEMO, outdir, z=z0, img=img)


def run(root):
    outdir = os.path.join(root, "tests", "data", "model")
    os.makedirs(outdir, exist_ok=True)
    for name in ("sd15", "sdxl"):
        unet, vae, path = _models(name, root)
        _unet_case(name, unet, path, outdir)
        # latent sizes that are not multiples of 2^(downsamplers): diffusers passes upsample_size (the
        # skip connection's size) to the upsamplers, F.interpolate(size=..., mode="nearest")
        _unet_case(name, unet, path, outdir, ODD[name], 5111, "_odd")
        _vae_case(name, vae, path, outdir)
        if name == "sd15":
            _save_sd15_folder(unet, vae, root, outdir)
        else:
            _save_sdxl_unet_layout(unet, outdir)
    _demo_cases(root, outdir)
