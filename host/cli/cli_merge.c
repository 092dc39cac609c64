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
            if (!lf_cli_parse_lora("merge", argv[++i], &in[n++])) goto done; /* it said why */
        } else if (!strcmp(a, "--threads") && has) {
            if (!lf_cli_count("merge", "--threads", argv[++i], 0, &opts.threads)) goto done;
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
