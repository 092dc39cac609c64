/* compute_count.c: the counting compute of compute_count.h (calls, FLOPs, bytes per op kind, live
 * and peak activation bytes), around another compute or dry. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute_count.h"
#include "host/base/util.h"

static const char *const lf_cop_names[LF_COP_COUNT] = {
    "linear", "conv2d", "group_norm", "layer_norm", "silu", "gelu", "gelu_tanh", "quick_gelu", "geglu", "add",
    "mul", "scale", "add_bias_c", "add_bias_nc", "attention", "nchw_to_nlc", "nlc_to_nchw", "resize_nearest",
    "pad2d", "concat_c", "timestep_embedding", "embedding", "copy2d", "conv2d_add", "group_norm_silu",
    "sample_update",
};

const char *lf_cop_name(lf_cop op) { return (unsigned)op < LF_COP_COUNT ? lf_cop_names[op] : "?"; }

static lf_compute_count *lf_cc(lf_compute *c) { return (lf_compute_count *)c; }

/* the inner compute's queued work done, then the clock (a timed count's op boundaries) */
static double lf_cnt_sync_clock(lf_compute_count *cc) {
    cc->inner->sync(cc->inner);
    return lf_clock_s();
}

static double lf_cnt_wbytes(const lf_view *W) {
    return (double)lf_view_numel(W) * (double)lf_dtype_bits(W->dtype) / 8.0;
}

/* bytes of one activation value as the compute stores it (c->act: f32, or 16 bits on a device) */
static double lf_cnt_esz(const lf_compute *c) { return (double)lf_dtype_bits(c->act) / 8.0; }

/* activation values moved (read + written) -> bytes in the storage type */
static void lf_cnt_add(lf_compute *c, lf_cop op, double flops, double act_values, double wbytes) {
    lf_cop_stats *s = &lf_cc(c)->op[op];
    s->calls++;
    s->flops += flops;
    s->bytes += lf_cnt_esz(c) * act_values + wbytes;
    s->weight_bytes += wbytes;
}

/* an op's start: the backend clock's mark, or (timed) the inner compute's work done and the time */
static lf_status lf_cnt_begin(lf_compute_count *cc, lf_cop op, double *t0) {
    *t0 = 0;
    if (cc->clock.begin) return cc->clock.begin(cc->clock.ctx, (int)op, lf_cop_name(op));
    if (cc->timed) *t0 = lf_cnt_sync_clock(cc);
    return LF_OK;
}

/* its end, after the op returned st (the clock's mark closes in any case: its range must pop) */
static lf_status lf_cnt_end(lf_compute_count *cc, lf_cop op, double t0, lf_status st) {
    if (cc->clock.begin) {
        lf_status e = cc->clock.end(cc->clock.ctx, (int)op);
        return st != LF_OK ? st : e;
    }
    if (cc->timed && st == LF_OK) cc->op[op].seconds += lf_cnt_sync_clock(cc) - t0;
    return st;
}

/* pass the call on (dry: nothing), between the op's marks */
#define LF_CC_PASS(kind_, name, ...)                                                         \
    do {                                                                                     \
        lf_compute_count *cc_ = lf_cc(c);                                                    \
        if (!cc_->inner) return LF_OK;                                                       \
        double t0_;                                                                          \
        lf_status st_ = lf_cnt_begin(cc_, kind_, &t0_);                                      \
        if (st_ != LF_OK) return st_;                                                        \
        return lf_cnt_end(cc_, kind_, t0_, cc_->inner->name(cc_->inner, __VA_ARGS__));       \
    } while (0)

/* ---- memory ------------------------------------------------------------------------------------ */

