/* apply.c: compute one patched checkpoint tensor on the CPU (docs/semantics.md P5, P6).
 *
 *   W = round_dtype( W0 + sum_i C_i(W0, s_i) )   accumulated in f32, one rounding at the end
 *
 * Each contribution is computed against the pristine W0 (or its row slice, SDXL TE2 q/k/v in
 * in_proj_weight). When every strength is 0 the original bytes are copied, so nothing changes at all.
 * Plain LoRA (no lora_mid, no DoRA) has a BLAS path: acc (O, K) += (s*gamma) * up (O, r) @ down (r, K);
 * everything else, and the oracle for that path, is the scalar reference lf_module_contrib_ref.
 * lf_job_delta_ws sums the same contributions into zeros instead of W0: dW = sum_i C_i(W0, s_i) in f32,
 * unrounded (what extraction factorises; W0 + dW is the merge's accumulator before its rounding).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "lorafuse/lf_model.h"

/* An aligned F32 view's own values (a factor the CPU backend converted once), else NULL: convert. */
static const float *lf_f32_in_place(const lf_view *v) {
    return v->dtype == LF_F32 && ((uintptr_t)v->data & 3u) == 0 ? v->data : NULL;
}

static lf_status lf_lora_blas(const lf_module *m, float s, float *acc, int64_t O, int64_t K) {
    int64_t r = m->rank, use = (m->dyn_rank > 0 && m->dyn_rank < r) ? m->dyn_rank : r;
    const float *up = lf_f32_in_place(&m->t[LF_R_UP]), *down = lf_f32_in_place(&m->t[LF_R_DOWN]);
    float *up_c = up ? NULL : malloc((size_t)(O * r) * sizeof *up_c);
    float *down_c = down ? NULL : malloc((size_t)(r * K) * sizeof *down_c);
    lf_status st = LF_OK;
    if ((!up && !up_c) || (!down && !down_c)) st = lf_err(LF_ERR_NOMEM, "module '%s': out of memory", m->name);
    if (st == LF_OK && !up) st = lf_view_to_f32(&m->t[LF_R_UP], up_c), up = up_c;
    if (st == LF_OK && !down) st = lf_view_to_f32(&m->t[LF_R_DOWN], down_c), down = down_c;
    if (st == LF_OK)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)O, (int)K, (int)use, s * m->gamma, up, (int)r,
                    down, (int)K, 1.0f, acc, (int)K);
    free(up_c);
    free(down_c);
    return st;
}

static int lf_blas_ok(const lf_patch *p) {
    const lf_module *m = &p->mod;
    return !p->bias && m->algo == LF_ALGO_LORA && !(m->present & (1u << LF_R_MID)) &&
           !(m->present & (1u << LF_R_DORA));
}

/* acc += sum_i C_i(W0, s_i) over the job's patches; w0 is the pristine weight as f32 (P5). */
static lf_status lf_job_accumulate(const lf_job *job, int fast, const lf_view *v, const float *w0, float *acc) {
    int64_t n = lf_view_numel(v), O = v->ndim ? v->shape[0] : 1, K = O ? n / O : 0;
    lf_status st = LF_OK;
    for (size_t i = 0; i < job->n_patches && st == LF_OK; i++) {
        const lf_patch *p = &job->patches[i];
        if (p->coef == 0.0f) continue;
        int64_t rows = p->rows ? p->rows : O, off = p->row_off * (p->bias ? 1 : K);
        lf_view shape = *v;
        shape.shape[0] = rows;
        if (fast && lf_blas_ok(p)) st = lf_lora_blas(&p->mod, p->coef, acc + off, rows, K);
        else st = lf_module_contrib_ref(&p->mod, w0 + off, &shape, p->bias, p->coef, acc + off);
        if (st != LF_OK) lf_err_wrap(st, "layer '%s': ", job->target->name);
    }
    return st;
}

