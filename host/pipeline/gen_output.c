/* gen_output.c: what each generated image leaves behind: the VAE decode to 8-bit RGB
 * (x / 2 + 0.5, clamped to [0, 1], rounded), the A1111 parameters text (model name and hash, VAE,
 * Lora hashes, seed, sampler and schedule type, ...), the PNG written as DIR/NNNNN-SEED.png
 * (lf_png_save_next) and the caller's image callback. The file hashes go through the persistent
 * hash cache (lf_hash_cache.h), computed once per file version.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate_internal.h"
#include "host/base/util.h"
#include "lorafuse/lf_config.h"
#include "lorafuse/lf_hash_cache.h"
#include "lorafuse/lf_png.h"

lf_status lf_gen_model_name(lf_gen *g) {
    const char *b = lf_basename(g->o.model);
    size_t n = strlen(b);
    if (lf_has_suffix(b, ".safetensors")) n -= strlen(".safetensors");
    if ((g->model_name = malloc(n + 1)) == NULL) return lf_err(LF_ERR_NOMEM, "out of memory");
    memcpy(g->model_name, b, n);
    g->model_name[n] = '\0';
    return LF_OK;
}

/* "name: hash, ..." (12 hex digits each) over the distinct tag names of the adapters not dropped;
 * ':' and ',' dropped from names as A1111's extra_networks_lora.py does. */
static lf_status lf_gen_lora_hashes(lf_gen *g, lf_hash_cache *hc) {
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
        char h[65];
        lf_status st = lf_hash_cache_get(hc, a->path, LF_HASH_ADDNET, h, NULL);
        if (st) {
            free(s);
            return st;
        }
        if (o) o += (size_t)snprintf(s + o, cap - o, ", ");
        for (const char *c = a->tag->name; *c; c++)
            if (*c != ':' && *c != ',') s[o++] = *c;
        o += (size_t)snprintf(s + o, cap - o, ": %.12s", h);
    }
    free(g->lora_hashes);
    g->lora_hashes = s;
    return LF_OK;
}

lf_status lf_gen_hashes(lf_gen *g) {
    lf_hash_cache *hc = NULL;
    char h[65];
    lf_status st = lf_hash_cache_open(g->o.hash_cache, &hc);
    if (st == LF_OK) st = lf_hash_cache_get(hc, g->o.model, LF_HASH_FILE, h, NULL);
    if (st == LF_OK) snprintf(g->model_hash, sizeof g->model_hash, "%.10s", h);
    if (st == LF_OK && g->vae_file[0] && (st = lf_hash_cache_get(hc, g->vae_file, LF_HASH_FILE, h, NULL)) == LF_OK)
        snprintf(g->vae_hash, sizeof g->vae_hash, "%.10s", h);
    if (st == LF_OK) st = lf_gen_lora_hashes(g, hc);
    lf_hash_cache_save(hc);
    const char *w = lf_hash_cache_warning(hc);
    if (w) lf_msgs_add(&g->warnings, "%s", w);
    lf_hash_cache_close(hc);
    return st;
}

/* A1111 1.9+ writes the sampler and its schedule apart ("DPM++ 2M", "Karras"). "Automatic" is what it
 * writes for a sampler's own schedule; for DPM++ 2M and its SDE variant that is Karras / exponential,
 * so their plain (non-Karras) lorafuse forms say "Uniform" (k-diffusion's default sigmas, what the
 * combined name "DPM++ 2M" meant before 1.9). */
static void lf_gen_sampler_fields(const lf_gen *g, char *name, size_t n, const char **schedule) {
    snprintf(name, n, "%s", g->sampler_name);
    size_t len = strlen(name);
    if (g->scfg.karras && len > 7 && !strcmp(name + len - 7, " Karras")) {
        name[len - 7] = '\0';
        *schedule = "Karras";
    } else if (g->scfg.kind == LF_SAMPLER_DPMPP_2M || g->scfg.kind == LF_SAMPLER_DPMPP_2M_SDE) {
        *schedule = "Uniform";
    } else {
        *schedule = "Automatic";
    }
}

/* The A1111 parameters text of one image (malloc'd; NULL when out of memory). */
static char *lf_gen_parameters(const lf_gen *g, int64_t seed, const char *model_hash) {
    lf_infotext it;
    memset(&it, 0, sizeof it);
    it.prompt = g->info_prompt;
    it.negative = g->o.negative;
    it.steps = g->o.steps;
    char sampler[sizeof g->sampler_name];
    lf_gen_sampler_fields(g, sampler, sizeof sampler, &it.schedule_type);
    it.sampler = sampler;
    it.cfg = g->o.cfg;
    it.seed = seed;
    it.width = g->o.width;
    it.height = g->o.height;
    it.model_hash = model_hash;
    it.model = g->model_name;
    it.vae_hash = g->vae_file[0] ? g->vae_hash : NULL;
    it.vae = g->vae_name[0] ? g->vae_name : NULL;
    it.clip_skip = g->tef == LF_TE_SD1 ? g->o.clip_skip : 0;
    it.rng = g->o.rng == LF_RNG_NV ? "NV" : "CPU";
    it.lora_hashes = g->lora_hashes;
    it.ti_hashes = g->ti_hashes;
    it.version = "lorafuse " LF_VERSION;
    return lf_infotext_format(&it);
}

lf_status lf_gen_finish_image(lf_gen *g, int index, int64_t seed, const float *lat, float *img, uint8_t *rgb,
                              double t_sample, const char *model_hash, lf_gen_image_fn cb, void *cbctx) {
    int W = g->o.width, H = g->o.height;
    double t0 = lf_clock_s();
    lf_status s = lf_gen_vae_call(g, img, lat);
    double t_dec = lf_clock_s() - t0;
    g->times.decode += t_dec;
    if (s) return s;
    size_t plane = (size_t)W * (size_t)H;
    for (size_t p = 0; p < plane; p++)
        for (int ch = 0; ch < 3; ch++) {
            float v = img[(size_t)ch * plane + p] / 2.0f + 0.5f;
            v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
            rgb[p * 3 + (size_t)ch] = (uint8_t)rintf(v * 255.0f);
        }
    char *params = lf_gen_parameters(g, seed, model_hash);
    if (!params) return lf_err(LF_ERR_NOMEM, "out of memory");
    char *file = NULL;
    double t1 = lf_clock_s();
    if (g->o.write_png) s = lf_png_save_next(g->o.output_dir, seed, rgb, W, H, params, &file);
    double t_write = lf_clock_s() - t1;
    g->times.write += t_write;
    if (!s && cb) {
        lf_gen_image gi;
        gi.index = g->image_base + index;
        gi.job = g->job;
        gi.job_index = index;
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
