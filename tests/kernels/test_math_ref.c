/* test_math_ref.c: algebraic properties of the CPU reference (host/adapter/module_contrib.c + kernels/cpu) and of the
 * shared per-element math (lorafuse/lf_math.h), on random inputs from a fixed seed.
 *
 * Covered: LoRA/LoCon/Tucker = explicit sums (incl. dyn_rank), LoHa = product of two products,
 * LoKr = explicit Kronecker (full / factored / conv 4-D w2 / Tucker), GLoRA both layouts, IA3 both
 * sides, DoRA at s = 1 gives per-axis norms = dora_scale (both axes, PEFT shapes), strength 0 leaves
 * W0 bit-exactly for every algorithm, OFT with Q = 0 is the identity, R orthogonal, OFT/BOFT keep
 * column norms at s = 1, P5 order independence, every rejection of lf_module_resolve (with its message),
 * the 4-D <-> 2-D tolerance (T15), alpha missing / 0 / I64 / F16 / BF16 and the `scale` override (P1).
 * Modules are built in memory (name, present bits, views over local arrays). Run: ctest -R math
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/adapters/lf_ref.h"
#include "lf_test.h"
#include "lf_test_data.h"
#include "lorafuse/lf_adapter.h"
#include "kernels/common/lf_math.h"

/* ---- helpers -------------------------------------------------------------------------------- */

static lf_test_rng rng = {LF_TEST_RNG_SEED};

static float *rnd(int64_t n, float scale) {
    float *p = malloc((size_t)n * sizeof *p);
    if (!p) abort();
    for (int64_t i = 0; i < n; i++) p[i] = lf_test_rng_signed(&rng) * scale;
    return p;
}

#define SH(...) ((const int64_t[]){__VA_ARGS__})
#define NDIM(...) ((int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
/* put an f32 tensor of the given shape into role r */
#define PUT(m, r, data, ...) put((m), (r), (data), LF_F32, NDIM(__VA_ARGS__), SH(__VA_ARGS__))

static void put(lf_module *m, lf_role r, const void *data, lf_dtype dt, int nd, const int64_t *shape) {
    lf_test_set_role(m, r, lf_test_view_n(data, dt, nd, shape));
}

static void put_scalar(lf_module *m, lf_role r, const float *v) { put(m, r, v, LF_F32, 0, NULL); }

static lf_module module(const char *name) {
    lf_module m;
    memset(&m, 0, sizeof m);
    m.name = name;
    return m;
}

/* acc = w0 + C(w0, s) for module m resolved against shape w (must succeed). */
static float *apply1(lf_module *m, const float *w0, const lf_view *w, float s) {
    int64_t n = lf_view_numel(w);
    float *acc = malloc((size_t)n * sizeof *acc);
    if (!acc) abort();
    memcpy(acc, w0, (size_t)n * sizeof *acc);
    lf_status st = lf_module_resolve(m, w);
    LF_CHECK(st == LF_OK, "resolve %s: %s", m->name, lf_last_error());
    st = lf_module_contrib_ref(m, w0, w, 0, s, acc);
    LF_CHECK(st == LF_OK, "contrib %s: %s", m->name, lf_last_error());
    return acc;
}

static void check_close(const char *what, const float *got, const double *want, int64_t n, double tol) {
    double e = lf_test_rel_l2_f64(got, want, n);
    LF_CHECK(e <= tol, "%s: relative L2 error %.3g > %.3g", what, e, tol);
}

/* expect resolve(m, w) to fail with status st and a message containing every given fragment */
static void expect_reject(lf_module *m, const lf_view *w, lf_status want, int nfrag, ...) {
    lf_err_clear();
    lf_status st = lf_module_resolve(m, w);
    LF_CHECK(st == want, "%s: status %s, expected %s (%s)", m->name, lf_status_str(st), lf_status_str(want),
             lf_last_error());
    va_list ap;
    va_start(ap, nfrag);
    for (int i = 0; i < nfrag; i++) {
        const char *f = va_arg(ap, const char *);
        LF_CHECK(strstr(lf_last_error(), f) != NULL, "%s: message '%s' lacks '%s'", m->name, lf_last_error(), f);
    }
    va_end(ap);
}

/* ---- lf_math.h -------------------------------------------------------------------------------- */

static void test_math_header(void) {
    /* LoKr index map equals the nested loops of a Kronecker product, with conv taps */
    int64_t a = 2, b = 3, c = 2, d = 4, khw = 9, K = c * d * khw, bad = 0;
    for (int64_t i = 0; i < a; i++)
        for (int64_t p = 0; p < b; p++)
            for (int64_t j = 0; j < c; j++)
                for (int64_t q = 0; q < d; q++)
                    for (int64_t sp = 0; sp < khw; sp++) {
                        int64_t i1, i2;
                        lf_math_lokr_index(i * b + p, (j * d + q) * khw + sp, b, c, d, khw, &i1, &i2);
                        bad += i1 != i * c + j || i2 != (p * d + q) * khw + sp;
                    }
    LF_CHECK(bad == 0 && K == 72, "lokr index map: %lld mismatches", (long long)bad);
    /* BOFT permutation: a bijection of [0, N) at every level */
    for (int64_t k = 1; k <= 16; k *= 2) {
        int64_t N = 64, seen[64] = {0};
        int ok = 1;
        for (int64_t p = 0; p < N; p++) {
            int64_t q = lf_math_boft_perm(p, k);
            if (q < 0 || q >= N || seen[q]++) ok = 0;
        }
        LF_CHECK(ok, "boft permutation with k=%lld is not a bijection", (long long)k);
        /* pairs (2t, 2t+1) of the gathered order come from rows t and t+k of their chunk */
        /* gathered rows (0, 1) are rows (0, k) of the first chunk; row 2 is row 1 unless k == 1 */
        LF_CHECK(lf_math_boft_perm(1, k) == k && lf_math_boft_perm(2, k) == (k == 1 ? 2 : 1),
                 "boft permutation closed form, k=%lld", (long long)k);
    }
    LF_CHECK(lf_math_orth_interp(0.3f, 1, 1.0f) == 0.3f && lf_math_orth_interp(0.3f, 0, 1.0f) == 0.3f,
             "orth interp at s=1 is exact");
    LF_CHECK(lf_math_orth_interp(3.0f, 1, 0.5f) == 2.0f && lf_math_orth_interp(3.0f, 0, 0.5f) == 1.5f,
             "orth interp at s=0.5");
    LF_CHECK(lf_math_orth_interp(0.7f, 1, 0.0f) == 1.0f && lf_math_orth_interp(0.7f, 0, 0.0f) == 0.0f,
             "orth interp at s=0 is I");
    LF_CHECK(lf_math_ia3_contrib(0.75f, 0.5f, 1.0f) == 0.375f, "ia3 contrib");
    LF_CHECK(lf_math_ia3_contrib(0.75f, 0.5f, 0.0f) == 0.0f, "ia3 contrib s=0");
    LF_CHECK(lf_math_dora_scale(2.0f, 1.0f) == 2.0f / (1.0f + LF_DORA_EPS), "dora scale");
    LF_CHECK(lf_math_axpy(1.0f, 3.0f, 0.5f) == 2.5f, "axpy");
    /* fmaf: one rounding. 1 + 2^-24 is not representable, (1+2^-12)^2 - 1 needs the fused product */
    float x = 1.0f + 0x1p-12f;
    LF_CHECK(lf_math_axpy(-1.0f, x, x) == 0x1p-11f + 0x1p-24f, "axpy is fused (fmaf)");
    LF_CHECK(lf_math_store_f16(1.0f) == 0x3c00 && lf_math_store_bf16(1.0f) == 0x3f80, "store f16/bf16");
    LF_CHECK(lf_math_round_f16(1.0f + 0x1p-12f) == 1.0f && lf_math_round_f16(1.0f + 0x1p-11f) == 1.0f &&
                 lf_math_round_f16(1.0f + 3 * 0x1p-11f) == 1.0f + 0x1p-9f,
             "round to f16: nearest, ties to even");
}

/* ---- LoRA --------------------------------------------------------------------------------------- */

