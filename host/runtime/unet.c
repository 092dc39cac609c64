/* unet.c: forward pass of a loaded UNet on the f32 CPU reference operators (lf_unet.h, lf_nn.h).
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
 *            upsample_size, F.interpolate(size=...), lf_nn_resize_nearest) then conv 3x3 pad 1
 *   out      conv_out(silu(gn(h)))                                                        gn eps 1e-5
 * Buffers: each layer writes a fresh (N, C, H, W) array; input-block outputs live on the skip list
 * until the matching output block concatenates them. No state outside the call.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/nn/lf_nn.h"
#include "unet_internal.h"

#define LF_UN_EPS_RES 1e-5f
#define LF_UN_EPS_XF_GN 1e-6f
#define LF_UN_EPS_LN 1e-5f

static float *lf_un_alloc(int64_t n, lf_status *st) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!p && *st == LF_OK) *st = lf_err(LF_ERR_NOMEM, "unet: out of memory (%lld floats)", (long long)n);
    return p;
}

static lf_status lf_un_linear(const lf_un_lin *l, float *y, const float *x, int64_t M) {
    return lf_nn_linear_w(y, x, &l->w, l->b, M, l->in, l->out);
}

static lf_status lf_un_conv(const lf_un_lin *l, float *y, const float *x, int64_t N, int64_t H,
                            int64_t W, int64_t stride, int64_t pad) {
    return lf_nn_conv2d_w(y, x, &l->w, l->b, N, l->in, H, W, l->out, l->k, l->k, stride, pad);
}

/* ---- time embedding ------------------------------------------------------------------------- */

lf_status lf_unet_time_embed(const lf_unet *u, float *emb, const float *t, const float *y, int64_t N) {
    const lf_unet_arch *a = &u->arch;
    if (a->adm_in_channels > 0 && !y)
        return lf_err(LF_ERR_ARG, "unet: this model has label_emb (adm_in_channels %lld): y is required",
                      (long long)a->adm_in_channels);
    int64_t C0 = u->t1.in, T = u->t1.out;
    lf_status st = LF_OK;
    float *te = lf_un_alloc(N * C0, &st), *h = lf_un_alloc(N * T, &st);
    float *ya = NULL, *yb = NULL;
    if (a->adm_in_channels > 0) {
        ya = lf_un_alloc(N * T, &st);
        yb = lf_un_alloc(N * T, &st);
    }
    if (st == LF_OK) {
        lf_nn_timestep_embedding(te, t, N, C0, 1, 0.0f, 10000.0f);
        st = lf_un_linear(&u->t1, h, te, N);
        lf_nn_silu(h, h, N * T);
        if (st == LF_OK) st = lf_un_linear(&u->t2, emb, h, N);
        if (st == LF_OK && a->adm_in_channels > 0) {
            st = lf_un_linear(&u->l1, ya, y, N);
            lf_nn_silu(ya, ya, N * T);
            if (st == LF_OK) st = lf_un_linear(&u->l2, yb, ya, N);
            lf_nn_add(emb, emb, yb, N * T);
        }
    }
    free(te), free(h), free(ya), free(yb);
    return st;
}

lf_status lf_unet_sdxl_y(const lf_unet *u, float *y, const float *pooled, int64_t pooled_dim,
                         const float *time_ids, int64_t n_ids, int64_t N) {
    int64_t adm = u->arch.adm_in_channels;
    if (adm <= 0) return lf_err(LF_ERR_ARG, "unet: model has no label_emb (not SDXL): no y vector");
    if (n_ids < 1 || pooled_dim < 0 || pooled_dim >= adm || (adm - pooled_dim) % n_ids)
        return lf_err(LF_ERR_SHAPE,
                      "unet: adm_in_channels %lld does not split into pooled %lld + %lld time ids",
                      (long long)adm, (long long)pooled_dim, (long long)n_ids);
    int64_t td = (adm - pooled_dim) / n_ids;
    lf_status st = LF_OK;
    float *e = lf_un_alloc(N * n_ids * td, &st);
    if (st != LF_OK) return st;
    lf_nn_timestep_embedding(e, time_ids, N * n_ids, td, 1, 0.0f, 10000.0f);
    for (int64_t n = 0; n < N; n++) {
        memcpy(y + n * adm, pooled + n * pooled_dim, (size_t)pooled_dim * sizeof(float));
        memcpy(y + n * adm + pooled_dim, e + n * n_ids * td, (size_t)(n_ids * td) * sizeof(float));
    }
    free(e);
    return LF_OK;
}

/* ---- layers --------------------------------------------------------------------------------- */

