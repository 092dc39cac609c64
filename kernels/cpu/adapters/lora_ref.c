/* lora_ref.c: CPU reference of LoRA / LoCon, including the Tucker (CP) form with lora_mid.
 *
 * Formula (docs/adapters.md "LoRA / LoCon", checked against LyCORIS there):
 *   plain   dW[o][c]            = sum_r up[o][r] * down[r][c]                     up (O, R), down (R, K)
 *   Tucker  dW[o][i*khw + sp]   = sum_{p,q} up[o][p] * mid[p][q][sp] * down[q][i]
 *           up (O, R), mid (R, R, kh, kw), down (R, I)
 * 4-D factors (R, I, kh, kw) / (O, R, 1, 1) are read flat (T15). gamma and strength are applied by the
 * caller (P1, P2). With dyn_rank only the first r ranks are used (lda keeps the full row length of
 * up): A1111/SD.Next `dyn_dim` semantics, gamma stays alpha / full rank.
 * The same routine builds the factors of LoHa (M1, M2) and LoKr (W1, W2), whose Tucker form has the
 * left factor transposed (a_t = 1). Sums run in f32 with fmaf (P6).
 */
#include <stdlib.h>

#include "lf_ref.h"
#include "kernels/common/lf_math.h"

/* out (rows, cols) = a[:, :r] (lda) @ b (r, cols). */
static void lf_matmul_ref(const float *a, int64_t lda, const float *b, int64_t rows, int64_t r,
                          int64_t cols, float *out) {
    for (int64_t o = 0; o < rows; o++) {
        float *row = out + o * cols;
        for (int64_t c = 0; c < cols; c++) row[c] = 0.0f;
        for (int64_t k = 0; k < r; k++) {
            float u = a[o * lda + k];
            const float *brow = b + k * cols;
            for (int64_t c = 0; c < cols; c++) row[c] = lf_math_axpy(row[c], u, brow[c]);
        }
    }
}

lf_status lf_lora_delta_ref(const lf_ref_factor *f, float *out) {
    int64_t n = f->rows * f->cols;
    if (f->full) {
        for (int64_t i = 0; i < n; i++) out[i] = f->full[i];
        return LF_OK;
    }
    if (!f->t) {
        lf_matmul_ref(f->a, f->lda, f->b, f->rows, f->r, f->cols, out);
        return LF_OK;
    }
    /* Tucker: contract the core with b first, T[p][q2][sp] = sum_q t[p][q][sp] * b[q][q2], then with
     * the left factor: r*r*I*khw + O*r*K products instead of O*r*r*K for the nested sum. */
    int64_t r = f->r, khw = f->khw, ch = f->cols / khw;
    float *tb = malloc((size_t)(r * ch * khw) * sizeof *tb);
    if (!tb) return lf_err(LF_ERR_NOMEM, "lora reference: out of memory (Tucker scratch)");
    for (int64_t p = 0; p < r; p++)
        for (int64_t q2 = 0; q2 < ch; q2++)
            for (int64_t sp = 0; sp < khw; sp++) {
                float acc = 0.0f;
                for (int64_t q = 0; q < r; q++)
                    acc = lf_math_axpy(acc, f->t[(p * r + q) * khw + sp], f->b[q * ch + q2]);
                tb[p * ch * khw + q2 * khw + sp] = acc;
            }
    for (int64_t o = 0; o < f->rows; o++) {
        float *row = out + o * f->cols;
        for (int64_t c = 0; c < f->cols; c++) row[c] = 0.0f;
        for (int64_t p = 0; p < r; p++) {
            float u = f->a_t ? f->a[p * f->rows + o] : f->a[o * f->lda + p];
            const float *trow = tb + p * f->cols;
            for (int64_t c = 0; c < f->cols; c++) row[c] = lf_math_axpy(row[c], u, trow[c]);
        }
    }
    free(tb);
    return LF_OK;
}
