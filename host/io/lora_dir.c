/* lora_dir.c: resolve `<lora:NAME>` in a LoRA directory and collect trigger words (lf_lora_dir.h).
 *
 * Rules (docs/prompt-tags.md "Names"): NAME is a relative path (with or without the
 * extension), else a file stem, else an `ss_output_name` alias; the first of these levels that finds
 * anything decides; more than one file there is "ambiguous" (candidates listed), none at all is
 * "unknown" (the closest names by case-insensitive Levenshtein distance listed, at most 5).
 * Trigger words (`--auto-trigger`, and `lorafuse inspect`): ss_tag_frequency folder names without
 * "N_", sidecar activation text and trained words, appended once each unless the prompt has them.
 *
 * Scan (lf_lora_dir.h): depth-first over the real tree in sorted name order, folders reached through
 * symbolic links queued and scanned after it; a hash set of (st_dev, st_ino) makes each real folder
 * scanned once; every entry read counts against LF_LORA_DIR_MAX_ENTRIES. A link leads out when its
 * realpath is not under the root's realpath; whatever lies below such a link is out too.
 * Closest names: the edit distance stops early once a row is over the current 5th best, so a large
 * directory costs about one comparison per file.
 *
 * Data shapes: f[] = files sorted by relative path ("sub/name.safetensors"), each with its alias (NULL
 * until read, "" when the file has none) and whether it lies behind a link out.
 */
#include <dirent.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cJSON.h>

#include "host/base/strbuf.h"
#include "host/base/text.h"
#include "host/base/util.h"
#include "lorafuse/lf_lora_dir.h"
#include "lorafuse/lf_safetensors.h"

#define LF_EXT ".safetensors"
#define LF_EXT_LEN (sizeof LF_EXT - 1)

typedef struct {
    char *rel;    /* path relative to the root */
    char *alias;  /* ss_output_name; NULL until read, "" when none */
    int out;      /* reached through a symbolic link that leads out of the root */
} lf_ld_file;

typedef struct {
    char *rel;
    int depth, out;
} lf_ld_pending;

typedef struct {
    dev_t dev;
    ino_t ino;
    int used;
} lf_ld_seen;

struct lf_lora_dir {
    char *root;             /* as given, without trailing '/' */
    char *real;             /* its realpath, or NULL when missing */
    lf_ld_file *f;
    size_t n, cap;
    int aliases_read;
    int confine;            /* lf_lora_dir_opts.confine */
    size_t entries;         /* directory entries read */
    int overflow;           /* more than LF_LORA_DIR_MAX_ENTRIES: every resolve fails */
    size_t links_out;       /* directory links out of the root not followed (confine) */
    lf_ld_seen *seen;       /* real directories scanned, hashed by (dev, ino) */
    size_t seen_cap, n_seen;
    lf_ld_pending *q;       /* directories reached through symbolic links, scanned after the real tree */
    size_t nq, capq, q0;
};

static lf_status lf_nomem(void) { return lf_err(LF_ERR_NOMEM, "out of memory"); }

static char *lf_join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (!s) return NULL;
    memcpy(s, a, la);
    s[la] = '/';
    memcpy(s + la + 1, b, lb + 1);
    if (!la) memmove(s, s + 1, lb + 1); /* "" + b = b */
    return s;
}

/* 1 if (dev, ino) was not seen yet (and is now); 0 if seen; -1 out of memory. */
static int lf_seen_add(lf_lora_dir *d, dev_t dev, ino_t ino) {
    if (2 * (d->n_seen + 1) > d->seen_cap) {
        size_t cap = d->seen_cap ? 2 * d->seen_cap : 64;
        lf_ld_seen *t = calloc(cap, sizeof *t);
        if (!t) return -1;
        for (size_t i = 0; i < d->seen_cap; i++) {
            if (!d->seen[i].used) continue;
            size_t h = ((uint64_t)d->seen[i].ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)d->seen[i].dev) & (cap - 1);
            while (t[h].used) h = (h + 1) & (cap - 1);
            t[h] = d->seen[i];
        }
        free(d->seen);
        d->seen = t;
        d->seen_cap = cap;
    }
    size_t h = ((uint64_t)ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)dev) & (d->seen_cap - 1);
    for (; d->seen[h].used; h = (h + 1) & (d->seen_cap - 1))
        if (d->seen[h].dev == dev && d->seen[h].ino == ino) return 0;
    d->seen[h].dev = dev;
    d->seen[h].ino = ino;
    d->seen[h].used = 1;
    d->n_seen++;
    return 1;
}

