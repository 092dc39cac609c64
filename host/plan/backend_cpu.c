/* backend_cpu.c: executes a step plan on the CPU (lf_step_plan.h).
 *
 * Holds a writable copy of every tensor the plan may patch, starting at W0 ("step 0", nothing
 * applied). Step t recomputes exactly the jobs the plan lists for t, each from the pristine W0 in the
 * mmap'd checkpoint with step t's coefficients (docs/semantics.md P5, P7: never by subtraction; lf_job_apply
 * rounds once, P6), so after step t every tensor equals a fresh merge at step t's strengths, byte for
 * byte. Steps must be applied in order (the list of step t is relative to step t-1).
 * Data shapes: w[j] = bytes of job j's target (same dtype and size as in the checkpoint).
 * Memory: w holds only the tensors the plan patches (of those, with lf_cpu_backend_new_held, the ones
 * patched on the host), in the checkpoint's dtype (the loaded models bind
 * to them: lf_live_weights.h), W0 is read from the mapping and its pages handed back after each job
 * (host/base/pages.h); the jobs' f32 scratch is freed after each step; the adapters' factors are
 * converted to f32 once, at creation (exact, so the bytes are those of converting at every step).
 * Threads: the jobs of a step are independent (each writes only its own w[j] from W0 and the factors), so
 * they run on the operator pool (host/base/pool.h), one job per chunk, each with its own patch
 * scratch; every job's bytes are what the serial loop gives. A failure reports the lowest failing job.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lorafuse/lf_step_plan.h"
#include "host/base/pages.h"
#include "host/base/pool.h"

struct lf_cpu_backend {
    const lf_step_plan *sp;
    int fast;
    int last;              /* last step applied (0: none) */
    unsigned char **w;
    size_t maxp;           /* patches of the largest job */
    lf_patch *scratch;     /* maxp per pool thread */
    lf_apply_ws ws[LF_PAR_MAX_THREADS]; /* per pool thread: jobs reuse their f32 scratch */
    float ***fac;          /* per job, n_patches * LF_R_COUNT: each factor converted once to f32 (NULL:
                            * absent, or f32 already) */
    size_t fac_bytes;
};

void lf_cpu_backend_free(lf_cpu_backend *b) {
    if (!b) return;
    for (size_t j = 0; b->w && j < b->sp->plan->n_jobs; j++) free(b->w[j]);
    free(b->w);
    for (size_t j = 0; b->fac && j < b->sp->plan->n_jobs; j++) {
        for (size_t k = 0; k < b->sp->plan->jobs[j].n_patches * LF_R_COUNT; k++)
            if (b->fac[j]) free(b->fac[j][k]);
        free(b->fac[j]);
    }
    free(b->fac);
    free(b->scratch);
    for (int i = 0; i < LF_PAR_MAX_THREADS; i++) lf_apply_ws_free(&b->ws[i]);
    free(b);
}

/* Every adapter factor a job reads, converted once to f32 (exact for f16/bf16: the same values as the
 * per-step conversion gave), so a step converts nothing. */
static lf_status lf_cpu_backend_factors(lf_cpu_backend *b, const unsigned char *held) {
    size_t nj = b->sp->plan->n_jobs;
    if ((b->fac = calloc(nj + 1, sizeof *b->fac)) == NULL) return lf_err(LF_ERR_NOMEM, "out of memory");
    for (size_t j = 0; j < nj; j++) {
        if (held && !held[j]) continue;
        const lf_job *job = &b->sp->plan->jobs[j];
        if ((b->fac[j] = calloc(job->n_patches * LF_R_COUNT + 1, sizeof *b->fac[j])) == NULL)
            return lf_err(LF_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < job->n_patches; i++) {
            const lf_module *m = &job->patches[i].mod;
            for (int r = 0; r < LF_R_COUNT; r++) {
                const lf_view *v = &m->t[r];
                if (!(m->present & (1u << r)) || v->dtype == LF_F32 || !lf_dtype_readable(v->dtype)) continue;
                int64_t n = lf_view_numel(v);
                float *f = malloc((size_t)(n > 0 ? n : 1) * sizeof *f);
                if (!f) return lf_err(LF_ERR_NOMEM, "out of memory converting the factors of '%s'", m->name);
                b->fac[j][i * LF_R_COUNT + (size_t)r] = f;
                lf_status st = lf_view_to_f32(v, f);
                if (st != LF_OK) return lf_err_wrap(st, "module '%s': ", m->name);
                b->fac_bytes += (size_t)n * sizeof *f;
            }
        }
    }
    return LF_OK;
}

lf_status lf_cpu_backend_new(const lf_step_plan *sp, int fast, lf_cpu_backend **out) {
    return lf_cpu_backend_new_held(sp, fast, NULL, out);
}

