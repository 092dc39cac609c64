/* lf_sample_cuda.h: the launcher of the samplers' element-wise updates on the device
 * (kernels/cuda/nn_sample.cu), the formulas of kernels/common/lf_sample_update.h. C-callable from gcc
 * and nvcc; pointers are device memory (f32), the launch is enqueued on stream s and its cudaError_t
 * returned (cudaSuccess when n <= 0). */
#ifndef LF_SAMPLE_CUDA_H
#define LF_SAMPLE_CUDA_H

#include <stdint.h>

#include <cuda_runtime.h>

#include "kernels/common/lf_sample_update.h"

#ifdef __cplusplus
extern "C" {
#endif

/* lf_su_elem(u, b, i) for every i < n; b: LF_SU_BUFS pointers (those past lf_su_nbufs(u) unused) */
int lf_cunn_sample_update(const lf_sample_upd *u, float *const *b, int64_t n, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
