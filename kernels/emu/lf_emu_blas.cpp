/* lf_emu_blas.cpp: CPU stand-ins for the cuBLAS and cuSOLVER calls of host/cuda/device_cuda_svd.c and
 * host/cuda/compute_cuda.c, in the -DLF_CUDA_EMU=ON build (headers: kernels/emu/include/cublas_v2.h,
 * cusolverDn.h).
 *
 * Each implements the call's documented semantics, not what the caller hopes for: matrices are
 * column-major; cublasSgemm computes C (m, n) = alpha op(A) op(B) + beta C with op(A) (m, k) read as
 * A[i + j*lda] (transposed: A[j + i*lda]), and fails with CUBLAS_STATUS_INVALID_VALUE when a leading
 * dimension is below the rows of its stored matrix; every operand's extent (ld * (cols - 1) + rows
 * floats) must lie inside one device allocation, and host pointers for device operands are refused.
 * cublasSgemmStridedBatched: the same per batch at A + i*strideA (...), the whole span of all batches
 * in one allocation (batches may interleave, as heads of one row do); cublasGemmEx: typed operands
 * (f16/bf16 widened exactly, C rounded once into its type) with the CUBLAS_COMPUTE_32F combinations
 * of cuBLAS's table (A and B of one type, C f32 or that type; anything else
 * CUBLAS_STATUS_NOT_SUPPORTED). Every product accumulates in f32, one fused multiply-add per term
 * in k order (the hardware's kernels split k and add the parts in another order: the tests' bounds
 * cover f32 sums in any order).
 * cusolverDnSgesvdj (econ) returns S descending, U (m, p) and V (n, p) — V, not V^T — via LAPACK
 * sgesvd; geqrf / orgqr via LAPACK sgeqrf / sorgqr (same Householder representation); the
 * workspace must hold what the matching _bufferSize returned; info goes to device memory. Each call
 * is a device operation on the legacy stream (ordering, injection: lf_emu_device_op).
 */
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <lapacke.h>

#include <cublas_v2.h>
#include <cusolverDn.h>

#include "kernels/common/lf_half.h"
#include "kernels/emu/lf_emu.h"
#include "kernels/emu/lf_emu_typed.h"

struct lf_emu_cublas {
    cudaStream_t stream;
};
struct lf_emu_cusolver {
    int unused;
};
struct lf_emu_gesvdj {
    int unused;
};

