/* png_info.c: A1111's reading of a `parameters` text (infotext_utils.parse_generation_parameters, 1.10,
 * default options, no styles) and its Lora extension's reading of "Lora hashes", as JSON
 * (lf_png_info.h). The text is split by lf_infotext_parse (host/io/infotext.c); what A1111 adds after
 * that is here, in its order. Emphasis is detected with lf_emphasis_parse, A1111's parse_prompt_attention.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "host/base/strbuf.h"
#include "lorafuse/lf_emphasis.h"
#include "lorafuse/lf_png.h"
#include "lorafuse/lf_png_info.h"

/* Python's str.strip() of ASCII whitespace, in place. */
static void lf_trim(char *s) {
    size_t n = strlen(s), a = 0;
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    while (s[a] && isspace((unsigned char)s[a])) a++;
    if (a) memmove(s, s + a, n - a + 1);
}

/* Python's int() of a decimal string (optional sign and spaces); 0 with *ok = 0 otherwise. */
static long long lf_py_int(const cJSON *v, int *ok) {
    if (cJSON_IsNumber(v)) return (long long)v->valuedouble;
    const char *s = cJSON_IsString(v) ? v->valuestring : "";
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    while (*end && isspace((unsigned char)*end)) end++;
    if (end == s || *end || errno) *ok = 0;
    return n;
}

static void lf_json_set(cJSON *o, const char *key, cJSON *v) {
    if (cJSON_GetObjectItemCaseSensitive(o, key)) cJSON_ReplaceItemInObjectCaseSensitive(o, key, v);
    else cJSON_AddItemToObject(o, key, v);
}

static void lf_json_default(cJSON *o, const char *key, cJSON *v) {
    if (cJSON_GetObjectItemCaseSensitive(o, key)) cJSON_Delete(v);
    else cJSON_AddItemToObject(o, key, v);
}

/* infotext_utils.restore_old_hires_fix_params with use_old_hires_fix_width_height off (the default). */
static void lf_restore_old_hires(cJSON *r) {
    const cJSON *f1 = cJSON_GetObjectItemCaseSensitive(r, "First pass size-1"),
                *f2 = cJSON_GetObjectItemCaseSensitive(r, "First pass size-2");
    if (!f1 || !f2) return;
    int ok = 1;
    long long fw = lf_py_int(f1, &ok), fh = lf_py_int(f2, &ok);
    const cJSON *s1 = cJSON_GetObjectItemCaseSensitive(r, "Size-1"), *s2 = cJSON_GetObjectItemCaseSensitive(r, "Size-2");
    long long w = s1 ? lf_py_int(s1, &ok) : 512, h = s2 ? lf_py_int(s2, &ok) : 512;
    if (!ok) return; /* A1111 raises here (ValueError): nothing is restored */
    if ((fw == 0 || fh == 0) && w > 0 && h > 0) { /* processing.old_hires_fix_first_pass_dimensions */
        double scale = sqrt(512.0 * 512.0 / ((double)w * (double)h));
        fw = (long long)ceil(scale * (double)w / 64) * 64;
        fh = (long long)ceil(scale * (double)h / 64) * 64;
    }
    lf_json_set(r, "Size-1", cJSON_CreateNumber((double)fw));
    lf_json_set(r, "Size-2", cJSON_CreateNumber((double)fh));
    lf_json_set(r, "Hires resize-1", cJSON_CreateNumber((double)w));
    lf_json_set(r, "Hires resize-2", cJSON_CreateNumber((double)h));
}

/* infotext_versions.parse_version for the versions A1111 writes: [v]N(.N)*[-POST][-anything]. Returns
 * 0 (None) for anything else, which packaging.version mostly refuses too ("lorafuse 0.1.0"). */
static int lf_parse_version(const char *s, long long rel[4], long long *post) {
    if (!s) return 0;
    if (*s == 'v' || *s == 'V') s++;
    int n = 0;
    *post = -1;
    memset(rel, 0, 4 * sizeof *rel);
    while (isdigit((unsigned char)*s)) {
        long long x = 0;
        while (isdigit((unsigned char)*s)) x = x * 10 + (*s++ - '0');
        if (n < 4) rel[n] = x;
        n++;
        if (*s != '.') break;
        s++;
    }
    if (!n) return 0;
    if (*s == '-' && isdigit((unsigned char)s[1])) {
        long long x = 0;
        for (s++; isdigit((unsigned char)*s);) x = x * 10 + (*s++ - '0');
        *post = x;
        if (*s == '-') return 1; /* "-gHASH..." dropped by parse_version's regex */
    } else if (*s == '-') {
        return 0;
    }
    return *s == '\0';
}

static int lf_version_less(const long long a[4], long long apost, const long long b[4], long long bpost) {
    for (int i = 0; i < 4; i++)
        if (a[i] != b[i]) return a[i] < b[i];
    return apost < bpost;
}

