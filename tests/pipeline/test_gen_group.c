/* test_gen_group.c: several jobs in one generate call (lf_gen_open_group, lf_gen_groupable): which jobs
 * may share a batch and how a refusal names the job and the field; a group of jobs with different
 * adapters runs as one batch (one UNet call per step) and every image equals the same image made alone
 * (same seed, settings and tags): its seed (job seed + index within the job, A1111), its parameters text
 * byte for byte, and its final latent:
 *   - images with no adapter, and images of a job whose adapters are not low-rank (LoHa, LoRA + DoRA:
 *     weights built from W0 as alone): bit for bit, because the CPU operators are batch-invariant (a
 *     sample's bytes do not depend on the other samples of its call: tests/kernels/test_nn_batch.c); the
 *     same image in a plain batch of 2 equals it alone bit for bit (BATCH_FLOOR_MAX 0, checked first);
 *   - every image: relative L2 <= GROUP_TOL. What remains is the LoRA images' arithmetic: alone, a LoRA is
 *     merged into the weight (W0 + c·up·down, rounded to f32 once per element), in the batch it is the
 *     unmerged W0 x + c·up(down x); the two differ per layer by f32 rounding (<= 1.9e-7 relative,
 *     test_compute_mix.c), and this random-weight model amplifies that over 4 steps at CFG 7. Worst
 *     measured over the groups below: 9.9e-3.
 *     The per-layer sums themselves are checked at 1e-5 in tests/runtime/test_compute_mix.c.
 *   - with batch_merged (LoRAs built into per-job weights from W0, as alone): every image of the six-job
 *     group, in both orders, bit for bit.
 *   - every adapter case moves the image from the plain one by more than ADAPTER_MIN (measured 0.084 for the
 *     LoHa, more for the others), so a term that were missing, on the wrong images or at the wrong step
 *     would fail.
 * SDXL (f32 copy of tests/data/pipeline/sdxl-mini, 64x64, both encoders, pooled conditioning, a job without a
 * negative prompt): the same bound (measured 2e-6). Text encoders run once per distinct (texts, text-encoder
 * weights) of the group; a prompt over one 75-token window runs in a UNet call of its own per step (its
 * images within the same bound); a group run twice gives the same bytes. `generate --prompts-file`: groups of
 * --batch-size lines, consecutive seeds, the "line" of each image in --json. The memory check covers the
 * whole batch.
 * Model: models/sd15-mini converted to F32 (f16 would round each merged weight of the image made alone,
 * which the unmerged LoRA terms do not, adding rounding noise of its own to the comparison), 32x32, 4 steps,
 * the adapters of models/lora (LoRA, LoHa, DoRA) with per-step schedules.
 */
#include <stdint.h>

#include "lf_test.h"
#include "lf_test_data.h"
#include "lorafuse/lf_generate.h"

#define MODEL_F16 "models/sd15-mini.safetensors"
#define GROUP_TOL 2e-2
#define BATCH_FLOOR_MAX 0.0
#define ADAPTER_MIN 0.05

static char MODEL[512];
#define MAX_IMAGES 16

typedef struct {
    float *latent[MAX_IMAGES];
    char *params[MAX_IMAGES];
    int64_t seed[MAX_IMAGES];
    int job[MAX_IMAGES], job_index[MAX_IMAGES];
    size_t nl;
    int count, bad_index;
} capture;

static lf_status grab(void *ctx, const lf_gen_image *im) {
    capture *c = ctx;
    if (c->count >= MAX_IMAGES) return lf_err(LF_ERR_ARG, "too many images");
    int i = c->count++;
    if (im->index != i) c->bad_index = 1;
    c->nl = (size_t)4 * (size_t)(im->height / 8) * (size_t)(im->width / 8);
    c->latent[i] = malloc(c->nl * sizeof(float));
    memcpy(c->latent[i], im->latent, c->nl * sizeof(float));
    c->params[i] = strdup(im->parameters);
    c->seed[i] = im->seed;
    c->job[i] = im->job;
    c->job_index[i] = im->job_index;
    return LF_OK;
}

