/* nn_norm.cu: GroupNorm and LayerNorm (lf_nn.h), one kernel.
 *
 *   x (N, C, S), C in `groups` groups of cg = C / groups channels; per (n, g) over its cnt = cg * S
 *   values: mean = sum / cnt, var = sum((x - mean)^2) / cnt (biased, as torch),
 *   y = (x - mean) * rstd * gamma[c] + beta[c], rstd = 1 / sqrt(var + eps)
 *   LayerNorm (M, D) = GroupNorm with N = M, C = D, S = 1, groups = 1.
 *
 * One block per (n, g); each thread sums its strided share in f32, the block tree adds the partial
 * sums (nn_common.cuh); two passes (mean first) avoid the cancellation of sum(x^2) - mean^2. The CPU
 * reference sums in double: the f32 partials differ by a few ulp of the statistics (docs/cuda.md).
 */
#include "nn_common.cuh"
#include "lf_nn_cuda.h"

namespace {

__global__ void __launch_bounds__(256) lf_cunn_norm_k(float *y, const float *x, const float *gamma, const float *beta,
                                                      int64_t C, int64_t S, int64_t groups, float eps) {
    __shared__ float red[256];
    const int64_t ng = blockIdx.x, n = ng / groups, g = ng % groups, cg = C / groups, cnt = cg * S;
    const float *xg = x + (n * C + g * cg) * S;
    float *yg = y + (n * C + g * cg) * S;
    float acc = 0.0f;
    for (int64_t i = threadIdx.x; i < cnt; i += blockDim.x) acc += xg[i];
    const float mean = lf_cunn::block_reduce(acc, red, 0) / (float)cnt;
    acc = 0.0f;
    for (int64_t i = threadIdx.x; i < cnt; i += blockDim.x) {
        const float d = xg[i] - mean;
        acc += d * d;
    }
    const float var = lf_cunn::block_reduce(acc, red, 0) / (float)cnt;
    const float rstd = 1.0f / sqrtf(var + eps);
    for (int64_t i = threadIdx.x; i < cnt; i += blockDim.x) {
        const int64_t c = g * cg + i / S;
        const float ga = gamma ? gamma[c] : 1.0f, be = beta ? beta[c] : 0.0f;
        yg[i] = (xg[i] - mean) * rstd * ga + be;
    }
}

} // namespace

extern "C" int lf_cunn_norm(float *y, const float *x, const float *gamma, const float *beta, int64_t N, int64_t C,
                            int64_t S, int64_t groups, float eps, cudaStream_t s) {
    if (N <= 0 || C <= 0 || S <= 0 || groups <= 0) return (int)cudaSuccess;
    if (N * groups > INT32_MAX || C % groups) return (int)cudaErrorInvalidValue;
    (void)cudaGetLastError(); /* the return below must be this launch's error, not an earlier call's */
    lf_cunn_norm_k<<<dim3((unsigned)(N * groups)), dim3(lf_cunn::THREADS), 0, s>>>(y, x, gamma, beta, C, S, groups,
                                                                                  eps);
    return (int)cudaGetLastError();
}
