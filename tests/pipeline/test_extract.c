/* test_extract.c: `lorafuse extract` (lf_extract.h) against the fixtures of scripts/golden/extract.py.
 *
 * tests/data/extract/: a four-module model (Linear, 1x1 conv, 3x3 conv, text-encoder Linear), adapters
 * of every kind (LoRA rank 8 and 4, LoHa, LoKr, DoRA, OFT, a three-adapter mix) and a fine-tune, each
 * with the reference dW of every module, numpy's singular values, the best rank-R residuals and the
 * ranks kohya's resize_lora.py policies pick. Checked, for every case:
 * - rank 4, exact SVD, F32 output: ||dW_ref - up . down||_F equals numpy's optimum within 1e-4 relative
 *   (a LoRA of rank <= R: relative error <= 1e-5, also at R = 8); dW itself (the report's norm) matches
 *   the reference; alpha = rank; kohya names and LoCon shapes;
 * - every dynamic policy (sv_ratio, sv_fro, sv_cumulative, with caps) picks kohya's rank per module;
 * - the randomized SVD's residual is within 1 % of the optimum (the defaults: max(rank, 10) extra columns,
 *   3 power iterations);
 * - `merge` of the extracted LoRA equals `merge` of the originals (or the tuned checkpoint) within the
 *   residual the report gives;
 * and: F16/BF16 output, the clamp quantile (kohya's formula), --unet-only, identical bytes from 1 and 2
 * threads, the fused TE2 q/k/v slices of the tiny SDXL model (names and round trip), a rank above one
 * module's size (that module kept whole), and the refusals (rank <= 0 or above every module's size,
 * adapters of two families, a tuned checkpoint of another shape or without a weight, an output equal
 * to an input, nothing to write, bad combinations), none of which writes a file.
 * Run: ctest -R test_extract --output-on-failure
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cJSON.h>

#include "lf_test.h"
#include "lf_test_data.h"
#include "lorafuse/lf_extract.h"
#include "lorafuse/lf_merge.h"
#include "lorafuse/lf_safetensors.h"
#include "host/base/util.h"
#include "kernels/cpu/linalg/lf_svd.h"

#define DATA "tests/data/extract/"
#define BASE DATA "base.safetensors"

static char g_dir[256];
static double g_worst_exact, g_worst_rand, g_worst_trip; /* printed at the end */

typedef struct xcase {
    const char *name;
    lf_st_file *exp;
    cJSON *meta;
    lf_merge_input in[4];
    size_t n_in;
    const char *tuned;
} xcase;

static const char *const CASES[] = {"lora_r8", "lora_r4", "loha", "lokr", "dora", "oft", "mix", "tuned"};
#define NCASES (sizeof CASES / sizeof CASES[0])
static xcase g_cases[NCASES];
static char g_paths[NCASES][4][256];

static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static void load_case(xcase *c, size_t ci) {
    memset(c, 0, sizeof *c);
    c->name = CASES[ci];
    char p[256];
    snprintf(p, sizeof p, DATA "%s.expect.safetensors", c->name);
    if (lf_st_open(p, &c->exp) != LF_OK) {
        fprintf(stderr, "fixture %s: %s (run scripts/make_golden.py --only extract)\n", p, lf_last_error());
        exit(1);
    }
    c->meta = cJSON_Parse(lf_st_meta(c->exp, "extract"));
    if (!c->meta) exit(1);
    cJSON *ins = cJSON_GetObjectItem(c->meta, "inputs"), *x;
    cJSON_ArrayForEach(x, ins) {
        snprintf(g_paths[ci][c->n_in], sizeof g_paths[ci][c->n_in], DATA "%s", cJSON_GetArrayItem(x, 0)->valuestring);
        c->in[c->n_in].path = g_paths[ci][c->n_in];
        c->in[c->n_in].strength = (float)cJSON_GetArrayItem(x, 1)->valuedouble;
        c->n_in++;
    }
    cJSON *t = cJSON_GetObjectItem(c->meta, "tuned");
    if (t) c->tuned = DATA "tuned.safetensors";
}

static lf_extract_opts opts_rank(int rank) {
    lf_extract_opts o;
    memset(&o, 0, sizeof o);
    o.rank = rank;
    o.dtype = LF_F32;
    o.svd = LF_SVD_EXACT;
    return o;
}

static lf_status run(const xcase *c, const lf_extract_opts *o, const char *out, lf_extract_report *r) {
    return lf_extract(BASE, c->n_in ? c->in : NULL, c->n_in, c->tuned, out, o, r);
}

static const lf_extract_layer *find_layer(const lf_extract_report *r, const char *name) {
    for (size_t i = 0; i < r->n_layers; i++)
        if (!strcmp(r->layers[i].name, name)) return &r->layers[i];
    return NULL;
}

