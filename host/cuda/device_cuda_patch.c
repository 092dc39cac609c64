/* device_cuda_patch.c: the host-side preparation of each adapter algorithm's factors for the device
 * kernels (kernels/cuda/apply.cu, work list in kernels/cuda/lf_dev_abi.h): lf_patch_<algo> for each
 * kernels/cpu/adapters/<algo>_ref.c (norm shares full's), dispatched by lf_patch_setup. C11 compiled
 * by gcc against cuda_runtime.h; CUDA builds only.
 *
 * A patch on rows [row_off, row_off + rows) of a job's flat(W) (O, K), K = I * khw, becomes either a
 * column block of the job's concatenated LoRA (plain LoRA/LoCon without DoRA) or one lf_dterm. Every
 * factor is f32, row-major, and expanded once here wherever the expansion does not depend on the
 * strength s, with the CPU reference code where it exists (kernels/cpu/adapters/lf_ref.h):
 *   LoRA (cat)   up (O, rp) holds each patch's up (rows, r') in its row slice, down (rp, K), rank_patch
 *                (rp); r' = dyn_rank or r, rp = sum r' padded to LF_DEV_KC_TC on the tensor-core path
 *   LoRA + DoRA  LOWRANK a = up (rows, r'), b = down (r', K)
 *                Tucker: b = mid (r, r, khw) contracted with the stored down (r, I) (lf_lora_delta_ref)
 *   LoHa         LOHA a (rows, r), b (r, K), a2 (rows, r2), b2 (r2, K); dW = (a @ b) (.) (a2 @ b2)
 *                Tucker: w_a (r, rows) transposed, core t (r, r, khw) contracted with w_b (r, I)
 *   LoKr         LOKR a = W1 (a, c), b = W2 (b, k2), k2 = d * khw, each side full or w_a @ w_b (+ t2)
 *                via lf_lora_delta_ref; dW = W1 (x) W2
 *   GLoRA        GLORA a = W0 x_in a1 (rows, r, khw) (the first loop of glora_ref.c), b = a2 (r, I),
 *                a2 = b1 (rows, r), b2 = b2 (r, K) (old layout: the roles swapped)
 *   full, norm   FULL a = diff / w_norm (rows * K); bias patches: diff_b / b_norm (rows) on K == 1
 *   IA3          IA3 a = w (rows, or I when on_input)
 *   OFT          OFT a = R (nblk, b, b), Cayley rotations of the blocks with constraint alpha * rows
 *                (lf_oft_rotation_ref; legacy: the blocks as stored), rescale (rows)
 *   BOFT         ROWMIX a = Q (rows, G), G = b * 2^(nm-1): rotations R (nm * nb, b, b) once, the
 *                composite Q of the butterfly stages rebuilt (double) when s changes (lf_boft_composite);
 *                rescale (rows)
 *   DoRA         on an additive term: ss (n, double) and kvec (n) on the device, n = rows (axis 1) or I;
 *                the norm pass (device_cuda.c) fills kvec = m / (||Wc|| + eps) from ss
 * gamma[gp] is the module's gamma for LoRA, LoHa, LoKr and GLoRA and 1 otherwise.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "device_internal.h"
#include "host/base/util.h"
#include "kernels/cpu/adapters/lf_ref.h"
#include "host/adapter/module_geometry.h" /* lf_has, lf_module_lokr_dims, shared with the CPU reference */
#include "kernels/common/lf_math.h"

#define LF_BOFT_MAX_BYTES (256ull << 20)

/* ---- helpers ----------------------------------------------------------------------------------- */

/* element count for malloc: at least 1 */
static size_t lf_nz(int64_t n) { return n > 0 ? (size_t)n : 1; }

/* f32 copy of a role's tensor (malloc'd); checks the element count when want >= 0 */
static lf_status lf_f32_of(const lf_module *m, lf_role r, int64_t want, const char *layer, float **out) {
    *out = NULL;
    if (!lf_has(m, r)) return lf_err(LF_ERR_FORMAT, "layer '%s': module '%s' has no %s", layer, m->name, lf_role_name(r));
    int64_t n = lf_view_numel(&m->t[r]);
    if (want >= 0 && n != want)
        return lf_err(LF_ERR_SHAPE, "layer '%s': module '%s': %s has %lld elements, expected %lld", layer, m->name,
                      lf_role_name(r), (long long)n, (long long)want);
    float *f = malloc(lf_nz(n) * sizeof *f);
    if (!f) return lf_err(LF_ERR_NOMEM, "layer '%s': out of memory", layer);
    lf_status st = lf_view_to_f32(&m->t[r], f);
    if (st) {
        free(f);
        return lf_err_wrap(st, "layer '%s': module '%s': %s: ", layer, m->name, lf_role_name(r));
    }
    *out = f;
    return LF_OK;
}

/* identity (n, n), the left factor that makes lf_lora_delta_ref return the Tucker-expanded right
 * factor itself: fmaf(1, x, 0) = x and fmaf(0, y, acc) = acc */
