/* test_golden.c: the CPU reference (lf_module_contrib_ref) against fixtures written by the reference
 * implementations (LyCORIS, PEFT; scripts/make_golden.py).
 *
 * For every tests/data/golden/<case>.expect.safetensors (sorted) and every scenario k:
 *   W = round_dtype(W0 + sum_i C_i(W0, s_i))        (P5, P6; adapters from metadata scenario.k)
 * compared with the stored W.k (and b.k with diff_b / b_norm on b0):
 *   F32:       |a - b| <= 1e-5 + 1e-4 |b| per element, and ||a - b|| / ||b|| <= 1e-5
 *   F16/BF16:  within 1 ulp of the stored value
 *   NaN never passes; a scenario whose strengths are all 0 must be byte-identical to W0.
 * Fails (does not skip) when the directory holds no expect file. Run: ctest -R golden
 */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_test.h"
#include "lorafuse/lf_adapter.h"
#include "kernels/common/lf_half.h"
#include "lorafuse/lf_safetensors.h"

#define GOLDEN_DIR "tests/data/golden"
#define MAX_PARTS 8

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Monotone integer image of a 16-bit float, so that adjacent values differ by 1. */
static int32_t ord16(uint16_t h) { return (h & 0x8000u) ? -(int32_t)(h & 0x7fffu) : (int32_t)h; }

typedef struct {
    double max_abs, rel_l2;
    int64_t bad, worst;
    int64_t max_ulp;
} cmp_result;

/* got/want: n elements of dtype dt (raw bytes). */
static cmp_result compare(const void *got, const void *want, int64_t n, lf_dtype dt) {
    cmp_result r = {0, 0, 0, -1, 0};
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        float a, b;
        int ok;
        if (dt == LF_F32) {
            memcpy(&a, (const char *)got + 4 * i, 4);
            memcpy(&b, (const char *)want + 4 * i, 4);
            ok = !isnan(a) && !isnan(b) && fabs((double)a - b) <= 1e-5 + 1e-4 * fabs((double)b);
        } else {
            uint16_t ha, hb;
            memcpy(&ha, (const char *)got + 2 * i, 2);
            memcpy(&hb, (const char *)want + 2 * i, 2);
            a = dt == LF_F16 ? lf_f16_to_f32(ha) : lf_bf16_to_f32(ha);
            b = dt == LF_F16 ? lf_f16_to_f32(hb) : lf_bf16_to_f32(hb);
            int64_t u = llabs((long long)ord16(ha) - ord16(hb));
            if (u > r.max_ulp) r.max_ulp = u;
            ok = !isnan(a) && !isnan(b) && u <= 1;
        }
        double d = fabs((double)a - b);
        if (isnan(d)) d = INFINITY;
        if (d > r.max_abs) r.max_abs = d;
        if (!ok && r.bad++ == 0) r.worst = i;
        num += d * d;
        den += (double)b * b;
    }
    r.rel_l2 = den > 0 ? sqrt(num / den) : sqrt(num);
    return r;
}

typedef struct {
    char file[256];
    float s;
} part;

static int parse_scenario(const char *spec, part *parts, int *np) {
    *np = 0;
    const char *p = spec;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *at = memchr(p, '@', len);
        if (!at || *np >= MAX_PARTS || (size_t)(at - p) >= sizeof parts[0].file) return 0;
        memcpy(parts[*np].file, p, (size_t)(at - p));
        parts[*np].file[at - p] = '\0';
        char num[64];
        size_t nl = len - (size_t)(at - p) - 1;
        if (nl >= sizeof num) return 0;
        memcpy(num, at + 1, nl);
        num[nl] = '\0';
        char *end;
        parts[*np].s = strtof(num, &end);
        if (end == num || *end) return 0;
        (*np)++;
        p = comma ? comma + 1 : p + len;
    }
    return *np > 0;
}

/* acc (n f32) = base + sum of contributions of the scenario's adapters. Returns 0 on error (reported). */
static int run_parts(const char *cname, const part *parts, int np, const lf_view *wv, const float *base,
                     int bias, float *acc) {
    int64_t n = lf_view_numel(wv);
    memcpy(acc, base, (size_t)n * sizeof *acc);
    for (int i = 0; i < np; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", GOLDEN_DIR, parts[i].file);
        lf_adapter *a = NULL;
        lf_status st = lf_adapter_open(path, &a);
        LF_CHECK(st == LF_OK, "%s: open %s: %s", cname, path, lf_last_error());
        if (st != LF_OK) return 0;
        const lf_module *found = lf_adapter_find(a, "lf_layer");
        LF_CHECK(found != NULL, "%s: %s has no module lf_layer", cname, path);
        if (!found) {
            lf_adapter_free(a);
            return 0;
        }
        lf_module m = *found;
        if (!bias) {
            st = lf_module_resolve(&m, wv);
            LF_CHECK(st == LF_OK, "%s: resolve %s against the weight: %s", cname, path, lf_last_error());
        }
        if (st == LF_OK) {
            st = lf_module_contrib_ref(&m, base, wv, bias, parts[i].s, acc);
            LF_CHECK(st == LF_OK, "%s: contribution of %s@%g: %s", cname, path, (double)parts[i].s, lf_last_error());
        }
        lf_adapter_free(a);
        if (st != LF_OK) return 0;
    }
    return 1;
}

