/* device_cuda.c: host orchestration of the device apply (include/lorafuse/lf_device.h), C11 compiled
 * by gcc against cuda_runtime.h; only built when LF_HAVE_CUDA (device_none.c otherwise).
 *
 * Create: every job's target is uploaded in its dtype (W) with a pristine copy (W0) in device memory,
 * or in mapped pinned host memory beyond opts.max_backup_mb (P7). Each patch becomes either a column
 * block of the job's concatenated LoRA (plain LoRA/LoCon without DoRA: up (O, R) and down (R, K),
 * Tucker lora_mid expanded into down with the CPU reference lf_lora_delta_ref) or a term of the work
 * list (kernels/cuda/lf_dev_abi.h). Everything that does not depend on the strength is expanded
 * once, on the host with the reference code where it exists: LoHa/LoKr Tucker cores and full LoKr
 * W1/W2 (lf_lora_delta_ref), GLoRA's W0 x_in a1 product (the loop of glora_ref.c), OFT/BOFT Cayley
 * rotations (lf_oft_rotation_ref); DoRA norms of Wc = W0 + gamma*dW run once on the device (norm pass)
 * and become k = m / (||Wc|| + eps) (lf_math_dora_scale). BOFT's composite row mix depends on s and is
 * rebuilt on the host (double) when s changes.
 * Apply: dirty jobs (a pending coefficient differs bitwise from the applied one, or poisoned) go into
 * two lists, jobs with only the concatenated LoRA (lf_lora_kernel_v1) and the rest
 * (lf_terms_kernel_v1); coefficients and lists go up in one pinned staging copy each; two launches;
 * the non-finite flags come back into pinned memory and are checked in lf_dev_apply_wait, which
 * restores every touched job from W0 (cudaMemcpyAsync of the raw bytes) on failure.
 * Every device and pinned allocation has 1 KiB guards of 0xA5 before and after (lf_dev_guard_check).
 * Errors name the CUDA call, the layer and cudaGetErrorString (engineering.md 9).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "kernels/cuda/lf_dev_abi.h"
#include "kernels/cpu/adapters/lf_ref.h"
#include "host/adapter/module_geometry.h" /* lf_has, lf_dim, lf_module_lokr_dims, shared with the CPU reference */
#include "lorafuse/lf_device.h"
#include "kernels/common/lf_math.h"
#include "lf_nvtx.h"

#define LF_GUARD 1024
#define LF_GUARD_BYTE 0xA5
#define LF_BOFT_MAX_BYTES (256ull << 20)

/* ---- errors ---------------------------------------------------------------------------------- */

static lf_status lf_cu_err(cudaError_t e, const char *call, const char *layer, const char *file, int line) {
    return lf_err(e == cudaErrorMemoryAllocation ? LF_ERR_NOMEM : LF_ERR_DEVICE, "%s failed%s%s%s: %s (%s) [%s:%d]",
                  call, layer ? " for layer '" : "", layer ? layer : "", layer ? "'" : "", cudaGetErrorString(e),
                  cudaGetErrorName(e), file, line);
}

/* evaluate a CUDA call once; on failure set st and goto fail */
#define LF_CU(call, layer)                                                                     \
    do {                                                                                       \
        cudaError_t e_ = (call);                                                               \
        if (e_ != cudaSuccess) {                                                               \
            st = lf_cu_err(e_, #call, (layer), __FILE__, __LINE__);                            \
            goto fail;                                                                         \
        }                                                                                      \
    } while (0)

#define LF_TRY(expr)                                                                           \
    do {                                                                                       \
        if ((st = (expr)) != LF_OK) goto fail;                                                 \
    } while (0)

/* ---- types ----------------------------------------------------------------------------------- */

struct lf_device {
    int ordinal;
    int sms;
    char desc[320];
};

typedef struct {
    void *base;       /* allocation (guards included) */
    size_t bytes;     /* payload bytes */
    size_t total;
    int pinned;
    char what[96];
} lf_dbuf;

typedef struct {
    char *name;
    lf_dtype dtype;
    int64_t O, K, I, khw, numel;
    size_t bytes;
    size_t patch0, npatch;
    void *w, *w0;
    int w0_pinned;
    int nterm, ncat, has_dora;
    int forced;
    uint64_t factor_bytes;
} lf_hjob;

typedef struct {
    size_t job, adapter;
    float pending, applied;
    int in_cat;
} lf_hpatch;

typedef struct {
    size_t term, job, patch;
    int64_t rows, nm, nb, b, G;
    float *R;        /* host (nm*nb, b, b) */
    float *hq;       /* pinned staging (rows, G) */
    float *dq;       /* device (rows, G) */
    float s_last;
    int valid;
} lf_hboft;

typedef struct {
    size_t term;
    int64_t n;
    float *m;        /* host magnitude */
    double *dss;     /* device */
    float *dk;       /* device */
} lf_hdora;

struct lf_dev_model {
    lf_device *dev;
    lf_dev_opts opts;
    size_t nj, np;
    lf_hjob *jobs;
    lf_hpatch *patches;
    lf_djob *hdjobs;
    lf_dterm *hterms;
    size_t nterms, capterms;
    float *hgamma;
    lf_hboft *bofts;
    size_t nboft;
    lf_hdora *doras;
    size_t ndora;
    /* device */
    lf_djob *d_jobs;
    lf_dterm *d_terms;
    float *d_coef, *d_gamma;
    int32_t *d_list;
    int32_t *d_bad;
    /* pinned staging */
    float *h_coef;
    int32_t *h_list;
    int32_t *h_bad;
    /* allocations */
    lf_dbuf *bufs;
    size_t nbufs, capbufs;
    uint64_t dev_bytes, pinned_bytes, backup_dev_bytes;
    /* apply state */
    cudaEvent_t done;
    int event_ok;
    int pending;
    void *pending_stream;
    size_t *touched;
    size_t ntouched;
    lf_dev_apply_stats stats;
};

/* ---- device ---------------------------------------------------------------------------------- */

int lf_device_compiled(void) { return 1; }

lf_status lf_device_open(int ordinal, lf_device **out) {
    *out = NULL;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess)
        return lf_err(LF_ERR_UNSUPPORTED, "no usable CUDA device: cudaGetDeviceCount: %s (%s)", cudaGetErrorString(e),
                      cudaGetErrorName(e));
    if (n <= 0) return lf_err(LF_ERR_UNSUPPORTED, "no usable CUDA device: the driver reports 0 devices");
    if (ordinal < 0 || ordinal >= n)
        return lf_err(LF_ERR_UNSUPPORTED, "no CUDA device %d (the driver reports %d)", ordinal, n);
    struct cudaDeviceProp p;
    if ((e = cudaSetDevice(ordinal)) != cudaSuccess || (e = cudaGetDeviceProperties(&p, ordinal)) != cudaSuccess)
        return lf_err(LF_ERR_UNSUPPORTED, "CUDA device %d is not usable: %s (%s)", ordinal, cudaGetErrorString(e),
                      cudaGetErrorName(e));
    if (p.major < 8)
        return lf_err(LF_ERR_UNSUPPORTED, "CUDA device %d (%s) is sm_%d%d; lorafuse's kernels need sm_80 or newer",
                      ordinal, p.name, p.major, p.minor);
    lf_device *d = calloc(1, sizeof *d);
    if (!d) return lf_err(LF_ERR_NOMEM, "out of memory");
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    d->ordinal = ordinal;
    d->sms = p.multiProcessorCount;
    /* p.name is at most 256 bytes; the description is cut rather than overrun if it ever is longer */
    snprintf(d->desc, sizeof d->desc, "%.200s (sm_%d%d, %d SMs, %.1f GiB, driver %d.%d, runtime %d.%d)", p.name, p.major,
             p.minor, p.multiProcessorCount, (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0), drv / 1000,
             (drv % 1000) / 10, rt / 1000, (rt % 1000) / 10);
    *out = d;
    return LF_OK;
}

