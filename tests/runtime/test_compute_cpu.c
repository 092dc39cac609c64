/* test_compute_cpu.c: the CPU compute backend (host/runtime/compute_cpu.h) and the models written over the
 * compute interface (host/runtime/model_compute.h).
 *
 * - Same bytes: lf_unet_forward_mid_on (tiny SD1.5, and tiny SDXL with y from lf_unet_sdxl_y_on),
 *   lf_clip_forward_on, lf_clip_encode_chunks_on, lf_vae_decode_on and lf_vae_encode_on on
 *   lf_compute_cpu(), every activation in buffers from c->alloc moved with upload/download, equal the
 *   public functions (lf_unet_forward_mid, ...) byte for byte. The public functions are the golden-tested
 *   ones (test_unet, test_clip, test_vae).
 * - Allocation failures: a copy of the CPU table whose alloc fails on its n-th call, for every n up to
 *   the number of allocations of a whole pass: LF_ERR_NOMEM, a message naming the model and "out of
 *   memory", and every buffer released again (counted here; the ASan build checks the host side too).
 * - The table itself: the CPU alloc's own message, copy2d's strides, supports, bind refused.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_test.h"
#include "lf_test_rng.h"

#include "host/runtime/compute_cpu.h"
#include "host/runtime/model_compute.h"
#include "lorafuse/lf_model.h"

#define SD15 "tests/data/tiny/tiny-sd15.safetensors"
#define SDXL "tests/data/tiny/tiny-sdxl.safetensors"

/* ---- a CPU compute that counts its buffers and refuses the fail_at-th allocation --------------- */

typedef struct faulty {
    lf_compute c; /* a copy of the CPU table, alloc and release wrapped */
    int64_t calls, fail_at, live;
} faulty;

static lf_status faulty_alloc(lf_compute *c, int64_t n, float **out) {
    faulty *f = c->impl;
    if (++f->calls == f->fail_at) {
        *out = NULL;
        return lf_err(LF_ERR_NOMEM, "test compute: out of memory (allocation %lld refused)", (long long)f->calls);
    }
    lf_status st = lf_compute_cpu()->alloc(c, n, out);
    if (st == LF_OK) f->live++;
    return st;
}

static void faulty_release(lf_compute *c, float *p) {
    faulty *f = c->impl;
    if (p) f->live--;
    lf_compute_cpu()->release(c, p);
}

static void faulty_init(faulty *f) {
    memset(f, 0, sizeof *f);
    f->c = *lf_compute_cpu();
    f->c.impl = f;
    f->c.alloc = faulty_alloc;
    f->c.release = faulty_release;
}

/* One pass of a model on a compute (returns its status). */
typedef lf_status (*pass_fn)(void *ctx, lf_compute *c);

/* pass once counting its allocations, then once per allocation with that one refused (the pass's own
 * buffers for inputs and outputs among them: their failures are named "test"). */
static void check_failures(const char *what, const char *model, pass_fn pass, void *ctx) {
    faulty f;
    faulty_init(&f);
    lf_status st = pass(ctx, &f.c);
    LF_CHECK(st == LF_OK && f.live == 0, "%s: counting pass: %s, %lld buffers left", what, lf_last_error(),
             (long long)f.live);
    int64_t total = f.calls, bad = 0;
    for (int64_t n = 1; n <= total; n++) {
        faulty_init(&f);
        f.fail_at = n;
        st = pass(ctx, &f.c);
        const char *e = lf_last_error();
        int ok = st == LF_ERR_NOMEM && f.live == 0 && (strstr(e, model) || !strncmp(e, "test: ", 6)) &&
                 strstr(e, "out of memory");
        if (!ok && bad++ < 3)
            LF_CHECK(ok, "%s: allocation %lld of %lld refused: status %d, %lld buffers left, \"%s\"", what,
                     (long long)n, (long long)total, (int)st, (long long)f.live, e);
    }
    LF_CHECK(bad == 0, "%s: %lld of %lld refused allocations mishandled", what, (long long)bad, (long long)total);
    printf("  %-28s %lld allocations, each refused once: ok\n", what, (long long)total);
}

