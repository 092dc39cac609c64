/* adapter_cases.c: the adapter case registry and comparator of adapter_cases.h: the synthetic case
 * table, the module builders per algorithm, the golden-file reader, the iterator over both and the
 * one comparison with per-dtype bounds.
 */
#include "adapter_cases.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/base/util.h"
#include "kernels/common/lf_half.h"
#include "lf_test_data.h"
#include "lorafuse/lf_safetensors.h"

#define BIT(r) (1u << (r))

static const char *const ALGO_NAMES[LF_CA_COUNT] = {
    "lora", "lora_tucker", "loha", "loha_tucker", "lokr", "lokr_tucker", "dora_out", "dora_in", "dora_loha",
    "glora", "oft", "oft_legacy", "boft", "ia3_out", "ia3_in", "full", "norm", "mixed"};

typedef struct {
    int ndim;
    int64_t O, I, kh, kw;
} layer_def;

static const layer_def LAYERS[LF_CL_COUNT] = {
    {2, 77, 45, 1, 1}, {2, 128, 256, 1, 1}, {4, 64, 32, 1, 1}, {4, 40, 24, 3, 3}, {1, 77, 1, 1, 1},
};

/* The synthetic table. Ranks: LoRA and DoRA-out sweep 1..128, the other ranked algorithms 4 and 16;
 * adapters per weight n_lo..n_hi (several LoRAs, or LoRA + LoHa + IA3 for "mixed"). */
static const int RANKS_WIDE[] = {1, 4, 16, 64, 128}, RANKS_TWO[] = {4, 16}, RANKS_NONE[] = {0};
static const struct {
    const int *ranks;
    int n_ranks, n_lo, n_hi;
} ALGOS[LF_CA_COUNT] = {
    [LF_CA_LORA] = {RANKS_WIDE, 5, 1, 3},       [LF_CA_LORA_TUCKER] = {RANKS_TWO, 2, 1, 2},
    [LF_CA_LOHA] = {RANKS_TWO, 2, 1, 2},        [LF_CA_LOHA_TUCKER] = {RANKS_TWO, 2, 1, 2},
    [LF_CA_LOKR] = {RANKS_TWO, 2, 1, 2},        [LF_CA_LOKR_TUCKER] = {RANKS_TWO, 2, 1, 2},
    [LF_CA_DORA_OUT] = {RANKS_WIDE, 5, 1, 2},   [LF_CA_DORA_IN] = {RANKS_TWO, 2, 1, 2},
    [LF_CA_DORA_LOHA] = {RANKS_TWO, 2, 1, 2},   [LF_CA_GLORA] = {RANKS_TWO, 2, 1, 2},
    [LF_CA_OFT] = {RANKS_NONE, 1, 1, 2},        [LF_CA_OFT_LEGACY] = {RANKS_NONE, 1, 1, 2},
    [LF_CA_BOFT] = {RANKS_NONE, 1, 1, 2},       [LF_CA_IA3_OUT] = {RANKS_NONE, 1, 1, 2},
    [LF_CA_IA3_IN] = {RANKS_NONE, 1, 1, 2},     [LF_CA_FULL] = {RANKS_NONE, 1, 1, 2},
    [LF_CA_NORM] = {RANKS_NONE, 1, 1, 2},       [LF_CA_MIXED] = {RANKS_TWO, 2, 3, 3},
};
enum { SYN_MAX_ADAPTERS = 3 };
static const lf_dtype DTYPES[] = {LF_F32, LF_F16, LF_BF16};
/* Strength 1 runs over the whole product; 0 (must give W0's bytes) and -2 (negative, past 1) over
 * the odd Linear, the 3x3 conv and the norm vector with the first rank and the fewest adapters. */
static const float STRENGTHS[] = {1.0f, 0.0f, -2.0f};

const char *lf_case_algo_name(lf_case_algo a) { return a < LF_CA_COUNT ? ALGO_NAMES[a] : "?"; }

static void layer_name_of(int ndim, const int64_t *s, char *out, size_t size) {
    if (ndim == 1) snprintf(out, size, "vec%lld", (long long)s[0]);
    else if (ndim == 2) snprintf(out, size, "lin%lldx%lld", (long long)s[0], (long long)s[1]);
    else if (ndim == 4)
        snprintf(out, size, "c%lldx%lld_%lldx%lld", (long long)s[2], (long long)s[3], (long long)s[0], (long long)s[1]);
    else snprintf(out, size, "%dd", ndim);
}

