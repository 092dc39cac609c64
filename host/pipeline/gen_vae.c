/* gen_vae.c: `--vae PATH`, a VAE decoding in place of the checkpoint's (A1111's and sd.cpp's --vae):
 * a single .safetensors file (LDM names "decoder.*", or a whole checkpoint's "first_stage_model.*"),
 * or a diffusers folder (vae/ itself, or a model root holding vae/). The check opens it before any
 * work; the load happens with the rest of the model. The parameters record it as A1111 does:
 * "VAE hash" (10 hex digits of the file's SHA-256) and "VAE" (the file name).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "generate_internal.h"
#include "host/base/compute.h"
#include "host/base/file.h"
#include "host/base/util.h"
#include "host/runtime/model_mem.h"
#include "lorafuse/lf_model_dir.h"

/* g->vae_name: the last component of the path given, trailing '/' aside ("models/my-vae/" -> "my-vae"). */
static void lf_gen_vae_name(lf_gen *g, const char *p) {
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && p[b - 1] != '/') b--;
    snprintf(g->vae_name, sizeof g->vae_name, "%.*s", (int)(n - b), p + b);
}

static int lf_is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* g->vae_dir (a diffusers vae/ folder) or g->vae_file (the weights file, also what is hashed). */
lf_status lf_gen_check_vae(lf_gen *g) {
    const char *p = g->o.vae;
    if (!p) return LF_OK;
    if (!*p) return lf_err(LF_ERR_ARG, "--vae is empty: give a VAE file or a diffusers vae/ folder");
    if (strlen(p) + 64 > sizeof g->vae_dir) return lf_err(LF_ERR_ARG, "--vae %.200s...: path too long", p);
    if (lf_is_dir(p)) {
        static const char *const files[] = {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"};
        char cfg[sizeof g->vae_dir];
        snprintf(g->vae_dir, sizeof g->vae_dir, "%s", p);
        if (snprintf(cfg, sizeof cfg, "%s/vae", p) > 0 && lf_is_dir(cfg)) snprintf(g->vae_dir, sizeof g->vae_dir, "%s", cfg);
        if (snprintf(cfg, sizeof cfg, "%s/config.json", g->vae_dir) > 0 && !lf_file_exists(cfg))
            return lf_err(LF_ERR_ARG, "--vae %s: a folder without config.json: give a diffusers vae/ folder "
                          "(config.json + diffusion_pytorch_model.safetensors) or a .safetensors file", p);
        g->vae_file[0] = '\0';
        for (size_t i = 0; i < 2 && !g->vae_file[0]; i++)
            if (snprintf(cfg, sizeof cfg, "%s/%s", g->vae_dir, files[i]) > 0 && lf_file_exists(cfg))
                snprintf(g->vae_file, sizeof g->vae_file, "%s", cfg);
        if (!g->vae_file[0])
            return lf_err(LF_ERR_ARG, "--vae %s: no diffusion_pytorch_model.safetensors in %s", p, g->vae_dir);
        lf_gen_vae_name(g, p);
        return LF_OK;
    }
    lf_st_file *st = NULL;
    lf_status s = lf_st_open(p, &st);
    if (s != LF_OK) return s;
    int ldm = lf_st_find(st, "decoder.conv_in.weight") || lf_st_find(st, "first_stage_model.decoder.conv_in.weight");
    int diffusers = lf_st_find(st, "decoder.up_blocks.0.resnets.0.conv1.weight") != NULL;
    lf_st_close(st);
    if (diffusers)
        return lf_err(LF_ERR_UNSUPPORTED, "--vae %s: a VAE in diffusers names (decoder.up_blocks.*) needs its "
                      "config.json: give the diffusers vae/ folder that holds both", p);
    if (!ldm)
        return lf_err(LF_ERR_MODEL, "--vae %s: no VAE decoder in this file (decoder.conv_in.weight or "
                      "first_stage_model.decoder.conv_in.weight)", p);
    snprintf(g->vae_file, sizeof g->vae_file, "%s", p);
    lf_gen_vae_name(g, p);
    return LF_OK;
}

lf_status lf_gen_load_vae(const lf_gen *g, lf_vae **out) {
    /* a device compute keeps the VAE's weights in its own precision (--vae-dtype, converted on upload): the
     * host holds them as stored */
    lf_vae_opts vo;
    memset(&vo, 0, sizeof vo);
    if (g->vae_dir[0]) return lf_vae_load_dir(g->vae_dir, &vo, out);
    if (!g->vae_file[0]) return lf_vae_load_mapped(g->m->st, g->m->family, &vo, out);
    lf_st_file *st = NULL;
    lf_status s = lf_st_open(g->vae_file, &st);
    if (s == LF_OK) s = lf_vae_load(st, g->m->family, &vo, out); /* the weights are copied: st may go */
    lf_st_close(st);
    return s;
}

lf_status lf_gen_vae_shapes(lf_gen *g, lf_vae **out) {
    lf_status s;
    if (g->vae_dir[0]) {
        s = lf_vae_load_dir(g->vae_dir, NULL, out); /* no shapes-only load of a folder */
    } else if (!g->vae_file[0]) {
        return lf_vae_load_shapes(g->m->st, g->m->family, out);
    } else {
        lf_st_file *st = NULL;
        s = lf_st_open(g->vae_file, &st);
        if (s == LF_OK) s = lf_vae_load_shapes(st, g->m->family, out);
        lf_st_close(st);
    }
    /* the checkpoint's own VAE is checked with the loaded model (generate.c); another one here, by name */
    const lf_vae_arch *a = s == LF_OK ? lf_vae_get_arch(*out) : NULL;
    if (a && (a->latent_channels != 4 || a->factor != 8)) {
        s = lf_err(LF_ERR_UNSUPPORTED, "--vae %s: a VAE with %lld latent channels and a %lldx scale; generate needs 4 "
                   "channels and 8x (an SD1.x / SD2.x / SDXL VAE)", g->o.vae, (long long)a->latent_channels,
                   (long long)a->factor);
        lf_vae_free(*out);
        *out = NULL;
    }
    return s;
}
