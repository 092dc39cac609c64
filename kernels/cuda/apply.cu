/* apply.cu: the grouped, fused adapter apply on the device: one launch rewrites every dirty
 * layer (job) of a model, W = round(W0 + sum_i C_i(W0, s_i)), from a device work list of
 * (job, 64x64 tile) items of mixed shapes, dtypes and algorithms. CPU twin: lf_job_apply
 * (host/plan/apply.c) -> lf_module_contrib_ref (host/adapter/module_contrib.c) -> kernels/cpu/<algo>_ref.c; per-element
 * math from lorafuse/lf_math.h (the same functions, so the rounding rules are shared).
 *
 * Formula per element (o, c) of flat(W) (O, K), K = I*khw, accumulated in f32 from acc = W0 (P5, P6):
 *   concatenated plain LoRA/LoCon (all patches of the job without DoRA, Tucker lora_mid expanded
 *   into an effective down on the host, strengths folded into up per rank column):
 *       acc += sum_r (s_p(r) * gamma_p(r) * up[o][r]) * down[r][c]         (FMA, or TF32 tensor cores)
 *   additive term (LoRA under DoRA, LoHa, LoKr, GLoRA, full/norm): d = dW_raw[o][c],
 *       acc = fmaf(s*gamma, d, acc)                                         (lf_math_axpy)
 *       DoRA: acc += s*(k*Wc - W0), Wc = fmaf(gamma, d, W0), k per row / input channel (precomputed
 *       by this kernel's norm pass, mode 1, once per model: the norms do not depend on s)
 *   OFT:    acc += (sum_n interp(R_k[n][m], s) W0[k*b+n][c]) * interp(rescale, s) - W0
 *   BOFT:   acc += (sum_n Q_g[m][n] W0[g*G+n][c]) * interp(rescale, s) - W0   (Q = composite of the
 *           interpolated butterfly factors, built on the host when s changes)
 *   IA3:    acc += W0 * (1 + s*w) - W0                                      (lf_math_ia3_contrib)
 *   then W[o][c] = round_dtype(acc) once (lf_math_store_f16 / _bf16), non-finite flags the job.
 *   A job whose coefficients are all 0 gets W0's bytes copied raw (exact restore, P7).
 * Shapes: tile 64 (rows of O) x 64 (columns of K), 128 threads; thread t owns rows (t/16)*8 .. +8 and
 *   columns (t%16)*4 .. +4 of the tile. Block b finds its (job, tile) by binary search in the prefix
 *   sums of tiles of the dirty list. Factors f32 row-major: up (O, R), down (R, K), term factors as in
 *   lf_dev_abi.h.
 * Precision: FMA path: fp32 with fmaf in rank order (bit-identical dW to the CPU reference for
 *   LOWRANK/LoHa/LoKr/GLoRA terms); tensor-core path (concatenated rank >= 16): TF32 WMMA m16n16k8,
 *   fp32 accumulate, 3xTF32 split (hi*hi + hi*lo + lo*hi) for f32 weights. Compiled with
 *   --fmad=false (CMakeLists.txt) so a*b+c is never contracted behind the shared math's back.
 * Versions:
 *   v1 (this): one kernel template (mode apply / DoRA norm), scalar or 4-wide loads of W, factors
 *   read from L2 through shared memory per rank chunk. Never run on a GPU yet (docs/cuda.md).
 * Test: tests/cuda/gpu_vs_cpu.c (ctest -L gpu); bench: bench/ (helper "bench").
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <climits>
#include <cstdint>

#include "lf_dev_abi.h"
#include "kernels/common/lf_math.h"

namespace {

constexpr int TM = LF_DEV_TM, TN = LF_DEV_TN, NT = LF_DEV_THREADS;
constexpr int KCT = LF_DEV_KC_TC, KCF = LF_DEV_KC_FMA;
constexpr int AS_LD = KCT + 4;  /* tensor-core A chunk (TM, KCT) */
constexpr int BS_LD = TN + 4;   /* tensor-core B chunk (KCT, TN) and the C staging tile (TM, TN) */
constexpr int AF_LD = TM + 4;   /* FMA A chunk, transposed (KCF, TM) */
constexpr int SMEM_FLOATS = TM * AS_LD + KCT * BS_LD; /* >= TM*BS_LD and >= KCF*(AF_LD+TN) */
static_assert(SMEM_FLOATS >= TM * BS_LD, "C staging must fit");
static_assert(SMEM_FLOATS >= KCF * (AF_LD + TN), "FMA chunks must fit");
static_assert(TM == 64 && TN == 64 && NT == 128, "the thread map below assumes 64x64 tiles, 128 threads");
static_assert(KCF == 16 && AF_LD % 32 == 4, "fma_product's store map assumes 16-rank chunks, AF_LD = 4 mod 32");

