/* emu_compute_faults.c: fault injection on every CUDA call site of a forward-like sequence on the
 * CUDA compute backend (host/cuda/compute_cuda.c; label emu, built only with -DLF_CUDA_EMU=ON).
 *
 * The sequence, as a UNet block and a text encoder would call it: open (cuBLAS, cuDNN and cuBLASLt
 * handles, the cuBLASLt workspace);
 * upload a latent; conv 3x3 with f16 weights and bias (a cuDNN graph: conv fprop + fused bias add),
 * GroupNorm + SiLU (one op), conv 1x1 with f32 weights
 * (cublasSgemm), NCHW -> tokens, LayerNorm, q/k/v projections (bf16 and f32 weights; cuBLASLt), the
 * segmented low-rank terms of two samples on v (lora_terms: f32 and f16 factors), causal
 * attention (strided-batched products + softmax), non-causal attention of width 8 (cuDNN's SDPA),
 * GEGLU after a projection, tokens -> NCHW, a timestep
 * embedding through a Linear added per (sample, channel), nearest 2x resize, pad, channel concat, a
 * token embedding, copy2d, a conv 3x3 + bias + residual (conv2d_add: one cuDNN graph with two
 * pointwise adds), download, destroy. It runs once to count its N fallible CUDA calls, then N
 * times with call i failing (lf_emu_fail_at). Each run must: return an error from the step that made
 * the failed call, whose message names it (the CUDA or cuBLAS function, or the launcher of a kernel
 * lf_cunn_x_k: lf_cunn_x); or absorb it (a cudaMalloc retried after the cached blocks are freed, the
 * synchronisation in destroy) and then give the clean run's bytes, or (a cuDNN call while building a
 * plan: cudnnCreate, cudnnBackendCreateDescriptor, cudnnBackendFinalize) take the fallback path for
 * that op, counted as refused, with results within the SDPA's f16 bound of the clean run's (NMSE
 * 1e-6), or (a cuBLASLt call while making the handle or a Linear's plan: cublasLtCreate, the descriptor,
 * layout and preference creates, the heuristic) run that Linear on cuBLAS, counted as refused, with the
 * clean run's bytes (the emulation's cuBLAS and cuBLASLt sum alike); cublasLtMatmul itself is an error
 * naming it; and leave no allocation behind after destroy (lf_emu_live; cuBLAS handles and cuDNN handles
 * and descriptors are checked at exit).
 * Usage: emu_compute_faults [-v]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/cuda/compute_cuda.h"
#include "kernels/common/lf_half.h"
#include "kernels/emu/lf_emu.h"
#include "lf_test.h"
#include "lf_test_rng.h"
#include "lorafuse/lf_config.h"

static int verbose;

enum { NS = 2, CH = 8, HW = 4, S = HW * HW, TOK = 5, DT = 16, V = 20 };

typedef struct {
    float x[NS * CH * S], wc3[CH * CH * 9], bc3[CH], wc1[CH * CH], gn_g[CH], gn_b[CH], ln_g[CH], ln_b[CH];
    float wq[CH * CH], wk[CH * CH], wv[CH * CH], wg[2 * CH * CH], wt[CH * DT], bt[CH], table[V * CH];
    uint16_t wc3_16[CH * CH * 9], wq_16[CH * CH], ld16[3 * CH], lu16[CH * 3];
    float ld[2 * CH], lu[CH * 2];
    int32_t ids[TOK];
} inputs;

#define OUT_N (NS * 2 * CH * 4 * S + TOK * CH + NS * CH * S + NS * S * CH)

typedef struct {
    lf_status st;
    char step[48];
    char msg[1024];
    float out[OUT_N];
    lf_compute_cuda_paths paths;
} outcome;

/* run one step; on failure record it and end the sequence */
#define STEP(expr, name)                                                                       \
    do {                                                                                       \
        lf_status s_ = (expr);                                                                 \
        if (s_ != LF_OK) {                                                                     \
            o->st = s_;                                                                        \
            snprintf(o->step, sizeof o->step, "%s", (name));                                   \
            snprintf(o->msg, sizeof o->msg, "%s", lf_last_error());                            \
            goto done;                                                                         \
        }                                                                                      \
    } while (0)

