/* weight_load.c: named checkpoint tensors -> weights in their stored dtype (mapped or one owned copy)
 * or owned f32 buffers, with shape, dtype and finiteness checks; the key index used to refresh or bind
 * a loaded model's weights; the Linear/conv/norm layer readers of the UNet and VAE loaders
 * (weight_load.h). Conversion f32/f16/bf16 -> f32 is lf_view_to_f32 (exact for f16 and bf16).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/base/pages.h"
#include "host/base/util.h"
#include "weight_load.h"

void lf_wts_init(lf_wts *w, const lf_st_file *st, const char *prefix) {
    memset(w, 0, sizeof *w);
    w->st = st;
    w->label = st && lf_st_path(st) ? lf_st_path(st) : "checkpoint";
    snprintf(w->prefix, sizeof w->prefix, "%s", prefix ? prefix : "");
}

void lf_wts_set_alias(lf_wts *w, const lf_wts_alias *alias, size_t n, const char *label, int borrow) {
    w->alias = alias;
    w->n_alias = n;
    w->borrow = borrow;
    if (label) w->label = label;
}

static int lf_wts_alias_cmp(const void *k, const void *a) {
    return strcmp((const char *)k, ((const lf_wts_alias *)a)->t.name);
}

void lf_wts_init_src(lf_wts *w, const lf_st_file *st, const lf_wts_alias *alias, size_t n_alias,
                     const char *label, int borrow, const char *prefix) {
    lf_wts_init(w, st, prefix);
    if (borrow == LF_WTS_MAP) {
        w->map = !alias;
        borrow = 0;
    }
    if (alias) lf_wts_set_alias(w, alias, n_alias, label, borrow);
    else if (borrow == LF_WTS_SHAPES) w->borrow = borrow;
}

const char *lf_wts_pick_prefix(const lf_st_file *st, const lf_wts_alias *alias, size_t n_alias,
                               const char *given, const char *ldm, const char *probe) {
    if (given) return given;
    lf_wts w;
    lf_wts_init_src(&w, st, alias, n_alias, NULL, 0, ldm);
    return lf_wts_find(&w, "%s", probe) ? ldm : "";
}

static int lf_wts_alias_order(const void *a, const void *b) {
    return strcmp(((const lf_wts_alias *)a)->t.name, ((const lf_wts_alias *)b)->t.name);
}

void lf_wts_alias_sort(lf_wts_alias *alias, size_t n) {
    if (n > 1) qsort(alias, n, sizeof *alias, lf_wts_alias_order);
}

static const lf_wts_alias *lf_wts_alias_find(const lf_wts *w, const char *name) {
    if (!w->alias) return NULL;
    return bsearch(name, w->alias, w->n_alias, sizeof *w->alias, lf_wts_alias_cmp);
}

const lf_st_tensor *lf_wts_lookup(const lf_wts *w, const char *name) {
    if (w->alias) {
        const lf_wts_alias *a = lf_wts_alias_find(w, name);
        return a ? &a->t : NULL;
    }
    return w->st ? lf_st_find(w->st, name) : NULL;
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
    return lf_wts_lookup(w, name);
}

lf_status lf_wts_check_dtype(const char *file, const char *name, lf_dtype dt) {
    switch (dt) {
    case LF_F16: case LF_BF16: case LF_F32: case LF_F64: case LF_F8_E4M3: case LF_F8_E5M2: return LF_OK;
    default:
        return lf_err(LF_ERR_DTYPE, "%s: tensor \"%s\" has dtype %s: a model weight must be a float tensor "
                      "(F16, BF16, F32, F64, F8_E4M3, F8_E5M2); the file is damaged or not a checkpoint",
                      file, name, lf_dtype_name(dt));
    }
}

int64_t lf_wts_first_nonfinite(const float *x, int64_t n) {
    /* exponent bits all ones: Inf or NaN; an OR over blocks vectorises, the element is found after */
    const int64_t blk = 4096;
    for (int64_t i0 = 0; i0 < n; i0 += blk) {
        int64_t i1 = i0 + blk < n ? i0 + blk : n;
        uint32_t bad = 0;
        for (int64_t i = i0; i < i1; i++) {
            uint32_t u;
            memcpy(&u, &x[i], sizeof u);
            bad |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
        }
        if (!bad) continue;
        for (int64_t i = i0; i < i1; i++)
            if (!isfinite(x[i])) return i;
    }
    return n;
}

