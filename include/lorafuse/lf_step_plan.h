/* lf_step_plan.h: the per-step strength plan of a prompt's `<lora:...>` tags, and the CPU backend that
 * executes it (docs/prompt-tags.md; docs/semantics.md P5, P7, P10).
 *
 * One lf_plan is built for all adapters of the prompt (one adapter per tag, in prompt order; the same
 * NAME twice gives two adapters that add up, sharing one loaded file). Identical tags (lf_tag_same,
 * same file) are one entry with a count: their contributions add up exactly as separate tags would,
 * at the cost of one (see lf_step_adapter). For every step t = 1..N the
 * coefficient of every patch (adapter, layer) is the tag's strength for the layer's component
 * (te1 / te2 / UNet, from the keymap) and block (lf_block_of_key), per lf_strength.h. Step t lists
 * only the jobs (checkpoint tensors) whose coefficient vector differs from step t-1 (step 1 compares
 * against "nothing applied", all zero), so a job that is zero at every step never appears and a
 * constant-strength prompt patches everything once, before step 1. Each step also says whether the
 * text encoders must encode again: the text-encoder coefficient vector is a set; every distinct set is
 * encoded once (te_encode), at the first step that uses it. A tag whose strengths are zero at every
 * step drops its adapter: the file is neither loaded nor planned.
 *
 * Prompt editing (lf_prompt_edit.h) joins the same plan: the conditioning of a step is a cond set, one
 * per distinct (text-encoder set, prompt text, negative text) of the run, encoded once, at the first
 * step that uses it (cond_encode). lf_step_plan_build schedules the cleaned prompt with an empty
 * negative; lf_step_plan_set_prompts replaces both (generate: trigger words appended, the negative).
 *
 * Every job is always recomputed from the pristine W0 of the mmap'd checkpoint (P7: no subtraction),
 * W = W0 + sum_i coef_i * C_i, rounded once (lf_job_apply). Conditional and unconditional halves of a
 * CFG batch share the weights of a step: a schedule never splits the batch.
 *
 * Data shapes: coef is (N + 1) rows x n_coef floats; row 0 is all zero; the coefficients of job j at
 * step t are coef[t * n_coef + patch_base[j] + k] for its patches k = 0..n_patches-1.
 */
#ifndef LF_STEP_PLAN_H
#define LF_STEP_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "lorafuse/lf_model.h"
#include "lorafuse/lf_prompt_edit.h"
#include "lorafuse/lf_strength.h"
#include "lorafuse/lf_prompt_tags.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Limits (docs/limits.md "Prompts and tags"): steps of a plan, different adapters in one prompt
 * (identical tags count once, dropped ones too), and entries of the coefficient table
 * ((steps + 1) x patches, 512 MiB of floats). */
#define LF_STEPS_MAX 10000
#define LF_PROMPT_MAX_ADAPTERS 64
#define LF_STEP_PLAN_MAX_COEFS (1 << 27)

/* Where a plan gets its adapter files: open gives a file the plan borrows until it hands it back with
 * release (a cache of loaded files, for a server). The plan never modifies a file it borrows. */
typedef struct lf_adapter_source {
    lf_status (*open)(void *ctx, const char *path, lf_adapter **out);
    void (*release)(void *ctx, lf_adapter *a);
    void *ctx;
} lf_adapter_source;

typedef struct lf_step_opts {
    const char *lora_dir;       /* NULL: LF_LORA_DIR_DEFAULT (lf_step_plan_build only) */
    int lora_dir_confine;       /* refuse symbolic links out of lora_dir (lf_lora_dir_opts.confine) */
    const char *lbw_presets;    /* user LBW presets file, or NULL */
    lf_plan_opts plan;          /* allow_unmatched, allow_family */
    const lf_adapter_source *source; /* NULL: lf_adapter_open, files owned by the plan */
} lf_step_opts;

/* One entry per distinct tag: `count` identical tags (the first one is `tag`). An entry whose
 * contributions are linear in the strength (every algorithm but OFT with rescale and multi-factor
 * BOFT) is one plan adapter at count times the tag's strength (n_plan = 1); otherwise each copy is a
 * plan adapter of its own at the tag's strength (n_plan = count). */
typedef struct lf_step_adapter {
    const lf_tag *tag;
    size_t count;               /* identical tags merged into this entry (>= 1) */
    char *path;                 /* resolved file */
    int dropped;                /* zero at every step: not loaded */
    size_t plan_index;          /* first of its adapters in the plan (SIZE_MAX when dropped) */
    size_t n_plan;              /* its adapters in the plan: plan_index .. plan_index + n_plan - 1 */
    unsigned algos;             /* bit (1u << lf_algo) for each algorithm among the matched modules */
    size_t modules;             /* modules matched */
    lf_strength str;
} lf_step_adapter;

typedef struct lf_step {
    size_t *jobs;               /* indices into plan->jobs rewritten before this step (ascending) */
    size_t n_jobs;
    uint64_t bytes;             /* bytes of the rewritten tensors */
    int te_changed;             /* text-encoder coefficients differ from the previous step */
    int te_encode;              /* the text encoders must run (a text-encoder set not encoded before) */
    size_t te_set;              /* which distinct text-encoder set this step uses (0-based) */
    size_t cond_set;            /* which cond set (text-encoder set, prompt text, negative text) */
    int cond_encode;            /* its first step: the text encoders run */
} lf_step;

