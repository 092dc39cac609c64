/* gpu_compute_ops.c: the CUDA compute backend (host/cuda/compute_cuda.c, host/base/compute.h) op by
 * op against the CPU operators of kernels/cpu/nn/lf_nn.h, in the manner of ggml's test-backend-ops:
 * every op of compute.h on a few shapes (odd sizes, SD-like shapes scaled down, attention heads of
 * width 40/64/80 causal and not, convolutions 3x3 stride 1/2 pad 1, 1x1, pad 0), matrix-product
 * weights in f32/f16/bf16, random data from a printed seed; each result is compared by NMSE
 * (sum (g - r)^2 / sum r^2) and max-abs, against the bounds of docs/cuda.md "Compute backend":
 *   exact 0 (moves, copies, add/mul/scale, bias adds: the same one f32 operation per element);
 *   1e-10 (f32 transcendental element-wise ops, norms, softmax, f32-weight products: f32 sums in
 *         another order and CUDA's expf/erff vs the CPU's);
 *   1e-6 / 5e-5 (f16 / bf16 weights: the activation is cast to the weight's 16-bit type before the
 *         GEMM, relative error up to 2^-11 / 2^-8 per input, NMSE about u^2/3 for random data);
 *   1e-7 (timestep embedding: arguments up to t = 1000 amplify an ulp of the frequency).
 *   1e-6 (attention through cuDNN's fused SDPA: q, k, v, the probabilities P and the output in f16,
 *         each rounding ~u^2/3 = 8e-8 of NMSE, ~2.4e-7 in all).
 * Convolutions with a 16-bit weight and non-causal attention of head width d % 8 == 0, d <= 256 go
 * through cuDNN graphs where the build has cuDNN (host/cuda/compute_cuda_dnn.c), everything else
 * through the fallback (im2col + cuBLAS, batched cuBLAS + softmax); each case checks which path its
 * op took (lf_compute_cuda_paths_get): --require-cudnn fails a case that could use cuDNN and did not,
 * --require-fallback one that used it (run with LF_CUDA_CUDNN=0, or LF_EMU_CUDNN_REFUSE=all in the
 * emulation: cuDNN refuses every graph, --require-refused checks that it was asked and refused).
 * Linear layers likewise go through cuBLASLt (one matmul with the bias epilogue,
 * host/cuda/compute_cuda_lt.c) or cuBLAS + the bias kernel, and the same options cover them:
 * --require-cudnn also fails a Linear that could use cuBLASLt and did not, --require-fallback one that
 * did (LF_CUDA_CUBLASLT=0), --require-refused checks cuBLASLt was asked and refused every shape
 * (LF_EMU_CUBLASLT_REFUSE=1 in the emulation).
 * Then the memory ops (upload/download/copy2d, the caching allocator), the weight cache (a forgotten
 * weight is uploaded again, a bound one used as is) and argument errors. Per-op worst NMSE and
 * max-abs are printed at the end. Label gpu (exit 77 without CUDA or a device), emu in the emulation.
 * --act f16|bf16 runs the op cases on a compute whose activations and weights are 16-bit
 * (lf_compute_cuda_open_as; docs/cuda.md "Precision"): every bound is then at least the storage's
 * rounding (ACT_F16 / ACT_BF16 below: inputs, outputs and weights each rounded once, NMSE about u^2/3
 * per rounding, a few roundings per op), and t_precision checks the handles (pointer arithmetic on a
 * 16-bit buffer), alloc_f32, converting copy2d, the mixed-type refusal and the non-finite check.
 * Usage: gpu_compute_ops [--seed N] [-v] [--act f16|bf16] [--require-cudnn | --require-fallback [--require-refused]]
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_test_open.h"
#include "host/cuda/compute_cuda.h"
#include "kernels/common/lf_half.h"
#include "host/runtime/compute_cpu.h"
#include "kernels/cpu/nn/lf_nn.h"
#include "lf_test.h"
#include "lf_test_rng.h"
#include "lorafuse/lf_device.h"

static lf_compute *C;
static lf_test_rng R;
static double act_floor; /* the least bound of every case on a 16-bit compute (--act), 0 on f32 */
static int verbose, require_cudnn, require_fallback, require_refused;

static const char *const OPS[LF_COP_COUNT] = {
    "linear", "conv2d", "group_norm", "layer_norm", "silu", "gelu", "gelu_tanh", "quick_gelu", "geglu", "add",
    "mul", "scale", "add_bias_c", "add_bias_nc", "attention", "nchw_to_nlc", "nlc_to_nchw", "resize_nearest",
    "pad2d", "concat_c", "timestep_embedding", "embedding", "copy2d", "conv2d_add", "group_norm_silu",
    "sample_update"};

static struct {
    double nmse, maxabs;
    int cases;
} stat[LF_COP_COUNT];

#define NMSE_F32 1e-10
#define NMSE_F16 1e-6
#define NMSE_BF16 5e-5
#define NMSE_SDPA 1e-6
/* --act: f16 storage, u = 2^-11, u^2/3 = 8e-8 per rounding; bf16, u = 2^-8, 5e-6 per rounding; a case
 * rounds its inputs, its weight and its output (attention also P): 4-5 roundings, 2-3x margin */
#define ACT_F16 1e-6
#define ACT_BF16 5e-5

/* ---- helpers ----------------------------------------------------------------------------------- */

/* random inputs; on a 16-bit compute rounded to its type, so that the reference sees what the device
 * holds and a case measures its op's own error (a norm of values far from 0 would otherwise show the
 * input's rounding amplified by |mean| / std) */
static float *rnd(int64_t n, float lo, float hi) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = lf_test_rng_uniform(&R, lo, hi);
    for (int64_t i = 0; C && C->act == LF_F16 && i < n; i++) p[i] = lf_f16_to_f32(lf_f32_to_f16(p[i]));
    for (int64_t i = 0; C && C->act == LF_BF16 && i < n; i++) p[i] = lf_bf16_to_f32(lf_f32_to_bf16(p[i]));
    return p;
}

static float *dev_from(const float *h, int64_t n) {
    float *d = NULL;
    lf_status st = C->alloc(C, n, &d);
    LF_CHECK(st == LF_OK, "alloc %lld: %s", (long long)n, lf_last_error());
    if (st == LF_OK && n) {
        st = C->upload(C, d, h, n);
        LF_CHECK(st == LF_OK, "upload: %s", lf_last_error());
    }
    return d;
}

static float *dev_empty(int64_t n) {
    float *d = NULL;
    lf_status st = C->alloc(C, n, &d);
    LF_CHECK(st == LF_OK, "alloc %lld: %s", (long long)n, lf_last_error());
    return d;
}

