/* adapter_family.c: which base model an adapter was made for (docs/semantics.md P9).
 *
 * Evidence, strongest first: kohya/LyCORIS metadata (ss_base_model_version "sd_v1" / "sd_v2*" /
 * "sdxl_*", ss_v2 "True"); names that exist in one family only (lora_te1_/lora_te2_, text_encoder_2.,
 * kohya SGM-named UNet modules "lora_unet_input_blocks_*" = SDXL); then the cross-attention width, the
 * input dim of an attn2 to_k/to_v LoRA factor (768 SD1, 1024 SD2, 2048 SDXL).
 */
#include <stdio.h>
#include <string.h>

#include "lorafuse/lf_adapter.h"
#include "lorafuse/lf_safetensors.h"

static lf_family lf_family_from_width(int64_t w) {
    return w == 768 ? LF_FAMILY_SD1 : w == 1024 ? LF_FAMILY_SD2 : w == 2048 ? LF_FAMILY_SDXL : LF_FAMILY_UNKNOWN;
}

lf_family lf_adapter_family(const lf_adapter *a, const char **why) {
    const char *v = lf_st_meta(a->st, "ss_base_model_version");
    if (v) {
        *why = "metadata ss_base_model_version";
        if (strncmp(v, "sdxl", 4) == 0) return LF_FAMILY_SDXL;
        if (strncmp(v, "sd_v1", 5) == 0) return LF_FAMILY_SD1;
        if (strncmp(v, "sd_v2", 5) == 0) return LF_FAMILY_SD2;
    }
    const char *v2 = lf_st_meta(a->st, "ss_v2");
    if (v2 && strcmp(v2, "True") == 0) {
        *why = "metadata ss_v2";
        return LF_FAMILY_SD2;
    }
    for (size_t i = 0; i < a->n_mods; i++) {
        const char *n = a->mods[i].name;
        if (!strncmp(n, "lora_te1_", 9) || !strncmp(n, "lora_te2_", 9) || !strncmp(n, "text_encoder_2.", 15) ||
            !strncmp(n, "lora_unet_input_blocks_", 23) || !strncmp(n, "lora_unet_output_blocks_", 24) ||
            !strncmp(n, "lora_unet_middle_block_", 23)) {
            *why = "module names (SDXL-only spellings)";
            return LF_FAMILY_SDXL;
        }
    }
    for (size_t i = 0; i < a->n_mods; i++) {
        const lf_module *m = &a->mods[i];
        const char *n = m->name;
        if (m->algo != LF_ALGO_LORA || !strstr(n, "attn2")) continue;
        if (!strstr(n, "to_k") && !strstr(n, "to_v")) continue;
        lf_family f = lf_family_from_width(lf_view_cols(&m->t[LF_R_DOWN]));
        if (f != LF_FAMILY_UNKNOWN) {
            *why = "cross-attention width of attn2 to_k/to_v";
            return f;
        }
    }
    *why = "no metadata, family-specific names or cross-attention factors";
    if (v && *v) *why = "unrecognised ss_base_model_version";
    return LF_FAMILY_UNKNOWN;
}
