/* infotext.c: A1111's `parameters` text (the infotext of a generated image): formatting in A1111's
 * field order with its quoting rule, a parser that reads it back (lf_png.h describes the format), and
 * the fields A1111's parse_generation_parameters (modules/infotext_utils.py, 1.10) makes of it, as JSON
 * (`lorafuse png-info --json`; golden: scripts/golden/a1111_infotext.py).
 *
 * Prompts are written as A1111's create_infotext writes them: as typed, newlines included (A1111
 * escapes nothing there). Its reader (infotext_utils.parse_generation_parameters) takes any line that
 * starts, after whitespace, with "Negative prompt:" for the start of the negative prompt, so a prompt
 * could forge one; lorafuse writes a space before the colon of such a line ("Negative prompt :", and
 * "Steps :" likewise), which CLIP tokenizes the same (it splits ':' off either way) and no reader takes
 * for a field. Nothing else changes, so every other prompt reads back exactly.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cJSON.h>

#include "lorafuse/lf_png.h"
#include "host/base/strbuf.h"
#include "host/base/text.h"

/* ---- parameters text (strbuf.h) ------------------------------------------------------------------ */

/* infotext_utils.quote: JSON string (json.dumps, ensure_ascii=False) when the value holds ',' ':' '\n'. */
static void lf_sb_quoted(lf_sbuf *b, const char *v) {
    if (strpbrk(v, ",:\n")) lf_sb_json(b, v);
    else lf_sb_str(b, v);
}

/* Python's str.splitlines breaks (a superset of A1111's split("\n"): other readers split there too). */
static int lf_line_break(unsigned cp) {
    return cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || (cp >= 0x1C && cp <= 0x1E) || cp == 0x85 ||
           cp == 0x2028 || cp == 0x2029;
}

/* What Python's str.strip() removes (A1111 strips each line before testing it). */
static int lf_py_space(unsigned cp) {
    return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F) || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

/* The code point at s (e: end of the text); a byte of invalid UTF-8 reads as U+FFFD. */
static size_t lf_cp_at(const char *s, const char *e, unsigned *cp) {
    size_t k = lf_utf8_next(s, (size_t)(e - s), cp);
    if (!k) *cp = 0xFFFD, k = 1;
    return k;
}

/* A prompt or negative prompt, as typed, with a space written before the colon of a line that
 * starts (after whitespace) with "Negative prompt:" or "Steps:", any case. `line_start`: s begins a
 * line of the text. */
static void lf_sb_prompt(lf_sbuf *b, const char *s, int line_start) {
    static const char *const fields[2] = {"Negative prompt", "Steps"};
    const char *run = s, *e = s + strlen(s);
    for (const char *p = s; p < e;) {
        if (line_start) {
            const char *q = p;
            unsigned cp;
            size_t k;
            while (q < e && (k = lf_cp_at(q, e, &cp)) && lf_py_space(cp) && !lf_line_break(cp)) q += k;
            for (int f = 0; f < 2; f++) {
                size_t n = strlen(fields[f]);
                if (!strncasecmp(q, fields[f], n) && q[n] == ':') {
                    lf_sb_put(b, run, (size_t)(q + n - run));
                    lf_sb_str(b, " ");
                    run = q + n;
                }
            }
            line_start = 0;
        }
        unsigned cp;
        size_t k = lf_cp_at(p, e, &cp);
        line_start = lf_line_break(cp);
        p += k;
    }
    lf_sb_str(b, run);
}

static void lf_sb_field(lf_sbuf *b, int *first, const char *key, const char *value) {
    if (!*first) lf_sb_str(b, ", ");
    *first = 0;
    lf_sb_str(b, key);
    lf_sb_str(b, ": ");
    lf_sb_quoted(b, value);
}

