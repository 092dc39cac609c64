/* sampler.c: the sampling loops of lf_sampler.h, step for step as diffusers 0.30's schedulers
 * (scheduler.step) and StableDiffusionPipeline's denoising loop run them, on a compute
 * (sampler_compute.h): the per-step scalars here on the host, the element-wise updates by the
 * compute's sample_update (kernels/common/lf_sample_update.h, one formula for the CPU and the device).
 *
 * Arithmetic mirrors torch's: the per-step scalars (sigma, alpha_t, lambda, h, ...) are 0-d float32
 * tensors in diffusers and are float here, evaluated in the same order; the element-wise updates are
 * float with the same operation order (the build has no FMA contraction), so the loops follow diffusers
 * to a few float32 ulps per step. UniPC's 2x2 solve runs in double (torch.linalg.solve in float32).
 * Only the noise of the stochastic samplers is made here: drawn on the host per step (the CPU
 * generators, so a seed gives one picture on every backend) and copied to the compute (n floats).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/runtime/compute_cpu.h"
#include "sampler_compute.h"
#include "sampler_internal.h"

void lf_sampler_init_latent(const lf_sampler *s, lf_rng *rng, float *x, size_t n) {
    lf_rng_randn(rng, x, n);
    float k = s->init_sigma;
    for (size_t i = 0; i < n; i++) x[i] = x[i] * k;
}

typedef struct run_ctx {
    lf_sampler *s;
    lf_compute *c;
    const lf_sampler_cb *cb;
    size_t n;
    float *xin;   /* model input */
    float *out;   /* model output */
    float *hnoise; /* the noise drawn on the host (the compute's noise buffer itself on host memory) */
    int last_step;
    lf_rng *rngs; /* noise sources: n_rngs equal chunks of the latent */
    int n_rngs;
    int vflag;    /* LF_SU_V_PRED for a v-prediction model */
} run_ctx;

/* one randn per step over the latent: one call per chunk, chunk k from rngs[k], drawn on the host and
 * copied to the compute's buffer noise */
static lf_status draw_noise(run_ctx *c, float *noise) {
    size_t chunk = c->n / (size_t)c->n_rngs;
    float *h = c->hnoise ? c->hnoise : noise;
    for (int k = 0; k < c->n_rngs; k++) lf_rng_randn(&c->rngs[k], h + (size_t)k * chunk, chunk);
    return c->hnoise ? c->c->upload(c->c, noise, h, (int64_t)c->n) : LF_OK;
}

/* update op (flags, scalars k[0 .. nk)) on the buffers b0.. (NULL past the op's count) */
static lf_status upd(run_ctx *c, int op, int flags, const float *k, int nk, float *b0, float *b1, float *b2, float *b3,
                     float *b4) {
    lf_sample_upd u;
    memset(&u, 0, sizeof u);
    u.op = op;
    u.flags = flags | c->vflag;
    for (int i = 0; i < nk; i++) u.k[i] = k[i];
    float *b[LF_SU_BUFS] = {b0, b1, b2, b3, b4, NULL};
    return c->c->sample_update(c->c, &u, b, (int64_t)c->n);
}

/* before_step once per user step, then the model on x (scaled for the sigma-space samplers) */
static lf_status eval(run_ctx *c, int step, float *x, float sigma, float t, int scale) {
    lf_status st;
    if (step != c->last_step) {
        c->last_step = step;
        if (c->cb->before_step && (st = c->cb->before_step(c->cb->ctx, step)) != LF_OK) return st;
    }
    const float *in = x;
    if (scale) {
        float d = sqrtf(sigma * sigma + 1.0f);
        if ((st = upd(c, LF_SU_SCALE_IN, 0, &d, 1, c->xin, x, NULL, NULL, NULL)) != LF_OK) return st;
        in = c->xin;
    }
    return c->cb->denoise(c->cb->ctx, step, in, sigma, t, c->out);
}

/* the scalars of the sigma-space x0 (lf_su_x0_sigma) at sigma: k = {sigma, c_out, c_in} */
static void k_sigma(float sigma, float *k) {
    k[0] = sigma;
    k[1] = -sigma / sqrtf(sigma * sigma + 1.0f);
    k[2] = sigma * sigma + 1.0f;
}

