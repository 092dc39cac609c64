/* gpu_vs_cpu.c: the device apply (lf_device.h, kernels/cuda/apply.cu) against the CPU reference
 * (lf_job_apply -> lf_module_contrib_ref), in the style of ggml's test-backend-ops. Label `gpu`;
 * exits 77 (skipped) when the build has no CUDA or no device is usable.
 *
 * Cases: {algorithm, weight dtype f32/f16/bf16, shape (odd Linear 77x45, aligned Linear 128x256,
 * 1x1 conv 64x32, 3x3 conv 40x24, 1-D for norm), rank 1/4/16/64/128, 1..3 adapters per layer}.
 * Every case: fresh random W0 and factors (seed printed; --seed N repeats a run), factors stored in
 * the weight's dtype family (F32 / F16 / BF16) so the upload converts them; the device weight is
 * poisoned (all-ones bytes = NaN) before the apply so an unwritten element fails; every device
 * buffer has 1 KiB guards checked byte for byte after the case; comparison with the CPU result in
 * the weight's dtype by relative L2 ||g - r|| / ||r|| and per element |g - r| <= atol + rtol*|r|
 * (atol relative to rms(r)), NaN never passes; then every coefficient is set to 0 and the restore
 * must give W0's bytes exactly. Group tests put jobs of mixed shapes/dtypes/algorithms into one
 * model (one grouped launch), with W0 on the device and in pinned host memory (max_backup_mb 0),
 * check that changing one coefficient rewrites exactly that layer, and that a non-finite result is
 * reported and rolled back to W0.
 * Usage: gpu_vs_cpu [--json FILE] [--filter SUBSTR] [--quick] [--seed N] [--device N] [-v] [--dry]
 *   --dry: no device; build every case and run the CPU reference (CTest gpu_vs_cpu_dry, label cpu).
 *   --quick: a reduced list (f16 and f32, ranks 4 and 16, one adapter) for compute-sanitizer runs.
 * Tolerances (docs/cuda.md): f32 relL2 1e-5, rtol 2e-5, atol 2e-5*rms; f16 relL2 1e-3, rtol 2^-9,
 * atol 1e-3*rms; bf16 relL2 8e-3, rtol 2^-6, atol 8e-3*rms.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lf_test.h"
#include "lf_test_data.h"
#include "lorafuse/lf_device.h"

#define BIT(r) (1u << (r))

/* ---- random ------------------------------------------------------------------------------------ */

static uint64_t rng_state;
static uint64_t rng_next(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}
static float rng_uniform(float lo, float hi) {
    return lo + (hi - lo) * (float)((double)(rng_next() >> 11) * (1.0 / 9007199254740992.0));
}

/* ---- per-case arena ---------------------------------------------------------------------------- */

#define ARENA_MAX 256
typedef struct {
    void *p[ARENA_MAX];
    int n;
} arena;

static void *arena_alloc(arena *a, size_t bytes) {
    if (a->n == ARENA_MAX) {
        fprintf(stderr, "arena full\n");
        exit(2);
    }
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return a->p[a->n++] = p;
}

static void arena_free(arena *a) {
    for (int i = 0; i < a->n; i++) free(a->p[i]);
    a->n = 0;
}

static size_t dt_size(lf_dtype dt) { return lf_dtype_bits(dt) / 8; }

/* random tensor of n elements in dt, values U(lo, hi) */
static void *rnd_data(arena *a, int64_t n, lf_dtype dt, float lo, float hi) {
    float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
    void *d = arena_alloc(a, (size_t)n * dt_size(dt));
    for (int64_t i = 0; i < n; i++) f[i] = rng_uniform(lo, hi);
    if (lf_f32_to_dtype(f, n, dt, d) != LF_OK) {
        fprintf(stderr, "conversion failed\n");
        exit(2);
    }
    free(f);
    return d;
}

/* random factor with the given shape (ndim 1..4) */
static void set_rnd(arena *a, lf_module *m, lf_role r, lf_dtype dt, float amp, int ndim, int64_t s0, int64_t s1,
                    int64_t s2, int64_t s3) {
    int64_t n = s0 * (ndim > 1 ? s1 : 1) * (ndim > 2 ? s2 : 1) * (ndim > 3 ? s3 : 1);
    lf_test_set_role(m, r, lf_test_view(rnd_data(a, n, dt, -amp, amp), dt, ndim, s0, s1, s2, s3));
}

