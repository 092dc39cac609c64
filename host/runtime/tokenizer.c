/* tokenizer.c: the CLIP byte-level BPE tokenizer (lf_tokenizer.h has the exact rules).
 *
 * Data: id -> token string; a string hash (token -> id); a pair hash ((id a, id b) -> merge rank and
 * the id of the merged token). BPE runs on ids: a pre-token of k UTF-8 bytes starts as k symbols
 * (byte symbol ids, the last one the "</w>" variant) and merges while some adjacent pair has a rank.
 * Text handling works on arrays of code points (uint32) with the generated Unicode tables.
 */
#include "lorafuse/lf_tokenizer.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define ZLIB_CONST /* next_in is a pointer to const */
#include <zlib.h>

#include "host/base/file.h"
#include "host/base/util.h"
#include "tokenizer_unicode.h"

#define MERGES_MAX (49152 - 256 - 2) /* merge lines CLIP uses (after the header line) */

struct lf_tokenizer {
    char **tok;      /* id -> token (NULL for ids absent from a vocab.json) */
    size_t n_tok;
    int32_t *shash;  /* open addressing, id + 1, 0 = empty */
    size_t shcap;
    uint64_t *pkey;  /* (a << 32 | b) + 1, 0 = empty */
    int32_t *prank, *pmerged;
    size_t pcap;
    int32_t byte_id[256], byte_id_w[256];
    int32_t bos, eos;
};

/* ---------------------------------------------------------------------------------------------- */
/* small helpers                                                                                  */

void lf_tokens_free(lf_tokens *t) {
    if (!t) return;
    free(t->ids);
    t->ids = NULL;
    t->n = t->cap = 0;
}

static lf_status tokens_push(lf_tokens *t, int32_t id) {
    if (lf_grow(&t->ids, &t->cap, t->n + 1)) return lf_err(LF_ERR_NOMEM, "tokenizer: out of memory");
    t->ids[t->n++] = id;
    return LF_OK;
}

typedef struct cpbuf {
    uint32_t *v;
    size_t n, cap;
} cpbuf;

static int cp_push(cpbuf *b, uint32_t c) {
    if (lf_grow(&b->v, &b->cap, b->n + 1)) return 0;
    b->v[b->n++] = c;
    return 1;
}

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static int32_t str_lookup(const lf_tokenizer *t, const char *s, size_t n) {
    if (!t->shcap) return -1;
    size_t m = t->shcap - 1;
    for (size_t i = hash_bytes(s, n) & m;; i = (i + 1) & m) {
        int32_t v = t->shash[i];
        if (!v) return -1;
        const char *k = t->tok[v - 1];
        if (strlen(k) == n && memcmp(k, s, n) == 0) return v - 1;
    }
}

/* Build the string hash; a later duplicate wins (as Python's dict(zip(vocab, ids))). */
static lf_status build_str_hash(lf_tokenizer *t) {
    size_t cap = 1;
    while (cap < 2 * t->n_tok + 16) cap <<= 1;
    t->shash = calloc(cap, sizeof *t->shash);
    if (!t->shash) return lf_err(LF_ERR_NOMEM, "tokenizer: out of memory");
    t->shcap = cap;
    for (size_t id = 0; id < t->n_tok; id++) {
        const char *s = t->tok[id];
        if (!s) continue;
        size_t n = strlen(s);
        for (size_t i = hash_bytes(s, n) & (cap - 1);; i = (i + 1) & (cap - 1)) {
            int32_t v = t->shash[i];
            if (!v || strcmp(t->tok[v - 1], s) == 0) {
                t->shash[i] = (int32_t)id + 1;
                break;
            }
        }
    }
    return LF_OK;
}

static size_t pair_slot(const lf_tokenizer *t, uint64_t key) {
    size_t m = t->pcap - 1;
    size_t i = hash_u64(key) & m;
    while (t->pkey[i] && t->pkey[i] != key + 1) i = (i + 1) & m;
    return i;
}

static int pair_find(const lf_tokenizer *t, int32_t a, int32_t b, int32_t *rank, int32_t *merged) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t i = pair_slot(t, key);
    if (!t->pkey[i]) return 0;
    *rank = t->prank[i];
    *merged = t->pmerged[i];
    return 1;
}

