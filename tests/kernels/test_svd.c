/* test_svd.c: the CPU SVD of kernels/cpu/linalg/svd.c (lf_svd.h) on matrices of known spectrum.
 *
 * A = U diag(sigma) V^T is built here in double from random orthonormal U, V (modified Gram-Schmidt,
 * twice, independent of LAPACK) and rounded to f32. Checked:
 * - lf_svd_exact on both precisions (small: dgesdd, large: sgesdd), tall and wide: the singular values
 *   against sigma, orthonormal U and Vt, U S Vt = A, the rank-k truncation's residual = the
 *   Eckart-Young optimum sqrt(sum_{i>=k} sigma_i^2); a rank-deficient matrix.
 * - lf_svd_randomized (k + max(k, 10) columns, 3 power iterations, the defaults of lorafuse extract): the
 *   rank-k residual within 1 % of the optimum on a decaying and on a flat-tailed spectrum, the same
 *   bytes from the same seed, the leading values close to the exact ones.
 * - bad arguments are errors.
 * Run: ctest -R test_svd
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/linalg/lf_svd.h"
#include "lf_test.h"
#include "lf_test_svd.h"

static lf_test_rng g_rng = {LF_TEST_RNG_SEED};

/* max |X^T X - I| over the p columns of U (m, p) row-major and the p rows of Vt (p, n). */
static double orth_error(const lf_svd *s, int64_t p) {
    double e = 0;
    for (int64_t a = 0; a < p; a++)
        for (int64_t b = 0; b <= a; b++) {
            double du = 0, dv = 0;
            for (int64_t i = 0; i < s->m; i++) du += (double)s->u[i * s->p + a] * s->u[i * s->p + b];
            for (int64_t c = 0; c < s->n; c++) dv += (double)s->vt[a * s->n + c] * s->vt[b * s->n + c];
            double want = a == b ? 1.0 : 0.0;
            e = fmax(e, fmax(fabs(du - want), fabs(dv - want)));
        }
    return e;
}

static void test_exact(int64_t m, int64_t n, double decay, double tol) {
    int64_t p = m < n ? m : n;
    double *sigma = malloc((size_t)p * sizeof *sigma);
    for (int64_t i = 0; i < p; i++) sigma[i] = 2.0 * pow(decay, (double)i);
    float *a = lf_test_spectrum_matrix(&g_rng, m, n, sigma, p);
    lf_svd s;
    lf_status st = lf_svd_exact(a, m, n, &s);
    LF_CHECK(st == LF_OK, "exact (%lld, %lld): %s", (long long)m, (long long)n, lf_last_error());
    if (st == LF_OK) {
        double es = 0;
        for (int64_t i = 0; i < p; i++) es = fmax(es, fabs(s.s[i] - sigma[i]));
        LF_CHECK(es <= tol * sigma[0], "(%lld, %lld): singular values off by %g", (long long)m, (long long)n, es);
        int64_t po = p < 40 ? p : 40;
        double eo = orth_error(&s, po);
        LF_CHECK(eo <= 20 * tol, "(%lld, %lld): orthonormality off by %g", (long long)m, (long long)n, eo);
        double anorm = lf_test_svd_optimum(sigma, p, 0);
        double full = lf_test_svd_residual(a, &s, p);
        LF_CHECK(full <= 10 * tol * anorm, "(%lld, %lld): U S Vt differs from A by %g of %g", (long long)m, (long long)n,
                 full, anorm);
        for (int64_t k = 1; k <= p; k *= 4) {
            double res = lf_test_svd_residual(a, &s, k), opt = lf_test_svd_optimum(sigma, p, k);
            LF_CHECK(fabs(res - opt) <= 1e-4 * opt + 10 * tol * anorm, "(%lld, %lld) rank %lld: residual %.9g, optimum %.9g",
                     (long long)m, (long long)n, (long long)k, res, opt);
        }
        printf("exact (%lld, %lld): max |S - sigma| %.2e, orth %.2e, |A - U S Vt| %.2e\n", (long long)m, (long long)n,
               es, eo, full / anorm);
    }
    lf_svd_free(&s);
    free(a);
    free(sigma);
}

static void test_rank_deficient(void) {
    const int64_t m = 200, n = 150, r = 7;
    double sigma[7] = {3, 2.5, 2, 1, 0.5, 0.25, 0.125};
    float *a = lf_test_spectrum_matrix(&g_rng, m, n, sigma, r);
    lf_svd s;
    LF_CHECK(lf_svd_exact(a, m, n, &s) == LF_OK, "%s", lf_last_error());
    if (s.s) {
        LF_CHECK(s.s[r] <= 1e-6 * s.s[0], "rank 7: S[7] = %g", s.s[r]);
        double res = lf_test_svd_residual(a, &s, r);
        LF_CHECK(res <= 1e-6 * 4.5, "rank 7 matrix: rank-7 residual %g", res);
    }
    lf_svd_free(&s);
    free(a);
}

