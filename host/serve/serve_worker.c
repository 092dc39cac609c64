/* serve_worker.c: the job queue and the one worker thread that runs txt2img jobs on the resident
 * session (lf_generate.h), in arrival order.
 *
 * A connection thread queues its checked request (at most opts.queue waiting, else 503 with
 * Retry-After) and sleeps until the worker marks the job done. The worker takes the head of the queue
 * and every queued request that may share its batch (lf_gen_groupable: size, steps, sampler, CFG, clip
 * skip, RNG; at most --max-batch images and --max-pixels pixels in all): one request runs alone
 * (lf_gen_open_in), several as one lf_gen_open_group call. It runs them without holding the lock
 * (progress and the interrupt flag are read and written under s->mu between steps), and fills each
 * job's response as soon as the job's last image is made:
 *   200 {"images": [base64 PNG, ...], "parameters": {request fields}, "info": "<JSON text>"}, the PNG
 *       bytes those `lorafuse generate` writes for the same settings (same parameters text; in a batch
 *       with others the same bytes too with opts.batch_merged, the default, else within the mixed
 *       batch's bound: docs/serve.md);
 *   422 when the job's own checks refuse it (a tag, an unknown LoRA name with the closest names, an
 *       adapter that does not fit the model); 500 {"error", "detail", "body", "errors"} (A1111's shape)
 *       when the job fails while running. A batch whose checks or run fail runs its requests not yet
 *       answered again one by one, so one request's error is never another's.
 * An interrupt stops the running batch at its next step; each of its requests not yet answered gets
 * the images finished before.
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

/* One finished image into its request's arrays (ctx: the lf_srv_job): seed, infotext, and the PNG
 * (base64) when it is sent. */
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
    /* the worker's run this request was part of (--max-batch): requests and images in it, its place */
    cJSON *lb = cJSON_AddObjectToObject(o, "lorafuse_batch");
    cJSON_AddNumberToObject(lb, "requests", j->batch_requests);
    cJSON_AddNumberToObject(lb, "images", j->batch_images);
    cJSON_AddNumberToObject(lb, "index", j->batch_index);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* A request's generate options on the server's session. */
static void lf_srv_opts(const lf_serve *s, const lf_srv_req *q, lf_gen_opts *o) {
    lf_gen_opts_default(o);
    o->prompt = q->prompt;
    o->negative = q->negative;
    o->steps = q->steps;
    o->sampler = q->sampler;
    o->cfg = q->cfg;
    o->seed = q->seed;
    o->width = q->width;
    o->height = q->height;
    o->batch_size = q->batch_size;
    o->batch_count = q->n_iter;
    o->lora_dir = s->o.lora_dir;
    o->lora_dir_confine = 1;
    o->output_dir = s->o.output_dir;
    o->write_png = q->save_images;
    o->rng = q->rng;
    o->clip_skip = q->clip_skip;
    o->backend = s->o.backend;
    o->adapters = &s->src;
    o->batch_merged = s->o.batch_merged;
}

/* The answer to a job whose checks refused it. */
static lf_srv_resp lf_srv_open_failed(const lf_srv_req *q, lf_status st) {
    lf_err_escape(LF_OK);
    if (st == LF_ERR_NOMEM || st == LF_ERR_IO || st == LF_ERR_DEVICE) return lf_srv_resp_500(st, lf_last_error());
    /* the job's checks: the prompt's tags and adapters, or a value the parser let through */
    return lf_srv_resp_422(strchr(q->prompt, '<') ? "prompt" : NULL, "value_error", "%s", lf_last_error());
}

static void lf_srv_arrays_free(lf_srv_job *j) {
    cJSON_Delete(j->images);
    cJSON_Delete(j->seeds);
    cJSON_Delete(j->infotexts);
    j->images = j->seeds = j->infotexts = NULL;
}

static lf_status lf_srv_arrays_new(lf_srv_job *j) {
    lf_srv_arrays_free(j);
    j->images = cJSON_CreateArray();
    j->seeds = cJSON_CreateArray();
    j->infotexts = cJSON_CreateArray();
    return !j->images || !j->seeds || !j->infotexts ? lf_err(LF_ERR_NOMEM, "out of memory") : LF_OK;
}

