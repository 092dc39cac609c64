/* lf_sample_update.h: the samplers' element-wise updates (host/sample/sampler.c) and the CFG combine, one
 * definition for the CPU loop (compute_cpu.c) and the CUDA kernel (kernels/cuda/nn_sample.cu), so both
 * give the same bytes: every formula is float with the operation order of diffusers' scheduler.step as
 * sampler.c has always written it, no fmaf (both sides are built without contraction: gcc
 * -ffp-contract=off, nvcc --fmad=false), no transcendental (the scalars k[] are computed on the host).
 *
 * An update is an op, flags and up to 12 scalars (lf_sample_upd), applied to element i of up to six
 * f32 buffers b[0..5] of n floats each (the op's list below; b[0] is always written):
 *   SCALE_IN  b0 = b1 / k0                                  the model input x / sqrt(sigma^2 + 1)
 *   CFG       b0 = b1 + k0 * (b2 - b1)                      uncond b1, cond b2, guidance scale k0
 *   COPY      b0 = b1
 *   EULER     x b0, out b1, noise b2 (NOISE):               x0 = x0_sigma(k0 sigma, k1 c_out, k2 c_in);
 *             x = x + (x - x0) / k0 * k3 (dt) [then x = x + noise * k4 (up)]
 *   HEUN1     x b0, out b1, deriv b2, saved b3:             deriv = (x - x0) / k0; saved = x; x = x + deriv * k3
 *   HEUN2     the same buffers, k0 = the next sigma:        x = saved + (deriv + (x - x0) / k0) / 2 * k3
 *   DDIM      x b0, out b1: k0 sqrt(a), k1 sqrt(1 - a), k2 sqrt(a_prev), k3 sqrt(1 - a_prev):
 *             x = k2 * x0 + k3 * eps (x0 and eps from the prediction)
 *   X0_VP     b0 = x0 of x b1 and out b2 (k0 alpha_t, k1 sigma_t): (x - st o) / a, or a x - st o for v
 *   DPM       x b0, m b1, m_prev b2 (SECOND), noise b3 (SDE): k0 c1, k1 c2, k2 c3, k3 1 / r0, k4 c_noise;
 *             ODE x = c1 x - c2 m [- c3 d1],  SDE x = c1 x + c2 m [+ c3 d1] + cn noise, d1 = (m - m_prev) / r0
 *   UNIPC_C   UniC corrector: x b0, m_new b1, m_old b2, m_older b3 (SECOND), last b4: k0 c1, k1 c2, k2 c_b,
 *             k3 rho0, k4 rho1, k5 rk; first order rho 0.5
 *   UNIPC_P   UniP predictor: x b0, m b1, m_prev b2 (SECOND), last b3: last = x, then x = m (FINAL) or
 *             c1 x - c2 m [- c_b rho d1], d1 = (m_prev - m) / rk: k0 c1, k1 c2, k2 c_b, k3 rk; rho 0.5
 *   NONFINITE b0[0] = k0 where b1[i] is NaN or infinite (b0: one float; every writer writes the same
 *             value, so the order does not matter): a check of a latent on the device that moves one
 *             float back (k0 a tag, e.g. the step, so the flag needs no reset between checks)
 * V_PRED (flag): the model predicts v; otherwise epsilon. Buffers may not overlap except where an op
 * reads and writes the same b (in place).
 */
#ifndef LF_SAMPLE_UPDATE_H
#define LF_SAMPLE_UPDATE_H

#include <stdint.h>

#include "lf_hd.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lf_su_op {
    LF_SU_SCALE_IN = 0, LF_SU_CFG, LF_SU_COPY, LF_SU_EULER, LF_SU_HEUN1, LF_SU_HEUN2, LF_SU_DDIM, LF_SU_X0_VP,
    LF_SU_DPM, LF_SU_UNIPC_C, LF_SU_UNIPC_P, LF_SU_NONFINITE, LF_SU_COUNT
} lf_su_op;

enum {
    LF_SU_V_PRED = 1, /* the model predicts v */
    LF_SU_NOISE = 2,  /* EULER: add noise * up (ancestral) */
    LF_SU_SECOND = 4, /* DPM, UNIPC_C, UNIPC_P: the second-order term */
    LF_SU_SDE = 8,    /* DPM: the SDE variant */
    LF_SU_FINAL = 16  /* UNIPC_P: the final step (sigma 0): x = m */
};

#define LF_SU_BUFS 6
#define LF_SU_K 12

typedef struct lf_sample_upd {
    int op;         /* lf_su_op */
    int flags;      /* LF_SU_* */
    float k[LF_SU_K];
} lf_sample_upd;

/* how many of b[] the op reads or writes (the rest may be NULL) */
LF_HD int lf_su_nbufs(const lf_sample_upd *u) {
    switch (u->op) {
    case LF_SU_SCALE_IN: case LF_SU_COPY: case LF_SU_NONFINITE: return 2;
    case LF_SU_CFG: case LF_SU_X0_VP: return 3;
    case LF_SU_EULER: return (u->flags & LF_SU_NOISE) ? 3 : 2;
    case LF_SU_HEUN1: case LF_SU_HEUN2: case LF_SU_DPM: case LF_SU_UNIPC_P: return 4;
    case LF_SU_DDIM: return 2;
    case LF_SU_UNIPC_C: return 5;
    default: return 0;
    }
}

