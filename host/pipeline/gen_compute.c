/* gen_compute.c: the compute a session's models run on (host/base/compute.h; `--backend auto|cpu|cuda`,
 * `--device N`) and a job's calls into it: the VAE decode of an image, its host arrays staged through
 * backend buffers when the compute's memory is not the host's (the latent and the image cross once per
 * call; the weights stay resident). The UNet runs in the sampler loop on the compute (gen_sample.c).
 *
 * auto: CUDA when this build has it and device N opens, else the CPU, with the reason kept for the
 * report ("cpu (auto: no CUDA device: ...)"). A device compute keeps resident copies of the weights by
 * host address; the runtime's weight watcher (weight_load.h) tells it of every weight rewritten,
 * rebound or freed, so the copies follow the CPU backend's patched tensors (one session with a device
 * compute per process: the watcher is one).
 *
 * Precision (--dtype, --vae-dtype; docs/cuda.md "Precision"): a CUDA compute stores weights and activations
 * as o->dtype (default f16); the VAE, which overflows f16 (why sdxl-vae-fp16-fix exists), gets a second
 * compute on the same device as o->vae_dtype (default f32) when that differs. After each UNet call on a
 * 16-bit compute the output is checked for Inf/NaN (A1111's NaN check): an error naming the call and the
 * dtype, not a black image. The CPU backend ignores both options.
 *
 * Adapters on the device: a compute that patches in its own memory (compute.h patch) takes a job's UNet
 * layers (those the UNet holds as stored); their device copies are bound to the UNet's host weights, which
 * stay W0, and are unbound at the job's end (the next use uploads W0 again). Text-encoder layers (their
 * fused q/k/v copies cannot be bound) and weights the UNet holds converted stay on the host path.
 * The patch model (W0, working copies, factors) outlives its job in the session (s->dkeep) and serves the
 * next job whose device layers and patches are the same whatever their strengths and schedules (key:
 * lf_gen_dev_key), which then uploads nothing for them; it is freed when a job has other adapters or none
 * (lf_gen_dev_open, lf_gen_session_switch), when a step of it failed, and with the models or the compute.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate_internal.h"
#include "host/runtime/compute_count.h"
#include "host/runtime/compute_cpu.h"
#include "host/runtime/model_compute.h"
#include "host/runtime/weight_load.h"
#include "lorafuse/lf_live_weights.h"

/* the compute itself (under LF_COMPUTE_PROFILE the count around it) */
static lf_compute *lf_gen_base(const lf_gen_session *s) { return s->prof ? s->prof->inner : s->cc; }

/* a weight rewritten, rebound or freed: every device compute of the session drops its copies */
static void lf_gen_forget(void *ctx, const void *p, size_t bytes) {
    lf_gen_session *s = ctx;
    lf_compute *c = lf_gen_base(s);
    if (c) c->forget(c, p, bytes);
    if (s->vae_cc) s->vae_cc->forget(s->vae_cc, p, bytes);
}

static lf_status lf_gen_open_cuda(lf_gen_session *s, const lf_gen_opts *o) {
    if (!o->cuda) return lf_err(LF_ERR_UNSUPPORTED, "this program has no CUDA backend linked");
    char desc[160] = "";
    s->dtype = o->dtype ? o->dtype : LF_F16;
    s->vae_dtype = o->vae_dtype ? o->vae_dtype : LF_F32;
    lf_status st = o->cuda(o->device, s->dtype, &s->cc, desc, sizeof desc);
    if (st != LF_OK) {
        s->cc = NULL;
        return st;
    }
    if (s->vae_dtype != s->dtype && (st = o->cuda(o->device, s->vae_dtype, &s->vae_cc, NULL, 0)) != LF_OK) {
        s->vae_cc = NULL;
        s->cc->destroy(s->cc);
        s->cc = NULL;
        return lf_err_wrap(st, "the VAE's compute (--vae-dtype %s): ", lf_dtype_name(s->vae_dtype));
    }
    lf_wts_watch(lf_gen_forget, s);
    snprintf(s->backend, sizeof s->backend, "cuda (device %d: %s; %s, VAE %s)", o->device, desc,
             lf_dtype_name(s->dtype), lf_dtype_name(s->vae_dtype));
    return LF_OK;
}