/* Whether the symbolic link at full ends inside the root (its realpath is the root or below it). */
static int lf_link_inside(const lf_lora_dir *d, const char *full) {
    char *r = realpath(full, NULL);
    if (!r) return 0;
    size_t l = strlen(d->real);
    int in = !strcmp(d->real, "/") || (!strncmp(r, d->real, l) && (r[l] == '/' || !r[l]));
    free(r);
    return in;
}

static int lf_cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static lf_status lf_dir_add(lf_lora_dir *d, char *rel, int out) {
    if (lf_grow(&d->f, &d->cap, d->n + 1)) return lf_nomem();
    d->f[d->n].rel = rel;
    d->f[d->n].alias = NULL;
    d->f[d->n].out = out;
    d->n++;
    return LF_OK;
}

static lf_status lf_dir_defer(lf_lora_dir *d, char *rel, int depth, int out) {
    if (lf_grow(&d->q, &d->capq, d->nq + 1)) return lf_nomem();
    d->q[d->nq].rel = rel;
    d->q[d->nq].depth = depth;
    d->q[d->nq].out = out;
    d->nq++;
    return LF_OK;
}

/* The names of one directory (no "." / ".."), sorted so that the scan does not depend on readdir's
 * order; every name counts against LF_LORA_DIR_MAX_ENTRIES. NULL list when it cannot be read. */
