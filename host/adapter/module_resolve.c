/* module_resolve.c: detect, check and resolve one adapter module (lf_module_resolve, lf_algo_name of
 * lf_adapter.h, and lf_role_name); its CPU-reference contribution is module_contrib.c.
 *
 * Resolution (lf_module_resolve):
 *   algorithm   from the roles present (docs/adapters.md "Tensor names"); mixtures, missing partners and modules with
 *               only alpha/scale/dora_scale are rejected;
 *   rank        docs/semantics.md P1 (LoRA down rows, LoHa w1_b rows, LoKr w2_b then w1_b rows, GLoRA a2 /
 *               a1 rows; none for OFT/BOFT/IA3/full/norm);
 *   gamma (P1)  `scale` tensor if present, else alpha / rank; missing alpha or alpha == 0 give 1 (T6,
 *               T7: the trainers' intent; m->alpha keeps the stored 0 so `inspect` can warn); LoKr
 *               with both factors full has no rank and gamma 1;
 *   DoRA axis   from dora_scale's shape (P2, T2), see lf_dora_decide; PEFT's conv magnitude
 *               (1, O, 1, 1) collides with the input-axis (1, I, 1, 1) when O == I and is then read
 *               as the input axis, so the final axis needs the target: resolve against W before
 *               computing a contribution (lf_module_contrib_ref refuses a shape it was not resolved for,
 *               through lf_module_check_target below);
 *   GLoRA       layout from the shapes as ComfyUI decides it (P4, T12), see lf_glora_decide;
 *   values      every tensor is scanned: NaN/Inf is LF_ERR_NONFINITE naming module and role;
 *   shapes      factors against each other always, and against the target W (O, I[, kh, kw]) when
 *               given, with the 4-D <-> 2-D tolerance of T15 (see lf_fits).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "module_internal.h"

const char *lf_algo_name(lf_algo a) {
    switch (a) {
    case LF_ALGO_NONE: return "none";
    case LF_ALGO_LORA: return "lora";
    case LF_ALGO_LOHA: return "loha";
    case LF_ALGO_LOKR: return "lokr";
    case LF_ALGO_GLORA: return "glora";
    case LF_ALGO_OFT: return "oft";
    case LF_ALGO_OFT_LEGACY: return "oft_legacy";
    case LF_ALGO_BOFT: return "boft";
    case LF_ALGO_IA3: return "ia3";
    case LF_ALGO_FULL: return "full";
    case LF_ALGO_NORM: return "norm";
    default: return "?";
    }
}

static const char *const lf_role_names[LF_R_COUNT] = {
    "lora_up", "lora_down", "lora_mid", "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b",
    "hada_t1", "hada_t2", "lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b",
    "lokr_t2", "a1", "a2", "b1", "b2", "oft_blocks", "oft_diag", "rescale", "weight (IA3)",
    "on_input", "diff", "diff_b", "w_norm", "b_norm", "dora_scale", "alpha", "scale",
};

const char *lf_role_name(lf_role r) { return (r >= 0 && r < LF_R_COUNT) ? lf_role_names[r] : "?"; }

/* Roles that identify each algorithm (BOFT shares oft_blocks with OFT; ndim tells them apart). */
static unsigned lf_algo_roles(lf_algo a) {
    switch (a) {
    case LF_ALGO_LORA: return LF_BIT(LF_R_UP) | LF_BIT(LF_R_DOWN) | LF_BIT(LF_R_MID);
    case LF_ALGO_LOHA:
        return LF_BIT(LF_R_HW1A) | LF_BIT(LF_R_HW1B) | LF_BIT(LF_R_HW2A) | LF_BIT(LF_R_HW2B) |
               LF_BIT(LF_R_HT1) | LF_BIT(LF_R_HT2);
    case LF_ALGO_LOKR:
        return LF_BIT(LF_R_KW1) | LF_BIT(LF_R_KW1A) | LF_BIT(LF_R_KW1B) | LF_BIT(LF_R_KW2) |
               LF_BIT(LF_R_KW2A) | LF_BIT(LF_R_KW2B) | LF_BIT(LF_R_KT2);
    case LF_ALGO_GLORA: return LF_BIT(LF_R_GA1) | LF_BIT(LF_R_GA2) | LF_BIT(LF_R_GB1) | LF_BIT(LF_R_GB2);
    case LF_ALGO_OFT: return LF_BIT(LF_R_OFT_BLOCKS);
    case LF_ALGO_OFT_LEGACY: return LF_BIT(LF_R_OFT_DIAG);
    case LF_ALGO_IA3: return LF_BIT(LF_R_IA3_W) | LF_BIT(LF_R_ON_INPUT);
    case LF_ALGO_FULL: return LF_BIT(LF_R_DIFF) | LF_BIT(LF_R_DIFF_B);
    case LF_ALGO_NORM: return LF_BIT(LF_R_W_NORM) | LF_BIT(LF_R_B_NORM);
    default: return 0;
    }
}

static lf_role lf_first_role(unsigned bits) {
    for (int r = 0; r < LF_R_COUNT; r++)
        if (bits & LF_BIT(r)) return (lf_role)r;
    return LF_R_COUNT;
}

/* ---- shapes ------------------------------------------------------------------------------- */

/* An expected shape (a, b) in the target's layout: (a, b) for a Linear (2-D) W; for a conv W
 * (a, b, kh, kw) when `spatial`, else (a, b, 1, 1). */
