/* unet_load.c: build an lf_unet from the LDM/SGM keys of a single-file checkpoint (lf_unet.h).
 *
 * The block list is discovered from the keys (input_blocks.i / middle_block.j / output_blocks.i, each
 * holding resnets ".in_layers", transformers ".norm" + "transformer_blocks.k", downsamplers ".op",
 * upsamplers ".conv"); every width is read from a weight's shape. The channel flow of the whole network
 * (conv_in -> skip list -> concatenations -> out) is then replayed on the loaded shapes, so a tensor
 * that does not fit is reported at load time with its key, not as a crash in the forward.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/base/util.h"
#include "weight_load.h"
#include "lorafuse/lf_live_weights.h"
#include "unet_internal.h"

#define LF_UN_PATH 192

typedef struct lf_un_ctx {
    lf_wts w;
    lf_unet *u;
    const char *file;
} lf_un_ctx;

static void lf_un_load_res(lf_un_ctx *c, lf_un_res *r, const char *path, int64_t T) {
    char p[LF_UN_PATH];
    lf_wts_pathf(p, sizeof p, "%s.in_layers.0", path);
    lf_wts_load_norm(&c->w, &r->n1, p, -1);
    r->cin = r->n1.C;
    lf_wts_pathf(p, sizeof p, "%s.in_layers.2", path);
    lf_wts_load_lin(&c->w, &r->c1, p, 3, -1, r->cin, LF_WTS_BIAS);
    r->cout = r->c1.out;
    lf_wts_pathf(p, sizeof p, "%s.emb_layers.1", path);
    lf_wts_load_lin(&c->w, &r->emb, p, 0, r->cout, T, LF_WTS_BIAS);
    lf_wts_pathf(p, sizeof p, "%s.out_layers.0", path);
    lf_wts_load_norm(&c->w, &r->n2, p, r->cout);
    lf_wts_pathf(p, sizeof p, "%s.out_layers.3", path);
    lf_wts_load_lin(&c->w, &r->c2, p, 3, r->cout, r->cout, LF_WTS_BIAS);
    if (c->w.status != LF_OK) return;
    if (lf_wts_find(&c->w, "%s.skip_connection.weight", path)) {
        lf_wts_pathf(p, sizeof p, "%s.skip_connection", path);
        lf_wts_load_lin(&c->w, &r->skip, p, 1, r->cout, r->cin, LF_WTS_BIAS);
    } else if (r->cin != r->cout) {
        lf_err(LF_ERR_MODEL, "%s: resnet \"%s%s\" maps %lld -> %lld channels but has no skip_connection",
               c->file, c->w.prefix, path, (long long)r->cin, (long long)r->cout);
        lf_wts_fail(&c->w, LF_ERR_MODEL);
    }
}

static int64_t lf_un_heads(lf_un_ctx *c, const char *path, int64_t inner) {
    const lf_unet_arch *a = &c->u->arch;
    int64_t heads = a->num_heads > 0 ? a->num_heads : (a->head_dim > 0 ? inner / a->head_dim : 0);
    if (heads < 1 || inner % heads || (a->head_dim > 0 && inner % a->head_dim)) {
        lf_err(LF_ERR_MODEL,
               "%s: transformer \"%s%s\" has width %lld, which the heads rule (%s %d) does not divide: "
               "set lf_unet_opts.num_heads or head_dim for this model",
               c->file, c->w.prefix, path, (long long)inner, a->num_heads > 0 ? "num_heads" : "head_dim",
               a->num_heads > 0 ? a->num_heads : a->head_dim);
        lf_wts_fail(&c->w, LF_ERR_MODEL);
        return 0;
    }
    return heads;
}

static void lf_un_load_attn(lf_un_ctx *c, lf_un_attn *a, const char *path, int64_t inner,
                            int64_t kv_in, int64_t heads) {
    char p[LF_UN_PATH];
    lf_wts_pathf(p, sizeof p, "%s.to_q", path);
    lf_wts_load_lin(&c->w, &a->q, p, 0, inner, inner, LF_WTS_BIAS_OPT);
    lf_wts_pathf(p, sizeof p, "%s.to_k", path);
    lf_wts_load_lin(&c->w, &a->k, p, 0, inner, kv_in, LF_WTS_BIAS_OPT);
    lf_wts_pathf(p, sizeof p, "%s.to_v", path);
    lf_wts_load_lin(&c->w, &a->v, p, 0, inner, kv_in, LF_WTS_BIAS_OPT);
    lf_wts_pathf(p, sizeof p, "%s.to_out.0", path);
    lf_wts_load_lin(&c->w, &a->o, p, 0, inner, inner, LF_WTS_BIAS);
    a->heads = heads;
    a->dim_head = heads ? inner / heads : 0;
}

static void lf_un_load_xf(lf_un_ctx *c, lf_un_xf *x, const char *path) {
    char p[LF_UN_PATH];
    lf_wts_pathf(p, sizeof p, "%s.norm", path);
    lf_wts_load_norm(&c->w, &x->gn, p, -1);
    x->C = x->gn.C;
    if (c->w.status != LF_OK) return;
    const lf_st_tensor *pin = lf_wts_find(&c->w, "%s.proj_in.weight", path);
    int conv = pin && pin->ndim == 4;
    lf_wts_pathf(p, sizeof p, "%s.proj_in", path);
    lf_wts_load_lin(&c->w, &x->pin, p, conv ? 1 : 0, -1, x->C, LF_WTS_BIAS);
    x->inner = x->pin.out;
    c->u->arch.linear_proj = !conv;
    int depth = 0;
    while (lf_wts_find(&c->w, "%s.transformer_blocks.%d.attn1.to_q.weight", path, depth)) depth++;
    if (c->w.status != LF_OK) return;
    if (depth == 0) {
        lf_err(LF_ERR_MODEL, "%s: transformer \"%s%s\" has no transformer_blocks.0 (missing tensor \"%s%s"
               ".transformer_blocks.0.attn1.to_q.weight\")", c->file, c->w.prefix, path, c->w.prefix, path);
        lf_wts_fail(&c->w, LF_ERR_MODEL);
        return;
    }
    x->blocks = calloc((size_t)depth, sizeof *x->blocks);
    if (!x->blocks) {
        lf_wts_fail(&c->w, lf_err(LF_ERR_NOMEM, "%s: out of memory", c->file));
        return;
    }
    x->depth = depth;
    int64_t heads = lf_un_heads(c, path, x->inner);
    int64_t ctx = c->u->arch.context_dim > 0 ? c->u->arch.context_dim : -1;
    for (int d = 0; d < depth && c->w.status == LF_OK; d++) {
        lf_un_tblock *b = &x->blocks[d];
        char bp[LF_UN_PATH];
        lf_wts_pathf(bp, sizeof bp, "%s.transformer_blocks.%d", path, d);
        lf_wts_pathf(p, sizeof p, "%s.norm1", bp);
        lf_wts_load_norm(&c->w, &b->ln1, p, x->inner);
        lf_wts_pathf(p, sizeof p, "%s.attn1", bp);
        lf_un_load_attn(c, &b->a1, p, x->inner, x->inner, heads);
        lf_wts_pathf(p, sizeof p, "%s.norm2", bp);
        lf_wts_load_norm(&c->w, &b->ln2, p, x->inner);
        lf_wts_pathf(p, sizeof p, "%s.attn2", bp);
        lf_un_load_attn(c, &b->a2, p, x->inner, ctx, heads);
        if (c->w.status == LF_OK && ctx < 0) ctx = c->u->arch.context_dim = b->a2.k.in;
        lf_wts_pathf(p, sizeof p, "%s.norm3", bp);
        lf_wts_load_norm(&c->w, &b->ln3, p, x->inner);
        lf_wts_pathf(p, sizeof p, "%s.ff.net.0.proj", bp);
        lf_wts_load_lin(&c->w, &b->ff1, p, 0, -1, x->inner, LF_WTS_BIAS);
        if (c->w.status == LF_OK && b->ff1.out % 2) {
            lf_err(LF_ERR_SHAPE, "%s: tensor \"%s%s.weight\" has %lld rows, expected an even number (GEGLU)",
                   c->file, c->w.prefix, p, (long long)b->ff1.out);
            lf_wts_fail(&c->w, LF_ERR_SHAPE);
        }
        lf_wts_pathf(p, sizeof p, "%s.ff.net.2", bp);
        lf_wts_load_lin(&c->w, &b->ff2, p, 0, x->inner, b->ff1.out / 2, LF_WTS_BIAS);
    }
    lf_wts_pathf(p, sizeof p, "%s.proj_out", path);
    lf_wts_load_lin(&c->w, &x->pout, p, conv ? 1 : 0, x->C, x->inner, LF_WTS_BIAS);
}

/* One numbered block: layers "<path>.0", "<path>.1", ... of the kinds found. */
static lf_status lf_un_load_block(lf_un_ctx *c, lf_un_block *blk, const char *path, int64_t T) {
    blk->layers = calloc(4, sizeof *blk->layers);
    if (!blk->layers) return lf_wts_fail(&c->w, lf_err(LF_ERR_NOMEM, "%s: out of memory", c->file));
    for (int j = 0; j < 4 && c->w.status == LF_OK; j++) {
        char p[LF_UN_PATH], q[LF_UN_PATH + 8];
        lf_un_layer *l = &blk->layers[blk->n];
        lf_wts_pathf(p, sizeof p, "%s.%d", path, j);
        if (lf_wts_find(&c->w, "%s.in_layers.0.weight", p)) {
            l->kind = LF_UN_RES;
            blk->n++;
            lf_un_load_res(c, &l->res, p, T);
        } else if (lf_wts_find(&c->w, "%s.norm.weight", p)) {
            l->kind = LF_UN_XF;
            blk->n++;
            lf_un_load_xf(c, &l->xf, p);
        } else if (lf_wts_find(&c->w, "%s.op.weight", p)) {
            lf_wts_pathf(q, sizeof q, "%s.op", p);
            l->kind = LF_UN_DOWN;
            blk->n++;
            lf_wts_load_lin(&c->w, &l->conv, q, 3, -1, -1, LF_WTS_BIAS);
        } else if (lf_wts_find(&c->w, "%s.conv.weight", p)) {
            lf_wts_pathf(q, sizeof q, "%s.conv", p);
            l->kind = LF_UN_UP;
            blk->n++;
            lf_wts_load_lin(&c->w, &l->conv, q, 3, -1, -1, LF_WTS_BIAS);
        } else {
            break;
        }
    }
    return c->w.status;
}