static void set_alpha(arena *a, lf_module *m, float alpha) {
    float *x = arena_alloc(a, sizeof *x);
    *x = alpha;
    lf_test_set_role(m, LF_R_ALPHA, lf_test_view(x, LF_F32, 0, 0, 0, 0, 0));
}

/* ---- shapes and algorithms ---------------------------------------------------------------------- */

typedef struct {
    const char *name;
    int ndim;
    int64_t O, I, kh, kw;
} shape_def;

static const shape_def SHAPES[] = {
    {"lin77x45", 2, 77, 45, 1, 1},
    {"lin128x256", 2, 128, 256, 1, 1},
    {"c1x1_64x32", 4, 64, 32, 1, 1},
    {"c3x3_40x24", 4, 40, 24, 3, 3},
    {"vec77", 1, 77, 1, 1, 1},
};
enum { SH_LIN_ODD, SH_LIN_AL, SH_C1, SH_C3, SH_VEC, SH_COUNT };

enum {
    A_LORA, A_LORA_TUCKER, A_LOHA, A_LOHA_TUCKER, A_LOKR, A_LOKR_TUCKER, A_DORA_OUT, A_DORA_IN, A_DORA_LOHA,
    A_GLORA, A_OFT, A_OFT_LEGACY, A_BOFT, A_IA3_OUT, A_IA3_IN, A_FULL, A_NORM, A_MIXED, A_COUNT
};
static const char *ALGO_NAMES[A_COUNT] = {"lora", "lora_tucker", "loha", "loha_tucker", "lokr", "lokr_tucker",
                                          "dora_out", "dora_in", "dora_loha", "glora", "oft", "oft_legacy", "boft",
                                          "ia3_out", "ia3_in", "full", "norm", "mixed"};

static int64_t smallest_divisor_ge(int64_t n, int64_t lo) {
    for (int64_t d = lo; d <= n; d++)
        if (n % d == 0) return d;
    return n;
}

/* Build one module of `algo` for weight shape sh and rank r with factors in fdt. Returns 0, or 1 if
 * the algorithm does not apply to the shape (case skipped). */
