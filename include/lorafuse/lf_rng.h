/* lf_rng.h: the random sources of sampling, reimplemented so that a seed gives the same numbers as
 * the ecosystem (docs/samplers.md).
 *
 *   LF_RNG_TORCH_CPU  torch's CPU generator: torch.Generator("cpu").manual_seed(seed), then
 *                     torch.randn(n, generator=g, dtype=float32). mt19937 seeded with the low 32 bits
 *                     of the seed; one lf_rng_randn(n) call is one torch.randn call of n elements,
 *                     including torch's two paths (n >= 16: uniforms, then Box-Muller in blocks of 16
 *                     with the last 16 redrawn when n % 16 != 0, as the x86 AVX2 kernel computes it;
 *                     n < 16: one double Box-Muller pair per two values, the second value of a pair
 *                     cached in the generator for the next draw). diffusers' initial latent and the
 *                     ancestral / SDE noise with a CPU generator come from here.
 *   LF_RNG_NV         A1111's "NV" source (modules/rng_philox.py): Philox4x32-10, key = the 64-bit seed,
 *                     counter = (offset, 0, i, 0) for element i, offset + 1 per randn call, Box-Muller on
 *                     the first two output words (sin branch only). Pure integer + libm double math:
 *                     the same on every backend.
 *
 * The state is a plain struct (no allocation): copy it to fork a stream. Not thread-safe per object.
 */
#ifndef LF_RNG_H
#define LF_RNG_H

#include <stddef.h>
#include <stdint.h>

#include "lorafuse/lf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lf_rng_kind {
    LF_RNG_TORCH_CPU = 0,   /* torch.Generator("cpu") + torch.randn(float32) */
    LF_RNG_NV = 1           /* A1111 --randn-source NV (Philox4x32-10) */
} lf_rng_kind;

#define LF_RNG_MT_N 624

typedef struct lf_rng {
    lf_rng_kind kind;
    int64_t seed;                       /* the seed in use (the random one when -1 was asked) */
    /* LF_RNG_TORCH_CPU: mt19937 and torch's cached second Box-Muller value */
    uint32_t mt[LF_RNG_MT_N];
    int mt_index;
    int has_next_normal;
    double next_normal;
    /* LF_RNG_NV */
    uint64_t nv_offset;                 /* randn calls so far */
} lf_rng;

/* Seed a generator. seed -1 picks a random seed in [0, 2^32 - 3] (A1111's random.randrange(4294967294))
 * and stores it in rng->seed so that it can be recorded; other negative seeds are taken modulo 2^64 like torch's
 * manual_seed. LF_ERR_ARG for an unknown kind. */
lf_status lf_rng_init(lf_rng *rng, lf_rng_kind kind, int64_t seed);

/* n standard normal float32 values, with exactly the semantics of one torch.randn(n) call (TORCH_CPU)
 * or one rng_philox.Generator.randn(shape with n elements) call (NV); the state moves on as theirs does.
 * A tensor of shape (B, C, H, W) is one call of B*C*H*W values in C order. */
void lf_rng_randn(lf_rng *rng, float *out, size_t n);

/* Raw 32-bit output of the mt19937 (TORCH_CPU only; what torch's generator.random() returns). */
uint32_t lf_rng_u32(lf_rng *rng);

/* "cpu" / "nv" <-> kind (also accepts "torch", "philox", "gpu" as A1111 calls the sources). */
lf_status lf_rng_kind_parse(const char *name, lf_rng_kind *out);
const char *lf_rng_kind_name(lf_rng_kind kind);

#ifdef __cplusplus
}
#endif
#endif
