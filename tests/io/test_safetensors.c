/* test_safetensors.c: tests of the strict safetensors reader and the atomic writer (lf_safetensors.h).
 *
 * Valid files: writer round trips (names, dtypes, shapes, bytes, metadata, escaping), hand-made
 * unpadded headers (unaligned data), rank-0 and empty tensors, offset order, lookup. Invalid files:
 * every rejection rule of docs/safetensors.md as its own case, built in memory and parsed with
 * lf_st_parse (a few through files on disk), checking the status and a distinctive part of the
 * message; a FIFO refused without blocking. Writer: argument checks at add time, and commits that fail
 * (missing directory, write error through RLIMIT_FSIZE, destination is a directory, exists without
 * overwrite, is a hard link to an input) leave no output, no temporary file and an existing
 * destination untouched.
 */
#include "lf_test.h"
#include "lf_test_data.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lorafuse/lf_safetensors.h"
#include "host/base/util.h"

#define LABEL "mem.safetensors"

static char g_dir[512];

/* ---- helpers --------------------------------------------------------------------------------- */

/* An image: u64 N, the n header bytes, then the data bytes. Exact-size heap block (ASan sees over-reads). */
static unsigned char *mk_image(const char *hdr, size_t n, const void *data, size_t ndata, size_t *size) {
    *size = 8 + n + ndata;
    unsigned char *b = malloc(*size ? *size : 1);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(((uint64_t)n >> (8 * i)) & 0xff);
    if (n) memcpy(b + 8, hdr, n);
    if (ndata) memcpy(b + 8 + n, data, ndata);
    return b;
}

/* Parse header text + ndata zero bytes; expect failure with status st and msg in the message. */
static void expect_fail_n(int line, const char *hdr, size_t n, size_t ndata, lf_status st, const char *msg) {
    unsigned char *data = calloc(ndata ? ndata : 1, 1);
    size_t size;
    unsigned char *img = mk_image(hdr, n, data, ndata, &size);
    lf_st_file *f = (lf_st_file *)(uintptr_t)1;
    lf_err_clear();
    lf_status got = lf_st_parse(img, size, LABEL, &f);
    const char *e = lf_last_error();
    LF_CHECK(got == st, "line %d: status %d (%s), expected %d; message: %s", line, (int)got, lf_status_str(got),
             (int)st, e);
    LF_CHECK(f == NULL, "line %d: *out not NULL on failure", line);
    LF_CHECK(strstr(e, msg) != NULL, "line %d: message \"%s\" lacks \"%s\"", line, e, msg);
    LF_CHECK(strstr(e, LABEL) != NULL, "line %d: message \"%s\" does not name the file", line, e);
    if (got == LF_OK) lf_st_close(f);
    free(img);
    free(data);
}
#define FAIL_N(hdr, n, ndata, st, msg) expect_fail_n(__LINE__, hdr, n, ndata, st, msg)
#define FAIL(hdr, ndata, st, msg) expect_fail_n(__LINE__, hdr, strlen(hdr), ndata, st, msg)

/* Parse header text + data; expect success. Caller frees *img and closes the result. */
static lf_st_file *parse_ok(int line, const char *hdr, size_t n, const void *data, size_t ndata,
                            unsigned char **img) {
    size_t size;
    *img = mk_image(hdr, n, data, ndata, &size);
    lf_st_file *f = NULL;
    lf_status st = lf_st_parse(*img, size, LABEL, &f);
    LF_CHECK(st == LF_OK && f, "line %d: parse failed: %s", line, lf_last_error());
    return f;
}
#define PARSE_OK(hdr, data, ndata, img) parse_ok(__LINE__, hdr, strlen(hdr), data, ndata, img)

