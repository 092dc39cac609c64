/* test_file.c: the input and output helpers of host/base/file.h.
 *
 * Inputs: a regular file opens with its size and (device, inode); a FIFO with no writer is refused at
 * once (an alarm fails the test if it blocks), and so are a directory and a character device made with
 * mknod in the test's own temporary directory (never the machine's /dev); a file over the limit is
 * LF_ERR_FORMAT; every message names the file. Outputs: write + commit gives the bytes with mode 0666
 * less the umask and no temporary file; an empty path, a character device, a FIFO and a directory as
 * destination are refused and left as they were (also when they appear between open and commit); a
 * hard link, a symbolic link or another spelling of an input is refused; an existing file is refused
 * without overwrite (also when created during the write) and replaced with it; commit_new moves on
 * when a name is taken; a write error (RLIMIT_FSIZE) and an abort leave no temporary file; the signal
 * cleanup removes live temporary files, directly and from a real SIGTERM handler in a child that then
 * dies by the signal.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lf_test.h"
#include "lf_test_data.h"
#include "host/base/file.h"
#include "host/base/util.h"

static char g_dir[256];

static const char *tpath(const char *name) { return lf_test_path(g_dir, name); }

static int write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t k = fwrite(p, 1, n, f);
    return (fclose(f) == 0 && k == n) ? 0 : -1;
}

/* 1 when path holds exactly the string s. */
static int holds(const char *path, const char *s) {
    char *b = NULL;
    size_t n = 0;
    if (lf_read_file(path, NULL, 1 << 20, &b, &n) != LF_OK) return 0;
    int ok = n == strlen(s) && memcmp(b, s, n) == 0;
    free(b);
    return ok;
}

static int count_tmp_files(void) { return lf_test_tmp_files(g_dir, 0); }

/* A character device node (the null device's numbers, so that nothing could harm it) in g_dir; 0 when
 * this process may not create one. */
static int make_chardev(const char *path) {
    if (mknod(path, S_IFCHR | 0600, makedev(1, 3)) == 0) return 1;
    printf("note: mknod %s: %s; character-device cases skipped\n", path, strerror(errno));
    return 0;
}

static int is_chardev(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISCHR(sb.st_mode) && sb.st_rdev == makedev(1, 3);
}

static void test_inputs(void) {
    const char *f = tpath("in.bin");
    LF_CHECK(write_bytes(f, "hello", 5) == 0, "write %s", f);
    int fd = 7;
    uint64_t size = 0;
    lf_file_id id = {0, 0};
    LF_CHECK(lf_file_open_in(f, NULL, 5, &fd, &size, &id) == LF_OK && fd >= 0 && size == 5, "open: %s",
             lf_last_error());
    struct stat sb;
    LF_CHECK(stat(f, &sb) == 0 && id.dev == (uint64_t)sb.st_dev && id.ino == (uint64_t)sb.st_ino, "id");
    int fl = fd >= 0 ? fcntl(fd, F_GETFL) : 0;
    LF_CHECK(fd >= 0 && !(fl & O_NONBLOCK) && (fcntl(fd, F_GETFD) & FD_CLOEXEC), "blocking, close-on-exec fd");
    char b[8] = {0};
    LF_CHECK(fd >= 0 && read(fd, b, sizeof b) == 5 && !memcmp(b, "hello", 5), "read back");
    if (fd >= 0) close(fd);

    LF_CHECK(lf_file_open_in(f, "the greeting", 4, &fd, NULL, NULL) == LF_ERR_FORMAT && fd == -1, "over the limit");
    LF_CHECK(strstr(lf_last_error(), f) && strstr(lf_last_error(), "the greeting") && strstr(lf_last_error(), "5 bytes"),
             "limit message: %s", lf_last_error());

    const char *fifo = tpath("in.fifo");
    LF_CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
    alarm(20); /* a blocking open would hang: SIGALRM ends the test as a failure */
    LF_CHECK(lf_file_open_in(fifo, "the model", UINT64_MAX, &fd, NULL, NULL) == LF_ERR_IO && fd == -1, "FIFO refused");
    alarm(0);
    LF_CHECK(strstr(lf_last_error(), fifo) && strstr(lf_last_error(), "the model") &&
                 strstr(lf_last_error(), "not a regular file (it is a FIFO)"),
             "FIFO message: %s", lf_last_error());
    LF_CHECK(lf_file_open_in(g_dir, NULL, UINT64_MAX, &fd, NULL, NULL) == LF_ERR_IO &&
                 strstr(lf_last_error(), "it is a directory"),
             "directory: %s", lf_last_error());
    const char *dev = tpath("in.dev");
    if (make_chardev(dev)) {
        LF_CHECK(lf_file_open_in(dev, NULL, UINT64_MAX, &fd, NULL, NULL) == LF_ERR_IO &&
                     strstr(lf_last_error(), "it is a character device") && strstr(lf_last_error(), dev),
                 "character device: %s", lf_last_error());
        unlink(dev);
    }
    LF_CHECK(lf_file_open_in(tpath("missing"), NULL, 1, &fd, NULL, NULL) == LF_ERR_IO &&
                 strstr(lf_last_error(), "cannot open"),
             "missing: %s", lf_last_error());
    /* lf_read_file is built on the same helper */
    char *buf = NULL;
    alarm(20);
    LF_CHECK(lf_read_file(fifo, NULL, 10, &buf, NULL) == LF_ERR_IO && !buf, "lf_read_file on a FIFO");
    alarm(0);

    LF_CHECK(lf_file_exists(f) && lf_file_exists(fifo) && !lf_file_exists(tpath("missing")) && !lf_file_exists(NULL),
             "lf_file_exists");
    LF_CHECK(symlink("missing-target", tpath("dangling")) == 0 && lf_file_exists(tpath("dangling")),
             "a dangling link exists");
    unlink(tpath("dangling"));
    unlink(fifo);
    unlink(f);
}

