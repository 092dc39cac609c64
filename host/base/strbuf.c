/* strbuf.c: the growable text buffer of strbuf.h (append, number, printf, JSON string literal,
 * escaped user text).
 * The buffer is a growable array of char (lf_grow: capacity doubles) and stays NUL-terminated after
 * every append.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "text.h"
#include "util.h"

void lf_sb_put(lf_sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (n > SIZE_MAX - 1 - b->n || lf_grow(&b->s, &b->cap, b->n + n + 1)) {
        b->oom = 1;
        return;
    }
    if (n) memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

void lf_sb_str(lf_sbuf *b, const char *s) { lf_sb_put(b, s, strlen(s)); }

void lf_sb_u64(lf_sbuf *b, unsigned long long v) {
    char tmp[24];
    int k = snprintf(tmp, sizeof tmp, "%llu", v);
    lf_sb_put(b, tmp, (size_t)k);
}

/* Short text is formatted once, on the stack; longer text a second time, straight into the buffer. */
void lf_sb_printf(lf_sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) {
        b->oom = 1; /* an encoding error: the text would be incomplete, like after a failed allocation */
        return;
    }
    if ((size_t)k < sizeof tmp) {
        lf_sb_put(b, tmp, (size_t)k);
        return;
    }
    if (lf_grow(&b->s, &b->cap, b->n + (size_t)k + 1)) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

/* Runs of plain bytes are copied at once; only the bytes JSON forbids raw are escaped. */
void lf_sb_json(lf_sbuf *b, const char *s) {
    lf_sb_put(b, "\"", 1);
    const char *run = s;
    for (const char *p = s;; p++) {
        unsigned char c = (unsigned char)*p;
        if (c != 0 && c >= 0x20 && c != '"' && c != '\\') continue;
        lf_sb_put(b, run, (size_t)(p - run));
        if (c == 0) break;
        char esc[8];
        switch (c) {
        case '"': lf_sb_put(b, "\\\"", 2); break;
        case '\\': lf_sb_put(b, "\\\\", 2); break;
        case '\b': lf_sb_put(b, "\\b", 2); break;
        case '\f': lf_sb_put(b, "\\f", 2); break;
        case '\n': lf_sb_put(b, "\\n", 2); break;
        case '\r': lf_sb_put(b, "\\r", 2); break;
        case '\t': lf_sb_put(b, "\\t", 2); break;
        default:
            snprintf(esc, sizeof esc, "\\u%04x", c);
            lf_sb_put(b, esc, 6);
        }
        run = p + 1;
    }
    lf_sb_put(b, "\"", 1);
}

/* Runs of characters that need no escape are copied at once. */
void lf_sb_escape(lf_sbuf *b, const char *s, size_t n) {
    size_t run = 0, i = 0;
    while (i < n) {
        char tok[8];
        size_t tl, used = lf_esc_step(s + i, n - i, tok, &tl);
        if (tl == used && !memcmp(tok, s + i, used)) {
            i += used;
            continue;
        }
        lf_sb_put(b, s + run, i - run);
        lf_sb_put(b, tok, tl);
        i += used;
        run = i;
    }
    lf_sb_put(b, s + run, n - run);
}

void lf_sb_reset(lf_sbuf *b) {
    b->n = 0;
    b->oom = 0;
    lf_sb_put(b, "", 0);
}

void lf_sb_free(lf_sbuf *b) {
    free(b->s);
    *b = (lf_sbuf){0};
}
