/* test_compute_count.c: the counting compute (host/runtime/compute_count.h).
 *
 * - Around the CPU compute it changes nothing: the tiny SD1.5 UNet through it gives lf_unet_forward's
 *   bytes, and a dry run (no arithmetic, placeholder buffers) asks for exactly the same calls, FLOPs,
 *   bytes and buffers as the real one.
 * - The counting rules on single calls with known shapes (compute_count.h's formulas).
 * - lf_unet_forward_peak (model_mem.h: the memory estimate of generate, a dry forward) equals the
 *   activation peak of the real forward counted here, less the caller's own buffers.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lf_test.h"
#include "lf_test_rng.h"

#include "host/runtime/compute_count.h"
#include "host/runtime/compute_cpu.h"
#include "host/runtime/model_compute.h"
#include "host/runtime/model_mem.h"

#define SD15 "tests/data/tiny/tiny-sd15.safetensors"

static void check_rules(void) {
    lf_compute_count cc;
    lf_compute_count_init(&cc, NULL);
    lf_compute *c = &cc.c;
    float *x = NULL, *y = NULL;
    LF_CHECK(c->alloc(c, 3 * 5, &x) == LF_OK && c->alloc(c, 3 * 7, &y) == LF_OK, "dry alloc");
    LF_CHECK(cc.live == 4.0 * (15 + 21) && cc.peak == cc.live && cc.allocs == 2, "live %g peak %g", cc.live, cc.peak);
    uint16_t w16[7 * 5] = {0};
    float b[7] = {0};
    lf_view W = {w16, LF_F16, 2, {7, 5}};
    LF_CHECK(c->linear(c, y, x, &W, b, 3, 5, 7) == LF_OK, "dry linear");
    const lf_cop_stats *s = &cc.op[LF_COP_LINEAR];
    LF_CHECK(s->calls == 1 && s->flops == 2.0 * 3 * 5 * 7, "linear FLOPs %g", s->flops);
    LF_CHECK(s->weight_bytes == 7 * 5 * 2 + 7 * 4 && s->bytes == 4.0 * (15 + 21) + s->weight_bytes,
             "linear bytes %g (weights %g)", s->bytes, s->weight_bytes);
    /* 3x3 conv, stride 2, pad 1 on 1x4x9x9 -> 1x6x5x5 */
    float *ci = NULL, *co = NULL;
    c->alloc(c, 4 * 81, &ci);
    c->alloc(c, 6 * 25, &co);
    float wc[6 * 4 * 9] = {0};
    lf_view Wc = {wc, LF_F32, 4, {6, 4, 3, 3}};
    LF_CHECK(c->conv2d(c, co, ci, &Wc, NULL, 1, 4, 9, 9, 6, 3, 3, 2, 1) == LF_OK, "dry conv");
    s = &cc.op[LF_COP_CONV2D];
    LF_CHECK(s->flops == 2.0 * 25 * 6 * 4 * 9 && s->bytes == 4.0 * (4 * 81 + 6 * 25) + 4.0 * 6 * 4 * 9,
             "conv FLOPs %g bytes %g", s->flops, s->bytes);
    LF_CHECK(strcmp(lf_cop_name(LF_COP_CONV2D), "conv2d") == 0 && strcmp(lf_cop_name(LF_COP_COPY2D), "copy2d") == 0,
             "op names");
    c->release(c, x), c->release(c, y), c->release(c, ci), c->release(c, co);
    LF_CHECK(cc.live == 0 && cc.n_bufs == 0, "all released: live %g, %zu buffers", cc.live, cc.n_bufs);
    c->destroy(c);
}

/* One UNet forward on c (N = 2, 8x6 latent, 5 tokens): inputs uploaded, output downloaded into out. */
static lf_status forward(const lf_unet *u, lf_compute *c, const float *x, const float *ctx, float *out, int64_t nx,
                         int64_t nctx) {
    const float t[2] = {999.0f, 250.0f};
    float *dx = NULL, *dctx = NULL, *dout = NULL;
    lf_status st = c->alloc(c, nx, &dx);
    if (!st) st = c->alloc(c, nctx, &dctx);
    if (!st) st = c->alloc(c, nx, &dout);
    if (!st) st = c->upload(c, dx, x, nx);
    if (!st) st = c->upload(c, dctx, ctx, nctx);
    if (!st) st = lf_unet_forward_on(u, c, dout, dx, t, dctx, 5, NULL, 2, 8, 6);
    if (!st) st = c->download(c, out, dout, nx);
    c->release(c, dx), c->release(c, dctx), c->release(c, dout);
    return st;
}