static void test_lora(void) {
    enum { O = 7, I = 5, R = 3 };
    float *w0 = rnd(O * I, 1.0f), *up = rnd(O * R, 1.0f), *down = rnd(R * I, 1.0f), alpha = 1.5f;
    lf_view w = lf_test_view_n(NULL, LF_F32, 2, SH(O, I));
    float s = 0.7f;
    lf_module m = module("lora_linear");
    PUT(&m, LF_R_UP, up, O, R);
    PUT(&m, LF_R_DOWN, down, R, I);
    put_scalar(&m, LF_R_ALPHA, &alpha);
    float *acc = apply1(&m, w0, &w, s);
    LF_CHECK(m.algo == LF_ALGO_LORA && m.rank == R && m.gamma == 0.5f, "lora resolve: algo %d rank %d gamma %g",
             m.algo, m.rank, (double)m.gamma);
    double want[O * I];
    for (int o = 0; o < O; o++)
        for (int i = 0; i < I; i++) {
            double d = 0;
            for (int r = 0; r < R; r++) d += (double)up[o * R + r] * down[r * I + i];
            want[o * I + i] = w0[o * I + i] + (double)s * 0.5 * d;
        }
    check_close("lora = W0 + s*gamma*up@down", acc, want, O * I, 1e-6);
    free(acc);

    /* dyn_rank: first 2 ranks, gamma still alpha / full rank (A1111 dyn_dim) */
    m.dyn_rank = 2;
    acc = apply1(&m, w0, &w, s);
    for (int o = 0; o < O; o++)
        for (int i = 0; i < I; i++) {
            double d = 0;
            for (int r = 0; r < 2; r++) d += (double)up[o * R + r] * down[r * I + i];
            want[o * I + i] = w0[o * I + i] + (double)s * 0.5 * d;
        }
    check_close("lora dyn_rank 2", acc, want, O * I, 1e-6);
    LF_CHECK(m.gamma == 0.5f && m.rank == R, "dyn_rank leaves gamma and rank");
    free(acc);

    /* T15: 4-D (.., 1, 1) factors on a Linear weight give the same bits as 2-D ones */
    lf_module m4 = module("lora_4d_on_linear");
    PUT(&m4, LF_R_UP, up, O, R, 1, 1);
    PUT(&m4, LF_R_DOWN, down, R, I, 1, 1);
    put_scalar(&m4, LF_R_ALPHA, &alpha);
    m.dyn_rank = 0;
    float *a2 = apply1(&m, w0, &w, s), *a4 = apply1(&m4, w0, &w, s);
    LF_CHECK(memcmp(a2, a4, sizeof(float) * O * I) == 0, "4-D factors on a Linear weight");
    /* ... and 2-D factors on a 1x1 conv */
    lf_view w11 = lf_test_view_n(NULL, LF_F32, 4, SH(O, I, 1, 1));
    float *a11 = apply1(&m, w0, &w11, s);
    LF_CHECK(memcmp(a2, a11, sizeof(float) * O * I) == 0, "2-D factors on a 1x1 conv");
    /* ... but not a 3x3 kernel on a Linear weight, even with the same element count */
    float d33[R * 9] = {0};
    lf_module m3 = module("lora_3x3_on_linear");
    PUT(&m3, LF_R_UP, up, O, R);
    PUT(&m3, LF_R_DOWN, d33, R, 1, 3, 3);
    lf_view wl = lf_test_view_n(NULL, LF_F32, 2, SH(O, 9));
    expect_reject(&m3, &wl, LF_ERR_SHAPE, 2, "module 'lora_3x3_on_linear': lora_down has shape (3, 1, 3, 3)",
                  "expected (3, 9) for weight (7, 9)");
    free(a2);
    free(a4);
    free(a11);
    free(w0);
    free(up);
    free(down);
}

static void test_locon(void) {
    enum { O = 4, I = 3, R = 2, KH = 3, KW = 3, KHW = 9, K = I * KHW };
    float *w0 = rnd(O * K, 1.0f), *up = rnd(O * R, 1.0f), *down = rnd(R * K, 1.0f), alpha = 1.0f;
    lf_view w = lf_test_view_n(NULL, LF_F32, 4, SH(O, I, KH, KW));
    lf_module m = module("locon_3x3");
    PUT(&m, LF_R_UP, up, O, R, 1, 1);
    PUT(&m, LF_R_DOWN, down, R, I, KH, KW);
    put_scalar(&m, LF_R_ALPHA, &alpha);
    float *acc = apply1(&m, w0, &w, 1.0f);
    double want[O * K];
    for (int o = 0; o < O; o++)
        for (int c = 0; c < K; c++) {
            double d = 0;
            for (int r = 0; r < R; r++) d += (double)up[o * R + r] * down[r * K + c];
            want[o * K + c] = w0[o * K + c] + 0.5 * d;
        }
    check_close("locon 3x3", acc, want, O * K, 1e-6);
    free(acc);

    /* Tucker: down (R, I, 1, 1), mid (R, R, kh, kw), up (O, R, 1, 1) */
    float *mid = rnd(R * R * KHW, 1.0f), *down2 = rnd(R * I, 1.0f);
    lf_module t = module("locon_tucker");
    PUT(&t, LF_R_UP, up, O, R, 1, 1);
    PUT(&t, LF_R_DOWN, down2, R, I, 1, 1);
    PUT(&t, LF_R_MID, mid, R, R, KH, KW);
    put_scalar(&t, LF_R_ALPHA, &alpha);
    acc = apply1(&t, w0, &w, 0.25f);
    for (int o = 0; o < O; o++)
        for (int i = 0; i < I; i++)
            for (int sp = 0; sp < KHW; sp++) {
                double d = 0;
                for (int p = 0; p < R; p++)
                    for (int q = 0; q < R; q++)
                        d += (double)up[o * R + p] * mid[(p * R + q) * KHW + sp] * down2[q * I + i];
                want[o * K + i * KHW + sp] = w0[o * K + i * KHW + sp] + 0.25 * 0.5 * d;
            }
    check_close("locon tucker", acc, want, O * K, 1e-6);
    /* a Tucker down must be 1x1 */
    lf_module tb = t;
    tb.name = "locon_tucker_bad_down";
    PUT(&tb, LF_R_DOWN, down, R, I, KH, KW);
    expect_reject(&tb, &w, LF_ERR_SHAPE, 1, "lora_down has shape (2, 3, 3, 3), expected (2, 3, 1, 1) for weight (4, 3, 3, 3)");
    free(acc);
    free(w0);
    free(up);
    free(down);
    free(mid);
    free(down2);
}

/* ---- LoHa --------------------------------------------------------------------------------------- */

static void test_loha(void) {
    enum { O = 6, I = 4, R = 2, KHW = 9, K = I * KHW };
    float *w0 = rnd(O * K, 1.0f), alpha = 4.0f;
    float *w1a = rnd(O * R, 1.0f), *w1b = rnd(R * K, 1.0f), *w2a = rnd(O * R, 1.0f), *w2b = rnd(R * K, 1.0f);
    lf_view w = lf_test_view_n(NULL, LF_F32, 4, SH(O, I, 3, 3));
    lf_module m = module("loha_conv");
    PUT(&m, LF_R_HW1A, w1a, O, R);
    PUT(&m, LF_R_HW1B, w1b, R, K); /* 2-D (R, I*kh*kw) as LyCORIS writes it */
    PUT(&m, LF_R_HW2A, w2a, O, R);
    PUT(&m, LF_R_HW2B, w2b, R, I, 3, 3); /* older 4-D spelling */
    put_scalar(&m, LF_R_ALPHA, &alpha);
    float *acc = apply1(&m, w0, &w, 0.5f);
    LF_CHECK(m.algo == LF_ALGO_LOHA && m.rank == R && m.gamma == 2.0f, "loha gamma %g", (double)m.gamma);
    double want[O * K];
    for (int o = 0; o < O; o++)
        for (int c = 0; c < K; c++) {
            double m1 = 0, m2 = 0;
            for (int r = 0; r < R; r++) {
                m1 += (double)w1a[o * R + r] * w1b[r * K + c];
                m2 += (double)w2a[o * R + r] * w2b[r * K + c];
            }
            want[o * K + c] = w0[o * K + c] + 0.5 * 2.0 * m1 * m2;
        }
    check_close("loha = (w1a@w1b) * (w2a@w2b)", acc, want, O * K, 1e-6);
    free(acc);

    /* Tucker: w_a (R, O), w_b (R, I), t (R, R, 3, 3) */
    float *ta = rnd(R * R * KHW, 1.0f), *tb = rnd(R * R * KHW, 1.0f), *b1 = rnd(R * I, 1.0f), *b2 = rnd(R * I, 1.0f);
    lf_module t = module("loha_tucker");
    PUT(&t, LF_R_HW1A, w1a, R, O);
    PUT(&t, LF_R_HW1B, b1, R, I);
    PUT(&t, LF_R_HW2A, w2a, R, O);
    PUT(&t, LF_R_HW2B, b2, R, I);
    PUT(&t, LF_R_HT1, ta, R, R, 3, 3);
    PUT(&t, LF_R_HT2, tb, R, R, 3, 3);
    put_scalar(&t, LF_R_ALPHA, &alpha);
    acc = apply1(&t, w0, &w, 1.0f);
    for (int o = 0; o < O; o++)
        for (int i = 0; i < I; i++)
            for (int sp = 0; sp < KHW; sp++) {
                double m1 = 0, m2 = 0;
                for (int p = 0; p < R; p++)
                    for (int q = 0; q < R; q++) {
                        m1 += (double)ta[(p * R + q) * KHW + sp] * w1a[p * O + o] * b1[q * I + i];
                        m2 += (double)tb[(p * R + q) * KHW + sp] * w2a[p * O + o] * b2[q * I + i];
                    }
                want[o * K + i * KHW + sp] = w0[o * K + i * KHW + sp] + 2.0 * m1 * m2;
            }
    check_close("loha tucker", acc, want, O * K, 1e-6);
    free(acc);
    free(w0);
    free(w1a);
    free(w1b);
    free(w2a);
    free(w2b);
    free(ta);
    free(tb);
    free(b1);
    free(b2);
}

