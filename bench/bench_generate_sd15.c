/* bench_generate_sd15.c: per-step cost of `lorafuse generate` on full-size SD1.5 on the CPU backend, with
 * and without a LoRA whose UNet strength changes at every step, and the scheduling overhead (step plan,
 * lf_cpu_backend_step, lf_live_apply_step) as a fraction of the step time (target < 5 % for a
 * kohya-style LoRA). One JSON line per measurement. Results: bench/RESULTS.md; usage: bench/README.md.
 *
 *   lf_bench_generate_sd15 [--dir DIR] [--steps N] [--unet-steps K] [--size PX] [--tag TAG]
 *
 * Inputs: DIR (default /tmp/lf-bench) from `python3 bench/make_sd15_bench.py DIR`: sd15-f16.safetensors
 * (every LoRA-targetable SD1.5 UNet/CLIP weight at its real key and shape, f16) and lora-r32.safetensors
 * (kohya, rank 32, 192 UNet + 72 TE modules). Without them the bench prints a "skipped" line, exits 0.
 *
 * What runs, as in generate (host/pipeline/generate.c): the step plan of the prompt "bench TAG" (default TAG
 * `<lora:lora-r32:te=0:unet=0@0,1@1.0:ramp=linear>`: the UNet strength ramps 0 -> 1 over the N steps,
 * so every UNet job is rewritten at every step) is built against the checkpoint; a CPU backend holds the
 * patched tensors; each step t = 1..N runs lf_cpu_backend_step(t) then lf_live_apply_step(t) into a
 * full-size SD1.5 UNet (random f32 weights generated in memory for the real architecture, as
 * lf_bench_unet_cpu, copied into the model; the patched tensors overwrite their random values). The UNet forward (batch 2 =
 * CFG, 77-token context, the latent of PX x PX) runs on the first K steps only (default 2): its time
 * does not depend on the weights, and a forward is ~10-40 s here. The "no LoRA" figure is the forward
 * alone (a prompt without tags does no per-step work at all: its plan is empty).
 *
 * Lines: {"bench":"gen_sd15_plan"} (plan build, backend creation: once per generate call),
 * {"bench":"gen_sd15_step"} per step (overhead_s = backend + live; unet_s on the timed steps),
 * {"bench":"gen_sd15_summary"}: unet_s (mean forward = seconds per step without LoRA), overhead_s (mean
 * per step over all N steps), plan_s_per_step (plan build / N), step_s_lora = unet_s + overhead_s +
 * plan_s_per_step, overhead_fraction = (overhead_s + plan_s_per_step) / step_s_lora, target_met.
 *
 *   lf_bench_generate_sd15 --mixed K [--size PX] [--rank R]
 * A mixed batch (docs/generate.md "Mixed batches") on the same random UNet, no files needed: K images
 * (2K samples with CFG), each with its own rank-R kohya-style LoRA (default 8 images, rank 32) on every
 * Linear / 1x1 conv of the transformer blocks (attn1/attn2 q, k, v, out, ff, proj_in, proj_out), run as
 * unmerged per-sample terms on the per-sample compute (host/runtime/compute_mix.h), against the same
 * forward without terms (what a batch costs when its images share merged weights) and a single image's
 * forward (batch 2). Line {"bench":"gen_sd15_mixed"}: plain_s, mixed_s, terms_s (time in the terms, timed
 * inside the forward), terms_fraction = terms_s / (mixed_s - terms_s): the unmerged path's extra cost per
 * step as a fraction of the UNet step (target <= 0.10; it does not depend on other load on the machine),
 * extra_fraction = (mixed_s - plain_s) / plain_s (the same from two separate forwards: noisy on a shared
 * machine), single_s, and per step
 * singles_s = K x single_s against mixed_s (the per-step speed-up of one batch over K single runs; the single
 * runs' own merges, once per image, are not counted: see bench/RESULTS.md).
 *
 *   lf_bench_generate_sd15 --mixed K --cuda [--size PX] [--rank R]
 * The same on the CUDA compute (device 0; scripts/gpu-check.sh's "mixed" stage): the Linear layers' terms of
 * all K LoRAs through the segmented kernels (lf_compute.lora_terms, kernels/cuda/lora_sgmv.cu), the 1x1
 * convs' per LoRA through cuBLAS. One warm-up of each forward first (weights and factors uploaded once).
 * Line {"bench":"gen_sd15_mixed","backend":"cuda"}: throughput_ratio = K x single_s / mixed_s (K images in
 * one batch against K sequential single runs, per step; target >= 4 on an H100), segmented_layers (layer
 * calls that took the kernels). Without a device: {"bench":"gen_sd15_mixed","skipped":...}, exit 0.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "lorafuse/lf_model.h"
#include "host/base/pool.h"
#include "lorafuse/lf_step_plan.h"
#include "lorafuse/lf_prompt_tags.h"
#include "lorafuse/lf_unet.h"
#include "lorafuse/lf_live_weights.h"
#include "host/base/util.h"
#include "host/cuda/compute_cuda.h"
#include "host/runtime/compute_cpu.h"
#include "host/runtime/compute_mix.h"
#include "host/runtime/model_compute.h"
#include "tests/common/lf_test_rng.h"

/* The random weights and inputs: U[-1, 1) from one fixed-seed stream, in the order drawn below. */
static lf_test_rng rng = {LF_TEST_RNG_SEED};

