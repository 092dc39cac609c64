/* test_math_nvcc.cu: the per-element math of lf_math.h as nvcc compiles it (host side, no GPU needed)
 * against the same functions compiled by gcc (tests/kernels/lf_math_gcc.c, C11 with -ffp-contract=off, as the
 * CPU reference is) and against the gcc-built CPU reference itself (lf_lokr_delta_ref), bit for bit:
 *   - LoKr index map over every (o, col) of many (a, b, c, d, khw), incl. 3x3 conv and odd sizes, and
 *     the Kronecker product the reference builds with it;
 *   - BOFT butterfly permutation for k = 1 .. 64 (also: it is a bijection inside each 2k block);
 *   - orthogonal interpolation, DoRA scale and contribution, IA3 contribution, fused axpy, and the
 *     f16 / bf16 storage rounding on ~1M random and edge-case values.
 * Label cpu (built only with CUDA; the kernels use these functions on the device). */
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "lf_test.h"
#include "lf_test_rng.h"
extern "C" {
#include "kernels/cpu/adapters/lf_ref.h"
}
#include "kernels/common/lf_math.h"
#include "lf_math_gcc.h"

static lf_test_rng rng = {LF_TEST_RNG_SEED};
static float runi(float lo, float hi) { return lf_test_rng_uniform(&rng, lo, hi); }
/* random float of any magnitude (random bits, with NaN/Inf now and then) */
static float rbits() {
    uint32_t u = (uint32_t)lf_test_rng_next(&rng);
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

static bool same(float a, float b) {
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
    return lf_f32_to_bits(a) == lf_f32_to_bits(b);
}

static void test_lokr() {
    static const int64_t dims[][5] = {{1, 1, 1, 1, 1}, {7, 11, 5, 9, 1}, {4, 10, 3, 8, 9}, {2, 3, 4, 5, 9},
                                      {8, 4, 16, 2, 1}, {3, 1, 1, 7, 4}, {5, 13, 2, 3, 9}};
    long bad = 0, badref = 0;
    for (const auto &d : dims) {
        int64_t a = d[0], b = d[1], c = d[2], dd = d[3], khw = d[4], O = a * b, K = c * dd * khw;
        float *w1 = (float *)malloc(sizeof(float) * a * c), *w2 = (float *)malloc(sizeof(float) * b * dd * khw);
        float *ref = (float *)malloc(sizeof(float) * O * K);
        for (int64_t i = 0; i < a * c; i++) w1[i] = runi(-1, 1);
        for (int64_t i = 0; i < b * dd * khw; i++) w2[i] = runi(-1, 1);
        lf_ref_factor f1, f2;
        std::memset(&f1, 0, sizeof f1);
        std::memset(&f2, 0, sizeof f2);
        f1.full = w1, f1.rows = a, f1.cols = c;
        f2.full = w2, f2.rows = b, f2.cols = dd * khw;
        LF_CHECK(lf_lokr_delta_ref(&f1, &f2, dd, khw, ref) == LF_OK, "lokr reference failed");
        for (int64_t o = 0; o < O; o++)
            for (int64_t col = 0; col < K; col++) {
                int64_t i1, i2, g1, g2;
                lf_math_lokr_index(o, col, b, c, dd, khw, &i1, &i2);
                lf_gcc_lokr_index(o, col, b, c, dd, khw, &g1, &g2);
                /* the definition: dW[i*b + p][(j*d + q)*khw + sp] = w1[i][j] * w2[p][q*khw + sp] */
                int64_t i = o / b, p = o % b, j = col / (dd * khw), rest = col % (dd * khw);
                bad += i1 != g1 || i2 != g2 || i1 != i * c + j || i2 != p * dd * khw + rest;
                bad += i1 < 0 || i1 >= a * c || i2 < 0 || i2 >= b * dd * khw;
                badref += !same(w1[i1] * w2[i2], ref[o * K + col]);
            }
        free(w1);
        free(w2);
        free(ref);
    }
    LF_CHECK(bad == 0, "LoKr index map: %ld mismatches between nvcc, gcc and the definition", bad);
    LF_CHECK(badref == 0, "LoKr: %ld elements differ from lf_lokr_delta_ref", badref);
}

static void test_boft() {
    long bad = 0;
    for (int64_t k = 1; k <= 64; k *= 2) {
        int64_t n = 8 * 2 * k;
        char *seen = (char *)calloc((size_t)n, 1);
        for (int64_t p = 0; p < n; p++) {
            int64_t q = lf_math_boft_perm(p, k);
            bad += q != lf_gcc_boft_perm(p, k);
            bad += q < 0 || q >= n || (q / (2 * k)) != (p / (2 * k)); /* stays in its 2k block */
            if (q >= 0 && q < n) seen[q]++;
        }
        for (int64_t p = 0; p < n; p++) bad += seen[p] != 1;
        free(seen);
    }
    LF_CHECK(bad == 0, "BOFT permutation: %ld mismatches (nvcc vs gcc, block, bijection)", bad);
}

static void test_elementwise() {
    long bad[8] = {0};
    static const float edge[] = {0.0f, -0.0f, 1.0f, -1.0f, 65504.0f, 65520.0f, 6.1e-5f, 5.96e-8f, 1e-45f, 3.4e38f,
                                 INFINITY, -INFINITY, NAN, 0.5f, 1.0f + 1.0f / 2048, 1.0f + 3.0f / 4096};
    const int n_edge = sizeof edge / sizeof edge[0];
    for (int it = 0; it < 1000000; it++) {
        float a, b, c, d;
        if (it < n_edge * n_edge) {
            a = edge[it % n_edge], b = edge[(it / n_edge) % n_edge], c = runi(-2, 2), d = runi(-2, 2);
        } else if (it & 1) {
            a = runi(-2, 2), b = runi(-2, 2), c = runi(0, 3), d = runi(-1.5f, 1.5f);
        } else {
            a = rbits(), b = rbits(), c = rbits(), d = runi(-2, 2);
        }
        bad[0] += !same(lf_math_orth_interp(a, it & 2, d), lf_gcc_orth_interp(a, it & 2, d));
        bad[1] += !same(lf_math_dora_scale(c, std::fabs(b)), lf_gcc_dora_scale(c, std::fabs(b)));
        bad[2] += !same(lf_math_dora_contrib(a, b, c, d), lf_gcc_dora_contrib(a, b, c, d));
        bad[3] += !same(lf_math_ia3_contrib(a, b, d), lf_gcc_ia3_contrib(a, b, d));
        bad[4] += !same(lf_math_axpy(a, b, c), lf_gcc_axpy(a, b, c));
        uint16_t h = lf_math_store_f16(a), g = lf_gcc_store_f16(a);
        bad[5] += h != g;
        uint16_t hb = lf_math_store_bf16(a), gb = lf_gcc_store_bf16(a);
        bad[6] += hb != gb;
        /* one rounding: the stored value is the nearest representable (checked against the round trip) */
        bad[7] += !std::isnan(a) && !same(lf_math_round_f16(a), lf_f16_to_f32(h));
    }
    static const char *what[8] = {"orth_interp", "dora_scale", "dora_contrib", "ia3_contrib", "axpy",
                                  "store_f16", "store_bf16", "round_f16"};
    for (int i = 0; i < 8; i++) LF_CHECK(bad[i] == 0, "%s: %ld values differ between nvcc and gcc", what[i], bad[i]);
    /* DoRA at s = 0 and IA3 at s = 0 contribute exactly 0 (P2) */
    LF_CHECK(lf_math_dora_contrib(0.3f, 0.7f, 1.1f, 0.0f) == 0.0f, "dora_contrib(s = 0) != 0");
    LF_CHECK(lf_math_ia3_contrib(0.3f, 0.7f, 0.0f) == 0.0f, "ia3_contrib(s = 0) != 0");
    LF_CHECK(lf_math_orth_interp(0.3f, 0, 1.0f) == 0.3f, "orth_interp(s = 1) != R");
}

int main() {
    test_lokr();
    test_boft();
    test_elementwise();
    return lf_test_finish();
}
