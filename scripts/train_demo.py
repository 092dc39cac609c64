#!/usr/bin/env python3
"""Trains the demo model: a small SD1-structured checkpoint that draws coloured shapes, and adapters for it.

    nice -n 19 /work/.venv-golden/bin/python scripts/train_demo.py [--stage all|vae|encode|unet|adapters|export]
        [--adapters outline,stripes,checker] [--base train|checkpoint]

CPU only, one thread (LF_TRAIN_THREADS), fixed seeds; every stage saves its state under build-demo-train/ (git-ignored) every
few hundred steps and resumes from there, so an interrupted run continues where it stopped.

Data (procedural, rendered here): one shape (circle, square, triangle) in one of five colours on a plain
background of another of the five colours, 64x64 px (latent 8x8), random size and position; caption
"a red circle on a blue background". Each adapter adds one concept the base model never saw, captioned with
its trigger word at the end (so the colour words keep the token positions the base model learned):
  outline  kohya LoRA: a thick black outline (3 px) around the shape, "..., outlined";
  stripes  LyCORIS LoHa: white horizontal bands, 8 px wide every 16 px, across the background, "..., striped";
  checker  LyCORIS LoRA with DoRA (dora_scale): a background checkerboard of 16-px white cells, "..., checkered".
The two patterns sit on the 8-px latent grid and are white because this VAE reproduces them (it loses black
and anything finer than a latent pixel: the 3-px outline is mostly lost in its reconstructions).

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
  adapters  rank 4, alpha 4, on the UNet's transformer layers (to_q/k/v/out, proj_in/out, ff; the LoHa and the
        DoRA without the cross-attention's to_k/to_v, see LYCORIS_LAYERS), the base frozen, in kohya key names
        (lora_unet_*): the LoRA through PEFT and kohya_from_peft, the LoHa and the DoRA through LyCORIS's own
        network (LycorisNetwork, so the keys, shapes and alpha are the ones LyCORIS writes: hada_w1_a/b,
        hada_w2_a/b; lora_up/down with dora_scale (O, 1[, 1, 1]) on the output axis);
        ss_tag_frequency names each trigger word.
Writes models/demo/shapes-sd1.safetensors (single file, LDM keys, F16, lorafuse.default_size 64x64) and
models/demo/lora/*.safetensors (F16), and the loss log build-demo-train/losses.json.
--base checkpoint trains adapters on the shipped checkpoint instead (its VAE, text encoder and UNet, state under
build-demo-train/from-checkpoint/) and writes only the adapters: the LoHa and the DoRA were trained so, after the
base's training state was gone.
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

UNET_CFG = dict(mdm.UNET_CFG, sample_size=SIZE // 8, block_out_channels=(32, 32, 32, 32), layers_per_block=1,
                cross_attention_dim=16)
CLIP_CFG = dict(mdm.CLIP_CFG, hidden_size=16, intermediate_size=32, num_attention_heads=2, projection_dim=16)
VAE_CFG = dict(mdm.VAE_CFG, block_out_channels=(32, 32, 32, 32), sample_size=SIZE)

# The adapters: each trains stage `stage` (its key in STEPS/BATCH/LR, losses.json and the encoded latents) on
# N_ADAPTER images of `style` (seed `data`), captioned with `trigger`, a fraction `drop` of them with the empty
# caption as the UNet was (so that the unconditional branch of CFG learns the concept too); algo "lora" is kohya's
# LoRA (PEFT), "loha" and "dora" LyCORIS's LoHa and LoRA+DoRA.
ADAPTERS = {
    "outline": dict(stage="lora", style="outlined", trigger="outlined", algo="lora", file="outline_lora", data=31,
                    seed=52, drop=0.0),
    "stripes": dict(stage="loha", style="banded", trigger="striped", algo="loha", file="stripes_loha", data=32,
                    seed=62, drop=0.1),
    "checker": dict(stage="dora", style="checkered", trigger="checkered", algo="dora", file="checker_dora", data=33,
                    seed=72, drop=0.1),
}
TRIGGERS = {a["style"]: a["trigger"] for a in ADAPTERS.values()}
# white background patterns, aligned to the 8-px latent grid: style -> mask of the pattern's pixels
BACKGROUNDS = {"banded": lambda xs, ys: (ys // 8) % 2 == 1,
               "checkered": lambda xs, ys: (xs // 16 + ys // 16) % 2 == 1}

# steps per stage (about 38 minutes on 2 shared cores, plus the adapters; see docs/demo-model.md)
STEPS = {"vae": 1500, "vae64": 500, "unet": 4600, "lora": 300, "loha": 1000, "dora": 1000}
BATCH = {"vae": 16, "vae64": 8, "unet": 32, "lora": 16, "loha": 16, "dora": 16}
LR = {"vae": 1e-3, "vae64": 5e-4, "unet": 1.5e-3, "lora": 5e-3, "loha": 3e-3, "dora": 3e-3}
VAE_CROP = 32       # the VAE trains on random 32x32 crops (a quarter of the cost; it is fully convolutional)
N_IMAGES = 3000      # base data set encoded once for the UNet
N_ADAPTER = 600      # images of each adapter's concept


def caption(shape, fg, bg, trigger=None):
    c = f"a {fg} {shape} on a {bg} background"
    return c + ", " + trigger if trigger else c


def all_captions():
    out = [""]
    for s in SHAPES:
        for fg in COLORS:
            for bg in COLORS:
                if fg != bg:
                    out += [caption(s, fg, bg, t) for t in [None] + list(TRIGGERS.values())]
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
    if style in BACKGROUNDS:
        img[BACKGROUNDS[style](xs, ys)] = 1.0
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
        caps.append(caption(s, fg, bg, TRIGGERS.get(st)))
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
def stage_encode(vae, te, sets):
    """Latents of the data sets `sets` (stage names: "base" and the adapters' stages) and the text embeddings of
    every caption, cached in latents.pt; sets or captions added later are encoded on top."""
    out = torch.load(path("latents.pt")) if os.path.exists(path("latents.pt")) else {}
    todo = [s for s in sets if s not in out]
    if "emb" in out and set(all_captions()) <= set(out["emb"]) and not todo:
        return out
    out["emb"] = text_embeddings(te)
    specs = {"base": (21, N_IMAGES, "plain")}
    specs.update({a["stage"]: (a["data"], N_ADAPTER, a["style"]) for a in ADAPTERS.values()})
    for name in todo:
        seed, n, style = specs[name]
        x, caps = dataset(seed, n, style)
        z = torch.cat([vae.encode(x[i:i + 64]).latent_dist.mean for i in range(0, n, 64)]) * SCALING
        out[name] = (z, caps)
        print(f"[encode] {name}: {n} images")
    save_state("latents.pt", out)
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


def peft_lora(unet):
    """kohya's LoRA through PEFT: the UNet with LoRA layers (up = 0), their parameters, and the kohya state dict."""
    from golden.tiny import UNET_ATTN, kohya_from_peft, lora_modules, peft_inject
    u = peft_inject(copy.deepcopy(unet), UNET_ATTN, 4.0, 51)
    with torch.no_grad():  # kohya's initialisation: up = 0, so training starts from the base model
        for m in lora_modules(u).values():
            m.lora_B["default"].weight.zero_()
    for n, p in u.named_parameters():
        p.requires_grad_("lora_" in n)
    params = [p for n, p in u.named_parameters() if "lora_" in n]
    return u, params, lambda: kohya_from_peft(u, "lora_unet")


# The LyCORIS adapters' layers: UNET_ATTN less the cross-attention's to_k / to_v, which read only the text: adapted
# there (first tries, 500 and 1000 steps), the LoHa and the DoRA drew their pattern in blue and white whatever
# colours the prompt asked for.
LYCORIS_LAYERS = (r".*\.attentions\.\d+\.(proj_in|proj_out|transformer_blocks\.\d+\.(attn1\.to_(q|k|v|out\.0)|"
                  r"attn2\.to_(q|out\.0)|ff\.net\.(0\.proj|2)))$")


def lycoris_network(unet, algo):
    """LyCORIS's own network on LYCORIS_LAYERS, with kohya's key prefix lora_unet; LoHa or LoRA with DoRA's
    weight decomposition on the output axis (wd_on_out, LyCORIS's default since 3.2: dora_scale (O, 1[, 1, 1]))."""
    from lycoris.wrapper import LycorisNetwork
    LycorisNetwork.apply_preset({"target_module": [], "target_name": [LYCORIS_LAYERS], "module_algo_map": {},
                                 "name_algo_map": {}, "lora_prefix": "lora_unet", "enable_conv": True})
    u = copy.deepcopy(unet)
    for p in u.parameters():
        p.requires_grad_(False)
    net = LycorisNetwork(u, multiplier=1.0, lora_dim=4, conv_lora_dim=4, alpha=4, conv_alpha=4,
                         network_module="loha" if algo == "loha" else "lora", weight_decompose=algo == "dora",
                         wd_on_out=True)
    net.apply_to()
    return u, list(net.parameters()), lambda: {k: v.detach().clone() for k, v in net.state_dict().items()}


def stage_adapter(name, unet, lat):
    """Trains adapter `name` of ADAPTERS on its images with the base frozen; returns its kohya/LyCORIS state dict."""
    a = ADAPTERS[name]
    stage = a["stage"]
    torch.manual_seed(a["seed"] - 1)  # LyCORIS draws its initial factors here (PEFT's LoRA has its own seed)
    u, params, weights = peft_lora(unet) if a["algo"] == "lora" else lycoris_network(unet, a["algo"])
    ids = {id(p) for p in params}

    def f(sd):
        if sd is None:
            return {n: p.detach().clone() for n, p in u.named_parameters() if id(p) in ids}
        u.load_state_dict(sd, strict=False)
    if not os.path.exists(path(stage + ".done")):
        torch.manual_seed(a["seed"])
        u.train()
        z, caps = lat[stage]
        train_loop(stage, params, f, eps_step(u, z, caps, lat["emb"], BATCH[stage], a["drop"]), stage + ".pt")
        torch.save(f(None), path(stage + ".done"))
    f(torch.load(path(stage + ".done")))
    return weights()


# ----------------------------------------------------------------------------------------------
def export_model(unet, te, vae):
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


def export_adapter(name, weights):
    """models/demo/lora/<file>.safetensors, F16, with the kohya metadata a trainer writes (LyCORIS files as
    kohya's lycoris.kohya network module writes them: ss_network_args names the algorithm)."""
    from golden.common import save_file
    a = ADAPTERS[name]
    n3 = N_ADAPTER // 3
    tags = {f"10_{a['trigger']}": {a["trigger"]: N_ADAPTER, "circle": n3, "square": n3, "triangle": n3}}
    m = {"ss_network_module": "networks.lora", "ss_base_model_version": "sd_v1", "ss_network_dim": "4",
         "ss_network_alpha": "4.0", "ss_output_name": a["file"], "ss_tag_frequency": json.dumps(tags),
         "ss_steps": str(STEPS[a["stage"]]), "source": "scripts/train_demo.py"}
    if a["algo"] != "lora":
        m["ss_network_module"] = "lycoris.kohya"
        m["ss_network_args"] = json.dumps({"algo": "loha", "conv_dim": "4", "conv_alpha": "4"} if a["algo"] == "loha"
                                          else {"algo": "lora", "dora_wd": "True", "conv_dim": "4", "conv_alpha": "4"})
    d = os.path.join(ROOT, OUT_LORA_DIR)
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, a["file"] + ".safetensors")
    save_file({k: v.half() for k, v in weights.items()}, p, m)
    print(f"wrote {OUT_LORA_DIR}/{a['file']}.safetensors ({os.path.getsize(p)} bytes, {len(weights)} tensors)")


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
    global WORK
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", default="all",
                    choices=["all", "vae", "encode", "unet", "adapters", "export", "report"])
    ap.add_argument("--adapters", default=",".join(ADAPTERS), help="which of " + ", ".join(ADAPTERS))
    ap.add_argument("--base", default="train", choices=["train", "checkpoint"],
                    help="train the base here, or train adapters on the shipped " + OUT_MODEL)
    ap.add_argument("--unet-steps", type=int, default=STEPS["unet"])
    args = ap.parse_args()
    STEPS["unet"] = args.unet_steps
    names = args.adapters.split(",")
    for n in names:
        if n not in ADAPTERS:
            ap.error(f"unknown adapter {n!r}")
    if args.base == "checkpoint":
        WORK = os.path.join(WORK, "from-checkpoint")
    logging.disable(logging.WARNING)
    if args.stage == "report":
        return loss_table()
    os.makedirs(WORK, exist_ok=True)
    torch.manual_seed(0)
    if args.base == "checkpoint":
        from golden.model_pipeline import components
        unet, vae, te = components(ROOT, OUT_MODEL)
        sets = []
    else:
        unet, te, vae = build()
        stage_vae(vae)
        sets = ["base"]
    for p in te.parameters():
        p.requires_grad_(False)
    if args.stage == "vae":
        return
    lat = stage_encode(vae, te, sets + [ADAPTERS[n]["stage"] for n in names])
    if args.stage == "encode":
        return
    if args.base == "train":
        stage_unet(unet, lat)
    if args.stage == "unet":
        return
    weights = {n: stage_adapter(n, unet, lat) for n in names}
    if args.stage == "adapters":
        return
    if args.base == "train":
        export_model(unet, te, vae)
    for n in names:
        export_adapter(n, weights[n])


if __name__ == "__main__":
    main()
