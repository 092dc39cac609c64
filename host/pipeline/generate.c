/* generate.c: text-to-image with scheduled adapters (lf_generate.h; docs/generate.md): the public
 * lf_gen_* entry points and the sampling loop. Checks live in gen_check.c, text conditioning in
 * gen_cond.c, decoding and PNG output in gen_output.c (generate_internal.h).
 *
 * Weights during sampling: the step plan's CPU backend (lf_step_plan.h) recomputes the changed checkpoint
 * tensors from W0 before each step, and the loaded f32 models take exactly those tensors in place
 * (lf_live_weights.h lf_live_apply_step); on a compute that patches in its own memory the UNet's layers
 * are rewritten there instead, from W0 on the device (gen_compute.c lf_gen_dev_step), and the host's
 * stay W0. Steps that change nothing cost nothing; a constant-strength
 * prompt patches once, before step 1. Text encoders re-run only at steps whose text-encoder set was
 * not encoded before (the conditioning is cached per set for the whole call).
 *
 * Sessions (lf_gen_session, gen_session.c): the loaded models live in the session, a job borrows them.
 * The session knows what each loaded weight holds; a job first restores from W0 those its own plan does
 * not patch, then at the first step of each sampler run rewrites exactly the tensors whose bytes differ
 * from what they hold, so what it samples with is what a freshly loaded model would hold.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate_internal.h"
#include "host/base/compute.h"
#include "host/base/util.h"
#include "host/runtime/model_compute.h"
#include "host/runtime/weight_load.h"
#include "lorafuse/lf_live_weights.h"
#include "lorafuse/lf_png.h"

void lf_gen_opts_default(lf_gen_opts *o) {
    memset(o, 0, sizeof *o);
    o->cfg = LF_GEN_DEFAULT_CFG;
    o->seed = -1;
    o->batch_size = 1;
    o->batch_count = 1;
    o->rng = LF_RNG_TORCH_CPU;
    o->write_png = 1;
}

const lf_gen_info *lf_gen_get_info(const lf_gen *g) { return &g->info; }
const lf_gen_times *lf_gen_get_times(const lf_gen *g) { return &g->times; }

void lf_gen_set_progress(lf_gen *g, lf_gen_progress_fn fn, void *ctx) {
    g->progress = fn;
    g->progress_ctx = ctx;
}

void lf_gen_set_cancel(lf_gen *g, lf_gen_cancel_fn fn, void *ctx) {
    g->cancel = fn;
    g->cancel_ctx = ctx;
}

int lf_gen_interrupted(const lf_gen *g) { return g->interrupted; }

/* ---- sessions (gen_session.c) ------------------------------------------------------------------ */
static lf_status lf_gen_open_job(lf_gen *g, const lf_gen_opts *opts);

lf_status lf_gen_session_open(const char *model, lf_gen_backend backend, int device, lf_gen_cuda_fn cuda,
                              lf_gen_session **out) {
    return lf_gen_session_open_prec(model, backend, device, LF_DTYPE_INVALID, LF_DTYPE_INVALID, cuda, out);
}

lf_status lf_gen_session_open_prec(const char *model, lf_gen_backend backend, int device, lf_dtype dtype,
                                   lf_dtype vae_dtype, lf_gen_cuda_fn cuda, lf_gen_session **out) {
    *out = NULL;
    if (!model) return lf_err(LF_ERR_ARG, "serve: no model");
    lf_gen_opts o;
    lf_gen_opts_default(&o);
    o.model = model;
    o.backend = backend;
    o.device = device;
    o.dtype = dtype;
    o.vae_dtype = vae_dtype;
    o.cuda = cuda;
    o.prompt = "";
    o.write_png = 0;
    o.force_size = 1;
    lf_gen *g = NULL;
    lf_status st = lf_gen_open(&o, &g); /* the model's checks, with an empty prompt */
    if (st != LF_OK) return st;
    lf_gen_session *s = g->sess;
    if ((st = lf_gen_session_load(s, g)) != LF_OK) {
        lf_gen_free(g);
        return st;
    }
    g->own_sess = 0; /* the session outlives its first job */
    lf_gen_free(g);
    *out = s;
    return LF_OK;
}

