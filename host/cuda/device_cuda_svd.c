/* device_cuda_svd.c: lf_dev_svd (lf_device.h), the device twin of kernels/cpu/linalg/svd.c.
 *
 * The row-major A (m, n) on the host is the column-major A^T (n, m) with leading dimension n on the
 * device, as on the CPU path:
 *   exact       cusolverDnSgesvdj(econ) on A^T = U' S V'^T: U' (n, p) column-major is Vt (p, n) of A
 *               row-major, copied as is; V' (m, p) column-major is U of A, transposed on the host.
 *   randomized  Omega^T (l, n) row-major = Omega (n, l) column-major from lf_svd_gaussian (the CPU's
 *               test matrix); Y (m, l) = A Omega = (A^T)^T Omega, then q times Z (n, l) = A^T Q and
 *               Y = A Z, each followed by geqrf + orgqr; B^T (n, l) = A^T Q column-major, which is B
 *               (l, n) row-major; Q (m, l) column-major is Qt (l, m) row-major; both go to the host for
 *               lf_svd_from_range (B's SVD, U = Q Ub), the CPU path's last step.
 * Handles are made per call: the SVD of one module dwarfs their setup. Built without cuSOLVER/cuBLAS
 * (LF_HAVE_CUSOLVER 0: a toolkit without them), lf_dev_svd answers LF_ERR_UNSUPPORTED.
 */
#include <stdlib.h>
#include <string.h>

#include "device_internal.h"

#if !LF_HAVE_CUSOLVER
lf_status lf_dev_svd(lf_device *dev, const float *a, int64_t m, int64_t n, int64_t l, int q, uint64_t seed,
                     double *s, float *u, float *vt) {
    (void)dev, (void)a, (void)m, (void)n, (void)l, (void)q, (void)seed, (void)s, (void)u, (void)vt;
    return lf_err(LF_ERR_UNSUPPORTED, "this build of lorafuse found no cuSOLVER / cuBLAS for the device SVD");
}
#else
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include "kernels/cpu/linalg/lf_svd.h"

#define LF_CS(call)                                                                                    \
    do {                                                                                               \
        cusolverStatus_t s_ = (call);                                                                  \
        if (s_ != CUSOLVER_STATUS_SUCCESS) {                                                           \
            st = lf_err(LF_ERR_DEVICE, "%s failed: cuSOLVER status %d [%s:%d]", #call, (int)s_, __FILE__, \
                        __LINE__);                                                                     \
            goto fail;                                                                                 \
        }                                                                                              \
    } while (0)

/* The devInfo of the last cuSOLVER call: 0, or what it means. */
static lf_status lf_cs_info(const int *d_info, const char *what, int64_t m, int64_t n) {
    int info = 0;
    cudaError_t e = cudaMemcpy(&info, d_info, sizeof info, cudaMemcpyDeviceToHost);
    if (e != cudaSuccess) return lf_cu_err(e, "cudaMemcpy(&info, d_info)", NULL, __FILE__, __LINE__);
    if (info == 0) return LF_OK;
    if (info > 0)
        return lf_err(LF_ERR_NONFINITE, "svd: %s did not converge on a (%lld, %lld) matrix (info %d)", what,
                      (long long)m, (long long)n, info);
    return lf_err(LF_ERR_ARG, "svd: %s rejected argument %d for a (%lld, %lld) matrix", what, -info, (long long)m,
                  (long long)n);
}