static lf_status lf_un_flow_err(lf_un_ctx *c, const char *where, const char *key, int64_t has,
                                int64_t gets) {
    lf_err(LF_ERR_SHAPE, "%s: %s: tensor \"%s%s\" takes %lld channels but the block receives %lld",
           c->file, where, c->w.prefix, key, (long long)has, (long long)gets);
    return lf_wts_fail(&c->w, LF_ERR_SHAPE);
}

/* Check one block's layers against the incoming channel count; returns the outgoing one (or -1). */
static int64_t lf_un_flow_block(lf_un_ctx *c, const lf_un_block *b, const char *path, int64_t ch) {
    char key[LF_UN_PATH + 32];
    for (int j = 0; j < b->n; j++) {
        const lf_un_layer *l = &b->layers[j];
        switch (l->kind) {
        case LF_UN_RES:
            lf_wts_pathf(key, sizeof key, "%s.%d.in_layers.0.weight", path, j);
            if (l->res.cin != ch) return lf_un_flow_err(c, path, key, l->res.cin, ch), -1;
            ch = l->res.cout;
            break;
        case LF_UN_XF:
            lf_wts_pathf(key, sizeof key, "%s.%d.norm.weight", path, j);
            if (l->xf.C != ch) return lf_un_flow_err(c, path, key, l->xf.C, ch), -1;
            break;
        case LF_UN_DOWN:
        case LF_UN_UP:
            lf_wts_pathf(key, sizeof key, "%s.%d.%s.weight", path, j, l->kind == LF_UN_DOWN ? "op" : "conv");
            if (l->conv.in != ch) return lf_un_flow_err(c, path, key, l->conv.in, ch), -1;
            ch = l->conv.out;
            break;
        default:
            break;
        }
    }
    return ch;
}