void lf_device_close(lf_device *dev) { free(dev); }

const char *lf_device_describe(const lf_device *dev) { return dev ? dev->desc : "(no device)"; }

void lf_dev_opts_default(lf_dev_opts *o) {
    memset(o, 0, sizeof *o);
    o->max_backup_mb = -1;
    o->tc_min_rank = 16;
    o->tf32_split_f32 = 1;
}

/* ---- guarded allocations ----------------------------------------------------------------------- */

/* element count for malloc: at least 1 */
static size_t lf_nz(int64_t n) { return n > 0 ? (size_t)n : 1; }

static size_t lf_round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

static lf_status lf_buf_push(lf_dev_model *dm, void *base, size_t bytes, size_t total, int pinned, const char *what,
                             const char *layer) {
    if (dm->nbufs == dm->capbufs) {
        size_t cap = dm->capbufs ? dm->capbufs * 2 : 256;
        lf_dbuf *nb = realloc(dm->bufs, cap * sizeof *nb);
        if (!nb) return lf_err(LF_ERR_NOMEM, "out of memory");
        dm->bufs = nb;
        dm->capbufs = cap;
    }
    lf_dbuf *b = &dm->bufs[dm->nbufs++];
    b->base = base;
    b->bytes = bytes;
    b->total = total;
    b->pinned = pinned;
    snprintf(b->what, sizeof b->what, "%s%s%s", what, layer ? " of " : "", layer ? layer : "");
    return LF_OK;
}

/* device buffer of `bytes` with guards; *out = payload */
static lf_status lf_dalloc(lf_dev_model *dm, size_t bytes, const char *what, const char *layer, void **out) {
    lf_status st = LF_OK;
    size_t total = LF_GUARD + lf_round_up(bytes ? bytes : 1, 256) + LF_GUARD;
    void *base = NULL;
    *out = NULL;
    LF_CU(cudaMalloc(&base, total), layer);
    LF_CU(cudaMemset(base, LF_GUARD_BYTE, LF_GUARD), layer);
    LF_CU(cudaMemset((char *)base + LF_GUARD + bytes, LF_GUARD_BYTE, total - LF_GUARD - bytes), layer);
    if ((st = lf_buf_push(dm, base, bytes, total, 0, what, layer)) != LF_OK) goto fail;
    dm->dev_bytes += total;
    *out = (char *)base + LF_GUARD;
    return LF_OK;
fail:
    if (base) cudaFree(base);
    return st;
}

/* mapped pinned host buffer with guards; *out = payload (host pointer, also valid on the device:
 * unified addressing on every sm_80+ system) */
static lf_status lf_halloc(lf_dev_model *dm, size_t bytes, int mapped, const char *what, const char *layer,
                           void **out) {
    lf_status st = LF_OK;
    size_t total = LF_GUARD + lf_round_up(bytes ? bytes : 1, 256) + LF_GUARD;
    void *base = NULL;
    *out = NULL;
    LF_CU(cudaHostAlloc(&base, total, mapped ? cudaHostAllocMapped : cudaHostAllocDefault), layer);
    memset(base, LF_GUARD_BYTE, LF_GUARD);
    memset((char *)base + LF_GUARD + bytes, LF_GUARD_BYTE, total - LF_GUARD - bytes);
    if ((st = lf_buf_push(dm, base, bytes, total, 1, what, layer)) != LF_OK) goto fail;
    dm->pinned_bytes += total;
    *out = (char *)base + LF_GUARD;
    if (mapped) {
        void *dp = NULL;
        /* base is owned by dm->bufs from here: an error must not free it again (lf_dev_model_free does) */
        cudaError_t e = cudaHostGetDevicePointer(&dp, base, 0);
        if (e != cudaSuccess) {
            st = lf_cu_err(e, "cudaHostGetDevicePointer(&dp, base, 0)", layer, __FILE__, __LINE__);
            goto fail_pushed;
        }
        if (dp != base) {
            st = lf_err(LF_ERR_UNSUPPORTED, "layer '%s': mapped pinned memory has a different device address "
                        "(no unified addressing)", layer ? layer : "?");
            goto fail_pushed;
        }
    }
    return LF_OK;
fail:
    if (base) cudaFreeHost(base);
    return st;
fail_pushed:
    return st; /* freed with the model */
}

/* upload n floats into a new guarded device buffer */
static lf_status lf_dupload(lf_dev_model *dm, const void *src, size_t bytes, const char *what, const char *layer,
                            void **out) {
    lf_status st = lf_dalloc(dm, bytes, what, layer, out);
    if (st) return st;
    if (bytes) LF_CU(cudaMemcpy(*out, src, bytes, cudaMemcpyHostToDevice), layer);
    return LF_OK;
fail:
    return st;
}

/* ---- helpers ----------------------------------------------------------------------------------- */

static int lf_ddt(lf_dtype dt) {
    switch (dt) {
    case LF_F32: return LF_DDT_F32;
    case LF_F16: return LF_DDT_F16;
    case LF_BF16: return LF_DDT_BF16;
    default: return -1;
    }
}

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
    if (dm->nterms == dm->capterms) {
        size_t cap = dm->capterms ? dm->capterms * 2 : 64;
        lf_dterm *nt = realloc(dm->hterms, cap * sizeof *nt);
        if (!nt) return lf_err(LF_ERR_NOMEM, "out of memory");
        dm->hterms = nt;
        dm->capterms = cap;
    }
    *idx = dm->nterms;
    dm->hterms[dm->nterms++] = *t;
    return LF_OK;
}

/* ---- one patch -> one term ------------------------------------------------------------------------ */

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

