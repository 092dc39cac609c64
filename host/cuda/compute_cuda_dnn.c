/* compute_cuda_dnn.c: the cuDNN graphs of the CUDA compute backend (compute_cuda_dnn.h), through the
 * graph (backend) API from C: tensor, convolution and pointwise descriptors, operations, an operation
 * graph, engine heuristics (CUDNN_HEUR_MODE_INSTANT), the first engine config whose execution plan
 * finalizes, and per call a variant pack of device pointers by UID.
 *
 *   conv  X (uid 1, N C H W, NHWC strides, f16/bf16) * W (uid 2, K C kh kw, KRSC strides, same type)
 *         -> virtual f32 (uid 5, NHWC) -> pointwise ADD with B (uid 3, 1 K 1 1 f32, broadcast over
 *         N, H, W) or IDENTITY -> Y (uid 4, N K Ho Wo, NHWC, f32); cross-correlation, dilation 1,
 *         compute type f32. NHWC because cuDNN's tensor-core and runtime-fusion engines want channels
 *         innermost (NCHW descriptors are mostly served by transforming engines or not fused).
 *   sdpa  Q (uid 10), K (11), V (12), O (13): (N, heads, L, d) with the strides of a row-major
 *         (N, L, heads*d) array (BSHD), f16/bf16; scale (uid 14, 1 1 1 1 f32, by value).
 *
 * Plans are cached per lf_dnn_key (a linear list: a model has tens of shapes); each entry keeps every
 * descriptor of its graph alive until close. A graph that any step refuses is cached as refused with
 * the call and status, and never retried. Without cuDNN (LF_HAVE_CUDNN 0) open answers unsupported.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute_cuda_dnn.h"
#include "host/base/util.h"
#include "lorafuse/lf_config.h"

#if !LF_HAVE_CUDNN
lf_status lf_dnn_open(cudaStream_t stream, lf_dnn **out) {
    (void)stream;
    *out = NULL;
    return lf_err(LF_ERR_UNSUPPORTED, "this build of lorafuse has no cuDNN");
}
void lf_dnn_close(lf_dnn *d) { (void)d; }
lf_status lf_dnn_plan_get(lf_dnn *d, const lf_dnn_key *key, const lf_dnn_plan **plan, const char **why) {
    (void)d, (void)key;
    *plan = NULL;
    *why = "no cuDNN in this build";
    return LF_OK;
}
size_t lf_dnn_workspace(const lf_dnn_plan *p) {
    (void)p;
    return 0;
}
size_t lf_dnn_count(const lf_dnn *d) {
    (void)d;
    return 0;
}
lf_status lf_dnn_execute(lf_dnn *d, const lf_dnn_plan *p, void *const t[4], float scale, void *ws) {
    (void)d, (void)p, (void)t, (void)scale, (void)ws;
    return lf_err(LF_ERR_UNSUPPORTED, "this build of lorafuse has no cuDNN");
}
#else
#include <cudnn.h>

/* the handle attributes of graphs and plans: deprecated in cuDNN 9 (a device-properties descriptor
 * may replace them) but still how a plan gets its handle; by value, so the headers' deprecation
 * attribute does not fail a -Werror build */
#define LF_DNN_GRAPH_HANDLE ((cudnnBackendAttributeName_t)800)
#define LF_DNN_PLAN_HANDLE ((cudnnBackendAttributeName_t)400)

enum { LF_DNN_MAX_DESC = 16, LF_DNN_MAX_CFG = 8 };
enum { UID_X = 1, UID_W = 2, UID_B = 3, UID_Y = 4, UID_V = 5, UID_Q = 10, UID_K = 11, UID_VV = 12, UID_O = 13,
       UID_SCALE = 14 };

struct lf_dnn_plan {
    lf_dnn_key key;
    cudnnBackendDescriptor_t plan;         /* NULL: refused */
    cudnnBackendDescriptor_t desc[LF_DNN_MAX_DESC]; /* the graph's descriptors, kept for the plan */
    int ndesc;
    size_t ws;
    char why[256];
};

