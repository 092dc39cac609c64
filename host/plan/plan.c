/* plan.c: match adapters to a checkpoint and check everything before anything is written (P9).
 *
 * For every module of every adapter: resolve its name through the model's keymap (P8), resolve the
 * module against the target's shape (or row slice, SDXL TE2 q/k/v), and add a patch to the job of
 * that tensor (and of its bias for diff_b / b_norm). Refused with a clear error: another base model
 * (both families named), unknown tensor suffixes, modules that match nothing (unless allowed), shape
 * mismatches and non-finite factors (from lf_module_resolve), two modules of one adapter on one slice.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lorafuse/lf_model.h"
#include "host/base/util.h"

typedef struct {
    lf_job *jobs;
    size_t n, cap;
} lf_jobs;

static lf_job *lf_job_for(lf_jobs *js, const lf_st_tensor *t) {
    /* Linear scan: at most a few thousand jobs (SDXL has ~2.5k patchable tensors), negligible next to
     * the math each job does. */
    for (size_t i = 0; i < js->n; i++)
        if (js->jobs[i].target == t) return &js->jobs[i];
    if (lf_grow(&js->jobs, &js->cap, js->n + 1)) return NULL;
    lf_job *j = &js->jobs[js->n++];
    memset(j, 0, sizeof *j);
    j->target = t;
    return j;
}

static lf_status lf_job_add(lf_job *j, const lf_patch *p) {
    for (size_t i = 0; i < j->n_patches; i++) {
        const lf_patch *q = &j->patches[i];
        if (q->adapter == p->adapter && q->row_off == p->row_off && q->rows == p->rows && q->bias == p->bias)
            return lf_err(LF_ERR_MODEL, "modules '%s' and '%s' of one adapter both target '%s'", q->mod.name,
                          p->mod.name, j->target->name);
    }
    lf_patch *np = realloc(j->patches, (j->n_patches + 1) * sizeof *np);
    if (!np) return lf_err(LF_ERR_NOMEM, "out of memory");
    j->patches = np;
    j->patches[j->n_patches++] = *p;
    return LF_OK;
}

static int lf_job_cmp(const void *a, const void *b) {
    const lf_job *x = a, *y = b;
    return (x->target->begin > y->target->begin) - (x->target->begin < y->target->begin);
}

void lf_plan_free(lf_plan *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n_jobs; i++) free(p->jobs[i].patches);
    free(p->jobs);
    free(p->matched);
    free(p->unmatched);
    free(p);
}

static lf_status lf_check_family(const lf_model *model, const lf_adapter *a, const lf_plan_opts *o) {
    const char *why = "";
    lf_family af = lf_adapter_family(a, &why);
    const char *meta = lf_st_meta(a->st, "ss_base_model_version");
    if (af == LF_FAMILY_UNKNOWN && meta && *meta && !o->allow_family)
        return lf_err(LF_ERR_MODEL, "%s: adapter is for base model '%s' (ss_base_model_version), model is %s",
                      a->path, meta, lf_family_name(model->family));
    if (af != LF_FAMILY_UNKNOWN && model->family != LF_FAMILY_UNKNOWN && af != model->family && !o->allow_family)
        return lf_err(LF_ERR_MODEL, "%s: adapter is for %s (%s), model is %s", a->path, lf_family_name(af), why,
                      lf_family_name(model->family));
    return LF_OK;
}

/* The shape a module sees: the target's, with rows replaced by the slice length. */
static lf_view lf_target_shape(const lf_st_tensor *t, int64_t rows) {
    lf_view v = lf_st_view(t);
    if (rows) v.shape[0] = rows;
    return v;
}

