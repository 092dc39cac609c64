/* nn_norm.cu: GroupNorm and LayerNorm (lf_nn.h).
 *
 *   x (N, C, S), C in `groups` groups of cg = C / groups channels; per (n, g) over its cnt = cg * S
 *   values: mean = sum / cnt, var = sum((x - mean)^2) / cnt (biased, as torch),
 *   y = (x - mean) * rstd * gamma[c] + beta[c], rstd = 1 / sqrt(var + eps)
 *   LayerNorm (M, D) = GroupNorm with N = M, C = D, S = 1, groups = 1.
 *   GroupNorm + SiLU: y = v / (1 + exp(-v)) of that v, in the same pass (lf_cunn_ew's SiLU expression,
 *   so the result is the two ops' bit for bit).
 *
 * Few, large groups (the UNet's 32 groups of up to 40960 values per sample) would give one block per
 * (n, g) only 64 blocks for a whole H100, so such a group is cut into `chunks` contiguous pieces, one
 * block each: a block finds its piece's mean and M2 = sum((x - mean_k)^2) in two passes, then every
 * block of the group combines the pieces' (count, mean, M2) in a fixed order (Chan et al.'s pairwise
 * update: delta = mean_b - mean_a, mean += delta n_b / n, M2 = M2_a + M2_b + delta^2 n_a n_b / n) and
 * normalises its own piece. The chunk count depends only on the shape (never on the device), so results
 * are the same on every GPU. Many small groups (LayerNorm rows) keep one block per (n, g). Sums are f32
 * with fixed-order block reductions (nn_common.cuh); the CPU reference sums in double: the statistics
 * differ by a few ulp (docs/cuda.md). x and y are stored as t (f32, f16, bf16): the statistics and the
 * normalisation are f32 whatever the storage.
 */
#include "nn_common.cuh"
#include "lf_nn_cuda.h"

namespace {

constexpr int64_t TARGET_BLOCKS = 1024; /* enough to fill any current GPU several times over */
constexpr int64_t MIN_PIECE = 2048;     /* values per piece: below this a piece costs more than it saves */
constexpr int64_t MAX_CHUNKS = 64;      /* each block combines every piece of its group */

int64_t lf_cunn_norm_chunks(int64_t N, int64_t C, int64_t S, int64_t groups) {
    const int64_t cnt = C / groups * S, by_grid = (TARGET_BLOCKS + N * groups - 1) / (N * groups),
                  by_size = cnt / MIN_PIECE;
    int64_t k = by_grid < by_size ? by_grid : by_size;
    return k < 1 ? 1 : k > MAX_CHUNKS ? MAX_CHUNKS : k;
}

/* mean and M2 of x[off, off + len) over the block (two passes over the values) */
__device__ __forceinline__ void piece_stats(const void *x, int t, int64_t off, int64_t len, float *red, float *mean,
                                            float *m2) {
    float acc = 0.0f;
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) acc += lf_cunn::ld(x, t, off + i);
    const float m = lf_cunn::block_reduce(acc, red, 0) / (float)len;
    acc = 0.0f;
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
        const float d = lf_cunn::ld(x, t, off + i) - m;
        acc += d * d;
    }
    *mean = m;
    *m2 = lf_cunn::block_reduce(acc, red, 0);
}

/* y[off + i] for i in [i0, i1) of group g, whose values start at channel g * cg; silu: SiLU of it */
__device__ __forceinline__ void piece_apply(void *y, const void *x, int t, int64_t off, int64_t i0, int64_t i1, int64_t g,
                                            int64_t cg, int64_t S, float mean, float rstd, const float *gamma,
                                            const float *beta, bool silu) {
    for (int64_t i = i0 + threadIdx.x; i < i1; i += blockDim.x) {
        const int64_t c = g * cg + i / S;
        const float ga = gamma ? gamma[c] : 1.0f, be = beta ? beta[c] : 0.0f;
        const float v = (lf_cunn::ld(x, t, off + i) - mean) * rstd * ga + be;
        lf_cunn::st(y, t, off + i, silu ? v / (1.0f + expf(-v)) : v);
    }
}

/* one block per (n, g) */
__global__ void __launch_bounds__(256) lf_cunn_norm_k(void *y, const void *x, int t, const float *gamma,
                                                      const float *beta, int64_t C, int64_t S, int64_t groups, float eps,
                                                      bool silu) {
    __shared__ float red[256];
    const int64_t ng = blockIdx.x, g = ng % groups, cg = C / groups, cnt = cg * S, off = ng * cnt;
    float mean, m2;
    piece_stats(x, t, off, cnt, red, &mean, &m2);
    piece_apply(y, x, t, off, 0, cnt, g, cg, S, mean, 1.0f / sqrtf(m2 / (float)cnt + eps), gamma, beta, silu);
}

