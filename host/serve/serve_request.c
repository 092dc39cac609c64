/* serve_request.c: a POST /sdapi/v1/txt2img body -> a checked request, and POST /sdapi/v1/options.
 *
 * Fields, types and defaults are those of AUTOMATIC1111's StableDiffusionTxt2ImgProcessingAPI
 * (modules/api/models.py over modules/processing.py): every field is optional and may be null (its
 * default then); unknown fields are ignored, as pydantic does. Real clients send every field with
 * their own defaults, so a field that only matters while a feature is off is accepted and ignored
 * (hr_* with enable_hr false, denoising_strength, firstphase_*, script_args without script_name, eta
 * for a sampler without noise ...). A request that asks for something lorafuse does not do is refused
 * by name (422): enable_hr, a script, alwayson scripts, restore_faces, tiling, subseeds, seed resize,
 * styles, a refiner, an infotext, eta / s_noise / s_churn / s_min_uncond off their defaults where the
 * sampler would use them, an override setting other than CLIP_stop_at_last_layers, randn_source,
 * sd_model_checkpoint (the loaded model) and samples_format "png". Limits (lf_serve_limits) are
 * checked here, before anything is queued.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "serve_request.h"
#include "host/base/text.h"
#include "lorafuse/lf_generate.h"
#include "lorafuse/lf_sampler.h"

typedef enum { LF_F_STR, LF_F_INT, LF_F_NUM, LF_F_BOOL, LF_F_LIST, LF_F_DICT } lf_ftype;

/* A1111's request model: name, type, default (JSON text). */
static const struct {
    const char *name;
    lf_ftype type;
    const char *def;
} lf_fields[] = {
    {"prompt", LF_F_STR, "\"\""},
    {"negative_prompt", LF_F_STR, "\"\""},
    {"styles", LF_F_LIST, "null"},
    {"seed", LF_F_INT, "-1"},
    {"subseed", LF_F_INT, "-1"},
    {"subseed_strength", LF_F_NUM, "0"},
    {"seed_resize_from_h", LF_F_INT, "-1"},
    {"seed_resize_from_w", LF_F_INT, "-1"},
    {"sampler_name", LF_F_STR, "null"},
    {"scheduler", LF_F_STR, "null"},
    {"batch_size", LF_F_INT, "1"},
    {"n_iter", LF_F_INT, "1"},
    {"steps", LF_F_INT, "50"},
    {"cfg_scale", LF_F_NUM, "7.0"},
    {"width", LF_F_INT, "512"},
    {"height", LF_F_INT, "512"},
    {"restore_faces", LF_F_BOOL, "null"},
    {"tiling", LF_F_BOOL, "null"},
    {"do_not_save_samples", LF_F_BOOL, "false"},
    {"do_not_save_grid", LF_F_BOOL, "false"},
    {"eta", LF_F_NUM, "null"},
    {"denoising_strength", LF_F_NUM, "null"},
    {"s_min_uncond", LF_F_NUM, "null"},
    {"s_churn", LF_F_NUM, "null"},
    {"s_tmax", LF_F_NUM, "null"},
    {"s_tmin", LF_F_NUM, "null"},
    {"s_noise", LF_F_NUM, "null"},
    {"override_settings", LF_F_DICT, "null"},
    {"override_settings_restore_afterwards", LF_F_BOOL, "true"},
    {"refiner_checkpoint", LF_F_STR, "null"},
    {"refiner_switch_at", LF_F_NUM, "null"},
    {"disable_extra_networks", LF_F_BOOL, "false"},
    {"firstpass_image", LF_F_STR, "null"},
    {"comments", LF_F_DICT, "null"},
    {"enable_hr", LF_F_BOOL, "false"},
    {"firstphase_width", LF_F_INT, "0"},
    {"firstphase_height", LF_F_INT, "0"},
    {"hr_scale", LF_F_NUM, "2.0"},
    {"hr_upscaler", LF_F_STR, "null"},
    {"hr_second_pass_steps", LF_F_INT, "0"},
    {"hr_resize_x", LF_F_INT, "0"},
    {"hr_resize_y", LF_F_INT, "0"},
    {"hr_checkpoint_name", LF_F_STR, "null"},
    {"hr_sampler_name", LF_F_STR, "null"},
    {"hr_scheduler", LF_F_STR, "null"},
    {"hr_prompt", LF_F_STR, "\"\""},
    {"hr_negative_prompt", LF_F_STR, "\"\""},
    {"force_task_id", LF_F_STR, "null"},
    {"sampler_index", LF_F_STR, "\"Euler\""},
    {"script_name", LF_F_STR, "null"},
    {"script_args", LF_F_LIST, "[]"},
    {"send_images", LF_F_BOOL, "true"},
    {"save_images", LF_F_BOOL, "false"},
    {"alwayson_scripts", LF_F_DICT, "{}"},
    {"infotext", LF_F_STR, "null"},
};
#define LF_N_FIELDS (sizeof lf_fields / sizeof *lf_fields)

