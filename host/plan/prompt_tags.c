/* prompt_tags.c: hand-written scanner for `<lora:...>` prompt tags (lf_prompt_tags.h).
 *
 * Rules implemented (docs/prompt-tags.md):
 *   - "Form": NAME, one optional positional strength S (only as the first field after the name),
 *     then KEY=V fields; keys te te1 te2 unet in mid out lbw dyn ramp; unknown keys and keys given
 *     twice are errors ("Errors": SD.Next ignores them, which hides typos).
 *   - "Values and schedules": a value is a number or VALUE@POS[,VALUE@POS]...; positions are step
 *     numbers (integers, @0 = @1), percentages ("50%", 0..100) or fractions (a decimal point, 0..1);
 *     a fraction above 1, a percentage above 100 and a negative position are errors; key frames
 *     must be written in increasing order (checked here where the kinds are comparable: steps with
 *     steps, fractions with percentages; mixed kinds are checked once the step count is known,
 *     lf_strength.h).
 *   - "Block weights": lbw is a comma-separated vector of 12, 17, 20 or 26 numbers or a preset name;
 *     it is exclusive with in/mid/out. Family-specific lengths and preset names are checked later.
 *   - "Errors": every malformed tag is LF_ERR_ARG "prompt col C: TAG: what was expected"; a `>` ends
 *     a tag, so a `<` inside one is reported (a missing `>`); an unclosed tag is an error.
 *   - Tags are removed from the prompt text; where a tag is cut out, the whitespace on both sides
 *     collapses to one space, and the result is trimmed at both ends. Everything else (commas,
 *     other <...> text) is kept as typed.
 * Case: "<LoRA:" and "<lyco:" are reported (not silently left in the prompt as text).
 * Columns (of the tag's '<') are 1-based and count UTF-8 characters, not bytes.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lorafuse/lf_prompt_tags.h"
#include "host/base/util.h"

static const char *const lf_key_names[LF_TK_COUNT] = {"S", "te", "te1", "te2", "unet", "in", "mid", "out"};

const char *lf_tag_key_name(lf_tag_key k) {
    return (unsigned)k < LF_TK_COUNT ? lf_key_names[k] : "?";
}

/* ---- messages ------------------------------------------------------------------------------- */

lf_status lf_tag_err(const lf_tag *t, int col, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *text = t && t->text ? t->text : "<lora:...>";
    size_t n = strlen(text);
    return lf_err(LF_ERR_ARG, "prompt col %d: %.*s%s: %s", col, n > 160 ? 160 : (int)n, text, n > 160 ? "..." : "",
                  msg);
}

void lf_msgs_add(lf_msgs *m, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char **nv = realloc(m->v, (m->n + 1) * sizeof *nv);
    if (!nv) return;
    m->v = nv;
    size_t len = strlen(buf) + 1;
    if ((m->v[m->n] = malloc(len)) == NULL) return;
    memcpy(m->v[m->n++], buf, len);
}

void lf_msgs_free(lf_msgs *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n; i++) free(m->v[i]);
    free(m->v);
    m->v = NULL;
    m->n = 0;
}

/* ---- small helpers -------------------------------------------------------------------------- */

typedef struct {
    const char *text; /* the whole prompt (for columns) */
    lf_tag *tag;
} lf_ps;

static int lf_col_at(const char *text, const char *p) {
    int c = 1;
    for (const char *q = text; q < p; q++)
        if (((unsigned char)*q & 0xC0) != 0x80) c++;
    return c;
}

static int lf_is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static void lf_trim(const char **s, const char **e) {
    while (*s < *e && lf_is_space(**s)) (*s)++;
    while (*e > *s && lf_is_space((*e)[-1])) (*e)--;
}

static char *lf_strndup(const char *s, size_t n) {
    char *r = malloc(n + 1);
    if (!r) return NULL;
    memcpy(r, s, n);
    r[n] = '\0';
    return r;
}

static int lf_isdigit(char c) {
    return c >= '0' && c <= '9';
}

/* [s, e) is exactly a decimal number: [+-]? (d+ (. d*)? | . d+) ([eE][+-]? d+)?  (no inf/nan/hex).
 * *has_dot / *has_exp report the form. Returns 1 and the value on success. */
