/* cli_batch.c: `lorafuse batch`, many jobs from a job file in one process (lf_batch.h, docs/batch.md).
 *
 *   lorafuse batch JOBS [--output-dir DIR] [--shard I/N | --shards N] [--resume] [--dry-run] [--json]
 *                  [--max-jobs N] [--lora-dir DIR] [--backend auto|cpu|cuda] [--device N] [--threads N]
 *                  [--order adapters|file] [--batchable] [--max-batch N] [--batch-lora merged|unmerged]
 *   lorafuse batch --report MANIFEST... [--json]
 *
 * The shard: --shard I/N; else Slurm's array variables (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN,
 * divided by SLURM_ARRAY_TASK_STEP when set, of SLURM_ARRAY_TASK_COUNT); else Kubernetes'
 * JOB_COMPLETION_INDEX of --shards N; else the whole list.
 * Exit status: 0 done, 1 failure (the message names the file, line, column or job), 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "cli.h"
#include "host/cuda/compute_cuda.h"
#include "host/base/pool.h"
#include "host/base/text.h"
#include "lorafuse/lf_batch.h"

static const char lf_batch_usage_text[] =
    "usage: lorafuse batch JOBS [--output-dir DIR] [--shard I/N | --shards N] [--resume] [--dry-run]\n"
    "                      [--json] [--max-jobs N] [--lora-dir DIR] [--backend auto|cpu|cuda] [--device N]\n"
    "                      [--threads N] [--order adapters|file] [--batchable] [--max-batch N]\n"
    "                      [--batch-lora merged|unmerged] [--dtype f16|bf16|f32] [--vae-dtype f32|f16|bf16]\n"
    "                      [--quiet]\n"
    "       lorafuse batch --report MANIFEST... [--json]\n";

static const char lf_batch_help_text[] =
    "Run the jobs and sweeps of a job file (JSON Lines, or {\"defaults\", \"jobs\", \"sweeps\"}) in one\n"
    "process, each model loaded once (docs/batch.md). Images go to DIR/JOB/NNNNN-SEED.png and one record\n"
    "per image to DIR/manifest.jsonl (manifest-shard-I-of-N.jsonl for a shard).\n"
    "defaults: --output-dir outputs/batch, --max-jobs " "10000" ", --lora-dir models/lora, --backend auto,\n"
    "--dtype f16 and --vae-dtype f32 on CUDA (as generate's; the CPU ignores them).\n"
    "shards: --shard I/N (0 <= I < N), else SLURM_ARRAY_TASK_ID/_MIN/_COUNT, else JOB_COMPLETION_INDEX\n"
    "with --shards N. --dry-run prints the expanded jobs and totals without loading a model.\n"
    "--order file runs the jobs as written instead of grouped by model and LoRA tags (for comparison).\n"
    "--batchable: every job as if it had \"batchable\": true: consecutive batchable jobs with the same\n"
    "model, size, steps, sampler, CFG and clip skip run as one batch of up to --max-batch (8) images.\n"
    "--batch-lora merged: such a batch builds each job's LoRAs into weights of its own (each image bit for\n"
    "bit the job alone; a patched layer runs once per distinct weight); unmerged (default): per-image terms.\n"
    "example:\n"
    "  lorafuse batch jobs.jsonl --output-dir out --dry-run\n"
    "  lorafuse batch jobs.jsonl --output-dir out && lorafuse batch --report out/manifest.jsonl\n"
    "with jobs.jsonl holding lines such as\n"
    "  {\"id\": \"cat\", \"model\": \"models/sd15-mini.safetensors\", \"prompt\": \"a cat <lora:mini_lora:{s}>\",\n"
    "   \"steps\": 4, \"width\": 64, \"height\": 64, \"axes\": {\"s\": [0, 0.5, 1], \"seed\": [1, 2]}}\n";

enum {
    B_OUTDIR, B_SHARD, B_SHARDS, B_RESUME, B_DRY, B_JSON, B_MAX, B_LORA, B_BACKEND, B_DEVICE, B_THREADS, B_QUIET, B_REPORT,
    B_ORDER, B_BATCHABLE, B_MAX_BATCH, B_BATCH_LORA, B_DTYPE, B_VAEDTYPE
};

static const lf_cli_opt lf_batch_cli_opts[] = {
    [B_OUTDIR] = {"output-dir", 1, 0}, [B_SHARD] = {"shard", 1, 0},     [B_SHARDS] = {"shards", 1, 0},
    [B_RESUME] = {"resume", 0, 0},     [B_DRY] = {"dry-run", 0, 0},     [B_JSON] = {"json", 0, 0},
    [B_MAX] = {"max-jobs", 1, 0},      [B_LORA] = {"lora-dir", 1, 0},   [B_BACKEND] = {"backend", 1, 0}, [B_DEVICE] = {"device", 1, 0},
    [B_THREADS] = {"threads", 1, 0},   [B_QUIET] = {"quiet", 0, 0},     [B_REPORT] = {"report", 0, 0},
    [B_ORDER] = {"order", 1, 0},       [B_BATCHABLE] = {"batchable", 0, 0}, [B_MAX_BATCH] = {"max-batch", 1, 0},
    [B_BATCH_LORA] = {"batch-lora", 1, 0}, [B_DTYPE] = {"dtype", 1, 0}, [B_VAEDTYPE] = {"vae-dtype", 1, 0},
    {NULL, 0, 0}};

typedef struct {
    lf_batch_opts o;
    const char *shard_arg;
    int shards_k8s, dry, json, report, threads, file_order;
    long long max_jobs;
} lf_batch_args;

static int lf_batch_opt(lf_batch_args *a, int o, const char *v) {
    long long n = 0;
    switch (o) {
    case B_OUTDIR: a->o.output_dir = v; return 1;
    case B_SHARD: a->shard_arg = v; return 1;
    case B_SHARDS:
        if (!lf_cli_int("batch", "--shards", v, 1, 100000, &n)) return 0;
        a->shards_k8s = (int)n;
        return 1;
    case B_RESUME: a->o.resume = 1; return 1;
    case B_DRY: a->dry = 1; return 1;
    case B_JSON: a->json = 1; return 1;
    case B_MAX: return lf_cli_int("batch", "--max-jobs", v, 1, 100000000, &a->max_jobs);
    case B_LORA: a->o.lora_dir = v; return 1;
    case B_BACKEND: return lf_cli_backend("batch", v, &a->o.backend);
    case B_BATCH_LORA: return lf_cli_batch_lora("batch", v, &a->o.batch_merged);
    case B_DEVICE: return lf_cli_device("batch", v, &a->o.device);
    case B_DTYPE: return lf_cli_dtype("batch", "--dtype", v, &a->o.dtype);
    case B_VAEDTYPE: return lf_cli_dtype("batch", "--vae-dtype", v, &a->o.vae_dtype);
    case B_THREADS:
        if (!lf_cli_int("batch", "--threads", v, 1, 1024, &n)) return 0;
        a->threads = (int)n;
        return 1;
    case B_QUIET: a->o.quiet = 1; return 1;
    case B_REPORT: a->report = 1; return 1;
    case B_ORDER:
        if (!strcmp(v, "file")) a->file_order = 1;
        else if (strcmp(v, "adapters")) return lf_cli_bad_choice("batch", "--order", v, "adapters or file");
        return 1;
    case B_BATCHABLE: a->o.batchable = 1; return 1;
    case B_MAX_BATCH:
        if (!lf_cli_int("batch", "--max-batch", v, 1, LF_BATCH_MAX_BATCH, &n)) return 0;
        a->o.max_batch = (int)n;
        return 1;
    default: return 0;
    }
}

/* An environment variable as an integer in [lo, hi]: 1 and *out; 0 when unset; -1 after a message. */
static int lf_batch_env(const char *name, long long lo, long long hi, long long *out) {
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    char opt[64];
    snprintf(opt, sizeof opt, "$%s", name);
    return lf_cli_int("batch", opt, v, lo, hi, out) ? 1 : -1;
}

