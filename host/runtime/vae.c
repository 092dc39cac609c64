/* vae.c: AutoencoderKL loader and forward passes (lorafuse/lf_vae.h) on the lf_nn.h operators.
 *
 * Keys (LDM, under "first_stage_model."): post_quant_conv, quant_conv (1x1, (2z, 2z)),
 *   decoder.conv_in (C, z, 3, 3); decoder.mid.{block_1, attn_1, block_2}; decoder.up.i.block.j
 *   (norm1, conv1, norm2, conv2[, nin_shortcut]); decoder.up.i.upsample.conv (i > 0);
 *   decoder.norm_out, decoder.conv_out (3, C0, 3, 3); encoder.* mirrors it with down.i.downsample.conv
 *   (i < n-1) and conv_out (2z, C, 3, 3). attn_1: norm, q, k, v, proj_out as (C, C, 1, 1) or (C, C).
 * Formulas: see lf_vae.h. The loader replays the channel flow while it reads, so a tensor whose width
 * does not fit its neighbours is reported with its key and both shapes.
 * Forward: decode and encode written once over the compute interface (model_compute.h,
 * host/base/compute.h; activations in backend memory), run on the CPU backend by lf_vae_decode and
 * lf_vae_encode. lf_vae_decode_peak runs the decode on a dry counting compute (compute_count.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute_cpu.h"
#include "kernels/cpu/nn/lf_nn.h" /* lf_nn_conv_out: shapes only; every op goes through the compute */
#include "lorafuse/lf_vae.h"
#include "compute_count.h"
#include "model_compute.h"
#include "model_mem.h"
#include "weight_load.h"

#define LF_VA_EPS 1e-6f
#define LF_VA_PATH 160

typedef lf_wts_lin lf_va_conv;   /* conv k x k, or k = 0: Linear on tokens */
typedef lf_wts_norm lf_va_norm;  /* GroupNorm gamma, beta (C) */

typedef struct lf_va_res {
    lf_va_norm n1, n2;
    lf_va_conv c1, c2, sc; /* sc.w NULL: identity shortcut */
    int64_t cin, cout;
} lf_va_res;

typedef struct lf_va_attn {
    lf_va_norm n;
    lf_va_conv q, k, v, o;
    int64_t C;
} lf_va_attn;

typedef struct lf_va_level {
    lf_va_res *res;
    int n_res;
    lf_va_conv resample; /* upsample / downsample conv; w NULL if none */
} lf_va_level;

typedef struct lf_va_coder {
    lf_va_conv conv_in, conv_out;
    lf_va_level lv[LF_VAE_MAX_LEVELS];
    int n;
    lf_va_res mid1, mid2;
    lf_va_attn attn;
    lf_va_norm norm_out;
} lf_va_coder;

struct lf_vae {
    lf_vae_arch arch;
    lf_va_coder enc, dec;
    lf_va_conv quant, post_quant;
    lf_wts_entry *wts;
    size_t n_wts;
};

typedef struct lf_va_ctx {
    lf_wts w;
    const char *file;
} lf_va_ctx;

/* ---- loading -------------------------------------------------------------------------------- */

/* Resnet at path taking cin channels; returns its out width (or -1 after a failure). */
static int64_t lf_va_load_res(lf_va_ctx *c, lf_va_res *r, const char *path, int64_t cin) {
    char p[LF_VA_PATH];
    lf_wts_pathf(p, sizeof p, "%s.norm1", path);
    lf_wts_load_norm(&c->w, &r->n1, p, cin);
    r->cin = cin;
    lf_wts_pathf(p, sizeof p, "%s.conv1", path);
    lf_wts_load_lin(&c->w, &r->c1, p, 3, -1, cin, LF_WTS_BIAS);
    r->cout = r->c1.out;
    lf_wts_pathf(p, sizeof p, "%s.norm2", path);
    lf_wts_load_norm(&c->w, &r->n2, p, r->cout);
    lf_wts_pathf(p, sizeof p, "%s.conv2", path);
    lf_wts_load_lin(&c->w, &r->c2, p, 3, r->cout, r->cout, LF_WTS_BIAS);
    if (c->w.status != LF_OK) return -1;
    if (lf_wts_find(&c->w, "%s.nin_shortcut.weight", path)) {
        lf_wts_pathf(p, sizeof p, "%s.nin_shortcut", path);
        lf_wts_load_lin(&c->w, &r->sc, p, 1, r->cout, cin, LF_WTS_BIAS);
    } else if (cin != r->cout) {
        lf_err(LF_ERR_MODEL, "%s: resnet \"%s%s\" maps %lld -> %lld channels: missing tensor \"%s%s"
               ".nin_shortcut.weight\"", c->file, c->w.prefix, path, (long long)cin, (long long)r->cout,
               c->w.prefix, path);
        lf_wts_fail(&c->w, LF_ERR_MODEL);
    }
    return c->w.status == LF_OK ? r->cout : -1;
}

