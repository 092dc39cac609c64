/* gpu_vs_cpu.c: the device apply (lf_device.h, kernels/cuda/apply.cu) against the CPU reference
 * (lf_job_apply -> lf_module_contrib_ref), in the style of ggml's test-backend-ops: every case of the
 * adapter case registry (tests/common/adapter_cases.h), compared by its one comparator. Label `gpu`;
 * exits 77 (skipped) when the build has no CUDA or no device is usable.
 *
 * Cases: the registry's synthetic list {algorithm, weight dtype f32/f16/bf16, layer (odd Linear
 * 77x45, aligned Linear 128x256, 1x1 conv 64x32, 3x3 conv 40x24, 1-D for norm), rank 1/4/16/64/128,
 * 1..3 adapters per layer, strength 1 (and 0, -2 on a subset)} and its golden cases (the LyCORIS /
 * PEFT fixtures of tests/data/golden, one case per stored weight or bias). Synthetic data: fresh
 * random W0 and factors per case from the run seed and the case name (seed printed; --seed N
 * repeats a run, with --filter any single case), factors stored in the weight's dtype family
 * (F32 / F16 / BF16) so the upload converts them. Every case: the device weight is poisoned
 * (all-ones bytes = NaN) before the apply so an unwritten element fails; every device buffer has
 * 1 KiB guards checked byte for byte after the case; comparison with the CPU result in the weight's
 * dtype by lf_case_compare with the device bounds (relative L2 and per element |g - r| <= atol +
 * rtol*|r|, atol relative to rms(r); NaN never passes); a case whose coefficients are all 0 must give
 * W0's bytes exactly; then every coefficient is set to 0 and the restore must give W0's bytes
 * exactly. Group tests put jobs of mixed shapes/dtypes/algorithms into one model (one grouped
 * launch), with W0 on the device and in pinned host memory (max_backup_mb 0), check that changing one
 * coefficient rewrites exactly that layer, and that a non-finite result is reported and rolled back
 * to W0.
 * Usage: gpu_vs_cpu [--json FILE] [--filter SUBSTR] [--quick] [--seed N] [--device N] [--tc-min-rank R] [-v]
 *                   [--dry] [--list]
 *   --tc-min-rank R: concatenated LoRA of rank >= R on the tensor cores (default 16; 1 puts every
 *          LoRA case on the TF32 path).
 *   --dry: no device; build every case and run the CPU reference, golden cases also against their
 *          stored result with the golden bounds (CTest gpu_vs_cpu_dry, label cpu).
 *   --list: print the names of the cases the other options select, run nothing.
 *   --quick: a reduced list (f16 and f32, ranks 4 and 16, one adapter, no golden cases) for
 *          compute-sanitizer runs.
 * Tolerances (docs/cuda.md): f32 relL2 1e-5, rtol 2e-5, atol 2e-5*rms; f16 relL2 1e-3, rtol 2^-9,
 * atol 1e-3*rms; bf16 relL2 8e-3, rtol 2^-6, atol 8e-3*rms; plus, on jobs with tensor-core products, the
 * error model tc_error_term (u * sum of the terms' magnitudes) per element.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adapter_cases.h"
#include "host/base/util.h"
#include "lf_test.h"
#include "lorafuse/lf_device.h"

static FILE *json;
static int verbose;
static int dry;  /* --dry: build every case and run only the CPU reference (no device) */
static int list; /* --list: print the names of the cases and run nothing */
static lf_device *dev;
static int tc_min_rank; /* --tc-min-rank: 0 = the library default */

/* the device options of every model of this run */
static void run_opts(lf_dev_opts *o) {
    lf_dev_opts_default(o);
    if (tc_min_rank > 0) o->tc_min_rank = tc_min_rank;
}

static void json_line(const lf_case *c, const char *test, const lf_cmp *r, double us) {
    if (!json) return;
    fprintf(json,
            "{\"test\":\"%s\",\"case\":\"%s\",\"source\":\"%s\",\"algo\":\"%s\",\"dtype\":\"%s\",\"shape\":\"%s\","
            "\"rank\":%d,\"adapters\":%d,\"strength\":%g,\"rel_l2\":%.3e,\"max_abs\":%.3e,\"max_rel\":%.3e,"
            "\"max_ulp\":%lld,\"fails\":%lld,\"nonfinite\":%lld,\"pass\":%s,\"us\":%.1f}\n",
            test, c->name, c->golden ? "golden" : "synthetic", c->algo, lf_dtype_name(c->target.dtype), c->layer,
            c->rank, c->n_adapters, (double)c->strength, r->rel_l2, r->max_abs, r->max_rel, (long long)r->max_ulp,
            (long long)r->fails, (long long)r->nonfinite, r->pass ? "true" : "false", us);
    fflush(json);
}

