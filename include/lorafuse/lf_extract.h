/* lf_extract.h: adapters of any type, or a fine-tuned checkpoint, back into one kohya LoRA by truncated
 * SVD (`lorafuse extract`; docs/extract.md).
 *
 * Per module (a Linear, a 1x1 or k x k conv, or a row slice of a fused text-encoder weight) of the
 * model's U-Net and text encoders:
 *   dW = sum_i C_i(W0, s_i)        the merged contribution of the adapters (lf_job_delta_ws: the same
 *                                  code as `merge`, P5), f32, not rounded;  or
 *   dW = W_tuned - W_base          in f32,
 * flattened to (out, in*kh*kw); dW = U S Vt; rank r by the policy; up = U_r diag(S_r) (out, r[, 1, 1]),
 * down = Vt_r (r, in[, kh, kw]), alpha = r, so that up . down is the best rank-r approximation of dW in
 * the Frobenius norm (Eckart-Young). Modules whose dW is zero are left out.
 * Rank policies (kohya's networks/resize_lora.py, computed on the singular values S of the module):
 *   fixed          r = rank (conv_rank for k x k convs, k > 1)
 *   sv_ratio X     r = #{i : S_i > S_0 / X}
 *   sv_fro F       r = 1 + first i with sum_{j<=i} S_j^2 / sum_j S_j^2 >= F^2
 *   sv_cumulative F  r = 1 + first i with sum_{j<=i} S_j / sum_j S_j >= F
 *   each capped by rank (conv_rank) when given; r = 1 when S_0 <= 1e-6 (kohya's MIN_SV).
 * A module smaller than the rank (min(O, K) < rank, e.g. conv_out's 4 rows) is written whole, at rank
 * min(O, K), as kohya does; a rank above every module it applies to is an error.
 * Every input is opened and checked (P9; shapes, families, ranks against the layers, output path)
 * before anything is computed, and nothing is written unless every module succeeds; the output is
 * written to a temporary file and renamed into place (lf_safetensors.h).
 */
#ifndef LF_EXTRACT_H
#define LF_EXTRACT_H

#include <stddef.h>
#include <stdint.h>

#include "lorafuse/lf_merge.h"
#include "lorafuse/lf_model.h"
#include "lorafuse/lf_status.h"
#include "lorafuse/lf_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lf_rank_policy {
    LF_RANK_FIXED = 0,
    LF_RANK_SV_RATIO,
    LF_RANK_SV_FRO,
    LF_RANK_SV_CUMULATIVE
} lf_rank_policy;

typedef enum lf_svd_method {
    LF_SVD_AUTO = 0,   /* randomized for large modules at small rank, exact otherwise (docs/extract.md) */
    LF_SVD_EXACT,      /* LAPACK gesdd */
    LF_SVD_RANDOMIZED  /* range finder + power iterations; needs a rank, not with sv_cumulative */
} lf_svd_method;

/* An SVD the caller provides instead of the CPU's: the arguments and results of lf_dev_svd
 * (lf_device.h): a (m, n) row-major on the host; l = 0: every triplet (p = min(m, n)), else the
 * randomized SVD with l columns, q power iterations and the Gaussian test matrix of `seed`; s (p or l
 * values, descending), u (m, p) and vt (p, n) row-major into the caller's host memory. It is called
 * from the operator pool's threads, possibly at the same time. */
typedef lf_status (*lf_extract_svd_fn)(void *ctx, const float *a, int64_t m, int64_t n, int64_t l, int q,
                                       uint64_t seed, double *s, float *u, float *vt);

