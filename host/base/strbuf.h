/* strbuf.h: a growable NUL-terminated text buffer for the code that composes text in memory (the
 * safetensors header JSON, the PNG "parameters" text, the keymap's adapter spellings, user text
 * escaped for printing).
 *
 * Zero-initialise (lf_sbuf b = {0}), append, then use b.s (b.n bytes, NUL-terminated) and free it with
 * lf_sb_free (or free(b.s)). A failed allocation sets oom and every later append does nothing, so a
 * caller checks oom once at the end instead of after each append.
 */
#ifndef LF_STRBUF_H
#define LF_STRBUF_H

#include <stddef.h>

typedef struct lf_sbuf {
    char *s;      /* owned, NUL-terminated; NULL until the first append */
    size_t n, cap;
    int oom;
} lf_sbuf;

/* Append n bytes of s. */
void lf_sb_put(lf_sbuf *b, const char *s, size_t n);
/* Append a NUL-terminated string. */
void lf_sb_str(lf_sbuf *b, const char *s);
/* Append v in decimal. */
void lf_sb_u64(lf_sbuf *b, unsigned long long v);
/* Append printf-style text (any length). */
void lf_sb_printf(lf_sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Append s as a JSON string literal: '"' and '\' escaped, control bytes as \b \f \n \r \t or \u00XX,
 * every other byte (UTF-8 included) as it is (Python's json.dumps with ensure_ascii=False). */
void lf_sb_json(lf_sbuf *b, const char *s);
/* Append s[0..n) escaped for a message or a terminal (text.h: control bytes, invalid UTF-8 and
 * invisible direction marks become visible escapes; everything else as it is). */
void lf_sb_escape(lf_sbuf *b, const char *s, size_t n);
/* Empty the buffer for reuse, keeping its memory, and clear oom; b.s is then "" (unless the buffer
 * could not be allocated: oom is set again). */
void lf_sb_reset(lf_sbuf *b);
/* Release the memory; the buffer is then as if zero-initialised. */
void lf_sb_free(lf_sbuf *b);

#endif
