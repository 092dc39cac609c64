/* safetensors.c: strict safetensors reader (mmap + validate-before-touch) and atomic writer.
 *
 * Reader: a pickle checkpoint (zip or raw pickle), a GGUF file or a diffusers folder is named as such,
 * never parsed (a pickle is never unpickled). lf_st_parse() checks the raw header bytes (length, UTF-8, control bytes, "\u0000"), parses
 * the JSON with cJSON, validates every entry (docs/safetensors.md), then the layout of the byte buffer
 * (sorted by offsets: contiguous from 0, no gaps or overlaps, ends exactly at EOF). Each rule has its
 * own message naming the file and, where it applies, the tensor. Tensors are kept in ascending-offset
 * order; a name-sorted pointer index serves lf_st_find() and the duplicate check. All strings of a
 * parsed file live in one allocation. Tensor data is never dereferenced here (it may be unaligned).
 * Writer: tensors in insertion order with contiguous offsets, "__metadata__" first, header padded with
 * spaces so that the data starts 8-aligned; commit goes through the output helper of host/base/file.h
 * ("<path>.tmp.XXXXXX", fsync, rename; non-regular destinations and the inputs refused).
 */
#include "lorafuse/lf_safetensors.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/base/file.h"
#include "host/base/strbuf.h"
#include "host/base/util.h"

#define LF_ST_MAX_TENSORS 1000000u
#define LF_ST_MAX_META 1000000u
/* Bound on JSON values in a header (cJSON spends ~64 bytes on each): what LF_ST_MAX_TENSORS entries of
 * rank LF_MAX_DIMS and LF_ST_MAX_META metadata strings need at most. */
#define LF_ST_MAX_VALUES (16u * LF_ST_MAX_TENSORS + LF_ST_MAX_META)
/* Longest name quoted in a message (names can be megabytes long). */
#define LF_ST_NAME_FMT "%.200s"

struct lf_st_file {
    const char *label;             /* in strings */
    const unsigned char *buf;      /* whole image */
    size_t size;
    void *map;                     /* non-NULL when lf_st_open mapped the file */
    size_t map_len;
    lf_st_tensor *tensors;         /* ascending offsets */
    size_t ntensors;
    const lf_st_tensor **by_name;  /* ascending strcmp order */
    lf_st_kv *meta;                /* file order */
    size_t nmeta;
    char *strings;                 /* label, names, metadata keys and values */
};

/* ---- reader helpers ------------------------------------------------------------------------- */

static const char *lf_json_kind(const cJSON *v) {
    if (!v) return "missing";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    return "an invalid value";
}

/* Length of the valid UTF-8 sequence at s[0..n) (1..4), or 0 if it is not valid (overlong forms,
 * surrogates and code points above U+10FFFF are invalid). */
static size_t lf_utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) { len = 3; lo = 0xA0; }
    else if (c >= 0xE1 && c <= 0xEC) len = 3;
    else if (c == 0xED) { len = 3; hi = 0x9F; }
    else if (c >= 0xEE && c <= 0xEF) len = 3;
    else if (c == 0xF0) { len = 4; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) { len = 4; hi = 0x8F; }
    else return 0;
    if (n < len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return len;
}

/* 0 if s[0..n) is valid UTF-8, else 1 and the offset of the first bad byte. */
static int lf_utf8_check(const unsigned char *s, size_t n, size_t *bad) {
    size_t i = 0;
    while (i < n) {
        size_t k = lf_utf8_seq(s + i, n - i);
        if (!k) { *bad = i; return 1; }
        i += k;
    }
    return 0;
}

static int lf_json_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* A JSON number that must be an exact non-negative integer below 2^53. 0 ok, 1 not a number,
 * 2 not a valid value (message in why). */
static int lf_json_u53(const cJSON *v, uint64_t *out, const char **why) {
    if (!cJSON_IsNumber(v)) return 1;
    double d = v->valuedouble;
    if (!isfinite(d)) { *why = "is not finite"; return 2; }
    if (d < 0 || signbit(d)) { *why = "is negative"; return 2; }
    if (d != floor(d)) { *why = "is not an integer"; return 2; }
    if (d >= 9007199254740992.0) { *why = "is 2^53 or more (not exactly representable)"; return 2; }
    *out = (uint64_t)d;
    return 0;
}

