/* util.h: the small checked helpers every layer shares (one copy each, in host/base/util.c).
 *
 *   lf_clock_s()                    monotonic seconds, for progress lines and benchmarks
 *   lf_read_file(path, max, ...)    a whole regular file into a NUL-terminated buffer
 *   lf_has_prefix / lf_has_suffix   byte-wise string tests; lf_basename, a path's last component
 *   lf_grow(&v, &cap, need)         make room for `need` elements in a growable array
 *   lf_strndup(s, n)                a malloc'd NUL-terminated copy of s[0..n)
 *
 * Growable arrays are plain (pointer, count, capacity) triples: `T *v; size_t n, cap;` and
 *     if (lf_grow(&v, &cap, n + 1)) return lf_err(LF_ERR_NOMEM, ...);
 *     v[n++] = x;
 * Capacity doubles (from 8); the element size comes from the pointer's type.
 */
#ifndef LF_UTIL_H
#define LF_UTIL_H

#include <stddef.h>

#include "lorafuse/lf_status.h"

/* Seconds on CLOCK_MONOTONIC (an arbitrary origin: only differences mean anything). */
double lf_clock_s(void);

/* Read the whole of `path` into *out (malloc'd, NUL-terminated, *len bytes before the NUL; len may
 * be NULL). The file must be a regular file (a FIFO or a device is refused before it is read, so a
 * stray path never blocks) of at most `max` bytes. `what` names the file's role in messages
 * ("the LBW presets file"); NULL for none. Errors: LF_ERR_IO (cannot open / not a regular file /
 * read error), LF_ERR_FORMAT (larger than max), LF_ERR_NOMEM. */
lf_status lf_read_file(const char *path, const char *what, size_t max, char **out, size_t *len);

/* A malloc'd copy of s[0..n) with a NUL after it (s need not be NUL-terminated); NULL when out of
 * memory. */
char *lf_strndup(const char *s, size_t n);

/* The last component of a path: what follows its last '/', or the whole path. */
const char *lf_basename(const char *path);

/* 1 when s starts (ends) with p, else 0. */
int lf_has_prefix(const char *s, const char *p);
int lf_has_suffix(const char *s, const char *p);


/* Make room for at least `need` elements of `elem` bytes in the array *(void **)pv of capacity
 * *cap. Returns 0, or -1 when out of memory or when the byte size would overflow; on failure the
 * array and *cap are unchanged. Use through lf_grow. */
int lf_grow_impl(void *pv, size_t *cap, size_t need, size_t elem);
#define lf_grow(pv, cap, need) lf_grow_impl((pv), (cap), (need), sizeof **(pv))

#endif
