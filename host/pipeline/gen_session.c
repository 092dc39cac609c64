/* gen_session.c: the resident model of lf_gen_session (lf_generate.h) and what its loaded weights hold.
 *
 * The session lists every checkpoint tensor its loaded models may hold patched, each with the
 * signature of the bytes it holds: SHA-256 over the patches that produced them (adapter file identity:
 * path, device, inode, size, mtime and ctime; module name and resolved parameters; coefficient; row
 * slice; bias flag), in the order lf_job_apply sums them, zero-coefficient patches left out (lf_job_apply
 * skips them). No patch gives the all-zero signature: the pristine W0. A tensor outside the list holds W0.
 *
 * A job on a used session (lf_gen_session_switch, then at the first step of every sampler run
 * lf_gen_session_apply_changed):
 *   1. every listed tensor this job's plan does not patch is rewritten from the checkpoint's W0 bytes;
 *   2. every tensor this job patches whose step-1 signature differs from what it holds is recomputed from
 *      W0 (lf_cpu_backend_step_jobs) and handed to the models; the others already hold those bytes.
 * Later steps go as in a fresh process (the plan's per-step lists). Layers a device compute patches in
 * its own memory (gen_compute.c, g->host_held 0) are never patched on the host: they hold W0 there and
 * keep the W0 signature; the device's patch model is bound for one job only (kept unbound in the session
 * for a next job with the same device adapters, which steps it from W0 like a new one). So a job's weights at every step
 * are byte for byte those of a freshly loaded model, and a request with the same adapters as the last one
 * rewrites nothing. While a tensor is being rewritten its signature is "unknown" (all 0xff), so a failure
 * half-way leaves nothing that a later job would trust.
 *
 * Text-encoder outputs: a job on a shared session takes the conditioning of a text-encoder set from the
 * session's memo when an earlier job encoded the same texts (prompt as the encoders see it, negative
 * prompt, clip skip) with text encoders holding the same bytes: the key hashes the texts and the
 * (name, signature) of every text-encoder tensor not at W0; the encoders are deterministic, so the
 * memo's floats are those a new encoding would give.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "generate_internal.h"
#include "host/base/util.h"
#include "lorafuse/lf_hash.h"
#include "lorafuse/lf_live_weights.h"

static const unsigned char lf_sig_w0[LF_GEN_SIG] = {0};

void lf_gen_session_unload(lf_gen_session *s) {
    lf_gen_dev_drop(s); /* also when memory was short (lf_gen_unload): the device's share goes too */
    lf_unet_free(s->unet);
    lf_vae_free(s->vae);
    lf_clip_free(s->te1);
    lf_clip_free(s->te2);
    s->unet = NULL;
    s->vae = NULL;
    s->te1 = s->te2 = NULL;
    s->used = 0;
    s->n_held = 0;
}

static void lf_gen_memo_clear(lf_gen_te_memo *m) {
    lf_text_cond_free(&m->cond);
    lf_text_cond_free(&m->uncond);
    memset(m, 0, sizeof *m);
}

void lf_gen_session_free(lf_gen_session *s) {
    if (!s) return;
    lf_gen_session_unload(s);
    lf_gen_compute_close(s);
    for (size_t i = 0; i < LF_GEN_TE_MEMO; i++) lf_gen_memo_clear(&s->memo[i]);
    lf_model_free(s->m);
    lf_tokenizer_free(s->tok);
    free(s->held);
    free(s->model);
    free(s);
}

const char *lf_gen_session_model(const lf_gen_session *s) { return s->model; }
const char *lf_gen_session_family(const lf_gen_session *s) { return s->family; }
const char *lf_gen_session_hash(const lf_gen_session *s) { return s->model_hash; }
const char *lf_gen_session_backend(const lf_gen_session *s) { return s->backend; }

uint64_t lf_gen_session_owned_bytes(const lf_gen_session *s) {
    return lf_unet_owned_bytes(s->unet) + lf_clip_owned_bytes(s->te1) + lf_clip_owned_bytes(s->te2);
}

