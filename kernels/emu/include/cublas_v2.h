/* cublas_v2.h (emulation): the cuBLAS subset host/cuda/ calls (device_cuda_svd.c: cublasSgemm;
 * compute_cuda.c: cublasSgemm, cublasGemmEx, cublasSgemmStridedBatched), for the -DLF_CUDA_EMU=ON build; served on the CPU by kernels/emu/lf_emu_blas.cpp with the documented
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
    CUBLAS_STATUS_EXECUTION_FAILED = 13,
    CUBLAS_STATUS_NOT_SUPPORTED = 15
} cublasStatus_t;
/* library_types.h: the data types of cublasGemmEx's operands (values of the real header) */
typedef enum cudaDataType_t { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 } cudaDataType;
typedef enum { CUBLAS_COMPUTE_32F = 68 } cublasComputeType_t;
typedef enum { CUBLAS_GEMM_DEFAULT = -1 } cublasGemmAlgo_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 } cublasOperation_t;
typedef struct lf_emu_cublas *cublasHandle_t;

cublasStatus_t cublasCreate(cublasHandle_t *h);
cublasStatus_t cublasDestroy(cublasHandle_t h);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
/* C (m, n) = alpha op(A) op(B) + beta C, column-major; op(A) (m, k), op(B) (k, n); host scalars */
cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                           const float *alpha, const float *A, int lda, const float *B, int ldb, const float *beta,
                           float *C, int ldc);
/* cublasSgemm on batchCount matrices: A_i = A + i*strideA (elements), likewise B_i, C_i */
cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m,
                                         int n, int k, const float *alpha, const float *A, int lda, long long strideA,
                                         const float *B, int ldb, long long strideB, const float *beta, float *C,
                                         int ldc, long long strideC, int batchCount);
/* C = alpha op(A) op(B) + beta C with typed operands; with CUBLAS_COMPUTE_32F: A and B both CUDA_R_32F,
 * CUDA_R_16F or CUDA_R_16BF, C CUDA_R_32F or the type of A, alpha/beta host floats */
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t algo);

#ifdef __cplusplus
}
#endif
#endif