/* ---- LoKr --------------------------------------------------------------------------------------- */

static void kron_want(const double *W1, int64_t a, int64_t c, const double *W2, int64_t b, int64_t k2,
                      const float *w0, double coef, double *want) {
    int64_t K = c * k2;
    for (int64_t i = 0; i < a; i++)
        for (int64_t p = 0; p < b; p++)
            for (int64_t j = 0; j < c; j++)
                for (int64_t q = 0; q < k2; q++) {
                    int64_t o = i * b + p, col = j * k2 + q;
                    want[o * K + col] = w0[o * K + col] + coef * W1[i * c + j] * W2[p * k2 + q];
                }
}

static void test_lokr(void) {
    /* Linear (6, 12): w1 full (2, 3), w2 = w2a (3, 2) @ w2b (2, 4) */
    enum { A = 2, C = 3, B = 3, D = 4, R = 2, O = A * B, I = C * D };
    float *w0 = rnd(O * I, 1.0f), *w1 = rnd(A * C, 1.0f), *w2a = rnd(B * R, 1.0f), *w2b = rnd(R * D, 1.0f);
    float alpha = 1.0f;
    lf_view w = lf_test_view_n(NULL, LF_F32, 2, SH(O, I));
    lf_module m = module("lokr_linear");
    PUT(&m, LF_R_KW1, w1, A, C);
    PUT(&m, LF_R_KW2A, w2a, B, R);
    PUT(&m, LF_R_KW2B, w2b, R, D);
    put_scalar(&m, LF_R_ALPHA, &alpha);
    float *acc = apply1(&m, w0, &w, 0.8f);
    LF_CHECK(m.algo == LF_ALGO_LOKR && m.rank == R && m.gamma == 0.5f, "lokr rank %d gamma %g", m.rank,
             (double)m.gamma);
    double W1[A * C], W2[B * D], want[O * I];
    for (int i = 0; i < A * C; i++) W1[i] = w1[i];
    for (int p = 0; p < B; p++)
        for (int q = 0; q < D; q++) {
            W2[p * D + q] = 0;
            for (int r = 0; r < R; r++) W2[p * D + q] += (double)w2a[p * R + r] * w2b[r * D + q];
        }
    kron_want(W1, A, C, W2, B, D, w0, 0.8 * 0.5, want);
    check_close("lokr = kron(w1, w2a@w2b)", acc, want, O * I, 1e-6);
    free(acc);

    /* both factors full: no rank, gamma 1 whatever alpha says */
    float *w2 = rnd(B * D, 1.0f);
    lf_module f = module("lokr_full_full");
    PUT(&f, LF_R_KW1, w1, A, C);
    PUT(&f, LF_R_KW2, w2, B, D);
    put_scalar(&f, LF_R_ALPHA, &alpha);
    acc = apply1(&f, w0, &w, 1.0f);
    LF_CHECK(f.rank == 0 && f.gamma == 1.0f, "lokr full/full: rank %d gamma %g", f.rank, (double)f.gamma);
    for (int i = 0; i < B * D; i++) W2[i] = w2[i];
    kron_want(W1, A, C, W2, B, D, w0, 1.0, want);
    check_close("lokr full (x) full", acc, want, O * I, 1e-6);
    free(acc);

    /* conv 3x3 (6, 12, 3, 3): w1 = w1a (2, 1) @ w1b (1, 3), full 4-D w2 (3, 4, 3, 3) */
    enum { KHW = 9, KC = I * KHW };
    float *w0c = rnd(O * KC, 1.0f), *w1a = rnd(A, 1.0f), *w1b = rnd(C, 1.0f), *w2c = rnd(B * D * KHW, 1.0f);
    lf_view wc = lf_test_view_n(NULL, LF_F32, 4, SH(O, I, 3, 3));
    lf_module c = module("lokr_conv");
    PUT(&c, LF_R_KW1A, w1a, A, 1);
    PUT(&c, LF_R_KW1B, w1b, 1, C);
    PUT(&c, LF_R_KW2, w2c, B, D, 3, 3);
    acc = apply1(&c, w0c, &wc, 1.0f);
    LF_CHECK(c.rank == 1 && c.gamma == 1.0f, "lokr conv: rank %d gamma %g (no alpha)", c.rank, (double)c.gamma);
    double W2c[B * D * KHW], *wantc = malloc(sizeof(double) * O * KC);
    for (int i = 0; i < A; i++)
        for (int j = 0; j < C; j++) W1[i * C + j] = (double)w1a[i] * w1b[j];
    for (int i = 0; i < B * D * KHW; i++) W2c[i] = w2c[i];
    kron_want(W1, A, C, W2c, B, D * KHW, w0c, 1.0, wantc);
    check_close("lokr conv = kron(w1, w2[.., kh, kw])", acc, wantc, O * KC, 1e-6);
    free(acc);

    /* Tucker: w2a (R, b), w2b (R, d), t2 (R, R, 3, 3) */
    float *ta = rnd(R * B, 1.0f), *tbb = rnd(R * D, 1.0f), *t2 = rnd(R * R * KHW, 1.0f);
    lf_module t = module("lokr_tucker");
    PUT(&t, LF_R_KW1, w1, A, C);
    PUT(&t, LF_R_KW2A, ta, R, B);
    PUT(&t, LF_R_KW2B, tbb, R, D);
    PUT(&t, LF_R_KT2, t2, R, R, 3, 3);
    put_scalar(&t, LF_R_ALPHA, &alpha);
    acc = apply1(&t, w0c, &wc, 1.0f);
    LF_CHECK(t.rank == R, "lokr tucker rank %d", t.rank);
    for (int i = 0; i < A * C; i++) W1[i] = w1[i];
    for (int p = 0; p < B; p++)
        for (int q = 0; q < D; q++)
            for (int sp = 0; sp < KHW; sp++) {
                double v = 0;
                for (int u = 0; u < R; u++)
                    for (int x = 0; x < R; x++) v += (double)t2[(u * R + x) * KHW + sp] * ta[u * B + p] * tbb[x * D + q];
                W2c[(p * D + q) * KHW + sp] = v;
            }
    kron_want(W1, A, C, W2c, B, D * KHW, w0c, 0.5, wantc);
    check_close("lokr tucker", acc, wantc, O * KC, 1e-6);
    free(acc);

    /* wrong split: w1 (2, 3) with w2 (3, 5) cannot make (6, 12) */
    float big[3 * 5] = {0};
    lf_module bad = module("lokr_bad");
    PUT(&bad, LF_R_KW1, w1, A, C);
    PUT(&bad, LF_R_KW2, big, 3, 5);
    expect_reject(&bad, &w, LF_ERR_SHAPE, 3, "module 'lokr_bad'", "lokr_w2 (3, 5)", "expected (6, 12) for weight (6, 12)");
    free(wantc);
    free(w0);
    free(w1);
    free(w2a);
    free(w2b);
    free(w2);
    free(w0c);
    free(w1a);
    free(w1b);
    free(w2c);
    free(ta);
    free(tbb);
    free(t2);
}

/* ---- GLoRA --------------------------------------------------------------------------------------- */

