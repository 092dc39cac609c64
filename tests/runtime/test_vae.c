/* test_vae.c: the AutoencoderKL decoder and encoder (lorafuse/lf_vae.h) against diffusers on the tiny
 * SD1.5 and SDXL checkpoints and the trained demo model, plus loader errors.
 *
 * Goldens: tests/data/model/{sd15,sdxl,demo}_vae.safetensors from scripts/golden/model_unet.py (demo: a
 * training image of the demo model and its latent instead of noise):
 * dec_out = vae.decode(dec_in / sf), enc_mean = sf * latent_dist.mean, enc_logvar; sf from the family
 * (SD1.x 0.18215, SDXL 0.13025). Bound: relative L2 <= 1e-4. Errors must name the key.
 * Tiled decode (lf_vae_decode_tiled): sd15_vae_tiled.safetensors from scripts/golden/vae_tiling.py,
 * diffusers' own AutoencoderKL.tiled_decode with 4-pixel latent tiles on a 10x7 latent (4 x 3 tiles,
 * smaller at the edges); the same bound, and a tile size not a multiple of 4 refused.
 * Run: ctest --test-dir build -R vae
 */
#include <stdint.h>
#include <unistd.h>

#include "lf_test.h"
#include "lf_test_data.h"
#include "lorafuse/lf_model.h"
#include "lorafuse/lf_vae.h"

#define TOL 1e-4

static float *get(const lf_st_file *f, const char *name, int64_t *n, const lf_st_tensor **tp) {
    if (tp) *tp = lf_st_find(f, name);
    return lf_test_tensor_f32(f, name, n);
}

static void report(const char *what, const float *got, const float *ref, int64_t n) {
    double e = lf_test_rel_l2(got, ref, n);
    printf("  %-24s rel L2 %.3g\n", what, e);
    LF_CHECK(e <= TOL, "%s: rel L2 %g > %g", what, e, TOL);
}

/* The architecture a checkpoint's VAE must have: GroupNorm groups, resnets per encoder level (the decoder has
 * one more), channels of the first and last level. */
typedef struct {
    int groups, enc_res;
    int64_t ch0, ch3;
} vae_want;

static void run_case(const char *name, const char *ckpt, const char *golden, lf_family want_family,
                     float want_sf, const vae_want *want) {
    printf("%s:\n", name);
    lf_model *m = NULL;
    lf_st_file *gf = NULL;
    LF_CHECK(lf_model_open(ckpt, &m) == LF_OK, "open %s: %s", ckpt, lf_last_error());
    LF_CHECK(lf_st_open(golden, &gf) == LF_OK, "open %s: %s", golden, lf_last_error());
    if (!m || !gf) return;
    LF_CHECK(m->family == want_family, "family %s", lf_family_name(m->family));
    lf_vae_opts o = {NULL, want->groups, 0.0f, 0}; /* sf from the family */
    lf_vae *v = NULL;
    LF_CHECK(lf_vae_load(m->st, m->family, &o, &v) == LF_OK, "load: %s", lf_last_error());
    lf_model_free(m);
    if (!v) return;
    const lf_vae_arch *a = lf_vae_get_arch(v);
    LF_CHECK(a->scaling_factor == want_sf && a->n_levels == 4 && a->factor == 8 && a->latent_channels == 4 &&
                 a->image_channels == 3 && a->has_encoder && a->dec_res_per_level == want->enc_res + 1 &&
                 a->enc_res_per_level == want->enc_res && a->level_channels[0] == want->ch0 &&
                 a->level_channels[3] == want->ch3,
             "arch: sf %g levels %d factor %lld z %lld", a->scaling_factor, a->n_levels, (long long)a->factor,
             (long long)a->latent_channels);
    const lf_st_tensor *tz, *ti;
    int64_t nz, nd, ni, nm;
    float *z = get(gf, "dec_in", &nz, &tz), *ref_dec = get(gf, "dec_out", &nd, NULL);
    float *img = get(gf, "enc_in", &ni, &ti), *ref_mean = get(gf, "enc_mean", &nm, NULL);
    float *ref_lv = get(gf, "enc_logvar", NULL, NULL);
    float *dec = malloc((size_t)nd * sizeof(float)), *mean = malloc((size_t)nm * sizeof(float));
    float *lv = malloc((size_t)nm * sizeof(float));
    LF_CHECK(lf_vae_decode(v, dec, z, tz->shape[0], tz->shape[2], tz->shape[3]) == LF_OK, "decode: %s",
             lf_last_error());
    report("decode", dec, ref_dec, nd);
    LF_CHECK(lf_vae_encode(v, mean, lv, img, ti->shape[0], ti->shape[2], ti->shape[3]) == LF_OK, "encode: %s",
             lf_last_error());
    report("encode mean (x sf)", mean, ref_mean, nm);
    report("encode logvar", lv, ref_lv, nm);
    LF_CHECK(lf_vae_encode(v, mean, NULL, img, 1, 60, 64) == LF_ERR_SHAPE, "encode 60x64 must fail");
    free(z), free(ref_dec), free(img), free(ref_mean), free(ref_lv), free(dec), free(mean), free(lv);
    lf_vae_free(v);
    lf_st_close(gf);
}

