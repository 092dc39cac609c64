/* nn_ref.c: the f32 CPU reference of the model-runtime operators declared in lorafuse/lf_nn.h.
 *
 * Formulas and shapes are given per function in lf_nn.h; this file follows them literally:
 *   matrix products      cblas_sgemm (row-major); Linear y = x Wᵀ + b; Conv2d = im2col + W @ col;
 *                        attention S = scale q kᵀ, softmax over keys, out = S v (per sample, per head)
 *   normalisation        mean and variance (biased) accumulated in double, applied in f32
 *   activations          SiLU, quick_gelu and softmax use lf_nn_expf below (range reduction + degree-7
 *                        polynomial, within 2 ulp of expf, vectorisable); erf / tanh from libm
 * Threads: every op runs on the pool of nn_pool.h in chunks fixed by the shapes alone (lf_par_for),
 * each matrix product a set of single-threaded sgemm calls on disjoint row or column blocks, each
 * reduction (norm statistics, softmax sums) inside one chunk with a fixed lane order: the bytes do not
 * depend on the thread count. Scratch (im2col columns, attention scores) comes from the pool's
 * per-thread buffers, bounded by processing bands of output rows / query rows, so a 512x512 VAE
 * decode or a 4096-token attention does not need gigabytes of scratch and no op mallocs per call.
 * BLAS takes int sizes: every matrix dimension handed to it must stay below 2^31.
 * Test: tests/kernels/test_nn.c (ctest -R nn).
 */
#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "lf_nn.h"
#include "host/base/pool.h"

/* Upper bound on the floats of one per-thread im2col band: 4 MiB. */
#define LF_NN_SCRATCH_FLOATS ((int64_t)1024 * 1024)
/* Attention score block per chunk (query rows x keys): 4 MiB (256 query rows at 4096 keys; BLAS
 * repacks k and v for every block). */
#define LF_NN_SCORE_FLOATS ((int64_t)1024 * 1024)
/* Element-wise ops: elements per chunk. */
#define LF_NN_EW_GRAIN ((int64_t)1 << 15)
/* Matrix products: at most this many blocks, each at least LF_NN_GEMM_MIN_FLOP (smaller products run
 * as one sgemm). */
#define LF_NN_GEMM_MAX_PARTS 8
#define LF_NN_GEMM_MIN_FLOP 4.0e6
/* ... and at least this long along the cut axis (BLAS repacks the uncut operand for every block). */
#define LF_NN_GEMM_MIN_BLOCK 128

/* The hottest element-wise loops get an AVX2 clone picked at load time (GNU ifunc); both clones do the
 * same f32 operations per element and lane (no FMA: -ffp-contract=off), so the bytes are the same. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && defined(__linux__)
#define LF_NN_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define LF_NN_CLONES
#endif

/* Block length along an axis of `len` for a product of `flop` operations: the axis cut into at most
 * LF_NN_GEMM_MAX_PARTS blocks of at least LF_NN_GEMM_MIN_FLOP, block lengths a multiple of `align`. */
static int64_t lf_nn_gemm_grain(int64_t len, double flop, int64_t align) {
    int64_t parts = (int64_t)(flop / LF_NN_GEMM_MIN_FLOP);
    if (parts > LF_NN_GEMM_MAX_PARTS) parts = LF_NN_GEMM_MAX_PARTS;
    if (parts < 1) parts = 1;
    int64_t g = (len + parts - 1) / parts;
    g = (g + align - 1) / align * align;
    return g < len ? g : len;
}

/* ---- exp ------------------------------------------------------------------------------------ */

/* e^x in f32: x = n ln2 + r (|r| <= ln2/2, Cody-Waite split of ln2), e^r by its Taylor polynomial of
 * degree 7 (truncation < 6e-9 relative), times 2^n assembled in the exponent bits. Results below
 * 2^-126 flush to 0 (x < -87.33), x > 88 saturates at e^88; NaN stays NaN. Branch-free, so loops over
 * it vectorise. */
