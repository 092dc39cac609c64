/* hash_cache.c: the persistent SHA-256 cache of lf_hash_cache.h: a cJSON tree in memory, looked up by
 * (kind, realpath) and checked against the file's size and mtime; saved through host/base/file.h's
 * temporary file + rename, so that concurrent runs and crashes leave either the old or the new cache.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cJSON.h>

#include "host/base/file.h"
#include "host/base/strbuf.h"
#include "host/base/text.h"
#include "host/base/util.h"
#include "lorafuse/lf_hash.h"
#include "lorafuse/lf_hash_cache.h"

/* A cache file larger than this is not read (set aside as corrupt): ~200 bytes per entry. */
#define LF_HASH_CACHE_MAX ((size_t)64 << 20)

static const char *const lf_hash_kind_key[2] = {"sha256", "addnet"};

struct lf_hash_cache {
    char *path;                /* NULL: memory only */
    cJSON *root;
    int dirty;
    lf_sbuf warn;
    pthread_mutex_t mu;
};

char *lf_hash_cache_default_path(void) {
    const char *e = getenv("LF_HASH_CACHE"), *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
    lf_sbuf b = {0};
    if (e && *e) lf_sb_str(&b, e);
    else if (x && x[0] == '/') lf_sb_printf(&b, "%s/lorafuse/hashes.json", x);
    else if (h && *h) lf_sb_printf(&b, "%s/.cache/lorafuse/hashes.json", h);
    else return NULL;
    if (b.oom) {
        lf_sb_free(&b);
        return NULL;
    }
    return b.s;
}

/* One warning, path and reason escaped (they may quote what a user or a file wrote). */
static void lf_hash_warn(lf_hash_cache *c, const char *fmt, const char *path, const char *why) {
    char q[LF_ESC_PART], w[2 * LF_ESC_PART];
    if (c->warn.n) lf_sb_str(&c->warn, "\n");
    lf_sb_printf(&c->warn, fmt, lf_esc(q, sizeof q, path, strlen(path)), lf_esc(w, sizeof w, why, strlen(why)));
}

/* The cache's tree, or a fresh one; a file that exists but does not read as a cache gives a warning. */
static cJSON *lf_hash_cache_load(lf_hash_cache *c) {
    cJSON *root = NULL;
    if (c->path && lf_file_exists(c->path)) {
        char *text = NULL;
        size_t len = 0;
        if (lf_read_file(c->path, "the hash cache", LF_HASH_CACHE_MAX, &text, &len) != LF_OK) {
            lf_hash_warn(c, "hash cache %s cannot be read (%s); hashing without it", c->path, lf_last_error());
            free(c->path); /* never overwrite what could not be read: it may be a FIFO or someone else's */
            c->path = NULL;
        } else {
            root = cJSON_ParseWithLength(text, len);
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "version");
            if (!cJSON_IsObject(root) || !cJSON_IsNumber(v) || v->valuedouble != 1) {
                lf_hash_warn(c, "hash cache %s is %s; rebuilding it", c->path,
                             !root ? "not valid JSON" : "not a version 1 lorafuse hash cache");
                cJSON_Delete(root);
                root = NULL;
                c->dirty = 1;
            }
        }
        free(text);
    }
    if (!root && (root = cJSON_CreateObject()) != NULL) cJSON_AddNumberToObject(root, "version", 1);
    for (int k = 0; root && k < 2; k++) {
        cJSON *t = cJSON_GetObjectItemCaseSensitive(root, lf_hash_kind_key[k]);
        if (t && !cJSON_IsObject(t)) cJSON_DeleteItemFromObjectCaseSensitive(root, lf_hash_kind_key[k]), t = NULL;
        if (!t && !cJSON_AddObjectToObject(root, lf_hash_kind_key[k])) {
            cJSON_Delete(root);
            return NULL;
        }
    }
    return root;
}

