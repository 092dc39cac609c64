/* batch_run.c: running a `lorafuse batch` job list on resident models, the manifest, --resume and
 * --report (lf_batch.h, docs/batch.md).
 *
 * Each job runs as a job of an lf_gen_session (lf_generate.h), one session per model at a time, so a
 * job's images are those of `lorafuse generate` with the same options, whatever ran before. Images are
 * written as OUT/JOBDIR/NNNNN-SEED.png (NNNNN: the image's index in its job, as generate numbers a fresh
 * folder) through a temporary file renamed when complete; then one line is appended to the manifest
 * with a single write(2) and fsync'ed. A record is proof of its image: --resume keeps the records whose
 * file has the recorded SHA-256 (rewriting the manifest with them), reads those of the folder's other
 * manifests too (another split of the same work), and a job runs again only when one of its images
 * lacks such a record (the images that have one are not written again).
 *
 * Test hook: LORAFUSE_BATCH_KILL_AT=png:N or record:N sends SIGKILL to the process itself right after
 * its N-th image file is published (before its record) or its N-th record is appended.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "batch_internal.h"
#include "host/base/file.h"
#include "host/base/strbuf.h"
#include "host/base/text.h"
#include "host/base/util.h"
#include "lorafuse/lf_batch.h"
#include "lorafuse/lf_hash.h"
#include "lorafuse/lf_png.h"

/* ---- the manifest's records as resume sees them ------------------------------------------------ */
typedef struct {
    char *job;
    int image;
    char *line;                /* the record as read */
    char *params;              /* its "params", printed as lf_batch_job.params is */
    int own;                   /* from this shard's manifest (rewritten by --resume), else another's */
} lf_brec;

typedef struct {
    lf_brec *v;
    size_t n, cap;
} lf_brecs;

static void lf_brecs_free(lf_brecs *r) {
    for (size_t i = 0; i < r->n; i++) free(r->v[i].job), free(r->v[i].line), free(r->v[i].params);
    free(r->v);
    memset(r, 0, sizeof *r);
}

static int lf_brecs_has(const lf_brecs *r, const char *job, int image) {
    for (size_t i = r->n; i-- > 0;)
        if (r->v[i].image == image && !strcmp(r->v[i].job, job)) return 1;
    return 0;
}

static double lf_bnow(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* mkdir -p for a folder under (and including) base. */
static lf_status lf_bmkdirs(const char *path) {
    char *p = lf_strndup(path, strlen(path));
    if (!p) return lf_err(LF_ERR_NOMEM, "out of memory");
    char q[LF_ESC_PART];
    for (char *s = p + 1;; s++) {
        if (*s == '/' || !*s) {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                lf_status st = lf_err(LF_ERR_IO, "%s: cannot create the folder: %s", lf_esc(q, sizeof q, p, strlen(p)),
                                      strerror(errno));
                free(p);
                return st;
            }
            *s = c;
            if (!c) break;
        }
    }
    free(p);
    return LF_OK;
}

/* Read a manifest for --resume: the records whose image file (relative to out) has the recorded hash.
 * A line that does not parse (a record cut by a crash) is dropped. */
static lf_status lf_bread_manifest(const char *out, const char *path, int own, lf_brecs *r) {
    char *text = NULL;
    if (!lf_file_exists(path)) return LF_OK;
    lf_status st = lf_read_file(path, "the manifest", (size_t)1 << 31, &text, NULL);
    if (st != LF_OK) return st;
    for (char *p = text; *p && st == LF_OK;) {
        char *nl = strchr(p, '\n');
        if (!nl) break; /* a record always ends with its newline */
        *nl = '\0';
        cJSON *j = cJSON_Parse(p);
        const cJSON *job = cJSON_GetObjectItemCaseSensitive(j, "job");
        const cJSON *img = cJSON_GetObjectItemCaseSensitive(j, "image");
        const cJSON *file = cJSON_GetObjectItemCaseSensitive(j, "file");
        const cJSON *sha = cJSON_GetObjectItemCaseSensitive(j, "sha256");
        if (cJSON_IsString(job) && cJSON_IsNumber(img) && cJSON_IsString(file) && cJSON_IsString(sha) &&
            !lf_brecs_has(r, job->valuestring, img->valueint)) {
            lf_sbuf f = {0};
            lf_sb_printf(&f, "%s/%s", out, file->valuestring);
            char hex[65];
            if (!f.oom && lf_sha256_file(f.s, 0, hex) == LF_OK && !strcmp(hex, sha->valuestring)) {
                if (lf_grow(&r->v, &r->cap, r->n + 1)) st = lf_err(LF_ERR_NOMEM, "out of memory");
                else {
                    lf_brec *b = &r->v[r->n++];
                    b->job = lf_strndup(job->valuestring, strlen(job->valuestring));
                    b->image = img->valueint;
                    b->line = lf_strndup(p, strlen(p));
                    b->params = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(j, "params"));
                    b->own = own;
                    if (!b->job || !b->line || !b->params) st = lf_err(LF_ERR_NOMEM, "out of memory");
                }
            }
            lf_sb_free(&f);
        }
        cJSON_Delete(j);
        p = nl + 1;
    }
    free(text);
    return st;
}

