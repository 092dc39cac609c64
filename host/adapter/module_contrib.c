/* module_contrib.c: the CPU-reference contribution of one resolved adapter module to a layer weight
 * (lf_module_contrib_ref of lf_adapter.h); the math itself lives in kernels/cpu/<algo>_ref.c, the
 * resolution it relies on (algorithm, rank, gamma, DoRA axis, GLoRA layout) in module_resolve.c.
 *
 * acc (O, K) += C(W0, s) per P2-P5 in f32, W0 (O, I[, kh, kw]) flattened to (O, K), K = I * kh * kw;
 * with `bias`, acc (O) += s * diff_b / b_norm. s == 0 adds nothing for any algorithm; OFT/BOFT rescale
 * is interpolated by s (see kernels/cpu/adapters/oft_ref.c). dyn_rank (plain LoRA only, ignored elsewhere) uses
 * the first dyn_rank ranks with gamma still alpha / full rank, as A1111's
 * lyco_helpers.rebuild_conventional slices up[:, :dyn] and down[:dyn] while calc_scale keeps
 * dim = lora_down.shape[0]. On error acc is left partly updated; callers discard it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/adapters/lf_ref.h"
#include "module_internal.h"

/* f32 copies of the module's tensors, made once per call (the reference favours clarity). */
typedef struct {
    float *f[LF_R_COUNT];
} lf_f32set;

static void lf_f32set_free(lf_f32set *s) {
    for (int r = 0; r < LF_R_COUNT; r++) free(s->f[r]);
}

static lf_status lf_f32set_load(const lf_module *m, lf_f32set *s) {
    memset(s, 0, sizeof *s);
    for (int r = 0; r < LF_R_COUNT; r++) {
        if (!lf_has(m, (lf_role)r)) continue;
        int64_t n = lf_view_numel(&m->t[r]);
        s->f[r] = malloc((size_t)(n ? n : 1) * sizeof(float));
        if (!s->f[r]) return lf_err(LF_ERR_NOMEM, "module '%s': out of memory", m->name);
        lf_status st = lf_view_to_f32(&m->t[r], s->f[r]);
        if (st) return lf_err_wrap(st, "module '%s': %s: ", m->name, lf_role_name((lf_role)r));
    }
    return LF_OK;
}

static lf_ref_factor lf_factor_none(void) {
    lf_ref_factor f;
    memset(&f, 0, sizeof f);
    return f;
}

/* dW_raw (O, K) of the additive algorithms (not FULL: its diff is used directly). */
static lf_status lf_delta(const lf_module *m, const lf_f32set *s, const float *w0, const lf_module_target *t,
                          float *dw) {
    lf_ref_factor f1 = lf_factor_none(), f2 = lf_factor_none();
    switch (m->algo) {
    case LF_ALGO_LORA: {
        int64_t r = m->t[LF_R_DOWN].shape[0];
        f1.rows = t->O;
        f1.cols = t->K;
        f1.a = s->f[LF_R_UP];
        f1.b = s->f[LF_R_DOWN];
        f1.lda = r;
        f1.r = r;
        if (lf_has(m, LF_R_MID)) {
            f1.t = s->f[LF_R_MID];
            f1.khw = t->khw;
        } else if (m->dyn_rank > 0 && m->dyn_rank < r) {
            f1.r = m->dyn_rank; /* A1111/SD.Next dyn_dim: first ranks only, gamma unchanged */
        }
        return lf_lora_delta_ref(&f1, dw);
    }
    case LF_ALGO_LOHA: {
        int tk = lf_loha_tucker(m);
        lf_ref_factor *fs[2] = {&f1, &f2};
        static const lf_role ra[2] = {LF_R_HW1A, LF_R_HW2A}, rb[2] = {LF_R_HW1B, LF_R_HW2B},
                             rt[2] = {LF_R_HT1, LF_R_HT2};
        for (int i = 0; i < 2; i++) {
            fs[i]->rows = t->O;
            fs[i]->cols = t->K;
            fs[i]->a = s->f[ra[i]];
            fs[i]->b = s->f[rb[i]];
            fs[i]->r = m->t[rb[i]].shape[0];
            fs[i]->lda = fs[i]->r;
            if (tk) {
                fs[i]->t = s->f[rt[i]];
                fs[i]->a_t = 1;
                fs[i]->khw = t->khw;
            }
        }
        return lf_loha_delta_ref(&f1, &f2, dw);
    }
    case LF_ALGO_LOKR: {
        int64_t a, c, b, k2, d2;
        lf_module_lokr_dims(m, &a, &c, &b, &k2, &d2);
        f1.rows = a;
        f1.cols = c;
        if (lf_lokr_w1_full(m)) {
            f1.full = s->f[LF_R_KW1];
        } else {
            f1.a = s->f[LF_R_KW1A];
            f1.b = s->f[LF_R_KW1B];
            f1.r = f1.lda = m->t[LF_R_KW1B].shape[0];
        }
        f2.rows = b;
        f2.cols = k2;
        if (lf_lokr_w2_full(m)) {
            f2.full = s->f[LF_R_KW2];
        } else {
            f2.a = s->f[LF_R_KW2A];
            f2.b = s->f[LF_R_KW2B];
            f2.r = f2.lda = m->t[LF_R_KW2B].shape[0];
            if (lf_lokr_tucker(m)) {
                f2.t = s->f[LF_R_KT2];
                f2.a_t = 1;
                f2.khw = k2 / d2;
            }
        }
        /* the index map only needs d*khw; pass the split when the file shows it */
        int64_t khw = d2 != k2 ? k2 / d2 : 1;
        return lf_lokr_delta_ref(&f1, &f2, k2 / khw, khw, dw);
    }
    case LF_ALGO_GLORA:
        return lf_glora_delta_ref(w0, s->f[LF_R_GA1], s->f[LF_R_GA2], s->f[LF_R_GB1], s->f[LF_R_GB2],
                                  m->glora_old_layout, t->O, t->I, t->khw, m->rank, dw);
    default: return lf_err(LF_ERR_ARG, "module '%s': %s has no low-rank delta", m->name, lf_algo_name(m->algo));
    }
}

