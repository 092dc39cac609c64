"""Fixtures of `lorafuse extract` (tests/data/extract/): the Eckart-Young optimum and kohya's rank policies.

The model, base.safetensors (F32, SD1 layout keys), has one module of each layer kind:
  linear   model.diffusion_model.input_blocks.1.1.transformer_blocks.0.ff.net.2    (48, 64)
  conv1x1  model.diffusion_model.input_blocks.1.1.proj_in                          (40, 32, 1, 1)
  conv3x3  model.diffusion_model.input_blocks.1.0.in_layers.2                      (24, 16, 3, 3)
  te       cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1        (64, 48)
with biases and a GroupNorm (input_blocks.1.1.norm). Their kohya names are the SD1 ones
(lora_unet_<diffusers path>, lora_te_<HF path>).

Inputs (adapters on all four modules, kohya names, F32; LyCORIS 3.3.0 module classes, random factors):
  lora_r8  LoCon rank 8, alpha 4, strength 0.8      (extracted at rank 4: a real truncation)
  lora_r4  LoCon rank 4, alpha 2                    (extracted at rank >= 4: the round trip)
  loha     LoHa rank 4, alpha 2                     (dW of rank <= 16)
  lokr     LoKr w1 full, w2 rank 2, alpha 1
  dora     LoCon rank 4 + DoRA on the output axis   (full-rank dW)
  oft      Diag-OFT, block size 8 (3 on the 24-row conv), constraint 0.01 (full-rank dW)
  mix      lora_r8 @ 0.7 + loha @ 0.5 + oft @ 1.0   (P5: each against W0, summed)
  tuned    tuned.safetensors = base + a rank-6 change + noise on the four modules, plus a changed norm
           and a changed fc1 bias (which a LoRA cannot carry)
dW per module, the reference: LyCORIS's own merged weight minus W0 (ly_expected of adapters.py: merge
path for LoCon and OFT, forward path for LoHa/LoKr (gamma once, T1), P2 for DoRA), computed in float64
from the f32 file values and rounded once to f32 (OFT: LyCORIS inverts in f32, so W' is f32 and only
W' - W0 is taken in float64); for `tuned`, tuned - base in f32 (what lorafuse does).

<case>.expect.safetensors holds per module `dw.<kohya name>` (F32, the weight's shape) and `s.<kohya
name>` (F64, numpy.linalg.svd of dw flattened to (out, in*kh*kw), in float64), and the metadata key
`extract`, JSON:
  inputs    [[file, strength], ...]   or  tuned: file
  modules   {name: {key, opt: {R: sqrt(sum_{i>=R} s_i^2)}}}   numpy's best rank-R residual, R = 1, 2, 4, 8
  policies  [{policy, param, cap, ranks: {name: r}}]  kohya's networks/resize_lora.py rank_resize
            (index_sv_ratio / index_sv_fro / index_sv_cumulative, MIN_SV, the cap), re-implemented here
            from its formulas with torch.searchsorted as it does; every decision is checked to sit at
            least 1e-5 away from its threshold, so that f32 noise in lorafuse's dW cannot flip it.
"""
import json
import os

import numpy as np
import torch

from lycoris.modules import DiagOFTModule, LoConModule, LohaModule, LokrModule

from .adapters import ly_expected, make_layer, randomize
from .common import gen, save_file

LAYERS = [
    ("linear", "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.ff.net.2",
     "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_ff_net_2", (48, 64)),
    ("conv1x1", "model.diffusion_model.input_blocks.1.1.proj_in",
     "lora_unet_down_blocks_0_attentions_0_proj_in", (40, 32, 1, 1)),
    ("conv3x3", "model.diffusion_model.input_blocks.1.0.in_layers.2",
     "lora_unet_down_blocks_0_resnets_0_conv1", (24, 16, 3, 3)),
    ("te", "cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1",
     "lora_te_text_model_encoder_layers_0_mlp_fc1", (64, 48)),
]
NORM = "model.diffusion_model.input_blocks.1.1.norm"

