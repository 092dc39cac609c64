/* compute.h: the operator interface the model runtime (UNet, CLIP text encoders, VAE) is written
 * against, once, and that each compute backend implements (the CPU's lf_nn.h operators, the CUDA
 * backend's kernels and cuBLAS calls), in the manner of ggml's backends: one op set, one table per
 * backend, `supports` says what a backend can run.
 *
 * Memory
 *   - Activations are arrays in the backend's memory (host memory for the CPU backend, device
 *     memory for CUDA), contiguous, row-major (PyTorch layout), from alloc and given back with
 *     release. The model never dereferences them: it moves data in and out with upload/download and
 *     between buffers with copy2d. Their pointers count elements as float pointers do (p + k is
 *     element k) whatever the storage type `act` a backend keeps them in (f32, or a 16-bit type on a
 *     device: then a pointer is the backend's handle, not an address of floats); host data is f32 and
 *     upload/download convert. alloc_f32 gives a buffer stored in f32 whatever `act` is (state that
 *     must not round, the sampler's latents); copy2d converts between two buffers' storage types.
 *     Ops other than upload, download and copy2d take their activations in one storage type.
 *   - Weights stay where the model keeps them: matrix-product weights as an lf_view in the
 *     checkpoint's dtype (lf_tensor.h), biases and norm parameters as host f32 arrays. A backend
 *     that computes elsewhere keeps its own resident copy of each weight, found by the view's data
 *     pointer (or the array's address), made on first use; forget(ptr, bytes) drops every copy made
 *     from host memory overlapping that range when the model rewrites, rebinds or frees it (the
 *     runtime's weight watcher, host/runtime/weight_load.h, reports each such change), bind(ptr, ...)
 *     points it at memory the backend already holds (weights patched on the device: `patch`).
 *
 * Ops: the operators of kernels/cpu/nn/lf_nn.h with the same argument order, shapes and meaning
 * (read the formula there): output first, then inputs, then sizes, then options. Every op returns an
 * lf_status (a device backend reports launch and library errors there). Element-wise ops may run in
 * place; every other op needs its output distinct from its inputs. Results: the CPU backend gives
 * lf_nn's bytes exactly; other backends are compared with it per op and end to end (docs/cuda.md).
 */
#ifndef LF_COMPUTE_H
#define LF_COMPUTE_H

#include <stddef.h>
#include <stdint.h>

#include "host/base/op_clock.h"
#include "kernels/common/lf_sample_update.h"
#include "lorafuse/lf_status.h"
#include "lorafuse/lf_tensor.h"

typedef enum lf_cop {
    LF_COP_LINEAR, LF_COP_CONV2D, LF_COP_GROUP_NORM, LF_COP_LAYER_NORM, LF_COP_SILU, LF_COP_GELU,
    LF_COP_GELU_TANH, LF_COP_QUICK_GELU, LF_COP_GEGLU, LF_COP_ADD, LF_COP_MUL, LF_COP_SCALE, LF_COP_ADD_BIAS_C,
    LF_COP_ADD_BIAS_NC, LF_COP_ATTENTION, LF_COP_NCHW_TO_NLC, LF_COP_NLC_TO_NCHW, LF_COP_RESIZE_NEAREST,
    LF_COP_PAD2D, LF_COP_CONCAT_C, LF_COP_TIMESTEP_EMBEDDING, LF_COP_EMBEDDING, LF_COP_COPY2D, LF_COP_CONV2D_ADD,
    LF_COP_GROUP_NORM_SILU,
    LF_COP_SAMPLE_UPDATE, /* the sampler's element-wise updates and the CFG combine (sample_update) */
    LF_COP_COUNT
} lf_cop;

typedef struct lf_compute lf_compute;

/* Adapters patched in the backend's own memory (a device backend; NULL on the CPU): a patch model of
 * step plan sp's jobs `jobs` (n plan job indices) holding every weight's pristine W0 and a working copy
 * in the type the backend keeps that weight in (the job's dtype, or the backend's own weight type when it
 * converts: CUDA's --dtype) and the job's shape (row-major, conv (out, in, kh, kw) flattened as the ops read it); step
 * brings the working copies to step t's coefficients (always from W0, only the jobs whose coefficients
 * differ from what they hold; in the compute's order, complete on return) and says how many it
 * rewrote; weight(m, i) is job jobs[i]'s working copy, for bind. Errors name the call and the layer.
 * retarget(c, m, sp, jobs, n): step reads step plan sp's coefficients for its jobs `jobs` from now on; the
 * caller vouches that they are the model's layers with the same patches (adapter files, modules and their
 * parameters, in order), whatever their coefficients, so a model kept across jobs is stepped like a new
 * one and gives its bytes (layers are always rewritten from W0, and only where the coefficients differ
 * from what they hold). LF_ERR_ARG, nothing changed, when the layout differs. NULL: make a new model. */
