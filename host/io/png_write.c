/* png_write.c: 8-bit RGB PNG files with libpng, carrying text chunks (A1111's `parameters`): written
 * through the output helper of host/base/file.h (a temporary file in the destination's directory,
 * fsync'ed, then linked to the next free NNNNN-SEED.png name, never overwriting; removed on any error
 * or signal); read back for tests and tools through the input helper (lf_png.h). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <png.h>

#include "host/base/file.h"
#include "host/base/text.h"
#include "lorafuse/lf_png.h"

/* ---- PNG -------------------------------------------------------------------------------------- */
/* Largest PNG file lf_png_read accepts (an 8192 x 8192 RGB image is 192 MiB uncompressed). */
#define LF_PNG_MAX_FILE ((uint64_t)1 << 30)

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

/* The Latin-1 bytes of UTF-8 text when every character is U+0000..U+00FF (malloc'd), else NULL (then
 * *beyond says why: 0 out of memory, 1 a character past U+00FF or invalid UTF-8). PIL (A1111) writes a
 * tEXt chunk exactly when the text encodes to Latin-1. */
static char *lf_to_latin1(const char *s, int *beyond) {
    size_t n = strlen(s), k = 0;
    char *o = malloc(n + 1);
    *beyond = 0;
    if (!o) return NULL;
    for (size_t i = 0; i < n;) {
        unsigned cp;
        size_t len = lf_utf8_next(s + i, n - i, &cp);
        if (!len || cp > 0xFF) {
            free(o);
            *beyond = 1;
            return NULL;
        }
        o[k++] = (char)cp;
        i += len;
    }
    o[k] = '\0';
    return o;
}

/* Latin-1 bytes as UTF-8 (malloc'd; NULL when out of memory). */
static char *lf_from_latin1(const char *s, size_t n) {
    char *o = malloc(2 * n + 1), *p = o;
    if (!o) return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) *p++ = (char)c;
        else *p++ = (char)(0xC0 | c >> 6), *p++ = (char)(0x80 | (c & 63));
    }
    *p = '\0';
    return o;
}

/* Everything libpng touches after setjmp lives in this struct (no clobbered locals). */
typedef struct {
    FILE *f;
    png_structp png;
    png_infop info;
    png_textp text;
    char **latin1;             /* the Latin-1 form of each text written as tEXt, else NULL */
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
        const char *t = s->latin1[i] ? s->latin1[i] : texts[i];
        s->text[i].compression = s->latin1[i] ? PNG_TEXT_COMPRESSION_NONE : PNG_ITXT_COMPRESSION_NONE;
        s->text[i].key = (png_charp)(uintptr_t)keys[i];
        s->text[i].text = (png_charp)(uintptr_t)t;
        s->text[i].text_length = strlen(t);
    }
    if (n_text) png_set_text(s->png, s->info, s->text, (int)n_text);
    png_write_info(s->png, s->info);
    for (int y = 0; y < h; y++) s->rows[y] = (png_bytep)(uintptr_t)(rgb + (size_t)y * (size_t)w * 3);
    png_write_image(s->png, s->rows);
    png_write_end(s->png, s->info);
    return 1;
}

/* Encode the image into f (closed here, also on failure); label names it in messages. */
static lf_status lf_png_encode_to(FILE *f, const char *label, const uint8_t *rgb, int w, int h,
                                  const char *const *keys, const char *const *texts, size_t n_text) {
    lf_png_w s;
    memset(&s, 0, sizeof s);
    s.f = f;
    s.text = calloc(n_text ? n_text : 1, sizeof *s.text);
    s.latin1 = calloc(n_text ? n_text : 1, sizeof *s.latin1);
    s.rows = malloc((size_t)h * sizeof *s.rows);
    lf_status st = LF_OK;
    for (size_t i = 0; s.latin1 && i < n_text; i++) {
        int beyond;
        if (!(s.latin1[i] = lf_to_latin1(texts[i], &beyond)) && !beyond) st = LF_ERR_NOMEM;
    }
    if (!s.text || !s.latin1 || !s.rows || st) {
        st = lf_err(LF_ERR_NOMEM, "out of memory");
        goto done;
    }
    s.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &s.err, lf_png_error, lf_png_warning);
    s.info = s.png ? png_create_info_struct(s.png) : NULL;
    if (!s.png || !s.info) {
        st = lf_err(LF_ERR_NOMEM, "png: out of memory");
        goto done;
    }
    if (!lf_png_write_body(&s, rgb, w, h, keys, texts, n_text)) {
        st = lf_err(LF_ERR_IO, "%s: PNG write failed: %s", label, s.err.msg);
        goto done;
    }
done:
    if (s.png) png_destroy_write_struct(&s.png, &s.info);
    if (s.f && fclose(s.f) != 0 && !st) st = lf_err(LF_ERR_IO, "%s: write failed: %s", label, strerror(errno));
    free(s.text);
    for (size_t i = 0; s.latin1 && i < n_text; i++) free(s.latin1[i]);
    free(s.latin1);
    free(s.rows);
    return st;
}

/* Encode the image into the temporary file of `out` (through a FILE on a duplicate of its descriptor,
 * as libpng writes to a FILE). */
static lf_status lf_png_encode(lf_file_out *out, const char *label, const uint8_t *rgb, int w, int h,
                               const char *const *keys, const char *const *texts, size_t n_text) {
    int fd = dup(lf_file_out_fd(out));
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        lf_status st = lf_err(LF_ERR_IO, "%s: cannot write: %s", label, strerror(errno));
        if (fd >= 0) close(fd);
        return st;
    }
    return lf_png_encode_to(f, label, rgb, w, h, keys, texts, n_text);
}

