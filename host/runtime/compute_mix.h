/* compute_mix.h: a compute (host/base/compute.h) whose samples carry different weights for some layers:
 * the per-image adapters of a mixed batch (docs/generate.md "Mixed batches").
 *
 * Every sample of a call belongs to a slot (slot_of[sample]: the job the image comes from; the
 * unconditional and conditional halves of an image share its slot). For a layer listed in `layers`
 * (found by the address of the weight the model passes, its view's data), slot s's samples get
 *     y_b = W_s x_b + bias + sum_i scale_i * up_i(down_i(x_b))
 * W_s: the slot's own weight (a view like the model's, built elsewhere exactly as a single image's
 * weight is) or, when it has none, the model's weight W0. The terms are the slot's low-rank adapters:
 *   linear   down (R, in), up (out, R)
 *   conv     down (R, C_in, kh, kw) with the layer's stride and padding, then up (C_out, R) as a 1x1 conv
 *   Tucker   down (R, C_in) as a 1x1 conv, mid (R, R, kh, kw) with the layer's stride and padding, up 1x1
 * (the LoRA / LoCon forms of docs/adapters.md, factors as f32 arrays). Samples that share a weight run as
 * one product (gathered when they are not the whole batch), each slot's terms as one down and one up
 * product over its samples; a layer not listed runs once for the whole batch, as the inner compute's own op.
 * Rows of one sample are contiguous: a linear's M rows are n_samples blocks of M / n_samples rows (tokens;
 * another M is an error), a conv's N images are the samples.
 *
 * When the inner compute has lora_terms (the CUDA compute's segmented kernels), a linear layer's terms of
 * every slot run as one such call instead: a segment per run of consecutive samples of a slot, no gathers.
 * Gathers, scatters and the accumulation (scale, then add: on the CPU the bytes of y += scale * t) are the
 * inner compute's own ops, so activations may live in a device's memory. The inner table is copied, so its
 * ops must reach their state through c->impl (the CPU and CUDA computes do); the factors and slot weights
 * are host arrays that a device compute keeps resident by address like any weight (forget them when they
 * are rewritten). t_terms and t_split are host clocks: on a device they need a synchronising inner compute.
 */
#ifndef LF_COMPUTE_MIX_H
#define LF_COMPUTE_MIX_H

#include <stddef.h>
#include <stdint.h>

#include "host/base/compute.h"

typedef struct lf_mix_term {
    const float *down, *mid, *up; /* mid NULL: plain LoRA / LoCon */
    int64_t rank;
    float scale;                  /* strength x gamma x block factor now; 0: skipped */
} lf_mix_term;

typedef struct lf_mix_slot {
    const lf_view *weight;        /* NULL: the model's */
    const lf_mix_term *terms;
    size_t n_terms;
} lf_mix_slot;

typedef struct lf_mix_layer {
    const void *w0;               /* the model's weight (its view's data) */
    const lf_mix_slot *slots;     /* n_slots entries */
} lf_mix_layer;

#define LF_MIX_BUFS 5
typedef struct lf_compute_mix {
    lf_compute c;                 /* first: the table the model calls */
    lf_compute *inner;
    const lf_mix_layer *layers;   /* sorted by w0 (lf_compute_mix_sort) */
    size_t n_layers, n_slots;
    const int *slot_of;           /* slot of each sample of the next calls */
    int64_t n_samples;            /* 0: every layer passes through */
    float *buf[LF_MIX_BUFS];
    int64_t cap[LF_MIX_BUFS];
    double t_terms;               /* seconds in the low-rank terms (down, up, accumulate) so far */
    double t_split;               /* seconds in the gathers and per-weight products of layers some slot replaces */
    uint64_t n_segmented;         /* linear layers whose terms ran as one lora_terms call of the inner compute */
} lf_compute_mix;

/* m's table: inner's with linear and conv2d intercepted; no layers yet. */
lf_status lf_compute_mix_init(lf_compute_mix *m, lf_compute *inner);
void lf_compute_mix_free(lf_compute_mix *m);
/* Sort layers by w0 (before they are handed to m). */
void lf_compute_mix_sort(lf_mix_layer *layers, size_t n);

#endif