static lf_view lf_expect(const lf_module_target *t, int64_t a, int64_t b, int spatial) {
    lf_view e;
    memset(&e, 0, sizeof e);
    e.ndim = t->w->ndim < 2 ? 2 : t->w->ndim;
    e.shape[0] = a;
    e.shape[1] = b;
    for (int i = 2; i < e.ndim; i++) e.shape[i] = spatial ? t->w->shape[i] : 1;
    return e;
}

/* T15 tolerance: a tensor fits the expected shape E if it is E, or its 2-D flattening (E0, prod E1..)
 * (LoHa/LoKr conv factors, SD1 proj_in/out LoRAs on an SDXL-style Linear), or E padded with trailing
 * 1s (4-D (a, b, 1, 1) factors of a 1x1 conv applied to a Linear). */
static int lf_fits(const lf_view *v, const lf_view *e) {
    if (v->ndim == e->ndim) {
        for (int i = 0; i < v->ndim; i++)
            if (v->shape[i] != e->shape[i]) return 0;
        return 1;
    }
    if (v->ndim == 2 && e->ndim > 2) return v->shape[0] == e->shape[0] && v->shape[1] == lf_view_cols(e);
    if (v->ndim > e->ndim && e->ndim >= 1) {
        for (int i = 0; i < e->ndim; i++)
            if (v->shape[i] != e->shape[i]) return 0;
        for (int i = e->ndim; i < v->ndim; i++)
            if (v->shape[i] != 1) return 0;
        return 1;
    }
    return 0;
}

static lf_status lf_shape_err(const lf_module *m, lf_role r, const lf_view *e, const lf_module_target *t) {
    char f[LF_SHBUF], x[LF_SHBUF], w[LF_SHBUF];
    return lf_err(LF_ERR_SHAPE, "module '%s': %s has shape %s, expected %s for weight %s", m->name,
                  lf_role_name(r), lf_shape_str(&m->t[r], f, sizeof f), lf_shape_str(e, x, sizeof x),
                  lf_shape_str(t->w, w, sizeof w));
}

static lf_status lf_fit_or_err(const lf_module *m, lf_role r, const lf_view *e, const lf_module_target *t) {
    return lf_fits(&m->t[r], e) ? LF_OK : lf_shape_err(m, r, e, t);
}

/* Factor-vs-factor mismatch (no target involved): "a has shape S, expected (x, y) to match b T". */
static lf_status lf_pair_err(const lf_module *m, lf_role r, int64_t ex0, int64_t ex1, lf_role other) {
    char f[LF_SHBUF], o[LF_SHBUF];
    return lf_err(LF_ERR_SHAPE, "module '%s': %s has shape %s, expected (%lld, %lld) (flattened) to match %s %s",
                  m->name, lf_role_name(r), lf_shape_str(&m->t[r], f, sizeof f), (long long)ex0,
                  (long long)ex1, lf_role_name(other), lf_shape_str(&m->t[other], o, sizeof o));
}

/* flat(t[r]) must be (rows, cols); -1 = any. */
static lf_status lf_flat_is(const lf_module *m, lf_role r, int64_t rows, int64_t cols, lf_role other) {
    const lf_view *v = &m->t[r];
    if ((rows < 0 || lf_dim(v, 0) == rows) && (cols < 0 || lf_view_cols(v) == cols)) return LF_OK;
    return lf_pair_err(m, r, rows < 0 ? lf_dim(v, 0) : rows, cols < 0 ? lf_view_cols(v) : cols, other);
}

static lf_status lf_ndim_in(const lf_module *m, lf_role r, int lo, int hi) {
    const lf_view *v = &m->t[r];
    if (v->ndim >= lo && v->ndim <= hi) return LF_OK;
    char f[LF_SHBUF];
    return lf_err(LF_ERR_SHAPE, "module '%s': %s has shape %s, expected a %d-D%s tensor", m->name,
                  lf_role_name(r), lf_shape_str(v, f, sizeof f), lo, hi > lo ? " or larger" : "");
}

/* ---- DoRA axis (P2, T2) ------------------------------------------------------------------- */

/* Shape classes of dora_scale: 1 = (n,) PEFT Linear or (n, 1, ...) kohya/LyCORIS output axis;
 * 2 = (1, n, 1, ...) input axis (LyCORIS < 3.2, A1111) or PEFT conv magnitude (1, O, 1, 1);
 * 0 = neither. *n gets the channel count. */
static int lf_dora_class(const lf_view *v, int64_t *n) {
    *n = lf_view_numel(v);
    if (v->ndim == 1 || (v->ndim >= 2 && lf_dim(v, 0) == *n)) return 1;
    if (v->ndim >= 2 && lf_dim(v, 0) == 1 && lf_dim(v, 1) == *n) return 2;
    return 0;
}

/* Axis rule. (n, 1, ...) and (n,) are the output axis. (1, n, 1, ...) is the input axis whenever
 * n == I, including O == I (P2 pins "(1, I, ...) is the input axis"; kohya/LyCORIS files carry this
 * layout under the name dora_scale, and diffusers renames it to lora_magnitude_vector without
 * reshaping, so the shape alone cannot prove a PEFT origin). Only when n != I and n == O on a conv
 * (>= 3-D magnitude) is it read as PEFT's (1, O, 1, 1) output-axis magnitude. Without a target, the
 * (1, n, ...) class is provisionally the input axis and is settled when the target is known. */
