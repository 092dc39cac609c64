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

int main(int argc, char **argv) {
    const char *dir = "/tmp/lf-bench", *tag = "<lora:lora-r32:te=0:unet=0@0,1@1.0:ramp=linear>";
    int steps = 20, unet_steps = 2, px = 512;
    for (int i = 1; i < argc; i += 2) { /* every option takes one value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "usage: %s [--dir DIR] [--steps N] [--unet-steps K] [--size PX] [--tag TAG]\n", argv[0]);
            return 2;
        }
        if (!strcmp(a, "--dir")) dir = v;
        else if (!strcmp(a, "--steps")) steps = atoi(v);
        else if (!strcmp(a, "--unet-steps")) unet_steps = atoi(v);
        else if (!strcmp(a, "--size")) px = atoi(v);
        else if (!strcmp(a, "--tag")) tag = v;
        else {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        }
    }
    if (steps < 1 || unet_steps < 0 || unet_steps > steps || px < 64 || px % 64) {
        fprintf(stderr, "bad values: steps >= 1, 0 <= unet-steps <= steps, size a multiple of 64\n");
        return 2;
    }
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
