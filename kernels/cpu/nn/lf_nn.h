/* lf_nn.h: the f32 CPU operator set of the model runtime (UNet, VAE, CLIP text encoders).
 *
 * One operator per function, plain and complete: this is the reference the GPU backend is checked
 * against. Implementation, one file per operator family in kernels/cpu/nn/ (BLAS sgemm for every
 * matrix product, scalar loops for the rest): linear.c, conv2d.c, norm.c, elementwise.c,
 * softmax_attention.c, layout.c, embedding.c; what they share (chunk sizes, lf_nn_expf) in
 * nn_internal.h. Test: tests/kernels/test_nn.c (each op against a naive loop or an algebraic identity).
 *
 * Conventions
 *   - All arrays are f32, contiguous, row-major (PyTorch layout); sizes are int64_t.
 *   - Weights of matrix products come as an lf_view (lf_tensor.h: data, dtype, shape): the model keeps
 *     them in the checkpoint's dtype (F16, BF16, F32, ... mapped from the file where it can), and the op
 *     converts them to f32 inside (lf_nn_linear_w, lf_nn_conv2d_w). f16/bf16 -> f32 is exact and the
 *     products are cut exactly as for f32 weights, so the bytes equal those of the f32 path. The view
 *     is the backend-neutral weight: a GPU backend implements the same ops over the same views.
 *   - Activations x (N, C, H, W); token sequences x (N, L, D) (= rows (M, D) with M = N*L).
 *   - Linear W (out, in), b (out) or NULL: y = x @ Wᵀ + b (as torch.nn.Linear).
 *   - Conv2d W (C_out, C_in, kh, kw), b (C_out) or NULL (as torch.nn.Conv2d, groups = 1, dilation 1).
 *   - Output first, then inputs, then sizes, then options.
 *   - Element-wise ops may run in place (y == x); every other op needs y distinct from its inputs
 *     unless its comment says otherwise.
 *   - Ops that need scratch memory take it from per-thread buffers of the operator thread pool
 *     (grown on demand, kept between calls) and return LF_ERR_NOMEM when it cannot be had; ops that
 *     cannot fail return void.
 *
 * Threads (host/base/pool.h, lf_par_set_threads): the ops run on one process-wide pool of LF_NUM_THREADS threads
 * (default: the online CPUs), the calling thread included. Work is cut into chunks that depend only
 * on the shapes, never on the thread count, and no reduction crosses a chunk, so every op gives the
 * same bytes with any number of threads. Matrix products are cut into row/column blocks, each one
 * single-threaded cblas_sgemm: the pool sets OpenBLAS to one thread when it starts (this also makes
 * other BLAS calls of the process, e.g. lf_job_apply, single-threaded from then on). Calls from
 * several threads at once are serialised.
 * Batches: a sample's (a Linear row's) bytes do not depend on how many others share the call either
 * (no chunk mixes samples, and no sgemm call changes BLAS code path with N: linear.c, nn_internal.h).
 * Test: tests/kernels/test_nn_batch.c.
 */
#ifndef LF_NN_H
#define LF_NN_H

#include <stdint.h>

#include "lorafuse/lf_status.h"
#include "lorafuse/lf_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- matrix products ------------------------------------------------------------------------ */

/* y (M, out) = x (M, in) @ W (out, in)ᵀ + b (out); b may be NULL. cblas_sgemm in blocks of a fixed
 * number of rows (linear.c), so each row's bytes do not depend on M. LF_ERR_NOMEM when the scratch for
 * the last, partial row block cannot be had. */
lf_status lf_nn_linear(float *y, const float *x, const float *W, const float *b, int64_t M, int64_t in,
                       int64_t out);

/* lf_nn_linear with W (out, in) as a view of any readable dtype (see Conventions). LF_ERR_NOMEM when
 * the conversion buffer cannot be had, LF_ERR_SHAPE when W does not hold out*in values. */
lf_status lf_nn_linear_w(float *y, const float *x, const lf_view *W, const float *b, int64_t M, int64_t in,
                         int64_t out);

/* Bytes of the operators' own scratch now held: the shared weight-conversion buffer (the largest
 * non-f32 weight converted so far) plus the per-thread pool buffers (host/base/pool.h). Reports only. */
size_t lf_nn_scratch_bytes(void);