/* Write s through the helper to path; returns the commit's status. */
static lf_status put(const char *path, const char *s, const lf_file_out_opts *o) {
    lf_file_out *out = NULL;
    lf_status st = lf_file_out_open(path, o, &out);
    if (st != LF_OK) return st;
    st = lf_file_out_write(out, s, strlen(s));
    if (st != LF_OK) {
        lf_file_out_abort(out);
        return st;
    }
    return lf_file_out_commit(out);
}

static void test_output_basics(void) {
    const char *p = tpath("out.txt");
    lf_file_out_opts keep = {0, NULL, 0}, force = {1, NULL, 0};
    LF_CHECK(put(p, "first", &keep) == LF_OK && holds(p, "first"), "new file: %s", lf_last_error());
    mode_t um = umask(0);
    umask(um);
    struct stat sb;
    LF_CHECK(stat(p, &sb) == 0 && (sb.st_mode & 0777) == (0666 & ~um), "mode %o", (unsigned)(sb.st_mode & 0777));
    LF_CHECK(count_tmp_files() == 0, "temporary file left after commit");

    LF_CHECK(lf_file_out_check(p, &keep) == LF_ERR_ARG && strstr(lf_last_error(), "already exists"), "check: %s",
             lf_last_error());
    LF_CHECK(lf_file_out_check(p, NULL) == LF_ERR_ARG, "NULL options do not overwrite");
    LF_CHECK(put(p, "second", &keep) == LF_ERR_ARG && holds(p, "first"), "existing kept: %s", lf_last_error());
    LF_CHECK(put(p, "second", &force) == LF_OK && holds(p, "second"), "replaced with overwrite: %s", lf_last_error());
    LF_CHECK(lf_file_out_check("", &force) == LF_ERR_ARG && strstr(lf_last_error(), "empty"), "empty path");
    LF_CHECK(put(tpath("no/such/dir/x"), "x", &force) == LF_ERR_IO && strstr(lf_last_error(), "cannot create"),
             "missing directory: %s", lf_last_error());

    /* Created by someone else while we write: the link refuses it, the newcomer is kept. */
    const char *race = tpath("race.txt");
    lf_file_out *out = NULL;
    LF_CHECK(lf_file_out_open(race, &keep, &out) == LF_OK, "open: %s", lf_last_error());
    if (out) {
        LF_CHECK(lf_file_out_write(out, "mine", 4) == LF_OK, "write");
        LF_CHECK(write_bytes(race, "theirs", 6) == 0, "write race");
        LF_CHECK(lf_file_out_commit(out) == LF_ERR_ARG && holds(race, "theirs"), "late existing: %s", lf_last_error());
    }
    LF_CHECK(count_tmp_files() == 0, "temporary file left after the race");

    /* commit_new: a taken name keeps the output open for the next one */
    LF_CHECK(lf_file_out_open(tpath("a.txt"), &keep, &out) == LF_OK, "open a: %s", lf_last_error());
    if (out) {
        lf_file_out_write(out, "new", 3);
        int taken = 0;
        LF_CHECK(lf_file_out_commit_new(out, race, &taken) == LF_OK && taken == 1 && holds(race, "theirs"),
                 "taken name");
        LF_CHECK(lf_file_out_commit_new(out, tpath("b.txt"), &taken) == LF_OK && taken == 0 &&
                     holds(tpath("b.txt"), "new") && !lf_file_exists(tpath("a.txt")),
                 "next name: %s", lf_last_error());
    }
    LF_CHECK(count_tmp_files() == 0, "temporary file left after commit_new");

    /* abort removes the temporary file */
    LF_CHECK(lf_file_out_open(tpath("c.txt"), &keep, &out) == LF_OK, "open c");
    LF_CHECK(out && lf_file_exists(lf_file_out_temp(out)) && lf_file_out_fd(out) >= 0, "temporary file exists");
    lf_file_out_abort(out);
    lf_file_out_abort(NULL);
    LF_CHECK(count_tmp_files() == 0 && !lf_file_exists(tpath("c.txt")), "abort left something");
    unlink(p);
    unlink(race);
    unlink(tpath("b.txt"));
}

