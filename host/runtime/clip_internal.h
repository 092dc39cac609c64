/* clip_internal.h: the lf_clip struct shared by host/runtime/clip_load.c (loading), host/runtime/model_dir.c (folder
 * config) and host/runtime/clip.c (forward).
 * Linear weights are (out, in) as torch.nn.Linear, held in the checkpoint's dtype (weight_load.h: owned
 * by their index entries, or in the file's mapping); qkv_w (3w, w) rows q, k, v is one buffer the layer
 * owns (qkv_own), the q/k/v entries point into it. Everything else is f32, owned by the lf_clip.
 */
#ifndef LF_CLIP_INTERNAL_H
#define LF_CLIP_INTERNAL_H

#include "lorafuse/lf_clip.h"
#include "weight_load.h"

typedef struct lf_clip_layer {
    float *ln1_w, *ln1_b;
    lf_view qkv_w;         /* (3w, w) */
    void *qkv_own;         /* its buffer (freed with the layer) */
    float *qkv_b;          /* (3w) */
    lf_view out_w;         /* (w, w) */
    float *out_b;          /* (w) */
    float *ln2_w, *ln2_b;
    lf_view fc1_w;         /* (ff, w) */
    float *fc1_b;          /* (ff) */
    lf_view fc2_w;         /* (w, ff) */
    float *fc2_b;          /* (w) */
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

/* lf_clip_set_weight without the copy where the weight is not fused (lf_wts_bind; live_weights.c). */
lf_status lf_clip_bind_weight(lf_clip *m, const char *key, const lf_view *v, int from_file);
/* Owned copies of every bound weight (lf_wts_list_own). */
lf_status lf_clip_own_weights(lf_clip *m);

#endif