/* n values of esz bytes, from the inner compute's alloc or alloc_f32 (f32) */
static lf_status lf_cnt_alloc_as(lf_compute *c, int64_t n, int f32, float **out) {
    lf_compute_count *cc = lf_cc(c);
    const double esz = f32 ? 4.0 : lf_cnt_esz(c);
    *out = NULL;
    if (cc->n_bufs == cc->cap_bufs) {
        size_t cap = cc->cap_bufs ? 2 * cc->cap_bufs : 64;
        struct lf_cnt_buf *b = realloc(cc->bufs, cap * sizeof *b);
        if (!b) return lf_err(LF_ERR_NOMEM, "counting compute: out of memory");
        cc->bufs = b, cc->cap_bufs = cap;
    }
    float *p = NULL;
    if (cc->inner) {
        lf_status st = f32 ? lf_compute_alloc_f32(cc->inner, n, &p) : cc->inner->alloc(cc->inner, n, &p);
        if (st != LF_OK) return st;
    } else if ((p = malloc(1)) == NULL) { /* a distinct placeholder address: a dry buffer is never read */
        return lf_err(LF_ERR_NOMEM, "counting compute: out of memory");
    }
    cc->bufs[cc->n_bufs].p = p;
    cc->bufs[cc->n_bufs++].bytes = esz * (double)n;
    cc->allocs++;
    cc->live += esz * (double)n;
    if (cc->live > cc->peak) cc->peak = cc->live;
    *out = p;
    return LF_OK;
}

static lf_status lf_cnt_alloc(lf_compute *c, int64_t n, float **out) { return lf_cnt_alloc_as(c, n, 0, out); }
static lf_status lf_cnt_alloc_f32(lf_compute *c, int64_t n, float **out) { return lf_cnt_alloc_as(c, n, 1, out); }

static void lf_cnt_release(lf_compute *c, float *p) {
    lf_compute_count *cc = lf_cc(c);
    if (!p) return;
    for (size_t i = cc->n_bufs; i-- > 0;) { /* newest first: buffers mostly go in reverse order */
        if (cc->bufs[i].p != p) continue;
        cc->live -= cc->bufs[i].bytes;
        cc->bufs[i] = cc->bufs[--cc->n_bufs];
        break;
    }
    if (cc->inner) cc->inner->release(cc->inner, p);
    else free(p);
}

static lf_status lf_cnt_upload(lf_compute *c, float *dst, const float *src, int64_t n) {
    lf_compute *in = lf_cc(c)->inner;
    lf_cc(c)->uploads++;
    lf_cc(c)->up_bytes += 4.0 * (double)n;
    return in ? in->upload(in, dst, src, n) : LF_OK;
}

static lf_status lf_cnt_download(lf_compute *c, float *dst, const float *src, int64_t n) {
    lf_compute *in = lf_cc(c)->inner;
    lf_cc(c)->downloads++;
    lf_cc(c)->down_bytes += 4.0 * (double)n;
    if (!in) memset(dst, 0, (size_t)n * sizeof *dst); /* the caller's host array: defined, not computed */
    return in ? in->download(in, dst, src, n) : LF_OK;
}

static lf_status lf_cnt_copy2d(lf_compute *c, float *dst, int64_t dst_ld, const float *src, int64_t src_ld,
                              int64_t rows, int64_t cols) {
    lf_cnt_add(c, LF_COP_COPY2D, 0, 2.0 * (double)rows * (double)cols, 0);
    LF_CC_PASS(LF_COP_COPY2D, copy2d, dst, dst_ld, src, src_ld, rows, cols);
}

static lf_status lf_cnt_sync(lf_compute *c) {
    lf_compute *in = lf_cc(c)->inner;
    return in ? in->sync(in) : LF_OK;
}

static void lf_cnt_forget(lf_compute *c, const void *p, size_t bytes) {
    lf_compute *in = lf_cc(c)->inner;
    if (in) in->forget(in, p, bytes);
}

static lf_status lf_cnt_bind(lf_compute *c, const void *p, const lf_view *v, void *dev) {
    lf_compute *in = lf_cc(c)->inner;
    return in ? in->bind(in, p, v, dev) : LF_OK;
}