/* infotext_versions.backcompat (auto_backcompat on, the default). */
static void lf_backcompat(cJSON *r) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, "Version");
    long long ver[4], post;
    if (!cJSON_IsString(v) || !lf_parse_version(v->valuestring, ver, &post)) return;
    static const long long v160[4] = {1, 6, 0, 0}, v170[4] = {1, 7, 0, 0}, v180[4] = {1, 8, 0, 0};
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(r, "Prompt"), *sm = cJSON_GetObjectItemCaseSensitive(r, "Sampler"),
                *rf = cJSON_GetObjectItemCaseSensitive(r, "Refiner");
    if (lf_version_less(ver, post, v160, -1) && cJSON_IsString(pr) && strchr(pr->valuestring, '['))
        lf_json_set(r, "Old prompt editing timelines", cJSON_CreateTrue());
    if (lf_version_less(ver, post, v160, -1) && cJSON_IsString(sm) &&
        (!strcmp(sm->valuestring, "DDIM") || !strcmp(sm->valuestring, "PLMS")))
        lf_json_set(r, "Pad conds v0", cJSON_CreateTrue());
    if (lf_version_less(ver, post, v170, 225)) lf_json_set(r, "Downcast alphas_cumprod", cJSON_CreateTrue());
    if (lf_version_less(ver, post, v180, -1) && cJSON_IsString(rf) && *rf->valuestring)
        lf_json_set(r, "Refiner switch by sampling steps", cJSON_CreateTrue());
}

/* With no styles defined, A1111 1.10 sets "Hires prompt" / "Hires negative prompt" (when one of them is
 * given, and the Version is after 1.8.0-139 or not a version) to "" where it equals the prompt /
 * negative prompt, and to itself otherwise; the absent one is taken to be the prompt's. */
static void lf_hires_prompts(cJSON *r, const lf_infotext_parsed *p) {
    const cJSON *hp = cJSON_GetObjectItemCaseSensitive(r, "Hires prompt"),
                *hn = cJSON_GetObjectItemCaseSensitive(r, "Hires negative prompt"),
                *v = cJSON_GetObjectItemCaseSensitive(r, "Version");
    if (!hp && !hn) return;
    long long ver[4], post;
    static const long long v180[4] = {1, 8, 0, 0};
    if (cJSON_IsString(v) && lf_parse_version(v->valuestring, ver, &post) && !lf_version_less(v180, 139, ver, post))
        return;
    const char *a = cJSON_IsString(hp) ? hp->valuestring : p->prompt, *b = cJSON_IsString(hn) ? hn->valuestring : p->negative;
    char *pa = strdup(!strcmp(a, p->prompt) ? "" : a), *pb = strdup(!strcmp(b, p->negative) ? "" : b);
    if (pa) lf_json_set(r, "Hires prompt", cJSON_CreateString(pa));
    if (pb) lf_json_set(r, "Hires negative prompt", cJSON_CreateString(pb));
    free(pa);
    free(pb);
}

/* "WxH" with decimal W and H (re_imagesize ^(\d+)x(\d+)$). */
static int lf_is_size(const char *v, size_t *x) {
    size_t a = strspn(v, "0123456789");
    if (!a || v[a] != 'x') return 0;
    size_t b = strspn(v + a + 1, "0123456789");
    *x = a;
    return b && !v[a + 1 + b];
}