struct lf_dnn {
    cudnnHandle_t h;
    lf_dnn_plan **plans;
    size_t n, cap;
    int log;
};

static lf_status lf_dnn_status(cudnnStatus_t e, const char *call) {
    return lf_err(e == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED ? LF_ERR_NOMEM : LF_ERR_DEVICE,
                  "%s failed: %s (cuDNN status %d)", call, cudnnGetErrorString(e), (int)e);
}

lf_status lf_dnn_open(cudaStream_t stream, lf_dnn **out) {
    *out = NULL;
    lf_dnn *d = calloc(1, sizeof *d);
    if (!d) return lf_err(LF_ERR_NOMEM, "out of host memory");
    cudnnStatus_t e = cudnnCreate(&d->h);
    if (e != CUDNN_STATUS_SUCCESS) {
        d->h = NULL;
        lf_dnn_close(d);
        return lf_dnn_status(e, "cudnnCreate");
    }
    e = cudnnSetStream(d->h, stream);
    if (e != CUDNN_STATUS_SUCCESS) {
        lf_dnn_close(d);
        return lf_dnn_status(e, "cudnnSetStream");
    }
    const char *log = getenv("LF_CUDA_CUDNN_LOG");
    d->log = log && log[0] == '1';
    *out = d;
    return LF_OK;
}

static void lf_dnn_plan_free(lf_dnn_plan *p) {
    if (!p) return;
    if (p->plan) cudnnBackendDestroyDescriptor(p->plan);
    for (int i = p->ndesc; i-- > 0;) cudnnBackendDestroyDescriptor(p->desc[i]);
    free(p);
}

void lf_dnn_close(lf_dnn *d) {
    if (!d) return;
    for (size_t i = 0; i < d->n; i++) lf_dnn_plan_free(d->plans[i]);
    free(d->plans);
    if (d->h) cudnnDestroy(d->h);
    free(d);
}

size_t lf_dnn_workspace(const lf_dnn_plan *p) { return p ? p->ws : 0; }
size_t lf_dnn_count(const lf_dnn *d) { return d ? d->n : 0; }

/* ---- graph building: the first failing call ends it and becomes the refusal's reason ---------- */

typedef struct {
    lf_dnn *d;
    lf_dnn_plan *p;
    int failed;
} lf_dnn_build;

static int lf_dnn_ok(lf_dnn_build *b, cudnnStatus_t e, const char *call, const char *what) {
    if (b->failed) return 0;
    if (e == CUDNN_STATUS_SUCCESS) return 1;
    b->failed = 1;
    snprintf(b->p->why, sizeof b->p->why, "%s(%s) failed: %s (cuDNN status %d)", call, what, cudnnGetErrorString(e),
             (int)e);
    return 0;
}

/* a new descriptor owned by the plan entry (NULL after a failure) */
static cudnnBackendDescriptor_t lf_dnn_new(lf_dnn_build *b, cudnnBackendDescriptorType_t t, const char *what) {
    cudnnBackendDescriptor_t x = NULL;
    if (b->failed) return NULL;
    if (b->p->ndesc == LF_DNN_MAX_DESC) {
        b->failed = 1;
        snprintf(b->p->why, sizeof b->p->why, "more than %d descriptors in one graph", LF_DNN_MAX_DESC);
        return NULL;
    }
    if (!lf_dnn_ok(b, cudnnBackendCreateDescriptor(t, &x), "cudnnBackendCreateDescriptor", what)) return NULL;
    b->p->desc[b->p->ndesc++] = x;
    return x;
}

static void lf_dnn_set(lf_dnn_build *b, cudnnBackendDescriptor_t x, cudnnBackendAttributeName_t a,
                       cudnnBackendAttributeType_t t, int64_t n, const void *v, const char *what) {
    if (!b->failed) lf_dnn_ok(b, cudnnBackendSetAttribute(x, a, t, n, v), "cudnnBackendSetAttribute", what);
}

