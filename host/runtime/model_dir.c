/* model_dir.c: UNet, VAE and CLIP text encoder from diffusers folders (lf_model_dir.h, lf_clip.h).
 * The UNet's diffusers names come from the keymap's LDM -> diffusers derivation (keymap_unet.c) applied
 * to the tensor list the config implies (lf_unet_spec_tensors); the VAE's from a small table below.
 * Both then run the single-file loaders over an alias table (weight_load.h). The text encoder's
 * folder already uses the transformers names lf_clip_load reads; only its config.json is read here.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clip_internal.h"
#include "host/base/file.h"
#include "host/base/util.h"
#include "host/keymap/keymap_unet.h"
#include "lorafuse/lf_model_dir.h"
#include "weight_load.h"
#include "unet_internal.h"

#define LF_MD_PATH 4096

/* A folder's config files are a few KiB; anything near this is not one. */
#define LF_MD_JSON_MAX ((size_t)64 << 20)

/* The JSON object in `path`. quiet_missing: a file that does not exist is LF_ERR_IO without a message
 * (the caller treats it as optional or says what it is). */
static lf_status lf_md_read_json(const char *path, cJSON **out, int quiet_missing) {
    *out = NULL;
    if (quiet_missing && access(path, F_OK) != 0) return LF_ERR_IO;
    char *txt;
    size_t n;
    lf_status st = lf_read_file(path, NULL, LF_MD_JSON_MAX, &txt, &n);
    if (st) return st;
    cJSON *j = cJSON_ParseWithLength(txt, n);
    free(txt);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return lf_err(LF_ERR_FORMAT, "%s: not a JSON object", path);
    }
    *out = j;
    return LF_OK;
}

static const cJSON *lf_md_get(const cJSON *j, const char *k) { return cJSON_GetObjectItemCaseSensitive(j, k); }

/* Integer field; `def` when absent or null (def < 0: required). */
static lf_status lf_md_int(const char *path, const cJSON *j, const char *k, int64_t def, int64_t *out) {
    const cJSON *v = lf_md_get(j, k);
    if (!v || cJSON_IsNull(v)) {
        if (def < 0) return lf_err(LF_ERR_FORMAT, "%s: \"%s\" is missing", path, k);
        *out = def;
        return LF_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int64_t)v->valuedouble)
        return lf_err(LF_ERR_FORMAT, "%s: \"%s\" is not an integer", path, k);
    *out = (int64_t)v->valuedouble;
    return LF_OK;
}

/* An integer or a list of n integers -> vals[n]; 0 when absent or null (*given = 0). */
static lf_status lf_md_ints(const char *path, const cJSON *j, const char *k, int n, int64_t *vals, int *given) {
    const cJSON *v = lf_md_get(j, k);
    *given = 0;
    if (!v || cJSON_IsNull(v)) return LF_OK;
    if (cJSON_IsNumber(v)) {
        for (int i = 0; i < n; i++) vals[i] = (int64_t)v->valuedouble;
        *given = 1;
        return LF_OK;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != n)
        return lf_err(LF_ERR_FORMAT, "%s: \"%s\" must be an integer or a list of %d integers", path, k, n);
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsNumber(e)) return lf_err(LF_ERR_FORMAT, "%s: \"%s\"[%d] is not a number", path, k, i);
        vals[i] = (int64_t)e->valuedouble;
    }
    *given = 1;
    return LF_OK;
}

static const char *lf_md_str(const cJSON *j, const char *k) {
    const cJSON *v = lf_md_get(j, k);
    return cJSON_IsString(v) ? cJSON_GetStringValue(v) : NULL;
}