static void lf_va_load_attn(lf_va_ctx *c, lf_va_attn *a, const char *path, int64_t C) {
    char p[LF_VA_PATH];
    static const char *names[4] = {"q", "k", "v", "proj_out"};
    lf_va_conv *dst[4] = {&a->q, &a->k, &a->v, &a->o};
    lf_wts_pathf(p, sizeof p, "%s.norm", path);
    lf_wts_load_norm(&c->w, &a->n, p, C);
    for (int i = 0; i < 4; i++) {
        lf_wts_pathf(p, sizeof p, "%s.%s", path, names[i]);
        lf_wts_load_lin(&c->w, dst[i], p, 0, C, C, LF_WTS_BIAS); /* (C, C, 1, 1) matches (C, C) */
    }
    a->C = C;
}

/* mid block: block_1, attn_1, block_2 under <part>.mid; returns the width. */
static int64_t lf_va_load_mid(lf_va_ctx *c, lf_va_coder *cd, const char *part, int64_t ch) {
    char p[LF_VA_PATH];
    lf_wts_pathf(p, sizeof p, "%s.mid.block_1", part);
    ch = lf_va_load_res(c, &cd->mid1, p, ch);
    if (ch < 0) return -1;
    lf_wts_pathf(p, sizeof p, "%s.mid.attn_1", part);
    lf_va_load_attn(c, &cd->attn, p, ch);
    lf_wts_pathf(p, sizeof p, "%s.mid.block_2", part);
    return c->w.status == LF_OK ? lf_va_load_res(c, &cd->mid2, p, ch) : -1;
}

static int lf_va_count(lf_va_ctx *c, const char *fmt_level) {
    int n = 0;
    while (n < LF_VAE_MAX_LEVELS + 1 && lf_wts_find(&c->w, fmt_level, n)) n++;
    return n;
}

static lf_status lf_va_level_blocks(lf_va_ctx *c, lf_va_level *lv, const char *part, const char *du,
                                    int i) {
    int n = 0;
    while (lf_wts_find(&c->w, "%s.%s.%d.block.%d.norm1.weight", part, du, i, n)) n++;
    if (n == 0) {
        lf_err(LF_ERR_MODEL, "%s: missing tensor \"%s%s.%s.%d.block.0.norm1.weight\"", c->file, c->w.prefix,
               part, du, i);
        return lf_wts_fail(&c->w, LF_ERR_MODEL);
    }
    lv->res = calloc((size_t)n, sizeof *lv->res);
    if (!lv->res) return lf_wts_fail(&c->w, lf_err(LF_ERR_NOMEM, "%s: out of memory", c->file));
    lv->n_res = n;
    return LF_OK;
}

