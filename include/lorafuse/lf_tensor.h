/* lf_tensor.h: dtypes (named as in safetensors) and a borrowed, read-only tensor view.
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

#ifdef __cplusplus
extern "C" {
#endif

#define LF_MAX_DIMS 8

typedef enum lf_dtype {
    LF_DTYPE_INVALID = 0,
    LF_BOOL, LF_U8, LF_I8, LF_I16, LF_U16, LF_I32, LF_U32, LF_I64, LF_U64,
    LF_F16, LF_BF16, LF_F32, LF_F64,
    LF_F8_E4M3, LF_F8_E5M2,
    /* recognised by the reader (sizes known) but never converted */
    LF_F8_E8M0, LF_F8_E4M3FNUZ, LF_F8_E5M2FNUZ, LF_F4, LF_F6_E2M3, LF_F6_E3M2, LF_C64,
    LF_DTYPE_COUNT
} lf_dtype;

/* safetensors name ("F16") -> dtype; LF_DTYPE_INVALID if unknown. */
lf_dtype lf_dtype_from_name(const char *name);
const char *lf_dtype_name(lf_dtype dt);
/* Size of one element in bits (4 for F4, 6 for F6_*); 0 for an invalid dtype. */
unsigned lf_dtype_bits(lf_dtype dt);
/* True for dtypes lf_view_to_f32 can read. */
int lf_dtype_readable(lf_dtype dt);
/* True for dtypes a patched weight may be written in (F32, F16, BF16). */
int lf_dtype_writable(lf_dtype dt);

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
