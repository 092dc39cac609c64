/* lf_test_svd.h: matrices of known spectrum and the Eckart-Young optimum, for the SVD tests
 * (tests/kernels/test_svd.c on the CPU, tests/cuda/gpu_svd.c on the device).
 *
 * lf_test_spectrum_matrix  A (m, n) row-major f32 = sum_j sigma_j u_j v_j^T over r terms, with u, v random
 *                          orthonormal columns (modified Gram-Schmidt, twice, in double: independent of LAPACK)
 * lf_test_svd_residual     ||A - U_k diag(S_k) Vt_k||_F in double
 * lf_test_svd_optimum      sqrt(sum_{i>=k} sigma_i^2), the best rank-k residual
 */
#ifndef LF_TEST_SVD_H
#define LF_TEST_SVD_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "kernels/cpu/linalg/lf_svd.h"
#include "lf_test_rng.h"

static inline double lf_test_gauss(lf_test_rng *r) {
    double u1 = lf_test_rng_unit(r), u2 = lf_test_rng_unit(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* k orthonormal columns of length n, column j at q[j * n ...]. */
static inline double *lf_test_orthonormal(lf_test_rng *r, int64_t n, int64_t k) {
    double *q = malloc((size_t)(n * k) * sizeof *q);
    if (!q) abort();
    for (int64_t i = 0; i < n * k; i++) q[i] = lf_test_gauss(r);
    for (int64_t j = 0; j < k; j++) {
        double *c = q + j * n;
        for (int pass = 0; pass < 2; pass++)
            for (int64_t p = 0; p < j; p++) {
                const double *b = q + p * n;
                double d = 0;
                for (int64_t i = 0; i < n; i++) d += b[i] * c[i];
                for (int64_t i = 0; i < n; i++) c[i] -= d * b[i];
            }
        double nn = 0;
        for (int64_t i = 0; i < n; i++) nn += c[i] * c[i];
        nn = sqrt(nn);
        for (int64_t i = 0; i < n; i++) c[i] /= nn;
    }
    return q;
}

static inline float *lf_test_spectrum_matrix(lf_test_rng *r, int64_t m, int64_t n, const double *sigma, int64_t k) {
    double *u = lf_test_orthonormal(r, m, k), *v = lf_test_orthonormal(r, n, k);
    float *a = malloc((size_t)(m * n) * sizeof *a);
    if (!a) abort();
    for (int64_t i = 0; i < m; i++)
        for (int64_t c = 0; c < n; c++) {
            double x = 0;
            for (int64_t j = 0; j < k; j++) x += sigma[j] * u[j * m + i] * v[j * n + c];
            a[i * n + c] = (float)x;
        }
    free(u);
    free(v);
    return a;
}

static inline double lf_test_svd_residual(const float *a, const lf_svd *s, int64_t k) {
    double r2 = 0;
    for (int64_t i = 0; i < s->m; i++)
        for (int64_t c = 0; c < s->n; c++) {
            double x = a[i * s->n + c];
            for (int64_t j = 0; j < k; j++) x -= (double)s->u[i * s->p + j] * s->s[j] * s->vt[j * s->n + c];
            r2 += x * x;
        }
    return sqrt(r2);
}

static inline double lf_test_svd_optimum(const double *sigma, int64_t r, int64_t k) {
    double t = 0;
    for (int64_t i = k; i < r; i++) t += sigma[i] * sigma[i];
    return sqrt(t);
}

#endif
