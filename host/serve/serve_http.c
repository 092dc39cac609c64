/* serve_http.c: lf_serve_start / lf_serve_stop and the libmicrohttpd side of the server: one thread
 * per connection (a txt2img connection sleeps until its job is done), the request body gathered up to
 * limits.max_body (a larger Content-Length is refused 413 before the body is read), HTTP basic auth
 * checked before anything else (every path but /health; each configured credential compared in
 * constant time), then serve_api.c's routes; every response is JSON.
 *
 * Shutdown: stop accepting, stop the worker (the running job is interrupted and answered with the
 * images finished so far, the queued ones 503), give the connections up to 5 s to send their
 * responses, then stop the daemon.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "serve_internal.h"
#include "host/base/text.h"
#include "host/base/util.h"

void lf_serve_limits_default(lf_serve_limits *l) {
    l->max_body = LF_SERVE_DEFAULT_MAX_BODY;
    l->max_prompt = LF_SERVE_DEFAULT_MAX_PROMPT;
    l->max_tags = LF_SERVE_DEFAULT_MAX_TAGS;
    l->max_pixels = LF_SERVE_DEFAULT_MAX_PIXELS;
    l->max_steps = LF_SERVE_DEFAULT_MAX_STEPS;
    l->max_images = LF_SERVE_DEFAULT_MAX_IMAGES;
}

void lf_serve_opts_default(lf_serve_opts *o) {
    memset(o, 0, sizeof *o);
    o->queue = LF_SERVE_DEFAULT_QUEUE;
    o->max_batch = LF_SERVE_DEFAULT_MAX_BATCH;
    o->batch_merged = 1;
    o->lora_cache_mb = LF_SERVE_DEFAULT_LORA_CACHE_MB;
    lf_serve_limits_default(&o->limits);
}

const char *lf_serve_url(const lf_serve *s) { return s->url; }
int lf_serve_port(const lf_serve *s) { return s->port; }
const char *lf_serve_family(const lf_serve *s) { return lf_gen_session_family(s->sess); }
const char *lf_serve_backend(const lf_serve *s) { return lf_gen_session_backend(s->sess); }

/* ---- one request ------------------------------------------------------------------------------ */
typedef struct {
    char *buf;
    size_t n, cap;
    int too_big;
} lf_srv_body;

static enum MHD_Result lf_srv_send(lf_serve *s, struct MHD_Connection *c, lf_srv_resp r) {
    char *text = r.body ? cJSON_PrintUnformatted(r.body) : NULL;
    cJSON_Delete(r.body);
    if (!text) {
        r.status = 500;
        text = strdup("{\"detail\":\"out of memory\"}");
        if (!text) return MHD_NO;
    }
    struct MHD_Response *m = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!m) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(m, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (r.status == 401) MHD_add_response_header(m, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Basic realm=\"lorafuse\"");
    if (r.retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", r.retry_after);
        MHD_add_response_header(m, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    pthread_mutex_lock(&s->mu);
    int stopping = s->stopping;
    pthread_mutex_unlock(&s->mu);
    if (stopping) MHD_add_response_header(m, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)r.status, m);
    MHD_destroy_response(m);
    return ret;
}

/* 1 when the request carries one of the configured credentials (or none are configured). */
static int lf_srv_authorized(const lf_serve *s, struct MHD_Connection *c) {
    if (!s->n_users) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Basic ", 6)) return 0;
    h += 6;
    while (*h == ' ') h++;
    size_t n = 0;
    uint8_t *dec = lf_srv_b64_decode(h, strlen(h), &n);
    if (!dec) return 0;
    char *given = malloc(n + 1);
    int ok = 0;
    if (given) {
        memcpy(given, dec, n);
        given[n] = '\0';
        if (strlen(given) == n) /* no NUL inside */
            for (size_t i = 0; i < s->n_users; i++) ok |= lf_srv_const_eq(given, s->users[i]);
        free(given);
    }
    free(dec);
    return ok;
}

static enum MHD_Result lf_srv_handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                      const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    lf_serve *s = cls;
    lf_srv_body *b = *con_cls;
    if (!b) {
        if ((b = calloc(1, sizeof *b)) == NULL) return MHD_NO;
        *con_cls = b;
        /* before the body: credentials, then the announced size */
        if (strcmp(url, "/health") && !lf_srv_authorized(s, c))
            return lf_srv_send(s, c, lf_srv_resp_detail(401, "Incorrect username or password"));
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->o.limits.max_body) {
            b->too_big = 1;
            return lf_srv_send(s, c, lf_srv_resp_detail(413, "request body over the server's limit"));
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (b->too_big) return MHD_YES;
        if (b->n + n > s->o.limits.max_body) {
            b->too_big = 1;
            return MHD_YES;
        }
        if (b->n + n + 1 > b->cap) {
            size_t cap = b->cap ? b->cap : 4096;
            while (cap < b->n + n + 1) cap *= 2;
            char *p = realloc(b->buf, cap);
            if (!p) return MHD_NO;
            b->buf = p;
            b->cap = cap;
        }
        memcpy(b->buf + b->n, upload, n);
        b->n += n;
        b->buf[b->n] = '\0';
        return MHD_YES;
    }
    if (b->too_big) return lf_srv_send(s, c, lf_srv_resp_detail(413, "request body over the server's limit"));
    return lf_srv_send(s, c, lf_srv_route(s, method, url, b->buf ? b->buf : "", b->n));
}

