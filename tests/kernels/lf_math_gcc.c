/* lf_math_gcc.c: the LF_HD functions of lf_math.h / lf_half.h compiled by gcc (C11, -ffp-contract=off,
 * as the CPU reference is), exported for tests/kernels/test_math_nvcc.cu, which compares them bit for bit with
 * the same header compiled by nvcc (host side). Linked into test_math_nvcc_nvcc only. */
#include <stdint.h>

#include "kernels/common/lf_math.h"
#include "lf_math_gcc.h"

void lf_gcc_lokr_index(int64_t o, int64_t col, int64_t b, int64_t c, int64_t d, int64_t khw, int64_t *i1, int64_t *i2) {
    lf_math_lokr_index(o, col, b, c, d, khw, i1, i2);
}
int64_t lf_gcc_boft_perm(int64_t p, int64_t k) { return lf_math_boft_perm(p, k); }
float lf_gcc_orth_interp(float r, int diag, float s) { return lf_math_orth_interp(r, diag, s); }
float lf_gcc_dora_scale(float m, float norm) { return lf_math_dora_scale(m, norm); }
float lf_gcc_dora_contrib(float w0, float wc, float k, float s) { return lf_math_dora_contrib(w0, wc, k, s); }
float lf_gcc_ia3_contrib(float w0, float w, float s) { return lf_math_ia3_contrib(w0, w, s); }
float lf_gcc_axpy(float acc, float coef, float x) { return lf_math_axpy(acc, coef, x); }
uint16_t lf_gcc_store_f16(float w) { return lf_math_store_f16(w); }
uint16_t lf_gcc_store_bf16(float w) { return lf_math_store_bf16(w); }