static int build_module(arena *a, lf_module *m, int algo, const shape_def *sh, int r, lf_dtype fdt, int which) {
    memset(m, 0, sizeof *m);
    m->name = "case";
    int64_t O = sh->O, I = sh->I, khw = sh->kh * sh->kw, K = I * khw;
    int conv = sh->ndim == 4;
    float famp = 1.0f / sqrtf(sqrtf((float)(r > 0 ? r : 1)));
    if (sh->ndim == 1 && algo != A_NORM) return 1;
    if (sh->ndim != 1 && algo == A_NORM) return 1;
    switch (algo) {
    case A_MIXED: /* which = 0: LoRA, 1: LoHa, 2: IA3 */
        return build_module(a, m, which == 0 ? A_LORA : which == 1 ? A_LOHA : A_IA3_OUT, sh, r, fdt, 0);
    case A_LORA:
    case A_DORA_OUT:
    case A_DORA_IN:
        if (conv) {
            set_rnd(a, m, LF_R_DOWN, fdt, famp, 4, r, I, sh->kh, sh->kw);
            set_rnd(a, m, LF_R_UP, fdt, famp, 4, O, r, 1, 1);
        } else {
            set_rnd(a, m, LF_R_DOWN, fdt, famp, 2, r, I, 0, 0);
            set_rnd(a, m, LF_R_UP, fdt, famp, 2, O, r, 0, 0);
        }
        set_alpha(a, m, (float)r * 0.5f);
        if (algo == A_DORA_OUT) set_rnd(a, m, LF_R_DORA, fdt, 1.5f, 2, O, 1, 0, 0);
        if (algo == A_DORA_IN) set_rnd(a, m, LF_R_DORA, fdt, 1.5f, conv ? 4 : 2, 1, I, 1, 1);
        break;
    case A_LORA_TUCKER:
        if (!conv || khw == 1) return 1;
        set_rnd(a, m, LF_R_DOWN, fdt, famp, 4, r, I, 1, 1);
        set_rnd(a, m, LF_R_MID, fdt, famp, 4, r, r, sh->kh, sh->kw);
        set_rnd(a, m, LF_R_UP, fdt, famp, 4, O, r, 1, 1);
        set_alpha(a, m, (float)r);
        break;
    case A_LOHA:
    case A_DORA_LOHA:
        set_rnd(a, m, LF_R_HW1A, fdt, famp, 2, O, r, 0, 0);
        set_rnd(a, m, LF_R_HW1B, fdt, famp, 2, r, K, 0, 0);
        set_rnd(a, m, LF_R_HW2A, fdt, famp, 2, O, r, 0, 0);
        set_rnd(a, m, LF_R_HW2B, fdt, famp, 2, r, K, 0, 0);
        set_alpha(a, m, (float)r);
        if (algo == A_DORA_LOHA) set_rnd(a, m, LF_R_DORA, fdt, 1.5f, conv ? 4 : 2, O, 1, 1, 1);
        break;
    case A_LOHA_TUCKER:
        if (!conv || khw == 1) return 1;
        set_rnd(a, m, LF_R_HW1A, fdt, famp, 2, r, O, 0, 0);
        set_rnd(a, m, LF_R_HW1B, fdt, famp, 2, r, I, 0, 0);
        set_rnd(a, m, LF_R_HW2A, fdt, famp, 2, r, O, 0, 0);
        set_rnd(a, m, LF_R_HW2B, fdt, famp, 2, r, I, 0, 0);
        set_rnd(a, m, LF_R_HT1, fdt, famp, 4, r, r, sh->kh, sh->kw);
        set_rnd(a, m, LF_R_HT2, fdt, famp, 4, r, r, sh->kh, sh->kw);
        set_alpha(a, m, (float)r);
        break;
    case A_LOKR:
    case A_LOKR_TUCKER: {
        /* O = ka*kb, I = kc*kd */
        int64_t ka = smallest_divisor_ge(O, 4), kb = O / ka, kc = smallest_divisor_ge(I, 3), kd = I / kc;
        if (ka == O && O > 8) ka = 1, kb = O;
        set_rnd(a, m, LF_R_KW1, fdt, 1.0f, 2, ka, kc, 0, 0);
        if (algo == A_LOKR_TUCKER) {
            if (!conv || khw == 1) return 1;
            set_rnd(a, m, LF_R_KW2A, fdt, famp, 2, r, kb, 0, 0);
            set_rnd(a, m, LF_R_KW2B, fdt, famp, 2, r, kd, 0, 0);
            set_rnd(a, m, LF_R_KT2, fdt, famp, 4, r, r, sh->kh, sh->kw);
        } else {
            set_rnd(a, m, LF_R_KW2A, fdt, famp, 2, kb, r, 0, 0);
            set_rnd(a, m, LF_R_KW2B, fdt, famp, 2, r, kd * khw, 0, 0);
        }
        set_alpha(a, m, (float)r);
        break;
    }
    case A_GLORA:
        set_rnd(a, m, LF_R_GA1, fdt, 0.3f, 2, I, r, 0, 0);
        set_rnd(a, m, LF_R_GA2, fdt, 0.3f, 2, r, I, 0, 0);
        set_rnd(a, m, LF_R_GB1, fdt, famp, 2, O, r, 0, 0);
        set_rnd(a, m, LF_R_GB2, fdt, famp, conv ? 4 : 2, r, I, sh->kh, sh->kw);
        set_alpha(a, m, (float)r);
        break;
    case A_OFT:
    case A_OFT_LEGACY: {
        int64_t b = smallest_divisor_ge(O, 4);
        if (b > 16) return 1;
        set_rnd(a, m, algo == A_OFT ? LF_R_OFT_BLOCKS : LF_R_OFT_DIAG, fdt, 0.2f, 3, O / b, b, b, 0);
        if (algo == A_OFT) set_rnd(a, m, LF_R_RESCALE, fdt, 1.2f, 2, O, 1, 0, 0);
        break;
    }
    case A_BOFT: {
        /* O = nb * b with nb a power of two, b even */
        int64_t nb = 1;
        while ((O % (nb * 2)) == 0 && (O / (nb * 2)) % 2 == 0 && O / (nb * 2) >= 4) nb *= 2;
        int64_t b = O / nb;
        if (nb < 2 || b % 2) return 1;
        int64_t nm = nb >= 4 ? 2 : 1;
        set_rnd(a, m, LF_R_OFT_BLOCKS, fdt, 0.2f, 4, nm, nb, b, b);
        set_rnd(a, m, LF_R_RESCALE, fdt, 1.2f, 2, O, 1, 0, 0);
        break;
    }
    case A_IA3_OUT:
    case A_IA3_IN: {
        int in = algo == A_IA3_IN;
        set_rnd(a, m, LF_R_IA3_W, fdt, 0.5f, 1, in ? I : O, 0, 0, 0);
        float *on = arena_alloc(a, sizeof *on);
        *on = (float)in;
        lf_test_set_role(m, LF_R_ON_INPUT, lf_test_view(on, LF_F32, 0, 0, 0, 0, 0));
        break;
    }
    case A_FULL:
        set_rnd(a, m, LF_R_DIFF, fdt, 0.3f, sh->ndim, O, I, sh->kh, sh->kw);
        break;
    case A_NORM:
        set_rnd(a, m, LF_R_W_NORM, fdt, 0.3f, 1, O, 0, 0, 0);
        break;
    default: return 1;
    }
    /* DoRA magnitudes must be positive */
    if (m->present & BIT(LF_R_DORA)) {
        lf_view *v = &m->t[LF_R_DORA];
        int64_t n = lf_view_numel(v);
        float *f = malloc((size_t)n * sizeof *f);
        lf_view_to_f32(v, f);
        for (int64_t i = 0; i < n; i++) f[i] = fabsf(f[i]) + 0.25f;
        lf_f32_to_dtype(f, n, v->dtype, (void *)v->data);
        free(f);
    }
    lf_view w = lf_test_view(NULL, LF_F32, sh->ndim, sh->O, sh->I, sh->kh, sh->kw);
    lf_status st = lf_module_resolve(m, &w);
    if (st) {
        fprintf(stderr, "module build (%s, %s, rank %d): %s\n", ALGO_NAMES[algo], sh->name, r, lf_last_error());
        exit(2);
    }
    return 0;
}

