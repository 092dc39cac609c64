/* gpu_sgmv.c: the segmented low-rank terms on the device (lf_compute.lora_terms of the CUDA compute,
 * kernels/cuda/lora_sgmv.cu): for every row m of every segment, y[m] += sum_k scale_k up_k (down_k x[m]),
 * x (M, in), y (M, out), down (R, in), up (out, R), against
 *   - a plain C reference in double over the same (16-bit: rounded) factors: NMSE <= 1e-10 (f32 sums in
 *     another order; the bound of the f32 products in docs/cuda.md),
 *   - the per-segment cuBLAS products the per-sample compute makes without the op (linear down, linear
 *     up, scale, add through the compute's own ops): NMSE <= 1e-10 for f32 factors.
 * Cases: M = 1; segments of 37, 5, 70, 1 rows and an empty one, ranks 1, 4, 32, 128, a job of two
 * terms, terms shared by two segments (a job's unconditional and conditional rows), rows in no segment
 * (unchanged, bit for bit), sizes that are not multiples of the tiles (in 45, out 70); f16 and bf16
 * factors; more segments and terms than one launch's work list holds (several launches, counted); a
 * scale of 0; errors: overlapping segments (LF_ERR_ARG), a factor of the wrong size (LF_ERR_SHAPE).
 * Label gpu (exit 77 without CUDA or a device), emu in the emulation.
 * Usage: gpu_sgmv [--seed N]
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_test_open.h"
#include "host/cuda/compute_cuda.h"
#include "kernels/common/lf_half.h"
#include "lf_test.h"
#include "lf_test_rng.h"
#include "lorafuse/lf_device.h"

static lf_compute *C;
static lf_test_rng R;

#define NMSE_BOUND 1e-10
#define MAX_TERMS 64

typedef struct {
    int64_t rank;
    lf_dtype dt;
    float scale;
    void *down, *up;      /* in dt, host */
    float *downf, *upf;   /* the same values in f32 */
} term;

static void ok(lf_status st, const char *what) { LF_CHECK(st == LF_OK, "%s: %s", what, lf_last_error()); }

static float *rnd(int64_t n, float lo, float hi) {
    float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = lf_test_rng_uniform(&R, lo, hi);
    return p;
}

/* n values in dt (the stored factor) and their f32 values (what both sides compute with) */
static void factor(int64_t n, lf_dtype dt, void **stored, float **f32) {
    float *f = rnd(n, -0.5f, 0.5f);
    if (dt == LF_F32) {
        *stored = f, *f32 = f;
        return;
    }
    uint16_t *h = malloc((size_t)(n ? n : 1) * 2);
    for (int64_t i = 0; i < n; i++) {
        h[i] = dt == LF_F16 ? lf_f32_to_f16(f[i]) : lf_f32_to_bf16(f[i]);
        f[i] = dt == LF_F16 ? lf_f16_to_f32(h[i]) : lf_bf16_to_f32(h[i]);
    }
    *stored = h, *f32 = f;
}

static void term_make(term *t, int64_t rank, int64_t in, int64_t out, lf_dtype dt, float scale) {
    t->rank = rank, t->dt = dt, t->scale = scale;
    factor(rank * in, dt, &t->down, &t->downf);
    factor(out * rank, dt, &t->up, &t->upf);
}

static void term_free(term *t) {
    if (t->down != t->downf) free(t->down);
    if (t->up != t->upf) free(t->up);
    free(t->downf);
    free(t->upf);
}

static lf_view view(const void *p, lf_dtype dt, int64_t a, int64_t b) {
    lf_view v;
    memset(&v, 0, sizeof v);
    v.data = p, v.dtype = dt, v.ndim = 2, v.shape[0] = a, v.shape[1] = b;
    return v;
}

static float *dev_from(const float *h, int64_t n) {
    float *d = NULL;
    ok(C->alloc(C, n, &d), "alloc");
    if (d && n) ok(C->upload(C, d, h, n), "upload");
    return d;
}

