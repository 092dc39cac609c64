/* live_weights.c: route a step plan's patched tensors into the loaded models (lf_live_weights.h).
 * A step binds the models to the backend's tensors (no copy: the CPU backend rewrites them in place in
 * the checkpoint's dtype, and they live until lf_cpu_backend_free); lf_live_set copies. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/base/pool.h"

#include "clip_internal.h"
#include "lorafuse/lf_live_weights.h"
#include "unet_internal.h"

/* Copy v into the model of comp (mode 0), bind the model to a backend's tensor (1), or to the
 * checkpoint's own tensor in the model's file mapping (2). */
static lf_status lf_live_put(const lf_live *m, lf_component comp, const char *key, const lf_view *v, int mode) {
    int bind = mode != 0, from_file = mode == 2;
    switch (comp) {
    case LF_COMP_UNET:
        if (m->unet) return bind ? lf_unet_bind_weight(m->unet, key, v, from_file) : lf_unet_set_weight(m->unet, key, v);
        break;
    case LF_COMP_TE1:
        if (m->te1) return bind ? lf_clip_bind_weight(m->te1, key, v, from_file) : lf_clip_set_weight(m->te1, key, v);
        break;
    case LF_COMP_TE2:
        if (m->te2) return bind ? lf_clip_bind_weight(m->te2, key, v, from_file) : lf_clip_set_weight(m->te2, key, v);
        break;
    default:
        return lf_err(LF_ERR_MODEL, "weight \"%s\" belongs to no UNet or text encoder", key);
    }
    if (m->skip_missing) return LF_OK;
    return lf_err(LF_ERR_MODEL, "weight \"%s\" is patched by the plan but its %s is not loaded", key,
                  comp == LF_COMP_UNET ? "UNet" : comp == LF_COMP_TE1 ? "text encoder 1" : "text encoder 2");
}

lf_status lf_live_set(const lf_live *m, lf_component comp, const char *key, const lf_view *v) {
    return lf_live_put(m, comp, key, v, 0);
}

lf_status lf_live_restore(const lf_live *m, lf_component comp, const char *key, const lf_view *v) {
    return lf_live_put(m, comp, key, v, 2);
}

lf_status lf_live_own(const lf_live *m) {
    lf_status st = lf_unet_own_weights(m->unet);
    if (!st) st = lf_clip_own_weights(m->te1);
    if (!st) st = lf_clip_own_weights(m->te2);
    return st;
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
    lf_status st = lf_live_put(m, comp, t->name, &v, 1);
    if (st != LF_OK) return st;
    s->refreshed++;
    s->bytes += nb;
    s->te_refreshed += comp != LF_COMP_UNET;
    return LF_OK;
}

/* The jobs of a step refresh distinct weights of the models: they run on the operator pool
 * (host/base/pool.h), one job per chunk, with per-chunk statistics added up afterwards and the
 * lowest failing job reported (what the serial loop would have reported first). */
typedef struct {
    const lf_live *m;
    const lf_step_plan *sp;
    const lf_cpu_backend *b;
    const size_t *jobs;    /* NULL: job i is plan job i */
    lf_live_stats *st;     /* per job */
    lf_status *rc;         /* per job */
    char msg[1024];
    size_t err_i;
    pthread_mutex_t mu;
} lf_live_ctx;

static void lf_live_chunk(void *vc, int64_t i0, int64_t i1, int tid) {
    lf_live_ctx *c = vc;
    (void)tid;
    for (int64_t i = i0; i < i1; i++) {
        size_t j = c->jobs ? c->jobs[i] : (size_t)i;
        lf_status st = lf_live_job(c->m, c->sp, c->b, j, &c->st[i]);
        c->rc[i] = st;
        if (st != LF_OK) {
            pthread_mutex_lock(&c->mu);
            if ((size_t)i < c->err_i) {
                c->err_i = (size_t)i;
                snprintf(c->msg, sizeof c->msg, "%s", lf_last_error());
            }
            pthread_mutex_unlock(&c->mu);
        }
    }
}

static lf_status lf_live_run(const lf_live *m, const lf_step_plan *sp, const lf_cpu_backend *b, const size_t *jobs,
                             size_t n, lf_live_stats *stats) {
    lf_live_stats s;
    memset(&s, 0, sizeof s);
    lf_live_ctx c;
    memset(&c, 0, sizeof c);
    c.m = m, c.sp = sp, c.b = b, c.jobs = jobs, c.err_i = SIZE_MAX;
    c.st = calloc(n + 1, sizeof *c.st);
    c.rc = calloc(n + 1, sizeof *c.rc);
    if (!c.st || !c.rc) {
        free(c.st), free(c.rc);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_init(&c.mu, NULL);
    lf_par_for((int64_t)n, 1, lf_live_chunk, &c);
    pthread_mutex_destroy(&c.mu);
    lf_status st = LF_OK;
    for (size_t i = 0; i < n; i++) { /* the serial loop's statistics: jobs before the first failure */
        if (c.rc[i] != LF_OK) {
            st = lf_err(c.rc[i], "%s", c.msg);
            break;
        }
        s.refreshed += c.st[i].refreshed;
        s.skipped += c.st[i].skipped;
        s.bytes += c.st[i].bytes;
        s.te_refreshed += c.st[i].te_refreshed;
    }
    free(c.st), free(c.rc);
    if (stats) *stats = s;
    return st;
}

lf_status lf_live_apply_step(const lf_live *m, const lf_step_plan *sp, const lf_cpu_backend *b, int t,
                             lf_live_stats *stats) {
    if (stats) memset(stats, 0, sizeof *stats);
    if (t < 1 || t > sp->n_steps)
        return lf_err(LF_ERR_ARG, "lf_live_apply_step: step %d outside 1..%d", t, sp->n_steps);
    const lf_step *step = &sp->steps[t - 1];
    return lf_live_run(m, sp, b, step->jobs, step->n_jobs, stats);
}

lf_status lf_live_apply_all(const lf_live *m, const lf_step_plan *sp, const lf_cpu_backend *b,
                            lf_live_stats *stats) {
    return lf_live_run(m, sp, b, NULL, sp->plan->n_jobs, stats);
}

lf_status lf_live_apply_jobs(const lf_live *m, const lf_step_plan *sp, const lf_cpu_backend *b, const size_t *jobs,
                             size_t n, lf_live_stats *stats) {
    return lf_live_run(m, sp, b, jobs, n, stats);
}
