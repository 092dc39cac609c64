"""End-to-end SDXL goldens of `lorafuse generate` -> tests/data/pipeline/pipeline-sdxl.safetensors.

Oracle: diffusers 0.30.3 StableDiffusionXLPipeline built from the SAME components as the C pipeline:
  UNet / VAE / TE1 / TE2   read from tests/data/pipeline/sdxl-mini.safetensors (scripts/golden/sdxl_mini.py) through
                           diffusers' own single-file converters (convert_ldm_unet/vae/clip_checkpoint,
                           convert_open_clip_checkpoint) into models of the configs sdxl_mini.py records
                           (F16 values, run in f32);
  tokenizer, tokenizer_2   transformers CLIPTokenizer (slow) from the vocab.json + merges.txt model_pipeline.py
                           derives from models/clip/bpe_simple_vocab_16e6.txt.gz; tokenizer_2 with
                           pad_token "!" (id 0) as SDXL base's tokenizer_2 (TE1 pads with EOS);
  scheduler                scripts/golden/model_sampler.make_scheduler (as the SD1.5 cases);
  time ids                 the pipeline's defaults: original_size = target_size = (height, width),
                           crops_coords_top_left = (0, 0), for the negative side too -> (H, W, 0, 0, H, W);
                           non-square 96x64 (W x H) so that the (H, W) order is tested;
  generator                torch.Generator("cpu").manual_seed(seed) (initial latent, then Euler a's noise).
No negative prompt (case xl_euler_noneg: negative_prompt=None, force_zeros_for_empty_prompt=True as SDXL base's
model_index.json): the uncond context and pooled vector are zeros, as A1111 does for an empty negative prompt on
SDXL (sd_models_xl.py force_zero_negative_prompt); lorafuse's empty --negative gets the same. Adapters: pipe.load_lora_weights(tests/data/pipeline/lora/
sdxl_mini_lora.safetensors) (diffusers' kohya SDXL converter, SGM -> diffusers block names, + PEFT), then fused
as lorafuse patches weights (model_pipeline.Fuser: W = fp16(W0 + s * dW)); TE1 and TE2 at the tag's te1/te2
strengths (constant: diffusers encodes the prompt once), the UNet re-fused at the next step's strength by
callback_on_step_end.
Each case stores <case>.latent (1, 4, h, w), <case>.image (1, 3, H, W) = vae.decode(latent / 0.13025),
<case>.rgb (H, W, 3) U8 (the pipeline's postprocessing); the first case also cond / uncond (77, 32) and
cond_pooled / uncond_pooled (16). Metadata as pipeline.safetensors plus model and lora_dir; <case>.negative overrides `negative` ("": none).
"""
import os
import tempfile

import torch

from .common import save_file
from .model_pipeline import CFG, NEG, PROMPT, SEED, STEPS, Fuser, _patch_attention, lora_layers, tokenizer_files

WIDTH, HEIGHT = 96, 64
OUT = "tests/data/pipeline/pipeline-sdxl.safetensors"

# name, kind, karras, A1111 sampler name, tag suffix, te1 strength, te2 strength, unet schedule per step 1..N
CASES = [
    ("xl_euler_plain", "euler", False, "Euler", "", None, None, None),
    ("xl_dpmpp2m_plain", "dpmpp_2m", False, "DPM++ 2M", "", None, None, None),
    ("xl_euler_lora", "euler", False, "Euler", " <lora:sdxl_mini_lora:0.8>", 0.8, 0.8, [0.8] * STEPS),
    ("xl_dpmpp2m_lora", "dpmpp_2m", False, "DPM++ 2M", " <lora:sdxl_mini_lora:0.8>", 0.8, 0.8, [0.8] * STEPS),
    ("xl_ddim_sched", "ddim", False, "DDIM", " <lora:sdxl_mini_lora:te1=0.5:te2=1:unet=0.2@0,1@3>", 0.5, 1.0,
     [0.2, 0.2, 1.0, 1.0, 1.0]),
    ("xl_dpmpp2m_sched", "dpmpp_2m", False, "DPM++ 2M", " <lora:sdxl_mini_lora:te=0:unet=0@0,1@5:ramp=linear>", 0.0,
     0.0, [0.0, 0.25, 0.5, 0.75, 1.0]),
    ("xl_eulera_sched", "euler_a", False, "Euler a", " <lora:sdxl_mini_lora:te=0.7:unet=1@0,0.3@2>", 0.7, 0.7,
     [1.0, 0.3, 0.3, 0.3, 0.3]),
    # no negative prompt: SDXL's zero negative conditioning (context and pooled), see the docstring
    ("xl_euler_noneg", "euler", False, "Euler", "", None, None, None),
]
NO_NEG = {"xl_euler_noneg"}


def components(root):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders import single_file_utils as sfu
    from safetensors.torch import load_file
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    from . import sdxl_mini as m
    ckpt = {k: v.float() for k, v in load_file(os.path.join(root, m.MODEL)).items()}
    unet = UNet2DConditionModel(**m.UNET_CFG)
    unet.load_state_dict(sfu.convert_ldm_unet_checkpoint(dict(ckpt), dict(unet.config)))
    vae = AutoencoderKL(**m.VAE_CFG)
    vae.load_state_dict(sfu.convert_ldm_vae_checkpoint(dict(ckpt), dict(vae.config)))
    te1 = CLIPTextModel(CLIPTextConfig(**m.TE1_CFG))
    sd = {k: v for k, v in sfu.convert_ldm_clip_checkpoint(dict(ckpt)).items() if not k.endswith("position_ids")}
    missing, unexpected = te1.load_state_dict(sd, strict=False)
    assert not unexpected and all(k.endswith("position_ids") for k in missing), (missing, unexpected)
    te2 = CLIPTextModelWithProjection(CLIPTextConfig(**m.TE2_CFG))
    sd = sfu.convert_open_clip_checkpoint(te2, dict(ckpt), prefix="conditioner.embedders.1.model.")
    sd = {k: v for k, v in sd.items() if not k.endswith("position_ids")}
    missing, unexpected = te2.load_state_dict(sd, strict=False)
    assert not unexpected and all(k.endswith("position_ids") for k in missing), (missing, unexpected)
    return unet.eval(), vae.eval(), te1.eval(), te2.eval()