/* A job on session s; own: s is the session of the caller's group (its --vae is the group's). */
static lf_status lf_gen_open_on(lf_gen_session *s, const lf_gen_opts *opts, int own, lf_gen **out) {
    *out = NULL;
    if (!s || !opts || !opts->prompt) return lf_err(LF_ERR_ARG, "generate: a session and a prompt are required");
    if (opts->vae && !own)
        return lf_err(LF_ERR_UNSUPPORTED, "generate: a job on a loaded model decodes with the model's VAE; a --vae "
                      "is chosen when the model is loaded");
    int cuda = !strncmp(s->backend, "cuda", 4);
    if ((opts->backend == LF_GEN_CPU && cuda) || (opts->backend == LF_GEN_CUDA && !cuda))
        return lf_err(LF_ERR_UNSUPPORTED, "generate: the loaded model runs on %s; a job takes the backend of the "
                      "model it runs on (--backend is chosen when the model is loaded)", s->backend);
    lf_gen_opts o = *opts;
    o.model = s->model;
    o.force_size = 1;
    lf_gen *g = calloc(1, sizeof *g);
    if (!g) return lf_err(LF_ERR_NOMEM, "out of memory");
    g->sess = s;
    g->m = s->m;
    g->tok = s->tok;
    lf_status st = lf_gen_open_job(g, &o);
    if (st == LF_OK) {
        g->info.backend = s->backend;
        *out = g;
    }
    return st;
}

lf_status lf_gen_open_in(lf_gen_session *s, const lf_gen_opts *opts, lf_gen **out) {
    return lf_gen_open_on(s, opts, 0, out);
}

/* ---- groups ----------------------------------------------------------------------------------- */
/* Prefix the last error with the job it belongs to. */
static lf_status lf_gen_job_err(lf_status st, size_t k) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", lf_last_error());
    return lf_err(st, "job %zu: %s", k, msg);
}