const char *lf_wts_nonfinite_name(float v) {
    return isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf";
}

/* The error of a non-finite value v at element i of an n-element tensor. */
static lf_status lf_wts_nonfinite_err(const char *file, const char *name, float v, int64_t i, int64_t n) {
    return lf_err(LF_ERR_NONFINITE, "%s: tensor \"%s\" holds a non-finite value (%s at element %lld of %lld): the "
                  "checkpoint is damaged", file, name, lf_wts_nonfinite_name(v), (long long)i, (long long)n);
}

lf_status lf_wts_check_finite(const char *file, const char *name, const float *x, int64_t n) {
    int64_t i = lf_wts_first_nonfinite(x, n);
    return i == n ? LF_OK : lf_wts_nonfinite_err(file, name, x[i], i, n);
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

void lf_wts_shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, n - o, "(");
    for (int i = 0; i < ndim && o < n; i++) {
        if (shape[i] < 0) o += (size_t)snprintf(buf + o, n - o, "%s*", i ? ", " : "");
        else o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    }
    if (o < n) snprintf(buf + o, n - o, "%s)", ndim == 1 ? "," : "");
}

int lf_wts_shape_eq(int na, const int64_t *a, int nb, const int64_t *b) {
    na = lf_wts_norm_ndim(na, a);
    nb = lf_wts_norm_ndim(nb, b);
    if (na != nb) return 0;
    for (int i = 0; i < na; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

lf_status lf_wts_add(lf_wts_entry **e, size_t *n, size_t *cap, const char *key, void *data, lf_dtype dt, int ndim,
                     const int64_t *shape, int owned) {
    if (lf_grow(e, cap, *n + 1)) return LF_ERR_NOMEM;
    lf_wts_entry *x = &(*e)[*n];
    memset(x, 0, sizeof *x);
    size_t kl = strlen(key);
    x->key = malloc(kl + 1);
    if (!x->key) return LF_ERR_NOMEM;
    memcpy(x->key, key, kl + 1);
    x->data = data;
    x->dtype = dt;
    x->ndim = ndim > 4 ? 4 : ndim;
    x->numel = 1;
    for (int i = 0; i < ndim; i++) x->numel *= shape[i];
    for (int i = 0; i < x->ndim; i++) x->shape[i] = shape[i];
    x->owned = owned;
    (*n)++;
    return LF_OK;
}

/* The checked tensor prefix + suffix (name already formatted) for a load, or NULL (w->status set). */
static const lf_st_tensor *lf_wts_checked(lf_wts *w, const char *name, int ndim, int64_t *shape,
                                          const lf_wts_alias **alias) {
    const char *file = w->label;
    const lf_wts_alias *al = lf_wts_alias_find(w, name);
    const lf_st_tensor *t = w->alias ? (al ? &al->t : NULL) : lf_wts_lookup(w, name);
    const char *shown = al && al->orig ? al->orig : name;
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
        lf_err(LF_ERR_SHAPE, "%s: tensor \"%s\" has shape %s, expected %s", file, shown, got, want);
        lf_wts_fail(w, LF_ERR_SHAPE);
        return NULL;
    }
    if (lf_wts_check_dtype(file, shown, t->dtype) != LF_OK) {
        lf_wts_fail(w, LF_ERR_DTYPE);
        return NULL;
    }
    for (int i = 0; i < en; i++) shape[i] = t->shape[i];
    for (int i = en; i < ndim; i++) shape[i] = 1;
    *alias = al;
    return t;
}

float *lf_wts_load(lf_wts *w, int ndim, int64_t *shape, const char *fmt, ...) {
    if (w->status != LF_OK) return NULL;
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    lf_wts_name(w, name, sizeof name, fmt, ap);
    va_end(ap);
    const char *file = w->label;
    const lf_wts_alias *al = NULL;
    const lf_st_tensor *t = lf_wts_checked(w, name, ndim, shape, &al);
    if (!t) return NULL;
    const char *shown = al && al->orig ? al->orig : name;
    lf_view v = lf_st_view(t);
    int64_t numel = lf_view_numel(&v);
    if (w->borrow == LF_WTS_SHAPES) { /* structure only: count it, hold nothing */
        static float placeholder[1];
        w->loaded++;
        w->floats += numel;
        return placeholder;
    }
    float *buf = NULL;
    int owned = 1;
    if (w->borrow && al && t->dtype == LF_F32) {
        buf = (float *)(uintptr_t)t->data; /* the caller's f32 memory, used in place */
        owned = 0;
    } else {
        buf = malloc((size_t)(numel > 0 ? numel : 1) * sizeof(float));
        if (!buf) {
            lf_err(LF_ERR_NOMEM, "%s: out of memory converting \"%s\" (%lld elements)", file, shown,
                   (long long)numel);
            lf_wts_fail(w, LF_ERR_NOMEM);
            return NULL;
        }
        lf_status st = lf_view_to_f32(&v, buf);
        if (st != LF_OK) {
            free(buf);
            lf_err(st, "%s: tensor \"%s\": dtype %s cannot be read as f32", file, shown, lf_dtype_name(t->dtype));
            lf_wts_fail(w, st);
            return NULL;
        }
    }
    if (w->map && !w->alias && owned) lf_drop_pages(t->data, (size_t)(t->end - t->begin));
    if (lf_wts_check_finite(file, shown, buf, numel) != LF_OK) {
        if (owned) free(buf);
        lf_wts_fail(w, LF_ERR_NONFINITE);
        return NULL;
    }
    if (lf_wts_add(&w->e, &w->n, &w->cap, name + strlen(w->prefix), buf, LF_F32, t->ndim, t->shape, owned) != LF_OK) {
        if (owned) free(buf);
        lf_err(LF_ERR_NOMEM, "%s: out of memory loading \"%s\"", file, shown);
        lf_wts_fail(w, LF_ERR_NOMEM);
        return NULL;
    }
    w->e[w->n - 1].borrowed = !owned;
    w->loaded++;
    w->floats += numel;
    if (owned) w->bytes += numel * 4;
    return buf;
}

/* F16, BF16 and F32 weights are held as stored; the operators convert them per call. */
static int lf_wts_kept_dtype(lf_dtype dt) { return dt == LF_F16 || dt == LF_BF16 || dt == LF_F32; }

lf_status lf_wts_check_finite_view(const char *file, const char *name, const lf_view *v) {
    int64_t n = lf_view_numel(v);
    if (v->dtype == LF_F32 && ((uintptr_t)v->data & 3u) == 0) return lf_wts_check_finite(file, name, v->data, n);
    enum { BLK = 16384 };
    float tmp[BLK];
    size_t eb = lf_dtype_bits(v->dtype) / 8;
    for (int64_t i0 = 0; i0 < n; i0 += BLK) {
        lf_view part = *v;
        part.ndim = 1;
        part.shape[0] = n - i0 < BLK ? n - i0 : BLK;
        part.data = (const unsigned char *)v->data + (size_t)i0 * eb;
        lf_status st = lf_view_to_f32(&part, tmp);
        if (st != LF_OK)
            return lf_err(st, "%s: tensor \"%s\": dtype %s cannot be read as f32", file, name, lf_dtype_name(v->dtype));
        int64_t j = lf_wts_first_nonfinite(tmp, part.shape[0]);
        if (j < part.shape[0]) return lf_wts_nonfinite_err(file, name, tmp[j], i0 + j, n);
    }
    return LF_OK;
}

int lf_wts_load_view(lf_wts *w, lf_view *out, int ndim, int64_t *shape, const char *fmt, ...) {
    memset(out, 0, sizeof *out);
    if (w->status != LF_OK) return 0;
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    lf_wts_name(w, name, sizeof name, fmt, ap);
    va_end(ap);
    const lf_wts_alias *al = NULL;
    const lf_st_tensor *t = lf_wts_checked(w, name, ndim, shape, &al);
    if (!t) return 0;
    const char *file = w->label, *shown = al && al->orig ? al->orig : name;
    lf_view v = lf_st_view(t);
    int64_t numel = lf_view_numel(&v);
    if (w->borrow == LF_WTS_SHAPES) { /* structure only: count it, hold nothing */
        static float placeholder[1];
        w->loaded++;
        w->floats += numel;
        *out = v;
        out->data = placeholder;
        return 1;
    }
    if (!lf_wts_kept_dtype(v.dtype) || (w->f32 && v.dtype != LF_F32)) { /* F64, F8 (or asked for): held as f32 */
        float *p = lf_wts_load(w, ndim, shape, "%s", name + strlen(w->prefix));
        if (!p) return 0;
        *out = v;
        out->data = p;
        out->dtype = LF_F32;
        w->e[w->n - 1].view = out;
        return 1;
    }
    lf_status st = lf_wts_check_finite_view(file, shown, &v);
    if (st != LF_OK) {
        lf_wts_fail(w, st);
        return 0;
    }
    size_t nb = (size_t)numel * lf_dtype_bits(v.dtype) / 8;
    void *buf = (void *)(uintptr_t)v.data;
    int in_place = (w->map && !w->alias) || (w->borrow && al && v.dtype == LF_F32);
    /* the check read every page: in the mapping they go back until the forward pass reads them, so the
     * load does not hold the whole file at once */
    if (in_place && w->map) lf_drop_pages(v.data, nb);
    if (!in_place) {
        if ((buf = malloc(nb ? nb : 1)) == NULL) {
            lf_err(LF_ERR_NOMEM, "%s: out of memory loading \"%s\" (%zu bytes)", file, shown, nb);
            lf_wts_fail(w, LF_ERR_NOMEM);
            return 0;
        }
        memcpy(buf, v.data, nb);
    }
    if (lf_wts_add(&w->e, &w->n, &w->cap, name + strlen(w->prefix), buf, v.dtype, t->ndim, t->shape, !in_place) !=
        LF_OK) {
        if (!in_place) free(buf);
        lf_err(LF_ERR_NOMEM, "%s: out of memory loading \"%s\"", file, shown);
        lf_wts_fail(w, LF_ERR_NOMEM);
        return 0;
    }
    lf_wts_entry *e = &w->e[w->n - 1];
    e->borrowed = in_place && !w->map; /* the caller's f32 views: not refreshable (as before) */
    e->mapped = in_place && w->map;
    e->view = out;
    *out = v;
    out->data = buf;
    w->loaded++;
    w->floats += numel;
    if (in_place) w->mapped_bytes += (int64_t)nb;
    else w->bytes += (int64_t)nb;
    return 1;
}

static int lf_wts_entry_cmp(const void *a, const void *b) {
    return strcmp(((const lf_wts_entry *)a)->key, ((const lf_wts_entry *)b)->key);
}

void lf_wts_sort(lf_wts_entry *e, size_t n) {
    if (n > 1) qsort(e, n, sizeof *e, lf_wts_entry_cmp);
}

void lf_wts_release(lf_wts *w, lf_wts_entry **e, size_t *n) {
    lf_wts_sort(w->e, w->n);
    *e = w->e;
    *n = w->n;
    w->e = NULL;
    w->n = w->cap = 0;
}

/* ---- watcher ---------------------------------------------------------------------------------- */

static lf_wts_watch_fn lf_wts_watcher;
static void *lf_wts_watcher_ctx;

void lf_wts_watch(lf_wts_watch_fn fn, void *ctx) {
    lf_wts_watcher = fn;
    lf_wts_watcher_ctx = ctx;
}

/* en's bytes are about to be rewritten, replaced or freed */
static void lf_wts_changing(const lf_wts_entry *en) {
    if (lf_wts_watcher && en->data)
        lf_wts_watcher(lf_wts_watcher_ctx, en->data, (size_t)en->numel * lf_dtype_bits(en->dtype) / 8);
}

void lf_wts_free_list(lf_wts_entry *e, size_t n) {
    for (size_t i = 0; i < n; i++) {
        lf_wts_changing(&e[i]);
        if (e[i].owned) free(e[i].data);
        free(e[i].key);
    }
    free(e);
}

void lf_wts_free(lf_wts *w) {
    lf_wts_free_list(w->e, w->n);
    w->e = NULL;
    w->n = w->cap = 0;
}

static int lf_wts_key_cmp(const void *k, const void *a) {
    return strcmp((const char *)k, ((const lf_wts_entry *)a)->key);
}

lf_wts_entry *lf_wts_get(lf_wts_entry *e, size_t n, const char *key) {
    return e && n ? bsearch(key, e, n, sizeof *e, lf_wts_key_cmp) : NULL;
}

static lf_status lf_wts_check_new(const lf_wts_entry *en, const lf_view *v, const char *label, const char *key) {
    if (en->borrowed)
        return lf_err(LF_ERR_ARG, "%s: weight \"%s\" is borrowed memory and cannot be refreshed", label, key);
    if (!lf_wts_shape_eq(en->ndim, en->shape, v->ndim, v->shape) || lf_view_numel(v) != en->numel) {
        char got[128], want[128];
        lf_wts_shape_str(v->ndim, v->shape, got, sizeof got);
        lf_wts_shape_str(en->ndim, en->shape, want, sizeof want);
        return lf_err(LF_ERR_SHAPE, "%s: new value of weight \"%s\" has shape %s, the model holds %s", label, key,
                      got, want);
    }
    if (!lf_dtype_readable(v->dtype))
        return lf_err(LF_ERR_DTYPE, "%s: weight \"%s\": dtype %s cannot be read as f32", label, key,
                      lf_dtype_name(v->dtype));
    return LF_OK;
}

/* The model's view follows its entry. */
static void lf_wts_sync_view(lf_wts_entry *en) {
    if (!en->view) return;
    en->view->data = en->data;
    en->view->dtype = en->dtype;
}

/* An f32 entry (lf_wts_load, clip_load.c's own buffers): v converted into it, transposed if so held. */
static lf_status lf_wts_refresh_f32(lf_wts_entry *en, const lf_view *v, const char *label, const char *key) {
    float *data = en->data;
    if (!en->transpose) {
        lf_status st = lf_view_to_f32(v, data);
        if (st != LF_OK) return lf_err(st, "%s: weight \"%s\": conversion to f32 failed", label, key);
        return LF_OK;
    }
    float *tmp = malloc((size_t)en->numel * sizeof *tmp);
    if (!tmp) return lf_err(LF_ERR_NOMEM, "%s: out of memory refreshing \"%s\"", label, key);
    lf_status st = lf_view_to_f32(v, tmp);
    if (st == LF_OK) {
        int64_t a = en->shape[0], b = en->shape[1];
        for (int64_t i = 0; i < a; i++)
            for (int64_t j = 0; j < b; j++) data[j * a + i] = tmp[i * b + j];
    } else {
        lf_err(st, "%s: weight \"%s\": conversion to f32 failed", label, key);
    }
    free(tmp);
    return st;
}

lf_status lf_wts_refresh(lf_wts_entry *en, const lf_view *v, const char *label, const char *key) {
    lf_status st = lf_wts_check_new(en, v, label, key);
    if (st != LF_OK) return st;
    lf_wts_changing(en);
    if (!en->view && en->dtype == LF_F32) return lf_wts_refresh_f32(en, v, label, key);
    if (!en->view) { /* rows of a fused buffer (clip_load.c's q/k/v): rewritten in place in its dtype */
        size_t nb = (size_t)en->numel * lf_dtype_bits(en->dtype) / 8;
        if (v->dtype == en->dtype) {
            memcpy(en->data, v->data, nb);
            return LF_OK;
        }
        float *tmp = malloc((size_t)en->numel * sizeof *tmp);
        if (!tmp) return lf_err(LF_ERR_NOMEM, "%s: out of memory refreshing \"%s\"", label, key);
        if ((st = lf_view_to_f32(v, tmp)) == LF_OK) st = lf_f32_to_dtype(tmp, en->numel, en->dtype, en->data);
        free(tmp);
        return st == LF_OK ? LF_OK : lf_err(st, "%s: weight \"%s\": conversion failed", label, key);
    }
    /* a stored-dtype weight takes v's dtype (f32 for dtypes the operators do not keep) */
    lf_dtype dt = lf_wts_kept_dtype(v->dtype) ? v->dtype : LF_F32;
    size_t nb = (size_t)en->numel * lf_dtype_bits(dt) / 8;
    if (!en->owned || en->dtype != dt) {
        void *buf = malloc(nb ? nb : 1);
        if (!buf) return lf_err(LF_ERR_NOMEM, "%s: out of memory refreshing \"%s\" (%zu bytes)", label, key, nb);
        if (en->owned) free(en->data);
        en->data = buf;
        en->owned = 1;
        en->mapped = en->bound = 0;
        en->dtype = dt;
    }
    if (dt == v->dtype) memcpy(en->data, v->data, nb);
    else if ((st = lf_view_to_f32(v, en->data)) != LF_OK)
        return lf_err(st, "%s: weight \"%s\": conversion to f32 failed", label, key);
    lf_wts_sync_view(en);
    return LF_OK;
}

lf_status lf_wts_bind(lf_wts_entry *en, const lf_view *v, int from_file, const char *label, const char *key) {
    if (!en->view || !lf_wts_kept_dtype(v->dtype)) return lf_wts_refresh(en, v, label, key);
    lf_status st = lf_wts_check_new(en, v, label, key);
    if (st != LF_OK) return st;
    lf_wts_changing(en);
    if (en->owned) free(en->data);
    en->data = (void *)(uintptr_t)v->data;
    en->owned = 0;
    en->mapped = from_file;
    en->bound = !from_file;
    en->dtype = v->dtype;
    lf_wts_sync_view(en);
    return LF_OK;
}

void lf_wts_list_bytes(const lf_wts_entry *e, size_t n, int64_t *owned, int64_t *in_place) {
    int64_t o = 0, p = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t b = e[i].numel * (int64_t)lf_dtype_bits(e[i].dtype) / 8;
        if (e[i].owned) o += b;
        else p += b;
    }
    if (owned) *owned = o;
    if (in_place) *in_place = p;
}

