/* lf_unet.h: the Stable Diffusion UNet (SD1.x, SD2.x, SDXL) on the f32 CPU reference operators.
 *
 * Loading: a single-file checkpoint with LDM/SGM keys ("model.diffusion_model.*", or the same keys
 * without the prefix in a UNet-only file), weights in f32, f16 or bf16, held in that dtype (one owned
 * copy, so the lf_st_file may be closed after lf_unet_load; or used in place from the file's mapping
 * with lf_unet_load_mapped) and converted to f32 per operator call (docs/model-runtime.md). The architecture is read from the
 * keys and shapes only (input_blocks / middle_block / output_blocks as the LDM openaimodel lays them
 * out), so tiny test models and full-size ones load through the same code:
 *   input_blocks.i     0: conv_in; then per level L resnets (".0.in_layers") each optionally followed
 *                      by a spatial transformer (".1.norm"), and a downsampler (".0.op") between levels
 *   middle_block.j     resnet, transformer, resnet (any sequence of those is accepted)
 *   output_blocks.i    resnet on cat(h, skip) + optional transformer + optional upsampler (".conv")
 *   transformer depth  = number of transformer_blocks.k; proj_in (C, C) Linear or (C, C, 1, 1) conv
 *   context width      = attn2.to_k in-features; time embedding width = time_embed.0 in-features
 *   SDXL               label_emb.0.0 (time_embed_dim, adm_in_channels) present -> y vector required
 * What the shapes cannot say comes from lf_unet_opts:
 *   heads              num_heads (all blocks, SD1.x style: 8) or head_dim (heads = C / head_dim,
 *                      SD2.x / SDXL style: 64). Neither given: context width 768 -> 8 heads, any
 *                      other width -> head width 64. The rule fails with an error (not a silent guess)
 *                      when a block's width is not divisible, which is the case for tiny test models.
 *   norm_groups        GroupNorm groups (0 -> 32 as in every SD model)
 * Prediction type (epsilon or v) is not stored in the weights: the forward returns the raw model output
 * and arch.prediction says how to read it: what lf_unet_set_prediction set (the caller's
 * `--prediction v|eps` option), else a diffusers folder's scheduler/scheduler_config.json prediction_type
 * (lf_unet_load_dir), else the family default (lf_prediction_default: v for SD2.x, whose common
 * checkpoints are the 768-v ones; eps for SD1.x, SDXL and unknown). A1111 decides SD2 v by the yaml
 * config next to the checkpoint (parameterization: "v"); we take the option instead. A 512-base SD2 single file needs prediction = eps.
 *
 * Other sources (same loader, same checks):
 *   lf_unet_load_views  named in-memory views (LDM names, no prefix); borrow = 1 uses F32 views in
 *                       place (random-weight benchmarks; such a model cannot be refreshed)
 *   lf_unet_load_dir    a diffusers folder unet/ (lf_model_dir.h)
 *   lf_unet_spec_tensors the LDM names and shapes of every tensor of a UNet of a given structure
 *                       (block_out_channels, layers_per_block, transformer depth per level, ...)
 *
 * Forward (diffusers UNet2DConditionModel / LDM UNetModel semantics, f32):
 *   emb  = time_embed(timestep_embedding(t, C0, flip_sin_to_cos, shift 0)) [+ label_emb(y)]
 *   h    = conv_in(x); every input block appends h to the skip list
 *   resnet(h)      = skip(h) + conv2(silu(gn2(conv1(silu(gn1(h))) + emb_proj(silu(emb)))))
 *   transformer(h) = h + proj_out(blocks(proj_in(gn(h))));  block(u) = u + attn1(ln1 u);
 *                    u + attn2(ln2 u, context); u + ff2(geglu(ff1(ln3 u)))
 *   out  = conv_out(silu(gn(h)))
 * Shapes: x (N, in_ch, H, W), t (N), context (N, L, context_dim), y (N, adm_in_channels) or NULL,
 * out (N, out_ch, H, W); any H, W >= 1: downsamplers give ceil(H/2), upsamplers go back to the size
 * of the matching skip connection (nearest, as diffusers' upsample_size), so out has x's size.
 * Test: tests/runtime/test_unet.c against diffusers (tests/data/model/, scripts/golden/model_unet.py).
 */