/* UTF-8 of one code point into out (>= 4 bytes); returns the length. */
static size_t utf8_put(uint32_t c, char *out) {
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* Decode one code point at s[*i] (strict UTF-8; anything invalid -> U+FFFD, one byte consumed). */
static uint32_t utf8_get(const unsigned char *s, size_t n, size_t *i) {
    unsigned char c = s[*i];
    uint32_t cp;
    size_t len;
    if (c < 0x80) {
        (*i)++;
        return c;
    } else if (c >= 0xC2 && c <= 0xDF) {
        cp = c & 0x1F;
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        cp = c & 0x0F;
        len = 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
        cp = c & 0x07;
        len = 4;
    } else {
        (*i)++;
        return 0xFFFD;
    }
    if (*i + len > n) {
        (*i)++;
        return 0xFFFD;
    }
    for (size_t k = 1; k < len; k++) {
        unsigned char d = s[*i + k];
        if ((d & 0xC0) != 0x80) {
            (*i)++;
            return 0xFFFD;
        }
        cp = cp << 6 | (d & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
        (*i)++;
        return 0xFFFD;
    }
    *i += len;
    return cp;
}

/* bytes_to_unicode (GPT-2/CLIP): printable Latin-1 bytes map to themselves, the other 68 bytes to
 * 256, 257, ... in increasing byte order. order[k] is the byte of vocabulary position k. */
static void byte_map(uint32_t cs[256], int order[256]) {
    int k = 0, extra = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        if (printable) {
            cs[b] = (uint32_t)b;
            order[k++] = b;
        }
    }
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        if (!printable) {
            cs[b] = 256u + (uint32_t)extra++;
            order[k++] = b;
        }
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* loading                                                                                        */

void lf_tokenizer_free(lf_tokenizer *t) {
    if (!t) return;
    if (t->tok)
        for (size_t i = 0; i < t->n_tok; i++) free(t->tok[i]);
    free(t->tok);
    free(t->shash);
    free(t->pkey);
    free(t->prank);
    free(t->pmerged);
    free(t);
}


/* Largest vocab.json / merges file, both as stored and once inflated. */
#define LF_TOK_FILE_MAX ((size_t)1 << 30)

/* Inflate the gzip data in[0..n) into a NUL-terminated buffer: every member, as gzread reads them (bytes
 * after the last member that are not another gzip header are ignored, as gzread does). */
static lf_status gunzip(const char *path, const unsigned char *in, size_t n, char **out, size_t *len) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 16) != Z_OK) return lf_err(LF_ERR_NOMEM, "%s: out of memory (inflate)", path);
    zs.next_in = in;
    zs.avail_in = (uInt)n; /* n <= LF_TOK_FILE_MAX < UINT_MAX */
    char *buf = NULL;
    size_t cap = 0, used = 0;
    lf_status st = LF_OK;
    size_t guess = n < LF_TOK_FILE_MAX / 4 ? 4 * n : LF_TOK_FILE_MAX; /* text compresses about 3:1 */
    if (lf_grow(&buf, &cap, guess + 1)) st = lf_err(LF_ERR_NOMEM, "%s: out of memory", path);
    while (!st) {
        if (used + 1 == cap && lf_grow(&buf, &cap, cap + 1)) {
            st = lf_err(LF_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        size_t room = cap - 1 - used;
        if (room > LF_TOK_FILE_MAX + 1 - used) room = LF_TOK_FILE_MAX + 1 - used; /* one byte over: "too large" */
        zs.next_out = (Bytef *)buf + used;
        zs.avail_out = room > UINT_MAX ? UINT_MAX : (uInt)room;
        int r = inflate(&zs, Z_NO_FLUSH);
        used = (size_t)((char *)zs.next_out - buf);
        if (used > LF_TOK_FILE_MAX) {
            st = lf_err(LF_ERR_FORMAT, "%s: larger than %zu bytes once inflated", path, LF_TOK_FILE_MAX);
        } else if (r == Z_STREAM_END) {
            if (zs.avail_in < 2 || zs.next_in[0] != 0x1f || zs.next_in[1] != 0x8b) break;
            inflateReset(&zs);
        } else if (r == Z_BUF_ERROR && zs.avail_in == 0) {
            st = lf_err(LF_ERR_FORMAT, "%s: inflate failed: unexpected end of file", path);
        } else if (r != Z_OK && r != Z_BUF_ERROR) {
            st = lf_err(r == Z_MEM_ERROR ? LF_ERR_NOMEM : LF_ERR_FORMAT, "%s: inflate failed: %s", path,
                        zs.msg ? zs.msg : "corrupt data");
        }
    }
    inflateEnd(&zs);
    if (st) {
        free(buf);
        return st;
    }
    buf[used] = 0;
    *out = buf;
    *len = used;
    return LF_OK;
}

/* Read a whole file; a gzip-compressed one (by its magic bytes) is inflated. */
static lf_status read_all(const char *path, char **out, size_t *len) {
    char *raw;
    size_t n;
    lf_status st = lf_read_file(path, NULL, LF_TOK_FILE_MAX, &raw, &n);
    if (st) return st;
    if (n < 2 || (unsigned char)raw[0] != 0x1f || (unsigned char)raw[1] != 0x8b) {
        *out = raw;
        *len = n;
        return LF_OK;
    }
    st = gunzip(path, (const unsigned char *)raw, n, out, len);
    free(raw);
    return st;
}

/* Split the merges text into lines [1 .. MERGES_MAX] after strip(); each line "a b".
 * Calls back with (rank, a, alen, b, blen). Returns the number of merges. */
typedef struct merge_line {
    const char *a, *b;
    size_t alen, blen;
} merge_line;

static int is_py_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

static lf_status parse_merges(const char *path, char *text, size_t len, merge_line **out, size_t *n_out) {
    /* Python: text.strip().split("\n")[1:MERGES_MAX + 1], then line.split() */
    size_t b = 0, e = len;
    while (b < e && is_py_space(text[b])) b++;
    while (e > b && is_py_space(text[e - 1])) e--;
    merge_line *m = calloc(MERGES_MAX, sizeof *m);
    if (!m) return lf_err(LF_ERR_NOMEM, "%s: out of memory", path);
    size_t line = 0, n = 0, p = b;
    while (p <= e && n < MERGES_MAX) {
        size_t q = p;
        while (q < e && text[q] != '\n') q++;
        if (line >= 1) {
            /* split the line at whitespace into exactly two parts */
            const char *parts[3];
            size_t plen[3], np = 0, i = p;
            while (i < q) {
                while (i < q && is_py_space(text[i])) i++;
                if (i >= q) break;
                size_t s = i;
                while (i < q && !is_py_space(text[i])) i++;
                if (np < 3) {
                    parts[np] = text + s;
                    plen[np] = i - s;
                }
                np++;
            }
            if (np != 2) {
                free(m);
                return lf_err(LF_ERR_FORMAT, "%s: merges line %zu: expected two symbols, found %zu", path,
                              line + 1, np);
            }
            m[n].a = parts[0];
            m[n].alen = plen[0];
            m[n].b = parts[1];
            m[n].blen = plen[1];
            n++;
        }
        line++;
        if (q >= e) break;
        p = q + 1;
    }
    *out = m;
    *n_out = n;
    return LF_OK;
}

/* Common part: byte symbols, specials and the merge table once tok[] is filled. */
static lf_status finish(lf_tokenizer *t, const char *label, const merge_line *m, size_t nm) {
    lf_status st = build_str_hash(t);
    if (st) return st;
    uint32_t cs[256];
    int order[256];
    byte_map(cs, order);
    for (int b = 0; b < 256; b++) {
        char s[16];
        size_t k = utf8_put(cs[b], s);
        t->byte_id[b] = str_lookup(t, s, k);
        memcpy(s + k, "</w>", 4);
        t->byte_id_w[b] = str_lookup(t, s, k + 4);
        if (t->byte_id[b] < 0 || t->byte_id_w[b] < 0)
            return lf_err(LF_ERR_FORMAT, "%s: vocabulary lacks the byte symbol of byte 0x%02X", label, b);
    }
    t->bos = str_lookup(t, "<|startoftext|>", 15);
    t->eos = str_lookup(t, "<|endoftext|>", 13);
    if (t->bos < 0 || t->eos < 0)
        return lf_err(LF_ERR_FORMAT, "%s: vocabulary lacks <|startoftext|> or <|endoftext|>", label);
    size_t cap = 1;
    while (cap < 2 * nm + 16) cap <<= 1;
    t->pkey = calloc(cap, sizeof *t->pkey);
    t->prank = malloc(cap * sizeof *t->prank);
    t->pmerged = malloc(cap * sizeof *t->pmerged);
    if (!t->pkey || !t->prank || !t->pmerged) return lf_err(LF_ERR_NOMEM, "%s: out of memory", label);
    t->pcap = cap;
    char *cat = NULL;
    size_t catcap = 0;
    for (size_t r = 0; r < nm; r++) {
        int32_t a = str_lookup(t, m[r].a, m[r].alen), b = str_lookup(t, m[r].b, m[r].blen);
        size_t cl = m[r].alen + m[r].blen;
        if (lf_grow(&cat, &catcap, cl + 1)) {
            free(cat);
            return lf_err(LF_ERR_NOMEM, "%s: out of memory", label);
        }
        memcpy(cat, m[r].a, m[r].alen);
        memcpy(cat + m[r].alen, m[r].b, m[r].blen);
        int32_t ab = str_lookup(t, cat, cl);
        if (a < 0 || b < 0 || ab < 0) {
            lf_status e = lf_err(LF_ERR_FORMAT, "%s: merge %zu (\"%.*s %.*s\"): %s not in the vocabulary", label,
                                 r + 1, (int)m[r].alen, m[r].a, (int)m[r].blen, m[r].b,
                                 ab < 0 && a >= 0 && b >= 0 ? "the merged token is" : "a symbol is");
            free(cat);
            return e;
        }
        uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
        size_t i = pair_slot(t, key);
        t->pkey[i] = key + 1; /* a repeated pair keeps the last rank, as dict(zip(merges, ranks)) */
        t->prank[i] = (int32_t)r;
        t->pmerged[i] = ab;
    }
    free(cat);
    return LF_OK;
}

lf_status lf_tokenizer_load_bpe(const char *path, lf_tokenizer **out) {
    *out = NULL;
    char *text;
    size_t len;
    lf_status st = read_all(path, &text, &len);
    if (st) return st;
    merge_line *m = NULL;
    size_t nm = 0;
    lf_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        free(text);
        return lf_err(LF_ERR_NOMEM, "%s: out of memory", path);
    }
    st = parse_merges(path, text, len, &m, &nm);
    if (st) goto fail;
    if (nm != MERGES_MAX) {
        st = lf_err(LF_ERR_FORMAT, "%s: %zu merges, a CLIP BPE file has at least %d", path, nm, MERGES_MAX);
        goto fail;
    }
    t->n_tok = 512 + nm + 2;
    t->tok = calloc(t->n_tok, sizeof *t->tok);
    if (!t->tok) {
        st = lf_err(LF_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    {
        uint32_t cs[256];
        int order[256];
        byte_map(cs, order);
        for (int k = 0; k < 256; k++) {
            char s[16];
            size_t l = utf8_put(cs[order[k]], s);
            t->tok[k] = lf_strndup(s, l);
            memcpy(s + l, "</w>", 4);
            t->tok[256 + k] = lf_strndup(s, l + 4);
            if (!t->tok[k] || !t->tok[256 + k]) {
                st = lf_err(LF_ERR_NOMEM, "%s: out of memory", path);
                goto fail;
            }
        }
        for (size_t r = 0; r < nm; r++) {
            char *s = malloc(m[r].alen + m[r].blen + 1);
            if (!s) {
                st = lf_err(LF_ERR_NOMEM, "%s: out of memory", path);
                goto fail;
            }
            memcpy(s, m[r].a, m[r].alen);
            memcpy(s + m[r].alen, m[r].b, m[r].blen);
            s[m[r].alen + m[r].blen] = 0;
            t->tok[512 + r] = s;
        }
        t->tok[512 + nm] = lf_strndup("<|startoftext|>", 15);
        t->tok[513 + nm] = lf_strndup("<|endoftext|>", 13);
        if (!t->tok[512 + nm] || !t->tok[513 + nm]) {
            st = lf_err(LF_ERR_NOMEM, "%s: out of memory", path);
            goto fail;
        }
    }
    st = finish(t, path, m, nm);
    if (st) goto fail;
    free(m);
    free(text);
    *out = t;
    return LF_OK;
fail:
    free(m);
    free(text);
    lf_tokenizer_free(t);
    return st;
}

lf_status lf_tokenizer_load_files(const char *vocab_json, const char *merges_txt, lf_tokenizer **out) {
    *out = NULL;
    char *vtext = NULL, *mtext = NULL;
    size_t vlen, mlen;
    merge_line *m = NULL;
    size_t nm = 0;
    cJSON *root = NULL;
    lf_tokenizer *t = NULL;
    lf_status st = read_all(vocab_json, &vtext, &vlen);
    if (st) return st;
    st = read_all(merges_txt, &mtext, &mlen);
    if (st) goto fail;
    root = cJSON_ParseWithLength(vtext, vlen);
    if (!cJSON_IsObject(root)) {
        st = lf_err(LF_ERR_FORMAT, "%s: not a JSON object of token -> id", vocab_json);
        goto fail;
    }
    t = calloc(1, sizeof *t);
    if (!t) {
        st = lf_err(LF_ERR_NOMEM, "%s: out of memory", vocab_json);
        goto fail;
    }
    int64_t maxid = -1;
    for (cJSON *e = root->child; e; e = e->next) {
        double d = cJSON_GetNumberValue(e);
        if (!cJSON_IsNumber(e) || d < 0 || d > 10000000 || d != (double)(int64_t)d) {
            st = lf_err(LF_ERR_FORMAT, "%s: token \"%s\": id is not an integer in [0, 1e7]", vocab_json,
                        e->string ? e->string : "?");
            goto fail;
        }
        if ((int64_t)d > maxid) maxid = (int64_t)d;
    }
    t->n_tok = (size_t)(maxid + 1);
    t->tok = calloc(t->n_tok ? t->n_tok : 1, sizeof *t->tok);
    if (!t->tok) {
        st = lf_err(LF_ERR_NOMEM, "%s: out of memory", vocab_json);
        goto fail;
    }
    for (cJSON *e = root->child; e; e = e->next) {
        size_t id = (size_t)cJSON_GetNumberValue(e);
        if (t->tok[id]) {
            st = lf_err(LF_ERR_FORMAT, "%s: id %zu given to both \"%s\" and \"%s\"", vocab_json, id, t->tok[id],
                        e->string);
            goto fail;
        }
        t->tok[id] = lf_strndup(e->string, strlen(e->string));
        if (!t->tok[id]) {
            st = lf_err(LF_ERR_NOMEM, "%s: out of memory", vocab_json);
            goto fail;
        }
    }
    st = parse_merges(merges_txt, mtext, mlen, &m, &nm);
    if (st) goto fail;
    st = finish(t, vocab_json, m, nm);
    if (st) goto fail;
    free(m);
    cJSON_Delete(root);
    free(vtext);
    free(mtext);
    *out = t;
    return LF_OK;
fail:
    free(m);
    cJSON_Delete(root);
    free(vtext);
    free(mtext);
    lf_tokenizer_free(t);
    return st;
}

lf_status lf_tokenizer_load_dir(const char *dir, lf_tokenizer **out) {
    size_t n = strlen(dir) + 32;
    char *v = malloc(n), *m = malloc(n);
    if (!v || !m) {
        free(v);
        free(m);
        return lf_err(LF_ERR_NOMEM, "%s: out of memory", dir);
    }
    snprintf(v, n, "%s/vocab.json", dir);
    snprintf(m, n, "%s/merges.txt", dir);
    lf_status st = lf_tokenizer_load_files(v, m, out);
    free(v);
    free(m);
    return st;
}

lf_status lf_tokenizer_load_default(lf_tokenizer **out) {
    *out = NULL;
    const char *env = getenv("LF_CLIP_BPE");
    if (env && *env) return lf_tokenizer_load_bpe(env, out);
    const char *rel = "models/clip/" LF_CLIP_BPE_FILE;
    if (lf_file_exists(rel)) return lf_tokenizer_load_bpe(rel, out);
#ifdef LF_SOURCE_DIR
    {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", LF_SOURCE_DIR, rel);
        if (lf_file_exists(p)) return lf_tokenizer_load_bpe(p, out);
    }
#endif
    return lf_err(LF_ERR_IO, "CLIP BPE file not found: set LF_CLIP_BPE or install %s (scripts/install-deps.sh, "
                             "or use the model's tokenizer/ folder)", rel);
}

size_t lf_tokenizer_vocab_size(const lf_tokenizer *t) { return t->n_tok; }
int32_t lf_tokenizer_bos(const lf_tokenizer *t) { return t->bos; }
int32_t lf_tokenizer_eos(const lf_tokenizer *t) { return t->eos; }
int32_t lf_tokenizer_id(const lf_tokenizer *t, const char *token) { return str_lookup(t, token, strlen(token)); }
const char *lf_tokenizer_token(const lf_tokenizer *t, int32_t id) {
    return id >= 0 && (size_t)id < t->n_tok ? t->tok[id] : NULL;
}

/* ---------------------------------------------------------------------------------------------- */
/* Unicode                                                                                        */

static uint32_t range_lookup(const lf_uc_range *r, size_t n, uint32_t c) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < r[mid].lo) hi = mid;
        else if (c > r[mid].hi) lo = mid + 1;
        else return r[mid].v;
    }
    return 0;
}

