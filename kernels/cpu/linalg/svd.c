/* svd.c: the exact (LAPACK gesdd) and randomized (range finder + power iterations) SVD of lf_svd.h.
 *
 * Layout trick: a row-major A (m, n) is the column-major A^T (n, m) with leading dimension n. gesdd on
 * A^T = U' S VT' writes U' (n, p) column-major, which is Vt (p, n) of A row-major, and VT' (p, m)
 * column-major, which is U (m, p) of A row-major. The randomized path keeps its tall-skinny blocks
 * transposed (Y^T (l, m) row-major = Y (m, l) column-major) for the same reason, so LAPACK's QR
 * works on them in place.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

#include "lf_svd.h"

void lf_svd_free(lf_svd *s) {
    if (!s) return;
    free(s->s);
    free(s->u);
    free(s->vt);
    memset(s, 0, sizeof *s);
}

static lf_status lf_svd_dims(int64_t m, int64_t n) {
    if (m < 1 || n < 1 || m > INT_MAX / 2 || n > INT_MAX / 2)
        return lf_err(LF_ERR_ARG, "svd: matrix (%lld, %lld) is empty or too large for LAPACK", (long long)m,
                      (long long)n);
    return LF_OK;
}

static lf_status lf_svd_info(const char *fn, lapack_int info, int64_t m, int64_t n) {
    if (info == 0) return LF_OK;
    if (info > 0)
        return lf_err(LF_ERR_NONFINITE, "svd: %s did not converge on a (%lld, %lld) matrix", fn, (long long)m,
                      (long long)n);
    if (info == LAPACK_WORK_MEMORY_ERROR || info == LAPACK_TRANSPOSE_MEMORY_ERROR)
        return lf_err(LF_ERR_NOMEM, "svd: out of memory in %s for a (%lld, %lld) matrix", fn, (long long)m,
                      (long long)n);
    return lf_err(LF_ERR_ARG, "svd: %s rejected argument %d for a (%lld, %lld) matrix", fn, (int)-info, (long long)m,
                  (long long)n);
}

lf_status lf_svd_exact(const float *a, int64_t m, int64_t n, lf_svd *out) {
    memset(out, 0, sizeof *out);
    lf_status st = lf_svd_dims(m, n);
    if (st != LF_OK) return st;
    int64_t p = m < n ? m : n;
    size_t mn = (size_t)m * (size_t)n;
    out->m = m;
    out->n = n;
    out->p = p;
    out->s = malloc((size_t)p * sizeof *out->s);
    out->u = malloc((size_t)(m * p) * sizeof *out->u);
    out->vt = malloc((size_t)(p * n) * sizeof *out->vt);
    if (!out->s || !out->u || !out->vt) {
        lf_svd_free(out);
        return lf_err(LF_ERR_NOMEM, "svd: out of memory for a (%lld, %lld) matrix", (long long)m, (long long)n);
    }
    lapack_int info;
    if (mn <= (size_t)LF_SVD_F64_MAX) {
        /* small: double precision costs little and makes the tail of the spectrum exact to f32 */
        double *ad = malloc(mn * sizeof *ad), *ud = malloc((size_t)(m * p) * sizeof *ud),
               *vd = malloc((size_t)(p * n) * sizeof *vd);
        if (!ad || !ud || !vd) {
            info = LAPACK_WORK_MEMORY_ERROR;
        } else {
            for (size_t i = 0; i < mn; i++) ad[i] = a[i];
            info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'S', (lapack_int)n, (lapack_int)m, ad, (lapack_int)n, out->s, vd,
                                  (lapack_int)n, ud, (lapack_int)p);
            for (int64_t i = 0; info == 0 && i < m * p; i++) out->u[i] = (float)ud[i];
            for (int64_t i = 0; info == 0 && i < p * n; i++) out->vt[i] = (float)vd[i];
        }
        free(ad);
        free(ud);
        free(vd);
        st = lf_svd_info("dgesdd", info, m, n);
    } else {
        float *af = malloc(mn * sizeof *af), *sf = malloc((size_t)p * sizeof *sf);
        if (!af || !sf) {
            info = LAPACK_WORK_MEMORY_ERROR;
        } else {
            memcpy(af, a, mn * sizeof *af);
            info = LAPACKE_sgesdd(LAPACK_COL_MAJOR, 'S', (lapack_int)n, (lapack_int)m, af, (lapack_int)n, sf, out->vt,
                                  (lapack_int)n, out->u, (lapack_int)p);
            for (int64_t i = 0; info == 0 && i < p; i++) out->s[i] = sf[i];
        }
        free(af);
        free(sf);
        st = lf_svd_info("sgesdd", info, m, n);
    }
    if (st != LF_OK) lf_svd_free(out);
    return st;
}