static float *lf_identity(int64_t n) {
    float *e = calloc(lf_nz(n * n), sizeof *e);
    if (e)
        for (int64_t i = 0; i < n; i++) e[i * n + i] = 1.0f;
    return e;
}

/* TB (r, K) = core t (r, r, khw) contracted with b (r, ch): the "effective down" of a Tucker form,
 * computed by the CPU reference itself */
static lf_status lf_tucker_expand(const float *t, const float *b, int64_t r, int64_t K, int64_t khw,
                                  const char *layer, float **out) {
    *out = NULL;
    float *e = lf_identity(r), *tb = malloc(lf_nz(r * K) * sizeof *tb);
    lf_status st = LF_OK;
    if (!e || !tb) st = lf_err(LF_ERR_NOMEM, "layer '%s': out of memory", layer);
    if (!st) {
        lf_ref_factor f;
        memset(&f, 0, sizeof f);
        f.a = e;
        f.b = b;
        f.t = t;
        f.rows = r;
        f.cols = K;
        f.r = r;
        f.lda = r;
        f.khw = khw;
        st = lf_lora_delta_ref(&f, tb);
    }
    free(e);
    if (st) {
        free(tb);
        return st;
    }
    *out = tb;
    return LF_OK;
}

static lf_status lf_term_push(lf_dev_model *dm, const lf_dterm *t, size_t *idx) {
    if (lf_grow(&dm->hterms, &dm->capterms, dm->nterms + 1)) return lf_err(LF_ERR_NOMEM, "out of memory");
    *idx = dm->nterms;
    dm->hterms[dm->nterms++] = *t;
    return LF_OK;
}

/* one patch being prepared: the model, the job, the patch and the geometry every algorithm reads */
typedef struct {
    lf_dev_model *dm;
    size_t j, gp;          /* job index, global patch index */
    const lf_job *job;
    const lf_patch *p;
    const lf_module *m;
    lf_hjob *hj;
    const char *layer;
    int64_t rows, K, I, khw; /* rows of the slice; the job's K, I, khw */
} lf_patch_ctx;

/* ---- lora ---------------------------------------------------------------------------------------- */

/* The rank a LoRA module contributes: dyn_rank keeps the first dyn_rank of its r ranks (not with a
 * Tucker core, whose ranks are not ordered). */
static int64_t lf_lora_rank_used(const lf_module *m) {
    int64_t r = m->t[LF_R_DOWN].shape[0];
    return (!lf_has(m, LF_R_MID) && m->dyn_rank > 0 && m->dyn_rank < r) ? m->dyn_rank : r;
}

/* A LoRA / LoCon module's factors in f32 (malloc'd): up (rows, r) and down (r, K), a Tucker core
 * (r, r, kh, kw) folded into down by the CPU reference (lf_tucker_expand). */
static lf_status lf_lora_factors(const lf_module *m, int64_t rows, int64_t K, int64_t I, int64_t khw,
                                 const char *layer, float **up, float **down) {
    int64_t r = m->t[LF_R_DOWN].shape[0];
    float *core = NULL, *d = NULL;
    lf_status st;
    *down = NULL;
    if ((st = lf_f32_of(m, LF_R_UP, rows * r, layer, up)) != LF_OK) return st;
    if (lf_has(m, LF_R_MID)) {
        st = lf_f32_of(m, LF_R_MID, r * r * khw, layer, &core);
        if (!st) st = lf_f32_of(m, LF_R_DOWN, r * I, layer, &d);
        if (!st) st = lf_tucker_expand(core, d, r, K, khw, layer, down);
        free(core);
        free(d);
    } else {
        st = lf_f32_of(m, LF_R_DOWN, r * K, layer, down);
    }
    if (st) {
        free(*up);
        *up = NULL;
    }
    return st;
}

/* LoRA / LoCon: a member of the job's concatenated LoRA (lf_cat_build), or a LOWRANK term under DoRA */
static lf_status lf_patch_lora(const lf_patch_ctx *pc, lf_dterm *t) {
    lf_dev_model *dm = pc->dm;
    size_t gp = pc->gp;
    lf_hjob *hj = pc->hj;
    const lf_module *m = pc->m;
    const char *layer = pc->layer;
    int64_t rows = pc->rows, K = pc->K, I = pc->I, khw = pc->khw;
    lf_status st = LF_OK;
    float *f1 = NULL, *f2 = NULL;
    int64_t r = m->t[LF_R_DOWN].shape[0], use = lf_lora_rank_used(m);
    if (!lf_has(m, LF_R_DORA)) {
        dm->patches[gp].in_cat = 1;
        hj->ncat++;
        return LF_OK; /* filled by lf_cat_build */
    }
    t->kind = LF_TK_LOWRANK;
    t->r = (int32_t)use;
    LF_TRY(lf_lora_factors(m, rows, K, I, khw, layer, &f1, &f2));
    if (use < r) /* dyn_rank: first `use` columns of up (rows of down are contiguous) */
        for (int64_t o = 0; o < rows; o++) memmove(f1 + o * use, f1 + o * r, (size_t)use * sizeof *f1);
    LF_TRY(lf_dupload(dm, f1, (size_t)(rows * use) * 4, "lora up", layer, (void **)&t->a));
    LF_TRY(lf_dupload(dm, f2, (size_t)(use * K) * 4, "lora down", layer, (void **)&t->b));
    hj->factor_bytes += (uint64_t)(rows + K) * use * 4;
fail:
    free(f1);
    free(f2);
    return st;
}

