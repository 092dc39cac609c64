/* device_internal.h: what device_cuda.c (model lifecycle, apply), device_cuda_patch.c (per-algorithm
 * factor preparation) and device_cuda_mem.c (guarded allocations, CUDA errors) share: the host-side
 * model (jobs, patches, term table, BOFT and DoRA state, buffer list), the CUDA error macros and the
 * guarded allocators. Calls go device_cuda.c -> device_cuda_patch.c -> device_cuda_mem.c;
 * device_cuda_svd.c (the device SVD) and compute_cuda.c (the compute backend) use device_cuda.c
 * (lf_device_ordinal) and device_cuda_mem.c (lf_cu_err). Private
 * to host/cuda; CUDA builds only.
 */
#ifndef LF_DEVICE_INTERNAL_H
#define LF_DEVICE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime.h>

#include "kernels/cuda/lf_dev_abi.h"
#include "lorafuse/lf_device.h"

/* ---- errors (device_cuda_mem.c) --------------------------------------------------------------- */

/* the status of a failed CUDA call: names the call, the layer (or none) and the CUDA error */
lf_status lf_cu_err(cudaError_t e, const char *call, const char *layer, const char *file, int line);

/* evaluate a CUDA call once; on failure set st and goto fail */
#define LF_CU(call, layer)                                                                     \
    do {                                                                                       \
        cudaError_t e_ = (call);                                                               \
        if (e_ != cudaSuccess) {                                                               \
            st = lf_cu_err(e_, #call, (layer), __FILE__, __LINE__);                            \
            goto fail;                                                                         \
        }                                                                                      \
    } while (0)

/* evaluate a cuBLAS call once (cublas_v2.h included by the user); on failure set st and goto fail */
#define LF_CB(call)                                                                            \
    do {                                                                                       \
        cublasStatus_t s_ = (call);                                                            \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                     \
            st = lf_err(LF_ERR_DEVICE, "%s failed: cuBLAS status %d [%s:%d]", #call, (int)s_,  \
                        __FILE__, __LINE__);                                                   \
            goto fail;                                                                         \
        }                                                                                      \
    } while (0)

#define LF_TRY(expr)                                                                           \
    do {                                                                                       \
        if ((st = (expr)) != LF_OK) goto fail;                                                 \
    } while (0)

/* the ordinal lf_device_open opened (device_cuda.c), for entry points that set the device again */
int lf_device_ordinal(const lf_device *dev);

/* ---- types ----------------------------------------------------------------------------------- */

typedef struct {
    void *base;       /* allocation (guards included) */
    size_t bytes;     /* payload bytes */
    size_t total;
    int pinned;
    char what[96];
} lf_dbuf;

typedef struct {
    char *name;
    lf_dtype dtype;
    int64_t O, K, I, khw, numel;
    size_t bytes;
    size_t patch0, npatch;
    void *w, *w0;
    int w0_pinned;
    int nterm, ncat, has_dora;
    int forced;
    uint64_t factor_bytes;
} lf_hjob;

typedef struct {
    size_t job, adapter;
    float pending, applied;
    int in_cat;
} lf_hpatch;

typedef struct {
    size_t term, job, patch;
    int64_t rows, nm, nb, b, G;
    float *R;        /* host (nm*nb, b, b) */
    float *hq;       /* pinned staging (rows, G) */
    float *dq;       /* device (rows, G) */
    float s_last;
    int valid;
} lf_hboft;

typedef struct {
    size_t term;
    int64_t n;
    float *m;        /* host magnitude */
    double *dss;     /* device */
    float *dk;       /* device */
} lf_hdora;

struct lf_dev_model {
    lf_device *dev;
    lf_dev_opts opts;
    size_t nj, np;
    lf_hjob *jobs;
    lf_hpatch *patches;
    lf_djob *hdjobs;
    lf_dterm *hterms;
    size_t nterms, capterms;
    float *hgamma;
    lf_hboft *bofts;
    size_t nboft;
    lf_hdora *doras;
    size_t ndora;
    /* device */
    lf_djob *d_jobs;
    lf_dterm *d_terms;
    float *d_coef, *d_gamma;
    int32_t *d_list;
    int32_t *d_bad;
    /* pinned staging */
    float *h_coef;
    int32_t *h_list;
    int32_t *h_bad;
    /* allocations */
    lf_dbuf *bufs;
    size_t nbufs, capbufs;
    uint64_t dev_bytes, pinned_bytes, backup_dev_bytes;
    /* apply state */
    cudaEvent_t done;
    int event_ok;
    int pending;
    void *pending_stream;
    size_t *touched;
    size_t ntouched;
    lf_dev_apply_stats stats;
};

/* ---- guarded allocations (device_cuda_mem.c) ---------------------------------------------------- */

static inline size_t lf_round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

/* Guards around every device and pinned allocation (device_cuda_mem.c, lf_dev_guard_check). */
#define LF_GUARD 1024
#define LF_GUARD_BYTE 0xA5

/* device buffer of `bytes` with guards; *out = payload */
lf_status lf_dalloc(lf_dev_model *dm, size_t bytes, const char *what, const char *layer, void **out);
/* pinned host buffer with guards, mapped into the device's address space when `mapped`; *out = payload */
lf_status lf_halloc(lf_dev_model *dm, size_t bytes, int mapped, const char *what, const char *layer, void **out);
/* upload `bytes` into a new guarded device buffer */
lf_status lf_dupload(lf_dev_model *dm, const void *src, size_t bytes, const char *what, const char *layer,
                     void **out);

/* ---- factor preparation (device_cuda_patch.c) ------------------------------------------------- */

/* Build the term (or the concatenated-LoRA membership) of patch gp (global index) of job j. */
lf_status lf_patch_setup(lf_dev_model *dm, size_t j, size_t gp, const lf_job *job, const lf_patch *p);
/* Concatenated LoRA of job j into dj (up, down, rank_patch, rcat, tc), after its patches' setup. */
lf_status lf_cat_build(lf_dev_model *dm, size_t j, const lf_job *job, lf_djob *dj);
/* BOFT composite of one slice for strength s into Q (rows, G); NaN-filled when out of memory. */
void lf_boft_composite(const lf_hboft *bo, float s, float *Q);

#endif
