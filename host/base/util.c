/* util.c: the shared helpers of util.h (clock, whole-file reader over file.h's input helper,
 * prefix/suffix, growable arrays). */
#include "util.h"

#include "file.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double lf_clock_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

lf_status lf_read_file(const char *path, const char *what, size_t max, char **out, size_t *len) {
    const char *sep = what ? " (" : "", *w = what ? what : "", *end = what ? ")" : "";
    *out = NULL;
    if (len) *len = 0;
    int fd;
    uint64_t size;
    lf_status st = lf_file_open_in(path, what, (uint64_t)max, &fd, &size, NULL);
    if (st != LF_OK) return st;
    /* The size is re-checked while reading: a file that grows past max is refused, not truncated. */
    size_t cap = (size_t)size + 1, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        return lf_err(LF_ERR_NOMEM, "%s: out of memory (%zu bytes)", path, cap + 1);
    }
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            st = lf_err(LF_ERR_IO, "%s%s%s%s: read failed: %s", path, sep, w, end, strerror(errno));
            free(buf);
            close(fd);
            return st;
        }
        if (r == 0) break;
        n += (size_t)r;
        if (n > max) {
            free(buf);
            close(fd);
            return lf_err(LF_ERR_FORMAT, "%s%s%s%s: more than the %zu bytes this file may have", path, sep, w, end,
                          max);
        }
        if (n == cap) {
            /* Room for max + 1 bytes at most (one more than allowed is how an over-long file shows); the
             * limit is kept where neither the doubling nor the +1 for the NUL can overflow. */
            size_t lim = max < SIZE_MAX / 2 ? max + 1 : SIZE_MAX / 2;
            size_t ncap = cap > lim / 2 ? lim : cap * 2;
            char *p = realloc(buf, ncap + 1);
            if (!p) {
                free(buf);
                close(fd);
                return lf_err(LF_ERR_NOMEM, "%s: out of memory (%zu bytes)", path, ncap + 1);
            }
            buf = p;
            cap = ncap;
        }
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    if (len) *len = n;
    return LF_OK;
}

const char *lf_basename(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int lf_has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

int lf_has_suffix(const char *s, const char *p) {
    size_t a = strlen(s), b = strlen(p);
    return a >= b && memcmp(s + a - b, p, b) == 0;
}

int lf_grow_impl(void *pv, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t ncap = *cap ? *cap : 8;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2) return -1;
        ncap *= 2;
    }
    if (elem && ncap > SIZE_MAX / elem) return -1;
    void *old;
    memcpy(&old, pv, sizeof old); /* pv is a T **: read and write the pointer without aliasing it as void * */
    void *p = realloc(old, ncap * elem);
    if (!p) return -1;
    memcpy(pv, &p, sizeof p);
    *cap = ncap;
    return 0;
}


char *lf_strndup(const char *s, size_t n) {
    char *r = malloc(n + 1);
    if (r) {
        memcpy(r, s, n);
        r[n] = '\0';
    }
    return r;
}