static int lf_un_block_has(const lf_un_block *b, lf_un_kind k) {
    for (int j = 0; j < b->n; j++)
        if (b->layers[j].kind == k) return 1;
    return 0;
}

static int lf_un_block_depth(const lf_un_block *b) {
    for (int j = 0; j < b->n; j++)
        if (b->layers[j].kind == LF_UN_XF) return b->layers[j].xf.depth;
    return 0;
}

static lf_status lf_un_build(lf_un_ctx *c) {
    lf_unet *u = c->u;
    lf_unet_arch *a = &u->arch;
    /* time embedding, optional label embedding */
    lf_wts_load_lin(&c->w, &u->t1, "time_embed.0", 0, -1, -1, LF_WTS_BIAS);
    lf_wts_load_lin(&c->w, &u->t2, "time_embed.2", 0, u->t1.out, u->t1.out, LF_WTS_BIAS);
    if (c->w.status != LF_OK) return c->w.status;
    int64_t T = u->t1.out;
    a->time_embed_dim = T;
    a->model_channels = u->t1.in;
    if (lf_wts_find(&c->w, "label_emb.0.0.weight")) {
        lf_wts_load_lin(&c->w, &u->l1, "label_emb.0.0", 0, T, -1, LF_WTS_BIAS);
        lf_wts_load_lin(&c->w, &u->l2, "label_emb.0.2", 0, T, T, LF_WTS_BIAS);
        a->adm_in_channels = u->l1.in;
    }
    /* input blocks */
    lf_un_layer *cin = calloc(1, sizeof *cin);
    if (!cin) return lf_wts_fail(&c->w, lf_err(LF_ERR_NOMEM, "%s: out of memory", c->file));
    cin->kind = LF_UN_CONV_IN;
    u->in[0].layers = cin;
    u->in[0].n = 1;
    lf_wts_load_lin(&c->w, &cin->conv, "input_blocks.0.0", 3, -1, -1, LF_WTS_BIAS);
    if (c->w.status != LF_OK) return c->w.status;
    a->in_channels = cin->conv.in;
    int ni = 1;
    for (;; ni++) {
        if (!lf_wts_find(&c->w, "input_blocks.%d.0.in_layers.0.weight", ni) &&
            !lf_wts_find(&c->w, "input_blocks.%d.0.op.weight", ni))
            break;
        if (ni >= LF_UNET_MAX_BLOCKS)
            return lf_wts_fail(&c->w, lf_err(LF_ERR_UNSUPPORTED, "%s: more than %d input blocks",
                                              c->file, LF_UNET_MAX_BLOCKS));
        char p[LF_UN_PATH];
        lf_wts_pathf(p, sizeof p, "input_blocks.%d", ni);
        if (lf_un_load_block(c, &u->in[ni], p, T) != LF_OK) return c->w.status;
    }
    a->n_input_blocks = ni;
    if (lf_un_load_block(c, &u->mid, "middle_block", T) != LF_OK) return c->w.status;
    if (u->mid.n == 0)
        return lf_wts_fail(&c->w, lf_err(LF_ERR_MODEL, "%s: missing tensor \"%smiddle_block.0.in_layers.0.weight\"",
                                          c->file, c->w.prefix));
    a->n_middle = u->mid.n;
    int no = 0;
    for (;; no++) {
        if (!lf_wts_find(&c->w, "output_blocks.%d.0.in_layers.0.weight", no)) break;
        if (no >= LF_UNET_MAX_BLOCKS)
            return lf_wts_fail(&c->w, lf_err(LF_ERR_UNSUPPORTED, "%s: more than %d output blocks",
                                              c->file, LF_UNET_MAX_BLOCKS));
        char p[LF_UN_PATH];
        lf_wts_pathf(p, sizeof p, "output_blocks.%d", no);
        if (lf_un_load_block(c, &u->out[no], p, T) != LF_OK) return c->w.status;
    }
    a->n_output_blocks = no;
    if (no != ni)
        return lf_wts_fail(&c->w, lf_err(LF_ERR_MODEL,
                                          "%s: %d input blocks but %d output blocks (missing tensor \"%s"
                                          "output_blocks.%d.0.in_layers.0.weight\"?)",
                                          c->file, ni, no, c->w.prefix, no));
    lf_wts_load_norm(&c->w, &u->out_norm, "out.0", -1);
    lf_wts_load_lin(&c->w, &u->out_conv, "out.2", 3, -1, u->out_norm.C, LF_WTS_BIAS);
    if (c->w.status != LF_OK) return c->w.status;
    a->out_channels = u->out_conv.out;

    /* replay the channel flow; fill the arch summary */
    int64_t skips[LF_UNET_MAX_BLOCKS];
    int ns = 0;
    int64_t ch = cin->conv.out;
    skips[ns++] = ch;
    a->n_levels = 1;
    a->level_channels[0] = -1;
    int res_level0 = 0;
    for (int i = 1; i < ni; i++) {
        char p[LF_UN_PATH];
        lf_wts_pathf(p, sizeof p, "input_blocks.%d", i);
        if ((ch = lf_un_flow_block(c, &u->in[i], p, ch)) < 0) return c->w.status;
        skips[ns++] = ch;
        a->depth_in[i] = lf_un_block_depth(&u->in[i]);
        if (lf_un_block_has(&u->in[i], LF_UN_DOWN)) {
            a->level_channels[a->n_levels++] = -1;
        } else {
            if (a->level_channels[a->n_levels - 1] < 0) a->level_channels[a->n_levels - 1] = ch;
            if (a->n_levels == 1) res_level0++;
        }
    }
    a->res_per_level = res_level0;
    if ((ch = lf_un_flow_block(c, &u->mid, "middle_block", ch)) < 0) return c->w.status;
    a->depth_mid = lf_un_block_depth(&u->mid);
    for (int i = 0; i < no; i++) {
        char p[LF_UN_PATH];
        lf_wts_pathf(p, sizeof p, "output_blocks.%d", i);
        int64_t cat = ch + skips[--ns];
        if ((ch = lf_un_flow_block(c, &u->out[i], p, cat)) < 0) return c->w.status;
        a->depth_out[i] = lf_un_block_depth(&u->out[i]);
    }
    if (u->out_norm.C != ch) return lf_un_flow_err(c, "out", "out.0.weight", u->out_norm.C, ch);
    return LF_OK;
}

