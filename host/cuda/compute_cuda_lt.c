/* compute_cuda_lt.c: the Linear layers of the CUDA compute backend through cuBLASLt (compute_cuda_lt.h).
 *
 * Row-major y (M, out) = x (M, in) · Wᵀ + b is, column-major, yᵀ (out, M) = W' (in, out)ᵀ · xᵀ (in, M) + b
 * per row of yᵀ: one cublasLtMatmul with
 *   A = W    layout (in, out, ld in) of W's type, TRANSA = T   -> op(A) (out, in) = m × k
 *   B = x    layout (in, M, ld in) of W's type,   TRANSB = N   -> op(B) (in, M)   = k × n
 *   C = D = y layout (out, M, ld out) f32, beta 0 (C is not read)
 *   CUBLAS_COMPUTE_32F, scale type f32 (alpha 1, beta 0 on the host), epilogue BIAS with the f32 bias of
 *   length out = rows of D (the bias's type is D's: cublasLt.h, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE),
 *   or DEFAULT without bias.
 * The matmul descriptor, the four layouts and the heuristic's first algo are made once per lf_lt_key
 * (a linear list: a model has tens of Linear shapes) and kept until close; the bias pointer is set on
 * the cached descriptor at every call (one thread per compute). The heuristic is asked for algos that
 * fit the LF_LT_WORKSPACE-byte workspace (allocated once at open) and work on 16-byte aligned
 * operands (the caller sends only such pointers). A shape whose descriptors or heuristic fail, or for
 * which the heuristic has no algo, is cached as refused with the call and status and never retried.
 * Without cuBLASLt (LF_HAVE_CUBLASLT 0) open answers unsupported.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute_cuda_lt.h"
#include "host/base/util.h"

#if !LF_HAVE_CUBLASLT
lf_status lf_lt_open(cudaStream_t stream, lf_lt **out) {
    (void)stream;
    *out = NULL;
    return lf_err(LF_ERR_UNSUPPORTED, "this build of lorafuse has no cuBLASLt");
}
void lf_lt_close(lf_lt *lt) { (void)lt; }
lf_status lf_lt_plan_get(lf_lt *lt, const lf_lt_key *key, const lf_lt_plan **plan, const char **why) {
    (void)lt, (void)key;
    *plan = NULL;
    *why = "no cuBLASLt in this build";
    return LF_OK;
}
size_t lf_lt_count(const lf_lt *lt) {
    (void)lt;
    return 0;
}
lf_status lf_lt_linear(lf_lt *lt, const lf_lt_plan *p, void *y, const void *x, const void *W, const void *b) {
    (void)lt, (void)p, (void)y, (void)x, (void)W, (void)b;
    return lf_err(LF_ERR_UNSUPPORTED, "this build of lorafuse has no cuBLASLt");
}
#else
#include <cublasLt.h>

struct lf_lt_plan {
    lf_lt_key key;
    cublasLtMatmulDesc_t desc; /* NULL: refused */
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulAlgo_t algo;
    size_t ws;
    char why[200];
};

struct lf_lt {
    cublasLtHandle_t h;
    cudaStream_t stream;
    void *ws;
    lf_lt_plan **plans;
    size_t n, cap;
    int log;
};

static lf_status lf_lt_status(cublasStatus_t e, const char *call) {
    return lf_err(e == CUBLAS_STATUS_ALLOC_FAILED ? LF_ERR_NOMEM : LF_ERR_DEVICE, "%s failed: cuBLAS status %d", call,
                  (int)e);
}

lf_status lf_lt_open(cudaStream_t stream, lf_lt **out) {
    *out = NULL;
    lf_lt *lt = calloc(1, sizeof *lt);
    if (!lt) return lf_err(LF_ERR_NOMEM, "out of host memory");
    lt->stream = stream;
    cublasStatus_t e = cublasLtCreate(&lt->h);
    if (e != CUBLAS_STATUS_SUCCESS) {
        lt->h = NULL;
        lf_lt_close(lt);
        return lf_lt_status(e, "cublasLtCreate");
    }
    cudaError_t ce = cudaMalloc(&lt->ws, LF_LT_WORKSPACE);
    if (ce != cudaSuccess) {
        lt->ws = NULL;
        lf_lt_close(lt);
        return lf_err(ce == cudaErrorMemoryAllocation ? LF_ERR_NOMEM : LF_ERR_DEVICE,
                      "cudaMalloc(cuBLASLt workspace, %d bytes) failed: %s (%s)", (int)LF_LT_WORKSPACE,
                      cudaGetErrorString(ce), cudaGetErrorName(ce));
    }
    const char *log = getenv("LF_CUDA_CUBLASLT_LOG");
    lt->log = log && log[0] == '1';
    *out = lt;
    return LF_OK;
}