int64_t lf_wts_list_drop_pages(const lf_wts_entry *e, size_t n) {
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!e[i].mapped) continue;
        size_t len = (size_t)(e[i].numel * (int64_t)lf_dtype_bits(e[i].dtype) / 8);
        lf_drop_pages(e[i].data, len);
        total += (int64_t)len;
    }
    return total;
}

/* ---- layers ------------------------------------------------------------------------------------- */

void lf_wts_pathf(char *dst, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, n, fmt, ap);
    va_end(ap);
}

void lf_wts_load_lin(lf_wts *w, lf_wts_lin *l, const char *path, int64_t k, int64_t out, int64_t in, int bias) {
    int64_t sh[4] = {out, in, k, k};
    int ok = lf_wts_load_view(w, &l->w, k ? 4 : 2, sh, "%s.weight", path);
    l->out = sh[0];
    l->in = sh[1];
    l->k = k;
    l->b = NULL;
    if (!ok) return;
    if (bias == LF_WTS_BIAS || (bias == LF_WTS_BIAS_OPT && lf_wts_find(w, "%s.bias", path))) {
        int64_t bs[1] = {l->out};
        l->b = lf_wts_load(w, 1, bs, "%s.bias", path);
    }
}

void lf_wts_load_norm(lf_wts *w, lf_wts_norm *n, const char *path, int64_t C) {
    int64_t sh[1] = {C};
    n->g = lf_wts_load(w, 1, sh, "%s.weight", path);
    n->C = sh[0];
    n->b = lf_wts_load(w, 1, sh, "%s.bias", path);
}

lf_status lf_wts_list_own(lf_wts_entry *e, size_t n, const char *label) {
    for (size_t i = 0; i < n; i++) {
        if (!e[i].bound) continue;
        lf_view v; /* the bound bytes, read before refresh replaces e[i].data by its own copy */
        memset(&v, 0, sizeof v);
        v.data = e[i].data;
        v.dtype = e[i].dtype;
        v.ndim = e[i].ndim;
        memcpy(v.shape, e[i].shape, sizeof v.shape);
        lf_status st = lf_wts_refresh(&e[i], &v, label, e[i].key);
        if (st != LF_OK) return st;
    }
    return LF_OK;
}