static lf_status lf_dora_decide(const lf_module *m, const lf_module_target *t, int *axis) {
    int64_t n;
    int cls = lf_dora_class(&m->t[LF_R_DORA], &n);
    char f[LF_SHBUF], w[LF_SHBUF];
    if (cls == 0 || n < 1)
        return lf_err(LF_ERR_SHAPE,
                      "module '%s': dora_scale has shape %s, expected (O, 1[, 1, 1]), (O,) or (1, I[, 1, 1])",
                      m->name, lf_shape_str(&m->t[LF_R_DORA], f, sizeof f));
    *axis = cls;
    if (!t->w) return LF_OK;
    if (t->w->ndim < 2)
        return lf_err(LF_ERR_SHAPE, "module '%s': dora_scale needs a 2-D or conv weight, found %s",
                      m->name, lf_shape_str(t->w, w, sizeof w));
    if (cls == 1 && n == t->O) return LF_OK;
    if (cls == 2 && n == t->I) return LF_OK;
    if (cls == 2 && m->t[LF_R_DORA].ndim >= 3 && n == t->O) {
        *axis = 1;
        return LF_OK;
    }
    return lf_err(LF_ERR_SHAPE,
                  "module '%s': dora_scale has shape %s, expected (%lld, 1), (%lld,) or (1, %lld) for weight %s",
                  m->name, lf_shape_str(&m->t[LF_R_DORA], f, sizeof f), (long long)t->O, (long long)t->O,
                  (long long)t->I, lf_shape_str(t->w, w, sizeof w));
}

/* ---- GLoRA layout (P4, T12) --------------------------------------------------------------- */

/* ComfyUI's rule on dims 0/1 of (a1, a2, b1, b2):
 *   old layout fits if b2[1] == b1[0] == a1[0] == a2[1]  (rank a1[0]);
 *   new layout fits if b2[0] == b1[1] == a1[1] == a2[0]  (rank a2[0]);
 * the new one wins unless both fit and a2[0] == O == I. Without a target, both fitting means O == I
 * in either reading; new is provisional unless a2 is square, where every fitting W gives old. */
static lf_status lf_glora_decide(const lf_module *m, const lf_module_target *t, int *old) {
    const lf_view *a1 = &m->t[LF_R_GA1], *a2 = &m->t[LF_R_GA2], *b1 = &m->t[LF_R_GB1], *b2 = &m->t[LF_R_GB2];
    int old_ok = lf_dim(b2, 1) == lf_dim(b1, 0) && lf_dim(b1, 0) == lf_dim(a1, 0) && lf_dim(a1, 0) == lf_dim(a2, 1);
    int new_ok = lf_dim(b2, 0) == lf_dim(b1, 1) && lf_dim(b1, 1) == lf_dim(a1, 1) && lf_dim(a1, 1) == lf_dim(a2, 0);
    if (!old_ok && !new_ok) {
        char s1[LF_SHBUF], s2[LF_SHBUF], s3[LF_SHBUF], s4[LF_SHBUF];
        return lf_err(LF_ERR_SHAPE,
                      "module '%s': GLoRA a1 %s, a2 %s, b1 %s, b2 %s fit neither layout (new: a1 (I, r), "
                      "a2 (r, I), b1 (O, r), b2 (r, I); old: a1 (r, I), a2 (I, r), b1 (r, I), b2 (O, r))",
                      m->name, lf_shape_str(a1, s1, sizeof s1), lf_shape_str(a2, s2, sizeof s2),
                      lf_shape_str(b1, s3, sizeof s3), lf_shape_str(b2, s4, sizeof s4));
    }
    if (!new_ok) *old = 1;
    else if (!old_ok) *old = 0;
    else if (t->w) *old = lf_dim(a2, 0) == t->O && t->O == t->I;
    else *old = lf_dim(a2, 0) == lf_dim(a2, 1);
    return LF_OK;
}

/* ---- internal consistency (no target) ----------------------------------------------------- */

static lf_status lf_check_lora(lf_module *m) {
    lf_status st;
    if ((st = lf_ndim_in(m, LF_R_UP, 2, 4)) || (st = lf_ndim_in(m, LF_R_DOWN, 2, 4))) return st;
    int64_t r = lf_dim(&m->t[LF_R_DOWN], 0);
    if (!lf_has(m, LF_R_MID)) {
        if ((st = lf_flat_is(m, LF_R_UP, -1, r, LF_R_DOWN))) return st;
    } else {
        if ((st = lf_ndim_in(m, LF_R_MID, 2, 4))) return st;
        /* mid (R, R, kh, kw): dim 0 meets up's rank, dim 1 down's */
        const lf_view *mid = &m->t[LF_R_MID];
        if (lf_dim(mid, 0) != r || lf_dim(mid, 1) != r)
            return lf_pair_err(m, LF_R_MID, r, r * lf_spatial(mid), LF_R_DOWN);
        if ((st = lf_flat_is(m, LF_R_UP, -1, r, LF_R_MID))) return st;
    }
    m->rank = (int)r;
    return LF_OK;
}

