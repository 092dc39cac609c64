/* cublas_v2.h (emulation): the cuBLAS subset host/cuda/ calls (device_cuda_svd.c: cublasSgemm), for
 * the -DLF_CUDA_EMU=ON build; served on the CPU by kernels/emu/lf_emu_blas.cpp with the documented
 * semantics (column-major, op(A) per transa, leading dimensions checked against the shapes, every
 * operand range inside one device allocation), so a wrong transpose or ld fails. Values: CUDA 12/13.
 */
#ifndef LF_EMU_CUBLAS_V2_H
#define LF_EMU_CUBLAS_V2_H

#include "cuda_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_EXECUTION_FAILED = 13
} cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 } cublasOperation_t;
typedef struct lf_emu_cublas *cublasHandle_t;

cublasStatus_t cublasCreate(cublasHandle_t *h);
cublasStatus_t cublasDestroy(cublasHandle_t h);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
/* C (m, n) = alpha op(A) op(B) + beta C, column-major; op(A) (m, k), op(B) (k, n); host scalars */
cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                           const float *alpha, const float *A, int lda, const float *B, int ldb, const float *beta,
                           float *C, int ldc);

#ifdef __cplusplus
}
#endif
#endif