/* Concatenated LoRA of job j: up (O, rp) with the patches' up columns in their row slices, down
 * (rp, K), rank_patch (rp); rp padded to LF_DEV_KC_TC on the tensor-core path. */
lf_status lf_cat_build(lf_dev_model *dm, size_t j, const lf_job *job, lf_djob *dj) {
    lf_hjob *hj = &dm->jobs[j];
    const char *layer = hj->name;
    int64_t O = hj->O, K = hj->K, I = hj->I, khw = hj->khw, rtot = 0;
    for (size_t i = 0; i < job->n_patches; i++) {
        if (!dm->patches[hj->patch0 + i].in_cat) continue;
        rtot += lf_lora_rank_used(&job->patches[i].mod);
    }
    if (rtot == 0) return LF_OK;
    int tc = rtot >= dm->opts.tc_min_rank;
    int64_t rp = tc ? (int64_t)lf_round_up((size_t)rtot, LF_DEV_KC_TC) : rtot;
    float *up = calloc((size_t)(O * rp), sizeof *up), *down = calloc((size_t)(rp * K), sizeof *down);
    int32_t *rpat = malloc((size_t)rp * sizeof *rpat);
    float *fu = NULL, *tb = NULL;
    lf_status st = LF_OK;
    if (!up || !down || !rpat) {
        st = lf_err(LF_ERR_NOMEM, "layer '%s': out of memory for the concatenated LoRA (%lld ranks)", layer,
                    (long long)rtot);
        goto fail;
    }
    for (int64_t k = 0; k < rp; k++) rpat[k] = -1;
    int64_t col = 0;
    for (size_t i = 0; i < job->n_patches; i++) {
        size_t gp = hj->patch0 + i;
        if (!dm->patches[gp].in_cat) continue;
        const lf_patch *p = &job->patches[i];
        const lf_module *m = &p->mod;
        int64_t rows = p->rows ? p->rows : O, r = m->t[LF_R_DOWN].shape[0], use = lf_lora_rank_used(m);
        LF_TRY(lf_lora_factors(m, rows, K, I, khw, layer, &fu, &tb));
        for (int64_t o = 0; o < rows; o++)
            memcpy(up + (p->row_off + o) * rp + col, fu + o * r, (size_t)use * sizeof *up);
        memcpy(down + col * K, tb, (size_t)(use * K) * sizeof *down);
        for (int64_t k = 0; k < use; k++) rpat[col + k] = (int32_t)gp;
        col += use;
        hj->factor_bytes += (uint64_t)(rows + K) * use * 4;
        free(fu);
        free(tb);
        fu = tb = NULL;
    }
    LF_TRY(lf_dupload(dm, up, (size_t)(O * rp) * 4, "lora up (concatenated)", layer, (void **)&dj->up));
    LF_TRY(lf_dupload(dm, down, (size_t)(rp * K) * 4, "lora down (concatenated)", layer, (void **)&dj->down));
    LF_TRY(lf_dupload(dm, rpat, (size_t)rp * 4, "rank map", layer, (void **)&dj->rank_patch));
    dj->rcat = (int32_t)rp;
    dj->tc = !tc ? 0 : (hj->dtype == LF_F32 && dm->opts.tf32_split_f32 >= 0) ? 2 : 1;
fail:
    free(up);
    free(down);
    free(rpat);
    free(fu);
    free(tb);
    return st;
}

/* ---- loha ---------------------------------------------------------------------------------------- */

