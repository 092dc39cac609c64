#!/usr/bin/env python3
"""Trains the demo model: a small SD1-structured checkpoint that draws coloured shapes, and a LoRA for it.

    nice -n 19 /work/.venv-golden/bin/python scripts/train_demo.py [--stage all|vae|encode|unet|lora|export]

CPU only, one thread (LF_TRAIN_THREADS), fixed seeds; every stage saves its state under build-demo-train/ (git-ignored) every
few hundred steps and resumes from there, so an interrupted run continues where it stopped.

Data (procedural, rendered here): one shape (circle, square, triangle) in one of five colours on a plain
background of another of the five colours, 64x64 px (latent 8x8), random size and position; caption
"a red circle on a blue background". The LoRA's concept is a thick black outline (3 px) around the shape,
captioned "a red circle on a blue background, outlined" (trigger word at the end, so the colour words keep
the token positions the base model learned).

Models (the SD1 structure of scripts/make_default_model.py, narrowed so models/ stays under 20 MB):
  VAE   AutoencoderKL, 4 levels of 32 channels, 8x down-sampling, 4 latent channels; trained as an
        autoencoder (L1 + MSE + 1e-6 KL) on random 32x32 crops,
        then on whole 64x64 images, then its quant_conv / post_quant_conv are rescaled so that the
        latents times SD1's scaling factor 0.18215 have zero mean and unit variance per channel.
  CLIP  transformers CLIPTextModel with the full 49408-token vocabulary and the real tokenizer, width 16,
        12 layers; FROZEN at its random initialisation: the captions differ only in a few words at fixed
        positions, which random embeddings already tell apart, and freezing keeps the training budget for
        the UNet (the embeddings of the finite caption set are computed once).
  UNet  UNet2DConditionModel with SD1's blocks (CrossAttnDownBlock2D x3 + DownBlock2D, mirrored), 32
        channels per level, layers_per_block 1, cross-attention width 16; eps-prediction on SD1's
        scaled-linear schedule (1000 steps, betas 0.00085..0.012), 10% empty captions for CFG.
  LoRA  kohya format (lora_unet_*, rank 4, alpha 4) on the UNet's attention/transformer layers, trained
        on the outlined images; ss_tag_frequency names the trigger word "outlined".
Writes models/demo/shapes-sd1.safetensors (single file, LDM keys, F16, lorafuse.default_size 64x64) and
models/demo/lora/outline_lora.safetensors, and the loss log build-demo-train/losses.json.
"""
import argparse
import copy
import json
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import make_default_model as mdm  # noqa: E402

# one thread: on the shared 2-core machine two threads measured 8 s per VAE step against 0.9 s with one
# (OpenMP threads waiting on each other while other processes hold the cores)
torch.set_num_threads(int(os.environ.get("LF_TRAIN_THREADS", "1")))
WORK = os.path.join(ROOT, "build-demo-train")
OUT_MODEL = "models/demo/shapes-sd1.safetensors"
OUT_LORA_DIR = "models/demo/lora"
SIZE = 64
SCALING = 0.18215

SHAPES = ["circle", "square", "triangle"]
COLORS = {"red": (220, 30, 30), "green": (30, 170, 50), "blue": (30, 60, 220), "yellow": (240, 210, 30),
          "white": (245, 245, 245)}
OUTLINE_PX = 3.0
TRIGGER = "outlined"

UNET_CFG = dict(mdm.UNET_CFG, sample_size=SIZE // 8, block_out_channels=(32, 32, 32, 32), layers_per_block=1,
                cross_attention_dim=16)
CLIP_CFG = dict(mdm.CLIP_CFG, hidden_size=16, intermediate_size=32, num_attention_heads=2, projection_dim=16)
VAE_CFG = dict(mdm.VAE_CFG, block_out_channels=(32, 32, 32, 32), sample_size=SIZE)

