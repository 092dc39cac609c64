/* main.c: the lorafuse command-line interface.
 *
 *   lorafuse inspect FILE [--model CKPT] [--json]
 *   lorafuse merge --model CKPT --lora PATH[:STRENGTH[:dyn=N]] [--lora ...] --output OUT.safetensors
 *                  [--allow-unmatched] [--allow-family-mismatch] [--threads N] [--reference] [--stats]
 *
 * Exit codes: 0 success, 1 failure (the library's message is printed), 2 usage error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "lorafuse/lf_config.h"
#include "lorafuse/lf_inspect.h"
#include "lorafuse/lf_merge.h"
#include "cli.h" /* issue 4: lorafuse plan */

static void lf_usage(FILE *f) {
    fputs("usage:\n"
          "  lorafuse inspect FILE [--model CKPT] [--json]\n"
          "  lorafuse merge --model CKPT --lora PATH[:STRENGTH[:dyn=N]] [--lora ...] --output OUT\n"
          "                 [--allow-unmatched] [--allow-family-mismatch] [--threads N] [--reference] [--stats]\n"
          "  lorafuse plan --model CKPT --prompt TEXT --steps N [--lora-dir DIR] [--json] [--auto-trigger]\n"
          "  lorafuse generate --model CKPT --prompt TEXT [--steps N] [--sampler NAME] [--seed N] ... (generate --help)\n"
          "  lorafuse version\n",
          f);
}

static int lf_fail(const char *cmd) {
    fprintf(stderr, "lorafuse %s: %s\n", cmd, lf_last_error());
    return 1;
}

static int lf_parse_float(const char *s, float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno) return 0;
    *out = (float)v;
    return 1;
}

static int lf_parse_int(const char *s, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < 0 || v > 1 << 20) return 0;
    *out = (int)v;
    return 1;
}

/* PATH[:STRENGTH[:dyn=N]], parsed from the right so that paths may contain ':'. */
static int lf_parse_lora(char *arg, lf_merge_input *in) {
    in->path = arg;
    in->strength = 1.0f;
    in->dyn_rank = 0;
    char *c = strrchr(arg, ':');
    if (c && strncmp(c + 1, "dyn=", 4) == 0) {
        if (!lf_parse_int(c + 5, &in->dyn_rank) || in->dyn_rank == 0) return 0;
        *c = '\0';
        c = strrchr(arg, ':');
    }
    if (c && lf_parse_float(c + 1, &in->strength)) *c = '\0';
    return *arg != '\0';
}

static void lf_print_list(const char *label, const cJSON *arr, int limit) {
    int n = cJSON_GetArraySize(arr), i = 0;
    if (!n) return;
    printf("%s (%d):", label, n);
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        if (i++ == limit) {
            printf("\n  ... %d more", n - limit);
            break;
        }
        if (cJSON_IsString(it)) printf("\n  %s", it->valuestring);
        else printf(" %g", it->valuedouble);
    }
    printf("\n");
}

static void lf_print_counts(const char *label, const cJSON *obj) {
    const cJSON *it;
    const char *sep = " ";
    if (!cJSON_GetArraySize(obj)) return;
    printf("%s:", label);
    cJSON_ArrayForEach(it, obj) {
        printf("%s%s %d", sep, it->string, (int)it->valuedouble);
        sep = ", ";
    }
    printf("\n");
}

