/* main.c: the lorafuse command-line interface: the usage text, `version`, and dispatch to the
 * subcommands of cli.h (inspect, merge, plan, generate, extract, png-info, serve, batch; one file each).
 *
 * Exit codes: 0 success, 1 failure (the library's message is printed), 2 usage error.
 *
 * SIGINT, SIGTERM and SIGHUP remove the temporary files of the outputs being written (merge output,
 * PNG images; host/base/file.h), then end the process by the same signal with its default action, so
 * that the caller still sees "killed by SIGINT" and the destination is left as it was.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "host/base/file.h"
#include "lorafuse/lf_config.h"

static void lf_on_signal(int sig) {
    lf_file_cleanup_on_signal();
    /* SA_RESETHAND restored the default action: the re-raised signal ends the process as if no handler
     * had been installed (once this handler returns, the signal being blocked while it runs). */
    raise(sig);
}

static void lf_install_signal_handlers(void) {
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        struct sigaction sa, old;
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue; /* nohup: keep ignoring */
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = lf_on_signal;
        sigfillset(&sa.sa_mask); /* no other handler interleaves with the cleanup */
        sa.sa_flags = SA_RESETHAND;
        sigaction(sigs[i], &sa, NULL);
    }
}

static void lf_usage(FILE *f) {
    fputs("usage:\n"
          "  lorafuse inspect FILE [--model CKPT] [--json]\n"
          "  lorafuse inspect --embeddings [DIR] [--json]\n"
          "  lorafuse merge --model CKPT --lora PATH[:STRENGTH[:dyn=N]] [--lora ...] --output OUT [--force]\n"
          "                 [--allow-unmatched] [--allow-family-mismatch] [--threads N] [--reference] [--stats]\n"
          "  lorafuse plan --model CKPT --prompt TEXT --steps N [--lora-dir DIR] [--json] [--auto-trigger]\n"
          "  lorafuse generate --model CKPT --prompt TEXT [--steps N] [--sampler NAME] [--seed N] ... (generate --help)\n"
          "  lorafuse extract --model CKPT (--lora PATH[:S] ... | --tuned CKPT2) --output OUT (--rank R | --sv-fro F ...)\n"
          "  lorafuse png-info FILE... [--json]\n"
          "  lorafuse serve --model CKPT [--listen HOST:PORT] [--lora-dir DIR] [--api-auth USER:PASS] ...\n"
          "  lorafuse batch JOBS [--output-dir DIR] [--shard I/N] [--resume] [--dry-run] ... (batch --help)\n"
          "  lorafuse version\n"
          "'lorafuse COMMAND --help' shows a command's options with an example.\n",
          f);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        lf_usage(stderr);
        return 2;
    }
    lf_install_signal_handlers();
    const char *cmd = argv[1];
    if (!strcmp(cmd, "inspect")) return lf_cli_inspect(argc, argv);
    if (!strcmp(cmd, "merge")) return lf_cli_merge(argc, argv);
    if (!strcmp(cmd, "plan")) return lf_cli_plan(argc, argv);
    if (!strcmp(cmd, "generate")) return lf_cli_generate(argc, argv);
    if (!strcmp(cmd, "extract")) return lf_cli_extract(argc, argv);
    if (!strcmp(cmd, "png-info")) return lf_cli_pnginfo(argc, argv);
    if (!strcmp(cmd, "serve")) return lf_cli_serve(argc, argv);
    if (!strcmp(cmd, "batch")) return lf_cli_batch(argc, argv);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("lorafuse %s (CUDA %s, cuDNN %s)\n", LF_VERSION, LF_HAVE_CUDA ? "yes" : "no", LF_HAVE_CUDNN ? "yes" : "no");
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        lf_usage(stdout);
        return 0;
    }
    fprintf(stderr, "lorafuse: unknown command '%s'\n", cmd);
    lf_usage(stderr);
    return 2;
}