static int lf_scan_number(const char *s, const char *e, double *out, int *has_dot, int *has_exp) {
    const char *p = s;
    int digits = 0, dot = 0, ex = 0;
    if (p < e && (*p == '+' || *p == '-')) p++;
    while (p < e && lf_isdigit(*p)) p++, digits++;
    if (p < e && *p == '.') {
        dot = 1;
        p++;
        while (p < e && lf_isdigit(*p)) p++, digits++;
    }
    if (!digits) return 0;
    if (p < e && (*p == 'e' || *p == 'E')) {
        const char *q = p + 1;
        if (q < e && (*q == '+' || *q == '-')) q++;
        if (q >= e || !lf_isdigit(*q)) return 0;
        while (q < e && lf_isdigit(*q)) q++;
        p = q;
        ex = 1;
    }
    if (p != e || e - s > 120) return 0;
    char buf[128];
    memcpy(buf, s, (size_t)(e - s));
    buf[e - s] = '\0';
    errno = 0;
    double v = strtod(buf, NULL);
    if (!isfinite(v) || fabs(v) > 3.0e38) return 0;
    *out = v;
    if (has_dot) *has_dot = dot;
    if (has_exp) *has_exp = ex;
    return 1;
}

int lf_tags_scan_number(const char *s, size_t n, double *out) {
    return lf_scan_number(s, s + n, out, NULL, NULL);
}

