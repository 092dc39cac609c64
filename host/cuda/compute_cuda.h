/* compute_cuda.h: the CUDA compute backend (host/base/compute.h) — every model operator on the device:
 * host/cuda/compute_cuda.c over the kernels of kernels/cuda/nn_*.cu and cuBLAS (docs/cuda.md "Compute
 * backend"). Every build has it: without CUDA or cuBLAS lf_compute_cuda_open answers
 * LF_ERR_UNSUPPORTED (device_none.c), so callers and tests link in every build and skip.
 */
#ifndef LF_COMPUTE_CUDA_H
#define LF_COMPUTE_CUDA_H

#include "host/base/compute.h"
#include "lorafuse/lf_device.h"

/* A compute backend on dev (lf_device_open), with its own non-blocking stream and cuBLAS handle; all
 * its work is ordered on that stream. Free with (*out)->destroy(*out), before lf_device_close(dev).
 * LF_ERR_UNSUPPORTED when this build has no CUDA or no cuBLAS; LF_ERR_DEVICE / LF_ERR_NOMEM naming
 * the CUDA or cuBLAS call that failed. */
lf_status lf_compute_cuda_open(lf_device *dev, lf_compute **out);
/* lf_device_open(ordinal) and lf_compute_cuda_open on it, the device released by the compute's destroy;
 * desc (cap bytes) gets lf_device_describe. The lf_gen_cuda_fn of lf_generate.h: the program that links
 * the device library hands it to generate, serve and batch. */
lf_status lf_compute_cuda_device(int ordinal, lf_compute **out, char *desc, size_t cap);

#endif
