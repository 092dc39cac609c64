/* cli_merge.c: `lorafuse merge`: bake adapters into a checkpoint (lf_merge.h).
 *
 *   lorafuse merge --model CKPT --lora PATH[:STRENGTH[:dyn=N]] [--lora ...] --output OUT.safetensors
 *                  [--force] [--allow-unmatched] [--allow-family-mismatch] [--threads N] [--reference]
 *                  [--stats] [--backend cpu|cuda] [--device N]
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
#include "host/cuda/merge_device.h"
#include "host/base/util.h"
#include "lorafuse/lf_merge.h"
#include "lorafuse/lf_prompt_tags.h"

static const char lf_merge_usage_text[] =
    "usage: lorafuse merge --model CKPT --lora PATH[:STRENGTH[:dyn=N]] [--lora ...] --output OUT [--force]\n"
    "                      [--allow-unmatched] [--allow-family-mismatch] [--threads N] [--reference] [--stats]\n"
    "                      [--backend cpu|cuda] [--device N]\n";

static const char lf_merge_help_text[] =
    "Bakes adapters into a copy of the checkpoint (W = W0 + sum of each adapter's contribution, rounded once).\n"
    "An existing OUT is refused unless --force; OUT may never be the model or an adapter. Nothing is written\n"
    "until every adapter is checked. --threads 0 (default) uses every core; --stats prints a JSON line.\n"
    "--backend cuda patches every layer on GPU --device N (0) with the apply kernels (default cpu).\n"
    "example:\n"
    "  lorafuse merge --model models/sd15-mini.safetensors --lora models/lora/mini_lora.safetensors:0.8 \\\n"
    "      --output merged.safetensors\n";

enum { M_MODEL, M_OUTPUT, M_LORA, M_THREADS, M_UNMATCHED, M_FAMILY, M_REFERENCE, M_FORCE, M_STATS, M_BACKEND, M_DEVICE };

static const lf_cli_opt lf_merge_cli_opts[] = {
    [M_MODEL] = {"model", 1, 0},          [M_OUTPUT] = {"output", 1, 0},   [M_LORA] = {"lora", 1, 1},
    [M_THREADS] = {"threads", 1, 0},      [M_UNMATCHED] = {"allow-unmatched", 0, 0},
    [M_FAMILY] = {"allow-family-mismatch", 0, 0}, [M_REFERENCE] = {"reference", 0, 0},
    [M_FORCE] = {"force", 0, 0},          [M_STATS] = {"stats", 0, 0},     [M_BACKEND] = {"backend", 1, 0},
    [M_DEVICE] = {"device", 1, 0},        {NULL, 0, 0}};

int lf_cli_merge(int argc, char **argv) {
    const char *model = NULL, *output = NULL;
    lf_merge_input *in = calloc((size_t)argc, sizeof *in);
    size_t n = 0;
    lf_merge_opts opts;
    memset(&opts, 0, sizeof opts);
    int stats_json = 0, rc = 2, o = LF_CLI_END, ok = 1, device = 0;
    char *v, **rest;
    if (!in) return 1;
    lf_cli_parser p;
    lf_cli_parser_init(&p, "merge", lf_merge_usage_text, lf_merge_help_text, lf_merge_cli_opts, argc, argv);
    while (ok && (o = lf_cli_next(&p, &v)) >= 0) {
        switch (o) {
        case M_MODEL: model = v; break;
        case M_OUTPUT: output = v; break;
        case M_LORA: ok = lf_cli_parse_lora("merge", v, &in[n++]); break; /* it says why */
        case M_THREADS: ok = lf_cli_count("merge", "--threads", v, 0, &opts.threads); break;
        case M_UNMATCHED: opts.plan.allow_unmatched = 1; break;
        case M_FAMILY: opts.plan.allow_family = 1; break;
        case M_REFERENCE: opts.reference = 1; break;
        case M_FORCE: opts.overwrite = 1; break;
        case M_STATS: stats_json = 1; break;
        case M_BACKEND:
            if (!strcmp(v, "cuda")) opts.apply = lf_dev_merge_apply, opts.apply_ctx = &device;
            else if (!strcmp(v, "cpu")) opts.apply = NULL;
            else ok = lf_cli_bad_choice("merge", "--backend", v, "cpu or cuda");
            break;
        case M_DEVICE: ok = lf_cli_device("merge", v, &device); break;
        default: break;
        }
    }
    int n_rest;
    if ((rc = lf_cli_finish(&p, ok ? o : LF_CLI_BAD, 0, &rest, &n_rest)) >= 0) goto done;
    rc = 2;
    if (!model || !output || !n)
        fprintf(stderr, "lorafuse merge: --model, --output and at least one --lora are required\n");
    else if (!*output || !*model)
        fprintf(stderr, "lorafuse merge: %s is empty\n", !*output ? "--output" : "--model");
    else
        rc = 0;
    if (rc) {
        rc = lf_cli_bad_usage(&p);
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