static void lf_un_free_blocks(lf_unet *u) {
    lf_un_block *all[2 * LF_UNET_MAX_BLOCKS + 1];
    int n = 0;
    for (int i = 0; i < LF_UNET_MAX_BLOCKS; i++) all[n++] = &u->in[i], all[n++] = &u->out[i];
    all[n++] = &u->mid;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < all[i]->n; j++)
            if (all[i]->layers[j].kind == LF_UN_XF) free(all[i]->layers[j].xf.blocks);
        free(all[i]->layers);
        all[i]->layers = NULL;
        all[i]->n = 0;
    }
}

void lf_unet_free(lf_unet *u) {
    if (!u) return;
    lf_un_free_blocks(u);
    lf_wts_free_list(u->wts, u->n_wts);
    free(u);
}

lf_status lf_un_load_src(const lf_st_file *st, const lf_wts_alias *alias, size_t n_alias, const char *label,
                         int borrow, const lf_unet_opts *opts, lf_unet **out) {
    *out = NULL;
    lf_unet_opts o;
    memset(&o, 0, sizeof o);
    if (opts) o = *opts;
    const char *file = label ? label : st && lf_st_path(st) ? lf_st_path(st) : "checkpoint";
    if (o.num_heads < 0 || o.head_dim < 0 || o.norm_groups < 0 || (o.num_heads > 0 && o.head_dim > 0))
        return lf_err(LF_ERR_ARG, "%s: unet options: give num_heads or head_dim (not both), non-negative",
                      file);
    const char *prefix =
        lf_wts_pick_prefix(st, alias, n_alias, o.prefix, "model.diffusion_model.", "input_blocks.0.0.weight");
    if (strlen(prefix) >= sizeof(((lf_wts *)0)->prefix))
        return lf_err(LF_ERR_ARG, "%s: unet key prefix too long", file);
    lf_unet *u = calloc(1, sizeof *u);
    if (!u) return lf_err(LF_ERR_NOMEM, "%s: out of memory", file);
    snprintf(u->prefix, sizeof u->prefix, "%s", prefix);
    snprintf(u->label, sizeof u->label, "%s", file);
    lf_un_ctx c;
    lf_wts_init_src(&c.w, st, alias, n_alias, file, borrow, prefix);
    c.u = u;
    c.file = file;
    if (!lf_wts_find(&c.w, "input_blocks.0.0.weight")) {
        free(u);
        return lf_err(LF_ERR_MODEL, "%s: no UNet: missing tensor \"%sinput_blocks.0.0.weight\"", file,
                      prefix);
    }
    lf_unet_arch *a = &u->arch;
    a->norm_groups = o.norm_groups ? o.norm_groups : 32;
    /* context width before any transformer is read: it picks the default heads rule */
    size_t plen = strlen(prefix), count = alias ? n_alias : lf_st_count(st);
    for (size_t i = 0; i < count && !a->context_dim; i++) {
        const lf_st_tensor *t = alias ? &alias[i].t : lf_st_at(st, i);
        size_t nl = strlen(t->name), sl = strlen(".attn2.to_k.weight");
        if (nl > plen + sl && !strncmp(t->name, prefix, plen) &&
            !strcmp(t->name + nl - sl, ".attn2.to_k.weight") && t->ndim == 2)
            a->context_dim = t->shape[1];
    }
    if (o.num_heads > 0) a->num_heads = o.num_heads;
    else if (o.head_dim > 0) a->head_dim = o.head_dim;
    else if (a->context_dim == 768) a->num_heads = 8;
    else a->head_dim = 64;

    lf_status st2 = lf_un_build(&c);
    if (st2 != LF_OK) {
        lf_wts_free(&c.w);
        lf_unet_free(u);
        return st2;
    }
    a->family = a->context_dim == 768 && !a->adm_in_channels    ? LF_FAMILY_SD1
                : a->context_dim == 1024 && !a->adm_in_channels ? LF_FAMILY_SD2
                : a->context_dim == 2048 && a->adm_in_channels  ? LF_FAMILY_SDXL
                                                                : LF_FAMILY_UNKNOWN;
    a->n_tensors = c.w.loaded;
    a->n_params = c.w.floats;
    a->prediction = lf_prediction_default(a->family);
    a->prediction_from = "family default";
    u->has_file_prediction = 0;
    lf_wts_release(&c.w, &u->wts, &u->n_wts);
    *out = u;
    return LF_OK;
}

