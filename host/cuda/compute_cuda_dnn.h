/* compute_cuda_dnn.h: the cuDNN graphs of the CUDA compute backend (compute_cuda_dnn.c, used by
 * compute_cuda.c): a convolution forward with its bias add fused, and fused scaled-dot-product
 * attention, each built once per shape through the cuDNN graph (backend) API and cached. A graph
 * cuDNN refuses (no engine, a finalize that fails) is cached as refused, with the reason, and the
 * caller takes its own path for that shape. Layouts and types: docs/cuda.md "cuDNN".
 */
#ifndef LF_COMPUTE_CUDA_DNN_H
#define LF_COMPUTE_CUDA_DNN_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime.h>

#include "lorafuse/lf_status.h"
#include "lorafuse/lf_tensor.h"

typedef struct lf_dnn lf_dnn;
typedef struct lf_dnn_plan lf_dnn_plan;

typedef enum { LF_DNN_CONV = 1, LF_DNN_SDPA = 2 } lf_dnn_kind;

/* A graph's shape; compared bytewise (zero-fill it first).
 *   conv: X (N, C, H, W) and W (K, C, kh, kw) of type dtype in NHWC / KRSC order, stride and pad on
 *         both axes, Y (N, K, Ho, Wo) NHWC of type ytype (0: f32); bias != 0: Y = conv + b (1, K, 1, 1) f32,
 *         fused (the sum f32, Y rounded once).
 *   sdpa: Q (N, Lq = H, heads = C, d = K) and K, V (N, Lk = W, heads, d) of type dtype in the
 *         (N, L, heads*d) layout of compute.h's attention (BSHD); O like Q. Scale at execute. */
typedef struct lf_dnn_key {
    int32_t kind, dtype, bias, ytype;
    int64_t N, C, H, W, K, kh, kw, stride, pad;
} lf_dnn_key;

/* a cuDNN handle on stream; LF_ERR_UNSUPPORTED in a build without cuDNN (LF_HAVE_CUDNN 0), another
 * error naming the call when cudnnCreate or cudnnSetStream fails */
lf_status lf_dnn_open(cudaStream_t stream, lf_dnn **out);
void lf_dnn_close(lf_dnn *d);

/* The plan for key: built on first use, then cached. *plan NULL: cuDNN refused the graph (every shape
 * refused is remembered); *why then says which call gave which status. LF_OK unless host memory runs
 * out. LF_CUDA_CUDNN_LOG=1 prints each plan built or refused on stderr. */
lf_status lf_dnn_plan_get(lf_dnn *d, const lf_dnn_key *key, const lf_dnn_plan **plan, const char **why);
/* graphs cached (built or refused) */
size_t lf_dnn_count(const lf_dnn *d);
/* workspace bytes the plan needs at execute */
size_t lf_dnn_workspace(const lf_dnn_plan *p);
/* Run a plan on the handle's stream. conv: t[0] = X, t[1] = W, t[2] = bias (or NULL), t[3] = Y;
 * sdpa: t[0] = Q, t[1] = K, t[2] = V, t[3] = O, with scale. ws: lf_dnn_workspace bytes of device
 * memory (NULL when 0). Errors name cudnnBackendExecute (or the variant pack's call) and the status. */
lf_status lf_dnn_execute(lf_dnn *d, const lf_dnn_plan *p, void *const t[4], float scale, void *ws);

#endif
