/* full_ref.c: CPU reference of the additive update, used by full (diff / diff_b), norm
 * (w_norm / b_norm) and, with coef = s*gamma, by every low-rank algorithm.
 *
 * Formula (docs/adapters.md "Full", "Norm"; docs/semantics.md P2, P6): acc[i] = acc[i] + coef * x[i], rounded once (fmaf), where
 *   full:  x = diff (exactly W's shape) or diff_b (O,),      coef = s
 *   norm:  x = w_norm (C,) or b_norm (C,),                   coef = s
 *   LoRA/LoHa/LoKr/GLoRA: x = dW_raw (O, K),                 coef = s * gamma
 */
#include "lf_ref.h"
#include "kernels/common/lf_math.h"

void lf_axpy_ref(const float *x, int64_t n, float coef, float *acc) {
    for (int64_t i = 0; i < n; i++) acc[i] = lf_math_axpy(acc[i], coef, x[i]);
}
