/* sampler.c: the sampling loops of lf_sampler.h, step for step as diffusers 0.30's schedulers
 * (scheduler.step) and StableDiffusionPipeline's denoising loop run them.
 *
 * Arithmetic mirrors torch's: the per-step scalars (sigma, alpha_t, lambda, h, ...) are 0-d float32
 * tensors in diffusers and are float here, evaluated in the same order; the element-wise updates are
 * float with the same operation order (the build has no FMA contraction), so the loops follow diffusers
 * to a few float32 ulps per step. UniPC's 2x2 solve runs in double (torch.linalg.solve in float32).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sampler_internal.h"

void lf_sampler_init_latent(const lf_sampler *s, lf_rng *rng, float *x, size_t n) {
    lf_rng_randn(rng, x, n);
    float k = s->init_sigma;
    for (size_t i = 0; i < n; i++) x[i] = x[i] * k;
}

typedef struct run_ctx {
    lf_sampler *s;
    const lf_sampler_cb *cb;
    size_t n;
    float *xin;  /* model input */
    float *out;  /* model output */
    int last_step;
    lf_rng *rngs; /* noise sources: n_rngs equal chunks of the latent */
    int n_rngs;
} run_ctx;

/* one randn per step over the latent: one call per chunk, chunk k from rngs[k] */
static void draw_noise(run_ctx *c, float *noise) {
    size_t chunk = c->n / (size_t)c->n_rngs;
    for (int k = 0; k < c->n_rngs; k++) lf_rng_randn(&c->rngs[k], noise + (size_t)k * chunk, chunk);
}

/* before_step once per user step, then the model on x (scaled for the sigma-space samplers) */
static lf_status eval(run_ctx *c, int step, const float *x, float sigma, float t, int scale) {
    lf_status st;
    if (step != c->last_step) {
        c->last_step = step;
        if (c->cb->before_step && (st = c->cb->before_step(c->cb->ctx, step)) != LF_OK) return st;
    }
    const float *in = x;
    if (scale) {
        float d = sqrtf(sigma * sigma + 1.0f);
        for (size_t i = 0; i < c->n; i++) c->xin[i] = x[i] / d;
        in = c->xin;
    }
    return c->cb->denoise(c->cb->ctx, step, in, sigma, t, c->out);
}

/* x0 prediction of the sigma-space (Euler / Heun) samplers, into dst */
static void x0_sigma_space(lf_prediction p, const float *x, const float *out, float sigma, float *dst, size_t n) {
    if (p == LF_PRED_EPSILON) {
        for (size_t i = 0; i < n; i++) dst[i] = x[i] - sigma * out[i];
    } else {
        float c_out = -sigma / sqrtf(sigma * sigma + 1.0f);
        float c_in = sigma * sigma + 1.0f;
        for (size_t i = 0; i < n; i++) dst[i] = out[i] * c_out + x[i] / c_in;
    }
}

static lf_status run_euler(run_ctx *c, float *x, float *x0, float *noise) {
    lf_sampler *s = c->s;
    lf_status st;
    size_t n = c->n;
    int ancestral = s->cfg.kind == LF_SAMPLER_EULER_A;
    for (int i = 0; i < s->n_steps; i++) {
        float sigma = s->sigmas[i], next = s->sigmas[i + 1];
        if ((st = eval(c, i + 1, x, sigma, s->timesteps[i], 1)) != LF_OK) return st;
        x0_sigma_space(s->cfg.prediction, x, c->out, sigma, x0, n);
        if (!ancestral) {
            float dt = next - sigma;
            for (size_t j = 0; j < n; j++) {
                float d = (x[j] - x0[j]) / sigma;
                x[j] = x[j] + d * dt;
            }
        } else {
            float up = sqrtf(next * next * (sigma * sigma - next * next) / (sigma * sigma));
            float down = sqrtf(next * next - up * up);
            float dt = down - sigma;
            for (size_t j = 0; j < n; j++) {
                float d = (x[j] - x0[j]) / sigma;
                x[j] = x[j] + d * dt;
            }
            draw_noise(c, noise);
            for (size_t j = 0; j < n; j++) x[j] = x[j] + noise[j] * up;
        }
    }
    return LF_OK;
}

