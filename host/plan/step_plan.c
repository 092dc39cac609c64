/* step_plan.c: the per-step strength plan of a prompt (lf_step_plan.h).
 *
 * Rules implemented (docs/prompt-tags.md, docs/semantics.md P5, P7, P9, P10):
 *   - Nothing is loaded before every tag has been checked against the model family and the number of
 *     steps (lf_strength_resolve) and every name resolved; nothing is applied before lf_plan_build has
 *     checked every adapter (P9).
 *   - A tag that is zero for every component and block at every step drops its adapter (not loaded).
 *   - The same NAME twice is two adapters whose contributions add up (P5); they share one loaded file.
 *   - dyn applies to plain LoRA modules (the patch's copy of the module, so two tags of one file may
 *     use different dyn); a dyn on an adapter with no plain LoRA module is an error.
 *   - Coefficient of a patch at step t = lf_strength_at(tag, component of the layer (keymap), block
 *     of the checkpoint key, t). Step t lists the jobs whose coefficients differ from step t-1 (step 0
 *     = all zero); the text encoders encode once per distinct text-encoder coefficient set.
 * Data shapes: see lf_step_plan.h (coef rows of n_coef floats, patch_base per job).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lorafuse/lf_lora_dir.h"
#include "lorafuse/lf_step_plan.h"

#define LF_MAX_STEPS 100000

void lf_step_plan_free(lf_step_plan *sp) {
    if (!sp) return;
    for (size_t i = 0; i < sp->n_adapters; i++) free(sp->adapters[i].path);
    free(sp->adapters);
    for (size_t i = 0; i < sp->n_files; i++) lf_adapter_free(sp->files[i]);
    free(sp->files);
    lf_plan_free(sp->plan);
    free(sp->job_comp);
    free(sp->job_block);
    free(sp->patch_base);
    free(sp->coef);
    if (sp->steps)
        for (int t = 0; t < sp->n_steps; t++) free(sp->steps[t].jobs);
    free(sp->steps);
    lf_msgs_free(&sp->warnings);
    free(sp);
}

const float *lf_step_coefs(const lf_step_plan *sp, int t, size_t job) {
    return sp->coef + (size_t)t * sp->n_coef + sp->patch_base[job];
}

void lf_step_job(const lf_step_plan *sp, int t, size_t j, lf_patch *patches, lf_job *job) {
    const lf_job *src = &sp->plan->jobs[j];
    const float *c = lf_step_coefs(sp, t, j);
    for (size_t k = 0; k < src->n_patches; k++) {
        patches[k] = src->patches[k];
        patches[k].coef = c[k];
    }
    job->target = src->target;
    job->patches = patches;
    job->n_patches = src->n_patches;
}

static lf_component lf_comp_of_key(const char *key) {
    if (!strncmp(key, "model.diffusion_model.", 22)) return LF_COMP_UNET;
    if (!strncmp(key, "cond_stage_model.", 17) || !strncmp(key, "conditioner.embedders.0.", 24)) return LF_COMP_TE1;
    if (!strncmp(key, "conditioner.embedders.1.", 24)) return LF_COMP_TE2;
    return LF_COMP_OTHER;
}

/* Load the non-dropped adapters (one load per distinct path), build the plan, apply dyn. */
static lf_status lf_step_load(lf_step_plan *sp, const lf_step_opts *o) {
    size_t n = sp->n_adapters, np = 0;
    lf_adapter **list = calloc(n + 1, sizeof *list);
    float *ones = calloc(n + 1, sizeof *ones);
    size_t *pi2sa = calloc(n + 1, sizeof *pi2sa);
    sp->files = calloc(n + 1, sizeof *sp->files);
    lf_status st = LF_OK;
    if (!list || !ones || !pi2sa || !sp->files) st = lf_err(LF_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n && st == LF_OK; i++) {
        lf_step_adapter *a = &sp->adapters[i];
        a->plan_index = SIZE_MAX;
        if (a->dropped) continue;
        lf_adapter *f = NULL;
        for (size_t k = 0; k < sp->n_files && !f; k++)
            if (!strcmp(sp->files[k]->path, a->path)) f = sp->files[k];
        if (!f) {
            st = lf_adapter_open(a->path, &f);
            if (st != LF_OK) {
                st = lf_tag_err(a->tag, a->tag->col, "%s", lf_last_error());
                break;
            }
            sp->files[sp->n_files++] = f;
        }
        a->plan_index = np;
        pi2sa[np] = i;
        ones[np] = 1.0f;
        list[np++] = f;
    }
    if (st == LF_OK) st = lf_plan_build(sp->model, list, ones, np, o ? &o->plan : NULL, &sp->plan);
    if (st == LF_OK) {
        int *has_lora = calloc(np + 1, sizeof *has_lora);
        if (!has_lora) st = lf_err(LF_ERR_NOMEM, "out of memory");
        for (size_t j = 0; st == LF_OK && j < sp->plan->n_jobs; j++) {
            lf_job *job = &sp->plan->jobs[j];
            for (size_t k = 0; k < job->n_patches; k++) {
                lf_patch *p = &job->patches[k];
                lf_step_adapter *a = &sp->adapters[pi2sa[p->adapter]];
                a->algos |= 1u << p->mod.algo;
                if (p->mod.algo == LF_ALGO_LORA) {
                    has_lora[p->adapter] = 1;
                    if (a->tag->dyn) p->mod.dyn_rank = a->tag->dyn;
                }
            }
        }
        for (size_t i = 0; st == LF_OK && i < n; i++) {
            lf_step_adapter *a = &sp->adapters[i];
            if (a->plan_index == SIZE_MAX) continue;
            a->modules = sp->plan->matched[a->plan_index];
            if (a->tag->dyn && !has_lora[a->plan_index])
                st = lf_tag_err(a->tag, a->tag->col, "dyn applies to plain LoRA modules; %s has none", a->path);
        }
        free(has_lora);
    }
    free(list);
    free(ones);
    free(pi2sa);
    return st;
}

