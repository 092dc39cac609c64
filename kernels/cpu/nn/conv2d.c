/* conv2d.c: 2-D convolution (torch.nn.Conv2d, groups = 1, dilation 1), symmetric zero padding.
 *
 *   y (N, C_out, Ho, Wo) = W (C_out, C_in, kh, kw) * x (N, C_in, H, W) + b (C_out)   b may be NULL
 *   Ho = (H + 2 pad - kh) / stride + 1, Wo likewise (lf_nn_conv_out)
 *   per sample: y_n (C_out, Ho*Wo) = W (C_out, K) @ col (K, Ho*Wo), K = C_in*kh*kw, col = im2col(x_n)
 *   1x1 stride-1 pad-0: col is x_n itself (C_in, H*W), a plain sgemm
 *
 * Threads: the work is cut into (sample, band of output rows (1x1: of pixels), block of output
 * channels) chunks by lf_nn_conv_partition from the shapes alone (with N: a batch cuts each sample
 * into fewer pieces; the sample's bytes stay the same, as every piece is either the whole sample or a
 * product large enough for BLAS's packed path, nn_internal.h); each chunk fills its im2col band in
 * the thread's pool scratch (at most LF_NN_SCRATCH_FLOATS; 1x1 needs none) and runs one
 * single-threaded sgemm on a disjoint block of y, so the bytes do not depend on the thread count
 * (nn_internal.h). LF_ERR_NOMEM when the scratch cannot be had.
 * Test: tests/kernels/test_nn.c, tests/kernels/test_nn_batch.c (ctest -R nn).
 */
#include <cblas.h>
#include <stdatomic.h>
#include <string.h>

#include "lf_nn.h"
#include "nn_internal.h"

/* Upper bound on the floats of one per-thread im2col band: 4 MiB. */
#define LF_NN_SCRATCH_FLOATS ((int64_t)1024 * 1024)

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
    /* batch invariance (nn_internal.h): a sample whose smallest piece (last band, last channel block)
     * would be that small a product is computed whole, one call of its own shape, whatever N */
    int64_t last_rows = rows - (c->nb - 1) * band, last_co = c->C_out - (c->C_out - 1) / cob * cob;
    if ((c->nb > 1 || cob < c->C_out) &&
        (double)last_co * (double)(last_rows * rw) * (double)c->K < LF_NN_GEMM_MIN_MNK &&
        (!im2col || rows * rw * c->K <= LF_NN_SCRATCH_FLOATS)) {
        c->band = rows, c->nb = 1, cob = c->C_out;
    }
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

lf_status lf_nn_conv2d_w(float *y, const float *x, const lf_view *W, const float *b, int64_t N,
                         int64_t C_in, int64_t H, int64_t Wd, int64_t C_out, int64_t kh, int64_t kw,
                         int64_t stride, int64_t pad) {
    const float *w;
    lf_status st = lf_nn_weight_f32(W, C_out * C_in * kh * kw, "conv2d", &w);
    if (st != LF_OK) return st;
    return lf_nn_conv2d(y, x, w, b, N, C_in, H, Wd, C_out, kh, kw, stride, pad);
}
