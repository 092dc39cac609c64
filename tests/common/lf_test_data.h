/* lf_test_data.h: helpers the C tests share for fixtures, files and comparisons (next to lf_test.h).
 *
 * lf_test_tensor_f32  a fixture tensor as a malloc'd f32 array (exits naming the tensor if missing)
 * lf_test_rel_l2      ||a - b|| / ||b|| in double; Inf when `a` holds a non-finite value;
 *                     lf_test_rel_l2_f64 the same against a double reference
 * lf_test_view        an lf_view over a local array, up to 4 dims (unused trailing dims 0);
 *                     lf_test_view_n the same from a shape array
 * lf_test_set_role    put a view into a module as one of its roles (tests build lf_module by hand)
 * lf_test_ulp16       distance in units in the last place of two f16 (or two bf16) bit patterns
 * lf_test_rng ...     the seeded random source (lf_test_rng.h, included here)
 * lf_test_tmpdir      a fresh directory $TMPDIR/lf_<tag>_XXXXXX (mkdtemp); lf_test_rmtree removes it
 *                     and everything under it
 * lf_test_path        "dir/name" in one of 64 rotating static buffers
 * lf_test_write_file  bytes to a file (lf_test_write_text: a string); lf_test_count_files counts the
 *                     entries of a directory
 * lf_test_st_copy     a safetensors file rewritten with edits (subset, renames, a dropped, reshaped or
 *                     shrunk tensor, another dtype, metadata): the broken and variant models of the tests
 * lf_test_tmp_files   how many "*.tmp.*" (unfinished output) files a directory holds, optionally removing them
 */
#ifndef LF_TEST_DATA_H
#define LF_TEST_DATA_H

#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lorafuse/lf_adapter.h"
#include "lorafuse/lf_safetensors.h"
#include "lf_test_rng.h"

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

/* The reference is read from bf (f32) or, when bf is NULL, from bd (double). */
static inline double lf_test_rel_l2_of(const float *a, const float *bf, const double *bd, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        double b = bf ? (double)bf[i] : bd[i];
        double d = (double)a[i] - b;
        num += d * d;
        den += b * b;
    }
    return sqrt(num / (den > 0 ? den : 1e-300));
}

static inline double lf_test_rel_l2(const float *a, const float *b, int64_t n) {
    return lf_test_rel_l2_of(a, b, NULL, n);
}

static inline double lf_test_rel_l2_f64(const float *a, const double *b, int64_t n) {
    return lf_test_rel_l2_of(a, NULL, b, n);
}

static inline lf_view lf_test_view_n(const void *data, lf_dtype dt, int ndim, const int64_t *shape) {
    lf_view v;
    memset(&v, 0, sizeof v);
    v.data = data;
    v.dtype = dt;
    v.ndim = ndim;
    for (int i = 0; i < ndim; i++) v.shape[i] = shape[i];
    return v;
}

static inline lf_view lf_test_view(const void *data, lf_dtype dt, int ndim, int64_t s0, int64_t s1, int64_t s2,
                                   int64_t s3) {
    lf_view v = lf_test_view_n(data, dt, 0, NULL);
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

/* Sign-magnitude bits mapped to a monotone integer line, so adjacent values differ by 1 and +0 / -0
 * coincide; the same mapping serves f16 and bf16. */
static inline int32_t lf_test_ulp16(uint16_t a, uint16_t b) {
    int32_t x = (a & 0x8000) ? -(int32_t)(a & 0x7fff) : (int32_t)a;
    int32_t y = (b & 0x8000) ? -(int32_t)(b & 0x7fff) : (int32_t)b;
    return x > y ? x - y : y - x;
}

/* ---- temporary directories and files ------------------------------------------------------------ */

/* dir (at least 64 bytes) receives the new directory's path; returns 0, or -1 (errno set). */
static inline int lf_test_tmpdir(char *dir, size_t size, const char *tag) {
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    if (snprintf(dir, size, "%s/lf_%s_XXXXXX", base, tag) >= (int)size) return -1;
    return mkdtemp(dir) ? 0 : -1;
}

static inline int lf_test_rmtree_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Remove a directory made by lf_test_tmpdir and everything under it, subdirectories included (links
 * are removed, not followed). */
static inline int lf_test_rmtree(const char *dir) { return nftw(dir, lf_test_rmtree_one, 16, FTW_DEPTH | FTW_PHYS); }

/* dir/name; the result stays valid for the next 63 calls. */
static inline const char *lf_test_path(const char *dir, const char *name) {
    static char buf[64][1024];
    static int k;
    k = (k + 1) & 63;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* 0, or -1 when the file cannot be written completely. */
static inline int lf_test_write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t k = fwrite(p, 1, n, f);
    return (fclose(f) == 0 && k == n) ? 0 : -1;
}

static inline int lf_test_write_text(const char *path, const char *text) {
    return lf_test_write_file(path, text, strlen(text));
}

/* The entries of dir whose names contain `part` ("": all), hidden ones (leading '.') not counted;
 * -1 when dir cannot be read. */
static inline int lf_test_count_files(const char *dir, const char *part) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int k = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) k += e->d_name[0] != '.' && strstr(e->d_name, part) != NULL;
    closedir(d);
    return k;
}