const char *lf_case_layer_name(lf_case_layer l) {
    static char names[LF_CL_COUNT][40];
    if (l >= LF_CL_COUNT) return "?";
    if (!names[l][0]) {
        const layer_def *d = &LAYERS[l];
        int64_t s[4] = {d->O, d->I, d->kh, d->kw};
        layer_name_of(d->ndim, s, names[l], sizeof names[l]);
    }
    return names[l];
}

/* ---- owned memory ------------------------------------------------------------------------------ */

static void oom(void) {
    fprintf(stderr, "adapter_cases: out of memory\n");
    exit(2);
}

static void *case_alloc(lf_case *c, size_t bytes) {
    if (c->n_mem == (int)(sizeof c->mem / sizeof c->mem[0])) {
        fprintf(stderr, "adapter_cases: %s: too many allocations\n", c->name);
        exit(2);
    }
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) oom();
    return c->mem[c->n_mem++] = p;
}

void lf_case_free(lf_case *c) {
    for (int i = 0; i < c->n_mem; i++) free(c->mem[i]);
    for (int i = 0; i < c->n_open; i++) lf_adapter_free(c->adapters[i]);
    c->n_mem = c->n_open = 0;
}

size_t lf_case_bytes(const lf_case *c) { return (size_t)(c->target.end - c->target.begin); }

int lf_case_all_zero(const lf_case *c) {
    for (size_t i = 0; i < c->job.n_patches; i++)
        if (c->patches[i].coef != 0.0f) return 0;
    return 1;
}

/* ---- synthetic modules ------------------------------------------------------------------------- */

/* n elements of dt, U(lo, hi) */
static void *rnd_data(lf_case *c, lf_test_rng *g, int64_t n, lf_dtype dt, float lo, float hi) {
    float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
    if (!f) oom();
    void *d = case_alloc(c, (size_t)n * (lf_dtype_bits(dt) / 8));
    for (int64_t i = 0; i < n; i++) f[i] = lf_test_rng_uniform(g, lo, hi);
    if (lf_f32_to_dtype(f, n, dt, d) != LF_OK) {
        fprintf(stderr, "adapter_cases: conversion to %s failed\n", lf_dtype_name(dt));
        exit(2);
    }
    free(f);
    return d;
}

/* a random factor with the given shape (ndim 1..4) */
static void set_rnd(lf_case *c, lf_test_rng *g, lf_module *m, lf_role r, lf_dtype dt, float amp, int ndim, int64_t s0,
                    int64_t s1, int64_t s2, int64_t s3) {
    int64_t n = s0 * (ndim > 1 ? s1 : 1) * (ndim > 2 ? s2 : 1) * (ndim > 3 ? s3 : 1);
    lf_test_set_role(m, r, lf_test_view(rnd_data(c, g, n, dt, -amp, amp), dt, ndim, s0, s1, s2, s3));
}

static void set_scalar(lf_case *c, lf_module *m, lf_role r, float v) {
    float *x = case_alloc(c, sizeof *x);
    *x = v;
    lf_test_set_role(m, r, lf_test_view(x, LF_F32, 0, 0, 0, 0, 0));
}

static int64_t smallest_divisor_ge(int64_t n, int64_t lo) {
    for (int64_t d = lo; d <= n; d++)
        if (n % d == 0) return d;
    return n;
}

/* One module of `algo` for layer L and rank r with factors in fdt (`which`: the adapter's index, for
 * "mixed"). Returns 0, or 1 when the algorithm does not apply to the layer. */
