/* model_mem.h: what a model will cost before it is loaded: its structure read from the checkpoint's keys
 * and shapes alone, and the peak memory of its forward passes at a given size (the memory estimate of
 * `lorafuse generate`, host/pipeline/gen_memory.c).
 *
 * Shapes-only loads (lf_unet_load_shapes, lf_vae_load_shapes) run the ordinary loaders in the
 * LF_WTS_SHAPES mode of weight_load.h: every name, shape and dtype is checked as in a real load and the
 * arch (n_params included) is filled in, but no weight is converted or held (each weight pointer is a
 * placeholder). Such a model must not run: it is only measured and freed (lf_unet_free, lf_vae_free).
 *
 * Peaks: the f32 buffers lf_unet_forward / lf_vae_decode allocate (from the compute's alloc,
 * model_compute.h: host memory on the CPU backend), replayed in their order with the model's real
 * widths; bytes at the busiest moment. Not counted: the caller's input and output
 * arrays and the pool's per-thread scratch (im2col bands, attention score blocks: a few MiB per thread).
 * The replays mirror unet.c and vae.c buffer for buffer and must change with them.
 */
#ifndef LF_MODEL_MEM_H
#define LF_MODEL_MEM_H

#include <stdint.h>

#include "lorafuse/lf_safetensors.h"
#include "lorafuse/lf_status.h"
#include "lorafuse/lf_types.h"
#include "lorafuse/lf_unet.h"
#include "lorafuse/lf_vae.h"

/* A replay's count of f32 values: live now, and the most at any moment. */
typedef struct lf_mem_track {
    double live, peak;
} lf_mem_track;

static inline void lf_mem_alloc(lf_mem_track *m, double n) {
    m->live += n;
    if (m->live > m->peak) m->peak = m->live;
}

/* unet_mem.c */
lf_status lf_unet_load_shapes(const lf_st_file *st, const lf_unet_opts *opts, lf_unet **out);
/* One lf_unet_forward on x (N, in_ch, H, W) with a context of L tokens. */
uint64_t lf_unet_forward_peak(const lf_unet *u, int64_t N, int64_t H, int64_t W, int64_t L);

/* vae.c */
lf_status lf_vae_load_shapes(const lf_st_file *st, lf_family family, lf_vae **out);
/* One lf_vae_decode of N latents (h, w). */
uint64_t lf_vae_decode_peak(const lf_vae *v, int64_t N, int64_t h, int64_t w);

#endif