static int lf_cmp_offsets(const void *a, const void *b) {
    const lf_st_tensor *x = (const lf_st_tensor *)a, *y = (const lf_st_tensor *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1; /* zero-size first at a shared offset */
    return strcmp(x->name, y->name);
}

static int lf_cmp_names(const void *a, const void *b) {
    const lf_st_tensor *x = *(const lf_st_tensor *const *)a, *y = *(const lf_st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static int lf_cmp_kv(const void *a, const void *b) {
    const lf_st_kv *x = *(const lf_st_kv *const *)a, *y = *(const lf_st_kv *const *)b;
    return strcmp(x->key, y->key);
}

static char *lf_arena_put(char **at, const char *s) {
    size_t n = strlen(s) + 1;
    char *dst = *at;
    memcpy(dst, s, n);
    *at += n;
    return dst;
}

static const char *lf_shape_text(const lf_st_tensor *t, char *buf, size_t n) {
    lf_view v = lf_st_view(t);
    return lf_shape_str(&v, buf, n);
}

/* Validate one tensor entry and fill t (name already set). */
static lf_status lf_st_entry(const char *L, const cJSON *e, lf_st_tensor *t) {
    const char *N = t->name;
    if (!cJSON_IsObject(e))
        return lf_err(LF_ERR_FORMAT, "%s: tensor \"" LF_ST_NAME_FMT "\": entry is %s, expected an object", L,
                      N, lf_json_kind(e));
    const cJSON *dt = NULL, *sh = NULL, *off = NULL;
    for (const cJSON *c = e->child; c; c = c->next) {
        const cJSON **slot = NULL;
        if (strcmp(c->string, "dtype") == 0) slot = &dt;
        else if (strcmp(c->string, "shape") == 0) slot = &sh;
        else if (strcmp(c->string, "data_offsets") == 0) slot = &off;
        else continue; /* unknown keys are ignored, as by the reference reader */
        if (*slot)
            return lf_err(LF_ERR_FORMAT, "%s: tensor \"" LF_ST_NAME_FMT "\": duplicate key \"%s\" in its entry",
                          L, N, c->string);
        *slot = c;
    }
    /* dtype */
    if (!dt) return lf_err(LF_ERR_FORMAT, "%s: tensor \"" LF_ST_NAME_FMT "\": dtype is missing", L, N);
    if (!cJSON_IsString(dt))
        return lf_err(LF_ERR_FORMAT, "%s: tensor \"" LF_ST_NAME_FMT "\": dtype is %s, expected a string", L, N,
                      lf_json_kind(dt));
    t->dtype = lf_dtype_from_name(dt->valuestring);
    if (t->dtype == LF_DTYPE_INVALID)
        return lf_err(LF_ERR_DTYPE, "%s: tensor \"" LF_ST_NAME_FMT "\": unknown dtype \"%.64s\"", L, N,
                      dt->valuestring);
    /* shape */
    if (!sh) return lf_err(LF_ERR_FORMAT, "%s: tensor \"" LF_ST_NAME_FMT "\": shape is missing", L, N);
    if (!cJSON_IsArray(sh))
        return lf_err(LF_ERR_FORMAT, "%s: tensor \"" LF_ST_NAME_FMT "\": shape is %s, expected an array", L, N,
                      lf_json_kind(sh));
    int rank = 0;
    for (const cJSON *c = sh->child; c; c = c->next) {
        if (rank == LF_MAX_DIMS) {
            int total = cJSON_GetArraySize(sh);
            return lf_err(LF_ERR_FORMAT, "%s: tensor \"" LF_ST_NAME_FMT "\": rank %d exceeds the maximum of %d",
                          L, N, total, LF_MAX_DIMS);
        }
        uint64_t d = 0;
        const char *why = "";
        int r = lf_json_u53(c, &d, &why);
        if (r == 1)
            return lf_err(LF_ERR_FORMAT,
                          "%s: tensor \"" LF_ST_NAME_FMT "\": shape[%d] is %s, expected a non-negative integer", L,
                          N, rank, lf_json_kind(c));
        if (r == 2)
            return lf_err(LF_ERR_FORMAT, "%s: tensor \"" LF_ST_NAME_FMT "\": shape[%d] = %.17g %s", L, N, rank,
                          c->valuedouble, why);
        t->shape[rank++] = (int64_t)d;
    }
    t->ndim = rank;
    /* data_offsets */
    if (!off) return lf_err(LF_ERR_FORMAT, "%s: tensor \"" LF_ST_NAME_FMT "\": data_offsets is missing", L, N);
    if (!cJSON_IsArray(off))
        return lf_err(LF_ERR_FORMAT, "%s: tensor \"" LF_ST_NAME_FMT "\": data_offsets is %s, expected an array",
                      L, N, lf_json_kind(off));
    int noff = cJSON_GetArraySize(off);
    if (noff != 2)
        return lf_err(LF_ERR_FORMAT,
                      "%s: tensor \"" LF_ST_NAME_FMT "\": data_offsets has %d elements, expected 2 [BEGIN, END]", L,
                      N, noff);
    uint64_t be[2];
    int k = 0;
    for (const cJSON *c = off->child; c; c = c->next, k++) {
        const char *why = "";
        int r = lf_json_u53(c, &be[k], &why);
        if (r == 1)
            return lf_err(LF_ERR_FORMAT,
                          "%s: tensor \"" LF_ST_NAME_FMT "\": data_offsets[%d] is %s, expected a non-negative integer",
                          L, N, k, lf_json_kind(c));
        if (r == 2)
            return lf_err(LF_ERR_FORMAT, "%s: tensor \"" LF_ST_NAME_FMT "\": data_offsets[%d] = %.17g %s", L, N,
                          k, c->valuedouble, why);
    }
    t->begin = be[0];
    t->end = be[1];
    /* sizes */
    uint64_t numel = 1;
    for (int i = 0; i < rank; i++) {
        uint64_t d = (uint64_t)t->shape[i];
        if (d != 0 && numel > UINT64_MAX / d) {
            char sbuf[256];
            return lf_err(LF_ERR_FORMAT, "%s: tensor \"" LF_ST_NAME_FMT "\": element count of shape %s overflows",
                          L, N, lf_shape_text(t, sbuf, sizeof sbuf));
        }
        numel *= d;
    }
    uint64_t bits = lf_dtype_bits(t->dtype);
    if (numel > UINT64_MAX / bits) {
        char sbuf[256];
        return lf_err(LF_ERR_FORMAT, "%s: tensor \"" LF_ST_NAME_FMT "\": size in bits of shape %s of %s overflows",
                      L, N, lf_shape_text(t, sbuf, sizeof sbuf), lf_dtype_name(t->dtype));
    }
    bits *= numel;
    if (bits % 8 != 0)
        return lf_err(LF_ERR_FORMAT,
                      "%s: tensor \"" LF_ST_NAME_FMT "\": %llu elements of %s are %llu bits, not a whole number of "
                      "bytes",
                      L, N, (unsigned long long)numel, lf_dtype_name(t->dtype), (unsigned long long)bits);
    if (t->end < t->begin)
        return lf_err(LF_ERR_FORMAT, "%s: tensor \"" LF_ST_NAME_FMT "\": data_offsets [%llu, %llu] end before begin",
                      L, N, (unsigned long long)t->begin, (unsigned long long)t->end);
    if (t->end - t->begin != bits / 8) {
        char sbuf[256];
        return lf_err(LF_ERR_FORMAT,
                      "%s: tensor \"" LF_ST_NAME_FMT "\": data_offsets [%llu, %llu] span %llu bytes, expected %llu for "
                      "%s shape %s",
                      L, N, (unsigned long long)t->begin, (unsigned long long)t->end,
                      (unsigned long long)(t->end - t->begin), (unsigned long long)(bits / 8),
                      lf_dtype_name(t->dtype), lf_shape_text(t, sbuf, sizeof sbuf));
    }
    return LF_OK;
}

/* Validate "__metadata__" (string -> string) and copy it. */
static lf_status lf_st_metadata(const char *L, const cJSON *m, lf_st_file *f, char **arena) {
    if (!cJSON_IsObject(m))
        return lf_err(LF_ERR_FORMAT, "%s: __metadata__ is %s, expected an object of strings", L, lf_json_kind(m));
    for (const cJSON *c = m->child; c; c = c->next) {
        if (!cJSON_IsString(c))
            return lf_err(LF_ERR_FORMAT, "%s: __metadata__ value of key \"" LF_ST_NAME_FMT "\" is %s, expected a string",
                          L, c->string, lf_json_kind(c));
        lf_st_kv *kv = &f->meta[f->nmeta++];
        kv->key = lf_arena_put(arena, c->string);
        kv->value = lf_arena_put(arena, c->valuestring);
    }
    if (f->nmeta > 1) {
        const lf_st_kv **idx = malloc(f->nmeta * sizeof *idx);
        if (!idx) return lf_err(LF_ERR_NOMEM, "%s: out of memory indexing metadata", L);
        for (size_t i = 0; i < f->nmeta; i++) idx[i] = &f->meta[i];
        qsort(idx, f->nmeta, sizeof *idx, lf_cmp_kv);
        for (size_t i = 1; i < f->nmeta; i++) {
            if (strcmp(idx[i - 1]->key, idx[i]->key) == 0) {
                lf_status st = lf_err(LF_ERR_FORMAT, "%s: duplicate __metadata__ key \"" LF_ST_NAME_FMT "\"", L,
                                      idx[i]->key);
                free(idx);
                return st;
            }
        }
        free(idx);
    }
    return LF_OK;
}

/* Everything after the raw-byte checks: JSON, entries, layout. Fills f; on failure f is partial. */
static lf_status lf_st_header(const char *L, const char *hdr, size_t n, size_t buflen, lf_st_file *f) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, n, &end, 0);
    if (!root) {
        size_t at = end && end >= hdr && end <= hdr + n ? (size_t)(end - hdr) : 0;
        return lf_err(LF_ERR_FORMAT, "%s: header is not valid JSON (parse error at header byte %zu of %zu)", L, at,
                      n);
    }
    lf_status st = LF_OK;
    if (!cJSON_IsObject(root)) {
        st = lf_err(LF_ERR_FORMAT, "%s: header is %s, expected a JSON object", L, lf_json_kind(root));
        goto done;
    }
    if (hdr[0] != '{') { /* cJSON skips a BOM and leading spaces; the format requires '{' first */
        st = lf_err(LF_ERR_FORMAT, "%s: header must begin with '{', found byte 0x%02x", L, (unsigned char)hdr[0]);
        goto done;
    }
    for (size_t i = (size_t)(end - hdr); i < n; i++) {
        if (!lf_json_space((unsigned char)hdr[i])) {
            st = lf_err(LF_ERR_FORMAT, "%s: unexpected bytes after the JSON object at header byte %zu (only space "
                        "padding may follow)", L, i);
            goto done;
        }
    }

    /* Pass 1: count entries and string bytes. */
    size_t ntens = 0, nmeta = 0, bytes = strlen(L) + 1;
    const cJSON *meta = NULL;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0) {
            if (meta) {
                st = lf_err(LF_ERR_FORMAT, "%s: duplicate __metadata__ entry", L);
                goto done;
            }
            meta = c;
            for (const cJSON *m = cJSON_IsObject(c) ? c->child : NULL; m; m = m->next) {
                nmeta++;
                bytes += strlen(m->string) + 1 + (cJSON_IsString(m) ? strlen(m->valuestring) + 1 : 0);
            }
            continue;
        }
        if (++ntens > LF_ST_MAX_TENSORS) {
            st = lf_err(LF_ERR_FORMAT, "%s: more than %u tensors in the header (limit)", L, LF_ST_MAX_TENSORS);
            goto done;
        }
        bytes += strlen(c->string) + 1;
    }
    if (nmeta > LF_ST_MAX_META) {
        st = lf_err(LF_ERR_FORMAT, "%s: more than %u __metadata__ entries (limit)", L, LF_ST_MAX_META);
        goto done;
    }
    f->strings = malloc(bytes);
    f->tensors = calloc(ntens ? ntens : 1, sizeof *f->tensors);
    f->by_name = malloc((ntens ? ntens : 1) * sizeof *f->by_name);
    f->meta = calloc(nmeta ? nmeta : 1, sizeof *f->meta);
    if (!f->strings || !f->tensors || !f->by_name || !f->meta) {
        st = lf_err(LF_ERR_NOMEM, "%s: out of memory for %zu tensors", L, ntens);
        goto done;
    }
    char *arena = f->strings;
    f->label = lf_arena_put(&arena, L);
    L = f->label;

    /* Pass 2: validate and copy. */
    if (meta && (st = lf_st_metadata(L, meta, f, &arena)) != LF_OK) goto done;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (c == meta) continue;
        lf_st_tensor *t = &f->tensors[f->ntensors++];
        t->name = lf_arena_put(&arena, c->string);
        if ((st = lf_st_entry(L, c, t)) != LF_OK) goto done;
    }

    /* Duplicate names: sort a pointer index by name and compare neighbours. */
    qsort(f->tensors, f->ntensors, sizeof *f->tensors, lf_cmp_offsets);
    for (size_t i = 0; i < f->ntensors; i++) f->by_name[i] = &f->tensors[i];
    qsort(f->by_name, f->ntensors, sizeof *f->by_name, lf_cmp_names);
    for (size_t i = 1; i < f->ntensors; i++) {
        if (strcmp(f->by_name[i - 1]->name, f->by_name[i]->name) == 0) {
            st = lf_err(LF_ERR_FORMAT, "%s: duplicate tensor name \"" LF_ST_NAME_FMT "\"", L, f->by_name[i]->name);
            goto done;
        }
    }

    /* Layout: contiguous from 0, no gaps, no overlaps (sorted by begin, then end). */
    uint64_t expect = 0;
    for (size_t i = 0; i < f->ntensors; i++) {
        const lf_st_tensor *t = &f->tensors[i];
        if (t->begin != expect) {
            if (i == 0)
                st = lf_err(LF_ERR_FORMAT, "%s: tensor \"" LF_ST_NAME_FMT "\": first tensor data begins at %llu, "
                            "expected 0", L, t->name, (unsigned long long)t->begin);
            else if (t->begin > expect)
                st = lf_err(LF_ERR_FORMAT, "%s: tensor \"" LF_ST_NAME_FMT "\": gap in the byte buffer: data begins "
                            "at %llu, expected %llu (end of \"" LF_ST_NAME_FMT "\")", L, t->name,
                            (unsigned long long)t->begin, (unsigned long long)expect, f->tensors[i - 1].name);
            else
                st = lf_err(LF_ERR_FORMAT, "%s: tensor \"" LF_ST_NAME_FMT "\": overlaps \"" LF_ST_NAME_FMT "\": data "
                            "begins at %llu, expected %llu", L, t->name, f->tensors[i - 1].name,
                            (unsigned long long)t->begin, (unsigned long long)expect);
            goto done;
        }
        expect = t->end;
    }
    if (expect < buflen) {
        st = lf_err(LF_ERR_FORMAT, "%s: %llu trailing bytes after the last tensor (data ends at buffer offset %llu, "
                    "buffer is %zu bytes)", L, (unsigned long long)(buflen - expect), (unsigned long long)expect,
                    buflen);
        goto done;
    }
    if (expect > buflen) {
        st = lf_err(LF_ERR_FORMAT, "%s: tensor data ends at buffer offset %llu, past the end of the file (buffer is "
                    "%zu bytes)", L, (unsigned long long)expect, buflen);
        goto done;
    }