typedef struct lf_extract_opts {
    int rank;               /* fixed rank, or the cap of a dynamic policy (0: no cap; dynamic only) */
    int conv_rank;          /* the same for k x k convolutions, k > 1 (0: rank) */
    lf_rank_policy policy;
    double param;           /* the dynamic policy's target: X > 0 (sv_ratio), 0 < F <= 1 (sv_fro, sv_cumulative) */
    double clamp_quantile;  /* kohya's --clamp_quantile: 0 < q < 1 clamps both factors to +-quantile_q of
                               their values; 0 = off */
    int unet_only;          /* leave the text encoders out */
    lf_dtype dtype;         /* LF_F16 (also for LF_DTYPE_INVALID), LF_BF16 or LF_F32 */
    lf_svd_method svd;
    int oversample;         /* randomized: columns beyond the rank (0: max(rank, 10), i.e. twice the rank) */
    int power_iters;        /* randomized: power iterations (0: 3) */
    int threads;            /* > 0: lf_par_set_threads(threads) for the run (process-wide pool); 0: as set */
    lf_plan_opts plan;      /* adapters: allow_unmatched, allow_family (not across the adapters) */
    int overwrite;          /* 1: an existing output file is replaced; 0: refused (never an input, never a
                               special file) */
    lf_extract_svd_fn svd_fn; /* NULL: the CPU's SVD (kernels/cpu/linalg); else this one, e.g. the device's */
    void *svd_ctx;            /* svd_fn's first argument */
} lf_extract_opts;

/* One module of the output. */
typedef struct lf_extract_layer {
    char *name;             /* kohya module name, e.g. lora_unet_down_blocks_0_attentions_0_proj_in */
    char *key;              /* the checkpoint weight it approximates */
    int64_t row_off, rows;  /* row slice of the weight (rows = 0: all) */
    int64_t out, in, kh, kw;
    int rank;
    int randomized;         /* 1: the randomized SVD produced the factors */
    double norm;            /* ||dW||_F */
    double kept;            /* sqrt(sum_{i<rank} S_i^2) / ||dW||_F: the fraction of the norm kept (kohya's
                               "fro retained") */
    double residual;        /* ||dW - up . down||_F, up and down as written (after clamp and rounding) */
    double t_svd;           /* seconds: SVD, rank, factors, residual */
} lf_extract_layer;

typedef struct lf_extract_report {
    lf_extract_layer *layers; /* the modules written, sorted by name */
    size_t n_layers;
    size_t n_zero;            /* modules with dW = 0, left out */
    size_t n_full;            /* modules smaller than the rank, written whole at rank min(O, K) */
    size_t n_skipped;         /* tensors with a nonzero change a LoRA cannot carry (biases, norms,
                                 embeddings, VAE), left out */
    char skipped_first[256];  /* the first of them */
    double norm, residual;    /* over the modules written: sqrt of the sums of squares */
    double t_read;            /* open, check, plan */
    double t_layers;          /* wall time of the parallel dW + SVD part */
    double t_delta, t_svd;    /* their parts, summed over the threads */
    double t_write;
    size_t bytes_out;
    int threads;
} lf_extract_report;

/* Extract into out_path from either n_loras adapters (each with its strength; dyn_rank is honoured)
 * or a tuned checkpoint (tuned_path, n_loras = 0). report may be NULL; otherwise free it with
 * lf_extract_report_free (also after a failure). */
lf_status lf_extract(const char *model_path, const lf_merge_input *loras, size_t n_loras, const char *tuned_path,
                     const char *out_path, const lf_extract_opts *opts, lf_extract_report *report);
void lf_extract_report_free(lf_extract_report *r);

/* The rank a policy picks from the singular values s[0..p) (descending) of a module, kohya's formulas
 * (resize_lora.py rank_resize); total_sq is sum_j S_j^2 over the whole spectrum (||dW||_F^2, which a
 * randomized SVD's top values alone do not give). cap >= 1. */
int lf_extract_pick_rank(const double *s, int64_t p, double total_sq, lf_rank_policy policy, double param, int cap);

/* "fixed", "sv_ratio", "sv_fro", "sv_cumulative" */
const char *lf_rank_policy_name(lf_rank_policy p);

#ifdef __cplusplus
}
#endif
#endif
