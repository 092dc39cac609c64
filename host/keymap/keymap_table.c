/* keymap_table.c: the containers behind lf_keymap (see keymap_internal.h).
 *
 * - A string arena (64 KiB chunks, bump allocation): every spelling and checkpoint key the map owns, so
 *   lf_keymap_free releases them in one sweep.
 * - A growable string buffer used to compose spellings without fixed-size limits.
 * - An open-addressing hash table (string -> uint32): FNV-1a 64-bit hash, linear probing, power-of-two
 *   capacity kept at most half full, so lookups are O(1) expected and the build is O(n) amortised
 *   (spec P8: names are resolved through tables built from the model's own modules).
 */
#include <stdlib.h>
#include <string.h>

#include "keymap_internal.h"

/* ---- arena ------------------------------------------------------------------------------------ */
struct lf_km_chunk {
    lf_km_chunk *next;
    size_t used, cap;
    char data[];
};

#define LF_KM_CHUNK (64u * 1024u)

char *lf_km_arena_strndup(lf_km_arena *a, const char *s, size_t n) {
    lf_km_chunk *c = a->head;
    if (!c || c->cap - c->used < n + 1) {
        size_t cap = n + 1 > LF_KM_CHUNK ? n + 1 : LF_KM_CHUNK;
        c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
    }
    char *p = c->data + c->used;
    memcpy(p, s, n);
    p[n] = '\0';
    c->used += n + 1;
    return p;
}

void lf_km_arena_free(lf_km_arena *a) {
    lf_km_chunk *c = a->head;
    while (c) {
        lf_km_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
}

/* ---- string buffer ---------------------------------------------------------------------------- */
static int lf_km_str_reserve(lf_km_str *s, size_t extra) {
    if (s->oom) return 0;
    if (s->len + extra + 1 <= s->cap) return 1;
    size_t cap = s->cap ? s->cap : 256;
    while (cap < s->len + extra + 1) cap *= 2;
    char *p = realloc(s->p, cap);
    if (!p) {
        s->oom = 1;
        return 0;
    }
    s->p = p;
    s->cap = cap;
    return 1;
}

void lf_km_str_reset(lf_km_str *s) {
    s->len = 0;
    s->oom = 0;
    if (lf_km_str_reserve(s, 0)) s->p[0] = '\0';
}

void lf_km_str_add(lf_km_str *s, const char *x, size_t n) {
    if (!lf_km_str_reserve(s, n)) return;
    memcpy(s->p + s->len, x, n);
    s->len += n;
    s->p[s->len] = '\0';
}

void lf_km_str_adds(lf_km_str *s, const char *x) { lf_km_str_add(s, x, strlen(x)); }

void lf_km_str_add_flat(lf_km_str *s, const char *x, size_t n) {
    if (!lf_km_str_reserve(s, n)) return;
    for (size_t i = 0; i < n; i++) s->p[s->len + i] = x[i] == '.' ? '_' : x[i];
    s->len += n;
    s->p[s->len] = '\0';
}

void lf_km_str_addu(lf_km_str *s, unsigned long v) {
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (!lf_km_str_reserve(s, n)) return;
    for (size_t i = 0; i < n; i++) s->p[s->len + i] = tmp[n - 1 - i];
    s->len += n;
    s->p[s->len] = '\0';
}

void lf_km_str_free(lf_km_str *s) {
    free(s->p);
    s->p = NULL;
    s->len = s->cap = 0;
    s->oom = 0;
}

/* ---- hash table ------------------------------------------------------------------------------- */
uint64_t lf_km_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a offset basis */
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 1099511628211ull; /* FNV prime */
    }
    return h;
}

lf_km_slot *lf_km_table_find(const lf_km_table *t, const char *key) {
    if (!t->cap) return NULL;
    uint64_t h = lf_km_hash(key);
    size_t mask = t->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        lf_km_slot *s = &t->slots[i];
        if (!s->key) return NULL;
        if (s->hash == h && strcmp(s->key, key) == 0) return s;
    }
}

static void lf_km_table_place(lf_km_slot *slots, size_t cap, const char *key, uint64_t h, uint32_t val) {
    size_t mask = cap - 1;
    size_t i = (size_t)h & mask;
    while (slots[i].key) i = (i + 1) & mask;
    slots[i].key = key;
    slots[i].hash = h;
    slots[i].val = val;
}

lf_status lf_km_table_insert(lf_km_table *t, const char *key, uint32_t val) {
    if ((t->count + 1) * 2 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1024;
        lf_km_slot *slots = calloc(cap, sizeof *slots);
        if (!slots) return lf_err(LF_ERR_NOMEM, "keymap: out of memory growing the name table to %zu slots", cap);
        for (size_t i = 0; i < t->cap; i++)
            if (t->slots[i].key) lf_km_table_place(slots, cap, t->slots[i].key, t->slots[i].hash, t->slots[i].val);
        free(t->slots);
        t->slots = slots;
        t->cap = cap;
    }
    lf_km_table_place(t->slots, t->cap, key, lf_km_hash(key), val);
    t->count++;
    return LF_OK;
}

void lf_km_table_free(lf_km_table *t) {
    free(t->slots);
    t->slots = NULL;
    t->cap = t->count = 0;
}
