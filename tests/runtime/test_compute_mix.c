/* test_compute_mix.c: the per-sample weights compute (host/runtime/compute_mix.h) against each sample
 * run alone with its merged weight. Five samples in three slots: slot 0 the model's W0, slot 1 two
 * low-rank terms, slot 2 its own weight plus one term. Layers: a linear of 3 rows per sample, a 3x3 conv
 * (stride 1, pad 1) with plain LoCon terms, a 3x3 conv (stride 2, pad 1) with a Tucker term (down 1x1,
 * mid 3x3, up 1x1) and a plain one. Reference: the inner CPU op on the sample alone with
 *     W_eff = W_slot + sum_i scale_i * dW_i,   dW = up @ down, Tucker dW[o][i*khw+s] = sum up[o][p] mid[p][q][s] down[q][i]
 * summed in double, rounded once. Bounds: relative L2 <= 1e-5 per sample (f32 rounding of the two
 * orders of summation); a slot with its own weight and no terms is bit for bit the op over its samples;
 * a layer not listed, and any layer while n_samples is 0, is bit for bit the inner op.
 */
#include "lf_test.h"
#include "lf_test_data.h"
#include "host/runtime/compute_cpu.h"
#include "host/runtime/compute_mix.h"

#define S 5
#define TOL 1e-5

static const int slot_of[S] = {1, 0, 2, 1, 2};

typedef struct {
    int conv, tucker;
    int64_t in, out, r;                 /* linear: rows per sample */
    int64_t C_in, H, Wd, C_out, k, stride, pad, Ho, Wo;
    int64_t K, xs, ys;
} shape;

