/* test_nn.c: the f32 CPU operators of lorafuse/lf_nn.h, each against a naive loop (in double) or an
 * algebraic identity, on seeded random data. Bound: relative L2 <= 1e-5 unless noted.
 * Run: ctest --test-dir build -R nn
 */
#include <stdint.h>

#include "lf_test.h"
#include "lf_test_data.h"
#include "kernels/cpu/nn/lf_nn.h"

static lf_test_rng rng = {LF_TEST_RNG_SEED};
static float *rnd(int64_t n) {
    float *p = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = lf_test_rng_signed(&rng);
    return p;
}
static double *dalloc(int64_t n) { return calloc((size_t)n, sizeof(double)); }

static void test_linear(void) {
    int64_t M = 7, I = 13, O = 5;
    float *x = rnd(M * I), *W = rnd(O * I), *b = rnd(O), *y = rnd(M * O);
    double *r = dalloc(M * O);
    for (int64_t m = 0; m < M; m++)
        for (int64_t o = 0; o < O; o++) {
            double s = b[o];
            for (int64_t i = 0; i < I; i++) s += (double)x[m * I + i] * W[o * I + i];
            r[m * O + o] = s;
        }
    lf_nn_linear(y, x, W, b, M, I, O);
    LF_CHECK(lf_test_rel_l2_f64(y, r, M * O) < 1e-6, "linear rel %g", lf_test_rel_l2_f64(y, r, M * O));
    free(x), free(W), free(b), free(y), free(r);
}

static void conv_case(int64_t N, int64_t Ci, int64_t H, int64_t Wd, int64_t Co, int64_t k,
                      int64_t stride, int64_t pad, int with_bias) {
    int64_t Ho = lf_nn_conv_out(H, k, stride, pad), Wo = lf_nn_conv_out(Wd, k, stride, pad);
    float *x = rnd(N * Ci * H * Wd), *W = rnd(Co * Ci * k * k), *b = rnd(Co);
    float *y = rnd(N * Co * Ho * Wo);
    double *r = dalloc(N * Co * Ho * Wo);
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < Co; o++)
            for (int64_t i = 0; i < Ho; i++)
                for (int64_t j = 0; j < Wo; j++) {
                    double s = with_bias ? b[o] : 0.0;
                    for (int64_t c = 0; c < Ci; c++)
                        for (int64_t ki = 0; ki < k; ki++)
                            for (int64_t kj = 0; kj < k; kj++) {
                                int64_t iy = i * stride - pad + ki, ix = j * stride - pad + kj;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= Wd) continue;
                                s += (double)x[((n * Ci + c) * H + iy) * Wd + ix] *
                                     W[((o * Ci + c) * k + ki) * k + kj];
                            }
                    r[((n * Co + o) * Ho + i) * Wo + j] = s;
                }
    lf_status st = lf_nn_conv2d(y, x, W, with_bias ? b : NULL, N, Ci, H, Wd, Co, k, k, stride, pad);
    LF_CHECK(st == LF_OK, "conv2d status %d", (int)st);
    double e = lf_test_rel_l2_f64(y, r, N * Co * Ho * Wo);
    LF_CHECK(e < 1e-6, "conv2d N%lld C%lld %lldx%lld -> %lld k%lld s%lld p%lld: rel %g", (long long)N,
             (long long)Ci, (long long)H, (long long)Wd, (long long)Co, (long long)k,
             (long long)stride, (long long)pad, e);
    free(x), free(W), free(b), free(y), free(r);
}

static void test_conv2d(void) {
    conv_case(2, 3, 7, 6, 4, 3, 1, 1, 1);
    conv_case(2, 3, 8, 8, 5, 3, 2, 1, 1); /* UNet downsample */
    conv_case(1, 4, 9, 7, 3, 3, 2, 0, 0); /* VAE encoder downsample (after pad2d) */
    conv_case(2, 6, 5, 4, 7, 1, 1, 0, 1); /* 1x1 sgemm path */
    conv_case(1, 2, 5, 5, 3, 1, 2, 0, 1); /* 1x1 strided goes through im2col */
    conv_case(1, 2, 4, 4, 2, 5, 1, 2, 1);
    conv_case(1, 512, 4, 1024, 2, 3, 1, 1, 1); /* im2col scratch bound: one output row per band */
    LF_CHECK(lf_nn_conv_out(64, 3, 2, 1) == 32, "conv_out");
    float x[4] = {0}, W[9] = {0}, y[4];
    LF_CHECK(lf_nn_conv2d(y, x, W, NULL, 1, 1, 2, 2, 1, 3, 3, 1, 0) == LF_ERR_SHAPE, "too small");
}