done:
    cJSON_Delete(root);
    return st;
}

/* ---- reader API ----------------------------------------------------------------------------- */

/* What a file that is not safetensors is, by its first bytes, when it is a format people give by
 * mistake: NULL otherwise. A safetensors file has '{' at byte 8, so none of these can be one. */
static const char *lf_st_other_format(const unsigned char *buf, size_t size) {
    if (size >= 9 && buf[8] == '{') return NULL;
    if (size >= 4 && !memcmp(buf, "PK\x03\x04", 4))
        return "is a zip archive, a PyTorch checkpoint (.ckpt/.pt/.pth/.bin holding a pickle): pickle checkpoints "
               "are not read, for safety; convert to .safetensors";
    if (size >= 2 && buf[0] == 0x80 && buf[1] >= 2 && buf[1] <= 5)
        return "is a Python pickle (an old PyTorch .ckpt/.pt): pickle checkpoints are not read, for safety; convert "
               "to .safetensors";
    if (size >= 4 && !memcmp(buf, "GGUF", 4))
        return "is a GGUF file (llama.cpp / stable-diffusion.cpp format): not read; use the .safetensors original";
    return NULL;
}

static lf_status lf_st_parse_impl(const unsigned char *buf, size_t size, const char *label, lf_st_file **out) {
    const char *L = label ? label : "<memory>";
    const char *other = lf_st_other_format(buf, size);
    if (other) return lf_err(LF_ERR_FORMAT, "%s %s", L, other);
    if (size < 8)
        return lf_err(LF_ERR_FORMAT, "%s: file is %zu bytes, too small for the 8-byte header length", L, size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | buf[i];
    if (n > LF_ST_MAX_HEADER)
        return lf_err(LF_ERR_FORMAT, "%s: header length %llu exceeds the limit of %llu bytes", L,
                      (unsigned long long)n, (unsigned long long)LF_ST_MAX_HEADER);
    if (n > size - 8)
        return lf_err(LF_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)", L,
                      (unsigned long long)n, size);
    const unsigned char *h = buf + 8;
    if (n == 0) return lf_err(LF_ERR_FORMAT, "%s: header is empty (length 0), expected a JSON object", L);
    size_t bad = 0;
    if (lf_utf8_check(h, (size_t)n, &bad))
        return lf_err(LF_ERR_FORMAT, "%s: header is not valid UTF-8 (bad byte 0x%02x at header byte %zu)", L,
                      h[bad], bad);
    /* Raw-text scan: no control bytes (raw ones inside strings are invalid JSON, cJSON would keep them)
     * and no \u0000 escape (cJSON would truncate the name or value at it). */
    int in_str = 0;
    size_t values = 1; /* upper bound: one more per ',' '[' '{' outside strings */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = h[i];
        if (c < 0x20 && (in_str || !lf_json_space(c)))
            return lf_err(LF_ERR_FORMAT, "%s: header contains control byte 0x%02x at header byte %zu%s", L, c, i,
                          in_str ? " inside a string" : "");
        if (!in_str) {
            if (c == '"') in_str = 1;
            else if ((c == ',' || c == '[' || c == '{') && ++values > LF_ST_MAX_VALUES)
                return lf_err(LF_ERR_FORMAT, "%s: header holds more than %u JSON values (limit)", L,
                              LF_ST_MAX_VALUES);
            continue;
        }
        if (c == '"') {
            in_str = 0;
        } else if (c == '\\') {
            if (i + 5 < n && h[i + 1] == 'u' && h[i + 2] == '0' && h[i + 3] == '0' && h[i + 4] == '0' &&
                h[i + 5] == '0')
                return lf_err(LF_ERR_FORMAT, "%s: header contains the escape \\u0000 (NUL) at header byte %zu", L,
                              i);
            i++; /* skip the escaped character ("\\\\" is one escape) */
        }
    }
    /* cJSON gets a NUL-terminated private copy: it never reads past the header. */
    char *copy = malloc((size_t)n + 1);
    lf_st_file *f = calloc(1, sizeof *f);
    if (!copy || !f) {
        free(copy);
        free(f);
        return lf_err(LF_ERR_NOMEM, "%s: out of memory for a %llu-byte header", L, (unsigned long long)n);
    }
    memcpy(copy, h, (size_t)n);
    copy[n] = '\0';
    f->buf = buf;
    f->size = size;
    size_t buflen = size - 8 - (size_t)n;
    lf_status st = lf_st_header(L, copy, (size_t)n, buflen, f);
    free(copy);
    if (st != LF_OK) {
        lf_st_close(f);
        return st;
    }
    const unsigned char *data = buf + 8 + n;
    for (size_t i = 0; i < f->ntensors; i++) f->tensors[i].data = data + f->tensors[i].begin;
    *out = f;
    return LF_OK;
}