/* x0 of the sigma-space samplers (Euler, Heun): epsilon x - sigma o; v o c_out + x / c_in */
LF_HD float lf_su_x0_sigma(int v, float x, float o, float sigma, float c_out, float c_in) {
    return v ? o * c_out + x / c_in : x - sigma * o;
}

/* x0 of the multistep solvers (VP): epsilon (x - st o) / a; v a x - st o */
LF_HD float lf_su_x0_vp(int v, float x, float o, float a, float st) { return v ? a * x - st * o : (x - st * o) / a; }

/* the update of element i */
LF_HD void lf_su_elem(const lf_sample_upd *u, float *const *b, int64_t i) {
    const float *k = u->k;
    const int v = (u->flags & LF_SU_V_PRED) != 0, second = (u->flags & LF_SU_SECOND) != 0;
    switch (u->op) {
    case LF_SU_SCALE_IN: b[0][i] = b[1][i] / k[0]; break;
    case LF_SU_CFG: {
        const float un = b[1][i];
        b[0][i] = un + k[0] * (b[2][i] - un);
        break;
    }
    case LF_SU_COPY: b[0][i] = b[1][i]; break;
    case LF_SU_EULER: {
        const float x = b[0][i];
        const float x0 = lf_su_x0_sigma(v, x, b[1][i], k[0], k[1], k[2]);
        const float d = (x - x0) / k[0];
        float y = x + d * k[3];
        if (u->flags & LF_SU_NOISE) y = y + b[2][i] * k[4];
        b[0][i] = y;
        break;
    }
    case LF_SU_HEUN1: {
        const float x = b[0][i];
        const float x0 = lf_su_x0_sigma(v, x, b[1][i], k[0], k[1], k[2]);
        const float d = (x - x0) / k[0];
        b[2][i] = d;
        b[3][i] = x;
        b[0][i] = x + d * k[3];
        break;
    }
    case LF_SU_HEUN2: {
        const float x = b[0][i];
        const float x0 = lf_su_x0_sigma(v, x, b[1][i], k[0], k[1], k[2]);
        const float d2 = (x - x0) / k[0];
        const float d = (b[2][i] + d2) / 2.0f;
        b[0][i] = b[3][i] + d * k[3];
        break;
    }
    case LF_SU_DDIM: {
        const float x = b[0][i], o = b[1][i];
        float x0, eps;
        if (!v) {
            x0 = (x - k[1] * o) / k[0];
            eps = o;
        } else {
            x0 = k[0] * x - k[1] * o;
            eps = k[0] * o + k[1] * x;
        }
        b[0][i] = k[2] * x0 + k[3] * eps;
        break;
    }
    case LF_SU_X0_VP: b[0][i] = lf_su_x0_vp(v, b[1][i], b[2][i], k[0], k[1]); break;
    case LF_SU_DPM: {
        const float x = b[0][i], m = b[1][i];
        if (!(u->flags & LF_SU_SDE)) {
            if (!second) {
                b[0][i] = k[0] * x - k[1] * m;
            } else {
                const float d1 = k[3] * (m - b[2][i]);
                b[0][i] = k[0] * x - k[1] * m - k[2] * d1;
            }
        } else {
            const float nz = b[3][i];
            if (!second) {
                b[0][i] = k[0] * x + k[1] * m + k[4] * nz;
            } else {
                const float d1 = k[3] * (m - b[2][i]);
                b[0][i] = k[0] * x + k[1] * m + k[2] * d1 + k[4] * nz;
            }
        }
        break;
    }
    case LF_SU_UNIPC_C: {
        const float m_old = b[2][i];
        const float xt_ = k[0] * b[4][i] - k[1] * m_old;
        const float d1t = b[1][i] - m_old;
        if (!second) {
            const float rho = 0.5f;
            b[0][i] = xt_ - k[2] * (0.0f + rho * d1t);
        } else {
            const float d1 = (b[3][i] - m_old) / k[5];
            b[0][i] = xt_ - k[2] * (k[3] * d1 + k[4] * d1t);
        }
        break;
    }
    case LF_SU_UNIPC_P: {
        const float x = b[0][i], m = b[1][i];
        b[3][i] = x;
        if (u->flags & LF_SU_FINAL) {
            b[0][i] = m;
        } else if (!second) {
            b[0][i] = k[0] * x - k[1] * m;
        } else {
            const float rho = 0.5f;
            const float xt_ = k[0] * x - k[1] * m;
            const float d1 = (b[2][i] - m) / k[3];
            b[0][i] = xt_ - k[2] * (rho * d1);
        }
        break;
    }
    case LF_SU_NONFINITE: {
        const float y = b[1][i];
        if (!(y - y == 0.0f)) b[0][0] = k[0]; /* NaN - NaN and inf - inf are NaN */
        break;
    }
    default: break;
    }
}

#ifdef __cplusplus
}
#endif
#endif