static void path_in(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", g_dir, name); }

/* The file's bytes as unsigned (header lengths are little-endian bytes); NULL if unreadable. */
static unsigned char *read_file(const char *path, size_t *n) {
    char *b = NULL;
    lf_read_file(path, NULL, (size_t)1 << 30, &b, n);
    return (unsigned char *)b;
}

static int64_t numel_of(const lf_st_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

/* ---- valid files ------------------------------------------------------------------------------ */

typedef struct spec {
    const char *name;
    lf_dtype dt;
    int ndim;
    int64_t shape[LF_MAX_DIMS];
    size_t nbytes;
} spec;

static void test_roundtrip(void) {
    static const spec S[] = {
        {"unet.down.weight", LF_F32, 2, {2, 3}, 24},
        {"te.\"quoted\\back\\slash\"", LF_F16, 1, {5}, 10},
        {"caf\xc3\xa9/\xe2\x9c\x93", LF_BF16, 4, {2, 1, 1, 2}, 8},
        {"alpha", LF_I8, 0, {0}, 1},
        {"empty", LF_U8, 2, {0, 5}, 0},
        {"nibbles", LF_F4, 1, {6}, 3},
        {"ctl\x01\ttab\nnl", LF_I64, 1, {3}, 24},
        {"f8", LF_F8_E4M3, 3, {1, 2, 3}, 6},
        {"empty2", LF_F64, 1, {0}, 0},
        {"c", LF_C64, 1, {1}, 8},
        {"rank8", LF_U16, 8, {1, 1, 1, 1, 1, 1, 1, 2}, 4},
        {"f6", LF_F6_E2M3, 1, {4}, 3},
    };
    const size_t n = sizeof S / sizeof S[0];
    unsigned char *bufs[sizeof S / sizeof S[0]];
    lf_st_writer *w = NULL;
    LF_CHECK(lf_st_writer_new(&w) == LF_OK, "writer_new: %s", lf_last_error());
    for (size_t i = 0; i < n; i++) {
        bufs[i] = malloc(S[i].nbytes + 1);
        for (size_t j = 0; j < S[i].nbytes; j++) bufs[i][j] = (unsigned char)(i * 31 + j * 7 + 1);
        lf_status st = lf_st_writer_add(w, S[i].name, S[i].dt, S[i].ndim, S[i].shape, bufs[i], S[i].nbytes);
        LF_CHECK(st == LF_OK, "add %s: %s", S[i].name, lf_last_error());
    }
    LF_CHECK(lf_st_writer_meta(w, "format", "pt") == LF_OK, "meta: %s", lf_last_error());
    LF_CHECK(lf_st_writer_meta(w, "ss \"k\"\\", "v\"al\\ue\n\x1f\xc3\xa9") == LF_OK, "meta: %s", lf_last_error());
    LF_CHECK(lf_st_writer_meta(w, "empty", "") == LF_OK, "meta: %s", lf_last_error());
    LF_CHECK(lf_st_writer_meta(w, "format", "pt2") == LF_OK, "meta replace: %s", lf_last_error());
    char path[600];
    path_in(path, sizeof path, "rt.safetensors");
    LF_CHECK(lf_st_writer_commit(w, path) == LF_OK, "commit: %s", lf_last_error());
    lf_st_writer_free(w);
    LF_CHECK(lf_test_count_files(g_dir, ".tmp.") == 0, "temporary files left after commit");

    /* Header padded: data starts 8-aligned; header ends with spaces only after '}'. */
    size_t fsize = 0;
    unsigned char *raw = read_file(path, &fsize);
    LF_CHECK(raw && fsize >= 8, "read back raw file");
    if (raw && fsize >= 8) {
        uint64_t N = 0;
        for (int i = 7; i >= 0; i--) N = (N << 8) | raw[i];
        LF_CHECK((8 + N) % 8 == 0, "data start 8+%llu not 8-aligned", (unsigned long long)N);
        LF_CHECK(raw[8] == '{', "header does not begin with '{'");
        LF_CHECK(memcmp(raw + 8, "{\"__metadata__\":{", 17) == 0, "__metadata__ is not written first");
        size_t k = 8 + (size_t)N;
        while (k > 8 && raw[k - 1] == ' ') k--;
        LF_CHECK(raw[k - 1] == '}', "header padding is not spaces after '}'");
        LF_CHECK(8 + N - k < 8, "more than 7 bytes of padding");
    }
    free(raw);

    lf_st_file *f = NULL;
    LF_CHECK(lf_st_open(path, &f) == LF_OK, "open: %s", lf_last_error());
    if (f) {
        LF_CHECK(strcmp(lf_st_path(f), path) == 0, "lf_st_path %s", lf_st_path(f));
        LF_CHECK(lf_st_count(f) == n, "count %zu, expected %zu", lf_st_count(f), n);
        uint64_t prev_end = 0;
        for (size_t i = 0; i < n && i < lf_st_count(f); i++) {
            const lf_st_tensor *t = lf_st_at(f, i);
            /* insertion order == offset order for the writer */
            LF_CHECK(strcmp(t->name, S[i].name) == 0, "at(%zu) is \"%s\", expected \"%s\"", i, t->name, S[i].name);
            LF_CHECK(t->dtype == S[i].dt, "%s: dtype %s", S[i].name, lf_dtype_name(t->dtype));
            LF_CHECK(t->ndim == S[i].ndim, "%s: ndim %d", S[i].name, t->ndim);
            for (int d = 0; d < S[i].ndim; d++)
                LF_CHECK(t->shape[d] == S[i].shape[d], "%s: shape[%d] %lld", S[i].name, d, (long long)t->shape[d]);
            LF_CHECK(t->begin == prev_end, "%s: begin %llu", S[i].name, (unsigned long long)t->begin);
            LF_CHECK(t->end - t->begin == S[i].nbytes, "%s: %llu bytes", S[i].name,
                     (unsigned long long)(t->end - t->begin));
            LF_CHECK(S[i].nbytes == 0 || memcmp(t->data, bufs[i], S[i].nbytes) == 0, "%s: bytes differ", S[i].name);
            prev_end = t->end;
            LF_CHECK(lf_st_find(f, S[i].name) == t, "find(%s)", S[i].name);
            lf_view v = lf_st_view(t);
            LF_CHECK(v.data == t->data && v.dtype == t->dtype && v.ndim == t->ndim, "%s: view", S[i].name);
            LF_CHECK(lf_view_numel(&v) == numel_of(t), "%s: view numel", S[i].name);
        }
        LF_CHECK(lf_st_at(f, n) == NULL, "at(n) not NULL");
        LF_CHECK(lf_st_find(f, "missing") == NULL, "find(missing) not NULL");
        LF_CHECK(lf_st_find(f, "__metadata__") == NULL, "find(__metadata__) not NULL");
        LF_CHECK(lf_st_find(f, "") == NULL, "find(\"\") not NULL");
        LF_CHECK(lf_st_meta_count(f) == 3, "meta count %zu", lf_st_meta_count(f));
        const char *fm = lf_st_meta(f, "format");
        LF_CHECK(fm && strcmp(fm, "pt2") == 0, "meta format = %s", fm ? fm : "(null)");
        const char *sv = lf_st_meta(f, "ss \"k\"\\");
        LF_CHECK(sv && strcmp(sv, "v\"al\\ue\n\x1f\xc3\xa9") == 0, "escaped meta value = %s", sv ? sv : "(null)");
        const char *ev = lf_st_meta(f, "empty");
        LF_CHECK(ev && ev[0] == '\0', "empty meta value");
        LF_CHECK(lf_st_meta(f, "nope") == NULL, "missing meta key");
        const lf_st_kv *kv = lf_st_meta_at(f, 0);
        LF_CHECK(kv && strcmp(kv->key, "format") == 0, "meta_at(0) key %s", kv ? kv->key : "(null)");
        LF_CHECK(lf_st_meta_at(f, 3) == NULL, "meta_at(3) not NULL");
        lf_st_close(f);
    }
    for (size_t i = 0; i < n; i++) free(bufs[i]);
}

static void test_writer_empty(void) {
    lf_st_writer *w = NULL;
    lf_st_writer_new(&w);
    char path[600];
    path_in(path, sizeof path, "empty.safetensors");
    LF_CHECK(lf_st_writer_commit(w, path) == LF_OK, "commit empty: %s", lf_last_error());
    lf_st_writer_free(w);
    size_t n = 0;
    unsigned char *raw = read_file(path, &n);
    LF_CHECK(raw && n == 16 && raw[0] == 8 && memcmp(raw + 8, "{}      ", 8) == 0, "empty file layout (%zu bytes)",
             n);
    free(raw);
    lf_st_file *f = NULL;
    LF_CHECK(lf_st_open(path, &f) == LF_OK, "open empty: %s", lf_last_error());
    LF_CHECK(f && lf_st_count(f) == 0 && lf_st_meta_count(f) == 0, "empty file has entries");
    LF_CHECK(lf_st_find(f, "x") == NULL, "find in an empty file");
    lf_st_close(f);
}

/* Unpadded, hand-made header: the data start is not aligned; values still read through memcpy. */
static void test_unaligned(void) {
    char hdr[256];
    snprintf(hdr, sizeof hdr,
             "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[2,10]},"
             "\"a\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]}}");
    size_t n = strlen(hdr);
    while ((8 + n) % 2 == 0) hdr[n++] = ' '; /* odd data start: every tensor misaligned */
    hdr[n] = '\0';
    unsigned char data[10];
    const uint16_t one = 0x3c00; /* F16 1.0 */
    const float fv[2] = {1.5f, -2.25f};
    memcpy(data, &one, 2);
    memcpy(data + 2, fv, 8);
    unsigned char *img = NULL;
    lf_st_file *f = parse_ok(__LINE__, hdr, n, data, sizeof data, &img);
    if (f) {
        LF_CHECK(lf_st_count(f) == 2, "count %zu", lf_st_count(f));
        const lf_st_tensor *a = lf_st_at(f, 0), *b = lf_st_at(f, 1);
        LF_CHECK(strcmp(a->name, "a") == 0 && strcmp(b->name, "b") == 0, "offset order: %s, %s", a->name,
                 b->name);
        LF_CHECK(a->data == img + 8 + n && b->data == img + 8 + n + 2, "data pointers");
        LF_CHECK(((uintptr_t)b->data) % 4 != 0, "b is unexpectedly aligned");
        lf_view v = lf_st_view(b);
        float out[2] = {0, 0};
        LF_CHECK(lf_view_to_f32(&v, out) == LF_OK && out[0] == 1.5f && out[1] == -2.25f, "values %g %g", out[0],
                 out[1]);
        v = lf_st_view(a);
        LF_CHECK(lf_view_to_f32(&v, out) == LF_OK && out[0] == 1.0f, "f16 value %g", out[0]);
        LF_CHECK(lf_st_find(f, "a") == a && lf_st_find(f, "b") == b, "find");
        LF_CHECK(strcmp(lf_st_path(f), LABEL) == 0, "label %s", lf_st_path(f));
        lf_st_close(f);
    }
    free(img);
}

static void test_valid_variants(void) {
    unsigned char *img = NULL;
    lf_st_file *f;
    /* "{}" with no padding, with space padding, with a trailing newline (JSON whitespace). */
    f = PARSE_OK("{}", NULL, 0, &img);
    LF_CHECK(f && lf_st_count(f) == 0, "{}");
    lf_st_close(f), free(img);
    f = PARSE_OK("{}      ", NULL, 0, &img);
    LF_CHECK(f && lf_st_count(f) == 0, "{} padded");
    lf_st_close(f), free(img);
    f = PARSE_OK("{ }\n", NULL, 0, &img);
    LF_CHECK(f != NULL, "{ } newline");
    lf_st_close(f), free(img);

    /* Zero-size tensors at the start, between, and at the end; two at the same offset; rank 0. */
    unsigned char data[6] = {1, 2, 3, 4, 5, 6};
    f = PARSE_OK("{\"end\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[6,6]},"
                 "\"s\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[4,5]},"
                 "\"z0\":{\"dtype\":\"F16\",\"shape\":[0],\"data_offsets\":[0,0]},"
                 "\"x\":{\"dtype\":\"U16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                 "\"mid\":{\"dtype\":\"BF16\",\"shape\":[2,0],\"data_offsets\":[4,4]},"
                 "\"mid2\":{\"dtype\":\"I32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                 "\"t\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[5,6]}}",
                 data, sizeof data, &img);
    if (f) {
        static const char *order[] = {"z0", "x", "mid", "mid2", "s", "t", "end"};
        LF_CHECK(lf_st_count(f) == 7, "count %zu", lf_st_count(f));
        for (size_t i = 0; i < 7 && i < lf_st_count(f); i++)
            LF_CHECK(strcmp(lf_st_at(f, i)->name, order[i]) == 0, "at(%zu) = %s, expected %s", i,
                     lf_st_at(f, i)->name, order[i]);
        const lf_st_tensor *s = lf_st_find(f, "s");
        LF_CHECK(s && s->ndim == 0 && s->data[0] == 5, "rank-0 tensor");
        lf_view v = lf_st_view(s);
        double x = 0;
        LF_CHECK(lf_view_scalar(&v, &x) == LF_OK && x == 5.0, "scalar %g", x);
        const lf_st_tensor *e = lf_st_find(f, "end");
        LF_CHECK(e && e->ndim == 2 && e->shape[0] == 0 && e->shape[1] == 3 && e->begin == 6, "empty at end");
        for (size_t i = 0; i < 7; i++) {
            static const char *names[] = {"end", "s", "z0", "x", "mid", "mid2", "t"};
            const lf_st_tensor *t = lf_st_find(f, names[i]);
            LF_CHECK(t && strcmp(t->name, names[i]) == 0, "find(%s)", names[i]);
        }
        lf_st_close(f);
    }
    free(img);

    /* Unknown keys inside an entry are ignored (as by the reference reader). */
    f = PARSE_OK("{\"w\":{\"extra\":[1,{}],\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", data, 1, &img);
    LF_CHECK(f && lf_st_count(f) == 1, "extra keys");
    lf_st_close(f), free(img);

    /* An escaped backslash followed by "u0000" is a literal, not a NUL escape. */
    f = PARSE_OK("{\"a\\\\u0000\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", data, 1, &img);
    LF_CHECK(f && lf_st_find(f, "a\\u0000") != NULL, "literal backslash-u0000 name");
    lf_st_close(f), free(img);

    /* Metadata only, and escapes that decode to non-ASCII (valid UTF-8 after decoding). */
    f = PARSE_OK("{\"__metadata__\":{\"k\\u00e9\":\"\\ud83d\\ude00\",\"e\":\"\"}}", NULL, 0, &img);
    if (f) {
        LF_CHECK(lf_st_count(f) == 0 && lf_st_meta_count(f) == 2, "metadata only");
        const char *v = lf_st_meta(f, "k\xc3\xa9");
        LF_CHECK(v && strcmp(v, "\xf0\x9f\x98\x80") == 0, "unicode escapes");
        lf_st_close(f);
    }
    free(img);
    f = PARSE_OK("{\"__metadata__\":{}}", NULL, 0, &img);
    LF_CHECK(f && lf_st_meta_count(f) == 0, "empty metadata");
    lf_st_close(f), free(img);

    /* Numbers written as 1e0 / 1.0 are exact integers for cJSON (documented leniency). */
    f = PARSE_OK("{\"w\":{\"dtype\":\"U8\",\"shape\":[1.0],\"data_offsets\":[0,1e0]}}", data, 1, &img);
    LF_CHECK(f != NULL, "1.0 / 1e0 accepted");
    lf_st_close(f), free(img);
}

/* Many tensors: lookup is binary search over a name index; order follows offsets. */
static void test_many(void) {
    const int n = 3000;
    size_t cap = (size_t)n * 96 + 16, at = 0;
    char *hdr = malloc(cap);
    at += (size_t)snprintf(hdr + at, cap - at, "{");
    for (int i = 0; i < n; i++) {
        int k = (i * 7919) % n; /* header order scrambled relative to offsets */
        at += (size_t)snprintf(hdr + at, cap - at, "%s\"t%05d\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[%d,%d]}",
                               i ? "," : "", k, k, k + 1);
    }
    at += (size_t)snprintf(hdr + at, cap - at, "}");
    unsigned char *data = malloc((size_t)n);
    for (int i = 0; i < n; i++) data[i] = (unsigned char)(i & 0xff);
    unsigned char *img = NULL;
    lf_st_file *f = parse_ok(__LINE__, hdr, at, data, (size_t)n, &img);
    if (f) {
        int bad = 0;
        for (int i = 0; i < n; i++) {
            char name[16];
            snprintf(name, sizeof name, "t%05d", i);
            const lf_st_tensor *t = lf_st_find(f, name);
            if (!t || t != lf_st_at(f, (size_t)i) || t->begin != (uint64_t)i || t->data[0] != (unsigned char)(i & 0xff))
                bad++;
        }
        LF_CHECK(bad == 0, "%d of %d lookups wrong", bad, n);
        LF_CHECK(lf_st_find(f, "t99999") == NULL && lf_st_find(f, "t") == NULL, "absent names");
        lf_st_close(f);
    }
    free(img);
    free(data);
    free(hdr);
}

/* ---- rejections ------------------------------------------------------------------------------ */

#define ENT(name, dt, shape, offs) "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" offs "}"

static void test_reject_framing(void) {
    unsigned char small[7] = {0};
    lf_st_file *f = NULL;
    LF_CHECK(lf_st_parse(small, 0, LABEL, &f) == LF_ERR_FORMAT && strstr(lf_last_error(), "too small"),
             "0 bytes: %s", lf_last_error());
    LF_CHECK(lf_st_parse(small, 7, LABEL, &f) == LF_ERR_FORMAT && strstr(lf_last_error(), "7 bytes, too small"),
             "7 bytes: %s", lf_last_error());
    LF_CHECK(f == NULL, "out set on failure");

    /* N over the limit (also the u64 overflow case N = 2^64 - 1). */
    unsigned char img[16] = {0};
    uint64_t N = LF_ST_MAX_HEADER + 1;
    for (int i = 0; i < 8; i++) img[i] = (unsigned char)((N >> (8 * i)) & 0xff);
    LF_CHECK(lf_st_parse(img, sizeof img, LABEL, &f) == LF_ERR_FORMAT &&
                 strstr(lf_last_error(), "exceeds the limit of 100000000"),
             "N > limit: %s", lf_last_error());
    memset(img, 0xff, 8);
    LF_CHECK(lf_st_parse(img, sizeof img, LABEL, &f) == LF_ERR_FORMAT && strstr(lf_last_error(), "exceeds the limit"),
             "N = 2^64-1: %s", lf_last_error());
    /* N within the limit but past EOF. */
    memset(img, 0, 8);
    img[0] = 9;
    memcpy(img + 8, "{}      ", 8);
    LF_CHECK(lf_st_parse(img, sizeof img, LABEL, &f) == LF_ERR_FORMAT &&
                 strstr(lf_last_error(), "header length 9 runs past the end of the file (16 bytes)"),
             "N past EOF: %s", lf_last_error());
    img[0] = 0;
    LF_CHECK(lf_st_parse(img, 8, LABEL, &f) == LF_ERR_FORMAT && strstr(lf_last_error(), "header is empty"),
             "N = 0: %s", lf_last_error());
    /* Bad arguments. */
    LF_CHECK(lf_st_parse(NULL, 5, LABEL, &f) == LF_ERR_ARG, "NULL buffer");
    LF_CHECK(lf_st_parse(img, 8, LABEL, NULL) == LF_ERR_ARG, "NULL out");
    /* No label: "<memory>". */
    lf_st_parse(img, 3, NULL, &f);
    LF_CHECK(strstr(lf_last_error(), "<memory>") != NULL, "default label: %s", lf_last_error());
}

static void test_reject_text(void) {
    FAIL_N("{\"a\xff\":1}", 7, 0, LF_ERR_FORMAT, "not valid UTF-8 (bad byte 0xff at header byte 3)");
    FAIL_N("{\"\xc0\xaf\":1}", 7, 0, LF_ERR_FORMAT, "not valid UTF-8");         /* overlong '/' */
    FAIL_N("{\"\xed\xa0\x80\":1}", 8, 0, LF_ERR_FORMAT, "not valid UTF-8");     /* UTF-16 surrogate */
    FAIL_N("{\"\xf4\x90\x80\x80\":1}", 9, 0, LF_ERR_FORMAT, "not valid UTF-8"); /* above U+10FFFF */
    FAIL_N("{}  \xe2\x82", 6, 0, LF_ERR_FORMAT, "not valid UTF-8");             /* truncated at the end */
    FAIL_N("{\"a\x00\":1}", 7, 0, LF_ERR_FORMAT, "control byte 0x00 at header byte 3");
    FAIL_N("{}\x00     ", 8, 0, LF_ERR_FORMAT, "control byte 0x00");
    FAIL("{\"a\tb\":1}", 0, LF_ERR_FORMAT, "control byte 0x09 at header byte 3 inside a string");
    FAIL("{\x01}", 0, LF_ERR_FORMAT, "control byte 0x01");
    FAIL("{\"w\\u0000x\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0, LF_ERR_FORMAT,
         "\\u0000 (NUL) at header byte 3");
    FAIL("{\"__metadata__\":{\"k\":\"v\\u0000\"}}", 0, LF_ERR_FORMAT, "\\u0000 (NUL)");
    FAIL("{\"a\\\\\\u0000\":1}", 0, LF_ERR_FORMAT, "\\u0000 (NUL)"); /* escaped backslash, then \u0000 */
    FAIL("{\"a\":", 0, LF_ERR_FORMAT, "not valid JSON");
    FAIL("{\"a\":1,}", 0, LF_ERR_FORMAT, "not valid JSON (parse error at header byte 7");
    FAIL("{\"a\":\"\\ud800\"}", 0, LF_ERR_FORMAT, "not valid JSON"); /* lone surrogate escape */
    FAIL("        ", 0, LF_ERR_FORMAT, "not valid JSON");
    FAIL("[]", 0, LF_ERR_FORMAT, "header is an array, expected a JSON object");
    FAIL("\"x\"     ", 0, LF_ERR_FORMAT, "header is a string, expected a JSON object");
    FAIL("  {}", 0, LF_ERR_FORMAT, "must begin with '{', found byte 0x20");
    FAIL("\xef\xbb\xbf{}", 0, LF_ERR_FORMAT, "must begin with '{', found byte 0xef"); /* BOM */
    FAIL("{}x", 0, LF_ERR_FORMAT, "unexpected bytes after the JSON object at header byte 2");
    FAIL("{} {}", 0, LF_ERR_FORMAT, "unexpected bytes after the JSON object");
}

static void test_reject_metadata(void) {
    FAIL("{\"__metadata__\":\"x\"}", 0, LF_ERR_FORMAT, "__metadata__ is a string, expected an object");
    FAIL("{\"__metadata__\":[\"a\"]}", 0, LF_ERR_FORMAT, "__metadata__ is an array, expected an object");
    FAIL("{\"__metadata__\":null}", 0, LF_ERR_FORMAT, "__metadata__ is null");
    FAIL("{\"__metadata__\":{\"a\":\"1\",\"k\":1}}", 0, LF_ERR_FORMAT,
         "__metadata__ value of key \"k\" is a number, expected a string");
    FAIL("{\"__metadata__\":{\"k\":{}}}", 0, LF_ERR_FORMAT, "value of key \"k\" is an object");
    FAIL("{\"__metadata__\":{\"k\":true}}", 0, LF_ERR_FORMAT, "value of key \"k\" is a boolean");
    FAIL("{\"__metadata__\":{\"k\":\"1\",\"j\":\"2\",\"k\":\"3\"}}", 0, LF_ERR_FORMAT,
         "duplicate __metadata__ key \"k\"");
    FAIL("{\"__metadata__\":{},\"__metadata__\":{}}", 0, LF_ERR_FORMAT, "duplicate __metadata__ entry");
}

static void test_reject_entries(void) {
    FAIL("{\"w\":[1]}", 0, LF_ERR_FORMAT, "tensor \"w\": entry is an array, expected an object");
    FAIL("{\"w\":\"F16\"}", 0, LF_ERR_FORMAT, "tensor \"w\": entry is a string");
    FAIL("{\"w\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, LF_ERR_FORMAT, "tensor \"w\": dtype is missing");
    FAIL("{\"w\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1, LF_ERR_FORMAT, "tensor \"w\": shape is missing");
    FAIL("{\"w\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1, LF_ERR_FORMAT, "tensor \"w\": data_offsets is missing");
    FAIL("{" ENT("w", "U8", "[1]", "[0,1]") ",\"v\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],"
         "\"data_offsets\":[1,2]}}", 2, LF_ERR_FORMAT, "tensor \"v\": duplicate key \"dtype\"");
    FAIL("{\"w\":{\"dtype\":8,\"shape\":[1],\"data_offsets\":[0,1]}}", 1, LF_ERR_FORMAT,
         "tensor \"w\": dtype is a number, expected a string");
    FAIL("{\"w\":{\"dtype\":\"U8\",\"shape\":\"1\",\"data_offsets\":[0,1]}}", 1, LF_ERR_FORMAT,
         "tensor \"w\": shape is a string, expected an array");
    FAIL("{\"w\":{\"dtype\":\"U8\",\"shape\":{},\"data_offsets\":[0,1]}}", 1, LF_ERR_FORMAT,
         "shape is an object, expected an array");
    FAIL("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":{\"a\":0}}}", 1, LF_ERR_FORMAT,
         "tensor \"w\": data_offsets is an object, expected an array");
    FAIL("{\"w\":{\"dtype\":\"U8\",\"shape\":[1,\"2\"],\"data_offsets\":[0,2]}}", 2, LF_ERR_FORMAT,
         "tensor \"w\": shape[1] is a string, expected a non-negative integer");
    FAIL("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,null]}}", 1, LF_ERR_FORMAT,
         "tensor \"w\": data_offsets[1] is null, expected a non-negative integer");
    FAIL("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", 1, LF_ERR_FORMAT,
         "tensor \"w\": data_offsets has 3 elements, expected 2");
    FAIL("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 1, LF_ERR_FORMAT,
         "data_offsets has 1 elements, expected 2");
    FAIL("{" ENT("w", "F12", "[1]", "[0,1]") "}", 1, LF_ERR_DTYPE, "tensor \"w\": unknown dtype \"F12\"");
    FAIL("{" ENT("w", "f16", "[1]", "[0,2]") "}", 2, LF_ERR_DTYPE, "unknown dtype \"f16\"");
    FAIL("{" ENT("w", "U8", "[1,1,1,1,1,1,1,1,1]", "[0,1]") "}", 1, LF_ERR_FORMAT,
         "tensor \"w\": rank 9 exceeds the maximum of 8");
    /* Numbers: negative, non-integral, >= 2^53, infinite. */
    FAIL("{" ENT("w", "U8", "[-1]", "[0,0]") "}", 0, LF_ERR_FORMAT, "tensor \"w\": shape[0] = -1 is negative");
    FAIL("{" ENT("w", "U8", "[-0]", "[0,0]") "}", 0, LF_ERR_FORMAT, "shape[0] = -0 is negative");
    FAIL("{" ENT("w", "U8", "[1.5]", "[0,1]") "}", 1, LF_ERR_FORMAT, "tensor \"w\": shape[0] = 1.5 is not an integer");
    FAIL("{" ENT("w", "U8", "[9007199254740992]", "[0,1]") "}", 1, LF_ERR_FORMAT, "shape[0] = 9007199254740992 is 2^53");
    FAIL("{" ENT("w", "U8", "[1]", "[-1,0]") "}", 1, LF_ERR_FORMAT, "tensor \"w\": data_offsets[0] = -1 is negative");
    FAIL("{" ENT("w", "U8", "[1]", "[0,0.5]") "}", 1, LF_ERR_FORMAT, "data_offsets[1] = 0.5 is not an integer");
    FAIL("{" ENT("w", "U8", "[1]", "[0,1e400]") "}", 1, LF_ERR_FORMAT, "data_offsets[1] = inf is not finite");
    FAIL("{" ENT("w", "U8", "[1]", "[0,9007199254740993]") "}", 1, LF_ERR_FORMAT, "is 2^53 or more");
    /* Sizes. */
    FAIL("{" ENT("w", "U8", "[4294967296,4294967296]", "[0,0]") "}", 0, LF_ERR_FORMAT,
         "tensor \"w\": element count of shape (4294967296, 4294967296) overflows");
    FAIL("{" ENT("w", "F64", "[1099511627776,1048576]", "[0,0]") "}", 0, LF_ERR_FORMAT,
         "tensor \"w\": size in bits of shape (1099511627776, 1048576) of F64 overflows");
    FAIL("{" ENT("w", "F4", "[3]", "[0,1]") "}", 1, LF_ERR_FORMAT,
         "tensor \"w\": 3 elements of F4 are 12 bits, not a whole number of bytes");
    FAIL("{" ENT("w", "F6_E2M3", "[1]", "[0,1]") "}", 1, LF_ERR_FORMAT, "1 elements of F6_E2M3 are 6 bits");
    FAIL("{" ENT("w", "U8", "[0]", "[8,4]") "}", 0, LF_ERR_FORMAT, "tensor \"w\": data_offsets [8, 4] end before begin");
    FAIL("{" ENT("w", "F32", "[2]", "[0,4]") "}", 4, LF_ERR_FORMAT,
         "tensor \"w\": data_offsets [0, 4] span 4 bytes, expected 8 for F32 shape (2,)");
    FAIL("{" ENT("w", "F16", "[2,3]", "[0,13]") "}", 13, LF_ERR_FORMAT, "span 13 bytes, expected 12 for F16 shape (2, 3)");
    /* Large offsets are exact (cJSON's valueint would saturate at INT_MAX). */
    FAIL("{" ENT("w", "U8", "[3000000000]", "[0,3000000000]") "}", 0, LF_ERR_FORMAT,
         "tensor data ends at buffer offset 3000000000, past the end of the file");
}

static void test_reject_layout(void) {
    FAIL("{" ENT("w", "U8", "[4]", "[4,8]") "}", 8, LF_ERR_FORMAT,
         "tensor \"w\": first tensor data begins at 4, expected 0");
    FAIL("{" ENT("a", "U8", "[4]", "[0,4]") "," ENT("b", "U8", "[4]", "[8,12]") "}", 12, LF_ERR_FORMAT,
         "tensor \"b\": gap in the byte buffer: data begins at 8, expected 4 (end of \"a\")");
    FAIL("{" ENT("a", "U8", "[8]", "[0,8]") "," ENT("b", "U8", "[8]", "[4,12]") "}", 12, LF_ERR_FORMAT,
         "tensor \"b\": overlaps \"a\": data begins at 4, expected 8");
    /* Many tensors on one region (attacks/README.md, proposal 4). */
    FAIL("{" ENT("a", "U8", "[4]", "[0,4]") "," ENT("b", "U8", "[4]", "[0,4]") "," ENT("c", "U8", "[4]", "[0,4]") "}",
         4, LF_ERR_FORMAT, "tensor \"b\": overlaps \"a\"");
    /* A zero-size tensor inside another one. */
    FAIL("{" ENT("a", "U8", "[8]", "[0,8]") "," ENT("z", "U8", "[0]", "[4,4]") "}", 8, LF_ERR_FORMAT,
         "tensor \"z\": overlaps \"a\"");
    /* A zero-size tensor past the end of the data. */
    FAIL("{" ENT("a", "U8", "[8]", "[0,8]") "," ENT("z", "U8", "[0]", "[9,9]") "}", 8, LF_ERR_FORMAT,
         "tensor \"z\": gap in the byte buffer");
    /* Trailing bytes (the polyglot case) and data past EOF. */
    FAIL("{" ENT("a", "U8", "[4]", "[0,4]") "}", 38, LF_ERR_FORMAT,
         "34 trailing bytes after the last tensor (data ends at buffer offset 4, buffer is 38 bytes)");
    FAIL("{}", 1, LF_ERR_FORMAT, "1 trailing bytes after the last tensor");
    FAIL("{" ENT("a", "U8", "[4]", "[0,4]") "}", 3, LF_ERR_FORMAT,
         "tensor data ends at buffer offset 4, past the end of the file (buffer is 3 bytes)");
    /* Duplicate names (with distinct, contiguous offsets: only the name is wrong). */
    FAIL("{" ENT("w", "U8", "[1]", "[0,1]") "," ENT("x", "U8", "[1]", "[1,2]") "," ENT("w", "U8", "[1]", "[2,3]") "}", 3,
         LF_ERR_FORMAT, "duplicate tensor name \"w\"");
}

static void test_reject_count(void) {
    const size_t n = 1000001; /* one over the cap; entries need not be valid for the count check */
    size_t len = 2 + n * 5 - 1;
    char *hdr = malloc(len + 1);
    hdr[0] = '{';
    for (size_t i = 0; i < n; i++) memcpy(hdr + 1 + i * 5, "\"\":0,", 5);
    hdr[len - 1] = '}';
    hdr[len] = '\0';
    FAIL_N(hdr, len, 0, LF_ERR_FORMAT, "more than 1000000 tensors");
    free(hdr);
    /* JSON value cap (bounds cJSON's memory): an unknown key holding 17,000,000 numbers. */
    const size_t nv = 17000001;
    len = 11 + 2 * nv;
    hdr = malloc(len + 1);
    memcpy(hdr, "{\"x\":{\"y\":[", 11);
    for (size_t i = 0; i < nv; i++) memcpy(hdr + 11 + 2 * i, "0,", 2);
    memcpy(hdr + len - 3, "]}}", 3);
    hdr[len] = '\0';
    FAIL_N(hdr, len, 0, LF_ERR_FORMAT, "more than 17000000 JSON values");
    free(hdr);
}

/* ---- files on disk ---------------------------------------------------------------------------- */

static void test_open_errors(void) {
    char path[600];
    lf_st_file *f = (lf_st_file *)(uintptr_t)1;
    path_in(path, sizeof path, "does-not-exist.safetensors");
    LF_CHECK(lf_st_open(path, &f) == LF_ERR_IO && f == NULL, "missing file");
    LF_CHECK(strstr(lf_last_error(), path) && strstr(lf_last_error(), "cannot open"), "msg: %s", lf_last_error());
    LF_CHECK(lf_st_open(g_dir, &f) == LF_ERR_IO && strstr(lf_last_error(), "not a regular file"), "dir: %s",
             lf_last_error());
    /* A FIFO with no writer is refused at once (a blocking open would hang; the alarm fails the test). */
    path_in(path, sizeof path, "fifo.safetensors");
    LF_CHECK(mkfifo(path, 0600) == 0, "mkfifo %s", path);
    alarm(20);
    LF_CHECK(lf_st_open(path, &f) == LF_ERR_IO && f == NULL && strstr(lf_last_error(), "not a regular file (it is a FIFO)") &&
                 strstr(lf_last_error(), path),
             "FIFO: %s", lf_last_error());
    alarm(0);
    unlink(path);
    path_in(path, sizeof path, "zero.safetensors");
    lf_test_write_file(path, "", 0);
    LF_CHECK(lf_st_open(path, &f) == LF_ERR_FORMAT && strstr(lf_last_error(), "0 bytes, too small"), "empty: %s",
             lf_last_error());
    LF_CHECK(strstr(lf_last_error(), path) != NULL, "names the file: %s", lf_last_error());
    path_in(path, sizeof path, "five.safetensors");
    lf_test_write_file(path, "\x02\0\0\0\0", 5);
    LF_CHECK(lf_st_open(path, &f) == LF_ERR_FORMAT && strstr(lf_last_error(), "5 bytes, too small"), "5 bytes: %s",
             lf_last_error());
    /* Valid file followed by junk (polyglot). */
    const char *hdr = "{" ENT("a", "U8", "[2]", "[0,2]") "}";
    size_t size;
    unsigned char *img = mk_image(hdr, strlen(hdr), "xyextra_bogus_data_for_polyglot_file", 36, &size);
    path_in(path, sizeof path, "polyglot.safetensors");
    lf_test_write_file(path, img, size);
    free(img);
    LF_CHECK(lf_st_open(path, &f) == LF_ERR_FORMAT && strstr(lf_last_error(), "34 trailing bytes"), "polyglot: %s",
             lf_last_error());
    LF_CHECK(strstr(lf_last_error(), "polyglot.safetensors") != NULL, "names the file: %s", lf_last_error());
    /* Header running past EOF on disk. */
    path_in(path, sizeof path, "short.safetensors");
    lf_test_write_file(path, "\x40\0\0\0\0\0\0\0{}", 10);
    LF_CHECK(lf_st_open(path, &f) == LF_ERR_FORMAT && strstr(lf_last_error(), "header length 64 runs past"),
             "short: %s", lf_last_error());
    /* The same bytes, well-formed, open fine. */
    img = mk_image(hdr, strlen(hdr), "xy", 2, &size);
    path_in(path, sizeof path, "handmade.safetensors");
    lf_test_write_file(path, img, size);
    free(img);
    f = NULL;
    LF_CHECK(lf_st_open(path, &f) == LF_OK, "handmade: %s", lf_last_error());
    LF_CHECK(f && lf_st_count(f) == 1 && memcmp(lf_st_at(f, 0)->data, "xy", 2) == 0, "handmade data");
    lf_st_close(f);
    lf_st_close(NULL);
}

/* ---- writer ----------------------------------------------------------------------------------- */

static void test_writer_rejects(void) {
    lf_st_writer *w = NULL;
    LF_CHECK(lf_st_writer_new(&w) == LF_OK, "new");
    const int64_t s2[] = {2}, s3[] = {3}, sneg[] = {-1}, s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    const int64_t sbig[] = {4294967296, 4294967296};
    unsigned char buf[16] = {0};
    LF_CHECK(lf_st_writer_add(w, "a", LF_F32, 1, s2, buf, 8) == LF_OK, "add a: %s", lf_last_error());
    LF_CHECK(lf_st_writer_add(w, "a", LF_F32, 1, s2, buf, 8) == LF_ERR_ARG &&
                 strstr(lf_last_error(), "duplicate tensor name \"a\""),
             "duplicate: %s", lf_last_error());
    LF_CHECK(lf_st_writer_add(w, "b", LF_F32, 1, s2, buf, 7) == LF_ERR_SHAPE &&
                 strstr(lf_last_error(), "tensor \"b\": nbytes is 7, expected 8 for 2 elements of F32"),
             "nbytes: %s", lf_last_error());
    LF_CHECK(lf_st_writer_add(w, "b", LF_F16, 1, s3, buf, 8) == LF_ERR_SHAPE &&
                 strstr(lf_last_error(), "nbytes is 8, expected 6"),
             "nbytes f16: %s", lf_last_error());
    LF_CHECK(lf_st_writer_add(w, "c", LF_F4, 1, s3, buf, 2) == LF_ERR_SHAPE &&
                 strstr(lf_last_error(), "not a whole number of bytes"),
             "F4 odd: %s", lf_last_error());
    LF_CHECK(lf_st_writer_add(w, "d", LF_DTYPE_INVALID, 1, s2, buf, 2) == LF_ERR_DTYPE &&
                 strstr(lf_last_error(), "invalid dtype"),
             "dtype: %s", lf_last_error());
    LF_CHECK(lf_st_writer_add(w, "e", LF_U8, 9, s9, buf, 1) == LF_ERR_ARG && strstr(lf_last_error(), "rank 9"),
             "rank: %s", lf_last_error());
    LF_CHECK(lf_st_writer_add(w, "f", LF_U8, 1, sneg, buf, 0) == LF_ERR_SHAPE &&
                 strstr(lf_last_error(), "dimension 0 is -1"),
             "negative dim: %s", lf_last_error());
    LF_CHECK(lf_st_writer_add(w, "g", LF_U8, 2, sbig, buf, 0) == LF_ERR_SHAPE &&
                 strstr(lf_last_error(), "element count overflows"),
             "overflow: %s", lf_last_error());
    LF_CHECK(lf_st_writer_add(w, "__metadata__", LF_U8, 1, s2, buf, 2) == LF_ERR_ARG &&
                 strstr(lf_last_error(), "reserved"),
             "reserved: %s", lf_last_error());
    LF_CHECK(lf_st_writer_add(w, "bad\xff", LF_U8, 1, s2, buf, 2) == LF_ERR_ARG &&
                 strstr(lf_last_error(), "not valid UTF-8"),
             "utf8 name: %s", lf_last_error());
    LF_CHECK(lf_st_writer_add(w, "h", LF_U8, 1, s2, NULL, 2) == LF_ERR_ARG && strstr(lf_last_error(), "data is NULL"),
             "NULL data: %s", lf_last_error());
    LF_CHECK(lf_st_writer_meta(w, "k\xc0", "v") == LF_ERR_ARG && strstr(lf_last_error(), "key"), "utf8 key: %s",
             lf_last_error());
    LF_CHECK(lf_st_writer_meta(w, "k", "\xed\xa0\x80") == LF_ERR_ARG && strstr(lf_last_error(), "value"),
             "utf8 value: %s", lf_last_error());
    LF_CHECK(lf_st_writer_meta(w, "k", NULL) == LF_ERR_ARG, "NULL value");
    /* Rejected adds left the writer usable: commit gives exactly "a". */
    char path[600];
    path_in(path, sizeof path, "after_rejects.safetensors");
    LF_CHECK(lf_st_writer_commit(w, path) == LF_OK, "commit: %s", lf_last_error());
    lf_st_writer_free(w);
    lf_st_file *f = NULL;
    LF_CHECK(lf_st_open(path, &f) == LF_OK && lf_st_count(f) == 1 && lf_st_find(f, "a"), "only a: %s",
             lf_last_error());
    lf_st_close(f);
    lf_st_writer_free(NULL);
}

/* Many tensors through the writer (hash-based duplicate check, big header). */
static void test_writer_many(void) {
    lf_st_writer *w = NULL;
    lf_st_writer_new(&w);
    const int n = 5000;
    uint16_t *vals = malloc((size_t)n * 3 * sizeof *vals);
    for (int i = 0; i < n * 3; i++) vals[i] = (uint16_t)(i * 13);
    const int64_t s[] = {3};
    int fails = 0;
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "lora_unet_%d.lora_down.weight", n - i);
        if (lf_st_writer_add(w, name, LF_BF16, 1, s, vals + 3 * i, 6) != LF_OK) fails++;
    }
    LF_CHECK(fails == 0, "%d adds failed: %s", fails, lf_last_error());
    LF_CHECK(lf_st_writer_add(w, "lora_unet_77.lora_down.weight", LF_BF16, 1, s, vals, 6) == LF_ERR_ARG,
             "duplicate among many");
    char path[600];
    path_in(path, sizeof path, "many.safetensors");
    LF_CHECK(lf_st_writer_commit(w, path) == LF_OK, "commit: %s", lf_last_error());
    lf_st_writer_free(w);
    lf_st_file *f = NULL;
    LF_CHECK(lf_st_open(path, &f) == LF_OK, "open: %s", lf_last_error());
    if (f) {
        int bad = 0;
        for (int i = 0; i < n; i++) {
            char name[32];
            snprintf(name, sizeof name, "lora_unet_%d.lora_down.weight", n - i);
            const lf_st_tensor *t = lf_st_find(f, name);
            if (!t || t != lf_st_at(f, (size_t)i) || memcmp(t->data, vals + 3 * i, 6) != 0) bad++;
        }
        LF_CHECK(bad == 0, "%d tensors wrong", bad);
        lf_st_close(f);
    }
    free(vals);
}

static void test_commit_failures(void) {
    const int64_t s[] = {4096};
    unsigned char *big = calloc(4096, 4);
    char path[600], nodir[600];
    lf_st_writer *w = NULL;
    lf_st_writer_new(&w);
    LF_CHECK(lf_st_writer_add(w, "big", LF_F32, 1, s, big, 4096 * 4) == LF_OK, "add: %s", lf_last_error());

    /* 1. Destination in a directory that does not exist: error, nothing created. */
    path_in(nodir, sizeof nodir, "no/such/dir");
    path_in(path, sizeof path, "no/such/dir/out.safetensors");
    LF_CHECK(lf_st_writer_commit(w, path) == LF_ERR_IO, "commit into a missing directory succeeded");
    LF_CHECK(strstr(lf_last_error(), "cannot create temporary file") && strstr(lf_last_error(), path), "msg: %s",
             lf_last_error());
    struct stat sb;
    LF_CHECK(stat(path, &sb) != 0 && stat(nodir, &sb) != 0, "something was created");

    /* 2. Existing destination + a write error (RLIMIT_FSIZE, short write then EFBIG): destination untouched. */
    path_in(path, sizeof path, "existing.safetensors");
    const char *orig = "original contents, not a safetensors file";
    lf_test_write_file(path, orig, strlen(orig));
    struct rlimit old;
    if (getrlimit(RLIMIT_FSIZE, &old) == 0) {
        struct rlimit lim = old;
        lim.rlim_cur = 1000;
        void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
            lf_status st = lf_st_writer_commit(w, path);
            setrlimit(RLIMIT_FSIZE, &old);
            LF_CHECK(st == LF_ERR_IO, "commit over the file size limit succeeded");
            LF_CHECK(strstr(lf_last_error(), "write of temporary file") && strstr(lf_last_error(), path), "msg: %s",
                     lf_last_error());
        } else {
            printf("note: setrlimit failed, write-error case skipped\n");
        }
        signal(SIGXFSZ, prev);
    }
    size_t n = 0;
    unsigned char *now = read_file(path, &n);
    LF_CHECK(now && n == strlen(orig) && memcmp(now, orig, n) == 0, "existing destination was modified");
    free(now);
    LF_CHECK(lf_test_count_files(g_dir, ".tmp.") == 0, "temporary file left after a failed write");

    /* 3. Destination is a non-empty directory: refused before writing, directory intact, no temporary file. */
    path_in(path, sizeof path, "isdir.safetensors");
    mkdir(path, 0755);
    char inner[700];
    snprintf(inner, sizeof inner, "%s/keep", path);
    lf_test_write_file(inner, "k", 1);
    LF_CHECK(lf_st_writer_commit(w, path) == LF_ERR_ARG && strstr(lf_last_error(), "is a directory, not a regular file"),
             "commit onto a directory: %s", lf_last_error());
    LF_CHECK(stat(inner, &sb) == 0 && S_ISREG(sb.st_mode), "directory contents changed");
    LF_CHECK(lf_test_tmp_files(g_dir, 0) == 0, "temporary file left after a refused commit");
    unlink(inner);
    rmdir(path);

    /* 4. A successful commit replaces an existing file atomically, with the usual permissions. */
    path_in(path, sizeof path, "existing.safetensors");
    LF_CHECK(lf_st_writer_commit(w, path) == LF_OK, "commit over existing: %s", lf_last_error());
    lf_st_file *f = NULL;
    LF_CHECK(lf_st_open(path, &f) == LF_OK && lf_st_count(f) == 1, "reopen: %s", lf_last_error());
    mode_t um = umask(0);
    umask(um);
    LF_CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == (0666 & ~um), "mode %o, umask %o",
             (unsigned)(sb.st_mode & 0777), (unsigned)um);
    lf_st_close(f);
    LF_CHECK(lf_test_count_files(g_dir, ".tmp.") == 0, "temporary files left");
    LF_CHECK(lf_st_writer_commit(w, "") == LF_ERR_ARG, "empty path");

    /* 5. With options: an existing file is kept unless overwrite; an input is never the destination. */
    size_t n0 = 0;
    unsigned char *before = read_file(path, &n0);
    lf_st_commit_opts keep = {0, NULL, 0};
    LF_CHECK(lf_st_writer_commit_opts(w, path, &keep) == LF_ERR_ARG && strstr(lf_last_error(), "already exists"),
             "existing without overwrite: %s", lf_last_error());
    char link_path[700];
    path_in(link_path, sizeof link_path, "hardlink.safetensors");
    LF_CHECK(link(path, link_path) == 0, "link");
    const char *inputs[] = {path};
    lf_st_commit_opts in_opts = {1, inputs, 1};
    LF_CHECK(lf_st_writer_commit_opts(w, link_path, &in_opts) == LF_ERR_ARG &&
                 strstr(lf_last_error(), "is the same file as the input"),
             "hard link to the input: %s", lf_last_error());
    unsigned char *after = read_file(path, &n);
    LF_CHECK(before && after && n == n0 && memcmp(before, after, n) == 0, "refused commits changed the file");
    free(before);
    free(after);
    unlink(link_path);
    LF_CHECK(lf_test_tmp_files(g_dir, 0) == 0, "temporary files left after refusals");
    lf_st_writer_free(w);
    free(big);
}

int main(void) {
    if (lf_test_tmpdir(g_dir, sizeof g_dir, "test_st")) {
        fprintf(stderr, "mkdtemp %s: %s\n", g_dir, strerror(errno));
        return 1;
    }
    test_roundtrip();
    test_writer_empty();
    test_unaligned();
    test_valid_variants();
    test_many();
    test_reject_framing();
    test_reject_text();
    test_reject_metadata();
    test_reject_entries();
    test_reject_layout();
    test_reject_count();
    test_open_errors();
    test_writer_rejects();
    test_writer_many();
    test_commit_failures();
    lf_test_rmtree(g_dir);
    return lf_test_finish();
}
