/* lf_model_dir.h: Stable Diffusion models stored as diffusers folders.
 *
 *   <root>/unet/             config.json + diffusion_pytorch_model.safetensors (or .fp16.safetensors)
 *   <root>/vae/              config.json + diffusion_pytorch_model.safetensors (or .fp16.safetensors)
 *   <root>/text_encoder/     config.json + model.safetensors      (lf_clip_load_dir, lf_clip.h)
 *   <root>/text_encoder_2/   SDXL only                            (lf_clip_load_dir)
 *   <root>/tokenizer/, tokenizer_2/  vocab.json + merges.txt      (lf_tokenizer_load_dir)
 *   <root>/scheduler/scheduler_config.json                       prediction_type
 *
 * UNet: the structure comes from config.json (block_out_channels, layers_per_block, down/up/mid block
 * types, transformer_layers_per_block, cross_attention_dim, use_linear_projection,
 * addition_embed_type "text_time" + projection_class_embeddings_input_dim, time_embedding_dim); from it
 * lf_unet_spec_tensors lists every tensor in LDM naming, and the keymap's LDM -> diffusers derivation
 * (host/keymap/keymap_unet.c, the same rules adapters are resolved with) names each one in the file. Every
 * tensor must be present with the shape the config implies, and the file may hold nothing else;
 * errors name the file, the diffusers tensor and the config. The model is then built by the
 * single-file loader over that renamed view, so both paths run the same code and hold the same keys
 * (LDM names: adapters and lf_live_weights.h address a folder model like a single file).
 * Heads: diffusers' num_attention_heads, or attention_head_dim when that is null (diffusers'
 * historical naming: for SD1.x attention_head_dim 8 means 8 heads); a list per level becomes one
 * head width when C / heads is the same at every attention level (SD2.x, SDXL: 64), or one head
 * count when constant; otherwise unsupported. norm_num_groups -> GroupNorm groups; sample_size ->
 * arch.sample_size. Caller options (heads, groups) override the config.
 * Prediction: <dir>/../scheduler/scheduler_config.json prediction_type ("epsilon" / "v_prediction")
 * when present, else the family default; lf_unet_set_prediction overrides (lf_unet.h).
 * Unsupported (clear error): class embeddings, addition_embed_type other than text_time,
 * resnet_time_scale_shift other than "default", per-block cross_attention_dim lists,
 * reverse_transformer_layers_per_block, flip_sin_to_cos false or freq_shift != 0.
 *
 * VAE: AutoencoderKL config (block_out_channels, layers_per_block, latent_channels, norm_num_groups,
 * scaling_factor); diffusers keys mapped by a small table to the LDM names the VAE loader reads
 * (down_blocks.i.resnets.j -> down.i.block.j, up_blocks.i -> up.(n-1-i), mid_block.resnets.0/1 ->
 * mid.block_1/2, mid_block.attentions.0.{group_norm,to_q,to_k,to_v,to_out.0} (or the older
 * query/key/value/proj_attn) -> mid.attn_1.{norm,q,k,v,proj_out}, conv_shortcut -> nin_shortcut,
 * conv_norm_out -> norm_out, downsamplers.0 / upsamplers.0 -> downsample / upsample).
 * scaling_factor from the config unless opts->scaling_factor is set.
 * Test: tests/runtime/test_model_dir.c (tests/data/model/tiny-sd15-diffusers/, written by
 * scripts/golden/model_unet.py with diffusers' own save_pretrained).
 */
#ifndef LF_MODEL_DIR_H
#define LF_MODEL_DIR_H

#include "lorafuse/lf_status.h"
#include "lorafuse/lf_types.h"
#include "lorafuse/lf_unet.h"
#include "lorafuse/lf_vae.h"

#ifdef __cplusplus
extern "C" {
#endif

/* dir: the unet/ folder. opts may be NULL; opts->prefix is ignored. */
lf_status lf_unet_load_dir(const char *dir, const lf_unet_opts *opts, lf_unet **out);
/* dir: the vae/ folder. opts may be NULL; opts->prefix is ignored. */
lf_status lf_vae_load_dir(const char *dir, const lf_vae_opts *opts, lf_vae **out);
/* <root>/scheduler/scheduler_config.json prediction_type; *found = 0 (and LF_OK) when the file or
 * the field is absent. An unknown value is LF_ERR_UNSUPPORTED. */
lf_status lf_model_dir_prediction(const char *root, lf_prediction *out, int *found);
/* Fill spec (and heads / groups / sample size) from a diffusers UNet config.json. */
lf_status lf_unet_spec_from_config(const char *config_path, lf_unet_spec *spec, lf_unet_opts *heads,
                                   int *sample_size);

#ifdef __cplusplus
}
#endif
#endif