static lf_status lf_dev_svd_exact(cusolverDnHandle_t h, const float *d_at, int64_t m, int64_t n, double *s, float *u,
                                  float *vt) {
    lf_status st = LF_OK;
    const int M = (int)n, N = (int)m, P = (int)(m < n ? m : n); /* the column-major A^T is (n, m) */
    float *d_a = NULL, *d_s = NULL, *d_u = NULL, *d_v = NULL, *d_work = NULL, *hs = NULL, *hv = NULL;
    int *d_info = NULL, lwork = 0;
    gesvdjInfo_t params = NULL;
    LF_CS(cusolverDnCreateGesvdjInfo(&params));
    LF_CU(cudaMalloc((void **)&d_a, sizeof(float) * (size_t)M * (size_t)N), NULL);
    LF_CU(cudaMemcpy(d_a, d_at, sizeof(float) * (size_t)M * (size_t)N, cudaMemcpyDeviceToDevice), NULL);
    LF_CU(cudaMalloc((void **)&d_s, sizeof(float) * (size_t)P), NULL);
    LF_CU(cudaMalloc((void **)&d_u, sizeof(float) * (size_t)M * (size_t)P), NULL);
    LF_CU(cudaMalloc((void **)&d_v, sizeof(float) * (size_t)N * (size_t)P), NULL);
    LF_CU(cudaMalloc((void **)&d_info, sizeof(int)), NULL);
    LF_CS(cusolverDnSgesvdj_bufferSize(h, CUSOLVER_EIG_MODE_VECTOR, 1, M, N, d_a, M, d_s, d_u, M, d_v, N, &lwork,
                                       params));
    LF_CU(cudaMalloc((void **)&d_work, sizeof(float) * (size_t)(lwork > 0 ? lwork : 1)), NULL);
    LF_CS(cusolverDnSgesvdj(h, CUSOLVER_EIG_MODE_VECTOR, 1, M, N, d_a, M, d_s, d_u, M, d_v, N, d_work, lwork, d_info,
                            params));
    LF_TRY(lf_cs_info(d_info, "gesvdj", m, n));
    hs = malloc(sizeof *hs * (size_t)P);
    hv = malloc(sizeof *hv * (size_t)N * (size_t)P);
    if (!hs || !hv) LF_TRY(lf_err(LF_ERR_NOMEM, "svd: out of memory for a (%lld, %lld) matrix", (long long)m,
                                  (long long)n));
    LF_CU(cudaMemcpy(hs, d_s, sizeof(float) * (size_t)P, cudaMemcpyDeviceToHost), NULL);
    LF_CU(cudaMemcpy(vt, d_u, sizeof(float) * (size_t)M * (size_t)P, cudaMemcpyDeviceToHost), NULL);
    LF_CU(cudaMemcpy(hv, d_v, sizeof(float) * (size_t)N * (size_t)P, cudaMemcpyDeviceToHost), NULL);
    for (int j = 0; j < P; j++) s[j] = hs[j];
    for (int64_t i = 0; i < m; i++) /* U (m, p) row-major from V' (m, p) column-major */
        for (int j = 0; j < P; j++) u[i * P + j] = hv[i + (int64_t)j * m];
fail:
    free(hs);
    free(hv);
    cudaFree(d_a);
    cudaFree(d_s);
    cudaFree(d_u);
    cudaFree(d_v);
    cudaFree(d_work);
    cudaFree(d_info);
    if (params) cusolverDnDestroyGesvdjInfo(params);
    return st;
}

/* Orthonormalise the l columns of the column-major (rows, l) block x in place. */
static lf_status lf_dev_orth(cusolverDnHandle_t h, float *x, int rows, int l, float *d_tau, float *d_work, int lwork,
                             int *d_info) {
    lf_status st = LF_OK;
    LF_CS(cusolverDnSgeqrf(h, rows, l, x, rows, d_tau, d_work, lwork, d_info));
    LF_TRY(lf_cs_info(d_info, "geqrf", rows, l));
    LF_CS(cusolverDnSorgqr(h, rows, l, l, x, rows, d_tau, d_work, lwork, d_info));
    LF_TRY(lf_cs_info(d_info, "orgqr", rows, l));
fail:
    return st;
}

