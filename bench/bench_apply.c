/* bench_apply.c: time the fused device apply (lf_device.h) on full-size SD1.5 and SDXL UNets.
 *
 * The model is synthetic and built in memory: every UNet weight of tests/data/{sd15,sdxl}_modules.tsv
 * (real checkpoint keys and shapes) as random f16, laid out as a safetensors image and opened with
 * lf_st_parse + lf_keymap_build, so lf_plan_build matches real kohya names against it. Adapters are
 * in-memory safetensors images too (kohya names, f16 factors, alpha), grouped into modules the way
 * lf_adapter_open does it. Coverage "kohya" = every Linear / 1x1 conv in the transformer blocks
 * (proj_in, proj_out, transformer_blocks.*); "locon" = every row of the table (ResNet 3x3 convs, time
 * embedding Linears, skip 1x1s too).
 *
 * One JSON line per case (stdout, or --json FILE): the median of --iters applies timed with CUDA
 * events on one stream (after --warmup applies), each apply changing the coefficients so that the
 * device really rewrites the layers; bytes moved from lf_dev_last_stats (W0 read + W written +
 * factors); FLOPs counted from the plan; and, measured in the same run with the same events, a
 * cudaMemcpy device-to-device copy moving the same number of bytes (bytes/2 read + bytes/2 written).
 * After timing, the smallest job is downloaded and compared with the CPU reference (lf_job_apply).
 * A last line {"bench": "apply_summary", ...} holds the time targets and whether they were met.
 *
 * Exit: 0 all cases ran (targets are reported, not enforced); 1 a case failed; 2 bad usage;
 * 77 no usable device (or a build without CUDA: skip line, exit 0 as documented in bench/README.md).
 * Usage: lf_bench_apply [--json FILE] [--filter S1,S2] [--iters N] [--warmup N] [--budget SEC]
 *                       [--quick] [--list] [--dry-run] [--data DIR]
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lorafuse/lf_adapter.h"
#include "lorafuse/lf_config.h"
#include "lorafuse/lf_device.h"
#include "lorafuse/lf_keymap.h"
#include "lorafuse/lf_model.h"
#include "lorafuse/lf_safetensors.h"
#include "host/base/strbuf.h"
#include "host/base/util.h"
#include "tests/common/lf_test_rng.h"

#if LF_HAVE_CUDA
#include <cuda_runtime.h>
#endif

#ifndef LF_SOURCE_DIR
#define LF_SOURCE_DIR "."
#endif

/* ---- small utilities ------------------------------------------------------------------------ */

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "bench_apply: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = xmalloc(n);
    memcpy(d, s, n);
    return d;
}

/* JSON-safe copy of a message (quotes, backslashes and control bytes replaced). */
static void json_clean(const char *s, char *out, size_t n) {
    size_t j = 0;
    for (; s && *s && j + 1 < n; s++) {
        unsigned char c = (unsigned char)*s;
        out[j++] = (c < 0x20 || c == '"' || c == '\\') ? '\'' : (char)c;
    }
    out[j] = '\0';
}

/* ---- random f16 fill (multi-threaded) ----------------------------------------------------- */

/* Random finite f16 bit patterns: random sign and mantissa, biased exponent in [e0, e0 + 3]
 * (magnitude in [2^(e0-15), 2^(e0-11))); positive only when `pos`. Never 0, NaN or Inf. */
typedef struct fill_job {
    uint16_t *dst;
    size_t n;
    uint64_t seed;
    unsigned e0;
    int pos;
} fill_job;

static void *fill_worker(void *arg) {
    fill_job *j = arg;
    uint64_t s = j->seed;
    /* four f16 lanes per 64-bit word: sign (unless pos) and mantissa from r, exponent e0 + 2 bits of r */
    const uint64_t keep = j->pos ? 0x03ff03ff03ff03ffull : 0x83ff83ff83ff83ffull;
    const uint64_t e0 = (uint64_t)j->e0 * 0x0001000100010001ull;
    size_t i = 0;
    for (; i + 4 <= j->n; i += 4) {
        uint64_t r = lf_test_splitmix64(&s);
        uint64_t w = (r & keep) | ((((r >> 10) & 0x0003000300030003ull) + e0) << 10);
        memcpy(j->dst + i, &w, 8);
    }
    for (; i < j->n; i++) {
        uint64_t r = lf_test_splitmix64(&s);
        j->dst[i] = (uint16_t)((r & keep & 0xffffu) | ((((r >> 10) & 3u) + j->e0) << 10));
    }
    return NULL;
}

static int g_threads = 1;

static void fill_f16(void *dst, size_t n, uint64_t seed, unsigned e0, int pos) {
    enum { CHUNK = 1 << 22, MAXT = 64 };
    size_t nchunks = (n + CHUNK - 1) / CHUNK;
    size_t c = 0;
    while (c < nchunks) {
        pthread_t th[MAXT];
        fill_job jb[MAXT];
        int started[MAXT];
        int nt = 0;
        for (; nt < g_threads && nt < MAXT && c < nchunks; nt++, c++) {
            size_t off = c * (size_t)CHUNK;
            jb[nt].dst = (uint16_t *)dst + off;
            jb[nt].n = n - off < (size_t)CHUNK ? n - off : (size_t)CHUNK;
            jb[nt].seed = seed * 0x100000001b3ull + (uint64_t)c;
            jb[nt].e0 = e0;
            jb[nt].pos = pos;
            started[nt] = nt > 0 && pthread_create(&th[nt], NULL, fill_worker, &jb[nt]) == 0;
        }
        for (int t = 0; t < nt; t++)
            if (!started[t]) fill_worker(&jb[t]);
        for (int t = 0; t < nt; t++)
            if (started[t]) pthread_join(th[t], NULL);
    }
}

/* ---- the module tables ---------------------------------------------------------------------- */

typedef struct layer {
    char *kohya, *key;
    int ndim;
    int64_t shape[4];
} layer;

typedef struct table {
    layer *v;
    size_t n;
} table;