static lf_status run_heun(run_ctx *c, float *x, float *x0, float *deriv, float *saved) {
    lf_sampler *s = c->s;
    lf_status st;
    size_t n = c->n;
    for (int e = 0; e < s->n_evals; e++) {
        int first = (e % 2) == 0;
        int step = e / 2 + 1;
        float sig_in = s->sigmas[e];
        if ((st = eval(c, step, x, sig_in, s->timesteps[e], 1)) != LF_OK) return st;
        if (first) {
            float sigma = s->sigmas[e], next = s->sigmas[e + 1];
            x0_sigma_space(s->cfg.prediction, x, c->out, sigma, x0, n);
            float dt = next - sigma;
            for (size_t j = 0; j < n; j++) {
                deriv[j] = (x[j] - x0[j]) / sigma;
                saved[j] = x[j];
                x[j] = x[j] + deriv[j] * dt;
            }
        } else {
            float sigma = s->sigmas[e - 1], next = s->sigmas[e];
            x0_sigma_space(s->cfg.prediction, x, c->out, next, x0, n);
            float dt = next - sigma;
            for (size_t j = 0; j < n; j++) {
                float d2 = (x[j] - x0[j]) / next;
                float d = (deriv[j] + d2) / 2.0f;
                x[j] = saved[j] + d * dt;
            }
        }
    }
    return LF_OK;
}

static lf_status run_ddim(run_ctx *c, float *x) {
    lf_sampler *s = c->s;
    lf_status st;
    size_t n = c->n;
    int N = s->n_steps, T = s->cfg.num_train_timesteps;
    for (int i = 0; i < N; i++) {
        int t = s->ddim_t[i], prev = t - T / N;
        float a = s->acp[t];
        float a_prev = prev >= 0 ? s->acp[prev] : s->acp[0]; /* set_alpha_to_one = False */
        float b = 1.0f - a;
        if ((st = eval(c, i + 1, x, s->sigmas[i], (float)t, 0)) != LF_OK) return st;
        float sa = sqrtf(a), sb = sqrtf(b), sap = sqrtf(a_prev), dir = sqrtf(1.0f - a_prev - 0.0f);
        for (size_t j = 0; j < n; j++) {
            float o = c->out[j], x0, eps;
            if (s->cfg.prediction == LF_PRED_EPSILON) {
                x0 = (x[j] - sb * o) / sa;
                eps = o;
            } else {
                x0 = sa * x[j] - sb * o;
                eps = sa * o + sb * x[j];
            }
            x[j] = sap * x0 + dir * eps;
        }
    }
    return LF_OK;
}

/* alpha_t, sigma_t of the VP parametrisation and lambda = log alpha - log sigma (float, as diffusers) */
static void vp(float sigma, float *alpha_t, float *sigma_t, float *lambda) {
    float a = 1.0f / sqrtf(sigma * sigma + 1.0f);
    float st = sigma * a;
    *alpha_t = a;
    *sigma_t = st;
    if (lambda) *lambda = logf(a) - logf(st);
}

/* data prediction x0 of the multistep solvers */
static void x0_vp(lf_prediction p, const float *x, const float *out, float sigma, float *dst, size_t n) {
    float a, st;
    vp(sigma, &a, &st, NULL);
    if (p == LF_PRED_EPSILON) {
        for (size_t i = 0; i < n; i++) dst[i] = (x[i] - st * out[i]) / a;
    } else {
        for (size_t i = 0; i < n; i++) dst[i] = a * x[i] - st * out[i];
    }
}

