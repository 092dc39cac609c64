/* cuda_fp16.h (emulation): the f16 conversions kernels/cuda/apply.cu uses (__half, __half2float,
 * __float2half_rn, __ushort_as_half, __half_as_ushort), for the -DLF_CUDA_EMU=ON build. Values as the
 * hardware cvt gives them: round to nearest even, subnormals kept, overflow to Inf (the software
 * routines of lf_half.h), and the canonical NaN 0x7fff for any NaN input, as cvt.rn.f16.f32 writes it.
 */
#ifndef LF_EMU_CUDA_FP16_H
#define LF_EMU_CUDA_FP16_H

#include <cstdint>

#include "kernels/common/lf_half.h"

struct __half {
    uint16_t bits;
};
static inline __half __ushort_as_half(unsigned short h) { return __half{h}; }
static inline unsigned short __half_as_ushort(__half h) { return h.bits; }
static inline float __half2float(__half h) { return lf_f16_to_f32(h.bits); }
static inline __half __float2half_rn(float x) { return __half{x != x ? (uint16_t)0x7fffu : lf_f32_to_f16(x)}; }

#endif