static double nmse(const float *g, const double *r, int64_t n, double *maxabs) {
    double num = 0, den = 0;
    *maxabs = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = (double)g[i] - r[i];
        num += e * e, den += r[i] * r[i];
        if (fabs(e) > *maxabs || isnan(e)) *maxabs = fabs(e);
    }
    return den > 0 ? num / den : num;
}

/* y (device) += the segments' terms by lora_terms, compared with the reference and (f32 factors) the
 * per-segment cuBLAS products; rows in no segment must keep y0's bytes */
static void run_case(const char *name, int64_t M, int64_t in, int64_t out, term *terms, size_t nt,
                     const lf_lora_seg *segs, size_t ns, int min_launches) {
    float *x = rnd(M * in, -1, 1), *y0 = rnd(M * out, -1, 1);
    double *ref = malloc((size_t)(M * out) * sizeof *ref);
    unsigned char *covered = calloc((size_t)M, 1);
    for (int64_t i = 0; i < M * out; i++) ref[i] = y0[i];
    for (size_t s = 0; s < ns; s++)
        for (int64_t m = segs[s].row0; m < segs[s].row0 + segs[s].rows; m++) {
            covered[m] = 1;
            for (size_t k = segs[s].term0; k < segs[s].term0 + segs[s].n_terms; k++) {
                const term *t = &terms[k];
                for (int64_t o = 0; o < out; o++) {
                    double acc = 0;
                    for (int64_t r = 0; r < t->rank; r++) {
                        double d = 0;
                        for (int64_t i = 0; i < in; i++) d += (double)t->downf[r * in + i] * x[m * in + i];
                        acc += (double)t->upf[o * t->rank + r] * d;
                    }
                    ref[m * out + o] += t->scale * acc;
                }
            }
        }
    lf_lora_term lt[MAX_TERMS];
    for (size_t k = 0; k < nt; k++) {
        lt[k].down = view(terms[k].down, terms[k].dt, terms[k].rank, in);
        lt[k].up = view(terms[k].up, terms[k].dt, out, terms[k].rank);
        lt[k].scale = terms[k].scale;
    }
    float *xd = dev_from(x, M * in), *yd = dev_from(y0, M * out), *yh = malloc((size_t)(M * out + 1) * sizeof *yh);
    lf_compute_cuda_paths p0, p1;
    lf_compute_cuda_paths_get(C, &p0);
    ok(C->lora_terms(C, yd, xd, M, in, out, lt, nt, segs, ns), name);
    ok(C->download(C, yh, yd, M * out), "download");
    lf_compute_cuda_paths_get(C, &p1);
    double mabs, e = nmse(yh, ref, M * out, &mabs);
    int64_t moved = 0;
    for (int64_t m = 0; m < M; m++)
        if (!covered[m]) moved += memcmp(yh + m * out, y0 + m * out, (size_t)out * sizeof(float)) != 0;
    unsigned long long launches = (unsigned long long)(p1.lora_launches - p0.lora_launches);
    printf("%-34s M %4lld in %3lld out %3lld: NMSE %.2e (max abs %.2e), %llu launches\n", name, (long long)M,
           (long long)in, (long long)out, e, mabs, launches);
    LF_CHECK(e <= NMSE_BOUND, "%s: NMSE %.3g against the reference > %.3g (max abs %.3g)", name, e, NMSE_BOUND, mabs);
    LF_CHECK(moved == 0, "%s: %lld rows outside every segment changed", name, (long long)moved);
    LF_CHECK(p1.lora_calls == p0.lora_calls + 1 && launches >= (unsigned long long)min_launches,
             "%s: %llu calls, %llu launches (want 1, >= %d)", name,
             (unsigned long long)(p1.lora_calls - p0.lora_calls), launches, min_launches);

    /* the per-segment cuBLAS products (compute_mix.c's path without lora_terms), f32 factors only */
    int all_f32 = 1;
    for (size_t k = 0; k < nt; k++) all_f32 &= terms[k].dt == LF_F32;
    if (all_f32) {
        float *yb = dev_from(y0, M * out);
        for (size_t s = 0; s < ns; s++) {
            const lf_lora_seg *g = &segs[s];
            for (size_t k = g->term0; k < g->term0 + g->n_terms && g->rows; k++) {
                const term *t = &terms[k];
                if (t->scale == 0.0f || t->rank == 0) continue;
                float *t1 = NULL, *t2 = NULL;
                ok(C->alloc(C, g->rows * t->rank, &t1), "alloc");
                ok(C->alloc(C, g->rows * out, &t2), "alloc");
                ok(C->linear(C, t1, xd + g->row0 * in, &lt[k].down, NULL, g->rows, in, t->rank), "linear down");
                ok(C->linear(C, t2, t1, &lt[k].up, NULL, g->rows, t->rank, out), "linear up");
                ok(C->scale(C, t2, t2, t->scale, g->rows * out), "scale");
                ok(C->add(C, yb + g->row0 * out, yb + g->row0 * out, t2, g->rows * out), "add");
                C->release(C, t1);
                C->release(C, t2);
            }
        }
        float *ybh = malloc((size_t)(M * out + 1) * sizeof *ybh);
        double *bref = malloc((size_t)(M * out + 1) * sizeof *bref);
        ok(C->download(C, ybh, yb, M * out), "download");
        for (int64_t i = 0; i < M * out; i++) bref[i] = ybh[i];
        double mb, eb = nmse(yh, bref, M * out, &mb);
        printf("%-34s   against the per-segment cuBLAS products: NMSE %.2e (max abs %.2e)\n", "", eb, mb);
        LF_CHECK(eb <= NMSE_BOUND, "%s: NMSE %.3g against the cuBLAS products > %.3g", name, eb, NMSE_BOUND);
        free(ybh);
        free(bref);
        C->release(C, yb);
    }
    for (size_t k = 0; k < nt; k++) C->forget(C, terms[k].down, 1), C->forget(C, terms[k].up, 1);
    C->release(C, xd);
    C->release(C, yd);
    free(x), free(y0), free(ref), free(covered), free(yh);
}

