/* serve_api.c: the routes of the HTTP API (AUTOMATIC1111's /sdapi/v1 shapes, docs/serve.md) and the
 * endpoints that answer from the server's state; txt2img goes through the request parser to the queue.
 *
 *   GET  /sdapi/v1/samplers, /schedulers, /sd-models, /loras, /options, /progress; /health
 *   POST /sdapi/v1/txt2img, /options, /interrupt, /refresh-loras, /png-info
 * An unknown path is 404 {"detail": "Not Found"}, a known one with another method 405.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve_internal.h"
#include "host/base/util.h"
#include "lorafuse/lf_lora_dir.h"
#include "lorafuse/lf_png.h"
#include "lorafuse/lf_safetensors.h"
#include "lorafuse/lf_sampler.h"

static lf_srv_resp lf_ok(cJSON *body) { return (lf_srv_resp){200, body, 0}; }

static lf_srv_resp lf_srv_samplers(void) {
    cJSON *a = cJSON_CreateArray();
    for (int k = 0; k < LF_SAMPLER_COUNT; k++) {
        lf_sampler_config c;
        lf_sampler_config_default(&c, (lf_sampler_kind)k);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", lf_sampler_config_name(&c));
        cJSON_AddArrayToObject(o, "aliases");
        cJSON *opt = cJSON_AddObjectToObject(o, "options");
        if (k == LF_SAMPLER_DPMPP_2M) cJSON_AddStringToObject(opt, "scheduler", "karras");
        cJSON_AddItemToArray(a, o);
    }
    return lf_ok(a);
}

static lf_srv_resp lf_srv_schedulers(void) {
    static const struct {
        const char *name, *label;
        double rho;
    } sch[] = {{"automatic", "Automatic", -1}, {"karras", "Karras", 7}};
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < sizeof sch / sizeof *sch; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", sch[i].name);
        cJSON_AddStringToObject(o, "label", sch[i].label);
        cJSON_AddNullToObject(o, "aliases");
        cJSON_AddNumberToObject(o, "default_rho", sch[i].rho);
        cJSON_AddFalseToObject(o, "need_inner_model");
        cJSON_AddItemToArray(a, o);
    }
    return lf_ok(a);
}

static lf_srv_resp lf_srv_models(const lf_serve *s) {
    cJSON *a = cJSON_CreateArray();
    cJSON *o = cJSON_CreateObject();
    char *abs = realpath(lf_gen_session_model(s->sess), NULL);
    cJSON_AddStringToObject(o, "title", s->model_title);
    cJSON_AddStringToObject(o, "model_name", s->model_name);
    cJSON_AddStringToObject(o, "hash", lf_gen_session_hash(s->sess));
    cJSON_AddNullToObject(o, "sha256");
    cJSON_AddStringToObject(o, "filename", abs ? abs : lf_gen_session_model(s->sess));
    cJSON_AddNullToObject(o, "config");
    free(abs);
    cJSON_AddItemToArray(a, o);
    return lf_ok(a);
}

static char *lf_srv_join(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    char *p = malloc(na + nb + 2);
    if (p) snprintf(p, na + nb + 2, "%s/%s", a, b);
    return p;
}

/* 1 when path lies inside the directory whose real path is root (no link leads out). */
static int lf_inside(const char *root, const char *path) {
    char *r = realpath(path, NULL);
    size_t n = strlen(root);
    int in = r && !strncmp(r, root, n) && r[n] == '/';
    free(r);
    return in;
}

/* Every adapter file of the LoRA directory, read now (a file added, changed or removed shows at once). */
static lf_srv_resp lf_srv_loras(const lf_serve *s) {
    const char *dir = s->o.lora_dir ? s->o.lora_dir : LF_LORA_DIR_DEFAULT;
    lf_lora_dir_opts lo = {1};
    lf_lora_dir *d = NULL;
    if (lf_lora_dir_scan(dir, &lo, &d) != LF_OK) return lf_srv_resp_detail(500, lf_last_error());
    char *root = realpath(dir, NULL);
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < lf_lora_dir_count(d); i++) {
        const char *rel = lf_lora_dir_at(d, i);
        const char *b = lf_basename(rel);
        size_t bl = strlen(b);
        if (lf_has_suffix(b, ".safetensors")) bl -= strlen(".safetensors");
        char *full = lf_srv_join(dir, rel);
        char *name = malloc(bl + 1);
        if (name) {
            memcpy(name, b, bl);
            name[bl] = '\0';
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", name ? name : "");
        const char *alias = name ? name : "";
        cJSON *meta = cJSON_CreateObject();
        lf_st_file *f = NULL;
        if (full && root && lf_inside(root, full) && lf_st_open(full, &f) == LF_OK) {
            for (size_t k = 0; k < lf_st_meta_count(f); k++) {
                const lf_st_kv *kv = lf_st_meta_at(f, k);
                cJSON_AddStringToObject(meta, kv->key, kv->value);
            }
            const char *on = lf_st_meta(f, "ss_output_name");
            if (on && *on) alias = on;
        }
        cJSON_AddStringToObject(o, "alias", alias);
        cJSON_AddStringToObject(o, "path", full ? full : rel);
        cJSON_AddItemToObject(o, "metadata", meta);
        cJSON_AddItemToArray(a, o);
        lf_st_close(f);
        free(name);
        free(full);
    }
    free(root);
    lf_lora_dir_free(d);
    return lf_ok(a);
}

