/* unet.c: forward pass of a loaded UNet, written once over the compute interface (model_compute.h,
 * host/base/compute.h); lf_unet.h's functions run it on the CPU backend (lf_nn.h's operators).
 *
 * Formulas (diffusers UNet2DConditionModel 0.30 / LDM openaimodel, eval mode, f32):
 *   emb      = W2 silu(W1 temb(t) + b1) + b2 [+ L2 silu(L1 y + c1) + c2],  temb: flip_sin_to_cos, shift 0
 *   resnet   h' = skip(h) + conv2(silu(gn2(conv1(silu(gn1(h))) + E silu(emb) + e)))      gn eps 1e-5
 *   xformer  u = proj_in(gn(h)) as tokens (N, H*W, inner) (gn eps 1e-6; 1x1 conv before, Linear after
 *            the NCHW -> tokens transpose); per block: u += attn1(ln1 u); u += attn2(ln2 u, ctx);
 *            u += ff2(geglu(ff1(ln3 u))) (ln eps 1e-5); h' = h + proj_out(u) back in NCHW
 *   attn     softmax(q kᵀ / sqrt(d)) v per head, q = Wq a, k = Wk c, v = Wv c, out = Wo (.) + bo
 *   down     conv 3x3 stride 2 pad 1 (H -> ceil(H/2));  up: nearest to the size of the next skip
 *            connection (2x when the latent is a multiple of 2^downsamplers; otherwise diffusers'
 *            upsample_size, F.interpolate(size=...), resize_nearest) then conv 3x3 pad 1
 *   out      conv_out(silu(gn(h)))                                                        gn eps 1e-5
 * Buffers (backend memory, c->alloc): each layer writes a fresh (N, C, H, W) array; input-block
 * outputs live on the skip list until the matching output block concatenates them. No state outside
 * the call. unet_mem.c replays these buffers for the memory estimate: change both together.
 */
#include <math.h>
#include <stdlib.h>

#include "compute_cpu.h"
#include "kernels/cpu/nn/lf_nn.h" /* lf_nn_conv_out: shapes only; every op goes through the compute */
#include "model_compute.h"
#include "unet_internal.h"

#define LF_UN_EPS_RES 1e-5f
#define LF_UN_EPS_XF_GN 1e-6f
#define LF_UN_EPS_LN 1e-5f

static float *lf_un_alloc(lf_compute *c, int64_t n, lf_status *st) { return lf_mc_alloc(c, n, "unet", st); }

static lf_status lf_un_linear(lf_compute *c, const lf_un_lin *l, float *y, const float *x, int64_t M) {
    return c->linear(c, y, x, &l->w, l->b, M, l->in, l->out);
}

static lf_status lf_un_conv(lf_compute *c, const lf_un_lin *l, float *y, const float *x, int64_t N, int64_t H,
                            int64_t W, int64_t stride, int64_t pad) {
    return c->conv2d(c, y, x, &l->w, l->b, N, l->in, H, W, l->out, l->k, l->k, stride, pad);
}

/* ---- time embedding ------------------------------------------------------------------------- */

lf_status lf_unet_time_embed_on(const lf_unet *u, lf_compute *c, float *emb, const float *t, const float *y,
                                int64_t N) {
    const lf_unet_arch *a = &u->arch;
    if (a->adm_in_channels > 0 && !y)
        return lf_err(LF_ERR_ARG, "unet: this model has label_emb (adm_in_channels %lld): y is required",
                      (long long)a->adm_in_channels);
    int64_t C0 = u->t1.in, T = u->t1.out;
    lf_status st = LF_OK;
    float *te = lf_un_alloc(c, N * C0, &st), *h = lf_un_alloc(c, N * T, &st);
    float *ya = NULL, *yb = NULL;
    if (a->adm_in_channels > 0) {
        ya = lf_un_alloc(c, N * T, &st);
        yb = lf_un_alloc(c, N * T, &st);
    }
    if (st != LF_OK || (st = c->timestep_embedding(c, te, t, N, C0, 1, 0.0f, 10000.0f)) ||
        (st = lf_un_linear(c, &u->t1, h, te, N)) || (st = c->silu(c, h, h, N * T)) ||
        (st = lf_un_linear(c, &u->t2, emb, h, N)))
        goto done;
    if (a->adm_in_channels > 0 && ((st = lf_un_linear(c, &u->l1, ya, y, N)) || (st = c->silu(c, ya, ya, N * T)) ||
                                   (st = lf_un_linear(c, &u->l2, yb, ya, N)) || (st = c->add(c, emb, emb, yb, N * T))))
        goto done;
done:
    c->release(c, te), c->release(c, h), c->release(c, ya), c->release(c, yb);
    return st;
}