/* ---- backend buffers from host arrays --------------------------------------------------------- */

static float *dev_from(lf_compute *c, const float *host, int64_t n) {
    float *p = NULL;
    if (c->alloc(c, n, &p) != LF_OK) return NULL;
    if (host && c->upload(c, p, host, n) != LF_OK) {
        c->release(c, p);
        return NULL;
    }
    return p;
}

static int same_bytes(lf_compute *c, const float *dev, const float *host, int64_t n) {
    float *back = malloc((size_t)n * sizeof *back);
    int ok = back && c->download(c, back, dev, n) == LF_OK && memcmp(back, host, (size_t)n * sizeof *back) == 0;
    free(back);
    return ok;
}

static float *rand_host(int64_t n, uint64_t seed) {
    lf_test_rng r;
    lf_test_rng_seed(&r, seed);
    float *p = malloc((size_t)n * sizeof *p);
    for (int64_t i = 0; p && i < n; i++) p[i] = lf_test_rng_signed(&r);
    return p;
}

/* ---- UNet ----------------------------------------------------------------------------------- */

typedef struct unet_case {
    const lf_unet *u;
    const lf_unet_arch *a;
    int64_t N, H, W, L, pooled_dim;
    const float *x, *t, *ctx, *pooled, *ids; /* host */
} unet_case;

static int64_t unet_out_n(const unet_case *k) { return k->N * k->a->out_channels * k->H * k->W; }

/* Everything on the backend: inputs uploaded, y assembled there, out (and mid, when given) downloaded. */
static lf_status unet_pass_mid(const unet_case *k, lf_compute *c, float *out, float *mid, int64_t n_mid) {
    const lf_unet_arch *a = k->a;
    int64_t nx = k->N * a->in_channels * k->H * k->W, nc = k->N * k->L * a->context_dim, no = unet_out_n(k);
    lf_status st = LF_OK;
    float *x = lf_mc_alloc(c, nx, "test", &st), *ctx = lf_mc_alloc(c, nc, "test", &st);
    float *o = lf_mc_alloc(c, no, "test", &st), *m = mid ? lf_mc_alloc(c, n_mid, "test", &st) : NULL;
    float *y = NULL, *pooled = NULL;
    if (a->adm_in_channels > 0) {
        y = lf_mc_alloc(c, k->N * a->adm_in_channels, "test", &st);
        pooled = lf_mc_alloc(c, k->N * k->pooled_dim, "test", &st);
    }
    if (st == LF_OK && mid) st = c->upload(c, m, mid, n_mid); /* the part the middle block leaves */
    if (st == LF_OK && !(st = c->upload(c, x, k->x, nx)) && !(st = c->upload(c, ctx, k->ctx, nc)) && pooled &&
        !(st = c->upload(c, pooled, k->pooled, k->N * k->pooled_dim)))
        st = lf_unet_sdxl_y_on(k->u, c, y, pooled, k->pooled_dim, k->ids, 6, k->N);
    if (st == LF_OK && !(st = lf_unet_forward_mid_on(k->u, c, o, m, x, k->t, ctx, k->L, y, k->N, k->H, k->W)) &&
        out && !(st = c->download(c, out, o, no)) && mid)
        st = c->download(c, mid, m, n_mid);
    c->release(c, x), c->release(c, ctx), c->release(c, o), c->release(c, m), c->release(c, y);
    c->release(c, pooled);
    return st;
}

static lf_status unet_pass(void *ctx, lf_compute *c) { return unet_pass_mid(ctx, c, NULL, NULL, 0); }