static lf_status lf_va_load_decoder(lf_va_ctx *c, lf_vae *v) {
    lf_va_coder *d = &v->dec;
    lf_vae_arch *a = &v->arch;
    char p[LF_VA_PATH];
    lf_wts_load_lin(&c->w, &v->post_quant, "post_quant_conv", 1, -1, -1, LF_WTS_BIAS);
    if (c->w.status != LF_OK) return c->w.status;
    int64_t z = v->post_quant.in;
    if (v->post_quant.out != z) {
        lf_err(LF_ERR_SHAPE, "%s: tensor \"%spost_quant_conv.weight\" maps %lld -> %lld channels, expected square",
               c->file, c->w.prefix, (long long)z, (long long)v->post_quant.out);
        return lf_wts_fail(&c->w, LF_ERR_SHAPE);
    }
    a->latent_channels = z;
    lf_wts_load_lin(&c->w, &d->conv_in, "decoder.conv_in", 3, -1, z, LF_WTS_BIAS);
    if (c->w.status != LF_OK) return c->w.status;
    int64_t ch = lf_va_load_mid(c, d, "decoder", d->conv_in.out);
    if (ch < 0) return c->w.status;
    d->n = lf_va_count(c, "decoder.up.%d.block.0.norm1.weight");
    if (d->n == 0 || d->n > LF_VAE_MAX_LEVELS) {
        lf_err(LF_ERR_MODEL, "%s: decoder has %d up levels (missing tensor \"%sdecoder.up.0.block.0.norm1.weight\"?)",
               c->file, d->n, c->w.prefix);
        return lf_wts_fail(&c->w, LF_ERR_MODEL);
    }
    a->n_levels = d->n;
    for (int i = d->n - 1; i >= 0; i--) {
        lf_va_level *lv = &d->lv[i];
        if (lf_va_level_blocks(c, lv, "decoder", "up", i) != LF_OK) return c->w.status;
        for (int j = 0; j < lv->n_res; j++) {
            lf_wts_pathf(p, sizeof p, "decoder.up.%d.block.%d", i, j);
            if ((ch = lf_va_load_res(c, &lv->res[j], p, ch)) < 0) return c->w.status;
        }
        a->level_channels[i] = ch;
        a->dec_res_per_level = lv->n_res;
        if (i > 0) {
            lf_wts_pathf(p, sizeof p, "decoder.up.%d.upsample.conv", i);
            lf_wts_load_lin(&c->w, &lv->resample, p, 3, ch, ch, LF_WTS_BIAS);
        }
    }
    lf_wts_load_norm(&c->w, &d->norm_out, "decoder.norm_out", ch);
    lf_wts_load_lin(&c->w, &d->conv_out, "decoder.conv_out", 3, -1, ch, LF_WTS_BIAS);
    a->image_channels = d->conv_out.out;
    return c->w.status;
}

static lf_status lf_va_load_encoder(lf_va_ctx *c, lf_vae *v) {
    lf_va_coder *e = &v->enc;
    lf_vae_arch *a = &v->arch;
    char p[LF_VA_PATH];
    lf_wts_load_lin(&c->w, &e->conv_in, "encoder.conv_in", 3, -1, a->image_channels, LF_WTS_BIAS);
    if (c->w.status != LF_OK) return c->w.status;
    int64_t ch = e->conv_in.out;
    e->n = lf_va_count(c, "encoder.down.%d.block.0.norm1.weight");
    if (e->n != a->n_levels) {
        lf_err(LF_ERR_MODEL, "%s: encoder has %d down levels, decoder %d (missing tensor \"%sencoder.down.%d"
               ".block.0.norm1.weight\"?)", c->file, e->n, a->n_levels, c->w.prefix, e->n);
        return lf_wts_fail(&c->w, LF_ERR_MODEL);
    }
    for (int i = 0; i < e->n; i++) {
        lf_va_level *lv = &e->lv[i];
        if (lf_va_level_blocks(c, lv, "encoder", "down", i) != LF_OK) return c->w.status;
        for (int j = 0; j < lv->n_res; j++) {
            lf_wts_pathf(p, sizeof p, "encoder.down.%d.block.%d", i, j);
            if ((ch = lf_va_load_res(c, &lv->res[j], p, ch)) < 0) return c->w.status;
        }
        a->enc_res_per_level = lv->n_res;
        if (i < e->n - 1) {
            lf_wts_pathf(p, sizeof p, "encoder.down.%d.downsample.conv", i);
            lf_wts_load_lin(&c->w, &lv->resample, p, 3, ch, ch, LF_WTS_BIAS);
        }
    }
    if ((ch = lf_va_load_mid(c, e, "encoder", ch)) < 0) return c->w.status;
    lf_wts_load_norm(&c->w, &e->norm_out, "encoder.norm_out", ch);
    lf_wts_load_lin(&c->w, &e->conv_out, "encoder.conv_out", 3, 2 * a->latent_channels, ch, LF_WTS_BIAS);
    lf_wts_load_lin(&c->w, &v->quant, "quant_conv", 1, 2 * a->latent_channels, 2 * a->latent_channels,
                    LF_WTS_BIAS);
    a->has_encoder = c->w.status == LF_OK;
    return c->w.status;
}

static void lf_va_free_coder(lf_va_coder *cd) {
    for (int i = 0; i < LF_VAE_MAX_LEVELS; i++) free(cd->lv[i].res);
}

void lf_vae_free(lf_vae *v) {
    if (!v) return;
    lf_va_free_coder(&v->enc);
    lf_va_free_coder(&v->dec);
    lf_wts_free_list(v->wts, v->n_wts);
    free(v);
}