/* A field that must be absent, null, or equal to `ok` (string) for this runtime. */
static lf_status lf_md_only(const char *path, const cJSON *j, const char *k, const char *ok) {
    const cJSON *v = lf_md_get(j, k);
    if (!v || cJSON_IsNull(v)) return LF_OK;
    if (ok && cJSON_IsString(v) && !strcmp(cJSON_GetStringValue(v), ok)) return LF_OK;
    return lf_err(LF_ERR_UNSUPPORTED, "%s: \"%s\" = %s is not supported (expected %s)", path, k,
                  cJSON_IsString(v) ? cJSON_GetStringValue(v) : "a non-null value", ok ? ok : "null");
}

lf_status lf_unet_spec_from_config(const char *path, lf_unet_spec *s, lf_unet_opts *ho, int *sample_size) {
    cJSON *j = NULL;
    lf_status st = lf_md_read_json(path, &j, 0);
    if (st) return st;
    memset(s, 0, sizeof *s);
    const cJSON *boc = lf_md_get(j, "block_out_channels"), *down = lf_md_get(j, "down_block_types"),
                *up = lf_md_get(j, "up_block_types");
    int n = cJSON_IsArray(boc) ? cJSON_GetArraySize(boc) : 0;
    int64_t v, lpb[LF_UNET_MAX_LEVELS], tl[LF_UNET_MAX_LEVELS], heads[LF_UNET_MAX_LEVELS];
    int given;
    const char *cls = lf_md_str(j, "_class_name"), *mid = lf_md_str(j, "mid_block_type");
    if (cls && strcmp(cls, "UNet2DConditionModel")) {
        st = lf_err(LF_ERR_UNSUPPORTED, "%s: _class_name %s (expected UNet2DConditionModel)", path, cls);
        goto done;
    }
    if (n < 1 || n > LF_UNET_MAX_LEVELS || !cJSON_IsArray(down) || !cJSON_IsArray(up) ||
        cJSON_GetArraySize(down) != n || cJSON_GetArraySize(up) != n) {
        st = lf_err(LF_ERR_FORMAT, "%s: block_out_channels, down_block_types and up_block_types must be lists of "
                    "the same length (1..%d)", path, LF_UNET_MAX_LEVELS);
        goto done;
    }
    s->n_levels = n;
    if ((st = lf_md_ints(path, j, "block_out_channels", n, s->channels, &given))) goto done;
    if ((st = lf_md_ints(path, j, "layers_per_block", n, lpb, &given))) goto done;
    for (int i = 0; i < n; i++)
        if (!given || lpb[i] != lpb[0]) {
            st = lf_err(LF_ERR_UNSUPPORTED, "%s: layers_per_block must be one number for every level", path);
            goto done;
        }
    s->layers_per_block = (int)lpb[0];
    for (int i = 0; i < n; i++) tl[i] = 1;
    if ((st = lf_md_ints(path, j, "transformer_layers_per_block", n, tl, &given))) goto done;
    for (int i = 0; i < n; i++) {
        const char *d = cJSON_GetStringValue(cJSON_GetArrayItem(down, i));
        const char *u = cJSON_GetStringValue(cJSON_GetArrayItem(up, n - 1 - i));
        int da = d && !strcmp(d, "CrossAttnDownBlock2D"), ua = u && !strcmp(u, "CrossAttnUpBlock2D");
        if (!d || !u || (!da && strcmp(d, "DownBlock2D")) || (!ua && strcmp(u, "UpBlock2D")) || da != ua) {
            st = lf_err(LF_ERR_UNSUPPORTED, "%s: down block %d (%s) / up block %d (%s): supported are "
                        "[CrossAttn]DownBlock2D mirrored by [CrossAttn]UpBlock2D", path, i, d ? d : "?", n - 1 - i,
                        u ? u : "?");
            goto done;
        }
        s->depth[i] = da ? (int)tl[i] : 0;
    }
    if (mid && strcmp(mid, "UNetMidBlock2DCrossAttn") && strcmp(mid, "UNetMidBlock2D")) {
        st = lf_err(LF_ERR_UNSUPPORTED, "%s: mid_block_type %s", path, mid);
        goto done;
    }
    s->depth_mid = mid && !strcmp(mid, "UNetMidBlock2D") ? 0 : (int)tl[n - 1];
    if ((st = lf_md_int(path, j, "in_channels", 4, &s->in_channels)) ||
        (st = lf_md_int(path, j, "out_channels", 4, &s->out_channels)) ||
        (st = lf_md_int(path, j, "time_embedding_dim", 0, &s->time_embed_dim)))
        goto done;
    const cJSON *cad = lf_md_get(j, "cross_attention_dim");
    if (!cJSON_IsNumber(cad)) {
        st = lf_err(LF_ERR_UNSUPPORTED, "%s: cross_attention_dim must be one number", path);
        goto done;
    }
    s->context_dim = (int64_t)cad->valuedouble;
    s->linear_proj = cJSON_IsTrue(lf_md_get(j, "use_linear_projection"));
    const char *aet = lf_md_str(j, "addition_embed_type");
    if (aet && !strcmp(aet, "text_time")) {
        if ((st = lf_md_int(path, j, "projection_class_embeddings_input_dim", -1, &s->adm_in_channels))) goto done;
    } else if ((st = lf_md_only(path, j, "addition_embed_type", "text_time"))) {
        goto done;
    }
    if ((st = lf_md_only(path, j, "class_embed_type", NULL)) ||
        (st = lf_md_only(path, j, "reverse_transformer_layers_per_block", NULL)) ||
        (st = lf_md_only(path, j, "encoder_hid_dim_type", NULL)) ||
        (st = lf_md_only(path, j, "resnet_time_scale_shift", "default")) ||
        (st = lf_md_only(path, j, "time_embedding_type", "positional")) ||
        (st = lf_md_only(path, j, "act_fn", "silu")))
        goto done;
    const cJSON *flip = lf_md_get(j, "flip_sin_to_cos");
    if ((st = lf_md_int(path, j, "freq_shift", 0, &v))) goto done;
    if (cJSON_IsFalse(flip) || v != 0) {
        st = lf_err(LF_ERR_UNSUPPORTED, "%s: flip_sin_to_cos false or freq_shift %lld (SD uses true, 0)", path,
                    (long long)v);
        goto done;
    }
    /* heads: num_attention_heads, else attention_head_dim (diffusers' naming) */
    if ((st = lf_md_ints(path, j, "num_attention_heads", n, heads, &given))) goto done;
    if (!given && (st = lf_md_ints(path, j, "attention_head_dim", n, heads, &given))) goto done;
    if (!given) for (int i = 0; i < n; i++) heads[i] = 8;
    int same_heads = 1, same_dim = 1;
    int64_t h0 = 0, d0 = 0;
    for (int i = 0; i <= n; i++) { /* i == n: the mid block, last level's heads */
        int lv = i < n ? i : n - 1;
        if ((i < n && s->depth[i] == 0) || (i == n && s->depth_mid == 0)) continue;
        if (heads[lv] < 1 || s->channels[lv] % heads[lv]) {
            st = lf_err(LF_ERR_FORMAT, "%s: %lld heads do not divide %lld channels (level %d)", path,
                        (long long)heads[lv], (long long)s->channels[lv], lv);
            goto done;
        }
        int64_t d = s->channels[lv] / heads[lv];
        if (!h0) h0 = heads[lv], d0 = d;
        same_heads &= heads[lv] == h0;
        same_dim &= d == d0;
    }
    if (ho) {
        ho->num_heads = ho->head_dim = 0;
        if (h0 && same_dim) ho->head_dim = (int)d0; /* SD2.x / SDXL style, as the single-file default */
        else if (h0 && same_heads) ho->num_heads = (int)h0;
        else if (h0) {
            st = lf_err(LF_ERR_UNSUPPORTED, "%s: attention heads per level give neither one head count nor one "
                        "head width", path);
            goto done;
        }
        if ((st = lf_md_int(path, j, "norm_num_groups", 32, &v))) goto done;
        ho->norm_groups = (int)v;
    }
    if (sample_size) {
        if ((st = lf_md_int(path, j, "sample_size", 0, &v))) goto done;
        *sample_size = (int)v;
    }
done:
    cJSON_Delete(j);
    return st;
}