ADAPTERS = {  # name: (class, kwargs, ly_expected mode, seed)
    "lora_r8": (LoConModule, dict(lora_dim=8, alpha=4.0), "merge", 101),
    "lora_r4": (LoConModule, dict(lora_dim=4, alpha=2.0), "merge", 102),
    "loha": (LohaModule, dict(lora_dim=4, alpha=2.0), "forward", 103),
    "lokr": (LokrModule, dict(lora_dim=2, alpha=1.0), "forward", 104),
    "dora": (LoConModule, dict(lora_dim=4, alpha=2.0, weight_decompose=True, wd_on_out=True), "dora", 105),
    "oft": (DiagOFTModule, dict(lora_dim=8, constraint=0.01), "merge", 106),
}
CASES = {  # name: [(adapter, strength), ...]
    "lora_r8": [("lora_r8", 0.8)],
    "lora_r4": [("lora_r4", 1.0)],
    "loha": [("loha", 1.0)],
    "lokr": [("lokr", 1.0)],
    "dora": [("dora", 1.0)],
    "oft": [("oft", 1.0)],
    "mix": [("lora_r8", 0.7), ("loha", 0.5), ("oft", 1.0)],
}
RANKS = [1, 2, 4, 8]
POLICIES = [("sv_ratio", 2.0, 16), ("sv_ratio", 20.0, 16), ("sv_fro", 0.5, 16), ("sv_fro", 0.9, 16),
            ("sv_fro", 0.99, 8), ("sv_cumulative", 0.5, 16), ("sv_cumulative", 0.9, 16)]
MIN_SV = 1e-6
MARGIN = 1e-5


def base_model():
    t = {}
    for i, (kind, key, _, shape) in enumerate(LAYERS):
        g = gen(4000 + i)
        t[key + ".weight"] = torch.randn(shape, generator=g) * 0.1
        t[key + ".bias"] = torch.randn(shape[0], generator=g) * 0.1
    g = gen(4100)
    t[NORM + ".weight"] = 1.0 + torch.randn(32, generator=g) * 0.1
    t[NORM + ".bias"] = torch.randn(32, generator=g) * 0.1
    return t


def layer_kind(kind):
    return "linear" if kind == "te" else kind


def build_adapter(name, base):
    """One adapter file over the four modules; returns (state dict, {kohya name: dW(s) function})."""
    cls, kwargs, mode, seed = ADAPTERS[name]
    sd, deltas = {}, {}
    for i, (kind, key, kname, _) in enumerate(LAYERS):
        W0, b0 = base[key + ".weight"], base[key + ".bias"]
        mod = cls(kname, make_layer(layer_kind(kind), W0=W0, b0=b0), 1.0, **kwargs)
        randomize(mod, seed * 10 + i)
        for k, v in mod.state_dict().items():
            sd[f"{kname}.{k}"] = v.detach().clone().float()
        f64 = cls is not DiagOFTModule  # LyCORIS's OFT inverts in f32 whatever the module's dtype
        if f64:
            mod = mod.double()
            mod.org_module[0].double()

        def delta(s, mod=mod, W0=W0, kind=kind, f64=f64):
            W, _ = ly_expected(mod, mode, s, W0.double() if f64 else W0, layer_kind(kind))
            return (W.double() - W0.double()).float()
        deltas[kname] = delta
    return sd, deltas


def kohya_rank(S, policy, param, cap):
    """networks/resize_lora.py rank_resize: index by the policy, +1, MIN_SV, the cap."""
    S = torch.tensor(S, dtype=torch.float64)
    if policy == "sv_ratio":
        index = int(torch.sum(S > S[0] / param).item()) - 1
    elif policy == "sv_cumulative":
        index = int(torch.searchsorted(torch.cumsum(S, dim=0) / float(torch.sum(S)), param))
    elif policy == "sv_fro":
        sq = S.pow(2)
        index = int(torch.searchsorted(torch.cumsum(sq, dim=0) / float(torch.sum(sq)), param ** 2))
    else:
        raise ValueError(policy)
    rank = max(0, min(index, len(S) - 1)) + 1
    if S[0] <= MIN_SV:
        return 1
    return min(rank, cap)


