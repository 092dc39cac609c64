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

#include "kernels/common/lf_hd.h"
#include "kernels/common/lf_math.h"

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

/* ---- index math of the kernels (LF_HD: the kernels call these, tests/kernels/test_dev_index.c sweeps them on
 * the CPU) ------------------------------------------------------------------------------------------
 * Work list: block bid of a launch is tile (bid - tstart[i]) of job list[i], i the last list position
 * with tstart[i] <= bid; tiles of a job are row-major over (ceil(O/TM), ceil(K/TN)). Thread tid of a
 * tile owns rows (tid/16)*8 + i, i < 8, and columns (tid%16)*4 + j, j < 4 (TM = TN = 64, 128 threads).
 * All flat indices are 64-bit; row, column and tile numbers fit 32 bits (the host refuses O or K above
 * INT32_MAX/2 and more than INT32_MAX tiles). */

/* tiles of a job's flat(W) (O, K) */
LF_HD int64_t lf_dev_job_tiles(int64_t O, int64_t K) {
    return ((O + LF_DEV_TM - 1) / LF_DEV_TM) * ((K + LF_DEV_TN - 1) / LF_DEV_TN);
}

/* list position of block bid: the last i in [0, n) with tstart[i] <= bid (n >= 1, tstart[0] = 0). Jobs
 * with no tiles have tstart[i] == tstart[i + 1] and are never chosen. */
