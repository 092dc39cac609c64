/* test_hash_cache.c: SHA-256 through libcrypto against the portable code (whole files and from an
 * offset, sizes around the block size), the persistent hash cache (lf_hash_cache.h): a hit after a
 * save and reopen, a changed file (size or mtime) hashed again, the LoRA ("addnet") kind, a corrupt
 * cache set aside with a warning and rebuilt, a cache that cannot be written a warning and not an
 * error, the default location's environment order; and the formats the safetensors reader names
 * instead of parsing (pickle zip, raw pickle, GGUF, diffusers folder).
 */
#include <sys/stat.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "lf_test.h"
#include "lf_test_data.h"

#include "lorafuse/lf_hash.h"
#include "lorafuse/lf_hash_cache.h"
#include "lorafuse/lf_safetensors.h"

static char g_tmp[256];

static const char *tp(const char *name) {
    static char b[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(b[k], sizeof b[k], "%s/%s", g_tmp, name);
    return b[k];
}

static void write_bytes(const char *path, size_t n, unsigned seed) {
    unsigned char *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)((i * 2654435761u + seed) >> 13);
    lf_test_write_file(path, p, n);
    free(p);
}

static void test_evp_vs_portable(void) {
    static const size_t sizes[] = {0, 1, 63, 64, 65, 1000, ((size_t)4 << 20) - 1, (size_t)4 << 20, ((size_t)4 << 20) + 7};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        write_bytes(tp("f.bin"), sizes[i], (unsigned)i);
        for (uint64_t from = 0; from <= 9; from += 9) {
            char a[65], b[65];
            lf_status sa = lf_sha256_file(tp("f.bin"), from, a), sb = lf_sha256_file_portable(tp("f.bin"), from, b);
            if (from > sizes[i]) {
                LF_CHECK(sa == LF_ERR_FORMAT && sb == LF_ERR_FORMAT, "offset past the end of %zu bytes", sizes[i]);
                continue;
            }
            LF_CHECK(sa == LF_OK && sb == LF_OK && !strcmp(a, b), "size %zu from %llu: %s vs %s", sizes[i],
                     (unsigned long long)from, a, b);
        }
    }
    char h[65];
    lf_test_write_text(tp("abc"), "abc");
    LF_CHECK(lf_sha256_file(tp("abc"), 0, h) == LF_OK &&
                 !strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "FIPS 180-2 'abc': %s", h);
}

static void test_cache(void) {
    char cache[512], f[512]; /* tp's buffers are reused */
    snprintf(cache, sizeof cache, "%s", tp("sub/dir/hashes.json"));
    snprintf(f, sizeof f, "%s", tp("model.bin"));
    write_bytes(f, 100000, 1);
    char want[65], h[65];
    LF_CHECK(lf_sha256_file(f, 0, want) == LF_OK, "hash");
    lf_hash_cache *c = NULL;
    int cached = -1;
    LF_CHECK(lf_hash_cache_open(cache, &c) == LF_OK && !lf_hash_cache_warning(c), "open a missing cache");
    LF_CHECK(lf_hash_cache_get(c, f, LF_HASH_FILE, h, &cached) == LF_OK && !cached && !strcmp(h, want), "first: computed");
    LF_CHECK(lf_hash_cache_get(c, f, LF_HASH_FILE, h, &cached) == LF_OK && cached && !strcmp(h, want), "second: cached");
    lf_hash_cache_close(c);
    struct stat sb;
    LF_CHECK(stat(cache, &sb) == 0 && S_ISREG(sb.st_mode), "saved, folders created");
    LF_CHECK(lf_test_tmp_files(tp("sub/dir"), 0) == 0, "no temporary file left");
    /* a new process reads it: a hit */
    LF_CHECK(lf_hash_cache_open(cache, &c) == LF_OK, "reopen");
    LF_CHECK(lf_hash_cache_get(c, f, LF_HASH_FILE, h, &cached) == LF_OK && cached && !strcmp(h, want), "after reopen");
    /* the same content under another path is another entry; a changed file is hashed again */
    write_bytes(f, 100001, 1);
    LF_CHECK(lf_sha256_file(f, 0, want) == LF_OK, "hash 2");
    LF_CHECK(lf_hash_cache_get(c, f, LF_HASH_FILE, h, &cached) == LF_OK && !cached && !strcmp(h, want), "size changed");
    struct timespec ts[2] = {{0, UTIME_OMIT}, {12345, 678}};
    write_bytes(f, 100001, 2); /* same size, other bytes */
    utimensat(AT_FDCWD, f, ts, 0);
    LF_CHECK(lf_sha256_file(f, 0, want) == LF_OK, "hash 3");
    LF_CHECK(lf_hash_cache_get(c, f, LF_HASH_FILE, h, &cached) == LF_OK && !cached && !strcmp(h, want), "mtime changed");
    /* the LoRA hash: the data after a safetensors header, its own table */
    const char *lora = "models/lora/mini_lora.safetensors";
    char a1111[13];
    LF_CHECK(lf_a1111_lora_hash(lora, a1111) == LF_OK, "lora hash");
    LF_CHECK(lf_hash_cache_get(c, lora, LF_HASH_ADDNET, h, &cached) == LF_OK && !cached && !strncmp(h, a1111, 12),
             "addnet %s vs %s", h, a1111);
    LF_CHECK(lf_hash_cache_get(c, lora, LF_HASH_FILE, h, &cached) == LF_OK && !cached && strncmp(h, a1111, 12),
             "the whole-file kind is another entry");
    LF_CHECK(lf_hash_cache_get(c, tp("missing"), LF_HASH_FILE, h, NULL) == LF_ERR_IO, "a missing file is an error");
    lf_hash_cache_close(c);
    /* corrupt: a warning, then rebuilt on save */
    lf_test_write_text(cache, "{\"version\": 1, \"sha256\": {tru");
    LF_CHECK(lf_hash_cache_open(cache, &c) == LF_OK, "open corrupt");
    const char *w = lf_hash_cache_warning(c);
    char ww[1024];
    snprintf(ww, sizeof ww, "hash cache %s is not valid JSON; rebuilding it", cache);
    LF_CHECK(w && !strcmp(w, ww), "warning '%s'", w ? w : "(none)");
    LF_CHECK(lf_hash_cache_get(c, f, LF_HASH_FILE, h, &cached) == LF_OK && !cached, "rehash");
    lf_hash_cache_close(c);
    LF_CHECK(lf_hash_cache_open(cache, &c) == LF_OK && !lf_hash_cache_warning(c), "rebuilt cache reads clean");
    LF_CHECK(lf_hash_cache_get(c, f, LF_HASH_FILE, h, &cached) == LF_OK && cached, "rebuilt cache hit");
    lf_hash_cache_close(c);
    /* a cache that cannot be written: the hash is still right, a warning says why */
    lf_test_write_text(tp("blocker"), "a file where a folder should be");
    LF_CHECK(lf_hash_cache_open(tp("blocker/hashes.json"), &c) == LF_OK, "open unwritable");
    LF_CHECK(lf_hash_cache_get(c, f, LF_HASH_FILE, h, &cached) == LF_OK && !strcmp(h, want), "hash without a cache");
    lf_hash_cache_save(c);
    w = lf_hash_cache_warning(c);
    LF_CHECK(w && strstr(w, "hash cache ") && strstr(w, " not saved: "), "unwritable warning '%s'", w ? w : "(none)");
    lf_hash_cache_close(c);
    /* memory only */
    LF_CHECK(lf_hash_cache_open("", &c) == LF_OK && lf_hash_cache_get(c, f, LF_HASH_FILE, h, NULL) == LF_OK, "no file");
    lf_hash_cache_close(c);
}