lf_status lf_unet_load(const lf_st_file *st, const lf_unet_opts *opts, lf_unet **out) {
    return lf_un_load_src(st, NULL, 0, NULL, 0, opts, out);
}

lf_status lf_unet_load_mapped(const lf_st_file *st, const lf_unet_opts *opts, lf_unet **out) {
    return lf_un_load_src(st, NULL, 0, NULL, LF_WTS_MAP, opts, out);
}

lf_status lf_unet_load_views(const char *const *names, const lf_view *views, size_t n, int borrow,
                             const char *label, const lf_unet_opts *opts, lf_unet **out) {
    *out = NULL;
    if (!label) label = "in-memory UNet";
    lf_wts_alias *al = calloc(n ? n : 1, sizeof *al);
    if (!al) return lf_err(LF_ERR_NOMEM, "%s: out of memory", label);
    for (size_t i = 0; i < n; i++) {
        if (views[i].ndim > LF_MAX_DIMS || views[i].ndim < 0) {
            free(al);
            return lf_err(LF_ERR_ARG, "%s: tensor \"%s\" has %d dims", label, names[i], views[i].ndim);
        }
        al[i].t.name = names[i];
        al[i].t.dtype = views[i].dtype;
        al[i].t.ndim = views[i].ndim;
        memcpy(al[i].t.shape, views[i].shape, sizeof al[i].t.shape);
        al[i].t.data = views[i].data;
        al[i].t.end = (uint64_t)lf_view_numel(&views[i]) * lf_dtype_bits(views[i].dtype) / 8;
    }
    lf_wts_alias_sort(al, n);
    for (size_t i = 1; i < n; i++)
        if (!strcmp(al[i].t.name, al[i - 1].t.name)) {
            lf_status e = lf_err(LF_ERR_ARG, "%s: tensor \"%s\" given twice", label, al[i].t.name);
            free(al);
            return e;
        }
    lf_status st = lf_un_load_src(NULL, al, n, label, borrow, opts, out);
    free(al);
    return st;
}