/* ---- typed access to W / W0 ------------------------------------------------------------------ */

/* 16-bit <-> f32 with the hardware conversions (cvt): the same values as the shared software routines
 * of lf_half.h (round to nearest even, subnormals kept, overflow to Inf); only a NaN's payload may
 * differ, and a NaN is flagged either way */
__device__ __forceinline__ float h16_to_f32(uint16_t h, int dt) {
    return dt == LF_DDT_F16 ? __half2float(__ushort_as_half(h)) : __bfloat162float(__ushort_as_bfloat16(h));
}
__device__ __forceinline__ uint16_t f32_to_h16(float x, int dt) {
    return dt == LF_DDT_F16 ? __half_as_ushort(__float2half_rn(x)) : __bfloat16_as_ushort(__float2bfloat16_rn(x));
}

__device__ __forceinline__ float ld1(const void *p, int dt, int64_t i) {
    return dt == LF_DDT_F32 ? static_cast<const float *>(p)[i] : h16_to_f32(static_cast<const uint16_t *>(p)[i], dt);
}

/* row i (0..7) of the thread's 8x4 elements of a (TM, BS_LD) shared tile, as one 16-byte access: a
 * quarter-warp's 8 lanes then read 128 contiguous bytes (scalar reads at stride 4 floats were 4-way
 * bank conflicts) */
__device__ __forceinline__ float4 &tile_row(float *t, int ty, int tx, int i) {
    return *reinterpret_cast<float4 *>(t + (ty * 8 + i) * BS_LD + tx * 4);
}

/* 4 elements from index i (i % 4 == 0, pointer 16-byte aligned: checked by the host, vec_ok) */
__device__ __forceinline__ void ld4(const void *p, int dt, int64_t i, float v[4]) {
    if (dt == LF_DDT_F32) {
        float4 q = *reinterpret_cast<const float4 *>(static_cast<const float *>(p) + i);
        v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
        return;
    }
    uint2 q = *reinterpret_cast<const uint2 *>(static_cast<const uint16_t *>(p) + i);
    uint16_t h[4] = {(uint16_t)(q.x & 0xffffu), (uint16_t)(q.x >> 16), (uint16_t)(q.y & 0xffffu),
                     (uint16_t)(q.y >> 16)};
#pragma unroll
    for (int k = 0; k < 4; k++) v[k] = h16_to_f32(h[k], dt);
}

/* stores round once (the hardware twin of lf_dev_round16) and return true if a stored value is not finite: for f16/bf16 the
 * rounded bits are checked, since an f32-finite sum can overflow the 16-bit format */
__device__ __forceinline__ bool st1(void *p, int dt, int64_t i, float v) {
    if (dt == LF_DDT_F32) {
        static_cast<float *>(p)[i] = v;
        return !isfinite(v);
    }
    const uint16_t h = f32_to_h16(v, dt);
    static_cast<uint16_t *>(p)[i] = h;
    return lf_dev_bits16_bad(h, dt);
}