static lf_status lf_perr(const lf_ps *ps, const char *at, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static lf_status lf_perr(const lf_ps *ps, const char *at, const char *fmt, ...) {
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    (void)at; /* messages give the tag's column; the message quotes the offending part */
    return lf_tag_err(ps->tag, ps->tag->col, "%s", msg);
}

/* "%.*s" helper length clamp for quoting user text in messages */
static int lf_qlen(const char *s, const char *e) {
    return e - s > 80 ? 80 : (int)(e - s);
}

/* ---- values and schedules ------------------------------------------------------------------- */

static lf_status lf_parse_pos(const lf_ps *ps, const char *s, const char *e, const char *kfs, const char *kfe,
                              lf_keyframe *kf) {
    lf_trim(&s, &e);
    if (s == e) return lf_perr(ps, kfs, "key frame '%.*s' has no position after '@'", lf_qlen(kfs, kfe), kfs);
    double v;
    int dot = 0, ex = 0;
    if (e[-1] == '%') {
        const char *ne = e - 1;
        const char *ns = s;
        lf_trim(&ns, &ne);
        if (!lf_scan_number(ns, ne, &v, &dot, &ex) || ex)
            return lf_perr(ps, s, "'%.*s' is not a step number, percentage or fraction", lf_qlen(s, e), s);
        if (v < 0) return lf_perr(ps, s, "negative position '%.*s'", lf_qlen(s, e), s);
        if (v > 100) return lf_perr(ps, s, "percentage '%.*s' is above 100%%", lf_qlen(s, e), s);
        kf->kind = LF_POS_PERCENT;
        kf->pos = v;
        return LF_OK;
    }
    if (!lf_scan_number(s, e, &v, &dot, &ex) || ex || *s == '+')
        return lf_perr(ps, s, "'%.*s' is not a step number, percentage or fraction", lf_qlen(s, e), s);
    if (v < 0 || *s == '-') return lf_perr(ps, s, "negative position '%.*s'", lf_qlen(s, e), s);
    if (dot) {
        if (v > 1)
            return lf_perr(ps, s, "fraction '%.*s' is above 1 (a position with a decimal point is a fraction of the "
                           "run; write a step number or a percentage)", lf_qlen(s, e), s);
        kf->kind = LF_POS_FRACTION;
    } else {
        if (v > 1e9) return lf_perr(ps, s, "step number '%.*s' is too large", lf_qlen(s, e), s);
        kf->kind = LF_POS_STEP;
    }
    kf->pos = v;
    return LF_OK;
}

/* Comparable positions: steps with steps, fractions with percentages (as fractions). */
static int lf_pos_comparable(const lf_keyframe *a, const lf_keyframe *b, double *pa, double *pb) {
    int sa = a->kind == LF_POS_STEP, sb = b->kind == LF_POS_STEP;
    if (sa != sb) return 0;
    *pa = a->kind == LF_POS_PERCENT ? a->pos / 100.0 : a->pos;
    *pb = b->kind == LF_POS_PERCENT ? b->pos / 100.0 : b->pos;
    return 1;
}

static lf_status lf_parse_value(const lf_ps *ps, const char *key, const char *s, const char *e, lf_sched *out) {
    lf_trim(&s, &e);
    if (s == e) return lf_perr(ps, s, "empty value for '%s'", key);
    out->col = lf_col_at(ps->text, s);
    int has_at = memchr(s, '@', (size_t)(e - s)) != NULL, has_comma = memchr(s, ',', (size_t)(e - s)) != NULL;
    double v;
    if (!has_at && !has_comma) {
        if (!lf_scan_number(s, e, &v, NULL, NULL))
            return lf_perr(ps, s, "'%.*s' is not a number or schedule", lf_qlen(s, e), s);
        if ((out->kf = calloc(1, sizeof *out->kf)) == NULL) return lf_err(LF_ERR_NOMEM, "out of memory");
        out->kf[0].value = (float)v;
        out->kf[0].col = out->col;
        out->n_kf = 1;
        out->constant = 1;
        return LF_OK;
    }
    if (!has_at)
        return lf_perr(ps, s, "'%.*s' is not a number or schedule (a schedule is VALUE@POSITION,VALUE@POSITION,...)",
                       lf_qlen(s, e), s);
    size_t cap = 1;
    for (const char *p = s; p < e; p++) cap += *p == ',';
    if ((out->kf = calloc(cap, sizeof *out->kf)) == NULL) return lf_err(LF_ERR_NOMEM, "out of memory");
    const char *p = s;
    while (p <= e) {
        const char *q = p;
        while (q < e && *q != ',') q++;
        const char *ks = p, *ke = q;
        lf_trim(&ks, &ke);
        if (ks == ke) return lf_perr(ps, ks < e ? ks : s, "empty key frame in '%.*s'", lf_qlen(s, e), s);
        const char *at = memchr(ks, '@', (size_t)(ke - ks));
        if (!at)
            return lf_perr(ps, ks, "key frame '%.*s' has no '@position' (a schedule is VALUE@POSITION,...)",
                           lf_qlen(ks, ke), ks);
        if (memchr(at + 1, '@', (size_t)(ke - at - 1)))
            return lf_perr(ps, ks, "key frame '%.*s' has more than one '@'", lf_qlen(ks, ke), ks);
        const char *vs = ks, *ve = at;
        lf_trim(&vs, &ve);
        lf_keyframe *kf = &out->kf[out->n_kf];
        kf->col = lf_col_at(ps->text, ks);
        if (vs == ve) return lf_perr(ps, ks, "key frame '%.*s' has no value before '@'", lf_qlen(ks, ke), ks);
        if (!lf_scan_number(vs, ve, &v, NULL, NULL))
            return lf_perr(ps, vs, "'%.*s' in key frame '%.*s' is not a number", lf_qlen(vs, ve), vs, lf_qlen(ks, ke),
                           ks);
        kf->value = (float)v;
        lf_status st = lf_parse_pos(ps, at + 1, ke, ks, ke, kf);
        if (st != LF_OK) return st;
        double pa, pb;
        for (size_t i = out->n_kf; i-- > 0;) {
            if (!lf_pos_comparable(&out->kf[i], kf, &pa, &pb)) continue;
            if (pb <= pa)
                return lf_perr(ps, ks, "key frames must be in increasing order of position: '%.*s' comes after a key "
                               "frame at the same or a later position", lf_qlen(ks, ke), ks);
            break;
        }
        out->n_kf++;
        p = q + 1;
    }
    return LF_OK;
}

/* ---- other keys ----------------------------------------------------------------------------- */

static lf_status lf_parse_lbw(const lf_ps *ps, const char *s, const char *e) {
    lf_tag *t = ps->tag;
    lf_trim(&s, &e);
    if (s == e) return lf_perr(ps, s, "empty value for 'lbw'");
    t->lbw_col = lf_col_at(ps->text, s);
    double v;
    if (!memchr(s, ',', (size_t)(e - s)) && !lf_scan_number(s, e, &v, NULL, NULL)) {
        for (const char *p = s; p < e; p++)
            if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '.' || *p == '-' || *p == '+'))
                return lf_perr(ps, s, "'%.*s' is neither a block-weight vector nor a preset name", lf_qlen(s, e), s);
        if ((t->lbw_preset = lf_strndup(s, (size_t)(e - s))) == NULL) return lf_err(LF_ERR_NOMEM, "out of memory");
        return LF_OK;
    }
    int n = 0;
    const char *p = s;
    while (p <= e) {
        const char *q = p;
        while (q < e && *q != ',') q++;
        const char *vs = p, *ve = q;
        lf_trim(&vs, &ve);
        if (vs == ve) return lf_perr(ps, vs < e ? vs : s, "empty entry in lbw vector");
        if (!lf_scan_number(vs, ve, &v, NULL, NULL)) {
            if (*vs == 'R' || *vs == 'U' || *vs == 'X')
                return lf_perr(ps, vs, "'%.*s' in lbw is not a number (LBW's random and inherited weights R, U, X "
                               "are not supported)", lf_qlen(vs, ve), vs);
            return lf_perr(ps, vs, "'%.*s' in lbw is not a number", lf_qlen(vs, ve), vs);
        }
        if (n < LF_LBW_MAX) t->lbw[n] = (float)v;
        n++;
        p = q + 1;
    }
    if (n != 12 && n != 17 && n != 20 && n != 26)
        return lf_perr(ps, s, "lbw has %d values; a block-weight vector has 17 or 26 (SD1.x) or 12 or 20 (SDXL)", n);
    t->lbw_n = n;
    return LF_OK;
}