const lf_unet_arch *lf_unet_get_arch(const lf_unet *u) { return &u->arch; }

void lf_unet_set_prediction(lf_unet *u, lf_prediction p) {
    u->arch.prediction = p;
    u->arch.prediction_from = "option";
}

void lf_unet_default_prediction(lf_unet *u) {
    if (u->has_file_prediction) {
        u->arch.prediction = u->file_prediction;
        u->arch.prediction_from = "scheduler_config.json";
    } else {
        u->arch.prediction = lf_prediction_default(u->arch.family);
        u->arch.prediction_from = "family default";
    }
}

lf_prediction lf_prediction_default(lf_family f) { return f == LF_FAMILY_SD2 ? LF_PRED_V : LF_PRED_EPSILON; }

/* ---- the tensors of a UNet of a given structure (LDM names) ------------------------------------ */

typedef struct lf_un_tl {
    lf_unet_tensor *t;
    size_t n, cap;
    int oom;
} lf_un_tl;

static void lf_un_tadd(lf_un_tl *l, int ndim, int64_t a, int64_t b, int64_t k, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;
static void lf_un_tadd(lf_un_tl *l, int ndim, int64_t a, int64_t b, int64_t k, const char *fmt, ...) {
    if (l->oom) return;
    if (lf_grow(&l->t, &l->cap, l->n + 1)) {
        l->oom = 1;
        return;
    }
    lf_unet_tensor *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->ndim = ndim;
    int64_t sh[4] = {a, b, k, k};
    for (int i = 0; i < ndim; i++) t->shape[i] = sh[i];
}

/* weight (+ bias): k = 0 Linear (a, b), k > 0 conv (a, b, k, k) */
static void lf_un_tlin(lf_un_tl *l, const char *p, int64_t out, int64_t in, int64_t k, int bias) {
    lf_un_tadd(l, k ? 4 : 2, out, in, k, "%s.weight", p);
    if (bias) lf_un_tadd(l, 1, out, 0, 0, "%s.bias", p);
}

static void lf_un_tnorm(lf_un_tl *l, const char *p, int64_t C) {
    lf_un_tadd(l, 1, C, 0, 0, "%s.weight", p);
    lf_un_tadd(l, 1, C, 0, 0, "%s.bias", p);
}

static void lf_un_tres(lf_un_tl *l, const char *p, int64_t cin, int64_t cout, int64_t T) {
    char q[LF_UN_PATH + 32];
    lf_wts_pathf(q, sizeof q, "%s.in_layers.0", p), lf_un_tnorm(l, q, cin);
    lf_wts_pathf(q, sizeof q, "%s.in_layers.2", p), lf_un_tlin(l, q, cout, cin, 3, 1);
    lf_wts_pathf(q, sizeof q, "%s.emb_layers.1", p), lf_un_tlin(l, q, cout, T, 0, 1);
    lf_wts_pathf(q, sizeof q, "%s.out_layers.0", p), lf_un_tnorm(l, q, cout);
    lf_wts_pathf(q, sizeof q, "%s.out_layers.3", p), lf_un_tlin(l, q, cout, cout, 3, 1);
    if (cin != cout) lf_wts_pathf(q, sizeof q, "%s.skip_connection", p), lf_un_tlin(l, q, cout, cin, 1, 1);
}

static void lf_un_txf(lf_un_tl *l, const char *p, int64_t C, int depth, int64_t ctx, int linear) {
    char q[LF_UN_PATH + 64];
    lf_wts_pathf(q, sizeof q, "%s.norm", p), lf_un_tnorm(l, q, C);
    lf_wts_pathf(q, sizeof q, "%s.proj_in", p), lf_un_tlin(l, q, C, C, linear ? 0 : 1, 1);
    for (int d = 0; d < depth; d++) {
        for (int a = 1; a <= 2; a++) {
            int64_t kv = a == 1 ? C : ctx;
            lf_wts_pathf(q, sizeof q, "%s.transformer_blocks.%d.norm%d", p, d, a), lf_un_tnorm(l, q, C);
            lf_wts_pathf(q, sizeof q, "%s.transformer_blocks.%d.attn%d.to_q", p, d, a), lf_un_tlin(l, q, C, C, 0, 0);
            lf_wts_pathf(q, sizeof q, "%s.transformer_blocks.%d.attn%d.to_k", p, d, a), lf_un_tlin(l, q, C, kv, 0, 0);
            lf_wts_pathf(q, sizeof q, "%s.transformer_blocks.%d.attn%d.to_v", p, d, a), lf_un_tlin(l, q, C, kv, 0, 0);
            lf_wts_pathf(q, sizeof q, "%s.transformer_blocks.%d.attn%d.to_out.0", p, d, a), lf_un_tlin(l, q, C, C, 0, 1);
        }
        lf_wts_pathf(q, sizeof q, "%s.transformer_blocks.%d.norm3", p, d), lf_un_tnorm(l, q, C);
        lf_wts_pathf(q, sizeof q, "%s.transformer_blocks.%d.ff.net.0.proj", p, d), lf_un_tlin(l, q, 8 * C, C, 0, 1);
        lf_wts_pathf(q, sizeof q, "%s.transformer_blocks.%d.ff.net.2", p, d), lf_un_tlin(l, q, C, 4 * C, 0, 1);
    }
    lf_wts_pathf(q, sizeof q, "%s.proj_out", p), lf_un_tlin(l, q, C, C, linear ? 0 : 1, 1);
}

lf_status lf_unet_spec_tensors(const lf_unet_spec *s, lf_unet_tensor **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (s->n_levels < 1 || s->n_levels > LF_UNET_MAX_LEVELS || s->layers_per_block < 1 || s->in_channels < 1 ||
        s->out_channels < 1 || (s->n_levels - 1) * (s->layers_per_block + 1) + s->layers_per_block + 1 >= LF_UNET_MAX_BLOCKS)
        return lf_err(LF_ERR_ARG, "unet spec: %d levels, %d layers per block, %lld -> %lld channels is not a UNet "
                      "this runtime holds (levels 1..%d)", s->n_levels, s->layers_per_block,
                      (long long)s->in_channels, (long long)s->out_channels, LF_UNET_MAX_LEVELS);
    int any_attn = s->depth_mid > 0;
    for (int i = 0; i < s->n_levels; i++) {
        if (s->channels[i] < 1 || s->depth[i] < 0) return lf_err(LF_ERR_ARG, "unet spec: level %d", i);
        any_attn |= s->depth[i] > 0;
    }
    if (any_attn && s->context_dim < 1) return lf_err(LF_ERR_ARG, "unet spec: attention without context_dim");
    lf_un_tl l = {0};
    int64_t C0 = s->channels[0], T = s->time_embed_dim > 0 ? s->time_embed_dim : 4 * C0;
    int lpb = s->layers_per_block, L = s->n_levels;
    char p[LF_UN_PATH];
    lf_un_tlin(&l, "time_embed.0", T, C0, 0, 1);
    lf_un_tlin(&l, "time_embed.2", T, T, 0, 1);
    if (s->adm_in_channels > 0) {
        lf_un_tlin(&l, "label_emb.0.0", T, s->adm_in_channels, 0, 1);
        lf_un_tlin(&l, "label_emb.0.2", T, T, 0, 1);
    }
    lf_un_tlin(&l, "input_blocks.0.0", C0, s->in_channels, 3, 1);
    int64_t skips[LF_UNET_MAX_BLOCKS];
    int ns = 0, nb = 1;
    int64_t ch = C0;
    skips[ns++] = ch;
    for (int lv = 0; lv < L; lv++) {
        for (int j = 0; j < lpb; j++, nb++) {
            lf_wts_pathf(p, sizeof p, "input_blocks.%d.0", nb);
            lf_un_tres(&l, p, ch, s->channels[lv], T);
            ch = s->channels[lv];
            if (s->depth[lv] > 0) {
                lf_wts_pathf(p, sizeof p, "input_blocks.%d.1", nb);
                lf_un_txf(&l, p, ch, s->depth[lv], s->context_dim, s->linear_proj);
            }
            skips[ns++] = ch;
        }
        if (lv != L - 1) {
            lf_wts_pathf(p, sizeof p, "input_blocks.%d.0.op", nb++);
            lf_un_tlin(&l, p, ch, ch, 3, 1);
            skips[ns++] = ch;
        }
    }
    lf_un_tres(&l, "middle_block.0", ch, ch, T);
    if (s->depth_mid > 0) {
        lf_un_txf(&l, "middle_block.1", ch, s->depth_mid, s->context_dim, s->linear_proj);
        lf_un_tres(&l, "middle_block.2", ch, ch, T);
    } else {
        lf_un_tres(&l, "middle_block.1", ch, ch, T);
    }
    nb = 0;
    for (int lv = L - 1; lv >= 0; lv--) {
        for (int j = 0; j <= lpb; j++, nb++) {
            lf_wts_pathf(p, sizeof p, "output_blocks.%d.0", nb);
            lf_un_tres(&l, p, ch + skips[--ns], s->channels[lv], T);
            ch = s->channels[lv];
            int sub = 1;
            if (s->depth[lv] > 0) {
                lf_wts_pathf(p, sizeof p, "output_blocks.%d.1", nb);
                lf_un_txf(&l, p, ch, s->depth[lv], s->context_dim, s->linear_proj);
                sub = 2;
            }
            if (lv > 0 && j == lpb) {
                lf_wts_pathf(p, sizeof p, "output_blocks.%d.%d.conv", nb, sub);
                lf_un_tlin(&l, p, ch, ch, 3, 1);
            }
        }
    }
    lf_un_tnorm(&l, "out.0", ch);
    lf_un_tlin(&l, "out.2", s->out_channels, ch, 3, 1);
    if (l.oom) {
        free(l.t);
        return lf_err(LF_ERR_NOMEM, "unet spec: out of memory");
    }
    *out = l.t;
    *n = l.n;
    return LF_OK;
}

/* ---- refreshing weights (lf_live_weights.h) ------------------------------------------------------- */

static const char *lf_un_strip(const lf_unet *u, const char *key) {
    size_t pl = strlen(u->prefix);
    if (pl && !strncmp(key, u->prefix, pl)) return key + pl;
    if (!strncmp(key, "model.diffusion_model.", 22)) return key + 22;
    return key; /* the bare LDM path */
}

int lf_unet_has_weight(const lf_unet *u, const char *key) {
    const char *k = lf_un_strip(u, key);
    return k && lf_wts_get(u->wts, u->n_wts, k) != NULL;
}

const lf_view *lf_unet_weight_view(const lf_unet *u, const char *key) {
    const char *k = lf_un_strip(u, key);
    const lf_wts_entry *e = k ? lf_wts_get(u->wts, u->n_wts, k) : NULL;
    return e ? e->view : NULL;
}

lf_status lf_unet_weight_held(const lf_unet *u, const char *key, lf_view *out) {
    const char *k = lf_un_strip(u, key);
    const lf_wts_entry *e = k ? lf_wts_get(u->wts, u->n_wts, k) : NULL;
    memset(out, 0, sizeof *out);
    if (!e || e->transpose) return lf_err(LF_ERR_MODEL, "%s: the UNet holds no weight \"%s\" as stored", u->label, key);
    out->data = e->data;
    out->dtype = e->dtype;
    out->ndim = e->ndim;
    for (int i = 0; i < e->ndim && i < LF_MAX_DIMS && i < 4; i++) out->shape[i] = e->shape[i];
    return LF_OK;
}

lf_status lf_unet_set_weight(lf_unet *u, const char *key, const lf_view *v) {
    const char *k = lf_un_strip(u, key);
    lf_wts_entry *e = k ? lf_wts_get(u->wts, u->n_wts, k) : NULL;
    if (!e) return lf_err(LF_ERR_MODEL, "%s: the UNet holds no weight \"%s\"", u->label, key);
    return lf_wts_refresh(e, v, u->label, key);
}

uint64_t lf_unet_weight_bytes(const lf_unet *u) {
    int64_t a = 0, b = 0;
    if (u) lf_wts_list_bytes(u->wts, u->n_wts, &a, &b);
    return (uint64_t)(a + b);
}

uint64_t lf_unet_owned_bytes(const lf_unet *u) {
    int64_t a = 0;
    if (u) lf_wts_list_bytes(u->wts, u->n_wts, &a, NULL);
    return (uint64_t)a;
}

void lf_unet_drop_pages(lf_unet *u) {
    if (u) lf_wts_list_drop_pages(u->wts, u->n_wts);
}

lf_status lf_unet_own_weights(lf_unet *u) { return u ? lf_wts_list_own(u->wts, u->n_wts, u->label) : LF_OK; }

lf_status lf_unet_bind_weight(lf_unet *u, const char *key, const lf_view *v, int from_file) {
    const char *k = lf_un_strip(u, key);
    lf_wts_entry *e = k ? lf_wts_get(u->wts, u->n_wts, k) : NULL;
    if (!e) return lf_err(LF_ERR_MODEL, "%s: the UNet holds no weight \"%s\"", u->label, key);
    return lf_wts_bind(e, v, from_file, u->label, key);
}