__device__ __forceinline__ bool st4(void *p, int dt, int64_t i, const float v[4]) {
    if (dt == LF_DDT_F32) {
        *reinterpret_cast<float4 *>(static_cast<float *>(p) + i) = make_float4(v[0], v[1], v[2], v[3]);
        return !isfinite(v[0]) || !isfinite(v[1]) || !isfinite(v[2]) || !isfinite(v[3]);
    }
    uint16_t h[4];
    bool bad = false;
#pragma unroll
    for (int k = 0; k < 4; k++) {
        h[k] = f32_to_h16(v[k], dt);
        bad |= lf_dev_bits16_bad(h[k], dt) != 0;
    }
    uint2 q;
    q.x = (uint32_t)h[0] | ((uint32_t)h[1] << 16);
    q.y = (uint32_t)h[2] | ((uint32_t)h[3] << 16);
    *reinterpret_cast<uint2 *>(static_cast<uint16_t *>(p) + i) = q;
    return bad;
}

/* ---- exact restore: W0's bytes, no arithmetic ------------------------------------------------ */

__device__ void copy_tile(const lf_djob &J, int o0, int c0, int tid) {
    const int c = c0 + lf_dev_thr_col(tid), span = lf_dev_span(c, J.K);
    bool wide = J.dtype == LF_DDT_F32;
    for (int i = 0; i < 8; i++) {
        int o = o0 + lf_dev_thr_row(tid, i);
        if (o >= J.O || span == 0) continue;
        int64_t at = (int64_t)o * J.K + c;
        if (J.vec_ok) {
            if (wide) *reinterpret_cast<uint4 *>(static_cast<uint32_t *>(J.w) + at) =
                          *reinterpret_cast<const uint4 *>(static_cast<const uint32_t *>(J.w0) + at);
            else *reinterpret_cast<uint2 *>(static_cast<uint16_t *>(J.w) + at) =
                     *reinterpret_cast<const uint2 *>(static_cast<const uint16_t *>(J.w0) + at);
            continue;
        }
        for (int j = 0; j < span; j++) {
            if (wide) static_cast<uint32_t *>(J.w)[at + j] = static_cast<const uint32_t *>(J.w0)[at + j];
            else static_cast<uint16_t *>(J.w)[at + j] = static_cast<const uint16_t *>(J.w0)[at + j];
        }
    }
}

/* ---- low-rank product, FMA path --------------------------------------------------------------
 * out[i][j] = sum_k A'(arow0 + ty*8 + i, k) * B(k, c0 + tx*4 + j), k in rank order with fmaf from 0
 * (the CPU reference's order, lf_matmul_ref), where A'(r, k) = A[r*lda + k] for 0 <= r < arows, else
 * 0, times coef[rp[k]] * gamma[rp[k]] when rp != NULL (strength folded into up). Block-cooperative. */
__device__ __forceinline__ void fma_product(float out[8][4], const float *__restrict__ A, int lda, int arow0,
                                            int arows, const float *__restrict__ B, int K, int c0, int R,
                                            const int32_t *__restrict__ rp, const float *__restrict__ coef,
                                            const float *__restrict__ gamma, float *sm, int tid, int ty, int tx) {
    float *As = sm;             /* (KCF, AF_LD): transposed A chunk */
    float *Bs = sm + KCF * AF_LD; /* (KCF, TN) */
#pragma unroll
    for (int i = 0; i < 8; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) out[i][j] = 0.0f;
    for (int kc = 0; kc < R; kc += KCF) {
        int kn = R - kc < KCF ? R - kc : KCF;
        for (int e = tid; e < TM * KCF; e += NT) {
            /* a warp stores 8 ranks of 4 rows: banks (4k + row) % 32 all differ (16 ranks of 2 rows
             * were 2-way conflicts, AF_LD = 68 being 4 mod 32) */
            const int lane = e & 31, w = e >> 5, k = (lane & 7) + 8 * (w & 1), row = (w >> 1) * 4 + (lane >> 3);
            const int ar = arow0 + row;
            float v = 0.0f;
            if (k < kn && ar >= 0 && ar < arows) {
                v = A[(int64_t)ar * lda + kc + k];
                if (rp) {
                    int p = rp[kc + k];
                    v = p >= 0 ? v * (coef[p] * gamma[p]) : 0.0f;
                }
            }
            As[k * AF_LD + row] = v;
        }
        for (int e = tid; e < KCF * TN; e += NT) {
            int k = e / TN, col = e % TN, c = c0 + col;
            Bs[k * TN + col] = (k < kn && c < K) ? B[(int64_t)(kc + k) * K + c] : 0.0f;
        }
        __syncthreads();
        for (int k = 0; k < kn; k++) {
            float4 a0 = *reinterpret_cast<const float4 *>(As + k * AF_LD + ty * 8);
            float4 a1 = *reinterpret_cast<const float4 *>(As + k * AF_LD + ty * 8 + 4);
            float4 b4 = *reinterpret_cast<const float4 *>(Bs + k * TN + tx * 4);
            float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w}, b[4] = {b4.x, b4.y, b4.z, b4.w};
#pragma unroll
            for (int i = 0; i < 8; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) out[i][j] = fmaf(a[i], b[j], out[i][j]);
        }
        __syncthreads();
    }
}