static void test_output_special(void) {
    lf_file_out_opts force = {1, NULL, 0};
    const char *dev = tpath("out.dev");
    if (make_chardev(dev)) {
        LF_CHECK(put(dev, "x", &force) == LF_ERR_ARG && strstr(lf_last_error(), "is a character device") &&
                     strstr(lf_last_error(), dev),
                 "character device: %s", lf_last_error());
        LF_CHECK(is_chardev(dev), "the character device was replaced");
        /* through a symbolic link */
        LF_CHECK(symlink(dev, tpath("to-dev")) == 0, "symlink");
        LF_CHECK(put(tpath("to-dev"), "x", &force) == LF_ERR_ARG && is_chardev(dev), "link to a device: %s",
                 lf_last_error());
        unlink(tpath("to-dev"));
        /* a device appearing between open and commit */
        const char *late = tpath("late.dev");
        lf_file_out *out = NULL;
        LF_CHECK(lf_file_out_open(late, &force, &out) == LF_OK, "open: %s", lf_last_error());
        if (out) {
            lf_file_out_write(out, "x", 1);
            LF_CHECK(make_chardev(late), "mknod late");
            LF_CHECK(lf_file_out_commit(out) == LF_ERR_ARG && is_chardev(late), "late device: %s", lf_last_error());
        }
        unlink(late);
        unlink(dev);
    }
    const char *fifo = tpath("out.fifo");
    LF_CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
    alarm(20);
    LF_CHECK(put(fifo, "x", &force) == LF_ERR_ARG && strstr(lf_last_error(), "is a FIFO"), "FIFO: %s",
             lf_last_error());
    alarm(0);
    struct stat sb;
    LF_CHECK(stat(fifo, &sb) == 0 && S_ISFIFO(sb.st_mode), "the FIFO was replaced");
    unlink(fifo);
    mkdir(tpath("d"), 0755);
    LF_CHECK(put(tpath("d"), "x", &force) == LF_ERR_ARG && strstr(lf_last_error(), "is a directory"), "directory: %s",
             lf_last_error());
    rmdir(tpath("d"));
    LF_CHECK(count_tmp_files() == 0, "temporary file left after refusals");
}

static void test_output_inputs(void) {
    const char *in = tpath("model.bin");
    LF_CHECK(write_bytes(in, "weights", 7) == 0, "write input");
    const char *inputs[] = {tpath("missing-input"), in};
    lf_file_out_opts o = {1, inputs, 2};
    LF_CHECK(put(in, "x", &o) == LF_ERR_ARG && strstr(lf_last_error(), "same file as the input"), "itself: %s",
             lf_last_error());
    LF_CHECK(link(in, tpath("hard.bin")) == 0, "link");
    LF_CHECK(put(tpath("hard.bin"), "x", &o) == LF_ERR_ARG && strstr(lf_last_error(), "same file as the input"),
             "hard link: %s", lf_last_error());
    LF_CHECK(symlink("model.bin", tpath("sym.bin")) == 0, "symlink");
    LF_CHECK(put(tpath("sym.bin"), "x", &o) == LF_ERR_ARG, "symbolic link: %s", lf_last_error());
    mkdir(tpath("sub"), 0755);
    LF_CHECK(put(tpath("sub/../model.bin"), "x", &o) == LF_ERR_ARG, "another spelling: %s", lf_last_error());
    /* the input named through the link, the output by its own name */
    const char *via_link[] = {tpath("sym.bin")};
    lf_file_out_opts o2 = {1, via_link, 1};
    LF_CHECK(put(in, "x", &o2) == LF_ERR_ARG, "input through a link: %s", lf_last_error());
    LF_CHECK(holds(in, "weights"), "the input changed");
    /* a hard link to the input appearing between open and commit */
    const char *late = tpath("late.bin");
    lf_file_out *out = NULL;
    LF_CHECK(lf_file_out_open(late, &o, &out) == LF_OK, "open: %s", lf_last_error());
    if (out) {
        lf_file_out_write(out, "x", 1);
        LF_CHECK(link(in, late) == 0, "late link");
        LF_CHECK(lf_file_out_commit(out) == LF_ERR_ARG && holds(in, "weights"), "late hard link: %s", lf_last_error());
    }
    /* unrelated files are fine */
    LF_CHECK(put(tpath("other.bin"), "x", &o) == LF_OK, "unrelated: %s", lf_last_error());
    LF_CHECK(count_tmp_files() == 0, "temporary file left");
    unlink(late);
    unlink(tpath("other.bin"));
    unlink(tpath("sym.bin"));
    unlink(tpath("hard.bin"));
    rmdir(tpath("sub"));
    unlink(in);
}

