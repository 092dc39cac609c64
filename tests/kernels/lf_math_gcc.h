/* lf_math_gcc.h: the gcc-compiled twins of the LF_HD math (tests/kernels/lf_math_gcc.c), declared once for
 * their definitions and for tests/kernels/test_math_nvcc.cu, which compares them with nvcc's build. */
#ifndef LF_MATH_GCC_H
#define LF_MATH_GCC_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void lf_gcc_lokr_index(int64_t o, int64_t col, int64_t b, int64_t c, int64_t d, int64_t khw, int64_t *i1, int64_t *i2);
int64_t lf_gcc_boft_perm(int64_t p, int64_t k);
float lf_gcc_orth_interp(float r, int diag, float s);
float lf_gcc_dora_scale(float m, float norm);
float lf_gcc_dora_contrib(float w0, float wc, float k, float s);
float lf_gcc_ia3_contrib(float w0, float w, float s);
float lf_gcc_axpy(float acc, float coef, float x);
uint16_t lf_gcc_store_f16(float w);
uint16_t lf_gcc_store_bf16(float w);

#ifdef __cplusplus
}
#endif

#endif
