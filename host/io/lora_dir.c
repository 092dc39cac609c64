/* lora_dir.c: resolve `<lora:NAME>` in a LoRA directory and collect trigger words (lf_lora_dir.h).
 *
 * Rules (docs/prompt-tags.md "Names"): NAME is a relative path (with or without the
 * extension), else a file stem, else an `ss_output_name` alias; the first of these levels that finds
 * anything decides; more than one file there is "ambiguous" (candidates listed), none at all is
 * "unknown" (the closest names by case-insensitive Levenshtein distance listed, at most 5).
 * Trigger words (`--auto-trigger`, and `lorafuse inspect`): ss_tag_frequency folder names without
 * "N_", sidecar activation text and trained words, appended once each unless the prompt has them.
 *
 * Data shapes: files[] = sorted relative paths ("sub/name.safetensors"), alias[] parallel (NULL until
 * read, "" when the file has none).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cJSON.h>

#include "host/base/text.h"
#include "host/base/util.h"
#include "lorafuse/lf_lora_dir.h"
#include "lorafuse/lf_safetensors.h"

#define LF_EXT ".safetensors"
#define LF_EXT_LEN (sizeof LF_EXT - 1)

struct lf_lora_dir {
    char *root;
    char **files;
    char **alias;
    size_t n, cap;
    int aliases_read;
};

static lf_status lf_dir_add(lf_lora_dir *d, const char *rel) {
    if (lf_grow(&d->files, &d->cap, d->n + 1)) return lf_err(LF_ERR_NOMEM, "out of memory");
    if ((d->files[d->n] = strdup(rel)) == NULL) return lf_err(LF_ERR_NOMEM, "out of memory");
    d->n++;
    return LF_OK;
}

static lf_status lf_dir_scan(lf_lora_dir *d, const char *rel, int depth) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s%s%s", d->root, *rel ? "/" : "", rel) >= (int)sizeof path) return LF_OK;
    DIR *dir = opendir(path);
    if (!dir) return LF_OK;
    lf_status st = LF_OK;
    struct dirent *e;
    while (st == LF_OK && (e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char sub[4096], full[8192];
        if (snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name) >= (int)sizeof sub) continue;
        snprintf(full, sizeof full, "%s/%s", d->root, sub);
        struct stat sb;
        if (stat(full, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode) && depth < 8) st = lf_dir_scan(d, sub, depth + 1);
        else if (S_ISREG(sb.st_mode) && lf_has_suffix(e->d_name, LF_EXT) && strlen(e->d_name) > LF_EXT_LEN)
            st = lf_dir_add(d, sub);
    }
    closedir(dir);
    return st;
}

static int lf_cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void lf_lora_dir_free(lf_lora_dir *d) {
    if (!d) return;
    for (size_t i = 0; i < d->n; i++) {
        free(d->files[i]);
        if (d->alias) free(d->alias[i]);
    }
    free(d->files);
    free(d->alias);
    free(d->root);
    free(d);
}

lf_status lf_lora_dir_open(const char *dir, lf_lora_dir **out) {
    *out = NULL;
    lf_lora_dir *d = calloc(1, sizeof *d);
    if (!d || !(d->root = strdup(dir ? dir : LF_LORA_DIR_DEFAULT))) {
        free(d);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    size_t rl = strlen(d->root);
    while (rl > 1 && d->root[rl - 1] == '/') d->root[--rl] = '\0';
    lf_status st = lf_dir_scan(d, "", 0);
    if (st != LF_OK) {
        lf_lora_dir_free(d);
        return st;
    }
    if (d->n) qsort(d->files, d->n, sizeof *d->files, lf_cmp_str);
    *out = d;
    return LF_OK;
}

size_t lf_lora_dir_count(const lf_lora_dir *d) {
    return d ? d->n : 0;
}

const char *lf_lora_dir_at(const lf_lora_dir *d, size_t i) {
    return d && i < d->n ? d->files[i] : NULL;
}

/* stem of a relative path: basename without the extension, into buf */
static const char *lf_stem(const char *rel, char *buf, size_t n) {
    const char *b = strrchr(rel, '/');
    b = b ? b + 1 : rel;
    size_t l = strlen(b) - LF_EXT_LEN;
    if (l >= n) l = n - 1;
    memcpy(buf, b, l);
    buf[l] = '\0';
    return buf;
}