static int build_module(lf_case *c, lf_test_rng *g, lf_module *m, lf_case_algo algo, const layer_def *L, int r,
                        lf_dtype fdt, int which) {
    memset(m, 0, sizeof *m);
    m->name = "case";
    int64_t O = L->O, I = L->I, khw = L->kh * L->kw, K = I * khw;
    int conv = L->ndim == 4;
    float famp = 1.0f / sqrtf(sqrtf((float)(r > 0 ? r : 1)));
    if ((L->ndim == 1) != (algo == LF_CA_NORM)) return 1;
    switch (algo) {
    case LF_CA_MIXED:
        return build_module(c, g, m, which == 0 ? LF_CA_LORA : which == 1 ? LF_CA_LOHA : LF_CA_IA3_OUT, L, r, fdt, 0);
    case LF_CA_LORA:
    case LF_CA_DORA_OUT:
    case LF_CA_DORA_IN:
        if (conv) {
            set_rnd(c, g, m, LF_R_DOWN, fdt, famp, 4, r, I, L->kh, L->kw);
            set_rnd(c, g, m, LF_R_UP, fdt, famp, 4, O, r, 1, 1);
        } else {
            set_rnd(c, g, m, LF_R_DOWN, fdt, famp, 2, r, I, 0, 0);
            set_rnd(c, g, m, LF_R_UP, fdt, famp, 2, O, r, 0, 0);
        }
        set_scalar(c, m, LF_R_ALPHA, (float)r * 0.5f);
        if (algo == LF_CA_DORA_OUT) set_rnd(c, g, m, LF_R_DORA, fdt, 1.5f, 2, O, 1, 0, 0);
        if (algo == LF_CA_DORA_IN) set_rnd(c, g, m, LF_R_DORA, fdt, 1.5f, conv ? 4 : 2, 1, I, 1, 1);
        break;
    case LF_CA_LORA_TUCKER:
        if (!conv || khw == 1) return 1;
        set_rnd(c, g, m, LF_R_DOWN, fdt, famp, 4, r, I, 1, 1);
        set_rnd(c, g, m, LF_R_MID, fdt, famp, 4, r, r, L->kh, L->kw);
        set_rnd(c, g, m, LF_R_UP, fdt, famp, 4, O, r, 1, 1);
        set_scalar(c, m, LF_R_ALPHA, (float)r);
        break;
    case LF_CA_LOHA:
    case LF_CA_DORA_LOHA:
        set_rnd(c, g, m, LF_R_HW1A, fdt, famp, 2, O, r, 0, 0);
        set_rnd(c, g, m, LF_R_HW1B, fdt, famp, 2, r, K, 0, 0);
        set_rnd(c, g, m, LF_R_HW2A, fdt, famp, 2, O, r, 0, 0);
        set_rnd(c, g, m, LF_R_HW2B, fdt, famp, 2, r, K, 0, 0);
        set_scalar(c, m, LF_R_ALPHA, (float)r);
        if (algo == LF_CA_DORA_LOHA) set_rnd(c, g, m, LF_R_DORA, fdt, 1.5f, conv ? 4 : 2, O, 1, 1, 1);
        break;
    case LF_CA_LOHA_TUCKER:
        if (!conv || khw == 1) return 1;
        set_rnd(c, g, m, LF_R_HW1A, fdt, famp, 2, r, O, 0, 0);
        set_rnd(c, g, m, LF_R_HW1B, fdt, famp, 2, r, I, 0, 0);
        set_rnd(c, g, m, LF_R_HW2A, fdt, famp, 2, r, O, 0, 0);
        set_rnd(c, g, m, LF_R_HW2B, fdt, famp, 2, r, I, 0, 0);
        set_rnd(c, g, m, LF_R_HT1, fdt, famp, 4, r, r, L->kh, L->kw);
        set_rnd(c, g, m, LF_R_HT2, fdt, famp, 4, r, r, L->kh, L->kw);
        set_scalar(c, m, LF_R_ALPHA, (float)r);
        break;
    case LF_CA_LOKR:
    case LF_CA_LOKR_TUCKER: {
        /* O = ka*kb, I = kc*kd */
        int64_t ka = smallest_divisor_ge(O, 4), kb = O / ka, kc = smallest_divisor_ge(I, 3), kd = I / kc;
        if (ka == O && O > 8) ka = 1, kb = O;
        if (algo == LF_CA_LOKR_TUCKER && (!conv || khw == 1)) return 1;
        set_rnd(c, g, m, LF_R_KW1, fdt, 1.0f, 2, ka, kc, 0, 0);
        if (algo == LF_CA_LOKR_TUCKER) {
            set_rnd(c, g, m, LF_R_KW2A, fdt, famp, 2, r, kb, 0, 0);
            set_rnd(c, g, m, LF_R_KW2B, fdt, famp, 2, r, kd, 0, 0);
            set_rnd(c, g, m, LF_R_KT2, fdt, famp, 4, r, r, L->kh, L->kw);
        } else {
            set_rnd(c, g, m, LF_R_KW2A, fdt, famp, 2, kb, r, 0, 0);
            set_rnd(c, g, m, LF_R_KW2B, fdt, famp, 2, r, kd * khw, 0, 0);
        }
        set_scalar(c, m, LF_R_ALPHA, (float)r);
        break;
    }
    case LF_CA_GLORA:
        set_rnd(c, g, m, LF_R_GA1, fdt, 0.3f, 2, I, r, 0, 0);
        set_rnd(c, g, m, LF_R_GA2, fdt, 0.3f, 2, r, I, 0, 0);
        set_rnd(c, g, m, LF_R_GB1, fdt, famp, 2, O, r, 0, 0);
        set_rnd(c, g, m, LF_R_GB2, fdt, famp, conv ? 4 : 2, r, I, L->kh, L->kw);
        set_scalar(c, m, LF_R_ALPHA, (float)r);
        break;
    case LF_CA_OFT:
    case LF_CA_OFT_LEGACY: {
        int64_t b = smallest_divisor_ge(O, 4);
        if (b > 16) return 1;
        set_rnd(c, g, m, algo == LF_CA_OFT ? LF_R_OFT_BLOCKS : LF_R_OFT_DIAG, fdt, 0.2f, 3, O / b, b, b, 0);
        if (algo == LF_CA_OFT) set_rnd(c, g, m, LF_R_RESCALE, fdt, 1.2f, 2, O, 1, 0, 0);
        break;
    }
    case LF_CA_BOFT: {
        /* O = nb * b with nb a power of two, b even */
        int64_t nb = 1;
        while ((O % (nb * 2)) == 0 && (O / (nb * 2)) % 2 == 0 && O / (nb * 2) >= 4) nb *= 2;
        int64_t b = O / nb;
        if (nb < 2 || b % 2) return 1;
        int64_t nm = nb >= 4 ? 2 : 1;
        set_rnd(c, g, m, LF_R_OFT_BLOCKS, fdt, 0.2f, 4, nm, nb, b, b);
        set_rnd(c, g, m, LF_R_RESCALE, fdt, 1.2f, 2, O, 1, 0, 0);
        break;
    }
    case LF_CA_IA3_OUT:
    case LF_CA_IA3_IN: {
        int in = algo == LF_CA_IA3_IN;
        set_rnd(c, g, m, LF_R_IA3_W, fdt, 0.5f, 1, in ? I : O, 0, 0, 0);
        set_scalar(c, m, LF_R_ON_INPUT, (float)in);
        break;
    }
    case LF_CA_FULL:
        set_rnd(c, g, m, LF_R_DIFF, fdt, 0.3f, L->ndim, O, I, L->kh, L->kw);
        break;
    case LF_CA_NORM:
        set_rnd(c, g, m, LF_R_W_NORM, fdt, 0.3f, 1, O, 0, 0, 0);
        break;
    default: return 1;
    }
    /* DoRA magnitudes must be positive */
    if (m->present & BIT(LF_R_DORA)) {
        lf_view *v = &m->t[LF_R_DORA];
        int64_t n = lf_view_numel(v);
        float *f = malloc((size_t)n * sizeof *f);
        if (!f) oom();
        lf_view_to_f32(v, f);
        for (int64_t i = 0; i < n; i++) f[i] = fabsf(f[i]) + 0.25f;
        lf_f32_to_dtype(f, n, v->dtype, (void *)v->data);
        free(f);
    }
    lf_view w = lf_test_view(NULL, LF_F32, L->ndim, L->O, L->I, L->kh, L->kw);
    if (lf_module_resolve(m, &w) != LF_OK) {
        fprintf(stderr, "adapter_cases: module build (%s, rank %d): %s\n", c->name, r, lf_last_error());
        exit(2);
    }
    return 0;
}

