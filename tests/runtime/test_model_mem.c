/* test_model_mem.c: shapes-only loads and memory peaks (host/runtime/model_mem.h), and the weight checks
 * of the loaders (weight_load.h).
 *
 * - A shapes-only load of the mini model's UNet and VAE gives the arch of a real load (widths, levels,
 *   tensor and value counts).
 * - The replayed peaks against what the runtime really uses: each forward (UNet at a 64x64 latent, batch
 *   2; VAE decode of a 96x96 latent) runs in a child process, and the growth of its peak resident set
 *   must cover the estimate and exceed it by no more than the per-thread scratch and 25 % (allocator
 *   slack). Skipped in sanitizer builds, whose allocator keeps freed memory.
 * - lf_wts_first_nonfinite finds the first NaN / Inf at every position of a block and across blocks;
 *   lf_wts_check_dtype accepts the float dtypes only.
 */
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lf_test.h"

#include "host/runtime/model_mem.h"
#include "host/runtime/weight_load.h"

#define MINI "models/sd15-mini.safetensors"

static void test_arch(const lf_st_file *f) {
    lf_unet_opts uo = {0};
    uo.num_heads = 8;
    lf_unet *u = NULL, *us = NULL;
    lf_vae *v = NULL, *vs = NULL;
    LF_CHECK(lf_unet_load(f, &uo, &u) == LF_OK && lf_unet_load_shapes(f, &uo, &us) == LF_OK, "unet: %s",
             lf_last_error());
    LF_CHECK(lf_vae_load(f, LF_FAMILY_SD1, NULL, &v) == LF_OK && lf_vae_load_shapes(f, LF_FAMILY_SD1, &vs) == LF_OK,
             "vae: %s", lf_last_error());
    if (u && us) {
        const lf_unet_arch *a = lf_unet_get_arch(u), *b = lf_unet_get_arch(us);
        LF_CHECK(a->n_params == b->n_params && a->n_tensors == b->n_tensors && a->n_levels == b->n_levels &&
                     a->model_channels == b->model_channels && a->context_dim == b->context_dim &&
                     !memcmp(a->level_channels, b->level_channels, sizeof a->level_channels) &&
                     !memcmp(a->depth_in, b->depth_in, sizeof a->depth_in),
                 "unet arch: %lld vs %lld values", (long long)a->n_params, (long long)b->n_params);
    }
    if (v && vs) {
        const lf_vae_arch *a = lf_vae_get_arch(v), *b = lf_vae_get_arch(vs);
        LF_CHECK(a->n_params == b->n_params && a->n_levels == b->n_levels && a->factor == b->factor &&
                     !memcmp(a->level_channels, b->level_channels, sizeof a->level_channels),
                 "vae arch: %lld vs %lld values", (long long)a->n_params, (long long)b->n_params);
    }
    lf_unet_free(u);
    lf_unet_free(us);
    lf_vae_free(v);
    lf_vae_free(vs);
}

static long lf_maxrss_kb(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_maxrss;
}

/* In a child: load, run one forward, exit 0 when the peak growth fits the estimate (printed). */
static int lf_measure(int which) {
    lf_st_file *f = NULL;
    if (lf_st_open(MINI, &f) != LF_OK) return 2;
    lf_unet_opts uo = {0};
    uo.num_heads = 8;
    int64_t N = which ? 1 : 2, H = which ? 96 : 64, W = H, L = 77, C = 4;
    float *x = calloc((size_t)(N * C * H * W), sizeof *x), *t = calloc((size_t)N, sizeof *t);
    float *ctx = calloc((size_t)(N * L * 32), sizeof *ctx), *out = calloc((size_t)(N * 3 * 64 * H * W), sizeof *out);
    for (int64_t i = 0; x && i < N * C * H * W; i++) x[i] = (float)(i % 7 - 3) * 0.1f;
    uint64_t est = 0;
    long before = 0, after = 0;
    lf_status st;
    if (which == 0) {
        lf_unet *u = NULL, *us = NULL;
        st = lf_unet_load(f, &uo, &u);
        if (!st) st = lf_unet_load_shapes(f, &uo, &us);
        if (!st) {
            est = lf_unet_forward_peak(us, N, H, W, L);
            before = lf_maxrss_kb();
            st = lf_unet_forward(u, out, x, t, ctx, L, NULL, N, H, W);
            after = lf_maxrss_kb();
        }
        lf_unet_free(u);
        lf_unet_free(us);
    } else {
        lf_vae *v = NULL, *vs = NULL;
        st = lf_vae_load(f, LF_FAMILY_SD1, NULL, &v);
        if (!st) st = lf_vae_load_shapes(f, LF_FAMILY_SD1, &vs);
        if (!st) {
            est = lf_vae_decode_peak(vs, N, H, W);
            before = lf_maxrss_kb();
            st = lf_vae_decode(v, out, x, N, H, W);
            after = lf_maxrss_kb();
        }
        lf_vae_free(v);
        lf_vae_free(vs);
    }
    lf_st_close(f);
    if (st) {
        fprintf(stderr, "%s\n", lf_last_error());
        return 2;
    }
    double grew = (double)(after - before) * 1024, e = (double)est, slack = 64.0 * 1024 * 1024;
    printf("  %s: estimate %.1f MiB, peak grew %.1f MiB\n", which ? "VAE decode 96x96" : "UNet 2x64x64",
           e / 1048576, grew / 1048576);
    fflush(stdout);
    return grew >= e - 1048576 && grew <= 1.25 * e + slack ? 0 : 1;
}

