/* test_util.c: the shared helpers of host/base/util.h and the text buffer of host/base/strbuf.h.
 *
 * lf_read_file: exact bytes + NUL + length (embedded NUL, high bytes, empty file), the size limit
 * (from the file's size and, for /proc files that report 0 bytes, while reading), FIFOs refused without
 * blocking, directories refused, a missing file reported as LF_ERR_IO naming the path. lf_grow: growth,
 * contents kept, overflowing requests refused with the array untouched. lf_has_prefix / lf_has_suffix
 * edge cases. lf_sbuf: appends, numbers, printf (short and long), JSON escaping, reset / free, and the
 * sticky oom flag after a request too large to allocate.
 */
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lf_test.h"
#include "lf_test_data.h"
#include "host/base/strbuf.h"
#include "host/base/util.h"

static char g_dir[256];

static const char *tpath(const char *name) { return lf_test_path(g_dir, name); }

static void test_clock(void) {
    double a = lf_clock_s();
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    double b = lf_clock_s();
    LF_CHECK(b - a >= 0.015 && b - a < 10.0, "20 ms sleep measured as %.6f s", b - a);
}

static void test_read_file(void) {
    static const char bytes[] = {'a', 'b', '\0', 'c', '\xff', '\n'};
    const char *f = tpath("six");
    LF_CHECK(lf_test_write_file(f, bytes, sizeof bytes) == 0, "write %s", f);

    char *buf = NULL;
    size_t n = 99;
    LF_CHECK(lf_read_file(f, NULL, sizeof bytes, &buf, &n) == LF_OK, "read at max = size: %s", lf_last_error());
    LF_CHECK(buf && n == sizeof bytes && memcmp(buf, bytes, n) == 0 && buf[n] == '\0', "bytes + NUL + length (%zu)",
             n);
    free(buf);
    LF_CHECK(lf_read_file(f, NULL, SIZE_MAX, &buf, NULL) == LF_OK && buf && memcmp(buf, bytes, sizeof bytes) == 0,
             "no length wanted, max = SIZE_MAX: %s", lf_last_error());
    free(buf);

    buf = (char *)1;
    n = 99;
    LF_CHECK(lf_read_file(f, "the test file", sizeof bytes - 1, &buf, &n) == LF_ERR_FORMAT && !buf && n == 0,
             "one byte over max");
    LF_CHECK(strstr(lf_last_error(), f) && strstr(lf_last_error(), "the test file"), "over-max message: %s",
             lf_last_error());

    const char *e = tpath("empty");
    LF_CHECK(lf_test_write_file(e, "", 0) == 0, "write %s", e);
    LF_CHECK(lf_read_file(e, NULL, 0, &buf, &n) == LF_OK && buf && n == 0 && buf[0] == '\0', "empty file: %s",
             lf_last_error());
    free(buf);

    /* A FIFO with no writer: a blocking open would hang here (the alarm turns that into a failure). */
    const char *fifo = tpath("fifo");
    LF_CHECK(mkfifo(fifo, 0600) == 0, "mkfifo %s", fifo);
    alarm(20);
    LF_CHECK(lf_read_file(fifo, NULL, 1024, &buf, &n) == LF_ERR_IO && !buf, "FIFO refused");
    alarm(0);
    LF_CHECK(strstr(lf_last_error(), "not a regular file"), "FIFO message: %s", lf_last_error());

    LF_CHECK(lf_read_file(g_dir, NULL, 1 << 20, &buf, &n) == LF_ERR_IO && !buf, "directory refused");
    LF_CHECK(strstr(lf_last_error(), g_dir) && strstr(lf_last_error(), "not a regular file"), "directory message: %s",
             lf_last_error());

    const char *missing = tpath("no-such-file");
    LF_CHECK(lf_read_file(missing, "the presets file", 1024, &buf, &n) == LF_ERR_IO && !buf && n == 0,
             "missing file");
    LF_CHECK(strstr(lf_last_error(), missing) && strstr(lf_last_error(), "the presets file"),
             "missing-file message: %s", lf_last_error());

    /* /proc files say 0 bytes: the reader grows its buffer and checks max while reading. */
    const char *proc = "/proc/self/status";
    if (access(proc, R_OK) == 0) {
        LF_CHECK(lf_read_file(proc, NULL, 1 << 20, &buf, &n) == LF_OK && buf && n > 0 && strlen(buf) == n &&
                     strstr(buf, "Name:"),
                 "%s: %s", proc, lf_last_error());
        free(buf);
        LF_CHECK(lf_read_file(proc, NULL, SIZE_MAX, &buf, &n) == LF_OK && buf && n > 0, "%s, max = SIZE_MAX: %s",
                 proc, lf_last_error());
        free(buf);
        LF_CHECK(lf_read_file(proc, NULL, 10, &buf, &n) == LF_ERR_FORMAT && !buf, "%s over max while reading", proc);
    } else {
        printf("note: %s not readable, growth checks skipped\n", proc);
    }
    remove(f);
    remove(e);
    remove(fifo);
}