static inline float lf_nn_expf(float x) {
    const float log2e = 1.44269504088896341f, ln2_hi = 0.693145751953125f,
                ln2_lo = 1.42860682030941723212e-6f, shifter = 12582912.0f; /* 1.5 * 2^23 */
    float xc = x > 88.0f ? 88.0f : x;
    xc = xc < -87.33f ? -87.33f : xc;
    float t = xc * log2e + shifter;
    float nf = t - shifter; /* round(xc * log2e) */
    union { float f; int32_t i; } ut = {t}, sc;
    int32_t n = ut.i - 0x4B400000; /* bits of the shifter */
    float r = xc - nf * ln2_hi;
    r = r - nf * ln2_lo;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    sc.i = (n + 127) << 23;
    float y = p * sc.f;
    return x < -87.33f ? 0.0f : y;
}

/* ---- matrix products ------------------------------------------------------------------------ */

typedef struct {
    float *y;
    const float *x, *W, *b;
    int64_t M, in, out;
    int by_rows;
} lf_nn_lin_ctx;

static void lf_nn_linear_chunk(void *vc, int64_t i0, int64_t i1, int tid) {
    const lf_nn_lin_ctx *c = vc;
    (void)tid;
    int64_t m0 = 0, m1 = c->M, o0 = 0, o1 = c->out;
    if (c->by_rows) m0 = i0, m1 = i1;
    else o0 = i0, o1 = i1;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(m1 - m0), (int)(o1 - o0), (int)c->in, 1.0f,
                c->x + m0 * c->in, (int)c->in, c->W + o0 * c->in, (int)c->in, 0.0f, c->y + m0 * c->out + o0,
                (int)c->out);
    if (c->b) {
        for (int64_t m = m0; m < m1; m++) {
            float *row = c->y + m * c->out;
            for (int64_t o = o0; o < o1; o++) row[o] += c->b[o];
        }
    }
}

void lf_nn_linear(float *y, const float *x, const float *W, const float *b, int64_t M, int64_t in,
                  int64_t out) {
    if (M <= 0 || out <= 0) return;
    lf_nn_lin_ctx c = {y, x, W, b, M, in, out, M >= out};
    double flop = 2.0 * (double)M * (double)in * (double)out;
    int64_t len = c.by_rows ? M : out, grain = lf_nn_gemm_grain(len, flop, 16);
    /* a row block repacks all of W, a column block all of x: keep blocks long enough to amortise it */
    if (grain < LF_NN_GEMM_MIN_BLOCK) grain = LF_NN_GEMM_MIN_BLOCK;
    lf_par_for(len, grain, lf_nn_linear_chunk, &c);
}

int64_t lf_nn_conv_out(int64_t size, int64_t k, int64_t stride, int64_t pad) {
    return (size + 2 * pad - k) / stride + 1;
}

/* col (K, rows*Wo) for output rows [r0, r0 + rows) of one sample x (C_in, H, Wd). */
static void lf_nn_im2col_band(float *col, const float *x, int64_t C_in, int64_t H, int64_t Wd,
                              int64_t kh, int64_t kw, int64_t stride, int64_t pad, int64_t Wo,
                              int64_t r0, int64_t rows) {
    int64_t ncol = rows * Wo;
    for (int64_t ci = 0; ci < C_in; ci++) {
        const float *xc = x + ci * H * Wd;
        for (int64_t ki = 0; ki < kh; ki++) {
            for (int64_t kj = 0; kj < kw; kj++) {
                float *dst = col + ((ci * kh + ki) * kw + kj) * ncol;
                /* output columns c with 0 <= c*stride - pad + kj < Wd: [c_lo, c_hi) */
                int64_t c_lo = 0, c_hi = Wo;
                while (c_lo < Wo && c_lo * stride - pad + kj < 0) c_lo++;
                while (c_hi > c_lo && (c_hi - 1) * stride - pad + kj >= Wd) c_hi--;
                for (int64_t r = 0; r < rows; r++) {
                    int64_t iy = (r0 + r) * stride - pad + ki;
                    float *d = dst + r * Wo;
                    if (iy < 0 || iy >= H) {
                        memset(d, 0, (size_t)Wo * sizeof(float));
                        continue;
                    }
                    const float *xrow = xc + iy * Wd - pad + kj;
                    for (int64_t c = 0; c < c_lo; c++) d[c] = 0.0f;
                    if (stride == 1) {
                        memcpy(d + c_lo, xrow + c_lo, (size_t)(c_hi - c_lo) * sizeof(float));
                    } else {
                        for (int64_t c = c_lo; c < c_hi; c++) d[c] = xrow[c * stride];
                    }
                    for (int64_t c = c_hi; c < Wo; c++) d[c] = 0.0f;
                }
            }
        }
    }
}

