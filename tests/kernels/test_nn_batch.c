/* test_nn_batch.c: batch invariance of the f32 CPU operators (kernels/cpu/nn/lf_nn.h): every sample
 * (every row of a linear) computed inside a batch of N in {1, 2, 3, 12} has exactly the bytes it has
 * computed alone, for every operator the UNet, CLIP and VAE use, on the models' shapes (L = 77 tokens,
 * M = 1 and 2 rows, row counts that are multiples of no block size, the tiny models' widths) and on
 * each thread count in {1, 2, 3}. The sample alone is copied to its own buffer (another alignment).
 * Run: ctest --test-dir build -R nn_batch
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "lf_test.h"
#include "lf_test_data.h"
#include "host/base/pool.h"
#include "kernels/cpu/nn/lf_nn.h"

static lf_test_rng rng = {LF_TEST_RNG_SEED};
static float *rnd(int64_t n) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = lf_test_rng_signed(&rng);
    return p;
}

/* One operator on a batch: y (N, out_per) from x (N, in_per), both sample-major; p: its sizes and
 * shared weights. */
typedef void (*batch_op)(const void *p, float *y, const float *x, int64_t N);

/* Part [off, off + len) of every sample of x (N, per) as its own (N, len) array. */
static float *part(const float *x, int64_t N, int64_t per, int64_t off, int64_t len) {
    float *p = malloc((size_t)(N * len > 0 ? N * len : 1) * sizeof(float));
    for (int64_t n = 0; n < N; n++) memcpy(p + n * len, x + n * per + off, (size_t)len * sizeof(float));
    return p;
}

static const int64_t batch_sizes[] = {1, 2, 3, 12};
static const int thread_counts[] = {1, 2, 3};

/* For each thread count and N: the batch of the first N samples of one random set, each sample alone. */
static void check_op(const char *name, batch_op op, const void *p, int64_t in_per, int64_t out_per) {
    int64_t Nmax = 12;
    float *x = rnd(Nmax * in_per), *yb = malloc((size_t)(Nmax * out_per) * sizeof(float));
    float *xs = malloc((size_t)in_per * sizeof(float)), *ys = malloc((size_t)out_per * sizeof(float));
    for (size_t t = 0; t < sizeof thread_counts / sizeof thread_counts[0]; t++) {
        lf_par_set_threads(thread_counts[t]);
        for (size_t b = 0; b < sizeof batch_sizes / sizeof batch_sizes[0]; b++) {
            int64_t N = batch_sizes[b], bad = -1;
            op(p, yb, x, N);
            for (int64_t n = 0; n < N && bad < 0; n++) {
                memcpy(xs, x + n * in_per, (size_t)in_per * sizeof(float));
                op(p, ys, xs, 1);
                if (memcmp(ys, yb + n * out_per, (size_t)out_per * sizeof(float))) bad = n;
            }
            LF_CHECK(bad < 0, "%s: sample %lld of a batch of %lld (%d threads) differs from it alone", name,
                     (long long)bad, (long long)N, thread_counts[t]);
        }
    }
    free(x), free(yb), free(xs), free(ys);
}

/* ---- matrix products ------------------------------------------------------------------------ */

typedef struct {
    int64_t L, in, out; /* rows per sample */
    const float *W, *b;
    const lf_view *Wv;  /* lf_nn_linear_w when set */
} lin_p;

static void op_linear(const void *vp, float *y, const float *x, int64_t N) {
    const lin_p *p = vp;
    if (p->Wv) LF_CHECK(lf_nn_linear_w(y, x, p->Wv, p->b, N * p->L, p->in, p->out) == LF_OK, "%s", lf_last_error());
    else lf_nn_linear(y, x, p->W, p->b, N * p->L, p->in, p->out);
}

static void linear_case(int64_t L, int64_t in, int64_t out, int bias) {
    float *W = rnd(out * in), *b = rnd(out);
    lin_p p = {L, in, out, W, bias ? b : NULL, NULL};
    char name[96];
    snprintf(name, sizeof name, "linear L%lld %lld->%lld%s", (long long)L, (long long)in, (long long)out,
             bias ? " +b" : "");
    check_op(name, op_linear, &p, L * in, L * out);
    free(W), free(b);
}

