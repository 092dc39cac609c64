/* bench_extract.c: time `lorafuse extract` (lf_extract.h) on full-size SD1.5 and SDXL shapes.
 *
 * Cases (the benchmark):
 *   sd15_3xr32_to_r64  three rank-32 kohya LoRAs (every Linear / 1x1 conv of the U-Net's transformers and
 *                      every text-encoder layer: 192 + 72 modules) into one rank-64 LoRA
 *   sdxl_r64_to_r16    one rank-64 kohya LoRA on the U-Net's 722 transformer modules resized to rank 16
 * each run with --svd auto, randomized and exact (unless --svd picks some).
 * Files: the models are every weight of tests/data/{sd15,sdxl}_modules.tsv (real checkpoint keys and
 * shapes; SD1.5 also its text encoder from te_modules.tsv; SDXL only the modules the LoRA covers, which
 * is enough: its kohya names are SGM paths and its family comes from the attn2 width), random f16,
 * written once to --dir (default /tmp/lf-bench-extract: 2.0 GB for SD1.5, 4.4 GB for SDXL) and reused;
 * the adapters are kohya files with f16 factors, U[-1, 1) / 8 (so that dW is of the size of a real
 * one). Equal-sized tensors share one random buffer at different offsets: the contents only need to
 * be random, not distinct.
 * Output: one JSON line per run (stdout): read_s (open + plan), layers_s (wall of the parallel dW + SVD),
 * delta_s / svd_s (their thread-seconds; delta_wall_s / svd_wall_s split layers_s in that ratio),
 * write_s, total_s, the relative residual ||dW - up.down||_F / ||dW||_F over all modules, the modules
 * on each SVD path.
 * Usage: lf_bench_extract [--dir DIR] [--cases sd15,sdxl] [--svd auto,randomized,exact] [--threads N]
 *                         [--data DIR]
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "host/base/util.h"
#include "lorafuse/lf_extract.h"
#include "lorafuse/lf_safetensors.h"
#include "tests/common/lf_test_rng.h"

#ifndef LF_SOURCE_DIR
#define LF_SOURCE_DIR "."
#endif

typedef struct row {
    char kohya[160], key[200];
    int ndim;
    int64_t shape[4];
} row;

typedef struct rows {
    row *v;
    size_t n, cap;
} rows;

static void die(const char *what) {
    fprintf(stderr, "bench_extract: %s\n", what);
    exit(1);
}

/* Rows of a module table whose kohya name starts with `only` (NULL: all); sliced rows are skipped. */
static void read_rows(const char *dir, const char *file, const char *only, rows *out) {
    char path[1024], line[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    if (!f) die("cannot open a module table (use --data DIR)");
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        line[strcspn(line, "\r\n")] = '\0';
        char *save = NULL, *k = strtok_r(line, "\t", &save), *key = strtok_r(NULL, "\t", &save),
             *sl = strtok_r(NULL, "\t", &save), *shape = strtok_r(NULL, "\t", &save);
        if (!k || !key || !sl || !shape || strcmp(sl, "-") != 0 || (only && !lf_has_prefix(k, only))) continue;
        if (lf_grow(&out->v, &out->cap, out->n + 1)) die("out of memory");
        row *r = &out->v[out->n++];
        memset(r, 0, sizeof *r);
        snprintf(r->kohya, sizeof r->kohya, "%s", k);
        snprintf(r->key, sizeof r->key, "%s", key);
        for (char *s = shape; *s && r->ndim < 4;) {
            r->shape[r->ndim++] = strtoll(s, &s, 10);
            if (*s != ',') break;
            s++;
        }
    }
    fclose(f);
}

static int64_t numel(const row *r) {
    int64_t n = 1;
    for (int d = 0; d < r->ndim; d++) n *= r->shape[d];
    return n;
}

/* kohya's default LoRA targets: the Linear / 1x1 conv layers of the transformers (and the TE). */
static int kohya_target(const row *r) {
    int lin = r->ndim == 2 || (r->shape[2] == 1 && r->shape[3] == 1);
    return lin && (lf_has_prefix(r->kohya, "lora_te") || strstr(r->key, ".transformer_blocks.") ||
                   strstr(r->key, ".proj_in.") || strstr(r->key, ".proj_out."));
}

static int file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && sb.st_size > 0;
}

/* n random f16 values, U[-1, 1) * scale. */
static uint16_t *random_f16(size_t n, float scale, uint64_t seed) {
    float *f = malloc(n * sizeof *f);
    uint16_t *h = malloc(n * sizeof *h);
    if (!f || !h) die("out of memory");
    lf_test_rng r;
    lf_test_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) f[i] = scale * lf_test_rng_signed(&r);
    if (lf_f32_to_dtype(f, (int64_t)n, LF_F16, h) != LF_OK) die(lf_last_error());
    free(f);
    return h;
}