static void test_glora(void) {
    enum { O = 5, I = 4, R = 2, KHW = 9, K = I * KHW };
    float *w0 = rnd(O * K, 1.0f), alpha = 1.0f;
    float *a1 = rnd(I * R, 1.0f), *a2 = rnd(R * I, 1.0f), *b1 = rnd(O * R, 1.0f), *b2 = rnd(R * K, 1.0f);
    lf_view w = lf_test_view_n(NULL, LF_F32, 4, SH(O, I, 3, 3));
    lf_module m = module("glora_new_conv");
    PUT(&m, LF_R_GA1, a1, I, R, 1, 1);
    PUT(&m, LF_R_GA2, a2, R, I, 1, 1);
    PUT(&m, LF_R_GB1, b1, O, R, 1, 1);
    PUT(&m, LF_R_GB2, b2, R, I, 3, 3);
    put_scalar(&m, LF_R_ALPHA, &alpha);
    float *acc = apply1(&m, w0, &w, 0.6f);
    LF_CHECK(!m.glora_old_layout && m.rank == R && m.gamma == 0.5f, "glora new layout: old %d rank %d",
             m.glora_old_layout, m.rank);
    double want[O * K];
    for (int o = 0; o < O; o++)
        for (int j = 0; j < I; j++)
            for (int sp = 0; sp < KHW; sp++) {
                double d = 0;
                for (int i = 0; i < I; i++) {
                    double mij = 0;
                    for (int r = 0; r < R; r++) mij += (double)a1[i * R + r] * a2[r * I + j];
                    d += (double)w0[o * K + i * KHW + sp] * mij;
                }
                for (int r = 0; r < R; r++) d += (double)b1[o * R + r] * b2[r * K + j * KHW + sp];
                want[o * K + j * KHW + sp] = w0[o * K + j * KHW + sp] + 0.6 * 0.5 * d;
            }
    check_close("glora new = W x_in (a1 a2) + b1 b2", acc, want, O * K, 1e-6);
    free(acc);

    /* old layout, Linear (O, I): a1 (R, I), a2 (I, R), b1 (R, I), b2 (O, R) */
    float *oa1 = rnd(R * I, 1.0f), *oa2 = rnd(I * R, 1.0f), *ob1 = rnd(R * I, 1.0f), *ob2 = rnd(O * R, 1.0f);
    lf_view wl = lf_test_view_n(NULL, LF_F32, 2, SH(O, I));
    lf_module o = module("glora_old");
    PUT(&o, LF_R_GA1, oa1, R, I);
    PUT(&o, LF_R_GA2, oa2, I, R);
    PUT(&o, LF_R_GB1, ob1, R, I);
    PUT(&o, LF_R_GB2, ob2, O, R);
    put_scalar(&o, LF_R_ALPHA, &alpha);
    acc = apply1(&o, w0, &wl, 1.0f);
    LF_CHECK(o.glora_old_layout && o.rank == R, "glora old layout detected (old %d)", o.glora_old_layout);
    for (int r0 = 0; r0 < O; r0++)
        for (int j = 0; j < I; j++) {
            double d = 0;
            for (int r = 0; r < R; r++) {
                d += (double)ob2[r0 * R + r] * ob1[r * I + j];
                double wa = 0;
                for (int i = 0; i < I; i++) wa += (double)w0[r0 * I + i] * oa2[i * R + r];
                d += wa * oa1[r * I + j];
            }
            want[r0 * I + j] = w0[r0 * I + j] + 0.5 * d;
        }
    check_close("glora old = b2 b1 + W a2 a1", acc, want, O * I, 1e-6);
    free(acc);

    /* square ambiguity (O == I, both layouts fit): ComfyUI's rule */
    enum { S = 4, Q = 2 };
    float *s1 = rnd(S * Q, 1.0f), *s2 = rnd(Q * S, 1.0f), *s3 = rnd(S * Q, 1.0f), *s4 = rnd(Q * S, 1.0f);
    lf_view ws = lf_test_view_n(NULL, LF_F32, 2, SH(S, S)), wq = lf_test_view_n(NULL, LF_F32, 2, SH(Q, Q));
    lf_module amb = module("glora_ambiguous");
    PUT(&amb, LF_R_GA1, s1, S, Q); /* new: a1 (I=4, r=2); old: a1 (r=4, I=2) */
    PUT(&amb, LF_R_GA2, s2, Q, S);
    PUT(&amb, LF_R_GB1, s3, S, Q);
    PUT(&amb, LF_R_GB2, s4, Q, S);
    LF_CHECK(lf_module_resolve(&amb, &ws) == LF_OK && !amb.glora_old_layout && amb.rank == Q,
             "ambiguous GLoRA on (4, 4) is the new layout (%s)", lf_last_error());
    LF_CHECK(lf_module_resolve(&amb, &wq) == LF_OK && amb.glora_old_layout && amb.rank == S,
             "ambiguous GLoRA on (2, 2) is the old layout (%s)", lf_last_error());
    /* old layout cannot target a 3x3 conv */
    lf_view w33 = lf_test_view_n(NULL, LF_F32, 4, SH(O, I, 3, 3));
    expect_reject(&o, &w33, LF_ERR_SHAPE, 2, "module 'glora_old'", "needs a Linear weight");
    /* neither layout */
    lf_module nl = module("glora_neither");
    PUT(&nl, LF_R_GA1, s1, S, Q);
    PUT(&nl, LF_R_GA2, s2, Q, S);
    PUT(&nl, LF_R_GB1, s3, S, Q);
    PUT(&nl, LF_R_GB2, s4, 1, 8);
    expect_reject(&nl, NULL, LF_ERR_SHAPE, 2, "module 'glora_neither'", "fit neither layout");
    free(w0);
    free(a1);
    free(a2);
    free(b1);
    free(b2);
    free(oa1);
    free(oa2);
    free(ob1);
    free(ob2);
    free(s1);
    free(s2);
    free(s3);
    free(s4);
}

/* ---- IA3 ---------------------------------------------------------------------------------------- */

static void test_ia3(void) {
    enum { O = 4, I = 3, KHW = 9, K = I * KHW };
    float *w0 = rnd(O * K, 1.0f), *wo = rnd(O, 0.5f), *wi = rnd(I, 0.5f), on0 = 0.0f, on1 = 1.0f;
    lf_view w = lf_test_view_n(NULL, LF_F32, 4, SH(O, I, 3, 3));
    lf_module m = module("ia3_out");
    PUT(&m, LF_R_IA3_W, wo, 1, O, 1, 1);
    put_scalar(&m, LF_R_ON_INPUT, &on0);
    float *acc = apply1(&m, w0, &w, 0.5f);
    double want[O * K];
    for (int o = 0; o < O; o++)
        for (int c = 0; c < K; c++) want[o * K + c] = w0[o * K + c] * (1.0 + 0.5 * wo[o]);
    check_close("ia3 output rows", acc, want, O * K, 1e-6);
    free(acc);
    lf_module n = module("ia3_in");
    PUT(&n, LF_R_IA3_W, wi, 1, I, 1, 1);
    put_scalar(&n, LF_R_ON_INPUT, &on1);
    acc = apply1(&n, w0, &w, 1.0f);
    for (int o = 0; o < O; o++)
        for (int c = 0; c < K; c++) want[o * K + c] = w0[o * K + c] * (1.0 + wi[c / KHW]);
    check_close("ia3 input channels (conv taps)", acc, want, O * K, 1e-6);
    LF_CHECK(n.ia3_on_input == 1, "on_input read");
    /* output-side vector on the input side: wrong length */
    lf_module bad = module("ia3_bad");
    PUT(&bad, LF_R_IA3_W, wo, O);
    put_scalar(&bad, LF_R_ON_INPUT, &on1);
    expect_reject(&bad, &w, LF_ERR_SHAPE, 2, "module 'ia3_bad': weight (IA3) has shape (4,)",
                  "expected (1, 3, 1, 1) for weight (4, 3, 3, 3)");
    free(acc);
    free(w0);
    free(wo);
    free(wi);
}

/* ---- DoRA --------------------------------------------------------------------------------------- */

/* result norms per axis must equal m (up to eps) at s = 1 */
static void dora_norm_check(const char *what, const float *acc, const float *mag, int axis, int64_t O, int64_t I,
                            int64_t khw) {
    int64_t K = I * khw, nk = axis == 1 ? O : I;
    double ss[64] = {0}, worst = 0;
    for (int64_t o = 0; o < O; o++)
        for (int64_t c = 0; c < K; c++) ss[axis == 1 ? o : c / khw] += (double)acc[o * K + c] * acc[o * K + c];
    for (int64_t j = 0; j < nk; j++) {
        double e = fabs(sqrt(ss[j]) - mag[j]) / fabs(mag[j]);
        if (e > worst) worst = e;
    }
    LF_CHECK(worst < 2e-6, "%s: per-axis norm differs from dora_scale by %.3g (relative)", what, worst);
}