/* Compute, round and compare one tensor (weight or bias) of one scenario. Returns 1 if it passed. */
static int check_tensor(const char *cname, int k, const char *what, const char *spec, const part *parts, int np,
                        const lf_st_tensor *t0, const lf_st_tensor *tk, int bias, int all_zero) {
    lf_view v0 = lf_st_view(t0), vk = lf_st_view(tk);
    int64_t n = lf_view_numel(&v0);
    LF_CHECK(vk.dtype == v0.dtype && lf_view_numel(&vk) == n, "%s: %s.%d dtype/shape differs from %s0", cname,
             what, k, what);
    if (vk.dtype != v0.dtype || lf_view_numel(&vk) != n) return 0;
    size_t esz = lf_dtype_bits(v0.dtype) / 8;
    float *base = malloc((size_t)n * sizeof *base), *acc = malloc((size_t)n * sizeof *acc);
    void *out = malloc((size_t)n * esz);
    int ok = base && acc && out && lf_view_to_f32(&v0, base) == LF_OK &&
             run_parts(cname, parts, np, &v0, base, bias, acc);
    if (ok) {
        lf_status st = lf_f32_to_dtype(acc, n, v0.dtype, out);
        LF_CHECK(st == LF_OK, "%s: rounding: %s", cname, lf_last_error());
        ok = st == LF_OK;
    }
    if (ok) {
        cmp_result r = compare(out, tk->data, n, v0.dtype);
        int pass = r.bad == 0 && (v0.dtype != LF_F32 || r.rel_l2 <= 1e-5);
        if (all_zero) {
            int same = memcmp(out, t0->data, (size_t)n * esz) == 0 && memcmp(tk->data, t0->data, (size_t)n * esz) == 0;
            LF_CHECK(same, "%s: scenario %d (all strengths 0): %s not byte-identical to %s0", cname, k, what, what);
            pass = pass && same;
        }
        char ulp[32] = "";
        if (v0.dtype != LF_F32) snprintf(ulp, sizeof ulp, " max_ulp %lld", (long long)r.max_ulp);
        printf("%-30s %s.%d %-4s max_abs %.3g rel_l2 %.3g%s %s [%s]\n", cname, what, k, lf_dtype_name(v0.dtype),
               r.max_abs, r.rel_l2, ulp, pass ? "ok" : "FAIL", spec);
        LF_CHECK(pass, "%s: scenario %d [%s]: %s: %lld elements out of tolerance (first at %lld), max_abs %.3g, "
                 "rel_l2 %.3g", cname, k, spec, what, (long long)r.bad, (long long)r.worst, r.max_abs, r.rel_l2);
        ok = pass;
    }
    free(base);
    free(acc);
    free(out);
    return ok;
}

static void run_case(const char *fname, int *cases_ok, int *cases) {
    char path[512], cname[256];
    snprintf(path, sizeof path, "%s/%s", GOLDEN_DIR, fname);
    size_t cl = strlen(fname) - strlen(".expect.safetensors");
    snprintf(cname, sizeof cname, "%.*s", (int)cl, fname);
    (*cases)++;
    lf_st_file *f = NULL;
    lf_status st = lf_st_open(path, &f);
    LF_CHECK(st == LF_OK, "%s: %s", path, lf_last_error());
    if (st != LF_OK) return;
    const lf_st_tensor *w0 = lf_st_find(f, "W0"), *b0 = lf_st_find(f, "b0");
    LF_CHECK(w0 != NULL, "%s: no W0", path);
    int good = w0 != NULL, k = 0;
    for (; w0; k++) {
        char key[32], wk[32], bk[32];
        snprintf(key, sizeof key, "scenario.%d", k);
        const char *spec = lf_st_meta(f, key);
        if (!spec) break;
        snprintf(wk, sizeof wk, "W.%d", k);
        snprintf(bk, sizeof bk, "b.%d", k);
        part parts[MAX_PARTS];
        int np = 0;
        int parsed = parse_scenario(spec, parts, &np);
        LF_CHECK(parsed, "%s: cannot parse %s = '%s'", path, key, spec);
        const lf_st_tensor *twk = lf_st_find(f, wk), *tbk = lf_st_find(f, bk);
        LF_CHECK(twk != NULL, "%s: %s has no %s", path, key, wk);
        if (!parsed || !twk) {
            good = 0;
            continue;
        }
        int all_zero = 1;
        for (int i = 0; i < np; i++) all_zero &= parts[i].s == 0.0f;
        good &= check_tensor(cname, k, "W", spec, parts, np, w0, twk, 0, all_zero);
        if (tbk) {
            LF_CHECK(b0 != NULL, "%s: %s without b0", path, bk);
            if (b0) good &= check_tensor(cname, k, "b", spec, parts, np, b0, tbk, 1, all_zero);
            else good = 0;
        }
    }
    LF_CHECK(k > 0, "%s: no scenario.0 metadata", path);
    if (good && k > 0) (*cases_ok)++;
    lf_st_close(f);
}

int main(void) {
    DIR *d = opendir(GOLDEN_DIR);
    LF_CHECK(d != NULL, "cannot open %s (run from the source tree)", GOLDEN_DIR);
    char **names = NULL;
    size_t n = 0, cap = 0;
    const char *suf = ".expect.safetensors";
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        if (l <= strlen(suf) || strcmp(e->d_name + l - strlen(suf), suf) != 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn) abort();
            names = nn;
        }
        names[n] = malloc(l + 1);
        if (!names[n]) abort();
        memcpy(names[n++], e->d_name, l + 1);
    }
    if (d) closedir(d);
    LF_CHECK(n > 0, "no *%s fixtures in %s", suf, GOLDEN_DIR);
    qsort(names, n, sizeof *names, cmp_str);
    int ok = 0, total = 0;
    for (size_t i = 0; i < n; i++) run_case(names[i], &ok, &total);
    printf("golden cases: %d of %d pass\n", ok, total);
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return lf_test_finish();
}
