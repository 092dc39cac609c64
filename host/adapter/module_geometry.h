/* module_geometry.h: the shape vocabulary of a resolved adapter module (lf_adapter.h), shared by the
 * CPU reference (host/adapter/) and the device backends (host/cuda/): which roles a module holds,
 * which layout its algorithm uses, and the dims of its factors. Source: module_geometry.c.
 *
 * Shapes: the target W (O, I[, kh, kw]) is flattened to (O, K), K = I * khw;
 * LoKr W1 (a, c) (x) W2 (b, k2) with k2 = d * khw.
 */
#ifndef LF_MODULE_GEOMETRY_H
#define LF_MODULE_GEOMETRY_H

#include <stdint.h>

#include "lorafuse/lf_adapter.h"
#include "lorafuse/lf_tensor.h"

#define LF_BIT(r) (1u << (r))

static inline int lf_has(const lf_module *m, lf_role r) { return (m->present & LF_BIT(r)) != 0; }

/* dim i, or 1 past ndim (a missing trailing dim reads as 1) */
static inline int64_t lf_dim(const lf_view *v, int i) { return i < v->ndim ? v->shape[i] : 1; }

/* product of dims 2.. (kh * kw of a conv tensor; 1 for a 2-D one) */
static inline int64_t lf_spatial(const lf_view *v) {
    int64_t n = 1;
    for (int i = 2; i < v->ndim; i++) n *= v->shape[i];
    return n;
}

/* Dims of the target: flat(W) is (O, K), K = I * khw; spatial dims W.shape[2..]. */
typedef struct {
    const lf_view *w; /* NULL: unknown */
    int64_t O, I, K, khw;
} lf_module_target;

static inline lf_module_target lf_module_target_of(const lf_view *w) {
    lf_module_target t;
    t.w = w;
    t.O = w ? lf_dim(w, 0) : -1;
    t.I = w ? lf_dim(w, 1) : -1;
    t.K = w ? lf_view_cols(w) : -1;
    t.khw = w ? (t.I ? t.K / t.I : 0) : -1;
    return t;
}

/* Which layout a LoHa / LoKr module carries (the roles present decide it). */
static inline int lf_loha_tucker(const lf_module *m) { return lf_has(m, LF_R_HT1); }
static inline int lf_lokr_w1_full(const lf_module *m) { return lf_has(m, LF_R_KW1); }
static inline int lf_lokr_w2_full(const lf_module *m) { return lf_has(m, LF_R_KW2); }
static inline int lf_lokr_tucker(const lf_module *m) { return lf_has(m, LF_R_KT2); }

/* rows / cols of W1 (a, c) and W2 (b, k2 = d*khw); d2 = d when known (4-D w2, Tucker), else k2. */
void lf_module_lokr_dims(const lf_module *m, int64_t *a, int64_t *c, int64_t *b, int64_t *k2, int64_t *d2);

#endif
