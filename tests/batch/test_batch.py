#!/usr/bin/env python3
"""test_batch.py: `lorafuse batch` (CTest test_batch, label cpu; Python standard library, PyYAML if present).

With models/sd15-mini.safetensors and models/lora at 64x64, 2 steps:
  - sweep expansion, ordering and sharding (--dry-run --json): the union of the shards for N = 1, 3, 7
    is the unsharded job list with no job twice; Slurm's and Kubernetes' variables pick the same shard
    as --shard; the order groups jobs by model and LoRA tags;
  - grid sheets: a sweep over s and seed (columns, rows), a sweep over one axis (one row);
  - a batch image equals `lorafuse generate`'s file for the same job, byte for byte;
  - shards run as separate processes make the unsharded run's images byte for byte, and --report over
    their manifests counts every image once; the same work split in 2 with --resume makes nothing again;
  - SIGKILL at several points (LORAFUSE_BATCH_KILL_AT: after an image file, after a record), then
    --resume: the images and the manifest's records (job, image, seed, file, sha256, params) equal a
    clean run's, with no record twice and no temporary file left; a job edited under the same id is
    made again on --resume, the others kept;
  - batchable jobs (--batchable, "batchable": true, --max-batch): consecutive jobs of one shape run as one
    batch; the same files, seeds and records (job, image, seed, file, params) as separate runs; images of
    adapters that patch every UNet product byte for byte those of separate runs, and a batch of plain
    LoRA / no-LoRA jobs byte for byte `generate --prompts-file` running the same jobs as one batch;
    --max-batch bounds the batches; a batch killed and resumed ends with every image recorded once;
  - bad input: the first line of the message for a malformed JSON line (line and column), a broken
    document, an unknown field, a sweep over --max-jobs, an axis used nowhere, an axis value out of a field's range, an unknown LoRA in one job (checked before any
    image: nothing written), an output folder that cannot be created, an existing manifest without --resume;
  - scripts/cluster/slurm-array.sbatch: `bash -n`, then two shards with the SLURM_ARRAY_* variables set
    by hand and its --report form; scripts/cluster/k8s-indexed-job.yaml parses (PyYAML, else a line check)
    and names completionMode Indexed, completions = parallelism, JOB_COMPLETION_INDEX and --shards.
Usage: test_batch.py --bin PATH/TO/lorafuse   (run from the repository root)
"""
import argparse
import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile

MODEL = "models/sd15-mini.safetensors"
FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what)


def run(binary, args, env=None, **kw):
    e = dict(os.environ)
    e.update(env or {})
    for k in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_STEP",
              "JOB_COMPLETION_INDEX"):
        if k not in (env or {}):
            e.pop(k, None)
    return subprocess.run([binary] + args, capture_output=True, text=True, env=e, **kw)


JOBS = {
    "defaults": {"model": MODEL, "steps": 2, "width": 64, "height": 64, "sampler_name": "Euler"},
    "jobs": [
        {"id": "plain", "prompt": "a house", "seed": 5, "batch_size": 2},
        {"id": "loha", "prompt": "a tree <lora:mini_loha:0.7>", "seed": 3},
    ],
    "sweeps": [
        {"id": "str", "prompt": "a cat <lora:mini_lora:{s}>", "axes": {"s": [0, 0.5, 1], "seed": [1, 2]}},
        {"id": "te", "prompt": "a dog <lora:mini_lora:te={t}:unet=0.5>", "axes": {"t": [0, 1]}, "seed": 7},
    ],
}