static void lf_lt_plan_free(lf_lt_plan *p) {
    if (!p) return;
    if (p->d) cublasLtMatrixLayoutDestroy(p->d);
    if (p->b) cublasLtMatrixLayoutDestroy(p->b);
    if (p->a) cublasLtMatrixLayoutDestroy(p->a);
    if (p->desc) cublasLtMatmulDescDestroy(p->desc);
    free(p);
}

void lf_lt_close(lf_lt *lt) {
    if (!lt) return;
    for (size_t i = 0; i < lt->n; i++) lf_lt_plan_free(lt->plans[i]);
    free(lt->plans);
    if (lt->ws) cudaFree(lt->ws);
    if (lt->h) cublasLtDestroy(lt->h);
    free(lt);
}

size_t lf_lt_count(const lf_lt *lt) { return lt ? lt->n : 0; }

static cudaDataType lf_lt_type(int32_t dtype) {
    return dtype == LF_F16 ? CUDA_R_16F : dtype == LF_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

/* the first failing call of a build ends it and becomes the refusal's reason */
static int lf_lt_ok(lf_lt_plan *p, cublasStatus_t e, const char *call, const char *what) {
    if (p->why[0]) return 0;
    if (e == CUBLAS_STATUS_SUCCESS) return 1;
    snprintf(p->why, sizeof p->why, "%s(%s) failed: cuBLAS status %d", call, what, (int)e);
    return 0;
}

static void lf_lt_build(lf_lt *lt, lf_lt_plan *p) {
    const lf_lt_key *k = &p->key;
    const cudaDataType t = lf_lt_type(k->dtype), yt = lf_lt_type(k->ytype);
    const int32_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N, bias_type = yt;
    const uint32_t epi = k->bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT, align = LF_LT_ALIGN;
    const uint64_t max_ws = LF_LT_WORKSPACE;
    cublasLtMatmulDesc_t desc = NULL;
    if (!lf_lt_ok(p, cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate",
                  "matmul"))
        return;
    p->desc = desc;
    lf_lt_ok(p, cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta),
             "cublasLtMatmulDescSetAttribute", "TRANSA");
    lf_lt_ok(p, cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb),
             "cublasLtMatmulDescSetAttribute", "TRANSB");
    if (!p->why[0])
        lf_lt_ok(p, cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi),
                 "cublasLtMatmulDescSetAttribute", "EPILOGUE");
    /* the heuristic does not read the bias but takes its alignment from the pointer: until a call sets
     * the real one (resident, from cudaMalloc), the workspace stands in (256-byte aligned) */
    const void *bias_at = lt->ws;
    if (k->bias && !p->why[0])
        lf_lt_ok(p, cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
                                                   sizeof bias_type),
                 "cublasLtMatmulDescSetAttribute", "BIAS_DATA_TYPE");
    if (k->bias && !p->why[0])
        lf_lt_ok(p, cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias_at, sizeof bias_at),
                 "cublasLtMatmulDescSetAttribute", "BIAS_POINTER");
    if (p->why[0]) return;
    if (!lf_lt_ok(p, cublasLtMatrixLayoutCreate(&p->a, t, (uint64_t)k->in, (uint64_t)k->out, k->in),
                  "cublasLtMatrixLayoutCreate", "A = W") ||
        !lf_lt_ok(p, cublasLtMatrixLayoutCreate(&p->b, t, (uint64_t)k->in, (uint64_t)k->M, k->in),
                  "cublasLtMatrixLayoutCreate", "B = x") ||
        !lf_lt_ok(p, cublasLtMatrixLayoutCreate(&p->d, yt, (uint64_t)k->out, (uint64_t)k->M, k->out),
                  "cublasLtMatrixLayoutCreate", "C = D = y"))
        return;
    cublasLtMatmulPreference_t pref = NULL;
    if (!lf_lt_ok(p, cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate", "preference")) return;
    lf_lt_ok(p, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &max_ws,
                                                     sizeof max_ws),
             "cublasLtMatmulPreferenceSetAttribute", "MAX_WORKSPACE_BYTES");
    for (int i = CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES; i <= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES; i++)
        if (!p->why[0])
            lf_lt_ok(p, cublasLtMatmulPreferenceSetAttribute(pref, (cublasLtMatmulPreferenceAttributes_t)i, &align,
                                                             sizeof align),
                     "cublasLtMatmulPreferenceSetAttribute", "MIN_ALIGNMENT");
    cublasLtMatmulHeuristicResult_t r;
    int got = 0;
    memset(&r, 0, sizeof r);
    if (!p->why[0]) {
        const cublasStatus_t e =
            cublasLtMatmulAlgoGetHeuristic(lt->h, desc, p->a, p->b, p->d, p->d, pref, 1, &r, &got);
        if (e == CUBLAS_STATUS_SUCCESS && (got < 1 || r.state != CUBLAS_STATUS_SUCCESS))
            snprintf(p->why, sizeof p->why, "the heuristic found no algo for the shape");
        else lf_lt_ok(p, e, "cublasLtMatmulAlgoGetHeuristic", "1 algo");
    }
    cublasLtMatmulPreferenceDestroy(pref);
    if (p->why[0]) return;
    p->algo = r.algo;
    p->ws = r.workspaceSize;
}