lf_status lf_png_encode_mem(const uint8_t *rgb, int w, int h, const char *const *keys, const char *const *texts,
                            size_t n_text, uint8_t **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    if (w <= 0 || h <= 0) return lf_err(LF_ERR_ARG, "png: bad size %dx%d", w, h);
    char *mem = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&mem, &n);
    if (!f) return lf_err(LF_ERR_NOMEM, "png: out of memory");
    lf_status st = lf_png_encode_to(f, "png (memory)", rgb, w, h, keys, texts, n_text);
    if (st != LF_OK) {
        free(mem);
        return st;
    }
    *buf = (uint8_t *)mem;
    *len = n;
    return LF_OK;
}

lf_status lf_png_write(const char *path, const uint8_t *rgb, int w, int h, const char *const *keys,
                       const char *const *texts, size_t n_text) {
    if (w <= 0 || h <= 0) return lf_err(LF_ERR_ARG, "png: bad size %dx%d", w, h);
    lf_file_out_opts o = {1, NULL, 0};
    lf_file_out *out = NULL;
    lf_status st = lf_file_out_open(path, &o, &out);
    if (st == LF_OK) st = lf_png_encode(out, path, rgb, w, h, keys, texts, n_text);
    if (st != LF_OK) {
        lf_file_out_abort(out);
        return st;
    }
    return lf_file_out_commit(out);
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

/* DIR/NNNNN-SEED.png into buf. */
static void lf_png_name(char *buf, size_t cap, const char *dir, long num, int64_t seed) {
    snprintf(buf, cap, "%s/%05ld-%lld.png", dir, num, (long long)seed);
}

lf_status lf_png_save_next(const char *dir, int64_t seed, const uint8_t *rgb, int w, int h,
                           const char *parameters, char **path_out) {
    *path_out = NULL;
    if (w <= 0 || h <= 0) return lf_err(LF_ERR_ARG, "png: bad size %dx%d", w, h);
    if (!dir || !*dir) dir = ".";
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return lf_err(LF_ERR_IO, "%s: cannot create the output directory: %s", dir, strerror(errno));
    size_t cap = strlen(dir) + 64;
    char *name = malloc(cap);
    if (!name) return lf_err(LF_ERR_NOMEM, "out of memory");
    /* The first free name now; another process may take it before the image is published, so the
     * publication itself (a link, which never replaces) moves on to the next number when it is taken. */
    long num = lf_next_number(dir);
    int tries = 0;
    lf_file_out *out = NULL;
    lf_file_out_opts o = {0, NULL, 0};
    lf_status st;
    for (lf_png_name(name, cap, dir, num, seed);; lf_png_name(name, cap, dir, ++num, seed)) {
        st = lf_file_out_open(name, &o, &out);
        if (st == LF_OK || !lf_file_exists(name) || ++tries >= 100000) break;
    }
    const char *key = "parameters";
    if (st == LF_OK) st = lf_png_encode(out, name, rgb, w, h, &key, &parameters, parameters ? 1 : 0);
    if (st != LF_OK) {
        lf_file_out_abort(out);
        free(name);
        return st;
    }
    for (; tries < 100000; tries++) {
        int taken = 0;
        st = lf_file_out_commit_new(out, name, &taken);
        if (st != LF_OK) break; /* out is freed */
        if (!taken) {
            *path_out = name;
            return LF_OK;
        }
        lf_png_name(name, cap, dir, ++num, seed);
    }
    if (st == LF_OK) {
        lf_file_out_abort(out);
        st = lf_err(LF_ERR_IO, "%s: no free image name after %d tries", dir, tries);
    }
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
                int itxt = t[i].compression >= PNG_ITXT_COMPRESSION_NONE;
                size_t len = itxt ? t[i].itxt_length : t[i].text_length;
                free(s->text);
                /* libpng text is NUL-terminated; tEXt and zTXt hold Latin-1 */
                s->text = itxt ? strndup(t[i].text, len) : lf_from_latin1(t[i].text, len);
            }
    }
    return 1;
}

/* Read the PNG from f (closed here); path names it in messages. */
static lf_status lf_png_read_from(FILE *f, const char *path, uint8_t **rgb, int *w, int *h, const char *key,
                                  char **text) {
    lf_png_r s;
    memset(&s, 0, sizeof s);
    lf_status st = LF_OK;
    s.f = f;
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

lf_status lf_png_read(const char *path, uint8_t **rgb, int *w, int *h, const char *key, char **text) {
    if (rgb) *rgb = NULL;
    if (text) *text = NULL;
    int fd;
    lf_status st = lf_file_open_in(path, NULL, LF_PNG_MAX_FILE, &fd, NULL, NULL);
    if (st != LF_OK) return st;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        st = lf_err(LF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        close(fd);
        return st;
    }
    return lf_png_read_from(f, path, rgb, w, h, key, text);
}

lf_status lf_png_read_mem(const uint8_t *buf, size_t len, uint8_t **rgb, int *w, int *h, const char *key,
                          char **text) {
    if (rgb) *rgb = NULL;
    if (text) *text = NULL;
    if (!len) return lf_err(LF_ERR_FORMAT, "png (memory): not a PNG file (empty)");
    FILE *f = fmemopen((void *)(uintptr_t)buf, len, "rb");
    if (!f) return lf_err(LF_ERR_NOMEM, "png: out of memory");
    return lf_png_read_from(f, "png (memory)", rgb, w, h, key, text);
}