static float *host_from(const float *d, int64_t n) {
    float *h = malloc((size_t)(n > 0 ? n : 1) * sizeof *h);
    for (int64_t i = 0; i < n; i++) h[i] = NAN;
    lf_status st = C->download(C, h, d, n);
    LF_CHECK(st == LF_OK, "download: %s", lf_last_error());
    return h;
}

/* compare the device result d (n values) with the reference ref; bound 0 = bitwise */
static void compare(lf_cop op, const char *label, const float *ref, const float *d, int64_t n, double bound) {
    float *g = host_from(d, n);
    double se = 0, sr = 0, mabs = 0;
    int64_t bad = -1, diff = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(g[i]) && bad < 0) bad = i;
        double e = (double)g[i] - (double)ref[i];
        if (g[i] != ref[i]) diff++;
        se += e * e;
        sr += (double)ref[i] * ref[i];
        mabs = fmax(mabs, fabs(e));
    }
    double nmse = sr > 0 ? se / sr : se;
    if (bound < act_floor) bound = act_floor;
    LF_CHECK(bad < 0, "%s %s: element %lld is %g (reference %g)", OPS[op], label, (long long)bad,
             bad >= 0 ? g[bad] : 0.0, bad >= 0 ? ref[bad] : 0.0);
    if (bound == 0) LF_CHECK(diff == 0, "%s %s: %lld of %lld elements differ (must be exact)", OPS[op], label,
                             (long long)diff, (long long)n);
    else LF_CHECK(nmse <= bound, "%s %s: NMSE %.3g > %.3g (max abs %.3g)", OPS[op], label, nmse, bound, mabs);
    stat[op].nmse = fmax(stat[op].nmse, nmse);
    stat[op].maxabs = fmax(stat[op].maxabs, mabs);
    stat[op].cases++;
    if (verbose) printf("  %-18s %-40s NMSE %.3g max abs %.3g\n", OPS[op], label, nmse, mabs);
    free(g);
}

static void ok(lf_status st, const char *what) { LF_CHECK(st == LF_OK, "%s: %s", what, lf_last_error()); }

/* a weight of n values in dtype dt from the f32 values w (rounded to dt; w is overwritten with the
 * rounded values, the reference's exact input) */
static lf_view weight_of(float *w, int ndim, const int64_t *shape, lf_dtype dt, void **mem) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    lf_view v = {0};
    v.dtype = dt;
    v.ndim = ndim;
    for (int i = 0; i < ndim; i++) v.shape[i] = shape[i];
    if (dt == LF_F32) {
        *mem = malloc((size_t)n * 4);
        memcpy(*mem, w, (size_t)n * 4);
    } else {
        uint16_t *h = malloc((size_t)n * 2);
        for (int64_t i = 0; i < n; i++) {
            h[i] = dt == LF_F16 ? lf_f32_to_f16(w[i]) : lf_f32_to_bf16(w[i]);
            w[i] = dt == LF_F16 ? lf_f16_to_f32(h[i]) : lf_bf16_to_f32(h[i]);
        }
        *mem = h;
    }
    v.data = *mem;
    return v;
}

static double bound_of(lf_dtype dt) { return dt == LF_F16 ? NMSE_F16 : dt == LF_BF16 ? NMSE_BF16 : NMSE_F32; }

static const lf_dtype DTS[3] = {LF_F32, LF_F16, LF_BF16};

/* the path the last conv2d or attention took (counts before: *before), checked against the options;
 * 1 when it was cuDNN */
static int path_of(lf_cop op, const char *label, const lf_compute_cuda_paths *before, int could) {
    lf_compute_cuda_paths now;
    lf_compute_cuda_paths_get(C, &now);
    const uint64_t dnn = op == LF_COP_CONV2D ? now.conv_cudnn - before->conv_cudnn : now.attn_cudnn - before->attn_cudnn;
    const uint64_t fb =
        op == LF_COP_CONV2D ? now.conv_fallback - before->conv_fallback : now.attn_fallback - before->attn_fallback;
    LF_CHECK(dnn + fb == 1, "%s %s: counted %llu cuDNN and %llu fallback runs for one op", OPS[op], label,
             (unsigned long long)dnn, (unsigned long long)fb);
    LF_CHECK(!dnn || could, "%s %s: took cuDNN where it must not", OPS[op], label);
    if (require_cudnn) LF_CHECK(dnn || !could, "%s %s: could use cuDNN but took the fallback", OPS[op], label);
    if (require_fallback) LF_CHECK(!dnn, "%s %s: took cuDNN (--require-fallback)", OPS[op], label);
    if (verbose) printf("  %-18s %-40s path %s\n", OPS[op], label, dnn ? "cuDNN" : "fallback");
    return dnn != 0;
}

/* ---- matrix products --------------------------------------------------------------------------- */

/* the path the last linear took (counts before: *before): cuBLASLt (1) or cuBLAS, against the options */
static int lt_path_of(const char *label, const lf_compute_cuda_paths *before, int could) {
    lf_compute_cuda_paths now;
    lf_compute_cuda_paths_get(C, &now);
    const uint64_t lt = now.linear_lt - before->linear_lt, fb = now.linear_fallback - before->linear_fallback;
    LF_CHECK(lt + fb == 1, "linear %s: counted %llu cuBLASLt and %llu cuBLAS runs for one op", label,
             (unsigned long long)lt, (unsigned long long)fb);
    LF_CHECK(!lt || could, "linear %s: took cuBLASLt where it must not", label);
    if (require_cudnn) LF_CHECK(lt || !could, "linear %s: could use cuBLASLt but took cuBLAS", label);
    if (require_fallback) LF_CHECK(!lt, "linear %s: took cuBLASLt (--require-fallback)", label);
    if (verbose) printf("  %-18s %-40s path %s\n", "linear", label, lt ? "cuBLASLt" : "cuBLAS");
    return lt != 0;
}

/* y (M, out) = x W^T (+ b) for W in f32, f16, bf16; shift > 0 offsets y by that many floats from its
 * allocation's start (an operand cuBLASLt's 16-byte aligned algos must not get: cuBLAS runs it) */