lf_status lf_unet_time_embed(const lf_unet *u, float *emb, const float *t, const float *y, int64_t N) {
    return lf_unet_time_embed_on(u, lf_compute_cpu(), emb, t, y, N);
}

lf_status lf_unet_sdxl_y_on(const lf_unet *u, lf_compute *c, float *y, const float *pooled, int64_t pooled_dim,
                            const float *time_ids, int64_t n_ids, int64_t N) {
    int64_t adm = u->arch.adm_in_channels;
    if (adm <= 0) return lf_err(LF_ERR_ARG, "unet: model has no label_emb (not SDXL): no y vector");
    if (n_ids < 1 || pooled_dim < 0 || pooled_dim >= adm || (adm - pooled_dim) % n_ids)
        return lf_err(LF_ERR_SHAPE,
                      "unet: adm_in_channels %lld does not split into pooled %lld + %lld time ids",
                      (long long)adm, (long long)pooled_dim, (long long)n_ids);
    int64_t td = (adm - pooled_dim) / n_ids;
    lf_status st = LF_OK;
    float *e = lf_un_alloc(c, N * n_ids * td, &st);
    if (st != LF_OK) return st;
    /* rows of y: [pooled | the ids' embeddings], written as two column blocks */
    if (!(st = c->timestep_embedding(c, e, time_ids, N * n_ids, td, 1, 0.0f, 10000.0f)) &&
        !(st = c->copy2d(c, y, adm, pooled, pooled_dim, N, pooled_dim)))
        st = c->copy2d(c, y + pooled_dim, adm, e, n_ids * td, N, n_ids * td);
    c->release(c, e);
    return st;
}

lf_status lf_unet_sdxl_y(const lf_unet *u, float *y, const float *pooled, int64_t pooled_dim,
                         const float *time_ids, int64_t n_ids, int64_t N) {
    return lf_unet_sdxl_y_on(u, lf_compute_cpu(), y, pooled, pooled_dim, time_ids, n_ids, N);
}

/* ---- layers --------------------------------------------------------------------------------- */

/* out (N, cout, H, W) = resnet(h (N, cin, H, W)); emb_s = silu(emb) (N, T). The skip conv (when there
 * is one) runs first, into a (free once conv1 has read it), so conv2 and the residual add are one op. */
static lf_status lf_un_res_fwd(const lf_unet *u, lf_compute *c, const lf_un_res *r, float *out, const float *h,
                               const float *emb_s, int64_t N, int64_t H, int64_t W) {
    int64_t S = H * W, G = u->arch.norm_groups, ca = r->skip.w.data && r->cout > r->cin ? r->cout : r->cin;
    lf_status st = LF_OK;
    float *a = lf_un_alloc(c, N * ca * S, &st), *b = lf_un_alloc(c, N * r->cout * S, &st);
    float *e = lf_un_alloc(c, N * r->cout, &st);
    if (st != LF_OK) goto done;
    if ((st = lf_mc_group_norm_silu(c, a, h, r->n1.g, r->n1.b, N, r->cin, S, G, LF_UN_EPS_RES)) ||
        (st = lf_un_conv(c, &r->c1, b, a, N, H, W, 1, 1)) || (st = lf_un_linear(c, &r->emb, e, emb_s, N)) ||
        (st = c->add_bias_nc(c, b, e, N, r->cout, S)) ||
        (st = lf_mc_group_norm_silu(c, b, b, r->n2.g, r->n2.b, N, r->cout, S, G, LF_UN_EPS_RES)))
        goto done;
    if (r->skip.w.data && (st = lf_un_conv(c, &r->skip, a, h, N, H, W, 1, 0))) goto done;
    st = lf_mc_conv2d_add(c, out, b, &r->c2.w, r->c2.b, r->skip.w.data ? a : h, N, r->cout, H, W, r->cout, r->c2.k, 1,
                          1);
done:
    c->release(c, a), c->release(c, b), c->release(c, e);
    return st;
}

