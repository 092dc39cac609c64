/* bench_mixed.c: a mixed batch on the default model (docs/generate.md "Mixed batches"): K images, each with
 * its own LoRA strength (K different adapter sets for the engine: one set of unmerged terms per image), as
 * one group on a loaded model (lf_gen_open_group: one UNet call per step) against the same K jobs run one
 * after another on the same loaded model (K sampler runs, the LoRA merged into the weights per job), and
 * against a group of K jobs without adapters (what the batch costs when the images share weights).
 *
 *   lf_bench_mixed [--images K] [--steps N] [--size PX] [--model PATH] [--lora NAME]
 *
 * Defaults: 8 images, 10 steps, 128x128, models/sd15-mini.safetensors, models/lora/mini_lora (rank 4 on the
 * mini model's 32- and 64-wide layers; a rank-32 LoRA would be full rank there: the full-size case is
 * `lf_bench_generate_sd15 --mixed 8`). One JSON line {"bench":"gen_mixed"}: total seconds of each way,
 * UNet seconds, the group's time in the per-image terms (unet_extra_s, timed inside the forward),
 * terms_fraction = unet_extra_s / (unet_mixed_s - unet_extra_s) (independent of other load on the machine) and
 * extra_fraction = (unet_mixed_s - unet_plain_s) / unet_plain_s (from two runs: noisy on a shared machine).
 * Run from the repository root.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/base/pool.h"
#include "host/base/util.h"
#include "lorafuse/lf_generate.h"

static int fail(const char *what) {
    printf("{\"bench\":\"gen_mixed\",\"error\":\"%s: %s\"}\n", what, lf_last_error());
    return 1;
}

/* Run jobs[0..n) as one group (group = 1) or one after another; seconds, and the times summed. */
static int run(lf_gen_session *ss, const lf_gen_opts *jobs, int n, int group, double *secs, lf_gen_times *sum) {
    memset(sum, 0, sizeof *sum);
    double t0 = lf_clock_s();
    for (int k = 0; k < (group ? 1 : n); k++) {
        lf_gen *g = NULL;
        lf_status st = group ? lf_gen_open_group(ss, jobs, (size_t)n, &g) : lf_gen_open_in(ss, &jobs[k], &g);
        if (st == LF_OK) st = lf_gen_run(g, NULL, NULL);
        if (st != LF_OK) {
            lf_gen_free(g);
            return 0;
        }
        const lf_gen_times *t = lf_gen_get_times(g);
        sum->unet += t->unet, sum->unet_extra += t->unet_extra, sum->encode += t->encode, sum->weights += t->weights;
        sum->decode += t->decode, sum->unet_calls += t->unet_calls, sum->te_runs += t->te_runs;
        lf_gen_free(g);
    }
    *secs = lf_clock_s() - t0;
    return 1;
}

int main(int argc, char **argv) {
    int K = 8, steps = 10, px = 128;
    const char *model = "models/sd15-mini.safetensors", *lora = "mini_lora";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--images")) K = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--size")) px = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--model")) model = argv[i + 1];
        else if (!strcmp(argv[i], "--lora")) lora = argv[i + 1];
    }
    if (K < 1 || K > 64 || steps < 1 || px < 8 || px % 8) {
        fprintf(stderr, "usage: %s [--images K<=64] [--steps N] [--size PX] [--model PATH] [--lora NAME]\n", argv[0]);
        return 2;
    }
    lf_gen_session *ss = NULL;
    if (lf_gen_session_open(model, LF_GEN_CPU, 0, NULL, &ss) != LF_OK) return fail("session");
    lf_gen_opts *jobs = calloc((size_t)K, sizeof *jobs), *plain = calloc((size_t)K, sizeof *plain);
    char (*prompts)[256] = calloc((size_t)K, sizeof *prompts);
    if (!jobs || !plain || !prompts) return fail("memory");
    for (int k = 0; k < K; k++) {
        snprintf(prompts[k], sizeof prompts[k], "a fox <lora:%s:%.2f>", lora, 0.3 + 0.1 * k);
        lf_gen_opts_default(&jobs[k]);
        jobs[k].prompt = prompts[k];
        jobs[k].negative = "blurry";
        jobs[k].steps = steps;
        jobs[k].width = jobs[k].height = px;
        jobs[k].seed = 100 + k;
        jobs[k].lora_dir = "models/lora";
        jobs[k].write_png = 0;
        jobs[k].backend = LF_GEN_CPU;
        plain[k] = jobs[k];
        plain[k].prompt = "a fox";
    }
    double s_single = 0, s_mixed = 0, s_plain = 0;
    lf_gen_times t_single, t_mixed, t_plain;
    /* a warm-up group first (page cache, the operators' scratch) */
    if (!run(ss, plain, K, 1, &s_plain, &t_plain)) return fail("warm-up");
    if (!run(ss, jobs, K, 0, &s_single, &t_single)) return fail("singles");
    if (!run(ss, jobs, K, 1, &s_mixed, &t_mixed)) return fail("mixed");
    if (!run(ss, plain, K, 1, &s_plain, &t_plain)) return fail("plain");
    double frac = (t_mixed.unet - t_plain.unet) / t_plain.unet, tfrac = t_mixed.unet_extra / (t_mixed.unet - t_mixed.unet_extra);
    printf("{\"bench\":\"gen_mixed\",\"model\":\"%s\",\"lora\":\"%s\",\"images\":%d,\"steps\":%d,\"size\":%d,"
           "\"threads\":%d,\"singles_s\":%.3f,\"mixed_s\":%.3f,\"plain_group_s\":%.3f,\"speedup\":%.3f,"
           "\"unet_singles_s\":%.3f,\"unet_calls_singles\":%zu,\"unet_mixed_s\":%.3f,\"unet_calls_mixed\":%zu,"
           "\"unet_plain_s\":%.3f,\"unet_extra_s\":%.3f,\"terms_fraction\":%.4f,\"extra_fraction\":%.4f,\"weights_singles_s\":%.3f,"
           "\"weights_mixed_s\":%.3f,\"te_runs_singles\":%zu,\"te_runs_mixed\":%zu}\n",
           model, lora, K, steps, px, lf_par_threads(), s_single, s_mixed, s_plain, s_single / s_mixed, t_single.unet,
           t_single.unet_calls, t_mixed.unet, t_mixed.unet_calls, t_plain.unet, t_mixed.unet_extra, tfrac, frac,
           t_single.weights, t_mixed.weights, t_single.te_runs, t_mixed.te_runs);
    free(jobs), free(plain), free(prompts);
    lf_gen_session_free(ss);
    return 0;
}