static lf_status lf_gen_compute_pick(lf_gen_session *s, const lf_gen_opts *o) {
    if (o->device < 0) return lf_err(LF_ERR_ARG, "--device %d: a device is 0 or more", o->device);
    if (o->backend == LF_GEN_CUDA) {
        lf_status st = lf_gen_open_cuda(s, o);
        return st == LF_OK ? LF_OK : lf_err_wrap(st, "--backend cuda: ");
    }
    if (o->backend == LF_GEN_AUTO && lf_gen_open_cuda(s, o) == LF_OK) return LF_OK;
    if (o->backend == LF_GEN_AUTO) {
        char why[160];
        snprintf(why, sizeof why, "%s", lf_last_error());
        lf_err_clear();
        snprintf(s->backend, sizeof s->backend, "cpu (auto: %s)", why);
    } else {
        snprintf(s->backend, sizeof s->backend, "cpu");
    }
    s->cc = lf_compute_cpu();
    return LF_OK;
}

/* LF_COMPUTE_PROFILE=1: the models run on a timed count around the compute (compute_count.h): a profile
 * by op kind (calls, FLOPs, bytes, seconds), lf_gen_profile. On CUDA the ops are timed by the compute's
 * op clock (events and NVTX ranges, no wait per op); on the CPU each op between two clock readings. */
static lf_status lf_gen_profile_wrap(lf_gen_session *s) {
    const char *e = getenv("LF_COMPUTE_PROFILE");
    if (!e || strcmp(e, "1")) return LF_OK;
    if ((s->prof = malloc(sizeof *s->prof)) == NULL) return lf_err(LF_ERR_NOMEM, "out of memory");
    lf_op_clock clock;
    if (s->cc->clock && s->cc->clock(s->cc, &clock) == LF_OK) {
        lf_compute_count_init_clocked(s->prof, s->cc, &clock);
    } else {
        lf_err_clear();
        lf_compute_count_init_timed(s->prof, s->cc);
    }
    s->cc = &s->prof->c;
    return LF_OK;
}

lf_status lf_gen_compute_open(lf_gen_session *s, const lf_gen_opts *o) {
    lf_status st = lf_gen_compute_pick(s, o);
    return st == LF_OK ? lf_gen_profile_wrap(s) : st;
}

const char *lf_gen_profile(const lf_gen *g) {
    lf_gen_session *s = g->sess;
    if (!s || !s->prof) return NULL;
    enum { CAP = 4096 };
    if (!s->prof_text && (s->prof_text = malloc(CAP)) == NULL) return NULL;
    if (lf_compute_count_collect(s->prof) != LF_OK) lf_err_clear(); /* a profile without its last times */
    return lf_compute_count_report(s->prof, s->prof_text, CAP);
}

void lf_gen_compute_close(lf_gen_session *s) {
    if (s->prof) { /* back to the compute it counted */
        s->cc = s->prof->inner;
        lf_compute_count_free(s->prof);
        free(s->prof);
        free(s->prof_text);
        s->prof = NULL;
        s->prof_text = NULL;
    }
    if (s->cc) lf_gen_dev_drop(s); /* made on the compute: freed before it */
    if (s->cc && !s->cc->host_memory) {
        lf_wts_watch(NULL, NULL);
        if (s->vae_cc) s->vae_cc->destroy(s->vae_cc);
        s->cc->destroy(s->cc);
    }
    s->vae_cc = NULL;
    s->cc = NULL;
}

/* what to add to a non-finite latent's error when the UNet ran in 16 bits: f16 overflows past 65504 where
 * f32 and bf16 do not (the sampler's on-device check sees the overflow as an Inf in the model output) */