static void test_linear(void) {
    linear_case(1, 320, 1280, 1);  /* time embedding (M = N) */
    linear_case(1, 1280, 320, 1);  /* ResNet time projection */
    linear_case(2, 1280, 640, 1);  /* M = 2 per sample */
    linear_case(77, 768, 768, 1);  /* CLIP / cross-attention k, v */
    linear_case(77, 768, 3072, 1); /* CLIP MLP */
    linear_case(77, 3072, 768, 0);
    linear_case(77, 32, 32, 0);    /* tiny models' widths: BLAS small-matrix sizes */
    linear_case(1, 32, 128, 1);    /* tiny time embedding */
    linear_case(16, 32, 32, 1);    /* tiny model, 4x4 latent tokens */
    linear_case(64, 320, 320, 0);  /* 8x8 latent tokens */
    linear_case(300, 64, 128, 1);  /* many rows, none a multiple of a block size */
    linear_case(13, 40, 4, 1);
    /* the same with f16 weights (converted inside) */
    float *W = rnd(96 * 80);
    uint16_t *h = malloc(96 * 80 * sizeof(uint16_t));
    lf_f32_to_dtype(W, 96 * 80, LF_F16, h);
    lf_view v = {h, LF_F16, 2, {96, 80}};
    lin_p p = {77, 80, 96, NULL, NULL, &v};
    check_op("linear_w f16 L77 80->96", op_linear, &p, 77 * 80, 77 * 96);
    free(W), free(h);
}

typedef struct {
    int64_t Ci, H, Wd, Co, k, stride, pad, Ho, Wo;
    const float *W, *b;
} conv_p;

static void op_conv(const void *vp, float *y, const float *x, int64_t N) {
    const conv_p *p = vp;
    LF_CHECK(lf_nn_conv2d(y, x, p->W, p->b, N, p->Ci, p->H, p->Wd, p->Co, p->k, p->k, p->stride, p->pad) == LF_OK,
             "%s", lf_last_error());
}

static void conv_case(int64_t Ci, int64_t H, int64_t Wd, int64_t Co, int64_t k, int64_t stride, int64_t pad) {
    float *W = rnd(Co * Ci * k * k), *b = rnd(Co);
    conv_p p = {Ci, H, Wd, Co, k, stride, pad, lf_nn_conv_out(H, k, stride, pad), lf_nn_conv_out(Wd, k, stride, pad),
                W, b};
    char name[96];
    snprintf(name, sizeof name, "conv2d %lldx%lldx%lld -> %lld k%lld s%lld p%lld", (long long)Ci, (long long)H,
             (long long)Wd, (long long)Co, (long long)k, (long long)stride, (long long)pad);
    check_op(name, op_conv, &p, Ci * H * Wd, Co * p.Ho * p.Wo);
    free(W), free(b);
}

static void test_conv2d(void) {
    conv_case(4, 8, 8, 32, 3, 1, 1);     /* conv_in of the tiny models */
    conv_case(32, 8, 8, 32, 3, 1, 1);    /* ResNet conv */
    conv_case(64, 16, 16, 64, 3, 1, 1);  /* larger: several bands / channel blocks */
    conv_case(320, 8, 8, 320, 3, 1, 1);  /* SD1.5 widths on a small latent: channel blocks */
    conv_case(128, 8, 8, 128, 3, 1, 1);  /* channel blocks of BLAS small-matrix sizes */
    conv_case(32, 48, 48, 32, 3, 1, 1);  /* bands of output rows */
    conv_case(32, 48, 48, 64, 1, 1, 0);  /* bands of pixels (1x1) */
    conv_case(32, 8, 8, 32, 3, 2, 1);    /* UNet downsampler */
    conv_case(32, 9, 9, 32, 3, 2, 0);    /* VAE downsampler (after pad2d) */
    conv_case(32, 10, 6, 64, 1, 1, 0);   /* 1x1 shortcut / proj_in */
    conv_case(320, 8, 8, 640, 1, 1, 0);
    conv_case(3, 33, 17, 8, 3, 1, 1);    /* odd sizes */
}

/* ---- normalisation, activations, arithmetic ------------------------------------------------- */

typedef struct {
    int64_t C, S, groups, D, L;
    const float *g, *b;
} norm_p;

static void op_group_norm(const void *vp, float *y, const float *x, int64_t N) {
    const norm_p *p = vp;
    lf_nn_group_norm(y, x, p->g, p->b, N, p->C, p->S, p->groups, 1e-5f);
}
static void op_layer_norm(const void *vp, float *y, const float *x, int64_t N) {
    const norm_p *p = vp;
    lf_nn_layer_norm(y, x, p->g, p->b, N * p->L, p->D, 1e-5f);
}

