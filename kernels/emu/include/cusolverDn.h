/* cusolverDn.h (emulation): the cuSOLVER subset host/cuda/device_cuda_svd.c calls (gesvdj, geqrf,
 * orgqr and their buffer sizes), for the -DLF_CUDA_EMU=ON build; served on the CPU by
 * kernels/emu/lf_emu_blas.cpp through LAPACK (sgesvd, sgeqrf, sorgqr) with cuSOLVER's documented
 * semantics: column-major, gesvdj returns V (not V^T) and with econ U (m, p), V (n, p); leading
 * dimensions checked; workspace at least the size its _bufferSize gave; info written to device memory.
 */
#ifndef LF_EMU_CUSOLVERDN_H
#define LF_EMU_CUSOLVERDN_H

#include "cuda_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CUSOLVER_STATUS_SUCCESS = 0,
    CUSOLVER_STATUS_NOT_INITIALIZED = 1,
    CUSOLVER_STATUS_ALLOC_FAILED = 2,
    CUSOLVER_STATUS_INVALID_VALUE = 3,
    CUSOLVER_STATUS_EXECUTION_FAILED = 6
} cusolverStatus_t;
typedef enum { CUSOLVER_EIG_MODE_NOVECTOR = 0, CUSOLVER_EIG_MODE_VECTOR = 1 } cusolverEigMode_t;
typedef struct lf_emu_cusolver *cusolverDnHandle_t;
typedef struct lf_emu_gesvdj *gesvdjInfo_t;

cusolverStatus_t cusolverDnCreate(cusolverDnHandle_t *h);
cusolverStatus_t cusolverDnDestroy(cusolverDnHandle_t h);
cusolverStatus_t cusolverDnCreateGesvdjInfo(gesvdjInfo_t *info);
cusolverStatus_t cusolverDnDestroyGesvdjInfo(gesvdjInfo_t info);
cusolverStatus_t cusolverDnSgesvdj_bufferSize(cusolverDnHandle_t h, cusolverEigMode_t jobz, int econ, int m, int n,
                                              const float *A, int lda, const float *S, const float *U, int ldu,
                                              const float *V, int ldv, int *lwork, gesvdjInfo_t params);
cusolverStatus_t cusolverDnSgesvdj(cusolverDnHandle_t h, cusolverEigMode_t jobz, int econ, int m, int n, float *A,
                                   int lda, float *S, float *U, int ldu, float *V, int ldv, float *work, int lwork,
                                   int *info, gesvdjInfo_t params);
cusolverStatus_t cusolverDnSgeqrf_bufferSize(cusolverDnHandle_t h, int m, int n, float *A, int lda, int *lwork);
cusolverStatus_t cusolverDnSgeqrf(cusolverDnHandle_t h, int m, int n, float *A, int lda, float *tau, float *work,
                                  int lwork, int *info);
cusolverStatus_t cusolverDnSorgqr_bufferSize(cusolverDnHandle_t h, int m, int n, int k, const float *A, int lda,
                                             const float *tau, int *lwork);
cusolverStatus_t cusolverDnSorgqr(cusolverDnHandle_t h, int m, int n, int k, float *A, int lda, const float *tau,
                                  float *work, int lwork, int *info);

#ifdef __cplusplus
}
#endif
#endif
