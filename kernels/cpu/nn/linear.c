/* linear.c: the fully connected layer (torch.nn.Linear).
 *
 *   y (M, out) = x (M, in) @ W (out, in)ᵀ + b (out)        b may be NULL
 *
 * One cblas_sgemm (row-major, W transposed) per block, then the bias added row by row.
 * Threads: the longer of the two output axes (rows M or columns out) is cut into at most
 * LF_NN_GEMM_MAX_PARTS blocks fixed by the shapes (lf_nn_gemm_grain, at least LF_NN_GEMM_MIN_BLOCK
 * long); each block is one single-threaded sgemm writing a disjoint part of y, so the bytes do not
 * depend on the thread count (nn_internal.h).
 * Test: tests/kernels/test_nn.c (ctest -R nn).
 */
#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>

#include "lf_nn.h"
#include "nn_internal.h"

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
    lf_nn_linear(y, x, w, b, M, in, out);
    return LF_OK;
}