/* Randomized rank-k residual against the optimum, and determinism. */
static void test_randomized(int64_t m, int64_t n, int64_t k, const char *what, int flat) {
    int64_t p = m < n ? m : n;
    double *sigma = malloc((size_t)p * sizeof *sigma);
    for (int64_t i = 0; i < p; i++)
        sigma[i] = flat ? (i < k ? 4.0 - 0.1 * (double)i : 0.2 * (1.0 + 0.3 * lf_test_gauss(&g_rng) / 3.0)) : pow(0.97, (double)i);
    /* keep sigma sorted for the optimum (the flat tail is noisy) */
    for (int64_t i = 1; i < p; i++)
        for (int64_t j = i; j > 0 && sigma[j] > sigma[j - 1]; j--) {
            double t = sigma[j];
            sigma[j] = sigma[j - 1];
            sigma[j - 1] = t;
        }
    float *a = lf_test_spectrum_matrix(&g_rng, m, n, sigma, p);
    lf_svd r1, r2, ex;
    int64_t l = k + (k > 10 ? k : 10);
    lf_status st = lf_svd_randomized(a, m, n, l, 3, 42, &r1);
    LF_CHECK(st == LF_OK, "randomized: %s", lf_last_error());
    LF_CHECK(lf_svd_randomized(a, m, n, l, 3, 42, &r2) == LF_OK, "%s", lf_last_error());
    LF_CHECK(lf_svd_exact(a, m, n, &ex) == LF_OK, "%s", lf_last_error());
    if (st == LF_OK && r2.u && ex.u) {
        double res = lf_test_svd_residual(a, &r1, k), opt = lf_test_svd_optimum(sigma, p, k), exres = lf_test_svd_residual(a, &ex, k);
        LF_CHECK(res <= 1.01 * opt, "%s (%lld, %lld) k %lld: randomized residual %.6g, optimum %.6g", what,
                 (long long)m, (long long)n, (long long)k, res, opt);
        LF_CHECK(fabs(exres - opt) <= 1e-4 * opt, "%s: exact residual %.6g, optimum %.6g", what, exres, opt);
        LF_CHECK(r1.p == l && memcmp(r1.u, r2.u, (size_t)(m * r1.p) * sizeof(float)) == 0 &&
                     memcmp(r1.vt, r2.vt, (size_t)(r1.p * n) * sizeof(float)) == 0,
                 "%s: the same seed gives different factors", what);
        double es = 0;
        for (int64_t i = 0; i < k; i++) es = fmax(es, fabs(r1.s[i] - ex.s[i]) / ex.s[0]);
        LF_CHECK(es <= 2e-3, "%s: leading singular values off by %g of S0", what, es);
        printf("randomized %s (%lld, %lld) k %lld: residual / optimum = %.6f, max |S - S_exact| / S0 %.1e\n", what,
               (long long)m, (long long)n, (long long)k, res / opt, es);
    }
    lf_svd_free(&r1);
    lf_svd_free(&r2);
    lf_svd_free(&ex);
    free(a);
    free(sigma);
}

static void test_errors(void) {
    float a[6] = {1, 2, 3, 4, 5, 6};
    lf_svd s;
    LF_CHECK(lf_svd_exact(a, 0, 3, &s) == LF_ERR_ARG, "empty matrix");
    LF_CHECK(lf_svd_randomized(a, 2, 3, 3, 1, 1, &s) == LF_ERR_ARG, "l above min(m, n)");
    LF_CHECK(lf_svd_randomized(a, 2, 3, 0, 1, 1, &s) == LF_ERR_ARG, "l = 0");
    LF_CHECK(lf_svd_randomized(a, 2, 3, 1, -1, 1, &s) == LF_ERR_ARG, "negative power iterations");
    LF_CHECK(s.s == NULL && s.u == NULL && s.vt == NULL, "nothing allocated on error");
}

int main(void) {
    test_exact(48, 64, 0.9, 1e-6);    /* f64 path */
    test_exact(64, 48, 0.9, 1e-6);
    test_exact(300, 1000, 0.99, 1e-5); /* f32 path (3e5 elements) */
    test_exact(1000, 300, 0.99, 1e-5);
    test_rank_deficient();
    test_randomized(400, 900, 16, "decaying", 0);
    test_randomized(900, 400, 16, "flat tail", 1);
    test_randomized(320, 2880, 32, "conv-like", 1);
    test_errors();
    return lf_test_finish();
}