char *lf_infotext_format(const lf_infotext *p) {
    lf_sbuf b = {0};
    char v[64];
    lf_sb_prompt(&b, p->prompt ? p->prompt : "", 1);
    if (p->negative && *p->negative) {
        lf_sb_str(&b, "\nNegative prompt: ");
        lf_sb_prompt(&b, p->negative, 0);
    }
    lf_sb_str(&b, "\n");
    int first = 1;
    snprintf(v, sizeof v, "%d", p->steps);
    lf_sb_field(&b, &first, "Steps", v);
    if (p->sampler) lf_sb_field(&b, &first, "Sampler", p->sampler);
    if (p->schedule_type) lf_sb_field(&b, &first, "Schedule type", p->schedule_type);
    snprintf(v, sizeof v, "%.15g", p->cfg);
    lf_sb_field(&b, &first, "CFG scale", v);
    snprintf(v, sizeof v, "%lld", (long long)p->seed);
    lf_sb_field(&b, &first, "Seed", v);
    snprintf(v, sizeof v, "%dx%d", p->width, p->height);
    lf_sb_field(&b, &first, "Size", v);
    if (p->model_hash) lf_sb_field(&b, &first, "Model hash", p->model_hash);
    if (p->model) lf_sb_field(&b, &first, "Model", p->model);
    if (p->vae_hash) lf_sb_field(&b, &first, "VAE hash", p->vae_hash);
    if (p->vae) lf_sb_field(&b, &first, "VAE", p->vae);
    if (p->clip_skip > 1) {
        snprintf(v, sizeof v, "%d", p->clip_skip);
        lf_sb_field(&b, &first, "Clip skip", v);
    }
    if (p->rng) lf_sb_field(&b, &first, "RNG", p->rng);
    if (p->lora_hashes && *p->lora_hashes) lf_sb_field(&b, &first, "Lora hashes", p->lora_hashes);
    if (p->version) lf_sb_field(&b, &first, "Version", p->version);
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    /* A1111 strips the whole text. */
    size_t s = 0;
    while (b.s[s] && isspace((unsigned char)b.s[s])) s++;
    if (s) memmove(b.s, b.s + s, b.n - s + 1);
    return b.s;
}

