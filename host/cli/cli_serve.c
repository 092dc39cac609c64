/* cli_serve.c: `lorafuse serve`, the A1111-compatible HTTP API over a resident model (lf_serve.h,
 * docs/serve.md).
 *
 *   lorafuse serve --model PATH [--listen HOST:PORT] [--lora-dir DIR] [--output-dir DIR]
 *                  [--api-auth USER:PASS[,USER:PASS...]] [--queue N] [--lora-cache-mb N]
 *                  [--backend auto|cpu|cuda] [--device N]
 *                  [--threads N] [--max-body-mb N] [--max-prompt N] [--max-tags N] [--max-pixels N] [--max-steps N]
 *                  [--max-images N] [--max-batch N] [--batch-lora merged|unmerged]
 *
 * Prints one line on stdout when it is ready ("lorafuse serve: listening on URL, model PATH (FAMILY),
 * backend BACKEND"); a non-loopback --listen without --api-auth prints a warning on stderr. SIGINT and
 * SIGTERM (and SIGHUP unless ignored) shut it down cleanly: their handler (on whichever thread the
 * kernel picks: libraries start threads of their own before main) writes the signal to a pipe that the
 * main thread reads, then the server stops as lf_serve_stop says and the process exits 0.
 * Exit status: 0 after a signal or --help, 1 failure to start, 2 usage.
 * (usage and --help text: lf_serve_usage_text, lf_serve_help_text; README "serve" shows both)
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "host/cuda/compute_cuda.h"
#include "host/base/pool.h"
#include "host/base/text.h"
#include "lorafuse/lf_serve.h"

static const char lf_serve_usage_text[] =
    "usage: lorafuse serve --model PATH [--listen HOST:PORT] [--lora-dir DIR] [--output-dir DIR]\n"
    "                      [--api-auth USER:PASS[,USER:PASS...]] [--queue N] [--lora-cache-mb N]\n"
    "                      [--backend auto|cpu|cuda] [--device N] [--dtype f16|bf16|f32] [--vae-dtype f32|f16|bf16]\n"
    "                      [--threads N] [--max-body-mb N]\n"
    "                      [--max-prompt N] [--max-tags N] [--max-pixels N] [--max-steps N] [--max-images N]\n"
    "                      [--max-batch N] [--batch-lora merged|unmerged]\n";

static const char lf_serve_help_text[] =
    "AUTOMATIC1111's HTTP API (/sdapi/v1) over a model loaded once (docs/serve.md).\n"
    "defaults: --listen " LF_SERVE_DEFAULT_LISTEN ", --lora-dir models/lora, --queue 32, --lora-cache-mb 1024,\n"
    "--backend auto (CUDA when --device N opens, else the CPU; the ready line says which),\n"
    "--dtype f16 and --vae-dtype f32 on CUDA (as generate's; the CPU ignores them),\n"
    "no --output-dir (save_images refused); limits: body 32 MiB, prompt 16384 bytes, 32 tags, 4194304\n"
    "pixels (width x height x batch_size), 150 steps, 64 images per request.\n"
    "--max-batch 8: requests queued while one runs join the next run as one batch when their size,\n"
    "steps, sampler, CFG, clip skip and RNG agree, up to N images (1: each request alone).\n"
    "--batch-lora merged: in such a batch each request's LoRAs are merged into weights of its own, so its\n"
    "images are the bytes it gets alone (a patched layer runs once per distinct weight); unmerged: one\n"
    "call per layer with per-image LoRA terms, faster, within f32 rounding of the image alone.\n"
    "SIGINT/SIGTERM stop it: the running job is interrupted, queued ones get 503, exit 0.\n"
    "example:\n"
    "  lorafuse serve --model models/sd15-mini.safetensors --lora-dir models/lora --listen 127.0.0.1:7860\n";

typedef struct {
    lf_serve_opts o;
    int threads;
} lf_serve_args;

static int lf_serve_sigpipe[2] = {-1, -1};

static void lf_serve_on_signal(int sig) {
    unsigned char b = (unsigned char)sig;
    ssize_t r = write(lf_serve_sigpipe[1], &b, 1); /* async-signal-safe; a full pipe already says "stop" */
    (void)r;
}

