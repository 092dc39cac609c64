/* test_batch_invariance.c: a sample's bytes do not depend on its batch. One UNet forward of a batch of 3
 * (different latents, timesteps, contexts and, for SDXL, y vectors) gives each sample exactly the bytes
 * of that sample's forward alone, on the tiny SD1.5 and SDXL checkpoints (latents 8x8 and 10x6, a
 * 77-token context) and on the trained demo model (GroupNorm(32), 64x64 latent: its convolutions and
 * attention projections are cut into several blocks); the same for one VAE decode of 3 latents. Per-image
 * results independent of the batch are what mixed batches (images with different adapters in one call)
 * rest on. Operator level: tests/kernels/test_nn_batch.c.
 * Run: ctest --test-dir build -R batch_invariance
 */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "lf_test.h"
#include "lf_test_data.h"
#include "lorafuse/lf_safetensors.h"
#include "lorafuse/lf_unet.h"
#include "lorafuse/lf_vae.h"

#define SD15 "tests/data/tiny/tiny-sd15.safetensors"
#define SDXL "tests/data/tiny/tiny-sdxl.safetensors"
#define DEMO "models/demo/shapes-sd1.safetensors"
#define NB 3

static lf_test_rng rng = {LF_TEST_RNG_SEED};
static float *rnd(int64_t n) {
    float *p = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = lf_test_rng_signed(&rng);
    return p;
}

/* Sample n of a batch (per floats each) against the same sample computed alone. */
static void same(const char *name, const char *what, const float *batch, const float *alone, int64_t per, int n) {
    LF_CHECK(memcmp(batch + n * per, alone, (size_t)per * sizeof(float)) == 0,
             "%s: %s of sample %d in a batch of %d differs from it alone (rel L2 %.3g)", name, what, n, NB,
             lf_test_rel_l2(alone, batch + n * per, per));
}

static void unet_case(const char *name, const char *path, const lf_unet_opts *o, int64_t H, int64_t W) {
    lf_st_file *f = NULL;
    lf_unet *u = NULL;
    LF_CHECK(lf_st_open(path, &f) == LF_OK && lf_unet_load(f, o, &u) == LF_OK, "%s: %s", name, lf_last_error());
    lf_st_close(f);
    if (!u) return;
    const lf_unet_arch *a = lf_unet_get_arch(u);
    int64_t L = 77, px = a->in_channels * H * W, po = a->out_channels * H * W, pc = L * a->context_dim,
            py = a->adm_in_channels;
    float *x = rnd(NB * px), *ctx = rnd(NB * pc), *y = py ? rnd(NB * py) : NULL, t[NB] = {999.0f, 501.0f, 1.0f};
    float *out = malloc((size_t)(NB * po) * sizeof(float)), *one = malloc((size_t)po * sizeof(float));
    LF_CHECK(lf_unet_forward(u, out, x, t, ctx, L, y, NB, H, W) == LF_OK, "%s: %s", name, lf_last_error());
    for (int n = 0; n < NB; n++) {
        LF_CHECK(lf_unet_forward(u, one, x + n * px, t + n, ctx + n * pc, L, y ? y + n * py : NULL, 1, H, W) ==
                     LF_OK, "%s: %s", name, lf_last_error());
        same(name, "UNet output", out, one, po, n);
    }
    printf("%s: UNet batch of %d against each sample alone checked\n", name, NB);
    free(x), free(ctx), free(y), free(out), free(one);
    lf_unet_free(u);
}

static void vae_case(const char *name, const char *path, lf_family fam, int groups, int64_t h, int64_t w) {
    lf_st_file *f = NULL;
    lf_vae *v = NULL;
    lf_vae_opts o = {NULL, groups, 0.0f, 0};
    LF_CHECK(lf_st_open(path, &f) == LF_OK && lf_vae_load(f, fam, &o, &v) == LF_OK, "%s: %s", name, lf_last_error());
    lf_st_close(f);
    if (!v) return;
    const lf_vae_arch *a = lf_vae_get_arch(v);
    int64_t pl = a->latent_channels * h * w, pi = a->image_channels * h * w * a->factor * a->factor;
    float *lat = rnd(NB * pl), *img = malloc((size_t)(NB * pi) * sizeof(float)), *one = malloc((size_t)pi * sizeof(float));
    LF_CHECK(lf_vae_decode(v, img, lat, NB, h, w) == LF_OK, "%s: %s", name, lf_last_error());
    for (int n = 0; n < NB; n++) {
        LF_CHECK(lf_vae_decode(v, one, lat + n * pl, 1, h, w) == LF_OK, "%s: %s", name, lf_last_error());
        same(name, "VAE decode", img, one, pi, n);
    }
    printf("%s: VAE decode of %d against each latent alone checked\n", name, NB);
    free(lat), free(img), free(one);
    lf_vae_free(v);
}

int main(void) {
    if (access(SD15, R_OK) != 0 || access(SDXL, R_OK) != 0) LF_SKIP("tiny models missing (run from the source tree)");
    lf_unet_opts o15 = {NULL, 4, 0, 4}, oxl = {NULL, 0, 8, 4}, odemo = {NULL, 8, 0, 32};
    unet_case("tiny SD1.5", SD15, &o15, 8, 8);
    unet_case("tiny SD1.5, latent 10x6", SD15, &o15, 10, 6);
    unet_case("tiny SDXL", SDXL, &oxl, 8, 8);
    vae_case("tiny SD1.5 VAE", SD15, LF_FAMILY_SD1, 4, 8, 8);
    if (access(DEMO, R_OK) == 0) {
        unet_case("demo model", DEMO, &odemo, 64, 64);
        vae_case("demo model VAE", DEMO, LF_FAMILY_SD1, 32, 16, 16);
    } else {
        printf("demo model missing: its cases skipped\n");
    }
    return lf_test_finish();
}