static int lf_cnt_supports(const lf_compute *c, const lf_cop_desc *d) {
    const lf_compute *in = ((const lf_compute_count *)c)->inner;
    return in ? in->supports(in, d) : 1;
}

static void lf_cnt_destroy(lf_compute *c) { lf_compute_count_free(lf_cc(c)); }

/* ---- ops --------------------------------------------------------------------------------------- */

static lf_status lf_cnt_linear(lf_compute *c, float *y, const float *x, const lf_view *W, const float *b, int64_t M,
                              int64_t in, int64_t out) {
    double wb = lf_cnt_wbytes(W) + (b ? 4.0 * (double)out : 0);
    lf_cnt_add(c, LF_COP_LINEAR, 2.0 * (double)M * (double)in * (double)out, (double)M * (double)(in + out), wb);
    LF_CC_PASS(LF_COP_LINEAR, linear, y, x, W, b, M, in, out);
}

static lf_status lf_cnt_conv2d(lf_compute *c, float *y, const float *x, const lf_view *W, const float *b, int64_t N,
                              int64_t C_in, int64_t H, int64_t Wd, int64_t C_out, int64_t kh, int64_t kw,
                              int64_t stride, int64_t pad) {
    double Ho = (double)((H + 2 * pad - kh) / stride + 1), Wo = (double)((Wd + 2 * pad - kw) / stride + 1);
    double wb = lf_cnt_wbytes(W) + (b ? 4.0 * (double)C_out : 0);
    double fl = 2.0 * (double)N * Ho * Wo * (double)C_out * (double)C_in * (double)(kh * kw);
    lf_cnt_add(c, LF_COP_CONV2D, fl, (double)N * ((double)C_in * (double)(H * Wd) + (double)C_out * Ho * Wo), wb);
    LF_CC_PASS(LF_COP_CONV2D, conv2d, y, x, W, b, N, C_in, H, Wd, C_out, kh, kw, stride, pad);
}

/* a conv2d and the residual add in one op: the conv's FLOPs and bytes, one FLOP and one more read per output */
static lf_status lf_cnt_conv2d_add(lf_compute *c, float *y, const float *x, const lf_view *W, const float *b,
                                  const float *res, int64_t N, int64_t C_in, int64_t H, int64_t Wd, int64_t C_out,
                                  int64_t kh, int64_t kw, int64_t stride, int64_t pad) {
    double Ho = (double)((H + 2 * pad - kh) / stride + 1), Wo = (double)((Wd + 2 * pad - kw) / stride + 1);
    double wb = lf_cnt_wbytes(W) + (b ? 4.0 * (double)C_out : 0), ny = (double)N * (double)C_out * Ho * Wo;
    double fl = 2.0 * ny * (double)C_in * (double)(kh * kw) + ny;
    lf_cnt_add(c, LF_COP_CONV2D_ADD, fl, (double)N * (double)C_in * (double)(H * Wd) + 2.0 * ny, wb);
    LF_CC_PASS(LF_COP_CONV2D_ADD, conv2d_add, y, x, W, b, res, N, C_in, H, Wd, C_out, kh, kw, stride, pad);
}

/* GroupNorm with SiLU on its output: the norm's and the SiLU's FLOPs, the norm's bytes */
static lf_status lf_cnt_group_norm_silu(lf_compute *c, float *y, const float *x, const float *gamma,
                                       const float *beta, int64_t N, int64_t C, int64_t S, int64_t groups, float eps) {
    double n = (double)N * (double)C * (double)S;
    lf_cnt_add(c, LF_COP_GROUP_NORM_SILU, 16.0 * n, 2.0 * n, gamma ? 8.0 * (double)C : 0);
    LF_CC_PASS(LF_COP_GROUP_NORM_SILU, group_norm_silu, y, x, gamma, beta, N, C, S, groups, eps);
}

