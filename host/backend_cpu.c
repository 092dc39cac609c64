/* backend_cpu.c: executes a step plan on the CPU (lf_steps.h).
 *
 * Holds a writable copy of every tensor the plan may patch, starting at W0 ("step 0", nothing
 * applied). Step t recomputes exactly the jobs the plan lists for t, each from the pristine W0 in the
 * mmap'd checkpoint with step t's coefficients (spec P5, P7: never by subtraction; lf_job_apply
 * rounds once, P6), so after step t every tensor equals a fresh merge at step t's strengths, byte for
 * byte. Steps must be applied in order (the list of step t is relative to step t-1).
 * Data shapes: w[j] = bytes of job j's target (same dtype and size as in the checkpoint).
 */
#include <stdlib.h>
#include <string.h>

#include "lorafuse/lf_steps.h"

struct lf_cpu_backend {
    const lf_step_plan *sp;
    int fast;
    int last;              /* last step applied (0: none) */
    unsigned char **w;
    lf_patch *scratch;
};

void lf_cpu_backend_free(lf_cpu_backend *b) {
    if (!b) return;
    for (size_t j = 0; b->w && j < b->sp->plan->n_jobs; j++) free(b->w[j]);
    free(b->w);
    free(b->scratch);
    free(b);
}

lf_status lf_cpu_backend_new(const lf_step_plan *sp, int fast, lf_cpu_backend **out) {
    *out = NULL;
    lf_cpu_backend *b = calloc(1, sizeof *b);
    size_t nj = sp->plan->n_jobs, maxp = 1;
    if (!b) return lf_err(LF_ERR_NOMEM, "out of memory");
    b->sp = sp;
    b->fast = fast;
    for (size_t j = 0; j < nj; j++)
        if (sp->plan->jobs[j].n_patches > maxp) maxp = sp->plan->jobs[j].n_patches;
    b->w = calloc(nj + 1, sizeof *b->w);
    b->scratch = calloc(maxp, sizeof *b->scratch);
    if (!b->w || !b->scratch) {
        lf_cpu_backend_free(b);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    for (size_t j = 0; j < nj; j++) {
        const lf_st_tensor *t = sp->plan->jobs[j].target;
        size_t nb = (size_t)(t->end - t->begin);
        if ((b->w[j] = malloc(nb ? nb : 1)) == NULL) {
            lf_cpu_backend_free(b);
            return lf_err(LF_ERR_NOMEM, "out of memory for '%s' (%zu bytes)", t->name, nb);
        }
        memcpy(b->w[j], t->data, nb);
    }
    *out = b;
    return LF_OK;
}

lf_status lf_cpu_backend_step(lf_cpu_backend *b, int t) {
    const lf_step_plan *sp = b->sp;
    if (t != b->last + 1 || t < 1 || t > sp->n_steps)
        return lf_err(LF_ERR_ARG, "cpu backend: step %d requested after step %d (steps run 1..%d in order)", t, b->last,
                      sp->n_steps);
    const lf_step *s = &sp->steps[t - 1];
    for (size_t i = 0; i < s->n_jobs; i++) {
        lf_job job;
        lf_step_job(sp, t, s->jobs[i], b->scratch, &job);
        lf_status st = lf_job_apply(&job, b->fast, b->w[s->jobs[i]]);
        if (st != LF_OK) return lf_err_wrap(st, "step %d: ", t);
    }
    b->last = t;
    return LF_OK;
}

const void *lf_cpu_backend_weight(const lf_cpu_backend *b, size_t j, size_t *nbytes) {
    if (j >= b->sp->plan->n_jobs) return NULL;
    const lf_st_tensor *t = b->sp->plan->jobs[j].target;
    if (nbytes) *nbytes = (size_t)(t->end - t->begin);
    return b->w[j];
}