static lf_srv_resp lf_srv_options_get(lf_serve *s) {
    pthread_mutex_lock(&s->mu);
    lf_srv_settings set = s->set;
    pthread_mutex_unlock(&s->mu);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "sd_model_checkpoint", s->model_title);
    cJSON_AddNumberToObject(o, "CLIP_stop_at_last_layers", set.clip_skip);
    cJSON_AddStringToObject(o, "randn_source", lf_srv_rng_name(set.rng));
    cJSON_AddStringToObject(o, "samples_format", "png");
    cJSON_AddStringToObject(o, "outdir_txt2img_samples", s->o.output_dir ? s->o.output_dir : "");
    return lf_ok(o);
}

static lf_srv_resp lf_srv_options_post(lf_serve *s, const char *body, size_t n) {
    pthread_mutex_lock(&s->mu);
    lf_srv_settings set = s->set;
    pthread_mutex_unlock(&s->mu);
    lf_srv_resp r = lf_srv_parse_options(body, n, &set);
    if (r.status == 200) {
        pthread_mutex_lock(&s->mu);
        s->set.clip_skip = set.clip_skip;
        s->set.rng = set.rng;
        pthread_mutex_unlock(&s->mu);
    }
    return r;
}

static lf_srv_resp lf_srv_progress_get(lf_serve *s) {
    pthread_mutex_lock(&s->mu);
    int busy = s->running > 0, running = s->running, step = s->step, steps = s->steps, run = s->run, runs = s->runs;
    int queued = s->n_queued, interrupted = s->interrupt && busy;
    double t0 = s->t_job;
    long long job_no = (long long)s->job_no;
    char ts[32];
    snprintf(ts, sizeof ts, "%s", busy ? s->job_timestamp : "0");
    pthread_mutex_unlock(&s->mu);
    double progress = busy && steps > 0 && runs > 0 ? ((double)(run - 1) * steps + step) / ((double)runs * steps) : 0;
    double el = busy ? lf_clock_s() - t0 : 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "progress", progress);
    cJSON_AddNumberToObject(o, "eta_relative", progress > 0 ? el / progress - el : 0);
    cJSON *st = cJSON_AddObjectToObject(o, "state");
    cJSON_AddFalseToObject(st, "skipped");
    cJSON_AddBoolToObject(st, "interrupted", interrupted);
    cJSON_AddFalseToObject(st, "stopping_generation");
    cJSON_AddStringToObject(st, "job", busy ? "txt2img" : "");
    cJSON_AddNumberToObject(st, "job_count", queued + running);
    cJSON_AddStringToObject(st, "job_timestamp", ts);
    cJSON_AddNumberToObject(st, "job_no", (double)job_no);
    cJSON_AddNumberToObject(st, "sampling_step", busy ? step : 0);
    cJSON_AddNumberToObject(st, "sampling_steps", busy ? steps : 0);
    cJSON_AddNullToObject(o, "current_image");
    cJSON_AddNullToObject(o, "textinfo");
    return lf_ok(o);
}

static lf_srv_resp lf_srv_interrupt(lf_serve *s) {
    pthread_mutex_lock(&s->mu);
    if (s->running) s->interrupt = 1;
    pthread_mutex_unlock(&s->mu);
    return lf_ok(cJSON_CreateObject());
}

static lf_srv_resp lf_srv_health(lf_serve *s) {
    pthread_mutex_lock(&s->mu);
    int busy = s->running > 0, running = s->running, queued = s->n_queued, stopping = s->stopping;
    lf_srv_batch_stats bs = s->batch;
    pthread_mutex_unlock(&s->mu);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", stopping ? "stopping" : "ok");
    cJSON_AddStringToObject(o, "model", s->model_title);
    cJSON_AddBoolToObject(o, "busy", busy);
    cJSON_AddNumberToObject(o, "queued", queued);
    cJSON_AddNumberToObject(o, "queue_size", s->o.queue);
    cJSON_AddNumberToObject(o, "running", running);
    cJSON *b = cJSON_AddObjectToObject(o, "batching");
    cJSON_AddNumberToObject(b, "max_batch", s->o.max_batch);
    cJSON_AddStringToObject(b, "lora", s->o.batch_merged ? "merged" : "unmerged");
    cJSON_AddNumberToObject(b, "batches", (double)bs.batches);
    cJSON_AddNumberToObject(b, "batched_requests", (double)bs.batched);
    cJSON_AddNumberToObject(b, "largest", bs.largest);
    lf_srv_cache_info ci;
    lf_srv_cache_stats(s->cache, &ci);
    cJSON *c = cJSON_AddObjectToObject(o, "lora_cache");
    cJSON_AddNumberToObject(c, "entries", (double)ci.entries);
    cJSON_AddNumberToObject(c, "bytes", (double)ci.bytes);
    cJSON_AddNumberToObject(c, "limit", (double)ci.limit);
    cJSON_AddNumberToObject(c, "hits", (double)ci.hits);
    cJSON_AddNumberToObject(c, "misses", (double)ci.misses);
    return (lf_srv_resp){stopping ? 503 : 200, o, 0};
}

