/* compute_none.c: the CUDA compute backend's entry points (compute_cuda.h) in a build that cannot have
 * it: no CUDA, or a toolkit without cuBLAS (a wheel-only install). Opening answers LF_ERR_UNSUPPORTED
 * saying which, so callers and tests link in every build and skip (exit 77); the queries answer "none".
 * Built instead of compute_cuda*.c (CMakeLists.txt, block "lf_gpu").
 */
#include <string.h>

#include "compute_cuda.h"
#include "lorafuse/lf_config.h"

static lf_status lf_no_compute(void) {
    if (LF_HAVE_CUDA)
        return lf_err(LF_ERR_UNSUPPORTED, "this build of lorafuse found no cuBLAS: the CUDA compute backend is not built");
    return lf_err(LF_ERR_UNSUPPORTED, "this build of lorafuse has no CUDA backend (configured with LF_CUDA=OFF or "
                  "without nvcc)");
}

lf_status lf_compute_cuda_open(lf_device *dev, lf_compute **out) {
    (void)dev;
    *out = NULL;
    return lf_no_compute();
}

lf_status lf_compute_cuda_open_as(lf_device *dev, lf_dtype act, lf_dtype wdt, lf_compute **out) {
    (void)act, (void)wdt;
    return lf_compute_cuda_open(dev, out);
}

lf_status lf_compute_cuda_device(int ordinal, lf_dtype dtype, lf_compute **out, char *desc, size_t cap) {
    (void)ordinal, (void)dtype, (void)desc, (void)cap;
    *out = NULL;
    return lf_no_compute();
}

void lf_compute_cuda_paths_get(const lf_compute *c, lf_compute_cuda_paths *out) {
    (void)c;
    memset(out, 0, sizeof *out);
}

int lf_compute_cuda_uses_cudnn(const lf_compute *c, const lf_cop_desc *d) { return (void)c, (void)d, 0; }

int lf_compute_cuda_uses_cublaslt(const lf_compute *c, const lf_cop_desc *d) { return (void)c, (void)d, 0; }
