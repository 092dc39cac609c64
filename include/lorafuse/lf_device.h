/* lf_device.h: device residency of patched weights and the fused CUDA apply, plain C API.
 *
 * Usable from gcc-compiled C: no CUDA types appear here (opaque handles, streams as `void *`, which
 * is a cudaStream_t; NULL = the legacy default stream). Every build links it: a build without CUDA,
 * or a machine with no usable device, answers lf_device_open with LF_ERR_UNSUPPORTED and a message
 * saying which (tests then exit 77).
 *
 * Model of use (docs/semantics.md P5-P7):
 *   lf_device_open(0, &dev);
 *   lf_dev_model_create(dev, jobs, n_jobs, &opts, &dm);   upload W0 of every job, adapter factors
 *   lf_dev_set_coef(dm, job, patch, s) / lf_dev_set_coefs / lf_dev_set_adapter_coef;
 *   lf_dev_apply(dm, stream);                             rewrite the jobs whose coefficients changed
 *   ... use lf_dev_weight(dm, job) (device pointer, the job's dtype and shape) ...
 *   lf_dev_model_free(dm); lf_device_close(dev);
 *
 * Semantics:
 *   - After create every weight holds W0 and the "applied" coefficient of every patch is 0; the
 *     pending coefficients are the plan's lf_patch.coef, so the first apply applies the plan.
 *   - An apply rewrites exactly the jobs with at least one patch whose pending coefficient differs
 *     (bitwise) from the applied one. It always starts from the pristine W0 (P7): for any set of
 *     coefficients W = round(W0 + sum_i C_i(W0, s_i)) as the CPU lf_job_apply computes it (P5, P6),
 *     within the tolerances of docs/cuda.md; a job whose coefficients are all 0 gets W0's bytes back
 *     exactly (a raw copy, never arithmetic).
 *   - One apply is a handful of launches (one grouped kernel over a device work list of (job, tile)
 *     items for all dirty jobs of mixed shapes and algorithms), not one per layer.
 *   - Failures name the CUDA call, the layer and the CUDA message (lf_last_error()). A failed or
 *     non-finite apply restores every job it touched from W0 and marks them applied at 0.
 *   - Not thread-safe: one host thread drives one lf_dev_model at a time.
 * The jobs (lf_model.h) are read only during create: W0 bytes, factors and shapes are copied then;
 * the plan, the adapters and the checkpoint may be freed afterwards. A job's module fields
 * (gamma, dyn_rank, alpha ...) are captured at create; to change dyn_rank, create again.
 */
#ifndef LF_DEVICE_H
#define LF_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "lorafuse/lf_model.h"
#include "lorafuse/lf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lf_device lf_device;
typedef struct lf_dev_model lf_dev_model;

/* 1 if this build has the CUDA backend compiled in (it may still find no device). */
int lf_device_compiled(void);

/* Open device `ordinal` (cudaSetDevice + a property query). LF_ERR_UNSUPPORTED when the build has no
 * CUDA or no device is usable (message says which and gives the CUDA error text). */
lf_status lf_device_open(int ordinal, lf_device **out);
void lf_device_close(lf_device *dev);
/* "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, driver 13.0, runtime 13.0)" */
const char *lf_device_describe(const lf_device *dev);

typedef struct lf_dev_opts {
    /* Budget for the pristine W0 copies in device memory, MiB. Jobs beyond it keep W0 in pinned
     * (mapped) host memory, read by the kernel over the bus (P7). -1 = no limit (all on device),
     * 0 = all in pinned host memory. */
    int64_t max_backup_mb;
    /* Use the tensor-core (TF32 WMMA) product for concatenated LoRA ranks >= this (default 16 when
     * 0; a huge value forces the FMA path everywhere). */
    int tc_min_rank;
    /* 3xTF32 split products (near-f32 accuracy) for f32 weights: 0 or 1 = on (default), -1 = off.
     * f16/bf16 weights always use 1xTF32 (its error is far below their rounding). */
    int tf32_split_f32;
    /* 1: cudaStreamSynchronize after every launch inside lf_dev_* (pins async faults to the call;
     * the env var LF_CUDA_SYNC_CHECK=1 does the same). */
    int sync_check;
    /* The type W and W0 are held in on the device (LF_F16, LF_BF16, LF_F32), converted from the
     * target's dtype at create (rounded to nearest even); LF_DTYPE_INVALID (0, the default): each
     * job's own dtype. lf_dev_weight / lf_dev_download then give that type. */
    lf_dtype store;
} lf_dev_opts;