/* Weights held as f16, bf16 or unaligned f32 (lf_nn_linear_w, lf_nn_conv2d_w) give the bytes of the f32
 * path on the same values (the conversion is exact and the products are cut alike), large enough that
 * the matrix products are split into several blocks and the conversion into several chunks. */
static void weight_view_case(lf_dtype dt) {
    const int64_t M = 300, I = 200, O = 700, N = 2, Ci = 24, H = 40, Wd = 36, Co = 40;
    const char *dn = lf_dtype_name(dt);
    float *x = rnd(M * I), *W = rnd(O * I), *b = rnd(O), *xc = rnd(N * Ci * H * Wd), *Wc = rnd(Co * Ci * 9);
    float *y0 = malloc((size_t)(M * O) * sizeof(float)), *y1 = malloc((size_t)(M * O) * sizeof(float));
    float *c0 = malloc((size_t)(N * Co * H * Wd) * sizeof(float)), *c1 = malloc((size_t)(N * Co * H * Wd) * sizeof(float));
    unsigned char *raw = malloc((size_t)(O * I) * 4 + 2), *rawc = malloc((size_t)(Co * Ci * 9) * 4 + 2);
    float *Wk[2] = {W, Wc};
    unsigned char *dst[2] = {raw, rawc};
    int64_t n[2] = {O * I, Co * Ci * 9};
    lf_view v[2];
    for (int i = 0; i < 2; i++) { /* the values the stored dtype holds, and the view of them */
        memset(&v[i], 0, sizeof v[i]);
        v[i].dtype = dt;
        v[i].ndim = 2;
        v[i].shape[0] = i ? Co : O;
        v[i].shape[1] = n[i] / v[i].shape[0];
        v[i].data = dst[i] + (dt == LF_F32 ? 2 : 0); /* an f32 weight 2 bytes off alignment */
        lf_f32_to_dtype(Wk[i], n[i], dt, (void *)(uintptr_t)v[i].data);
        lf_view_to_f32(&v[i], Wk[i]);
    }
    lf_nn_linear(y0, x, W, b, M, I, O);
    LF_CHECK(lf_nn_linear_w(y1, x, &v[0], b, M, I, O) == LF_OK && !memcmp(y0, y1, (size_t)(M * O) * sizeof(float)),
             "linear with %s weights differs from f32", dn);
    lf_nn_linear(y0, x, W, b, 5, I, O); /* few rows: cut along the outputs */
    LF_CHECK(lf_nn_linear_w(y1, x, &v[0], b, 5, I, O) == LF_OK && !memcmp(y0, y1, (size_t)(5 * O) * sizeof(float)),
             "linear (5 rows) with %s weights differs from f32", dn);
    LF_CHECK(lf_nn_conv2d(c0, xc, Wc, b, N, Ci, H, Wd, Co, 3, 3, 1, 1) == LF_OK &&
             lf_nn_conv2d_w(c1, xc, &v[1], b, N, Ci, H, Wd, Co, 3, 3, 1, 1) == LF_OK &&
             !memcmp(c0, c1, (size_t)(N * Co * H * Wd) * sizeof(float)), "conv2d with %s weights differs from f32", dn);
    v[0].shape[0] = O - 1; /* a view that does not hold out*in values */
    LF_CHECK(lf_nn_linear_w(y1, x, &v[0], b, M, I, O) == LF_ERR_SHAPE, "linear_w accepted a wrong shape");
    free(x), free(W), free(b), free(xc), free(Wc), free(y0), free(y1), free(c0), free(c1), free(raw), free(rawc);
}

static void test_weight_views(void) {
    weight_view_case(LF_F16);
    weight_view_case(LF_BF16);
    weight_view_case(LF_F32);
    LF_CHECK(lf_nn_scratch_bytes() >= (size_t)(700 * 200) * sizeof(float), "conversion buffer not reported");
}

