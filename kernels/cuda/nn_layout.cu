/* nn_layout.cu: layout and resampling operators of lf_nn.h on the device.
 *
 *   transpose   y (N, C, R) = x (N, R, C) per sample (NCHW <-> NLC), 32x32 tiles staged in shared
 *               memory (stride 33: the column reads hit 32 different banks), reads and writes coalesced
 *   resize      y[.., i, j] = x[.., si, sj], si = min(floor((float)i * ((float)H / Ho)), H - 1) in f32,
 *               as torch's CPU nearest interpolation and lf_nn_resize_nearest compute it (same for sj)
 *   pad2d       zero padding (left, right, top, bottom), torch F.pad
 *   concat_c    y (N, Ca + Cb, S) = [a, b] along C
 *   transpose_cast  y (N, C, R) of type yt = x (N, R, C) of type xt, per element (f32 -> 16-bit
 *               rounds to nearest even, 16-bit -> f32 is exact): the layouts and types the cuDNN
 *               graphs take (NCHW f32 -> NHWC f16/bf16 activations, KCRS -> KRSC filters, f16 -> f32)
 * The other kernels move activations stored as t (f32, f16 or bf16) through f32 (a 16-bit value widened
 * and rounded back is the same value).
 */
#include <math.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "nn_common.cuh"
#include "lf_nn_cuda.h"

namespace {

constexpr int TILE = 32;

/* grid (tiles of the (R, C) matrix, N), block (32, 8); tile t covers rows (t / tc)*32.. and columns
 * (t % tc)*32.. (one flat grid dimension: a VAE-sized S needs more than 65535 tiles along it) */
__global__ void __launch_bounds__(256) lf_cunn_transpose_k(void *y, const void *x, int t, int64_t R, int64_t C,
                                                           int64_t tc) {
    __shared__ float tile[TILE * (TILE + 1)];
    const int64_t n = blockIdx.y, r0 = (int64_t)blockIdx.x / tc * TILE, c0 = (int64_t)blockIdx.x % tc * TILE;
    const int64_t base = n * R * C;
    for (int k = threadIdx.y; k < TILE; k += blockDim.y) {
        const int64_t r = r0 + k, c = c0 + threadIdx.x;
        if (r < R && c < C) tile[k * (TILE + 1) + threadIdx.x] = lf_cunn::ld(x, t, base + r * C + c);
    }
    __syncthreads();
    for (int k = threadIdx.y; k < TILE; k += blockDim.y) {
        const int64_t c = c0 + k, r = r0 + threadIdx.x;
        if (r < R && c < C) lf_cunn::st(y, t, base + c * R + r, tile[threadIdx.x * (TILE + 1) + k]);
    }
}

__global__ void __launch_bounds__(256) lf_cunn_resize_nearest_k(void *y, const void *x, int t, int64_t NC, int64_t H,
                                                                int64_t W, int64_t Ho, int64_t Wo, float sh, float sw) {
    const int64_t n = NC * Ho * Wo;
    for (int64_t i = lf_cunn::gtid(); i < n; i += lf_cunn::gstride()) {
        const int64_t p = i / (Ho * Wo), oy = i / Wo % Ho, ox = i % Wo;
        int64_t sy = (int64_t)floorf((float)oy * sh), sx = (int64_t)floorf((float)ox * sw);
        sy = sy < H - 1 ? sy : H - 1;
        sx = sx < W - 1 ? sx : W - 1;
        lf_cunn::st(y, t, i, lf_cunn::ld(x, t, (p * H + sy) * W + sx));
    }
}

__global__ void __launch_bounds__(256) lf_cunn_pad2d_k(void *y, const void *x, int t, int64_t NC, int64_t H, int64_t W,
                                                       int64_t left, int64_t top, int64_t Ho, int64_t Wo) {
    const int64_t n = NC * Ho * Wo;
    for (int64_t i = lf_cunn::gtid(); i < n; i += lf_cunn::gstride()) {
        const int64_t p = i / (Ho * Wo), sy = i / Wo % Ho - top, sx = i % Wo - left;
        lf_cunn::st(y, t, i, sy >= 0 && sy < H && sx >= 0 && sx < W ? lf_cunn::ld(x, t, (p * H + sy) * W + sx) : 0.0f);
    }
}

__global__ void __launch_bounds__(256) lf_cunn_concat_c_k(void *y, const void *a, const void *b, int t, int64_t N,
                                                          int64_t Ca, int64_t Cb, int64_t S) {
    const int64_t per = (Ca + Cb) * S, n = N * per;
    for (int64_t i = lf_cunn::gtid(); i < n; i += lf_cunn::gstride()) {
        const int64_t s = i / per, k = i % per;
        lf_cunn::st(y, t, i, k < Ca * S ? lf_cunn::ld(a, t, s * Ca * S + k) : lf_cunn::ld(b, t, s * Cb * S + k - Ca * S));
    }
}

__global__ void __launch_bounds__(256) lf_cunn_transpose_cast_k(void *y, int yt, const void *x, int xt, int64_t R,
                                                                int64_t C, int64_t n) {
    for (int64_t i = lf_cunn::gtid(); i < n; i += lf_cunn::gstride()) {
        const int64_t b = i / (R * C), rem = i - b * R * C, c = rem / R, r = rem - c * R; /* y (b, c, r) */
        const int64_t src = (b * R + r) * C + c;
        if (yt == xt && yt != LF_CUNN_F32) { /* a 16-bit move: the bits as they are */
            static_cast<uint16_t *>(y)[i] = static_cast<const uint16_t *>(x)[src];
            continue;
        }
        lf_cunn::st(y, yt, i, lf_cunn::ld(x, xt, src));
    }
}

} // namespace