static lf_status lf_cnt_group_norm(lf_compute *c, float *y, const float *x, const float *gamma, const float *beta,
                                  int64_t N, int64_t C, int64_t S, int64_t groups, float eps) {
    double n = (double)N * (double)C * (double)S;
    lf_cnt_add(c, LF_COP_GROUP_NORM, 8.0 * n, 2.0 * n, gamma ? 8.0 * (double)C : 0);
    LF_CC_PASS(LF_COP_GROUP_NORM, group_norm, y, x, gamma, beta, N, C, S, groups, eps);
}

static lf_status lf_cnt_layer_norm(lf_compute *c, float *y, const float *x, const float *gamma, const float *beta,
                                  int64_t M, int64_t D, float eps) {
    double n = (double)M * (double)D;
    lf_cnt_add(c, LF_COP_LAYER_NORM, 8.0 * n, 2.0 * n, gamma ? 8.0 * (double)D : 0);
    LF_CC_PASS(LF_COP_LAYER_NORM, layer_norm, y, x, gamma, beta, M, D, eps);
}

static lf_status lf_cnt_silu(lf_compute *c, float *y, const float *x, int64_t n) {
    lf_cnt_add(c, LF_COP_SILU, 8.0 * (double)n, 2.0 * (double)n, 0);
    LF_CC_PASS(LF_COP_SILU, silu, y, x, n);
}

static lf_status lf_cnt_gelu(lf_compute *c, float *y, const float *x, int64_t n) {
    lf_cnt_add(c, LF_COP_GELU, 8.0 * (double)n, 2.0 * (double)n, 0);
    LF_CC_PASS(LF_COP_GELU, gelu, y, x, n);
}

static lf_status lf_cnt_gelu_tanh(lf_compute *c, float *y, const float *x, int64_t n) {
    lf_cnt_add(c, LF_COP_GELU_TANH, 8.0 * (double)n, 2.0 * (double)n, 0);
    LF_CC_PASS(LF_COP_GELU_TANH, gelu_tanh, y, x, n);
}

static lf_status lf_cnt_quick_gelu(lf_compute *c, float *y, const float *x, int64_t n) {
    lf_cnt_add(c, LF_COP_QUICK_GELU, 8.0 * (double)n, 2.0 * (double)n, 0);
    LF_CC_PASS(LF_COP_QUICK_GELU, quick_gelu, y, x, n);
}

static lf_status lf_cnt_geglu(lf_compute *c, float *y, const float *x, int64_t M, int64_t F) {
    double n = (double)M * (double)F;
    lf_cnt_add(c, LF_COP_GEGLU, 9.0 * n, 3.0 * n, 0);
    LF_CC_PASS(LF_COP_GEGLU, geglu, y, x, M, F);
}

static lf_status lf_cnt_add_op(lf_compute *c, float *y, const float *a, const float *b, int64_t n) {
    lf_cnt_add(c, LF_COP_ADD, (double)n, 3.0 * (double)n, 0);
    LF_CC_PASS(LF_COP_ADD, add, y, a, b, n);
}

static lf_status lf_cnt_mul(lf_compute *c, float *y, const float *a, const float *b, int64_t n) {
    lf_cnt_add(c, LF_COP_MUL, (double)n, 3.0 * (double)n, 0);
    LF_CC_PASS(LF_COP_MUL, mul, y, a, b, n);
}

static lf_status lf_cnt_scale(lf_compute *c, float *y, const float *x, float s, int64_t n) {
    lf_cnt_add(c, LF_COP_SCALE, (double)n, 2.0 * (double)n, 0);
    LF_CC_PASS(LF_COP_SCALE, scale, y, x, s, n);
}

