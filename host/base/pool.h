/* pool.h: the one thread pool of the f32 CPU operators (host/base/pool.c), internal.
 *
 * lf_par_for(n, grain, fn, ctx) runs fn(ctx, i0, i1, tid) over [0, n) cut into the fixed chunks
 * [0, grain), [grain, 2 grain), ...: the chunks depend only on n and grain, never on the number of
 * threads, and every chunk is computed by one call of fn. An operator whose chunks write disjoint
 * outputs and reduce only inside a chunk therefore gives the same bytes with 1, 2 or 64 threads.
 * Chunks are handed out dynamically (an atomic counter); the calling thread takes part. A call from
 * inside a chunk (nesting), a single chunk, or a pool of one thread runs inline on the caller.
 *
 * tid (0 .. lf_par_threads() - 1) names the thread running the chunk, for per-thread scratch:
 * lf_par_scratch(tid, nfloats) returns a buffer of at least nfloats floats owned by that thread slot,
 * grown on demand and kept for later calls (never shrunk; freed by lf_par_set_threads), or NULL when
 * it cannot be had.
 *
 * Threads: LF_NUM_THREADS from the environment, else the online CPUs (at most LF_PAR_MAX_THREADS).
 * BLAS: the pool sets OpenBLAS to one thread when it starts; the operators cut large matrix
 * products into chunks themselves, so BLAS's own threads never spin beside the pool's.
 */
#ifndef LF_POOL_H
#define LF_POOL_H

#include <stddef.h>
#include <stdint.h>

#define LF_PAR_MAX_THREADS 64

typedef void (*lf_par_fn)(void *ctx, int64_t i0, int64_t i1, int tid);

void lf_par_for(int64_t n, int64_t grain, lf_par_fn fn, void *ctx);
/* Threads the operators use, caller included (starts the pool if needed). */
int lf_par_threads(void);
/* Use n threads from now on; n < 1: back to the default (LF_NUM_THREADS, else the online CPUs).
 * Also frees the per-thread scratch buffers. Returns the count in effect. */
int lf_par_set_threads(int n);
float *lf_par_scratch(int tid, size_t nfloats);
/* Bytes held by the per-thread scratch buffers now (memory reports). */
size_t lf_par_scratch_bytes(void);

#endif