LF_HD int32_t lf_dev_find_list(const int32_t *tstart, int32_t n, int32_t bid) {
    int32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int32_t mid = (lo + hi + 1) >> 1;
        if (tstart[mid] <= bid) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

/* first row and column of tile `tile` of a job with K columns */
LF_HD void lf_dev_tile_origin(int32_t tile, int32_t K, int32_t *o0, int32_t *c0) {
    const int32_t ntn = (K + LF_DEV_TN - 1) / LF_DEV_TN;
    *o0 = (tile / ntn) * LF_DEV_TM;
    *c0 = (tile % ntn) * LF_DEV_TN;
}

/* thread tid's rows and its first column within a tile */
LF_HD int32_t lf_dev_thr_row(int32_t tid, int32_t i) { return (tid >> 4) * 8 + i; }
LF_HD int32_t lf_dev_thr_col(int32_t tid) { return (tid & 15) * 4; }

/* elements of a row a thread's 4-wide access at column cb may touch: 0 outside, else min(4, K - cb).
 * The vector path (vec_ok: K % 4 == 0) touches exactly 4 whenever this is > 0. */
LF_HD int32_t lf_dev_span(int32_t cb, int32_t K) { return cb >= K ? 0 : K - cb < 4 ? K - cb : 4; }

/* conv flattening: column c of flat(W) (O, I*khw) is input channel c / khw, tap c % khw */
LF_HD int32_t lf_dev_col_channel(int32_t c, int32_t khw) { return c / khw; }

/* DoRA magnitude / norm slot of element (ol, c): output axis (1) per row, input axis (2) per channel */
LF_HD int32_t lf_dev_dora_index(int32_t axis, int32_t ol, int32_t c, int32_t khw) {
    return axis == 1 ? ol : lf_dev_col_channel(c, khw);
}

/* IA3 scale slot: per input channel (on_input) or per row */
LF_HD int32_t lf_dev_ia3_index(int32_t on_input, int32_t ol, int32_t c, int32_t khw) {
    return on_input ? lf_dev_col_channel(c, khw) : ol;
}

/* GLoRA: T (rows, r, khw) = W0 x_in a1 at (ol, p, tap sp) and a2 (r, I) at (p, channel) */
LF_HD int64_t lf_dev_glora_t_index(int32_t ol, int32_t p, int32_t r, int32_t sp, int32_t khw) {
    return ((int64_t)ol * r + p) * khw + sp;
}

/* OFT / BOFT row blocks of size bsz within a slice: local row ol is row m of block blk; its sources
 * are the slice rows blk*bsz + n. OFT mixes by R_blk^T (element R[blk][n][m]); the BOFT composite Q
 * (rows, bsz) is used as is (element Q[blk*bsz + m][n]). */
LF_HD int64_t lf_dev_block_src_row(int32_t row_off, int32_t ol, int32_t bsz, int32_t n) {
    return (int64_t)row_off + (int64_t)(ol / bsz) * bsz + n;
}
LF_HD int64_t lf_dev_oft_r_index(int32_t ol, int32_t bsz, int32_t n) {
    const int32_t blk = ol / bsz, m = ol - blk * bsz;
    return ((int64_t)blk * bsz + n) * bsz + m;
}
LF_HD int64_t lf_dev_rowmix_index(int32_t ol, int32_t bsz, int32_t n) { return (int64_t)ol * bsz + n; }

/* ---- per-element access and math (LF_HD: the kernels and the CPU emulation in tests/) ----------- */

/* W / W0 element i as f32 */
LF_HD float lf_dev_ld(const void *p, int32_t dt, int64_t i) {
    if (dt == LF_DDT_F32) return ((const float *)p)[i];
    const uint16_t h = ((const uint16_t *)p)[i];
    return dt == LF_DDT_F16 ? lf_f16_to_f32(h) : lf_bf16_to_f32(h);
}

/* the one rounding of a 16-bit weight (lf_math_store_*), and whether the stored bits are finite: an
 * f32-finite sum can still overflow f16 (|x| >= 65520) or bf16; that weight is not finite either */
LF_HD uint16_t lf_dev_round16(float x, int32_t dt) {
    return dt == LF_DDT_F16 ? lf_math_store_f16(x) : lf_math_store_bf16(x);
}
LF_HD int lf_dev_bits16_bad(uint16_t h, int32_t dt) {
    return dt == LF_DDT_F16 ? (h & 0x7c00u) == 0x7c00u : (h & 0x7f80u) == 0x7f80u;
}

/* dW_raw at (ol, c) of an additive term whose value is computed per element (LOKR, GLORA, FULL); the
 * product kinds (LOWRANK, LOHA) pass their tile product in `prod` */
LF_HD float lf_dev_term_dv(const lf_dterm *T, int32_t I, int32_t K, int32_t khw, int32_t ol, int32_t c, float prod) {
    if (T->kind == LF_TK_LOWRANK || T->kind == LF_TK_LOHA) return prod;
    if (T->kind == LF_TK_LOKR) {
        int64_t i1, i2;
        lf_math_lokr_index(ol, c, T->i0, T->i1, T->i2, T->i3, &i1, &i2);
        return T->a[i1] * T->b[i2];
    }
    if (T->kind == LF_TK_GLORA) {
        const int32_t ch = lf_dev_col_channel(c, khw), sp = c - ch * khw;
        float x = 0.0f, y = 0.0f;
        for (int32_t p = 0; p < T->r; p++)
            x = lf_math_axpy(x, T->a[lf_dev_glora_t_index(ol, p, T->r, sp, khw)], T->b[(int64_t)p * I + ch]);
        for (int32_t p = 0; p < T->r; p++)
            y = lf_math_axpy(y, T->a2[(int64_t)ol * T->r + p], T->b2[(int64_t)p * K + c]);
        return x + y;
    }
    return T->a[(int64_t)ol * K + c]; /* FULL */
}

/* Apply: acc after term T (strength s, gamma g) at element (o, c) of job J, ol = o - T->row_off in
 * [0, T->rows); W0 is read from J->w0 where the formula needs it. Same operations in the same order as
 * the CPU reference (kernels/cpu/<algo>_ref.c) for one term. */
LF_HD float lf_dev_term_apply(const lf_dterm *T, const lf_djob *J, float acc, int32_t o, int32_t c, float s, float g,
                              float prod) {
    const int32_t K = J->K, ol = o - T->row_off;
    const int64_t at = (int64_t)o * K + c;
    if (T->kind <= LF_TK_FULL) {
        const float dv = lf_dev_term_dv(T, J->I, K, J->khw, ol, c, prod);
        if (!T->dora_axis) return lf_math_axpy(acc, s * g, dv);
        const float w0 = lf_dev_ld(J->w0, J->dtype, at), wc = lf_math_axpy(w0, g, dv);
        return acc + lf_math_dora_contrib(w0, wc, T->kvec[lf_dev_dora_index(T->dora_axis, ol, c, J->khw)], s);
    }
    const float w0 = lf_dev_ld(J->w0, J->dtype, at);
    if (T->kind == LF_TK_IA3) return acc + lf_math_ia3_contrib(w0, T->a[lf_dev_ia3_index(T->i0, ol, c, J->khw)], s);
    /* OFT / ROWMIX: rows of the same block (group) of the slice */
    const int32_t bsz = T->i0;
    float x = 0.0f;
    for (int32_t n = 0; n < bsz; n++) {
        const float src = lf_dev_ld(J->w0, J->dtype, lf_dev_block_src_row(T->row_off, ol, bsz, n) * K + c);
        const float q = T->kind == LF_TK_OFT ? lf_math_orth_interp(T->a[lf_dev_oft_r_index(ol, bsz, n)], n == ol % bsz, s)
                                             : T->a[lf_dev_rowmix_index(ol, bsz, n)];
        x = lf_math_axpy(x, q, src);
    }
    const float sc = T->rescale ? lf_math_orth_interp(T->rescale[ol], 1, s) : 1.0f;
    return acc + (x * sc - w0);
}

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