/* ---- jobs -------------------------------------------------------------------------------------- */

typedef struct {
    char name[160];
    int algo, shape, rank, nad;
    lf_dtype dt;
    lf_st_tensor target;
    lf_patch patches[4];
    lf_job job;
} tcase;

static lf_dtype factor_dtype(lf_dtype wdt) { return wdt; }

/* returns 0, or 1 if the case does not apply */
static int case_build(arena *a, tcase *c) {
    const shape_def *sh = &SHAPES[c->shape];
    memset(&c->target, 0, sizeof c->target);
    c->target.name = c->name;
    c->target.dtype = c->dt;
    c->target.ndim = sh->ndim;
    c->target.shape[0] = sh->O;
    c->target.shape[1] = sh->I;
    c->target.shape[2] = sh->kh;
    c->target.shape[3] = sh->kw;
    int64_t n = sh->O * (sh->ndim > 1 ? sh->I * sh->kh * sh->kw : 1);
    c->target.begin = 0;
    c->target.end = (uint64_t)n * dt_size(c->dt);
    c->target.data = rnd_data(a, n, c->dt, -1.0f, 1.0f);
    for (int i = 0; i < c->nad; i++) {
        lf_patch *p = &c->patches[i];
        memset(p, 0, sizeof *p);
        if (build_module(a, &p->mod, c->algo, sh, c->rank, factor_dtype(c->dt), i)) return 1;
        p->adapter = (size_t)i;
        p->coef = rng_uniform(0.3f, 1.2f) * (i == 1 ? -1.0f : 1.0f);
    }
    c->job.target = &c->target;
    c->job.patches = c->patches;
    c->job.n_patches = (size_t)c->nad;
    return 0;
}

/* ---- comparison -------------------------------------------------------------------------------- */

typedef struct {
    double rel_l2, max_abs, max_rel;
    int64_t worst, nonfinite, fails;
    double got_w, ref_w;
} cmp_result;

static void tolerances(lf_dtype dt, double *l2, double *rtol, double *atolf) {
    switch (dt) {
    case LF_F16: *l2 = 1e-3, *rtol = 1.0 / 512, *atolf = 1e-3; break;
    case LF_BF16: *l2 = 8e-3, *rtol = 1.0 / 64, *atolf = 8e-3; break;
    default: *l2 = 1e-5, *rtol = 2e-5, *atolf = 2e-5; break;
    }
}