lf_status lf_cpu_backend_new_held(const lf_step_plan *sp, int fast, const unsigned char *held, lf_cpu_backend **out) {
    *out = NULL;
    lf_cpu_backend *b = calloc(1, sizeof *b);
    size_t nj = sp->plan->n_jobs, maxp = 1;
    if (!b) return lf_err(LF_ERR_NOMEM, "out of memory");
    b->sp = sp;
    b->fast = fast;
    for (size_t j = 0; j < nj; j++)
        if (sp->plan->jobs[j].n_patches > maxp) maxp = sp->plan->jobs[j].n_patches;
    b->w = calloc(nj + 1, sizeof *b->w);
    b->maxp = maxp;
    b->scratch = calloc(maxp * LF_PAR_MAX_THREADS, sizeof *b->scratch);
    if (!b->w || !b->scratch) {
        lf_cpu_backend_free(b);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    for (size_t j = 0; j < nj; j++) {
        if (held && !held[j]) continue;
        const lf_st_tensor *t = sp->plan->jobs[j].target;
        size_t nb = (size_t)(t->end - t->begin);
        if ((b->w[j] = malloc(nb ? nb : 1)) == NULL) {
            lf_cpu_backend_free(b);
            return lf_err(LF_ERR_NOMEM, "out of memory for '%s' (%zu bytes)", t->name, nb);
        }
        memcpy(b->w[j], t->data, nb);
        lf_drop_pages(t->data, nb);
    }
    lf_status st = lf_cpu_backend_factors(b, held);
    if (st != LF_OK) {
        lf_cpu_backend_free(b);
        return st;
    }
    *out = b;
    return LF_OK;
}

typedef struct {
    lf_cpu_backend *b;
    const lf_step *s;
    int t;
    pthread_mutex_t mu;
    size_t err_i;          /* lowest failing index into s->jobs (SIZE_MAX: none) */
    lf_status err;
    char msg[1024];
} lf_cpu_step_ctx;

static void lf_cpu_step_chunk(void *vc, int64_t i0, int64_t i1, int tid) {
    lf_cpu_step_ctx *c = vc;
    lf_patch *scratch = c->b->scratch + (size_t)tid * c->b->maxp;
    for (int64_t i = i0; i < i1; i++) {
        size_t j = c->s->jobs[i];
        if (!c->b->w[j]) { /* not held (lf_cpu_backend_new_held) */
            pthread_mutex_lock(&c->mu);
            if ((size_t)i < c->err_i) {
                c->err_i = (size_t)i;
                c->err = LF_ERR_ARG;
                snprintf(c->msg, sizeof c->msg, "cpu backend: '%s' is not held by this backend",
                         c->b->sp->plan->jobs[j].target->name);
            }
            pthread_mutex_unlock(&c->mu);
            continue;
        }
        lf_job job;
        lf_step_job(c->b->sp, c->t, j, scratch, &job);
        for (size_t k = 0; k < job.n_patches; k++) /* the factors converted at creation */
            for (int r = 0; r < LF_R_COUNT; r++) {
                float *f = c->b->fac[j][k * LF_R_COUNT + (size_t)r];
                if (!f) continue;
                scratch[k].mod.t[r].data = f;
                scratch[k].mod.t[r].dtype = LF_F32;
            }
        lf_status st = lf_job_apply_ws(&job, c->b->fast, c->b->w[j], &c->b->ws[tid]);
        /* W0 is read again only at the next step that lists the job: its mapped pages go back to the page
         * cache meanwhile, so a patched layer is resident once (w[j]), not twice */
        const lf_st_tensor *tg = c->b->sp->plan->jobs[j].target;
        lf_drop_pages(tg->data, (size_t)(tg->end - tg->begin));
        if (st != LF_OK) {
            pthread_mutex_lock(&c->mu);
            if ((size_t)i < c->err_i) {
                c->err_i = (size_t)i;
                c->err = st;
                snprintf(c->msg, sizeof c->msg, "%s", lf_last_error());
            }
            pthread_mutex_unlock(&c->mu);
        }
    }
}

/* Recompute the jobs of s (step t's list, or a caller's) with step t's coefficients. */
static lf_status lf_cpu_backend_run(lf_cpu_backend *b, int t, const lf_step *s) {
    const lf_step_plan *sp = b->sp;
    if (t != b->last + 1 || t < 1 || t > sp->n_steps)
        return lf_err(LF_ERR_ARG, "cpu backend: step %d requested after step %d (steps run 1..%d in order)", t, b->last,
                      sp->n_steps);
    lf_cpu_step_ctx c;
    memset(&c, 0, sizeof c);
    c.b = b, c.s = s, c.t = t, c.err_i = SIZE_MAX;
    pthread_mutex_init(&c.mu, NULL);
    lf_par_for((int64_t)c.s->n_jobs, 1, lf_cpu_step_chunk, &c);
    pthread_mutex_destroy(&c.mu);
    /* the f32 scratch of the jobs (copies of the largest layer per thread) is not kept between steps:
     * the model's forward pass runs between two steps and needs that memory more */
    for (int i = 0; i < LF_PAR_MAX_THREADS; i++) lf_apply_ws_free(&b->ws[i]);
    if (c.err_i != SIZE_MAX) return lf_err(c.err, "step %d: %s", t, c.msg);
    b->last = t;
    return LF_OK;
}

lf_status lf_cpu_backend_step(lf_cpu_backend *b, int t) {
    if (t < 1 || t > b->sp->n_steps) return lf_cpu_backend_run(b, t, NULL);
    return lf_cpu_backend_run(b, t, &b->sp->steps[t - 1]);
}

void lf_cpu_backend_rewind(lf_cpu_backend *b) { b->last = 0; }

lf_status lf_cpu_backend_step_jobs(lf_cpu_backend *b, int t, const size_t *jobs, size_t n) {
    lf_step s;
    memset(&s, 0, sizeof s);
    s.jobs = (size_t *)(uintptr_t)jobs;
    s.n_jobs = n;
    return lf_cpu_backend_run(b, t, &s);
}

const void *lf_cpu_backend_weight(const lf_cpu_backend *b, size_t j, size_t *nbytes) {
    if (j >= b->sp->plan->n_jobs) return NULL;
    const lf_st_tensor *t = b->sp->plan->jobs[j].target;
    if (nbytes) *nbytes = (size_t)(t->end - t->begin);
    return b->w[j];
}
