/* bench_unet_gpu.c: one CFG step of the full-size SD1.5 and SDXL UNets on the CUDA compute (docs/cuda.md),
 * timed, beside the floors of bench_unet_counts.c: the step figures (targets on one H100: SD1.5
 * 512² <= 9.6 ms, SDXL 1024² <= 46 ms per CFG step at batch 1).
 *
 * The model has the real structure (lf_unet_spec_tensors) and f16 weights, every tensor in its own
 * host buffer (so every weight has its own resident device copy, as a checkpoint's would: shared buffers
 * would let the device read one copy from its L2 cache), filled from one pool of random f16 values
 * U[-0.02, 0.02) at a random offset per tensor, norms' gammas 1. A step is one lf_unet_forward_on of
 * N = 2 x images samples (CFG: both halves in one call) at the latent size px / 8, context 77 tokens.
 *
 *   lf_bench_unet_gpu [--model sd15|sdxl|both|tiny] [--batch N ...] [--steps N] [--device N]
 *                     [--dtype f16|bf16|f32]   (weights and activations on the device, as generate's --dtype)
 * Per (model, images): one warm-up step, then --steps timed steps (default 5), each ended by the
 * compute's sync: JSON {"bench":"unet_gpu", ..., "ms_min", "ms_mean", "images_per_s", ...}; then the
 * time per op kind of one step under the compute's op clock ("ms": CUDA events around each op, NVTX ranges
 * for Nsight, no wait per op) and of one step under the synced count ("ms_synced": every op between two
 * syncs, launch latency included) as {"bench":"unet_gpu_ops", "op", "calls", "ms", "ms_synced", "gflop",
 * "gb"} lines, and
 * which path the convolutions, attention and Linear layers took (cuDNN / cuBLASLt or the fallback).
 * --model tiny (2 levels of 32 and 64 channels, 64 px) is the smoke test the emulation runs (ctest
 * bench_unet_gpu_tiny).
 * Exit 77 with a "skipped" line when no CUDA device opens. Results: bench/RESULTS.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/base/util.h"
#include "host/cuda/compute_cuda.h"
#include "host/runtime/compute_count.h"
#include "host/runtime/model_compute.h"
#include "host/runtime/weight_load.h"
#include "kernels/common/lf_half.h"
#include "lorafuse/lf_unet.h"
#include "tests/common/lf_test_rng.h"

#define POOL (1 << 24) /* random f16 values the weights are copied from */

typedef struct model {
    const char *name;
    lf_unet_spec s;
    int heads, head_dim, px;
} model;

static const model MODELS[] = {
    {"sd15", {4, 4, 4, {320, 640, 1280, 1280}, 2, {1, 1, 1, 0}, 1, 768, 0, 0, 0}, 8, 0, 512},
    {"sdxl", {4, 4, 3, {320, 640, 1280}, 2, {0, 2, 10}, 10, 2048, 2816, 1, 0}, 0, 64, 1024},
    {"tiny", {4, 4, 2, {32, 64}, 1, {1, 1}, 1, 64, 0, 0, 0}, 2, 0, 64},
};

/* The model's weights, each tensor its own f16 buffer (*bufs, n of them, to free). */
static lf_status load(const model *m, const uint16_t *pool, lf_unet **u, uint16_t ***bufs, size_t *nb,
                      double *weight_gb) {
    lf_unet_tensor *ts = NULL;
    size_t n = 0;
    lf_status st = lf_unet_spec_tensors(&m->s, &ts, &n);
    if (st != LF_OK) return st;
    const char **names = calloc(n, sizeof *names);
    lf_view *views = calloc(n, sizeof *views);
    uint16_t **b = calloc(n, sizeof *b);
    lf_test_rng r;
    lf_test_rng_seed(&r, lf_test_fnv1a(m->name, strlen(m->name)));
    *weight_gb = 0;
    for (size_t i = 0; names && views && b && i < n; i++) {
        int64_t e = 1;
        for (int d = 0; d < ts[i].ndim; d++) e *= ts[i].shape[d];
        if (!(b[i] = malloc((size_t)e * 2))) break;
        size_t nl = strlen(ts[i].name);
        if (ts[i].ndim == 1 && nl > 7 && !strcmp(ts[i].name + nl - 7, ".weight")) {
            for (int64_t k = 0; k < e; k++) b[i][k] = lf_f32_to_f16(1.0f);
        } else {
            for (int64_t k = 0; k < e; k += POOL) { /* tensors larger than the pool take several slices */
                int64_t len = e - k < POOL ? e - k : POOL;
                memcpy(b[i] + k, pool + lf_test_rng_next(&r) % (uint64_t)(POOL - len + 1), (size_t)len * 2);
            }
        }
        names[i] = ts[i].name;
        views[i].data = b[i];
        views[i].dtype = LF_F16;
        views[i].ndim = ts[i].ndim;
        for (int d = 0; d < ts[i].ndim; d++) views[i].shape[d] = ts[i].shape[d];
        *weight_gb += (double)e * 2 / 1e9;
    }
    lf_unet_opts o = {NULL, m->heads, m->head_dim, 32};
    int complete = names && views && b && b[n - 1];
    st = complete ? lf_unet_load_views(names, views, n, 1, m->name, &o, u)
                  : lf_err(LF_ERR_NOMEM, "%s: out of host memory for the weights", m->name);
    *bufs = b;
    *nb = n;
    free(ts), free(names), free(views);
    return st;
}