static void test_unet(const char *name, const char *path, const lf_unet_opts *o, int64_t H, int64_t W) {
    lf_st_file *f = NULL;
    lf_unet *u = NULL;
    LF_CHECK(lf_st_open(path, &f) == LF_OK && lf_unet_load(f, o, &u) == LF_OK, "%s: %s", path, lf_last_error());
    lf_st_close(f);
    if (!u) return;
    unet_case k = {u, lf_unet_get_arch(u), 2, H, W, 9, 0, NULL, NULL, NULL, NULL, NULL};
    const lf_unet_arch *a = k.a;
    float t[2] = {999.0f, 17.5f}, ids[12] = {1024, 1024, 0, 0, 1024, 1024, 768, 512, 3, 4, 768, 512};
    float *x = rand_host(k.N * a->in_channels * H * W, 1), *ctx = rand_host(k.N * k.L * a->context_dim, 2);
    float *pooled = NULL, *y = NULL;
    k.x = x, k.t = t, k.ctx = ctx, k.ids = ids;
    if (a->adm_in_channels > 0) { /* pooled width: what is left after 6 time ids of 8 */
        k.pooled_dim = a->adm_in_channels - 6 * 8;
        k.pooled = pooled = rand_host(k.N * k.pooled_dim, 3);
        y = malloc((size_t)(k.N * a->adm_in_channels) * sizeof *y);
        LF_CHECK(lf_unet_sdxl_y(u, y, pooled, k.pooled_dim, ids, 6, k.N) == LF_OK, "%s y: %s", name, lf_last_error());
    }
    int64_t no = unet_out_n(&k), nm = k.N * a->level_channels[a->n_levels - 1] * H * W; /* mid fits in this */
    float *o1 = malloc((size_t)no * sizeof *o1), *o2 = malloc((size_t)no * sizeof *o2);
    float *m1 = calloc((size_t)nm, sizeof *m1), *m2 = calloc((size_t)nm, sizeof *m2);
    LF_CHECK(lf_unet_forward_mid(u, o1, m1, x, t, ctx, k.L, y, k.N, H, W) == LF_OK, "%s: %s", name, lf_last_error());
    lf_compute *c = lf_compute_cpu();
    LF_CHECK(unet_pass_mid(&k, c, o2, m2, nm) == LF_OK, "%s on the compute: %s", name, lf_last_error());
    LF_CHECK(!memcmp(o1, o2, (size_t)no * sizeof *o1) && !memcmp(m1, m2, (size_t)nm * sizeof *m1),
             "%s: lf_unet_forward_mid_on differs from lf_unet_forward_mid", name);
    if (y) { /* y on the backend, as the pass assembles it */
        float *yd = dev_from(c, NULL, k.N * a->adm_in_channels), *pd = dev_from(c, pooled, k.N * k.pooled_dim);
        LF_CHECK(yd && pd && lf_unet_sdxl_y_on(u, c, yd, pd, k.pooled_dim, ids, 6, k.N) == LF_OK &&
                     same_bytes(c, yd, y, k.N * a->adm_in_channels),
                 "%s: lf_unet_sdxl_y_on differs from lf_unet_sdxl_y", name);
        c->release(c, yd), c->release(c, pd);
    }
    printf("  %-28s same bytes as lf_unet_forward_mid\n", name);
    check_failures(name, "unet: ", unet_pass, &k);
    free(x), free(ctx), free(pooled), free(y), free(o1), free(o2), free(m1), free(m2);
    lf_unet_free(u);
}

/* ---- CLIP ----------------------------------------------------------------------------------- */

typedef struct clip_case {
    const lf_clip *m;
    const lf_prompt_chunks *ch;
    int32_t ids[77];
    int64_t np;
} clip_case;

