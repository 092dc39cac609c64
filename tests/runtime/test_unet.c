/* test_unet.c: the UNet forward (lorafuse/lf_unet.h) against diffusers on the tiny SD1.5 and SDXL
 * checkpoints and the trained demo model, plus loader errors.
 *
 * Goldens: tests/data/model/{sd15,sdxl}_unet{,_odd}.safetensors from scripts/golden/model_unet.py
 * (_odd: latents 10x6 / 6x10, not multiples of 2^downsamplers); demo_unet.safetensors: the demo model on
 * a structured input (a training image's latent noised to t = 999 / 250, a caption's and the empty prompt's
 * CLIP context)
 * (diffusers 0.30.3 UNet2DConditionModel, f32, on the F16 weights of the same checkpoint files).
 * Stages compared with relative L2 <= 1e-4: time embedding (+ SDXL y vector and label embedding),
 * middle-block output, UNet output. Errors: missing tensor, wrong shape, heads rule, no UNet; each
 * message must name the key. Also: an F32 copy of the checkpoint gives the same output bit for bit.
 * Run: ctest --test-dir build -R unet
 */
#include <stdint.h>
#include <unistd.h>

#include "lf_test.h"
#include "lf_test_data.h"
#include "lorafuse/lf_safetensors.h"
#include "lorafuse/lf_unet.h"

#define SD15 "tests/data/tiny/tiny-sd15.safetensors"
#define SDXL "tests/data/tiny/tiny-sdxl.safetensors"
#define DEMO "models/demo/shapes-sd1.safetensors"
#define TOL 1e-4

static int report(const char *what, const float *got, const float *ref, int64_t n) {
    double e = lf_test_rel_l2(got, ref, n);
    printf("  %-24s rel L2 %.3g\n", what, e);
    LF_CHECK(e <= TOL, "%s: rel L2 %g > %g", what, e, TOL);
    return e <= TOL;
}

static void run_case(const char *name, const char *ckpt, const char *golden, const lf_unet_opts *o,
                     int xl) {
    printf("%s:\n", name);
    lf_st_file *cf = NULL, *gf = NULL;
    LF_CHECK(lf_st_open(ckpt, &cf) == LF_OK, "open %s: %s", ckpt, lf_last_error());
    LF_CHECK(lf_st_open(golden, &gf) == LF_OK, "open %s: %s", golden, lf_last_error());
    if (!cf || !gf) return;
    lf_unet *u = NULL;
    lf_status st = lf_unet_load(cf, o, &u);
    LF_CHECK(st == LF_OK, "load %s: %s", ckpt, lf_last_error());
    if (!u) return;
    lf_st_close(cf); /* the model owns f32 copies */
    const lf_unet_arch *a = lf_unet_get_arch(u);
    int64_t nx, nctx, nout, nmid, nemb;
    float *x = lf_test_tensor_f32(gf, "x", &nx), *t = lf_test_tensor_f32(gf, "t", NULL), *ctx = lf_test_tensor_f32(gf, "context", &nctx);
    float *ref_out = lf_test_tensor_f32(gf, "out", &nout), *ref_mid = lf_test_tensor_f32(gf, "mid", &nmid), *ref_emb = lf_test_tensor_f32(gf, "emb", &nemb);
    const lf_st_tensor *xt = lf_st_find(gf, "x");
    int64_t N = xt->shape[0], H = xt->shape[2], W = xt->shape[3], L = nctx / (N * a->context_dim);
    float *y = NULL;
    if (xl) {
        int64_t ny, nte;
        float *ref_y = lf_test_tensor_f32(gf, "y", &ny), *te = lf_test_tensor_f32(gf, "text_embeds", &nte), *ids = lf_test_tensor_f32(gf, "time_ids", NULL);
        y = malloc((size_t)ny * sizeof(float));
        LF_CHECK(lf_unet_sdxl_y(u, y, te, nte / N, ids, 6, N) == LF_OK, "sdxl_y: %s", lf_last_error());
        report("y (pooled + time ids)", y, ref_y, ny);
        free(ref_y), free(te), free(ids);
    }
    float *emb = malloc((size_t)nemb * sizeof(float)), *out = malloc((size_t)nout * sizeof(float));
    float *mid = malloc((size_t)nmid * sizeof(float));
    LF_CHECK(lf_unet_time_embed(u, emb, t, y, N) == LF_OK, "time_embed: %s", lf_last_error());
    report("time embedding", emb, ref_emb, nemb);
    st = lf_unet_forward_mid(u, out, mid, x, t, ctx, L, y, N, H, W);
    LF_CHECK(st == LF_OK, "forward: %s", lf_last_error());
    report("middle block", mid, ref_mid, nmid);
    report("unet output", out, ref_out, nout);
    free(x), free(t), free(ctx), free(ref_out), free(ref_mid), free(ref_emb), free(y), free(emb);
    free(out), free(mid);
    lf_unet_free(u);
    lf_st_close(gf);
}