/* lf_va_load_src with the lf_wts borrow mode (0, or LF_WTS_SHAPES for lf_vae_load_shapes). */
static lf_status lf_va_load_mode(const lf_st_file *st, const lf_wts_alias *alias, size_t n_alias, const char *label,
                                 lf_family family, const lf_vae_opts *opts, int borrow, lf_vae **out) {
    *out = NULL;
    lf_vae_opts o;
    memset(&o, 0, sizeof o);
    if (opts) o = *opts;
    const char *file = label ? label : st && lf_st_path(st) ? lf_st_path(st) : "checkpoint";
    float sf = o.scaling_factor;
    if (sf < 0 || o.norm_groups < 0) return lf_err(LF_ERR_ARG, "%s: vae options must be non-negative", file);
    if (sf == 0.0f) {
        if (family == LF_FAMILY_SD1 || family == LF_FAMILY_SD2) sf = 0.18215f;
        else if (family == LF_FAMILY_SDXL) sf = 0.13025f;
        else return lf_err(LF_ERR_ARG, "%s: unknown model family: give the VAE scaling factor", file);
    }
    const char *prefix =
        lf_wts_pick_prefix(st, alias, n_alias, o.prefix, "first_stage_model.", "decoder.conv_in.weight");
    if (strlen(prefix) >= sizeof(((lf_wts *)0)->prefix)) return lf_err(LF_ERR_ARG, "%s: vae prefix too long", file);
    lf_vae *v = calloc(1, sizeof *v);
    if (!v) return lf_err(LF_ERR_NOMEM, "%s: out of memory", file);
    lf_va_ctx c;
    lf_wts_init_src(&c.w, st, alias, n_alias, file, o.f32_weights && borrow == LF_WTS_MAP ? 0 : borrow, prefix);
    c.w.f32 = o.f32_weights;
    c.file = file;
    if (!lf_wts_find(&c.w, "decoder.conv_in.weight")) {
        free(v);
        return lf_err(LF_ERR_MODEL, "%s: no VAE: missing tensor \"%sdecoder.conv_in.weight\"", file, prefix);
    }
    v->arch.norm_groups = o.norm_groups ? o.norm_groups : 32;
    v->arch.scaling_factor = sf;
    lf_status s = lf_va_load_decoder(&c, v);
    if (s == LF_OK && lf_wts_find(&c.w, "encoder.conv_in.weight")) s = lf_va_load_encoder(&c, v);
    if (s != LF_OK) {
        lf_wts_free(&c.w);
        lf_vae_free(v);
        return s;
    }
    v->arch.factor = (int64_t)1 << (v->arch.n_levels - 1);
    v->arch.n_tensors = c.w.loaded;
    v->arch.n_params = c.w.floats;
    lf_wts_release(&c.w, &v->wts, &v->n_wts);
    *out = v;
    return LF_OK;
}

lf_status lf_va_load_src(const lf_st_file *st, const lf_wts_alias *alias, size_t n_alias, const char *label,
                         lf_family family, const lf_vae_opts *opts, lf_vae **out) {
    return lf_va_load_mode(st, alias, n_alias, label, family, opts, 0, out);
}

lf_status lf_vae_load_shapes(const lf_st_file *st, lf_family family, lf_vae **out) {
    return lf_va_load_mode(st, NULL, 0, NULL, family, NULL, LF_WTS_SHAPES, out);
}

lf_status lf_vae_load(const lf_st_file *st, lf_family family, const lf_vae_opts *opts, lf_vae **out) {
    return lf_va_load_src(st, NULL, 0, NULL, family, opts, out);
}

uint64_t lf_vae_weight_bytes(const lf_vae *v) {
    int64_t a = 0, b = 0;
    if (v) lf_wts_list_bytes(v->wts, v->n_wts, &a, &b);
    return (uint64_t)(a + b);
}

lf_status lf_vae_load_mapped(const lf_st_file *st, lf_family family, const lf_vae_opts *opts, lf_vae **out) {
    return lf_va_load_mode(st, NULL, 0, NULL, family, opts, LF_WTS_MAP, out);
}

const lf_vae_arch *lf_vae_get_arch(const lf_vae *v) { return &v->arch; }

/* ---- forward -------------------------------------------------------------------------------- */

static float *lf_va_alloc(lf_compute *c, int64_t n, lf_status *st) { return lf_mc_alloc(c, n, "vae", st); }