/* The records of the output folder's other manifests (manifest*.jsonl: other shards, or the same work
 * split differently before), so that images made under another split are not made again. */
static lf_status lf_bread_others(const char *out, const char *own_path, lf_brecs *r) {
    DIR *d = opendir(out);
    if (!d) return LF_OK;
    struct dirent *e;
    lf_status st = LF_OK;
    while (st == LF_OK && (e = readdir(d))) {
        if (!lf_has_prefix(e->d_name, "manifest") || !lf_has_suffix(e->d_name, ".jsonl") ||
            !strcmp(e->d_name, lf_basename(own_path)))
            continue;
        lf_sbuf p = {0};
        lf_sb_printf(&p, "%s/%s", out, e->d_name);
        st = p.oom ? lf_err(LF_ERR_NOMEM, "out of memory") : lf_bread_manifest(out, p.s, 0, r);
        lf_sb_free(&p);
    }
    closedir(d);
    return st;
}

/* Write the kept records as the manifest (temporary file, then rename). */
static lf_status lf_bwrite_manifest(const char *path, const lf_brecs *r) {
    lf_file_out_opts fo = {1, NULL, 0};
    lf_file_out *f = NULL;
    lf_status st = lf_file_out_open(path, &fo, &f);
    for (size_t i = 0; i < r->n && st == LF_OK; i++) {
        if (!r->v[i].own) continue;
        st = lf_file_out_write(f, r->v[i].line, strlen(r->v[i].line));
        if (st == LF_OK) st = lf_file_out_write(f, "\n", 1);
    }
    if (st != LF_OK) {
        lf_file_out_abort(f);
        return st;
    }
    return lf_file_out_commit(f);
}

/* Remove the temporary files a killed run left in a job's folder (NAME.png.tmp.XXXXXX). */
static void lf_bclean_temps(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strstr(e->d_name, ".png.tmp.")) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
}

/* ---- running ---------------------------------------------------------------------------------- */
typedef struct {
    const lf_batch_opts *o;
    const lf_batch_job *job;
    lf_gen *g;
    const lf_brecs *done;
    int fd;                    /* the manifest, O_APPEND */
    double load;               /* session load time not yet attributed to a record */
    double t_start;            /* the job's start (unix seconds) */
    lf_gen_times prev;         /* the run's times at its previous record */
    const lf_batch_job **batch; /* the jobs of the running call, by lf_gen_image.job */
    size_t written;
    long kill_png, kill_record;
    size_t n_png, n_record;
} lf_brun;

static void lf_bkill_if(long at, size_t n) {
    if (at > 0 && (size_t)at == n) raise(SIGKILL);
}

