/* cli.h: the subcommands of the lorafuse CLI, one file each; main.c dispatches to them.
 *
 *   lorafuse inspect FILE [--model CKPT] [--json]                                    (cli_inspect.c)
 *   lorafuse merge --model CKPT --lora PATH[:STRENGTH[:dyn=N]] [--lora ...] --output OUT ...  (cli_merge.c)
 *   lorafuse plan --model CKPT --prompt TEXT --steps N [--lora-dir DIR] [--json] [--auto-trigger]
 *                 [--lbw-presets FILE] [--allow-unmatched] [--allow-family-mismatch]  (cli_plan.c)
 *   lorafuse generate --model CKPT --prompt TEXT [...]                               (cli_generate.c)
 *
 * Each returns the process exit code: 0 success, 1 failure (the library's message printed), 2 usage;
 * or LF_CLI_USAGE after its own message when the whole `lorafuse` usage should follow (main.c prints
 * it and exits 2), so that no subcommand calls back into main.c.
 */
#ifndef LF_CLI_H
#define LF_CLI_H

#define LF_CLI_USAGE (-2)

int lf_cli_inspect(int argc, char **argv);
int lf_cli_merge(int argc, char **argv);
int lf_cli_plan(int argc, char **argv);
int lf_cli_generate(int argc, char **argv);
int lf_cli_extract(int argc, char **argv); /* cli_extract.c */

#endif