static void spec_name(const lf_case_spec *s, char *out, size_t size) {
    int k = snprintf(out, size, "%s/%s/%s/r%d/n%d", lf_case_algo_name(s->algo), lf_dtype_name(s->dtype),
                     lf_case_layer_name(s->layer), s->rank, s->n_adapters);
    if (s->strength != 1.0f && k > 0 && (size_t)k < size)
        snprintf(out + k, size - (size_t)k, "/s%g", (double)s->strength);
}

int lf_case_build(const lf_case_spec *s, uint64_t seed, lf_case *c) {
    memset(c, 0, sizeof *c);
    spec_name(s, c->name, sizeof c->name);
    const layer_def *L = &LAYERS[s->layer];
    lf_test_rng g;
    lf_test_rng_seed(&g, lf_test_seed_mix(seed, c->name));
    c->algo = lf_case_algo_name(s->algo);
    snprintf(c->layer, sizeof c->layer, "%s", lf_case_layer_name(s->layer));
    c->rank = s->rank;
    c->n_adapters = s->n_adapters;
    c->strength = s->strength;
    c->spec = "";
    c->target.name = c->name;
    c->target.dtype = s->dtype;
    c->target.ndim = L->ndim;
    c->target.shape[0] = L->O;
    c->target.shape[1] = L->I;
    c->target.shape[2] = L->kh;
    c->target.shape[3] = L->kw;
    int64_t n = L->O * (L->ndim > 1 ? L->I * L->kh * L->kw : 1);
    c->target.end = (uint64_t)n * (lf_dtype_bits(s->dtype) / 8);
    c->target.data = rnd_data(c, &g, n, s->dtype, -1.0f, 1.0f);
    for (int i = 0; i < s->n_adapters; i++) {
        lf_patch *p = &c->patches[i];
        /* factors in the weight's dtype family, so the device upload converts them */
        if (build_module(c, &g, &p->mod, s->algo, L, s->rank, s->dtype, i)) {
            lf_case_free(c);
            return 1;
        }
        p->adapter = (size_t)i;
        p->coef = s->strength * lf_test_rng_uniform(&g, 0.3f, 1.2f) * (i == 1 ? -1.0f : 1.0f);
    }
    c->job.target = &c->target;
    c->job.patches = c->patches;
    c->job.n_patches = (size_t)s->n_adapters;
    return 0;
}