namespace {

/* a column-major (rows, cols) operand with leading dimension ld, in device memory */
bool operand(const char *call, const char *what, const float *p, int rows, int cols, int ld) {
    if (rows <= 0 || cols <= 0) return true;
    size_t n = (size_t)ld * (size_t)(cols - 1) + (size_t)rows;
    return lf_emu_dev_range(call, what, p, n * sizeof(float)) != 0;
}

/* a GEMM operand: base pointer, element type, leading dimension, batch stride (elements) */
struct mat {
    const void *p;
    cudaDataType t;
    int ld;
    long long stride;
};

/* every batch's (rows, cols) extent of x inside one device allocation: the span from the lowest to
 * the highest element any batch touches (strides may be 0 or negative, as cuBLAS allows for inputs) */
bool operand_batched(const char *call, const char *what, const mat &x, int rows, int cols, int batch) {
    if (rows <= 0 || cols <= 0 || batch <= 0) return true;
    const long long ext = (long long)x.ld * (cols - 1) + rows, last = x.stride * (long long)(batch - 1);
    const long long lo = last < 0 ? last : 0, hi = (last > 0 ? last : 0) + ext;
    const char *base = static_cast<const char *>(x.p) + lo * (long long)lf_emu_type_size(x.t);
    return lf_emu_dev_range(call, what, base, (size_t)(hi - lo) * lf_emu_type_size(x.t)) != 0;
}

/* C_b (m, n) = alpha op(A_b) op(B_b) + beta C_b for b < batch, column-major, op(A) (m, k) read as
 * A[i + p*lda] (transposed: A[p + i*lda]); f32 accumulation by fmaf in k order, then alpha * acc
 * (+ beta * C), rounded into C's type; beta 0: C is not read (it may hold NaN). The argument checks cuBLAS documents come first
 * (CUBLAS_STATUS_INVALID_VALUE), then the operation (injection, ordering), then the operand ranges. */
cublasStatus_t gemm(const char *call, cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m,
                    int n, int k, float alpha, mat A, mat B, float beta, mat C, int batch) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
    const int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
    if (m < 0 || n < 0 || k < 0 || batch < 0 || A.ld < (ar > 1 ? ar : 1) || B.ld < (br > 1 ? br : 1) ||
        C.ld < (m > 1 ? m : 1) || transa > CUBLAS_OP_C || transb > CUBLAS_OP_C)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (lf_emu_device_op(call, h->stream) != 0) return CUBLAS_STATUS_EXECUTION_FAILED;
    if (!operand_batched(call, "A", A, ar, ac, batch) || !operand_batched(call, "B", B, br, bc, batch) ||
        !operand_batched(call, "C", C, m, n, batch))
        return CUBLAS_STATUS_EXECUTION_FAILED;
    for (int b = 0; b < batch; b++) {
        const long long oa = A.stride * b, ob = B.stride * b, oc = C.stride * b;
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                float acc = 0.0f;
                for (int p = 0; p < k; p++) {
                    const long long ia = ta ? p + (long long)i * A.ld : i + (long long)p * A.ld;
                    const long long ib = tb ? j + (long long)p * B.ld : p + (long long)j * B.ld;
                    acc = std::fmaf(lf_emu_load(A.p, A.t, (size_t)(oa + ia)), lf_emu_load(B.p, B.t, (size_t)(ob + ib)),
                                    acc);
                }
                const size_t ci = (size_t)(oc + i + (long long)j * C.ld);
                const float r = beta == 0.0f ? alpha * acc : std::fmaf(beta, lf_emu_load(C.p, C.t, ci), alpha * acc);
                lf_emu_store(const_cast<void *>(C.p), C.t, ci, r);
            }
    }
    return CUBLAS_STATUS_SUCCESS;
}

/* the workspace sizes the _bufferSize calls report (floats): what LAPACK asks for, plus slack */
int geqrf_lwork(int m, int n) { return (m > n ? m : n) * 64 + 64; }

} // namespace

extern "C" {

cublasStatus_t cublasCreate(cublasHandle_t *h) {
    if (lf_emu_device_op("cublasCreate", nullptr) != 0) return CUBLAS_STATUS_NOT_INITIALIZED;
    *h = new lf_emu_cublas{nullptr};
    lf_emu_handles(1);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t h) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete h;
    lf_emu_handles(-1);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->stream = s;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                           const float *alpha, const float *A, int lda, const float *B, int ldb, const float *beta,
                           float *C, int ldc) {
    return gemm("cublasSgemm", h, transa, transb, m, n, k, *alpha, mat{A, CUDA_R_32F, lda, 0},
                mat{B, CUDA_R_32F, ldb, 0}, *beta, mat{C, CUDA_R_32F, ldc, 0}, 1);
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m,
                                         int n, int k, const float *alpha, const float *A, int lda, long long strideA,
                                         const float *B, int ldb, long long strideB, const float *beta, float *C,
                                         int ldc, long long strideC, int batchCount) {
    return gemm("cublasSgemmStridedBatched", h, transa, transb, m, n, k, *alpha, mat{A, CUDA_R_32F, lda, strideA},
                mat{B, CUDA_R_32F, ldb, strideB}, *beta, mat{C, CUDA_R_32F, ldc, strideC}, batchCount);
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    /* the CUBLAS_COMPUTE_32F rows of cublasGemmEx's table of supported types (scale type f32) */
    const bool types_ok = Atype == Btype && (Ctype == CUDA_R_32F || Ctype == Atype) &&
                          (Atype == CUDA_R_32F || Atype == CUDA_R_16F || Atype == CUDA_R_16BF) &&
                          computeType == CUBLAS_COMPUTE_32F;
    if (!types_ok || algo != CUBLAS_GEMM_DEFAULT) return CUBLAS_STATUS_NOT_SUPPORTED;
    return gemm("cublasGemmEx", h, transa, transb, m, n, k, *static_cast<const float *>(alpha), mat{A, Atype, lda, 0},
                mat{B, Btype, ldb, 0}, *static_cast<const float *>(beta), mat{C, Ctype, ldc, 0}, 1);
}