static void test_dora(void) {
    enum { O = 6, I = 5, R = 2, KHW = 9, K = I * KHW };
    float *w0 = rnd(O * K, 1.0f), *up = rnd(O * R, 0.3f), *down = rnd(R * K, 0.3f), alpha = 2.0f;
    float *mo = rnd(O, 1.0f), *mi = rnd(I, 1.0f);
    for (int i = 0; i < O; i++) mo[i] = 1.0f + 0.5f * fabsf(mo[i]);
    for (int i = 0; i < I; i++) mi[i] = 1.0f + 0.5f * fabsf(mi[i]);
    lf_view w = lf_test_view_n(NULL, LF_F32, 4, SH(O, I, 3, 3));
    lf_module base = module("dora");
    PUT(&base, LF_R_UP, up, O, R, 1, 1);
    PUT(&base, LF_R_DOWN, down, R, I, 3, 3);
    put_scalar(&base, LF_R_ALPHA, &alpha);

    lf_module out = base;
    out.name = "dora_out";
    PUT(&out, LF_R_DORA, mo, O, 1, 1, 1);
    float *acc = apply1(&out, w0, &w, 1.0f);
    LF_CHECK(out.dora_axis == 1, "dora (O,1,1,1) is the output axis");
    dora_norm_check("dora output axis", acc, mo, 1, O, I, KHW);
    free(acc);

    lf_module in = base;
    in.name = "dora_in";
    PUT(&in, LF_R_DORA, mi, 1, I, 1, 1);
    acc = apply1(&in, w0, &w, 1.0f);
    LF_CHECK(in.dora_axis == 2, "dora (1,I,1,1) is the input axis");
    dora_norm_check("dora input axis", acc, mi, 2, O, I, KHW);
    free(acc);

    /* PEFT shapes: (O,) on a Linear, (1, O, 1, 1) on a conv with O != I */
    lf_module pc = base;
    pc.name = "dora_peft_conv";
    PUT(&pc, LF_R_DORA, mo, 1, O, 1, 1);
    acc = apply1(&pc, w0, &w, 1.0f);
    LF_CHECK(pc.dora_axis == 1, "PEFT conv magnitude (1, O, 1, 1) with O != I is the output axis");
    dora_norm_check("dora PEFT conv", acc, mo, 1, O, I, KHW);
    free(acc);
    lf_view wl = lf_test_view_n(NULL, LF_F32, 2, SH(O, K));
    lf_module pl = base;
    pl.name = "dora_peft_linear";
    PUT(&pl, LF_R_UP, up, O, R);
    PUT(&pl, LF_R_DOWN, down, R, K);
    PUT(&pl, LF_R_DORA, mo, O);
    acc = apply1(&pl, w0, &wl, 1.0f);
    LF_CHECK(pl.dora_axis == 1, "PEFT (O,) is the output axis");
    dora_norm_check("dora PEFT linear", acc, mo, 1, O, K, 1);
    free(acc);

    /* P2 at s = 0.5: W0 + s (D - W0), D the s = 1 result */
    float *d1 = apply1(&out, w0, &w, 1.0f), *dh = apply1(&out, w0, &w, 0.5f);
    double want[O * K];
    for (int i = 0; i < O * K; i++) want[i] = w0[i] + 0.5 * ((double)d1[i] - w0[i]);
    check_close("dora strength = W0 + s (D - W0)", dh, want, O * K, 1e-6);
    free(d1);
    free(dh);

    /* square conv (O == I): (1, n, 1, 1) stays the input axis (P2) */
    enum { S = 4 };
    float *ws0 = rnd(S * S * KHW, 1.0f), *su = rnd(S * R, 0.3f), *sd = rnd(R * S * KHW, 0.3f), *sm = rnd(S, 1.0f);
    for (int i = 0; i < S; i++) sm[i] = 1.0f + fabsf(sm[i]);
    lf_view wsq = lf_test_view_n(NULL, LF_F32, 4, SH(S, S, 3, 3));
    lf_module sq = module("dora_square");
    PUT(&sq, LF_R_UP, su, S, R, 1, 1);
    PUT(&sq, LF_R_DOWN, sd, R, S, 3, 3);
    PUT(&sq, LF_R_DORA, sm, 1, S, 1, 1);
    acc = apply1(&sq, ws0, &wsq, 1.0f);
    LF_CHECK(sq.dora_axis == 2, "(1, n, 1, 1) with n == O == I is the input axis");
    dora_norm_check("dora square input axis", acc, sm, 2, S, S, KHW);
    free(acc);

    /* resolved without a target, (1, O, 1, 1) is provisionally the input axis; a contribution to a
     * conv with O != I must then be refused (resolve against the weight first), never computed */
    lf_module pv = base;
    pv.name = "dora_provisional";
    PUT(&pv, LF_R_DORA, mo, 1, O, 1, 1);
    LF_CHECK(lf_module_resolve(&pv, NULL) == LF_OK && pv.dora_axis == 2, "provisional axis: %s", lf_last_error());
    float *tmp = malloc(sizeof(float) * O * K);
    memcpy(tmp, w0, sizeof(float) * O * K);
    LF_CHECK(lf_module_contrib_ref(&pv, w0, &w, 0, 1.0f, tmp) == LF_ERR_ARG &&
                 strstr(lf_last_error(), "module 'dora_provisional': resolved for another weight shape"),
             "contrib against an unresolved shape: %s", lf_last_error());
    LF_CHECK(lf_module_resolve(&pv, &w) == LF_OK && pv.dora_axis == 1 &&
                 lf_module_contrib_ref(&pv, w0, &w, 0, 1.0f, tmp) == LF_OK,
             "after resolving against the weight: %s", lf_last_error());
    free(tmp);

    /* bad shapes */
    lf_module b1 = base;
    b1.name = "dora_bad";
    PUT(&b1, LF_R_DORA, mo, 2, 3);
    expect_reject(&b1, NULL, LF_ERR_SHAPE, 2, "module 'dora_bad': dora_scale has shape (2, 3)", "expected (O, 1");
    lf_module b2 = base;
    b2.name = "dora_len";
    PUT(&b2, LF_R_DORA, mo, O - 1, 1);
    expect_reject(&b2, &w, LF_ERR_SHAPE, 2, "module 'dora_len': dora_scale has shape (5, 1)",
                  "expected (6, 1), (6,) or (1, 5) for weight (6, 5, 3, 3)");
    /* dora_scale cannot ride on OFT */
    float blocks[2 * 3 * 3] = {0};
    lf_module bo = module("dora_oft");
    PUT(&bo, LF_R_OFT_BLOCKS, blocks, 2, 3, 3);
    PUT(&bo, LF_R_DORA, mo, O, 1);
    expect_reject(&bo, NULL, LF_ERR_FORMAT, 2, "module 'dora_oft'", "dora_scale cannot be combined with oft");
    free(w0);
    free(up);
    free(down);
    free(mo);
    free(mi);
    free(ws0);
    free(su);
    free(sd);
    free(sm);
}

/* ---- OFT / BOFT ---------------------------------------------------------------------------------- */

static void column_norms(const float *w, int64_t O, int64_t K, double *out) {
    for (int64_t c = 0; c < K; c++) {
        out[c] = 0;
        for (int64_t o = 0; o < O; o++) out[c] += (double)w[o * K + c] * w[o * K + c];
        out[c] = sqrt(out[c]);
    }
}