/* The answer to a job that ran (st: how its run ended; in: its own summary), its arrays consumed. */
static lf_srv_resp lf_srv_answer(lf_serve *s, lf_srv_job *j, lf_status st, const lf_gen_info *in,
                                 const lf_gen_times *t, int interrupted) {
    lf_srv_resp r;
    if (st != LF_OK) {
        lf_err_escape(LF_OK);
        r = lf_srv_resp_500(st, lf_last_error());
    } else {
        char *info = lf_srv_info(s, j, in, t, interrupted);
        r = (lf_srv_resp){200, cJSON_CreateObject(), 0};
        cJSON_AddItemToObject(r.body, "images", j->images);
        j->images = NULL;
        cJSON_AddItemToObject(r.body, "parameters", cJSON_Duplicate(j->req->params, 1));
        cJSON_AddStringToObject(r.body, "info", info ? info : "{}");
        free(info);
    }
    lf_srv_arrays_free(j);
    return r;
}

/* Hand a job its response: its connection thread wakes, sends it and frees the job. */
static void lf_srv_finish(lf_serve *s, lf_srv_job *j, lf_srv_resp r) {
    pthread_mutex_lock(&s->mu);
    j->resp = r;
    j->done = 1;
    s->running--;
    pthread_cond_broadcast(&s->cv_done);
    pthread_mutex_unlock(&s->mu);
}

/* One request alone (lf_gen_open_in). */
static lf_srv_resp lf_srv_run(lf_serve *s, lf_srv_job *j) {
    lf_gen_opts o;
    lf_srv_opts(s, j->req, &o);
    lf_gen *g = NULL;
    lf_status st = lf_gen_open_in(s->sess, &o, &g);
    if (st != LF_OK) return lf_srv_open_failed(j->req, st);
    lf_gen_set_progress(g, lf_srv_progress, s);
    lf_gen_set_cancel(g, lf_srv_cancel, s);
    st = lf_srv_arrays_new(j);
    if (st == LF_OK) st = lf_gen_run(g, lf_srv_image, j);
    lf_srv_resp r = lf_srv_answer(s, j, st, lf_gen_get_info(g), lf_gen_get_times(g), lf_gen_interrupted(g));
    lf_gen_free(g);
    return r;
}

/* Several requests in one call (lf_gen_open_group); a request is answered as soon as its last image is
 * made, so its connection does not wait for the others. */
typedef struct {
    lf_serve *s;
    lf_srv_job **jobs;
    int *answered;
    lf_gen *g;
} lf_srv_group;

static lf_status lf_srv_group_image(void *ctx, const lf_gen_image *im) {
    lf_srv_group *b = ctx;
    lf_srv_job *j = b->jobs[im->job];
    lf_status st = lf_srv_image(j, im);
    if (st != LF_OK || cJSON_GetArraySize(j->seeds) < j->n_images) return st;
    b->answered[im->job] = 1;
    lf_srv_finish(b->s, j, lf_srv_answer(b->s, j, LF_OK, lf_gen_get_job_info(b->g, (size_t)im->job),
                                         lf_gen_get_times(b->g), 0));
    return LF_OK;
}

/* Run jobs[0..n) and answer each. When the group's checks or its run fail, the requests not yet answered
 * run again one by one, so that each gets the answer it gets alone (its own 422 or 500, or its images). */