/* out (N, cout, H, W) = resnet(h (N, cin, H, W)); emb_s = silu(emb) (N, T). */
static lf_status lf_un_res_fwd(const lf_unet *u, const lf_un_res *r, float *out, const float *h,
                               const float *emb_s, int64_t N, int64_t H, int64_t W) {
    int64_t S = H * W, G = u->arch.norm_groups;
    lf_status st = LF_OK;
    float *a = lf_un_alloc(N * r->cin * S, &st), *b = lf_un_alloc(N * r->cout * S, &st);
    float *e = lf_un_alloc(N * r->cout, &st);
    if (st != LF_OK) goto done;
    lf_nn_group_norm(a, h, r->n1.g, r->n1.b, N, r->cin, S, G, LF_UN_EPS_RES);
    lf_nn_silu(a, a, N * r->cin * S);
    if ((st = lf_un_conv(&r->c1, b, a, N, H, W, 1, 1)) != LF_OK) goto done;
    if ((st = lf_un_linear(&r->emb, e, emb_s, N)) != LF_OK) goto done;
    lf_nn_add_bias_nc(b, e, N, r->cout, S);
    lf_nn_group_norm(b, b, r->n2.g, r->n2.b, N, r->cout, S, G, LF_UN_EPS_RES);
    lf_nn_silu(b, b, N * r->cout * S);
    if ((st = lf_un_conv(&r->c2, out, b, N, H, W, 1, 1)) != LF_OK) goto done;
    if (r->skip.w.data) {
        if ((st = lf_un_conv(&r->skip, b, h, N, H, W, 1, 0)) != LF_OK) goto done;
        lf_nn_add(out, out, b, N * r->cout * S);
    } else {
        lf_nn_add(out, out, h, N * r->cout * S);
    }
done:
    free(a), free(b), free(e);
    return st;
}

/* x (N*Lq, inner) += attention(q from a (N*Lq, inner), k/v from c (N*Lk, kv_in)). */
static lf_status lf_un_attn_fwd(const lf_un_attn *at, float *x, const float *a, const float *c,
                                int64_t N, int64_t Lq, int64_t Lk) {
    int64_t inner = at->q.out;
    lf_status st = LF_OK;
    float *q = lf_un_alloc(N * Lq * inner, &st), *k = lf_un_alloc(N * Lk * inner, &st);
    float *v = lf_un_alloc(N * Lk * inner, &st), *o = lf_un_alloc(N * Lq * inner, &st);
    if (st != LF_OK) goto done;
    if ((st = lf_un_linear(&at->q, q, a, N * Lq)) != LF_OK || (st = lf_un_linear(&at->k, k, c, N * Lk)) != LF_OK ||
        (st = lf_un_linear(&at->v, v, c, N * Lk)) != LF_OK)
        goto done;
    st = lf_nn_attention(o, q, k, v, N, Lq, Lk, at->heads, at->dim_head,
                         (float)(1.0 / sqrt((double)at->dim_head)), 0);
    if (st != LF_OK) goto done;
    if ((st = lf_un_linear(&at->o, q, o, N * Lq)) != LF_OK) goto done; /* q reused as the projection output */
    lf_nn_add(x, x, q, N * Lq * inner);
done:
    free(q), free(k), free(v), free(o);
    return st;
}