/* BOFT composite of one slice for strength s (double, then f32): Q[g][m][n], rows = nb*b, groups of G */
static void lf_boft_composite(const lf_hboft *bo, float s, float *Q) {
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

/* Build the term (or the cat membership) of patch gp of job j. `cat_up`, `cat_down` are filled later. */
static lf_status lf_patch_setup(lf_dev_model *dm, size_t j, size_t gp, const lf_job *job, const lf_patch *p) {
    lf_hjob *hj = &dm->jobs[j];
    const lf_module *m = &p->mod;
    const char *layer = hj->name;
    int64_t rows = p->rows ? p->rows : hj->O, K = hj->K, I = hj->I, khw = hj->khw;
    lf_dterm t;
    memset(&t, 0, sizeof t);
    t.patch = (int32_t)gp;
    t.row_off = (int32_t)p->row_off;
    t.rows = (int32_t)rows;
    lf_status st = LF_OK;
    float *f1 = NULL, *f2 = NULL, *f3 = NULL, *f4 = NULL, *f5 = NULL, *f6 = NULL;
    int algo = m->algo;
    int scaled = algo == LF_ALGO_LORA || algo == LF_ALGO_LOHA || algo == LF_ALGO_LOKR || algo == LF_ALGO_GLORA;
    dm->hgamma[gp] = scaled ? m->gamma : 1.0f;
    if (p->row_off < 0 || p->row_off + rows > hj->O)
        return lf_err(LF_ERR_SHAPE, "layer '%s': module '%s': row slice [%lld, %lld) outside %lld rows", layer, m->name,
                      (long long)p->row_off, (long long)(p->row_off + rows), (long long)hj->O);

    if (p->bias) {
        lf_role r = algo == LF_ALGO_FULL ? LF_R_DIFF_B : algo == LF_ALGO_NORM ? LF_R_B_NORM : LF_R_COUNT;
        if (r == LF_R_COUNT || !lf_has(m, r)) return LF_OK; /* no bias delta in this module (as the CPU) */
        if (K != 1) return lf_err(LF_ERR_SHAPE, "layer '%s': bias patch on a %lld-column target", layer, (long long)K);
        t.kind = LF_TK_FULL;
        LF_TRY(lf_f32_of(m, r, rows, layer, &f1));
        LF_TRY(lf_dupload(dm, f1, (size_t)rows * 4, "bias diff", layer, (void **)&t.a));
        hj->factor_bytes += (uint64_t)rows * 4;
        goto push;
    }

    switch (algo) {
    case LF_ALGO_LORA: {
        int64_t r = m->t[LF_R_DOWN].shape[0];
        int mid = lf_has(m, LF_R_MID);
        int64_t use = (!mid && m->dyn_rank > 0 && m->dyn_rank < r) ? m->dyn_rank : r;
        if (!lf_has(m, LF_R_DORA)) {
            dm->patches[gp].in_cat = 1;
            hj->ncat++;
            return LF_OK; /* filled by lf_cat_build */
        }
        t.kind = LF_TK_LOWRANK;
        t.r = (int32_t)use;
        LF_TRY(lf_f32_of(m, LF_R_UP, rows * r, layer, &f1));
        if (mid) {
            LF_TRY(lf_f32_of(m, LF_R_MID, r * r * khw, layer, &f3));
            LF_TRY(lf_f32_of(m, LF_R_DOWN, r * I, layer, &f4));
            LF_TRY(lf_tucker_expand(f3, f4, r, K, khw, layer, &f2));
        } else {
            LF_TRY(lf_f32_of(m, LF_R_DOWN, r * K, layer, &f2));
        }
        if (use < r) /* dyn_rank: first `use` columns of up (rows of down are contiguous) */
            for (int64_t o = 0; o < rows; o++) memmove(f1 + o * use, f1 + o * r, (size_t)use * sizeof *f1);
        LF_TRY(lf_dupload(dm, f1, (size_t)(rows * use) * 4, "lora up", layer, (void **)&t.a));
        LF_TRY(lf_dupload(dm, f2, (size_t)(use * K) * 4, "lora down", layer, (void **)&t.b));
        hj->factor_bytes += (uint64_t)(rows + K) * use * 4;
        break;
    }
    case LF_ALGO_LOHA: {
        int tk = lf_has(m, LF_R_HT1);
        static const lf_role ra[2] = {LF_R_HW1A, LF_R_HW2A}, rb[2] = {LF_R_HW1B, LF_R_HW2B}, rt[2] = {LF_R_HT1, LF_R_HT2};
        t.kind = LF_TK_LOHA;
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
            const float **dst_a = q == 0 ? &t.a : &t.a2, **dst_b = q == 0 ? &t.b : &t.b2;
            LF_TRY(lf_dupload(dm, q == 0 ? f1 : f3, (size_t)(rows * r) * 4, "loha w_a", layer, (void **)dst_a));
            LF_TRY(lf_dupload(dm, b, (size_t)(r * K) * 4, "loha w_b", layer, (void **)dst_b));
            if (q == 0) t.r = (int32_t)r;
            else t.r2 = (int32_t)r;
            hj->factor_bytes += (uint64_t)(rows + K) * r * 4;
        }
        break;
    }
    case LF_ALGO_LOKR: {
        int64_t a, c, b, k2, d2;
        lf_module_lokr_dims(m, &a, &c, &b, &k2, &d2);
        if (a * b != rows || c * k2 != K)
            return lf_err(LF_ERR_SHAPE, "layer '%s': module '%s': LoKr (%lld x %lld, %lld x %lld) does not give (%lld, %lld)",
                          layer, m->name, (long long)a, (long long)c, (long long)b, (long long)k2, (long long)rows,
                          (long long)K);
        int64_t kk = d2 != k2 ? k2 / d2 : 1;
        t.kind = LF_TK_LOKR;
        t.i0 = (int32_t)b;
        t.i1 = (int32_t)c;
        t.i2 = (int32_t)(k2 / kk);
        t.i3 = (int32_t)kk;
        LF_TRY(lf_lokr_side(m, 1, a, c, c, layer, &f1));
        LF_TRY(lf_lokr_side(m, 2, b, k2, d2, layer, &f2));
        LF_TRY(lf_dupload(dm, f1, (size_t)(a * c) * 4, "lokr W1", layer, (void **)&t.a));
        LF_TRY(lf_dupload(dm, f2, (size_t)(b * k2) * 4, "lokr W2", layer, (void **)&t.b));
        hj->factor_bytes += (uint64_t)(a * c + b * k2) * 4;
        break;
    }
    case LF_ALGO_GLORA: {
        int64_t r = m->rank;
        int old = m->glora_old_layout;
        t.kind = LF_TK_GLORA;
        t.r = (int32_t)r;
        /* w0 of the slice as f32 */
        lf_view v;
        memset(&v, 0, sizeof v);
        float *w0 = malloc((size_t)(rows * K) * sizeof *w0);
        if (!w0) return lf_err(LF_ERR_NOMEM, "layer '%s': out of memory", layer);
        v.data = (const char *)job->target->data + (size_t)p->row_off * (size_t)K * (lf_dtype_bits(hj->dtype) / 8);
        v.dtype = hj->dtype;
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
        LF_TRY(lf_dupload(dm, f1, (size_t)(rows * r * khw) * 4, "glora W0 a1", layer, (void **)&t.a));
        LF_TRY(lf_dupload(dm, F2, (size_t)(r * I) * 4, "glora a2", layer, (void **)&t.b));
        LF_TRY(lf_dupload(dm, left, (size_t)(rows * r) * 4, "glora b1", layer, (void **)&t.a2));
        LF_TRY(lf_dupload(dm, right, (size_t)(r * K) * 4, "glora b2", layer, (void **)&t.b2));
        hj->factor_bytes += (uint64_t)(rows * r * khw + r * I + rows * r + r * K) * 4;
        break;
    }
    case LF_ALGO_FULL:
    case LF_ALGO_NORM: {
        lf_role r = algo == LF_ALGO_FULL ? LF_R_DIFF : LF_R_W_NORM;
        t.kind = LF_TK_FULL;
        LF_TRY(lf_f32_of(m, r, rows * K, layer, &f1));
        LF_TRY(lf_dupload(dm, f1, (size_t)(rows * K) * 4, "diff", layer, (void **)&t.a));
        hj->factor_bytes += (uint64_t)(rows * K) * 4;
        break;
    }
    case LF_ALGO_IA3: {
        t.kind = LF_TK_IA3;
        t.i0 = m->ia3_on_input;
        int64_t n = m->ia3_on_input ? I : rows;
        LF_TRY(lf_f32_of(m, LF_R_IA3_W, n, layer, &f1));
        LF_TRY(lf_dupload(dm, f1, (size_t)n * 4, "ia3 w", layer, (void **)&t.a));
        hj->factor_bytes += (uint64_t)n * 4;
        break;
    }
    case LF_ALGO_OFT:
    case LF_ALGO_OFT_LEGACY: {
        int legacy = algo == LF_ALGO_OFT_LEGACY;
        lf_role r = legacy ? LF_R_OFT_DIAG : LF_R_OFT_BLOCKS;
        int64_t nblk = m->t[r].shape[0], b = m->t[r].shape[1];
        if (nblk * b != rows)
            return lf_err(LF_ERR_SHAPE, "layer '%s': module '%s': %lld blocks of %lld rows for %lld rows", layer,
                          m->name, (long long)nblk, (long long)b, (long long)rows);
        t.kind = LF_TK_OFT;
        t.i0 = (int32_t)b;
        LF_TRY(lf_f32_of(m, r, nblk * b * b, layer, &f1));
        if (!legacy) {
            f2 = malloc((size_t)(nblk * b * b) * sizeof *f2);
            if (!f2) return lf_err(LF_ERR_NOMEM, "layer '%s': out of memory", layer);
            /* P3 / T8: LyCORIS constraint alpha * O (the slice's rows, as lf_module_contrib_ref) */
            LF_TRY(lf_oft_rotation_ref(f1, nblk, b, m->alpha * (double)rows, f2));
        }
        LF_TRY(lf_dupload(dm, legacy ? f1 : f2, (size_t)(nblk * b * b) * 4, "oft R", layer, (void **)&t.a));
        if (lf_has(m, LF_R_RESCALE)) {
            LF_TRY(lf_f32_of(m, LF_R_RESCALE, rows, layer, &f3));
            LF_TRY(lf_dupload(dm, f3, (size_t)rows * 4, "oft rescale", layer, (void **)&t.rescale));
        }
        hj->factor_bytes += (uint64_t)(nblk * b * b + rows) * 4;
        break;
    }
    case LF_ALGO_BOFT: {
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
        if (!bo->R) return lf_err(LF_ERR_NOMEM, "layer '%s': out of memory", layer);
        dm->nboft++; /* owns R from here */
        LF_TRY(lf_oft_rotation_ref(f1, nm * nb, b, m->alpha * (double)rows, bo->R));
        LF_TRY(lf_halloc(dm, (size_t)(rows * G) * 4, 0, "boft staging", layer, (void **)&bo->hq));
        LF_TRY(lf_dalloc(dm, (size_t)(rows * G) * 4, "boft composite", layer, (void **)&bo->dq));
        t.kind = LF_TK_ROWMIX;
        t.i0 = (int32_t)G;
        t.a = bo->dq;
        if (lf_has(m, LF_R_RESCALE)) {
            LF_TRY(lf_f32_of(m, LF_R_RESCALE, rows, layer, &f3));
            LF_TRY(lf_dupload(dm, f3, (size_t)rows * 4, "boft rescale", layer, (void **)&t.rescale));
        }
        hj->factor_bytes += (uint64_t)(rows * G + rows) * 4;
        bo->term = dm->nterms; /* the push below */
        break;
    }
    default:
        return lf_err(LF_ERR_UNSUPPORTED, "layer '%s': module '%s': algorithm %s has no device kernel", layer, m->name,
                      lf_algo_name(m->algo));
    }

    if (lf_has(m, LF_R_DORA) && t.kind <= LF_TK_FULL) {
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
        t.dora_axis = m->dora_axis;
        t.ss = hd->dss;
        t.kvec = hd->dk;
        hj->has_dora = 1;
    }
push:;
    size_t idx;
    LF_TRY(lf_term_push(dm, &t, &idx));
    hj->nterm++;
fail:
    free(f1);
    free(f2);
    free(f3);
    free(f4);
    free(f5);
    free(f6);
    return st;
}

