/* lf_hd.h: the LF_HD qualifier for math shared by the C reference and CUDA kernels.
 *
 * Under nvcc a function marked LF_HD is __host__ __device__ and force-inlined; under a C11 compiler it
 * is `static inline`. Headers using it stay valid C11 and C++17 (no designated initializers, no
 * compound literals, no `restrict`).
 */
#ifndef LF_HD_H
#define LF_HD_H

#if defined(__CUDACC__)
#define LF_HD static __host__ __device__ __forceinline__
#else
#define LF_HD static inline
#endif

#endif