static void check_arch(void) {
    lf_st_file *f = NULL;
    if (lf_st_open(SD15, &f) != LF_OK) return;
    lf_unet_opts o = {NULL, 4, 0, 4};
    lf_unet *u = NULL;
    LF_CHECK(lf_unet_load(f, &o, &u) == LF_OK, "%s", lf_last_error());
    if (u) {
        const lf_unet_arch *a = lf_unet_get_arch(u);
        LF_CHECK(a->n_levels == 4 && a->level_channels[0] == 16 && a->level_channels[1] == 16 &&
                     a->level_channels[2] == 32 && a->level_channels[3] == 32,
                 "sd15 levels %d channels %lld %lld %lld %lld", a->n_levels, (long long)a->level_channels[0],
                 (long long)a->level_channels[1], (long long)a->level_channels[2],
                 (long long)a->level_channels[3]);
        LF_CHECK(a->res_per_level == 2 && a->n_input_blocks == 12 && a->n_output_blocks == 12 &&
                     a->context_dim == 32 && a->time_embed_dim == 64 && a->adm_in_channels == 0 &&
                     !a->linear_proj && a->depth_in[1] == 1 && a->depth_in[10] == 0 && a->depth_mid == 1,
                 "sd15 arch");
        lf_unet_free(u);
    }
    /* default heads rule (context 32 -> head width 64) does not fit 16 channels: an error, no guess */
    u = NULL;
    lf_status st = lf_unet_load(f, NULL, &u);
    LF_CHECK(st == LF_ERR_MODEL && u == NULL && strstr(lf_last_error(), "input_blocks.1.1") &&
                 strstr(lf_last_error(), "head_dim"),
             "heads rule error: %s", lf_last_error());
    lf_st_close(f);
    if (lf_st_open(SDXL, &f) != LF_OK) return;
    lf_unet_opts ox = {NULL, 0, 8, 4};
    LF_CHECK(lf_unet_load(f, &ox, &u) == LF_OK, "%s", lf_last_error());
    if (u) {
        const lf_unet_arch *a = lf_unet_get_arch(u);
        LF_CHECK(a->n_levels == 3 && a->level_channels[0] == 16 && a->level_channels[2] == 32 &&
                     a->linear_proj && a->context_dim == 64 && a->adm_in_channels == 80 &&
                     a->depth_in[1] == 0 && a->depth_in[4] == 2 && a->depth_in[7] == 3 &&
                     a->depth_mid == 3 && a->depth_out[0] == 3 && a->depth_out[8] == 0,
                 "sdxl arch: levels %d linear %d ctx %lld adm %lld depth_in %d %d %d mid %d",
                 a->n_levels, a->linear_proj, (long long)a->context_dim, (long long)a->adm_in_channels,
                 a->depth_in[1], a->depth_in[4], a->depth_in[7], a->depth_mid);
        lf_unet_free(u);
    }
    lf_st_close(f);
}

/* The UNet tensors of src at path, without `drop`, with `reshape` given shape (a/2, 2b, ...), and
 * stored as `dt` (the source dtypes when dt is LF_DTYPE_INVALID). */
static int write_variant(const char *src, const char *path, const char *drop, const char *reshape,
                         lf_dtype dt) {
    lf_test_st_edit e = {.prefix = "model.diffusion_model.", .drop = drop, .reshape = reshape, .dtype = dt};
    return lf_test_st_copy(src, path, &e);
}

static lf_status load_path(const char *path, const lf_unet_opts *o, lf_unet **u) {
    lf_st_file *f = NULL;
    lf_status st = lf_st_open(path, &f);
    if (st != LF_OK) return st;
    st = lf_unet_load(f, o, u);
    lf_st_close(f);
    return st;
}