static void case_single_row(void) {
    term t[1];
    term_make(&t[0], 4, 45, 70, LF_F32, 0.75f);
    lf_lora_seg s = {0, 1, 0, 1};
    run_case("M = 1, rank 4", 1, 45, 70, t, 1, &s, 1, 2);
    term_free(&t[0]);
}

/* ranks 1, 4, 32, 128 (a job with two terms), uneven and empty segments, shared terms, uncovered rows */
static void case_mixed(lf_dtype dt, const char *name) {
    const int64_t in = 45, out = 70, M = 37 + 5 + 70 + 1 + 37 + 9;
    term t[5];
    term_make(&t[0], 1, in, out, dt, 1.0f);
    term_make(&t[1], 4, in, out, dt, -0.5f);
    term_make(&t[2], 32, in, out, dt, 0.8f);
    term_make(&t[3], 128, in, out, dt, 0.3f);
    term_make(&t[4], 4, in, out, dt, 0.0f); /* strength 0 at this step */
    /* job A (ranks 32 + 1) on two row ranges (its unconditional and conditional halves), job B rank 4,
     * job C rank 128, an empty segment, rows 149..157 in no segment */
    lf_lora_seg s[6] = {{42, 70, 3, 1},  /* C: 70 rows */
                        {0, 37, 0, 1},   /* A1: rank 1 ... */
                        {37, 5, 1, 1},   /* B: 5 rows */
                        {112, 1, 2, 3},  /* one row: ranks 32 + 128 + a zero scale */
                        {113, 0, 1, 2},  /* no rows */
                        {113, 36, 0, 3}}; /* ranks 1 + 4 + 32 */
    run_case(name, M, in, out, t, 5, s, 6, 2);
    for (int i = 0; i < 5; i++) term_free(&t[i]);
}

