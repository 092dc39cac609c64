/* lf_svd.h: truncated singular value decompositions of a row-major f32 matrix on the CPU (svd.c).
 *
 *   A (m, n) = U diag(S) Vt,   U (m, p) and Vt (p, n) with orthonormal columns / rows, S descending.
 *
 * Two ways to get them (docs/extract.md "The SVD"):
 *   lf_svd_exact       LAPACK's divide and conquer (gesdd, jobz = 'S'): every singular value and
 *                      vector, p = min(m, n). Computed in f64 (dgesdd) when m*n <= LF_SVD_F64_MAX
 *                      elements, else in f32 (sgesdd); vectors returned in f32, values in f64.
 *   lf_svd_randomized  Halko, Martinsson & Tropp (2011), algorithm 4.4 + 5.1: p = l columns of a
 *                      Gaussian test matrix Omega (n, l) drawn from `seed`, Y = A Omega, then q power
 *                      iterations Y = A (A^T Q), each product re-orthonormalised by a QR (geqrf +
 *                      orgqr), B = Q^T A (l, n), the exact SVD of B = Ub S Vt, U = Q Ub. The GEMMs are
 *                      OpenBLAS sgemm in f32, B's SVD as in lf_svd_exact. Costs about (2q + 2) m n l
 *                      flops instead of ~4 m n min(m, n): the path for large layers at small rank.
 * Both are deterministic: the same input and seed give the same bytes (BLAS single-threaded under the
 * operator pool, host/base/pool.h). Row-major data is handed to the column-major LAPACK as A^T, whose
 * SVD V S U^T gives U and Vt of A without a transposed copy.
 * Test: tests/kernels/test_svd.c (known spectra, orthogonality, the Eckart-Young residual, the
 * randomized path against the exact one).
 */
#ifndef LF_SVD_H
#define LF_SVD_H

#include <stddef.h>
#include <stdint.h>

#include "lorafuse/lf_status.h"

#define LF_SVD_F64_MAX (1 << 18) /* elements up to which lf_svd_exact works in double */

typedef struct lf_svd {
    int64_t m, n, p; /* A is (m, n); p singular triplets */
    double *s;       /* p values, descending */
    float *u;        /* (m, p) row-major: column j is the j-th left singular vector */
    float *vt;       /* (p, n) row-major: row j is the j-th right singular vector */
} lf_svd;

/* The full thin SVD of a (m, n), row-major, finite. a is not modified. */
lf_status lf_svd_exact(const float *a, int64_t m, int64_t n, lf_svd *out);

/* The top l (1 <= l <= min(m, n)) approximate singular triplets with q >= 0 power iterations. */
lf_status lf_svd_randomized(const float *a, int64_t m, int64_t n, int64_t l, int q, uint64_t seed, lf_svd *out);

void lf_svd_free(lf_svd *s);

/* The last step of the randomized SVD, shared with the device path (host/cuda/device_cuda_svd.c): from
 * the orthonormal range basis Q (m, l), given as Qt (l, m) row-major, and B = Q^T A (l, n) row-major,
 * the exact SVD of B = Ub S Vt and U = Q Ub. */
lf_status lf_svd_from_range(const float *qt, const float *b, int64_t m, int64_t n, int64_t l, lf_svd *out);

/* n standard normal f32 values from `seed` (splitmix64, Box-Muller): the test matrix Omega^T (l, n). */
void lf_svd_gaussian(float *x, size_t n, uint64_t seed);

#endif