/* ---- infotext parser -------------------------------------------------------------------------- */
static char *lf_strndup(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static int lf_is_word(unsigned char c) { return isalnum(c) || c == '_' || c >= 0x80; }

/* One match of A1111's re_param  \s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)  at s (NULL if
 * none); key/value spans returned, *end after the match. */
static int lf_param_at(const char *s, const char **k, size_t *kn, const char **v, size_t *vn, const char **end) {
    const char *p = s;
    while (*p && isspace((unsigned char)*p)) p++;
    if (!lf_is_word((unsigned char)*p)) return 0;
    const char *k0 = p++;
    while (*p && (lf_is_word((unsigned char)*p) || *p == ' ' || *p == '-' || *p == '/')) p++;
    if (p - k0 < 2 || *p != ':') return 0;
    *k = k0;
    *kn = (size_t)(p - k0);
    p++;
    while (*p && isspace((unsigned char)*p)) p++;
    const char *v0 = p;
    if (*p == '"') {
        const char *q = p + 1;
        size_t inner = 0;
        while (*q && *q != '"') {
            if (*q == '\\' && q[1]) q++;
            q++;
            inner++;
        }
        if (*q == '"' && inner > 0 && (q[1] == ',' || q[1] == '\0')) {
            *v = v0;
            *vn = (size_t)(q + 1 - v0);
            *end = q[1] ? q + 2 : q + 1;
            return 1;
        }
    }
    while (*p && *p != ',') p++;
    *v = v0;
    *vn = (size_t)(p - v0);
    *end = *p ? p + 1 : p;
    return 1;
}

/* json.loads of a quoted string (the escapes json.dumps writes; \uXXXX to UTF-8, BMP only). */
static char *lf_unquote(const char *v, size_t n) {
    if (n < 2 || v[0] != '"' || v[n - 1] != '"') return lf_strndup(v, n);
    char *o = malloc(n * 2 + 1);
    if (!o) return NULL;
    size_t k = 0;
    for (size_t i = 1; i + 1 < n; i++) {
        char c = v[i];
        if (c != '\\' || i + 2 >= n) {
            o[k++] = c;
            continue;
        }
        c = v[++i];
        switch (c) {
        case 'n': o[k++] = '\n'; break;
        case 'r': o[k++] = '\r'; break;
        case 't': o[k++] = '\t'; break;
        case 'b': o[k++] = '\b'; break;
        case 'f': o[k++] = '\f'; break;
        case 'u': {
            unsigned cp = 0;
            int ok = i + 4 < n - 1;
            for (int j = 1; ok && j <= 4; j++) {
                char h = v[i + (size_t)j];
                cp = cp * 16 + (unsigned)(isdigit((unsigned char)h) ? h - '0' : (tolower((unsigned char)h) - 'a' + 10));
                ok = isxdigit((unsigned char)h) != 0;
            }
            if (!ok) {
                o[k++] = 'u';
                break;
            }
            i += 4;
            if (cp < 0x80) o[k++] = (char)cp;
            else if (cp < 0x800) {
                o[k++] = (char)(0xc0 | cp >> 6);
                o[k++] = (char)(0x80 | (cp & 63));
            } else {
                o[k++] = (char)(0xe0 | cp >> 12);
                o[k++] = (char)(0x80 | ((cp >> 6) & 63));
                o[k++] = (char)(0x80 | (cp & 63));
            }
            break;
        }
        default: o[k++] = c;
        }
    }
    o[k] = '\0';
    return o;
}

static void lf_trim(char *s) {
    size_t n = strlen(s), a = 0;
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    while (s[a] && isspace((unsigned char)s[a])) a++;
    if (a) memmove(s, s + a, n - a + 1);
}

static size_t lf_count_params(const char *line) {
    size_t c = 0;
    const char *p = line;
    while (*p) {
        const char *k, *v, *e;
        size_t kn, vn;
        if (lf_param_at(p, &k, &kn, &v, &vn, &e)) {
            c++;
            p = e > p ? e : p + 1;
        } else {
            p++;
        }
    }
    return c;
}

void lf_infotext_parsed_free(lf_infotext_parsed *p) {
    if (!p) return;
    free(p->prompt);
    free(p->negative);
    for (size_t i = 0; i < p->n_kv; i++) {
        free(p->kv[i].key);
        free(p->kv[i].value);
    }
    free(p->kv);
    memset(p, 0, sizeof *p);
}

lf_status lf_infotext_parse(const char *text, lf_infotext_parsed *out) {
    memset(out, 0, sizeof *out);
    char *t = lf_strndup(text, strlen(text));
    if (!t) return lf_err(LF_ERR_NOMEM, "out of memory");
    lf_trim(t);
    char *last = strrchr(t, '\n');
    char *params = last ? last + 1 : t;
    if (lf_count_params(params) < 3) params = NULL;
    else if (last) *last = '\0';
    lf_sbuf pr = {0}, ng = {0};
    lf_sb_str(&pr, "");
    lf_sb_str(&ng, "");
    int neg = 0;
    if (params != t) {
        char *line = t;
        while (line) {
            char *nl = strchr(line, '\n');
            if (nl) *nl = '\0';
            char *l = line;
            lf_trim(l);
            if (!strncmp(l, "Negative prompt:", 16)) {
                neg = 1;
                l += 16;
                lf_trim(l);
            }
            lf_sbuf *b = neg ? &ng : &pr;
            if (b->n) lf_sb_str(b, "\n");
            lf_sb_str(b, l);
            line = nl ? nl + 1 : NULL;
        }
    }
    out->prompt = pr.s;
    out->negative = ng.s;
    lf_status st = pr.oom || ng.oom ? LF_ERR_NOMEM : LF_OK;
    size_t cap = params ? lf_count_params(params) : 0;
    if (!st && cap && !(out->kv = calloc(cap, sizeof *out->kv))) st = LF_ERR_NOMEM;
    const char *p = params;
    while (!st && p && *p && out->n_kv < cap) {
        const char *k, *v, *e;
        size_t kn, vn;
        if (!lf_param_at(p, &k, &kn, &v, &vn, &e)) {
            p++;
            continue;
        }
        lf_infotext_kv *kv = &out->kv[out->n_kv++];
        kv->key = lf_strndup(k, kn);
        kv->value = lf_unquote(v, vn);
        kv->raw_len = vn;
        if (!kv->key || !kv->value) st = LF_ERR_NOMEM;
        if (kv->value) lf_trim(kv->value);
        p = e > p ? e : p + 1;
    }
    free(t);
    if (st) {
        lf_infotext_parsed_free(out);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    return LF_OK;
}

const char *lf_infotext_get(const lf_infotext_parsed *p, const char *key) {
    for (size_t i = p->n_kv; i-- > 0;)
        if (!strcmp(p->kv[i].key, key)) return p->kv[i].value;
    return NULL;
}

/* ---- A1111's parse_generation_parameters as JSON --------------------------------------------- */

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
    cJSON_AddStringToObject(r, "Prompt", p->prompt);
    cJSON_AddStringToObject(r, "Negative prompt", p->negative);
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
    lf_backcompat(r);
    return r;
}

/* The Lora hashes field as A1111's Lora extension reads it (lora_script.infotext_pasted): split at
 * ',', each at its first ':', both sides stripped. NULL when the field is absent or empty. */
static cJSON *lf_lora_hashes_json(const char *v) {
    if (!v || !*v) return NULL;
    cJSON *o = cJSON_CreateObject();
    char *t = lf_strndup(v, strlen(v));
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