static lf_status lf_bimage(void *ctx, const lf_gen_image *im) {
    lf_brun *r = ctx;
    const lf_batch_job *j = r->job;
    if (lf_brecs_has(r->done, j->id, im->job_index)) return LF_OK;
    uint8_t *png = NULL;
    size_t len = 0;
    const char *key = "parameters";
    lf_status st = lf_png_encode_mem(im->rgb, im->width, im->height, &key, &im->parameters, 1, &png, &len);
    if (st != LF_OK) return st;
    lf_sha256 sh;
    unsigned char dg[32];
    char hex[65];
    lf_sha256_init(&sh);
    lf_sha256_update(&sh, png, len);
    lf_sha256_final(&sh, dg);
    lf_sha256_hex(dg, hex);
    char rel[512], path[4096];
    snprintf(rel, sizeof rel, "%s/%05d-%lld.png", j->dir, im->job_index, (long long)im->seed);
    snprintf(path, sizeof path, "%s/%s", r->o->output_dir, rel);
    double t0 = lf_clock_s();
    lf_file_out_opts fo = {1, NULL, 0};
    lf_file_out *f = NULL;
    st = lf_file_out_open(path, &fo, &f);
    if (st == LF_OK) st = lf_file_out_write(f, png, len);
    free(png);
    if (st != LF_OK) {
        lf_file_out_abort(f);
        return st;
    }
    if ((st = lf_file_out_commit(f)) != LF_OK) return st;
    double t_write = lf_clock_s() - t0;
    lf_bkill_if(r->kill_png, ++r->n_png);

    const lf_gen_times *t = lf_gen_get_times(r->g);
    cJSON *rec = cJSON_CreateObject();
    cJSON_AddStringToObject(rec, "job", j->id);
    cJSON_AddNumberToObject(rec, "image", im->job_index);
    cJSON_AddNumberToObject(rec, "seed", (double)im->seed);
    cJSON_AddStringToObject(rec, "file", rel);
    cJSON_AddStringToObject(rec, "sha256", hex);
    cJSON_AddItemToObject(rec, "params", cJSON_Parse(j->params));
    cJSON *tm = cJSON_AddObjectToObject(rec, "times");
    cJSON_AddNumberToObject(tm, "load", r->load);
    cJSON_AddNumberToObject(tm, "text_encoders", t->encode - r->prev.encode);
    cJSON_AddNumberToObject(tm, "weights", t->weights - r->prev.weights);
    cJSON_AddNumberToObject(tm, "unet", t->unet - r->prev.unet);
    cJSON_AddNumberToObject(tm, "vae", t->decode - r->prev.decode);
    cJSON_AddNumberToObject(tm, "write", t_write);
    cJSON_AddNumberToObject(tm, "weight_updates", (double)(t->weight_updates - r->prev.weight_updates));
    cJSON_AddNumberToObject(tm, "te_runs", (double)(t->te_runs - r->prev.te_runs));
    const char *be = lf_gen_get_info(r->g)->backend;
    int cuda = be && !strncmp(be, "cuda", 4);
    char dev[32];
    snprintf(dev, sizeof dev, "cuda:%d", r->o->device);
    cJSON_AddStringToObject(rec, "backend", cuda ? "cuda" : "cpu");
    cJSON_AddStringToObject(rec, "device", cuda ? dev : "cpu");
    char shard[48];
    snprintf(shard, sizeof shard, "%d/%d", r->o->shards > 1 ? r->o->shard : 0, r->o->shards > 1 ? r->o->shards : 1);
    cJSON_AddStringToObject(rec, "shard", shard);
    cJSON_AddNumberToObject(rec, "t_start", r->t_start);
    cJSON_AddNumberToObject(rec, "t_end", lf_bnow());
    char *line = cJSON_PrintUnformatted(rec);
    cJSON_Delete(rec);
    if (!line) return lf_err(LF_ERR_NOMEM, "out of memory");
    size_t n = strlen(line);
    line[n] = '\n'; /* the NUL becomes the newline: one write(2) carries the whole record */
    ssize_t w;
    do w = write(r->fd, line, n + 1);
    while (w < 0 && errno == EINTR);
    free(line);
    if (w != (ssize_t)(n + 1) || fsync(r->fd) != 0)
        return lf_err(LF_ERR_IO, "the manifest: cannot append a record: %s", w < 0 ? strerror(errno) : "short write");
    r->prev = *t;
    r->load = 0;
    r->written++;
    lf_bkill_if(r->kill_record, ++r->n_record);
    return LF_OK;
}

/* An image of a batch of jobs: recorded as its own job's. */
static lf_status lf_bimage_of(void *ctx, const lf_gen_image *im) {
    lf_brun *r = ctx;
    r->job = r->batch[im->job];
    return lf_bimage(r, im);
}

