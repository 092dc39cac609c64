/* status.c: lf_status names and the thread-local error message buffer (see lf_status.h). */
#include "lorafuse/lf_status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char lf_errbuf[2048];

const char *lf_status_str(lf_status st) {
    switch (st) {
    case LF_OK: return "ok";
    case LF_ERR_IO: return "I/O error";
    case LF_ERR_FORMAT: return "malformed input";
    case LF_ERR_DTYPE: return "unsupported dtype";
    case LF_ERR_SHAPE: return "shape mismatch";
    case LF_ERR_NOMEM: return "out of memory";
    case LF_ERR_ARG: return "invalid argument";
    case LF_ERR_NONFINITE: return "non-finite value";
    case LF_ERR_MODEL: return "adapter does not fit the model";
    case LF_ERR_UNSUPPORTED: return "unsupported";
    case LF_ERR_DEVICE: return "device error";
    default: return "unknown status";
    }
}

lf_status lf_err(lf_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lf_errbuf, sizeof lf_errbuf, fmt, ap);
    va_end(ap);
    return st;
}

lf_status lf_err_wrap(lf_status st, const char *fmt, ...) {
    char prefix[512], old[sizeof lf_errbuf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, lf_errbuf, sizeof old);
    size_t np = strlen(prefix), room = sizeof lf_errbuf - 1;
    if (np > room) np = room;
    memcpy(lf_errbuf, prefix, np);
    size_t no = strnlen(old, room - np);
    memcpy(lf_errbuf + np, old, no);
    lf_errbuf[np + no] = '\0';
    return st;
}

const char *lf_last_error(void) { return lf_errbuf; }

void lf_err_clear(void) { lf_errbuf[0] = '\0'; }