static void lf_srv_run_batch(lf_serve *s, lf_srv_job **jobs, int n) {
    if (n == 1) {
        lf_srv_finish(s, jobs[0], lf_srv_run(s, jobs[0]));
        return;
    }
    int imgs = 0;
    for (int k = 0; k < n; k++) imgs += jobs[k]->n_images;
    for (int k = 0; k < n; k++) jobs[k]->batch_index = k, jobs[k]->batch_requests = n, jobs[k]->batch_images = imgs;
    lf_gen_opts *o = calloc((size_t)n, sizeof *o);
    int *answered = calloc((size_t)n, sizeof *answered);
    lf_gen *g = NULL;
    lf_status st = LF_ERR_NOMEM;
    if (o && answered) {
        for (int k = 0; k < n; k++) lf_srv_opts(s, jobs[k]->req, &o[k]);
        st = lf_gen_open_group(s->sess, o, (size_t)n, &g);
        for (int k = 0; k < n && st == LF_OK; k++) st = lf_srv_arrays_new(jobs[k]);
    }
    if (st == LF_OK) {
        lf_srv_group b = {s, jobs, answered, g};
        lf_gen_set_progress(g, lf_srv_progress, s);
        lf_gen_set_cancel(g, lf_srv_cancel, s);
        st = lf_gen_run(g, lf_srv_group_image, &b);
    }
    if (st != LF_OK) lf_err_clear();
    for (int k = 0; k < n; k++) {
        if (answered && answered[k]) continue;
        lf_srv_job *j = jobs[k];
        lf_srv_resp r;
        if (st == LF_OK) { /* stopped early: the images made so far */
            r = lf_srv_answer(s, j, LF_OK, lf_gen_get_job_info(g, (size_t)k), lf_gen_get_times(g), lf_gen_interrupted(g));
        } else {
            lf_srv_arrays_free(j);
            j->batch_index = 0, j->batch_requests = 1, j->batch_images = j->n_images;
            r = lf_srv_run(s, j);
        }
        lf_srv_finish(s, j, r);
    }
    lf_gen_free(g);
    free(o);
    free(answered);
}

/* ---- the queue -------------------------------------------------------------------------------- */
/* Take the head of the queue and the queued requests that may share its batch (same shape by
 * lf_gen_groupable, at most max_batch images and max_pixels pixels in all) into jobs; *n of them. A
 * request that cannot join stays queued and keeps its place: it heads a later run. Under s->mu. */
static int lf_srv_take(lf_serve *s, lf_srv_job **jobs) {
    lf_srv_job *h = s->head;
    s->head = h->next;
    s->n_queued--;
    jobs[0] = h;
    int n = 1, imgs = h->n_images;
    lf_gen_opts o0, oj;
    lf_srv_opts(s, h->req, &o0);
    int64_t px = (int64_t)h->req->width * h->req->height;
    for (lf_srv_job **link = &s->head; *link && imgs < s->o.max_batch;) {
        lf_srv_job *j = *link;
        lf_srv_opts(s, j->req, &oj);
        if (imgs + j->n_images <= s->o.max_batch && px * (imgs + j->n_images) <= s->o.limits.max_pixels &&
            lf_gen_groupable(&o0, &oj, NULL, 0)) {
            *link = j->next;
            s->n_queued--;
            jobs[n++] = j;
            imgs += j->n_images;
        } else {
            link = &j->next;
        }
    }
    s->tail = NULL;
    for (lf_srv_job *j = s->head; j; j = j->next) s->tail = j;
    return n;
}

static void *lf_srv_worker_main(void *arg) {
    lf_serve *s = arg;
    lf_srv_job *jobs[LF_SERVE_MAX_BATCH];
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->head && !s->stopping) pthread_cond_wait(&s->cv_work, &s->mu);
        if (!s->head) break;
        int n = lf_srv_take(s, jobs);
        s->running = n;
        if (n > 1) {
            s->batch.batches++;
            s->batch.batched += (uint64_t)n;
        }
        if (n > s->batch.largest) s->batch.largest = n;
        s->interrupt = s->stopping;
        s->job_no++;
        s->step = 0;
        s->steps = jobs[0]->req->steps;
        s->run = 1;
        s->runs = 1;
        s->t_job = lf_clock_s();
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(s->job_timestamp, sizeof s->job_timestamp, "%Y%m%d%H%M%S", &tm);
        pthread_mutex_unlock(&s->mu);
        lf_srv_run_batch(s, jobs, n);
        pthread_mutex_lock(&s->mu);
        s->running = 0;
        s->interrupt = 0;
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
    j->n_images = req->batch_size * req->n_iter;
    j->batch_requests = 1;
    j->batch_images = j->n_images;
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
