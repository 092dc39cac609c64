/* serve_worker.c: the job queue and the one worker thread that runs txt2img jobs on the resident
 * session (lf_generate.h lf_gen_open_in / lf_gen_run), in arrival order.
 *
 * A connection thread queues its checked request (at most opts.queue waiting, else 503 with
 * Retry-After) and sleeps until the worker marks the job done; the worker takes the next job, runs it
 * without holding the lock (progress and the interrupt flag are read and written under s->mu between
 * steps), and fills the job's response:
 *   200 {"images": [base64 PNG, ...], "parameters": {request fields}, "info": "<JSON text>"}, the PNG
 *       bytes those `lorafuse generate` writes for the same settings (same parameters text);
 *   422 when the job's own checks refuse it (a tag, an unknown LoRA name with the closest names, an
 *       adapter that does not fit the model); 500 {"error", "detail", "body", "errors"} (A1111's shape)
 *       when the job fails while running.
 * An interrupt stops the running job at its next step; its response holds the images finished before.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve_internal.h"
#include "host/base/text.h"
#include "host/base/util.h"
#include "lorafuse/lf_config.h"
#include "lorafuse/lf_png.h"

/* ---- one job ---------------------------------------------------------------------------------- */
static void lf_srv_progress(void *ctx, const lf_gen_progress *p) {
    lf_serve *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->step = p->step;
    s->steps = p->steps;
    s->run = p->run;
    s->runs = p->runs;
    pthread_mutex_unlock(&s->mu);
}

static int lf_srv_cancel(void *ctx) {
    lf_serve *s = ctx;
    pthread_mutex_lock(&s->mu);
    int v = s->interrupt;
    pthread_mutex_unlock(&s->mu);
    return v;
}

static lf_status lf_srv_image(void *ctx, const lf_gen_image *im) {
    lf_srv_job *j = ctx;
    char seed[24];
    snprintf(seed, sizeof seed, "%lld", (long long)im->seed);
    cJSON_AddItemToArray(j->seeds, cJSON_CreateRaw(seed));
    cJSON_AddItemToArray(j->infotexts, cJSON_CreateString(im->parameters));
    if (!j->req->send_images) return LF_OK;
    const char *key = "parameters";
    uint8_t *png = NULL;
    size_t n = 0;
    lf_status st = lf_png_encode_mem(im->rgb, im->width, im->height, &key, &im->parameters, 1, &png, &n);
    if (st != LF_OK) return st;
    char *b64 = lf_srv_b64_encode(png, n);
    free(png);
    if (!b64) return lf_err(LF_ERR_NOMEM, "out of memory");
    cJSON_AddItemToArray(j->images, cJSON_CreateString(b64));
    free(b64);
    return LF_OK;
}

/* A1111's 500 body. */
static lf_srv_resp lf_srv_resp_500(lf_status st, const char *msg) {
    lf_srv_resp r = {500, cJSON_CreateObject(), 0};
    cJSON_AddStringToObject(r.body, "error", lf_status_str(st));
    cJSON_AddStringToObject(r.body, "detail", "");
    cJSON_AddStringToObject(r.body, "body", "");
    cJSON_AddStringToObject(r.body, "errors", msg);
    return r;
}

static cJSON *lf_srv_repeat(const char *s, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(s));
    return a;
}

