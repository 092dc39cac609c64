/* lf_vae.h: the Stable Diffusion AutoencoderKL (decoder and encoder) on the f32 CPU reference operators.
 *
 * Loading: LDM keys "first_stage_model.{encoder,decoder,quant_conv,post_quant_conv}.*" of a single-file
 * checkpoint, or the same keys without the prefix (a standalone VAE file); f32/f16/bf16 -> f32, owned
 * by the lf_vae (the lf_st_file may be closed after lf_vae_load). Widths, levels and resnets per level
 * come from the shapes and keys (decoder.up.i.block.j, encoder.down.i.block.j); the decoder is
 * required, the encoder is loaded when encoder.conv_in.weight is present.
 *   scaling factor  opts.scaling_factor if > 0, else by family: SD1.x / SD2.x 0.18215, SDXL 0.13025
 *   norm groups     opts.norm_groups if > 0, else 32 (every SD VAE)
 *
 * Forward (diffusers AutoencoderKL 0.30 / LDM autoencoder, f32, every GroupNorm eps 1e-6):
 *   resnet(h)  = shortcut(h) + conv2(silu(gn2(conv1(silu(gn1(h))))))   (nin_shortcut 1x1 if widths differ)
 *   attn(h)    = h + proj_out(softmax(q kᵀ / sqrt(C)) v), q/k/v = 1x1 of gn(h), one head over H*W tokens
 *   decode(z)  = conv_out(silu(gn(up_blocks(mid(conv_in(post_quant_conv(z / sf)))))))
 *                up level i = n-1 .. 0: resnets, then nearest 2x + conv 3x3 (not at level 0)
 *   encode(x)  = quant_conv(conv_out(silu(gn(mid(down_blocks(conv_in(x))))))) = (mean, logvar)
 *                down level i = 0 .. n-1: resnets, then pad (0,1,0,1) + conv 3x3 stride 2 (not last)
 *                latents = sf * mean (the distribution's mode), logvar clamped to [-30, 20]
 * Shapes: latents (N, z, h, w) in sampler space (already multiplied by sf), images (N, 3, h*f, w*f),
 * f = 2^(levels-1) (8 for SD); images in [-1, 1] (not clamped here).
 * Test: tests/runtime/test_vae.c against diffusers (tests/data/model/{sd15,sdxl}_vae.safetensors).
 */
#ifndef LF_VAE_H
#define LF_VAE_H

#include <stddef.h>
#include <stdint.h>

#include "lorafuse/lf_safetensors.h"
#include "lorafuse/lf_status.h"
#include "lorafuse/lf_types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LF_VAE_MAX_LEVELS 8

typedef struct lf_vae_opts {
    const char *prefix;   /* NULL: "first_stage_model." if present, else "" */
    int norm_groups;      /* 0 -> 32 */
    float scaling_factor; /* 0 -> by family */
    int f32_weights;      /* hold every weight as f32 (a copy): on a device compute, whose products cut
                           * activations to the weights' 16-bit type, the decoder's activations pass f16's
                           * 65504 (the SDXL VAE's known fp16 overflow); the CPU gives the same bytes */
} lf_vae_opts;

typedef struct lf_vae_arch {
    int64_t image_channels;   /* decoder conv_out out-channels (3) */
    int64_t latent_channels;  /* post_quant_conv width (4) */
    int n_levels;
    int64_t level_channels[LF_VAE_MAX_LEVELS]; /* decoder widths per level, level 0 = full resolution */
    int dec_res_per_level;    /* resnets per decoder level (layers_per_block + 1) */
    int has_encoder;
    int enc_res_per_level;
    int norm_groups;
    float scaling_factor;
    int64_t factor;           /* spatial down-scaling 2^(n_levels-1) */
    size_t n_tensors;
    int64_t n_params;
} lf_vae_arch;

typedef struct lf_vae lf_vae;

/* family picks the scaling factor when opts->scaling_factor is 0 (LF_FAMILY_UNKNOWN then is an
 * LF_ERR_ARG error). Errors name the file, the tensor, and the expected vs found shape. */
lf_status lf_vae_load(const lf_st_file *st, lf_family family, const lf_vae_opts *opts, lf_vae **out);
/* lf_vae_load with the weights used in place from st's mapping: st stays open until lf_vae_free. */
lf_status lf_vae_load_mapped(const lf_st_file *st, lf_family family, const lf_vae_opts *opts, lf_vae **out);
/* Bytes of weights the model reads (own buffers and mapped memory). */
uint64_t lf_vae_weight_bytes(const lf_vae *v);
void lf_vae_free(lf_vae *v);
const lf_vae_arch *lf_vae_get_arch(const lf_vae *v);

/* img (N, image_channels, h*f, w*f) = decoder(post_quant_conv(latents (N, z, h, w) / sf)). */
lf_status lf_vae_decode(const lf_vae *v, float *img, const float *latents, int64_t N, int64_t h,
                        int64_t w);
/* lf_vae_decode of one image in overlapping tiles of T latent pixels (T a multiple of 4), as diffusers'
 * AutoencoderKL.tiled_decode (overlap 1/4, tiles blended linearly over a quarter of a tile): the memory
 * of one tile's decode instead of the whole image's. latents (z, h, w), img (3, f*h, f*w). */
lf_status lf_vae_decode_tiled(const lf_vae *v, float *img, const float *latents, int64_t h, int64_t w, int64_t T);
/* latents (N, z, H/f, W/f) = sf * mean; logvar (same shape, may be NULL) = clamp(logvar, -30, 20)
 * of encoder(img (N, image_channels, H, W)); H and W multiples of f. LF_ERR_MODEL without encoder. */
lf_status lf_vae_encode(const lf_vae *v, float *latents, float *logvar, const float *img, int64_t N,
                        int64_t H, int64_t W);

#ifdef __cplusplus
}
#endif
#endif