static lf_status lf_step_coefs_fill(lf_step_plan *sp) {
    const lf_plan *pl = sp->plan;
    size_t nj = pl->n_jobs;
    sp->job_comp = calloc(nj + 1, sizeof *sp->job_comp);
    sp->job_block = calloc(nj + 1, sizeof *sp->job_block);
    sp->patch_base = calloc(nj + 1, sizeof *sp->patch_base);
    size_t *p2a = calloc(sp->plan->n_adapters + 1, sizeof *p2a);
    if (!sp->job_comp || !sp->job_block || !sp->patch_base || !p2a) {
        free(p2a);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < sp->n_adapters; i++)
        if (sp->adapters[i].plan_index != SIZE_MAX) p2a[sp->adapters[i].plan_index] = i;
    size_t nc = 0;
    for (size_t j = 0; j < nj; j++) {
        const lf_job *job = &pl->jobs[j];
        lf_target tg;
        lf_component c = lf_comp_of_key(job->target->name);
        if (job->n_patches && lf_keymap_resolve(sp->model->km, job->patches[0].mod.name, &tg) == LF_OK) c = tg.component;
        sp->job_comp[j] = c;
        sp->job_block[j] = c == LF_COMP_UNET ? lf_block_of_key(job->target->name) : LF_BLK_NONE;
        sp->patch_base[j] = nc;
        nc += job->n_patches;
    }
    lf_err_clear();
    sp->n_coef = nc;
    sp->coef = calloc(((size_t)sp->n_steps + 1) * (nc ? nc : 1), sizeof *sp->coef);
    if (!sp->coef) {
        free(p2a);
        return lf_err(LF_ERR_NOMEM, "out of memory for %d steps x %zu coefficients", sp->n_steps, nc);
    }
    for (int t = 1; t <= sp->n_steps; t++) {
        float *row = sp->coef + (size_t)t * nc;
        for (size_t j = 0; j < nj; j++) {
            const lf_job *job = &pl->jobs[j];
            for (size_t k = 0; k < job->n_patches; k++) {
                const lf_strength *s = &sp->adapters[p2a[job->patches[k].adapter]].str;
                float v = lf_strength_at(s, sp->job_comp[j], sp->job_block[j], t);
                row[sp->patch_base[j] + k] = v == 0.0f ? 0.0f : v; /* -0 -> +0: equal coefficients are equal bits */
            }
        }
    }
    free(p2a);
    return LF_OK;
}

static int lf_is_te(lf_component c) {
    return c == LF_COMP_TE1 || c == LF_COMP_TE2;
}