/* Defaults: max_backup_mb -1, tc_min_rank 16, tf32_split_f32 1, sync_check 0. */
void lf_dev_opts_default(lf_dev_opts *o);

/* Upload every job's target tensor in its dtype (F32, F16, BF16; anything else is
 * LF_ERR_UNSUPPORTED naming the layer) and its pristine copy, and every patch's factors as f32
 * (converted once with lf_view_to_f32, P6; Tucker cores, LoKr W1/W2 and GLoRA's W0-side product are
 * expanded on the host with the CPU reference code, OFT/BOFT rotations are Cayley-solved on the host,
 * DoRA norms of W0 + gamma*dW are computed once on the device). opts may be NULL (defaults).
 * On failure nothing stays allocated and *out is NULL. */
lf_status lf_dev_model_create(lf_device *dev, const lf_job *jobs, size_t n_jobs, const lf_dev_opts *opts,
                              lf_dev_model **out);
/* Same for all jobs of a plan. */
lf_status lf_dev_model_create_plan(lf_device *dev, const lf_plan *plan, const lf_dev_opts *opts,
                                   lf_dev_model **out);
void lf_dev_model_free(lf_dev_model *dm);

size_t lf_dev_n_jobs(const lf_dev_model *dm);
size_t lf_dev_n_patches(const lf_dev_model *dm);       /* all jobs, job-major, patch order kept */
size_t lf_dev_job_patch0(const lf_dev_model *dm, size_t job); /* global index of the job's patch 0 */

/* Device pointer of a job's current weight (its dtype, row-major, the target's shape). */
void *lf_dev_weight(const lf_dev_model *dm, size_t job);

/* Pending coefficients (strengths). Take effect at the next apply. LF_ERR_ARG for a bad index or a
 * non-finite value. */
lf_status lf_dev_set_coef(lf_dev_model *dm, size_t job, size_t patch, float coef);
/* coefs[i] for global patch i, i < lf_dev_n_patches. */
lf_status lf_dev_set_coefs(lf_dev_model *dm, const float *coefs);
/* Every patch whose lf_patch.adapter == adapter (index given to lf_plan_build). */
lf_status lf_dev_set_adapter_coef(lf_dev_model *dm, size_t adapter, float coef);
float lf_dev_get_coef(const lf_dev_model *dm, size_t job, size_t patch);

/* Enqueue the rewrite of every dirty job on `stream` and return; errors found at enqueue time
 * (launch failures) restore the jobs and are returned. The non-finite check completes in
 * lf_dev_apply_wait. Calling another lf_dev_* that enqueues work first waits implicitly. */
lf_status lf_dev_apply_async(lf_dev_model *dm, void *stream);
/* Wait for the last apply_async; if a rewritten weight is not finite, restore every job that apply
 * touched from W0 (they become applied at 0) and return LF_ERR_NONFINITE naming the first layer. */
lf_status lf_dev_apply_wait(lf_dev_model *dm);
/* apply_async + apply_wait. */
lf_status lf_dev_apply(lf_dev_model *dm, void *stream);

/* Set every pending coefficient to 0 and apply: all weights become W0, bit for bit. */
lf_status lf_dev_restore_all(lf_dev_model *dm, void *stream);

typedef struct lf_dev_apply_stats {
    size_t jobs_rewritten;    /* jobs in the last apply (dirty ones) */
    size_t jobs_restored;     /* of those, jobs with all coefficients 0 (raw W0 copy) */
    size_t tiles;             /* (job, tile) work items launched */
    size_t launches;          /* kernel launches + copies of the last apply */
    uint64_t bytes_weights;   /* W0 read + W written, bytes */
    uint64_t bytes_factors;   /* adapter factor bytes the dirty jobs reference (each counted once) */
    uint64_t bytes_upload;    /* host -> device bytes of the apply (coefficients, work list, BOFT) */
} lf_dev_apply_stats;

void lf_dev_last_stats(const lf_dev_model *dm, lf_dev_apply_stats *st);

