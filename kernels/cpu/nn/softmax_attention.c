/* softmax_attention.c: row softmax and multi-head scaled dot-product attention (torch SDPA, no dropout).
 *
 *   softmax    in place per row of x (rows, cols): x = e^(x - max) / sum e^(x - max); a row of all
 *              -inf becomes zeros
 *   attention  q (N, Lq, heads*d), k, v (N, Lk, heads*d) -> out (N, Lq, heads*d); head h uses columns
 *              [h*d, (h+1)*d):  out_h = softmax(scale * q_h k_hᵀ [causal: key j > query i masked]) v_h
 *
 * e^x is lf_nn_expf (nn_internal.h); the row max is taken in 8 lanes, the exponentials summed in 8 f32
 * lanes added in double. Both attention products are single-threaded cblas_sgemm calls.
 * Threads: softmax chunks are whole rows; attention chunks are (sample, head, block of query rows),
 * the block sized so its scores (rows x Lk) fit LF_NN_SCORE_FLOATS of the thread's pool scratch. Every
 * row's reduction lies in one chunk, so the bytes do not depend on the thread count (nn_internal.h).
 * LF_ERR_NOMEM when the score scratch cannot be had.
 * Test: tests/kernels/test_nn.c (ctest -R nn).
 */
#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "lf_nn.h"
#include "nn_internal.h"

/* Attention score block per chunk (query rows x keys): 4 MiB (256 query rows at 4096 keys; BLAS
 * repacks k and v for every block). */
#define LF_NN_SCORE_FLOATS ((int64_t)1024 * 1024)

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
