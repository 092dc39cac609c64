"""Goldens of the CLIP tokenizer, the text encoders and A1111 emphasis -> tests/data/model/.

Oracle: transformers 4.44.2 (CLIPTokenizer, slow, no ftfy installed: its BasicTokenizer path; and
CLIPTextModel / CLIPTextModelWithProjection), the tiny encoders loaded from the committed single-file
checkpoints through diffusers 0.30.3's own converters (convert_ldm_clip_checkpoint,
convert_open_clip_checkpoint), F16 weights computed in f32.

Files:
  clip_tokens.safetensors   ids.K (I32, with BOS/EOS, no truncation) of metadata text.K, from
                            CLIPTokenizer built on models/clip/bpe_simple_vocab_16e6.txt.gz (vocab and
                            merges written out as open_clip builds them); small.ids.K: the same texts
                            through the small folder tests/data/model/clip_tok_small/ (first 300 merges);
                            fast_differs: the K where CLIPTokenizerFast gives other ids (documentation).
  clip_encoders.safetensors <enc>.P.ids (I32 77), <enc>.P.last (LN(h_L)), .penult (h_{L-1}),
                            .skip2 (LN(h_{L-1}), A1111/diffusers SD1 clip skip 2), .pooled
                            enc: sd15 (tests/data/tiny/tiny-sd15), xl1 / xl2 (tests/data/tiny/tiny-sdxl TE1 / TE2);
                            demo: the trained demo model's encoder (models/demo/shapes-sd1, full vocabulary,
                            real ids) on its own prompts: model_pipeline_demo.CAPTION, the same with the
                            LoRA's trigger word, "" (metadata demo_prompts)
                            The tiny vocabularies have 1000 ids: real ids are mapped by
                            tiny(id) = 998 for BOS, 999 for EOS, id % 998 otherwise (pad 0 stays 0).
                            pooled: sd15/xl1 pooler_output (final-LN hidden at the first EOS), xl2 text_embeds
                            (the same @ text_projection); the EOS is found as transformers does with
                            eos_token_id = 999.
  clip_weighted.safetensors A1111 emphasis on a 2-chunk prompt: ids1.C / ids2.C (EOS / 0 padded), mult.C;
                            sd15.cond (154, 32) = per chunk z = LN(h_L); z *= mult (A1111 "No norm": the
                            tiny model's final LN has the identity affine, so mean(z) ~ 1e-9 and the
                            "Original" ratio mean_before/mean_after would be noise);
                            xl.ids1/ids2/mult, xl.cond (154, 64) = concat(TE1 penult, TE2 penult), each with
                            "Original" per encoder and chunk: z *= mult; z *= mean_before / mean_after, xl.pooled (32) from chunk 0 (no emphasis).
"""
import gzip
import json
import os
import tempfile

import torch

from .common import save_file

MERGES = 49152 - 256 - 2

TEXTS = [
    "a photo of a cat",
    "A Photo OF a CAT!!!",
    "  multiple   spaces\tand\ttabs\nnew\r\nlines  ",
    "don't you're we've I'm they'll he'd it's",
    "DON'T IT'S THEY'LL",
    "rock'n'roll ''quoted'' 'single' it'\u017f",
    "1girl, 2 boys, 3.14159, 1024x768, 007, mixed123numbers456abc",
    "masterpiece, best quality, (ultra-detailed:1.2), [blurry], \\(escaped\\)",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c5ngstr\u00f6m Stra\u00dfe",
    "cafe\u0301 decomposed a\u0308 o\u0323\u0302 \u1100\u1161\u11a8",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u039f\u0394\u039f\u03a3 \u03a3\u03af\u03c3\u03c5\u03c6\u03bf\u03c2",
    "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \u6f22\u5b57 \ud55c\uad6d\uc5b4",
    "emoji \U0001F600\U0001F525\U0001F44D\U0001F3FD \u2764\ufe0f \U0001F468\u200d\U0001F469\u200d\U0001F467",
    "\u0130stanbul \u212a kelvin \ufb01ne",
    "<|startoftext|>hello<|endoftext|>world",
    "a<|ENDOFTEXT|>b and x.<|endoftext|>",
    "nbsp\u00a0em\u2003zw\u200bideo\u3000end",
    "control\x07chars\x1b[0m and\ufffdreplacement",
    "&amp; html &lt;entities&gt; <b>tags</b>",
    "snake_case-and-kebab-case/paths\\back @user #tag $5 100%",
    "!!!???...,,,;;; --- ___",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "\u0661\u0662\u0663 \u096a\u096b\u096c \u216b \u00bd \u00b2",
    "word\u2028line\u2029para",
    "",
    "a very long prompt, " * 30,
]