static void test_norms(void) {
    float *g = rnd(768), *b = rnd(768);
    norm_p gn1 = {32, 64, 32, 0, 0, g, b}, gn2 = {320, 64, 32, 0, 0, g, b}, gn3 = {64, 35, 8, 0, 0, NULL, NULL};
    check_op("group_norm C32 S64 G32", op_group_norm, &gn1, 32 * 64, 32 * 64);
    check_op("group_norm C320 S64 G32", op_group_norm, &gn2, 320 * 64, 320 * 64);
    check_op("group_norm C64 S35 G8", op_group_norm, &gn3, 64 * 35, 64 * 35);
    norm_p ln1 = {0, 0, 0, 768, 77, g, b}, ln2 = {0, 0, 0, 37, 5, NULL, NULL};
    check_op("layer_norm L77 D768", op_layer_norm, &ln1, 77 * 768, 77 * 768);
    check_op("layer_norm L5 D37", op_layer_norm, &ln2, 5 * 37, 5 * 37);
    free(g), free(b);
}

typedef struct {
    int64_t n, F, C, S;
    int which;
    const float *b;
} ew_p;

static void op_ew(const void *vp, float *y, const float *x, int64_t N) {
    const ew_p *p = vp;
    int64_t n = N * p->n;
    switch (p->which) {
    case 0: lf_nn_silu(y, x, n); break;
    case 1: lf_nn_gelu(y, x, n); break;
    case 2: lf_nn_gelu_tanh(y, x, n); break;
    case 3: lf_nn_quick_gelu(y, x, n); break;
    case 4: lf_nn_geglu(y, x, N * p->n / (2 * p->F), p->F); break;
    case 5: lf_nn_scale(y, x, 0.18215f, n); break;
    case 6: memcpy(y, x, (size_t)n * sizeof(float)), lf_nn_add_bias_c(y, p->b, N, p->C, p->S); break;
    }
}

/* Two inputs a, b per sample (the sample's x is [a | b]): add, mul, add_bias_nc. */
static void op_ew2(const void *vp, float *y, const float *x, int64_t N) {
    const ew_p *p = vp;
    int64_t n = p->which == 2 ? p->C * p->S : p->n, nb = p->which == 2 ? p->C : p->n;
    float *a = part(x, N, n + nb, 0, n), *b = part(x, N, n + nb, n, nb);
    if (p->which == 0) lf_nn_add(y, a, b, N * n);
    else if (p->which == 1) lf_nn_mul(y, a, b, N * n);
    else memcpy(y, a, (size_t)(N * n) * sizeof(float)), lf_nn_add_bias_nc(y, b, N, p->C, p->S);
    free(a), free(b);
}

static void test_elementwise(void) {
    static const char *names[] = {"silu", "gelu", "gelu_tanh", "quick_gelu"};
    float *b = rnd(64);
    for (int w = 0; w < 4; w++) {
        ew_p p = {77 * 13, 0, 0, 0, w, NULL}; /* odd sample sizes: samples start off the vector lanes */
        check_op(names[w], op_ew, &p, p.n, p.n);
    }
    ew_p gg = {77 * 2 * 40, 40, 0, 0, 4, NULL}, sc = {1001, 0, 0, 0, 5, NULL}, bc = {64 * 35, 0, 64, 35, 6, b};
    check_op("geglu", op_ew, &gg, gg.n, gg.n / 2);
    check_op("scale", op_ew, &sc, sc.n, sc.n);
    check_op("add_bias_c", op_ew, &bc, bc.n, bc.n);
    ew_p ad = {1001, 0, 0, 0, 0, NULL}, mu = {1001, 0, 0, 0, 1, NULL}, bn = {0, 0, 64, 35, 2, NULL};
    check_op("add", op_ew2, &ad, 2 * 1001, 1001);
    check_op("mul", op_ew2, &mu, 2 * 1001, 1001);
    check_op("add_bias_nc", op_ew2, &bn, 64 * 35 + 64, 64 * 35);
    free(b);
}

/* ---- softmax and attention ------------------------------------------------------------------ */

typedef struct {
    int64_t Lq, Lk, heads, d, cols;
    int causal;
} attn_p;

static void op_softmax(const void *vp, float *y, const float *x, int64_t N) {
    const attn_p *p = vp;
    memcpy(y, x, (size_t)(N * p->Lq * p->cols) * sizeof(float));
    lf_nn_softmax_rows(y, N * p->Lq, p->cols);
}

