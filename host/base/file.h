/* file.h: the one way the library opens files (host/base/file.c). Every input and every output in
 * host/ goes through these helpers, so that a stray path can neither hang a call nor destroy a file.
 *
 * Inputs — lf_file_open_in: regular files only. The file is opened with O_NONBLOCK (opening a FIFO
 * with no writer would otherwise wait forever), then fstat'ed: a FIFO, a device, a directory or a
 * socket is refused with a message naming the file and its kind, and so is a file larger than the
 * caller's limit. lf_file_exists probes a path without opening it.
 *
 * Outputs — lf_file_out_*: the destination is written as "<path>.tmp.XXXXXX" in the same directory,
 * fsync'ed, then published under its name (rename, or link when it may not replace anything); the
 * temporary file is removed on every failure. Refused before anything is written, and again just
 * before publishing: an empty path; an existing destination that is not a regular file (a device, a
 * FIFO, a directory: replacing /dev/null with a regular file is the bug this prevents); a destination
 * that is one of the caller's inputs, compared by (device, inode) so that hard links, symbolic links
 * and other spellings of the same file are caught; an existing destination at all unless the caller
 * allows replacing it.
 *
 * Signals — the library installs no handler and never exits. Every live temporary file is kept in a
 * process-wide registry; lf_file_cleanup_on_signal() (async-signal-safe: lock-free atomics and
 * unlink only) removes them all. A program installs SIGINT/SIGTERM/SIGHUP handlers that call it and
 * then re-raise the signal with its default action (host/cli/main.c does).
 */
#ifndef LF_FILE_H
#define LF_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "lorafuse/lf_status.h"

/* The most live temporary outputs of one process at a time (the registry is a fixed table, so the
 * signal path never allocates). */
#define LF_FILE_MAX_LIVE 1024

/* Which file a path names: equal ids are the same file, whatever the spelling. */
typedef struct lf_file_id {
    uint64_t dev, ino;
} lf_file_id;

/* Open `path` for reading. The file must be a regular file of at most `max` bytes. *fd gets a
 * blocking, close-on-exec descriptor; size and id may be NULL. `what` names the file's role in
 * messages ("the LBW presets file"); NULL for none. Errors: LF_ERR_IO (cannot open, not a regular
 * file), LF_ERR_FORMAT (larger than max). On failure *fd is -1. */
lf_status lf_file_open_in(const char *path, const char *what, uint64_t max, int *fd, uint64_t *size,
                          lf_file_id *id);

/* 1 when something (of any kind, a dangling symbolic link included) exists at path, else 0; never
 * opens it. */
int lf_file_exists(const char *path);

typedef struct lf_file_out_opts {
    int overwrite;             /* 1: an existing regular file (not an input) is replaced; 0: refused */
    const char *const *inputs; /* files the output must not be (device + inode); missing ones are skipped */
    size_t n_inputs;
} lf_file_out_opts;

typedef struct lf_file_out lf_file_out;

/* The checks of lf_file_out_open without creating anything: a caller refuses a bad destination
 * before doing the work. opts may be NULL (no inputs, no overwrite). Errors: LF_ERR_ARG. */
lf_status lf_file_out_check(const char *path, const lf_file_out_opts *opts);

/* Check the destination and create its temporary file (mode 0666 less the umask). */
lf_status lf_file_out_open(const char *path, const lf_file_out_opts *opts, lf_file_out **out);

/* The temporary file's descriptor and path, while the output is open. */
int lf_file_out_fd(const lf_file_out *f);
const char *lf_file_out_temp(const lf_file_out *f);

/* Write all n bytes to the temporary file (short writes and EINTR are retried). On failure the
 * output stays open: the caller aborts it. */
lf_status lf_file_out_write(lf_file_out *f, const void *p, size_t n);

/* fsync, close, check the destination again, publish. Frees f whatever the result; on failure the
 * temporary file is removed and the destination left as it was. */
lf_status lf_file_out_commit(lf_file_out *f);

/* Publish under `path` (in the temporary file's directory) only if nothing has that name yet, never
 * replacing anything. When the name is taken: *taken = 1, LF_OK, and f stays open (try another name).
 * Otherwise *taken = 0 and f is freed as by lf_file_out_commit. */
lf_status lf_file_out_commit_new(lf_file_out *f, const char *path, int *taken);

/* Close and remove the temporary file; frees f. NULL is ignored. */
void lf_file_out_abort(lf_file_out *f);

/* Remove every live temporary file. Async-signal-safe; the outputs stay open (their commit then fails,
 * their abort still frees them). It is meant for the way out of the process: from then on no new
 * output can be opened (LF_ERR_IO, EINTR), so that a thread creating one while the signal is handled
 * on another cannot leave a file behind. */
void lf_file_cleanup_on_signal(void);

#endif
