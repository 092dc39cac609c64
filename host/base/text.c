/* text.c: UTF-8 decoding and the escaping of user text quoted in messages (text.h). */
#include <stdio.h>
#include <string.h>

#include "text.h"

size_t lf_utf8_next(const char *s, size_t n, unsigned *cp) {
    const unsigned char *u = (const unsigned char *)s;
    unsigned c = u[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) len = 2, c &= 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;      /* overlong */
        else if (c == 0xED) hi = 0x9F; /* surrogates */
        c &= 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;      /* overlong */
        else if (c == 0xF4) hi = 0x8F; /* beyond U+10FFFF */
        c &= 0x07;
    } else {
        return 0; /* continuation byte, C0/C1 overlong lead, F5-FF */
    }
    if (n < len || u[1] < lo || u[1] > hi) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((u[i] & 0xC0) != 0x80) return 0;
        c = c << 6 | (u[i] & 0x3F);
    }
    *cp = c;
    return len;
}

/* Code points a terminal acts on or that change how the line reads: C1 controls, the Arabic letter
 * mark, LRM/RLM, line and paragraph separators, the bidi embeddings, overrides and isolates. */
static int lf_invisible(unsigned cp) {
    return (cp >= 0x80 && cp <= 0x9F) || cp == 0x61C || cp == 0x200E || cp == 0x200F ||
           (cp >= 0x2028 && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

size_t lf_esc_step(const char *s, size_t n, char tok[8], size_t *tl) {
    unsigned char c = (unsigned char)s[0];
    if (c >= 0x20 && c < 0x7F) {
        tok[0] = (char)c;
        tok[1] = '\0';
        *tl = 1;
        return 1;
    }
    if (c == '\t' || c == '\n' || c == '\r') {
        tok[0] = '\\';
        tok[1] = c == '\t' ? 't' : c == '\n' ? 'n' : 'r';
        tok[2] = '\0';
        *tl = 2;
        return 1;
    }
    unsigned cp;
    size_t len = c < 0x80 ? 0 : lf_utf8_next(s, n, &cp);
    if (!len) { /* C0 control, DEL, or a byte that starts no valid sequence */
        *tl = (size_t)snprintf(tok, 8, "\\x%02x", c);
        return 1;
    }
    if (lf_invisible(cp)) {
        *tl = (size_t)snprintf(tok, 8, "\\u%04x", cp);
        return len;
    }
    memcpy(tok, s, len);
    tok[len] = '\0';
    *tl = len;
    return len;
}

/* Tokens are appended while they fit; `mark` remembers the last length at which "..." still fits, so
 * that text cut short ends there with "..." and never inside a character or an escape. */
const char *lf_esc(char *out, size_t cap, const char *s, size_t n) {
    size_t o = 0, mark = 0, i = 0;
    while (i < n) {
        char tok[8];
        size_t tl, used = lf_esc_step(s + i, n - i, tok, &tl);
        if (o + tl > cap - 1) {
            memcpy(out + mark, "...", 4);
            return out;
        }
        memcpy(out + o, tok, tl);
        o += tl;
        i += used;
        if (o + 3 <= cap - 1) mark = o;
    }
    out[o] = '\0';
    return out;
}

lf_status lf_err_escape(lf_status st) {
    char q[2048];
    const char *e = lf_last_error();
    lf_esc(q, sizeof q, e, strlen(e));
    return lf_err(st, "%s", q);
}