/* up . down of module `name` in an output file, as f32 (rows, K); NULL when absent. */
static float *product(const lf_st_file *f, const char *name, int64_t *rows, int64_t *K, int *rank, float *alpha) {
    char a[300], d[300], u[300];
    snprintf(a, sizeof a, "%s.alpha", name);
    snprintf(d, sizeof d, "%s.lora_down.weight", name);
    snprintf(u, sizeof u, "%s.lora_up.weight", name);
    if (!lf_st_find(f, d) || !lf_st_find(f, u) || !lf_st_find(f, a)) return NULL;
    int64_t nd, nu;
    float *down = lf_test_tensor_f32(f, d, &nd), *up = lf_test_tensor_f32(f, u, &nu), *al = lf_test_tensor_f32(f, a, NULL);
    int r = (int)lf_st_find(f, d)->shape[0];
    *rank = r;
    *alpha = al[0];
    *rows = nu / r;
    *K = nd / r;
    float *p = calloc((size_t)(*rows * *K), sizeof *p);
    for (int64_t i = 0; i < *rows; i++)
        for (int64_t c = 0; c < *K; c++) {
            double s = 0;
            for (int j = 0; j < r; j++) s += (double)up[i * r + j] * down[j * *K + c];
            p[i * *K + c] = (float)s;
        }
    free(down);
    free(up);
    free(al);
    return p;
}

static double fro_diff(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return sqrt(s);
}

static double fro(const float *a, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * a[i];
    return sqrt(s);
}

/* ---- rank R against numpy's optimum --------------------------------------------------------------- */

static void check_fixed(const xcase *c, int R, lf_svd_method svd, double tol) {
    char out[512];
    snprintf(out, sizeof out, "%s/%s_r%d_%d.safetensors", g_dir, c->name, R, (int)svd);
    lf_extract_opts o = opts_rank(R);
    o.svd = svd;
    lf_extract_report r;
    lf_status st = run(c, &o, out, &r);
    LF_CHECK(st == LF_OK, "%s rank %d: %s", c->name, R, lf_last_error());
    lf_st_file *f = NULL;
    if (st != LF_OK || lf_st_open(out, &f) != LF_OK) {
        lf_extract_report_free(&r);
        return;
    }
    cJSON *mods = cJSON_GetObjectItem(c->meta, "modules"), *m;
    size_t n = 0;
    char key[16];
    snprintf(key, sizeof key, "%d", R);
    cJSON_ArrayForEach(m, mods) {
        const char *name = m->string;
        char dn[300];
        snprintf(dn, sizeof dn, "dw.%s", name);
        int64_t ndw, rows, K;
        float *dw = lf_test_tensor_f32(c->exp, dn, &ndw);
        int rank = 0;
        float alpha = 0;
        float *p = product(f, name, &rows, &K, &rank, &alpha);
        LF_CHECK(p != NULL, "%s: module %s missing from the output", c->name, name);
        if (p) {
            n++;
            double res = fro_diff(dw, p, ndw), norm = fro(dw, ndw);
            cJSON *opt = cJSON_GetObjectItem(cJSON_GetObjectItem(m, "opt"), key);
            double best = opt ? opt->valuedouble : -1;
            const char *how = svd == LF_SVD_RANDOMIZED ? "randomized" : "exact";
            if (best > 1e-6 * norm) {
                if (svd == LF_SVD_RANDOMIZED) g_worst_rand = fmax(g_worst_rand, res / best - 1);
                else g_worst_exact = fmax(g_worst_exact, fabs(res - best) / best);
                if (svd == LF_SVD_RANDOMIZED)
                    LF_CHECK(res <= (1 + tol) * best && res >= (1 - 1e-4) * best, "%s %s rank %d %s: residual %.8g, optimum %.8g",
                             c->name, name, R, how, res, best);
                else
                    LF_CHECK(fabs(res - best) <= tol * best, "%s %s rank %d %s: residual %.8g, optimum %.8g (%.2e)",
                             c->name, name, R, how, res, best, fabs(res - best) / best);
            } else {
                g_worst_trip = fmax(g_worst_trip, res / norm);
                LF_CHECK(res <= 1e-5 * norm, "%s %s rank %d: a rank-%d dW round-trips with %.3e relative error",
                         c->name, name, R, R, res / norm);
            }
            LF_CHECK(rank == R && alpha == (float)R, "%s %s: rank %d alpha %g, want %d", c->name, name, rank, alpha, R);
            const lf_extract_layer *l = find_layer(&r, name);
            LF_CHECK(l && fabs(l->norm - norm) <= 1e-5 * norm, "%s %s: ||dW|| %.8g, reference %.8g", c->name, name,
                     l ? l->norm : -1.0, norm);
            LF_CHECK(l && fabs(l->residual - res) <= 1e-4 * norm, "%s %s: reported residual %.8g, measured %.8g",
                     c->name, name, l ? l->residual : -1.0, res);
            LF_CHECK(l && l->randomized == (svd == LF_SVD_RANDOMIZED), "%s %s: svd path", c->name, name);
        }
        free(p);
        free(dw);
    }
    LF_CHECK(n == 4 && r.n_layers == 4, "%s: %zu modules checked, %zu written", c->name, n, r.n_layers);
    LF_CHECK(r.n_skipped == (c->tuned ? 2u : 0u), "%s: %zu not representable (%s)", c->name, r.n_skipped,
             r.skipped_first);
    /* LoCon layout: conv down (r, I, kh, kw), up (O, r, 1, 1) */
    const lf_st_tensor *d = lf_st_find(f, "lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight"),
                       *u = lf_st_find(f, "lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight");
    LF_CHECK(d && u && d->ndim == 4 && d->shape[0] == R && d->shape[1] == 16 && d->shape[2] == 3 && d->shape[3] == 3 &&
                 u->ndim == 4 && u->shape[0] == 24 && u->shape[1] == R && u->shape[2] == 1 && u->shape[3] == 1,
             "%s: the 3x3 conv factors have the wrong shapes", c->name);
    d = lf_st_find(f, "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight");
    LF_CHECK(d && d->ndim == 4 && d->shape[2] == 1, "%s: 1x1 conv down must be 4-D", c->name);
    d = lf_st_find(f, "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight");
    LF_CHECK(d && d->ndim == 2 && d->dtype == LF_F32, "%s: the TE Linear down must be 2-D F32", c->name);
    LF_CHECK(lf_st_meta(f, "ss_network_module") && !strcmp(lf_st_meta(f, "ss_network_module"), "networks.lora") &&
                 lf_st_meta(f, "ss_base_model_version") && !strcmp(lf_st_meta(f, "ss_base_model_version"), "sd_v1") &&
                 lf_st_meta(f, "lorafuse.extract"),
             "%s: metadata", c->name);
    lf_st_close(f);
    lf_extract_report_free(&r);
}