typedef struct {
    float *y;
    const float *x, *W, *b;
    int64_t C_in, H, Wd, C_out, kh, kw, stride, pad, Ho, Wo, K;
    int64_t band, nb; /* output rows per chunk, chunks per sample (1x1: columns per chunk, chunks) */
    int64_t cob, nco; /* output channels per chunk, channel chunks */
    atomic_int nomem;
} lf_nn_conv_ctx;

static void lf_nn_conv_bias(const lf_nn_conv_ctx *c, float *yn, int64_t co0, int64_t co1, int64_t s0,
                            int64_t s1) {
    if (!c->b) return;
    int64_t HWo = c->Ho * c->Wo;
    for (int64_t co = co0; co < co1; co++) {
        float *yc = yn + co * HWo, bv = c->b[co];
        for (int64_t s = s0; s < s1; s++) yc[s] += bv;
    }
}

/* Chunk i = ((n * nb) + band) * nco + channel block. */
static void lf_nn_conv_chunk_index(const lf_nn_conv_ctx *c, int64_t i, int64_t *n, int64_t *bi, int64_t *co0,
                                   int64_t *co1) {
    int64_t cb = i % c->nco;
    *bi = (i / c->nco) % c->nb;
    *n = i / c->nco / c->nb;
    *co0 = cb * c->cob;
    *co1 = *co0 + c->cob < c->C_out ? *co0 + c->cob : c->C_out;
}

/* 1x1 stride-1 pad-0: y_n (C_out, HW) = W (C_out, C_in) @ x_n (C_in, HW), a block of columns and
 * output channels each. */
static void lf_nn_conv1x1_chunk(void *vc, int64_t i0, int64_t i1, int tid) {
    const lf_nn_conv_ctx *c = vc;
    (void)tid;
    int64_t HWo = c->Ho * c->Wo;
    for (int64_t i = i0; i < i1; i++) {
        int64_t n, bi, co0, co1;
        lf_nn_conv_chunk_index(c, i, &n, &bi, &co0, &co1);
        int64_t s0 = bi * c->band, s1 = s0 + c->band < HWo ? s0 + c->band : HWo;
        const float *xn = c->x + n * c->C_in * HWo;
        float *yn = c->y + n * c->C_out * HWo;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(co1 - co0), (int)(s1 - s0), (int)c->K, 1.0f,
                    c->W + co0 * c->K, (int)c->K, xn + s0, (int)HWo, 0.0f, yn + co0 * HWo + s0, (int)HWo);
        lf_nn_conv_bias(c, yn, co0, co1, s0, s1);
    }
}

/* General: one band of output rows of one sample, one block of output channels: im2col into the
 * thread's scratch, then sgemm. */
static void lf_nn_conv_chunk(void *vc, int64_t i0, int64_t i1, int tid) {
    lf_nn_conv_ctx *c = vc;
    int64_t HWo = c->Ho * c->Wo;
    float *col = lf_par_scratch(tid, (size_t)(c->K * c->band * c->Wo));
    if (!col) {
        atomic_store(&c->nomem, 1);
        return;
    }
    for (int64_t i = i0; i < i1; i++) {
        int64_t n, bi, co0, co1;
        lf_nn_conv_chunk_index(c, i, &n, &bi, &co0, &co1);
        int64_t r0 = bi * c->band, rows = c->Ho - r0 < c->band ? c->Ho - r0 : c->band;
        const float *xn = c->x + n * c->C_in * c->H * c->Wd;
        float *yn = c->y + n * c->C_out * HWo;
        lf_nn_im2col_band(col, xn, c->C_in, c->H, c->Wd, c->kh, c->kw, c->stride, c->pad, c->Wo, r0, rows);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(co1 - co0), (int)(rows * c->Wo), (int)c->K,
                    1.0f, c->W + co0 * c->K, (int)c->K, col, (int)(rows * c->Wo), 0.0f, yn + co0 * HWo + r0 * c->Wo,
                    (int)HWo);
        lf_nn_conv_bias(c, yn, co0, co1, r0 * c->Wo, (r0 + rows) * c->Wo);
    }
}

