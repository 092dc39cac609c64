/* serve_request.h: the request side of `lorafuse serve` (host/serve/): a txt2img or options JSON body
 * -> a checked request (serve_request.c), responses as A1111's clients expect them, base64 and
 * constant-time comparison (serve_b64.c). The interface of the parser to serve_internal.h's files and
 * to tests/fuzz/fuzz_serve_request.c.
 */
#ifndef LF_SERVE_REQUEST_H
#define LF_SERVE_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

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
    const char *outdir;         /* outdir_txt2img_samples, read-only: --output-dir or "" */
} lf_srv_settings;

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

#endif