static void sequence(lf_device *dev, inputs *in, outcome *o) {
    memset(o, 0, sizeof *o);
    lf_compute *c = NULL;
    float *x = NULL, *a = NULL, *b = NULL, *t0 = NULL, *q = NULL, *k = NULL, *v = NULL, *at = NULL, *g = NULL,
          *emb = NULL, *temb = NULL, *up = NULL, *pd = NULL, *cat = NULL, *tok = NULL, *sd = NULL;
    const lf_view Wc3 = {in->wc3_16, LF_F16, 4, {CH, CH, 3, 3}}, Wc1 = {in->wc1, LF_F32, 4, {CH, CH, 1, 1}};
    const lf_view Wq = {in->wq_16, LF_BF16, 2, {CH, CH}}, Wk = {in->wk, LF_F32, 2, {CH, CH}},
                  Wv = {in->wv, LF_F32, 2, {CH, CH}}, Wg = {in->wg, LF_F32, 2, {2 * CH, CH}},
                  Wt = {in->wt, LF_F32, 2, {CH, DT}};
    const float ts[NS] = {999.0f, 1.0f};
    /* a mixed batch's low-rank terms: sample 0 a rank-2 f32 term, sample 1 a rank-3 f16 one (segmented kernels) */
    const lf_lora_term lt[2] = {{{in->ld, LF_F32, 2, {2, CH}}, {in->lu, LF_F32, 2, {CH, 2}}, 0.5f},
                                {{in->ld16, LF_F16, 2, {3, CH}}, {in->lu16, LF_F16, 2, {CH, 3}}, -1.0f}};
    const lf_lora_seg segs[2] = {{0, S, 0, 1}, {S, S, 1, 1}};
    STEP(lf_compute_cuda_open(dev, &c), "open");
    STEP(c->alloc(c, NS * CH * S, &x), "alloc");
    STEP(c->upload(c, x, in->x, NS * CH * S), "upload");
    STEP(c->alloc(c, NS * CH * S, &a), "alloc");
    STEP(c->alloc(c, NS * CH * S, &b), "alloc");
    STEP(c->conv2d(c, a, x, &Wc3, in->bc3, NS, CH, HW, HW, CH, 3, 3, 1, 1), "conv 3x3");
    STEP(c->group_norm_silu(c, a, a, in->gn_g, in->gn_b, NS, CH, S, 4, 1e-5f), "group_norm_silu");
    STEP(c->conv2d(c, b, a, &Wc1, NULL, NS, CH, HW, HW, CH, 1, 1, 1, 0), "conv 1x1");
    STEP(c->alloc(c, NS * CH * S, &t0), "alloc");
    STEP(c->nchw_to_nlc(c, t0, b, NS, CH, S), "nchw_to_nlc");
    STEP(c->layer_norm(c, t0, t0, in->ln_g, in->ln_b, NS * S, CH, 1e-5f), "layer_norm");
    STEP(c->alloc(c, NS * S * CH, &q), "alloc");
    STEP(c->alloc(c, NS * S * CH, &k), "alloc");
    STEP(c->alloc(c, NS * S * CH, &v), "alloc");
    STEP(c->alloc(c, NS * S * CH, &at), "alloc");
    STEP(c->linear(c, q, t0, &Wq, NULL, NS * S, CH, CH), "linear q");
    STEP(c->linear(c, k, t0, &Wk, NULL, NS * S, CH, CH), "linear k");
    STEP(c->linear(c, v, t0, &Wv, NULL, NS * S, CH, CH), "linear v");
    STEP(c->lora_terms(c, v, t0, NS * S, CH, CH, lt, 2, segs, 2), "lora_terms");
    STEP(c->attention(c, at, q, k, v, NS, S, S, 2, CH / 2, 0.5f, 1), "attention");
    STEP(c->alloc(c, NS * S * CH, &sd), "alloc");
    STEP(c->attention(c, sd, q, k, v, NS, S, S, 1, CH, 0.35f, 0), "attention sdpa");
    STEP(c->alloc(c, NS * S * 2 * CH, &g), "alloc");
    STEP(c->linear(c, g, at, &Wg, NULL, NS * S, CH, 2 * CH), "linear geglu");
    STEP(c->geglu(c, at, g, NS * S, CH), "geglu");
    STEP(c->nlc_to_nchw(c, b, at, NS, CH, S), "nlc_to_nchw");
    STEP(c->add(c, b, b, x, NS * CH * S), "add");
    STEP(c->alloc(c, NS * DT, &emb), "alloc");
    STEP(c->alloc(c, NS * CH, &temb), "alloc");
    STEP(c->timestep_embedding(c, emb, ts, NS, DT, 1, 0.0f, 10000.0f), "timestep_embedding");
    STEP(c->linear(c, temb, emb, &Wt, in->bt, NS, DT, CH), "linear time");
    STEP(c->add_bias_nc(c, b, temb, NS, CH, S), "add_bias_nc");
    STEP(c->alloc(c, NS * CH * 4 * S, &up), "alloc");
    STEP(c->resize_nearest(c, up, b, NS, CH, HW, HW, 2 * HW, 2 * HW), "resize_nearest");
    STEP(c->alloc(c, NS * CH * (2 * HW + 1) * (2 * HW + 1), &pd), "alloc");
    STEP(c->pad2d(c, pd, up, NS, CH, 2 * HW, 2 * HW, 0, 1, 0, 1), "pad2d");
    STEP(c->alloc(c, NS * 2 * CH * 4 * S, &cat), "alloc");
    STEP(c->concat_c(c, cat, up, up, NS, CH, CH, 4 * S), "concat_c");
    STEP(c->alloc(c, TOK * CH, &tok), "alloc");
    STEP(c->embedding(c, tok, in->table, in->ids, TOK, V, CH), "embedding");
    STEP(c->copy2d(c, a, S, b, S, NS * CH, S), "copy2d");
    STEP(c->scale(c, a, a, 0.5f, NS * CH * S), "scale");
    STEP(c->conv2d_add(c, b, a, &Wc3, in->bc3, x, NS, CH, HW, HW, CH, 3, 3, 1, 1), "conv2d_add");
    STEP(c->copy2d(c, a, S, b, S, NS * CH, S), "copy2d");
    STEP(c->download(c, o->out, cat, NS * 2 * CH * 4 * S), "download");
    STEP(c->download(c, o->out + NS * 2 * CH * 4 * S, tok, TOK * CH), "download");
    STEP(c->download(c, o->out + NS * 2 * CH * 4 * S + TOK * CH, a, NS * CH * S), "download");
    STEP(c->download(c, o->out + NS * 2 * CH * 4 * S + TOK * CH + NS * CH * S, sd, NS * S * CH), "download");
    c->release(c, pd);
    pd = NULL;
    STEP(c->sync(c), "sync");
done:
    if (c) {
        float *bufs[] = {x, a, b, t0, q, k, v, at, g, emb, temb, up, pd, cat, tok, sd};
        lf_compute_cuda_paths_get(c, &o->paths);
        for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
            if (i % 2) c->release(c, bufs[i]); /* the others are left to destroy */
        c->destroy(c);
    }
}

