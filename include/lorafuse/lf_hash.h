/* lf_hash.h: SHA-256 (FIPS 180-4) and the file hashes A1111 quotes in a PNG's `parameters` chunk
 * (lf_png.h). Source: host/base/hash.c; the NIST vectors are checked in tests/pipeline/test_generate.c.
 *
 *   Model hash   first 10 hex digits of the SHA-256 of the whole checkpoint file (A1111 "new" hash,
 *                hashes.calculate_sha256 / sd_models.CheckpointInfo.shorthash)
 *   Lora hash    first 12 hex digits of the SHA-256 of a safetensors file's bytes after its header
 *                (hashes.addnet_hash_safetensors; A1111 network.py shorthash; CivitAI "AutoV3")
 */
#ifndef LF_HASH_H
#define LF_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "lorafuse/lf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lf_sha256 {
    uint32_t h[8];
    uint64_t len;          /* bytes hashed so far */
    unsigned char buf[64];
    size_t nbuf;
} lf_sha256;

void lf_sha256_init(lf_sha256 *s);
void lf_sha256_update(lf_sha256 *s, const void *data, size_t n);
void lf_sha256_final(lf_sha256 *s, unsigned char digest[32]);
/* Lower-case hex of a digest (64 digits + NUL). */
void lf_sha256_hex(const unsigned char digest[32], char hex[65]);

/* SHA-256 (hex) of a file's bytes from offset `from` to the end, through libcrypto (the CPU's SHA
 * instructions where it has them). lf_sha256_file_portable: the same with the C code of lf_sha256_*
 * (the oracle of tests and the "before" of bench/RESULTS.md). A cached version: lf_hash_cache.h. */
lf_status lf_sha256_file(const char *path, uint64_t from, char hex[65]);
lf_status lf_sha256_file_portable(const char *path, uint64_t from, char hex[65]);
/* Where a safetensors file's data starts: 8 + the header length in its first 8 bytes (the offset the
 * LoRA hash starts at). */
lf_status lf_a1111_lora_offset(const char *path, uint64_t *off);
/* A1111 model hash (10 hex digits). */
lf_status lf_a1111_model_hash(const char *path, char out[11]);
/* A1111 LoRA hash of a safetensors file (12 hex digits of the data after the header). */
lf_status lf_a1111_lora_hash(const char *path, char out[13]);

#ifdef __cplusplus
}
#endif
#endif