/* ---- low-rank product, tensor cores (TF32 WMMA m16n16k8, fp32 accumulate) ---------------------
 * Concatenated LoRA of the job: C(TM, TN) = (up * scale) @ down over rcat (a multiple of KCT, zero
 * padded). Warp w computes rows (w/2)*32 .. +32, columns (w%2)*32 .. +32 as 2x2 fragments. split:
 * 3xTF32 (x = hi + lo, hi*hi + hi*lo + lo*hi). The result is left in sm as (TM, BS_LD) floats. */
__device__ void tc_product(const lf_djob &J, int o0, int c0, const float *__restrict__ coef,
                           const float *__restrict__ gamma, bool split, float *sm, int tid) {
    using namespace nvcuda;
    float *As = sm, *Bs = sm + TM * AS_LD;
    int warp = tid >> 5, wr = warp >> 1, wc = warp & 1;
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc[2][2];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.0f);
    for (int kc = 0; kc < J.rcat; kc += KCT) {
        for (int e = tid; e < TM * KCT; e += NT) {
            int row = e / KCT, k = e % KCT, o = o0 + row;
            float v = 0.0f;
            int p = J.rank_patch[kc + k];
            if (o < J.O && p >= 0) v = J.up[(int64_t)o * J.rcat + kc + k] * (coef[p] * gamma[p]);
            As[row * AS_LD + k] = v;
        }
        for (int e = tid; e < KCT * TN; e += NT) {
            int k = e / TN, col = e % TN, c = c0 + col;
            Bs[k * BS_LD + col] = c < J.K ? J.down[(int64_t)(kc + k) * J.K + c] : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < KCT; kk += 8) {
            /* one A fragment (hi, lo) at a time, B reloaded per row fragment: fewer live registers */
#pragma unroll
            for (int i = 0; i < 2; i++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> a, al;
                wmma::load_matrix_sync(a, As + (wr * 32 + i * 16) * AS_LD + kk, AS_LD);
#pragma unroll
                for (int t = 0; t < a.num_elements; t++) {
                    float x = a.x[t], h = wmma::__float_to_tf32(x);
                    a.x[t] = h;
                    al.x[t] = split ? wmma::__float_to_tf32(x - h) : 0.0f;
                }
#pragma unroll
                for (int j = 0; j < 2; j++) {
                    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> b, bl;
                    wmma::load_matrix_sync(b, Bs + kk * BS_LD + wc * 32 + j * 16, BS_LD);
#pragma unroll
                    for (int t = 0; t < b.num_elements; t++) {
                        float x = b.x[t], h = wmma::__float_to_tf32(x);
                        b.x[t] = h;
                        bl.x[t] = split ? wmma::__float_to_tf32(x - h) : 0.0f;
                    }
                    if (split) {
                        wmma::mma_sync(acc[i][j], al, b, acc[i][j]);
                        wmma::mma_sync(acc[i][j], a, bl, acc[i][j]);
                    }
                    wmma::mma_sync(acc[i][j], a, b, acc[i][j]);
                }
            }
        }
        __syncthreads();
    }
    /* the chunks are dead now: stage C over them */
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++)
            wmma::store_matrix_sync(sm + (wr * 32 + i * 16) * BS_LD + wc * 32 + j * 16, acc[i][j], BS_LD,
                                    wmma::mem_row_major);
    __syncthreads();
}