lf_status lf_st_parse(const unsigned char *buf, size_t size, const char *label, lf_st_file **out) {
    if (!out) return lf_err(LF_ERR_ARG, "lf_st_parse: out is NULL");
    *out = NULL;
    if (!buf && size) return lf_err(LF_ERR_ARG, "lf_st_parse: buf is NULL");
    return lf_st_parse_impl(buf ? buf : (const unsigned char *)"", size, label, out);
}

lf_status lf_st_open(const char *path, lf_st_file **out) {
    if (!out) return lf_err(LF_ERR_ARG, "lf_st_open: out is NULL");
    *out = NULL;
    if (!path) return lf_err(LF_ERR_ARG, "lf_st_open: path is NULL");
    int fd;
    uint64_t fsize;
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        static const char *const marks[] = {"model_index.json", "config.json", "unet"};
        char p[4096];
        for (size_t i = 0; i < sizeof marks / sizeof *marks; i++)
            if (snprintf(p, sizeof p, "%s/%s", path, marks[i]) < (int)sizeof p && lf_file_exists(p))
                return lf_err(LF_ERR_IO, "%s is a diffusers folder (%s): give a single .safetensors file here "
                              "(generate --vae takes a diffusers vae/ folder)", path, marks[i]);
    }
    lf_status st = lf_file_open_in(path, NULL, LF_ST_MAX_FILE, &fd, &fsize, NULL);
    if (st != LF_OK) return st;
    if (fsize > (uint64_t)SIZE_MAX) {
        close(fd);
        return lf_err(LF_ERR_IO, "%s: file too large to map", path);
    }
    size_t size = (size_t)fsize;
    void *map = NULL;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return lf_err(LF_ERR_IO, "%s: cannot mmap %zu bytes: %s", path, size, strerror(e));
        }
    }
    close(fd); /* the mapping stays valid */
    lf_st_file *f = NULL;
    st = lf_st_parse_impl(map ? (const unsigned char *)map : (const unsigned char *)"", size, path, &f);
    if (st != LF_OK) {
        if (map) munmap(map, size);
        return st;
    }
    f->map = map;
    f->map_len = size;
    *out = f;
    return LF_OK;
}

