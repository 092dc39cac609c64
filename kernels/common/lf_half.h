/* lf_half.h: f16 / bf16 / f8 <-> f32 conversions, shared by the CPU reference and CUDA kernels.
 *
 * f32 -> f16 and f32 -> bf16 round to nearest, ties to even (docs/semantics.md P6: one rounding to the storage
 * dtype); NaN stays NaN (quiet), overflow goes to Inf. F8 (E4M3FN, E5M2) is read-only: checkpoints
 * may store weights in it, lorafuse never writes it.
 * Bit layouts: f16 1-5-10 (bias 15), bf16 1-8-7 (upper half of f32), E4M3FN 1-4-3 (bias 7, no Inf,
 * S.1111.111 = NaN, max 448), E5M2 1-5-2 (bias 15, IEEE-like with Inf/NaN).
 */
#ifndef LF_HALF_H
#define LF_HALF_H

#include <stdint.h>
#include <string.h>

#include "lf_hd.h"

#ifdef __cplusplus
extern "C" {
#endif

LF_HD float lf_bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

LF_HD uint32_t lf_f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

LF_HD float lf_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1fu) /* Inf, or NaN made quiet with its payload kept, as IEEE conversion (and F16C) does */
        return lf_bits_to_f32(sign | 0x7f800000u | (man << 13) | (man ? 0x400000u : 0u));
    if (exp == 0) {
        if (man == 0) return lf_bits_to_f32(sign);
        /* subnormal: man * 2^-24, exact in f32 */
        float v = (float)man * 5.9604644775390625e-08f;
        return sign ? -v : v;
    }
    return lf_bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

LF_HD uint16_t lf_f32_to_f16(float f) {
    uint32_t u = lf_f32_to_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t abs = u & 0x7fffffffu;
    if (abs >= 0x7f800000u) /* Inf or NaN (keep NaN quiet and non-zero) */
        return (uint16_t)(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u | ((abs >> 13) & 0x3ffu) : 0u));
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: overflow */
    if (abs < 0x38800000u) {                                  /* below 2^-14: f16 subnormal or 0 */
        if (abs < 0x33000000u) return sign;                   /* < 2^-25: rounds to zero */
        uint32_t e = abs >> 23;
        uint32_t m = (abs & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e; /* value = m * 2^(e-150); f16 unit 2^-24 -> shift by 126-e */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t q = (abs >> 13) - (112u << 10); /* rebias exponent, truncate mantissa */
    uint32_t rem = abs & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) q++;
    return (uint16_t)(sign | q);
}

LF_HD float lf_bf16_to_f32(uint16_t h) { return lf_bits_to_f32((uint32_t)h << 16); }

LF_HD uint16_t lf_f32_to_bf16(float f) {
    uint32_t u = lf_f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

LF_HD float lf_f8e4m3_to_f32(uint8_t b) {
    uint32_t sign = (uint32_t)(b & 0x80u) << 24;
    uint32_t exp = (b >> 3) & 0xfu;
    uint32_t man = b & 0x7u;
    if (exp == 0xfu && man == 0x7u) return lf_bits_to_f32(sign | 0x7fc00000u);
    if (exp == 0) {
        float v = (float)man * 0.001953125f; /* 2^-9 */
        return sign ? -v : v;
    }
    return lf_bits_to_f32(sign | ((exp + 120u) << 23) | (man << 20));
}

LF_HD float lf_f8e5m2_to_f32(uint8_t b) { return lf_f16_to_f32((uint16_t)((uint16_t)b << 8)); }

#ifdef __cplusplus
}
#endif
#endif