static void capture_free(capture *c) {
    for (int i = 0; i < c->count; i++) {
        free(c->latent[i]);
        free(c->params[i]);
    }
    memset(c, 0, sizeof *c);
}

static lf_gen_opts job(const char *prompt, int64_t seed, int batch) {
    lf_gen_opts o;
    lf_gen_opts_default(&o);
    o.model = MODEL;
    o.prompt = prompt;
    o.negative = "blurry";
    o.lora_dir = "models/lora";
    o.steps = 4;
    o.width = o.height = 32;
    o.seed = seed;
    o.batch_size = batch;
    o.write_png = 0;
    return o;
}

static void test_groupable(void) {
    lf_gen_opts a = job("a fox", 1, 1), b = job("a cat <lora:mini_lora:0.5>", 7, 3);
    char why[256];
    LF_CHECK(lf_gen_groupable(&a, &b, why, sizeof why), "prompt, seed, batch may differ: %s", why);
    b.steps = 5;
    LF_CHECK(!lf_gen_groupable(&a, &b, why, sizeof why) && !strcmp(why, "steps: 4 vs 5"), "steps: '%s'", why);
    b = job("a cat", 1, 1);
    b.sampler = "Euler";
    LF_CHECK(!lf_gen_groupable(&a, &b, why, sizeof why) && strstr(why, "sampler: DPM++ 2M Karras vs Euler"), "sampler: '%s'",
             why);
    b = job("a cat", 1, 1);
    b.cfg = 5;
    LF_CHECK(!lf_gen_groupable(&a, &b, NULL, 0), "cfg differs");
    b = job("a cat", 1, 1);
    b.clip_skip = 1; /* 0 and 1 both mean the last layer */
    LF_CHECK(lf_gen_groupable(&a, &b, why, sizeof why), "clip skip 0 vs 1: %s", why);
    b = job("a cat", 1, 1);
    b.batch_merged = 1;
    LF_CHECK(!lf_gen_groupable(&a, &b, why, sizeof why) && !strcmp(why, "batch merged: unmerged vs merged"),
             "batch merged: '%s'", why);
    /* a refusal names the job and the field, before any work */
    lf_gen_opts jobs[3] = {a, job("a cat", 2, 1), job("a cow", 3, 1)};
    jobs[2].width = 64;
    lf_gen *g = NULL;
    lf_status st = lf_gen_open_group(NULL, jobs, 3, &g);
    LF_CHECK(st == LF_ERR_ARG && !g && strstr(lf_last_error(), "job 2") && strstr(lf_last_error(), "width: 32 vs 64"),
             "mismatch: %d %s", (int)st, lf_last_error());
    /* the memory check covers the whole batch: a limit that one image fits but six do not */
    lf_gen_opts one = job("a fox", 1, 1);
    if (lf_gen_open(&one, &g) == LF_OK) {
        uint64_t need = lf_gen_get_info(g)->mem_estimate;
        lf_gen_free(g);
        g = NULL;
        lf_gen_opts six[6];
        for (int i = 0; i < 6; i++) six[i] = job("a fox", 1 + i, 1), six[i].mem_limit = need + 1;
        st = lf_gen_open_group(NULL, six, 6, &g);
        LF_CHECK(st == LF_ERR_ARG && !g && strstr(lf_last_error(), "job 0: ") &&
                     strstr(lf_last_error(), "6 image(s) per sampler run"),
                 "six images over a one-image limit: %d %s", (int)st, lf_last_error());
        lf_gen_free(g);
        g = NULL;
    }
    jobs[2] = job("a cow <lora:no_such_lora:1>", 3, 1);
    st = lf_gen_open_group(NULL, jobs, 3, &g);
    LF_CHECK(st != LF_OK && !g && !strncmp(lf_last_error(), "job 2: ", 7), "bad tag: %d %s", (int)st, lf_last_error());
}