static int fail(const char *what) {
    printf("{\"bench\":\"gen_sd15\",\"error\":\"%s: %s\"}\n", what, lf_last_error());
    return 1;
}

/* A full-size SD1.5 UNet with random f32 weights (3.4 GB), copied by the loader (borrowed weights cannot
 * be refreshed), so the generated buffers are freed once it is loaded. */
static lf_unet *make_unet(void) {
    lf_unet_spec s = {4, 4, 4, {320, 640, 1280, 1280}, 2, {1, 1, 1, 0}, 1, 768, 0, 0, 0};
    lf_unet_tensor *ts = NULL;
    size_t n = 0;
    if (lf_unet_spec_tensors(&s, &ts, &n) != LF_OK) return NULL;
    const char **names = calloc(n, sizeof *names);
    lf_view *views = calloc(n, sizeof *views);
    float **own = calloc(n, sizeof *own);
    lf_unet *u = NULL;
    if (!names || !views || !own) goto done;
    for (size_t i = 0; i < n; i++) {
        names[i] = ts[i].name;
        views[i].dtype = LF_F32;
        views[i].ndim = ts[i].ndim;
        int64_t numel = 1;
        for (int d = 0; d < ts[i].ndim; d++) views[i].shape[d] = ts[i].shape[d], numel *= ts[i].shape[d];
        float *p = malloc((size_t)numel * sizeof(float));
        if (!p) goto done;
        own[i] = p;
        lf_test_rng_weight(&rng, p, ts[i].name, ts[i].ndim, ts[i].shape);
        views[i].data = p;
    }
    lf_unet_opts o = {NULL, 8, 0, 32};
    if (lf_unet_load_views(names, views, n, 0, "sd15-bench", &o, &u) != LF_OK) u = NULL;
done:
    for (size_t i = 0; own && i < n; i++) free(own[i]);
    free(own), free(names), free(views), free(ts);
    return u;
}

