/* fuzz_lora_dir.c: libFuzzer target for the LoRA directory scan and name resolution (lf_lora_dir.h).
 *
 * The input describes a small tree that is built in a fresh folder, then scanned (links followed, then
 * confined) and resolved. Layout on disk: BASE/p1/p2/p3/root is the LoRA directory, BASE/p1/p2/p3/out a
 * folder beside it holding one adapter, so that links out of root land in tiny folders.
 * Input, up to 64 operations, each:
 *   byte op: kind = op % 4 (0 folder, 1 empty file, 2 symbolic link, 3 FIFO), components = op / 4 % 3 + 1
 *   one byte per path component: a name from NAMES (index % 12)
 *   links: one more byte t: up = t % 3 leading "../", then t / 3 % 4 names from NAMES (". " when empty);
 *          t / 12 % 4 == 3 makes the target "../out" and == 2 "../out/far.safetensors" (from root)
 * Every entry is created only below real folders of root (a path through a link is skipped), and link
 * targets have at most two leading ".." and no ".." after a name, so no link resolves above BASE/p1:
 * the scan stays inside BASE. The bytes after the operations (up to 200) are one more name to resolve.
 * Invariants (abort when broken): the listing is sorted, unique, "*.safetensors" with no hidden
 * component and at most LF_LORA_DIR_MAX_DEPTH folders deep; every listed path resolves to itself when
 * links are followed; when confined, the listing is a subset of the followed one, and whatever resolves
 * has its realpath inside root's; every error message is short; nothing leaks (ASan).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lorafuse/lf_lora_dir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const NAMES[12] = {"a", "b", "sub", ".h", "x.safetensors", "y.safetensors", "A.safetensors",
                                       "l0", "l1", "deep", "z", "b.safetensors"};

static char g_base[64];

static int lf_fz_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* 1 if every folder on the way to root/rel's parent is a real folder (no link followed to create). */
static int lf_fz_real_parent(const char *root, const char *rel) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    for (char *s = p + strlen(root) + 1; (s = strchr(s, '/')) != NULL; s++) {
        *s = '\0';
        struct stat sb;
        int ok = lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
        *s = '/';
        if (!ok) return 0;
    }
    return 1;
}

static void lf_fz_cleanup(void) {
    if (*g_base) nftw(g_base, lf_fz_rm, 16, FTW_DEPTH | FTW_PHYS);
}

static void lf_fz_build(const char *root, const uint8_t *data, size_t size, size_t *used) {
    size_t i = 0;
    for (int op = 0; op < 64 && i < size; op++) {
        uint8_t b = data[i++];
        int kind = b % 4, comps = b / 4 % 3 + 1;
        if (i + (size_t)comps + (kind == 2) > size) break;
        char rel[512] = "";
        for (int c = 0; c < comps; c++) {
            size_t o = strlen(rel);
            snprintf(rel + o, sizeof rel - o, "%s%s", c ? "/" : "", NAMES[data[i++] % 12]);
        }
        char target[512] = "";
        if (kind == 2) {
            uint8_t t = data[i++];
            int up = t % 3, k = t / 3 % 4, special = t / 12 % 4;
            for (int u = 0; u < up; u++) strcat(target, "../");
            for (int c = 0; c < k; c++) {
                strcat(target, NAMES[(t + c * 5) % 12]);
                if (c + 1 < k) strcat(target, "/");
            }
            if (!*target) strcpy(target, ".");
            if (special == 3 && comps == 1) strcpy(target, "../out");
            if (special == 2 && comps == 1) strcpy(target, "../out/far.safetensors");
        }
        if (!lf_fz_real_parent(root, rel)) continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", root, rel);
        if (kind == 0) mkdir(p, 0755);
        else if (kind == 1) {
            int fd = open(p, O_CREAT | O_WRONLY | O_EXCL | O_NOFOLLOW, 0644);
            if (fd >= 0) close(fd);
        } else if (kind == 2) {
            if (symlink(target, p) != 0 && errno != EEXIST) abort();
        } else {
            mkfifo(p, 0644);
        }
    }
    *used = i;
}

static void lf_fz_check_msg(void) {
    if (strlen(lf_last_error()) > 2047) abort();
}

static void lf_fz_check_listing(const lf_lora_dir *d) {
    for (size_t i = 0; i < lf_lora_dir_count(d); i++) {
        const char *r = lf_lora_dir_at(d, i);
        size_t n = strlen(r), slashes = 0;
        if (n <= 12 || strcmp(r + n - 12, ".safetensors")) abort();
        if (i && strcmp(lf_lora_dir_at(d, i - 1), r) >= 0) abort(); /* sorted, unique */
        if (r[0] == '.' || strstr(r, "/.")) abort();
        for (const char *c = r; *c; c++) slashes += *c == '/';
        if (slashes > LF_LORA_DIR_MAX_DEPTH) abort();
    }
}

