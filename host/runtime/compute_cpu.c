/* compute_cpu.c: the CPU compute backend (compute_cpu.h): each op of host/base/compute.h is the
 * lf_nn.h operator of the same name with the same arguments, so the model code written over the
 * interface gives exactly the bytes it gave when it called lf_nn directly.
 *
 * Memory is host memory: alloc is malloc (at least one float, so that an empty activation still has a
 * distinct address to release), upload/download/copy2d are memcpy. Weights are read where the model
 * keeps them, so there are no resident copies: forget does nothing and bind is refused
 * (LF_ERR_UNSUPPORTED: a CPU model binds host tensors itself, lf_unet_bind_weight). supports says yes
 * to everything: lf_nn reads every dtype the loaders keep (F16, BF16, F32) and any head width.
 */
#include <stdlib.h>
#include <string.h>

#include "compute_cpu.h"
#include "kernels/cpu/nn/lf_nn.h"

static lf_status lf_cc_alloc(lf_compute *c, int64_t n, float **out) {
    (void)c;
    *out = NULL;
    if (n < 0) return lf_err(LF_ERR_ARG, "cpu compute: allocation of %lld floats", (long long)n);
    if ((uint64_t)n > SIZE_MAX / sizeof(float) - 1 || !(*out = malloc((size_t)(n > 0 ? n : 1) * sizeof(float))))
        return lf_err(LF_ERR_NOMEM, "cpu compute: out of memory (an activation of %lld floats, %.1f MiB)", (long long)n,
                      (double)n * sizeof(float) / 1048576.0);
    return LF_OK;
}

static void lf_cc_release(lf_compute *c, float *p) {
    (void)c;
    free(p);
}

static lf_status lf_cc_copy(lf_compute *c, float *dst, const float *src, int64_t n) {
    (void)c;
    if (n > 0 && dst != src) memcpy(dst, src, (size_t)n * sizeof(float));
    return LF_OK;
}

static lf_status lf_cc_copy2d(lf_compute *c, float *dst, int64_t dst_ld, const float *src, int64_t src_ld,
                              int64_t rows, int64_t cols) {
    (void)c;
    if (cols <= 0) return LF_OK;
    for (int64_t r = 0; r < rows; r++) memcpy(dst + r * dst_ld, src + r * src_ld, (size_t)cols * sizeof(float));
    return LF_OK;
}

static lf_status lf_cc_sync(lf_compute *c) {
    (void)c;
    return LF_OK;
}

static void lf_cc_forget(lf_compute *c, const void *p, size_t bytes) {
    (void)c, (void)p, (void)bytes;
}

static lf_status lf_cc_bind(lf_compute *c, const void *p, const lf_view *v, void *dev) {
    (void)c, (void)p, (void)v, (void)dev;
    return lf_err(LF_ERR_UNSUPPORTED, "cpu compute: no backend memory to bind weights to (the model reads host "
                                      "weights in place)");
}

/* every op but the fused ones (NULL: the model composes them, so the bytes are lf_nn's) */
static int lf_cc_supports(const lf_compute *c, const lf_cop_desc *d) {
    (void)c;
    return d->op >= 0 && d->op < LF_COP_COUNT && d->op != LF_COP_CONV2D_ADD && d->op != LF_COP_GROUP_NORM_SILU;
}

static void lf_cc_destroy(lf_compute *c) {
    (void)c; /* static */
}

/* ---- ops: lf_nn.h ---------------------------------------------------------------------------
 * Each op is its lf_nn function with the same arguments: LF_CC_OP for the ops that can fail (their
 * status is passed on), LF_CC_VOID for those that cannot. */

#define LF_CC_OP(name, params, ...)                                                                         \
    static lf_status lf_cc_##name params {                                                                  \
        (void)c;                                                                                            \
        return lf_nn_##name(__VA_ARGS__);                                                                   \
    }
#define LF_CC_VOID(name, params, ...)                                                                       \
    static lf_status lf_cc_##name params {                                                                  \
        (void)c;                                                                                            \
        lf_nn_##name(__VA_ARGS__);                                                                          \
        return LF_OK;                                                                                       \
    }

LF_CC_OP(linear_w, (lf_compute *c, float *y, const float *x, const lf_view *W, const float *b, int64_t M, int64_t in,
                    int64_t out), y, x, W, b, M, in, out)
LF_CC_OP(conv2d_w, (lf_compute *c, float *y, const float *x, const lf_view *W, const float *b, int64_t N, int64_t C_in,
                    int64_t H, int64_t Wd, int64_t C_out, int64_t kh, int64_t kw, int64_t stride, int64_t pad),
         y, x, W, b, N, C_in, H, Wd, C_out, kh, kw, stride, pad)
LF_CC_VOID(group_norm, (lf_compute *c, float *y, const float *x, const float *gamma, const float *beta, int64_t N,
                        int64_t C, int64_t S, int64_t groups, float eps), y, x, gamma, beta, N, C, S, groups, eps)
LF_CC_VOID(layer_norm, (lf_compute *c, float *y, const float *x, const float *gamma, const float *beta, int64_t M,
                        int64_t D, float eps), y, x, gamma, beta, M, D, eps)
