/* lf_emu_typed.h: the elements of the typed operands of the cuBLAS and cuBLASLt stand-ins
 * (lf_emu_blas.cpp, lf_emu_blaslt.cpp): CUDA_R_32F, CUDA_R_16F and CUDA_R_16BF arrays read as f32
 * (f16 and bf16 widen exactly) and written from f32 (rounded once, to nearest even). C++, emulation only. */
#ifndef LF_EMU_TYPED_H
#define LF_EMU_TYPED_H

#include <cstddef>
#include <cstdint>

#include <cublas_v2.h>

#include "kernels/common/lf_half.h"

inline size_t lf_emu_type_size(cudaDataType t) { return t == CUDA_R_32F ? 4 : 2; }

inline float lf_emu_load(const void *p, cudaDataType t, size_t i) {
    if (t == CUDA_R_16F) return lf_f16_to_f32(static_cast<const uint16_t *>(p)[i]);
    if (t == CUDA_R_16BF) return lf_bf16_to_f32(static_cast<const uint16_t *>(p)[i]);
    return static_cast<const float *>(p)[i];
}

inline void lf_emu_store(void *p, cudaDataType t, size_t i, float v) {
    if (t == CUDA_R_16F) static_cast<uint16_t *>(p)[i] = lf_f32_to_f16(v);
    else if (t == CUDA_R_16BF) static_cast<uint16_t *>(p)[i] = lf_f32_to_bf16(v);
    else static_cast<float *>(p)[i] = v;
}

#endif
