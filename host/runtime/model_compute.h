/* model_compute.h: the model runtime on any compute backend (host/base/compute.h): the UNet, CLIP
 * text encoder and VAE forward passes with their activations in the backend's memory. The network
 * structure is written once, in unet.c, clip.c and vae.c, over this interface; the public functions
 * of lf_unet.h, lf_clip.h and lf_vae.h are these same functions on lf_compute_cpu() (compute_cpu.h),
 * whose memory is host memory, so a caller's host arrays go in as they are.
 *
 * Where each pointer lives (B: the backend's memory, from c->alloc or an offset into such a buffer;
 * H: host memory):
 *   lf_unet_time_embed_on     emb B, t H (N timesteps), y B
 *   lf_unet_sdxl_y_on         y B, pooled B, time_ids H
 *   lf_unet_forward_mid_on    out, mid, x, context, y B; t H
 *   lf_clip_forward_on        hidden, pooled B; ids H
 *   lf_clip_encode_chunks_on  hidden, pooled H: each window runs on the backend and comes back to the
 *                             host, where A1111's emphasis (a mean over the whole window) is applied;
 *                             the text conditioning is small and the pipeline keeps it on the host
 *   lf_text_encode_*_on       the lf_text_cond out: H (as lf_clip_encode_chunks_on)
 *   lf_vae_decode_on          img, latents B
 *   lf_vae_encode_on          latents, logvar, img B
 * Weights are the model's (host views and f32 arrays, compute.h "Memory").
 * Each function returns once its work is queued: c->download (or c->sync) before reading a result on
 * the host. Host data handed to the backend (t, ids, time ids, textual-inversion rows, the position
 * embeddings and the clamped logvar by c->upload) is taken to be read when the call returns: some
 * of it is freed right after. Sizes, shapes and errors are those of the public function of the same
 * name.
 */
#ifndef LF_MODEL_COMPUTE_H
#define LF_MODEL_COMPUTE_H

#include <stdint.h>

#include "host/base/compute.h"
#include "lorafuse/lf_clip.h"
#include "lorafuse/lf_unet.h"
#include "lorafuse/lf_vae.h"

/* The model files' allocation with a sticky status: nothing is asked for once *st holds an error
 * (NULL then), and a failure is named by `model` ("unet: cpu compute: out of memory ..."). */
static inline float *lf_mc_alloc(lf_compute *c, int64_t n, const char *model, lf_status *st) {
    float *p = NULL;
    if (*st != LF_OK) return NULL;
    if ((*st = c->alloc(c, n, &p)) != LF_OK) {
        lf_err_wrap(*st, "%s: ", model);
        return NULL;
    }
    return p;
}

/* conv2d + residual add (compute.h conv2d_add): the backend's fused op, or conv2d into y then
 * add(y, y, res) (the CPU's bytes). res (N, C_out, Ho, Wo) distinct from y. */
static inline lf_status lf_mc_conv2d_add(lf_compute *c, float *y, const float *x, const lf_view *W, const float *b,
                                         const float *res, int64_t N, int64_t C_in, int64_t H, int64_t Wd,
                                         int64_t C_out, int64_t k, int64_t stride, int64_t pad) {
    if (c->conv2d_add) return c->conv2d_add(c, y, x, W, b, res, N, C_in, H, Wd, C_out, k, k, stride, pad);
    lf_status st = c->conv2d(c, y, x, W, b, N, C_in, H, Wd, C_out, k, k, stride, pad);
    if (st != LF_OK) return st; /* a bad stride is refused by conv2d */
    return c->add(c, y, y, res, N * C_out * ((H + 2 * pad - k) / stride + 1) * ((Wd + 2 * pad - k) / stride + 1));
}

/* silu(group_norm(x)) (compute.h group_norm_silu): the backend's fused op, or group_norm then silu in place */
static inline lf_status lf_mc_group_norm_silu(lf_compute *c, float *y, const float *x, const float *gamma,
                                              const float *beta, int64_t N, int64_t C, int64_t S, int64_t groups,
                                              float eps) {
    if (c->group_norm_silu) return c->group_norm_silu(c, y, x, gamma, beta, N, C, S, groups, eps);
    lf_status st = c->group_norm(c, y, x, gamma, beta, N, C, S, groups, eps);
    return st != LF_OK ? st : c->silu(c, y, y, N * C * S);
}

/* unet.c */
lf_status lf_unet_time_embed_on(const lf_unet *u, lf_compute *c, float *emb, const float *t, const float *y,
                                int64_t N);
lf_status lf_unet_sdxl_y_on(const lf_unet *u, lf_compute *c, float *y, const float *pooled, int64_t pooled_dim,
                            const float *time_ids, int64_t n_ids, int64_t N);
lf_status lf_unet_forward_mid_on(const lf_unet *u, lf_compute *c, float *out, float *mid, const float *x,
                                 const float *t, const float *context, int64_t L, const float *y, int64_t N,
                                 int64_t H, int64_t W);
lf_status lf_unet_forward_on(const lf_unet *u, lf_compute *c, float *out, const float *x, const float *t,
                             const float *context, int64_t L, const float *y, int64_t N, int64_t H, int64_t W);

/* clip.c */
lf_status lf_clip_forward_on(const lf_clip *m, lf_compute *c, const int32_t *ids, int64_t T, const lf_clip_run *run,
                             float *hidden, float *pooled);
lf_status lf_clip_encode_chunks_on(const lf_clip *m, lf_compute *c, const lf_prompt_chunks *ch,
                                   const lf_clip_run *run, lf_emph_mode mode, float *hidden, float *pooled);
lf_status lf_text_encode_sd_on(const lf_clip *te, lf_compute *c, const lf_tokenizer *tok, const char *prompt,
                               int clip_skip, int32_t pad, lf_emph_mode mode, lf_embeddings *emb, lf_text_cond *out);
lf_status lf_text_encode_sdxl_on(const lf_clip *te1, const lf_clip *te2, lf_compute *c, const lf_tokenizer *tok,
                                 const char *prompt, lf_emph_mode mode, lf_embeddings *emb, lf_text_cond *out);
lf_status lf_text_encode_sdxl_chunks_on(const lf_clip *te1, const lf_clip *te2, lf_compute *c,
                                        const lf_prompt_chunks *c1, const lf_prompt_chunks *c2, lf_emph_mode mode,
                                        lf_text_cond *out);

/* vae.c */
lf_status lf_vae_decode_on(const lf_vae *v, lf_compute *c, float *img, const float *latents, int64_t N, int64_t h,
                           int64_t w);
/* vae_tiled.c: one image (latents (z, h, w) and img (3, f*h, f*w) on the host) in overlapping tiles of T
 * latent pixels, each decoded on c (lf_vae_decode_tiled) */
lf_status lf_vae_decode_tiled_on(const lf_vae *v, lf_compute *c, float *img, const float *latents, int64_t h, int64_t w,
                                 int64_t T);
lf_status lf_vae_encode_on(const lf_vae *v, lf_compute *c, float *latents, float *logvar, const float *img,
                           int64_t N, int64_t H, int64_t W);

#endif
