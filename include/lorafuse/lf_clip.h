/* lf_clip.h: the CLIP text encoders of SD1.x, SD2.x and SDXL (f32 CPU reference) and the text
 * conditioning built from them.
 *
 * Model (transformers CLIPTextModel = OpenCLIP text tower), width w, L layers, T <= n_pos tokens:
 *   h_0 = token_embedding[ids] + position_embedding[0..T)                         (T, w)
 *   layer l: x = h + out_proj(attn(LN1(h)))  with causal multi-head attention, d = w / heads,
 *                 softmax(q kᵀ / sqrt(d) + causal mask) v, q/k/v = Linear(w, w) each (OpenCLIP:
 *                 one fused in_proj (3w, w) in q, k, v row order);
 *            h_l = x + fc2(act(fc1(LN2(x))))   fc1 (ff, w), fc2 (w, ff)
 *   act: quick_gelu x*sigmoid(1.702x) (OpenAI CLIP-L: SD1.x, SDXL TE1) or gelu (erf; OpenCLIP
 *        ViT-H/bigG: SD2.x, SDXL TE2) - from the layout (HF keys: quick_gelu, OpenCLIP keys: gelu) or
 *        config.json hidden_act, overridable.
 *   outputs: hidden state h_{L-skip+1} (skip = 1: last layer), optionally through final LN;
 *            pooled = LN_final(h_L)[first position of max(ids)] (= the first EOS) [@ text_projection].
 * Conventions used by the conditioning below:
 *   SD1.x:  A1111 / diffusers clip skip n: LN_final(h_{L-n+1}) (n = 1: last_hidden_state)
 *   SD2.x:  LN_final(h_{L-1}) (OpenCLIP layer "penultimate")
 *   SDXL:   TE1 h_{L-1} and TE2 h_{L-1} without final LN, concatenated along features (768 + 1280);
 *           pooled from TE2 (1280, through text_projection), from the first 77-token window.
 * Heads: config.json num_attention_heads, else opts.heads, else inferred: head width 64 when
 * w % 64 == 0 (CLIP-L 768 -> 12, ViT-H 1024 -> 16, bigG 1280 -> 20), else head width 8 (the tiny test
 * models: width 32, 4 heads).
 * Text projection: HF text_projection.weight (proj, w) is a Linear; OpenCLIP text_projection (w, proj)
 * is applied as x @ P, so it is stored transposed.
 * Weights are converted once to f32 and owned by the lf_clip (the file may be closed afterwards).
 */
#ifndef LF_CLIP_H
#define LF_CLIP_H

#include <stddef.h>
#include <stdint.h>

#include "lorafuse/lf_emphasis.h"
#include "lorafuse/lf_safetensors.h"
#include "lorafuse/lf_status.h"
#include "lorafuse/lf_tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lf_clip_act { LF_CLIP_ACT_AUTO = 0, LF_CLIP_QUICK_GELU, LF_CLIP_GELU } lf_clip_act;
typedef enum lf_clip_layout { LF_CLIP_LAYOUT_HF = 0, LF_CLIP_LAYOUT_OPENCLIP } lf_clip_layout;

typedef struct lf_clip_config {
    int64_t vocab, n_pos, width, layers, heads, ff;
    int64_t proj;          /* text projection output width, 0 if the model has none */
    lf_clip_act act;
    lf_clip_layout layout;
    float eps;             /* LayerNorm eps (1e-5) */
} lf_clip_config;

typedef struct lf_clip_opts {
    int64_t heads;         /* 0: config.json or inferred */
    lf_clip_act act;       /* LF_CLIP_ACT_AUTO: from the layout / config.json */
} lf_clip_opts;

typedef struct lf_clip lf_clip;

/* Load the text encoder whose keys start with prefix (HF: prefix + "text_model.embeddings...", also
 * without "text_model."; OpenCLIP: prefix + "token_embedding.weight"). Errors name file and tensor. */