static void test_group_norm(void) {
    int64_t N = 2, C = 8, S = 5, G = 4, cg = C / G;
    float *x = rnd(N * C * S), *ga = rnd(C), *be = rnd(C), *y = rnd(N * C * S);
    for (int64_t i = 0; i < N * C * S; i++) x[i] = 3.0f + 2.0f * x[i];
    double *r = dalloc(N * C * S);
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < G; g++) {
            double m = 0, v = 0;
            for (int64_t i = 0; i < cg * S; i++) m += x[(n * C + g * cg) * S + i];
            m /= (double)(cg * S);
            for (int64_t i = 0; i < cg * S; i++) {
                double dv = x[(n * C + g * cg) * S + i] - m;
                v += dv * dv;
            }
            v /= (double)(cg * S);
            for (int64_t c = g * cg; c < (g + 1) * cg; c++)
                for (int64_t s = 0; s < S; s++)
                    r[(n * C + c) * S + s] =
                        (x[(n * C + c) * S + s] - m) / sqrt(v + 1e-5) * ga[c] + be[c];
        }
    lf_nn_group_norm(y, x, ga, be, N, C, S, G, 1e-5f);
    LF_CHECK(lf_test_rel_l2_f64(y, r, N * C * S) < 1e-5, "group_norm rel %g", lf_test_rel_l2_f64(y, r, N * C * S));
    /* in place, no affine: every group has mean 0 and variance ~1 */
    lf_nn_group_norm(x, x, NULL, NULL, N, C, S, G, 0.0f);
    double m = 0, v = 0;
    for (int64_t i = 0; i < cg * S; i++) m += x[i], v += (double)x[i] * x[i];
    LF_CHECK(fabs(m / (double)(cg * S)) < 1e-6 && fabs(v / (double)(cg * S) - 1.0) < 1e-5,
             "group_norm in place: mean %g var %g", m, v);
    free(x), free(ga), free(be), free(y), free(r);
}

static void test_layer_norm(void) {
    int64_t M = 6, D = 33;
    float *x = rnd(M * D), *ga = rnd(D), *be = rnd(D), *y = rnd(M * D);
    double *r = dalloc(M * D);
    for (int64_t m = 0; m < M; m++) {
        double mu = 0, v = 0;
        for (int64_t i = 0; i < D; i++) mu += x[m * D + i];
        mu /= (double)D;
        for (int64_t i = 0; i < D; i++) v += (x[m * D + i] - mu) * (x[m * D + i] - mu);
        v /= (double)D;
        for (int64_t i = 0; i < D; i++) r[m * D + i] = (x[m * D + i] - mu) / sqrt(v + 1e-5) * ga[i] + be[i];
    }
    lf_nn_layer_norm(y, x, ga, be, M, D, 1e-5f);
    LF_CHECK(lf_test_rel_l2_f64(y, r, M * D) < 1e-5, "layer_norm rel %g", lf_test_rel_l2_f64(y, r, M * D));
    free(x), free(ga), free(be), free(y), free(r);
}

static void test_activations(void) {
    int64_t n = 101;
    float *x = rnd(n), *y = rnd(n);
    for (int64_t i = 0; i < n; i++) x[i] *= 6.0f;
    double *r = dalloc(n);
    for (int64_t i = 0; i < n; i++) r[i] = x[i] / (1.0 + exp(-(double)x[i]));
    lf_nn_silu(y, x, n);
    LF_CHECK(lf_test_rel_l2_f64(y, r, n) < 1e-6, "silu rel %g", lf_test_rel_l2_f64(y, r, n));
    for (int64_t i = 0; i < n; i++) r[i] = 0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0)));
    lf_nn_gelu(y, x, n);
    LF_CHECK(lf_test_rel_l2_f64(y, r, n) < 1e-6, "gelu rel %g", lf_test_rel_l2_f64(y, r, n));
    for (int64_t i = 0; i < n; i++) {
        double v = x[i];
        r[i] = 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
    }
    lf_nn_gelu_tanh(y, x, n);
    LF_CHECK(lf_test_rel_l2_f64(y, r, n) < 1e-6, "gelu_tanh rel %g", lf_test_rel_l2_f64(y, r, n));
    for (int64_t i = 0; i < n; i++) r[i] = x[i] / (1.0 + exp(-1.702 * x[i]));
    lf_nn_quick_gelu(y, x, n);
    LF_CHECK(lf_test_rel_l2_f64(y, r, n) < 1e-6, "quick_gelu rel %g", lf_test_rel_l2_f64(y, r, n));
    float one = 1.0f, g1;
    lf_nn_gelu(&g1, &one, 1);
    LF_CHECK(fabsf(g1 - 0.8413447f) < 1e-6f, "gelu(1) = %.8f", g1);
    /* in place */
    memcpy(y, x, (size_t)n * sizeof(float));
    lf_nn_silu(y, y, n);
    for (int64_t i = 0; i < n; i++) r[i] = x[i] / (1.0 + exp(-(double)x[i]));
    LF_CHECK(lf_test_rel_l2_f64(y, r, n) < 1e-6, "silu in place");
    /* GEGLU */
    int64_t M = 3, F = 5;
    float *gx = rnd(M * 2 * F), *gy = rnd(M * F);
    double *gr = dalloc(M * F);
    for (int64_t m = 0; m < M; m++)
        for (int64_t f = 0; f < F; f++) {
            double g = gx[m * 2 * F + F + f];
            gr[m * F + f] = gx[m * 2 * F + f] * 0.5 * g * (1.0 + erf(g / sqrt(2.0)));
        }
    lf_nn_geglu(gy, gx, M, F);
    LF_CHECK(lf_test_rel_l2_f64(gy, gr, M * F) < 1e-6, "geglu rel %g", lf_test_rel_l2_f64(gy, gr, M * F));
    free(x), free(y), free(r), free(gx), free(gy), free(gr);
}

