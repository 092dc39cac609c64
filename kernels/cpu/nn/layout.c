/* layout.c: operators that only move values: transposes, nearest resampling, padding, concatenation.
 *
 *   NCHW -> NLC   y (N, S, C) = x (N, C, S) transposed per sample (S = H*W tokens); NLC -> NCHW back
 *   upsample 2x   y (N, C, 2H, 2W): y[.., i, j] = x[.., i/2, j/2]
 *   resize        y (N, C, Ho, Wo): y[.., i, j] = x[.., si, sj], si = min(floor((float)i * ((float)H / Ho)),
 *                 H - 1) in f32 as torch's CPU nearest mode (same for sj)
 *   pad           y (N, C, H + top + bottom, W + left + right) = x (N, C, H, W) zero-padded
 *   concat        y (N, Ca + Cb, S) = a (N, Ca, S) then b (N, Cb, S) along C
 *
 * No arithmetic on the values, so the results are exact copies.
 * Threads: transposes in (sample, 32-row stripe) chunks of 32x32 tiles, resampling in whole (n, c)
 * planes, chunks fixed by the shapes; pad and concat run on the calling thread.
 * Test: tests/kernels/test_nn.c (ctest -R nn).
 */
#include <math.h>
#include <string.h>

#include "lf_nn.h"
#include "nn_internal.h"

/* Transpose of per-sample (R, Cc) blocks: dst[n][c][r] = src[n][r][c], in 32x32 tiles; chunks are
 * (sample, 32-row stripe of the source). */
typedef struct {
    float *y;
    const float *x;
    int64_t R, Cc, stripes;
} lf_nn_tr_ctx;

static void lf_nn_transpose_chunk(void *vc, int64_t i0, int64_t i1, int tid) {
    const lf_nn_tr_ctx *c = vc;
    (void)tid;
    for (int64_t i = i0; i < i1; i++) {
        int64_t n = i / c->stripes, r0 = (i % c->stripes) * 32, r1 = r0 + 32 < c->R ? r0 + 32 : c->R;
        const float *xs = c->x + n * c->R * c->Cc;
        float *yd = c->y + n * c->R * c->Cc;
        for (int64_t c0 = 0; c0 < c->Cc; c0 += 32) {
            int64_t c1 = c0 + 32 < c->Cc ? c0 + 32 : c->Cc;
            for (int64_t cc = c0; cc < c1; cc++)
                for (int64_t r = r0; r < r1; r++) yd[cc * c->R + r] = xs[r * c->Cc + cc];
        }
    }
}

static void lf_nn_transpose(float *y, const float *x, int64_t N, int64_t R, int64_t Cc) {
    lf_nn_tr_ctx c = {y, x, R, Cc, (R + 31) / 32};
    int64_t grain = LF_NN_EW_GRAIN / (32 * (Cc > 0 ? Cc : 1));
    lf_par_for(N * c.stripes, grain < 1 ? 1 : grain, lf_nn_transpose_chunk, &c);
}

void lf_nn_nchw_to_nlc(float *y, const float *x, int64_t N, int64_t C, int64_t S) {
    lf_nn_transpose(y, x, N, C, S); /* (C, S) -> (S, C) */
}

void lf_nn_nlc_to_nchw(float *y, const float *x, int64_t N, int64_t C, int64_t S) {
    lf_nn_transpose(y, x, N, S, C); /* (S, C) -> (C, S) */
}

typedef struct {
    float *y;
    const float *x;
    int64_t H, W;
} lf_nn_up_ctx;

static void lf_nn_upsample_chunk(void *vc, int64_t i0, int64_t i1, int tid) {
    const lf_nn_up_ctx *c = vc;
    int64_t H = c->H, W = c->W, W2 = 2 * W;
    (void)tid;
    for (int64_t p = i0; p < i1; p++) {
        const float *xp = c->x + p * H * W;
        float *yp = c->y + p * 4 * H * W;
        for (int64_t i = 0; i < H; i++) {
            const float *xr = xp + i * W;
            float *yr = yp + 2 * i * W2;
            for (int64_t j = 0; j < W; j++) yr[2 * j] = yr[2 * j + 1] = xr[j];
            memcpy(yr + W2, yr, (size_t)W2 * sizeof(float));
        }
    }
}