struct lf_step_plan;
typedef struct lf_compute_patcher {
    lf_status (*create)(lf_compute *c, const struct lf_step_plan *sp, const size_t *jobs, size_t n, void **out);
    lf_status (*step)(lf_compute *c, void *m, int t, size_t *rewritten);
    void *(*weight)(void *m, size_t i);
    void (*free)(void *m);
    lf_status (*retarget)(lf_compute *c, void *m, const struct lf_step_plan *sp, const size_t *jobs, size_t n);
} lf_compute_patcher;

/* Arguments of `supports`: the op, the dtype of its weight (LF_F32 when it has none) and, for
 * attention, the head width (0 otherwise). */
typedef struct lf_cop_desc {
    lf_cop op;
    lf_dtype weight;
    int64_t head_dim;
} lf_cop_desc;

/* One low-rank term of lora_terms: down (R, in) and up (out, R), host arrays in f32 / f16 / bf16 (views, kept
 * resident by a device backend like any weight: forget them when they are rewritten or freed), and its
 * coefficient. A segment: rows [row0, row0 + rows) of x and y, and its terms terms[term0 .. term0 + n_terms). */
typedef struct lf_lora_term {
    lf_view down, up;
    float scale;
} lf_lora_term;
typedef struct lf_lora_seg {
    int64_t row0, rows;
    size_t term0, n_terms;
} lf_lora_seg;

struct lf_compute {
    const char *name; /* "cpu", "cuda" */
    void *impl;
    int host_memory;  /* 1: backend memory is host memory (the CPU): host arrays may be passed as they are */
    lf_dtype act;     /* storage type of alloc's buffers: LF_F32 (the CPU), LF_F16 or LF_BF16 */

    /* ---- memory -------------------------------------------------------------------------------- */
    /* n floats of backend memory (contents undefined); LF_ERR_NOMEM names what was asked for. */
    lf_status (*alloc)(lf_compute *c, int64_t n, float **out);
    void (*release)(lf_compute *c, float *p); /* NULL allowed */
    /* n floats stored in f32 whatever act is; NULL when act is LF_F32 (alloc does it): use
     * lf_compute_alloc_f32. Given back with release. */
    lf_status (*alloc_f32)(lf_compute *c, int64_t n, float **out);
    /* upload has read host_src when it returns (the caller may free it); download has written host_dst. */
    lf_status (*upload)(lf_compute *c, float *dst, const float *host_src, int64_t n);
    lf_status (*download)(lf_compute *c, float *host_dst, const float *src, int64_t n);
    /* rows x cols floats: dst[r * dst_ld + j] = src[r * src_ld + j], both in backend memory. */
    lf_status (*copy2d)(lf_compute *c, float *dst, int64_t dst_ld, const float *src, int64_t src_ld, int64_t rows,
                        int64_t cols);
    /* Waits for queued work (a no-op on the CPU); errors of asynchronous work surface here at the latest. */
    lf_status (*sync)(lf_compute *c);
    /* The host memory [p, p + bytes) is being rewritten, rebound or freed: drop every resident copy made
     * from memory overlapping it. May be called from several threads at once. bind: use dev (backend
     * memory of the view's size, in the type the backend keeps that weight in: a patcher's weight) for the
     * weight at host address p from now on. */
    void (*forget)(lf_compute *c, const void *p, size_t bytes);
    lf_status (*bind)(lf_compute *c, const void *p, const lf_view *v, void *dev);
    int (*supports)(const lf_compute *c, const lf_cop_desc *d);
    void (*destroy)(lf_compute *c);
    const lf_compute_patcher *patch; /* NULL: adapters are patched on the host */
    /* The backend's op clock for a profile by op kind (op_clock.h; the count's clocked mode); NULL: none,
     * a profile then syncs around each op. */
    lf_status (*clock)(lf_compute *c, lf_op_clock *out);