static lf_status lf_step_diff(lf_step_plan *sp) {
    const lf_plan *pl = sp->plan;
    size_t nj = pl->n_jobs, nc = sp->n_coef;
    sp->steps = calloc((size_t)sp->n_steps, sizeof *sp->steps);
    int *set_rep = calloc((size_t)sp->n_steps + 1, sizeof *set_rep); /* a step that uses each set */
    size_t *te_idx = calloc(nc + 1, sizeof *te_idx), n_te = 0;
    if (!sp->steps || !set_rep || !te_idx) {
        free(set_rep);
        free(te_idx);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    for (size_t j = 0; j < nj; j++)
        if (lf_is_te(sp->job_comp[j]))
            for (size_t k = 0; k < pl->jobs[j].n_patches; k++) te_idx[n_te++] = sp->patch_base[j] + k;
    lf_status st = LF_OK;
    for (int t = 1; t <= sp->n_steps && st == LF_OK; t++) {
        lf_step *s = &sp->steps[t - 1];
        const float *cur = sp->coef + (size_t)t * nc, *prev = cur - nc;
        if ((s->jobs = malloc((nj ? nj : 1) * sizeof *s->jobs)) == NULL) {
            st = lf_err(LF_ERR_NOMEM, "out of memory");
            break;
        }
        for (size_t j = 0; j < nj; j++) {
            size_t b = sp->patch_base[j], np = pl->jobs[j].n_patches;
            int changed = 0;
            for (size_t k = 0; k < np && !changed; k++) changed = cur[b + k] != prev[b + k];
            if (!changed) continue;
            s->jobs[s->n_jobs++] = j;
            s->bytes += pl->jobs[j].target->end - pl->jobs[j].target->begin;
        }
        for (size_t k = 0; k < n_te && !s->te_changed; k++) s->te_changed = cur[te_idx[k]] != prev[te_idx[k]];
        /* which text-encoder set: compare with one step of every set seen so far */
        size_t set = sp->n_te_sets;
        for (size_t q = 0; q < sp->n_te_sets && set == sp->n_te_sets; q++) {
            const float *rep = sp->coef + (size_t)set_rep[q] * nc;
            int same = 1;
            for (size_t k = 0; k < n_te && same; k++) same = rep[te_idx[k]] == cur[te_idx[k]];
            if (same) set = q;
        }
        if (set == sp->n_te_sets) {
            set_rep[sp->n_te_sets++] = t;
            s->te_encode = 1;
        }
        s->te_set = set;
    }
    free(set_rep);
    free(te_idx);
    return st;
}

lf_status lf_step_plan_build_files(const lf_model *model, const lf_prompt *prompt, const char *const *paths,
                                   int n_steps, const lf_step_opts *opts, lf_step_plan **out) {
    *out = NULL;
    if (n_steps < 1 || n_steps > LF_MAX_STEPS)
        return lf_err(LF_ERR_ARG, "the number of steps must be 1 to %d (got %d)", LF_MAX_STEPS, n_steps);
    lf_lbw_presets *presets = NULL;
    lf_status st = lf_lbw_presets_load(opts ? opts->lbw_presets : NULL, &presets);
    if (st != LF_OK) return st;
    lf_step_plan *sp = calloc(1, sizeof *sp);
    size_t n = prompt->n_tags;
    if (!sp || !(sp->adapters = calloc(n + 1, sizeof *sp->adapters))) {
        free(sp);
        lf_lbw_presets_free(presets);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    sp->model = model;
    sp->n_steps = n_steps;
    sp->n_adapters = n;
    for (size_t i = 0; i < n && st == LF_OK; i++) {
        lf_step_adapter *a = &sp->adapters[i];
        a->tag = &prompt->tags[i];
        a->plan_index = SIZE_MAX;
        st = lf_strength_resolve(a->tag, model->family, presets, n_steps, &a->str, &sp->warnings);
        if (st != LF_OK) break;
        a->dropped = lf_strength_all_zero(&a->str);
        if (!paths[i]) st = lf_tag_err(a->tag, a->tag->col, "no file for this tag");
        else if ((a->path = strdup(paths[i])) == NULL) st = lf_err(LF_ERR_NOMEM, "out of memory");
    }
    lf_lbw_presets_free(presets);
    if (st == LF_OK) st = lf_step_load(sp, opts);
    if (st == LF_OK) st = lf_step_coefs_fill(sp);
    if (st == LF_OK) st = lf_step_diff(sp);
    if (st != LF_OK) {
        lf_step_plan_free(sp);
        return st;
    }
    *out = sp;
    return LF_OK;
}

lf_status lf_step_plan_build(const lf_model *model, const lf_prompt *prompt, int n_steps, const lf_step_opts *opts,
                             lf_step_plan **out) {
    *out = NULL;
    lf_lora_dir *dir = NULL;
    lf_lora_dir_opts lo = {opts ? opts->lora_dir_confine : 0};
    lf_status st = lf_lora_dir_scan(opts ? opts->lora_dir : NULL, &lo, &dir);
    if (st != LF_OK) return st;
    size_t n = prompt->n_tags;
    char **paths = calloc(n + 1, sizeof *paths);
    if (!paths) st = lf_err(LF_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n && st == LF_OK; i++) {
        const lf_tag *t = &prompt->tags[i];
        st = lf_lora_dir_resolve(dir, t->name, &paths[i]);
        if (st != LF_OK) st = lf_tag_err(t, t->col, "%s", lf_last_error());
    }
    lf_lora_dir_free(dir);
    if (st == LF_OK) st = lf_step_plan_build_files(model, prompt, (const char *const *)paths, n_steps, opts, out);
    for (size_t i = 0; paths && i < n; i++) free(paths[i]);
    free(paths);
    return st;
}

lf_status lf_step_plan_auto_trigger(const lf_step_plan *sp, const char *prompt, char **out) {
    *out = NULL;
    const char **paths = calloc(sp->n_adapters + 1, sizeof *paths);
    if (!paths) return lf_err(LF_ERR_NOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < sp->n_adapters; i++) {
        int dup = 0;
        for (size_t k = 0; k < n; k++) dup |= !strcmp(paths[k], sp->adapters[i].path);
        if (!sp->adapters[i].dropped && !dup) paths[n++] = sp->adapters[i].path;
    }
    lf_status st = lf_lora_append_triggers(prompt, paths, n, out);
    free(paths);
    return st;
}
