/* device_cuda_mem.c: device and pinned host memory of a device model, and CUDA error reporting.
 *
 * Every allocation carries LF_GUARD bytes of LF_GUARD_BYTE before and after its payload (sizes rounded
 * up to 256 bytes), and is recorded in the model's buffer list so that lf_dev_model_free releases it
 * and lf_dev_guard_check can verify the guards. Errors name the CUDA call, the layer and
 * cudaGetErrorString. The lowest file of host/cuda: it calls nothing else of the device code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "device_internal.h"
#include "host/base/util.h"

/* ---- errors ---------------------------------------------------------------------------------- */

lf_status lf_cu_err(cudaError_t e, const char *call, const char *layer, const char *file, int line) {
    return lf_err(e == cudaErrorMemoryAllocation ? LF_ERR_NOMEM : LF_ERR_DEVICE, "%s failed%s%s%s: %s (%s) [%s:%d]",
                  call, layer ? " for layer '" : "", layer ? layer : "", layer ? "'" : "", cudaGetErrorString(e),
                  cudaGetErrorName(e), file, line);
}

/* ---- guarded allocations ----------------------------------------------------------------------- */

static lf_status lf_buf_push(lf_dev_model *dm, void *base, size_t bytes, size_t total, int pinned, const char *what,
                             const char *layer) {
    if (lf_grow(&dm->bufs, &dm->capbufs, dm->nbufs + 1)) return lf_err(LF_ERR_NOMEM, "out of memory");
    lf_dbuf *b = &dm->bufs[dm->nbufs++];
    b->base = base;
    b->bytes = bytes;
    b->total = total;
    b->pinned = pinned;
    snprintf(b->what, sizeof b->what, "%s%s%s", what, layer ? " of " : "", layer ? layer : "");
    return LF_OK;
}

/* device buffer of `bytes` with guards; *out = payload */
lf_status lf_dalloc(lf_dev_model *dm, size_t bytes, const char *what, const char *layer, void **out) {
    lf_status st = LF_OK;
    size_t total = LF_GUARD + lf_round_up(bytes ? bytes : 1, 256) + LF_GUARD;
    void *base = NULL;
    *out = NULL;
    LF_CU(cudaMalloc(&base, total), layer);
    LF_CU(cudaMemset(base, LF_GUARD_BYTE, LF_GUARD), layer);
    LF_CU(cudaMemset((char *)base + LF_GUARD + bytes, LF_GUARD_BYTE, total - LF_GUARD - bytes), layer);
    if ((st = lf_buf_push(dm, base, bytes, total, 0, what, layer)) != LF_OK) goto fail;
    dm->dev_bytes += total;
    *out = (char *)base + LF_GUARD;
    return LF_OK;
fail:
    if (base) cudaFree(base);
    return st;
}

/* mapped pinned host buffer with guards; *out = payload (host pointer, also valid on the device:
 * unified addressing on every sm_80+ system) */
lf_status lf_halloc(lf_dev_model *dm, size_t bytes, int mapped, const char *what, const char *layer, void **out) {
    lf_status st = LF_OK;
    size_t total = LF_GUARD + lf_round_up(bytes ? bytes : 1, 256) + LF_GUARD;
    void *base = NULL;
    *out = NULL;
    LF_CU(cudaHostAlloc(&base, total, mapped ? cudaHostAllocMapped : cudaHostAllocDefault), layer);
    memset(base, LF_GUARD_BYTE, LF_GUARD);
    memset((char *)base + LF_GUARD + bytes, LF_GUARD_BYTE, total - LF_GUARD - bytes);
    if ((st = lf_buf_push(dm, base, bytes, total, 1, what, layer)) != LF_OK) goto fail;
    dm->pinned_bytes += total;
    *out = (char *)base + LF_GUARD;
    if (mapped) {
        void *dp = NULL;
        /* base is owned by dm->bufs from here: an error must not free it again (lf_dev_model_free does) */
        cudaError_t e = cudaHostGetDevicePointer(&dp, base, 0);
        if (e != cudaSuccess) {
            st = lf_cu_err(e, "cudaHostGetDevicePointer(&dp, base, 0)", layer, __FILE__, __LINE__);
            goto fail_pushed;
        }
        if (dp != base) {
            st = lf_err(LF_ERR_UNSUPPORTED, "layer '%s': mapped pinned memory has a different device address "
                        "(no unified addressing)", layer ? layer : "?");
            goto fail_pushed;
        }
    }
    return LF_OK;
fail:
    if (base) cudaFreeHost(base);
    return st;
fail_pushed:
    return st; /* freed with the model */
}

/* upload n floats into a new guarded device buffer */
lf_status lf_dupload(lf_dev_model *dm, const void *src, size_t bytes, const char *what, const char *layer,
                     void **out) {
    lf_status st = lf_dalloc(dm, bytes, what, layer, out);
    if (st) return st;
    if (bytes) LF_CU(cudaMemcpy(*out, src, bytes, cudaMemcpyHostToDevice), layer);
    return LF_OK;
fail:
    return st;
}
