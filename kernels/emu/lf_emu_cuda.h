/* lf_emu_cuda.h: the device side of CUDA C++ for kernels compiled as C++ on the CPU (the
 * -DLF_CUDA_EMU=ON build): qualifiers, vector types, threadIdx/blockIdx/blockDim/gridDim,
 * __syncthreads, warp shuffles, atomics, and launches. Included by the emulated cuda_runtime.h in C++.
 *
 * Execution model (lf_emu.cpp): a launch runs its blocks one after another; the threads of a block
 * are ucontext fibres on one OS thread, switched only at barriers and warp collectives, so a thread
 * runs until it waits. __syncthreads() is counted: every live thread of the block must reach the same
 * call site (line) before any passes; a thread that exits while others wait, or threads waiting at
 * different sites, is a divergent barrier and fails the launch (cudaErrorAssert, message on stderr).
 * Warp collectives (*_sync shuffles, WMMA) check that exactly the lanes of the mask arrive at the
 * same site with the same arguments where CUDA requires that.
 * Shared memory: `__shared__` arrays are rewritten by kernels/emu/cu2cpp.cmake into lf_emu::shared
 * calls; each block gets a fresh arena filled with signalling-NaN bytes (0x7fa5a5a5 as floats) so an
 * uninitialised read shows as NaN in the result; the 48 KiB static limit is enforced.
 * Launches: `k<<<g, b, smem, s>>>(args)` is rewritten into lf_emu::launcher(k, "k", g, b, smem, s)(args).
 */
#ifndef LF_EMU_CUDA_H
#define LF_EMU_CUDA_H

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <tuple>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

using std::isfinite;

struct uint3 {
    unsigned int x, y, z;
};
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
};
/* the alignments of CUDA's vector types (a misaligned vector access is undefined there too) */
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) uint2 {
    unsigned int x, y;
};
struct alignas(16) uint4 {
    unsigned int x, y, z, w;
};
static inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

extern thread_local uint3 threadIdx, blockIdx;
extern thread_local dim3 blockDim, gridDim;

namespace lf_emu {

/* a violation of the CUDA execution rules in the running thread: reported, the launch fails */
[[noreturn]] void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* block barrier at a call site */
void barrier(int line, const char *file);
/* warp collective at a call site: waits until the lanes of mask arrive with the same (site, key),
 * exchanging v (one value per lane): returns the value of lane src; phase 2 waits again so that the
 * exchange slots can be reused */
double warp_exchange(unsigned mask, int line, uint64_t key, double v, int src);
void warp_sync(unsigned mask, int line, uint64_t key);
/* per-lane slot pointer exchange for WMMA (lane's fragment addresses), same rules */
void *const *warp_ptrs(unsigned mask, int line, uint64_t key, void *mine);
/* the block's shared arena: the array of a __shared__ declaration (tag: one per declaration) */
void *shared(const void *tag, size_t bytes, size_t align);
int lane(void);

template <class T> T *shared_array(const void *tag, size_t n, size_t align = alignof(T)) {
    return static_cast<T *>(shared(tag, n * sizeof(T), align < alignof(T) ? alignof(T) : align));
}

/* run fn(block) for every block of the grid; returns a cudaError_t value (lf_emu.cpp) */
int launch(const char *name, dim3 grid, dim3 block, size_t smem, void *stream, void (*fn)(void *), void *ctx);

template <class... P> struct launcher_t {
    void (*k)(P...);
    const char *name;
    dim3 grid, block;
    size_t smem;
    void *stream;
    template <class... A> void operator()(A &&...a) const {
        std::tuple<P...> args(std::forward<A>(a)...); /* kernel arguments are copied at launch */
        struct ctx_t {
            void (*k)(P...);
            std::tuple<P...> *args;
        } c{k, &args};
        launch(name, grid, block, smem, stream,
               [](void *p) {
                   ctx_t *cc = static_cast<ctx_t *>(p);
                   std::apply(cc->k, *cc->args);
               },
               &c);
    }
};
template <class... P, class S>
launcher_t<P...> launcher(void (*k)(P...), const char *name, dim3 grid, dim3 block, size_t smem, S stream) {
    return launcher_t<P...>{k, name, grid, block, smem, (void *)stream};
}
template <class... P>
launcher_t<P...> launcher(void (*k)(P...), const char *name, dim3 grid, dim3 block, size_t smem = 0) {
    return launcher_t<P...>{k, name, grid, block, smem, nullptr};
}

} // namespace lf_emu

static inline void __syncthreads(int line = __builtin_LINE(), const char *file = __builtin_FILE()) {
    lf_emu::barrier(line, file);
}
static inline void __syncwarp(unsigned mask = 0xffffffffu, int line = __builtin_LINE()) {
    lf_emu::warp_sync(mask, line, 0);
}

/* __shfl_xor_sync: lane l reads lane l ^ lane_mask's value; every lane of mask must take part */
template <class T> static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32,
                                                  int line = __builtin_LINE()) {
    static_assert(sizeof(T) <= 8, "shuffle of a scalar");
    if (width != 32) lf_emu::fail("__shfl_xor_sync: width %d (only 32 is emulated)", width);
    const int l = lf_emu::lane();
    return (T)lf_emu::warp_exchange(mask, line, (uint64_t)lane_mask, (double)v, (l ^ lane_mask) & 31);
}
template <class T> static inline T __shfl_sync(unsigned mask, T v, int src, int width = 32,
                                              int line = __builtin_LINE()) {
    static_assert(sizeof(T) <= 8, "shuffle of a scalar");
    if (width != 32) lf_emu::fail("__shfl_sync: width %d (only 32 is emulated)", width);
    return (T)lf_emu::warp_exchange(mask, line, 0x10000u, (double)v, src & 31);
}

/* atomics: blocks and threads never run at the same time on the CPU, a plain update is atomic */
static inline double atomicAdd(double *p, double v) {
    double o = *p;
    *p = o + v;
    return o;
}
static inline float atomicAdd(float *p, float v) {
    float o = *p;
    *p = o + v;
    return o;
}
static inline int atomicAdd(int *p, int v) {
    int o = *p;
    *p = o + v;
    return o;
}
static inline unsigned atomicOr(unsigned *p, unsigned v) {
    unsigned o = *p;
    *p = o | v;
    return o;
}

#endif