LF_CC_VOID(silu, (lf_compute *c, float *y, const float *x, int64_t n), y, x, n)
LF_CC_VOID(gelu, (lf_compute *c, float *y, const float *x, int64_t n), y, x, n)
LF_CC_VOID(gelu_tanh, (lf_compute *c, float *y, const float *x, int64_t n), y, x, n)
LF_CC_VOID(quick_gelu, (lf_compute *c, float *y, const float *x, int64_t n), y, x, n)
LF_CC_VOID(geglu, (lf_compute *c, float *y, const float *x, int64_t M, int64_t F), y, x, M, F)
LF_CC_VOID(add, (lf_compute *c, float *y, const float *a, const float *b, int64_t n), y, a, b, n)
LF_CC_VOID(mul, (lf_compute *c, float *y, const float *a, const float *b, int64_t n), y, a, b, n)
LF_CC_VOID(scale, (lf_compute *c, float *y, const float *x, float s, int64_t n), y, x, s, n)
LF_CC_VOID(add_bias_c, (lf_compute *c, float *x, const float *b, int64_t N, int64_t C, int64_t S), x, b, N, C, S)
LF_CC_VOID(add_bias_nc, (lf_compute *c, float *x, const float *b, int64_t N, int64_t C, int64_t S), x, b, N, C, S)
LF_CC_OP(attention, (lf_compute *c, float *out, const float *q, const float *k, const float *v, int64_t N, int64_t Lq,
                     int64_t Lk, int64_t heads, int64_t d, float scale, int causal),
         out, q, k, v, N, Lq, Lk, heads, d, scale, causal)
LF_CC_VOID(nchw_to_nlc, (lf_compute *c, float *y, const float *x, int64_t N, int64_t C, int64_t S), y, x, N, C, S)
LF_CC_VOID(nlc_to_nchw, (lf_compute *c, float *y, const float *x, int64_t N, int64_t C, int64_t S), y, x, N, C, S)
LF_CC_VOID(resize_nearest, (lf_compute *c, float *y, const float *x, int64_t N, int64_t C, int64_t H, int64_t W,
                            int64_t Ho, int64_t Wo), y, x, N, C, H, W, Ho, Wo)
LF_CC_VOID(pad2d, (lf_compute *c, float *y, const float *x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t left,
                   int64_t right, int64_t top, int64_t bottom), y, x, N, C, H, W, left, right, top, bottom)
LF_CC_VOID(concat_c, (lf_compute *c, float *y, const float *a, const float *b, int64_t N, int64_t Ca, int64_t Cb,
                      int64_t S), y, a, b, N, Ca, Cb, S)
LF_CC_VOID(timestep_embedding, (lf_compute *c, float *emb, const float *t, int64_t N, int64_t dim, int flip_sin_to_cos,
                                float shift, float max_period), emb, t, N, dim, flip_sin_to_cos, shift, max_period)
LF_CC_OP(embedding, (lf_compute *c, float *y, const float *table, const int32_t *ids, int64_t L, int64_t V, int64_t D),
         y, table, ids, L, V, D)

#undef LF_CC_OP
#undef LF_CC_VOID

/* the per-element formula of lf_sample_update.h, one loop per op so the switch is outside the loop */
static lf_status lf_cc_sample_update(lf_compute *c, const lf_sample_upd *u, float *const *b, int64_t n) {
    (void)c;
    if ((unsigned)u->op >= LF_SU_COUNT) return lf_err(LF_ERR_ARG, "cpu compute: sample_update: unknown op %d", u->op);
    lf_sample_upd one = *u;
    switch (u->op) {
#define LF_CC_SU(op_)                                                                                         \
    case op_:                                                                                                 \
        one.op = op_;                                                                                         \
        for (int64_t i = 0; i < n; i++) lf_su_elem(&one, b, i);                                               \
        break;
        LF_CC_SU(LF_SU_SCALE_IN) LF_CC_SU(LF_SU_CFG) LF_CC_SU(LF_SU_COPY) LF_CC_SU(LF_SU_EULER)
        LF_CC_SU(LF_SU_HEUN1) LF_CC_SU(LF_SU_HEUN2) LF_CC_SU(LF_SU_DDIM) LF_CC_SU(LF_SU_X0_VP) LF_CC_SU(LF_SU_DPM)
        LF_CC_SU(LF_SU_UNIPC_C) LF_CC_SU(LF_SU_UNIPC_P) LF_CC_SU(LF_SU_NONFINITE)
#undef LF_CC_SU
    default: break;
    }
    return LF_OK;
}

static lf_compute lf_cc_table = {
    .name = "cpu",
    .impl = NULL,
    .host_memory = 1,
    .act = LF_F32,
    .alloc = lf_cc_alloc,
    .release = lf_cc_release,
    .upload = lf_cc_copy,
    .download = lf_cc_copy,
    .copy2d = lf_cc_copy2d,
    .sync = lf_cc_sync,
    .forget = lf_cc_forget,
    .bind = lf_cc_bind,
    .supports = lf_cc_supports,
    .destroy = lf_cc_destroy,
    .linear = lf_cc_linear_w,
    .conv2d = lf_cc_conv2d_w,
    .group_norm = lf_cc_group_norm,
    .layer_norm = lf_cc_layer_norm,
    .silu = lf_cc_silu,
    .gelu = lf_cc_gelu,
    .gelu_tanh = lf_cc_gelu_tanh,
    .quick_gelu = lf_cc_quick_gelu,
    .geglu = lf_cc_geglu,
    .add = lf_cc_add,
    .mul = lf_cc_mul,
    .scale = lf_cc_scale,
    .add_bias_c = lf_cc_add_bias_c,
    .add_bias_nc = lf_cc_add_bias_nc,
    .attention = lf_cc_attention,
    .nchw_to_nlc = lf_cc_nchw_to_nlc,
    .nlc_to_nchw = lf_cc_nlc_to_nchw,
    .resize_nearest = lf_cc_resize_nearest,
    .pad2d = lf_cc_pad2d,
    .concat_c = lf_cc_concat_c,
    .timestep_embedding = lf_cc_timestep_embedding,
    .embedding = lf_cc_embedding,
    .sample_update = lf_cc_sample_update,
};

lf_compute *lf_compute_cpu(void) { return &lf_cc_table; }
