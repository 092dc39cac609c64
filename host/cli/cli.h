/* cli.h: the subcommands of the lorafuse CLI, one file each; main.c dispatches to them.
 *
 *   lorafuse inspect FILE [--model CKPT] [--json]                                    (cli_inspect.c)
 *   lorafuse merge --model CKPT --lora PATH[:STRENGTH[:dyn=N]] [--lora ...] --output OUT ...  (cli_merge.c)
 *   lorafuse plan --model CKPT --prompt TEXT --steps N [--lora-dir DIR] [--json] [--auto-trigger]
 *                 [--lbw-presets FILE] [--allow-unmatched] [--allow-family-mismatch]  (cli_plan.c)
 *   lorafuse generate --model CKPT --prompt TEXT [...]                               (cli_generate.c)
 *   lorafuse extract --model CKPT (--lora ... | --tuned CKPT2) --output OUT ...       (cli_extract.c)
 *   lorafuse serve --model CKPT [--listen HOST:PORT] [...]                           (cli_serve.c)
 *   lorafuse batch JOBS [--output-dir DIR] [--shard I/N] [--resume] [--dry-run] ...   (cli_batch.c)
 * Argument forms they share: cli_args.c.
 *
 *   lorafuse png-info FILE... [--json]                                              (cli_pnginfo.c)
 *
 * Each returns the process exit code: 0 success (and after --help), 1 failure (the library's message
 * printed), 2 usage (its message, then the subcommand's usage lines on stderr).
 */
#ifndef LF_CLI_H
#define LF_CLI_H

#include <getopt.h>

#include "lorafuse/lf_generate.h"
#include "lorafuse/lf_merge.h"

int lf_cli_inspect(int argc, char **argv);
int lf_cli_merge(int argc, char **argv);
int lf_cli_plan(int argc, char **argv);
int lf_cli_generate(int argc, char **argv);
int lf_cli_extract(int argc, char **argv);
int lf_cli_pnginfo(int argc, char **argv);
int lf_cli_serve(int argc, char **argv);
int lf_cli_batch(int argc, char **argv);

/* ---- options ---- */
/* One long option of a subcommand: name without "--", whether it takes a value, whether it may be
 * given more than once (a value option given twice is refused otherwise; flags may repeat). A table
 * ends with a NULL name. -h/--help is added to every table. */
typedef struct lf_cli_opt {
    const char *name;
    int arg, repeat;
} lf_cli_opt;

#define LF_CLI_MAX_OPTS 48
#define LF_CLI_OPT_BASE 256
enum { LF_CLI_END = -1, LF_CLI_HELP = -2, LF_CLI_BAD = -3 };

typedef struct lf_cli_parser {
    const char *cmd, *usage, *help; /* usage: the synopsis lines; help: options and an example */
    const lf_cli_opt *opts;
    int n, argc;
    char **argv;
    struct option lo[LF_CLI_MAX_OPTS + 2];
    unsigned char seen[LF_CLI_MAX_OPTS];
} lf_cli_parser;

/* argv[1] is the subcommand; options are read from argv[2] on (operands may come anywhere). */
void lf_cli_parser_init(lf_cli_parser *p, const char *cmd, const char *usage, const char *help,
                        const lf_cli_opt *opts, int argc, char **argv);
/* The next option: its index in opts (*val: its value or NULL); LF_CLI_END after the last;
 * LF_CLI_HELP after printing usage and help on stdout (exit 0); LF_CLI_BAD after printing why on
 * stderr ("lorafuse CMD: option --x needs a value", "unknown option '--stpes' (closest: --steps)",
 * "option --json takes no value", "option --model is given more than once"). */
int lf_cli_next(lf_cli_parser *p, char **val);
/* The operands left once lf_cli_next returned LF_CLI_END: their count, *rest the first. */
int lf_cli_operands(lf_cli_parser *p, char ***rest);
/* The usage lines and a pointer to --help on stderr; returns 2 (the usage exit code). */
int lf_cli_bad_usage(const lf_cli_parser *p);
/* After the option loop, `last` being lf_cli_next's last answer (LF_CLI_BAD when an option's value was
 * refused): -1 to go on with the operands (*rest, *n, at most max_operands); else the exit code, the
 * usage printed where it is an error: 0 after --help, 2 after a bad option or an operand too many
 * ("lorafuse CMD: unexpected argument 'X'"). */
int lf_cli_finish(lf_cli_parser *p, int last, int max_operands, char ***rest, int *n);
/* "lorafuse CMD: bad OPT 'ARG' (CHOICES)" for a value outside a fixed set; returns 0. */
int lf_cli_bad_choice(const char *cmd, const char *opt, const char *arg, const char *choices);

/* `--lora PATH[:STRENGTH[:dyn=N]]`, parsed from the right so that paths may hold ':' (arg is cut in
 * place; in->path points into it). Prints "lorafuse CMD: ..." with the reason and returns 0 on a bad
 * argument. */
int lf_cli_parse_lora(const char *cmd, char *arg, lf_merge_input *in);
/* Number options in the grammar of host/base/number.h: an integer in [lo, hi], a number in [lo, hi],
 * a count in [lo, 2^20]. Each prints "lorafuse CMD: bad OPT 'ARG' (LO to HI)" and returns 0 when bad. */
int lf_cli_int(const char *cmd, const char *opt, const char *arg, long long lo, long long hi, long long *out);
/* --backend auto|cpu|cuda into *out; 0 after a message when it is none of them. */
int lf_cli_backend(const char *cmd, const char *arg, lf_gen_backend *out);
/* --dtype / --vae-dtype (opt): f16 (fp16), bf16, f32 (fp32); 0 after a message when bad */
int lf_cli_dtype(const char *cmd, const char *opt, const char *arg, lf_dtype *out);
/* --device N (a CUDA device ordinal, 0 to 1023) into *out; 0 after a message. */
int lf_cli_device(const char *cmd, const char *arg, int *out);
/* --batch-lora merged|unmerged into *merged (lf_gen_opts.batch_merged); 0 after a message. */
int lf_cli_batch_lora(const char *cmd, const char *arg, int *merged);
int lf_cli_num(const char *cmd, const char *opt, const char *arg, double lo, double hi, double *out);
int lf_cli_count(const char *cmd, const char *opt, const char *arg, long long lo, int *out);
/* printf(fmt, s) with s escaped for the terminal (host/base/text.h), whole: for text that comes from
 * input (a prompt, a path, a file's metadata); "" when out of memory. */
void lf_cli_print_escaped(const char *fmt, const char *s);

#endif
