/* test_robust_prompts.c: hostile prompts and numbers through the real binary ($LF_BIN, set by CTest; run
 * from the repository root), `lorafuse plan` on tests/data/tiny/tiny-sd15.safetensors with a temporary LoRA
 * directory holding one adapter, a.safetensors (docs/limits.md).
 *
 * Each case runs the program with fork/exec (arguments passed as bytes, no shell) and asserts its exit
 * status, the first line of stderr (exactly: quoted input escaped), that stderr holds no control byte
 * but newlines, and a wall-clock sanity bound generous enough for a sanitizer build (no timing claims):
 *   - escape sequences and invalid UTF-8 in tag names and values, bidi marks;
 *   - 10,000 identical tags (one adapter counted 10,000 times), 10,001 tags (the limit);
 *   - 10,000 key frames at 10,000 steps (linear), the same at 4 steps (one summarised warning);
 *   - an oversize prompt, 65 different adapters, dyn above the rank (a warning);
 *   - hex, inf and 1e999 strengths in tags and in `merge --lora PATH:STRENGTH`, bad --steps.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lf_test.h"
#include "lf_test_data.h"

#include "host/base/strbuf.h"
#include "host/base/util.h"

#define MODEL "tests/data/tiny/tiny-sd15.safetensors"
#define LORA "tests/data/tiny/sd15_kohya.lora.safetensors"
#define BOUND_S 60.0

static char g_dir[64], g_out[128], g_err[128];

typedef struct {
    int rc;
    char *out, *err;
    double secs;
} lf_run;

static void run_free(lf_run *r) {
    free(r->out);
    free(r->err);
}

/* Run $LF_BIN with argv (NULL-terminated, argv[0] excluded), stdout/stderr to files. */
static lf_run run(const char *const *args) {
    lf_run r = {-1, NULL, NULL, 0};
    const char *bin = getenv("LF_BIN");
    const char *argv[16];
    int n = 0;
    argv[n++] = bin;
    for (; args[n - 1] && n < 15; n++) argv[n] = args[n - 1];
    argv[n] = NULL;
    double t0 = lf_clock_s();
    pid_t pid = fork();
    if (pid == 0) {
        int o = open(g_out, O_WRONLY | O_CREAT | O_TRUNC, 0600), e = open(g_err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) _exit(126);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    if (pid > 0 && waitpid(pid, &status, 0) == pid) r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.secs = lf_clock_s() - t0;
    if (lf_read_file(g_out, "stdout", (size_t)256 << 20, &r.out, NULL)) r.out = calloc(1, 1);
    if (lf_read_file(g_err, "stderr", (size_t)64 << 20, &r.err, NULL)) r.err = calloc(1, 1);
    return r;
}

/* Exit status, first line of stderr (exactly, or its start when prefix), no control byte in stderr. */
static void expect(const char *what, const lf_run *r, int rc, const char *first, int prefix) {
    const char *nl = strchr(r->err, '\n');
    size_t n = nl ? (size_t)(nl - r->err) : strlen(r->err);
    LF_CHECK(r->rc == rc, "%s: exit %d, want %d (stderr: %.300s)", what, r->rc, rc, r->err);
    int same = prefix ? n >= strlen(first) && !strncmp(r->err, first, strlen(first))
                      : n == strlen(first) && !strncmp(r->err, first, n);
    LF_CHECK(same, "%s: first line of stderr\n  got  '%.*s'\n  want '%s'%s", what, (int)(n > 600 ? 600 : n), r->err, first,
             prefix ? "..." : "");
    for (const char *p = r->err; *p; p++)
        if (((unsigned char)*p < 0x20 && *p != '\n') || *p == 0x7f) {
            LF_CHECK(0, "%s: control byte 0x%02x in stderr", what, (unsigned char)*p);
            break;
        }
    LF_CHECK(r->secs < BOUND_S, "%s: %.1f s (sanity bound %.0f s)", what, r->secs, BOUND_S);
}

static size_t count_lines(const char *s) {
    size_t n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* `plan --steps N --prompt P` on the tiny model and the temporary LoRA directory. */
static lf_run plan(const char *prompt, const char *steps) {
    const char *a[] = {"plan", "--model", MODEL, "--lora-dir", g_dir, "--steps", steps, "--prompt", prompt, NULL};
    return run(a);
}

static char *repeated(const char *unit, size_t n) {
    lf_sbuf b = {0};
    for (size_t i = 0; i < n; i++) lf_sb_str(&b, unit);
    return b.s;
}

static void test_escapes(void) {
    char want[512];
    lf_run r = plan("<lora:\x1b[31mEVIL\x1b[0m>", "4");
    snprintf(want, sizeof want, "lorafuse plan: prompt col 1: <lora:\\x1b[31mEVIL\\x1b[0m>: no LoRA named "
             "'\\x1b[31mEVIL\\x1b[0m' in %s (1 file); closest: a", g_dir);
    expect("escape sequence in a name", &r, 1, want, 0);
    run_free(&r);
    r = plan("a cat <lora:a:te=\x1b]0;owned\x07:unet=1>", "4");
    expect("OSC sequence in a value", &r, 1,
           "lorafuse plan: prompt col 7: <lora:a:te=\\x1b]0;owned\\x07:unet=1>: '\\x1b]0;owned\\x07' is not a number or "
           "schedule", 0);
    run_free(&r);
    r = plan("\xff\xfe <lora:a:\xc3\x28:x=1>", "4");
    expect("invalid UTF-8", &r, 1, "lorafuse plan: prompt col 4: <lora:a:\\xc3(:x=1>: '\\xc3(' is not a number or schedule",
           0);
    run_free(&r);
    r = plan("<lora:\xe2\x80\xae" "fdp.a>", "4");
    snprintf(want, sizeof want, "lorafuse plan: prompt col 1: <lora:\\u202efdp.a>: no LoRA named '\\u202efdp.a' in %s", g_dir);
    expect("bidi override", &r, 1, want, 1);
    run_free(&r);
    const char *m[] = {"plan", "--model", "/nonexistent/\x1b[2J.safetensors", "--steps", "2", "--prompt", "x", NULL};
    r = run(m);
    expect("escape sequence in a model path", &r, 1, "lorafuse plan: ", 1);
    LF_CHECK(strstr(r.err, "/nonexistent/\\x1b[2J.safetensors") != NULL, "model path escaped: %s", r.err);
    run_free(&r);
    const char *a[] = {"plan", "--\x1b[2J", NULL};
    r = run(a);
    expect("unknown option", &r, 2, "lorafuse plan: unknown option '--\\x1b[2J' (closest: --json)", 0);
    run_free(&r);
    /* a newline in the prompt is printed escaped in plan's text output too */
    r = plan("a cat\n\x1b[1mbold <lora:a:0.5>", "2");
    expect("newline in the prompt", &r, 0, "", 0);
    LF_CHECK(!strncmp(r.out, "prompt: a cat\\n\\x1b[1mbold\n", 27), "escaped prompt line: %.80s", r.out);
    run_free(&r);
}

static void test_repeats(void) {
    char *p = repeated("<lora:a:.1>", 10000);
    lf_run r = plan(p, "4");
    expect("10000 identical tags", &r, 0, "", 0);
    LF_CHECK(strstr(r.out, "  1. <lora:a:.1> (col 1) x10000 (identical tags, added up)\n") &&
                 !strstr(r.out, "  2. "), "one adapter counted 10000 times:\n%.400s", r.out);
    run_free(&r);
    free(p);
    p = repeated("<lora:a:.1>", 10001);
    r = plan(p, "4");
    expect("10001 tags", &r, 1,
           "lorafuse plan: prompt col 110001: <lora:a:.1>: more than 10000 tags in one prompt (docs/limits.md)", 0);
    run_free(&r);
    free(p);
    /* 65 different tags of one file */
    lf_sbuf b = {0};
    for (int i = 1; i <= 65; i++) lf_sb_printf(&b, "<lora:a:%d> ", i);
    r = plan(b.s, "4");
    expect("65 different adapters", &r, 1,
           "lorafuse plan: prompt col 760: <lora:a:65>: more than 64 different adapters in one prompt (identical tags "
           "count once; docs/limits.md)", 0);
    run_free(&r);
    lf_sb_free(&b);
}

static void test_schedules(void) {
    lf_sbuf b = {0};
    lf_sb_str(&b, "<lora:a:unet=");
    for (int i = 1; i <= 10000; i++) lf_sb_printf(&b, "%s%d@%d", i > 1 ? "," : "", i % 2, i);
    lf_sb_str(&b, ">");
    lf_run r = plan(b.s, "10000");
    /* the one warning: loractl would read this schedule differently (docs/prompt-tags.md "Dialects") */
    expect("10000 key frames at 10000 steps", &r, 0, "lorafuse plan: warning: prompt col 1: <lora:a:unet=1@1,0@2,", 1);
    LF_CHECK(count_lines(r.err) == 1 && strstr(r.err, "...: loractl reads this tag differently (unet at step 2 of 10000: "
                                                      "0 here, 1 in loractl)"), "dialect warning: %.400s", r.err);
    LF_CHECK(strstr(r.out, "\n  10000 ") && strstr(r.out, "\ntotal: "), "plan table reaches step 10000");
    run_free(&r);
    r = plan(b.s, "4");
    expect("10000 key frames at 4 steps", &r, 0, "lorafuse plan: warning: prompt col 1: <lora:a:unet=1@1,0@2,", 1);
    LF_CHECK(count_lines(r.err) == 2 && strstr(r.err, "...: 9996 key frames land after the last step (4) and are never "
                                                      "reached, the first unet: '1@5' on step 5\n") && strlen(r.err) < 800,
             "one summarised warning, then the dialect warning: %s", r.err);
    run_free(&r);
    lf_sb_free(&b);
    /* one key frame more than the limit */
    lf_sb_str(&b, "<lora:a:unet=");
    for (int i = 1; i <= 10001; i++) lf_sb_printf(&b, "%s1@%d", i > 1 ? "," : "", i);
    lf_sb_str(&b, ">");
    r = plan(b.s, "4");
    expect("10001 key frames", &r, 1, "lorafuse plan: prompt col 1: <lora:a:unet=1@1,1@2,", 1);
    LF_CHECK(strstr(r.err, "...: more than 10000 key frames in one tag (docs/limits.md)\n") != NULL, "%s", r.err);
    run_free(&r);
    lf_sb_free(&b);
    /* steps */
    r = plan("<lora:a>", "10001");
    expect("--steps 10001", &r, 2, "lorafuse plan: bad --steps '10001' (1 to 10000)", 0);
    run_free(&r);
    r = plan("<lora:a>", "0x10");
    expect("--steps 0x10", &r, 2, "lorafuse plan: bad --steps '0x10' (1 to 10000)", 0);
    run_free(&r);
}

static void test_sizes_numbers(void) {
    char *p = repeated("a", 128001);
    lf_run r = plan(p, "4");
    expect("oversize prompt", &r, 1, "lorafuse plan: prompt of 128001 bytes is longer than the limit of 128000 bytes "
           "(docs/limits.md)", 0);
    run_free(&r);
    free(p);
    static const struct {
        const char *prompt, *first;
    } c[] = {
        {"<lora:a:0x10>", "lorafuse plan: prompt col 1: <lora:a:0x10>: '0x10' is not a number or schedule"},
        {"<lora:a:inf>", "lorafuse plan: prompt col 1: <lora:a:inf>: 'inf' is not a number or schedule"},
        {"<lora:a:nan>", "lorafuse plan: prompt col 1: <lora:a:nan>: 'nan' is not a number or schedule"},
        {"<lora:a:1e999>", "lorafuse plan: prompt col 1: <lora:a:1e999>: '1e999' is out of range (strengths are at most "
                           "3.4e38 in magnitude, the range of a 32-bit float)"},
        {"<lora:a:unet=1@1,1e39@2>", "lorafuse plan: prompt col 1: <lora:a:unet=1@1,1e39@2>: '1e39' in key frame '1e39@2' "
                                     "is out of range (strengths are at most 3.4e38 in magnitude, the range of a 32-bit "
                                     "float)"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        r = plan(c[i].prompt, "4");
        expect(c[i].prompt, &r, 1, c[i].first, 0);
        run_free(&r);
    }
    /* dyn above the rank of every module: a warning, full rank used */
    r = plan("<lora:a:1:dyn=999>", "2");
    expect("dyn above the rank", &r, 0, "lorafuse plan: warning: prompt col 1: <lora:a:1:dyn=999>: dyn=999 is more than the "
           "rank of ", 1);
    run_free(&r);
    /* merge --lora PATH:STRENGTH: one grammar; a bad strength is a strength error, not a path */
    char lora[256], out[256];
    snprintf(out, sizeof out, "%s/merged.safetensors", g_dir);
    static const struct {
        const char *suffix, *why;
    } m[] = {
        {":1e999", "strength '1e999' is out of range (at most 3.4e38 in magnitude)"},
        {":0x10", "strength '0x10' is not a decimal number (no hex, inf or nan)"},
        {":-inf", "strength '-inf' is not a decimal number (no hex, inf or nan)"},
        {":0.5:dyn=0x2", "dyn must be an integer from 1 to 1048576, not '0x2'"},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        snprintf(lora, sizeof lora, "%s/a.safetensors%s", g_dir, m[i].suffix);
        const char *a[] = {"merge", "--model", MODEL, "--lora", lora, "--output", out, NULL};
        r = run(a);
        char want[512];
        snprintf(want, sizeof want, "lorafuse merge: --lora '%s': %s", lora, m[i].why);
        expect(lora, &r, 2, want, 0);
        run_free(&r);
        struct stat st;
        LF_CHECK(stat(out, &st) != 0, "%s: nothing written", lora);
    }
}

static int copy_file(const char *src, const char *dst) {
    char *buf;
    size_t n;
    if (lf_read_file(src, "adapter", (size_t)64 << 20, &buf, &n)) return 0;
    FILE *f = fopen(dst, "wb");
    int ok = f && fwrite(buf, 1, n, f) == n;
    if (f) ok &= fclose(f) == 0;
    free(buf);
    return ok;
}

/* `inspect` prints what a downloaded file says about itself (metadata, trigger words from
 * ss_tag_frequency): escape sequences there reach the terminal escaped, never raw. */
static void test_inspect_metadata(void) {
    char evil[128];
    snprintf(evil, sizeof evil, "%s/evil.safetensors", g_dir);
    const char *const meta[] = {"ss_output_name", "\x1b]0;owned\x07name", "ss_tag_frequency",
                                "{\"5_\\u001b[31mred\": {\"x\": 1}}", NULL};
    lf_test_st_edit e = {0};
    e.copy_meta = 1;
    e.meta = meta;
    LF_CHECK(lf_test_st_copy(LORA, evil, &e), "write %s: %s", evil, lf_last_error());
    const char *a[] = {"inspect", evil, NULL};
    lf_run r = run(a);
    expect("inspect of a file with escape sequences in its metadata", &r, 0, "", 0);
    LF_CHECK(!strchr(r.out, '\x1b') && !strchr(r.out, '\x07'), "a raw control byte reached stdout: %.200s", r.out);
    LF_CHECK(strstr(r.out, "\\x1b]0;owned\\x07name") && strstr(r.out, "\\x1b[31mred"),
             "metadata and trigger word shown escaped: %.400s", r.out);
    run_free(&r);
    unlink(evil);
}

int main(void) {
    if (!getenv("LF_BIN")) LF_SKIP("LF_BIN not set");
    struct stat st;
    if (stat(MODEL, &st) || stat(LORA, &st)) LF_SKIP("tiny model or LoRA missing");
    snprintf(g_dir, sizeof g_dir, "/tmp/lf_robust_XXXXXX");
    if (!mkdtemp(g_dir)) LF_SKIP("no temp dir");
    char lora[128];
    snprintf(lora, sizeof lora, "%s/a.safetensors", g_dir);
    snprintf(g_out, sizeof g_out, "%s/out.txt", g_dir);
    snprintf(g_err, sizeof g_err, "%s/err.txt", g_dir);
    if (!copy_file(LORA, lora)) LF_SKIP("cannot copy the LoRA");
    test_escapes();
    test_repeats();
    test_schedules();
    test_sizes_numbers();
    test_inspect_metadata();
    unlink(lora);
    unlink(g_out);
    unlink(g_err);
    char merged[128];
    snprintf(merged, sizeof merged, "%s/merged.safetensors", g_dir);
    unlink(merged);
    LF_CHECK(rmdir(g_dir) == 0, "no stray file left in %s", g_dir);
    return lf_test_finish();
}