/* the message names the call that failed (a kernel lf_cunn_x_k by its launcher lf_cunn_x) */
static void fill(inputs *in) {
    lf_test_rng r = {LF_TEST_RNG_SEED};
    float *all[] = {in->x, in->wc3, in->bc3, in->wc1, in->gn_g, in->gn_b, in->ln_g, in->ln_b, in->wq,
                    in->wk, in->wv, in->wg, in->wt, in->bt, in->table};
    size_t ns[] = {NS * CH * S, CH * CH * 9, CH, CH * CH, CH, CH, CH, CH, CH * CH, CH * CH, CH * CH, 2 * CH * CH,
                   CH * DT, CH, V * CH};
    for (size_t i = 0; i < sizeof ns / sizeof *ns; i++)
        for (size_t j = 0; j < ns[i]; j++) all[i][j] = lf_test_rng_uniform(&r, -1, 1);
    for (size_t j = 0; j < CH * CH * 9; j++) in->wc3_16[j] = lf_f32_to_f16(in->wc3[j]);
    for (size_t j = 0; j < CH * CH; j++) in->wq_16[j] = lf_f32_to_bf16(in->wq[j]);
    for (int i = 0; i < TOK; i++) in->ids[i] = (int32_t)((i * 7) % V);
    for (size_t j = 0; j < 2 * CH; j++) in->ld[j] = lf_test_rng_uniform(&r, -1, 1), in->lu[j] = lf_test_rng_uniform(&r, -1, 1);
    for (size_t j = 0; j < 3 * CH; j++)
        in->ld16[j] = lf_f32_to_f16(lf_test_rng_uniform(&r, -1, 1)), in->lu16[j] = lf_f32_to_f16(lf_test_rng_uniform(&r, -1, 1));
}