/* The "info" text of a finished job: A1111's Processed.js() fields that apply. */
static char *lf_srv_info(const lf_serve *s, const lf_srv_job *j, const lf_gen_info *in, const lf_gen_times *t,
                         int interrupted) {
    const lf_srv_req *q = j->req;
    int n = cJSON_GetArraySize(j->seeds);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "prompt", in->infotext_prompt);
    cJSON_AddItemToObject(o, "all_prompts", lf_srv_repeat(in->infotext_prompt, n));
    cJSON_AddStringToObject(o, "negative_prompt", q->negative);
    cJSON_AddItemToObject(o, "all_negative_prompts", lf_srv_repeat(q->negative, n));
    cJSON *first = cJSON_GetArrayItem(j->seeds, 0);
    cJSON_AddItemToObject(o, "seed", first ? cJSON_CreateRaw(first->valuestring) : cJSON_CreateNumber((double)q->seed));
    cJSON_AddItemToObject(o, "all_seeds", cJSON_Duplicate(j->seeds, 1));
    cJSON_AddNumberToObject(o, "subseed", -1);
    cJSON_AddNumberToObject(o, "subseed_strength", 0);
    cJSON_AddNumberToObject(o, "width", in->width);
    cJSON_AddNumberToObject(o, "height", in->height);
    cJSON_AddStringToObject(o, "sampler_name", in->sampler);
    cJSON_AddNumberToObject(o, "cfg_scale", in->cfg);
    cJSON_AddNumberToObject(o, "steps", in->steps);
    cJSON_AddNumberToObject(o, "batch_size", in->batch_size);
    cJSON_AddFalseToObject(o, "restore_faces");
    cJSON_AddNullToObject(o, "face_restoration_model");
    cJSON_AddStringToObject(o, "sd_model_name", s->model_name);
    cJSON_AddStringToObject(o, "sd_model_hash", lf_gen_session_hash(s->sess));
    cJSON_AddNullToObject(o, "sd_vae_name");
    cJSON_AddNullToObject(o, "sd_vae_hash");
    cJSON_AddNumberToObject(o, "seed_resize_from_w", -1);
    cJSON_AddNumberToObject(o, "seed_resize_from_h", -1);
    cJSON_AddNullToObject(o, "denoising_strength");
    cJSON_AddObjectToObject(o, "extra_generation_params");
    cJSON_AddNumberToObject(o, "index_of_first_image", 0);
    cJSON_AddItemToObject(o, "infotexts", cJSON_Duplicate(j->infotexts, 1));
    cJSON_AddArrayToObject(o, "styles");
    cJSON_AddStringToObject(o, "job_timestamp", s->job_timestamp);
    cJSON_AddNumberToObject(o, "clip_skip", q->clip_skip > 1 ? q->clip_skip : 1);
    cJSON_AddFalseToObject(o, "is_using_inpainting_conditioning");
    cJSON_AddStringToObject(o, "version", "lorafuse " LF_VERSION);
    cJSON_AddBoolToObject(o, "interrupted", interrupted);
    /* where the time went (seconds) and how many loaded weights were rewritten, restores included */
    cJSON *lt = cJSON_AddObjectToObject(o, "lorafuse_timings");
    cJSON_AddNumberToObject(lt, "text_encoders", t->encode);
    cJSON_AddNumberToObject(lt, "weights", t->weights);
    cJSON_AddNumberToObject(lt, "unet", t->unet);
    cJSON_AddNumberToObject(lt, "vae", t->decode);
    cJSON_AddNumberToObject(lt, "weight_updates", (double)t->weight_updates);
    cJSON_AddNumberToObject(lt, "te_runs", (double)t->te_runs);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static lf_srv_resp lf_srv_run(lf_serve *s, lf_srv_job *j) {
    const lf_srv_req *q = j->req;
    lf_gen_opts o;
    lf_gen_opts_default(&o);
    o.prompt = q->prompt;
    o.negative = q->negative;
    o.steps = q->steps;
    o.sampler = q->sampler;
    o.cfg = q->cfg;
    o.seed = q->seed;
    o.width = q->width;
    o.height = q->height;
    o.batch_size = q->batch_size;
    o.batch_count = q->n_iter;
    o.lora_dir = s->o.lora_dir;
    o.lora_dir_confine = 1;
    o.output_dir = s->o.output_dir;
    o.write_png = q->save_images;
    o.rng = q->rng;
    o.clip_skip = q->clip_skip;
    o.backend = s->o.backend;
    o.adapters = &s->src;
    lf_gen *g = NULL;
    lf_status st = lf_gen_open_in(s->sess, &o, &g);
    if (st != LF_OK) {
        lf_err_escape(LF_OK);
        if (st == LF_ERR_NOMEM || st == LF_ERR_IO || st == LF_ERR_DEVICE) return lf_srv_resp_500(st, lf_last_error());
        /* the job's checks: the prompt's tags and adapters, or a value the parser let through */
        return lf_srv_resp_422(strchr(q->prompt, '<') ? "prompt" : NULL, "value_error", "%s", lf_last_error());
    }
    j->images = cJSON_CreateArray();
    j->seeds = cJSON_CreateArray();
    j->infotexts = cJSON_CreateArray();
    lf_gen_set_progress(g, lf_srv_progress, s);
    lf_gen_set_cancel(g, lf_srv_cancel, s);
    st = !j->images || !j->seeds || !j->infotexts ? lf_err(LF_ERR_NOMEM, "out of memory") : lf_gen_run(g, lf_srv_image, j);
    lf_srv_resp r;
    if (st != LF_OK) {
        lf_err_escape(LF_OK);
        r = lf_srv_resp_500(st, lf_last_error());
    } else {
        char *info = lf_srv_info(s, j, lf_gen_get_info(g), lf_gen_get_times(g), lf_gen_interrupted(g));
        r = (lf_srv_resp){200, cJSON_CreateObject(), 0};
        cJSON_AddItemToObject(r.body, "images", j->images);
        j->images = NULL;
        cJSON_AddItemToObject(r.body, "parameters", cJSON_Duplicate(q->params, 1));
        cJSON_AddStringToObject(r.body, "info", info ? info : "{}");
        free(info);
    }
    cJSON_Delete(j->images);
    cJSON_Delete(j->seeds);
    cJSON_Delete(j->infotexts);
    j->images = j->seeds = j->infotexts = NULL;
    lf_gen_free(g);
    return r;
}