static void test_arith(void) {
    int64_t N = 2, C = 3, S = 4, n = N * C * S;
    float *a = rnd(n), *b = rnd(n), *y = rnd(n), *bc = rnd(C), *bnc = rnd(N * C);
    double *r = dalloc(n);
    for (int64_t i = 0; i < n; i++) r[i] = (double)a[i] + b[i];
    lf_nn_add(y, a, b, n);
    LF_CHECK(lf_test_rel_l2_f64(y, r, n) < 1e-7, "add");
    for (int64_t i = 0; i < n; i++) r[i] = (double)a[i] * b[i];
    lf_nn_mul(y, a, b, n);
    LF_CHECK(lf_test_rel_l2_f64(y, r, n) < 1e-7, "mul");
    for (int64_t i = 0; i < n; i++) r[i] = (double)a[i] * 0.25;
    lf_nn_scale(y, a, 0.25f, n);
    LF_CHECK(lf_test_rel_l2_f64(y, r, n) < 1e-7, "scale");
    memcpy(y, a, (size_t)n * sizeof(float));
    lf_nn_add_bias_c(y, bc, N, C, S);
    for (int64_t i = 0; i < n; i++) r[i] = (double)a[i] + bc[(i / S) % C];
    LF_CHECK(lf_test_rel_l2_f64(y, r, n) < 1e-7, "add_bias_c");
    memcpy(y, a, (size_t)n * sizeof(float));
    lf_nn_add_bias_nc(y, bnc, N, C, S);
    for (int64_t i = 0; i < n; i++) r[i] = (double)a[i] + bnc[i / S];
    LF_CHECK(lf_test_rel_l2_f64(y, r, n) < 1e-7, "add_bias_nc");
    free(a), free(b), free(y), free(bc), free(bnc), free(r);
}

static void test_softmax(void) {
    int64_t R = 4, Cc = 9;
    float *x = rnd(R * Cc);
    for (int64_t i = 0; i < R * Cc; i++) x[i] *= 20.0f;
    double *r = dalloc(R * Cc);
    for (int64_t i = 0; i < R; i++) {
        double mx = -1e30, s = 0;
        for (int64_t j = 0; j < Cc; j++) mx = fmax(mx, x[i * Cc + j]);
        for (int64_t j = 0; j < Cc; j++) s += exp(x[i * Cc + j] - mx);
        for (int64_t j = 0; j < Cc; j++) r[i * Cc + j] = exp(x[i * Cc + j] - mx) / s;
    }
    x[Cc] = -INFINITY; /* masked entry */
    r[Cc] = 0.0;
    {
        double mx = -1e30, s = 0;
        for (int64_t j = 1; j < Cc; j++) mx = fmax(mx, x[Cc + j]);
        for (int64_t j = 1; j < Cc; j++) s += exp(x[Cc + j] - mx);
        for (int64_t j = 1; j < Cc; j++) r[Cc + j] = exp(x[Cc + j] - mx) / s;
    }
    lf_nn_softmax_rows(x, R, Cc);
    LF_CHECK(lf_test_rel_l2_f64(x, r, R * Cc) < 1e-6, "softmax rel %g", lf_test_rel_l2_f64(x, r, R * Cc));
    float allm[3] = {-INFINITY, -INFINITY, -INFINITY};
    lf_nn_softmax_rows(allm, 1, 3);
    LF_CHECK(allm[0] == 0.0f && allm[2] == 0.0f, "all-masked row is zeros");
    free(x), free(r);
}