static float *rnd(lf_test_rng *g, int64_t n, float amp) {
    float *p = malloc((size_t)n * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = amp * lf_test_rng_signed(g);
    return p;
}

static lf_view wview(const float *p, const shape *s) {
    return s->conv ? lf_test_view(p, LF_F32, 4, s->C_out, s->C_in, s->k, s->k) : lf_test_view(p, LF_F32, 2, s->out, s->in, 0, 0);
}

static lf_status run(lf_compute *c, const shape *s, float *y, const float *x, const lf_view *W, const float *b, int64_t n) {
    if (!s->conv) return c->linear(c, y, x, W, b, n * s->r, s->in, s->out);
    return c->conv2d(c, y, x, W, b, n, s->C_in, s->H, s->Wd, s->C_out, s->k, s->k, s->stride, s->pad);
}

/* acc (O, K) += scale * dW of term t (double) */
static void add_delta(double *acc, const lf_mix_term *t, const shape *s) {
    int64_t O = s->conv ? s->C_out : s->out, R = t->rank;
    if (!t->mid) {
        for (int64_t o = 0; o < O; o++)
            for (int64_t q = 0; q < R; q++)
                for (int64_t c = 0; c < s->K; c++)
                    acc[o * s->K + c] += (double)t->scale * t->up[o * R + q] * t->down[q * s->K + c];
        return;
    }
    int64_t khw = s->k * s->k;
    for (int64_t o = 0; o < O; o++)
        for (int64_t p = 0; p < R; p++)
            for (int64_t q = 0; q < R; q++)
                for (int64_t i = 0; i < s->C_in; i++)
                    for (int64_t sp = 0; sp < khw; sp++)
                        acc[o * s->K + i * khw + sp] += (double)t->scale * t->up[o * R + p] * t->mid[(p * R + q) * khw + sp] *
                                                        t->down[q * s->C_in + i];
}

static void check_layer(const char *what, shape s, lf_test_rng *g) {
    lf_compute *cpu = lf_compute_cpu();
    int64_t O = s.conv ? s.C_out : s.out;
    s.K = s.conv ? s.C_in * s.k * s.k : s.in;
    if (s.conv) {
        s.Ho = (s.H + 2 * s.pad - s.k) / s.stride + 1, s.Wo = (s.Wd + 2 * s.pad - s.k) / s.stride + 1;
        s.xs = s.C_in * s.H * s.Wd, s.ys = s.C_out * s.Ho * s.Wo;
    } else {
        s.xs = s.r * s.in, s.ys = s.r * s.out;
    }
    float *W0 = rnd(g, O * s.K, 0.5f), *Wb = rnd(g, O * s.K, 0.5f), *b = rnd(g, O, 0.5f), *x = rnd(g, S * s.xs, 1.0f);
    const int64_t R = 4;
    lf_mix_term t1[2], t2[1];
    float *f[12];
    int nf = 0;
    for (int i = 0; i < 3; i++) {
        lf_mix_term *t = i < 2 ? &t1[i] : &t2[0];
        memset(t, 0, sizeof *t);
        t->rank = R;
        int tucker = s.tucker && i == 0;
        t->down = f[nf++] = rnd(g, R * (tucker ? s.C_in : s.K), 0.5f);
        t->up = f[nf++] = rnd(g, O * R, 0.5f);
        if (tucker) t->mid = f[nf++] = rnd(g, R * R * s.k * s.k, 0.5f);
        t->scale = i == 0 ? 0.7f : i == 1 ? -0.3f : 0.5f;
    }
    lf_view W0v = wview(W0, &s), Wbv = wview(Wb, &s);
    lf_mix_slot slots[3] = {{NULL, NULL, 0}, {NULL, t1, 2}, {&Wbv, t2, 1}};
    lf_mix_layer layer = {W0, slots};
    lf_compute_mix m;
    LF_CHECK(lf_compute_mix_init(&m, cpu) == LF_OK, "init");
    m.layers = &layer;
    m.n_layers = 1;
    m.n_slots = 3;
    m.slot_of = slot_of;
    m.n_samples = S;
    float *y = malloc((size_t)(S * s.ys) * sizeof *y), *ref = malloc((size_t)s.ys * sizeof *ref);
    LF_CHECK(run(&m.c, &s, y, x, &W0v, b, S) == LF_OK, "%s: mixed: %s", what, lf_last_error());
    double *acc = malloc((size_t)(O * s.K) * sizeof *acc);
    float *We = malloc((size_t)(O * s.K) * sizeof *We);
    double worst = 0;
    for (int q = 0; q < S; q++) {
        const lf_mix_slot *sl = &slots[slot_of[q]];
        const float *base = sl->weight ? Wb : W0;
        for (int64_t i = 0; i < O * s.K; i++) acc[i] = base[i];
        for (size_t i = 0; i < sl->n_terms; i++) add_delta(acc, &sl->terms[i], &s);
        for (int64_t i = 0; i < O * s.K; i++) We[i] = (float)acc[i];
        lf_view Wev = wview(We, &s);
        run(cpu, &s, ref, x + q * s.xs, &Wev, b, 1);
        double r = lf_test_rel_l2(y + q * s.ys, ref, s.ys);
        if (r > worst) worst = r;
        LF_CHECK(r <= TOL, "%s: sample %d (slot %d): rel L2 %.3g against alone with its merged weight", what, q, slot_of[q], r);
    }
    printf("%s: worst rel L2 %.3g\n", what, worst);
    /* slot 2 without its term: the op over its two samples with its weight, bit for bit */
    slots[2].n_terms = 0;
    LF_CHECK(run(&m.c, &s, y, x, &W0v, b, S) == LF_OK, "%s: mixed", what);
    float *x2 = malloc((size_t)(2 * s.xs) * sizeof *x2), *y2 = malloc((size_t)(2 * s.ys) * sizeof *y2);
    memcpy(x2, x + 2 * s.xs, (size_t)s.xs * sizeof *x2);
    memcpy(x2 + s.xs, x + 4 * s.xs, (size_t)s.xs * sizeof *x2);
    run(cpu, &s, y2, x2, &Wbv, b, 2);
    LF_CHECK(!memcmp(y + 2 * s.ys, y2, (size_t)s.ys * sizeof *y) && !memcmp(y + 4 * s.ys, y2 + s.ys, (size_t)s.ys * sizeof *y),
             "%s: a slot's own weight is not bit for bit its samples' product", what);
    /* no samples set, or another weight: the inner op itself */
    float *y3 = malloc((size_t)(S * s.ys) * sizeof *y3);
    run(cpu, &s, y3, x, &W0v, b, S);
    m.n_samples = 0;
    run(&m.c, &s, y, x, &W0v, b, S);
    LF_CHECK(!memcmp(y, y3, (size_t)(S * s.ys) * sizeof *y), "%s: n_samples 0 is not the inner op", what);
    m.n_samples = S;
    lf_view other = wview(Wb, &s);
    run(cpu, &s, y3, x, &other, b, S);
    run(&m.c, &s, y, x, &other, b, S);
    LF_CHECK(!memcmp(y, y3, (size_t)(S * s.ys) * sizeof *y), "%s: a layer not listed is not the inner op", what);
    lf_compute_mix_free(&m);
    for (int i = 0; i < nf; i++) free(f[i]);
    free(W0), free(Wb), free(b), free(x), free(y), free(ref), free(acc), free(We), free(x2), free(y2), free(y3);
}

/* stand-ins for a backend's fused ops (never called: only the table is checked) */
static lf_status stub_conv2d_add(lf_compute *c, float *y, const float *x, const lf_view *W, const float *b,
                                 const float *res, int64_t N, int64_t C_in, int64_t H, int64_t Wd, int64_t C_out,
                                 int64_t kh, int64_t kw, int64_t stride, int64_t pad) {
    return LF_ERR_UNSUPPORTED;
}
static lf_status stub_group_norm_silu(lf_compute *c, float *y, const float *x, const float *gamma, const float *beta,
                                      int64_t N, int64_t C, int64_t spatial, int64_t groups, float eps) {
    return LF_ERR_UNSUPPORTED;
}

int main(void) {
    lf_test_rng g;
    lf_test_rng_seed(&g, 15);
    shape lin = {0};
    lin.in = 24, lin.out = 20, lin.r = 3;
    check_layer("linear", lin, &g);
    shape conv = {0};
    conv.conv = 1, conv.C_in = 5, conv.H = 6, conv.Wd = 7, conv.C_out = 6, conv.k = 3, conv.stride = 1, conv.pad = 1;
    check_layer("conv 3x3", conv, &g);
    conv.tucker = 1, conv.stride = 2;
    check_layer("conv 3x3 stride 2, Tucker", conv, &g);
    /* a linear whose rows are not whole samples is an error, not a wrong answer */
    lf_compute_mix m;
    lf_compute_mix_init(&m, lf_compute_cpu());
    float w[4] = {1, 2, 3, 4}, xx[6] = {0}, yy[6];
    lf_mix_slot sl[3] = {{NULL, NULL, 0}, {NULL, NULL, 0}, {NULL, NULL, 0}};
    lf_mix_layer L = {w, sl};
    m.layers = &L, m.n_layers = 1, m.n_slots = 3, m.slot_of = slot_of, m.n_samples = S;
    lf_view wv = lf_test_view(w, LF_F32, 2, 2, 2, 0, 0);
    LF_CHECK(m.c.linear(&m.c, yy, xx, &wv, NULL, 3, 2, 2) == LF_ERR_SHAPE, "3 rows over 5 samples");
    lf_compute_mix_free(&m);
    /* over a backend with the fused ops: conv2d_add would bypass the per-sample conv2d, so the mix has
     * none (the model composes it through the mix's conv2d); group_norm_silu has no weight and passes */
    lf_compute fused = *lf_compute_cpu();
    fused.conv2d_add = stub_conv2d_add;
    fused.group_norm_silu = stub_group_norm_silu;
    lf_compute_mix_init(&m, &fused);
    LF_CHECK(m.c.conv2d_add == NULL && m.c.group_norm_silu == stub_group_norm_silu && m.c.conv2d != fused.conv2d,
             "mix over a fused backend: conv2d_add composed through its own conv2d, group_norm_silu passed on");
    lf_compute_mix_free(&m);
    return lf_test_finish();
}