/* The shard from --shard, Slurm or Kubernetes: 1, or 0 after a message. */
static int lf_batch_pick_shard(lf_batch_args *a) {
    a->o.shard = 0;
    a->o.shards = 1;
    if (a->shard_arg) {
        int i = -1, n = 0, k = 0;
        if (sscanf(a->shard_arg, "%d/%d%n", &i, &n, &k) != 2 || a->shard_arg[k] || n < 1 || i < 0 || i >= n) {
            char q[LF_ESC_PART];
            fprintf(stderr, "lorafuse batch: bad --shard '%s' (I/N with 0 <= I < N)\n",
                    lf_esc(q, sizeof q, a->shard_arg, strlen(a->shard_arg)));
            return 0;
        }
        a->o.shard = i;
        a->o.shards = n;
        return 1;
    }
    long long id = 0, min = 0, count = 0, step = 1, idx = 0;
    int r = lf_batch_env("SLURM_ARRAY_TASK_ID", 0, 1 << 30, &id);
    if (r < 0) return 0;
    if (r > 0) {
        if (lf_batch_env("SLURM_ARRAY_TASK_MIN", 0, 1 << 30, &min) < 0 ||
            lf_batch_env("SLURM_ARRAY_TASK_STEP", 1, 1 << 30, &step) < 0)
            return 0;
        int rc = lf_batch_env("SLURM_ARRAY_TASK_COUNT", 1, 100000, &count);
        if (rc <= 0) {
            if (rc == 0)
                fprintf(stderr, "lorafuse batch: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not\n");
            return 0;
        }
        long long i = (id - min) / step;
        if (id < min || i >= count) {
            fprintf(stderr, "lorafuse batch: SLURM_ARRAY_TASK_ID %lld is outside the array (min %lld, step %lld, "
                    "count %lld)\n", id, min, step, count);
            return 0;
        }
        a->o.shard = (int)i;
        a->o.shards = (int)count;
        return 1;
    }
    r = lf_batch_env("JOB_COMPLETION_INDEX", 0, 100000, &idx);
    if (r < 0) return 0;
    if (r > 0 && !a->shards_k8s) {
        fprintf(stderr, "lorafuse batch: JOB_COMPLETION_INDEX is set: give the number of shards with --shards N\n");
        return 0;
    }
    if (r == 0 && a->shards_k8s) {
        fprintf(stderr, "lorafuse batch: --shards N takes the shard from JOB_COMPLETION_INDEX, which is not set "
                "(use --shard I/N)\n");
        return 0;
    }
    if (r > 0) {
        if (idx >= a->shards_k8s) {
            fprintf(stderr, "lorafuse batch: JOB_COMPLETION_INDEX %lld is not below --shards %d\n", idx, a->shards_k8s);
            return 0;
        }
        a->o.shard = (int)idx;
        a->o.shards = a->shards_k8s;
    }
    return 1;
}

