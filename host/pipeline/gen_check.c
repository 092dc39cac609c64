/* gen_check.c: every check lf_gen_open makes before any work, in the order its errors are reported:
 * plain option values, the prompt's tags, the checkpoint's parts (UNet, VAE, text encoders with a full
 * CLIP vocabulary), the image size (the checkpoint's default when not given), the adapters against the
 * model and the steps, then the tokenizer, the memory estimate, the output directory (it exists and is
 * writable, or can be created) and the file hashes of the parameters (cached). A bad request therefore
 * fails here, before a weight is loaded or a file written.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "generate_internal.h"
#include "host/base/text.h"
#include "host/base/util.h"

/* Tokens of the CLIP BPE vocabulary that lf_tokenizer_load_default encodes with. */
#define LF_GEN_VOCAB 49408

/* UNet prefix ("model.diffusion_model." or "" for a UNet-only file) and its levels; -1 if no UNet. */
static int lf_unet_levels(const lf_st_file *st) {
    const char *pfx = lf_st_find(st, "model.diffusion_model.input_blocks.0.0.weight") ? "model.diffusion_model."
                      : lf_st_find(st, "input_blocks.0.0.weight")                    ? ""
                                                                                     : NULL;
    if (!pfx) return -1;
    int down = 0;
    size_t n = lf_st_count(st), pl = strlen(pfx);
    for (size_t i = 0; i < n; i++) {
        const char *k = lf_st_at(st, i)->name;
        if (lf_has_prefix(k, pfx) && lf_has_prefix(k + pl, "input_blocks.") && lf_has_suffix(k, ".0.op.weight")) down++;
    }
    return down + 1;
}

static int64_t lf_te_vocab(const lf_st_file *st, const char *prefix) {
    static const char *const sfx[] = {"text_model.embeddings.token_embedding.weight", "embeddings.token_embedding.weight",
                                      "token_embedding.weight"};
    char name[256];
    for (size_t i = 0; i < sizeof sfx / sizeof *sfx; i++) {
        snprintf(name, sizeof name, "%s%s", prefix, sfx[i]);
        const lf_st_tensor *t = lf_st_find(st, name);
        if (t && t->ndim == 2) return t->shape[0];
    }
    return -1;
}

/* A side of an image: any multiple of 8 from 8 to LF_GEN_MAX_SIZE (the UNet takes every latent size:
 * its upsamplers go back to the skip connections' sizes, as diffusers' upsample_size). */
static int lf_gen_side_ok(long v) { return v >= 8 && v <= LF_GEN_MAX_SIZE && v % 8 == 0; }

/* "WxH" with W, H multiples of 8 in [8, LF_GEN_MAX_SIZE], nothing else (strtol: no overflow). */
static int lf_gen_parse_size(const char *s, int *w, int *h) {
    long v[2];
    const char *p = s;
    for (int i = 0; i < 2; i++) {
        if (*p < '0' || *p > '9') return 0;
        char *end;
        errno = 0;
        v[i] = strtol(p, &end, 10);
        if (errno || !lf_gen_side_ok(v[i])) return 0;
        p = end;
        if (i == 0 && *p++ != 'x') return 0;
    }
    if (*p) return 0;
    *w = (int)v[0];
    *h = (int)v[1];
    return 1;
}

/* The checkpoint's default size: metadata lorafuse.default_size, else 512 (SD1/SD2) or 1024 (SDXL). An
 * invalid value is not an error but a warning naming the file and the value, and the family default is
 * used: a checkpoint's metadata is advisory (A1111 and SD.Next never refuse a checkpoint over it, and
 * their size is the user's setting, 512 or 1024 by default), and --width/--height bypass it. */
static void lf_gen_default_size(lf_gen *g, int *w, int *h) {
    int d = g->m->family == LF_FAMILY_SDXL ? 1024 : 512;
    *w = d;
    *h = d;
    const char *s = lf_st_meta(g->m->st, "lorafuse.default_size");
    if (!s || lf_gen_parse_size(s, w, h)) return;
    char shown[48];
    lf_esc(shown, sizeof shown, s, strlen(s));
    lf_msgs_add(&g->warnings, "%s: metadata lorafuse.default_size \"%s\" is not WxH with multiples of 8 from 8 to "
                "%d; using %dx%d (give --width and --height to choose)", g->o.model, shown, LF_GEN_MAX_SIZE, d, d);
}