static void attn_case(int64_t N, int64_t Lq, int64_t Lk, int64_t H, int64_t d, int causal) {
    int64_t ld = H * d;
    float *q = rnd(N * Lq * ld), *k = rnd(N * Lk * ld), *v = rnd(N * Lk * ld), *o = rnd(N * Lq * ld);
    double *r = dalloc(N * Lq * ld), *p = dalloc(Lk);
    double scale = 1.0 / sqrt((double)d);
    for (int64_t n = 0; n < N; n++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < Lq; i++) {
                double mx = -1e300, s = 0;
                for (int64_t j = 0; j < Lk; j++) {
                    double dot = 0;
                    for (int64_t e = 0; e < d; e++)
                        dot += (double)q[(n * Lq + i) * ld + h * d + e] * k[(n * Lk + j) * ld + h * d + e];
                    p[j] = (causal && j > i) ? -1e300 : dot * scale;
                    mx = fmax(mx, p[j]);
                }
                for (int64_t j = 0; j < Lk; j++) s += (p[j] = (causal && j > i) ? 0.0 : exp(p[j] - mx));
                for (int64_t e = 0; e < d; e++) {
                    double acc = 0;
                    for (int64_t j = 0; j < Lk; j++) acc += p[j] / s * v[(n * Lk + j) * ld + h * d + e];
                    r[(n * Lq + i) * ld + h * d + e] = acc;
                }
            }
    lf_status st = lf_nn_attention(o, q, k, v, N, Lq, Lk, H, d, (float)scale, causal);
    LF_CHECK(st == LF_OK, "attention status");
    double e = lf_test_rel_l2_f64(o, r, N * Lq * ld);
    LF_CHECK(e < 1e-5, "attention N%lld Lq%lld Lk%lld H%lld d%lld causal%d: rel %g", (long long)N,
             (long long)Lq, (long long)Lk, (long long)H, (long long)d, causal, e);
    free(q), free(k), free(v), free(o), free(r), free(p);
}

static void test_attention(void) {
    attn_case(2, 16, 16, 2, 8, 0);  /* self-attention */
    attn_case(2, 16, 7, 4, 4, 0);   /* cross-attention, Lk != Lq */
    attn_case(1, 9, 9, 3, 5, 1);    /* causal (CLIP) */
    attn_case(1, 12, 12, 1, 16, 0); /* single head (VAE mid block) */
    attn_case(1, 4100, 4100, 1, 4, 1); /* score scratch bound: 3 query chunks, causal offsets */
}

