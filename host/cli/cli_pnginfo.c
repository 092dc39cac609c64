/* cli_pnginfo.c: `lorafuse png-info FILE... [--json]`: the A1111 `parameters` text of PNG files
 * (lf_png_read), printed as written (each line escaped for the terminal), or with --json one object per
 * file and line: {"file", "parameters", "fields": {A1111's parse_generation_parameters}, "lora_hashes"}
 * (lf_infotext_json, docs/png-info.md). Exit 1 when a file cannot be read or has no parameters (the
 * other files are still printed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "cli.h"
#include "host/base/text.h"
#include "lorafuse/lf_png.h"
#include "lorafuse/lf_png_info.h"

static const char lf_pnginfo_usage_text[] = "usage: lorafuse png-info FILE... [--json]\n";

static const char lf_pnginfo_help_text[] =
    "Prints the A1111 \"parameters\" text of PNG files (lorafuse, A1111, SD.Next, Forge images). With\n"
    "--json, one JSON object per file and line: \"file\", \"parameters\" (the text), \"fields\" (the fields\n"
    "A1111's parse_generation_parameters makes of it) and \"lora_hashes\" (NAME: HASH).\n"
    "example:\n"
    "  lorafuse png-info outputs/00000-42.png --json\n";

static const lf_cli_opt lf_pnginfo_cli_opts[] = {{"json", 0, 0}, {NULL, 0, 0}};

/* One file's output; 0 when it cannot be read or holds no parameters (message on stderr). */
static int lf_pnginfo_one(const char *file, int json, int header) {
    char *text = NULL;
    if (lf_png_read(file, NULL, NULL, NULL, "parameters", &text) != LF_OK) {
        lf_err_escape(LF_OK);
        fprintf(stderr, "lorafuse png-info: %s\n", lf_last_error());
        return 0;
    }
    if (!text) {
        char q[LF_ESC_PART];
        fprintf(stderr, "lorafuse png-info: %s: no parameters text chunk\n", lf_esc(q, sizeof q, file, strlen(file)));
        return 0;
    }
    int ok = 1;
    if (json) {
        char *fields = NULL;
        cJSON *o = NULL;
        if (lf_infotext_json(text, &fields) == LF_OK && (o = cJSON_Parse(fields)) != NULL) {
            cJSON *f = cJSON_CreateObject();
            cJSON_AddStringToObject(f, "file", file);
            cJSON_AddStringToObject(f, "parameters", text);
            cJSON_AddItemToObject(f, "fields", cJSON_DetachItemFromObjectCaseSensitive(o, "fields"));
            cJSON_AddItemToObject(f, "lora_hashes", cJSON_DetachItemFromObjectCaseSensitive(o, "lora_hashes"));
            char *s = cJSON_PrintUnformatted(f);
            if (s) puts(s);
            ok = s != NULL;
            free(s);
            cJSON_Delete(f);
        } else {
            ok = 0;
        }
        if (!ok) fprintf(stderr, "lorafuse png-info: out of memory\n");
        cJSON_Delete(o);
        free(fields);
    } else {
        if (header) lf_cli_print_escaped("%s:\n", file);
        /* line by line, so that the prompt's own line breaks stay line breaks */
        for (char *line = text, *nl; line; line = nl) {
            nl = strchr(line, '\n');
            if (nl) *nl++ = '\0';
            lf_cli_print_escaped("%s\n", line);
        }
    }
    free(text);
    return ok;
}

int lf_cli_pnginfo(int argc, char **argv) {
    int json = 0, o;
    char *v, **files;
    lf_cli_parser p;
    lf_cli_parser_init(&p, "png-info", lf_pnginfo_usage_text, lf_pnginfo_help_text, lf_pnginfo_cli_opts, argc, argv);
    while ((o = lf_cli_next(&p, &v)) >= 0) json = 1;
    int n, rc = lf_cli_finish(&p, o, 1 << 30, &files, &n);
    if (rc >= 0) return rc;
    if (!n) {
        fprintf(stderr, "lorafuse png-info: no FILE given\n");
        return lf_cli_bad_usage(&p);
    }
    rc = 0;
    for (int i = 0; i < n; i++) {
        if (!lf_pnginfo_one(files[i], json, n > 1)) rc = 1;
        fflush(stdout);
    }
    return rc;
}
