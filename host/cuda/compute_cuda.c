/* compute_cuda.c: the CUDA compute backend (host/base/compute.h, compute_cuda.h): the operators of
 * kernels/cpu/nn/lf_nn.h on device memory, on one non-blocking stream of the backend's own.
 *
 * Precision (docs/cuda.md "Precision"): a compute stores its activations as `act` (f32, f16 or bf16) and
 * keeps its resident weights as `wdt` (f16 / bf16: the act of a 16-bit compute; f32; or 0 = each
 * weight's own dtype, the f32 compute of lf_compute_cuda_open). A 16-bit buffer is handed out as a
 * tagged handle, LF_CC_TAG | 2·D for device address D: the model's float-pointer arithmetic (h + k adds
 * 4k bytes) then lands on D + 2k once decoded (lf_cc_dp), and the tag says the storage type, so an
 * alloc_f32 buffer (plain address) and an act buffer can meet in copy2d. Every kernel takes the
 * storage type of its activations and computes in f32; products accumulate in f32
 * (CUBLAS_COMPUTE_32F, cuDNN's f32 compute type) and round once into the output's type.
 * Memory: activations are device buffers from a caching allocator (blocks given back with release
 * stay on a free list and serve later requests of up to their size, best fit no more than twice the
 * request, so the buffers of every sampler step do not cudaMalloc again; the list is emptied when a
 * cudaMalloc fails, and by destroy). Scratch of an op (16-bit copies of activations, im2col columns,
 * attention scores, uploaded timesteps and ids) comes from the same allocator and goes back to it as
 * soon as the op is enqueued: everything runs in stream order, so a later op reusing it runs after.
 * Weights: resident copies in the view's stored dtype (f32, f16, bf16), keyed by the host address of
 * the view's data (or of a host f32 array: biases, norm gamma/beta, embedding tables), uploaded on
 * first use; forget drops one, bind points one at device memory the caller owns (patched weights).
 * Adapters (c->patch): a device model of the step plan's jobs (lf_dev_model_create_steps_jobs) applied
 * between steps on this stream (lf_dev_apply_step_jobs); the caller binds each job's weight to it.
 *
 * Matrix products (column-major cuBLAS on row-major data: a row-major (r, c) matrix is the
 * column-major (c, r) one, so y = x Wᵀ is the column-major yᵀ = W xᵀ, op(A) = T on W):
 *   linear  f32 W: cublasSgemm(T, N, out, M, in, W, in, x, in, y, out); f16/bf16 W: x cast to W's
 *           type in scratch, cublasGemmEx(A = W 16F/16BF, B = x16, C = y 32F, CUBLAS_COMPUTE_32F).
 *           Bias: lf_cunn_add_bias on (M, out, 1). This is the fallback of the cuBLASLt path below.
 *   conv2d  per sample and band of output pixels: im2col (in W's type) col (K, np), then
 *           y_n[:, p0:p0+np] (column-major (np, C_out), ld P) = col (column-major (np, K)) · W (column-
 *           major (K, C_out)); a 1x1 stride-1 pad-0 conv multiplies x_n itself (cast for 16-bit W).
 *           Bands bound the column scratch to LF_CUDA_IM2COL_MAX elements (env, default 2^24).
 *   attention per sample and chunk of queries (scores scratch <= LF_CUDA_ATTN_MAX elements, default
 *           2^26): scores (heads, qc, Lk) by cublasSgemmStridedBatched over heads (stride d in q and k,
 *           ld heads*d), softmax rows with the causal mask, out = P V by a second strided batch.
 *   lora_terms  a mixed batch's low-rank terms of every job: the segmented shrink / expand kernels of
 *           kernels/cuda/lora_sgmv.cu, factors resident by host address like weights, t in scratch.
 * cuDNN (compute_cuda_dnn.c; docs/cuda.md "cuDNN"), tried first where it applies, per shape:
 *   conv2d  16-bit W: x cast into W's type in NHWC order, W's KRSC copy (made once, kept with the
 *           resident weight), one cuDNN graph conv fprop + fused bias add (+ the residual of
 *           conv2d_add, read in NCHW) into f32 NHWC scratch, transposed back to NCHW. f32 W stays on im2col + cublasSgemm (exact f32 sums; cuDNN could
 *           pick TF32 engines for f32 data).
 *   attention  not causal, head width d % 8 == 0 and d <= 256: q, k, v cast to f16, cuDNN's fused
 *           SDPA forward, O (f16) widened into out. Causal attention (the native SDPA operation has
 *           no causal attribute) and other widths take the cuBLAS path.
 *   A shape cuDNN refuses, a build without cuDNN, or LF_CUDA_CUDNN=0 takes the fallback; the counts
 *   are in lf_compute_cuda_paths_get, the reasons on stderr with LF_CUDA_CUDNN_LOG=1.
 * cuBLASLt (compute_cuda_lt.c; docs/cuda.md "cuBLASLt"), tried first for every Linear: x cast to W's
 *   type as above, one cublasLtMatmul (TRANSA T on W, f32 y, CUBLAS_COMPUTE_32F) with the bias
 *   added by its BIAS epilogue. A shape it refuses (no algo), an operand not 16-byte aligned, a build
 *   without cuBLASLt or LF_CUDA_CUBLASLT=0 takes cuBLAS + lf_cunn_add_bias; LF_CUDA_CUBLASLT_LOG=1.
 * Errors: "cuda compute: <op>: " + the CUDA or cuBLAS call and its error (kernel launches: the
 * launcher of kernels/cuda/lf_nn_cuda.h). LF_CUDA_SYNC_CHECK=1 synchronises after every op, so an
 * asynchronous fault is reported by the op that caused it. Not thread-safe (one thread per backend).
 */
#include <limits.h>
#include <pthread.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute_cuda.h"
#include "compute_cuda_dnn.h"
#include "compute_cuda_lt.h"
#include "compute_cuda_prof.h"
#include "device_internal.h"
#include "host/base/util.h"

#include <cublas_v2.h>

#include "kernels/cuda/lf_nn_cuda.h"
#include "kernels/cuda/lf_sample_cuda.h"
#include "kernels/cuda/lf_sgmv_cuda.h"

typedef struct {
    void *p;
    size_t bytes;
} lf_cblock;

typedef struct {
    const void *host;
    void *dev;
    size_t bytes;  /* of the device copy */
    size_t hbytes; /* of the host memory it was made from (forget's range) */
    lf_dtype dtype; /* of the device copy */
    int owned;  /* 0: bound (the caller's memory) */
    void *krsc; /* a conv weight's KRSC copy for cuDNN (owned, made on first use), or NULL */
} lf_cweight;

typedef struct {
    lf_compute c;
    cudaStream_t stream;
    cublasHandle_t blas;
    int sync_check;
    int64_t im2col_max, attn_max;
    lf_cblock *freeb, *live;
    size_t nfree, capfree, nlive, caplive;
    lf_cweight *w; /* sorted by host address */
    size_t nw, capw;
    lf_device *dev;     /* the device it runs on (its patch models are made there) */
    lf_device *own_dev; /* lf_compute_cuda_device's: closed by destroy */
    pthread_mutex_t mu; /* the weight table: forget comes from any thread */
    void **dead;        /* device copies forgotten, to free on the ops' thread */
    size_t ndead, capdead;
    lf_dnn *dnn;        /* cuDNN graphs; NULL: every op takes the fallback */
    lf_lt *lt;          /* cuBLASLt Linear plans; NULL: every Linear takes cuBLAS */
    lf_compute_cuda_paths paths;
    lf_dtype wdt;       /* resident weights' type; LF_DTYPE_INVALID: each weight's own */
} lf_ccuda;

static lf_ccuda *lf_cc(lf_compute *c) { return (lf_ccuda *)c->impl; }

/* ---- handles of 16-bit buffers ------------------------------------------------------------------ */

/* A buffer of 16-bit values at device address D is handed out as LF_CC_TAG | 2·D: a float pointer's
 * arithmetic on it (h + k: 4k bytes) is D + 2k bytes once halved, so the model offsets into it as into an
 * f32 buffer. Device addresses lie far below 2^61 (48-bit virtual addresses), so the tag and the doubled
 * address never meet. */
#define LF_CC_TAG ((uintptr_t)1 << 62)

static int lf_cc_is16(const void *h) { return ((uintptr_t)h & LF_CC_TAG) != 0; }
/* the device address behind a handle (a plain f32 buffer's address is its own handle) */
static void *lf_cc_dp(const void *h) {
    const uintptr_t u = (uintptr_t)h;
    return (void *)(u & LF_CC_TAG ? (u & ~LF_CC_TAG) >> 1 : u);
}
static float *lf_cc_h16(void *d) { return (float *)(LF_CC_TAG | ((uintptr_t)d << 1)); }

static lf_cunn_type lf_cc_nn_type(lf_dtype dt) {
    return dt == LF_F16 ? LF_CUNN_F16 : dt == LF_BF16 ? LF_CUNN_BF16 : LF_CUNN_F32;
}
/* the storage type of an activation handle: the compute's 16-bit act when tagged, else f32 */
static lf_dtype lf_cc_dt(const lf_ccuda *cc, const void *h) { return lf_cc_is16(h) ? cc->c.act : LF_F32; }
static lf_cunn_type lf_cc_ty(const lf_ccuda *cc, const void *h) { return lf_cc_nn_type(lf_cc_dt(cc, h)); }

/* an op's activations share one storage type (compute.h); a mix is a caller's error */
static lf_status lf_cc_same(const void *y, const void *a, const void *b) {
    const int t = lf_cc_is16(y);
    if ((!a || lf_cc_is16(a) == t) && (!b || lf_cc_is16(b) == t)) return LF_OK;
    return lf_err(LF_ERR_ARG, "activations of two storage types (an f32 buffer and a 16-bit one: copy2d converts)");
}

/* the status of a failed op step: the op prefixed to the message the step left */
static lf_status lf_cc_fail(lf_status st, const char *op) { return lf_err_wrap(st, "cuda compute: %s: ", op); }

/* a launcher's cudaError_t (kernels/cuda/lf_nn_cuda.h) as a status naming it */
static lf_status lf_cc_launched(lf_ccuda *cc, int e, const char *launcher) {
    if (e == cudaSuccess && cc->sync_check) {
        cudaError_t se = cudaStreamSynchronize(cc->stream);
        if (se != cudaSuccess)
            return lf_err(LF_ERR_DEVICE, "cudaStreamSynchronize after %s failed: %s (%s)", launcher,
                          cudaGetErrorString(se), cudaGetErrorName(se));
    }
    if (e == cudaSuccess) return LF_OK;
    return lf_err(e == cudaErrorMemoryAllocation ? LF_ERR_NOMEM : LF_ERR_DEVICE, "%s failed: %s (%s)", launcher,
                  cudaGetErrorString((cudaError_t)e), cudaGetErrorName((cudaError_t)e));
}