/* ---- kohya's dynamic policies ----------------------------------------------------------------------- */

static void check_policies(const xcase *c) {
    static const struct {
        const char *name;
        lf_rank_policy p;
    } names[] = {{"sv_ratio", LF_RANK_SV_RATIO}, {"sv_fro", LF_RANK_SV_FRO}, {"sv_cumulative", LF_RANK_SV_CUMULATIVE}};
    cJSON *pol = cJSON_GetObjectItem(c->meta, "policies"), *x;
    int k = 0;
    cJSON_ArrayForEach(x, pol) {
        const char *pn = cJSON_GetObjectItem(x, "policy")->valuestring;
        lf_extract_opts o = opts_rank(cJSON_GetObjectItem(x, "cap")->valueint);
        for (size_t i = 0; i < 3; i++)
            if (!strcmp(pn, names[i].name)) o.policy = names[i].p;
        o.param = cJSON_GetObjectItem(x, "param")->valuedouble;
        char out[512];
        snprintf(out, sizeof out, "%s/%s_policy%d.safetensors", g_dir, c->name, k++);
        lf_extract_report r;
        lf_status st = run(c, &o, out, &r);
        LF_CHECK(st == LF_OK, "%s %s %g: %s", c->name, pn, o.param, lf_last_error());
        cJSON *ranks = cJSON_GetObjectItem(x, "ranks"), *m;
        cJSON_ArrayForEach(m, ranks) {
            const lf_extract_layer *l = find_layer(&r, m->string);
            LF_CHECK(l && l->rank == m->valueint, "%s %s %g cap %d: %s rank %d, kohya picks %d", c->name, pn, o.param,
                     o.rank, m->string, l ? l->rank : -1, m->valueint);
        }
        lf_st_file *f = NULL;
        if (st == LF_OK && lf_st_open(out, &f) == LF_OK) {
            LF_CHECK(lf_st_meta(f, "ss_network_dim") && !strcmp(lf_st_meta(f, "ss_network_dim"), "Dynamic"),
                     "%s: a dynamic policy writes ss_network_dim Dynamic", c->name);
            lf_st_close(f);
        }
        lf_extract_report_free(&r);
        remove(out);
    }
}

/* ---- merge of the extracted LoRA against merge of the originals -------------------------------------- */

static float *weight(const char *file, const char *key, int64_t *n) {
    lf_st_file *f = NULL;
    if (lf_st_open(file, &f) != LF_OK) return NULL;
    float *w = lf_test_tensor_f32(f, key, n);
    lf_st_close(f);
    return w;
}