/* LoHa: the two Hadamard factors, Tucker cores folded into the right ones */
static lf_status lf_patch_loha(const lf_patch_ctx *pc, lf_dterm *t) {
    lf_dev_model *dm = pc->dm;
    lf_hjob *hj = pc->hj;
    const lf_module *m = pc->m;
    const char *layer = pc->layer;
    int64_t rows = pc->rows, K = pc->K, I = pc->I, khw = pc->khw;
    lf_status st = LF_OK;
    float *f1 = NULL, *f2 = NULL, *f3 = NULL, *f4 = NULL;
    int tk = lf_has(m, LF_R_HT1);
    static const lf_role ra[2] = {LF_R_HW1A, LF_R_HW2A}, rb[2] = {LF_R_HW1B, LF_R_HW2B}, rt[2] = {LF_R_HT1, LF_R_HT2};
    t->kind = LF_TK_LOHA;
    for (int q = 0; q < 2; q++) {
        int64_t r = m->t[rb[q]].shape[0];
        float *a = NULL, *b = NULL;
        LF_TRY(lf_f32_of(m, ra[q], rows * r, layer, &a));
        if (q == 0) f1 = a;
        else f3 = a;
        if (tk) {
            float *core = NULL, *bb = NULL, *at = malloc(lf_nz(rows * r) * sizeof *at);
            if (!at) {
                st = lf_err(LF_ERR_NOMEM, "layer '%s': out of memory", layer);
                goto fail;
            }
            for (int64_t pp = 0; pp < r; pp++) /* w_a (R, O) -> (O, R) */
                for (int64_t o = 0; o < rows; o++) at[o * r + pp] = a[pp * rows + o];
            memcpy(a, at, (size_t)(rows * r) * sizeof *a);
            free(at);
            st = lf_f32_of(m, rt[q], r * r * khw, layer, &core);
            if (!st) st = lf_f32_of(m, rb[q], r * I, layer, &bb);
            if (!st) st = lf_tucker_expand(core, bb, r, K, khw, layer, &b);
            free(core);
            free(bb);
            if (st) goto fail;
        } else {
            LF_TRY(lf_f32_of(m, rb[q], r * K, layer, &b));
        }
        if (q == 0) f2 = b;
        else f4 = b;
        const float **dst_a = q == 0 ? &t->a : &t->a2, **dst_b = q == 0 ? &t->b : &t->b2;
        LF_TRY(lf_dupload(dm, q == 0 ? f1 : f3, (size_t)(rows * r) * 4, "loha w_a", layer, (void **)dst_a));
        LF_TRY(lf_dupload(dm, b, (size_t)(r * K) * 4, "loha w_b", layer, (void **)dst_b));
        if (q == 0) t->r = (int32_t)r;
        else t->r2 = (int32_t)r;
        hj->factor_bytes += (uint64_t)(rows + K) * r * 4;
    }
fail:
    free(f1);
    free(f2);
    free(f3);
    free(f4);
    return st;
}

/* ---- lokr ---------------------------------------------------------------------------------------- */

/* the full matrix a LoKr side stands for, via the reference (lf_lora_delta_ref) */
static lf_status lf_lokr_side(const lf_module *m, int side, int64_t rows, int64_t cols, int64_t d2,
                              const char *layer, float **out) {
    lf_role rf = side == 1 ? LF_R_KW1 : LF_R_KW2, ra = side == 1 ? LF_R_KW1A : LF_R_KW2A,
            rb = side == 1 ? LF_R_KW1B : LF_R_KW2B;
    lf_status st;
    float *fa = NULL, *fb = NULL, *ft = NULL, *res = NULL;
    *out = NULL;
    if (lf_has(m, rf)) return lf_f32_of(m, rf, rows * cols, layer, out);
    if ((st = lf_f32_of(m, ra, -1, layer, &fa)) || (st = lf_f32_of(m, rb, -1, layer, &fb))) goto done;
    lf_ref_factor f;
    memset(&f, 0, sizeof f);
    f.rows = rows;
    f.cols = cols;
    f.a = fa;
    f.b = fb;
    f.r = f.lda = m->t[rb].shape[0];
    if (side == 2 && lf_has(m, LF_R_KT2)) {
        if ((st = lf_f32_of(m, LF_R_KT2, -1, layer, &ft))) goto done;
        f.t = ft;
        f.a_t = 1;
        f.khw = cols / d2;
    }
    if (lf_view_numel(&m->t[ra]) != (f.t ? f.r * rows : rows * f.r) ||
        lf_view_numel(&m->t[rb]) != (f.t ? f.r * d2 : f.r * cols)) {
        st = lf_err(LF_ERR_SHAPE, "layer '%s': module '%s': LoKr factor sizes do not match (%lld, %lld)", layer,
                    m->name, (long long)rows, (long long)cols);
        goto done;
    }
    res = malloc(lf_nz(rows * cols) * sizeof *res);
    if (!res) {
        st = lf_err(LF_ERR_NOMEM, "layer '%s': out of memory", layer);
        goto done;
    }
    if ((st = lf_lora_delta_ref(&f, res))) goto done;
    *out = res;
    res = NULL;
done:
    free(fa);
    free(fb);
    free(ft);
    free(res);
    return st;
}

/* LoKr: both Kronecker sides as full matrices */
static lf_status lf_patch_lokr(const lf_patch_ctx *pc, lf_dterm *t) {
    lf_dev_model *dm = pc->dm;
    lf_hjob *hj = pc->hj;
    const lf_module *m = pc->m;
    const char *layer = pc->layer;
    int64_t rows = pc->rows, K = pc->K;
    lf_status st = LF_OK;
    float *f1 = NULL, *f2 = NULL;
    int64_t a, c, b, k2, d2;
    lf_module_lokr_dims(m, &a, &c, &b, &k2, &d2);
    if (a * b != rows || c * k2 != K)
        return lf_err(LF_ERR_SHAPE, "layer '%s': module '%s': LoKr (%lld x %lld, %lld x %lld) does not give (%lld, %lld)",
                      layer, m->name, (long long)a, (long long)c, (long long)b, (long long)k2, (long long)rows,
                      (long long)K);
    int64_t kk = d2 != k2 ? k2 / d2 : 1;
    t->kind = LF_TK_LOKR;
    t->i0 = (int32_t)b;
    t->i1 = (int32_t)c;
    t->i2 = (int32_t)(k2 / kk);
    t->i3 = (int32_t)kk;
    LF_TRY(lf_lokr_side(m, 1, a, c, c, layer, &f1));
    LF_TRY(lf_lokr_side(m, 2, b, k2, d2, layer, &f2));
    LF_TRY(lf_dupload(dm, f1, (size_t)(a * c) * 4, "lokr W1", layer, (void **)&t->a));
    LF_TRY(lf_dupload(dm, f2, (size_t)(b * k2) * 4, "lokr W2", layer, (void **)&t->b));
    hj->factor_bytes += (uint64_t)(a * c + b * k2) * 4;
fail:
    free(f1);
    free(f2);
    return st;
}