static lf_status lf_check_loha(lf_module *m) {
    lf_status st;
    static const lf_role rs[] = {LF_R_HW1A, LF_R_HW1B, LF_R_HW2A, LF_R_HW2B};
    for (int i = 0; i < 4; i++)
        if ((st = lf_ndim_in(m, rs[i], 2, 4))) return st;
    int64_t r1 = lf_dim(&m->t[LF_R_HW1B], 0), r2 = lf_dim(&m->t[LF_R_HW2B], 0);
    if (!lf_loha_tucker(m)) {
        if ((st = lf_flat_is(m, LF_R_HW1A, -1, r1, LF_R_HW1B))) return st;
        if ((st = lf_flat_is(m, LF_R_HW2A, -1, r2, LF_R_HW2B))) return st;
        if ((st = lf_flat_is(m, LF_R_HW2A, lf_dim(&m->t[LF_R_HW1A], 0), r2, LF_R_HW1A))) return st;
        if ((st = lf_flat_is(m, LF_R_HW2B, r2, lf_view_cols(&m->t[LF_R_HW1B]), LF_R_HW1B))) return st;
    } else {
        /* Tucker: w_a (R, O) transposed, w_b (R, I), t (R, R, kh, kw) */
        if ((st = lf_ndim_in(m, LF_R_HT1, 2, 4)) || (st = lf_ndim_in(m, LF_R_HT2, 2, 4))) return st;
        if ((st = lf_flat_is(m, LF_R_HW1A, r1, -1, LF_R_HW1B))) return st;
        if ((st = lf_flat_is(m, LF_R_HW2A, r2, lf_view_cols(&m->t[LF_R_HW1A]), LF_R_HW1A))) return st;
        if ((st = lf_flat_is(m, LF_R_HW2B, r2, lf_view_cols(&m->t[LF_R_HW1B]), LF_R_HW1B))) return st;
        const lf_view *t1 = &m->t[LF_R_HT1], *t2 = &m->t[LF_R_HT2];
        if (lf_dim(t1, 0) != r1 || lf_dim(t1, 1) != r1)
            return lf_pair_err(m, LF_R_HT1, r1, r1 * lf_spatial(t1), LF_R_HW1B);
        if (lf_dim(t2, 0) != r2 || lf_dim(t2, 1) != r2 || lf_spatial(t2) != lf_spatial(t1))
            return lf_pair_err(m, LF_R_HT2, r2, r2 * lf_spatial(t1), LF_R_HT1);
    }
    m->rank = (int)r1;
    return LF_OK;
}

static lf_status lf_check_lokr(lf_module *m) {
    lf_status st;
    for (int r = LF_R_KW1; r <= LF_R_KT2; r++)
        if (lf_has(m, (lf_role)r) && (st = lf_ndim_in(m, (lf_role)r, 2, 4))) return st;
    if (!lf_lokr_w1_full(m)) {
        if ((st = lf_flat_is(m, LF_R_KW1A, -1, lf_dim(&m->t[LF_R_KW1B], 0), LF_R_KW1B))) return st;
    }
    if (!lf_lokr_w2_full(m)) {
        int64_t r = lf_dim(&m->t[LF_R_KW2B], 0);
        if (!lf_lokr_tucker(m)) {
            if ((st = lf_flat_is(m, LF_R_KW2A, -1, r, LF_R_KW2B))) return st;
        } else {
            /* Tucker: w2_a (R, b) transposed, w2_b (R, d), t2 (R, R, kh, kw) */
            if ((st = lf_flat_is(m, LF_R_KW2A, r, -1, LF_R_KW2B))) return st;
            const lf_view *t2 = &m->t[LF_R_KT2];
            if (lf_dim(t2, 0) != r || lf_dim(t2, 1) != r)
                return lf_pair_err(m, LF_R_KT2, r, r * lf_spatial(t2), LF_R_KW2B);
        }
        m->rank = (int)r;
    } else if (!lf_lokr_w1_full(m)) {
        m->rank = (int)lf_dim(&m->t[LF_R_KW1B], 0);
    } else {
        m->rank = 0; /* both full: no rank, gamma 1 (LyCORIS forces alpha = dim; ComfyUI/A1111 find none) */
    }
    return LF_OK;
}

static lf_status lf_check_oft(lf_module *m, lf_role r) {
    const lf_view *v = &m->t[r];
    char f[LF_SHBUF];
    int want = m->algo == LF_ALGO_BOFT ? 4 : 3;
    int64_t b = lf_dim(v, want - 1);
    if (v->ndim != want || lf_dim(v, want - 2) != b || b < 1 || lf_dim(v, 0) < 1)
        return lf_err(LF_ERR_SHAPE, "module '%s': %s has shape %s, expected %s", m->name, lf_role_name(r),
                      lf_shape_str(v, f, sizeof f), want == 4 ? "(M, NB, b, b)" : "(K, b, b)");
    if (m->algo == LF_ALGO_BOFT) {
        int64_t nm = lf_dim(v, 0), nb = lf_dim(v, 1);
        int lg = 0;
        while (((int64_t)1 << lg) < nb) lg++;
        if ((b & 1) || ((int64_t)1 << lg) != nb || nm > lg + 1)
            return lf_err(LF_ERR_SHAPE,
                          "module '%s': oft_blocks has shape %s, expected (M, NB, b, b) with b even, NB a power "
                          "of two and M <= log2(NB) + 1",
                          m->name, lf_shape_str(v, f, sizeof f));
    }
    return LF_OK;
}

/* numel of a vector-like tensor: (n,), (n, 1, ...), (1, n, 1, ...); -1 if it is not one. */
static int64_t lf_vec_len(const lf_view *v) {
    int64_t n = lf_view_numel(v);
    int big = 0;
    for (int i = 0; i < v->ndim; i++) big += v->shape[i] != 1;
    return big <= 1 ? n : -1;
}

/* ---- checks against the target -------------------------------------------------------------- */

