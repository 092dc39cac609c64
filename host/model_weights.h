/* model_weights.h: private helper of the model loaders (unet_load.c, vae.c): read named checkpoint
 * tensors into owned f32 buffers with a shape check, one sticky status per load.
 *
 * Every name is `prefix` + a printf-formatted suffix ("model.diffusion_model." + "out.2.weight").
 * lf_wts_load checks the tensor against an expected shape, where a negative entry accepts any size
 * and is filled with the actual one; (a, b) and (a, b, 1, 1) match each other (Linear vs 1x1 conv
 * spellings of the same weight). The first failure (missing tensor, wrong shape, dtype, memory) is
 * kept in w->status with an lf_err message naming the file and the tensor; later calls do nothing and
 * return NULL, so a loader reads a whole layer and checks w->status once.
 * The buffers stay owned by the lf_wts until lf_wts_release hands the list to the model.
 */
#ifndef LF_MODEL_WEIGHTS_H
#define LF_MODEL_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "lorafuse/lf_safetensors.h"

typedef struct lf_wts {
    const lf_st_file *st;
    char prefix[96];
    lf_status status; /* first failure, LF_OK while all went well */
    float **bufs;     /* owned f32 buffers */
    size_t n, cap;
    size_t loaded;    /* tensors read */
    int64_t floats;   /* f32 values held */
} lf_wts;

void lf_wts_init(lf_wts *w, const lf_st_file *st, const char *prefix);
/* The tensor prefix + suffix, or NULL when absent (no error). */
const lf_st_tensor *lf_wts_find(const lf_wts *w, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Load prefix + suffix as f32 with shape (ndim dims, negative = any: filled in). NULL on failure
 * (w->status set, message names file, tensor, found and expected shapes). */
float *lf_wts_load(lf_wts *w, int ndim, int64_t *shape, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Record a failure found by the caller (message already set by lf_err); keeps the first one. */
lf_status lf_wts_fail(lf_wts *w, lf_status st);
/* Hand the buffer list to the caller (*bufs, *n); the lf_wts is empty afterwards. */
void lf_wts_release(lf_wts *w, float ***bufs, size_t *n);
/* Free every buffer still owned. */
void lf_wts_free(lf_wts *w);
/* Free a released list. */
void lf_wts_free_list(float **bufs, size_t n);

#endif