static uint32_t uc_class(uint32_t c) { return range_lookup(lf_uc_class, lf_uc_class_n, c); }
static uint32_t uc_ccc(uint32_t c) { return range_lookup(lf_uc_ccc, lf_uc_ccc_n, c); }

static uint32_t uc_lower1(uint32_t c) {
    if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    size_t lo = 0, hi = lf_uc_lower_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < lf_uc_lower[mid].from) hi = mid;
        else if (c > lf_uc_lower[mid].from) lo = mid + 1;
        else return lf_uc_lower[mid].to;
    }
    return c;
}

static const lf_uc_decomp *uc_decomp(uint32_t c) {
    size_t lo = 0, hi = lf_uc_decomps_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < lf_uc_decomps[mid].a) hi = mid;
        else if (c > lf_uc_decomps[mid].a) lo = mid + 1;
        else return &lf_uc_decomps[mid];
    }
    return NULL;
}

enum { SBASE = 0xAC00, LBASE = 0x1100, VBASE = 0x1161, TBASE = 0x11A7, LCOUNT = 19, VCOUNT = 21, TCOUNT = 28,
       NCOUNT = VCOUNT * TCOUNT, SCOUNT = LCOUNT * NCOUNT };

static uint32_t uc_compose(uint32_t a, uint32_t b) {
    if (a >= LBASE && a < LBASE + LCOUNT && b >= VBASE && b < VBASE + VCOUNT)
        return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
    if (a >= SBASE && a < SBASE + SCOUNT && (a - SBASE) % TCOUNT == 0 && b > TBASE && b < TBASE + TCOUNT)
        return a + (b - TBASE);
    size_t lo = 0, hi = lf_uc_comps_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const lf_uc_decomp *d = &lf_uc_comps[mid];
        if (a < d->a || (a == d->a && b < d->b)) hi = mid;
        else if (a > d->a || b > d->b) lo = mid + 1;
        else return d->c;
    }
    return 0;
}

