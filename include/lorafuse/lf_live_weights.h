/* lf_live_weights.h: adapters on a loaded model, through the per-layer (job) interface.
 *
 * A loaded UNet (lf_unet.h) or text encoder (lf_clip.h) holds its weights in the checkpoint's dtype
 * (f32 for biases and norms), indexed by the checkpoint key each was read from. A backend that patches
 * checkpoint tensors (lf_step_plan.h lf_cpu_backend, lf_merge, the device backend after a download)
 * produces new bytes for a tensor in the checkpoint's dtype; lf_*_set_weight copies them into the model
 * (in their dtype; converted to f32 for an f32 buffer); lf_live_apply_step / lf_live_apply_all do not
 * copy: the model reads the CPU backend's tensor in place from then on (HF q/k/v rows, held in one fused
 * buffer, are copied), so the backend must outlive the model's use of them. Keys:
 *   UNet    "model.diffusion_model.<P>" (or <P> alone) for the LDM path P; a model read from a
 *           diffusers folder is indexed by the LDM names too, so plans built on the single-file keys
 *           address it the same way.
 *   CLIP    the key under the prefix the encoder was loaded with: SD1 "cond_stage_model.transformer."
 *           + HF path, SDXL TE1 "conditioner.embedders.0.transformer." + HF path, SDXL TE2
 *           "conditioner.embedders.1.model." + OpenCLIP path. The fused TE2 in_proj_weight (3w, w) and
 *           in_proj_bias (3w) are one tensor each (a job patches row slices of them and hands the whole
 *           tensor over); HF q/k/v_proj weights and biases land in their rows of the fused q/k/v copy;
 *           the OpenCLIP text_projection (w, proj) is transposed into the held (proj, w).
 * The new value must have the checkpoint's shape ((a, b) and (a, b, 1, 1) are the same); dtype any
 * that lf_view_to_f32 reads. A model loaded with borrowed weights (lf_unet_load_views borrow = 1)
 * cannot be refreshed.
 *
 * Step plans: after lf_cpu_backend_step(b, t), lf_live_apply_step(m, sp, b, t) refreshes exactly
 * the jobs step t lists (P10: a job whose coefficients did not change is not touched); after
 * lf_cpu_backend_new (all W0) nothing needs refreshing. lf_live_apply_all refreshes every job (a
 * model loaded while the backend was at some later step). Each job goes to the model of its
 * component (sp->job_comp: UNet, TE1, TE2); a job whose model is NULL in lf_live is an error naming
 * the tensor, unless skip_missing is set (for example a caller that encodes text elsewhere).
 * Test: tests/runtime/test_live_weights.c (merged checkpoint == base model + refreshed weights, bitwise).
 */
#ifndef LF_LIVE_WEIGHTS_H
#define LF_LIVE_WEIGHTS_H

#include <stddef.h>

#include "lorafuse/lf_clip.h"
#include "lorafuse/lf_step_plan.h"
#include "lorafuse/lf_status.h"
#include "lorafuse/lf_tensor.h"
#include "lorafuse/lf_types.h"
#include "lorafuse/lf_unet.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the model holds a weight read from checkpoint key `key`. */
int lf_unet_has_weight(const lf_unet *u, const char *key);
int lf_clip_has_weight(const lf_clip *m, const char *key);
/* The memory the UNet's operators read for that weight, as the compute sees it (host/base/compute.h:
 * the host address its resident copy is found by, the dtype and the checkpoint's shape): a weight held
 * in its stored dtype, or an f32 buffer held untransposed (a bias, a norm). A device backend binds its
 * own copy to that address. LF_ERR_MODEL when the UNet holds no such weight. */
lf_status lf_unet_weight_held(const lf_unet *u, const char *key, lf_view *out);
/* Overwrite that weight's f32 copy with v converted to f32. LF_ERR_MODEL (message names the key) when
 * the model has no such weight, LF_ERR_SHAPE when v's shape differs from the checkpoint's. */
lf_status lf_unet_set_weight(lf_unet *u, const char *key, const lf_view *v);
lf_status lf_clip_set_weight(lf_clip *m, const char *key, const lf_view *v);

/* The models a step plan's jobs land in (any may be NULL). */
typedef struct lf_live {
    lf_unet *unet;
    lf_clip *te1, *te2;
    int skip_missing;   /* 1: jobs of a component whose model is NULL are skipped, not an error */
} lf_live;

typedef struct lf_live_stats {
    size_t refreshed;   /* tensors converted */
    size_t skipped;     /* jobs skipped (skip_missing) */
    uint64_t bytes;     /* checkpoint bytes read */
    size_t te_refreshed; /* of which text-encoder tensors (the caller re-encodes when > 0) */
} lf_live_stats;

/* Route one checkpoint tensor (key, value) to the model of `comp`. */
lf_status lf_live_set(const lf_live *m, lf_component comp, const char *key, const lf_view *v);
/* Give the model of `comp` back its pristine weight: v is the checkpoint's own tensor in the file mapping
 * the model was loaded from (it lives as long as the model). The model reads it in place again, as after
 * the load (no copy, nothing for lf_live_own to copy); an f32-only weight is converted instead. */
lf_status lf_live_restore(const lf_live *m, lf_component comp, const char *key, const lf_view *v);
/* Every weight of the models bound to a backend's tensor gets its own copy, so that backend may be
 * freed while the models stay loaded (a resident model between jobs: lf_generate.h sessions). */
lf_status lf_live_own(const lf_live *m);
/* Refresh the jobs step t lists with the backend's current bytes (call after lf_cpu_backend_step(b, t)).
 * stats may be NULL. */
lf_status lf_live_apply_step(const lf_live *m, const lf_step_plan *sp, const lf_cpu_backend *b, int t,
                             lf_live_stats *stats);
/* Refresh every job of the plan with the backend's current bytes. */
lf_status lf_live_apply_all(const lf_live *m, const lf_step_plan *sp, const lf_cpu_backend *b,
                            lf_live_stats *stats);
/* Refresh the plan jobs jobs[0..n) with the backend's current bytes (after lf_cpu_backend_step_jobs). */
lf_status lf_live_apply_jobs(const lf_live *m, const lf_step_plan *sp, const lf_cpu_backend *b, const size_t *jobs,
                             size_t n, lf_live_stats *stats);

#ifdef __cplusplus
}
#endif
#endif
