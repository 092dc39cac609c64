/* emu_faults.c: fault injection on every CUDA call site of one apply sequence (label emu; built only
 * with -DLF_CUDA_EMU=ON, kernels/emu/lf_emu.h).
 *
 * The sequence: a device model of jobs covering every kind of device work (concatenated LoRA on the
 * tensor-core path, LoHa, DoRA with its norm pass, BOFT with its composite upload, OFT, IA3; W0 in
 * device memory, then in pinned memory), an apply on a non-blocking stream, a second apply after one
 * coefficient changes, downloads, a restore of everything, the guard check and the free. It is run
 * once to count its N fallible CUDA calls, then N times with call i failing (lf_emu_fail_at(i)).
 * Each run must: end without a crash; report an error from the step that made the call, whose
 * message names the failed call (the CUDA function, or lf_cuda_apply_launch for a kernel launch);
 * leave no device or pinned allocation behind once the model is freed (lf_emu_live); and leave every
 * weight that a later successful apply writes equal to the CPU-free reference (W0 after a restore).
 * The same for the device SVD (lf_dev_svd, device_cuda_svd.c: cuSOLVER and cuBLAS handles, gesvdj,
 * geqrf/orgqr, sgemm), exact and randomized: every failed call gives an error naming it, and no
 * allocation or library handle is left behind (the emulator's exit report counts handles).
 * Usage: emu_faults [-v]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_cases.h"
#include "kernels/emu/lf_emu.h"
#include "lf_test.h"
#include "lorafuse/lf_device.h"
#include <cuda_runtime.h>

static int verbose;

enum { NJ = 7 };
static const lf_case_spec SPECS[NJ] = {
    {LF_CA_LORA, LF_CL_LIN_AL, LF_F16, 16, 2, 1}, {LF_CA_LOHA, LF_CL_C3, LF_BF16, 4, 1, 1},
    {LF_CA_DORA_OUT, LF_CL_C1, LF_F16, 8, 1, 1},  {LF_CA_BOFT, LF_CL_LIN_AL, LF_F32, 0, 1, 1},
    {LF_CA_OFT, LF_CL_LIN_AL, LF_F32, 0, 1, 1},   {LF_CA_IA3_IN, LF_CL_LIN_ODD, LF_F32, 0, 1, 1},
    {LF_CA_LORA, LF_CL_LIN_ODD, LF_F32, 4, 1, 1},
};

typedef struct {
    lf_status st;
    char step[64];
    char msg[1024];
} outcome;

static int fail_step(outcome *o, lf_status st, const char *step) {
    if (st == LF_OK) return 0;
    o->st = st;
    snprintf(o->step, sizeof o->step, "%s", step);
    snprintf(o->msg, sizeof o->msg, "%s", lf_last_error());
    return 1;
}

/* the sequence; the first failing step ends it (the model is freed in any case) */
static void sequence(lf_device *dev, lf_job *jobs, int pinned, outcome *o) {
    memset(o, 0, sizeof *o);
    lf_dev_opts opts;
    lf_dev_opts_default(&opts);
    if (pinned) opts.max_backup_mb = 0;
    lf_dev_model *dm = NULL;
    cudaStream_t s = NULL;
    unsigned char *buf = NULL;
    if (fail_step(o, lf_dev_model_create(dev, jobs, NJ, &opts, &dm), "create")) goto out;
    cudaError_t e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        o->st = LF_ERR_DEVICE;
        snprintf(o->step, sizeof o->step, "stream");
        snprintf(o->msg, sizeof o->msg, "cudaStreamCreateWithFlags: %s", cudaGetErrorString(e));
        s = NULL;
        goto out;
    }
    if (fail_step(o, lf_dev_apply(dm, s), "apply")) goto out;
    if (fail_step(o, lf_dev_set_coef(dm, 3, 0, 0.7f), "set_coef")) goto out;
    if (fail_step(o, lf_dev_apply_async(dm, s), "apply_async")) goto out;
    if (fail_step(o, lf_dev_apply_wait(dm), "apply_wait")) goto out;
    buf = malloc(1 << 20);
    for (size_t j = 0; j < NJ; j++)
        if (fail_step(o, lf_dev_download(dm, j, buf), "download")) goto out;
    if (fail_step(o, lf_dev_restore_all(dm, s), "restore_all")) goto out;
    for (size_t j = 0; j < NJ; j++) {
        if (fail_step(o, lf_dev_download(dm, j, buf), "download")) goto out;
        LF_CHECK(memcmp(buf, jobs[j].target->data, (size_t)(jobs[j].target->end - jobs[j].target->begin)) == 0,
                 "job %zu: restore is not W0's bytes", j);
    }
    if (fail_step(o, lf_dev_guard_check(dm), "guard_check")) goto out;
out:
    free(buf);
    if (s) cudaStreamDestroy(s);
    lf_dev_model_free(dm);
}

/* the message names the call that failed */
static int names_call(const char *msg, const char *call) {
    if (strstr(msg, call)) return 1;
    /* a kernel launch fails inside lf_cuda_apply_launch, whose call the message shows */
    if (!strncmp(call, "lf_", 3) && strstr(msg, "lf_cuda_apply_launch")) return 1;
    return 0;
}

