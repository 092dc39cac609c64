/* gpu_sample.c: the sampler's loop on the device against the CPU, byte for byte.
 *
 *   1. every sample_update op (kernels/common/lf_sample_update.h) with every flag it reads, epsilon and v,
 *      on the CUDA compute and the CPU compute with the same f32 inputs: the same bytes (one formula,
 *      compiled without contraction on both sides; NONFINITE on data with a NaN and an Inf);
 *   2. lf_sampler_run_on (host/sample/sampler_compute.h) of every sampler (epsilon and v, Karras where
 *      it exists, two noise chunks) on both computes with a denoiser made of compute ops that are exact
 *      on both (out = x * s(t) + bias: scale, add): the final latents equal byte for byte, and through a
 *      counting compute around the device the loop moves nothing between host and device but the
 *      ancestral / SDE noise (n floats per step).
 * Label gpu (exit 77 without CUDA or a device), emu in the emulation.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_test_open.h"
#include "host/runtime/compute_count.h"
#include "host/runtime/compute_cpu.h"
#include "host/sample/sampler_compute.h"
#include "lf_test.h"
#include "lf_test_rng.h"

enum { N_EL = 1031 };

/* n floats of c holding host h */
static float *dev_copy(lf_compute *c, const float *h, int64_t n) {
    float *d = NULL;
    if (lf_compute_alloc_f32(c, n, &d) != LF_OK || c->upload(c, d, h, n) != LF_OK) return NULL;
    return d;
}

static void check_op(lf_compute *gpu, const lf_sample_upd *u, lf_test_rng *r, const char *what) {
    lf_compute *cpu = lf_compute_cpu();
    float *h[LF_SU_BUFS], *d[LF_SU_BUFS], *got = malloc(N_EL * sizeof *got);
    for (int b = 0; b < LF_SU_BUFS; b++) {
        h[b] = malloc(N_EL * sizeof **h);
        for (int i = 0; i < N_EL; i++) h[b][i] = 3.0f * lf_test_rng_signed(r);
        h[b][0] = 0.0f, h[b][1] = -0.0f, h[b][2] = 1e-30f; /* signed zeros and a tiny value through every formula */
        if (u->op == LF_SU_NONFINITE && b == 1) h[b][500] = NAN, h[b][600] = INFINITY;
        d[b] = dev_copy(gpu, h[b], N_EL);
    }
    lf_status sc = cpu->sample_update(cpu, u, h, N_EL);
    lf_status sg = gpu->sample_update(gpu, u, d, N_EL);
    LF_CHECK(sc == LF_OK && sg == LF_OK, "%s: runs (%s)", what, lf_last_error());
    int nb = lf_su_nbufs(u), diff = 0;
    for (int b = 0; b < nb && sg == LF_OK; b++) {
        gpu->download(gpu, got, d[b], N_EL);
        for (int i = 0; i < N_EL; i++) diff += memcmp(&got[i], &h[b][i], sizeof *got) != 0;
    }
    LF_CHECK(diff == 0, "%s: %d elements differ from the CPU's bytes", what, diff);
    if (u->op == LF_SU_NONFINITE) LF_CHECK(h[0][0] == u->k[0], "%s: the NaN and the Inf are flagged", what);
    for (int b = 0; b < LF_SU_BUFS; b++) {
        gpu->release(gpu, d[b]);
        free(h[b]);
    }
    free(got);
}

static void check_ops(lf_compute *gpu) {
    lf_test_rng r;
    lf_test_rng_seed(&r, 20261207);
    static const int flag_sets[][3] = {
        /* op, flags to try (besides V_PRED), count */
        {LF_SU_SCALE_IN, 0, 1}, {LF_SU_CFG, 0, 1}, {LF_SU_COPY, 0, 1}, {LF_SU_EULER, LF_SU_NOISE, 2},
        {LF_SU_HEUN1, 0, 1}, {LF_SU_HEUN2, 0, 1}, {LF_SU_DDIM, 0, 1}, {LF_SU_X0_VP, 0, 1},
        {LF_SU_DPM, LF_SU_SECOND | LF_SU_SDE, 4}, {LF_SU_UNIPC_C, LF_SU_SECOND, 2},
        {LF_SU_UNIPC_P, LF_SU_SECOND | LF_SU_FINAL, 4}, {LF_SU_NONFINITE, 0, 1},
    };
    int ops = 0;
    for (size_t f = 0; f < sizeof flag_sets / sizeof flag_sets[0]; f++) {
        int op = flag_sets[f][0], bits = flag_sets[f][1];
        for (int sub = 0; sub <= bits; sub++) {
            if ((sub & bits) != sub) continue; /* every subset of the op's flags */
            for (int v = 0; v < 2; v++) {
                lf_sample_upd u;
                memset(&u, 0, sizeof u);
                u.op = op;
                u.flags = sub | (v ? LF_SU_V_PRED : 0);
                for (int k = 0; k < LF_SU_K; k++) u.k[k] = lf_test_rng_uniform(&r, 0.05f, 2.0f) * (k % 3 ? 1.0f : -1.0f);
                char what[64];
                snprintf(what, sizeof what, "op %d flags %d", op, u.flags);
                check_op(gpu, &u, &r, what);
                ops++;
            }
        }
    }
    printf("sample_update: %d op/flag cases, byte for byte\n", ops);
}

