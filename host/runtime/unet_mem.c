/* unet_mem.c: a UNet's structure without its weights, and the peak memory of one forward pass
 * (model_mem.h).
 *
 * The replay follows lf_unet_forward_mid_on (unet.c) buffer for buffer: emb for the whole call; every input
 * block's output kept on the skip list until its output block; in each block the layer's input (the
 * block's input, or the previous layer's output, freed once the next one exists), the new output and
 * the layer's temporaries:
 *   resnet       a (N, cin, S), b (N, cout, S), e (N, cout)
 *   transformer  g (N, C, S), tok, a (N*S, inner), f1 (N*S, F2), f2 (N*S, F2/2) for the whole layer, and
 *                in each attention q, o (N*Lq, inner), k, v (N*Lk, inner)
 *   upsampler    the resized input (N, C, Ho, Wo) until the conv has run
 *   output block the concatenation (N, C + C_skip, S) while the block runs
 * (lf_mem_track counts the floats in use and the most at any moment.)
 */
#include <string.h>

#include "model_mem.h"
#include "unet_internal.h"

lf_status lf_unet_load_shapes(const lf_st_file *st, const lf_unet_opts *opts, lf_unet **out) {
    return lf_un_load_src(st, NULL, 0, NULL, LF_WTS_SHAPES, opts, out);
}

/* lf_un_attn_fwd: q, k, v, o; all freed at its end. */
static void lf_um_attn(lf_mem_track *m, const lf_un_attn *at, double N, double Lq, double Lk) {
    double inner = (double)at->q.out, n = 2 * N * Lq * inner + 2 * N * Lk * inner;
    lf_mem_alloc(m, n);
    m->live -= n;
}

/* lf_un_xf_fwd's temporaries (the output is the caller's). */
static void lf_um_xf(lf_mem_track *m, const lf_un_xf *x, double N, double S, double L) {
    double M = N * S, I = (double)x->inner, F2 = 0;
    for (int d = 0; d < x->depth; d++)
        if ((double)x->blocks[d].ff1.out > F2) F2 = (double)x->blocks[d].ff1.out;
    double tmp = N * (double)x->C * S + 2 * M * I + M * F2 + M * F2 / 2;
    lf_mem_alloc(m, tmp);
    for (int d = 0; d < x->depth; d++) {
        lf_um_attn(m, &x->blocks[d].a1, N, S, S);
        lf_um_attn(m, &x->blocks[d].a2, N, S, L);
    }
    m->live -= tmp;
}

/* lf_un_block_fwd on an input of in_f floats (owned by the caller): leaves the block's output live and
 * returns its size; *C, *H, *W follow the layers. */
static double lf_um_block(lf_mem_track *m, const lf_un_block *blk, double in_f, int64_t *C, int64_t *H, int64_t *W,
                          double N, double L, int64_t up_h, int64_t up_w) {
    double owned = 0;
    for (int j = 0; j < blk->n; j++) {
        const lf_un_layer *l = &blk->layers[j];
        double S = (double)*H * (double)*W, nx = 0;
        switch (l->kind) {
        case LF_UN_RES: {
            const lf_un_res *r = &l->res;
            nx = N * (double)r->cout * S;
            lf_mem_alloc(m, nx);
            double tmp = N * (double)r->cin * S + N * (double)r->cout * S + N * (double)r->cout;
            lf_mem_alloc(m, tmp);
            m->live -= tmp;
            *C = r->cout;
            break;
        }
        case LF_UN_XF:
            nx = N * (double)*C * S;
            lf_mem_alloc(m, nx);
            lf_um_xf(m, &l->xf, N, S, L);
            break;
        case LF_UN_DOWN:
            *H = (*H + 1) / 2, *W = (*W + 1) / 2; /* 3x3 stride 2 pad 1 */
            *C = l->conv.out;
            nx = N * (double)*C * (double)*H * (double)*W;
            lf_mem_alloc(m, nx);
            break;
        case LF_UN_UP: {
            *H = up_h > 0 ? up_h : 2 * *H, *W = up_w > 0 ? up_w : 2 * *W;
            double So = (double)*H * (double)*W, up = N * (double)*C * So;
            lf_mem_alloc(m, up);
            *C = l->conv.out;
            nx = N * (double)*C * So;
            lf_mem_alloc(m, nx);
            m->live -= up;
            break;
        }
        case LF_UN_CONV_IN:
            *C = l->conv.out;
            nx = N * (double)*C * S;
            lf_mem_alloc(m, nx);
            break;
        }
        m->live -= owned;
        owned = nx;
    }
    if (blk->n == 0) { /* copied */
        owned = in_f;
        lf_mem_alloc(m, owned);
    }
    return owned;
}

uint64_t lf_unet_forward_peak(const lf_unet *u, int64_t N, int64_t H, int64_t W, int64_t L) {
    const lf_unet_arch *a = &u->arch;
    double n = (double)N, l = (double)L;
    lf_mem_track m = {0, 0};
    double emb = n * (double)a->time_embed_dim, T = (double)u->t1.out;
    lf_mem_alloc(&m, emb);
    double te = n * (double)u->t1.in + n * T + (a->adm_in_channels > 0 ? 2 * n * T : 0);
    lf_mem_alloc(&m, te); /* lf_unet_time_embed's temporaries */
    m.live -= te;
    double skip[LF_UNET_MAX_BLOCKS];
    int64_t skh[LF_UNET_MAX_BLOCKS], skw[LF_UNET_MAX_BLOCKS], skc[LF_UNET_MAX_BLOCKS];
    int64_t C = a->in_channels, Hc = H, Wc = W;
    double cur = n * (double)C * (double)H * (double)W; /* x: the caller's */
    int ns = 0;
    for (int i = 0; i < a->n_input_blocks; i++) {
        cur = lf_um_block(&m, &u->in[i], cur, &C, &Hc, &Wc, n, l, 0, 0);
        skip[ns] = cur, skc[ns] = C, skh[ns] = Hc, skw[ns] = Wc, ns++;
    }
    double h = lf_um_block(&m, &u->mid, cur, &C, &Hc, &Wc, n, l, 0, 0);
    for (int i = 0; i < a->n_output_blocks && ns > 0; i++) {
        int k = --ns;
        double cat = n * (double)(C + skc[k]) * (double)Hc * (double)Wc;
        lf_mem_alloc(&m, cat);
        C += skc[k];
        m.live -= h + skip[k];
        h = lf_um_block(&m, &u->out[i], cat, &C, &Hc, &Wc, n, l, k > 0 ? skh[k - 1] : 0, k > 0 ? skw[k - 1] : 0);
        m.live -= cat;
    }
    return (uint64_t)(m.peak * sizeof(float));
}