/* Run `jobs` as one group (on session ss, or NULL) and each job alone; compare every image. */
/* exact: per job, its images must equal alone bit for bit (NULL: none) */
static void check_group(lf_gen_session *ss, const lf_gen_opts *jobs, size_t n, const int *exact, const char *what,
                        double *worst) {
    capture grp;
    memset(&grp, 0, sizeof grp);
    lf_gen *g = NULL;
    lf_status st = lf_gen_open_group(ss, jobs, n, &g);
    if (st == LF_OK) st = lf_gen_run(g, grab, &grp);
    LF_CHECK(st == LF_OK, "%s: group: %s", what, lf_last_error());
    if (st != LF_OK) {
        lf_gen_free(g);
        capture_free(&grp);
        return;
    }
    int total = 0;
    for (size_t k = 0; k < n; k++) total += jobs[k].batch_size;
    LF_CHECK(grp.count == total && !grp.bad_index, "%s: %d images, want %d (indices in order: %d)", what, grp.count,
             total, !grp.bad_index);
    LF_CHECK(lf_gen_get_info(g)->jobs == n && lf_gen_get_info(g)->images == total, "%s: info jobs %zu images %d", what,
             lf_gen_get_info(g)->jobs, lf_gen_get_info(g)->images);
    int at = 0;
    for (size_t k = 0; k < n && at < grp.count; k++) {
        capture one;
        memset(&one, 0, sizeof one);
        lf_gen *a = NULL;
        st = lf_gen_open(&jobs[k], &a);
        if (st == LF_OK) st = lf_gen_run(a, grab, &one);
        LF_CHECK(st == LF_OK && one.count == jobs[k].batch_size, "%s: job %zu alone: %s", what, k, lf_last_error());
        for (int i = 0; i < one.count && at < grp.count; i++, at++) {
            LF_CHECK(grp.job[at] == (int)k && grp.job_index[at] == i, "%s: image %d is job %d index %d, want %zu %d",
                     what, at, grp.job[at], grp.job_index[at], k, i);
            LF_CHECK(grp.seed[at] == one.seed[i] && (jobs[k].seed < 0 || grp.seed[at] == jobs[k].seed + i),
                     "%s: image %d seed %lld, alone %lld", what, at, (long long)grp.seed[at], (long long)one.seed[i]);
            LF_CHECK(!strcmp(grp.params[at], one.params[i]), "%s: image %d parameters\n%s\nalone\n%s", what, at,
                     grp.params[at], one.params[i]);
            double r = lf_test_rel_l2(grp.latent[at], one.latent[i], (int64_t)one.nl);
            if (r > *worst) *worst = r;
            LF_CHECK(r <= GROUP_TOL, "%s: image %d (job %zu '%s' index %d): rel L2 %.3g vs alone", what, at, k,
                     jobs[k].prompt, i, r);
            LF_CHECK(!exact || !exact[k] || !memcmp(grp.latent[at], one.latent[i], one.nl * sizeof(float)),
                     "%s: image %d (job %zu '%s'): not bit for bit the image alone (rel L2 %.3g)", what, at, k,
                     jobs[k].prompt, r);
        }
        capture_free(&one);
        lf_gen_free(a);
    }
    capture_free(&grp);
    lf_gen_free(g);
}

/* The final latent of one job alone (its first image). */
static float *alone(const lf_gen_opts *o, size_t *n) {
    capture c;
    memset(&c, 0, sizeof c);
    lf_gen *g = NULL;
    float *r = NULL;
    if (lf_gen_open(o, &g) == LF_OK && lf_gen_run(g, grab, &c) == LF_OK && c.count >= 1) {
        r = c.latent[0];
        c.latent[0] = NULL;
        *n = c.nl;
    }
    LF_CHECK(r != NULL, "'%s' alone: %s", o->prompt, lf_last_error());
    capture_free(&c);
    lf_gen_free(g);
    return r;
}

