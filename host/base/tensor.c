/* tensor.c: conversions of lf_view data to and from f32 (see lf_tensor.h).
 * Data comes from mmap'd files whose tensors need not be aligned, so every element is read with memcpy.
 */
#include "lorafuse/lf_tensor.h"

#include <stdio.h>
#include <string.h>

#include "kernels/common/lf_half.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#include <stdatomic.h>
#define LF_HAVE_F16C_PATH 1
#endif

int64_t lf_view_numel(const lf_view *v) {
    int64_t n = 1;
    for (int i = 0; i < v->ndim; i++) n *= v->shape[i];
    return n;
}

int64_t lf_view_cols(const lf_view *v) {
    int64_t n = 1;
    for (int i = 1; i < v->ndim; i++) n *= v->shape[i];
    return n;
}

const char *lf_shape_str(const lf_view *v, char *buf, size_t n) {
    size_t at = 0;
    at += (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < v->ndim && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, i ? ", %lld" : "%lld", (long long)v->shape[i]);
    if (at < n) snprintf(buf + at, n - at, v->ndim == 1 ? ",)" : ")");
    return buf;
}


static double lf_elem(const void *p, lf_dtype dt, int64_t i) {
    const unsigned char *b = (const unsigned char *)p;
    switch (dt) {
    case LF_F32: { float f; memcpy(&f, b + 4 * i, 4); return f; }
    case LF_F16: { uint16_t h; memcpy(&h, b + 2 * i, 2); return lf_f16_to_f32(h); }
    case LF_BF16: { uint16_t h; memcpy(&h, b + 2 * i, 2); return lf_bf16_to_f32(h); }
    case LF_F64: { double d; memcpy(&d, b + 8 * i, 8); return d; }
    case LF_F8_E4M3: return lf_f8e4m3_to_f32(b[i]);
    case LF_F8_E5M2: return lf_f8e5m2_to_f32(b[i]);
    case LF_BOOL: case LF_U8: return b[i];
    case LF_I8: return (int8_t)b[i];
    case LF_I16: { int16_t x; memcpy(&x, b + 2 * i, 2); return x; }
    case LF_U16: { uint16_t x; memcpy(&x, b + 2 * i, 2); return x; }
    case LF_I32: { int32_t x; memcpy(&x, b + 4 * i, 4); return x; }
    case LF_U32: { uint32_t x; memcpy(&x, b + 4 * i, 4); return x; }
    case LF_I64: { int64_t x; memcpy(&x, b + 8 * i, 8); return (double)x; }
    case LF_U64: { uint64_t x; memcpy(&x, b + 8 * i, 8); return (double)x; }
    default: return 0.0;
    }
}

/* F16 <-> F32 dominates merges and per-step rewrites of f16 checkpoints. x86 F16C converts 8 values
 * per instruction with the same results as lf_half.h: decoding is exact, and encoding with
 * _MM_FROUND_TO_NEAREST_INT rounds to nearest even and quiets NaN exactly as lf_f32_to_f16 does
 * (tests/kernels/test_half.c checks every f16 pattern and millions of f32 values against the scalar code). */
#ifdef LF_HAVE_F16C_PATH
/* cpuid rather than __builtin_cpu_supports("f16c"), which clang 14 does not know; AVX state must also be
 * enabled by the OS (OSXSAVE + XCR0 bits 1-2). Cached: the answer never changes. */
static int lf_f16c_probe(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & bit_F16C) || !(c & bit_AVX) || !(c & bit_OSXSAVE)) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 6u) == 6u;
}

static int lf_f16c(void) {
    static atomic_int cached = -1;
    int v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v < 0) {
        v = lf_f16c_probe();
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return v;
}

__attribute__((target("f16c,avx"))) static int64_t lf_f16_decode_f16c(const unsigned char *b, float *out, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(b + 2 * i))));
    return i;
}

__attribute__((target("f16c,avx"))) static int64_t lf_f16_encode_f16c(const float *src, unsigned char *b, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(void *)(b + 2 * i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    return i;
}
#endif

static void lf_f16_decode(const unsigned char *b, float *out, int64_t n) {
    int64_t i = 0;
#ifdef LF_HAVE_F16C_PATH
    if (lf_f16c()) i = lf_f16_decode_f16c(b, out, n);
#endif
    for (; i < n; i++) { uint16_t h; memcpy(&h, b + 2 * i, 2); out[i] = lf_f16_to_f32(h); }
}

static void lf_f16_encode(const float *src, unsigned char *b, int64_t n) {
    int64_t i = 0;
#ifdef LF_HAVE_F16C_PATH
    if (lf_f16c()) i = lf_f16_encode_f16c(src, b, n);
#endif
    for (; i < n; i++) { uint16_t h = lf_f32_to_f16(src[i]); memcpy(b + 2 * i, &h, 2); }
}

lf_status lf_view_to_f32(const lf_view *v, float *out) {
    if (!lf_dtype_readable(v->dtype))
        return lf_err(LF_ERR_DTYPE, "cannot convert dtype %s to F32", lf_dtype_name(v->dtype));
    int64_t n = lf_view_numel(v);
    const unsigned char *b = (const unsigned char *)v->data;
    switch (v->dtype) { /* fast paths for the dtypes that carry weights */
    case LF_F32: memcpy(out, b, (size_t)n * 4); return LF_OK;
    case LF_F16: lf_f16_decode(b, out, n); return LF_OK;
    case LF_BF16:
        for (int64_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, b + 2 * i, 2); out[i] = lf_bf16_to_f32(h); }
        return LF_OK;
    default:
        for (int64_t i = 0; i < n; i++) out[i] = (float)lf_elem(v->data, v->dtype, i);
        return LF_OK;
    }
}

lf_status lf_view_scalar(const lf_view *v, double *out) {
    if (lf_view_numel(v) < 1) return lf_err(LF_ERR_SHAPE, "expected a scalar, found an empty tensor");
    if (!lf_dtype_readable(v->dtype))
        return lf_err(LF_ERR_DTYPE, "cannot read a %s scalar", lf_dtype_name(v->dtype));
    *out = lf_elem(v->data, v->dtype, 0);
    return LF_OK;
}

lf_status lf_f32_to_dtype(const float *src, int64_t n, lf_dtype dt, void *dst) {
    unsigned char *b = (unsigned char *)dst;
    switch (dt) {
    case LF_F32: memcpy(b, src, (size_t)n * 4); return LF_OK;
    case LF_F16: lf_f16_encode(src, b, n); return LF_OK;
    case LF_BF16:
        for (int64_t i = 0; i < n; i++) { uint16_t h = lf_f32_to_bf16(src[i]); memcpy(b + 2 * i, &h, 2); }
        return LF_OK;
    default:
        return lf_err(LF_ERR_DTYPE, "cannot write weights as %s (F32, F16 and BF16 are supported)",
                      lf_dtype_name(dt));
    }
}
