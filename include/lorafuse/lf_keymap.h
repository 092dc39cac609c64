/* lf_keymap.h: resolve adapter module names to checkpoint weights (docs/semantics.md P8, docs/keymap.md).
 *
 * The canonical name of a weight is its key in the single-file (LDM/SGM) checkpoint, e.g.
 * "model.diffusion_model.input_blocks.1.1.proj_in.weight". The map is built from the checkpoint's
 * own key list: for every weight key we derive each spelling an adapter may use for that module
 * (kohya lora_unet_/lora_te*_, LyCORIS lycoris_, kohya OFT oft_unet_, PEFT/diffusers unet./
 * text_encoder./text_encoder_2., older diffusers processor forms) and insert it into a table.
 * Adapter names are looked up in that table; `_` is never turned back into `.` (trap T16).
 * SDXL TE2 q/k/v resolve to row slices of the fused attn.in_proj_weight.
 */
#ifndef LF_KEYMAP_H
#define LF_KEYMAP_H

#include <stddef.h>
#include <stdint.h>

#include "lorafuse/lf_status.h"
#include "lorafuse/lf_tensor.h"
#include "lorafuse/lf_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lf_target {
    const char *weight_key; /* checkpoint key of the weight (owned by the map) */
    const char *bias_key;   /* checkpoint key of the bias, NULL if the module has none */
    int64_t row_off, rows;  /* rows [row_off, row_off+rows) of the weight; rows = 0: all rows */
    lf_component component;
    /* The name kohya-style LoRA files give this module in this model's family (owned by the map):
     * U-Net "lora_unet_<diffusers path>" for SD1/SD2, "lora_unet_<SGM path>" for SDXL; text encoders
     * "lora_te_" / "lora_te1_" / "lora_te2_" + the HF path of an encoder layer (SDXL TE2 q/k/v: one per
     * row slice). Norm layers are named too (a LoRA file may not carry them; extract writes only 2-D and
     * 4-D weights). NULL where kohya names nothing: embeddings, a fused in_proj as a whole, the VAE. */
    const char *kohya;
} lf_target;

typedef struct lf_keymap lf_keymap;

/* Build the map from a checkpoint's keys and shapes (shapes[i].data may be NULL). The family is
 * detected from keys and shapes: cross-attention width (attn2.to_k input 768 / 1024 / 2048) and the
 * presence of the second text encoder. */
lf_status lf_keymap_build(const char *const *keys, const lf_view *shapes, size_t n, lf_keymap **out);
void lf_keymap_free(lf_keymap *m);

lf_family lf_keymap_family(const lf_keymap *m);
/* Number of distinct adapter spellings in the table (for tests and `inspect`). */
size_t lf_keymap_size(const lf_keymap *m);

/* Resolve an adapter module name (the part of a tensor name before its role suffix, e.g.
 * "lora_unet_down_blocks_0_attentions_0_proj_in" or "unet.down_blocks.0.attentions.0.proj_in").
 * LF_ERR_MODEL (no message set) when the name matches no module of this model. */
lf_status lf_keymap_resolve(const lf_keymap *m, const char *module_name, lf_target *out);

/* The map's targets, in checkpoint key order (a fused TE2 in_proj_weight: the whole, then its q/k/v
 * row slices). For walking every module of a model (extraction names each one by its kohya name). */
size_t lf_keymap_target_count(const lf_keymap *m);
const lf_target *lf_keymap_target_at(const lf_keymap *m, size_t i);

#ifdef __cplusplus
}
#endif
#endif