typedef struct lf_cond_set {
    size_t te_set;
    size_t text[2];             /* index into prompts[0].texts (prompt) and prompts[1].texts (negative) */
} lf_cond_set;

typedef struct lf_step_plan {
    const lf_model *model;
    int n_steps;
    lf_step_adapter *adapters;  /* one per distinct tag, in the order of their first copy */
    size_t n_adapters;
    lf_adapter **files;         /* distinct loaded files (owned, or borrowed from source) */
    size_t n_files;
    lf_adapter_source source;   /* where files came from (open NULL: lf_adapter_open) */
    lf_plan *plan;              /* jobs for every non-dropped adapter; patch coefs are placeholders */
    lf_component *job_comp;     /* per job */
    int *job_block;             /* per job (LF_BLK_NONE outside the UNet) */
    size_t *patch_base;         /* per job */
    size_t n_coef;
    float *coef;                /* (n_steps + 1) x n_coef */
    lf_step *steps;             /* steps[t - 1], t = 1..n_steps */
    size_t n_te_sets;
    lf_prompt_sched prompts[2]; /* prompt and negative prompt text of every step */
    lf_cond_set *cond_sets;
    size_t n_cond_sets;
    lf_msgs warnings;
} lf_step_plan;

/* Resolve every tag's name in opts->lora_dir, then lf_step_plan_build_files. Every check (tags against
 * the model family and N, names, adapter files, P9 plan checks) happens before anything is applied. */
lf_status lf_step_plan_build(const lf_model *model, const lf_prompt *prompt, int n_steps, const lf_step_opts *opts,
                             lf_step_plan **out);
/* Same with the file of each tag given (paths[i] for prompt->tags[i]). Errors before any work: steps
 * outside 1..LF_STEPS_MAX, more than LF_PROMPT_MAX_ADAPTERS different tags; a coefficient table above
 * LF_STEP_PLAN_MAX_COEFS is refused before it is allocated. */
lf_status lf_step_plan_build_files(const lf_model *model, const lf_prompt *prompt, const char *const *paths,
                                   int n_steps, const lf_step_opts *opts, lf_step_plan **out);
void lf_step_plan_free(lf_step_plan *sp);
/* Schedule the prompt and negative (NULL: "") texts over the plan's steps (prompt editing) and make
 * the cond sets of every step. Errors are those of lf_prompt_sched_build; the plan is unchanged then. */
lf_status lf_step_plan_set_prompts(lf_step_plan *sp, const char *prompt, const char *negative);
/* `prompt` followed by the trigger words of the plan's live adapters (not dropped; each file once, in
 * prompt order), as lf_lora_append_triggers adds them (A1111/SD.Next "auto trigger"). *out is malloc'd. */
lf_status lf_step_plan_auto_trigger(const lf_step_plan *sp, const char *prompt, char **out);

/* Coefficients of job j at step t (0 <= t <= n_steps; t = 0: all zero). */
const float *lf_step_coefs(const lf_step_plan *sp, int t, size_t job);

/* Fill patches (room for job's n_patches) with job j's patches carrying step t's coefficients, and
 * *job with a view of them: the per-layer (adapter, coefficient) interface every backend executes. */
void lf_step_job(const lf_step_plan *sp, int t, size_t j, lf_patch *patches, lf_job *job);

/* ---- CPU backend ------------------------------------------------------------------------------- */

typedef struct lf_cpu_backend lf_cpu_backend;

/* Writable copies of every tensor the plan may patch, holding W0 (nothing applied, "step 0").
 * fast: passed to lf_job_apply (1 = BLAS path for plain LoRA). */
lf_status lf_cpu_backend_new(const lf_step_plan *sp, int fast, lf_cpu_backend **out);
/* The same for the jobs j with held[j] != 0 only (held NULL: all): the others get no copy and no
 * converted factors (patched elsewhere, e.g. on a device); stepping one of them is LF_ERR_ARG and
 * lf_cpu_backend_weight gives NULL for it. */
lf_status lf_cpu_backend_new_held(const lf_step_plan *sp, int fast, const unsigned char *held, lf_cpu_backend **out);
void lf_cpu_backend_free(lf_cpu_backend *b);
/* Apply step t's list (t must be the step after the last one applied, starting at 1): each listed job
 * is recomputed from the pristine W0 with step t's coefficients. */
lf_status lf_cpu_backend_step(lf_cpu_backend *b, int t);
/* Start the steps again at 1 (a new sampler run of the same plan) without touching the tensors: they
 * keep the bytes of the last step applied, and the caller recomputes the jobs whose bytes must differ
 * at step 1 (lf_cpu_backend_step_jobs), so tensors bound to the backend stay valid throughout. */
void lf_cpu_backend_rewind(lf_cpu_backend *b);
/* Same order rule, but recompute only jobs[0..n) with step t's coefficients: for a model that already
 * holds the right bytes for every other job (a resident model reused across prompts); the others keep
 * what the backend held. */
lf_status lf_cpu_backend_step_jobs(lf_cpu_backend *b, int t, const size_t *jobs, size_t n);
/* Current bytes of job j's tensor (same dtype and size as the checkpoint's). */
const void *lf_cpu_backend_weight(const lf_cpu_backend *b, size_t j, size_t *nbytes);

#ifdef __cplusplus
}
#endif
#endif
