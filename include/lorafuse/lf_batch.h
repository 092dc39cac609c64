/* lf_batch.h: `lorafuse batch` (docs/batch.md): many txt2img jobs from one job file, run in one process
 * on resident models (lf_generate.h sessions), sharded, resumable, with a manifest.
 *
 * Job file (lf_batch_load): JSON Lines (one job object per line; blank lines skipped) or one JSON
 * document {"defaults": {...}, "jobs": [...], "sweeps": [...]}. A job's fields are A1111 txt2img's
 * (prompt, negative_prompt, seed, steps, sampler_name, scheduler, cfg_scale, width, height, batch_size,
 * n_iter) plus model, id, clip_skip and batchable; a job with "axes" ({"NAME": [v, ...], ...}) is a sweep: the
 * cartesian product of its axes (first axis outermost) expands into jobs, an axis named like a field
 * setting that field and any other axis NAME replacing "{NAME}" in the string fields (prompt,
 * negative_prompt, model, sampler_name, scheduler), so LoRA strengths, te/unet, LBW and schedules sweep
 * through the prompt's <lora:...> tags.
 *
 * Order (lf_batch_order): stable by (model, the prompt's LoRA tags, prompt, negative prompt), so that
 * consecutive jobs share the model and adapter set; an image never depends on the order.
 * Batches (lf_batch_run): consecutive batchable jobs (in that order) that may share one call
 * (lf_gen_groupable: same model, size, steps, sampler, CFG, clip skip), up to max_batch images, run as one
 * lf_gen_open_group call; each keeps its own files, records and seeds.
 * Shards (lf_batch_shard): groups of consecutive jobs with the same model and tags are split into N
 * contiguous parts by their image count, whole groups when there are at least N groups.
 */
#ifndef LF_BATCH_H
#define LF_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "lorafuse/lf_generate.h"
#include "lorafuse/lf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LF_BATCH_DEFAULT_MAX_JOBS 10000
#define LF_BATCH_DEFAULT_MAX_BATCH 8
#define LF_BATCH_MAX_BATCH 256

typedef struct lf_batch_job {
    char *id;                  /* unique: the job's id, or SWEEP/NNNN-AXIS=V_... for a sweep's job */
    char *dir;                 /* output folder relative to the output dir: the id ('/' kept) */
    char *model, *prompt, *negative, *sampler; /* sampler: the lorafuse name (scheduler folded in) */
    int steps, width, height, batch_size, n_iter, clip_skip;
    double cfg;
    int64_t seed;              /* -1: seed 0 .. images derive from it as generate's */
    char *params;              /* the expanded job as a JSON object (the manifest's "params") */
    char *key;                 /* model + sorted LoRA tags: jobs with the same key share the weights */
    char *sweep;               /* the sweep's id, or NULL */
    char *axes;                /* a sweep's job: its axis values as JSON [["NAME", "VALUE"], ...]; else NULL */
    size_t sweep_index;        /* a sweep's job: its index in the sweep's product */
    int line;                  /* job file line (JSON Lines), 0 when unknown */
    int batchable;             /* "batchable": true: may run in one batch with its neighbours (lf_batch_opts.max_batch) */
} lf_batch_job;

typedef struct lf_batch_list {
    lf_batch_job *jobs;
    size_t n;
} lf_batch_list;

/* Read, expand and check a job file (syntax, fields, types, ids, the job limit). Errors name
 * "FILE:LINE:COL" for JSON syntax and the job (id or line) for the rest. */
lf_status lf_batch_load(const char *path, size_t max_jobs, lf_batch_list *out);
/* The same on text[0..len) (NUL-terminated) named `path` in messages. */
lf_status lf_batch_parse(const char *path, const char *text, size_t len, size_t max_jobs, lf_batch_list *out);
void lf_batch_list_free(lf_batch_list *l);
void lf_batch_order(lf_batch_list *l);
/* The jobs of shard i (0-based) of n: *idx (malloc'd, ascending) and *n_idx. */
lf_status lf_batch_shard(const lf_batch_list *l, int i, int n, size_t **idx, size_t *n_idx);
/* Images one job makes. */
size_t lf_batch_job_images(const lf_batch_job *j);

typedef struct lf_batch_opts {
    const char *output_dir;    /* required */
    const char *lora_dir;      /* NULL: models/lora */
    lf_gen_backend backend;    /* auto (default), cpu or cuda */
    int device;                /* CUDA device ordinal */
    lf_gen_cuda_fn cuda;       /* lf_gen_opts.cuda */
    lf_dtype dtype, vae_dtype; /* lf_gen_opts.dtype, .vae_dtype (--dtype, --vae-dtype); 0: the defaults */
    int resume;                /* skip images recorded in the manifest whose file has the recorded hash */
    int shard, shards;         /* 0/1: unsharded (manifest.jsonl); else manifest-shard-I-of-N.jsonl */
    int quiet;                 /* no progress lines on stderr */
    int batchable;             /* every job is batchable (--batchable), as if its "batchable" were true */
    int max_batch;             /* images of one batch of batchable jobs; 0: LF_BATCH_DEFAULT_MAX_BATCH */
    int batch_merged;          /* lf_gen_opts.batch_merged of every job (0: unmerged LoRA terms in a batch) */
} lf_batch_opts;

typedef struct lf_batch_stats {
    size_t jobs, images, skipped, model_loads, grids; /* grids: sheets written */
    size_t batches;            /* calls that ran several batchable jobs together */
    double seconds;
    lf_gen_times times;        /* summed over the jobs */
} lf_batch_stats;

/* Check every job of idx still to run (tags, LoRA files, sizes, sampler: lf_gen_open_in on the first
 * model's session, loaded once, lf_gen_open for other models), then run
 * them in that order, loading each model once; then the grid sheets of its sweeps (docs/batch.md). */
lf_status lf_batch_run(const lf_batch_list *l, const size_t *idx, size_t n_idx, const lf_batch_opts *o,
                       lf_batch_stats *st);

/* The call that starts at idx[k]: idx[k..end) run as one batch (end > k): idx[k] and the batchable jobs after
 * it that lf_gen_groupable lets share its call, up to max_batch images; k + 1 when idx[k] is not batchable.
 * lf_batch_run applies it to the jobs with images still to make, --dry-run to all. */
size_t lf_batch_batch_end(const lf_batch_list *l, const size_t *idx, size_t n_idx, size_t k, const lf_batch_opts *o);

/* Merge manifests: a JSON object with the totals (malloc'd text). */
lf_status lf_batch_report(const char *const *paths, size_t n, char **json);

#ifdef __cplusplus
}
#endif
#endif
