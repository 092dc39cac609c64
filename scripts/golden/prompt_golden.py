#!/usr/bin/env python3
"""Golden tables for the prompt dialects, made by running the reference code itself.

    .venv-golden/bin/python scripts/golden/prompt_golden.py [--loractl GITDIR] [--a1111 FILE]

Nothing is reimplemented here: the reference files are executed as they are.

  loractl  cheald/sd-webui-loractl, loractl/lib/utils.py (sorted_positions, calculate_weight), read with
           `git show HEAD:loractl/lib/utils.py` from a git directory (default: the mirror under
           /work/.mirror/cheald+sd-webui-loractl/repo) into a temporary folder and imported from there.
           Written: tests/data/prompt/loractl.tsv, one case a line:
               SPEC <TAB> N <TAB> v_1 ... v_N
           v_t = float32(calculate_weight(sorted_positions(SPEC), max(0, t - 2), N, step_offset=2)):
           lorafuse step t (1-based) is A1111's sampling_step max(0, t - 2), because A1111 sets
           sampling_step in the sampler callback, after the model call of each step (launch_sampling
           starts it at 0); that mapping is lorafuse's reading of A1111, the function is loractl's.
  a1111    AUTOMATIC1111/stable-diffusion-webui, modules/prompt_parser.py (needs lark; imports torch),
           the file given with --a1111 (a webui checkout's modules/prompt_parser.py). Written:
           tests/data/prompt/prompt_edit.tsv, one case as
               P <TAB> N <TAB> PROMPT
               S <TAB> t <TAB> TEXT        (t = 1..N: the text A1111 encodes for step t)
           TEXT = the schedule entry reconstruct_cond_batch picks at current_step = t - 1 (the
           CFGDenoiser's step counter, 0-based) from get_learned_conditioning_prompt_schedules(N).
           Without --a1111 this part is skipped (the committed table stays). The committed table was
           made from prompt_parser.py of AUTOMATIC1111/stable-diffusion-webui commit 28bd8e14 (its text up
           to reconstruct_cond_batch, the functions used here), with lark 1.3.1; with that lark, the
           doctest "a [{b|d{:.5] c" gives the prompt as written (the doctest itself says it is not handled).
  ti       textual inversion on models/sd15-mini.safetensors (width 32): tests/data/prompt/embeddings/ holds
           tinyemb.safetensors (kohya `emb_params`, 2 vectors), tinyconcept.safetensors (`string_to_param.*`,
           1 vector), xlemb.safetensors (clip_l + clip_g) and pickled.pt (a few bytes; never opened);
           tests/data/prompt/ti_expect.safetensors holds <case>.cond (77, 32) for each case of TI_CASES:
           transformers' CLIPTextModel (the pipeline golden's text encoder, model_pipeline.components)
           run on A1111's window (BOS, the prompt's tokens with the embedding's name replaced by `vectors`
           placeholder ids 0, EOS padding), with a forward hook on embeddings.token_embedding putting the
           embedding's vectors at window positions offset + 1 ... (EmbeddingsWithFixes), then
           last_hidden_state (final LN, clip skip 1), and where a case weights the embedding A1111's
           "No norm" emphasis (sd_emphasis.py: z *= mult). ("Original" then rescales by
           mean_before / mean_after, but this model's final LayerNorm (weight 1, bias 0) leaves means
           of about 1e-10, rounding noise, so that ratio is no test here.)
           SDXL: xltiny.safetensors (clip_l (2, 16), clip_g (2, 16)) on tests/data/pipeline/sdxl-mini
           (model_pipeline_sdxl.components): xl.cond (77, 32) = concat(TE1 hidden_states[-2] with clip_l in
           place, TE2 hidden_states[-2] with clip_g in place; TE2's window padded with id 0 after its EOS)
           and xl.pooled (16) = TE2 text_embeds, for "a photo of xltiny cat".
"""
import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "tests", "data", "prompt")

LORACTL_CASES = [
    # README and test/tests.py examples
    ("1", [1, 3, 30]),
    ("0@0,1@0.5,0@1", [3, 5, 10, 20]),
    ("0.25@0.5,1@1", [4, 10, 20]),
    ("0@0,1@1", [1, 3, 4, 11, 20]),
    ("1@0,0.5@0.5", [10, 20]),
    ("0@0,1@0.4", [20]),
    ("0@5,1@6", [10, 20]),
    ("1@0,0.5@3,1@6", [8, 30]),
    ("0.5@3,1@6,1@0", [8]),
    ("0.75@0;0.5@3;1@6", [10]),
    ("0.5@5,1.0@10", [12, 30]),
    ("0.8@0.15,0@0.3", [10, 20]),
    # '~' for '@', ';' separators, implicit position 1, negative and repeated positions, unsorted input
    ("0~0;1~1", [6]),
    ("0@0,1", [6]),
    ("0.5@0.5,1", [9]),
    ("1@-0.5,0@1", [7]),
    ("0@0.5,1@0.5,0.2@1", [9]),
    ("0.1@1,0.3@0,0.7@0.5", [9]),
    ("2@2,0@7", [9]),
    ("0.5@3", [5]),
    ("-1@0,1@1", [13]),
    ("0.3@0,0.1@0.3,0.9@0.7", [17, 1]),
]

