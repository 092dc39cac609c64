/* fuzz_safetensors.c: libFuzzer target for the safetensors reader.
 *
 * Parses the input with lf_st_parse; on success checks the invariants the reader promises (offset
 * order, contiguity, sizes, data inside the buffer, lookup) and touches every tensor byte and every
 * metadata string, so that a sanitizer sees any out-of-bounds access. An invariant violation aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lorafuse/lf_safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned lf_fuzz_sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lf_st_file *f = NULL;
    if (lf_st_parse(data, size, "fuzz", &f) != LF_OK) {
        if (f) abort();
        if (lf_last_error()[0] == '\0') abort(); /* every failure has a message */
        lf_err_clear();
        return 0;
    }
    unsigned acc = 0;
    uint64_t expect = 0;
    size_t n = lf_st_count(f);
    for (size_t i = 0; i < n; i++) {
        const lf_st_tensor *t = lf_st_at(f, i);
        if (!t || t->begin != expect || t->end < t->begin) abort();
        if (t->ndim < 0 || t->ndim > LF_MAX_DIMS) abort();
        if (t->data < data || (size_t)(t->data - data) + (t->end - t->begin) > size) abort();
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0) abort();
            numel *= (uint64_t)t->shape[d];
        }
        if (numel * lf_dtype_bits(t->dtype) != 8 * (t->end - t->begin)) abort();
        for (uint64_t b = 0; b < t->end - t->begin; b++) acc += t->data[b];
        acc += (unsigned)strlen(t->name);
        if (lf_st_find(f, t->name) != t) abort();
        lf_view v = lf_st_view(t);
        if (v.data != t->data || v.dtype != t->dtype || v.ndim != t->ndim) abort();
        expect = t->end;
    }
    if (n && 8 + (size_t)expect > size) abort();
    if (lf_st_at(f, n) != NULL) abort();
    for (size_t i = 0; i < lf_st_meta_count(f); i++) {
        const lf_st_kv *kv = lf_st_meta_at(f, i);
        if (!kv) abort();
        acc += (unsigned)strlen(kv->key) + (unsigned)strlen(kv->value);
        const char *v = lf_st_meta(f, kv->key);
        if (!v) abort();
    }
    acc += (unsigned)strlen(lf_st_path(f));
    lf_fuzz_sink = acc;
    lf_st_close(f);
    return 0;
}
