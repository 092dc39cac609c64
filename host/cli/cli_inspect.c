/* cli_inspect.c: `lorafuse inspect FILE [--model CKPT] [--json]`: what an adapter file is (lf_inspect.h):
 * algorithms, components, ranks, alphas, DoRA, base family, trigger words, metadata, and with --model
 * the matched and unmatched modules and every shape problem. Printed as text, or with --json as the
 * report object. Exit 1 when the model check finds a problem.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "cli.h"
#include "host/base/text.h"
#include "lorafuse/lf_inspect.h"

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
        if (cJSON_IsString(it)) lf_cli_print_escaped("\n  %s", it->valuestring);
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
        printf("%s", sep);
        lf_cli_print_escaped("%s", it->string);
        printf(" %d", (int)it->valuedouble);
        sep = ", ";
    }
    printf("\n");
}

static void lf_print_inspect(const cJSON *r) {
    const cJSON *base = cJSON_GetObjectItemCaseSensitive(r, "base");
    lf_cli_print_escaped("file: %s\n", cJSON_GetObjectItemCaseSensitive(r, "file")->valuestring);
    printf("tensors: %d, modules: %d\n", (int)cJSON_GetObjectItemCaseSensitive(r, "tensors")->valuedouble,
           (int)cJSON_GetObjectItemCaseSensitive(r, "modules")->valuedouble);
    printf("base model: %s", cJSON_GetObjectItemCaseSensitive(base, "family")->valuestring);
    lf_cli_print_escaped(" (%s)\n", cJSON_GetObjectItemCaseSensitive(base, "evidence")->valuestring);
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
        char q[104]; /* a value is shown up to 100 characters, then "..." */
        lf_cli_print_escaped("  %s: ", it->string);
        printf("%s\n", lf_esc(q, sizeof q, it->valuestring, strlen(it->valuestring)));
    }
    const cJSON *mo = cJSON_GetObjectItemCaseSensitive(r, "model");
    if (mo) {
        lf_cli_print_escaped("against %s", cJSON_GetObjectItemCaseSensitive(mo, "path")->valuestring);
        printf(" (%s): %d modules matched, %d unmatched\n", cJSON_GetObjectItemCaseSensitive(mo, "family")->valuestring,
               (int)cJSON_GetObjectItemCaseSensitive(mo, "matched")->valuedouble,
               (int)cJSON_GetObjectItemCaseSensitive(mo, "unmatched_count")->valuedouble);
        lf_print_list("unmatched modules", cJSON_GetObjectItemCaseSensitive(mo, "unmatched"), 20);
        lf_print_list("problems", cJSON_GetObjectItemCaseSensitive(mo, "problems"), 20);
    }
    lf_print_list("warnings", cJSON_GetObjectItemCaseSensitive(r, "warnings"), 20);
}

/* The one call into lf_inspect: print its report; 1 when it fails or finds a problem, else 0. */
static int lf_inspect_report(const char *file, const char *model, int json) {
    char *text = NULL;
    if (lf_inspect(file, model, &text) != LF_OK) {
        lf_err_escape(LF_OK);
        fprintf(stderr, "lorafuse inspect: %s\n", lf_last_error());
        return 1;
    }
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

static const char lf_inspect_usage_text[] = "usage: lorafuse inspect FILE [--model CKPT] [--json]\n";

static const char lf_inspect_help_text[] =
    "What an adapter file is: algorithms, components, ranks, alphas, DoRA, base family, trigger words,\n"
    "metadata; with --model every module resolved against the checkpoint (exit 1 when one does not fit).\n"
    "example:\n"
    "  lorafuse inspect models/lora/mini_lora.safetensors --model models/sd15-mini.safetensors\n";

static const lf_cli_opt lf_inspect_cli_opts[] = {{"model", 1, 0}, {"json", 0, 0}, {NULL, 0, 0}};

int lf_cli_inspect(int argc, char **argv) {
    const char *model = NULL;
    int json = 0, o;
    char *v, **rest;
    lf_cli_parser p;
    lf_cli_parser_init(&p, "inspect", lf_inspect_usage_text, lf_inspect_help_text, lf_inspect_cli_opts, argc, argv);
    while ((o = lf_cli_next(&p, &v)) >= 0) {
        if (o == 0) model = v;
        else json = 1;
    }
    int n, rc = lf_cli_finish(&p, o, 1, &rest, &n);
    if (rc >= 0) return rc;
    if (n == 1) return lf_inspect_report(rest[0], model, json);
    fprintf(stderr, "lorafuse inspect: no FILE given\n");
    return lf_cli_bad_usage(&p);
}