lf_status lf_module_check_target(const lf_module *m, const lf_view *wv) {
    lf_module_target t = lf_module_target_of(wv);
    lf_module_target *tp = &t;
    lf_view e;
    lf_status st = LF_OK;
    char w[LF_SHBUF];
    int need2d = m->algo != LF_ALGO_NORM && m->algo != LF_ALGO_FULL;
    if ((need2d && wv->ndim < 2) || wv->ndim < 1 || t.O < 1 || t.K < 1)
        return lf_err(LF_ERR_SHAPE, "module '%s': %s cannot target a weight of shape %s", m->name,
                      lf_algo_name(m->algo), lf_shape_str(wv, w, sizeof w));
    switch (m->algo) {
    case LF_ALGO_LORA: {
        int64_t r = m->t[LF_R_DOWN].shape[0];
        int64_t ru = lf_has(m, LF_R_MID) ? m->t[LF_R_MID].shape[0] : r;
        e = lf_expect(tp, t.O, ru, 0);
        if ((st = lf_fit_or_err(m, LF_R_UP, &e, tp))) return st;
        if (!lf_has(m, LF_R_MID)) {
            e = lf_expect(tp, r, t.I, 1);
            if ((st = lf_fit_or_err(m, LF_R_DOWN, &e, tp))) return st;
            break;
        }
        e = lf_expect(tp, r, t.I, 0);
        if ((st = lf_fit_or_err(m, LF_R_DOWN, &e, tp))) return st;
        e = lf_expect(tp, ru, r, 1);
        if ((st = lf_fit_or_err(m, LF_R_MID, &e, tp))) return st;
        break;
    }
    case LF_ALGO_LOHA: {
        int64_t r1 = m->t[LF_R_HW1B].shape[0], r2 = m->t[LF_R_HW2B].shape[0];
        int tk = lf_loha_tucker(m);
        e = tk ? lf_expect(tp, r1, t.O, 0) : lf_expect(tp, t.O, r1, 0);
        e.ndim = 2; /* w_a is a plain matrix in every layout */
        if ((st = lf_fit_or_err(m, LF_R_HW1A, &e, tp))) return st;
        e = lf_expect(tp, r1, t.I, !tk);
        if ((st = lf_fit_or_err(m, LF_R_HW1B, &e, tp))) return st;
        e = tk ? lf_expect(tp, r2, t.O, 0) : lf_expect(tp, t.O, r2, 0);
        e.ndim = 2;
        if ((st = lf_fit_or_err(m, LF_R_HW2A, &e, tp))) return st;
        e = lf_expect(tp, r2, t.I, !tk);
        if ((st = lf_fit_or_err(m, LF_R_HW2B, &e, tp))) return st;
        if (tk) {
            e = lf_expect(tp, r1, r1, 1);
            if ((st = lf_fit_or_err(m, LF_R_HT1, &e, tp))) return st;
            e = lf_expect(tp, r2, r2, 1);
            if ((st = lf_fit_or_err(m, LF_R_HT2, &e, tp))) return st;
        }
        break;
    }
    case LF_ALGO_LOKR: {
        int64_t a, c, b, k2, d2;
        lf_module_lokr_dims(m, &a, &c, &b, &k2, &d2);
        lf_role r1 = lf_lokr_w1_full(m) ? LF_R_KW1 : LF_R_KW1A;
        lf_role r2 = lf_lokr_w2_full(m) ? LF_R_KW2 : lf_lokr_tucker(m) ? LF_R_KT2 : LF_R_KW2B;
        int spatial_ok = 1;
        /* a 4-D full w2 or a Tucker core carries (kh, kw); it must be the target's */
        if (lf_lokr_w2_full(m) && m->t[LF_R_KW2].ndim >= 3) {
            e = lf_expect(tp, b, d2, 1);
            spatial_ok = lf_fits(&m->t[LF_R_KW2], &e);
        } else if (lf_lokr_tucker(m)) {
            int64_t r = m->t[LF_R_KT2].shape[0];
            e = lf_expect(tp, r, r, 1);
            spatial_ok = lf_fits(&m->t[LF_R_KT2], &e);
        }
        if (a * b != t.O || c * k2 != t.K || (d2 != k2 && c * d2 != t.I) || !spatial_ok) {
            char s1[LF_SHBUF], s2[LF_SHBUF];
            return lf_err(LF_ERR_SHAPE,
                          "module '%s': %s %s (x) %s %s gives (%lld, %lld) (flattened), expected (%lld, %lld) "
                          "for weight %s",
                          m->name, lf_role_name(r1), lf_shape_str(&m->t[r1], s1, sizeof s1), lf_role_name(r2),
                          lf_shape_str(&m->t[r2], s2, sizeof s2), (long long)(a * b), (long long)(c * k2),
                          (long long)t.O, (long long)t.K, lf_shape_str(wv, w, sizeof w));
        }
        break;
    }
    case LF_ALGO_GLORA: {
        int64_t r = m->rank;
        if (m->glora_old_layout) {
            if (t.khw != 1)
                return lf_err(LF_ERR_SHAPE,
                              "module '%s': old-layout GLoRA (a1 (r, I), a2 (I, r)) needs a Linear weight, found %s",
                              m->name, lf_shape_str(wv, w, sizeof w));
            e = lf_expect(tp, r, t.I, 0);
            if ((st = lf_fit_or_err(m, LF_R_GA1, &e, tp))) return st;
            e = lf_expect(tp, t.I, r, 0);
            if ((st = lf_fit_or_err(m, LF_R_GA2, &e, tp))) return st;
            e = lf_expect(tp, r, t.I, 0);
            if ((st = lf_fit_or_err(m, LF_R_GB1, &e, tp))) return st;
            e = lf_expect(tp, t.O, r, 0);
            if ((st = lf_fit_or_err(m, LF_R_GB2, &e, tp))) return st;
            break;
        }
        e = lf_expect(tp, t.I, r, 0);
        if ((st = lf_fit_or_err(m, LF_R_GA1, &e, tp))) return st;
        e = lf_expect(tp, r, t.I, 0);
        if ((st = lf_fit_or_err(m, LF_R_GA2, &e, tp))) return st;
        e = lf_expect(tp, t.O, r, 0);
        if ((st = lf_fit_or_err(m, LF_R_GB1, &e, tp))) return st;
        e = lf_expect(tp, r, t.I, 1);
        if ((st = lf_fit_or_err(m, LF_R_GB2, &e, tp))) return st;
        break;
    }
    case LF_ALGO_OFT:
    case LF_ALGO_OFT_LEGACY:
    case LF_ALGO_BOFT: {
        lf_role r = m->algo == LF_ALGO_OFT_LEGACY ? LF_R_OFT_DIAG : LF_R_OFT_BLOCKS;
        const lf_view *v = &m->t[r];
        int64_t rows = m->algo == LF_ALGO_BOFT ? v->shape[1] * v->shape[2] : v->shape[0] * v->shape[1];
        if (rows != t.O) {
            char f[LF_SHBUF];
            return lf_err(LF_ERR_SHAPE, "module '%s': %s has shape %s (%lld rows), expected %lld rows for weight %s",
                          m->name, lf_role_name(r), lf_shape_str(v, f, sizeof f), (long long)rows,
                          (long long)t.O, lf_shape_str(wv, w, sizeof w));
        }
        if (lf_has(m, LF_R_RESCALE)) {
            e = lf_expect(tp, t.O, 1, 0);
            if (!lf_fits(&m->t[LF_R_RESCALE], &e) && lf_vec_len(&m->t[LF_R_RESCALE]) != t.O)
                return lf_shape_err(m, LF_R_RESCALE, &e, tp);
        }
        break;
    }
    case LF_ALGO_IA3: {
        int64_t n = m->ia3_on_input ? t.I : t.O;
        if (lf_vec_len(&m->t[LF_R_IA3_W]) != n) {
            memset(&e, 0, sizeof e);
            e.ndim = wv->ndim > 2 ? wv->ndim : 1;
            for (int i = 0; i < e.ndim; i++) e.shape[i] = 1;
            e.shape[e.ndim > 1 ? 1 : 0] = n;
            return lf_shape_err(m, LF_R_IA3_W, &e, tp);
        }
        break;
    }
    case LF_ALGO_FULL:
        if (!lf_fits(&m->t[LF_R_DIFF], wv)) return lf_shape_err(m, LF_R_DIFF, wv, tp);
        if (lf_has(m, LF_R_DIFF_B) && lf_vec_len(&m->t[LF_R_DIFF_B]) != t.O) {
            memset(&e, 0, sizeof e);
            e.ndim = 1;
            e.shape[0] = t.O;
            return lf_shape_err(m, LF_R_DIFF_B, &e, tp);
        }
        break;
    case LF_ALGO_NORM:
        if (!lf_fits(&m->t[LF_R_W_NORM], wv) && lf_vec_len(&m->t[LF_R_W_NORM]) != lf_view_numel(wv))
            return lf_shape_err(m, LF_R_W_NORM, wv, tp);
        break;
    default: return lf_err(LF_ERR_ARG, "module '%s': not resolved", m->name);
    }
    if (lf_has(m, LF_R_DORA)) {
        int axis;
        if ((st = lf_dora_decide(m, tp, &axis))) return st;
        if (axis != m->dora_axis)
            return lf_err(LF_ERR_ARG, "module '%s': resolved for another weight shape than %s", m->name,
                          lf_shape_str(wv, w, sizeof w));
    }
    return LF_OK;
}