/* x (N*Lq, inner) += attention(q from a (N*Lq, inner), k/v from kv (N*Lk, kv_in)). */
static lf_status lf_un_attn_fwd(lf_compute *c, const lf_un_attn *at, float *x, const float *a, const float *kv,
                                int64_t N, int64_t Lq, int64_t Lk) {
    int64_t inner = at->q.out;
    lf_status st = LF_OK;
    float *q = lf_un_alloc(c, N * Lq * inner, &st), *k = lf_un_alloc(c, N * Lk * inner, &st);
    float *v = lf_un_alloc(c, N * Lk * inner, &st), *o = lf_un_alloc(c, N * Lq * inner, &st);
    if (st != LF_OK) goto done;
    if ((st = lf_un_linear(c, &at->q, q, a, N * Lq)) || (st = lf_un_linear(c, &at->k, k, kv, N * Lk)) ||
        (st = lf_un_linear(c, &at->v, v, kv, N * Lk)) ||
        (st = c->attention(c, o, q, k, v, N, Lq, Lk, at->heads, at->dim_head,
                           (float)(1.0 / sqrt((double)at->dim_head)), 0)) ||
        (st = lf_un_linear(c, &at->o, q, o, N * Lq))) /* q reused as the projection output */
        goto done;
    st = c->add(c, x, x, q, N * Lq * inner);
done:
    c->release(c, q), c->release(c, k), c->release(c, v), c->release(c, o);
    return st;
}

/* out (N, C, H, W) = spatial transformer(h (N, C, H, W), ctx (N, L, context_dim)). */
static lf_status lf_un_xf_fwd(const lf_unet *u, lf_compute *c, const lf_un_xf *x, float *out, const float *h,
                              const float *ctx, int64_t L, int64_t N, int64_t H, int64_t W) {
    int64_t S = H * W, C = x->C, I = x->inner, M = N * S;
    lf_status st = LF_OK;
    float *g = lf_un_alloc(c, N * C * S, &st), *tok = lf_un_alloc(c, M * I, &st), *a = lf_un_alloc(c, M * I, &st);
    float *f1 = NULL, *f2 = NULL;
    int64_t F2 = 0;
    for (int d = 0; d < x->depth; d++)
        if (x->blocks[d].ff1.out > F2) F2 = x->blocks[d].ff1.out;
    f1 = lf_un_alloc(c, M * F2, &st);
    f2 = lf_un_alloc(c, M * F2 / 2, &st);
    if (st != LF_OK) goto done;
    if ((st = c->group_norm(c, g, h, x->gn.g, x->gn.b, N, C, S, u->arch.norm_groups, LF_UN_EPS_XF_GN))) goto done;
    if (x->pin.k) { /* 1x1 conv, then tokens */
        if ((st = lf_un_conv(c, &x->pin, a, g, N, H, W, 1, 0)) || (st = c->nchw_to_nlc(c, tok, a, N, I, S))) goto done;
    } else {
        if ((st = c->nchw_to_nlc(c, a, g, N, C, S)) || (st = lf_un_linear(c, &x->pin, tok, a, M))) goto done;
    }
    for (int d = 0; d < x->depth; d++) {
        const lf_un_tblock *b = &x->blocks[d];
        if ((st = c->layer_norm(c, a, tok, b->ln1.g, b->ln1.b, M, I, LF_UN_EPS_LN)) ||
            (st = lf_un_attn_fwd(c, &b->a1, tok, a, a, N, S, S)) ||
            (st = c->layer_norm(c, a, tok, b->ln2.g, b->ln2.b, M, I, LF_UN_EPS_LN)) ||
            (st = lf_un_attn_fwd(c, &b->a2, tok, a, ctx, N, S, L)) ||
            (st = c->layer_norm(c, a, tok, b->ln3.g, b->ln3.b, M, I, LF_UN_EPS_LN)) ||
            (st = lf_un_linear(c, &b->ff1, f1, a, M)) || (st = c->geglu(c, f2, f1, M, b->ff1.out / 2)) ||
            (st = lf_un_linear(c, &b->ff2, a, f2, M)) || (st = c->add(c, tok, tok, a, M * I)))
            goto done;
    }
    if (x->pout.k) { /* 1x1 conv with the residual add */
        if ((st = c->nlc_to_nchw(c, a, tok, N, I, S))) goto done;
        st = lf_mc_conv2d_add(c, out, a, &x->pout.w, x->pout.b, h, N, I, H, W, C, 1, 1, 0);
    } else {
        if ((st = lf_un_linear(c, &x->pout, g, tok, M)) || (st = c->nlc_to_nchw(c, out, g, N, C, S))) goto done;
        st = c->add(c, out, out, h, N * C * S);
    }
done:
    c->release(c, g), c->release(c, tok), c->release(c, a), c->release(c, f1), c->release(c, f2);
    return st;
}

