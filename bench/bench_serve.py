#!/usr/bin/env python3
"""bench_serve.py: `lorafuse serve` throughput, latency and the cost of switching LoRA sets (not a test).

Starts `lorafuse serve` on a free loopback port with MODEL (default models/sd15-mini.safetensors) and
models/lora, and prints JSON lines:
  {"bench": "serve", "case": "single_client" | "clients_8", "requests", "rps", "p50_ms", "p99_ms", ...}
      requests of one fixed setting (one LoRA), from 1 client and from 8 concurrent clients;
  {"bench": "serve", "case": "switch", ...}
      requests alternating between LoRA sets (none, one LoRA, two adapters), against the same set
      repeated: the weight-rewrite time per request (ms, from info.lorafuse_timings.weights) and its
      share of the request, and the number of tensors rewritten;
  {"bench": "serve", "case": "reload_per_request", ...}
      the same request as a fresh `lorafuse generate` process (load the model, hash, load adapters,
      sample, write), for the cost a server saves;
  {"bench": "serve", "case": "overhead", ...}
      per request: wall time minus the UNet time the server reports (text encoders, weights, VAE,
      PNG + base64, HTTP, queue).
Usage: python3 bench/bench_serve.py [--bin build/lorafuse] [--model PATH] [--lora-dir DIR] [--size 64]
                                    [--steps 4] [--requests 20] [--sets JSON] [--skip-load] [--reload N]
  --sets: a JSON list of three prompts (no LoRA, one set, another set); default: the mini adapters.
Full-size SD1.5 (bench/make_sd15_full.py): --model /tmp/lf-bench-serve/sd15-full.safetensors
  --lora-dir /tmp/lf-bench-serve/lora --size 512 --steps 1 --skip-load --reload 1
  --sets '["a photo", "a photo <lora:sd15_r32:0.8>", "a photo <lora:sd15_r32:0.5>"]'
Run from the repository root. Results go to bench/RESULTS.md by hand.
"""
import argparse
import http.client
import json
import os
import subprocess
import tempfile
import threading
import time


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