/* Concatenated LoRA of job j: up (O, rp) with the patches' up columns in their row slices, down
 * (rp, K), rank_patch (rp); rp padded to LF_DEV_KC_TC on the tensor-core path. */
static lf_status lf_cat_build(lf_dev_model *dm, size_t j, const lf_job *job, lf_djob *dj) {
    lf_hjob *hj = &dm->jobs[j];
    const char *layer = hj->name;
    int64_t O = hj->O, K = hj->K, I = hj->I, khw = hj->khw, rtot = 0;
    for (size_t i = 0; i < job->n_patches; i++) {
        if (!dm->patches[hj->patch0 + i].in_cat) continue;
        const lf_module *m = &job->patches[i].mod;
        int64_t r = m->t[LF_R_DOWN].shape[0];
        int mid = lf_has(m, LF_R_MID);
        rtot += (!mid && m->dyn_rank > 0 && m->dyn_rank < r) ? m->dyn_rank : r;
    }
    if (rtot == 0) return LF_OK;
    int tc = rtot >= dm->opts.tc_min_rank;
    int64_t rp = tc ? (int64_t)lf_round_up((size_t)rtot, LF_DEV_KC_TC) : rtot;
    float *up = calloc((size_t)(O * rp), sizeof *up), *down = calloc((size_t)(rp * K), sizeof *down);
    int32_t *rpat = malloc((size_t)rp * sizeof *rpat);
    float *fu = NULL, *fd = NULL, *fm = NULL, *tb = NULL;
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
        int64_t rows = p->rows ? p->rows : O, r = m->t[LF_R_DOWN].shape[0];
        int mid = lf_has(m, LF_R_MID);
        int64_t use = (!mid && m->dyn_rank > 0 && m->dyn_rank < r) ? m->dyn_rank : r;
        LF_TRY(lf_f32_of(m, LF_R_UP, rows * r, layer, &fu));
        if (mid) {
            LF_TRY(lf_f32_of(m, LF_R_MID, r * r * khw, layer, &fm));
            LF_TRY(lf_f32_of(m, LF_R_DOWN, r * I, layer, &fd));
            LF_TRY(lf_tucker_expand(fm, fd, r, K, khw, layer, &tb));
        } else {
            LF_TRY(lf_f32_of(m, LF_R_DOWN, r * K, layer, &tb));
        }
        for (int64_t o = 0; o < rows; o++)
            memcpy(up + (p->row_off + o) * rp + col, fu + o * r, (size_t)use * sizeof *up);
        memcpy(down + col * K, tb, (size_t)(use * K) * sizeof *down);
        for (int64_t k = 0; k < use; k++) rpat[col + k] = (int32_t)gp;
        col += use;
        hj->factor_bytes += (uint64_t)(rows + K) * use * 4;
        free(fu);
        free(fd);
        free(fm);
        free(tb);
        fu = fd = fm = tb = NULL;
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
    free(fd);
    free(fm);
    free(tb);
    return st;
}

