/* bench_hash.c: the model hash of a large file three ways, for bench/RESULTS.md: the portable C
 * SHA-256 (lf_sha256_file_portable, what every generate did before), libcrypto's (lf_sha256_file,
 * SHA-NI where the CPU has it) and the hash cache (lf_hash_cache_get: a miss that hashes and records,
 * then a hit that only stats the file), each after one untimed read that puts the file in the page
 * cache, so that the figures are the hashing, not the disk.
 *
 *   lf_bench_hash [FILE]     (default /tmp/lf-bench-hash.bin, 2 GiB, written once)
 *
 * Prints one JSON line: {"file", "bytes", "portable_s", "libcrypto_s", "cache_miss_s", "cache_hit_s",
 * "portable_mb_s", "libcrypto_mb_s"}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "host/base/util.h"
#include "lorafuse/lf_hash.h"
#include "lorafuse/lf_hash_cache.h"

static int write_file(const char *path, size_t bytes) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    size_t block = (size_t)1 << 20;
    unsigned char *b = malloc(block);
    if (!b) {
        fclose(f);
        return 0;
    }
    unsigned x = 12345;
    for (size_t i = 0; i < block; i++) b[i] = (unsigned char)((x = x * 1103515245u + 12345u) >> 16);
    int ok = 1;
    for (size_t done = 0; ok && done < bytes; done += block) {
        b[0] = (unsigned char)done;
        ok = fwrite(b, 1, block, f) == block;
    }
    free(b);
    return fclose(f) == 0 && ok;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/tmp/lf-bench-hash.bin";
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(stderr, "writing %s (2 GiB)\n", path);
        if (!write_file(path, (size_t)2 << 30) || stat(path, &sb) != 0) {
            fprintf(stderr, "cannot write %s\n", path);
            return 1;
        }
    }
    char h0[65], h1[65], h2[65], h3[65], cache[] = "/tmp/lf-bench-hash-cache.XXXXXX";
    int fd = mkstemp(cache);
    if (fd < 0) return 1;
    close(fd);
    unlink(cache);
    if (lf_sha256_file(path, 0, h0) != LF_OK) { /* warm the page cache */
        fprintf(stderr, "%s\n", lf_last_error());
        return 1;
    }
    double t0 = lf_clock_s();
    lf_status st = lf_sha256_file_portable(path, 0, h1);
    double t1 = lf_clock_s();
    if (st == LF_OK) st = lf_sha256_file(path, 0, h2);
    double t2 = lf_clock_s();
    lf_hash_cache *c = NULL;
    int hit1 = -1, hit2 = -1;
    if (st == LF_OK) st = lf_hash_cache_open(cache, &c);
    if (st == LF_OK) st = lf_hash_cache_get(c, path, LF_HASH_FILE, h3, &hit1);
    lf_hash_cache_close(c);
    double t3 = lf_clock_s();
    if (st == LF_OK) st = lf_hash_cache_open(cache, &c); /* a new run: the cache is read from its file */
    if (st == LF_OK) st = lf_hash_cache_get(c, path, LF_HASH_FILE, h3, &hit2);
    lf_hash_cache_close(c);
    double t4 = lf_clock_s();
    unlink(cache);
    if (st != LF_OK || strcmp(h1, h2) || strcmp(h2, h3) || hit1 || !hit2) {
        fprintf(stderr, "mismatch or error: %s (%s %s %s, hits %d %d)\n", lf_last_error(), h1, h2, h3, hit1, hit2);
        return 1;
    }
    double mb = (double)sb.st_size / 1e6;
    printf("{\"file\": \"%s\", \"bytes\": %lld, \"portable_s\": %.3f, \"libcrypto_s\": %.3f, \"cache_miss_s\": %.3f, "
           "\"cache_hit_s\": %.6f, \"portable_mb_s\": %.0f, \"libcrypto_mb_s\": %.0f}\n",
           path, (long long)sb.st_size, t1 - t0, t2 - t1, t3 - t2, t4 - t3, mb / (t1 - t0), mb / (t2 - t1));
    return 0;
}