static const char *const lf_type_msg[] = {"Input should be a valid string", "Input should be a valid integer",
                                          "Input should be a valid number", "Input should be a valid boolean",
                                          "Input should be a valid list", "Input should be a valid dictionary"};
static const char *const lf_type_code[] = {"string_type", "int_type", "float_type", "bool_type", "list_type",
                                           "dict_type"};

/* ---- responses -------------------------------------------------------------------------------- */
lf_srv_resp lf_srv_resp_detail(int status, const char *msg) {
    lf_srv_resp r = {status, cJSON_CreateObject(), 0};
    if (r.body) cJSON_AddStringToObject(r.body, "detail", msg);
    return r;
}

lf_srv_resp lf_srv_resp_422(const char *loc, const char *type, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lf_srv_resp r = {422, cJSON_CreateObject(), 0};
    cJSON *d = cJSON_AddArrayToObject(r.body, "detail");
    cJSON *e = cJSON_CreateObject();
    cJSON *l = cJSON_AddArrayToObject(e, "loc");
    cJSON_AddItemToArray(l, cJSON_CreateString("body"));
    if (loc) cJSON_AddItemToArray(l, cJSON_CreateString(loc));
    cJSON_AddStringToObject(e, "msg", msg);
    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddItemToArray(d, e);
    return r;
}

const char *lf_srv_rng_name(lf_rng_kind k) { return k == LF_RNG_NV ? "NV" : "CPU"; }

/* ---- field access ----------------------------------------------------------------------------- */
/* The value of a field in the merged parameters (null: absent or null). */
static const cJSON *lf_get(const cJSON *p, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, name);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static const char *lf_get_str(const cJSON *p, const char *name) {
    const cJSON *v = lf_get(p, name);
    return v ? v->valuestring : NULL;
}

static double lf_get_num(const cJSON *p, const char *name, double def) {
    const cJSON *v = lf_get(p, name);
    return v ? v->valuedouble : def;
}

static int lf_get_bool(const cJSON *p, const char *name) {
    const cJSON *v = lf_get(p, name);
    return v && cJSON_IsTrue(v);
}

static int lf_type_ok(const cJSON *v, lf_ftype t) {
    if (cJSON_IsNull(v)) return 1;
    switch (t) {
    case LF_F_STR: return cJSON_IsString(v);
    case LF_F_INT:
        /* integers exactly representable in a double; 5.0 is 5 as pydantic takes it */
        return cJSON_IsNumber(v) && isfinite(v->valuedouble) && floor(v->valuedouble) == v->valuedouble &&
               fabs(v->valuedouble) <= 9007199254740992.0;
    case LF_F_NUM: return cJSON_IsNumber(v) && isfinite(v->valuedouble);
    case LF_F_BOOL: return cJSON_IsBool(v);
    case LF_F_LIST: return cJSON_IsArray(v);
    case LF_F_DICT: return cJSON_IsObject(v);
    }
    return 0;
}

/* An integer field in [lo, hi] into *out, or a 422 naming it. */
static int lf_int_in(const cJSON *p, const char *name, long long lo, long long hi, long long *out, lf_srv_resp *r) {
    double v = lf_get_num(p, name, 0);
    if (v < (double)lo || v > (double)hi) {
        *r = lf_srv_resp_422(name, "value_error", "%s must be %lld to %lld (got %.17g)", name, lo, hi, v);
        return 0;
    }
    *out = (long long)v;
    return 1;
}