lf_status lf_gen_open_group(lf_gen_session *s, const lf_gen_opts *jobs, size_t n, lf_gen **out) {
    *out = NULL;
    if (!jobs || !n) return lf_err(LF_ERR_ARG, "generate: a group needs at least one job");
    char why[512];
    for (size_t k = 1; k < n; k++)
        if (!lf_gen_groupable(&jobs[0], &jobs[k], why, sizeof why))
            return lf_err(LF_ERR_ARG, "job %zu cannot share a batch with job 0: %s", k, why);
    lf_gen *g = calloc(1, sizeof *g);
    if (!g || !(g->kids = calloc(n, sizeof *g->kids))) {
        free(g);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    lf_status st = LF_OK;
    for (size_t k = 0; k < n && !st; k++) {
        lf_gen_session *on = s ? s : k ? g->kids[0]->sess : NULL;
        st = on ? lf_gen_open_on(on, &jobs[k], !s, &g->kids[k]) : lf_gen_open(&jobs[k], &g->kids[k]);
        if (st) {
            st = lf_gen_job_err(st, k);
            break;
        }
        g->n_kids = k + 1;
        /* the defaults resolved (sizes from the model): the batch's shape must still agree */
        if (k && !lf_gen_groupable(&g->kids[0]->o, &g->kids[k]->o, why, sizeof why))
            st = lf_err(LF_ERR_ARG, "job %zu cannot share a batch with job 0: %s", k, why);
    }
    if (st) {
        lf_gen_free(g);
        return st;
    }
    g->sess = g->kids[0]->sess;
    if (!s) { /* the group's own session: freed with the group, after its jobs */
        g->own_sess = 1;
        g->kids[0]->own_sess = 0;
    }
    g->info = g->kids[0]->info;
    g->info.jobs = n;
    g->info.images = 0;
    g->info.n_adapters = g->info.te_encodes = 0;
    for (size_t k = 0; k < n; k++) {
        g->info.images += g->kids[k]->info.images;
        g->info.n_adapters += g->kids[k]->info.n_adapters;
        g->info.te_encodes += g->kids[k]->info.te_encodes;
    }
    /* one batch of every image: job 0's memory check again, for that batch (a loaded session's jobs are not
     * checked, as lf_gen_open_in) */
    lf_gen *k0 = g->kids[0];
    if (!s && n > 1 && !k0->o.force_size && lf_gen_mixed_ok(g, NULL, 0)) {
        int bs = k0->o.batch_size, bc = k0->o.batch_count, tiling = k0->o.vae_tiling;
        k0->o.batch_size = g->info.images;
        k0->o.batch_count = 1;
        st = lf_gen_check_memory(k0);
        k0->o.batch_size = bs, k0->o.batch_count = bc, k0->o.vae_tiling = tiling;
        if (st) {
            st = lf_gen_job_err(st, 0);
            lf_gen_free(g);
            return st;
        }
        g->info.mem_estimate = k0->mem.total;
        g->info.mem_limit = k0->mem.limit;
    }
    *out = g;
    return LF_OK;
}

const lf_gen_info *lf_gen_get_job_info(const lf_gen *g, size_t job) {
    if (!g->n_kids) return job == 0 ? &g->info : NULL;
    return job < g->n_kids ? &g->kids[job]->info : NULL;
}

/* The jobs of a group one after another on its session, each image numbered over the group. */
static void lf_gen_unload(lf_gen *g);

static lf_status lf_gen_run_group(lf_gen *g, lf_gen_image_fn cb, void *cbctx) {
    lf_status s = LF_OK;
    int base = 0;
    memset(&g->times, 0, sizeof g->times);
    g->interrupted = 0;
    if (g->n_kids > 1 && lf_gen_mixed_ok(g, NULL, 0)) { /* one batch: one UNet call per step */
        s = lf_gen_run_mixed(g, cb, cbctx);
        for (size_t k = 0; k < g->n_kids; k++) lf_gen_unload(g->kids[k]);
        if (g->own_sess) lf_gen_session_unload(g->sess);
        return s;
    }
    for (size_t k = 0; k < g->n_kids && !s && !g->interrupted; k++) {
        lf_gen *j = g->kids[k];
        j->progress = g->progress;
        j->progress_ctx = g->progress_ctx;
        j->cancel = g->cancel;
        j->cancel_ctx = g->cancel_ctx;
        j->job = (int)k;
        j->image_base = base;
        g->cur_kid = k;
        s = lf_gen_run(j, cb, cbctx);
        const lf_gen_times *t = &j->times;
        g->times.load += t->load, g->times.encode += t->encode, g->times.weights += t->weights;
        g->times.unet += t->unet, g->times.decode += t->decode, g->times.write += t->write;
        g->times.unet_calls += t->unet_calls, g->times.te_runs += t->te_runs;
        g->times.weight_updates += t->weight_updates;
        g->interrupted = j->interrupted;
        base += j->info.images;
    }
    if (g->own_sess) lf_gen_session_unload(g->sess);
    return s;
}

static void lf_gen_unload(lf_gen *g) {
    lf_gen_dev_close(g);
    if (g->own_sess) {
        lf_gen_session_unload(g->sess);
    } else if (g->be) {
        /* the session's models read this job's patched tensors in place (lf_live_weights.h) and outlive
         * the backend: they take copies; without memory for them the models go, and the next job loads */
        lf_live live = {g->sess->unet, g->sess->te1, g->sess->te2, 0};
        if (lf_live_own(&live) != LF_OK) {
            lf_err_clear();
            lf_gen_session_unload(g->sess);
        }
    }
    lf_cpu_backend_free(g->be);
    g->unet = NULL;
    g->vae = NULL;
    g->te1 = g->te2 = NULL;
    g->be = NULL;
    lf_gen_cond_cache_free(g);
    free(g->tin);
    free(g->ctx);
    free(g->y);
    g->tin = g->ctx = g->y = NULL;
    lf_gen_stage_free(g);
    lf_gen_sbuf_free(g);
    g->ctx_cap = 0;
}

void lf_gen_free(lf_gen *g) {
    if (!g) return;
    for (size_t k = g->n_kids; k-- > 0;) lf_gen_free(g->kids[k]); /* before the session they run on */
    free(g->kids);
    lf_gen_unload(g);
    lf_step_plan_free(g->sp);
    lf_prompt_free(g->pr);
    free(g->aid);
    if (!g->sess) {
        lf_tokenizer_free(g->tok);
        lf_model_free(g->m);
    } else if (g->own_sess) {
        lf_gen_session_free(g->sess);
    }
    free(g->prompt);
    free(g->info_prompt);
    free(g->lora_hashes);
    free(g->ti_hashes);
    lf_embeddings_free(g->emb);
    free(g->model_name);
    lf_msgs_free(&g->warnings);
    free(g);
}

/* The checks and the summary of a job on g (whose model may be a session's); g is freed on failure. */
static lf_status lf_gen_open_job(lf_gen *g, const lf_gen_opts *opts) {
    g->o = *opts;
    lf_status st = lf_gen_check(g);
    if (st != LF_OK) {
        lf_gen_free(g);
        return st;
    }
    /* what the run will do, for the caller's summary line */
    const lf_gen_opts *o = &g->o;
    for (int t = 1; t <= o->steps; t++) {
        g->n_jobs_total += g->sp->steps[t - 1].n_jobs;
        g->info.te_encodes += (size_t)g->sp->steps[t - 1].cond_encode;
    }
    for (size_t i = 0; i < g->sp->n_adapters; i++) g->info.n_adapters += !g->sp->adapters[i].dropped;
    g->info.prompt = g->prompt;
    g->info.infotext_prompt = g->info_prompt;
    g->info.sampler = g->sampler_name;
    g->info.steps = o->steps;
    g->info.width = o->width;
    g->info.height = o->height;
    g->info.batch_size = o->batch_size;
    g->info.batch_count = o->batch_count;
    g->info.jobs = 1;
    g->info.images = o->batch_size * o->batch_count;
    g->info.cfg = o->cfg;
    g->info.family = lf_family_name(g->m->family);
    g->info.mem_estimate = g->mem.total;
    g->info.mem_limit = g->mem.limit;
    g->info.warnings = (const char *const *)g->warnings.v;
    g->info.n_warnings = g->warnings.n;
    return LF_OK;
}

lf_status lf_gen_open(const lf_gen_opts *opts, lf_gen **out) {
    *out = NULL;
    if (!opts || !opts->model || !opts->prompt) return lf_err(LF_ERR_ARG, "generate: --model and --prompt are required");
    lf_gen *g = calloc(1, sizeof *g);
    if (!g) return lf_err(LF_ERR_NOMEM, "out of memory");
    lf_status st = lf_gen_open_job(g, opts);
    if (st != LF_OK) return st;
    st = lf_gen_session_adopt(g);
    g->own_sess = 1; /* freed with g, also when the compute could not be had */
    if (st != LF_OK) {
        lf_gen_free(g);
        return st;
    }
    g->info.backend = g->sess->backend;
    /* auto became a device that patches the UNet's adapter layers in its memory: the estimate of the checks
     * counted them on the host (the larger figure, so this one passes too) */
    if (opts->backend == LF_GEN_AUTO && g->sp->plan->n_jobs && lf_gen_dev_patches(g)) {
        if ((st = lf_gen_check_memory(g)) != LF_OK) {
            lf_gen_free(g);
            return st;
        }
        g->info.mem_estimate = g->mem.total;
    }
    *out = g;
    return LF_OK;
}

/* ---- weights ---------------------------------------------------------------------------------- */
/* Step t: the CPU backend, then the loaded models. any = 1 at the first step of a run whose models may
 * hold anything (a used session, a later sampler run of this job): exactly the tensors whose bytes
 * differ from what the models hold are recomputed (gen_session.c); otherwise the step's own list. */
static lf_status lf_gen_apply_step(lf_gen *g, int t, int any) {
    double t0 = lf_clock_s();
    lf_status s;
    size_t n = 0, nd = 0;
    const lf_step *step = &g->sp->steps[t - 1];
    if (any) {
        s = lf_gen_session_apply_changed(g, g->be, t, &n);
    } else {
        lf_live live = {g->unet, g->te1, g->te2, 0};
        lf_live_stats ls;
        memset(&ls, 0, sizeof ls);
        s = lf_gen_session_mark_step(g, t, 0);
        if (!s && !g->host_held) { /* every job on the host */
            s = lf_cpu_backend_step(g->be, t);
            if (!s) s = lf_live_apply_step(&live, g->sp, g->be, t, &ls);
        } else if (!s) { /* the step's host jobs; the device takes the others below */
            size_t nh = 0;
            for (size_t i = 0; i < step->n_jobs; i++)
                if (g->host_held[step->jobs[i]]) g->host_list[nh++] = step->jobs[i];
            s = lf_cpu_backend_step_jobs(g->be, t, g->host_list, nh);
            if (!s) s = lf_live_apply_jobs(&live, g->sp, g->be, g->host_list, nh, &ls);
        }
        if (!s) s = lf_gen_session_mark_step(g, t, 1);
        n = ls.refreshed;
    }
    int dev = any; /* the device's jobs: at a run's first step, or when the step lists one */
    for (size_t i = 0; g->host_held && !dev && i < step->n_jobs; i++) dev = !g->host_held[step->jobs[i]];
    if (!s && dev) s = lf_gen_dev_step(g, t, &nd);
    g->times.weight_updates += n + nd;
    g->times.device_updates += nd;
    g->times.weights += lf_clock_s() - t0;
    return s;
}

/* ---- sampler callbacks ------------------------------------------------------------------------ */
/* The cancel callback said stop: lf_gen_run ends with the images finished so far. */
static int lf_gen_stop(lf_gen *g) {
    if (!g->interrupted && g->cancel && g->cancel(g->cancel_ctx)) g->interrupted = 1;
    return g->interrupted;
}

static lf_status lf_gen_before_step(void *ctx, int step) {
    lf_gen *g = ctx;
    lf_status s = LF_OK;
    if (lf_gen_stop(g)) return lf_err(LF_ERR_ARG, "interrupted at step %d", step);
    /* at a run's first step, models that ran before may hold anything: also a plan whose jobs stay at
     * zero (listed at no step) must bring its tensors back to W0 then */
    int fresh = step == 1 && (g->run_idx > 0 || g->sess->used);
    if (g->n_jobs_total || (fresh && g->sp->plan->n_jobs)) {
        /* one backend per job: the models read its tensors in place, so a later sampler run rewinds it
         * and recomputes only what differs (gen_session.c) instead of building another */
        if (step == 1 && g->be) {
            lf_cpu_backend_rewind(g->be);
        } else if (step == 1) {
            if ((s = lf_gen_dev_open(g)) != LF_OK) return s;
            if ((s = lf_cpu_backend_new_held(g->sp, 1, g->host_held, &g->be)) != LF_OK) return s;
        }
        if ((s = lf_gen_apply_step(g, step, fresh)) != LF_OK) return s;
    }
    return lf_gen_session_cond(g, g->sp->steps[step - 1].cond_set);
}

static void lf_gen_report(lf_gen *g, int step) {
    if (!g->progress) return;
    lf_gen_progress p;
    p.step = step;
    p.steps = g->o.steps;
    p.run = g->run_idx + 1;
    p.runs = g->runs;
    p.first_image = g->first_image;
    p.n_images = g->run_n;
    p.total_images = g->o.batch_size * g->o.batch_count;
    double now = lf_clock_s();
    p.elapsed = now - g->t0;
    p.run_elapsed = now - g->run_t0;
    g->progress(g->progress_ctx, &p);
}

/* A NaN or Inf in a latent spreads to the whole image: stop at the first step that has one. what: which
 * array (the latent entering the step, the model output of the step, the final latent). */
static lf_status lf_gen_check_latent(const lf_gen *g, int step, const float *v, size_t n, const char *what) {
    int64_t i = lf_wts_first_nonfinite(v, (int64_t)n);
    if (i == (int64_t)n) return LF_OK;
    size_t per = (size_t)(4 * g->lat_h * g->lat_w);
    return lf_err(LF_ERR_NONFINITE, "step %d of %d: %s holds %s (image %d, element %zu of %zu): the model with "
                  "this step's weights (checkpoint and adapters at their strengths) gives non-finite values; "
                  "nothing was written for this image%s", step, g->o.steps, what, lf_wts_nonfinite_name(v[i]),
                  g->first_image + (int)((size_t)i / per) + 1, (size_t)i % per, per, lf_gen_nonfinite_hint(g));
}

static lf_status lf_gen_check_cb(const void *g, int step, const float *v, size_t n, const char *what) {
    return lf_gen_check_latent(g, step, v, n, what);
}

/* x: the sampler's model input, out: its prediction, f32 buffers of the compute (gen_sample.c) */
static lf_status lf_gen_denoise(void *ctx, int step, const float *x, float sigma, float t, float *out) {
    (void)sigma;
    lf_gen *g = ctx;
    lf_compute *cc = g->sess->cc;
    const lf_gen_cond *c = &g->cache[g->cur_set];
    int n = g->run_n, cfg = g->o.cfg > 1.0;
    int N = cfg ? 2 * n : n;
    int64_t L = c->cond.tokens;
    int64_t tot = (int64_t)n * 4 * g->lat_h * g->lat_w;
    /* the text encoders ran (or not) before this step; their mapped pages are not read by the UNet */
    lf_clip_drop_pages(g->te1);
    lf_clip_drop_pages(g->te2);
    const float *dctx = NULL, *dy = NULL;
    float *xin = NULL, *dout = NULL;
    lf_status s = lf_gen_sample_cond(g, N, &dctx, &dy);
    if (!s) s = lf_gen_sbuf(g, LF_GS_XIN, N * tot / n, 0, &xin);
    if (!s) s = lf_gen_sbuf(g, LF_GS_OUT, N * tot / n, 0, &dout);
    /* the UNet's input in the activation type: x, twice with CFG (unconditional, conditional) */
    if (!s) s = cc->copy2d(cc, xin, tot, x, tot, 1, tot);
    if (!s && cfg) s = cc->copy2d(cc, xin + tot, tot, x, tot, 1, tot);
    if (s) return s;
    for (int i = 0; i < N; i++) g->tin[i] = t;
    double t0 = lf_clock_s();
    s = lf_unet_forward_on(g->unet, cc, dout, xin, g->tin, dctx, L, dy, N, g->lat_h, g->lat_w);
    if (!s) s = cc->sync(cc); /* the UNet's time, not its enqueueing (the step's flags wait for it anyway) */
    g->times.unet += lf_clock_s() - t0;
    g->times.unet_calls++;
    if (s) return s;
    const float *o = dout; /* the output in f32 */
    if (cc->act != LF_F32) {
        float *o32 = NULL;
        int64_t all = N * tot / n;
        if ((s = lf_gen_sbuf(g, LF_GS_O32, all, 1, &o32)) == LF_OK) s = cc->copy2d(cc, o32, all, dout, all, 1, all);
        if (s) return s;
        o = o32;
    }
    if (cfg) { /* out = uncond + g (cond - uncond) */
        lf_sample_upd u;
        memset(&u, 0, sizeof u);
        u.op = LF_SU_CFG;
        u.k[0] = (float)g->o.cfg;
        float *b[LF_SU_BUFS] = {out, (float *)o, (float *)o + tot, NULL, NULL, NULL};
        s = cc->sample_update(cc, &u, b, tot);
    } else {
        s = cc->copy2d(cc, out, tot, o, tot, 1, tot);
    }
    if (!s) s = lf_gen_sample_check(g, step, x, out, tot, lf_gen_check_cb, g);
    if (s) return s;
    lf_gen_report(g, step);
    return LF_OK;
}

/* ---- sampling loop ---------------------------------------------------------------------------- */
lf_status lf_gen_run(lf_gen *g, lf_gen_image_fn cb, void *cbctx) {
    if (g->n_kids) return lf_gen_run_group(g, cb, cbctx);
    lf_gen_opts *o = &g->o;
    g->t0 = lf_clock_s();
    lf_status s = LF_OK;
    lf_sampler *smp = NULL;
    float *x = NULL, *img = NULL;
    uint8_t *rgb = NULL;
    lf_rng *rngs = NULL;
    lf_gen_session *ss = g->sess;
    int sampled = 0;
    lf_gen_unload(g);
    memset(&g->times, 0, sizeof g->times);
    g->interrupted = 0;
    g->lat_h = o->height / 8;
    g->lat_w = o->width / 8;
    /* load (a session of its own), or bring a used session's weights back to W0 outside this plan */
    double t0 = lf_clock_s();
    if (!ss->unet && (s = lf_gen_session_load(ss, g)) != LF_OK) goto done;
    g->times.load = lf_clock_s() - t0;
    t0 = lf_clock_s();
    /* from here on the models may hold this plan's patches (ss->used is set when the loop ends) */
    sampled = 1;
    size_t restored = 0;
    s = lf_gen_adapter_ids(g);
    if (!s) s = lf_gen_session_switch(ss, g->sp, &restored);
    g->times.weights += lf_clock_s() - t0;
    g->times.weight_updates += restored;
    if (s) goto done;
    g->unet = ss->unet;
    g->vae = ss->vae;
    g->te1 = ss->te1;
    g->te2 = ss->te2;
    if ((s = lf_gen_cond_cache_new(g)) != LF_OK) goto done;
    g->scfg.prediction = lf_unet_get_arch(g->unet)->prediction; /* v for SD2.x (lf_unet.h) */
    if ((s = lf_sampler_create(&g->scfg, o->steps, &smp)) != LF_OK) goto done;
    int stoch = lf_gen_stochastic(g);
    int per_run = lf_gen_per_run(g);
    int total = o->batch_size * o->batch_count;
    g->runs = (total + per_run - 1) / per_run;
    size_t per = (size_t)(4 * g->lat_h * g->lat_w);
    int64_t adm = lf_unet_get_arch(g->unet)->adm_in_channels;
    x = malloc((size_t)per_run * per * sizeof *x);
    g->tin = malloc((size_t)per_run * 2 * sizeof *g->tin);
    g->y = adm > 0 ? malloc((size_t)per_run * 2 * (size_t)adm * sizeof *g->y) : NULL;
    img = malloc((size_t)3 * (size_t)o->width * (size_t)o->height * sizeof *img);
    rgb = malloc((size_t)3 * (size_t)o->width * (size_t)o->height);
    rngs = calloc((size_t)per_run, sizeof *rngs);
    if (!x || !g->tin || (adm > 0 && !g->y) || !img || !rgb || !rngs) {
        s = lf_err(LF_ERR_NOMEM, "out of memory");
        goto done;
    }
    int64_t seed0 = o->seed;
    lf_sampler_cb scb = {g, lf_gen_before_step, lf_gen_denoise};
    int index = 0;
    for (g->run_idx = 0; g->run_idx < g->runs && !s && !lf_gen_stop(g); g->run_idx++) {
        int n = total - index < per_run ? total - index : per_run;
        g->run_n = n;
        g->first_image = index;
        for (int i = 0; i < n; i++) {
            int64_t sd = index + i == 0 ? seed0 : seed0 + index + i; /* in range: lf_gen_check */
            if ((s = lf_rng_init(&rngs[i], o->rng, sd)) != LF_OK) break;
            if (index + i == 0) seed0 = rngs[0].seed; /* -1 resolved */
            lf_sampler_init_latent(smp, &rngs[i], x + (size_t)i * per, per);
        }
        if (s) break;
        g->run_t0 = lf_clock_s();
        lf_gen_report(g, 0);
        s = lf_gen_sample_run(g, smp, x, (int64_t)n * (int64_t)per, stoch ? &rngs[0] : NULL, &scb);
        if (s && g->interrupted) {
            s = LF_OK;
            break;
        }
        if (!s) s = lf_gen_check_latent(g, o->steps, x, (size_t)n * per, "the final latent");
        if (s) break;
        double t_sample = (lf_clock_s() - g->run_t0) / n;
        /* the UNet's and text encoders' mapped pages are not needed while the VAE decodes: handing them back
         * keeps the decode's buffers from adding to them (docs/model-runtime.md "Memory") */
        lf_unet_drop_pages(g->unet);
        lf_clip_drop_pages(g->te1);
        lf_clip_drop_pages(g->te2);
        for (int i = 0; i < n && !s; i++)
            s = lf_gen_finish_image(g, index + i, rngs[i].seed, x + (size_t)i * per, img, rgb, t_sample, g->model_hash, cb,
                                    cbctx);
        index += n;
    }
done:
    if (sampled) ss->used = 1;
    lf_sampler_free(smp);
    free(x);
    free(img);
    free(rgb);
    free(rngs);
    lf_gen_unload(g);
    return s;
}