void lf_nn_upsample_nearest2x(float *y, const float *x, int64_t N, int64_t C, int64_t H, int64_t W) {
    lf_nn_up_ctx c = {y, x, H, W};
    int64_t grain = LF_NN_EW_GRAIN / (4 * H * W > 0 ? 4 * H * W : 1);
    lf_par_for(N * C, grain < 1 ? 1 : grain, lf_nn_upsample_chunk, &c);
}

typedef struct {
    float *y;
    const float *x;
    int64_t H, W, Ho, Wo;
} lf_nn_resize_ctx;

/* torch's CPU nearest source index (UpSampleKernel.cpp, compute_indices_weights_nearest, torch 1.13):
 * scale = (float)in / out, src = min((int64_t)floorf((float)dst * scale), in - 1), all in f32. */
static inline int64_t lf_nn_nearest_src(int64_t dst, float scale, int64_t in) {
    int64_t s = (int64_t)floorf((float)dst * scale);
    return s < in - 1 ? s : in - 1;
}

static void lf_nn_resize_chunk(void *vc, int64_t i0, int64_t i1, int tid) {
    const lf_nn_resize_ctx *c = vc;
    int64_t H = c->H, W = c->W, Ho = c->Ho, Wo = c->Wo;
    float sh = (float)H / (float)Ho, sw = (float)W / (float)Wo;
    (void)tid;
    for (int64_t p = i0; p < i1; p++) {
        const float *xp = c->x + p * H * W;
        float *yp = c->y + p * Ho * Wo;
        int64_t prev = -1;
        for (int64_t i = 0; i < Ho; i++) {
            int64_t si = lf_nn_nearest_src(i, sh, H);
            float *yr = yp + i * Wo;
            if (si == prev) { /* same source row as the row above */
                memcpy(yr, yr - Wo, (size_t)Wo * sizeof(float));
                continue;
            }
            const float *xr = xp + si * W;
            for (int64_t j = 0; j < Wo; j++) yr[j] = xr[lf_nn_nearest_src(j, sw, W)];
            prev = si;
        }
    }
}

void lf_nn_resize_nearest(float *y, const float *x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t Ho,
                          int64_t Wo) {
    if (Ho == 2 * H && Wo == 2 * W) { /* src = dst / 2 exactly in torch's formula too */
        lf_nn_upsample_nearest2x(y, x, N, C, H, W);
        return;
    }
    lf_nn_resize_ctx c = {y, x, H, W, Ho, Wo};
    int64_t grain = LF_NN_EW_GRAIN / (Ho * Wo > 0 ? Ho * Wo : 1);
    lf_par_for(N * C, grain < 1 ? 1 : grain, lf_nn_resize_chunk, &c);
}

void lf_nn_pad2d(float *y, const float *x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t left,
                 int64_t right, int64_t top, int64_t bottom) {
    int64_t Hp = H + top + bottom, Wp = W + left + right;
    for (int64_t p = 0; p < N * C; p++) {
        const float *xp = x + p * H * W;
        float *yp = y + p * Hp * Wp;
        for (int64_t i = 0; i < Hp; i++) {
            float *yr = yp + i * Wp;
            int64_t iy = i - top;
            for (int64_t j = 0; j < Wp; j++) {
                int64_t ix = j - left;
                yr[j] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? xp[iy * W + ix] : 0.0f;
            }
        }
    }
}

void lf_nn_concat_c(float *y, const float *a, const float *b, int64_t N, int64_t Ca, int64_t Cb,
                    int64_t S) {
    for (int64_t n = 0; n < N; n++) {
        float *yn = y + n * (Ca + Cb) * S;
        memcpy(yn, a + n * Ca * S, (size_t)(Ca * S) * sizeof(float));
        memcpy(yn + Ca * S, b + n * Cb * S, (size_t)(Cb * S) * sizeof(float));
    }
}
