/* keymap_table.c: the containers behind lf_keymap (see keymap_internal.h).
 *
 * - A string arena (64 KiB chunks, bump allocation): every spelling and checkpoint key the map owns, so
 *   lf_keymap_free releases them in one sweep.
 * - The kohya flattening append on lf_sbuf (spellings are composed in lf_sbuf, without fixed-size limits).
 * - An open-addressing hash table (string -> uint32): FNV-1a 64-bit hash, linear probing, power-of-two
 *   capacity kept at most half full, so lookups are O(1) expected and the build is O(n) amortised
 *   (docs/semantics.md P8: names are resolved through tables built from the model's own modules).
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

/* ---- flattening append ------------------------------------------------------------------------ */
void lf_km_sb_flat(lf_sbuf *b, const char *x, size_t n) {
    size_t at = b->n;
    lf_sb_put(b, x, n);
    if (b->oom) return;
    for (size_t i = at; i < b->n; i++)
        if (b->s[i] == '.') b->s[i] = '_';
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