static void test_oft(void) {
    enum { NB = 3, B = 4, O = NB * B, I = 5, KHW = 9, K = I * KHW };
    float *w0 = rnd(O * K, 1.0f), *blk = rnd(NB * B * B, 0.3f), alpha = 0.0f;
    lf_view w = lf_test_view_n(NULL, LF_F32, 4, SH(O, I, 3, 3));

    /* R orthogonal, R = I for Q = 0 */
    float R[NB * B * B];
    LF_CHECK(lf_oft_rotation_ref(blk, NB, B, 0.0, R) == LF_OK, "rotation");
    double worst = 0;
    for (int k = 0; k < NB; k++)
        for (int u = 0; u < B; u++)
            for (int v = 0; v < B; v++) {
                double d = 0;
                for (int n = 0; n < B; n++) d += (double)R[k * B * B + n * B + u] * R[k * B * B + n * B + v];
                d -= u == v;
                if (fabs(d) > worst) worst = fabs(d);
            }
    LF_CHECK(worst < 1e-6, "R^T R = I: max deviation %.3g", worst);
    float sym[NB * B * B];
    for (int k = 0; k < NB; k++)
        for (int u = 0; u < B; u++)
            for (int v = 0; v < B; v++) sym[k * B * B + u * B + v] = blk[k * B * B + u * B + v] + blk[k * B * B + v * B + u];
    LF_CHECK(lf_oft_rotation_ref(sym, NB, B, 0.0, R) == LF_OK, "rotation of symmetric blocks");
    int ident = 1;
    for (int k = 0; k < NB; k++)
        for (int u = 0; u < B; u++)
            for (int v = 0; v < B; v++) ident &= R[k * B * B + u * B + v] == (u == v ? 1.0f : 0.0f);
    LF_CHECK(ident, "Q = 0 gives R = I exactly");
    lf_module z = module("oft_q0");
    PUT(&z, LF_R_OFT_BLOCKS, sym, NB, B, B);
    float *acc = apply1(&z, w0, &w, 0.6f);
    LF_CHECK(memcmp(acc, w0, sizeof(float) * O * K) == 0, "OFT with Q = 0 is the identity");
    free(acc);

    /* constraint: ||R - I||_F ~ 2 ||Q_clamped||_F <= 2c for a small c = alpha * O */
    double c = 1e-3;
    LF_CHECK(lf_oft_rotation_ref(blk, NB, B, c, R) == LF_OK, "clamped rotation");
    double dev = 0;
    for (int k = 0; k < NB; k++)
        for (int u = 0; u < B; u++)
            for (int v = 0; v < B; v++) {
                double d = R[k * B * B + u * B + v] - (u == v);
                dev += d * d;
            }
    LF_CHECK(sqrt(dev) <= 2.0 * c * 1.001 && sqrt(dev) >= 2.0 * c * 0.99, "clamp: ||R - I|| = %.6g, want ~%.6g",
             sqrt(dev), 2 * c);

    /* s = 1, no rescale: an orthogonal mix of rows keeps every column norm; explicit R^T formula */
    lf_module m = module("oft");
    PUT(&m, LF_R_OFT_BLOCKS, blk, NB, B, B);
    put_scalar(&m, LF_R_ALPHA, &alpha);
    acc = apply1(&m, w0, &w, 1.0f);
    double n0[K], n1[K];
    column_norms(w0, O, K, n0);
    column_norms(acc, O, K, n1);
    worst = 0;
    for (int i = 0; i < K; i++) worst = fmax(worst, fabs(n0[i] - n1[i]) / n0[i]);
    LF_CHECK(worst < 1e-6, "OFT keeps column norms at s=1 (%.3g)", worst);
    LF_CHECK(lf_oft_rotation_ref(blk, NB, B, 0.0, R) == LF_OK, "rotation");
    double want[O * K];
    for (int k = 0; k < NB; k++)
        for (int mm = 0; mm < B; mm++)
            for (int col = 0; col < K; col++) {
                double v = 0;
                for (int n = 0; n < B; n++) v += (double)R[k * B * B + n * B + mm] * w0[(k * B + n) * K + col];
                want[(k * B + mm) * K + col] = v;
            }
    check_close("OFT rows mixed by R^T", acc, want, O * K, 1e-6);
    free(acc);

    /* legacy oft_diag = R itself, interpolated */
    lf_module lg = module("oft_diag");
    PUT(&lg, LF_R_OFT_DIAG, blk, NB, B, B);
    acc = apply1(&lg, w0, &w, 0.5f);
    LF_CHECK(lg.algo == LF_ALGO_OFT_LEGACY, "oft_diag detected");
    for (int k = 0; k < NB; k++)
        for (int mm = 0; mm < B; mm++)
            for (int col = 0; col < K; col++) {
                double v = 0;
                for (int n = 0; n < B; n++)
                    v += ((n == mm) + 0.5 * (blk[k * B * B + n * B + mm] - (n == mm))) * w0[(k * B + n) * K + col];
                want[(k * B + mm) * K + col] = v;
            }
    check_close("legacy oft_diag", acc, want, O * K, 1e-6);
    free(acc);

    /* BOFT: (M=3, NB=4, b=2) on O = 8 rows, s = 1: column norms kept; s = 0.5 differs from s = 1 */
    enum { BM = 3, BN = 4, BB = 2, BO = BN * BB };
    float *bw0 = rnd(BO * K, 1.0f), *bb = rnd(BM * BN * BB * BB, 0.4f);
    lf_view bwv = lf_test_view_n(NULL, LF_F32, 4, SH(BO, I, 3, 3));
    lf_module bt = module("boft");
    PUT(&bt, LF_R_OFT_BLOCKS, bb, BM, BN, BB, BB);
    acc = apply1(&bt, bw0, &bwv, 1.0f);
    LF_CHECK(bt.algo == LF_ALGO_BOFT, "boft detected");
    column_norms(bw0, BO, K, n0);
    column_norms(acc, BO, K, n1);
    worst = 0;
    for (int i = 0; i < K; i++) worst = fmax(worst, fabs(n0[i] - n1[i]) / n0[i]);
    LF_CHECK(worst < 1e-6, "BOFT keeps column norms at s=1 (%.3g)", worst);
    free(acc);
    /* BOFT with one factor (M = 1, k = b/2): plain block-diagonal R (not transposed) on adjacent rows */
    lf_module b1 = module("boft_m1");
    PUT(&b1, LF_R_OFT_BLOCKS, bb, 1, BN, BB, BB);
    acc = apply1(&b1, bw0, &bwv, 1.0f);
    float Rb[BN * BB * BB];
    LF_CHECK(lf_oft_rotation_ref(bb, BN, BB, 0.0, Rb) == LF_OK, "boft rotation");
    double bwant[BO * K];
    for (int k = 0; k < BN; k++)
        for (int u = 0; u < BB; u++)
            for (int col = 0; col < K; col++) {
                double v = 0;
                for (int x = 0; x < BB; x++) v += (double)Rb[k * BB * BB + u * BB + x] * bw0[(k * BB + x) * K + col];
                bwant[(k * BB + u) * K + col] = v;
            }
    check_close("boft M=1 = block-diagonal R", acc, bwant, BO * K, 1e-6);
    free(acc);
    /* bad BOFT: NB not a power of two */
    float tmp[1 * 3 * 2 * 2] = {0};
    lf_module bad = module("boft_bad");
    PUT(&bad, LF_R_OFT_BLOCKS, tmp, 1, 3, 2, 2);
    expect_reject(&bad, NULL, LF_ERR_SHAPE, 2, "module 'boft_bad'", "NB a power of two");
    /* OFT block rows must cover O */
    lf_view w13 = lf_test_view_n(NULL, LF_F32, 2, SH(O + 1, I));
    expect_reject(&m, &w13, LF_ERR_SHAPE, 2, "module 'oft': oft_blocks has shape (3, 4, 4) (12 rows)",
                  "expected 13 rows for weight (13, 5)");
    free(w0);
    free(blk);
    free(bw0);
    free(bb);
}

/* ---- full / norm / bias ---------------------------------------------------------------------------- */

static void test_full_norm(void) {
    enum { O = 4, I = 3 };
    float *w0 = rnd(O * I, 1.0f), *diff = rnd(O * I, 1.0f), *db = rnd(O, 1.0f), *b0 = rnd(O, 1.0f);
    lf_view w = lf_test_view_n(NULL, LF_F32, 2, SH(O, I)), bv = lf_test_view_n(NULL, LF_F32, 1, SH(O));
    lf_module m = module("full");
    PUT(&m, LF_R_DIFF, diff, O, I);
    PUT(&m, LF_R_DIFF_B, db, O);
    float *acc = apply1(&m, w0, &w, 0.5f);
    double want[O * I];
    for (int i = 0; i < O * I; i++) want[i] = w0[i] + 0.5 * diff[i];
    check_close("full diff", acc, want, O * I, 1e-7);
    float bacc[O];
    memcpy(bacc, b0, sizeof bacc);
    LF_CHECK(lf_module_contrib_ref(&m, b0, &bv, 1, 0.5f, bacc) == LF_OK, "full diff_b: %s", lf_last_error());
    for (int i = 0; i < O; i++) want[i] = b0[i] + 0.5 * db[i];
    check_close("full diff_b", bacc, want, O, 1e-7);
    free(acc);
    /* diff shaped like another weight */
    lf_view w2 = lf_test_view_n(NULL, LF_F32, 2, SH(O, I + 1));
    expect_reject(&m, &w2, LF_ERR_SHAPE, 1, "module 'full': diff has shape (4, 3), expected (4, 4) for weight (4, 4)");
    /* norm: w_norm (C,), b_norm (C,) */
    lf_module n = module("norm");
    PUT(&n, LF_R_W_NORM, diff, O);
    PUT(&n, LF_R_B_NORM, db, O);
    acc = apply1(&n, b0, &bv, 2.0f);
    for (int i = 0; i < O; i++) want[i] = b0[i] + 2.0 * diff[i];
    check_close("norm w_norm", acc, want, O, 1e-7);
    free(acc);
    /* missing partners */
    lf_module nb = module("norm_bias_only");
    PUT(&nb, LF_R_B_NORM, db, O);
    expect_reject(&nb, NULL, LF_ERR_FORMAT, 1, "module 'norm_bias_only': b_norm without w_norm");
    lf_module fb = module("full_bias_only");
    PUT(&fb, LF_R_DIFF_B, db, O);
    expect_reject(&fb, NULL, LF_ERR_FORMAT, 1, "module 'full_bias_only': diff_b without diff");
    free(w0);
    free(diff);
    free(db);
    free(b0);
}