static lf_status lf_va_conv_fwd(lf_compute *c, const lf_va_conv *l, float *y, const float *x, int64_t N, int64_t H,
                                int64_t W, int64_t stride, int64_t pad) {
    return c->conv2d(c, y, x, &l->w, l->b, N, l->in, H, W, l->out, l->k, l->k, stride, pad);
}

/* out (N, cout, H, W) = resnet(h (N, cin, H, W)); the shortcut conv (when there is one) runs first, into
 * a (free once conv1 has read it), so conv2 and the residual add are one op */
static lf_status lf_va_res_fwd(lf_compute *c, const lf_va_res *r, float *out, const float *h, int64_t N, int64_t H,
                               int64_t W, int64_t G) {
    int64_t S = H * W, ca = r->sc.w.data && r->cout > r->cin ? r->cout : r->cin;
    lf_status st = LF_OK;
    float *a = lf_va_alloc(c, N * ca * S, &st), *b = lf_va_alloc(c, N * r->cout * S, &st);
    if (st != LF_OK || (st = lf_mc_group_norm_silu(c, a, h, r->n1.g, r->n1.b, N, r->cin, S, G, LF_VA_EPS)) ||
        (st = lf_va_conv_fwd(c, &r->c1, b, a, N, H, W, 1, 1)) ||
        (st = lf_mc_group_norm_silu(c, b, b, r->n2.g, r->n2.b, N, r->cout, S, G, LF_VA_EPS)))
        goto done;
    if (r->sc.w.data && (st = lf_va_conv_fwd(c, &r->sc, a, h, N, H, W, 1, 0))) goto done;
    st = lf_mc_conv2d_add(c, out, b, &r->c2.w, r->c2.b, r->sc.w.data ? a : h, N, r->cout, H, W, r->cout, r->c2.k, 1, 1);
done:
    c->release(c, a), c->release(c, b);
    return st;
}

/* h (N, C, H, W) += single-head self-attention over the H*W positions (in place). */
static lf_status lf_va_attn_fwd(lf_compute *c, const lf_va_attn *at, float *h, int64_t N, int64_t H, int64_t W,
                                int64_t G) {
    int64_t C = at->C, S = H * W, M = N * S;
    lf_status st = LF_OK;
    float *g = lf_va_alloc(c, M * C, &st), *t = lf_va_alloc(c, M * C, &st), *q = lf_va_alloc(c, M * C, &st);
    float *k = lf_va_alloc(c, M * C, &st), *v = lf_va_alloc(c, M * C, &st);
    if (st != LF_OK || (st = c->group_norm(c, g, h, at->n.g, at->n.b, N, C, S, G, LF_VA_EPS)) ||
        (st = c->nchw_to_nlc(c, t, g, N, C, S)) || (st = c->linear(c, q, t, &at->q.w, at->q.b, M, C, C)) ||
        (st = c->linear(c, k, t, &at->k.w, at->k.b, M, C, C)) || (st = c->linear(c, v, t, &at->v.w, at->v.b, M, C, C)) ||
        (st = c->attention(c, g, q, k, v, N, S, S, 1, C, (float)(1.0 / sqrt((double)C)), 0)) ||
        (st = c->linear(c, t, g, &at->o.w, at->o.b, M, C, C)) || (st = c->nlc_to_nchw(c, g, t, N, C, S)))
        goto done;
    st = c->add(c, h, h, g, M * C);
done:
    c->release(c, g), c->release(c, t), c->release(c, q), c->release(c, k), c->release(c, v);
    return st;
}

/* *h (N, *C, H, W) -> resnet output; replaces the buffer. */
static lf_status lf_va_res_step(lf_compute *c, const lf_va_res *r, float **h, int64_t *C, int64_t N, int64_t H,
                                int64_t W, int64_t G) {
    lf_status st = LF_OK;
    float *o = lf_va_alloc(c, N * r->cout * H * W, &st);
    if (st != LF_OK) return st;
    st = lf_va_res_fwd(c, r, o, *h, N, H, W, G);
    c->release(c, *h);
    *h = o;
    *C = r->cout;
    return st;
}

