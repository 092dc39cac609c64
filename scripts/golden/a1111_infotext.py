#!/usr/bin/env python3
"""a1111_infotext.py: the golden of `lorafuse png-info --json` (tests/data/pnginfo/a1111_parse.json),
made by A1111's own functions, executed from a checkout of AUTOMATIC1111/stable-diffusion-webui:

    python3 scripts/golden/a1111_infotext.py --git-dir /work/.mirror/OWNER+REPO/repo --rev c19d044 \
        > tests/data/pnginfo/a1111_parse.json

--git-dir: a git directory holding A1111's history (commit c19d04436496, v1.10.1, was read from a mirror
whose history contains it; the AUTOMATIC1111 repository itself is too large for the mirror tool);
--src DIR: a work tree instead. Nothing of A1111 is copied here: the source text of
modules/infotext_utils.py (re_param, re_imagesize, unquote, restore_old_hires_fix_params,
parse_generation_parameters), modules/infotext_versions.py (parse_version, backcompat),
modules/processing.py (old_hires_fix_first_pass_dimensions), modules/prompt_parser.py
(parse_prompt_attention, for the "Emphasis" field) and extensions-builtin/Lora/scripts/
lora_script.py (infotext_pasted, whose `hashes` dict is the Lora hashes split as A1111 splits them) is
read at run time, the definitions picked out with ast and executed against stubs of A1111's default
options: infotext_styles "Apply if any" with no styles defined, infotext_skip_pasting [],
auto_backcompat on, use_old_hires_fix_width_height off. Needs `packaging` (the golden venv has it).
"""
import argparse
import ast
import contextlib
import json
import math
import os
import re
import subprocess
import sys
import types


def read_source(args, path):
    if args.src:
        with open(os.path.join(args.src, path), encoding="utf-8") as f:
            return f.read()
    return subprocess.run(["git", "--git-dir", args.git_dir, "show", f"{args.rev}:{path}"], check=True,
                          capture_output=True, text=True).stdout


def pick(source, names):
    """The source text of the top-level assignments and functions named in `names`, in file order."""
    tree = ast.parse(source)
    out = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in names:
            out.append(ast.get_source_segment(source, node))
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in names for t in node.targets):
            out.append(ast.get_source_segment(source, node))
    missing = set(names) - {n for n in names if any(re.search(rf"\b{re.escape(n)}\b", s) for s in out)}
    if missing:
        sys.exit(f"not found in A1111's source: {sorted(missing)}")
    return "\n\n".join(out)


def build(args):
    from packaging import version

    opts = types.SimpleNamespace(infotext_styles="Apply if any", infotext_skip_pasting=[], auto_backcompat=True,
                                 use_old_hires_fix_width_height=False)
    styles = types.SimpleNamespace(extract_styles_from_prompt=lambda p, n: ([], p, n))  # no styles.csv
    shared = types.SimpleNamespace(opts=opts, prompt_styles=styles)

    processing = types.ModuleType("processing")
    exec(compile(pick(read_source(args, "modules/processing.py"), ["old_hires_fix_first_pass_dimensions"]),
                 "processing.py", "exec"), {"math": math}, processing.__dict__)

    versions = types.ModuleType("infotext_versions")
    vsrc = read_source(args, "modules/infotext_versions.py")
    vnames = [n.targets[0].id for n in ast.parse(vsrc).body if isinstance(n, ast.Assign)] + ["parse_version", "backcompat"]
    versions.__dict__.update({"shared": shared, "version": version, "re": re})
    exec(compile(pick(vsrc, vnames), "infotext_versions.py", "exec"), versions.__dict__)

    prompt_parser = types.ModuleType("prompt_parser")
    prompt_parser.__dict__["re"] = re
    exec(compile(pick(read_source(args, "modules/prompt_parser.py"), ["re_attention", "re_break", "re_weight",
                                                                      "parse_prompt_attention"]),
                 "prompt_parser.py", "exec"), prompt_parser.__dict__)

    g = {"re": re, "json": json, "shared": shared, "processing": processing, "infotext_versions": versions,
         "prompt_parser": prompt_parser}
    isrc = read_source(args, "modules/infotext_utils.py")
    exec(compile("from __future__ import annotations\n" + pick(
        isrc, ["re_param_code", "re_param", "re_imagesize", "unquote", "restore_old_hires_fix_params",
               "parse_generation_parameters"]), "infotext_utils.py", "exec"), g)

    captured = {}

    def sub(pattern, repl, text):  # lora_script's re.sub: its replacement closes over `hashes`
        for cell in repl.__closure__ or ():
            if isinstance(cell.cell_contents, dict):
                captured["hashes"] = dict(cell.cell_contents)
        return text

    lg = {"re": types.SimpleNamespace(sub=sub), "re_lora": None,
          "networks": types.SimpleNamespace(available_network_hash_lookup={})}
    exec(compile(pick(read_source(args, "extensions-builtin/Lora/scripts/lora_script.py"), ["infotext_pasted"]),
                 "lora_script.py", "exec"), lg)
    return g["parse_generation_parameters"], lg["infotext_pasted"], captured