/* Cut a convolution into N x nb bands x nco channel blocks, from the shapes alone: bands of at least
 * LF_NN_CONV_MIN_COLS output pixels (each band repacks W) within the im2col scratch bound; when that
 * leaves fewer chunks than the work deserves (small images, large weights), the output channels are
 * cut too, in blocks of at least LF_NN_GEMM_MIN_BLOCK / 2. */
#define LF_NN_CONV_MIN_COLS 512
static void lf_nn_conv_partition(lf_nn_conv_ctx *c, int64_t N, int im2col) {
    int64_t Ho = c->Ho, Wo = c->Wo;
    double flop = 2.0 * (double)c->C_out * (double)c->K * (double)(Ho * Wo) * (double)N;
    int64_t want = (int64_t)(flop / LF_NN_GEMM_MIN_FLOP);
    if (want > LF_NN_GEMM_MAX_PARTS) want = LF_NN_GEMM_MAX_PARTS;
    if (want < 1) want = 1;
    /* in rows of Wo pixels (1x1: the rows are single pixels of the flattened image) */
    int64_t rows = im2col ? Ho : Ho * Wo, rw = im2col ? Wo : 1;
    int64_t band = rows;
    if (im2col) {
        band = LF_NN_SCRATCH_FLOATS / (c->K * Wo);
        if (band < 1) band = 1;
        if (band > rows) band = rows;
    }
    int64_t min_band = (LF_NN_CONV_MIN_COLS + rw - 1) / rw;
    int64_t per_sample = (want + N - 1) / N;
    int64_t target = (rows + per_sample - 1) / per_sample;
    if (target < min_band) target = min_band;
    if (target < band) band = target;
    if (band < 1) band = 1;
    c->band = band; /* output rows (im2col) or pixels (1x1) */
    c->nb = (rows + band - 1) / band;
    int64_t have = N * c->nb, nco = 1;
    if (have < want) {
        nco = (want + have - 1) / have;
        int64_t max_nco = c->C_out / (LF_NN_GEMM_MIN_BLOCK / 2);
        if (nco > max_nco) nco = max_nco;
        if (nco < 1) nco = 1;
    }
    int64_t cob = (c->C_out + nco - 1) / nco;
    cob = (cob + 15) / 16 * 16;
    if (cob > c->C_out) cob = c->C_out;
    c->cob = cob;
    c->nco = (c->C_out + cob - 1) / cob;
}

lf_status lf_nn_conv2d(float *y, const float *x, const float *W, const float *b, int64_t N,
                       int64_t C_in, int64_t H, int64_t Wd, int64_t C_out, int64_t kh, int64_t kw,
                       int64_t stride, int64_t pad) {
    if (stride < 1 || pad < 0 || kh < 1 || kw < 1)
        return lf_err(LF_ERR_ARG, "conv2d: bad kernel %lldx%lld / stride %lld / pad %lld",
                      (long long)kh, (long long)kw, (long long)stride, (long long)pad);
    int64_t Ho = lf_nn_conv_out(H, kh, stride, pad), Wo = lf_nn_conv_out(Wd, kw, stride, pad);
    if (Ho < 1 || Wo < 1)
        return lf_err(LF_ERR_SHAPE, "conv2d: input %lldx%lld too small for kernel %lldx%lld",
                      (long long)H, (long long)Wd, (long long)kh, (long long)kw);
    if (N <= 0) return LF_OK;
    int64_t K = C_in * kh * kw;
    lf_nn_conv_ctx c = {y, x, W, b, C_in, H, Wd, C_out, kh, kw, stride, pad, Ho, Wo, K, 0, 0, 0, 0, 0};
    if (kh == 1 && kw == 1 && stride == 1 && pad == 0) {
        lf_nn_conv_partition(&c, N, 0);
        lf_par_for(N * c.nb * c.nco, 1, lf_nn_conv1x1_chunk, &c);
        return LF_OK;
    }
    lf_nn_conv_partition(&c, N, 1);
    lf_par_for(N * c.nb * c.nco, 1, lf_nn_conv_chunk, &c);
    if (atomic_load(&c.nomem))
        return lf_err(LF_ERR_NOMEM, "conv2d: im2col scratch of %lld floats", (long long)(K * c.band * Wo));
    return LF_OK;
}