static void t_linear_at(int64_t M, int64_t in, int64_t out, int bias, int shift) {
    for (int t = 0; t < 3; t++) {
        float *x = rnd(M * in, -1, 1), *w = rnd(out * in, -0.5f, 0.5f), *b = bias ? rnd(out, -1, 1) : NULL;
        void *mem;
        int64_t shape[2] = {out, in};
        lf_view W = weight_of(w, 2, shape, DTS[t], &mem);
        float *ref = malloc((size_t)(M * out) * 4);
        lf_nn_linear(ref, x, w, b, M, in, out);
        float *dx = dev_from(x, M * in), *dy = dev_empty(M * out + shift);
        lf_compute_cuda_paths before;
        lf_compute_cuda_paths_get(C, &before);
        ok(C->linear(C, dy + shift, dx, &W, b, M, in, out), "linear");
        char label[96];
        snprintf(label, sizeof label, "%s M%lld in%lld out%lld%s%s", lf_dtype_name(DTS[t]), (long long)M,
                 (long long)in, (long long)out, bias ? " +b" : "", shift ? " y unaligned" : "");
        lf_cop_desc d = {0};
        d.op = LF_COP_LINEAR;
        d.weight = DTS[t];
        const int lt = lt_path_of(label, &before, !shift && lf_compute_cuda_uses_cublaslt(C, &d));
        LF_CHECK(!shift || !lt, "linear %s: an unaligned y went to cuBLASLt", label);
        compare(LF_COP_LINEAR, label, ref, dy + shift, M * out, bound_of(DTS[t]));
        C->forget(C, mem, 1);
        if (b) C->forget(C, b, 1);
        C->release(C, dx);
        C->release(C, dy);
        free(x), free(w), free(b), free(ref), free(mem);
    }
}

static void t_linear(int64_t M, int64_t in, int64_t out, int bias) { t_linear_at(M, in, out, bias, 0); }

/* conv2d, or (res) conv2d_add with a residual; res_shift > 0 offsets the residual by that many floats
 * (not 16-byte aligned: cuDNN cannot read it in place, the fallback runs) */
static void t_conv_at(int64_t N, int64_t Ci, int64_t H, int64_t Wd, int64_t Co, int64_t k, int64_t stride, int64_t pad,
                      int bias, int res, int res_shift) {
    const int64_t Ho = lf_nn_conv_out(H, k, stride, pad), Wo = lf_nn_conv_out(Wd, k, stride, pad), ny = N * Co * Ho * Wo;
    const lf_cop op = res ? LF_COP_CONV2D_ADD : LF_COP_CONV2D;
    for (int t = 0; t < 3; t++) {
        float *x = rnd(N * Ci * H * Wd, -1, 1), *w = rnd(Co * Ci * k * k, -0.5f, 0.5f), *b = bias ? rnd(Co, -1, 1) : NULL;
        float *r = res ? rnd(ny, -2, 2) : NULL;
        void *mem;
        int64_t shape[4] = {Co, Ci, k, k};
        lf_view W = weight_of(w, 4, shape, DTS[t], &mem);
        float *ref = malloc((size_t)ny * 4);
        ok(lf_nn_conv2d(ref, x, w, b, N, Ci, H, Wd, Co, k, k, stride, pad), "cpu conv2d");
        if (r) lf_nn_add(ref, ref, r, ny);
        float *dx = dev_from(x, N * Ci * H * Wd), *dy = dev_empty(ny), *dr = NULL;
        if (r) {
            dr = dev_empty(ny + res_shift);
            ok(C->upload(C, dr + res_shift, r, ny), "upload residual");
        }
        lf_compute_cuda_paths before;
        lf_compute_cuda_paths_get(C, &before);
        if (r) ok(C->conv2d_add(C, dy, dx, &W, b, dr + res_shift, N, Ci, H, Wd, Co, k, k, stride, pad), "conv2d_add");
        else ok(C->conv2d(C, dy, dx, &W, b, N, Ci, H, Wd, Co, k, k, stride, pad), "conv2d");
        char label[96];
        snprintf(label, sizeof label, "%s N%lld %lld->%lld %lldx%lld k%lld s%lld p%lld%s%s", lf_dtype_name(DTS[t]),
                 (long long)N, (long long)Ci, (long long)Co, (long long)H, (long long)Wd, (long long)k,
                 (long long)stride, (long long)pad, bias ? " +b" : "", res_shift ? " +res unaligned" : res ? " +res" : "");
        const lf_cop_desc cd = {op, DTS[t], 0};
        path_of(LF_COP_CONV2D, label, &before, !res_shift && lf_compute_cuda_uses_cudnn(C, &cd));
        compare(op, label, ref, dy, ny, bound_of(DTS[t]));
        C->forget(C, mem, 1);
        if (b) C->forget(C, b, 1);
        C->release(C, dx);
        C->release(C, dy);
        if (dr) C->release(C, dr);
        free(x), free(w), free(b), free(r), free(ref), free(mem);
    }
}

static void t_conv(int64_t N, int64_t Ci, int64_t H, int64_t Wd, int64_t Co, int64_t k, int64_t stride, int64_t pad,
                   int bias) {
    t_conv_at(N, Ci, H, Wd, Co, k, stride, pad, bias, 0, 0);
}

static void t_attention(int64_t N, int64_t Lq, int64_t Lk, int64_t heads, int64_t d, int causal) {
    const int64_t HD = heads * d;
    float *q = rnd(N * Lq * HD, -1, 1), *k = rnd(N * Lk * HD, -1, 1), *v = rnd(N * Lk * HD, -1, 1);
    float *ref = malloc((size_t)(N * Lq * HD) * 4);
    const float scale = 1.0f / sqrtf((float)d);
    ok(lf_nn_attention(ref, q, k, v, N, Lq, Lk, heads, d, scale, causal), "cpu attention");
    float *dq = dev_from(q, N * Lq * HD), *dk = dev_from(k, N * Lk * HD), *dv = dev_from(v, N * Lk * HD);
    float *dout = dev_empty(N * Lq * HD);
    lf_compute_cuda_paths before;
    lf_compute_cuda_paths_get(C, &before);
    ok(C->attention(C, dout, dq, dk, dv, N, Lq, Lk, heads, d, scale, causal), "attention");
    char label[96];
    snprintf(label, sizeof label, "N%lld Lq%lld Lk%lld h%lld d%lld%s", (long long)N, (long long)Lq, (long long)Lk,
             (long long)heads, (long long)d, causal ? " causal" : "");
    const lf_cop_desc ad = {LF_COP_ATTENTION, LF_F32, d};
    const int dnn = path_of(LF_COP_ATTENTION, label, &before, !causal && lf_compute_cuda_uses_cudnn(C, &ad));
    compare(LF_COP_ATTENTION, label, ref, dout, N * Lq * HD, dnn ? NMSE_SDPA : NMSE_F32);
    C->release(C, dq), C->release(C, dk), C->release(C, dv), C->release(C, dout);
    free(q), free(k), free(v), free(ref);
}

/* ---- the other ops ----------------------------------------------------------------------------- */