/* The mixed-batch measurement (--mixed): K images with K different rank-R LoRAs in one UNet call. */
static int bench_mixed(int K, int px, int R, int cuda) {
    lf_compute *dev = NULL;
    char desc[256] = "";
    if (cuda && lf_compute_cuda_device(0, LF_F16, &dev, desc, sizeof desc) != LF_OK) {
        printf("{\"bench\":\"gen_sd15_mixed\",\"backend\":\"cuda\",\"skipped\":\"no CUDA device: %s\"}\n", lf_last_error());
        return 0;
    }
    double t0 = lf_clock_s();
    lf_unet *u = make_unet();
    if (!u) return fail("unet");
    double t_init = lf_clock_s() - t0;
    lf_unet_spec s = {4, 4, 4, {320, 640, 1280, 1280}, 2, {1, 1, 1, 0}, 1, 768, 0, 0, 0};
    lf_unet_tensor *ts = NULL;
    size_t nt = 0;
    if (lf_unet_spec_tensors(&s, &ts, &nt) != LF_OK) return fail("spec");
    /* the kohya targets: every matrix product of the transformer blocks */
    lf_mix_layer *layers = calloc(nt, sizeof *layers);
    lf_mix_slot *slots = calloc(nt * (size_t)K, sizeof *slots);
    lf_mix_term *terms = calloc(nt * (size_t)K, sizeof *terms);
    float **own = calloc(2 * nt * (size_t)K, sizeof *own);
    if (!layers || !slots || !terms || !own) return fail("layers");
    size_t nl = 0, no = 0;
    double factor_mb = 0;
    for (size_t i = 0; i < nt; i++) {
        const char *nm = ts[i].name;
        if (ts[i].ndim < 2 || !strstr(nm, ".weight") ||
            !(strstr(nm, "transformer_blocks") || strstr(nm, "proj_in") || strstr(nm, "proj_out")))
            continue;
        const lf_view *v = lf_unet_weight_view(u, nm);
        if (!v) return fail(nm);
        int64_t O = ts[i].shape[0], Kin = 1;
        for (int d = 1; d < ts[i].ndim; d++) Kin *= ts[i].shape[d];
        layers[nl].w0 = v->data;
        layers[nl].slots = slots + nl * (size_t)K;
        for (int k = 0; k < K; k++) {
            lf_mix_term *t = &terms[nl * (size_t)K + (size_t)k];
            float *dn = malloc((size_t)(R * Kin) * sizeof *dn), *up = malloc((size_t)(O * R) * sizeof *up);
            if (!dn || !up) return fail("factors");
            for (int64_t q = 0; q < R * Kin; q++) dn[q] = 0.05f * lf_test_rng_signed(&rng);
            for (int64_t q = 0; q < O * R; q++) up[q] = 0.05f * lf_test_rng_signed(&rng);
            own[no++] = dn, own[no++] = up;
            factor_mb += (double)(R * (Kin + O)) * 4.0 / 1048576.0;
            t->down = dn, t->up = up, t->rank = R, t->scale = 0.5f + 0.05f * (float)k;
            slots[nl * (size_t)K + (size_t)k].terms = t;
            slots[nl * (size_t)K + (size_t)k].n_terms = 1;
        }
        nl++;
    }
    lf_compute_mix_sort(layers, nl);
    lf_compute_mix m;
    lf_compute *cpu = dev ? dev : lf_compute_cpu();
    if (lf_compute_mix_init(&m, cpu) != LF_OK) return fail("mix");
    int64_t N = 2 * K, H = px / 8, W = px / 8, L = 77, C = 768, per = 4 * H * W;
    int *slot_of = malloc((size_t)N * sizeof *slot_of);
    float *x = malloc((size_t)(N * per) * sizeof(float)), *out = malloc((size_t)(N * per) * sizeof(float));
    float *ctx = malloc((size_t)(N * L * C) * sizeof(float)), *tt = malloc((size_t)N * sizeof(float));
    if (!slot_of || !x || !out || !ctx || !tt) return fail("inputs");
    for (int64_t i = 0; i < N; i++) slot_of[i] = (int)(i % K), tt[i] = 500.0f; /* [uncond of K; cond of K] */
    for (int64_t i = 0; i < N * per; i++) x[i] = lf_test_rng_signed(&rng);
    for (int64_t i = 0; i < N * L * C; i++) ctx[i] = lf_test_rng_signed(&rng);
    m.layers = layers, m.n_layers = nl, m.n_slots = (size_t)K, m.slot_of = slot_of;
    /* a warm-up single, then each measurement once (a forward is seconds to minutes here); on a device also
     * a warm-up of the batch and of the mixed batch (the factors' first upload), which take milliseconds */
    if (lf_unet_forward_on(u, cpu, out, x, tt, ctx, L, NULL, 2, H, W) != LF_OK) return fail("warm-up");
    if (dev && lf_unet_forward_on(u, cpu, out, x, tt, ctx, L, NULL, N, H, W) != LF_OK) return fail("warm-up batch");
    m.n_samples = N;
    if (dev && lf_unet_forward_on(u, &m.c, out, x, tt, ctx, L, NULL, N, H, W) != LF_OK) return fail("warm-up mixed");
    m.n_samples = 0, m.t_terms = 0, m.n_segmented = 0;
    t0 = lf_clock_s();
    if (lf_unet_forward_on(u, cpu, out, x, tt, ctx, L, NULL, 2, H, W) != LF_OK) return fail("single");
    double single = lf_clock_s() - t0;
    t0 = lf_clock_s();
    if (lf_unet_forward_on(u, cpu, out, x, tt, ctx, L, NULL, N, H, W) != LF_OK) return fail("plain");
    double plain = lf_clock_s() - t0;
    m.n_samples = N;
    t0 = lf_clock_s();
    if (lf_unet_forward_on(u, &m.c, out, x, tt, ctx, L, NULL, N, H, W) != LF_OK) return fail("mixed");
    double mixed = lf_clock_s() - t0;
    double frac = (mixed - plain) / plain, tfrac = m.t_terms / (mixed - m.t_terms);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    if (dev)
        printf("{\"bench\":\"gen_sd15_mixed\",\"backend\":\"cuda\",\"device\":\"%s\",\"images\":%d,\"samples\":%lld,"
               "\"rank\":%d,\"pixels\":%d,\"layers\":%zu,\"segmented_layers\":%llu,\"single_s\":%.4f,\"plain_s\":%.4f,"
               "\"mixed_s\":%.4f,\"singles_s\":%.4f,\"throughput_ratio\":%.3f,\"target_ratio\":4,\"ratio_met\":%s,"
               "\"extra_fraction\":%.4f,\"factors_mb\":%.0f,\"unet_init_s\":%.1f}\n",
               desc, K, (long long)N, R, px, nl, (unsigned long long)m.n_segmented, single, plain, mixed, K * single,
               K * single / mixed, K * single / mixed >= 4.0 ? "true" : "false", frac, factor_mb, t_init);
    else
        printf("{\"bench\":\"gen_sd15_mixed\",\"images\":%d,\"samples\":%lld,\"rank\":%d,\"pixels\":%d,\"layers\":%zu,"
               "\"threads\":%d,\"single_s\":%.3f,\"plain_s\":%.3f,\"mixed_s\":%.3f,\"terms_s\":%.3f,\"terms_fraction\":%.4f,"
               "\"extra_fraction\":%.4f,\"target\":0.10,\"target_met\":%s,\"singles_s\":%.3f,\"speedup_per_step\":%.3f,\"factors_mb\":%.0f,"
               "\"unet_init_s\":%.1f,\"peak_rss_mb\":%.0f}\n",
               K, (long long)N, R, px, nl, lf_par_threads(), single, plain, mixed, m.t_terms, tfrac, frac,
               tfrac <= 0.10 ? "true" : "false", K * single, K * single / mixed, factor_mb, t_init,
               (double)ru.ru_maxrss / 1024.0);
    lf_compute_mix_free(&m);
    for (size_t i = 0; i < no; i++) free(own[i]);
    free(own), free(terms), free(slots), free(layers), free(ts), free(slot_of), free(x), free(out), free(ctx), free(tt);
    lf_unet_free(u);
    if (dev) dev->destroy(dev);
    return 0;
}

