/* lf_ref.h: private interface of the scalar CPU reference (kernels/cpu/<algo>_ref.c), the oracle every
 * CUDA kernel is judged against. All arrays are f32, row-major, already converted from their stored
 * dtype by the caller (host/adapter/module_contrib.c); shapes follow lf_tensor.h: W (O, I[, kh, kw]) handled as
 * flat(W) (O, K), K = I*khw. Per-element math comes from lorafuse/lf_math.h so the kernels share it.
 *
 * Two kinds of entry point:
 *   lf_<algo>_delta_ref   dW_raw (O, K) of an additive algorithm, without gamma and strength;
 *   lf_<algo>_contrib_ref acc (O, K) += C(W0, s) for the algorithms whose result is not s*gamma*dW.
 * Functions that need scratch memory return LF_ERR_NOMEM; none keeps state.
 */
#ifndef LF_REF_H
#define LF_REF_H

#include <stdint.h>

#include "lorafuse/lf_status.h"

/* A low-rank (or full) matrix of shape (rows, cols), as LoRA, LoHa and LoKr store their factors:
 *   full != NULL:  the matrix itself (rows, cols);
 *   t == NULL:     a (rows, lda) @ b (r, cols), using the first r columns of a / rows of b;
 *   t != NULL:     Tucker/CP, cols = ch*khw:
 *                  M[o][q2*khw + sp] = sum_{p,q} t[p][q][sp] * A(o, p) * b[q][q2],
 *                  A(o, p) = a_t ? a[p][o] (a is (r, rows)) : a[o][p] (a is (rows, r)),
 *                  t (r, r, khw), b (r, ch).                                         */
typedef struct lf_ref_factor {
    const float *full;
    const float *a, *b, *t;
    int64_t rows, cols, r, lda, khw;
    int a_t;
} lf_ref_factor;

/* lora_ref.c: out (rows, cols) = the matrix f describes (LoRA / LoCon / Tucker lora_mid). */
lf_status lf_lora_delta_ref(const lf_ref_factor *f, float *out);

/* loha_ref.c: dW (rows, cols) = M1 (.) M2, both factors of the same shape. */
lf_status lf_loha_delta_ref(const lf_ref_factor *f1, const lf_ref_factor *f2, float *dw);

/* lokr_ref.c: dW (a*b, c*d*khw) = W1 (a, c) (x) W2 (b, d*khw). */
lf_status lf_lokr_delta_ref(const lf_ref_factor *w1, const lf_ref_factor *w2, int64_t d, int64_t khw,
                            float *dw);

/* glora_ref.c: dW (O, K) of GLoRA (docs/adapters.md "GLoRA"), I input channels, khw = K / I.
 *   new layout: a1 (I, r), a2 (r, I), b1 (O, r), b2 (r, K):  dW = W0 x_in (a1 a2) + b1 b2
 *   old layout: a1 (r, I), a2 (I, r), b1 (r, I), b2 (O, r):  dW = b2 b1 + W0 a2 a1   (K == I) */
lf_status lf_glora_delta_ref(const float *w0, const float *a1, const float *a2, const float *b1,
                             const float *b2, int old_layout, int64_t O, int64_t I, int64_t khw,
                             int64_t r, float *dw);

/* full_ref.c: acc[i] += coef * x[i] with one rounding (additive update, also diff/w_norm). */
void lf_axpy_ref(const float *x, int64_t n, float coef, float *acc);

/* dora_ref.c: acc += s * (m * Wc / (||Wc||_axis + eps) - W0), Wc = W0 + gamma*dW (P2).
 * axis 1: m has O entries (row norms); axis 2: m has I entries (norm over o and the khw taps). */
lf_status lf_dora_contrib_ref(const float *w0, const float *dw, float gamma, const float *m, int axis,
                              int64_t O, int64_t I, int64_t khw, float s, float *acc);

/* oft_ref.c: R_k = (I + Q_k)(I - Q_k)^-1 for nblk skew blocks Q_k = B_k - B_k^T (b, b), with the
 * LyCORIS clamp of ||Q||_F (over all blocks) to `constraint` when constraint > 0. R: nblk*b*b. */
lf_status lf_oft_rotation_ref(const float *blocks, int64_t nblk, int64_t b, double constraint, float *R);

/* oft_ref.c: Diag-OFT (legacy = 0: blocks are oft_blocks, Cayley + clamp) or legacy oft_diag
 * (legacy = 1: blocks are R). W' rows k*b+m = sum_n (I + s(R_k - I))[n][m] W0[k*b+n]; W' *= rescale
 * per row when rescale != NULL; acc += W' - W0. O = nblk*b. */
lf_status lf_oft_contrib_ref(const float *w0, const float *blocks, int64_t nblk, int64_t b, int64_t K,
                             double constraint, const float *rescale, int legacy, float s, float *acc);

/* boft_ref.c: BOFT (docs/adapters.md "BOFT") with oft_blocks (nm, nb, b, b), O = nb*b, K columns. */
lf_status lf_boft_contrib_ref(const float *w0, const float *blocks, int64_t nm, int64_t nb, int64_t b,
                              int64_t K, double constraint, const float *rescale, float s, float *acc);

/* ia3_ref.c: acc += W0 (.) (1 + s*w) - W0 on output rows (w: O) or input channels (w: I). */
void lf_ia3_contrib_ref(const float *w0, const float *w, int on_input, int64_t O, int64_t I,
                        int64_t khw, float s, float *acc);

#endif