lf_status lf_lt_plan_get(lf_lt *lt, const lf_lt_key *key, const lf_lt_plan **plan, const char **why) {
    *plan = NULL;
    *why = "";
    for (size_t i = 0; i < lt->n; i++)
        if (!memcmp(&lt->plans[i]->key, key, sizeof *key)) {
            *plan = lt->plans[i]->why[0] ? NULL : lt->plans[i];
            *why = lt->plans[i]->why;
            return LF_OK;
        }
    if (lf_grow(&lt->plans, &lt->cap, lt->n + 1)) return lf_err(LF_ERR_NOMEM, "out of host memory");
    lf_lt_plan *p = calloc(1, sizeof *p);
    if (!p) return lf_err(LF_ERR_NOMEM, "out of host memory");
    p->key = *key;
    lf_lt_build(lt, p);
    lt->plans[lt->n++] = p;
    if (lt->log) {
        const char *dt = lf_dtype_name((lf_dtype)key->dtype);
        if (p->why[0])
            fprintf(stderr, "lorafuse: cuBLASLt plan for linear %s M%lld in%lld out%lld%s: refused (%s); cuBLAS runs it\n",
                    dt, (long long)key->M, (long long)key->in, (long long)key->out, key->bias ? " +bias" : "", p->why);
        else
            fprintf(stderr, "lorafuse: cuBLASLt plan for linear %s M%lld in%lld out%lld%s: built, workspace %zu bytes\n",
                    dt, (long long)key->M, (long long)key->in, (long long)key->out, key->bias ? " +bias" : "", p->ws);
    }
    *plan = p->why[0] ? NULL : p;
    *why = p->why;
    return LF_OK;
}

lf_status lf_lt_linear(lf_lt *lt, const lf_lt_plan *p, void *y, const void *x, const void *W, const void *b) {
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t e = CUBLAS_STATUS_SUCCESS;
    if (p->key.bias) {
        e = cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &b, sizeof b);
        if (e != CUBLAS_STATUS_SUCCESS) return lf_lt_status(e, "cublasLtMatmulDescSetAttribute(BIAS_POINTER)");
    }
    e = cublasLtMatmul(lt->h, p->desc, &one, W, p->a, x, p->b, &zero, y, p->d, y, p->d, &p->algo, lt->ws,
                       LF_LT_WORKSPACE, lt->stream);
    return e == CUBLAS_STATUS_SUCCESS ? LF_OK : lf_lt_status(e, "cublasLtMatmul");
}
#endif