static int decompose_push(cpbuf *o, uint32_t c, int depth) {
    if (c >= SBASE && c < SBASE + SCOUNT) {
        uint32_t s = c - SBASE;
        if (!cp_push(o, LBASE + s / NCOUNT) || !cp_push(o, VBASE + (s % NCOUNT) / TCOUNT)) return 0;
        if (s % TCOUNT && !cp_push(o, TBASE + s % TCOUNT)) return 0;
        return 1;
    }
    const lf_uc_decomp *d = depth < 8 ? uc_decomp(c) : NULL;
    if (!d) return cp_push(o, c);
    if (!decompose_push(o, d->b, depth + 1)) return 0;
    return d->c ? decompose_push(o, d->c, depth + 1) : 1;
}

/* NFC: canonical decomposition, canonical ordering, canonical composition (UAX #15). */
static int nfc(const uint32_t *in, size_t n, cpbuf *out) {
    cpbuf d = {0};
    for (size_t i = 0; i < n; i++)
        if (!decompose_push(&d, in[i], 0)) {
            free(d.v);
            return 0;
        }
    /* stable insertion sort of each run of non-starters by combining class */
    for (size_t i = 1; i < d.n; i++) {
        uint32_t c = d.v[i], cc = uc_ccc(c);
        if (!cc) continue;
        size_t j = i;
        while (j > 0 && uc_ccc(d.v[j - 1]) > cc) {
            d.v[j] = d.v[j - 1];
            j--;
        }
        d.v[j] = c;
    }
    out->n = 0;
    if (d.n) {
        if (!cp_push(out, d.v[0])) {
            free(d.v);
            return 0;
        }
        size_t starter = 0;
        uint32_t last = uc_ccc(d.v[0]) ? 256 : 0;
        for (size_t i = 1; i < d.n; i++) {
            uint32_t c = d.v[i], cc = uc_ccc(c);
            uint32_t comp = uc_compose(out->v[starter], c);
            if (comp && (last < cc || last == 0)) {
                out->v[starter] = comp;
                continue;
            }
            if (cc == 0) starter = out->n;
            last = cc;
            if (!cp_push(out, c)) {
                free(d.v);
                return 0;
            }
        }
    }
    free(d.v);
    return 1;
}