static void op_attention(const void *vp, float *y, const float *x, int64_t N) {
    const attn_p *p = vp;
    int64_t ld = p->heads * p->d, per = (p->Lq + 2 * p->Lk) * ld;
    float *q = part(x, N, per, 0, p->Lq * ld), *k = part(x, N, per, p->Lq * ld, p->Lk * ld),
          *v = part(x, N, per, (p->Lq + p->Lk) * ld, p->Lk * ld);
    LF_CHECK(lf_nn_attention(y, q, k, v, N, p->Lq, p->Lk, p->heads, p->d, 1.0f / sqrtf((float)p->d), p->causal) ==
                 LF_OK, "%s", lf_last_error());
    free(q), free(k), free(v);
}

static void attention_case(int64_t Lq, int64_t Lk, int64_t heads, int64_t d, int causal) {
    attn_p p = {Lq, Lk, heads, d, 0, causal};
    char name[96];
    snprintf(name, sizeof name, "attention Lq%lld Lk%lld h%lld d%lld%s", (long long)Lq, (long long)Lk,
             (long long)heads, (long long)d, causal ? " causal" : "");
    check_op(name, op_attention, &p, (Lq + 2 * Lk) * heads * d, Lq * heads * d);
}

static void test_attention(void) {
    attn_p sm = {77, 0, 0, 0, 77, 0}, sm2 = {3, 0, 0, 0, 1001, 0};
    check_op("softmax 77x77", op_softmax, &sm, 77 * 77, 77 * 77);
    check_op("softmax 3x1001", op_softmax, &sm2, 3 * 1001, 3 * 1001);
    attention_case(64, 64, 8, 40, 0);  /* UNet self-attention, 8x8 latent */
    attention_case(64, 77, 8, 40, 0);  /* UNet cross-attention */
    attention_case(77, 77, 12, 64, 1); /* CLIP */
    attention_case(64, 64, 1, 32, 0);  /* VAE mid block, one head */
    attention_case(35, 77, 2, 16, 0);  /* tiny model, odd latent */
}

/* ---- layout, resampling, embeddings --------------------------------------------------------- */

typedef struct {
    int64_t C, H, W, Ho, Wo, Cb;
    int which;
} lay_p;

static void op_layout(const void *vp, float *y, const float *x, int64_t N) {
    const lay_p *p = vp;
    switch (p->which) {
    case 0: lf_nn_nchw_to_nlc(y, x, N, p->C, p->H * p->W); break;
    case 1: lf_nn_nlc_to_nchw(y, x, N, p->C, p->H * p->W); break;
    case 2: lf_nn_upsample_nearest2x(y, x, N, p->C, p->H, p->W); break;
    case 3: lf_nn_resize_nearest(y, x, N, p->C, p->H, p->W, p->Ho, p->Wo); break;
    case 4: lf_nn_pad2d(y, x, N, p->C, p->H, p->W, 0, 1, 0, 1); break;
    case 5: {
        int64_t S = p->H * p->W, per = (p->C + p->Cb) * S;
        float *a = part(x, N, per, 0, p->C * S), *b = part(x, N, per, p->C * S, p->Cb * S);
        lf_nn_concat_c(y, a, b, N, p->C, p->Cb, S);
        free(a), free(b);
        break;
    }
    case 6: {
        float *t = malloc((size_t)N * sizeof(float));
        for (int64_t n = 0; n < N; n++) t[n] = 1000.0f * (x[n] + 1.0f) / 2.0f;
        lf_nn_timestep_embedding(y, t, N, p->C, 1, 0.0f, 10000.0f);
        free(t);
        break;
    }
    }
}

static void test_layout(void) {
    lay_p a = {40, 9, 7, 0, 0, 0, 0}, b = {40, 9, 7, 0, 0, 0, 1}, u = {8, 5, 3, 0, 0, 0, 2},
          r = {8, 5, 3, 11, 7, 0, 3}, pd = {8, 8, 8, 0, 0, 0, 4}, cc = {8, 5, 3, 0, 0, 24, 5},
          te = {320, 1, 1, 0, 0, 0, 6};
    check_op("nchw_to_nlc", op_layout, &a, 40 * 63, 40 * 63);
    check_op("nlc_to_nchw", op_layout, &b, 40 * 63, 40 * 63);
    check_op("upsample_nearest2x", op_layout, &u, 8 * 15, 8 * 60);
    check_op("resize_nearest", op_layout, &r, 8 * 15, 8 * 77);
    check_op("pad2d", op_layout, &pd, 8 * 64, 8 * 81);
    check_op("concat_c", op_layout, &cc, 32 * 15, 32 * 15);
    check_op("timestep_embedding", op_layout, &te, 1, 320);
}

int main(void) {
    test_linear();
    test_conv2d();
    test_norms();
    test_elementwise();
    test_attention();
    test_layout();
    return lf_test_finish();
}