#define LF_LAUNCH(launcher, ...) LF_TRY(lf_cc_launched(cc, launcher(__VA_ARGS__), #launcher))

/* an op that is one launch: its status, the op named on failure */
static lf_status lf_cc_one(lf_ccuda *cc, int e, const char *launcher, const char *op) {
    lf_status st = lf_cc_launched(cc, e, launcher);
    return st ? lf_cc_fail(st, op) : LF_OK;
}

/* in an op of compute.h (lf_compute *c): its single launch */
#define LF_ONE(op, launcher, ...) lf_cc_one(lf_cc(c), launcher(__VA_ARGS__), #launcher, op)
/* in an op: the device address and the storage type of activation handle p */
#define LF_D(p) lf_cc_dp(p)
#define LF_T(p) lf_cc_ty(lf_cc(c), p)
/* in an op: its activations y, a, b (b, a may be NULL) of one storage type, else the op fails */
#define LF_SAME(op, y, a, b)                                                                                            \
    do {                                                                                                                \
        lf_status same_ = lf_cc_same(y, a, b);                                                                          \
        if (same_) return lf_cc_fail(same_, op);                                                                        \
    } while (0)

/* sizes handed to cuBLAS are int */
static lf_status lf_cc_int(int64_t v, const char *what) {
    if (v >= 0 && v <= INT_MAX) return LF_OK;
    return lf_err(LF_ERR_UNSUPPORTED, "%s = %lld exceeds cuBLAS's int sizes", what, (long long)v);
}

/* ---- the caching allocator --------------------------------------------------------------------- */

static void lf_cc_drop_cache(lf_ccuda *cc) {
    for (size_t i = 0; i < cc->nfree; i++) cudaFree(cc->freeb[i].p);
    cc->nfree = 0;
}

/* cudaMalloc, once more after freeing the cached blocks when memory is short; the status names
 * cudaMalloc and the size */
static lf_status lf_cc_cuda_malloc(lf_ccuda *cc, size_t bytes, void **p) {
    *p = NULL;
    cudaError_t e = cudaMalloc(p, bytes);
    if (e == cudaErrorMemoryAllocation && cc->nfree) {
        (void)cudaGetLastError();
        lf_cc_drop_cache(cc);
        e = cudaMalloc(p, bytes);
    }
    if (e == cudaSuccess) return LF_OK;
    *p = NULL;
    lf_status st = lf_cu_err(e, "cudaMalloc", NULL, __FILE__, __LINE__);
    return lf_err_wrap(st, "%zu bytes: ", bytes);
}

static lf_status lf_cc_malloc(lf_ccuda *cc, size_t bytes, void **out) {
    size_t need = lf_round_up(bytes ? bytes : 1, 256), best = SIZE_MAX;
    *out = NULL;
    if (lf_grow(&cc->live, &cc->caplive, cc->nlive + 1)) return lf_err(LF_ERR_NOMEM, "out of host memory");
    for (size_t i = 0; i < cc->nfree; i++)
        if (cc->freeb[i].bytes >= need && cc->freeb[i].bytes / 2 <= need &&
            (best == SIZE_MAX || cc->freeb[i].bytes < cc->freeb[best].bytes))
            best = i;
    lf_cblock b;
    if (best != SIZE_MAX) {
        b = cc->freeb[best];
        cc->freeb[best] = cc->freeb[--cc->nfree];
    } else {
        b.bytes = need;
        lf_status st = lf_cc_cuda_malloc(cc, need, &b.p);
        if (st) return st;
    }
    cc->live[cc->nlive++] = b;
    *out = b.p;
    return LF_OK;
}

static void lf_cc_free(lf_ccuda *cc, void *p) {
    p = lf_cc_dp(p);
    if (!p) return;
    for (size_t i = cc->nlive; i-- > 0;)
        if (cc->live[i].p == p) {
            lf_cblock b = cc->live[i];
            cc->live[i] = cc->live[--cc->nlive];
            if (lf_grow(&cc->freeb, &cc->capfree, cc->nfree + 1)) cudaFree(b.p); /* no room to cache it */
            else cc->freeb[cc->nfree++] = b;
            return;
        }
}

/* n values stored as dt: a plain address (f32) or a tagged handle (16-bit) */
static lf_status lf_cc_alloc_as(lf_compute *c, lf_dtype dt, int64_t n, float **out) {
    void *p = NULL;
    *out = NULL;
    if (n < 0) return lf_err(LF_ERR_ARG, "cuda compute: alloc of %lld floats", (long long)n);
    lf_status st = lf_cc_malloc(lf_cc(c), (size_t)n * (dt == LF_F32 ? 4 : 2), &p);
    if (st) return lf_cc_fail(st, "alloc");
    *out = dt == LF_F32 ? (float *)p : lf_cc_h16(p);
    return LF_OK;
}

static lf_status lf_cc_alloc(lf_compute *c, int64_t n, float **out) { return lf_cc_alloc_as(c, c->act, n, out); }
static lf_status lf_cc_alloc_f32(lf_compute *c, int64_t n, float **out) { return lf_cc_alloc_as(c, LF_F32, n, out); }

static void lf_cc_release(lf_compute *c, float *p) { lf_cc_free(lf_cc(c), p); }

/* ---- resident weights ------------------------------------------------------------------------- */

/* index of host address p in the sorted table, or where it would go (*found 0) */
static size_t lf_cc_find(const lf_ccuda *cc, const void *p, int *found) {
    size_t lo = 0, hi = cc->nw;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((uintptr_t)cc->w[mid].host < (uintptr_t)p) lo = mid + 1;
        else hi = mid;
    }
    *found = lo < cc->nw && cc->w[lo].host == p;
    return lo;
}

static void lf_cc_erase(lf_ccuda *cc, size_t i) {
    if (cc->w[i].owned) cudaFree(cc->w[i].dev);
    if (cc->w[i].krsc) cudaFree(cc->w[i].krsc);
    memmove(cc->w + i, cc->w + i + 1, (cc->nw - i - 1) * sizeof *cc->w);
    cc->nw--;
}

/* device copies forget dropped on another thread (which has no CUDA device current): freed here, on the
 * thread that runs the ops (or, when the list cannot grow, at once) */
static void lf_cc_free_dead(lf_ccuda *cc) {
    for (size_t i = 0; i < cc->ndead; i++) cudaFree(cc->dead[i]);
    cc->ndead = 0;
}

/* every copy made from host memory overlapping [p, p + bytes); from any thread (the runtime's weight
 * watcher calls it from the operator pool) */
static void lf_cc_forget(lf_compute *c, const void *p, size_t bytes) {
    lf_ccuda *cc = lf_cc(c);
    uintptr_t lo = (uintptr_t)p, hi = lo + (bytes ? bytes : 1);
    pthread_mutex_lock(&cc->mu);
    for (size_t i = cc->nw; i-- > 0;) {
        uintptr_t h = (uintptr_t)cc->w[i].host, e = h + (cc->w[i].hbytes ? cc->w[i].hbytes : 1);
        if (h >= hi || e <= lo) continue;
        if (cc->w[i].owned && !lf_grow(&cc->dead, &cc->capdead, cc->ndead + 1)) {
            cc->dead[cc->ndead++] = cc->w[i].dev;
            cc->w[i].owned = 0; /* freed later, not by erase */
        }
        if (cc->w[i].krsc && !lf_grow(&cc->dead, &cc->capdead, cc->ndead + 1)) {
            cc->dead[cc->ndead++] = cc->w[i].krsc;
            cc->w[i].krsc = NULL;
        }
        lf_cc_erase(cc, i);
    }
    pthread_mutex_unlock(&cc->mu);
}

static size_t lf_cc_dtype_size(lf_dtype dt) { return dt == LF_F32 ? 4 : dt == LF_F16 || dt == LF_BF16 ? 2 : 0; }

static lf_status lf_cc_insert(lf_ccuda *cc, const void *host, void *dev, size_t bytes, size_t hbytes, lf_dtype dt,
                              int owned) {
    int found;
    size_t i = lf_cc_find(cc, host, &found);
    if (found) lf_cc_erase(cc, i);
    if (lf_grow(&cc->w, &cc->capw, cc->nw + 1)) return lf_err(LF_ERR_NOMEM, "out of host memory");
    memmove(cc->w + i + 1, cc->w + i, (cc->nw - i) * sizeof *cc->w);
    cc->w[i] = (lf_cweight){host, dev, bytes, hbytes, dt, owned, NULL};
    cc->nw++;
    return LF_OK;
}

/* The device copy in dtype dt of the n values of dtype src at host address p: the resident one, or
 * uploaded now, converted on the device when the types differ (a resident copy of another dtype or size
 * is replaced when it is the backend's own, refused when bound). */
static lf_status lf_cc_resident_locked(lf_ccuda *cc, const void *p, lf_dtype src, lf_dtype dt, int64_t n,
                                       const void **dev) {
    lf_status st = LF_OK;
    const size_t bytes = (size_t)n * lf_cc_dtype_size(dt), hbytes = (size_t)n * lf_cc_dtype_size(src);
    void *raw = NULL;
    int found;
    size_t i = lf_cc_find(cc, p, &found);
    if (found && cc->w[i].dtype == dt && cc->w[i].bytes == bytes) {
        *dev = cc->w[i].dev;
        return LF_OK;
    }
    if (found && !cc->w[i].owned)
        return lf_err(LF_ERR_SHAPE, "the weight bound at %p holds %zu bytes of %s, the op needs %zu bytes of %s", p,
                      cc->w[i].bytes, lf_dtype_name(cc->w[i].dtype), bytes, lf_dtype_name(dt));
    void *d = NULL;
    LF_TRY(lf_cc_cuda_malloc(cc, bytes ? bytes : 1, &d));
    if (bytes && src == dt) {
        LF_CU(cudaMemcpyAsync(d, p, bytes, cudaMemcpyHostToDevice, cc->stream), NULL);
    } else if (bytes) { /* the host's bytes to scratch, then converted (rounded to nearest even) */
        LF_TRY(lf_cc_malloc(cc, hbytes, &raw));
        LF_CU(cudaMemcpyAsync(raw, p, hbytes, cudaMemcpyHostToDevice, cc->stream), NULL);
        LF_LAUNCH(lf_cunn_transpose_cast, d, lf_cc_nn_type(dt), raw, lf_cc_nn_type(src), 1, 1, n, cc->stream);
        lf_cc_free(cc, raw);
        raw = NULL;
    }
    LF_TRY(lf_cc_insert(cc, p, d, bytes, hbytes, dt, 1));
    *dev = d;
    return LF_OK;
fail:
    lf_cc_free(cc, raw);
    if (d) cudaFree(d);
    return lf_err_wrap(st, "resident %s copy: ", lf_dtype_name(dt));
}