/* The number of "*.tmp.*" entries in dir (temporary outputs left behind), -1 if dir cannot be read;
 * with remove, they are deleted too, so that the next case is judged on its own. */
static inline int lf_test_tmp_files(const char *dir, int remove_them) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int k = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".tmp.")) {
            k++;
            if (remove_them) unlink(lf_test_path(dir, e->d_name));
        }
    closedir(d);
    return k;
}

/* ---- edited copies of safetensors files --------------------------------------------------------- */

/* What lf_test_st_copy changes; zero-initialise and set what a case needs. Tensor names in drop,
 * reshape and shrink are the names as written (after strip). */
typedef struct lf_test_st_edit {
    const char *prefix;      /* copy only the tensors whose names start with it (NULL: all) */
    int strip;               /* write their names without the prefix */
    const char *skip_prefix; /* leave out the tensors whose names start with it */
    const char *drop;        /* leave out this tensor */
    const char *reshape;     /* this tensor's shape (a, b, ...) becomes (a/2, 2b, ...): the same bytes */
    const char *shrink;      /* this tensor keeps its first 16 rows */
    lf_dtype dtype;          /* every tensor converted to it (LF_DTYPE_INVALID: kept) */
    const char *dtype_only;  /* only this tensor converted to dtype (NULL: every tensor) */
    int copy_meta;           /* the source's metadata first */
    const char *const *meta; /* then these key, value pairs, up to a NULL key */
} lf_test_st_edit;

/* 1 when dst was written. */
static inline int lf_test_st_copy(const char *src, const char *dst, const lf_test_st_edit *e) {
    lf_st_file *f = NULL;
    lf_st_writer *w = NULL;
    if (lf_st_open(src, &f) != LF_OK) return 0;
    size_t nt = lf_st_count(f), pl = e->prefix ? strlen(e->prefix) : 0;
    void **conv = calloc(nt ? nt : 1, sizeof *conv); /* the writer borrows data until commit */
    int ok = conv && lf_st_writer_new(&w) == LF_OK;
    for (size_t i = 0; ok && e->copy_meta && i < lf_st_meta_count(f); i++)
        ok = lf_st_writer_meta(w, lf_st_meta_at(f, i)->key, lf_st_meta_at(f, i)->value) == LF_OK;
    for (size_t i = 0; ok && e->meta && e->meta[i]; i += 2) ok = lf_st_writer_meta(w, e->meta[i], e->meta[i + 1]) == LF_OK;
    for (size_t i = 0; ok && i < nt; i++) {
        const lf_st_tensor *t = lf_st_at(f, i);
        if (pl && strncmp(t->name, e->prefix, pl) != 0) continue;
        if (e->skip_prefix && strncmp(t->name, e->skip_prefix, strlen(e->skip_prefix)) == 0) continue;
        const char *name = e->strip ? t->name + pl : t->name;
        if (e->drop && !strcmp(name, e->drop)) continue;
        int64_t shape[LF_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        const void *data = t->data;
        size_t bytes = (size_t)(t->end - t->begin);
        lf_dtype dt = t->dtype;
        if (e->reshape && !strcmp(name, e->reshape)) shape[0] /= 2, shape[1] *= 2;
        if (e->shrink && !strcmp(name, e->shrink)) {
            bytes = bytes / (size_t)shape[0] * 16;
            shape[0] = 16;
        }
        if (e->dtype != LF_DTYPE_INVALID && e->dtype != t->dtype && (!e->dtype_only || !strcmp(name, e->dtype_only))) {
            lf_view v = lf_st_view(t);
            int64_t n = lf_view_numel(&v);
            float *tmp = malloc((size_t)(n ? n : 1) * sizeof(float));
            bytes = (size_t)n * (size_t)lf_dtype_bits(e->dtype) / 8;
            conv[i] = malloc(bytes ? bytes : 1);
            ok = tmp && conv[i] && lf_view_to_f32(&v, tmp) == LF_OK && lf_f32_to_dtype(tmp, n, e->dtype, conv[i]) == LF_OK;
            free(tmp);
            data = conv[i];
            dt = e->dtype;
        }
        ok = ok && lf_st_writer_add(w, name, dt, t->ndim, shape, data, bytes) == LF_OK;
    }
    ok = ok && lf_st_writer_commit(w, dst) == LF_OK;
    lf_st_writer_free(w);
    for (size_t i = 0; conv && i < nt; i++) free(conv[i]);
    free(conv);
    lf_st_close(f);
    return ok;
}

#endif