static int compare(const void *got, const void *ref, int64_t n, lf_dtype dt, cmp_result *r) {
    float *g = malloc((size_t)n * sizeof *g), *e = malloc((size_t)n * sizeof *e);
    lf_view vg = lf_test_view(got, dt, 1, n, 0, 0, 0), ve = lf_test_view(ref, dt, 1, n, 0, 0, 0);
    lf_view_to_f32(&vg, g);
    lf_view_to_f32(&ve, e);
    double num = 0, den = 0, l2b, rtol, atolf;
    tolerances(dt, &l2b, &rtol, &atolf);
    memset(r, 0, sizeof *r);
    r->worst = -1;
    for (int64_t i = 0; i < n; i++) den += (double)e[i] * e[i];
    double rms = sqrt(den / (double)(n ? n : 1)), atol = atolf * rms;
    double worst_ratio = -1;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(g[i]) || !isfinite(e[i])) {
            int same_inf = isinf(g[i]) && isinf(e[i]) && (g[i] > 0) == (e[i] > 0);
            if (!same_inf) {
                r->nonfinite++;
                r->fails++;
                if (r->worst < 0) r->worst = i;
            }
            continue;
        }
        double d = fabs((double)g[i] - e[i]);
        num += d * d;
        if (d > r->max_abs) r->max_abs = d;
        double rel = d / (fabs((double)e[i]) + 1e-30);
        if (rel > r->max_rel && fabs((double)e[i]) > atol) r->max_rel = rel;
        double lim = atol + rtol * fabs((double)e[i]);
        if (d > lim) r->fails++;
        if (d / lim > worst_ratio) {
            worst_ratio = d / lim;
            r->worst = i;
            r->got_w = g[i];
            r->ref_w = e[i];
        }
    }
    r->rel_l2 = den > 0 ? sqrt(num / den) : sqrt(num);
    free(g);
    free(e);
    return r->fails == 0 && r->rel_l2 <= l2b;
}

/* ---- run ---------------------------------------------------------------------------------------- */

static FILE *json;
static int verbose;
static int dry; /* --dry: build every case and run only the CPU reference (no device) */
static lf_device *dev;

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void json_line(const tcase *c, const char *test, const cmp_result *r, int pass, double us, int restore_ok) {
    if (!json) return;
    fprintf(json,
            "{\"test\":\"%s\",\"case\":\"%s\",\"algo\":\"%s\",\"dtype\":\"%s\",\"shape\":\"%s\",\"rank\":%d,"
            "\"adapters\":%d,\"rel_l2\":%.3e,\"max_abs\":%.3e,\"max_rel\":%.3e,\"fails\":%lld,\"nonfinite\":%lld,"
            "\"restore_exact\":%s,\"pass\":%s,\"us\":%.1f}\n",
            test, c->name, ALGO_NAMES[c->algo], lf_dtype_name(c->dt), SHAPES[c->shape].name, c->rank, c->nad,
            r->rel_l2, r->max_abs, r->max_rel, (long long)r->fails, (long long)r->nonfinite,
            restore_ok ? "true" : "false", pass ? "true" : "false", us);
    fflush(json);
}

/* apply jobs[0..n) on the device (poisoned first) and compare each with lf_job_apply */
static int check_jobs(lf_dev_model *dm, tcase **cs, size_t n, const char *test, double *us_out) {
    int ok = 1;
    LF_CHECK(lf_dev_poison(dm) == LF_OK, "%s: poison: %s", test, lf_last_error());
    double t0 = now_us();
    lf_status st = lf_dev_apply(dm, NULL);
    double us = now_us() - t0;
    if (us_out) *us_out = us;
    LF_CHECK(st == LF_OK, "%s: apply: %s", test, lf_last_error());
    if (st) return 0;
    for (size_t j = 0; j < n; j++) {
        tcase *c = cs[j];
        size_t bytes = (size_t)(c->target.end - c->target.begin);
        int64_t numel = (int64_t)(bytes / dt_size(c->dt));
        void *got = malloc(bytes), *ref = malloc(bytes);
        /* the CPU result for the device's current coefficients */
        for (size_t p = 0; p < c->job.n_patches; p++) c->patches[p].coef = lf_dev_get_coef(dm, j, p);
        lf_status rs = lf_job_apply(&c->job, 0, ref);
        LF_CHECK(rs == LF_OK, "%s: %s: CPU reference: %s", test, c->name, lf_last_error());
        LF_CHECK(lf_dev_download(dm, j, got) == LF_OK, "%s: download: %s", test, lf_last_error());
        cmp_result r;
        memset(&r, 0, sizeof r);
        int pass = rs == LF_OK && compare(got, ref, numel, c->dt, &r);
        if (!pass) {
            fprintf(stderr,
                    "FAIL %s: %s: rel_l2 %.3e max_abs %.3e fails %lld nonfinite %lld; worst element %lld: got %.9g, "
                    "ref %.9g\n",
                    test, c->name, r.rel_l2, r.max_abs, (long long)r.fails, (long long)r.nonfinite, (long long)r.worst,
                    r.got_w, r.ref_w);
        } else if (verbose) {
            printf("ok   %s: %s: rel_l2 %.3e max_abs %.3e\n", test, c->name, r.rel_l2, r.max_abs);
        }
        LF_CHECK(pass, "%s: %s does not match the CPU reference", test, c->name);
        json_line(c, test, &r, pass, us, 1);
        ok &= pass;
        free(got);
        free(ref);
    }
    return ok;
}

