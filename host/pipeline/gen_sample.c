/* gen_sample.c: a job's sampler loop on the session's compute (host/sample/sampler_compute.h): on a device
 * the latent, the sampler's state, the UNet's input and output and the CFG combine stay in device memory.
 *
 * What crosses between host and compute, per sampler run: the initial latent up and the final latent down
 * (n floats each, n = images x 4 x h/8 x w/8); per step the ancestral / SDE noise up (n floats; the CPU
 * generators, so a seed gives one picture on every backend), the timesteps (N floats, inside the UNet's
 * timestep embedding) and two non-finite flags down (8 bytes, one synchronisation); the conditioning
 * (N x L x D, and SDXL's y) up when its text-encoder set changes (once per job without prompt editing).
 * On host memory (the CPU) nothing is copied: the buffers are the compute's, the checks read them in place.
 */
#include <stdlib.h>
#include <string.h>

#include "generate_internal.h"
#include "host/base/compute.h"
#include "host/base/util.h"
#include "host/sample/sampler_compute.h"

lf_status lf_gen_sbuf(lf_gen *g, int i, int64_t n, int f32, float **out) {
    lf_compute *c = g->sess->cc;
    lf_gen_dbuf *b = &g->sbuf[i];
    if (b->n < n) {
        c->release(c, b->p);
        b->p = NULL;
        b->n = 0;
        lf_status st = f32 ? lf_compute_alloc_f32(c, n, &b->p) : c->alloc(c, n, &b->p);
        if (st != LF_OK) return st;
        b->n = n;
    }
    *out = b->p;
    return LF_OK;
}

void lf_gen_sbuf_free(lf_gen *g) {
    lf_compute *c = g->sess ? g->sess->cc : NULL;
    for (int i = 0; i < LF_GEN_SBUFS; i++) {
        if (c) c->release(c, g->sbuf[i].p);
        g->sbuf[i].p = NULL;
        g->sbuf[i].n = 0;
    }
    g->scond_n = 0;
}

/* the host arrays g->ctx (N, L, D) and, for SDXL, g->y (N, adm) of the current set */
static lf_status lf_gen_cond_host(lf_gen *g, int N) {
    const lf_gen_cond *c = &g->cache[g->cur_set];
    int n = g->run_n, cfg = N != n;
    size_t one = (size_t)(c->cond.tokens * c->cond.width);
    if (lf_grow(&g->ctx, &g->ctx_cap, (size_t)N * one)) return lf_err(LF_ERR_NOMEM, "out of memory");
    for (int i = 0; i < N; i++) {
        const lf_text_cond *src = cfg && i < n ? &c->uncond : &c->cond;
        memcpy(g->ctx + (size_t)i * one, src->context, one * sizeof(float));
    }
    if (g->tef != LF_TE_SDXL) return LF_OK;
    size_t pd = (size_t)c->cond.pooled_dim;
    float *ids = malloc((size_t)N * 6 * sizeof *ids);
    float *pooled = malloc((size_t)N * pd * sizeof *pooled);
    if (!ids || !pooled) {
        free(ids);
        free(pooled);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < N; i++) {
        const lf_text_cond *src = cfg && i < n ? &c->uncond : &c->cond;
        memcpy(pooled + (size_t)i * pd, src->pooled, pd * sizeof(float));
        float v[6] = {(float)g->o.height, (float)g->o.width, 0, 0, (float)g->o.height, (float)g->o.width};
        memcpy(ids + i * 6, v, sizeof v);
    }
    lf_status s = lf_unet_sdxl_y(g->unet, g->y, pooled, (int64_t)pd, ids, 6, N);
    free(ids);
    free(pooled);
    return s;
}

