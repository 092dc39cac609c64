/* gen_mixed.c: the jobs of a group (lf_gen_open_group) as one batch: one UNet call per step for every
 * image of every job, each image with its own job's adapters at their strengths of this step
 * (docs/generate.md "Mixed batches").
 *
 * The loaded UNet keeps W0. The UNet runs on a per-sample compute (host/runtime/compute_mix.h) that knows,
 * for every layer some job patches, what each job's images need there:
 *   - low-rank modules (LoRA, LoCon with or without a Tucker mid, dyn rank; no DoRA): the unmerged terms
 *     c * up(down(x)) on the job's images, c = coefficient of this step (strength x block factor, the
 *     step plan's) x gamma, exactly the scale the merge gives the module;
 *   - a layer where the job has any other module (LoHa, LoKr, DoRA, GLoRA, OFT/BOFT, IA3, full): the job's
 *     whole weight for that layer, built from W0 by its own step plan's CPU backend as for the job alone
 *     (lf_cpu_backend_step_jobs: the same bytes), and that layer runs once per distinct weight.
 * With batch_merged (lf_generate.h) low-rank modules take the second path too, so every image is bit for
 * bit the image alone (layers the UNet holds converted from the checkpoint's dtype keep the terms).
 * Text encoders: each job's conditioning comes from its own cache of cond sets; a job whose text-encoder
 * weights are patched gets its text-encoder tensors at this step from its backend for the encode and the
 * encoders go back to W0 after it; a job with unpatched encoders takes the conditioning of an earlier job
 * that encoded the same texts (so one run per distinct text and text-encoder weights).
 * Images: each job's images are drawn from its own seeds (job seed + index); the whole group runs as one
 * sampler run (deterministic samplers only: lf_gen_mixed_ok), on the session's compute (the CPU, or the
 * CUDA compute: inputs staged into its memory, the built weights and factors it keeps resident by host
 * address forgotten when they are rewritten or freed), the unconditional and conditional halves of
 * an image share its job. Images whose conditioning has a different token count (prompts over one
 * 75-token window) go in separate UNet calls of the same step.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate_internal.h"
#include "host/base/util.h"
#include "host/runtime/compute_count.h"
#include "host/runtime/compute_mix.h"
#include "host/runtime/model_compute.h"
#include "host/runtime/weight_load.h"
#include "lorafuse/lf_live_weights.h"

typedef struct {
    lf_gen *g;
    unsigned char *built;      /* per plan job: its weight comes from the backend (not unmerged terms) */
    size_t *te, n_te;          /* text-encoder jobs */
    int te_live;               /* some text-encoder job is not zero at some step */
    size_t *low, n_low;        /* UNet jobs run as unmerged terms */
    size_t *term0;             /* per plan job: its first term (low-rank jobs) */
    size_t *list;              /* scratch: a step's built jobs */
    lf_patch *scratch;         /* room for the largest job's patches */
} lf_mix_job;

typedef struct {
    lf_gen *grp;
    lf_mix_job *jobs;
    size_t n_jobs;
    lf_compute_mix mix;
    lf_mix_layer *layers;
    size_t n_layers;
    lf_mix_slot *slots;        /* n_layers x n_jobs */
    lf_view *views;            /* n_layers x n_jobs: built weights */
    lf_mix_term *terms;
    size_t n_terms;
    float **owned;             /* f32 factors */
    size_t n_owned;
    int n_img;
    int *img_job;              /* per image: its job */
    int *sample_slot;          /* per sample of the current call */
    float *tin, *ctx, *y;
    lf_compute *cc;            /* the compute the terms and products run on (the session's) */
    float *dev[4];             /* a device compute: x, context, y, output in its memory */
    int64_t dev_n[4];
} lf_mix_run;

/* ---- which modules run unmerged ----------------------------------------------------------------- */
static int lf_mix_lowrank_patch(const lf_patch *p) {
    const lf_module *m = &p->mod;
    if (m->algo != LF_ALGO_LORA || m->dora_axis || p->bias || p->row_off) return 0;
    if (!(m->present & (1u << LF_R_UP)) || !(m->present & (1u << LF_R_DOWN))) return 0;
    return !(m->present & (1u << LF_R_MID)) || !m->dyn_rank;
}

