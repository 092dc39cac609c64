/* file.c: opening inputs and writing outputs (file.h): regular-file inputs opened without blocking,
 * outputs through a temporary file in the destination's directory, and the registry of live temporary
 * files that a signal handler empties.
 *
 * The registry is a fixed table of lock-free atomic pointers: registering takes a free slot with a
 * compare-and-swap; the signal-time cleanup takes each pointer with an exchange and unlinks it; a
 * normal release takes its own pointer back with a compare-and-swap, and when the cleanup took it
 * first waits until the cleanup has finished with it before the memory is freed. Temporary files are
 * created and published with every signal blocked, so that no signal lands between creating a file
 * and registering it, or between publishing it and forgetting it.
 */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>

#if ATOMIC_POINTER_LOCK_FREE != 2 || ATOMIC_INT_LOCK_FREE != 2
#error "the temporary-file registry needs lock-free atomics to be async-signal-safe"
#endif

/* ---- inputs ------------------------------------------------------------------------------------- */

/* What a non-regular file is, for messages. */
static const char *lf_file_kind(mode_t m) {
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISDIR(m)) return "a directory";
    if (S_ISSOCK(m)) return "a socket";
    if (S_ISLNK(m)) return "a symbolic link";
    return "a special file";
}

lf_status lf_file_open_in(const char *path, const char *what, uint64_t max, int *fd, uint64_t *size,
                          lf_file_id *id) {
    *fd = -1;
    if (!path) return lf_err(LF_ERR_ARG, "input path is NULL");
    const char *sep = what ? " (" : "", *w = what ? what : "", *end = what ? ")" : "";
    /* The type is checked before opening too: opening some devices has effects of its own. */
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return lf_err(LF_ERR_IO, "%s%s%s%s: not a regular file (it is %s)", path, sep, w, end,
                      lf_file_kind(sb.st_mode));
    /* O_NONBLOCK: the path may have become a FIFO since; opening it must not wait for a writer. */
    int f = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (f < 0) return lf_err(LF_ERR_IO, "%s%s%s%s: cannot open: %s", path, sep, w, end, strerror(errno));
    if (fstat(f, &sb) != 0) {
        int e = errno;
        close(f);
        return lf_err(LF_ERR_IO, "%s%s%s%s: cannot stat: %s", path, sep, w, end, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(f);
        return lf_err(LF_ERR_IO, "%s%s%s%s: not a regular file (it is %s)", path, sep, w, end,
                      lf_file_kind(sb.st_mode));
    }
    if (sb.st_size < 0 || (uint64_t)sb.st_size > max) {
        close(f);
        return lf_err(LF_ERR_FORMAT, "%s%s%s%s: %lld bytes, more than the %llu this file may have", path, sep, w,
                      end, (long long)sb.st_size, (unsigned long long)max);
    }
    int fl = fcntl(f, F_GETFL);
    if (fl < 0 || fcntl(f, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(f);
        return lf_err(LF_ERR_IO, "%s%s%s%s: fcntl: %s", path, sep, w, end, strerror(e));
    }
    *fd = f;
    if (size) *size = (uint64_t)sb.st_size;
    if (id) {
        id->dev = (uint64_t)sb.st_dev;
        id->ino = (uint64_t)sb.st_ino;
    }
    return LF_OK;
}

int lf_file_exists(const char *path) {
    struct stat sb;
    return path && lstat(path, &sb) == 0;
}

/* ---- the registry of live temporary files ------------------------------------------------------- */

static _Atomic(char *) lf_live[LF_FILE_MAX_LIVE];
static atomic_int lf_cleaning;
/* A temporary file is created and registered with signals blocked, but only on the creating thread:
 * a process-directed signal may run the handler on any other thread (a pool worker, a BLAS thread)
 * between the creation and the registration. So the two sides hand over: the creator counts itself in
 * lf_creating and gives up when lf_signalled is set; the cleanup sets lf_signalled, then waits until no
 * creation is in flight, and only then unlinks what is registered. */
static atomic_int lf_creating, lf_signalled;

void lf_file_cleanup_on_signal(void) {
    int saved = errno; /* a handler must leave errno as it found it */
    atomic_store(&lf_signalled, 1);
    for (int i = 0; i < 20000 && atomic_load(&lf_creating); i++) { /* at most ~1 s; a creation takes microseconds */
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
    }
    atomic_fetch_add(&lf_cleaning, 1);
    for (size_t i = 0; i < LF_FILE_MAX_LIVE; i++) {
        char *p = atomic_exchange(&lf_live[i], NULL);
        if (p) unlink(p);
    }
    atomic_fetch_sub(&lf_cleaning, 1);
    errno = saved;
}

static long lf_live_add(char *p) {
    for (size_t i = 0; i < LF_FILE_MAX_LIVE; i++) {
        char *expected = NULL;
        if (atomic_compare_exchange_strong(&lf_live[i], &expected, p)) return (long)i;
    }
    return -1;
}

/* Forget p (registered in `slot`); afterwards its memory may be freed. */
static void lf_live_remove(long slot, char *p) {
    char *expected = p;
    if (slot >= 0 && atomic_compare_exchange_strong(&lf_live[slot], &expected, NULL)) return;
    /* The cleanup took it: it may still be unlinking this very string. */
    while (atomic_load(&lf_cleaning)) sched_yield();
}

/* Block every signal (into *old) around the steps that create or publish a temporary file. */
static void lf_block_signals(sigset_t *old) {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, old);
}

static void lf_restore_signals(const sigset_t *old) { pthread_sigmask(SIG_SETMASK, old, NULL); }

/* ---- outputs ------------------------------------------------------------------------------------ */

struct lf_file_out {
    int fd;           /* -1 once closed */
    long slot;        /* registry slot of tmp */
    int overwrite;
    char *path, *tmp; /* destination, temporary file */
    int renamed;      /* the temporary name is gone (renamed into place) */
    lf_file_id *ids;  /* the inputs' ids and names, for the check before publishing */
    const char **names;
    char *name_pool;  /* the names' copies, one block */
    size_t n_ids;
};

/* The ids of the inputs that exist (a missing one cannot be the destination), in *ids, with their
 * names (borrowed from o) in *names; both malloc'd, NULL when there are no inputs. */
static lf_status lf_input_ids(const lf_file_out_opts *o, lf_file_id **ids, const char ***names, size_t *n) {
    *ids = NULL;
    *names = NULL;
    *n = 0;
    if (!o || !o->n_inputs) return LF_OK;
    *ids = calloc(o->n_inputs, sizeof **ids);
    *names = calloc(o->n_inputs, sizeof **names);
    if (!*ids || !*names) {
        free(*ids);
        free((void *)*names);
        *ids = NULL;
        *names = NULL;
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < o->n_inputs; i++) {
        struct stat sb;
        if (!o->inputs[i] || stat(o->inputs[i], &sb) != 0) continue;
        (*ids)[*n].dev = (uint64_t)sb.st_dev;
        (*ids)[*n].ino = (uint64_t)sb.st_ino;
        (*names)[(*n)++] = o->inputs[i];
    }
    return LF_OK;
}

/* The destination rules of file.h against what is at `path` now. */
static lf_status lf_check_dest(const char *path, int overwrite, const lf_file_id *ids, const char *const *names,
                               size_t n) {
    if (!path || !*path) return lf_err(LF_ERR_ARG, "the output path is empty");
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        if (errno == ENOENT) return LF_OK;
        return lf_err(LF_ERR_IO, "output '%s': cannot check it: %s", path, strerror(errno));
    }
    struct stat tb; /* what a symbolic link points to; a dangling one is just a name to replace */
    if (stat(path, &tb) == 0) {
        for (size_t i = 0; i < n; i++)
            if ((uint64_t)tb.st_dev == ids[i].dev && (uint64_t)tb.st_ino == ids[i].ino)
                return lf_err(LF_ERR_ARG, "output '%s' is the same file as the input '%s'; write to a new file", path,
                              names[i]);
        if (!S_ISREG(tb.st_mode))
            return lf_err(LF_ERR_ARG, "output '%s' exists and is %s, not a regular file; refusing to replace it", path,
                          lf_file_kind(tb.st_mode));
    }
    if (!overwrite)
        return lf_err(LF_ERR_ARG, "output '%s' already exists; refusing to replace it (--force replaces it)", path);
    return LF_OK;
}

