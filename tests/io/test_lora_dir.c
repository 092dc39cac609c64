/* test_lora_dir.c: the LoRA directory scan and its limits (host/io/lora_dir.c, lf_lora_dir.h), on trees
 * built in a mkdtemp folder: links out of the directory (followed by default, refused when confined),
 * link loops and a folder reachable both through a link and for real (each real folder listed once,
 * under its real path), the depth limit, what is not an adapter (hidden names, FIFOs, dangling links,
 * folders named *.safetensors), the entry limit, and the lengths of the error lists. Name resolution
 * itself (paths, stems, aliases) is tested in tests/plan/test_step_plan.c.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lf_test.h"
#include "lf_test_data.h"

#include "lorafuse/lf_lora_dir.h"

static char g_tmp[256];

/* An empty file (the scan only looks at names and types); 1 when made. */
static int touch_ok(const char *fmt, const char *a) {
    char p[4096];
    snprintf(p, sizeof p, fmt, g_tmp, a);
    int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (fd >= 0) close(fd);
    return fd >= 0;
}

static void touch(const char *fmt, const char *a) {
    LF_CHECK(touch_ok(fmt, a), "create %s", a);
}

static void mkdirf(const char *fmt, const char *a) {
    char p[4096];
    snprintf(p, sizeof p, fmt, g_tmp, a);
    LF_CHECK(mkdir(p, 0755) == 0, "mkdir %s", p);
}

static void linkf(const char *target, const char *fmt, const char *a) {
    char p[4096];
    snprintf(p, sizeof p, fmt, g_tmp, a);
    LF_CHECK(symlink(target, p) == 0, "symlink %s -> %s", p, target);
}

/* The files of a scan as "a, b, c". */
static void listing(const lf_lora_dir *d, char *buf, size_t n) {
    buf[0] = '\0';
    for (size_t i = 0; i < lf_lora_dir_count(d); i++) {
        size_t o = strlen(buf);
        snprintf(buf + o, n - o, "%s%s", i ? ", " : "", lf_lora_dir_at(d, i));
    }
}

static void resolve(lf_lora_dir *d, const char *name, lf_status want, const char *needle) {
    char *p = NULL;
    lf_status st = lf_lora_dir_resolve(d, name, &p);
    const char *got = st == LF_OK ? p : lf_last_error();
    LF_CHECK(st == want && strstr(got, needle), "'%s': status %d (want %d): '%s' lacks '%s'", name, (int)st,
             (int)want, got, needle);
    free(p);
}