/* ---- P1: alpha and scale -------------------------------------------------------------------------- */

static void test_alpha(void) {
    enum { O = 3, I = 2, R = 4 };
    float up[O * R] = {0}, down[R * I] = {0};
    lf_view w = lf_test_view_n(NULL, LF_F32, 2, SH(O, I));
    lf_module m = module("alpha");
    PUT(&m, LF_R_UP, up, O, R);
    PUT(&m, LF_R_DOWN, down, R, I);
    LF_CHECK(lf_module_resolve(&m, &w) == LF_OK && m.gamma == 1.0f && m.alpha == 0.0,
             "missing alpha: gamma 1 (got %g)", (double)m.gamma);
    float a0 = 0.0f;
    put_scalar(&m, LF_R_ALPHA, &a0);
    LF_CHECK(lf_module_resolve(&m, &w) == LF_OK && m.gamma == 1.0f && m.alpha == 0.0 &&
                 (m.present & (1u << LF_R_ALPHA)),
             "alpha 0: gamma 1, alpha stays 0 (got %g, %g)", (double)m.gamma, m.alpha);
    int64_t a64 = 6;
    put(&m, LF_R_ALPHA, &a64, LF_I64, 0, NULL);
    LF_CHECK(lf_module_resolve(&m, &w) == LF_OK && m.gamma == 1.5f && m.alpha == 6.0, "int64 alpha: gamma %g",
             (double)m.gamma);
    uint16_t a16 = 0x2e66; /* f16 0.1 -> 0.0999755859375 */
    put(&m, LF_R_ALPHA, &a16, LF_F16, 0, NULL);
    LF_CHECK(lf_module_resolve(&m, &w) == LF_OK && m.alpha == 0.0999755859375 &&
                 m.gamma == (float)(0.0999755859375 / 4),
             "f16 alpha is used at its rounded value: alpha %.12g gamma %.9g", m.alpha, (double)m.gamma);
    uint16_t abf = 0x4040; /* bf16 3.0 */
    put(&m, LF_R_ALPHA, &abf, LF_BF16, 1, SH(1));
    LF_CHECK(lf_module_resolve(&m, &w) == LF_OK && m.gamma == 0.75f, "bf16 (1,) alpha: gamma %g", (double)m.gamma);
    float sc = 0.25f, a8 = 8.0f;
    put_scalar(&m, LF_R_ALPHA, &a8);
    put_scalar(&m, LF_R_SCALE, &sc);
    LF_CHECK(lf_module_resolve(&m, &w) == LF_OK && m.gamma == 0.25f && m.gamma_from_scale == 1 && m.alpha == 8.0,
             "scale tensor replaces alpha/rank: gamma %g", (double)m.gamma);
    float av[2] = {1, 2};
    m.present &= ~(1u << LF_R_SCALE);
    PUT(&m, LF_R_ALPHA, av, 2);
    expect_reject(&m, &w, LF_ERR_SHAPE, 2, "module 'alpha': alpha has shape (2,)", "expected a scalar");
}

/* ---- rejections ------------------------------------------------------------------------------------ */

static void test_rejections(void) {
    float up[6 * 2] = {0}, down[2 * 5] = {0}, h[12] = {0}, a = 1.0f;
    lf_view w = lf_test_view_n(NULL, LF_F32, 2, SH(6, 5));

    lf_module mix = module("mix");
    PUT(&mix, LF_R_UP, up, 6, 2);
    PUT(&mix, LF_R_DOWN, down, 2, 5);
    PUT(&mix, LF_R_HW1A, h, 6, 2);
    expect_reject(&mix, NULL, LF_ERR_FORMAT, 2, "module 'mix': mixes lora_up (lora)", "hada_w1_a (loha)");

    lf_module up_only = module("up_only");
    PUT(&up_only, LF_R_UP, up, 6, 2);
    put_scalar(&up_only, LF_R_ALPHA, &a);
    expect_reject(&up_only, NULL, LF_ERR_FORMAT, 1, "module 'up_only': lora_up without lora_down");

    lf_module down_only = module("down_only");
    PUT(&down_only, LF_R_DOWN, down, 2, 5);
    expect_reject(&down_only, NULL, LF_ERR_FORMAT, 1, "module 'down_only': lora_down without lora_up");

    lf_module ia3w = module("ia3_no_on_input");
    PUT(&ia3w, LF_R_IA3_W, h, 6);
    expect_reject(&ia3w, NULL, LF_ERR_FORMAT, 2, "module 'ia3_no_on_input'", "unknown tensor suffix \"weight\"");

    lf_module only = module("alpha_only");
    put_scalar(&only, LF_R_ALPHA, &a);
    PUT(&only, LF_R_DORA, h, 6, 1);
    expect_reject(&only, NULL, LF_ERR_FORMAT, 2, "module 'alpha_only': has only dora_scale, alpha",
                  "no adapter tensors");

    lf_module loha = module("loha_missing");
    PUT(&loha, LF_R_HW1A, h, 6, 2);
    PUT(&loha, LF_R_HW1B, down, 2, 5);
    PUT(&loha, LF_R_HW2A, h, 6, 2);
    expect_reject(&loha, NULL, LF_ERR_FORMAT, 1, "module 'loha_missing': hada_w1_a without hada_w2_b");

    lf_module lokr = module("lokr_no_w2");
    PUT(&lokr, LF_R_KW1, h, 2, 3);
    expect_reject(&lokr, NULL, LF_ERR_FORMAT, 1, "module 'lokr_no_w2': lokr_w1 without lokr_w2");

    lf_module resc = module("rescale_on_lora");
    PUT(&resc, LF_R_UP, up, 6, 2);
    PUT(&resc, LF_R_DOWN, down, 2, 5);
    PUT(&resc, LF_R_RESCALE, h, 6, 1);
    expect_reject(&resc, NULL, LF_ERR_FORMAT, 2, "module 'rescale_on_lora'", "rescale is only used by OFT/BOFT");

    /* non-finite factors, in any dtype */
    float nan_down[2 * 5] = {0};
    nan_down[7] = NAN;
    lf_module nf = module("nan_down");
    PUT(&nf, LF_R_UP, up, 6, 2);
    PUT(&nf, LF_R_DOWN, nan_down, 2, 5);
    expect_reject(&nf, NULL, LF_ERR_NONFINITE, 2, "module 'nan_down': lora_down holds a non-finite value (NaN)",
                  "at element 7");
    uint16_t inf16[6 * 2] = {0};
    inf16[3] = 0x7c00;
    lf_module nf16 = module("inf_up_f16");
    put(&nf16, LF_R_UP, inf16, LF_F16, 2, SH(6, 2));
    PUT(&nf16, LF_R_DOWN, down, 2, 5);
    expect_reject(&nf16, NULL, LF_ERR_NONFINITE, 1, "module 'inf_up_f16': lora_up holds a non-finite value (Inf)");
    float nan_alpha = NAN;
    lf_module na = module("nan_alpha");
    PUT(&na, LF_R_UP, up, 6, 2);
    PUT(&na, LF_R_DOWN, down, 2, 5);
    put_scalar(&na, LF_R_ALPHA, &nan_alpha);
    expect_reject(&na, NULL, LF_ERR_NONFINITE, 1, "module 'nan_alpha': alpha holds a non-finite value");

    /* factor vs factor, factor vs target */
    lf_module rk = module("rank_mismatch");
    PUT(&rk, LF_R_UP, h, 4, 3);
    PUT(&rk, LF_R_DOWN, down, 2, 5);
    expect_reject(&rk, NULL, LF_ERR_SHAPE, 1,
                  "module 'rank_mismatch': lora_up has shape (4, 3), expected (4, 2) (flattened) to match lora_down (2, 5)");
    lf_module tg = module("target_mismatch");
    PUT(&tg, LF_R_UP, up, 6, 2);
    PUT(&tg, LF_R_DOWN, down, 2, 5);
    lf_view w7 = lf_test_view_n(NULL, LF_F32, 4, SH(7, 5, 1, 1));
    expect_reject(&tg, &w7, LF_ERR_SHAPE, 1,
                  "module 'target_mismatch': lora_up has shape (6, 2), expected (7, 2, 1, 1) for weight (7, 5, 1, 1)");
    LF_CHECK(lf_module_resolve(&tg, &w) == LF_OK, "the same module fits (6, 5): %s", lf_last_error());
    /* a contribution for another shape than the resolved one is refused, not computed out of bounds */
    float w0[7 * 5] = {0}, acc[7 * 5] = {0};
    LF_CHECK(lf_module_contrib_ref(&tg, w0, &w7, 0, 1.0f, acc) == LF_ERR_SHAPE, "contrib checks the shape");

    /* a result that overflows f32 is an error naming the module */
    float big_up[6 * 2], big_down[2 * 5];
    for (int i = 0; i < 12; i++) big_up[i] = 3e38f;
    for (int i = 0; i < 10; i++) big_down[i] = 3e38f;
    lf_module ov = module("overflow");
    PUT(&ov, LF_R_UP, big_up, 6, 2);
    PUT(&ov, LF_R_DOWN, big_down, 2, 5);
    LF_CHECK(lf_module_resolve(&ov, &w) == LF_OK, "overflow module resolves");
    float w65[6 * 5] = {0}, a65[6 * 5] = {0};
    lf_err_clear();
    LF_CHECK(lf_module_contrib_ref(&ov, w65, &w, 0, 1.0f, a65) == LF_ERR_NONFINITE &&
                 strstr(lf_last_error(), "module 'overflow'"),
             "non-finite result: %s", lf_last_error());
    LF_CHECK(strcmp(lf_algo_name(LF_ALGO_LOKR), "lokr") == 0 && strcmp(lf_algo_name(LF_ALGO_OFT_LEGACY), "oft_legacy") == 0,
             "algo names");
}