/* ---- values ----------------------------------------------------------------------------------- */

static lf_status lf_scan_finite(const lf_module *m, lf_role r) {
    const lf_view *v = &m->t[r];
    if (!lf_dtype_readable(v->dtype))
        return lf_err(LF_ERR_DTYPE, "module '%s': %s has dtype %s, which lorafuse cannot read", m->name,
                      lf_role_name(r), lf_dtype_name(v->dtype));
    unsigned bits = lf_dtype_bits(v->dtype);
    int64_t n = lf_view_numel(v);
    float buf[1024];
    for (int64_t at = 0; at < n; at += 1024) {
        lf_view c;
        memset(&c, 0, sizeof c);
        c.dtype = v->dtype;
        c.ndim = 1;
        c.shape[0] = n - at < 1024 ? n - at : 1024;
        c.data = (const unsigned char *)v->data + (size_t)at * (bits / 8);
        lf_status st = lf_view_to_f32(&c, buf);
        if (st) return st;
        for (int64_t i = 0; i < c.shape[0]; i++)
            if (!isfinite(buf[i]))
                return lf_err(LF_ERR_NONFINITE, "module '%s': %s holds a non-finite value (%s) at element %lld",
                              m->name, lf_role_name(r), isnan(buf[i]) ? "NaN" : "Inf", (long long)(at + i));
    }
    return LF_OK;
}

static lf_status lf_read_scalar(const lf_module *m, lf_role r, double *out) {
    char f[LF_SHBUF];
    if (lf_view_numel(&m->t[r]) != 1)
        return lf_err(LF_ERR_SHAPE, "module '%s': %s has shape %s, expected a scalar", m->name, lf_role_name(r),
                      lf_shape_str(&m->t[r], f, sizeof f));
    lf_status st = lf_view_scalar(&m->t[r], out);
    return st ? lf_err_wrap(st, "module '%s': %s: ", m->name, lf_role_name(r)) : LF_OK;
}