const char *lf_gen_nonfinite_hint(const lf_gen *g) {
    const lf_compute *c = g->sess && g->sess->cc ? lf_gen_base(g->sess) : NULL;
    if (!c || c->act == LF_F32) return "";
    return c->act == LF_F16 ? "; the UNet ran with f16 activations, which can overflow: run with --dtype bf16 or "
                              "--dtype f32"
                            : "; the UNet ran with bf16 activations: run with --dtype f32 to rule out its rounding";
}

/* ---- staging ---------------------------------------------------------------------------------- */

/* b holds at least n floats of backend memory (grown, contents lost) */
static lf_status lf_gen_stage(lf_compute *c, lf_gen_dbuf *b, int64_t n) {
    if (b->n >= n) return LF_OK;
    c->release(c, b->p);
    b->p = NULL;
    b->n = 0;
    lf_status st = c->alloc(c, n, &b->p);
    if (st == LF_OK) b->n = n;
    return st;
}

/* b's buffers back to c (NULL: already gone with its compute) */
static void lf_gen_dbufs_free(lf_compute *c, lf_gen_dbuf *b) {
    for (int i = 0; i < LF_GEN_DBUFS; i++) {
        if (c) c->release(c, b[i].p);
        b[i].p = NULL;
        b[i].n = 0;
    }
}

void lf_gen_stage_free(lf_gen *g) {
    lf_gen_dbufs_free(g->sess ? g->sess->cc : NULL, g->dbuf);
    lf_gen_dbufs_free(g->sess ? g->sess->vae_cc : NULL, g->vdbuf);
}

/* host array h of n floats as the compute sees it: itself on host memory, else uploaded to b */
static lf_status lf_gen_in(lf_compute *c, lf_gen_dbuf *b, const float *h, int64_t n, const float **out) {
    *out = h;
    if (c->host_memory || !h) return LF_OK;
    lf_status st = lf_gen_stage(c, b, n);
    if (st == LF_OK) st = c->upload(c, b->p, h, n);
    *out = b->p;
    return st;
}

/* where the compute writes an output of n floats for host array h: h itself on host memory, else b */
static lf_status lf_gen_out(lf_compute *c, lf_gen_dbuf *b, float *h, int64_t n, float **out) {
    *out = h;
    if (c->host_memory) return LF_OK;
    lf_status st = lf_gen_stage(c, b, n);
    *out = b->p;
    return st;
}

/* the output back in host array h (nothing to do on host memory) */
static lf_status lf_gen_back(lf_compute *c, float *h, const float *d, int64_t n) {
    return c->host_memory ? LF_OK : c->download(c, h, d, n);
}

/* the tile in latent pixels (diffusers' default tile: the VAE config's sample_size / 8) when tiling is on
 * and an (h, w) latent is larger than one, else 0 */
int64_t lf_gen_vae_tile(const lf_gen *g, int64_t h, int64_t w, int on) {
    int64_t T = g->m->family == LF_FAMILY_SDXL ? 128 : 64;
    return on && (h > T || w > T) ? T : 0;
}

lf_status lf_gen_vae_call(lf_gen *g, float *img, const float *lat) {
    lf_compute *c = g->sess->vae_cc ? g->sess->vae_cc : g->sess->cc;
    lf_gen_dbuf *b = g->sess->vae_cc ? g->vdbuf : g->dbuf; /* a compute's buffers are its own */
    int64_t T = lf_gen_vae_tile(g, g->lat_h, g->lat_w, g->o.vae_tiling);
    lf_status st = LF_OK;
    int64_t nl = 4 * (int64_t)g->lat_h * g->lat_w, ni = 3 * (int64_t)g->o.width * g->o.height;
    const float *dl = NULL;
    float *di = NULL;
    if (T) {
        st = lf_vae_decode_tiled_on(g->vae, c, img, lat, g->lat_h, g->lat_w, T);
    } else {
        st = lf_gen_in(c, &b[0], lat, nl, &dl);
        if (!st) st = lf_gen_out(c, &b[1], img, ni, &di);
        if (!st) st = lf_vae_decode_on(g->vae, c, di, dl, 1, g->lat_h, g->lat_w);
        if (!st) st = lf_gen_back(c, img, di, ni);
    }
    int bad = 0;
    /* a 16-bit VAE that overflowed gives Inf/NaN pixels: an error rather than a black image */
    for (int64_t i = 0; !st && c->act != LF_F32 && i < ni && !bad; i++) bad = !isfinite(img[i]);
    if (bad)
        st = lf_err(LF_ERR_NONFINITE, "the VAE's output holds Inf or NaN in %s: its activations overflowed; run with "
                    "--vae-dtype f32", lf_dtype_name(c->act));
    return st;
}