static void test_links(void) {
    char root[512], list[4096], t[4096];
    snprintf(root, sizeof root, "%s/ld", g_tmp);
    mkdirf("%s/%s", "ld");
    mkdirf("%s/%s", "outside");
    mkdirf("%s/%s", "ld/sub");
    touch("%s/%s", "ld/a.safetensors");
    touch("%s/%s", "ld/sub/b.safetensors");
    touch("%s/%s", "ld/.hidden.safetensors");
    touch("%s/%s", "ld/notes.txt");
    touch("%s/%s", "ld/.safetensors");
    mkdirf("%s/%s", "ld/folder.safetensors");
    snprintf(t, sizeof t, "%s/ld/pipe.safetensors", g_tmp);
    LF_CHECK(mkfifo(t, 0644) == 0, "mkfifo");
    linkf("nowhere.safetensors", "%s/%s", "ld/dangling.safetensors");
    touch("%s/%s", "outside/far.safetensors");
    snprintf(t, sizeof t, "%s/outside/far.safetensors", g_tmp);
    linkf(t, "%s/%s", "ld/farlink.safetensors"); /* a file link out (absolute) */
    linkf("../outside", "%s/%s", "ld/shelf");   /* a folder link out (relative) */
    linkf("sub", "%s/%s", "ld/aaa");            /* a link inside, sorted before its target */
    linkf("sub/b.safetensors", "%s/%s", "ld/bee.safetensors"); /* a file link inside */
    for (int i = 1; i <= 5; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "ld/l%d", i);
        linkf(".", "%s/%s", nm);
    }
    linkf("..", "%s/%s", "ld/up"); /* out, and back in through the parent */

    /* followed (the command line's default): everything once, real paths first */
    lf_lora_dir *d = NULL;
    LF_CHECK(lf_lora_dir_scan(root, NULL, &d) == LF_OK, "scan: %s", lf_last_error());
    listing(d, list, sizeof list);
    LF_CHECK(!strcmp(list, "a.safetensors, bee.safetensors, farlink.safetensors, shelf/far.safetensors, "
                           "sub/b.safetensors"),
             "followed: %s", list);
    resolve(d, "far", LF_OK, "/ld/shelf/far.safetensors");
    resolve(d, "farlink", LF_OK, "/ld/farlink.safetensors");
    resolve(d, "l1/l2/a", LF_ERR_ARG, "no LoRA named 'l1/l2/a'");
    resolve(d, "aaa/b", LF_ERR_ARG, "no LoRA named 'aaa/b'"); /* listed under its real path */
    resolve(d, "pipe", LF_ERR_ARG, "no LoRA named 'pipe'");
    resolve(d, "dangling", LF_ERR_ARG, "no LoRA named 'dangling'");
    lf_lora_dir_free(d);

    /* confined: no folder link out entered, file links out listed but refused */
    lf_lora_dir_opts o = {1};
    d = NULL;
    LF_CHECK(lf_lora_dir_scan(root, &o, &d) == LF_OK, "confined scan: %s", lf_last_error());
    listing(d, list, sizeof list);
    LF_CHECK(!strcmp(list, "a.safetensors, bee.safetensors, farlink.safetensors, sub/b.safetensors"), "confined: %s",
             list);
    resolve(d, "farlink", LF_ERR_ARG, "'farlink' is farlink.safetensors in ");
    resolve(d, "farlink", LF_ERR_ARG, "a symbolic link leading out of the LoRA directory: refused");
    resolve(d, "bee", LF_OK, "/ld/bee.safetensors");
    resolve(d, "far", LF_ERR_ARG, "(2 folder links leading out of the directory not followed: --allow-symlinks-out)");
    lf_lora_dir_free(d);

    /* the directory itself may be a link: what lies under its target is inside */
    char alias[512];
    snprintf(alias, sizeof alias, "%s/ldlink", g_tmp);
    LF_CHECK(symlink(root, alias) == 0, "link the directory");
    d = NULL;
    LF_CHECK(lf_lora_dir_scan(alias, &o, &d) == LF_OK && lf_lora_dir_count(d) == 4, "linked root: %zu files",
             lf_lora_dir_count(d));
    if (d) resolve(d, "b", LF_OK, "ldlink/sub/b.safetensors");
    lf_lora_dir_free(d);
}

static void test_depth(void) {
    char path[256] = "deep";
    mkdirf("%s/%s", "deep");
    for (int i = 1; i <= LF_LORA_DIR_MAX_DEPTH + 1; i++) {
        size_t o = strlen(path);
        snprintf(path + o, sizeof path - o, "/d%d", i);
        mkdirf("%s/%s", path);
        char f[512];
        snprintf(f, sizeof f, "%s/at%d.safetensors", path, i);
        touch("%s/%s", f);
    }
    char root[512];
    snprintf(root, sizeof root, "%s/deep", g_tmp);
    lf_lora_dir *d = NULL;
    LF_CHECK(lf_lora_dir_open(root, &d) == LF_OK && lf_lora_dir_count(d) == LF_LORA_DIR_MAX_DEPTH,
             "depth: %zu files, want %d", lf_lora_dir_count(d), LF_LORA_DIR_MAX_DEPTH);
    if (d) {
        resolve(d, "at8", LF_OK, "/d8/at8.safetensors");
        resolve(d, "at9", LF_ERR_ARG, "no LoRA named 'at9'");
    }
    lf_lora_dir_free(d);
}