static void write_model(const rows *t, const char *path) {
    int64_t big = 0;
    for (size_t i = 0; i < t->n; i++) big = numel(&t->v[i]) > big ? numel(&t->v[i]) : big;
    uint16_t *pool = random_f16((size_t)big, 0.02f, 1);
    lf_st_writer *w = NULL;
    lf_status st = lf_st_writer_new(&w);
    for (size_t i = 0; i < t->n && st == LF_OK; i++)
        if (!i || strcmp(t->v[i].key, t->v[i - 1].key) != 0)
            st = lf_st_writer_add(w, t->v[i].key, LF_F16, t->v[i].ndim, t->v[i].shape, pool, (size_t)numel(&t->v[i]) * 2);
    if (st == LF_OK) st = lf_st_writer_commit(w, path);
    lf_st_writer_free(w);
    free(pool);
    if (st != LF_OK) die(lf_last_error());
}

/* A kohya LoRA of rank r over the kohya targets of t; `which` shifts the factors' window in the pool. */
static void write_lora(const rows *t, int r, int which, const char *version, const char *path) {
    int64_t big = 0; /* the largest r * (in + out) */
    for (size_t i = 0; i < t->n; i++) {
        int64_t f = r * (numel(&t->v[i]) / t->v[i].shape[0] + t->v[i].shape[0]);
        big = f > big ? f : big;
    }
    size_t pool_n = (size_t)big + 1000000; /* room to shift each module's window */
    uint16_t *pool = random_f16(pool_n, 0.125f, 100 + (uint64_t)which);
    uint16_t alpha[1];
    float a = (float)r;
    lf_f32_to_dtype(&a, 1, LF_F16, alpha);
    lf_st_writer *w = NULL;
    lf_status st = lf_st_writer_new(&w);
    char meta[32], name[256];
    if (st == LF_OK) st = lf_st_writer_meta(w, "ss_base_model_version", version);
    snprintf(meta, sizeof meta, "%d", r);
    if (st == LF_OK) st = lf_st_writer_meta(w, "ss_network_dim", meta);
    size_t k = 0;
    for (size_t i = 0; i < t->n && st == LF_OK; i++) {
        const row *x = &t->v[i];
        if (!kohya_target(x)) continue;
        int64_t K = numel(x) / x->shape[0];
        int64_t ds[4] = {r, x->shape[1], 1, 1}, us[4] = {x->shape[0], r, 1, 1};
        size_t off = (k++ * 7919u + (size_t)which * 104729u) % 1000000u;
        snprintf(name, sizeof name, "%s.alpha", x->kohya);
        st = lf_st_writer_add(w, name, LF_F16, 0, ds, alpha, 2);
        snprintf(name, sizeof name, "%s.lora_down.weight", x->kohya);
        if (st == LF_OK) st = lf_st_writer_add(w, name, LF_F16, x->ndim, ds, pool + off, (size_t)(r * K) * 2);
        snprintf(name, sizeof name, "%s.lora_up.weight", x->kohya);
        if (st == LF_OK) st = lf_st_writer_add(w, name, LF_F16, x->ndim, us, pool + off + (size_t)(r * K),
                                               (size_t)(x->shape[0] * r) * 2);
    }
    if (st == LF_OK) st = lf_st_writer_commit(w, path);
    lf_st_writer_free(w);
    free(pool);
    if (st != LF_OK) die(lf_last_error());
}