static int lf_count_tags(const char *s) {
    int n = 0;
    for (const char *p = s; (p = strchr(p, '<')) != NULL; p++)
        n += !strncasecmp(p, "<lora:", 6) || !strncasecmp(p, "<lyco:", 6);
    return n;
}

/* ---- settings (override_settings, POST options) ----------------------------------------------- */
/* Check one setting and apply it to *set; loc names it in a 422. */
static int lf_setting(const char *key, const cJSON *v, const char *loc, lf_srv_settings *set, lf_srv_resp *r) {
    if (!strcmp(key, "CLIP_stop_at_last_layers")) {
        if (!lf_type_ok(v, LF_F_INT) || cJSON_IsNull(v) || v->valuedouble < 1 || v->valuedouble > 12) {
            *r = lf_srv_resp_422(loc, "value_error", "CLIP_stop_at_last_layers must be an integer from 1 to 12");
            return 0;
        }
        set->clip_skip = (int)v->valuedouble;
        return 1;
    }
    if (!strcmp(key, "randn_source")) {
        /* A1111's "GPU" is torch.randn on the device: on NVIDIA GPUs the numbers "NV" reproduces */
        const char *s = cJSON_IsString(v) ? v->valuestring : "";
        if (!strcmp(s, "CPU")) set->rng = LF_RNG_TORCH_CPU;
        else if (!strcmp(s, "NV") || !strcmp(s, "GPU")) set->rng = LF_RNG_NV;
        else {
            *r = lf_srv_resp_422(loc, "value_error", "randn_source must be \"CPU\", \"NV\" or \"GPU\" (= NV)");
            return 0;
        }
        return 1;
    }
    if (!strcmp(key, "sd_model_checkpoint")) {
        const char *s = cJSON_IsString(v) ? v->valuestring : "";
        if (strcmp(s, set->model_title) && strcmp(s, set->model_file) && strcmp(s, set->model_name)) {
            char q[LF_ESC_PART];
            *r = lf_srv_resp_422(loc, "value_error",
                                 "sd_model_checkpoint '%s': this server holds one model, '%s' (switching models is "
                                 "not implemented)", lf_esc(q, sizeof q, s, strlen(s)), set->model_title);
            return 0;
        }
        return 1;
    }
    if (!strcmp(key, "outdir_txt2img_samples")) { /* GET /options gives it; a client may post it back */
        if (!cJSON_IsString(v) || strcmp(v->valuestring, set->outdir)) {
            *r = lf_srv_resp_422(loc, "value_error", "outdir_txt2img_samples is read-only (--output-dir)");
            return 0;
        }
        return 1;
    }
    if (!strcmp(key, "samples_format")) {
        if (!cJSON_IsString(v) || strcasecmp(v->valuestring, "png")) {
            *r = lf_srv_resp_422(loc, "value_error", "samples_format: only \"png\" is implemented");
            return 0;
        }
        return 1;
    }
    char q[LF_ESC_PART];
    *r = lf_srv_resp_422(loc, "value_error",
                         "setting '%s' is not implemented (settings: CLIP_stop_at_last_layers, randn_source, "
                         "sd_model_checkpoint, samples_format, outdir_txt2img_samples)", lf_esc(q, sizeof q, key, strlen(key)));
    return 0;
}

static int lf_settings(const cJSON *obj, const char *loc, lf_srv_settings *set, lf_srv_resp *r) {
    lf_srv_settings t = *set;
    for (const cJSON *c = obj ? obj->child : NULL; c; c = c->next)
        if (!lf_setting(c->string, c, loc ? loc : c->string, &t, r)) return 0;
    *set = t;
    return 1;
}

lf_srv_resp lf_srv_parse_options(const char *body, size_t n, lf_srv_settings *set) {
    cJSON *j = cJSON_ParseWithLength(body, n);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return lf_srv_resp_422(NULL, "json_invalid", "the body must be a JSON object");
    }
    lf_srv_resp r = {0, NULL, 0};
    if (lf_settings(j, NULL, set, &r)) r = (lf_srv_resp){200, cJSON_CreateObject(), 0};
    cJSON_Delete(j);
    return r;
}