/* ---- normalisation -------------------------------------------------------------------------- */

/* Sum and sum of squared deviations of v[0..n) in double, 8 lanes in a fixed order. */
static double lf_nn_sum_d(const float *v, int64_t n) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += (double)v[i + l];
    for (; i < n; i++) acc[0] += (double)v[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static double lf_nn_sqdev_d(const float *v, int64_t n, double mean) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) {
            double dv = (double)v[i + l] - mean;
            acc[l] += dv * dv;
        }
    for (; i < n; i++) {
        double dv = (double)v[i] - mean;
        acc[0] += dv * dv;
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

typedef struct {
    float *y;
    const float *x, *gamma, *beta;
    int64_t C, S, groups, D;
    float eps;
} lf_nn_norm_ctx;

static void lf_nn_group_norm_chunk(void *vc, int64_t i0, int64_t i1, int tid) {
    const lf_nn_norm_ctx *c = vc;
    (void)tid;
    int64_t cg = c->C / c->groups, S = c->S;
    for (int64_t i = i0; i < i1; i++) { /* i = n * groups + g */
        int64_t n = i / c->groups, g = i % c->groups;
        const float *xg = c->x + (n * c->C + g * cg) * S;
        float *yg = c->y + (n * c->C + g * cg) * S;
        int64_t cnt = cg * S;
        double mean = lf_nn_sum_d(xg, cnt) / (double)cnt;
        double var = lf_nn_sqdev_d(xg, cnt, mean) / (double)cnt;
        float fmean = (float)mean;
        float rstd = (float)(1.0 / sqrt(var + (double)c->eps));
        for (int64_t ch = 0; ch < cg; ch++) {
            float ga = c->gamma ? c->gamma[g * cg + ch] : 1.0f;
            float be = c->beta ? c->beta[g * cg + ch] : 0.0f;
            const float *xs = xg + ch * S;
            float *ys = yg + ch * S;
            for (int64_t s = 0; s < S; s++) ys[s] = (xs[s] - fmean) * rstd * ga + be;
        }
    }
}

void lf_nn_group_norm(float *y, const float *x, const float *gamma, const float *beta, int64_t N,
                      int64_t C, int64_t S, int64_t groups, float eps) {
    lf_nn_norm_ctx c = {y, x, gamma, beta, C, S, groups, 0, eps};
    int64_t per = C / groups * S, grain = LF_NN_EW_GRAIN / (per > 0 ? per : 1);
    lf_par_for(N * groups, grain < 1 ? 1 : grain, lf_nn_group_norm_chunk, &c);
}

static void lf_nn_layer_norm_chunk(void *vc, int64_t i0, int64_t i1, int tid) {
    const lf_nn_norm_ctx *c = vc;
    (void)tid;
    int64_t D = c->D;
    for (int64_t m = i0; m < i1; m++) {
        const float *xr = c->x + m * D;
        float *yr = c->y + m * D;
        double mean = lf_nn_sum_d(xr, D) / (double)D;
        double var = lf_nn_sqdev_d(xr, D, mean) / (double)D;
        float fmean = (float)mean;
        float rstd = (float)(1.0 / sqrt(var + (double)c->eps));
        if (c->gamma && c->beta) {
            for (int64_t i = 0; i < D; i++) yr[i] = (xr[i] - fmean) * rstd * c->gamma[i] + c->beta[i];
        } else {
            for (int64_t i = 0; i < D; i++)
                yr[i] = (xr[i] - fmean) * rstd * (c->gamma ? c->gamma[i] : 1.0f) + (c->beta ? c->beta[i] : 0.0f);
        }
    }
}

void lf_nn_layer_norm(float *y, const float *x, const float *gamma, const float *beta, int64_t M,
                      int64_t D, float eps) {
    lf_nn_norm_ctx c = {y, x, gamma, beta, 0, 0, 1, D, eps};
    int64_t grain = LF_NN_EW_GRAIN / (D > 0 ? D : 1);
    lf_par_for(M, grain < 1 ? 1 : grain, lf_nn_layer_norm_chunk, &c);
}

/* ---- element-wise ops ----------------------------------------------------------------------- */

typedef enum {
    LF_EW_SILU, LF_EW_GELU, LF_EW_GELU_TANH, LF_EW_QUICK_GELU, LF_EW_ADD, LF_EW_MUL, LF_EW_SCALE
} lf_nn_ew_op;

typedef struct {
    float *y;
    const float *a, *b;
    float s;
    lf_nn_ew_op op;
} lf_nn_ew_ctx;

LF_NN_CLONES static void lf_nn_ew_chunk(void *vc, int64_t i0, int64_t i1, int tid) {
    const lf_nn_ew_ctx *c = vc;
    float *y = c->y;
    const float *x = c->a, *b = c->b;
    (void)tid;
    switch (c->op) {
    case LF_EW_SILU:
        for (int64_t i = i0; i < i1; i++) y[i] = x[i] / (1.0f + lf_nn_expf(-x[i]));
        break;
    case LF_EW_GELU: {
        const float inv_sqrt2 = 0.70710678118654752440f;
        for (int64_t i = i0; i < i1; i++) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * inv_sqrt2));
        break;
    }
    case LF_EW_GELU_TANH: {
        const float k = 0.79788456080286535588f; /* sqrt(2/pi) */
        for (int64_t i = i0; i < i1; i++) {
            float v = x[i];
            y[i] = 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
        }
        break;
    }
    case LF_EW_QUICK_GELU:
        for (int64_t i = i0; i < i1; i++) y[i] = x[i] / (1.0f + lf_nn_expf(-1.702f * x[i]));
        break;
    case LF_EW_ADD:
        for (int64_t i = i0; i < i1; i++) y[i] = x[i] + b[i];
        break;
    case LF_EW_MUL:
        for (int64_t i = i0; i < i1; i++) y[i] = x[i] * b[i];
        break;
    case LF_EW_SCALE:
        for (int64_t i = i0; i < i1; i++) y[i] = x[i] * c->s;
        break;
    }
}

