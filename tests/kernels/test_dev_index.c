/* test_dev_index.c: the CUDA kernels' index math and per-element math (LF_HD functions of
 * kernels/cuda/lf_dev_abi.h, called by kernels/cuda/apply.cu) run on the CPU, compiled by gcc. No GPU.
 *
 * 1. Work list: jobs of mixed shapes (odd sizes, 1x1, 1-D, 3x3 convs flattened, SDXL 1280x5120 and
 *    1280x(2560*9), jobs with no tiles) in one list; every block of the launch maps to one
 *    (job, tile), every thread's accesses (4-wide when vec_ok) stay inside the weight, and every
 *    element of every job is written exactly once.
 * 2. Factor indices per kind (LoKr, GLoRA, OFT, BOFT row mix, DoRA, IA3) over edge shapes and ranks
 *    1..128: in bounds, and the Kronecker / block maps are bijections where they must be.
 * 3. Emulation: the kernels' per-element term math (lf_dev_term_apply, lf_dev_round16) over the work
 *    list's tiles for single-patch jobs (IA3 in/out on a row slice, full diff, LoKr, OFT, LoRA under
 *    DoRA, LoHa), with factors prepared as device_cuda.c prepares them, against lf_job_apply: bit
 *    for bit in f32, f16 and bf16.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/lf_dev_abi.h"
#include "kernels/cpu/adapters/lf_ref.h"
#include "lf_test.h"
#include "lf_test_data.h"
#include "lorafuse/lf_model.h"

/* ---- 1. work list coverage ---------------------------------------------------------------------- */

typedef struct {
    int32_t O, K;
    int vec_ok;
} jshape;

/* walk every (block, thread, element) of a launch over `n` jobs exactly as the kernels do; cover[j]
 * counts the writes of each element of job j. Returns the number of violations. */
static long walk_list(const jshape *js, int32_t n, uint8_t **cover) {
    int32_t *tstart = malloc((size_t)(n + 1) * sizeof *tstart);
    int64_t tiles = 0;
    long bad = 0;
    for (int32_t i = 0; i < n; i++) {
        tstart[i] = (int32_t)tiles;
        tiles += lf_dev_job_tiles(js[i].O, js[i].K);
    }
    tstart[n] = (int32_t)tiles;
    if (tiles > INT32_MAX) bad++;
    for (int32_t bid = 0; bid < (int32_t)tiles; bid++) {
        int32_t li = lf_dev_find_list(tstart, n, bid);
        if (li < 0 || li >= n || tstart[li] > bid || tstart[li + 1] <= bid) {
            bad++;
            continue;
        }
        const jshape *J = &js[li];
        int32_t o0, c0;
        lf_dev_tile_origin(bid - tstart[li], J->K, &o0, &c0);
        if (o0 < 0 || o0 >= J->O || c0 < 0 || c0 >= J->K || o0 % LF_DEV_TM || c0 % LF_DEV_TN) bad++;
        for (int32_t tid = 0; tid < LF_DEV_THREADS; tid++) {
            const int32_t cb = c0 + lf_dev_thr_col(tid), span = lf_dev_span(cb, J->K);
            if (span < 0 || span > 4 || (span > 0 && cb + span > J->K)) bad++;
            if (J->vec_ok && span != 0 && (span != 4 || cb % 4)) bad++; /* 4-wide access fully inside */
            for (int32_t i = 0; i < 8; i++) {
                const int32_t r = lf_dev_thr_row(tid, i), o = o0 + r;
                if (r < 0 || r >= LF_DEV_TM || lf_dev_thr_col(tid) + 3 >= LF_DEV_TN) bad++;
                if (o >= J->O) continue;
                for (int32_t j = 0; j < span; j++) {
                    int64_t at = (int64_t)o * J->K + cb + j;
                    if (at < 0 || at >= (int64_t)J->O * J->K) bad++;
                    else if (cover[li][at] < 255) cover[li][at]++;
                }
            }
        }
    }
    free(tstart);
    return bad;
}