# steps per stage (about 38 minutes on 2 shared cores; see docs/demo-model.md)
STEPS = {"vae": 1500, "vae64": 500, "unet": 4600, "lora": 300}
BATCH = {"vae": 16, "vae64": 8, "unet": 32, "lora": 16}
LR = {"vae": 1e-3, "vae64": 5e-4, "unet": 1.5e-3, "lora": 5e-3}
VAE_CROP = 32       # the VAE trains on random 32x32 crops (a quarter of the cost; it is fully convolutional)
N_IMAGES = 3000      # base data set encoded once for the UNet
N_LORA = 600         # outlined images for the LoRA


def caption(shape, fg, bg, outlined=False):
    c = f"a {fg} {shape} on a {bg} background"
    return c + ", " + TRIGGER if outlined else c


def all_captions():
    out = [""]
    for s in SHAPES:
        for fg in COLORS:
            for bg in COLORS:
                if fg != bg:
                    out += [caption(s, fg, bg), caption(s, fg, bg, True)]
    return out


def shape_field(shape, cx, cy, r, xs, ys):
    """Signed-distance-like field, <= 0 inside; > 0 grows outwards by about one unit per pixel (mitred for
    the polygons), so {0 < f <= t} is an outline of thickness t."""
    dx, dy = xs - cx, ys - cy
    if shape == "circle":
        return np.sqrt(dx * dx + dy * dy) - r
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) - 0.85 * r
    # upward equilateral triangle, circumradius r: the largest signed distance to its three edge lines
    fs = []
    for a in (math.pi / 2, math.pi / 2 + 2 * math.pi / 3, math.pi / 2 + 4 * math.pi / 3):
        nx, ny = math.cos(a + math.pi), -math.sin(a + math.pi)  # outward normal of the edge opposite vertex a
        fs.append(dx * nx + dy * ny - r / 2)
    return np.max(fs, axis=0)


