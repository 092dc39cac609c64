/* pool.c: the thread pool of the f32 CPU operators (pool.h).
 *
 * Workers sleep on a condition variable between jobs (no spinning, so an idle pool costs no CPU and
 * no sched_yield system time); a job is published under the mutex with a new generation number, its
 * chunks are claimed with an atomic counter, and the caller waits until every worker has left it.
 * Jobs are serialised by job_mu: one lf_par_for runs at a time, so the per-thread scratch slots are
 * never shared. The pool lives until the process exits (workers are detached; their scratch stays
 * reachable from the static pool, and lf_par_set_threads frees it).
 */
#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "pool.h"

static struct {
    pthread_mutex_t mu, job_mu;
    pthread_cond_t go, done;
    int workers;         /* worker threads started (tids 1 .. workers) */
    int use;             /* threads a job uses, caller included (1 .. LF_PAR_MAX_THREADS) */
    unsigned long gen;   /* job generation */
    int active;          /* workers not yet done with the current generation */
    lf_par_fn fn;
    void *ctx;
    int64_t n, grain, nchunks;
    atomic_llong next;
    float *scr[LF_PAR_MAX_THREADS];
    size_t cap[LF_PAR_MAX_THREADS];
    unsigned long start_gen[LF_PAR_MAX_THREADS]; /* generation when worker i was created */
} P = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
       PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, NULL, NULL, 0, 0, 0, 0, {NULL}, {0}, {0}};

static pthread_once_t lf_par_once = PTHREAD_ONCE_INIT;
static _Thread_local int lf_tl_tid = -1; /* tid while running a chunk, -1 outside */

static void lf_par_chunks(int tid) {
    for (;;) {
        long long c = atomic_fetch_add(&P.next, 1);
        if (c >= P.nchunks) break;
        int64_t i0 = (int64_t)c * P.grain, i1 = i0 + P.grain;
        if (i1 > P.n) i1 = P.n;
        P.fn(P.ctx, i0, i1, tid);
    }
}

static void *lf_par_worker(void *arg) {
    int id = (int)(intptr_t)arg;
    pthread_mutex_lock(&P.mu);
    unsigned long seen = P.start_gen[id]; /* a job published before this thread ran still counts it */
    for (;;) {
        while (P.gen == seen) pthread_cond_wait(&P.go, &P.mu);
        seen = P.gen;
        int take = id < P.use;
        pthread_mutex_unlock(&P.mu);
        if (take) {
            lf_tl_tid = id;
            lf_par_chunks(id);
            lf_tl_tid = -1;
        }
        pthread_mutex_lock(&P.mu);
        if (--P.active == 0) pthread_cond_signal(&P.done);
    }
    return NULL;
}

/* Start workers up to n - 1 (call with job_mu held, or from the once-initialiser). */
static void lf_par_grow(int n) {
    while (P.workers < n - 1) {
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_mutex_lock(&P.mu);
        int id = P.workers + 1;
        P.start_gen[id] = P.gen;
        int ok = pthread_create(&th, &at, lf_par_worker, (void *)(intptr_t)id) == 0;
        if (ok) P.workers++;
        pthread_mutex_unlock(&P.mu);
        pthread_attr_destroy(&at);
        if (!ok) break;
    }
    if (n > P.workers + 1) n = P.workers + 1;
    P.use = n;
}

static int lf_par_default_threads(void) {
    const char *e = getenv("LF_NUM_THREADS");
    long n = 0;
    if (e && *e) n = strtol(e, NULL, 10);
    if (n < 1) n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > LF_PAR_MAX_THREADS) n = LF_PAR_MAX_THREADS;
    return (int)n;
}

static void lf_par_init(void) {
    /* The operators cut matrix products into chunks themselves: BLAS runs single-threaded inside
     * each chunk, and its own worker threads never compete with (or spin beside) the pool's. */
    openblas_set_num_threads(1);
    lf_par_grow(lf_par_default_threads());
}

int lf_par_threads(void) {
    pthread_once(&lf_par_once, lf_par_init);
    return P.use;
}

int lf_par_set_threads(int n) {
    pthread_once(&lf_par_once, lf_par_init);
    pthread_mutex_lock(&P.job_mu);
    if (n < 1) n = lf_par_default_threads();
    if (n > LF_PAR_MAX_THREADS) n = LF_PAR_MAX_THREADS;
    lf_par_grow(n);
    for (int i = 0; i < LF_PAR_MAX_THREADS; i++) {
        free(P.scr[i]);
        P.scr[i] = NULL;
        P.cap[i] = 0;
    }
    n = P.use;
    pthread_mutex_unlock(&P.job_mu);
    return n;
}

float *lf_par_scratch(int tid, size_t nfloats) {
    if (tid < 0 || tid >= LF_PAR_MAX_THREADS) return NULL;
    if (P.cap[tid] < nfloats) {
        free(P.scr[tid]);
        P.cap[tid] = 0;
        if ((P.scr[tid] = malloc((nfloats ? nfloats : 1) * sizeof(float))) == NULL) return NULL;
        P.cap[tid] = nfloats;
    }
    return P.scr[tid];
}

size_t lf_par_scratch_bytes(void) {
    size_t b = 0;
    for (int i = 0; i < LF_PAR_MAX_THREADS; i++) b += P.cap[i] * sizeof(float);
    return b;
}

static void lf_par_inline(int64_t n, int64_t grain, lf_par_fn fn, void *ctx, int tid) {
    for (int64_t i0 = 0; i0 < n; i0 += grain) fn(ctx, i0, i0 + grain < n ? i0 + grain : n, tid);
}

void lf_par_for(int64_t n, int64_t grain, lf_par_fn fn, void *ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    if (lf_tl_tid >= 0) { /* nested: inside a chunk already */
        lf_par_inline(n, grain, fn, ctx, lf_tl_tid);
        return;
    }
    pthread_once(&lf_par_once, lf_par_init);
    int64_t nchunks = (n + grain - 1) / grain;
    pthread_mutex_lock(&P.job_mu);
    lf_tl_tid = 0;
    if (P.use <= 1 || nchunks <= 1) {
        lf_par_inline(n, grain, fn, ctx, 0);
    } else {
        pthread_mutex_lock(&P.mu);
        P.fn = fn, P.ctx = ctx, P.n = n, P.grain = grain, P.nchunks = nchunks;
        atomic_store(&P.next, 0);
        P.active = P.workers;
        P.gen++;
        pthread_cond_broadcast(&P.go);
        pthread_mutex_unlock(&P.mu);
        lf_par_chunks(0);
        pthread_mutex_lock(&P.mu);
        while (P.active > 0) pthread_cond_wait(&P.done, &P.mu);
        pthread_mutex_unlock(&P.mu);
    }
    lf_tl_tid = -1;
    pthread_mutex_unlock(&P.job_mu);
}
