/* lf_status.h: status codes and the thread-local error message of the lorafuse library.
 *
 * Library code never exits: every fallible call returns an lf_status and, on failure, leaves a
 * human-readable message (file, tensor, layer, expected vs found) that lf_last_error() returns.
 * lf_err() sets both in one expression: `return lf_err(LF_ERR_SHAPE, "%s: ...", path);`.
 */
#ifndef LF_STATUS_H
#define LF_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lf_status {
    LF_OK = 0,
    LF_ERR_IO,          /* open/read/write/rename failed */
    LF_ERR_FORMAT,      /* malformed file or header */
    LF_ERR_DTYPE,       /* unknown or unsupported dtype */
    LF_ERR_SHAPE,       /* shape does not match what was expected */
    LF_ERR_NOMEM,       /* allocation failed */
    LF_ERR_ARG,         /* bad argument (caller error, bad tag, bad CLI value) */
    LF_ERR_NONFINITE,   /* NaN or Inf in an input factor or a result */
    LF_ERR_MODEL,       /* adapter does not fit the model (family, unmatched modules) */
    LF_ERR_UNSUPPORTED, /* valid input that this build cannot handle */
    LF_ERR_DEVICE,      /* CUDA / cuBLAS / cuDNN failure */
    LF_ERR_COUNT
} lf_status;

/* Short constant name of a status ("shape mismatch", ...). */
const char *lf_status_str(lf_status st);

/* Set the thread-local error message (printf format) and return st unchanged. */
lf_status lf_err(lf_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Prefix the current message with more context ("merge: " + message). Returns st. */
lf_status lf_err_wrap(lf_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The message of the last failure on this thread ("" if none). */
const char *lf_last_error(void);
void lf_err_clear(void);

#ifdef __cplusplus
}
#endif
#endif
