/* bench_unet_cpu.c: one UNet step of full-size SD1.5 and SDXL on the f32 CPU backend (lf_unet.h), with
 * random weights generated in memory for the real architecture (lf_unet_spec, no file), against the
 * machine's BLAS sgemm peak measured in the same run. One JSON line per measurement.
 *
 *   lf_bench_unet_cpu [--model sd15|sdxl|both] [--size-sd15 PX] [--size-sdxl PX] [--batch N]
 *                     [--steps N] [--sgemm N] [--share-sd15 0|1] [--share-sdxl 0|1] [--f16-ab 0|1]
 * --f16-ab 1: the weights are rounded to f16 values and the model is loaded twice, once with f32 weights
 * and once with the same values stored as f16 (converted per operator call, lf_nn.h); the steps alternate
 * f32, f16, f32, f16, ... in one process (so other load on the machine hits both alike), each line says
 * which ("weights_dtype"), its wall and CPU seconds, and whether its output equals the f32 model's bit for
 * bit ("identical"). The figure of the stored-dtype change: f16 seconds over f32 seconds.
 * Defaults (a run of about 3 minutes on 2 cores): SD1.5 at 512x512 (latent 64x64), SDXL at 512x512
 * (latent 64x64; pass --size-sdxl 1024 for the real 1024x1024, 128x128 latent: about 4x the work),
 * batch 2 (CFG), context 77 tokens (768 / 2048 wide), 1 timed step each, sgemm 2048^3.
 * Weights: SD1.5 holds every tensor (3.4 GB f32). SDXL shares one random buffer per distinct shape
 * (--share-sdxl 1, the default) because its 2.6e9 f32 parameters (10.3 GB) would exceed the 8 GB
 * budget; FLOPs and activations are those of the real model, only the weight memory is smaller (its
 * cache behaviour is unchanged for the large matrices, whose operands exceed the caches anyway).
 * FLOPs: counted per operator from the structure (2 * multiply-adds of every conv, Linear and the two
 * attention products; GroupNorm, LayerNorm, SiLU, GEGLU, softmax and adds are not counted, < 1%).
 * Peak RSS from getrusage; the activation peak of one forward replayed buffer by buffer (model_mem.h) is
 * printed first ("unet_cpu_activations"); --steps 0 prints only that. Results: bench/RESULTS.md.
 */
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "lorafuse/lf_unet.h"
#include "host/base/util.h"
#include "host/runtime/model_mem.h"
#include "tests/common/lf_test_rng.h"

/* The random weights and inputs: U[-1, 1) from one fixed-seed stream, in the order drawn below. */
static lf_test_rng rng = {LF_TEST_RNG_SEED};

/* ---- FLOPs per operator ---------------------------------------------------------------------- */
typedef struct flops {
    double conv, linear, attn;
} flops;

static void f_res(flops *f, double cin, double cout, double T, double H, double W) {
    f->conv += 2 * cout * cin * 9 * H * W + 2 * cout * cout * 9 * H * W + (cin != cout ? 2 * cout * cin * H * W : 0);
    f->linear += 2 * cout * T;
}

static void f_xf(flops *f, double C, double H, double W, int depth, double ctx, double L, int linear) {
    double S = H * W;
    (linear ? &f->linear : &f->conv)[0] += 2 * 2 * C * C * S; /* proj_in, proj_out */
    for (int d = 0; d < depth; d++) {
        f->linear += 4 * 2 * C * C * S;                     /* attn1 q k v out */
        f->attn += 2 * 2 * S * S * C;                       /* q k^T, p v */
        f->linear += 2 * 2 * C * C * S + 2 * 2 * C * ctx * L; /* attn2 q, out; k, v on the context */
        f->attn += 2 * 2 * S * L * C;
        f->linear += 2 * 8 * C * C * S + 2 * C * 4 * C * S; /* GEGLU ff */
    }
}