PROMPT_CASES = [
    # prompt_parser.py doctests
    ("test", [10]),
    ("a [b:3]", [10]),
    ("a [b: 3]", [10]),
    ("a [[[b]]:2]", [10]),
    ("[(a:2):3]", [10]),
    ("a [b : c : 1] d", [10]),
    ("a[b:[c:d:2]:1]e", [10]),
    ("a [unbalanced", [10]),
    ("a [b:.5] c", [10]),
    ("a [{b|d{:.5] c", [10]),
    ("((a][:b:c [d:3]", [10]),
    ("[a|(b:1.1)]", [10]),
    ("[fe|]male", [10]),
    ("[fe|||]male", [10]),
    # the header example
    ("fantasy landscape with a [mountain:lake:0.25] and [an oak:a christmas tree:0.75][ in foreground::0.6]"
     "[ in background:0.25] [shoddy:masterful:0.5]", [20, 7]),
    # fractions, rounding, ends, emphasis left alone
    ("a [cat:dog:0.5] b", [1, 2, 3, 7, 20]),
    ("[cat:dog:0.99]", [7]),
    ("[cat:dog:1.0]", [7]),
    ("[cat:dog:0]", [5]),
    ("[cat:dog:-2]", [5]),
    ("[cat:dog:9]", [5]),
    ("[cat::2] (red:1.2) [blue] \\[x:2\\]", [6]),
    ("[cat:dog:1e1]", [12]),
    ("[cat:dog: 3 ]", [6]),
    ("a [b|c|d] e [f:g:4]", [8]),
    ("[[a:b:2]|c]", [6]),
    ("[a:[b|c]:3]", [7]),
    ("x: y [a:b:2]", [4]),
    ("a | b [c:d:2]", [4]),
    ("[a:b]", [4]),
    ("(a [b:c:2]:1.3)", [4]),
    ("a\\", [3]),
    ("", [3]),
    ("AND [a:b:2] BREAK c", [4]),
    ("[a:b:0.5] [c|d] [e:f:3]", [6]),
    ("[ a : b : 0.3 ]", [10]),
    ("[a:b:+2] [c:d:2.] [e:f:1.5e-1] [g:h:.25]", [8]),
    ("\u00e9 [\u00fc:\u00f6:2] \u6f22", [3]),
    ("\\[a:b:2] [a\\:b:2] [a:b\\]:2]", [3]),
    ("[a:(b:1.2):2] [(c:d:2)] ((e)) [[f]]", [3]),
    ("[a|[b|c]] [d:[e|f]:2]", [6]),
    ("[a:b:c:2] [x:y:2]", [3]),
    ("[a::2]:3] tail", [4]),
    ("[a:b:2]]", [3]),
    ("(([a:b:2]))", [3]),
    ("[a:b:3][c:d:0.5]", [1]),
]


def load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def f32(v):
    return "%.9g" % float(np.float32(v))


def loractl_table(gitdir):
    text = subprocess.run(["git", "--git-dir", gitdir, "show", "HEAD:loractl/lib/utils.py"], check=True,
                          capture_output=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "loractl_utils.py")
        with open(path, "wb") as f:
            f.write(text)
        u = load_module("loractl_utils", path)
    lines = []
    for spec, ns in LORACTL_CASES:
        m = u.sorted_positions(spec)
        for n in ns:
            vals = [u.calculate_weight(m, max(0, t - 2), n, step_offset=2) for t in range(1, n + 1)]
            lines.append("%s\t%d\t%s" % (spec, n, " ".join(f32(v) for v in vals)))
    return lines


def prompt_table(path):
    pp = load_module("a1111_prompt_parser", path)
    import torch
    lines = []
    for prompt, ns in PROMPT_CASES:
        for n in ns:
            sched = pp.get_learned_conditioning_prompt_schedules([prompt], n)[0]
            conds = [pp.ScheduledPromptConditioning(end, torch.tensor([float(i)])) for i, (end, _) in enumerate(sched)]
            lines.append("P\t%d\t%s" % (n, prompt))
            for t in range(1, n + 1):
                i = int(pp.reconstruct_cond_batch([conds], t - 1)[0][0])
                lines.append("S\t%d\t%s" % (t, sched[i][1]))
    return lines


TI_CASES = [
    # name, prompt (no emphasis syntax but the one weight), embedding word, its weight
    ("plain", "a photo of tinyemb cat", "tinyemb", 1.0),
    ("upper", "a photo of TinyEmb, cat", "tinyemb", 1.0),
    ("concept", "tinyconcept in the snow", "tinyconcept", 1.0),
    ("weighted", "a photo of (tinyemb:1.3) cat", "tinyemb", 1.3),
]