/* f32 copy of rows x cols taken from a (.., ld) view's first cols columns */
static lf_status lf_mix_factor(lf_mix_run *r, const lf_view *v, int64_t rows, int64_t cols, int64_t ld, float **out) {
    int64_t n = lf_view_numel(v);
    if (n != rows * ld) return lf_err(LF_ERR_SHAPE, "mixed batch: a low-rank factor holds %lld values, not %lld x %lld",
                                      (long long)n, (long long)rows, (long long)ld);
    float *all = malloc((size_t)n * sizeof *all);
    if (!all) return lf_err(LF_ERR_NOMEM, "out of memory");
    lf_status st = lf_view_to_f32(v, all);
    if (st) {
        free(all);
        return st;
    }
    if (cols != ld) /* dyn rank: the first cols of every row, packed */
        for (int64_t i = 0; i < rows; i++) memmove(all + i * cols, all + i * ld, (size_t)cols * sizeof *all);
    r->owned[r->n_owned++] = all;
    *out = all;
    return LF_OK;
}

/* The term of low-rank patch p on a target of O rows (factors as f32, dyn rank applied). */
static lf_status lf_mix_make_term(lf_mix_run *r, const lf_patch *p, int64_t O, lf_mix_term *t) {
    const lf_module *m = &p->mod;
    int64_t R = m->rank, use = m->dyn_rank > 0 && m->dyn_rank < m->rank ? m->dyn_rank : m->rank;
    const lf_view *down = &m->t[LF_R_DOWN], *up = &m->t[LF_R_UP];
    int64_t K = lf_view_numel(down) / (R ? R : 1);
    memset(t, 0, sizeof *t);
    t->rank = use;
    lf_status st = lf_mix_factor(r, down, use, K, K, (float **)&t->down); /* first `use` rows */
    if (!st) st = lf_mix_factor(r, up, O, use, R, (float **)&t->up);
    if (!st && (m->present & (1u << LF_R_MID))) st = lf_mix_factor(r, &m->t[LF_R_MID], R, lf_view_numel(&m->t[LF_R_MID]) / R,
                                                                   lf_view_numel(&m->t[LF_R_MID]) / R, (float **)&t->mid);
    return st;
}

/* ---- set-up ------------------------------------------------------------------------------------- */
static int lf_mix_ptr_cmp(const void *a, const void *b) {
    uintptr_t x = (uintptr_t) * (const void *const *)a, y = (uintptr_t) * (const void *const *)b;
    return x < y ? -1 : x > y;
}