static void lf_read_aliases(lf_lora_dir *d) {
    if (d->aliases_read) return;
    d->aliases_read = 1;
    d->alias = calloc(d->n ? d->n : 1, sizeof *d->alias);
    if (!d->alias) return;
    for (size_t i = 0; i < d->n; i++) {
        char full[8192];
        snprintf(full, sizeof full, "%s/%s", d->root, d->files[i]);
        lf_st_file *f = NULL;
        const char *a = NULL;
        if (lf_st_open(full, &f) == LF_OK) a = lf_st_meta(f, "ss_output_name");
        d->alias[i] = strdup(a ? a : "");
        lf_st_close(f);
    }
    lf_err_clear();
}

/* Case-insensitive Levenshtein distance (strings clipped to 255 bytes). */
static int lf_edit_distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    if (n > 255) n = 255;
    if (m > 255) m = 255;
    int row[256];
    for (size_t j = 0; j <= m; j++) row[j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= m; j++) {
            int up = row[j];
            int ca = a[i - 1] >= 'A' && a[i - 1] <= 'Z' ? a[i - 1] + 32 : a[i - 1];
            int cb = b[j - 1] >= 'A' && b[j - 1] <= 'Z' ? b[j - 1] + 32 : b[j - 1];
            int best = diag + (ca != cb);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[m];
}

static lf_status lf_full_path(const lf_lora_dir *d, size_t i, char **path) {
    size_t n = strlen(d->root) + strlen(d->files[i]) + 2;
    if ((*path = malloc(n)) == NULL) return lf_err(LF_ERR_NOMEM, "out of memory");
    snprintf(*path, n, "%s/%s", d->root, d->files[i]);
    return LF_OK;
}

static void lf_append(char *buf, size_t n, const char *s) {
    size_t o = strlen(buf), l = strlen(s);
    if (o + 1 >= n) return;
    if (l > n - o - 1) l = n - o - 1;
    memcpy(buf + o, s, l);
    buf[o + l] = '\0';
}

