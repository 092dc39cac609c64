"""Per-algorithm golden fixtures (tests/data/golden/), produced with the reference code.

Every LyCORIS case is built from a LyCORIS 3.3.0 module class (lycoris.modules.*) wrapped around a
small torch layer, its parameters random-initialised from a fixed seed, saved as LyCORIS saves it
(module.state_dict() -> every tensor cast to the save dtype, as LycorisNetwork.save_weights does;
keys prefixed "lf_layer."), then re-read from the file values and merged with LyCORIS's own code.

Oracle per algorithm (the `source` metadata of each expect file says which one applied):
  * "merge":  LyCORIS module.get_merged_weight(multiplier=s)      (LoCon/LoRA, GLoRA, Diag-OFT, BOFT,
              IA3, full, norm).
  * "forward": LoHa / LoKr.  LyCORIS's merge path applies gamma^2 (docs/adapters.md T1); its forward path
              applies gamma once (pinned P1), so the expectation is the forward-path weight
              W0 + s * (module.get_weight(shape) * module.scalar), exactly the lines of
              LohaModule.forward / LokrModule.forward.
  * "dora":   pinned P2: W(s) = W0 + s * (D1 - W0), D1 = LyCORIS's DoRA weight at multiplier 1
              (apply_weight_decompose(W0 + gamma*dW, 1), gamma once as in its forward pass).
  * every LyCORIS expectation is cross-checked against the module's real forward(): the patched
    weight is read back from forward() on one-hot inputs at multiplier s (for DoRA only at s = 1,
    where LyCORIS's own strength semantics coincide with P2) and must agree to 2e-5.
  * "formula": legacy `oft_diag` (LyCORIS <= 2.0.x; no LyCORIS class left): W'_k = (I + s(R-I))^T W_k
              per block (docs/adapters.md 'OFT'), computed in torch here.  The oracle is the formula.
  * PEFT cases: peft LoraConfig on a one-layer torch model; file = get_peft_model_state_dict() with
    the "base_model.model." prefix replaced by "lf_layer" ... and an `lf_layer.alpha` tensor holding
    lora_alpha (that is how kohya/diffusers conversions carry alpha; PEFT itself keeps it in its
    config).  Expectation = merge_and_unload() of a model with scaling multiplied by s (for LoRA the
    PEFT scale is lora_alpha/r * s).  PEFT DoRA: only s = 1 is written (PEFT puts s inside the
    norm, docs/adapters.md 'DoRA' / T3, which is not P2).

Not produced / deviations (documented):
  * GLoRA old layout (LyCORIS <= 2.x): LyCORIS 3.3.0 can only write the new layout; not generated.
  * Diag-OFT / BOFT with `rescale` ("merge_rescale"): LyCORIS applies the full rescale at every strength,
    so its s = 0 would be rescale*W0. lorafuse requires strength 0 to leave W0 untouched (and a strength
    schedule to be continuous), so the rescale is interpolated like every other factor:
    W(s) = (1 + s*(rescale - 1)) * LyCORIS_merged(s, rescale = 1). It equals LyCORIS exactly at s = 1
    (cross-checked against forward() there); the rotation part at every s is LyCORIS's own merge.
  * IA3 `on_input` is written as F32 (save_weights casts every tensor to the save dtype); LyCORIS's own
    loader ignores on_input (builds an output-side module), so the built module is used as the oracle.
  * full: LyCORIS 3.3.0 FullModule keeps org_bias as a list and its merge crashes with a bias; the list
    is unwrapped before calling its merge code.
  * Conv 3x3 cases use a 24x16x3x3 weight (not 40x32) to keep the fixtures under ~3 MB.
  * Files are written with our own byte-deterministic safetensors writer (common.save_file);
    safetensors' save_file orders metadata differently on every run.
"""
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from lycoris.modules import (
    ButterflyOFTModule,
    DiagOFTModule,
    FullModule,
    GLoRAModule,
    IA3Module,
    LoConModule,
    LohaModule,
    LokrModule,
    NormModule,
)

from .common import Writer, gen, rnd

