/* generate.c: text-to-image with scheduled adapters (lf_generate.h; docs/generate.md).
 *
 * Weights during sampling: the step plan's CPU backend (lf_step_plan.h) recomputes the changed checkpoint
 * tensors from W0 before each step, and the loaded f32 models take exactly those tensors in place
 * (lf_live_weights.h lf_live_apply_step). Steps that change nothing cost nothing; a constant-strength
 * prompt patches once, before step 1. Text encoders re-run only at steps whose text-encoder set was
 * not encoded before (the conditioning is cached per set for the whole call).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "lorafuse/lf_clip.h"
#include "lorafuse/lf_config.h"
#include "lorafuse/lf_generate.h"
#include "lorafuse/lf_hash.h"
#include "lorafuse/lf_lora_dir.h"
#include "lorafuse/lf_png.h"
#include "lorafuse/lf_sampler.h"
#include "lorafuse/lf_step_plan.h"
#include "lorafuse/lf_prompt_tags.h"
#include "lorafuse/lf_tokenizer.h"
#include "lorafuse/lf_unet.h"
#include "lorafuse/lf_vae.h"
#include "lorafuse/lf_live_weights.h"

#define LF_GEN_VOCAB 49408

typedef struct {
    lf_text_cond cond, uncond; /* context (L, D) each, equal L after padding */
    int have;
} lf_gen_cond;

struct lf_gen {
    lf_gen_opts o;
    lf_gen_info info;
    lf_gen_times times;
    lf_sampler_config scfg;
    lf_model *m;
    lf_prompt *pr;
    lf_step_plan *sp;
    lf_tokenizer *tok;
    lf_te_family tef;
    const char *te_p1, *te_p2;
    int unet_levels;           /* resolution levels (downsamplers + 1) */
    char *prompt;              /* cleaned, trigger words appended */
    char *info_prompt;
    char *lora_hashes;
    char *model_name;
    char sampler_name[64];
    size_t n_jobs_total;
    lf_gen_progress_fn progress;
    void *progress_ctx;
    /* run state */
    lf_unet *unet;
    lf_vae *vae;
    lf_clip *te1, *te2;
    lf_cpu_backend *be;
    lf_gen_cond *cache;        /* per text-encoder set */
    size_t n_cache;
    size_t cur_set;
    /* per sampler run */
    int run_n;                 /* images in this run */
    int lat_h, lat_w;
    float *xin, *tin, *ctx, *y, *out2;
    size_t ctx_cap;
    double t0, run_t0;
    int run_idx, runs, first_image;
};

static double lf_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *lf_dup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

void lf_gen_opts_default(lf_gen_opts *o) {
    memset(o, 0, sizeof *o);
    o->cfg = LF_GEN_DEFAULT_CFG;
    o->seed = -1;
    o->batch_size = 1;
    o->batch_count = 1;
    o->rng = LF_RNG_TORCH_CPU;
    o->write_png = 1;
}

const lf_gen_info *lf_gen_get_info(const lf_gen *g) { return &g->info; }
const lf_gen_times *lf_gen_get_times(const lf_gen *g) { return &g->times; }

void lf_gen_set_progress(lf_gen *g, lf_gen_progress_fn fn, void *ctx) {
    g->progress = fn;
    g->progress_ctx = ctx;
}

static void lf_gen_cond_clear(lf_gen_cond *c) {
    lf_text_cond_free(&c->cond);
    lf_text_cond_free(&c->uncond);
    c->have = 0;
}

static void lf_gen_unload(lf_gen *g) {
    lf_unet_free(g->unet);
    lf_vae_free(g->vae);
    lf_clip_free(g->te1);
    lf_clip_free(g->te2);
    lf_cpu_backend_free(g->be);
    g->unet = NULL;
    g->vae = NULL;
    g->te1 = g->te2 = NULL;
    g->be = NULL;
    for (size_t i = 0; i < g->n_cache; i++) lf_gen_cond_clear(&g->cache[i]);
    free(g->cache);
    g->cache = NULL;
    g->n_cache = 0;
    free(g->xin);
    free(g->tin);
    free(g->ctx);
    free(g->y);
    free(g->out2);
    g->xin = g->tin = g->ctx = g->y = g->out2 = NULL;
    g->ctx_cap = 0;
}

