/* cuda_bf16.h (emulation): the bf16 conversions kernels/cuda/apply.cu uses (__nv_bfloat16,
 * __bfloat162float, __float2bfloat16_rn, __ushort_as_bfloat16, __bfloat16_as_ushort), for the
 * -DLF_CUDA_EMU=ON build. Round to nearest even (lf_half.h) and the canonical NaN 0x7fff, as
 * cvt.rn.bf16.f32 writes it.
 */
#ifndef LF_EMU_CUDA_BF16_H
#define LF_EMU_CUDA_BF16_H

#include <cstdint>

#include "kernels/common/lf_half.h"

struct __nv_bfloat16 {
    uint16_t bits;
};
static inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short h) { return __nv_bfloat16{h}; }
static inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.bits; }
static inline float __bfloat162float(__nv_bfloat16 h) { return lf_bf16_to_f32(h.bits); }
static inline __nv_bfloat16 __float2bfloat16_rn(float x) {
    return __nv_bfloat16{x != x ? (uint16_t)0x7fffu : lf_f32_to_bf16(x)};
}

#endif
