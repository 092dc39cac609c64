/* lora_sgmv.cu: segmented low-rank terms of a mixed batch (lf_sgmv_cuda.h), the S-LoRA / Punica SGMV
 * pattern: every job's rows of one Linear layer in one shrink and one expand launch.
 *
 *   shrink  t[m][col] = sum_i x[m][i] * down_k[r][i]          (col = term k's first column + r)
 *   expand  y[m][o] += sum_col t[m][col] * (scale_k * up_k[o][r])
 * for the rows m of each segment, its terms' ranks concatenated (rsum columns of t per row).
 * Shapes: shrink tiles 32 rows x 32 columns of t, 256 threads, thread t: column t % 32, rows
 * (t / 32) * 4 .. + 4, the reduction over `in` in chunks of 32 through shared memory (padded to 33:
 * a warp's 32 columns read 32 different banks). expand tiles 32 rows x 64 outputs, thread t: output
 * t % 64, rows (t / 64) * 8 .. + 8, the reduction over rsum in chunks of 32. Each block finds its
 * (segment, tile) in the prefix sums of the launch's work list, which travels by value (kernel argument,
 * < 4 KB). Segments' rows are disjoint (the host checks), so every y element has one writer per launch.
 * Precision: f32 factors read as they are, f16/bf16 widened exactly; f32 fmaf sums in index order.
 * CPU twin: the reference of tests/cuda/gpu_sgmv.c; the per-job cuBLAS path of host/runtime/compute_mix.c.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>

#include "lf_nn_cuda.h"
#include "lf_sgmv_cuda.h"

namespace {

constexpr int NT = 256, TR = 32, TC = 32, TO = 64, KC = 32, LD = KC + 1;

struct kseg {
    int64_t row0, toff; /* toff: the segment's first float of t */
    int32_t rows, rsum, term0, nterm, tile0s, tile0e;
};
struct kterm {
    const void *down, *up;
    int32_t rank, dtype, col;
    float scale;
};
struct klaunch {
    float *y;
    const float *x;
    float *t;
    int32_t in, out, nseg, nterm;
    kseg seg[LF_SGMV_MAX_SEGS];
    kterm term[LF_SGMV_MAX_TERMS];
};
static_assert(sizeof(klaunch) <= 4000, "kernel arguments are limited to 4 KB");

__device__ __forceinline__ float ld(const void *p, int dt, int64_t i) {
    if (dt == LF_CUNN_F16) return __half2float(static_cast<const __half *>(p)[i]);
    if (dt == LF_CUNN_BF16) return __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]);
    return static_cast<const float *>(p)[i];
}

/* the segment of block b (tile0: the shrink's or the expand's prefix sums) and the tile within it */
__device__ __forceinline__ int find_seg(const klaunch &L, int b, bool expand, int *tile) {
    int s = 0;
    for (int i = 1; i < L.nseg; i++)
        if ((expand ? L.seg[i].tile0e : L.seg[i].tile0s) <= b) s = i;
    *tile = b - (expand ? L.seg[s].tile0e : L.seg[s].tile0s);
    return s;
}

/* column c (0 <= c < rsum) of segment S: its term (launch index) and rank row */
__device__ __forceinline__ void col_term(const klaunch &L, const kseg &S, int c, int *k, int *r) {
    int j = S.term0;
    while (j + 1 < S.term0 + S.nterm && L.term[j + 1].col <= c) j++;
    *k = j;
    *r = c - L.term[j].col;
}

__global__ void __launch_bounds__(NT) lf_cunn_lora_shrink_k(const klaunch L) {
    __shared__ float xs[TR * LD];
    __shared__ float ds[TC * LD];
    __shared__ int cterm[TC];
    __shared__ int crow[TC];
    const int tid = threadIdx.x, col = tid % TC, rg = tid / TC;
    int tile;
    const kseg &S = L.seg[find_seg(L, (int)blockIdx.x, false, &tile)];
    const int ctiles = (S.rsum + TC - 1) / TC;
    const int r0 = (tile / ctiles) * TR, c0 = (tile % ctiles) * TC;
    if (tid < TC) {
        int k = -1, r = 0;
        if (c0 + tid < S.rsum) col_term(L, S, c0 + tid, &k, &r);
        cterm[tid] = k, crow[tid] = r;
    }
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int kc = 0; kc < L.in; kc += KC) {
        const int kn = L.in - kc < KC ? L.in - kc : KC;
        __syncthreads(); /* cterm written; the previous chunk read */
        for (int e = tid; e < TR * KC; e += NT) {
            const int i = e / KC, k = e % KC;
            xs[i * LD + k] = r0 + i < S.rows && k < kn ? L.x[(S.row0 + r0 + i) * L.in + kc + k] : 0.0f;
        }
        for (int e = tid; e < TC * KC; e += NT) {
            const int c = e / KC, k = e % KC, tk = cterm[c];
            ds[c * LD + k] = tk >= 0 && k < kn ? ld(L.term[tk].down, L.term[tk].dtype, (int64_t)crow[c] * L.in + kc + k)
                                               : 0.0f;
        }
        __syncthreads();
        for (int k = 0; k < kn; k++) {
            const float d = ds[col * LD + k];
#pragma unroll
            for (int j = 0; j < 4; j++) acc[j] = fmaf(xs[(rg * 4 + j) * LD + k], d, acc[j]);
        }
    }
    if (c0 + col >= S.rsum) return;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const int i = r0 + rg * 4 + j;
        if (i < S.rows) L.t[S.toff + (int64_t)i * S.rsum + c0 + col] = acc[j];
    }
}