/* A write error injected with RLIMIT_FSIZE (the write fails with EFBIG once the file is 1000 bytes). */
static void test_write_error(void) {
    const char *p = tpath("big.bin");
    LF_CHECK(write_bytes(p, "old", 3) == 0, "write");
    struct rlimit old;
    if (getrlimit(RLIMIT_FSIZE, &old) != 0) return;
    struct rlimit lim = old;
    lim.rlim_cur = 1000;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    char *big = calloc(1, 1 << 16);
    lf_file_out_opts force = {1, NULL, 0};
    lf_file_out *out = NULL;
    LF_CHECK(big && lf_file_out_open(p, &force, &out) == LF_OK, "open: %s", lf_last_error());
    if (out && setrlimit(RLIMIT_FSIZE, &lim) == 0) {
        lf_status st = lf_file_out_write(out, big, 1 << 16);
        setrlimit(RLIMIT_FSIZE, &old);
        LF_CHECK(st == LF_ERR_IO && strstr(lf_last_error(), "write of temporary file") && strstr(lf_last_error(), p),
                 "write error: %s", lf_last_error());
        lf_file_out_abort(out);
    } else {
        printf("note: setrlimit failed, write-error case skipped\n");
        lf_file_out_abort(out);
    }
    signal(SIGXFSZ, prev);
    LF_CHECK(holds(p, "old") && count_tmp_files() == 0, "destination changed or temporary file left");
    free(big);
    unlink(p);
}

static void on_term(int sig) {
    lf_file_cleanup_on_signal();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void test_signal_cleanup(void) {
    lf_file_out_opts force = {1, NULL, 0};
    /* A real signal first (the in-process cleanup below ends this process's outputs): a child with a
     * live output and a SIGTERM handler that cleans up and re-raises. */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGTERM, on_term);
        lf_file_out *c = NULL;
        if (lf_file_out_open(tpath("child.bin"), &force, &c) != LF_OK) _exit(3);
        lf_file_out_write(c, "partial", 7);
        raise(SIGTERM);
        _exit(4); /* not reached */
    }
    int status = 0;
    LF_CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "fork/wait");
    LF_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "child status %#x", (unsigned)status);
    LF_CHECK(count_tmp_files() == 0 && !lf_file_exists(tpath("child.bin")), "the child left files");

    lf_file_out *a = NULL, *b = NULL;
    LF_CHECK(lf_file_out_open(tpath("s1"), &force, &a) == LF_OK && lf_file_out_open(tpath("s2"), &force, &b) == LF_OK,
             "open: %s", lf_last_error());
    LF_CHECK(count_tmp_files() == 2, "two temporary files");
    lf_file_cleanup_on_signal();
    LF_CHECK(count_tmp_files() == 0, "cleanup left temporary files");
    /* the outputs stay valid objects: commit fails cleanly, abort frees */
    if (a) LF_CHECK(lf_file_out_commit(a) == LF_ERR_IO && !lf_file_exists(tpath("s1")), "commit after cleanup: %s",
                    lf_last_error());
    lf_file_out_abort(b);
    /* the process is on its way out: no new temporary file appears */
    LF_CHECK(put(tpath("s3"), "ok", &force) == LF_ERR_IO && strstr(lf_last_error(), "Interrupted") &&
                 count_tmp_files() == 0 && !lf_file_exists(tpath("s3")),
             "an output opened after the cleanup: %s", lf_last_error());
}

int main(void) {
    if (lf_test_tmpdir(g_dir, sizeof g_dir, "test_file") != 0) {
        fprintf(stderr, "mkdtemp %s: %s\n", g_dir, strerror(errno));
        return 1;
    }
    test_inputs();
    test_output_basics();
    test_output_special();
    test_output_inputs();
    test_write_error();
    test_signal_cleanup();
    LF_CHECK(rmdir(g_dir) == 0, "%s not empty at the end: %s", g_dir, strerror(errno));
    return lf_test_finish();
}
