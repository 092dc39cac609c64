/* loha_ref.c: CPU reference of LoHa (Hadamard product of two low-rank matrices), incl. Tucker.
 *
 * Formula (docs/adapters.md "LoHa"):
 *   dW = M1 (.) M2,   M1 = w1_a @ flat(w1_b),  M2 = w2_a @ flat(w2_b)
 *   w1_a (O, R), w1_b (R, I*kh*kw) (2-D, or an older 4-D (R, I, kh, kw) read flat)
 *   Tucker: M1[o][i*khw + sp] = sum_{p,q} t1[p][q][sp] * w1_a[p][o] * w1_b[q][i],
 *           w1_a (R, O) (transposed), w1_b (R, I), t1 (R, R, kh, kw); same for M2.
 * gamma = alpha / hada_w1_b.shape[0] multiplies the product once, in the caller (P1: not the gamma^2
 * of the LyCORIS merge path, trap T1).
 */
#include <stdlib.h>

#include "lf_ref.h"

lf_status lf_loha_delta_ref(const lf_ref_factor *f1, const lf_ref_factor *f2, float *dw) {
    int64_t n = f1->rows * f1->cols;
    float *m2 = malloc((size_t)n * sizeof *m2);
    if (!m2) return lf_err(LF_ERR_NOMEM, "loha reference: out of memory");
    lf_status st = lf_lora_delta_ref(f1, dw);
    if (st == LF_OK) st = lf_lora_delta_ref(f2, m2);
    if (st == LF_OK)
        for (int64_t i = 0; i < n; i++) dw[i] *= m2[i];
    free(m2);
    return st;
}