lf_status lf_lora_dir_resolve(lf_lora_dir *d, const char *name, char **path) {
    *path = NULL;
    size_t *hit = calloc(d->n ? d->n : 1, sizeof *hit), nh = 0;
    if (!hit) return lf_err(LF_ERR_NOMEM, "out of memory");
    char stem[1024], qn[LF_ESC_PART];
    const char *level = "", *qname = lf_esc(qn, sizeof qn, name, strlen(name)); /* for messages */
    /* 1. relative path, with or without the extension */
    for (size_t i = 0; i < d->n; i++) {
        size_t nl = strlen(name), fl = strlen(d->files[i]);
        if (!strcmp(d->files[i], name) || (fl == nl + LF_EXT_LEN && !strncmp(d->files[i], name, nl) &&
                                           !strcmp(d->files[i] + nl, LF_EXT)))
            hit[nh++] = i;
    }
    /* 2. file stem (or file name with extension) */
    if (!nh) {
        level = "file names";
        for (size_t i = 0; i < d->n; i++) {
            const char *b = strrchr(d->files[i], '/');
            b = b ? b + 1 : d->files[i];
            if (!strcmp(lf_stem(d->files[i], stem, sizeof stem), name) || !strcmp(b, name)) hit[nh++] = i;
        }
    }
    /* 3. ss_output_name alias */
    if (!nh) {
        level = "ss_output_name aliases";
        lf_read_aliases(d);
        for (size_t i = 0; d->alias && i < d->n; i++)
            if (d->alias[i] && *d->alias[i] && !strcmp(d->alias[i], name)) hit[nh++] = i;
    }
    lf_status st;
    if (nh == 1) {
        st = lf_full_path(d, hit[0], path);
    } else if (nh > 1) {
        char list[2048] = "";
        for (size_t k = 0; k < nh && k < 12; k++) {
            lf_append(list, sizeof list, k ? ", " : "");
            lf_append(list, sizeof list, d->files[hit[k]]);
        }
        if (nh > 12) lf_append(list, sizeof list, ", ...");
        st = lf_err(LF_ERR_ARG, "'%s' is ambiguous in %s: %zu files match by %s: %s (write the path relative to "
                    "the directory)", qname, d->root, nh, level, list);
    } else if (!d->n) {
        st = lf_err(LF_ERR_ARG, "no LoRA named '%s': %s holds no .safetensors files (set --lora-dir)", qname, d->root);
    } else {
        /* closest names: per file the best of path, stem and alias */
        int *dist = malloc(d->n * sizeof *dist);
        if (!dist) {
            free(hit);
            return lf_err(LF_ERR_NOMEM, "out of memory");
        }
        for (size_t i = 0; i < d->n; i++) {
            char rel[4096];
            snprintf(rel, sizeof rel, "%.*s", (int)(strlen(d->files[i]) - LF_EXT_LEN), d->files[i]);
            int a = lf_edit_distance(name, rel), b = lf_edit_distance(name, lf_stem(d->files[i], stem, sizeof stem));
            dist[i] = a < b ? a : b;
            if (d->alias && d->alias[i] && *d->alias[i]) {
                int c = lf_edit_distance(name, d->alias[i]);
                if (c < dist[i]) dist[i] = c;
            }
            hit[i] = i;
        }
        /* selection of the 5 best (stable: ties keep path order) */
        size_t show = d->n < 5 ? d->n : 5;
        for (size_t k = 0; k < show; k++) {
            size_t best = k;
            for (size_t j = k + 1; j < d->n; j++)
                if (dist[hit[j]] < dist[hit[best]] || (dist[hit[j]] == dist[hit[best]] && hit[j] < hit[best])) best = j;
            size_t tmp = hit[k];
            hit[k] = hit[best];
            hit[best] = tmp;
        }
        char list[2048] = "";
        for (size_t k = 0; k < show; k++) {
            size_t i = hit[k];
            char rel[4096];
            snprintf(rel, sizeof rel, "%.*s", (int)(strlen(d->files[i]) - LF_EXT_LEN), d->files[i]);
            lf_append(list, sizeof list, k ? ", " : "");
            lf_append(list, sizeof list, rel);
            if (d->alias && d->alias[i] && *d->alias[i] && lf_edit_distance(name, d->alias[i]) == dist[i] &&
                strcmp(d->alias[i], lf_stem(d->files[i], stem, sizeof stem))) {
                lf_append(list, sizeof list, " (alias ");
                lf_append(list, sizeof list, d->alias[i]);
                lf_append(list, sizeof list, ")");
            }
        }
        free(dist);
        st = lf_err(LF_ERR_ARG, "no LoRA named '%s' in %s (%zu files); closest: %s", qname, d->root, d->n, list);
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
    const char *dot = strrchr(path, '.');
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
    size_t len = strlen(prompt), cap = 0;
    char *s = NULL;
    if (lf_grow(&s, &cap, len + 1)) return lf_err(LF_ERR_NOMEM, "out of memory");
    memcpy(s, prompt, len + 1);
    for (size_t i = 0; i < n; i++) {
        char **w = NULL;
        size_t nw = 0;
        lf_status st = lf_lora_triggers(paths[i], &w, &nw);
        if (st != LF_OK) {
            free(s);
            return st;
        }
        for (size_t k = 0; k < nw; k++) {
            if (lf_ci_contains(s, w[k])) continue;
            size_t wl = strlen(w[k]);
            if (lf_grow(&s, &cap, len + wl + 3)) {
                lf_lora_words_free(w, nw);
                free(s);
                return lf_err(LF_ERR_NOMEM, "out of memory");
            }
            if (len) {
                memcpy(s + len, ", ", 2);
                len += 2;
            }
            memcpy(s + len, w[k], wl + 1);
            len += wl;
        }
        lf_lora_words_free(w, nw);
    }
    *out = s;
    return LF_OK;
}