SMALL_MERGES = 300


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + \
        list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def clip_vocab(merges):
    v = list(bytes_to_unicode().values())
    v = v + [x + "</w>" for x in v]
    v += ["".join(m.split()) for m in merges]
    v += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(v)}


def write_folder(d, merges):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(clip_vocab(merges), f, ensure_ascii=False)
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")


def tiny(i):
    return 998 if i == 49406 else 999 if i == 49407 else i % 998


def load_encoders(root):
    from diffusers.loaders import single_file_utils as sfu
    from safetensors.torch import load_file
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    def cfg(layers, act, **kw):
        return CLIPTextConfig(vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                              num_attention_heads=4, max_position_embeddings=77, hidden_act=act, **kw)

    def prep(m):
        m = m.float().eval()
        m.text_model.eos_token_id = 999  # pooled at the first tiny EOS (see module docstring)
        return m

    sd15 = {k: v.float() for k, v in load_file(os.path.join(root, "tests", "data", "tiny", "tiny-sd15.safetensors")).items()}
    xl = {k: v.float() for k, v in load_file(os.path.join(root, "tests", "data", "tiny",
                                                          "tiny-sdxl.safetensors")).items()}
    te = CLIPTextModel(cfg(12, "quick_gelu", projection_dim=32))
    missing = te.load_state_dict(sfu.convert_ldm_clip_checkpoint(dict(sd15)), strict=False)
    assert not missing.unexpected_keys and all("position_ids" in k for k in missing.missing_keys), missing
    te1 = CLIPTextModel(cfg(12, "quick_gelu"))
    missing = te1.load_state_dict(sfu.convert_ldm_clip_checkpoint(dict(xl)), strict=False)
    assert not missing.unexpected_keys and all("position_ids" in k for k in missing.missing_keys), missing
    te2 = CLIPTextModelWithProjection(cfg(32, "gelu", projection_dim=32))
    sd2 = sfu.convert_open_clip_checkpoint(te2, dict(xl), prefix="conditioner.embedders.1.model.")
    missing = te2.load_state_dict(sd2, strict=False)
    assert not missing.unexpected_keys and all("position_ids" in k for k in missing.missing_keys), missing
    return prep(te), prep(te1), prep(te2)


def window(ids, pad):
    ids = [49406] + ids[:75] + [49407]
    return ids + [pad] * (77 - len(ids))


@torch.no_grad()
def run_enc(m, ids):
    x = torch.tensor([ids], dtype=torch.long)
    o = m(x, output_hidden_states=True)
    hs = o.hidden_states
    last = o.last_hidden_state[0]
    pooled = o.text_embeds[0] if hasattr(o, "text_embeds") else o.pooler_output[0]
    return {"last": last, "penult": hs[-2][0], "skip2": m.text_model.final_layer_norm(hs[-2])[0],
            "pooled": pooled}


def emphasis(z, mult):
    """A1111 sd_emphasis.EmphasisOriginal.after_transformers on one chunk z (1, 77, D)."""
    original_mean = z.mean()
    z = z * mult.reshape(mult.shape + (1,)).expand(z.shape)
    new_mean = z.mean()
    return z * (original_mean / new_mean)