/* the runtime's weight watcher: converted weights the model frees leave the compute's resident copies */
static void forget(void *ctx, const void *p, size_t bytes) {
    lf_compute *c = ctx;
    c->forget(c, p, bytes);
}

static void free_bufs(uint16_t **b, size_t n) {
    for (size_t i = 0; b && i < n; i++) free(b[i]);
    free(b);
}

/* backend memory with n values U[-1, 1) */
static lf_status dev_random(lf_compute *c, lf_test_rng *r, int64_t n, float **out) {
    float *h = malloc((size_t)n * sizeof *h);
    if (!h) return lf_err(LF_ERR_NOMEM, "out of host memory");
    for (int64_t i = 0; i < n; i++) h[i] = lf_test_rng_signed(r);
    lf_status st = c->alloc(c, n, out);
    if (st == LF_OK) st = c->upload(c, *out, h, n);
    free(h);
    return st;
}

static lf_status step(const lf_unet *u, lf_compute *c, const model *m, float *out, const float *x, const float *t,
                      const float *ctx, const float *y, int64_t N) {
    lf_status st = lf_unet_forward_on(u, c, out, x, t, ctx, 77, y, N, m->px / 8, m->px / 8);
    return st != LF_OK ? st : c->sync(c);
}

static int run(const model *m, lf_compute *c, const lf_unet *u, double weight_gb, int images, int steps) {
    const int64_t N = 2 * (int64_t)images, H = m->px / 8, lat = N * 4 * H * H;
    float *x = NULL, *out = NULL, *ctx = NULL, *y = NULL, t[64];
    lf_test_rng r;
    lf_test_rng_seed(&r, LF_TEST_RNG_SEED);
    for (int64_t i = 0; i < N && i < 64; i++) t[i] = 500.0f;
    lf_status st = N > 64 ? lf_err(LF_ERR_ARG, "at most 32 images") : LF_OK;
    if (st == LF_OK) st = dev_random(c, &r, lat, &x);
    if (st == LF_OK) st = c->alloc(c, lat, &out);
    if (st == LF_OK) st = dev_random(c, &r, N * 77 * m->s.context_dim, &ctx);
    if (st == LF_OK && m->s.adm_in_channels) st = dev_random(c, &r, N * m->s.adm_in_channels, &y);
    if (st == LF_OK) st = step(u, c, m, out, x, t, ctx, y, N); /* warm-up: weights resident, plans built */
    double best = 1e30, sum = 0;
    for (int k = 0; k < steps && st == LF_OK; k++) {
        double t0 = lf_clock_s();
        st = step(u, c, m, out, x, t, ctx, y, N);
        double dt = lf_clock_s() - t0;
        sum += dt;
        if (dt < best) best = dt;
    }
    if (st == LF_OK) {
        printf("{\"bench\":\"unet_gpu\",\"model\":\"%s\",\"pixels\":%d,\"images\":%d,\"samples\":%lld,"
               "\"steps\":%d,\"ms_min\":%.3f,\"ms_mean\":%.3f,\"images_per_s\":%.2f,\"weights_gb\":%.3f}\n",
               m->name, m->px, images, (long long)N, steps, best * 1e3, sum / steps * 1e3, images / best, weight_gb);
        /* the step once more under each profile: the compute's op clock (events, NVTX ranges: the device
         * time of each op in a running stream) and the synced count (each op alone, launch latency included) */
        lf_compute_count ev, cc;
        lf_op_clock clock;
        lf_compute_count_init_timed(&cc, c);
        if ((st = c->clock(c, &clock)) == LF_OK) {
            lf_compute_count_init_clocked(&ev, c, &clock);
            st = step(u, &ev.c, m, out, x, t, ctx, y, N);
            if (st == LF_OK) st = lf_compute_count_collect(&ev);
        } else {
            lf_compute_count_init(&ev, c);
        }
        if (st == LF_OK) st = step(u, &cc.c, m, out, x, t, ctx, y, N);
        for (int op = 0; op < LF_COP_COUNT && st == LF_OK; op++)
            if (cc.op[op].calls)
                printf("{\"bench\":\"unet_gpu_ops\",\"model\":\"%s\",\"images\":%d,\"op\":\"%s\",\"calls\":%llu,"
                       "\"ms\":%.3f,\"ms_synced\":%.3f,\"gflop\":%.3f,\"gb\":%.4f}\n",
                       m->name, images, lf_cop_name((lf_cop)op), (unsigned long long)cc.op[op].calls,
                       ev.op[op].seconds * 1e3, cc.op[op].seconds * 1e3, cc.op[op].flops / 1e9, cc.op[op].bytes / 1e9);
        if (st == LF_OK)
            printf("{\"bench\":\"unet_gpu_peak\",\"model\":\"%s\",\"images\":%d,\"activation_peak_gb\":%.3f}\n",
                   m->name, images, cc.peak / 1e9);
        lf_compute_count_free(&ev);
        lf_compute_count_free(&cc);
    }
    if (st != LF_OK) fprintf(stderr, "%s, %d images: %s\n", m->name, images, lf_last_error());
    c->release(c, x), c->release(c, out), c->release(c, ctx), c->release(c, y);
    return st != LF_OK;
}

