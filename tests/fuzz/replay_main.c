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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int lf_cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static unsigned char *lf_slurp(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    size_t cap = 4096, len = 0;
    unsigned char *b = malloc(cap);
    for (;;) {
        if (!b) break;
        if (len == cap) {
            unsigned char *nb = realloc(b, cap * 2);
            if (!nb) { free(b); b = NULL; break; }
            b = nb;
            cap *= 2;
        }
        size_t k = fread(b + len, 1, cap - len, fp);
        len += k;
        if (k == 0) break;
    }
    int err = ferror(fp);
    fclose(fp);
    if (!b || err) { free(b); return NULL; }
    /* exact-size copy */
    unsigned char *e = malloc(len ? len : 1);
    if (e && len) memcpy(e, b, len);
    free(b);
    *n = len;
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
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) { fprintf(stderr, "out of memory\n"); return 1; }
            names = nn;
        }
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