static void lf_srv_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t) {
    (void)cls, (void)c, (void)t;
    lf_srv_body *b = *con_cls;
    if (b) free(b->buf);
    free(b);
    *con_cls = NULL;
}

/* ---- start / stop ----------------------------------------------------------------------------- */
/* "HOST:PORT" into an IPv4 or IPv6 socket address. */
static lf_status lf_srv_listen(const char *spec, struct sockaddr_storage *sa, int *v6) {
    char q[LF_ESC_PART];
    const char *colon = strrchr(spec, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || !colon[1] || *end || port < 0 || port > 65535)
        return lf_err(LF_ERR_ARG, "--listen '%s': expected HOST:PORT (port 0 to 65535)", lf_esc(q, sizeof q, spec, strlen(spec)));
    char host[128];
    size_t hl = (size_t)(colon - spec);
    if (hl >= sizeof host) return lf_err(LF_ERR_ARG, "--listen: host too long");
    memcpy(host, spec, hl);
    host[hl] = '\0';
    memset(sa, 0, sizeof *sa);
    *v6 = 0;
    if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)sa;
        host[hl - 1] = '\0';
        if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
            return lf_err(LF_ERR_ARG, "--listen '%s': not an IPv6 address", lf_esc(q, sizeof q, spec, strlen(spec)));
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        *v6 = 1;
        return LF_OK;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)sa;
    if (!strcmp(host, "localhost")) snprintf(host, sizeof host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
        return lf_err(LF_ERR_ARG, "--listen '%s': not an IPv4 address (or localhost, or [IPv6])",
                      lf_esc(q, sizeof q, spec, strlen(spec)));
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    return LF_OK;
}

static int lf_srv_loopback(const struct sockaddr_storage *sa, int v6) {
    if (v6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        return !memcmp(&a->sin6_addr, &in6addr_loopback, sizeof a->sin6_addr);
    }
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
}

static char *lf_srv_dupn(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* --api-auth "USER:PASS[,USER:PASS...]" */
static lf_status lf_srv_users(lf_serve *s, const char *spec) {
    for (const char *p = spec; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        const char *colon = memchr(p, ':', n);
        if (!colon || colon == p)
            return lf_err(LF_ERR_ARG, "--api-auth: each credential is USER:PASS, comma-separated (entry %zu)", s->n_users + 1);
        char **u = realloc(s->users, (s->n_users + 1) * sizeof *u);
        if (!u) return lf_err(LF_ERR_NOMEM, "out of memory");
        s->users = u;
        if ((s->users[s->n_users] = lf_srv_dupn(p, n)) == NULL) return lf_err(LF_ERR_NOMEM, "out of memory");
        s->n_users++;
        p += n + (e != NULL);
    }
    if (!s->n_users) return lf_err(LF_ERR_ARG, "--api-auth: no credential given");
    return LF_OK;
}

/* The names sd_model_checkpoint accepts: "NAME.safetensors [HASH]", "NAME.safetensors", "NAME". */
static lf_status lf_srv_names(lf_serve *s) {
    const char *b = lf_basename(lf_gen_session_model(s->sess));
    size_t n = strlen(b);
    size_t stem = lf_has_suffix(b, ".safetensors") ? n - strlen(".safetensors") : n;
    const char *h = lf_gen_session_hash(s->sess);
    s->model_file = lf_srv_dupn(b, n);
    s->model_name = lf_srv_dupn(b, stem);
    s->model_title = malloc(n + strlen(h) + 4);
    if (!s->model_file || !s->model_name || !s->model_title) return lf_err(LF_ERR_NOMEM, "out of memory");
    snprintf(s->model_title, n + strlen(h) + 4, "%s [%s]", b, h);
    s->set.model_title = s->model_title;
    s->set.model_file = s->model_file;
    s->set.model_name = s->model_name;
    s->set.outdir = s->o.output_dir ? s->o.output_dir : "";
    return LF_OK;
}

static void lf_srv_free(lf_serve *s) {
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv_work);
    pthread_cond_destroy(&s->cv_done);
    lf_gen_session_free(s->sess);
    lf_srv_cache_free(s->cache);
    for (size_t i = 0; i < s->n_users; i++) free(s->users[i]);
    free(s->users);
    free(s->model_title);
    free(s->model_file);
    free(s->model_name);
    free(s);
}