static void test_default_path(void) {
    char *keep[3];
    const char *names[3] = {"LF_HASH_CACHE", "XDG_CACHE_HOME", "HOME"};
    for (int i = 0; i < 3; i++) keep[i] = getenv(names[i]) ? strdup(getenv(names[i])) : NULL;
    setenv("LF_HASH_CACHE", "/x/h.json", 1);
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    setenv("HOME", "/home/u", 1);
    char *p = lf_hash_cache_default_path();
    LF_CHECK(p && !strcmp(p, "/x/h.json"), "LF_HASH_CACHE first: %s", p);
    free(p);
    unsetenv("LF_HASH_CACHE");
    p = lf_hash_cache_default_path();
    LF_CHECK(p && !strcmp(p, "/xdg/lorafuse/hashes.json"), "then XDG_CACHE_HOME: %s", p);
    free(p);
    setenv("XDG_CACHE_HOME", "relative", 1); /* the XDG spec: relative paths are ignored */
    p = lf_hash_cache_default_path();
    LF_CHECK(p && !strcmp(p, "/home/u/.cache/lorafuse/hashes.json"), "then HOME: %s", p);
    free(p);
    for (int i = 0; i < 3; i++) {
        if (keep[i]) setenv(names[i], keep[i], 1);
        else unsetenv(names[i]);
        free(keep[i]);
    }
}

static void expect_format(const char *name, const void *bytes, size_t n, const char *what) {
    lf_test_write_file(tp(name), bytes, n);
    lf_st_file *f = NULL;
    char want[1024];
    snprintf(want, sizeof want, "%s %s", tp(name), what);
    LF_CHECK(lf_st_open(tp(name), &f) == LF_ERR_FORMAT && !strcmp(lf_last_error(), want), "%s: '%s'", name,
             lf_last_error());
    lf_st_close(f);
}

static void test_formats(void) {
    expect_format("model.ckpt", "PK\x03\x04\x14\x00\x00\x00\x08\x00", 10,
                  "is a zip archive, a PyTorch checkpoint (.ckpt/.pt/.pth/.bin holding a pickle): pickle checkpoints "
                  "are not read, for safety; convert to .safetensors");
    expect_format("old.pt", "\x80\x02}q\x00(X\x05\x00\x00\x00", 12,
                  "is a Python pickle (an old PyTorch .ckpt/.pt): pickle checkpoints are not read, for safety; "
                  "convert to .safetensors");
    expect_format("m.gguf", "GGUF\x03\x00\x00\x00\x00\x00\x00\x00", 12,
                  "is a GGUF file (llama.cpp / stable-diffusion.cpp format): not read; use the .safetensors original");
    lf_st_file *f = NULL;
    LF_CHECK(lf_st_open("tests/data/model/tiny-sd15-diffusers", &f) == LF_ERR_IO &&
                 !strcmp(lf_last_error(), "tests/data/model/tiny-sd15-diffusers is a diffusers folder (model_index.json): "
                                          "give a single .safetensors file here (generate --vae takes a diffusers vae/ folder)"),
             "diffusers folder: %s", lf_last_error());
}

int main(void) {
    LF_CHECK(lf_test_tmpdir(g_tmp, sizeof g_tmp, "hashcache") == 0, "tmpdir");
    test_evp_vs_portable();
    test_cache();
    test_default_path();
    test_formats();
    lf_test_rmtree(g_tmp);
    return lf_test_finish();
}
