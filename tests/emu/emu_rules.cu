/* emu_rules.cu: the CUDA emulation itself (kernels/emu), label emu: what it computes and what it
 * refuses. Compiled like the kernels of kernels/cuda in the -DLF_CUDA_EMU=ON build (cu2cpp.cmake, then C++).
 * - kernels: block barrier + warp shuffle reduction, a WMMA m16n16k8 TF32 product against a CPU
 *   product of the TF32-cut inputs (bit for bit), shared memory pre-filled with NaN;
 * - rule violations fail the launch with the sticky cudaErrorAssert: a divergent __syncthreads, a
 *   shuffle not every lane of its mask reaches, a WMMA pointer not 256-bit aligned, an ldm not a
 *   multiple of 16 bytes, shared arrays over 48 KiB; an invalid launch configuration is
 *   cudaErrorInvalidConfiguration from cudaGetLastError;
 * - runtime: copies outside an allocation or of the wrong kind fail, a kernel writing past its buffer
 *   is found at cudaFree (guard zones), error injection fails exactly the N-th call, a memset on the
 *   legacy stream and a copy on a non-blocking stream to the same bytes are a race, and an event
 *   between them removes it; a device -> pinned copy lands only at a synchronisation covering it, a
 *   pinned -> device copy reads its source only before the next operation ordered after it;
 * - cuBLAS stand-in: sgemm with transposes and leading dimensions against a CPU loop; a leading
 *   dimension below the rows is CUBLAS_STATUS_INVALID_VALUE.
 */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <cmath>
#include <cstdio>
#include <cstring>

#include "kernels/emu/lf_emu.h"

static int passed, failed;
#define CHECK(c, ...)                                                                                                  \
    do {                                                                                                               \
        if (c) passed++;                                                                                               \
        else {                                                                                                         \
            failed++;                                                                                                  \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #c);                                               \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
        }                                                                                                              \
    } while (0)

/* ---- kernels ---------------------------------------------------------------------------------- */

__global__ void block_sum(const float *x, float *out) {
    __shared__ float part[4];
    const int t = threadIdx.x;
    float v = x[blockIdx.x * 128 + t];
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    if ((t & 31) == 0) part[t >> 5] = v;
    __syncthreads();
    if (t == 0) out[blockIdx.x] = part[0] + part[1] + part[2] + part[3];
}

__global__ void wmma_tile(const float *a, const float *b, float *c, int lda, int shift) {
    using namespace nvcuda;
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> fc;
    wmma::fill_fragment(fc, 0.0f);
    wmma::load_matrix_sync(fa, a + shift, lda);
    wmma::load_matrix_sync(fb, b, 16);
    for (int t = 0; t < fa.num_elements; t++) fa.x[t] = wmma::__float_to_tf32(fa.x[t]);
    for (int t = 0; t < fb.num_elements; t++) fb.x[t] = wmma::__float_to_tf32(fb.x[t]);
    wmma::mma_sync(fc, fa, fb, fc);
    wmma::store_matrix_sync(c, fc, 16, wmma::mem_row_major);
}

__global__ void shared_unwritten(float *out) {
    __shared__ float s[64];
    if (threadIdx.x < 32) s[threadIdx.x] = 1.0f;
    __syncthreads();
    out[threadIdx.x] = s[threadIdx.x];
}

__global__ void divergent_barrier(float *out) {
    if (threadIdx.x < 64) __syncthreads();
    out[threadIdx.x] = 1.0f;
}

__global__ void half_warp_shuffle(float *out) {
    float v = 1.0f;
    if (threadIdx.x < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);
    out[threadIdx.x] = v;
}

__global__ void too_much_shared(float *out) {
    __shared__ float big[13 * 1024];
    big[threadIdx.x] = 1.0f;
    out[threadIdx.x] = big[threadIdx.x];
}

__global__ void write_past(float *out, int n) { out[n + threadIdx.x] = 1.0f; }

/* ---- helpers ---------------------------------------------------------------------------------- */

static float tf32_cut(float f) {
    f = nvcuda::wmma::__float_to_tf32(f);
    return f;
}

/* the launch broke a rule: the sticky error, then a clean device again */
static void expect_fault(const char *what) {
    lf_emu_counters c;
    lf_emu_get_counters(&c);
    cudaError_t e = cudaDeviceSynchronize();
    CHECK(e == cudaErrorAssert, "%s: cudaDeviceSynchronize gave %s, expected cudaErrorAssert", what, cudaGetErrorName(e));
    CHECK(c.kernel_faults == 1, "%s: %llu kernel faults counted", what, (unsigned long long)c.kernel_faults);
    lf_emu_reset_device();
    lf_emu_reset_counters();
}

static float *dev_floats(size_t n, float fill) {
    float *d = nullptr, *h = new float[n];
    for (size_t i = 0; i < n; i++) h[i] = fill;
    cudaMalloc((void **)&d, n * sizeof(float));
    cudaMemcpy(d, h, n * sizeof(float), cudaMemcpyHostToDevice);
    delete[] h;
    return d;
}