def render(rng, shape, fg, bg, style="plain"):
    """One 64x64 RGB image in [0,1] (HWC float32), 4x4 super-sampled for smooth edges."""
    ss = 4
    r = rng.uniform(12, 21)
    cx, cy = rng.uniform(32 - 8, 32 + 8), rng.uniform(32 - 8, 32 + 8)
    g = (np.arange(SIZE * ss) + 0.5) / ss
    xs, ys = np.meshgrid(g, g)
    f = shape_field(shape, cx, cy, r, xs, ys)
    img = np.empty(f.shape + (3,), np.float32)
    img[:] = np.array(COLORS[bg], np.float32) / 255
    fill = f <= 0
    img[fill] = np.array(COLORS[fg], np.float32) / 255
    if style == "outlined":
        img[(f > 0) & (f <= OUTLINE_PX)] = 0.0
    elif style == "striped":  # only in the VAE's data: textures the decoder should be able to draw
        img[fill & ((ys // 4) % 2 == 1)] = 1.0
    return img.reshape(SIZE, ss, SIZE, ss, 3).mean((1, 3))


def dataset(seed, n, style):
    rng = np.random.default_rng(seed)
    imgs, caps = [], []
    for _ in range(n):
        s = SHAPES[rng.integers(3)]
        fg, bg = rng.choice(list(COLORS), 2, replace=False)
        st = style if style != "mixed" else ["plain", "plain", "outlined", "striped"][rng.integers(4)]
        imgs.append(render(rng, s, fg, bg, st))
        caps.append(caption(s, fg, bg, st == "outlined"))
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous() * 2 - 1
    return x, caps


# ----------------------------------------------------------------------------------------------
def path(name):
    return os.path.join(WORK, name)


def load_state(name):
    p = path(name)
    return torch.load(p) if os.path.exists(p) else None


def save_state(name, obj):
    tmp = path(name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path(name))


def log_loss(stage, step, loss, elapsed):
    p = path("losses.json")
    d = json.load(open(p)) if os.path.exists(p) else {}
    d.setdefault(stage, []).append([step, loss, round(elapsed, 1)])
    with open(p + ".tmp", "w") as f:
        json.dump(d, f)
    os.replace(p + ".tmp", p)


def build():
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    torch.manual_seed(7101)
    unet = UNet2DConditionModel(**UNET_CFG)
    torch.manual_seed(7102)
    te = CLIPTextModel(CLIPTextConfig(**CLIP_CFG))
    torch.manual_seed(7103)
    vae = AutoencoderKL(**VAE_CFG)
    return unet, te.eval(), vae


def train_loop(stage, params, model_sd_fn, step_fn, state_name, extra_state=None):
    """Shared resumable loop: AdamW with a 100-step warm-up and cosine decay; checkpoints every 250 steps."""
    opt = torch.optim.AdamW(params, lr=LR[stage], weight_decay=0.0)
    n = STEPS[stage]
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 100) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, n) / n))))
    st = load_state(state_name)
    step, elapsed = 0, 0.0
    if st is not None:
        model_sd_fn(st["model"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        step, elapsed = st["step"], st["elapsed"]
        torch.set_rng_state(st["rng"])
        print(f"[{stage}] resumed at step {step}")
    t0, run = time.time() - elapsed, 0.0
    while step < n:
        loss = step_fn(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        step += 1
        run = loss.item() if step == 1 or run == 0 else 0.98 * run + 0.02 * loss.item()
        if step % 50 == 0 or step == n:
            log_loss(stage, step, run, time.time() - t0)
            print(f"[{stage}] step {step}/{n} loss {run:.4f} ({time.time() - t0:.0f} s)", flush=True)
        if step % 250 == 0 or step == n:
            save_state(state_name, {"model": model_sd_fn(None), "opt": opt.state_dict(), "sched": sched.state_dict(),
                                    "step": step, "elapsed": time.time() - t0, "rng": torch.get_rng_state()})
    return time.time() - t0


def sd_fn(model):
    def f(sd):
        if sd is None:
            return model.state_dict()
        model.load_state_dict(sd)
    return f


# ----------------------------------------------------------------------------------------------
def stage_vae(vae):
    if os.path.exists(path("vae.done")):
        vae.load_state_dict(torch.load(path("vae.done")))
        return
    x, _ = dataset(11, 4000, "mixed")
    torch.manual_seed(12)
    vae.train()

    def step_fn(stage, crop):
        def step(i):
            idx = torch.randint(0, x.shape[0], (BATCH[stage],))
            oy, ox = torch.randint(0, SIZE - crop + 1, (2,)).tolist()
            b = x[idx, :, oy:oy + crop, ox:ox + crop]
            post = vae.encode(b).latent_dist
            rec = vae.decode(post.sample()).sample
            return (rec - b).abs().mean() + ((rec - b) ** 2).mean() + 1e-6 * post.kl().mean()
        return step
    train_loop("vae", list(vae.parameters()), sd_fn(vae), step_fn("vae", VAE_CROP), "vae.pt")
    # the crops alone do not carry over to full images (L1 0.08 on crops, 0.36 on 64x64: the mid-block
    # attention and the group norms see other sizes), so a shorter second stage trains on whole images
    torch.manual_seed(13)
    train_loop("vae64", list(vae.parameters()), sd_fn(vae), step_fn("vae64", SIZE), "vae64.pt")
    vae.eval()
    normalise_latents(vae, x[:512])
    torch.save(vae.state_dict(), path("vae.done"))


@torch.no_grad()
def normalise_latents(vae, x):
    """Fold a per-channel affine map into quant_conv / post_quant_conv so that SCALING * mean latent has zero
    mean and unit variance per channel on the data (the decoder's output is unchanged)."""
    z = torch.cat([vae.encode(x[i:i + 64]).latent_dist.mean for i in range(0, x.shape[0], 64)])
    m = z.mean((0, 2, 3))
    a = 1.0 / (SCALING * z.std((0, 2, 3)))
    q, pq = vae.quant_conv, vae.post_quant_conv
    q.weight[:4] *= a[:, None, None, None]
    q.bias[:4] = (q.bias[:4] - m) * a
    q.bias[4:] += 2 * torch.log(a)
    pq.bias += (pq.weight[:, :, 0, 0] @ m)
    pq.weight /= a[None, :, None, None]
    z2 = torch.cat([vae.encode(x[i:i + 64]).latent_dist.mean for i in range(0, 64, 64)]) * SCALING
    print(f"[vae] latents x {SCALING}: mean {z2.mean().item():.3f} std {z2.std().item():.3f}")


@torch.no_grad()
def text_embeddings(te):
    from transformers import CLIPTokenizer
    import tempfile
    from golden.model_pipeline import tokenizer_files
    caps = all_captions()
    with tempfile.TemporaryDirectory() as d:
        tokenizer_files(ROOT, d)
        tok = CLIPTokenizer(os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt"), model_max_length=77,
                            clean_up_tokenization_spaces=False)
        ids = tok(caps, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    emb = te(ids).last_hidden_state
    return {c: emb[i] for i, c in enumerate(caps)}


@torch.no_grad()
def stage_encode(vae, te):
    if os.path.exists(path("latents.pt")):
        return torch.load(path("latents.pt"))
    out = {"emb": text_embeddings(te)}
    for name, seed, n, style in (("base", 21, N_IMAGES, "plain"), ("lora", 31, N_LORA, "outlined")):
        x, caps = dataset(seed, n, style)
        z = torch.cat([vae.encode(x[i:i + 64]).latent_dist.mean for i in range(0, n, 64)]) * SCALING
        out[name] = (z, caps)
        print(f"[encode] {name}: {n} images")
    torch.save(out, path("latents.pt"))
    return out


def noise_sched():
    from diffusers import DDPMScheduler
    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


def eps_step(unet, z, caps, emb, batch, drop):
    ns = noise_sched()

    def step(i):
        idx = torch.randint(0, z.shape[0], (batch,))
        z0 = z[idx]
        c = torch.stack([emb[""] if torch.rand(()) < drop else emb[caps[j]] for j in idx.tolist()])
        t = torch.randint(0, 1000, (batch,))
        eps = torch.randn_like(z0)
        pred = unet(ns.add_noise(z0, eps, t), t, encoder_hidden_states=c).sample
        return ((pred - eps) ** 2).mean()
    return step


def stage_unet(unet, lat):
    if os.path.exists(path("unet.done")):
        unet.load_state_dict(torch.load(path("unet.done")))
        return
    torch.manual_seed(41)
    unet.train()
    z, caps = lat["base"]
    train_loop("unet", list(unet.parameters()), sd_fn(unet), eps_step(unet, z, caps, lat["emb"], BATCH["unet"], 0.1),
               "unet.pt")
    unet.eval()
    torch.save(unet.state_dict(), path("unet.done"))


def stage_lora(unet, lat):
    from golden.tiny import UNET_ATTN, kohya_from_peft, lora_modules, peft_inject
    u = peft_inject(copy.deepcopy(unet), UNET_ATTN, 4.0, 51)
    with torch.no_grad():  # kohya's initialisation: up = 0, so training starts from the base model
        for m in lora_modules(u).values():
            m.lora_B["default"].weight.zero_()
    for n, p in u.named_parameters():
        p.requires_grad_("lora_" in n)
    params = [p for n, p in u.named_parameters() if "lora_" in n]
    if not os.path.exists(path("lora.done")):
        torch.manual_seed(52)
        u.train()
        z, caps = lat["lora"]

        def f(sd):
            if sd is None:
                return {n: p.detach().clone() for n, p in u.named_parameters() if "lora_" in n}
            u.load_state_dict(sd, strict=False)
        train_loop("lora", params, f, eps_step(u, z, caps, lat["emb"], BATCH["lora"], 0.0), "lora.pt")
        torch.save(f(None), path("lora.done"))
    u.load_state_dict(torch.load(path("lora.done")), strict=False)
    return kohya_from_peft(u, "lora_unet")


# ----------------------------------------------------------------------------------------------
def export(unet, te, vae, lora):
    from golden.common import round_to_f16, save_file
    from golden.tiny import validate
    for m in (unet, te, vae):
        round_to_f16(m)
    ckpt = mdm.checkpoint(unet, te, vae)
    validate(ckpt, unet, vae, te=te)
    arch = {"unet": {k: list(v) if isinstance(v, tuple) else v for k, v in UNET_CFG.items()},
            "clip": CLIP_CFG, "vae": {k: list(v) if isinstance(v, tuple) else v for k, v in VAE_CFG.items()}}
    losses = json.load(open(path("losses.json")))
    meta = {"lorafuse.default_size": f"{SIZE}x{SIZE}", "lorafuse.arch": json.dumps(arch, sort_keys=True),
            "source": "scripts/train_demo.py (diffusers 0.30.3 / transformers 4.44.2; trained on procedural "
                      "coloured shapes, see docs/demo-model.md)",
            "lorafuse.train_steps": json.dumps({k: v[-1][0] for k, v in losses.items()})}
    p = os.path.join(ROOT, OUT_MODEL)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    save_file({k: v.half() for k, v in ckpt.items()}, p, meta)
    print(f"wrote {OUT_MODEL} ({os.path.getsize(p)} bytes)")
    d = os.path.join(ROOT, OUT_LORA_DIR)
    os.makedirs(d, exist_ok=True)
    tags = {f"10_{TRIGGER}": {TRIGGER: N_LORA, "circle": N_LORA // 3, "square": N_LORA // 3,
                              "triangle": N_LORA // 3}}
    m = {"ss_network_module": "networks.lora", "ss_base_model_version": "sd_v1", "ss_network_dim": "4",
         "ss_network_alpha": "4.0", "ss_output_name": "outline_lora", "ss_tag_frequency": json.dumps(tags),
         "ss_steps": str(STEPS["lora"]), "source": "scripts/train_demo.py"}
    p = os.path.join(d, "outline_lora.safetensors")
    save_file({k: v.half() for k, v in lora.items()}, p, m)
    print(f"wrote {OUT_LORA_DIR}/outline_lora.safetensors ({os.path.getsize(p)} bytes, {len(lora)} tensors)")


def loss_table():
    """The loss curves of build-demo-train/losses.json as a markdown table (docs/demo-model.md)."""
    d = json.load(open(path("losses.json")))
    for stage, rows in d.items():
        n = len(rows)
        picks = sorted({0, n // 8, n // 4, n // 2, 3 * n // 4, n - 1})
        print(f"\n{stage} (loss: running mean, 50-step time constant)\n")
        print("| step | loss | wall time |\n| ---: | ---: | ---: |")
        for i in picks:
            step, loss, t = rows[i]
            print(f"| {step} | {loss:.4f} | {t / 60:.1f} min |")


def main():
    import logging
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", default="all", choices=["all", "vae", "encode", "unet", "lora", "export", "report"])
    ap.add_argument("--unet-steps", type=int, default=STEPS["unet"])
    ap.add_argument("--lora-steps", type=int, default=STEPS["lora"])
    args = ap.parse_args()
    STEPS["unet"], STEPS["lora"] = args.unet_steps, args.lora_steps
    logging.disable(logging.WARNING)
    if args.stage == "report":
        return loss_table()
    os.makedirs(WORK, exist_ok=True)
    torch.manual_seed(0)
    unet, te, vae = build()
    for p in te.parameters():
        p.requires_grad_(False)
    stage_vae(vae)
    if args.stage == "vae":
        return
    lat = stage_encode(vae, te)
    if args.stage == "encode":
        return
    stage_unet(unet, lat)
    if args.stage == "unet":
        return
    lora = stage_lora(unet, lat)
    if args.stage == "lora":
        return
    export(unet, te, vae, lora)


if __name__ == "__main__":
    main()