static lf_status lf_cnt_add_bias_c(lf_compute *c, float *x, const float *b, int64_t N, int64_t C, int64_t S) {
    double n = (double)N * (double)C * (double)S;
    lf_cnt_add(c, LF_COP_ADD_BIAS_C, n, 2.0 * n, 4.0 * (double)C);
    LF_CC_PASS(LF_COP_ADD_BIAS_C, add_bias_c, x, b, N, C, S);
}

static lf_status lf_cnt_add_bias_nc(lf_compute *c, float *x, const float *b, int64_t N, int64_t C, int64_t S) {
    double n = (double)N * (double)C * (double)S;
    lf_cnt_add(c, LF_COP_ADD_BIAS_NC, n, 2.0 * n + (double)(N * C), 0);
    LF_CC_PASS(LF_COP_ADD_BIAS_NC, add_bias_nc, x, b, N, C, S);
}

static lf_status lf_cnt_attention(lf_compute *c, float *out, const float *q, const float *k, const float *v, int64_t N,
                                 int64_t Lq, int64_t Lk, int64_t heads, int64_t d, float scale, int causal) {
    double s = (double)N * (double)heads * (double)Lq * (double)Lk;
    double io = (double)N * (double)heads * (double)d * (2.0 * (double)Lq + 2.0 * (double)Lk);
    lf_cnt_add(c, LF_COP_ATTENTION, 4.0 * s * (double)d + 5.0 * s, io, 0);
    LF_CC_PASS(LF_COP_ATTENTION, attention, out, q, k, v, N, Lq, Lk, heads, d, scale, causal);
}

static lf_status lf_cnt_nchw_to_nlc(lf_compute *c, float *y, const float *x, int64_t N, int64_t C, int64_t S) {
    lf_cnt_add(c, LF_COP_NCHW_TO_NLC, 0, 2.0 * (double)N * (double)C * (double)S, 0);
    LF_CC_PASS(LF_COP_NCHW_TO_NLC, nchw_to_nlc, y, x, N, C, S);
}

static lf_status lf_cnt_nlc_to_nchw(lf_compute *c, float *y, const float *x, int64_t N, int64_t C, int64_t S) {
    lf_cnt_add(c, LF_COP_NLC_TO_NCHW, 0, 2.0 * (double)N * (double)C * (double)S, 0);
    LF_CC_PASS(LF_COP_NLC_TO_NCHW, nlc_to_nchw, y, x, N, C, S);
}

static lf_status lf_cnt_resize_nearest(lf_compute *c, float *y, const float *x, int64_t N, int64_t C, int64_t H,
                                      int64_t W, int64_t Ho, int64_t Wo) {
    lf_cnt_add(c, LF_COP_RESIZE_NEAREST, 0, (double)N * (double)C * (double)(H * W + Ho * Wo), 0);
    LF_CC_PASS(LF_COP_RESIZE_NEAREST, resize_nearest, y, x, N, C, H, W, Ho, Wo);
}

static lf_status lf_cnt_pad2d(lf_compute *c, float *y, const float *x, int64_t N, int64_t C, int64_t H, int64_t W,
                             int64_t left, int64_t right, int64_t top, int64_t bottom) {
    double out = (double)N * (double)C * (double)((H + top + bottom) * (W + left + right));
    lf_cnt_add(c, LF_COP_PAD2D, 0, (double)N * (double)C * (double)(H * W) + out, 0);
    LF_CC_PASS(LF_COP_PAD2D, pad2d, y, x, N, C, H, W, left, right, top, bottom);
}

static lf_status lf_cnt_concat_c(lf_compute *c, float *y, const float *a, const float *b, int64_t N, int64_t Ca,
                                int64_t Cb, int64_t S) {
    lf_cnt_add(c, LF_COP_CONCAT_C, 0, 2.0 * (double)N * (double)(Ca + Cb) * (double)S, 0);
    LF_CC_PASS(LF_COP_CONCAT_C, concat_c, y, a, b, N, Ca, Cb, S);
}

