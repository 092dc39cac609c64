"""Goldens of the random sources and the samplers -> tests/data/sampler/.

Oracles: torch 1.13 (CPU generator, torch.randn float32 on x86 / AVX2) and diffusers 0.30.3's schedulers.
A1111's NV source (modules/rng_philox.py) is not installable here: `philox_randn` below re-derives it
from the Philox4x32-10 specification (Salmon et al. 2011: round = two 32x32->64 multiplies by
0xD2511F53 / 0xCD9E8D57, key bumped by 0x9E3779B9 / 0xBB67AE85 between the 10 rounds) with the layout
A1111 uses (key = seed as (low, high) words, counter = (offset, 0, index, 0), offset + 1 per call,
Box-Muller on words 0 and 1 keeping r*sin, float32 constants 2.3283064e-10 and 2.3283064e-10*6.2831855
promoted to float64 by numpy). It is written here in numpy, no copy of A1111's code.

Files:
  rng.safetensors      torch.s<SEED>.c<K> (F32, n_K): the K-th successive torch.randn(n_K) on
                       torch.Generator().manual_seed(SEED), calls per metadata torch_calls (n,n,...),
                       seeds per torch_seeds; nv.s<SEED>.c<K> likewise for the NV source (nv_calls, nv_seeds).
  tables.safetensors   alphas_cumprod (F32, 1000); <case>.timesteps (F32), <case>.sigmas (F32),
                       <case>.init (F32, 1): scheduler.set_timesteps(N) of every sampler x spacing x N, case =
                       <kind>[_karras].<spacing>.<N>; metadata cases = comma list. DDIM has no sigmas.
  loops.safetensors    <case> (F32, LOOP_SHAPE): final latents of a full diffusers loop with the fake
                       denoiser fake() on torch.Generator().manual_seed(seed) (initial latent, then the
                       generator passed to scheduler.step as StableDiffusionPipeline does);
                       metadata cases = "name:kind:karras:spacing:pred:N:seed:G;..."; G = 1: one generator,
                       G = batch: generator k = manual_seed(seed + k) per image (diffusers' generator list).
"""
import inspect
import os

import numpy as np
import torch

from .common import save_file

TORCH_SEEDS = [0, 1, 42, 123456789, 2**32 + 5, 2**63 + 11]
TORCH_CALLS = [16384, 7, 1, 16, 33, 5, 100, 15, 17, 2, 512, 31, 32, 3]
NV_SEEDS = [0, 1, 42, 4294967295, 2**33 + 3]
NV_CALLS = [16384, 7, 1, 64, 513]
SMALL_CALLS = [1024, 7, 1, 16, 33, 5, 100, 15, 17, 2, 512, 31, 32, 3]

KINDS = ["euler", "euler_a", "ddim", "dpmpp_2m", "heun", "dpmpp_2m_sde", "unipc"]
KARRAS_OK = {"euler", "dpmpp_2m", "heun", "dpmpp_2m_sde", "unipc"}
SPACINGS = ["leading", "trailing", "linspace"]
TABLE_STEPS = [1, 2, 7, 10, 20, 30, 50]
LOOP_SHAPE = (2, 4, 8, 8)


# ---- NV (A1111 Philox) ----------------------------------------------------------------------------

M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
W0, W1 = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)


def philox_randn(seed, offset, n):
    c0 = np.full(n, offset & 0xffffffff, dtype=np.uint32)
    c1 = np.zeros(n, dtype=np.uint32)
    c2 = np.arange(n, dtype=np.uint32)
    c3 = np.zeros(n, dtype=np.uint32)
    k0 = np.uint32(seed & 0xffffffff)
    k1 = np.uint32((seed >> 32) & 0xffffffff)
    with np.errstate(over="ignore"):
        for r in range(10):
            p0 = c0.astype(np.uint64) * M0
            p1 = c2.astype(np.uint64) * M1
            n0 = (p1 >> np.uint64(32)).astype(np.uint32) ^ c1 ^ k0
            n1 = (p1 & np.uint64(0xffffffff)).astype(np.uint32)
            n2 = (p0 >> np.uint64(32)).astype(np.uint32) ^ c3 ^ k1
            n3 = (p0 & np.uint64(0xffffffff)).astype(np.uint32)
            c0, c1, c2, c3 = n0, n1, n2, n3
            k0 = np.uint32(k0 + W0)
            k1 = np.uint32(k1 + W1)
    inv = np.float64(np.float32(2.3283064e-10))
    inv2pi = np.float64(np.float32(2.3283064e-10 * 6.2831855))
    u = c0.astype(np.float64) * inv + np.float64(np.float32(2.3283064e-10) / np.float32(2))
    v = c1.astype(np.float64) * inv2pi + np.float64(np.float32(2.3283064e-10 * 6.2831855) / np.float32(2))
    s = np.sqrt(-2.0 * np.log(u))
    return (s * np.sin(v)).astype(np.float32)