static void t_norms(void) {
    /* the last three are cut into pieces (4, 3 of unequal length, 2; see nn_norm.cu), the last with a
     * mean 35 times its spread, which the pieces' combination must not lose (at 350 times, the f32
     * rounding of the mean alone reaches the bound, in one block as in pieces) */
    static const int64_t gn[][4] = {{2, 32, 64, 8}, {1, 12, 17, 3}, {1, 64, 9, 32}, {1, 32, 1024, 4},
                                    {1, 21, 1111, 3}, {2, 64, 300, 4}};
    for (int i = 0; i < 6; i++) {
        const int64_t N = gn[i][0], Cc = gn[i][1], S = gn[i][2], G = gn[i][3], n = N * Cc * S;
        float *x = i == 5 ? rnd(n, 10, 11) : rnd(n, -2, 3), *g = i != 2 ? rnd(Cc, 0.5f, 1.5f) : NULL,
              *b = i != 2 ? rnd(Cc, -1, 1) : NULL;
        float *ref = malloc((size_t)n * 4);
        lf_nn_group_norm(ref, x, g, b, N, Cc, S, G, 1e-5f);
        float *dx = dev_from(x, n);
        ok(C->group_norm(C, dx, dx, g, b, N, Cc, S, G, 1e-5f), "group_norm (in place)");
        char label[64];
        snprintf(label, sizeof label, "N%lld C%lld S%lld G%lld%s", (long long)N, (long long)Cc, (long long)S,
                 (long long)G, g ? "" : " no affine");
        compare(LF_COP_GROUP_NORM, label, ref, dx, n, NMSE_F32);
        /* fused with SiLU: the CPU's group_norm + silu within the norm's bound, and with f32 activations
         * the device's own two ops bit for bit (the same expressions in one pass; in 16 bits the fused op
         * rounds once where the two round the norm's output too, so only in place = out of place) */
        float *dx2 = dev_from(x, n), *dy2 = dev_empty(n);
        lf_nn_silu(ref, ref, n);
        ok(C->group_norm_silu(C, dy2, dx2, g, b, N, Cc, S, G, 1e-5f), "group_norm_silu");
        compare(LF_COP_GROUP_NORM_SILU, label, ref, dy2, n, NMSE_F32);
        float *two = host_from(dy2, n);
        ok(C->group_norm_silu(C, dx2, dx2, g, b, N, Cc, S, G, 1e-5f), "group_norm_silu (in place)");
        ok(C->silu(C, dx, dx, n), "silu");
        float *fused = host_from(dx2, n), *sep = host_from(dx, n);
        if (C->act == LF_F32)
            LF_CHECK(!memcmp(fused, sep, (size_t)n * 4) && !memcmp(two, sep, (size_t)n * 4),
                     "group_norm_silu %s: not the bits of group_norm then silu on the device", label);
        else
            LF_CHECK(!memcmp(fused, two, (size_t)n * 4), "group_norm_silu %s: in place differs", label);
        free(two), free(fused), free(sep);
        C->release(C, dx2), C->release(C, dy2);
        if (g) C->forget(C, g, 1), C->forget(C, b, 1);
        C->release(C, dx);
        free(x), free(g), free(b), free(ref);
    }
    static const int64_t ln[][2] = {{7, 77}, {5, 768}, {3, 1}};
    for (int i = 0; i < 3; i++) {
        const int64_t M = ln[i][0], D = ln[i][1];
        float *x = rnd(M * D, -2, 3), *g = rnd(D, 0.5f, 1.5f), *b = rnd(D, -1, 1);
        float *ref = malloc((size_t)(M * D) * 4);
        lf_nn_layer_norm(ref, x, g, b, M, D, 1e-5f);
        float *dx = dev_from(x, M * D), *dy = dev_empty(M * D);
        ok(C->layer_norm(C, dy, dx, g, b, M, D, 1e-5f), "layer_norm");
        char label[64];
        snprintf(label, sizeof label, "M%lld D%lld", (long long)M, (long long)D);
        compare(LF_COP_LAYER_NORM, label, ref, dy, M * D, D == 1 ? 0 : NMSE_F32);
        C->forget(C, g, 1), C->forget(C, b, 1);
        C->release(C, dx), C->release(C, dy);
        free(x), free(g), free(b), free(ref);
    }
}

static void t_elementwise(void) {
    static const int64_t ns[] = {1000, 4097};
    for (int i = 0; i < 2; i++) {
        const int64_t n = ns[i];
        float *x = rnd(n, -6, 6), *y = rnd(n, -3, 3), *ref = malloc((size_t)n * 4);
        float *dx = dev_from(x, n), *dy = dev_from(y, n), *dz = dev_empty(n);
        char label[32];
        snprintf(label, sizeof label, "n%lld", (long long)n);
        lf_nn_silu(ref, x, n), ok(C->silu(C, dz, dx, n), "silu"), compare(LF_COP_SILU, label, ref, dz, n, NMSE_F32);
        lf_nn_gelu(ref, x, n), ok(C->gelu(C, dz, dx, n), "gelu"), compare(LF_COP_GELU, label, ref, dz, n, NMSE_F32);
        lf_nn_gelu_tanh(ref, x, n), ok(C->gelu_tanh(C, dz, dx, n), "gelu_tanh");
        compare(LF_COP_GELU_TANH, label, ref, dz, n, NMSE_F32);
        lf_nn_quick_gelu(ref, x, n), ok(C->quick_gelu(C, dz, dx, n), "quick_gelu");
        compare(LF_COP_QUICK_GELU, label, ref, dz, n, NMSE_F32);
        lf_nn_add(ref, x, y, n), ok(C->add(C, dz, dx, dy, n), "add"), compare(LF_COP_ADD, label, ref, dz, n, 0);
        lf_nn_mul(ref, x, y, n), ok(C->mul(C, dz, dx, dy, n), "mul"), compare(LF_COP_MUL, label, ref, dz, n, 0);
        lf_nn_scale(ref, x, 0.18215f, n), ok(C->scale(C, dx, dx, 0.18215f, n), "scale in place");
        compare(LF_COP_SCALE, label, ref, dx, n, 0);
        C->release(C, dx), C->release(C, dy), C->release(C, dz);
        free(x), free(y), free(ref);
    }
    /* GEGLU, bias adds */
    const int64_t M = 5, F = 33, N = 2, Cc = 5, S = 13;
    float *x = rnd(M * 2 * F, -4, 4), *ref = malloc((size_t)(M * F) * 4);
    lf_nn_geglu(ref, x, M, F);
    float *dx = dev_from(x, M * 2 * F), *dy = dev_empty(M * F);
    ok(C->geglu(C, dy, dx, M, F), "geglu");
    compare(LF_COP_GEGLU, "M5 F33", ref, dy, M * F, NMSE_F32);
    C->release(C, dx), C->release(C, dy);
    free(x), free(ref);
    float *a = rnd(N * Cc * S, -1, 1), *bc = rnd(Cc, -1, 1), *bnc = rnd(N * Cc, -1, 1);
    float *da = dev_from(a, N * Cc * S), *dbnc = dev_from(bnc, N * Cc);
    lf_nn_add_bias_c(a, bc, N, Cc, S);
    ok(C->add_bias_c(C, da, bc, N, Cc, S), "add_bias_c");
    compare(LF_COP_ADD_BIAS_C, "N2 C5 S13", a, da, N * Cc * S, 0);
    lf_nn_add_bias_nc(a, bnc, N, Cc, S);
    ok(C->add_bias_nc(C, da, dbnc, N, Cc, S), "add_bias_nc");
    compare(LF_COP_ADD_BIAS_NC, "N2 C5 S13", a, da, N * Cc * S, 0);
    C->forget(C, bc, 1);
    C->release(C, da), C->release(C, dbnc);
    free(a), free(bc), free(bnc);
}