static lf_status lf_va_mid_fwd(lf_compute *c, const lf_va_coder *cd, float **h, int64_t *C, int64_t N, int64_t H,
                               int64_t W, int64_t G) {
    lf_status st = lf_va_res_step(c, &cd->mid1, h, C, N, H, W, G);
    if (st == LF_OK) st = lf_va_attn_fwd(c, &cd->attn, *h, N, H, W, G);
    if (st == LF_OK) st = lf_va_res_step(c, &cd->mid2, h, C, N, H, W, G);
    return st;
}

/* out = conv_out(silu(gn(h))); h is consumed (normalised in place). */
static lf_status lf_va_tail(lf_compute *c, const lf_va_coder *cd, float *out, float *h, int64_t C, int64_t N,
                            int64_t H, int64_t W, int64_t G) {
    lf_status st;
    if ((st = lf_mc_group_norm_silu(c, h, h, cd->norm_out.g, cd->norm_out.b, N, C, H * W, G, LF_VA_EPS))) return st;
    return lf_va_conv_fwd(c, &cd->conv_out, out, h, N, H, W, 1, 1);
}

lf_status lf_vae_decode_on(const lf_vae *v, lf_compute *c, float *img, const float *latents, int64_t N, int64_t h,
                           int64_t w) {
    const lf_vae_arch *a = &v->arch;
    const lf_va_coder *d = &v->dec;
    int64_t G = a->norm_groups, z = a->latent_channels, H = h, W = w, C;
    if (N < 1 || h < 1 || w < 1) return lf_err(LF_ERR_SHAPE, "vae decode: empty latent");
    lf_status st = LF_OK;
    float *s = lf_va_alloc(c, N * z * H * W, &st), *t = lf_va_alloc(c, N * z * H * W, &st), *x = NULL;
    if (st != LF_OK || (st = c->scale(c, s, latents, 1.0f / a->scaling_factor, N * z * H * W)) ||
        (st = lf_va_conv_fwd(c, &v->post_quant, t, s, N, H, W, 1, 0)))
        goto done;
    C = d->conv_in.out;
    if ((x = lf_va_alloc(c, N * C * H * W, &st)) == NULL || (st = lf_va_conv_fwd(c, &d->conv_in, x, t, N, H, W, 1, 1)) ||
        (st = lf_va_mid_fwd(c, d, &x, &C, N, H, W, G)))
        goto done;
    for (int i = d->n - 1; i >= 0; i--) {
        const lf_va_level *lv = &d->lv[i];
        for (int j = 0; j < lv->n_res; j++)
            if ((st = lf_va_res_step(c, &lv->res[j], &x, &C, N, H, W, G)) != LF_OK) goto done;
        if (lv->resample.w.data) { /* nearest 2x (resize_nearest at twice the size is exactly that) + conv */
            float *u = lf_va_alloc(c, N * C * 4 * H * W, &st), *y = lf_va_alloc(c, N * C * 4 * H * W, &st);
            if (st == LF_OK && !(st = c->resize_nearest(c, u, x, N, C, H, W, 2 * H, 2 * W)))
                st = lf_va_conv_fwd(c, &lv->resample, y, u, N, 2 * H, 2 * W, 1, 1);
            c->release(c, u);
            c->release(c, x);
            x = y;
            H *= 2, W *= 2;
            if (st != LF_OK) goto done;
        }
    }
    st = lf_va_tail(c, d, img, x, C, N, H, W, G);
done:
    c->release(c, s), c->release(c, t), c->release(c, x);
    return st;
}

lf_status lf_vae_decode(const lf_vae *v, float *img, const float *latents, int64_t N, int64_t h, int64_t w) {
    return lf_vae_decode_on(v, lf_compute_cpu(), img, latents, N, h, w);
}

/* ---- memory of a decode (model_mem.h): the decode itself on a dry counting compute ------------- */
uint64_t lf_vae_decode_peak(const lf_vae *v, int64_t N, int64_t h, int64_t w) {
    lf_compute_count cc;
    lf_compute_count_init(&cc, NULL);
    static float placeholder; /* the caller's latents and image: a dry compute never reads them */
    lf_status st = lf_vae_decode_on(v, &cc.c, &placeholder, &placeholder, N, h, w);
    double peak = cc.peak;
    lf_compute_count_free(&cc);
    return st == LF_OK ? (uint64_t)peak : LF_MEM_UNKNOWN;
}

/* logvar (N, z, S) = clamp(the second half of each sample's moments q (N, 2z, S), -30, 20). The
 * operator set has no clamp: the values go through the host (diagnostics and tests ask for them, the
 * sampling path does not). */
