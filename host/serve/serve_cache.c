/* serve_cache.c: the server's LRU cache of opened adapter files (lf_step_plan.h lf_adapter_source),
 * bounded by --lora-cache-mb.
 *
 * An entry is one opened file (lf_adapter_open: the file memory-mapped, its tensors grouped into
 * resolved modules), keyed by its path and identity (device, inode, size, mtime): a file changed on
 * disk no longer matches and is opened again, its old entry dropped once no plan holds it. Plans borrow
 * entries (a reference count); entries nobody holds are evicted, least recently used first, while the
 * files' sizes add up to more than the limit (limit 0: nothing is kept). POST /sdapi/v1/refresh-loras
 * drops every entry (lf_srv_cache_clear). All under the cache's own mutex: the worker opens and releases,
 * connection threads clear and read the counters.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "serve_internal.h"

typedef struct {
    char *path;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    lf_adapter *a;
    int refs;
    int stale;                 /* changed on disk or cleared: freed when the last plan releases it */
    uint64_t last_use;
} lf_srv_entry;

struct lf_srv_cache {
    pthread_mutex_t mu;
    lf_srv_entry *e;
    size_t n, cap;
    uint64_t limit, bytes, tick, hits, misses;
};

static void lf_entry_free(lf_srv_cache *c, size_t i) {
    lf_adapter_free(c->e[i].a);
    free(c->e[i].path);
    c->bytes -= (uint64_t)c->e[i].size;
    c->e[i] = c->e[--c->n];
}

/* Free stale entries nobody holds, then the least recently used unheld ones while over the limit. */
static void lf_cache_trim(lf_srv_cache *c) {
    for (size_t i = c->n; i-- > 0;)
        if (c->e[i].stale && !c->e[i].refs) lf_entry_free(c, i);
    while (c->bytes > c->limit) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < c->n; i++)
            if (!c->e[i].refs && (best == SIZE_MAX || c->e[i].last_use < c->e[best].last_use)) best = i;
        if (best == SIZE_MAX) break;
        lf_entry_free(c, best);
    }
}

static lf_status lf_cache_open(void *ctx, const char *path, lf_adapter **out) {
    lf_srv_cache *c = ctx;
    struct stat sb;
    if (stat(path, &sb) != 0) return lf_adapter_open(path, out); /* its own error message */
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n; i++) {
        lf_srv_entry *e = &c->e[i];
        if (e->stale || strcmp(e->path, path)) continue;
        if (e->dev == sb.st_dev && e->ino == sb.st_ino && e->size == sb.st_size &&
            e->mtime.tv_sec == sb.st_mtim.tv_sec && e->mtime.tv_nsec == sb.st_mtim.tv_nsec) {
            e->refs++;
            e->last_use = ++c->tick;
            c->hits++;
            *out = e->a;
            pthread_mutex_unlock(&c->mu);
            return LF_OK;
        }
        e->stale = 1; /* the file changed */
    }
    c->misses++;
    pthread_mutex_unlock(&c->mu);
    lf_adapter *a = NULL;
    lf_status st = lf_adapter_open(path, &a);
    if (st != LF_OK) return st;
    size_t n = strlen(path) + 1;
    char *p = malloc(n);
    pthread_mutex_lock(&c->mu);
    lf_srv_entry *grown = c->n == c->cap ? realloc(c->e, (c->cap ? 2 * c->cap : 16) * sizeof *grown) : c->e;
    if (!p || !grown) {
        pthread_mutex_unlock(&c->mu);
        free(p);
        lf_adapter_free(a);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    if (grown != c->e) {
        c->e = grown;
        c->cap = c->cap ? 2 * c->cap : 16;
    }
    memcpy(p, path, n);
    lf_srv_entry *e = &c->e[c->n++];
    memset(e, 0, sizeof *e);
    e->path = p;
    e->dev = sb.st_dev;
    e->ino = sb.st_ino;
    e->size = sb.st_size;
    e->mtime = sb.st_mtim;
    e->a = a;
    e->refs = 1;
    e->last_use = ++c->tick;
    c->bytes += (uint64_t)sb.st_size;
    lf_cache_trim(c);
    pthread_mutex_unlock(&c->mu);
    *out = a;
    return LF_OK;
}

static void lf_cache_release(void *ctx, lf_adapter *a) {
    lf_srv_cache *c = ctx;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n; i++)
        if (c->e[i].a == a && c->e[i].refs > 0) {
            c->e[i].refs--;
            break;
        }
    lf_cache_trim(c);
    pthread_mutex_unlock(&c->mu);
}

lf_status lf_srv_cache_new(uint64_t limit, lf_srv_cache **out, lf_adapter_source *src) {
    lf_srv_cache *c = calloc(1, sizeof *c);
    if (!c) return lf_err(LF_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&c->mu, NULL);
    c->limit = limit;
    src->open = lf_cache_open;
    src->release = lf_cache_release;
    src->ctx = c;
    *out = c;
    return LF_OK;
}

void lf_srv_cache_clear(lf_srv_cache *c) {
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n; i++) c->e[i].stale = 1;
    lf_cache_trim(c);
    pthread_mutex_unlock(&c->mu);
}

void lf_srv_cache_stats(lf_srv_cache *c, lf_srv_cache_info *info) {
    pthread_mutex_lock(&c->mu);
    info->entries = c->n;
    info->bytes = c->bytes;
    info->limit = c->limit;
    info->hits = c->hits;
    info->misses = c->misses;
    pthread_mutex_unlock(&c->mu);
}

void lf_srv_cache_free(lf_srv_cache *c) {
    if (!c) return;
    while (c->n) lf_entry_free(c, c->n - 1); /* every plan is gone by now */
    free(c->e);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
