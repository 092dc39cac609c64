/* rng.c: torch's CPU normal generator and A1111's "NV" Philox source (see lf_rng.h).
 *
 * TORCH_CPU, reimplemented from the behaviour of torch's CPUGeneratorImpl + normal kernel:
 *   - mt19937 (the standard generator), state[0] = seed & 0xffffffff, state[i] = 1812433253 *
 *     (state[i-1] ^ (state[i-1] >> 30)) + i.
 *   - float uniform in [0, 1): (u32 & (2^24 - 1)) * 2^-24; double uniform: ((hi << 32 | lo) &
 *     (2^53 - 1)) * 2^-53 with hi drawn first.
 *   - n >= 16 (float32, contiguous): fill all n with float uniforms, then transform every block of 16
 *     in place: u1 = 1 - d[j], u2 = d[j + 8], r = sqrt(-2 log u1), th = 2pi u2, d[j] = r cos th,
 *     d[j + 8] = r sin th (j = 0..7). When n % 16 != 0 the last 16 slots are refilled with 16 fresh
 *     uniforms and transformed again. On x86 torch runs this with the AVX2 kernel, whose log / sincos
 *     are the Cephes single-precision polynomials (argument reduction by 4/pi with a three-part pi/4,
 *     degree-8 log polynomial on the mantissa reduced around sqrt(1/2)), compiled with FMA
 *     contraction; the scalar transcription below evaluates the same operations with fmaf where the
 *     compiled kernel fuses, which reproduces torch bitwise (tests/sample/test_rng.c).
 *   - n < 16: each value is one double normal: the cached second value of the last pair if there is
 *     one, else u1, u2 double uniforms, r = sqrt(-2 log(1 - u2)), th = 2pi u1, cache r sin th,
 *     return r cos th; rounded to float. manual_seed clears the cache.
 * NV: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"), multipliers
 *   0xD2511F53 / 0xCD9E8D57, Weyl key increments 0x9E3779B9 / 0xBB67AE85; A1111's layout: key =
 *   (seed low, seed high), counter = (offset, 0, i, 0); Box-Muller in double on the first two words
 *   with u = x * 2^-32 + 2^-33 (the constants as float32, as numpy evaluates them) and only the sine
 *   branch, rounded to float32.
 */
#include "lorafuse/lf_rng.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "kernels/common/lf_half.h"

/* ---- mt19937 --------------------------------------------------------------------------------- */

static void mt_seed(lf_rng *r, uint32_t s) {
    r->mt[0] = s;
    for (int i = 1; i < LF_RNG_MT_N; i++)
        r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
    r->mt_index = LF_RNG_MT_N;
}

