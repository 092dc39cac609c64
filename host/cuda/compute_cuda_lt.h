/* compute_cuda_lt.h: the Linear layers of the CUDA compute backend through cuBLASLt
 * (compute_cuda_lt.c, used by compute_cuda.c): y (M, out) = x (M, in) · Wᵀ + b as one cublasLtMatmul with
 * the BIAS epilogue, its descriptors, layouts and the heuristic's algo built once per shape and cached.
 * A shape cuBLASLt refuses (no algo) is cached as refused, with the reason, and the caller takes the
 * cuBLAS path for it. Layouts and types: docs/cuda.md "cuBLASLt".
 */
#ifndef LF_COMPUTE_CUDA_LT_H
#define LF_COMPUTE_CUDA_LT_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime.h>

#include "lorafuse/lf_status.h"
#include "lorafuse/lf_tensor.h"

typedef struct lf_lt lf_lt;
typedef struct lf_lt_plan lf_lt_plan;

/* a Linear's shape; compared bytewise (zero-fill it first). W (out, in) row-major of type dtype (F32,
 * F16, BF16), x (M, in) of the same type, y (M, out) of type ytype (0: F32; else F32 or dtype); bias != 0:
 * b (out) of y's type, fused */
typedef struct lf_lt_key {
    int32_t dtype, bias, ytype, unused;
    int64_t M, in, out;
} lf_lt_key;

/* the workspace (device memory, allocated once per handle) and the operand alignment the algos are
 * chosen for: lf_lt_linear takes only W, x, y and b aligned to LF_LT_ALIGN bytes */
enum { LF_LT_WORKSPACE = 32 << 20, LF_LT_ALIGN = 16 };

/* a cuBLASLt handle and its workspace for work on stream; LF_ERR_UNSUPPORTED in a build without
 * cuBLASLt, another error naming the call when cublasLtCreate or the workspace's cudaMalloc fails */
lf_status lf_lt_open(cudaStream_t stream, lf_lt **out);
void lf_lt_close(lf_lt *lt);

/* The plan for key: built on first use, then cached. *plan NULL: cuBLASLt refused the shape (every
 * shape refused is remembered); *why then says which call gave which status. LF_OK unless host memory
 * runs out. LF_CUDA_CUBLASLT_LOG=1 prints each plan built or refused on stderr. */
lf_status lf_lt_plan_get(lf_lt *lt, const lf_lt_key *key, const lf_lt_plan **plan, const char **why);
/* plans cached (built or refused) */
size_t lf_lt_count(const lf_lt *lt);
/* y = x Wᵀ (+ b) on the handle's stream: W, x of the key's dtype, y and b of its ytype, device memory (b NULL
 * without bias). Errors name the cuBLASLt call and its status. */
lf_status lf_lt_linear(lf_lt *lt, const lf_lt_plan *p, void *y, const void *x, const void *W, const void *b);

#endif