static void check_errors(void) {
    char dir[256];
    if (lf_test_tmpdir(dir, sizeof dir, "test_unet")) return;
    char path[512];
    snprintf(path, sizeof path, "%s/v.safetensors", dir);
    lf_unet_opts o = {NULL, 4, 0, 4};
    lf_unet *u = NULL;

    const char *miss = "model.diffusion_model.output_blocks.4.1.transformer_blocks.0.attn2.to_v.weight";
    LF_CHECK(write_variant(SD15, path, miss, NULL, LF_DTYPE_INVALID), "write variant");
    lf_status st = load_path(path, &o, &u);
    LF_CHECK(st == LF_ERR_MODEL && !u && strstr(lf_last_error(), miss) && strstr(lf_last_error(), "missing"),
             "missing tensor: %d %s", (int)st, lf_last_error());

    const char *bad = "model.diffusion_model.input_blocks.4.0.in_layers.2.weight";
    LF_CHECK(write_variant(SD15, path, NULL, bad, LF_DTYPE_INVALID), "write variant");
    st = load_path(path, &o, &u);
    LF_CHECK(st == LF_ERR_SHAPE && !u && strstr(lf_last_error(), bad) && strstr(lf_last_error(), "(8, 32, 3, 3)"),
             "wrong shape: %d %s", (int)st, lf_last_error());

    const char *cross = "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight";
    LF_CHECK(write_variant(SD15, path, NULL, cross, LF_DTYPE_INVALID), "write variant");
    st = load_path(path, &o, &u);
    LF_CHECK(st == LF_ERR_SHAPE && !u && strstr(lf_last_error(), cross), "wrong context width: %s",
             lf_last_error());

    /* F32 copy: same output bit for bit (f16 -> f32 is exact) */
    LF_CHECK(write_variant(SD15, path, NULL, NULL, LF_F32), "write f32 variant");
    lf_unet *u32 = NULL, *u16 = NULL;
    LF_CHECK(load_path(path, &o, &u32) == LF_OK, "f32 load: %s", lf_last_error());
    LF_CHECK(load_path(SD15, &o, &u16) == LF_OK, "f16 load: %s", lf_last_error());
    if (u32 && u16) {
        int64_t N = 1, H = 8, W = 8, L = 5, n = N * 4 * H * W;
        float x[256], t[1] = {500.0f}, ctx[160], o1[256], o2[256];
        for (int i = 0; i < 256; i++) x[i] = sinf((float)i);
        for (int i = 0; i < 160; i++) ctx[i] = cosf((float)i * 0.3f);
        LF_CHECK(lf_unet_forward(u32, o1, x, t, ctx, L, NULL, N, H, W) == LF_OK, "%s", lf_last_error());
        LF_CHECK(lf_unet_forward(u16, o2, x, t, ctx, L, NULL, N, H, W) == LF_OK, "%s", lf_last_error());
        LF_CHECK(memcmp(o1, o2, (size_t)n * sizeof(float)) == 0, "f32 and f16 checkpoints differ");
        /* any positive size runs (12x4: not a multiple of 2^3; the goldens check the values) */
        LF_CHECK(lf_unet_forward(u16, o2, x, t, ctx, L, NULL, N, 12, 4) == LF_OK, "12x4 latent: %s", lf_last_error());
        LF_CHECK(lf_unet_forward(u16, o2, x, t, ctx, L, NULL, N, 0, 4) == LF_ERR_SHAPE &&
                     strstr(lf_last_error(), "positive"),
                 "empty latent: %s", lf_last_error());
    }
    lf_unet_free(u32);
    lf_unet_free(u16);

    /* a file without a UNet */
    st = load_path("tests/data/model/sd15_vae.safetensors", &o, &u);
    LF_CHECK(st == LF_ERR_MODEL && strstr(lf_last_error(), "input_blocks.0.0.weight"), "no unet: %s",
             lf_last_error());
    /* SDXL model without y */
    lf_unet_opts ox = {NULL, 0, 8, 4};
    if (load_path(SDXL, &ox, &u) == LF_OK) {
        float emb[64], t[1] = {1.0f};
        LF_CHECK(lf_unet_time_embed(u, emb, t, NULL, 1) == LF_ERR_ARG, "sdxl without y");
        lf_unet_free(u);
    }
    lf_test_rmtree(dir);
}

int main(void) {
    if (access(SD15, R_OK) != 0 || access("tests/data/model/sd15_unet.safetensors", R_OK) != 0)
        LF_SKIP("tiny models or goldens missing (run from the source tree)");
    lf_unet_opts o15 = {NULL, 4, 0, 4}; /* diffusers attention_head_dim=4 on SD1.5 = 4 heads */
    lf_unet_opts oxl = {NULL, 0, 8, 4}; /* heads (2, 4, 4) on (16, 32, 32) = head width 8 */
    run_case("tiny SD1.5", SD15, "tests/data/model/sd15_unet.safetensors", &o15, 0);
    run_case("tiny SDXL", SDXL, "tests/data/model/sdxl_unet.safetensors", &oxl, 1);
    /* latents not divisible by 2^downsamplers: upsamplers resize to the skip connections' sizes */
    run_case("tiny SD1.5, latent 10x6", SD15, "tests/data/model/sd15_unet_odd.safetensors", &o15, 0);
    run_case("tiny SDXL, latent 6x10", SDXL, "tests/data/model/sdxl_unet_odd.safetensors", &oxl, 1);
    lf_unet_opts odemo = {NULL, 8, 0, 32}; /* attention_head_dim=8: 8 heads of width 4; GroupNorm(32) */
    run_case("trained demo model", DEMO, "tests/data/model/demo_unet.safetensors", &odemo, 0);
    check_arch();
    check_errors();
    return lf_test_finish();
}
