/* lf_merge.h: bake adapters into a copy of a checkpoint (`lorafuse merge`).
 *
 * W = W0 + sum_i C_i(W0, s_i) for every patched tensor (docs/semantics.md P5, P6); every other tensor is copied
 * byte-identical; dtypes kept; the output's metadata keeps the model's and adds "lorafuse.merged"
 * (JSON: file, strength, modules matched per adapter). All adapters are loaded and checked before
 * any output is produced (P9); the output is written to a temporary file and renamed into place.
 *
 * The output is refused before any work (LF_ERR_ARG, nothing written) when its path is empty, when
 * it is the model or one of the adapters (same device and inode: hard links, symbolic links and other
 * spellings included), when it exists and is not a regular file (a device, a FIFO, a directory), and
 * when it exists at all unless opts->overwrite. Inputs must be regular files (a FIFO is refused
 * without blocking). A failure or a signal (in a program whose handlers call host/base/file.h's
 * cleanup, as `lorafuse` does) leaves the destination as it was and no temporary file.
 */
#ifndef LF_MERGE_H
#define LF_MERGE_H

#include <stddef.h>

#include "lorafuse/lf_model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lf_merge_input {
    const char *path;
    float strength;
    int dyn_rank; /* plain LoRA: use only the first dyn_rank ranks (0 = all) */
} lf_merge_input;

typedef struct lf_merge_stats {
    double t_read, t_compute, t_write; /* seconds: open + check, patch math, output write */
    size_t tensors_patched, tensors_copied;
    size_t bytes_out;
} lf_merge_stats;

typedef struct lf_merge_opts {
    lf_plan_opts plan;
    int threads;   /* worker threads for the patch math (0 = online CPUs) */
    int reference; /* 1: scalar reference only (no BLAS path) */
    int overwrite; /* 1: replace an existing output file (`--force`); 0: refuse it */
    /* `--backend cuda`: patch every job of the plan into outs[j] (the target's dtype and size) instead of
     * the CPU threads; NULL: the CPU. The caller that links the device library passes lf_dev_merge_apply
     * (host/cuda/merge_device.h) with ctx pointing at the device ordinal, as the lorafuse program does. */
    lf_status (*apply)(void *ctx, const lf_plan *plan, void **outs);
    void *apply_ctx;
} lf_merge_opts;

lf_status lf_merge(const char *model_path, const lf_merge_input *in, size_t n, const char *out_path,
                   const lf_merge_opts *opts, lf_merge_stats *stats);

#ifdef __cplusplus
}
#endif
#endif
