/* number.c: the number grammar of number.h, checked by hand, then read with strtod (numbers) or with
 * overflow-checked decimal arithmetic (integers). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "number.h"
#include "text.h"

static int lf_digit(char c) {
    return c >= '0' && c <= '9';
}

lf_num_res lf_num_parse(const char *s, size_t n, double max_abs, double *out, unsigned *form) {
    const char *p = s, *e = s + n;
    unsigned f = 0;
    size_t digits = 0;
    if (p < e && (*p == '+' || *p == '-')) p++, f |= LF_NUM_SIGN;
    while (p < e && lf_digit(*p)) p++, digits++;
    if (p < e && *p == '.') {
        f |= LF_NUM_DOT;
        p++;
        while (p < e && lf_digit(*p)) p++, digits++;
    }
    if (!digits) return LF_NUM_SYNTAX;
    if (p < e && (*p == 'e' || *p == 'E')) {
        const char *q = p + 1;
        if (q < e && (*q == '+' || *q == '-')) q++;
        if (q >= e || !lf_digit(*q)) return LF_NUM_SYNTAX;
        while (q < e && lf_digit(*q)) q++;
        p = q;
        f |= LF_NUM_EXP;
    }
    if (p != e) return LF_NUM_SYNTAX;
    /* strtod needs a terminated copy; the grammar above is a subset of what it reads in the C locale,
     * so it consumes all of it. A program embedding the library under a locale whose decimal point is
     * not '.' would have strtod stop early: that is a syntax error here, never a silently cut value.
     * Long numbers (hundreds of digits are still numbers) go to the heap. */
    char stack[128], *buf = n < sizeof stack ? stack : malloc(n + 1);
    if (!buf) return LF_NUM_RANGE;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end = NULL;
    double v = strtod(buf, &end);
    int whole = end == buf + n;
    if (buf != stack) free(buf);
    if (!whole) return LF_NUM_SYNTAX;
    if (!isfinite(v) || fabs(v) > max_abs) return LF_NUM_RANGE;
    *out = v;
    if (form) *form = f;
    return LF_NUM_OK;
}

lf_num_res lf_num_parse_int(const char *s, size_t n, long long lo, long long hi, long long *out) {
    const char *p = s, *e = s + n;
    int neg = 0;
    if (p < e && (*p == '+' || *p == '-')) neg = *p++ == '-';
    if (p == e) return LF_NUM_SYNTAX;
    for (const char *q = p; q < e; q++)
        if (!lf_digit(*q)) return LF_NUM_SYNTAX;
    /* accumulate the magnitude as a negative number: LLONG_MIN has no positive twin */
    long long v = 0;
    int over = 0;
    for (; p < e; p++) {
        int d = *p - '0';
        if (v < (LLONG_MIN + d) / 10) over = 1;
        else v = v * 10 - d;
    }
    if (!neg) {
        if (v == LLONG_MIN) over = 1;
        else v = -v;
    }
    if (over || v < lo || v > hi) return LF_NUM_RANGE;
    *out = v;
    return LF_NUM_OK;
}

lf_status lf_num_arg_int(const char *opt, const char *s, long long lo, long long hi, long long *out) {
    if (lf_num_parse_int(s, strlen(s), lo, hi, out) == LF_NUM_OK) return LF_OK;
    char q[LF_ESC_PART];
    return lf_err(LF_ERR_ARG, "bad %s '%s' (%lld to %lld)", opt, lf_esc(q, sizeof q, s, strlen(s)), lo, hi);
}

lf_status lf_num_arg(const char *opt, const char *s, double lo, double hi, double *out) {
    double v;
    double lim = fabs(lo) > fabs(hi) ? fabs(lo) : fabs(hi);
    if (lf_num_parse(s, strlen(s), lim, &v, NULL) == LF_NUM_OK && v >= lo && v <= hi) {
        *out = v;
        return LF_OK;
    }
    char q[LF_ESC_PART];
    return lf_err(LF_ERR_ARG, "bad %s '%s' (%g to %g)", opt, lf_esc(q, sizeof q, s, strlen(s)), lo, hi);
}