lf_status lf_gen_sample_cond(lf_gen *g, int N, const float **ctx, const float **y) {
    lf_compute *c = g->sess->cc;
    const lf_gen_cond *cd = &g->cache[g->cur_set];
    int64_t nctx = (int64_t)N * cd->cond.tokens * cd->cond.width;
    int64_t ny = g->tef == LF_TE_SDXL ? (int64_t)N * lf_unet_get_arch(g->unet)->adm_in_channels : 0;
    if (g->scond_n != N || g->scond_set != g->cur_set) {
        g->scond_n = 0;
        float *dc = NULL, *dy = NULL;
        lf_status s = lf_gen_cond_host(g, N);
        if (!s && !c->host_memory) {
            s = lf_gen_sbuf(g, LF_GS_CTX, nctx, 0, &dc);
            if (!s) s = c->upload(c, dc, g->ctx, nctx);
            if (!s && ny) s = lf_gen_sbuf(g, LF_GS_Y, ny, 0, &dy);
            if (!s && ny) s = c->upload(c, dy, g->y, ny);
        }
        if (s) return s;
        g->scond_n = N, g->scond_set = g->cur_set;
    }
    /* host memory: the host arrays themselves */
    *ctx = c->host_memory ? g->ctx : g->sbuf[LF_GS_CTX].p;
    *y = !ny ? NULL : c->host_memory ? g->y : g->sbuf[LF_GS_Y].p;
    return LF_OK;
}

lf_status lf_gen_sample_check(lf_gen *g, int step, const float *x, const float *out, int64_t tot, lf_gen_check_fn check,
                              const void *check_ctx) {
    lf_compute *c = g->sess->cc;
    if (c->host_memory) {
        lf_status s = check(check_ctx, step, x, (size_t)tot, "the latent entering this step");
        return s ? s : check(check_ctx, step, out, (size_t)tot, "the UNet's prediction");
    }
    /* the flags hold the tag of the last check that found a non-finite value (zeroed by lf_gen_sample_run;
     * a flagged step stops the run, so an older tag never equals this one) */
    float *f = g->sbuf[LF_GS_FLAGS].p, tag = (float)step, h[2];
    lf_sample_upd u;
    memset(&u, 0, sizeof u);
    u.op = LF_SU_NONFINITE;
    u.k[0] = tag;
    float *bx[LF_SU_BUFS] = {f, (float *)x, NULL, NULL, NULL, NULL}, *bo[LF_SU_BUFS] = {f + 1, (float *)out, NULL, NULL, NULL, NULL};
    lf_status s = c->sample_update(c, &u, bx, tot);
    if (!s) s = c->sample_update(c, &u, bo, tot);
    if (!s) s = c->download(c, h, f, 2);
    if (s || (h[0] != tag && h[1] != tag)) return s;
    /* the host check's message (which element, which image): the flagged array on the host */
    const float *v = h[0] == tag ? x : out;
    float *hv = malloc((size_t)tot * sizeof *hv);
    if (!hv) return lf_err(LF_ERR_NOMEM, "out of memory");
    s = c->download(c, hv, v, tot);
    if (!s) s = check(check_ctx, step, hv, (size_t)tot, v == x ? "the latent entering this step" : "the UNet's prediction");
    free(hv);
    return s ? s : lf_err(LF_ERR_NONFINITE, "step %d: the device found a non-finite value the host does not", step);
}

lf_status lf_gen_sample_run(lf_gen *g, lf_sampler *smp, float *x, int64_t tot, lf_rng *rng, const lf_sampler_cb *cb) {
    lf_compute *c = g->sess->cc;
    if (c->host_memory) return lf_sampler_run_on(smp, c, x, (size_t)tot, rng, rng ? 1 : 0, cb);
    float *dx = NULL, *f = NULL;
    const float zero[2] = {0.0f, 0.0f};
    lf_status s = lf_gen_sbuf(g, LF_GS_X, tot, 1, &dx);
    if (!s) s = lf_gen_sbuf(g, LF_GS_FLAGS, 2, 1, &f);
    if (!s) s = c->upload(c, f, zero, 2);
    if (!s) s = c->upload(c, dx, x, tot);
    if (!s) s = lf_sampler_run_on(smp, c, dx, (size_t)tot, rng, rng ? 1 : 0, cb);
    return s ? s : c->download(c, x, dx, tot);
}
