/* test_half.c: the bulk dtype conversions of lf_tensor.h (lf_view_to_f32, lf_f32_to_dtype), which take
 * a vectorised path (x86 F16C) where the CPU has one, give exactly the scalar lf_half.h results
 * (themselves checked against NVIDIA's host code in test_half_nvcc.cu): every f16 and bf16 pattern
 * decoded, and edge cases, halfway points and random f32 bit patterns encoded, at unaligned offsets
 * and lengths that are not multiples of the vector width. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_test.h"
#include "lf_test_rng.h"
#include "kernels/common/lf_half.h"
#include "lorafuse/lf_tensor.h"

static int same_bits(float a, float b) { return lf_f32_to_bits(a) == lf_f32_to_bits(b); }

static void check_decode(lf_dtype dt) {
    enum { N = 65536 };
    unsigned char *raw = malloc(2 * N + 1);
    float *got = malloc(N * sizeof *got);
    for (uint32_t u = 0; u < N; u++) {
        uint16_t h = (uint16_t)u;
        memcpy(raw + 1 + 2 * u, &h, 2); /* odd address: mapped tensors need not be aligned */
    }
    lf_view v;
    memset(&v, 0, sizeof v);
    v.data = raw + 1;
    v.dtype = dt;
    v.ndim = 1;
    v.shape[0] = N - 3; /* not a multiple of 8 */
    LF_CHECK(lf_view_to_f32(&v, got) == LF_OK, "%s", lf_last_error());
    int bad = 0;
    for (uint32_t u = 0; u < N - 3; u++) {
        float want = dt == LF_F16 ? lf_f16_to_f32((uint16_t)u) : lf_bf16_to_f32((uint16_t)u);
        bad += !same_bits(got[u], want);
    }
    LF_CHECK(bad == 0, "%s: %d patterns decode differently from the scalar code", lf_dtype_name(dt), bad);
    free(raw);
    free(got);
}

static void check_encode(lf_dtype dt) {
    enum { N = 1 << 20 };
    float *src = malloc(N * sizeof *src);
    unsigned char *raw = malloc(2 * N + 1);
    static const float edges[] = {0.0f, -0.0f, 1.0f, 65504.0f, 65519.99f, 65520.0f, 1e9f, -1e9f, INFINITY, -INFINITY,
                                  NAN, -NAN, 5.9604645e-08f, 2.9802322e-08f, 2.9802326e-08f, 6.1035156e-05f,
                                  6.1035152e-05f, 3.3895314e38f, 1.1754944e-38f, 1e-45f};
    uint32_t rng = 2463534242u;
    for (int i = 0; i < N; i++) {
        uint32_t x = lf_test_rng32_next(&rng);
        if (i < (int)(sizeof edges / sizeof edges[0])) src[i] = edges[i];
        else if (i % 3 == 0) { /* halfway between adjacent f16 values */
            uint16_t h = (uint16_t)(x & 0x7bfe);
            src[i] = 0.5f * lf_f16_to_f32(h) + 0.5f * lf_f16_to_f32((uint16_t)(h + 1));
        } else src[i] = lf_bits_to_f32(x);
    }
    int64_t n = N - 5;
    LF_CHECK(lf_f32_to_dtype(src, n, dt, raw + 1) == LF_OK, "%s", lf_last_error());
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint16_t got, want = dt == LF_F16 ? lf_f32_to_f16(src[i]) : lf_f32_to_bf16(src[i]);
        memcpy(&got, raw + 1 + 2 * i, 2);
        bad += got != want;
    }
    LF_CHECK(bad == 0, "%s: %d values encode differently from the scalar code", lf_dtype_name(dt), bad);
    free(src);
    free(raw);
}

int main(void) {
    check_decode(LF_F16);
    check_decode(LF_BF16);
    check_encode(LF_F16);
    check_encode(LF_BF16);
    return lf_test_finish();
}