static void t_layout(void) {
    static const int64_t tr[][3] = {{2, 37, 45}, {1, 64, 64}, {1, 1, 7}, {1, 70, 33}};
    for (int i = 0; i < 4; i++) {
        const int64_t N = tr[i][0], Cc = tr[i][1], S = tr[i][2], n = N * Cc * S;
        float *x = rnd(n, -1, 1), *ref = malloc((size_t)n * 4);
        float *dx = dev_from(x, n), *dy = dev_empty(n);
        char label[48];
        snprintf(label, sizeof label, "N%lld C%lld S%lld", (long long)N, (long long)Cc, (long long)S);
        lf_nn_nchw_to_nlc(ref, x, N, Cc, S), ok(C->nchw_to_nlc(C, dy, dx, N, Cc, S), "nchw_to_nlc");
        compare(LF_COP_NCHW_TO_NLC, label, ref, dy, n, 0);
        lf_nn_nlc_to_nchw(ref, x, N, Cc, S), ok(C->nlc_to_nchw(C, dy, dx, N, Cc, S), "nlc_to_nchw");
        compare(LF_COP_NLC_TO_NCHW, label, ref, dy, n, 0);
        C->release(C, dx), C->release(C, dy);
        free(x), free(ref);
    }
    static const int64_t rs[][4] = {{5, 7, 10, 14}, {5, 7, 7, 9}, {5, 7, 3, 4}, {6, 6, 13, 5}};
    for (int i = 0; i < 4; i++) {
        const int64_t N = 2, Cc = 3, H = rs[i][0], W = rs[i][1], Ho = rs[i][2], Wo = rs[i][3];
        float *x = rnd(N * Cc * H * W, -1, 1), *ref = malloc((size_t)(N * Cc * Ho * Wo) * 4);
        float *dx = dev_from(x, N * Cc * H * W), *dy = dev_empty(N * Cc * Ho * Wo);
        lf_nn_resize_nearest(ref, x, N, Cc, H, W, Ho, Wo);
        ok(C->resize_nearest(C, dy, dx, N, Cc, H, W, Ho, Wo), "resize_nearest");
        char label[48];
        snprintf(label, sizeof label, "%lldx%lld -> %lldx%lld", (long long)H, (long long)W, (long long)Ho, (long long)Wo);
        compare(LF_COP_RESIZE_NEAREST, label, ref, dy, N * Cc * Ho * Wo, 0);
        C->release(C, dx), C->release(C, dy);
        free(x), free(ref);
    }
    static const int64_t pd[][4] = {{0, 1, 0, 1}, {1, 2, 3, 0}};
    for (int i = 0; i < 2; i++) {
        const int64_t N = 2, Cc = 3, H = 5, W = 6, Ho = H + pd[i][2] + pd[i][3], Wo = W + pd[i][0] + pd[i][1];
        float *x = rnd(N * Cc * H * W, -1, 1), *ref = malloc((size_t)(N * Cc * Ho * Wo) * 4);
        float *dx = dev_from(x, N * Cc * H * W), *dy = dev_empty(N * Cc * Ho * Wo);
        lf_nn_pad2d(ref, x, N, Cc, H, W, pd[i][0], pd[i][1], pd[i][2], pd[i][3]);
        ok(C->pad2d(C, dy, dx, N, Cc, H, W, pd[i][0], pd[i][1], pd[i][2], pd[i][3]), "pad2d");
        char label[48];
        snprintf(label, sizeof label, "(%lld, %lld, %lld, %lld)", (long long)pd[i][0], (long long)pd[i][1],
                 (long long)pd[i][2], (long long)pd[i][3]);
        compare(LF_COP_PAD2D, label, ref, dy, N * Cc * Ho * Wo, 0);
        C->release(C, dx), C->release(C, dy);
        free(x), free(ref);
    }
    const int64_t N = 2, Ca = 3, Cb = 4, S = 10;
    float *a = rnd(N * Ca * S, -1, 1), *b = rnd(N * Cb * S, -1, 1), *ref = malloc((size_t)(N * (Ca + Cb) * S) * 4);
    float *da = dev_from(a, N * Ca * S), *db = dev_from(b, N * Cb * S), *dy = dev_empty(N * (Ca + Cb) * S);
    lf_nn_concat_c(ref, a, b, N, Ca, Cb, S);
    ok(C->concat_c(C, dy, da, db, N, Ca, Cb, S), "concat_c");
    compare(LF_COP_CONCAT_C, "N2 3+4 S10", ref, dy, N * (Ca + Cb) * S, 0);
    C->release(C, da), C->release(C, db), C->release(C, dy);
    free(a), free(b), free(ref);
}