/* ---- adapters on the device ------------------------------------------------------------------- */

static size_t lf_gen_dtype_size(lf_dtype dt) { return dt == LF_F32 ? 4 : dt == LF_F16 || dt == LF_BF16 ? 2 : 0; }

/* job j's UNet weight as the UNet holds it, when the device can patch it in place: the same dtype (one the
 * device products take) and size as the checkpoint's tensor */
static int lf_gen_dev_fits(const lf_gen *g, size_t j, lf_view *v) {
    const lf_st_tensor *t = g->sp->plan->jobs[j].target;
    if (g->sp->job_comp[j] != LF_COMP_UNET) return 0;
    if (lf_unet_weight_held(g->unet, t->name, v) != LF_OK) {
        lf_err_clear(); /* the host path reports it */
        return 0;
    }
    size_t es = lf_gen_dtype_size(v->dtype);
    return es && v->dtype == t->dtype && (size_t)lf_view_numel(v) * es == (size_t)(t->end - t->begin);
}

/* LF_GEN_DEV_KEEP=0: a new patch model for every job (the measurement of what keeping saves) */
static int lf_gen_dev_keeps(const lf_compute *c) {
    const char *e = getenv("LF_GEN_DEV_KEEP");
    return c->patch->retarget && !(e && !strcmp(e, "0"));
}

int lf_gen_dev_patches(const lf_gen *g) {
    if (g->sess && g->sess->cc) return lf_gen_base(g->sess)->patch != NULL;
    return g->o.backend == LF_GEN_CUDA && g->o.cuda; /* the CUDA compute patches on the device */
}

void lf_gen_dev_drop(lf_gen_session *s) {
    if (!s->dkeep) return;
    lf_compute *c = lf_gen_base(s);
    c->patch->free(s->dkeep);
    s->dkeep = NULL;
}

/* g->dkey: what decides the device model's bytes apart from its coefficients: per device layer in order,
 * the checkpoint tensor (name, dtype, size) and its patches (lf_gen_patch_hash without the coefficient) */
static void lf_gen_dev_key(lf_gen *g) {
    lf_sha256 h;
    lf_sha256_init(&h);
    for (size_t i = 0; i < g->n_dev; i++) {
        const lf_job *job = &g->sp->plan->jobs[g->dev_jobs[i]];
        unsigned long long v[3] = {(unsigned long long)job->target->dtype,
                                   (unsigned long long)(job->target->end - job->target->begin),
                                   (unsigned long long)job->n_patches};
        lf_sha256_update(&h, job->target->name, strlen(job->target->name) + 1);
        lf_sha256_update(&h, v, sizeof v);
        for (size_t k = 0; k < job->n_patches; k++)
            lf_gen_patch_hash(&h, g->aid[job->patches[k].adapter], &job->patches[k], 0.0f);
    }
    lf_sha256_final(&h, g->dkey);
}

