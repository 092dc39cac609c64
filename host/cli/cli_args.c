/* cli_args.c: argument forms several subcommands share: `--lora PATH[:STRENGTH[:dyn=N]]` (merge,
 * extract), number options and printing what a file or the user wrote, with the number grammar of host/base/number.h and the input
 * quoted escaped (host/base/text.h) in every message.
 */
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
