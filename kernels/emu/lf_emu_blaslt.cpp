/* lf_emu_blaslt.cpp: a CPU stand-in for the cuBLASLt calls of host/cuda/compute_cuda_lt.c (header
 * kernels/emu/include/cublasLt.h), in the -DLF_CUDA_EMU=ON build, following the documented semantics:
 *   - layouts are column-major (rows, cols, ld); cublasLtMatmul takes m, n from D, op(A) = A or Aᵀ per
 *     CUBLASLT_MATMUL_DESC_TRANSA must be (m, k), op(B) (k, n), C (m, n) like D, ld >= rows for every
 *     matrix, else CUBLAS_STATUS_INVALID_VALUE (TRANSC must stay N).
 *   - types with CUBLAS_COMPUTE_32F and scale type CUDA_R_32F (cublasLtMatmul's table): A and B of one
 *     type (32F, 16F, 16BF), C and D of one type, 32F or that of A; else CUBLAS_STATUS_NOT_SUPPORTED.
 *   - epilogues DEFAULT and BIAS only (the stand-in runs no others: NOT_SUPPORTED); BIAS needs the bias
 *     pointer, a packed vector of D's row count m in device memory, of D's type (the bias data type's
 *     default, -1, means D's type), added to every column after alpha·op(A)op(B) + beta·C.
 *   - the heuristic returns one algo (none with LF_EMU_CUBLASLT_REFUSE=1: the caller's fallback), its
 *     workspace min(64 KiB, the preference's maximum) and the preference's minimum alignments; at
 *     cublasLtMatmul the algo must come from a heuristic, workspaceSizeInBytes must cover its workspace
 *     and the workspace pointer that much device memory (overwritten with junk), A/B/C/D must be aligned
 *     as the algo was chosen for; every operand's extent lies in one device allocation.
 *   - products: f32 accumulation, one fmaf per term in k order, then alpha·acc (+ beta·C), + bias, each
 *     one f32 operation, rounded once into D's type; beta 0: C is not read.
 * Fallible calls (injection, lf_emu.h): cublasLtCreate, the descriptor/layout/preference creates and the
 * heuristic (host side, lf_emu_inject), cublasLtMatmul (a device operation on its stream). The handle,
 * descriptors, layouts and preferences are library handles: any left at exit is a leak.
 */
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>

#include <cublasLt.h>

#include "kernels/common/lf_half.h"
#include "kernels/emu/lf_emu.h"
#include "kernels/emu/lf_emu_typed.h"

struct cublasLtContext {
    int unused;
};
struct lf_emu_lt_layout {
    cudaDataType t;
    uint64_t rows, cols;
    int64_t ld;
};
struct lf_emu_lt_desc {
    cublasComputeType_t compute;
    cudaDataType scale;
    int32_t transa, transb, transc, bias_type;
    uint32_t epilogue;
    const void *bias;
};
struct lf_emu_lt_pref {
    uint64_t max_ws;
    uint32_t align[4]; /* A, B, C, D */
};

