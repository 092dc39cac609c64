/* lf_nn_cuda.h: launchers of the model-runtime kernels (kernels/cuda/nn_*.cu), the device half of the
 * operators of kernels/cpu/nn/lf_nn.h; host/cuda/compute_cuda.c drives them (with cuBLAS for the
 * matrix products). C-callable from gcc and nvcc.
 *
 * Every pointer is device memory; arrays are contiguous, row-major, as in lf_nn.h. Activations are
 * stored as the launcher's lf_cunn_type (f32, f16 or bf16; the math is f32 whatever the storage, each
 * result rounded once into it); parameters (gamma, beta, tables, timesteps, scratch) are f32. Each launcher enqueues its kernels on stream s and returns the
 * cudaError_t of the launch (cudaSuccess when there is nothing to do); a launch failure is reported
 * by that return, never by a later call. Kernel names are the launcher's name + "_k". Sizes are
 * int64_t; 1-D grids are capped and loop over the elements (grid-stride), so no size limit but memory.
 */
#ifndef LF_NN_CUDA_H
#define LF_NN_CUDA_H

#include <stdint.h>

#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

/* storage types of activations and of the 16-bit GEMM operands */
typedef enum { LF_CUNN_F32 = 0, LF_CUNN_F16 = 1, LF_CUNN_BF16 = 2 } lf_cunn_type;

/* element-wise ops of lf_cunn_ew (lf_nn.h formulas) */
typedef enum {
    LF_CUNN_SILU, LF_CUNN_GELU, LF_CUNN_GELU_TANH, LF_CUNN_QUICK_GELU, LF_CUNN_SCALE, LF_CUNN_ADD, LF_CUNN_MUL
} lf_cunn_op;

/* ---- nn_norm.cu ---------------------------------------------------------------------------- */

/* GroupNorm of x (N, C, S) in `groups` groups: two passes (mean, then the biased variance of x - mean)
 * in f32 with fixed-order block reductions, one block per (n, group) or, for few large groups, per
 * piece of a group with the pieces' statistics combined in a fixed order; gamma/beta (C) or NULL.
 * LayerNorm (M, D) is (N = M, C = D, S = 1, groups = 1). In place allowed. ws: device memory of
 * lf_cunn_norm_workspace(N, C, S, groups) floats (NULL when that is 0). */
int64_t lf_cunn_norm_workspace(int64_t N, int64_t C, int64_t S, int64_t groups);
int lf_cunn_norm(void *y, const void *x, lf_cunn_type t, const float *gamma, const float *beta, int64_t N, int64_t C,
                 int64_t S, int64_t groups, float eps, float *ws, cudaStream_t s);
/* the same GroupNorm with SiLU applied to its output in the same pass (lf_cunn_ew's SiLU expression) */
int lf_cunn_norm_silu(void *y, const void *x, lf_cunn_type t, const float *gamma, const float *beta, int64_t N,
                      int64_t C, int64_t S, int64_t groups, float eps, float *ws, cudaStream_t s);

/* ---- nn_elementwise.cu --------------------------------------------------------------------- */

/* y = op(a) (SILU .. SCALE: with s_ for SCALE) or a op b (ADD, MUL); n elements, y may alias a or b */
int lf_cunn_ew(lf_cunn_op op, void *y, const void *a, const void *b, lf_cunn_type t, float s_, int64_t n,
               cudaStream_t s);
/* GEGLU: x (M, 2F) -> y (M, F), y[m, f] = x[m, f] * gelu(x[m, F + f]) */
int lf_cunn_geglu(void *y, const void *x, lf_cunn_type t, int64_t M, int64_t F, cudaStream_t s);
/* x (N, C, S) of type t += b[c] (per_nc 0, b (C)) or b[n, c] (per_nc 1, b (N, C)), b of type bt */
int lf_cunn_add_bias(void *x, lf_cunn_type t, const void *b, lf_cunn_type bt, int64_t N, int64_t C, int64_t S,
                     int per_nc, cudaStream_t s);
/* dst[r * dst_ld + j] = src[r * src_ld + j] for rows x cols, each side of its own type (converted) */
int lf_cunn_copy2d(void *dst, lf_cunn_type dt, int64_t dst_ld, const void *src, lf_cunn_type st, int64_t src_ld,
                   int64_t rows, int64_t cols, cudaStream_t s);
/* y (n values of `type`) = x rounded to nearest even (f16 overflows to Inf, as cvt.rn) */
int lf_cunn_cast(void *y, lf_cunn_type type, const float *x, int64_t n, cudaStream_t s);

