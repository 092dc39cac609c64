/* text.h: user text quoted in messages, made safe to print on a terminal (docs/limits.md "What a
 * message shows"), and the UTF-8 decoding it rests on.
 *
 * Escaping keeps what a person typed readable and turns everything a terminal would act on into
 * visible text:
 *   - printable ASCII and valid UTF-8 stay as they are (a backslash too, so A1111's `\(` reads as typed);
 *   - tab, newline and carriage return become the two characters \t, \n, \r;
 *   - every other C0 control byte, DEL, and each byte of an invalid UTF-8 sequence (a stray
 *     continuation byte, an overlong form, a surrogate, beyond U+10FFFF, a truncated sequence)
 *     becomes \xHH;
 *   - the C1 controls U+0080-U+009F (U+009B is an 8-bit CSI) and the invisible marks that reorder or
 *     break lines (U+061C, U+200E, U+200F, U+2028-U+202E, U+2066-U+2069) become \uHHHH.
 */
#ifndef LF_TEXT_H
#define LF_TEXT_H

#include <stddef.h>

#include "lorafuse/lf_status.h"

/* Length (1-4) of the valid UTF-8 sequence at s[0..n) (n > 0) and its code point in *cp; 0 when the
 * bytes there are not a valid sequence (RFC 3629: no overlong forms, surrogates or values above
 * U+10FFFF). */
size_t lf_utf8_next(const char *s, size_t n, unsigned *cp);

/* The escaped form of the character at s[0..n) (n > 0): written to tok (NUL-terminated, at most 6
 * bytes + NUL), its length in *tl; returns the number of input bytes consumed (>= 1). */
size_t lf_esc_step(const char *s, size_t n, char tok[8], size_t *tl);

/* Escape s[0..n) into out[cap] (cap >= 4; NUL-terminated). Text that does not fit is cut at a
 * character boundary and ends with "...". Returns out, for "'%s'" in a message. */
const char *lf_esc(char *out, size_t cap, const char *s, size_t n);

/* Escape the last error message (lf_last_error) in place and return st: for a message that quotes
 * input it did not escape itself (file and directory names, arguments). Escaping is idempotent, so
 * text escaped already is kept as it is. */
lf_status lf_err_escape(lf_status st);

/* Buffer sizes of the quotes in messages: a part of a tag (a value, a key frame: up to 80 characters,
 * then "...") and a whole tag (up to 160 characters, then "..."). */
#define LF_ESC_PART 84
#define LF_ESC_TAG 164

#endif
