/* lf_test_data.h: helpers the C tests share for fixtures and comparisons (next to lf_test.h).
 *
 * lf_test_tensor_f32  a fixture tensor as a malloc'd f32 array (exits naming the tensor if missing)
 * lf_test_rel_l2      ||a - b|| / ||b|| in double; Inf when `a` holds a non-finite value
 * lf_test_view        an lf_view over a local array, up to 4 dims (unused trailing dims 0)
 * lf_test_set_role    put a view into a module as one of its roles (tests build lf_module by hand)
 */
#ifndef LF_TEST_DATA_H
#define LF_TEST_DATA_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lorafuse/lf_adapter.h"
#include "lorafuse/lf_safetensors.h"

static inline float *lf_test_tensor_f32(const lf_st_file *f, const char *name, int64_t *n) {
    const lf_st_tensor *t = lf_st_find(f, name);
    if (!t) {
        fprintf(stderr, "fixture %s: tensor %s missing\n", lf_st_path(f), name);
        exit(1);
    }
    lf_view v = lf_st_view(t);
    int64_t k = lf_view_numel(&v);
    float *p = malloc((size_t)(k ? k : 1) * sizeof(float));
    if (!p || lf_view_to_f32(&v, p) != LF_OK) {
        fprintf(stderr, "fixture %s: tensor %s: %s\n", lf_st_path(f), name, lf_last_error());
        exit(1);
    }
    if (n) *n = k;
    return p;
}

static inline double lf_test_rel_l2(const float *a, const float *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1e-300));
}

static inline lf_view lf_test_view(const void *data, lf_dtype dt, int ndim, int64_t s0, int64_t s1, int64_t s2,
                                   int64_t s3) {
    lf_view v;
    memset(&v, 0, sizeof v);
    v.data = data;
    v.dtype = dt;
    v.ndim = ndim;
    v.shape[0] = s0;
    v.shape[1] = s1;
    v.shape[2] = s2;
    v.shape[3] = s3;
    return v;
}

static inline void lf_test_set_role(lf_module *m, lf_role r, lf_view v) {
    m->t[r] = v;
    m->present |= 1u << r;
}

#endif
