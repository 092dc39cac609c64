/* lf_emu.h: control and counters of the CUDA emulation (kernels/emu/lf_emu.cpp), for the tests and
 * benches of the -DLF_CUDA_EMU=ON build. C11 and C++.
 *
 * Error injection: the N-th fallible runtime call (every call of cuda_runtime.h except the error
 * queries, cudaGetLastError and the free / destroy calls; kernel launches count, as do the cuBLAS and
 * cuSOLVER stand-ins) fails once with the error that call would give (cudaErrorMemoryAllocation for
 * allocations, cudaErrorLaunchOutOfResources for launches, cudaErrorInvalidValue otherwise; cuBLAS /
 * cuSOLVER: their "execution failed" status). Set by lf_emu_fail_at(N) or the environment variable
 * LF_EMU_FAIL_AT=N; numbering starts at 1 with the first call after the last lf_emu_fail_at.
 * At exit: live allocations (leaks), damaged guard zones and data races found make the process exit
 * with status 3 after a report on stderr (LF_EMU_LEAKS_OK=1 turns that off).
 */
#ifndef LF_EMU_H
#define LF_EMU_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lf_emu_counters {
    uint64_t calls;          /* fallible calls (the numbering of lf_emu_fail_at) */
    uint64_t launches, blocks, threads, barriers, warp_ops;
    uint64_t bytes_h2d, bytes_d2h, bytes_d2d, bytes_memset;
    uint64_t copies, memsets, syncs;
    uint64_t races;          /* unsynchronised conflicting accesses between streams */
    uint64_t kernel_faults;  /* launches that broke an execution rule */
} lf_emu_counters;

/* fail the n-th fallible call from now (0: never); resets the call numbering */
void lf_emu_fail_at(uint64_t n);
/* the name of the call that was made to fail last, or "" */
const char *lf_emu_failed_call(void);
/* 1 when an error message names the failed call: the CUDA or library function, or for a kernel
 * lf_cunn_x_k its launcher ("lf_cunn_x failed", host/cuda/compute_cuda.c), for an apply kernel
 * (lf_*_kernel_v1) lf_cuda_apply_launch */
int lf_emu_names_call(const char *msg, const char *call);
void lf_emu_get_counters(lf_emu_counters *c);
/* zero every counter but the call numbering (races included: a test that provokes one on purpose) */
void lf_emu_reset_counters(void);
/* live device + pinned allocations and their payload bytes */
size_t lf_emu_live(uint64_t *bytes);
/* guard zones of every live allocation intact: 0, else the number damaged (reported on stderr) */
size_t lf_emu_check_guards(void);
/* clear the sticky error of a failed kernel (tests that provoke one on purpose) */
void lf_emu_reset_device(void);

/* for the library stand-ins (lf_emu_blas.cpp): a device operation `call` on `stream` (NULL: legacy):
 * injection, ordering and race checks as a kernel; returns a cudaError_t value */
int lf_emu_device_op(const char *call, void *stream);
/* [p, p + bytes) inside one device allocation: 1, else 0 with a report naming call and what */
int lf_emu_dev_range(const char *call, const char *what, const void *p, size_t bytes);
/* a fallible host-side library call (cuDNN descriptors, finalize): injection only, no device
 * operation; 1 when this call is to fail */
int lf_emu_inject(const char *call);
/* library handles created (+1) and destroyed (-1): live ones are leaks at exit */
void lf_emu_handles(int delta);

#ifdef __cplusplus
}
#endif
#endif