static int read_table(const char *dir, const char *file, table *t) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[4096];
    size_t cap = 0;
    t->v = NULL;
    t->n = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        line[strcspn(line, "\r\n")] = '\0';
        char *save = NULL;
        char *kohya = strtok_r(line, "\t", &save), *key = strtok_r(NULL, "\t", &save);
        char *rows = strtok_r(NULL, "\t", &save), *shape = strtok_r(NULL, "\t", &save);
        if (!kohya || !key || !rows || !shape) continue;
        if (lf_grow(&t->v, &cap, t->n + 1)) {
            fclose(f);
            return -1;
        }
        layer *l = &t->v[t->n];
        memset(l, 0, sizeof *l);
        for (char *s = shape; *s && l->ndim < 4;) {
            l->shape[l->ndim++] = strtoll(s, &s, 10);
            if (*s == ',') s++;
            else break;
        }
        if (l->ndim != 2 && l->ndim != 4) continue;
        l->kohya = xstrdup(kohya);
        l->key = xstrdup(key);
        t->n++;
    }
    fclose(f);
    return t->n ? 0 : -1;
}

static void free_table(table *t) {
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].kohya);
        free(t->v[i].key);
    }
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

static int64_t layer_numel(const layer *l) {
    int64_t n = 1;
    for (int i = 0; i < l->ndim; i++) n *= l->shape[i];
    return n;
}

static int64_t layer_K(const layer *l) { return layer_numel(l) / l->shape[0]; }

/* kohya's default targets: Linear / 1x1 conv inside the transformer blocks. */
static int is_kohya(const layer *l) {
    int lin = l->ndim == 2 || (l->shape[2] == 1 && l->shape[3] == 1);
    return lin && (strstr(l->key, ".transformer_blocks.") || strstr(l->key, ".proj_in.") ||
                   strstr(l->key, ".proj_out."));
}

/* ---- safetensors images in memory ------------------------------------------------------------- */

typedef struct img_tensor {
    char name[256];
    int ndim;
    int64_t shape[4];
    size_t nbytes;
    int kind; /* 0 factor, 1 alpha scalar, 2 positive magnitude (dora_scale) */
    float value;
} img_tensor;

typedef struct image {
    unsigned char *buf;
    size_t size;
    lf_st_file *st;
} image;

/* Lay out header + data for `ts`, fill the data (weights: e0 = `e0`), parse it. */
static lf_status build_image(const img_tensor *ts, size_t n, const char *meta_json, const char *label,
                             unsigned e0, uint64_t seed, image *out) {
    lf_sbuf h = {0};
    lf_sb_put(&h, "{", 1);
    if (meta_json) lf_sb_printf(&h, "\"__metadata__\":%s,", meta_json);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        lf_sb_printf(&h, "%s\"%s\":{\"dtype\":\"F16\",\"shape\":[", i ? "," : "", ts[i].name);
        for (int d = 0; d < ts[i].ndim; d++) lf_sb_printf(&h, "%s%lld", d ? "," : "", (long long)ts[i].shape[d]);
        lf_sb_printf(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + ts[i].nbytes);
        off += ts[i].nbytes;
    }
    lf_sb_put(&h, "}", 1);
    while (!h.oom && (8 + h.n) % 8) lf_sb_put(&h, " ", 1);
    size_t total = 8 + h.n + off;
    unsigned char *buf = h.oom ? NULL : malloc(total);
    if (!buf) {
        lf_sb_free(&h);
        return lf_err(LF_ERR_NOMEM, "%s: out of memory for %zu bytes", label, total);
    }
    uint64_t hn = h.n;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hn >> (8 * i));
    memcpy(buf + 8, h.s, h.n);
    lf_sb_free(&h);
    unsigned char *data = buf + 8 + hn;
    fill_f16(data, off / 2, seed, e0, 0);
    off = 0;
    for (size_t i = 0; i < n; i++) {
        if (ts[i].kind == 1) {
            lf_status cs = lf_f32_to_dtype(&ts[i].value, 1, LF_F16, data + off);
            if (cs != LF_OK) {
                free(buf);
                return cs;
            }
        } else if (ts[i].kind == 2) {
            fill_f16(data + off, ts[i].nbytes / 2, seed + 7777 + i, 13, 1); /* [0.25, 4) */
        }
        off += ts[i].nbytes;
    }
    lf_status st = lf_st_parse(buf, total, label, &out->st);
    if (st != LF_OK) {
        free(buf);
        return st;
    }
    out->buf = buf;
    out->size = total;
    return LF_OK;
}

/* ---- synthetic model and adapters --------------------------------------------------------------- */

typedef struct synth_model {
    const char *name;       /* "sd15", "sdxl" */
    const char *version;    /* ss_base_model_version of its adapters */
    table tab;
    image img;
    lf_model *m;
} synth_model;

static lf_status model_build(synth_model *sm, uint64_t seed) {
    img_tensor *ts = xmalloc(sm->tab.n * sizeof *ts);
    for (size_t i = 0; i < sm->tab.n; i++) {
        const layer *l = &sm->tab.v[i];
        memset(&ts[i], 0, sizeof ts[i]);
        snprintf(ts[i].name, sizeof ts[i].name, "%s", l->key);
        ts[i].ndim = l->ndim;
        memcpy(ts[i].shape, l->shape, sizeof l->shape);
        ts[i].nbytes = (size_t)layer_numel(l) * 2;
    }
    char label[64];
    snprintf(label, sizeof label, "<synthetic %s UNet, f16>", sm->name);
    /* W0 magnitudes in [2^-9, 2^-5): about the 0.02 std of real UNet weights */
    lf_status st = build_image(ts, sm->tab.n, NULL, label, 6, seed, &sm->img);
    free(ts);
    if (st != LF_OK) return st;
    lf_model *m = calloc(1, sizeof *m);
    if (!m) return lf_err(LF_ERR_NOMEM, "out of memory");
    m->st = sm->img.st;
    size_t n = lf_st_count(m->st);
    const char **keys = xmalloc(n * sizeof *keys);
    lf_view *views = xmalloc(n * sizeof *views);
    for (size_t i = 0; i < n; i++) {
        keys[i] = lf_st_at(m->st, i)->name;
        views[i] = lf_st_view(lf_st_at(m->st, i));
    }
    st = lf_keymap_build(keys, views, n, &m->km);
    free(keys);
    free(views);
    if (st != LF_OK) {
        lf_model_free(m);
        free(sm->img.buf);
        memset(&sm->img, 0, sizeof sm->img);
        return st;
    }
    m->family = lf_keymap_family(m->km);
    sm->m = m;
    return LF_OK;
}

static void model_free(synth_model *sm) {
    if (sm->m) lf_model_free(sm->m); /* closes the parsed image, not its buffer */
    free(sm->img.buf);
    sm->m = NULL;
    memset(&sm->img, 0, sizeof sm->img);
}

typedef enum algo_kind { A_LORA, A_LOHA, A_LOKR, A_DORA_OUT, A_DORA_IN } algo_kind;

