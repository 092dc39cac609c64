/* cli.h: the subcommands of the lorafuse CLI, one file each; main.c dispatches to them.
 *
 *   lorafuse inspect FILE [--model CKPT] [--json]                                    (cli_inspect.c)
 *   lorafuse merge --model CKPT --lora PATH[:STRENGTH[:dyn=N]] [--lora ...] --output OUT ...  (cli_merge.c)
 *   lorafuse plan --model CKPT --prompt TEXT --steps N [--lora-dir DIR] [--json] [--auto-trigger]
 *                 [--lbw-presets FILE] [--allow-unmatched] [--allow-family-mismatch]  (cli_plan.c)
 *   lorafuse generate --model CKPT --prompt TEXT [...]                               (cli_generate.c)
 *   lorafuse extract --model CKPT (--lora ... | --tuned CKPT2) --output OUT ...       (cli_extract.c)
 *   lorafuse serve --model CKPT [--listen HOST:PORT] [...]                           (cli_serve.c)
 * Argument forms they share: cli_args.c.
 *
 * Each returns the process exit code: 0 success, 1 failure (the library's message printed), 2 usage;
 * or LF_CLI_USAGE after its own message when the whole `lorafuse` usage should follow (main.c prints
 * it and exits 2), so that no subcommand calls back into main.c.
 */
#ifndef LF_CLI_H
#define LF_CLI_H

#include "lorafuse/lf_merge.h"

#define LF_CLI_USAGE (-2)

int lf_cli_inspect(int argc, char **argv);
int lf_cli_merge(int argc, char **argv);
int lf_cli_plan(int argc, char **argv);
int lf_cli_generate(int argc, char **argv);
int lf_cli_extract(int argc, char **argv);
int lf_cli_serve(int argc, char **argv);

/* `--lora PATH[:STRENGTH[:dyn=N]]`, parsed from the right so that paths may hold ':' (arg is cut in
 * place; in->path points into it). Prints "lorafuse CMD: ..." with the reason and returns 0 on a bad
 * argument. */
int lf_cli_parse_lora(const char *cmd, char *arg, lf_merge_input *in);
/* Number options in the grammar of host/base/number.h: an integer in [lo, hi], a number in [lo, hi],
 * a count in [lo, 2^20]. Each prints "lorafuse CMD: bad OPT 'ARG' (LO to HI)" and returns 0 when bad. */
int lf_cli_int(const char *cmd, const char *opt, const char *arg, long long lo, long long hi, long long *out);
int lf_cli_num(const char *cmd, const char *opt, const char *arg, double lo, double hi, double *out);
int lf_cli_count(const char *cmd, const char *opt, const char *arg, long long lo, int *out);
/* printf(fmt, s) with s escaped for the terminal (host/base/text.h), whole: for text that comes from
 * input (a prompt, a path, a file's metadata); "" when out of memory. */
void lf_cli_print_escaped(const char *fmt, const char *s);

#endif