static flops unet_flops(const lf_unet_spec *s, double H, double W, double L, double N) {
    flops f = {0, 0, 0};
    double C0 = (double)s->channels[0], T = 4 * C0;
    f.linear += 2 * T * C0 + 2 * T * T + (s->adm_in_channels ? 2 * T * (double)s->adm_in_channels + 2 * T * T : 0);
    f.conv += 2 * C0 * (double)s->in_channels * 9 * H * W;
    double skips[64], ch = C0;
    int ns = 0;
    skips[ns++] = ch;
    for (int lv = 0; lv < s->n_levels; lv++) {
        for (int j = 0; j < s->layers_per_block; j++) {
            f_res(&f, ch, (double)s->channels[lv], T, H, W);
            ch = (double)s->channels[lv];
            if (s->depth[lv]) f_xf(&f, ch, H, W, s->depth[lv], (double)s->context_dim, L, s->linear_proj);
            skips[ns++] = ch;
        }
        if (lv != s->n_levels - 1) {
            H /= 2, W /= 2;
            f.conv += 2 * ch * ch * 9 * H * W;
            skips[ns++] = ch;
        }
    }
    f_res(&f, ch, ch, T, H, W);
    if (s->depth_mid) f_xf(&f, ch, H, W, s->depth_mid, (double)s->context_dim, L, s->linear_proj);
    f_res(&f, ch, ch, T, H, W);
    for (int lv = s->n_levels - 1; lv >= 0; lv--) {
        for (int j = 0; j <= s->layers_per_block; j++) {
            f_res(&f, ch + skips[--ns], (double)s->channels[lv], T, H, W);
            ch = (double)s->channels[lv];
            if (s->depth[lv]) f_xf(&f, ch, H, W, s->depth[lv], (double)s->context_dim, L, s->linear_proj);
            if (lv > 0 && j == s->layers_per_block) {
                H *= 2, W *= 2;
                f.conv += 2 * ch * ch * 9 * H * W;
            }
        }
    }
    f.conv += 2 * (double)s->out_channels * ch * 9 * H * W;
    f.conv *= N, f.linear *= N, f.attn *= N;
    return f;
}

/* ---- sgemm peak -------------------------------------------------------------------------------- */
static double sgemm_peak(int n) {
    float *a = malloc((size_t)n * n * sizeof(float)), *b = malloc((size_t)n * n * sizeof(float)),
          *c = malloc((size_t)n * n * sizeof(float));
    if (!a || !b || !c) return 0;
    for (size_t i = 0; i < (size_t)n * n; i++) {
        a[i] = lf_test_rng_signed(&rng);
        b[i] = lf_test_rng_signed(&rng);
        c[i] = 0;
    }
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = lf_clock_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double dt = lf_clock_s() - t0;
        if (dt < best) best = dt;
    }
    free(a), free(b), free(c);
    return 2.0 * n * (double)n * n / best / 1e9;
}

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

