/* test_robust_files.c: the `lorafuse` binary ($LF_BIN, set by CTest; run from the repository root)
 * against hostile files in and out, each case asserting the exit status, the first line of stderr, that
 * no stray file (no "*.tmp.*") is left and that the inputs and the destination are as they must be:
 *
 *   inputs   a FIFO as `inspect` FILE, as `inspect --model`, as `merge --model`, as `merge --lora`,
 *            as `plan --lbw-presets` (refused at once: each run has a deadline, a hang fails it)
 *   outputs  a character device (mknod in the test's own temporary directory), a FIFO, a directory, a
 *            hard link and a symbolic link to the model, the adapter itself, an existing file without
 *            --force (kept) and with --force (replaced), `--output ''` (usage error, exit 2)
 *   signals  SIGINT / SIGTERM / SIGHUP sent at random points (fixed seed, 20 runs) during a merge of
 *            tests/data/tiny/tiny-sd15.safetensors, half onto a new path, half with --force onto an existing
 *            output: the process ends by that signal (or exits 0 when it finished first); the
 *            destination is absent or complete (new path), old or complete (--force), never partial;
 *            no temporary file is left.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lf_test.h"
#include "lf_test_data.h"
#include "host/base/util.h"

#define MODEL "tests/data/tiny/tiny-sd15.safetensors"
#define LORA "tests/data/tiny/sd15_kohya.lora.safetensors"
#define SIGNAL_RUNS 20

static const char *g_bin;
static char g_dir[256];

static const char *tpath(const char *name) { return lf_test_path(g_dir, name); }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_s(double s) {
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

typedef struct {
    int status;        /* waitpid status; -1 when the run timed out (then killed) */
    double seconds;
    char first[512];   /* first line of stderr ("" when empty) */
} run_result;

/* Start `lorafuse ARGV...` with stdout and stderr into files of g_dir; returns the pid. */
static pid_t start(const char *const *args) {
    char *argv[32];
    int n = 0;
    argv[n++] = (char *)(uintptr_t)g_bin;
    for (; args[n - 1] && n < 31; n++) argv[n] = (char *)(uintptr_t)args[n - 1];
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int out = open(tpath("stdout.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(tpath("stderr.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (out < 0 || err < 0) _exit(126);
        dup2(out, 1);
        dup2(err, 2);
        close(out);
        close(err);
        execv(g_bin, argv);
        _exit(127);
    }
    return pid;
}

/* Wait for pid up to `deadline` seconds (then SIGKILL: a hang is a failure), read stderr's first line. */
static run_result finish(pid_t pid, double t0, double deadline) {
    run_result r;
    memset(&r, 0, sizeof r);
    r.status = -1;
    for (;;) {
        int st;
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) {
            r.status = st;
            break;
        }
        if (w < 0) break;
        if (now_s() - t0 > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            break;
        }
        sleep_s(0.001);
    }
    r.seconds = now_s() - t0;
    char *err = NULL;
    if (lf_read_file(tpath("stderr.txt"), "stderr", 1 << 20, &err, NULL) == LF_OK) {
        size_t k = strcspn(err, "\n");
        if (k >= sizeof r.first) k = sizeof r.first - 1;
        memcpy(r.first, err, k);
        r.first[k] = '\0';
        free(err);
    }
    return r;
}

static run_result run(const char *const *args) {
    double t0 = now_s();
    return finish(start(args), t0, 120.0);
}

/* FNV-1a of a file (0 when unreadable). */
static uint64_t file_hash(const char *p) {
    char *b = NULL;
    size_t n = 0;
    if (lf_read_file(p, NULL, (size_t)1 << 30, &b, &n) != LF_OK) return 0;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)b[i]) * 1099511628211ull;
    free(b);
    return h;
}

static int exists(const char *p) {
    struct stat sb;
    return lstat(p, &sb) == 0;
}

/* Temporary files left in g_dir; removed, so that each case is judged on its own. */
static int count_tmp_files(void) { return lf_test_tmp_files(g_dir, 1); }

static int exit_code(const run_result *r) { return r->status >= 0 && WIFEXITED(r->status) ? WEXITSTATUS(r->status) : -1; }

/* One refused run: exit `code`, first stderr line starting with `prefix` and containing `needle`, no
 * temporary file, the model and the adapter unchanged. */
static void expect(const char *what, const char *const *args, int code, const char *prefix, const char *needle) {
    uint64_t hm = file_hash(MODEL), hl = file_hash(LORA);
    run_result r = run(args);
    LF_CHECK(r.status != -1, "%s: no answer within the deadline (hung?)", what);
    LF_CHECK(exit_code(&r) == code, "%s: status %#x, expected exit %d (%s)", what, (unsigned)r.status, code, r.first);
    LF_CHECK(lf_has_prefix(r.first, prefix) && strstr(r.first, needle), "%s: first line of stderr: '%s'", what,
             r.first);
    LF_CHECK(count_tmp_files() == 0, "%s: a temporary file was left", what);
    LF_CHECK(file_hash(MODEL) == hm && file_hash(LORA) == hl, "%s: an input changed", what);
    printf("%-32s exit %d: %s\n", what, exit_code(&r), r.first);
}