static lf_status clip_pass_out(const clip_case *k, lf_compute *c, float *hid, float *pooled) {
    int64_t w = lf_clip_get_config(k->m)->width;
    lf_status st = LF_OK;
    float *h = lf_mc_alloc(c, 77 * w, "test", &st), *p = lf_mc_alloc(c, k->np, "test", &st);
    lf_clip_run run = {2, 1};
    if (st == LF_OK && !(st = lf_clip_forward_on(k->m, c, k->ids, 77, &run, h, p)) && hid &&
        !(st = c->download(c, hid, h, 77 * w)))
        st = c->download(c, pooled, p, k->np);
    c->release(c, h), c->release(c, p);
    return st;
}

static lf_status clip_pass(void *ctx, lf_compute *c) { return clip_pass_out(ctx, c, NULL, NULL); }

static lf_status chunks_pass_out(const clip_case *k, lf_compute *c, float *hid, float *pooled) {
    int64_t w = lf_clip_get_config(k->m)->width;
    float *h = hid ? hid : malloc((size_t)(2 * 77 * w) * sizeof(float));
    float *p = pooled ? pooled : malloc((size_t)k->np * sizeof(float));
    lf_clip_run run = {1, 1};
    lf_status st = h && p ? lf_clip_encode_chunks_on(k->m, c, k->ch, &run, LF_EMPH_ORIGINAL, h, p) : LF_ERR_NOMEM;
    if (h != hid) free(h);
    if (p != pooled) free(p);
    return st;
}

static lf_status chunks_pass(void *ctx, lf_compute *c) { return chunks_pass_out(ctx, c, NULL, NULL); }

static void test_clip(const char *name, const char *path, int second) {
    lf_st_file *f = NULL;
    lf_clip *m = NULL;
    const char *p1 = NULL, *p2 = NULL;
    LF_CHECK(lf_st_open(path, &f) == LF_OK && lf_clip_detect(f, &p1, &p2) != LF_TE_NONE &&
                 lf_clip_load(f, second ? p2 : p1, NULL, &m) == LF_OK,
             "%s: %s", path, lf_last_error());
    lf_st_close(f);
    if (!m) return;
    const lf_clip_config *cfg = lf_clip_get_config(m);
    int64_t w = cfg->width;
    clip_case k;
    memset(&k, 0, sizeof k);
    k.m = m;
    k.np = cfg->proj ? cfg->proj : w;
    for (int i = 0; i < 77; i++) k.ids[i] = i < 10 ? (i * 37 + 5) % (int32_t)cfg->vocab : (int32_t)cfg->vocab - 1;
    /* two windows with emphasis and a textual-inversion embedding of 3 vectors in each, the second cut
     * short by the end of its window */
    lf_prompt_chunks ch;
    memset(&ch, 0, sizeof ch);
    int32_t ids2[154];
    float mult[154], *vec = rand_host(3 * w, 9);
    for (int i = 0; i < 154; i++) ids2[i] = k.ids[i % 77], mult[i] = 1.0f + 0.1f * (float)(i % 5);
    lf_emb_fix fx[2] = {{0, 3, vec, 3, w, "a.pt"}, {1, 74, vec, 3, w, "b.pt"}};
    ch.n = 2, ch.ids = ids2, ch.mult = mult, ch.fixes = fx, ch.n_fixes = 2;
    k.ch = &ch;

    float *h1 = malloc((size_t)(2 * 77 * w) * sizeof *h1), *h2 = malloc((size_t)(2 * 77 * w) * sizeof *h2);
    float *p1v = malloc((size_t)k.np * sizeof *p1v), *p2v = malloc((size_t)k.np * sizeof *p2v);
    lf_clip_run run = {2, 1};
    LF_CHECK(lf_clip_forward(m, k.ids, 77, &run, h1, p1v) == LF_OK && clip_pass_out(&k, lf_compute_cpu(), h2, p2v) == LF_OK,
             "%s: %s", name, lf_last_error());
    LF_CHECK(!memcmp(h1, h2, (size_t)(77 * w) * sizeof *h1) && !memcmp(p1v, p2v, (size_t)k.np * sizeof *p1v),
             "%s: lf_clip_forward_on differs from lf_clip_forward", name);
    lf_clip_run r1 = {1, 1};
    LF_CHECK(lf_clip_encode_chunks(m, &ch, &r1, LF_EMPH_ORIGINAL, h1, p1v) == LF_OK &&
                 chunks_pass_out(&k, lf_compute_cpu(), h2, p2v) == LF_OK,
             "%s chunks: %s", name, lf_last_error());
    LF_CHECK(!memcmp(h1, h2, (size_t)(2 * 77 * w) * sizeof *h1) && !memcmp(p1v, p2v, (size_t)k.np * sizeof *p1v),
             "%s: lf_clip_encode_chunks_on differs from lf_clip_encode_chunks", name);
    printf("  %-28s same bytes as lf_clip_forward, lf_clip_encode_chunks\n", name);
    check_failures(name, "text encoder: ", clip_pass, &k);
    char chunks_name[64];
    snprintf(chunks_name, sizeof chunks_name, "%s, 2 windows", name);
    check_failures(chunks_name, "text encoder: ", chunks_pass, &k);
    free(h1), free(h2), free(p1v), free(p2v), free(vec);
    lf_clip_free(m);
}