int main(int argc, char **argv) {
    verbose = argc > 1 && !strcmp(argv[1], "-v");
    lf_device *dev = NULL;
    if (lf_device_open(0, &dev) != LF_OK) LF_SKIP(lf_last_error());
    static inputs in;
    static outcome clean, o;
    fill(&in);
    lf_emu_fail_at(0);
    sequence(dev, &in, &clean);
    LF_CHECK(clean.st == LF_OK, "clean run failed in %s: %s", clean.step, clean.msg);
    if (LF_HAVE_CUDNN)
        LF_CHECK(clean.paths.conv_cudnn == 2 && clean.paths.attn_cudnn == 1 && clean.paths.plans_refused == 0,
                 "the clean run took cuDNN for %llu convolutions and %llu attentions (2 and 1 expected), %llu refused",
                 (unsigned long long)clean.paths.conv_cudnn, (unsigned long long)clean.paths.attn_cudnn,
                 (unsigned long long)clean.paths.plans_refused);
    LF_CHECK(clean.paths.linear_lt == 5 && clean.paths.linear_fallback == 0 && clean.paths.lt_built == 4 &&
                 clean.paths.lt_refused == 0,
             "the clean run took cuBLASLt for %llu Linears (5 expected, 4 plans), cuBLAS for %llu",
             (unsigned long long)clean.paths.linear_lt, (unsigned long long)clean.paths.linear_fallback);
    lf_emu_counters cnt;
    lf_emu_get_counters(&cnt);
    const uint64_t n = cnt.calls;
    printf("%llu fallible CUDA calls in the sequence\n", (unsigned long long)n);
    LF_CHECK(n > 60, "only %llu calls counted", (unsigned long long)n);
    int absorbed = 0;
    for (uint64_t i = 1; i <= n; i++) {
        lf_emu_fail_at(i);
        sequence(dev, &in, &o);
        const char *call = lf_emu_failed_call();
        uint64_t live_bytes = 0;
        size_t live = lf_emu_live(&live_bytes);
        LF_CHECK(live == 0, "call %llu (%s): %zu allocations (%llu bytes) left after destroy", (unsigned long long)i,
                 call, live, (unsigned long long)live_bytes);
        if (!call[0]) {
            LF_CHECK(o.st == LF_OK, "call %llu not reached, yet step %s failed: %s", (unsigned long long)i, o.step, o.msg);
            continue;
        }
        if (o.st == LF_OK && (!strcmp(call, "cudnnCreate") || !strcmp(call, "cudnnBackendCreateDescriptor") ||
                              !strcmp(call, "cudnnBackendFinalize"))) {
            /* a plan (or the handle) cuDNN could not make: the op took its fallback */
            absorbed++;
            const int no_dnn = !strcmp(call, "cudnnCreate");
            LF_CHECK(no_dnn ? o.paths.conv_cudnn + o.paths.attn_cudnn == 0
                            : o.paths.plans_refused == clean.paths.plans_refused + 1,
                     "call %llu (%s) absorbed without a refused plan", (unsigned long long)i, call);
            double se = 0, sr = 0;
            for (size_t j = 0; j < OUT_N; j++) {
                const double e = (double)o.out[j] - clean.out[j];
                se += e * e, sr += (double)clean.out[j] * clean.out[j];
            }
            LF_CHECK(se <= 1e-6 * sr, "call %llu (%s) absorbed by the fallback, but the results differ: NMSE %.3g",
                     (unsigned long long)i, call, se / sr);
            if (verbose) printf("call %llu (%s): fallback, NMSE %.3g\n", (unsigned long long)i, call, se / sr);
            continue;
        }
        if (o.st == LF_OK && !strncmp(call, "cublasLt", 8) && strcmp(call, "cublasLtMatmul")) {
            /* the cuBLASLt handle or a Linear's plan not made: cuBLAS + the bias kernel ran that Linear,
             * which in the emulation sums in the same order and adds the bias the same way */
            absorbed++;
            const int no_lt = !strcmp(call, "cublasLtCreate");
            LF_CHECK(no_lt ? o.paths.linear_lt == 0 : o.paths.lt_refused == clean.paths.lt_refused + 1,
                     "call %llu (%s) absorbed without a refused cuBLASLt plan", (unsigned long long)i, call);
            LF_CHECK(!memcmp(o.out, clean.out, sizeof o.out), "call %llu (%s) absorbed by cuBLAS, but the results differ",
                     (unsigned long long)i, call);
            if (verbose) printf("call %llu (%s): cuBLAS instead of cuBLASLt\n", (unsigned long long)i, call);
            continue;
        }
        if (o.st == LF_OK) {
            absorbed++;
            LF_CHECK(!strcmp(call, "cudaMalloc") || !strcmp(call, "cudaStreamSynchronize"),
                     "call %llu (%s) failed and nothing noticed", (unsigned long long)i, call);
            LF_CHECK(!memcmp(o.out, clean.out, sizeof o.out), "call %llu (%s) absorbed, but the results differ",
                     (unsigned long long)i, call);
            if (verbose) printf("call %llu (%s): absorbed\n", (unsigned long long)i, call);
            continue;
        }
        LF_CHECK(lf_emu_names_call(o.msg, call), "call %llu (%s) failed in step %s with a message not naming it: %s",
                 (unsigned long long)i, call, o.step, o.msg);
        LF_CHECK(strstr(o.msg, "cuda compute: "), "call %llu (%s): the message does not name the backend: %s",
                 (unsigned long long)i, call, o.msg);
        if (verbose) printf("call %llu (%s): %s: %s\n", (unsigned long long)i, call, o.step, o.msg);
    }
    lf_emu_fail_at(0);
    printf("%d failures absorbed (cached-block retries, destroy's synchronisation, cuDNN and cuBLASLt plans refused)\n",
           absorbed);
    lf_device_close(dev);
    return lf_test_finish();
}