static void lf_print_inspect(const cJSON *r) {
    const cJSON *base = cJSON_GetObjectItemCaseSensitive(r, "base");
    printf("file: %s\n", cJSON_GetObjectItemCaseSensitive(r, "file")->valuestring);
    printf("tensors: %d, modules: %d\n", (int)cJSON_GetObjectItemCaseSensitive(r, "tensors")->valuedouble,
           (int)cJSON_GetObjectItemCaseSensitive(r, "modules")->valuedouble);
    printf("base model: %s (%s)\n", cJSON_GetObjectItemCaseSensitive(base, "family")->valuestring,
           cJSON_GetObjectItemCaseSensitive(base, "evidence")->valuestring);
    lf_print_counts("algorithms", cJSON_GetObjectItemCaseSensitive(r, "algorithms"));
    lf_print_counts("components", cJSON_GetObjectItemCaseSensitive(r, "components"));
    lf_print_list("ranks", cJSON_GetObjectItemCaseSensitive(r, "ranks"), 16);
    lf_print_list("alphas", cJSON_GetObjectItemCaseSensitive(r, "alphas"), 16);
    lf_print_counts("DoRA", cJSON_GetObjectItemCaseSensitive(r, "dora"));
    lf_print_list("trigger words", cJSON_GetObjectItemCaseSensitive(r, "trigger_words"), 20);
    lf_print_list("unknown tensors", cJSON_GetObjectItemCaseSensitive(r, "unknown_tensors"), 10);
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(r, "metadata"), *it;
    if (cJSON_GetArraySize(meta)) printf("metadata:\n");
    cJSON_ArrayForEach(it, meta) {
        size_t n = strlen(it->valuestring);
        printf("  %s: %.*s%s\n", it->string, n > 100 ? 100 : (int)n, it->valuestring, n > 100 ? " ..." : "");
    }
    const cJSON *mo = cJSON_GetObjectItemCaseSensitive(r, "model");
    if (mo) {
        printf("against %s (%s): %d modules matched, %d unmatched\n",
               cJSON_GetObjectItemCaseSensitive(mo, "path")->valuestring,
               cJSON_GetObjectItemCaseSensitive(mo, "family")->valuestring,
               (int)cJSON_GetObjectItemCaseSensitive(mo, "matched")->valuedouble,
               (int)cJSON_GetObjectItemCaseSensitive(mo, "unmatched_count")->valuedouble);
        lf_print_list("unmatched modules", cJSON_GetObjectItemCaseSensitive(mo, "unmatched"), 20);
        lf_print_list("problems", cJSON_GetObjectItemCaseSensitive(mo, "problems"), 20);
    }
    lf_print_list("warnings", cJSON_GetObjectItemCaseSensitive(r, "warnings"), 20);
}

static int lf_cmd_inspect(int argc, char **argv) {
    const char *file = NULL, *model = NULL;
    int json = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (argv[i][0] != '-' && !file) file = argv[i];
        else {
            fprintf(stderr, "lorafuse inspect: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!file) {
        lf_usage(stderr);
        return 2;
    }
    char *text = NULL;
    if (lf_inspect(file, model, &text) != LF_OK) return lf_fail("inspect");
    cJSON *rep = cJSON_Parse(text);
    if (!rep) {
        free(text);
        fprintf(stderr, "lorafuse inspect: out of memory\n");
        return 1;
    }
    if (json) puts(text);
    else lf_print_inspect(rep);
    free(text);
    const cJSON *mo = cJSON_GetObjectItemCaseSensitive(rep, "model");
    int bad = mo && cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(mo, "problems")) > 0;
    cJSON_Delete(rep);
    return bad ? 1 : 0;
}

static int lf_cmd_merge(int argc, char **argv) {
    const char *model = NULL, *output = NULL;
    lf_merge_input *in = calloc((size_t)argc, sizeof *in);
    size_t n = 0;
    lf_merge_opts opts;
    memset(&opts, 0, sizeof opts);
    int stats_json = 0, rc = 2;
    if (!in) return 1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--model") && has) model = argv[++i];
        else if (!strcmp(a, "--output") && has) output = argv[++i];
        else if (!strcmp(a, "--lora") && has) {
            if (!lf_parse_lora(argv[++i], &in[n++])) {
                fprintf(stderr, "lorafuse merge: bad --lora '%s' (expected PATH[:STRENGTH[:dyn=N]])\n", argv[i]);
                goto done;
            }
        } else if (!strcmp(a, "--threads") && has) {
            if (!lf_parse_int(argv[++i], &opts.threads)) {
                fprintf(stderr, "lorafuse merge: bad --threads '%s'\n", argv[i]);
                goto done;
            }
        } else if (!strcmp(a, "--allow-unmatched")) opts.plan.allow_unmatched = 1;
        else if (!strcmp(a, "--allow-family-mismatch")) opts.plan.allow_family = 1;
        else if (!strcmp(a, "--reference")) opts.reference = 1;
        else if (!strcmp(a, "--stats")) stats_json = 1;
        else {
            fprintf(stderr, "lorafuse merge: unexpected argument '%s'\n", a);
            goto done;
        }
    }
    if (!model || !output || !n) {
        fprintf(stderr, "lorafuse merge: --model, --output and at least one --lora are required\n");
        lf_usage(stderr);
        goto done;
    }
    lf_merge_stats st;
    if (lf_merge(model, in, n, output, &opts, &st) != LF_OK) {
        rc = lf_fail("merge");
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

int main(int argc, char **argv) {
    if (argc < 2) {
        lf_usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "inspect")) return lf_cmd_inspect(argc, argv);
    if (!strcmp(cmd, "merge")) return lf_cmd_merge(argc, argv);
    if (!strcmp(cmd, "plan")) return lf_cli_plan(argc, argv);
    if (!strcmp(cmd, "generate")) return lf_cli_generate(argc, argv);
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