int main() {
    /* block barrier + shuffles */
    {
        float h[256], out[2];
        for (int i = 0; i < 256; i++) h[i] = (float)(i % 7);
        float *x = dev_floats(256, 0.0f), *o = dev_floats(2, 0.0f);
        cudaMemcpy(x, h, sizeof h, cudaMemcpyHostToDevice);
        block_sum<<<2, 128>>>(x, o);
        CHECK(cudaGetLastError() == cudaSuccess, "launch");
        cudaMemcpy(out, o, sizeof out, cudaMemcpyDeviceToHost);
        for (int b = 0; b < 2; b++) {
            float r = 0;
            for (int i = 0; i < 128; i++) r += h[b * 128 + i];
            CHECK(out[b] == r, "block %d: sum %g, expected %g", b, out[b], r);
        }
        cudaFree(x);
        cudaFree(o);
    }
    /* WMMA: TF32-cut inputs, f32 accumulation; misalignment and ldm refused */
    {
        float ha[16 * 12], hb[8 * 16], hc[256];
        for (int i = 0; i < 16 * 12; i++) ha[i] = 1.0f + 1e-4f * (float)i - 0.01f * (float)(i % 5);
        for (int i = 0; i < 8 * 16; i++) hb[i] = 0.5f - 3e-5f * (float)(i * i % 97);
        float *a = dev_floats(16 * 12, 0.0f), *b = dev_floats(128, 0.0f), *c = dev_floats(256, 0.0f);
        cudaMemcpy(a, ha, sizeof ha, cudaMemcpyHostToDevice);
        cudaMemcpy(b, hb, sizeof hb, cudaMemcpyHostToDevice);
        wmma_tile<<<1, 32>>>(a, b, c, 12, 0);
        cudaMemcpy(hc, c, sizeof hc, cudaMemcpyDeviceToHost);
        int bad = 0;
        for (int r = 0; r < 16; r++)
            for (int n = 0; n < 16; n++) {
                float acc = 0.0f;
                for (int k = 0; k < 8; k++) acc = acc + tf32_cut(ha[r * 12 + k]) * tf32_cut(hb[k * 16 + n]);
                bad += hc[r * 16 + n] != acc;
            }
        CHECK(bad == 0, "wmma: %d of 256 elements differ from the TF32 reference", bad);
        wmma_tile<<<1, 32>>>(a, b, c, 12, 4); /* a + 4 floats: 16-byte, not 32-byte aligned */
        expect_fault("wmma pointer alignment");
        wmma_tile<<<1, 32>>>(a, b, c, 10, 0); /* ldm 10 floats = 40 bytes */
        expect_fault("wmma ldm");
        cudaFree(a);
        cudaFree(b);
        cudaFree(c);
    }
    /* shared memory starts as NaN; rule violations */
    {
        float *o = dev_floats(128, 0.0f), h[64];
        shared_unwritten<<<1, 64>>>(o);
        cudaMemcpy(h, o, sizeof h, cudaMemcpyDeviceToHost);
        CHECK(h[0] == 1.0f && std::isnan(h[40]), "shared memory: written %g, unwritten %g (NaN expected)", h[0], h[40]);
        divergent_barrier<<<1, 128>>>(o);
        expect_fault("divergent __syncthreads");
        half_warp_shuffle<<<1, 32>>>(o);
        expect_fault("shuffle with missing lanes");
        too_much_shared<<<1, 32>>>(o);
        expect_fault("shared memory over 48 KiB");
        divergent_barrier<<<1, 1025>>>(o);
        cudaError_t e = cudaGetLastError();
        CHECK(e == cudaErrorInvalidConfiguration, "1025 threads: %s", cudaGetErrorName(e));
        cudaFree(o);
    }
    /* runtime checks */
    {
        float *d = dev_floats(64, 0.0f), h[128];
        CHECK(cudaMemcpy(h, d, 65 * sizeof(float), cudaMemcpyDeviceToHost) == cudaErrorInvalidValue, "copy past the end");
        CHECK(cudaMemcpy(d, h, 4, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue, "wrong copy kind");
        CHECK(cudaMemset(h, 0, 4) == cudaErrorInvalidValue, "memset of host memory");
        cudaGetLastError();
        write_past<<<1, 2>>>(d, 64);
        cudaDeviceSynchronize();
        CHECK(cudaFree(d) == cudaErrorIllegalAddress, "a write past the end is found at cudaFree");
        lf_emu_reset_device();
        lf_emu_fail_at(2);
        void *p1 = nullptr, *p2 = nullptr, *p3 = nullptr;
        cudaError_t e1 = cudaMalloc(&p1, 16), e2 = cudaMalloc(&p2, 16), e3 = cudaMalloc(&p3, 16);
        CHECK(e1 == cudaSuccess && e2 == cudaErrorMemoryAllocation && e3 == cudaSuccess && !p2,
              "injection: %s %s %s", cudaGetErrorName(e1), cudaGetErrorName(e2), cudaGetErrorName(e3));
        CHECK(!strcmp(lf_emu_failed_call(), "cudaMalloc"), "injected call: %s", lf_emu_failed_call());
        lf_emu_fail_at(0);
        cudaGetLastError();
        cudaFree(p1);
        cudaFree(p3);
    }
    /* races between the legacy stream and a non-blocking stream */
    {
        float *d = dev_floats(64, 0.0f), h[64] = {0};
        cudaDeviceSynchronize();
        cudaStream_t s;
        cudaEvent_t ev;
        cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
        cudaEventCreate(&ev);
        lf_emu_reset_counters();
        cudaMemset(d, 0, sizeof h);
        cudaMemcpyAsync(d, h, sizeof h, cudaMemcpyHostToDevice, s);
        lf_emu_counters c;
        lf_emu_get_counters(&c);
        CHECK(c.races == 1, "memset (legacy) then copy (non-blocking stream): %llu races", (unsigned long long)c.races);
        cudaDeviceSynchronize();
        lf_emu_reset_counters();
        cudaMemset(d, 0, sizeof h);
        cudaEventRecord(ev, nullptr);
        cudaStreamWaitEvent(s, ev, 0);
        cudaMemcpyAsync(d, h, sizeof h, cudaMemcpyHostToDevice, s);
        block_sum<<<1, 64, 0, s>>>(d, d);
        lf_emu_get_counters(&c);
        CHECK(c.races == 0, "ordered by an event: %llu races", (unsigned long long)c.races);
        cudaStreamSynchronize(s);
        /* a device -> pinned copy is visible to the host only after a synchronisation covering it */
        int *pin = nullptr, *dv = nullptr, val = 42;
        cudaHostAlloc((void **)&pin, sizeof(int), cudaHostAllocDefault);
        cudaMalloc((void **)&dv, sizeof(int));
        cudaMemcpy(dv, &val, sizeof val, cudaMemcpyHostToDevice);
        cudaMemcpyAsync(pin, dv, sizeof val, cudaMemcpyDeviceToHost, s);
        const int early = *pin;
        cudaEventRecord(ev, s);
        cudaEventSynchronize(ev);
        CHECK(early == -1 && *pin == 42, "pinned result: %d before the sync (expected -1: not landed), %d after", early,
              *pin);
        /* a pinned -> device copy reads its source late: staging rewritten too early sends the new bytes */
        *pin = 1;
        cudaMemcpyAsync(dv, pin, sizeof val, cudaMemcpyHostToDevice, s);
        *pin = 2;
        cudaStreamSynchronize(s);
        cudaMemcpy(&val, dv, sizeof val, cudaMemcpyDeviceToHost);
        CHECK(val == 2, "pinned staging rewritten after the copy was issued: the device got %d (expected 2)", val);
        cudaFreeHost(pin);
        cudaFree(dv);
        cudaEventDestroy(ev);
        cudaStreamDestroy(s);
        cudaFree(d);
        lf_emu_reset_counters();
    }
    /* cuBLAS sgemm stand-in: column-major, transposes, leading dimensions */
    {
        const int m = 5, n = 3, k = 4, lda = 6, ldb = 7, ldc = 8;
        float ha[6 * 5], hb[7 * 4], hc[8 * 3];
        for (int i = 0; i < 30; i++) ha[i] = (float)(i % 9) - 4.0f;
        for (int i = 0; i < 28; i++) hb[i] = (float)(i % 5) * 0.5f;
        float *a = dev_floats(30, 0.0f), *b = dev_floats(28, 0.0f), *c = dev_floats(24, 0.0f);
        cudaMemcpy(a, ha, sizeof ha, cudaMemcpyHostToDevice);
        cudaMemcpy(b, hb, sizeof hb, cudaMemcpyHostToDevice);
        cublasHandle_t hd;
        cublasCreate(&hd);
        const float one = 1.0f, zero = 0.0f;
        /* C (m, n) = A^T B: A stored (k, m) with lda, B (k, n) with ldb */
        CHECK(cublasSgemm(hd, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, a, lda, b, ldb, &zero, c, ldc) ==
                  CUBLAS_STATUS_SUCCESS, "sgemm");
        cudaMemcpy(hc, c, sizeof hc, cudaMemcpyDeviceToHost);
        int bad = 0;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double r = 0;
                for (int p = 0; p < k; p++) r += (double)ha[p + i * lda] * hb[p + j * ldb];
                bad += std::fabs(hc[i + j * ldc] - r) > 1e-5;
            }
        CHECK(bad == 0, "sgemm A^T B: %d elements wrong", bad);
        CHECK(cublasSgemm(hd, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, a, 4, b, ldb, &zero, c, ldc) ==
                  CUBLAS_STATUS_INVALID_VALUE, "lda 4 below m 5 accepted");
        CHECK(cublasSgemm(hd, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, a, lda, b, ldb, &zero, c, 10) ==
                  CUBLAS_STATUS_EXECUTION_FAILED, "C with ldc 10 runs past its allocation");
        cublasDestroy(hd);
        cudaFree(a);
        cudaFree(b);
        cudaFree(c);
    }
    uint64_t bytes = 0;
    CHECK(lf_emu_live(&bytes) == 0, "%llu bytes still allocated", (unsigned long long)bytes);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
