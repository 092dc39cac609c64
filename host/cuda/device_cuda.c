/* device_cuda.c: host orchestration of the device apply (include/lorafuse/lf_device.h), C11 compiled
 * by gcc against cuda_runtime.h; only built when LF_HAVE_CUDA (device_none.c otherwise). The CUDA
 * resources, the model's lifecycle and the apply; each adapter algorithm's factors are prepared by
 * device_cuda_patch.c, over the guarded allocations of device_cuda_mem.c (what they share:
 * device_internal.h).
 *
 * Create: every job's target is uploaded in its dtype (W) with a pristine copy (W0) in device memory,
 * or in mapped pinned host memory beyond opts.max_backup_mb (P7). Each patch becomes either a column
 * block of the job's concatenated LoRA (plain LoRA/LoCon without DoRA) or a term of the work list
 * (kernels/cuda/lf_dev_abi.h), with everything that does not depend on the strength expanded once
 * (lf_patch_setup, lf_cat_build). DoRA norms of Wc = W0 + gamma*dW run once on the device (norm pass)
 * and become k = m / (||Wc|| + eps) (lf_math_dora_scale). BOFT's composite row mix depends on s and is
 * rebuilt on the host (lf_boft_composite) when s changes.
 * Apply: dirty jobs (a pending coefficient differs bitwise from the applied one, or poisoned) go into
 * two lists, jobs with only the concatenated LoRA (lf_lora_kernel_v1) and the rest
 * (lf_terms_kernel_v1); coefficients and lists go up in one pinned staging copy each; two launches;
 * the non-finite flags come back into pinned memory and are checked in lf_dev_apply_wait, which
 * restores every touched job from W0 (cudaMemcpyAsync of the raw bytes) on failure.
 * Every device and pinned allocation has 1 KiB guards of 0xA5 before and after (lf_dev_guard_check).
 * Errors name the CUDA call, the layer and cudaGetErrorString (docs/architecture.md "Errors").
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "device_internal.h"
#include "host/base/util.h"
#include "kernels/common/lf_math.h"
#include "lf_nvtx.h"

/* ---- device ---------------------------------------------------------------------------------- */

struct lf_device {
    int ordinal;
    int sms;
    char desc[320];
};

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
    const char *call = "cudaSetDevice";
    if ((e = cudaSetDevice(ordinal)) != cudaSuccess ||
        (call = "cudaGetDeviceProperties", e = cudaGetDeviceProperties(&p, ordinal)) != cudaSuccess)
        return lf_err(LF_ERR_UNSUPPORTED, "CUDA device %d is not usable: %s: %s (%s)", ordinal, call,
                      cudaGetErrorString(e), cudaGetErrorName(e));
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

int lf_device_ordinal(const lf_device *dev) { return dev ? dev->ordinal : 0; }

const char *lf_device_describe(const lf_device *dev) { return dev ? dev->desc : "(no device)"; }