static void lf_bopts(const lf_batch_job *j, const lf_batch_opts *o, lf_gen_opts *g) {
    lf_gen_opts_default(g);
    g->model = j->model;
    g->prompt = j->prompt;
    g->negative = j->negative;
    g->steps = j->steps;
    g->sampler = j->sampler;
    g->cfg = j->cfg;
    g->seed = j->seed;
    g->width = j->width;
    g->height = j->height;
    g->batch_size = j->batch_size;
    g->batch_count = j->n_iter;
    g->clip_skip = j->clip_skip;
    g->lora_dir = o->lora_dir;
    g->backend = o->backend;
    g->device = o->device;
    g->cuda = o->cuda;
    g->batch_merged = o->batch_merged;
    g->write_png = 0;
}

static const char *lf_bjob_name(const lf_batch_job *j, char *buf, size_t cap) {
    char q[LF_ESC_PART];
    lf_esc(q, sizeof q, j->id, strlen(j->id));
    if (j->line) snprintf(buf, cap, "job '%s' (line %d)", q, j->line);
    else snprintf(buf, cap, "job '%s'", q);
    return buf;
}

static long lf_bkill_env(const char *kind) {
    const char *e = getenv("LORAFUSE_BATCH_KILL_AT");
    size_t n = strlen(kind);
    if (!e || strncmp(e, kind, n) || e[n] != ':') return 0;
    return strtol(e + n + 1, NULL, 10);
}

/* Drop the records of jobs whose parameters changed since they were written (the job file was
 * edited): those images are made again. Records of jobs no longer in the file are kept. */
static void lf_bdrop_changed(lf_brecs *r, const lf_batch_list *l) {
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++) {
        const lf_batch_job *j = NULL;
        for (size_t t = 0; t < l->n && !j; t++)
            if (!strcmp(l->jobs[t].id, r->v[i].job)) j = &l->jobs[t];
        if (j && (strcmp(j->params, r->v[i].params) || (size_t)r->v[i].image >= lf_batch_job_images(j))) {
            free(r->v[i].job), free(r->v[i].line), free(r->v[i].params);
            continue;
        }
        r->v[k++] = r->v[i];
    }
    r->n = k;
}

/* Images of j recorded. */
static size_t lf_bjob_have(const lf_brecs *done, const lf_batch_job *j) {
    size_t ni = lf_batch_job_images(j), have = 0;
    for (size_t i = 0; i < ni; i++) have += (size_t)lf_brecs_has(done, j->id, (int)i);
    return have;
}

static int lf_bjob_done(const lf_brecs *done, const lf_batch_job *j) {
    return lf_bjob_have(done, j) == lf_batch_job_images(j);
}

/* *sess holding j's model: kept, or the old one freed and j's loaded (its time counted as load). */
static lf_status lf_bsession(lf_gen_session **sess, const lf_batch_job *j, const lf_batch_opts *o, lf_brun *r,
                             lf_batch_stats *stats) {
    if (*sess && !strcmp(lf_gen_session_model(*sess), j->model)) return LF_OK;
    lf_gen_session_free(*sess);
    *sess = NULL;
    char q[LF_ESC_PART], name[256];
    double tl = lf_clock_s();
    if (!o->quiet) fprintf(stderr, "lorafuse batch: loading %s\n", lf_esc(q, sizeof q, j->model, strlen(j->model)));
    lf_status st = lf_gen_session_open_prec(j->model, o->backend, o->device, o->dtype, o->vae_dtype, o->cuda, sess);
    if (st != LF_OK) return lf_err_wrap(st, "%s: ", lf_bjob_name(j, name, sizeof name));
    r->load += lf_clock_s() - tl;
    stats->times.load += lf_clock_s() - tl;
    stats->model_loads++;
    return LF_OK;
}

size_t lf_batch_batch_end(const lf_batch_list *l, const size_t *idx, size_t n_idx, size_t k, const lf_batch_opts *o) {
    const lf_batch_job *j = &l->jobs[idx[k]];
    size_t max_batch = o->max_batch > 0 ? (size_t)o->max_batch : LF_BATCH_DEFAULT_MAX_BATCH;
    size_t end = k + 1, imgs = lf_batch_job_images(j);
    if (!(o->batchable || j->batchable)) return end;
    lf_gen_opts a, b;
    lf_bopts(j, o, &a);
    for (; end < n_idx && end - k < LF_BATCH_MAX_BATCH; end++) {
        const lf_batch_job *n2 = &l->jobs[idx[end]];
        size_t ni = lf_batch_job_images(n2);
        lf_bopts(n2, o, &b);
        if (!(o->batchable || n2->batchable) || imgs + ni > max_batch || !lf_gen_groupable(&a, &b, NULL, 0)) break;
        imgs += ni;
    }
    return end;
}