/* ---- glora --------------------------------------------------------------------------------------- */

/* GLoRA: W0 x_in a1 expanded from the slice of the target (host copy), the other factors as stored */
static lf_status lf_patch_glora(const lf_patch_ctx *pc, lf_dterm *t) {
    lf_dev_model *dm = pc->dm;
    const lf_job *job = pc->job;
    const lf_patch *p = pc->p;
    lf_hjob *hj = pc->hj;
    const lf_module *m = pc->m;
    const char *layer = pc->layer;
    int64_t rows = pc->rows, K = pc->K, I = pc->I, khw = pc->khw;
    lf_status st = LF_OK;
    float *f1 = NULL, *f3 = NULL, *f4 = NULL, *f5 = NULL, *f6 = NULL;
    int64_t r = m->rank;
    int old = m->glora_old_layout;
    t->kind = LF_TK_GLORA;
    t->r = (int32_t)r;
    /* w0 of the slice as f32 */
    lf_view v;
    memset(&v, 0, sizeof v);
    float *w0 = malloc((size_t)(rows * K) * sizeof *w0);
    if (!w0) return lf_err(LF_ERR_NOMEM, "layer '%s': out of memory", layer);
    /* the host target, in its own dtype (hj->dtype is the device copy's: lf_dev_opts.store) */
    v.data = (const char *)job->target->data + (size_t)p->row_off * (size_t)K * (lf_dtype_bits(job->target->dtype) / 8);
    v.dtype = job->target->dtype;
    v.ndim = 2;
    v.shape[0] = rows;
    v.shape[1] = K;
    st = lf_view_to_f32(&v, w0);
    if (!st) st = lf_f32_of(m, LF_R_GA1, r * I, layer, &f3);
    if (!st) st = lf_f32_of(m, LF_R_GA2, r * I, layer, &f4);
    if (!st) st = lf_f32_of(m, LF_R_GB1, old ? r * I : rows * r, layer, &f5);
    if (!st) st = lf_f32_of(m, LF_R_GB2, old ? rows * r : r * K, layer, &f6);
    if (!st && old && K != I) st = lf_err(LF_ERR_SHAPE, "layer '%s': old-layout GLoRA on a conv weight", layer);
    if (!st) {
        /* T (rows, r, khw) = W0 x_in F1: the first loop of glora_ref.c */
        const float *F1 = old ? f4 : f3;
        f1 = malloc(lf_nz(rows * r * khw) * sizeof *f1);
        if (!f1) st = lf_err(LF_ERR_NOMEM, "layer '%s': out of memory", layer);
        for (int64_t o = 0; o < rows && !st; o++)
            for (int64_t pp = 0; pp < r; pp++)
                for (int64_t sp = 0; sp < khw; sp++) {
                    float acc = 0.0f;
                    for (int64_t i = 0; i < I; i++) acc = lf_math_axpy(acc, w0[o * K + i * khw + sp], F1[i * r + pp]);
                    f1[(o * r + pp) * khw + sp] = acc;
                }
    }
    free(w0);
    if (st) goto fail;
    const float *F2 = old ? f3 : f4, *left = old ? f6 : f5, *right = old ? f5 : f6;
    LF_TRY(lf_dupload(dm, f1, (size_t)(rows * r * khw) * 4, "glora W0 a1", layer, (void **)&t->a));
    LF_TRY(lf_dupload(dm, F2, (size_t)(r * I) * 4, "glora a2", layer, (void **)&t->b));
    LF_TRY(lf_dupload(dm, left, (size_t)(rows * r) * 4, "glora b1", layer, (void **)&t->a2));
    LF_TRY(lf_dupload(dm, right, (size_t)(r * K) * 4, "glora b2", layer, (void **)&t->b2));
    hj->factor_bytes += (uint64_t)(rows * r * khw + r * I + rows * r + r * K) * 4;
fail:
    free(f1);
    free(f3);
    free(f4);
    free(f5);
    free(f6);
    return st;
}

/* ---- full, norm ---------------------------------------------------------------------------------- */

/* full / norm: the whole difference of the slice, role r: diff / w_norm (rows * K), or for a bias patch
 * diff_b / b_norm (rows) on a one-column target */
