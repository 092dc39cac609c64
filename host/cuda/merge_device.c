/* merge_device.c: the plan of `lorafuse merge` applied on the device (merge_device.h): W = W0 +
 * Σ sᵢ·ΔWᵢ for every job in one grouped apply, each result downloaded into the writer's buffer. */
#include "merge_device.h"

#include "lorafuse/lf_device.h"

lf_status lf_dev_merge_apply(void *ctx, const lf_plan *plan, void **outs) {
    int ordinal = ctx ? *(const int *)ctx : 0;
    lf_device *dev = NULL;
    lf_dev_model *dm = NULL;
    lf_dev_opts o;
    lf_dev_opts_default(&o);
    lf_status st = lf_device_open(ordinal, &dev);
    if (st == LF_OK) st = lf_dev_model_create_plan(dev, plan, &o, &dm);
    if (st == LF_OK) st = lf_dev_apply(dm, NULL);
    for (size_t j = 0; st == LF_OK && j < plan->n_jobs; j++) st = lf_dev_download(dm, j, outs[j]);
    lf_dev_model_free(dm);
    lf_device_close(dev);
    return st == LF_OK ? LF_OK : lf_err_wrap(st, "merge on CUDA device %d: ", ordinal);
}
