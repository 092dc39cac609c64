/* clip_internal.h: the lf_clip struct shared by host/runtime/clip_load.c (loading), host/runtime/model_dir.c (folder
 * config) and host/runtime/clip.c (forward).
 * All weights f32, owned. Linear weights are (out, in) as torch.nn.Linear; qkv_w (3w, w) rows q, k, v.
 */
#ifndef LF_CLIP_INTERNAL_H
#define LF_CLIP_INTERNAL_H

#include "lorafuse/lf_clip.h"
#include "weight_load.h"

typedef struct lf_clip_layer {
    float *ln1_w, *ln1_b;
    float *qkv_w, *qkv_b;  /* (3w, w), (3w) */
    float *out_w, *out_b;  /* (w, w), (w) */
    float *ln2_w, *ln2_b;
    float *fc1_w, *fc1_b;  /* (ff, w), (ff) */
    float *fc2_w, *fc2_b;  /* (w, ff), (w) */
} lf_clip_layer;

struct lf_clip {
    lf_clip_config cfg;
    float *tok_emb;        /* (vocab, w) */
    float *pos_emb;        /* (n_pos, w) */
    lf_clip_layer *layers; /* (layers) */
    float *lnf_w, *lnf_b;  /* (w) */
    float *proj_w;         /* (proj, w) Linear layout, or NULL */
    char emb_name[1024];    /* file: tensor of the token embedding (error messages) */
    lf_wts_entry *wts;      /* checkpoint key (after prefix) -> the f32 data above, sorted; q/k/v_proj
                             * point into qkv_w/qkv_b, OpenCLIP text_projection is held transposed */
    size_t n_wts;
    char prefix[160];       /* key prefix the encoder was read under */
    char label[512];        /* file, for messages */
};

#endif
