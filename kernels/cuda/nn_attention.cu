/* nn_attention.cu: the row softmax of attention scores (lf_nn_softmax_rows), with the causal mask.
 *
 *   x (rows, cols) in place: x = exp(x - max) / sum exp(x - max); a row of all -inf becomes zeros.
 *   causal: row r is query i = q0 + r % rows_per_q, and column j > i is set to -inf first.
 *
 * One block per row: max, then the sum of the exponentials, through the fixed-order block tree
 * (nn_common.cuh). The scores themselves are cublasSgemmStridedBatched products
 * (host/cuda/compute_cuda.c), as are the products with V.
 */
#include <math.h>

#include "nn_common.cuh"
#include "lf_nn_cuda.h"

namespace {

__global__ void __launch_bounds__(256) lf_cunn_softmax_rows_k(float *x, int64_t cols, int causal, int64_t rows_per_q,
                                                              int64_t q0) {
    __shared__ float red[256];
    float *row = x + (int64_t)blockIdx.x * cols;
    const int64_t last = causal ? q0 + (int64_t)blockIdx.x % rows_per_q : cols - 1; /* columns past it: masked */
    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        if (j > last) row[j] = -INFINITY;
        else mx = fmaxf(mx, row[j]);
    }
    mx = lf_cunn::block_reduce(mx, red, 1);
    if (mx == -INFINITY) { /* block-uniform: every thread has the same mx */
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) row[j] = 0.0f;
        return;
    }
    float sum = 0.0f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        const float e = expf(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    const float inv = 1.0f / lf_cunn::block_reduce(sum, red, 0);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) row[j] *= inv;
}

} // namespace

extern "C" int lf_cunn_softmax_rows(float *x, int64_t rows, int64_t cols, int causal, int64_t rows_per_q, int64_t q0,
                                    cudaStream_t s) {
    if (rows <= 0 || cols <= 0) return (int)cudaSuccess;
    if (rows > INT32_MAX || (causal && rows_per_q <= 0)) return (int)cudaErrorInvalidValue;
    (void)cudaGetLastError(); /* the return below must be this launch's error, not an earlier call's */
    lf_cunn_softmax_rows_k<<<dim3((unsigned)rows), dim3(lf_cunn::THREADS), 0, s>>>(x, cols, causal, rows_per_q, q0);
    return (int)cudaGetLastError();
}