static lf_status lf_cc_resident(lf_ccuda *cc, const void *p, lf_dtype src, lf_dtype dt, int64_t n, const void **dev) {
    pthread_mutex_lock(&cc->mu);
    lf_cc_free_dead(cc);
    lf_status st = lf_cc_resident_locked(cc, p, src, dt, n, dev);
    pthread_mutex_unlock(&cc->mu);
    return st;
}

/* host f32 parameters (bias, gamma, beta, table) of n values, resident in dt (f32, or a Linear's
 * output type for cuBLASLt's bias epilogue); NULL stays NULL */
static lf_status lf_cc_params_as(lf_ccuda *cc, const float *p, int64_t n, lf_dtype dt, const void **dev) {
    *dev = NULL;
    if (!p) return LF_OK;
    return lf_cc_resident(cc, p, LF_F32, dt, n, dev);
}
static lf_status lf_cc_params(lf_ccuda *cc, const float *p, int64_t n, const float **dev) {
    return lf_cc_params_as(cc, p, n, LF_F32, (const void **)dev);
}

/* the type a weight stored as dt is kept in on the device */
static lf_dtype lf_cc_wtype(const lf_ccuda *cc, lf_dtype dt) { return cc->wdt != LF_DTYPE_INVALID ? cc->wdt : dt; }

/* a matrix-product weight W (dtype f32/f16/bf16, n values), resident in lf_cc_wtype, and its bias b (nb
 * values, or NULL) resident in bt */
static lf_status lf_cc_weight(lf_ccuda *cc, const lf_view *W, int64_t n, const float *b, int64_t nb, lf_dtype bt,
                              const void **wd, const void **bd) {
    if (!lf_cc_dtype_size(W->dtype))
        return lf_err(LF_ERR_UNSUPPORTED, "weight dtype %s (the device products take F32, F16, BF16)",
                      lf_dtype_name(W->dtype));
    if (lf_view_numel(W) != n)
        return lf_err(LF_ERR_SHAPE, "weight holds %lld values, expected %lld", (long long)lf_view_numel(W),
                      (long long)n);
    lf_status st = lf_cc_resident(cc, W->data, W->dtype, lf_cc_wtype(cc, W->dtype), n, wd);
    return st ? st : lf_cc_params_as(cc, b, nb, bt, bd);
}

static lf_status lf_cc_bind(lf_compute *c, const void *p, const lf_view *v, void *dev) {
    if (!p || !v || !dev) return lf_err(LF_ERR_ARG, "cuda compute: bind: NULL argument");
    if (!lf_cc_dtype_size(v->dtype))
        return lf_err(LF_ERR_UNSUPPORTED, "cuda compute: bind: weight dtype %s", lf_dtype_name(v->dtype));
    lf_ccuda *cc = lf_cc(c);
    const lf_dtype dt = lf_cc_wtype(cc, v->dtype); /* what the patcher's weights hold (lf_dev_opts.store) */
    const size_t n = (size_t)lf_view_numel(v);
    pthread_mutex_lock(&cc->mu);
    lf_status st = lf_cc_insert(cc, p, dev, n * lf_cc_dtype_size(dt), n * lf_cc_dtype_size(v->dtype), dt, 0);
    pthread_mutex_unlock(&cc->mu);
    return st ? lf_cc_fail(st, "bind") : LF_OK;
}

/* ---- adapters patched on the device (compute.h lf_compute_patcher) ----------------------------- */

/* A device model (lf_device.h) of a step plan's jobs, applied on this compute's stream: the weights the
 * ops then read through bind are rewritten in place between steps, from W0. */
typedef struct {
    lf_dev_model *dm;
    const struct lf_step_plan *sp;
    size_t *jobs;
} lf_cc_patchm;

static void lf_cc_patch_free(void *m) {
    lf_cc_patchm *p = m;
    if (!p) return;
    lf_dev_model_free(p->dm);
    free(p->jobs);
    free(p);
}