lf_status lf_gen_session_adopt(lf_gen *g) {
    lf_gen_session *s = calloc(1, sizeof *s);
    size_t n = strlen(g->o.model) + 1;
    if (!s || !(s->model = malloc(n))) {
        free(s);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    memcpy(s->model, g->o.model, n);
    s->m = g->m;
    s->tok = g->tok;
    s->family = lf_family_name(g->m->family);
    g->sess = s;
    return lf_gen_compute_open(s, &g->o);
}

lf_status lf_gen_session_load(lf_gen_session *s, const lf_gen *g) {
    const lf_st_file *st = s->m->st;
    lf_unet_opts uo = lf_gen_unet_opts(g);
    lf_status r = lf_unet_load_mapped(st, &uo, &s->unet); /* s->m keeps st mapped while the models live */
    if (!r) r = lf_gen_load_vae(g, &s->vae); /* --vae: the session's VAE for all its jobs */
    memcpy(s->model_hash, g->model_hash, sizeof s->model_hash); /* from the hash cache (lf_gen_hashes) */
    if (!r) r = lf_clip_load_mapped(st, g->te_p1, NULL, &s->te1);
    if (!r && g->tef == LF_TE_SDXL) r = lf_clip_load_mapped(st, g->te_p2, NULL, &s->te2);
    if (!r && (lf_unet_get_arch(s->unet)->in_channels != 4 || lf_vae_get_arch(s->vae)->latent_channels != 4 ||
               lf_vae_get_arch(s->vae)->factor != 8))
        r = lf_err(LF_ERR_UNSUPPORTED, "%s: only 4-channel latents with an 8x VAE are supported (txt2img)", s->model);
    if (r) lf_gen_session_unload(s);
    return r;
}

/* ---- signatures ------------------------------------------------------------------------------- */
lf_status lf_gen_adapter_ids(lf_gen *g) {
    const lf_step_plan *sp = g->sp;
    size_t na = sp->plan->n_adapters;
    free(g->aid);
    if ((g->aid = calloc(na + 1, sizeof *g->aid)) == NULL) return lf_err(LF_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < sp->n_adapters; i++) {
        const lf_step_adapter *a = &sp->adapters[i];
        if (a->dropped) continue;
        struct stat sb;
        memset(&sb, 0, sizeof sb);
        if (stat(a->path, &sb) != 0) return lf_err(LF_ERR_IO, "%s: cannot stat", a->path);
        long long id[8] = {(long long)sb.st_dev, (long long)sb.st_ino, (long long)sb.st_size,
                           (long long)sb.st_mtim.tv_sec, (long long)sb.st_mtim.tv_nsec, (long long)sb.st_ctim.tv_sec,
                           (long long)sb.st_ctim.tv_nsec, 0};
        for (size_t k = 0; k < a->n_plan && a->plan_index + k < na; k++) {
            id[7] = (long long)k;
            lf_sha256 h;
            lf_sha256_init(&h);
            lf_sha256_update(&h, a->path, strlen(a->path) + 1);
            lf_sha256_update(&h, id, sizeof id);
            lf_sha256_final(&h, g->aid[a->plan_index + k]);
        }
    }
    return LF_OK;
}

/* The signature of job j's bytes at step t (lf_sig_w0 when every coefficient is zero). */
static void lf_gen_job_sig(const lf_gen *g, int t, size_t j, lf_patch *scratch, unsigned char sig[LF_GEN_SIG]) {
    lf_job job;
    lf_step_job(g->sp, t, j, scratch, &job);
    lf_sha256 h;
    lf_sha256_init(&h);
    int any = 0;
    for (size_t i = 0; i < job.n_patches; i++) {
        const lf_patch *p = &job.patches[i];
        if (p->coef == 0.0f) continue;
        any = 1;
        lf_gen_patch_hash(&h, g->aid[p->adapter], p, p->coef);
    }
    if (!any) {
        memcpy(sig, lf_sig_w0, LF_GEN_SIG);
        return;
    }
    lf_sha256_final(&h, sig);
    if (!memcmp(sig, lf_sig_w0, LF_GEN_SIG)) sig[0] = 1; /* never the W0 signature */
}

/* ---- switching -------------------------------------------------------------------------------- */
lf_status lf_gen_session_switch(lf_gen_session *s, const lf_step_plan *sp, size_t *restored) {
    size_t nj = sp ? sp->plan->n_jobs : 0;
    *restored = 0;
    if (!nj) lf_gen_dev_drop(s); /* no adapters (or a mixed batch's own): the device's kept model goes */
    lf_gen_held *nh = calloc(nj + 1, sizeof *nh);
    if (!nh) return lf_err(LF_ERR_NOMEM, "out of memory");
    /* the plan's tensors keep what they hold (W0 when not listed) */
    for (size_t j = 0; j < nj; j++) {
        nh[j].t = sp->plan->jobs[j].target;
        nh[j].comp = sp->job_comp[j];
        memcpy(nh[j].sig, lf_sig_w0, LF_GEN_SIG);
        for (size_t i = 0; i < s->n_held; i++)
            if (s->held[i].t == nh[j].t) {
                memcpy(nh[j].sig, s->held[i].sig, LF_GEN_SIG);
                s->held[i].t = NULL; /* taken over */
                break;
            }
    }
    /* the others go back to W0; one that fails stays listed as unknown */
    lf_live live = {s->unet, s->te1, s->te2, 0};
    lf_status st = LF_OK;
    size_t keep = 0;
    for (size_t i = 0; i < s->n_held; i++) {
        const lf_st_tensor *t = s->held[i].t;
        if (!t || !memcmp(s->held[i].sig, lf_sig_w0, LF_GEN_SIG)) continue;
        lf_view v;
        memset(&v, 0, sizeof v);
        v.data = t->data;
        v.dtype = t->dtype;
        v.ndim = t->ndim;
        memcpy(v.shape, t->shape, sizeof v.shape);
        if (st == LF_OK && (st = lf_live_restore(&live, s->held[i].comp, t->name, &v)) == LF_OK) (*restored)++;
        if (st != LF_OK) {
            memset(s->held[i].sig, 0xff, LF_GEN_SIG);
            s->held[keep++] = s->held[i];
        }
    }
    if (st != LF_OK) { /* keep the unknown ones and the plan's: a later switch restores them */
        lf_gen_held *all = realloc(nh, (nj + keep + 1) * sizeof *all);
        if (!all) {
            free(nh);
            return st;
        }
        memcpy(all + nj, s->held, keep * sizeof *all);
        nh = all;
        nj += keep;
    }
    free(s->held);
    s->held = nh;
    s->n_held = nj;
    return st;
}

lf_status lf_gen_session_apply_changed(lf_gen *g, lf_cpu_backend *be, int t, size_t *refreshed) {
    lf_gen_session *s = g->sess;
    const lf_step_plan *sp = g->sp;
    size_t nj = sp->plan->n_jobs, maxp = 1;
    *refreshed = 0;
    for (size_t j = 0; j < nj; j++)
        if (sp->plan->jobs[j].n_patches > maxp) maxp = sp->plan->jobs[j].n_patches;
    lf_patch *scratch = malloc(maxp * sizeof *scratch);
    size_t *list = malloc((nj + 1) * sizeof *list);
    unsigned char(*want)[LF_GEN_SIG] = malloc((nj + 1) * sizeof *want);
    lf_status st = LF_OK;
    if (!scratch || !list || !want) st = lf_err(LF_ERR_NOMEM, "out of memory");
    size_t n = 0;
    for (size_t j = 0; j < nj && !st; j++) { /* after lf_gen_session_switch: held[j] is plan job j */
        if (g->host_held && !g->host_held[j]) continue; /* patched on the device: W0 on the host */
        lf_gen_job_sig(g, t, j, scratch, want[j]);
        if (memcmp(want[j], s->held[j].sig, LF_GEN_SIG)) list[n++] = j;
    }
    for (size_t i = 0; i < n && !st; i++) memset(s->held[list[i]].sig, 0xff, LF_GEN_SIG);
    if (!st) st = lf_cpu_backend_step_jobs(be, t, list, n);
    lf_live live = {s->unet, s->te1, s->te2, 0};
    if (!st) st = lf_live_apply_jobs(&live, sp, be, list, n, NULL);
    for (size_t i = 0; i < n && !st; i++) memcpy(s->held[list[i]].sig, want[list[i]], LF_GEN_SIG);
    if (!st) *refreshed = n;
    free(scratch);
    free(list);
    free(want);
    return st;
}

lf_status lf_gen_session_mark_step(lf_gen *g, int t, int done) {
    lf_gen_session *s = g->sess;
    const lf_step *step = &g->sp->steps[t - 1];
    size_t maxp = 1;
    for (size_t i = 0; i < step->n_jobs; i++) {
        size_t j = step->jobs[i];
        if (g->host_held && !g->host_held[j]) continue; /* patched on the device: W0 on the host */
        if (!done) memset(s->held[j].sig, 0xff, LF_GEN_SIG);
        else if (g->sp->plan->jobs[j].n_patches > maxp) maxp = g->sp->plan->jobs[j].n_patches;
    }
    if (!done || !step->n_jobs) return LF_OK;
    lf_patch *scratch = malloc(maxp * sizeof *scratch);
    if (!scratch) return lf_err(LF_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < step->n_jobs; i++)
        if (!g->host_held || g->host_held[step->jobs[i]])
            lf_gen_job_sig(g, t, step->jobs[i], scratch, s->held[step->jobs[i]].sig);
    free(scratch);
    return LF_OK;
}

/* ---- text-encoder memo ------------------------------------------------------------------------ */
/* The memo key of what the encoders would see for cond set `set` now (its prompt and negative texts
 * after prompt editing, the embeddings they use); 0 when some text-encoder tensor is unknown. */
static int lf_gen_te_key(const lf_gen *g, size_t set, unsigned char key[LF_GEN_SIG]) {
    static const unsigned char unknown[LF_GEN_SIG] = {
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    const lf_gen_session *s = g->sess;
    lf_sha256 h;
    lf_sha256_init(&h);
    int v[2] = {g->o.clip_skip, (int)g->tef};
    const lf_step_plan *sp = g->sp;
    const char *prompt = g->prompt, *negative = g->o.negative;
    if (set < sp->n_cond_sets) {
        prompt = sp->prompts[0].texts[sp->cond_sets[set].text[0]];
        negative = sp->prompts[1].texts[sp->cond_sets[set].text[1]];
    }
    const char *ti = g->ti_hashes ? g->ti_hashes : ""; /* names and content hashes of the embeddings used */
    lf_sha256_update(&h, prompt, strlen(prompt) + 1);
    lf_sha256_update(&h, negative, strlen(negative) + 1);
    lf_sha256_update(&h, ti, strlen(ti) + 1);
    lf_sha256_update(&h, v, sizeof v);
    for (size_t i = 0; i < s->n_held; i++) { /* file order of the plan's tensors: the same for every plan */
        const lf_gen_held *e = &s->held[i];
        if (e->comp == LF_COMP_UNET || !memcmp(e->sig, lf_sig_w0, LF_GEN_SIG)) continue;
        if (!memcmp(e->sig, unknown, LF_GEN_SIG)) return 0;
        lf_sha256_update(&h, e->t->name, strlen(e->t->name) + 1);
        lf_sha256_update(&h, e->sig, LF_GEN_SIG);
    }
    lf_sha256_final(&h, key);
    return 1;
}

lf_status lf_gen_cond_copy(const lf_text_cond *a, lf_text_cond *b) {
    memset(b, 0, sizeof *b);
    size_t n = (size_t)(a->tokens * a->width);
    b->tokens = a->tokens;
    b->width = a->width;
    b->pooled_dim = a->pooled_dim;
    b->context = malloc((n ? n : 1) * sizeof *b->context);
    b->pooled = a->pooled ? malloc((size_t)a->pooled_dim * sizeof *b->pooled) : NULL;
    if (!b->context || (a->pooled && !b->pooled)) {
        lf_text_cond_free(b);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    memcpy(b->context, a->context, n * sizeof *b->context);
    if (a->pooled) memcpy(b->pooled, a->pooled, (size_t)a->pooled_dim * sizeof *b->pooled);
    return LF_OK;
}

lf_status lf_gen_session_cond(lf_gen *g, size_t set) {
    lf_gen_session *s = g->sess;
    unsigned char key[LF_GEN_SIG];
    int keyed = !g->own_sess && set < g->n_cache && !g->cache[set].have && lf_gen_te_key(g, set, key);
    if (keyed)
        for (size_t i = 0; i < LF_GEN_TE_MEMO; i++) {
            lf_gen_te_memo *m = &s->memo[i];
            if (!m->last_use || memcmp(m->key, key, LF_GEN_SIG)) continue;
            lf_gen_cond *c = &g->cache[set];
            lf_status st = lf_gen_cond_copy(&m->cond, &c->cond);
            if (!st) st = lf_gen_cond_copy(&m->uncond, &c->uncond);
            if (st) {
                lf_text_cond_free(&c->cond);
                return st;
            }
            c->have = 1;
            m->last_use = ++s->memo_tick;
            keyed = 0; /* nothing new to keep */
            break;
        }
    lf_status st = lf_gen_cond_select(g, set);
    if (st || !keyed) return st;
    size_t slot = 0; /* an empty slot, else the least recently used */
    for (size_t i = 0; i < LF_GEN_TE_MEMO; i++)
        if (s->memo[i].last_use < s->memo[slot].last_use) slot = i;
    lf_gen_te_memo *m = &s->memo[slot];
    lf_gen_memo_clear(m);
    if (lf_gen_cond_copy(&g->cache[set].cond, &m->cond) || lf_gen_cond_copy(&g->cache[set].uncond, &m->uncond)) {
        lf_gen_memo_clear(m); /* a memo that could not be kept is no error */
        lf_err_clear();
        return LF_OK;
    }
    memcpy(m->key, key, LF_GEN_SIG);
    m->last_use = ++s->memo_tick;
    return LF_OK;
}