static lf_status lf_va_logvar(lf_compute *c, float *logvar, const float *q, int64_t N, int64_t zS) {
    float *hbuf = malloc((size_t)(zS > 0 ? zS : 1) * sizeof *hbuf);
    if (!hbuf) return lf_err(LF_ERR_NOMEM, "vae encode: out of memory (logvar of %lld floats)", (long long)zS);
    lf_status st = LF_OK;
    for (int64_t n = 0; n < N && st == LF_OK; n++) {
        if ((st = c->download(c, hbuf, q + (2 * n + 1) * zS, zS)) != LF_OK) break;
        for (int64_t i = 0; i < zS; i++) hbuf[i] = hbuf[i] < -30.0f ? -30.0f : (hbuf[i] > 20.0f ? 20.0f : hbuf[i]);
        st = c->upload(c, logvar + n * zS, hbuf, zS);
    }
    free(hbuf);
    return st;
}

lf_status lf_vae_encode_on(const lf_vae *v, lf_compute *c, float *latents, float *logvar, const float *img, int64_t N,
                           int64_t H, int64_t W) {
    const lf_vae_arch *a = &v->arch;
    const lf_va_coder *e = &v->enc;
    if (!a->has_encoder) return lf_err(LF_ERR_MODEL, "vae encode: the checkpoint has no VAE encoder");
    if (N < 1 || H < 1 || W < 1 || H % a->factor || W % a->factor)
        return lf_err(LF_ERR_SHAPE, "vae encode: image %lldx%lld: height and width must be positive multiples of %lld",
                      (long long)H, (long long)W, (long long)a->factor);
    int64_t G = a->norm_groups, z = a->latent_channels, C = e->conv_in.out;
    lf_status st = LF_OK;
    float *x = lf_va_alloc(c, N * C * H * W, &st), *mom = NULL, *q = NULL;
    if (st != LF_OK) return st;
    if ((st = lf_va_conv_fwd(c, &e->conv_in, x, img, N, H, W, 1, 1)) != LF_OK) goto done;
    for (int i = 0; i < e->n; i++) {
        const lf_va_level *lv = &e->lv[i];
        for (int j = 0; j < lv->n_res; j++)
            if ((st = lf_va_res_step(c, &lv->res[j], &x, &C, N, H, W, G)) != LF_OK) goto done;
        if (lv->resample.w.data) { /* pad (0, 1, 0, 1), conv 3x3 stride 2 pad 0 */
            int64_t Ho = lf_nn_conv_out(H + 1, 3, 2, 0), Wo = lf_nn_conv_out(W + 1, 3, 2, 0);
            float *p = lf_va_alloc(c, N * C * (H + 1) * (W + 1), &st), *y = lf_va_alloc(c, N * C * Ho * Wo, &st);
            if (st == LF_OK && !(st = c->pad2d(c, p, x, N, C, H, W, 0, 1, 0, 1)))
                st = lf_va_conv_fwd(c, &lv->resample, y, p, N, H + 1, W + 1, 2, 0);
            c->release(c, p);
            c->release(c, x);
            x = y;
            H = Ho, W = Wo;
            if (st != LF_OK) goto done;
        }
    }
    if ((st = lf_va_mid_fwd(c, e, &x, &C, N, H, W, G)) != LF_OK) goto done;
    mom = lf_va_alloc(c, N * 2 * z * H * W, &st);
    q = lf_va_alloc(c, N * 2 * z * H * W, &st);
    if (st != LF_OK || (st = lf_va_tail(c, e, mom, x, C, N, H, W, G)) ||
        (st = lf_va_conv_fwd(c, &v->quant, q, mom, N, H, W, 1, 0)))
        goto done;
    int64_t zS = z * H * W; /* per sample: the mean is the first half of the moments, scaled into latents */
    for (int64_t n = 0; n < N && st == LF_OK; n++)
        st = c->scale(c, latents + n * zS, q + 2 * n * zS, a->scaling_factor, zS);
    if (st == LF_OK && logvar) st = lf_va_logvar(c, logvar, q, N, zS);
done:
    c->release(c, x), c->release(c, mom), c->release(c, q);
    return st;
}

lf_status lf_vae_encode(const lf_vae *v, float *latents, float *logvar, const float *img, int64_t N, int64_t H,
                        int64_t W) {
    return lf_vae_encode_on(v, lf_compute_cpu(), latents, logvar, img, N, H, W);
}