PFX = "lf_layer"
STRENGTHS = [1.0, 0.5, 0.0]


# ----------------------------------------------------------------------------------------------
# base layers: one fixed W0/b0 per layer kind, shared by every case (multi-adapter cases need it)
# ----------------------------------------------------------------------------------------------
_BASE = {}


def base_tensors(layer):
    if layer not in _BASE:
        g = gen(1000 + ["linear", "conv1x1", "conv3x3", "layernorm", "groupnorm"].index(layer))
        if layer == "linear":
            shape, bshape = (48, 64), (48,)
        elif layer == "conv1x1":
            shape, bshape = (40, 32, 1, 1), (40,)
        elif layer == "conv3x3":
            shape, bshape = (24, 16, 3, 3), (24,)
        elif layer == "layernorm":
            shape, bshape = (48,), (48,)
        else:
            shape, bshape = (32,), (32,)
        W = torch.randn(shape, generator=g) * 0.1
        b = torch.randn(bshape, generator=g) * 0.1
        if layer in ("layernorm", "groupnorm"):
            W = W + 1.0
        _BASE[layer] = (W, b)
    return _BASE[layer]


def make_layer(layer, W0=None, b0=None):
    W, b = base_tensors(layer)
    W = W if W0 is None else W0
    b = b if b0 is None else b0
    if layer == "linear":
        m = nn.Linear(W.shape[1], W.shape[0])
    elif layer == "conv1x1":
        m = nn.Conv2d(W.shape[1], W.shape[0], 1)
    elif layer == "conv3x3":
        m = nn.Conv2d(W.shape[1], W.shape[0], 3, padding=1)
    elif layer == "layernorm":
        m = nn.LayerNorm(W.shape[0])
    else:
        m = nn.GroupNorm(4, W.shape[0])
    with torch.no_grad():
        m.weight.copy_(W.float())
        m.bias.copy_(b.float())
    m.requires_grad_(False)
    return m


