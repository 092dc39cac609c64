/* dora_ref.c: CPU reference of DoRA (weight decomposition on top of an additive algorithm).
 *
 * Formula (docs/semantics.md P2, docs/adapters.md "DoRA"):
 *   Wc = W0 + gamma * dW_raw
 *   D  = m (.) Wc / (||Wc||_axis + eps),   eps = 1.1920929e-07 (f32 machine epsilon)
 *   C  = s * (D - W0)          (A1111 / ComfyUI / SD.Next strength: s = 0 gives W0, trap T3)
 * Axes (trap T2): output axis (m has O entries: (O, 1[, 1, 1]), PEFT (O,) or PEFT conv (1, O, 1, 1)),
 * ||Wc||_out[o] over all K columns of row o; input axis (m (1, I[, 1, 1]), LyCORIS < 3.2 and A1111),
 * ||Wc||_in[i] over all rows o and taps sp of channel i. The norm is always of Wc, never of W0
 * (ComfyUI's output-axis bug, T4, is not copied). Squares are summed in double so the oracle's norm
 * does not depend on the summation order; everything else is f32.
 */
#include <math.h>
#include <stdlib.h>

#include "lf_ref.h"
#include "kernels/common/lf_math.h"

lf_status lf_dora_contrib_ref(const float *w0, const float *dw, float gamma, const float *m, int axis,
                              int64_t O, int64_t I, int64_t khw, float s, float *acc) {
    int64_t K = I * khw, n = O * K, nk = axis == 1 ? O : I;
    float *wc = malloc((size_t)n * sizeof *wc);
    double *ss = calloc((size_t)nk, sizeof *ss);
    if (!wc || !ss) {
        free(wc);
        free(ss);
        return lf_err(LF_ERR_NOMEM, "dora reference: out of memory");
    }
    for (int64_t i = 0; i < n; i++) wc[i] = lf_math_axpy(w0[i], gamma, dw[i]);
    for (int64_t o = 0; o < O; o++)
        for (int64_t c = 0; c < K; c++) {
            double v = wc[o * K + c];
            ss[axis == 1 ? o : c / khw] += v * v;
        }
    /* reuse ss as the per-channel factor k = m / (norm + eps) */
    for (int64_t j = 0; j < nk; j++) ss[j] = lf_math_dora_scale(m[j], (float)sqrt(ss[j]));
    for (int64_t o = 0; o < O; o++)
        for (int64_t c = 0; c < K; c++) {
            float k = (float)ss[axis == 1 ? o : c / khw];
            acc[o * K + c] += lf_math_dora_contrib(w0[o * K + c], wc[o * K + c], k, s);
        }
    free(wc);
    free(ss);
    return LF_OK;
}