static void test_fifo_inputs(void) {
    const char *fifo = tpath("in.fifo");
    LF_CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
    const char *fifo_msg = "not a regular file (it is a FIFO)";
    const char *a1[] = {"inspect", fifo, NULL};
    expect("inspect FIFO", a1, 1, "lorafuse inspect: ", fifo_msg);
    const char *a2[] = {"inspect", LORA, "--model", fifo, NULL};
    expect("inspect --model FIFO", a2, 1, "lorafuse inspect: ", fifo_msg);
    const char *a3[] = {"merge", "--model", fifo, "--lora", LORA, "--output", tpath("never.safetensors"), NULL};
    expect("merge --model FIFO", a3, 1, "lorafuse merge: ", fifo_msg);
    const char *a4[] = {"merge", "--model", MODEL, "--lora", fifo, "--output", tpath("never.safetensors"), NULL};
    expect("merge --lora FIFO", a4, 1, "lorafuse merge: ", fifo_msg);
    const char *a5[] = {"plan", "--model", MODEL, "--prompt", "x", "--steps", "2", "--lbw-presets", fifo, NULL};
    expect("plan --lbw-presets FIFO", a5, 1, "lorafuse plan: ", fifo_msg);
    LF_CHECK(!exists(tpath("never.safetensors")), "an output was written for a FIFO input");
    unlink(fifo);
}

static void test_outputs(void) {
    const char *dev = tpath("out.dev");
    if (mknod(dev, S_IFCHR | 0600, makedev(1, 3)) == 0) {
        const char *a[] = {"merge", "--model", MODEL, "--lora", LORA, "--output", dev, "--force", NULL};
        expect("character device as --output", a, 1, "lorafuse merge: output ", "is a character device");
        struct stat sb;
        LF_CHECK(stat(dev, &sb) == 0 && S_ISCHR(sb.st_mode) && sb.st_rdev == makedev(1, 3),
                 "the character device was replaced");
        unlink(dev);
    } else {
        printf("note: mknod: %s; character-device case skipped\n", strerror(errno));
    }
    const char *fifo = tpath("out.fifo");
    LF_CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
    const char *af[] = {"merge", "--model", MODEL, "--lora", LORA, "--output", fifo, "--force", NULL};
    expect("FIFO as --output", af, 1, "lorafuse merge: output ", "is a FIFO");
    unlink(fifo);
    const char *ad[] = {"merge", "--model", MODEL, "--lora", LORA, "--output", g_dir, "--force", NULL};
    expect("directory as --output", ad, 1, "lorafuse merge: output ", "is a directory");

    /* links to the model: a private copy, so that the links live in the temporary directory */
    char model[600], hard[600], sym[600];
    snprintf(model, sizeof model, "%s", tpath("model.safetensors"));
    snprintf(hard, sizeof hard, "%s", tpath("hard.safetensors"));
    snprintf(sym, sizeof sym, "%s", tpath("sym.safetensors"));
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "cp %s '%s'", MODEL, model);
    LF_CHECK(system(cmd) == 0, "%s", cmd);
    uint64_t hm = file_hash(model);
    LF_CHECK(link(model, hard) == 0 && symlink(model, sym) == 0, "links");
    const char *ah[] = {"merge", "--model", model, "--lora", LORA, "--output", hard, "--force", NULL};
    expect("hard link to the model", ah, 1, "lorafuse merge: output ", "is the same file as the input");
    const char *as[] = {"merge", "--model", model, "--lora", LORA, "--output", sym, "--force", NULL};
    expect("symbolic link to the model", as, 1, "lorafuse merge: output ", "is the same file as the input");
    const char *al[] = {"merge", "--model", MODEL, "--lora", LORA, "--output", LORA, "--force", NULL};
    expect("the adapter as --output", al, 1, "lorafuse merge: output ", "is the same file as the input");
    LF_CHECK(file_hash(model) == hm, "the model copy changed");

    /* an existing output: kept without --force, replaced with it */
    const char *ex = tpath("existing.safetensors");
    FILE *f = fopen(ex, "wb");
    if (f) {
        fputs("precious", f);
        fclose(f);
    }
    uint64_t he = file_hash(ex);
    const char *ae[] = {"merge", "--model", MODEL, "--lora", LORA, "--output", ex, NULL};
    expect("existing --output", ae, 1, "lorafuse merge: output ", "already exists");
    LF_CHECK(file_hash(ex) == he, "the existing output changed without --force");
    const char *aef[] = {"merge", "--model", MODEL, "--lora", LORA, "--output", ex, "--force", NULL};
    expect("existing --output --force", aef, 0, "lorafuse merge: 1 adapter(s) -> ", "tensors patched");
    lf_st_file *st = NULL;
    LF_CHECK(lf_st_open(ex, &st) == LF_OK && lf_st_meta(st, "lorafuse.merged"), "replaced output: %s",
             lf_last_error());
    lf_st_close(st);

    const char *a0[] = {"merge", "--model", MODEL, "--lora", LORA, "--output", "", NULL};
    expect("--output ''", a0, 2, "lorafuse merge: --output is empty", "");
    unlink(ex);
    unlink(hard);
    unlink(sym);
    unlink(model);
}

