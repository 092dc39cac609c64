/* replay_main.c: runs a fuzz target's LLVMFuzzerTestOneInput on every file of a corpus directory.
 *
 * Usage: <target>_replay DIR. Files are run in sorted name order, each from an exact-size heap copy
 * (so sanitizers see over-reads). Prints how many inputs ran and "N passed, 0 failed"; a crash is the
 * only way an input fails. Exits non-zero if DIR is missing, unreadable or holds no files.
 */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "host/base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int lf_cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The file as an exact-size heap copy (lf_read_file's buffer has room for a NUL past the end, which would
 * hide an over-read of one byte). NULL if it cannot be read. */
static unsigned char *lf_slurp(const char *path, size_t *n) {
    char *b;
    if (lf_read_file(path, "corpus file", (size_t)1 << 30, &b, n) != LF_OK) {
        fprintf(stderr, "%s\n", lf_last_error());
        return NULL;
    }
    unsigned char *e = malloc(*n ? *n : 1);
    if (e) memcpy(e, b, *n);
    free(b);
    return e;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "%s: cannot open corpus directory\n", dir);
        return 1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        if (lf_grow(&names, &cap, n + 1)) { fprintf(stderr, "out of memory\n"); return 1; }
        size_t len = strlen(e->d_name) + 1;
        names[n] = malloc(len);
        if (!names[n]) { fprintf(stderr, "out of memory\n"); return 1; }
        memcpy(names[n++], e->d_name, len);
    }
    closedir(d);
    if (n == 0) {
        fprintf(stderr, "%s: no corpus files\n", dir);
        free(names);
        return 1;
    }
    qsort(names, n, sizeof *names, lf_cmp_str);
    size_t ran = 0;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        size_t len = 0;
        unsigned char *buf = lf_slurp(path, &len);
        if (!buf) {
            fprintf(stderr, "%s: cannot read\n", path);
            rc = 1;
        } else {
            LLVMFuzzerTestOneInput(buf, len);
            free(buf);
            ran++;
        }
        free(names[i]);
    }
    free(names);
    printf("ran %zu inputs from %s\n", ran, dir);
    printf("%zu passed, %d failed\n", ran, (int)(n - ran));
    return rc;
}
