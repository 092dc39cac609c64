/* pages.h: hand resident pages of a read-only file mapping back to the system (host/base/pages.c).
 *
 * lf_drop_pages(p, len): madvise(MADV_DONTNEED) on the whole pages around [p, p + len) of a PROT_READ
 * file mapping (lf_st_open's): the process's resident set shrinks, the page cache keeps the pages, and
 * the next read faults them back in with the same bytes. Used where a mapped tensor is not read again
 * soon (a weight converted to an f32 copy at load, W0 of a patched layer between two steps, a model's
 * weights during the VAE decode). Never on anonymous or writable memory (its contents would be lost).
 */
#ifndef LF_PAGES_H
#define LF_PAGES_H

#include <stddef.h>

void lf_drop_pages(const void *p, size_t len);

#endif