/* Jobs whose weights differ from the previous job's (model, LoRA tags as written): the rewrites. */
static size_t lf_batch_rewrites(const lf_batch_list *l, const size_t *idx, size_t n) {
    size_t c = 0;
    for (size_t k = 0; k < n; k++) {
        const lf_batch_job *j = &l->jobs[idx ? idx[k] : k];
        const lf_batch_job *p = k ? &l->jobs[idx ? idx[k - 1] : k - 1] : NULL;
        if (p ? strcmp(p->key, j->key) != 0 : strchr(j->key, '<') != NULL) c++;
    }
    return c;
}

static int lf_batch_dry(const lf_batch_list *l, const size_t *idx, size_t n, size_t unordered, const lf_batch_args *a) {
    size_t images = 0, steps = 0, loads = 0, batches = 0;
    /* batch[k]: the call job k runs in (0-based), as a run without records would make them */
    size_t *batch = malloc((n ? n : 1) * sizeof *batch);
    if (!batch) {
        fprintf(stderr, "lorafuse batch: out of memory\n");
        return 1;
    }
    for (size_t k = 0, c = 0, end; k < n; k = end, c++) {
        end = lf_batch_batch_end(l, idx, n, k, &a->o);
        batches += end - k > 1;
        for (size_t i = k; i < end; i++) batch[i] = c;
    }
    for (size_t k = 0; k < n; k++) {
        const lf_batch_job *j = &l->jobs[idx[k]];
        images += lf_batch_job_images(j);
        steps += lf_batch_job_images(j) * (size_t)j->steps;
        loads += !k || strcmp(l->jobs[idx[k - 1]].model, j->model);
    }
    size_t rewrites = lf_batch_rewrites(l, idx, n);
    if (a->json) {
        cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "jobs");
        for (size_t k = 0; k < n; k++) {
            const lf_batch_job *j = &l->jobs[idx[k]];
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "id", j->id);
            cJSON_AddStringToObject(e, "dir", j->dir);
            cJSON_AddNumberToObject(e, "images", (double)lf_batch_job_images(j));
            cJSON_AddNumberToObject(e, "batch", (double)batch[k]);
            cJSON_AddStringToObject(e, "sampler", j->sampler);
            cJSON_AddItemToObject(e, "params", cJSON_Parse(j->params));
            cJSON_AddItemToArray(arr, e);
        }
        cJSON *t = cJSON_AddObjectToObject(o, "totals");
        cJSON_AddNumberToObject(t, "jobs", (double)n);
        cJSON_AddNumberToObject(t, "images", (double)images);
        cJSON_AddNumberToObject(t, "steps", (double)steps);
        cJSON_AddNumberToObject(t, "model_loads", (double)loads);
        cJSON_AddNumberToObject(t, "weight_rewrites", (double)rewrites);
        cJSON_AddNumberToObject(t, "weight_rewrites_in_file_order", (double)unordered);
        cJSON_AddNumberToObject(t, "batches", (double)batches);
        cJSON_AddStringToObject(t, "shard", "");
        char sh[48];
        snprintf(sh, sizeof sh, "%d/%d", a->o.shard, a->o.shards);
        cJSON_ReplaceItemInObject(t, "shard", cJSON_CreateString(sh));
        char *s = cJSON_Print(o);
        cJSON_Delete(o);
        if (s) puts(s);
        free(s);
        free(batch);
        return s ? 0 : 1;
    }
    for (size_t k = 0; k < n; k++) {
        const lf_batch_job *j = &l->jobs[idx[k]];
        char line[512];
        snprintf(line, sizeof line, "%s  seed %lld  %d steps  %dx%d  %zu image(s)  %s  batch %zu  ", j->id,
                 (long long)j->seed, j->steps, j->width, j->height, lf_batch_job_images(j), j->sampler, batch[k]);
        lf_cli_print_escaped("%s", line);
        lf_cli_print_escaped("%s\n", j->prompt);
    }
    printf("shard %d/%d: %zu jobs, %zu images, %zu steps, %zu model load(s), %zu weight rewrite(s) "
           "(%zu in file order), %zu batch(es) of several jobs\n", a->o.shard, a->o.shards, n, images, steps, loads,
           rewrites, unordered, batches);
    free(batch);
    return 0;
}

