/* test_half_nvcc.cu: the f16 / bf16 / f8 conversions of lf_half.h, compiled by nvcc as host code
 * (no GPU needed), against NVIDIA's own host implementations in cuda_fp16.h / cuda_bf16.h /
 * cuda_fp8.h: every f16 and bf16 bit pattern decoded, every f8 pattern decoded, and ~2M f32 values
 * (edge cases, halfway points, subnormals, random bits) rounded to nearest even. This checks both
 * that the shared LF_HD header compiles under nvcc and that our rounding is NVIDIA's. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "lf_test.h"
#include "lf_test_rng.h"
#include "kernels/common/lf_half.h"

static uint16_t bits_of(__half h) {
    uint16_t u;
    std::memcpy(&u, &h, 2);
    return u;
}

static uint16_t bits_of(__nv_bfloat16 h) {
    uint16_t u;
    std::memcpy(&u, &h, 2);
    return u;
}

static bool same_value(float a, float b) {
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
    return lf_f32_to_bits(a) == lf_f32_to_bits(b);
}

static void check_round(float f) {
    uint16_t ours = lf_f32_to_f16(f), nv = bits_of(__float2half_rn(f));
    bool nan = std::isnan(f);
    LF_CHECK(nan ? ((ours & 0x7c00u) == 0x7c00u && (ours & 0x3ffu)) : ours == nv, "f16(%a): ours 0x%04x, NVIDIA 0x%04x",
             (double)f, ours, nv);
    uint16_t ob = lf_f32_to_bf16(f), nb = bits_of(__float2bfloat16_rn(f));
    LF_CHECK(nan ? ((ob & 0x7f80u) == 0x7f80u && (ob & 0x7fu)) : ob == nb, "bf16(%a): ours 0x%04x, NVIDIA 0x%04x",
             (double)f, ob, nb);
}

int main() {
    int bad16 = 0, badbf = 0;
    for (uint32_t u = 0; u < 65536; u++) {
        __half h;
        __nv_bfloat16 b;
        uint16_t v = (uint16_t)u;
        std::memcpy(&h, &v, 2);
        std::memcpy(&b, &v, 2);
        bad16 += !same_value(lf_f16_to_f32(v), __half2float(h));
        badbf += !same_value(lf_bf16_to_f32(v), __bfloat162float(b));
    }
    LF_CHECK(bad16 == 0, "%d f16 patterns decode differently", bad16);
    LF_CHECK(badbf == 0, "%d bf16 patterns decode differently", badbf);

    int bad8 = 0;
    for (uint32_t u = 0; u < 256; u++) {
        __nv_fp8_e4m3 a;
        __nv_fp8_e5m2 b;
        uint8_t v = (uint8_t)u;
        std::memcpy(&a, &v, 1);
        std::memcpy(&b, &v, 1);
        bad8 += !same_value(lf_f8e4m3_to_f32(v), (float)a);
        bad8 += !same_value(lf_f8e5m2_to_f32(v), (float)b);
    }
    LF_CHECK(bad8 == 0, "%d f8 patterns decode differently", bad8);

    const float edges[] = {0.0f, -0.0f, 1.0f, -1.0f, 65504.0f, 65519.99f, 65520.0f, 1e9f, -1e9f, INFINITY, -INFINITY,
                           NAN, 5.9604645e-08f, 2.9802322e-08f, 2.9802326e-08f, 8.940697e-08f, 6.1035156e-05f,
                           6.1035152e-05f, 3.3895314e38f, 1.1754944e-38f, 1e-45f};
    for (float f : edges) check_round(f);
    uint32_t rng = 12345u;
    for (int i = 0; i < 2000000; i++) {
        uint32_t x = lf_test_rng32_next(&rng);
        check_round(lf_bits_to_f32(x));
        /* exact halfway points between adjacent f16 / bf16 values */
        uint16_t h = (uint16_t)(x >> 16);
        if ((h & 0x7c00u) != 0x7c00u) {
            float lo = lf_f16_to_f32(h), hi = lf_f16_to_f32((uint16_t)(h + 1));
            if (std::isfinite(hi) && (h & 0x7fffu) != 0x7fffu) check_round(0.5f * lo + 0.5f * hi);
        }
    }
    return lf_test_finish();
}