lf_status lf_clip_load(const lf_st_file *f, const char *prefix, const lf_clip_opts *opts, lf_clip **out);
/* lf_clip_load with the Linear weights used in place from f's mapping: f stays open until lf_clip_free. */
lf_status lf_clip_load_mapped(const lf_st_file *f, const char *prefix, const lf_clip_opts *opts, lf_clip **out);
/* Bytes of weights the encoder reads (own buffers and mapped memory). */
uint64_t lf_clip_weight_bytes(const lf_clip *m);
/* Of those, the bytes in the encoder's own buffers. */
uint64_t lf_clip_owned_bytes(const lf_clip *m);
/* lf_unet_drop_pages for a text encoder loaded with lf_clip_load_mapped. */
void lf_clip_drop_pages(lf_clip *m);
/* A diffusers/transformers folder (text_encoder/ or text_encoder_2/): config.json +
 * model.safetensors (or model.fp16.safetensors). */
lf_status lf_clip_load_dir(const char *dir, const lf_clip_opts *opts, lf_clip **out);
void lf_clip_free(lf_clip *m);
const lf_clip_config *lf_clip_get_config(const lf_clip *m);

/* Text encoders of a single-file checkpoint. */
typedef enum lf_te_family { LF_TE_NONE = 0, LF_TE_SD1, LF_TE_SD2, LF_TE_SDXL } lf_te_family;
/* Which text encoders the file holds and their key prefixes (prefix2 "" unless SDXL). */
lf_te_family lf_clip_detect(const lf_st_file *f, const char **prefix1, const char **prefix2);

typedef struct lf_clip_run {
    int skip;              /* >= 1: hidden state h_{L-skip+1} */
    int final_ln;          /* apply the final LayerNorm to it */
} lf_clip_run;

/* One sequence ids (T <= n_pos). hidden (T, width) and/or pooled (proj, or width without projection)
 * may be NULL. An id outside the vocabulary is an error naming the position and the embedding tensor. */
lf_status lf_clip_forward(const lf_clip *m, const int32_t *ids, int64_t T, const lf_clip_run *run,
                          float *hidden, float *pooled);

/* Every 77-id window of c: hidden (c->n * 77, width) = the windows' hidden states, each weighted per
 * `mode` with the window's multipliers (lf_emphasis_apply); pooled (may be NULL) from window 0,
 * unweighted. The embeddings of c->fixes replace the token embeddings they cover (width checked). */
lf_status lf_clip_encode_chunks(const lf_clip *m, const lf_prompt_chunks *c, const lf_clip_run *run,
                                lf_emph_mode mode, float *hidden, float *pooled);

/* The conditioning a UNet gets. */
typedef struct lf_text_cond {
    float *context;        /* (tokens, width) */
    int64_t tokens, width; /* tokens = 77 * windows */
    float *pooled;         /* (pooled_dim) SDXL only, else NULL */
    int64_t pooled_dim;
} lf_text_cond;

void lf_text_cond_free(lf_text_cond *c);

/* SD1.x (CLIP-L, HF layout; clip_skip >= 1, final LN always) and SD2.x (OpenCLIP; penultimate + final
 * LN: pass clip_skip 2) from a prompt with A1111 emphasis and chunks; pad: EOS for SD1, 0 for SD2.
 * emb: textual-inversion embeddings matched in the prompt (NULL: none; lf_emphasis.h). */
lf_status lf_text_encode_sd(const lf_clip *te, const lf_tokenizer *tok, const char *prompt, int clip_skip,
                            int32_t pad, lf_emph_mode mode, lf_embeddings *emb, lf_text_cond *out);
/* SDXL: concat(TE1 penultimate, TE2 penultimate) along features, pooled from TE2; TE1 windows pad with
 * EOS, TE2 windows with 0; embeddings give TE1 their clip_l vectors, TE2 their clip_g vectors. */
lf_status lf_text_encode_sdxl(const lf_clip *te1, const lf_clip *te2, const lf_tokenizer *tok, const char *prompt,
                              lf_emph_mode mode, lf_embeddings *emb, lf_text_cond *out);
/* SDXL assembly from already chunked windows (c1 for TE1, c2 for TE2: same window count). */
lf_status lf_text_encode_sdxl_chunks(const lf_clip *te1, const lf_clip *te2, const lf_prompt_chunks *c1,
                                     const lf_prompt_chunks *c2, lf_emph_mode mode, lf_text_cond *out);

#ifdef __cplusplus
}
#endif
#endif