/* all coefficients 0 -> W0's bytes exactly */
static int check_restore(lf_dev_model *dm, tcase **cs, size_t n, const char *test) {
    int ok = 1;
    LF_CHECK(lf_dev_poison(dm) == LF_OK, "%s: poison: %s", test, lf_last_error());
    LF_CHECK(lf_dev_restore_all(dm, NULL) == LF_OK, "%s: restore: %s", test, lf_last_error());
    for (size_t j = 0; j < n; j++) {
        size_t bytes = (size_t)(cs[j]->target.end - cs[j]->target.begin);
        void *got = malloc(bytes);
        LF_CHECK(lf_dev_download(dm, j, got) == LF_OK, "%s: download: %s", test, lf_last_error());
        int same = memcmp(got, cs[j]->target.data, bytes) == 0;
        LF_CHECK(same, "%s: %s: restore is not bit-exact", test, cs[j]->name);
        ok &= same;
        free(got);
    }
    return ok;
}

static int run_case(tcase *c, const char *filter) {
    arena a = {{0}, 0};
    int ran = 0;
    if (case_build(&a, c)) goto out;
    if (filter && !strstr(c->name, filter)) goto out;
    ran = 1;
    if (dry) {
        void *ref = malloc((size_t)(c->target.end - c->target.begin));
        LF_CHECK(lf_job_apply(&c->job, 0, ref) == LF_OK, "%s: CPU reference: %s", c->name, lf_last_error());
        free(ref);
        goto out;
    }
    lf_dev_model *dm = NULL;
    lf_status st = lf_dev_model_create(dev, &c->job, 1, NULL, &dm);
    LF_CHECK(st == LF_OK, "%s: create: %s", c->name, lf_last_error());
    if (st) goto out;
    tcase *cs[1] = {c};
    double us = 0;
    int ok = check_jobs(dm, cs, 1, "case", &us);
    int rest = check_restore(dm, cs, 1, "restore");
    (void)ok;
    (void)rest;
    LF_CHECK(lf_dev_guard_check(dm) == LF_OK, "%s: guards: %s", c->name, lf_last_error());
    lf_dev_model_free(dm);
out:
    arena_free(&a);
    return ran;
}

