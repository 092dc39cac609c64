/* cli_merge.c: `lorafuse merge`: bake adapters into a checkpoint (lf_merge.h).
 *
 *   lorafuse merge --model CKPT --lora PATH[:STRENGTH[:dyn=N]] [--lora ...] --output OUT.safetensors
 *                  [--force] [--allow-unmatched] [--allow-family-mismatch] [--threads N] [--reference]
 *                  [--stats]
 *
 * An existing OUT is refused unless --force; OUT may never be the model or an adapter, nor an existing
 * non-regular file (lf_merge.h). An empty --output is a usage error.
 * A summary line (tensors patched and copied, bytes, read / compute / write seconds) goes to stderr;
 * --stats prints the same as one JSON object on stdout.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "host/base/number.h"
#include "host/base/text.h"
#include "host/base/util.h"
#include "lorafuse/lf_merge.h"
#include "lorafuse/lf_prompt_tags.h"

static int lf_parse_int(const char *s, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < 0 || v > 1 << 20) return 0;
    *out = (int)v;
    return 1;
}

/* PATH[:STRENGTH[:dyn=N]], parsed from the right so that paths may contain ':'. STRENGTH is a number
 * of host/base/number.h, as in prompt tags: a number out of range, or what strtod would read but that
 * grammar refuses (hex, inf, nan), is reported here rather than taken for part of the path ("x:inf:1"
 * names a file "x:inf"). Prints the reason and returns 0 on a bad argument. */
static int lf_parse_lora(char *arg, lf_merge_input *in) {
    char q[LF_ESC_PART], qa[LF_ESC_PART];
    lf_esc(qa, sizeof qa, arg, strlen(arg));
    in->path = arg;
    in->strength = 1.0f;
    in->dyn_rank = 0;
    char *c = strrchr(arg, ':');
    if (c && lf_has_prefix(c + 1, "dyn=")) {
        long long d = 0;
        if (lf_num_parse_int(c + 5, strlen(c + 5), 1, LF_TAG_MAX_DYN, &d) != LF_NUM_OK) {
            fprintf(stderr, "lorafuse merge: --lora '%s': dyn must be an integer from 1 to %d, not '%s'\n", qa,
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
            fprintf(stderr, "lorafuse merge: --lora '%s': strength '%s' is %s\n", qa,
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
    if (!*arg) fprintf(stderr, "lorafuse merge: --lora '%s': no path\n", qa);
    return *arg != '\0';
}

int lf_cli_merge(int argc, char **argv) {
    const char *model = NULL, *output = NULL;
    lf_merge_input *in = calloc((size_t)argc, sizeof *in);
    size_t n = 0;
    lf_merge_opts opts;
    memset(&opts, 0, sizeof opts);
    int stats_json = 0, rc = 2;
    char q[LF_ESC_PART];
    if (!in) return 1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--model") && has) model = argv[++i];
        else if (!strcmp(a, "--output") && has) output = argv[++i];
        else if (!strcmp(a, "--lora") && has) {
            if (!lf_parse_lora(argv[++i], &in[n++])) goto done; /* it said why */
        } else if (!strcmp(a, "--threads") && has) {
            if (!lf_parse_int(argv[++i], &opts.threads)) {
                fprintf(stderr, "lorafuse merge: bad --threads '%s'\n", lf_esc(q, sizeof q, argv[i], strlen(argv[i])));
                goto done;
            }
        } else if (!strcmp(a, "--allow-unmatched")) opts.plan.allow_unmatched = 1;
        else if (!strcmp(a, "--allow-family-mismatch")) opts.plan.allow_family = 1;
        else if (!strcmp(a, "--reference")) opts.reference = 1;
        else if (!strcmp(a, "--force")) opts.overwrite = 1;
        else if (!strcmp(a, "--stats")) stats_json = 1;
        else {
            fprintf(stderr, "lorafuse merge: unexpected argument '%s'\n", lf_esc(q, sizeof q, a, strlen(a)));
            goto done;
        }
    }
    if (!model || !output || !n) {
        fprintf(stderr, "lorafuse merge: --model, --output and at least one --lora are required\n");
        rc = LF_CLI_USAGE;
        goto done;
    }
    if (!*output || !*model) {
        fprintf(stderr, "lorafuse merge: %s is empty\n", !*output ? "--output" : "--model");
        rc = LF_CLI_USAGE;
        goto done;
    }
    lf_merge_stats st;
    if (lf_merge(model, in, n, output, &opts, &st) != LF_OK) {
        lf_err_escape(LF_OK);
        fprintf(stderr, "lorafuse merge: %s\n", lf_last_error());
        rc = 1;
        goto done;
    }
    fprintf(stderr, "lorafuse merge: %zu adapter(s) -> %s: %zu tensors patched, %zu copied, %.1f MB "
            "(read+check %.2f s, compute %.2f s, write %.2f s)\n", n, output, st.tensors_patched,
            st.tensors_copied, (double)st.bytes_out / 1e6, st.t_read, st.t_compute, st.t_write);
    if (stats_json)
        printf("{\"read_s\": %.4f, \"compute_s\": %.4f, \"write_s\": %.4f, \"patched\": %zu, \"copied\": %zu, "
               "\"bytes\": %zu}\n", st.t_read, st.t_compute, st.t_write, st.tensors_patched, st.tensors_copied,
               st.bytes_out);
    rc = 0;
done:
    free(in);
    return rc;
}
