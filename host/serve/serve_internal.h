/* serve_internal.h: the state of one lf_serve (lf_serve.h) and the functions its files share.
 *
 *   serve_http.c     lf_serve_start/stop, libmicrohttpd glue: bodies, auth, routing, responses
 *   serve_api.c      the endpoints that answer from the server's state (models, LoRAs, samplers,
 *                    options, progress, png-info)
 *   serve_worker.c   the job queue, the worker thread and its runs on the resident session: one txt2img
 *                    request, or several grouped into one batch (--max-batch)
 *   serve_request.c  a txt2img JSON body -> a checked request (A1111's field names and defaults)
 *   serve_b64.c      base64 and constant-time comparison
 *   serve_cache.c    the LRU cache of opened adapter files (--lora-cache-mb)
 * serve_request.h declares what serve_request.c and serve_b64.c offer (also to the fuzz target).
 *
 * Calls go serve_http.c -> serve_api.c -> serve_worker.c -> serve_request.c -> serve_b64.c, and
 * serve_http.c, serve_api.c -> serve_cache.c (the worker reaches it through lf_adapter_source).
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
#include "lorafuse/lf_step_plan.h"
#include "serve_request.h"

/* serve_cache.c */
typedef struct lf_srv_cache lf_srv_cache;
typedef struct lf_srv_cache_info {
    size_t entries;
    uint64_t bytes, limit, hits, misses;
} lf_srv_cache_info;
/* A cache of at most `limit` bytes of adapter files; *src is set to open and release through it. */
lf_status lf_srv_cache_new(uint64_t limit, lf_srv_cache **out, lf_adapter_source *src);
/* Drop every entry (those a plan holds when it releases them). */
void lf_srv_cache_clear(lf_srv_cache *c);
void lf_srv_cache_stats(lf_srv_cache *c, lf_srv_cache_info *info);
void lf_srv_cache_free(lf_srv_cache *c);

/* One queued or running txt2img job. */
typedef struct lf_srv_job {
    lf_srv_req *req;
    int done;
    lf_srv_resp resp;
    cJSON *images, *seeds, *infotexts; /* worker side, while running */
    int n_images;               /* batch_size x n_iter */
    int batch_index;            /* its place in the batch it runs in, and that batch's requests and images */
    int batch_requests, batch_images;
    struct lf_srv_job *next;
} lf_srv_job;

/* Requests run together (--max-batch), for /health. */
typedef struct lf_srv_batch_stats {
    uint64_t batches;           /* worker runs of more than one request */
    uint64_t batched;           /* requests those runs answered */
    int largest;                /* most requests in one run */
} lf_srv_batch_stats;

struct lf_serve {
    lf_serve_opts o;
    char url[128];
    int port;
    lf_gen_session *sess;
    lf_srv_cache *cache;
    lf_adapter_source src;      /* the cache's open / release, handed to every job */
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
    int running;                /* requests in the worker's current run (0: idle) */
    lf_srv_batch_stats batch;
    int stopping;
    int interrupt;              /* the running job stops at its next step */
    lf_srv_settings set;
    /* progress of the running job */
    int64_t job_no;
    int step, steps, run, runs;
    double t_job;               /* clock when the running job started sampling */
    char job_timestamp[32];
};

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