static void lf_nn_ew(lf_nn_ew_op op, float *y, const float *a, const float *b, float s, int64_t n) {
    lf_nn_ew_ctx c = {y, a, b, s, op};
    lf_par_for(n, LF_NN_EW_GRAIN, lf_nn_ew_chunk, &c);
}

void lf_nn_silu(float *y, const float *x, int64_t n) { lf_nn_ew(LF_EW_SILU, y, x, NULL, 0.0f, n); }
void lf_nn_gelu(float *y, const float *x, int64_t n) { lf_nn_ew(LF_EW_GELU, y, x, NULL, 0.0f, n); }
void lf_nn_gelu_tanh(float *y, const float *x, int64_t n) { lf_nn_ew(LF_EW_GELU_TANH, y, x, NULL, 0.0f, n); }
void lf_nn_quick_gelu(float *y, const float *x, int64_t n) { lf_nn_ew(LF_EW_QUICK_GELU, y, x, NULL, 0.0f, n); }
void lf_nn_add(float *y, const float *a, const float *b, int64_t n) { lf_nn_ew(LF_EW_ADD, y, a, b, 0.0f, n); }
void lf_nn_mul(float *y, const float *a, const float *b, int64_t n) { lf_nn_ew(LF_EW_MUL, y, a, b, 0.0f, n); }
void lf_nn_scale(float *y, const float *x, float s, int64_t n) { lf_nn_ew(LF_EW_SCALE, y, x, NULL, s, n); }

typedef struct {
    float *y;
    const float *x;
    int64_t F;
} lf_nn_geglu_ctx;

static void lf_nn_geglu_chunk(void *vc, int64_t i0, int64_t i1, int tid) {
    const lf_nn_geglu_ctx *c = vc;
    const float inv_sqrt2 = 0.70710678118654752440f;
    int64_t F = c->F;
    (void)tid;
    for (int64_t m = i0; m < i1; m++) {
        const float *h = c->x + m * 2 * F, *g = h + F;
        float *yr = c->y + m * F;
        for (int64_t f = 0; f < F; f++) {
            float gl = 0.5f * g[f] * (1.0f + erff(g[f] * inv_sqrt2));
            yr[f] = h[f] * gl;
        }
    }
}