static void test_coverage(void) {
    static const jshape S[] = {
        {77, 45, 0},   {128, 256, 1},  {64, 32, 1},    {40, 216, 1},   {77, 1, 0},    {1, 1, 0},
        {1, 3, 0},     {3, 1, 0},      {63, 65, 0},    {65, 63, 0},    {65, 64, 1},   {64, 65, 0},
        {0, 16, 0},    {320, 2880, 1}, {1, 4096, 1},   {4097, 3, 0},   {129, 4, 1},   {2, 5, 0},
        {1280, 5120, 1}, {1280, 23040, 1}, {640, 1, 0}, {0, 0, 0},     {1280, 1280, 1}, {17, 153, 0},
    };
    const int32_t n = (int32_t)(sizeof S / sizeof S[0]);
    uint8_t **cover = calloc((size_t)n, sizeof *cover);
    for (int32_t i = 0; i < n; i++) cover[i] = calloc((size_t)S[i].O * (size_t)S[i].K + 1, 1);
    long bad = walk_list(S, n, cover);
    LF_CHECK(bad == 0, "mixed list: %ld out-of-bounds or mis-mapped accesses", bad);
    for (int32_t i = 0; i < n; i++) {
        int64_t numel = (int64_t)S[i].O * S[i].K, wrong = 0;
        for (int64_t e = 0; e < numel; e++) wrong += cover[i][e] != 1;
        LF_CHECK(wrong == 0, "job %d (%d x %d): %lld elements not written exactly once", i, S[i].O, S[i].K,
                 (long long)wrong);
        free(cover[i]);
    }
    /* single-job lists and a list of many small jobs of mixed shapes */
    for (int32_t i = 0; i < n; i++) {
        uint8_t *c1 = calloc((size_t)S[i].O * (size_t)S[i].K + 1, 1);
        long b1 = walk_list(&S[i], 1, &c1);
        int64_t numel = (int64_t)S[i].O * S[i].K, wrong = 0;
        for (int64_t e = 0; e < numel; e++) wrong += c1[e] != 1;
        LF_CHECK(b1 == 0 && wrong == 0, "single job %d (%d x %d): %ld bad, %lld not once", i, S[i].O, S[i].K, b1,
                 (long long)wrong);
        free(c1);
    }
    enum { NM = 300 };
    jshape *many = malloc(NM * sizeof *many);
    uint64_t x = 12345;
    for (int i = 0; i < NM; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        many[i].O = (int32_t)((x >> 33) % 200);
        many[i].K = (int32_t)((x >> 13) % 300);
        many[i].vec_ok = many[i].K % 4 == 0 && (x & 1);
    }
    uint8_t **cm = calloc(NM, sizeof *cm);
    for (int i = 0; i < NM; i++) cm[i] = calloc((size_t)many[i].O * (size_t)many[i].K + 1, 1);
    long bm = walk_list(many, NM, cm);
    int64_t wrong = 0;
    for (int i = 0; i < NM; i++) {
        for (int64_t e = 0; e < (int64_t)many[i].O * many[i].K; e++) wrong += cm[i][e] != 1;
        free(cm[i]);
    }
    LF_CHECK(bm == 0 && wrong == 0, "%d mixed jobs: %ld bad accesses, %lld elements not written once", NM, bm,
             (long long)wrong);
    free(cm);
    free(many);
    free(cover);
}

/* 0, step, 2*step, ..., always ending with n - 1 (edges of large shapes without the full sweep) */
static int32_t sample_next(int32_t v, int32_t n, int32_t step) {
    if (v >= n - 1) return n;
    return v + step < n - 1 ? v + step : n - 1;
}

/* ---- 2. factor indices --------------------------------------------------------------------------- */

