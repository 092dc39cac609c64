/* lf_merge.h: bake adapters into a copy of a checkpoint (`lorafuse merge`).
 *
 * W = W0 + sum_i C_i(W0, s_i) for every patched tensor (docs/semantics.md P5, P6); every other tensor is copied
 * byte-identical; dtypes kept; the output's metadata keeps the model's and adds "lorafuse.merged"
 * (JSON: file, strength, modules matched per adapter). All adapters are loaded and checked before
 * any output is produced (P9); the output is written to a temporary file and renamed into place.
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
} lf_merge_opts;

lf_status lf_merge(const char *model_path, const lf_merge_input *in, size_t n, const char *out_path,
                   const lf_merge_opts *opts, lf_merge_stats *stats);

#ifdef __cplusplus
}
#endif
#endif