void lf_st_close(lf_st_file *f) {
    if (!f) return;
    if (f->map) munmap(f->map, f->map_len);
    free(f->tensors);
    free(f->by_name);
    free(f->meta);
    free(f->strings);
    free(f);
}

const char *lf_st_path(const lf_st_file *f) { return f ? f->label : NULL; }

size_t lf_st_count(const lf_st_file *f) { return f ? f->ntensors : 0; }

const lf_st_tensor *lf_st_at(const lf_st_file *f, size_t i) {
    return f && i < f->ntensors ? &f->tensors[i] : NULL;
}

const lf_st_tensor *lf_st_find(const lf_st_file *f, const char *name) {
    if (!f || !name) return NULL;
    size_t lo = 0, hi = f->ntensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->by_name[mid]->name, name);
        if (c == 0) return f->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

lf_view lf_st_view(const lf_st_tensor *t) {
    lf_view v;
    memset(&v, 0, sizeof v);
    if (!t) return v;
    v.data = t->data;
    v.dtype = t->dtype;
    v.ndim = t->ndim;
    for (int i = 0; i < t->ndim; i++) v.shape[i] = t->shape[i];
    return v;
}

size_t lf_st_meta_count(const lf_st_file *f) { return f ? f->nmeta : 0; }

const lf_st_kv *lf_st_meta_at(const lf_st_file *f, size_t i) { return f && i < f->nmeta ? &f->meta[i] : NULL; }