lf_status lf_batch_run(const lf_batch_list *l, const size_t *idx, size_t n_idx, const lf_batch_opts *o,
                       lf_batch_stats *stats) {
    memset(stats, 0, sizeof *stats);
    double t0 = lf_clock_s();
    char q[LF_ESC_PART], name[256];
    lf_status st = lf_bmkdirs(o->output_dir);
    if (st != LF_OK) return st;
    if (access(o->output_dir, W_OK | X_OK) != 0)
        return lf_err(LF_ERR_IO, "%s: the output folder is not writable: %s",
                      lf_esc(q, sizeof q, o->output_dir, strlen(o->output_dir)), strerror(errno));
    lf_sbuf mp = {0};
    if (o->shards > 1) lf_sb_printf(&mp, "%s/manifest-shard-%d-of-%d.jsonl", o->output_dir, o->shard, o->shards);
    else lf_sb_printf(&mp, "%s/manifest.jsonl", o->output_dir);
    if (mp.oom) return lf_err(LF_ERR_NOMEM, "out of memory");
    if (!o->resume && lf_file_exists(mp.s)) {
        st = lf_err(LF_ERR_ARG, "%s exists: add --resume to finish that run, or choose another --output-dir",
                    lf_esc(q, sizeof q, mp.s, strlen(mp.s)));
        lf_sb_free(&mp);
        return st;
    }
    lf_brun r;
    memset(&r, 0, sizeof r);
    r.o = o;
    r.kill_png = lf_bkill_env("png");
    r.kill_record = lf_bkill_env("record");
    /* resume: the records kept (read only; the manifest is rewritten once the checks passed) */
    lf_brecs done = {0};
    r.done = &done;
    if (o->resume && ((st = lf_bread_manifest(o->output_dir, mp.s, 1, &done)) != LF_OK ||
                      (st = lf_bread_others(o->output_dir, mp.s, &done)) != LF_OK)) {
        lf_sb_free(&mp);
        return st;
    }
    lf_bdrop_changed(&done, l);
    /* every job still to run checked before the first image: options, sampler, tags, LoRA files, the
     * model's parts; the jobs of the first model to run are checked on its session (loaded now, once),
     * the others without loading */
    lf_gen_session *sess = NULL;
    const char *first = NULL;
    for (size_t k = 0; k < n_idx && st == LF_OK; k++) {
        const lf_batch_job *j = &l->jobs[idx[k]];
        if (lf_bjob_done(&done, j)) continue;
        if (!first) {
            first = j->model;
            st = lf_bsession(&sess, j, o, &r, stats);
        }
        lf_gen_opts go;
        lf_bopts(j, o, &go);
        lf_gen *g = NULL;
        if (st == LF_OK) st = !strcmp(j->model, first) ? lf_gen_open_in(sess, &go, &g) : lf_gen_open(&go, &g);
        if (st != LF_OK) st = lf_err_wrap(st, "%s: ", lf_bjob_name(j, name, sizeof name));
        lf_gen_free(g);
    }
    if (st == LF_OK && o->resume) st = lf_bwrite_manifest(mp.s, &done);
    int fd = st == LF_OK ? open(mp.s, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666) : -1;
    if (st == LF_OK && fd < 0)
        st = lf_err(LF_ERR_IO, "%s: cannot open the manifest: %s", lf_esc(q, sizeof q, mp.s, strlen(mp.s)),
                    strerror(errno));
    r.fd = fd;
    /* the jobs with images to make, then their batches (lf_batch_batch_end) */
    size_t *todo = malloc((n_idx ? n_idx : 1) * sizeof *todo), n_todo = 0;
    const lf_batch_job **grp = malloc(LF_BATCH_MAX_BATCH * sizeof *grp);
    lf_gen_opts *gos = malloc(LF_BATCH_MAX_BATCH * sizeof *gos);
    if (st == LF_OK && (!todo || !grp || !gos)) st = lf_err(LF_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < n_idx && st == LF_OK; k++) {
        const lf_batch_job *j = &l->jobs[idx[k]];
        size_t ni = lf_batch_job_images(j), have = lf_bjob_have(&done, j);
        if (have == ni) stats->skipped += ni;
        else todo[n_todo++] = idx[k];
    }
    for (size_t k = 0, end; k < n_todo && st == LF_OK; k = end) {
        end = lf_batch_batch_end(l, todo, n_todo, k, o);
        const lf_batch_job *j = &l->jobs[todo[k]];
        size_t ng = end - k, todo_images = 0;
        for (size_t b = 0; b < ng; b++) {
            grp[b] = &l->jobs[todo[k + b]];
            lf_bopts(grp[b], o, &gos[b]);
            todo_images += lf_batch_job_images(grp[b]) - lf_bjob_have(&done, grp[b]);
        }
        for (size_t b = 0; b < ng && st == LF_OK; b++) {
            lf_sbuf dir = {0};
            lf_sb_printf(&dir, "%s/%s", o->output_dir, grp[b]->dir);
            st = dir.oom ? lf_err(LF_ERR_NOMEM, "out of memory") : lf_bmkdirs(dir.s);
            if (st == LF_OK && o->resume) lf_bclean_temps(dir.s);
            lf_sb_free(&dir);
        }
        if (st != LF_OK) break;
        if ((st = lf_bsession(&sess, j, o, &r, stats)) != LF_OK) break;
        if (!o->quiet && ng == 1)
            fprintf(stderr, "lorafuse batch: [%zu/%zu] %s: %zu image(s)\n", end, n_todo, lf_bjob_name(j, name, sizeof name),
                    todo_images);
        else if (!o->quiet)
            fprintf(stderr, "lorafuse batch: [%zu-%zu/%zu] one batch of %zu jobs from %s: %zu image(s)\n", k + 1, end,
                    n_todo, ng, lf_bjob_name(j, name, sizeof name), todo_images);
        lf_gen *g = NULL;
        st = ng == 1 ? lf_gen_open_in(sess, &gos[0], &g) : lf_gen_open_group(sess, gos, ng, &g);
        if (st != LF_OK) {
            st = lf_err_wrap(st, "%s%s: ", lf_bjob_name(j, name, sizeof name), ng > 1 ? " and the jobs batched with it" : "");
            break;
        }
        r.job = j;
        r.batch = grp;
        r.g = g;
        r.t_start = lf_bnow();
        memset(&r.prev, 0, sizeof r.prev);
        st = lf_gen_run(g, lf_bimage_of, &r);
        if (st != LF_OK) st = lf_err_wrap(st, "%s: ", lf_bjob_name(r.job, name, sizeof name));
        const lf_gen_times *t = lf_gen_get_times(g);
        stats->times.encode += t->encode;
        stats->times.weights += t->weights;
        stats->times.unet += t->unet;
        stats->times.decode += t->decode;
        stats->times.te_runs += t->te_runs;
        stats->times.weight_updates += t->weight_updates;
        stats->times.device_updates += t->device_updates;
        stats->times.unet_calls += t->unet_calls;
        stats->jobs += ng;
        stats->batches += ng > 1;
        lf_gen_free(g);
    }
    free(todo);
    free(grp);
    free(gos);
    stats->images = r.written;
    lf_gen_session_free(sess);
    if (st == LF_OK) st = lf_batch_grids(l, idx, n_idx, o->output_dir, &stats->grids);
    if (fd >= 0) close(fd);
    lf_brecs_free(&done);
    lf_sb_free(&mp);
    stats->seconds = lf_clock_s() - t0;
    return st;
}