static void mt_twist(lf_rng *r) {
    uint32_t *m = r->mt;
    for (int k = 0; k < LF_RNG_MT_N; k++) {
        uint32_t y = (m[k] & 0x80000000u) | (m[(k + 1) % LF_RNG_MT_N] & 0x7fffffffu);
        m[k] = m[(k + 397) % LF_RNG_MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    r->mt_index = 0;
}

uint32_t lf_rng_u32(lf_rng *r) {
    if (r->mt_index >= LF_RNG_MT_N) mt_twist(r);
    uint32_t y = r->mt[r->mt_index++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

static float uniform_f32(lf_rng *r) {
    return (float)(lf_rng_u32(r) & 0xffffffu) * (1.0f / 16777216.0f);
}

static double uniform_f64(lf_rng *r) {
    uint64_t hi = lf_rng_u32(r);
    uint64_t lo = lf_rng_u32(r);
    uint64_t v = ((hi << 32) | lo) & ((UINT64_C(1) << 53) - 1);
    return (double)v * (1.0 / 9007199254740992.0);
}

/* ---- the vectorised kernel's float log and sincos, scalar ------------------------------------- */

/* natural log for x > 0 (x in (0, 1] here) */
static float cephes_logf(float x) {
    const float min_norm = lf_bits_to_f32(0x00800000u);
    if (x < min_norm) x = min_norm;
    int32_t ex = (int32_t)(lf_f32_to_bits(x) >> 23) - 0x7f;
    x = lf_bits_to_f32((lf_f32_to_bits(x) & ~0x7f800000u) | lf_f32_to_bits(0.5f)); /* mantissa in [0.5, 1) */
    float e = (float)ex + 1.0f;
    int below = x < 0.707106781186547524f;
    float t = below ? x : 0.0f;
    x = x - 1.0f;
    e = e - (below ? 1.0f : 0.0f);
    x = x + t;
    float z = x * x;
    float y = 7.0376836292E-2f;
    y = fmaf(y, x, -1.1514610310E-1f);
    y = fmaf(y, x, 1.1676998740E-1f);
    y = fmaf(y, x, -1.2420140846E-1f);
    y = fmaf(y, x, 1.4249322787E-1f);
    y = fmaf(y, x, -1.6668057665E-1f);
    y = fmaf(y, x, 2.0000714765E-1f);
    y = fmaf(y, x, -2.4999993993E-1f);
    y = fmaf(y, x, 3.3333331174E-1f);
    y = y * x;
    y = fmaf(y, z, e * -2.12194440e-4f);
    y = fmaf(-z, 0.5f, y);
    x = x + y;
    return fmaf(e, 0.693359375f, x);
}

static void cephes_sincosf(float x, float *s, float *c) {
    uint32_t sign_sin = lf_f32_to_bits(x) & 0x80000000u;
    x = fabsf(x);
    int32_t j = (int32_t)(x * 1.27323954473516f); /* 4 / pi, truncated */
    j = (j + 1) & ~1;
    float y = (float)j;
    uint32_t swap_sin = (uint32_t)(j & 4) << 29;
    int sin_poly_first = (j & 2) == 0;
    x = fmaf(y, -0.78515625f, x);
    x = fmaf(y, -2.4187564849853515625e-4f, x);
    x = fmaf(y, -3.77489497744594108e-8f, x);
    uint32_t sign_cos = (uint32_t)(~(j - 2) & 4) << 29;
    sign_sin ^= swap_sin;
    float z = x * x;
    float yc = 2.443315711809948E-005f;
    yc = fmaf(yc, z, -1.388731625493765E-003f);
    yc = fmaf(yc, z, 4.166664568298827E-002f);
    yc = yc * z;
    yc = fmaf(yc, z, -(z * 0.5f));
    yc = yc + 1.0f;
    float ys = -1.9515295891E-4f;
    ys = fmaf(ys, z, 8.3321608736E-3f);
    ys = fmaf(ys, z, -1.6666654611E-1f);
    ys = ys * z;
    ys = fmaf(ys, x, x);
    float vs = sin_poly_first ? ys : yc, vc = sin_poly_first ? yc : ys;
    *s = lf_bits_to_f32(lf_f32_to_bits(vs) ^ sign_sin);
    *c = lf_bits_to_f32(lf_f32_to_bits(vc) ^ sign_cos);
}

static void normal_fill_16(float *d) {
    const float two_pi = (float)(2.0 * 3.14159265358979323846);
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j], u2 = d[j + 8];
        float radius = sqrtf(-2.0f * cephes_logf(u1));
        float s, c;
        cephes_sincosf(two_pi * u2, &s, &c);
        d[j] = radius * c;
        d[j + 8] = radius * s;
    }
}

static void torch_randn(lf_rng *r, float *out, size_t n) {
    if (n >= 16) {
        for (size_t i = 0; i < n; i++) out[i] = uniform_f32(r);
        for (size_t i = 0; i + 16 <= n; i += 16) normal_fill_16(out + i);
        if (n % 16 != 0) {
            float *d = out + n - 16;
            for (int i = 0; i < 16; i++) d[i] = uniform_f32(r);
            normal_fill_16(d);
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        double v;
        if (r->has_next_normal) {
            v = r->next_normal;
            r->has_next_normal = 0;
        } else {
            double u1 = uniform_f64(r);
            double u2 = uniform_f64(r);
            double rad = sqrt(-2.0 * log(1.0 - u2));
            double th = 2.0 * 3.14159265358979323846 * u1;
            r->next_normal = rad * sin(th);
            r->has_next_normal = 1;
            v = rad * cos(th);
        }
        out[i] = (float)v;
    }
}

/* ---- Philox4x32-10 --------------------------------------------------------------------------- */

static void philox_randn(lf_rng *r, float *out, size_t n) {
    const uint32_t k0 = (uint32_t)((uint64_t)r->seed & 0xffffffffu);
    const uint32_t k1 = (uint32_t)((uint64_t)r->seed >> 32);
    const uint32_t off = (uint32_t)r->nv_offset;
    /* numpy: uint32 * float32 array -> float64; the constants are float32 values */
    const double inv32 = (double)2.3283064e-10f;
    const double inv32_2pi = (double)(float)(2.3283064e-10 * 6.2831855);
    const double half_inv32 = (double)(2.3283064e-10f / 2.0f);
    const double half_inv32_2pi = (double)((float)(2.3283064e-10 * 6.2831855) / 2.0f);
    for (size_t i = 0; i < n; i++) {
        uint32_t c0 = off, c1 = 0, c2 = (uint32_t)i, c3 = 0;
        uint32_t a = k0, b = k1;
        for (int round = 0; round < 10; round++) {
            uint64_t p0 = (uint64_t)c0 * 0xD2511F53u;
            uint64_t p1 = (uint64_t)c2 * 0xCD9E8D57u;
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ a;
            uint32_t n1 = (uint32_t)p1;
            uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ b;
            uint32_t n3 = (uint32_t)p0;
            c0 = n0, c1 = n1, c2 = n2, c3 = n3;
            a += 0x9E3779B9u;
            b += 0xBB67AE85u;
        }
        double u = (double)c0 * inv32 + half_inv32;
        double v = (double)c1 * inv32_2pi + half_inv32_2pi;
        double s = sqrt(-2.0 * log(u));
        out[i] = (float)(s * sin(v));
    }
    r->nv_offset++;
}

/* ---- API -------------------------------------------------------------------------------------- */

static uint64_t random_seed(void) {
    uint64_t v = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        if (fread(&v, sizeof v, 1, f) != 1) v = 0;
        fclose(f);
    }
    if (!v) {
        struct timespec ts;
        timespec_get(&ts, TIME_UTC);
        v = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15u;
    }
    return v % UINT64_C(4294967294);
}

lf_status lf_rng_init(lf_rng *rng, lf_rng_kind kind, int64_t seed) {
    if (!rng) return lf_err(LF_ERR_ARG, "lf_rng_init: NULL generator");
    if (kind != LF_RNG_TORCH_CPU && kind != LF_RNG_NV)
        return lf_err(LF_ERR_ARG, "lf_rng_init: unknown generator kind %d", (int)kind);
    memset(rng, 0, sizeof *rng);
    rng->kind = kind;
    rng->seed = seed == -1 ? (int64_t)random_seed() : seed;
    if (kind == LF_RNG_TORCH_CPU) mt_seed(rng, (uint32_t)((uint64_t)rng->seed & 0xffffffffu));
    return LF_OK;
}

void lf_rng_randn(lf_rng *rng, float *out, size_t n) {
    if (rng->kind == LF_RNG_NV)
        philox_randn(rng, out, n);
    else
        torch_randn(rng, out, n);
}

lf_status lf_rng_kind_parse(const char *name, lf_rng_kind *out) {
    if (!name) return lf_err(LF_ERR_ARG, "rng: no name");
    if (!strcasecmp(name, "cpu") || !strcasecmp(name, "torch")) {
        *out = LF_RNG_TORCH_CPU;
        return LF_OK;
    }
    if (!strcasecmp(name, "nv") || !strcasecmp(name, "philox") || !strcasecmp(name, "gpu")) {
        *out = LF_RNG_NV;
        return LF_OK;
    }
    return lf_err(LF_ERR_ARG, "unknown random source '%s' (known: cpu, nv)", name);
}

const char *lf_rng_kind_name(lf_rng_kind kind) {
    return kind == LF_RNG_NV ? "nv" : "cpu";
}
