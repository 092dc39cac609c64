/* linear.c: the fully connected layer (torch.nn.Linear).
 *
 *   y (M, out) = x (M, in) @ W (out, in)ᵀ + b (out)        b may be NULL
 *
 * One cblas_sgemm (row-major, W transposed) per (row block, column block), then the bias added.
 *
 * Batch invariance: a row's bytes do not depend on M (how many rows, i.e. samples, came with it).
 * OpenBLAS picks a code path from each call's shape, and the paths sum in different orders: measured on
 * 0.3.21 (x86-64, AVX-512), a call with m * out * in <= 1e6 and m * out <= 1200 takes the "small
 * matrix" kernel, whose rows differ in the last bits from the packed GEMM path's (1280 -> 320 at
 * m = 1, 2 against m >= 3; 32 -> 32 below 38 rows); other builds switch elsewhere (gemv for m == 1,
 * other small-matrix bounds, all at m * out * in <= 1e6). On the packed path a row's result depends on
 * neither m, nor the row's position in the call, nor the other rows (its K blocking follows K alone;
 * measured for every m up to 300 at SD's and the tiny models' widths). So:
 *   - columns are cut into blocks fixed by (in, out) alone (at most LF_NN_GEMM_MAX_PARTS, at least
 *     LF_NN_LIN_MIN_COLS wide), rows into blocks of LF_NN_LIN_ROWS aligned at its multiples;
 *   - a call never has fewer than lf_nn_lin_min_rows(in, w) rows: the smallest multiple of 16 rows
 *     that makes m * w * in >= LF_NN_GEMM_MIN_MNK (twice the largest small-matrix bound), so every call
 *     takes the packed path; a shorter block (the last one, or all of a small M such as the time
 *     embedding's M = N) is copied zero-padded into the thread's pool scratch, computed at that
 *     length, and its real rows copied back;
 *   - where even LF_NN_LIN_ROWS rows stay below the bound (tiny widths), every call has exactly
 *     LF_NN_LIN_ROWS rows: one call shape, whatever path BLAS takes for it.
 * Threads: the blocks are the pool's chunks; each writes a disjoint part of y, so the bytes do not
 * depend on the thread count either (nn_internal.h).
 * Test: tests/kernels/test_nn.c, tests/kernels/test_nn_batch.c (ctest -R nn).
 */
#include <cblas.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lf_nn.h"
#include "nn_internal.h"

/* Rows per block: long enough that repacking W per block costs little (about 95 % of the sgemm peak
 * from 256 rows on, measured single-threaded at SD1.5's widths). */
#define LF_NN_LIN_ROWS 256
/* Column blocks: at least this wide, at most LF_NN_GEMM_MAX_PARTS of them. */
#define LF_NN_LIN_MIN_COLS 256

/* Rows of the shortest call for a column block of width w (see the opening comment). */
static int64_t lf_nn_lin_min_rows(int64_t in, int64_t w) {
    double per_row = (double)w * (double)(in > 0 ? in : 1);
    int64_t m = (int64_t)(LF_NN_GEMM_MIN_MNK / per_row) + 1;
    m = (m + 15) / 16 * 16;
    return m > LF_NN_LIN_ROWS ? LF_NN_LIN_ROWS : m;
}

typedef struct {
    float *y;
    const float *x, *W, *b;
    int64_t M, in, out, cb, ncb;
    atomic_int nomem;
} lf_nn_lin_ctx;

/* Chunk i = row block * ncb + column block. */
static void lf_nn_linear_chunk(void *vc, int64_t i0, int64_t i1, int tid) {
    lf_nn_lin_ctx *c = vc;
    const int64_t in = c->in;
    for (int64_t i = i0; i < i1; i++) {
        int64_t m0 = i / c->ncb * LF_NN_LIN_ROWS, o0 = i % c->ncb * c->cb;
        int64_t rows = c->M - m0 < LF_NN_LIN_ROWS ? c->M - m0 : LF_NN_LIN_ROWS;
        int64_t w = c->out - o0 < c->cb ? c->out - o0 : c->cb, m = lf_nn_lin_min_rows(in, w);
        const float *W = c->W + o0 * in;
        float *y = c->y + m0 * c->out + o0;
        int64_t ldy = c->out;
        if (rows >= m) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)w, (int)in, 1.0f, c->x + m0 * in,
                        (int)in, W, (int)in, 0.0f, y, (int)ldy);
        } else {
            float *xs = lf_par_scratch(tid, (size_t)(m * (in + w)));
            if (!xs) {
                atomic_store(&c->nomem, 1);
                return;
            }
            float *ys = xs + m * in;
            memcpy(xs, c->x + m0 * in, (size_t)(rows * in) * sizeof(float));
            memset(xs + rows * in, 0, (size_t)((m - rows) * in) * sizeof(float));
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)w, (int)in, 1.0f, xs, (int)in, W,
                        (int)in, 0.0f, ys, (int)w);
            for (int64_t r = 0; r < rows; r++) memcpy(y + r * ldy, ys + r * w, (size_t)w * sizeof(float));
        }
        if (c->b)
            for (int64_t r = 0; r < rows; r++)
                for (int64_t o = 0; o < w; o++) y[r * ldy + o] += c->b[o0 + o];
    }
}