void lf_dev_opts_default(lf_dev_opts *o) {
    memset(o, 0, sizeof *o);
    o->max_backup_mb = -1;
    o->tc_min_rank = 16;
    o->tf32_split_f32 = 1;
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

/* the n values of v in dtype dt (F32, F16, BF16), a malloc'd host copy rounded to nearest even */
static lf_status lf_store_as(const lf_view *v, lf_dtype dt, int64_t n, const char *layer, void **out) {
    float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
    *out = NULL;
    if (!f) return lf_err(LF_ERR_NOMEM, "layer '%s': out of memory", layer);
    lf_status st = lf_view_to_f32(v, f);
    if (st != LF_OK) {
        free(f);
        return lf_err_wrap(st, "layer '%s': ", layer);
    }
    if (dt == LF_F32) {
        *out = f;
        return LF_OK;
    }
    uint16_t *h = malloc((size_t)(n ? n : 1) * sizeof *h);
    for (int64_t i = 0; h && i < n; i++) h[i] = dt == LF_F16 ? lf_math_store_f16(f[i]) : lf_math_store_bf16(f[i]);
    free(f);
    *out = h;
    return h ? LF_OK : lf_err(LF_ERR_NOMEM, "layer '%s': out of memory", layer);
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
    void *conv = NULL; /* a target converted to opts.store */
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
        hj->dtype = dm->opts.store != LF_DTYPE_INVALID ? dm->opts.store : tg->dtype;
        if (lf_ddt(tg->dtype) < 0 || lf_ddt(hj->dtype) < 0) {
            st = lf_err(LF_ERR_UNSUPPORTED, "layer '%s': dtype %s cannot be patched on the device (F32, F16, BF16)",
                        layer, lf_dtype_name(tg->dtype));
            goto fail;
        }
        hj->numel = lf_view_numel(&v);
        hj->O = v.ndim ? v.shape[0] : 1;
        hj->K = hj->O ? hj->numel / hj->O : 0;
        hj->I = v.ndim >= 2 ? v.shape[1] : 1;
        hj->khw = hj->I ? hj->K / hj->I : 1;
        hj->bytes = (size_t)hj->numel * (lf_dtype_bits(hj->dtype) / 8);
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
        const void *src = tg->data;
        if (hj->dtype != tg->dtype) { /* converted on the host, rounded once (the shared routines) */
            LF_TRY(lf_store_as(&v, hj->dtype, hj->numel, layer, &conv));
            src = conv;
        }
        LF_CU(cudaMemcpy(hj->w, src, hj->bytes, cudaMemcpyHostToDevice), layer);
        if (dm->backup_dev_bytes + hj->bytes <= budget) {
            LF_TRY(lf_dalloc(dm, hj->bytes, "W0 backup", layer, &hj->w0));
            LF_CU(cudaMemcpy(hj->w0, hj->w, hj->bytes, cudaMemcpyDeviceToDevice), layer);
            dm->backup_dev_bytes += hj->bytes;
        } else {
            LF_TRY(lf_halloc(dm, hj->bytes, 1, "W0 backup (pinned)", layer, &hj->w0));
            memcpy(hj->w0, src, hj->bytes);
            hj->w0_pinned = 1;
        }
        free(conv);
        conv = NULL;
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
    /* The memsets and pageable uploads above run on the legacy default stream and may still be in
     * flight (cudaMemset is asynchronous; cudaMemcpy from pageable memory returns before its DMA ends);
     * an apply on a non-blocking stream does not wait for that stream, so finish them here. */
    LF_CU(cudaDeviceSynchronize(), "(end of model creation)");
    LF_RANGE_POP();
    *out = dm;
    return LF_OK;
fail:
    free(conv);
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

/* After a failed apply (status st, message in lf_last_error): restore the touched jobs and extend the
 * message with the outcome. Both messages are copied first: lf_err must not read the buffer it
 * writes (it did: the restore's own error came out repeated). Returns st. */
static lf_status lf_restore_after(lf_dev_model *dm, lf_status st, void *stream) {
    char msg[1024], why[1024];
    snprintf(msg, sizeof msg, "%s", lf_last_error());
    if (lf_restore_jobs(dm, dm->touched, dm->ntouched, stream) != LF_OK) {
        snprintf(why, sizeof why, "%s", lf_last_error());
        lf_err(st, "%s; restoring the touched layers from W0 failed too (the weights may be half-written): %s", msg, why);
    } else {
        lf_err(st, "%s (the %zu layers of this apply were restored from W0)", msg, dm->ntouched);
    }
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
    if (dm->ntouched) lf_restore_after(dm, st, stream);
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
        return lf_restore_after(dm, st, dm->pending_stream);
    }
    for (size_t k = 0; k < dm->ntouched; k++) {
        size_t j = dm->touched[k];
        if (!dm->h_bad[j]) continue;
        st = lf_err(LF_ERR_NONFINITE, "layer '%s': patched weight is not finite; check the adapters' strengths and "
                    "factors", dm->jobs[j].name);
        return lf_restore_after(dm, st, dm->pending_stream);
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