static void t_embed(void) {
    const float t[3] = {0.0f, 500.5f, 999.0f};
    static const struct { int64_t dim; int flip; float shift; } ts[2] = {{320, 1, 0.0f}, {257, 0, 1.0f}};
    for (int i = 0; i < 2; i++) {
        const int64_t dim = ts[i].dim;
        float *ref = malloc((size_t)(3 * dim) * 4), *de = dev_empty(3 * dim);
        lf_nn_timestep_embedding(ref, t, 3, dim, ts[i].flip, ts[i].shift, 10000.0f);
        ok(C->timestep_embedding(C, de, t, 3, dim, ts[i].flip, ts[i].shift, 10000.0f), "timestep_embedding");
        char label[48];
        snprintf(label, sizeof label, "dim %lld flip %d shift %g", (long long)dim, ts[i].flip, ts[i].shift);
        compare(LF_COP_TIMESTEP_EMBEDDING, label, ref, de, 3 * dim, 1e-7);
        C->release(C, de);
        free(ref);
    }
    const int64_t V = 50, D = 24, L = 17;
    float *table = rnd(V * D, -1, 1), *ref = malloc((size_t)(L * D) * 4), *dy = dev_empty(L * D);
    int32_t ids[17];
    for (int i = 0; i < L; i++) ids[i] = (int32_t)(lf_test_rng_next(&R) % (uint64_t)V);
    ids[0] = 0, ids[L - 1] = (int32_t)V - 1;
    ok(lf_nn_embedding(ref, table, ids, L, V, D), "cpu embedding");
    ok(C->embedding(C, dy, table, ids, L, V, D), "embedding");
    compare(LF_COP_EMBEDDING, "V50 D24 L17", ref, dy, L * D, 0);
    ids[5] = (int32_t)V;
    lf_status st = C->embedding(C, dy, table, ids, L, V, D);
    LF_CHECK(st == LF_ERR_ARG && strstr(lf_last_error(), "position 5"), "embedding with id V: %d %s", st, lf_last_error());
    C->forget(C, table, 1);
    C->release(C, dy);
    free(table), free(ref);
}

/* ---- the sampler's updates (every op and flag: gpu_sample) ---------------------------------------- */

static void t_sample_update(void) {
    const int64_t n = 1000;
    float *u = rnd(n, -2, 2), *c = rnd(n, -2, 2), *ref = malloc((size_t)n * sizeof *ref);
    float *du = NULL, *dc = NULL, *dy = NULL;
    ok(lf_compute_alloc_f32(C, n, &du), "alloc_f32");
    ok(lf_compute_alloc_f32(C, n, &dc), "alloc_f32");
    ok(lf_compute_alloc_f32(C, n, &dy), "alloc_f32");
    ok(C->upload(C, du, u, n), "upload");
    ok(C->upload(C, dc, c, n), "upload");
    lf_sample_upd cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.op = LF_SU_CFG;
    cfg.k[0] = 7.5f;
    float *hb[LF_SU_BUFS] = {ref, u, c, NULL, NULL, NULL}, *db[LF_SU_BUFS] = {dy, du, dc, NULL, NULL, NULL};
    ok(lf_compute_cpu()->sample_update(lf_compute_cpu(), &cfg, hb, n), "cpu sample_update");
    ok(C->sample_update(C, &cfg, db, n), "sample_update");
    compare(LF_COP_SAMPLE_UPDATE, "CFG 7.5, 1000", ref, dy, n, 0);
    C->release(C, du), C->release(C, dc), C->release(C, dy);
    free(u), free(c), free(ref);
}

/* ---- memory ops and the weight cache ----------------------------------------------------------- */

static void t_memory(void) {
    const int64_t rows = 5, cols = 7, sld = 11, dld = 9;
    float *h = rnd(rows * sld, -1, 1), *ref = malloc((size_t)(rows * dld) * 4);
    float *ds = dev_from(h, rows * sld), *dd = dev_from(h, rows * dld); /* dd's gaps keep h's values */
    memcpy(ref, h, (size_t)(rows * dld) * 4);
    for (int64_t r = 0; r < rows; r++) memcpy(ref + r * dld, h + r * sld, (size_t)cols * 4);
    ok(C->copy2d(C, dd, dld, ds, sld, rows, cols), "copy2d");
    compare(LF_COP_COPY2D, "5x7 ld 11 -> 9", ref, dd, rows * dld, 0);
    LF_CHECK(C->copy2d(C, dd, 5, ds, sld, rows, cols) == LF_ERR_ARG, "copy2d with cols > dst_ld accepted");
    ok(C->sync(C), "sync");
    /* the caching allocator hands a released block out again */
    float *p = dev_empty(1000);
    C->release(C, p);
    float *q = dev_empty(900);
    LF_CHECK(q == p, "a released block of 1000 floats was not reused for 900");
    C->release(C, q);
    C->release(C, NULL);
    C->release(C, ds), C->release(C, dd);
    free(h), free(ref);

    /* weight cache: stale until forgotten; bind */
    const int64_t M = 3, in = 8, out = 5;
    float *x = rnd(M * in, -1, 1), *w = rnd(out * in, -1, 1), *w2 = rnd(out * in, -1, 1);
    float *r1 = malloc((size_t)(M * out) * 4), *r2 = malloc((size_t)(M * out) * 4);
    lf_nn_linear(r1, x, w, NULL, M, in, out);
    lf_nn_linear(r2, x, w2, NULL, M, in, out);
    lf_view W = {w, LF_F32, 2, {out, in}};
    float *dx = dev_from(x, M * in), *dy = dev_empty(M * out);
    ok(C->linear(C, dy, dx, &W, NULL, M, in, out), "linear");
    compare(LF_COP_LINEAR, "cache: first use", r1, dy, M * out, NMSE_F32);
    float *keep = malloc((size_t)(out * in) * 4);
    memcpy(keep, w, (size_t)(out * in) * 4);
    memcpy(w, w2, (size_t)(out * in) * 4); /* patched on the host: the resident copy is stale ... */
    ok(C->linear(C, dy, dx, &W, NULL, M, in, out), "linear");
    compare(LF_COP_LINEAR, "cache: stale copy used", r1, dy, M * out, NMSE_F32);
    C->forget(C, w, 1); /* ... until forgotten */
    ok(C->linear(C, dy, dx, &W, NULL, M, in, out), "linear");
    compare(LF_COP_LINEAR, "cache: re-uploaded", r2, dy, M * out, NMSE_F32);
    /* bind: the op uses the bound device memory (the old values), whatever the host holds */
    float *dw = dev_from(keep, out * in);
    ok(C->bind(C, w, &W, dw), "bind");
    ok(C->linear(C, dy, dx, &W, NULL, M, in, out), "linear");
    compare(LF_COP_LINEAR, "cache: bound", r1, dy, M * out, NMSE_F32);
    lf_view W16 = {w, LF_F16, 2, {out, in}};
    LF_CHECK(C->linear(C, dy, dx, &W16, NULL, M, in, out) == LF_ERR_SHAPE, "a bound f32 weight used as f16");
    C->forget(C, w, 1);
    ok(C->linear(C, dy, dx, &W, NULL, M, in, out), "linear");
    compare(LF_COP_LINEAR, "cache: unbound, re-uploaded", r2, dy, M * out, NMSE_F32);
    C->forget(C, w, 1);
    /* argument errors */
    lf_view Wbad = {w, LF_F32, 2, {out, in - 1}};
    LF_CHECK(C->linear(C, dy, dx, &Wbad, NULL, M, in, out) == LF_ERR_SHAPE, "a weight of the wrong size accepted");
    lf_view W8 = {w, LF_F8_E4M3, 2, {out, in}};
    LF_CHECK(C->linear(C, dy, dx, &W8, NULL, M, in, out) == LF_ERR_UNSUPPORTED && strstr(lf_last_error(), "linear"),
             "an f8 weight: %s", lf_last_error());
    lf_cop_desc d16 = {LF_COP_LINEAR, LF_F16, 0}, d8 = {LF_COP_CONV2D, LF_F8_E4M3, 0}, da = {LF_COP_ATTENTION, LF_F32, 80};
    LF_CHECK(C->supports(C, &d16) && !C->supports(C, &d8) && C->supports(C, &da), "supports");
    C->release(C, dw), C->release(C, dx), C->release(C, dy);
    free(x), free(w), free(w2), free(r1), free(r2), free(keep);
}

