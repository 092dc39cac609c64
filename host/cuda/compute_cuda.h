/* compute_cuda.h: the CUDA compute backend (host/base/compute.h) — every model operator on the device:
 * host/cuda/compute_cuda.c over the kernels of kernels/cuda/nn_*.cu and cuBLAS (docs/cuda.md "Compute
 * backend"). Every build has it: without CUDA or cuBLAS lf_compute_cuda_open answers
 * LF_ERR_UNSUPPORTED (compute_none.c), so callers and tests link in every build and skip.
 */
#ifndef LF_COMPUTE_CUDA_H
#define LF_COMPUTE_CUDA_H

#include "host/base/compute.h"
#include "lorafuse/lf_device.h"

/* A compute backend on dev (lf_device_open), with its own non-blocking stream and cuBLAS handle; all
 * its work is ordered on that stream. Free with (*out)->destroy(*out), before lf_device_close(dev).
 * LF_ERR_UNSUPPORTED when this build has no CUDA or no cuBLAS; LF_ERR_DEVICE / LF_ERR_NOMEM naming
 * the CUDA or cuBLAS call that failed. */
lf_status lf_compute_cuda_open(lf_device *dev, lf_compute **out);
/* The same with a precision (docs/cuda.md "Precision"): activations stored as act (LF_F32, LF_F16, LF_BF16:
 * alloc's buffers, 16-bit ones as tagged handles), weights resident as wdt (LF_F32, LF_F16, LF_BF16, or
 * LF_DTYPE_INVALID: each in its own dtype, 16-bit ones multiplied with the activations cast to them);
 * a 16-bit act makes wdt act. lf_compute_cuda_open is (LF_F32, LF_DTYPE_INVALID). */
lf_status lf_compute_cuda_open_as(lf_device *dev, lf_dtype act, lf_dtype wdt, lf_compute **out);
/* lf_device_open(ordinal) and lf_compute_cuda_open_as(dtype, dtype) on it, the device released by the
 * compute's destroy; desc (cap bytes) gets lf_device_describe. The lf_gen_cuda_fn of lf_generate.h: the
 * program that links the device library hands it to generate, serve and batch. */
lf_status lf_compute_cuda_device(int ordinal, lf_dtype dtype, lf_compute **out, char *desc, size_t cap);

/* Which path the ops took so far (docs/cuda.md "cuDNN", "cuBLASLt"): convolutions and attention through a
 * cuDNN graph, or through the fallback (im2col + cuBLAS; cuBLAS batched products + softmax); Linear
 * layers through cuBLASLt or cuBLAS; the segmented low-rank terms (lora_terms, kernels/cuda/lora_sgmv.cu). */
typedef struct lf_compute_cuda_paths {
    uint64_t conv_cudnn, conv_fallback, attn_cudnn, attn_fallback;
    uint64_t plans_built, plans_refused;
    uint64_t lora_calls, lora_launches; /* lora_terms calls, and their segmented kernel launches */
    /* Linear layers through one cublasLtMatmul with the bias epilogue, or cuBLAS + a bias kernel;
     * cuBLASLt plans (descriptors + the heuristic's algo) built and refused */
    uint64_t linear_lt, linear_fallback, lt_built, lt_refused;
} lf_compute_cuda_paths;
/* zeros for a compute that is not the CUDA one */
void lf_compute_cuda_paths_get(const lf_compute *c, lf_compute_cuda_paths *out);
/* 1 when this compute tries cuDNN for the op: a conv2d or conv2d_add with a 16-bit weight (d->weight)
 * (conv2d_add: with a 16-byte aligned residual), attention
 * (non-causal) of head width d->head_dim (a multiple of 8, at most 256: cuDNN 9's SDPA on sm80+);
 * 0 when it goes straight to the fallback (no cuDNN in the build, LF_CUDA_CUDNN=0, another op).
 * cuDNN may still refuse a shape at plan time, and that shape then falls back too. */
int lf_compute_cuda_uses_cudnn(const lf_compute *c, const lf_cop_desc *d);

/* 1 when this compute tries cuBLASLt for a Linear (d->op LF_COP_LINEAR, weight f32/f16/bf16): a build
 * with cuBLASLt, LF_CUDA_CUBLASLT not 0, the handle and workspace made at open. cuBLASLt may still
 * refuse a shape (no algo), and an operand not 16-byte aligned takes cuBLAS too. */
int lf_compute_cuda_uses_cublaslt(const lf_compute *c, const lf_cop_desc *d);

#endif