static lf_status lf_dir_names(lf_lora_dir *d, const char *path, char ***names, size_t *n) {
    *names = NULL;
    *n = 0;
    DIR *dir = opendir(path);
    if (!dir) return LF_OK;
    struct stat sb;
    int fresh = fstat(dirfd(dir), &sb) == 0 ? lf_seen_add(d, sb.st_dev, sb.st_ino) : 0;
    if (fresh < 0) {
        closedir(dir);
        return lf_nomem();
    }
    char **v = NULL;
    size_t k = 0, cap = 0;
    lf_status st = LF_OK;
    struct dirent *e;
    while (fresh && (e = readdir(dir)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (++d->entries > LF_LORA_DIR_MAX_ENTRIES) {
            d->overflow = 1;
            break;
        }
        char *c = strdup(e->d_name);
        if (!c || lf_grow(&v, &cap, k + 1)) {
            free(c);
            st = lf_nomem();
            break;
        }
        v[k++] = c;
    }
    closedir(dir);
    if (k > 1) qsort(v, k, sizeof *v, lf_cmp_str);
    *names = v;
    *n = k;
    return st;
}

/* Scan root/rel (depth: its level below the root; out: reached through a link out of the root). Real
 * subdirectories are scanned at once, linked ones queued (scanned after the real tree, so a directory
 * reachable both ways is listed under its real path); every real directory is scanned once. */
static lf_status lf_dir_scan(lf_lora_dir *d, const char *rel, int depth, int out) {
    char *path = *rel ? lf_join(d->root, rel) : strdup(d->root);
    if (!path) return lf_nomem();
    char **names = NULL;
    size_t nn = 0;
    lf_status st = lf_dir_names(d, path, &names, &nn);
    for (size_t i = 0; i < nn && st == LF_OK && !d->overflow; i++) {
        const char *nm = names[i];
        if (nm[0] == '.') continue; /* hidden, as A1111 lists them (off by default) */
        char *sub = lf_join(rel, nm), *full = sub ? lf_join(d->root, sub) : NULL;
        if (!full) {
            free(sub);
            st = lf_nomem();
            break;
        }
        struct stat lsb, sb;
        int keep = 0;
        /* stat follows a link; for anything else lstat already said what it is */
        if (strlen(sub) < LF_LORA_DIR_MAX_PATH && lstat(full, &lsb) == 0 &&
            (!S_ISLNK(lsb.st_mode) ? (sb = lsb, 1) : stat(full, &sb) == 0)) {
            int link = S_ISLNK(lsb.st_mode), o = out || (link && !lf_link_inside(d, full));
            if (S_ISDIR(sb.st_mode) && depth < LF_LORA_DIR_MAX_DEPTH) {
                if (link && o && d->confine) d->links_out++;
                else if (link) st = lf_dir_defer(d, sub, depth + 1, o), keep = st == LF_OK;
                else st = lf_dir_scan(d, sub, depth + 1, o);
            } else if (S_ISREG(sb.st_mode) && lf_has_suffix(nm, LF_EXT) && strlen(nm) > LF_EXT_LEN) {
                st = lf_dir_add(d, sub, o);
                keep = st == LF_OK;
            }
        }
        if (!keep) free(sub);
        free(full);
    }
    for (size_t i = 0; i < nn; i++) free(names[i]);
    free(names);
    free(path);
    return st;
}

void lf_lora_dir_free(lf_lora_dir *d) {
    if (!d) return;
    for (size_t i = 0; i < d->n; i++) {
        free(d->f[i].rel);
        free(d->f[i].alias);
    }
    for (size_t i = d->q0; i < d->nq; i++) free(d->q[i].rel);
    free(d->q);
    free(d->f);
    free(d->seen);
    free(d->real);
    free(d->root);
    free(d);
}

static int lf_cmp_file(const void *a, const void *b) {
    return strcmp(((const lf_ld_file *)a)->rel, ((const lf_ld_file *)b)->rel);
}

lf_status lf_lora_dir_scan(const char *dir, const lf_lora_dir_opts *opts, lf_lora_dir **out) {
    *out = NULL;
    lf_lora_dir *d = calloc(1, sizeof *d);
    if (!d || !(d->root = strdup(dir ? dir : LF_LORA_DIR_DEFAULT))) {
        free(d);
        return lf_nomem();
    }
    d->confine = opts && opts->confine;
    size_t rl = strlen(d->root);
    while (rl > 1 && d->root[rl - 1] == '/') d->root[--rl] = '\0';
    d->real = realpath(d->root, NULL);
    lf_status st = LF_OK;
    if (d->real) st = lf_dir_scan(d, "", 0, 0);
    while (st == LF_OK && d->q0 < d->nq && !d->overflow) {
        lf_ld_pending p = d->q[d->q0++];
        st = lf_dir_scan(d, p.rel, p.depth, p.out);
        free(p.rel);
    }
    free(d->seen); /* scan state */
    d->seen = NULL;
    d->seen_cap = d->n_seen = 0;
    if (st != LF_OK) {
        lf_lora_dir_free(d);
        return st;
    }
    if (d->n) qsort(d->f, d->n, sizeof *d->f, lf_cmp_file);
    *out = d;
    return LF_OK;
}

lf_status lf_lora_dir_open(const char *dir, lf_lora_dir **out) {
    return lf_lora_dir_scan(dir, NULL, out);
}

size_t lf_lora_dir_count(const lf_lora_dir *d) {
    return d ? d->n : 0;
}

const char *lf_lora_dir_at(const lf_lora_dir *d, size_t i) {
    return d && i < d->n ? d->f[i].rel : NULL;
}

/* stem of a relative path: basename without the extension, into buf */
static const char *lf_stem(const char *rel, char *buf, size_t n) {
    const char *b = lf_basename(rel);
    size_t l = strlen(b) - LF_EXT_LEN;
    if (l >= n) l = n - 1;
    memcpy(buf, b, l);
    buf[l] = '\0';
    return buf;
}

/* ss_output_name of every file, read once; a confined directory does not open files behind links out. */
static void lf_read_aliases(lf_lora_dir *d) {
    if (d->aliases_read) return;
    d->aliases_read = 1;
    for (size_t i = 0; i < d->n; i++) {
        const char *a = NULL;
        lf_st_file *f = NULL;
        char *full = d->f[i].out && d->confine ? NULL : lf_join(d->root, d->f[i].rel);
        if (full && lf_st_open(full, &f) == LF_OK) a = lf_st_meta(f, "ss_output_name");
        d->f[i].alias = strdup(a ? a : "");
        lf_st_close(f);
        free(full);
    }
    lf_err_clear();
}

static const char *lf_alias(const lf_lora_dir *d, size_t i) {
    return d->f[i].alias && *d->f[i].alias ? d->f[i].alias : NULL;
}

/* Case-insensitive Levenshtein distance (strings clipped to 255 bytes); limit + 1 as soon as every
 * entry of a row is over limit (the distance can only grow), so far names cost little. */
static int lf_edit_distance(const char *a, const char *b, int limit) {
    size_t n = strlen(a), m = strlen(b);
    if (n > 255) n = 255;
    if (m > 255) m = 255;
    int row[256];
    for (size_t j = 0; j <= m; j++) row[j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        int diag = row[0], lo;
        row[0] = lo = (int)i;
        for (size_t j = 1; j <= m; j++) {
            int up = row[j];
            int ca = a[i - 1] >= 'A' && a[i - 1] <= 'Z' ? a[i - 1] + 32 : a[i - 1];
            int cb = b[j - 1] >= 'A' && b[j - 1] <= 'Z' ? b[j - 1] + 32 : b[j - 1];
            int best = diag + (ca != cb);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            if (best < lo) lo = best;
            diag = up;
        }
        if (lo > limit) return limit + 1;
    }
    return row[m];
}

/* The distance of name to file i: the best of its relative path without extension, its stem and its
 * alias (each over limit: limit + 1). */
static int lf_file_distance(const lf_lora_dir *d, size_t i, const char *name, int limit) {
    char rel[LF_LORA_DIR_MAX_PATH], stem[1024];
    snprintf(rel, sizeof rel, "%.*s", (int)(strlen(d->f[i].rel) - LF_EXT_LEN), d->f[i].rel);
    int a = lf_edit_distance(name, rel, limit);
    if (a < limit) limit = a;
    int b = lf_edit_distance(name, lf_stem(d->f[i].rel, stem, sizeof stem), limit);
    if (b < a) a = b;
    if (a < limit) limit = a;
    if (lf_alias(d, i)) {
        int c = lf_edit_distance(name, lf_alias(d, i), limit);
        if (c < a) a = c;
    }
    return a;
}

static lf_status lf_full_path(const lf_lora_dir *d, size_t i, char **path) {
    if ((*path = lf_join(d->root, d->f[i].rel)) == NULL) return lf_nomem();
    return LF_OK;
}

/* A name as a list shows it: escaped for the terminal, at most LF_LORA_DIR_SHOWN_BYTES bytes of it (cut
 * before a UTF-8 continuation byte), then "...". */
static void lf_sb_name(lf_sbuf *b, const char *s) {
    size_t l = strlen(s);
    if (l <= LF_LORA_DIR_SHOWN_BYTES) {
        lf_sb_escape(b, s, l);
        return;
    }
    size_t k = LF_LORA_DIR_SHOWN_BYTES;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    lf_sb_escape(b, s, k);
    lf_sb_str(b, "...");
}

lf_status lf_lora_dir_resolve(lf_lora_dir *d, const char *name, char **path) {
    *path = NULL;
    char stem[1024], qn[LF_ESC_PART];
    const char *level = "", *qname = lf_esc(qn, sizeof qn, name, strlen(name)); /* for messages */
    if (d->overflow)
        return lf_err(LF_ERR_ARG, "no LoRA named '%s' looked up: %s holds more than %d entries (files and folders, "
                      "the limit of a LoRA directory scan); set --lora-dir to a smaller folder", qname, d->root,
                      LF_LORA_DIR_MAX_ENTRIES);
    size_t *hit = calloc(d->n ? d->n : 1, sizeof *hit), nh = 0;
    if (!hit) return lf_nomem();
    /* 1. relative path, with or without the extension */
    for (size_t i = 0; i < d->n; i++) {
        size_t nl = strlen(name), fl = strlen(d->f[i].rel);
        if (!strcmp(d->f[i].rel, name) || (fl == nl + LF_EXT_LEN && !strncmp(d->f[i].rel, name, nl) &&
                                           !strcmp(d->f[i].rel + nl, LF_EXT)))
            hit[nh++] = i;
    }
    /* 2. file stem (or file name with extension) */
    if (!nh) {
        level = "file names";
        for (size_t i = 0; i < d->n; i++) {
            const char *b = lf_basename(d->f[i].rel);
            if (!strcmp(lf_stem(d->f[i].rel, stem, sizeof stem), name) || !strcmp(b, name)) hit[nh++] = i;
        }
    }
    /* 3. ss_output_name alias */
    if (!nh) {
        level = "ss_output_name aliases";
        lf_read_aliases(d);
        for (size_t i = 0; i < d->n; i++)
            if (lf_alias(d, i) && !strcmp(lf_alias(d, i), name)) hit[nh++] = i;
    }
    char links[160] = "";
    if (d->links_out)
        snprintf(links, sizeof links, " (%zu folder link%s leading out of the directory not followed: "
                 "--allow-symlinks-out)", d->links_out, d->links_out == 1 ? "" : "s");
    lf_status st;
    if (nh == 1 && d->f[hit[0]].out && d->confine) {
        char qrel[LF_ESC_PART];
        st = lf_err(LF_ERR_ARG, "'%s' is %s in %s, a symbolic link leading out of the LoRA directory: refused "
                    "(--allow-symlinks-out follows such links)", qname,
                    lf_esc(qrel, sizeof qrel, d->f[hit[0]].rel, strlen(d->f[hit[0]].rel)), d->root);
    } else if (nh == 1) {
        st = lf_full_path(d, hit[0], path);
    } else if (nh > 1) {
        lf_sbuf list = {0};
        for (size_t k = 0; k < nh && k < LF_LORA_DIR_SHOW_AMBIGUOUS; k++) {
            lf_sb_str(&list, k ? ", " : "");
            lf_sb_name(&list, d->f[hit[k]].rel);
        }
        if (nh > LF_LORA_DIR_SHOW_AMBIGUOUS) lf_sb_str(&list, ", ...");
        st = list.oom ? lf_nomem()
                      : lf_err(LF_ERR_ARG, "'%s' is ambiguous in %s: %zu files match by %s: %s (write the path "
                               "relative to the directory)", qname, d->root, nh, level, list.s);
        lf_sb_free(&list);
    } else if (!d->n) {
        st = lf_err(LF_ERR_ARG, "no LoRA named '%s': %s holds no .safetensors files (set --lora-dir)%s", qname, d->root,
                    links);
    } else {
        /* closest names: per file the best of path, stem and alias; the LF_LORA_DIR_SHOW_CLOSEST best by
         * (distance, path order), a later file entering only when strictly closer than the last kept */
        size_t best[LF_LORA_DIR_SHOW_CLOSEST], nb = 0;
        int bd[LF_LORA_DIR_SHOW_CLOSEST];
        for (size_t i = 0; i < d->n; i++) {
            int limit = nb == LF_LORA_DIR_SHOW_CLOSEST ? bd[nb - 1] - 1 : INT_MAX - 1;
            if (limit < 0) break;
            int di = lf_file_distance(d, i, name, limit);
            if (di > limit) continue;
            size_t k = nb < LF_LORA_DIR_SHOW_CLOSEST ? nb++ : nb - 1;
            while (k > 0 && bd[k - 1] > di) {
                best[k] = best[k - 1];
                bd[k] = bd[k - 1];
                k--;
            }
            best[k] = i;
            bd[k] = di;
        }
        lf_sbuf list = {0};
        for (size_t k = 0; k < nb; k++) {
            size_t i = best[k];
            char rel[LF_LORA_DIR_MAX_PATH];
            snprintf(rel, sizeof rel, "%.*s", (int)(strlen(d->f[i].rel) - LF_EXT_LEN), d->f[i].rel);
            lf_sb_str(&list, k ? ", " : "");
            lf_sb_name(&list, rel);
            if (lf_alias(d, i) && lf_edit_distance(name, lf_alias(d, i), INT_MAX - 1) == bd[k] &&
                strcmp(lf_alias(d, i), lf_stem(d->f[i].rel, stem, sizeof stem))) {
                lf_sb_str(&list, " (alias ");
                lf_sb_name(&list, lf_alias(d, i));
                lf_sb_str(&list, ")");
            }
        }
        st = list.oom ? lf_nomem()
                      : lf_err(LF_ERR_ARG, "no LoRA named '%s' in %s (%zu file%s); closest: %s%s", qname, d->root, d->n,
                               d->n == 1 ? "" : "s", list.s ? list.s : "", links);
        lf_sb_free(&list);
    }
    free(hit);
    return st;
}

/* ---- trigger words ---------------------------------------------------------------------------- */

void lf_lora_words_free(char **words, size_t n) {
    for (size_t i = 0; words && i < n; i++) free(words[i]);
    free(words);
}

/* words[n++] = a copy of w */
static lf_status lf_words_add(char ***words, size_t *n, size_t *cap, const char *w) {
    char *c = strdup(w);
    if (!c || lf_grow(words, cap, *n + 1)) {
        free(c);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    (*words)[(*n)++] = c;
    return LF_OK;
}

/* kohya's ss_tag_frequency is {"<repeats>_<folder>": {tag: count, ...}, ...}: the folder names. */
static lf_status lf_words_from_tags(const char *tag_frequency, char ***words, size_t *n, size_t *cap) {
    cJSON *tf = tag_frequency ? cJSON_Parse(tag_frequency) : NULL, *folder;
    lf_status st = LF_OK;
    if (cJSON_IsObject(tf)) {
        cJSON_ArrayForEach(folder, tf) {
            const char *f = folder->string, *us = strchr(f, '_');
            int numeric = us && us > f;
            for (const char *c = f; numeric && c < us; c++) numeric = *c >= '0' && *c <= '9';
            const char *w = numeric ? us + 1 : f;
            if ((st = lf_words_add(words, n, cap, w)) != LF_OK) break;
        }
    }
    cJSON_Delete(tf);
    return st;
}

/* A1111 / SD.Next sidecar "STEM.json" and CivitAI helper "STEM.civitai.info" (STEM: path without its
 * extension): "activation text" and "trainedWords". */
static lf_status lf_words_from_sidecars(const char *path, char ***words, size_t *n, size_t *cap) {
    char side[4096];
    const char *dot = strrchr(lf_basename(path), '.'); /* the file's extension, not a folder's dot */
    size_t stem = dot ? (size_t)(dot - path) : strlen(path);
    static const char *const suffixes[] = {".json", ".civitai.info"};
    lf_status st = LF_OK;
    for (size_t k = 0; k < 2 && st == LF_OK; k++) {
        if (stem + strlen(suffixes[k]) + 1 > sizeof side) break;
        memcpy(side, path, stem);
        strcpy(side + stem, suffixes[k]);
        char *text = NULL;
        if (lf_read_file(side, "sidecar", 1 << 20, &text, NULL) != LF_OK) continue; /* no sidecar: no words */
        cJSON *j = cJSON_Parse(text);
        free(text);
        const cJSON *act = cJSON_GetObjectItemCaseSensitive(j, "activation text");
        const cJSON *tw = cJSON_GetObjectItemCaseSensitive(j, "trainedWords"), *w;
        if (cJSON_IsString(act) && *act->valuestring)
            st = lf_words_add(words, n, cap, act->valuestring);
        if (cJSON_IsArray(tw))
            cJSON_ArrayForEach(w, tw) {
                if (st != LF_OK) break;
                if (cJSON_IsString(w)) st = lf_words_add(words, n, cap, w->valuestring);
            }
        cJSON_Delete(j);
    }
    return st;
}

lf_status lf_lora_trigger_words(const char *tag_frequency, const char *path, char ***words, size_t *n) {
    *words = NULL;
    *n = 0;
    char **v = NULL;
    size_t k = 0, cap = 0;
    lf_status st = lf_words_from_tags(tag_frequency, &v, &k, &cap);
    if (st == LF_OK) st = lf_words_from_sidecars(path, &v, &k, &cap);
    if (st != LF_OK) {
        lf_lora_words_free(v, k);
        return st;
    }
    *words = v;
    *n = k;
    return LF_OK;
}

lf_status lf_lora_triggers(const char *path, char ***words, size_t *n) {
    *words = NULL;
    *n = 0;
    lf_st_file *f = NULL;
    lf_status st = lf_st_open(path, &f);
    if (st != LF_OK) return st;
    char **v = NULL;
    size_t k = 0;
    st = lf_lora_trigger_words(lf_st_meta(f, "ss_tag_frequency"), path, &v, &k);
    lf_st_close(f);
    if (st != LF_OK) return st;
    size_t kept = 0; /* empty words are kept for inspect, dropped here */
    for (size_t i = 0; i < k; i++) {
        if (*v[i]) v[kept++] = v[i];
        else free(v[i]);
    }
    *words = v;
    *n = kept;
    return LF_OK;
}

static int lf_ci_contains(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    if (!n) return 1;
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i]) {
            int a = hay[i] >= 'A' && hay[i] <= 'Z' ? hay[i] + 32 : hay[i];
            int b = needle[i] >= 'A' && needle[i] <= 'Z' ? needle[i] + 32 : needle[i];
            if (a != b) break;
            i++;
        }
        if (i == n) return 1;
    }
    return 0;
}

lf_status lf_lora_append_triggers(const char *prompt, const char *const *paths, size_t n, char **out) {
    *out = NULL;
    lf_sbuf b = {0};
    lf_sb_str(&b, prompt);
    for (size_t i = 0; i < n; i++) {
        char **w = NULL;
        size_t nw = 0;
        lf_status st = lf_lora_triggers(paths[i], &w, &nw);
        if (st != LF_OK) {
            lf_sb_free(&b);
            return st;
        }
        for (size_t k = 0; k < nw && !b.oom; k++) {
            if (lf_ci_contains(b.s, w[k])) continue;
            if (b.n) lf_sb_str(&b, ", ");
            lf_sb_str(&b, w[k]);
        }
        lf_lora_words_free(w, nw);
    }
    if (b.oom) {
        lf_sb_free(&b);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    *out = b.s;
    return LF_OK;
}
