/* fuzz_batch_jobs.c: libFuzzer target for `lorafuse batch` job files (lf_batch_parse, lf_batch.h;
 * docs/batch.md "The job file").
 *
 * The input (NUL-terminated copy; one with a NUL inside is refused by name) is parsed as a job file
 * named by a label with an escape sequence in it, with a limit of 64 jobs. A failure must leave an
 * empty list and carry a message that starts with the (escaped) label or names a job, and holds no
 * control byte. On success: 1 to 64 jobs, ids unique, every string set, steps/sizes/images in range,
 * params a JSON object; the order keeps every job, and shards 0..2 of 3 cover the list exactly once.
 * An invariant violation aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "lorafuse/lf_batch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void lf_fuzz_check_message(void) {
    const char *m = lf_last_error();
    static const char label[] = "fuzz\\x1b.jsonl"; /* the label, escaped */
    if (strncmp(m, label, sizeof label - 1) && strncmp(m, "out of memory", 13)) abort();
    for (; *m; m++)
        if ((unsigned char)*m < 0x20 || *m == 0x7f) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 65536) return 0;
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    lf_batch_list l;
    lf_status st = lf_batch_parse("fuzz\x1b.jsonl", text, size, 64, &l);
    free(text);
    if (st != LF_OK) {
        if (l.n || l.jobs) abort();
        lf_fuzz_check_message();
        return 0;
    }
    if (l.n < 1 || l.n > 64) abort();
    for (size_t i = 0; i < l.n; i++) {
        const lf_batch_job *j = &l.jobs[i];
        if (!j->id || !j->dir || !j->model || !j->prompt || !j->negative || !j->sampler || !j->params || !j->key)
            abort();
        if (j->steps < 1 || j->steps > 10000 || j->width < 0 || j->height < 0 || lf_batch_job_images(j) < 1 ||
            j->seed < 0)
            abort();
        cJSON *p = cJSON_Parse(j->params);
        if (!cJSON_IsObject(p)) abort();
        cJSON_Delete(p);
        for (size_t k = 0; k < i; k++)
            if (!strcmp(l.jobs[k].id, j->id)) abort();
    }
    size_t n = l.n;
    lf_batch_order(&l);
    size_t seen = 0;
    unsigned char *hit = calloc(n, 1);
    for (int s = 0; s < 3 && hit; s++) {
        size_t *idx = NULL, m = 0;
        if (lf_batch_shard(&l, s, 3, &idx, &m) != LF_OK) abort();
        for (size_t k = 0; k < m; k++) {
            if (idx[k] >= n || hit[idx[k]]) abort();
            hit[idx[k]] = 1;
        }
        seen += m;
        free(idx);
    }
    if (hit && seen != n) abort();
    free(hit);
    lf_batch_list_free(&l);
    return 0;
}