/* ---- randomized --------------------------------------------------------------------------------- */

static uint64_t lf_svd_splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void lf_svd_gaussian(float *x, size_t n, uint64_t seed) {
    uint64_t s = seed;
    for (size_t i = 0; i < n; i += 2) {
        double u1 = ((double)(lf_svd_splitmix(&s) >> 11) + 1.0) * 0x1p-53; /* (0, 1] */
        double u2 = (double)(lf_svd_splitmix(&s) >> 11) * 0x1p-53;
        double r = sqrt(-2.0 * log(u1)), t = 6.283185307179586 * u2;
        x[i] = (float)(r * cos(t));
        if (i + 1 < n) x[i + 1] = (float)(r * sin(t));
    }
}

/* Orthonormalise the l columns of the column-major (rows, l) block xt (= row-major (l, rows)). */
static lf_status lf_svd_orth(float *xt, int64_t rows, int64_t l, float *tau) {
    lapack_int info = LAPACKE_sgeqrf(LAPACK_COL_MAJOR, (lapack_int)rows, (lapack_int)l, xt, (lapack_int)rows, tau);
    if (info == 0)
        info = LAPACKE_sorgqr(LAPACK_COL_MAJOR, (lapack_int)rows, (lapack_int)l, (lapack_int)l, xt, (lapack_int)rows, tau);
    return lf_svd_info("sgeqrf/sorgqr", info, rows, l);
}

lf_status lf_svd_from_range(const float *qt, const float *b, int64_t m, int64_t n, int64_t l, lf_svd *out) {
    lf_svd sb;
    lf_status st = lf_svd_exact(b, l, n, &sb); /* B = Ub S Vt */
    if (st != LF_OK) return st;
    memset(out, 0, sizeof *out);
    out->u = malloc((size_t)(m * l) * sizeof *out->u);
    if (!out->u) {
        lf_svd_free(&sb);
        return lf_err(LF_ERR_NOMEM, "svd: out of memory for a (%lld, %lld) matrix", (long long)m, (long long)n);
    }
    /* U (m, l) = Q Ub, Q = Qt^T */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)m, (int)l, (int)l, 1.0f, qt, (int)m, sb.u, (int)l, 0.0f,
                out->u, (int)l);
    out->m = m;
    out->n = n;
    out->p = l;
    out->s = sb.s;
    out->vt = sb.vt;
    free(sb.u);
    return LF_OK;
}

lf_status lf_svd_randomized(const float *a, int64_t m, int64_t n, int64_t l, int q, uint64_t seed, lf_svd *out) {
    memset(out, 0, sizeof *out);
    lf_status st = lf_svd_dims(m, n);
    if (st != LF_OK) return st;
    int64_t p = m < n ? m : n;
    if (l < 1 || l > p || q < 0)
        return lf_err(LF_ERR_ARG, "svd: %lld columns and %d power iterations for a (%lld, %lld) matrix", (long long)l,
                      q, (long long)m, (long long)n);
    float *omt = malloc((size_t)(l * n) * sizeof *omt), *yt = malloc((size_t)(l * m) * sizeof *yt),
          *zt = malloc((size_t)(l * n) * sizeof *zt), *tau = malloc((size_t)l * sizeof *tau);
    if (!omt || !yt || !zt || !tau) {
        st = lf_err(LF_ERR_NOMEM, "svd: out of memory for a (%lld, %lld) matrix at %lld columns", (long long)m,
                    (long long)n, (long long)l);
        goto done;
    }
    const int M = (int)m, N = (int)n, L = (int)l;
    lf_svd_gaussian(omt, (size_t)(l * n), seed);
    /* Y^T (l, m) = Omega^T (l, n) A^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, M, N, 1.0f, omt, N, a, N, 0.0f, yt, M);
    st = lf_svd_orth(yt, m, l, tau);
    for (int it = 0; it < q && st == LF_OK; it++) {
        /* Z^T (l, n) = Q^T A, orthonormalised; Y^T (l, m) = Z^T A^T, orthonormalised */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, N, M, 1.0f, yt, M, a, N, 0.0f, zt, N);
        st = lf_svd_orth(zt, n, l, tau);
        if (st != LF_OK) break;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, M, N, 1.0f, zt, N, a, N, 0.0f, yt, M);
        st = lf_svd_orth(yt, m, l, tau);
    }
    if (st != LF_OK) goto done;
    /* B (l, n) = Q^T A */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, N, M, 1.0f, yt, M, a, N, 0.0f, zt, N);
    st = lf_svd_from_range(yt, zt, m, n, l, out);
done:
    free(omt);
    free(yt);
    free(zt);
    free(tau);
    return st;
}
