/* nn_im2col.cu: the columns of a convolution's GEMM (lf_nn_conv2d's im2col), for a band of output
 * pixels of one sample, read from x stored as xt and written in the GEMM operand's type (f32, f16 or
 * bf16; a cast, if any, fused here instead of a second pass).
 *
 *   col (K = C*kh*kw, np) row-major, col[(c*kh + i)*kw + j][p - p0] =
 *       x[c][oy*stride - pad + i][ox*stride - pad + j] (0 outside the image), oy = p / Wo, ox = p % Wo
 *
 * Read by cuBLAS as the column-major (np, K) matrix with leading dimension np (host/cuda/compute_cuda.c).
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "nn_common.cuh"
#include "lf_nn_cuda.h"

namespace {

__global__ void __launch_bounds__(256) lf_cunn_im2col_k(void *col, int type, const void *x, int xt, int64_t C, int64_t H,
                                                        int64_t W, int64_t kh, int64_t kw, int64_t stride, int64_t pad,
                                                        int64_t Wo, int64_t p0, int64_t np) {
    const int64_t n = C * kh * kw * np;
    for (int64_t e = lf_cunn::gtid(); e < n; e += lf_cunn::gstride()) {
        const int64_t k = e / np, p = p0 + e % np;
        const int64_t c = k / (kh * kw), i = k / kw % kh, j = k % kw;
        const int64_t iy = p / Wo * stride - pad + i, ix = p % Wo * stride - pad + j;
        lf_cunn::st(col, type, e, iy >= 0 && iy < H && ix >= 0 && ix < W ? lf_cunn::ld(x, xt, (c * H + iy) * W + ix) : 0.0f);
    }
}

} // namespace

extern "C" int lf_cunn_im2col(void *col, lf_cunn_type type, const void *x, lf_cunn_type xt, int64_t C, int64_t H, int64_t W, int64_t kh,
                              int64_t kw, int64_t stride, int64_t pad, int64_t Wo, int64_t p0, int64_t np,
                              cudaStream_t s) {
    if (C <= 0 || kh <= 0 || kw <= 0 || np <= 0) return (int)cudaSuccess;
    if (stride <= 0 || Wo <= 0) return (int)cudaErrorInvalidValue;
    (void)cudaGetLastError(); /* the return below must be this launch's error, not an earlier call's */
    lf_cunn_im2col_k<<<lf_cunn::grid_for(C * kh * kw * np), dim3(lf_cunn::THREADS), 0, s>>>(
        col, (int)type, x, (int)xt, C, H, W, kh, kw, stride, pad, Wo, p0, np);
    return (int)cudaGetLastError();
}
