/* fuzz_lbw_presets.c: libFuzzer target for the LBW presets file (`--lbw-presets FILE`, lf_strength.h;
 * docs/prompt-tags.md "Block weights (LBW)", docs/limits.md).
 *
 * The input (NUL-terminated copy, at most 1 MiB + 1: the size limit and one byte past it) is parsed as a
 * presets file named by a label with an escape sequence in it. A failure must leave no result and carry
 * a message that starts with the (escaped) label and holds no control byte. On success every preset the
 * file defines is found by name with 12, 17, 20 or 26 finite values, the built-ins are still there, the
 * list of names is well formed, and a tag naming the first user preset resolves against SD1 and SDXL
 * (the vector expands to blocks) with finite strengths at every block. An invariant violation aborts.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lorafuse/lf_prompt_tags.h"
#include "lorafuse/lf_strength.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile float lf_fuzz_sink;

static void lf_fuzz_check_message(void) {
    const char *m = lf_last_error();
    static const char label[] = "fuzz\\x1b.txt"; /* the label, escaped */
    if (strncmp(m, label, sizeof label - 1)) abort();
    for (; *m; m++)
        if ((unsigned char)*m < 0x20 || *m == 0x7f) abort();
}

/* The first user preset's name: the text before the ':' of the first line that is not blank or a
 * comment, trimmed (the parser's own rules), when it is one a tag can name. */
static int lf_fuzz_first_name(const char *text, char *name, size_t cap) {
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n'), *e = nl ? nl : p + strlen(p), *s = p;
        p = nl ? nl + 1 : e;
        while (s < e && strchr(" \t\r\v\f", *s)) s++;
        if (s == e || *s == '#') continue;
        const char *c = memchr(s, ':', (size_t)(e - s));
        if (!c) return 0;
        while (c > s && strchr(" \t\r\v\f", c[-1])) c--;
        size_t n = (size_t)(c - s);
        if (!n || n >= cap) return 0;
        for (size_t i = 0; i < n; i++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-+", s[i])) return 0;
        memcpy(name, s, n);
        name[n] = '\0';
        return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > LF_LBW_MAX_PRESET_BYTES + 1) return 0;
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    lf_lbw_presets *ps = NULL;
    if (lf_lbw_presets_parse(text, "fuzz\x1b.txt", &ps) != LF_OK) {
        if (ps) abort();
        lf_fuzz_check_message();
        free(text);
        return 0;
    }
    int n = 0;
    const float *v = lf_lbw_preset_find(ps, "ALL0.5", &n);
    if (!v) abort(); /* a user preset replaces a built-in of its name, never removes one */
    char names[1024];
    lf_lbw_preset_names(ps, names, sizeof names);
    for (const char *m = names; *m; m++)
        if ((unsigned char)*m < 0x20 || *m == 0x7f) abort();
    char name[64];
    if (lf_fuzz_first_name(text, name, sizeof name)) {
        v = lf_lbw_preset_find(ps, name, &n);
        if (!v || (n != 12 && n != 17 && n != 20 && n != 26)) abort();
        for (int i = 0; i < n; i++)
            if (!isfinite(v[i])) abort();
        char tag[96];
        snprintf(tag, sizeof tag, "<lora:x:0.5:lbw=%s>", name);
        lf_prompt *p = NULL;
        if (lf_prompt_parse(tag, &p) != LF_OK) abort();
        static const lf_family fams[2] = {LF_FAMILY_SD1, LF_FAMILY_SDXL};
        for (int f = 0; f < 2; f++) {
            lf_strength s;
            if (lf_strength_resolve(&p->tags[0], fams[f], ps, 3, &s, NULL) != LF_OK) abort();
            float acc = 0;
            for (int b = 0; b < LF_BLK_COUNT; b++) acc += lf_strength_at(&s, LF_COMP_UNET, b, 2);
            acc += lf_strength_te(&s, LF_COMP_TE1, 1);
            lf_fuzz_sink = acc;
            lf_strength_free(&s);
        }
        lf_prompt_free(p);
    }
    lf_lbw_presets_free(ps);
    lf_err_clear();
    free(text);
    return 0;
}