static void lf_dnn_fin(lf_dnn_build *b, cudnnBackendDescriptor_t x, const char *what) {
    if (!b->failed) lf_dnn_ok(b, cudnnBackendFinalize(x), "cudnnBackendFinalize", what);
}

/* a finalized 4-D tensor descriptor */
static cudnnBackendDescriptor_t lf_dnn_tensor(lf_dnn_build *b, int64_t uid, cudnnDataType_t dt, const int64_t dims[4],
                                              const int64_t strides[4], int is_virtual, int by_value,
                                              const char *what) {
    cudnnBackendDescriptor_t t = lf_dnn_new(b, CUDNN_BACKEND_TENSOR_DESCRIPTOR, what);
    const int64_t align = by_value ? 4 : 16;
    const bool virt = is_virtual != 0, val = by_value != 0;
    lf_dnn_set(b, t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt, what);
    lf_dnn_set(b, t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims, what);
    lf_dnn_set(b, t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides, what);
    lf_dnn_set(b, t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, what);
    lf_dnn_set(b, t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, what);
    if (virt) lf_dnn_set(b, t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virt, what);
    if (val) lf_dnn_set(b, t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &val, what);
    lf_dnn_fin(b, t, what);
    return t;
}

/* strides of a (n, c, h, w) tensor stored NHWC */
static void lf_dnn_nhwc(const int64_t dims[4], int64_t s[4]) {
    s[1] = 1;
    s[3] = dims[1];
    s[2] = dims[3] * dims[1];
    s[0] = dims[2] * dims[3] * dims[1];
}

static cudnnDataType_t lf_dnn_type(int32_t dtype) {
    return dtype == LF_BF16 ? CUDNN_DATA_BFLOAT16 : dtype == LF_F16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
}

/* the operations of a conv graph; *ops gets them in order, returns their count */
static int lf_dnn_conv_ops(lf_dnn_build *b, const lf_dnn_key *k, cudnnBackendDescriptor_t ops[2]) {
    const int64_t Ho = (k->H + 2 * k->pad - k->kh) / k->stride + 1, Wo = (k->W + 2 * k->pad - k->kw) / k->stride + 1;
    const int64_t xd[4] = {k->N, k->C, k->H, k->W}, wd[4] = {k->K, k->C, k->kh, k->kw}, yd[4] = {k->N, k->K, Ho, Wo};
    const int64_t bd[4] = {1, k->K, 1, 1}, bs[4] = {k->K, 1, k->K, k->K};
    int64_t xs[4], ws[4], ys[4];
    lf_dnn_nhwc(xd, xs);
    lf_dnn_nhwc(wd, ws);
    lf_dnn_nhwc(yd, ys);
    const cudnnDataType_t io = lf_dnn_type(k->dtype), f32 = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t X = lf_dnn_tensor(b, UID_X, io, xd, xs, 0, 0, "tensor X");
    cudnnBackendDescriptor_t W = lf_dnn_tensor(b, UID_W, io, wd, ws, 0, 0, "tensor W");
    cudnnBackendDescriptor_t V = lf_dnn_tensor(b, UID_V, f32, yd, ys, 1, 0, "virtual conv output");
    cudnnBackendDescriptor_t Y = lf_dnn_tensor(b, UID_Y, lf_dnn_type(k->ytype), yd, ys, 0, 0, "tensor Y");
    cudnnBackendDescriptor_t B = k->bias ? lf_dnn_tensor(b, UID_B, f32, bd, bs, 0, 0, "tensor bias") : NULL;

    cudnnBackendDescriptor_t cv = lf_dnn_new(b, CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, "convolution");
    const int64_t sp = 2, one[2] = {1, 1}, st[2] = {k->stride, k->stride}, pd[2] = {k->pad, k->pad};
    const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    lf_dnn_set(b, cv, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32, "convolution");
    lf_dnn_set(b, cv, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode, "convolution");
    lf_dnn_set(b, cv, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &sp, "convolution");
    lf_dnn_set(b, cv, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, one, "convolution");
    lf_dnn_set(b, cv, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, st, "convolution");
    lf_dnn_set(b, cv, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, pd, "convolution");
    lf_dnn_set(b, cv, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, pd, "convolution");
    lf_dnn_fin(b, cv, "convolution");

    const float alpha = 1.0f, beta = 0.0f;
    cudnnBackendDescriptor_t op = lf_dnn_new(b, CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR, "conv fprop");
    lf_dnn_set(b, op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &X, "conv fprop");
    lf_dnn_set(b, op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &W, "conv fprop");
    lf_dnn_set(b, op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &V, "conv fprop");
    lf_dnn_set(b, op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cv,
               "conv fprop");
    lf_dnn_set(b, op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha, "conv fprop");
    lf_dnn_set(b, op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &beta, "conv fprop");
    lf_dnn_fin(b, op, "conv fprop");

    cudnnBackendDescriptor_t pw = lf_dnn_new(b, CUDNN_BACKEND_POINTWISE_DESCRIPTOR, "pointwise");
    const cudnnPointwiseMode_t pm = k->bias ? CUDNN_POINTWISE_ADD : CUDNN_POINTWISE_IDENTITY;
    lf_dnn_set(b, pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &pm, "pointwise");
    lf_dnn_set(b, pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &f32, "pointwise");
    lf_dnn_fin(b, pw, "pointwise");
    cudnnBackendDescriptor_t add = lf_dnn_new(b, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, "bias add");
    lf_dnn_set(b, add, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw, "bias add");
    lf_dnn_set(b, add, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &V, "bias add");
    if (B) lf_dnn_set(b, add, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &B, "bias add");
    lf_dnn_set(b, add, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &Y, "bias add");
    lf_dnn_fin(b, add, "bias add");
    ops[0] = op;
    ops[1] = add;
    return 2;
}

