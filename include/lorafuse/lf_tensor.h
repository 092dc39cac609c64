/* lf_tensor.h: a borrowed, read-only tensor view and its conversions (dtypes: lf_types.h).
 *
 * Shape vocabulary used in every file of lorafuse (PyTorch row-major):
 *   W (out, in[, kh, kw])   base weight of a Linear or Conv2d layer
 *   down (r, in[, kh, kw])  up (out, r[, 1, 1])   LoRA factors
 *   x (N, C, H, W)          activations
 * A layer weight is handled as a 2-D matrix (O, K) with K = in*kh*kw ("flat(W)").
 */
#ifndef LF_TENSOR_H
#define LF_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "lorafuse/lf_status.h"
#include "lorafuse/lf_types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LF_MAX_DIMS 8

/* A tensor somewhere in memory (usually an mmap'd file); data may be unaligned. */
typedef struct lf_view {
    const void *data;
    lf_dtype dtype;
    int ndim;
    int64_t shape[LF_MAX_DIMS];
} lf_view;

int64_t lf_view_numel(const lf_view *v);
/* Product of dims 1..ndim-1 (K of flat(W)); 1 for a 0-d or 1-d view. */
int64_t lf_view_cols(const lf_view *v);
/* "(320, 768, 1, 1)" into buf; returns buf. */
const char *lf_shape_str(const lf_view *v, char *buf, size_t n);

/* Convert all elements to f32 (unaligned-safe). LF_ERR_DTYPE for dtypes that have no f32 meaning. */
lf_status lf_view_to_f32(const lf_view *v, float *out);
/* Element 0 as a float (0-d alpha/scale/on_input tensors of any numeric dtype). */
lf_status lf_view_scalar(const lf_view *v, double *out);
/* Round f32 values once to dtype (F32/F16/BF16, nearest even) into dst (may be unaligned). */
lf_status lf_f32_to_dtype(const float *src, int64_t n, lf_dtype dt, void *dst);

#ifdef __cplusplus
}
#endif
#endif
