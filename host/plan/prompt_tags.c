/* prompt_tags.c: hand-written scanner for `<lora:...>` prompt tags (lf_prompt_tags.h).
 *
 * Rules implemented (docs/prompt-tags.md):
 *   - "Form": NAME, up to three positional values as A1111 reads them (S = te and unet, then unet,
 *     then dyn; only before the first KEY=V field), then KEY=V fields; keys te te1 te2 unet in mid
 *     out lbw dyn ramp; unknown keys and keys given twice (a positional value counts as its key) are
 *     errors ("Errors": SD.Next ignores them, which hides typos); hr, hrte, hrunet (loractl's hires
 *     pass) are refused by name. `<lyco:` is A1111's alias of `<lora:`.
 *   - "Dialects": under LF_DIALECT_LORACTL a value is read as loractl's sorted_positions does:
 *     entries split at ',' or ';', value and position split at '@' or '~', an entry without a
 *     position after the first one is at position 1, entries stably sorted by position; keys te,
 *     unet, dyn only. Where loractl silently drops text (a first entry without a position followed by
 *     more entries, a third '@' part) the tag is an error instead.
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
 * Case: "<LoRA:" and "<LYCO:" are reported (not silently left in the prompt as text).
 * Columns (of the tag's '<') are 1-based and count UTF-8 characters, not bytes.
 * Numbers follow the one grammar of host/base/number.h; text quoted in messages is escaped
 * (host/base/text.h). Limits (docs/limits.md "Prompts and tags"): the prompt's bytes, tags per prompt
 * and key frames per tag are checked as the scan reaches them, and the scan is linear in the prompt:
 * columns are counted from the previous column, and the order of key frames is checked against the
 * last key frame of each kind only.
 */
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lorafuse/lf_prompt_tags.h"
#include "host/base/number.h"
#include "host/base/text.h"
#include "host/base/util.h"

static const char *const lf_key_names[LF_TK_COUNT] = {"S", "te", "te1", "te2", "unet", "in", "mid", "out"};

const char *lf_tag_key_name(lf_tag_key k) {
    return (unsigned)k < LF_TK_COUNT ? lf_key_names[k] : "?";
}

const char *lf_tag_dialect_name(lf_tag_dialect d) {
    return d == LF_DIALECT_LORACTL ? "loractl" : "lorafuse";
}

lf_status lf_tag_dialect_parse(const char *s, lf_tag_dialect *out) {
    if (s && !strcmp(s, "lorafuse")) *out = LF_DIALECT_LORAFUSE;
    else if (s && !strcmp(s, "loractl")) *out = LF_DIALECT_LORACTL;
    else {
        char q[LF_ESC_PART];
        return lf_err(LF_ERR_ARG, "unknown tag dialect '%s' (dialects: lorafuse, loractl)",
                      s ? lf_esc(q, sizeof q, s, strlen(s)) : "");
    }
    return LF_OK;
}

/* ---- messages ------------------------------------------------------------------------------- */