class Server:
    def __init__(self, binary, model, lora_dir, threads):
        args = [binary, "serve", "--model", model, "--listen", "127.0.0.1:0", "--lora-dir", lora_dir,
                "--max-steps", "1000", "--max-pixels", str(1 << 26)]
        if threads:
            args += ["--threads", str(threads)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        hp = line.split("http://")[1].split(",")[0]
        self.host, self.port = hp.rsplit(":", 1)[0], int(hp.rsplit(":", 1)[1])

    def txt2img(self, body):
        c = http.client.HTTPConnection(self.host, self.port, timeout=3600)
        t0 = time.perf_counter()
        c.request("POST", "/sdapi/v1/txt2img", body=json.dumps(body), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        js = json.loads(r.read())
        dt = time.perf_counter() - t0
        c.close()
        if r.status != 200:
            raise SystemExit("request failed: %s %r" % (r.status, js))
        return dt, json.loads(js["info"])["lorafuse_timings"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/lorafuse")
    ap.add_argument("--model", default="models/sd15-mini.safetensors")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--skip-load", action="store_true", help="only the switch, reload and overhead cases")
    ap.add_argument("--lora-dir", default="models/lora")
    ap.add_argument("--sets", default=None)
    ap.add_argument("--reload", type=int, default=3)
    ap.add_argument("--switches", type=int, default=6)
    a = ap.parse_args()
    base = {"steps": a.steps, "width": a.size, "height": a.size, "sampler_name": "Euler", "cfg_scale": 7, "seed": 1}
    sets = json.loads(a.sets) if a.sets else [
        "a photo", "a photo <lora:mini_lora:0.8>", "a photo <lora:mini_loha:1> <lora:mini_lokr:0.5>"]
    srv = Server(a.bin, a.model, a.lora_dir, a.threads)
    common = {"bench": "serve", "model": os.path.basename(a.model), "size": "%dx%d" % (a.size, a.size),
              "steps": a.steps}
    try:
        srv.txt2img(dict(base, prompt=sets[1]))  # warm up
        if not a.skip_load:
            lat = []
            t0 = time.perf_counter()
            for i in range(a.requests):
                lat.append(srv.txt2img(dict(base, prompt=sets[1], seed=i))[0])
            wall = time.perf_counter() - t0
            print(json.dumps(dict(common, case="single_client", requests=a.requests, rps=a.requests / wall,
                                  p50_ms=1e3 * pct(lat, 0.5), p99_ms=1e3 * pct(lat, 0.99))), flush=True)
            lat8, lock = [], threading.Lock()
            per = max(1, a.requests // 8)

            def client(c):
                for i in range(per):
                    dt = srv.txt2img(dict(base, prompt=sets[1], seed=100 * c + i))[0]
                    with lock:
                        lat8.append(dt)
            ts = [threading.Thread(target=client, args=(c,)) for c in range(8)]
            t0 = time.perf_counter()
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            wall = time.perf_counter() - t0
            print(json.dumps(dict(common, case="clients_8", requests=8 * per, rps=8 * per / wall,
                                  p50_ms=1e3 * pct(lat8, 0.5), p99_ms=1e3 * pct(lat8, 0.99))), flush=True)
        # switching: the same set repeated vs a different set every request
        rows = {}
        k = a.switches
        for name, seq in (("same_set", [sets[1]] * k), ("alternating", [sets[i % 3] for i in range(k)])):
            w, tot, upd, unet, vae, te = [], [], [], [], [], []
            for i, p in enumerate(seq):
                dt, t = srv.txt2img(dict(base, prompt=p, seed=i))
                w.append(t["weights"])
                tot.append(dt)
                upd.append(t["weight_updates"])
                unet.append(t["unet"])
                vae.append(t["vae"])
                te.append(t["text_encoders"])
            rows[name] = (w, tot, upd, unet, vae, te)
            print(json.dumps(dict(common, case="switch", pattern=name, requests=len(seq),
                                  weights_ms_mean=1e3 * sum(w) / len(w), request_ms_mean=1e3 * sum(tot) / len(tot),
                                  weights_frac=sum(w) / sum(tot), tensors_rewritten_mean=sum(upd) / len(upd))),
                  flush=True)
        w, tot, upd, unet, vae, te = rows["alternating"]
        over = [t - u for t, u in zip(tot, unet)]
        mean = lambda v: 1e3 * sum(v) / len(v)  # noqa: E731
        print(json.dumps(dict(common, case="overhead", requests=len(tot), unet_ms_mean=mean(unet),
                              overhead_ms_mean=mean(over), overhead_frac=sum(over) / sum(tot), vae_ms_mean=mean(vae),
                              text_encoders_ms_mean=mean(te), weights_ms_mean=mean(w),
                              rest_ms_mean=mean(over) - mean(vae) - mean(te) - mean(w))), flush=True)
    finally:
        srv.stop()
    # a fresh process per request
    out = tempfile.mkdtemp()
    lat = []
    for i in range(a.reload):
        t0 = time.perf_counter()
        subprocess.run([a.bin, "generate", "--quiet", "--model", a.model, "--lora-dir", a.lora_dir, "--prompt",
                        sets[i % 3], "--steps", str(a.steps), "--width", str(a.size), "--height", str(a.size),
                        "--sampler", "Euler", "--seed", str(i), "--output-dir", out], check=True,
                       stdout=subprocess.DEVNULL)
        lat.append(time.perf_counter() - t0)
    print(json.dumps(dict(common, case="reload_per_request", requests=a.reload,
                          request_ms_mean=1e3 * sum(lat) / max(1, len(lat)))),
          flush=True)


if __name__ == "__main__":
    main()
