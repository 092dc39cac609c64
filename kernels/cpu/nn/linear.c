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