lf_status lf_file_out_check(const char *path, const lf_file_out_opts *opts) {
    lf_file_id *ids;
    const char **names;
    size_t n;
    lf_status st = lf_input_ids(opts, &ids, &names, &n);
    if (st == LF_OK) st = lf_check_dest(path, opts ? opts->overwrite : 0, ids, names, n);
    free(ids);
    free((void *)names);
    return st;
}

/* Create "<tmp>" (which ends in XXXXXX) exclusively, like mkstemp but with mode 0666 less the umask:
 * the kernel applies the umask, so it is never read (umask() would change it for every thread). */
static int lf_tmp_create(char *tmp) {
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    static atomic_uint counter;
    size_t n = strlen(tmp);
    for (int tries = 0; tries < 1000; tries++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ ((uint64_t)getpid() << 12) ^
                     ((uint64_t)atomic_fetch_add(&counter, 1) * 0x9E3779B97F4A7C15ull) ^ (uint64_t)(uintptr_t)tmp;
        x ^= x >> 31; /* splitmix64's finalizer spreads every input bit over the name */
        x *= 0xBF58476D1CE4E5B9ull;
        x ^= x >> 27;
        x *= 0x94D049BB133111EBull;
        x ^= x >> 31;
        for (size_t i = n - 6; i < n; i++, x /= 62) tmp[i] = digits[x % 62];
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    errno = EEXIST;
    return -1;
}

static void lf_out_free(lf_file_out *f) {
    free(f->path);
    free(f->tmp);
    free(f->ids);
    free((void *)f->names);
    free(f->name_pool);
    free(f);
}

lf_status lf_file_out_open(const char *path, const lf_file_out_opts *opts, lf_file_out **out) {
    *out = NULL;
    lf_file_out *f = calloc(1, sizeof *f);
    if (!f) return lf_err(LF_ERR_NOMEM, "out of memory");
    f->fd = -1;
    f->slot = -1;
    f->overwrite = opts ? opts->overwrite : 0;
    lf_status st = lf_input_ids(opts, &f->ids, &f->names, &f->n_ids);
    if (st == LF_OK) st = lf_check_dest(path, f->overwrite, f->ids, f->names, f->n_ids);
    if (st != LF_OK) {
        lf_out_free(f);
        return st;
    }
    /* The input names are copied so that the caller's may go away before the commit. */
    size_t plen = strlen(path), pool_len = 1;
    for (size_t i = 0; i < f->n_ids; i++) pool_len += strlen(f->names[i]) + 1;
    f->path = malloc(plen + 1);
    f->tmp = malloc(plen + sizeof ".tmp.XXXXXX");
    f->name_pool = malloc(pool_len);
    if (!f->path || !f->tmp || !f->name_pool) {
        lf_out_free(f);
        return lf_err(LF_ERR_NOMEM, "output '%s': out of memory", path);
    }
    char *q = f->name_pool;
    for (size_t i = 0; i < f->n_ids; i++) {
        size_t k = strlen(f->names[i]) + 1;
        memcpy(q, f->names[i], k);
        f->names[i] = q;
        q += k;
    }
    memcpy(f->path, path, plen + 1);
    memcpy(f->tmp, path, plen);
    memcpy(f->tmp + plen, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");

    sigset_t old;
    lf_block_signals(&old);
    atomic_fetch_add(&lf_creating, 1);
    int e = EINTR;
    if (!atomic_load(&lf_signalled)) { /* else the process is being ended: create nothing */
        f->fd = lf_tmp_create(f->tmp);
        e = errno;
        if (f->fd >= 0 && (f->slot = lf_live_add(f->tmp)) < 0) {
            close(f->fd);
            unlink(f->tmp);
            f->fd = -1;
            e = 0;
        }
    }
    atomic_fetch_sub(&lf_creating, 1);
    lf_restore_signals(&old);
    if (f->fd < 0) {
        st = e ? lf_err(LF_ERR_IO, "output '%s': cannot create temporary file %s: %s", path, f->tmp, strerror(e))
               : lf_err(LF_ERR_IO, "output '%s': more than %d outputs are being written at once", path,
                        LF_FILE_MAX_LIVE);
        lf_out_free(f);
        return st;
    }
    *out = f;
    return LF_OK;
}

int lf_file_out_fd(const lf_file_out *f) { return f ? f->fd : -1; }

const char *lf_file_out_temp(const lf_file_out *f) { return f ? f->tmp : NULL; }

lf_status lf_file_out_write(lf_file_out *f, const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t k = write(f->fd, b, chunk);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0)
            return lf_err(LF_ERR_IO, "output '%s': write of temporary file %s failed: %s", f->path, f->tmp,
                          k < 0 ? strerror(errno) : "no progress");
        b += k;
        n -= (size_t)k;
    }
    return LF_OK;
}