static void test_lists(void) {
    mkdirf("%s/%s", "lists");
    char nm[512];
    for (int i = 0; i < LF_LORA_DIR_SHOW_AMBIGUOUS + 1; i++) {
        snprintf(nm, sizeof nm, "lists/s%02d", i);
        mkdirf("%s/%s", nm);
        snprintf(nm, sizeof nm, "lists/s%02d/dup.safetensors", i);
        touch("%s/%s", nm);
    }
    char longname[256];
    memset(longname, 'x', 200);
    memcpy(longname + 200, ".safetensors", 13);
    snprintf(nm, sizeof nm, "lists/%s", longname);
    touch("%s/%s", nm);
    char root[512];
    snprintf(root, sizeof root, "%s/lists", g_tmp);
    lf_lora_dir *d = NULL;
    LF_CHECK(lf_lora_dir_open(root, &d) == LF_OK, "lists: %s", lf_last_error());
    if (!d) return;
    resolve(d, "dup", LF_ERR_ARG, "13 files match by file names: s00/dup.safetensors, ");
    resolve(d, "dup", LF_ERR_ARG, "s11/dup.safetensors, ... (write the path relative to the directory)");
    char *p = NULL, query[200];
    memset(query, 'x', 190);
    query[190] = '\0';
    LF_CHECK(lf_lora_dir_resolve(d, query, &p) == LF_ERR_ARG, "long name");
    const char *m = lf_last_error(), *c = strstr(m, "closest: ");
    int shown = 0;
    for (const char *q = c; q && (q = strstr(q, ", ")) != NULL; q += 2) shown++;
    LF_CHECK(c && shown + 1 == LF_LORA_DIR_SHOW_CLOSEST, "closest list of %d names: %s", shown + 1, m);
    char cut[200];
    memset(cut, 'x', LF_LORA_DIR_SHOWN_BYTES);
    memcpy(cut + LF_LORA_DIR_SHOWN_BYTES, "...", 4);
    LF_CHECK(c && !strncmp(c + 9, cut, strlen(cut)), "long name cut to %d bytes: %s", LF_LORA_DIR_SHOWN_BYTES, m);
    lf_lora_dir_free(d);

    /* a file name from the disk reaches a terminal escaped: an ESC byte is shown as \x1b */
    mkdirf("%s/%s", "esc");
    touch("%s/%s", "esc/st\x1b[2Jyle.safetensors");
    snprintf(root, sizeof root, "%s/esc", g_tmp);
    d = NULL;
    LF_CHECK(lf_lora_dir_open(root, &d) == LF_OK, "esc: %s", lf_last_error());
    if (d) resolve(d, "style", LF_ERR_ARG, "closest: st\\x1b[2Jyle");
    lf_lora_dir_free(d);
}

/* Many files: the unknown-name message stays short and fast; past the limit every resolve says so. */
static void test_many(void) {
    mkdirf("%s/%s", "many");
    char nm[64];
    int n = LF_LORA_DIR_MAX_ENTRIES - 10, made = 0;
    for (int i = 0; i < n; i++) {
        snprintf(nm, sizeof nm, "many/lora_%06d.safetensors", i);
        made += touch_ok("%s/%s", nm);
    }
    LF_CHECK(made == n, "made %d of %d files", made, n);
    char root[512];
    snprintf(root, sizeof root, "%s/many", g_tmp);
    lf_lora_dir *d = NULL;
    clock_t t0 = clock();
    LF_CHECK(lf_lora_dir_open(root, &d) == LF_OK && lf_lora_dir_count(d) == (size_t)n, "many: %zu files",
             lf_lora_dir_count(d));
    if (d) {
        char *p = NULL;
        LF_CHECK(lf_lora_dir_resolve(d, "lora_zzz", &p) == LF_ERR_ARG, "unknown name");
        size_t len = strlen(lf_last_error());
        LF_CHECK(len < 1024 && strstr(lf_last_error(), "closest: lora_000000, lora_000001, lora_000002, lora_000003, "
                                                       "lora_000004"), "message (%zu bytes): %.300s", len,
                 lf_last_error());
        resolve(d, "lora_012345", LF_OK, "many/lora_012345.safetensors");
    }
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    printf("  %d files: scan and two resolves %.2f s CPU\n", n, secs);
    lf_lora_dir_free(d);
    for (int i = 0; i < 11; i++) { /* now past the limit */
        snprintf(nm, sizeof nm, "many/extra_%02d.bin", i);
        touch("%s/%s", nm);
    }
    d = NULL;
    LF_CHECK(lf_lora_dir_open(root, &d) == LF_OK, "over the limit still opens");
    if (d) {
        char want[128];
        snprintf(want, sizeof want, "holds more than %d entries", LF_LORA_DIR_MAX_ENTRIES);
        resolve(d, "lora_012345", LF_ERR_ARG, want);
    }
    lf_lora_dir_free(d);
}

int main(void) {
    if (lf_test_tmpdir(g_tmp, sizeof g_tmp, "lora_dir") != 0) return 1;
    printf("links out, loops, non-adapters\n");
    test_links();
    printf("depth\n");
    test_depth();
    printf("error lists\n");
    test_lists();
    printf("entry limit\n");
    test_many();
    lf_lora_dir *d = NULL;
    LF_CHECK(lf_lora_dir_open("/nonexistent/loras", &d) == LF_OK && lf_lora_dir_count(d) == 0, "missing folder");
    lf_lora_dir_free(d);
    lf_test_rmtree(g_tmp);
    return lf_test_finish();
}