static int lf_fz_listed(const lf_lora_dir *d, const char *rel) {
    for (size_t i = 0; i < lf_lora_dir_count(d); i++)
        if (!strcmp(lf_lora_dir_at(d, i), rel)) return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    if (!*g_base) {
        const char *t = getenv("TMPDIR");
        snprintf(g_base, sizeof g_base, "%s/lf_fuzz_ld_XXXXXX", t && *t && strlen(t) < 32 ? t : "/tmp");
        if (!mkdtemp(g_base)) abort();
        atexit(lf_fz_cleanup);
    }
    char p3[128], root[256], out[256], far[300], rroot[4096];
    snprintf(p3, sizeof p3, "%s/run/p1/p2/p3", g_base);
    snprintf(root, sizeof root, "%s/root", p3);
    snprintf(out, sizeof out, "%s/out", p3);
    snprintf(far, sizeof far, "%s/far.safetensors", out);
    char run[128];
    snprintf(run, sizeof run, "%s/run", g_base);
    nftw(run, lf_fz_rm, 16, FTW_DEPTH | FTW_PHYS);
    char mk[256];
    snprintf(mk, sizeof mk, "%s/run", g_base), mkdir(mk, 0755);
    snprintf(mk, sizeof mk, "%s/run/p1", g_base), mkdir(mk, 0755);
    snprintf(mk, sizeof mk, "%s/run/p1/p2", g_base), mkdir(mk, 0755);
    mkdir(p3, 0755), mkdir(root, 0755), mkdir(out, 0755);
    int fd = open(far, O_CREAT | O_WRONLY, 0644);
    if (fd >= 0) close(fd);
    size_t used = 0;
    lf_fz_build(root, data, size, &used);
    if (!realpath(root, rroot)) abort();

    lf_lora_dir *d = NULL, *c = NULL;
    lf_lora_dir_opts conf = {1};
    if (lf_lora_dir_scan(root, NULL, &d) != LF_OK || lf_lora_dir_scan(root, &conf, &c) != LF_OK) abort();
    lf_fz_check_listing(d);
    lf_fz_check_listing(c);
    for (size_t i = 0; i < lf_lora_dir_count(c); i++)
        if (!lf_fz_listed(d, lf_lora_dir_at(c, i))) abort();
    for (size_t i = 0; i < lf_lora_dir_count(d); i++) {
        char *path = NULL, want[1024];
        const char *rel = lf_lora_dir_at(d, i);
        if (lf_lora_dir_resolve(d, rel, &path) != LF_OK) abort();
        snprintf(want, sizeof want, "%s/%s", root, rel);
        if (strcmp(path, want)) abort();
        free(path);
    }
    char query[201];
    size_t qn = size - used > 200 ? 200 : size - used;
    memcpy(query, data + used, qn);
    query[qn] = '\0';
    const char *names[6] = {query, "x", "sub/x", "y", "A", "far"};
    for (int k = 0; k < 6; k++) {
        if (!*names[k]) continue;
        for (int m = 0; m < 2; m++) {
            lf_lora_dir *dd = m ? c : d;
            char *path = NULL;
            if (lf_lora_dir_resolve(dd, names[k], &path) != LF_OK) {
                if (path) abort();
                lf_fz_check_msg();
                continue;
            }
            char real[4096];
            size_t rl = strlen(rroot);
            /* confined: what resolves lies inside root (a FIFO or vanished file cannot be here) */
            if (m && (!realpath(path, real) || strncmp(real, rroot, rl) || (real[rl] && real[rl] != '/'))) abort();
            free(path);
        }
    }
    for (size_t i = 0; i < lf_lora_dir_count(c); i++) { /* every confined name: inside, or refused */
        char *path = NULL, real[4096];
        size_t rl = strlen(rroot);
        if (lf_lora_dir_resolve(c, lf_lora_dir_at(c, i), &path) != LF_OK) {
            if (!strstr(lf_last_error(), "a symbolic link leading out of the LoRA directory")) abort();
            continue;
        }
        if (!realpath(path, real) || strncmp(real, rroot, rl) || (real[rl] && real[rl] != '/')) abort();
        free(path);
    }
    lf_lora_dir_free(d);
    lf_lora_dir_free(c);
    nftw(run, lf_fz_rm, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
