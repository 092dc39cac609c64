/* cli_args.c: what every subcommand shares: the option parser (getopt_long: `--opt value` and
 * `--opt=value`, -h/--help, unknown options named with the closest one, missing values and repeated
 * single-value options refused), `--lora PATH[:STRENGTH[:dyn=N]]` (merge, extract), number options and
 * printing what a file or the user wrote, with the number grammar of host/base/number.h and the input
 * quoted escaped (host/base/text.h) in every message.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "host/base/number.h"
#include "host/base/strbuf.h"
#include "host/base/text.h"
#include "host/base/util.h"
#include "lorafuse/lf_prompt_tags.h"

/* PATH[:STRENGTH[:dyn=N]], parsed from the right so that paths may contain ':'. STRENGTH is a number
 * of host/base/number.h, as in prompt tags: a number out of range, or what strtod would read but that
 * grammar refuses (hex, inf, nan), is reported here rather than taken for part of the path ("x:inf:1"
 * names a file "x:inf"). Prints the reason and returns 0 on a bad argument. */
int lf_cli_parse_lora(const char *cmd, char *arg, lf_merge_input *in) {
    char q[LF_ESC_PART], qa[LF_ESC_PART];
    lf_esc(qa, sizeof qa, arg, strlen(arg));
    in->path = arg;
    in->strength = 1.0f;
    in->dyn_rank = 0;
    char *c = strrchr(arg, ':');
    if (c && lf_has_prefix(c + 1, "dyn=")) {
        long long d = 0;
        if (lf_num_parse_int(c + 5, strlen(c + 5), 1, LF_TAG_MAX_DYN, &d) != LF_NUM_OK) {
            fprintf(stderr, "lorafuse %s: --lora '%s': dyn must be an integer from 1 to %d, not '%s'\n", cmd, qa,
                    LF_TAG_MAX_DYN, lf_esc(q, sizeof q, c + 5, strlen(c + 5)));
            return 0;
        }
        in->dyn_rank = (int)d;
        *c = '\0';
        c = strrchr(arg, ':');
    }
    if (c) {
        double v;
        char *end = c + 1;
        lf_num_res r = lf_num_parse(c + 1, strlen(c + 1), LF_NUM_F32_MAX, &v, NULL);
        if (r == LF_NUM_SYNTAX && c[1]) (void)strtod(c + 1, &end); /* what strtod alone would have taken */
        if (r == LF_NUM_RANGE || (r == LF_NUM_SYNTAX && c[1] && !*end)) {
            fprintf(stderr, "lorafuse %s: --lora '%s': strength '%s' is %s\n", cmd, qa,
                    lf_esc(q, sizeof q, c + 1, strlen(c + 1)),
                    r == LF_NUM_RANGE ? "out of range (at most 3.4e38 in magnitude)"
                                      : "not a decimal number (no hex, inf or nan)");
            return 0;
        }
        if (r == LF_NUM_OK) {
            in->strength = (float)v;
            *c = '\0';
        }
    }
    if (!*arg) fprintf(stderr, "lorafuse %s: --lora '%s': no path\n", cmd, qa);
    return *arg != '\0';
}

int lf_cli_int(const char *cmd, const char *opt, const char *arg, long long lo, long long hi, long long *out) {
    if (lf_num_arg_int(opt, arg, lo, hi, out) == LF_OK) return 1;
    fprintf(stderr, "lorafuse %s: %s\n", cmd, lf_last_error());
    return 0;
}

int lf_cli_num(const char *cmd, const char *opt, const char *arg, double lo, double hi, double *out) {
    if (lf_num_arg(opt, arg, lo, hi, out) == LF_OK) return 1;
    fprintf(stderr, "lorafuse %s: %s\n", cmd, lf_last_error());
    return 0;
}

int lf_cli_count(const char *cmd, const char *opt, const char *arg, long long lo, int *out) {
    long long v;
    if (!lf_cli_int(cmd, opt, arg, lo, 1 << 20, &v)) return 0;
    *out = (int)v;
    return 1;
}

void lf_cli_print_escaped(const char *fmt, const char *s) {
    lf_sbuf b = {0};
    lf_sb_escape(&b, s, strlen(s));
    printf(fmt, b.oom || !b.s ? "" : b.s);
    lf_sb_free(&b);
}

/* ---- options (getopt_long) -------------------------------------------------------------------- */