static lf_status lf_patch_full(const lf_patch_ctx *pc, lf_role r, lf_dterm *t) {
    lf_dev_model *dm = pc->dm;
    lf_hjob *hj = pc->hj;
    const lf_module *m = pc->m;
    const char *layer = pc->layer;
    int64_t rows = pc->rows, K = pc->K;
    int bias = pc->p->bias;
    lf_status st = LF_OK;
    float *f1 = NULL;
    if (bias && K != 1)
        return lf_err(LF_ERR_SHAPE, "layer '%s': bias patch on a %lld-column target", layer, (long long)K);
    int64_t n = bias ? rows : rows * K;
    t->kind = LF_TK_FULL;
    LF_TRY(lf_f32_of(m, r, n, layer, &f1));
    LF_TRY(lf_dupload(dm, f1, (size_t)n * 4, bias ? "bias diff" : "diff", layer, (void **)&t->a));
    hj->factor_bytes += (uint64_t)n * 4;
fail:
    free(f1);
    return st;
}

/* ---- ia3 ----------------------------------------------------------------------------------------- */

/* IA3: the per-row (or per-input-channel) scale */
static lf_status lf_patch_ia3(const lf_patch_ctx *pc, lf_dterm *t) {
    lf_dev_model *dm = pc->dm;
    lf_hjob *hj = pc->hj;
    const lf_module *m = pc->m;
    const char *layer = pc->layer;
    int64_t rows = pc->rows, I = pc->I;
    lf_status st = LF_OK;
    float *f1 = NULL;
    t->kind = LF_TK_IA3;
    t->i0 = m->ia3_on_input;
    int64_t n = m->ia3_on_input ? I : rows;
    LF_TRY(lf_f32_of(m, LF_R_IA3_W, n, layer, &f1));
    LF_TRY(lf_dupload(dm, f1, (size_t)n * 4, "ia3 w", layer, (void **)&t->a));
    hj->factor_bytes += (uint64_t)n * 4;
fail:
    free(f1);
    return st;
}

/* ---- oft ----------------------------------------------------------------------------------------- */

/* OFT: the block rotations (Cayley, or as stored for the legacy form) and the optional rescale */
static lf_status lf_patch_oft(const lf_patch_ctx *pc, lf_dterm *t) {
    lf_dev_model *dm = pc->dm;
    lf_hjob *hj = pc->hj;
    const lf_module *m = pc->m;
    const char *layer = pc->layer;
    int64_t rows = pc->rows;
    int algo = m->algo;
    lf_status st = LF_OK;
    float *f1 = NULL, *f2 = NULL, *f3 = NULL;
    int legacy = algo == LF_ALGO_OFT_LEGACY;
    lf_role r = legacy ? LF_R_OFT_DIAG : LF_R_OFT_BLOCKS;
    int64_t nblk = m->t[r].shape[0], b = m->t[r].shape[1];
    if (nblk * b != rows)
        return lf_err(LF_ERR_SHAPE, "layer '%s': module '%s': %lld blocks of %lld rows for %lld rows", layer,
                      m->name, (long long)nblk, (long long)b, (long long)rows);
    t->kind = LF_TK_OFT;
    t->i0 = (int32_t)b;
    LF_TRY(lf_f32_of(m, r, nblk * b * b, layer, &f1));
    if (!legacy) {
        f2 = malloc((size_t)(nblk * b * b) * sizeof *f2);
        if (!f2) {
            st = lf_err(LF_ERR_NOMEM, "layer '%s': out of memory", layer);
            goto fail;
        }
        /* P3 / T8: LyCORIS constraint alpha * O (the slice's rows, as lf_module_contrib_ref) */
        LF_TRY(lf_oft_rotation_ref(f1, nblk, b, m->alpha * (double)rows, f2));
    }
    LF_TRY(lf_dupload(dm, legacy ? f1 : f2, (size_t)(nblk * b * b) * 4, "oft R", layer, (void **)&t->a));
    if (lf_has(m, LF_R_RESCALE)) {
        LF_TRY(lf_f32_of(m, LF_R_RESCALE, rows, layer, &f3));
        LF_TRY(lf_dupload(dm, f3, (size_t)rows * 4, "oft rescale", layer, (void **)&t->rescale));
    }
    hj->factor_bytes += (uint64_t)(nblk * b * b + rows) * 4;
fail:
    free(f1);
    free(f2);
    free(f3);
    return st;
}

/* ---- boft ---------------------------------------------------------------------------------------- */