/* the weight cache of a 16-bit conv weight, whose cuDNN path also keeps a KRSC copy: a forgotten
 * weight's copy is made again from the new values; a bound one (device memory its owner patches in
 * place) is reordered at every call, so a patch of the bound memory shows at the next call */
/* a 16-bit compute's handles: offsets into a 16-bit buffer, alloc_f32, copy2d between the two storage
 * types, an op given both refused, the non-finite check */
static void t_precision(void) {
    const int64_t n = 40, off = 3;
    float *h = rnd(n, -2, 2), *back = malloc((size_t)n * 4), *r16 = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) /* the values the 16-bit buffer holds */
        r16[i] = C->act == LF_F16 ? lf_f16_to_f32(lf_f32_to_f16(h[i])) : lf_bf16_to_f32(lf_f32_to_bf16(h[i]));
    float *a = dev_empty(n + off), *f = NULL;
    ok(lf_compute_alloc_f32(C, n + off, &f), "alloc_f32");
    ok(C->upload(C, a + off, h, n), "upload at an offset");
    ok(C->download(C, back, a + off, n), "download at an offset");
    LF_CHECK(!memcmp(back, r16, (size_t)n * 4), "a 16-bit buffer at an offset: not the rounded values");
    ok(C->upload(C, f + off, h, n), "upload f32");
    ok(C->copy2d(C, a, 8, f + off, 8, n / 8, 8), "copy2d f32 -> 16-bit");
    compare(LF_COP_COPY2D, "f32 -> 16-bit", r16, a, n, 0);
    ok(C->copy2d(C, f, 8, a, 8, n / 8, 8), "copy2d 16-bit -> f32"); /* a holds r16 */
    ok(C->download(C, back, f, n), "download f32");
    LF_CHECK(!memcmp(back, r16, (size_t)n * 4), "copy2d 16-bit -> f32 is not exact");
    LF_CHECK(C->add(C, a, a, f, n) == LF_ERR_ARG, "an add of a 16-bit and an f32 buffer accepted");
    C->release(C, a), C->release(C, f);
    free(h), free(back), free(r16);
}

static void t_conv_cache(void) {
    enum { N = 1, Ci = 4, H = 6, Wd = 5, Co = 8, KK = 3, NW = Co * Ci * KK * KK };
    const int64_t shape[4] = {Co, Ci, KK, KK}, Ho = H, Wo = Wd, ny = N * Co * Ho * Wo;
    float *x = rnd(N * Ci * H * Wd, -1, 1), *w1 = rnd(NW, -0.5f, 0.5f), *w2 = rnd(NW, -0.5f, 0.5f);
    void *m1, *m2;
    lf_view W1 = weight_of(w1, 4, shape, LF_F16, &m1);
    (void)weight_of(w2, 4, shape, LF_F16, &m2); /* w2 rounded to f16, its bits in m2 */
    float *r1 = malloc((size_t)ny * 4), *r2 = malloc((size_t)ny * 4);
    ok(lf_nn_conv2d(r1, x, w1, NULL, N, Ci, H, Wd, Co, KK, KK, 1, 1), "cpu conv2d");
    ok(lf_nn_conv2d(r2, x, w2, NULL, N, Ci, H, Wd, Co, KK, KK, 1, 1), "cpu conv2d");
    float *dx = dev_from(x, N * Ci * H * Wd), *dy = dev_empty(ny);
    ok(C->conv2d(C, dy, dx, &W1, NULL, N, Ci, H, Wd, Co, KK, KK, 1, 1), "conv2d");
    compare(LF_COP_CONV2D, "cache: first use", r1, dy, ny, NMSE_F16);
    memcpy(m1, m2, (size_t)NW * 2); /* patched on the host and forgotten: both copies made again */
    C->forget(C, m1, 1);
    ok(C->conv2d(C, dy, dx, &W1, NULL, N, Ci, H, Wd, Co, KK, KK, 1, 1), "conv2d");
    compare(LF_COP_CONV2D, "cache: re-uploaded", r2, dy, ny, NMSE_F16);
    /* bound to device memory holding w2's bits, then patched there to w1's */
    float *dw = dev_from((const float *)m2, NW / 2);
    ok(C->bind(C, m1, &W1, dw), "bind");
    ok(C->conv2d(C, dy, dx, &W1, NULL, N, Ci, H, Wd, Co, KK, KK, 1, 1), "conv2d");
    compare(LF_COP_CONV2D, "cache: bound", r2, dy, ny, NMSE_F16);
    uint16_t *h1 = malloc((size_t)NW * 2);
    for (int i = 0; i < NW; i++) h1[i] = lf_f32_to_f16(w1[i]);
    ok(C->upload(C, dw, (const float *)h1, NW / 2), "upload");
    ok(C->conv2d(C, dy, dx, &W1, NULL, N, Ci, H, Wd, Co, KK, KK, 1, 1), "conv2d");
    compare(LF_COP_CONV2D, "cache: bound, patched in place", r1, dy, ny, NMSE_F16);
    C->forget(C, m1, 1);
    C->forget(C, m2, 1);
    C->release(C, dw), C->release(C, dx), C->release(C, dy);
    free(x), free(w1), free(w2), free(m1), free(m2), free(r1), free(r2), free(h1);
}

