/* steps_device.c: execute a prompt's per-step plan (lf_step_plan.h) with the device backend
 * (lf_device.h): the whole step is one grouped apply.
 *
 * The device model is created from the step plan's jobs (all of them, or a caller's subset: device job
 * i is plan job jobs[i]); the plan's patches are laid out job-major in plan order, exactly as the step
 * plan's coefficient rows are (coef[t * n_coef + patch_base[j] + k]), so device patch p of job i is
 * row entry patch_base[jobs[i]] + (p - patch0(i)). A step is then: that row becomes the pending
 * coefficients, and lf_dev_apply rewrites the jobs whose coefficients changed, which for consecutive
 * steps is the step's job list. The model keeps nothing of the plan, so another plan whose jobs have the
 * same layout (lf_dev_model_fits_steps) may step it too. Built in every build (it uses only the device
 * API; without CUDA lf_device_open already refused).
 */
#include <stdlib.h>

#include "lorafuse/lf_device.h"
#include "lorafuse/lf_step_plan.h"

/* plan job of device job i */
static size_t lf_steps_job(const size_t *jobs, size_t i) { return jobs ? jobs[i] : i; }

/* step t's coefficients of the device model's patches (n = lf_dev_n_patches) into c */
static void lf_steps_row(const lf_dev_model *dm, const lf_step_plan *sp, const size_t *jobs, int t, float *c) {
    const float *row = sp->coef + (size_t)t * sp->n_coef;
    for (size_t i = 0; i < lf_dev_n_jobs(dm); i++) {
        size_t j = lf_steps_job(jobs, i), p0 = lf_dev_job_patch0(dm, i);
        for (size_t k = 0; k < sp->plan->jobs[j].n_patches; k++) c[p0 + k] = row[sp->patch_base[j] + k];
    }
}

static lf_status lf_steps_set(lf_dev_model *dm, const lf_step_plan *sp, const size_t *jobs, int t) {
    size_t np = lf_dev_n_patches(dm);
    if (!np) return LF_OK;
    float *c = malloc(np * sizeof *c);
    if (!c) return lf_err(LF_ERR_NOMEM, "out of memory");
    lf_steps_row(dm, sp, jobs, t, c);
    lf_status st = lf_dev_set_coefs(dm, c);
    free(c);
    return st;
}

lf_status lf_dev_model_fits_steps(const lf_dev_model *dm, const lf_step_plan *sp, const size_t *jobs, size_t n) {
    size_t nj = jobs ? n : sp->plan->n_jobs;
    if (nj != lf_dev_n_jobs(dm))
        return lf_err(LF_ERR_ARG, "a device model of %zu layers for %zu jobs of a step plan", lf_dev_n_jobs(dm), nj);
    for (size_t i = 0; i < nj; i++) {
        size_t j = lf_steps_job(jobs, i);
        if (j >= sp->plan->n_jobs) return lf_err(LF_ERR_ARG, "job %zu of a plan of %zu", j, sp->plan->n_jobs);
        size_t np = i + 1 < nj ? lf_dev_job_patch0(dm, i + 1) : lf_dev_n_patches(dm);
        if (np - lf_dev_job_patch0(dm, i) != sp->plan->jobs[j].n_patches)
            return lf_err(LF_ERR_ARG, "layer '%s': %zu device patches, step plan %zu", sp->plan->jobs[j].target->name,
                          np - lf_dev_job_patch0(dm, i), sp->plan->jobs[j].n_patches);
    }
    return LF_OK;
}

lf_status lf_dev_model_create_steps_jobs(lf_device *dev, const lf_step_plan *sp, const size_t *jobs, size_t n,
                                         const lf_dev_opts *opts, lf_dev_model **out) {
    *out = NULL;
    lf_dev_model *dm = NULL;
    lf_status st = LF_OK;
    if (!jobs) {
        st = lf_dev_model_create_plan(dev, sp->plan, opts, &dm);
    } else {
        lf_job *sub = malloc((n ? n : 1) * sizeof *sub);
        if (!sub) return lf_err(LF_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            if (jobs[i] >= sp->plan->n_jobs) {
                free(sub);
                return lf_err(LF_ERR_ARG, "job %zu of a plan of %zu", jobs[i], sp->plan->n_jobs);
            }
            sub[i] = sp->plan->jobs[jobs[i]];
        }
        st = lf_dev_model_create(dev, sub, n, opts, &dm);
        free(sub);
    }
    if (st != LF_OK) return st;
    st = lf_dev_model_fits_steps(dm, sp, jobs, n);
    /* created "pending = plan placeholders": make step 0 (nothing applied) the pending state */
    if (st == LF_OK) st = lf_steps_set(dm, sp, jobs, 0);
    if (st != LF_OK) {
        lf_dev_model_free(dm);
        return st;
    }
    *out = dm;
    return LF_OK;
}

lf_status lf_dev_model_create_steps(lf_device *dev, const lf_step_plan *sp, const lf_dev_opts *opts,
                                    lf_dev_model **out) {
    return lf_dev_model_create_steps_jobs(dev, sp, NULL, sp->plan->n_jobs, opts, out);
}

lf_status lf_dev_apply_step_jobs(lf_dev_model *dm, const lf_step_plan *sp, const size_t *jobs, int t, void *stream) {
    if (t < 0 || t > sp->n_steps) return lf_err(LF_ERR_ARG, "step %d is outside 0..%d", t, sp->n_steps);
    lf_status st = lf_steps_set(dm, sp, jobs, t);
    return st != LF_OK ? st : lf_dev_apply(dm, stream);
}

lf_status lf_dev_apply_step(lf_dev_model *dm, const lf_step_plan *sp, int t, void *stream) {
    return lf_dev_apply_step_jobs(dm, sp, NULL, t, stream);
}