static lf_status lf_parse_field(const lf_ps *ps, const char *fs, const char *fe, int index, unsigned *seen) {
    lf_tag *t = ps->tag;
    const char *s = fs, *e = fe;
    lf_trim(&s, &e);
    if (s == e) return lf_perr(ps, fs, "empty field (two ':' in a row, or a ':' before '>')");
    const char *eq = memchr(s, '=', (size_t)(e - s));
    if (!eq) {
        if (index != 1)
            return lf_perr(ps, s, "'%.*s' has no KEY= (only the first field after the name may be a plain strength)",
                           lf_qlen(s, e), s);
        return lf_parse_value(ps, "S", s, e, &t->v[LF_TK_S]);
    }
    const char *ks = s, *ke = eq;
    lf_trim(&ks, &ke);
    size_t kl = (size_t)(ke - ks);
    if (!kl) return lf_perr(ps, s, "'%.*s' has no key before '='", lf_qlen(s, e), s);
    static const char *const others[3] = {"lbw", "dyn", "ramp"};
    int key = -1;
    for (int k = LF_TK_TE; k < LF_TK_COUNT; k++)
        if (strlen(lf_key_names[k]) == kl && !memcmp(ks, lf_key_names[k], kl)) key = k;
    for (int k = 0; k < 3; k++)
        if (strlen(others[k]) == kl && !memcmp(ks, others[k], kl)) key = LF_TK_COUNT + k;
    if (key < 0)
        return lf_perr(ps, ks, "unknown key '%.*s' (keys: te, te1, te2, unet, in, mid, out, lbw, dyn, ramp)",
                       lf_qlen(ks, ke), ks);
    if (*seen & (1u << key)) return lf_perr(ps, ks, "key '%.*s' is given twice", (int)kl, ks);
    *seen |= 1u << key;
    const char *vs = eq + 1, *ve = e;
    lf_trim(&vs, &ve);
    if (key < LF_TK_COUNT) return lf_parse_value(ps, lf_key_names[key], vs, ve, &t->v[key]);
    if (key == LF_TK_COUNT) return lf_parse_lbw(ps, vs, ve);
    if (vs == ve) return lf_perr(ps, vs, "empty value for '%s'", others[key - LF_TK_COUNT]);
    if (key == LF_TK_COUNT + 1) {
        long d = 0;
        const char *p = vs;
        while (p < ve && lf_isdigit(*p) && d <= (1L << 20)) d = d * 10 + (*p++ - '0');
        if (p != ve || d < 1 || d > (1L << 20))
            return lf_perr(ps, vs, "dyn must be a positive integer (the number of rank components), not '%.*s'",
                           lf_qlen(vs, ve), vs);
        t->dyn = (int)d;
        return LF_OK;
    }
    if ((size_t)(ve - vs) == 4 && !memcmp(vs, "hold", 4)) t->ramp = LF_RAMP_HOLD;
    else if ((size_t)(ve - vs) == 6 && !memcmp(vs, "linear", 6)) t->ramp = LF_RAMP_LINEAR;
    else return lf_perr(ps, vs, "ramp must be 'hold' or 'linear', not '%.*s'", lf_qlen(vs, ve), vs);
    return LF_OK;
}

