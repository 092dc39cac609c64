/* lf_test_data.h: helpers the C tests share for fixtures and comparisons (next to lf_test.h).
 *
 * lf_test_tensor_f32  a fixture tensor as a malloc'd f32 array (exits naming the tensor if missing)
 * lf_test_rel_l2      ||a - b|| / ||b|| in double; Inf when `a` holds a non-finite value
 * lf_test_view        an lf_view over a local array, up to 4 dims (unused trailing dims 0)
 * lf_test_set_role    put a view into a module as one of its roles (tests build lf_module by hand)
 * lf_test_ulp16       distance in units in the last place of two f16 (or two bf16) bit patterns
 * lf_test_rng         seeded xorshift64 stream: lf_test_rng_next (64 bits), lf_test_rng_uniform
 *                     (U[lo, hi) from the top 53 bits), lf_test_seed_mix (a seed per named case)
 * lf_test_tmpdir      a fresh directory $TMPDIR/lf_<tag>_XXXXXX (mkdtemp); lf_test_rmtree removes it
 * lf_test_path        DIR/NAME in one of 64 rotating static buffers
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

/* Sign-magnitude bits mapped to a monotone integer line, so adjacent values differ by 1 and +0 / -0
 * coincide; the same mapping serves f16 and bf16. */
static inline int32_t lf_test_ulp16(uint16_t a, uint16_t b) {
    int32_t x = (a & 0x8000) ? -(int32_t)(a & 0x7fff) : (int32_t)a;
    int32_t y = (b & 0x8000) ? -(int32_t)(b & 0x7fff) : (int32_t)b;
    return x > y ? x - y : y - x;
}

typedef struct {
    uint64_t s;
} lf_test_rng;

/* xorshift64 has a fixed point at 0, so seed 0 is replaced. */
static inline void lf_test_rng_seed(lf_test_rng *r, uint64_t seed) { r->s = seed ? seed : 0x9E3779B97F4A7C15ull; }

static inline uint64_t lf_test_rng_next(lf_test_rng *r) {
    uint64_t x = r->s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return r->s = x;
}

static inline float lf_test_rng_uniform(lf_test_rng *r, float lo, float hi) {
    return lo + (hi - lo) * (float)((double)(lf_test_rng_next(r) >> 11) * (1.0 / 9007199254740992.0));
}

/* A seed for one named case of a run (FNV-1a of the name, mixed with the run's seed by splitmix64):
 * a case's data depends only on the run seed and its own name, not on which cases ran before it. */
static inline uint64_t lf_test_seed_mix(uint64_t seed, const char *name) {
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) h = (h ^ *p) * 1099511628211ull;
    uint64_t z = seed ^ h;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

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

/* Remove a directory made by lf_test_tmpdir and everything under it (links are not followed). */
static inline int lf_test_rmtree(const char *dir) { return nftw(dir, lf_test_rmtree_one, 16, FTW_DEPTH | FTW_PHYS); }

/* dir/name; the result stays valid for the next 63 calls. */
static inline const char *lf_test_path(const char *dir, const char *name) {
    static char buf[64][512];
    static int k;
    k = (k + 1) & 63;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
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

#endif