/* out (N, C, H, W) = spatial transformer(h (N, C, H, W), ctx (N, L, context_dim)). */
static lf_status lf_un_xf_fwd(const lf_unet *u, const lf_un_xf *x, float *out, const float *h,
                              const float *ctx, int64_t L, int64_t N, int64_t H, int64_t W) {
    int64_t S = H * W, C = x->C, I = x->inner, M = N * S;
    lf_status st = LF_OK;
    float *g = lf_un_alloc(N * C * S, &st), *tok = lf_un_alloc(M * I, &st), *a = lf_un_alloc(M * I, &st);
    float *f1 = NULL, *f2 = NULL;
    int64_t F2 = 0;
    for (int d = 0; d < x->depth; d++)
        if (x->blocks[d].ff1.out > F2) F2 = x->blocks[d].ff1.out;
    f1 = lf_un_alloc(M * F2, &st);
    f2 = lf_un_alloc(M * F2 / 2, &st);
    if (st != LF_OK) goto done;
    lf_nn_group_norm(g, h, x->gn.g, x->gn.b, N, C, S, u->arch.norm_groups, LF_UN_EPS_XF_GN);
    if (x->pin.k) { /* 1x1 conv, then tokens */
        if ((st = lf_un_conv(&x->pin, a, g, N, H, W, 1, 0)) != LF_OK) goto done;
        lf_nn_nchw_to_nlc(tok, a, N, I, S);
    } else {
        lf_nn_nchw_to_nlc(a, g, N, C, S);
        if ((st = lf_un_linear(&x->pin, tok, a, M)) != LF_OK) goto done;
    }
    for (int d = 0; d < x->depth; d++) {
        const lf_un_tblock *b = &x->blocks[d];
        lf_nn_layer_norm(a, tok, b->ln1.g, b->ln1.b, M, I, LF_UN_EPS_LN);
        if ((st = lf_un_attn_fwd(&b->a1, tok, a, a, N, S, S)) != LF_OK) goto done;
        lf_nn_layer_norm(a, tok, b->ln2.g, b->ln2.b, M, I, LF_UN_EPS_LN);
        if ((st = lf_un_attn_fwd(&b->a2, tok, a, ctx, N, S, L)) != LF_OK) goto done;
        lf_nn_layer_norm(a, tok, b->ln3.g, b->ln3.b, M, I, LF_UN_EPS_LN);
        if ((st = lf_un_linear(&b->ff1, f1, a, M)) != LF_OK) goto done;
        lf_nn_geglu(f2, f1, M, b->ff1.out / 2);
        if ((st = lf_un_linear(&b->ff2, a, f2, M)) != LF_OK) goto done;
        lf_nn_add(tok, tok, a, M * I);
    }
    if (x->pout.k) {
        lf_nn_nlc_to_nchw(a, tok, N, I, S);
        if ((st = lf_un_conv(&x->pout, out, a, N, H, W, 1, 0)) != LF_OK) goto done;
    } else {
        if ((st = lf_un_linear(&x->pout, g, tok, M)) != LF_OK) goto done;
        lf_nn_nlc_to_nchw(out, g, N, C, S);
    }
    lf_nn_add(out, out, h, N * C * S);
done:
    free(g), free(tok), free(a), free(f1), free(f2);
    return st;
}

/* Run the layers of one block on in (N, *C, *H, *W); *out gets a fresh buffer (in is not freed).
 * An upsampler resizes to up_h x up_w (nearest, diffusers' Upsample2D with upsample_size), 2x when 0. */
static lf_status lf_un_block_fwd(const lf_unet *u, const lf_un_block *blk, float **out, const float *in,
                                 int64_t *C, int64_t *H, int64_t *W, const float *emb_s,
                                 const float *ctx, int64_t L, int64_t N, int64_t up_h, int64_t up_w) {
    lf_status st = LF_OK;
    const float *cur = in;
    float *owned = NULL;
    for (int j = 0; j < blk->n && st == LF_OK; j++) {
        const lf_un_layer *l = &blk->layers[j];
        float *nx = NULL;
        switch (l->kind) {
        case LF_UN_RES:
            if ((nx = lf_un_alloc(N * l->res.cout * *H * *W, &st)) == NULL) break;
            st = lf_un_res_fwd(u, &l->res, nx, cur, emb_s, N, *H, *W);
            *C = l->res.cout;
            break;
        case LF_UN_XF:
            if ((nx = lf_un_alloc(N * *C * *H * *W, &st)) == NULL) break;
            st = lf_un_xf_fwd(u, &l->xf, nx, cur, ctx, L, N, *H, *W);
            break;
        case LF_UN_DOWN: {
            int64_t Ho = lf_nn_conv_out(*H, 3, 2, 1), Wo = lf_nn_conv_out(*W, 3, 2, 1);
            if ((nx = lf_un_alloc(N * l->conv.out * Ho * Wo, &st)) == NULL) break;
            st = lf_un_conv(&l->conv, nx, cur, N, *H, *W, 2, 1);
            *C = l->conv.out, *H = Ho, *W = Wo;
            break;
        }
        case LF_UN_UP: {
            int64_t Ho = up_h > 0 ? up_h : 2 * *H, Wo = up_w > 0 ? up_w : 2 * *W;
            float *upx = lf_un_alloc(N * *C * Ho * Wo, &st);
            if (!upx) break;
            lf_nn_resize_nearest(upx, cur, N, *C, *H, *W, Ho, Wo);
            *H = Ho, *W = Wo;
            if ((nx = lf_un_alloc(N * l->conv.out * *H * *W, &st)) != NULL)
                st = lf_un_conv(&l->conv, nx, upx, N, *H, *W, 1, 1);
            *C = l->conv.out;
            free(upx);
            break;
        }
        case LF_UN_CONV_IN:
            if ((nx = lf_un_alloc(N * l->conv.out * *H * *W, &st)) == NULL) break;
            st = lf_un_conv(&l->conv, nx, cur, N, *H, *W, 1, 1);
            *C = l->conv.out;
            break;
        }
        free(owned);
        owned = nx;
        cur = nx;
    }
    if (st != LF_OK) {
        free(owned);
        return st;
    }
    if (!owned) { /* empty block: copy */
        if ((owned = lf_un_alloc(N * *C * *H * *W, &st)) == NULL) return st;
        memcpy(owned, in, (size_t)(N * *C * *H * *W) * sizeof(float));
    }
    *out = owned;
    return LF_OK;
}