#ifndef LF_UNET_H
#define LF_UNET_H

#include <stddef.h>
#include <stdint.h>

#include "lorafuse/lf_safetensors.h"
#include "lorafuse/lf_status.h"
#include "lorafuse/lf_tensor.h"
#include "lorafuse/lf_types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LF_UNET_MAX_BLOCKS 32
#define LF_UNET_MAX_LEVELS 8

typedef struct lf_unet_opts {
    const char *prefix; /* key prefix; NULL: "model.diffusion_model." if present, else "" */
    int num_heads;      /* > 0: heads per attention (SD1.x: 8) */
    int head_dim;       /* > 0: head width, heads = C / head_dim (SD2.x, SDXL: 64) */
    int norm_groups;    /* GroupNorm groups; 0 -> 32 */
} lf_unet_opts;

/* The family default of the prediction type: v for SD2.x, epsilon otherwise (lf_prediction and
 * lf_prediction_parse, "epsilon"/"eps"/"v_prediction"/"v": lf_types.h). */
lf_prediction lf_prediction_default(lf_family f);

/* What the loader found (read-only). */
typedef struct lf_unet_arch {
    int64_t in_channels, out_channels;
    int64_t model_channels;   /* C0 = conv_in out = timestep embedding width */
    int64_t time_embed_dim;   /* 4 * C0 in SD */
    int64_t context_dim;      /* attn2.to_k in-features (768 SD1, 1024 SD2, 2048 SDXL); 0: no attention */
    int64_t adm_in_channels;  /* SDXL label_emb input (2816); 0 if absent */
    int n_levels;             /* resolution levels = downsamplers + 1 */
    int64_t level_channels[LF_UNET_MAX_BLOCKS];
    int res_per_level;        /* resnets per level in the input blocks (layers_per_block) */
    int n_input_blocks, n_output_blocks, n_middle;
    int depth_in[LF_UNET_MAX_BLOCKS];  /* transformer depth per input block (0: none) */
    int depth_out[LF_UNET_MAX_BLOCKS]; /* per output block */
    int depth_mid;
    int linear_proj;          /* proj_in/out are Linear (SD2.x, SDXL) rather than 1x1 conv */
    int num_heads, head_dim;  /* the heads rule in force (one of them is 0) */
    int norm_groups;
    lf_family family;         /* by context width (768/1024/2048 + label_emb); UNKNOWN otherwise */
    size_t n_tensors;         /* tensors read */
    int64_t n_params;         /* f32 values held */
    lf_prediction prediction; /* LF_PRED_EPSILON or LF_PRED_V */
    const char *prediction_from; /* "option", "scheduler_config.json" or "family default" */
    int sample_size;          /* config.json sample_size (latent side) of a folder; 0 otherwise */
} lf_unet_arch;

/* A UNet structure (what a diffusers config.json says), for lf_unet_spec_tensors. */
typedef struct lf_unet_spec {
    int64_t in_channels, out_channels;
    int n_levels;                            /* len(block_out_channels) */
    int64_t channels[LF_UNET_MAX_LEVELS];    /* block_out_channels */
    int layers_per_block;
    int depth[LF_UNET_MAX_LEVELS];           /* transformer depth per level; 0: no attention there */
    int depth_mid;                           /* mid-block transformer depth; 0: UNetMidBlock2D */
    int64_t context_dim;                     /* cross_attention_dim */
    int64_t adm_in_channels;                 /* SDXL projection_class_embeddings_input_dim; 0: none */
    int linear_proj;                         /* use_linear_projection */
    int64_t time_embed_dim;                  /* 0: 4 * channels[0] */
} lf_unet_spec;

typedef struct lf_unet_tensor {
    char name[112];                          /* LDM key without "model.diffusion_model." */
    int ndim;
    int64_t shape[4];
} lf_unet_tensor;

/* Every tensor of a UNet with structure s, in LDM naming (*out malloc'd, free() it). */
lf_status lf_unet_spec_tensors(const lf_unet_spec *s, lf_unet_tensor **out, size_t *n);

