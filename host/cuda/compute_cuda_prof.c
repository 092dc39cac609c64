/* compute_cuda_prof.c: the CUDA compute's op clock (host/base/op_clock.h), the profile by op kind of
 * `LF_COMPUTE_PROFILE=1` and lf_bench_unet_gpu on a device: each op inside an NVTX range named after its
 * kind (what Nsight Systems shows) and between two events recorded on the compute's stream. The elapsed
 * times are read when the profile is collected, or when the pool of event pairs is full, so the host
 * never waits after an op and the stream stays as full as in a run without the profile (the timed count
 * of compute_count.h syncs around each op instead, which adds the launch latency to every op).
 */
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "compute_cuda_prof.h"
#include "device_internal.h"
#include "lf_nvtx.h"

enum { LF_CPROF_PAIRS = 1024 }; /* one UNet step is ~1000 ops: a drain every step or so */

typedef struct {
    cudaEvent_t a, b;
    int op;
} lf_cprof_pair;

typedef struct {
    cudaStream_t stream;
    lf_cprof_pair pair[LF_CPROF_PAIRS];
    int made;   /* pairs whose events exist */
    int used;   /* pairs recorded since the last drain */
    int open;   /* begin recorded, end not yet */
    double *acc; /* seconds per op kind since the last collect */
    int n_ops;
} lf_cprof;

/* the status of a CUDA call of the clock ("op clock: cudaEventRecord (conv2d) failed: ...") */
static lf_status lf_cprof_cu(cudaError_t e, const char *call, const char *op, int line) {
    if (e == cudaSuccess) return LF_OK;
    return lf_err_wrap(lf_cu_err(e, call, op, __FILE__, line), "cuda compute: op clock: ");
}

/* wait for the recorded pairs and add their times into p->acc */
static lf_status lf_cprof_drain(lf_cprof *p) {
    if (p->used == 0) return LF_OK;
    lf_status st = lf_cprof_cu(cudaEventSynchronize(p->pair[p->used - 1].b), "cudaEventSynchronize", NULL, __LINE__);
    for (int i = 0; i < p->used && st == LF_OK; i++) {
        float ms = 0;
        st = lf_cprof_cu(cudaEventElapsedTime(&ms, p->pair[i].a, p->pair[i].b), "cudaEventElapsedTime", NULL,
                         __LINE__);
        if (st == LF_OK && p->pair[i].op >= 0 && p->pair[i].op < p->n_ops) p->acc[p->pair[i].op] += ms / 1e3;
    }
    p->used = 0;
    return st;
}

static lf_status lf_cprof_begin(void *ctx, int op, const char *name) {
    lf_cprof *p = ctx;
    lf_status st;
    if (p->used == LF_CPROF_PAIRS && (st = lf_cprof_drain(p)) != LF_OK) return st;
    lf_cprof_pair *q = &p->pair[p->used];
    if (p->used == p->made) {
        const char *create = "cudaEventCreateWithFlags";
        if ((st = lf_cprof_cu(cudaEventCreateWithFlags(&q->a, cudaEventDefault), create, name, __LINE__)) != LF_OK)
            return st;
        if ((st = lf_cprof_cu(cudaEventCreateWithFlags(&q->b, cudaEventDefault), create, name, __LINE__)) != LF_OK) {
            cudaEventDestroy(q->a);
            return st;
        }
        p->made++;
    }
    if ((st = lf_cprof_cu(cudaEventRecord(q->a, p->stream), "cudaEventRecord", name, __LINE__)) != LF_OK) return st;
    q->op = op;
    p->open = 1;
    LF_RANGE_PUSH(name);
    return LF_OK;
}

static lf_status lf_cprof_end(void *ctx, int op) {
    lf_cprof *p = ctx;
    (void)op;
    if (!p->open) return LF_OK;
    p->open = 0;
    LF_RANGE_POP();
    lf_status st = lf_cprof_cu(cudaEventRecord(p->pair[p->used].b, p->stream), "cudaEventRecord", NULL, __LINE__);
    if (st == LF_OK) p->used++;
    return st;
}

static lf_status lf_cprof_collect(void *ctx, double *seconds, int n_ops) {
    lf_cprof *p = ctx;
    lf_status st = lf_cprof_drain(p);
    for (int k = 0; k < n_ops && k < p->n_ops; k++) seconds[k] += p->acc[k];
    memset(p->acc, 0, (size_t)p->n_ops * sizeof *p->acc);
    p->used = 0; /* after a failed drain too: the pairs are reused, their times lost */
    return st;
}

static void lf_cprof_free(void *ctx) {
    lf_cprof *p = ctx;
    if (!p) return;
    for (int i = 0; i < p->made; i++) {
        cudaEventDestroy(p->pair[i].a);
        cudaEventDestroy(p->pair[i].b);
    }
    free(p->acc);
    free(p);
}

lf_status lf_cuda_op_clock_open(void *stream, lf_op_clock *out) {
    memset(out, 0, sizeof *out);
    lf_cprof *p = calloc(1, sizeof *p);
    if (!p || (p->acc = calloc(LF_COP_COUNT, sizeof *p->acc)) == NULL) {
        free(p);
        return lf_err(LF_ERR_NOMEM, "cuda compute: op clock: out of memory");
    }
    p->stream = (cudaStream_t)stream;
    p->n_ops = LF_COP_COUNT;
    *out = (lf_op_clock){p, lf_cprof_begin, lf_cprof_end, lf_cprof_collect, lf_cprof_free};
    return LF_OK;
}