extern "C" int lf_cunn_transpose_cast(void *y, lf_cunn_type yt, const void *x, lf_cunn_type xt, int64_t N, int64_t R,
                                      int64_t C, cudaStream_t s) {
    if (N <= 0 || R <= 0 || C <= 0) return (int)cudaSuccess;
    const int64_t n = N * R * C;
    (void)cudaGetLastError();
    lf_cunn_transpose_cast_k<<<lf_cunn::grid_for(n), dim3(lf_cunn::THREADS), 0, s>>>(y, (int)yt, x, (int)xt, R, C, n);
    return (int)cudaGetLastError();
}

extern "C" int lf_cunn_transpose(void *y, const void *x, lf_cunn_type t, int64_t N, int64_t R, int64_t C,
                                 cudaStream_t s) {
    if (N <= 0 || R <= 0 || C <= 0) return (int)cudaSuccess;
    const int64_t tr = (R + TILE - 1) / TILE, tc = (C + TILE - 1) / TILE;
    if (tr * tc > INT32_MAX || N > 65535) return (int)cudaErrorInvalidValue;
    (void)cudaGetLastError(); /* the return below must be this launch's error, not an earlier call's */
    lf_cunn_transpose_k<<<dim3((unsigned)(tr * tc), (unsigned)N), dim3(TILE, 8), 0, s>>>(y, x, (int)t, R, C, tc);
    return (int)cudaGetLastError();
}

extern "C" int lf_cunn_resize_nearest(void *y, const void *x, lf_cunn_type t, int64_t N, int64_t C, int64_t H, int64_t W, int64_t Ho,
                                      int64_t Wo, cudaStream_t s) {
    if (N <= 0 || C <= 0 || Ho <= 0 || Wo <= 0) return (int)cudaSuccess;
    (void)cudaGetLastError();
    lf_cunn_resize_nearest_k<<<lf_cunn::grid_for(N * C * Ho * Wo), dim3(lf_cunn::THREADS), 0, s>>>(
        y, x, (int)t, N * C, H, W, Ho, Wo, (float)H / (float)Ho, (float)W / (float)Wo);
    return (int)cudaGetLastError();
}

extern "C" int lf_cunn_pad2d(void *y, const void *x, lf_cunn_type t, int64_t N, int64_t C, int64_t H, int64_t W, int64_t left,
                             int64_t right, int64_t top, int64_t bottom, cudaStream_t s) {
    const int64_t Ho = H + top + bottom, Wo = W + left + right;
    if (N <= 0 || C <= 0 || Ho <= 0 || Wo <= 0) return (int)cudaSuccess;
    (void)cudaGetLastError();
    lf_cunn_pad2d_k<<<lf_cunn::grid_for(N * C * Ho * Wo), dim3(lf_cunn::THREADS), 0, s>>>(y, x, (int)t, N * C, H, W, left,
                                                                                         top, Ho, Wo);
    return (int)cudaGetLastError();
}

extern "C" int lf_cunn_concat_c(void *y, const void *a, const void *b, lf_cunn_type t, int64_t N, int64_t Ca, int64_t Cb, int64_t S,
                                cudaStream_t s) {
    if (N <= 0 || Ca + Cb <= 0 || S <= 0) return (int)cudaSuccess;
    (void)cudaGetLastError();
    lf_cunn_concat_c_k<<<lf_cunn::grid_for(N * (Ca + Cb) * S), dim3(lf_cunn::THREADS), 0, s>>>(y, a, b, (int)t, N, Ca, Cb, S);
    return (int)cudaGetLastError();
}