static lf_status run_euler(run_ctx *c, float *x, float *noise) {
    lf_sampler *s = c->s;
    lf_status st;
    int ancestral = s->cfg.kind == LF_SAMPLER_EULER_A;
    for (int i = 0; i < s->n_steps; i++) {
        float sigma = s->sigmas[i], next = s->sigmas[i + 1];
        if ((st = eval(c, i + 1, x, sigma, s->timesteps[i], 1)) != LF_OK) return st;
        float k[5];
        k_sigma(sigma, k);
        k[4] = 0.0f;
        if (!ancestral) {
            k[3] = next - sigma;
        } else {
            float up = sqrtf(next * next * (sigma * sigma - next * next) / (sigma * sigma));
            float down = sqrtf(next * next - up * up);
            k[3] = down - sigma;
            k[4] = up;
            if ((st = draw_noise(c, noise)) != LF_OK) return st;
        }
        st = upd(c, LF_SU_EULER, ancestral ? LF_SU_NOISE : 0, k, 5, x, c->out, ancestral ? noise : NULL, NULL, NULL);
        if (st != LF_OK) return st;
    }
    return LF_OK;
}

static lf_status run_heun(run_ctx *c, float *x, float *deriv, float *saved) {
    lf_sampler *s = c->s;
    lf_status st;
    for (int e = 0; e < s->n_evals; e++) {
        int first = (e % 2) == 0;
        int step = e / 2 + 1;
        float sig_in = s->sigmas[e];
        if ((st = eval(c, step, x, sig_in, s->timesteps[e], 1)) != LF_OK) return st;
        /* first: from sigma to next; second: x0 at next, the step from sigma again */
        float sigma = first ? s->sigmas[e] : s->sigmas[e - 1], next = first ? s->sigmas[e + 1] : s->sigmas[e];
        float k[4];
        k_sigma(first ? sigma : next, k);
        k[3] = next - sigma;
        if ((st = upd(c, first ? LF_SU_HEUN1 : LF_SU_HEUN2, 0, k, 4, x, c->out, deriv, saved, NULL)) != LF_OK) return st;
    }
    return LF_OK;
}