/* The VAE tensors of src at path without `drop` and with `reshape` given shape (a/2, 2b, ...). */
static int write_variant(const char *src, const char *path, const char *drop, const char *reshape) {
    lf_test_st_edit e = {.prefix = "first_stage_model.", .drop = drop, .reshape = reshape};
    return lf_test_st_copy(src, path, &e);
}

static lf_status load_path(const char *path, lf_family fam, lf_vae **v) {
    lf_st_file *f = NULL;
    lf_status st = lf_st_open(path, &f);
    if (st != LF_OK) return st;
    lf_vae_opts o = {NULL, 4, 0.0f, 0};
    st = lf_vae_load(f, fam, &o, v);
    lf_st_close(f);
    return st;
}

/* f32_weights (the VAE on a device compute): every weight held as f32, twice the f16 file's bytes, and the
 * same decode bytes as the stored-dtype load (f16 -> f32 is exact; the CPU operators convert anyway) */
static void check_f32_weights(const char *path) {
    lf_st_file *f = NULL;
    lf_vae *a = NULL, *b = NULL;
    lf_vae_opts o = {NULL, 4, 0.0f, 0}, o32 = {NULL, 4, 0.0f, 1};
    LF_CHECK(lf_st_open(path, &f) == LF_OK && lf_vae_load_mapped(f, LF_FAMILY_SD1, &o, &a) == LF_OK &&
                 lf_vae_load_mapped(f, LF_FAMILY_SD1, &o32, &b) == LF_OK,
             "load %s: %s", path, lf_last_error());
    if (a && b) {
        uint64_t wa = lf_vae_weight_bytes(a), wb = lf_vae_weight_bytes(b);
        LF_CHECK(wb > wa + wa / 2, "f32 weights: %llu bytes against %llu stored", (unsigned long long)wb,
                 (unsigned long long)wa);
        float z[4 * 3 * 5], da[3 * 24 * 40], db[3 * 24 * 40];
        for (int i = 0; i < 4 * 3 * 5; i++) z[i] = (float)((i * 7) % 11) / 5.0f - 1.0f;
        LF_CHECK(lf_vae_decode(a, da, z, 1, 3, 5) == LF_OK && lf_vae_decode(b, db, z, 1, 3, 5) == LF_OK &&
                     !memcmp(da, db, sizeof da),
                 "decode with f32 weights differs from the stored-dtype weights' (%s)", lf_last_error());
    }
    lf_vae_free(a);
    lf_vae_free(b);
    lf_st_close(f);
}

static void check_tiled(void) {
    lf_st_file *f = NULL, *gf = NULL;
    lf_vae *v = NULL;
    lf_vae_opts o = {NULL, 4, 0.0f, 0};
    LF_CHECK(lf_st_open("tests/data/tiny/tiny-sd15.safetensors", &f) == LF_OK &&
                 lf_st_open("tests/data/model/sd15_vae_tiled.safetensors", &gf) == LF_OK &&
                 lf_vae_load(f, LF_FAMILY_SD1, &o, &v) == LF_OK,
             "tiled: %s", lf_last_error());
    if (v && gf) {
        const lf_st_tensor *tz;
        int64_t nz, nd;
        float *z = get(gf, "dec_in", &nz, &tz), *ref = get(gf, "dec_out", &nd, NULL);
        float *img = malloc((size_t)nd * sizeof *img), *whole = malloc((size_t)nd * sizeof *whole);
        int64_t h = tz->shape[2], w = tz->shape[3];
        LF_CHECK(nd == 3 * 8 * h * 8 * w, "tiled golden: %lld values for a %lldx%lld latent", (long long)nd,
                 (long long)h, (long long)w);
        LF_CHECK(lf_vae_decode_tiled(v, img, z, h, w, 4) == LF_OK, "tiled decode: %s", lf_last_error());
        report("tiled decode (4x3 tiles)", img, ref, nd);
        /* the seams are blended, not the whole decode: tiling changes the picture (the oracle's too) */
        LF_CHECK(lf_vae_decode(v, whole, z, 1, h, w) == LF_OK && lf_test_rel_l2(whole, ref, nd) > 10 * TOL,
                 "a tiled decode equals the whole one: the tiles were not used");
        LF_CHECK(lf_vae_decode_tiled(v, img, z, h, w, 6) == LF_ERR_ARG && strstr(lf_last_error(), "multiple of 4"),
                 "tile 6: %s", lf_last_error());
        free(z), free(ref), free(img), free(whole);
    }
    lf_vae_free(v);
    lf_st_close(f);
    lf_st_close(gf);
}

