/* compute_cuda_prof.h: the CUDA compute's op clock (compute_cuda_prof.c, host/base/op_clock.h), private
 * to host/cuda: compute_cuda.c hands it out as lf_compute.clock. */
#ifndef LF_COMPUTE_CUDA_PROF_H
#define LF_COMPUTE_CUDA_PROF_H

#include "host/base/compute.h"

/* a clock of NVTX ranges and events around each op on stream (a cudaStream_t); LF_ERR_NOMEM */
lf_status lf_cuda_op_clock_open(void *stream, lf_op_clock *out);

#endif