static lf_status lf_dev_svd_randomized(cusolverDnHandle_t h, cublasHandle_t hb, const float *d_at, int64_t m,
                                       int64_t n, int64_t l, int q, uint64_t seed, double *s, float *u, float *vt) {
    lf_status st = LF_OK;
    const int M = (int)m, N = (int)n, L = (int)l;
    const float one = 1.0f, zero = 0.0f;
    float *h_om = malloc(sizeof(float) * (size_t)N * (size_t)L), *h_b = malloc(sizeof(float) * (size_t)N * (size_t)L),
          *h_qt = malloc(sizeof(float) * (size_t)M * (size_t)L);
    float *d_om = NULL, *d_y = NULL, *d_z = NULL, *d_tau = NULL, *d_work = NULL;
    int *d_info = NULL, lwork = 0, lw;
    lf_svd r;
    memset(&r, 0, sizeof r);
    if (!h_om || !h_b || !h_qt)
        LF_TRY(lf_err(LF_ERR_NOMEM, "svd: out of memory for a (%lld, %lld) matrix", (long long)m, (long long)n));
    lf_svd_gaussian(h_om, (size_t)N * (size_t)L, seed);
    LF_CU(cudaMalloc((void **)&d_om, sizeof(float) * (size_t)N * (size_t)L), NULL);
    LF_CU(cudaMalloc((void **)&d_y, sizeof(float) * (size_t)M * (size_t)L), NULL);
    LF_CU(cudaMalloc((void **)&d_z, sizeof(float) * (size_t)N * (size_t)L), NULL);
    LF_CU(cudaMalloc((void **)&d_tau, sizeof(float) * (size_t)L), NULL);
    LF_CU(cudaMalloc((void **)&d_info, sizeof(int)), NULL);
    LF_CU(cudaMemcpy(d_om, h_om, sizeof(float) * (size_t)N * (size_t)L, cudaMemcpyHostToDevice), NULL);
    /* one workspace for every QR: the larger of geqrf / orgqr on (m, l) and (n, l) */
    LF_CS(cusolverDnSgeqrf_bufferSize(h, M, L, d_y, M, &lw));
    lwork = lw > lwork ? lw : lwork;
    LF_CS(cusolverDnSgeqrf_bufferSize(h, N, L, d_z, N, &lw));
    lwork = lw > lwork ? lw : lwork;
    LF_CS(cusolverDnSorgqr_bufferSize(h, M, L, L, d_y, M, d_tau, &lw));
    lwork = lw > lwork ? lw : lwork;
    LF_CS(cusolverDnSorgqr_bufferSize(h, N, L, L, d_z, N, d_tau, &lw));
    lwork = lw > lwork ? lw : lwork;
    LF_CU(cudaMalloc((void **)&d_work, sizeof(float) * (size_t)(lwork > 0 ? lwork : 1)), NULL);

    /* Y = A Omega */
    LF_CB(cublasSgemm(hb, CUBLAS_OP_T, CUBLAS_OP_N, M, L, N, &one, d_at, N, d_om, N, &zero, d_y, M));
    LF_TRY(lf_dev_orth(h, d_y, M, L, d_tau, d_work, lwork, d_info));
    for (int it = 0; it < q; it++) {
        LF_CB(cublasSgemm(hb, CUBLAS_OP_N, CUBLAS_OP_N, N, L, M, &one, d_at, N, d_y, M, &zero, d_z, N));
        LF_TRY(lf_dev_orth(h, d_z, N, L, d_tau, d_work, lwork, d_info));
        LF_CB(cublasSgemm(hb, CUBLAS_OP_T, CUBLAS_OP_N, M, L, N, &one, d_at, N, d_z, N, &zero, d_y, M));
        LF_TRY(lf_dev_orth(h, d_y, M, L, d_tau, d_work, lwork, d_info));
    }
    /* B^T (n, l) = A^T Q */
    LF_CB(cublasSgemm(hb, CUBLAS_OP_N, CUBLAS_OP_N, N, L, M, &one, d_at, N, d_y, M, &zero, d_z, N));
    LF_CU(cudaMemcpy(h_b, d_z, sizeof(float) * (size_t)N * (size_t)L, cudaMemcpyDeviceToHost), NULL);
    LF_CU(cudaMemcpy(h_qt, d_y, sizeof(float) * (size_t)M * (size_t)L, cudaMemcpyDeviceToHost), NULL);
    LF_TRY(lf_svd_from_range(h_qt, h_b, m, n, l, &r));
    memcpy(s, r.s, sizeof *s * (size_t)L);
    memcpy(u, r.u, sizeof *u * (size_t)M * (size_t)L);
    memcpy(vt, r.vt, sizeof *vt * (size_t)L * (size_t)N);
fail:
    lf_svd_free(&r);
    free(h_om);
    free(h_b);
    free(h_qt);
    cudaFree(d_om);
    cudaFree(d_y);
    cudaFree(d_z);
    cudaFree(d_tau);
    cudaFree(d_work);
    cudaFree(d_info);
    return st;
}

lf_status lf_dev_svd(lf_device *dev, const float *a, int64_t m, int64_t n, int64_t l, int q, uint64_t seed,
                     double *s, float *u, float *vt) {
    if (!dev || !a || !s || !u || !vt) return lf_err(LF_ERR_ARG, "lf_dev_svd: NULL argument");
    int64_t p = m < n ? m : n;
    if (m < 1 || n < 1 || m > (1 << 30) / n || l < 0 || l > p || q < 0)
        return lf_err(LF_ERR_ARG, "lf_dev_svd: (%lld, %lld) with %lld columns and %d power iterations", (long long)m,
                      (long long)n, (long long)l, q);
    lf_status st = LF_OK;
    cusolverDnHandle_t h = NULL;
    cublasHandle_t hb = NULL;
    float *d_at = NULL;
    LF_CU(cudaSetDevice(lf_device_ordinal(dev)), NULL);
    LF_CS(cusolverDnCreate(&h));
    LF_CB(cublasCreate(&hb));
    LF_CU(cudaMalloc((void **)&d_at, sizeof(float) * (size_t)m * (size_t)n), NULL);
    LF_CU(cudaMemcpy(d_at, a, sizeof(float) * (size_t)m * (size_t)n, cudaMemcpyHostToDevice), NULL);
    st = l ? lf_dev_svd_randomized(h, hb, d_at, m, n, l, q, seed, s, u, vt) : lf_dev_svd_exact(h, d_at, m, n, s, u, vt);
fail:
    cudaFree(d_at);
    if (hb) cublasDestroy(hb);
    if (h) cusolverDnDestroy(h);
    return st;
}
#endif
