/* nn_elementwise.cu: the element-wise operators of lf_nn.h on the device, and the f32 -> f16/bf16
 * casts of the 16-bit GEMM operands.
 *
 *   SiLU        y = x / (1 + e^-x)
 *   GELU        y = 0.5 x (1 + erf(x / sqrt 2))
 *   GELU-tanh   y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
 *   quick-GELU  y = x / (1 + e^(-1.702 x))
 *   scale       y = x * s;  add / mul  y = a + b, y = a * b   (y may alias the inputs)
 *   GEGLU       x (M, 2F) -> y (M, F): y[m, f] = x[m, f] * gelu(x[m, F + f])
 *   bias adds   x (N, C, S) += b[c] or b[n, c]
 *   cast        f32 -> f16 / bf16, round to nearest even
 *   copy2d      rows x cols between two strided arrays, each f32, f16 or bf16 (converted)
 *
 * Activations are stored as the launcher's type t (f32, f16, bf16), read and written through
 * lf_cunn::ld / st: the math is f32 whatever the storage, each result rounded once.
 * The same f32 operation order as kernels/cpu/nn/elementwise.c; e^x, erf and tanh are CUDA's (the
 * CPU uses its own polynomial exp and libm), so results differ by a few ulp, not more.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "nn_common.cuh"
#include "lf_nn_cuda.h"

namespace {

__global__ void __launch_bounds__(256) lf_cunn_ew_k(int op, void *y, const void *a, const void *b, int t, float sc,
                                                    int64_t n) {
    for (int64_t i = lf_cunn::gtid(); i < n; i += lf_cunn::gstride()) {
        const float v = lf_cunn::ld(a, t, i);
        float r;
        switch (op) {
        case LF_CUNN_SILU: r = v / (1.0f + expf(-v)); break;
        case LF_CUNN_GELU: r = lf_cunn::gelu_erf(v); break;
        case LF_CUNN_GELU_TANH: r = 0.5f * v * (1.0f + tanhf(0.79788456080286535588f * (v + 0.044715f * v * v * v))); break;
        case LF_CUNN_QUICK_GELU: r = v / (1.0f + expf(-1.702f * v)); break;
        case LF_CUNN_SCALE: r = v * sc; break;
        case LF_CUNN_ADD: r = v + lf_cunn::ld(b, t, i); break;
        default: r = v * lf_cunn::ld(b, t, i); break;
        }
        lf_cunn::st(y, t, i, r);
    }
}

__global__ void __launch_bounds__(256) lf_cunn_geglu_k(void *y, const void *x, int t, int64_t M, int64_t F) {
    const int64_t n = M * F;
    for (int64_t i = lf_cunn::gtid(); i < n; i += lf_cunn::gstride()) {
        const int64_t m = i / F, f = i % F, h = m * 2 * F;
        lf_cunn::st(y, t, i, lf_cunn::ld(x, t, h + f) * lf_cunn::gelu_erf(lf_cunn::ld(x, t, h + F + f)));
    }
}

__global__ void __launch_bounds__(256) lf_cunn_add_bias_k(void *x, int t, const void *b, int bt, int64_t N, int64_t C,
                                                          int64_t S, int per_nc) {
    const int64_t n = N * C * S;
    for (int64_t i = lf_cunn::gtid(); i < n; i += lf_cunn::gstride()) {
        const int64_t nc = i / S;
        lf_cunn::st(x, t, i, lf_cunn::ld(x, t, i) + lf_cunn::ld(b, bt, per_nc ? nc : nc % C));
    }
}

__global__ void __launch_bounds__(256) lf_cunn_copy2d_k(void *dst, int dt, int64_t dld, const void *src, int sty,
                                                        int64_t sld, int64_t cols, int64_t n) {
    for (int64_t i = lf_cunn::gtid(); i < n; i += lf_cunn::gstride()) {
        const int64_t r = i / cols, c = i % cols;
        lf_cunn::st(dst, dt, r * dld + c, lf_cunn::ld(src, sty, r * sld + c));
    }
}

__global__ void __launch_bounds__(256) lf_cunn_cast_k(void *y, int type, const float *x, int64_t n) {
    for (int64_t i = lf_cunn::gtid(); i < n; i += lf_cunn::gstride()) lf_cunn::st(y, type, i, x[i]);
}

} // namespace

extern "C" int lf_cunn_ew(lf_cunn_op op, void *y, const void *a, const void *b, lf_cunn_type t, float s_, int64_t n,
                          cudaStream_t s) {
    if (n <= 0) return (int)cudaSuccess;
    (void)cudaGetLastError(); /* the return below must be this launch's error, not an earlier call's */
    lf_cunn_ew_k<<<lf_cunn::grid_for(n), dim3(lf_cunn::THREADS), 0, s>>>((int)op, y, a, b, (int)t, s_, n);
    return (int)cudaGetLastError();
}

extern "C" int lf_cunn_geglu(void *y, const void *x, lf_cunn_type t, int64_t M, int64_t F, cudaStream_t s) {
    if (M <= 0 || F <= 0) return (int)cudaSuccess;
    (void)cudaGetLastError();
    lf_cunn_geglu_k<<<lf_cunn::grid_for(M * F), dim3(lf_cunn::THREADS), 0, s>>>(y, x, (int)t, M, F);
    return (int)cudaGetLastError();
}

extern "C" int lf_cunn_add_bias(void *x, lf_cunn_type t, const void *b, lf_cunn_type bt, int64_t N, int64_t C, int64_t S,
                                int per_nc, cudaStream_t s) {
    if (N <= 0 || C <= 0 || S <= 0) return (int)cudaSuccess;
    (void)cudaGetLastError();
    lf_cunn_add_bias_k<<<lf_cunn::grid_for(N * C * S), dim3(lf_cunn::THREADS), 0, s>>>(x, (int)t, b, (int)bt, N, C, S,
                                                                                       per_nc);
    return (int)cudaGetLastError();
}

extern "C" int lf_cunn_copy2d(void *dst, lf_cunn_type dt, int64_t dst_ld, const void *src, lf_cunn_type st,
                              int64_t src_ld, int64_t rows, int64_t cols, cudaStream_t s) {
    if (rows <= 0 || cols <= 0) return (int)cudaSuccess;
    (void)cudaGetLastError();
    lf_cunn_copy2d_k<<<lf_cunn::grid_for(rows * cols), dim3(lf_cunn::THREADS), 0, s>>>(dst, (int)dt, dst_ld, src, (int)st,
                                                                                       src_ld, cols, rows * cols);
    return (int)cudaGetLastError();
}

extern "C" int lf_cunn_cast(void *y, lf_cunn_type type, const float *x, int64_t n, cudaStream_t s) {
    if (n <= 0) return (int)cudaSuccess;
    (void)cudaGetLastError();
    lf_cunn_cast_k<<<lf_cunn::grid_for(n), dim3(lf_cunn::THREADS), 0, s>>>(y, (int)type, x, n);
    return (int)cudaGetLastError();
}