static void check_merge(const xcase *c) {
    char lora[512], m1[512], m2[512];
    snprintf(lora, sizeof lora, "%s/%s_m.safetensors", g_dir, c->name);
    snprintf(m1, sizeof m1, "%s/%s_m1.safetensors", g_dir, c->name);
    snprintf(m2, sizeof m2, "%s/%s_m2.safetensors", g_dir, c->name);
    lf_extract_opts o = opts_rank(4);
    lf_extract_report r;
    lf_status st = run(c, &o, lora, &r);
    LF_CHECK(st == LF_OK, "%s: %s", c->name, lf_last_error());
    lf_merge_input ex = {lora, 1.0f, 0};
    const char *want = c->tuned ? c->tuned : m1;
    if (st == LF_OK && !c->tuned) st = lf_merge(BASE, c->in, c->n_in, m1, NULL, NULL);
    if (st == LF_OK) st = lf_merge(BASE, &ex, 1, m2, NULL, NULL);
    LF_CHECK(st == LF_OK, "%s merge: %s", c->name, lf_last_error());
    for (size_t i = 0; st == LF_OK && i < r.n_layers; i++) {
        const lf_extract_layer *l = &r.layers[i];
        int64_t n1 = 0, n2 = 0;
        float *w1 = weight(want, l->key, &n1), *w2 = weight(m2, l->key, &n2);
        double d = w1 && w2 && n1 == n2 ? fro_diff(w1, w2, n1) : INFINITY;
        LF_CHECK(d <= l->residual * (1 + 1e-4) + 1e-6 * l->norm,
                 "%s %s: merge(extracted) - merge(originals) = %.8g, reported residual %.8g", c->name, l->name, d,
                 l->residual);
        free(w1);
        free(w2);
    }
    lf_extract_report_free(&r);
    remove(lora);
    remove(m1);
    remove(m2);
}

/* ---- options -------------------------------------------------------------------------------------- */

static void check_dtypes_and_threads(const xcase *c) {
    static const lf_dtype dts[] = {LF_F16, LF_BF16};
    for (size_t i = 0; i < 2; i++) {
        char out[512];
        snprintf(out, sizeof out, "%s/%s_dt%zu.safetensors", g_dir, c->name, i);
        lf_extract_opts o = opts_rank(4);
        o.dtype = dts[i];
        lf_extract_report r;
        LF_CHECK(run(c, &o, out, &r) == LF_OK, "%s: %s", c->name, lf_last_error());
        lf_st_file *f = NULL;
        if (lf_st_open(out, &f) == LF_OK) {
            for (size_t t = 0; t < lf_st_count(f); t++)
                LF_CHECK(lf_st_at(f, t)->dtype == dts[i], "%s: %s is %s", c->name, lf_st_at(f, t)->name,
                         lf_dtype_name(lf_st_at(f, t)->dtype));
            lf_st_close(f);
        }
        /* rounding the factors costs at most a few units of the dtype's precision of ||dW|| */
        double eps = dts[i] == LF_F16 ? 1e-3 : 8e-3;
        for (size_t k = 0; k < r.n_layers; k++)
            LF_CHECK(r.layers[k].residual <= r.layers[k].norm * sqrt(1 - r.layers[k].kept * r.layers[k].kept) +
                                                 eps * r.layers[k].norm,
                     "%s %s %s: residual %g", c->name, lf_dtype_name(dts[i]), r.layers[k].name, r.layers[k].residual);
        lf_extract_report_free(&r);
        remove(out);
    }
    /* the same bytes from 1 and 2 threads, and from the auto path */
    char a[512], b[512], sub[512];
    snprintf(sub, sizeof sub, "%s/t1", g_dir);
    mkdir(sub, 0700);
    snprintf(sub, sizeof sub, "%s/t2", g_dir);
    mkdir(sub, 0700);
    /* the same file name: the title metadata is the output's name */
    snprintf(a, sizeof a, "%s/t1/%s.safetensors", g_dir, c->name);
    snprintf(b, sizeof b, "%s/t2/%s.safetensors", g_dir, c->name);
    lf_extract_opts o = opts_rank(4);
    o.threads = 1;
    LF_CHECK(run(c, &o, a, NULL) == LF_OK, "%s", lf_last_error());
    o.threads = 2;
    LF_CHECK(run(c, &o, b, NULL) == LF_OK, "%s", lf_last_error());
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    LF_CHECK(lf_read_file(a, NULL, 1 << 24, &x, &nx) == LF_OK && lf_read_file(b, NULL, 1 << 24, &y, &ny) == LF_OK &&
                 nx == ny && memcmp(x, y, nx) == 0,
             "%s: 1 and 2 threads give different files", c->name);
    free(x);
    free(y);
    remove(a);
    remove(b);
}