/* Run the layers of one block on in (N, *C, *H, *W); *out gets a fresh buffer (in is not released).
 * An upsampler resizes to up_h x up_w (nearest, diffusers' Upsample2D with upsample_size), 2x when 0. */
static lf_status lf_un_block_fwd(const lf_unet *u, lf_compute *c, const lf_un_block *blk, float **out,
                                 const float *in, int64_t *C, int64_t *H, int64_t *W, const float *emb_s,
                                 const float *ctx, int64_t L, int64_t N, int64_t up_h, int64_t up_w) {
    lf_status st = LF_OK;
    const float *cur = in;
    float *owned = NULL;
    for (int j = 0; j < blk->n && st == LF_OK; j++) {
        const lf_un_layer *l = &blk->layers[j];
        float *nx = NULL;
        switch (l->kind) {
        case LF_UN_RES:
            if ((nx = lf_un_alloc(c, N * l->res.cout * *H * *W, &st)) == NULL) break;
            st = lf_un_res_fwd(u, c, &l->res, nx, cur, emb_s, N, *H, *W);
            *C = l->res.cout;
            break;
        case LF_UN_XF:
            if ((nx = lf_un_alloc(c, N * *C * *H * *W, &st)) == NULL) break;
            st = lf_un_xf_fwd(u, c, &l->xf, nx, cur, ctx, L, N, *H, *W);
            break;
        case LF_UN_DOWN: {
            int64_t Ho = lf_nn_conv_out(*H, 3, 2, 1), Wo = lf_nn_conv_out(*W, 3, 2, 1);
            if ((nx = lf_un_alloc(c, N * l->conv.out * Ho * Wo, &st)) == NULL) break;
            st = lf_un_conv(c, &l->conv, nx, cur, N, *H, *W, 2, 1);
            *C = l->conv.out, *H = Ho, *W = Wo;
            break;
        }
        case LF_UN_UP: {
            int64_t Ho = up_h > 0 ? up_h : 2 * *H, Wo = up_w > 0 ? up_w : 2 * *W;
            float *upx = lf_un_alloc(c, N * *C * Ho * Wo, &st);
            if (!upx) break;
            st = c->resize_nearest(c, upx, cur, N, *C, *H, *W, Ho, Wo);
            *H = Ho, *W = Wo;
            if ((nx = lf_un_alloc(c, N * l->conv.out * *H * *W, &st)) != NULL)
                st = lf_un_conv(c, &l->conv, nx, upx, N, *H, *W, 1, 1);
            *C = l->conv.out;
            c->release(c, upx);
            break;
        }
        case LF_UN_CONV_IN:
            if ((nx = lf_un_alloc(c, N * l->conv.out * *H * *W, &st)) == NULL) break;
            st = lf_un_conv(c, &l->conv, nx, cur, N, *H, *W, 1, 1);
            *C = l->conv.out;
            break;
        }
        c->release(c, owned);
        owned = nx;
        cur = nx;
    }
    if (st == LF_OK && !owned) { /* empty block: its output is a copy of its input */
        int64_t n = N * *C * *H * *W;
        if ((owned = lf_un_alloc(c, n, &st)) != NULL) st = c->copy2d(c, owned, n, in, n, 1, n);
    }
    if (st != LF_OK) {
        c->release(c, owned);
        return st;
    }
    *out = owned;
    return LF_OK;
}

/* ---- whole network -------------------------------------------------------------------------- */