/* The runtime's batch-size noise: image 1 of a plain batch of 2 against the same seed alone. */
static double batch_floor(void) {
    lf_gen_opts two = job("a fox", 11, 2), one = job("a fox", 12, 1);
    capture c;
    memset(&c, 0, sizeof c);
    lf_gen *g = NULL;
    size_t n = 0;
    double r = -1;
    float *b = alone(&one, &n);
    if (b && lf_gen_open(&two, &g) == LF_OK && lf_gen_run(g, grab, &c) == LF_OK && c.count == 2)
        r = lf_test_rel_l2(c.latent[1], b, (int64_t)n);
    free(b);
    capture_free(&c);
    lf_gen_free(g);
    return r;
}

static void test_group_equals_alone(void) {
    double worst = 0, floor = batch_floor();
    LF_CHECK(floor >= 0 && floor <= BATCH_FLOOR_MAX, "plain batch of 2 vs alone: %.3g", floor);
    /* no LoRA, a LoRA, the same LoRA at another strength, a LoHa, a LoRA + DoRA pair, a per-step schedule */
    lf_gen_opts six[6] = {
        job("a fox", 11, 1),
        job("a fox <lora:mini_lora:0.8>", 12, 1),
        job("a fox <lora:mini_lora:-0.4>", 13, 1),
        job("a fox <lora:mini_loha:0.7>", 14, 1),
        job("a fox <lora:mini_lora:0.5> <lora:mini_dora:0.6>", 15, 1),
        job("a fox <lora:mini_lora:0.2@0,1@3>", 16, 1),
    };
    /* each adapter case moves the image far beyond the bound (same seed, no adapter) */
    size_t n = 0;
    lf_gen_opts plain = job("a fox", 0, 1);
    for (int i = 1; i < 6; i++) {
        plain.seed = six[i].seed;
        float *a = alone(&six[i], &n), *p = alone(&plain, &n);
        double d = a && p ? lf_test_rel_l2(a, p, (int64_t)n) : 0;
        LF_CHECK(d >= ADAPTER_MIN, "'%s' moves the image by %.3g only", six[i].prompt, d);
        free(a);
        free(p);
    }
    int exact6[6] = {1, 0, 0, 1, 1, 0}, exact_rev[6] = {0, 1, 1, 0, 0, 1};
    check_group(NULL, six, 6, exact6, "six", &worst);
    lf_gen_opts rev[6];
    for (int i = 0; i < 6; i++) rev[i] = six[5 - i];
    check_group(NULL, rev, 6, exact_rev, "six reversed", &worst);
    /* batch_merged: low-rank adapters built into per-job weights too, so every image is the image alone */
    int all6[6] = {1, 1, 1, 1, 1, 1};
    for (int i = 0; i < 6; i++) six[i].batch_merged = rev[i].batch_merged = 1;
    check_group(NULL, six, 6, all6, "six merged", &worst);
    check_group(NULL, rev, 6, all6, "six reversed merged", &worst);
    for (int i = 0; i < 6; i++) six[i].batch_merged = rev[i].batch_merged = 0;
    /* schedules changing some images' strengths at different steps; batches of 2 inside a job */
    lf_gen_opts sch[4] = {
        job("a cat <lora:mini_lora:1@0,0@2>", 21, 2),
        job("a cat <lora:mini_loha:0@0,1@3>", 22, 1),
        job("a cat <lora:mini_lora:0.3>", 23, 2),
        job("a cat <lora:mini_lora:unet=0.2@0,0.9@1,0.1@3:te=0.5@0,0@2>", 24, 1),
    };
    check_group(NULL, sch, 4, NULL, "schedules", &worst);
    /* on a resident session, after other jobs, and a job alone after the group */
    lf_gen_session *ss = NULL;
    if (lf_gen_session_open(MODEL, LF_GEN_CPU, 0, NULL, &ss) == LF_OK) {
        check_group(ss, sch, 4, NULL, "session", &worst);
        check_group(ss, six, 6, exact6, "session six", &worst);
        check_group(ss, &six[1], 1, NULL, "session, one job after a group", &worst);
        lf_gen_session_free(ss);
    } else {
        LF_CHECK(0, "session: %s", lf_last_error());
    }
    printf("worst relative L2 of a group's latent against the same image made alone: %.3g (bound %g; a plain batch "
           "of 2 against alone: %.3g)\n", worst, GROUP_TOL, floor);
}