/* Totals of the model: device bytes held (weights, W0 backups, factors, scratch) and pinned host
 * bytes (W0 backups beyond the budget). */
void lf_dev_memory(const lf_dev_model *dm, uint64_t *device_bytes, uint64_t *pinned_bytes);

/* Copy a job's current weight to host memory (size = numel * dtype size), synchronously. */
lf_status lf_dev_download(lf_dev_model *dm, size_t job, void *host_out);

/* Test hooks: lf_dev_guard_check verifies the guard bytes (>= 1 KiB of a fixed pattern) placed
 * before and after every device allocation of the model; returns LF_ERR_DEVICE naming the buffer
 * and offset of the first damaged byte. lf_dev_poison fills every job's current weight with
 * all-ones bytes (NaN in every float dtype) without touching W0 or the applied state, and marks
 * every job dirty, so the next apply must rewrite each weight completely. */
lf_status lf_dev_guard_check(lf_dev_model *dm);
lf_status lf_dev_poison(lf_dev_model *dm);

/* ---- per-step plans on the device ------------------------------------------------------------ */

struct lf_step_plan;

/* A device model for every job of a step plan (lf_step_plan.h), holding W0 ("step 0"). */
lf_status lf_dev_model_create_steps(lf_device *dev, const struct lf_step_plan *sp, const lf_dev_opts *opts,
                                    lf_dev_model **out);
/* Bring the weights to step t (0 <= t <= n_steps, any order): step t's coefficient row becomes the
 * pending set and one grouped apply rewrites exactly the jobs whose coefficients differ from what is
 * applied, always from W0 (P7). For consecutive steps that is the step's own job list. */
lf_status lf_dev_apply_step(lf_dev_model *dm, const struct lf_step_plan *sp, int t, void *stream);
/* The same for a subset of the plan's jobs: device job i is plan job jobs[i] (n of them, each at most
 * once; jobs NULL: all, n ignored), e.g. the UNet layers a generate job patches on the device while its
 * text-encoder layers are patched on the host. lf_dev_apply_step_jobs takes the same jobs array. */
lf_status lf_dev_model_create_steps_jobs(lf_device *dev, const struct lf_step_plan *sp, const size_t *jobs, size_t n,
                                         const lf_dev_opts *opts, lf_dev_model **out);
lf_status lf_dev_apply_step_jobs(lf_dev_model *dm, const struct lf_step_plan *sp, const size_t *jobs, int t,
                                 void *stream);
/* LF_OK when dm (made from some step plan's jobs) has the layout of sp's jobs `jobs` (n, NULL: all): as
 * many layers, each with as many patches as its plan job; LF_ERR_ARG naming the first that differs. The
 * model holds nothing of the plan it was made from, so lf_dev_apply_step_jobs may then step it with sp:
 * a caller that knows the layers, adapter files and modules are the same (a session's next job with
 * other strengths or schedules) keeps the model instead of making it again. */
lf_status lf_dev_model_fits_steps(const lf_dev_model *dm, const struct lf_step_plan *sp, const size_t *jobs, size_t n);

/* ---- truncated SVD on the device (the two paths of `lorafuse extract`, docs/extract.md "GPU") ------- */

/* The SVD of a row-major f32 matrix a (m, n) held on the host, computed on dev: cuSOLVER gesvdj
 * (Jacobi, economy size, every singular triplet) when l = 0; otherwise the randomized SVD of
 * kernels/cpu/linalg/lf_svd.h with l columns (1 <= l <= min(m, n)) and q power iterations, the same
 * Gaussian test matrix from `seed`, its products in cuBLAS sgemm and its QRs in cuSOLVER geqrf/orgqr,
 * then B's small SVD and U = Q Ub on the host. Writes p = min(m, n) (l = 0) or l singular values to s
 * (descending), u (m, p) and vt (p, n) row-major, all host memory the caller provides. Compiled and
 * tested under the gpu label; `lorafuse extract --svd-device cuda` calls it (lf_extract_opts.svd_fn). */
lf_status lf_dev_svd(lf_device *dev, const float *a, int64_t m, int64_t n, int64_t l, int q, uint64_t seed,
                     double *s, float *u, float *vt);

#ifdef __cplusplus
}
#endif
#endif
