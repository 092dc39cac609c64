/* test_png_text.c: the text chunk lf_png_write chooses, as PIL's PngInfo.add_text does for A1111: tEXt
 * (Latin-1 bytes) when every character of the UTF-8 text is in U+0000..U+00FF, iTXt (UTF-8) otherwise,
 * invalid UTF-8 included; lf_png_read gives the same UTF-8 text back from either.
 */
#include "lf_test.h"
#include "lf_test_data.h"

#include "host/base/util.h"
#include "lorafuse/lf_png.h"

static char g_tmp[256];

/* The chunk type holding keyword "parameters" in the file (4 letters), or "" when none. */
static void chunk_of(const char *path, char type[5], char **body, size_t *blen) {
    char *f = NULL;
    size_t n = 0;
    type[0] = '\0';
    *body = NULL;
    if (lf_read_file(path, "png", (size_t)1 << 24, &f, &n) != LF_OK) return;
    for (size_t at = 8; at + 12 <= n;) {
        size_t len = (size_t)(unsigned char)f[at] << 24 | (size_t)(unsigned char)f[at + 1] << 16 |
                     (size_t)(unsigned char)f[at + 2] << 8 | (unsigned char)f[at + 3];
        if (at + 12 + len > n) break;
        if (len >= 11 && !memcmp(f + at + 8, "parameters", 11)) {
            memcpy(type, f + at + 4, 4);
            type[4] = '\0';
            *blen = len - 11;
            *body = malloc(*blen + 1);
            memcpy(*body, f + at + 8 + 11, *blen);
            (*body)[*blen] = '\0';
        }
        at += 12 + len;
    }
    free(f);
}

static void expect(const char *text, const char *type, const char *bytes, size_t nbytes) {
    static int k;
    char path[512];
    snprintf(path, sizeof path, "%s/t%d.png", g_tmp, k++);
    uint8_t rgb[4 * 4 * 3] = {0};
    const char *keys[] = {"parameters"}, *texts[] = {text};
    LF_CHECK(lf_png_write(path, rgb, 4, 4, keys, texts, 1) == LF_OK, "write: %s", lf_last_error());
    char t[5], *body;
    size_t blen = 0;
    chunk_of(path, t, &body, &blen);
    LF_CHECK(!strcmp(t, type), "'%s': chunk %s, want %s", text, t, type);
    if (bytes) LF_CHECK(body && blen == nbytes && !memcmp(body, bytes, nbytes), "'%s': chunk bytes", text);
    free(body);
    char *back = NULL;
    LF_CHECK(lf_png_read(path, NULL, NULL, NULL, "parameters", &back) == LF_OK && back && !strcmp(back, text),
             "'%s' read back as '%s'", text, back ? back : "(null)");
    free(back);
}

int main(void) {
    LF_CHECK(lf_test_tmpdir(g_tmp, sizeof g_tmp, "pngtext") == 0, "tmpdir");
    expect("a cat\nSteps: 20", "tEXt", "a cat\nSteps: 20", 15);
    expect("caf\xc3\xa9 \xc3\xbf", "tEXt", "caf\xe9 \xff", 6);          /* U+00E9, U+00FF: Latin-1 */
    expect("\xe6\x97\xa5\xe6\x9c\xac caf\xc3\xa9", "iTXt", NULL, 0);   /* U+65E5: beyond */
    expect("\xe2\x82\xac", "iTXt", NULL, 0);                            /* U+20AC (not in Latin-1) */
    expect("", "tEXt", "", 0);
    lf_test_rmtree(g_tmp);
    return lf_test_finish();
}
