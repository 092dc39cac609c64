#!/usr/bin/env python3
"""test_serve.py: `lorafuse serve` driven over HTTP (CTest test_serve, label cpu; Python standard library).

Starts the server on a free loopback port (--listen 127.0.0.1:0, the port read from its ready line) with
models/sd15-mini.safetensors and models/lora, and checks:
  - every endpoint answers in A1111's shapes (health, samplers, schedulers, sd-models, loras,
    refresh-loras, options GET/POST, progress, interrupt, png-info);
  - a txt2img PNG equals the file `lorafuse generate` writes with the same settings, byte for byte
    (pixels and parameters), for a LoRA request, a batch with an ancestral sampler and clip skip;
  - LoRA A -> LoRA B -> no LoRA -> LoRA A on one server gives the bytes of fresh processes, and only the
    loaded weights whose bytes differ are rewritten between requests, and text-encoder outputs are reused
    for the same texts and text-encoder weights (info.lorafuse_timings);
  - an SDXL model (tests/data/pipeline/sdxl-mini) switching LoRA -> none -> LoRA equals fresh processes;
  - a request with every field of A1111's request model (as real clients send it) is accepted;
  - every error status: 422 (type, range, features lorafuse does not do, unknown LoRA with the closest
    names, a bad tag with its column, limits), 404, 405, 413, 401 (--api-auth), 503 with Retry-After
    (full queue), 500 (a job that fails while running); the server keeps serving after each;
  - interrupt stops a running job; save_images writes under --output-dir without overwriting;
  - the adapter file cache: a repeated LoRA is a hit, a file replaced on disk is opened again (and its
    new weights used), refresh-loras empties it, the size bound evicts, --lora-cache-mb 0 keeps nothing;
  - SIGTERM with a running job and a full queue: the running one answers, the queued one gets 503,
    the process exits 0;
  - load: 8 concurrent clients x 4 requests with mixed LoRA sets and bad requests, every good answer
    the bytes of the reference image (LoRAs merged per request in a batch, the default);
  - request batching (--max-batch): requests queued behind a running one with different LoRAs run as one
    batch (info.lorafuse_batch, /health "batching") and each gets its own images, seeds and parameters:
    the bytes of the same requests sent one after another (ancestral samplers run one after another; a
    deterministic one as one mixed batch with --batch-lora merged, the default), and of `generate
    --prompts-file --batch-lora merged`; requests that differ in steps or size are not grouped and one
    that fits overtakes them; --max-batch bounds the images of a batch, --max-batch 1 groups nothing;
    --batch-lora unmerged shows in /health; a bad request in a batch gets its own 422 and the others their
    images; an interrupt answers every request of the running batch.
Usage: test_serve.py --bin PATH/TO/lorafuse   (run from the repository root)
"""
import argparse
import base64
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

MODEL = "models/sd15-mini.safetensors"
LORA_DIR = "models/lora"
FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL: " + what, flush=True)
    return cond