void lf_nn_geglu(float *y, const float *x, int64_t M, int64_t F) {
    lf_nn_geglu_ctx c = {y, x, F};
    int64_t grain = LF_NN_EW_GRAIN / (F > 0 ? F : 1);
    lf_par_for(M, grain < 1 ? 1 : grain, lf_nn_geglu_chunk, &c);
}

typedef struct {
    float *x;
    const float *b;
    int64_t C, S;
    int per_nc;
} lf_nn_bias_ctx;

static void lf_nn_bias_chunk(void *vc, int64_t i0, int64_t i1, int tid) {
    const lf_nn_bias_ctx *c = vc;
    (void)tid;
    for (int64_t p = i0; p < i1; p++) { /* p = n * C + ch */
        float *xc = c->x + p * c->S;
        float bv = c->per_nc ? c->b[p] : c->b[p % c->C];
        for (int64_t s = 0; s < c->S; s++) xc[s] += bv;
    }
}

void lf_nn_add_bias_c(float *x, const float *b, int64_t N, int64_t C, int64_t S) {
    lf_nn_bias_ctx c = {x, b, C, S, 0};
    int64_t grain = LF_NN_EW_GRAIN / (S > 0 ? S : 1);
    lf_par_for(N * C, grain < 1 ? 1 : grain, lf_nn_bias_chunk, &c);
}

void lf_nn_add_bias_nc(float *x, const float *b, int64_t N, int64_t C, int64_t S) {
    lf_nn_bias_ctx c = {x, b, C, S, 1};
    int64_t grain = LF_NN_EW_GRAIN / (S > 0 ? S : 1);
    lf_par_for(N * C, grain < 1 ? 1 : grain, lf_nn_bias_chunk, &c);
}

/* ---- softmax and attention ------------------------------------------------------------------ */

/* One row in place: max (fixed lanes), e^(x - max) with lf_nn_expf summed in 8 f32 lanes (each at most
 * cols / 8 terms in (0, 1]; the lanes and the tail are added in double), scale by 1 / sum. */
LF_NN_CLONES static void lf_nn_softmax_row(float *row, int64_t cols) {
    float mxl[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    int64_t c = 0;
    for (; c + 8 <= cols; c += 8)
        for (int l = 0; l < 8; l++) mxl[l] = row[c + l] > mxl[l] ? row[c + l] : mxl[l];
    for (; c < cols; c++) mxl[0] = row[c] > mxl[0] ? row[c] : mxl[0];
    float mx = mxl[0];
    for (int l = 1; l < 8; l++) mx = mxl[l] > mx ? mxl[l] : mx;
    if (mx == -INFINITY) {
        memset(row, 0, (size_t)cols * sizeof(float));
        return;
    }
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (c = 0; c + 8 <= cols; c += 8)
        for (int l = 0; l < 8; l++) {
            float e = lf_nn_expf(row[c + l] - mx);
            row[c + l] = e;
            acc[l] += e;
        }
    double sum = 0.0;
    for (; c < cols; c++) {
        row[c] = lf_nn_expf(row[c] - mx);
        sum += row[c];
    }
    for (int l = 0; l < 8; l++) sum += (double)acc[l];
    float inv = (float)(1.0 / sum);
    for (c = 0; c < cols; c++) row[c] *= inv;
}

typedef struct {
    float *x;
    int64_t cols;
} lf_nn_softmax_ctx;

static void lf_nn_softmax_chunk(void *vc, int64_t i0, int64_t i1, int tid) {
    const lf_nn_softmax_ctx *c = vc;
    (void)tid;
    for (int64_t r = i0; r < i1; r++) lf_nn_softmax_row(c->x + r * c->cols, c->cols);
}

void lf_nn_softmax_rows(float *x, int64_t rows, int64_t cols) {
    lf_nn_softmax_ctx c = {x, cols};
    int64_t grain = LF_NN_EW_GRAIN / (cols > 0 ? cols : 1);
    lf_par_for(rows, grain < 1 ? 1 : grain, lf_nn_softmax_chunk, &c);
}

typedef struct {
    float *out;
    const float *q, *k, *v;
    int64_t Lq, Lk, heads, d, chunk, nq;
    float scale;
    int causal;
    atomic_int nomem;
} lf_nn_attn_ctx;

/* Chunk i = ((n * heads + h) * nq + qc): query rows [qc*chunk, +chunk) of head h of sample n. */
static void lf_nn_attention_chunk(void *vc, int64_t i0, int64_t i1, int tid) {
    lf_nn_attn_ctx *c = vc;
    int64_t ld = c->heads * c->d, Lk = c->Lk, d = c->d;
    float *S = lf_par_scratch(tid, (size_t)(c->chunk * Lk));
    if (!S) {
        atomic_store(&c->nomem, 1);
        return;
    }
    for (int64_t i = i0; i < i1; i++) {
        int64_t qc = i % c->nq, nh = i / c->nq, h = nh % c->heads, n = nh / c->heads;
        int64_t q0 = qc * c->chunk, rows = c->Lq - q0 < c->chunk ? c->Lq - q0 : c->chunk;
        const float *kh = c->k + n * Lk * ld + h * d;
        const float *vh = c->v + n * Lk * ld + h * d;
        const float *qh = c->q + (n * c->Lq + q0) * ld + h * d;
        float *oh = c->out + (n * c->Lq + q0) * ld + h * d;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)Lk, (int)d, c->scale, qh, (int)ld,
                    kh, (int)ld, 0.0f, S, (int)Lk);
        if (c->causal)
            for (int64_t r = 0; r < rows; r++)
                for (int64_t j = q0 + r + 1; j < Lk; j++) S[r * Lk + j] = -INFINITY;
        for (int64_t r = 0; r < rows; r++) lf_nn_softmax_row(S + r * Lk, Lk);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)d, (int)Lk, 1.0f, S, (int)Lk, vh,
                    (int)ld, 0.0f, oh, (int)ld);
    }
}