__global__ void __launch_bounds__(NT) lf_cunn_lora_expand_k(const klaunch L) {
    __shared__ float ts[TR * LD];
    __shared__ float us[TO * LD];
    __shared__ int cterm[KC];
    __shared__ int crow[KC];
    const int tid = threadIdx.x, oc = tid % TO, rg = tid / TO;
    int tile;
    const kseg &S = L.seg[find_seg(L, (int)blockIdx.x, true, &tile)];
    const int otiles = (L.out + TO - 1) / TO;
    const int r0 = (tile / otiles) * TR, o0 = (tile % otiles) * TO;
    float acc[8];
#pragma unroll
    for (int j = 0; j < 8; j++) acc[j] = 0.0f;
    for (int kc = 0; kc < S.rsum; kc += KC) {
        const int kn = S.rsum - kc < KC ? S.rsum - kc : KC;
        __syncthreads(); /* the previous chunk read */
        if (tid < KC) {
            int k = -1, r = 0;
            if (tid < kn) col_term(L, S, kc + tid, &k, &r);
            cterm[tid] = k, crow[tid] = r;
        }
        for (int e = tid; e < TR * KC; e += NT) {
            const int i = e / KC, k = e % KC;
            ts[i * LD + k] = r0 + i < S.rows && k < kn ? L.t[S.toff + (int64_t)(r0 + i) * S.rsum + kc + k] : 0.0f;
        }
        __syncthreads(); /* cterm */
        for (int e = tid; e < TO * KC; e += NT) {
            const int o = e / KC, k = e % KC, tk = cterm[k];
            float v = 0.0f;
            if (tk >= 0 && o0 + o < L.out) {
                const kterm &T = L.term[tk];
                v = T.scale * ld(T.up, T.dtype, (int64_t)(o0 + o) * T.rank + crow[k]);
            }
            us[o * LD + k] = v;
        }
        __syncthreads();
        for (int k = 0; k < kn; k++) {
            const float u = us[oc * LD + k];
#pragma unroll
            for (int j = 0; j < 8; j++) acc[j] = fmaf(ts[(rg * 8 + j) * LD + k], u, acc[j]);
        }
    }
    if (o0 + oc >= L.out) return;
#pragma unroll
    for (int j = 0; j < 8; j++) {
        const int i = r0 + rg * 8 + j;
        if (i < S.rows) {
            float *p = L.y + (S.row0 + i) * L.out + o0 + oc;
            *p = *p + acc[j];
        }
    }
}

int64_t rsum_of(const lf_sgmv_seg &g, const lf_sgmv_term *terms) {
    int64_t r = 0;
    for (size_t k = 0; k < g.n_terms; k++) r += terms[g.term0 + k].rank;
    return r;
}

cudaError_t launch(klaunch &L, int64_t tiles_s, int64_t tiles_e, int *launches, const char **failed, cudaStream_t s) {
    if (L.nseg == 0) return cudaSuccess;
    if (tiles_s > INT_MAX || tiles_e > INT_MAX) return cudaErrorInvalidValue;
    (void)cudaGetLastError(); /* the returns below must be these launches' errors, not an earlier call's */
    const dim3 gs((unsigned)tiles_s), ge((unsigned)tiles_e), block(NT);
    lf_cunn_lora_shrink_k<<<gs, block, 0, s>>>(L);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) {
        *failed = "lf_cunn_lora_shrink";
        return e;
    }
    lf_cunn_lora_expand_k<<<ge, block, 0, s>>>(L);
    e = cudaGetLastError();
    if (e != cudaSuccess) *failed = "lf_cunn_lora_expand";
    else if (launches) *launches += 2;
    return e;
}

} // namespace

