/* norm.c: GroupNorm and LayerNorm (torch.nn.GroupNorm / LayerNorm, biased variance).
 *
 *   GroupNorm  x (N, C, S), S = H*W, C in `groups` groups of C/groups channels, gamma/beta (C):
 *              per (n, group) over its C/groups * S values: mean, var = mean((x - mean)^2),
 *              y = (x - mean) * rstd * gamma[c] + beta[c],  rstd = 1 / sqrt(var + eps)
 *   LayerNorm  x (M, D), gamma/beta (D): the same per row over its D values
 *   gamma/beta may be NULL (1 and 0); in place allowed.
 *
 * mean, var and rstd are computed in double (sums in 8 lanes added in a fixed order,
 * lf_nn_sum_d / lf_nn_sqdev_d), then rounded to f32 once; the normalisation itself is f32.
 * Threads: a chunk is a run of whole (sample, group) pairs or whole rows, so every reduction lies
 * inside one chunk and the bytes do not depend on the thread count (nn_internal.h).
 * Test: tests/kernels/test_nn.c (ctest -R nn).
 */
#include <math.h>

#include "lf_nn.h"
#include "nn_internal.h"

/* Sum and sum of squared deviations of v[0..n) in double, 8 lanes in a fixed order. */
static double lf_nn_sum_d(const float *v, int64_t n) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += (double)v[i + l];
    for (; i < n; i++) acc[0] += (double)v[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static double lf_nn_sqdev_d(const float *v, int64_t n, double mean) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) {
            double dv = (double)v[i + l] - mean;
            acc[l] += dv * dv;
        }
    for (; i < n; i++) {
        double dv = (double)v[i] - mean;
        acc[0] += dv * dv;
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

typedef struct {
    float *y;
    const float *x, *gamma, *beta;
    int64_t C, S, groups, D;
    float eps;
} lf_nn_norm_ctx;

static void lf_nn_group_norm_chunk(void *vc, int64_t i0, int64_t i1, int tid) {
    const lf_nn_norm_ctx *c = vc;
    (void)tid;
    int64_t cg = c->C / c->groups, S = c->S;
    for (int64_t i = i0; i < i1; i++) { /* i = n * groups + g */
        int64_t n = i / c->groups, g = i % c->groups;
        const float *xg = c->x + (n * c->C + g * cg) * S;
        float *yg = c->y + (n * c->C + g * cg) * S;
        int64_t cnt = cg * S;
        double mean = lf_nn_sum_d(xg, cnt) / (double)cnt;
        double var = lf_nn_sqdev_d(xg, cnt, mean) / (double)cnt;
        float fmean = (float)mean;
        float rstd = (float)(1.0 / sqrt(var + (double)c->eps));
        for (int64_t ch = 0; ch < cg; ch++) {
            float ga = c->gamma ? c->gamma[g * cg + ch] : 1.0f;
            float be = c->beta ? c->beta[g * cg + ch] : 0.0f;
            const float *xs = xg + ch * S;
            float *ys = yg + ch * S;
            for (int64_t s = 0; s < S; s++) ys[s] = (xs[s] - fmean) * rstd * ga + be;
        }
    }
}

void lf_nn_group_norm(float *y, const float *x, const float *gamma, const float *beta, int64_t N,
                      int64_t C, int64_t S, int64_t groups, float eps) {
    lf_nn_norm_ctx c = {y, x, gamma, beta, C, S, groups, 0, eps};
    int64_t per = C / groups * S, grain = LF_NN_EW_GRAIN / (per > 0 ? per : 1);
    lf_par_for(N * groups, grain < 1 ? 1 : grain, lf_nn_group_norm_chunk, &c);
}

static void lf_nn_layer_norm_chunk(void *vc, int64_t i0, int64_t i1, int tid) {
    const lf_nn_norm_ctx *c = vc;
    (void)tid;
    int64_t D = c->D;
    for (int64_t m = i0; m < i1; m++) {
        const float *xr = c->x + m * D;
        float *yr = c->y + m * D;
        double mean = lf_nn_sum_d(xr, D) / (double)D;
        double var = lf_nn_sqdev_d(xr, D, mean) / (double)D;
        float fmean = (float)mean;
        float rstd = (float)(1.0 / sqrt(var + (double)c->eps));
        if (c->gamma && c->beta) {
            for (int64_t i = 0; i < D; i++) yr[i] = (xr[i] - fmean) * rstd * c->gamma[i] + c->beta[i];
        } else {
            for (int64_t i = 0; i < D; i++)
                yr[i] = (xr[i] - fmean) * rstd * (c->gamma ? c->gamma[i] : 1.0f) + (c->beta ? c->beta[i] : 0.0f);
        }
    }
}

void lf_nn_layer_norm(float *y, const float *x, const float *gamma, const float *beta, int64_t M,
                      int64_t D, float eps) {
    lf_nn_norm_ctx c = {y, x, gamma, beta, 0, 0, 1, D, eps};
    int64_t grain = LF_NN_EW_GRAIN / (D > 0 ? D : 1);
    lf_par_for(M, grain < 1 ? 1 : grain, lf_nn_layer_norm_chunk, &c);
}