lf_status lf_nn_attention(float *out, const float *q, const float *k, const float *v, int64_t N,
                          int64_t Lq, int64_t Lk, int64_t heads, int64_t d, float scale, int causal) {
    if (Lq <= 0 || N <= 0) return LF_OK;
    if (Lk <= 0) return lf_err(LF_ERR_ARG, "attention: no keys (Lk = %lld)", (long long)Lk);
    int64_t chunk = LF_NN_SCORE_FLOATS / Lk;
    if (chunk < 16) chunk = 16;
    if (chunk > Lq) chunk = Lq;
    lf_nn_attn_ctx c = {out, q, k, v, Lq, Lk, heads, d, chunk, (Lq + chunk - 1) / chunk, scale, causal, 0};
    lf_par_for(N * heads * c.nq, 1, lf_nn_attention_chunk, &c);
    if (atomic_load(&c.nomem))
        return lf_err(LF_ERR_NOMEM, "attention: score scratch of %lld floats", (long long)(chunk * Lk));
    return LF_OK;
}

/* ---- layout and resampling ------------------------------------------------------------------ */

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

/* ---- embeddings ----------------------------------------------------------------------------- */

void lf_nn_timestep_embedding(float *emb, const float *t, int64_t N, int64_t dim,
                              int flip_sin_to_cos, float shift, float max_period) {
    int64_t half = dim / 2;
    /* diffusers: exponent = -math.log(max_period) * arange(half, f32); exponent / (half - shift);
     * emb = exp(exponent); then t[:, None] * emb[None, :] -- all f32 in that order. */
    float neg_log = -(float)log((double)max_period);
    float denom = (float)half - shift;
    for (int64_t n = 0; n < N; n++) {
        float *e = emb + n * dim;
        for (int64_t i = 0; i < half; i++) {
            float exponent = (neg_log * (float)i) / denom;
            float arg = t[n] * expf(exponent);
            float s = sinf(arg), c = cosf(arg);
            e[i] = flip_sin_to_cos ? c : s;
            e[half + i] = flip_sin_to_cos ? s : c;
        }
        if (dim % 2) e[dim - 1] = 0.0f;
    }
}

lf_status lf_nn_embedding(float *y, const float *table, const int32_t *ids, int64_t L, int64_t V,
                          int64_t D) {
    for (int64_t i = 0; i < L; i++) {
        if (ids[i] < 0 || ids[i] >= V)
            return lf_err(LF_ERR_ARG, "embedding: id %d at position %lld outside the vocabulary [0, %lld)",
                          (int)ids[i], (long long)i, (long long)V);
        memcpy(y + i * D, table + (int64_t)ids[i] * D, (size_t)D * sizeof(float));
    }
    return LF_OK;
}