def pngs(d):
    out = {}
    for root, _, files in os.walk(d):
        for f in files:
            if ".tmp." in f:
                out[os.path.relpath(os.path.join(root, f), d)] = "TEMP"
            elif f.endswith(".png"):
                with open(os.path.join(root, f), "rb") as fh:
                    out[os.path.relpath(os.path.join(root, f), d)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def records(paths):
    recs = []
    for p in paths:
        with open(p) as f:
            for line in f:
                r = json.loads(line)
                recs.append((r["job"], r["image"], r["seed"], r["file"], r["sha256"], json.dumps(r["params"], sort_keys=True)))
    return recs


def dry(binary, jobs, args, env=None):
    r = run(binary, ["batch", jobs, "--dry-run", "--json"] + args, env=env)
    check(r.returncode == 0, "dry run %s: %s" % (args, r.stderr))
    return [j["id"] for j in json.loads(r.stdout)["jobs"]] if r.returncode == 0 else []


def test_shards(binary, tmp, jobs):
    full = dry(binary, jobs, [])
    check(len(full) == 10, "10 expanded jobs, got %d" % len(full))
    check(len(set(full)) == len(full), "no id twice")
    # consecutive jobs share the model and adapter set: each adapter set is one run
    with open(jobs) as f:
        doc = json.load(f)
    check(full.index("loha") not in range(full.index("str/0000-s=0_seed=1"), full.index("str/0005-s=1_seed=2")),
          "the order keeps the mini_lora sweep together")
    for n in (1, 3, 7):
        got = []
        for i in range(n):
            got += dry(binary, jobs, ["--shard", "%d/%d" % (i, n)])
        check(sorted(got) == sorted(full) and len(got) == len(full), "shards of %d: union == unsharded" % n)
    want = dry(binary, jobs, ["--shard", "1/3"])
    check(dry(binary, jobs, [], env={"SLURM_ARRAY_TASK_ID": "11", "SLURM_ARRAY_TASK_MIN": "10",
                                     "SLURM_ARRAY_TASK_COUNT": "3"}) == want, "Slurm variables pick shard 1/3")
    check(dry(binary, jobs, ["--shards", "3"], env={"JOB_COMPLETION_INDEX": "1"}) == want,
          "JOB_COMPLETION_INDEX picks shard 1/3")
    del doc


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    return struct.unpack(">II", head[16:24]) if head[:8] == b"\x89PNG\r\n\x1a\n" else (0, 0)


def test_grids(out):
    # "str": columns s (3), rows seed (2), row labels on the left; "te": one row of t (2), no row labels
    w, h = png_size(os.path.join(out, "str", "grid.png"))
    check(w > 3 * 64 and h == 24 + 2 * 64, "str grid sheet size %dx%d" % (w, h))
    check(png_size(os.path.join(out, "te", "grid.png")) == (2 * 64, 24 + 64), "te grid sheet size")


def test_generate_equal(binary, tmp, out):
    g = os.path.join(tmp, "gen")
    r = run(binary, ["generate", "--model", MODEL, "--prompt", "a cat <lora:mini_lora:0.5>", "--steps", "2",
                     "--width", "64", "--height", "64", "--sampler", "Euler", "--seed", "2", "--output-dir", g])
    check(r.returncode == 0, "generate: " + r.stderr)
    with open(os.path.join(g, "00000-2.png"), "rb") as a, \
            open(os.path.join(out, "str", "0003-s=0.5_seed=2", "00000-2.png"), "rb") as b:
        check(a.read() == b.read(), "batch image == generate's file")


def test_sharded_run(binary, tmp, jobs, clean):
    out = os.path.join(tmp, "sharded")
    procs = [subprocess.Popen([binary, "batch", jobs, "--output-dir", out, "--shard", "%d/3" % i, "--quiet"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(3)]
    for p in procs:
        _, err = p.communicate()
        check(p.returncode == 0, "shard process: " + err.decode())
    check(pngs(out) == pngs(clean), "sharded images == unsharded images")
    mans = [os.path.join(out, "manifest-shard-%d-of-3.jsonl" % i) for i in range(3)]
    check(sorted(records(mans)) == sorted(records([os.path.join(clean, "manifest.jsonl")])),
          "sharded records == unsharded records")
    # the same work split in 2 afterwards: --resume finds every image in the 3 shards' manifests
    skipped = 0
    for i in range(2):
        r = run(binary, ["batch", jobs, "--output-dir", out, "--shard", "%d/2" % i, "--resume", "--json", "--quiet"])
        st = json.loads(r.stdout) if r.returncode == 0 else {}
        check(st.get("images") == 0, "re-split shard %d/2 makes nothing: %s %s" % (i, st, r.stderr))
        skipped += st.get("skipped", 0)
    check(skipped == 11 and pngs(out) == pngs(clean), "re-split: every image found once")
    r = run(binary, ["batch", "--report", "--json"] + mans)
    rep = json.loads(r.stdout) if r.returncode == 0 else {}
    check(rep.get("images") == 11 and rep.get("jobs") == 10 and rep.get("duplicates") == 0,
          "report over the shards: %s %s" % (rep, r.stderr))


def test_resume(binary, tmp, jobs, clean):
    want_png = pngs(clean)
    want_rec = sorted(records([os.path.join(clean, "manifest.jsonl")]))
    for i, at in enumerate(("png:1", "record:2", "png:4", "record:9")):
        out = os.path.join(tmp, "resume%d" % i)
        r = run(binary, ["batch", jobs, "--output-dir", out, "--quiet"], env={"LORAFUSE_BATCH_KILL_AT": at})
        check(r.returncode == -signal.SIGKILL, "%s: killed (rc %d)" % (at, r.returncode))
        r = run(binary, ["batch", jobs, "--output-dir", out, "--quiet"])
        check(r.returncode != 0 and "--resume" in r.stderr, "%s: a second run without --resume is refused" % at)
        r = run(binary, ["batch", jobs, "--output-dir", out, "--resume", "--json", "--quiet"])
        check(r.returncode == 0, "%s: resume: %s" % (at, r.stderr))
        recs = records([os.path.join(out, "manifest.jsonl")])
        check(len(recs) == len(set(recs)) == 11, "%s: 11 records, none twice" % at)
        check(sorted(recs) == want_rec, "%s: resumed records == clean run's" % at)
        check(pngs(out) == want_png, "%s: resumed images == clean run's (no temporary file)" % at)
        if r.returncode == 0:
            st = json.loads(r.stdout)
            done = int(at.split(":")[1]) - (1 if at.startswith("png") else 0)
            check(st["skipped"] == done and st["images"] == 11 - done, "%s: %s" % (at, st))


def test_resume_edited(binary, tmp, clean):
    # a job whose parameters changed under the same id is made again; the others are kept
    out = os.path.join(tmp, "edited")
    shutil.copytree(clean, out)
    doc = json.loads(json.dumps(JOBS))
    doc["jobs"][1]["prompt"] = "a bush <lora:mini_loha:0.7>"
    jobs = os.path.join(tmp, "edited.json")
    with open(jobs, "w") as f:
        json.dump(doc, f)
    r = run(binary, ["batch", jobs, "--output-dir", out, "--resume", "--json", "--quiet"])
    st = json.loads(r.stdout) if r.returncode == 0 else {}
    check(st.get("images") == 1 and st.get("skipped") == 10, "edited job made again: %s %s" % (st, r.stderr))
    recs = records([os.path.join(out, "manifest.jsonl")])
    check(len(recs) == 11 and any(x[0] == "loha" and "a bush" in x[5] for x in recs), "edited job's new record")


def rec_keys(paths):
    return sorted((r[0], r[1], r[2], r[3], r[5]) for r in records(paths))


def test_batchable(binary, tmp, jobs, clean):
    out = os.path.join(tmp, "batchable")
    r = run(binary, ["batch", jobs, "--output-dir", out, "--batchable", "--json", "--quiet"])
    st = json.loads(r.stdout) if r.returncode == 0 else {}
    check(r.returncode == 0 and st.get("batches", 0) >= 2 and st.get("jobs") == 10,
          "--batchable: the 10 jobs in batches of at most 8 images %r %s" % (st, r.stderr))
    r = run(binary, ["batch", jobs, "--dry-run", "--json", "--batchable"])
    plan = json.loads(r.stdout) if r.returncode == 0 else {"totals": {}, "jobs": []}
    check(plan["totals"].get("batches") == st.get("batches") and
          max(j["batch"] for j in plan["jobs"]) + 1 < len(plan["jobs"]),
          "--dry-run --batchable: the batches the run makes %r" % plan["totals"])
    a, b = pngs(out), pngs(clean)
    check(set(a) == set(b), "--batchable: the same files as separate runs")
    check(rec_keys([os.path.join(out, "manifest.jsonl")]) == rec_keys([os.path.join(clean, "manifest.jsonl")]),
          "--batchable: the same records (job, image, seed, file, params) as separate runs")
    check(all(a.get(f) == b[f] for f in b if f.startswith("loha/")), "--batchable: a LoHa job's bytes as alone")
    r = run(binary, ["batch", jobs, "--output-dir", os.path.join(tmp, "mb3"), "--batchable", "--max-batch", "3",
                     "--json", "--quiet"])
    st3 = json.loads(r.stdout) if r.returncode == 0 else {}
    check(r.returncode == 0 and st3.get("batches", 0) > st.get("batches", 0),
          "--max-batch 3: more, smaller batches %r" % st3)

    # plain LoRA and no LoRA share a batch with LoHa and LoRA + DoRA jobs ("batchable" in the file)
    prompts = ["a house", "a house <lora:mini_lora:0.8>", "a house <lora:mini_loha:1>",
               "a house <lora:mini_lora:0.3> <lora:mini_dora:0.7>"]
    doc = {"defaults": {"model": MODEL, "steps": 3, "width": 32, "height": 32, "sampler_name": "Euler",
                        "batchable": True},
           "jobs": [{"id": "q%d" % i, "prompt": p} for i, p in enumerate(prompts)]}
    mixed = os.path.join(tmp, "mixed.json")
    with open(mixed, "w") as f:
        json.dump(doc, f)
    order = dry(binary, mixed, [])
    for job in doc["jobs"]:
        job["seed"] = 30 + order.index(job["id"])
    with open(mixed, "w") as f:
        json.dump(doc, f)
    outs = {}
    for name, extra in (("one", []), ("alone", ["--max-batch", "1"])):
        outs[name] = os.path.join(tmp, "mixed-" + name)
        r = run(binary, ["batch", mixed, "--output-dir", outs[name], "--json", "--quiet"] + extra)
        check(r.returncode == 0 and json.loads(r.stdout)["batches"] == (1 if name == "one" else 0),
              "batchable jobs (%s): %s %s" % (name, r.stdout, r.stderr))
    pf = os.path.join(tmp, "mixed-prompts.txt")
    with open(pf, "w") as f:
        f.write("".join(prompts[int(i[1:])] + "\n" for i in order))
    gdir = os.path.join(tmp, "mixed-generate")
    r = run(binary, ["generate", "--quiet", "--model", MODEL, "--prompts-file", pf, "--batch-size", "4", "--seed", "30",
                     "--steps", "3", "--width", "32", "--height", "32", "--sampler", "Euler", "--output-dir", gdir])
    check(r.returncode == 0, "generate --prompts-file: " + r.stderr)
    one, alone, gen = pngs(outs["one"]), pngs(outs["alone"]), pngs(gdir)
    for k, jid in enumerate(order):
        f = "%s/00000-%d.png" % (jid, 30 + k)
        check(one.get(f) is not None and one.get(f) == gen.get("%05d-%d.png" % (k, 30 + k)),
              "batchable job %s: the bytes of generate --prompts-file (one batch)" % jid)
        if "loha" in prompts[int(jid[1:])] or "dora" in prompts[int(jid[1:])]:
            check(one.get(f) == alone.get(f), "batchable job %s: the bytes of the job alone" % jid)
    check(rec_keys([os.path.join(outs["one"], "manifest.jsonl")]) ==
          rec_keys([os.path.join(outs["alone"], "manifest.jsonl")]), "batchable jobs: the records of separate runs")

    # killed in the middle of a batch, then --resume: every image recorded once, its file's hash
    out = os.path.join(tmp, "batchable-kill")
    r = run(binary, ["batch", jobs, "--output-dir", out, "--batchable", "--quiet"], env={"LORAFUSE_BATCH_KILL_AT": "record:3"})
    check(r.returncode == -signal.SIGKILL, "--batchable killed after 3 records (rc %d)" % r.returncode)
    r = run(binary, ["batch", jobs, "--output-dir", out, "--batchable", "--resume", "--quiet"])
    man = os.path.join(out, "manifest.jsonl")
    got = pngs(out)
    check(r.returncode == 0 and rec_keys([man]) == rec_keys([os.path.join(clean, "manifest.jsonl")]) and
          all(got.get(rec[3]) == rec[4] for rec in records([man])) and set(got) == set(pngs(clean)),
          "--batchable killed and resumed: every image once, as recorded %s" % r.stderr)


def first_line(r):
    return r.stderr.splitlines()[0] if r.stderr else ""


def test_bad_input(binary, tmp):
    def w(name, text):
        p = os.path.join(tmp, name)
        with open(p, "w") as f:
            f.write(text)
        return p

    job = '{"model": "%s", "prompt": "a", "steps": 2, "width": 64, "height": 64' % MODEL
    p = w("bad1.jsonl", job + '}\n' + '{"model": "m", "prompt": "b" "c"}\n')
    r = run(binary, ["batch", p, "--dry-run"])
    check(r.returncode == 1 and first_line(r) == "lorafuse batch: %s:2:30: malformed JSON near '\"c\"}'" % p,
          "malformed line: " + first_line(r))
    p = w("bad2.json", '{"defaults": {"model": "m"},\n "jobs": [\n  {"prompt": "a",, "seed": 1}\n]}\n')
    r = run(binary, ["batch", p, "--dry-run"])
    check(first_line(r) == "lorafuse batch: %s:3:18: malformed JSON near ', \"seed\": 1}'" % p,
          "broken document: " + first_line(r))
    p = w("bad3.jsonl", job + '}\n' + job + ', "id": "x", "stpes": 3}\n')
    r = run(binary, ["batch", p, "--dry-run"])
    check(first_line(r) == "lorafuse batch: %s:2: job 'x': unknown field 'stpes' (fields: id, model, prompt, "
          "negative_prompt, seed, steps, sampler_name, scheduler, cfg_scale, width, height, batch_size, n_iter, "
          "clip_skip, batchable, axes)" % p, "unknown field: " + first_line(r))
    p = w("bad-batchable.jsonl", job + ', "id": "x", "batchable": 1}\n')
    r = run(binary, ["batch", p, "--dry-run"])
    check(first_line(r) == "lorafuse batch: %s:1: job 'x': batchable must be a boolean" % p,
          "batchable not a boolean: " + first_line(r))
    p = w("bad4.jsonl", job + ', "id": "big", "prompt": "{a} {b}", "axes": {"a": [1, 2, 3, 4, 5, 6, 7, 8], '
          '"b": [1, 2, 3, 4, 5, 6, 7, 8]}}\n')
    r = run(binary, ["batch", p, "--dry-run", "--max-jobs", "50"])
    check(first_line(r) == "lorafuse batch: %s:1: sweep 'big': expands to more than 50 jobs, over the limit of 50 "
          "jobs in all (--max-jobs raises it)" % p, "job limit: " + first_line(r))
    r = run(binary, ["batch", p, "--dry-run", "--max-jobs", "64"])
    check(r.returncode == 0 and "64 jobs" in r.stdout, "--max-jobs 64 takes the sweep")
    p = w("bad6.jsonl", job + ', "id": "ax", "axes": {"zz": [1, 2]}}\n')
    r = run(binary, ["batch", p, "--dry-run"])
    check(first_line(r) == "lorafuse batch: %s:1: sweep 'ax': axis 'zz' is neither a job field nor written as {zz} "
          "in the prompt, negative_prompt, model, sampler_name or scheduler" % p, "unused axis: " + first_line(r))
    p = w("bad7.jsonl", job + ', "id": "st", "axes": {"steps": [2, 0]}}\n')
    r = run(binary, ["batch", p, "--dry-run"])
    check(first_line(r) == "lorafuse batch: %s:1: sweep 'st': steps 0 is not an integer from 1 to 10000" % p,
          "axis value out of range: " + first_line(r))
    p = w("bad5.jsonl", job + ', "id": "ok"}\n' + job + ', "id": "nolora", "prompt": "a <lora:nosuch:1>"}\n')
    out = os.path.join(tmp, "bad5")
    r = run(binary, ["batch", p, "--output-dir", out, "--quiet"])
    check(first_line(r).startswith("lorafuse batch: job 'nolora' (line 2): prompt col 3: <lora:nosuch:1>: no LoRA "
                                   "named 'nosuch' in models/lora"), "unknown LoRA: " + first_line(r))
    check(pngs(out) == {}, "unknown LoRA: no image written")
    blocker = w("afile", "")
    r = run(binary, ["batch", p, "--output-dir", os.path.join(blocker, "out")])
    check(first_line(r) == "lorafuse batch: %s: cannot create the folder: Not a directory" % os.path.join(blocker, "out"),
          "output folder: " + first_line(r))
    r = run(binary, ["batch", p, "--shard", "3/3", "--dry-run"])
    check(r.returncode == 2 and first_line(r) == "lorafuse batch: bad --shard '3/3' (I/N with 0 <= I < N)",
          "bad --shard: " + first_line(r))
    r = run(binary, ["batch", p, "--dry-run"], env={"JOB_COMPLETION_INDEX": "0"})
    check(r.returncode == 2 and first_line(r) == "lorafuse batch: JOB_COMPLETION_INDEX is set: give the number of "
          "shards with --shards N", "k8s without --shards: " + first_line(r))


def test_cluster_files(binary, tmp, jobs, clean):
    sb = "scripts/cluster/slurm-array.sbatch"
    check(subprocess.run(["bash", "-n", sb]).returncode == 0, "bash -n " + sb)
    out = os.path.join(tmp, "slurm")
    for i in range(2):
        r = run("bash", [sb, jobs, out], env={"LORAFUSE": binary, "LORAFUSE_BACKEND": "cpu", "LORAFUSE_ARGS": "--quiet",
                                            "SLURM_ARRAY_TASK_ID": str(i), "SLURM_ARRAY_TASK_MIN": "0",
                                            "SLURM_ARRAY_TASK_COUNT": "2"})
        check(r.returncode == 0, "sbatch script, task %d: %s" % (i, r.stderr))
    check(pngs(out) == pngs(clean), "two Slurm shards == unsharded images")
    r = run("bash", [sb, "--report", out], env={"LORAFUSE": binary})
    check(r.returncode == 0 and r.stdout.startswith("11 images of 10 jobs from 2 manifest(s)"),
          "sbatch --report: " + r.stdout + r.stderr)
    y = "scripts/cluster/k8s-indexed-job.yaml"
    with open(y) as f:
        text = f.read()
    try:
        import yaml  # noqa: PLC0415 (optional)
        doc = yaml.safe_load(text)
        spec = doc["spec"]
        c = spec["template"]["spec"]["containers"][0]
        cmd = c["command"]
        ok = (doc["kind"] == "Job" and spec["completionMode"] == "Indexed"
              and spec["completions"] == spec["parallelism"]
              and cmd[cmd.index("--shards") + 1] == str(spec["completions"])
              and any(e["name"] == "JOB_COMPLETION_INDEX" for e in c["env"]) and "--resume" in cmd
              and spec["template"]["spec"]["volumes"])
        check(ok, "k8s YAML (PyYAML) names Indexed, completions = parallelism = --shards, JOB_COMPLETION_INDEX")
    except ImportError:
        print("note: PyYAML not available; checking the YAML by lines")
        for want in ("kind: Job", "completionMode: Indexed", "completions: 4", "parallelism: 4",
                     "JOB_COMPLETION_INDEX", '"--shards", "4"', "persistentVolumeClaim"):
            check(want in text, "k8s YAML has " + want)
        check("\t" not in text, "k8s YAML has no tabs")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    if not os.path.exists(MODEL) or not os.path.isdir("models/lora"):
        print("skip: no", MODEL)
        return 77
    tmp = tempfile.mkdtemp(prefix="lf-batch-")
    try:
        os.environ["LORAFUSE_HASH_CACHE"] = os.path.join(tmp, "hashes")
        jobs = os.path.join(tmp, "jobs.json")
        with open(jobs, "w") as f:
            json.dump(JOBS, f, indent=1)
        test_shards(binary, tmp, jobs)
        clean = os.path.join(tmp, "clean")
        r = run(binary, ["batch", jobs, "--output-dir", clean, "--quiet"])
        check(r.returncode == 0, "clean run: " + r.stderr)
        check(len(pngs(clean)) == 13, "11 images and 2 grid sheets")
        test_grids(clean)
        test_generate_equal(binary, tmp, clean)
        test_sharded_run(binary, tmp, jobs, clean)
        test_resume(binary, tmp, jobs, clean)
        test_resume_edited(binary, tmp, clean)
        test_batchable(binary, tmp, jobs, clean)
        test_bad_input(binary, tmp)
        test_cluster_files(binary, tmp, jobs, clean)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("test_batch: %s" % ("FAILED (%d)" % len(FAILS) if FAILS else "ok"))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