static int lf_dnn_sdpa_ops(lf_dnn_build *b, const lf_dnn_key *k, cudnnBackendDescriptor_t ops[2]) {
    const int64_t N = k->N, heads = k->C, Lq = k->H, Lk = k->W, d = k->K, HD = heads * d;
    const int64_t qd[4] = {N, heads, Lq, d}, qs[4] = {Lq * HD, d, HD, 1};
    const int64_t kd[4] = {N, heads, Lk, d}, ks[4] = {Lk * HD, d, HD, 1};
    const int64_t sd[4] = {1, 1, 1, 1};
    const cudnnDataType_t io = lf_dnn_type(k->dtype);
    cudnnBackendDescriptor_t Q = lf_dnn_tensor(b, UID_Q, io, qd, qs, 0, 0, "tensor Q");
    cudnnBackendDescriptor_t K = lf_dnn_tensor(b, UID_K, io, kd, ks, 0, 0, "tensor K");
    cudnnBackendDescriptor_t V = lf_dnn_tensor(b, UID_VV, io, kd, ks, 0, 0, "tensor V");
    cudnnBackendDescriptor_t O = lf_dnn_tensor(b, UID_O, io, qd, qs, 0, 0, "tensor O");
    cudnnBackendDescriptor_t S = lf_dnn_tensor(b, UID_SCALE, CUDNN_DATA_FLOAT, sd, sd, 0, 1, "tensor scale");
    cudnnBackendDescriptor_t op = lf_dnn_new(b, CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR, "sdpa fwd");
    lf_dnn_set(b, op, CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &Q, "sdpa fwd");
    lf_dnn_set(b, op, CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &K, "sdpa fwd");
    lf_dnn_set(b, op, CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &V, "sdpa fwd");
    lf_dnn_set(b, op, CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &O, "sdpa fwd");
    lf_dnn_set(b, op, CUDNN_ATTR_OPERATION_SDPA_FWD_SCALEDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &S, "sdpa fwd");
    lf_dnn_fin(b, op, "sdpa fwd");
    ops[0] = op;
    return 1;
}