/* ---- VAE ------------------------------------------------------------------------------------ */

typedef struct vae_case {
    const lf_vae *v;
    int64_t N, h, w, z, f;
    const float *lat, *img; /* host: latents (N, z, h, w), image (N, 3, h f, w f) */
} vae_case;

static lf_status vae_pass_out(const vae_case *k, lf_compute *c, float *img, float *lat, float *logvar) {
    int64_t nl = k->N * k->z * k->h * k->w, ni = k->N * 3 * k->h * k->f * k->w * k->f;
    lf_status st = LF_OK;
    float *l = lf_mc_alloc(c, nl, "test", &st), *i = lf_mc_alloc(c, ni, "test", &st);
    float *l2 = lf_mc_alloc(c, nl, "test", &st), *lv = lf_mc_alloc(c, nl, "test", &st);
    if (st == LF_OK && !(st = c->upload(c, l, k->lat, nl)) &&
        !(st = lf_vae_decode_on(k->v, c, i, l, k->N, k->h, k->w)) && !(st = c->upload(c, i, k->img, ni)))
        st = lf_vae_encode_on(k->v, c, l2, lv, i, k->N, k->h * k->f, k->w * k->f);
    if (st == LF_OK && img && !(st = c->download(c, lat, l2, nl)) && !(st = c->download(c, logvar, lv, nl))) {
        /* the decode's output was overwritten by the encode's input: run the decode again */
        if (!(st = lf_vae_decode_on(k->v, c, i, l, k->N, k->h, k->w))) st = c->download(c, img, i, ni);
    }
    c->release(c, l), c->release(c, i), c->release(c, l2), c->release(c, lv);
    return st;
}

static lf_status vae_pass(void *ctx, lf_compute *c) { return vae_pass_out(ctx, c, NULL, NULL, NULL); }