void lf_serve_stop(lf_serve *s) {
    if (!s) return;
    MHD_socket lsock = s->mhd ? MHD_quiesce_daemon(s->mhd) : MHD_INVALID_SOCKET; /* ours to close now */
    lf_srv_worker_stop(s);
    /* let the woken connections send their answers */
    for (int i = 0; s->mhd && i < 500; i++) {
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        if (!di || !di->num_connections) break;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (s->mhd) MHD_stop_daemon(s->mhd);
    if (lsock != MHD_INVALID_SOCKET) close(lsock);
    lf_srv_free(s);
}

lf_status lf_serve_start(const lf_serve_opts *o, lf_serve **out) {
    *out = NULL;
    if (!o || !o->model) return lf_err(LF_ERR_ARG, "serve: --model is required");
    if (o->queue < 0) return lf_err(LF_ERR_ARG, "--queue must be 0 or more");
    if (o->max_batch < 1 || o->max_batch > LF_SERVE_MAX_BATCH)
        return lf_err(LF_ERR_ARG, "--max-batch must be 1 to %d (got %d)", LF_SERVE_MAX_BATCH, o->max_batch);
    if (o->lora_cache_mb < 0) return lf_err(LF_ERR_ARG, "--lora-cache-mb must be 0 or more");
    lf_serve *s = calloc(1, sizeof *s);
    if (!s) return lf_err(LF_ERR_NOMEM, "out of memory");
    s->o = *o;
    if (!s->o.listen) s->o.listen = LF_SERVE_DEFAULT_LISTEN;
    s->set.clip_skip = 1;
    s->set.rng = LF_RNG_TORCH_CPU;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv_work, NULL);
    pthread_cond_init(&s->cv_done, NULL);
    struct sockaddr_storage sa;
    int v6 = 0;
    lf_status st = lf_srv_listen(s->o.listen, &sa, &v6);
    if (!st && o->api_auth) st = lf_srv_users(s, o->api_auth);
    if (!st) st = lf_srv_cache_new((uint64_t)o->lora_cache_mb << 20, &s->cache, &s->src);
    if (!st) st = lf_gen_session_open_prec(o->model, o->backend, o->device, o->dtype, o->vae_dtype, o->cuda, &s->sess);
    if (!st) st = lf_srv_names(s);
    if (!st) st = lf_srv_worker_start(s);
    if (st) {
        lf_srv_worker_stop(s);
        lf_srv_free(s);
        return st;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
                     (v6 ? MHD_USE_IPv6 : 0);
    /* connections: every queued job holds one, plus room for the quick endpoints */
    unsigned limit = (unsigned)s->o.queue + 64;
    s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, lf_srv_handler, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                              MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_CONNECTION_TIMEOUT, 60u,
                              MHD_OPTION_NOTIFY_COMPLETED, lf_srv_completed, s, MHD_OPTION_END);
    if (!s->mhd) {
        char q[LF_ESC_PART];
        st = lf_err(LF_ERR_IO, "serve: cannot listen on %s (address in use, or not an address of this machine)",
                    lf_esc(q, sizeof q, s->o.listen, strlen(s->o.listen)));
        lf_serve_stop(s);
        return st;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : 0;
    char host[INET6_ADDRSTRLEN];
    if (v6) inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, host, sizeof host);
    else inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, host, sizeof host);
    snprintf(s->url, sizeof s->url, v6 ? "http://[%s]:%d" : "http://%s:%d", host, s->port);
    *out = s;
    return LF_OK;
}

int lf_serve_is_loopback(const char *listen) {
    struct sockaddr_storage sa;
    int v6 = 0;
    return lf_srv_listen(listen ? listen : LF_SERVE_DEFAULT_LISTEN, &sa, &v6) == LF_OK && lf_srv_loopback(&sa, v6);
}