lf_status lf_tag_err(const lf_tag *t, int col, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *text = t && t->text ? t->text : "<lora:...>";
    char q[LF_ESC_TAG];
    return lf_err(LF_ERR_ARG, "prompt col %d: %s: %s", col, lf_esc(q, sizeof q, text, strlen(text)), msg);
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

/* Columns are counted forward from the last one asked for (the scan asks in increasing order), so
 * that a prompt with many tags or key frames is read in linear time. */
typedef struct {
    const char *text, *at; /* the whole prompt; the position of col */
    int col;
} lf_colcur;

typedef struct {
    lf_colcur *cur;
    lf_tag *tag;
    size_t n_kf; /* key frames of the tag so far (LF_TAG_MAX_KEYFRAMES) */
    lf_tag_dialect dialect;
} lf_ps;

static int lf_col_at(lf_colcur *c, const char *p) {
    if (p < c->at) c->at = c->text, c->col = 1;
    for (; c->at < p; c->at++)
        if (((unsigned char)*c->at & 0xC0) != 0x80) c->col++;
    return c->col;
}

static int lf_is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static void lf_trim(const char **s, const char **e) {
    while (*s < *e && lf_is_space(**s)) (*s)++;
    while (*e > *s && lf_is_space((*e)[-1])) (*e)--;
}


static lf_status lf_perr(const lf_ps *ps, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Messages give the tag's column and quote the offending part of the tag. */
static lf_status lf_perr(const lf_ps *ps, const char *fmt, ...) {
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return lf_tag_err(ps->tag, ps->tag->col, "%s", msg);
}

/* [s, e) escaped for a message, in q (LF_ESC_PART bytes) */
typedef char lf_quote[LF_ESC_PART];
static const char *lf_q(lf_quote q, const char *s, const char *e) {
    return lf_esc(q, LF_ESC_PART, s, (size_t)(e - s));
}

/* A strength, key-frame value or block weight: a number of number.h, finite as an f32. */
static lf_num_res lf_strength_num(const char *s, const char *e, double *v) {
    return lf_num_parse(s, (size_t)(e - s), LF_NUM_F32_MAX, v, NULL);
}

#define LF_RANGE_WHY "strengths are at most 3.4e38 in magnitude, the range of a 32-bit float"

int lf_lbw_name_ok(const char *s, size_t n) {
    double v;
    if (!n || lf_num_parse(s, n, LF_NUM_F32_MAX, &v, NULL) != LF_NUM_SYNTAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '.' || s[i] == '-' || s[i] == '+')) return 0;
    return 1;
}

/* ---- values and schedules ------------------------------------------------------------------- */

static lf_status lf_parse_pos(const lf_ps *ps, const char *s, const char *e, const char *kfs, const char *kfe,
                              lf_keyframe *kf) {
    lf_quote q, qk;
    lf_trim(&s, &e);
    if (s == e) return lf_perr(ps, "key frame '%s' has no position after '@'", lf_q(qk, kfs, kfe));
    double v = 0;
    unsigned form = 0;
    if (e[-1] == '%') {
        const char *ne = e - 1;
        const char *ns = s;
        lf_trim(&ns, &ne);
        if (lf_num_parse(ns, (size_t)(ne - ns), 1e300, &v, &form) != LF_NUM_OK || (form & LF_NUM_EXP))
            return lf_perr(ps, "'%s' is not a step number, percentage or fraction", lf_q(q, s, e));
        if (v < 0) return lf_perr(ps, "negative position '%s'", lf_q(q, s, e));
        if (v > 100) return lf_perr(ps, "percentage '%s' is above 100%%", lf_q(q, s, e));
        kf->kind = LF_POS_PERCENT;
        kf->pos = v;
        return LF_OK;
    }
    lf_num_res r = lf_num_parse(s, (size_t)(e - s), 1e300, &v, &form);
    if (r == LF_NUM_SYNTAX || (form & LF_NUM_EXP) || *s == '+' || memchr(s, 'e', (size_t)(e - s)) ||
        memchr(s, 'E', (size_t)(e - s)))
        return lf_perr(ps, "'%s' is not a step number, percentage or fraction", lf_q(q, s, e));
    if (*s == '-') return lf_perr(ps, "negative position '%s'", lf_q(q, s, e));
    if (form & LF_NUM_DOT) {
        if (r != LF_NUM_OK || v > 1)
            return lf_perr(ps, "fraction '%s' is above 1 (a position with a decimal point is a fraction of the "
                           "run; write a step number or a percentage)", lf_q(q, s, e));
        kf->kind = LF_POS_FRACTION;
    } else {
        if (r != LF_NUM_OK || v > 1e9) return lf_perr(ps, "step number '%s' is too large", lf_q(q, s, e));
        kf->kind = LF_POS_STEP;
    }
    kf->pos = v;
    return LF_OK;
}

/* Positions comparable while parsing: steps with steps, fractions with percentages (as fractions). */
static double lf_pos_frac(const lf_keyframe *k) {
    return k->kind == LF_POS_PERCENT ? k->pos / 100.0 : k->pos;
}

static lf_status lf_parse_value(lf_ps *ps, const char *key, const char *s, const char *e, lf_sched *out) {
    lf_quote q, qk;
    lf_trim(&s, &e);
    if (s == e) return lf_perr(ps, "empty value for '%s'", key);
    out->col = lf_col_at(ps->cur, s);
    int has_at = memchr(s, '@', (size_t)(e - s)) != NULL, has_comma = memchr(s, ',', (size_t)(e - s)) != NULL;
    double v;
    if (!has_at && !has_comma) {
        lf_num_res r = lf_strength_num(s, e, &v);
        if (r == LF_NUM_RANGE) return lf_perr(ps, "'%s' is out of range (" LF_RANGE_WHY ")", lf_q(q, s, e));
        if (r != LF_NUM_OK) return lf_perr(ps, "'%s' is not a number or schedule", lf_q(q, s, e));
        if ((out->kf = calloc(1, sizeof *out->kf)) == NULL) return lf_err(LF_ERR_NOMEM, "out of memory");
        out->kf[0].value = (float)v;
        out->kf[0].value_d = v;
        out->kf[0].col = out->col;
        out->n_kf = 1;
        out->constant = 1;
        return LF_OK;
    }
    if (memchr(s, ';', (size_t)(e - s)) || memchr(s, '~', (size_t)(e - s)))
        return lf_perr(ps, "'%s': ';' and '~' are loractl's separators; write VALUE@POSITION,... or use "
                       "--tag-dialect loractl", lf_q(q, s, e));
    if (!has_at)
        return lf_perr(ps, "'%s' is not a number or schedule (a schedule is VALUE@POSITION,VALUE@POSITION,...)",
                       lf_q(q, s, e));
    size_t cap = 1;
    for (const char *p = s; p < e; p++) cap += *p == ',';
    if (ps->n_kf + cap > LF_TAG_MAX_KEYFRAMES)
        return lf_perr(ps, "more than %d key frames in one tag (docs/limits.md)", LF_TAG_MAX_KEYFRAMES);
    if ((out->kf = calloc(cap, sizeof *out->kf)) == NULL) return lf_err(LF_ERR_NOMEM, "out of memory");
    /* the last key frame of each comparable kind: steps, and fractions with percentages */
    const lf_keyframe *last_step = NULL, *last_frac = NULL;
    const char *p = s;
    while (p <= e) {
        const char *c = memchr(p, ',', (size_t)(e - p)), *nx = c ? c : e;
        const char *ks = p, *ke = nx;
        lf_trim(&ks, &ke);
        if (ks == ke) return lf_perr(ps, "empty key frame in '%s'", lf_q(q, s, e));
        const char *at = memchr(ks, '@', (size_t)(ke - ks));
        if (!at)
            return lf_perr(ps, "key frame '%s' has no '@position' (a schedule is VALUE@POSITION,...)", lf_q(qk, ks, ke));
        if (memchr(at + 1, '@', (size_t)(ke - at - 1)))
            return lf_perr(ps, "key frame '%s' has more than one '@'", lf_q(qk, ks, ke));
        const char *vs = ks, *ve = at;
        lf_trim(&vs, &ve);
        lf_keyframe *kf = &out->kf[out->n_kf];
        kf->col = lf_col_at(ps->cur, ks);
        if (vs == ve) return lf_perr(ps, "key frame '%s' has no value before '@'", lf_q(qk, ks, ke));
        lf_num_res r = lf_strength_num(vs, ve, &v);
        if (r == LF_NUM_RANGE)
            return lf_perr(ps, "'%s' in key frame '%s' is out of range (" LF_RANGE_WHY ")", lf_q(q, vs, ve),
                           lf_q(qk, ks, ke));
        if (r != LF_NUM_OK)
            return lf_perr(ps, "'%s' in key frame '%s' is not a number", lf_q(q, vs, ve), lf_q(qk, ks, ke));
        kf->value = (float)v;
        kf->value_d = v;
        lf_status st = lf_parse_pos(ps, at + 1, ke, ks, ke, kf);
        if (st != LF_OK) return st;
        const lf_keyframe **last = kf->kind == LF_POS_STEP ? &last_step : &last_frac;
        if (*last && lf_pos_frac(kf) <= lf_pos_frac(*last))
            return lf_perr(ps, "key frames must be in increasing order of position: '%s' comes after a key frame at "
                           "the same or a later position", lf_q(qk, ks, ke));
        *last = kf;
        out->n_kf++;
        ps->n_kf++;
        p = nx + 1;
    }
    return LF_OK;
}

/* ---- loractl values ---------------------------------------------------------------------------- */

/* Stable order by position (loractl's steps.sort(key=position): Python's sort is stable). */
static int lf_kf_cmp_pos(const void *a, const void *b) {
    const lf_keyframe *x = a, *y = b;
    if (x->pos != y->pos) return x->pos < y->pos ? -1 : 1;
    return (x->col > y->col) - (x->col < y->col);
}

static const char *lf_find_any(const char *s, const char *e, const char *set) {
    for (; s < e; s++)
        if (strchr(set, *s)) return s;
    return NULL;
}

/* One number of a loractl entry ([s, e) trimmed): a value (f32 range) or a position (any double). */
static lf_status lf_loractl_num(const lf_ps *ps, const char *s, const char *e, int is_pos, const char *ks,
                                const char *ke, double *v) {
    lf_quote q, qk;
    lf_trim(&s, &e);
    if (s == e) return lf_perr(ps, "entry '%s' has an empty %s", lf_q(qk, ks, ke), is_pos ? "position" : "value");
    lf_num_res r = lf_num_parse(s, (size_t)(e - s), is_pos ? 1e300 : LF_NUM_F32_MAX, v, NULL);
    if (r == LF_NUM_RANGE && !is_pos)
        return lf_perr(ps, "'%s' in entry '%s' is out of range (" LF_RANGE_WHY ")", lf_q(q, s, e), lf_q(qk, ks, ke));
    if (r != LF_NUM_OK) return lf_perr(ps, "'%s' in entry '%s' is not a number", lf_q(q, s, e), lf_q(qk, ks, ke));
    return LF_OK;
}

/* A value as loractl's sorted_positions reads it: "V" or "V@P,V@P;V~P,...". */
static lf_status lf_parse_value_loractl(lf_ps *ps, const char *key, const char *s, const char *e, lf_sched *out) {
    lf_quote q, qk;
    lf_trim(&s, &e);
    if (s == e) return lf_perr(ps, "empty value for '%s'", key);
    out->col = lf_col_at(ps->cur, s);
    size_t cap = 1;
    for (const char *p = s; p < e; p++) cap += *p == ',' || *p == ';';
    if (ps->n_kf + cap > LF_TAG_MAX_KEYFRAMES)
        return lf_perr(ps, "more than %d key frames in one tag (docs/limits.md)", LF_TAG_MAX_KEYFRAMES);
    if ((out->kf = calloc(cap, sizeof *out->kf)) == NULL) return lf_err(LF_ERR_NOMEM, "out of memory");
    const char *p = s;
    while (p <= e) {
        const char *c = lf_find_any(p, e, ",;"), *nx = c ? c : e;
        const char *ks = p, *ke = nx;
        lf_trim(&ks, &ke);
        if (ks == ke) return lf_perr(ps, "empty entry in '%s'", lf_q(q, s, e));
        const char *at = lf_find_any(ks, ke, "@~");
        if (at && lf_find_any(at + 1, ke, "@~"))
            return lf_perr(ps, "entry '%s' has more than one '@' or '~' (loractl would ignore the rest)",
                           lf_q(qk, ks, ke));
        lf_keyframe *kf = &out->kf[out->n_kf];
        kf->col = lf_col_at(ps->cur, ks);
        kf->kind = LF_POS_LORACTL;
        double v = 0, pos = 1; /* an entry after the first without a position: loractl's implicit 1 */
        lf_status st = lf_loractl_num(ps, ks, at ? at : ke, 0, ks, ke, &v);
        if (st == LF_OK && at) st = lf_loractl_num(ps, at + 1, ke, 1, ks, ke, &pos);
        if (st != LF_OK) return st;
        if (!at && out->n_kf == 0 && nx < e)
            return lf_perr(ps, "'%s': the first entry has no position, so loractl would use its value alone and "
                           "ignore the rest; give it a position ('%s@0,...')", lf_q(q, s, e), lf_q(qk, ks, ke));
        kf->value = (float)v;
        kf->value_d = v;
        kf->pos = pos;
        out->n_kf++;
        ps->n_kf++;
        if (!at && nx >= e && out->n_kf == 1) out->constant = 1;
        p = nx + 1;
    }
    if (!out->constant) qsort(out->kf, out->n_kf, sizeof *out->kf, lf_kf_cmp_pos);
    return LF_OK;
}

/* ---- other keys ----------------------------------------------------------------------------- */

static lf_status lf_parse_lbw(lf_ps *ps, const char *s, const char *e) {
    lf_tag *t = ps->tag;
    lf_quote q;
    lf_trim(&s, &e);
    if (s == e) return lf_perr(ps, "empty value for 'lbw'");
    t->lbw_col = lf_col_at(ps->cur, s);
    double v;
    if (!memchr(s, ',', (size_t)(e - s)) && lf_strength_num(s, e, &v) == LF_NUM_SYNTAX) {
        if (!lf_lbw_name_ok(s, (size_t)(e - s)))
            return lf_perr(ps, "'%s' is neither a block-weight vector nor a preset name", lf_q(q, s, e));
        if ((t->lbw_preset = lf_strndup(s, (size_t)(e - s))) == NULL) return lf_err(LF_ERR_NOMEM, "out of memory");
        return LF_OK;
    }
    int n = 0;
    const char *p = s;
    while (p <= e) {
        const char *c = memchr(p, ',', (size_t)(e - p)), *nx = c ? c : e;
        const char *vs = p, *ve = nx;
        lf_trim(&vs, &ve);
        if (vs == ve) return lf_perr(ps, "empty entry in lbw vector");
        lf_num_res r = lf_strength_num(vs, ve, &v);
        if (r == LF_NUM_RANGE) return lf_perr(ps, "'%s' in lbw is out of range (" LF_RANGE_WHY ")", lf_q(q, vs, ve));
        if (r != LF_NUM_OK) {
            if (*vs == 'R' || *vs == 'U' || *vs == 'X')
                return lf_perr(ps, "'%s' in lbw is not a number (LBW's random and inherited weights R, U, X "
                               "are not supported)", lf_q(q, vs, ve));
            return lf_perr(ps, "'%s' in lbw is not a number", lf_q(q, vs, ve));
        }
        if (n < LF_LBW_MAX) t->lbw[n] = (float)v;
        n++;
        p = nx + 1;
    }
    if (n != 12 && n != 17 && n != 20 && n != 26)
        return lf_perr(ps, "lbw has %d values; a block-weight vector has 17 or 26 (SD1.x) or 12 or 20 (SDXL)", n);
    t->lbw_n = n;
    return LF_OK;
}

/* A dyn value (positional or dyn=): a positive integer. */
static lf_status lf_parse_dyn(lf_ps *ps, const char *vs, const char *ve) {
    lf_quote q;
    if (vs == ve) return lf_perr(ps, "empty value for 'dyn'");
    long long d = 0;
    lf_num_res r = lf_num_parse_int(vs, (size_t)(ve - vs), LLONG_MIN, LLONG_MAX, &d);
    if (r == LF_NUM_RANGE || (r == LF_NUM_OK && d > LF_TAG_MAX_DYN))
        return lf_perr(ps, "dyn=%s is out of range (at most %d rank components)", lf_q(q, vs, ve), LF_TAG_MAX_DYN);
    if (r != LF_NUM_OK || d < 1)
        return lf_perr(ps, "dyn must be a positive integer (the number of rank components), not '%s'", lf_q(q, vs, ve));
    ps->tag->dyn = (int)d;
    return LF_OK;
}

static lf_status lf_parse_any_value(lf_ps *ps, const char *key, const char *s, const char *e, lf_sched *out) {
    if (ps->dialect == LF_DIALECT_LORACTL) return lf_parse_value_loractl(ps, key, s, e, out);
    return lf_parse_value(ps, key, s, e, out);
}

/* Keys other than the strength keys, after them in the `seen` bits. */
enum { LF_XK_LBW = LF_TK_COUNT, LF_XK_DYN, LF_XK_RAMP, LF_XK_END };
static const char *const lf_other_keys[3] = {"lbw", "dyn", "ramp"};

/* The key [ks, ke) names, or -1 (with the message given) when the dialect has no such key. */
static lf_status lf_field_key(const lf_ps *ps, const char *ks, const char *ke, int *key) {
    lf_quote q;
    size_t kl = (size_t)(ke - ks);
    *key = -1;
    for (int k = LF_TK_TE; k < LF_TK_COUNT; k++)
        if (strlen(lf_key_names[k]) == kl && !memcmp(ks, lf_key_names[k], kl)) *key = k;
    for (int k = 0; k < 3; k++)
        if (strlen(lf_other_keys[k]) == kl && !memcmp(ks, lf_other_keys[k], kl)) *key = LF_TK_COUNT + k;
    if ((kl == 2 && !memcmp(ks, "hr", 2)) || (kl == 4 && !memcmp(ks, "hrte", 4)) ||
        (kl == 6 && !memcmp(ks, "hrunet", 6)))
        return lf_perr(ps, "'%s' is loractl's strength for a hires pass; lorafuse has no hires pass", lf_q(q, ks, ke));
    if (ps->dialect == LF_DIALECT_LORACTL) {
        if (*key == LF_TK_TE || *key == LF_TK_UNET || *key == LF_XK_DYN) return LF_OK;
        return lf_perr(ps, "unknown key '%s' in the loractl dialect (keys: te, unet, dyn; te1, te2, in, mid, out, "
                       "lbw and ramp are keys of --tag-dialect lorafuse)", lf_q(q, ks, ke));
    }
    if (*key < 0)
        return lf_perr(ps, "unknown key '%s' (keys: te, te1, te2, unet, in, mid, out, lbw, dyn, ramp)", lf_q(q, ks, ke));
    return LF_OK;
}

/* Field `index` (1-based after the name). *positional stays 1 while every field so far was a plain
 * value: A1111 reads them as te (S here: te and unet), unet, dyn. */
static lf_status lf_parse_field(lf_ps *ps, const char *fs, const char *fe, int index, unsigned *seen, int *positional) {
    lf_tag *t = ps->tag;
    lf_quote q;
    const char *s = fs, *e = fe;
    lf_trim(&s, &e);
    if (s == e) return lf_perr(ps, "empty field (two ':' in a row, or a ':' before '>')");
    const char *eq = memchr(s, '=', (size_t)(e - s));
    if (!eq) {
        if (!*positional)
            return lf_perr(ps, "'%s' has no KEY= (plain values come first: STRENGTH, then UNET, then DYN)", lf_q(q, s, e));
        if (index > 3)
            return lf_perr(ps, "'%s' is a fourth plain value (at most three: STRENGTH, UNET, DYN)", lf_q(q, s, e));
        static const int pos_key[3] = {LF_TK_S, LF_TK_UNET, LF_XK_DYN};
        int key = pos_key[index - 1];
        if (key != LF_TK_S) *seen |= 1u << key;
        if (key == LF_XK_DYN) return lf_parse_dyn(ps, s, e);
        return lf_parse_any_value(ps, lf_key_names[key], s, e, &t->v[key]);
    }
    *positional = 0;
    const char *ks = s, *ke = eq;
    lf_trim(&ks, &ke);
    if (ks == ke) return lf_perr(ps, "'%s' has no key before '='", lf_q(q, s, e));
    int key;
    lf_status st = lf_field_key(ps, ks, ke, &key);
    if (st != LF_OK) return st;
    if (*seen & (1u << key)) {
        if (key == LF_TK_UNET || key == LF_XK_DYN)
            return lf_perr(ps, "key '%s' is given twice (a second plain value is unet, a third dyn)", lf_q(q, ks, ke));
        return lf_perr(ps, "key '%s' is given twice", lf_q(q, ks, ke));
    }
    *seen |= 1u << key;
    const char *vs = eq + 1, *ve = e;
    lf_trim(&vs, &ve);
    if (key < LF_TK_COUNT) return lf_parse_any_value(ps, lf_key_names[key], vs, ve, &t->v[key]);
    if (key == LF_XK_LBW) return lf_parse_lbw(ps, vs, ve);
    if (key == LF_XK_DYN) return lf_parse_dyn(ps, vs, ve);
    if (vs == ve) return lf_perr(ps, "empty value for 'ramp'");
    if ((size_t)(ve - vs) == 4 && !memcmp(vs, "hold", 4)) t->ramp = LF_RAMP_HOLD;
    else if ((size_t)(ve - vs) == 6 && !memcmp(vs, "linear", 6)) t->ramp = LF_RAMP_LINEAR;
    else return lf_perr(ps, "ramp must be 'hold' or 'linear', not '%s'", lf_q(q, vs, ve));
    return LF_OK;
}

/* Parse the inside of one tag: [cs, ce) is the text between "<lora:" and ">". */
static lf_status lf_parse_tag(lf_ps *ps, const char *cs, const char *ce) {
    lf_tag *t = ps->tag;
    if (memchr(cs, '<', (size_t)(ce - cs))) return lf_perr(ps, "'<' inside a tag (is a '>' missing?)");
    unsigned seen = 0;
    int index = 0, positional = 1;
    t->dialect = ps->dialect;
    if (ps->dialect == LF_DIALECT_LORACTL) t->ramp = LF_RAMP_LORACTL;
    const char *p = cs;
    while (p <= ce) {
        const char *c = memchr(p, ':', (size_t)(ce - p)), *q = c ? c : ce;
        if (index == 0) {
            const char *s = p, *e = q;
            lf_trim(&s, &e);
            if (s == e) return lf_perr(ps, "empty LoRA name");
            if ((t->name = lf_strndup(s, (size_t)(e - s))) == NULL) return lf_err(LF_ERR_NOMEM, "out of memory");
        } else {
            lf_status st = lf_parse_field(ps, p, q, index, &seen, &positional);
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

/* ---- identical tags ------------------------------------------------------------------------------ */

static int lf_sched_same(const lf_sched *a, const lf_sched *b) {
    if (a->n_kf != b->n_kf || a->constant != b->constant) return 0;
    for (size_t i = 0; i < a->n_kf; i++)
        if (a->kf[i].value != b->kf[i].value || a->kf[i].kind != b->kf[i].kind || a->kf[i].pos != b->kf[i].pos)
            return 0;
    return 1;
}

int lf_tag_same(const lf_tag *a, const lf_tag *b) {
    if (strcmp(a->name, b->name) || a->ramp != b->ramp || a->dyn != b->dyn || a->lbw_n != b->lbw_n ||
        a->dialect != b->dialect)
        return 0;
    if ((a->lbw_preset != NULL) != (b->lbw_preset != NULL) || (a->lbw_preset && strcmp(a->lbw_preset, b->lbw_preset)))
        return 0;
    for (int i = 0; i < a->lbw_n; i++)
        if (a->lbw[i] != b->lbw[i]) return 0;
    for (int k = 0; k < LF_TK_COUNT; k++)
        if (!lf_sched_same(&a->v[k], &b->v[k])) return 0;
    return 1;
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

/* Length of the tag opener at p ("<lora:", "<lyco:", and in the loractl dialect "<loractl:"), 0 if none. */
static size_t lf_tag_open(const char *p, lf_tag_dialect d) {
    if (!strncmp(p, "<lora:", 6) || !strncmp(p, "<lyco:", 6)) return 6;
    if (d == LF_DIALECT_LORACTL && !strncmp(p, "<loractl:", 9)) return 9;
    return 0;
}

lf_status lf_prompt_parse(const char *text, lf_prompt **out) {
    return lf_prompt_parse_dialect(text, LF_DIALECT_LORAFUSE, out);
}

lf_status lf_prompt_parse_dialect(const char *text, lf_tag_dialect dialect, lf_prompt **out) {
    *out = NULL;
    if (!text) return lf_err(LF_ERR_ARG, "no prompt");
    size_t len = strlen(text);
    if (len > LF_PROMPT_MAX_BYTES)
        return lf_err(LF_ERR_ARG, "prompt of %zu bytes is longer than the limit of %d bytes (docs/limits.md)", len,
                      LF_PROMPT_MAX_BYTES);
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
    lf_colcur cur = {text, text, 1};
    const char *p = text;
    while (*p && st == LF_OK) {
        /* copy the text up to the next '<' in one go */
        const char *lt = strchr(p, '<');
        size_t run = lt ? (size_t)(lt - p) : strlen(p);
        memcpy(clean + cn, p, run);
        cn += run;
        p += run;
        if (!*p) break;
        size_t open = lf_tag_open(p, dialect);
        int exact = open != 0;
        int other = !exact && (!strncasecmp(p, "<lora:", 6) || !strncasecmp(p, "<lyco:", 6));
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
        t->col = lf_col_at(&cur, p);
        size_t tl = gt ? (size_t)(gt - p + 1) : strlen(p);
        if ((t->text = lf_strndup(p, tl)) == NULL) {
            st = lf_err(LF_ERR_NOMEM, "out of memory");
            break;
        }
        lf_ps ps = {&cur, t, 0, dialect};
        if (pr->n_tags > LF_PROMPT_MAX_TAGS) {
            st = lf_perr(&ps, "more than %d tags in one prompt (docs/limits.md)", LF_PROMPT_MAX_TAGS);
            break;
        }
        if (other) {
            st = lf_perr(&ps, "write tags as '<lora:NAME...>' or '<lyco:NAME...>' (lower case)");
            break;
        }
        if (!gt) {
            st = lf_perr(&ps, "tag is not closed with '>'");
            break;
        }
        st = lf_parse_tag(&ps, p + open, gt);
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
