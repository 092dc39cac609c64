/* oft_ref.c: CPU reference of orthogonal fine-tuning: LyCORIS Diag-OFT / kohya OFT (oft_blocks
 * (K, b, b), K*b = O) and legacy LyCORIS <= 2.0 `oft_diag` (K, b, b).
 *
 * Rotation (docs/adapters.md "OFT", docs/semantics.md P3):
 *   Q_k = B_k - B_k^T;  LyCORIS clamp: n = ||Q||_F (all blocks) + 1e-8, if c > 0 and n > c: Q *= c / n,
 *   with c = alpha * O (trap T8: ComfyUI forgets the * O; kohya's clamp formula is not used);
 *   R_k = (I + Q_k)(I - Q_k)^-1, solved by Gauss-Jordan with partial pivoting in double (the
 *   references invert in fp32; I - Q is never singular for a skew Q). Legacy oft_diag is R itself.
 * Apply: rows of W0 are mixed by the TRANSPOSE of the interpolated rotation (T13),
 *   W'[k*b + m][:] = sum_n (I + s(R_k - I))[n][m] * W0[k*b + n][:],
 * then W' *= 1 + s(rescale - 1) per row when present. Strength enters once (T9: not ComfyUI's s^2).
 * Contribution acc += W' - W0.
 * rescale: LyCORIS multiplies by the full rescale at every strength, so its s = 0 would be
 * rescale*W0 and a strength schedule would jump at 0. lorafuse interpolates rescale like the rotation
 * (equal to LyCORIS at s = 1; s = 0 leaves W0, P2), as the golden fixtures (scripts/golden/adapters.py,
 * "merge_rescale") do. ComfyUI and A1111 ignore rescale altogether (T13).
 */
#include <math.h>
#include <stdlib.h>

#include "lf_ref.h"
#include "kernels/common/lf_math.h"

/* Solve A X = B in place for n x n row-major doubles (B becomes X). A is destroyed. Returns 0 if A
 * is numerically singular. */
static int lf_solve_gj(double *A, double *B, int64_t n) {
    for (int64_t col = 0; col < n; col++) {
        int64_t piv = col;
        for (int64_t r = col + 1; r < n; r++)
            if (fabs(A[r * n + col]) > fabs(A[piv * n + col])) piv = r;
        if (A[piv * n + col] == 0.0) return 0;
        if (piv != col)
            for (int64_t c = 0; c < n; c++) {
                double t = A[col * n + c];
                A[col * n + c] = A[piv * n + c];
                A[piv * n + c] = t;
                t = B[col * n + c];
                B[col * n + c] = B[piv * n + c];
                B[piv * n + c] = t;
            }
        double inv = 1.0 / A[col * n + col];
        for (int64_t c = 0; c < n; c++) {
            A[col * n + c] *= inv;
            B[col * n + c] *= inv;
        }
        for (int64_t r = 0; r < n; r++) {
            if (r == col) continue;
            double f = A[r * n + col];
            if (f == 0.0) continue;
            for (int64_t c = 0; c < n; c++) {
                A[r * n + c] -= f * A[col * n + c];
                B[r * n + c] -= f * B[col * n + c];
            }
        }
    }
    return 1;
}

lf_status lf_oft_rotation_ref(const float *blocks, int64_t nblk, int64_t b, double constraint, float *R) {
    int64_t bb = b * b;
    float *q = malloc((size_t)(nblk * bb) * sizeof *q);
    double *A = malloc((size_t)bb * sizeof *A), *B = malloc((size_t)bb * sizeof *B);
    if (!q || !A || !B) {
        free(q);
        free(A);
        free(B);
        return lf_err(LF_ERR_NOMEM, "oft reference: out of memory");
    }
    double ss = 0.0;
    for (int64_t k = 0; k < nblk; k++)
        for (int64_t u = 0; u < b; u++)
            for (int64_t v = 0; v < b; v++) {
                float x = blocks[k * bb + u * b + v] - blocks[k * bb + v * b + u];
                q[k * bb + u * b + v] = x;
                ss += (double)x * x;
            }
    double norm = sqrt(ss) + 1e-8;
    double f = (constraint > 0.0 && norm > constraint) ? constraint / norm : 1.0;
    lf_status st = LF_OK;
    for (int64_t k = 0; k < nblk && st == LF_OK; k++) {
        for (int64_t u = 0; u < b; u++)
            for (int64_t v = 0; v < b; v++) {
                double x = (double)q[k * bb + u * b + v] * f, id = u == v ? 1.0 : 0.0;
                A[u * b + v] = id - x; /* (I - Q) X = (I + Q); X = R since the two commute */
                B[u * b + v] = id + x;
            }
        if (!lf_solve_gj(A, B, b))
            st = lf_err(LF_ERR_NONFINITE, "oft reference: I - Q of block %lld is singular", (long long)k);
        for (int64_t i = 0; i < bb; i++) R[k * bb + i] = (float)B[i];
    }
    free(q);
    free(A);
    free(B);
    return st;
}

lf_status lf_oft_contrib_ref(const float *w0, const float *blocks, int64_t nblk, int64_t b, int64_t K,
                             double constraint, const float *rescale, int legacy, float s, float *acc) {
    int64_t bb = b * b;
    float *R = malloc((size_t)(nblk * bb) * sizeof *R);
    float *row = malloc((size_t)K * sizeof *row);
    lf_status st = LF_OK;
    if (!R || !row) st = lf_err(LF_ERR_NOMEM, "oft reference: out of memory");
    if (st == LF_OK) {
        if (legacy)
            for (int64_t i = 0; i < nblk * bb; i++) R[i] = blocks[i];
        else
            st = lf_oft_rotation_ref(blocks, nblk, b, constraint, R);
    }
    for (int64_t k = 0; k < nblk && st == LF_OK; k++) {
        const float *Rk = R + k * bb;
        for (int64_t m = 0; m < b; m++) {
            int64_t o = k * b + m;
            for (int64_t c = 0; c < K; c++) row[c] = 0.0f;
            for (int64_t n = 0; n < b; n++) {
                float g = lf_math_orth_interp(Rk[n * b + m], n == m, s);
                const float *src = w0 + (k * b + n) * K;
                for (int64_t c = 0; c < K; c++) row[c] = lf_math_axpy(row[c], g, src[c]);
            }
            float sc = rescale ? lf_math_orth_interp(rescale[o], 1, s) : 1.0f;
            for (int64_t c = 0; c < K; c++) acc[o * K + c] += row[c] * sc - w0[o * K + c];
        }
    }
    free(R);
    free(row);
    return st;
}