static int lf_batch_report_cmd(char **paths, int n, int json) {
    char *s = NULL;
    if (lf_batch_report((const char *const *)paths, (size_t)n, &s) != LF_OK) {
        lf_err_escape(LF_OK);
        fprintf(stderr, "lorafuse batch: %s\n", lf_last_error());
        return 1;
    }
    if (json) puts(s);
    else {
        cJSON *o = cJSON_Parse(s);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "times");
#define LF_RN(obj, k) cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(obj, k))
        printf("%.0f images of %.0f jobs from %.0f manifest(s) (%.0f duplicate records)\n", LF_RN(o, "images"),
               LF_RN(o, "jobs"), LF_RN(o, "manifests"), LF_RN(o, "duplicates"));
        printf("busy %.2f s: load %.2f, text encoders %.2f, weights %.2f, unet %.2f, vae %.2f, write %.2f\n",
               LF_RN(o, "busy_seconds"), LF_RN(t, "load"), LF_RN(t, "text_encoders"), LF_RN(t, "weights"),
               LF_RN(t, "unet"), LF_RN(t, "vae"), LF_RN(t, "write"));
        printf("%.1f images/hour busy, %.1f images/hour over %.2f s wall\n", LF_RN(o, "images_per_hour_busy"),
               LF_RN(o, "images_per_hour_wall"), LF_RN(o, "wall_seconds"));
#undef LF_RN
        cJSON_Delete(o);
    }
    free(s);
    return 0;
}

