/* module_internal.h: private helpers shared by module_resolve.c (detect, check, resolve a module) and
 * module_contrib.c (its CPU-reference contribution); not part of the public API (lf_adapter.h).
 *
 * Shapes in one vocabulary: the target W (O, I[, kh, kw]) is flattened to (O, K), K = I * khw;
 * LoKr W1 (a, c) (x) W2 (b, k2) with k2 = d * khw.
 */
#ifndef LF_MODULE_INTERNAL_H
#define LF_MODULE_INTERNAL_H

#include <stdint.h>

#include "lorafuse/lf_adapter.h"

#define LF_BIT(r) (1u << (r))
#define LF_SHBUF 96 /* room for one lf_shape_str in a message */

static inline int lf_has(const lf_module *m, lf_role r) { return (m->present & LF_BIT(r)) != 0; }

/* dim i, or 1 past ndim (a missing trailing dim reads as 1) */
static inline int64_t lf_dim(const lf_view *v, int i) { return i < v->ndim ? v->shape[i] : 1; }

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

/* A resolved module against the target weight shape wv: every factor fits (T15 tolerance) and the
 * DoRA axis is the one it was resolved with; LF_ERR_SHAPE / LF_ERR_ARG naming module and role. */
lf_status lf_module_check_target(const lf_module *m, const lf_view *wv);

#endif