static void test_layout(void) {
    int64_t N = 2, C = 3, H = 3, W = 4, S = H * W;
    float *x = rnd(N * C * S), *t = rnd(N * C * S), *b = rnd(N * C * S);
    lf_nn_nchw_to_nlc(t, x, N, C, S);
    LF_CHECK(t[(1 * S + 5) * C + 2] == x[(1 * C + 2) * S + 5], "nchw_to_nlc");
    lf_nn_nlc_to_nchw(b, t, N, C, S);
    LF_CHECK(memcmp(b, x, (size_t)(N * C * S) * sizeof(float)) == 0, "nlc round trip");
    float *u = rnd(N * C * 4 * S);
    lf_nn_upsample_nearest2x(u, x, N, C, H, W);
    int ok = 1;
    for (int64_t p = 0; p < N * C; p++)
        for (int64_t i = 0; i < 2 * H; i++)
            for (int64_t j = 0; j < 2 * W; j++)
                ok &= u[(p * 2 * H + i) * 2 * W + j] == x[(p * H + i / 2) * W + j / 2];
    LF_CHECK(ok, "upsample_nearest2x");
    {
        /* resize_nearest: 2x is the 2x op byte for byte; other sizes follow torch's f32 index formula */
        float *r = rnd(N * C * 4 * S);
        lf_nn_resize_nearest(r, x, N, C, H, W, 2 * H, 2 * W);
        LF_CHECK(memcmp(r, u, (size_t)(N * C * 4 * S) * sizeof(float)) == 0, "resize_nearest 2x");
        free(r);
        const int64_t sz[][2] = {{5, 7}, {3, 4}, {1, 1}, {6, 9}, {2, 2}, {3, 8}};
        for (size_t q = 0; q < sizeof sz / sizeof sz[0]; q++) {
            int64_t Ho = sz[q][0], Wo = sz[q][1];
            r = rnd(N * C * Ho * Wo);
            lf_nn_resize_nearest(r, x, N, C, H, W, Ho, Wo);
            ok = 1;
            for (int64_t p = 0; p < N * C; p++)
                for (int64_t i = 0; i < Ho; i++)
                    for (int64_t j = 0; j < Wo; j++) {
                        int64_t si = (int64_t)floorf((float)i * ((float)H / (float)Ho));
                        int64_t sj = (int64_t)floorf((float)j * ((float)W / (float)Wo));
                        si = si < H - 1 ? si : H - 1;
                        sj = sj < W - 1 ? sj : W - 1;
                        ok &= r[(p * Ho + i) * Wo + j] == x[(p * H + si) * W + sj];
                    }
            LF_CHECK(ok, "resize_nearest %lldx%lld -> %lldx%lld", (long long)H, (long long)W, (long long)Ho,
                     (long long)Wo);
            free(r);
        }
        /* 5 -> 3 -> 5 (the UNet's odd sizes): rows 0,0,1,1,2 as torch (scale 0.6f) */
        float a5[3] = {1, 2, 3}, b5[5];
        lf_nn_resize_nearest(b5, a5, 1, 1, 3, 1, 5, 1);
        LF_CHECK(b5[0] == 1 && b5[1] == 1 && b5[2] == 2 && b5[3] == 2 && b5[4] == 3, "resize_nearest 3 -> 5");
    }
    int64_t Hp = H + 1, Wp = W + 1;
    float *pd = rnd(N * C * Hp * Wp);
    lf_nn_pad2d(pd, x, N, C, H, W, 0, 1, 0, 1);
    ok = 1;
    for (int64_t p = 0; p < N * C; p++)
        for (int64_t i = 0; i < Hp; i++)
            for (int64_t j = 0; j < Wp; j++)
                ok &= pd[(p * Hp + i) * Wp + j] == ((i < H && j < W) ? x[(p * H + i) * W + j] : 0.0f);
    LF_CHECK(ok, "pad2d (0,1,0,1)");
    float *cat = rnd(N * 2 * C * S);
    lf_nn_concat_c(cat, x, b, N, C, C, S);
    LF_CHECK(cat[(1 * 2 * C + C + 1) * S + 3] == b[(1 * C + 1) * S + 3] &&
                 cat[(1 * 2 * C + 1) * S + 3] == x[(1 * C + 1) * S + 3],
             "concat_c");
    free(x), free(t), free(b), free(u), free(pd), free(cat);
}

static void test_embeddings(void) {
    float t[2] = {999.0f, 1.0f};
    int64_t dim = 9, half = 4;
    float e[18];
    lf_nn_timestep_embedding(e, t, 2, dim, 1, 0.0f, 10000.0f);
    double r[18];
    for (int n = 0; n < 2; n++) {
        for (int64_t i = 0; i < half; i++) {
            double arg = t[n] * exp(-log(10000.0) * (double)i / (double)half);
            r[n * dim + i] = cos(arg);
            r[n * dim + half + i] = sin(arg);
        }
        r[n * dim + dim - 1] = 0.0;
    }
    double err = 0;
    for (int i = 0; i < 18; i++) err = fmax(err, fabs(e[i] - r[i]));
    LF_CHECK(err < 2e-4, "timestep embedding max err %g", err); /* t * freq rounded in f32 */
    LF_CHECK(e[0] == cosf(999.0f) && e[dim - 1] == 0.0f, "t=999 first cos, odd dim pad");
    float e2[8];
    lf_nn_timestep_embedding(e2, t + 1, 1, 8, 0, 1.0f, 10000.0f);
    LF_CHECK(e2[0] == sinf(1.0f) && e2[4] == cosf(1.0f), "flip off: sin first");
    float table[6] = {0, 1, 10, 11, 20, 21}, y[4];
    int32_t ids[2] = {2, 0}, bad[1] = {3};
    LF_CHECK(lf_nn_embedding(y, table, ids, 2, 3, 2) == LF_OK && y[0] == 20 && y[3] == 1, "embedding");
    LF_CHECK(lf_nn_embedding(y, table, bad, 1, 3, 2) == LF_ERR_ARG &&
                 strstr(lf_last_error(), "id 3") != NULL,
             "embedding out of range: %s", lf_last_error());
}

int main(void) {
    test_linear();
    test_conv2d();
    test_weight_views();
    test_group_norm();
    test_layer_norm();
    test_activations();
    test_arith();
    test_softmax();
    test_attention();
    test_layout();
    test_embeddings();
    return lf_test_finish();
}
