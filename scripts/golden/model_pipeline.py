"""End-to-end goldens of `lorafuse generate` -> tests/data/pipeline/pipeline.safetensors (on the random-weight
models/sd15-mini.safetensors; generate(root, spec) also writes scripts/golden/model_pipeline_demo.py's golden on the
trained demo model).

Oracle: diffusers 0.30.3 StableDiffusionPipeline built from the SAME components as the C pipeline:
  UNet / VAE / CLIP text encoder  read from the spec's model through diffusers' own single-file converters
                                  (convert_ldm_unet/vae/clip_checkpoint) into models of the configs the
                                  checkpoint records in its `lorafuse.arch` metadata (written by
                                  scripts/make_default_model.py / scripts/train_demo.py; F16 values, run in f32);
  tokenizer                       transformers CLIPTokenizer (slow) from a vocab.json + merges.txt derived
                                  from models/clip/bpe_simple_vocab_16e6.txt.gz exactly as CLIP's
                                  SimpleTokenizer builds its vocabulary (written to a temporary folder);
  scheduler                       scripts/golden/model_sampler.make_scheduler (the samplers' goldens use the
                                  same construction: scaled_linear 0.00085..0.012, leading, steps_offset 1);
  generator                       torch.Generator("cpu").manual_seed(seed), passed to the pipeline (initial
                                  latent, then the ancestral noise of Euler a from the same stream).
Adapters: pipe.load_lora_weights(spec.lora: models/lora/mini_lora.safetensors) (diffusers' kohya converter + PEFT).
lorafuse patches weights (W = W0 + s * dW rounded once to the checkpoint dtype, F16), so the oracle does
the same: for every PEFT LoRA layer W = (W0 + s * layer.get_delta_weight()).half().float() is written into
the base layer with the adapters disabled ("fuse at the right scale"); a per-step UNet schedule is a
callback_on_step_end that refuses the UNet layers at the next step's strength (the text encoder keeps its
constant `te` strength: diffusers encodes the prompt once, before the loop).
Each case stores <case>.latent (1, 4, h, w): the final latent (output_type="latent"),
<case>.image (1, 3, H, W): vae.decode(latent / scaling_factor) in f32, <case>.rgb (H, W, 3) U8: the
pipeline's own postprocessing (round(clamp(x/2+0.5, 0, 1) * 255)); and cond / uncond (77, D) of the first
case. Metadata per case: prompt (with the <lora:...> tags lorafuse reads), negative, sampler (A1111 name),
steps, cfg, seed, width, height (<case>.width / <case>.height where a case has its own size: euler_72x40,
a 9x5 latent that is not a multiple of 2^downsamplers); `cases` lists them.
"""
import gzip
import json
import os
import tempfile
from collections import namedtuple

import torch

from .common import save_file

PROMPT = "a tiny red fox in the snow, pixel art"
NEG = "blurry, low quality"
SEED = 1234
STEPS = 5
CFG = 7.0
SIZE = 64
LORA = "models/lora/mini_lora.safetensors"

# name, kind, karras, A1111 sampler name, tag suffix, te strength (None: the LoRA has no text-encoder part),
# unet schedule (list per step 1..N; None: no LoRA)
CASES = [
    ("euler_plain", "euler", False, "Euler", "", None, None),
    ("dpmpp2m_lora", "dpmpp_2m", False, "DPM++ 2M", " <lora:mini_lora:0.8>", 0.8, [0.8] * STEPS),
    ("dpmpp2mk_plain", "dpmpp_2m", True, "DPM++ 2M Karras", "", None, None),
    ("eulera_sched", "euler_a", False, "Euler a", " <lora:mini_lora:te=0.5:unet=0.2@0,1@3>", 0.5,
     [0.2, 0.2, 1.0, 1.0, 1.0]),
    ("euler_sched_linear", "euler", False, "Euler", " <lora:mini_lora:te=0:unet=0@0,1@5:ramp=linear>", 0.0,
     [0.0, 0.25, 0.5, 0.75, 1.0]),
    ("euler_72x40", "euler", False, "Euler", "", None, None),
]
# (width, height) of the cases that do not run at SIZE x SIZE, stored as <case>.width / <case>.height:
# 72x40 is a 9x5 latent, not a multiple of 2^3, so diffusers' UNet passes upsample_size to its upsamplers
CASE_SIZE = {"euler_72x40": (72, 40)}