static int64_t numel_of(const lf_case *c) {
    return (int64_t)(lf_case_bytes(c) / (lf_dtype_bits(c->target.dtype) / 8));
}

/* The tensor-core product's error model (docs/cuda.md, Tolerances): TF32 rounds each input of the
 * concatenated LoRA product to 11 significant bits, so its error is bounded by u * M, where
 * M[i] = sum_p |coef_p| * (|up| |mid| |down|)[i] over the concatenated patches (plain LoRA / LoCon /
 * Tucker without DoRA) and u = 2 * 2^-11 per product (1xTF32) or ~2^-21 (3xTF32 for f32 weights). M is
 * the CPU reference run on the sign-cleared factors into a zero f32 target. Tucker's folded up (up·mid,
 * cut to TF32 after the fold) and cancelling terms are why a bound relative to |ΔW| does not hold.
 * Returns NULL (no term) when the case has no patch on the tensor cores; aborts on out of memory. */
static float *tc_error_term(const lf_case *c, const lf_dev_opts *o) {
    const lf_job *job = &c->job;
    lf_patch abs_p[LF_CASE_MAX_PATCHES];
    void *mem[LF_CASE_MAX_PATCHES * LF_R_COUNT];
    size_t n = 0, n_mem = 0;
    int64_t rtot = 0;
    for (size_t p = 0; p < job->n_patches; p++) {
        const lf_patch *src = &job->patches[p];
        if (src->mod.algo != LF_ALGO_LORA || (src->mod.present & (1u << LF_R_DORA)) || src->bias) continue;
        lf_patch *d = &abs_p[n++];
        *d = *src;
        d->coef = fabsf(src->coef);
        rtot += src->mod.t[LF_R_DOWN].shape[0];
        for (int r = 0; r < LF_R_COUNT; r++) {
            if (!(d->mod.present & (1u << r))) continue;
            lf_view *v = &d->mod.t[r];
            size_t es = lf_dtype_bits(v->dtype) / 8, bytes = (size_t)lf_view_numel(v) * es;
            unsigned char *a = malloc(bytes ? bytes : 1);
            if (!a) abort();
            memcpy(a, v->data, bytes);
            for (size_t i = 0; i < bytes; i += es) a[i + es - 1] &= 0x7f; /* little-endian: the sign bit */
            v->data = a;
            mem[n_mem++] = a;
        }
    }
    float *m = NULL;
    if (n && rtot >= o->tc_min_rank) {
        int64_t numel = 1;
        for (int d = 0; d < c->target.ndim; d++) numel *= c->target.shape[d];
        lf_st_tensor zero = c->target;
        zero.dtype = LF_F32;
        float *z = calloc((size_t)numel, sizeof *z);
        m = malloc((size_t)numel * sizeof *m);
        if (!z || !m) abort();
        zero.data = (const unsigned char *)z;
        zero.begin = 0;
        zero.end = (uint64_t)numel * 4;
        lf_job aj = {&zero, abs_p, n};
        LF_CHECK(lf_job_apply(&aj, 0, m) == LF_OK, "%s: error model: %s", c->name, lf_last_error());
        double u = (c->target.dtype == LF_F32 && o->tf32_split_f32 >= 0) ? 0x1p-20 : 0x1p-9; /* 2x slack */
        for (int64_t i = 0; i < numel; i++) m[i] = (float)(u * m[i]);
        free(z);
    }
    for (size_t i = 0; i < n_mem; i++) free(mem[i]);
    return m;
}