/* several jobs of mixed algorithms, shapes and dtypes in one model (one grouped launch) */
static void run_group(int pinned, const char *filter) {
    static const struct {
        int algo, shape, rank, nad;
        lf_dtype dt;
    } G[] = {
        {A_LORA, SH_LIN_AL, 16, 2, LF_F16},   {A_LOHA, SH_C3, 4, 1, LF_BF16},     {A_IA3_IN, SH_LIN_ODD, 0, 1, LF_F32},
        {A_DORA_OUT, SH_C1, 8, 1, LF_F16},    {A_OFT, SH_LIN_AL, 0, 1, LF_F32},   {A_LOKR, SH_LIN_ODD, 4, 1, LF_F16},
        {A_LORA, SH_LIN_ODD, 4, 3, LF_BF16},  {A_MIXED, SH_C3, 4, 3, LF_F16},     {A_LORA, SH_C3, 64, 1, LF_F32},
        {A_NORM, SH_VEC, 0, 1, LF_BF16},
    };
    enum { NG = sizeof G / sizeof G[0] };
    const char *test = pinned ? "group_pinned" : "group";
    if (filter && !strstr(test, filter)) return;
    arena a = {{0}, 0};
    tcase cases[NG], *cs[NG];
    lf_job jobs[NG];
    for (int i = 0; i < NG; i++) {
        tcase *c = &cases[i];
        memset(c, 0, sizeof *c);
        c->algo = G[i].algo, c->shape = G[i].shape, c->rank = G[i].rank, c->nad = G[i].nad, c->dt = G[i].dt;
        snprintf(c->name, sizeof c->name, "%s/%d/%s/%s/r%d/n%d", test, i, ALGO_NAMES[c->algo], lf_dtype_name(c->dt),
                 c->rank, c->nad);
        if (case_build(&a, c)) {
            fprintf(stderr, "group case %d does not build\n", i);
            exit(2);
        }
        cs[i] = c;
        jobs[i] = c->job;
    }
    if (dry) {
        for (int i = 0; i < NG; i++) {
            void *ref = malloc((size_t)(cases[i].target.end - cases[i].target.begin));
            LF_CHECK(lf_job_apply(&cases[i].job, 0, ref) == LF_OK, "%s: CPU reference: %s", cases[i].name,
                     lf_last_error());
            free(ref);
        }
        goto out;
    }
    lf_dev_opts o;
    lf_dev_opts_default(&o);
    if (pinned) o.max_backup_mb = 0;
    lf_dev_model *dm = NULL;
    lf_status st = lf_dev_model_create(dev, jobs, NG, &o, &dm);
    LF_CHECK(st == LF_OK, "%s: create: %s", test, lf_last_error());
    if (st) goto out;
    check_jobs(dm, cs, NG, test, NULL);
    lf_dev_apply_stats s;
    lf_dev_last_stats(dm, &s);
    LF_CHECK(s.jobs_rewritten == NG, "%s: %zu jobs rewritten, expected %d", test, s.jobs_rewritten, NG);
    LF_CHECK(s.launches <= 8, "%s: %zu launches for one apply", test, s.launches);

    /* nothing changed: an apply rewrites nothing */
    LF_CHECK(lf_dev_apply(dm, NULL) == LF_OK, "%s: apply: %s", test, lf_last_error());
    lf_dev_last_stats(dm, &s);
    LF_CHECK(s.jobs_rewritten == 0, "%s: unchanged apply rewrote %zu jobs", test, s.jobs_rewritten);

    /* one coefficient changes: exactly that job is rewritten, the others keep their bytes */
    size_t bytes_all = 0;
    for (int i = 0; i < NG; i++) bytes_all += (size_t)(cases[i].target.end - cases[i].target.begin);
    unsigned char *before = malloc(bytes_all), *after = malloc(bytes_all);
    size_t off = 0;
    for (int i = 0; i < NG; i++) {
        lf_dev_download(dm, (size_t)i, before + off);
        off += (size_t)(cases[i].target.end - cases[i].target.begin);
    }
    LF_CHECK(lf_dev_set_coef(dm, 3, 0, 0.37f) == LF_OK, "set_coef: %s", lf_last_error());
    LF_CHECK(lf_dev_apply(dm, NULL) == LF_OK, "%s: apply: %s", test, lf_last_error());
    lf_dev_last_stats(dm, &s);
    LF_CHECK(s.jobs_rewritten == 1, "%s: changing one coefficient rewrote %zu jobs", test, s.jobs_rewritten);
    off = 0;
    for (int i = 0; i < NG; i++) {
        size_t b = (size_t)(cases[i].target.end - cases[i].target.begin);
        lf_dev_download(dm, (size_t)i, after + off);
        if (i != 3) LF_CHECK(memcmp(before + off, after + off, b) == 0, "%s: job %d changed but was not dirty", test, i);
        else LF_CHECK(memcmp(before + off, after + off, b) != 0, "%s: job 3 did not change", test);
        off += b;
    }
    free(before);
    free(after);
    /* the changed job matches the CPU at its new coefficient (check_jobs re-applies everything) */
    check_jobs(dm, cs, NG, test, NULL);

    /* switch: adapter 0 off, adapter 1 on everywhere */
    LF_CHECK(lf_dev_set_adapter_coef(dm, 0, 0.0f) == LF_OK, "set_adapter_coef: %s", lf_last_error());
    LF_CHECK(lf_dev_set_adapter_coef(dm, 1, 0.8f) == LF_OK, "set_adapter_coef: %s", lf_last_error());
    check_jobs(dm, cs, NG, test, NULL);

    /* a non-finite result is reported, names the layer, and everything touched is restored */
    LF_CHECK(lf_dev_set_coef(dm, 0, 0, 3e38f) == LF_OK, "set_coef: %s", lf_last_error());
    LF_CHECK(lf_dev_set_coef(dm, 1, 0, 0.5f) == LF_OK, "set_coef: %s", lf_last_error());
    st = lf_dev_apply(dm, NULL);
    LF_CHECK(st == LF_ERR_NONFINITE, "%s: overflowing strength gave %d (%s)", test, (int)st, lf_last_error());
    LF_CHECK(strstr(lf_last_error(), cases[0].name) != NULL, "%s: message does not name the layer: %s", test,
             lf_last_error());
    for (int i = 0; i < 2; i++) {
        size_t b = (size_t)(cases[i].target.end - cases[i].target.begin);
        void *got = malloc(b);
        lf_dev_download(dm, (size_t)i, got);
        LF_CHECK(memcmp(got, cases[i].target.data, b) == 0, "%s: job %d not restored after the failed apply", test, i);
        free(got);
    }
    LF_CHECK(lf_dev_set_coef(dm, 0, 0, 0.5f) == LF_OK, "set_coef: %s", lf_last_error());

    check_restore(dm, cs, NG, test);
    LF_CHECK(lf_dev_guard_check(dm) == LF_OK, "%s: guards: %s", test, lf_last_error());
    uint64_t db = 0, pb = 0;
    lf_dev_memory(dm, &db, &pb);
    if (pinned) LF_CHECK(pb > 0, "%s: no pinned W0 backups with max_backup_mb 0", test);
    lf_dev_model_free(dm);
out:
    arena_free(&a);
}

