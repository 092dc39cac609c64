/* adapter_cases.h: the one registry of adapter test cases and the one comparator, shared by the
 * CPU golden test (tests/adapter/test_golden.c) and the device test (tests/cuda/gpu_vs_cpu.c), as
 * ggml's test-backend-ops has one test_case list and one comparison for every backend.
 *
 * A case is one layer job (lf_model.h): a target W0 and its patches (module, strength), rounded once,
 * W = round(W0 + sum_i C_i(W0, s_i)); golden cases also carry the stored result. Sources:
 *   synthetic  algorithm x layer kind x weight dtype x rank x adapters per layer x strength (the
 *              table in adapter_cases.c); W0 ~ U(-1, 1) and factors in the weight's dtype, from a
 *              seed per case = f(run seed, case name), so `--filter NAME --seed N` repeats one case.
 *              Names: algo/dtype/layer/rRANK/nADAPTERS[/sSTRENGTH when not 1].
 *   golden     for every tests/data/golden/<file>.expect.safetensors (sorted) and scenario k: the
 *              weight W.k (and the bias b.k) from W0 / b0 and the adapters listed in metadata
 *              scenario.k = "<adapter file>@<strength>,...", written by LyCORIS / PEFT
 *              (scripts/make_golden.py). Patches are built as lf_plan_build builds them (module
 *              resolved against W0; bias patches only for modules with diff_b / b_norm).
 *              Names: golden/<file>/W.k, golden/<file>/b.k.
 *
 *   lf_case_sel sel = {LF_CASES_SYNTH | LF_CASES_GOLDEN, 0, NULL, seed};
 *   lf_case_iter *it = lf_cases_begin(&sel);
 *   for (lf_case *c; (c = lf_cases_next(it));) ...  (c valid until the next call; c->error[0]: a
 *                                                    fixture could not be read, the runner fails it)
 *   lf_cases_end(it, &counts);
 *
 * Comparator (lf_case_compare): NaN never passes, Inf must match in sign; per finite element
 * |g - r| <= atol + atol_rms * rms(r) + rtol * |r| (+ elem[i] when given) and (max_ulp >= 0) ulp(g, r) <= max_ulp; relative
 * L2 ||g - r|| / ||r|| <= rel_l2. On failure one line "FAIL <case>: ..." names the case, the bounds
 * and the worst element. Bounds (docs/cuda.md for the device):
 *   golden  (CPU reference vs LyCORIS/PEFT)  f32: atol 1e-5, rtol 1e-4, rel_l2 1e-5; f16/bf16: 1 ulp
 *   device  (device vs CPU reference)        f32: rel_l2 1e-5, rtol 2e-5, atol 2e-5 rms;
 *                                            f16: 1e-3, 2^-9, 1e-3 rms; bf16: 8e-3, 2^-6, 8e-3 rms
 */
#ifndef LF_ADAPTER_CASES_H
#define LF_ADAPTER_CASES_H

#include <stdint.h>

#include "lorafuse/lf_model.h"

#define LF_CASES_GOLDEN_DIR "tests/data/golden"
#define LF_CASE_MAX_PATCHES 8

/* Synthetic algorithms (mixed: adapter 0 LoRA, 1 LoHa, 2 IA3 on one weight). */
typedef enum {
    LF_CA_LORA, LF_CA_LORA_TUCKER, LF_CA_LOHA, LF_CA_LOHA_TUCKER, LF_CA_LOKR, LF_CA_LOKR_TUCKER, LF_CA_DORA_OUT,
    LF_CA_DORA_IN, LF_CA_DORA_LOHA, LF_CA_GLORA, LF_CA_OFT, LF_CA_OFT_LEGACY, LF_CA_BOFT, LF_CA_IA3_OUT,
    LF_CA_IA3_IN, LF_CA_FULL, LF_CA_NORM, LF_CA_MIXED, LF_CA_COUNT
} lf_case_algo;

/* Layer kinds: odd and aligned Linear, 1x1 and 3x3 conv, a 1-D norm weight. */
typedef enum { LF_CL_LIN_ODD, LF_CL_LIN_AL, LF_CL_C1, LF_CL_C3, LF_CL_VEC, LF_CL_COUNT } lf_case_layer;