cusolverStatus_t cusolverDnCreate(cusolverDnHandle_t *h) {
    if (lf_emu_device_op("cusolverDnCreate", nullptr) != 0) return CUSOLVER_STATUS_NOT_INITIALIZED;
    *h = new lf_emu_cusolver{0};
    lf_emu_handles(1);
    return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnDestroy(cusolverDnHandle_t h) {
    if (!h) return CUSOLVER_STATUS_NOT_INITIALIZED;
    delete h;
    lf_emu_handles(-1);
    return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnCreateGesvdjInfo(gesvdjInfo_t *info) {
    if (lf_emu_device_op("cusolverDnCreateGesvdjInfo", nullptr) != 0) return CUSOLVER_STATUS_ALLOC_FAILED;
    *info = new lf_emu_gesvdj{0};
    lf_emu_handles(1);
    return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnDestroyGesvdjInfo(gesvdjInfo_t info) {
    if (!info) return CUSOLVER_STATUS_INVALID_VALUE;
    delete info;
    lf_emu_handles(-1);
    return CUSOLVER_STATUS_SUCCESS;
}

static bool svd_args_ok(int m, int n, int lda, int ldu, int ldv, int econ, cusolverEigMode_t jobz) {
    return m >= 1 && n >= 1 && lda >= m && econ == 1 && jobz == CUSOLVER_EIG_MODE_VECTOR && ldu >= m && ldv >= n;
}

cusolverStatus_t cusolverDnSgesvdj_bufferSize(cusolverDnHandle_t h, cusolverEigMode_t jobz, int econ, int m, int n,
                                              const float *A, int lda, const float *S, const float *U, int ldu,
                                              const float *V, int ldv, int *lwork, gesvdjInfo_t params) {
    (void)A, (void)S, (void)U, (void)V;
    if (!h || !params) return CUSOLVER_STATUS_NOT_INITIALIZED;
    if (!svd_args_ok(m, n, lda, ldu, ldv, econ, jobz)) return CUSOLVER_STATUS_INVALID_VALUE;
    *lwork = (m > n ? m : n) * 8 + 64;
    return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnSgesvdj(cusolverDnHandle_t h, cusolverEigMode_t jobz, int econ, int m, int n, float *A,
                                   int lda, float *S, float *U, int ldu, float *V, int ldv, float *work, int lwork,
                                   int *info, gesvdjInfo_t params) {
    const char *call = "cusolverDnSgesvdj";
    if (!h || !params) return CUSOLVER_STATUS_NOT_INITIALIZED;
    if (!svd_args_ok(m, n, lda, ldu, ldv, econ, jobz) || lwork < (m > n ? m : n) * 8 + 64)
        return CUSOLVER_STATUS_INVALID_VALUE;
    const int p = m < n ? m : n;
    if (lf_emu_device_op(call, nullptr) != 0) return CUSOLVER_STATUS_EXECUTION_FAILED;
    if (!operand(call, "A", A, m, n, lda) || !operand(call, "S", S, p, 1, p) || !operand(call, "U", U, m, p, ldu) ||
        !operand(call, "V", V, n, p, ldv) || !operand(call, "work", work, lwork, 1, lwork) ||
        !lf_emu_dev_range(call, "info", info, sizeof(int)))
        return CUSOLVER_STATUS_EXECUTION_FAILED;
    std::vector<float> vt((size_t)p * (size_t)n), sup((size_t)p);
    const lapack_int r = LAPACKE_sgesvd(LAPACK_COL_MAJOR, 'S', 'S', m, n, A, lda, S, U, ldu, vt.data(), p, sup.data());
    for (int i = 0; i < n; i++) /* V (n, p) = (V^T)^T */
        for (int j = 0; j < p; j++) V[i + (size_t)j * ldv] = vt[j + (size_t)i * p];
    *info = r > 0 ? p + 1 : (int)r; /* > 0: no convergence, as gesvdj reports it */
    return r < 0 ? CUSOLVER_STATUS_INVALID_VALUE : CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnSgeqrf_bufferSize(cusolverDnHandle_t h, int m, int n, float *A, int lda, int *lwork) {
    (void)A;
    if (!h) return CUSOLVER_STATUS_NOT_INITIALIZED;
    if (m < 0 || n < 0 || lda < (m > 1 ? m : 1)) return CUSOLVER_STATUS_INVALID_VALUE;
    *lwork = geqrf_lwork(m, n);
    return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnSgeqrf(cusolverDnHandle_t h, int m, int n, float *A, int lda, float *tau, float *work,
                                  int lwork, int *info) {
    const char *call = "cusolverDnSgeqrf";
    if (!h) return CUSOLVER_STATUS_NOT_INITIALIZED;
    if (m < 0 || n < 0 || lda < (m > 1 ? m : 1) || lwork < geqrf_lwork(m, n)) return CUSOLVER_STATUS_INVALID_VALUE;
    if (lf_emu_device_op(call, nullptr) != 0) return CUSOLVER_STATUS_EXECUTION_FAILED;
    const int p = m < n ? m : n;
    if (!operand(call, "A", A, m, n, lda) || !operand(call, "tau", tau, p, 1, p) ||
        !operand(call, "work", work, lwork, 1, lwork) || !lf_emu_dev_range(call, "info", info, sizeof(int)))
        return CUSOLVER_STATUS_EXECUTION_FAILED;
    *info = (int)LAPACKE_sgeqrf(LAPACK_COL_MAJOR, m, n, A, lda, tau);
    return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnSorgqr_bufferSize(cusolverDnHandle_t h, int m, int n, int k, const float *A, int lda,
                                             const float *tau, int *lwork) {
    (void)A, (void)tau;
    if (!h) return CUSOLVER_STATUS_NOT_INITIALIZED;
    if (m < 0 || n < 0 || n > m || k < 0 || k > n || lda < (m > 1 ? m : 1)) return CUSOLVER_STATUS_INVALID_VALUE;
    *lwork = geqrf_lwork(m, n);
    return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnSorgqr(cusolverDnHandle_t h, int m, int n, int k, float *A, int lda, const float *tau,
                                  float *work, int lwork, int *info) {
    const char *call = "cusolverDnSorgqr";
    if (!h) return CUSOLVER_STATUS_NOT_INITIALIZED;
    if (m < 0 || n < 0 || n > m || k < 0 || k > n || lda < (m > 1 ? m : 1) || lwork < geqrf_lwork(m, n))
        return CUSOLVER_STATUS_INVALID_VALUE;
    if (lf_emu_device_op(call, nullptr) != 0) return CUSOLVER_STATUS_EXECUTION_FAILED;
    if (!operand(call, "A", A, m, n, lda) || !operand(call, "tau", tau, k, 1, k) ||
        !operand(call, "work", work, lwork, 1, lwork) || !lf_emu_dev_range(call, "info", info, sizeof(int)))
        return CUSOLVER_STATUS_EXECUTION_FAILED;
    *info = (int)LAPACKE_sorgqr(LAPACK_COL_MAJOR, m, n, k, A, lda, tau);
    return CUSOLVER_STATUS_SUCCESS;
}

} // extern "C"