/* ---- one model ------------------------------------------------------------------------------- */
static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int run_model(const char *name, const lf_unet_spec *s, int heads, int head_dim, int px, int batch,
                     int steps, int share, double peak, int ab) {
    lf_unet_tensor *ts = NULL;
    size_t n = 0;
    if (lf_unet_spec_tensors(s, &ts, &n) != LF_OK) {
        fprintf(stderr, "%s: %s\n", name, lf_last_error());
        return 1;
    }
    const char **names = calloc(n, sizeof *names);
    lf_view *views = calloc(n, sizeof *views);
    float **own = calloc(n, sizeof *own);
    double t_gen = lf_clock_s();
    int64_t params = 0, held = 0;
    for (size_t i = 0; i < n; i++) {
        names[i] = ts[i].name;
        views[i].dtype = LF_F32;
        views[i].ndim = ts[i].ndim;
        int64_t numel = 1;
        for (int d = 0; d < ts[i].ndim; d++) views[i].shape[d] = ts[i].shape[d], numel *= ts[i].shape[d];
        params += numel;
        size_t same = i;
        if (share && ts[i].ndim > 1)
            for (size_t k = 0; k < i && same == i; k++)
                if (own[k] && views[k].ndim == ts[i].ndim &&
                    !memcmp(views[k].shape, views[i].shape, sizeof(int64_t) * (size_t)ts[i].ndim))
                    same = k;
        if (same != i) {
            views[i].data = views[same].data;
            continue;
        }
        float *p = malloc((size_t)numel * sizeof(float));
        if (!p) {
            fprintf(stderr, "%s: out of memory for the weights\n", name);
            return 1;
        }
        own[i] = p;
        held += numel;
        lf_test_rng_weight(&rng, p, ts[i].name, ts[i].ndim, ts[i].shape); /* norm gamma 1, biases small */
        views[i].data = p;
        if (ab) { /* f16-exact values, so both models hold the same numbers */
            uint16_t *h = malloc((size_t)numel * sizeof *h);
            if (!h) return 1;
            lf_f32_to_dtype(p, numel, LF_F16, h);
            lf_view hv = views[i];
            hv.data = h;
            hv.dtype = LF_F16;
            lf_view_to_f32(&hv, p);
            free(h);
        }
    }
    t_gen = lf_clock_s() - t_gen;
    lf_unet_opts o = {NULL, heads, head_dim, 32};
    lf_unet *u = NULL;
    if (lf_unet_load_views(names, views, n, 1, name, &o, &u) != LF_OK) {
        fprintf(stderr, "%s: %s\n", name, lf_last_error());
        return 1;
    }
    int64_t H = px / 8, W = px / 8, L = 77, N = batch, C = s->context_dim;
    float *x = malloc((size_t)(N * 4 * H * W) * sizeof(float)), *out = malloc((size_t)(N * 4 * H * W) * sizeof(float));
    float *ctx = malloc((size_t)(N * L * C) * sizeof(float)), t[64], *y = NULL;
    for (int64_t i = 0; i < N * 4 * H * W; i++) x[i] = lf_test_rng_signed(&rng);
    for (int64_t i = 0; i < N * L * C; i++) ctx[i] = lf_test_rng_signed(&rng);
    for (int64_t i = 0; i < N && i < 64; i++) t[i] = 500.0f;
    if (s->adm_in_channels) {
        y = malloc((size_t)(N * s->adm_in_channels) * sizeof(float));
        for (int64_t i = 0; i < N * s->adm_in_channels; i++) y[i] = lf_test_rng_signed(&rng);
    }
    lf_unet *u16 = NULL;
    float *ref = NULL;
    if (ab) { /* the same values stored as f16, copied by the loader */
        lf_view *v16 = calloc(n, sizeof *v16);
        void **h = calloc(n, sizeof *h);
        for (size_t i = 0; i < n && v16 && h; i++) {
            v16[i] = views[i];
            if (views[i].ndim < 2) continue;
            int64_t numel = 1;
            for (int d = 0; d < views[i].ndim; d++) numel *= views[i].shape[d];
            if ((h[i] = malloc((size_t)numel * 2)) == NULL) break;
            lf_f32_to_dtype(views[i].data, numel, LF_F16, h[i]);
            v16[i].data = h[i];
            v16[i].dtype = LF_F16;
        }
        lf_status ls = lf_unet_load_views(names, v16, n, 0, name, &o, &u16);
        for (size_t i = 0; i < n && h; i++) free(h[i]);
        free(h), free(v16);
        ref = malloc((size_t)(N * 4 * H * W) * sizeof(float));
        if (ls != LF_OK || !ref) {
            fprintf(stderr, "%s: %s\n", name, lf_last_error());
            return 1;
        }
    }
    printf("{\"bench\":\"unet_cpu_activations\",\"model\":\"%s\",\"pixels\":%d,\"batch\":%lld,"
           "\"activation_peak_gb\":%.3f}\n", name, px, (long long)N, (double)lf_unet_forward_peak(u, N, H, W, L) / 1e9);
    fflush(stdout);
    flops f = unet_flops(s, (double)H, (double)W, (double)L, (double)N);
    double gflop = (f.conv + f.linear + f.attn) / 1e9;
    for (int st = 0; st < (ab ? 2 * steps : steps); st++) {
        int half = ab && st % 2; /* the f16 model's turn */
        double t0 = lf_clock_s(), c0 = cpu_s();
        lf_status rs = lf_unet_forward(half ? u16 : u, out, x, t, ctx, L, y, N, H, W);
        double dt = lf_clock_s() - t0, dc = cpu_s() - c0;
        int same = 1;
        if (ab && !half) memcpy(ref, out, (size_t)(N * 4 * H * W) * sizeof(float));
        if (half) same = !memcmp(ref, out, (size_t)(N * 4 * H * W) * sizeof(float));
        if (rs != LF_OK) {
            fprintf(stderr, "%s: %s\n", name, lf_last_error());
            return 1;
        }
        double sum = 0;
        for (int64_t i = 0; i < N * 4 * H * W; i++) sum += out[i];
        printf("{\"bench\":\"unet_cpu\",\"model\":\"%s\",\"pixels\":%d,\"latent\":%lld,\"batch\":%lld,\"context\":[%lld,%lld],"
               "\"step\":%d,\"seconds\":%.3f,\"gflop\":%.1f,\"gflop_conv\":%.1f,\"gflop_linear\":%.1f,\"gflop_attention\":%.1f,"
               "\"gflops\":%.2f,\"sgemm_peak_gflops\":%.2f,\"fraction_of_peak\":%.3f,\"params\":%lld,"
               "\"weights_held_gb\":%.2f,\"shared_weights\":%d,\"init_s\":%.1f,\"peak_rss_mb\":%.0f,\"checksum\":%.6g,"
               "\"weights_dtype\":\"%s\",\"cpu_s\":%.3f,\"identical\":%s}\n",
               name, px, (long long)H, (long long)N, (long long)L, (long long)C, ab ? st / 2 + 1 : st + 1, dt, gflop,
               f.conv / 1e9, f.linear / 1e9, f.attn / 1e9, gflop / dt, peak, gflop / dt / peak, (long long)params,
               (double)held * 4 / 1e9, share, t_gen, peak_rss_mb(), sum, half ? "f16" : "f32", dc,
               same ? "true" : "false");
        fflush(stdout);
    }
    lf_unet_free(u);
    lf_unet_free(u16);
    free(ref);
    for (size_t i = 0; i < n; i++) free(own[i]);
    free(own), free(views), free(names), free(ts), free(x), free(out), free(ctx), free(y);
    return 0;
}