/* ---- work-list lookup --------------------------------------------------------------------------- */

struct item {
    int jidx, flags, o0, c0;
};

__device__ __forceinline__ item find_item(const lf_dlaunch &L) {
    const int bid = (int)blockIdx.x;
    const int lo = lf_dev_find_list(L.tstart, L.n, bid);
    item it;
    it.jidx = L.list[lo];
    it.flags = L.flags[lo];
    lf_dev_tile_origin(bid - L.tstart[lo], L.jobs[it.jidx].K, &it.o0, &it.c0);
    return it;
}

/* w[j] = W0[o][cb + j] (0 outside the weight) */
__device__ __forceinline__ void load_w0_row(const lf_djob &J, int o, int cb, float w[4]) {
#pragma unroll
    for (int j = 0; j < 4; j++) w[j] = 0.0f;
    const int span = lf_dev_span(cb, J.K);
    if (o >= J.O || span == 0) return;
    int64_t at = (int64_t)o * J.K + cb;
    if (J.vec_ok) ld4(J.w0, J.dtype, at, w);
    else
#pragma unroll
        for (int j = 0; j < 4; j++) /* fixed trip count: w stays in registers */
            if (j < span) w[j] = ld1(J.w0, J.dtype, at + j);
}

/* acc[i][j] = W0 at the thread's elements (0 outside the weight) */
__device__ __forceinline__ void load_w0(const lf_djob &J, int o0, int cb, int ty, float acc[8][4]) {
#pragma unroll
    for (int i = 0; i < 8; i++) load_w0_row(J, o0 + lf_dev_thr_row(ty << 4, i), cb, acc[i]);
}

/* W = round(acc) once; returns true if a written value is not finite (after the rounding) */
__device__ __forceinline__ bool store_w(const lf_djob &J, int o0, int cb, int ty, const float acc[8][4]) {
    bool bad = false;
    const int span = lf_dev_span(cb, J.K);
#pragma unroll
    for (int i = 0; i < 8; i++) {
        int o = o0 + lf_dev_thr_row(ty << 4, i);
        if (o >= J.O || span == 0) continue;
        int64_t at = (int64_t)o * J.K + cb;
        if (J.vec_ok) bad |= st4(J.w, J.dtype, at, acc[i]);
        else
#pragma unroll
            for (int j = 0; j < 4; j++)
                if (j < span) bad |= st1(J.w, J.dtype, at + j, acc[i][j]);
    }
    return bad;
}

/* ---- kernel 1: jobs whose only contribution is the concatenated LoRA (the hot path) ------------ */

