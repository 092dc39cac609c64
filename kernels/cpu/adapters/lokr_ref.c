/* lokr_ref.c: CPU reference of LoKr (Kronecker product), every layout LyCORIS writes.
 *
 * Formula (docs/adapters.md "LoKr", Kronecker order w1 (x) w2):
 *   dW[i*b + p][(j*d + q)*khw + sp] = W1[i][j] * W2[p][q][sp],   O = a*b, I = c*d
 *   W1 (a, c)   = lokr_w1, or lokr_w1_a (a, R) @ lokr_w1_b (R, c)
 *   W2 (b, d*khw) = lokr_w2 (b, d[, kh, kw]), or lokr_w2_a (b, R) @ lokr_w2_b (R, d*kh*kw) (conv:
 *                 2-D w2_b), or Tucker t2 (R, R, kh, kw) with w2_a (R, b) (transposed), w2_b (R, d)
 * The index map is lf_math_lokr_index (shared with the CUDA kernel). gamma (alpha / rank, or 1 when
 * both factors are full) is applied by the caller (P1).
 */
#include <stdlib.h>

#include "lf_ref.h"
#include "kernels/common/lf_math.h"

lf_status lf_lokr_delta_ref(const lf_ref_factor *w1, const lf_ref_factor *w2, int64_t d, int64_t khw,
                            float *dw) {
    int64_t a = w1->rows, c = w1->cols, b = w2->rows, k2 = w2->cols;
    int64_t O = a * b, K = c * k2;
    float *m1 = malloc((size_t)(a * c) * sizeof *m1);
    float *m2 = malloc((size_t)(b * k2) * sizeof *m2);
    lf_status st = LF_OK;
    if (!m1 || !m2) st = lf_err(LF_ERR_NOMEM, "lokr reference: out of memory");
    if (st == LF_OK) st = lf_lora_delta_ref(w1, m1);
    if (st == LF_OK) st = lf_lora_delta_ref(w2, m2);
    if (st == LF_OK)
        for (int64_t o = 0; o < O; o++)
            for (int64_t col = 0; col < K; col++) {
                int64_t i1, i2;
                lf_math_lokr_index(o, col, b, c, d, khw, &i1, &i2);
                dw[o * K + col] = m1[i1] * m2[i2];
            }
    free(m1);
    free(m2);
    return st;
}
