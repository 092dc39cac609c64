/* infotext.c: A1111's `parameters` text (the infotext of a generated image): formatting in A1111's
 * field order with its quoting rule, and a parser that reads it back (lf_png.h describes the format).
 *
 * Prompts are written as A1111's create_infotext writes them: as typed, newlines included (A1111
 * escapes nothing there). Its reader (infotext_utils.parse_generation_parameters) takes any line that
 * starts, after whitespace, with "Negative prompt:" for the start of the negative prompt, so a prompt
 * could forge one; lorafuse writes a space before the colon of such a line ("Negative prompt :", and
 * "Steps :" likewise), which CLIP tokenizes the same (it splits ':' off either way) and no reader takes
 * for a field. Nothing else changes, so every other prompt reads back exactly.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lorafuse/lf_png.h"
#include "host/base/strbuf.h"
#include "host/base/text.h"
#include "host/base/util.h"

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
    if (p->ti_hashes && *p->ti_hashes) lf_sb_field(&b, &first, "TI hashes", p->ti_hashes);
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