/* ---- resolve ---------------------------------------------------------------------------------- */

static lf_status lf_missing(const lf_module *m, lf_role have, lf_role need) {
    return lf_err(LF_ERR_FORMAT, "module '%s': %s without %s", m->name, lf_role_name(have), lf_role_name(need));
}

static lf_status lf_detect(lf_module *m) {
    unsigned p = m->present;
    if (lf_has(m, LF_R_IA3_W) && !lf_has(m, LF_R_ON_INPUT))
        return lf_err(LF_ERR_FORMAT, "module '%s': unknown tensor suffix \"weight\" (IA3 needs on_input)", m->name);
    lf_algo found = LF_ALGO_NONE;
    for (int a = LF_ALGO_LORA; a < LF_ALGO_COUNT; a++) {
        if (a == LF_ALGO_BOFT || !(p & lf_algo_roles((lf_algo)a))) continue;
        if (found != LF_ALGO_NONE)
            return lf_err(LF_ERR_FORMAT, "module '%s': mixes %s (%s) with %s (%s)", m->name,
                          lf_role_name(lf_first_role(p & lf_algo_roles(found))), lf_algo_name(found),
                          lf_role_name(lf_first_role(p & lf_algo_roles((lf_algo)a))), lf_algo_name((lf_algo)a));
        found = (lf_algo)a;
    }
    if (found == LF_ALGO_NONE) {
        char list[256] = "";
        size_t at = 0;
        for (int r = 0; r < LF_R_COUNT && at < sizeof list; r++)
            if (p & LF_BIT(r)) at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", at ? ", " : "", lf_role_name((lf_role)r));
        return lf_err(LF_ERR_FORMAT, "module '%s': has only %s and no adapter tensors", m->name, at ? list : "nothing");
    }
    if (found == LF_ALGO_OFT && m->t[LF_R_OFT_BLOCKS].ndim == 4) found = LF_ALGO_BOFT;
    m->algo = found;
    /* required partners */
    switch (found) {
    case LF_ALGO_LORA:
        if (!lf_has(m, LF_R_UP)) return lf_missing(m, lf_has(m, LF_R_DOWN) ? LF_R_DOWN : LF_R_MID, LF_R_UP);
        if (!lf_has(m, LF_R_DOWN)) return lf_missing(m, LF_R_UP, LF_R_DOWN);
        break;
    case LF_ALGO_LOHA: {
        static const lf_role rs[] = {LF_R_HW1A, LF_R_HW1B, LF_R_HW2A, LF_R_HW2B};
        for (int i = 0; i < 4; i++)
            if (!lf_has(m, rs[i])) return lf_missing(m, lf_first_role(p & lf_algo_roles(found)), rs[i]);
        if (lf_has(m, LF_R_HT1) != lf_has(m, LF_R_HT2))
            return lf_missing(m, lf_has(m, LF_R_HT1) ? LF_R_HT1 : LF_R_HT2, lf_has(m, LF_R_HT1) ? LF_R_HT2 : LF_R_HT1);
        break;
    }
    case LF_ALGO_LOKR:
        if (lf_has(m, LF_R_KW1) && (lf_has(m, LF_R_KW1A) || lf_has(m, LF_R_KW1B)))
            return lf_err(LF_ERR_FORMAT, "module '%s': has both lokr_w1 and lokr_w1_a/lokr_w1_b", m->name);
        if (lf_has(m, LF_R_KW2) && (lf_has(m, LF_R_KW2A) || lf_has(m, LF_R_KW2B) || lf_has(m, LF_R_KT2)))
            return lf_err(LF_ERR_FORMAT, "module '%s': has both lokr_w2 and lokr_w2_a/lokr_w2_b/lokr_t2", m->name);
        if (!lf_has(m, LF_R_KW1)) {
            if (!lf_has(m, LF_R_KW1A)) return lf_missing(m, lf_first_role(p & lf_algo_roles(found)), LF_R_KW1);
            if (!lf_has(m, LF_R_KW1B)) return lf_missing(m, LF_R_KW1A, LF_R_KW1B);
        }
        if (!lf_has(m, LF_R_KW2)) {
            if (!lf_has(m, LF_R_KW2A) && !lf_has(m, LF_R_KW2B))
                return lf_missing(m, lf_first_role(p & lf_algo_roles(found)), LF_R_KW2);
            if (!lf_has(m, LF_R_KW2A)) return lf_missing(m, LF_R_KW2B, LF_R_KW2A);
            if (!lf_has(m, LF_R_KW2B)) return lf_missing(m, LF_R_KW2A, LF_R_KW2B);
        }
        break;
    case LF_ALGO_GLORA: {
        static const lf_role rs[] = {LF_R_GA1, LF_R_GA2, LF_R_GB1, LF_R_GB2};
        for (int i = 0; i < 4; i++)
            if (!lf_has(m, rs[i])) return lf_missing(m, lf_first_role(p & lf_algo_roles(found)), rs[i]);
        break;
    }
    case LF_ALGO_IA3:
        if (!lf_has(m, LF_R_IA3_W)) return lf_missing(m, LF_R_ON_INPUT, LF_R_IA3_W);
        break;
    case LF_ALGO_FULL:
        if (!lf_has(m, LF_R_DIFF)) return lf_missing(m, LF_R_DIFF_B, LF_R_DIFF);
        break;
    case LF_ALGO_NORM:
        if (!lf_has(m, LF_R_W_NORM)) return lf_missing(m, LF_R_B_NORM, LF_R_W_NORM);
        break;
    default: break;
    }
    /* auxiliary roles only some algorithms use */
    int orth = found == LF_ALGO_OFT || found == LF_ALGO_BOFT;
    if (lf_has(m, LF_R_RESCALE) && !orth)
        return lf_err(LF_ERR_FORMAT, "module '%s': rescale is only used by OFT/BOFT, not %s", m->name,
                      lf_algo_name(found));
    int dora_ok = found == LF_ALGO_LORA || found == LF_ALGO_LOHA || found == LF_ALGO_LOKR ||
                  found == LF_ALGO_GLORA || found == LF_ALGO_FULL;
    if (lf_has(m, LF_R_DORA) && !dora_ok)
        return lf_err(LF_ERR_FORMAT, "module '%s': dora_scale cannot be combined with %s", m->name,
                      lf_algo_name(found));
    return LF_OK;
}

