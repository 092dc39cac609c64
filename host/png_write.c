/* png_write.c: SHA-256, A1111 hashes and infotext, PNG writing/reading with libpng (lf_png.h). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <png.h>

#include "lorafuse/lf_png.h"
#include "strbuf.h"

/* ---- SHA-256 (FIPS 180-4) --------------------------------------------------------------------- */
static const uint32_t lf_sha_k[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u};

static uint32_t lf_rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void lf_sha256_block(lf_sha256 *s, const unsigned char *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = lf_rotr(w[i - 15], 7) ^ lf_rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = lf_rotr(w[i - 2], 17) ^ lf_rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = lf_rotr(e, 6) ^ lf_rotr(e, 11) ^ lf_rotr(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + S1 + ch + lf_sha_k[i] + w[i];
        uint32_t S0 = lf_rotr(a, 2) ^ lf_rotr(a, 13) ^ lf_rotr(a, 22);
        uint32_t mj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = S0 + mj;
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    s->h[0] += a;
    s->h[1] += b;
    s->h[2] += c;
    s->h[3] += d;
    s->h[4] += e;
    s->h[5] += f;
    s->h[6] += g;
    s->h[7] += h;
}

void lf_sha256_init(lf_sha256 *s) {
    static const uint32_t h0[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                                   0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
    memcpy(s->h, h0, sizeof h0);
    s->len = 0;
    s->nbuf = 0;
}

void lf_sha256_update(lf_sha256 *s, const void *data, size_t n) {
    const unsigned char *p = data;
    s->len += n;
    if (s->nbuf) {
        size_t k = 64 - s->nbuf < n ? 64 - s->nbuf : n;
        memcpy(s->buf + s->nbuf, p, k);
        s->nbuf += k;
        p += k;
        n -= k;
        if (s->nbuf < 64) return;
        lf_sha256_block(s, s->buf);
        s->nbuf = 0;
    }
    for (; n >= 64; p += 64, n -= 64) lf_sha256_block(s, p);
    memcpy(s->buf, p, n);
    s->nbuf = n;
}

void lf_sha256_final(lf_sha256 *s, unsigned char digest[32]) {
    uint64_t bits = s->len * 8;
    unsigned char pad[72] = {0x80};
    size_t npad = (s->nbuf < 56 ? 56 : 120) - s->nbuf;
    for (int i = 0; i < 8; i++) pad[npad + (size_t)i] = (unsigned char)(bits >> (56 - 8 * i));
    uint64_t keep = s->len;
    lf_sha256_update(s, pad, npad + 8);
    s->len = keep;
    for (int i = 0; i < 8; i++) {
        digest[4 * i] = (unsigned char)(s->h[i] >> 24);
        digest[4 * i + 1] = (unsigned char)(s->h[i] >> 16);
        digest[4 * i + 2] = (unsigned char)(s->h[i] >> 8);
        digest[4 * i + 3] = (unsigned char)s->h[i];
    }
}

void lf_sha256_hex(const unsigned char digest[32], char hex[65]) {
    static const char x[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = x[digest[i] >> 4];
        hex[2 * i + 1] = x[digest[i] & 15];
    }
    hex[64] = '\0';
}

lf_status lf_sha256_file(const char *path, uint64_t from, char hex[65]) {
    FILE *f = fopen(path, "rb");
    if (!f) return lf_err(LF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (from && fseeko(f, (off_t)from, SEEK_SET) != 0) {
        fclose(f);
        return lf_err(LF_ERR_IO, "%s: cannot seek to %llu", path, (unsigned long long)from);
    }
    unsigned char *buf = malloc(1 << 20);
    if (!buf) {
        fclose(f);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    lf_sha256 s;
    lf_sha256_init(&s);
    size_t n;
    while ((n = fread(buf, 1, 1 << 20, f)) > 0) lf_sha256_update(&s, buf, n);
    int bad = ferror(f);
    fclose(f);
    free(buf);
    if (bad) return lf_err(LF_ERR_IO, "%s: read error", path);
    unsigned char d[32];
    lf_sha256_final(&s, d);
    lf_sha256_hex(d, hex);
    return LF_OK;
}

lf_status lf_a1111_model_hash(const char *path, char out[11]) {
    char hex[65];
    lf_status st = lf_sha256_file(path, 0, hex);
    if (st) return st;
    memcpy(out, hex, 10);
    out[10] = '\0';
    return LF_OK;
}

lf_status lf_a1111_lora_hash(const char *path, char out[13]) {
    FILE *f = fopen(path, "rb");
    if (!f) return lf_err(LF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char h[8];
    size_t got = fread(h, 1, 8, f);
    fclose(f);
    if (got != 8) return lf_err(LF_ERR_FORMAT, "%s: not a safetensors file (shorter than 8 bytes)", path);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | h[i];
    char hex[65];
    lf_status st = lf_sha256_file(path, n + 8, hex);
    if (st) return st;
    memcpy(out, hex, 12);
    out[12] = '\0';
    return LF_OK;
}

/* ---- parameters text (strbuf.h) ------------------------------------------------------------------ */

/* infotext_utils.quote: JSON string (json.dumps, ensure_ascii=False) when the value holds ',' ':' '\n'. */
static void lf_sb_quoted(lf_sbuf *b, const char *v) {
    if (strpbrk(v, ",:\n")) lf_sb_json(b, v);
    else lf_sb_str(b, v);
}

static void lf_sb_field(lf_sbuf *b, int *first, const char *key, const char *value) {
    if (!*first) lf_sb_str(b, ", ");
    *first = 0;
    lf_sb_str(b, key);
    lf_sb_str(b, ": ");
    lf_sb_quoted(b, value);
}

char *lf_infotext_format(const lf_infotext *p) {
    lf_sbuf b = {0};
    char v[64];
    lf_sb_str(&b, p->prompt ? p->prompt : "");
    if (p->negative && *p->negative) {
        lf_sb_str(&b, "\nNegative prompt: ");
        lf_sb_str(&b, p->negative);
    }
    lf_sb_str(&b, "\n");
    int first = 1;
    snprintf(v, sizeof v, "%d", p->steps);
    lf_sb_field(&b, &first, "Steps", v);
    if (p->sampler) lf_sb_field(&b, &first, "Sampler", p->sampler);
    snprintf(v, sizeof v, "%.15g", p->cfg);
    lf_sb_field(&b, &first, "CFG scale", v);
    snprintf(v, sizeof v, "%lld", (long long)p->seed);
    lf_sb_field(&b, &first, "Seed", v);
    snprintf(v, sizeof v, "%dx%d", p->width, p->height);
    lf_sb_field(&b, &first, "Size", v);
    if (p->model_hash) lf_sb_field(&b, &first, "Model hash", p->model_hash);
    if (p->model) lf_sb_field(&b, &first, "Model", p->model);
    if (p->clip_skip > 1) {
        snprintf(v, sizeof v, "%d", p->clip_skip);
        lf_sb_field(&b, &first, "Clip skip", v);
    }
    if (p->rng) lf_sb_field(&b, &first, "RNG", p->rng);
    if (p->lora_hashes && *p->lora_hashes) lf_sb_field(&b, &first, "Lora hashes", p->lora_hashes);
    if (p->version) lf_sb_field(&b, &first, "Version", p->version);
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    /* A1111 strips the whole text. */
    size_t s = 0;
    while (b.s[s] && isspace((unsigned char)b.s[s])) s++;
    if (s) memmove(b.s, b.s + s, b.n - s + 1);
    return b.s;
}

/* ---- infotext parser -------------------------------------------------------------------------- */
static char *lf_strndup(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static int lf_is_word(unsigned char c) { return isalnum(c) || c == '_' || c >= 0x80; }

/* One match of A1111's re_param  \s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)  at s (NULL if
 * none); key/value spans returned, *end after the match. */
static int lf_param_at(const char *s, const char **k, size_t *kn, const char **v, size_t *vn, const char **end) {
    const char *p = s;
    while (*p && isspace((unsigned char)*p)) p++;
    if (!lf_is_word((unsigned char)*p)) return 0;
    const char *k0 = p++;
    while (*p && (lf_is_word((unsigned char)*p) || *p == ' ' || *p == '-' || *p == '/')) p++;
    if (p - k0 < 2 || *p != ':') return 0;
    *k = k0;
    *kn = (size_t)(p - k0);
    p++;
    while (*p && isspace((unsigned char)*p)) p++;
    const char *v0 = p;
    if (*p == '"') {
        const char *q = p + 1;
        size_t inner = 0;
        while (*q && *q != '"') {
            if (*q == '\\' && q[1]) q++;
            q++;
            inner++;
        }
        if (*q == '"' && inner > 0 && (q[1] == ',' || q[1] == '\0')) {
            *v = v0;
            *vn = (size_t)(q + 1 - v0);
            *end = q[1] ? q + 2 : q + 1;
            return 1;
        }
    }
    while (*p && *p != ',') p++;
    *v = v0;
    *vn = (size_t)(p - v0);
    *end = *p ? p + 1 : p;
    return 1;
}

/* json.loads of a quoted string (the escapes json.dumps writes; \uXXXX to UTF-8, BMP only). */
static char *lf_unquote(const char *v, size_t n) {
    if (n < 2 || v[0] != '"' || v[n - 1] != '"') return lf_strndup(v, n);
    char *o = malloc(n * 2 + 1);
    if (!o) return NULL;
    size_t k = 0;
    for (size_t i = 1; i + 1 < n; i++) {
        char c = v[i];
        if (c != '\\' || i + 2 >= n) {
            o[k++] = c;
            continue;
        }
        c = v[++i];
        switch (c) {
        case 'n': o[k++] = '\n'; break;
        case 'r': o[k++] = '\r'; break;
        case 't': o[k++] = '\t'; break;
        case 'b': o[k++] = '\b'; break;
        case 'f': o[k++] = '\f'; break;
        case 'u': {
            unsigned cp = 0;
            int ok = i + 4 < n - 1;
            for (int j = 1; ok && j <= 4; j++) {
                char h = v[i + (size_t)j];
                cp = cp * 16 + (unsigned)(isdigit((unsigned char)h) ? h - '0' : (tolower((unsigned char)h) - 'a' + 10));
                ok = isxdigit((unsigned char)h) != 0;
            }
            if (!ok) {
                o[k++] = 'u';
                break;
            }
            i += 4;
            if (cp < 0x80) o[k++] = (char)cp;
            else if (cp < 0x800) {
                o[k++] = (char)(0xc0 | cp >> 6);
                o[k++] = (char)(0x80 | (cp & 63));
            } else {
                o[k++] = (char)(0xe0 | cp >> 12);
                o[k++] = (char)(0x80 | ((cp >> 6) & 63));
                o[k++] = (char)(0x80 | (cp & 63));
            }
            break;
        }
        default: o[k++] = c;
        }
    }
    o[k] = '\0';
    return o;
}

static void lf_trim(char *s) {
    size_t n = strlen(s), a = 0;
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    while (s[a] && isspace((unsigned char)s[a])) a++;
    if (a) memmove(s, s + a, n - a + 1);
}

static size_t lf_count_params(const char *line) {
    size_t c = 0;
    const char *p = line;
    while (*p) {
        const char *k, *v, *e;
        size_t kn, vn;
        if (lf_param_at(p, &k, &kn, &v, &vn, &e)) {
            c++;
            p = e > p ? e : p + 1;
        } else {
            p++;
        }
    }
    return c;
}

void lf_infotext_parsed_free(lf_infotext_parsed *p) {
    if (!p) return;
    free(p->prompt);
    free(p->negative);
    for (size_t i = 0; i < p->n_kv; i++) {
        free(p->kv[i].key);
        free(p->kv[i].value);
    }
    free(p->kv);
    memset(p, 0, sizeof *p);
}

lf_status lf_infotext_parse(const char *text, lf_infotext_parsed *out) {
    memset(out, 0, sizeof *out);
    char *t = lf_strndup(text, strlen(text));
    if (!t) return lf_err(LF_ERR_NOMEM, "out of memory");
    lf_trim(t);
    char *last = strrchr(t, '\n');
    char *params = last ? last + 1 : t;
    if (lf_count_params(params) < 3) params = NULL;
    else if (last) *last = '\0';
    lf_sbuf pr = {0}, ng = {0};
    lf_sb_str(&pr, "");
    lf_sb_str(&ng, "");
    int neg = 0;
    if (params != t) {
        char *line = t;
        while (line) {
            char *nl = strchr(line, '\n');
            if (nl) *nl = '\0';
            char *l = line;
            lf_trim(l);
            if (!strncmp(l, "Negative prompt:", 16)) {
                neg = 1;
                l += 16;
                lf_trim(l);
            }
            lf_sbuf *b = neg ? &ng : &pr;
            if (b->n) lf_sb_str(b, "\n");
            lf_sb_str(b, l);
            line = nl ? nl + 1 : NULL;
        }
    }
    out->prompt = pr.s;
    out->negative = ng.s;
    lf_status st = pr.oom || ng.oom ? LF_ERR_NOMEM : LF_OK;
    size_t cap = params ? lf_count_params(params) : 0;
    if (!st && cap && !(out->kv = calloc(cap, sizeof *out->kv))) st = LF_ERR_NOMEM;
    const char *p = params;
    while (!st && p && *p && out->n_kv < cap) {
        const char *k, *v, *e;
        size_t kn, vn;
        if (!lf_param_at(p, &k, &kn, &v, &vn, &e)) {
            p++;
            continue;
        }
        lf_infotext_kv *kv = &out->kv[out->n_kv++];
        kv->key = lf_strndup(k, kn);
        kv->value = lf_unquote(v, vn);
        if (!kv->key || !kv->value) st = LF_ERR_NOMEM;
        if (kv->value) lf_trim(kv->value);
        p = e > p ? e : p + 1;
    }
    free(t);
    if (st) {
        lf_infotext_parsed_free(out);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    return LF_OK;
}

const char *lf_infotext_get(const lf_infotext_parsed *p, const char *key) {
    for (size_t i = p->n_kv; i-- > 0;)
        if (!strcmp(p->kv[i].key, key)) return p->kv[i].value;
    return NULL;
}

/* ---- PNG -------------------------------------------------------------------------------------- */
typedef struct {
    char msg[200];
} lf_png_errctx;

static void lf_png_error(png_structp png, png_const_charp msg) {
    lf_png_errctx *e = png_get_error_ptr(png);
    if (e) snprintf(e->msg, sizeof e->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void lf_png_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static int lf_is_latin1_ascii(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80) return 0;
    return 1;
}

/* Everything libpng touches after setjmp lives in this struct (no clobbered locals). */
typedef struct {
    FILE *f;
    png_structp png;
    png_infop info;
    png_textp text;
    png_bytep *rows;
    lf_png_errctx err;
} lf_png_w;

static int lf_png_write_body(lf_png_w *s, const uint8_t *rgb, int w, int h, const char *const *keys,
                             const char *const *texts, size_t n_text) {
    if (setjmp(png_jmpbuf(s->png))) return 0;
    png_init_io(s->png, s->f);
    png_set_IHDR(s->png, s->info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    for (size_t i = 0; i < n_text; i++) {
        s->text[i].compression = lf_is_latin1_ascii(texts[i]) ? PNG_TEXT_COMPRESSION_NONE : PNG_ITXT_COMPRESSION_NONE;
        s->text[i].key = (png_charp)(uintptr_t)keys[i];
        s->text[i].text = (png_charp)(uintptr_t)texts[i];
        s->text[i].text_length = strlen(texts[i]);
    }
    if (n_text) png_set_text(s->png, s->info, s->text, (int)n_text);
    png_write_info(s->png, s->info);
    for (int y = 0; y < h; y++) s->rows[y] = (png_bytep)(uintptr_t)(rgb + (size_t)y * (size_t)w * 3);
    png_write_image(s->png, s->rows);
    png_write_end(s->png, s->info);
    return 1;
}

lf_status lf_png_write(const char *path, const uint8_t *rgb, int w, int h, const char *const *keys,
                       const char *const *texts, size_t n_text) {
    if (w <= 0 || h <= 0) return lf_err(LF_ERR_ARG, "png: bad size %dx%d", w, h);
    lf_png_w s;
    memset(&s, 0, sizeof s);
    s.text = calloc(n_text ? n_text : 1, sizeof *s.text);
    s.rows = malloc((size_t)h * sizeof *s.rows);
    if (!s.text || !s.rows) {
        free(s.text);
        free(s.rows);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    lf_status st = LF_OK;
    s.f = fopen(path, "wb");
    if (!s.f) {
        st = lf_err(LF_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        goto done;
    }
    s.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &s.err, lf_png_error, lf_png_warning);
    s.info = s.png ? png_create_info_struct(s.png) : NULL;
    if (!s.png || !s.info) {
        st = lf_err(LF_ERR_NOMEM, "png: out of memory");
        goto done;
    }
    if (!lf_png_write_body(&s, rgb, w, h, keys, texts, n_text)) {
        st = lf_err(LF_ERR_IO, "%s: PNG write failed: %s", path, s.err.msg);
        goto done;
    }
done:
    if (s.png) png_destroy_write_struct(&s.png, &s.info);
    if (s.f && fclose(s.f) != 0 && !st) st = lf_err(LF_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    if (st && s.f) remove(path);
    free(s.text);
    free(s.rows);
    return st;
}

/* A1111 get_next_sequence_number: 1 + the largest integer before the first '-' of a file name. */
static long lf_next_number(const char *dir) {
    long best = -1;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        size_t k = 0;
        while (isdigit((unsigned char)n[k])) k++;
        if (!k || k > 9) continue;
        if (n[k] != '-' && n[k] != '.' && n[k] != '\0') continue;
        long v = strtol(n, NULL, 10);
        if (v > best) best = v;
    }
    closedir(d);
    return best + 1;
}

lf_status lf_png_save_next(const char *dir, int64_t seed, const uint8_t *rgb, int w, int h,
                           const char *parameters, char **path_out) {
    *path_out = NULL;
    if (!dir || !*dir) dir = ".";
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return lf_err(LF_ERR_IO, "%s: cannot create the output directory: %s", dir, strerror(errno));
    size_t cap = strlen(dir) + 64;
    char *tmp = malloc(cap), *name = malloc(cap);
    if (!tmp || !name) {
        free(tmp);
        free(name);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    snprintf(tmp, cap, "%s/.lorafuse-XXXXXX", dir);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        lf_status st = lf_err(LF_ERR_IO, "%s: cannot create a temporary file: %s", dir, strerror(errno));
        free(tmp);
        free(name);
        return st;
    }
    mode_t um = umask(0);
    umask(um);
    fchmod(fd, 0666 & ~um); /* mkstemp creates 0600; an image gets the usual permissions */
    close(fd);
    const char *key = "parameters";
    lf_status st = lf_png_write(tmp, rgb, w, h, &key, &parameters, parameters ? 1 : 0);
    if (st) {
        remove(tmp);
        free(tmp);
        free(name);
        return st;
    }
    long num = lf_next_number(dir);
    for (int tries = 0; tries < 100000; tries++, num++) {
        snprintf(name, cap, "%s/%05ld-%lld.png", dir, num, (long long)seed);
        if (link(tmp, name) == 0) {
            remove(tmp);
            free(tmp);
            *path_out = name;
            return LF_OK;
        }
        if (errno != EEXIST) break;
    }
    st = lf_err(LF_ERR_IO, "%s: cannot name the image: %s", name, strerror(errno));
    remove(tmp);
    free(tmp);
    free(name);
    return st;
}

typedef struct {
    FILE *f;
    png_structp png;
    png_infop info;
    png_bytep *rows;
    uint8_t *img;
    char *text;
    lf_png_errctx err;
    int w, h;
} lf_png_r;

static int lf_png_read_body(lf_png_r *s, const char *key, int want_pixels) {
    if (setjmp(png_jmpbuf(s->png))) return 0;
    png_init_io(s->png, s->f);
    png_read_info(s->png, s->info);
    s->w = (int)png_get_image_width(s->png, s->info);
    s->h = (int)png_get_image_height(s->png, s->info);
    if (want_pixels) {
        png_set_expand(s->png);
        png_set_strip_16(s->png);
        png_set_strip_alpha(s->png);
        png_set_gray_to_rgb(s->png);
        png_read_update_info(s->png, s->info);
        size_t stride = (size_t)s->w * 3;
        s->img = malloc(stride * (size_t)s->h + 1);
        s->rows = malloc(((size_t)s->h + 1) * sizeof *s->rows);
        if (!s->img || !s->rows) {
            snprintf(s->err.msg, sizeof s->err.msg, "out of memory");
            return 0;
        }
        for (int y = 0; y < s->h; y++) s->rows[y] = s->img + (size_t)y * stride;
        png_read_image(s->png, s->rows);
    } else {
        png_read_update_info(s->png, s->info);
        size_t stride = png_get_rowbytes(s->png, s->info);
        png_bytep row = s->img = malloc(stride + 1);
        if (!row) return 0;
        int passes = png_set_interlace_handling(s->png);
        for (int p = 0; p < passes; p++)
            for (int y = 0; y < s->h; y++) png_read_row(s->png, row, NULL);
    }
    png_read_end(s->png, s->info);
    if (key) {
        png_textp t;
        int n = 0;
        png_get_text(s->png, s->info, &t, &n);
        for (int i = 0; i < n; i++)
            if (!strcmp(t[i].key, key)) {
                size_t len = t[i].compression >= PNG_ITXT_COMPRESSION_NONE ? t[i].itxt_length : t[i].text_length;
                free(s->text);
                s->text = lf_strndup(t[i].text, len);
            }
    }
    return 1;
}

lf_status lf_png_read(const char *path, uint8_t **rgb, int *w, int *h, const char *key, char **text) {
    if (rgb) *rgb = NULL;
    if (text) *text = NULL;
    lf_png_r s;
    memset(&s, 0, sizeof s);
    lf_status st = LF_OK;
    s.f = fopen(path, "rb");
    if (!s.f) return lf_err(LF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char sig[8];
    if (fread(sig, 1, 8, s.f) != 8 || png_sig_cmp(sig, 0, 8)) {
        fclose(s.f);
        return lf_err(LF_ERR_FORMAT, "%s: not a PNG file", path);
    }
    s.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s.err, lf_png_error, lf_png_warning);
    s.info = s.png ? png_create_info_struct(s.png) : NULL;
    if (!s.png || !s.info) {
        st = lf_err(LF_ERR_NOMEM, "png: out of memory");
        goto done;
    }
    png_set_sig_bytes(s.png, 8);
    if (!lf_png_read_body(&s, text ? key : NULL, rgb != NULL)) {
        st = lf_err(LF_ERR_FORMAT, "%s: PNG read failed: %s", path, s.err.msg);
        goto done;
    }
    if (w) *w = s.w;
    if (h) *h = s.h;
    if (rgb) {
        *rgb = s.img;
        s.img = NULL;
    }
    if (text) {
        *text = s.text;
        s.text = NULL;
    }
done:
    if (s.png) png_destroy_read_struct(&s.png, &s.info, NULL);
    fclose(s.f);
    free(s.img);
    free(s.rows);
    free(s.text);
    return st;
}