/* ---- txt2img ---------------------------------------------------------------------------------- */
void lf_srv_req_free(lf_srv_req *q) {
    if (!q) return;
    free(q->prompt);
    free(q->negative);
    cJSON_Delete(q->params);
    free(q);
}

/* The merged parameters: A1111's defaults, then every known field of the body after its type check. */
static int lf_merge(const cJSON *in, cJSON **out, lf_srv_resp *r) {
    cJSON *p = cJSON_CreateObject();
    if (!p) {
        *r = lf_srv_resp_detail(500, "out of memory");
        return 0;
    }
    for (size_t i = 0; i < LF_N_FIELDS; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, lf_fields[i].name);
        if (v && !lf_type_ok(v, lf_fields[i].type)) {
            *r = lf_srv_resp_422(lf_fields[i].name, lf_type_code[lf_fields[i].type], "%s",
                                 lf_type_msg[lf_fields[i].type]);
            cJSON_Delete(p);
            return 0;
        }
        cJSON *c = v ? cJSON_Duplicate(v, 1) : cJSON_Parse(lf_fields[i].def);
        if (!c) {
            *r = lf_srv_resp_detail(500, "out of memory");
            cJSON_Delete(p);
            return 0;
        }
        cJSON_AddItemToObject(p, lf_fields[i].name, c);
    }
    *out = p;
    return 1;
}

/* What lorafuse does not do, refused by name. */
static int lf_refuse_features(const cJSON *p, lf_srv_resp *r) {
    static const struct {
        const char *field, *what;
    } flags[] = {{"enable_hr", "hires fix (enable_hr) is not implemented"},
                 {"restore_faces", "face restoration (restore_faces) is not implemented"},
                 {"tiling", "tiling is not implemented"}};
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++)
        if (lf_get_bool(p, flags[i].field)) {
            *r = lf_srv_resp_422(flags[i].field, "value_error", "%s", flags[i].what);
            return 0;
        }
    char q[LF_ESC_PART];
    const char *s = lf_get_str(p, "script_name");
    if (s && *s && strcasecmp(s, "none")) {
        *r = lf_srv_resp_422("script_name", "value_error", "script '%s': scripts are not implemented",
                             lf_esc(q, sizeof q, s, strlen(s)));
        return 0;
    }
    const cJSON *a = lf_get(p, "alwayson_scripts");
    if (a && a->child) {
        const char *k = a->child->string;
        *r = lf_srv_resp_422("alwayson_scripts", "value_error", "alwayson script '%s': scripts are not implemented",
                             lf_esc(q, sizeof q, k, strlen(k)));
        return 0;
    }
    const cJSON *st = lf_get(p, "styles");
    if (st && st->child) {
        const char *k = cJSON_IsString(st->child) ? st->child->valuestring : "?";
        *r = lf_srv_resp_422("styles", "value_error", "unknown style '%s' (this server has no styles)",
                             lf_esc(q, sizeof q, k, strlen(k)));
        return 0;
    }
    if (lf_get_num(p, "subseed_strength", 0) > 0) {
        *r = lf_srv_resp_422("subseed_strength", "value_error", "variation seeds (subseed_strength > 0) are not implemented");
        return 0;
    }
    s = lf_get_str(p, "refiner_checkpoint");
    if (s && *s && strcasecmp(s, "none")) {
        *r = lf_srv_resp_422("refiner_checkpoint", "value_error", "a refiner is not implemented");
        return 0;
    }
    s = lf_get_str(p, "infotext");
    if (s && *s) {
        *r = lf_srv_resp_422("infotext", "value_error", "infotext: parsing settings from an infotext is not "
                             "implemented; send the fields");
        return 0;
    }
    if (lf_get_num(p, "s_min_uncond", 0) > 0) {
        *r = lf_srv_resp_422("s_min_uncond", "value_error", "s_min_uncond (negative guidance minimum sigma) is not implemented");
        return 0;
    }
    if (lf_get_num(p, "s_churn", 0) > 0) {
        *r = lf_srv_resp_422("s_churn", "value_error", "s_churn > 0 is not implemented");
        return 0;
    }
    if (lf_get_bool(p, "disable_extra_networks") && lf_count_tags(lf_get_str(p, "prompt") ? lf_get_str(p, "prompt") : "")) {
        *r = lf_srv_resp_422("disable_extra_networks", "value_error",
                             "disable_extra_networks with <lora:...> tags in the prompt: remove the tags instead");
        return 0;
    }
    return 1;
}

