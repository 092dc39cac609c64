/* steps_device.c: execute a prompt's per-step plan (lf_step_plan.h) with the device backend
 * (lf_device.h): the whole step is one grouped apply.
 *
 * The device model is created from the step plan's lf_plan, whose patches are laid out job-major in
 * plan order, exactly as the step plan's coefficient rows are (coef[t * n_coef + patch_base[j] + k]).
 * A step is then: that row becomes the pending coefficients, and lf_dev_apply rewrites the jobs whose
 * coefficients changed, which for consecutive steps is the step's job list. Built in every build (it
 * uses only the device API; without CUDA lf_device_open already refused).
 */
#include "lorafuse/lf_device.h"
#include "lorafuse/lf_step_plan.h"

lf_status lf_dev_model_create_steps(lf_device *dev, const lf_step_plan *sp, const lf_dev_opts *opts,
                                    lf_dev_model **out) {
    *out = NULL;
    lf_dev_model *dm = NULL;
    lf_status st = lf_dev_model_create_plan(dev, sp->plan, opts, &dm);
    if (st != LF_OK) return st;
    if (lf_dev_n_patches(dm) != sp->n_coef) {
        lf_dev_model_free(dm);
        return lf_err(LF_ERR_ARG, "step plan has %zu coefficients per step, the device model %zu patches", sp->n_coef,
                      lf_dev_n_patches(dm));
    }
    for (size_t j = 0; j < lf_dev_n_jobs(dm); j++)
        if (lf_dev_job_patch0(dm, j) != sp->patch_base[j]) {
            lf_dev_model_free(dm);
            return lf_err(LF_ERR_ARG, "layer '%s': device patch index %zu, step plan %zu", sp->plan->jobs[j].target->name,
                          lf_dev_job_patch0(dm, j), sp->patch_base[j]);
        }
    /* created "pending = plan placeholders": make step 0 (nothing applied) the pending state */
    st = sp->n_coef ? lf_dev_set_coefs(dm, sp->coef) : LF_OK;
    if (st != LF_OK) {
        lf_dev_model_free(dm);
        return st;
    }
    *out = dm;
    return LF_OK;
}

lf_status lf_dev_apply_step(lf_dev_model *dm, const lf_step_plan *sp, int t, void *stream) {
    if (t < 0 || t > sp->n_steps) return lf_err(LF_ERR_ARG, "step %d is outside 0..%d", t, sp->n_steps);
    lf_status st = sp->n_coef ? lf_dev_set_coefs(dm, sp->coef + (size_t)t * sp->n_coef) : LF_OK;
    return st != LF_OK ? st : lf_dev_apply(dm, stream);
}
