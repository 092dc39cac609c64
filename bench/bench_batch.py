#!/usr/bin/env python3
"""bench_batch.py: `lorafuse batch` against one `lorafuse generate` process per image (not a test).

A sweep of 4 LoRA strengths x 4 LBW presets x 2 seeds (32 images, one job each) on MODEL (default
models/sd15-mini.safetensors), written with the seed axis first, as a user sweeping seeds over a grid
would; prints JSON lines:
  {"bench": "batch", "case": "batch_ordered" | "batch_file_order", "images", "wall_s", "images_per_hour",
   "weights_s", "text_encoders_s", "weight_updates", "te_runs", ...}
      one `lorafuse batch` process (jobs grouped by LoRA tags, then in file order), totals from --report;
  {"bench": "batch", "case": "separate_generate", "images", "wall_s", "images_per_hour"}
      the same 32 images from 32 `lorafuse generate` processes, one after another;
  {"bench": "batch", "case": "summary", "ratio_batch_vs_separate", "weights_s_saved_by_order",
   "text_encoders_s_saved_by_order", "identical"}
      the throughput ratio and what the ordering saved; identical: every batch PNG equals generate's file.
Each case runs --repeat times (alternating batch cases), the fastest run kept (the machine is shared).
Usage: python3 bench/bench_batch.py [--bin build/lorafuse] [--model PATH] [--size 64] [--steps 4] [--repeat 3]
Run from the repository root. Results go to bench/RESULTS.md by hand.
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time

STRENGTHS = [0.25, 0.5, 0.75, 1]
LBW = ["ALL", "INS", "MIDD", "OUTD"]
SEEDS = [1, 2]


def report(binary, manifest):
    r = subprocess.run([binary, "batch", "--report", "--json", manifest], capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/lorafuse")
    ap.add_argument("--model", default="models/sd15-mini.safetensors")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each case, alternating; the fastest is kept")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="lf-bench-batch-")
    env = dict(os.environ, LF_HASH_CACHE=os.path.join(tmp, "hashes.json"))
    try:
        doc = {"defaults": {"model": a.model, "steps": a.steps, "width": a.size, "height": a.size,
                            "sampler_name": "Euler"},
               "sweeps": [{"id": "grid", "prompt": "a cat <lora:mini_lora:{s}:lbw={b}>",
                           "axes": {"seed": SEEDS, "s": STRENGTHS, "b": LBW}}]}
        jobs = os.path.join(tmp, "jobs.json")
        with open(jobs, "w") as f:
            json.dump(doc, f)
        # the hash cache warm for every case, as in a user's second run
        subprocess.run([a.bin, "batch", jobs, "--dry-run"], capture_output=True, env=env, check=True)
        res = {}
        for rep_i in range(a.repeat):
            for case, extra in (("batch_ordered", []), ("batch_file_order", ["--order", "file"])):
                out = os.path.join(tmp, case)
                shutil.rmtree(out, ignore_errors=True)
                t0 = time.monotonic()
                subprocess.run([a.bin, "batch", jobs, "--output-dir", out, "--quiet"] + extra, capture_output=True,
                               env=env, check=True)
                wall = time.monotonic() - t0
                rep = report(a.bin, os.path.join(out, "manifest.jsonl"))
                t = rep["times"]
                row = {"bench": "batch", "case": case, "images": rep["images"], "wall_s": round(wall, 3),
                       "images_per_hour": round(rep["images"] * 3600 / wall, 1),
                       "load_s": round(t["load"], 4), "weights_s": round(t["weights"], 4),
                       "text_encoders_s": round(t["text_encoders"], 4), "unet_s": round(t["unet"], 4),
                       "vae_s": round(t["vae"], 4), "weight_updates": int(t["weight_updates"]),
                       "te_runs": int(t["te_runs"]), "run": rep_i + 1}
                print(json.dumps(row), flush=True)
                if case not in res or wall < res[case]["wall_s"]:
                    res[case] = row
        # the same images, one generate process each
        ordered = os.path.join(tmp, "batch_ordered")
        recs = [json.loads(x) for x in open(os.path.join(ordered, "manifest.jsonl"))]
        gen = os.path.join(tmp, "gen")
        identical = True
        best = None
        for rep_i in range(a.repeat):
            shutil.rmtree(gen, ignore_errors=True)
            os.mkdir(gen)
            t0 = time.monotonic()
            for i, r in enumerate(recs):
                p = r["params"]
                d = os.path.join(gen, str(i))
                subprocess.run([a.bin, "generate", "--model", a.model, "--prompt", p["prompt"], "--steps",
                                str(a.steps), "--width", str(a.size), "--height", str(a.size), "--sampler", "Euler",
                                "--seed", str(r["seed"]), "--output-dir", d], capture_output=True, env=env, check=True)
            w = time.monotonic() - t0
            print(json.dumps({"bench": "batch", "case": "separate_generate", "wall_s": round(w, 3), "run": rep_i + 1}),
                  flush=True)
            best = w if best is None else min(best, w)
        wall = best
        for i, r in enumerate(recs):
            d = os.path.join(gen, str(i))
            with open(os.path.join(d, os.listdir(d)[0]), "rb") as f1, open(os.path.join(ordered, r["file"]), "rb") as f2:
                identical &= f1.read() == f2.read()
        sep = {"bench": "batch", "case": "separate_generate_best", "images": len(recs), "wall_s": round(wall, 3),
               "images_per_hour": round(len(recs) * 3600 / wall, 1)}
        print(json.dumps(sep), flush=True)
        o, fo = res["batch_ordered"], res["batch_file_order"]
        print(json.dumps({"bench": "batch", "case": "summary",
                          "ratio_batch_vs_separate": round(o["images_per_hour"] / sep["images_per_hour"], 2),
                          "weights_s_saved_by_order": round(fo["weights_s"] - o["weights_s"], 4),
                          "weight_updates_saved_by_order": fo["weight_updates"] - o["weight_updates"],
                          "text_encoders_s_saved_by_order": round(fo["text_encoders_s"] - o["text_encoders_s"], 4),
                          "te_runs_saved_by_order": fo["te_runs"] - o["te_runs"],
                          "identical": identical}), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