static size_t lf_mix_layer_of(const lf_mix_run *r, const void *w) {
    size_t lo = 0, hi = r->n_layers;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((uintptr_t)r->layers[mid].w0 < (uintptr_t)w) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* What each job does on each layer; its backend when some weight of it must be built. */
static lf_status lf_mix_setup(lf_mix_run *r) {
    lf_gen *grp = r->grp;
    lf_gen_session *ss = grp->sess;
    size_t total_ujobs = 0, total_patches = 0;
    lf_status st = LF_OK;
    for (size_t k = 0; k < r->n_jobs; k++) {
        lf_mix_job *mj = &r->jobs[k];
        const lf_plan *pl = mj->g->sp->plan;
        size_t nj = pl->n_jobs, maxp = 1;
        for (size_t j = 0; j < nj; j++) {
            if (pl->jobs[j].n_patches > maxp) maxp = pl->jobs[j].n_patches;
            total_patches += pl->jobs[j].n_patches;
        }
        mj->built = calloc(nj + 1, 1);
        mj->te = malloc((nj + 1) * sizeof *mj->te);
        mj->low = malloc((nj + 1) * sizeof *mj->low);
        mj->term0 = malloc((nj + 1) * sizeof *mj->term0);
        mj->list = malloc((nj + 1) * sizeof *mj->list);
        mj->scratch = malloc(maxp * sizeof *mj->scratch);
        if (!mj->built || !mj->te || !mj->low || !mj->term0 || !mj->list || !mj->scratch)
            return lf_err(LF_ERR_NOMEM, "out of memory");
        int need_be = 0;
        for (size_t j = 0; j < nj; j++) {
            const lf_job *jb = &pl->jobs[j];
            lf_component comp = mj->g->sp->job_comp[j];
            if (comp != LF_COMP_UNET) {
                for (int t = 1; t <= mj->g->sp->n_steps && !mj->te_live; t++) {
                    const float *c = lf_step_coefs(mj->g->sp, t, j);
                    for (size_t i = 0; i < jb->n_patches; i++) mj->te_live |= c[i] != 0.0f;
                }
                mj->te[mj->n_te++] = j;
                mj->built[j] = 1;
                need_be |= mj->te_live;
                continue;
            }
            const lf_view *v = lf_unet_weight_view(ss->unet, jb->target->name);
            if (!v || v->ndim < 2)
                return lf_err(LF_ERR_UNSUPPORTED, "mixed batch: job %zu patches %s, which the UNet does not run as a "
                              "matrix product", k, jb->target->name);
            int low = 1;
            for (size_t i = 0; i < jb->n_patches; i++) low &= lf_mix_lowrank_patch(&jb->patches[i]);
            /* merged mode builds low-rank weights too (the bytes of the job alone), except where the UNet
             * holds a converted copy: there the unmerged terms keep the batch running */
            if (low && mj->g->o.batch_merged && v->dtype == jb->target->dtype) low = 0;
            if (!low) {
                if (v->dtype != jb->target->dtype)
                    return lf_err(LF_ERR_UNSUPPORTED, "mixed batch: the UNet holds %s converted from the checkpoint's "
                                  "dtype", jb->target->name);
                mj->built[j] = 1;
                need_be = 1;
            } else {
                mj->low[mj->n_low++] = j;
            }
            total_ujobs++;
        }
        if (need_be && (st = lf_cpu_backend_new(mj->g->sp, 1, &mj->g->be)) != LF_OK) return st;
    }
    /* the layers: every UNet weight some job patches, by the model's address */
    const void **w = malloc((total_ujobs + 1) * sizeof *w);
    r->owned = malloc((3 * total_patches + 1) * sizeof *r->owned);
    r->terms = calloc(total_patches + 1, sizeof *r->terms);
    if (!w || !r->owned || !r->terms) {
        free(w);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    size_t nw = 0;
    for (size_t k = 0; k < r->n_jobs; k++) {
        const lf_step_plan *sp = r->jobs[k].g->sp;
        for (size_t j = 0; j < sp->plan->n_jobs; j++)
            if (sp->job_comp[j] == LF_COMP_UNET) w[nw++] = lf_unet_weight_view(ss->unet, sp->plan->jobs[j].target->name)->data;
    }
    if (nw > 1) qsort(w, nw, sizeof *w, lf_mix_ptr_cmp);
    size_t nu = 0;
    for (size_t i = 0; i < nw; i++)
        if (!nu || w[nu - 1] != w[i]) w[nu++] = w[i];
    r->n_layers = nu;
    r->layers = calloc(nu + 1, sizeof *r->layers);
    r->slots = calloc((nu + 1) * r->n_jobs, sizeof *r->slots);
    r->views = calloc((nu + 1) * r->n_jobs, sizeof *r->views);
    if (!r->layers || !r->slots || !r->views) st = lf_err(LF_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < nu && !st; i++) {
        r->layers[i].w0 = w[i];
        r->layers[i].slots = r->slots + i * r->n_jobs;
    }
    free(w);
    /* each job's slot on its layers */
    for (size_t k = 0; k < r->n_jobs && !st; k++) {
        lf_mix_job *mj = &r->jobs[k];
        const lf_step_plan *sp = mj->g->sp;
        for (size_t j = 0; j < sp->plan->n_jobs && !st; j++) {
            if (sp->job_comp[j] != LF_COMP_UNET) continue;
            const lf_job *jb = &sp->plan->jobs[j];
            const lf_view *v = lf_unet_weight_view(ss->unet, jb->target->name);
            size_t li = lf_mix_layer_of(r, v->data);
            lf_mix_slot *sl = &r->slots[li * r->n_jobs + k];
            if (mj->built[j]) {
                lf_view *bv = &r->views[li * r->n_jobs + k];
                *bv = *v;
                bv->data = lf_cpu_backend_weight(mj->g->be, j, NULL);
                sl->weight = bv;
                continue;
            }
            mj->term0[j] = r->n_terms;
            sl->terms = r->terms + r->n_terms;
            sl->n_terms = jb->n_patches;
            for (size_t i = 0; i < jb->n_patches && !st; i++)
                st = lf_mix_make_term(r, &jb->patches[i], v->shape[0], &r->terms[r->n_terms++]);
        }
    }
    if (st) return st;
    r->cc = ss->prof ? ss->prof->inner : ss->cc;
    if ((st = lf_compute_mix_init(&r->mix, r->cc)) != LF_OK) return st;
    r->mix.layers = r->layers;
    r->mix.n_layers = r->n_layers;
    r->mix.n_slots = r->n_jobs;
    return LF_OK;
}

static void lf_mix_free(lf_mix_run *r) {
    lf_compute *c = r->cc;
    if (c && !c->host_memory) { /* resident copies of host arrays about to be freed or rewritten */
        for (size_t i = 0; i < r->n_owned; i++) c->forget(c, r->owned[i], 1);
        for (size_t i = 0; i < r->n_layers * r->n_jobs; i++)
            if (r->views && r->views[i].data) c->forget(c, r->views[i].data, 1);
    }
    for (int i = 0; i < 4; i++)
        if (c && r->dev[i] && c->release) c->release(c, r->dev[i]);
    for (size_t k = 0; k < r->n_jobs; k++) {
        lf_mix_job *mj = &r->jobs[k];
        free(mj->built);
        free(mj->te);
        free(mj->low);
        free(mj->term0);
        free(mj->list);
        free(mj->scratch);
    }
    free(r->jobs);
    for (size_t i = 0; i < r->n_owned; i++) free(r->owned[i]);
    free(r->owned);
    free(r->terms);
    free(r->layers);
    free(r->slots);
    free(r->views);
    free(r->img_job);
    free(r->sample_slot);
    free(r->tin);
    free(r->ctx);
    free(r->y);
    lf_compute_mix_free(&r->mix);
}

/* ---- conditioning ------------------------------------------------------------------------------- */
/* The prompt and negative texts of job g's cond set `set`. */
static void lf_mix_texts(const lf_gen *g, size_t set, const char **p, const char **n) {
    const lf_step_plan *sp = g->sp;
    *p = g->prompt;
    *n = g->o.negative ? g->o.negative : "";
    if (set < sp->n_cond_sets) {
        *p = sp->prompts[0].texts[sp->cond_sets[set].text[0]];
        *n = sp->prompts[1].texts[sp->cond_sets[set].text[1]];
    }
}

static int lf_mix_str_eq(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

/* Job k's conditioning of step t: from an earlier job with the same texts and unpatched encoders, else
 * encoded (with the job's text-encoder weights of this step when it patches them). */
static lf_status lf_mix_cond(lf_mix_run *r, size_t k, int t) {
    lf_mix_job *mj = &r->jobs[k];
    lf_gen *g = mj->g;
    size_t set = g->sp->steps[t - 1].cond_set;
    if (set >= g->n_cache) return lf_err(LF_ERR_ARG, "generate: cond set %zu out of range", set);
    if (g->cache[set].have) return lf_gen_cond_select(g, set);
    const char *p, *n;
    lf_mix_texts(g, set, &p, &n);
    for (size_t o = 0; o < k && !mj->te_live; o++) {
        lf_gen *h = r->jobs[o].g;
        if (r->jobs[o].te_live || !lf_mix_str_eq(h->o.embeddings_dir, g->o.embeddings_dir) ||
            !lf_mix_str_eq(h->ti_hashes, g->ti_hashes))
            continue;
        for (size_t s2 = 0; s2 < h->n_cache; s2++) {
            const char *p2, *n2;
            lf_mix_texts(h, s2, &p2, &n2);
            if (!h->cache[s2].have || strcmp(p, p2) || strcmp(n, n2)) continue;
            lf_gen_cond *c = &g->cache[set];
            lf_status st = lf_gen_cond_copy(&h->cache[s2].cond, &c->cond);
            if (!st) st = lf_gen_cond_copy(&h->cache[s2].uncond, &c->uncond);
            if (st) {
                lf_text_cond_free(&c->cond);
                return st;
            }
            c->have = 1;
            return lf_gen_cond_select(g, set);
        }
    }
    if (!mj->te_live) return lf_gen_cond_select(g, set);
    lf_gen_session *ss = g->sess;
    lf_live live = {NULL, ss->te1, ss->te2, 0};
    lf_status st = lf_live_apply_jobs(&live, g->sp, g->be, mj->te, mj->n_te, NULL);
    if (!st) st = lf_gen_cond_select(g, set);
    /* the encoders back at W0 for the next job, also after a failure */
    for (size_t i = 0; i < mj->n_te; i++) {
        const lf_st_tensor *tt = g->sp->plan->jobs[mj->te[i]].target;
        lf_view v;
        memset(&v, 0, sizeof v);
        v.data = tt->data;
        v.dtype = tt->dtype;
        v.ndim = tt->ndim;
        memcpy(v.shape, tt->shape, sizeof v.shape);
        lf_status s2 = lf_live_restore(&live, g->sp->job_comp[mj->te[i]], tt->name, &v);
        if (!st) st = s2;
    }
    return st;
}

/* ---- sampler callbacks -------------------------------------------------------------------------- */
static lf_status lf_mix_before_step(void *ctx, int t) {
    lf_mix_run *r = ctx;
    lf_gen *grp = r->grp;
    if (!grp->interrupted && grp->cancel && grp->cancel(grp->cancel_ctx)) grp->interrupted = 1;
    if (grp->interrupted) return lf_err(LF_ERR_ARG, "interrupted at step %d", t);
    double t0 = lf_clock_s();
    lf_status st = LF_OK;
    for (size_t k = 0; k < r->n_jobs && !st; k++) {
        lf_mix_job *mj = &r->jobs[k];
        const lf_step_plan *sp = mj->g->sp;
        const lf_step *s = &sp->steps[t - 1];
        if (mj->g->be) { /* the built weights of this step, from W0, as the job alone computes them */
            size_t n = 0;
            for (size_t i = 0; i < s->n_jobs; i++)
                if (mj->built[s->jobs[i]]) mj->list[n++] = s->jobs[i];
            if ((st = lf_cpu_backend_step_jobs(mj->g->be, t, mj->list, n)) != LF_OK) break;
            grp->times.weight_updates += n;
            if (!r->cc->host_memory) /* a device keeps copies of the built weights by their host address */
                for (size_t i = 0; i < n; i++) {
                    size_t nb = 0;
                    const void *w = lf_cpu_backend_weight(mj->g->be, mj->list[i], &nb);
                    if (sp->job_comp[mj->list[i]] == LF_COMP_UNET) r->cc->forget(r->cc, w, nb);
                }
        }
        for (size_t i = 0; i < mj->n_low; i++) { /* the unmerged terms' scales of this step */
            size_t j = mj->low[i];
            lf_job job;
            lf_step_job(sp, t, j, mj->scratch, &job);
            for (size_t q = 0; q < job.n_patches; q++)
                r->terms[mj->term0[j] + q].scale = job.patches[q].coef * job.patches[q].mod.gamma;
        }
    }
    grp->times.weights += lf_clock_s() - t0;
    for (size_t k = 0; k < r->n_jobs && !st; k++) st = lf_mix_cond(r, k, t);
    return st;
}

static lf_status lf_mix_check(const void *ctx, int step, const float *v, size_t n, const char *what) {
    const lf_mix_run *r = ctx;
    int64_t i = lf_wts_first_nonfinite(v, (int64_t)n);
    if (i == (int64_t)n) return LF_OK;
    const lf_gen *g = r->grp;
    size_t per = (size_t)(4 * g->lat_h * g->lat_w);
    return lf_err(LF_ERR_NONFINITE, "step %d of %d: %s holds %s (image %zu of the batch): the model with this step's "
                  "weights gives non-finite values; nothing was written for this image%s", step, g->o.steps, what,
                  lf_wts_nonfinite_name(v[i]), (size_t)i / per + 1, lf_gen_nonfinite_hint(g));
}

/* Device buffer i of at least n floats holding host array h (uploaded; NULL: only the room). */
static lf_status lf_mix_stage(lf_mix_run *r, int i, const float *h, int64_t n, const float **out) {
    lf_compute *c = r->cc;
    if (r->dev_n[i] < n) {
        if (r->dev[i] && c->release) c->release(c, r->dev[i]);
        r->dev[i] = NULL;
        r->dev_n[i] = 0;
        lf_status st = c->alloc(c, n, &r->dev[i]);
        if (st) return st;
        r->dev_n[i] = n;
    }
    *out = r->dev[i];
    return h ? c->upload(c, r->dev[i], h, n) : LF_OK;
}

/* x: the sampler's model input, out: its prediction, f32 buffers of the session's compute (gen_sample.c) */
static lf_status lf_mix_denoise(void *ctx, int step, const float *x, float sigma, float tt, float *out) {
    (void)sigma;
    lf_mix_run *r = ctx;
    lf_gen *grp = r->grp;
    int n = r->n_img, cfg = grp->o.cfg > 1.0;
    size_t per = (size_t)(4 * grp->lat_h * grp->lat_w);
    lf_status st = LF_OK;
    lf_compute *cs = grp->sess->cc; /* the sampler's buffers' compute (the profile's count around r->cc) */
    const lf_unet *u = grp->sess->unet;
    int sdxl = grp->tef == LF_TE_SDXL;
    int *part = malloc((size_t)n * sizeof *part);
    unsigned char *done = calloc((size_t)n, 1);
    if (!part || !done) st = lf_err(LF_ERR_NOMEM, "out of memory");
    /* one UNet call per distinct token count (one, unless a prompt spans more windows than another) */
    for (int i0 = 0; i0 < n && !st; i0++) {
        if (done[i0]) continue;
        const lf_gen_cond *c0 = &r->jobs[r->img_job[i0]].g->cache[r->jobs[r->img_job[i0]].g->cur_set];
        int64_t L = c0->cond.tokens, D = c0->cond.width;
        int np = 0;
        for (int i = i0; i < n; i++) {
            const lf_gen *g = r->jobs[r->img_job[i]].g;
            if (!done[i] && g->cache[g->cur_set].cond.tokens == L) part[np++] = i, done[i] = 1;
        }
        int N = cfg ? 2 * np : np;
        size_t one = (size_t)(L * D);
        float *ctxb = realloc(r->ctx, (size_t)N * one * sizeof *ctxb);
        if (!ctxb) {
            st = lf_err(LF_ERR_NOMEM, "out of memory");
            break;
        }
        r->ctx = ctxb;
        int64_t pd = sdxl ? c0->cond.pooled_dim : 0;
        float *pooled = sdxl ? malloc((size_t)N * (size_t)pd * sizeof *pooled) : NULL;
        float *ids = sdxl ? malloc((size_t)N * 6 * sizeof *ids) : NULL;
        if (sdxl && (!pooled || !ids)) st = lf_err(LF_ERR_NOMEM, "out of memory");
        for (int s = 0; s < N && !st; s++) {
            int i = part[cfg && s >= np ? s - np : s];
            int uncond = cfg && s < np;
            const lf_gen *g = r->jobs[r->img_job[i]].g;
            const lf_gen_cond *c = &g->cache[g->cur_set];
            const lf_text_cond *src = uncond ? &c->uncond : &c->cond;
            memcpy(r->ctx + (size_t)s * one, src->context, one * sizeof(float));
            r->tin[s] = tt;
            r->sample_slot[s] = r->img_job[i];
            if (sdxl) {
                memcpy(pooled + (size_t)s * (size_t)pd, src->pooled, (size_t)pd * sizeof(float));
                float v[6] = {(float)grp->o.height, (float)grp->o.width, 0, 0, (float)grp->o.height, (float)grp->o.width};
                memcpy(ids + s * 6, v, sizeof v);
            }
        }
        if (!st && sdxl) st = lf_unet_sdxl_y(u, r->y, pooled, pd, ids, 6, N);
        free(pooled);
        free(ids);
        if (st) break;
        r->mix.slot_of = r->sample_slot;
        r->mix.n_samples = N;
        double t0 = lf_clock_s();
        int64_t adm = sdxl ? lf_unet_get_arch(u)->adm_in_channels : 0;
        const float *dctx = r->ctx, *dy = sdxl ? r->y : NULL;
        float *dx = NULL, *dout = NULL;
        int64_t P = (int64_t)per, all = N * P;
        if (!r->cc->host_memory) { /* a device compute: the conditioning into its memory */
            st = lf_mix_stage(r, 1, r->ctx, N * L * D, &dctx);
            if (!st && sdxl) st = lf_mix_stage(r, 2, r->y, N * adm, &dy);
        }
        /* the UNet's input: each sample's image of x, in the activation type */
        if (!st) st = lf_gen_sbuf(grp, LF_GS_XIN, all, 0, &dx);
        if (!st) st = lf_gen_sbuf(grp, LF_GS_OUT, all, 0, &dout);
        for (int s = 0; s < N && !st; s++)
            st = cs->copy2d(cs, dx + s * P, P, x + part[cfg && s >= np ? s - np : s] * P, P, 1, P);
        if (!st)
            st = lf_unet_forward_on(u, &r->mix.c, dout, dx, r->tin, dctx, L, dy, N, grp->lat_h, grp->lat_w);
        if (!st) st = cs->sync(cs); /* the UNet's time, not its enqueueing */
        r->mix.n_samples = 0;
        grp->times.unet += lf_clock_s() - t0;
        grp->times.unet_calls++;
        if (st) break;
        const float *o = dout; /* the output in f32 */
        if (cs->act != LF_F32) {
            float *o32 = NULL;
            if ((st = lf_gen_sbuf(grp, LF_GS_O32, all, 1, &o32)) == LF_OK) st = cs->copy2d(cs, o32, all, dout, all, 1, all);
            o = o32;
        }
        lf_sample_upd cu;
        memset(&cu, 0, sizeof cu);
        cu.op = LF_SU_CFG;
        cu.k[0] = (float)grp->o.cfg;
        for (int q = 0; q < np && !st; q++) { /* out = uncond + g (cond - uncond), image by image */
            float *oq = out + part[q] * P;
            const float *cq = o + (cfg ? np + q : q) * P, *uq = o + q * P;
            float *b[LF_SU_BUFS] = {oq, (float *)uq, (float *)cq, NULL, NULL, NULL};
            st = cfg ? cs->sample_update(cs, &cu, b, P) : cs->copy2d(cs, oq, P, cq, P, 1, P);
        }
    }
    free(part);
    free(done);
    if (!st) st = lf_gen_sample_check(grp, step, x, out, (int64_t)n * (int64_t)per, lf_mix_check, r);
    if (!st && grp->progress) {
        lf_gen_progress p;
        memset(&p, 0, sizeof p);
        p.step = step, p.steps = grp->o.steps, p.run = 1, p.runs = 1, p.n_images = n, p.total_images = n;
        double now = lf_clock_s();
        p.elapsed = now - grp->t0;
        p.run_elapsed = now - grp->run_t0;
        grp->progress(grp->progress_ctx, &p);
    }
    return st;
}

/* ---- the run ------------------------------------------------------------------------------------ */
int lf_gen_mixed_ok(const lf_gen *grp, char *why, size_t cap) {
    const lf_gen_session *ss = grp->sess;
    const lf_compute *c = ss->prof ? ss->prof->inner : ss->cc;
    const char *no = NULL;
    if (!c || (strcmp(c->name, "cpu") && strcmp(c->name, "cuda"))) no = "the models run on an unknown compute";
    else if (lf_gen_stochastic(grp->kids[0])) no = "an ancestral or SDE sampler draws noise per image";
    for (size_t k = 0; k < grp->n_kids && !no; k++) { /* UNet adapters on biases and norms: not per sample yet */
        const lf_step_plan *sp = grp->kids[k]->sp;
        for (size_t j = 0; j < sp->plan->n_jobs && !no; j++) {
            const lf_job *jb = &sp->plan->jobs[j];
            if (sp->job_comp[j] != LF_COMP_UNET) continue;
            if (jb->target->ndim < 2) no = "an adapter patches a UNet bias or norm";
            for (size_t i = 0; i < jb->n_patches && !no; i++)
                if (jb->patches[i].bias) no = "an adapter patches a UNet bias or norm";
        }
    }
    if (no && why && cap) snprintf(why, cap, "%s", no);
    return !no;
}

lf_status lf_gen_run_mixed(lf_gen *grp, lf_gen_image_fn cb, void *cbctx) {
    lf_gen_session *ss = grp->sess;
    lf_mix_run r;
    memset(&r, 0, sizeof r);
    r.grp = grp;
    r.n_jobs = grp->n_kids;
    lf_status st = LF_OK;
    lf_sampler *smp = NULL;
    float *x = NULL, *img = NULL;
    uint8_t *rgb = NULL;
    lf_rng *rngs = NULL;
    lf_gen *g0 = grp->kids[0];
    grp->t0 = lf_clock_s();
    grp->o = g0->o;
    grp->tef = g0->tef;
    grp->lat_h = g0->o.height / 8;
    grp->lat_w = g0->o.width / 8;
    double t0 = lf_clock_s();
    if (!ss->unet && (st = lf_gen_session_load(ss, g0)) != LF_OK) return st;
    grp->times.load = lf_clock_s() - t0;
    size_t restored = 0;
    st = lf_gen_session_switch(ss, NULL, &restored); /* the loaded models at W0 throughout */
    grp->times.weight_updates += restored;
    ss->used = 1;
    if (st) return st;
    if (!(r.jobs = calloc(r.n_jobs, sizeof *r.jobs))) return lf_err(LF_ERR_NOMEM, "out of memory");
    int n = 0;
    for (size_t k = 0; k < r.n_jobs; k++) {
        lf_gen *g = grp->kids[k];
        r.jobs[k].g = g;
        g->unet = ss->unet, g->vae = ss->vae, g->te1 = ss->te1, g->te2 = ss->te2;
        g->lat_h = grp->lat_h, g->lat_w = grp->lat_w;
        g->job = (int)k;
        memset(&g->times, 0, sizeof g->times);
        n += g->info.images;
        if (!st) st = lf_gen_cond_cache_new(g);
    }
    r.n_img = n;
    if (!st) st = lf_mix_setup(&r);
    size_t per = (size_t)(4 * grp->lat_h * grp->lat_w);
    int64_t adm = lf_unet_get_arch(ss->unet)->adm_in_channels;
    if (!st) {
        r.img_job = malloc((size_t)n * sizeof *r.img_job);
        r.sample_slot = malloc((size_t)n * 2 * sizeof *r.sample_slot);
        r.tin = malloc((size_t)n * 2 * sizeof *r.tin);
        r.y = adm > 0 ? malloc((size_t)n * 2 * (size_t)adm * sizeof *r.y) : NULL;
        x = malloc((size_t)n * per * sizeof *x);
        img = malloc((size_t)3 * (size_t)grp->o.width * (size_t)grp->o.height * sizeof *img);
        rgb = malloc((size_t)3 * (size_t)grp->o.width * (size_t)grp->o.height);
        rngs = calloc((size_t)n, sizeof *rngs);
        if (!r.img_job || !r.sample_slot || !r.tin || (adm > 0 && !r.y) || !x || !img || !rgb ||
            !rngs)
            st = lf_err(LF_ERR_NOMEM, "out of memory");
    }
    g0->scfg.prediction = lf_unet_get_arch(ss->unet)->prediction;
    if (!st) st = lf_sampler_create(&g0->scfg, grp->o.steps, &smp);
    /* every image's initial latent from its own seed, in job order */
    for (size_t k = 0, i = 0; k < r.n_jobs && !st; k++) {
        const lf_gen *g = grp->kids[k];
        int64_t seed0 = g->o.seed;
        for (int q = 0; q < g->info.images && !st; q++, i++) {
            r.img_job[i] = (int)k;
            if ((st = lf_rng_init(&rngs[i], g->o.rng, q == 0 ? seed0 : seed0 + q)) != LF_OK) break;
            if (q == 0) seed0 = rngs[i].seed; /* -1 resolved */
            lf_sampler_init_latent(smp, &rngs[i], x + i * per, per);
        }
    }
    lf_sampler_cb scb = {&r, lf_mix_before_step, lf_mix_denoise};
    grp->interrupted = 0;
    grp->run_t0 = lf_clock_s();
    if (!st) {
        st = lf_gen_sample_run(grp, smp, x, (int64_t)n * (int64_t)per, NULL, &scb);
        if (st && grp->interrupted) st = LF_OK, n = 0;
    }
    double t_sample = n ? (lf_clock_s() - grp->run_t0) / n : 0;
    grp->times.unet_extra = r.mix.t_terms + r.mix.t_split;
    grp->times.segmented_layers = (size_t)r.mix.n_segmented;
    if (!st && n) {
        lf_unet_drop_pages(ss->unet);
        lf_clip_drop_pages(ss->te1);
        lf_clip_drop_pages(ss->te2);
    }
    /* each image through its own job: decode, its own parameters, PNG, callback */
    for (int i = 0, base = 0, q = 0; i < n && !st; i++) {
        lf_gen *g = grp->kids[r.img_job[i]];
        if (i && r.img_job[i] != r.img_job[i - 1]) base = i, q = 0;
        g->image_base = base;
        if (!grp->interrupted && grp->cancel && grp->cancel(grp->cancel_ctx)) grp->interrupted = 1;
        if (grp->interrupted) break;
        st = lf_gen_finish_image(g, q, rngs[i].seed, x + (size_t)i * per, img, rgb, t_sample, g->model_hash, cb, cbctx);
        grp->times.decode += g->times.decode, grp->times.write += g->times.write;
        g->times.decode = g->times.write = 0;
        q++;
    }
    for (size_t k = 0; k < r.n_jobs; k++) {
        grp->times.encode += grp->kids[k]->times.encode;
        grp->times.te_runs += grp->kids[k]->times.te_runs;
    }
    lf_sampler_free(smp);
    free(x);
    free(img);
    free(rgb);
    free(rngs);
    lf_mix_free(&r);
    lf_gen_sbuf_free(grp);
    return st;
}
