/* lf_dev_abi.h: the device work list shared by the host orchestration (host/cuda/device_cuda.c, gcc)
 * and the grouped apply kernel (kernels/cuda/apply.cu, nvcc). Plain C11 and C++17 structs of
 * pointers and 32-bit ints; the host fills arrays of them and copies them to the device once per
 * model (jobs, terms) or per apply (coefficients, dirty list).
 *
 * Vocabulary (lf_tensor.h): a job's weight W (O, I[, kh, kw]) is flat(W) (O, K), K = I*khw. A term is
 * one adapter contribution on rows [row_off, row_off + rows) of its job, in the term's local row
 * index ol = o - row_off. All factor arrays are f32, row-major, already expanded where the expansion
 * does not depend on the strength (see docs/cuda.md).
 */
#ifndef LF_DEV_ABI_H
#define LF_DEV_ABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* tile of flat(W) one thread block rewrites, and its thread count */
#define LF_DEV_TM 64
#define LF_DEV_TN 64
#define LF_DEV_THREADS 128
/* rank chunk of the tensor-core path; concatenated LoRA ranks are zero-padded to a multiple */
#define LF_DEV_KC_TC 32
/* rank chunk of the FMA path (no padding) */
#define LF_DEV_KC_FMA 16

/* weight dtypes on the device */
enum { LF_DDT_F32 = 0, LF_DDT_F16 = 1, LF_DDT_BF16 = 2 };

/* term kinds: dW_raw of the additive ones (LOWRANK..FULL) and the row/column operators */
enum {
    LF_TK_LOWRANK = 1, /* a (rows, r) @ b (r, K): LoRA/LoCon (+ Tucker, expanded into b) under DoRA */
    LF_TK_LOHA,        /* (a @ b) (.) (a2 @ b2), ranks r, r2 (Tucker: a transposed, core folded into b) */
    LF_TK_LOKR,        /* W1 a (i0_a, c) (x) W2 b (i0_b, d*khw): i0 = b, i1 = c, i2 = d, i3 = khw */
    LF_TK_GLORA,       /* sum_p a[(ol*r+p)*khw+sp] * b[p*I+j] + sum_p a2[ol*r+p] * b2[p*K+c] */
    LF_TK_FULL,        /* a (rows*K): diff / diff_b / w_norm / b_norm */
    LF_TK_OFT,         /* rows mixed by (I + s(R_k - I))^T, R = a (nblk, i0, i0), i0 = block b */
    LF_TK_ROWMIX,      /* BOFT composite: W'[ol] = sum_n a[((g*G)+m)*G + n] W0[g*G + n], i0 = G */
    LF_TK_IA3          /* W0 (.) (1 + s*a[ol or c/khw]), i0 = on_input */
};

typedef struct lf_dterm {
    int32_t kind;
    int32_t patch;        /* global patch index into coef[] / gamma[] */
    int32_t row_off, rows;
    int32_t dora_axis;    /* additive kinds: 0 none, 1 output rows, 2 input channels */
    int32_t r, r2;
    int32_t i0, i1, i2, i3;
    int32_t pad_;
    const float *a, *b, *a2, *b2;
    const float *rescale; /* OFT / ROWMIX per-row rescale (rows) or NULL */
    const float *kvec;    /* DoRA m / (||Wc|| + eps) per row or input channel */
    double *ss;           /* DoRA sum of squares of Wc (norm pass) */
} lf_dterm;

typedef struct lf_djob {
    void *w;              /* current weight (device) */
    const void *w0;       /* pristine copy (device, or mapped pinned host memory) */
    int32_t dtype, O, K, I, khw;
    int32_t term0, nterm; /* non-concatenated terms */
    int32_t rcat;         /* concatenated plain-LoRA rank (padded when tc), 0 = none */
    int32_t tc;           /* 0: FMA product, 1: TF32 tensor cores, 2: 3xTF32 split */
    int32_t vec_ok;       /* K % 4 == 0 and both pointers 16-byte aligned: vector loads/stores */
    const float *up;      /* (O, rcat) */
    const float *down;    /* (rcat, K) */
    const int32_t *rank_patch; /* (rcat) global patch of each rank column, -1 = padding */
} lf_djob;

/* per-item flags of the dirty list */
#define LF_DITEM_COPY 1     /* all coefficients 0: copy W0's bytes */
#define LF_DITEM_SKIP_CAT 2 /* every concatenated LoRA coefficient is 0 */

typedef struct lf_dlaunch {
    const lf_djob *jobs;
    const lf_dterm *terms;
    const float *coef;    /* per global patch, this apply */
    const float *gamma;   /* per global patch (1 for kinds without a scale) */
    const int32_t *list;  /* n dirty job indices */
    const int32_t *flags; /* n LF_DITEM_* */
    const int32_t *tstart;/* n + 1 prefix sums of tiles */
    int32_t n;
    int32_t pad_;
    int32_t *bad;         /* per job: set to 1 when a written value is not finite */
} lf_dlaunch;

/* kernels/cuda/apply.cu, one launch over the listed jobs' tiles:
 *   mode 0: lf_lora_kernel_v1, apply for jobs with no terms (concatenated LoRA only) and copies;
 *   mode 1: lf_terms_kernel_v1, apply for any job (terms in shared memory);
 *   mode 2: lf_terms_kernel_v1, DoRA norm pass: accumulate ss of every DoRA term, write no weight.
 * Returns the cudaError_t of the launch (0 = success). */
int lf_cuda_apply_launch(const lf_dlaunch *L, int mode, int64_t ntiles, void *stream);

#ifdef __cplusplus
}
#endif
#endif
