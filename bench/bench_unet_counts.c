/* bench_unet_counts.c: what one CFG step of the full-size SD1.5 and SDXL UNets asks of a compute
 * backend, counted without weights or arithmetic, against the floors of the GPUs we target.
 *
 * The UNet forward (lf_unet_forward_on) runs on a dry counting compute (host/runtime/compute_count.h)
 * over a model of the real structure (lf_unet_spec_tensors) whose weights share one zero buffer (the
 * loader checks every value is finite):
 * the calls (kernel launches of a backend that maps each op to one kernel), FLOPs and bytes per op kind
 * are those of the real pass. Per op kind and in total:
 *   floor_us = max(FLOPs / peak tensor FLOP/s, bytes / memory bandwidth), summed over the calls' kinds
 * (a lower bound: every op at the roofline, no launch gaps). The count runs with f16 activations (the
 * counting compute's act: the CUDA compute's default, --dtype f16), so its bytes are f16 traffic; they are
 * reported with f16 weights as "gb_f16act" and, for comparison, with f32 activations ("gb_f32act": --dtype
 * f32's activations with f16 weights). Device figures (dense f16 tensor FLOP/s, HBM bandwidth, from NVIDIA's
 * data sheets): H100 SXM 989 TFLOP/s, 3.35 TB/s; H200 989 TFLOP/s, 4.8 TB/s.
 *
 *   lf_bench_unet_counts [--model sd15|sdxl|both] [--batch N ...] [--fused]   (images per step; CFG doubles
 *   them; --fused: a backend with the fused conv2d_add and group_norm_silu, as the CUDA one)
 * One JSON line per (model, batch, op kind) and a total line per (model, batch). Results: bench/RESULTS.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/runtime/compute_count.h"
#include "host/runtime/model_compute.h"
#include "lorafuse/lf_unet.h"

typedef struct gpu {
    const char *name;
    double flops, bw; /* FLOP/s, bytes/s */
} gpu;

static const gpu GPUS[] = {{"h100_sxm", 989e12, 3.35e12}, {"h200", 989e12, 4.8e12}};
enum { N_GPUS = sizeof GPUS / sizeof GPUS[0] };

/* bytes of one op kind with f16 weights (the views are f32 here) and f16 activations (as counted) or f32 */
static double op_bytes(const lf_cop_stats *s, int f16_act) {
    double w = s->weight_bytes / 2, act = s->bytes - s->weight_bytes;
    return w + (f16_act ? act : 2 * act);
}

static double floor_us(double flops, double bytes, const gpu *g) {
    double tf = flops / g->flops, tb = bytes / g->bw;
    return 1e6 * (tf > tb ? tf : tb);
}