const char *lf_st_meta(const lf_st_file *f, const char *key) {
    if (!f || !key) return NULL;
    for (size_t i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
    return NULL;
}

/* ---- writer --------------------------------------------------------------------------------- */

typedef struct lf_st_wtensor {
    char *name;
    lf_dtype dtype;
    int ndim;
    int64_t shape[LF_MAX_DIMS];
    const void *data;
    size_t nbytes;
} lf_st_wtensor;

struct lf_st_writer {
    lf_st_wtensor *t;
    size_t n, cap;
    size_t *hash; /* open addressing: index + 1 into t, 0 = empty; size hcap (power of 2) */
    size_t hcap;
    lf_st_kv *meta; /* owned key/value copies (cast away const on free) */
    size_t nmeta, mcap;
};

static size_t lf_hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)h;
}

/* Slot of name in the hash table (an empty slot if absent). */
static size_t lf_hash_slot(const lf_st_writer *w, const char *name) {
    size_t mask = w->hcap - 1, i = lf_hash_str(name) & mask;
    while (w->hash[i] && strcmp(w->t[w->hash[i] - 1].name, name) != 0) i = (i + 1) & mask;
    return i;
}

static int lf_hash_grow(lf_st_writer *w) {
    size_t cap = w->hcap ? w->hcap * 2 : 64;
    size_t *old = w->hash, ocap = w->hcap;
    w->hash = calloc(cap, sizeof *w->hash);
    if (!w->hash) { w->hash = old; return -1; }
    w->hcap = cap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i]) w->hash[lf_hash_slot(w, w->t[old[i] - 1].name)] = old[i];
    free(old);
    return 0;
}

