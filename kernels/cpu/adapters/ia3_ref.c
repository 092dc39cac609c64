/* ia3_ref.c: CPU reference of IA3 (learned per-channel scaling).
 *
 * Formula (docs/adapters.md "IA3", docs/semantics.md P4): W' = W0 (.) (1 + s*w), broadcast over output rows (on_input = 0,
 * w has O entries: Linear (O,), conv (1, O, 1, 1)) or over input channels (on_input = 1, w has I
 * entries, applied to every kh*kw tap of that channel: W'[o][i*khw + sp]). Linear and conv alike
 * (trap T18: A1111's conv path is broken, ComfyUI has none). Contribution acc += W' - W0.
 */
#include "lf_ref.h"
#include "kernels/common/lf_math.h"

void lf_ia3_contrib_ref(const float *w0, const float *w, int on_input, int64_t O, int64_t I,
                        int64_t khw, float s, float *acc) {
    int64_t K = I * khw;
    for (int64_t o = 0; o < O; o++)
        for (int64_t c = 0; c < K; c++) {
            float wi = on_input ? w[c / khw] : w[o];
            acc[o * K + c] += lf_math_ia3_contrib(w0[o * K + c], wi, s);
        }
}