/* <dir>/<a> if it exists, else <dir>/<b>; into path. */
static lf_status lf_md_weights(const char *dir, const char *a, const char *b, char *path, size_t n) {
    snprintf(path, n, "%s/%s", dir, a);
    if (lf_file_exists(path)) return LF_OK;
    snprintf(path, n, "%s/%s", dir, b);
    if (lf_file_exists(path)) return LF_OK;
    return lf_err(LF_ERR_IO, "%s: no weights (%s or %s)", dir, a, b);
}

/* After the alias table is complete: every file tensor must have been used. */
static lf_status lf_md_check_unused(const lf_st_file *f, const unsigned char *used, const char *config) {
    for (size_t i = 0; i < lf_st_count(f); i++)
        if (!used[i])
            return lf_err(LF_ERR_MODEL, "%s: unexpected tensor \"%s\": %s does not describe it", lf_st_path(f),
                          lf_st_at(f, i)->name, config);
    return LF_OK;
}

static size_t lf_md_index(const lf_st_file *f, const lf_st_tensor *t) {
    for (size_t i = 0; i < lf_st_count(f); i++)
        if (lf_st_at(f, i) == t) return i;
    return 0;
}

lf_status lf_model_dir_prediction(const char *root, lf_prediction *out, int *found) {
    char path[LF_MD_PATH];
    *found = 0;
    snprintf(path, sizeof path, "%s/scheduler/scheduler_config.json", root);
    cJSON *j = NULL;
    lf_status st = lf_md_read_json(path, &j, 1);
    if (st == LF_ERR_IO) return LF_OK;
    if (st) return st;
    const char *p = lf_md_str(j, "prediction_type");
    if (p && !strcmp(p, "epsilon")) *out = LF_PRED_EPSILON, *found = 1;
    else if (p && !strcmp(p, "v_prediction")) *out = LF_PRED_V, *found = 1;
    else if (p) st = lf_err(LF_ERR_UNSUPPORTED, "%s: prediction_type \"%s\" (supported: epsilon, v_prediction)", path, p);
    cJSON_Delete(j);
    return st;
}

