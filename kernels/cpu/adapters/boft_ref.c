/* boft_ref.c: CPU reference of BOFT (butterfly orthogonal fine-tuning, LyCORIS).
 *
 * oft_blocks (M, NB, b, b), NB*b = O rows of W, b even, NB a power of two, M <= log2(NB) + 1.
 * Rotations R_{i,B} = Cayley of the skew parts with the LyCORIS clamp over all M*NB blocks
 * (lf_oft_rotation_ref; constraint alpha * O, trap T8). Apply (docs/adapters.md "BOFT", docs/semantics.md P3):
 *   X = W0
 *   for i = 0 .. M-1:  k = 2^i * b/2,  Rs = I + s(R_i - I)   (each factor interpolated by s)
 *     Y[p] = X[pi(p)],  pi = lf_math_boft_perm(., k)         (gather into butterfly order)
 *     Z[B*b + u] = sum_v Rs[B][u][v] * Y[B*b + v]              (NOT transposed, unlike Diag-OFT: T13)
 *     X[pi(p)] = Z[p]                                          (scatter back)
 *   W' = X (.) (1 + s(rescale - 1)) (per row, when present; interpolated for the reason given in
 *        oft_ref.c);  acc += W' - W0
 * Strength enters once, inside the factors (T9: not ComfyUI's extra * s).
 */
#include <stdlib.h>
#include <string.h>

#include "lf_ref.h"
#include "kernels/common/lf_math.h"

lf_status lf_boft_contrib_ref(const float *w0, const float *blocks, int64_t nm, int64_t nb, int64_t b,
                              int64_t K, double constraint, const float *rescale, float s, float *acc) {
    int64_t O = nb * b, bb = b * b, n = O * K;
    float *R = malloc((size_t)(nm * nb * bb) * sizeof *R);
    float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
    lf_status st = LF_OK;
    if (!R || !x || !y) st = lf_err(LF_ERR_NOMEM, "boft reference: out of memory");
    if (st == LF_OK) st = lf_oft_rotation_ref(blocks, nm * nb, b, constraint, R);
    if (st == LF_OK) memcpy(x, w0, (size_t)n * sizeof *x);
    for (int64_t i = 0; i < nm && st == LF_OK; i++) {
        int64_t k = ((int64_t)1 << i) * (b / 2);
        for (int64_t p = 0; p < O; p++) /* gather */
            memcpy(y + p * K, x + lf_math_boft_perm(p, k) * K, (size_t)K * sizeof *y);
        for (int64_t B = 0; B < nb; B++) {
            const float *Rb = R + (i * nb + B) * bb;
            for (int64_t u = 0; u < b; u++) {
                float *dst = x + lf_math_boft_perm(B * b + u, k) * K; /* scatter target */
                for (int64_t c = 0; c < K; c++) dst[c] = 0.0f;
                for (int64_t v = 0; v < b; v++) {
                    float g = lf_math_orth_interp(Rb[u * b + v], u == v, s);
                    const float *src = y + (B * b + v) * K;
                    for (int64_t c = 0; c < K; c++) dst[c] = lf_math_axpy(dst[c], g, src[c]);
                }
            }
        }
    }
    if (st == LF_OK)
        for (int64_t o = 0; o < O; o++) {
            float sc = rescale ? lf_math_orth_interp(rescale[o], 1, s) : 1.0f;
            for (int64_t c = 0; c < K; c++) acc[o * K + c] += x[o * K + c] * sc - w0[o * K + c];
        }
    free(R);
    free(x);
    free(y);
    return st;
}