/* Sampler: sampler_name (or sampler_index) and scheduler ("automatic" as A1111: Karras for DPM++ 2M;
 * "karras"). Also the sampler-specific noise settings that lorafuse keeps at A1111's defaults. */
static int lf_req_sampler(const cJSON *p, lf_srv_req *q, lf_srv_resp *r) {
    const char *name = lf_get_str(p, "sampler_name");
    const char *loc = "sampler_name";
    if (!name || !*name) {
        name = lf_get_str(p, "sampler_index");
        loc = "sampler_index";
    }
    if (!name || !*name) name = "Euler";
    const char *sch = lf_get_str(p, "scheduler");
    char q1[LF_ESC_PART];
    int karras = 0;
    if (sch && !strcasecmp(sch, "karras")) karras = 1;
    else if (sch && *sch && strcasecmp(sch, "automatic")) {
        *r = lf_srv_resp_422("scheduler", "value_error", "scheduler '%s' is not implemented (automatic, karras)",
                             lf_esc(q1, sizeof q1, sch, strlen(sch)));
        return 0;
    }
    lf_sampler_config c;
    if (lf_sampler_config_from_name(name, &c) != LF_OK) {
        lf_err_escape(LF_OK);
        *r = lf_srv_resp_422(loc, "value_error", "%s", lf_last_error());
        return 0;
    }
    if (!sch || !*sch || !strcasecmp(sch, "automatic")) karras = c.karras || c.kind == LF_SAMPLER_DPMPP_2M;
    snprintf(q->sampler, sizeof q->sampler, "%s%s", name, karras && !c.karras ? " Karras" : "");
    if (lf_sampler_config_from_name(q->sampler, &c) != LF_OK) {
        lf_err_escape(LF_OK);
        *r = lf_srv_resp_422("scheduler", "value_error", "%s", lf_last_error());
        return 0;
    }
    snprintf(q->sampler, sizeof q->sampler, "%s", lf_sampler_config_name(&c));
    /* eta and s_noise: A1111's defaults are what lorafuse's samplers do (eta 1 for the ancestral and SDE
     * samplers, 0 for DDIM; s_noise 1); other values change the noise and are refused */
    int noisy = c.kind == LF_SAMPLER_EULER_A || c.kind == LF_SAMPLER_DPMPP_2M_SDE;
    double eta = lf_get_num(p, "eta", noisy ? 1.0 : 0.0);
    if ((noisy || c.kind == LF_SAMPLER_DDIM) && eta != (noisy ? 1.0 : 0.0)) {
        *r = lf_srv_resp_422("eta", "value_error", "eta %g with %s is not implemented (only %g)", eta, q->sampler,
                             noisy ? 1.0 : 0.0);
        return 0;
    }
    if (noisy && lf_get_num(p, "s_noise", 1.0) != 1.0) {
        *r = lf_srv_resp_422("s_noise", "value_error", "s_noise other than 1 is not implemented");
        return 0;
    }
    return 1;
}