/* graph, heuristics, the first engine config whose plan finalizes */
static void lf_dnn_build_plan(lf_dnn_build *b) {
    const lf_dnn_key *k = &b->p->key;
    cudnnBackendDescriptor_t ops[2] = {NULL, NULL};
    const int nops = k->kind == LF_DNN_CONV ? lf_dnn_conv_ops(b, k, ops) : lf_dnn_sdpa_ops(b, k, ops);
    cudnnBackendDescriptor_t g = lf_dnn_new(b, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "operation graph");
    lf_dnn_set(b, g, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, nops, ops, "operation graph");
    lf_dnn_set(b, g, LF_DNN_GRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &b->d->h, "operation graph");
    lf_dnn_fin(b, g, "operation graph");
    cudnnBackendDescriptor_t heur = lf_dnn_new(b, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, "engine heuristics");
    const cudnnBackendHeurMode_t hm = CUDNN_HEUR_MODE_INSTANT;
    lf_dnn_set(b, heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &g,
               "engine heuristics");
    lf_dnn_set(b, heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &hm, "engine heuristics");
    lf_dnn_fin(b, heur, "engine heuristics");
    int64_t ncfg = 0;
    if (b->failed) return;
    if (!lf_dnn_ok(b, cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0,
                                               &ncfg, NULL),
                   "cudnnBackendGetAttribute", "heuristics result count"))
        return;
    if (ncfg <= 0) {
        b->failed = 1;
        snprintf(b->p->why, sizeof b->p->why, "the engine heuristics found no engine for the graph");
        return;
    }
    if (ncfg > LF_DNN_MAX_CFG) ncfg = LF_DNN_MAX_CFG;
    cudnnBackendDescriptor_t cfg[LF_DNN_MAX_CFG];
    for (int64_t i = 0; i < ncfg; i++) cfg[i] = lf_dnn_new(b, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "engine config");
    int64_t got = 0;
    if (b->failed) return;
    if (!lf_dnn_ok(b, cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, ncfg,
                                               &got, cfg),
                   "cudnnBackendGetAttribute", "heuristics results"))
        return;
    char last[160] = "";
    for (int64_t i = 0; i < got && i < ncfg; i++) {
        cudnnBackendDescriptor_t plan = NULL;
        cudnnStatus_t e = cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan);
        const char *call = "cudnnBackendCreateDescriptor";
        if (e == CUDNN_STATUS_SUCCESS) {
            call = "cudnnBackendSetAttribute";
            e = cudnnBackendSetAttribute(plan, LF_DNN_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &b->d->h);
            if (e == CUDNN_STATUS_SUCCESS)
                e = cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                             CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg[i]);
            if (e == CUDNN_STATUS_SUCCESS) call = "cudnnBackendFinalize", e = cudnnBackendFinalize(plan);
            int64_t ws = 0, nws = 0;
            if (e == CUDNN_STATUS_SUCCESS)
                call = "cudnnBackendGetAttribute",
                e = cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &nws,
                                             &ws);
            if (e == CUDNN_STATUS_SUCCESS) {
                b->p->plan = plan;
                b->p->ws = ws > 0 ? (size_t)ws : 0;
                return;
            }
            cudnnBackendDestroyDescriptor(plan);
        }
        snprintf(last, sizeof last, "%s(execution plan, engine config %lld of %lld) failed: %s (cuDNN status %d)", call,
                 (long long)i + 1, (long long)got, cudnnGetErrorString(e), (int)e);
    }
    b->failed = 1;
    snprintf(b->p->why, sizeof b->p->why, "%s", got > 0 ? last : "the engine heuristics returned no engine config");
}