/* ---- the queue -------------------------------------------------------------------------------- */
static void *lf_srv_worker_main(void *arg) {
    lf_serve *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->head && !s->stopping) pthread_cond_wait(&s->cv_work, &s->mu);
        if (!s->head) break;
        lf_srv_job *j = s->head;
        s->head = j->next;
        if (!s->head) s->tail = NULL;
        s->n_queued--;
        s->cur = j;
        s->interrupt = s->stopping;
        s->job_no++;
        s->step = 0;
        s->steps = j->req->steps;
        s->run = 1;
        s->runs = 1;
        s->t_job = lf_clock_s();
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(s->job_timestamp, sizeof s->job_timestamp, "%Y%m%d%H%M%S", &tm);
        pthread_mutex_unlock(&s->mu);
        lf_srv_resp r = lf_srv_run(s, j);
        pthread_mutex_lock(&s->mu);
        j->resp = r;
        j->done = 1;
        s->cur = NULL;
        s->interrupt = 0;
        pthread_cond_broadcast(&s->cv_done);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

lf_status lf_srv_worker_start(lf_serve *s) {
    if (pthread_create(&s->worker, NULL, lf_srv_worker_main, s) != 0)
        return lf_err(LF_ERR_NOMEM, "serve: cannot start the worker thread");
    s->worker_started = 1;
    return LF_OK;
}

lf_srv_resp lf_srv_submit(lf_serve *s, lf_srv_req *req) {
    lf_srv_job *j = calloc(1, sizeof *j);
    if (!j) {
        lf_srv_req_free(req);
        return lf_srv_resp_detail(500, "out of memory");
    }
    j->req = req;
    lf_srv_resp r;
    pthread_mutex_lock(&s->mu);
    if (s->stopping || s->n_queued >= s->o.queue) {
        int stopping = s->stopping;
        pthread_mutex_unlock(&s->mu);
        char msg[128];
        snprintf(msg, sizeof msg, stopping ? "the server is shutting down" : "the queue is full (%d jobs waiting)",
                 s->o.queue);
        r = lf_srv_resp_detail(503, msg);
        r.retry_after = stopping ? 0 : 5;
        lf_srv_req_free(req);
        free(j);
        return r;
    }
    if (s->tail) s->tail->next = j;
    else s->head = j;
    s->tail = j;
    s->n_queued++;
    pthread_cond_signal(&s->cv_work);
    while (!j->done) pthread_cond_wait(&s->cv_done, &s->mu);
    pthread_mutex_unlock(&s->mu);
    r = j->resp;
    lf_srv_req_free(req);
    free(j);
    return r;
}

void lf_srv_worker_stop(lf_serve *s) {
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    s->interrupt = 1;
    for (lf_srv_job *j = s->head, *nx; j; j = nx) {
        nx = j->next;
        j->resp = lf_srv_resp_detail(503, "the server is shutting down");
        j->done = 1;
    }
    s->head = s->tail = NULL;
    s->n_queued = 0;
    pthread_cond_broadcast(&s->cv_work);
    pthread_cond_broadcast(&s->cv_done);
    pthread_mutex_unlock(&s->mu);
    if (s->worker_started) pthread_join(s->worker, NULL);
    s->worker_started = 0;
}
