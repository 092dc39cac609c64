/* glora_ref.c: CPU reference of GLoRA, both file layouts (docs/semantics.md P4, docs/adapters.md "GLoRA", trap T12).
 *
 * New layout (LyCORIS >= 3.0): a1 (I, r[, 1, 1]), a2 (r, I[, 1, 1]), b1 (O, r[, 1, 1]),
 * b2 (r, I[, kh, kw]):
 *   dW[o][j*khw + sp] = sum_i W0[o][i*khw + sp] * (a1 a2)[i][j]  +  (b1 @ flat(b2))[o][j*khw + sp]
 *   computed as (W0 x_in a1) x_in a2, the order ComfyUI uses (O*K*r work instead of I*I*r + O*K*I).
 * Old layout (LyCORIS <= 2.x, Linear): a1 (r, I), a2 (I, r), b1 (r, I), b2 (O, r):
 *   dW = b2 @ b1 + W0 @ a2 @ a1
 * Which layout a file uses is decided from the shapes by host/adapter/module_resolve.c. gamma = alpha / r is applied by
 * the caller. dW depends on W0, which is why stacked adapters are summed against the pristine W0 (P5).
 */
#include <stdlib.h>

#include "lf_ref.h"
#include "kernels/common/lf_math.h"

lf_status lf_glora_delta_ref(const float *w0, const float *a1, const float *a2, const float *b1,
                             const float *b2, int old_layout, int64_t O, int64_t I, int64_t khw,
                             int64_t r, float *dw) {
    int64_t K = I * khw;
    float *t = malloc((size_t)(O * r * khw) * sizeof *t); /* W0 x_in first factor: (O, r, khw) */
    if (!t) return lf_err(LF_ERR_NOMEM, "glora reference: out of memory");
    /* first factor F1 (I, r): new a1 (I, r); old a2 (I, r). second F2 (r, I): new a2, old a1. */
    const float *f1 = old_layout ? a2 : a1, *f2 = old_layout ? a1 : a2;
    for (int64_t o = 0; o < O; o++)
        for (int64_t p = 0; p < r; p++)
            for (int64_t sp = 0; sp < khw; sp++) {
                float acc = 0.0f;
                for (int64_t i = 0; i < I; i++)
                    acc = lf_math_axpy(acc, w0[o * K + i * khw + sp], f1[i * r + p]);
                t[(o * r + p) * khw + sp] = acc;
            }
    for (int64_t o = 0; o < O; o++)
        for (int64_t j = 0; j < I; j++)
            for (int64_t sp = 0; sp < khw; sp++) {
                float acc = 0.0f;
                for (int64_t p = 0; p < r; p++)
                    acc = lf_math_axpy(acc, t[(o * r + p) * khw + sp], f2[p * I + j]);
                dw[o * K + j * khw + sp] = acc;
            }
    free(t);
    /* low-rank term: new b1 (O, r) @ b2 (r, K); old b2 (O, r) @ b1 (r, I) */
    const float *left = old_layout ? b2 : b1, *right = old_layout ? b1 : b2;
    for (int64_t o = 0; o < O; o++)
        for (int64_t c = 0; c < K; c++) {
            float acc = 0.0f;
            for (int64_t p = 0; p < r; p++) acc = lf_math_axpy(acc, left[o * r + p], right[p * K + c]);
            dw[o * K + c] += acc;
        }
    return LF_OK;
}
