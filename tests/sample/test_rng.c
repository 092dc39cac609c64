/* test_rng.c: lf_rng against torch's CPU generator and A1111's NV (Philox) source, bitwise.
 *
 * Golden (scripts/golden/model_sampler.py): tests/data/sampler/rng.safetensors
 *   torch.s<SEED>.c<K>: the K-th successive torch.randn(n_K) on torch.Generator().manual_seed(SEED)
 *   (torch 1.13 CPU, x86 AVX2 kernel); the call sizes cover n < 16 (double Box-Muller with the cached
 *   second value), n = 16, n % 16 != 0 (last 16 redrawn) and a (1, 4, 64, 64) latent;
 *   nv.s<SEED>.c<K>: the K-th call of the NV generator (numpy Philox4x32-10 transcription).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_test.h"
#include "lorafuse/lf_rng.h"
#include "lorafuse/lf_safetensors.h"

#define GOLD "tests/data/sampler/rng.safetensors"

static int parse_list(const char *s, unsigned long long *v, int max) {
    int n = 0;
    while (s && *s && n < max) {
        char *end;
        v[n++] = strtoull(s, &end, 10);
        s = *end == ',' ? end + 1 : NULL;
    }
    return n;
}

/* number of elements that differ bitwise */
static size_t bit_diff(const float *got, const unsigned char *want, size_t n, size_t *first) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (memcmp(got + i, want + 4 * i, 4) != 0) {
            if (!bad) *first = i;
            bad++;
        }
    }
    return bad;
}

static void run_stream(const lf_st_file *g, lf_rng_kind kind, const char *prefix, unsigned long long seed,
                       const unsigned long long *calls, int n_calls) {
    lf_rng r;
    LF_CHECK(lf_rng_init(&r, kind, (int64_t)seed) == LF_OK, "init");
    for (int k = 0; k < n_calls; k++) {
        char name[96];
        snprintf(name, sizeof name, "%s.s%llu.c%d", prefix, seed, k);
        const lf_st_tensor *t = lf_st_find(g, name);
        LF_CHECK(t && t->dtype == LF_F32 && t->ndim == 1 && (unsigned long long)t->shape[0] == calls[k],
                 "golden %s missing or wrong shape", name);
        if (!t) return;
        size_t n = (size_t)calls[k];
        float *out = malloc(n * sizeof *out);
        lf_rng_randn(&r, out, n);
        size_t first = 0, bad = bit_diff(out, t->data, n, &first);
        if (bad) {
            float w;
            memcpy(&w, t->data + 4 * first, 4);
            LF_CHECK(bad == 0, "%s (n=%zu): %zu values differ, first [%zu] %.9g vs torch %.9g", name, n, bad,
                     first, out[first], w);
        } else {
            LF_CHECK(1, "ok");
        }
        free(out);
    }
}

static void check_api(void) {
    lf_rng a, b;
    LF_CHECK(lf_rng_init(&a, LF_RNG_TORCH_CPU, -1) == LF_OK, "seed -1");
    LF_CHECK(a.seed >= 0 && a.seed < 4294967294LL, "random seed %lld out of A1111's range", (long long)a.seed);
    /* the recorded seed reproduces the stream */
    LF_CHECK(lf_rng_init(&b, LF_RNG_TORCH_CPU, a.seed) == LF_OK, "reseed");
    float x[40], y[40];
    lf_rng_randn(&a, x, 40);
    lf_rng_randn(&b, y, 40);
    LF_CHECK(!memcmp(x, y, sizeof x), "seed -1 then its recorded seed give the same numbers");
    LF_CHECK(lf_rng_init(&a, (lf_rng_kind)7, 1) == LF_ERR_ARG, "bad kind rejected");
    lf_rng_kind k;
    LF_CHECK(lf_rng_kind_parse("NV", &k) == LF_OK && k == LF_RNG_NV, "parse nv");
    LF_CHECK(lf_rng_kind_parse("cpu", &k) == LF_OK && k == LF_RNG_TORCH_CPU, "parse cpu");
    LF_CHECK(lf_rng_kind_parse("gpu", &k) == LF_OK && k == LF_RNG_NV, "parse gpu");
    LF_CHECK(lf_rng_kind_parse("mt", &k) == LF_ERR_ARG, "unknown source rejected");
    LF_CHECK(!strcmp(lf_rng_kind_name(LF_RNG_NV), "nv"), "name");
    /* torch: seeds are taken modulo 2^64, only the low 32 bits seed the mt19937 */
    LF_CHECK(lf_rng_init(&a, LF_RNG_TORCH_CPU, 7) == LF_OK && lf_rng_init(&b, LF_RNG_TORCH_CPU, (1LL << 40) + 7) == LF_OK,
             "init");
    lf_rng_randn(&a, x, 3);
    lf_rng_randn(&b, y, 3);
    LF_CHECK(!memcmp(x, y, 3 * sizeof *x), "torch uses the low 32 bits of the seed");
    /* NV: the same call sequence is the same numbers, a different offset differs */
    LF_CHECK(lf_rng_init(&a, LF_RNG_NV, 5) == LF_OK, "init nv");
    lf_rng_randn(&a, x, 40);
    lf_rng_randn(&a, y, 40);
    LF_CHECK(memcmp(x, y, sizeof x) != 0, "NV offset moves per call");
}

int main(void) {
    lf_st_file *g = NULL;
    if (lf_st_open(GOLD, &g) != LF_OK) {
        fprintf(stderr, "%s\n", lf_last_error());
        LF_CHECK(0, "cannot open %s", GOLD);
        return lf_test_finish();
    }
    unsigned long long seeds[16], calls[32], calls42[32];
    int ns = parse_list(lf_st_meta(g, "torch_seeds"), seeds, 16);
    int nc = parse_list(lf_st_meta(g, "torch_calls"), calls, 32);
    int nc42 = parse_list(lf_st_meta(g, "torch_calls_42"), calls42, 32);
    LF_CHECK(ns >= 5 && nc >= 10 && nc42 >= 10, "golden metadata");
    for (int i = 0; i < ns; i++)
        if (seeds[i] == 42)
            run_stream(g, LF_RNG_TORCH_CPU, "torch", seeds[i], calls42, nc42);
        else
            run_stream(g, LF_RNG_TORCH_CPU, "torch", seeds[i], calls, nc);
    ns = parse_list(lf_st_meta(g, "nv_seeds"), seeds, 16);
    nc = parse_list(lf_st_meta(g, "nv_calls"), calls, 32);
    nc42 = parse_list(lf_st_meta(g, "nv_calls_42"), calls42, 32);
    LF_CHECK(ns >= 4 && nc >= 3 && nc42 >= 4, "golden metadata (nv)");
    for (int i = 0; i < ns; i++)
        if (seeds[i] == 42)
            run_stream(g, LF_RNG_NV, "nv", seeds[i], calls42, nc42);
        else
            run_stream(g, LF_RNG_NV, "nv", seeds[i], calls, nc);
    lf_st_close(g);
    check_api();
    return lf_test_finish();
}