void lf_gen_free(lf_gen *g) {
    if (!g) return;
    lf_gen_unload(g);
    lf_step_plan_free(g->sp);
    lf_prompt_free(g->pr);
    lf_tokenizer_free(g->tok);
    lf_model_free(g->m);
    free(g->prompt);
    free(g->info_prompt);
    free(g->lora_hashes);
    free(g->model_name);
    free(g);
}

/* ---- checks ----------------------------------------------------------------------------------- */
static int lf_has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static int lf_ends_with(const char *s, const char *e) {
    size_t n = strlen(s), k = strlen(e);
    return n >= k && !strcmp(s + n - k, e);
}

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
        if (lf_has_prefix(k, pfx) && lf_has_prefix(k + pl, "input_blocks.") && lf_ends_with(k, ".0.op.weight")) down++;
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

static lf_status lf_gen_default_size(const lf_gen *g, int *w, int *h) {
    const char *s = lf_st_meta(g->m->st, "lorafuse.default_size");
    if (s) {
        int a = 0, b = 0;
        char x = 0;
        if (sscanf(s, "%d%c%d", &a, &x, &b) == 3 && x == 'x' && a > 0 && b > 0) {
            *w = a;
            *h = b;
            return LF_OK;
        }
    }
    int d = g->m->family == LF_FAMILY_SDXL ? 1024 : 512;
    *w = d;
    *h = d;
    return LF_OK;
}