/* blockIdx.x = piece k of blockIdx.y = (n, g); ws[(ng * chunks + k) * 2 + {0, 1}] = its mean, M2 */
__global__ void __launch_bounds__(256) lf_cunn_norm_pieces_k(float *ws, const void *x, int t, int64_t C, int64_t S,
                                                             int64_t groups) {
    __shared__ float red[256];
    const int64_t k = blockIdx.x, chunks = gridDim.x, ng = blockIdx.y, cnt = C / groups * S;
    const int64_t len = (cnt + chunks - 1) / chunks, i0 = k * len, i1 = i0 + len < cnt ? i0 + len : cnt;
    float mean, m2;
    piece_stats(x, t, ng * cnt + i0, i1 - i0, red, &mean, &m2);
    if (threadIdx.x == 0) ws[(ng * chunks + k) * 2] = mean, ws[(ng * chunks + k) * 2 + 1] = m2;
}

__global__ void __launch_bounds__(256) lf_cunn_norm_combine_k(void *y, const void *x, int t, const float *ws,
                                                              const float *gamma, const float *beta, int64_t C,
                                                              int64_t S, int64_t groups, float eps, bool silu) {
    const int64_t k = blockIdx.x, chunks = gridDim.x, ng = blockIdx.y, g = ng % groups, cg = C / groups,
                  cnt = cg * S, len = (cnt + chunks - 1) / chunks;
    const float *p = ws + ng * chunks * 2;
    int64_t n = 0;
    float mean = 0.0f, m2 = 0.0f;
    for (int64_t j = 0; j < chunks; j++) { /* every thread, same order: the same bits in every block */
        const int64_t j0 = j * len, nb = (j0 + len < cnt ? j0 + len : cnt) - j0;
        const float w = (float)nb / (float)(n + nb), d = p[2 * j] - mean;
        mean += d * w;
        m2 += p[2 * j + 1] + d * d * ((float)n * w);
        n += nb;
    }
    const int64_t i0 = k * len, i1 = i0 + len < cnt ? i0 + len : cnt;
    piece_apply(y, x, t, ng * cnt, i0, i1, g, cg, S, mean, 1.0f / sqrtf(m2 / (float)cnt + eps), gamma, beta, silu);
}

int norm_launch(void *y, const void *x, lf_cunn_type t, const float *gamma, const float *beta, int64_t N, int64_t C,
                int64_t S, int64_t groups, float eps, float *ws, cudaStream_t s, bool silu) {
    if (N <= 0 || C <= 0 || S <= 0 || groups <= 0) return (int)cudaSuccess;
    if (N * groups > INT32_MAX || C % groups) return (int)cudaErrorInvalidValue;
    const int64_t k = lf_cunn_norm_chunks(N, C, S, groups);
    if (k > 1 && !ws) return (int)cudaErrorInvalidValue;
    (void)cudaGetLastError(); /* the return below must be this launch's error, not an earlier call's */
    if (k == 1) {
        lf_cunn_norm_k<<<dim3((unsigned)(N * groups)), dim3(lf_cunn::THREADS), 0, s>>>(y, x, (int)t, gamma, beta, C, S,
                                                                                      groups, eps, silu);
        return (int)cudaGetLastError();
    }
    const dim3 grid((unsigned)k, (unsigned)(N * groups));
    lf_cunn_norm_pieces_k<<<grid, dim3(lf_cunn::THREADS), 0, s>>>(ws, x, (int)t, C, S, groups);
    const int e = (int)cudaGetLastError();
    if (e != (int)cudaSuccess) return e;
    lf_cunn_norm_combine_k<<<grid, dim3(lf_cunn::THREADS), 0, s>>>(y, x, (int)t, ws, gamma, beta, C, S, groups, eps,
                                                                   silu);
    return (int)cudaGetLastError();
}

} // namespace

extern "C" int64_t lf_cunn_norm_workspace(int64_t N, int64_t C, int64_t S, int64_t groups) {
    if (N <= 0 || C <= 0 || S <= 0 || groups <= 0 || C % groups) return 0;
    const int64_t k = lf_cunn_norm_chunks(N, C, S, groups);
    return k > 1 ? 2 * k * N * groups : 0;
}

extern "C" int lf_cunn_norm(void *y, const void *x, lf_cunn_type t, const float *gamma, const float *beta, int64_t N,
                            int64_t C, int64_t S, int64_t groups, float eps, float *ws, cudaStream_t s) {
    return norm_launch(y, x, t, gamma, beta, N, C, S, groups, eps, ws, s, false);
}

extern "C" int lf_cunn_norm_silu(void *y, const void *x, lf_cunn_type t, const float *gamma, const float *beta,
                                 int64_t N, int64_t C, int64_t S, int64_t groups, float eps, float *ws,
                                 cudaStream_t s) {
    return norm_launch(y, x, t, gamma, beta, N, C, S, groups, eps, ws, s, true);
}