void lf_gen_dev_close(lf_gen *g) {
    lf_gen_session *s = g->sess;
    lf_compute *c = s ? lf_gen_base(s) : NULL;
    for (size_t i = 0; c && g->dpatch && i < g->n_dev; i++) /* bound copies are dropped, not freed */
        c->forget(c, g->dev_view[i].data, (size_t)lf_view_numel(&g->dev_view[i]) * lf_gen_dtype_size(g->dev_view[i].dtype));
    if (c && g->dpatch && g->dpatch_ok && lf_gen_dev_keeps(c)) { /* for the next job (lf_gen_dev_open) */
        lf_gen_dev_drop(s);
        s->dkeep = g->dpatch;
        memcpy(s->dkeep_key, g->dkey, LF_GEN_SIG);
    } else if (c && g->dpatch) {
        c->patch->free(g->dpatch);
    }
    g->dpatch = NULL;
    g->dpatch_ok = 0;
    free(g->host_held);
    free(g->dev_jobs);
    free(g->dev_view);
    free(g->host_list);
    g->host_held = NULL;
    g->dev_jobs = NULL;
    g->dev_view = NULL;
    g->host_list = NULL;
    g->n_dev = 0;
}

/* the session's kept model as g's when it has g's key and takes g's step plan; 0 when there is none */
static int lf_gen_dev_take(lf_gen *g, lf_compute *c) {
    lf_gen_session *s = g->sess;
    if (!s->dkeep || !lf_gen_dev_keeps(c) || memcmp(s->dkeep_key, g->dkey, LF_GEN_SIG)) return 0;
    if (c->patch->retarget(c, s->dkeep, g->sp, g->dev_jobs, g->n_dev) != LF_OK) {
        lf_err_clear(); /* a layout the key did not tell apart: a new model */
        return 0;
    }
    g->dpatch = s->dkeep;
    s->dkeep = NULL;
    g->times.device_kept = 1;
    return 1;
}

lf_status lf_gen_dev_open(lf_gen *g) {
    lf_compute *c = lf_gen_base(g->sess);
    size_t nj = g->sp->plan->n_jobs;
    if (!c->patch || !nj || g->dpatch) return LF_OK;
    g->host_held = malloc(nj);
    g->dev_jobs = malloc(nj * sizeof *g->dev_jobs);
    g->dev_view = malloc(nj * sizeof *g->dev_view);
    g->host_list = malloc(nj * sizeof *g->host_list);
    if (!g->host_held || !g->dev_jobs || !g->dev_view || !g->host_list) {
        lf_gen_dev_close(g);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    for (size_t j = 0; j < nj; j++) {
        g->host_held[j] = !lf_gen_dev_fits(g, j, &g->dev_view[g->n_dev]);
        if (!g->host_held[j]) g->dev_jobs[g->n_dev++] = j;
    }
    if (!g->n_dev) { /* all on the host, as without a patcher */
        lf_gen_dev_drop(g->sess);
        lf_gen_dev_close(g);
        return LF_OK;
    }
    lf_gen_dev_key(g);
    lf_status st = LF_OK;
    if (!lf_gen_dev_take(g, c)) {
        lf_gen_dev_drop(g->sess); /* other adapters: its memory goes before this job's model is made */
        st = c->patch->create(c, g->sp, g->dev_jobs, g->n_dev, &g->dpatch);
    }
    for (size_t i = 0; i < g->n_dev && st == LF_OK; i++) {
        st = c->bind(c, g->dev_view[i].data, &g->dev_view[i], c->patch->weight(g->dpatch, i));
        if (st != LF_OK) st = lf_err_wrap(st, "'%s': ", g->sp->plan->jobs[g->dev_jobs[i]].target->name);
    }
    g->dpatch_ok = st == LF_OK;
    if (st != LF_OK) lf_gen_dev_close(g);
    return st;
}

lf_status lf_gen_dev_step(lf_gen *g, int t, size_t *n) {
    *n = 0;
    lf_compute *c = lf_gen_base(g->sess);
    lf_status st = g->dpatch ? c->patch->step(c, g->dpatch, t, n) : LF_OK;
    if (st != LF_OK) g->dpatch_ok = 0; /* what its layers hold is not known: not kept */
    return st;
}