/* Release f: its temporary file is removed (unless renamed into place), forgotten, and its memory
 * freed. */
static void lf_out_release(lf_file_out *f) {
    if (f->fd >= 0) close(f->fd);
    sigset_t old;
    lf_block_signals(&old);
    if (!f->renamed) unlink(f->tmp);
    lf_live_remove(f->slot, f->tmp);
    lf_restore_signals(&old);
    lf_out_free(f);
}

void lf_file_out_abort(lf_file_out *f) {
    if (f) lf_out_release(f);
}

/* fsync and close the temporary file (once). */
static lf_status lf_out_finish(lf_file_out *f) {
    if (f->fd < 0) return LF_OK;
    if (fsync(f->fd) != 0)
        return lf_err(LF_ERR_IO, "output '%s': fsync of temporary file %s failed: %s", f->path, f->tmp, strerror(errno));
    int rc = close(f->fd);
    f->fd = -1;
    if (rc != 0) return lf_err(LF_ERR_IO, "output '%s': close of temporary file %s failed: %s", f->path, f->tmp, strerror(errno));
    return LF_OK;
}

/* Make a rename or link into `path` durable (best effort: some file systems refuse fsync on
 * directories). */
static void lf_sync_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = NULL;
    if (!slash) dir = strdup(".");
    else if (slash == path) dir = strdup("/");
    else if ((dir = malloc((size_t)(slash - path) + 1)) != NULL) {
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
    }
    if (!dir) return;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(dir);
}