def ti_tables(root):
    sys.path.insert(0, os.path.dirname(HERE))
    from golden.common import save_file
    from golden.model_pipeline import SD15, components, tokenizer_files
    import torch
    from transformers import CLIPTokenizer
    with tempfile.TemporaryDirectory() as d:
        tokenizer_files(root, d)
        tok = CLIPTokenizer(os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt"), model_max_length=77,
                            clean_up_tokenization_spaces=False)
    _, _, te = components(root, SD15.model)
    g = torch.Generator().manual_seed(77)
    embs = {"tinyemb": torch.randn(2, 32, generator=g) * 0.05, "tinyconcept": torch.randn(1, 32, generator=g) * 0.05}
    edir = os.path.join(OUT, "embeddings")
    os.makedirs(edir, exist_ok=True)
    save_file({"emb_params": embs["tinyemb"].half()}, os.path.join(edir, "tinyemb.safetensors"))
    save_file({"string_to_param.*": embs["tinyconcept"]}, os.path.join(edir, "tinyconcept.safetensors"))
    save_file({"clip_l": torch.randn(3, 32, generator=g), "clip_g": torch.randn(3, 32, generator=g)},
              os.path.join(edir, "xlemb.safetensors"))
    with open(os.path.join(edir, "pickled.pt"), "wb") as f:
        f.write(b"PK\x03\x04 not opened")
    embs["tinyemb"] = embs["tinyemb"].half().float()  # what the file holds
    out = {}
    bos, eos = tok.bos_token_id, tok.eos_token_id
    for name, prompt, word, weight in TI_CASES:
        text = prompt.replace("(" + word + ":1.3)", word)
        ids = tok(text, add_special_tokens=False).input_ids
        wid = tok(word, add_special_tokens=False).input_ids
        at = next(i for i in range(len(ids)) if ids[i:i + len(wid)] == wid)
        vec = embs[word]
        chunk = ids[:at] + [0] * vec.shape[0] + ids[at + len(wid):]
        mult = [1.0] + [1.0] * at + [weight] * vec.shape[0] + [1.0] * (77 - 1 - at - vec.shape[0])
        window = torch.tensor([[bos] + chunk + [eos] * (76 - len(chunk))])
        off = at + 1

        def hook(mod, inp, res, off=off, vec=vec):
            res = res.clone()
            res[0, off:off + vec.shape[0]] = vec
            return res

        h = te.text_model.embeddings.token_embedding.register_forward_hook(hook)
        with torch.no_grad():
            z = te(window).last_hidden_state[0].double()
        h.remove()
        z = z * torch.tensor(mult, dtype=torch.float64)[:, None]
        out[name + ".cond"] = z.float()
    # SDXL: clip_l into TE1, clip_g into TE2
    from golden.model_pipeline_sdxl import components as xl_components
    _, _, te1, te2 = xl_components(root)
    xl = {"clip_l": torch.randn(2, 16, generator=g) * 0.05, "clip_g": torch.randn(2, 16, generator=g) * 0.05}
    save_file(xl, os.path.join(edir, "xltiny.safetensors"))
    ids = tok("a photo of xltiny cat", add_special_tokens=False).input_ids
    wid = tok("xltiny", add_special_tokens=False).input_ids
    at = next(i for i in range(len(ids)) if ids[i:i + len(wid)] == wid)
    chunk = ids[:at] + [0, 0] + ids[at + len(wid):]
    w1 = torch.tensor([[bos] + chunk + [eos] * (76 - len(chunk))])
    w2 = torch.tensor([[bos] + chunk + [eos] + [0] * (75 - len(chunk))])
    hidden = []
    for model, window, vec in ((te1, w1, xl["clip_l"]), (te2, w2, xl["clip_g"])):
        def hook(mod, inp, res, vec=vec):
            res = res.clone()
            res[0, at + 1:at + 3] = vec
            return res
        h = model.text_model.embeddings.token_embedding.register_forward_hook(hook)
        with torch.no_grad():
            o = model(window, output_hidden_states=True)
        h.remove()
        hidden.append(o.hidden_states[-2][0])
        if model is te2:
            out["xl.pooled"] = o.text_embeds[0].float()
    out["xl.cond"] = torch.cat(hidden, dim=1).float()
    save_file(out, os.path.join(OUT, "ti_expect.safetensors"), {"cases": ",".join(c[0] for c in TI_CASES)})
    print("wrote tests/data/prompt/embeddings/, tests/data/prompt/ti_expect.safetensors")


def write(name, lines):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name), "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", os.path.join("tests/data/prompt", name), len(lines), "lines")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loractl", default="/work/.mirror/cheald+sd-webui-loractl/repo",
                    help="git directory of cheald/sd-webui-loractl")
    ap.add_argument("--a1111", help="AUTOMATIC1111's modules/prompt_parser.py")
    a = ap.parse_args()
    write("loractl.tsv", loractl_table(a.loractl))
    ti_tables(ROOT)
    if a.a1111:
        write("prompt_edit.tsv", prompt_table(a.a1111))
    else:
        print("no --a1111: prompt_edit.tsv not rewritten", file=sys.stderr)


if __name__ == "__main__":
    main()