/* Defaults for the options left 0 / NULL, then the values that need no file. */
static lf_status lf_gen_check_opts(lf_gen *g) {
    lf_gen_opts *o = &g->o;
    if (!o->negative) o->negative = "";
    if (!o->steps) o->steps = LF_GEN_DEFAULT_STEPS;
    if (!o->sampler) o->sampler = LF_GEN_DEFAULT_SAMPLER;
    if (!o->batch_size) o->batch_size = 1;
    if (!o->batch_count) o->batch_count = 1;
    if (!o->output_dir) o->output_dir = LF_GEN_DEFAULT_OUTDIR;
    if (o->steps < 1 || o->steps > LF_STEPS_MAX)
        return lf_err(LF_ERR_ARG, "steps must be 1 to %d (got %d)", LF_STEPS_MAX, o->steps);
    lf_status st = lf_sampler_config_from_name(o->sampler, &g->scfg);
    if (st != LF_OK) return st;
    snprintf(g->sampler_name, sizeof g->sampler_name, "%s", lf_sampler_config_name(&g->scfg));
    if (!isfinite(o->cfg) || o->cfg < 0 || o->cfg > 100)
        return lf_err(LF_ERR_ARG, "CFG scale must be 0 to 100 (got %g)", o->cfg);
    if (o->batch_size < 1 || o->batch_size > 64 || o->batch_count < 1 || o->batch_count > 10000)
        return lf_err(LF_ERR_ARG, "batch size must be 1 to 64 and batch count 1 to 10000 (got %d, %d)", o->batch_size,
                      o->batch_count);
    if ((o->width && !lf_gen_side_ok(o->width)) || (o->height && !lf_gen_side_ok(o->height)))
        return lf_err(LF_ERR_ARG, "size %dx%d: width and height must be multiples of 8, from 8 to %d", o->width,
                      o->height, LF_GEN_MAX_SIZE);
    if (o->clip_skip < 0 || o->clip_skip > 12)
        return lf_err(LF_ERR_ARG, "clip skip must be 1 to 12 (got %d)", o->clip_skip);
    /* seeds: -1 (random, drawn in [0, 2^32 - 3] as A1111's get_fixed_seed) or 0 .. INT64_MAX; image i gets
     * seed + i, which must stay in range: A1111 (Python ints) hands seed + i to torch's manual_seed, which
     * raises past 2^64 - 1; lorafuse keeps seeds in int64 and refuses before any work, never wraps */
    int64_t n_images = (int64_t)o->batch_size * o->batch_count;
    if (o->seed < -1)
        return lf_err(LF_ERR_ARG, "seed %lld: a seed is -1 (random) or 0 to %lld", (long long)o->seed,
                      (long long)INT64_MAX);
    if (o->seed > INT64_MAX - (n_images - 1))
        return lf_err(LF_ERR_ARG, "seed %lld with %lld images: image i gets seed + i, and the last would pass %lld "
                      "(the largest seed); use a seed at most %lld", (long long)o->seed, (long long)n_images,
                      (long long)INT64_MAX, (long long)(INT64_MAX - (n_images - 1)));
    if (o->write_png && !*o->output_dir)
        return lf_err(LF_ERR_ARG, "--output-dir is empty: give a directory (\".\" for the current one)");
    if (o->rng != LF_RNG_TORCH_CPU && o->rng != LF_RNG_NV)
        return lf_err(LF_ERR_ARG, "unknown random source %d", (int)o->rng);
    if (o->backend != LF_GEN_AUTO && o->backend != LF_GEN_CPU && o->backend != LF_GEN_CUDA)
        return lf_err(LF_ERR_ARG, "unknown backend %d", (int)o->backend);
    return LF_OK;
}

static lf_status lf_gen_check_model(lf_gen *g) {
    const lf_st_file *st = g->m->st;
    const char *path = g->o.model;
    g->unet_levels = lf_unet_levels(st);
    if (g->unet_levels < 0)
        return lf_err(LF_ERR_MODEL, "%s: no UNet (model.diffusion_model.input_blocks.*): generate needs a full "
                                    "single-file checkpoint (UNet, VAE, text encoder)", path);
    if (!g->o.vae && !lf_st_find(st, "first_stage_model.decoder.conv_in.weight"))
        return lf_err(LF_ERR_MODEL, "%s: no VAE (first_stage_model.decoder.*): give one with --vae (a VAE "
                                    ".safetensors file or a diffusers vae/ folder)", path);
    g->tef = lf_clip_detect(st, &g->te_p1, &g->te_p2);
    if (g->tef == LF_TE_NONE)
        return lf_err(LF_ERR_MODEL, "%s: no text encoder (cond_stage_model.* / conditioner.embedders.*): generate "
                                    "needs the checkpoint's CLIP text encoder(s)", path);
    const char *pf[2] = {g->te_p1, g->tef == LF_TE_SDXL ? g->te_p2 : NULL};
    for (int i = 0; i < 2; i++) {
        if (!pf[i]) continue;
        int64_t v = lf_te_vocab(st, pf[i]);
        if (v < 0)
            return lf_err(LF_ERR_MODEL, "%s: text encoder %s has no token embedding", path, pf[i]);
        if (v < LF_GEN_VOCAB)
            return lf_err(LF_ERR_MODEL, "%s: text encoder %s has a %lld-token vocabulary; the CLIP tokenizer needs "
                                        "%d (a test model with a reduced vocabulary cannot encode prompts)",
                          path, pf[i], (long long)v, LF_GEN_VOCAB);
    }
    return LF_OK;
}

