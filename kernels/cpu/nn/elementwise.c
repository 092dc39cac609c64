/* elementwise.c: the element-wise operators: activations, arithmetic, GEGLU and bias adds.
 *
 *   SiLU        y = x / (1 + e^-x)
 *   GELU        y = 0.5 x (1 + erf(x / sqrt 2))
 *   GELU-tanh   y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
 *   quick-GELU  y = x / (1 + e^(-1.702 x))
 *   add / mul   y = a + b, y = a * b;  scale  y = x * s          (n elements, y may alias the inputs)
 *   GEGLU       x (M, 2F) -> y (M, F): y[m, f] = x[m, f] * gelu(x[m, F + f])
 *   bias adds   x (N, C, S) += b[c] (b (C)), or += b[n, c] (b (N, C))
 *
 * e^x is lf_nn_expf (nn_internal.h); erf and tanh from libm. The activation / arithmetic loop is built
 * twice (LF_NN_CLONES: AVX2 and default, same f32 operations per element).
 * Threads: chunks of LF_NN_EW_GRAIN elements (GEGLU: whole rows; bias adds: whole (n, c) planes),
 * fixed by the shapes; no element depends on another, so the bytes do not depend on the thread count.
 * Test: tests/kernels/test_nn.c (ctest -R nn).
 */
#include <math.h>
#include <stddef.h>

#include "lf_nn.h"
#include "nn_internal.h"

typedef enum {
    LF_EW_SILU, LF_EW_GELU, LF_EW_GELU_TANH, LF_EW_QUICK_GELU, LF_EW_ADD, LF_EW_MUL, LF_EW_SCALE
} lf_nn_ew_op;

typedef struct {
    float *y;
    const float *a, *b;
    float s;
    lf_nn_ew_op op;
} lf_nn_ew_ctx;

LF_NN_CLONES static void lf_nn_ew_chunk(void *vc, int64_t i0, int64_t i1, int tid) {
    const lf_nn_ew_ctx *c = vc;
    float *y = c->y;
    const float *x = c->a, *b = c->b;
    (void)tid;
    switch (c->op) {
    case LF_EW_SILU:
        for (int64_t i = i0; i < i1; i++) y[i] = x[i] / (1.0f + lf_nn_expf(-x[i]));
        break;
    case LF_EW_GELU: {
        const float inv_sqrt2 = 0.70710678118654752440f;
        for (int64_t i = i0; i < i1; i++) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * inv_sqrt2));
        break;
    }
    case LF_EW_GELU_TANH: {
        const float k = 0.79788456080286535588f; /* sqrt(2/pi) */
        for (int64_t i = i0; i < i1; i++) {
            float v = x[i];
            y[i] = 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
        }
        break;
    }
    case LF_EW_QUICK_GELU:
        for (int64_t i = i0; i < i1; i++) y[i] = x[i] / (1.0f + lf_nn_expf(-1.702f * x[i]));
        break;
    case LF_EW_ADD:
        for (int64_t i = i0; i < i1; i++) y[i] = x[i] + b[i];
        break;
    case LF_EW_MUL:
        for (int64_t i = i0; i < i1; i++) y[i] = x[i] * b[i];
        break;
    case LF_EW_SCALE:
        for (int64_t i = i0; i < i1; i++) y[i] = x[i] * c->s;
        break;
    }
}

static void lf_nn_ew(lf_nn_ew_op op, float *y, const float *a, const float *b, float s, int64_t n) {
    lf_nn_ew_ctx c = {y, a, b, s, op};
    lf_par_for(n, LF_NN_EW_GRAIN, lf_nn_ew_chunk, &c);
}

void lf_nn_silu(float *y, const float *x, int64_t n) { lf_nn_ew(LF_EW_SILU, y, x, NULL, 0.0f, n); }
void lf_nn_gelu(float *y, const float *x, int64_t n) { lf_nn_ew(LF_EW_GELU, y, x, NULL, 0.0f, n); }
void lf_nn_gelu_tanh(float *y, const float *x, int64_t n) { lf_nn_ew(LF_EW_GELU_TANH, y, x, NULL, 0.0f, n); }
void lf_nn_quick_gelu(float *y, const float *x, int64_t n) { lf_nn_ew(LF_EW_QUICK_GELU, y, x, NULL, 0.0f, n); }
void lf_nn_add(float *y, const float *a, const float *b, int64_t n) { lf_nn_ew(LF_EW_ADD, y, a, b, 0.0f, n); }
void lf_nn_mul(float *y, const float *a, const float *b, int64_t n) { lf_nn_ew(LF_EW_MUL, y, a, b, 0.0f, n); }
void lf_nn_scale(float *y, const float *x, float s, int64_t n) { lf_nn_ew(LF_EW_SCALE, y, x, NULL, s, n); }

typedef struct {
    float *y;
    const float *x;
    int64_t F;
} lf_nn_geglu_ctx;

static void lf_nn_geglu_chunk(void *vc, int64_t i0, int64_t i1, int tid) {
    const lf_nn_geglu_ctx *c = vc;
    const float inv_sqrt2 = 0.70710678118654752440f;
    int64_t F = c->F;
    (void)tid;
    for (int64_t m = i0; m < i1; m++) {
        const float *h = c->x + m * 2 * F, *g = h + F;
        float *yr = c->y + m * F;
        for (int64_t f = 0; f < F; f++) {
            float gl = 0.5f * g[f] * (1.0f + erff(g[f] * inv_sqrt2));
            yr[f] = h[f] * gl;
        }
    }
}

void lf_nn_geglu(float *y, const float *x, int64_t M, int64_t F) {
    lf_nn_geglu_ctx c = {y, x, F};
    int64_t grain = LF_NN_EW_GRAIN / (F > 0 ? F : 1);
    lf_par_for(M, grain < 1 ? 1 : grain, lf_nn_geglu_chunk, &c);
}

typedef struct {
    float *x;
    const float *b;
    int64_t C, S;
    int per_nc;
} lf_nn_bias_ctx;

static void lf_nn_bias_chunk(void *vc, int64_t i0, int64_t i1, int tid) {
    const lf_nn_bias_ctx *c = vc;
    (void)tid;
    for (int64_t p = i0; p < i1; p++) { /* p = n * C + ch */
        float *xc = c->x + p * c->S;
        float bv = c->per_nc ? c->b[p] : c->b[p % c->C];
        for (int64_t s = 0; s < c->S; s++) xc[s] += bv;
    }
}

void lf_nn_add_bias_c(float *x, const float *b, int64_t N, int64_t C, int64_t S) {
    lf_nn_bias_ctx c = {x, b, C, S, 0};
    int64_t grain = LF_NN_EW_GRAIN / (S > 0 ? S : 1);
    lf_par_for(N * C, grain < 1 ? 1 : grain, lf_nn_bias_chunk, &c);
}

void lf_nn_add_bias_nc(float *x, const float *b, int64_t N, int64_t C, int64_t S) {
    lf_nn_bias_ctx c = {x, b, C, S, 1};
    int64_t grain = LF_NN_EW_GRAIN / (S > 0 ? S : 1);
    lf_par_for(N * C, grain < 1 ? 1 : grain, lf_nn_bias_chunk, &c);
}
