/* cuda_test_open.h: the opening of a device test that works on one CUDA compute (host/cuda/compute_cuda.h):
 * device 0 and a compute on it, or the test is skipped (exit 77) where this build or machine has none. */
#ifndef LF_CUDA_TEST_OPEN_H
#define LF_CUDA_TEST_OPEN_H

#include "host/cuda/compute_cuda.h"
#include "lf_test.h"

/* LF_OK with *dev and *c open; another status (already reported as a failed check) when the device opened
 * but the compute did not. */
static inline lf_status lf_test_cuda_open(lf_device **dev, lf_compute **c) {
    lf_status st = lf_device_open(0, dev);
    if (st == LF_ERR_UNSUPPORTED) LF_SKIP(lf_last_error());
    LF_CHECK(st == LF_OK, "lf_device_open: %s", lf_last_error());
    if (st) return st;
    st = lf_compute_cuda_open(*dev, c);
    if (st == LF_ERR_UNSUPPORTED) {
        lf_device_close(*dev);
        LF_SKIP(lf_last_error());
    }
    LF_CHECK(st == LF_OK, "lf_compute_cuda_open: %s", lf_last_error());
    return st;
}

#endif
