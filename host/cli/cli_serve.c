/* cli_serve.c: `lorafuse serve`, the A1111-compatible HTTP API over a resident model (lf_serve.h,
 * docs/serve.md).
 *
 *   lorafuse serve --model PATH [--listen HOST:PORT] [--lora-dir DIR] [--output-dir DIR]
 *                  [--api-auth USER:PASS[,USER:PASS...]] [--queue N] [--lora-cache-mb N] [--backend cpu|cuda]
 *                  [--threads N] [--max-body-mb N] [--max-prompt N] [--max-tags N] [--max-pixels N] [--max-steps N]
 *                  [--max-images N]
 *
 * Prints one line on stdout when it is ready ("lorafuse serve: listening on URL, model PATH (FAMILY),
 * backend cpu"); a non-loopback --listen without --api-auth prints a warning on stderr. SIGINT and
 * SIGTERM (and SIGHUP unless ignored) shut it down cleanly: their handler (on whichever thread the
 * kernel picks: libraries start threads of their own before main) writes the signal to a pipe that the
 * main thread reads, then the server stops as lf_serve_stop says and the process exits 0.
 * Exit status: 0 after a signal, 1 failure to start, 2 usage.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "host/base/pool.h"
#include "host/base/text.h"
#include "lorafuse/lf_serve.h"

static int lf_serve_usage(void) {
    fputs("usage: lorafuse serve --model PATH [--listen HOST:PORT] [--lora-dir DIR] [--output-dir DIR]\n"
          "                      [--api-auth USER:PASS[,USER:PASS...]] [--queue N] [--lora-cache-mb N]\n"
          "                      [--backend cpu|cuda] [--threads N] [--max-body-mb N] [--max-prompt N] [--max-tags N] [--max-pixels N] [--max-steps N]\n"
          "                      [--max-images N]\n"
          "defaults: --listen " LF_SERVE_DEFAULT_LISTEN ", --lora-dir models/lora, --queue 32, --lora-cache-mb 1024,\n"
          "no --output-dir "
          "(save_images refused), limits: body 32 MiB, prompt 16384 bytes, 32 tags, 4194304 pixels\n"
          "(width x height x batch_size), 150 steps, 64 images per request\n",
          stderr);
    return 2;
}

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

static int lf_serve_parse_args(int argc, char **argv, lf_serve_args *a) {
    memset(a, 0, sizeof *a);
    lf_serve_opts_default(&a->o);
    for (int i = 2; i < argc; i++) {
        const char *s = argv[i];
        int has = i + 1 < argc;
        long long v;
        if (!strcmp(s, "--model") && has) a->o.model = argv[++i];
        else if (!strcmp(s, "--listen") && has) a->o.listen = argv[++i];
        else if (!strcmp(s, "--lora-dir") && has) a->o.lora_dir = argv[++i];
        else if (!strcmp(s, "--output-dir") && has) a->o.output_dir = argv[++i];
        else if (!strcmp(s, "--api-auth") && has) a->o.api_auth = argv[++i];
        else if (!strcmp(s, "--queue") && has) {
            if (!lf_cli_int("serve", s, argv[++i], 0, 100000, &v)) return 0;
            a->o.queue = (int)v;
        } else if (!strcmp(s, "--lora-cache-mb") && has) {
            if (!lf_cli_int("serve", s, argv[++i], 0, 1 << 24, &v)) return 0;
            a->o.lora_cache_mb = (int)v;
        } else if (!strcmp(s, "--threads") && has) {
            if (!lf_cli_int("serve", s, argv[++i], 1, 1024, &v)) return 0;
            a->threads = (int)v;
        } else if (!strcmp(s, "--max-body-mb") && has) {
            if (!lf_cli_int("serve", s, argv[++i], 1, 4096, &v)) return 0;
            a->o.limits.max_body = (size_t)v << 20;
        } else if (!strcmp(s, "--max-prompt") && has) {
            if (!lf_cli_int("serve", s, argv[++i], 1, 1 << 24, &v)) return 0;
            a->o.limits.max_prompt = (size_t)v;
        } else if (!strcmp(s, "--max-tags") && has) {
            if (!lf_cli_int("serve", s, argv[++i], 0, 4096, &v)) return 0;
            a->o.limits.max_tags = (int)v;
        } else if (!strcmp(s, "--max-pixels") && has) {
            if (!lf_cli_int("serve", s, argv[++i], 64, 1ll << 40, &v)) return 0;
            a->o.limits.max_pixels = v;
        } else if (!strcmp(s, "--max-steps") && has) {
            if (!lf_cli_int("serve", s, argv[++i], 1, 10000, &v)) return 0;
            a->o.limits.max_steps = (int)v;
        } else if (!strcmp(s, "--max-images") && has) {
            if (!lf_cli_int("serve", s, argv[++i], 1, 100000, &v)) return 0;
            a->o.limits.max_images = (int)v;
        } else if (!strcmp(s, "--backend") && has) {
            const char *b = argv[++i];
            if (!strcmp(b, "cpu")) a->o.backend = LF_GEN_CPU;
            else if (!strcmp(b, "cuda")) a->o.backend = LF_GEN_CUDA;
            else {
                char q[LF_ESC_PART];
                fprintf(stderr, "lorafuse serve: bad --backend '%s' (cpu or cuda)\n", lf_esc(q, sizeof q, b, strlen(b)));
                return 0;
            }
        } else {
            char q[LF_ESC_PART];
            fprintf(stderr, "lorafuse serve: unexpected argument '%s'\n", lf_esc(q, sizeof q, s, strlen(s)));
            return 0;
        }
    }
    if (!a->o.model) {
        fprintf(stderr, "lorafuse serve: --model is required\n");
        return 0;
    }
    return 1;
}

int lf_cli_serve(int argc, char **argv) {
    lf_serve_args a;
    if (!lf_serve_parse_args(argc, argv, &a)) return lf_serve_usage();
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
    printf("lorafuse serve: listening on %s, model %s (%s), backend cpu\n", lf_serve_url(s),
           lf_esc(q, sizeof q, a.o.model, strlen(a.o.model)), lf_serve_family(s));
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