/* Text encoders: once per distinct texts and text-encoder weights over the whole group. */
static void test_encodes(void) {
    lf_gen_opts jobs[5] = {
        job("a fox", 1, 1),
        job("a fox", 2, 1),
        job("a fox <lora:mini_lora:unet=0.5:te=0>", 3, 1), /* encoders untouched: shares "a fox" */
        job("a cat", 4, 1),
        job("a fox <lora:mini_lora:0.5>", 5, 1), /* its own encoder weights */
    };
    lf_gen *g = NULL;
    capture c;
    memset(&c, 0, sizeof c);
    lf_status st = lf_gen_open_group(NULL, jobs, 5, &g);
    if (st == LF_OK) st = lf_gen_run(g, grab, &c);
    LF_CHECK(st == LF_OK && c.count == 5, "encodes: %s", lf_last_error());
    const lf_gen_times *t = g ? lf_gen_get_times(g) : NULL;
    LF_CHECK(t && t->te_runs == 3, "encodes: %zu text-encoder runs, want 3", t ? t->te_runs : 0);
    LF_CHECK(t && t->unet_calls == 4, "encodes: %zu UNet calls for 4 steps, want 4 (one batch)", t ? t->unet_calls : 0);
    /* the same group run again gives the same bytes */
    capture c2;
    memset(&c2, 0, sizeof c2);
    st = g ? lf_gen_run(g, grab, &c2) : LF_ERR_ARG;
    LF_CHECK(st == LF_OK && c2.count == c.count, "encodes: second run: %s", lf_last_error());
    for (int i = 0; i < c.count && i < c2.count; i++)
        LF_CHECK(!memcmp(c.latent[i], c2.latent[i], c.nl * sizeof(float)), "encodes: image %d differs on the second run", i);
    capture_free(&c2);
    capture_free(&c);
    lf_gen_free(g);
}

/* A prompt over one 75-token window beside short ones: its images go in a UNet call of their own per step. */
static void test_long_prompt(void) {
    static char longp[2048];
    strcpy(longp, "a fox <lora:mini_lora:0.6>");
    for (int i = 0; i < 90; i++) strcat(longp, i % 2 ? " snow" : " tree");
    lf_gen_opts jobs[3] = {job("a fox", 41, 1), job(longp, 42, 1), job("a cat <lora:mini_lora:0.3>", 43, 1)};
    double worst = 0;
    check_group(NULL, jobs, 3, NULL, "long prompt", &worst);
    lf_gen *g = NULL;
    if (lf_gen_open_group(NULL, jobs, 3, &g) == LF_OK && lf_gen_run(g, NULL, NULL) == LF_OK)
        LF_CHECK(lf_gen_get_times(g)->unet_calls == 8, "long prompt: %zu UNet calls for 4 steps, want 8 (two token counts)",
                 lf_gen_get_times(g)->unet_calls);
    else
        LF_CHECK(0, "long prompt: %s", lf_last_error());
    lf_gen_free(g);
}

/* SDXL: both text encoders, pooled conditioning and time ids per image; a job without a negative prompt
 * (zero unconditional context, as diffusers) beside jobs with one. */