lf_status lf_hash_cache_open(const char *path, lf_hash_cache **out) {
    *out = NULL;
    lf_hash_cache *c = calloc(1, sizeof *c);
    if (!c) return lf_err(LF_ERR_NOMEM, "out of memory");
    c->path = path ? (*path ? strdup(path) : NULL) : lf_hash_cache_default_path();
    pthread_mutex_init(&c->mu, NULL);
    c->root = lf_hash_cache_load(c);
    if (!c->root || c->warn.oom) {
        lf_hash_cache_close(c);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    *out = c;
    return LF_OK;
}

const char *lf_hash_cache_warning(const lf_hash_cache *c) { return c && c->warn.n ? c->warn.s : NULL; }

lf_status lf_hash_cache_get(lf_hash_cache *c, const char *path, lf_hash_kind kind, char hex[65], int *cached) {
    if (cached) *cached = 0;
    struct stat sb;
    char *abs = realpath(path, NULL);
    if (!abs || stat(abs, &sb) != 0) {
        free(abs);
        return lf_err(LF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    char mtime[48];
    snprintf(mtime, sizeof mtime, "%lld.%09ld", (long long)sb.st_mtim.tv_sec, (long)sb.st_mtim.tv_nsec);
    pthread_mutex_lock(&c->mu);
    cJSON *tab = cJSON_GetObjectItemCaseSensitive(c->root, lf_hash_kind_key[kind]);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(tab, abs);
    const cJSON *es = cJSON_GetObjectItemCaseSensitive(e, "size"), *em = cJSON_GetObjectItemCaseSensitive(e, "mtime"),
                *eh = cJSON_GetObjectItemCaseSensitive(e, "sha256");
    int hit = cJSON_IsNumber(es) && es->valuedouble == (double)sb.st_size && cJSON_IsString(em) &&
              !strcmp(em->valuestring, mtime) && cJSON_IsString(eh) && strlen(eh->valuestring) == 64 &&
              strspn(eh->valuestring, "0123456789abcdef") == 64;
    if (hit) memcpy(hex, eh->valuestring, 65);
    pthread_mutex_unlock(&c->mu);
    if (hit) {
        free(abs);
        if (cached) *cached = 1;
        return LF_OK;
    }
    /* hashed outside the lock: another thread may hash another file meanwhile */
    uint64_t from = 0;
    lf_status st = kind == LF_HASH_ADDNET ? lf_a1111_lora_offset(path, &from) : LF_OK;
    if (st == LF_OK) st = lf_sha256_file(path, from, hex);
    if (st != LF_OK) {
        free(abs);
        return st;
    }
    pthread_mutex_lock(&c->mu);
    cJSON *n = cJSON_CreateObject();
    if (n && cJSON_AddNumberToObject(n, "size", (double)sb.st_size) && cJSON_AddStringToObject(n, "mtime", mtime) &&
        cJSON_AddStringToObject(n, "sha256", hex)) {
        cJSON_DeleteItemFromObjectCaseSensitive(tab, abs);
        cJSON_AddItemToObject(tab, abs, n);
        c->dirty = 1;
    } else {
        cJSON_Delete(n); /* out of memory: the hash is right, only not kept */
    }
    pthread_mutex_unlock(&c->mu);
    free(abs);
    return LF_OK;
}

/* mkdir -p of the folder of path (an existing folder is fine). */
static int lf_hash_mkdirs(const char *path) {
    char *d = strdup(path);
    if (!d) return 0;
    char *slash = strrchr(d, '/');
    if (slash && slash != d) {
        *slash = '\0';
        for (char *p = d + 1; *p; p++)
            if (*p == '/') {
                *p = '\0';
                (void)mkdir(d, 0777);
                *p = '/';
            }
        (void)mkdir(d, 0777);
    }
    free(d);
    return 1;
}

void lf_hash_cache_save(lf_hash_cache *c) {
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    if (c->path && c->dirty) {
        char *text = cJSON_Print(c->root);
        lf_file_out *f = NULL;
        lf_file_out_opts o = {1, NULL, 0};
        lf_status st = text ? LF_OK : lf_err(LF_ERR_NOMEM, "out of memory");
        if (st == LF_OK) lf_hash_mkdirs(c->path);
        if (st == LF_OK) st = lf_file_out_open(c->path, &o, &f);
        if (st == LF_OK && (st = lf_file_out_write(f, text, strlen(text))) != LF_OK) lf_file_out_abort(f);
        else if (st == LF_OK) st = lf_file_out_commit(f);
        if (st != LF_OK) lf_hash_warn(c, "hash cache %s not saved: %s", c->path, lf_last_error());
        else c->dirty = 0;
        free(text);
    }
    pthread_mutex_unlock(&c->mu);
}

void lf_hash_cache_close(lf_hash_cache *c) {
    if (!c) return;
    if (c->root) lf_hash_cache_save(c);
    cJSON_Delete(c->root);
    free(c->path);
    lf_sb_free(&c->warn);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