def margin(S, policy, param):
    """How far the policy's decision is from flipping (relative)."""
    S = np.asarray(S, dtype=np.float64)
    if policy == "sv_ratio":
        return float(np.min(np.abs(S - S[0] / param)) / S[0])
    if policy == "sv_cumulative":
        return float(np.min(np.abs(np.cumsum(S) / S.sum() - param)))
    sq = S * S
    return float(np.min(np.abs(np.cumsum(sq) / sq.sum() - param ** 2)))


def expect(outdir, case, deltas, source):
    """deltas: {kohya name: (key, dW f32 tensor)}."""
    tensors, modules, pol = {}, {}, []
    spectra = {}
    for kname, (key, dw) in deltas.items():
        m = dw.reshape(dw.shape[0], -1).double().numpy()
        S = np.linalg.svd(m, compute_uv=False)
        spectra[kname] = S
        tensors["dw." + kname] = dw.contiguous()
        tensors["s." + kname] = torch.tensor(S, dtype=torch.float64)
        modules[kname] = {"key": key, "opt": {str(r): float(np.sqrt(np.sum(S[r:] ** 2))) for r in RANKS}}
    for policy, param, cap in POLICIES:
        ranks = {}
        for kname, S in spectra.items():
            mg = margin(S, policy, param)
            assert mg >= MARGIN, f"{case} {kname}: {policy} {param} is {mg:g} from a threshold; pick another"
            ranks[kname] = kohya_rank(S, policy, param, cap)
        pol.append({"policy": policy, "param": param, "cap": cap, "ranks": ranks})
    meta = dict(source, modules=modules, policies=pol)
    save_file(tensors, os.path.join(outdir, f"{case}.expect.safetensors"),
              {"extract": json.dumps(meta, sort_keys=True)})
    print(f"  wrote tests/data/extract/{case}.expect.safetensors: " +
          ", ".join(f"{k.split('_')[1]}:{','.join(str(p['ranks'][k]) for p in pol)}" for k in spectra))


def run(root):
    outdir = os.path.join(root, "tests", "data", "extract")
    os.makedirs(outdir, exist_ok=True)
    base = base_model()
    save_file(base, os.path.join(outdir, "base.safetensors"),
              {"source": "scripts/golden/extract.py: one module per layer kind, SD1 layout keys"})

    built = {}
    for name in ADAPTERS:
        sd, deltas = build_adapter(name, base)
        built[name] = deltas
        save_file(sd, os.path.join(outdir, f"{name}.safetensors"))
    for case, parts in CASES.items():
        deltas = {}
        for kind, key, kname, _ in LAYERS:
            dw = None
            for a, s in parts:
                d = built[a][kname](s).double()
                dw = d if dw is None else dw + d
            deltas[kname] = (key + ".weight", dw.float())
        src = {"inputs": [[f"{a}.safetensors", s] for a, s in parts]}
        expect(outdir, case, deltas, src)

    # a fine-tune: a rank-6 change plus noise on the four modules, a changed norm and fc1 bias
    tuned = {k: v.clone() for k, v in base.items()}
    deltas = {}
    for i, (kind, key, kname, shape) in enumerate(LAYERS):
        g = gen(4200 + i)
        O, K = shape[0], int(np.prod(shape[1:]))
        change = (torch.randn(O, 6, generator=g) @ torch.randn(6, K, generator=g)) * 0.004 \
            + torch.randn(O, K, generator=g) * 0.0005
        tuned[key + ".weight"] = (base[key + ".weight"] + change.reshape(shape)).float()
        dw = tuned[key + ".weight"].numpy() - base[key + ".weight"].numpy()  # f32 - f32, as lorafuse
        deltas[kname] = (key + ".weight", torch.from_numpy(dw.copy()))
    tuned[NORM + ".weight"] = tuned[NORM + ".weight"] * 1.01
    te_bias = LAYERS[3][1] + ".bias"
    tuned[te_bias] = tuned[te_bias] + 0.01
    save_file(tuned, os.path.join(outdir, "tuned.safetensors"),
              {"source": "scripts/golden/extract.py: base + rank-6 change + noise; norm and fc1 bias changed"})
    expect(outdir, "tuned", deltas, {"tuned": "tuned.safetensors"})