static lf_status lf_cnt_timestep_embedding(lf_compute *c, float *emb, const float *t, int64_t N, int64_t dim,
                                          int flip_sin_to_cos, float shift, float max_period) {
    lf_cnt_add(c, LF_COP_TIMESTEP_EMBEDDING, 8.0 * (double)(N * dim), (double)(N * dim), 0);
    LF_CC_PASS(LF_COP_TIMESTEP_EMBEDDING, timestep_embedding, emb, t, N, dim, flip_sin_to_cos, shift, max_period);
}

/* FLOPs: about 4 per element per buffer; bytes: every buffer read or written once */
static lf_status lf_cnt_sample_update(lf_compute *c, const lf_sample_upd *u, float *const *b, int64_t n) {
    double nb = (double)lf_su_nbufs(u);
    lf_cnt_add(c, LF_COP_SAMPLE_UPDATE, 4.0 * nb * (double)n, nb * (double)n, 0);
    LF_CC_PASS(LF_COP_SAMPLE_UPDATE, sample_update, u, b, n);
}

static lf_status lf_cnt_embedding(lf_compute *c, float *y, const float *table, const int32_t *ids, int64_t L, int64_t V,
                                 int64_t D) {
    lf_cnt_add(c, LF_COP_EMBEDDING, 0, (double)(L * D), 4.0 * (double)(L * D));
    LF_CC_PASS(LF_COP_EMBEDDING, embedding, y, table, ids, L, V, D);
}

void lf_compute_count_init_timed(lf_compute_count *cc, lf_compute *inner) {
    lf_compute_count_init(cc, inner);
    cc->timed = inner != NULL;
}

void lf_compute_count_init_clocked(lf_compute_count *cc, lf_compute *inner, const lf_op_clock *clock) {
    lf_compute_count_init(cc, inner);
    cc->timed = inner != NULL;
    if (inner) cc->clock = *clock;
}

lf_status lf_compute_count_collect(lf_compute_count *cc) {
    if (!cc->clock.collect) return LF_OK;
    double sec[LF_COP_COUNT] = {0};
    lf_status st = cc->clock.collect(cc->clock.ctx, sec, LF_COP_COUNT);
    for (int op = 0; op < LF_COP_COUNT; op++) cc->op[op].seconds += sec[op];
    return st;
}

void lf_compute_count_init_fused(lf_compute_count *cc) {
    lf_compute_count_init(cc, NULL);
    cc->c.conv2d_add = lf_cnt_conv2d_add;
    cc->c.group_norm_silu = lf_cnt_group_norm_silu;
}

void lf_compute_count_init(lf_compute_count *cc, lf_compute *inner) {
    memset(cc, 0, sizeof *cc);
    cc->inner = inner;
    lf_compute *c = &cc->c;
    c->name = inner ? inner->name : "count";
    c->impl = cc;
    c->host_memory = inner ? inner->host_memory : 0;
    c->act = inner ? inner->act : LF_F32; /* a dry count may set another act to count its bytes */
    c->alloc = lf_cnt_alloc;
    c->alloc_f32 = inner && inner->alloc_f32 ? lf_cnt_alloc_f32 : NULL;
    c->release = lf_cnt_release;
    c->upload = lf_cnt_upload;
    c->download = lf_cnt_download;
    c->copy2d = lf_cnt_copy2d;
    c->sync = lf_cnt_sync;
    c->forget = lf_cnt_forget;
    c->bind = lf_cnt_bind;
    c->supports = lf_cnt_supports;
    c->destroy = lf_cnt_destroy;
    c->linear = lf_cnt_linear;
    c->conv2d = lf_cnt_conv2d;
    c->group_norm = lf_cnt_group_norm;
    c->layer_norm = lf_cnt_layer_norm;
    c->silu = lf_cnt_silu;
    c->gelu = lf_cnt_gelu;
    c->gelu_tanh = lf_cnt_gelu_tanh;
    c->quick_gelu = lf_cnt_quick_gelu;
    c->geglu = lf_cnt_geglu;
    c->add = lf_cnt_add_op;
    c->mul = lf_cnt_mul;
    c->scale = lf_cnt_scale;
    c->add_bias_c = lf_cnt_add_bias_c;
    c->add_bias_nc = lf_cnt_add_bias_nc;
    c->attention = lf_cnt_attention;
    c->nchw_to_nlc = lf_cnt_nchw_to_nlc;
    c->nlc_to_nchw = lf_cnt_nlc_to_nchw;
    c->resize_nearest = lf_cnt_resize_nearest;
    c->pad2d = lf_cnt_pad2d;
    c->concat_c = lf_cnt_concat_c;
    c->timestep_embedding = lf_cnt_timestep_embedding;
    c->embedding = lf_cnt_embedding;
    /* the fused ops where the inner compute has them; otherwise (and dry, like the CPU) the model
     * composes them and their parts are counted */
    c->conv2d_add = inner && inner->conv2d_add ? lf_cnt_conv2d_add : NULL;
    c->group_norm_silu = inner && inner->group_norm_silu ? lf_cnt_group_norm_silu : NULL;
    c->sample_update = lf_cnt_sample_update;
}

