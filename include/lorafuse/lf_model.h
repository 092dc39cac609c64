/* lf_model.h: a single-file checkpoint (LDM/SGM keys) opened for patching, and the plan that
 * matches adapters to its weights.
 *
 * Spec P9: every adapter is loaded and checked before any weight is touched: base-model family
 * (metadata ss_base_model_version, and shapes: cross-attention width, TE2), the shape of every
 * matched module, unknown tensor suffixes and modules that match nothing. lf_plan_build either
 * returns a complete plan or an error; nothing is modified either way.
 * A plan is a list of layer jobs, one per checkpoint tensor that some adapter touches; each job
 * holds the (module, coefficient, row slice) patches for that tensor (P5: all against W0).
 */
#ifndef LF_MODEL_H
#define LF_MODEL_H

#include <stddef.h>

#include "lorafuse/lf_adapter.h"
#include "lorafuse/lf_keymap.h"
#include "lorafuse/lf_safetensors.h"
#include "lorafuse/lf_status.h"
#include "lorafuse/lf_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lf_model {
    lf_st_file *st;
    lf_keymap *km;
    lf_family family;
} lf_model;

lf_status lf_model_open(const char *path, lf_model **out);
void lf_model_free(lf_model *m);

typedef struct lf_patch {
    lf_module mod;         /* copy, resolved against the target shape */
    size_t adapter;        /* index into the adapters given to lf_plan_build */
    float coef;            /* strength */
    int64_t row_off, rows; /* slice of the target's rows (rows = 0: all) */
    int bias;              /* patches the bias vector (diff_b, b_norm) */
} lf_patch;

typedef struct lf_job {
    const lf_st_tensor *target;
    lf_patch *patches;
    size_t n_patches;
} lf_job;

typedef struct lf_plan_opts {
    int allow_unmatched;   /* warn instead of failing on modules that match nothing */
    int allow_family;      /* apply even when the adapter's family differs from the model's */
} lf_plan_opts;

typedef struct lf_plan {
    lf_job *jobs;          /* sorted by target offset (file order) */
    size_t n_jobs;
    size_t *matched;       /* per adapter: modules matched */
    size_t *unmatched;     /* per adapter: modules that matched nothing */
    size_t n_adapters;
} lf_plan;

lf_status lf_plan_build(const lf_model *model, lf_adapter *const *adapters, const float *strengths,
                        size_t n, const lf_plan_opts *opts, lf_plan **out);
void lf_plan_free(lf_plan *p);

/* Compute the patched weight of one job into out (same dtype and size as the target):
 * acc = W0 (f32) + sum of contributions, each against the pristine W0, rounded once (P5, P6).
 * A non-finite result is an error naming the tensor. fast = 1 uses BLAS for plain LoRA. */
lf_status lf_job_apply(const lf_job *job, int fast, void *out);

/* Scratch of lf_job_apply_ws (two f32 copies of the largest job seen), kept by a caller that applies
 * many jobs so that each job does not allocate and fault in fresh pages. Zero-initialise; free with
 * lf_apply_ws_free. One per thread. */
typedef struct lf_apply_ws {
    float *buf;
    size_t cap; /* floats */
} lf_apply_ws;

lf_status lf_job_apply_ws(const lf_job *job, int fast, void *out, lf_apply_ws *ws);
/* dw (numel of the target, f32) = sum of the job's contributions C_i(W0, s_i), each against the pristine
 * W0, accumulated from zero by the same code as lf_job_apply and not rounded: the merged weight minus
 * W0 without the cancellation of subtracting it. A non-finite sum is an error naming the tensor. */
lf_status lf_job_delta_ws(const lf_job *job, int fast, float *dw, lf_apply_ws *ws);
void lf_apply_ws_free(lf_apply_ws *ws);
/* ws->buf holds at least `copies` f32 copies of an n-element tensor (name: for the message). */
lf_status lf_apply_ws_reserve(lf_apply_ws *ws, int64_t n, size_t copies, const char *name);
/* 1 when some patch of the job has a nonzero coefficient (else the job leaves W0 as it is). */
int lf_job_active(const lf_job *job);

#ifdef __cplusplus
}
#endif
#endif
