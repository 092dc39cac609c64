/* pages.c: lf_drop_pages (pages.h). Pages shared with a neighbouring tensor are dropped too: the mapping is
 * read-only, so such a page only comes back on its next read. */
#define _DEFAULT_SOURCE /* madvise beside the build's _XOPEN_SOURCE */
#include "pages.h"

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

void lf_drop_pages(const void *p, size_t len) {
    if (!p || !len) return;
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t ps = pg > 0 ? (uintptr_t)pg : 4096, a = (uintptr_t)p;
    uintptr_t lo = a / ps * ps, hi = (a + len + ps - 1) / ps * ps;
    (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
}
