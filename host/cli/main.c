/* main.c: the lorafuse command-line interface: the usage text, `version`, and dispatch to the
 * subcommands of cli.h (inspect, merge, plan, generate; one file each).
 *
 * Exit codes: 0 success, 1 failure (the library's message is printed), 2 usage error.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "lorafuse/lf_config.h"

static void lf_usage(FILE *f) {
    fputs("usage:\n"
          "  lorafuse inspect FILE [--model CKPT] [--json]\n"
          "  lorafuse merge --model CKPT --lora PATH[:STRENGTH[:dyn=N]] [--lora ...] --output OUT\n"
          "                 [--allow-unmatched] [--allow-family-mismatch] [--threads N] [--reference] [--stats]\n"
          "  lorafuse plan --model CKPT --prompt TEXT --steps N [--lora-dir DIR] [--json] [--auto-trigger]\n"
          "  lorafuse generate --model CKPT --prompt TEXT [--steps N] [--sampler NAME] [--seed N] ... (generate --help)\n"
          "  lorafuse extract --model CKPT (--lora PATH[:S] ... | --tuned CKPT2) --output OUT (--rank R | --sv-fro F ...)\n"
          "  lorafuse version\n",
          f);
}

/* A subcommand's exit code; LF_CLI_USAGE prints the usage first. */
static int lf_exit_code(int rc) {
    if (rc != LF_CLI_USAGE) return rc;
    lf_usage(stderr);
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        lf_usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "inspect")) return lf_exit_code(lf_cli_inspect(argc, argv));
    if (!strcmp(cmd, "merge")) return lf_exit_code(lf_cli_merge(argc, argv));
    if (!strcmp(cmd, "plan")) return lf_cli_plan(argc, argv);
    if (!strcmp(cmd, "generate")) return lf_cli_generate(argc, argv);
    if (!strcmp(cmd, "extract")) return lf_exit_code(lf_cli_extract(argc, argv));
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