def run(root):
    _patch_attention()
    from diffusers import StableDiffusionXLPipeline
    from transformers import CLIPTokenizer
    from . import sdxl_mini as m
    from .model_sampler import make_scheduler
    tensors, meta, names = {}, {}, []
    with tempfile.TemporaryDirectory() as d:
        tokenizer_files(root, d)
        v, mg = os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt")
        tok = CLIPTokenizer(v, mg, model_max_length=77, clean_up_tokenization_spaces=False)
        tok2 = CLIPTokenizer(v, mg, model_max_length=77, clean_up_tokenization_spaces=False, pad_token="!")
    assert tok.pad_token_id == 49407 and tok2.pad_token_id == 0
    lora_path = os.path.join(root, m.LORA_DIR, m.LORA_NAME + ".safetensors")
    for ci, (name, kind, karras, sname, tag, te1_s, te2_s, sched) in enumerate(CASES):
        unet, vae, te1, te2 = components(root)
        pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tok,
                                         tokenizer_2=tok2, unet=unet,
                                         scheduler=make_scheduler(kind, karras, "leading", "epsilon"),
                                         force_zeros_for_empty_prompt=True, add_watermarker=False)
        pipe.set_progress_bar_config(disable=True)
        cb = None
        if sched is not None:
            pipe.load_lora_weights(os.path.dirname(lora_path), weight_name=os.path.basename(lora_path),
                                   adapter_name="xl")
            fu, f1, f2 = Fuser(pipe.unet, "xl"), Fuser(pipe.text_encoder, "xl"), Fuser(pipe.text_encoder_2, "xl")
            assert fu.items and f1.items and f2.items
            for mod in (pipe.unet, pipe.text_encoder, pipe.text_encoder_2):
                for layer in lora_layers(mod):
                    layer.enable_adapters(False)
            f1.set(te1_s)
            f2.set(te2_s)
            fu.set(sched[0])

            def cb(p, i, t, kw, fu=fu, sched=sched):
                if i + 1 < len(sched):
                    fu.set(sched[i + 1])
                return kw
        if ci == 0:
            with torch.no_grad():
                c, u, cp, up = pipe.encode_prompt(PROMPT, device="cpu", num_images_per_prompt=1,
                                                  do_classifier_free_guidance=True, negative_prompt=NEG)
            tensors["cond"], tensors["uncond"] = c[0].contiguous(), u[0].contiguous()
            tensors["cond_pooled"], tensors["uncond_pooled"] = cp[0].contiguous(), up[0].contiguous()
            ids = pipe._get_add_time_ids((HEIGHT, WIDTH), (0, 0), (HEIGHT, WIDTH), dtype=torch.float32,
                                         text_encoder_projection_dim=int(cp.shape[-1]))
            assert ids.tolist() == [[HEIGHT, WIDTH, 0, 0, HEIGHT, WIDTH]], ids
            tensors["time_ids"] = ids[0].contiguous()
        g = torch.Generator("cpu").manual_seed(SEED)
        with torch.no_grad():
            neg = None if name in NO_NEG else NEG
            lat = pipe(PROMPT, negative_prompt=neg, height=HEIGHT, width=WIDTH, num_inference_steps=STEPS,
                       guidance_scale=CFG, generator=g, output_type="latent", callback_on_step_end=cb).images
            img = vae.decode(lat / vae.config.scaling_factor).sample
            rgb = pipe.image_processor.postprocess(img, output_type="np")[0]
            rgb8 = torch.from_numpy((rgb * 255).round().astype("uint8"))
        tensors[f"{name}.latent"] = lat.float().contiguous()
        tensors[f"{name}.image"] = img.float().contiguous()
        tensors[f"{name}.rgb"] = rgb8.contiguous()
        names.append(name)
        meta[f"{name}.prompt"] = PROMPT + tag
        meta[f"{name}.sampler"] = sname
        if name in NO_NEG:
            meta[f"{name}.negative"] = ""
        print(f"  {name}: {sname}, latent |x| {lat.abs().mean():.4f}, image mean {img.mean():.4f}")
    meta.update({"cases": ",".join(names), "negative": NEG, "seed": str(SEED), "steps": str(STEPS),
                 "cfg": repr(CFG), "width": str(WIDTH), "height": str(HEIGHT), "model": m.MODEL,
                 "lora_dir": m.LORA_DIR,
                 "source": "scripts/golden/model_pipeline_sdxl.py: diffusers 0.30.3 StableDiffusionXLPipeline, "
                           "transformers 4.44.2 CLIPTokenizer (tokenizer_2 pad '!'), PEFT 0.12.0 LoRA fused at each "
                           "step's strength"})
    path = os.path.join(root, OUT)
    save_file(tensors, path, meta)
    print(f"  wrote {os.path.relpath(path, root)} ({os.path.getsize(path)} bytes)")