static lf_status run_dpm(run_ctx *c, float *x, float *m_prev, float *m_cur, float *noise) {
    lf_sampler *s = c->s;
    lf_status st;
    size_t n = c->n;
    int N = s->n_steps, sde = s->cfg.kind == LF_SAMPLER_DPMPP_2M_SDE;
    for (int i = 0; i < N; i++) {
        float sigma = s->sigmas[i], next = s->sigmas[i + 1];
        if ((st = eval(c, i + 1, x, sigma, s->timesteps[i], 0)) != LF_OK) return st;
        float *tmp = m_prev;
        m_prev = m_cur;
        m_cur = tmp;
        x0_vp(s->cfg.prediction, x, c->out, sigma, m_cur, n);
        if (sde) draw_noise(c, noise);
        int first_order = i == 0 || i == N - 1; /* warm-up, and lower_order_final (final sigma 0) */
        if (next == 0.0f) { /* lambda_t = inf: the update is the data prediction itself */
            memcpy(x, m_cur, n * sizeof *x);
            continue;
        }
        float a_t, s_t, l_t, a_s0, s_s0, l_s0;
        vp(next, &a_t, &s_t, &l_t);
        vp(sigma, &a_s0, &s_s0, &l_s0);
        float h = l_t - l_s0;
        if (!sde) {
            float c1 = s_t / s_s0, c2 = a_t * (expf(-h) - 1.0f);
            if (first_order) {
                for (size_t j = 0; j < n; j++) x[j] = c1 * x[j] - c2 * m_cur[j];
            } else {
                float a_s1, s_s1, l_s1;
                vp(s->sigmas[i - 1], &a_s1, &s_s1, &l_s1);
                float h0 = l_s0 - l_s1, r0 = h0 / h, inv_r0 = 1.0f / r0, c3 = 0.5f * c2;
                for (size_t j = 0; j < n; j++) {
                    float d1 = inv_r0 * (m_cur[j] - m_prev[j]);
                    x[j] = c1 * x[j] - c2 * m_cur[j] - c3 * d1;
                }
            }
        } else {
            float e2 = expf(-2.0f * h);
            float c1 = s_t / s_s0 * expf(-h), c2 = a_t * (1.0f - e2), cn = s_t * sqrtf(1.0f - e2);
            if (first_order) {
                for (size_t j = 0; j < n; j++) x[j] = c1 * x[j] + c2 * m_cur[j] + cn * noise[j];
            } else {
                float a_s1, s_s1, l_s1;
                vp(s->sigmas[i - 1], &a_s1, &s_s1, &l_s1);
                float h0 = l_s0 - l_s1, r0 = h0 / h, inv_r0 = 1.0f / r0, c3 = 0.5f * c2;
                for (size_t j = 0; j < n; j++) {
                    float d1 = inv_r0 * (m_cur[j] - m_prev[j]);
                    x[j] = c1 * x[j] + c2 * m_cur[j] + c3 * d1 + cn * noise[j];
                }
            }
        }
    }
    return LF_OK;
}

/* UniPC (bh2, solver order 2, predict_x0, lower_order_final, no disabled corrector) */
static lf_status run_unipc(run_ctx *c, float *x, float *bufs[3], float *last) {
    lf_sampler *s = c->s;
    lf_status st;
    size_t n = c->n;
    int N = s->n_steps, this_order = 1, lower_order_nums = 0;
    float *m_older = bufs[0], *m_old = bufs[1], *m_new = bufs[2];
    for (int i = 0; i < N; i++) {
        float sigma = s->sigmas[i];
        if ((st = eval(c, i + 1, x, sigma, s->timesteps[i], 0)) != LF_OK) return st;
        x0_vp(s->cfg.prediction, x, c->out, sigma, m_new, n); /* with the uncorrected sample */
        if (i > 0) { /* UniC: correct x (predicted from `last` at step i - 1) with the new output */
            float a_t, s_t, l_t, a_s0, s_s0, l_s0;
            vp(sigma, &a_t, &s_t, &l_t);
            vp(s->sigmas[i - 1], &a_s0, &s_s0, &l_s0);
            float h = l_t - l_s0, hh = -h;
            float h_phi_1 = expm1f(hh), B_h = expm1f(hh);
            float c1 = s_t / s_s0, c2 = a_t * h_phi_1, cb = a_t * B_h;
            if (this_order == 1) {
                const float rho = 0.5f;
                for (size_t j = 0; j < n; j++) {
                    float xt_ = c1 * last[j] - c2 * m_old[j];
                    float d1t = m_new[j] - m_old[j];
                    x[j] = xt_ - cb * (0.0f + rho * d1t);
                }
            } else {
                float a_s1, s_s1, l_s1;
                vp(s->sigmas[i - 2], &a_s1, &s_s1, &l_s1);
                float rk = (l_s1 - l_s0) / h;
                float hpk = h_phi_1 / hh - 1.0f;
                float b0 = hpk * 1.0f / B_h;
                hpk = hpk / hh - 1.0f / 2.0f;
                float b1 = hpk * 2.0f / B_h;
                /* R = [[1, 1], [rk, 1]]; rhos_c = R^-1 b */
                double r0d = ((double)b0 - (double)b1) / (1.0 - (double)rk);
                float r0 = (float)r0d, r1 = (float)((double)b0 - r0d);
                for (size_t j = 0; j < n; j++) {
                    float xt_ = c1 * last[j] - c2 * m_old[j];
                    float d1 = (m_older[j] - m_old[j]) / rk;
                    float d1t = m_new[j] - m_old[j];
                    x[j] = xt_ - cb * (r0 * d1 + r1 * d1t);
                }
            }
        }
        float *freed = m_older;
        m_older = m_old;
        m_old = m_new;
        m_new = freed;
        int order = N - i < 2 ? N - i : 2;
        this_order = order < lower_order_nums + 1 ? order : lower_order_nums + 1;
        memcpy(last, x, n * sizeof *x);
        /* UniP: predict the next sample */
        float next = s->sigmas[i + 1];
        if (next == 0.0f) {
            memcpy(x, m_old, n * sizeof *x);
        } else {
            float a_t, s_t, l_t, a_s0, s_s0, l_s0;
            vp(next, &a_t, &s_t, &l_t);
            vp(sigma, &a_s0, &s_s0, &l_s0);
            float h = l_t - l_s0, hh = -h;
            float h_phi_1 = expm1f(hh), B_h = expm1f(hh);
            float c1 = s_t / s_s0, c2 = a_t * h_phi_1, cb = a_t * B_h;
            if (this_order == 1) {
                for (size_t j = 0; j < n; j++) x[j] = c1 * x[j] - c2 * m_old[j];
            } else {
                float a_s1, s_s1, l_s1;
                vp(s->sigmas[i - 1], &a_s1, &s_s1, &l_s1);
                float rk = (l_s1 - l_s0) / h;
                const float rho = 0.5f;
                for (size_t j = 0; j < n; j++) {
                    float xt_ = c1 * x[j] - c2 * m_old[j];
                    float d1 = (m_older[j] - m_old[j]) / rk;
                    x[j] = xt_ - cb * (rho * d1);
                }
            }
        }
        if (lower_order_nums < 2) lower_order_nums++;
    }
    return LF_OK;
}