/* ---- model ------------------------------------------------------------------------------------ */

static void lf_apply_wait_quiet(lf_dev_model *dm);

void lf_dev_model_free(lf_dev_model *dm) {
    if (!dm) return;
    lf_apply_wait_quiet(dm);
    for (size_t i = 0; i < dm->nbufs; i++) {
        if (dm->bufs[i].pinned) cudaFreeHost(dm->bufs[i].base);
        else cudaFree(dm->bufs[i].base);
    }
    if (dm->event_ok) cudaEventDestroy(dm->done);
    for (size_t i = 0; i < dm->nj; i++) free(dm->jobs[i].name);
    for (size_t i = 0; i < dm->nboft; i++) free(dm->bofts[i].R);
    for (size_t i = 0; i < dm->ndora; i++) free(dm->doras[i].m);
    free(dm->bufs);
    free(dm->jobs);
    free(dm->patches);
    free(dm->hdjobs);
    free(dm->hterms);
    free(dm->hgamma);
    free(dm->bofts);
    free(dm->doras);
    free(dm->touched);
    free(dm);
}

static lf_status lf_sync_check(lf_dev_model *dm, void *stream, const char *what) {
    if (!dm->opts.sync_check) return LF_OK;
    cudaError_t e = cudaStreamSynchronize((cudaStream_t)stream);
    if (e != cudaSuccess) return lf_cu_err(e, what, NULL, __FILE__, __LINE__);
    return LF_OK;
}

/* fill the staging list region for n jobs starting at h, return tiles */
static int64_t lf_list_fill(const lf_dev_model *dm, const size_t *jobs, const int32_t *flags, size_t n, int32_t *h) {
    int64_t tiles = 0;
    for (size_t i = 0; i < n; i++) {
        const lf_hjob *hj = &dm->jobs[jobs[i]];
        h[i] = (int32_t)jobs[i];
        h[n + i] = flags[i];
        h[2 * n + i] = (int32_t)tiles;
        tiles += lf_dev_job_tiles(hj->O, hj->K);
    }
    h[3 * n] = (int32_t)tiles;
    return tiles;
}

static lf_dlaunch lf_launch_of(const lf_dev_model *dm, const int32_t *dlist, size_t n) {
    lf_dlaunch L;
    memset(&L, 0, sizeof L);
    L.jobs = dm->d_jobs;
    L.terms = dm->d_terms;
    L.coef = dm->d_coef;
    L.gamma = dm->d_gamma;
    L.list = dlist;
    L.flags = dlist + n;
    L.tstart = dlist + 2 * n;
    L.n = (int32_t)n;
    L.bad = dm->d_bad;
    return L;
}

