/* lf_test_rng.h: the one seeded random source of the tests and the benches. It needs only the C library,
 * so the benches include it by its path from the repository root ("tests/common/lf_test_rng.h")
 * without the fixture helpers of lf_test_data.h (which includes this header).
 *
 * lf_test_rng          xorshift64 stream (shifts 13, 7, 17): lf_test_rng_seed, lf_test_rng_next (64 bits);
 *                      LF_TEST_RNG_SEED is the seed of every fixed-seed stream
 *   lf_test_rng_uniform  U[lo, hi): u from the top 53 bits, then lo + (hi - lo) * u in float
 *   lf_test_rng_signed   U[-1, 1): 2u - 1 exact in double, rounded once to float
 *   lf_test_rng_weight   one weight of a random network (the benches' UNets), by name and shape
 * lf_test_rng32_next   xorshift32 (shifts 13, 17, 5) on a uint32_t state: the random f32 bit patterns of
 *                      the f16 / bf16 rounding tests
 * lf_test_splitmix64   one step of a splitmix64 stream (a counter through lf_test_mix64: every seed is good)
 * lf_test_fnv1a        FNV-1a (64-bit) of bytes
 * lf_test_seed_mix     a seed per named case: lf_test_mix64(seed ^ FNV-1a(name))
 *
 * The variants all stay because data already depend on each bit for bit: lf_test_rng_uniform feeds
 * the adapter-case registry (tests/common/adapter_cases.c, goldens and the device comparison),
 * lf_test_rng_signed the operator tests and the benches (the UNet checksum that bench/RESULTS.md
 * quotes), lf_test_rng32_next the rounding tests (test_half_nvcc counts one check per value it draws
 * that passes a filter, so other values would change its count).
 */
#ifndef LF_TEST_RNG_H
#define LF_TEST_RNG_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define LF_TEST_RNG_SEED 0x9E3779B97F4A7C15ull

typedef struct {
    uint64_t s;
} lf_test_rng;

/* xorshift64 has a fixed point at 0, so seed 0 is replaced. */
static inline void lf_test_rng_seed(lf_test_rng *r, uint64_t seed) { r->s = seed ? seed : LF_TEST_RNG_SEED; }

static inline uint64_t lf_test_rng_next(lf_test_rng *r) {
    uint64_t x = r->s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return r->s = x;
}

static inline uint32_t lf_test_rng32_next(uint32_t *s) {
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* The top 53 bits as a double in [0, 1). */
static inline double lf_test_rng_unit(lf_test_rng *r) {
    return (double)(lf_test_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static inline float lf_test_rng_uniform(lf_test_rng *r, float lo, float hi) {
    return lo + (hi - lo) * (float)lf_test_rng_unit(r);
}

static inline float lf_test_rng_signed(lf_test_rng *r) { return (float)(lf_test_rng_unit(r) * 2.0 - 1.0); }

/* 1 for a norm's gamma (a 1-D "*.weight"; draws nothing), 0.02 U[-1, 1) for the other 1-D tensors
 * (biases, betas), U[-1, 1) / sqrt(fan_in) for the rest (fan_in = numel / shape[0]). */
static inline void lf_test_rng_weight(lf_test_rng *r, float *p, const char *name, int ndim, const int64_t *shape) {
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) numel *= shape[d];
    size_t nl = strlen(name);
    if (ndim == 1) {
        int gamma = nl > 7 && !strcmp(name + nl - 7, ".weight");
        for (int64_t k = 0; k < numel; k++) p[k] = gamma ? 1.0f : 0.02f * lf_test_rng_signed(r);
    } else {
        float sc = 1.0f / sqrtf((float)(numel / shape[0]));
        for (int64_t k = 0; k < numel; k++) p[k] = sc * lf_test_rng_signed(r);
    }
}

/* splitmix64's output function (Stafford's variant 13). */
static inline uint64_t lf_test_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t lf_test_splitmix64(uint64_t *s) { return lf_test_mix64(*s += LF_TEST_RNG_SEED); }

static inline uint64_t lf_test_fnv1a(const void *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211ull;
    return h;
}

/* A case's data depends only on the run seed and its own name, not on which cases ran before it. */
static inline uint64_t lf_test_seed_mix(uint64_t seed, const char *name) {
    return lf_test_mix64(seed ^ lf_test_fnv1a(name, strlen(name)));
}

#endif