/* ---- --report --------------------------------------------------------------------------------- */
lf_status lf_batch_report(const char *const *paths, size_t n, char **json) {
    *json = NULL;
    static const char *const tk[] = {"load", "text_encoders", "weights", "unet", "vae", "write", "weight_updates",
                                     "te_runs"};
    double sum[8] = {0}, t_min = INFINITY, t_max = -INFINITY;
    size_t images = 0, dups = 0, bad = 0;
    lf_brecs seen = {0}, jobs = {0};
    lf_status st = LF_OK;
    cJSON *backends = cJSON_CreateArray();
    for (size_t m = 0; m < n && st == LF_OK; m++) {
        char *text = NULL;
        if ((st = lf_read_file(paths[m], "the manifest", (size_t)1 << 31, &text, NULL)) != LF_OK) break;
        for (char *p = text; *p;) {
            char *nl = strchr(p, '\n');
            if (nl) *nl = '\0';
            cJSON *j = cJSON_Parse(p);
            const cJSON *job = cJSON_GetObjectItemCaseSensitive(j, "job");
            const cJSON *img = cJSON_GetObjectItemCaseSensitive(j, "image");
            if (!cJSON_IsString(job) || !cJSON_IsNumber(img)) {
                if (*p) bad++;
            } else if (lf_brecs_has(&seen, job->valuestring, img->valueint)) {
                dups++;
            } else {
                lf_brec b = {lf_strndup(job->valuestring, strlen(job->valuestring)), img->valueint, NULL, NULL, 0};
                if (lf_grow(&seen.v, &seen.cap, seen.n + 1) || !b.job) {
                    free(b.job);
                    st = lf_err(LF_ERR_NOMEM, "out of memory");
                } else seen.v[seen.n++] = b;
                if (st == LF_OK && !lf_brecs_has(&jobs, job->valuestring, 0)) {
                    lf_brec c = {lf_strndup(job->valuestring, strlen(job->valuestring)), 0, NULL, NULL, 0};
                    if (lf_grow(&jobs.v, &jobs.cap, jobs.n + 1) || !c.job) free(c.job);
                    else jobs.v[jobs.n++] = c;
                }
                images++;
                const cJSON *tm = cJSON_GetObjectItemCaseSensitive(j, "times");
                for (int k = 0; k < 8; k++) {
                    const cJSON *v = cJSON_GetObjectItemCaseSensitive(tm, tk[k]);
                    if (cJSON_IsNumber(v)) sum[k] += v->valuedouble;
                }
                const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "t_start");
                const cJSON *b2 = cJSON_GetObjectItemCaseSensitive(j, "t_end");
                if (cJSON_IsNumber(a) && a->valuedouble < t_min) t_min = a->valuedouble;
                if (cJSON_IsNumber(b2) && b2->valuedouble > t_max) t_max = b2->valuedouble;
                const cJSON *be = cJSON_GetObjectItemCaseSensitive(j, "backend");
                int known = 0;
                for (const cJSON *x = backends ? backends->child : NULL; x; x = x->next)
                    known |= cJSON_IsString(be) && !strcmp(x->valuestring, be->valuestring);
                if (cJSON_IsString(be) && !known) cJSON_AddItemToArray(backends, cJSON_CreateString(be->valuestring));
            }
            cJSON_Delete(j);
            if (!nl) break;
            p = nl + 1;
        }
        free(text);
    }
    if (st == LF_OK) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "manifests", (double)n);
        cJSON_AddNumberToObject(o, "images", (double)images);
        cJSON_AddNumberToObject(o, "jobs", (double)jobs.n);
        cJSON_AddNumberToObject(o, "duplicates", (double)dups);
        cJSON_AddNumberToObject(o, "unreadable_lines", (double)bad);
        cJSON *tm = cJSON_AddObjectToObject(o, "times");
        double busy = 0;
        for (int k = 0; k < 8; k++) {
            cJSON_AddNumberToObject(tm, tk[k], sum[k]);
            if (k < 6) busy += sum[k];
        }
        cJSON_AddNumberToObject(o, "busy_seconds", busy);
        double wall = images && t_max > t_min ? t_max - t_min : 0;
        cJSON_AddNumberToObject(o, "wall_seconds", wall);
        cJSON_AddNumberToObject(o, "images_per_hour_busy", busy > 0 ? images * 3600.0 / busy : 0);
        cJSON_AddNumberToObject(o, "images_per_hour_wall", wall > 0 ? images * 3600.0 / wall : 0);
        cJSON_AddItemToObject(o, "backends", backends);
        backends = NULL;
        *json = cJSON_Print(o);
        cJSON_Delete(o);
        if (!*json) st = lf_err(LF_ERR_NOMEM, "out of memory");
    }
    cJSON_Delete(backends);
    lf_brecs_free(&seen);
    lf_brecs_free(&jobs);
    return st;
}
