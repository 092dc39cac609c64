"""Shared helpers for scripts/make_golden.py: seeded generators and the fixture writer."""
import json
import os
import struct

import torch


def _attention_scores_from_zeros():
    """diffusers' Attention.get_attention_scores (0.30) starts torch.baddbmm from torch.empty() with beta=0
    when there is no mask. torch 1.13's CPU baddbmm does not ignore that uninitialised buffer: a NaN bit
    pattern in it turns a whole attention row into NaN (seen in the odd-sized SDXL UNet golden, 4 runs in
    6, the same run to run within one process). Passing an all-zero mask takes diffusers' beta=1 path:
    0 + alpha * q k^T, the same scores without reading uninitialised memory."""
    try:
        from diffusers.models.attention_processor import Attention
    except ImportError:
        return
    if getattr(Attention.get_attention_scores, "_lf_zeros", False):
        return
    orig = Attention.get_attention_scores

    def scores(self, query, key, attention_mask=None):
        if attention_mask is None:
            dtype = torch.float32 if self.upcast_attention else query.dtype  # the dtype of the scores
            attention_mask = torch.zeros(query.shape[0], query.shape[1], key.shape[1], dtype=dtype,
                                         device=query.device)
        return orig(self, query, key, attention_mask)

    scores._lf_zeros = True
    Attention.get_attention_scores = scores


_attention_scores_from_zeros()

_DT = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
       torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.float64: "F64",
       torch.bool: "BOOL"}


def save_file(tensors, path, metadata=None):
    """Byte-deterministic safetensors writer (safetensors' own save_file orders the metadata map
    differently from run to run).  Same format: u64 header length, JSON header (padded with spaces
    to a multiple of 8), tensors in key order, little-endian, C-contiguous."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in sorted(metadata.items())}
    blobs, off = [], 0
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().tobytes()
        header[k] = {"dtype": _DT[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def round_to_f16(model):
    """Make a model's parameters F16-exact (kept in f32), so that a checkpoint stored in F16 holds exactly
    the weights the reference code ran with; returns the model in eval mode."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    return model.eval()


def gen(seed):
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


def rnd(shape, seed, std=0.07):
    return torch.randn(shape, generator=gen(seed)) * std


def _fmt(s):
    s = float(s)
    return repr(int(s)) if s == int(s) else repr(s)


class Writer:
    """Writes tests/data/golden/<case>.adapter.safetensors and <case>.expect.safetensors."""

    def __init__(self, outdir):
        self.outdir = outdir
        os.makedirs(outdir, exist_ok=True)
        self.written = []

    def _save(self, fname, tensors, meta):
        path = os.path.join(self.outdir, fname)
        tensors = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
        save_file(tensors, path, meta)
        self.written.append(path)
        print(f"  wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")

    def adapter(self, name, sd, meta=None):
        fname = f"{name}.adapter.safetensors"
        self._save(fname, sd, meta or {})
        return fname

    def expect(self, name, *, algo, layer, source, W0, b0, scenarios):
        """scenarios: list of ([(adapter_file, strength), ...], W_fp32, b_fp32_or_None)."""
        dt = W0.dtype
        t = {"W0": W0}
        if b0 is not None:
            t["b0"] = b0
        meta = {"algo": algo, "layer": layer, "source": source}
        for k, (parts, Wk, bk) in enumerate(scenarios):
            assert torch.isfinite(Wk).all()
            t[f"W.{k}"] = Wk.float().to(dt)
            if bk is not None:
                t[f"b.{k}"] = bk.float().to(b0.dtype if b0 is not None else dt)
            meta[f"scenario.{k}"] = ",".join(f"{f}@{_fmt(s)}" for f, s in parts)
            if all(float(s) == 0.0 for _, s in parts) and "rescale" not in source:
                assert torch.equal(t[f"W.{k}"], W0), f"{name}: strength 0 must give W0 exactly"
        self._save(f"{name}.expect.safetensors", t, meta)
