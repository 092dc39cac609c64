/* mma.h (emulation): the WMMA subset kernels/cuda/apply.cu uses, for the -DLF_CUDA_EMU=ON build:
 * fragments of m16n16k8 with precision::tf32 (matrix_a / matrix_b, row_major) and float accumulators,
 * fill_fragment, load_matrix_sync, store_matrix_sync, mma_sync and __float_to_tf32.
 *
 * Fragments are distributed over the 32 lanes of a warp as on the device: lane l holds elements
 * l, l + 32, ... of the row-major tile (the element -> lane map is unspecified by CUDA; code that
 * only applies the same operation to every x[t], as it must, works with any map). num_elements per
 * lane equals the hardware's (4 for A and B, 8 for the accumulator). mma_sync is a warp collective:
 * every lane deposits its fragments, each computes its own outputs from all of them, with inputs cut
 * to TF32 (the tensor cores read only the top 19 bits) and f32 accumulation in k order.
 * Rules asserted as the CUDA C++ Programming Guide (WMMA) states them: mptr 256-bit (32-byte)
 * aligned, ldm a multiple of 16 bytes (4 floats), the same mptr/ldm on every lane, all 32 lanes
 * converged at the same call.
 */
#ifndef LF_EMU_MMA_H
#define LF_EMU_MMA_H

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/emu/lf_emu_cuda.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
namespace precision {
struct tf32 {};
} // namespace precision
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K> struct frag_dims;
template <int M, int N, int K> struct frag_dims<matrix_a, M, N, K> {
    static constexpr int rows = M, cols = K;
};
template <int M, int N, int K> struct frag_dims<matrix_b, M, N, K> {
    static constexpr int rows = K, cols = N;
};
template <int M, int N, int K> struct frag_dims<accumulator, M, N, K> {
    static constexpr int rows = M, cols = N;
};

template <class Use, int M, int N, int K, class T, class Layout = void> struct fragment {
    static_assert(M == 16 && N == 16 && K == 8, "only m16n16k8 is emulated");
    static constexpr int rows = frag_dims<Use, M, N, K>::rows, cols = frag_dims<Use, M, N, K>::cols;
    static constexpr int num_elements = rows * cols / 32;
    float x[num_elements];
};

/* round to nearest, ties away from zero, to 10 explicit mantissa bits (cvt.rna.tf32.f32) */
static inline float __float_to_tf32(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
    std::memcpy(&f, &u, 4);
    return f;
}
/* what the tensor core reads of an f32 register holding a tf32 operand: the top 19 bits */
static inline float lf_emu_tf32_cut(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u &= 0xffffe000u;
    std::memcpy(&f, &u, 4);
    return f;
}

template <class F> static inline void fill_fragment(F &f, float v) {
    for (int t = 0; t < F::num_elements; t++) f.x[t] = v;
}

static inline void lf_emu_wmma_check(const void *p, unsigned ldm, const char *what, int line) {
    if ((uintptr_t)p % 32) lf_emu::fail("wmma::%s (line %d): pointer %p is not 256-bit aligned", what, line, p);
    if (ldm % 4) lf_emu::fail("wmma::%s (line %d): ldm %u is not a multiple of 16 bytes (4 floats)", what, line, ldm);
    /* the same pointer and ldm on every lane: the key of the warp collective */
    lf_emu::warp_sync(0xffffffffu, line, ((uint64_t)(uintptr_t)p << 16) ^ ldm);
}

template <class Use, class Layout>
static inline void load_matrix_sync(fragment<Use, 16, 16, 8, precision::tf32, Layout> &f, const float *p,
                                    unsigned ldm, int line = __builtin_LINE()) {
    static_assert(sizeof(Layout) > 0, "layout");
    constexpr bool rm = std::is_same<Layout, row_major>::value;
    lf_emu_wmma_check(p, ldm, "load_matrix_sync", line);
    using Fr = fragment<Use, 16, 16, 8, precision::tf32, Layout>;
    const int l = lf_emu::lane();
    for (int t = 0; t < Fr::num_elements; t++) {
        const int e = l + 32 * t, r = e / Fr::cols, c = e % Fr::cols;
        f.x[t] = rm ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r];
    }
}

static inline void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 8, float> &f, unsigned ldm,
                                     layout_t layout, int line = __builtin_LINE()) {
    lf_emu_wmma_check(p, ldm, "store_matrix_sync", line);
    using Fr = fragment<accumulator, 16, 16, 8, float>;
    const int l = lf_emu::lane();
    for (int t = 0; t < Fr::num_elements; t++) {
        const int e = l + 32 * t, r = e / 16, c = e % 16;
        if (layout == mem_row_major) p[(size_t)r * ldm + c] = f.x[t];
        else p[(size_t)c * ldm + r] = f.x[t];
    }
    lf_emu::warp_sync(0xffffffffu, line, 1); /* the tile is complete only when every lane stored */
}

template <class LA, class LB>
static inline void mma_sync(fragment<accumulator, 16, 16, 8, float> &d,
                            const fragment<matrix_a, 16, 16, 8, precision::tf32, LA> &a,
                            const fragment<matrix_b, 16, 16, 8, precision::tf32, LB> &b,
                            const fragment<accumulator, 16, 16, 8, float> &c, int line = __builtin_LINE()) {
    struct lane_in {
        const float *a, *b;
    } mine{a.x, b.x};
    void *const *all = lf_emu::warp_ptrs(0xffffffffu, line, 2, &mine);
    float A[16][8], B[8][16];
    for (int l = 0; l < 32; l++) {
        const lane_in *in = static_cast<const lane_in *>(all[l]);
        for (int t = 0; t < 4; t++) {
            const int e = l + 32 * t;
            A[e / 8][e % 8] = lf_emu_tf32_cut(in->a[t]);
            B[e / 16][e % 16] = lf_emu_tf32_cut(in->b[t]);
        }
    }
    const int l = lf_emu::lane();
    float out[8];
    for (int t = 0; t < 8; t++) {
        const int e = l + 32 * t, r = e / 16, cc = e % 16;
        float acc = c.x[t];
        for (int k = 0; k < 8; k++) acc = acc + A[r][k] * B[k][cc]; /* products exact: 11 x 11 bits */
        out[t] = acc;
    }
    lf_emu::warp_sync(0xffffffffu, line, 3); /* every lane has read the others' inputs */
    for (int t = 0; t < 8; t++) d.x[t] = out[t];
}

} // namespace wmma
} // namespace nvcuda

#endif
