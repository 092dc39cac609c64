/* keymap_builder.c: what the spelling generators (keymap_unet.c, keymap_te.c) and the build driver
 * (keymap.c) add to a map under construction: checkpoint-key lookups, targets, spellings.
 * A spelling that two different modules produce is marked ambiguous rather than guessed. */
#include <stdlib.h>
#include <string.h>

#include "host/base/util.h"
#include "keymap_internal.h"

long lf_km_key_index(const lf_km_builder *b, const char *key) {
    const lf_km_slot *s = lf_km_table_find(&b->keyset, key);
    return s ? (long)s->val : -1;
}

const char *lf_km_sibling(lf_km_builder *b, const char *module, size_t module_len, const char *suffix) {
    lf_sb_reset(&b->tmp);
    lf_sb_put(&b->tmp, module, module_len);
    lf_sb_str(&b->tmp, suffix);
    if (b->tmp.oom) return NULL;
    long i = lf_km_key_index(b, b->tmp.s);
    return i < 0 ? NULL : b->keys[i];
}

lf_status lf_km_add_target(lf_km_builder *b, const char *weight_key, const char *bias_key, int64_t row_off,
                           int64_t rows, lf_component comp, uint32_t *idx) {
    lf_keymap *m = b->m;
    if (m->ntargets >= UINT32_MAX - 1) return lf_err(LF_ERR_ARG, "keymap: too many modules");
    if (lf_grow(&m->targets, &m->cap_targets, m->ntargets + 1))
        return lf_err(LF_ERR_NOMEM, "keymap: out of memory for %zu modules", m->ntargets + 1);
    lf_target *t = &m->targets[m->ntargets];
    /* Consecutive targets of one fused weight (TE2 q/k/v) share the copied key strings. */
    const lf_target *prev = m->ntargets ? &m->targets[m->ntargets - 1] : NULL;
    if (prev && strcmp(prev->weight_key, weight_key) == 0) {
        t->weight_key = prev->weight_key;
    } else {
        t->weight_key = lf_km_arena_strndup(&m->arena, weight_key, strlen(weight_key));
        if (!t->weight_key) return lf_err(LF_ERR_NOMEM, "keymap: out of memory copying %s", weight_key);
    }
    t->bias_key = NULL;
    if (bias_key) {
        if (prev && prev->bias_key && strcmp(prev->bias_key, bias_key) == 0) {
            t->bias_key = prev->bias_key;
        } else {
            t->bias_key = lf_km_arena_strndup(&m->arena, bias_key, strlen(bias_key));
            if (!t->bias_key) return lf_err(LF_ERR_NOMEM, "keymap: out of memory copying %s", bias_key);
        }
    }
    t->row_off = row_off;
    t->rows = rows;
    t->component = comp;
    t->kohya = NULL;
    *idx = (uint32_t)m->ntargets++;
    return LF_OK;
}

lf_status lf_km_add_name(lf_km_builder *b, uint32_t idx, const char *prefix, const char *path, size_t path_len,
                         int flatten, const char *suffix) {
    lf_sbuf *s = &b->name;
    lf_sb_reset(s);
    lf_sb_str(s, prefix);
    if (flatten)
        lf_km_sb_flat(s, path, path_len);
    else
        lf_sb_put(s, path, path_len);
    lf_sb_str(s, suffix);
    if (s->oom) return lf_err(LF_ERR_NOMEM, "keymap: out of memory composing a module name");

    lf_keymap *m = b->m;
    lf_km_slot *slot = lf_km_table_find(&m->names, s->s);
    if (slot) {
        /* The same spelling from two different modules cannot be resolved: refuse it at lookup time
         * rather than guess (no SD layout produces this; a malformed key list could). */
        if (slot->val != idx && slot->val != LF_KM_AMBIGUOUS) {
            slot->val = LF_KM_AMBIGUOUS;
            m->nambiguous++;
        }
        return LF_OK;
    }
    char *copy = lf_km_arena_strndup(&m->arena, s->s, s->n);
    if (!copy) return lf_err(LF_ERR_NOMEM, "keymap: out of memory storing %s", s->s);
    return lf_km_table_insert(&m->names, copy, idx);
}

lf_status lf_km_set_kohya(lf_km_builder *b, uint32_t idx, const char *prefix, const char *path, size_t path_len) {
    lf_sbuf *s = &b->name;
    lf_sb_reset(s);
    lf_sb_str(s, prefix);
    lf_km_sb_flat(s, path, path_len);
    char *copy = s->oom ? NULL : lf_km_arena_strndup(&b->m->arena, s->s, s->n);
    if (!copy) return lf_err(LF_ERR_NOMEM, "keymap: out of memory composing a kohya name");
    b->m->targets[idx].kohya = copy;
    return LF_OK;
}