/* The requested size, or the checkpoint's default for a side left 0. */
static lf_status lf_gen_check_size(lf_gen *g) {
    lf_gen_opts *o = &g->o;
    int w = o->width, h = o->height;
    if (!w || !h) {
        int dw, dh;
        lf_gen_default_size(g, &dw, &dh);
        if (!w) w = dw;
        if (!h) h = dh;
    }
    /* a side given was checked with the options, a default is valid by construction */
    o->width = w;
    o->height = h;
    return LF_OK;
}

/* The output folder can hold the images: an existing folder we may write into, or a missing one whose
 * parent is such a folder (lf_png_save_next creates one level, as A1111 creates its outdir). Checked
 * here so that a bad --output-dir fails before loading and sampling, not after. */
static lf_status lf_gen_check_output_dir(const char *dir) {
    struct stat sb;
    if (stat(dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) return lf_err(LF_ERR_ARG, "--output-dir %s exists and is not a directory", dir);
        if (access(dir, W_OK | X_OK) != 0)
            return lf_err(LF_ERR_IO, "--output-dir %s: cannot write into it: %s", dir, strerror(errno));
        return LF_OK;
    }
    if (errno != ENOENT) return lf_err(LF_ERR_IO, "--output-dir %s: %s", dir, strerror(errno));
    /* the parent: what precedes the last '/' not at the end ("a/b/" -> "a") */
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    while (n > 0 && dir[n - 1] != '/') n--;
    while (n > 1 && dir[n - 1] == '/') n--;
    char parent[4096];
    if (n == 0) snprintf(parent, sizeof parent, ".");
    else snprintf(parent, sizeof parent, "%.*s", (int)(n < sizeof parent ? n : sizeof parent - 1), dir);
    if (stat(parent, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return lf_err(LF_ERR_IO, "--output-dir %s cannot be created: %s %s", dir, parent,
                      stat(parent, &sb) != 0 ? "does not exist (one missing level is created, not more)"
                                             : "is not a directory");
    if (access(parent, W_OK | X_OK) != 0)
        return lf_err(LF_ERR_IO, "--output-dir %s cannot be created in %s: %s", dir, parent, strerror(errno));
    return LF_OK;
}

lf_status lf_gen_check(lf_gen *g) {
    lf_gen_opts *o = &g->o;
    lf_status st;
    /* 1. plain values */
    if ((st = lf_gen_check_opts(g)) != LF_OK) return st;
    /* 2. tags */
    lf_tag_dialect dialect = LF_DIALECT_LORAFUSE;
    if (o->tag_dialect && (st = lf_tag_dialect_parse(o->tag_dialect, &dialect)) != LF_OK) return st;
    if ((st = lf_prompt_parse_dialect(o->prompt, dialect, &g->pr)) != LF_OK) return st;
    /* 3. model parts, size */
    if (!g->m && (st = lf_model_open(o->model, &g->m)) != LF_OK) return st;
    if ((st = lf_gen_check_model(g)) != LF_OK) return st;
    if ((st = lf_gen_check_vae(g)) != LF_OK) return st;
    if ((st = lf_gen_check_size(g)) != LF_OK) return st;
    /* 4. adapters: names, files, family, shapes, schedule vs steps (P9) */
    lf_step_opts so;
    memset(&so, 0, sizeof so);
    so.lora_dir = o->lora_dir;
    so.lora_dir_confine = o->lora_dir_confine;
    so.lbw_presets = o->lbw_presets;
    so.source = o->adapters;
    if ((st = lf_step_plan_build(g->m, g->pr, o->steps, &so, &g->sp)) != LF_OK) return st;
    for (size_t i = 0; i < g->sp->warnings.n; i++) lf_msgs_add(&g->warnings, "%s", g->sp->warnings.v[i]);
    if ((st = lf_gen_prompts(g)) != LF_OK) return st;
    /* 5. tokenizer, memory, output directory */
    if (!g->tok && (st = lf_tokenizer_load_default(&g->tok)) != LF_OK) return st;
    if ((st = lf_gen_embeddings(g)) != LF_OK) return st;
    if ((st = lf_gen_check_memory(g)) != LF_OK) return st;
    if (o->write_png && (st = lf_gen_check_output_dir(o->output_dir)) != LF_OK) return st;
    /* 6. file hashes for the parameters (cached: a file is hashed once per version) */
    if ((st = lf_gen_model_name(g)) != LF_OK) return st;
    return lf_gen_hashes(g);
}