lf_status lf_nn_linear(float *y, const float *x, const float *W, const float *b, int64_t M, int64_t in,
                       int64_t out) {
    if (M <= 0 || out <= 0) return LF_OK;
    /* the column blocks from (in, out) alone: never from M */
    int64_t parts = out / LF_NN_LIN_MIN_COLS;
    if (parts > LF_NN_GEMM_MAX_PARTS) parts = LF_NN_GEMM_MAX_PARTS;
    if (parts < 1) parts = 1;
    int64_t cb = (out + parts - 1) / parts;
    cb = (cb + 15) / 16 * 16;
    if (cb > out) cb = out;
    lf_nn_lin_ctx c = {y, x, W, b, M, in, out, cb, (out + cb - 1) / cb, 0};
    int64_t nrb = (M + LF_NN_LIN_ROWS - 1) / LF_NN_LIN_ROWS;
    lf_par_for(nrb * c.ncb, 1, lf_nn_linear_chunk, &c);
    if (atomic_load(&c.nomem))
        return lf_err(LF_ERR_NOMEM, "linear: scratch of %lld floats for a short row block",
                      (long long)(lf_nn_lin_min_rows(in, cb) * (in + cb)));
    return LF_OK;
}

/* ---- weights held in their stored dtype ------------------------------------------------------ */

/* The shared conversion buffer: one weight at a time in f32 (see nn_internal.h). */
static float *lf_nn_wbuf;
static size_t lf_nn_wcap;

typedef struct {
    const lf_view *W;
    float *dst;
    int64_t cols;
    lf_status st;
} lf_nn_conv_rows_ctx;

static void lf_nn_convert_rows(void *vc, int64_t r0, int64_t r1, int tid) {
    lf_nn_conv_rows_ctx *c = vc;
    (void)tid;
    lf_view part = *c->W;
    size_t row_bytes = (size_t)c->cols * lf_dtype_bits(part.dtype) / 8;
    part.data = (const unsigned char *)part.data + (size_t)r0 * row_bytes;
    part.ndim = 2;
    part.shape[0] = r1 - r0;
    part.shape[1] = c->cols;
    if (lf_view_to_f32(&part, c->dst + r0 * c->cols) != LF_OK) c->st = LF_ERR_DTYPE;
}

lf_status lf_nn_weight_f32(const lf_view *W, int64_t n, const char *op, const float **out) {
    *out = NULL;
    if (lf_view_numel(W) != n) {
        char sh[128];
        return lf_err(LF_ERR_SHAPE, "%s: weight of shape %s, expected %lld values", op,
                      lf_shape_str(W, sh, sizeof sh), (long long)n);
    }
    if (W->dtype == LF_F32 && ((uintptr_t)W->data & 3u) == 0) {
        *out = W->data;
        return LF_OK;
    }
    if (!lf_dtype_readable(W->dtype) || lf_dtype_bits(W->dtype) % 8)
        return lf_err(LF_ERR_DTYPE, "%s: weight of dtype %s cannot be read as f32", op, lf_dtype_name(W->dtype));
    if (lf_nn_wcap < (size_t)n) {
        free(lf_nn_wbuf);
        lf_nn_wcap = 0;
        if ((lf_nn_wbuf = malloc((size_t)(n > 0 ? n : 1) * sizeof(float))) == NULL)
            return lf_err(LF_ERR_NOMEM, "%s: out of memory converting a weight of %lld values to f32", op,
                          (long long)n);
        lf_nn_wcap = (size_t)n;
    }
    int64_t rows = W->ndim > 0 ? W->shape[0] : 1, cols = rows > 0 ? n / rows : 0;
    lf_nn_conv_rows_ctx c = {W, lf_nn_wbuf, cols, LF_OK};
    /* chunks of about 2^18 values: the conversion is memory-bound, a few chunks per thread suffice */
    int64_t grain = cols > 0 ? ((int64_t)1 << 18) / cols : rows;
    lf_par_for(rows, grain < 1 ? 1 : grain, lf_nn_convert_rows, &c);
    if (c.st != LF_OK) return lf_err(c.st, "%s: weight of dtype %s cannot be read as f32", op, lf_dtype_name(W->dtype));
    *out = lf_nn_wbuf;
    return LF_OK;
}

size_t lf_nn_scratch_bytes(void) {
    return lf_nn_wcap * sizeof(float) + lf_par_scratch_bytes();
}

lf_status lf_nn_linear_w(float *y, const float *x, const lf_view *W, const float *b, int64_t M, int64_t in,
                         int64_t out) {
    if (M <= 0 || out <= 0) return LF_OK;
    const float *w;
    lf_status st = lf_nn_weight_f32(W, in * out, "linear", &w);
    if (st != LF_OK) return st;
    return lf_nn_linear(y, x, w, b, M, in, out);
}
