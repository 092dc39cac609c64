/* keymap_internal.h: private pieces shared by the keymap files (not installed, not public API).
 *
 *   keymap_table.c    string arena, flattening append (lf_sbuf), open-addressing hash table
 *   keymap_builder.c  adding to a map under construction: key lookups, targets, spellings
 *   keymap.c          public API: build driver, family detection (P9), resolve, free
 *   keymap_unet.c     U-Net spellings: LDM path <-> diffusers path from the block structure (P8, T16)
 *   keymap_te.c       text-encoder spellings: HF CLIP names, OpenCLIP resblocks, TE2 q/k/v slices (P8)
 * Calls go one way: keymap.c -> keymap_unet.c, keymap_te.c -> keymap_builder.c -> keymap_table.c.
 *
 * How the map works: lf_keymap_build walks the checkpoint's key list once; for every weight it adds one
 * lf_target (or three, for a fused OpenCLIP in_proj_weight) and inserts every adapter spelling of that
 * module into `names` (spelling -> target index). Resolving is one hash lookup.
 */
#ifndef LF_KEYMAP_INTERNAL_H
#define LF_KEYMAP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "keymap_unet.h"
#include "lorafuse/lf_keymap.h"
#include "host/base/strbuf.h"

/* ---- string arena: every string the map owns lives here; freed in one sweep ------------------- */
typedef struct lf_km_chunk lf_km_chunk;
typedef struct lf_km_arena {
    lf_km_chunk *head;
} lf_km_arena;

/* Copy s[0..n) plus a NUL into the arena. NULL when out of memory. */
char *lf_km_arena_strndup(lf_km_arena *a, const char *s, size_t n);
void lf_km_arena_free(lf_km_arena *a);

/* ---- composing spellings (in lf_sbuf, host/base/strbuf.h) ----------------------------------- */
/* Append x[0..n) with every '.' turned into '_' (the kohya flattening; never reversed, T16). */
void lf_km_sb_flat(lf_sbuf *b, const char *x, size_t n);

/* ---- open-addressing hash table: NUL-terminated string -> uint32 (linear probing, FNV-1a) --- */
typedef struct lf_km_slot {
    const char *key; /* NULL: empty slot. Not owned by the table. */
    uint64_t hash;
    uint32_t val;
} lf_km_slot;

typedef struct lf_km_table {
    lf_km_slot *slots;
    size_t cap; /* power of two, 0 before the first insert */
    size_t count;
} lf_km_table;

uint64_t lf_km_hash(const char *s);
/* The slot holding key, or NULL. */
lf_km_slot *lf_km_table_find(const lf_km_table *t, const char *key);
/* Insert a key that is not in the table yet; the pointer is stored, not copied. */
lf_status lf_km_table_insert(lf_km_table *t, const char *key, uint32_t val);
void lf_km_table_free(lf_km_table *t);

/* ---- the map ---------------------------------------------------------------------------------- */
#define LF_KM_AMBIGUOUS UINT32_MAX /* a spelling that two different modules produced */

struct lf_keymap {
    lf_family family;
    lf_km_arena arena;
    lf_km_table names; /* adapter spelling -> index into targets */
    lf_target *targets;
    size_t ntargets, cap_targets;
    size_t nambiguous;
};

/* ---- build-time state ------------------------------------------------------------------------ */
#define LF_KM_MAX_BLOCKS 256 /* input_blocks / output_blocks indices we give diffusers names to */
#define LF_KM_MAX_SUBS 8     /* sub-module indices per block (LDM uses 0..2) */

typedef enum lf_km_kind {
    LF_KM_NONE = 0,
    LF_KM_RES,   /* ResBlock: in_layers / out_layers / emb_layers / skip_connection */
    LF_KM_ATTN,  /* SpatialTransformer: norm / proj_in / transformer_blocks / proj_out */
    LF_KM_DOWN,  /* Downsample: op */
    LF_KM_UP,    /* Upsample: conv */
    LF_KM_PLAIN, /* a weight directly at block level (input_blocks.0.0 = conv_in) */
    LF_KM_MIXED  /* anything else, or two kinds at one index: gets no diffusers name */
} lf_km_kind;

typedef struct lf_km_sub {
    unsigned char kind; /* lf_km_kind */
    int level, idx;     /* diffusers down_blocks/up_blocks index and resnets/attentions index */
} lf_km_sub;

typedef struct lf_km_unet {
    lf_km_sub in[LF_KM_MAX_BLOCKS][LF_KM_MAX_SUBS];
    lf_km_sub out[LF_KM_MAX_BLOCKS][LF_KM_MAX_SUBS];
    lf_km_sub mid[LF_KM_MAX_SUBS];
} lf_km_unet;

typedef struct lf_km_builder {
    lf_keymap *m;
    const char *const *keys;
    const lf_view *shapes; /* may be NULL */
    size_t n;
    lf_km_table keyset; /* checkpoint key -> index into keys (caller's strings) */
    lf_km_unet *unet;   /* block structure, from lf_km_unet_scan */
    lf_sbuf name;       /* scratch for composing spellings */
    lf_sbuf tmp;        /* scratch for composing keys and paths */
    lf_sbuf path;       /* scratch for a module's diffusers / HF path */
} lf_km_builder;

/* keymap_builder.c */
/* Index of key in the checkpoint's list, or -1. */
long lf_km_key_index(const lf_km_builder *b, const char *key);
/* The checkpoint's own pointer for module + suffix (e.g. ".bias") if that key exists, else NULL. */
const char *lf_km_sibling(lf_km_builder *b, const char *module, size_t module_len, const char *suffix);
/* Add a target; weight_key/bias_key are copied into the arena (bias_key may be NULL). */
lf_status lf_km_add_target(lf_km_builder *b, const char *weight_key, const char *bias_key, int64_t row_off,
                           int64_t rows, lf_component comp, uint32_t *idx);
/* Insert the spelling prefix + path (flattened '.'->'_' if flatten) + suffix for target idx. */
lf_status lf_km_add_name(lf_km_builder *b, uint32_t idx, const char *prefix, const char *path, size_t path_len,
                         int flatten, const char *suffix);
/* Record prefix + path flattened ('.'->'_') as the kohya name of target idx (lf_target.kohya). */
lf_status lf_km_set_kohya(lf_km_builder *b, uint32_t idx, const char *prefix, const char *path, size_t path_len);

/* keymap_unet.c */
lf_status lf_km_unet_scan(lf_km_builder *b);
/* Add the module whose weight is keys[i] ("model.diffusion_model.<P>.weight"). */
lf_status lf_km_unet_add(lf_km_builder *b, size_t i);
/* (lf_km_unet_diffusers_names and LF_KM_UNET_ROOT: keymap_unet.h) */

/* keymap_te.c: add keys[i] if it belongs to a text encoder; *handled = 0 if it does not. */
lf_status lf_km_te_add(lf_km_builder *b, size_t i, int *handled);

#endif