# One golden file: its model and LoRA (paths from the repository root; the LoRA's folder is the golden's lora_dir,
# its file stem the name in the tags), prompt, negative, seed, steps, cfg, size, CASES-style cases, the sizes of the
# cases that have their own, the output path and the `source` metadata.
Spec = namedtuple("Spec", "model lora prompt negative seed steps cfg size cases case_size out source")
SD15 = Spec("models/sd15-mini.safetensors", LORA, PROMPT, NEG, SEED, STEPS, CFG, SIZE, CASES, CASE_SIZE,
            "tests/data/pipeline/pipeline.safetensors",
            "scripts/golden/model_pipeline.py: diffusers 0.30.3 StableDiffusionPipeline, "
            "transformers 4.44.2 CLIPTokenizer, PEFT 0.12.0 LoRA fused at each step's strength")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def tokenizer_files(root, d):
    """vocab.json + merges.txt as CLIP's SimpleTokenizer builds them from the BPE file."""
    with gzip.open(os.path.join(root, "models", "clip", "bpe_simple_vocab_16e6.txt.gz"), "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    for m in merges:
        vocab.append("".join(m.split()))
    vocab.extend(["<|startoftext|>", "<|endoftext|>"])
    assert len(vocab) == 49408
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({v: i for i, v in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")


def clip_tokenizer(root):
    """The CLIP tokenizer the pipelines use (slow CLIPTokenizer on tokenizer_files, 77 tokens)."""
    from transformers import CLIPTokenizer
    with tempfile.TemporaryDirectory() as d:
        tokenizer_files(root, d)
        return CLIPTokenizer(os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt"), model_max_length=77,
                             clean_up_tokenization_spaces=False)


def components(root, model):
    """UNet, VAE and text encoder of the single-file SD1 checkpoint `model` (path from the root), in the diffusers
    configs of its `lorafuse.arch` metadata."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders import single_file_utils as sfu
    from safetensors import safe_open
    from safetensors.torch import load_file
    from transformers import CLIPTextConfig, CLIPTextModel
    path = os.path.join(root, model)
    with safe_open(path, "pt") as f:
        arch = json.loads(f.metadata()["lorafuse.arch"])
    ckpt = {k: v.float() for k, v in load_file(path).items()}
    unet = UNet2DConditionModel(**arch["unet"])
    unet.load_state_dict(sfu.convert_ldm_unet_checkpoint(dict(ckpt), dict(unet.config)))
    vae = AutoencoderKL(**arch["vae"])
    vae.load_state_dict(sfu.convert_ldm_vae_checkpoint(dict(ckpt), dict(vae.config)))
    te = CLIPTextModel(CLIPTextConfig(**arch["clip"]))
    sd = sfu.convert_ldm_clip_checkpoint(dict(ckpt))
    sd = {k: v for k, v in sd.items() if not k.endswith("position_ids")}
    missing, unexpected = te.load_state_dict(sd, strict=False)
    assert not unexpected and all(k.endswith("position_ids") for k in missing), (missing, unexpected)
    return unet.eval(), vae.eval(), te.eval()


def lora_layers(model):
    from peft.tuners.lora import LoraLayer
    return [m for m in model.modules() if isinstance(m, LoraLayer)]


class Fuser:
    """W = fp16(W0 + s * dW) in the base layers (the bytes lorafuse's CPU backend writes)."""

    def __init__(self, model, adapter):
        self.items = []
        for m in lora_layers(model):
            W0 = m.base_layer.weight.detach().clone()
            with torch.no_grad():
                dW = m.get_delta_weight(adapter).detach().clone().float()
            self.items.append((m, W0, dW))

    def set(self, s):
        with torch.no_grad():
            for m, W0, dW in self.items:
                W = W0 if s == 0 else (W0.float() + float(s) * dW.reshape(W0.shape)).half().float()
                m.base_layer.weight.copy_(W)


def _patch_attention():
    """torch 1.13 CPU: baddbmm(torch.empty(..), q, k, beta=0) lets NaN/Inf from the uninitialised input
    through (seen on the first pipeline call of a process), so diffusers' get_attention_scores gets an
    explicit zero bias instead: 0 + scale * q k^T, the same value without the garbage."""
    from diffusers.models.attention_processor import Attention
    if getattr(Attention, "_lf_patched", False):
        return
    orig = Attention.get_attention_scores

    def scores(self, query, key, attention_mask=None):
        if attention_mask is None:
            attention_mask = torch.zeros(query.shape[0], query.shape[1], key.shape[1], dtype=query.dtype)
        return orig(self, query, key, attention_mask)
    Attention.get_attention_scores = scores
    Attention._lf_patched = True


def run(root):
    generate(root, SD15)


def generate(root, spec):
    """Runs spec's cases through the diffusers pipeline and writes spec.out (the layout of the module docstring)."""
    _patch_attention()
    from diffusers import StableDiffusionPipeline
    from .model_sampler import make_scheduler
    tensors, meta, names = {}, {}, []
    lora_dir, lora_file = os.path.split(spec.lora)
    adapter = os.path.splitext(lora_file)[0]
    tok = clip_tokenizer(root)
    for ci, (name, kind, karras, sname, tag, te_s, sched) in enumerate(spec.cases):
        unet, vae, te = components(root, spec.model)
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet,
                                       scheduler=make_scheduler(kind, karras, "leading", "epsilon"),
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        cb = None
        if sched is not None:
            pipe.load_lora_weights(os.path.join(root, lora_dir), weight_name=lora_file, adapter_name=adapter)
            fu, ft = Fuser(pipe.unet, adapter), Fuser(pipe.text_encoder, adapter)
            assert fu.items and bool(ft.items) == (te_s is not None), (name, len(fu.items), len(ft.items))
            for mod in (pipe.unet, pipe.text_encoder):  # base layers only; the fused weights carry the LoRA
                for m in lora_layers(mod):
                    m.enable_adapters(False)
            if te_s is not None:
                ft.set(te_s)
            fu.set(sched[0])

            def cb(p, i, t, kw, fu=fu, sched=sched):
                if i + 1 < len(sched):
                    fu.set(sched[i + 1])
                return kw
        if ci == 0:
            with torch.no_grad():
                c, u = pipe.encode_prompt(spec.prompt, "cpu", 1, True, spec.negative)
            tensors["cond"], tensors["uncond"] = c[0].contiguous(), u[0].contiguous()
        g = torch.Generator("cpu").manual_seed(spec.seed)
        with torch.no_grad():
            cw, ch = spec.case_size.get(name, (spec.size, spec.size))
            lat = pipe(spec.prompt, negative_prompt=spec.negative, height=ch, width=cw,
                       num_inference_steps=spec.steps, guidance_scale=spec.cfg, generator=g, output_type="latent",
                       callback_on_step_end=cb).images
            img = vae.decode(lat / vae.config.scaling_factor).sample
            rgb = pipe.image_processor.postprocess(img, output_type="np")[0]
            rgb8 = torch.from_numpy((rgb * 255).round().astype("uint8"))
        tensors[f"{name}.latent"] = lat.float().contiguous()
        tensors[f"{name}.image"] = img.float().contiguous()
        tensors[f"{name}.rgb"] = rgb8.contiguous()
        names.append(name)
        meta[f"{name}.prompt"] = spec.prompt + tag
        meta[f"{name}.sampler"] = sname
        if name in spec.case_size:
            meta[f"{name}.width"], meta[f"{name}.height"] = str(cw), str(ch)
        print(f"  {name}: {sname}, latent |x| {lat.abs().mean():.4f}, image mean {img.mean():.4f}")
    meta.update({"cases": ",".join(names), "negative": spec.negative, "seed": str(spec.seed),
                 "steps": str(spec.steps), "cfg": repr(spec.cfg), "width": str(spec.size), "height": str(spec.size),
                 "model": spec.model, "lora_dir": lora_dir, "source": spec.source})
    path = os.path.join(root, spec.out)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file(tensors, path, meta)
    print(f"  wrote {spec.out} ({os.path.getsize(path)} bytes)")
