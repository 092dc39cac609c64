/* emu_op_clock.c: the CUDA compute's op clock (host/cuda/compute_cuda_prof.c) under a clocked count
 * (host/runtime/compute_count.h), in the emulation (label emu): every op between two events on the
 * compute's stream, counted by kind; more ops than the clock's pool of event pairs (1024), so the pool is
 * drained and reused mid-run; collect adds each kind's time (0 in the emulation, which has no clock:
 * the times need a GPU, scripts/gpu-check.sh) and leaves the counts; then every fallible CUDA call of a
 * shorter clocked sequence is made to fail once (lf_emu_fail_at): the op or collect that made it returns
 * an error naming the call, the next op works again, and nothing is left allocated after destroy (events
 * included: the emulation reports leaked handles at exit).
 */
#include <stdio.h>
#include <string.h>

#include "host/cuda/compute_cuda.h"
#include "host/runtime/compute_count.h"
#include "kernels/emu/lf_emu.h"
#include "lf_test.h"

enum { N = 256, OPS = 1500 };

/* `ops` scale ops and one add on the count's table, then collect; the first error (*where: the op index,
 * OPS for collect) */
static lf_status run(lf_compute *c, int ops, lf_status *st_out, int *where, char *msg, size_t cap, uint64_t *calls) {
    lf_compute_count cc;
    lf_op_clock clock;
    lf_status st = c->clock ? c->clock(c, &clock) : LF_ERR_UNSUPPORTED;
    *where = -1;
    msg[0] = '\0';
    if (st != LF_OK) return st;
    lf_compute_count_init_clocked(&cc, c, &clock);
    float *x = NULL, *y = NULL;
    lf_status first = LF_OK;
    if ((st = c->alloc(c, N, &x)) == LF_OK && (st = c->alloc(c, N, &y)) == LF_OK) {
        static float h[N];
        for (int i = 0; i < N; i++) h[i] = (float)i / N;
        st = c->upload(c, x, h, N);
        for (int k = 0; k < ops && st == LF_OK; k++) {
            lf_status s = k + 1 < ops ? cc.c.scale(&cc.c, y, x, 0.5f, N) : cc.c.add(&cc.c, y, y, x, N);
            if (s != LF_OK && first == LF_OK) {
                first = s, *where = k;
                snprintf(msg, cap, "%s", lf_last_error());
            }
        }
        lf_status s = lf_compute_count_collect(&cc);
        if (s != LF_OK && first == LF_OK) {
            first = s, *where = ops;
            snprintf(msg, cap, "%s", lf_last_error());
        }
        *calls = cc.op[LF_COP_SCALE].calls + cc.op[LF_COP_ADD].calls;
    }
    if (x) c->release(c, x);
    if (y) c->release(c, y);
    lf_compute_count_free(&cc);
    *st_out = first;
    return st;
}

int main(void) {
    lf_device *dev = NULL;
    if (lf_device_open(0, &dev) != LF_OK) LF_SKIP(lf_last_error());
    lf_compute *c = NULL;
    LF_CHECK(lf_compute_cuda_open(dev, &c) == LF_OK, "open: %s", lf_last_error());
    if (!c) return lf_test_finish();
    LF_CHECK(c->clock != NULL, "the CUDA compute offers an op clock");

    lf_status op_st = LF_OK;
    int where = -1;
    char msg[1024];
    uint64_t calls = 0;
    lf_status st = run(c, OPS, &op_st, &where, msg, sizeof msg, &calls);
    LF_CHECK(st == LF_OK && op_st == LF_OK, "clean clocked run: %s", msg[0] ? msg : lf_last_error());
    LF_CHECK(calls == OPS, "%llu ops counted, %d run", (unsigned long long)calls, OPS);

    /* every fallible call of a short clocked run (a clean count first) fails once */
    enum { SHORT = 6 };
    lf_emu_fail_at(0);
    LF_CHECK(run(c, SHORT, &op_st, &where, msg, sizeof msg, &calls) == LF_OK && op_st == LF_OK, "short run");
    lf_emu_counters cnt;
    lf_emu_get_counters(&cnt);
    const uint64_t n = cnt.calls;
    LF_CHECK(n >= 2 * SHORT, "%llu fallible calls in the short run", (unsigned long long)n);
    int named = 0;
    for (uint64_t i = 1; i <= n; i++) {
        lf_emu_fail_at(i);
        st = run(c, SHORT, &op_st, &where, msg, sizeof msg, &calls);
        const char *call = lf_emu_failed_call();
        if (!call[0]) continue;
        if (st != LF_OK) continue; /* alloc / upload: reported by the compute itself (emu_compute_faults) */
        LF_CHECK(op_st != LF_OK, "call %llu (%s) failed, yet the clocked run succeeded", (unsigned long long)i, call);
        LF_CHECK(lf_emu_names_call(msg, call), "call %llu (%s): the error does not name it: %s", (unsigned long long)i,
                 call, msg);
        named += op_st != LF_OK && lf_emu_names_call(msg, call);
        lf_emu_fail_at(0);
        LF_CHECK(run(c, SHORT, &op_st, &where, msg, sizeof msg, &calls) == LF_OK && op_st == LF_OK,
                 "after call %llu (%s) failed, the next run works: %s", (unsigned long long)i, call, msg);
    }
    LF_CHECK(named > 0, "no failure went through the clock");
    lf_emu_fail_at(0);
    c->destroy(c);
    uint64_t bytes = 0;
    size_t live = lf_emu_live(&bytes);
    LF_CHECK(live == 0, "%zu allocations (%llu bytes) left after destroy", live, (unsigned long long)bytes);
    return lf_test_finish();
}