/* Parse the inside of one tag: [cs, ce) is the text between "<lora:" and ">". */
static lf_status lf_parse_tag(const lf_ps *ps, const char *cs, const char *ce) {
    lf_tag *t = ps->tag;
    const char *lt = memchr(cs, '<', (size_t)(ce - cs));
    if (lt) return lf_perr(ps, lt, "'<' inside a tag (is a '>' missing?)");
    unsigned seen = 0;
    int index = 0;
    const char *p = cs;
    while (p <= ce) {
        const char *q = memchr(p, ':', (size_t)(ce - p));
        if (!q) q = ce;
        if (index == 0) {
            const char *s = p, *e = q;
            lf_trim(&s, &e);
            if (s == e) return lf_perr(ps, p, "empty LoRA name");
            if ((t->name = lf_strndup(s, (size_t)(e - s))) == NULL) return lf_err(LF_ERR_NOMEM, "out of memory");
        } else {
            lf_status st = lf_parse_field(ps, p, q, index, &seen);
            if (st != LF_OK) return st;
        }
        index++;
        p = q + 1;
    }
    if (t->lbw_n || t->lbw_preset) {
        for (int k = LF_TK_IN; k <= LF_TK_OUT; k++)
            if (t->v[k].n_kf)
                return lf_tag_err(t, t->col, "lbw cannot be combined with in/mid/out (both set UNet block strengths)");
    }
    return LF_OK;
}

/* ---- prompt ---------------------------------------------------------------------------------- */

static void lf_tag_clear(lf_tag *t) {
    free(t->name);
    free(t->text);
    free(t->lbw_preset);
    for (int k = 0; k < LF_TK_COUNT; k++) free(t->v[k].kf);
}

void lf_prompt_free(lf_prompt *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n_tags; i++) lf_tag_clear(&p->tags[i]);
    free(p->tags);
    free(p->clean);
    free(p);
}

lf_status lf_prompt_parse(const char *text, lf_prompt **out) {
    *out = NULL;
    if (!text) return lf_err(LF_ERR_ARG, "no prompt");
    size_t len = strlen(text);
    lf_prompt *pr = calloc(1, sizeof *pr);
    char *clean = malloc(len + 1);
    size_t cn = 0, cap = 0;
    lf_status st = LF_OK;
    if (!pr || !clean) {
        free(pr);
        free(clean);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    pr->clean = clean;
    const char *p = text;
    while (*p && st == LF_OK) {
        int exact = !strncmp(p, "<lora:", 6);
        int other = !exact && *p == '<' && (!strncasecmp(p, "<lora:", 6) || !strncasecmp(p, "<lyco:", 6));
        if (!exact && !other) {
            clean[cn++] = *p++;
            continue;
        }
        const char *gt = strchr(p, '>');
        if (lf_grow(&pr->tags, &cap, pr->n_tags + 1)) {
            st = lf_err(LF_ERR_NOMEM, "out of memory");
            break;
        }
        lf_tag *t = &pr->tags[pr->n_tags++];
        memset(t, 0, sizeof *t);
        t->col = lf_col_at(text, p);
        size_t tl = gt ? (size_t)(gt - p + 1) : strlen(p);
        if ((t->text = lf_strndup(p, tl)) == NULL) {
            st = lf_err(LF_ERR_NOMEM, "out of memory");
            break;
        }
        lf_ps ps = {text, t};
        if (other) {
            st = lf_perr(&ps, p, "write tags as '<lora:NAME...>' (lower case; '<lyco:' is not a separate tag)");
            break;
        }
        if (!gt) {
            st = lf_perr(&ps, p, "tag is not closed with '>'");
            break;
        }
        st = lf_parse_tag(&ps, p + 6, gt);
        /* cut the tag out: collapse the whitespace on both sides of the cut to the one already written */
        p = gt + 1;
        if (cn && lf_is_space(clean[cn - 1]))
            while (lf_is_space(*p)) p++;
    }
    if (st != LF_OK) {
        lf_prompt_free(pr);
        return st;
    }
    /* trim both ends */
    size_t b = 0;
    while (b < cn && lf_is_space(clean[b])) b++;
    while (cn > b && lf_is_space(clean[cn - 1])) cn--;
    memmove(clean, clean + b, cn - b);
    clean[cn - b] = '\0';
    *out = pr;
    return LF_OK;
}