static void check_unet(void) {
    lf_st_file *f = NULL;
    lf_unet *u = NULL;
    lf_unet_opts o = {NULL, 4, 0, 4};
    if (lf_st_open(SD15, &f) != LF_OK || lf_unet_load(f, &o, &u) != LF_OK) {
        LF_CHECK(0, "load %s: %s", SD15, lf_last_error());
        lf_st_close(f);
        return;
    }
    const lf_unet_arch *a = lf_unet_get_arch(u);
    int64_t nx = 2 * a->in_channels * 8 * 6, nctx = 2 * 5 * a->context_dim;
    float *x = malloc((size_t)nx * 4), *ctx = malloc((size_t)nctx * 4), *ref = malloc((size_t)nx * 4),
          *got = malloc((size_t)nx * 4), *dry = malloc((size_t)nx * 4);
    lf_test_rng r = {LF_TEST_RNG_SEED};
    for (int64_t i = 0; i < nx; i++) x[i] = lf_test_rng_uniform(&r, -1.0f, 1.0f);
    for (int64_t i = 0; i < nctx; i++) ctx[i] = lf_test_rng_uniform(&r, -1.0f, 1.0f);
    const float t[2] = {999.0f, 250.0f};
    LF_CHECK(lf_unet_forward(u, ref, x, t, ctx, 5, NULL, 2, 8, 6) == LF_OK, "reference: %s", lf_last_error());

    lf_compute_count wrap, d;
    lf_compute_count_init(&wrap, lf_compute_cpu());
    lf_compute_count_init(&d, NULL);
    LF_CHECK(forward(u, &wrap.c, x, ctx, got, nx, nctx) == LF_OK, "counted: %s", lf_last_error());
    LF_CHECK(memcmp(got, ref, (size_t)nx * 4) == 0, "counting around the CPU compute changed the output");
    LF_CHECK(forward(u, &d.c, x, ctx, dry, nx, nctx) == LF_OK, "dry: %s", lf_last_error());
    for (int op = 0; op < LF_COP_COUNT; op++) {
        const lf_cop_stats *w = &wrap.op[op], *s = &d.op[op];
        LF_CHECK(w->calls == s->calls && w->flops == s->flops && w->bytes == s->bytes, "%s: wrapped %llu calls %g "
                 "FLOPs %g bytes, dry %llu %g %g", lf_cop_name((lf_cop)op), (unsigned long long)w->calls, w->flops,
                 w->bytes, (unsigned long long)s->calls, s->flops, s->bytes);
    }
    LF_CHECK(wrap.op[LF_COP_CONV2D].calls > 0 && wrap.op[LF_COP_ATTENTION].calls > 0 && wrap.op[LF_COP_LINEAR].calls > 0,
             "a UNet forward runs convs, attention and Linear layers");
    LF_CHECK(wrap.allocs == d.allocs && wrap.peak == d.peak && d.live == 0 && wrap.live == 0,
             "buffers: wrapped %llu allocs peak %g, dry %llu peak %g (live %g %g)", (unsigned long long)wrap.allocs,
             wrap.peak, (unsigned long long)d.allocs, d.peak, wrap.live, d.live);
    /* the estimate counts what the forward allocates, not the caller's x, context and out */
    double io = 4.0 * (double)(2 * nx + nctx);
    uint64_t replay = lf_unet_forward_peak(u, 2, 8, 6, 5);
    LF_CHECK((double)replay == wrap.peak - io, "lf_unet_forward_peak %llu bytes, the counted forward's %g (+ %g of inputs)",
             (unsigned long long)replay, d.peak - io, io);
    /* dry as a backend with the fused ops: the same FLOPs and buffers in fewer calls, the resnets' second
     * conv + skip and their norms + SiLU as one op each */
    lf_compute_count fu;
    lf_compute_count_init_fused(&fu);
    LF_CHECK(forward(u, &fu.c, x, ctx, dry, nx, nctx) == LF_OK, "dry fused: %s", lf_last_error());
    double f_flops = 0, d_flops = 0;
    uint64_t f_calls = 0, d_calls = 0;
    for (int op = 0; op < LF_COP_COUNT; op++)
        f_flops += fu.op[op].flops, d_flops += d.op[op].flops, f_calls += fu.op[op].calls, d_calls += d.op[op].calls;
    LF_CHECK(f_flops == d_flops && f_calls < d_calls && fu.peak == d.peak && fu.op[LF_COP_CONV2D_ADD].calls > 0 &&
                 fu.op[LF_COP_GROUP_NORM_SILU].calls > 0 && d.op[LF_COP_CONV2D_ADD].calls == 0,
             "fused count: %g FLOPs in %llu calls (peak %g), composed %g in %llu (peak %g)", f_flops,
             (unsigned long long)f_calls, fu.peak, d_flops, (unsigned long long)d_calls, d.peak);
    LF_CHECK(fu.op[LF_COP_ADD].calls + fu.op[LF_COP_CONV2D_ADD].calls == d.op[LF_COP_ADD].calls &&
                 fu.op[LF_COP_CONV2D].calls + fu.op[LF_COP_CONV2D_ADD].calls == d.op[LF_COP_CONV2D].calls,
             "every fused conv2d_add replaces one conv2d and one add");
    lf_compute_count_free(&fu);
    lf_compute_count_free(&wrap);
    lf_compute_count_free(&d);
    free(x), free(ctx), free(ref), free(got), free(dry);
    lf_unet_free(u);
    lf_st_close(f);
}

int main(void) {
    check_rules();
    check_unet();
    return lf_test_finish();
}