/* ---- strength 0 and P5 --------------------------------------------------------------------------- */

typedef struct {
    lf_module m[12];
    int n;
    float *buf[64];
    int nb;
} zoo;

static float *zbuf(zoo *z, int64_t n, float scale) { return z->buf[z->nb++] = rnd(n, scale); }

/* one module of every algorithm for a (8, 4, 3, 3) conv weight */
static void build_zoo(zoo *z) {
    enum { O = 8, I = 4, KHW = 9, K = I * KHW, R = 2 };
    static float alpha = 1.0f, on1 = 1.0f;
    memset(z, 0, sizeof *z);
    lf_module *m;
    m = &z->m[z->n++];
    *m = module("z_lora");
    PUT(m, LF_R_UP, zbuf(z, O * R, 0.3f), O, R, 1, 1);
    PUT(m, LF_R_DOWN, zbuf(z, R * K, 0.3f), R, I, 3, 3);
    put_scalar(m, LF_R_ALPHA, &alpha);
    m = &z->m[z->n++];
    *m = module("z_loha_dora");
    PUT(m, LF_R_HW1A, zbuf(z, O * R, 0.3f), O, R);
    PUT(m, LF_R_HW1B, zbuf(z, R * K, 0.3f), R, K);
    PUT(m, LF_R_HW2A, zbuf(z, O * R, 0.3f), O, R);
    PUT(m, LF_R_HW2B, zbuf(z, R * K, 0.3f), R, K);
    float *mag = zbuf(z, O, 0.1f);
    for (int i = 0; i < O; i++) mag[i] += 1.0f;
    PUT(m, LF_R_DORA, mag, O, 1, 1, 1);
    m = &z->m[z->n++];
    *m = module("z_lokr");
    PUT(m, LF_R_KW1, zbuf(z, 2 * 2, 0.3f), 2, 2);
    PUT(m, LF_R_KW2, zbuf(z, 4 * 2 * KHW, 0.3f), 4, 2, 3, 3);
    m = &z->m[z->n++];
    *m = module("z_glora");
    PUT(m, LF_R_GA1, zbuf(z, I * R, 0.3f), I, R, 1, 1);
    PUT(m, LF_R_GA2, zbuf(z, R * I, 0.3f), R, I, 1, 1);
    PUT(m, LF_R_GB1, zbuf(z, O * R, 0.3f), O, R, 1, 1);
    PUT(m, LF_R_GB2, zbuf(z, R * K, 0.3f), R, I, 3, 3);
    m = &z->m[z->n++];
    *m = module("z_oft_rescale");
    PUT(m, LF_R_OFT_BLOCKS, zbuf(z, 2 * 4 * 4, 0.3f), 2, 4, 4);
    float *rs = zbuf(z, O, 0.1f);
    for (int i = 0; i < O; i++) rs[i] += 1.0f;
    PUT(m, LF_R_RESCALE, rs, O, 1, 1, 1);
    m = &z->m[z->n++];
    *m = module("z_oft_legacy");
    PUT(m, LF_R_OFT_DIAG, zbuf(z, 2 * 4 * 4, 0.3f), 2, 4, 4);
    m = &z->m[z->n++];
    *m = module("z_boft");
    PUT(m, LF_R_OFT_BLOCKS, zbuf(z, 2 * 2 * 4 * 4, 0.3f), 2, 2, 4, 4);
    m = &z->m[z->n++];
    *m = module("z_ia3");
    PUT(m, LF_R_IA3_W, zbuf(z, I, 0.3f), 1, I, 1, 1);
    put_scalar(m, LF_R_ON_INPUT, &on1);
    m = &z->m[z->n++];
    *m = module("z_full");
    PUT(m, LF_R_DIFF, zbuf(z, O * K, 0.3f), O, I, 3, 3);
}

static void free_zoo(zoo *z) {
    for (int i = 0; i < z->nb; i++) free(z->buf[i]);
}

static void test_strength0_and_p5(void) {
    enum { O = 8, I = 4, K = I * 9 };
    zoo z;
    build_zoo(&z);
    float *w0 = rnd(O * K, 1.0f), acc[O * K];
    lf_view w = lf_test_view_n(NULL, LF_F32, 4, SH(O, I, 3, 3));
    for (int i = 0; i < z.n; i++) {
        lf_status st = lf_module_resolve(&z.m[i], &w);
        LF_CHECK(st == LF_OK, "zoo %s: %s", z.m[i].name, lf_last_error());
        for (int sgn = 0; sgn < 2; sgn++) {
            memcpy(acc, w0, sizeof acc);
            st = lf_module_contrib_ref(&z.m[i], w0, &w, 0, sgn ? -0.0f : 0.0f, acc);
            LF_CHECK(st == LF_OK && memcmp(acc, w0, sizeof acc) == 0, "strength %s0 changes W0 for %s",
                     sgn ? "-" : "", z.m[i].name);
        }
        /* and strength 1 changes it (the zoo is not vacuous) */
        memcpy(acc, w0, sizeof acc);
        st = lf_module_contrib_ref(&z.m[i], w0, &w, 0, 1.0f, acc);
        LF_CHECK(st == LF_OK && memcmp(acc, w0, sizeof acc) != 0, "strength 1 leaves W0 for %s (%s)", z.m[i].name,
                 lf_last_error());
    }
    LF_CHECK(z.n == 9, "zoo covers nine algorithm variants");

    /* P5: each C_i is computed against the pristine W0, so the sum is order-independent */
    const float s[9] = {0.7f, 1.0f, -0.5f, 0.3f, 0.9f, 0.4f, 1.2f, 0.8f, 0.6f};
    float fwd[O * K], rev[O * K], sum[O * K], c1[O * K];
    memcpy(fwd, w0, sizeof fwd);
    memcpy(rev, w0, sizeof rev);
    for (int i = 0; i < O * K; i++) sum[i] = 0.0f;
    for (int i = 0; i < z.n; i++) {
        LF_CHECK(lf_module_contrib_ref(&z.m[i], w0, &w, 0, s[i], fwd) == LF_OK, "fwd %s", z.m[i].name);
        int j = z.n - 1 - i;
        LF_CHECK(lf_module_contrib_ref(&z.m[j], w0, &w, 0, s[j], rev) == LF_OK, "rev %s", z.m[j].name);
        /* C_i alone (acc starting from 0 holds C_i) */
        memset(c1, 0, sizeof c1);
        LF_CHECK(lf_module_contrib_ref(&z.m[i], w0, &w, 0, s[i], c1) == LF_OK, "alone %s", z.m[i].name);
        for (int e = 0; e < O * K; e++) sum[e] += c1[e];
    }
    double worst = 0, worst2 = 0;
    for (int e = 0; e < O * K; e++) {
        worst = fmax(worst, fabs((double)fwd[e] - rev[e]));
        worst2 = fmax(worst2, fabs((double)fwd[e] - (w0[e] + (double)sum[e])));
    }
    LF_CHECK(worst < 1e-5, "P5: forward and reverse order differ by %.3g", worst);
    LF_CHECK(worst2 < 1e-5, "P5: W0 + sum of separate contributions differs by %.3g", worst2);
    free(w0);
    free_zoo(&z);
}

int main(void) {
    test_math_header();
    test_lora();
    test_locon();
    test_loha();
    test_lokr();
    test_glora();
    test_ia3();
    test_dora();
    test_oft();
    test_full_norm();
    test_alpha();
    test_rejections();
    test_strength0_and_p5();
    return lf_test_finish();
}