int main(int argc, char **argv) {
    const char *which = "both";
    int batches[8], nb = 0, steps = 5, device = 0;
    lf_dtype dtype = LF_F16;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) which = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc && nb < 8) batches[nb++] = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--device") && i + 1 < argc) device = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc && lf_dtype_from_name(argv[i + 1]) != LF_DTYPE_INVALID)
            dtype = lf_dtype_from_name(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--model sd15|sdxl|both|tiny] [--batch N ...] [--steps N] [--device N] "
                    "[--dtype F16|BF16|F32]\n", argv[0]);
            return 2;
        }
    }
    if (steps < 1) steps = 1;
    if (!nb) batches[nb++] = 1, batches[nb++] = 4, batches[nb++] = 8;
    lf_compute *c = NULL;
    char desc[256] = "";
    if (lf_compute_cuda_device(device, dtype, &c, desc, sizeof desc) != LF_OK) {
        printf("{\"bench\":\"unet_gpu\",\"skipped\":\"%s\"}\n", lf_last_error());
        return 77;
    }
    printf("{\"bench\":\"unet_gpu_device\",\"device\":\"%s\",\"dtype\":\"%s\"}\n", desc, lf_dtype_name(dtype));
    lf_wts_watch(forget, c);
    uint16_t *pool = malloc((size_t)POOL * 2);
    lf_test_rng r;
    lf_test_rng_seed(&r, LF_TEST_RNG_SEED);
    for (size_t i = 0; pool && i < POOL; i++) pool[i] = lf_f32_to_f16(0.02f * lf_test_rng_signed(&r));
    int rc = !pool;
    for (size_t k = 0; pool && k < sizeof MODELS / sizeof MODELS[0]; k++) {
        const model *m = &MODELS[k];
        int want = !strcmp(which, m->name) || (!strcmp(which, "both") && strcmp(m->name, "tiny"));
        if (!want) continue;
        lf_unet *u = NULL;
        uint16_t **bufs = NULL;
        size_t n = 0;
        double wgb = 0;
        if (load(m, pool, &u, &bufs, &n, &wgb) != LF_OK) {
            fprintf(stderr, "%s: %s\n", m->name, lf_last_error());
            rc = 1;
        } else {
            for (int b = 0; b < nb; b++) rc |= run(m, c, u, wgb, batches[b], steps);
            lf_compute_cuda_paths p;
            lf_compute_cuda_paths_get(c, &p);
            printf("{\"bench\":\"unet_gpu_paths\",\"model\":\"%s\",\"conv_cudnn\":%llu,\"conv_fallback\":%llu,"
                   "\"attn_cudnn\":%llu,\"attn_fallback\":%llu,\"plans_built\":%llu,\"plans_refused\":%llu,"
                   "\"linear_lt\":%llu,\"linear_fallback\":%llu}\n",
                   m->name, (unsigned long long)p.conv_cudnn, (unsigned long long)p.conv_fallback,
                   (unsigned long long)p.attn_cudnn, (unsigned long long)p.attn_fallback,
                   (unsigned long long)p.plans_built, (unsigned long long)p.plans_refused,
                   (unsigned long long)p.linear_lt, (unsigned long long)p.linear_fallback);
        }
        /* the compute keeps resident copies by host address: drop them before the buffers go */
        for (size_t i = 0; bufs && i < n; i++)
            if (bufs[i]) c->forget(c, bufs[i], 1);
        lf_unet_free(u);
        free_bufs(bufs, n);
    }
    free(pool);
    lf_wts_watch(NULL, NULL);
    c->destroy(c);
    return rc;
}