/* Route SIGINT, SIGTERM and SIGHUP to lf_serve_on_signal (a signal ignored at start, as under nohup,
 * stays ignored). */
static int lf_serve_signals(void) {
    if (pipe(lf_serve_sigpipe) != 0) return 0;
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        struct sigaction sa, old;
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = lf_serve_on_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        sigaction(sigs[i], &sa, NULL);
    }
    return 1;
}

enum {
    S_MODEL, S_LISTEN, S_LORA_DIR, S_OUTDIR, S_AUTH, S_QUEUE, S_CACHE, S_THREADS, S_BODY, S_PROMPT, S_TAGS, S_PIXELS,
    S_STEPS, S_IMAGES, S_BATCH, S_BACKEND, S_DEVICE, S_BATCH_LORA, S_DTYPE, S_VAEDTYPE
};

static const lf_cli_opt lf_serve_cli_opts[] = {
    [S_MODEL] = {"model", 1, 0},           [S_LISTEN] = {"listen", 1, 0},       [S_LORA_DIR] = {"lora-dir", 1, 0},
    [S_OUTDIR] = {"output-dir", 1, 0},     [S_AUTH] = {"api-auth", 1, 0},       [S_QUEUE] = {"queue", 1, 0},
    [S_CACHE] = {"lora-cache-mb", 1, 0},   [S_THREADS] = {"threads", 1, 0},     [S_BODY] = {"max-body-mb", 1, 0},
    [S_PROMPT] = {"max-prompt", 1, 0},     [S_TAGS] = {"max-tags", 1, 0},       [S_PIXELS] = {"max-pixels", 1, 0},
    [S_STEPS] = {"max-steps", 1, 0},       [S_IMAGES] = {"max-images", 1, 0},   [S_BATCH] = {"max-batch", 1, 0},
    [S_BACKEND] = {"backend", 1, 0}, [S_DEVICE] = {"device", 1, 0}, [S_BATCH_LORA] = {"batch-lora", 1, 0},
    [S_DTYPE] = {"dtype", 1, 0}, [S_VAEDTYPE] = {"vae-dtype", 1, 0}, {NULL, 0, 0}};

/* One option's value into a; 0 after a message when it is bad. */
static int lf_serve_opt(lf_serve_args *a, int o, const char *v) {
    static const char *const name[] = {[S_QUEUE] = "--queue", [S_CACHE] = "--lora-cache-mb", [S_THREADS] = "--threads",
                                       [S_BODY] = "--max-body-mb", [S_PROMPT] = "--max-prompt", [S_TAGS] = "--max-tags",
                                       [S_PIXELS] = "--max-pixels", [S_STEPS] = "--max-steps", [S_IMAGES] = "--max-images",
                                       [S_BATCH] = "--max-batch"};
    static const long long lo[] = {[S_QUEUE] = 0, [S_CACHE] = 0, [S_THREADS] = 1, [S_BODY] = 1, [S_PROMPT] = 1,
                                   [S_TAGS] = 0, [S_PIXELS] = 64, [S_STEPS] = 1, [S_IMAGES] = 1, [S_BATCH] = 1};
    static const long long hi[] = {[S_QUEUE] = 100000, [S_CACHE] = 1 << 24, [S_THREADS] = 1024, [S_BODY] = 4096,
                                   [S_PROMPT] = 1 << 24, [S_TAGS] = 4096, [S_PIXELS] = 1ll << 40, [S_STEPS] = 10000,
                                   [S_IMAGES] = 100000, [S_BATCH] = LF_SERVE_MAX_BATCH};
    long long n = 0;
    if (o >= S_QUEUE && o <= S_BATCH && !lf_cli_int("serve", name[o], v, lo[o], hi[o], &n)) return 0;
    switch (o) {
    case S_MODEL: a->o.model = v; return 1;
    case S_LISTEN: a->o.listen = v; return 1;
    case S_LORA_DIR: a->o.lora_dir = v; return 1;
    case S_OUTDIR: a->o.output_dir = v; return 1;
    case S_AUTH: a->o.api_auth = v; return 1;
    case S_QUEUE: a->o.queue = (int)n; return 1;
    case S_CACHE: a->o.lora_cache_mb = (int)n; return 1;
    case S_THREADS: a->threads = (int)n; return 1;
    case S_BODY: a->o.limits.max_body = (size_t)n << 20; return 1;
    case S_PROMPT: a->o.limits.max_prompt = (size_t)n; return 1;
    case S_TAGS: a->o.limits.max_tags = (int)n; return 1;
    case S_PIXELS: a->o.limits.max_pixels = n; return 1;
    case S_STEPS: a->o.limits.max_steps = (int)n; return 1;
    case S_IMAGES: a->o.limits.max_images = (int)n; return 1;
    case S_BATCH: a->o.max_batch = (int)n; return 1;
    case S_BACKEND: return lf_cli_backend("serve", v, &a->o.backend);
    case S_DEVICE: return lf_cli_device("serve", v, &a->o.device);
    case S_BATCH_LORA: return lf_cli_batch_lora("serve", v, &a->o.batch_merged);
    case S_DTYPE: return lf_cli_dtype("serve", "--dtype", v, &a->o.dtype);
    case S_VAEDTYPE: return lf_cli_dtype("serve", "--vae-dtype", v, &a->o.vae_dtype);
    default: return 0;
    }
}