typedef struct lf_unet lf_unet;

/* Read the UNet of a checkpoint. opts may be NULL (defaults). Errors name the file, the tensor and
 * the expected vs found shape (missing tensor: LF_ERR_MODEL; wrong shape: LF_ERR_SHAPE). */
lf_status lf_unet_load(const lf_st_file *st, const lf_unet_opts *opts, lf_unet **out);
/* lf_unet_load without the copy: the F16/BF16/F32 weights are used in place from st's mapping, so st
 * must stay open until lf_unet_free (the file's pages are then the model's memory, shared with the
 * page cache; a weight refreshed later gets its own buffer). */
lf_status lf_unet_load_mapped(const lf_st_file *st, const lf_unet_opts *opts, lf_unet **out);
/* Bytes of weights the model reads: its own buffers plus memory used in place (mapping, bound tensors). */
uint64_t lf_unet_weight_bytes(const lf_unet *u);
/* Of those, the bytes in the model's own buffers (weights refreshed or converted; not the mapping). */
uint64_t lf_unet_owned_bytes(const lf_unet *u);
/* A model loaded with lf_unet_load_mapped: hand the resident pages of its mapped weights back to the
 * system while it is not needed (generate does so before the VAE decode); they stay in the page cache
 * and the next forward reads them back. No effect on values or on owned memory. */
void lf_unet_drop_pages(lf_unet *u);
/* Same from n named views (LDM names without prefix; label names the source in messages). borrow:
 * F32 views are used in place and must outlive the model. */
lf_status lf_unet_load_views(const char *const *names, const lf_view *views, size_t n, int borrow,
                             const char *label, const lf_unet_opts *opts, lf_unet **out);
void lf_unet_free(lf_unet *u);
/* The view the model passes to its matrix products for the weight read from checkpoint key `key`
 * (lf_live_weights.h keys), or NULL when it holds none; the view follows later refreshes and binds. A
 * weight held converted (transposed, or as f32 from another dtype) has its converted view. */
const lf_view *lf_unet_weight_view(const lf_unet *u, const char *key);
const lf_unet_arch *lf_unet_get_arch(const lf_unet *u);
/* The caller's prediction type (the `--prediction` option); lf_unet_default_prediction goes back to
 * the folder's scheduler config or the family default. */
void lf_unet_set_prediction(lf_unet *u, lf_prediction p);
void lf_unet_default_prediction(lf_unet *u);

/* emb (N, time_embed_dim) = time_embed(timestep_embedding(t)) [+ label_emb(y)]. y (N, adm) is
 * required when arch.adm_in_channels > 0 and ignored otherwise. */
lf_status lf_unet_time_embed(const lf_unet *u, float *emb, const float *t, const float *y, int64_t N);

/* SDXL's y vector, as diffusers builds it from added_cond_kwargs:
 * y (N, adm) = cat(pooled (N, pooled_dim), timestep_embedding(time_ids (N, n_ids) flattened, td)
 * reshaped (N, n_ids*td)), td = (adm - pooled_dim) / n_ids (256 for SDXL base with 6 ids). */
lf_status lf_unet_sdxl_y(const lf_unet *u, float *y, const float *pooled, int64_t pooled_dim,
                         const float *time_ids, int64_t n_ids, int64_t N);

/* out (N, out_ch, H, W) = UNet(x (N, in_ch, H, W), t (N), context (N, L, context_dim) [, y]). */
lf_status lf_unet_forward(const lf_unet *u, float *out, const float *x, const float *t,
                          const float *context, int64_t L, const float *y, int64_t N, int64_t H,
                          int64_t W);

/* Same, and copies the middle block's output (N, C_mid, H/2^d, W/2^d) to mid when not NULL
 * (diagnostics and tests). */
lf_status lf_unet_forward_mid(const lf_unet *u, float *out, float *mid, const float *x, const float *t,
                              const float *context, int64_t L, const float *y, int64_t N, int64_t H,
                              int64_t W);

#ifdef __cplusplus
}
#endif
#endif