def rng_goldens(out):
    t = {}
    for seed in TORCH_SEEDS:
        g = torch.Generator().manual_seed(seed)
        calls = TORCH_CALLS if seed == 42 else SMALL_CALLS
        for k, n in enumerate(calls):
            t[f"torch.s{seed}.c{k}"] = torch.randn(n, generator=g)
    # a (1, 4, 64, 64) latent in one call equals the flat call (shape is irrelevant to torch.randn)
    g = torch.Generator().manual_seed(42)
    assert torch.equal(torch.randn((1, 4, 64, 64), generator=g).flatten(), t["torch.s42.c0"])
    for seed in NV_SEEDS:
        for k, n in enumerate(NV_CALLS if seed == 42 else NV_CALLS[1:]):
            t[f"nv.s{seed}.c{k}"] = torch.from_numpy(philox_randn(seed, k, n))
    meta = {"torch_seeds": ",".join(map(str, TORCH_SEEDS)), "torch_calls_42": ",".join(map(str, TORCH_CALLS)),
            "torch_calls": ",".join(map(str, SMALL_CALLS)), "nv_seeds": ",".join(map(str, NV_SEEDS)),
            "nv_calls_42": ",".join(map(str, NV_CALLS)), "nv_calls": ",".join(map(str, NV_CALLS[1:])),
            "source": f"torch {torch.__version__} CPU; NV: numpy Philox4x32-10 transcription (A1111 layout)"}
    save_file(t, os.path.join(out, "rng.safetensors"), meta)


# ---- schedulers ---------------------------------------------------------------------------------

def make_scheduler(kind, karras, spacing, pred):
    import diffusers as d
    base = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                steps_offset=1, timestep_spacing=spacing, prediction_type=pred)
    if karras:
        base["use_karras_sigmas"] = True
    if kind == "euler":
        return d.EulerDiscreteScheduler(**base)
    if kind == "euler_a":
        return d.EulerAncestralDiscreteScheduler(**base)
    if kind == "ddim":
        return d.DDIMScheduler(clip_sample=False, set_alpha_to_one=False, **base)
    if kind == "dpmpp_2m":
        return d.DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2, **base)
    if kind == "dpmpp_2m_sde":
        return d.DPMSolverMultistepScheduler(algorithm_type="sde-dpmsolver++", solver_order=2, **base)
    if kind == "heun":
        return d.HeunDiscreteScheduler(**base)
    if kind == "unipc":
        return d.UniPCMultistepScheduler(**base)
    raise ValueError(kind)


def case_name(kind, karras, spacing, n):
    return f"{kind}{'_karras' if karras else ''}.{spacing}.{n}"


def table_goldens(out):
    t, cases = {}, []
    s = make_scheduler("euler", False, "leading", "epsilon")
    t["alphas_cumprod"] = s.alphas_cumprod.to(torch.float32)
    for kind in KINDS:
        for karras in ([False, True] if kind in KARRAS_OK else [False]):
            for spacing in SPACINGS:
                for n in TABLE_STEPS:
                    s = make_scheduler(kind, karras, spacing, "epsilon")
                    s.set_timesteps(n)
                    name = case_name(kind, karras, spacing, n)
                    cases.append(name)
                    t[name + ".timesteps"] = s.timesteps.to(torch.float32)
                    if kind != "ddim":
                        t[name + ".sigmas"] = s.sigmas.to(torch.float32)
                    t[name + ".init"] = torch.tensor([float(s.init_noise_sigma)], dtype=torch.float32)
    save_file(t, os.path.join(out, "tables.safetensors"), {"cases": ",".join(cases)})


def fake(x, t):
    """The deterministic 'model' of the loop tests; tests/sample/test_sampler.c computes the same thing:
    out[i] = f32(0.1 * x[i] + 0.2 * cos(0.01 * t + 0.001 * i)), in float64, i = flat index."""
    idx = torch.arange(x.numel(), dtype=torch.float64).reshape(x.shape)
    return (0.1 * x.double() + 0.2 * torch.cos(0.01 * float(t) + 0.001 * idx)).float()


