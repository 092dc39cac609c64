/* op_clock.h: a clock for a profile by op kind (host/runtime/compute_count.h's timed count) that a
 * backend supplies when it can time its own work without waiting for it after every op: a device
 * backend records an event before and after each op on its stream (and opens a profiler range named
 * after the op, NVTX for CUDA), and reads the elapsed times only when the profile is collected, so the
 * host keeps queueing ahead of the device as in a run without the profile.
 *
 * Contract: begin(op, name) and end(op) pair around one op (end is called whenever begin returned
 * LF_OK, also when the op failed); collect waits for the work timed so far and adds each op kind's
 * seconds into seconds[op] (n_ops entries, op < n_ops), then starts afresh; free releases it.
 */
#ifndef LF_OP_CLOCK_H
#define LF_OP_CLOCK_H

#include "lorafuse/lf_status.h"

typedef struct lf_op_clock {
    void *ctx;
    lf_status (*begin)(void *ctx, int op, const char *name);
    lf_status (*end)(void *ctx, int op);
    lf_status (*collect)(void *ctx, double *seconds, int n_ops);
    void (*free)(void *ctx);
} lf_op_clock;

#endif