int main(int argc, char **argv) {
    const char *model = "both";
    int px15 = 512, pxxl = 512, batch = 2, steps = 1, gemm = 2048, share15 = 0, sharexl = 1, ab = 0;
    for (int i = 1; i < argc; i += 2) { /* every option takes one value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "usage: %s [--model sd15|sdxl|both] [--size-sd15 PX] [--size-sdxl PX] [--batch N] "
                            "[--steps N] [--sgemm N] [--share-sd15 0|1] [--share-sdxl 0|1] [--f16-ab 0|1]\n", argv[0]);
            return 2;
        }
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--size-sd15")) px15 = atoi(v);
        else if (!strcmp(a, "--size-sdxl")) pxxl = atoi(v);
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--steps")) steps = atoi(v);
        else if (!strcmp(a, "--sgemm")) gemm = atoi(v);
        else if (!strcmp(a, "--share-sd15")) share15 = atoi(v);
        else if (!strcmp(a, "--share-sdxl")) sharexl = atoi(v);
        else if (!strcmp(a, "--f16-ab")) ab = atoi(v);
        else {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        }
    }
    if (batch < 1 || batch > 64 || steps < 0 || px15 % 64 || pxxl % 32 || px15 < 64 || pxxl < 32 || gemm < 64) {
        fprintf(stderr, "bad sizes: pixels must be multiples of 64 (SD1.5) / 32 (SDXL), batch 1..64\n");
        return 2;
    }
    double peak = sgemm_peak(gemm);
    printf("{\"bench\":\"sgemm_peak\",\"n\":%d,\"gflops\":%.2f}\n", gemm, peak);
    fflush(stdout);
    int rc = 0;
    if (!strcmp(model, "sd15") || !strcmp(model, "both")) {
        lf_unet_spec s = {4, 4, 4, {320, 640, 1280, 1280}, 2, {1, 1, 1, 0}, 1, 768, 0, 0, 0};
        rc |= run_model("sd15", &s, 8, 0, px15, batch, steps, share15, peak, ab);
    }
    if (!strcmp(model, "sdxl") || !strcmp(model, "both")) {
        lf_unet_spec s = {4, 4, 3, {320, 640, 1280}, 2, {0, 2, 10}, 10, 2048, 2816, 1, 0};
        rc |= run_model("sdxl", &s, 0, 64, pxxl, batch, steps, sharexl, peak, ab);
    }
    return rc;
}
