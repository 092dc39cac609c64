/* nn_embed.cu: the sinusoidal timestep embedding and the token embedding lookup (lf_nn.h).
 *
 *   timestep   t (N) -> emb (N, dim), half = dim / 2 (diffusers get_timestep_embedding, f32 in its
 *              order): exponent = (neg_log * i) / denom, arg = t[n] * e^exponent,
 *              emb[n] = [sin arg, cos arg] ([cos, sin] when flip_sin_to_cos); odd dim: last = 0
 *              (neg_log = -(float)ln(max_period), denom = half - shift, from the host as the CPU has them)
 *   embedding  y (L, D)[i] = table (V, D)[ids[i]] (ids checked on the host)
 * emb and y are stored as t (f32, f16, bf16), each value computed in f32 and rounded once.
 */
#include <math.h>

#include "nn_common.cuh"
#include "lf_nn_cuda.h"

namespace {

__global__ void __launch_bounds__(256) lf_cunn_timestep_embedding_k(void *emb, int et, const float *t, int64_t N,
                                                                    int64_t dim, int flip, float neg_log, float denom) {
    const int64_t n = N * dim, half = dim / 2;
    for (int64_t e = lf_cunn::gtid(); e < n; e += lf_cunn::gstride()) {
        const int64_t s = e / dim, k = e % dim;
        if (k >= 2 * half) {
            lf_cunn::st(emb, et, e, 0.0f);
            continue;
        }
        const int64_t i = k < half ? k : k - half;
        const float arg = t[s] * expf((neg_log * (float)i) / denom);
        const int want_cos = (k < half) == (flip != 0);
        lf_cunn::st(emb, et, e, want_cos ? cosf(arg) : sinf(arg));
    }
}

__global__ void __launch_bounds__(256) lf_cunn_embedding_k(void *y, int t, const float *table, const int32_t *ids,
                                                           int64_t L, int64_t D) {
    const int64_t n = L * D;
    for (int64_t e = lf_cunn::gtid(); e < n; e += lf_cunn::gstride())
        lf_cunn::st(y, t, e, table[(int64_t)ids[e / D] * D + e % D]);
}

} // namespace

extern "C" int lf_cunn_timestep_embedding(void *emb, lf_cunn_type et, const float *t, int64_t N, int64_t dim, int flip_sin_to_cos,
                                          float neg_log, float denom, cudaStream_t s) {
    if (N <= 0 || dim <= 0) return (int)cudaSuccess;
    (void)cudaGetLastError(); /* the return below must be this launch's error, not an earlier call's */
    lf_cunn_timestep_embedding_k<<<lf_cunn::grid_for(N * dim), dim3(lf_cunn::THREADS), 0, s>>>(
        emb, (int)et, t, N, dim, flip_sin_to_cos, neg_log, denom);
    return (int)cudaGetLastError();
}

extern "C" int lf_cunn_embedding(void *y, lf_cunn_type t, const float *table, const int32_t *ids, int64_t L, int64_t D, cudaStream_t s) {
    if (L <= 0 || D <= 0) return (int)cudaSuccess;
    (void)cudaGetLastError();
    lf_cunn_embedding_k<<<lf_cunn::grid_for(L * D), dim3(lf_cunn::THREADS), 0, s>>>(y, (int)t, table, ids, L, D);
    return (int)cudaGetLastError();
}