/* 1: run; 0: exit with *rc (0 after --help, 2 after a usage error). */
static int lf_serve_parse_args(int argc, char **argv, lf_serve_args *a, int *rc) {
    memset(a, 0, sizeof *a);
    lf_serve_opts_default(&a->o);
    a->o.cuda = lf_compute_cuda_device; /* --backend cuda / auto */
    lf_cli_parser p;
    lf_cli_parser_init(&p, "serve", lf_serve_usage_text, lf_serve_help_text, lf_serve_cli_opts, argc, argv);
    int o, n;
    char *v, **rest;
    while ((o = lf_cli_next(&p, &v)) >= 0 && lf_serve_opt(a, o, v)) {
    }
    if ((*rc = lf_cli_finish(&p, o < 0 ? o : LF_CLI_BAD, 0, &rest, &n)) >= 0) return 0;
    if (a->o.model) return 1;
    fprintf(stderr, "lorafuse serve: --model is required\n");
    *rc = lf_cli_bad_usage(&p);
    return 0;
}

int lf_cli_serve(int argc, char **argv) {
    lf_serve_args a;
    int rc;
    if (!lf_serve_parse_args(argc, argv, &a, &rc)) return rc;
    if (a.threads) lf_par_set_threads(a.threads);
    if (!lf_serve_signals()) {
        fprintf(stderr, "lorafuse serve: cannot create the signal pipe: %s\n", strerror(errno));
        return 1;
    }
    char q[LF_ESC_PART];
    if (!a.o.api_auth && !lf_serve_is_loopback(a.o.listen))
        fprintf(stderr, "lorafuse serve: warning: --listen %s is not a loopback address and no --api-auth is set: "
                "anyone who can reach it can use the server\n", lf_esc(q, sizeof q, a.o.listen, strlen(a.o.listen)));
    lf_serve *s = NULL;
    if (lf_serve_start(&a.o, &s) != LF_OK) {
        lf_err_escape(LF_OK);
        fprintf(stderr, "lorafuse serve: %s\n", lf_last_error());
        return 1;
    }
    printf("lorafuse serve: listening on %s, model %s (%s), backend %s\n", lf_serve_url(s),
           lf_esc(q, sizeof q, a.o.model, strlen(a.o.model)), lf_serve_family(s), lf_serve_backend(s));
    fflush(stdout);
    unsigned char b = 0;
    while (read(lf_serve_sigpipe[0], &b, 1) < 0 && errno == EINTR) {
    }
    int sig = b;
    fprintf(stderr, "lorafuse serve: %s: stopping\n", sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGHUP");
    lf_serve_stop(s);
    fprintf(stderr, "lorafuse serve: stopped\n");
    return 0;
}