lf_status lf_module_resolve(lf_module *m, const lf_view *wshape) {
    lf_status st;
    m->algo = LF_ALGO_NONE;
    m->rank = 0;
    m->alpha = 0.0;
    m->gamma = 1.0f;
    m->gamma_from_scale = 0;
    m->dora_axis = 0;
    m->glora_old_layout = 0;
    m->ia3_on_input = 0;
    if (!m->name) m->name = "?";
    if ((st = lf_detect(m))) return st;
    for (int r = 0; r < LF_R_COUNT; r++)
        if (lf_has(m, (lf_role)r) && (st = lf_scan_finite(m, (lf_role)r))) return st;

    switch (m->algo) {
    case LF_ALGO_LORA: st = lf_check_lora(m); break;
    case LF_ALGO_LOHA: st = lf_check_loha(m); break;
    case LF_ALGO_LOKR: st = lf_check_lokr(m); break;
    case LF_ALGO_GLORA: {
        static const lf_role rs[] = {LF_R_GA1, LF_R_GA2, LF_R_GB1, LF_R_GB2};
        for (int i = 0; i < 4 && !st; i++) st = lf_ndim_in(m, rs[i], 2, 4);
        if (st) break;
        lf_module_target t = lf_module_target_of(wshape);
        if ((st = lf_glora_decide(m, &t, &m->glora_old_layout))) break;
        m->rank = (int)lf_dim(&m->t[m->glora_old_layout ? LF_R_GA1 : LF_R_GA2], 0);
        break;
    }
    case LF_ALGO_OFT:
    case LF_ALGO_BOFT: st = lf_check_oft(m, LF_R_OFT_BLOCKS); break;
    case LF_ALGO_OFT_LEGACY: st = lf_check_oft(m, LF_R_OFT_DIAG); break;
    case LF_ALGO_IA3: {
        double on;
        if ((st = lf_read_scalar(m, LF_R_ON_INPUT, &on))) break;
        m->ia3_on_input = on != 0.0;
        if (lf_vec_len(&m->t[LF_R_IA3_W]) < 1) {
            char f[LF_SHBUF];
            st = lf_err(LF_ERR_SHAPE, "module '%s': weight (IA3) has shape %s, expected a vector (n,) or (1, n, 1, 1)",
                        m->name, lf_shape_str(&m->t[LF_R_IA3_W], f, sizeof f));
        }
        break;
    }
    case LF_ALGO_FULL:
        if (lf_has(m, LF_R_DIFF_B) && lf_vec_len(&m->t[LF_R_DIFF_B]) != lf_dim(&m->t[LF_R_DIFF], 0))
            st = lf_flat_is(m, LF_R_DIFF_B, lf_dim(&m->t[LF_R_DIFF], 0), 1, LF_R_DIFF);
        break;
    case LF_ALGO_NORM:
        if (lf_has(m, LF_R_B_NORM) && lf_view_numel(&m->t[LF_R_B_NORM]) != lf_view_numel(&m->t[LF_R_W_NORM]))
            st = lf_flat_is(m, LF_R_B_NORM, lf_view_numel(&m->t[LF_R_W_NORM]), 1, LF_R_W_NORM);
        break;
    default: break;
    }
    if (st) return st;

    /* P1: gamma. OFT/BOFT read alpha as their constraint (alpha * O), not as a scale. */
    double v;
    if (lf_has(m, LF_R_ALPHA)) {
        if ((st = lf_read_scalar(m, LF_R_ALPHA, &v))) return st;
        m->alpha = v;
    }
    int scaled = m->algo == LF_ALGO_LORA || m->algo == LF_ALGO_LOHA || m->algo == LF_ALGO_LOKR ||
                 m->algo == LF_ALGO_GLORA;
    if (scaled) {
        if (lf_has(m, LF_R_SCALE)) {
            if ((st = lf_read_scalar(m, LF_R_SCALE, &v))) return st;
            m->gamma = (float)v;
            m->gamma_from_scale = 1;
        } else if (m->rank > 0 && lf_has(m, LF_R_ALPHA) && m->alpha != 0.0) {
            m->gamma = (float)(m->alpha / m->rank);
        }
    }

    if (lf_has(m, LF_R_DORA)) {
        lf_module_target t = lf_module_target_of(wshape);
        if ((st = lf_dora_decide(m, &t, &m->dora_axis))) return st;
    }
    return wshape ? lf_module_check_target(m, wshape) : LF_OK;
}