/* Edit distance of a and b (at most 63 characters of each are compared). */
static size_t lf_cli_distance(const char *a, size_t na, const char *b) {
    size_t nb = strlen(b), row[64];
    if (na > 63) na = 63;
    if (nb > 63) nb = 63;
    for (size_t j = 0; j <= nb; j++) row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

void lf_cli_parser_init(lf_cli_parser *p, const char *cmd, const char *usage, const char *help,
                        const lf_cli_opt *opts, int argc, char **argv) {
    memset(p, 0, sizeof *p);
    p->cmd = cmd;
    p->usage = usage;
    p->help = help;
    p->opts = opts;
    p->argc = argc - 1; /* getopt sees the subcommand as the program name */
    p->argv = argv + 1;
    while (opts[p->n].name) p->n++;
    for (int i = 0; i < p->n; i++) {
        p->lo[i].name = opts[i].name;
        p->lo[i].has_arg = opts[i].arg ? required_argument : no_argument;
        p->lo[i].flag = NULL;
        p->lo[i].val = LF_CLI_OPT_BASE + i;
    }
    p->lo[p->n].name = "help";
    p->lo[p->n].has_arg = no_argument;
    p->lo[p->n].val = 'h';
    optind = 0; /* 0: GNU getopt starts over (a second parser in one process) */
    opterr = 0;
}

int lf_cli_bad_usage(const lf_cli_parser *p) {
    fprintf(stderr, "%s(lorafuse %s --help shows every option with an example)\n", p->usage, p->cmd);
    return 2;
}

/* An unknown option as written, and the known option nearest to its name (edit distance), or the
 * options an ambiguous abbreviation could mean. */
static void lf_cli_unknown(const lf_cli_parser *p, const char *arg) {
    char q[LF_ESC_PART];
    const char *name = arg;
    while (*name == '-') name++;
    size_t n = strcspn(name, "=");
    size_t best = (size_t)-1, n_pre = 0;
    const char *closest = "help";
    char pre[160] = "";
    for (int i = 0; i <= p->n; i++) {
        const char *cand = i < p->n ? p->opts[i].name : "help";
        size_t d = lf_cli_distance(name, n, cand);
        if (n && !strncmp(cand, name, n) && n_pre++ < 4) /* getopt_long takes a unique abbreviation */
            snprintf(pre + strlen(pre), sizeof pre - strlen(pre), "%s--%s", n_pre > 1 ? ", " : "", cand);
        if (d < best) best = d, closest = cand;
    }
    if (n_pre > 1)
        fprintf(stderr, "lorafuse %s: option '%s' is ambiguous (%s%s)\n", p->cmd, lf_esc(q, sizeof q, arg, strlen(arg)),
                pre, n_pre > 4 ? ", ..." : "");
    else
        fprintf(stderr, "lorafuse %s: unknown option '%s' (closest: --%s)\n", p->cmd,
                lf_esc(q, sizeof q, arg, strlen(arg)), closest);
}

int lf_cli_next(lf_cli_parser *p, char **val) {
    *val = NULL;
    for (;;) {
        int idx = -1;
        int c = getopt_long(p->argc, p->argv, ":h", p->lo, &idx);
        if (c == -1) return LF_CLI_END;
        if (c == 'h') {
            fputs(p->usage, stdout);
            fputs(p->help, stdout);
            return LF_CLI_HELP;
        }
        if (c == ':' || c == '?') {
            const char *arg = p->argv[optind - 1];
            int o = optopt - LF_CLI_OPT_BASE;
            if (c == ':' && o >= 0 && o < p->n)
                fprintf(stderr, "lorafuse %s: option --%s needs a value\n", p->cmd, p->opts[o].name);
            else if (o >= 0 && o < p->n)
                fprintf(stderr, "lorafuse %s: option --%s takes no value\n", p->cmd, p->opts[o].name);
            else if (optopt && optopt != '?') {
                char s[3] = {'-', (char)optopt, '\0'};
                lf_cli_unknown(p, s);
            } else
                lf_cli_unknown(p, arg);
            return LF_CLI_BAD;
        }
        int o = c - LF_CLI_OPT_BASE;
        if (p->seen[o] && !p->opts[o].repeat && p->opts[o].arg) {
            fprintf(stderr, "lorafuse %s: option --%s is given more than once\n", p->cmd, p->opts[o].name);
            return LF_CLI_BAD;
        }
        p->seen[o] = 1;
        *val = optarg;
        return o;
    }
}

int lf_cli_operands(lf_cli_parser *p, char ***rest) {
    *rest = p->argv + optind;
    return p->argc - optind;
}

int lf_cli_finish(lf_cli_parser *p, int last, int max_operands, char ***rest, int *n) {
    if (last == LF_CLI_HELP) return 0;
    if (last != LF_CLI_END) return lf_cli_bad_usage(p); /* lf_cli_next or the option's parser said why */
    *n = lf_cli_operands(p, rest);
    if (*n <= max_operands) return -1;
    char q[LF_ESC_PART];
    const char *extra = (*rest)[max_operands];
    fprintf(stderr, "lorafuse %s: unexpected argument '%s'\n", p->cmd, lf_esc(q, sizeof q, extra, strlen(extra)));
    return lf_cli_bad_usage(p);
}

int lf_cli_backend(const char *cmd, const char *arg, lf_gen_backend *out) {
    if (!strcmp(arg, "auto")) *out = LF_GEN_AUTO;
    else if (!strcmp(arg, "cpu")) *out = LF_GEN_CPU;
    else if (!strcmp(arg, "cuda")) *out = LF_GEN_CUDA;
    else return lf_cli_bad_choice(cmd, "--backend", arg, "auto, cpu or cuda");
    return 1;
}

int lf_cli_dtype(const char *cmd, const char *opt, const char *arg, lf_dtype *out) {
    if (!strcmp(arg, "f16") || !strcmp(arg, "fp16")) *out = LF_F16;
    else if (!strcmp(arg, "bf16")) *out = LF_BF16;
    else if (!strcmp(arg, "f32") || !strcmp(arg, "fp32")) *out = LF_F32;
    else return lf_cli_bad_choice(cmd, opt, arg, "f16, bf16 or f32");
    return 1;
}

int lf_cli_batch_lora(const char *cmd, const char *arg, int *merged) {
    if (!strcmp(arg, "merged")) *merged = 1;
    else if (!strcmp(arg, "unmerged")) *merged = 0;
    else return lf_cli_bad_choice(cmd, "--batch-lora", arg, "merged or unmerged");
    return 1;
}

int lf_cli_device(const char *cmd, const char *arg, int *out) {
    long long n = 0;
    if (!lf_cli_int(cmd, "--device", arg, 0, 1023, &n)) return 0;
    *out = (int)n;
    return 1;
}

int lf_cli_bad_choice(const char *cmd, const char *opt, const char *arg, const char *choices) {
    char q[LF_ESC_PART];
    fprintf(stderr, "lorafuse %s: bad %s '%s' (%s)\n", cmd, opt, lf_esc(q, sizeof q, arg, strlen(arg)), choices);
    return 0;
}
