/* gpu_svd.c: lf_dev_svd (lf_device.h, host/cuda/device_cuda_svd.c), the device twin of the CPU SVD of
 * kernels/cpu/linalg/svd.c, on matrices of known spectrum (tests/common/lf_test_svd.h). Label gpu;
 * exit 77 without CUDA or a device.
 * - exact (cuSOLVER gesvdj), tall and wide, both shapes of SD layers' sizes: singular values against
 *   sigma and the CPU's, the rank-k residual = the Eckart-Young optimum within 1e-4 relative;
 * - randomized (cuBLAS sgemm + cuSOLVER QR, the CPU's test matrix, `extract`'s defaults l = 2k,
 *   3 power iterations): the residual within 1 % of the optimum and the values close to the CPU
 *   randomized path's (same Omega);
 * - bad arguments;
 * - `extract` with the device SVD (opts.svd_fn, as `--svd-device cuda` sets it) on the extraction
 *   fixtures: every module's residual within 1e-4 relative of the CPU path's.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_test.h"
#include "lf_test_svd.h"
#include "lorafuse/lf_device.h"
#include "lorafuse/lf_extract.h"

static lf_test_rng g_rng = {LF_TEST_RNG_SEED};

static void check(lf_device *dev, int64_t m, int64_t n, int64_t k, int64_t l, double decay) {
    int64_t p = m < n ? m : n, w = l ? l : p;
    double *sigma = malloc((size_t)p * sizeof *sigma);
    for (int64_t i = 0; i < p; i++) sigma[i] = 3.0 * pow(decay, (double)i);
    float *a = lf_test_spectrum_matrix(&g_rng, m, n, sigma, p);
    lf_svd g = {m, n, w, malloc((size_t)w * sizeof(double)), malloc((size_t)(m * w) * sizeof(float)),
                malloc((size_t)(w * n) * sizeof(float))};
    lf_svd c;
    lf_status st = lf_dev_svd(dev, a, m, n, l, 3, 7, g.s, g.u, g.vt);
    LF_CHECK(st == LF_OK, "(%lld, %lld) l %lld: %s", (long long)m, (long long)n, (long long)l, lf_last_error());
    lf_status cs = l ? lf_svd_randomized(a, m, n, l, 3, 7, &c) : lf_svd_exact(a, m, n, &c);
    LF_CHECK(cs == LF_OK, "cpu: %s", lf_last_error());
    if (st == LF_OK && cs == LF_OK) {
        double es = 0;
        for (int64_t i = 0; i < k; i++) es = fmax(es, fabs(g.s[i] - c.s[i]));
        LF_CHECK(es <= (l ? 1e-3 : 1e-5) * sigma[0], "(%lld, %lld) l %lld: device and CPU values differ by %g",
                 (long long)m, (long long)n, (long long)l, es);
        double res = lf_test_svd_residual(a, &g, k), opt = lf_test_svd_optimum(sigma, p, k);
        if (l)
            LF_CHECK(res <= 1.01 * opt, "(%lld, %lld) randomized: residual %.6g, optimum %.6g", (long long)m,
                     (long long)n, res, opt);
        else
            LF_CHECK(fabs(res - opt) <= 1e-4 * opt, "(%lld, %lld) exact: residual %.8g, optimum %.8g", (long long)m,
                     (long long)n, res, opt);
        printf("(%lld, %lld) %s: residual / optimum %.6f, |S_dev - S_cpu| %.2e\n", (long long)m, (long long)n,
               l ? "randomized" : "exact", res / opt, es);
    }
    lf_svd_free(&g);
    if (cs == LF_OK) lf_svd_free(&c);
    free(a);
    free(sigma);
}

static lf_status device_svd(void *ctx, const float *a, int64_t m, int64_t n, int64_t l, int q, uint64_t seed, double *s,
                            float *u, float *vt) {
    return lf_dev_svd(ctx, a, m, n, l, q, seed, s, u, vt);
}

static void check_extract(lf_device *dev, lf_svd_method method) {
    lf_merge_input in = {"tests/data/extract/lora_r8.safetensors", 1.0f, 0};
    lf_extract_opts o;
    memset(&o, 0, sizeof o);
    o.rank = 4;
    o.dtype = LF_F32;
    o.svd = method;
    o.threads = 1; /* one module at a time on the device */
    o.overwrite = 1;
    lf_extract_report cpu, gpu;
    LF_CHECK(lf_extract("tests/data/extract/base.safetensors", &in, 1, NULL, "/tmp/lf_gpu_svd_cpu.safetensors", &o,
                        &cpu) == LF_OK, "extract (cpu): %s", lf_last_error());
    o.svd_fn = device_svd;
    o.svd_ctx = dev;
    LF_CHECK(lf_extract("tests/data/extract/base.safetensors", &in, 1, NULL, "/tmp/lf_gpu_svd_dev.safetensors", &o,
                        &gpu) == LF_OK, "extract (device): %s", lf_last_error());
    LF_CHECK(cpu.n_layers == gpu.n_layers, "modules: cpu %zu, device %zu", cpu.n_layers, gpu.n_layers);
    for (size_t i = 0; i < cpu.n_layers && i < gpu.n_layers; i++) {
        double a = cpu.layers[i].residual, b = gpu.layers[i].residual, nrm = cpu.layers[i].norm;
        LF_CHECK(fabs(a - b) <= 1e-4 * nrm, "%s: residual cpu %.6g, device %.6g (||dW|| %.6g)", cpu.layers[i].name, a,
                 b, nrm);
    }
    lf_extract_report_free(&cpu);
    lf_extract_report_free(&gpu);
    remove("/tmp/lf_gpu_svd_cpu.safetensors");
    remove("/tmp/lf_gpu_svd_dev.safetensors");
}

int main(void) {
    lf_device *dev = NULL;
    lf_status st = lf_device_open(0, &dev);
    if (st == LF_ERR_UNSUPPORTED) LF_SKIP(lf_last_error());
    LF_CHECK(st == LF_OK, "lf_device_open: %s", lf_last_error());
    if (st != LF_OK) return lf_test_finish();
    printf("device: %s\n", lf_device_describe(dev));
    check(dev, 320, 768, 16, 0, 0.98);
    check(dev, 1280, 320, 16, 0, 0.98);
    check(dev, 640, 2560, 16, 32, 0.97);
    check(dev, 2560, 640, 32, 64, 0.99);
    double s[2];
    float u[4], vt[6], a[6] = {1, 2, 3, 4, 5, 6};
    LF_CHECK(lf_dev_svd(dev, a, 2, 3, 3, 1, 1, s, u, vt) == LF_ERR_ARG, "l above min(m, n)");
    LF_CHECK(lf_dev_svd(dev, a, 0, 3, 0, 1, 1, s, u, vt) == LF_ERR_ARG, "an empty matrix");
    check_extract(dev, LF_SVD_EXACT);
    check_extract(dev, LF_SVD_RANDOMIZED);
    lf_device_close(dev);
    return lf_test_finish();
}
