/* extract_module.c: one module of `lorafuse extract` (extract_internal.h): dW (rows, K) -> kohya factors.
 *
 *   dW = U S Vt                       exact (LAPACK gesdd) or randomized (kernels/cpu/linalg/lf_svd.h)
 *   r  = policy(S)                    kohya's resize_lora.py formulas (lf_extract_pick_rank)
 *   up = U[:, :r] diag(S[:r])         (rows, r)      kohya folds S into up (extract_lora_from_models.py)
 *   down = Vt[:r, :]                  (r, K)
 *   clamp (optional, kohya): both factors to [-h, h], h = the q-quantile of their values together
 *   rounded once to the output dtype; residual = ||dW - up . down||_F with the rounded factors.
 * The fraction kept, sqrt(sum_{i<r} S_i^2) / ||dW||_F, is kohya's "fro retained"; on the exact path
 * residual^2 = ||dW||_F^2 - kept^2 ||dW||_F^2 up to the rounding of the factors.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "extract_internal.h"
#include "host/base/util.h"
#include "kernels/cpu/linalg/lf_svd.h"

#define LF_X_MIN_SV 1e-6 /* kohya's MIN_SV: a spectrum below it is a zero matrix, rank 1 */

const char *lf_rank_policy_name(lf_rank_policy p) {
    switch (p) {
    case LF_RANK_FIXED: return "fixed";
    case LF_RANK_SV_RATIO: return "sv_ratio";
    case LF_RANK_SV_FRO: return "sv_fro";
    case LF_RANK_SV_CUMULATIVE: return "sv_cumulative";
    }
    return "?";
}

/* torch.searchsorted(cum, target) (left side) on the running sums of f(S_j) / total, clamped to
 * [0, p - 1] as resize_lora.py's index_sv_* do. */
static int64_t lf_first_reaching(const double *s, int64_t p, int squared, double total, double target) {
    double run = 0;
    for (int64_t i = 0; i < p; i++) {
        run += squared ? s[i] * s[i] : s[i];
        if (run / total >= target) return i;
    }
    return p - 1;
}

int lf_extract_pick_rank(const double *s, int64_t p, double total_sq, lf_rank_policy policy, double param, int cap) {
    if (p < 1) return 1;
    int64_t r = cap;
    switch (policy) {
    case LF_RANK_FIXED: break;
    case LF_RANK_SV_RATIO: {
        double min_sv = s[0] / param;
        int64_t above = 0;
        for (int64_t i = 0; i < p; i++) above += s[i] > min_sv;
        r = above < 1 ? 1 : above > p ? p : above; /* index = count - 1, clamped to [0, p - 1] */
        break;
    }
    case LF_RANK_SV_FRO: r = lf_first_reaching(s, p, 1, total_sq, param * param) + 1; break;
    case LF_RANK_SV_CUMULATIVE: {
        double sum = 0;
        for (int64_t i = 0; i < p; i++) sum += s[i];
        r = lf_first_reaching(s, p, 0, sum, param) + 1;
        break;
    }
    }
    if (s[0] <= LF_X_MIN_SV) return 1;
    return r > cap ? cap : (int)r;
}

int64_t lf_extract_width(const lf_xcfg *cfg, int cap) {
    int64_t os = cfg->oversample ? cfg->oversample : cap > LF_X_OVERSAMPLE_MIN ? cap : LF_X_OVERSAMPLE_MIN;
    return (int64_t)cap + os;
}

int lf_extract_use_randomized(const lf_xcfg *cfg, int64_t p, int cap) {
    if (cfg->svd == LF_SVD_RANDOMIZED) return 1;
    if (cfg->svd == LF_SVD_EXACT || cfg->policy == LF_RANK_SV_CUMULATIVE) return 0;
    /* the range finder costs ~2 (2q + 2) rows K l flops in GEMMs against ~4 rows K p + 8 p^3 for gesdd,
     * whose bidiagonalisation runs at matrix-vector speed: 10-30x faster on SD layers once l <= p / 4
     * (bench/RESULTS.md); below 256 the exact SVD takes milliseconds anyway */
    return p >= LF_X_RSVD_MIN_DIM && 4 * lf_extract_width(cfg, cap) <= p;
}

static int lf_cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* kohya extract_lora_from_models.py: h = torch.quantile(cat(up, down), q) (linear interpolation
 * between order statistics), both factors clamped to [-h, h]. */
static lf_status lf_clamp_quantile(float *up, int64_t nu, float *down, int64_t nd, double q, const char *name) {
    int64_t n = nu + nd;
    float *v = malloc((size_t)n * sizeof *v);
    if (!v) return lf_err(LF_ERR_NOMEM, "module '%s': out of memory for the clamp", name);
    memcpy(v, up, (size_t)nu * sizeof *v);
    memcpy(v + nu, down, (size_t)nd * sizeof *v);
    qsort(v, (size_t)n, sizeof *v, lf_cmp_float);
    double pos = q * (double)(n - 1);
    int64_t lo = (int64_t)floor(pos), hi_i = lo + 1 < n ? lo + 1 : lo;
    float h = (float)((double)v[lo] + ((double)v[hi_i] - (double)v[lo]) * (pos - (double)lo));
    free(v);
    for (int64_t i = 0; i < nu; i++) up[i] = up[i] > h ? h : up[i] < -h ? -h : up[i];
    for (int64_t i = 0; i < nd; i++) down[i] = down[i] > h ? h : down[i] < -h ? -h : down[i];
    return LF_OK;
}