/* apply jobs[0..n) on the device (poisoned first) and compare each with lf_job_apply */
static int check_jobs(lf_dev_model *dm, lf_case **cs, size_t n, const char *test, double *us_out) {
    int ok = 1;
    LF_CHECK(lf_dev_poison(dm) == LF_OK, "%s: poison: %s", test, lf_last_error());
    double t0 = lf_clock_s();
    lf_status st = lf_dev_apply(dm, NULL);
    double us = (lf_clock_s() - t0) * 1e6;
    if (us_out) *us_out = us;
    LF_CHECK(st == LF_OK, "%s: apply: %s", test, lf_last_error());
    if (st) return 0;
    for (size_t j = 0; j < n; j++) {
        lf_case *c = cs[j];
        size_t bytes = lf_case_bytes(c);
        void *got = malloc(bytes), *ref = malloc(bytes);
        /* the CPU result for the device's current coefficients */
        for (size_t p = 0; p < c->job.n_patches; p++) c->patches[p].coef = lf_dev_get_coef(dm, j, p);
        lf_status rs = lf_job_apply(&c->job, 0, ref);
        LF_CHECK(rs == LF_OK, "%s: %s: CPU reference: %s", test, c->name, lf_last_error());
        LF_CHECK(lf_dev_download(dm, j, got) == LF_OK, "%s: download: %s", test, lf_last_error());
        lf_tol tol = lf_tol_device(c->target.dtype);
        lf_dev_opts o;
        run_opts(&o);
        float *tc_term = tc_error_term(c, &o);
        tol.elem = tc_term;
        lf_cmp r;
        memset(&r, 0, sizeof r);
        char what[224];
        snprintf(what, sizeof what, "%s: %s", test, c->name);
        int pass = rs == LF_OK && lf_case_compare(what, got, ref, numel_of(c), c->target.dtype, &tol, &r);
        if (lf_case_all_zero(c)) { /* all coefficients 0: a raw copy of W0, never arithmetic */
            int same = memcmp(got, c->target.data, bytes) == 0;
            LF_CHECK(same, "%s: all coefficients 0 but not W0's bytes", what);
            pass = pass && same;
        }
        if (pass && verbose) printf("ok   %s: rel_l2 %.3e max_abs %.3e\n", what, r.rel_l2, r.max_abs);
        LF_CHECK(pass, "%s does not match the CPU reference", what);
        r.pass = pass;
        json_line(c, test, &r, us);
        ok &= pass;
        free(tc_term);
        free(got);
        free(ref);
    }
    return ok;
}

/* all coefficients 0 -> W0's bytes exactly */
static int check_restore(lf_dev_model *dm, lf_case **cs, size_t n, const char *test) {
    int ok = 1;
    LF_CHECK(lf_dev_poison(dm) == LF_OK, "%s: poison: %s", test, lf_last_error());
    LF_CHECK(lf_dev_restore_all(dm, NULL) == LF_OK, "%s: restore: %s", test, lf_last_error());
    for (size_t j = 0; j < n; j++) {
        size_t bytes = lf_case_bytes(cs[j]);
        void *got = malloc(bytes);
        LF_CHECK(lf_dev_download(dm, j, got) == LF_OK, "%s: download: %s", test, lf_last_error());
        int same = memcmp(got, cs[j]->target.data, bytes) == 0;
        LF_CHECK(same, "%s: %s: restore is not bit-exact", test, cs[j]->name);
        ok &= same;
        free(got);
    }
    return ok;
}

/* --dry: the CPU reference accepts the case; a golden case also matches its stored result, and a
 * case whose coefficients are all 0 gives W0's bytes */
static void run_dry(const lf_case *c) {
    size_t bytes = lf_case_bytes(c);
    void *ref = malloc(bytes ? bytes : 1);
    lf_status st = lf_job_apply(&c->job, 0, ref);
    LF_CHECK(st == LF_OK, "%s: CPU reference: %s", c->name, lf_last_error());
    if (st == LF_OK && c->expect) {
        lf_tol tol = lf_tol_golden(c->target.dtype);
        lf_cmp r;
        LF_CHECK(lf_case_compare(c->name, ref, c->expect, numel_of(c), c->target.dtype, &tol, &r),
                 "%s: CPU reference out of the golden tolerance [%s]", c->name, c->spec);
    }
    if (st == LF_OK && lf_case_all_zero(c))
        LF_CHECK(memcmp(ref, c->target.data, bytes) == 0, "%s: all coefficients 0 but not W0's bytes", c->name);
    free(ref);
}

static void run_case(lf_case *c) {
    if (list) {
        printf("%s\n", c->name);
        return;
    }
    if (dry) {
        run_dry(c);
        return;
    }
    lf_dev_model *dm = NULL;
    lf_dev_opts o;
    run_opts(&o);
    lf_status st = lf_dev_model_create(dev, &c->job, 1, &o, &dm);
    LF_CHECK(st == LF_OK, "%s: create: %s", c->name, lf_last_error());
    if (st) return;
    lf_case *cs[1] = {c};
    double us = 0;
    check_jobs(dm, cs, 1, "case", &us);
    check_restore(dm, cs, 1, "restore");
    LF_CHECK(lf_dev_guard_check(dm) == LF_OK, "%s: guards: %s", c->name, lf_last_error());
    lf_dev_model_free(dm);
}