static void test_grow(void) {
    int *v = NULL;
    size_t cap = 0, n = 0;
    LF_CHECK(lf_grow(&v, &cap, 0) == 0 && v == NULL && cap == 0, "need 0 allocates nothing");
    int ok = 1;
    for (; n < 1000; n++) {
        if (lf_grow(&v, &cap, n + 1) != 0 || cap < n + 1) {
            ok = 0;
            break;
        }
        v[n] = (int)(n * 7);
    }
    LF_CHECK(ok && cap >= 1000 && cap < 2000, "1000 pushes, capacity %zu", cap);
    for (size_t i = 0; ok && i < n; i++) ok = v[i] == (int)(i * 7);
    LF_CHECK(ok, "contents kept across growth");

    int *before = v;
    size_t cap0 = cap;
    LF_CHECK(lf_grow(&v, &cap, cap) == 0 && v == before && cap == cap0, "need <= cap changes nothing");
    LF_CHECK(lf_grow(&v, &cap, SIZE_MAX) == -1 && v == before && cap == cap0, "need SIZE_MAX refused");
    LF_CHECK(lf_grow(&v, &cap, SIZE_MAX / 2 + 2) == -1 && v == before && cap == cap0, "need past half refused");
    LF_CHECK(lf_grow(&v, &cap, SIZE_MAX / sizeof *v + 1) == -1 && v == before && cap == cap0,
             "need * elem overflowing refused");
    for (size_t i = 0; ok && i < n; i++) ok = v[i] == (int)(i * 7);
    LF_CHECK(ok, "contents kept after refusals");
    free(v);

    typedef struct big {
        char b[1 << 20];
    } big;
    big *p = NULL;
    size_t pc = 0;
    LF_CHECK(lf_grow(&p, &pc, (SIZE_MAX >> 20) + 1) == -1 && p == NULL && pc == 0, "large element refused");
    LF_CHECK(lf_grow(&p, &pc, 1) == 0 && p && pc >= 1, "large element, one: allocated");
    free(p);
}

static void test_prefix_suffix(void) {
    LF_CHECK(lf_has_prefix("", "") && lf_has_prefix("abc", "") && !lf_has_prefix("", "a"), "prefix: empty strings");
    LF_CHECK(lf_has_prefix("abc", "abc") && lf_has_prefix("abc", "ab") && !lf_has_prefix("ab", "abc") &&
                 !lf_has_prefix("abc", "b") && !lf_has_prefix("abc", "abd"),
             "prefix");
    LF_CHECK(lf_has_suffix("", "") && lf_has_suffix("abc", "") && !lf_has_suffix("", "a"), "suffix: empty strings");
    LF_CHECK(lf_has_suffix("abc", "abc") && lf_has_suffix("abc", "bc") && !lf_has_suffix("bc", "abc") &&
                 !lf_has_suffix("abc", "ab") && lf_has_suffix("x.weight", ".weight") &&
                 !lf_has_suffix("weight", ".weight"),
             "suffix");
}

static void test_sbuf(void) {
    lf_sbuf b = {0};
    lf_sb_put(&b, "", 0);
    LF_CHECK(b.s && b.n == 0 && b.s[0] == '\0' && !b.oom, "empty append gives \"\"");
    lf_sb_str(&b, "ab");
    lf_sb_put(&b, "cdef", 2);
    lf_sb_u64(&b, 0);
    lf_sb_put(&b, ",", 1);
    lf_sb_u64(&b, UINT64_MAX);
    lf_sb_printf(&b, "|%d|%s|", -7, "x");
    const char *want = "abcd0,18446744073709551615|-7|x|";
    LF_CHECK(!b.oom && b.n == strlen(want) && !strcmp(b.s, want), "appends: '%s'", b.s);

    /* printf past the stack buffer: formatted a second time into the buffer */
    char big[1001];
    memset(big, 'q', 1000);
    big[1000] = '\0';
    size_t n0 = b.n;
    lf_sb_printf(&b, "<%s>%d", big, 42);
    LF_CHECK(!b.oom && b.n == n0 + 1004 && b.s[n0] == '<' && b.s[n0 + 1001] == '>' && !strcmp(b.s + n0 + 1002, "42") &&
                 strlen(b.s) == b.n,
             "long printf (%zu bytes)", b.n - n0);

    char *mem = b.s;
    size_t cap = b.cap;
    lf_sb_reset(&b);
    LF_CHECK(b.s == mem && b.cap == cap && b.n == 0 && b.s[0] == '\0' && !b.oom, "reset keeps the memory");

    lf_sb_json(&b, "a\"b\\c\b\f\n\r\t\x01\x1f\x7f \xc3\xa9");
    want = "\"a\\\"b\\\\c\\b\\f\\n\\r\\t\\u0001\\u001f\x7f \xc3\xa9\"";
    LF_CHECK(!strcmp(b.s, want) && b.n == strlen(want), "JSON escaping: %s", b.s);
    lf_sb_reset(&b);
    lf_sb_json(&b, "");
    LF_CHECK(!strcmp(b.s, "\"\""), "JSON of \"\": %s", b.s);

    /* A request that cannot be allocated sets oom; later appends do nothing; reset clears it. */
    lf_sb_reset(&b);
    lf_sb_str(&b, "keep");
    lf_sb_put(&b, "x", SIZE_MAX - 1);
    LF_CHECK(b.oom && b.n == 4 && !strcmp(b.s, "keep"), "oversized append: oom, contents kept");
    lf_sb_str(&b, "more");
    lf_sb_u64(&b, 5);
    lf_sb_printf(&b, "%d", 6);
    lf_sb_json(&b, "j");
    LF_CHECK(b.oom && b.n == 4 && !strcmp(b.s, "keep"), "oom is sticky: '%s'", b.s);
    lf_sb_reset(&b);
    lf_sb_str(&b, "ok");
    LF_CHECK(!b.oom && !strcmp(b.s, "ok"), "reset clears oom");

    lf_sb_free(&b);
    LF_CHECK(!b.s && b.n == 0 && b.cap == 0 && !b.oom, "free zeroes the buffer");
    lf_sb_free(&b); /* twice is harmless */
}

int main(void) {
    if (lf_test_tmpdir(g_dir, sizeof g_dir, "test_util")) {
        perror("mkdtemp");
        return 1;
    }
    test_clock();
    test_read_file();
    test_grow();
    test_prefix_suffix();
    test_sbuf();
    lf_test_rmtree(g_dir);
    return lf_test_finish();
}
