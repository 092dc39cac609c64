/* nn_internal.h: what several operator files of kernels/cpu/nn/ share (private to this folder).
 *
 * Threading and determinism, the rule of every operator here: each op runs on the pool of
 * host/base/pool.h in chunks fixed by the shapes alone (lf_par_for); each matrix product is a set of
 * single-threaded cblas_sgemm calls on disjoint row or column blocks; each reduction (norm statistics,
 * softmax sums) stays inside one chunk with a fixed lane order. So the bytes do not depend on the
 * thread count. Scratch (im2col columns, attention scores) comes from the pool's per-thread buffers,
 * bounded by processing bands of output rows / query rows, so no op mallocs per call.
 * BLAS takes int sizes: every matrix dimension handed to it must stay below 2^31.
 */
#ifndef LF_NN_INTERNAL_H
#define LF_NN_INTERNAL_H

#include <stdint.h>

#include "host/base/pool.h"
#include "lorafuse/lf_tensor.h"

/* f32 values of the weight W (n values): W's own memory when it is f32 and 4-byte aligned, else W
 * converted (exactly, for F16/BF16) into the one shared conversion buffer of the operators, rows in
 * parallel on the pool. The buffer is grown on demand and kept (lf_nn_scratch_bytes); it is valid until
 * the next call, and the ops are called from one thread at a time (host/runtime's forward passes).
 * LF_ERR_SHAPE / LF_ERR_DTYPE / LF_ERR_NOMEM (message naming `op`) when W holds another number of
 * values, an unreadable dtype, or memory fails. */
lf_status lf_nn_weight_f32(const lf_view *W, int64_t n, const char *op, const float **out);

/* Element-wise ops: elements per chunk. */
#define LF_NN_EW_GRAIN ((int64_t)1 << 15)
/* Matrix products: at most this many blocks, each at least LF_NN_GEMM_MIN_FLOP (smaller products run
 * as one sgemm). */
#define LF_NN_GEMM_MAX_PARTS 8
#define LF_NN_GEMM_MIN_FLOP 4.0e6
/* ... and at least this long along the cut axis (BLAS repacks the uncut operand for every block). */
#define LF_NN_GEMM_MIN_BLOCK 128
/* Batch invariance: OpenBLAS sums a product in another order on its small-matrix / gemv paths, which
 * it takes for calls of m * n * k <= 1e6 (more below in linear.c); on its packed path an output's sum
 * depends on k alone, not on how m and n were cut. So a sample's bytes stay the same in any batch when
 * each of its sgemm calls either has a shape fixed by the sample alone or m * n * k >= this. */
#define LF_NN_GEMM_MIN_MNK 2.0e6

/* The hottest element-wise loops get an AVX2 clone picked at load time (GNU ifunc); both clones do the
 * same f32 operations per element and lane (no FMA: -ffp-contract=off), so the bytes are the same. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && defined(__linux__)
#define LF_NN_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define LF_NN_CLONES
#endif

/* ---- exp (SiLU, quick_gelu, softmax) ------------------------------------------------------- */

/* e^x in f32: x = n ln2 + r (|r| <= ln2/2, Cody-Waite split of ln2), e^r by its Taylor polynomial of
 * degree 7 (truncation < 6e-9 relative), times 2^n assembled in the exponent bits. Results below
 * 2^-126 flush to 0 (x < -87.33), x > 88 saturates at e^88; NaN stays NaN. Branch-free, so loops over
 * it vectorise. */
static inline float lf_nn_expf(float x) {
    const float log2e = 1.44269504088896341f, ln2_hi = 0.693145751953125f,
                ln2_lo = 1.42860682030941723212e-6f, shifter = 12582912.0f; /* 1.5 * 2^23 */
    float xc = x > 88.0f ? 88.0f : x;
    xc = xc < -87.33f ? -87.33f : xc;
    float t = xc * log2e + shifter;
    float nf = t - shifter; /* round(xc * log2e) */
    /* unsigned bit arithmetic: for finite x, n + 127 lies in [1, 254]; a NaN's bits give any value,
     * which must not be a signed shift (its result is NaN anyway: r and p are NaN) */
    union { float f; uint32_t u; } ut = {t}, sc;
    uint32_t n = ut.u - 0x4B400000u; /* bits of the shifter */
    float r = xc - nf * ln2_hi;
    r = r - nf * ln2_lo;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    sc.u = (n + 127u) << 23;
    float y = p * sc.f;
    return x < -87.33f ? 0.0f : y;
}

#endif