static lf_srv_resp lf_srv_png_info(const char *body, size_t n) {
    cJSON *j = cJSON_ParseWithLength(body, n);
    const cJSON *im = j ? cJSON_GetObjectItemCaseSensitive(j, "image") : NULL;
    if (!cJSON_IsString(im)) {
        cJSON_Delete(j);
        return lf_srv_resp_422("image", "string_type", "image: a base64 PNG is required");
    }
    const char *b = im->valuestring, *comma = strchr(b, ',');
    if (!strncmp(b, "data:", 5) && comma) b = comma + 1; /* a data URL, as A1111's decode_base64_to_image takes */
    size_t len = 0;
    uint8_t *png = lf_srv_b64_decode(b, strlen(b), &len);
    cJSON_Delete(j);
    if (!png) return lf_srv_resp_422("image", "value_error", "image: not base64");
    char *text = NULL;
    lf_status st = lf_png_read_mem(png, len, NULL, NULL, NULL, "parameters", &text);
    free(png);
    if (st != LF_OK) return lf_srv_resp_422("image", "value_error", "image: %s", lf_last_error());
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "info", text ? text : "");
    cJSON_AddObjectToObject(o, "items");
    cJSON *p = cJSON_AddObjectToObject(o, "parameters");
    lf_infotext_parsed ip;
    if (text && lf_infotext_parse(text, &ip) == LF_OK) {
        cJSON_AddStringToObject(p, "Prompt", ip.prompt ? ip.prompt : "");
        cJSON_AddStringToObject(p, "Negative prompt", ip.negative ? ip.negative : "");
        for (size_t i = 0; i < ip.n_kv; i++) cJSON_AddStringToObject(p, ip.kv[i].key, ip.kv[i].value);
        lf_infotext_parsed_free(&ip);
    }
    free(text);
    return lf_ok(o);
}

static lf_srv_resp lf_srv_txt2img(lf_serve *s, const char *body, size_t n) {
    pthread_mutex_lock(&s->mu);
    lf_srv_settings set = s->set;
    pthread_mutex_unlock(&s->mu);
    lf_srv_req *q = NULL;
    lf_srv_resp r = lf_srv_parse_txt2img(body, n, &s->o.limits, &set, s->o.output_dir != NULL, &q);
    if (!q) return r;
    return lf_srv_submit(s, q);
}

lf_srv_resp lf_srv_route(lf_serve *s, const char *method, const char *url, const char *body, size_t n) {
    int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    static const struct {
        const char *path;
        int post;
    } routes[] = {{"/sdapi/v1/samplers", 0},  {"/sdapi/v1/schedulers", 0},    {"/sdapi/v1/sd-models", 0},
                  {"/sdapi/v1/loras", 0},     {"/sdapi/v1/progress", 0},      {"/health", 0},
                  {"/sdapi/v1/txt2img", 1},   {"/sdapi/v1/interrupt", 1},     {"/sdapi/v1/refresh-loras", 1},
                  {"/sdapi/v1/png-info", 1},  {"/sdapi/v1/options", 2}};
    int known = -1;
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
        if (!strcmp(url, routes[i].path)) known = routes[i].post;
    if (known < 0) return lf_srv_resp_detail(404, "Not Found");
    if ((known == 0 && !get) || (known == 1 && !post) || (known == 2 && !get && !post))
        return lf_srv_resp_detail(405, "Method Not Allowed");
    if (!strcmp(url, "/health")) return lf_srv_health(s);
    const char *p = url + strlen("/sdapi/v1/"); /* every other route has that prefix */
    if (!strcmp(p, "samplers")) return lf_srv_samplers();
    if (!strcmp(p, "schedulers")) return lf_srv_schedulers();
    if (!strcmp(p, "sd-models")) return lf_srv_models(s);
    if (!strcmp(p, "loras")) return lf_srv_loras(s);
    if (!strcmp(p, "progress")) return lf_srv_progress_get(s);
    if (!strcmp(p, "options")) return get ? lf_srv_options_get(s) : lf_srv_options_post(s, body, n);
    if (!strcmp(p, "interrupt")) return lf_srv_interrupt(s);
    if (!strcmp(p, "refresh-loras")) { /* the directory is read per request; the opened files are dropped */
        lf_srv_cache_clear(s->cache);
        return lf_ok(cJSON_CreateObject());
    }
    if (!strcmp(p, "png-info")) return lf_srv_png_info(body, n);
    return lf_srv_txt2img(s, body, n);
}