/* ---- golden cases ------------------------------------------------------------------------------ */

__attribute__((format(printf, 2, 3))) static void case_error(lf_case *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof c->error, fmt, ap);
    va_end(ap);
}

/* "<file>@<s>,<file>@<s>": up to LF_CASE_MAX_PATCHES parts; returns the count, 0 if malformed. */
static int parse_scenario(const char *spec, char files[][256], float *s) {
    int np = 0;
    for (const char *p = spec; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *at = memchr(p, '@', len);
        if (!at || np >= LF_CASE_MAX_PATCHES || (size_t)(at - p) >= 256) return 0;
        memcpy(files[np], p, (size_t)(at - p));
        files[np][at - p] = '\0';
        char num[64], *end;
        size_t nl = len - (size_t)(at - p) - 1;
        if (nl >= sizeof num) return 0;
        memcpy(num, at + 1, nl);
        num[nl] = '\0';
        s[np] = strtof(num, &end);
        if (end == num || *end) return 0;
        np++;
        p = comma ? comma + 1 : p + len;
    }
    return np;
}

/* Scenario k, tensor W (bias = 0) or b (bias = 1) of the open expect file f: target t0, result tk. */
static void golden_build(lf_case *c, const lf_st_file *f, const char *spec, const lf_st_tensor *t0,
                         const lf_st_tensor *tk, int bias) {
    c->golden = 1;
    c->spec = spec;
    c->target = *t0;
    c->target.name = c->name;
    layer_name_of(t0->ndim, t0->shape, c->layer, sizeof c->layer);
    c->algo = "?";
    lf_view v0 = lf_st_view(t0), vk = lf_st_view(tk), wv = v0;
    const lf_st_tensor *w0 = lf_st_find(f, "W0");
    if (w0) wv = lf_st_view(w0);
    if (vk.dtype != v0.dtype || lf_view_numel(&vk) != lf_view_numel(&v0)) {
        case_error(c, "%s: dtype/shape differs from %s", tk->name, t0->name);
        return;
    }
    c->expect = tk->data;
    char files[LF_CASE_MAX_PATCHES][256];
    float s[LF_CASE_MAX_PATCHES];
    int np = parse_scenario(spec, files, s);
    if (!np) {
        case_error(c, "cannot parse scenario '%s'", spec);
        return;
    }
    c->n_adapters = np;
    c->strength = s[0];
    size_t n = 0;
    for (int i = 0; i < np; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", LF_CASES_GOLDEN_DIR, files[i]);
        lf_adapter *a = NULL;
        if (lf_adapter_open(path, &a) != LF_OK) {
            case_error(c, "open %s: %s", path, lf_last_error());
            return;
        }
        c->adapters[c->n_open++] = a;
        const lf_module *found = lf_adapter_find(a, "lf_layer");
        if (!found) {
            case_error(c, "%s has no module lf_layer", path);
            return;
        }
        /* as lf_plan_build: resolved against the weight; a bias patch only where there is a bias delta */
        lf_patch *p = &c->patches[n];
        memset(p, 0, sizeof *p);
        p->mod = *found;
        p->adapter = (size_t)i;
        p->coef = s[i];
        p->bias = bias;
        if (lf_module_resolve(&p->mod, &wv) != LF_OK) {
            case_error(c, "resolve %s against W0: %s", path, lf_last_error());
            return;
        }
        if (i == 0) c->algo = lf_algo_name(p->mod.algo);
        if (i == 0 && p->mod.rank) c->rank = p->mod.rank;
        int wants_bias = (p->mod.present & BIT(LF_R_DIFF_B)) || (p->mod.present & BIT(LF_R_B_NORM));
        if (!bias || wants_bias) n++;
    }
    c->job.target = &c->target;
    c->job.patches = c->patches;
    c->job.n_patches = n;
}

