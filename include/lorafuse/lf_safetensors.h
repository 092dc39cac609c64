/* lf_safetensors.h: strict safetensors reader (mmap) and atomic writer.
 *
 * Format: u64 little-endian N, N bytes of UTF-8 JSON header
 *   {"NAME": {"dtype": "F16", "shape": [..], "data_offsets": [BEGIN, END]}, "__metadata__": {str: str}}
 * then the byte buffer; offsets are relative to 8 + N. The reader enforces every rule of
 * docs/safetensors.md (header <= 100 MB, contiguous offsets without gaps or
 * overlaps, sizes = numel * dtype bits / 8, file ends at the last tensor, no duplicate names, no NUL
 * in names, metadata string -> string, integers exact) and reports each violation with its own message
 * naming the file and the tensor.
 * Files are opened as regular files only (a FIFO, a device or a directory is refused without
 * blocking) of at most LF_ST_MAX_FILE bytes.
 * The writer pads the header with spaces to a multiple of 8, keeps metadata, writes to a temporary
 * file "<path>.tmp.XXXXXX" in the destination directory, fsyncs and renames it into place: a failed
 * write (or a signal, in a program that calls the cleanup of host/base/file.h from its handlers)
 * leaves no output and never touches an input. An existing destination that is not a regular file
 * is never replaced; nor is one of the inputs named in lf_st_commit_opts (same device and inode).
 */
#ifndef LF_SAFETENSORS_H
#define LF_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "lorafuse/lf_status.h"
#include "lorafuse/lf_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LF_ST_MAX_HEADER 100000000ull
/* Largest file lf_st_open maps (1 TiB; the largest checkpoints are tens of GB). */
#define LF_ST_MAX_FILE (1ull << 40)

typedef struct lf_st_tensor {
    const char *name;
    lf_dtype dtype;
    int ndim;
    int64_t shape[LF_MAX_DIMS];
    uint64_t begin, end;      /* offsets into the byte buffer */
    const unsigned char *data; /* = buffer + begin; may be unaligned */
} lf_st_tensor;

typedef struct lf_st_kv {
    const char *key;
    const char *value;
} lf_st_kv;

typedef struct lf_st_file lf_st_file;

/* Map and validate a file. On failure *out is NULL and lf_last_error() names the file and the rule. */
lf_status lf_st_open(const char *path, lf_st_file **out);
/* Validate an in-memory image (used by the fuzz target); buf must outlive the result. label names it
 * in error messages. */
lf_status lf_st_parse(const unsigned char *buf, size_t size, const char *label, lf_st_file **out);
void lf_st_close(lf_st_file *f);

const char *lf_st_path(const lf_st_file *f);
/* Tensors in file order (ascending data offsets). */
size_t lf_st_count(const lf_st_file *f);
const lf_st_tensor *lf_st_at(const lf_st_file *f, size_t i);
/* Lookup by exact name (O(log n)); NULL if absent. */
const lf_st_tensor *lf_st_find(const lf_st_file *f, const char *name);
lf_view lf_st_view(const lf_st_tensor *t);

size_t lf_st_meta_count(const lf_st_file *f);
const lf_st_kv *lf_st_meta_at(const lf_st_file *f, size_t i);
/* Metadata value or NULL. */
const char *lf_st_meta(const lf_st_file *f, const char *key);

/* Writer. Tensor data pointers are borrowed until lf_st_writer_commit returns. */
typedef struct lf_st_writer lf_st_writer;

lf_status lf_st_writer_new(lf_st_writer **out);
void lf_st_writer_free(lf_st_writer *w);
lf_status lf_st_writer_meta(lf_st_writer *w, const char *key, const char *value);
lf_status lf_st_writer_add(lf_st_writer *w, const char *name, lf_dtype dtype, int ndim,
                           const int64_t *shape, const void *data, size_t nbytes);
typedef struct lf_st_commit_opts {
    int overwrite;             /* 1: an existing regular file is replaced; 0: refused (LF_ERR_ARG) */
    const char *const *inputs; /* files the output must not be (compared by device and inode) */
    size_t n_inputs;
} lf_st_commit_opts;

/* Write everything to `path` atomically (temporary file + fsync + rename) with the checks of opts;
 * the destination is checked before any work and again just before the rename. Errors: LF_ERR_ARG
 * (empty path, destination not a regular file, an input, or existing without overwrite), LF_ERR_IO. */
lf_status lf_st_writer_commit_opts(lf_st_writer *w, const char *path, const lf_st_commit_opts *opts);
/* lf_st_writer_commit_opts with overwrite = 1 and no inputs. */
lf_status lf_st_writer_commit(lf_st_writer *w, const char *path);

#ifdef __cplusplus
}
#endif
#endif