int main(int argc, char **argv) {
    const char *json_path = NULL, *filter = NULL;
    int quick = 0, ordinal = 0;
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 20);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
        else if (!strcmp(argv[i], "--filter") && i + 1 < argc) filter = argv[++i];
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--device") && i + 1 < argc) ordinal = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-v")) verbose = 1;
        else if (!strcmp(argv[i], "--dry")) dry = 1;
        else {
            fprintf(stderr, "usage: %s [--json FILE] [--filter SUBSTR] [--quick] [--seed N] [--device N] [-v] [--dry]\n", argv[0]);
            return 2;
        }
    }
    if (!seed) seed = 1;
    rng_state = seed;
    printf("gpu_vs_cpu: seed %llu\n", (unsigned long long)seed);
    lf_status st = dry ? LF_OK : lf_device_open(ordinal, &dev);
    if (st == LF_ERR_UNSUPPORTED) LF_SKIP(lf_last_error());
    if (st) {
        fprintf(stderr, "lf_device_open: %s\n", lf_last_error());
        return 1;
    }
    printf("device: %s\n", dry ? "(none: --dry, CPU reference only)" : lf_device_describe(dev));
    if (json_path && !(json = fopen(json_path, "w"))) {
        fprintf(stderr, "cannot write %s\n", json_path);
        return 2;
    }

    static const int ranks_lora[] = {1, 4, 16, 64, 128}, ranks_other[] = {4, 16}, ranks_none[] = {0};
    static const int ranks_quick[] = {4, 16};
    static const lf_dtype dts[] = {LF_F32, LF_F16, LF_BF16};
    int ncases = 0;
    for (int algo = 0; algo < A_COUNT; algo++) {
        const int *ranks;
        int nr;
        int has_rank = algo <= A_GLORA || algo == A_MIXED;
        if (quick) ranks = has_rank ? ranks_quick : ranks_none, nr = has_rank ? 2 : 1;
        else if (algo == A_LORA || algo == A_DORA_OUT) ranks = ranks_lora, nr = 5;
        else if (has_rank) ranks = ranks_other, nr = 2;
        else ranks = ranks_none, nr = 1;
        for (int d = 0; d < 3; d++) {
            if (quick && dts[d] == LF_BF16) continue;
            for (int sh = 0; sh < SH_COUNT; sh++)
                for (int ri = 0; ri < nr; ri++)
                    for (int nad = 1; nad <= 3; nad++) {
                        if (algo == A_MIXED && nad != 3) continue;
                        if (algo != A_MIXED && nad == 3 && algo != A_LORA) continue;
                        if (quick && nad > 1 && algo != A_MIXED) continue;
                        tcase c;
                        memset(&c, 0, sizeof c);
                        c.algo = algo, c.shape = sh, c.rank = ranks[ri], c.nad = nad, c.dt = dts[d];
                        snprintf(c.name, sizeof c.name, "%s/%s/%s/r%d/n%d", ALGO_NAMES[algo], lf_dtype_name(c.dt),
                                 SHAPES[sh].name, c.rank, nad);
                        ncases += run_case(&c, filter);
                    }
        }
    }
    run_group(0, filter);
    run_group(1, filter);
    printf("%d cases\n", ncases);
    if (json) fclose(json);
    lf_device_close(dev);
    return lf_test_finish();
}
