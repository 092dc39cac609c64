/* model_weights.c: named checkpoint tensors -> owned f32 buffers with shape checks (model_weights.h).
 * Conversion f32/f16/bf16 -> f32 is lf_view_to_f32 (exact for f16 and bf16).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_weights.h"

void lf_wts_init(lf_wts *w, const lf_st_file *st, const char *prefix) {
    memset(w, 0, sizeof *w);
    w->st = st;
    snprintf(w->prefix, sizeof w->prefix, "%s", prefix ? prefix : "");
}

static void lf_wts_name(const lf_wts *w, char *buf, size_t n, const char *fmt, va_list ap) {
    size_t pl = strlen(w->prefix);
    snprintf(buf, n, "%s", w->prefix);
    if (pl < n) vsnprintf(buf + pl, n - pl, fmt, ap);
}

const lf_st_tensor *lf_wts_find(const lf_wts *w, const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    lf_wts_name(w, name, sizeof name, fmt, ap);
    va_end(ap);
    return lf_st_find(w->st, name);
}

lf_status lf_wts_fail(lf_wts *w, lf_status st) {
    if (w->status == LF_OK) w->status = st;
    return w->status;
}

/* Shape as the loader compares it: trailing 1-dims beyond the second removed. */
static int lf_wts_norm_ndim(int ndim, const int64_t *shape) {
    while (ndim > 2 && shape[ndim - 1] == 1) ndim--;
    return ndim;
}

static void lf_wts_shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, n - o, "(");
    for (int i = 0; i < ndim && o < n; i++) {
        if (shape[i] < 0) o += (size_t)snprintf(buf + o, n - o, "%s*", i ? ", " : "");
        else o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    }
    if (o < n) snprintf(buf + o, n - o, "%s)", ndim == 1 ? "," : "");
}

float *lf_wts_load(lf_wts *w, int ndim, int64_t *shape, const char *fmt, ...) {
    if (w->status != LF_OK) return NULL;
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    lf_wts_name(w, name, sizeof name, fmt, ap);
    va_end(ap);
    const char *file = lf_st_path(w->st) ? lf_st_path(w->st) : "checkpoint";
    const lf_st_tensor *t = lf_st_find(w->st, name);
    if (!t) {
        lf_err(LF_ERR_MODEL, "%s: missing tensor \"%s\"", file, name);
        lf_wts_fail(w, LF_ERR_MODEL);
        return NULL;
    }
    int en = lf_wts_norm_ndim(ndim, shape), tn = lf_wts_norm_ndim(t->ndim, t->shape);
    int ok = en == tn;
    for (int i = 0; ok && i < en; i++) ok = shape[i] < 0 || shape[i] == t->shape[i];
    if (!ok) {
        char got[128], want[128];
        lf_wts_shape_str(t->ndim, t->shape, got, sizeof got);
        lf_wts_shape_str(ndim, shape, want, sizeof want);
        lf_err(LF_ERR_SHAPE, "%s: tensor \"%s\" has shape %s, expected %s", file, name, got, want);
        lf_wts_fail(w, LF_ERR_SHAPE);
        return NULL;
    }
    for (int i = 0; i < en; i++) shape[i] = t->shape[i];
    for (int i = en; i < ndim; i++) shape[i] = 1;
    if (w->n == w->cap) {
        size_t nc = w->cap ? 2 * w->cap : 256;
        float **nb = realloc(w->bufs, nc * sizeof *nb);
        if (!nb) {
            lf_err(LF_ERR_NOMEM, "%s: out of memory loading \"%s\"", file, name);
            lf_wts_fail(w, LF_ERR_NOMEM);
            return NULL;
        }
        w->bufs = nb;
        w->cap = nc;
    }
    lf_view v = lf_st_view(t);
    int64_t numel = lf_view_numel(&v);
    float *buf = malloc((size_t)(numel > 0 ? numel : 1) * sizeof(float));
    if (!buf) {
        lf_err(LF_ERR_NOMEM, "%s: out of memory converting \"%s\" (%lld elements)", file, name,
               (long long)numel);
        lf_wts_fail(w, LF_ERR_NOMEM);
        return NULL;
    }
    lf_status st = lf_view_to_f32(&v, buf);
    if (st != LF_OK) {
        free(buf);
        lf_err(st, "%s: tensor \"%s\": dtype %s cannot be read as f32", file, name,
               lf_dtype_name(t->dtype));
        lf_wts_fail(w, st);
        return NULL;
    }
    w->bufs[w->n++] = buf;
    w->loaded++;
    w->floats += numel;
    return buf;
}

void lf_wts_release(lf_wts *w, float ***bufs, size_t *n) {
    *bufs = w->bufs;
    *n = w->n;
    w->bufs = NULL;
    w->n = w->cap = 0;
}

void lf_wts_free_list(float **bufs, size_t n) {
    for (size_t i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
}

void lf_wts_free(lf_wts *w) {
    lf_wts_free_list(w->bufs, w->n);
    w->bufs = NULL;
    w->n = w->cap = 0;
}
