/* model_mem.h: what a model will cost before it is loaded: its structure read from the checkpoint's keys
 * and shapes alone, and the peak memory of its forward passes at a given size (the memory estimate of
 * `lorafuse generate`, host/pipeline/gen_memory.c).
 *
 * Shapes-only loads (lf_unet_load_shapes, lf_vae_load_shapes) run the ordinary loaders in the
 * LF_WTS_SHAPES mode of weight_load.h: every name, shape and dtype is checked as in a real load and the
 * arch (n_params included) is filled in, but no weight is converted or held (each weight pointer is a
 * placeholder). Such a model runs only on a dry compute (the peaks below), then is freed.
 *
 * Peaks: the forward pass itself (lf_unet_forward_on, lf_vae_decode_on) run on a dry counting compute
 * (compute_count.h: no arithmetic, placeholder buffers): the bytes of activation buffers it holds at its
 * busiest moment, by construction those of a real pass on any compute. Not counted: the caller's input
 * and output arrays and an operator's own scratch (the CPU pool's im2col bands and attention score
 * blocks: a few MiB per thread). LF_MEM_UNKNOWN when the count itself could not run (out of memory).
 */
#ifndef LF_MODEL_MEM_H
#define LF_MODEL_MEM_H

#include <stdint.h>

#include "lorafuse/lf_safetensors.h"
#include "lorafuse/lf_status.h"
#include "lorafuse/lf_types.h"
#include "lorafuse/lf_unet.h"
#include "lorafuse/lf_vae.h"

#define LF_MEM_UNKNOWN (UINT64_MAX / 4) /* an estimate no machine meets: the caller refuses */

/* unet_mem.c */
lf_status lf_unet_load_shapes(const lf_st_file *st, const lf_unet_opts *opts, lf_unet **out);
/* One lf_unet_forward on x (N, in_ch, H, W) with a context of L tokens. */
uint64_t lf_unet_forward_peak(const lf_unet *u, int64_t N, int64_t H, int64_t W, int64_t L);

/* vae.c */
lf_status lf_vae_load_shapes(const lf_st_file *st, lf_family family, lf_vae **out);
/* One lf_vae_decode of N latents (h, w). */
uint64_t lf_vae_decode_peak(const lf_vae *v, int64_t N, int64_t h, int64_t w);

/* vae_tiled.c */
/* One lf_vae_decode_tiled of an (h, w) latent in tiles of T: one tile's decode and every decoded tile kept
 * on the host until they are blended. */
uint64_t lf_vae_decode_tiled_peak(const lf_vae *v, int64_t h, int64_t w, int64_t T);

#endif
