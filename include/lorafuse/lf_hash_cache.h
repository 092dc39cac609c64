/* lf_hash_cache.h: a persistent cache of file SHA-256s (model, LoRA and VAE hashes of a PNG's
 * `parameters`), so that a 2 GB checkpoint is hashed once, not at every run (A1111 keeps cache.json the
 * same way). Source: host/io/hash_cache.c; tests: tests/io/test_hash_cache.c; docs/hashing.md.
 *
 * An entry is keyed by the file's absolute path (realpath) and the kind of hash, and is valid while the
 * file's size and modification time (nanoseconds) are what they were when it was hashed; any change
 * hashes the file again. The cache file is JSON:
 *   {"version": 1, "sha256": {"/abs/path": {"size": N, "mtime": "SEC.NSEC", "sha256": "hex64"}},
 *    "addnet": {...same, the hash of a safetensors file after its header (the LoRA hash)...}}
 * Location: lf_hash_cache_default_path(). Saved through a temporary file renamed into place (a reader
 * never sees half a file); its folder is created. A cache that cannot be read or parsed is not an
 * error: it is set aside with a warning (lf_hash_cache_warning) and rebuilt on the next save. A
 * cache that cannot be written is a warning too: the hashes are still right, only not kept.
 * One lf_hash_cache may be used from several threads (one lock around each call).
 */
#ifndef LF_HASH_CACHE_H
#define LF_HASH_CACHE_H

#include "lorafuse/lf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lf_hash_cache lf_hash_cache;

typedef enum lf_hash_kind {
    LF_HASH_FILE = 0,      /* SHA-256 of the whole file (A1111 model and VAE hash) */
    LF_HASH_ADDNET = 1     /* SHA-256 of a safetensors file after its header (A1111 LoRA hash, AutoV3) */
} lf_hash_kind;

/* $LF_HASH_CACHE if set and not empty, else $XDG_CACHE_HOME/lorafuse/hashes.json (when absolute), else
 * $HOME/.cache/lorafuse/hashes.json; NULL when none applies (no HOME). malloc'd. */
char *lf_hash_cache_default_path(void);

/* Open the cache at path (NULL: the default path; NULL default or "": a cache in memory only, never
 * saved). A missing file is an empty cache. Fails only when out of memory. */
lf_status lf_hash_cache_open(const char *path, lf_hash_cache **out);
/* The warnings so far ("hash cache FILE is not valid JSON ...; rebuilding it"), one per line, or NULL. */
const char *lf_hash_cache_warning(const lf_hash_cache *c);
/* SHA-256 (64 hex digits) of `path` of the given kind: from the cache when path, size and mtime match,
 * else computed (lf_sha256_file) and recorded. *cached (may be NULL) says which. */
lf_status lf_hash_cache_get(lf_hash_cache *c, const char *path, lf_hash_kind kind, char hex[65], int *cached);
/* Write the cache back if anything was added (atomically). A failure becomes a warning, not an error. */
void lf_hash_cache_save(lf_hash_cache *c);
/* lf_hash_cache_save, then free. NULL is ignored. */
void lf_hash_cache_close(lf_hash_cache *c);

#ifdef __cplusplus
}
#endif
#endif