/* more segments and terms than one launch's work list: 40 segments of 3 rows, 2 terms each, and one
 * segment of 50 terms (split into pieces, each in its own launch) */
static void case_many(void) {
    enum { NS = 41, NT = 50 };
    const int64_t in = 19, out = 33, M = 40 * 3 + 7;
    term t[NT];
    for (int i = 0; i < NT; i++) term_make(&t[i], 1 + i % 5, in, out, LF_F32, 0.1f * (float)(i % 7) - 0.3f);
    lf_lora_seg s[NS];
    for (int i = 0; i < 40; i++) s[i] = (lf_lora_seg){(int64_t)i * 3, 3, (size_t)(i % 25) * 2, 2};
    s[40] = (lf_lora_seg){120, 7, 0, NT};
    run_case("41 segments, 50 terms (chunked)", M, in, out, t, NT, s, NS, 6);
    for (int i = 0; i < NT; i++) term_free(&t[i]);
}

static void case_errors(void) {
    term t[1];
    term_make(&t[0], 4, 8, 8, LF_F32, 1.0f);
    lf_lora_term lt = {view(t[0].down, LF_F32, 4, 8), view(t[0].up, LF_F32, 8, 4), 1.0f};
    float *x = NULL, *y = NULL;
    ok(C->alloc(C, 10 * 8, &x), "alloc");
    ok(C->alloc(C, 10 * 8, &y), "alloc");
    lf_lora_seg s[2] = {{0, 5, 0, 1}, {4, 3, 0, 1}};
    lf_status st = C->lora_terms(C, y, x, 10, 8, 8, &lt, 1, s, 2);
    LF_CHECK(st == LF_ERR_ARG && strstr(lf_last_error(), "lora_terms") && strstr(lf_last_error(), "share rows"),
             "overlapping segments: status %d (%s)", (int)st, lf_last_error());
    printf("overlap -> %s\n", lf_last_error());
    lt.up = view(t[0].up, LF_F32, 7, 4);
    s[1].row0 = 5;
    st = C->lora_terms(C, y, x, 10, 8, 8, &lt, 1, s, 2);
    LF_CHECK(st == LF_ERR_SHAPE && strstr(lf_last_error(), "term 0"), "wrong up: status %d (%s)", (int)st,
             lf_last_error());
    printf("wrong up -> %s\n", lf_last_error());
    s[1] = (lf_lora_seg){8, 3, 0, 1};
    lt.up = view(t[0].up, LF_F32, 8, 4);
    st = C->lora_terms(C, y, x, 10, 8, 8, &lt, 1, s, 2);
    LF_CHECK(st == LF_ERR_ARG && strstr(lf_last_error(), "outside"), "rows past M: status %d (%s)", (int)st,
             lf_last_error());
    C->forget(C, t[0].down, 1), C->forget(C, t[0].up, 1);
    C->release(C, x);
    C->release(C, y);
    term_free(&t[0]);
}

int main(int argc, char **argv) {
    uint64_t seed = 20261207;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 0);
        else {
            fprintf(stderr, "usage: gpu_sgmv [--seed N]\n");
            return 2;
        }
    }
    lf_device *dev = NULL;
    if (lf_test_cuda_open(&dev, &C) != LF_OK) return lf_test_finish();
    LF_CHECK(C->lora_terms != NULL, "the CUDA compute has lora_terms");
    printf("seed %llu (--seed to repeat), device %s\n", (unsigned long long)seed, lf_device_describe(dev));
    lf_test_rng_seed(&R, seed);
    if (C->lora_terms) {
        case_single_row();
        case_mixed(LF_F32, "ranks 1/4/32/128, f32 factors");
        case_mixed(LF_F16, "ranks 1/4/32/128, f16 factors");
        case_mixed(LF_BF16, "ranks 1/4/32/128, bf16 factors");
        case_many();
        case_errors();
    }
    C->destroy(C);
    lf_device_close(dev);
    return lf_test_finish();
}