LOOP_CASES = [
    # name, kind, karras, spacing, pred, N, seed
    ("euler_eps", "euler", 0, "leading", "epsilon", 10, 1234),
    ("euler_lin", "euler", 0, "linspace", "epsilon", 10, 7),
    ("euler_v", "euler", 0, "leading", "v_prediction", 10, 99),
    ("euler_trail_v", "euler", 0, "trailing", "v_prediction", 12, 5),
    ("euler_karras", "euler", 1, "leading", "epsilon", 10, 3),
    ("euler_a_eps", "euler_a", 0, "leading", "epsilon", 10, 1234),
    ("euler_a_lin_v", "euler_a", 0, "linspace", "v_prediction", 10, 77),
    ("ddim_eps", "ddim", 0, "leading", "epsilon", 10, 1234),
    ("ddim_trail_v", "ddim", 0, "trailing", "v_prediction", 10, 8),
    ("dpmpp_2m_eps", "dpmpp_2m", 0, "leading", "epsilon", 10, 1234),
    ("dpmpp_2m_v", "dpmpp_2m", 0, "leading", "v_prediction", 20, 21),
    ("dpmpp_2m_lin", "dpmpp_2m", 0, "linspace", "epsilon", 20, 22),
    ("dpmpp_2m_karras", "dpmpp_2m", 1, "leading", "epsilon", 10, 1234),
    ("dpmpp_2m_karras_v", "dpmpp_2m", 1, "trailing", "v_prediction", 20, 23),
    ("heun_eps", "heun", 0, "leading", "epsilon", 10, 1234),
    ("heun_karras", "heun", 1, "linspace", "epsilon", 8, 4),
    ("heun_v", "heun", 0, "trailing", "v_prediction", 6, 6),
    ("dpmpp_2m_sde_karras", "dpmpp_2m_sde", 1, "leading", "epsilon", 10, 1234),
    ("dpmpp_2m_sde_lin", "dpmpp_2m_sde", 0, "linspace", "epsilon", 16, 31),
    ("dpmpp_2m_sde_karras_v", "dpmpp_2m_sde", 1, "leading", "v_prediction", 20, 32),
    ("unipc_eps", "unipc", 0, "leading", "epsilon", 10, 1234),
    ("unipc_lin", "unipc", 0, "linspace", "epsilon", 20, 41),
    ("unipc_karras", "unipc", 1, "leading", "epsilon", 10, 42),
    ("unipc_v", "unipc", 0, "trailing", "v_prediction", 15, 43),
]
# one generator per image (A1111-style seeds seed + k; diffusers with a list of generators)
PER_IMAGE_CASES = [
    ("euler_a_per_image", "euler_a", 0, "linspace", "epsilon", 10, 500),
    ("dpmpp_2m_sde_karras_per_image", "dpmpp_2m_sde", 1, "leading", "epsilon", 10, 600),
]


def run_loop(kind, karras, spacing, pred, n, seed, per_image=False):
    from diffusers.utils.torch_utils import randn_tensor
    s = make_scheduler(kind, karras, spacing, pred)
    s.set_timesteps(n)
    if per_image:
        g = [torch.Generator().manual_seed(seed + k) for k in range(LOOP_SHAPE[0])]
    else:
        g = torch.Generator().manual_seed(seed)
    x = randn_tensor(LOOP_SHAPE, generator=g, dtype=torch.float32) * s.init_noise_sigma
    takes_gen = "generator" in inspect.signature(s.step).parameters
    for t in s.timesteps:
        inp = s.scale_model_input(x, t)
        out = fake(inp, t)
        kw = {"generator": g} if takes_gen else {}
        x = s.step(out, t, x, **kw).prev_sample
    return x


def loop_goldens(out):
    t, meta = {}, []
    for name, kind, karras, spacing, pred, n, seed in LOOP_CASES:
        t[name] = run_loop(kind, karras, spacing, pred, n, seed)
        meta.append(f"{name}:{kind}:{karras}:{spacing}:{pred}:{n}:{seed}:1")
    for name, kind, karras, spacing, pred, n, seed in PER_IMAGE_CASES:
        t[name] = run_loop(kind, karras, spacing, pred, n, seed, per_image=True)
        meta.append(f"{name}:{kind}:{karras}:{spacing}:{pred}:{n}:{seed}:{LOOP_SHAPE[0]}")
    save_file(t, os.path.join(out, "loops.safetensors"),
              {"cases": ";".join(meta), "shape": ",".join(map(str, LOOP_SHAPE))})


def run(root):
    out = os.path.join(root, "tests", "data", "sampler")
    os.makedirs(out, exist_ok=True)
    print("sampler goldens -> tests/data/sampler/")
    rng_goldens(out)
    table_goldens(out)
    loop_goldens(out)
    for f in sorted(os.listdir(out)):
        print(f"  wrote tests/data/sampler/{f} ({os.path.getsize(os.path.join(out, f))} bytes)")
