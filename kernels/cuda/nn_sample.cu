/* nn_sample.cu: the samplers' element-wise updates and the CFG combine on the device (lf_sample_cuda.h):
 * one grid-stride kernel calling lf_su_elem of kernels/common/lf_sample_update.h per element, the CPU
 * compute's formula. Compiled with --fmad=false (CMakeLists.txt; -ffp-contract=off in the emulation) and
 * IEEE division (no fast math), so an update gives the CPU's bytes for the same f32 inputs.
 */
#include "nn_common.cuh"
#include "lf_sample_cuda.h"

namespace {

struct lf_su_ptrs {
    float *p[LF_SU_BUFS];
};

__global__ void __launch_bounds__(256) lf_cunn_sample_update_k(lf_sample_upd u, lf_su_ptrs b, int64_t n) {
    for (int64_t i = lf_cunn::gtid(); i < n; i += lf_cunn::gstride()) lf_su_elem(&u, b.p, i);
}

} // namespace

extern "C" int lf_cunn_sample_update(const lf_sample_upd *u, float *const *b, int64_t n, cudaStream_t s) {
    if (n <= 0) return (int)cudaSuccess;
    lf_su_ptrs p;
    for (int i = 0; i < LF_SU_BUFS; i++) p.p[i] = b[i];
    (void)cudaGetLastError(); /* the return below must be this launch's error, not an earlier call's */
    lf_cunn_sample_update_k<<<lf_cunn::grid_for(n), dim3(lf_cunn::THREADS), 0, s>>>(*u, p, n);
    return (int)cudaGetLastError();
}