static lf_status lf_check_result(const lf_module *m, const float *acc, int64_t n, int64_t K) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(acc[i]))
            return lf_err(LF_ERR_NONFINITE, "module '%s': the patched weight is not finite at (%lld, %lld)",
                          m->name, (long long)(i / K), (long long)(i % K));
    return LF_OK;
}

lf_status lf_module_contrib_ref(const lf_module *m, const float *w0, const lf_view *wshape, int bias,
                                float s, float *acc) {
    /* P2: strength 0 is the pristine weight, bit for bit, for every algorithm (also OFT with rescale,
     * which LyCORIS would still apply at s = 0). */
    if (s == 0.0f) return LF_OK;
    if (!isfinite(s)) return lf_err(LF_ERR_ARG, "module '%s': strength %g is not finite", m->name, (double)s);
    if (m->algo == LF_ALGO_NONE) return lf_err(LF_ERR_ARG, "module '%s': not resolved", m->name);

    if (bias) {
        lf_role r = m->algo == LF_ALGO_FULL ? LF_R_DIFF_B : m->algo == LF_ALGO_NORM ? LF_R_B_NORM : LF_R_COUNT;
        if (r == LF_R_COUNT || !lf_has(m, r)) return LF_OK; /* no bias delta in this module */
        int64_t n = lf_view_numel(&m->t[r]);
        if (wshape && (wshape->ndim < 1 || wshape->shape[0] != n)) {
            char f[LF_SHBUF], w[LF_SHBUF];
            return lf_err(LF_ERR_SHAPE, "module '%s': %s has shape %s, expected (%lld,) for bias of weight %s",
                          m->name, lf_role_name(r), lf_shape_str(&m->t[r], f, sizeof f),
                          (long long)(wshape->ndim ? wshape->shape[0] : 0), lf_shape_str(wshape, w, sizeof w));
        }
        float *x = malloc((size_t)(n ? n : 1) * sizeof *x);
        if (!x) return lf_err(LF_ERR_NOMEM, "module '%s': out of memory", m->name);
        lf_status st = lf_view_to_f32(&m->t[r], x);
        if (!st) {
            lf_axpy_ref(x, n, s, acc);
            st = lf_check_result(m, acc, n, 1);
        }
        free(x);
        return st;
    }

    if (!wshape) return lf_err(LF_ERR_ARG, "module '%s': the weight shape is required", m->name);
    lf_status st = lf_module_check_target(m, wshape);
    if (st) return st;
    lf_module_target t = lf_module_target_of(wshape);
    int64_t n = lf_view_numel(wshape);
    lf_f32set fs;
    float *dw = NULL;
    st = lf_f32set_load(m, &fs);
    if (st) goto done;

    switch (m->algo) {
    case LF_ALGO_OFT:
    case LF_ALGO_OFT_LEGACY: {
        int legacy = m->algo == LF_ALGO_OFT_LEGACY;
        lf_role r = legacy ? LF_R_OFT_DIAG : LF_R_OFT_BLOCKS;
        /* P3 / T8: LyCORIS constraint alpha * O */
        st = lf_oft_contrib_ref(w0, fs.f[r], m->t[r].shape[0], m->t[r].shape[1], t.K, m->alpha * (double)t.O,
                                fs.f[LF_R_RESCALE], legacy, s, acc);
        break;
    }
    case LF_ALGO_BOFT:
        st = lf_boft_contrib_ref(w0, fs.f[LF_R_OFT_BLOCKS], m->t[LF_R_OFT_BLOCKS].shape[0],
                                 m->t[LF_R_OFT_BLOCKS].shape[1], m->t[LF_R_OFT_BLOCKS].shape[2], t.K,
                                 m->alpha * (double)t.O, fs.f[LF_R_RESCALE], s, acc);
        break;
    case LF_ALGO_IA3:
        lf_ia3_contrib_ref(w0, fs.f[LF_R_IA3_W], m->ia3_on_input, t.O, t.I, t.khw, s, acc);
        break;
    case LF_ALGO_NORM: lf_axpy_ref(fs.f[LF_R_W_NORM], n, s, acc); break;
    default: {
        const float *delta = fs.f[LF_R_DIFF];
        float gamma = m->algo == LF_ALGO_FULL ? 1.0f : m->gamma;
        if (m->algo != LF_ALGO_FULL) {
            dw = malloc((size_t)n * sizeof *dw);
            if (!dw) {
                st = lf_err(LF_ERR_NOMEM, "module '%s': out of memory", m->name);
                break;
            }
            if ((st = lf_delta(m, &fs, w0, &t, dw))) break;
            delta = dw;
        }
        if (lf_has(m, LF_R_DORA))
            st = lf_dora_contrib_ref(w0, delta, gamma, fs.f[LF_R_DORA], m->dora_axis, t.O, t.I, t.khw, s, acc);
        else
            lf_axpy_ref(delta, n, s * gamma, acc);
        break;
    }
    }
    if (!st) st = lf_check_result(m, acc, n, t.K);
done:
    free(dw);
    lf_f32set_free(&fs);
    return st;
}
