/* keymap_te.c: adapter spellings of text-encoder modules (docs/semantics.md P8, docs/keymap.md "Text encoders", T16).
 *
 * Adapters name text-encoder modules by their Hugging Face CLIPTextModel path H
 * (text_model.encoder.layers.N.self_attn.q_proj, ...mlp.fc1, ...layer_norm1, text_model.final_layer_norm,
 * text_model.embeddings.token_embedding): kohya `<prefix>_<H with '.'->'_'>` and PEFT/diffusers
 * `<peft>.H`. The checkpoint stores them in one of two layouts:
 *
 *   root                                  layout    component  kohya prefix  PEFT prefix
 *   cond_stage_model.transformer.         HF CLIP   TE1        lora_te_      text_encoder.    (SD1)
 *   cond_stage_model.model.               OpenCLIP  TE1        lora_te_      text_encoder.    (SD2)
 *   conditioner.embedders.0.transformer.  HF CLIP   TE1        lora_te1_     text_encoder.    (SDXL)
 *   conditioner.embedders.0.model.        OpenCLIP  TE1        lora_te1_     text_encoder.
 *   conditioner.embedders.1.transformer.  HF CLIP   TE2        lora_te2_     text_encoder_2.
 *   conditioner.embedders.1.model.        OpenCLIP  TE2        lora_te2_     text_encoder_2.  (SDXL)
 *
 * HF CLIP: the key below the root is H itself (older checkpoints lack the "text_model." level; it is
 * added). OpenCLIP (transformer.resblocks.N.*): attn.out_proj -> self_attn.out_proj, mlp.c_fc -> mlp.fc1,
 * mlp.c_proj -> mlp.fc2, ln_1 / ln_2 -> layer_norm1 / layer_norm2, ln_final -> final_layer_norm,
 * token_embedding -> embeddings.token_embedding; q/k/v are fused in attn.in_proj_weight (3d, d):
 * q_proj = rows [0, d), k_proj = [d, 2d), v_proj = [2d, 3d) of it and of attn.in_proj_bias
 * (kohya convert_sdxl_text_encoder_2_checkpoint chunks in this order; A1111 vstacks q, k, v).
 * The slice needs the weight's shape; without shapes (NULL) the q/k/v spellings are not inserted.
 * Every text-encoder weight is also reachable by its canonical name (key without ".weight"; the whole
 * fused in_proj_weight as "<...>.attn.in_proj").
 */
#include <string.h>

#include "host/base/util.h"
#include "keymap_internal.h"

typedef struct lf_km_te_layout {
    const char *root;
    int openclip;
    lf_component comp;
    const char *kohya, *peft;
} lf_km_te_layout;

static const lf_km_te_layout lf_km_te_layouts[] = {
    {"cond_stage_model.transformer.", 0, LF_COMP_TE1, "lora_te_", "text_encoder."},
    {"cond_stage_model.model.", 1, LF_COMP_TE1, "lora_te_", "text_encoder."},
    {"conditioner.embedders.0.transformer.", 0, LF_COMP_TE1, "lora_te1_", "text_encoder."},
    {"conditioner.embedders.0.model.", 1, LF_COMP_TE1, "lora_te1_", "text_encoder."},
    {"conditioner.embedders.1.transformer.", 0, LF_COMP_TE2, "lora_te2_", "text_encoder_2."},
    {"conditioner.embedders.1.model.", 1, LF_COMP_TE2, "lora_te2_", "text_encoder_2."},
};

/* kohya and PEFT spellings of HF path h for target idx. */
static lf_status lf_km_te_names(lf_km_builder *b, const lf_km_te_layout *L, uint32_t idx, const char *h, size_t n) {
    lf_status st = lf_km_add_name(b, idx, L->kohya, h, n, 1, "");
    if (!st) st = lf_km_add_name(b, idx, L->peft, h, n, 0, "");
    /* kohya's networks target the encoder layers only, never the embeddings */
    static const char enc[] = "text_model.encoder.";
    if (!st && n > sizeof enc - 1 && memcmp(h, enc, sizeof enc - 1) == 0) st = lf_km_set_kohya(b, idx, L->kohya, h, n);
    return st;
}

/* A plain weight (module = key without ".weight") whose HF path is h; h == NULL: canonical name only. */
static lf_status lf_km_te_plain(lf_km_builder *b, const lf_km_te_layout *L, size_t i, const char *h, size_t hlen) {
    const char *key = b->keys[i];
    size_t mlen = strlen(key) - strlen(".weight");
    const char *bias = lf_km_sibling(b, key, mlen, ".bias");
    uint32_t idx;
    lf_status st = lf_km_add_target(b, key, bias, 0, 0, L->comp, &idx);
    if (!st) st = lf_km_add_name(b, idx, "", key, mlen, 0, "");
    if (!st && h) st = lf_km_te_names(b, L, idx, h, hlen);
    return st;
}