/* BOFT composite of one slice for strength s (double, then f32): Q[g][m][n], rows = nb*b, groups of G */
void lf_boft_composite(const lf_hboft *bo, float s, float *Q) {
    int64_t G = bo->G, b = bo->b, bb = b * b, ng = bo->rows / G;
    double *X = malloc((size_t)(G * G) * sizeof *X), *Y = malloc((size_t)(G * G) * sizeof *Y);
    if (!X || !Y) {
        free(X);
        free(Y);
        for (int64_t i = 0; i < bo->rows * G; i++) Q[i] = NAN; /* caught by the non-finite check */
        return;
    }
    for (int64_t g = 0; g < ng; g++) {
        int64_t base = g * G;
        for (int64_t i = 0; i < G * G; i++) X[i] = 0.0;
        for (int64_t i = 0; i < G; i++) X[i * G + i] = 1.0;
        for (int64_t st = 0; st < bo->nm; st++) {
            int64_t k = ((int64_t)1 << st) * (b / 2);
            for (int64_t p = 0; p < G; p++) /* gather (boft_ref.c) */
                memcpy(Y + p * G, X + (lf_math_boft_perm(base + p, k) - base) * G, (size_t)G * sizeof *Y);
            for (int64_t B = 0; B < G / b; B++) {
                int64_t Bg = base / b + B;
                const float *Rb = bo->R + (st * bo->nb + Bg) * bb;
                for (int64_t u = 0; u < b; u++) {
                    double *dst = X + (lf_math_boft_perm(base + B * b + u, k) - base) * G;
                    for (int64_t c = 0; c < G; c++) dst[c] = 0.0;
                    for (int64_t v = 0; v < b; v++) {
                        double gv = lf_math_orth_interp(Rb[u * b + v], u == v, s);
                        const double *src = Y + (B * b + v) * G;
                        for (int64_t c = 0; c < G; c++) dst[c] += gv * src[c];
                    }
                }
            }
        }
        for (int64_t i = 0; i < G * G; i++) Q[base * G + i] = (float)X[i];
    }
    free(X);
    free(Y);
}

/* BOFT: the rotations on the host (lf_boft_composite reads them), the composite's staging and device buffers */
static lf_status lf_patch_boft(const lf_patch_ctx *pc, lf_dterm *t) {
    lf_dev_model *dm = pc->dm;
    size_t j = pc->j, gp = pc->gp;
    lf_hjob *hj = pc->hj;
    const lf_module *m = pc->m;
    const char *layer = pc->layer;
    int64_t rows = pc->rows;
    lf_status st = LF_OK;
    float *f1 = NULL, *f3 = NULL;
    const lf_view *ob = &m->t[LF_R_OFT_BLOCKS];
    int64_t nm = ob->shape[0], nb = ob->shape[1], b = ob->shape[2];
    int64_t G = b << (nm > 0 ? nm - 1 : 0);
    if (nb * b != rows || nm < 1 || G > rows || rows % G)
        return lf_err(LF_ERR_SHAPE, "layer '%s': module '%s': BOFT (%lld, %lld, %lld) does not fit %lld rows", layer,
                      m->name, (long long)nm, (long long)nb, (long long)b, (long long)rows);
    if ((uint64_t)rows * (uint64_t)G * 4 > LF_BOFT_MAX_BYTES)
        return lf_err(LF_ERR_UNSUPPORTED, "layer '%s': module '%s': BOFT composite of %lld x %lld rows exceeds %llu MiB",
                      layer, m->name, (long long)rows, (long long)G, (unsigned long long)(LF_BOFT_MAX_BYTES >> 20));
    lf_hboft *nbft = realloc(dm->bofts, (dm->nboft + 1) * sizeof *nbft);
    if (!nbft) return lf_err(LF_ERR_NOMEM, "out of memory");
    dm->bofts = nbft;
    lf_hboft *bo = &dm->bofts[dm->nboft];
    memset(bo, 0, sizeof *bo);
    bo->rows = rows;
    bo->nm = nm;
    bo->nb = nb;
    bo->b = b;
    bo->G = G;
    bo->s_last = NAN;
    bo->job = j;
    bo->patch = gp;
    LF_TRY(lf_f32_of(m, LF_R_OFT_BLOCKS, nm * nb * b * b, layer, &f1));
    bo->R = malloc((size_t)(nm * nb * b * b) * sizeof *bo->R);
    if (!bo->R) {
        st = lf_err(LF_ERR_NOMEM, "layer '%s': out of memory", layer);
        goto fail;
    }
    dm->nboft++; /* owns R from here */
    LF_TRY(lf_oft_rotation_ref(f1, nm * nb, b, m->alpha * (double)rows, bo->R));
    LF_TRY(lf_halloc(dm, (size_t)(rows * G) * 4, 0, "boft staging", layer, (void **)&bo->hq));
    LF_TRY(lf_dalloc(dm, (size_t)(rows * G) * 4, "boft composite", layer, (void **)&bo->dq));
    t->kind = LF_TK_ROWMIX;
    t->i0 = (int32_t)G;
    t->a = bo->dq;
    if (lf_has(m, LF_R_RESCALE)) {
        LF_TRY(lf_f32_of(m, LF_R_RESCALE, rows, layer, &f3));
        LF_TRY(lf_dupload(dm, f3, (size_t)rows * 4, "boft rescale", layer, (void **)&t->rescale));
    }
    hj->factor_bytes += (uint64_t)(rows * G + rows) * 4;
    bo->term = dm->nterms; /* the push in lf_patch_setup */
fail:
    free(f1);
    free(f3);
    return st;
}

/* ---- dora ---------------------------------------------------------------------------------------- */