/* several jobs of mixed algorithms, shapes and dtypes in one model (one grouped launch) */
static void run_group(int pinned, const char *filter, uint64_t seed) {
    static const lf_case_spec G[] = {
        {LF_CA_LORA, LF_CL_LIN_AL, LF_F16, 16, 2, 1},    {LF_CA_LOHA, LF_CL_C3, LF_BF16, 4, 1, 1},
        {LF_CA_IA3_IN, LF_CL_LIN_ODD, LF_F32, 0, 1, 1},  {LF_CA_DORA_OUT, LF_CL_C1, LF_F16, 8, 1, 1},
        {LF_CA_OFT, LF_CL_LIN_AL, LF_F32, 0, 1, 1},      {LF_CA_LOKR, LF_CL_LIN_ODD, LF_F16, 4, 1, 1},
        {LF_CA_LORA, LF_CL_LIN_ODD, LF_BF16, 4, 3, 1},   {LF_CA_MIXED, LF_CL_C3, LF_F16, 4, 3, 1},
        {LF_CA_LORA, LF_CL_C3, LF_F32, 64, 1, 1},        {LF_CA_NORM, LF_CL_VEC, LF_BF16, 0, 1, 1},
    };
    enum { NG = sizeof G / sizeof G[0] };
    const char *test = pinned ? "group_pinned" : "group";
    if (filter && !strstr(test, filter)) return;
    lf_case *cases = calloc(NG, sizeof *cases), *cs[NG];
    lf_job jobs[NG];
    if (!cases) abort();
    for (int i = 0; i < NG; i++) {
        lf_case *c = &cases[i];
        if (lf_case_build(&G[i], seed, c)) {
            fprintf(stderr, "group case %d does not build\n", i);
            exit(2);
        }
        /* a group name per job (the non-finite check below looks for it in the message) */
        char name[sizeof c->name];
        if (snprintf(name, sizeof name, "%s/%d/%s", test, i, c->name) < 0) name[0] = '\0'; /* long names are cut */
        memcpy(c->name, name, sizeof name);
        cs[i] = c;
        jobs[i] = c->job;
    }
    if (dry) {
        for (int i = 0; i < NG; i++) run_dry(&cases[i]);
        goto out;
    }
    lf_dev_opts o;
    run_opts(&o);
    if (pinned) o.max_backup_mb = 0;
    lf_dev_model *dm = NULL;
    lf_status st = lf_dev_model_create(dev, jobs, NG, &o, &dm);
    LF_CHECK(st == LF_OK, "%s: create: %s", test, lf_last_error());
    if (st) goto out;
    check_jobs(dm, cs, NG, test, NULL);
    lf_dev_apply_stats s;
    lf_dev_last_stats(dm, &s);
    LF_CHECK(s.jobs_rewritten == NG, "%s: %zu jobs rewritten, expected %d", test, s.jobs_rewritten, NG);
    LF_CHECK(s.launches <= 8, "%s: %zu launches for one apply", test, s.launches);

    /* nothing changed: an apply rewrites nothing */
    LF_CHECK(lf_dev_apply(dm, NULL) == LF_OK, "%s: apply: %s", test, lf_last_error());
    lf_dev_last_stats(dm, &s);
    LF_CHECK(s.jobs_rewritten == 0, "%s: unchanged apply rewrote %zu jobs", test, s.jobs_rewritten);

    /* one coefficient changes: exactly that job is rewritten, the others keep their bytes */
    size_t bytes_all = 0;
    for (int i = 0; i < NG; i++) bytes_all += lf_case_bytes(&cases[i]);
    unsigned char *before = malloc(bytes_all), *after = malloc(bytes_all);
    size_t off = 0;
    for (int i = 0; i < NG; i++) {
        lf_dev_download(dm, (size_t)i, before + off);
        off += lf_case_bytes(&cases[i]);
    }
    LF_CHECK(lf_dev_set_coef(dm, 3, 0, 0.37f) == LF_OK, "set_coef: %s", lf_last_error());
    LF_CHECK(lf_dev_apply(dm, NULL) == LF_OK, "%s: apply: %s", test, lf_last_error());
    lf_dev_last_stats(dm, &s);
    LF_CHECK(s.jobs_rewritten == 1, "%s: changing one coefficient rewrote %zu jobs", test, s.jobs_rewritten);
    off = 0;
    for (int i = 0; i < NG; i++) {
        size_t b = lf_case_bytes(&cases[i]);
        lf_dev_download(dm, (size_t)i, after + off);
        if (i != 3) LF_CHECK(memcmp(before + off, after + off, b) == 0, "%s: job %d changed but was not dirty", test, i);
        else LF_CHECK(memcmp(before + off, after + off, b) != 0, "%s: job 3 did not change", test);
        off += b;
    }
    free(before);
    free(after);
    /* the changed job matches the CPU at its new coefficient (check_jobs re-applies everything) */
    check_jobs(dm, cs, NG, test, NULL);

    /* switch: adapter 0 off, adapter 1 on everywhere */
    LF_CHECK(lf_dev_set_adapter_coef(dm, 0, 0.0f) == LF_OK, "set_adapter_coef: %s", lf_last_error());
    LF_CHECK(lf_dev_set_adapter_coef(dm, 1, 0.8f) == LF_OK, "set_adapter_coef: %s", lf_last_error());
    check_jobs(dm, cs, NG, test, NULL);

    /* a non-finite result is reported, names the layer, and everything touched is restored */
    LF_CHECK(lf_dev_set_coef(dm, 0, 0, 3e38f) == LF_OK, "set_coef: %s", lf_last_error());
    LF_CHECK(lf_dev_set_coef(dm, 1, 0, 0.5f) == LF_OK, "set_coef: %s", lf_last_error());
    st = lf_dev_apply(dm, NULL);
    LF_CHECK(st == LF_ERR_NONFINITE, "%s: overflowing strength gave %d (%s)", test, (int)st, lf_last_error());
    LF_CHECK(strstr(lf_last_error(), cases[0].name) != NULL, "%s: message does not name the layer: %s", test,
             lf_last_error());
    for (int i = 0; i < 2; i++) {
        size_t b = lf_case_bytes(&cases[i]);
        void *got = malloc(b);
        lf_dev_download(dm, (size_t)i, got);
        LF_CHECK(memcmp(got, cases[i].target.data, b) == 0, "%s: job %d not restored after the failed apply", test, i);
        free(got);
    }
    LF_CHECK(lf_dev_set_coef(dm, 0, 0, 0.5f) == LF_OK, "set_coef: %s", lf_last_error());

    check_restore(dm, cs, NG, test);
    LF_CHECK(lf_dev_guard_check(dm) == LF_OK, "%s: guards: %s", test, lf_last_error());
    uint64_t db = 0, pb = 0;
    lf_dev_memory(dm, &db, &pb);
    if (pinned) LF_CHECK(pb > 0, "%s: no pinned W0 backups with max_backup_mb 0", test);
    lf_dev_model_free(dm);
out:
    for (int i = 0; i < NG; i++) lf_case_free(&cases[i]);
    free(cases);
}