static int listed(const char *list, const char *what) {
    if (!list) return 1;
    size_t n = strlen(what);
    for (const char *p = list; (p = strstr(p, what)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return 1;
    return 0;
}

static void run_case(const char *name, const char *model, const lf_merge_input *in, size_t n, int rank,
                     const char *svds, int threads, const char *dir) {
    static const struct {
        const char *name;
        lf_svd_method m;
    } methods[] = {{"auto", LF_SVD_AUTO}, {"randomized", LF_SVD_RANDOMIZED}, {"exact", LF_SVD_EXACT}};
    for (size_t k = 0; k < 3; k++) {
        if (!listed(svds, methods[k].name)) continue;
        lf_extract_opts o;
        memset(&o, 0, sizeof o);
        o.rank = rank;
        o.dtype = LF_F16;
        o.svd = methods[k].m;
        o.threads = threads;
        char out[1024];
        snprintf(out, sizeof out, "%s/%s-%s.safetensors", dir, name, methods[k].name);
        lf_extract_report r;
        double t0 = lf_clock_s();
        lf_status st = lf_extract(model, in, n, NULL, out, &o, &r);
        double total = lf_clock_s() - t0;
        if (st != LF_OK) {
            fprintf(stderr, "bench_extract: %s %s: %s\n", name, methods[k].name, lf_last_error());
            lf_extract_report_free(&r);
            exit(1);
        }
        size_t nrand = 0;
        double worst = 0;
        for (size_t i = 0; i < r.n_layers; i++) {
            nrand += (size_t)r.layers[i].randomized;
            worst = fmax(worst, r.layers[i].residual / r.layers[i].norm);
        }
        double cpu = r.t_delta + r.t_svd;
        printf("{\"bench\": \"extract\", \"case\": \"%s\", \"svd\": \"%s\", \"rank\": %d, \"modules\": %zu, "
               "\"randomized_modules\": %zu, \"threads\": %d, \"read_s\": %.3f, \"layers_s\": %.3f, "
               "\"delta_s\": %.3f, \"svd_s\": %.3f, \"delta_wall_s\": %.3f, \"svd_wall_s\": %.3f, \"write_s\": %.3f, "
               "\"total_s\": %.3f, \"rel_residual\": %.6f, \"worst_module_rel_residual\": %.6f, \"bytes\": %zu}\n",
               name, methods[k].name, rank, r.n_layers, nrand, r.threads, r.t_read, r.t_layers, r.t_delta, r.t_svd,
               cpu > 0 ? r.t_layers * r.t_delta / cpu : 0.0, cpu > 0 ? r.t_layers * r.t_svd / cpu : 0.0, r.t_write,
               total, r.norm > 0 ? r.residual / r.norm : 0.0, worst, r.bytes_out);
        fflush(stdout);
        lf_extract_report_free(&r);
        remove(out);
    }
}

int main(int argc, char **argv) {
    const char *dir = "/tmp/lf-bench-extract", *cases = NULL, *svds = NULL, *data = "tests/data";
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--dir") && v) dir = argv[++i];
        else if (!strcmp(a, "--cases") && v) cases = argv[++i];
        else if (!strcmp(a, "--svd") && v) svds = argv[++i];
        else if (!strcmp(a, "--threads") && v) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--data") && v) data = argv[++i];
        else {
            fprintf(stderr, "usage: lf_bench_extract [--dir DIR] [--cases sd15,sdxl] [--svd auto,randomized,exact] "
                            "[--threads N] [--data DIR]\n");
            return 2;
        }
    }
    char probe[1024];
    snprintf(probe, sizeof probe, "%s/sd15_modules.tsv", data);
    if (!file_exists(probe)) data = LF_SOURCE_DIR "/tests/data";
    mkdir(dir, 0755);
    char model[1024], lora[3][1024];
    if (listed(cases, "sd15")) {
        rows t = {0};
        read_rows(data, "sd15_modules.tsv", NULL, &t);
        read_rows(data, "te_modules.tsv", "lora_te_", &t);
        snprintf(model, sizeof model, "%s/sd15-model.safetensors", dir);
        if (!file_exists(model)) write_model(&t, model);
        lf_merge_input in[3];
        for (int k = 0; k < 3; k++) {
            snprintf(lora[k], sizeof lora[k], "%s/sd15-lora%d-r32.safetensors", dir, k);
            if (!file_exists(lora[k])) write_lora(&t, 32, k, "sd_v1", lora[k]);
            in[k].path = lora[k];
            in[k].strength = 1.0f;
            in[k].dyn_rank = 0;
        }
        run_case("sd15_3xr32_to_r64", model, in, 3, 64, svds, threads, dir);
        free(t.v);
    }
    if (listed(cases, "sdxl")) {
        rows all = {0}, t = {0};
        read_rows(data, "sdxl_modules.tsv", NULL, &all);
        for (size_t i = 0; i < all.n; i++)
            if (kohya_target(&all.v[i])) {
                if (lf_grow(&t.v, &t.cap, t.n + 1)) die("out of memory");
                t.v[t.n++] = all.v[i];
            }
        snprintf(model, sizeof model, "%s/sdxl-model.safetensors", dir);
        if (!file_exists(model)) write_model(&t, model);
        snprintf(lora[0], sizeof lora[0], "%s/sdxl-lora-r64.safetensors", dir);
        if (!file_exists(lora[0])) write_lora(&t, 64, 0, "sdxl_base_v1-0", lora[0]);
        lf_merge_input in = {lora[0], 1.0f, 0};
        run_case("sdxl_r64_to_r16", model, &in, 1, 16, svds, threads, dir);
        free(all.v);
        free(t.v);
    }
    return 0;
}