/* ---- the whole loop ------------------------------------------------------------------------------ */

typedef struct {
    lf_compute *c;
    float *bias; /* n floats of c */
    int64_t n;
} fake_model;

static lf_status fake_denoise(void *ctx, int step, const float *x, float sigma, float t, float *out) {
    (void)step, (void)sigma;
    fake_model *m = ctx;
    lf_status st = m->c->scale(m->c, out, x, 0.1f + t / 8000.0f, m->n);
    return st ? st : m->c->add(m->c, out, out, m->bias, m->n);
}

/* the final latent of sampler cfg on compute c (counted: cnt around it, or NULL) into res */
static lf_status run_on(lf_compute *c, const lf_sampler_config *cfg, int steps, const float *bias_h, float *res) {
    lf_sampler *s = NULL;
    lf_status st = lf_sampler_create(cfg, steps, &s);
    if (st) return st;
    enum { CH = 2 };
    lf_rng rng[CH];
    float *x0 = malloc(N_EL * 2 * sizeof *x0);
    for (int k = 0; k < CH; k++) {
        lf_rng_init(&rng[k], LF_RNG_TORCH_CPU, 1234 + k);
        lf_sampler_init_latent(s, &rng[k], x0 + k * N_EL, N_EL);
    }
    fake_model m = {c, dev_copy(c, bias_h, 2 * N_EL), 2 * N_EL};
    float *x = dev_copy(c, x0, 2 * N_EL);
    lf_sampler_cb cb = {&m, NULL, fake_denoise};
    st = m.bias && x ? lf_sampler_run_on(s, c, x, 2 * N_EL, rng, CH, &cb) : LF_ERR_NOMEM;
    if (!st) st = c->download(c, res, x, 2 * N_EL);
    c->release(c, x);
    c->release(c, m.bias);
    free(x0);
    lf_sampler_free(s);
    return st;
}

static void check_loops(lf_compute *gpu) {
    lf_test_rng r;
    lf_test_rng_seed(&r, 7);
    float *bias = malloc(2 * N_EL * sizeof *bias), *a = malloc(2 * N_EL * sizeof *a), *b = malloc(2 * N_EL * sizeof *b);
    for (int i = 0; i < 2 * N_EL; i++) bias[i] = 0.2f * lf_test_rng_signed(&r);
    lf_compute_count cnt;
    lf_compute_count_init(&cnt, gpu);
    int cases = 0;
    for (int k = 0; k < LF_SAMPLER_COUNT; k++)
        for (int v = 0; v < 2; v++)
            for (int kar = 0; kar < 2; kar++) {
                lf_sampler_config cfg;
                lf_sampler_config_default(&cfg, (lf_sampler_kind)k);
                cfg.prediction = v ? LF_PRED_V : LF_PRED_EPSILON;
                cfg.karras = kar;
                lf_sampler *probe = NULL;
                if (lf_sampler_create(&cfg, 5, &probe) != LF_OK) { /* no Karras variant */
                    lf_err_clear();
                    continue;
                }
                lf_sampler_free(probe);
                const char *name = lf_sampler_config_name(&cfg);
                lf_status sc = run_on(lf_compute_cpu(), &cfg, 5, bias, a);
                lf_compute_count_reset(&cnt);
                lf_status sg = run_on(&cnt.c, &cfg, 5, bias, b);
                LF_CHECK(sc == LF_OK && sg == LF_OK, "%s%s: runs (%s)", name, v ? " (v)" : "", lf_last_error());
                int diff = 0;
                for (int i = 0; i < 2 * N_EL; i++) diff += memcmp(&a[i], &b[i], sizeof *a) != 0;
                LF_CHECK(diff == 0, "%s%s: %d of %d latent values differ from the CPU's", name, v ? " (v)" : "", diff,
                         2 * N_EL);
                /* the test's own: the bias and the initial latent up, the final latent down; the loop: noise */
                int stoch = k == LF_SAMPLER_EULER_A || k == LF_SAMPLER_DPMPP_2M_SDE;
                double want_up = 4.0 * 2 * N_EL * (2 + (stoch ? 5 : 0));
                LF_CHECK(cnt.up_bytes == want_up && cnt.down_bytes == 4.0 * 2 * N_EL,
                         "%s: %.0f bytes up (want %.0f), %.0f down", name, cnt.up_bytes, want_up, cnt.down_bytes);
                printf("  %-22s%s  byte for byte; %llu sample_update calls, host->device %.0f B, device->host %.0f B\n",
                       name, v ? " (v)" : "    ", (unsigned long long)cnt.op[LF_COP_SAMPLE_UPDATE].calls, cnt.up_bytes,
                       cnt.down_bytes);
                cases++;
            }
    printf("sampler loops: %d cases on the device equal the CPU's\n", cases);
    lf_compute_count_free(&cnt);
    free(bias);
    free(a);
    free(b);
}

int main(void) {
    lf_device *dev = NULL;
    lf_compute *gpu = NULL;
    if (lf_test_cuda_open(&dev, &gpu) != LF_OK) return lf_test_finish();
    check_ops(gpu);
    check_loops(gpu);
    gpu->destroy(gpu);
    lf_device_close(dev);
    return lf_test_finish();
}