/* The parsed fields of A1111 as a cJSON object (NULL when out of memory). */
static cJSON *lf_infotext_a1111(const lf_infotext_parsed *p) {
    cJSON *r = cJSON_CreateObject();
    if (!r) return NULL;
    for (size_t i = 0; i < p->n_kv; i++) {
        const char *k = p->kv[i].key, *v = p->kv[i].value;
        size_t x;
        if (!p->kv[i].raw_len) continue; /* A1111: v[0] raises IndexError, the field is dropped */
        if (lf_is_size(v, &x)) {
            char key[512];
            snprintf(key, sizeof key, "%s-1", k);
            char w[32];
            snprintf(w, sizeof w, "%.*s", (int)(x < 31 ? x : 31), v);
            lf_json_set(r, key, cJSON_CreateString(w));
            snprintf(key, sizeof key, "%s-2", k);
            lf_json_set(r, key, cJSON_CreateString(v + x + 1));
        } else {
            lf_json_set(r, k, cJSON_CreateString(v));
        }
    }
    lf_hires_prompts(r, p);
    lf_json_set(r, "Prompt", cJSON_CreateString(p->prompt));
    lf_json_set(r, "Negative prompt", cJSON_CreateString(p->negative));
    lf_json_default(r, "Clip skip", cJSON_CreateString("1"));
    const cJSON *hn = cJSON_GetObjectItemCaseSensitive(r, "Hypernet");
    if (cJSON_IsString(hn)) {
        const cJSON *hs = cJSON_GetObjectItemCaseSensitive(r, "Hypernet strength");
        lf_sbuf b = {0};
        lf_sb_printf(&b, "%s<hypernet:%s:%s>", cJSON_GetObjectItemCaseSensitive(r, "Prompt")->valuestring,
                     hn->valuestring, cJSON_IsString(hs) ? hs->valuestring : "1.0");
        if (!b.oom) lf_json_set(r, "Prompt", cJSON_CreateString(b.s));
        lf_sb_free(&b);
    }
    if (!cJSON_GetObjectItemCaseSensitive(r, "Hires resize-1")) {
        cJSON_AddNumberToObject(r, "Hires resize-1", 0);
        lf_json_set(r, "Hires resize-2", cJSON_CreateNumber(0));
    }
    lf_json_default(r, "Hires sampler", cJSON_CreateString("Use same sampler"));
    lf_json_default(r, "Hires schedule type", cJSON_CreateString("Use same scheduler"));
    lf_json_default(r, "Hires checkpoint", cJSON_CreateString("Use same checkpoint"));
    lf_json_default(r, "Hires prompt", cJSON_CreateString(""));
    lf_json_default(r, "Hires negative prompt", cJSON_CreateString(""));
    lf_json_default(r, "Mask mode", cJSON_CreateString("Inpaint masked"));
    lf_json_default(r, "Masked content", cJSON_CreateString("original"));
    lf_json_default(r, "Inpaint area", cJSON_CreateString("Whole picture"));
    lf_json_default(r, "Masked area padding", cJSON_CreateNumber(32));
    lf_restore_old_hires(r);
    lf_json_default(r, "RNG", cJSON_CreateString("GPU"));
    lf_json_default(r, "Schedule type", cJSON_CreateString("Automatic"));
    lf_json_default(r, "Schedule max sigma", cJSON_CreateNumber(0));
    lf_json_default(r, "Schedule min sigma", cJSON_CreateNumber(0));
    lf_json_default(r, "Schedule rho", cJSON_CreateNumber(0));
    lf_json_default(r, "VAE Encoder", cJSON_CreateString("Full"));
    lf_json_default(r, "VAE Decoder", cJSON_CreateString("Full"));
    lf_json_default(r, "FP8 weight", cJSON_CreateString("Disable"));
    const cJSON *fp8 = cJSON_GetObjectItemCaseSensitive(r, "FP8 weight");
    if (!(cJSON_IsString(fp8) && !strcmp(fp8->valuestring, "Disable")))
        lf_json_default(r, "Cache FP16 weight for LoRA", cJSON_CreateFalse());
    /* parse_prompt_attention of both prompts: any span weighted other than 1 (BREAK aside) */
    int emph = 0;
    for (int k = 0; k < 2 && !emph; k++) {
        lf_emph_spans sp = {0};
        if (lf_emphasis_parse(k ? p->negative : p->prompt, LF_EMPH_ORIGINAL, &sp) == LF_OK)
            for (size_t i = 0; i < sp.n && !emph; i++) emph = sp.v[i].weight != 1.0 && strcmp(sp.v[i].text, "BREAK");
        lf_emph_spans_free(&sp);
    }
    if (emph) lf_json_default(r, "Emphasis", cJSON_CreateString("Original"));
    lf_json_default(r, "Refiner switch by sampling steps", cJSON_CreateFalse());
    lf_backcompat(r);
    return r;
}

/* The Lora hashes field as A1111's Lora extension reads it (lora_script.infotext_pasted): split at
 * ',', each at its first ':', both sides stripped. NULL when the field is absent or empty. */
static cJSON *lf_lora_hashes_json(const char *v) {
    if (!v || !*v) return NULL;
    cJSON *o = cJSON_CreateObject();
    char *t = strdup(v);
    for (char *item = t, *next; o && t && item; item = next) {
        next = strchr(item, ',');
        if (next) *next++ = '\0';
        char *c = strchr(item, ':');
        if (!c) continue; /* A1111 raises IndexError here and reads no hash at all */
        *c = '\0';
        lf_trim(item);
        lf_trim(c + 1);
        lf_json_set(o, item, cJSON_CreateString(c + 1));
    }
    free(t);
    return o;
}

lf_status lf_infotext_json(const char *text, char **json) {
    *json = NULL;
    lf_infotext_parsed p;
    lf_status st = lf_infotext_parse(text, &p);
    if (st != LF_OK) return st;
    cJSON *r = lf_infotext_a1111(&p);
    cJSON *lh = lf_lora_hashes_json(lf_infotext_get(&p, "Lora hashes"));
    cJSON *o = cJSON_CreateObject();
    if (o && r) {
        cJSON_AddItemToObject(o, "fields", r);
        r = NULL;
        if (lh) cJSON_AddItemToObject(o, "lora_hashes", lh), lh = NULL;
        else cJSON_AddObjectToObject(o, "lora_hashes");
        *json = cJSON_PrintUnformatted(o);
    }
    cJSON_Delete(o);
    cJSON_Delete(r);
    cJSON_Delete(lh);
    lf_infotext_parsed_free(&p);
    return *json ? LF_OK : lf_err(LF_ERR_NOMEM, "out of memory");
}