void lf_compute_count_reset(lf_compute_count *cc) {
    if (cc->clock.collect) { /* the ops timed so far belong to the counts being dropped */
        double sec[LF_COP_COUNT] = {0};
        (void)cc->clock.collect(cc->clock.ctx, sec, LF_COP_COUNT);
    }
    memset(cc->op, 0, sizeof cc->op);
    cc->uploads = cc->downloads = 0;
    cc->up_bytes = cc->down_bytes = 0;
    cc->peak = cc->live;
    cc->allocs = 0;
}

void lf_compute_count_free(lf_compute_count *cc) {
    for (size_t i = 0; i < cc->n_bufs; i++) /* buffers the model did not give back */
        if (cc->inner) cc->inner->release(cc->inner, cc->bufs[i].p);
        else free(cc->bufs[i].p);
    free(cc->bufs);
    cc->bufs = NULL;
    cc->n_bufs = cc->cap_bufs = 0;
    if (cc->clock.free) cc->clock.free(cc->clock.ctx);
    memset(&cc->clock, 0, sizeof cc->clock);
}

char *lf_compute_count_report(const lf_compute_count *cc, char *buf, size_t cap) {
    size_t at = 0;
    buf[0] = '\0';
    double tot_s = 0, tot_f = 0, tot_b = 0;
    uint64_t calls = 0;
    for (int op = 0; op < LF_COP_COUNT; op++) {
        const lf_cop_stats *s = &cc->op[op];
        if (!s->calls) continue;
        tot_s += s->seconds, tot_f += s->flops, tot_b += s->bytes, calls += s->calls;
    }
    for (int op = -1; op < LF_COP_COUNT && at < cap; op++) {
        lf_cop_stats t = {calls, tot_f, tot_b, 0, tot_s};
        const lf_cop_stats *s = op < 0 ? &t : &cc->op[op];
        if (op >= 0 && !s->calls) continue;
        double sec = s->seconds > 0 ? s->seconds : 0;
        int n = snprintf(buf + at, cap - at, "%-18s %7llu calls %10.2f GFLOP %8.3f GB %9.4f s%s%8.1f GFLOP/s %7.1f GB/s\n",
                         op < 0 ? "all" : lf_cop_name((lf_cop)op), (unsigned long long)s->calls, s->flops / 1e9,
                         s->bytes / 1e9, sec, tot_s > 0 ? "" : " (untimed)", sec > 0 ? s->flops / sec / 1e9 : 0,
                         sec > 0 ? s->bytes / sec / 1e9 : 0);
        if (n < 0) break;
        at += (size_t)n < cap - at ? (size_t)n : cap - at - 1;
    }
    return buf;
}