/* ---- iterator ---------------------------------------------------------------------------------- */

struct lf_case_iter {
    lf_case_sel sel;
    lf_case cur;
    int have_cur;
    lf_case_counts counts;
    /* synthetic position: strength, algo, dtype, layer, rank, adapters (odometer) */
    int syn_done, si, ai, di, li, ri, ni;
    /* golden position */
    int gold_started, gold_done;
    char **names;
    size_t n_names, fi, file_counted; /* file_counted: 1 + the last file that gave a case */
    lf_st_file *f;
    int k, part; /* scenario, 0 W / 1 b */
};

lf_case_iter *lf_cases_begin(const lf_case_sel *sel) {
    lf_case_iter *it = calloc(1, sizeof *it);
    if (!it) oom();
    it->sel = *sel;
    it->syn_done = !(sel->sources & LF_CASES_SYNTH);
    it->gold_done = !(sel->sources & LF_CASES_GOLDEN);
    return it;
}

static int matches(const lf_case_iter *it, const char *name) {
    return !it->sel.filter || strstr(name, it->sel.filter) != NULL;
}

/* Whether the odometer position is in the list (before any build). */
static int syn_listed(const lf_case_iter *it, lf_case_spec *s) {
    const int quick = it->sel.quick;
    s->algo = (lf_case_algo)it->ai;
    s->layer = (lf_case_layer)it->li;
    s->dtype = DTYPES[it->di];
    s->strength = STRENGTHS[it->si];
    const int *ranks = ALGOS[it->ai].ranks;
    int n_lo = ALGOS[it->ai].n_lo, n_hi = ALGOS[it->ai].n_hi, n_ranks = ALGOS[it->ai].n_ranks;
    if (quick && ranks != RANKS_NONE) ranks = RANKS_TWO, n_ranks = 2;
    if (it->ri >= n_ranks) return 0;
    s->rank = ranks[it->ri];
    s->n_adapters = it->ni;
    if (s->n_adapters < n_lo || s->n_adapters > n_hi) return 0;
    if (quick && (s->dtype == LF_BF16 || (s->n_adapters > 1 && s->algo != LF_CA_MIXED) || it->si > 0)) return 0;
    if (it->si > 0 && (it->ri > 0 || s->n_adapters != n_lo ||
                       (s->layer != LF_CL_LIN_ODD && s->layer != LF_CL_C3 && s->layer != LF_CL_VEC)))
        return 0;
    return 1;
}

/* Advance the odometer (innermost: adapters, then rank, layer, dtype, algorithm, strength). */
static void syn_step(lf_case_iter *it) {
    if (++it->ni <= SYN_MAX_ADAPTERS) return;
    it->ni = 1;
    if (++it->ri < (int)(sizeof RANKS_WIDE / sizeof RANKS_WIDE[0])) return;
    it->ri = 0;
    if (++it->li < LF_CL_COUNT) return;
    it->li = 0;
    if (++it->di < 3) return;
    it->di = 0;
    if (++it->ai < LF_CA_COUNT) return;
    it->ai = 0;
    if (++it->si < (int)(sizeof STRENGTHS / sizeof STRENGTHS[0])) return;
    it->syn_done = 1;
}

static lf_case *next_synthetic(lf_case_iter *it) {
    if (it->ni == 0) it->ni = 1;
    while (!it->syn_done) {
        lf_case_spec s;
        int listed = syn_listed(it, &s);
        syn_step(it);
        if (!listed) continue;
        char name[160];
        spec_name(&s, name, sizeof name);
        if (!matches(it, name)) continue;
        if (lf_case_build(&s, it->sel.seed, &it->cur)) continue;
        it->have_cur = 1;
        it->counts.synthetic++;
        return &it->cur;
    }
    return NULL;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static const char EXPECT_SUFFIX[] = ".expect.safetensors";

/* an error case named after the fixture (returned whatever the filter) */
__attribute__((format(printf, 3, 4))) static lf_case *golden_error(lf_case_iter *it, const char *what,
                                                                   const char *fmt, ...) {
    memset(&it->cur, 0, sizeof it->cur);
    it->cur.golden = 1;
    snprintf(it->cur.name, sizeof it->cur.name, "golden/%s", what);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->cur.error, sizeof it->cur.error, fmt, ap);
    va_end(ap);
    it->have_cur = 1;
    it->counts.errors++;
    return &it->cur;
}

