/* lf_sgmv_cuda.h: segmented low-rank products on the device (S-LoRA / Punica SGMV style,
 * kernels/cuda/lora_sgmv.cu): the unmerged adapter terms of a mixed batch's Linear layers, every job's
 * rows in the same two launches. C-callable from gcc and nvcc.
 *
 * x (M, in) and y (M, out) f32 row-major device memory. Segment s covers rows [row0, row0 + rows) and
 * has terms term0 .. term0 + n_terms - 1; term k: down (rank, in), up (out, rank) in device memory of
 * type dtype (lf_cunn_type: f32, f16 or bf16), coefficient scale. For every row m of segment s:
 *     y[m] += sum_k scale_k * up_k (down_k x[m])
 * shrink: t[m] = [down_k x[m]]_k (the segment's ranks concatenated, f32, in scratch),
 * expand: y[m] += sum_r t[m][r] * scale_k(r) * up_k(r)[:, r], both f32 sums in index order.
 * Segments' row ranges must not overlap (checked: cudaErrorInvalidValue); terms may be shared
 * between segments (a job's unconditional and conditional rows). Docs: docs/cuda.md "Segmented
 * low-rank terms".
 */
#ifndef LF_SGMV_CUDA_H
#define LF_SGMV_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lf_sgmv_term {
    const void *down, *up; /* device memory of type dtype */
    int64_t rank;
    int dtype;             /* lf_cunn_type */
    float scale;
} lf_sgmv_term;

typedef struct lf_sgmv_seg {
    int64_t row0, rows;
    size_t term0, n_terms;
} lf_sgmv_seg;

/* floats of scratch (t) that lf_cunn_lora_sgmv needs for these segments: sum of rows x concatenated rank */
int64_t lf_cunn_lora_sgmv_scratch(const lf_sgmv_seg *segs, size_t n_segs, const lf_sgmv_term *terms);
/* y += the segments' terms (above); t: device scratch of lf_cunn_lora_sgmv_scratch floats. Segments with
 * no rows or no rank are skipped. Host-side checks (overlap, a term index or rank out of range, M or a
 * size past int32) answer cudaErrorInvalidValue before anything is launched. Launches: one shrink and
 * one expand per chunk of at most LF_SGMV_MAX_SEGS segments and LF_SGMV_MAX_TERMS terms (the work list
 * travels as a kernel argument); *launches (may be NULL) gets their number. On an error *failed (may be
 * NULL) names what failed as a launcher: "lf_cunn_lora_shrink" / "lf_cunn_lora_expand" (the kernels
 * lf_cunn_lora_shrink_k / _expand_k) or "lf_cunn_lora_sgmv (its arguments)". */
int lf_cunn_lora_sgmv(float *y, const float *x, int64_t M, int64_t in, int64_t out, const lf_sgmv_seg *segs,
                      size_t n_segs, const lf_sgmv_term *terms, size_t n_terms, float *t, int *launches,
                      const char **failed, cudaStream_t s);

#define LF_SGMV_MAX_SEGS 32
#define LF_SGMV_MAX_TERMS 48

#ifdef __cplusplus
}
#endif
#endif
