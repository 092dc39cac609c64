/* strbuf.c: the growable text buffer of strbuf.h (append, JSON string literal). Capacity doubles from
 * 256 bytes; the buffer stays NUL-terminated after every append.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

void lf_sb_put(lf_sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

void lf_sb_str(lf_sbuf *b, const char *s) { lf_sb_put(b, s, strlen(s)); }

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
