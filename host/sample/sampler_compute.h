/* sampler_compute.h: the sampling loop of lf_sampler.h on a compute (host/base/compute.h), for a pipeline
 * whose model runs on a device: the latent, the model's input and output and the sampler's state stay in
 * the compute's memory; only the ancestral / SDE noise crosses (drawn on the host, n floats per step).
 *
 * x is an f32 buffer of c (lf_compute_alloc_f32) of n floats holding the initial latent, updated in place;
 * the callback's denoise gets the model input x_in and writes out, both f32 buffers of c (n floats). The
 * element-wise updates are c->sample_update; on lf_compute_cpu() this is lf_sampler_run_rngs, the same
 * bytes. Work memory: six f32 buffers of n floats from c. Errors as lf_sampler_run_rngs,
 * plus the compute's.
 */
#ifndef LF_SAMPLER_COMPUTE_H
#define LF_SAMPLER_COMPUTE_H

#include "host/base/compute.h"
#include "lorafuse/lf_sampler.h"

lf_status lf_sampler_run_on(lf_sampler *s, lf_compute *c, float *x, size_t n, lf_rng *rngs, int n_rngs,
                            const lf_sampler_cb *cb);

#endif
