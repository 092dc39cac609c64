/* merge.c: `lorafuse merge` — bake adapters into a copy of a checkpoint (see lf_merge.h).
 * The patch math runs on a small pool of threads, one job (checkpoint tensor) at a time.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>

#include "lorafuse/lf_merge.h"
#include "host/base/file.h"
#include "host/base/util.h"

typedef struct {
    const lf_plan *plan;
    void **outs;
    lf_status *status;
    char (*msg)[512];
    atomic_size_t next;
    int fast;
} lf_pool;

static void *lf_worker(void *arg) {
    lf_pool *p = arg;
    lf_apply_ws ws = {NULL, 0};
    for (;;) {
        size_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->plan->n_jobs) break;
        p->status[i] = lf_job_apply_ws(&p->plan->jobs[i], p->fast, p->outs[i], &ws);
        if (p->status[i] != LF_OK) snprintf(p->msg[i], sizeof p->msg[i], "%s", lf_last_error());
    }
    lf_apply_ws_free(&ws);
    return NULL;
}

static lf_status lf_run_jobs(const lf_plan *plan, void **outs, int threads, int fast) {
    lf_pool pool = {plan, outs, calloc(plan->n_jobs + 1, sizeof(lf_status)),
                    calloc(plan->n_jobs + 1, sizeof(char[512])), 0, fast};
    if (!pool.status || !pool.msg) {
        free(pool.status);
        free(pool.msg);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    if (threads <= 0) threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    pthread_t tid[64];
    int started = 0;
    for (; started < threads - 1; started++)
        if (pthread_create(&tid[started], NULL, lf_worker, &pool) != 0) break;
    lf_worker(&pool);
    for (int i = 0; i < started; i++) pthread_join(tid[i], NULL);
    lf_status st = LF_OK;
    for (size_t i = 0; i < plan->n_jobs; i++)
        if (pool.status[i] != LF_OK) {
            st = lf_err(pool.status[i], "%s", pool.msg[i]);
            break;
        }
    free(pool.status);
    free(pool.msg);
    return st;
}

/* "lorafuse.merged": [{"file": ..., "strength": ..., "modules": ...}, ...] */
static char *lf_merge_record(const lf_merge_input *in, size_t n, const lf_plan *plan) {
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", lf_basename(in[i].path));
        cJSON_AddNumberToObject(o, "strength", (double)in[i].strength);
        if (in[i].dyn_rank) cJSON_AddNumberToObject(o, "dyn", in[i].dyn_rank);
        cJSON_AddNumberToObject(o, "modules", (double)plan->matched[i]);
        cJSON_AddItemToArray(arr, o);
    }
    char *s = arr ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    return s;
}

lf_status lf_merge(const char *model_path, const lf_merge_input *in, size_t n, const char *out_path,
                   const lf_merge_opts *opts, lf_merge_stats *stats) {
    static const lf_merge_opts defaults;
    const lf_merge_opts *o = opts ? opts : &defaults;
    lf_merge_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    /* The model and every adapter are inputs the output may not be; the destination is refused here,
     * before any work, and checked again by the writer just before the rename. */
    const char **inputs = calloc(n + 1, sizeof *inputs);
    if (!inputs) return lf_err(LF_ERR_NOMEM, "out of memory");
    inputs[0] = model_path;
    for (size_t i = 0; i < n; i++) inputs[i + 1] = in[i].path;
    lf_st_commit_opts wo = {o->overwrite, inputs, n + 1};
    lf_file_out_opts fo = {o->overwrite, inputs, n + 1};
    lf_status st = lf_file_out_check(out_path, &fo);
    if (st != LF_OK) {
        free((void *)inputs);
        return st;
    }

    double t0 = lf_clock_s();
    lf_model *model = NULL;
    lf_adapter **ads = calloc(n + 1, sizeof *ads);
    float *strengths = calloc(n + 1, sizeof *strengths);
    lf_plan *plan = NULL;
    void **outs = NULL;
    lf_st_writer *w = NULL;
    char *record = NULL;
    if (!ads || !strengths) st = lf_err(LF_ERR_NOMEM, "out of memory");
    if (st == LF_OK) st = lf_model_open(model_path, &model);
    for (size_t i = 0; i < n && st == LF_OK; i++) {
        st = lf_adapter_open(in[i].path, &ads[i]);
        strengths[i] = in[i].strength;
        if (st == LF_OK && in[i].dyn_rank)
            for (size_t m = 0; m < ads[i]->n_mods; m++) ads[i]->mods[m].dyn_rank = in[i].dyn_rank;
    }
    if (st == LF_OK) st = lf_plan_build(model, ads, strengths, n, &o->plan, &plan);
    double t1 = lf_clock_s();
    stats->t_read = t1 - t0;

    if (st == LF_OK && !(outs = calloc(plan->n_jobs + 1, sizeof *outs))) st = lf_err(LF_ERR_NOMEM, "out of memory");
    for (size_t j = 0; st == LF_OK && j < plan->n_jobs; j++) {
        const lf_st_tensor *t = plan->jobs[j].target;
        if (!(outs[j] = malloc((size_t)(t->end - t->begin) + 1)))
            st = lf_err(LF_ERR_NOMEM, "out of memory for '%s'", t->name);
    }
    if (st == LF_OK) st = o->apply ? o->apply(o->apply_ctx, plan, outs) : lf_run_jobs(plan, outs, o->threads, !o->reference);
    double t2 = lf_clock_s();
    stats->t_compute = t2 - t1;

    if (st == LF_OK) st = lf_st_writer_new(&w);
    for (size_t i = 0; st == LF_OK && i < lf_st_meta_count(model->st); i++) {
        const lf_st_kv *kv = lf_st_meta_at(model->st, i);
        if (strcmp(kv->key, "lorafuse.merged") != 0) st = lf_st_writer_meta(w, kv->key, kv->value);
    }
    if (st == LF_OK) {
        record = lf_merge_record(in, n, plan);
        st = record ? lf_st_writer_meta(w, "lorafuse.merged", record) : lf_err(LF_ERR_NOMEM, "out of memory");
    }
    size_t j = 0; /* jobs are in file order, like the tensors */
    for (size_t i = 0; st == LF_OK && i < lf_st_count(model->st); i++) {
        const lf_st_tensor *t = lf_st_at(model->st, i);
        const void *data = t->data;
        if (j < plan->n_jobs && plan->jobs[j].target == t) {
            data = outs[j++];
            stats->tensors_patched++;
        } else {
            stats->tensors_copied++;
        }
        st = lf_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, data, (size_t)(t->end - t->begin));
        stats->bytes_out += (size_t)(t->end - t->begin);
    }
    if (st == LF_OK) st = lf_st_writer_commit_opts(w, out_path, &wo);
    stats->t_write = lf_clock_s() - t2;

    free(record);
    lf_st_writer_free(w);
    for (size_t k = 0; outs && k < plan->n_jobs; k++) free(outs[k]);
    free(outs);
    lf_plan_free(plan);
    for (size_t i = 0; ads && i < n; i++) lf_adapter_free(ads[i]);
    free(ads);
    free(strengths);
    free((void *)inputs);
    lf_model_free(model);
    return st;
}