static void test_sdxl(const char *tmp) {
    char xl[512];
    snprintf(xl, sizeof xl, "%s/sdxl-mini-f32.safetensors", tmp);
    lf_test_st_edit e;
    memset(&e, 0, sizeof e);
    e.dtype = LF_F32;
    e.copy_meta = 1;
    if (!lf_test_st_copy("tests/data/pipeline/sdxl-mini.safetensors", xl, &e)) {
        LF_CHECK(0, "cannot write %s", xl);
        return;
    }
    lf_gen_opts jobs[3] = {job("a fox", 31, 1), job("a fox <lora:sdxl_mini_lora:0.8>", 32, 1),
                           job("a cat <lora:sdxl_mini_lora:unet=0.5:te=0>", 33, 1)};
    for (int i = 0; i < 3; i++) {
        jobs[i].model = xl;
        jobs[i].lora_dir = "tests/data/pipeline/lora";
        jobs[i].width = jobs[i].height = 64;
    }
    jobs[1].negative = NULL;
    double worst = 0;
    check_group(NULL, jobs, 3, NULL, "sdxl", &worst);
    printf("sdxl: worst relative L2 %.3g\n", worst);
}

/* `generate --prompts-file`: lines in groups of --batch-size, consecutive seeds, "line" in --json, the
 * parameters text of each image its own line's. */
static void test_prompts_file(const char *tmp) {
    const char *bin = getenv("LF_BIN");
    if (!bin) return;
    char file[512], out[512], cmd[2048];
    snprintf(file, sizeof file, "%s/prompts.txt", tmp);
    snprintf(out, sizeof out, "%s/out", tmp);
    lf_test_write_text(file, "a fox\n\n  a cat <lora:mini_lora:0.8>\r\na cow <lora:mini_loha:0.5>\n");
    snprintf(cmd, sizeof cmd,
             "'%s' generate --model '%s' --prompts-file '%s' --steps 2 --width 32 --height 32 --seed 100 "
             "--batch-size 2 --backend cpu --lora-dir models/lora --output-dir '%s' --json --quiet",
             bin, MODEL, file, out);
    FILE *p = popen(cmd, "r");
    char buf[8192];
    size_t n = p ? fread(buf, 1, sizeof buf - 1, p) : 0;
    buf[n] = '\0';
    int rc = p ? pclose(p) : -1;
    LF_CHECK(rc == 0, "prompts file: status %d", rc);
    const char *want[3] = {"\"seed\":100,\"index\":0,\"line\":1", "\"seed\":101,\"index\":1,\"line\":3",
                           "\"seed\":102,\"index\":2,\"line\":4"};
    for (int i = 0; i < 3; i++) LF_CHECK(strstr(buf, want[i]) != NULL, "prompts file: no %s in\n%s", want[i], buf);
    LF_CHECK(lf_test_count_files(out, ".png") == 3, "prompts file: %d PNGs", lf_test_count_files(out, ".png"));
}

int main(void) {
    char tmp[256];
    if (lf_test_tmpdir(tmp, sizeof tmp, "test_gen_group")) return 1;
    lf_test_st_edit e;
    memset(&e, 0, sizeof e);
    e.dtype = LF_F32;
    e.copy_meta = 1;
    snprintf(MODEL, sizeof MODEL, "%s/sd15-mini-f32.safetensors", tmp);
    if (!lf_test_st_copy(MODEL_F16, MODEL, &e)) {
        fprintf(stderr, "cannot write %s\n", MODEL);
        return 1;
    }
    printf("groupable\n");
    test_groupable();
    printf("group images equal images made alone\n");
    test_group_equals_alone();
    printf("text encoders per distinct set\n");
    test_encodes();
    printf("a prompt over one window\n");
    test_long_prompt();
    printf("SDXL group\n");
    test_sdxl(tmp);
    printf("generate --prompts-file\n");
    test_prompts_file(tmp);
    if (lf_test_rmtree(tmp) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return lf_test_finish();
}