lf_status lf_unet_load_dir(const char *dir, const lf_unet_opts *opts, lf_unet **out) {
    *out = NULL;
    char cfg[LF_MD_PATH], wpath[LF_MD_PATH];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    lf_unet_spec spec;
    lf_unet_opts o;
    memset(&o, 0, sizeof o);
    int sample = 0;
    lf_status st = lf_unet_spec_from_config(cfg, &spec, &o, &sample);
    if (st) return st;
    if (opts && (opts->num_heads > 0 || opts->head_dim > 0)) o.num_heads = opts->num_heads, o.head_dim = opts->head_dim;
    if (opts && opts->norm_groups > 0) o.norm_groups = opts->norm_groups;
    o.prefix = "";
    if ((st = lf_md_weights(dir, "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                            wpath, sizeof wpath)))
        return st;
    lf_unet_tensor *ts = NULL;
    size_t n = 0;
    if ((st = lf_unet_spec_tensors(&spec, &ts, &n))) return lf_err(st, "%s: %s", cfg, lf_last_error());
    lf_st_file *f = NULL;
    char **keys = calloc(n, sizeof *keys), **dnames = calloc(n, sizeof *dnames);
    lf_wts_alias *al = calloc(n, sizeof *al);
    unsigned char *used = NULL;
    if (!keys || !dnames || !al) {
        st = lf_err(LF_ERR_NOMEM, "%s: out of memory", dir);
        goto done;
    }
    for (size_t i = 0; i < n && !st; i++) {
        size_t kl = strlen(LF_KM_UNET_ROOT) + strlen(ts[i].name) + 1;
        if (!(keys[i] = malloc(kl))) st = lf_err(LF_ERR_NOMEM, "%s: out of memory", dir);
        else snprintf(keys[i], kl, "%s%s", LF_KM_UNET_ROOT, ts[i].name);
    }
    if (st || (st = lf_km_unet_diffusers_names((const char *const *)keys, n, dnames))) goto done;
    if ((st = lf_st_open(wpath, &f))) goto done;
    used = calloc(lf_st_count(f) + 1, 1);
    if (!used) {
        st = lf_err(LF_ERR_NOMEM, "%s: out of memory", dir);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (!dnames[i]) {
            st = lf_err(LF_ERR_UNSUPPORTED, "%s: UNet tensor %s has no diffusers name", cfg, ts[i].name);
            goto done;
        }
        const lf_st_tensor *t = lf_st_find(f, dnames[i]);
        if (!t) {
            st = lf_err(LF_ERR_MODEL, "%s: missing tensor \"%s\" (the structure in %s has it)", wpath, dnames[i], cfg);
            goto done;
        }
        if (!lf_wts_shape_eq(t->ndim, t->shape, ts[i].ndim, ts[i].shape)) {
            char got[96], want[96];
            lf_wts_shape_str(t->ndim, t->shape, got, sizeof got);
            lf_wts_shape_str(ts[i].ndim, ts[i].shape, want, sizeof want);
            st = lf_err(LF_ERR_SHAPE, "%s: tensor \"%s\" has shape %s, expected %s from %s", wpath, dnames[i], got,
                        want, cfg);
            goto done;
        }
        used[lf_md_index(f, t)] = 1;
        al[i].t = *t;
        al[i].t.name = ts[i].name;
        al[i].orig = dnames[i];
    }
    if ((st = lf_md_check_unused(f, used, cfg))) goto done;
    lf_wts_alias_sort(al, n);
    if ((st = lf_un_load_src(NULL, al, n, wpath, 0, &o, out))) goto done;
    (*out)->arch.sample_size = sample;
    {
        /* <dir>/.. is the pipeline root */
        char root[LF_MD_PATH];
        snprintf(root, sizeof root, "%s/..", dir);
        lf_prediction p = LF_PRED_EPSILON;
        int found = 0;
        if ((st = lf_model_dir_prediction(root, &p, &found))) {
            lf_unet_free(*out);
            *out = NULL;
            goto done;
        }
        (*out)->has_file_prediction = found;
        (*out)->file_prediction = p;
        lf_unet_default_prediction(*out);
    }
done:
    lf_st_close(f);
    for (size_t i = 0; i < n; i++) {
        if (keys) free(keys[i]);
        if (dnames) free(dnames[i]);
    }
    free(keys), free(dnames), free(al), free(used), free(ts);
    return st;
}

/* ---- VAE ---------------------------------------------------------------------------------------- */

/* diffusers AutoencoderKL key -> LDM key (n_levels: len(block_out_channels)); 0 if not a VAE key. */
static int lf_md_vae_name(const char *d, int n_levels, char *out, size_t n) {
    static const struct {
        const char *dif, *ldm;
    } sub[] = {
        {"conv_shortcut", "nin_shortcut"}, {"group_norm", "norm"}, {"to_q", "q"}, {"to_k", "k"}, {"to_v", "v"},
        {"to_out.0", "proj_out"}, {"query", "q"}, {"key", "k"}, {"value", "v"}, {"proj_attn", "proj_out"},
    };
    const char *part = !strncmp(d, "encoder.", 8) ? "encoder." : !strncmp(d, "decoder.", 8) ? "decoder." : NULL;
    if (!part) {
        if (!strncmp(d, "quant_conv.", 11) || !strncmp(d, "post_quant_conv.", 16)) return snprintf(out, n, "%s", d), 1;
        return 0;
    }
    const char *r = d + 8;
    char head[64] = "", tail[128] = "";
    int i, j, c = 0;
    if (sscanf(r, "down_blocks.%d.resnets.%d.%n", &i, &j, &c) == 2 && c)
        snprintf(head, sizeof head, "down.%d.block.%d.", i, j), r += c;
    else if (c = 0, sscanf(r, "down_blocks.%d.downsamplers.0.%n", &i, &c) == 1 && c)
        snprintf(head, sizeof head, "down.%d.downsample.", i), r += c;
    else if (c = 0, sscanf(r, "up_blocks.%d.resnets.%d.%n", &i, &j, &c) == 2 && c)
        snprintf(head, sizeof head, "up.%d.block.%d.", n_levels - 1 - i, j), r += c;
    else if (c = 0, sscanf(r, "up_blocks.%d.upsamplers.0.%n", &i, &c) == 1 && c)
        snprintf(head, sizeof head, "up.%d.upsample.", n_levels - 1 - i), r += c;
    else if (c = 0, sscanf(r, "mid_block.resnets.%d.%n", &i, &c) == 1 && c)
        snprintf(head, sizeof head, "mid.block_%d.", i + 1), r += c;
    else if (!strncmp(r, "mid_block.attentions.0.", 23))
        snprintf(head, sizeof head, "mid.attn_1."), r += 23;
    else if (!strncmp(r, "conv_norm_out.", 14))
        snprintf(head, sizeof head, "norm_out."), r += 14;
    snprintf(tail, sizeof tail, "%s", r);
    for (size_t k = 0; k < sizeof sub / sizeof sub[0]; k++) {
        size_t l = strlen(sub[k].dif);
        if (!strncmp(tail, sub[k].dif, l) && tail[l] == '.') {
            char t2[128];
            snprintf(t2, sizeof t2, "%s%s", sub[k].ldm, tail + l);
            snprintf(tail, sizeof tail, "%s", t2);
            break;
        }
    }
    snprintf(out, n, "%s%s%s", part, head, tail);
    return 1;
}

lf_status lf_vae_load_dir(const char *dir, const lf_vae_opts *opts, lf_vae **out) {
    *out = NULL;
    char cfg[LF_MD_PATH], wpath[LF_MD_PATH];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    cJSON *j = NULL;
    lf_status st = lf_md_read_json(cfg, &j, 0);
    if (st) return st;
    lf_vae_opts o;
    memset(&o, 0, sizeof o);
    if (opts) o = *opts;
    o.prefix = "";
    const cJSON *boc = lf_md_get(j, "block_out_channels");
    int n_levels = cJSON_IsArray(boc) ? cJSON_GetArraySize(boc) : 0;
    int64_t groups = 32, latent = 4;
    const cJSON *sf = lf_md_get(j, "scaling_factor");
    const char *cls = lf_md_str(j, "_class_name");
    if (cls && strcmp(cls, "AutoencoderKL")) st = lf_err(LF_ERR_UNSUPPORTED, "%s: _class_name %s (expected AutoencoderKL)", cfg, cls);
    else if (n_levels < 1 || n_levels > LF_VAE_MAX_LEVELS) st = lf_err(LF_ERR_FORMAT, "%s: block_out_channels must be a list of 1..%d", cfg, LF_VAE_MAX_LEVELS);
    else if (!(st = lf_md_int(cfg, j, "norm_num_groups", 32, &groups)) && !(st = lf_md_int(cfg, j, "latent_channels", 4, &latent)))
        st = lf_md_only(cfg, j, "shift_factor", NULL);
    if (!st && o.norm_groups == 0) o.norm_groups = (int)groups;
    if (!st && o.scaling_factor == 0.0f) o.scaling_factor = cJSON_IsNumber(sf) ? (float)sf->valuedouble : 0.18215f;
    cJSON_Delete(j);
    if (st) return st;
    if ((st = lf_md_weights(dir, "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                            wpath, sizeof wpath)))
        return st;
    lf_st_file *f = NULL;
    if ((st = lf_st_open(wpath, &f))) return st;
    size_t n = lf_st_count(f);
    lf_wts_alias *al = calloc(n + 1, sizeof *al);
    char (*names)[192] = calloc(n + 1, sizeof *names);
    if (!al || !names) {
        st = lf_err(LF_ERR_NOMEM, "%s: out of memory", dir);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const lf_st_tensor *t = lf_st_at(f, i);
        if (!lf_md_vae_name(t->name, n_levels, names[i], sizeof names[i])) {
            st = lf_err(LF_ERR_MODEL, "%s: unexpected tensor \"%s\" in a VAE", wpath, t->name);
            goto done;
        }
        al[i].t = *t;
        al[i].t.name = names[i];
        al[i].orig = t->name;
    }
    lf_wts_alias_sort(al, n);
    for (size_t i = 1; i < n; i++)
        if (!strcmp(al[i].t.name, al[i - 1].t.name)) {
            st = lf_err(LF_ERR_MODEL, "%s: tensors \"%s\" and \"%s\" are the same VAE weight", wpath, al[i - 1].orig,
                        al[i].orig);
            goto done;
        }
    if ((st = lf_va_load_src(NULL, al, n, wpath, LF_FAMILY_UNKNOWN, &o, out))) goto done;
    {
        const lf_vae_arch *a = lf_vae_get_arch(*out);
        if (a->n_levels != n_levels || a->latent_channels != latent) {
            st = lf_err(LF_ERR_MODEL, "%s: %d levels and %lld latent channels in the weights, %s says %d and %lld",
                        wpath, a->n_levels, (long long)a->latent_channels, cfg, n_levels, (long long)latent);
            lf_vae_free(*out);
            *out = NULL;
        }
    }
done:
    free(al);
    free(names);
    lf_st_close(f);
    return st;
}

/* ---- text encoder folder (transformers CLIPTextModel[WithProjection]) ------------------------------- */

/* config.json gives heads, activation and eps; weights from model.safetensors, else
 * model.fp16.safetensors; the tensors are read by lf_clip_load (clip_load.c) with an empty prefix. */
lf_status lf_clip_load_dir(const char *dir, const lf_clip_opts *opts, lf_clip **out) {
    *out = NULL;
    char path[4096];
    lf_clip_opts o = opts ? *opts : (lf_clip_opts){0, LF_CLIP_ACT_AUTO};
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *cfg = NULL;
    lf_status st = lf_md_read_json(path, &cfg, 1);
    if (st == LF_ERR_IO) return lf_err(LF_ERR_IO, "%s: cannot open (text encoder folder)", path);
    if (st) return st;
    const cJSON *heads = lf_md_get(cfg, "num_attention_heads");
    const cJSON *act = lf_md_get(cfg, "hidden_act");
    const cJSON *eps = lf_md_get(cfg, "layer_norm_eps");
    if (o.heads <= 0 && cJSON_IsNumber(heads)) o.heads = (int64_t)cJSON_GetNumberValue(heads);
    if (o.act == LF_CLIP_ACT_AUTO && cJSON_IsString(act)) {
        const char *a = cJSON_GetStringValue(act);
        if (strcmp(a, "quick_gelu") == 0) o.act = LF_CLIP_QUICK_GELU;
        else if (strcmp(a, "gelu") == 0) o.act = LF_CLIP_GELU;
        else st = lf_err(LF_ERR_UNSUPPORTED, "%s: hidden_act \"%s\" (supported: quick_gelu, gelu)", path, a);
    }
    float e = cJSON_IsNumber(eps) ? (float)cJSON_GetNumberValue(eps) : 1e-5f;
    cJSON_Delete(cfg);
    if (st) return st;
    lf_st_file *f = NULL;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!lf_file_exists(path)) snprintf(path, sizeof path, "%s/model.fp16.safetensors", dir);
    st = lf_st_open(path, &f);
    if (st) return st;
    st = lf_clip_load(f, "", &o, out);
    lf_st_close(f);
    if (!st) (*out)->cfg.eps = e;
    return st;
}