static void test_peaks(void) {
#ifdef LF_TEST_SANITIZED
    printf("  skipped: the sanitizer's allocator keeps freed memory (quarantine)\n");
    if (0) lf_measure(0);
#else
    for (int which = 0; which < 2; which++) {
        fflush(stdout);
        pid_t p = fork();
        if (p == 0) _exit(lf_measure(which));
        int status = 0;
        LF_CHECK(p > 0 && waitpid(p, &status, 0) == p && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                 "%s: the measured peak does not match the estimate (status %d)", which ? "vae" : "unet", status);
    }
#endif
}

static void test_checks(void) {
    float x[9000];
    for (int i = 0; i < 9000; i++) x[i] = (float)i * 0.5f - 100.0f;
    LF_CHECK(lf_wts_first_nonfinite(x, 9000) == 9000, "all finite");
    LF_CHECK(lf_wts_first_nonfinite(x, 0) == 0, "empty");
    static const int at[] = {0, 1, 4095, 4096, 4097, 8191, 8999};
    for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
        float keep = x[at[k]];
        x[at[k]] = k % 2 ? NAN : -INFINITY;
        LF_CHECK(lf_wts_first_nonfinite(x, 9000) == at[k], "non-finite at %d", at[k]);
        x[at[k] + (at[k] < 8999)] = INFINITY; /* a later one does not hide it */
        LF_CHECK(lf_wts_first_nonfinite(x, 9000) == at[k], "first of two at %d", at[k]);
        x[at[k]] = keep;
        x[at[k] + (at[k] < 8999)] = (float)(at[k] + (at[k] < 8999)) * 0.5f - 100.0f;
    }
    LF_CHECK(lf_wts_check_finite("f", "t", x, 9000) == LF_OK, "finite passes");
    x[17] = NAN;
    LF_CHECK(lf_wts_check_finite("f", "t", x, 9000) == LF_ERR_NONFINITE &&
                 strstr(lf_last_error(), "f: tensor \"t\" holds a non-finite value (NaN at element 17 of 9000)"),
             "message: %s", lf_last_error());
    static const lf_dtype ok[] = {LF_F16, LF_BF16, LF_F32, LF_F64, LF_F8_E4M3, LF_F8_E5M2};
    static const lf_dtype bad[] = {LF_BOOL, LF_U8, LF_I8, LF_I16, LF_U16, LF_I32, LF_U32, LF_I64, LF_U64, LF_F8_E8M0, LF_F4};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        LF_CHECK(lf_wts_check_dtype("f", "t", ok[i]) == LF_OK, "%s accepted", lf_dtype_name(ok[i]));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        LF_CHECK(lf_wts_check_dtype("f", "t", bad[i]) == LF_ERR_DTYPE && strstr(lf_last_error(), lf_dtype_name(bad[i])),
                 "%s refused: %s", lf_dtype_name(bad[i]), lf_last_error());
}

int main(void) {
    lf_st_file *f = NULL;
    if (lf_st_open(MINI, &f) != LF_OK) LF_SKIP(MINI " missing");
    printf("shapes-only arch\n");
    test_arch(f);
    lf_st_close(f);
    printf("peaks against the runtime\n");
    test_peaks();
    printf("weight checks\n");
    test_checks();
    return lf_test_finish();
}