def weight_from_forward(fwd, layer, W_shape, b0):
    """Read the effective weight back from a module's forward(): one-hot inputs."""
    with torch.no_grad():
        if layer == "linear":
            n = W_shape[1]
            out = fwd(torch.eye(n))
            return (out - b0).t().contiguous()
        if layer.startswith("conv"):
            O, I, kh, kw = W_shape
            x = torch.zeros(I * kh * kw, I, kh, kw)
            idx = 0
            for i in range(I):
                for y in range(kh):
                    for xx in range(kw):
                        x[idx, i, y, xx] = 1.0
                        idx += 1
            out = fwd(x)[:, :, kh // 2, kw // 2]  # padding (k-1)/2: centre output sees the whole input
            return (out - b0).t().reshape(O, I, kh, kw).contiguous()
    raise ValueError(layer)


# ----------------------------------------------------------------------------------------------
# LyCORIS cases
# ----------------------------------------------------------------------------------------------
def randomize(mod, seed, std=0.07):
    g = gen(seed)
    with torch.no_grad():
        for name, p in mod.named_parameters():
            if name == "dora_scale":
                p.mul_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name == "rescale":
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name == "scalar":
                continue
            else:
                p.copy_(torch.randn(p.shape, generator=g) * std)


def file_sd(mod, save_dtype=torch.float32):
    sd = {}
    for k, v in mod.state_dict().items():
        sd[f"{PFX}.{k}"] = v.detach().clone().cpu().to(save_dtype)
    return sd


def load_into(mod, sd):
    """Put the file's (possibly rounded) values back into the module (fp32)."""
    local = {}
    for k, v in sd.items():
        kk = k[len(PFX) + 1:]
        local[kk] = v.float() if v.is_floating_point() else v
    with torch.no_grad():
        own = dict(mod.named_parameters())
        own.update(dict(mod.named_buffers()))
        for kk, v in local.items():
            if kk == "alpha" or kk == "on_input":
                continue  # scale is taken from the constructor argument, which equals the file value
            if kk == "lora_up.weight":
                own["lora_up.weight"].copy_(v)
            elif kk == "lora_down.weight":
                own["lora_down.weight"].copy_(v)
            elif kk in own:
                own[kk].copy_(v)
            elif kk.endswith(".weight") and kk in own:
                own[kk].copy_(v)
            else:
                raise KeyError(kk)


def ly_expected(mod, mode, s, W0, layer):
    """Expected patched weight (fp32) at strength s; see the module docstring."""
    shape = tuple(W0.shape)
    with torch.no_grad():
        if mode == "merge":
            W, b = mod.get_merged_weight(multiplier=s, shape=shape, device=torch.device("cpu"))
            return W.float().clone(), (None if b is None else b.float().clone())
        if mode == "merge_rescale":  # lorafuse interpolates rescale by s too, see the module docstring
            r = mod.rescale.detach().clone()
            mod.rescale.data.fill_(1.0)
            W, b = mod.get_merged_weight(multiplier=s, shape=shape, device=torch.device("cpu"))
            mod.rescale.data.copy_(r)
            rs = (1.0 + s * (r.float() - 1.0)).reshape(r.shape[0], *([1] * (len(shape) - 1)))
            return (rs * W.float()).clone(), (None if b is None else b.float().clone())
        if mode == "forward":  # LoHa/LoKr forward path: gamma once (T1 correction)
            d = mod.get_weight(mod.shape).float() * mod.scalar
            return (W0 + d.reshape(shape) * s), None
        if mode == "dora":
            if isinstance(mod, LoConModule):
                d = mod.make_weight(torch.device("cpu")) * mod.scale
            else:
                d = mod.get_weight(mod.shape) * mod.scalar
            D1 = mod.apply_weight_decompose(W0 + d.reshape(shape).float(), 1.0)
            return (W0 + s * (D1 - W0)), None
    raise ValueError(mode)


def forward_check(mod, mode, s, W_exp, b_exp, layer, W0, b0, name):
    if mode in ("dora", "merge_rescale") and s != 1.0:
        return
    mod.multiplier = s
    Wf = weight_from_forward(mod.forward, layer, tuple(W0.shape), b0 if b_exp is None else b_exp)
    err = (Wf - W_exp).abs().max().item()
    assert err < 2e-5, f"{name}: LyCORIS forward disagrees with expectation at s={s}: {err}"


def ly_case(w, name, cls, layer, mode, kwargs, seed, *, algo, src_extra="",
            save_dtype=torch.float32, edit=None, apply_to=False, strengths=STRENGTHS):
    W0, b0 = base_tensors(layer)
    org = make_layer(layer)
    mod = cls(PFX, org, 1.0, **kwargs)
    randomize(mod, seed)
    if apply_to:  # FullModule keeps (W0 + diff) after apply_to; its state_dict then writes diff
        with torch.no_grad():
            d, db = mod.weight.clone(), mod.bias.clone()
        mod.apply_to()
    sd = file_sd(mod, save_dtype)
    if edit is not None:
        sd = edit(sd)
    if apply_to:
        org2 = make_layer(layer)
        with torch.no_grad():
            mod = FullModule.make_module_from_state_dict(
                PFX, org2, sd[f"{PFX}.diff"].float(), sd[f"{PFX}.diff_b"].float())
            # LyCORIS 3.3.0 bug: FullModule keeps org_bias as a one-element list and make_weight()
            # then fails on `list + Tensor`; unwrap it so its own merge code can run.
            if isinstance(mod.org_bias, list):
                mod.org_bias = mod.org_bias[0]
    else:
        load_into(mod, sd)
    afile = w.adapter(name, sd)
    scen = []
    for k, s in enumerate(strengths):
        Wk, bk = ly_expected(mod, mode, s, W0.float(), layer)
        if mode != "merge" or not isinstance(mod, NormModule):
            if layer in ("linear", "conv1x1", "conv3x3"):
                forward_check(mod, mode, s, Wk, bk, layer, W0.float(), b0.float(), name)
        scen.append(([(afile, s)], Wk, bk))
    src = {
        "merge": f"LyCORIS 3.3.0 {cls.__name__}.get_merged_weight(multiplier=s)",
        "merge_rescale": f"LyCORIS 3.3.0 {cls.__name__}.get_merged_weight(multiplier=s) with rescale = 1, "
                         f"times rescale_s = 1 + s*(rescale - 1) (lorafuse: s = 0 leaves W0; equals LyCORIS at s = 1)",
        "forward": f"LyCORIS 3.3.0 {cls.__name__} forward path W0 + s*get_weight()*scalar "
                   f"(merge path would apply gamma^2, T1)",
        "dora": f"LyCORIS 3.3.0 {cls.__name__} DoRA at multiplier 1 (forward path, gamma once) = D1; "
                f"expected = W0 + s*(D1 - W0) (P2)",
    }[mode]
    if src_extra:
        src += "; " + src_extra
    src += "; cross-checked against module.forward()" if layer != "layernorm" and layer != "groupnorm" \
        else ""
    has_bias = any(b is not None for _, _, b in scen)
    w.expect(name, algo=algo, layer=layer, source=src, W0=W0, b0=b0 if has_bias else None,
             scenarios=scen)
    return afile, (lambda s: ly_expected(mod, mode, s, W0.float(), layer))


def oft_diag_case(w, name, layer, seed):
    W0, _ = base_tensors(layer)
    O = W0.shape[0]
    bsz = 8
    K = O // bsz
    g = gen(seed)
    R = torch.eye(bsz).expand(K, bsz, bsz) + torch.randn(K, bsz, bsz, generator=g) * 0.07
    sd = {f"{PFX}.oft_diag": R.contiguous()}
    afile = w.adapter(name, sd)
    scen = []
    W = W0.float()
    Wb = W.reshape(K, bsz, *W.shape[1:])
    I = torch.eye(bsz)
    for s in STRENGTHS:
        Rs = I + s * (R - I)
        Wk = torch.einsum("knm,kn...->km...", Rs, Wb).reshape(W.shape)
        scen.append(([(afile, s)], Wk, None))
    w.expect(name, algo="oft_diag", layer=layer, W0=W0, b0=None, scenarios=scen,
             source="formula (legacy LyCORIS<=2.0.x oft_diag, no reference class left): "
                    "W'_k = (I + s(R_k - I))^T W_k per output block, adapters.md 7.3, torch fp32")
    return afile, None


def dtype_case(w, name, layer, base_dtype, factor_dtype, seed):
    """LoRA on an F16/BF16 base weight: expected computed in fp32 from W0.float(), rounded once."""
    W0f, b0 = base_tensors(layer)
    W0 = W0f.to(base_dtype)
    org = make_layer(layer, W0=W0.float())
    mod = LoConModule(PFX, org, 1.0, lora_dim=4, alpha=2.0)
    randomize(mod, seed)
    sd = file_sd(mod, factor_dtype)
    load_into(mod, sd)
    afile = w.adapter(name, sd)
    scen = []
    for s in STRENGTHS:
        Wk, _ = ly_expected(mod, "merge", s, W0.float(), layer)
        forward_check(mod, "merge", s, Wk, None, layer, W0.float(), b0.float(), name)
        scen.append(([(afile, s)], Wk, None))
    w.expect(name, algo="lora", layer=layer, W0=W0, b0=None, scenarios=scen,
             source=f"LyCORIS 3.3.0 LoConModule.get_merged_weight(multiplier=s) on W0.float() in fp32, "
                    f"rounded once to {str(base_dtype).replace('torch.', '')}; factors saved as "
                    f"{str(factor_dtype).replace('torch.', '')}")


# ----------------------------------------------------------------------------------------------
# PEFT cases
# ----------------------------------------------------------------------------------------------
class _One(nn.Module):
    def __init__(self, layer_mod):
        super().__init__()
        self.lf_layer = layer_mod

    def forward(self, x):
        return self.lf_layer(x)


def peft_case(w, name, layer, use_dora, seed):
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    W0, b0 = base_tensors(layer)
    r, lora_alpha = 4, 8
    cfg = LoraConfig(r=r, lora_alpha=lora_alpha, target_modules=["lf_layer"], use_dora=use_dora,
                     init_lora_weights=True)
    model = get_peft_model(_One(make_layer(layer)), cfg)
    g = gen(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_A" in n or "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.07)
            elif "lora_magnitude_vector" in n:
                p.mul_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
    psd = get_peft_model_state_dict(model)
    sd = {}
    for k, v in psd.items():
        assert k.startswith("base_model.model.lf_layer."), k
        sd[PFX + k[len("base_model.model.lf_layer"):]] = v.detach().clone().float().contiguous()
    sd[f"{PFX}.alpha"] = torch.tensor(float(lora_alpha))
    afile = w.adapter(name, sd)
    strengths = [1.0] if use_dora else STRENGTHS
    scen = []
    for s in strengths:
        m2 = get_peft_model(_One(make_layer(layer)), LoraConfig(
            r=r, lora_alpha=lora_alpha, target_modules=["lf_layer"], use_dora=use_dora))
        set_peft_model_state_dict(m2, psd)
        lin = m2.base_model.model.lf_layer
        lin.scaling["default"] = lin.scaling["default"] * s  # PEFT's own strength knob (set_scale)
        merged = m2.merge_and_unload()
        Wk = merged.lf_layer.weight.detach().clone().float()
        scen.append(([(afile, s)], Wk, None))
    w.expect(name, algo="peft_dora" if use_dora else "peft_lora", layer=layer, W0=W0, b0=None,
             scenarios=scen,
             source=f"peft 0.12.0 LoraConfig(r={r}, lora_alpha={lora_alpha}, use_dora={use_dora}) "
                    f"merge_and_unload() with scaling*s; file = get_peft_model_state_dict() renamed to "
                    f"lf_layer.* plus lf_layer.alpha = lora_alpha (kohya/diffusers convention)"
                    + ("; DoRA: only s=1 (PEFT puts s inside the norm, not P2)" if use_dora else ""))


# ----------------------------------------------------------------------------------------------
def run(root):
    w = Writer(os.path.join(root, "tests", "data", "golden"))
    write_cases(w)
    print(f"  {len(w.written)} files")


def write_cases(w):
    A = {}
    # ---- LoRA / LoCon
    A["lora_linear"] = ly_case(w, "lora_linear", LoConModule, "linear", "merge",
                               dict(lora_dim=4, alpha=2.0), 1, algo="lora")
    A["lora_conv1x1"] = ly_case(w, "lora_conv1x1", LoConModule, "conv1x1", "merge",
                                dict(lora_dim=4, alpha=8.0), 2, algo="lora")
    A["locon_conv3x3"] = ly_case(w, "locon_conv3x3", LoConModule, "conv3x3", "merge",
                                 dict(lora_dim=4, alpha=3.0), 3, algo="lora")
    ly_case(w, "locon_tucker_conv3x3", LoConModule, "conv3x3", "merge",
            dict(lora_dim=4, alpha=3.0, use_tucker=True), 4, algo="lora")

    def drop_alpha(sd):
        del sd[f"{PFX}.alpha"]
        return sd
    ly_case(w, "lora_linear_noalpha", LoConModule, "linear", "merge", dict(lora_dim=4, alpha=4.0), 5,
            algo="lora", edit=drop_alpha,
            src_extra="alpha tensor removed from the file; module built with alpha=rank (gamma=1, P1/T6; "
                      "LyCORIS's loader itself rejects a missing alpha)")

    def alpha_zero(sd):
        sd[f"{PFX}.alpha"] = torch.tensor(0.0)
        return sd
    ly_case(w, "lora_linear_alpha0", LoConModule, "linear", "merge", dict(lora_dim=4, alpha=0.0), 6,
            algo="lora", edit=alpha_zero,
            src_extra="file alpha = 0; LoConModule(alpha=0) treats it as alpha=rank (gamma=1, P1/T7)")

    def alpha_i64(sd):
        sd[f"{PFX}.alpha"] = torch.tensor(2, dtype=torch.int64)
        return sd
    ly_case(w, "lora_linear_alpha_i64", LoConModule, "linear", "merge", dict(lora_dim=4, alpha=2.0), 7,
            algo="lora", edit=alpha_i64, src_extra="alpha stored as int64 (kohya svd_merge_lora style)")
    ly_case(w, "lora_linear_f16", LoConModule, "linear", "merge", dict(lora_dim=4, alpha=2.0), 8,
            algo="lora", save_dtype=torch.float16,
            src_extra="all adapter tensors saved F16 (save_weights dtype); expectation from the "
                      "F16-rounded factors in fp32")

    # ---- LoHa
    A["loha_linear"] = ly_case(w, "loha_linear", LohaModule, "linear", "forward",
                               dict(lora_dim=4, alpha=2.0), 11, algo="loha")
    ly_case(w, "loha_conv1x1", LohaModule, "conv1x1", "forward", dict(lora_dim=4, alpha=3.0), 12, algo="loha")
    ly_case(w, "loha_conv3x3", LohaModule, "conv3x3", "forward", dict(lora_dim=4, alpha=3.0), 13, algo="loha")
    ly_case(w, "loha_tucker_conv3x3", LohaModule, "conv3x3", "forward",
            dict(lora_dim=4, alpha=3.0, use_tucker=True), 14, algo="loha")

    # ---- LoKr
    ly_case(w, "lokr_linear", LokrModule, "linear", "forward", dict(lora_dim=2, alpha=1.0), 21,
            algo="lokr", src_extra="w1 full (6,8), w2 low-rank")
    ly_case(w, "lokr_linear_factor4", LokrModule, "linear", "forward", dict(lora_dim=4, alpha=2.0, factor=4),
            22, algo="lokr", src_extra="factor=4: w1 (4,4), w2 = (12,4)@(4,16)")
    ly_case(w, "lokr_linear_decompose_both", LokrModule, "linear", "forward",
            dict(lora_dim=2, alpha=1.0, decompose_both=True), 23, algo="lokr")
    ly_case(w, "lokr_linear_full_matrix", LokrModule, "linear", "forward",
            dict(lora_dim=4, alpha=2.0, full_matrix=True), 24, algo="lokr",
            src_extra="full_matrix: LyCORIS forces alpha = lora_dim (gamma=1)")
    ly_case(w, "lokr_conv1x1", LokrModule, "conv1x1", "forward", dict(lora_dim=2, alpha=1.0, factor=4), 25,
            algo="lokr")
    ly_case(w, "lokr_conv3x3", LokrModule, "conv3x3", "forward", dict(lora_dim=2, alpha=1.0), 26,
            algo="lokr", src_extra="2-D lokr_w2_b (R, d*kh*kw)")
    ly_case(w, "lokr_tucker_conv3x3", LokrModule, "conv3x3", "forward",
            dict(lora_dim=2, alpha=1.0, use_tucker=True), 27, algo="lokr",
            src_extra="Tucker lokr_t2; module built directly (LyCORIS's loader fails on this layout, T10)")

    # ---- DoRA
    ly_case(w, "dora_lora_linear_out", LoConModule, "linear", "dora",
            dict(lora_dim=4, alpha=2.0, weight_decompose=True, wd_on_out=True), 31, algo="dora_lora")
    ly_case(w, "dora_lora_linear_in", LoConModule, "linear", "dora",
            dict(lora_dim=4, alpha=2.0, weight_decompose=True, wd_on_out=False), 32, algo="dora_lora",
            src_extra="input axis (wd_on_out=False), dora_scale (1, I)")
    ly_case(w, "dora_lora_conv3x3_out", LoConModule, "conv3x3", "dora",
            dict(lora_dim=4, alpha=3.0, weight_decompose=True, wd_on_out=True), 33, algo="dora_lora")
    ly_case(w, "dora_lora_conv3x3_in", LoConModule, "conv3x3", "dora",
            dict(lora_dim=4, alpha=3.0, weight_decompose=True, wd_on_out=False), 34, algo="dora_lora",
            src_extra="input axis (wd_on_out=False), dora_scale (1, I, 1, 1)")
    A["dora_loha_linear_out"] = ly_case(w, "dora_loha_linear_out", LohaModule, "linear", "dora",
                                        dict(lora_dim=4, alpha=2.0, weight_decompose=True, wd_on_out=True),
                                        35, algo="dora_loha")
    ly_case(w, "dora_loha_conv3x3_in", LohaModule, "conv3x3", "dora",
            dict(lora_dim=4, alpha=3.0, weight_decompose=True, wd_on_out=False), 36, algo="dora_loha",
            src_extra="input axis (wd_on_out=False)")
    A["dora_lokr_linear_out"] = ly_case(w, "dora_lokr_linear_out", LokrModule, "linear", "dora",
                                        dict(lora_dim=4, alpha=2.0, factor=4, weight_decompose=True,
                                             wd_on_out=True), 37, algo="dora_lokr")
    ly_case(w, "dora_lokr_linear_in", LokrModule, "linear", "dora",
            dict(lora_dim=4, alpha=2.0, factor=4, weight_decompose=True, wd_on_out=False), 38,
            algo="dora_lokr", src_extra="input axis (wd_on_out=False)")
    ly_case(w, "dora_lokr_conv3x3_out", LokrModule, "conv3x3", "dora",
            dict(lora_dim=2, alpha=1.0, weight_decompose=True, wd_on_out=True), 39, algo="dora_lokr")

    # ---- GLoRA (new layout only)
    ly_case(w, "glora_linear", GLoRAModule, "linear", "merge", dict(lora_dim=4, alpha=2.0), 41, algo="glora",
            src_extra="new (LyCORIS 3.x) layout")
    ly_case(w, "glora_conv1x1", GLoRAModule, "conv1x1", "merge", dict(lora_dim=4, alpha=2.0), 42,
            algo="glora", src_extra="new (LyCORIS 3.x) layout")
    ly_case(w, "glora_conv3x3", GLoRAModule, "conv3x3", "merge", dict(lora_dim=4, alpha=3.0), 43,
            algo="glora", src_extra="new (LyCORIS 3.x) layout")

    # ---- Diag-OFT
    A["oft_linear_c"] = ly_case(w, "oft_linear_c", DiagOFTModule, "linear", "merge",
                                dict(lora_dim=8, constraint=0.01), 51, algo="diag_oft",
                                src_extra="constraint 0.01*O clamps Q")
    ly_case(w, "oft_linear_c0", DiagOFTModule, "linear", "merge", dict(lora_dim=8, constraint=0), 52,
            algo="diag_oft", src_extra="constraint 0 (unconstrained)")
    ly_case(w, "oft_linear_rescale", DiagOFTModule, "linear", "merge_rescale",
            dict(lora_dim=8, constraint=0.01, rescaled=True), 53, algo="diag_oft",
            src_extra="rescale interpolated by s")
    ly_case(w, "oft_conv1x1", DiagOFTModule, "conv1x1", "merge", dict(lora_dim=8, constraint=0), 54,
            algo="diag_oft")
    ly_case(w, "oft_conv3x3_rescale", DiagOFTModule, "conv3x3", "merge_rescale",
            dict(lora_dim=8, constraint=0.01, rescaled=True), 55, algo="diag_oft",
            src_extra="rescale interpolated by s")

    # ---- BOFT
    ly_case(w, "boft_linear", ButterflyOFTModule, "linear", "merge", dict(lora_dim=6, constraint=0), 61,
            algo="boft", src_extra="O=48, b=6, 8 blocks, 4 butterfly factors")
    ly_case(w, "boft_linear_c_rescale", ButterflyOFTModule, "linear", "merge_rescale",
            dict(lora_dim=6, constraint=0.01, rescaled=True), 62, algo="boft",
            src_extra="constraint 0.01*O; rescale interpolated by s")
    ly_case(w, "boft_conv3x3", ButterflyOFTModule, "conv3x3", "merge", dict(lora_dim=6, constraint=0), 63,
            algo="boft", src_extra="O=24, b=6, 4 blocks, 3 butterfly factors")

    # ---- legacy oft_diag
    oft_diag_case(w, "oft_diag_linear", "linear", 71)
    oft_diag_case(w, "oft_diag_conv3x3", "conv3x3", 72)

    # ---- IA3
    ia3_src = ("LyCORIS's loader (make_module_from_state_dict) ignores on_input and would build an "
               "output-side module; the module here is built with train_on_input as saved")
    ly_case(w, "ia3_linear_out", IA3Module, "linear", "merge", dict(train_on_input=False), 81, algo="ia3")
    ly_case(w, "ia3_linear_in", IA3Module, "linear", "merge", dict(train_on_input=True), 82, algo="ia3",
            src_extra=ia3_src)
    ly_case(w, "ia3_conv1x1_out", IA3Module, "conv1x1", "merge", dict(train_on_input=False), 83, algo="ia3")
    ly_case(w, "ia3_conv3x3_in", IA3Module, "conv3x3", "merge", dict(train_on_input=True), 84, algo="ia3",
            src_extra=ia3_src)

    # ---- full
    ly_case(w, "full_linear", FullModule, "linear", "merge", {}, 91, algo="full", apply_to=True,
            src_extra="file written after apply_to() (diff = weight - W0); expectation from "
                      "FullModule.make_module_from_state_dict (is_diff path; org_bias list bug of "
                      "LyCORIS 3.3.0 unwrapped)")
    ly_case(w, "full_conv3x3", FullModule, "conv3x3", "merge", {}, 92, algo="full", apply_to=True,
            src_extra="file written after apply_to(); expectation via make_module_from_state_dict "
                      "(org_bias list bug of LyCORIS 3.3.0 unwrapped)")

    # ---- norm
    ly_case(w, "norm_layernorm", NormModule, "layernorm", "merge", {}, 95, algo="norm")
    ly_case(w, "norm_groupnorm", NormModule, "groupnorm", "merge", {}, 96, algo="norm")

    # ---- dtype cases
    dtype_case(w, "lora_linear_base_f16", "linear", torch.float16, torch.float16, 101)
    dtype_case(w, "lora_conv3x3_base_bf16", "conv3x3", torch.bfloat16, torch.float32, 102)

    # ---- PEFT
    peft_case(w, "peft_lora_linear", "linear", False, 111)
    peft_case(w, "peft_lora_conv3x3", "conv3x3", False, 112)
    peft_case(w, "peft_dora_linear", "linear", True, 113)
    peft_case(w, "peft_dora_conv3x3", "conv3x3", True, 114)

    # ---- multi-adapter (P5): expected = W0 + sum_i (single_i(s_i) - W0), fp32, rounded once
    W0, _ = base_tensors("linear")
    multi = [
        ("multi_lora_loha_dokr_linear",
         [A["lora_linear"], A["loha_linear"], A["dora_lokr_linear_out"]],
         [(1.0, 1.0, 1.0), (1.0, 0.7, 0.5), (0.5, 1.0, 0.0), (0.0, 0.0, 0.0)]),
        ("multi_lora_oft_linear", [A["lora_linear"], A["oft_linear_c"]],
         [(1.0, 1.0), (0.7, 1.0), (1.0, 0.5), (0.0, 0.0)]),
        ("multi_loha_dora_loha_linear", [A["loha_linear"], A["dora_loha_linear_out"]],
         [(1.0, 1.0), (0.5, 1.0), (0.0, 0.5)]),
    ]
    for name, parts, sets in multi:
        scen = []
        for st in sets:
            Wk = W0.float().clone()
            for (afile, table), s in zip(parts, st):
                Wk = Wk + (table(s)[0] - W0.float())
            scen.append(([(p[0], s) for p, s in zip(parts, st)], Wk, None))
        w.expect(name, algo="multi", layer="linear", W0=W0, b0=None, scenarios=scen,
                 source="P5: W0 + sum_i (expected_i(s_i) - W0) from the single-adapter expectations "
                        "(each against pristine W0; same oracle as those cases), fp32, rounded once")
