/* model_live.c: route a step plan's patched tensors into the loaded models (lf_weights.h). */
#include <string.h>

#include "lorafuse/lf_weights.h"

lf_status lf_live_set(const lf_live *m, lf_component comp, const char *key, const lf_view *v) {
    switch (comp) {
    case LF_COMP_UNET:
        if (m->unet) return lf_unet_set_weight(m->unet, key, v);
        break;
    case LF_COMP_TE1:
        if (m->te1) return lf_clip_set_weight(m->te1, key, v);
        break;
    case LF_COMP_TE2:
        if (m->te2) return lf_clip_set_weight(m->te2, key, v);
        break;
    default:
        return lf_err(LF_ERR_MODEL, "weight \"%s\" belongs to no UNet or text encoder", key);
    }
    if (m->skip_missing) return LF_OK;
    return lf_err(LF_ERR_MODEL, "weight \"%s\" is patched by the plan but its %s is not loaded", key,
                  comp == LF_COMP_UNET ? "UNet" : comp == LF_COMP_TE1 ? "text encoder 1" : "text encoder 2");
}

static lf_status lf_live_job(const lf_live *m, const lf_step_plan *sp, const lf_cpu_backend *b, size_t j,
                             lf_live_stats *s) {
    const lf_st_tensor *t = sp->plan->jobs[j].target;
    lf_component comp = sp->job_comp[j];
    int missing = (comp == LF_COMP_UNET && !m->unet) || (comp == LF_COMP_TE1 && !m->te1) ||
                  (comp == LF_COMP_TE2 && !m->te2);
    if (missing && m->skip_missing) {
        s->skipped++;
        return LF_OK;
    }
    size_t nb = 0;
    lf_view v;
    memset(&v, 0, sizeof v);
    v.data = lf_cpu_backend_weight(b, j, &nb);
    v.dtype = t->dtype;
    v.ndim = t->ndim;
    memcpy(v.shape, t->shape, sizeof v.shape);
    if (!v.data) return lf_err(LF_ERR_ARG, "backend has no bytes for job %zu (%s)", j, t->name);
    lf_status st = lf_live_set(m, comp, t->name, &v);
    if (st != LF_OK) return st;
    s->refreshed++;
    s->bytes += nb;
    s->te_refreshed += comp != LF_COMP_UNET;
    return LF_OK;
}

lf_status lf_live_apply_step(const lf_live *m, const lf_step_plan *sp, const lf_cpu_backend *b, int t,
                             lf_live_stats *stats) {
    lf_live_stats s;
    memset(&s, 0, sizeof s);
    if (t < 1 || t > sp->n_steps)
        return lf_err(LF_ERR_ARG, "lf_live_apply_step: step %d outside 1..%d", t, sp->n_steps);
    const lf_step *step = &sp->steps[t - 1];
    lf_status st = LF_OK;
    for (size_t i = 0; i < step->n_jobs && st == LF_OK; i++) st = lf_live_job(m, sp, b, step->jobs[i], &s);
    if (stats) *stats = s;
    return st;
}

lf_status lf_live_apply_all(const lf_live *m, const lf_step_plan *sp, const lf_cpu_backend *b,
                            lf_live_stats *stats) {
    lf_live_stats s;
    memset(&s, 0, sizeof s);
    lf_status st = LF_OK;
    for (size_t j = 0; j < sp->plan->n_jobs && st == LF_OK; j++) st = lf_live_job(m, sp, b, j, &s);
    if (stats) *stats = s;
    return st;
}
