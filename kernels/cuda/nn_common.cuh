/* nn_common.cuh: what the model-runtime kernels (kernels/cuda/nn_*.cu) share: the block size, capped
 * 1-D grids with grid-stride loops, fixed-order block reductions through shared memory (the tree
 * order depends only on blockDim, so a row's result does not depend on scheduling), and the typed
 * loads and stores of activations (storage f32, f16 or bf16 as a kernel argument, the math in f32:
 * the branch is the same for every thread, and the CUDA emulation's launch rewrite takes no template
 * kernels). Device code only. */
#ifndef LF_NN_COMMON_CUH
#define LF_NN_COMMON_CUH

#include <stdint.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "lf_nn_cuda.h"

namespace lf_cunn {

constexpr int THREADS = 256;     /* every nn kernel: one power of two (the reductions halve it) */
constexpr int64_t MAX_GRID = 4096; /* 1-D grids: enough blocks to fill any GPU; the rest loops */

static inline dim3 grid_for(int64_t n) {
    int64_t b = (n + THREADS - 1) / THREADS;
    return dim3((unsigned)(b < 1 ? 1 : b > MAX_GRID ? MAX_GRID : b));
}

__device__ __forceinline__ int64_t gtid() { return (int64_t)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t gstride() { return (int64_t)gridDim.x * blockDim.x; }

/* sum (is_max 0) or max (is_max 1) of v over the block; sh: blockDim.x floats; every thread gets it */
__device__ __forceinline__ float block_reduce(float v, float *sh, int is_max) {
    const unsigned t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (unsigned o = blockDim.x / 2; o > 0; o >>= 1) {
        if (t < o) sh[t] = is_max ? fmaxf(sh[t], sh[t + o]) : sh[t] + sh[t + o];
        __syncthreads();
    }
    const float r = sh[0];
    __syncthreads(); /* sh is reused by the next reduction */
    return r;
}

/* element i of an array stored as t (lf_cunn_type), widened exactly to f32 */
__device__ __forceinline__ float ld(const void *p, int t, int64_t i) {
    if (t == LF_CUNN_F16) return __half2float(static_cast<const __half *>(p)[i]);
    if (t == LF_CUNN_BF16) return __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]);
    return static_cast<const float *>(p)[i];
}

/* v stored as t, rounded to nearest even (f16 overflows to Inf, as cvt.rn) */
__device__ __forceinline__ void st(void *p, int t, int64_t i, float v) {
    if (t == LF_CUNN_F16) static_cast<__half *>(p)[i] = __float2half_rn(v);
    else if (t == LF_CUNN_BF16) static_cast<__nv_bfloat16 *>(p)[i] = __float2bfloat16_rn(v);
    else static_cast<float *>(p)[i] = v;
}

/* 0.5 x (1 + erf(x / sqrt 2)) */
__device__ __forceinline__ float gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f)); }

} // namespace lf_cunn

#endif