static int run(const char *name, const lf_unet_spec *s, int heads, int head_dim, int px, int images, int fused) {
    lf_unet_tensor *ts = NULL;
    size_t n = 0;
    if (lf_unet_spec_tensors(s, &ts, &n) != LF_OK) {
        fprintf(stderr, "%s: %s\n", name, lf_last_error());
        return 1;
    }
    const char **names = calloc(n, sizeof *names);
    lf_view *views = calloc(n, sizeof *views);
    int64_t most = 1;
    for (size_t i = 0; i < n; i++) {
        int64_t e = 1;
        for (int d = 0; d < ts[i].ndim; d++) e *= ts[i].shape[d];
        if (e > most) most = e;
    }
    float *zeros = calloc((size_t)most, sizeof *zeros);
    static float placeholder[1]; /* the activations: a dry compute never reads them */
    for (size_t i = 0; names && views && zeros && i < n; i++) {
        names[i] = ts[i].name;
        views[i].data = zeros;
        views[i].dtype = LF_F32;
        views[i].ndim = ts[i].ndim;
        for (int d = 0; d < ts[i].ndim; d++) views[i].shape[d] = ts[i].shape[d];
    }
    lf_unet_opts o = {NULL, heads, head_dim, 32};
    lf_unet *u = NULL;
    if (!names || !views || !zeros || lf_unet_load_views(names, views, n, 1, name, &o, &u) != LF_OK) {
        fprintf(stderr, "%s: %s\n", name, lf_last_error());
        free(ts), free(names), free(views), free(zeros);
        return 1;
    }
    int64_t N = 2 * images, H = px / 8, W = px / 8, L = 77;
    float *t = calloc((size_t)N, sizeof *t), *p = placeholder;
    lf_compute_count cc;
    if (fused) lf_compute_count_init_fused(&cc);
    else lf_compute_count_init(&cc, NULL);
    cc.c.act = LF_F16; /* activations counted in 2 bytes, as the CUDA compute stores them by default */
    lf_status st = lf_unet_forward_on(u, &cc.c, p, p, t, p, L, s->adm_in_channels ? p : NULL, N, H, W);
    if (st != LF_OK) {
        fprintf(stderr, "%s: %s\n", name, lf_last_error());
    } else {
        double tot_f = 0, tot_b32 = 0, tot_b16 = 0, tot_us[N_GPUS] = {0};
        uint64_t calls = 0;
        for (int op = 0; op < LF_COP_COUNT; op++) {
            const lf_cop_stats *k = &cc.op[op];
            if (!k->calls) continue;
            double b32 = op_bytes(k, 0), b16 = op_bytes(k, 1);
            printf("{\"bench\":\"unet_counts\",\"model\":\"%s\",\"pixels\":%d,\"images\":%d,\"fused\":%d,"
                   "\"op\":\"%s\",\"calls\":%llu,\"gflop\":%.3f,\"gb_f32act\":%.4f,\"gb_f16act\":%.4f",
                   name, px, images, fused, lf_cop_name((lf_cop)op), (unsigned long long)k->calls, k->flops / 1e9, b32 / 1e9,
                   b16 / 1e9);
            for (int g = 0; g < N_GPUS; g++) {
                double us = floor_us(k->flops, b16, &GPUS[g]);
                tot_us[g] += us;
                printf(",\"floor_us_%s\":%.1f", GPUS[g].name, us);
            }
            printf("}\n");
            calls += k->calls, tot_f += k->flops, tot_b32 += b32, tot_b16 += b16;
        }
        printf("{\"bench\":\"unet_counts\",\"model\":\"%s\",\"pixels\":%d,\"images\":%d,\"fused\":%d,"
               "\"op\":\"total\",\"calls\":%llu,\"gflop\":%.2f,\"gb_f32act\":%.3f,\"gb_f16act\":%.3f,"
               "\"activation_peak_gb\":%.3f",
               name, px, images, fused, (unsigned long long)calls, tot_f / 1e9, tot_b32 / 1e9, tot_b16 / 1e9, cc.peak / 1e9);
        for (int g = 0; g < N_GPUS; g++) printf(",\"floor_ms_%s\":%.2f", GPUS[g].name, tot_us[g] / 1e3);
        printf("}\n");
    }
    lf_compute_count_free(&cc);
    free(t);
    lf_unet_free(u);
    free(ts), free(names), free(views), free(zeros);
    return st != LF_OK;
}

int main(int argc, char **argv) {
    const char *which = "both";
    int batches[8], nb = 0, fused = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) which = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc && nb < 8) batches[nb++] = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--fused")) fused = 1;
        else {
            fprintf(stderr, "usage: %s [--model sd15|sdxl|both] [--batch N ...] [--fused]\n", argv[0]);
            return 2;
        }
    }
    if (!nb) batches[nb++] = 1, batches[nb++] = 4, batches[nb++] = 8;
    int rc = 0;
    for (int b = 0; b < nb; b++) {
        if (strcmp(which, "sdxl")) {
            lf_unet_spec s = {4, 4, 4, {320, 640, 1280, 1280}, 2, {1, 1, 1, 0}, 1, 768, 0, 0, 0};
            rc |= run("sd15", &s, 8, 0, 512, batches[b], fused);
        }
        if (strcmp(which, "sd15")) {
            lf_unet_spec s = {4, 4, 3, {320, 640, 1280}, 2, {0, 2, 10}, 10, 2048, 2816, 1, 0};
            rc |= run("sdxl", &s, 0, 64, 1024, batches[b], fused);
        }
    }
    return rc;
}