int main(int argc, char **argv) {
    const char *json_path = NULL, *filter = NULL;
    int quick = 0, ordinal = 0;
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 20);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
        else if (!strcmp(argv[i], "--filter") && i + 1 < argc) filter = argv[++i];
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--device") && i + 1 < argc) ordinal = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tc-min-rank") && i + 1 < argc) tc_min_rank = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-v")) verbose = 1;
        else if (!strcmp(argv[i], "--dry")) dry = 1;
        else if (!strcmp(argv[i], "--list")) list = dry = 1;
        else {
            fprintf(stderr, "usage: %s [--json FILE] [--filter SUBSTR] [--quick] [--seed N] [--device N] "
                    "[--tc-min-rank R] [-v] [--dry] [--list]\n", argv[0]);
            return 2;
        }
    }
    if (!seed) seed = 1;
    printf("gpu_vs_cpu: seed %llu\n", (unsigned long long)seed);
    lf_status st = dry ? LF_OK : lf_device_open(ordinal, &dev);
    if (st == LF_ERR_UNSUPPORTED) LF_SKIP(lf_last_error());
    if (st) {
        fprintf(stderr, "lf_device_open: %s\n", lf_last_error());
        return 1;
    }
    printf("device: %s\n", dry ? "(none: --dry, CPU reference only)" : lf_device_describe(dev));
    if (json_path && !(json = fopen(json_path, "w"))) {
        fprintf(stderr, "cannot write %s\n", json_path);
        return 2;
    }

    lf_case_sel sel = {LF_CASES_SYNTH | (quick ? 0u : LF_CASES_GOLDEN), quick, filter, seed};
    lf_case_iter *it = lf_cases_begin(&sel);
    for (lf_case *c; (c = lf_cases_next(it));) {
        LF_CHECK(!c->error[0], "%s: %s", c->name, c->error);
        if (!c->error[0]) run_case(c);
    }
    lf_case_counts k;
    lf_cases_end(it, &k);
    if (!list) {
        run_group(0, filter, seed);
        run_group(1, filter, seed);
    }
    printf("%d cases run (%d synthetic, %d golden from %d files)\n", k.synthetic + k.golden, k.synthetic, k.golden,
           k.golden_files);
    if (json) fclose(json);
    lf_device_close(dev);
    return lf_test_finish();
}