static void lf_dnn_describe(const lf_dnn_key *k, char *s, size_t cap) {
    if (k->kind == LF_DNN_CONV)
        snprintf(s, cap, "conv %s N%lld C%lld %lldx%lld -> K%lld k%lldx%lld s%lld p%lld%s", lf_dtype_name(k->dtype),
                 (long long)k->N, (long long)k->C, (long long)k->H, (long long)k->W, (long long)k->K, (long long)k->kh,
                 (long long)k->kw, (long long)k->stride, (long long)k->pad, k->bias ? " +bias" : "");
    else
        snprintf(s, cap, "sdpa %s N%lld heads%lld Lq%lld Lk%lld d%lld", lf_dtype_name(k->dtype), (long long)k->N,
                 (long long)k->C, (long long)k->H, (long long)k->W, (long long)k->K);
}

lf_status lf_dnn_plan_get(lf_dnn *d, const lf_dnn_key *key, const lf_dnn_plan **plan, const char **why) {
    *plan = NULL;
    *why = "";
    for (size_t i = 0; i < d->n; i++)
        if (!memcmp(&d->plans[i]->key, key, sizeof *key)) {
            *plan = d->plans[i]->plan ? d->plans[i] : NULL;
            *why = d->plans[i]->why;
            return LF_OK;
        }
    if (lf_grow(&d->plans, &d->cap, d->n + 1)) return lf_err(LF_ERR_NOMEM, "out of host memory");
    lf_dnn_plan *p = calloc(1, sizeof *p);
    if (!p) return lf_err(LF_ERR_NOMEM, "out of host memory");
    p->key = *key;
    lf_dnn_build b = {d, p, 0};
    lf_dnn_build_plan(&b);
    if (b.failed && p->plan) { /* not reached: a plan is only kept when nothing failed */
        cudnnBackendDestroyDescriptor(p->plan);
        p->plan = NULL;
    }
    d->plans[d->n++] = p;
    if (d->log) {
        char s[160];
        lf_dnn_describe(key, s, sizeof s);
        if (p->plan) fprintf(stderr, "lorafuse: cuDNN plan for %s: built, workspace %zu bytes\n", s, p->ws);
        else fprintf(stderr, "lorafuse: cuDNN plan for %s: refused (%s); the fallback path runs it\n", s, p->why);
    }
    *plan = p->plan ? p : NULL;
    *why = p->why;
    return LF_OK;
}

lf_status lf_dnn_execute(lf_dnn *d, const lf_dnn_plan *p, void *const t[4], float scale, void *ws) {
    int64_t uids[5];
    void *ptrs[5];
    int n = 0;
    float sc = scale;
    if (p->key.kind == LF_DNN_CONV) {
        const int64_t u[4] = {UID_X, UID_W, UID_B, UID_Y};
        for (int i = 0; i < 4; i++)
            if (i != 2 || p->key.bias) uids[n] = u[i], ptrs[n++] = t[i];
    } else {
        const int64_t u[4] = {UID_Q, UID_K, UID_VV, UID_O};
        for (int i = 0; i < 4; i++) uids[n] = u[i], ptrs[n++] = t[i];
        uids[n] = UID_SCALE, ptrs[n++] = &sc;
    }
    cudnnBackendDescriptor_t vp = NULL;
    const char *call = "cudnnBackendCreateDescriptor(variant pack)";
    cudnnStatus_t e = cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp);
    if (e == CUDNN_STATUS_SUCCESS) {
        call = "cudnnBackendSetAttribute(variant pack)";
        e = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
        if (e == CUDNN_STATUS_SUCCESS)
            e = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs);
        if (e == CUDNN_STATUS_SUCCESS)
            e = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws);
        if (e == CUDNN_STATUS_SUCCESS) call = "cudnnBackendFinalize(variant pack)", e = cudnnBackendFinalize(vp);
        if (e == CUDNN_STATUS_SUCCESS) call = "cudnnBackendExecute", e = cudnnBackendExecute(d->h, p->plan, vp);
        cudnnBackendDestroyDescriptor(vp);
    }
    return e == CUDNN_STATUS_SUCCESS ? LF_OK : lf_dnn_status(e, call);
}
#endif
