/* serve_internal.h: the state of one lf_serve (lf_serve.h) and the functions its files share.
 *
 *   serve_http.c     lf_serve_start/stop, libmicrohttpd glue: bodies, auth, routing, responses
 *   serve_api.c      the endpoints that answer from the server's state (models, LoRAs, samplers,
 *                    options, progress, png-info)
 *   serve_worker.c   the job queue, the worker thread and one txt2img job on the resident session
 *   serve_request.c  a txt2img JSON body -> a checked request (A1111's field names and defaults)
 *   serve_b64.c      base64 and constant-time comparison
 *
 * Calls go serve_http.c -> serve_api.c -> serve_worker.c -> serve_request.c -> serve_b64.c.
 * Locking: s->mu guards the queue, the running job's progress, the interrupt flag and the options;
 * the worker holds it only between steps, never while sampling.
 */
#ifndef LF_SERVE_INTERNAL_H
#define LF_SERVE_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "lorafuse/lf_generate.h"
#include "lorafuse/lf_rng.h"
#include "lorafuse/lf_serve.h"

/* A response: HTTP status, JSON body (owned), optional Retry-After seconds. */
typedef struct lf_srv_resp {
    int status;
    cJSON *body;
    int retry_after;
} lf_srv_resp;

/* A checked txt2img request (serve_request.c). */
typedef struct lf_srv_req {
    char *prompt, *negative;
    char sampler[64];           /* a name lf_sampler_config_from_name takes */
    int steps, width, height, batch_size, n_iter, clip_skip;
    double cfg;
    int64_t seed;
    lf_rng_kind rng;
    int send_images, save_images;
    cJSON *params;              /* every A1111 request field with its value (the response's "parameters") */
} lf_srv_req;

/* Server-wide settings a request may override (GET/POST /sdapi/v1/options). */
typedef struct lf_srv_settings {
    int clip_skip;              /* CLIP_stop_at_last_layers (1: the last layer) */
    lf_rng_kind rng;            /* randn_source */
    const char *model_title;    /* the loaded model as sd_model_checkpoint names it: "NAME.safetensors [HASH]", */
    const char *model_file;     /* "NAME.safetensors", */
    const char *model_name;     /* "NAME" (any of them selects it) */
} lf_srv_settings;

/* One queued or running txt2img job. */
typedef struct lf_srv_job {
    lf_srv_req *req;
    int done;
    lf_srv_resp resp;
    cJSON *images, *seeds, *infotexts; /* worker side, while running */
    struct lf_srv_job *next;
} lf_srv_job;

struct lf_serve {
    lf_serve_opts o;
    char url[128];
    int port;
    lf_gen_session *sess;
    char *model_title, *model_file, *model_name; /* lf_srv_settings */
    char **users;               /* "USER:PASS" credentials */
    size_t n_users;
    struct MHD_Daemon *mhd;
    pthread_t worker;
    int worker_started;
    pthread_mutex_t mu;
    pthread_cond_t cv_work;     /* a job was queued, or stopping */
    pthread_cond_t cv_done;     /* a job finished */
    lf_srv_job *head, *tail;
    int n_queued;
    lf_srv_job *cur;
    int stopping;
    int interrupt;              /* the running job stops at its next step */
    lf_srv_settings set;
    /* progress of the running job */
    int64_t job_no;
    int step, steps, run, runs;
    double t_job;               /* clock when the running job started sampling */
    char job_timestamp[32];
};

/* serve_b64.c */
/* Base64 (RFC 4648, with padding) of n bytes: malloc'd, NUL-terminated; NULL when out of memory. */
char *lf_srv_b64_encode(const uint8_t *p, size_t n);
/* Decode s (n chars; whitespace skipped; padding optional); NULL on a bad character or no memory. */
uint8_t *lf_srv_b64_decode(const char *s, size_t n, size_t *out_len);
/* 1 when a and b are equal; the time depends on their lengths only, not on where they differ. */
int lf_srv_const_eq(const char *a, const char *b);

/* serve_request.c */
/* A 422 response naming the field (loc NULL: the body as a whole): {"detail": [{"loc": ["body", loc],
 * "msg": msg, "type": type}]}, as FastAPI's validation errors. */
lf_srv_resp lf_srv_resp_422(const char *loc, const char *type, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* A response {"detail": msg} with that status. */
lf_srv_resp lf_srv_resp_detail(int status, const char *msg);
/* Parse and check a txt2img body against the limits and the server's settings. On success *out is
 * the request and the response status is 0; otherwise the response says why (422, 413, 500). */
lf_srv_resp lf_srv_parse_txt2img(const char *body, size_t n, const lf_serve_limits *lim, const lf_srv_settings *set,
                                 int can_save, lf_srv_req **out);
void lf_srv_req_free(lf_srv_req *r);
/* Check and apply a POST /sdapi/v1/options body to *set (all or nothing). */
lf_srv_resp lf_srv_parse_options(const char *body, size_t n, lf_srv_settings *set);
const char *lf_srv_rng_name(lf_rng_kind k);

/* serve_worker.c */
lf_status lf_srv_worker_start(lf_serve *s);
/* Queue a checked request (ownership passes) and wait for its response; 503 when the queue is full or
 * the server stops. */
lf_srv_resp lf_srv_submit(lf_serve *s, lf_srv_req *req);
/* Stop the worker: interrupt the running job, answer the queued ones 503, join. */
void lf_srv_worker_stop(lf_serve *s);

/* serve_api.c */
/* The response of every endpoint but txt2img (which it hands to lf_srv_submit). method: "GET"/"POST". */
lf_srv_resp lf_srv_route(lf_serve *s, const char *method, const char *url, const char *body, size_t n);

#endif