def run(root):
    from transformers import CLIPTokenizer, CLIPTokenizerFast
    out = os.path.join(root, "tests", "data", "model")
    os.makedirs(out, exist_ok=True)
    with gzip.open(os.path.join(root, "models", "clip", "bpe_simple_vocab_16e6.txt.gz")) as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = lines[1:MERGES + 1]
    with tempfile.TemporaryDirectory() as d:
        write_folder(d, merges)
        tok = CLIPTokenizer(os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt"))
        fast = CLIPTokenizerFast(os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt"))
    assert tok.fix_text is None, "ftfy is installed: the goldens assume transformers' BasicTokenizer path"
    assert tok.bos_token_id == 49406 and tok.eos_token_id == 49407 and tok.pad_token_id == 49407
    small_dir = os.path.join(out, "clip_tok_small")
    write_folder(small_dir, merges[:SMALL_MERGES])
    small = CLIPTokenizer(os.path.join(small_dir, "vocab.json"), os.path.join(small_dir, "merges.txt"))

    t, meta, differs = {}, {"source": "transformers 4.44.2 CLIPTokenizer (slow, without ftfy)"}, []
    for k, s in enumerate(TEXTS):
        ids = tok(s)["input_ids"]
        t[f"ids.{k}"] = torch.tensor(ids, dtype=torch.int32)
        t[f"small.ids.{k}"] = torch.tensor(small(s)["input_ids"], dtype=torch.int32)
        meta[f"text.{k}"] = s
        if fast(s)["input_ids"] != ids:
            differs.append(k)
    # windows as the pipelines build them (truncation to 77, padding to max_length)
    w = tok(TEXTS[-1], padding="max_length", max_length=77, truncation=True)["input_ids"]
    t["window.long"] = torch.tensor(w, dtype=torch.int32)
    meta["count"] = str(len(TEXTS))
    meta["fast_differs"] = ",".join(map(str, differs))
    save_file(t, os.path.join(out, "clip_tokens.safetensors"), meta)
    print(f"  clip_tokens: {len(TEXTS)} texts; CLIPTokenizerFast differs on {differs}")

    # ---------------- encoders ----------------
    te, te1, te2 = load_encoders(root)
    prompts = ["a photo of a cat", "masterpiece, best quality, 1girl, solo, long hair, looking at viewer, smile", ""]
    enc = {}
    for p, s in enumerate(prompts):
        ids = tok(s, add_special_tokens=False)["input_ids"]
        for name, m, pad in (("sd15", te, 49407), ("xl1", te1, 49407), ("xl2", te2, 0)):
            wi = [tiny(i) for i in window(ids, pad)]
            enc[f"{name}.{p}.ids"] = torch.tensor(wi, dtype=torch.int32)
            for k, v in run_enc(m, wi).items():
                enc[f"{name}.{p}.{k}"] = v.float().contiguous()
    from .model_pipeline import components
    from .model_pipeline_demo import CAPTION, MODEL, TRIGGER
    demo_te = components(root, MODEL)[2].float().eval()
    demo_prompts = [CAPTION, f"{CAPTION}, {TRIGGER}", ""]
    for p, s in enumerate(demo_prompts):
        wi = window(tok(s, add_special_tokens=False)["input_ids"], 49407)
        enc[f"demo.{p}.ids"] = torch.tensor(wi, dtype=torch.int32)
        for k, v in run_enc(demo_te, wi).items():
            enc[f"demo.{p}.{k}"] = v.float().contiguous()
    save_file(enc, os.path.join(out, "clip_encoders.safetensors"),
              {"source": "transformers 4.44.2 CLIPTextModel(WithProjection), weights from the tiny checkpoints "
                         "and the demo model via diffusers 0.30.3 convert_ldm_clip_checkpoint / "
                         "convert_open_clip_checkpoint",
               "prompts": json.dumps(prompts), "tiny_ids": "998 BOS, 999 EOS, id % 998",
               "demo_prompts": json.dumps(demo_prompts)})

    # ---------------- weighted, 2 chunks ----------------
    # 100 prompt tokens with weights 1, 1.1*1.1 = 1.21 (tokens 10..19), 1/1.1 (30..39), 1.5 (80..84)
    ids = tok("a very long prompt, " * 25, add_special_tokens=False)["input_ids"][:100]
    mult = [1.0] * 100
    for i in range(10, 20):
        mult[i] = 1.1 * 1.1
    for i in range(30, 40):
        mult[i] = 1 / 1.1
    for i in range(80, 85):
        mult[i] = 1.5
    chunks = [(ids[:75], mult[:75]), (ids[75:], mult[75:])]

    def win_m(m):
        m = [1.0] + m + [1.0]
        return m + [1.0] * (77 - len(m))

    wt = {}
    z15, z1, z2, pooled = [], [], [], None
    for c, (ci, cm) in enumerate(chunks):
        m = torch.tensor([win_m(cm)], dtype=torch.float32)
        i1 = [tiny(i) for i in window(ci, 49407)]
        i2 = [tiny(i) for i in window(ci, 0)]
        wt[f"ids1.{c}"] = torch.tensor(i1, dtype=torch.int32)
        wt[f"ids2.{c}"] = torch.tensor(i2, dtype=torch.int32)
        wt[f"mult.{c}"] = m[0].clone()
        z15.append(run_enc(te, i1)["last"] * m[0][:, None])  # "No norm" (see docstring)
        z1.append(emphasis(run_enc(te1, i1)["penult"][None], m)[0])
        r2 = run_enc(te2, i2)
        z2.append(emphasis(r2["penult"][None], m)[0])
        if c == 0:
            pooled = r2["pooled"]
    wt["sd15.cond"] = torch.cat(z15, 0).contiguous()
    wt["xl.cond"] = torch.cat([torch.cat(z1, 0), torch.cat(z2, 0)], 1).contiguous()
    wt["xl.pooled"] = pooled.contiguous()
    save_file(wt, os.path.join(out, "clip_weighted.safetensors"),
              {"source": "A1111 EmphasisOriginal formula in torch on transformers 4.44.2 hidden states",
               "chunks": "2"})
    for f in ("clip_tokens", "clip_encoders", "clip_weighted"):
        p = os.path.join(out, f + ".safetensors")
        print(f"  wrote {os.path.relpath(p, root)} ({os.path.getsize(p)} bytes)")