static lf_status lf_plan_module(const lf_model *model, const lf_adapter *a, size_t ai, float s,
                                const lf_module *m, lf_jobs *js, int *matched) {
    lf_target tg;
    *matched = 0;
    if (lf_keymap_resolve(model->km, m->name, &tg) != LF_OK) return LF_OK;
    *matched = 1;
    int wants_bias = (m->present & (1u << LF_R_DIFF_B)) || (m->present & (1u << LF_R_B_NORM));
    /* The module is resolved once, against the weight (or its row slice); a diff_b / b_norm is then
     * checked against the bias it patches. */
    lf_patch p;
    memset(&p, 0, sizeof p);
    p.mod = *m;
    p.adapter = ai;
    p.coef = s;
    p.row_off = tg.row_off;
    p.rows = tg.rows;
    for (int bias = 0; bias <= 1; bias++) {
        if (bias && !wants_bias) continue;
        const char *key = bias ? tg.bias_key : tg.weight_key;
        lf_role brole = (m->present & (1u << LF_R_DIFF_B)) ? LF_R_DIFF_B : LF_R_B_NORM;
        if (!key)
            return lf_err(LF_ERR_MODEL, "%s: module '%s' has %s but the model's layer '%s' has no bias", a->path,
                          m->name, lf_role_name(brole), tg.weight_key);
        const lf_st_tensor *t = lf_st_find(model->st, key);
        if (!t) return lf_err(LF_ERR_MODEL, "%s: module '%s': model has no tensor '%s'", a->path, m->name, key);
        if (!lf_dtype_writable(t->dtype))
            return lf_err(LF_ERR_DTYPE, "%s: module '%s' targets '%s' stored as %s (F32, F16 and BF16 can be patched)",
                          a->path, m->name, key, lf_dtype_name(t->dtype));
        lf_view shape = lf_target_shape(t, p.rows);
        lf_status st = LF_OK;
        if (!bias) {
            st = lf_module_resolve(&p.mod, &shape);
        } else if (lf_view_numel(&m->t[brole]) != lf_view_numel(&shape)) {
            char b1[96], b2[96];
            st = lf_err(LF_ERR_SHAPE, "module '%s': %s has shape %s, expected %s", m->name, lf_role_name(brole),
                        lf_shape_str(&m->t[brole], b1, sizeof b1), lf_shape_str(&shape, b2, sizeof b2));
        }
        if (st != LF_OK) return lf_err_wrap(st, "%s: layer '%s': ", a->path, key);
        p.bias = bias;
        lf_job *j = lf_job_for(js, t);
        if (!j) return lf_err(LF_ERR_NOMEM, "out of memory");
        st = lf_job_add(j, &p);
        if (st != LF_OK) return lf_err_wrap(st, "%s: ", a->path);
    }
    return LF_OK;
}

lf_status lf_plan_build(const lf_model *model, lf_adapter *const *adapters, const float *strengths, size_t n,
                        const lf_plan_opts *opts, lf_plan **out) {
    static const lf_plan_opts defaults;
    const lf_plan_opts *o = opts ? opts : &defaults;
    *out = NULL;
    lf_plan *p = calloc(1, sizeof *p);
    lf_jobs js = {0};
    if (!p || !(p->matched = calloc(n + 1, sizeof *p->matched)) || !(p->unmatched = calloc(n + 1, sizeof *p->unmatched))) {
        lf_plan_free(p);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    p->n_adapters = n;
    lf_status st = LF_OK;
    for (size_t ai = 0; ai < n && st == LF_OK; ai++) {
        const lf_adapter *a = adapters[ai];
        if (a->n_unknown) {
            st = lf_err(LF_ERR_FORMAT, "%s: %zu tensor(s) with unknown suffix, first: '%s'", a->path, a->n_unknown,
                        a->unknown[0]);
            break;
        }
        st = lf_check_family(model, a, o);
        const char *first_unmatched = NULL;
        for (size_t mi = 0; mi < a->n_mods && st == LF_OK; mi++) {
            int matched = 0;
            st = lf_plan_module(model, a, ai, strengths[ai], &a->mods[mi], &js, &matched);
            if (matched) p->matched[ai]++;
            else {
                p->unmatched[ai]++;
                if (!first_unmatched) first_unmatched = a->mods[mi].name;
            }
        }
        if (st == LF_OK && p->unmatched[ai] && !o->allow_unmatched)
            st = lf_err(LF_ERR_MODEL, "%s: %zu of %zu modules match no layer of the %s model, first: '%s'", a->path,
                        p->unmatched[ai], a->n_mods, lf_family_name(model->family), first_unmatched);
    }
    p->jobs = js.jobs;
    p->n_jobs = js.n;
    if (st != LF_OK) {
        lf_plan_free(p);
        return st;
    }
    if (p->n_jobs) qsort(p->jobs, p->n_jobs, sizeof *p->jobs, lf_job_cmp);
    *out = p;
    return LF_OK;
}
