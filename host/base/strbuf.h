/* strbuf.h: a growable NUL-terminated text buffer for the writers that build a document in memory
 * (the safetensors header JSON in safetensors.c, the PNG "parameters" text in png_write.c).
 *
 * Zero-initialise (lf_sbuf b = {0}), append, then use b.s (b.n bytes, NUL-terminated) and free(b.s).
 * A failed allocation sets oom and every later append does nothing, so a caller checks oom once at
 * the end instead of after each append.
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
/* Append s as a JSON string literal: '"' and '\' escaped, control bytes as \b \f \n \r \t or \u00XX,
 * every other byte (UTF-8 included) as it is (Python's json.dumps with ensure_ascii=False). */
void lf_sb_json(lf_sbuf *b, const char *s);

#endif
