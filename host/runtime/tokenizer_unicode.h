/* tokenizer_unicode.h: Unicode tables of the CLIP tokenizer (internal to host/runtime/tokenizer.c).
 * Generated into host/runtime/tokenizer_unicode.c by scripts/gen_clip_unicode.py from the oracle's own
 * Unicode data (Python unicodedata + the regex module), so classification, lower-casing and NFC
 * match transformers' CLIPTokenizer on the reference environment. All tables are sorted by code point.
 */
#ifndef LF_TOKENIZER_UNICODE_H
#define LF_TOKENIZER_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* Character classes (lf_uc_class values; code points in no range are LF_UC_OTHER). */
enum { LF_UC_OTHER = 0, LF_UC_LETTER = 1, LF_UC_NUMBER = 2, LF_UC_DROP = 3, LF_UC_SPACE = 4,
       LF_UC_SEP = 5 };

typedef struct lf_uc_range { uint32_t lo, hi; uint32_t v; } lf_uc_range;
typedef struct lf_uc_pair { uint32_t from, to; } lf_uc_pair;
typedef struct lf_uc_decomp { uint32_t a, b, c; } lf_uc_decomp;

extern const lf_uc_range lf_uc_class[];   /* class of each code point */
extern const size_t lf_uc_class_n;
extern const lf_uc_pair lf_uc_lower[];    /* str.lower() where it is one code point */
extern const size_t lf_uc_lower_n;
extern const lf_uc_range lf_uc_ccc[];     /* canonical combining class (nonzero only) */
extern const size_t lf_uc_ccc_n;
extern const lf_uc_decomp lf_uc_decomps[]; /* cp -> (first, second or 0), canonical, one level */
extern const size_t lf_uc_decomps_n;
extern const lf_uc_decomp lf_uc_comps[];  /* (first, second) -> primary composite, sorted by pair */
extern const size_t lf_uc_comps_n;

#endif