static const char *algo_str(algo_kind a) {
    switch (a) {
    case A_LORA: return "lora";
    case A_LOHA: return "loha";
    case A_LOKR: return "lokr";
    case A_DORA_OUT: return "dora_out";
    case A_DORA_IN: return "dora_in";
    }
    return "?";
}

typedef struct synth_adapter {
    lf_adapter *a;
    unsigned char *buf;
} synth_adapter;

static void adapter_free(synth_adapter *sa) {
    lf_adapter_free(sa->a); /* closes the parsed image, not its buffer */
    free(sa->buf);
    sa->a = NULL;
    sa->buf = NULL;
}

static int mod_cmp(const void *x, const void *y) {
    return strcmp(((const lf_module *)x)->name, ((const lf_module *)y)->name);
}

static int64_t lokr_factor(int64_t n) { return n % 8 == 0 ? 8 : n % 4 == 0 ? 4 : n % 2 == 0 ? 2 : 1; }

static void add_t(img_tensor *ts, size_t *n, const char *mod, const char *suffix, int ndim, int64_t d0, int64_t d1,
                  int64_t d2, int64_t d3, int kind, float value) {
    img_tensor *t = &ts[(*n)++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s.%s", mod, suffix);
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->shape[2] = d2;
    t->shape[3] = d3;
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= (size_t)t->shape[i];
    t->nbytes = numel * 2;
    t->kind = kind;
    t->value = value;
}

/* One adapter over the model's layers (kohya or LoCon coverage), kohya names, f16 factors with
 * magnitudes in [2^-6, 2^-2), alpha = rank / 2. Grouped into modules as lf_adapter_open does. */
static lf_status adapter_build(const synth_model *sm, int locon, algo_kind algo, int rank, uint64_t seed,
                               synth_adapter *out) {
    memset(out, 0, sizeof *out);
    img_tensor *ts = xmalloc(sm->tab.n * 6 * sizeof *ts);
    size_t n = 0;
    int64_t r = rank;
    float alpha = (float)rank / 2.0f;
    for (size_t i = 0; i < sm->tab.n; i++) {
        const layer *l = &sm->tab.v[i];
        if (!locon && !is_kohya(l)) continue;
        int conv = l->ndim == 4;
        int64_t O = l->shape[0], I = l->shape[1], K = layer_K(l);
        int64_t kh = conv ? l->shape[2] : 1, kw = conv ? l->shape[3] : 1;
        const char *mn = l->kohya;
        switch (algo) {
        case A_LORA:
        case A_DORA_OUT:
        case A_DORA_IN:
            add_t(ts, &n, mn, "lora_down.weight", conv ? 4 : 2, r, I, kh, kw, 0, 0);
            add_t(ts, &n, mn, "lora_up.weight", conv ? 4 : 2, O, r, 1, 1, 0, 0);
            if (algo == A_DORA_OUT) add_t(ts, &n, mn, "dora_scale", conv ? 4 : 2, O, 1, 1, 1, 2, 0);
            if (algo == A_DORA_IN) add_t(ts, &n, mn, "dora_scale", conv ? 4 : 2, 1, I, 1, 1, 2, 0);
            break;
        case A_LOHA:
            add_t(ts, &n, mn, "hada_w1_a", 2, O, r, 0, 0, 0, 0);
            add_t(ts, &n, mn, "hada_w1_b", 2, r, K, 0, 0, 0, 0);
            add_t(ts, &n, mn, "hada_w2_a", 2, O, r, 0, 0, 0, 0);
            add_t(ts, &n, mn, "hada_w2_b", 2, r, K, 0, 0, 0, 0);
            break;
        case A_LOKR: {
            int64_t a = lokr_factor(O), c = lokr_factor(I);
            add_t(ts, &n, mn, "lokr_w1", 2, a, c, 0, 0, 0, 0);
            add_t(ts, &n, mn, "lokr_w2_a", 2, O / a, r, 0, 0, 0, 0);
            add_t(ts, &n, mn, "lokr_w2_b", 2, r, (I / c) * kh * kw, 0, 0, 0, 0);
            break;
        }
        }
        add_t(ts, &n, mn, "alpha", 0, 0, 0, 0, 0, 1, alpha);
    }
    char meta[256], label[128];
    snprintf(meta, sizeof meta,
             "{\"ss_network_module\":\"networks.lora\",\"ss_network_dim\":\"%d\",\"ss_base_model_version\":\"%s\"}",
             rank, sm->version);
    snprintf(label, sizeof label, "<synthetic %s %s %s r%d #%llu>", sm->name, locon ? "locon" : "kohya",
             algo_str(algo), rank, (unsigned long long)seed);
    image img;
    memset(&img, 0, sizeof img);
    /* factor magnitudes in [2^-6, 2^-2) */
    lf_status st = build_image(ts, n, meta, label, 9, seed, &img);
    free(ts);
    if (st != LF_OK) return st;

    lf_adapter *a = calloc(1, sizeof *a);
    size_t nt = lf_st_count(img.st);
    if (!a || !(a->mods = calloc(nt ? nt : 1, sizeof *a->mods)) || !(a->path = strdup(label))) {
        if (a) free(a->mods);
        free(a);
        lf_st_close(img.st);
        free(img.buf);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    a->st = img.st;
    out->a = a;
    out->buf = img.buf;
    for (size_t i = 0; i < nt; i++) {
        const lf_st_tensor *t = lf_st_at(a->st, i);
        size_t mlen = 0;
        int role = lf_role_split(t->name, &mlen);
        if (role < 0) {
            st = lf_err(LF_ERR_FORMAT, "%s: tensor '%s' has no known role suffix", label, t->name);
            break;
        }
        lf_module *m = a->n_mods ? &a->mods[a->n_mods - 1] : NULL;
        if (!m || strlen(m->name) != mlen || strncmp(m->name, t->name, mlen) != 0) {
            m = &a->mods[a->n_mods++];
            char *name = xmalloc(mlen + 1);
            memcpy(name, t->name, mlen);
            name[mlen] = '\0';
            m->name = name;
        }
        m->present |= 1u << role;
        m->t[role] = lf_st_view(t);
    }
    for (size_t i = 0; i < a->n_mods && st == LF_OK; i++) st = lf_module_resolve(&a->mods[i], NULL);
    if (st != LF_OK) {
        adapter_free(out);
        return st;
    }
    qsort(a->mods, a->n_mods, sizeof *a->mods, mod_cmp);
    return LF_OK;
}

/* ---- cases ----------------------------------------------------------------------------------- */

typedef enum mode { M_APPLY, M_SWITCH, M_ONE_ADAPTER, M_ONE_LAYER } mode;

static const char *mode_str(mode m) {
    switch (m) {
    case M_APPLY: return "apply";
    case M_SWITCH: return "switch";
    case M_ONE_ADAPTER: return "one_strength";
    case M_ONE_LAYER: return "one_layer";
    }
    return "?";
}

typedef struct bcase {
    const char *name;
    int model;      /* 0 sd15, 1 sdxl */
    int locon;      /* 0 kohya coverage, 1 LoCon coverage */
    algo_kind algo;
    int rank;
    int nad;        /* adapters at once (switch: 2, one active) */
    mode mode;
    double target_ms; /* time target, 0 = none */
    int quick;      /* part of --quick */
} bcase;

/* Most important first: if the time budget runs out, the tail is skipped. */
static const bcase g_cases[] = {
    {"sd15_kohya_lora_r32_x1", 0, 0, A_LORA, 32, 1, M_APPLY, 0.6, 1},
    {"sd15_kohya_lora_r32_x8", 0, 0, A_LORA, 32, 8, M_APPLY, 0, 1},
    {"sdxl_kohya_lora_r32_x1", 1, 0, A_LORA, 32, 1, M_APPLY, 4.0, 0},
    {"sdxl_kohya_lora_r32_x8", 1, 0, A_LORA, 32, 8, M_APPLY, 0, 0},
    {"sd15_kohya_lora_r8_x1", 0, 0, A_LORA, 8, 1, M_APPLY, 0, 1},
    {"sd15_kohya_lora_r128_x1", 0, 0, A_LORA, 128, 1, M_APPLY, 0, 1},
    {"sd15_kohya_lora_r32_x2", 0, 0, A_LORA, 32, 2, M_APPLY, 0, 0},
    {"sd15_kohya_lora_r32_x4", 0, 0, A_LORA, 32, 4, M_APPLY, 0, 0},
    {"sd15_locon_lora_r32_x1", 0, 1, A_LORA, 32, 1, M_APPLY, 0, 1},
    {"sd15_kohya_loha_r16_x1", 0, 0, A_LOHA, 16, 1, M_APPLY, 0, 1},
    {"sd15_kohya_lokr_r16_x1", 0, 0, A_LOKR, 16, 1, M_APPLY, 0, 1},
    {"sd15_kohya_dora_out_r32_x1", 0, 0, A_DORA_OUT, 32, 1, M_APPLY, 0, 1},
    {"sd15_kohya_dora_in_r32_x1", 0, 0, A_DORA_IN, 32, 1, M_APPLY, 0, 0},
    {"sd15_kohya_lora_r32_switch", 0, 0, A_LORA, 32, 2, M_SWITCH, 0, 1},
    {"sd15_kohya_lora_r32_x4_one_strength", 0, 0, A_LORA, 32, 4, M_ONE_ADAPTER, 0, 0},
    {"sd15_kohya_lora_r32_one_layer", 0, 0, A_LORA, 32, 1, M_ONE_LAYER, 0, 1},
    {"sdxl_kohya_lora_r8_x1", 1, 0, A_LORA, 8, 1, M_APPLY, 0, 0},
    {"sdxl_kohya_lora_r128_x1", 1, 0, A_LORA, 128, 1, M_APPLY, 0, 0},
    {"sdxl_kohya_lora_r32_x2", 1, 0, A_LORA, 32, 2, M_APPLY, 0, 0},
    {"sdxl_kohya_lora_r32_x4", 1, 0, A_LORA, 32, 4, M_APPLY, 0, 0},
    {"sdxl_locon_lora_r32_x1", 1, 1, A_LORA, 32, 1, M_APPLY, 0, 0},
    {"sdxl_kohya_loha_r16_x1", 1, 0, A_LOHA, 16, 1, M_APPLY, 0, 0},
    {"sdxl_kohya_lokr_r16_x1", 1, 0, A_LOKR, 16, 1, M_APPLY, 0, 0},
    {"sdxl_kohya_dora_out_r32_x1", 1, 0, A_DORA_OUT, 32, 1, M_APPLY, 0, 0},
    {"sdxl_kohya_lora_r32_switch", 1, 0, A_LORA, 32, 2, M_SWITCH, 0, 0},
    {"sdxl_kohya_lora_r32_x4_one_strength", 1, 0, A_LORA, 32, 4, M_ONE_ADAPTER, 0, 0},
};
#define N_CASES (sizeof g_cases / sizeof g_cases[0])

/* Nominal FLOPs of rewriting one job: the factor products of every patch with a non-zero
 * coefficient plus one add per element (W0 + delta). */
static double job_flops(const lf_job *j) {
    lf_view v = lf_st_view(j->target);
    double O = (double)(v.ndim ? v.shape[0] : 1), K = (double)lf_view_cols(&v), f = O * K;
    for (size_t p = 0; p < j->n_patches; p++) {
        const lf_patch *pt = &j->patches[p];
        const lf_module *m = &pt->mod;
        if (pt->coef == 0.0f) continue;
        double r = (double)(m->rank > 0 ? m->rank : 1);
        switch (m->algo) {
        case LF_ALGO_LORA: f += 2.0 * O * K * r; break;
        case LF_ALGO_LOHA: f += 2.0 * O * K * 2.0 * r + O * K; break;
        case LF_ALGO_LOKR: {
            const lf_view *w2b = &m->t[LF_R_KW2B];
            double b = (double)(m->t[LF_R_KW2A].ndim ? m->t[LF_R_KW2A].shape[0] : 0);
            f += O * K + 2.0 * b * (double)lf_view_cols(w2b) * r;
            break;
        }
        default: f += 2.0 * O * K * r; break;
        }
        if (m->present & (1u << LF_R_DORA)) f += 4.0 * O * K; /* norms and the scaled write */
    }
    return f;
}

static uint64_t factor_elems(const lf_job *j) {
    uint64_t e = 0;
    for (size_t p = 0; p < j->n_patches; p++)
        for (int r = 0; r < LF_R_COUNT; r++)
            if ((j->patches[p].mod.present & (1u << r)) && r != LF_R_ALPHA && r != LF_R_SCALE)
                e += (uint64_t)lf_view_numel(&j->patches[p].mod.t[r]);
    return e;
}

/* JSON number or null. */
static void jnum(lf_sbuf *b, const char *key, double v, const char *fmt) {
    if (!isfinite(v)) {
        lf_sb_printf(b, ",\"%s\":null", key);
        return;
    }
    char tmp[64];
    snprintf(tmp, sizeof tmp, fmt, v);
    lf_sb_printf(b, ",\"%s\":%s", key, tmp);
}

typedef struct result {
    int ran;
    double ms, frac_of_copy;
} result;

typedef struct run_ctx {
    FILE *out;
    int iters, warmup, dry_run;
    lf_device *dev;
    void *stream;
    const char *device_name;
} run_ctx;

static void emit(run_ctx *rc, lf_sbuf *b) {
    if (b->oom) {
        fprintf(stderr, "bench_apply: out of memory\n");
        exit(1);
    }
    fprintf(rc->out, "%s}\n", b->s);
    fflush(rc->out);
    lf_sb_free(b);
}

static void emit_error(run_ctx *rc, const bcase *c, const char *stage, lf_status st) {
    char msg[768];
    json_clean(lf_last_error(), msg, sizeof msg);
    lf_sbuf b = {0};
    lf_sb_printf(&b, "{\"bench\":\"apply\",\"case\":\"%s\",\"error\":\"%s: %s: %s\"", c->name, stage, lf_status_str(st),
                 msg);
    emit(rc, &b);
    fprintf(stderr, "bench_apply: %s: %s failed: %s\n", c->name, stage, lf_last_error());
}

#if LF_HAVE_CUDA
static int dbl_cmp(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, dbl_cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Set the coefficients of step k (consecutive steps always differ, so every apply rewrites). */
static lf_status set_step(lf_dev_model *dm, const bcase *c, size_t nad, size_t big_job, long k) {
    float s = (k % 2) ? 0.8f : 1.0f;
    lf_status st = LF_OK;
    switch (c->mode) {
    case M_APPLY:
        for (size_t a = 0; a < nad && st == LF_OK; a++) st = lf_dev_set_adapter_coef(dm, a, s);
        break;
    case M_SWITCH:
        st = lf_dev_set_adapter_coef(dm, 0, (k % 2) ? 0.0f : 1.0f);
        if (st == LF_OK) st = lf_dev_set_adapter_coef(dm, 1, (k % 2) ? 1.0f : 0.0f);
        break;
    case M_ONE_ADAPTER: st = lf_dev_set_adapter_coef(dm, 0, s); break;
    case M_ONE_LAYER: st = lf_dev_set_coef(dm, big_job, 0, s); break;
    }
    return st;
}

/* device memset issued before each timed region (see time_case) */
#define GATE_BYTES ((size_t)512 << 20)

#define CU(call)                                                                                        \
    do {                                                                                                \
        cudaError_t e_ = (call);                                                                        \
        if (e_ != cudaSuccess) {                                                                        \
            st = lf_err(LF_ERR_DEVICE, "%s: %s (%s)", #call, cudaGetErrorString(e_), cudaGetErrorName(e_)); \
            goto done;                                                                                  \
        }                                                                                               \
    } while (0)

/* Time `iters` applies and as many same-size device copies; check the smallest job on the CPU. */
static lf_status time_case(run_ctx *rc, const bcase *c, const lf_plan *plan, lf_dev_model *dm, size_t nad,
                           size_t big_job, lf_sbuf *b, result *res) {
    lf_status st = LF_OK;
    cudaStream_t s = (cudaStream_t)rc->stream;
    cudaEvent_t e0 = NULL, e1 = NULL;
    void *src = NULL, *dst = NULL;
    double *t = xmalloc((size_t)rc->iters * sizeof *t), *tc = xmalloc((size_t)rc->iters * sizeof *tc);
    double *enq = xmalloc((size_t)rc->iters * sizeof *enq), wall[5];
    unsigned char *gpu = NULL, *cpu = NULL;
    void *gate = NULL;
    CU(cudaEventCreate(&e0));
    CU(cudaEventCreate(&e1));
    CU(cudaMalloc(&gate, GATE_BYTES));
    long k = 0;
    for (int i = 0; i < rc->warmup; i++, k++) {
        if ((st = set_step(dm, c, nad, big_job, k)) != LF_OK) goto done;
        if ((st = lf_dev_apply(dm, rc->stream)) != LF_OK) goto done;
    }
    /* Each timed apply sits behind a device memset (the gate, ~0.2 ms on an H100): while the GPU
     * runs it, the host enqueues the apply, so e0 -> e1 is device time, not host preparation (which
     * is reported separately as enqueue_ms). */
    for (int i = 0; i < rc->iters; i++, k++) {
        if ((st = set_step(dm, c, nad, big_job, k)) != LF_OK) goto done;
        CU(cudaMemsetAsync(gate, i & 0x7f, GATE_BYTES, s));
        CU(cudaEventRecord(e0, s));
        double h0 = lf_clock_s();
        if ((st = lf_dev_apply_async(dm, rc->stream)) != LF_OK) goto done;
        enq[i] = 1e3 * (lf_clock_s() - h0);
        CU(cudaEventRecord(e1, s));
        if ((st = lf_dev_apply_wait(dm)) != LF_OK) goto done;
        CU(cudaEventSynchronize(e1));
        float ms = 0;
        CU(cudaEventElapsedTime(&ms, e0, e1));
        t[i] = ms;
    }
    /* host view: lf_dev_apply (enqueue + wait) on an idle stream */
    for (int i = 0; i < 5; i++, k++) {
        if ((st = set_step(dm, c, nad, big_job, k)) != LF_OK) goto done;
        double h0 = lf_clock_s();
        if ((st = lf_dev_apply(dm, rc->stream)) != LF_OK) goto done;
        wall[i] = 1e3 * (lf_clock_s() - h0);
    }
    lf_dev_apply_stats ast;
    memset(&ast, 0, sizeof ast);
    lf_dev_last_stats(dm, &ast);
    double bytes = (double)ast.bytes_weights + (double)ast.bytes_factors;

    /* the floor: a device-to-device copy moving the same bytes (half read, half written) */
    size_t half = ((size_t)(bytes / 2) + 255) & ~(size_t)255;
    if (half < 256) half = 256;
    CU(cudaMalloc(&src, half));
    CU(cudaMalloc(&dst, half));
    CU(cudaMemsetAsync(src, 0x3c, half, s));
    CU(cudaMemsetAsync(dst, 0x00, half, s));
    for (int i = 0; i < 2; i++) CU(cudaMemcpyAsync(dst, src, half, cudaMemcpyDeviceToDevice, s));
    for (int i = 0; i < rc->iters; i++) {
        CU(cudaMemsetAsync(gate, i & 0x7f, GATE_BYTES, s));
        CU(cudaEventRecord(e0, s));
        CU(cudaMemcpyAsync(dst, src, half, cudaMemcpyDeviceToDevice, s));
        CU(cudaEventRecord(e1, s));
        CU(cudaEventSynchronize(e1));
        float ms = 0;
        CU(cudaEventElapsedTime(&ms, e0, e1));
        tc[i] = ms;
    }

    /* correctness spot check: plan coefficients back, smallest job against the CPU reference */
    for (size_t j = 0; j < plan->n_jobs && st == LF_OK; j++)
        for (size_t p = 0; p < plan->jobs[j].n_patches && st == LF_OK; p++)
            st = lf_dev_set_coef(dm, j, p, plan->jobs[j].patches[p].coef);
    if (st != LF_OK || (st = lf_dev_apply(dm, rc->stream)) != LF_OK) goto done;
    size_t cj = 0;
    for (size_t j = 1; j < plan->n_jobs; j++)
        if (plan->jobs[j].target->end - plan->jobs[j].target->begin <
            plan->jobs[cj].target->end - plan->jobs[cj].target->begin)
            cj = j;
    const lf_st_tensor *tt = plan->jobs[cj].target;
    size_t nb = (size_t)(tt->end - tt->begin);
    gpu = xmalloc(nb);
    cpu = xmalloc(nb);
    if ((st = lf_dev_download(dm, cj, gpu)) != LF_OK) goto done;
    if ((st = lf_job_apply(&plan->jobs[cj], 0, cpu)) != LF_OK) goto done;
    lf_view vg = lf_st_view(tt), vc = vg;
    vg.data = gpu;
    vc.data = cpu;
    int64_t ne = lf_view_numel(&vg);
    float *fg = xmalloc((size_t)ne * sizeof *fg), *fc = xmalloc((size_t)ne * sizeof *fc);
    double num = 0, den = 0;
    if (lf_view_to_f32(&vg, fg) == LF_OK && lf_view_to_f32(&vc, fc) == LF_OK) {
        for (int64_t i = 0; i < ne; i++) {
            double d = (double)fg[i] - (double)fc[i];
            num += d * d;
            den += (double)fc[i] * (double)fc[i];
        }
    } else {
        num = NAN;
    }
    free(fg);
    free(fc);
    double rel = den > 0 ? sqrt(num / den) : NAN;

    double ms = median(t, rc->iters), cms = median(tc, rc->iters);
    double flops = 0;
    if (c->mode == M_ONE_LAYER) flops = job_flops(&plan->jobs[big_job]);
    else
        for (size_t j = 0; j < plan->n_jobs; j++) flops += job_flops(&plan->jobs[j]);
    lf_sb_printf(b, ",\"jobs_rewritten\":%zu,\"tiles\":%zu,\"launches\":%zu,\"iters\":%d", ast.jobs_rewritten,
                 ast.tiles, ast.launches, rc->iters);
    jnum(b, "ms", ms, "%.4f");
    jnum(b, "ms_min", t[0], "%.4f");
    jnum(b, "ms_max", t[rc->iters - 1], "%.4f");
    jnum(b, "enqueue_ms", median(enq, rc->iters), "%.4f");
    jnum(b, "wall_ms", median(wall, 5), "%.4f");
    lf_sb_printf(b, ",\"bytes\":%.0f,\"bytes_weights\":%llu,\"bytes_factors\":%llu,\"bytes_upload\":%llu", bytes,
                 (unsigned long long)ast.bytes_weights, (unsigned long long)ast.bytes_factors,
                 (unsigned long long)ast.bytes_upload);
    jnum(b, "gbps", bytes / (ms * 1e6), "%.1f");
    jnum(b, "flops", flops, "%.0f");
    jnum(b, "tflops", flops / (ms * 1e9), "%.2f");
    jnum(b, "copy_ms", cms, "%.4f");
    jnum(b, "copy_gbps", 2.0 * (double)half / (cms * 1e6), "%.1f");
    jnum(b, "ratio_to_copy", ms / cms, "%.3f");
    jnum(b, "frac_of_copy_bw", cms / ms, "%.3f");
    if (c->target_ms > 0) {
        jnum(b, "target_ms", c->target_ms, "%.2f");
        lf_sb_printf(b, ",\"target_met\":%s", ms <= c->target_ms ? "true" : "false");
    }
    lf_sb_printf(b, ",\"check_job\":\"%s\"", tt->name);
    jnum(b, "check_rel_l2", rel, "%.3e");
    lf_sb_printf(b, ",\"check_ok\":%s", isfinite(rel) && rel <= 2e-3 ? "true" : "false");
    uint64_t devb = 0, pinb = 0;
    lf_dev_memory(dm, &devb, &pinb);
    jnum(b, "device_mib", (double)devb / 1048576.0, "%.0f");
    res->ran = 1;
    res->ms = ms;
    res->frac_of_copy = cms / ms;
    fprintf(stderr, "bench_apply: %-38s %9.4f ms %7.1f GB/s  copy %8.4f ms  x%.2f of copy  check %.1e\n", c->name,
            ms, bytes / (ms * 1e6), cms, ms / cms, rel);
done:
    if (gate) cudaFree(gate);
    if (src) cudaFree(src);
    if (dst) cudaFree(dst);
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    free(t);
    free(tc);
    free(enq);
    free(gpu);
    free(cpu);
    return st;
}
#endif

static int run_case(run_ctx *rc, const bcase *c, synth_model *sm, result *res) {
    memset(res, 0, sizeof *res);
    double t0 = lf_clock_s();
    size_t nad = (size_t)(c->mode == M_SWITCH ? 2 : c->nad);
    synth_adapter ad[8];
    lf_adapter *ap[8];
    float strengths[8];
    lf_plan *plan = NULL;
    lf_dev_model *dm = NULL;
    int rcode = 0;
    lf_status st = LF_OK;
    memset(ad, 0, sizeof ad);
    for (size_t a = 0; a < nad; a++) {
        st = adapter_build(sm, c->locon, c->algo, c->rank, 1000u + 17u * (uint64_t)a + (uint64_t)c->rank, &ad[a]);
        if (st != LF_OK) {
            emit_error(rc, c, "build adapter", st);
            rcode = 1;
            goto out;
        }
        ap[a] = ad[a].a;
        strengths[a] = (c->mode == M_SWITCH && a == 1) ? 0.0f : 1.0f;
    }
    lf_plan_opts po;
    memset(&po, 0, sizeof po);
    po.allow_family = 1;
    st = lf_plan_build(sm->m, ap, strengths, nad, &po, &plan);
    if (st != LF_OK) {
        emit_error(rc, c, "lf_plan_build", st);
        rcode = 1;
        goto out;
    }
    size_t big_job = 0, patches = 0;
    uint64_t wbytes = 0, felems = 0;
    for (size_t j = 0; j < plan->n_jobs; j++) {
        const lf_st_tensor *t = plan->jobs[j].target;
        if (t->end - t->begin > plan->jobs[big_job].target->end - plan->jobs[big_job].target->begin) big_job = j;
        patches += plan->jobs[j].n_patches;
        wbytes += t->end - t->begin;
        felems += factor_elems(&plan->jobs[j]);
    }
    lf_sbuf b = {0};
    lf_sb_printf(&b,
                 "{\"bench\":\"apply\",\"case\":\"%s\",\"model\":\"%s\",\"coverage\":\"%s\",\"algo\":\"%s\","
                 "\"rank\":%d,\"adapters\":%zu,\"mode\":\"%s\",\"dtype\":\"f16\",\"jobs\":%zu,\"patches\":%zu,"
                 "\"weight_bytes\":%llu,\"factor_elems\":%llu",
                 c->name, sm->name, c->locon ? "locon" : "kohya", algo_str(c->algo), c->rank, nad, mode_str(c->mode),
                 plan->n_jobs, patches, (unsigned long long)wbytes, (unsigned long long)felems);
    if (rc->dry_run) {
        double flops = 0;
        for (size_t j = 0; j < plan->n_jobs; j++) flops += job_flops(&plan->jobs[j]);
        /* the CPU reference must accept the synthetic factors: patch the smallest job */
        size_t cj = 0;
        for (size_t j = 1; j < plan->n_jobs; j++)
            if (plan->jobs[j].target->end - plan->jobs[j].target->begin <
                plan->jobs[cj].target->end - plan->jobs[cj].target->begin)
                cj = j;
        void *tmp = xmalloc((size_t)(plan->jobs[cj].target->end - plan->jobs[cj].target->begin));
        st = lf_job_apply(&plan->jobs[cj], 0, tmp);
        free(tmp);
        if (st != LF_OK) {
            lf_sb_free(&b);
            emit_error(rc, c, "lf_job_apply (CPU reference)", st);
            rcode = 1;
            goto out;
        }
        lf_sb_printf(&b, ",\"dry_run\":true,\"cpu_ref_job\":\"%s\",\"bytes_min\":%llu", plan->jobs[cj].target->name,
                     (unsigned long long)(2 * wbytes + 4 * felems));
        jnum(&b, "flops", flops, "%.0f");
        jnum(&b, "setup_s", lf_clock_s() - t0, "%.2f");
        emit(rc, &b);
        fprintf(stderr, "bench_apply: %-38s dry run: %zu jobs, %.2f GB of weights, setup %.2f s\n", c->name,
                plan->n_jobs, (double)wbytes / 1e9, lf_clock_s() - t0);
        goto out;
    }
#if LF_HAVE_CUDA
    {
        lf_dev_opts o;
        lf_dev_opts_default(&o);
        st = lf_dev_model_create_plan(rc->dev, plan, &o, &dm);
        if (st != LF_OK) {
            lf_sb_free(&b);
            emit_error(rc, c, "lf_dev_model_create_plan", st);
            rcode = 1;
            goto out;
        }
        lf_sb_printf(&b, ",\"device\":\"%s\"", rc->device_name);
        jnum(&b, "setup_s", lf_clock_s() - t0, "%.2f");
        st = time_case(rc, c, plan, dm, nad, big_job, &b, res);
        if (st != LF_OK) {
            lf_sb_free(&b);
            emit_error(rc, c, "timing", st);
            rcode = 1;
            goto out;
        }
        emit(rc, &b);
    }
#else
    lf_sb_free(&b);
#endif
out:
    if (dm) lf_dev_model_free(dm);
    lf_plan_free(plan);
    for (size_t a = 0; a < nad; a++) adapter_free(&ad[a]);
    return rcode;
}

/* ---- main ------------------------------------------------------------------------------------ */

static int selected(const bcase *c, const char *filter, int quick) {
    if (quick && !c->quick) return 0;
    if (!filter || !*filter) return 1;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", filter);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        if (*tok && strstr(c->name, tok)) return 1;
    return 0;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: lf_bench_apply [--json FILE] [--filter S1,S2] [--iters N] [--warmup N] [--budget SEC]\n"
            "                      [--quick] [--list] [--dry-run] [--data DIR]\n"
            "  JSON lines go to stdout (or FILE), progress to stderr. --dry-run builds the synthetic models,\n"
            "  adapters and plans on the host only (no device). See bench/README.md.\n");
}

int main(int argc, char **argv) {
    const char *json = NULL, *filter = NULL, *data = NULL;
    int iters = 25, warmup = 3, quick = 0, list = 0, dry = 0;
    double budget = 150;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json") && v) json = argv[++i];
        else if (!strcmp(a, "--filter") && v) filter = argv[++i];
        else if (!strcmp(a, "--iters") && v) iters = atoi(argv[++i]);
        else if (!strcmp(a, "--warmup") && v) warmup = atoi(argv[++i]);
        else if (!strcmp(a, "--budget") && v) budget = atof(argv[++i]);
        else if (!strcmp(a, "--data") && v) data = argv[++i];
        else if (!strcmp(a, "--quick")) quick = 1;
        else if (!strcmp(a, "--list")) list = 1;
        else if (!strcmp(a, "--dry-run")) dry = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "bench_apply: unknown or incomplete argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (iters < 20) iters = 20; /* the targets are medians of >= 20 runs */
    if (warmup < 1) warmup = 1;
    if (list) {
        for (size_t i = 0; i < N_CASES; i++)
            if (selected(&g_cases[i], filter, quick)) printf("%s\n", g_cases[i].name);
        return 0;
    }
    FILE *out = stdout;
    if (json && !(out = fopen(json, "w"))) {
        fprintf(stderr, "bench_apply: cannot write %s: %s\n", json, strerror(errno));
        return 2;
    }
    run_ctx rc;
    memset(&rc, 0, sizeof rc);
    rc.out = out;
    rc.iters = iters;
    rc.warmup = warmup;
    rc.dry_run = dry;
    rc.device_name = "";
#if !LF_HAVE_CUDA
    if (!dry) {
        fprintf(out, "{\"bench\":\"apply\",\"skipped\":\"built without CUDA (LF_CUDA=OFF or no nvcc)\"}\n");
        fprintf(stderr, "bench_apply: skipped: this build has no CUDA backend\n");
        if (out != stdout) fclose(out);
        return 0;
    }
#else
    cudaStream_t stream = NULL;
    if (!dry) {
        lf_status st = lf_device_open(0, &rc.dev);
        if (st != LF_OK) {
            char msg[768];
            json_clean(lf_last_error(), msg, sizeof msg);
            fprintf(out, "{\"bench\":\"apply\",\"skipped\":\"no usable device: %s\"}\n", msg);
            fprintf(stderr, "bench_apply: skipped: no usable device: %s\n", lf_last_error());
            if (out != stdout) fclose(out);
            return 77;
        }
        static char devname[512];
        json_clean(lf_device_describe(rc.dev), devname, sizeof devname);
        rc.device_name = devname;
        cudaError_t ce = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
        if (ce != cudaSuccess) {
            fprintf(stderr, "bench_apply: cudaStreamCreateWithFlags: %s\n", cudaGetErrorString(ce));
            lf_device_close(rc.dev);
            if (out != stdout) fclose(out);
            return 1;
        }
        rc.stream = stream;
        fprintf(stderr, "bench_apply: device %s\n", rc.device_name);
    }
#endif
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    g_threads = nproc < 1 ? 1 : nproc > 16 ? 16 : (int)nproc;

    synth_model models[2];
    memset(models, 0, sizeof models);
    models[0].name = "sd15";
    models[0].version = "sd_v1";
    models[1].name = "sdxl";
    models[1].version = "sdxl_base_v1-0";
    const char *files[2] = {"sd15_modules.tsv", "sdxl_modules.tsv"};
    const char *env = getenv("LF_DATA_DIR");
    const char *dirs[4] = {data, env, "tests/data", LF_SOURCE_DIR "/tests/data"};

    double start = lf_clock_s();
    int fails = 0, skipped = 0;
    result res[N_CASES];
    memset(res, 0, sizeof res);
    for (size_t i = 0; i < N_CASES; i++) {
        const bcase *c = &g_cases[i];
        if (!selected(c, filter, quick)) continue;
        if (lf_clock_s() - start > budget) {
            fprintf(out, "{\"bench\":\"apply\",\"case\":\"%s\",\"skipped\":\"time budget of %.0f s used up\"}\n",
                    c->name, budget);
            skipped++;
            continue;
        }
        synth_model *sm = &models[c->model];
        if (!sm->m) {
            /* the other model is not needed while this one is in use: cases are grouped loosely, so
             * keep both (at most 1.7 + 5.1 GB of host memory) */
            int found = 0;
            for (int d = 0; d < 4 && !found; d++)
                if (dirs[d] && read_table(dirs[d], files[c->model], &sm->tab) == 0) found = 1;
            if (!found) {
                fprintf(stderr, "bench_apply: cannot read %s (pass --data DIR or run from the source tree)\n",
                        files[c->model]);
                fails++;
                break;
            }
            double t0 = lf_clock_s();
            lf_status st = model_build(sm, 42u + (uint64_t)c->model);
            if (st != LF_OK) {
                fprintf(stderr, "bench_apply: building the %s model: %s\n", sm->name, lf_last_error());
                fails++;
                break;
            }
            fprintf(stderr, "bench_apply: %s model: %zu weights, %.2f GB f16, family %s, built in %.1f s\n",
                    sm->name, sm->tab.n, (double)sm->img.size / 1e9, lf_family_name(sm->m->family), lf_clock_s() - t0);
        }
        fails += run_case(&rc, c, sm, &res[i]);
    }

    /* time targets */
    lf_sbuf b = {0};
    lf_sb_printf(&b, "{\"bench\":\"apply_summary\",\"dry_run\":%s,\"failed_cases\":%d,\"skipped_cases\":%d",
                 dry ? "true" : "false", fails, skipped);
    const char *one[2] = {"sd15_kohya_lora_r32_x1", "sdxl_kohya_lora_r32_x1"};
    const char *eight[2] = {"sd15_kohya_lora_r32_x8", "sdxl_kohya_lora_r32_x8"};
    double tgt[2] = {0.6, 4.0};
    for (int m = 0; m < 2; m++) {
        const result *r1 = NULL, *r8 = NULL;
        for (size_t i = 0; i < N_CASES; i++) {
            if (!strcmp(g_cases[i].name, one[m]) && res[i].ran) r1 = &res[i];
            if (!strcmp(g_cases[i].name, eight[m]) && res[i].ran) r8 = &res[i];
        }
        char key[64];
        if (r1) {
            snprintf(key, sizeof key, "%s_r32_ms", models[m].name);
            jnum(&b, key, r1->ms, "%.4f");
            lf_sb_printf(&b, ",\"%s_r32_target_met\":%s", models[m].name, r1->ms <= tgt[m] ? "true" : "false");
        }
        if (r1 && r8) {
            snprintf(key, sizeof key, "%s_x8_over_x1", models[m].name);
            jnum(&b, key, r8->ms / r1->ms, "%.3f");
            lf_sb_printf(&b, ",\"%s_x8_target_met\":%s", models[m].name, r8->ms <= 1.3 * r1->ms ? "true" : "false");
        }
    }
    double worst = INFINITY;
    for (size_t i = 0; i < N_CASES; i++) {
        const bcase *c = &g_cases[i];
        if (res[i].ran && c->algo == A_LORA && c->rank <= 64 && c->mode == M_APPLY && c->nad == 1 &&
            res[i].frac_of_copy < worst)
            worst = res[i].frac_of_copy;
    }
    if (isfinite(worst)) {
        jnum(&b, "min_frac_of_copy_bw_r_le_64", worst, "%.3f");
        lf_sb_printf(&b, ",\"copy_bw_target_met\":%s", worst >= 0.75 ? "true" : "false");
    }
    jnum(&b, "total_s", lf_clock_s() - start, "%.1f");
    emit(&rc, &b);

    for (int m = 0; m < 2; m++) {
        model_free(&models[m]);
        free_table(&models[m].tab);
    }
#if LF_HAVE_CUDA
    if (stream) cudaStreamDestroy(stream);
    if (rc.dev) lf_device_close(rc.dev);
#endif
    if (out != stdout) fclose(out);
    return fails ? 1 : 0;
}