extern "C" int64_t lf_cunn_lora_sgmv_scratch(const lf_sgmv_seg *segs, size_t n_segs, const lf_sgmv_term *terms) {
    int64_t n = 0;
    for (size_t i = 0; i < n_segs; i++)
        if (segs[i].rows > 0) n += segs[i].rows * rsum_of(segs[i], terms);
    return n;
}

extern "C" int lf_cunn_lora_sgmv(float *y, const float *x, int64_t M, int64_t in, int64_t out, const lf_sgmv_seg *segs,
                                 size_t n_segs, const lf_sgmv_term *terms, size_t n_terms, float *t, int *launches,
                                 const char **failed, cudaStream_t s) {
    const char *dummy;
    if (!failed) failed = &dummy;
    *failed = "lf_cunn_lora_sgmv (its arguments)";
    if (launches) *launches = 0;
    if (M < 0 || in < 0 || out < 0 || M > INT_MAX || in > INT_MAX || out > INT_MAX) return (int)cudaErrorInvalidValue;
    for (size_t i = 0; i < n_segs; i++) {
        const lf_sgmv_seg &g = segs[i];
        if (g.rows < 0 || g.row0 < 0 || g.row0 + g.rows > M || g.term0 > n_terms || g.n_terms > n_terms - g.term0)
            return (int)cudaErrorInvalidValue;
        for (size_t k = 0; k < g.n_terms; k++) {
            const lf_sgmv_term &T = terms[g.term0 + k];
            if (T.rank < 0 || T.rank > INT_MAX / 2 || (T.rank > 0 && (!T.down || !T.up)) || T.dtype < LF_CUNN_F32 ||
                T.dtype > LF_CUNN_BF16)
                return (int)cudaErrorInvalidValue;
        }
        if (rsum_of(g, terms) > INT_MAX / 2) return (int)cudaErrorInvalidValue;
        for (size_t j = 0; j < i && g.rows > 0; j++) /* disjoint rows: one writer per y element */
            if (segs[j].rows > 0 && g.row0 < segs[j].row0 + segs[j].rows && segs[j].row0 < g.row0 + g.rows)
                return (int)cudaErrorInvalidValue;
    }
    if (M == 0 || out == 0) return (int)cudaSuccess;
    klaunch L;
    L.y = y, L.x = x, L.t = t, L.in = (int32_t)in, L.out = (int32_t)out, L.nseg = 0, L.nterm = 0;
    int64_t tiles_s = 0, tiles_e = 0, toff = 0;
    const int64_t otiles = (out + TO - 1) / TO;
    for (size_t i = 0; i < n_segs; i++) {
        const lf_sgmv_seg &g = segs[i];
        if (g.rows == 0) continue;
        /* the segment's terms in pieces of at most LF_SGMV_MAX_TERMS: every piece but the last fills a launch,
         * so two pieces of one segment (the same rows) never share one */
        for (size_t p = 0; p < g.n_terms; p += LF_SGMV_MAX_TERMS) {
            const size_t np = g.n_terms - p < LF_SGMV_MAX_TERMS ? g.n_terms - p : LF_SGMV_MAX_TERMS;
            int64_t rsum = 0;
            for (size_t k = 0; k < np; k++) rsum += terms[g.term0 + p + k].rank;
            if (rsum == 0) continue;
            if (L.nseg == LF_SGMV_MAX_SEGS || L.nterm + (int64_t)np > LF_SGMV_MAX_TERMS) {
                cudaError_t e = launch(L, tiles_s, tiles_e, launches, failed, s);
                if (e != cudaSuccess) return (int)e;
                L.nseg = 0, L.nterm = 0, tiles_s = 0, tiles_e = 0;
            }
            kseg &K = L.seg[L.nseg++];
            const int64_t rtiles = (g.rows + TR - 1) / TR;
            K.row0 = g.row0, K.toff = toff, K.rows = (int32_t)g.rows, K.rsum = (int32_t)rsum;
            K.term0 = L.nterm, K.nterm = (int32_t)np;
            K.tile0s = (int32_t)tiles_s, K.tile0e = (int32_t)tiles_e;
            tiles_s += rtiles * ((rsum + TC - 1) / TC);
            tiles_e += rtiles * otiles;
            if (tiles_s > INT_MAX || tiles_e > INT_MAX) return (int)cudaErrorInvalidValue;
            int32_t col = 0;
            for (size_t k = 0; k < np; k++) {
                const lf_sgmv_term &T = terms[g.term0 + p + k];
                kterm &D = L.term[L.nterm++];
                D.down = T.down, D.up = T.up, D.rank = (int32_t)T.rank, D.dtype = T.dtype, D.col = col, D.scale = T.scale;
                col += (int32_t)T.rank;
            }
            toff += g.rows * rsum;
        }
    }
    return (int)launch(L, tiles_s, tiles_e, launches, failed, s);
}