static lf_status lf_cc_patch_create(lf_compute *c, const struct lf_step_plan *sp, const size_t *jobs, size_t n,
                                    void **out) {
    *out = NULL;
    lf_cc_patchm *p = calloc(1, sizeof *p);
    if (!p || (p->jobs = malloc((n ? n : 1) * sizeof *p->jobs)) == NULL) {
        free(p);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    if (n) memcpy(p->jobs, jobs, n * sizeof *p->jobs);
    p->sp = sp;
    lf_dev_opts o;
    lf_dev_opts_default(&o);
    o.store = lf_cc(c)->wdt; /* the working copies and W0 in the compute's weight type */
    lf_status st = lf_dev_model_create_steps_jobs(lf_cc(c)->dev, sp, p->jobs, n, &o, &p->dm);
    if (st != LF_OK) {
        lf_cc_patch_free(p);
        return lf_cc_fail(st, "adapters on the device");
    }
    *out = p;
    return LF_OK;
}

static lf_status lf_cc_patch_step(lf_compute *c, void *m, int t, size_t *rewritten) {
    lf_cc_patchm *p = m;
    *rewritten = 0;
    lf_status st = lf_dev_apply_step_jobs(p->dm, p->sp, p->jobs, t, lf_cc(c)->stream);
    if (st != LF_OK) return lf_err_wrap(st, "cuda compute: adapters on the device at step %d: ", t);
    lf_dev_apply_stats as;
    lf_dev_last_stats(p->dm, &as);
    *rewritten = as.jobs_rewritten;
    return LF_OK;
}

static void *lf_cc_patch_weight(void *m, size_t i) { return lf_dev_weight(((lf_cc_patchm *)m)->dm, i); }

static lf_status lf_cc_patch_retarget(lf_compute *c, void *m, const struct lf_step_plan *sp, const size_t *jobs,
                                      size_t n) {
    (void)c;
    lf_cc_patchm *p = m;
    size_t *nj = malloc((n ? n : 1) * sizeof *nj);
    if (!nj) return lf_err(LF_ERR_NOMEM, "out of memory");
    if (n) memcpy(nj, jobs, n * sizeof *nj);
    lf_status st = lf_dev_model_fits_steps(p->dm, sp, nj, n);
    if (st != LF_OK) {
        free(nj);
        return lf_err_wrap(st, "cuda compute: adapters on the device: ");
    }
    free(p->jobs);
    p->jobs = nj;
    p->sp = sp;
    return LF_OK;
}

static const lf_compute_patcher lf_cc_patcher = {lf_cc_patch_create, lf_cc_patch_step, lf_cc_patch_weight,
                                                 lf_cc_patch_free, lf_cc_patch_retarget};

/* ---- memory ops -------------------------------------------------------------------------------- */

/* host f32 into a buffer: copied as it is, or through f32 scratch and rounded into a 16-bit one */
static lf_status lf_cc_upload(lf_compute *c, float *dst, const float *host_src, int64_t n) {
    lf_status st = LF_OK;
    lf_ccuda *cc = lf_cc(c);
    float *tmp = NULL;
    if (n > 0 && !lf_cc_is16(dst)) {
        LF_CU(cudaMemcpyAsync(dst, host_src, (size_t)n * sizeof(float), cudaMemcpyHostToDevice, cc->stream), NULL);
    } else if (n > 0) {
        LF_TRY(lf_cc_malloc(cc, (size_t)n * sizeof(float), (void **)&tmp));
        LF_CU(cudaMemcpyAsync(tmp, host_src, (size_t)n * sizeof(float), cudaMemcpyHostToDevice, cc->stream), NULL);
        LF_LAUNCH(lf_cunn_cast, lf_cc_dp(dst), lf_cc_ty(cc, dst), tmp, n, cc->stream);
    }
fail:
    lf_cc_free(cc, tmp); /* stream order: the cast has read it before a later user writes it */
    return st ? lf_cc_fail(st, "upload") : LF_OK;
}

/* a buffer into host f32: copied, or a 16-bit one widened (exactly) into f32 scratch first */
static lf_status lf_cc_download(lf_compute *c, float *host_dst, const float *src, int64_t n) {
    lf_status st = LF_OK;
    lf_ccuda *cc = lf_cc(c);
    float *tmp = NULL;
    const float *from = src;
    if (n > 0 && lf_cc_is16(src)) {
        LF_TRY(lf_cc_malloc(cc, (size_t)n * sizeof(float), (void **)&tmp));
        LF_LAUNCH(lf_cunn_transpose_cast, tmp, LF_CUNN_F32, lf_cc_dp(src), lf_cc_ty(cc, src), 1, 1, n, cc->stream);
        from = tmp;
    }
    if (n > 0) LF_CU(cudaMemcpyAsync(host_dst, from, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost, cc->stream), NULL);
    LF_CU(cudaStreamSynchronize(cc->stream), NULL);
fail:
    lf_cc_free(cc, tmp);
    return st ? lf_cc_fail(st, "download") : LF_OK;
}

static lf_status lf_cc_copy2d(lf_compute *c, float *dst, int64_t dst_ld, const float *src, int64_t src_ld, int64_t rows,
                              int64_t cols) {
    lf_status st = LF_OK;
    if (rows <= 0 || cols <= 0) return LF_OK;
    if (cols > dst_ld || cols > src_ld) {
        st = lf_err(LF_ERR_ARG, "%lld columns with leading dimensions %lld / %lld", (long long)cols, (long long)dst_ld,
                    (long long)src_ld);
        goto fail;
    }
    lf_ccuda *cc = lf_cc(c);
    if (lf_cc_is16(dst) != lf_cc_is16(src)) { /* f32 <-> 16-bit: a converting copy */
        LF_LAUNCH(lf_cunn_copy2d, lf_cc_dp(dst), lf_cc_ty(cc, dst), dst_ld, lf_cc_dp(src), lf_cc_ty(cc, src), src_ld, rows,
                  cols, cc->stream);
        return LF_OK;
    }
    const size_t es = lf_cc_is16(dst) ? 2 : sizeof(float);
    LF_CU(cudaMemcpy2DAsync(lf_cc_dp(dst), (size_t)dst_ld * es, lf_cc_dp(src), (size_t)src_ld * es, (size_t)cols * es,
                            (size_t)rows, cudaMemcpyDeviceToDevice, cc->stream),
          NULL);
    return LF_OK;
fail:
    return lf_cc_fail(st, "copy2d");
}

static lf_status lf_cc_sync(lf_compute *c) {
    lf_status st = LF_OK;
    LF_CU(cudaStreamSynchronize(lf_cc(c)->stream), NULL);
    return LF_OK;
fail:
    return lf_cc_fail(st, "sync");
}

static int lf_cc_supports(const lf_compute *c, const lf_cop_desc *d) {
    (void)c;
    if (!d || d->op < 0 || d->op >= LF_COP_COUNT) return 0;
    if (d->op == LF_COP_LINEAR || d->op == LF_COP_CONV2D) return lf_cc_dtype_size(d->weight) != 0;
    return 1;
}

static void lf_cc_destroy(lf_compute *c) {
    if (!c) return;
    lf_ccuda *cc = lf_cc(c);
    if (cc->stream) cudaStreamSynchronize(cc->stream);
    lf_cc_drop_cache(cc);
    for (size_t i = 0; i < cc->nlive; i++) cudaFree(cc->live[i].p);
    for (size_t i = 0; i < cc->nw; i++) {
        if (cc->w[i].owned) cudaFree(cc->w[i].dev);
        if (cc->w[i].krsc) cudaFree(cc->w[i].krsc);
    }
    lf_dnn_close(cc->dnn);
    lf_lt_close(cc->lt);
    if (cc->blas) cublasDestroy(cc->blas);
    if (cc->stream) cudaStreamDestroy(cc->stream);
    lf_device *dev = cc->own_dev;
    free(cc->freeb);
    free(cc->live);
    free(cc->w);
    lf_cc_free_dead(cc);
    free(cc->dead);
    pthread_mutex_destroy(&cc->mu);
    free(cc);
    lf_device_close(dev);
}

void lf_compute_cuda_paths_get(const lf_compute *c, lf_compute_cuda_paths *out) {
    memset(out, 0, sizeof *out);
    if (c && c->destroy == lf_cc_destroy) *out = ((const lf_ccuda *)c->impl)->paths;
}

/* the op clock (compute_cuda_prof.c) on this compute's stream */
static lf_status lf_cc_clock(lf_compute *c, lf_op_clock *out) { return lf_cuda_op_clock_open(lf_cc(c)->stream, out); }

/* ---- matrix products --------------------------------------------------------------------------- */

static cudaDataType lf_cc_cuda_type(lf_dtype dt) {
    return dt == LF_F16 ? CUDA_R_16F : dt == LF_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

/* column-major C (m, n, ldc) = op(A) (m, k) · B (k, n, ldb), A (lda) and B both of type dt (a resident
 * weight and activations or im2col columns of its type) or both f32; C (device address) of type ct: f32
 * or dt, the sums f32 either way */
static lf_status lf_cc_gemm(lf_ccuda *cc, lf_dtype dt, cublasOperation_t ta, int m, int n, int k, const void *A, int lda,
                            const void *B, int ldb, void *C, lf_dtype ct, int ldc) {
    lf_status st = LF_OK;
    const float one = 1.0f, zero = 0.0f;
    if (dt == LF_F32 && ct == LF_F32)
        LF_CB(cublasSgemm(cc->blas, ta, CUBLAS_OP_N, m, n, k, &one, A, lda, B, ldb, &zero, C, ldc));
    else
        LF_CB(cublasGemmEx(cc->blas, ta, CUBLAS_OP_N, m, n, k, &one, A, lf_cc_cuda_type(dt), lda, B, lf_cc_cuda_type(dt),
                           ldb, &zero, C, lf_cc_cuda_type(ct), ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return LF_OK;
fail:
    return st;
}

/* the cuBLASLt plan for a Linear, or NULL (refused, no cuBLASLt, an operand not LF_LT_ALIGN-aligned) */
static lf_status lf_cc_lt_plan(lf_ccuda *cc, lf_dtype dt, lf_dtype yt, int64_t M, int64_t in, int64_t out, int bias,
                               const void *const ptrs[4], const lf_lt_plan **plan) {
    const char *why = NULL;
    *plan = NULL;
    if (!cc->lt) return LF_OK;
    for (int i = 0; i < 4; i++)
        if ((uintptr_t)ptrs[i] % LF_LT_ALIGN) return LF_OK;
    lf_lt_key key;
    memset(&key, 0, sizeof key);
    key.dtype = (int32_t)dt, key.ytype = (int32_t)yt, key.bias = bias, key.M = M, key.in = in, key.out = out;
    const size_t before = lf_lt_count(cc->lt);
    lf_status st = lf_lt_plan_get(cc->lt, &key, plan, &why);
    if (st == LF_OK && lf_lt_count(cc->lt) != before) {
        if (*plan) cc->paths.lt_built++;
        else cc->paths.lt_refused++;
    }
    return st;
}

static lf_status lf_cc_linear(lf_compute *c, float *y, const float *x, const lf_view *W, const float *b, int64_t M,
                              int64_t in, int64_t out) {
    lf_ccuda *cc = lf_cc(c);
    lf_status st = LF_OK;
    const void *wd = NULL, *bd = NULL;
    void *xs = NULL, *yd = lf_cc_dp(y);
    int fused = 0; /* the bias added by cuBLASLt's epilogue */
    const lf_dtype at = lf_cc_dt(cc, y), wt = lf_cc_wtype(cc, W->dtype);
    LF_TRY(lf_cc_same(y, x, NULL));
    /* the bias in y's type: cuBLASLt's epilogue adds a bias of D's type */
    LF_TRY(lf_cc_weight(cc, W, out * in, b, out, at, &wd, &bd));
    if (M <= 0 || out <= 0) return LF_OK;
    LF_TRY(lf_cc_int(M, "M"));
    LF_TRY(lf_cc_int(in, "in"));
    LF_TRY(lf_cc_int(out, "out"));
    if (at != LF_F32 && wt != at) {
        st = lf_err(LF_ERR_UNSUPPORTED, "%s activations with a %s weight", lf_dtype_name(at), lf_dtype_name(wt));
        goto fail;
    }
    if (in == 0) {
        LF_CU(cudaMemsetAsync(yd, 0, (size_t)(M * out) * lf_cc_dtype_size(at), cc->stream), NULL);
    } else {
        if (wt != at) { /* f32 activations, a 16-bit weight: x rounded to the weight's type */
            LF_TRY(lf_cc_malloc(cc, (size_t)(M * in) * 2, &xs));
            LF_LAUNCH(lf_cunn_cast, xs, lf_cc_nn_type(wt), x, M * in, cc->stream);
        }
        const void *xin = xs ? xs : lf_cc_dp(x);
        const void *const ptrs[4] = {wd, xin, yd, bd};
        const lf_lt_plan *plan = NULL;
        LF_TRY(lf_cc_lt_plan(cc, wt, at, M, in, out, bd != NULL, ptrs, &plan));
        if (plan) {
            cc->paths.linear_lt++;
            LF_TRY(lf_lt_linear(cc->lt, plan, yd, xin, wd, bd));
            LF_TRY(lf_cc_launched(cc, cudaSuccess, "cublasLtMatmul"));
            fused = 1;
        } else {
            cc->paths.linear_fallback++;
            LF_TRY(lf_cc_gemm(cc, wt, CUBLAS_OP_T, (int)out, (int)M, (int)in, wd, (int)in, xin, (int)in, yd, at,
                              (int)out));
        }
    }
    if (bd && !fused)
        LF_LAUNCH(lf_cunn_add_bias, yd, lf_cc_nn_type(at), bd, lf_cc_nn_type(at), M, out, 1, 0, cc->stream);
fail:
    lf_cc_free(cc, xs);
    return st ? lf_cc_fail(st, "linear") : LF_OK;
}

/* ---- cuDNN paths (compute_cuda_dnn.c) ------------------------------------------------------ */

/* the plan for key, or NULL (refused, or no cuDNN); counts the path taken */
static lf_status lf_cc_dnn_plan(lf_ccuda *cc, const lf_dnn_key *key, const lf_dnn_plan **plan) {
    const char *why = NULL;
    *plan = NULL;
    if (!cc->dnn) return LF_OK;
    const size_t before = lf_dnn_count(cc->dnn);
    lf_status st = lf_dnn_plan_get(cc->dnn, key, plan, &why);
    if (st == LF_OK && lf_dnn_count(cc->dnn) != before) {
        if (*plan) cc->paths.plans_built++;
        else cc->paths.plans_refused++;
    }
    return st;
}

/* The KRSC copy of the 16-bit conv weight W (resident at wd, K x C x khw) that cuDNN's NHWC graph
 * reads: made once and kept with the weight's own resident copy (under the table's lock, so a forget
 * from another thread cannot drop the entry meanwhile); for a bound weight (device memory its owner
 * patches in place) made again at every call, in scratch (*tmp, the caller frees it). */
static lf_status lf_cc_krsc(lf_ccuda *cc, const lf_view *W, const void *wd, int64_t K, int64_t C, int64_t khw,
                            const void **out, void **tmp) {
    lf_status st = LF_OK;
    const lf_dtype wt = lf_cc_wtype(cc, W->dtype);
    const lf_cunn_type t = lf_cc_nn_type(wt);
    const size_t bytes = (size_t)(K * C * khw) * lf_cc_dtype_size(wt);
    void *p = NULL;
    int found;
    *out = NULL;
    *tmp = NULL;
    pthread_mutex_lock(&cc->mu);
    const size_t i = lf_cc_find(cc, W->data, &found);
    const int keep = found && cc->w[i].dev == wd && cc->w[i].owned;
    if (keep && cc->w[i].krsc) {
        *out = cc->w[i].krsc;
        pthread_mutex_unlock(&cc->mu);
        return LF_OK;
    }
    if (!keep) pthread_mutex_unlock(&cc->mu);
    LF_TRY(keep ? lf_cc_cuda_malloc(cc, bytes, &p) : lf_cc_malloc(cc, bytes, &p));
    LF_LAUNCH(lf_cunn_transpose_cast, p, t, wd, t, K, C, khw, cc->stream);
    if (keep) {
        cc->w[i].krsc = p;
        pthread_mutex_unlock(&cc->mu);
    } else {
        *tmp = p;
    }
    *out = p;
    return LF_OK;
fail:
    if (keep) {
        pthread_mutex_unlock(&cc->mu);
        cudaFree(p);
    } else {
        lf_cc_free(cc, p);
    }
    return st;
}

/* conv2d through a cuDNN plan: x (NCHW, the activations' type) into W's type in NHWC order (a cast only
 * when x is f32 and W 16-bit), the graph into NHWC scratch of y's type (bias and the residual res, read in
 * NCHW, fused; sums f32), transposed back to NCHW */
static lf_status lf_cc_conv_dnn(lf_ccuda *cc, const lf_dnn_plan *plan, float *y, const float *x, const lf_view *W,
                                const void *wd, const void *bd, const float *res, const lf_dnn_key *k, int64_t P) {
    lf_status st = LF_OK;
    void *xs = NULL, *wtmp = NULL, *ws = NULL, *yn = NULL;
    const void *wk = NULL;
    const lf_dtype wt = (lf_dtype)k->dtype, yt = (lf_dtype)k->ydt;
    const size_t esz = lf_cc_dtype_size(wt), wsb = lf_dnn_workspace(plan);
    LF_TRY(lf_cc_krsc(cc, W, wd, k->K, k->C, k->kh * k->kw, &wk, &wtmp));
    LF_TRY(lf_cc_malloc(cc, (size_t)(k->N * k->C * k->H * k->W) * esz, &xs));
    LF_LAUNCH(lf_cunn_transpose_cast, xs, lf_cc_nn_type(wt), lf_cc_dp(x), lf_cc_ty(cc, x), k->N, k->C, k->H * k->W,
              cc->stream);
    LF_TRY(lf_cc_malloc(cc, (size_t)(k->N * k->K * P) * lf_cc_dtype_size(yt), &yn));
    if (wsb) LF_TRY(lf_cc_malloc(cc, wsb, &ws));
    void *t[5] = {xs, (void *)wk, (void *)bd, yn, res ? lf_cc_dp(res) : NULL};
    LF_TRY(lf_dnn_execute(cc->dnn, plan, t, 1.0f, ws));
    LF_TRY(lf_cc_launched(cc, cudaSuccess, "cudnnBackendExecute"));
    LF_LAUNCH(lf_cunn_transpose, lf_cc_dp(y), yn, lf_cc_nn_type(yt), k->N, P, k->K, cc->stream);
fail:
    lf_cc_free(cc, ws);
    lf_cc_free(cc, yn);
    lf_cc_free(cc, xs);
    lf_cc_free(cc, wtmp);
    return st;
}

/* attention through cuDNN's fused SDPA: 16-bit activations as they are; f32 ones cast to f16 (same
 * layout), O (f16) widened into out */
static lf_status lf_cc_sdpa_dnn(lf_ccuda *cc, const lf_dnn_plan *plan, float *out, const float *q, const float *k,
                                const float *v, const lf_dnn_key *key, float scale) {
    lf_status st = LF_OK;
    void *q16 = NULL, *k16 = NULL, *v16 = NULL, *o16 = NULL, *ws = NULL;
    const int64_t HD = key->C * key->K, nq = key->N * key->H * HD, nk = key->N * key->W * HD;
    const size_t wsb = lf_dnn_workspace(plan);
    if (lf_cc_is16(out)) {
        void *t[5] = {lf_cc_dp(q), lf_cc_dp(k), lf_cc_dp(v), lf_cc_dp(out), NULL};
        if (wsb) LF_TRY(lf_cc_malloc(cc, wsb, &ws));
        LF_TRY(lf_dnn_execute(cc->dnn, plan, t, scale, ws));
        LF_TRY(lf_cc_launched(cc, cudaSuccess, "cudnnBackendExecute"));
        goto fail; /* done: the scratch goes back */
    }
    LF_TRY(lf_cc_malloc(cc, (size_t)nq * 2, &q16));
    LF_TRY(lf_cc_malloc(cc, (size_t)nk * 2, &k16));
    LF_TRY(lf_cc_malloc(cc, (size_t)nk * 2, &v16));
    LF_TRY(lf_cc_malloc(cc, (size_t)nq * 2, &o16));
    if (wsb) LF_TRY(lf_cc_malloc(cc, wsb, &ws));
    LF_LAUNCH(lf_cunn_cast, q16, LF_CUNN_F16, q, nq, cc->stream);
    LF_LAUNCH(lf_cunn_cast, k16, LF_CUNN_F16, k, nk, cc->stream);
    LF_LAUNCH(lf_cunn_cast, v16, LF_CUNN_F16, v, nk, cc->stream);
    void *t[5] = {q16, k16, v16, o16, NULL};
    LF_TRY(lf_dnn_execute(cc->dnn, plan, t, scale, ws));
    LF_TRY(lf_cc_launched(cc, cudaSuccess, "cudnnBackendExecute"));
    LF_LAUNCH(lf_cunn_transpose_cast, out, LF_CUNN_F32, o16, LF_CUNN_F16, 1, 1, nq, cc->stream);
fail:
    lf_cc_free(cc, ws);
    lf_cc_free(cc, o16);
    lf_cc_free(cc, v16);
    lf_cc_free(cc, k16);
    lf_cc_free(cc, q16);
    return st;
}

/* the head widths cuDNN 9's SDPA forward takes on sm80 and later (docs/cuda.md "cuDNN") */
static int lf_cc_sdpa_width(int64_t d) { return d > 0 && d <= 256 && d % 8 == 0; }

int lf_compute_cuda_uses_cudnn(const lf_compute *c, const lf_cop_desc *d) {
    if (!c || !d || c->destroy != lf_cc_destroy || !((const lf_ccuda *)c->impl)->dnn) return 0;
    if (d->op == LF_COP_CONV2D || d->op == LF_COP_CONV2D_ADD) {
        const lf_dtype wt = lf_cc_wtype((const lf_ccuda *)c->impl, d->weight);
        return wt == LF_F16 || wt == LF_BF16;
    }
    if (d->op == LF_COP_ATTENTION) return lf_cc_sdpa_width(d->head_dim);
    return 0;
}

int lf_compute_cuda_uses_cublaslt(const lf_compute *c, const lf_cop_desc *d) {
    if (!c || !d || c->destroy != lf_cc_destroy || !((const lf_ccuda *)c->impl)->lt) return 0;
    return d->op == LF_COP_LINEAR && lf_cc_dtype_size(d->weight) != 0;
}

/* conv2d, and conv2d_add when res (y += res after the bias, in the cuDNN graph or by one more kernel) */
static lf_status lf_cc_conv(lf_compute *c, float *y, const float *x, const lf_view *W, const float *b, const float *res,
                            int64_t N, int64_t C_in, int64_t H, int64_t Wd, int64_t C_out, int64_t kh, int64_t kw,
                            int64_t stride, int64_t pad) {
    lf_ccuda *cc = lf_cc(c);
    const char *name = res ? "conv2d_add" : "conv2d";
    lf_status st = LF_OK;
    const void *wd = NULL, *bd = NULL;
    void *col = NULL;
    const int64_t K = C_in * kh * kw;
    const lf_dtype at = lf_cc_dt(cc, y), wt = lf_cc_wtype(cc, W->dtype);
    const lf_cunn_type an = lf_cc_nn_type(at), wn = lf_cc_nn_type(wt);
    LF_TRY(lf_cc_same(y, x, res));
    if (at != LF_F32 && wt != at) {
        st = lf_err(LF_ERR_UNSUPPORTED, "%s activations with a %s weight", lf_dtype_name(at), lf_dtype_name(wt));
        goto fail;
    }
    if (stride <= 0 || kh <= 0 || kw <= 0 || pad < 0) {
        st = lf_err(LF_ERR_ARG, "kernel %lldx%lld, stride %lld, pad %lld", (long long)kh, (long long)kw,
                    (long long)stride, (long long)pad);
        goto fail;
    }
    const int64_t Ho = (H + 2 * pad - kh) / stride + 1, Wo = (Wd + 2 * pad - kw) / stride + 1, P = Ho * Wo;
    LF_TRY(lf_cc_weight(cc, W, C_out * K, b, C_out, LF_F32, &wd, &bd));
    if (N <= 0 || C_out <= 0 || Ho <= 0 || Wo <= 0) return LF_OK;
    LF_TRY(lf_cc_int(K, "C_in*kh*kw"));
    LF_TRY(lf_cc_int(P, "Ho*Wo"));
    LF_TRY(lf_cc_int(C_out, "C_out"));
    /* cuDNN reads the residual in place: a 16-byte aligned one (the graph's tensors all are) */
    if (cc->dnn && wt != LF_F32 && K > 0 && (uintptr_t)lf_cc_dp(res) % 16 == 0) {
        lf_dnn_key key;
        const lf_dnn_plan *plan = NULL;
        memset(&key, 0, sizeof key);
        key = (lf_dnn_key){LF_DNN_CONV, (int32_t)wt, bd != NULL, res != NULL, (int32_t)at, 0,
                           N, C_in, H, Wd, C_out, kh, kw, stride, pad};
        LF_TRY(lf_cc_dnn_plan(cc, &key, &plan));
        if (plan) {
            cc->paths.conv_cudnn++;
            st = lf_cc_conv_dnn(cc, plan, y, x, W, wd, bd, res, &key, P);
            return st ? lf_cc_fail(st, res ? "conv2d_add (cuDNN)" : "conv2d (cuDNN)") : LF_OK;
        }
    }
    cc->paths.conv_fallback++;
    const size_t esz = lf_cc_dtype_size(wt);
    const int direct = kh == 1 && kw == 1 && stride == 1 && pad == 0;
    /* a 1x1 conv reads x_n itself (x of W's type), or one cast copy of all of x (f32 x, 16-bit W) */
    int64_t band = direct ? P : cc->im2col_max / (K > 0 ? K : 1);
    band = band < 1 ? 1 : band > P ? P : band;
    if (direct && wt != at) {
        LF_TRY(lf_cc_malloc(cc, (size_t)(N * C_in * P) * esz, &col));
        LF_LAUNCH(lf_cunn_cast, col, wn, x, N * C_in * P, cc->stream);
    } else if (!direct) {
        LF_TRY(lf_cc_malloc(cc, (size_t)(K * band) * esz, &col));
    }
    for (int64_t n = 0; n < N; n++) {
        const float *xn = x + n * C_in * H * Wd; /* handles: lf_cc_dp gives the address */
        float *yn = y + n * C_out * P;
        if (K == 0) {
            LF_CU(cudaMemsetAsync(lf_cc_dp(yn), 0, (size_t)(C_out * P) * lf_cc_dtype_size(at), cc->stream), NULL);
            continue;
        }
        if (direct) {
            const void *A = wt == at ? lf_cc_dp(xn) : (const char *)col + (size_t)(n * C_in * P) * esz;
            LF_TRY(lf_cc_gemm(cc, wt, CUBLAS_OP_N, (int)P, (int)C_out, (int)K, A, (int)P, wd, (int)K, lf_cc_dp(yn), at,
                              (int)P));
            continue;
        }
        for (int64_t p0 = 0; p0 < P; p0 += band) {
            const int64_t np = P - p0 < band ? P - p0 : band;
            LF_LAUNCH(lf_cunn_im2col, col, wn, lf_cc_dp(xn), an, C_in, H, Wd, kh, kw, stride, pad, Wo, p0, np, cc->stream);
            LF_TRY(lf_cc_gemm(cc, wt, CUBLAS_OP_N, (int)np, (int)C_out, (int)K, col, (int)np, wd, (int)K,
                              lf_cc_dp(yn + p0), at, (int)P));
        }
    }
    if (bd) LF_LAUNCH(lf_cunn_add_bias, lf_cc_dp(y), an, bd, LF_CUNN_F32, N, C_out, P, 0, cc->stream);
    if (res) LF_LAUNCH(lf_cunn_ew, LF_CUNN_ADD, lf_cc_dp(y), lf_cc_dp(y), lf_cc_dp(res), an, 0.0f, N * C_out * P, cc->stream);
fail:
    lf_cc_free(cc, col);
    return st ? lf_cc_fail(st, name) : LF_OK;
}

static lf_status lf_cc_conv2d(lf_compute *c, float *y, const float *x, const lf_view *W, const float *b, int64_t N,
                              int64_t C_in, int64_t H, int64_t Wd, int64_t C_out, int64_t kh, int64_t kw,
                              int64_t stride, int64_t pad) {
    return lf_cc_conv(c, y, x, W, b, NULL, N, C_in, H, Wd, C_out, kh, kw, stride, pad);
}

static lf_status lf_cc_conv2d_add(lf_compute *c, float *y, const float *x, const lf_view *W, const float *b,
                                  const float *res, int64_t N, int64_t C_in, int64_t H, int64_t Wd, int64_t C_out,
                                  int64_t kh, int64_t kw, int64_t stride, int64_t pad) {
    return lf_cc_conv(c, y, x, W, b, res, N, C_in, H, Wd, C_out, kh, kw, stride, pad);
}

static lf_status lf_cc_attention(lf_compute *c, float *out, const float *q, const float *k, const float *v, int64_t N,
                                 int64_t Lq, int64_t Lk, int64_t heads, int64_t d, float scale, int causal) {
    lf_ccuda *cc = lf_cc(c);
    lf_status st = LF_OK;
    float *S = NULL, *f32[4] = {NULL, NULL, NULL, NULL}; /* f32 copies of 16-bit q, k, v, out (fallback) */
    const float one = 1.0f, zero = 0.0f;
    const int64_t HD = heads * d;
    const lf_dtype at = lf_cc_dt(cc, out);
    LF_TRY(lf_cc_same(out, q, k));
    LF_TRY(lf_cc_same(out, v, NULL));
    if (N <= 0 || Lq <= 0 || heads <= 0 || d <= 0) return LF_OK;
    if (Lk <= 0) { /* softmax over no keys: lf_nn gives zeros */
        LF_CU(cudaMemsetAsync(lf_cc_dp(out), 0, (size_t)(N * Lq * HD) * lf_cc_dtype_size(at), cc->stream), NULL);
        return LF_OK;
    }
    LF_TRY(lf_cc_int(HD, "heads*d"));
    LF_TRY(lf_cc_int(Lk, "Lk"));
    LF_TRY(lf_cc_int(heads, "heads"));
    /* cuDNN reads 16-bit operands in place: they must meet its 16-byte alignment */
    const int aligned = at == LF_F32 || ((uintptr_t)lf_cc_dp(q) % 16 == 0 && (uintptr_t)lf_cc_dp(k) % 16 == 0 &&
                                         (uintptr_t)lf_cc_dp(v) % 16 == 0 && (uintptr_t)lf_cc_dp(out) % 16 == 0);
    if (cc->dnn && !causal && lf_cc_sdpa_width(d) && aligned) {
        lf_dnn_key key;
        const lf_dnn_plan *plan = NULL;
        memset(&key, 0, sizeof key);
        key = (lf_dnn_key){LF_DNN_SDPA, (int32_t)(at == LF_F32 ? LF_F16 : at), 0, 0, 0, 0, N, heads, Lq, Lk, d, 0, 0,
                           0, 0};
        LF_TRY(lf_cc_dnn_plan(cc, &key, &plan));
        if (plan) {
            cc->paths.attn_cudnn++;
            st = lf_cc_sdpa_dnn(cc, plan, out, q, k, v, &key, scale);
            return st ? lf_cc_fail(st, "attention (cuDNN)") : LF_OK;
        }
    }
    cc->paths.attn_fallback++;
    float *const out_h = out;
    if (at != LF_F32) { /* 16-bit activations: the f32 path on widened copies, out rounded once at the end */
        const float *src[3] = {q, k, v};
        const int64_t len[4] = {N * Lq * HD, N * Lk * HD, N * Lk * HD, N * Lq * HD};
        for (int i = 0; i < 4; i++) LF_TRY(lf_cc_malloc(cc, (size_t)len[i] * sizeof(float), (void **)&f32[i]));
        for (int i = 0; i < 3; i++)
            LF_LAUNCH(lf_cunn_transpose_cast, f32[i], LF_CUNN_F32, lf_cc_dp(src[i]), lf_cc_nn_type(at), 1, 1, len[i],
                      cc->stream);
        q = f32[0], k = f32[1], v = f32[2], out = f32[3];
    }
    int64_t qc = cc->attn_max / (heads * Lk);
    qc = qc < 1 ? 1 : qc > Lq ? Lq : qc;
    LF_TRY(lf_cc_int(qc * Lk, "query chunk * Lk"));
    LF_TRY(lf_cc_malloc(cc, (size_t)(heads * qc * Lk) * sizeof(float), (void **)&S));
    for (int64_t n = 0; n < N; n++)
        for (int64_t q0 = 0; q0 < Lq; q0 += qc) {
            const int64_t nq = Lq - q0 < qc ? Lq - q0 : qc;
            const float *qn = q + (n * Lq + q0) * HD, *kn = k + n * Lk * HD, *vn = v + n * Lk * HD;
            /* scores_h (nq, Lk) row-major = column-major (Lk, nq) = k_h (col-major (d, Lk))ᵀ · q_h (d, nq) */
            LF_CB(cublasSgemmStridedBatched(cc->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)Lk, (int)nq, (int)d, &scale, kn,
                                            (int)HD, d, qn, (int)HD, d, &zero, S, (int)Lk, nq * Lk, (int)heads));
            LF_LAUNCH(lf_cunn_softmax_rows, S, heads * nq, Lk, causal, nq, q0, cc->stream);
            /* out_h (nq, d) row-major, ld HD = column-major (d, nq) = v_h (col-major (d, Lk)) · P_h (Lk, nq) */
            LF_CB(cublasSgemmStridedBatched(cc->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)d, (int)nq, (int)Lk, &one, vn,
                                            (int)HD, d, S, (int)Lk, nq * Lk, &zero, out + (n * Lq + q0) * HD, (int)HD,
                                            d, (int)heads));
        }
    if (at != LF_F32) LF_LAUNCH(lf_cunn_cast, lf_cc_dp(out_h), lf_cc_nn_type(at), out, N * Lq * HD, cc->stream);
fail:
    lf_cc_free(cc, S);
    for (int i = 0; i < 4; i++) lf_cc_free(cc, f32[i]);
    return st ? lf_cc_fail(st, "attention") : LF_OK;
}

/* ---- normalisation and element-wise ops ----------------------------------------------------- */

/* GroupNorm, with SiLU on its output when silu (the norm kernel's epilogue) */
static lf_status lf_cc_gn(lf_compute *c, float *y, const float *x, const float *gamma, const float *beta, int64_t N,
                          int64_t C, int64_t S, int64_t groups, float eps, int silu) {
    lf_ccuda *cc = lf_cc(c);
    lf_status st = LF_OK;
    const float *g = NULL, *b = NULL;
    float *ws = NULL;
    if (groups <= 0 || C % groups) {
        st = lf_err(LF_ERR_ARG, "%lld channels in %lld groups", (long long)C, (long long)groups);
        goto fail;
    }
    LF_TRY(lf_cc_params(cc, gamma, C, &g));
    LF_TRY(lf_cc_params(cc, beta, C, &b));
    const int64_t nws = lf_cunn_norm_workspace(N, C, S, groups);
    if (nws) LF_TRY(lf_cc_malloc(cc, (size_t)nws * sizeof(float), (void **)&ws));
    LF_TRY(lf_cc_same(y, x, NULL));
    /* named lf_cunn_norm either way: the kernels (lf_cunn_norm_k ...) are the norm's, SiLU an epilogue */
    LF_TRY(lf_cc_launched(cc,
                          silu ? lf_cunn_norm_silu(LF_D(y), LF_D(x), LF_T(y), g, b, N, C, S, groups, eps, ws, cc->stream)
                               : lf_cunn_norm(LF_D(y), LF_D(x), LF_T(y), g, b, N, C, S, groups, eps, ws, cc->stream),
                          "lf_cunn_norm"));
fail:
    lf_cc_free(cc, ws);
    return st ? lf_cc_fail(st, silu ? "group_norm_silu" : "group_norm") : LF_OK;
}

static lf_status lf_cc_group_norm(lf_compute *c, float *y, const float *x, const float *gamma, const float *beta,
                                  int64_t N, int64_t C, int64_t S, int64_t groups, float eps) {
    return lf_cc_gn(c, y, x, gamma, beta, N, C, S, groups, eps, 0);
}

static lf_status lf_cc_group_norm_silu(lf_compute *c, float *y, const float *x, const float *gamma,
                                       const float *beta, int64_t N, int64_t C, int64_t S, int64_t groups, float eps) {
    return lf_cc_gn(c, y, x, gamma, beta, N, C, S, groups, eps, 1);
}

static lf_status lf_cc_layer_norm(lf_compute *c, float *y, const float *x, const float *gamma, const float *beta,
                                  int64_t M, int64_t D, float eps) {
    lf_ccuda *cc = lf_cc(c);
    lf_status st = LF_OK;
    const float *g = NULL, *b = NULL;
    LF_TRY(lf_cc_params(cc, gamma, D, &g));
    LF_TRY(lf_cc_params(cc, beta, D, &b));
    LF_TRY(lf_cc_same(y, x, NULL));
    LF_LAUNCH(lf_cunn_norm, LF_D(y), LF_D(x), LF_T(y), g, b, M, D, 1, 1, eps, NULL, cc->stream);
    return LF_OK;
fail:
    return lf_cc_fail(st, "layer_norm");
}

static lf_status lf_cc_ew(lf_compute *c, lf_cunn_op op, float *y, const float *a, const float *b, float s, int64_t n,
                          const char *name) {
    LF_SAME(name, y, a, b);
    return LF_ONE(name, lf_cunn_ew, op, LF_D(y), LF_D(a), LF_D(b), LF_T(y), s, n, lf_cc(c)->stream);
}

static lf_status lf_cc_silu(lf_compute *c, float *y, const float *x, int64_t n) {
    return lf_cc_ew(c, LF_CUNN_SILU, y, x, NULL, 0.0f, n, "silu");
}
static lf_status lf_cc_gelu(lf_compute *c, float *y, const float *x, int64_t n) {
    return lf_cc_ew(c, LF_CUNN_GELU, y, x, NULL, 0.0f, n, "gelu");
}
static lf_status lf_cc_gelu_tanh(lf_compute *c, float *y, const float *x, int64_t n) {
    return lf_cc_ew(c, LF_CUNN_GELU_TANH, y, x, NULL, 0.0f, n, "gelu_tanh");
}
static lf_status lf_cc_quick_gelu(lf_compute *c, float *y, const float *x, int64_t n) {
    return lf_cc_ew(c, LF_CUNN_QUICK_GELU, y, x, NULL, 0.0f, n, "quick_gelu");
}
static lf_status lf_cc_add(lf_compute *c, float *y, const float *a, const float *b, int64_t n) {
    return lf_cc_ew(c, LF_CUNN_ADD, y, a, b, 0.0f, n, "add");
}
static lf_status lf_cc_mul(lf_compute *c, float *y, const float *a, const float *b, int64_t n) {
    return lf_cc_ew(c, LF_CUNN_MUL, y, a, b, 0.0f, n, "mul");
}
static lf_status lf_cc_scale(lf_compute *c, float *y, const float *x, float s, int64_t n) {
    return lf_cc_ew(c, LF_CUNN_SCALE, y, x, NULL, s, n, "scale");
}

static lf_status lf_cc_geglu(lf_compute *c, float *y, const float *x, int64_t M, int64_t F) {
    LF_SAME("geglu", y, x, NULL);
    return LF_ONE("geglu", lf_cunn_geglu, LF_D(y), LF_D(x), LF_T(y), M, F, lf_cc(c)->stream);
}

static lf_status lf_cc_add_bias_c(lf_compute *c, float *x, const float *b, int64_t N, int64_t C, int64_t S) {
    lf_ccuda *cc = lf_cc(c);
    lf_status st = LF_OK;
    const float *bd = NULL;
    LF_TRY(lf_cc_params(cc, b, C, &bd));
    if (bd) LF_LAUNCH(lf_cunn_add_bias, LF_D(x), LF_T(x), bd, LF_CUNN_F32, N, C, S, 0, cc->stream);
    return LF_OK;
fail:
    return lf_cc_fail(st, "add_bias_c");
}

static lf_status lf_cc_add_bias_nc(lf_compute *c, float *x, const float *b, int64_t N, int64_t C, int64_t S) {
    LF_SAME("add_bias_nc", x, b, NULL);
    return LF_ONE("add_bias_nc", lf_cunn_add_bias, LF_D(x), LF_T(x), LF_D(b), LF_T(b), N, C, S, 1, lf_cc(c)->stream);
}

/* ---- layout ------------------------------------------------------------------------------------ */

static lf_status lf_cc_nchw_to_nlc(lf_compute *c, float *y, const float *x, int64_t N, int64_t C, int64_t S) {
    LF_SAME("nchw_to_nlc", y, x, NULL);
    return LF_ONE("nchw_to_nlc", lf_cunn_transpose, LF_D(y), LF_D(x), LF_T(y), N, C, S, lf_cc(c)->stream);
}

static lf_status lf_cc_nlc_to_nchw(lf_compute *c, float *y, const float *x, int64_t N, int64_t C, int64_t S) {
    LF_SAME("nlc_to_nchw", y, x, NULL);
    return LF_ONE("nlc_to_nchw", lf_cunn_transpose, LF_D(y), LF_D(x), LF_T(y), N, S, C, lf_cc(c)->stream);
}

static lf_status lf_cc_resize_nearest(lf_compute *c, float *y, const float *x, int64_t N, int64_t C, int64_t H,
                                      int64_t W, int64_t Ho, int64_t Wo) {
    LF_SAME("resize_nearest", y, x, NULL);
    return LF_ONE("resize_nearest", lf_cunn_resize_nearest, LF_D(y), LF_D(x), LF_T(y), N, C, H, W, Ho, Wo,
                  lf_cc(c)->stream);
}

static lf_status lf_cc_pad2d(lf_compute *c, float *y, const float *x, int64_t N, int64_t C, int64_t H, int64_t W,
                             int64_t left, int64_t right, int64_t top, int64_t bottom) {
    LF_SAME("pad2d", y, x, NULL);
    return LF_ONE("pad2d", lf_cunn_pad2d, LF_D(y), LF_D(x), LF_T(y), N, C, H, W, left, right, top, bottom,
                  lf_cc(c)->stream);
}

static lf_status lf_cc_concat_c(lf_compute *c, float *y, const float *a, const float *b, int64_t N, int64_t Ca,
                                int64_t Cb, int64_t S) {
    LF_SAME("concat_c", y, a, b);
    return LF_ONE("concat_c", lf_cunn_concat_c, LF_D(y), LF_D(a), LF_D(b), LF_T(y), N, Ca, Cb, S, lf_cc(c)->stream);
}

/* ---- embeddings -------------------------------------------------------------------------------- */

static lf_status lf_cc_timestep_embedding(lf_compute *c, float *emb, const float *t, int64_t N, int64_t dim,
                                          int flip_sin_to_cos, float shift, float max_period) {
    lf_ccuda *cc = lf_cc(c);
    lf_status st = LF_OK;
    float *td = NULL;
    if (N <= 0 || dim <= 0) return LF_OK;
    LF_TRY(lf_cc_malloc(cc, (size_t)N * sizeof(float), (void **)&td));
    LF_CU(cudaMemcpyAsync(td, t, (size_t)N * sizeof(float), cudaMemcpyHostToDevice, cc->stream), NULL);
    /* the two constants exactly as lf_nn_timestep_embedding forms them */
    LF_LAUNCH(lf_cunn_timestep_embedding, LF_D(emb), LF_T(emb), td, N, dim, flip_sin_to_cos, -(float)log((double)max_period),
              (float)(dim / 2) - shift, cc->stream);
fail:
    lf_cc_free(cc, td);
    return st ? lf_cc_fail(st, "timestep_embedding") : LF_OK;
}

static lf_status lf_cc_embedding(lf_compute *c, float *y, const float *table, const int32_t *ids, int64_t L, int64_t V,
                                 int64_t D) {
    lf_ccuda *cc = lf_cc(c);
    lf_status st = LF_OK;
    const float *td = NULL;
    int32_t *idd = NULL;
    for (int64_t i = 0; i < L; i++)
        if (ids[i] < 0 || ids[i] >= V) {
            st = lf_err(LF_ERR_ARG, "id %d at position %lld outside the vocabulary [0, %lld)", (int)ids[i], (long long)i,
                        (long long)V);
            goto fail;
        }
    if (L <= 0 || D <= 0) return LF_OK;
    LF_TRY(lf_cc_params(cc, table, V * D, &td));
    LF_TRY(lf_cc_malloc(cc, (size_t)L * sizeof(int32_t), (void **)&idd));
    LF_CU(cudaMemcpyAsync(idd, ids, (size_t)L * sizeof(int32_t), cudaMemcpyHostToDevice, cc->stream), NULL);
    LF_LAUNCH(lf_cunn_embedding, LF_D(y), LF_T(y), td, idd, L, D, cc->stream);
fail:
    lf_cc_free(cc, idd);
    return st ? lf_cc_fail(st, "embedding") : LF_OK;
}

/* ---- the sampler's updates (kernels/cuda/nn_sample.cu) ------------------------------------------ */

/* b: f32 buffers (alloc_f32); one launch, the CPU's formula and bytes */
static lf_status lf_cc_sample_update(lf_compute *c, const lf_sample_upd *u, float *const *b, int64_t n) {
    if ((unsigned)u->op >= LF_SU_COUNT) return lf_err(LF_ERR_ARG, "cuda compute: sample_update: unknown op %d", u->op);
    return LF_ONE("sample_update", lf_cunn_sample_update, u, b, n, lf_cc(c)->stream);
}

/* ---- segmented low-rank terms (kernels/cuda/lora_sgmv.cu) -------------------------------------- */

/* every segment's terms in one shrink and one expand launch; factors resident by host address */
static lf_status lf_cc_lora_terms(lf_compute *c, float *y, const float *x, int64_t M, int64_t in, int64_t out,
                                  const lf_lora_term *terms, size_t n_terms, const lf_lora_seg *segs, size_t n_segs) {
    lf_ccuda *cc = lf_cc(c);
    lf_status st = LF_OK;
    lf_sgmv_term *dt = calloc(n_terms ? n_terms : 1, sizeof *dt);
    lf_sgmv_seg *ds = calloc(n_segs ? n_segs : 1, sizeof *ds);
    float *t = NULL, *xf = NULL, *yf = NULL; /* f32 copies of 16-bit x and y: the kernels read f32 */
    float *const y_h = y;
    int launches = 0;
    if (!dt || !ds) {
        st = lf_err(LF_ERR_NOMEM, "out of host memory");
        goto fail;
    }
    LF_TRY(lf_cc_same(y, x, NULL));
    for (size_t k = 0; k < n_terms; k++) {
        const lf_lora_term *T = &terms[k];
        const int64_t R = T->down.ndim >= 1 ? T->down.shape[0] : 0;
        if (T->down.dtype != T->up.dtype || !lf_cc_dtype_size(T->down.dtype) || lf_view_numel(&T->down) != R * in ||
            lf_view_numel(&T->up) != out * R) {
            st = lf_err(LF_ERR_SHAPE,
                        "term %zu: down %lld values of %s, up %lld of %s; want (R, %lld) and (%lld, R) of F32, F16 or BF16", k, (long long)lf_view_numel(&T->down), lf_dtype_name(T->down.dtype),
                        (long long)lf_view_numel(&T->up), lf_dtype_name(T->up.dtype), (long long)in, (long long)out);
            goto fail;
        }
        if (T->scale == 0.0f || R == 0) continue; /* rank 0: nothing to launch */
        LF_TRY(lf_cc_resident(cc, T->down.data, T->down.dtype, T->down.dtype, R * in, &dt[k].down));
        LF_TRY(lf_cc_resident(cc, T->up.data, T->up.dtype, T->up.dtype, out * R, &dt[k].up));
        dt[k].rank = R, dt[k].dtype = lf_cc_nn_type(T->down.dtype), dt[k].scale = T->scale;
    }
    for (size_t i = 0; i < n_segs; i++) {
        const lf_lora_seg *g = &segs[i];
        if (g->row0 < 0 || g->rows < 0 || g->row0 + g->rows > M || g->term0 > n_terms ||
            g->n_terms > n_terms - g->term0) {
            st = lf_err(LF_ERR_ARG, "segment %zu (rows %lld + %lld, terms %zu + %zu) outside %lld rows, %zu terms", i,
                        (long long)g->row0, (long long)g->rows, g->term0, g->n_terms, (long long)M, n_terms);
            goto fail;
        }
        for (size_t j = 0; j < i; j++)
            if (g->rows > 0 && segs[j].rows > 0 && g->row0 < segs[j].row0 + segs[j].rows &&
                segs[j].row0 < g->row0 + g->rows) {
                st = lf_err(LF_ERR_ARG, "segments %zu and %zu share rows", j, i);
                goto fail;
            }
        ds[i].row0 = g->row0, ds[i].rows = g->rows, ds[i].term0 = g->term0, ds[i].n_terms = g->n_terms;
    }
    const int64_t nt = lf_cunn_lora_sgmv_scratch(ds, n_segs, dt);
    if (nt > 0) LF_TRY(lf_cc_malloc(cc, (size_t)nt * sizeof(float), (void **)&t));
    if (lf_cc_is16(y) && M > 0) {
        LF_TRY(lf_cc_malloc(cc, (size_t)(M * in) * sizeof(float), (void **)&xf));
        LF_TRY(lf_cc_malloc(cc, (size_t)(M * out) * sizeof(float), (void **)&yf));
        LF_LAUNCH(lf_cunn_transpose_cast, xf, LF_CUNN_F32, LF_D(x), LF_T(x), 1, 1, M * in, cc->stream);
        LF_LAUNCH(lf_cunn_transpose_cast, yf, LF_CUNN_F32, LF_D(y), LF_T(y), 1, 1, M * out, cc->stream);
        x = xf, y = yf;
    }
    const char *failed = "lf_cunn_lora_sgmv";
    const int e = lf_cunn_lora_sgmv(y, x, M, in, out, ds, n_segs, dt, n_terms, t, &launches, &failed, cc->stream);
    LF_TRY(lf_cc_launched(cc, e, failed)); /* names the kernel that failed */
    cc->paths.lora_calls++;
    cc->paths.lora_launches += (uint64_t)launches;
    if (yf) LF_LAUNCH(lf_cunn_cast, LF_D(y_h), LF_T(y_h), yf, M * out, cc->stream);
fail:
    lf_cc_free(cc, t);
    lf_cc_free(cc, xf);
    lf_cc_free(cc, yf);
    free(dt);
    free(ds);
    return st ? lf_cc_fail(st, "lora_terms") : LF_OK;
}

/* ---- open -------------------------------------------------------------------------------------- */

static int64_t lf_cc_env_size(const char *name, int64_t dflt) {
    const char *s = getenv(name);
    char *end = NULL;
    long long v = s ? strtoll(s, &end, 10) : 0;
    return s && end != s && *end == '\0' && v > 0 ? (int64_t)v : dflt;
}

lf_status lf_compute_cuda_open(lf_device *dev, lf_compute **out) {
    return lf_compute_cuda_open_as(dev, LF_F32, LF_DTYPE_INVALID, out);
}

lf_status lf_compute_cuda_open_as(lf_device *dev, lf_dtype act, lf_dtype wdt, lf_compute **out) {
    lf_status st = LF_OK;
    *out = NULL;
    if (!dev) return lf_err(LF_ERR_ARG, "cuda compute: no device (lf_device_open first)");
    if (act != LF_F32 && act != LF_F16 && act != LF_BF16)
        return lf_err(LF_ERR_ARG, "cuda compute: activations in %s (F32, F16 or BF16)", lf_dtype_name(act));
    if (act != LF_F32) wdt = act; /* the products take one 16-bit type on both sides */
    if (wdt != LF_DTYPE_INVALID && !lf_cc_dtype_size(wdt))
        return lf_err(LF_ERR_ARG, "cuda compute: weights in %s (F32, F16 or BF16)", lf_dtype_name(wdt));
    lf_ccuda *cc = calloc(1, sizeof *cc);
    if (!cc) return lf_err(LF_ERR_NOMEM, "out of memory");
    cc->dev = dev;
    cc->wdt = wdt;
    pthread_mutex_init(&cc->mu, NULL);
    const char *sync = getenv("LF_CUDA_SYNC_CHECK");
    cc->sync_check = sync && sync[0] == '1';
    cc->im2col_max = lf_cc_env_size("LF_CUDA_IM2COL_MAX", (int64_t)1 << 24);
    cc->attn_max = lf_cc_env_size("LF_CUDA_ATTN_MAX", (int64_t)1 << 26);
    lf_compute *c = &cc->c;
    c->name = "cuda";
    c->impl = cc;
    c->act = act;
    c->clock = lf_cc_clock;
    c->alloc = lf_cc_alloc;
    c->alloc_f32 = act == LF_F32 ? NULL : lf_cc_alloc_f32;
    c->release = lf_cc_release;
    c->upload = lf_cc_upload;
    c->download = lf_cc_download;
    c->copy2d = lf_cc_copy2d;
    c->sync = lf_cc_sync;
    c->forget = lf_cc_forget;
    c->bind = lf_cc_bind;
    c->supports = lf_cc_supports;
    c->destroy = lf_cc_destroy;
    c->patch = &lf_cc_patcher;
    c->linear = lf_cc_linear;
    c->conv2d = lf_cc_conv2d;
    c->group_norm = lf_cc_group_norm;
    c->layer_norm = lf_cc_layer_norm;
    c->silu = lf_cc_silu;
    c->gelu = lf_cc_gelu;
    c->gelu_tanh = lf_cc_gelu_tanh;
    c->quick_gelu = lf_cc_quick_gelu;
    c->geglu = lf_cc_geglu;
    c->add = lf_cc_add;
    c->mul = lf_cc_mul;
    c->scale = lf_cc_scale;
    c->add_bias_c = lf_cc_add_bias_c;
    c->add_bias_nc = lf_cc_add_bias_nc;
    c->attention = lf_cc_attention;
    c->nchw_to_nlc = lf_cc_nchw_to_nlc;
    c->nlc_to_nchw = lf_cc_nlc_to_nchw;
    c->resize_nearest = lf_cc_resize_nearest;
    c->pad2d = lf_cc_pad2d;
    c->concat_c = lf_cc_concat_c;
    c->timestep_embedding = lf_cc_timestep_embedding;
    c->embedding = lf_cc_embedding;
    c->lora_terms = lf_cc_lora_terms;
    c->conv2d_add = lf_cc_conv2d_add;
    c->group_norm_silu = lf_cc_group_norm_silu;
    c->sample_update = lf_cc_sample_update;
    LF_CU(cudaSetDevice(lf_device_ordinal(dev)), NULL);
    LF_CU(cudaStreamCreateWithFlags(&cc->stream, cudaStreamNonBlocking), NULL);
    LF_CB(cublasCreate(&cc->blas));
    LF_CB(cublasSetStream(cc->blas, cc->stream));
    const char *use_dnn = getenv("LF_CUDA_CUDNN");
    if (!(use_dnn && use_dnn[0] == '0')) {
        /* without cuDNN (not built, or cudnnCreate fails) every op takes its fallback */
        lf_status dst = lf_dnn_open(cc->stream, &cc->dnn);
        const char *log = getenv("LF_CUDA_CUDNN_LOG");
        if (dst && log && log[0] == '1')
            fprintf(stderr, "lorafuse: cuda compute: no cuDNN (%s); the fallback paths run every op\n", lf_last_error());
    }
    const char *use_lt = getenv("LF_CUDA_CUBLASLT");
    if (!(use_lt && use_lt[0] == '0')) {
        /* without cuBLASLt (not built, or its handle or workspace fails) every Linear takes cuBLAS */
        lf_status lst = lf_lt_open(cc->stream, &cc->lt);
        const char *log = getenv("LF_CUDA_CUBLASLT_LOG");
        if (lst && log && log[0] == '1')
            fprintf(stderr, "lorafuse: cuda compute: no cuBLASLt (%s); cuBLAS runs every Linear\n", lf_last_error());
    }
    /* cublasCreate may run work on the legacy stream, which a non-blocking stream does not wait for */
    LF_CU(cudaDeviceSynchronize(), NULL);
    *out = c;
    return LF_OK;
fail:
    lf_cc_destroy(c);
    return lf_cc_fail(st, "open");
}
lf_status lf_compute_cuda_device(int ordinal, lf_dtype dtype, lf_compute **out, char *desc, size_t cap) {
    lf_device *dev = NULL;
    *out = NULL;
    lf_status st = lf_device_open(ordinal, &dev);
    if (st == LF_OK) st = lf_compute_cuda_open_as(dev, dtype, dtype, out);
    if (st != LF_OK) {
        lf_device_close(dev);
        return st;
    }
    lf_cc(*out)->own_dev = dev;
    if (desc && cap) snprintf(desc, cap, "%s", lf_device_describe(dev));
    return LF_OK;
}