class Server:
    def __init__(self, binary, *extra, model=MODEL, lora_dir=LORA_DIR):
        self.proc = subprocess.Popen([binary, "serve", "--model", model, "--listen", "127.0.0.1:0", "--lora-dir",
                                      lora_dir, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if "listening on http://" not in line:
            raise SystemExit("server did not start: %r %s" % (line, self.proc.stderr.read()))
        hostport = line.split("http://")[1].split(",")[0]
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)

    def request(self, method, path, body=None, headers=None, raw=None, timeout=300):
        c = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read()
        c.close()
        try:
            js = json.loads(text)
        except ValueError:
            js = None
        return r.status, js, dict(r.getheaders())

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return rc


def sha(b):
    return hashlib.sha256(b).hexdigest()


def generate(binary, tmp, prompt, steps, seed, w, h, sampler, extra=(), model=MODEL, lora_dir=LORA_DIR):
    """The PNG files of a fresh `lorafuse generate`, in order."""
    out = tempfile.mkdtemp(dir=tmp)
    subprocess.run([binary, "generate", "--quiet", "--model", model, "--lora-dir", lora_dir,
                    *(["--prompt", prompt] if prompt is not None else []), "--steps", str(steps), "--seed", str(seed), "--width", str(w), "--height", str(h), "--sampler",
                    sampler, "--output-dir", out, *extra], check=True, stdout=subprocess.DEVNULL)
    files = sorted(os.listdir(out))
    data = [open(os.path.join(out, f), "rb").read() for f in files]
    shutil.rmtree(out)
    return data


def txt2img(srv, **kw):
    st, js, hd = srv.request("POST", "/sdapi/v1/txt2img", kw)
    return st, js, hd


def images(js):
    return [base64.b64decode(i) for i in js["images"]]


def batch_of(js):
    return json.loads(js["info"]).get("lorafuse_batch", {})


def t_endpoints(srv):
    st, js, _ = srv.request("GET", "/health")
    check(st == 200 and js["status"] == "ok", "health")
    st, js, _ = srv.request("GET", "/sdapi/v1/samplers")
    names = [x["name"] for x in js]
    check(st == 200 and "Euler a" in names and "DPM++ 2M" in names and all("options" in x for x in js), "samplers")
    st, js, _ = srv.request("GET", "/sdapi/v1/schedulers")
    check(st == 200 and [x["name"] for x in js] == ["automatic", "karras"], "schedulers")
    st, js, _ = srv.request("GET", "/sdapi/v1/sd-models")
    check(st == 200 and len(js) == 1 and js[0]["model_name"] == "sd15-mini" and
          js[0]["title"].startswith("sd15-mini.safetensors ["), "sd-models %r" % js)
    st, js, _ = srv.request("GET", "/sdapi/v1/loras")
    check(st == 200 and {"mini_lora", "mini_loha", "mini_lokr", "mini_dora"} <= {x["name"] for x in js} and
          all({"name", "alias", "path", "metadata"} <= set(x) for x in js), "loras")
    st, js, _ = srv.request("POST", "/sdapi/v1/refresh-loras")
    check(st == 200, "refresh-loras")
    st, js, _ = srv.request("GET", "/sdapi/v1/options")
    check(st == 200 and js["CLIP_stop_at_last_layers"] == 1 and js["randn_source"] == "CPU", "options get %r" % js)
    st, js, _ = srv.request("POST", "/sdapi/v1/options", {"CLIP_stop_at_last_layers": 2})
    st2, js2, _ = srv.request("GET", "/sdapi/v1/options")
    check(st == 200 and js2["CLIP_stop_at_last_layers"] == 2, "options post")
    st, js, _ = srv.request("POST", "/sdapi/v1/options", {"CLIP_stop_at_last_layers": 1, "bogus_option": 3})
    st2, js2, _ = srv.request("GET", "/sdapi/v1/options")
    check(st == 422 and "bogus_option" in js["detail"][0]["msg"] and js2["CLIP_stop_at_last_layers"] == 2,
          "options post: unknown option refused, nothing applied")
    st, js, _ = srv.request("GET", "/sdapi/v1/options")
    st2, js2, _ = srv.request("POST", "/sdapi/v1/options", dict(js, CLIP_stop_at_last_layers=1))
    check(st2 == 200, "options: what GET gives can be posted back %r" % js2)
    st, js, _ = srv.request("GET", "/sdapi/v1/progress")
    check(st == 200 and js["progress"] == 0 and js["state"]["job_count"] == 0 and "eta_relative" in js, "progress idle")
    st, js, _ = srv.request("POST", "/sdapi/v1/interrupt")
    check(st == 200, "interrupt idle")


def t_identity(srv, binary, tmp):
    # LoRA, DPM++ 2M with scheduler karras
    st, js, _ = txt2img(srv, prompt="a cat <lora:mini_lora:0.8>", negative_prompt="blurry", steps=3, seed=5,
                        width=64, height=48, sampler_name="DPM++ 2M", scheduler="karras", cfg_scale=6.5)
    ref = generate(binary, tmp, "a cat <lora:mini_lora:0.8>", 3, 5, 64, 48, "DPM++ 2M Karras",
                   ("--negative", "blurry", "--cfg", "6.5"))
    check(st == 200 and images(js) == ref, "txt2img == generate (LoRA, DPM++ 2M Karras)")
    info = json.loads(js["info"])
    check(info["all_seeds"] == [5] and info["sampler_name"] == "DPM++ 2M Karras" and len(info["infotexts"]) == 1 and
          js["parameters"]["prompt"] == "a cat <lora:mini_lora:0.8>", "txt2img info and parameters")
    # png-info of that image
    st, pi, _ = srv.request("POST", "/sdapi/v1/png-info", {"image": "data:image/png;base64," + js["images"][0]})
    check(st == 200 and pi["info"] == info["infotexts"][0] and pi["parameters"].get("Seed") == "5", "png-info")
    # batch with an ancestral sampler (one sampler run per image), n_iter, clip skip through override_settings
    st, js, _ = txt2img(srv, prompt="a dog <lora:mini_loha:0.5>", steps=2, seed=11, width=40, height=40,
                        sampler_name="Euler a", batch_size=2, n_iter=2,
                        override_settings={"CLIP_stop_at_last_layers": 2})
    ref = generate(binary, tmp, "a dog <lora:mini_loha:0.5>", 2, 11, 40, 40, "Euler a",
                   ("--batch-size", "2", "--batch-count", "2", "--clip-skip", "2"))
    check(st == 200 and len(js["images"]) == 4 and images(js) == ref, "txt2img == generate (batch, Euler a, clip skip)")
    check(st == 200 and json.loads(js["info"])["all_seeds"] == [11, 12, 13, 14], "all_seeds of a batch")


def t_changed_only(srv):
    """Only the loaded weights whose bytes differ are rewritten between requests and sampler runs."""
    last = {}

    def updates(prompt, n_iter=1):
        st, js, _ = txt2img(srv, prompt=prompt, steps=2, seed=1, width=32, height=32, sampler_name="Euler",
                            n_iter=n_iter)
        t = json.loads(js["info"])["lorafuse_timings"] if st == 200 else {}
        last["te_runs"] = t.get("te_runs")
        return t.get("weight_updates")
    first = updates("w <lora:mini_lora:1>")
    check(first and first > 0, "a LoRA request rewrites its layers (%r)" % first)
    check(updates("w <lora:mini_lora:1>", n_iter=2) == 0, "the same LoRA again, two sampler runs: nothing rewritten")
    check(last["te_runs"] == 0, "the same prompt and text-encoder weights: no text encoding (memo)")
    check(updates("other words <lora:mini_lora:1>") == 0, "another prompt, same adapters: nothing rewritten")
    check(last["te_runs"] == 1, "another prompt: encoded")
    check(updates("w") == first, "no LoRA after it: exactly its layers restored")
    check(last["te_runs"] == 1, "the same text with other text-encoder weights: encoded")
    check(updates("w") == 0, "no LoRA again: nothing rewritten")
    check(last["te_runs"] == 0, "no LoRA again: no text encoding")
    updates("w <lora:mini_lora:1>")
    check(last["te_runs"] == 0, "back to the LoRA: its encoding is still in the memo")
    updates("w <lora:mini_lora:te=0.5:unet=1>")
    check(last["te_runs"] == 1, "another text-encoder strength: encoded")


def t_sequence(srv, binary, tmp):
    seq = ["a house <lora:mini_lora:1>", "a house <lora:mini_lokr:0.7> <lora:mini_dora:0.6>", "a house",
           "a house <lora:mini_lora:1>", "a house <lora:mini_lora:0.2@1,1@2>", "a house",
           # a UNet-only adapter with unet=0: planned, but its layers stay at zero at every step
           "a house <lora:mini_loha:1>", "a house <lora:mini_loha:te=1:unet=0>"]
    for p in seq:
        st, js, _ = txt2img(srv, prompt=p, steps=3, seed=3, width=48, height=48, sampler_name="Euler")
        ref = generate(binary, tmp, p, 3, 3, 48, 48, "Euler")
        check(st == 200 and images(js) == ref, "sequence: %r after the previous ones == a fresh process" % p)


A1111_CLIENT_BODY = {
    "prompt": "a tree <lora:mini_lora:0.5>", "negative_prompt": "", "styles": [], "seed": 21, "subseed": -1,
    "subseed_strength": 0, "seed_resize_from_h": -1, "seed_resize_from_w": -1, "sampler_name": "Euler",
    "scheduler": "automatic", "batch_size": 1, "n_iter": 1, "steps": 2, "cfg_scale": 7, "width": 32, "height": 32,
    "restore_faces": False, "tiling": False, "do_not_save_samples": False, "do_not_save_grid": False, "eta": 0,
    "denoising_strength": 0.7, "s_min_uncond": 0, "s_churn": 0, "s_tmax": None, "s_tmin": 0, "s_noise": 1,
    "override_settings": {}, "override_settings_restore_afterwards": True, "refiner_checkpoint": None,
    "refiner_switch_at": None, "disable_extra_networks": False, "firstpass_image": None, "comments": {},
    "enable_hr": False, "firstphase_width": 0, "firstphase_height": 0, "hr_scale": 2, "hr_upscaler": "Latent",
    "hr_second_pass_steps": 0, "hr_resize_x": 0, "hr_resize_y": 0, "hr_checkpoint_name": None,
    "hr_sampler_name": None, "hr_scheduler": None, "hr_prompt": "", "hr_negative_prompt": "",
    "force_task_id": None, "sampler_index": "Euler", "script_name": None, "script_args": [], "send_images": True,
    "save_images": False, "alwayson_scripts": {}, "infotext": None, "some_future_field": 1,
}


def t_client_body(srv, binary, tmp):
    st, js, _ = txt2img(srv, **A1111_CLIENT_BODY)
    ref = generate(binary, tmp, "a tree <lora:mini_lora:0.5>", 2, 21, 32, 32, "Euler")
    check(st == 200 and images(js) == ref, "a body with every A1111 field (client defaults) %s" % (js if st != 200 else ""))


def expect_422(srv, body, field, words, what):
    base = {"prompt": "x", "steps": 2, "width": 32, "height": 32, "sampler_name": "Euler", "seed": 1}
    base.update(body)
    st, js, _ = txt2img(srv, **base)
    ok = st == 422 and isinstance(js.get("detail"), list)
    if ok:
        d = js["detail"][0]
        ok = (field is None or d["loc"] == ["body", field]) and all(w in d["msg"] for w in words)
    check(ok, "422 %s: %s %r" % (what, st, js))


def t_errors(srv):
    expect_422(srv, {"steps": "abc"}, "steps", ["integer"], "type of steps")
    expect_422(srv, {"steps": 2.5}, "steps", ["integer"], "steps not an integer")
    expect_422(srv, {"steps": 0}, "steps", ["steps"], "steps 0")
    expect_422(srv, {"steps": 151}, "steps", ["150"], "steps over the limit")
    expect_422(srv, {"width": 100}, "width", ["multiple of 8"], "width not a multiple of 8")
    expect_422(srv, {"width": 4096, "height": 4096}, "width", ["pixels"], "pixel limit")
    expect_422(srv, {"enable_hr": True}, "enable_hr", ["hires"], "enable_hr")
    expect_422(srv, {"script_name": "x/y/z plot"}, "script_name", ["x/y/z plot"], "script_name")
    expect_422(srv, {"alwayson_scripts": {"controlnet": {"args": []}}}, "alwayson_scripts", ["controlnet"], "alwayson")
    expect_422(srv, {"restore_faces": True}, "restore_faces", ["face"], "restore_faces")
    expect_422(srv, {"subseed_strength": 0.3}, "subseed_strength", ["subseed"], "subseed_strength")
    expect_422(srv, {"styles": ["cinematic"]}, "styles", ["cinematic"], "unknown style")
    expect_422(srv, {"sampler_name": "LMS"}, "sampler_name", ["LMS"], "unknown sampler")
    expect_422(srv, {"scheduler": "exponential"}, "scheduler", ["exponential"], "unknown scheduler")
    expect_422(srv, {"sampler_name": "Euler a", "eta": 0.5}, "eta", ["eta"], "eta with an ancestral sampler")
    expect_422(srv, {"override_settings": {"eta_noise_seed_delta": 31337}}, "override_settings",
               ["eta_noise_seed_delta"], "unknown override setting")
    expect_422(srv, {"override_settings": {"sd_model_checkpoint": "other.safetensors"}}, "override_settings",
               ["other.safetensors"], "another model")
    expect_422(srv, {"prompt": "x <lora:mini_lorra:1>"}, "prompt", ["mini_lora"], "unknown LoRA lists the closest")
    expect_422(srv, {"prompt": "a <lora:mini_lora:abc>"}, "prompt", ["col"], "bad tag gives its column")
    expect_422(srv, {"prompt": "a <lora:../lora/mini_lora:1>"}, "prompt", [], "a name leaving the LoRA directory")
    expect_422(srv, {"prompt": "a <lora:%s:1>" % os.path.abspath("models/lora/mini_lora")}, "prompt", [],
               "an absolute path")
    expect_422(srv, {"prompt": "<lora:mini_lora:1>" * 33}, "prompt", ["32"], "tag limit")
    st, js, _ = srv.request("POST", "/sdapi/v1/txt2img", raw="{not json")
    check(st == 422, "invalid JSON: %s" % st)
    st, js, _ = srv.request("POST", "/sdapi/v1/txt2img", raw="[1, 2]")
    check(st == 422, "a JSON array: %s" % st)
    st, js, _ = srv.request("GET", "/sdapi/v1/nothing")
    check(st == 404 and js == {"detail": "Not Found"}, "404")
    st, js, _ = srv.request("GET", "/sdapi/v1/txt2img")
    check(st == 405, "405")
    # a Content-Length over --max-body-mb is refused before the body is read (the server then closes)
    sk = socket.create_connection((srv.host, srv.port), timeout=30)
    sk.sendall(b"POST /sdapi/v1/txt2img HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % (2 << 20))
    head = sk.recv(4096).decode("latin-1")
    sk.close()
    check(head.startswith("HTTP/1.1 413"), "413 body over --max-body-mb: %r" % head[:40])
    # a job that fails while running: a strength that makes the weights infinite
    st, js, _ = txt2img(srv, prompt="a <lora:mini_lora:1e30>", steps=2, width=32, height=32, sampler_name="Euler",
                        seed=1)
    check(st == 500 and "errors" in js and "error" in js, "500 when the job fails: %s %r" % (st, js))
    st, js, _ = srv.request("GET", "/health")
    check(st == 200, "still serving after the errors")


def t_interrupt_progress(srv):
    res = {}

    def run():
        res["r"] = txt2img(srv, prompt="a slow one", steps=60, seed=2, width=128, height=128, sampler_name="Euler")
    t = threading.Thread(target=run)
    t.start()
    seen = None
    deadline = time.time() + 120
    while time.time() < deadline:
        st, js, _ = srv.request("GET", "/sdapi/v1/progress")
        if js["state"]["sampling_step"] >= 1:
            seen = js
            break
        time.sleep(0.02)
    check(seen is not None and seen["state"]["job_count"] == 1 and seen["state"]["sampling_steps"] == 60 and
          0 < seen["progress"] < 1, "progress while a job runs %r" % seen)
    st, _, _ = srv.request("POST", "/sdapi/v1/interrupt")
    t.join(120)
    st, js, _ = res["r"]
    info = json.loads(js["info"]) if st == 200 else {}
    check(st == 200 and info.get("interrupted") is True and js["images"] == [], "interrupted job answers 200")


def t_save(srv, out):
    a = txt2img(srv, prompt="saved", steps=2, seed=9, width=32, height=32, sampler_name="Euler", save_images=True)
    b = txt2img(srv, prompt="saved", steps=2, seed=9, width=32, height=32, sampler_name="Euler", save_images=True)
    files = sorted(os.listdir(out))
    check(a[0] == 200 and b[0] == 200 and len(files) == 2, "save_images: two files, none overwritten %r" % files)
    if len(files) == 2:
        check(open(os.path.join(out, files[0]), "rb").read() == images(a[1])[0], "saved file == returned image")


def t_auth(binary):
    srv = Server(binary, "--api-auth", "alice:s3cret,bob:pw")
    try:
        st, js, hd = srv.request("GET", "/sdapi/v1/samplers")
        check(st == 401 and "Basic" in hd.get("WWW-Authenticate", ""), "401 without credentials")
        bad = base64.b64encode(b"alice:wrong").decode()
        st, _, _ = srv.request("GET", "/sdapi/v1/samplers", headers={"Authorization": "Basic " + bad})
        check(st == 401, "401 with a wrong password")
        st, _, _ = srv.request("POST", "/sdapi/v1/txt2img", {"prompt": "x"}, headers={"Authorization": "Basic " + bad})
        check(st == 401, "401 before a txt2img body is looked at")
        good = base64.b64encode(b"bob:pw").decode()
        st, _, _ = srv.request("GET", "/sdapi/v1/samplers", headers={"Authorization": "Basic " + good})
        check(st == 200, "200 with valid credentials")
        st, _, _ = srv.request("GET", "/health")
        check(st == 200, "health needs no credentials")
    finally:
        check(srv.stop() == 0, "auth server exits 0")


def t_sdxl(binary, tmp):
    """An SDXL model (two text encoders): LoRA -> none -> LoRA against fresh processes."""
    model, loras = "tests/data/pipeline/sdxl-mini.safetensors", "tests/data/pipeline/lora"
    srv = Server(binary, model=model, lora_dir=loras)
    try:
        for p in ["a cat <lora:sdxl_mini_lora:0.7>", "a cat", "a cat <lora:sdxl_mini_lora:0.7>"]:
            st, js, _ = txt2img(srv, prompt=p, steps=2, seed=3, width=64, height=64, sampler_name="Euler")
            ref = generate(binary, tmp, p, 2, 3, 64, 64, "Euler", model=model, lora_dir=loras)
            check(st == 200 and images(js) == ref, "SDXL: %r == a fresh process" % p)
    finally:
        check(srv.stop() == 0, "SDXL server exits 0")


def t_cache(binary, tmp):
    """The LRU cache of opened adapter files: hits, a file changed on disk, refresh-loras, --lora-cache-mb 0."""
    ldir = os.path.join(tmp, "cache_loras")
    os.makedirs(ldir)
    f = os.path.join(ldir, "style.safetensors")
    shutil.copy(os.path.join(LORA_DIR, "mini_lora.safetensors"), f)
    srv = Server(binary, lora_dir=ldir)
    body = dict(prompt="c <lora:style:0.9>", steps=2, seed=4, width=32, height=32, sampler_name="Euler")

    def cache():
        return srv.request("GET", "/health")[1]["lora_cache"]
    try:
        txt2img(srv, **body)
        st, js, _ = txt2img(srv, **body)
        c = cache()
        check(st == 200 and c["hits"] == 1 and c["misses"] == 1 and c["entries"] == 1, "cache: a hit %r" % c)
        # the file replaced by another adapter under the same name: opened again, the new weights used
        shutil.copy(os.path.join(LORA_DIR, "mini_loha.safetensors"), f)
        st, js, _ = txt2img(srv, **body)
        ref = generate(binary, tmp, body["prompt"], 2, 4, 32, 32, "Euler", lora_dir=ldir)
        c = cache()
        check(st == 200 and images(js) == ref and c["misses"] == 2 and c["entries"] == 1,
              "cache: a file changed on disk is opened again and its new weights used %r" % c)
        srv.request("POST", "/sdapi/v1/refresh-loras")
        check(cache()["entries"] == 0, "cache: refresh-loras drops the opened files")
    finally:
        check(srv.stop() == 0, "cache server exits 0")
    # the size bound: 1 MiB holds mini_lora (0.34 MB) but not mini_loha (1.1 MB), 2 MiB holds both
    for mb, after in (("1", [1, 0]), ("2", [1, 2])):
        srv = Server(binary, "--lora-cache-mb", mb)
        try:
            got = []
            for name in ("mini_lora", "mini_loha"):
                txt2img(srv, **dict(body, prompt="c <lora:%s:1>" % name))
                got.append(srv.request("GET", "/health")[1]["lora_cache"]["entries"])
            check(got == after, "--lora-cache-mb %s: entries %r, expected %r" % (mb, got, after))
        finally:
            check(srv.stop() == 0, "cache size server exits 0")
    srv = Server(binary, "--lora-cache-mb", "0", lora_dir=ldir)
    try:
        st, js, _ = txt2img(srv, **body)
        check(st == 200 and images(js) == ref and srv.request("GET", "/health")[1]["lora_cache"]["entries"] == 0,
              "--lora-cache-mb 0 keeps nothing")
    finally:
        check(srv.stop() == 0, "no-cache server exits 0")


def t_queue_and_sigterm(binary):
    srv = Server(binary, "--queue", "1")
    res = {}

    def run(key, **kw):
        res[key] = txt2img(srv, **kw)
    slow = dict(prompt="slow", steps=80, seed=1, width=128, height=128, sampler_name="Euler")
    t1 = threading.Thread(target=run, args=("running",), kwargs=slow)
    t1.start()
    deadline = time.time() + 60
    while time.time() < deadline and srv.request("GET", "/sdapi/v1/progress")[1]["state"]["sampling_step"] < 1:
        time.sleep(0.02)
    t2 = threading.Thread(target=run, args=("queued",), kwargs=dict(slow, prompt="queued"))
    t2.start()
    while time.time() < deadline and srv.request("GET", "/sdapi/v1/progress")[1]["state"]["job_count"] < 2:
        time.sleep(0.02)
    st, js, hd = txt2img(srv, **dict(slow, prompt="one too many"))
    check(st == 503 and "Retry-After" in hd, "503 with Retry-After when the queue is full: %s %r" % (st, hd))
    st, _, _ = srv.request("GET", "/health")
    check(st == 200, "still serving with a full queue")
    rc = srv.stop(signal.SIGTERM)
    t1.join(60)
    t2.join(60)
    check(rc == 0, "SIGTERM: exit 0 (got %s)" % rc)
    r = res.get("running")
    check(r is not None and r[0] == 200 and json.loads(r[1]["info"])["interrupted"] is True,
          "SIGTERM: the running job is interrupted and answered")
    q = res.get("queued")
    check(q is not None and q[0] == 503, "SIGTERM: the queued job gets 503 (%r)" % (q[:2] if q else None,))


def t_load(srv):
    sets = ["", "<lora:mini_lora:0.8>", "<lora:mini_loha:1> <lora:mini_lokr:0.5>", "<lora:mini_dora:0.7>"]
    ref = {}
    for i, s in enumerate(sets):
        st, js, _ = txt2img(srv, prompt="load " + s, steps=2, seed=40 + i, width=32, height=32, sampler_name="Euler")
        ref[i] = images(js)[0] if st == 200 else None
    errors = []

    def client(c):
        for k in range(4):
            i = (c + k) % len(sets)
            if (c + k) % 3 == 2:
                st, js, _ = txt2img(srv, prompt="load <lora:no_such_lora:1>", steps=2, width=32, height=32)
                if st != 422:
                    errors.append("bad request answered %s" % st)
                continue
            st, js, _ = txt2img(srv, prompt="load " + sets[i], steps=2, seed=40 + i, width=32, height=32,
                                sampler_name="Euler")
            if st != 200:
                errors.append("client %d request %d: %s" % (c, k, st))
            elif images(js)[0] != ref[i]:
                errors.append("client %d request %d: another image (batch %r)" % (c, k, batch_of(js)))
    ts = [threading.Thread(target=client, args=(c,)) for c in range(8)]
    t0 = time.time()
    for t in ts:
        t.start()
    for t in ts:
        t.join(300)
    check(not errors and all(v is not None for v in ref.values()), "load: 8 clients x 4 requests %r" % errors)
    print("load: 32 requests in %.1f s" % (time.time() - t0), flush=True)


def job_count(srv):
    return srv.request("GET", "/sdapi/v1/progress")[1]["state"]["job_count"]


def queued_behind_blocker(srv, bodies, during=None):
    """Send bodies one after another while a slow request holds the worker, so that they arrive in this
    order while a job runs; then interrupt the blocker, call during() and return their (status, json)."""
    res = {}

    def run(key, body):
        st, js, _ = txt2img(srv, **body)
        res[key] = (st, js)
    blocker = threading.Thread(target=run, args=("blocker", dict(prompt="blocker", steps=150, seed=1, width=128,
                                                                  height=128, sampler_name="Euler")))
    blocker.start()
    deadline = time.time() + 120
    while time.time() < deadline and srv.request("GET", "/sdapi/v1/progress")[1]["state"]["sampling_step"] < 1:
        time.sleep(0.01)
    ts = []
    for k, b in enumerate(bodies):
        t = threading.Thread(target=run, args=(k, b))
        t.start()
        ts.append(t)
        while time.time() < deadline and job_count(srv) < k + 2:
            time.sleep(0.005)
    check(job_count(srv) == len(bodies) + 1 and "blocker" not in res, "batching: %d requests queued behind a running "
          "one" % len(bodies))
    srv.request("POST", "/sdapi/v1/interrupt")
    blocker.join(300)
    if during:
        during()
    for t in ts:
        t.join(300)
    return [res.get(k, (None, None)) for k in range(len(bodies))]


def t_batching(srv, binary, tmp):
    sets = ["", "<lora:mini_lora:0.8>", "<lora:mini_loha:1> <lora:mini_lokr:0.5>", "<lora:mini_dora:0.7>"]
    st, h0, _ = srv.request("GET", "/health")
    check(st == 200 and h0["batching"]["max_batch"] == 8 and h0["batching"]["lora"] == "merged",
          "health: batching, --max-batch 8 and --batch-lora merged by default %r" % h0)

    # Euler a (noise per image): the batch's requests run one after another in one call, each the bytes of
    # alone; Euler: one mixed batch (LoRAs merged per request, the default), each image the bytes of the
    # same request alone and of `generate --prompts-file --batch-lora merged` running the same jobs as one batch
    def body(i, s, sampler, **kw):
        return dict(dict(prompt="b%d %s" % (i, s) if s else "b%d" % i, steps=3, seed=60 + i, width=32, height=32,
                         sampler_name=sampler), **kw)
    for sampler, bs in (("Euler a", 2), ("Euler", 1)):
        bodies = [body(i, s, sampler, batch_size=bs if i == 1 else 1, seed=60 + 10 * i if bs > 1 else 60 + i)
                  for i, s in enumerate(sets)]
        ref = []
        for b in bodies:
            st, js, _ = txt2img(srv, **b)
            ref.append(images(js) if st == 200 else None)
            check(st == 200 and batch_of(js) == {"requests": 1, "images": b["batch_size"], "index": 0},
                  "batching: a request sent alone runs alone %r" % (batch_of(js) if st == 200 else st))
        got = queued_behind_blocker(srv, bodies)
        n_img = sum(b["batch_size"] for b in bodies)
        mixed = []
        if sampler == "Euler":
            pf = os.path.join(tmp, "prompts.txt")
            with open(pf, "w") as f:
                f.write("".join(b["prompt"] + "\n" for b in bodies))
            mixed = generate(binary, tmp, None, 3, 60, 32, 32, "Euler", ("--prompts-file", pf, "--batch-size", "4",
                                                                       "--batch-lora", "merged"))
        for i, (b, (st, js)) in enumerate(zip(bodies, got)):
            what = "batching (%s): request %d (%r)" % (sampler, i, b["prompt"])
            if not check(st == 200, what + ": answered %s" % st):
                continue
            info = json.loads(js["info"])
            check(batch_of(js) == {"requests": 4, "images": n_img, "index": i}, what + ": one batch of the four "
                  "requests %r" % batch_of(js))
            seeds = [b["seed"] + q for q in range(b["batch_size"])]
            check(info["all_seeds"] == seeds and js["parameters"]["prompt"] == b["prompt"] and
                  len(js["images"]) == len(seeds) and all(b["prompt"] in t for t in info["infotexts"]),
                  what + ": its own images, seeds and parameters")
            check(images(js) == ref[i], what + ": the bytes of the same request alone")
            if mixed:
                check(images(js) == [mixed[i]], what + ": the bytes of generate --prompts-file (one batch)")

    # what forces separate runs: steps, size; a request that fits joins the head and overtakes them
    shape = dict(prompt="shape", seed=7, sampler_name="Euler", steps=3, width=32, height=32)
    bodies = [shape, dict(shape, steps=4), dict(shape, width=40), dict(shape, prompt="shape <lora:mini_lora:1>")]
    got = queued_behind_blocker(srv, bodies)
    b = [batch_of(js) if st == 200 else st for st, js in got]
    check(b[0] == {"requests": 2, "images": 2, "index": 0} and b[3] == {"requests": 2, "images": 2, "index": 1} and
          b[1] == {"requests": 1, "images": 1, "index": 0} and b[2] == b[1],
          "batching: other steps or size run alone, a request of the head's shape joins it %r" % b)

    # a request whose checks fail inside a batch gets its own 422; the others their images
    good = dict(shape, prompt="good <lora:mini_loha:1>")
    st, js, _ = txt2img(srv, **good)
    ref = images(js) if st == 200 else None
    got = queued_behind_blocker(srv, [good, dict(shape, prompt="bad <lora:no_such_lora:1>"), dict(good, seed=8)])
    check(got[0][0] == 200 and images(got[0][1]) == ref and got[1][0] == 422 and "no_such_lora" in json.dumps(
          got[1][1]) and got[2][0] == 200 and json.loads(got[2][1]["info"])["all_seeds"] == [8],
          "batching: a bad request in a batch gets 422, the others their images %r" % [g[0] for g in got])

    # an interrupt stops the whole running batch: every request is answered, interrupted
    def interrupt_batch():
        deadline = time.time() + 120
        while time.time() < deadline:
            p = srv.request("GET", "/sdapi/v1/progress")[1]["state"]
            if p["job_count"] == 3 and p["sampling_step"] >= 1:
                break
            time.sleep(0.01)
        srv.request("POST", "/sdapi/v1/interrupt")
    got = queued_behind_blocker(srv, [dict(shape, steps=150, width=64, height=64, seed=k) for k in range(3)],
                                during=interrupt_batch)
    check(all(st == 200 and json.loads(js["info"])["interrupted"] is True and batch_of(js)["requests"] == 3
              for st, js in got), "batching: an interrupt answers every request of the running batch, interrupted")
    st, h1, _ = srv.request("GET", "/health")
    check(st == 200 and h1["batching"]["batches"] >= h0["batching"]["batches"] + 5 and
          h1["batching"]["largest"] >= 4, "health: batches counted %r" % h1.get("batching"))


def t_max_batch(binary):
    for mb in (3, 1):
        srv = Server(binary, "--max-batch", str(mb), *(("--batch-lora", "unmerged") if mb == 3 else ()))
        try:
            shape = dict(prompt="mb", seed=7, sampler_name="Euler", steps=2, width=32, height=32)
            bodies = [dict(shape, seed=k) for k in range(5)] + [dict(shape, seed=9, batch_size=4)]
            got = queued_behind_blocker(srv, bodies)
            b = [batch_of(js) if st == 200 else st for st, js in got]
            if mb == 3:
                want = [{"requests": 3, "images": 3, "index": k} for k in range(3)] + \
                       [{"requests": 2, "images": 2, "index": k} for k in range(2)] + [{"requests": 1, "images": 4,
                                                                                      "index": 0}]
            else:
                want = [{"requests": 1, "images": 1, "index": 0}] * 5 + [{"requests": 1, "images": 4, "index": 0}]
            check(b == want, "--max-batch %d: batches of at most %d images, in order %r" % (mb, mb, b))
            h = srv.request("GET", "/health")[1]["batching"]
            check(h["max_batch"] == mb and h["largest"] == min(mb, 3) and h["batches"] == (2 if mb == 3 else 0) and
                  h["lora"] == ("unmerged" if mb == 3 else "merged"),
                  "--max-batch %d: health %r" % (mb, h))
        finally:
            check(srv.stop() == 0, "--max-batch %d server exits 0" % mb)
    p = subprocess.run([binary, "serve", "--model", MODEL, "--max-batch", "0"], capture_output=True, text=True)
    check(p.returncode == 2 and "--max-batch" in p.stderr, "--max-batch 0 is a usage error %r" % p.stderr)
    p = subprocess.run([binary, "serve", "--model", MODEL, "--batch-lora", "both"], capture_output=True, text=True)
    check(p.returncode == 2 and "--batch-lora" in p.stderr, "--batch-lora both is a usage error %r" % p.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    if not os.path.exists(MODEL):
        print("skip: %s missing" % MODEL)
        return 77
    tmp = tempfile.mkdtemp(prefix="lf_serve_test_")
    out = os.path.join(tmp, "out")
    try:
        srv = Server(a.bin, "--output-dir", out, "--max-body-mb", "1")
        try:
            tests = [("endpoints", lambda: t_endpoints(srv)), ("identity", lambda: t_identity(srv, a.bin, tmp)),
                     ("sequence", lambda: t_sequence(srv, a.bin, tmp)), ("changed", lambda: t_changed_only(srv)),
                     ("client", lambda: t_client_body(srv, a.bin, tmp)), ("errors", lambda: t_errors(srv)),
                     ("interrupt", lambda: t_interrupt_progress(srv)), ("save", lambda: t_save(srv, out)),
                     ("load", lambda: t_load(srv)), ("batching", lambda: t_batching(srv, a.bin, tmp))]
            for name, fn in tests:
                if not a.only or name in a.only.split(","):
                    print("-- " + name, flush=True)
                    fn()
        finally:
            check(srv.stop(signal.SIGINT) == 0, "SIGINT: exit 0")
        if not a.only or "auth" in a.only:
            print("-- auth", flush=True)
            t_auth(a.bin)
        if not a.only or "cache" in a.only:
            print("-- cache", flush=True)
            t_cache(a.bin, tmp)
        if not a.only or "sdxl" in a.only:
            print("-- sdxl", flush=True)
            t_sdxl(a.bin, tmp)
        if not a.only or "max_batch" in a.only:
            print("-- max_batch", flush=True)
            t_max_batch(a.bin)
        if not a.only or "sigterm" in a.only:
            print("-- sigterm", flush=True)
            t_queue_and_sigterm(a.bin)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if FAILS:
        print("%d failure(s)" % len(FAILS))
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