/* Signals at random points of a merge (see the file comment). */
static void test_signals(void) {
    char ref[600], dst[600], old[600];
    snprintf(ref, sizeof ref, "%s", tpath("ref.safetensors"));
    snprintf(dst, sizeof dst, "%s", tpath("dst.safetensors"));
    snprintf(old, sizeof old, "%s", tpath("old.safetensors"));
    /* the reference output, and how long one merge takes on this machine and build */
    const char *ar[] = {"merge", "--model", MODEL, "--lora", LORA, "--output", ref, NULL};
    double best = 1e9;
    for (int i = 0; i < 3; i++) {
        unlink(ref);
        run_result r = run(ar);
        LF_CHECK(exit_code(&r) == 0, "reference merge: %s", r.first);
        if (r.seconds < best) best = r.seconds;
    }
    uint64_t h_ref = file_hash(ref), h_old = 0;
    LF_CHECK(h_ref != 0, "no reference output");
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    lf_test_rng rng;
    lf_test_rng_seed(&rng, 0x5EED0F11E5ull);
    int killed = 0, finished = 0;
    for (int i = 0; i < SIGNAL_RUNS; i++) {
        int force = i & 1, sig = sigs[(i / 2) % 3];
        unlink(dst);
        if (force) {
            /* an "old" output: a merge at another strength */
            char lora_s[600];
            snprintf(lora_s, sizeof lora_s, "%s:0.25", LORA);
            const char *ao[] = {"merge", "--model", MODEL, "--lora", lora_s, "--output", dst, NULL};
            run_result r = run(ao);
            LF_CHECK(exit_code(&r) == 0, "old output: %s", r.first);
            h_old = file_hash(dst);
        }
        const char *a[] = {"merge", "--model", MODEL, "--lora", LORA, "--output", dst, force ? "--force" : NULL, NULL};
        /* uniform over the whole run (start-up, read, compute, write), and a little past its end */
        double delay = best * 1.3 * (double)(lf_test_rng_next(&rng) >> 11) / 9007199254740992.0;
        double t0 = now_s();
        pid_t pid = start(a);
        sleep_s(delay - (now_s() - t0));
        kill(pid, sig);
        run_result r = finish(pid, t0, 120.0);
        int by_signal = r.status >= 0 && WIFSIGNALED(r.status) && WTERMSIG(r.status) == sig;
        int done = exit_code(&r) == 0;
        killed += by_signal;
        finished += done;
        LF_CHECK(by_signal || done, "run %d (%s, signal %d at %.1f ms): status %#x (%s)", i, force ? "--force" : "new",
                 sig, delay * 1e3, (unsigned)r.status, r.first);
        LF_CHECK(done ? lf_has_prefix(r.first, "lorafuse merge: 1 adapter(s) -> ")
                      : (!*r.first || lf_has_prefix(r.first, "lorafuse merge: 1 adapter(s) -> ")),
                 "run %d: first line of stderr '%s'", i, r.first);
        uint64_t h = exists(dst) ? file_hash(dst) : 0;
        if (done) LF_CHECK(h == h_ref, "run %d: finished but the output is not the reference", i);
        else if (force) LF_CHECK(h == h_old || h == h_ref, "run %d: the destination is neither old nor complete", i);
        else LF_CHECK(h == 0 || h == h_ref, "run %d: the destination exists but is not complete", i);
        LF_CHECK(count_tmp_files() == 0, "run %d (%s, signal %d at %.1f ms): a temporary file was left", i,
                 force ? "--force" : "new", sig, delay * 1e3);
    }
    printf("signals: %d runs, %d ended by the signal, %d finished first (one merge: %.1f ms)\n", SIGNAL_RUNS, killed,
           finished, best * 1e3);
    unlink(dst);
    unlink(ref);
    unlink(old);
}

int main(void) {
    g_bin = getenv("LF_BIN");
    if (!g_bin || access(g_bin, X_OK) != 0) LF_SKIP("LF_BIN does not name the lorafuse binary");
    if (lf_test_tmpdir(g_dir, sizeof g_dir, "robust_files") != 0) {
        fprintf(stderr, "mkdtemp %s: %s\n", g_dir, strerror(errno));
        return 1;
    }
    test_fifo_inputs();
    test_outputs();
    test_signals();
    unlink(tpath("stdout.txt"));
    unlink(tpath("stderr.txt"));
    LF_CHECK(rmdir(g_dir) == 0, "%s not empty at the end: %s", g_dir, strerror(errno));
    return lf_test_finish();
}