lf_status lf_file_out_commit_new(lf_file_out *f, const char *path, int *taken) {
    *taken = 0;
    lf_status st = lf_out_finish(f);
    if (st != LF_OK) {
        lf_out_release(f);
        return st;
    }
    sigset_t old;
    lf_block_signals(&old);
    int rc = link(f->tmp, path), e = errno;
    if (rc != 0 && (e == EPERM || e == ENOTSUP || e == EOPNOTSUPP || e == EMLINK || e == ENOSYS)) {
        /* No hard links on this file system: rename after a check (a small window, the best it allows). */
        if (lf_file_exists(path)) {
            rc = -1;
            e = EEXIST;
        } else {
            rc = rename(f->tmp, path);
            e = rc ? errno : 0; /* rename's own reason (EACCES, EXDEV, ...), not a later lstat's */
        }
        f->renamed = rc == 0;
    }
    lf_restore_signals(&old);
    if (rc != 0 && e == EEXIST) {
        *taken = 1;
        return LF_OK;
    }
    if (rc != 0) {
        st = lf_err(LF_ERR_IO, "output '%s': link into place of temporary file %s failed: %s", path, f->tmp, strerror(e));
        lf_out_release(f);
        return st;
    }
    lf_sync_dir(path); /* before the release: path may be f's own */
    lf_out_release(f); /* after a link the temporary name goes */
    return LF_OK;
}

lf_status lf_file_out_commit(lf_file_out *f) {
    if (!f->overwrite) {
        int taken;
        lf_status st = lf_file_out_commit_new(f, f->path, &taken);
        if (st == LF_OK && taken) {
            /* Someone created it while we wrote: the same refusal as at open. */
            st = lf_check_dest(f->path, 0, f->ids, f->names, f->n_ids);
            if (st == LF_OK) st = lf_err(LF_ERR_ARG, "output '%s' already exists; refusing to replace it", f->path);
            lf_out_release(f);
        }
        return st;
    }
    lf_status st = lf_out_finish(f);
    if (st == LF_OK) st = lf_check_dest(f->path, 1, f->ids, f->names, f->n_ids);
    if (st != LF_OK) {
        lf_out_release(f);
        return st;
    }
    sigset_t old;
    lf_block_signals(&old);
    int rc = rename(f->tmp, f->path), e = errno;
    lf_restore_signals(&old);
    if (rc != 0) {
        st = lf_err(LF_ERR_IO, "output '%s': rename into place of temporary file %s failed: %s", f->path, f->tmp, strerror(e));
        lf_out_release(f);
        return st;
    }
    f->renamed = 1;
    lf_sync_dir(f->path);
    lf_out_release(f);
    return LF_OK;
}
