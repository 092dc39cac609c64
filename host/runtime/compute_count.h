/* compute_count.h: a compute (host/base/compute.h) that counts what a forward pass asks of a backend:
 * calls, FLOPs and bytes per op kind, and the activation memory it holds (live and peak), either
 * around another compute (every call is passed on, results unchanged) or dry (inner NULL: nothing is
 * computed, the buffers are placeholders that must never be read, which the model code never does).
 *
 * A dry run of a shapes-only model (model_mem.h) gives, without weights or arithmetic, the activation
 * peak of a forward pass (the memory estimate) and its FLOPs and bytes against a device's floors
 * (bench/bench_unet_counts.c). Counting rules, per call, from the shapes alone:
 *   linear  FLOPs 2·M·in·out;  conv2d 2·N·Ho·Wo·C_out·C_in·kh·kw;  attention 4·N·heads·Lq·Lk·d
 *           (+ 5·N·heads·Lq·Lk for the softmax);  norms 8 per element;  activations and arithmetic 1
 *           per element (GELU/SiLU family 8); layout and copies 0; the fused conv2d_add and
 *           group_norm_silu their parts' FLOPs, the bytes of one pass (the residual read once more).
 *   bytes   every f32 activation read and written once, each weight once in its stored dtype
 *           (a lower bound: what a kernel that keeps its operands on chip must move).
 * Timed (lf_compute_count_init_timed): each op between two syncs of the inner compute, for a profile by
 * op kind on any backend; clocked (lf_compute_count_init_clocked): each op between the marks of the
 * backend's own clock (host/base/op_clock.h: CUDA events and NVTX ranges), with no wait per op.
 */
#ifndef LF_COMPUTE_COUNT_H
#define LF_COMPUTE_COUNT_H

#include <stddef.h>
#include <stdint.h>

#include "host/base/compute.h"
#include "host/base/op_clock.h"

typedef struct lf_cop_stats {
    uint64_t calls;
    double flops, bytes;        /* activation and weight bytes together */
    double weight_bytes;        /* of which weights */
    double seconds;             /* timed: wall time of the calls, each between two syncs of the inner compute */
} lf_cop_stats;

typedef struct lf_compute_count {
    lf_compute c;               /* the table to hand to the model (first: &cc->c == (lf_compute *)cc) */
    lf_compute *inner;          /* NULL: dry */
    int timed;                  /* lf_compute_count_init_timed or _clocked */
    lf_op_clock clock;          /* _clocked: the backend's clock (begin NULL otherwise) */
    lf_cop_stats op[LF_COP_COUNT];
    double live, peak;          /* bytes of activation buffers held now / at most */
    uint64_t allocs;
    /* host -> backend (upload) and backend -> host (download) calls and bytes (f32 host data) */
    uint64_t uploads, downloads;
    double up_bytes, down_bytes;
    /* the buffers handed out and not yet released, with their sizes (placeholders when dry) */
    struct lf_cnt_buf { float *p; double bytes; } *bufs;
    size_t n_bufs, cap_bufs;
} lf_compute_count;

/* cc counts around inner (NULL: dry). Call lf_compute_count_reset to zero the counters,
 * cc->c.destroy (or lf_compute_count_free) to free its own memory (never the inner compute). */
void lf_compute_count_init(lf_compute_count *cc, lf_compute *inner);
/* Dry, as a backend with the optional fused ops (conv2d_add, group_norm_silu: the CUDA backend's);
 * lf_compute_count_init's dry count composes them like the CPU. */
void lf_compute_count_init_fused(lf_compute_count *cc);
/* Around inner, also timing every op: inner->sync before and after each (the time of one op alone, at the
 * price of the overlap a real run has; a profile, LF_COMPUTE_PROFILE=1 in generate). */
void lf_compute_count_init_timed(lf_compute_count *cc, lf_compute *inner);
/* Around inner, timing every op with the backend's clock (taken over: lf_compute_count_free frees it);
 * the seconds reach the counters at lf_compute_count_collect. */
void lf_compute_count_init_clocked(lf_compute_count *cc, lf_compute *inner, const lf_op_clock *clock);
/* A clocked count: wait for the timed work and add its seconds to the counters (LF_OK at once for the
 * other kinds); call before lf_compute_count_report. Errors name the backend call that failed. */
lf_status lf_compute_count_collect(lf_compute_count *cc);
/* A table of the counts (and times) per op kind into buf: calls, GFLOP, GB, seconds, achieved GFLOP/s and
 * GB/s; returns buf. */
char *lf_compute_count_report(const lf_compute_count *cc, char *buf, size_t cap);
void lf_compute_count_reset(lf_compute_count *cc);
void lf_compute_count_free(lf_compute_count *cc);
/* "linear", "conv2d", ... */
const char *lf_cop_name(lf_cop op);

#endif