lf_status lf_apply_ws_reserve(lf_apply_ws *ws, int64_t n, size_t copies, const char *name) {
    if (ws->cap >= copies * (size_t)n) return LF_OK;
    float *nb = realloc(ws->buf, copies * (size_t)n * sizeof *nb);
    if (!nb) return lf_err(LF_ERR_NOMEM, "'%s': out of memory for %lld elements", name, (long long)n);
    ws->buf = nb;
    ws->cap = copies * (size_t)n;
    return LF_OK;
}

int lf_job_active(const lf_job *job) {
    for (size_t i = 0; i < job->n_patches; i++)
        if (job->patches[i].coef != 0.0f) return 1;
    return 0;
}

lf_status lf_job_apply_ws(const lf_job *job, int fast, void *out, lf_apply_ws *ws) {
    const lf_st_tensor *t = job->target;
    lf_view v = lf_st_view(t);
    int64_t n = lf_view_numel(&v);
    size_t bytes = (size_t)(t->end - t->begin);
    if (!lf_job_active(job)) {
        memcpy(out, t->data, bytes);
        return LF_OK;
    }
    lf_status st = lf_apply_ws_reserve(ws, n, 2, t->name);
    float *w0 = ws->buf, *acc = ws->buf ? ws->buf + n : NULL;
    if (st == LF_OK) st = lf_view_to_f32(&v, w0);
    if (st == LF_OK) memcpy(acc, w0, (size_t)n * sizeof *acc);
    if (st == LF_OK) st = lf_job_accumulate(job, fast, &v, w0, acc);
    /* P6: the result must be finite in the storage dtype, so a value that is finite in f32 but rounds
     * to Inf in f16/bf16 is refused too (checked before anything is written to out). */
    uint32_t inf_from = t->dtype == LF_F16 ? 0x477ff000u : t->dtype == LF_BF16 ? 0x7f7f8000u : 0x7f800000u;
    for (int64_t i = 0; i < n && st == LF_OK; i++) {
        uint32_t bits;
        memcpy(&bits, &acc[i], sizeof bits);
        if ((bits & 0x7fffffffu) >= inf_from)
            st = lf_err(LF_ERR_NONFINITE, "layer '%s': patched weight is not finite in %s at element %lld (%g "
                        "before rounding); check the adapters' strengths and factors", t->name,
                        lf_dtype_name(t->dtype), (long long)i, (double)acc[i]);
    }
    if (st == LF_OK) st = lf_f32_to_dtype(acc, n, t->dtype, out);
    return st;
}

lf_status lf_job_delta_ws(const lf_job *job, int fast, float *dw, lf_apply_ws *ws) {
    const lf_st_tensor *t = job->target;
    lf_view v = lf_st_view(t);
    int64_t n = lf_view_numel(&v);
    memset(dw, 0, (size_t)n * sizeof *dw);
    /* a plain LoRA on the BLAS path does not read W0: skip converting it when no patch needs it */
    int need_w0 = 0;
    for (size_t i = 0; i < job->n_patches; i++)
        need_w0 |= job->patches[i].coef != 0.0f && !(fast && lf_blas_ok(&job->patches[i]));
    lf_status st = need_w0 ? lf_apply_ws_reserve(ws, n, 1, t->name) : LF_OK;
    if (st == LF_OK && need_w0) st = lf_view_to_f32(&v, ws->buf);
    if (st == LF_OK) st = lf_job_accumulate(job, fast, &v, need_w0 ? ws->buf : NULL, dw);
    for (int64_t i = 0; i < n && st == LF_OK; i++)
        if (!isfinite(dw[i]))
            st = lf_err(LF_ERR_NONFINITE, "layer '%s': the summed contribution is not finite at element %lld", t->name,
                        (long long)i);
    return st;
}

lf_status lf_job_apply(const lf_job *job, int fast, void *out) {
    lf_apply_ws ws = {NULL, 0};
    lf_status st = lf_job_apply_ws(job, fast, out, &ws);
    lf_apply_ws_free(&ws);
    return st;
}

void lf_apply_ws_free(lf_apply_ws *ws) {
    free(ws->buf);
    ws->buf = NULL;
    ws->cap = 0;
}