/* Output size of a convolution along one axis: (size + 2*pad - k) / stride + 1. */
int64_t lf_nn_conv_out(int64_t size, int64_t k, int64_t stride, int64_t pad);

/* y (N, C_out, Ho, Wo) = conv2d(x (N, C_in, H, W), W (C_out, C_in, kh, kw)) + b (C_out), symmetric
 * zero padding `pad`, stride `stride`; Ho = lf_nn_conv_out(H, kh, stride, pad), same for Wo.
 * im2col (in bands of output rows, bounded scratch) + sgemm; a 1x1 stride-1 pad-0 conv is a plain
 * sgemm. b may be NULL. LF_ERR_NOMEM if the im2col scratch cannot be allocated. */
lf_status lf_nn_conv2d(float *y, const float *x, const float *W, const float *b, int64_t N,
                       int64_t C_in, int64_t H, int64_t Wd, int64_t C_out, int64_t kh, int64_t kw,
                       int64_t stride, int64_t pad);

/* lf_nn_conv2d with W (C_out, C_in, kh, kw) as a view of any readable dtype (see Conventions). */
lf_status lf_nn_conv2d_w(float *y, const float *x, const lf_view *W, const float *b, int64_t N,
                         int64_t C_in, int64_t H, int64_t Wd, int64_t C_out, int64_t kh, int64_t kw,
                         int64_t stride, int64_t pad);

/* ---- normalisation -------------------------------------------------------------------------- */

/* GroupNorm over x (N, C, S) (S = H*W, any spatial size): C split into `groups` groups of C/groups
 * channels; per (n, group): y = (x - mean) / sqrt(var + eps) * gamma[c] + beta[c], var biased (as
 * torch). gamma/beta (C) may be NULL (affine off). In place allowed. C % groups must be 0 (caller). */
void lf_nn_group_norm(float *y, const float *x, const float *gamma, const float *beta, int64_t N,
                      int64_t C, int64_t S, int64_t groups, float eps);

/* LayerNorm over the last dim of x (M, D): y = (x - mean) / sqrt(var + eps) * gamma + beta,
 * var biased. gamma/beta (D) may be NULL. In place allowed. */
void lf_nn_layer_norm(float *y, const float *x, const float *gamma, const float *beta, int64_t M,
                      int64_t D, float eps);

/* ---- element-wise activations (n elements, in place allowed) -------------------------------- */

/* y = x * sigmoid(x) = x / (1 + exp(-x)) */
void lf_nn_silu(float *y, const float *x, int64_t n);
/* y = 0.5 x (1 + erf(x / sqrt 2))   (torch.nn.functional.gelu, approximate="none") */
void lf_nn_gelu(float *y, const float *x, int64_t n);
/* y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))   (gelu approximate="tanh") */
void lf_nn_gelu_tanh(float *y, const float *x, int64_t n);
/* y = x * sigmoid(1.702 x)   (CLIP's quick_gelu) */
void lf_nn_quick_gelu(float *y, const float *x, int64_t n);

/* GEGLU (diffusers GEGLU after its proj Linear): x (M, 2F) -> y (M, F),
 * y[m, f] = x[m, f] * gelu(x[m, F + f])   (hidden, gate = x.chunk(2, -1); hidden * gelu(gate)). */
void lf_nn_geglu(float *y, const float *x, int64_t M, int64_t F);

/* ---- element-wise arithmetic (n elements, y may alias a or b) ------------------------------- */

/* y = a + b */
void lf_nn_add(float *y, const float *a, const float *b, int64_t n);
/* y = a * b */
void lf_nn_mul(float *y, const float *a, const float *b, int64_t n);
/* y = x * s (in place allowed) */
void lf_nn_scale(float *y, const float *x, float s, int64_t n);
/* x (N, C, S) += b[c] (b (C)): per-channel bias. */
void lf_nn_add_bias_c(float *x, const float *b, int64_t N, int64_t C, int64_t S);
/* x (N, C, S) += b[n, c] (b (N, C)): per-sample, per-channel (ResNet time-embedding add). */
void lf_nn_add_bias_nc(float *x, const float *b, int64_t N, int64_t C, int64_t S);

/* ---- softmax and attention ------------------------------------------------------------------ */

/* In place, each row of x (rows, cols): x = exp(x - max) / sum exp(x - max). A row of all -INFINITY
 * becomes all zeros. */
