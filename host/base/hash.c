/* hash.c: SHA-256 (FIPS 180-4) and the hashes A1111 writes into the `parameters` chunk: the model
 * hash (first 10 hex digits of the file's SHA-256) and the LoRA "AutoV3" hash (first 12 hex digits of
 * the SHA-256 of a safetensors file after its header). API and sources in lf_hash.h; NIST vectors in
 * tests/pipeline/test_generate.c.
 *
 * Files are hashed through libcrypto (OpenSSL EVP), which uses the CPU's SHA instructions (x86 SHA-NI,
 * ARMv8 SHA2): about 2 GB/s instead of ~120 MB/s for the portable C code below (bench/RESULTS.md).
 * The portable code stays as the incremental lf_sha256_* API and as the oracle of the EVP path.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "file.h"
#include "lorafuse/lf_hash.h"

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

/* SHA-256 of a file's bytes from `from` to the end, read in 4 MiB blocks (regular files only, through
 * the input helper; never blocking). portable: the C code above instead of libcrypto. */
static lf_status lf_sha256_file_impl(const char *path, uint64_t from, int portable, char hex[65]) {
    int fd;
    uint64_t size;
    lf_status st = lf_file_open_in(path, NULL, UINT64_MAX, &fd, &size, NULL);
    if (st != LF_OK) return st;
    const size_t block = (size_t)4 << 20;
    unsigned char *buf = malloc(block);
    EVP_MD_CTX *ctx = portable ? NULL : EVP_MD_CTX_new();
    lf_sha256 s;
    if (!buf || (!portable && !ctx)) {
        st = lf_err(LF_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (from > size) {
        st = lf_err(LF_ERR_FORMAT, "%s: offset %llu is past the end of the file (%llu bytes)", path,
                    (unsigned long long)from, (unsigned long long)size);
        goto done;
    }
#ifdef POSIX_FADV_SEQUENTIAL
    (void)posix_fadvise(fd, (off_t)from, 0, POSIX_FADV_SEQUENTIAL);
#endif
    if (portable) lf_sha256_init(&s);
    else if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        st = lf_err(LF_ERR_UNSUPPORTED, "%s: libcrypto has no SHA-256", path);
        goto done;
    }
    for (uint64_t at = from;;) {
        ssize_t n = pread(fd, buf, block, (off_t)at);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            st = lf_err(LF_ERR_IO, "%s: read error at byte %llu: %s", path, (unsigned long long)at, strerror(errno));
            goto done;
        }
        if (n == 0) break;
        if (portable) lf_sha256_update(&s, buf, (size_t)n);
        else EVP_DigestUpdate(ctx, buf, (size_t)n);
        at += (uint64_t)n;
    }
    unsigned char d[32];
    unsigned dn = 32;
    if (portable) lf_sha256_final(&s, d);
    else EVP_DigestFinal_ex(ctx, d, &dn);
    lf_sha256_hex(d, hex);
done:
    EVP_MD_CTX_free(ctx);
    free(buf);
    close(fd);
    return st;
}

lf_status lf_sha256_file(const char *path, uint64_t from, char hex[65]) {
    return lf_sha256_file_impl(path, from, 0, hex);
}

lf_status lf_sha256_file_portable(const char *path, uint64_t from, char hex[65]) {
    return lf_sha256_file_impl(path, from, 1, hex);
}

lf_status lf_a1111_lora_offset(const char *path, uint64_t *off) {
    int fd;
    lf_status st = lf_file_open_in(path, NULL, UINT64_MAX, &fd, NULL, NULL);
    if (st != LF_OK) return st;
    unsigned char h[8];
    ssize_t got;
    do got = pread(fd, h, 8, 0);
    while (got < 0 && errno == EINTR);
    close(fd);
    if (got != 8) return lf_err(LF_ERR_FORMAT, "%s: not a safetensors file (shorter than 8 bytes)", path);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | h[i];
    if (n > UINT64_MAX - 8) return lf_err(LF_ERR_FORMAT, "%s: not a safetensors file (header length %llu)", path,
                                          (unsigned long long)n);
    *off = n + 8;
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
    uint64_t off;
    lf_status st = lf_a1111_lora_offset(path, &off);
    if (st) return st;
    char hex[65];
    if ((st = lf_sha256_file(path, off, hex)) != LF_OK) return st;
    memcpy(out, hex, 12);
    out[12] = '\0';
    return LF_OK;
}
