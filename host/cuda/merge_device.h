/* merge_device.h: `lorafuse merge --backend cuda`: every job of a merge plan patched on the device by
 * the apply kernels (lf_dev_model_create_plan, one lf_dev_apply, lf_dev_download per job), the
 * lf_merge_opts.apply hook of lf_merge.h. Results within the device tolerances of docs/cuda.md of the
 * CPU's; tensors no adapter touches are copied by lf_merge itself, byte for byte.
 */
#ifndef LF_MERGE_DEVICE_H
#define LF_MERGE_DEVICE_H

#include "lorafuse/lf_model.h"

/* ctx: an int, the CUDA device ordinal. LF_ERR_UNSUPPORTED without CUDA or a device; otherwise the
 * device API's errors (naming the CUDA call and the layer). */
lf_status lf_dev_merge_apply(void *ctx, const lf_plan *plan, void **outs);

#endif
