/* keymap.c: lf_keymap public API (lf_keymap.h): the build driver, base-model family detection, resolve.
 *
 * Rules implemented here:
 * - P8 / T16: adapter names are resolved by exact lookup in a table of spellings generated from the
 *   checkpoint's own key list (keymap_unet.c, keymap_te.c); `_` is never turned back into `.`.
 *   Every weight is also reachable by its canonical name, the checkpoint key without ".weight".
 * - P9: the family (SD1 / SD2 / SDXL) comes from the cross-attention width, i.e. the input dim of any
 *   U-Net "attn2.to_k.weight" (768 / 1024 / 2048), cross-checked with the text-encoder layout
 *   (conditioner.embedders.0+1 = SDXL, cond_stage_model.transformer = SD1, cond_stage_model.model =
 *   SD2). When the width is not one of the three (small test models) the layout alone decides; when
 *   the two disagree the family is unknown.
 * Cost: the build is O(total key length); resolve is one hash lookup.
 * Test: tests/keymap/test_keymap.c (ctest -R keymap).
 */
#include <stdlib.h>
#include <string.h>

#include "host/base/util.h"
#include "keymap_internal.h"

/* ---- family detection (P9) ------------------------------------------------------------------- */
static lf_family lf_km_detect_family(const char *const *keys, const lf_view *shapes, size_t n) {
    int64_t width = 0;
    int sd1_te = 0, sd2_te = 0, xl_te1 = 0, xl_te2 = 0;
    for (size_t i = 0; i < n; i++) {
        const char *k = keys[i];
        if (!width && shapes && lf_has_prefix(k, LF_KM_UNET_ROOT) && lf_has_suffix(k, ".attn2.to_k.weight") &&
            shapes[i].ndim == 2)
            width = shapes[i].shape[1]; /* to_k W (out, in): in = text-embedding width */
        if (lf_has_prefix(k, "cond_stage_model.transformer.")) sd1_te = 1;
        else if (lf_has_prefix(k, "cond_stage_model.model.")) sd2_te = 1;
        else if (lf_has_prefix(k, "conditioner.embedders.0.")) xl_te1 = 1;
        else if (lf_has_prefix(k, "conditioner.embedders.1.")) xl_te2 = 1;
    }
    lf_family by_layout = LF_FAMILY_UNKNOWN;
    if (xl_te1 && xl_te2 && !sd1_te && !sd2_te) by_layout = LF_FAMILY_SDXL;
    else if (sd1_te && !sd2_te && !xl_te1 && !xl_te2) by_layout = LF_FAMILY_SD1;
    else if (sd2_te && !sd1_te && !xl_te1 && !xl_te2) by_layout = LF_FAMILY_SD2;

    lf_family by_width = width == 768    ? LF_FAMILY_SD1
                         : width == 1024 ? LF_FAMILY_SD2
                         : width == 2048 ? LF_FAMILY_SDXL
                                         : LF_FAMILY_UNKNOWN;
    if (by_width == LF_FAMILY_UNKNOWN) return by_layout;
    /* A U-Net-only file has no text-encoder keys: the width alone decides. */
    int any_te = sd1_te || sd2_te || xl_te1 || xl_te2;
    if (!any_te || by_layout == by_width) return by_width;
    return LF_FAMILY_UNKNOWN;
}

/* ---- build ------------------------------------------------------------------------------------ */
static lf_status lf_km_add_other(lf_km_builder *b, size_t i) {
    const char *key = b->keys[i];
    size_t mlen = strlen(key) - strlen(".weight");
    const char *bias = lf_km_sibling(b, key, mlen, ".bias");
    uint32_t idx;
    lf_status st = lf_km_add_target(b, key, bias, 0, 0, LF_COMP_OTHER, &idx);
    if (st) return st;
    return lf_km_add_name(b, idx, "", key, mlen, 0, "");
}

static void lf_km_builder_free(lf_km_builder *b) {
    lf_km_table_free(&b->keyset);
    free(b->unet);
    lf_sb_free(&b->name);
    lf_sb_free(&b->tmp);
    lf_sb_free(&b->path);
}

lf_status lf_keymap_build(const char *const *keys, const lf_view *shapes, size_t n, lf_keymap **out) {
    if (!out) return lf_err(LF_ERR_ARG, "lf_keymap_build: out is NULL");
    *out = NULL;
    if (n && !keys) return lf_err(LF_ERR_ARG, "lf_keymap_build: keys is NULL");
    if (n >= UINT32_MAX) return lf_err(LF_ERR_ARG, "lf_keymap_build: %zu keys is too many", n);
    for (size_t i = 0; i < n; i++)
        if (!keys[i]) return lf_err(LF_ERR_ARG, "lf_keymap_build: key %zu is NULL", i);

    lf_keymap *m = calloc(1, sizeof *m);
    if (!m) return lf_err(LF_ERR_NOMEM, "lf_keymap_build: out of memory");
    lf_km_builder b = {.m = m, .keys = keys, .shapes = shapes, .n = n};
    lf_status st = LF_OK;

    /* The set of checkpoint keys, for bias lookups (first occurrence wins on duplicates). */
    for (size_t i = 0; i < n && !st; i++)
        if (!lf_km_table_find(&b.keyset, keys[i])) st = lf_km_table_insert(&b.keyset, keys[i], (uint32_t)i);
    if (st) goto fail;

    m->family = lf_km_detect_family(keys, shapes, n);
    if ((st = lf_km_unet_scan(&b))) goto fail;

    for (size_t i = 0; i < n && !st; i++) {
        const char *k = keys[i];
        if (lf_km_key_index(&b, k) != (long)i) continue; /* duplicate key */
        if (lf_has_prefix(k, LF_KM_UNET_ROOT)) {
            if (lf_has_suffix(k, ".weight")) st = lf_km_unet_add(&b, i);
            continue;
        }
        int handled = 0;
        st = lf_km_te_add(&b, i, &handled);
        if (!st && !handled && lf_has_suffix(k, ".weight") && strlen(k) > strlen(".weight"))
            st = lf_km_add_other(&b, i);
    }
    if (st) goto fail;

    lf_km_builder_free(&b);
    *out = m;
    return LF_OK;
fail:
    lf_km_builder_free(&b);
    lf_keymap_free(m);
    return st;
}

void lf_keymap_free(lf_keymap *m) {
    if (!m) return;
    lf_km_table_free(&m->names);
    lf_km_arena_free(&m->arena);
    free(m->targets);
    free(m);
}

lf_family lf_keymap_family(const lf_keymap *m) { return m ? m->family : LF_FAMILY_UNKNOWN; }

size_t lf_keymap_size(const lf_keymap *m) { return m ? m->names.count : 0; }

lf_status lf_keymap_resolve(const lf_keymap *m, const char *module_name, lf_target *out) {
    if (!m || !module_name || !out) return lf_err(LF_ERR_ARG, "lf_keymap_resolve: NULL argument");
    const lf_km_slot *s = lf_km_table_find(&m->names, module_name);
    if (!s) return LF_ERR_MODEL; /* no message: callers count unmatched names (P9) */
    if (s->val == LF_KM_AMBIGUOUS)
        return lf_err(LF_ERR_MODEL, "module name %s matches more than one weight of the model", module_name);
    *out = m->targets[s->val];
    return LF_OK;
}

size_t lf_keymap_target_count(const lf_keymap *m) { return m ? m->ntargets : 0; }

const lf_target *lf_keymap_target_at(const lf_keymap *m, size_t i) {
    return m && i < m->ntargets ? &m->targets[i] : NULL;
}