const char *lf_case_algo_name(lf_case_algo a);
const char *lf_case_layer_name(lf_case_layer l);

/* One synthetic case: adapter i gets coefficient strength * U(0.3, 1.2), negated for i = 1. */
typedef struct lf_case_spec {
    lf_case_algo algo;
    lf_case_layer layer;
    lf_dtype dtype;
    int rank, n_adapters;
    float strength;
} lf_case_spec;

enum { LF_CASES_SYNTH = 1, LF_CASES_GOLDEN = 2 };

typedef struct lf_case_sel {
    unsigned sources;   /* LF_CASES_SYNTH | LF_CASES_GOLDEN */
    int quick;          /* the reduced synthetic list (f32, f16; ranks 4, 16; one adapter) */
    const char *filter; /* substring of the case name; NULL: all */
    uint64_t seed;      /* run seed of the synthetic data */
} lf_case_sel;

typedef struct lf_case {
    char name[160];
    int golden;                   /* 0 synthetic, 1 golden */
    const char *algo;             /* synthetic: table name; golden: the first module's algorithm */
    char layer[40];               /* from the target's shape: lin77x45, c3x3_40x24, vec77 */
    int rank, n_adapters;
    float strength;               /* synthetic: the spec's; golden: the first adapter's */
    const char *spec;             /* golden: the scenario text; synthetic: "" */
    lf_st_tensor target;          /* W0; target.name == name */
    lf_patch patches[LF_CASE_MAX_PATCHES];
    lf_job job;                   /* target + patches */
    const void *expect;           /* golden: the stored result (target dtype and size); else NULL */
    char error[320];              /* non-empty: the case could not be built (fixture problem) */
    /* owned memory */
    void *mem[256];
    int n_mem;
    lf_adapter *adapters[LF_CASE_MAX_PATCHES];
    int n_open;
} lf_case;

/* Build one synthetic case from its spec (name, data from lf_test_seed_mix(seed, name)). Returns 0, or
 * 1 when the algorithm does not apply to the layer (nothing to free then). Exits on out of memory. */
int lf_case_build(const lf_case_spec *spec, uint64_t seed, lf_case *c);
void lf_case_free(lf_case *c);

/* Bytes of the target; 1 when every coefficient is 0 (the result must be W0's bytes exactly). */
size_t lf_case_bytes(const lf_case *c);
int lf_case_all_zero(const lf_case *c);

typedef struct lf_case_iter lf_case_iter;
typedef struct lf_case_counts {
    int synthetic, golden, golden_files, errors; /* cases returned; golden files they came from */
} lf_case_counts;

lf_case_iter *lf_cases_begin(const lf_case_sel *sel);
lf_case *lf_cases_next(lf_case_iter *it);
void lf_cases_end(lf_case_iter *it, lf_case_counts *counts);

/* ---- comparison ------------------------------------------------------------------------------ */

typedef struct lf_tol {
    double rel_l2;   /* bound on ||g - r|| / ||r|| (INFINITY: none) */
    double atol;     /* per element: atol + atol_rms * rms(r) + rtol * |r| (atol INFINITY: none) */
    double atol_rms;
    double rtol;
    int max_ulp;     /* per element, in the dtype's own ulps; -1: none */
    const float *elem; /* per element, added to the absolute bound (an error model's term); NULL: none */
} lf_tol;

lf_tol lf_tol_golden(lf_dtype dt);
lf_tol lf_tol_device(lf_dtype dt);

typedef struct lf_cmp {
    double rel_l2, max_abs, max_rel; /* max_rel over elements with |r| above the absolute bound */
    int64_t max_ulp, fails, nonfinite, first_fail, worst;
    double got_w, ref_w;             /* at `worst`: the element nearest to (or furthest past) its bound */
    int pass;
} lf_cmp;

/* Compare n elements of dtype dt (raw bytes, any alignment); fills *r, returns r->pass. On failure
 * prints one "FAIL <name>: ..." line to stderr. */
int lf_case_compare(const char *name, const void *got, const void *ref, int64_t n, lf_dtype dt, const lf_tol *tol,
                    lf_cmp *r);

#endif