lf_status lf_unet_forward_mid_on(const lf_unet *u, lf_compute *c, float *out, float *mid, const float *x,
                                 const float *t, const float *context, int64_t L, const float *y, int64_t N,
                                 int64_t H, int64_t W) {
    const lf_unet_arch *a = &u->arch;
    if (N < 1 || H < 1 || W < 1)
        return lf_err(LF_ERR_SHAPE, "unet: latent %lldx%lld (batch %lld): sizes must be positive", (long long)H,
                      (long long)W, (long long)N);
    if (a->context_dim > 0 && (!context || L < 1))
        return lf_err(LF_ERR_ARG, "unet: context (N, L, %lld) is required", (long long)a->context_dim);
    lf_status st = LF_OK;
    float *emb = lf_un_alloc(c, N * a->time_embed_dim, &st);
    float *skips[LF_UNET_MAX_BLOCKS];
    int64_t skc[LF_UNET_MAX_BLOCKS], skh[LF_UNET_MAX_BLOCKS], skw[LF_UNET_MAX_BLOCKS];
    int ns = 0;
    float *h = NULL;
    if (st != LF_OK) return st;
    if ((st = lf_unet_time_embed_on(u, c, emb, t, y, N)) ||
        (st = c->silu(c, emb, emb, N * a->time_embed_dim))) /* every resnet takes silu(emb) */
        goto done;

    int64_t C = a->in_channels, Hc = H, Wc = W;
    const float *cur = x;
    for (int i = 0; i < a->n_input_blocks; i++) {
        float *nx = NULL;
        if ((st = lf_un_block_fwd(u, c, &u->in[i], &nx, cur, &C, &Hc, &Wc, emb, context, L, N, 0, 0)) != LF_OK)
            goto done;
        skips[ns] = nx, skc[ns] = C, skh[ns] = Hc, skw[ns] = Wc, ns++;
        cur = nx;
    }
    if ((st = lf_un_block_fwd(u, c, &u->mid, &h, cur, &C, &Hc, &Wc, emb, context, L, N, 0, 0)) != LF_OK) goto done;
    if (mid && (st = c->copy2d(c, mid, N * C * Hc * Wc, h, N * C * Hc * Wc, 1, N * C * Hc * Wc)) != LF_OK) goto done;
    for (int i = 0; i < a->n_output_blocks; i++) {
        int k = ns - 1;
        float *cat = lf_un_alloc(c, N * (C + skc[k]) * Hc * Wc, &st), *nx = NULL;
        if (!cat) goto done;
        st = c->concat_c(c, cat, h, skips[k], N, C, skc[k], Hc * Wc);
        C += skc[k];
        c->release(c, h);
        c->release(c, skips[k]);
        ns = k;
        h = NULL;
        /* an upsampler here goes to the size of the next skip connection (diffusers: upsample_size =
         * down_block_res_samples[-1].shape[2:] when a latent size is not a multiple of 2^upsamplers; the
         * same as 2x otherwise), so odd sizes come back exactly: 5 -> 3 -> 5 */
        if (st == LF_OK)
            st = lf_un_block_fwd(u, c, &u->out[i], &nx, cat, &C, &Hc, &Wc, emb, context, L, N,
                                 k > 0 ? skh[k - 1] : 0, k > 0 ? skw[k - 1] : 0);
        c->release(c, cat);
        if (st != LF_OK) goto done;
        h = nx;
    }
    if ((st = lf_mc_group_norm_silu(c, h, h, u->out_norm.g, u->out_norm.b, N, C, Hc * Wc, a->norm_groups,
                                    LF_UN_EPS_RES)))
        goto done;
    st = lf_un_conv(c, &u->out_conv, out, h, N, Hc, Wc, 1, 1);
done:
    while (ns > 0) c->release(c, skips[--ns]);
    c->release(c, h);
    c->release(c, emb);
    return st;
}

lf_status lf_unet_forward_on(const lf_unet *u, lf_compute *c, float *out, const float *x, const float *t,
                             const float *context, int64_t L, const float *y, int64_t N, int64_t H, int64_t W) {
    return lf_unet_forward_mid_on(u, c, out, NULL, x, t, context, L, y, N, H, W);
}

lf_status lf_unet_forward_mid(const lf_unet *u, float *out, float *mid, const float *x, const float *t,
                              const float *context, int64_t L, const float *y, int64_t N, int64_t H,
                              int64_t W) {
    return lf_unet_forward_mid_on(u, lf_compute_cpu(), out, mid, x, t, context, L, y, N, H, W);
}

lf_status lf_unet_forward(const lf_unet *u, float *out, const float *x, const float *t,
                          const float *context, int64_t L, const float *y, int64_t N, int64_t H,
                          int64_t W) {
    return lf_unet_forward_mid_on(u, lf_compute_cpu(), out, NULL, x, t, context, L, y, N, H, W);
}