static int is_cjk(uint32_t cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
           (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) ||
           (cp >= 0x2B820 && cp <= 0x2CEAF) || (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

/* Approximation of Python's final-sigma context (cased / case-ignorable): letters are cased,
 * combining marks and a few apostrophe-like characters are case-ignorable. */
static int case_ignorable(uint32_t c) {
    return uc_ccc(c) != 0 || c == '\'' || c == '.' || c == ':' || c == '^' || c == '`' || c == 0xB7 ||
           c == 0x2019;
}

static int final_sigma(const uint32_t *w, size_t n, size_t i) {
    size_t j = i;
    while (j > 0 && case_ignorable(w[j - 1])) j--;
    if (j == 0 || uc_class(w[j - 1]) != LF_UC_LETTER) return 0;
    j = i + 1;
    while (j < n && case_ignorable(w[j])) j++;
    return j == n || uc_class(w[j]) != LF_UC_LETTER;
}

/* ---------------------------------------------------------------------------------------------- */
/* BPE and encoding                                                                               */

static lf_status bpe_emit(const lf_tokenizer *t, const uint32_t *cp, size_t n, lf_tokens *out) {
    /* pre-token -> UTF-8 bytes -> byte symbol ids */
    size_t nb = 0;
    int32_t stack[256];
    int32_t *sym = stack;
    for (size_t i = 0; i < n; i++) nb += cp[i] < 0x80 ? 1 : cp[i] < 0x800 ? 2 : cp[i] < 0x10000 ? 3 : 4;
    if (nb > 256) {
        sym = malloc(nb * sizeof *sym);
        if (!sym) return lf_err(LF_ERR_NOMEM, "tokenizer: out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char u[4];
        size_t l = utf8_put(cp[i], u);
        for (size_t j = 0; j < l; j++) {
            unsigned char b = (unsigned char)u[j];
            sym[k] = (k + 1 == nb) ? t->byte_id_w[b] : t->byte_id[b];
            k++;
        }
    }
    size_t m = nb;
    while (m > 1) {
        int32_t best = INT32_MAX, ba = -1, bb = -1, bm = -1;
        for (size_t i = 0; i + 1 < m; i++) {
            int32_t r, mg;
            if (pair_find(t, sym[i], sym[i + 1], &r, &mg) && r < best) {
                best = r;
                ba = sym[i];
                bb = sym[i + 1];
                bm = mg;
            }
        }
        if (ba < 0) break;
        size_t w = 0;
        for (size_t i = 0; i < m;) {
            if (i + 1 < m && sym[i] == ba && sym[i + 1] == bb) {
                sym[w++] = bm;
                i += 2;
            } else {
                sym[w++] = sym[i++];
            }
        }
        m = w;
    }
    lf_status st = LF_OK;
    for (size_t i = 0; i < m && !st; i++) st = tokens_push(out, sym[i]);
    if (sym != stack) free(sym);
    return st;
}

/* text[i..] equals the ASCII literal lit, case-insensitively as the pattern's IGNORECASE
 * (the text is lower-case already; U+017F long s folds to 's'). */
static int match_ci(const uint32_t *s, size_t n, size_t i, const char *lit) {
    size_t l = strlen(lit);
    if (i + l > n) return 0;
    for (size_t k = 0; k < l; k++) {
        uint32_t c = s[i + k], want = (unsigned char)lit[k];
        if (c >= 'A' && c <= 'Z') c += 32;
        if (c == 0x17F) c = 's';
        if (c != want) return 0;
    }
    return 1;
}

/* Steps 2-5 of lf_tokenizer.h on one piece without literal special tokens. */
static lf_status encode_piece(const lf_tokenizer *t, const unsigned char *s, size_t n, lf_tokens *out) {
    cpbuf a = {0}, b = {0}, c = {0};
    lf_status st = LF_OK;
    /* clean + CJK spacing */
    for (size_t i = 0; i < n;) {
        uint32_t cp = utf8_get(s, n, &i);
        uint32_t k = uc_class(cp);
        int ok = 1;
        if (k == LF_UC_DROP) continue;
        if (k == LF_UC_SPACE) ok = cp_push(&a, ' ');
        else if (is_cjk(cp)) ok = cp_push(&a, ' ') && cp_push(&a, cp) && cp_push(&a, ' ');
        else ok = cp_push(&a, cp);
        if (!ok) goto nomem;
    }
    if (!nfc(a.v, a.n, &b)) goto nomem;
    /* whitespace split, lower-case each word, join with ' ' */
    for (size_t i = 0; i < b.n;) {
        while (i < b.n && (b.v[i] == ' ' || uc_class(b.v[i]) == LF_UC_SEP)) i++;
        if (i >= b.n) break;
        size_t w0 = i;
        while (i < b.n && b.v[i] != ' ' && uc_class(b.v[i]) != LF_UC_SEP) i++;
        if (c.n && !cp_push(&c, ' ')) goto nomem;
        for (size_t j = w0; j < i; j++) {
            uint32_t cp = b.v[j];
            int ok;
            if (cp == 0x130) ok = cp_push(&c, 'i') && cp_push(&c, 0x307);
            else if (cp == 0x3A3) ok = cp_push(&c, final_sigma(b.v + w0, i - w0, j - w0) ? 0x3C2 : 0x3C3);
            else ok = cp_push(&c, uc_lower1(cp));
            if (!ok) goto nomem;
        }
    }
    /* pre-tokenize and BPE */
    for (size_t i = 0; i < c.n && !st;) {
        uint32_t cp = c.v[i];
        if (cp == ' ') {
            i++;
            continue;
        }
        if (match_ci(c.v, c.n, i, "<|startoftext|>")) {
            st = tokens_push(out, t->bos);
            i += 15;
            continue;
        }
        if (match_ci(c.v, c.n, i, "<|endoftext|>")) {
            st = tokens_push(out, t->eos);
            i += 13;
            continue;
        }
        if (cp == '\'') {
            size_t l = 0;
            if (match_ci(c.v, c.n, i, "'s") || match_ci(c.v, c.n, i, "'t")) l = 2;
            else if (match_ci(c.v, c.n, i, "'re") || match_ci(c.v, c.n, i, "'ve")) l = 3;
            else if (match_ci(c.v, c.n, i, "'m")) l = 2;
            else if (match_ci(c.v, c.n, i, "'ll")) l = 3;
            else if (match_ci(c.v, c.n, i, "'d")) l = 2;
            if (l) {
                st = bpe_emit(t, c.v + i, l, out);
                i += l;
                continue;
            }
        }
        uint32_t k = uc_class(cp);
        size_t j = i + 1;
        if (k == LF_UC_LETTER) {
            while (j < c.n && uc_class(c.v[j]) == LF_UC_LETTER) j++;
        } else if (k != LF_UC_NUMBER) {
            while (j < c.n && c.v[j] != ' ') {
                uint32_t kj = uc_class(c.v[j]);
                if (kj == LF_UC_LETTER || kj == LF_UC_NUMBER) break;
                j++;
            }
        }
        st = bpe_emit(t, c.v + i, j - i, out);
        i = j;
    }
    free(a.v);
    free(b.v);
    free(c.v);
    return st;
nomem:
    free(a.v);
    free(b.v);
    free(c.v);
    return lf_err(LF_ERR_NOMEM, "tokenizer: out of memory");
}

lf_status lf_tokenizer_encode(const lf_tokenizer *t, const char *text, lf_tokens *out) {
    const char *p = text;
    for (;;) {
        const char *s1 = strstr(p, "<|startoftext|>"), *s2 = strstr(p, "<|endoftext|>");
        const char *s = s1 && (!s2 || s1 < s2) ? s1 : s2;
        size_t n = s ? (size_t)(s - p) : strlen(p);
        lf_status st = encode_piece(t, (const unsigned char *)p, n, out);
        if (st) return st;
        if (!s) return LF_OK;
        st = tokens_push(out, s == s1 ? t->bos : t->eos);
        if (st) return st;
        p = s + (s == s1 ? 15 : 13);
    }
}

void lf_tokenizer_window(const lf_tokenizer *t, const int32_t *ids, size_t n, int32_t pad,
                         int32_t out[LF_CLIP_CTX]) {
    size_t k = 0;
    out[k++] = t->bos;
    for (size_t i = 0; i < n && i < LF_CLIP_CHUNK; i++) out[k++] = ids[i];
    out[k++] = t->eos;
    while (k < LF_CLIP_CTX) out[k++] = pad;
}