static void test_factor_indices(void) {
    static const int32_t ranks[] = {1, 2, 3, 4, 7, 16, 31, 32, 33, 64, 127, 128};
    long bad = 0;
    /* LoKr: (a, b, c, d, khw); every element maps into W1 (a, c) x W2 (b, d*khw), bijectively */
    static const int32_t lk[][5] = {{1, 1, 1, 1, 1}, {4, 19, 3, 15, 1}, {1, 77, 3, 15, 1}, {8, 5, 4, 6, 9},
                                    {2, 3, 5, 7, 9},  {16, 80, 8, 160, 1}, {3, 1, 1, 2, 9}};
    for (size_t t = 0; t < sizeof lk / sizeof lk[0]; t++) {
        int64_t a = lk[t][0], b = lk[t][1], c = lk[t][2], d = lk[t][3], khw = lk[t][4];
        int64_t O = a * b, K = c * d * khw, n1 = a * c, n2 = b * d * khw;
        uint8_t *seen = calloc((size_t)(n1 * n2), 1);
        for (int64_t o = 0; o < O; o++)
            for (int64_t col = 0; col < K; col++) {
                int64_t i1, i2;
                lf_math_lokr_index(o, col, b, c, d, khw, &i1, &i2);
                if (i1 < 0 || i1 >= n1 || i2 < 0 || i2 >= n2) bad++;
                else if (seen[i1 * n2 + i2]++) bad++;
            }
        free(seen);
    }
    LF_CHECK(bad == 0, "LoKr index map: %ld violations", bad);

    /* GLoRA / DoRA / IA3 on (rows, I, khw) slices, ranks 1..128 */
    static const int32_t gs[][3] = {{1, 1, 1}, {77, 45, 1}, {40, 24, 9}, {64, 32, 1}, {33, 7, 9}, {1280, 2560, 9}};
    bad = 0;
    for (size_t t = 0; t < sizeof gs / sizeof gs[0]; t++) {
        const int32_t rows = gs[t][0], I = gs[t][1], khw = gs[t][2], K = I * khw;
        const int32_t step_o = rows > 200 ? 37 : 1, step_c = K > 2000 ? 101 : 1;
        for (size_t ri = 0; ri < sizeof ranks / sizeof ranks[0]; ri++) {
            const int32_t r = ranks[ri];
            for (int32_t ol = 0; ol < rows; ol = sample_next(ol, rows, step_o)) {
                for (int32_t c = 0; c < K; c = sample_next(c, K, step_c)) {
                    const int32_t ch = lf_dev_col_channel(c, khw), sp = c - ch * khw;
                    if (ch < 0 || ch >= I || sp < 0 || sp >= khw) bad++;
                    int64_t t0 = lf_dev_glora_t_index(ol, 0, r, sp, khw), t1 = lf_dev_glora_t_index(ol, r - 1, r, sp, khw);
                    if (t0 < 0 || t1 >= (int64_t)rows * r * khw) bad++;
                    if ((int64_t)(r - 1) * I + ch >= (int64_t)r * I) bad++;
                    if ((int64_t)ol * r + r - 1 >= (int64_t)rows * r || (int64_t)(r - 1) * K + c >= (int64_t)r * K) bad++;
                    int32_t d1 = lf_dev_dora_index(1, ol, c, khw), d2 = lf_dev_dora_index(2, ol, c, khw);
                    if (d1 != ol || d2 < 0 || d2 >= I) bad++;
                    int32_t i0 = lf_dev_ia3_index(0, ol, c, khw), i1 = lf_dev_ia3_index(1, ol, c, khw);
                    if (i0 != ol || i1 != ch) bad++;
                }
            }
        }
    }
    LF_CHECK(bad == 0, "GLoRA / DoRA / IA3 indices: %ld violations", bad);

    /* OFT blocks and the BOFT composite: sources stay in the element's block of its slice, the
     * (m, n) -> R map covers each block's b*b entries once */
    static const int32_t ob[][3] = {{4, 4, 0}, {77, 7, 0}, {128, 16, 0}, {40, 8, 40}, {1280, 64, 0}, {6, 2, 3}, {2, 2, 0}};
    bad = 0;
    for (size_t t = 0; t < sizeof ob / sizeof ob[0]; t++) {
        const int32_t rows = ob[t][0], bsz = ob[t][1], row_off = ob[t][2], nblk = rows / bsz;
        uint8_t *seen = calloc((size_t)nblk * bsz * bsz, 1);
        for (int32_t ol = 0; ol < rows; ol++)
            for (int32_t n = 0; n < bsz; n++) {
                int64_t src = lf_dev_block_src_row(row_off, ol, bsz, n);
                if (src < row_off + (ol / bsz) * bsz || src >= row_off + (ol / bsz + 1) * bsz || src >= row_off + rows) bad++;
                int64_t ri = lf_dev_oft_r_index(ol, bsz, n);
                if (ri < (int64_t)(ol / bsz) * bsz * bsz || ri >= (int64_t)(ol / bsz + 1) * bsz * bsz) bad++;
                else if (seen[ri]++) bad++;
                int64_t qi = lf_dev_rowmix_index(ol, bsz, n);
                if (qi < 0 || qi >= (int64_t)rows * bsz) bad++;
                /* R_blk[n][m]: row n, column m = ol % bsz */
                if (ri != ((int64_t)(ol / bsz) * bsz + n) * bsz + ol % bsz) bad++;
            }
        free(seen);
    }
    LF_CHECK(bad == 0, "OFT / BOFT row-block indices: %ld violations", bad);

    /* spans and rounding flags */
    LF_CHECK(lf_dev_span(0, 1) == 1 && lf_dev_span(4, 7) == 3 && lf_dev_span(8, 8) == 0 && lf_dev_span(4, 64) == 4,
             "lf_dev_span");
    LF_CHECK(lf_dev_bits16_bad(lf_dev_round16(65520.0f, LF_DDT_F16), LF_DDT_F16) &&
                 !lf_dev_bits16_bad(lf_dev_round16(65519.0f, LF_DDT_F16), LF_DDT_F16) &&
                 lf_dev_bits16_bad(lf_dev_round16(3.4e38f, LF_DDT_BF16), LF_DDT_BF16) &&
                 !lf_dev_bits16_bad(lf_dev_round16(3.0e38f, LF_DDT_BF16), LF_DDT_BF16) &&
                 lf_dev_bits16_bad(lf_dev_round16(NAN, LF_DDT_F16), LF_DDT_F16),
             "16-bit overflow to Inf is flagged as not finite");
}