# Texts: lorafuse's own output (samplers, schedule types, VAE, quoting, clip skip, Lora hashes) and what
# A1111, Forge and SD.Next write (hires fix, old first-pass sizes, versions that switch back-compat flags).
TEXTS = [
    "(masterpiece:1.2), a [small] house BREAK garden\nSteps: 2, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 8x8",
    "plain BREAK words\nNegative prompt: (ugly)\nSteps: 2, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 8x8",
    "hp\nNegative prompt: nn\nSteps: 2, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 8x8, Hires prompt: hp, "
    "Version: v1.10.1",
    "hp\nNegative prompt: nn\nSteps: 2, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 8x8, Hires negative prompt: "
    "other, Version: v1.8.0-139",
    "a house <lora:mini_lora:0.5>\nSteps: 2, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, "
    "Size: 256x256, Model hash: 9b185d980a, Model: sd15-mini, RNG: CPU, Lora hashes: \"mini_lora: e2bc260d63aa\", "
    "Version: lorafuse 0.1.0",
    "caf\u00e9 <lora:a:0.5> <lora:b:1>\nNegative prompt: dark, \"blurry\"\nSteps: 20, Sampler: Euler a, Schedule type: "
    "Automatic, CFG scale: 6.5, Seed: 123456789012, Size: 512x768, Model hash: 0123456789, Model: \"my, model\", "
    "VAE hash: 735e4c3a44, VAE: vae-ft-mse-840000-ema-pruned.safetensors, Clip skip: 2, RNG: NV, "
    "Lora hashes: \"a: 0123456789ab, b: ba9876543210\", Version: lorafuse 0.1.0",
    "line one\nline two\nNegative prompt: n1\nn2\nSteps: 4, Sampler: DPM++ 2M, Schedule type: Uniform, CFG scale: 7, "
    "Seed: 9, Size: 64x64, Model: m",
    "just a prompt, no parameters",
    "prompt\nSteps: 20, Sampler: only two",
    "masterpiece, 1girl\nNegative prompt: lowres\nSteps: 28, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 42, Size: "
    "512x512, Model hash: 45dee52b, Denoising strength: 0.5, Hires upscale: 2, Hires upscaler: Latent, Version: v1.6.0",
    "a [cat:dog:0.5]\nSteps: 20, Sampler: DDIM, CFG scale: 7, Seed: 1, Size: 512x512, Version: v1.5.1",
    "x\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 1024x1024, Refiner: sdxl_refiner, Refiner switch at: "
    "0.8, Version: v1.7.0",
    "x\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 1024x1024, Version: v1.7.0-225-g1234abcd",
    "x\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 1024x1024, Version: v1.10.1",
    "x\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 1024x1024, Version: f2.0.1v1.10.1-previous-224-g90",
    "old hires\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 1024x768, First pass size: 0x0",
    "old hires 2\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 1024x768, First pass size: 512x384",
    "hyper\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 512x512, Hypernet: anime, Hypernet strength: 0.8",
    "empty value\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 512x512, Model: , Model hash: abc",
    "fp8\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 512x512, FP8 weight: Enable for SDXL, "
    "Cache FP16 weight for LoRA: True",
    "  spaced  \n  Negative prompt:   neg  \nSteps: 20,Sampler: Euler,CFG scale: 7, Seed: 5, Size: 512x512  ",
    "quoted\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 512x512, Hires prompt: \"a, b: c\\nd\", "
    "Lora hashes: \"x: 111111111111, y:222222222222 , z: 3:3\"",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--git-dir")
    ap.add_argument("--rev", default="c19d04436496ab29ddca4758a792831ae41b31de")
    ap.add_argument("--src")
    args = ap.parse_args()
    if not args.git_dir and not args.src:
        ap.error("give --git-dir or --src")
    parse, pasted, captured = build(args)
    cases = []
    for text in TEXTS:
        with contextlib.redirect_stdout(sys.stderr):  # A1111 prints "Error parsing ..." for an empty value
            fields = parse(text)
        captured.clear()
        pasted(text, dict(fields))
        cases.append({"text": text, "fields": fields, "lora_hashes": captured.get("hashes", {})})
    json.dump({"source": f"AUTOMATIC1111/stable-diffusion-webui {args.rev} (v1.10.1)", "cases": cases}, sys.stdout,
              ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
