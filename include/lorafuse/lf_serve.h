/* lf_serve.h: `lorafuse serve`, an HTTP server with AUTOMATIC1111's /sdapi/v1 API over one resident
 * model (docs/serve.md).
 *
 * The model is loaded once (lf_generate.h lf_gen_session); requests run on a worker thread, in arrival
 * order, from a queue of at most `queue` waiting jobs (a full queue answers 503 with Retry-After). When
 * the worker takes a request, the queued requests that may share its batch (lf_gen_groupable: size,
 * steps, sampler, CFG, clip skip, RNG) join it, up to `max_batch` images, as one lf_gen_open_group call;
 * each response holds only its own images. Between runs only the weights the adapters touch are
 * rewritten, always from the checkpoint's pristine bytes, so an image of a request equals what
 * `lorafuse generate` with the same settings writes, byte for byte: alone, and in a batch with the
 * default `batch_merged` (each request's LoRA weights built from W0 as alone; unmerged terms are faster
 * and differ by rounding: docs/serve.md). HTTP: libmicrohttpd, one thread per connection (a txt2img
 * connection waits for its job); JSON: cJSON.
 */
#ifndef LF_SERVE_H
#define LF_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "lorafuse/lf_generate.h"
#include "lorafuse/lf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Request limits; each is checked before a request is queued (docs/serve.md "Limits"). */
#define LF_SERVE_DEFAULT_MAX_BODY (32u << 20)       /* bytes of a request body (png-info carries a PNG) */
#define LF_SERVE_DEFAULT_MAX_PROMPT 16384           /* bytes of prompt, and of negative prompt */
#define LF_SERVE_DEFAULT_MAX_TAGS 32                /* <lora:...> tags in a prompt */
#define LF_SERVE_DEFAULT_MAX_PIXELS (4ll << 20)     /* width * height * batch_size */
#define LF_SERVE_DEFAULT_MAX_STEPS 150
#define LF_SERVE_DEFAULT_MAX_IMAGES 64              /* batch_size * n_iter */
#define LF_SERVE_DEFAULT_QUEUE 32
#define LF_SERVE_DEFAULT_MAX_BATCH 8                /* images of the requests run as one batch */
#define LF_SERVE_MAX_BATCH 256
#define LF_SERVE_DEFAULT_LORA_CACHE_MB 1024
#define LF_SERVE_DEFAULT_LISTEN "127.0.0.1:7860"

typedef struct lf_serve_limits {
    size_t max_body;
    size_t max_prompt;
    int max_tags;
    int64_t max_pixels;
    int max_steps;
    int max_images;
} lf_serve_limits;

void lf_serve_limits_default(lf_serve_limits *l);

typedef struct lf_serve_opts {
    const char *model;          /* single-file checkpoint (required) */
    const char *listen;         /* "HOST:PORT" (IPv4 or "localhost"; "[v6]:PORT"); NULL: LF_SERVE_DEFAULT_LISTEN; port 0: any free */
    const char *lora_dir;       /* NULL: models/lora; names resolve only inside it (no links out) */
    const char *output_dir;     /* save_images writes here (never overwriting); NULL: save_images refused */
    const char *api_auth;       /* "USER:PASS[,USER:PASS...]": HTTP basic auth on every endpoint but /health */
    int queue;                  /* waiting jobs (lf_serve_opts_default: LF_SERVE_DEFAULT_QUEUE) */
    int max_batch;              /* images of queued requests the worker runs together in one call
                                 * (lf_gen_open_group) when lf_gen_groupable agrees; 1: each request alone
                                 * (lf_serve_opts_default: LF_SERVE_DEFAULT_MAX_BATCH; 1 to LF_SERVE_MAX_BATCH) */
    int batch_merged;           /* lf_gen_opts.batch_merged of every request (lf_serve_opts_default: 1, so a
                                 * request's image is the same bytes whatever else shares its batch) */
    int lora_cache_mb;          /* opened adapter files kept, MiB of file size (0: none kept) */
    lf_gen_backend backend;     /* auto (default), cpu or cuda */
    int device;                 /* CUDA device ordinal */
    lf_gen_cuda_fn cuda;        /* lf_gen_opts.cuda */
    lf_dtype dtype, vae_dtype;  /* lf_gen_opts.dtype, .vae_dtype (--dtype, --vae-dtype); 0: the defaults */
    lf_serve_limits limits;
} lf_serve_opts;

void lf_serve_opts_default(lf_serve_opts *o);

typedef struct lf_serve lf_serve;

/* Load the model, bind, start the worker and the HTTP threads. */
lf_status lf_serve_start(const lf_serve_opts *o, lf_serve **out);
/* The bound address, "http://HOST:PORT" (the port chosen when 0 was asked). */
const char *lf_serve_url(const lf_serve *s);
int lf_serve_port(const lf_serve *s);
const char *lf_serve_family(const lf_serve *s);
/* What runs the model: "cpu", "cpu (auto: ...)", "cuda (device N: ...)" (lf_gen_session_backend). */
const char *lf_serve_backend(const lf_serve *s);
/* 1 when the --listen address is a loopback one (127.0.0.0/8, ::1): the CLI warns otherwise without auth. */
int lf_serve_is_loopback(const char *listen);
/* Shut down: stop accepting, interrupt the running job (its request gets the images finished so far),
 * answer every queued request 503, wait for the threads, free everything. */
void lf_serve_stop(lf_serve *s);

#ifdef __cplusplus
}
#endif
#endif