/* ---- whole network -------------------------------------------------------------------------- */

lf_status lf_unet_forward_mid(const lf_unet *u, float *out, float *mid, const float *x, const float *t,
                              const float *context, int64_t L, const float *y, int64_t N, int64_t H,
                              int64_t W) {
    const lf_unet_arch *a = &u->arch;
    if (N < 1 || H < 1 || W < 1)
        return lf_err(LF_ERR_SHAPE, "unet: latent %lldx%lld (batch %lld): sizes must be positive", (long long)H,
                      (long long)W, (long long)N);
    if (a->context_dim > 0 && (!context || L < 1))
        return lf_err(LF_ERR_ARG, "unet: context (N, L, %lld) is required", (long long)a->context_dim);
    lf_status st = LF_OK;
    float *emb = lf_un_alloc(N * a->time_embed_dim, &st);
    float *skips[LF_UNET_MAX_BLOCKS];
    int64_t skc[LF_UNET_MAX_BLOCKS], skh[LF_UNET_MAX_BLOCKS], skw[LF_UNET_MAX_BLOCKS];
    int ns = 0;
    float *h = NULL;
    if (st != LF_OK) return st;
    if ((st = lf_unet_time_embed(u, emb, t, y, N)) != LF_OK) goto done;
    lf_nn_silu(emb, emb, N * a->time_embed_dim); /* every resnet takes silu(emb) */

    int64_t C = a->in_channels, Hc = H, Wc = W;
    const float *cur = x;
    for (int i = 0; i < a->n_input_blocks; i++) {
        float *nx = NULL;
        if ((st = lf_un_block_fwd(u, &u->in[i], &nx, cur, &C, &Hc, &Wc, emb, context, L, N, 0, 0)) != LF_OK)
            goto done;
        skips[ns] = nx, skc[ns] = C, skh[ns] = Hc, skw[ns] = Wc, ns++;
        cur = nx;
    }
    if ((st = lf_un_block_fwd(u, &u->mid, &h, cur, &C, &Hc, &Wc, emb, context, L, N, 0, 0)) != LF_OK) goto done;
    if (mid) memcpy(mid, h, (size_t)(N * C * Hc * Wc) * sizeof(float));
    for (int i = 0; i < a->n_output_blocks; i++) {
        int k = ns - 1;
        float *cat = lf_un_alloc(N * (C + skc[k]) * Hc * Wc, &st), *nx = NULL;
        if (!cat) goto done;
        lf_nn_concat_c(cat, h, skips[k], N, C, skc[k], Hc * Wc);
        C += skc[k];
        free(h);
        free(skips[k]);
        ns = k;
        h = NULL;
        /* an upsampler here goes to the size of the next skip connection (diffusers: upsample_size =
         * down_block_res_samples[-1].shape[2:] when a latent size is not a multiple of 2^upsamplers; the
         * same as 2x otherwise), so odd sizes come back exactly: 5 -> 3 -> 5 */
        st = lf_un_block_fwd(u, &u->out[i], &nx, cat, &C, &Hc, &Wc, emb, context, L, N, k > 0 ? skh[k - 1] : 0,
                             k > 0 ? skw[k - 1] : 0);
        free(cat);
        if (st != LF_OK) goto done;
        h = nx;
    }
    lf_nn_group_norm(h, h, u->out_norm.g, u->out_norm.b, N, C, Hc * Wc, a->norm_groups, LF_UN_EPS_RES);
    lf_nn_silu(h, h, N * C * Hc * Wc);
    st = lf_un_conv(&u->out_conv, out, h, N, Hc, Wc, 1, 1);
done:
    while (ns > 0) free(skips[--ns]);
    free(h);
    free(emb);
    return st;
}

lf_status lf_unet_forward(const lf_unet *u, float *out, const float *x, const float *t,
                          const float *context, int64_t L, const float *y, int64_t N, int64_t H,
                          int64_t W) {
    return lf_unet_forward_mid(u, out, NULL, x, t, context, L, y, N, H, W);
}