int lf_cli_batch(int argc, char **argv) {
    lf_batch_args a;
    memset(&a, 0, sizeof a);
    a.o.cuda = lf_compute_cuda_device; /* --backend cuda / auto */
    a.o.output_dir = "outputs/batch";
    a.max_jobs = LF_BATCH_DEFAULT_MAX_JOBS;
    lf_cli_parser p;
    lf_cli_parser_init(&p, "batch", lf_batch_usage_text, lf_batch_help_text, lf_batch_cli_opts, argc, argv);
    int o, n, rc;
    char *v, **rest;
    while ((o = lf_cli_next(&p, &v)) >= 0 && lf_batch_opt(&a, o, v)) {
    }
    if ((rc = lf_cli_finish(&p, o < 0 ? o : LF_CLI_BAD, 1 << 20, &rest, &n)) >= 0) return rc;
    if (a.report) {
        if (n < 1) fprintf(stderr, "lorafuse batch: --report needs at least one manifest\n");
        return n < 1 ? lf_cli_bad_usage(&p) : lf_batch_report_cmd(rest, n, a.json);
    }
    if (n != 1) {
        if (n) {
            char q[LF_ESC_PART];
            fprintf(stderr, "lorafuse batch: unexpected argument '%s'\n",
                    lf_esc(q, sizeof q, rest[1], strlen(rest[1])));
        } else fprintf(stderr, "lorafuse batch: no job file\n");
        return lf_cli_bad_usage(&p);
    }
    if (!*a.o.output_dir) {
        fprintf(stderr, "lorafuse batch: --output-dir is empty\n");
        return lf_cli_bad_usage(&p);
    }
    if (!lf_batch_pick_shard(&a)) return lf_cli_bad_usage(&p);
    if (a.threads) lf_par_set_threads(a.threads);
    lf_batch_list l;
    if (lf_batch_load(rest[0], (size_t)a.max_jobs, &l) != LF_OK) {
        lf_err_escape(LF_OK);
        fprintf(stderr, "lorafuse batch: %s\n", lf_last_error());
        return 1;
    }
    size_t unordered = lf_batch_rewrites(&l, NULL, l.n);
    if (!a.file_order) lf_batch_order(&l);
    size_t *idx = NULL, n_idx = 0;
    rc = 1;
    if (lf_batch_shard(&l, a.o.shard, a.o.shards, &idx, &n_idx) == LF_OK) {
        if (a.dry) rc = lf_batch_dry(&l, idx, n_idx, unordered, &a);
        else {
            lf_batch_stats s;
            lf_status st = lf_batch_run(&l, idx, n_idx, &a.o, &s);
            if (st != LF_OK) {
                lf_err_escape(LF_OK);
                fprintf(stderr, "lorafuse batch: %s\n", lf_last_error());
            } else {
                rc = 0;
                if (a.json)
                    printf("{\"shard\": \"%d/%d\", \"jobs\": %zu, \"images\": %zu, \"skipped\": %zu, \"model_loads\": "
                           "%zu, \"grids\": %zu, \"seconds\": %.3f, \"weight_updates\": %zu, \"te_runs\": %zu, "
                           "\"batches\": %zu}\n",
                           a.o.shard, a.o.shards, s.jobs, s.images, s.skipped, s.model_loads, s.grids, s.seconds,
                           s.times.weight_updates, s.times.te_runs, s.batches);
                else
                    printf("lorafuse batch: shard %d/%d: %zu image(s) written, %zu already done, %zu job(s), "
                           "%zu batch(es) of several jobs, %zu model load(s), %zu grid sheet(s), %.2f s\n", a.o.shard,
                           a.o.shards, s.images, s.skipped, s.jobs, s.batches, s.model_loads, s.grids, s.seconds);
            }
        }
    } else {
        fprintf(stderr, "lorafuse batch: %s\n", lf_last_error());
    }
    free(idx);
    lf_batch_list_free(&l);
    return rc;
}