static char *lf_strdup0(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

static int lf_check(const cJSON *p, const lf_serve_limits *lim, const lf_srv_settings *set0, int can_save,
                    lf_srv_req *q, lf_srv_resp *r) {
    if (!lf_refuse_features(p, r) || !lf_req_sampler(p, q, r)) return 0;
    const char *prompt = lf_get_str(p, "prompt"), *neg = lf_get_str(p, "negative_prompt");
    if (!prompt) prompt = "";
    if (!neg) neg = "";
    if (strlen(prompt) > lim->max_prompt || strlen(neg) > lim->max_prompt) {
        const char *f = strlen(prompt) > lim->max_prompt ? "prompt" : "negative_prompt";
        *r = lf_srv_resp_422(f, "value_error", "%s: longer than %zu bytes (the server's limit)", f, lim->max_prompt);
        return 0;
    }
    int tags = lf_count_tags(prompt);
    if (tags > lim->max_tags) {
        *r = lf_srv_resp_422("prompt", "value_error", "prompt: %d <lora:...> tags, the server's limit is %d", tags,
                             lim->max_tags);
        return 0;
    }
    long long v;
    if (!lf_int_in(p, "steps", 1, lim->max_steps, &v, r)) return 0;
    q->steps = (int)v;
    if (!lf_int_in(p, "batch_size", 1, 64, &v, r)) return 0;
    q->batch_size = (int)v;
    if (!lf_int_in(p, "n_iter", 1, 10000, &v, r)) return 0;
    q->n_iter = (int)v;
    if (!lf_int_in(p, "width", 8, LF_GEN_MAX_SIZE, &v, r)) return 0;
    q->width = (int)v;
    if (!lf_int_in(p, "height", 8, LF_GEN_MAX_SIZE, &v, r)) return 0;
    q->height = (int)v;
    if (q->width % 8 || q->height % 8) {
        const char *f = q->width % 8 ? "width" : "height";
        *r = lf_srv_resp_422(f, "value_error", "%s must be a multiple of 8 (got %d)", f, q->width % 8 ? q->width : q->height);
        return 0;
    }
    if ((int64_t)q->width * q->height * q->batch_size > lim->max_pixels) {
        *r = lf_srv_resp_422("width", "value_error", "width x height x batch_size = %dx%dx%d is over the server's limit "
                             "of %lld pixels", q->width, q->height, q->batch_size, (long long)lim->max_pixels);
        return 0;
    }
    if ((int64_t)q->batch_size * q->n_iter > lim->max_images) {
        *r = lf_srv_resp_422("n_iter", "value_error", "batch_size x n_iter = %d images is over the server's limit of %d",
                             q->batch_size * q->n_iter, lim->max_images);
        return 0;
    }
    q->cfg = lf_get_num(p, "cfg_scale", 7.0);
    if (q->cfg < 0 || q->cfg > 100) {
        *r = lf_srv_resp_422("cfg_scale", "value_error", "cfg_scale must be 0 to 100 (got %g)", q->cfg);
        return 0;
    }
    /* seeds up to 2^53: JSON numbers are doubles in most clients, and exact in them up to there */
    if (!lf_int_in(p, "seed", -1, 9007199254740992ll, &v, r)) return 0;
    q->seed = v;
    for (int k = 0; k < 2; k++) {
        const char *f = k ? "seed_resize_from_h" : "seed_resize_from_w";
        double sv = lf_get_num(p, f, -1);
        if (sv > 0 && sv != (k ? q->height : q->width)) {
            *r = lf_srv_resp_422(f, "value_error", "%s: resizing the seed's noise is not implemented", f);
            return 0;
        }
    }
    lf_srv_settings set = *set0;
    if (!lf_settings(lf_get(p, "override_settings"), "override_settings", &set, r)) return 0;
    q->clip_skip = set.clip_skip;
    q->rng = set.rng;
    q->send_images = !lf_get(p, "send_images") || lf_get_bool(p, "send_images");
    q->save_images = lf_get_bool(p, "save_images");
    if (q->save_images && !can_save) {
        *r = lf_srv_resp_422("save_images", "value_error", "save_images: the server was started without --output-dir");
        return 0;
    }
    if (!(q->prompt = lf_strdup0(prompt)) || !(q->negative = lf_strdup0(neg))) {
        *r = lf_srv_resp_detail(500, "out of memory");
        return 0;
    }
    return 1;
}

lf_srv_resp lf_srv_parse_txt2img(const char *body, size_t n, const lf_serve_limits *lim, const lf_srv_settings *set,
                                 int can_save, lf_srv_req **out) {
    *out = NULL;
    lf_srv_resp r = {0, NULL, 0};
    if (n > lim->max_body) return lf_srv_resp_detail(413, "request body over the server's limit");
    cJSON *j = cJSON_ParseWithLength(body, n);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return lf_srv_resp_422(NULL, "json_invalid", "the body must be a JSON object (A1111's txt2img request)");
    }
    lf_srv_req *q = calloc(1, sizeof *q);
    if (!q) {
        cJSON_Delete(j);
        return lf_srv_resp_detail(500, "out of memory");
    }
    if (lf_merge(j, &q->params, &r) && lf_check(q->params, lim, set, can_save, q, &r)) {
        *out = q;
        q = NULL;
    }
    lf_srv_req_free(q);
    cJSON_Delete(j);
    return r;
}