lf_status lf_st_writer_new(lf_st_writer **out) {
    if (!out) return lf_err(LF_ERR_ARG, "lf_st_writer_new: out is NULL");
    *out = calloc(1, sizeof **out);
    if (!*out) return lf_err(LF_ERR_NOMEM, "safetensors writer: out of memory");
    return LF_OK;
}

void lf_st_writer_free(lf_st_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) free(w->t[i].name);
    for (size_t i = 0; i < w->nmeta; i++) {
        free((char *)w->meta[i].key);
        free((char *)w->meta[i].value);
    }
    free(w->t);
    free(w->hash);
    free(w->meta);
    free(w);
}

static int lf_utf8_str_ok(const char *s) {
    size_t bad;
    return !lf_utf8_check((const unsigned char *)s, strlen(s), &bad);
}

lf_status lf_st_writer_meta(lf_st_writer *w, const char *key, const char *value) {
    if (!w || !key || !value) return lf_err(LF_ERR_ARG, "safetensors writer: metadata key and value must be set");
    if (!lf_utf8_str_ok(key))
        return lf_err(LF_ERR_ARG, "safetensors writer: metadata key \"" LF_ST_NAME_FMT "\" is not valid UTF-8", key);
    if (!lf_utf8_str_ok(value))
        return lf_err(LF_ERR_ARG, "safetensors writer: metadata value of \"" LF_ST_NAME_FMT "\" is not valid UTF-8",
                      key);
    char *v = strdup(value);
    if (!v) return lf_err(LF_ERR_NOMEM, "safetensors writer: out of memory");
    for (size_t i = 0; i < w->nmeta; i++) { /* setting a key again replaces its value */
        if (strcmp(w->meta[i].key, key) == 0) {
            free((char *)w->meta[i].value);
            w->meta[i].value = v;
            return LF_OK;
        }
    }
    if (w->nmeta >= LF_ST_MAX_META) {
        free(v);
        return lf_err(LF_ERR_ARG, "safetensors writer: more than %u metadata entries", LF_ST_MAX_META);
    }
    if (lf_grow(&w->meta, &w->mcap, w->nmeta + 1)) {
        free(v);
        return lf_err(LF_ERR_NOMEM, "safetensors writer: out of memory");
    }
    char *k = strdup(key);
    if (!k) { free(v); return lf_err(LF_ERR_NOMEM, "safetensors writer: out of memory"); }
    w->meta[w->nmeta].key = k;
    w->meta[w->nmeta].value = v;
    w->nmeta++;
    return LF_OK;
}

lf_status lf_st_writer_add(lf_st_writer *w, const char *name, lf_dtype dtype, int ndim, const int64_t *shape,
                           const void *data, size_t nbytes) {
    if (!w || !name) return lf_err(LF_ERR_ARG, "safetensors writer: tensor name must be set");
    const char *N = name;
    if (strcmp(name, "__metadata__") == 0)
        return lf_err(LF_ERR_ARG, "safetensors writer: \"__metadata__\" is reserved and cannot name a tensor");
    if (!lf_utf8_str_ok(name))
        return lf_err(LF_ERR_ARG, "safetensors writer: tensor name \"" LF_ST_NAME_FMT "\" is not valid UTF-8", N);
    if (lf_dtype_bits(dtype) == 0)
        return lf_err(LF_ERR_DTYPE, "safetensors writer: tensor \"" LF_ST_NAME_FMT "\": invalid dtype %d", N,
                      (int)dtype);
    if (ndim < 0 || ndim > LF_MAX_DIMS)
        return lf_err(LF_ERR_ARG, "safetensors writer: tensor \"" LF_ST_NAME_FMT "\": rank %d outside 0..%d", N,
                      ndim, LF_MAX_DIMS);
    if (ndim > 0 && !shape)
        return lf_err(LF_ERR_ARG, "safetensors writer: tensor \"" LF_ST_NAME_FMT "\": shape is NULL", N);
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (uint64_t)shape[i] >= (1ull << 53))
            return lf_err(LF_ERR_SHAPE, "safetensors writer: tensor \"" LF_ST_NAME_FMT "\": dimension %d is %lld",
                          N, i, (long long)shape[i]);
        uint64_t d = (uint64_t)shape[i];
        if (d && numel > UINT64_MAX / d)
            return lf_err(LF_ERR_SHAPE, "safetensors writer: tensor \"" LF_ST_NAME_FMT "\": element count overflows",
                          N);
        numel *= d;
    }
    uint64_t bits = lf_dtype_bits(dtype);
    if (numel > UINT64_MAX / bits)
        return lf_err(LF_ERR_SHAPE, "safetensors writer: tensor \"" LF_ST_NAME_FMT "\": size overflows", N);
    bits *= numel;
    if (bits % 8)
        return lf_err(LF_ERR_SHAPE, "safetensors writer: tensor \"" LF_ST_NAME_FMT "\": %llu elements of %s are "
                      "not a whole number of bytes", N, (unsigned long long)numel, lf_dtype_name(dtype));
    if (bits / 8 != (uint64_t)nbytes)
        return lf_err(LF_ERR_SHAPE, "safetensors writer: tensor \"" LF_ST_NAME_FMT "\": nbytes is %zu, expected "
                      "%llu for %llu elements of %s", N, nbytes, (unsigned long long)(bits / 8),
                      (unsigned long long)numel, lf_dtype_name(dtype));
    if (nbytes && !data)
        return lf_err(LF_ERR_ARG, "safetensors writer: tensor \"" LF_ST_NAME_FMT "\": data is NULL", N);
    if (w->n >= LF_ST_MAX_TENSORS)
        return lf_err(LF_ERR_ARG, "safetensors writer: more than %u tensors", LF_ST_MAX_TENSORS);
    if (w->hcap && w->hash[lf_hash_slot(w, name)])
        return lf_err(LF_ERR_ARG, "safetensors writer: duplicate tensor name \"" LF_ST_NAME_FMT "\"", N);
    if ((w->n + 1) * 2 > w->hcap && lf_hash_grow(w) != 0)
        return lf_err(LF_ERR_NOMEM, "safetensors writer: out of memory");
    if (lf_grow(&w->t, &w->cap, w->n + 1)) return lf_err(LF_ERR_NOMEM, "safetensors writer: out of memory");
    lf_st_wtensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) return lf_err(LF_ERR_NOMEM, "safetensors writer: out of memory");
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->data = data;
    t->nbytes = nbytes;
    w->n++;
    w->hash[lf_hash_slot(w, name)] = w->n;
    return LF_OK;
}