/* ---- 3. emulation of the terms kernel's per-element math against lf_job_apply --------------------- */

static lf_test_rng rng = {LF_TEST_RNG_SEED};

static int ddt_of(lf_dtype dt) { return dt == LF_F32 ? LF_DDT_F32 : dt == LF_F16 ? LF_DDT_F16 : LF_DDT_BF16; }

static float *frand(int64_t n, float amp) {
    float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
    for (int64_t i = 0; i < n; i++) f[i] = lf_test_rng_uniform(&rng, -amp, amp);
    return f;
}

enum { E_IA3_OUT, E_IA3_IN, E_FULL, E_LOKR, E_OFT, E_DORA_OUT, E_DORA_IN, E_LOHA, E_COUNT };
static const char *E_NAMES[E_COUNT] = {"ia3_out", "ia3_in", "full", "lokr", "oft", "dora_out", "dora_in", "loha"};

/* one case: weight (O, I, kh, kw) in dt, one patch of kind `e` on rows [row_off, row_off + rows) */
static int emulate_case(int e, lf_dtype dt, int64_t O, int64_t I, int64_t kh, int64_t kw, int64_t row_off,
                        int64_t rows, int32_t r) {
    const int64_t khw = kh * kw, K = I * khw, n = O * K;
    const int ndim = khw > 1 ? 4 : 2;
    float *keep[12];
    int nk = 0;
    /* W0 in dt */
    float *w0f = frand(n, 1.0f);
    void *w0 = malloc((size_t)n * 4);
    lf_f32_to_dtype(w0f, n, dt, w0);
    lf_st_tensor tg;
    memset(&tg, 0, sizeof tg);
    tg.name = "emu";
    tg.dtype = dt;
    tg.ndim = ndim;
    tg.shape[0] = O;
    tg.shape[1] = I;
    tg.shape[2] = kh;
    tg.shape[3] = kw;
    tg.end = (uint64_t)n * (lf_dtype_bits(dt) / 8);
    tg.data = w0;
    lf_patch p;
    memset(&p, 0, sizeof p);
    p.coef = lf_test_rng_uniform(&rng, 0.3f, 1.2f);
    p.row_off = row_off;
    p.rows = rows == O ? 0 : rows;
    lf_module *m = &p.mod;
    m->name = "emu";
    float *alpha = malloc(sizeof *alpha);
    *alpha = (float)r;
    keep[nk++] = alpha;
    lf_dterm T;
    memset(&T, 0, sizeof T);
    T.row_off = (int32_t)row_off;
    T.rows = (int32_t)rows;
    float *fa = NULL, *fb = NULL, *fx = NULL, *kv = NULL;
    switch (e) {
    case E_IA3_OUT:
    case E_IA3_IN: {
        int in = e == E_IA3_IN;
        fa = frand(in ? I : rows, 0.5f);
        lf_test_set_role(m, LF_R_IA3_W, lf_test_view(fa, LF_F32, 1, in ? I : rows, 0, 0, 0));
        float *on = malloc(sizeof *on);
        *on = (float)in;
        keep[nk++] = on;
        lf_test_set_role(m, LF_R_ON_INPUT, lf_test_view(on, LF_F32, 0, 0, 0, 0, 0));
        T.kind = LF_TK_IA3;
        T.i0 = in;
        T.a = fa;
        break;
    }
    case E_FULL:
        fa = frand(rows * K, 0.3f);
        lf_test_set_role(m, LF_R_DIFF, lf_test_view(fa, LF_F32, ndim, rows, I, kh, kw));
        T.kind = LF_TK_FULL;
        T.a = fa;
        break;
    case E_LOKR: { /* full W1 (a, c), W2 (b, d*khw); rows = a*b, I = c*d */
        int64_t a = rows % 4 == 0 ? 4 : 1, b = rows / a, c = I % 3 == 0 ? 3 : 1, d = I / c;
        fa = frand(a * c, 1.0f);
        fb = frand(b * d * khw, 0.5f);
        lf_test_set_role(m, LF_R_KW1, lf_test_view(fa, LF_F32, 2, a, c, 0, 0));
        lf_test_set_role(m, LF_R_KW2, khw > 1 ? lf_test_view(fb, LF_F32, 4, b, d, kh, kw) : lf_test_view(fb, LF_F32, 2, b, d, 0, 0));
        T.kind = LF_TK_LOKR;
        T.a = fa;
        T.b = fb;
        T.i0 = (int32_t)b;
        T.i1 = (int32_t)c;
        T.i2 = (int32_t)d;
        T.i3 = (int32_t)khw;
        break;
    }
    case E_OFT: {
        int64_t bs = rows % 8 == 0 ? 8 : rows % 5 == 0 ? 5 : 1, nb = rows / bs;
        fa = frand(nb * bs * bs, 0.2f);
        fb = frand(rows, 1.2f);
        lf_test_set_role(m, LF_R_OFT_BLOCKS, lf_test_view(fa, LF_F32, 3, nb, bs, bs, 0));
        lf_test_set_role(m, LF_R_RESCALE, lf_test_view(fb, LF_F32, 2, rows, 1, 0, 0));
        T.kind = LF_TK_OFT;
        T.i0 = (int32_t)bs;
        T.rescale = fb;
        break;
    }
    case E_DORA_OUT:
    case E_DORA_IN:
    case E_LOHA: {
        int loha = e == E_LOHA;
        fa = frand(rows * r, 0.5f);
        fb = frand(r * K, 0.5f);
        if (loha) {
            float *a2 = frand(rows * r, 0.5f), *b2 = frand(r * K, 0.5f);
            keep[nk++] = a2;
            keep[nk++] = b2;
            lf_test_set_role(m, LF_R_HW1A, lf_test_view(fa, LF_F32, 2, rows, r, 0, 0));
            lf_test_set_role(m, LF_R_HW1B, lf_test_view(fb, LF_F32, 2, r, K, 0, 0));
            lf_test_set_role(m, LF_R_HW2A, lf_test_view(a2, LF_F32, 2, rows, r, 0, 0));
            lf_test_set_role(m, LF_R_HW2B, lf_test_view(b2, LF_F32, 2, r, K, 0, 0));
        } else {
            lf_test_set_role(m, LF_R_UP, lf_test_view(fa, LF_F32, 2, rows, r, 0, 0));
            lf_test_set_role(m, LF_R_DOWN, khw > 1 ? lf_test_view(fb, LF_F32, 4, r, I, kh, kw) : lf_test_view(fb, LF_F32, 2, r, I, 0, 0));
            int64_t nm = e == E_DORA_OUT ? rows : I;
            kv = frand(nm, 1.0f);
            for (int64_t q = 0; q < nm; q++) kv[q] = fabsf(kv[q]) + 0.25f;
            lf_test_set_role(m, LF_R_DORA, e == E_DORA_OUT ? lf_test_view(kv, LF_F32, 2, rows, 1, 0, 0) : lf_test_view(kv, LF_F32, 2, 1, I, 0, 0));
        }
        T.kind = loha ? LF_TK_LOHA : LF_TK_LOWRANK;
        break;
    }
    default: return 1;
    }
    lf_test_set_role(m, LF_R_ALPHA, lf_test_view(alpha, LF_F32, 0, 0, 0, 0, 0));
    lf_view wv = lf_test_view(NULL, LF_F32, ndim, rows, I, kh, kw);
    if (lf_module_resolve(m, &wv) != LF_OK) {
        fprintf(stderr, "emulate %s: resolve: %s\n", E_NAMES[e], lf_last_error());
        return 0;
    }
    const float g = (e == E_FULL || e == E_IA3_IN || e == E_IA3_OUT || e == E_OFT) ? 1.0f : m->gamma;

    /* factor preparation as device_cuda.c does it, with the CPU reference's own routines */
    float *R = NULL, *prod = NULL, *w0s = malloc((size_t)n * sizeof *w0s);
    lf_view full = lf_test_view(NULL, LF_F32, 1, n, 0, 0, 0);
    full.data = w0;
    full.dtype = dt;
    lf_view_to_f32(&full, w0s);
    if (e == E_OFT) {
        R = malloc((size_t)(rows / T.i0) * T.i0 * T.i0 * sizeof *R);
        lf_oft_rotation_ref(fa, rows / T.i0, T.i0, m->alpha * (double)rows, R);
        T.a = R;
    }
    if (T.kind == LF_TK_LOWRANK || T.kind == LF_TK_LOHA) {
        /* the kernel's FMA product is the reference's matmul order (fmaf in rank order from 0) */
        prod = malloc((size_t)(rows * K) * sizeof *prod);
        lf_ref_factor f1, f2;
        memset(&f1, 0, sizeof f1);
        memset(&f2, 0, sizeof f2);
        f1.rows = f2.rows = rows;
        f1.cols = f2.cols = K;
        f1.a = fa;
        f1.b = fb;
        f1.r = f1.lda = r;
        if (T.kind == LF_TK_LOHA) {
            f2.a = keep[nk - 2];
            f2.b = keep[nk - 1];
            f2.r = f2.lda = r;
            lf_loha_delta_ref(&f1, &f2, prod);
        } else {
            lf_lora_delta_ref(&f1, prod);
        }
    }
    if (T.kind == LF_TK_LOWRANK) { /* DoRA k from the norms of Wc (the norm pass), lf_math_dora_scale */
        int64_t nm = m->dora_axis == 1 ? rows : I;
        double *ss = calloc((size_t)nm, sizeof *ss);
        fx = malloc((size_t)nm * sizeof *fx);
        for (int64_t ol = 0; ol < rows; ol++)
            for (int64_t c = 0; c < K; c++) {
                float wc = lf_math_axpy(w0s[(row_off + ol) * K + c], g, prod[ol * K + c]);
                ss[lf_dev_dora_index(m->dora_axis, (int32_t)ol, (int32_t)c, (int32_t)khw)] += (double)wc * wc;
            }
        for (int64_t q = 0; q < nm; q++) fx[q] = lf_math_dora_scale(kv[q], (float)sqrt(ss[q]));
        free(ss);
        T.dora_axis = m->dora_axis;
        T.kvec = fx;
    }
    lf_djob J;
    memset(&J, 0, sizeof J);
    J.w0 = w0;
    J.dtype = ddt_of(dt);
    J.O = (int32_t)O;
    J.K = (int32_t)K;
    J.I = (int32_t)I;
    J.khw = (int32_t)khw;
    J.nterm = 1;

    /* the kernel: acc = W0; the term per element (tiles of the work list); one rounding */
    void *got = malloc((size_t)n * 4);
    jshape js = {J.O, J.K, 0};
    int64_t tiles = lf_dev_job_tiles(O, K);
    int32_t ts[2] = {0, (int32_t)tiles};
    for (int32_t bid = 0; bid < (int32_t)tiles; bid++) {
        int32_t o0, c0;
        lf_dev_tile_origin(bid - ts[lf_dev_find_list(ts, 1, bid)], js.K, &o0, &c0);
        for (int32_t tid = 0; tid < LF_DEV_THREADS; tid++)
            for (int32_t i = 0; i < 8; i++)
                for (int32_t j = 0; j < 4; j++) {
                    int32_t o = o0 + lf_dev_thr_row(tid, i), c = c0 + lf_dev_thr_col(tid) + j, ol = o - T.row_off;
                    if (o >= J.O || c >= J.K) continue;
                    int64_t at = (int64_t)o * K + c;
                    float acc = lf_dev_ld(J.w0, J.dtype, at);
                    if (ol >= 0 && ol < T.rows)
                        acc = lf_dev_term_apply(&T, &J, acc, o, c, p.coef, g, prod ? prod[(int64_t)ol * K + c] : 0.0f);
                    if (J.dtype == LF_DDT_F32) ((float *)got)[at] = acc;
                    else ((uint16_t *)got)[at] = lf_dev_round16(acc, J.dtype);
                }
    }
    lf_job job;
    memset(&job, 0, sizeof job);
    job.target = &tg;
    job.patches = &p;
    job.n_patches = 1;
    void *ref = malloc((size_t)n * 4);
    lf_status st = lf_job_apply(&job, 0, ref);
    size_t bytes = (size_t)n * (lf_dtype_bits(dt) / 8);
    int64_t diff = 0, first = -1;
    for (int64_t q = 0; q < n; q++) {
        int same = dt == LF_F32 ? memcmp((float *)got + q, (float *)ref + q, 4) == 0
                                : memcmp((uint16_t *)got + q, (uint16_t *)ref + q, 2) == 0;
        if (!same && first < 0) first = q;
        diff += !same;
    }
    (void)bytes;
    int ok = st == LF_OK && diff == 0;
    LF_CHECK(ok, "emulated %s %s (%lld x %lld x %lldx%lld, rows %lld+%lld, r %d): %s, %lld elements differ (first %lld)",
             E_NAMES[e], lf_dtype_name(dt), (long long)O, (long long)I, (long long)kh, (long long)kw,
             (long long)row_off, (long long)rows, r, st == LF_OK ? "ok" : lf_last_error(), (long long)diff,
             (long long)first);
    for (int q = 0; q < nk; q++) free(keep[q]);
    free(fa);
    free(fb);
    free(fx);
    free(kv);
    free(R);
    free(prod);
    free(w0s);
    free(w0f);
    free(w0);
    free(got);
    free(ref);
    return ok;
}