namespace {

const uint64_t ALGO_MAGIC = 0x4c46454d554c5431ull; /* "LFEMULT1" */
const size_t ALGO_WS = (size_t)64 << 10;

std::set<const void *> &live() {
    static std::set<const void *> s;
    return s;
}

template <class T> cublasStatus_t make(T **out, const T &v, const char *call) {
    if (!out) return CUBLAS_STATUS_INVALID_VALUE;
    if (lf_emu_inject(call)) return CUBLAS_STATUS_ALLOC_FAILED;
    *out = new T(v);
    live().insert(*out);
    lf_emu_handles(1);
    return CUBLAS_STATUS_SUCCESS;
}
template <class T> cublasStatus_t drop(T *p) {
    if (!p || !live().erase(p)) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete p;
    lf_emu_handles(-1);
    return CUBLAS_STATUS_SUCCESS;
}
template <class T> bool ok(const T *p) { return p && live().count(p); }

bool known(cudaDataType t) { return t == CUDA_R_32F || t == CUDA_R_16F || t == CUDA_R_16BF; }

/* the shape and type rules shared by the heuristic and the matmul; k gets the inner size */
cublasStatus_t check(const lf_emu_lt_desc *d, const lf_emu_lt_layout *A, const lf_emu_lt_layout *B,
                     const lf_emu_lt_layout *C, const lf_emu_lt_layout *D, uint64_t *k) {
    if (!ok(d) || !ok(A) || !ok(B) || !ok(C) || !ok(D)) return CUBLAS_STATUS_NOT_INITIALIZED;
    const uint64_t m = D->rows, n = D->cols;
    const uint64_t ar = d->transa ? A->cols : A->rows, ac = d->transa ? A->rows : A->cols;
    const uint64_t br = d->transb ? B->cols : B->rows, bc = d->transb ? B->rows : B->cols;
    if (ar != m || bc != n || ac != br || C->rows != m || C->cols != n || d->transc != CUBLAS_OP_N)
        return CUBLAS_STATUS_INVALID_VALUE;
    for (const lf_emu_lt_layout *x : {A, B, C, D})
        if (x->ld < (int64_t)(x->rows > 1 ? x->rows : 1)) return CUBLAS_STATUS_INVALID_VALUE;
    if (d->compute != CUBLAS_COMPUTE_32F || d->scale != CUDA_R_32F || A->t != B->t || C->t != D->t ||
        (D->t != CUDA_R_32F && D->t != A->t))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (d->epilogue != CUBLASLT_EPILOGUE_DEFAULT && d->epilogue != CUBLASLT_EPILOGUE_BIAS)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (d->epilogue == CUBLASLT_EPILOGUE_BIAS && d->bias_type != -1 && d->bias_type != (int32_t)D->t)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    *k = ac;
    return CUBLAS_STATUS_SUCCESS;
}

/* a column-major (rows, cols, ld) operand of type t in one device allocation, aligned to align bytes */
bool operand(const char *what, const void *p, const lf_emu_lt_layout *x, uint32_t align) {
    if (align > 1 && (uintptr_t)p % align) {
        std::fprintf(stderr, "lf_emu: cublasLtMatmul: %s %p is not aligned to the %u bytes its algo was chosen for\n",
                     what, p, align);
        return false;
    }
    if (!x->rows || !x->cols) return true;
    const size_t n = (size_t)x->ld * (size_t)(x->cols - 1) + (size_t)x->rows;
    return lf_emu_dev_range("cublasLtMatmul", what, p, n * lf_emu_type_size(x->t)) != 0;
}

} // namespace

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) { return make(h, cublasLtContext{0}, "cublasLtCreate"); }
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) { return drop(h); }

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType type, uint64_t rows, uint64_t cols,
                                          int64_t ld) {
    if (!known(type)) return CUBLAS_STATUS_NOT_SUPPORTED;
    return make(l, lf_emu_lt_layout{type, rows, cols, ld}, "cublasLtMatrixLayoutCreate");
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) { return drop(l); }

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t computeType,
                                        cudaDataType scaleType) {
    return make(d, lf_emu_lt_desc{computeType, scaleType, 0, 0, 0, -1, CUBLASLT_EPILOGUE_DEFAULT, nullptr},
                "cublasLtMatmulDescCreate");
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) { return drop(d); }

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t size) {
    if (!ok(d)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!buf) return CUBLAS_STATUS_INVALID_VALUE;
    int32_t *i32 = nullptr;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA: i32 = &d->transa; break;
    case CUBLASLT_MATMUL_DESC_TRANSB: i32 = &d->transb; break;
    case CUBLASLT_MATMUL_DESC_TRANSC: i32 = &d->transc; break;
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: i32 = &d->bias_type; break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
        if (size != sizeof(uint32_t)) return CUBLAS_STATUS_INVALID_VALUE;
        std::memcpy(&d->epilogue, buf, size);
        return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
        if (size != sizeof(void *)) return CUBLAS_STATUS_INVALID_VALUE;
        std::memcpy(&d->bias, buf, size);
        return CUBLAS_STATUS_SUCCESS;
    default: return CUBLAS_STATUS_NOT_SUPPORTED; /* attributes the stand-in does not model */
    }
    if (size != sizeof(int32_t)) return CUBLAS_STATUS_INVALID_VALUE;
    std::memcpy(i32, buf, size);
    if ((attr == CUBLASLT_MATMUL_DESC_TRANSA || attr == CUBLASLT_MATMUL_DESC_TRANSB ||
         attr == CUBLASLT_MATMUL_DESC_TRANSC) && (*i32 < CUBLAS_OP_N || *i32 > CUBLAS_OP_C))
        return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) {
    return make(p, lf_emu_lt_pref{0, {256, 256, 256, 256}}, "cublasLtMatmulPreferenceCreate");
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) { return drop(p); }
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
                                                    size_t size) {
    if (!ok(p)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!buf) return CUBLAS_STATUS_INVALID_VALUE;
    if (attr == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) {
        if (size != sizeof(uint64_t)) return CUBLAS_STATUS_INVALID_VALUE;
        std::memcpy(&p->max_ws, buf, size);
        return CUBLAS_STATUS_SUCCESS;
    }
    if (attr >= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES && attr <= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES) {
        if (size != sizeof(uint32_t)) return CUBLAS_STATUS_INVALID_VALUE;
        std::memcpy(&p->align[attr - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES], buf, size);
        return CUBLAS_STATUS_SUCCESS;
    }
    return CUBLAS_STATUS_NOT_SUPPORTED;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t A,
                                              cublasLtMatrixLayout_t B, cublasLtMatrixLayout_t C,
                                              cublasLtMatrixLayout_t D, cublasLtMatmulPreference_t p, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int *returned) {
    if (!ok(h) || !ok(p)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (requested <= 0 || !results || !returned) return CUBLAS_STATUS_INVALID_VALUE;
    *returned = 0;
    uint64_t k = 0;
    cublasStatus_t e = check(d, A, B, C, D, &k);
    if (e != CUBLAS_STATUS_SUCCESS) return e;
    if (lf_emu_inject("cublasLtMatmulAlgoGetHeuristic")) return CUBLAS_STATUS_ALLOC_FAILED;
    const char *refuse = std::getenv("LF_EMU_CUBLASLT_REFUSE");
    if (refuse && refuse[0] == '1') return CUBLAS_STATUS_NOT_SUPPORTED; /* "no algo": the documented status */
    std::memset(&results[0], 0, sizeof results[0]);
    results[0].algo.data[0] = ALGO_MAGIC;
    results[0].workspaceSize = p->max_ws < ALGO_WS ? (size_t)p->max_ws : ALGO_WS;
    results[0].algo.data[1] = results[0].workspaceSize;
    for (int i = 0; i < 4; i++) results[0].algo.data[2 + i] = p->align[i];
    results[0].state = CUBLAS_STATUS_SUCCESS;
    results[0].wavesCount = 1.0f;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha, const void *Ap,
                              cublasLtMatrixLayout_t A, const void *Bp, cublasLtMatrixLayout_t B, const void *beta,
                              const void *Cp, cublasLtMatrixLayout_t C, void *Dp, cublasLtMatrixLayout_t D,
                              const cublasLtMatmulAlgo_t *algo, void *ws, size_t ws_bytes, cudaStream_t stream) {
    if (!ok(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
    uint64_t k = 0;
    cublasStatus_t e = check(d, A, B, C, D, &k);
    if (e != CUBLAS_STATUS_SUCCESS) return e;
    if (!alpha || !beta || !algo || algo->data[0] != ALGO_MAGIC || ws_bytes < algo->data[1] ||
        (ws_bytes && !ws) || (d->epilogue == CUBLASLT_EPILOGUE_BIAS && !d->bias))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (lf_emu_device_op("cublasLtMatmul", stream) != 0) return CUBLAS_STATUS_EXECUTION_FAILED;
    const float al = *static_cast<const float *>(alpha), be = *static_cast<const float *>(beta);
    const uint64_t m = D->rows, n = D->cols;
    if (!operand("A", Ap, A, (uint32_t)algo->data[2]) || !operand("B", Bp, B, (uint32_t)algo->data[3]) ||
        (be != 0.0f && !operand("C", Cp, C, (uint32_t)algo->data[4])) ||
        !operand("D", Dp, D, (uint32_t)algo->data[5]) ||
        (ws_bytes && !lf_emu_dev_range("cublasLtMatmul", "workspace", ws, ws_bytes)) ||
        (d->epilogue == CUBLASLT_EPILOGUE_BIAS && m &&
         !lf_emu_dev_range("cublasLtMatmul", "bias", d->bias, m * lf_emu_type_size(D->t))))
        return CUBLAS_STATUS_EXECUTION_FAILED;
    if (algo->data[1]) std::memset(ws, 0xA7, (size_t)algo->data[1]);
    for (uint64_t j = 0; j < n; j++)
        for (uint64_t i = 0; i < m; i++) {
            float acc = 0.0f;
            for (uint64_t p = 0; p < k; p++) {
                const uint64_t ia = d->transa ? p + i * (uint64_t)A->ld : i + p * (uint64_t)A->ld;
                const uint64_t ib = d->transb ? j + p * (uint64_t)B->ld : p + j * (uint64_t)B->ld;
                acc = std::fmaf(lf_emu_load(Ap, A->t, ia), lf_emu_load(Bp, B->t, ib), acc);
            }
            float r = al * acc;
            if (be != 0.0f) r = std::fmaf(be, lf_emu_load(Cp, C->t, i + j * (uint64_t)C->ld), r);
            if (d->epilogue == CUBLASLT_EPILOGUE_BIAS) r += lf_emu_load(d->bias, D->t, i);
            lf_emu_store(Dp, D->t, i + j * (uint64_t)D->ld, r);
        }
    return CUBLAS_STATUS_SUCCESS;
}

} // extern "C"
