/* module_geometry.c: the dims of a LoKr module's factors (module_geometry.h): W1 (a, c) full or a1 (a, r)
 * @ b1 (r, c); W2 (b, k2) full, a2 (b, r) @ b2 (r, k2), or Tucker t2 (r, r, kh, kw) between a2ᵀ (r, b)
 * and b2 (r, d), k2 = d * kh * kw. */
#include "module_geometry.h"

void lf_module_lokr_dims(const lf_module *m, int64_t *a, int64_t *c, int64_t *b, int64_t *k2, int64_t *d2) {
    if (lf_lokr_w1_full(m)) {
        *a = lf_dim(&m->t[LF_R_KW1], 0);
        *c = lf_view_cols(&m->t[LF_R_KW1]);
    } else {
        *a = lf_dim(&m->t[LF_R_KW1A], 0);
        *c = lf_view_cols(&m->t[LF_R_KW1B]);
    }
    if (lf_lokr_w2_full(m)) {
        *b = lf_dim(&m->t[LF_R_KW2], 0);
        *k2 = lf_view_cols(&m->t[LF_R_KW2]);
        *d2 = m->t[LF_R_KW2].ndim >= 3 ? lf_dim(&m->t[LF_R_KW2], 1) : *k2;
    } else if (lf_lokr_tucker(m)) {
        *b = lf_view_cols(&m->t[LF_R_KW2A]);
        *d2 = lf_view_cols(&m->t[LF_R_KW2B]);
        *k2 = *d2 * lf_spatial(&m->t[LF_R_KT2]);
    } else {
        *b = lf_dim(&m->t[LF_R_KW2A], 0);
        *k2 = lf_view_cols(&m->t[LF_R_KW2B]);
        *d2 = m->t[LF_R_KW2B].ndim >= 3 ? lf_dim(&m->t[LF_R_KW2B], 1) : *k2;
    }
}
