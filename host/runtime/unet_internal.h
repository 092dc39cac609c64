/* unet_internal.h: the in-memory layout of a loaded UNet, shared by unet_load.c (builds it from the
 * checkpoint) and unet.c (runs it). All weights are owned f32 arrays (weight_load.h list).
 * Shapes: Linear W (out, in); conv W (out, in, k, k); norms gamma/beta (C).
 */
#ifndef LF_UNET_INTERNAL_H
#define LF_UNET_INTERNAL_H

#include "lorafuse/lf_unet.h"
#include "weight_load.h"

typedef lf_wts_lin lf_un_lin;   /* Linear, or a conv when k > 0; b may be NULL */
typedef lf_wts_norm lf_un_norm; /* GroupNorm / LayerNorm gamma, beta (C) */

typedef struct lf_un_res {
    lf_un_norm n1, n2;
    lf_un_lin c1, c2, emb, skip; /* skip.w NULL: identity */
    int64_t cin, cout;
} lf_un_res;

typedef struct lf_un_attn {
    lf_un_lin q, k, v, o;
    int64_t heads, dim_head;
} lf_un_attn;

typedef struct lf_un_tblock {
    lf_un_norm ln1, ln2, ln3;
    lf_un_attn a1, a2;
    lf_un_lin ff1, ff2; /* ff1 (2F, C) GEGLU proj, ff2 (C, F) */
} lf_un_tblock;

typedef struct lf_un_xf {
    lf_un_norm gn;
    lf_un_lin pin, pout; /* k = 1 for the 1x1-conv spelling, 0 for Linear */
    lf_un_tblock *blocks;
    int depth;
    int64_t C, inner;
} lf_un_xf;

typedef enum lf_un_kind { LF_UN_RES, LF_UN_XF, LF_UN_DOWN, LF_UN_UP, LF_UN_CONV_IN } lf_un_kind;

typedef struct lf_un_layer {
    lf_un_kind kind;
    lf_un_res res;
    lf_un_xf xf;
    lf_un_lin conv; /* DOWN (3x3 stride 2 pad 1), UP (3x3 after nearest 2x), CONV_IN */
} lf_un_layer;

typedef struct lf_un_block {
    lf_un_layer *layers;
    int n;
} lf_un_block;

struct lf_unet {
    lf_unet_arch arch;
    lf_un_lin t1, t2;         /* time_embed.0 (T, C0), time_embed.2 (T, T) */
    lf_un_lin l1, l2;         /* label_emb.0.0 (T, adm), label_emb.0.2 (T, T); l1.w NULL if absent */
    lf_un_block in[LF_UNET_MAX_BLOCKS], mid, out[LF_UNET_MAX_BLOCKS];
    lf_un_norm out_norm;      /* out.0 */
    lf_un_lin out_conv;       /* out.2 */
    lf_wts_entry *wts;        /* every weight array, sorted by key (suffix after `prefix`) */
    size_t n_wts;
    char prefix[96];          /* key prefix the weights were read under ("" for a diffusers folder) */
    char label[256];          /* the file, for messages */
    int has_file_prediction;  /* a folder's scheduler_config.json gave prediction_type: */
    lf_prediction file_prediction;
};

/* The loader behind lf_unet_load / lf_unet_load_views / lf_unet_load_dir: tensors from st, or from a
 * name-sorted alias table standing for it (names without prefix; label names the source). */
lf_status lf_un_load_src(const lf_st_file *st, const lf_wts_alias *alias, size_t n_alias, const char *label,
                         int borrow, const lf_unet_opts *opts, lf_unet **out);

/* lf_unet_set_weight without the copy: the model reads v's memory from now on (lf_wts_bind); for
 * live_weights.c, whose backend tensors outlive the model's use of them. */
lf_status lf_unet_bind_weight(lf_unet *u, const char *key, const lf_view *v, int from_file);
/* Owned copies of every bound weight (lf_wts_list_own). */
lf_status lf_unet_own_weights(lf_unet *u);

#endif