static void check_clamp(const xcase *c) {
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/clamp_off.safetensors", g_dir);
    snprintf(b, sizeof b, "%s/clamp_on.safetensors", g_dir);
    lf_extract_opts o = opts_rank(4);
    LF_CHECK(run(c, &o, a, NULL) == LF_OK, "%s", lf_last_error());
    o.clamp_quantile = 0.9;
    LF_CHECK(run(c, &o, b, NULL) == LF_OK, "%s", lf_last_error());
    lf_st_file *fa = NULL, *fb = NULL;
    if (lf_st_open(a, &fa) != LF_OK || lf_st_open(b, &fb) != LF_OK) {
        LF_CHECK(0, "clamp outputs");
        lf_st_close(fa);
        return;
    }
    const char *name = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_ff_net_2";
    char d[300], u[300];
    snprintf(d, sizeof d, "%s.lora_down.weight", name);
    snprintf(u, sizeof u, "%s.lora_up.weight", name);
    int64_t nd, nu;
    float *d0 = lf_test_tensor_f32(fa, d, &nd), *u0 = lf_test_tensor_f32(fa, u, &nu);
    float *d1 = lf_test_tensor_f32(fb, d, NULL), *u1 = lf_test_tensor_f32(fb, u, NULL);
    /* torch.quantile(cat(up, down), 0.9): linear interpolation between order statistics */
    int64_t n = nd + nu;
    float *v = malloc((size_t)n * sizeof *v);
    memcpy(v, u0, (size_t)nu * sizeof *v);
    memcpy(v + nu, d0, (size_t)nd * sizeof *v);
    for (int64_t i = 1; i < n; i++)
        for (int64_t j = i; j > 0 && v[j] < v[j - 1]; j--) {
            float t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    double pos = 0.9 * (double)(n - 1);
    int64_t lo = (int64_t)pos;
    float h = (float)((double)v[lo] + ((double)v[lo + 1] - v[lo]) * (pos - (double)lo));
    int ok = 1, clamped = 0;
    for (int64_t i = 0; i < nu; i++) {
        float want = u0[i] > h ? h : u0[i] < -h ? -h : u0[i];
        ok &= u1[i] == want;
        clamped += want != u0[i];
    }
    for (int64_t i = 0; i < nd; i++) {
        float want = d0[i] > h ? h : d0[i] < -h ? -h : d0[i];
        ok &= d1[i] == want;
        clamped += want != d0[i];
    }
    LF_CHECK(ok && clamped > 0, "clamp 0.9: factors differ from kohya's clamp (h %g, %d clamped)", h, clamped);
    free(v);
    free(d0);
    free(u0);
    free(d1);
    free(u1);
    lf_st_close(fa);
    lf_st_close(fb);
    remove(a);
    remove(b);
}

static void check_unet_only(const xcase *c) {
    char out[512];
    snprintf(out, sizeof out, "%s/unet_only.safetensors", g_dir);
    lf_extract_opts o = opts_rank(4);
    o.unet_only = 1;
    lf_extract_report r;
    LF_CHECK(run(c, &o, out, &r) == LF_OK, "%s", lf_last_error());
    LF_CHECK(r.n_layers == 3 && !find_layer(&r, "lora_te_text_model_encoder_layers_0_mlp_fc1"),
             "--unet-only: %zu modules", r.n_layers);
    LF_CHECK(r.n_skipped == (c->tuned ? 1u : 0u), "--unet-only: %zu not representable", r.n_skipped);
    lf_extract_report_free(&r);
    remove(out);
}

/* ---- the tiny SDXL model: TE2's fused q/k/v ----------------------------------------------------------- */

static void check_sdxl_slices(void) {
    const char *model = "tests/data/tiny/tiny-sdxl.safetensors", *lora = "tests/data/tiny/sdxl_kohya.lora.safetensors";
    char out[512], m1[512], m2[512];
    snprintf(out, sizeof out, "%s/sdxl.safetensors", g_dir);
    snprintf(m1, sizeof m1, "%s/sdxl_m1.safetensors", g_dir);
    snprintf(m2, sizeof m2, "%s/sdxl_m2.safetensors", g_dir);
    lf_merge_input in = {lora, 0.8f, 0};
    lf_extract_opts o = opts_rank(4);
    o.svd = LF_SVD_AUTO;
    lf_extract_report r;
    lf_status st = lf_extract(model, &in, 1, NULL, out, &o, &r);
    LF_CHECK(st == LF_OK, "sdxl: %s", lf_last_error());
    lf_st_file *a = NULL, *b = NULL;
    if (st == LF_OK && lf_st_open(lora, &a) == LF_OK && lf_st_open(out, &b) == LF_OK) {
        size_t same = 0;
        for (size_t i = 0; i < lf_st_count(a); i++) {
            const lf_st_tensor *t = lf_st_at(a, i), *u = lf_st_find(b, t->name);
            int ok = u && u->ndim == t->ndim;
            for (int d = 0; ok && d < t->ndim; d++) ok = u->shape[d] == t->shape[d];
            same += ok;
        }
        LF_CHECK(same == lf_st_count(a) && lf_st_count(b) == lf_st_count(a),
                 "sdxl: %zu of %zu tensors have the input's name and shape (%zu written)", same, lf_st_count(a),
                 lf_st_count(b));
        const lf_extract_layer *q = find_layer(&r, "lora_te2_text_model_encoder_layers_0_self_attn_k_proj");
        LF_CHECK(q && q->rows == 32 && q->row_off == 32 && strstr(q->key, "in_proj_weight"),
                 "sdxl: TE2 k_proj is rows [32, 64) of in_proj_weight");
        LF_CHECK(r.residual <= 1e-5 * r.norm, "sdxl: a rank-4 LoRA round-trips with %g", r.residual / r.norm);
    }
    lf_st_close(a);
    lf_st_close(b);
    lf_merge_input ex = {out, 1.0f, 0};
    if (st == LF_OK) st = lf_merge(model, &in, 1, m1, NULL, NULL);
    if (st == LF_OK) st = lf_merge(model, &ex, 1, m2, NULL, NULL);
    LF_CHECK(st == LF_OK, "sdxl merge: %s", lf_last_error());
    const char *key = "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight";
    int64_t n1 = 0, n2 = 0;
    float *w1 = st == LF_OK ? weight(m1, key, &n1) : NULL, *w2 = st == LF_OK ? weight(m2, key, &n2) : NULL;
    LF_CHECK(w1 && w2 && n1 == n2 && lf_test_rel_l2(w2, w1, n1) <= 1e-3, "sdxl: fused in_proj merged differently (%g)",
             w1 && w2 ? lf_test_rel_l2(w2, w1, n1) : -1.0);
    free(w1);
    free(w2);
    lf_extract_report_free(&r);
    remove(out);
    remove(m1);
    remove(m2);
}

/* ---- refusals: nothing written ---------------------------------------------------------------------- */

static void expect_refusal(const char *what, lf_status st, lf_status want, const char *out, const char *needle) {
    LF_CHECK(st == want, "%s: status %d (%s), want %d", what, (int)st, lf_last_error(), (int)want);
    LF_CHECK(!needle || strstr(lf_last_error(), needle), "%s: message '%s' lacks '%s'", what, lf_last_error(), needle);
    LF_CHECK(!exists(out), "%s: %s was written", what, out);
}

/* A changed tensor that no unit carries stays "not representable" when the tuned checkpoint stores it
 * in another dtype than the base (an f32 fine-tune of an f16 model). */
static void check_skipped_dtype(const xcase *tuned, const char *out) {
    lf_extract_opts o = opts_rank(8);
    lf_extract_report r0, r1;
    lf_status st = run(tuned, &o, out, &r0);
    remove(out);
    LF_CHECK(st == LF_OK && r0.n_skipped == 2, "tuned: %zu not representable (%s)", r0.n_skipped, lf_last_error());
    char mixed[512];
    snprintf(mixed, sizeof mixed, "%s/tuned_mixed_dtype.safetensors", g_dir);
    lf_test_st_edit e;
    memset(&e, 0, sizeof e);
    e.dtype = LF_BF16;
    e.dtype_only = r0.skipped_first;
    LF_CHECK(lf_test_st_copy(DATA "tuned.safetensors", mixed, &e), "copy");
    st = lf_extract(BASE, NULL, 0, mixed, out, &o, &r1);
    remove(out);
    LF_CHECK(st == LF_OK && r1.n_skipped == 2 && !strcmp(r1.skipped_first, r0.skipped_first),
             "'%s' stored as BF16: %zu not representable, first '%s' (%s)", r0.skipped_first, r1.n_skipped,
             r1.skipped_first, lf_last_error());
    if (st == LF_OK) lf_extract_report_free(&r1);
    lf_extract_report_free(&r0);
}

static void check_refusals(void) {
    const xcase *lora = &g_cases[1], *tuned = &g_cases[NCASES - 1];
    char out[512];
    snprintf(out, sizeof out, "%s/refused.safetensors", g_dir);
    lf_extract_opts o = opts_rank(0);
    expect_refusal("rank 0", run(lora, &o, out, NULL), LF_ERR_ARG, out, "rank 0");
    o.rank = -3;
    expect_refusal("rank -3", run(lora, &o, out, NULL), LF_ERR_ARG, out, "at least 1");
    o = opts_rank(49);
    expect_refusal("rank above every layer", run(lora, &o, out, NULL), LF_ERR_ARG, out,
                   "'lora_te_text_model_encoder_layers_0_mlp_fc1', is (64, 48) flattened: at most 48");
    /* above one module only: that module is kept whole (kohya's min(rank, in, out)), exactly */
    o = opts_rank(25);
    lf_extract_report r;
    lf_status st = run(tuned, &o, out, &r);
    const lf_extract_layer *c3 = find_layer(&r, "lora_unet_down_blocks_0_resnets_0_conv1");
    LF_CHECK(st == LF_OK && r.n_full == 1 && c3 && c3->rank == 24 && c3->residual <= 1e-5 * c3->norm,
             "rank 25: the 24-row conv is kept whole (%s)", lf_last_error());
    lf_extract_report_free(&r);
    remove(out);
    check_skipped_dtype(tuned, out);
    expect_refusal("nothing changes", lf_extract(BASE, NULL, 0, DATA "base.safetensors", out, &o, NULL), LF_ERR_MODEL,
                   out, "nothing to write");
    o = opts_rank(8);
    o.conv_rank = 30;
    expect_refusal("conv rank above a layer", run(lora, &o, out, NULL), LF_ERR_ARG, out, "conv rank 30");
    o = opts_rank(4);
    o.policy = LF_RANK_SV_CUMULATIVE;
    o.param = 0.9;
    o.svd = LF_SVD_RANDOMIZED;
    expect_refusal("sv_cumulative randomized", run(lora, &o, out, NULL), LF_ERR_ARG, out, "whole spectrum");
    o = opts_rank(4);
    o.policy = LF_RANK_SV_FRO;
    o.param = 1.5;
    expect_refusal("sv_fro 1.5", run(lora, &o, out, NULL), LF_ERR_ARG, out, "(0, 1]");
    o = opts_rank(4);
    expect_refusal("both inputs", lf_extract(BASE, lora->in, 1, DATA "tuned.safetensors", out, &o, NULL), LF_ERR_ARG,
                   out, "not both");
    expect_refusal("no input", lf_extract(BASE, NULL, 0, NULL, out, &o, NULL), LF_ERR_ARG, out, "neither");
    char nodir[512];
    snprintf(nodir, sizeof nodir, "%s/missing/refused.safetensors", g_dir);
    expect_refusal("no such folder", run(lora, &o, nodir, NULL), LF_ERR_IO, nodir, "cannot write into");

    /* adapters of two families */
    char xl[512];
    snprintf(xl, sizeof xl, "%s/lora_sdxl.safetensors", g_dir);
    static const char *const meta[] = {"ss_base_model_version", "sdxl_base_v1-0", NULL};
    lf_test_st_edit e;
    memset(&e, 0, sizeof e);
    e.meta = meta;
    LF_CHECK(lf_test_st_copy(DATA "lora_r4.safetensors", xl, &e), "copy");
    lf_merge_input two[2] = {{DATA "lora_r8.safetensors", 1.0f, 0}, {xl, 1.0f, 0}};
    static const char *const meta1[] = {"ss_base_model_version", "sd_v1", NULL};
    char v1[512];
    snprintf(v1, sizeof v1, "%s/lora_sd1.safetensors", g_dir);
    e.meta = meta1;
    LF_CHECK(lf_test_st_copy(DATA "lora_r8.safetensors", v1, &e), "copy");
    two[0].path = v1;
    o.plan.allow_family = 1;
    expect_refusal("two families", lf_extract(BASE, two, 2, NULL, out, &o, NULL), LF_ERR_MODEL, out,
                   "different base models");
    o.plan.allow_family = 0;

    /* a tuned checkpoint whose shapes differ */
    char bad[512];
    snprintf(bad, sizeof bad, "%s/tuned_reshaped.safetensors", g_dir);
    memset(&e, 0, sizeof e);
    e.reshape = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.ff.net.2.weight";
    LF_CHECK(lf_test_st_copy(DATA "tuned.safetensors", bad, &e), "copy");
    expect_refusal("tuned shape", lf_extract(BASE, NULL, 0, bad, out, &o, NULL), LF_ERR_SHAPE, out,
                   "ff.net.2.weight' is (24, 128) in the tuned checkpoint");
    memset(&e, 0, sizeof e);
    e.drop = "cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1.weight";
    LF_CHECK(lf_test_st_copy(DATA "tuned.safetensors", bad, &e), "copy");
    expect_refusal("tuned missing", lf_extract(BASE, NULL, 0, bad, out, &o, NULL), LF_ERR_SHAPE, out, "has no");

    /* the output is an input: refused, the input untouched */
    char copy[512];
    snprintf(copy, sizeof copy, "%s/lora_copy.safetensors", g_dir);
    memset(&e, 0, sizeof e);
    e.copy_meta = 1;
    LF_CHECK(lf_test_st_copy(DATA "lora_r4.safetensors", copy, &e), "copy");
    struct stat before, after;
    stat(copy, &before);
    lf_merge_input one = {copy, 1.0f, 0};
    st = lf_extract(BASE, &one, 1, NULL, copy, &o, NULL);
    stat(copy, &after);
    LF_CHECK(st == LF_ERR_ARG && strstr(lf_last_error(), "is the same file as the input") && before.st_size == after.st_size &&
                 before.st_mtime == after.st_mtime,
             "output = input: %s", lf_last_error());
    st = lf_extract(tuned->tuned, NULL, 0, BASE, BASE, &o, NULL);
    LF_CHECK(st == LF_ERR_ARG && strstr(lf_last_error(), "is the same file as the input"), "output = tuned: %s", lf_last_error());
    LF_CHECK(lf_test_count_files(g_dir, "refused") == 0, "a refused run left a file");
}

/* The caller's SVD (opts.svd_fn, as `--svd-device cuda` sets it to the device's): a stand-in with the
 * device SVD's contract that runs the CPU's must give the CPU path's bytes, and be called once per
 * nonzero module, with l = 0 on the exact path and l > 0 (and the power iterations) on the randomized. */
typedef struct {
    int calls, exact, randomized, bad_q;
    int q_want;
} svd_probe;

static lf_status probe_svd(void *ctx, const float *a, int64_t m, int64_t n, int64_t l, int q, uint64_t seed, double *s,
                           float *u, float *vt) {
    svd_probe *pr = ctx;
    __atomic_add_fetch(&pr->calls, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(l ? &pr->randomized : &pr->exact, 1, __ATOMIC_SEQ_CST);
    if (l && q != pr->q_want) __atomic_add_fetch(&pr->bad_q, 1, __ATOMIC_SEQ_CST);
    lf_svd r;
    lf_status st = l ? lf_svd_randomized(a, m, n, l, q, seed, &r) : lf_svd_exact(a, m, n, &r);
    if (st != LF_OK) return st;
    memcpy(s, r.s, (size_t)r.p * sizeof *s);
    memcpy(u, r.u, (size_t)(m * r.p) * sizeof *u);
    memcpy(vt, r.vt, (size_t)(r.p * n) * sizeof *vt);
    lf_svd_free(&r);
    return LF_OK;
}

static int same_bytes(const char *a, const char *b) {
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int same = lf_read_file(a, NULL, 1 << 26, &x, &nx) == LF_OK && lf_read_file(b, NULL, 1 << 26, &y, &ny) == LF_OK &&
               nx == ny && !memcmp(x, y, nx);
    free(x);
    free(y);
    return same;
}

static void check_svd_hook(const xcase *c) {
    for (int k = 0; k < 2; k++) {
        lf_extract_opts o = opts_rank(4);
        o.svd = k ? LF_SVD_RANDOMIZED : LF_SVD_EXACT;
        o.overwrite = 1;
        char cpu[300], hook[300]; /* the same file name: it is the output's modelspec.title */
        snprintf(cpu, sizeof cpu, "%s/hook_cpu", g_dir);
        snprintf(hook, sizeof hook, "%s/hook_fn", g_dir);
        mkdir(cpu, 0777);
        mkdir(hook, 0777);
        snprintf(cpu, sizeof cpu, "%s/hook_cpu/x%d.safetensors", g_dir, k);
        snprintf(hook, sizeof hook, "%s/hook_fn/x%d.safetensors", g_dir, k);
        lf_extract_report r1, r2;
        LF_CHECK(run(c, &o, cpu, &r1) == LF_OK, "%s: cpu svd: %s", c->name, lf_last_error());
        svd_probe pr = {0, 0, 0, 0, 3};
        o.svd_fn = probe_svd;
        o.svd_ctx = &pr;
        LF_CHECK(run(c, &o, hook, &r2) == LF_OK, "%s: caller's svd: %s", c->name, lf_last_error());
        LF_CHECK(same_bytes(cpu, hook), "%s (%s): the caller's SVD gives other bytes than the CPU's", c->name,
                 k ? "randomized" : "exact");
        LF_CHECK(pr.calls == (int)r2.n_layers && (k ? pr.randomized : pr.exact) == pr.calls && !pr.bad_q,
                 "%s: svd_fn called %d times (%d exact, %d randomized, %d with other q) for %zu modules", c->name,
                 pr.calls, pr.exact, pr.randomized, pr.bad_q, r2.n_layers);
        lf_extract_report_free(&r1);
        lf_extract_report_free(&r2);
    }
}

int main(void) {
    if (lf_test_tmpdir(g_dir, sizeof g_dir, "extract") != 0) LF_SKIP("no temporary directory");
    for (size_t i = 0; i < NCASES; i++) load_case(&g_cases[i], i);
    for (size_t i = 0; i < NCASES; i++) {
        const xcase *c = &g_cases[i];
        check_fixed(c, 4, LF_SVD_EXACT, 1e-4);
        check_fixed(c, 2, LF_SVD_EXACT, 1e-4);
        if (!strcmp(c->name, "lora_r4")) check_fixed(c, 8, LF_SVD_EXACT, 1e-4);
        check_fixed(c, 4, LF_SVD_RANDOMIZED, 0.01);
        check_policies(c);
        check_merge(c);
    }
    check_dtypes_and_threads(&g_cases[0]);
    check_dtypes_and_threads(&g_cases[NCASES - 1]);
    check_clamp(&g_cases[0]);
    check_unet_only(&g_cases[0]);
    check_unet_only(&g_cases[NCASES - 1]);
    check_sdxl_slices();
    check_svd_hook(&g_cases[0]);
    check_svd_hook(&g_cases[NCASES - 2]);
    check_refusals();
    printf("residual vs numpy's optimum: exact within %.2e relative, randomized at most %.4f %% above; round trips "
           "within %.2e of ||dW||\n", g_worst_exact, 100 * g_worst_rand, g_worst_trip);
    for (size_t i = 0; i < NCASES; i++) {
        cJSON_Delete(g_cases[i].meta);
        lf_st_close(g_cases[i].exp);
    }
    lf_test_rmtree(g_dir);
    return lf_test_finish();
}