static lf_status lf_gen_check_model(lf_gen *g) {
    const lf_st_file *st = g->m->st;
    const char *path = g->o.model;
    g->unet_levels = lf_unet_levels(st);
    if (g->unet_levels < 0)
        return lf_err(LF_ERR_MODEL, "%s: no UNet (model.diffusion_model.input_blocks.*): generate needs a full "
                                    "single-file checkpoint (UNet, VAE, text encoder)", path);
    if (!lf_st_find(st, "first_stage_model.decoder.conv_in.weight"))
        return lf_err(LF_ERR_MODEL, "%s: no VAE (first_stage_model.decoder.*): a checkpoint without its VAE is not "
                                    "supported (no separate --vae yet)", path);
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

static const char *lf_basename(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* "name: hash, ..." over the distinct tag names of the adapters not dropped (A1111 Lora hashes). */
static lf_status lf_gen_lora_hashes(lf_gen *g) {
    size_t cap = 1;
    for (size_t i = 0; i < g->sp->n_adapters; i++) cap += strlen(g->sp->adapters[i].tag->name) + 20;
    char *s = calloc(cap, 1);
    if (!s) return lf_err(LF_ERR_NOMEM, "out of memory");
    size_t o = 0;
    for (size_t i = 0; i < g->sp->n_adapters; i++) {
        const lf_step_adapter *a = &g->sp->adapters[i];
        if (a->dropped) continue;
        int dup = 0;
        for (size_t k = 0; k < i; k++) dup |= !g->sp->adapters[k].dropped && !strcmp(g->sp->adapters[k].tag->name, a->tag->name);
        if (dup) continue;
        char h[13];
        lf_status st = lf_a1111_lora_hash(a->path, h);
        if (st) {
            free(s);
            return st;
        }
        if (o) o += (size_t)snprintf(s + o, cap - o, ", ");
        for (const char *c = a->tag->name; *c; c++)
            if (*c != ':' && *c != ',') s[o++] = *c;
        o += (size_t)snprintf(s + o, cap - o, ": %s", h);
    }
    g->lora_hashes = s;
    return LF_OK;
}

lf_status lf_gen_open(const lf_gen_opts *opts, lf_gen **out) {
    *out = NULL;
    if (!opts || !opts->model || !opts->prompt) return lf_err(LF_ERR_ARG, "generate: --model and --prompt are required");
    lf_gen *g = calloc(1, sizeof *g);
    if (!g) return lf_err(LF_ERR_NOMEM, "out of memory");
    g->o = *opts;
    lf_gen_opts *o = &g->o;
    lf_status st = LF_OK;
    if (!o->negative) o->negative = "";
    if (!o->steps) o->steps = LF_GEN_DEFAULT_STEPS;
    if (!o->sampler) o->sampler = LF_GEN_DEFAULT_SAMPLER;
    if (!o->batch_size) o->batch_size = 1;
    if (!o->batch_count) o->batch_count = 1;
    if (!o->output_dir) o->output_dir = LF_GEN_DEFAULT_OUTDIR;
    /* 1. plain values */
    if (o->steps < 1 || o->steps > 10000) {
        st = lf_err(LF_ERR_ARG, "steps must be 1 to 10000 (got %d)", o->steps);
        goto fail;
    }
    if ((st = lf_sampler_config_from_name(o->sampler, &g->scfg)) != LF_OK) goto fail;
    snprintf(g->sampler_name, sizeof g->sampler_name, "%s", lf_sampler_config_name(&g->scfg));
    if (!isfinite(o->cfg) || o->cfg < 0 || o->cfg > 100) {
        st = lf_err(LF_ERR_ARG, "CFG scale must be 0 to 100 (got %g)", o->cfg);
        goto fail;
    }
    if (o->batch_size < 1 || o->batch_size > 64 || o->batch_count < 1 || o->batch_count > 10000) {
        st = lf_err(LF_ERR_ARG, "batch size must be 1 to 64 and batch count 1 to 10000 (got %d, %d)", o->batch_size,
                    o->batch_count);
        goto fail;
    }
    if (o->width < 0 || o->height < 0 || o->width % 8 || o->height % 8 || o->width > LF_GEN_MAX_SIZE ||
        o->height > LF_GEN_MAX_SIZE) {
        st = lf_err(LF_ERR_ARG, "size %dx%d: width and height must be multiples of 8, from 8 to %d", o->width,
                    o->height, LF_GEN_MAX_SIZE);
        goto fail;
    }
    if (o->clip_skip < 0 || o->clip_skip > 12) {
        st = lf_err(LF_ERR_ARG, "clip skip must be 1 to 12 (got %d)", o->clip_skip);
        goto fail;
    }
    if (o->rng != LF_RNG_TORCH_CPU && o->rng != LF_RNG_NV) {
        st = lf_err(LF_ERR_ARG, "unknown random source %d", (int)o->rng);
        goto fail;
    }
    if (o->backend == LF_GEN_CUDA) {
        st = lf_err(LF_ERR_UNSUPPORTED,
                    "--backend cuda: not available for generate yet: the UNet, VAE and text encoders run only on the "
                    "CPU reference (no GPU path for the model runtime); the CUDA build accelerates adapter application "
                    "only. Use --backend cpu");
        goto fail;
    }
    /* 2. tags */
    if ((st = lf_prompt_parse(o->prompt, &g->pr)) != LF_OK) goto fail;
    /* 3. model parts */
    if ((st = lf_model_open(o->model, &g->m)) != LF_OK) goto fail;
    if ((st = lf_gen_check_model(g)) != LF_OK) goto fail;
    int w = o->width, h = o->height;
    if (!w || !h) {
        int dw, dh;
        lf_gen_default_size(g, &dw, &dh);
        if (!w) w = dw;
        if (!h) h = dh;
    }
    /* any multiple of 8: the UNet takes every latent size (its upsamplers go back to the skip connections'
     * sizes, as diffusers' upsample_size); the defaults (checkpoint metadata) are checked here too */
    if (w < 8 || h < 8 || w % 8 || h % 8 || w > LF_GEN_MAX_SIZE || h > LF_GEN_MAX_SIZE) {
        st = lf_err(LF_ERR_ARG, "size %dx%d%s: width and height must be multiples of 8, from 8 to %d", w, h,
                    o->width && o->height ? "" : " (the model's default size)", LF_GEN_MAX_SIZE);
        goto fail;
    }
    o->width = w;
    o->height = h;
    /* 4. adapters: names, files, family, shapes, schedule vs steps (P9) */
    lf_step_opts so;
    memset(&so, 0, sizeof so);
    so.lora_dir = o->lora_dir;
    so.lbw_presets = o->lbw_presets;
    if ((st = lf_step_plan_build(g->m, g->pr, o->steps, &so, &g->sp)) != LF_OK) goto fail;
    size_t nad = 0;
    const char **paths = calloc(g->sp->n_adapters + 1, sizeof *paths);
    if (!paths) {
        st = lf_err(LF_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < g->sp->n_adapters; i++) {
        int dup = 0;
        for (size_t k = 0; k < nad; k++) dup |= !strcmp(paths[k], g->sp->adapters[i].path);
        if (!g->sp->adapters[i].dropped && !dup) paths[nad++] = g->sp->adapters[i].path;
    }
    if (o->auto_trigger) {
        st = lf_lora_append_triggers(g->pr->clean, paths, nad, &g->prompt);
        if (!st) {
            /* the recorded prompt keeps the tags and gets the same words */
            const char *extra = g->prompt + strlen(g->pr->clean);
            size_t n = strlen(o->prompt) + strlen(extra) + 1;
            if ((g->info_prompt = malloc(n)) != NULL) snprintf(g->info_prompt, n, "%s%s", o->prompt, extra);
        }
    } else {
        g->prompt = lf_dup(g->pr->clean);
        g->info_prompt = lf_dup(o->prompt);
    }
    free(paths);
    if (st) goto fail;
    if (!g->prompt || !g->info_prompt) {
        st = lf_err(LF_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int t = 1; t <= o->steps; t++) {
        g->n_jobs_total += g->sp->steps[t - 1].n_jobs;
        g->info.te_encodes += (size_t)g->sp->steps[t - 1].te_encode;
    }
    for (size_t i = 0; i < g->sp->n_adapters; i++) g->info.n_adapters += !g->sp->adapters[i].dropped;
    /* 5. tokenizer, output directory */
    if ((st = lf_tokenizer_load_default(&g->tok)) != LF_OK) goto fail;
    if (o->write_png) {
        struct stat sb;
        if (stat(o->output_dir, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
            st = lf_err(LF_ERR_ARG, "--output-dir %s exists and is not a directory", o->output_dir);
            goto fail;
        }
    }
    {
        const char *b = lf_basename(o->model);
        size_t n = strlen(b);
        if (lf_ends_with(b, ".safetensors")) n -= strlen(".safetensors");
        if ((g->model_name = malloc(n + 1)) == NULL) {
            st = lf_err(LF_ERR_NOMEM, "out of memory");
            goto fail;
        }
        memcpy(g->model_name, b, n);
        g->model_name[n] = '\0';
    }
    g->info.prompt = g->prompt;
    g->info.infotext_prompt = g->info_prompt;
    g->info.sampler = g->sampler_name;
    g->info.steps = o->steps;
    g->info.width = o->width;
    g->info.height = o->height;
    g->info.batch_size = o->batch_size;
    g->info.batch_count = o->batch_count;
    g->info.cfg = o->cfg;
    g->info.family = lf_family_name(g->m->family);
    *out = g;
    return LF_OK;
fail:
    lf_gen_free(g);
    return st;
}

/* ---- weights ---------------------------------------------------------------------------------- */
static lf_unet_opts lf_gen_unet_opts(const lf_gen *g) {
    lf_unet_opts uo;
    memset(&uo, 0, sizeof uo);
    if (g->m->family == LF_FAMILY_SD1) uo.num_heads = 8; /* every SD1.x UNet; the context width may be small */
    else if (g->m->family == LF_FAMILY_SD2 || g->m->family == LF_FAMILY_SDXL) uo.head_dim = 64;
    return uo;
}

static lf_status lf_gen_load_unet(lf_gen *g, const lf_st_file *st) {
    lf_unet_opts uo = lf_gen_unet_opts(g);
    lf_unet *u = NULL;
    lf_status s = lf_unet_load(st, &uo, &u);
    if (s) return s;
    lf_unet_free(g->unet);
    g->unet = u;
    return LF_OK;
}

static lf_status lf_gen_load_te(lf_gen *g, const lf_st_file *st) {
    lf_clip *a = NULL, *b = NULL;
    lf_status s = lf_clip_load(st, g->te_p1, NULL, &a);
    if (!s && g->tef == LF_TE_SDXL) s = lf_clip_load(st, g->te_p2, NULL, &b);
    if (s) {
        lf_clip_free(a);
        return s;
    }
    lf_clip_free(g->te1);
    lf_clip_free(g->te2);
    g->te1 = a;
    g->te2 = b;
    return LF_OK;
}

/* Step t: CPU backend, then the loaded models. all = 1 refreshes every job (a new sampler run, whose
 * models still hold the previous run's last step). */
static lf_status lf_gen_apply_step(lf_gen *g, int t, int all) {
    if (!g->n_jobs_total) return LF_OK;
    double t0 = lf_now();
    lf_status s = lf_cpu_backend_step(g->be, t);
    lf_live live = {g->unet, g->te1, g->te2, 0};
    lf_live_stats ls;
    memset(&ls, 0, sizeof ls);
    if (!s) s = all ? lf_live_apply_all(&live, g->sp, g->be, &ls) : lf_live_apply_step(&live, g->sp, g->be, t, &ls);
    g->times.weight_updates += ls.refreshed;
    g->times.weights += lf_now() - t0;
    return s;
}

/* ---- conditioning ----------------------------------------------------------------------------- */
static lf_status lf_gen_encode_one(lf_gen *g, const char *text, lf_text_cond *c) {
    if (g->tef == LF_TE_SDXL) return lf_text_encode_sdxl(g->te1, g->te2, g->tok, text, LF_EMPH_ORIGINAL, c);
    if (g->tef == LF_TE_SD2) return lf_text_encode_sd(g->te1, g->tok, text, 2, 0, LF_EMPH_ORIGINAL, c);
    int skip = g->o.clip_skip > 1 ? g->o.clip_skip : 1;
    return lf_text_encode_sd(g->te1, g->tok, text, skip, lf_tokenizer_eos(g->tok), LF_EMPH_ORIGINAL, c);
}

/* Append copies of one empty-prompt window to c until it has `tokens` tokens. */
static lf_status lf_gen_pad(lf_text_cond *c, const lf_text_cond *empty, int64_t tokens) {
    if (c->tokens >= tokens) return LF_OK;
    float *p = realloc(c->context, (size_t)(tokens * c->width) * sizeof *p);
    if (!p) return lf_err(LF_ERR_NOMEM, "out of memory");
    c->context = p;
    for (int64_t t = c->tokens; t < tokens; t += LF_CLIP_CTX)
        memcpy(p + t * c->width, empty->context, (size_t)(LF_CLIP_CTX * c->width) * sizeof *p);
    c->tokens = tokens;
    return LF_OK;
}

/* SDXL without a negative prompt: zero context and pooled of the prompt's shape, as diffusers'
 * StableDiffusionXLPipeline (force_zeros_for_empty_prompt) and A1111 (force_zero_negative_prompt) do. */
static lf_status lf_gen_zero_like(const lf_text_cond *src, lf_text_cond *z) {
    memset(z, 0, sizeof *z);
    z->tokens = src->tokens;
    z->width = src->width;
    z->pooled_dim = src->pooled_dim;
    z->context = calloc((size_t)(src->tokens * src->width), sizeof *z->context);
    z->pooled = src->pooled ? calloc((size_t)src->pooled_dim, sizeof *z->pooled) : NULL;
    if (!z->context || (src->pooled && !z->pooled)) {
        lf_text_cond_free(z);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    return LF_OK;
}

static lf_status lf_gen_encode(lf_gen *g, size_t set) {
    double t0 = lf_now();
    lf_status s = LF_OK;
    lf_gen_cond *c = &g->cache[set];
    lf_gen_cond_clear(c);
    if (!s) s = lf_gen_encode_one(g, g->prompt, &c->cond);
    if (!s && g->tef == LF_TE_SDXL && !*g->o.negative) s = lf_gen_zero_like(&c->cond, &c->uncond);
    else if (!s) s = lf_gen_encode_one(g, g->o.negative, &c->uncond);
    if (!s && c->cond.tokens != c->uncond.tokens) {
        lf_text_cond e;
        memset(&e, 0, sizeof e);
        s = lf_gen_encode_one(g, "", &e);
        int64_t L = c->cond.tokens > c->uncond.tokens ? c->cond.tokens : c->uncond.tokens;
        if (!s) s = lf_gen_pad(&c->cond, &e, L);
        if (!s) s = lf_gen_pad(&c->uncond, &e, L);
        lf_text_cond_free(&e);
    }
    c->have = !s;
    g->times.encode += lf_now() - t0;
    g->times.te_runs++;
    return s;
}

/* ---- sampler callbacks ------------------------------------------------------------------------ */
static lf_status lf_gen_before_step(void *ctx, int step) {
    lf_gen *g = ctx;
    lf_status s = LF_OK;
    if (g->n_jobs_total) {
        int fresh = step == 1 && g->run_idx > 0;
        if (step == 1) {
            lf_cpu_backend_free(g->be);
            g->be = NULL;
            if ((s = lf_cpu_backend_new(g->sp, 1, &g->be)) != LF_OK) return s;
        }
        if ((s = lf_gen_apply_step(g, step, fresh)) != LF_OK) return s;
    }
    size_t set = g->sp->steps[step - 1].te_set;
    if (set >= g->n_cache) return lf_err(LF_ERR_ARG, "generate: text-encoder set %zu out of range", set);
    if (!g->cache[set].have && (s = lf_gen_encode(g, set)) != LF_OK) return s;
    g->cur_set = set;
    return LF_OK;
}

static void lf_gen_report(lf_gen *g, int step) {
    if (!g->progress) return;
    lf_gen_progress p;
    p.step = step;
    p.steps = g->o.steps;
    p.run = g->run_idx + 1;
    p.runs = g->runs;
    p.first_image = g->first_image;
    p.n_images = g->run_n;
    p.total_images = g->o.batch_size * g->o.batch_count;
    double now = lf_now();
    p.elapsed = now - g->t0;
    p.run_elapsed = now - g->run_t0;
    g->progress(g->progress_ctx, &p);
}

static lf_status lf_gen_denoise(void *ctx, int step, const float *x, float sigma, float t, float *out) {
    (void)sigma;
    lf_gen *g = ctx;
    const lf_gen_cond *c = &g->cache[g->cur_set];
    int n = g->run_n, cfg = g->o.cfg > 1.0;
    int N = cfg ? 2 * n : n;
    int64_t L = c->cond.tokens, D = c->cond.width;
    size_t per = (size_t)(4 * g->lat_h * g->lat_w);
    size_t need = (size_t)N * (size_t)(L * D);
    if (need > g->ctx_cap) {
        free(g->ctx);
        if ((g->ctx = malloc(need * sizeof *g->ctx)) == NULL) return lf_err(LF_ERR_NOMEM, "out of memory");
        g->ctx_cap = need;
    }
    size_t one = (size_t)(L * D);
    for (int i = 0; i < N; i++) {
        const lf_text_cond *src = cfg && i < n ? &c->uncond : &c->cond;
        memcpy(g->ctx + (size_t)i * one, src->context, one * sizeof(float));
        g->tin[i] = t;
    }
    memcpy(g->xin, x, (size_t)n * per * sizeof(float));
    if (cfg) memcpy(g->xin + (size_t)n * per, x, (size_t)n * per * sizeof(float));
    const float *y = NULL;
    if (g->tef == LF_TE_SDXL) {
        float *ids = malloc((size_t)N * 6 * sizeof *ids);
        float *pooled = malloc((size_t)N * (size_t)c->cond.pooled_dim * sizeof *pooled);
        if (!ids || !pooled) {
            free(ids);
            free(pooled);
            return lf_err(LF_ERR_NOMEM, "out of memory");
        }
        for (int i = 0; i < N; i++) {
            const lf_text_cond *src = cfg && i < n ? &c->uncond : &c->cond;
            memcpy(pooled + (size_t)i * (size_t)c->cond.pooled_dim, src->pooled, (size_t)c->cond.pooled_dim * sizeof(float));
            float v[6] = {(float)g->o.height, (float)g->o.width, 0, 0, (float)g->o.height, (float)g->o.width};
            memcpy(ids + i * 6, v, sizeof v);
        }
        lf_status s = lf_unet_sdxl_y(g->unet, g->y, pooled, c->cond.pooled_dim, ids, 6, N);
        free(ids);
        free(pooled);
        if (s) return s;
        y = g->y;
    }
    double t0 = lf_now();
    lf_status s = lf_unet_forward(g->unet, g->out2, g->xin, g->tin, g->ctx, L, y, N, g->lat_h, g->lat_w);
    g->times.unet += lf_now() - t0;
    g->times.unet_calls++;
    if (s) return s;
    size_t tot = (size_t)n * per;
    if (cfg) {
        float gs = (float)g->o.cfg;
        const float *u = g->out2, *cc = g->out2 + tot;
        for (size_t i = 0; i < tot; i++) out[i] = u[i] + gs * (cc[i] - u[i]);
    } else {
        memcpy(out, g->out2, tot * sizeof(float));
    }
    lf_gen_report(g, step);
    return LF_OK;
}

/* ---- output ----------------------------------------------------------------------------------- */
static int lf_stochastic(lf_sampler_kind k) { return k == LF_SAMPLER_EULER_A || k == LF_SAMPLER_DPMPP_2M_SDE; }

static lf_status lf_gen_finish_image(lf_gen *g, int index, int64_t seed, const float *lat, float *img, uint8_t *rgb,
                                     double t_sample, const char *model_hash, lf_gen_image_fn cb, void *cbctx) {
    int W = g->o.width, H = g->o.height;
    double t0 = lf_now();
    lf_status s = lf_vae_decode(g->vae, img, lat, 1, g->lat_h, g->lat_w);
    double t_dec = lf_now() - t0;
    g->times.decode += t_dec;
    if (s) return s;
    size_t plane = (size_t)W * (size_t)H;
    for (size_t p = 0; p < plane; p++)
        for (int ch = 0; ch < 3; ch++) {
            float v = img[(size_t)ch * plane + p] / 2.0f + 0.5f;
            v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
            rgb[p * 3 + (size_t)ch] = (uint8_t)rintf(v * 255.0f);
        }
    lf_infotext it;
    memset(&it, 0, sizeof it);
    it.prompt = g->info_prompt;
    it.negative = g->o.negative;
    it.steps = g->o.steps;
    it.sampler = g->sampler_name;
    it.cfg = g->o.cfg;
    it.seed = seed;
    it.width = W;
    it.height = H;
    it.model_hash = model_hash;
    it.model = g->model_name;
    it.clip_skip = g->tef == LF_TE_SD1 ? g->o.clip_skip : 0;
    it.rng = g->o.rng == LF_RNG_NV ? "NV" : "CPU";
    it.lora_hashes = g->lora_hashes;
    it.version = "lorafuse " LF_VERSION;
    char *params = lf_infotext_format(&it);
    if (!params) return lf_err(LF_ERR_NOMEM, "out of memory");
    char *file = NULL;
    double t1 = lf_now();
    if (g->o.write_png) s = lf_png_save_next(g->o.output_dir, seed, rgb, W, H, params, &file);
    double t_write = lf_now() - t1;
    g->times.write += t_write;
    if (!s && cb) {
        lf_gen_image gi;
        gi.index = index;
        gi.seed = seed;
        gi.width = W;
        gi.height = H;
        gi.latent = lat;
        gi.image = img;
        gi.rgb = rgb;
        gi.file = file;
        gi.parameters = params;
        gi.t_sample = t_sample;
        gi.t_decode = t_dec;
        gi.t_write = t_write;
        s = cb(cbctx, &gi);
    }
    free(file);
    free(params);
    return s;
}

lf_status lf_gen_run(lf_gen *g, lf_gen_image_fn cb, void *cbctx) {
    lf_gen_opts *o = &g->o;
    g->t0 = lf_now();
    lf_status s = LF_OK;
    lf_sampler *smp = NULL;
    float *x = NULL, *img = NULL;
    uint8_t *rgb = NULL;
    lf_rng *rngs = NULL;
    char model_hash[11];
    lf_gen_unload(g);
    memset(&g->times, 0, sizeof g->times);
    g->lat_h = o->height / 8;
    g->lat_w = o->width / 8;
    /* load */
    double t0 = lf_now();
    if ((s = lf_a1111_model_hash(o->model, model_hash)) != LF_OK) goto done;
    if (!g->lora_hashes && (s = lf_gen_lora_hashes(g)) != LF_OK) goto done;
    if ((s = lf_gen_load_unet(g, g->m->st)) != LF_OK) goto done;
    if ((s = lf_vae_load(g->m->st, g->m->family, NULL, &g->vae)) != LF_OK) goto done;
    if ((s = lf_gen_load_te(g, g->m->st)) != LF_OK) goto done;
    if (lf_unet_get_arch(g->unet)->in_channels != 4 || lf_vae_get_arch(g->vae)->latent_channels != 4 ||
        lf_vae_get_arch(g->vae)->factor != 8) {
        s = lf_err(LF_ERR_UNSUPPORTED, "%s: only 4-channel latents with an 8x VAE are supported (txt2img)", o->model);
        goto done;
    }
    g->n_cache = g->sp->n_te_sets ? g->sp->n_te_sets : 1;
    if ((g->cache = calloc(g->n_cache, sizeof *g->cache)) == NULL) {
        s = lf_err(LF_ERR_NOMEM, "out of memory");
        goto done;
    }
    g->times.load = lf_now() - t0;
    g->scfg.prediction = lf_unet_get_arch(g->unet)->prediction; /* v for SD2.x (lf_unet.h) */
    if ((s = lf_sampler_create(&g->scfg, o->steps, &smp)) != LF_OK) goto done;
    int stoch = lf_stochastic(g->scfg.kind);
    int per_run = stoch ? 1 : o->batch_size;
    int total = o->batch_size * o->batch_count;
    g->runs = (total + per_run - 1) / per_run;
    size_t per = (size_t)(4 * g->lat_h * g->lat_w);
    int64_t adm = lf_unet_get_arch(g->unet)->adm_in_channels;
    x = malloc((size_t)per_run * per * sizeof *x);
    g->xin = malloc((size_t)per_run * 2 * per * sizeof *g->xin);
    g->out2 = malloc((size_t)per_run * 2 * per * sizeof *g->out2);
    g->tin = malloc((size_t)per_run * 2 * sizeof *g->tin);
    g->y = adm > 0 ? malloc((size_t)per_run * 2 * (size_t)adm * sizeof *g->y) : NULL;
    img = malloc((size_t)3 * (size_t)o->width * (size_t)o->height * sizeof *img);
    rgb = malloc((size_t)3 * (size_t)o->width * (size_t)o->height);
    rngs = calloc((size_t)per_run, sizeof *rngs);
    if (!x || !g->xin || !g->out2 || !g->tin || (adm > 0 && !g->y) || !img || !rgb || !rngs) {
        s = lf_err(LF_ERR_NOMEM, "out of memory");
        goto done;
    }
    int64_t seed0 = o->seed;
    lf_sampler_cb scb = {g, lf_gen_before_step, lf_gen_denoise};
    int index = 0;
    for (g->run_idx = 0; g->run_idx < g->runs && !s; g->run_idx++) {
        int n = total - index < per_run ? total - index : per_run;
        g->run_n = n;
        g->first_image = index;
        for (int i = 0; i < n; i++) {
            int64_t sd = index + i == 0 ? seed0 : seed0 + index + i;
            if ((s = lf_rng_init(&rngs[i], o->rng, sd)) != LF_OK) break;
            if (index + i == 0) seed0 = rngs[0].seed; /* -1 resolved */
            lf_sampler_init_latent(smp, &rngs[i], x + (size_t)i * per, per);
        }
        if (s) break;
        g->run_t0 = lf_now();
        lf_gen_report(g, 0);
        s = lf_sampler_run(smp, x, (size_t)n * per, stoch ? &rngs[0] : NULL, &scb);
        if (s) break;
        double t_sample = (lf_now() - g->run_t0) / n;
        for (int i = 0; i < n && !s; i++)
            s = lf_gen_finish_image(g, index + i, rngs[i].seed, x + (size_t)i * per, img, rgb, t_sample, model_hash, cb,
                                    cbctx);
        index += n;
    }
done:
    lf_sampler_free(smp);
    free(x);
    free(img);
    free(rgb);
    free(rngs);
    lf_gen_unload(g);
    return s;
}
