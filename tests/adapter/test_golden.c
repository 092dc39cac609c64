/* test_golden.c: the CPU reference (lf_job_apply -> lf_module_contrib_ref) against fixtures written by
 * the reference implementations (LyCORIS, PEFT; scripts/make_golden.py), over the golden cases of
 * the adapter case registry (tests/common/adapter_cases.h).
 *
 * For every tests/data/golden/<file>.expect.safetensors (sorted) and every scenario k:
 *   W = round_dtype(W0 + sum_i C_i(W0, s_i))        (P5, P6; adapters from metadata scenario.k)
 * compared with the stored W.k (and b.k with diff_b / b_norm on b0) by lf_case_compare with the
 * golden bounds (lf_tol_golden):
 *   F32:       |a - b| <= 1e-5 + 1e-4 |b| per element, and ||a - b|| / ||b|| <= 1e-5
 *   F16/BF16:  within 1 ulp of the stored value
 *   NaN never passes; a scenario whose strengths are all 0 must be byte-identical to W0 (both the
 *   computed and the stored result).
 * Fails (does not skip) when the directory holds no expect file. Usage: test_golden [--filter SUBSTR]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_cases.h"
#include "lf_test.h"

static int check_case(const lf_case *c) {
    size_t bytes = lf_case_bytes(c);
    int64_t n = (int64_t)(bytes / (lf_dtype_bits(c->target.dtype) / 8));
    void *out = malloc(bytes ? bytes : 1);
    if (!out) abort();
    lf_status st = lf_job_apply(&c->job, 0, out);
    LF_CHECK(st == LF_OK, "%s: CPU reference [%s]: %s", c->name, c->spec, lf_last_error());
    int pass = 0;
    if (st == LF_OK) {
        lf_tol tol = lf_tol_golden(c->target.dtype);
        lf_cmp r;
        pass = lf_case_compare(c->name, out, c->expect, n, c->target.dtype, &tol, &r);
        if (lf_case_all_zero(c)) {
            int same = memcmp(out, c->target.data, bytes) == 0 && memcmp(c->expect, c->target.data, bytes) == 0;
            LF_CHECK(same, "%s: all strengths 0 [%s]: not byte-identical to W0", c->name, c->spec);
            pass = pass && same;
        }
        char ulp[32] = "";
        if (c->target.dtype != LF_F32) snprintf(ulp, sizeof ulp, " max_ulp %lld", (long long)r.max_ulp);
        printf("%-40s %-4s max_abs %.3g rel_l2 %.3g%s %s [%s]\n", c->name, lf_dtype_name(c->target.dtype), r.max_abs,
               r.rel_l2, ulp, pass ? "ok" : "FAIL", c->spec);
        LF_CHECK(pass, "%s: out of the golden tolerance [%s]", c->name, c->spec);
    }
    free(out);
    return pass;
}

int main(int argc, char **argv) {
    lf_case_sel sel = {LF_CASES_GOLDEN, 0, NULL, 0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--filter") && i + 1 < argc) sel.filter = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--filter SUBSTR]\n", argv[0]);
            return 2;
        }
    }
    lf_case_iter *it = lf_cases_begin(&sel);
    int ok = 0;
    for (lf_case *c; (c = lf_cases_next(it));) {
        LF_CHECK(!c->error[0], "%s: %s", c->name, c->error);
        if (!c->error[0]) ok += check_case(c);
    }
    lf_case_counts k;
    lf_cases_end(it, &k);
    LF_CHECK(k.golden > 0, "no golden case ran");
    printf("golden: %d cases run (%d files), %d pass, %d fixture errors\n", k.golden, k.golden_files, ok, k.errors);
    return lf_test_finish();
}