static void check_errors(const char *src) {
    char dir[256];
    if (lf_test_tmpdir(dir, sizeof dir, "test_vae")) return;
    char path[512];
    snprintf(path, sizeof path, "%s/v.safetensors", dir);
    lf_vae *v = NULL;
    const char *miss = "first_stage_model.decoder.up.2.block.1.conv2.weight";
    LF_CHECK(write_variant(src, path, miss, NULL), "write");
    lf_status st = load_path(path, LF_FAMILY_SD1, &v);
    LF_CHECK(st == LF_ERR_MODEL && !v && strstr(lf_last_error(), miss), "missing: %s", lf_last_error());
    const char *bad = "first_stage_model.decoder.mid.attn_1.k.weight";
    LF_CHECK(write_variant(src, path, NULL, bad), "write");
    st = load_path(path, LF_FAMILY_SD1, &v);
    LF_CHECK(st == LF_ERR_SHAPE && !v && strstr(lf_last_error(), bad) && strstr(lf_last_error(), "(8, 32, 1, 1)"),
             "shape: %s", lf_last_error());
    const char *enc = "first_stage_model.encoder.down.1.downsample.conv.weight";
    LF_CHECK(write_variant(src, path, enc, NULL), "write");
    st = load_path(path, LF_FAMILY_SD1, &v);
    LF_CHECK(st == LF_ERR_MODEL && !v && strstr(lf_last_error(), enc), "encoder missing: %s", lf_last_error());
    st = load_path(src, LF_FAMILY_UNKNOWN, &v);
    LF_CHECK(st == LF_ERR_ARG && strstr(lf_last_error(), "scaling factor"), "unknown family: %s", lf_last_error());
    st = load_path("tests/data/model/sd15_unet.safetensors", LF_FAMILY_SD1, &v);
    LF_CHECK(st == LF_ERR_MODEL && strstr(lf_last_error(), "decoder.conv_in.weight"), "no vae: %s",
             lf_last_error());
    /* decoder only (no encoder keys): loads, encode is an error */
    lf_st_file *f = NULL;
    lf_st_writer *w = NULL;
    if (lf_st_open(src, &f) == LF_OK && lf_st_writer_new(&w) == LF_OK) {
        for (size_t i = 0; i < lf_st_count(f); i++) {
            const lf_st_tensor *t = lf_st_at(f, i);
            if (strncmp(t->name, "first_stage_model.", 18) || strstr(t->name, "encoder.") ||
                strstr(t->name, ".quant_conv"))
                continue;
            lf_st_writer_add(w, t->name + 18, t->dtype, t->ndim, t->shape, t->data, (size_t)(t->end - t->begin));
        }
        LF_CHECK(lf_st_writer_commit(w, path) == LF_OK, "write decoder-only");
        lf_st_writer_free(w);
        lf_st_close(f);
        st = load_path(path, LF_FAMILY_SDXL, &v); /* no prefix: a standalone VAE file */
        LF_CHECK(st == LF_OK && v && !lf_vae_get_arch(v)->has_encoder, "decoder-only load: %s", lf_last_error());
        if (v) {
            float img[3 * 64], lat[4];
            memset(img, 0, sizeof img);
            LF_CHECK(lf_vae_encode(v, lat, NULL, img, 1, 8, 8) == LF_ERR_MODEL, "encode without encoder");
            lf_vae_free(v);
        }
    }
    lf_test_rmtree(dir);
}

int main(void) {
    if (access("tests/data/tiny/tiny-sd15.safetensors", R_OK) != 0 ||
        access("tests/data/model/sd15_vae.safetensors", R_OK) != 0)
        LF_SKIP("tiny models or goldens missing (run from the source tree)");
    const vae_want tiny = {4, 2, 8, 16}, demo = {32, 1, 32, 32};
    run_case("tiny SD1.5 VAE", "tests/data/tiny/tiny-sd15.safetensors", "tests/data/model/sd15_vae.safetensors",
             LF_FAMILY_SD1, 0.18215f, &tiny);
    run_case("tiny SDXL VAE", "tests/data/tiny/tiny-sdxl.safetensors", "tests/data/model/sdxl_vae.safetensors",
             LF_FAMILY_SDXL, 0.13025f, &tiny);
    run_case("trained demo model VAE", "models/demo/shapes-sd1.safetensors", "tests/data/model/demo_vae.safetensors",
             LF_FAMILY_SD1, 0.18215f, &demo);
    check_errors("tests/data/tiny/tiny-sd15.safetensors");
    check_f32_weights("tests/data/tiny/tiny-sd15.safetensors");
    check_tiled();
    return lf_test_finish();
}