/* DoRA norm pass over every job with a DoRA term, then k = m / (||Wc|| + eps) */
static lf_status lf_dora_norms(lf_dev_model *dm) {
    lf_status st = LF_OK;
    size_t n = 0;
    size_t *jl = malloc((dm->nj ? dm->nj : 1) * sizeof *jl);
    int32_t *fl = calloc(dm->nj ? dm->nj : 1, sizeof *fl);
    double *ss = NULL;
    float *k = NULL;
    if (!jl || !fl) {
        st = lf_err(LF_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t j = 0; j < dm->nj; j++)
        if (dm->jobs[j].has_dora) jl[n++] = j;
    if (!n) goto fail;
    int64_t tiles = lf_list_fill(dm, jl, fl, n, dm->h_list);
    LF_CU(cudaMemcpy(dm->d_list, dm->h_list, (3 * n + 1) * sizeof(int32_t), cudaMemcpyHostToDevice), NULL);
    lf_dlaunch L = lf_launch_of(dm, dm->d_list, n);
    LF_CU((cudaError_t)lf_cuda_apply_launch(&L, 2, tiles, NULL), "(DoRA norm pass)");
    LF_CU(cudaDeviceSynchronize(), "(DoRA norm pass)");
    for (size_t i = 0; i < dm->ndora; i++) {
        lf_hdora *hd = &dm->doras[i];
        const char *layer = NULL;
        for (size_t j = 0; j < dm->nj; j++)
            if (hd->term >= (size_t)dm->hdjobs[j].term0 && hd->term < (size_t)(dm->hdjobs[j].term0 + dm->hdjobs[j].nterm))
                layer = dm->jobs[j].name;
        ss = malloc((size_t)hd->n * sizeof *ss);
        k = malloc((size_t)hd->n * sizeof *k);
        if (!ss || !k) {
            st = lf_err(LF_ERR_NOMEM, "out of memory");
            goto fail;
        }
        LF_CU(cudaMemcpy(ss, hd->dss, (size_t)hd->n * sizeof *ss, cudaMemcpyDeviceToHost), layer);
        for (int64_t q = 0; q < hd->n; q++) k[q] = lf_math_dora_scale(hd->m[q], (float)sqrt(ss[q]));
        LF_CU(cudaMemcpy(hd->dk, k, (size_t)hd->n * sizeof *k, cudaMemcpyHostToDevice), layer);
        free(ss);
        free(k);
        ss = NULL;
        k = NULL;
    }
fail:
    free(jl);
    free(fl);
    free(ss);
    free(k);
    return st;
}

lf_status lf_dev_model_create(lf_device *dev, const lf_job *jobs, size_t n_jobs, const lf_dev_opts *opts,
                              lf_dev_model **out) {
    *out = NULL;
    if (!dev) return lf_err(LF_ERR_ARG, "lf_dev_model_create: no device");
    lf_status st = LF_OK;
    LF_RANGE_PUSH("lf_dev upload");
    lf_dev_model *dm = calloc(1, sizeof *dm);
    if (!dm) {
        LF_RANGE_POP();
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    dm->dev = dev;
    if (opts) dm->opts = *opts;
    else lf_dev_opts_default(&dm->opts);
    if (dm->opts.tc_min_rank <= 0) dm->opts.tc_min_rank = 16;
    const char *env = getenv("LF_CUDA_SYNC_CHECK");
    if (env && env[0] == '1') dm->opts.sync_check = 1;
    LF_CU(cudaSetDevice(dev->ordinal), NULL);

    for (size_t j = 0; j < n_jobs; j++) dm->np += jobs[j].n_patches;
    dm->jobs = calloc(n_jobs ? n_jobs : 1, sizeof *dm->jobs);
    dm->patches = calloc(dm->np ? dm->np : 1, sizeof *dm->patches);
    dm->hdjobs = calloc(n_jobs ? n_jobs : 1, sizeof *dm->hdjobs);
    dm->hgamma = calloc(dm->np ? dm->np : 1, sizeof *dm->hgamma);
    dm->touched = calloc(n_jobs ? n_jobs : 1, sizeof *dm->touched);
    if (!dm->jobs || !dm->patches || !dm->hdjobs || !dm->hgamma || !dm->touched) {
        st = lf_err(LF_ERR_NOMEM, "out of memory");
        goto fail;
    }
    dm->nj = n_jobs;
    uint64_t budget = dm->opts.max_backup_mb < 0 ? UINT64_MAX : (uint64_t)dm->opts.max_backup_mb << 20;
    size_t gp = 0;
    for (size_t j = 0; j < n_jobs; j++) {
        const lf_st_tensor *tg = jobs[j].target;
        lf_hjob *hj = &dm->jobs[j];
        hj->name = strdup(tg->name ? tg->name : "?");
        if (!hj->name) {
            st = lf_err(LF_ERR_NOMEM, "out of memory");
            goto fail;
        }
        const char *layer = hj->name;
        lf_view v = lf_st_view(tg);
        hj->dtype = tg->dtype;
        if (lf_ddt(tg->dtype) < 0) {
            st = lf_err(LF_ERR_UNSUPPORTED, "layer '%s': dtype %s cannot be patched on the device (F32, F16, BF16)",
                        layer, lf_dtype_name(tg->dtype));
            goto fail;
        }
        hj->numel = lf_view_numel(&v);
        hj->O = v.ndim ? v.shape[0] : 1;
        hj->K = hj->O ? hj->numel / hj->O : 0;
        hj->I = v.ndim >= 2 ? v.shape[1] : 1;
        hj->khw = hj->I ? hj->K / hj->I : 1;
        hj->bytes = (size_t)(tg->end - tg->begin);
        if (hj->O > INT32_MAX / 2 || hj->K > INT32_MAX / 2 || hj->numel < 0) {
            st = lf_err(LF_ERR_UNSUPPORTED, "layer '%s': %lld x %lld is too large for the device kernels", layer,
                        (long long)hj->O, (long long)hj->K);
            goto fail;
        }
        hj->patch0 = gp;
        hj->npatch = jobs[j].n_patches;
        for (size_t i = 0; i < jobs[j].n_patches; i++, gp++) {
            dm->patches[gp].job = j;
            dm->patches[gp].adapter = jobs[j].patches[i].adapter;
            dm->patches[gp].pending = jobs[j].patches[i].coef;
            dm->patches[gp].applied = 0.0f;
        }
        LF_TRY(lf_dalloc(dm, hj->bytes, "weight", layer, &hj->w));
        LF_CU(cudaMemcpy(hj->w, tg->data, hj->bytes, cudaMemcpyHostToDevice), layer);
        if (dm->backup_dev_bytes + hj->bytes <= budget) {
            LF_TRY(lf_dalloc(dm, hj->bytes, "W0 backup", layer, &hj->w0));
            LF_CU(cudaMemcpy(hj->w0, hj->w, hj->bytes, cudaMemcpyDeviceToDevice), layer);
            dm->backup_dev_bytes += hj->bytes;
        } else {
            LF_TRY(lf_halloc(dm, hj->bytes, 1, "W0 backup (pinned)", layer, &hj->w0));
            memcpy(hj->w0, tg->data, hj->bytes);
            hj->w0_pinned = 1;
        }
        lf_djob *dj = &dm->hdjobs[j];
        dj->w = hj->w;
        dj->w0 = hj->w0;
        dj->dtype = lf_ddt(hj->dtype);
        dj->O = (int32_t)hj->O;
        dj->K = (int32_t)hj->K;
        dj->I = (int32_t)hj->I;
        dj->khw = (int32_t)hj->khw;
        dj->term0 = (int32_t)dm->nterms;
        dj->vec_ok = hj->K % 4 == 0 && ((uintptr_t)hj->w % 16) == 0 && ((uintptr_t)hj->w0 % 16) == 0;
        for (size_t i = 0; i < jobs[j].n_patches; i++) {
            st = lf_patch_setup(dm, j, hj->patch0 + i, &jobs[j], &jobs[j].patches[i]);
            if (st) goto fail;
        }
        dj->nterm = hj->nterm;
        LF_TRY(lf_cat_build(dm, j, &jobs[j], dj));
    }
    for (size_t i = 0; i < dm->nboft; i++) dm->hterms[dm->bofts[i].term].a = dm->bofts[i].dq;

    LF_TRY(lf_dupload(dm, dm->hdjobs, n_jobs * sizeof *dm->hdjobs, "job table", NULL, (void **)&dm->d_jobs));
    LF_TRY(lf_dupload(dm, dm->hterms, dm->nterms * sizeof *dm->hterms, "term table", NULL, (void **)&dm->d_terms));
    LF_TRY(lf_dupload(dm, dm->hgamma, dm->np * sizeof *dm->hgamma, "gamma table", NULL, (void **)&dm->d_gamma));
    LF_TRY(lf_dalloc(dm, dm->np * sizeof(float), "coefficients", NULL, (void **)&dm->d_coef));
    LF_CU(cudaMemset(dm->d_coef, 0, dm->np * sizeof(float)), NULL);
    LF_TRY(lf_dalloc(dm, (2 * (3 * n_jobs + 1)) * sizeof(int32_t), "work list", NULL, (void **)&dm->d_list));
    LF_TRY(lf_dalloc(dm, n_jobs * sizeof(int32_t), "non-finite flags", NULL, (void **)&dm->d_bad));
    LF_TRY(lf_halloc(dm, dm->np * sizeof(float), 0, "coefficient staging", NULL, (void **)&dm->h_coef));
    LF_TRY(lf_halloc(dm, (2 * (3 * n_jobs + 1)) * sizeof(int32_t), 0, "work list staging", NULL, (void **)&dm->h_list));
    LF_TRY(lf_halloc(dm, n_jobs * sizeof(int32_t), 0, "non-finite flags (host)", NULL, (void **)&dm->h_bad));
    LF_CU(cudaEventCreateWithFlags(&dm->done, cudaEventDisableTiming), NULL);
    dm->event_ok = 1;
    LF_TRY(lf_dora_norms(dm));
    LF_RANGE_POP();
    *out = dm;
    return LF_OK;
fail:
    LF_RANGE_POP();
    lf_dev_model_free(dm);
    return st;
}

lf_status lf_dev_model_create_plan(lf_device *dev, const lf_plan *plan, const lf_dev_opts *opts, lf_dev_model **out) {
    if (!plan) return lf_err(LF_ERR_ARG, "lf_dev_model_create_plan: no plan");
    return lf_dev_model_create(dev, plan->jobs, plan->n_jobs, opts, out);
}

size_t lf_dev_n_jobs(const lf_dev_model *dm) { return dm->nj; }
size_t lf_dev_n_patches(const lf_dev_model *dm) { return dm->np; }
size_t lf_dev_job_patch0(const lf_dev_model *dm, size_t job) { return job < dm->nj ? dm->jobs[job].patch0 : dm->np; }
void *lf_dev_weight(const lf_dev_model *dm, size_t job) { return job < dm->nj ? dm->jobs[job].w : NULL; }

/* ---- coefficients ------------------------------------------------------------------------------ */

lf_status lf_dev_set_coef(lf_dev_model *dm, size_t job, size_t patch, float coef) {
    if (job >= dm->nj || patch >= dm->jobs[job].npatch)
        return lf_err(LF_ERR_ARG, "lf_dev_set_coef: no patch %zu of job %zu", patch, job);
    if (!isfinite(coef))
        return lf_err(LF_ERR_ARG, "layer '%s': strength %g is not finite", dm->jobs[job].name, (double)coef);
    dm->patches[dm->jobs[job].patch0 + patch].pending = coef;
    return LF_OK;
}

lf_status lf_dev_set_coefs(lf_dev_model *dm, const float *coefs) {
    for (size_t i = 0; i < dm->np; i++)
        if (!isfinite(coefs[i]))
            return lf_err(LF_ERR_ARG, "layer '%s': strength %g is not finite", dm->jobs[dm->patches[i].job].name,
                          (double)coefs[i]);
    for (size_t i = 0; i < dm->np; i++) dm->patches[i].pending = coefs[i];
    return LF_OK;
}

lf_status lf_dev_set_adapter_coef(lf_dev_model *dm, size_t adapter, float coef) {
    if (!isfinite(coef)) return lf_err(LF_ERR_ARG, "adapter %zu: strength %g is not finite", adapter, (double)coef);
    for (size_t i = 0; i < dm->np; i++)
        if (dm->patches[i].adapter == adapter) dm->patches[i].pending = coef;
    return LF_OK;
}

float lf_dev_get_coef(const lf_dev_model *dm, size_t job, size_t patch) {
    if (job >= dm->nj || patch >= dm->jobs[job].npatch) return NAN;
    return dm->patches[dm->jobs[job].patch0 + patch].pending;
}

/* ---- apply ------------------------------------------------------------------------------------- */

static int lf_same(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* raw W0 -> W copies of the given jobs (the error path: works even when a kernel cannot launch) */
static lf_status lf_restore_jobs(lf_dev_model *dm, const size_t *jl, size_t n, void *stream) {
    lf_status st = LF_OK;
    for (size_t i = 0; i < n; i++) {
        lf_hjob *hj = &dm->jobs[jl[i]];
        LF_CU(cudaMemcpyAsync(hj->w, hj->w0, hj->bytes, cudaMemcpyDefault, (cudaStream_t)stream), hj->name);
        for (size_t p = 0; p < hj->npatch; p++) dm->patches[hj->patch0 + p].applied = 0.0f;
    }
    LF_CU(cudaStreamSynchronize((cudaStream_t)stream), "(restore after a failed apply)");
fail:
    return st;
}

lf_status lf_dev_apply_async(lf_dev_model *dm, void *stream) {
    lf_status st = LF_OK;
    if (dm->pending && (st = lf_dev_apply_wait(dm)) != LF_OK) return st;
    LF_RANGE_PUSH("lf_dev apply");
    memset(&dm->stats, 0, sizeof dm->stats);
    cudaStream_t cs = (cudaStream_t)stream;
    size_t n1 = 0, n2 = 0;
    size_t *l1 = malloc((dm->nj ? dm->nj : 1) * sizeof *l1), *l2 = malloc((dm->nj ? dm->nj : 1) * sizeof *l2);
    int32_t *f1 = malloc((dm->nj ? dm->nj : 1) * sizeof *f1), *f2 = malloc((dm->nj ? dm->nj : 1) * sizeof *f2);
    dm->ntouched = 0;
    if (!l1 || !l2 || !f1 || !f2) {
        st = lf_err(LF_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t j = 0; j < dm->nj; j++) {
        lf_hjob *hj = &dm->jobs[j];
        int dirty = hj->forced, all_zero = 1, cat_zero = 1;
        for (size_t p = 0; p < hj->npatch; p++) {
            const lf_hpatch *hp = &dm->patches[hj->patch0 + p];
            dirty |= !lf_same(hp->pending, hp->applied);
            all_zero &= hp->pending == 0.0f;
            if (hp->in_cat) cat_zero &= hp->pending == 0.0f;
        }
        if (!dirty) continue;
        int32_t fl = (all_zero ? LF_DITEM_COPY : 0) | (cat_zero ? LF_DITEM_SKIP_CAT : 0);
        dm->touched[dm->ntouched++] = j;
        if (all_zero || hj->nterm == 0) {
            l1[n1] = j;
            f1[n1++] = fl;
        } else {
            l2[n2] = j;
            f2[n2++] = fl;
        }
        dm->stats.jobs_rewritten++;
        dm->stats.jobs_restored += all_zero;
        dm->stats.bytes_weights += 2 * (uint64_t)hj->bytes;
        if (!all_zero) dm->stats.bytes_factors += hj->factor_bytes;
    }
    if (!dm->ntouched) goto done;
    /* BOFT composites of the dirty jobs whose strength changed */
    for (size_t i = 0; i < dm->nboft; i++) {
        lf_hboft *bo = &dm->bofts[i];
        float s = dm->patches[bo->patch].pending;
        int dirty = 0;
        for (size_t k = 0; k < dm->ntouched; k++) dirty |= dm->touched[k] == bo->job;
        if (!dirty || s == 0.0f || (bo->valid && lf_same(s, bo->s_last))) continue;
        lf_boft_composite(bo, s, bo->hq);
        size_t bytes = (size_t)(bo->rows * bo->G) * 4;
        LF_CU(cudaMemcpyAsync(bo->dq, bo->hq, bytes, cudaMemcpyHostToDevice, cs), dm->jobs[bo->job].name);
        bo->s_last = s;
        bo->valid = 1;
        dm->stats.bytes_upload += bytes;
        dm->stats.launches++;
    }
    for (size_t i = 0; i < dm->np; i++) dm->h_coef[i] = dm->patches[i].pending;
    int64_t t1 = lf_list_fill(dm, l1, f1, n1, dm->h_list);
    int32_t *h2 = dm->h_list + 3 * n1 + 1;
    int64_t t2 = lf_list_fill(dm, l2, f2, n2, h2);
    size_t list_ints = 3 * n1 + 1 + 3 * n2 + 1;
    LF_CU(cudaMemcpyAsync(dm->d_coef, dm->h_coef, dm->np * sizeof(float), cudaMemcpyHostToDevice, cs), NULL);
    LF_CU(cudaMemcpyAsync(dm->d_list, dm->h_list, list_ints * sizeof(int32_t), cudaMemcpyHostToDevice, cs), NULL);
    LF_CU(cudaMemsetAsync(dm->d_bad, 0, dm->nj * sizeof(int32_t), cs), NULL);
    dm->stats.bytes_upload += dm->np * sizeof(float) + list_ints * sizeof(int32_t);
    dm->stats.launches += 3;
    if (n1) {
        lf_dlaunch L = lf_launch_of(dm, dm->d_list, n1);
        LF_CU((cudaError_t)lf_cuda_apply_launch(&L, 0, t1, stream), n1 == 1 ? dm->jobs[l1[0]].name : "(grouped LoRA apply)");
        if ((st = lf_sync_check(dm, stream, "lf_lora_kernel_v1"))) goto fail;
        dm->stats.launches++;
    }
    if (n2) {
        lf_dlaunch L = lf_launch_of(dm, dm->d_list + 3 * n1 + 1, n2);
        LF_CU((cudaError_t)lf_cuda_apply_launch(&L, 1, t2, stream), n2 == 1 ? dm->jobs[l2[0]].name : "(grouped apply)");
        if ((st = lf_sync_check(dm, stream, "lf_terms_kernel_v1"))) goto fail;
        dm->stats.launches++;
    }
    dm->stats.tiles = (size_t)(t1 + t2);
    LF_CU(cudaMemcpyAsync(dm->h_bad, dm->d_bad, dm->nj * sizeof(int32_t), cudaMemcpyDeviceToHost, cs), NULL);
    LF_CU(cudaEventRecord(dm->done, cs), NULL);
    dm->stats.launches++;
    for (size_t k = 0; k < dm->ntouched; k++) {
        lf_hjob *hj = &dm->jobs[dm->touched[k]];
        hj->forced = 0;
        for (size_t p = 0; p < hj->npatch; p++) dm->patches[hj->patch0 + p].applied = dm->patches[hj->patch0 + p].pending;
    }
    dm->pending = 1;
    dm->pending_stream = stream;
done:
    free(l1);
    free(l2);
    free(f1);
    free(f2);
    LF_RANGE_POP();
    return LF_OK;
fail:
    free(l1);
    free(l2);
    free(f1);
    free(f2);
    if (dm->ntouched) {
        lf_status keep = st;
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", lf_last_error());
        if (lf_restore_jobs(dm, dm->touched, dm->ntouched, stream) != LF_OK)
            lf_err(keep, "%s; restoring the touched layers from W0 failed too: %s", msg, lf_last_error());
        else lf_err(keep, "%s (the %zu touched layers were restored from W0)", msg, dm->ntouched);
        st = keep;
    }
    LF_RANGE_POP();
    return st;
}

lf_status lf_dev_apply_wait(lf_dev_model *dm) {
    if (!dm->pending) return LF_OK;
    dm->pending = 0;
    lf_status st = LF_OK;
    cudaError_t e = cudaEventSynchronize(dm->done);
    if (e != cudaSuccess) {
        st = lf_cu_err(e, "cudaEventSynchronize (apply)", NULL, __FILE__, __LINE__);
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", lf_last_error());
        if (lf_restore_jobs(dm, dm->touched, dm->ntouched, dm->pending_stream) == LF_OK)
            lf_err(st, "%s (the %zu touched layers were restored from W0)", msg, dm->ntouched);
        else lf_err(st, "%s; the device is unusable, the weights may be half-written", msg);
        return st;
    }
    for (size_t k = 0; k < dm->ntouched; k++) {
        size_t j = dm->touched[k];
        if (!dm->h_bad[j]) continue;
        st = lf_err(LF_ERR_NONFINITE, "layer '%s': patched weight is not finite; check the adapters' strengths and "
                    "factors (the %zu layers of this apply were restored from W0)", dm->jobs[j].name, dm->ntouched);
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", lf_last_error());
        if (lf_restore_jobs(dm, dm->touched, dm->ntouched, dm->pending_stream) != LF_OK)
            lf_err(st, "%s; restoring failed: %s", msg, lf_last_error());
        else lf_err(st, "%s", msg);
        return st;
    }
    return LF_OK;
}

static void lf_apply_wait_quiet(lf_dev_model *dm) {
    if (dm->pending) {
        dm->pending = 0;
        cudaEventSynchronize(dm->done);
    }
}

lf_status lf_dev_apply(lf_dev_model *dm, void *stream) {
    lf_status st = lf_dev_apply_async(dm, stream);
    if (st) return st;
    return lf_dev_apply_wait(dm);
}

lf_status lf_dev_restore_all(lf_dev_model *dm, void *stream) {
    for (size_t i = 0; i < dm->np; i++) dm->patches[i].pending = 0.0f;
    return lf_dev_apply(dm, stream);
}

void lf_dev_last_stats(const lf_dev_model *dm, lf_dev_apply_stats *st) { *st = dm->stats; }

void lf_dev_memory(const lf_dev_model *dm, uint64_t *device_bytes, uint64_t *pinned_bytes) {
    if (device_bytes) *device_bytes = dm->dev_bytes;
    if (pinned_bytes) *pinned_bytes = dm->pinned_bytes;
}

lf_status lf_dev_download(lf_dev_model *dm, size_t job, void *host_out) {
    lf_status st = LF_OK;
    if (job >= dm->nj) return lf_err(LF_ERR_ARG, "lf_dev_download: no job %zu", job);
    if (dm->pending && (st = lf_dev_apply_wait(dm)) != LF_OK) return st;
    LF_CU(cudaDeviceSynchronize(), dm->jobs[job].name);
    LF_CU(cudaMemcpy(host_out, dm->jobs[job].w, dm->jobs[job].bytes, cudaMemcpyDeviceToHost), dm->jobs[job].name);
fail:
    return st;
}

lf_status lf_dev_guard_check(lf_dev_model *dm) {
    lf_status st = LF_OK;
    unsigned char *buf = NULL;
    size_t cap = 0;
    if (dm->pending && (st = lf_dev_apply_wait(dm)) != LF_OK) return st;
    LF_CU(cudaDeviceSynchronize(), NULL);
    for (size_t i = 0; i < dm->nbufs; i++) {
        const lf_dbuf *b = &dm->bufs[i];
        size_t tail = b->total - LF_GUARD - b->bytes;
        size_t need = LF_GUARD > tail ? LF_GUARD : tail;
        if (need > cap) {
            unsigned char *nb = realloc(buf, need);
            if (!nb) {
                st = lf_err(LF_ERR_NOMEM, "out of memory");
                goto fail;
            }
            buf = nb;
            cap = need;
        }
        for (int side = 0; side < 2; side++) {
            const unsigned char *src = (const unsigned char *)b->base + (side ? LF_GUARD + b->bytes : 0);
            size_t n = side ? tail : LF_GUARD;
            if (b->pinned) memcpy(buf, src, n);
            else LF_CU(cudaMemcpy(buf, src, n, cudaMemcpyDeviceToHost), b->what);
            for (size_t k = 0; k < n; k++)
                if (buf[k] != LF_GUARD_BYTE) {
                    st = lf_err(LF_ERR_DEVICE, "guard bytes of %s damaged: %s byte %zu (0x%02x)", b->what,
                                side ? "after the end, at" : "before the start, at", side ? k : LF_GUARD - k,
                                buf[k]);
                    goto fail;
                }
        }
    }
fail:
    free(buf);
    return st;
}

lf_status lf_dev_poison(lf_dev_model *dm) {
    lf_status st = LF_OK;
    if (dm->pending && (st = lf_dev_apply_wait(dm)) != LF_OK) return st;
    for (size_t j = 0; j < dm->nj; j++) {
        LF_CU(cudaMemset(dm->jobs[j].w, 0xff, dm->jobs[j].bytes), dm->jobs[j].name);
        dm->jobs[j].forced = 1;
    }
    LF_CU(cudaDeviceSynchronize(), NULL);
fail:
    return st;
}