lf_status lf_st_writer_commit(lf_st_writer *w, const char *path) {
    lf_st_commit_opts o = {1, NULL, 0};
    return lf_st_writer_commit_opts(w, path, &o);
}

lf_status lf_st_writer_commit_opts(lf_st_writer *w, const char *path, const lf_st_commit_opts *opts) {
    if (!w || !path || !opts) return lf_err(LF_ERR_ARG, "safetensors writer: commit needs a writer, a path and options");
    lf_file_out_opts fo = {opts->overwrite, opts->inputs, opts->n_inputs};
    /* The destination is checked before the header is built: a refused output costs nothing. */
    lf_status st = lf_file_out_check(path, &fo);
    if (st != LF_OK) return st;
    /* Header. */
    lf_sbuf h = {0};
    lf_sb_put(&h, "{", 1);
    int first = 1;
    if (w->nmeta) {
        lf_sb_str(&h, "\"__metadata__\":{");
        for (size_t i = 0; i < w->nmeta; i++) {
            if (i) lf_sb_put(&h, ",", 1);
            lf_sb_json(&h, w->meta[i].key);
            lf_sb_put(&h, ":", 1);
            lf_sb_json(&h, w->meta[i].value);
        }
        lf_sb_put(&h, "}", 1);
        first = 0;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        const lf_st_wtensor *t = &w->t[i];
        if (!first) lf_sb_put(&h, ",", 1);
        first = 0;
        lf_sb_json(&h, t->name);
        lf_sb_str(&h, ":{\"dtype\":\"");
        lf_sb_str(&h, lf_dtype_name(t->dtype));
        lf_sb_str(&h, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d) lf_sb_put(&h, ",", 1);
            lf_sb_u64(&h, (unsigned long long)t->shape[d]);
        }
        lf_sb_str(&h, "],\"data_offsets\":[");
        lf_sb_u64(&h, (unsigned long long)off);
        lf_sb_put(&h, ",", 1);
        if ((uint64_t)t->nbytes > (1ull << 53) - 1 - off) {
            free(h.s);
            return lf_err(LF_ERR_ARG, "%s: tensor data exceeds 2^53 bytes", path);
        }
        off += t->nbytes;
        lf_sb_u64(&h, (unsigned long long)off);
        lf_sb_str(&h, "]}");
    }
    lf_sb_put(&h, "}", 1);
    while (!h.oom && (8 + h.n) % 8 != 0) lf_sb_put(&h, " ", 1);
    if (h.oom) {
        free(h.s);
        return lf_err(LF_ERR_NOMEM, "%s: out of memory building the header", path);
    }
    if (h.n > LF_ST_MAX_HEADER) {
        st = lf_err(LF_ERR_ARG, "%s: header would be %zu bytes, over the %llu-byte limit", path, h.n,
                    (unsigned long long)LF_ST_MAX_HEADER);
        free(h.s);
        return st;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(((uint64_t)h.n >> (8 * i)) & 0xff);

    /* Temporary file next to the destination, fsync'ed and renamed into place (file.h). */
    lf_file_out *out = NULL;
    st = lf_file_out_open(path, &fo, &out);
    if (st == LF_OK) st = lf_file_out_write(out, len8, 8);
    if (st == LF_OK) st = lf_file_out_write(out, h.s, h.n);
    for (size_t i = 0; st == LF_OK && i < w->n; i++)
        if (w->t[i].nbytes) st = lf_file_out_write(out, w->t[i].data, w->t[i].nbytes);
    free(h.s);
    if (st != LF_OK) {
        lf_file_out_abort(out);
        return st;
    }
    return lf_file_out_commit(out);
}