int main(int argc, char **argv) {
    const char *dir = "/tmp/lf-bench", *tag = "<lora:lora-r32:te=0:unet=0@0,1@1.0:ramp=linear>";
    int steps = 20, unet_steps = 2, px = 512, mixed = 0, rank = 32, cuda = 0;
    for (int i = 1; i < argc; i += 2) { /* every option but --cuda takes one value */
        if (!strcmp(argv[i], "--cuda")) {
            cuda = 1, i--;
            continue;
        }
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "usage: %s [--dir DIR] [--steps N] [--unet-steps K] [--size PX] [--tag TAG] | --mixed K "
                            "[--size PX] [--rank R] [--cuda]\n", argv[0]);
            return 2;
        }
        if (!strcmp(a, "--dir")) dir = v;
        else if (!strcmp(a, "--steps")) steps = atoi(v);
        else if (!strcmp(a, "--unet-steps")) unet_steps = atoi(v);
        else if (!strcmp(a, "--size")) px = atoi(v);
        else if (!strcmp(a, "--tag")) tag = v;
        else if (!strcmp(a, "--mixed")) mixed = atoi(v);
        else if (!strcmp(a, "--rank")) rank = atoi(v);
        else {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        }
    }
    if (steps < 1 || unet_steps < 0 || unet_steps > steps || px < 64 || px % 64) {
        fprintf(stderr, "bad values: steps >= 1, 0 <= unet-steps <= steps, size a multiple of 64\n");
        return 2;
    }
    if (mixed > 0) return rank >= 1 && mixed <= 64 ? bench_mixed(mixed, px, rank, cuda) : 2;
    char ckpt[4096], lora[4096];
    snprintf(ckpt, sizeof ckpt, "%s/sd15-f16.safetensors", dir);
    snprintf(lora, sizeof lora, "%s/lora-r32.safetensors", dir);
    struct stat sb;
    if (stat(ckpt, &sb) || stat(lora, &sb)) {
        printf("{\"bench\":\"gen_sd15\",\"skipped\":\"%s/sd15-f16.safetensors or lora-r32.safetensors missing: run "
               "python3 bench/make_sd15_bench.py %s\"}\n", dir, dir);
        return 0;
    }
    int threads = lf_par_threads();

    /* the plan: once per generate call */
    double t0 = lf_clock_s();
    lf_model *m = NULL;
    lf_prompt *pr = NULL;
    lf_step_plan *sp = NULL;
    lf_cpu_backend *be = NULL;
    char prompt[4096];
    snprintf(prompt, sizeof prompt, "bench %s", tag);
    if (lf_model_open(ckpt, &m) != LF_OK) return fail("model");
    if (lf_prompt_parse(prompt, &pr) != LF_OK) return fail("prompt");
    lf_step_opts so;
    memset(&so, 0, sizeof so);
    so.lora_dir = dir;
    if (lf_step_plan_build(m, pr, steps, &so, &sp) != LF_OK) return fail("step plan");
    double t_plan = lf_clock_s() - t0;
    t0 = lf_clock_s();
    if (lf_cpu_backend_new(sp, 1, &be) != LF_OK) return fail("cpu backend");
    double t_backend = lf_clock_s() - t0;
    size_t unet_jobs = 0;
    for (size_t j = 0; j < sp->plan->n_jobs; j++) unet_jobs += sp->job_comp[j] == LF_COMP_UNET;
    printf("{\"bench\":\"gen_sd15_plan\",\"tag\":\"%s\",\"steps\":%d,\"jobs\":%zu,\"unet_jobs\":%zu,\"plan_s\":%.3f,"
           "\"backend_new_s\":%.3f,\"threads\":%d}\n",
           tag, steps, sp->plan->n_jobs, unet_jobs, t_plan, t_backend, threads);
    fflush(stdout);

    t0 = lf_clock_s();
    lf_unet *u = make_unet();
    if (!u) return fail("unet");
    double t_init = lf_clock_s() - t0;
    lf_live live = {u, NULL, NULL, 1}; /* the text encoders are not loaded here: their jobs are skipped */

    int64_t N = 2, H = px / 8, W = px / 8, L = 77, C = 768;
    float *x = malloc((size_t)(N * 4 * H * W) * sizeof(float)), *out = malloc((size_t)(N * 4 * H * W) * sizeof(float));
    float *ctx = malloc((size_t)(N * L * C) * sizeof(float)), tt[2] = {500.0f, 500.0f};
    if (!x || !out || !ctx) return fail("latents");
    for (int64_t i = 0; i < N * 4 * H * W; i++) x[i] = lf_test_rng_signed(&rng);
    for (int64_t i = 0; i < N * L * C; i++) ctx[i] = lf_test_rng_signed(&rng);

    double sum_over = 0, sum_unet = 0, sum_be = 0, sum_live = 0;
    size_t sum_jobs = 0;
    for (int t = 1; t <= steps; t++) {
        double a = lf_clock_s();
        if (lf_cpu_backend_step(be, t) != LF_OK) return fail("backend step");
        double b = lf_clock_s();
        lf_live_stats ls;
        if (lf_live_apply_step(&live, sp, be, t, &ls) != LF_OK) return fail("live apply");
        double c = lf_clock_s();
        double tu = -1;
        if (t <= unet_steps) {
            if (lf_unet_forward(u, out, x, tt, ctx, L, NULL, N, H, W) != LF_OK) return fail("unet forward");
            tu = lf_clock_s() - c;
            sum_unet += tu;
        }
        sum_be += b - a, sum_live += c - b, sum_over += c - a;
        sum_jobs += sp->steps[t - 1].n_jobs;
        printf("{\"bench\":\"gen_sd15_step\",\"step\":%d,\"jobs\":%zu,\"refreshed\":%zu,\"skipped\":%zu,"
               "\"backend_s\":%.4f,\"live_s\":%.4f,\"overhead_s\":%.4f", t, sp->steps[t - 1].n_jobs, ls.refreshed,
               ls.skipped, b - a, c - b, c - a);
        if (tu >= 0) printf(",\"unet_s\":%.3f", tu);
        printf("}\n");
        fflush(stdout);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double unet_s = unet_steps ? sum_unet / unet_steps : 0, over = sum_over / steps, plan_ps = (t_plan + t_backend) / steps;
    double step_lora = unet_s + over + plan_ps, frac = unet_steps ? (over + plan_ps) / step_lora : 0;
    printf("{\"bench\":\"gen_sd15_summary\",\"pixels\":%d,\"latent\":%lld,\"batch\":%lld,\"steps\":%d,\"unet_steps\":%d,"
           "\"threads\":%d,\"unet_s\":%.3f,\"step_s_no_lora\":%.3f,\"backend_s\":%.4f,\"live_s\":%.4f,\"overhead_s\":%.4f,"
           "\"plan_s_per_step\":%.4f,\"step_s_lora\":%.3f,\"overhead_fraction\":%.4f,\"target\":0.05,\"target_met\":%s,"
           "\"jobs_per_step\":%.1f,\"unet_init_s\":%.1f,\"peak_rss_mb\":%.0f}\n",
           px, (long long)H, (long long)N, steps, unet_steps, threads, unet_s, unet_s, sum_be / steps,
           sum_live / steps, over, plan_ps, step_lora, frac, frac < 0.05 ? "true" : "false",
           (double)sum_jobs / steps, t_init, (double)ru.ru_maxrss / 1024.0);
    lf_unet_free(u);
    free(x), free(out), free(ctx);
    lf_cpu_backend_free(be);
    lf_step_plan_free(sp);
    lf_prompt_free(pr);
    lf_model_free(m);
    return 0;
}