static void run(lf_device *dev, lf_job *jobs, int pinned) {
    outcome o;
    lf_emu_fail_at(0);
    sequence(dev, jobs, pinned, &o);
    LF_CHECK(o.st == LF_OK, "%s: clean run failed in %s: %s", pinned ? "pinned" : "device", o.step, o.msg);
    lf_emu_counters c;
    lf_emu_get_counters(&c);
    const uint64_t n = c.calls;
    printf("%s W0: %llu fallible CUDA calls in the sequence\n", pinned ? "pinned" : "device", (unsigned long long)n);
    LF_CHECK(n > 40, "only %llu calls counted", (unsigned long long)n);
    int silent = 0;
    for (uint64_t i = 1; i <= n; i++) {
        lf_emu_fail_at(i);
        sequence(dev, jobs, pinned, &o);
        const char *call = lf_emu_failed_call();
        uint64_t live_bytes = 0;
        size_t live = lf_emu_live(&live_bytes);
        LF_CHECK(live == 0, "call %llu (%s): %zu allocations (%llu bytes) left after the model was freed",
                 (unsigned long long)i, call, live, (unsigned long long)live_bytes);
        if (!call[0]) { /* the sequence made fewer calls this time: then it must not fail either */
            LF_CHECK(o.st == LF_OK, "call %llu not reached, yet step %s failed: %s", (unsigned long long)i, o.step, o.msg);
            continue;
        }
        if (o.st == LF_OK) {
            /* a failure the code may absorb: the restore path retries what it needs, a failed destroy is ignored */
            silent++;
            if (verbose) printf("call %llu (%s): absorbed\n", (unsigned long long)i, call);
            continue;
        }
        LF_CHECK(names_call(o.msg, call), "call %llu (%s) failed in step %s, but the message does not name it: %s",
                 (unsigned long long)i, call, o.step, o.msg);
        if (verbose) printf("call %llu (%s): %s: %s\n", (unsigned long long)i, call, o.step, o.msg);
    }
    printf("%s W0: %llu injected failures, %d absorbed without an error\n", pinned ? "pinned" : "device",
           (unsigned long long)n, silent);
    LF_CHECK(silent == 0, "%d injected failures produced no error", silent);
    lf_emu_fail_at(0);
}

/* one exact and one randomized SVD of a small matrix; the first failure ends it */
static void svd_sequence(lf_device *dev, outcome *o) {
    enum { M = 40, N = 24, P = 24 };
    static float a[M * N], u[M * P], vt[P * N];
    static double sv[P];
    memset(o, 0, sizeof *o);
    for (int i = 0; i < M * N; i++) a[i] = (float)((i * 37) % 23) / 23.0f - 0.5f;
    if (fail_step(o, lf_dev_svd(dev, a, M, N, 0, 0, 1, sv, u, vt), "svd exact")) return;
    fail_step(o, lf_dev_svd(dev, a, M, N, 8, 2, 1, sv, u, vt), "svd randomized");
}

static void run_svd(lf_device *dev) {
    outcome o;
    lf_emu_fail_at(0);
    svd_sequence(dev, &o);
    LF_CHECK(o.st == LF_OK, "svd: clean run failed in %s: %s", o.step, o.msg);
    lf_emu_counters c;
    lf_emu_get_counters(&c);
    const uint64_t n = c.calls;
    printf("svd: %llu fallible CUDA / cuBLAS / cuSOLVER calls\n", (unsigned long long)n);
    for (uint64_t i = 1; i <= n; i++) {
        lf_emu_fail_at(i);
        svd_sequence(dev, &o);
        const char *call = lf_emu_failed_call();
        LF_CHECK(lf_emu_live(NULL) == 0, "svd call %llu (%s): allocations left", (unsigned long long)i, call);
        if (!call[0]) {
            LF_CHECK(o.st == LF_OK, "svd call %llu not reached, yet %s failed: %s", (unsigned long long)i, o.step, o.msg);
            continue;
        }
        LF_CHECK(o.st != LF_OK, "svd call %llu (%s) failed without an error", (unsigned long long)i, call);
        LF_CHECK(o.st == LF_OK || names_call(o.msg, call), "svd call %llu (%s): the message does not name it: %s",
                 (unsigned long long)i, call, o.msg);
        if (verbose) printf("svd call %llu (%s): %s\n", (unsigned long long)i, call, o.msg);
    }
    lf_emu_fail_at(0);
}

int main(int argc, char **argv) {
    verbose = argc > 1 && !strcmp(argv[1], "-v");
    lf_device *dev = NULL;
    if (lf_device_open(0, &dev) != LF_OK) {
        fprintf(stderr, "lf_device_open: %s\n", lf_last_error());
        return 1;
    }
    lf_case cases[NJ];
    lf_job jobs[NJ];
    for (int i = 0; i < NJ; i++) {
        if (lf_case_build(&SPECS[i], 7, &cases[i])) {
            fprintf(stderr, "case %d does not build\n", i);
            return 2;
        }
        jobs[i] = cases[i].job;
    }
    run(dev, jobs, 0);
    run(dev, jobs, 1);
    run_svd(dev);
    for (int i = 0; i < NJ; i++) lf_case_free(&cases[i]);
    lf_device_close(dev);
    return lf_test_finish();
}