static lf_status lf_km_te_clip(lf_km_builder *b, const lf_km_te_layout *L, size_t i) {
    const char *key = b->keys[i];
    if (!lf_has_suffix(key, ".weight")) return LF_OK;
    const char *rest = key + strlen(L->root);
    size_t rlen = strlen(rest) - strlen(".weight");
    lf_sbuf *h = &b->path;
    lf_sb_reset(h);
    if (!lf_has_prefix(rest, "text_model.")) lf_sb_str(h, "text_model.");
    lf_sb_put(h, rest, rlen);
    if (h->oom) return lf_err(LF_ERR_NOMEM, "keymap: out of memory");
    return lf_km_te_plain(b, L, i, h->s, h->n);
}

/* resblocks.N.attn.in_proj_weight (layer = "N"): the whole fused weight under its canonical name
 * "<...>.attn.in_proj", then q/k/v as rows [0,d) [d,2d) [2d,3d) of it and of attn.in_proj_bias. */
static lf_status lf_km_te_qkv(lf_km_builder *b, const lf_km_te_layout *L, size_t i, const char *layer, size_t llen) {
    static const char *const proj[3] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"};
    const char *key = b->keys[i];
    size_t klen = strlen(key) - strlen("in_proj_weight");
    const char *bias = lf_km_sibling(b, key, klen, "in_proj_bias");
    uint32_t idx;
    lf_status st = lf_km_add_target(b, key, bias, 0, 0, L->comp, &idx);
    if (!st) st = lf_km_add_name(b, idx, "", key, strlen(key) - strlen("_weight"), 0, "");
    if (st) return st;
    if (!b->shapes || b->shapes[i].ndim != 2 || b->shapes[i].shape[0] <= 0 || b->shapes[i].shape[0] % 3)
        return LF_OK; /* no slice without a (3d, d) shape */
    int64_t d = b->shapes[i].shape[0] / 3;
    for (int j = 0; j < 3; j++) {
        if ((st = lf_km_add_target(b, key, bias, j * d, d, L->comp, &idx))) return st;
        lf_sbuf *h = &b->path;
        lf_sb_reset(h);
        lf_sb_str(h, "text_model.encoder.layers.");
        lf_sb_put(h, layer, llen);
        lf_sb_str(h, ".");
        lf_sb_str(h, proj[j]);
        if (h->oom) return lf_err(LF_ERR_NOMEM, "keymap: out of memory");
        if ((st = lf_km_te_names(b, L, idx, h->s, h->n))) return st;
    }
    return LF_OK;
}

static lf_status lf_km_te_openclip(lf_km_builder *b, const lf_km_te_layout *L, size_t i) {
    static const struct {
        const char *oc, *hf;
    } block[] = {
        {"attn.out_proj.weight", "self_attn.out_proj"}, {"mlp.c_fc.weight", "mlp.fc1"},
        {"mlp.c_proj.weight", "mlp.fc2"},               {"ln_1.weight", "layer_norm1"},
        {"ln_2.weight", "layer_norm2"},
    };
    static const struct {
        const char *oc, *hf;
    } top[] = {
        {"ln_final.weight", "text_model.final_layer_norm"},
        {"token_embedding.weight", "text_model.embeddings.token_embedding"},
    };
    const char *key = b->keys[i];
    const char *rest = key + strlen(L->root);
    if (lf_has_prefix(rest, "transformer.resblocks.")) {
        const char *layer = rest + strlen("transformer.resblocks.");
        size_t llen = strspn(layer, "0123456789");
        if (llen && layer[llen] == '.') {
            const char *sub = layer + llen + 1;
            if (strcmp(sub, "attn.in_proj_weight") == 0) return lf_km_te_qkv(b, L, i, layer, llen);
            for (size_t j = 0; j < sizeof block / sizeof block[0]; j++) {
                if (strcmp(sub, block[j].oc) != 0) continue;
                lf_sbuf *h = &b->path;
                lf_sb_reset(h);
                lf_sb_str(h, "text_model.encoder.layers.");
                lf_sb_put(h, layer, llen);
                lf_sb_str(h, ".");
                lf_sb_str(h, block[j].hf);
                if (h->oom) return lf_err(LF_ERR_NOMEM, "keymap: out of memory");
                return lf_km_te_plain(b, L, i, h->s, h->n);
            }
        }
    }
    for (size_t j = 0; j < sizeof top / sizeof top[0]; j++)
        if (strcmp(rest, top[j].oc) == 0) return lf_km_te_plain(b, L, i, top[j].hf, strlen(top[j].hf));
    if (lf_has_suffix(key, ".weight")) return lf_km_te_plain(b, L, i, NULL, 0);
    return LF_OK;
}

lf_status lf_km_te_add(lf_km_builder *b, size_t i, int *handled) {
    const char *key = b->keys[i];
    for (size_t j = 0; j < sizeof lf_km_te_layouts / sizeof lf_km_te_layouts[0]; j++) {
        const lf_km_te_layout *L = &lf_km_te_layouts[j];
        if (!lf_has_prefix(key, L->root)) continue;
        *handled = 1;
        if (strlen(key) <= strlen(L->root) + strlen(".weight")) return LF_OK;
        return L->openclip ? lf_km_te_openclip(b, L, i) : lf_km_te_clip(b, L, i);
    }
    *handled = 0;
    return LF_OK;
}