/* ---- nn_attention.cu ----------------------------------------------------------------------- */

/* In place softmax of each row of x (rows, cols) (lf_nn_softmax_rows; a row of all -inf -> zeros).
 * causal != 0: row r is query q0 + r % rows_per_q of its head, and column j > that query is masked
 * (-inf) first (the scores of lf_nn_attention's causal mask, for a chunk of queries from q0). */
int lf_cunn_softmax_rows(float *x, int64_t rows, int64_t cols, int causal, int64_t rows_per_q, int64_t q0,
                         cudaStream_t s);

/* ---- nn_layout.cu -------------------------------------------------------------------------- */

/* y (N, C, R) = x (N, R, C) transposed per sample (nchw_to_nlc: R = C_ch, C = S; nlc_to_nchw: R = S,
 * C = C_ch), through 32x32 shared-memory tiles */
int lf_cunn_transpose(void *y, const void *x, lf_cunn_type t, int64_t N, int64_t R, int64_t C, cudaStream_t s);
/* y (N, C, R) of type yt = x (N, R, C) of type xt (f32 -> 16-bit rounds to nearest even, 16-bit -> f32
 * exact, same 16-bit type: the bits), one element per thread, uncoalesced on one side: the layouts
 * of the cuDNN graphs (NCHW f32 -> NHWC 16-bit: R = C_ch, C = H*W; filters KCRS -> KRSC: N = K,
 * R = C_in, C = kh*kw; R = 1 is a plain cast, 16-bit -> f32 included) */
int lf_cunn_transpose_cast(void *y, lf_cunn_type yt, const void *x, lf_cunn_type xt, int64_t N, int64_t R, int64_t C,
                           cudaStream_t s);
/* nearest resize (N, C, H, W) -> (N, C, Ho, Wo), torch's f32 source index (lf_nn_resize_nearest) */
int lf_cunn_resize_nearest(void *y, const void *x, lf_cunn_type t, int64_t N, int64_t C, int64_t H, int64_t W, int64_t Ho, int64_t Wo,
                           cudaStream_t s);
/* zero padding (N, C, H, W) -> (N, C, H + top + bottom, W + left + right) */
int lf_cunn_pad2d(void *y, const void *x, lf_cunn_type t, int64_t N, int64_t C, int64_t H, int64_t W, int64_t left, int64_t right,
                  int64_t top, int64_t bottom, cudaStream_t s);
/* y (N, Ca + Cb, S) = [a (N, Ca, S), b (N, Cb, S)] along C */
int lf_cunn_concat_c(void *y, const void *a, const void *b, lf_cunn_type t, int64_t N, int64_t Ca, int64_t Cb, int64_t S,
                     cudaStream_t s);

/* ---- nn_im2col.cu -------------------------------------------------------------------------- */

/* Columns of output pixels [p0, p0 + np) of one sample x (C, H, W) (type xt) for a (kh, kw) convolution with
 * `stride` and symmetric zero `pad`, output width Wo: col (C*kh*kw, np) row-major in `type`,
 * col[(c*kh + i)*kw + j][p - p0] = x[c][oy*stride - pad + i][ox*stride - pad + j] (0 outside),
 * oy = p / Wo, ox = p % Wo (the row order of W (C_out, C, kh, kw) flattened). */
int lf_cunn_im2col(void *col, lf_cunn_type type, const void *x, lf_cunn_type xt, int64_t C, int64_t H, int64_t W, int64_t kh,
                   int64_t kw, int64_t stride, int64_t pad, int64_t Wo, int64_t p0, int64_t np, cudaStream_t s);

/* ---- nn_embed.cu --------------------------------------------------------------------------- */

/* Sinusoidal timestep embedding of t (N) -> emb (N, dim) (lf_nn_timestep_embedding), with
 * neg_log = -(float)log(max_period) and denom = (float)(dim / 2) - shift computed by the caller as
 * the CPU does */
int lf_cunn_timestep_embedding(void *emb, lf_cunn_type et, const float *t, int64_t N, int64_t dim, int flip_sin_to_cos, float neg_log,
                               float denom, cudaStream_t s);
/* y (L, D)[i] = table (V, D)[ids[i]]; the ids are checked by the caller */
int lf_cunn_embedding(void *y, lf_cunn_type t, const float *table, const int32_t *ids, int64_t L, int64_t D, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
