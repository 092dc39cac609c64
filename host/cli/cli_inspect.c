/* cli_inspect.c: `lorafuse inspect FILE [--model CKPT] [--json]`: what an adapter file is (lf_inspect.h):
 * algorithms, components, ranks, alphas, DoRA, base family, trigger words, metadata, and with --model
 * the matched and unmatched modules and every shape problem. Printed as text, or with --json as the
 * report object. Exit 1 when the model check finds a problem.
 * `lorafuse inspect --embeddings [DIR] [--json]` lists the textual-inversion embeddings of DIR (default
 * models/embeddings): name, vectors, which encoders they are for; exit 1 when a file cannot be read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "cli.h"
#include "host/base/text.h"
#include "lorafuse/lf_embeddings.h"
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

/* One embedding as a JSON object; *bad set when it cannot be read. */
static cJSON *lf_embedding_json(lf_embedding *e, int *bad) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", e->name);
    cJSON_AddStringToObject(o, "file", e->path);
    if (e->pickle) {
        cJSON_AddStringToObject(o, "kind", "pickle");
        cJSON_AddStringToObject(o, "note", "not read, for safety; convert it to .safetensors");
        return o;
    }
    if (lf_embedding_load(e) != LF_OK) {
        *bad = 1;
        cJSON_AddStringToObject(o, "kind", "error");
        cJSON_AddStringToObject(o, "error", lf_last_error());
        return o;
    }
    cJSON_AddStringToObject(o, "kind", e->parts == 2 ? "sdxl" : "one-encoder");
    cJSON_AddNumberToObject(o, "vectors", (double)e->vectors);
    cJSON *w = cJSON_AddArrayToObject(o, "width");
    for (int k = 0; k < e->parts; k++) cJSON_AddItemToArray(w, cJSON_CreateNumber((double)e->width[k]));
    return o;
}

/* inspect --embeddings: every embedding of dir, read; 1 when one cannot be read. */
static int lf_inspect_embeddings(const char *dir, int json) {
    lf_tokenizer *tok = NULL;
    lf_embeddings *db = NULL;
    if (lf_tokenizer_load_default(&tok) != LF_OK || lf_embeddings_open(dir, 0, tok, &db) != LF_OK) {
        lf_err_escape(LF_OK);
        fprintf(stderr, "lorafuse inspect: %s\n", lf_last_error());
        lf_tokenizer_free(tok);
        return 1;
    }
    int bad = 0;
    cJSON *r = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(r, "embeddings");
    cJSON_AddStringToObject(r, "dir", dir);
    for (size_t i = 0; i < db->n; i++) cJSON_AddItemToArray(arr, lf_embedding_json(&db->v[i], &bad));
    if (json) {
        char *s = cJSON_Print(r);
        if (s) puts(s);
        free(s);
    } else {
        lf_cli_print_escaped("embeddings in %s", dir);
        printf(" (%zu):\n", db->n);
        const cJSON *it;
        cJSON_ArrayForEach(it, arr) {
            const char *kind = cJSON_GetObjectItemCaseSensitive(it, "kind")->valuestring;
            lf_cli_print_escaped("  %-16s ", cJSON_GetObjectItemCaseSensitive(it, "name")->valuestring);
            const cJSON *w = cJSON_GetObjectItemCaseSensitive(it, "width");
            int v = (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, "vectors"));
            if (!strcmp(kind, "pickle")) printf("pickle file: not read, for safety (convert it to .safetensors)");
            else if (!strcmp(kind, "error")) lf_cli_print_escaped("%s", cJSON_GetObjectItemCaseSensitive(it, "error")->valuestring);
            else if (!strcmp(kind, "sdxl"))
                printf("%d vector%s, SDXL (clip_l %d, clip_g %d)", v, v == 1 ? "" : "s",
                       (int)cJSON_GetArrayItem(w, 0)->valuedouble, (int)cJSON_GetArrayItem(w, 1)->valuedouble);
            else
                printf("%d vector%s, width %d (one text encoder: SD1.x 768, SD2.x 1024)", v, v == 1 ? "" : "s",
                       (int)cJSON_GetArrayItem(w, 0)->valuedouble);
            lf_cli_print_escaped("  %s\n", cJSON_GetObjectItemCaseSensitive(it, "file")->valuestring);
        }
    }
    cJSON_Delete(r);
    lf_embeddings_free(db);
    lf_tokenizer_free(tok);
    return bad;
}

static const char lf_inspect_usage_text[] = "usage: lorafuse inspect FILE [--model CKPT] [--json]\n"
                                            "       lorafuse inspect --embeddings [DIR] [--json]\n";

static const char lf_inspect_help_text[] =
    "What an adapter file is: algorithms, components, ranks, alphas, DoRA, base family, trigger words,\n"
    "metadata; with --model every module resolved against the checkpoint (exit 1 when one does not fit).\n"
    "--embeddings lists the textual-inversion embeddings of DIR (default \"" LF_EMB_DIR_DEFAULT "\").\n"
    "example:\n"
    "  lorafuse inspect models/lora/mini_lora.safetensors --model models/sd15-mini.safetensors\n";

enum { I_MODEL, I_JSON, I_EMBEDDINGS };

static const lf_cli_opt lf_inspect_cli_opts[] = {
    [I_MODEL] = {"model", 1, 0}, [I_JSON] = {"json", 0, 0}, [I_EMBEDDINGS] = {"embeddings", 0, 0}, {NULL, 0, 0}};

int lf_cli_inspect(int argc, char **argv) {
    const char *model = NULL;
    int json = 0, embeddings = 0, o;
    char *v, **rest;
    lf_cli_parser p;
    lf_cli_parser_init(&p, "inspect", lf_inspect_usage_text, lf_inspect_help_text, lf_inspect_cli_opts, argc, argv);
    while ((o = lf_cli_next(&p, &v)) >= 0) {
        if (o == I_MODEL) model = v;
        else if (o == I_JSON) json = 1;
        else embeddings = 1;
    }
    int n, rc = lf_cli_finish(&p, o, 1, &rest, &n);
    if (rc >= 0) return rc;
    if (embeddings) return lf_inspect_embeddings(n == 1 ? rest[0] : LF_EMB_DIR_DEFAULT, json);
    if (n == 1) return lf_inspect_report(rest[0], model, json);
    fprintf(stderr, "lorafuse inspect: no FILE given\n");
    return lf_cli_bad_usage(&p);
}