__global__ void __launch_bounds__(LF_DEV_THREADS, 4) lf_lora_kernel_v1(const lf_dlaunch L) {
    __shared__ __align__(128) float sm[SMEM_FLOATS];
    const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
    const item it = find_item(L);
    const lf_djob &J = L.jobs[it.jidx];
    if (it.flags & LF_DITEM_COPY) {
        copy_tile(J, it.o0, it.c0, tid);
        return;
    }
    const int cb = it.c0 + lf_dev_thr_col(tid);
    /* the product first, W0 after: only one 8x4 array is live during the product */
    float acc[8][4];
    const bool prod = J.rcat > 0 && !(it.flags & LF_DITEM_SKIP_CAT);
    if (prod) {
        if (J.tc) {
            tc_product(J, it.o0, it.c0, L.coef, L.gamma, J.tc == 2, sm, tid);
#pragma unroll
            for (int i = 0; i < 8; i++) {
                const float4 v = tile_row(sm, ty, tx, i);
                acc[i][0] = v.x, acc[i][1] = v.y, acc[i][2] = v.z, acc[i][3] = v.w;
            }
        } else {
            fma_product(acc, J.up, J.rcat, it.o0, J.O, J.down, J.K, it.c0, J.rcat, J.rank_patch, L.coef, L.gamma,
                        sm, tid, ty, tx);
        }
    } else {
#pragma unroll
        for (int i = 0; i < 8; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
    }
#pragma unroll
    for (int i = 0; i < 8; i++) {
        float w0[4];
        load_w0_row(J, it.o0 + lf_dev_thr_row(tid, i), cb, w0);
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = prod ? w0[j] + acc[i][j] : w0[j];
    }
    if (store_w(J, it.o0, cb, ty, acc)) L.bad[it.jidx] = 1; /* benign race: every writer stores 1 */
}

/* ---- kernel 2: jobs with any other term (and the DoRA norm pass, mode 1) ------------------------
 * The accumulator and the raw dW of the current term live in shared memory (the thread's own
 * elements only, so no barrier is needed between them); per-element code runs in a rolled loop. */

constexpr int ACC_FLOATS = TM * BS_LD;
constexpr int GEN_FLOATS = 2 * ACC_FLOATS + KCF * (AF_LD + TN);
static_assert(GEN_FLOATS - ACC_FLOATS >= SMEM_FLOATS, "tensor-core staging must fit after Acc");
static_assert(GEN_FLOATS * 4 <= 48 * 1024, "static shared memory limit");

__global__ void __launch_bounds__(LF_DEV_THREADS, 3) lf_terms_kernel_v1(const lf_dlaunch L, int mode) {
    __shared__ __align__(128) float gsm[GEN_FLOATS];
    float *Acc = gsm, *Dt = gsm + ACC_FLOATS, *Wk = gsm + 2 * ACC_FLOATS;
    const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
    const item it = find_item(L);
    const lf_djob &J = L.jobs[it.jidx];
    const int o0 = it.o0, c0 = it.c0, cb = c0 + lf_dev_thr_col(tid), K = J.K;
    if (mode == 0 && (it.flags & LF_DITEM_COPY)) {
        copy_tile(J, o0, c0, tid);
        return;
    }
    {
        float a[8][4];
        load_w0(J, o0, cb, ty, a);
        if (mode == 0 && J.rcat > 0 && !(it.flags & LF_DITEM_SKIP_CAT)) {
            if (J.tc) {
                tc_product(J, o0, c0, L.coef, L.gamma, J.tc == 2, Dt, tid);
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    const float4 v = tile_row(Dt, ty, tx, i);
                    a[i][0] += v.x, a[i][1] += v.y, a[i][2] += v.z, a[i][3] += v.w;
                }
                __syncthreads(); /* Dt is rewritten below */
            } else {
                float d[8][4];
                fma_product(d, J.up, J.rcat, o0, J.O, J.down, K, c0, J.rcat, J.rank_patch, L.coef, L.gamma, Wk,
                            tid, ty, tx);
#pragma unroll
                for (int i = 0; i < 8; i++)
#pragma unroll
                    for (int j = 0; j < 4; j++) a[i][j] += d[i][j];
            }
        }
#pragma unroll
        for (int i = 0; i < 8; i++) tile_row(Acc, ty, tx, i) = make_float4(a[i][0], a[i][1], a[i][2], a[i][3]);
    }

    for (int t = 0; t < J.nterm; t++) {
        const lf_dterm &T = L.terms[J.term0 + t];
        const float s = L.coef[T.patch], g = L.gamma[T.patch];
        if (mode == 0 && s == 0.0f) continue; /* P2: strength 0 adds nothing (uniform branch) */
        if (mode == 1 && T.dora_axis == 0) continue;
        if (o0 + TM <= T.row_off || o0 >= T.row_off + T.rows) continue; /* tile outside the slice */
        const int kind = T.kind;

        /* products of the low-rank kinds into Dt (all threads, uniform) */
        const int nprod = kind == LF_TK_LOHA ? 2 : kind == LF_TK_LOWRANK ? 1 : 0;
        for (int q = 0; q < nprod; q++) {
            float e[8][4];
            fma_product(e, q ? T.a2 : T.a, q ? T.r2 : T.r, o0 - T.row_off, T.rows, q ? T.b2 : T.b, K, c0,
                        q ? T.r2 : T.r, nullptr, nullptr, nullptr, Wk, tid, ty, tx);
#pragma unroll
            for (int i = 0; i < 8; i++) { /* LoHa: M1 (.) M2 (loha_ref.c) */
                float4 &d = tile_row(Dt, ty, tx, i);
                d = q ? make_float4(d.x * e[i][0], d.y * e[i][1], d.z * e[i][2], d.w * e[i][3])
                      : make_float4(e[i][0], e[i][1], e[i][2], e[i][3]);
            }
        }

        const bool additive = kind <= LF_TK_FULL;
        double rs = 0.0; /* mode 1, output axis: the row's sum of squares over this thread's columns */
#pragma unroll 1
        for (int e = 0; e < 32; e++) {
            /* row i, column j rotated by (tx / 8, ty % 2): the 4 lanes that share a bank (tx, tx + 8, and
             * the two rows ty of a warp, 8 * 68 floats apart = 0 mod 32) touch 4 different columns */
            const int i = e >> 2, j = (e + (tx >> 3) + 2 * (ty & 1)) & 3;
            const int o = o0 + lf_dev_thr_row(tid, i), ol = o - T.row_off, c = cb + j;
            const bool ok = o < J.O && ol >= 0 && ol < T.rows && c < K;
            if (ok) {
                float *acc = Acc + (ty * 8 + i) * BS_LD + tx * 4 + j;
                const float prod = additive && kind <= LF_TK_LOHA ? Dt[(ty * 8 + i) * BS_LD + tx * 4 + j] : 0.0f;
                if (mode == 0) {
                    *acc = lf_dev_term_apply(&T, &J, *acc, o, c, s, g, prod);
                } else if (additive && T.dora_axis) {
                    /* norm pass: Acc holds W0 */
                    const float wc = lf_math_axpy(*acc, g, lf_dev_term_dv(&T, J.I, K, J.khw, ol, c, prod));
                    if (T.dora_axis == 1) rs += (double)wc * wc;
                    else atomicAdd(T.ss + lf_dev_dora_index(2, ol, c, J.khw), (double)wc * wc);
                }
            }
            if (mode == 1 && T.dora_axis == 1 && (e & 3) == 3) { /* the row's 4 elements are done */
                /* reduce the row over the 16 threads that share it (one half-warp), one atomic */
                for (int off = 8; off > 0; off >>= 1) rs += __shfl_xor_sync(0xffffffffu, rs, off);
                if (tx == 0 && o < J.O && ol >= 0 && ol < T.rows) atomicAdd(T.ss + ol, rs);
                rs = 0.0;
            }
        }
        __syncthreads(); /* Dt / Wk are reused by the next term's products */
    }

    if (mode == 1) return;
    float a[8][4];
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const float4 v = tile_row(Acc, ty, tx, i);
        a[i][0] = v.x, a[i][1] = v.y, a[i][2] = v.z, a[i][3] = v.w;
    }
    if (store_w(J, o0, cb, ty, a)) L.bad[it.jidx] = 1;
}

} // namespace

extern "C" int lf_cuda_apply_launch(const lf_dlaunch *L, int mode, int64_t ntiles, void *stream) {
    if (ntiles <= 0 || L->n <= 0) return (int)cudaSuccess;
    if (ntiles > INT_MAX) return (int)cudaErrorInvalidValue;
    dim3 grid((unsigned)ntiles), block(LF_DEV_THREADS);
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    /* cudaGetLastError below must report this launch: an earlier failed runtime call (of this library
     * or the caller) leaves its error pending until read, and would be blamed on the launch */
    (void)cudaGetLastError();
    if (mode == 0) lf_lora_kernel_v1<<<grid, block, 0, s>>>(*L);
    else lf_terms_kernel_v1<<<grid, block, 0, s>>>(*L, mode - 1);
    return (int)cudaGetLastError();
}