/* DoRA on an additive term: the magnitude on the host, the norm pass's buffers on the device */
static lf_status lf_patch_dora(const lf_patch_ctx *pc, lf_dterm *t) {
    lf_dev_model *dm = pc->dm;
    lf_hjob *hj = pc->hj;
    const lf_module *m = pc->m;
    const char *layer = pc->layer;
    int64_t rows = pc->rows, I = pc->I;
    lf_status st = LF_OK;
    int64_t n = m->dora_axis == 1 ? rows : I;
    lf_hdora *nd = realloc(dm->doras, (dm->ndora + 1) * sizeof *nd);
    if (!nd) {
        st = lf_err(LF_ERR_NOMEM, "out of memory");
        goto fail;
    }
    dm->doras = nd;
    lf_hdora *hd = &dm->doras[dm->ndora];
    memset(hd, 0, sizeof *hd);
    hd->n = n;
    hd->term = dm->nterms;
    LF_TRY(lf_f32_of(m, LF_R_DORA, n, layer, &hd->m));
    dm->ndora++;
    LF_TRY(lf_dalloc(dm, (size_t)n * sizeof(double), "dora sum of squares", layer, (void **)&hd->dss));
    LF_CU(cudaMemset(hd->dss, 0, (size_t)n * sizeof(double)), layer);
    LF_TRY(lf_dalloc(dm, (size_t)n * 4, "dora k", layer, (void **)&hd->dk));
    t->dora_axis = m->dora_axis;
    t->ss = hd->dss;
    t->kvec = hd->dk;
    hj->has_dora = 1;
fail:
    return st;
}

/* ---- one patch -> one term ------------------------------------------------------------------------ */

/* Build the term (or the cat membership) of patch gp of job j. The concatenated LoRA is filled later
 * (lf_cat_build). */
lf_status lf_patch_setup(lf_dev_model *dm, size_t j, size_t gp, const lf_job *job, const lf_patch *p) {
    lf_hjob *hj = &dm->jobs[j];
    const lf_module *m = &p->mod;
    const char *layer = hj->name;
    int64_t rows = p->rows ? p->rows : hj->O, K = hj->K, I = hj->I, khw = hj->khw;
    const lf_patch_ctx pc = {.dm = dm, .j = j, .gp = gp, .job = job, .p = p, .m = m, .hj = hj, .layer = layer,
                             .rows = rows, .K = K, .I = I, .khw = khw};
    lf_dterm t;
    memset(&t, 0, sizeof t);
    t.patch = (int32_t)gp;
    t.row_off = (int32_t)p->row_off;
    t.rows = (int32_t)rows;
    lf_status st = LF_OK;
    int algo = m->algo;
    int scaled = algo == LF_ALGO_LORA || algo == LF_ALGO_LOHA || algo == LF_ALGO_LOKR || algo == LF_ALGO_GLORA;
    dm->hgamma[gp] = scaled ? m->gamma : 1.0f;
    if (p->row_off < 0 || p->row_off + rows > hj->O)
        return lf_err(LF_ERR_SHAPE, "layer '%s': module '%s': row slice [%lld, %lld) outside %lld rows", layer, m->name,
                      (long long)p->row_off, (long long)(p->row_off + rows), (long long)hj->O);

    if (p->bias) {
        lf_role r = algo == LF_ALGO_FULL ? LF_R_DIFF_B : algo == LF_ALGO_NORM ? LF_R_B_NORM : LF_R_COUNT;
        if (r == LF_R_COUNT || !lf_has(m, r)) return LF_OK; /* no bias delta in this module (as the CPU) */
        LF_TRY(lf_patch_full(&pc, r, &t));
        goto push;
    }

    switch (algo) {
    case LF_ALGO_LORA: st = lf_patch_lora(&pc, &t); break;
    case LF_ALGO_LOHA: st = lf_patch_loha(&pc, &t); break;
    case LF_ALGO_LOKR: st = lf_patch_lokr(&pc, &t); break;
    case LF_ALGO_GLORA: st = lf_patch_glora(&pc, &t); break;
    case LF_ALGO_FULL:
    case LF_ALGO_NORM: st = lf_patch_full(&pc, algo == LF_ALGO_FULL ? LF_R_DIFF : LF_R_W_NORM, &t); break;
    case LF_ALGO_IA3: st = lf_patch_ia3(&pc, &t); break;
    case LF_ALGO_OFT:
    case LF_ALGO_OFT_LEGACY: st = lf_patch_oft(&pc, &t); break;
    case LF_ALGO_BOFT: st = lf_patch_boft(&pc, &t); break;
    default:
        return lf_err(LF_ERR_UNSUPPORTED, "layer '%s': module '%s': algorithm %s has no device kernel", layer, m->name,
                      lf_algo_name(m->algo));
    }
    /* a member of the concatenated LoRA has no term of its own */
    if (st || dm->patches[gp].in_cat) return st;

    if (lf_has(m, LF_R_DORA) && t.kind <= LF_TK_FULL) LF_TRY(lf_patch_dora(&pc, &t));
push:;
    size_t idx;
    LF_TRY(lf_term_push(dm, &t, &idx));
    hj->nterm++;
fail:
    return st;
}
