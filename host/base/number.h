/* number.h: the one grammar of the numbers a user types: strengths, key-frame positions and block
 * weights in prompt tags, LBW preset files, and the command line (`--lora PATH:STRENGTH[:dyn=N]`,
 * `--steps`, `--cfg`, ...). Every parser of such numbers goes through these two functions, so a
 * number means the same everywhere (docs/limits.md "Numbers").
 *
 *   number  := [+-]? ( digits ( "." digits? )? | "." digits ) ( [eE] [+-]? digits )?
 *   integer := [+-]? digits
 *
 * Decimal only: no hexadecimal ("0x10"), no inf / nan, no whitespace, no digit separators. The text
 * is read with strtod / decimal arithmetic (correctly rounded) and must then be finite and within the
 * caller's range: a number that is well formed but too large ("1e999", a 20-digit integer) is
 * LF_NUM_RANGE, never a syntax error and never clamped. A number too small to represent (1e-999)
 * reads as 0, as strtod rounds it.
 */
#ifndef LF_NUMBER_H
#define LF_NUMBER_H

#include <stddef.h>

#include "lorafuse/lf_status.h"

typedef enum lf_num_res {
    LF_NUM_OK = 0,
    LF_NUM_SYNTAX, /* not a number of the grammar above */
    LF_NUM_RANGE   /* a number, but outside the range asked for (or beyond a double) */
} lf_num_res;

/* Form of a parsed number (bits of *form): a leading sign, a decimal point, an exponent. */
enum { LF_NUM_SIGN = 1u, LF_NUM_DOT = 2u, LF_NUM_EXP = 4u };

/* The largest magnitude of a strength: the largest finite f32 (strengths are held as floats). */
#define LF_NUM_F32_MAX 3.4028234663852886e38

/* Parse exactly s[0..n) as a number with |value| <= max_abs. *out and *form (may be NULL) are set on
 * LF_NUM_OK only. */
lf_num_res lf_num_parse(const char *s, size_t n, double max_abs, double *out, unsigned *form);

/* Parse exactly s[0..n) as an integer in [lo, hi]. *out is set on LF_NUM_OK only. */
lf_num_res lf_num_parse_int(const char *s, size_t n, long long lo, long long hi, long long *out);

/* Command-line forms: an LF_ERR_ARG message "bad OPT 'TEXT' (LO to HI)" (TEXT escaped, docs/limits.md)
 * when s is not an integer in [lo, hi], or not a number in [lo, hi]. */
lf_status lf_num_arg_int(const char *opt, const char *s, long long lo, long long hi, long long *out);
lf_status lf_num_arg(const char *opt, const char *s, double lo, double hi, double *out);

#endif
