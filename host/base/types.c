/* types.c: the helpers of the shared vocabulary types (lf_types.h): the dtype table (safetensors
 * name, element bits, whether lf_view_to_f32 reads it), family names, prediction-type names. */
#include "lorafuse/lf_types.h"

#include <string.h>

static const struct {
    const char *name;
    unsigned bits;
    int readable;
} lf_dtypes[LF_DTYPE_COUNT] = {
    [LF_DTYPE_INVALID] = {"INVALID", 0, 0},
    [LF_BOOL] = {"BOOL", 8, 1},     [LF_U8] = {"U8", 8, 1},        [LF_I8] = {"I8", 8, 1},
    [LF_I16] = {"I16", 16, 1},      [LF_U16] = {"U16", 16, 1},     [LF_I32] = {"I32", 32, 1},
    [LF_U32] = {"U32", 32, 1},      [LF_I64] = {"I64", 64, 1},     [LF_U64] = {"U64", 64, 1},
    [LF_F16] = {"F16", 16, 1},      [LF_BF16] = {"BF16", 16, 1},   [LF_F32] = {"F32", 32, 1},
    [LF_F64] = {"F64", 64, 1},      [LF_F8_E4M3] = {"F8_E4M3", 8, 1},
    [LF_F8_E5M2] = {"F8_E5M2", 8, 1}, [LF_F8_E8M0] = {"F8_E8M0", 8, 0},
    [LF_F8_E4M3FNUZ] = {"F8_E4M3FNUZ", 8, 0}, [LF_F8_E5M2FNUZ] = {"F8_E5M2FNUZ", 8, 0},
    [LF_F4] = {"F4", 4, 0},         [LF_F6_E2M3] = {"F6_E2M3", 6, 0},
    [LF_F6_E3M2] = {"F6_E3M2", 6, 0}, [LF_C64] = {"C64", 64, 0},
};

lf_dtype lf_dtype_from_name(const char *name) {
    for (int i = 1; i < LF_DTYPE_COUNT; i++)
        if (strcmp(lf_dtypes[i].name, name) == 0) return (lf_dtype)i;
    return LF_DTYPE_INVALID;
}

const char *lf_dtype_name(lf_dtype dt) {
    return (dt > 0 && dt < LF_DTYPE_COUNT) ? lf_dtypes[dt].name : "INVALID";
}

unsigned lf_dtype_bits(lf_dtype dt) { return (dt > 0 && dt < LF_DTYPE_COUNT) ? lf_dtypes[dt].bits : 0; }

int lf_dtype_readable(lf_dtype dt) { return dt > 0 && dt < LF_DTYPE_COUNT && lf_dtypes[dt].readable; }

int lf_dtype_writable(lf_dtype dt) { return dt == LF_F32 || dt == LF_F16 || dt == LF_BF16; }

const char *lf_family_name(lf_family f) {
    switch (f) {
    case LF_FAMILY_SD1: return "SD1";
    case LF_FAMILY_SD2: return "SD2";
    case LF_FAMILY_SDXL: return "SDXL";
    default: return "unknown";
    }
}

lf_status lf_prediction_parse(const char *name, lf_prediction *out) {
    if (name && (!strcmp(name, "epsilon") || !strcmp(name, "eps"))) {
        *out = LF_PRED_EPSILON;
        return LF_OK;
    }
    if (name && (!strcmp(name, "v_prediction") || !strcmp(name, "v"))) {
        *out = LF_PRED_V;
        return LF_OK;
    }
    return lf_err(LF_ERR_ARG, "unknown prediction type '%s' (known: epsilon, v_prediction)", name ? name : "(null)");
}
