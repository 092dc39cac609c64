/* extract_internal.h: the pieces of `lorafuse extract` shared by extract.c (inputs, checks, threads,
 * output) and extract_module.c (one module: SVD, rank, factors, residual). Private to host/pipeline.
 */
#ifndef LF_EXTRACT_INTERNAL_H
#define LF_EXTRACT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "lorafuse/lf_extract.h"

/* Below this many rows or columns the exact SVD is cheap enough to always use (auto method). */
#define LF_X_RSVD_MIN_DIM 256
/* Randomized SVD defaults: p = max(rank, LF_X_OVERSAMPLE_MIN) extra columns (l = 2 rank, as kohya's
 * svd_lowrank q = 2 rank) and 3 power iterations: within 0.6 % of the optimum on the flattest spectrum
 * measured (a random rank-64 LoRA cut to 16, bench/RESULTS.md). */
#define LF_X_OVERSAMPLE_MIN 10
#define LF_X_POWER_ITERS 3

/* The settings every module is extracted with. */
typedef struct lf_xcfg {
    lf_rank_policy policy;
    double param;
    double clamp;
    lf_dtype dtype;
    lf_svd_method svd;
    int oversample;         /* 0: max(rank, LF_X_OVERSAMPLE_MIN) per module */
    int power_iters;
    lf_extract_svd_fn svd_fn; /* NULL: the CPU's */
    void *svd_ctx;
} lf_xcfg;

/* One output module: rows [row_off, row_off + rows) of a weight, flattened to (rows, K). */
typedef struct lf_xmod {
    const char *name;       /* kohya name (the keymap's) */
    const char *key;        /* checkpoint weight key */
    int64_t row_off, rows;  /* rows = the slice's row count (the whole weight: O) */
    int64_t slice_rows;     /* the target's rows: 0 for the whole weight */
    int64_t K, in, kh, kw;  /* K = in * kh * kw */
    int ndim;               /* 2 (Linear) or 4 (conv) */
    int cap;                /* the rank, or the dynamic policy's cap; <= min(rows, K) */
    int clamped;            /* the rank asked for is above min(rows, K): kept whole */
    /* results */
    int zero;               /* dW = 0: left out */
    int rank, randomized;
    double norm, kept, residual, t_svd;
    void *up, *down;        /* in cfg.dtype: up (rows, rank), down (rank, K) */
} lf_xmod;

/* Factor dw (rows, K), row-major f32, into m's results per cfg. dw is overwritten (it ends as the
 * residual dW - up . down). */
lf_status lf_extract_module(const lf_xcfg *cfg, float *dw, lf_xmod *m);

/* The randomized SVD's width l = cap + oversampling for a module of rank cap. */
int64_t lf_extract_width(const lf_xcfg *cfg, int cap);
/* Whether a module of min(rows, K) = p with rank cap `cap` takes the randomized path. */
int lf_extract_use_randomized(const lf_xcfg *cfg, int64_t p, int cap);

#endif