static void test_emulation(void) {
    static const lf_dtype dts[] = {LF_F32, LF_F16, LF_BF16};
    static const int64_t shp[][6] = {
        /* O, I, kh, kw, row_off, rows */
        {77, 45, 1, 1, 0, 77}, {128, 96, 1, 1, 0, 128}, {40, 24, 3, 3, 0, 40}, {120, 30, 1, 1, 40, 40},
        {65, 66, 1, 1, 0, 65}, {64, 33, 3, 3, 16, 40},
    };
    static const int32_t ranks[] = {1, 4, 17};
    int cases = 0;
    for (int e = 0; e < E_COUNT; e++)
        for (size_t d = 0; d < 3; d++)
            for (size_t s = 0; s < sizeof shp / sizeof shp[0]; s++)
                for (size_t ri = 0; ri < 3; ri++) {
                    int ranked = e == E_DORA_OUT || e == E_DORA_IN || e == E_LOHA;
                    if (!ranked && ri) continue;
                    /* DoRA input axis on a row slice: the reference normalises over the slice's rows */
                    emulate_case(e, dts[d], shp[s][0], shp[s][1], shp[s][2], shp[s][3], shp[s][4], shp[s][5], ranks[ri]);
                    cases++;
                }
    printf("emulation: %d cases\n", cases);
}

int main(void) {
    test_coverage();
    test_factor_indices();
    test_emulation();
    return lf_test_finish();
}