    /* ---- ops (lf_nn.h) ------------------------------------------------------------------------- */
    lf_status (*linear)(lf_compute *c, float *y, const float *x, const lf_view *W, const float *b, int64_t M,
                        int64_t in, int64_t out);
    lf_status (*conv2d)(lf_compute *c, float *y, const float *x, const lf_view *W, const float *b, int64_t N,
                        int64_t C_in, int64_t H, int64_t Wd, int64_t C_out, int64_t kh, int64_t kw, int64_t stride,
                        int64_t pad);
    lf_status (*group_norm)(lf_compute *c, float *y, const float *x, const float *gamma, const float *beta,
                            int64_t N, int64_t C, int64_t S, int64_t groups, float eps);
    lf_status (*layer_norm)(lf_compute *c, float *y, const float *x, const float *gamma, const float *beta,
                            int64_t M, int64_t D, float eps);
    lf_status (*silu)(lf_compute *c, float *y, const float *x, int64_t n);
    lf_status (*gelu)(lf_compute *c, float *y, const float *x, int64_t n);
    lf_status (*gelu_tanh)(lf_compute *c, float *y, const float *x, int64_t n);
    lf_status (*quick_gelu)(lf_compute *c, float *y, const float *x, int64_t n);
    lf_status (*geglu)(lf_compute *c, float *y, const float *x, int64_t M, int64_t F);
    lf_status (*add)(lf_compute *c, float *y, const float *a, const float *b, int64_t n);
    lf_status (*mul)(lf_compute *c, float *y, const float *a, const float *b, int64_t n);
    lf_status (*scale)(lf_compute *c, float *y, const float *x, float s, int64_t n);
    /* b: host f32 parameters (add_bias_c: a model bias) or, for add_bias_nc, backend memory (an
     * activation: the per-sample time embedding). */
    lf_status (*add_bias_c)(lf_compute *c, float *x, const float *b, int64_t N, int64_t C, int64_t S);
    lf_status (*add_bias_nc)(lf_compute *c, float *x, const float *b, int64_t N, int64_t C, int64_t S);
    lf_status (*attention)(lf_compute *c, float *out, const float *q, const float *k, const float *v, int64_t N,
                           int64_t Lq, int64_t Lk, int64_t heads, int64_t d, float scale, int causal);
    lf_status (*nchw_to_nlc)(lf_compute *c, float *y, const float *x, int64_t N, int64_t C, int64_t S);
    lf_status (*nlc_to_nchw)(lf_compute *c, float *y, const float *x, int64_t N, int64_t C, int64_t S);
    lf_status (*resize_nearest)(lf_compute *c, float *y, const float *x, int64_t N, int64_t C, int64_t H, int64_t W,
                                int64_t Ho, int64_t Wo);
    lf_status (*pad2d)(lf_compute *c, float *y, const float *x, int64_t N, int64_t C, int64_t H, int64_t W,
                       int64_t left, int64_t right, int64_t top, int64_t bottom);
    lf_status (*concat_c)(lf_compute *c, float *y, const float *a, const float *b, int64_t N, int64_t Ca, int64_t Cb,
                          int64_t S);
    /* t: host (N) timesteps; emb: backend memory. */
    lf_status (*timestep_embedding)(lf_compute *c, float *emb, const float *t, int64_t N, int64_t dim,
                                    int flip_sin_to_cos, float shift, float max_period);
    /* table: host f32 (V, D) (a model weight), ids: host (L); y: backend memory. */
    lf_status (*embedding)(lf_compute *c, float *y, const float *table, const int32_t *ids, int64_t L, int64_t V,
                           int64_t D);
    /* The sampler's loop on the compute (host/sample/sampler.c): update u (kernels/common/lf_sample_update.h:
     * the op, its flags and host-computed scalars) on element i of b[0 .. lf_su_nbufs(u)), i < n; every b
     * an f32 buffer (alloc_f32). The same formula on every backend: the same bytes (no contraction). */
    lf_status (*sample_update)(lf_compute *c, const lf_sample_upd *u, float *const *b, int64_t n);

    /* ---- optional ops (NULL: the backend has none; callers compose them from the ops above) ---------- */
    /* Segmented low-rank terms (S-LoRA / Punica SGMV): for every row m of every segment,
     *     y[m] += sum_k scale_k * up_k (down_k x[m]),   x (M, in), y (M, out) backend memory;
     * every job of a mixed batch in one call (host/runtime/compute_mix.c). Segments' rows must not overlap
     * (LF_ERR_ARG); terms may be shared by several segments. Bounds: f32 sums of another order than
     * the down / up products. */
    lf_status (*lora_terms)(lf_compute *c, float *y, const float *x, int64_t M, int64_t in, int64_t out,
                            const lf_lora_term *terms, size_t n_terms, const lf_lora_seg *segs, size_t n_segs);
    /* y = conv2d(x, W, b) + res: a convolution and the residual add after it in one op (a resnet's
     * skip). res (N, C_out, Ho, Wo) backend memory, distinct from y (and x). The composition it
     * replaces: conv2d into y, then add(y, y, res) (lf_mc_conv2d_add, model_compute.h). */
    lf_status (*conv2d_add)(lf_compute *c, float *y, const float *x, const lf_view *W, const float *b,
                            const float *res, int64_t N, int64_t C_in, int64_t H, int64_t Wd, int64_t C_out,
                            int64_t kh, int64_t kw, int64_t stride, int64_t pad);
    /* y = silu(group_norm(x)), in place allowed: group_norm then silu(y, y) (lf_mc_group_norm_silu). */
    lf_status (*group_norm_silu)(lf_compute *c, float *y, const float *x, const float *gamma, const float *beta,
                                 int64_t N, int64_t C, int64_t S, int64_t groups, float eps);
};

/* c->alloc_f32 where the backend has it, else alloc (whose buffers are then f32) */
static inline lf_status lf_compute_alloc_f32(lf_compute *c, int64_t n, float **out) {
    return c->alloc_f32 ? c->alloc_f32(c, n, out) : c->alloc(c, n, out);
}

#endif