/* Round x (n values) to the output dtype into a new buffer *out, and x to what was stored. */
static lf_status lf_store(float *x, int64_t n, lf_dtype dt, void **out, const char *name) {
    *out = malloc((size_t)n * (lf_dtype_bits(dt) / 8) + 1);
    if (!*out) return lf_err(LF_ERR_NOMEM, "module '%s': out of memory", name);
    lf_status st = lf_f32_to_dtype(x, n, dt, *out);
    if (st == LF_OK && dt != LF_F32) {
        lf_view v;
        memset(&v, 0, sizeof v);
        v.data = *out;
        v.dtype = dt;
        v.ndim = 1;
        v.shape[0] = n;
        st = lf_view_to_f32(&v, x);
    }
    return st;
}

static uint64_t lf_name_seed(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The SVD of dw (O, K): the caller's (cfg->svd_fn) or the CPU's; l = 0 exact, else randomized. */
static lf_status lf_extract_svd(const lf_xcfg *cfg, const float *dw, int64_t O, int64_t K, int64_t l, uint64_t seed,
                                lf_svd *s) {
    if (!cfg->svd_fn)
        return l ? lf_svd_randomized(dw, O, K, l, cfg->power_iters, seed, s) : lf_svd_exact(dw, O, K, s);
    int64_t p = l ? l : (O < K ? O : K);
    memset(s, 0, sizeof *s);
    s->m = O;
    s->n = K;
    s->p = p;
    s->s = malloc((size_t)p * sizeof *s->s);
    s->u = malloc((size_t)(O * p) * sizeof *s->u);
    s->vt = malloc((size_t)(p * K) * sizeof *s->vt);
    lf_status st = !s->s || !s->u || !s->vt ? lf_err(LF_ERR_NOMEM, "out of memory for the SVD")
                                             : cfg->svd_fn(cfg->svd_ctx, dw, O, K, l, l ? cfg->power_iters : 0, seed,
                                                           s->s, s->u, s->vt);
    if (st != LF_OK) lf_svd_free(s);
    return st;
}

lf_status lf_extract_module(const lf_xcfg *cfg, float *dw, lf_xmod *m) {
    double t0 = lf_clock_s();
    int64_t O = m->rows, K = m->K, n = O * K, p = O < K ? O : K;
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)dw[i] * dw[i];
    m->norm = sqrt(ss);
    if (ss == 0.0) {
        m->zero = 1;
        return LF_OK;
    }
    lf_svd s;
    m->randomized = lf_extract_use_randomized(cfg, p, m->cap);
    lf_status st;
    if (m->randomized) {
        int64_t l = lf_extract_width(cfg, m->cap);
        st = lf_extract_svd(cfg, dw, O, K, l < p ? l : p, lf_name_seed(m->name), &s);
    } else {
        st = lf_extract_svd(cfg, dw, O, K, 0, 0, &s);
    }
    if (st != LF_OK) return lf_err_wrap(st, "module '%s' (%lld, %lld): ", m->name, (long long)O, (long long)K);
    /* kohya's policies divide by sum S^2 of the full spectrum; the randomized path only has the top
     * values, and ||dW||_F^2 is that sum */
    double total = 0;
    for (int64_t i = 0; i < s.p; i++) total += s.s[i] * s.s[i];
    int r = lf_extract_pick_rank(s.s, s.p, m->randomized ? ss : total, cfg->policy, cfg->param, m->cap);
    if (r > s.p) r = (int)s.p;
    double kept = 0;
    for (int i = 0; i < r; i++) kept += s.s[i] * s.s[i];
    m->kept = fmin(1.0, sqrt(kept / ss));
    m->rank = r;

    float *up = malloc((size_t)(O * r) * sizeof *up), *down = malloc((size_t)(r * K) * sizeof *down);
    if (!up || !down) st = lf_err(LF_ERR_NOMEM, "module '%s': out of memory for rank-%d factors", m->name, r);
    for (int64_t i = 0; st == LF_OK && i < O; i++)
        for (int j = 0; j < r; j++) up[i * r + j] = (float)((double)s.u[i * s.p + j] * s.s[j]);
    if (st == LF_OK) memcpy(down, s.vt, (size_t)(r * K) * sizeof *down);
    lf_svd_free(&s);
    if (st == LF_OK && cfg->clamp > 0) st = lf_clamp_quantile(up, O * r, down, (int64_t)r * K, cfg->clamp, m->name);
    if (st == LF_OK) st = lf_store(up, O * r, cfg->dtype, &m->up, m->name);
    if (st == LF_OK) st = lf_store(down, (int64_t)r * K, cfg->dtype, &m->down, m->name);
    if (st == LF_OK) {
        /* dw -= up . down, with the factors as stored */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)O, (int)K, r, -1.0f, up, r, down, (int)K, 1.0f, dw,
                    (int)K);
        double rr = 0;
        for (int64_t i = 0; i < n; i++) rr += (double)dw[i] * dw[i];
        m->residual = sqrt(rr);
    }
    free(up);
    free(down);
    m->t_svd = lf_clock_s() - t0;
    return st;
}
