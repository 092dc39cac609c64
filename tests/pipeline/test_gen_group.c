/* test_gen_group.c: several jobs in one generate call (lf_gen_open_group, lf_gen_groupable): which jobs
 * may share a batch and how a refusal names the job and the field; every image of a group equals the
 * same image made alone (same seed, settings and tags): final latents within relative L2 GROUP_TOL
 * (the worst measured is printed), its seed (job seed + index within the job, A1111) and its parameters
 * text byte for byte; job, job_index and index numbered as documented. Mini model (models/sd15-mini),
 * 32x32, 4 steps, with the adapters of models/lora (LoRA, LoHa, DoRA) and per-step schedules. */
#include <stdint.h>

#include "lf_test.h"
#include "lf_test_data.h"
#include "lorafuse/lf_generate.h"

#define MODEL "models/sd15-mini.safetensors"
#define GROUP_TOL 1e-5
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
    /* a refusal names the job and the field, before any work */
    lf_gen_opts jobs[3] = {a, job("a cat", 2, 1), job("a cow", 3, 1)};
    jobs[2].width = 64;
    lf_gen *g = NULL;
    lf_status st = lf_gen_open_group(NULL, jobs, 3, &g);
    LF_CHECK(st == LF_ERR_ARG && !g && strstr(lf_last_error(), "job 2") && strstr(lf_last_error(), "width: 32 vs 64"),
             "mismatch: %d %s", (int)st, lf_last_error());
    jobs[2] = job("a cow <lora:no_such_lora:1>", 3, 1);
    st = lf_gen_open_group(NULL, jobs, 3, &g);
    LF_CHECK(st != LF_OK && !g && !strncmp(lf_last_error(), "job 2: ", 7), "bad tag: %d %s", (int)st, lf_last_error());
}

/* Run `jobs` as one group (on session ss, or NULL) and each job alone; compare every image. */
static void check_group(lf_gen_session *ss, const lf_gen_opts *jobs, size_t n, const char *what, double *worst) {
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
        }
        capture_free(&one);
        lf_gen_free(a);
    }
    capture_free(&grp);
    lf_gen_free(g);
}

static void test_group_equals_alone(void) {
    double worst = 0;
    /* no LoRA, a LoRA, the same LoRA at another strength, a LoHa, a LoRA + DoRA pair, a per-step schedule */
    lf_gen_opts six[6] = {
        job("a fox", 11, 1),
        job("a fox <lora:mini_lora:0.8>", 12, 1),
        job("a fox <lora:mini_lora:-0.4>", 13, 1),
        job("a fox <lora:mini_loha:0.7>", 14, 1),
        job("a fox <lora:mini_lora:0.5> <lora:mini_dora:0.6>", 15, 1),
        job("a fox <lora:mini_lora:0.2@0,1@3>", 16, 1),
    };
    check_group(NULL, six, 6, "six", &worst);
    lf_gen_opts rev[6];
    for (int i = 0; i < 6; i++) rev[i] = six[5 - i];
    check_group(NULL, rev, 6, "six reversed", &worst);
    /* schedules changing some images' strengths at different steps; batches of 2 inside a job */
    lf_gen_opts sch[3] = {
        job("a cat <lora:mini_lora:1@0,0@2>", 21, 2),
        job("a cat <lora:mini_loha:0@0,1@3>", 22, 1),
        job("a cat <lora:mini_lora:0.3>", 23, 2),
    };
    check_group(NULL, sch, 3, "schedules", &worst);
    /* on a resident session, after other jobs */
    lf_gen_session *ss = NULL;
    if (lf_gen_session_open(MODEL, LF_GEN_CPU, 0, NULL, &ss) == LF_OK) {
        check_group(ss, sch, 3, "session", &worst);
        check_group(ss, six, 6, "session six", &worst);
        lf_gen_session_free(ss);
    } else {
        LF_CHECK(0, "session: %s", lf_last_error());
    }
    printf("worst relative L2 of a group's latent against the same image made alone: %.3g (bound %g)\n", worst,
           GROUP_TOL);
}

int main(void) {
    printf("groupable\n");
    test_groupable();
    printf("group images equal images made alone\n");
    test_group_equals_alone();
    return lf_test_finish();
}