lf_status lf_sampler_run(lf_sampler *s, float *x, size_t n, lf_rng *rng, const lf_sampler_cb *cb) {
    return lf_sampler_run_rngs(s, x, n, rng, rng ? 1 : 0, cb);
}

lf_status lf_sampler_run_rngs(lf_sampler *s, float *x, size_t n, lf_rng *rngs, int n_rngs, const lf_sampler_cb *cb) {
    if (!s || !x || !cb || !cb->denoise || n == 0) return lf_err(LF_ERR_ARG, "sampler: bad arguments");
    if (n_rngs < 0 || (n_rngs > 0 && (!rngs || n % (size_t)n_rngs != 0)))
        return lf_err(LF_ERR_ARG, "sampler: %zu latent values do not split into %d noise chunks", n, n_rngs);
    lf_sampler_kind k = s->cfg.kind;
    int stochastic = k == LF_SAMPLER_EULER_A || k == LF_SAMPLER_DPMPP_2M_SDE;
    if (stochastic && n_rngs == 0)
        return lf_err(LF_ERR_ARG, "sampler: %s needs a random generator for its noise", lf_sampler_config_name(&s->cfg));
    int nbuf = 2 + 4; /* xin, out, up to four work buffers */
    float *mem = malloc((size_t)nbuf * n * sizeof *mem);
    if (!mem) return lf_err(LF_ERR_NOMEM, "sampler: out of memory (%zu floats)", (size_t)nbuf * n);
    run_ctx c = {s, cb, n, mem, mem + n, 0, rngs, n_rngs};
    float *w0 = mem + 2 * n, *w1 = mem + 3 * n, *w2 = mem + 4 * n, *w3 = mem + 5 * n;
    lf_status st = LF_OK;
    switch (k) {
    case LF_SAMPLER_EULER:
    case LF_SAMPLER_EULER_A: st = run_euler(&c, x, w0, w1); break;
    case LF_SAMPLER_HEUN: st = run_heun(&c, x, w0, w1, w2); break;
    case LF_SAMPLER_DDIM: st = run_ddim(&c, x); break;
    case LF_SAMPLER_DPMPP_2M:
    case LF_SAMPLER_DPMPP_2M_SDE: st = run_dpm(&c, x, w0, w1, w2); break;
    case LF_SAMPLER_UNIPC: {
        float *bufs[3] = {w0, w1, w2};
        st = run_unipc(&c, x, bufs, w3);
        break;
    }
    default: st = lf_err(LF_ERR_ARG, "sampler: unknown kind %d", (int)k);
    }
    free(mem);
    return st;
}
