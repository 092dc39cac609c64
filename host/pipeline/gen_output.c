/* gen_output.c: what each generated image leaves behind: the VAE decode to 8-bit RGB
 * (x / 2 + 0.5, clamped to [0, 1], rounded), the A1111 parameters text (model name and hash, Lora
 * hashes, seed, sampler, ...), the PNG written as DIR/NNNNN-SEED.png (lf_png_save_next) and the
 * caller's image callback.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate_internal.h"
#include "host/base/util.h"
#include "lorafuse/lf_config.h"
#include "lorafuse/lf_hash.h"
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

lf_status lf_gen_lora_hashes(lf_gen *g) {
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

/* The A1111 parameters text of one image (malloc'd; NULL when out of memory). */
static char *lf_gen_parameters(const lf_gen *g, int64_t seed, const char *model_hash) {
    lf_infotext it;
    memset(&it, 0, sizeof it);
    it.prompt = g->info_prompt;
    it.negative = g->o.negative;
    it.steps = g->o.steps;
    it.sampler = g->sampler_name;
    it.cfg = g->o.cfg;
    it.seed = seed;
    it.width = g->o.width;
    it.height = g->o.height;
    it.model_hash = model_hash;
    it.model = g->model_name;
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
    lf_status s = lf_vae_decode(g->vae, img, lat, 1, g->lat_h, g->lat_w);
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