int main(int argc, char **argv) {
    uint64_t seed = 20261206;
    lf_dtype act = LF_F32;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "-v")) verbose = 1;
        else if (!strcmp(argv[i], "--require-cudnn")) require_cudnn = 1;
        else if (!strcmp(argv[i], "--require-fallback")) require_fallback = 1;
        else if (!strcmp(argv[i], "--require-refused")) require_refused = 1;
        else if (!strcmp(argv[i], "--act") && i + 1 < argc) act = lf_dtype_from_name(argv[++i]);
        else {
            fprintf(stderr, "usage: gpu_compute_ops [--seed N] [-v] [--act F16|BF16] [--require-cudnn | "
                            "--require-fallback [--require-refused]]\n");
            return 2;
        }
    }
    lf_device *dev = NULL;
    if (lf_test_cuda_open(&dev, &C) != LF_OK) return lf_test_finish();
    if (act != LF_F32) {
        LF_CHECK(act == LF_F16 || act == LF_BF16, "--act: F16 or BF16");
        C->destroy(C);
        lf_status st = lf_compute_cuda_open_as(dev, act, act, &C);
        LF_CHECK(st == LF_OK, "a %s compute: %s", lf_dtype_name(act), lf_last_error());
        if (st != LF_OK) return lf_test_finish();
        act_floor = act == LF_F16 ? ACT_F16 : ACT_BF16;
    }
    printf("seed %llu (--seed to repeat), device %s\n", (unsigned long long)seed, lf_device_describe(dev));
    lf_test_rng_seed(&R, seed);

    t_linear(7, 33, 19, 1);
    t_linear(77, 64, 40, 0);
    t_linear(77, 65, 31, 1);   /* 77 text tokens, odd sizes */
    t_linear(32, 320, 320, 1);
    t_linear(77, 40, 96, 1);   /* out > in, as a GEGLU projection widens */
    t_linear(1, 40, 24, 1);    /* one row: a timestep embedding's Linear */
    t_linear(1, 33, 17, 0);
    t_linear(4096, 24, 20, 1); /* 64x64 latent tokens */
    t_linear_at(9, 16, 12, 1, 1);
    t_conv(2, 5, 9, 7, 6, 3, 1, 1, 1);  /* odd sizes, 3x3 s1 p1 */
    t_conv(1, 8, 12, 12, 16, 3, 2, 1, 1); /* downsample 3x3 s2 p1 */
    t_conv(1, 3, 9, 9, 4, 3, 2, 0, 0);  /* the VAE encoder's pad-0 s2 */
    t_conv(2, 16, 8, 8, 12, 1, 1, 0, 1); /* 1x1: plain GEMM */
    t_conv(1, 4, 5, 6, 3, 1, 2, 0, 1);  /* 1x1 s2: through im2col */
    t_conv(1, 32, 16, 16, 32, 3, 1, 1, 1); /* SD-like, scaled down */
    t_conv(2, 8, 6, 5, 16, 3, 1, 1, 0);  /* 3x3 s1 p1 without bias */
    t_conv(1, 16, 7, 7, 8, 1, 1, 0, 0);  /* 1x1 without bias */
    t_conv(1, 8, 11, 10, 8, 3, 2, 1, 0); /* 3x3 s2 p1 without bias, odd sizes */
    t_conv_at(2, 5, 9, 7, 6, 3, 1, 1, 1, 1, 0);   /* conv2d_add: a resnet's conv2 + skip, odd sizes */
    t_conv_at(1, 32, 16, 16, 32, 3, 1, 1, 1, 1, 0);
    t_conv_at(2, 8, 6, 5, 16, 3, 1, 1, 0, 1, 0);  /* without bias: conv -> residual add */
    t_conv_at(2, 16, 8, 8, 12, 1, 1, 0, 1, 1, 0); /* 1x1: a transformer's proj_out + residual */
    t_conv_at(1, 8, 12, 12, 16, 3, 2, 1, 1, 1, 0); /* strided */
    t_conv_at(1, 8, 7, 9, 8, 3, 1, 1, 1, 1, 1);   /* residual not 16-byte aligned: the fallback */
    t_attention(2, 16, 16, 2, 40, 0);
    t_attention(2, 16, 16, 2, 40, 1);
    t_attention(1, 33, 77, 2, 64, 0); /* cross-attention, 77 text tokens */
    t_attention(1, 20, 20, 1, 80, 1);
    t_attention(1, 20, 20, 1, 80, 0);
    t_attention(1, 24, 24, 3, 64, 1);
    t_attention(2, 12, 9, 2, 160, 0); /* SD1.5's deepest blocks */
    t_attention(1, 12, 12, 1, 160, 1);
    t_attention(1, 10, 10, 2, 36, 0); /* a width cuDNN's SDPA does not take */
    t_attention(1, 6, 6, 1, 264, 0);
    t_norms();
    t_elementwise();
    t_layout();
    t_embed();
    t_sample_update(); /* f32 buffers (alloc_f32) whatever act is */
    if (act == LF_F32) { /* the weight cache's cases hold weights in their own dtype */
        t_memory();
        t_conv_cache();
    } else {
        t_precision();
    }

    lf_compute_cuda_paths paths;
    lf_compute_cuda_paths_get(C, &paths);
    printf("paths: conv2d %llu cuDNN, %llu fallback; attention %llu cuDNN, %llu fallback; cuDNN plans %llu built, %llu "
           "refused; linear %llu cuBLASLt, %llu cuBLAS; cuBLASLt plans %llu built, %llu refused\n",
           (unsigned long long)paths.conv_cudnn, (unsigned long long)paths.conv_fallback,
           (unsigned long long)paths.attn_cudnn, (unsigned long long)paths.attn_fallback,
           (unsigned long long)paths.plans_built, (unsigned long long)paths.plans_refused,
           (unsigned long long)paths.linear_lt, (unsigned long long)paths.linear_fallback,
           (unsigned long long)paths.lt_built, (unsigned long long)paths.lt_refused);
    if (require_cudnn)
        LF_CHECK(paths.conv_cudnn > 0 && paths.attn_cudnn > 0 && paths.linear_lt > 0, "no op took cuDNN or cuBLASLt");
    if (require_refused) LF_CHECK(paths.plans_refused > 0 && paths.plans_built == 0, "cuDNN refused no graph");
    if (require_refused)
        LF_CHECK(paths.lt_refused > 0 && paths.lt_built == 0, "cuBLASLt refused no Linear shape");
    printf("%-20s %6s %12s %12s\n", "op", "cases", "worst NMSE", "max abs");
    for (int i = 0; i < LF_COP_COUNT; i++) {
        LF_CHECK(stat[i].cases > 0, "op %s not tested", OPS[i]);
        printf("%-20s %6d %12.3g %12.3g\n", OPS[i], stat[i].cases, stat[i].nmse, stat[i].maxabs);
    }
    C->destroy(C);
    lf_device_close(dev);
    return lf_test_finish();
}