static lf_status run_ddim(run_ctx *c, float *x) {
    lf_sampler *s = c->s;
    lf_status st;
    int N = s->n_steps, T = s->cfg.num_train_timesteps;
    for (int i = 0; i < N; i++) {
        int t = s->ddim_t[i], prev = t - T / N;
        float a = s->acp[t];
        float a_prev = prev >= 0 ? s->acp[prev] : s->acp[0]; /* set_alpha_to_one = False */
        float b = 1.0f - a;
        if ((st = eval(c, i + 1, x, s->sigmas[i], (float)t, 0)) != LF_OK) return st;
        float k[4] = {sqrtf(a), sqrtf(b), sqrtf(a_prev), sqrtf(1.0f - a_prev - 0.0f)};
        if ((st = upd(c, LF_SU_DDIM, 0, k, 4, x, c->out, NULL, NULL, NULL)) != LF_OK) return st;
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

/* data prediction x0 of the multistep solvers at sigma, into dst */
static lf_status x0_vp(run_ctx *c, const float *x, float sigma, float *dst) {
    float k[2];
    vp(sigma, &k[0], &k[1], NULL);
    return upd(c, LF_SU_X0_VP, 0, k, 2, dst, (float *)x, c->out, NULL, NULL);
}

static lf_status run_dpm(run_ctx *c, float *x, float *m_prev, float *m_cur, float *noise) {
    lf_sampler *s = c->s;
    lf_status st;
    int N = s->n_steps, sde = s->cfg.kind == LF_SAMPLER_DPMPP_2M_SDE;
    for (int i = 0; i < N; i++) {
        float sigma = s->sigmas[i], next = s->sigmas[i + 1];
        if ((st = eval(c, i + 1, x, sigma, s->timesteps[i], 0)) != LF_OK) return st;
        float *tmp = m_prev;
        m_prev = m_cur;
        m_cur = tmp;
        if ((st = x0_vp(c, x, sigma, m_cur)) != LF_OK) return st;
        if (sde && (st = draw_noise(c, noise)) != LF_OK) return st;
        int first_order = i == 0 || i == N - 1; /* warm-up, and lower_order_final (final sigma 0) */
        if (next == 0.0f) { /* lambda_t = inf: the update is the data prediction itself */
            if ((st = upd(c, LF_SU_COPY, 0, NULL, 0, x, m_cur, NULL, NULL, NULL)) != LF_OK) return st;
            continue;
        }
        float a_t, s_t, l_t, a_s0, s_s0, l_s0;
        vp(next, &a_t, &s_t, &l_t);
        vp(sigma, &a_s0, &s_s0, &l_s0);
        float h = l_t - l_s0;
        float k[5] = {0}; /* c1, c2, c3, 1 / r0, c_noise */
        if (!sde) {
            k[0] = s_t / s_s0, k[1] = a_t * (expf(-h) - 1.0f);
        } else {
            float e2 = expf(-2.0f * h);
            k[0] = s_t / s_s0 * expf(-h), k[1] = a_t * (1.0f - e2), k[4] = s_t * sqrtf(1.0f - e2);
        }
        if (!first_order) {
            float a_s1, s_s1, l_s1;
            vp(s->sigmas[i - 1], &a_s1, &s_s1, &l_s1);
            float h0 = l_s0 - l_s1, r0 = h0 / h;
            k[3] = 1.0f / r0, k[2] = 0.5f * k[1];
        }
        int flags = (sde ? LF_SU_SDE : 0) | (first_order ? 0 : LF_SU_SECOND);
        if ((st = upd(c, LF_SU_DPM, flags, k, 5, x, m_cur, m_prev, sde ? noise : NULL, NULL)) != LF_OK) return st;
    }
    return LF_OK;
}

/* UniPC's step from sigma s0 to sigma t: c1 = s_t / s_s0, c2 = alpha_t h_phi_1, c_b = alpha_t B_h (bh2:
 * B_h = h_phi_1 = expm1(-h)) and -h, h_phi_1, B_h for the corrector's rhos */
static void unipc_k(float t, float s0, float *k, float *hh_, float *h_, float *hphi_) {
    float a_t, s_t, l_t, a_s0, s_s0, l_s0;
    vp(t, &a_t, &s_t, &l_t);
    vp(s0, &a_s0, &s_s0, &l_s0);
    float h = l_t - l_s0, hh = -h;
    float h_phi_1 = expm1f(hh), B_h = expm1f(hh);
    k[0] = s_t / s_s0, k[1] = a_t * h_phi_1, k[2] = a_t * B_h;
    *hh_ = hh, *h_ = h, *hphi_ = h_phi_1;
}

/* UniPC (bh2, solver order 2, predict_x0, lower_order_final, no disabled corrector) */
static lf_status run_unipc(run_ctx *c, float *x, float *bufs[3], float *last) {
    lf_sampler *s = c->s;
    lf_status st;
    int N = s->n_steps, this_order = 1, lower_order_nums = 0;
    float *m_older = bufs[0], *m_old = bufs[1], *m_new = bufs[2];
    for (int i = 0; i < N; i++) {
        float sigma = s->sigmas[i];
        if ((st = eval(c, i + 1, x, sigma, s->timesteps[i], 0)) != LF_OK) return st;
        if ((st = x0_vp(c, x, sigma, m_new)) != LF_OK) return st; /* with the uncorrected sample */
        if (i > 0) { /* UniC: correct x (predicted from `last` at step i - 1) with the new output */
            float k[6] = {0}, hh, h, h_phi_1;
            unipc_k(sigma, s->sigmas[i - 1], k, &hh, &h, &h_phi_1);
            if (this_order != 1) {
                float a_s0, s_s0, l_s0, a_s1, s_s1, l_s1;
                vp(s->sigmas[i - 1], &a_s0, &s_s0, &l_s0);
                vp(s->sigmas[i - 2], &a_s1, &s_s1, &l_s1);
                float B_h = expm1f(hh);
                float rk = (l_s1 - l_s0) / h;
                float hpk = h_phi_1 / hh - 1.0f;
                float b0 = hpk * 1.0f / B_h;
                hpk = hpk / hh - 1.0f / 2.0f;
                float b1 = hpk * 2.0f / B_h;
                /* R = [[1, 1], [rk, 1]]; rhos_c = R^-1 b */
                double r0d = ((double)b0 - (double)b1) / (1.0 - (double)rk);
                k[3] = (float)r0d, k[4] = (float)((double)b0 - r0d), k[5] = rk;
            }
            st = upd(c, LF_SU_UNIPC_C, this_order == 1 ? 0 : LF_SU_SECOND, k, 6, x, m_new, m_old, m_older, last);
            if (st != LF_OK) return st;
        }
        float *freed = m_older;
        m_older = m_old;
        m_old = m_new;
        m_new = freed;
        int order = N - i < 2 ? N - i : 2;
        this_order = order < lower_order_nums + 1 ? order : lower_order_nums + 1;
        /* UniP: last = x, then predict the next sample */
        float next = s->sigmas[i + 1];
        float k[4] = {0}, hh, h, h_phi_1;
        int flags = 0;
        if (next == 0.0f) {
            flags = LF_SU_FINAL;
        } else {
            unipc_k(next, sigma, k, &hh, &h, &h_phi_1);
            if (this_order != 1) {
                float a_s0, s_s0, l_s0, a_s1, s_s1, l_s1;
                vp(sigma, &a_s0, &s_s0, &l_s0);
                vp(s->sigmas[i - 1], &a_s1, &s_s1, &l_s1);
                k[3] = (l_s1 - l_s0) / h;
                flags = LF_SU_SECOND;
            }
        }
        if ((st = upd(c, LF_SU_UNIPC_P, flags, k, 4, x, m_old, m_older, last, NULL)) != LF_OK) return st;
        if (lower_order_nums < 2) lower_order_nums++;
    }
    return LF_OK;
}

lf_status lf_sampler_run(lf_sampler *s, float *x, size_t n, lf_rng *rng, const lf_sampler_cb *cb) {
    return lf_sampler_run_rngs(s, x, n, rng, rng ? 1 : 0, cb);
}

lf_status lf_sampler_run_rngs(lf_sampler *s, float *x, size_t n, lf_rng *rngs, int n_rngs, const lf_sampler_cb *cb) {
    return lf_sampler_run_on(s, lf_compute_cpu(), x, n, rngs, n_rngs, cb);
}

lf_status lf_sampler_run_on(lf_sampler *s, lf_compute *cc, float *x, size_t n, lf_rng *rngs, int n_rngs,
                            const lf_sampler_cb *cb) {
    if (!s || !cc || !x || !cb || !cb->denoise || n == 0) return lf_err(LF_ERR_ARG, "sampler: bad arguments");
    if (n_rngs < 0 || (n_rngs > 0 && (!rngs || n % (size_t)n_rngs != 0)))
        return lf_err(LF_ERR_ARG, "sampler: %zu latent values do not split into %d noise chunks", n, n_rngs);
    lf_sampler_kind k = s->cfg.kind;
    int stochastic = k == LF_SAMPLER_EULER_A || k == LF_SAMPLER_DPMPP_2M_SDE;
    if (stochastic && n_rngs == 0)
        return lf_err(LF_ERR_ARG, "sampler: %s needs a random generator for its noise", lf_sampler_config_name(&s->cfg));
    if ((unsigned)k >= LF_SAMPLER_COUNT) return lf_err(LF_ERR_ARG, "sampler: unknown kind %d", (int)k);
    /* xin, out and up to four work buffers (the noise of Euler a / DPM++ 2M SDE in the fourth, which only
     * UniPC uses), f32 in the compute's memory */
    enum { NBUF = 6 };
    float *buf[NBUF] = {NULL};
    run_ctx c = {s, cc, cb, n, NULL, NULL, NULL, 0, rngs, n_rngs, s->cfg.prediction == LF_PRED_V ? LF_SU_V_PRED : 0};
    lf_status st = LF_OK;
    for (int i = 0; i < NBUF && st == LF_OK; i++) st = lf_compute_alloc_f32(cc, (int64_t)n, &buf[i]);
    if (st == LF_OK && stochastic && !cc->host_memory && !(c.hnoise = malloc(n * sizeof *c.hnoise)))
        st = lf_err(LF_ERR_NOMEM, "sampler: out of memory (%zu floats)", n);
    if (st != LF_OK) goto done;
    c.xin = buf[0], c.out = buf[1];
    float *w0 = buf[2], *w1 = buf[3], *w2 = buf[4], *w3 = buf[5], *noise = w3;
    switch (k) {
    case LF_SAMPLER_EULER:
    case LF_SAMPLER_EULER_A: st = run_euler(&c, x, noise); break;
    case LF_SAMPLER_HEUN: st = run_heun(&c, x, w0, w1); break;
    case LF_SAMPLER_DDIM: st = run_ddim(&c, x); break;
    case LF_SAMPLER_DPMPP_2M:
    case LF_SAMPLER_DPMPP_2M_SDE: st = run_dpm(&c, x, w0, w1, noise); break;
    default: { /* LF_SAMPLER_UNIPC */
        float *bufs[3] = {w0, w1, w2};
        st = run_unipc(&c, x, bufs, w3);
        break;
    }
    }
done:
    for (int i = 0; i < NBUF; i++) cc->release(cc, buf[i]);
    free(c.hnoise);
    return st;
}
