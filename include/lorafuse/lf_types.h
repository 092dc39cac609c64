/* lf_types.h: the vocabulary types every layer shares (host/base/types.c holds their helpers).
 *
 *   lf_dtype       element types, named as in safetensors ("F16", "BF16", ...)
 *   lf_family      the Stable Diffusion base-model family (SD1.x, SD2.x, SDXL)
 *   lf_component   which sub-model a weight belongs to (UNet, text encoders, other)
 *   lf_prediction  what the UNet predicts (epsilon or v)
 *
 * Declared here, not with the code that produces them (safetensors reader, key map, sampler), so a
 * header that only names one of them does not pull in that code's API.
 */
#ifndef LF_TYPES_H
#define LF_TYPES_H

#include "lorafuse/lf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- dtypes ----------------------------------------------------------------------------------- */
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
/* True for dtypes lf_view_to_f32 (lf_tensor.h) can read. */
int lf_dtype_readable(lf_dtype dt);
/* True for dtypes a patched weight may be written in (F32, F16, BF16). */
int lf_dtype_writable(lf_dtype dt);

/* ---- model family and components -------------------------------------------------------------- */
typedef enum lf_family {
    LF_FAMILY_UNKNOWN = 0,
    LF_FAMILY_SD1,  /* SD1.x: cross-attention width 768, one CLIP-L text encoder */
    LF_FAMILY_SD2,  /* SD2.x: width 1024, OpenCLIP-H text encoder */
    LF_FAMILY_SDXL  /* SDXL: width 2048, two text encoders */
} lf_family;

/* "SD1" | "SD2" | "SDXL" | "unknown" */
const char *lf_family_name(lf_family f);

typedef enum lf_component {
    LF_COMP_UNET = 0,
    LF_COMP_TE1,  /* SD1/SD2 text encoder, SDXL CLIP-L */
    LF_COMP_TE2,  /* SDXL OpenCLIP-bigG */
    LF_COMP_OTHER /* VAE and anything else */
} lf_component;

/* ---- prediction type -------------------------------------------------------------------------- */
typedef enum lf_prediction {
    LF_PRED_EPSILON = 0,
    LF_PRED_V                   /* v-prediction (SD2.x 768) */
} lf_prediction;

/* "epsilon" | "eps" -> LF_PRED_EPSILON, "v_prediction" | "v" -> LF_PRED_V; LF_ERR_ARG otherwise. */
lf_status lf_prediction_parse(const char *name, lf_prediction *out);

#ifdef __cplusplus
}
#endif
#endif
