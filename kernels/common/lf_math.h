/* lf_math.h: per-element math shared by the CPU reference (kernels/cpu/<algo>_ref.c) and the CUDA kernels.
 *
 * Everything here is an LF_HD function (static inline in C, __host__ __device__ under nvcc), so one
 * definition decides the rounding on both sides (docs/architecture.md "Shared math"). Rules: valid C11 and C++17, no
 * globals, no designated initializers or compound literals, fmaf written out where a single rounding
 * is part of the contract (gcc does not contract a*b+c under -ffp-contract=off, nvcc does by default:
 * spelling fmaf makes both give the same bits).
 *
 * Index vocabulary: a layer weight W (O, I[, kh, kw]) is the row-major matrix flat(W) (O, K),
 * K = I*khw, khw = kh*kw; column c = i*khw + sp, sp = y*kw + x.
 */
#ifndef LF_MATH_H
#define LF_MATH_H

#include <math.h>
#include <stdint.h>

#include "lf_half.h"
#include "lf_hd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* DoRA epsilon: torch.finfo(torch.float32).eps, what LyCORIS/ComfyUI add to the norm (docs/semantics.md P2). */
#define LF_DORA_EPS 1.1920929e-07f

/* ---- fused apply -------------------------------------------------------------------------- */

/* acc + coef*x with one rounding: the additive update acc += (s*gamma) * dW_raw (docs/semantics.md P2, P6). */
LF_HD float lf_math_axpy(float acc, float coef, float x) { return fmaf(coef, x, acc); }

/* The one rounding of the final weight to its storage dtype (P6): w = W0 + sum of contributions, held
 * in f32 until here. Round to nearest even; NaN stays NaN, overflow becomes Inf (callers reject it). */
LF_HD uint16_t lf_math_store_f16(float w) { return lf_f32_to_f16(w); }
LF_HD uint16_t lf_math_store_bf16(float w) { return lf_f32_to_bf16(w); }

/* Value of w after the storage rounding, as f32 (what a reader of the patched weight sees). */
LF_HD float lf_math_round_f16(float w) { return lf_f16_to_f32(lf_f32_to_f16(w)); }
LF_HD float lf_math_round_bf16(float w) { return lf_bf16_to_f32(lf_f32_to_bf16(w)); }

/* ---- LoKr --------------------------------------------------------------------------------- */

/* Kronecker index map (docs/adapters.md "LoKr", order w1 (x) w2):
 *   dW[i*b + p][(j*d + q)*khw + sp] = w1[i][j] * w2[p][q][sp],   O = a*b, I = c*d
 * Given an element (o, col) of flat(dW) (O, c*d*khw), return the flat indices into w1 (a, c) and
 * w2 (b, d*khw). A 2-D conv w2 (b, d*kh*kw) and a 4-D one (b, d, kh, kw) share this map. */
LF_HD void lf_math_lokr_index(int64_t o, int64_t col, int64_t b, int64_t c, int64_t d, int64_t khw,
                              int64_t *w1_idx, int64_t *w2_idx) {
    int64_t dk = d * khw;
    int64_t i = o / b, p = o - i * b;
    int64_t j = col / dk, rest = col - j * dk; /* rest = q*khw + sp */
    *w1_idx = i * c + j;
    *w2_idx = p * dk + rest;
}

/* ---- BOFT --------------------------------------------------------------------------------- */

/* Butterfly permutation of factor i with half-width k = 2^i * b/2 (docs/adapters.md "BOFT"):
 *   pi(c*2k + 2t + g) = c*2k + g*k + t,   t in [0, k), g in {0, 1}.
 * Row p of the gathered matrix Y is row pi(p) of X; the scatter writes it back there. */
LF_HD int64_t lf_math_boft_perm(int64_t p, int64_t k) {
    int64_t two_k = 2 * k;
    int64_t c = p / two_k, r = p - c * two_k;
    int64_t t = r >> 1, g = r & 1;
    return c * two_k + g * k + t;
}

/* Orthogonal factor interpolated by strength (P3): element (u, v) of I + s*(R - I); s = 1 gives R
 * exactly (LyCORIS skips the interpolation there too). With diag = 1 it is also the OFT/BOFT rescale
 * interpolation 1 + s*(rescale - 1). */
LF_HD float lf_math_orth_interp(float r_uv, int diag, float s) {
    if (s == 1.0f) return r_uv;
    return diag ? fmaf(s, r_uv - 1.0f, 1.0f) : s * r_uv;
}

/* ---- DoRA --------------------------------------------------------------------------------- */

/* Per-row (output axis) or per-column (input axis) factor m / (||Wc||_axis + eps) (P2). */
LF_HD float lf_math_dora_scale(float m, float norm) { return m / (norm + LF_DORA_EPS); }

/* Contribution of one DoRA element with A1/ComfyUI strength semantics (P2):
 *   C = s * (k*Wc - W0),   Wc = W0 + gamma*dW_raw,   k = lf_math_dora_scale(...). */
LF_HD float lf_math_dora_contrib(float w0, float wc, float k, float s) { return s * (wc * k - w0); }

/* ---- IA3 ---------------------------------------------------------------------------------- */

/* IA3 (P4): W' = W0 * (1 + s*w), returned as the contribution W' - W0 so that a lone IA3 adds up to
 * exactly W' (the subtraction is exact by Sterbenz while 1 + s*w lies in [0.5, 2]). */
LF_HD float lf_math_ia3_contrib(float w0, float w, float s) {
    float f = fmaf(s, w, 1.0f);
    return w0 * f - w0;
}

#ifdef __cplusplus
}
#endif
#endif