static void golden_list(lf_case_iter *it) {
    it->gold_started = 1;
    DIR *d = opendir(LF_CASES_GOLDEN_DIR);
    if (!d) return;
    size_t cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        if (l <= strlen(EXPECT_SUFFIX) || !lf_has_suffix(e->d_name, EXPECT_SUFFIX)) continue;
        if (lf_grow(&it->names, &cap, it->n_names + 1)) oom();
        if (!(it->names[it->n_names] = strdup(e->d_name))) oom();
        it->n_names++;
    }
    closedir(d);
    qsort(it->names, it->n_names, sizeof *it->names, cmp_str);
}

static lf_case *next_golden(lf_case_iter *it) {
    if (!it->gold_started) {
        golden_list(it);
        if (!it->n_names) {
            it->gold_done = 1;
            return golden_error(it, "(none)", "no *%s fixtures in %s (run from the source tree)", EXPECT_SUFFIX,
                                LF_CASES_GOLDEN_DIR);
        }
    }
    while (it->fi < it->n_names) {
        const char *fname = it->names[it->fi];
        char base[256];
        snprintf(base, sizeof base, "%.*s", (int)(strlen(fname) - strlen(EXPECT_SUFFIX)), fname);
        if (!it->f) {
            char path[512];
            snprintf(path, sizeof path, "%s/%s", LF_CASES_GOLDEN_DIR, fname);
            it->k = it->part = 0;
            if (lf_st_open(path, &it->f) != LF_OK) {
                it->fi++;
                return golden_error(it, base, "%s: %s", path, lf_last_error());
            }
            if (!lf_st_find(it->f, "W0") || !lf_st_meta(it->f, "scenario.0")) {
                lf_st_close(it->f);
                it->f = NULL;
                it->fi++;
                return golden_error(it, base, "%s: no W0 or no scenario.0 metadata", path);
            }
        }
        char key[32], tname[32];
        snprintf(key, sizeof key, "scenario.%d", it->k);
        const char *spec = lf_st_meta(it->f, key);
        if (!spec) {
            lf_st_close(it->f);
            it->f = NULL;
            it->fi++;
            continue;
        }
        int part = it->part;
        snprintf(tname, sizeof tname, "%s.%d", part ? "b" : "W", it->k);
        if (part) it->k++, it->part = 0;
        else it->part = 1;
        const lf_st_tensor *tk = lf_st_find(it->f, tname), *t0 = lf_st_find(it->f, part ? "b0" : "W0");
        if (part && !tk) continue; /* no bias in this scenario */
        char name[160];
        snprintf(name, sizeof name, "golden/%.120s/%s", base, tname);
        if (!matches(it, name)) continue;
        if (!tk) return golden_error(it, base, "%s has no %s", key, tname);
        if (!t0) return golden_error(it, base, "%s without b0", tname);
        memset(&it->cur, 0, sizeof it->cur);
        snprintf(it->cur.name, sizeof it->cur.name, "%s", name);
        golden_build(&it->cur, it->f, spec, t0, tk, part);
        it->have_cur = 1;
        if (it->cur.error[0]) {
            it->counts.errors++;
        } else {
            it->counts.golden++;
            it->counts.golden_files += it->fi + 1 != it->file_counted;
            it->file_counted = it->fi + 1;
        }
        return &it->cur;
    }
    it->gold_done = 1;
    return NULL;
}

lf_case *lf_cases_next(lf_case_iter *it) {
    if (it->have_cur) lf_case_free(&it->cur);
    it->have_cur = 0;
    lf_case *c = NULL;
    if (!it->syn_done) c = next_synthetic(it);
    if (!c && !it->gold_done) c = next_golden(it);
    return c;
}

void lf_cases_end(lf_case_iter *it, lf_case_counts *counts) {
    if (!it) return;
    if (it->have_cur) lf_case_free(&it->cur);
    if (counts) *counts = it->counts;
    if (it->f) lf_st_close(it->f);
    for (size_t i = 0; i < it->n_names; i++) free(it->names[i]);
    free(it->names);
    free(it);
}

/* ---- comparison -------------------------------------------------------------------------------- */

lf_tol lf_tol_golden(lf_dtype dt) {
    if (dt == LF_F32) return (lf_tol){1e-5, 1e-5, 0, 1e-4, -1, NULL};
    return (lf_tol){INFINITY, INFINITY, 0, 0, 1, NULL};
}

