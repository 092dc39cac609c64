/* cli.h: subcommands of the lorafuse CLI that live outside main.c.
 *
 *   lorafuse plan --model CKPT --prompt TEXT --steps N [--lora-dir DIR] [--json] [--auto-trigger]
 *                 [--lbw-presets FILE] [--allow-unmatched] [--allow-family-mismatch]
 *
 * Each returns the process exit code: 0 success, 1 failure (the library's message printed), 2 usage.
 */
#ifndef LF_CLI_H
#define LF_CLI_H

int lf_cli_plan(int argc, char **argv);
int lf_cli_generate(int argc, char **argv); /* issue 6: lorafuse generate (host/cli/cli_generate.c) */

#endif