void lf_nn_softmax_rows(float *x, int64_t rows, int64_t cols);

/* Multi-head scaled dot-product attention (torch SDPA semantics, no dropout):
 *   q (N, Lq, heads*d), k (N, Lk, heads*d), v (N, Lk, heads*d)  ->  out (N, Lq, heads*d)
 *   head h uses columns [h*d, (h+1)*d): out_h = softmax(scale * q_h k_hᵀ [+ mask]) v_h
 * scale is usually 1/sqrt(d). causal != 0 masks key j > query i (CLIP text encoder; needs Lq == Lk
 * for its usual meaning, applied as j > i regardless). sgemm for both products; the score scratch is
 * bounded (query rows in chunks). out must not alias q, k or v. LF_ERR_NOMEM on scratch failure. */
lf_status lf_nn_attention(float *out, const float *q, const float *k, const float *v, int64_t N,
                          int64_t Lq, int64_t Lk, int64_t heads, int64_t d, float scale, int causal);

/* ---- layout and resampling ------------------------------------------------------------------ */

/* y (N, S, C) = x (N, C, S) transposed per sample (NCHW -> tokens (N, H*W, C)). */
void lf_nn_nchw_to_nlc(float *y, const float *x, int64_t N, int64_t C, int64_t S);
/* y (N, C, S) = x (N, S, C) transposed per sample (tokens -> NCHW). */
void lf_nn_nlc_to_nchw(float *y, const float *x, int64_t N, int64_t C, int64_t S);

/* y (N, C, 2H, 2W) = nearest-neighbour 2x upsampling of x (N, C, H, W): y[.., i, j] = x[.., i/2, j/2]. */
void lf_nn_upsample_nearest2x(float *y, const float *x, int64_t N, int64_t C, int64_t H, int64_t W);

/* y (N, C, Ho, Wo) = nearest-neighbour resize of x (N, C, H, W) to any size, as torch's
 * F.interpolate(x, size=(Ho, Wo), mode="nearest") on the CPU: y[.., i, j] = x[.., si, sj] with
 * si = min(floor((float)i * ((float)H / Ho)), H - 1) computed in f32 as torch does (same for sj).
 * Ho == 2H and Wo == 2W is lf_nn_upsample_nearest2x (same bytes: the formula gives i / 2 there).
 * Diffusers' Upsample2D with `upsample_size` (UNet latents not divisible by 2^downsamplers). */
void lf_nn_resize_nearest(float *y, const float *x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t Ho,
                          int64_t Wo);

/* y (N, C, H + top + bottom, W + left + right) = x (N, C, H, W) zero-padded (torch F.pad with
 * (left, right, top, bottom)); the VAE encoder's Downsample pads (0, 1, 0, 1) then convs pad 0. */
void lf_nn_pad2d(float *y, const float *x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t left,
                 int64_t right, int64_t top, int64_t bottom);

/* y (N, C, H, W) concatenated along C: a (N, Ca, S) then b (N, Cb, S) -> y (N, Ca + Cb, S). */
void lf_nn_concat_c(float *y, const float *a, const float *b, int64_t N, int64_t Ca, int64_t Cb,
                    int64_t S);

/* ---- embeddings ----------------------------------------------------------------------------- */

/* Sinusoidal timestep embedding, diffusers get_timestep_embedding (f32, same op order):
 *   half = dim / 2, freq[i] = exp(-ln(max_period) * i / (half - shift)), arg = t[n] * freq[i]
 *   emb[n] = [sin(arg), cos(arg)], or [cos(arg), sin(arg)] when flip_sin_to_cos; odd dim: last = 0.
 * t (N) -> emb (N, dim). SD1.x/SDXL: flip_sin_to_cos = 1, shift = 0, max_period = 10000
 * (also SDXL's add_time_ids, each id embedded with dim 256). */
void lf_nn_timestep_embedding(float *emb, const float *t, int64_t N, int64_t dim,
                              int flip_sin_to_cos, float shift, float max_period);

/* Embedding lookup: y (L, D)[i] = table (V, D)[ids[i]]. Returns LF_ERR_ARG (naming the position and
 * id) when an id is outside [0, V). */
lf_status lf_nn_embedding(float *y, const float *table, const int32_t *ids, int64_t L, int64_t V,
                          int64_t D);

#ifdef __cplusplus
}
#endif
#endif