lf_tol lf_tol_device(lf_dtype dt) {
    switch (dt) {
    case LF_F16: return (lf_tol){1e-3, 0, 1e-3, 1.0 / 512, -1, NULL};
    case LF_BF16: return (lf_tol){8e-3, 0, 8e-3, 1.0 / 64, -1, NULL};
    default: return (lf_tol){1e-5, 0, 2e-5, 2e-5, -1, NULL};
    }
}

/* element i as f32 and as a point on a monotone integer line (ulps) */
static float load(const void *p, int64_t i, lf_dtype dt, int64_t *ord) {
    if (dt == LF_F32) {
        float v;
        int32_t b;
        memcpy(&v, (const char *)p + 4 * i, 4);
        memcpy(&b, &v, 4);
        *ord = b < 0 ? -(int64_t)(b & 0x7fffffff) : (int64_t)b;
        return v;
    }
    uint16_t h;
    memcpy(&h, (const char *)p + 2 * i, 2);
    *ord = (h & 0x8000) ? -(int64_t)(h & 0x7fff) : (int64_t)h;
    return dt == LF_F16 ? lf_f16_to_f32(h) : lf_bf16_to_f32(h);
}

int lf_case_compare(const char *name, const void *got, const void *ref, int64_t n, lf_dtype dt, const lf_tol *tol,
                    lf_cmp *r) {
    memset(r, 0, sizeof *r);
    r->first_fail = r->worst = -1;
    if (dt != LF_F32 && dt != LF_F16 && dt != LF_BF16) {
        fprintf(stderr, "FAIL %s: cannot compare dtype %s\n", name, lf_dtype_name(dt));
        return 0;
    }
    double den = 0, num = 0, worst_ratio = -1;
    for (int64_t i = 0; i < n; i++) {
        int64_t o;
        double e = load(ref, i, dt, &o);
        if (isfinite(e)) den += e * e;
    }
    double rms = sqrt(den / (double)(n ? n : 1)), abs_bound = tol->atol + tol->atol_rms * rms;
    for (int64_t i = 0; i < n; i++) {
        int64_t og, oe;
        float g = load(got, i, dt, &og), e = load(ref, i, dt, &oe);
        int bad = 0;
        double ratio;
        if (!isfinite(g) || !isfinite(e)) {
            bad = !(isinf(g) && isinf(e) && (g > 0) == (e > 0));
            r->nonfinite += bad;
            ratio = bad ? INFINITY : 0;
        } else {
            double d = fabs((double)g - e), lim = abs_bound + tol->rtol * fabs((double)e) + (tol->elem ? tol->elem[i] : 0);
            int64_t u = og > oe ? og - oe : oe - og;
            num += d * d;
            if (d > r->max_abs) r->max_abs = d;
            if (u > r->max_ulp) r->max_ulp = u;
            if (fabs((double)e) > abs_bound && d / fabs((double)e) > r->max_rel) r->max_rel = d / fabs((double)e);
            bad = d > lim || (tol->max_ulp >= 0 && u > tol->max_ulp);
            ratio = isinf(lim) ? 0 : lim > 0 ? d / lim : d > 0 ? INFINITY : 0;
            if (tol->max_ulp >= 0) {
                double ru = tol->max_ulp > 0 ? (double)u / tol->max_ulp : u > 0 ? INFINITY : 0;
                if (ru > ratio) ratio = ru;
            }
        }
        if (bad && r->fails++ == 0) r->first_fail = i;
        if (ratio > worst_ratio) {
            worst_ratio = ratio;
            r->worst = i;
            r->got_w = g;
            r->ref_w = e;
        }
    }
    r->rel_l2 = den > 0 ? sqrt(num / den) : sqrt(num);
    r->pass = r->fails == 0 && r->rel_l2 <= tol->rel_l2;
    if (!r->pass)
        fprintf(stderr,
                "FAIL %s: %s, %lld elements: rel_l2 %.3e (bound %.3g) max_abs %.3e max_ulp %lld (bound %d); %lld "
                "elements out of tolerance (first %lld), %lld not finite; worst element %lld: got %.9g, ref %.9g\n",
                name, lf_dtype_name(dt), (long long)n, r->rel_l2, tol->rel_l2, r->max_abs, (long long)r->max_ulp,
                tol->max_ulp, (long long)r->fails, (long long)r->first_fail, (long long)r->nonfinite,
                (long long)r->worst, r->got_w, r->ref_w);
    return r->pass;
}