static void test_vae(const char *name, const char *path) {
    lf_model *mo = NULL;
    lf_vae *v = NULL;
    lf_vae_opts o = {NULL, 4, 0.0f, 0};
    LF_CHECK(lf_model_open(path, &mo) == LF_OK && lf_vae_load(mo->st, mo->family, &o, &v) == LF_OK, "%s: %s", path,
             lf_last_error());
    lf_model_free(mo);
    if (!v) return;
    const lf_vae_arch *a = lf_vae_get_arch(v);
    vae_case k = {v, 2, 3, 2, a->latent_channels, a->factor, NULL, NULL};
    int64_t nl = k.N * k.z * k.h * k.w, ni = k.N * 3 * k.h * k.f * k.w * k.f;
    float *lat = rand_host(nl, 5), *img = rand_host(ni, 6);
    k.lat = lat, k.img = img;
    float *i1 = malloc((size_t)ni * sizeof *i1), *i2 = malloc((size_t)ni * sizeof *i2);
    float *l1 = malloc((size_t)nl * sizeof *l1), *l2 = malloc((size_t)nl * sizeof *l2);
    float *v1 = malloc((size_t)nl * sizeof *v1), *v2 = malloc((size_t)nl * sizeof *v2);
    LF_CHECK(lf_vae_decode(v, i1, lat, k.N, k.h, k.w) == LF_OK &&
                 lf_vae_encode(v, l1, v1, img, k.N, k.h * k.f, k.w * k.f) == LF_OK &&
                 vae_pass_out(&k, lf_compute_cpu(), i2, l2, v2) == LF_OK,
             "%s: %s", name, lf_last_error());
    LF_CHECK(!memcmp(i1, i2, (size_t)ni * sizeof *i1) && !memcmp(l1, l2, (size_t)nl * sizeof *l1) &&
                 !memcmp(v1, v2, (size_t)nl * sizeof *v1),
             "%s: lf_vae_decode_on / lf_vae_encode_on differ from lf_vae_decode / lf_vae_encode", name);
    printf("  %-28s same bytes as lf_vae_decode, lf_vae_encode\n", name);
    check_failures(name, "vae: ", vae_pass, &k);
    free(lat), free(img), free(i1), free(i2), free(l1), free(l2), free(v1), free(v2);
    lf_vae_free(v);
}

/* ---- the table ------------------------------------------------------------------------------ */

static void test_table(void) {
    lf_compute *c = lf_compute_cpu();
    float *p = NULL;
    LF_CHECK(c->alloc(c, INT64_MAX / 2, &p) == LF_ERR_NOMEM && p == NULL && strstr(lf_last_error(), "out of memory"),
             "a huge allocation: %s", lf_last_error());
    LF_CHECK(c->alloc(c, 0, &p) == LF_OK && p != NULL, "an empty allocation has an address");
    c->release(c, p);
    c->release(c, NULL);
    float src[12], dst[12];
    for (int i = 0; i < 12; i++) src[i] = (float)i, dst[i] = -1.0f;
    LF_CHECK(c->copy2d(c, dst, 4, src + 1, 3, 3, 2) == LF_OK, "copy2d");
    float want[12] = {1, 2, -1, -1, 4, 5, -1, -1, 7, 8, -1, -1};
    LF_CHECK(!memcmp(dst, want, sizeof want), "copy2d: rows of 2 from stride 3 to stride 4");
    for (int op = 0; op < LF_COP_COUNT; op++) {
        lf_cop_desc d = {(lf_cop)op, LF_BF16, 40};
        const int fused = op == LF_COP_CONV2D_ADD || op == LF_COP_GROUP_NORM_SILU;
        LF_CHECK(c->supports(c, &d) == !fused, "the CPU runs op %d (the fused ones are composed)", op);
    }
    LF_CHECK(!c->conv2d_add && !c->group_norm_silu, "the CPU has no fused ops (the model composes them)");
    LF_CHECK(c->bind(c, src, NULL, dst) == LF_ERR_UNSUPPORTED, "bind is refused on the CPU");
    LF_CHECK(c->sync(c) == LF_OK && !strcmp(c->name, "cpu"), "sync, name");
}

int main(void) {
    printf("the CPU compute table:\n");
    test_table();
    lf_unet_opts o15 = {NULL, 4, 0, 4}, oxl = {NULL, 0, 8, 4};
    printf("models on lf_compute_cpu():\n");
    test_unet("UNet tiny SD1.5 10x6", SD15, &o15, 10, 6);
    test_unet("UNet tiny SDXL 6x10", SDXL, &oxl, 6, 10);
    test_clip("CLIP tiny SD1.5", SD15, 0);
    test_clip("CLIP tiny SDXL TE2", SDXL, 1);
    test_vae("VAE tiny SD1.5", SD15);
    return lf_test_finish();
}
