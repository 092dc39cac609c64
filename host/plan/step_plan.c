/* step_plan.c: the per-step strength plan of a prompt (lf_step_plan.h).
 *
 * Rules implemented (docs/prompt-tags.md, docs/semantics.md P5, P7, P9, P10):
 *   - Nothing is loaded before every tag has been checked against the model family and the number of
 *     steps (lf_strength_resolve) and every name resolved; nothing is applied before lf_plan_build has
 *     checked every adapter (P9).
 *   - A tag that is zero for every component and block at every step drops its adapter (not loaded).
 *   - The same NAME twice is two adapters whose contributions add up (P5); they share one loaded file.
 *     Identical tags (lf_tag_same, same file) are one entry counted `count` times: one adapter of the
 *     plan at count times the coefficient, since count * C(W0, s) = C(W0, count * s) for every
 *     contribution linear in s; an adapter with a contribution that is not (OFT with rescale, BOFT
 *     with several factors) keeps one plan adapter per copy. So memory and time do not grow with
 *     repeated tags, and the limits of docs/limits.md bound the rest: distinct adapters
 *     (LF_PROMPT_MAX_ADAPTERS, checked before any name is resolved), steps (LF_STEPS_MAX) and the
 *     coefficient table (LF_STEP_PLAN_MAX_COEFS, checked before it is allocated).
 *   - dyn applies to plain LoRA modules (the patch's copy of the module, so two tags of one file may
 *     use different dyn); a dyn on an adapter with no plain LoRA module is an error.
 *   - Coefficient of a patch at step t = lf_strength_at(tag, component of the layer (keymap), block
 *     of the checkpoint key, t). Step t lists the jobs whose coefficients differ from step t-1 (step 0
 *     = all zero); the text encoders encode once per distinct text-encoder coefficient set (found by
 *     hashing, linear in the steps). dyn above a module's rank is a warning (the module uses its full
 *     rank, as A1111's slicing does).
 *   - "Dialects": the first lorafuse-dialect tag that loractl would read differently (another te or
 *     UNet strength at some step, lf_prompt_parse_dialect + lf_strength_resolve of its text) gives one
 *     warning per plan; tags loractl cannot read (lorafuse-only keys) are not compared.
 *   - Prompt editing: the cond set of a step is its (text-encoder set, prompt text, negative text),
 *     numbered in order of first use (hashed, linear in the steps).
 * Data shapes: see lf_step_plan.h (coef rows of n_coef floats, patch_base per job).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/base/util.h"
#include "lorafuse/lf_lora_dir.h"
#include "lorafuse/lf_step_plan.h"
#include "host/base/text.h"

void lf_step_plan_free(lf_step_plan *sp) {
    if (!sp) return;
    for (size_t i = 0; i < sp->n_adapters; i++) {
        free(sp->adapters[i].path);
        lf_strength_free(&sp->adapters[i].str);
    }
    free(sp->adapters);
    for (size_t i = 0; i < sp->n_files; i++) {
        if (sp->source.release) sp->source.release(sp->source.ctx, sp->files[i]);
        else lf_adapter_free(sp->files[i]);
    }
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
    lf_prompt_sched_free(&sp->prompts[0]);
    lf_prompt_sched_free(&sp->prompts[1]);
    free(sp->cond_sets);
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
    if (lf_has_prefix(key, "model.diffusion_model.")) return LF_COMP_UNET;
    if (lf_has_prefix(key, "cond_stage_model.") || lf_has_prefix(key, "conditioner.embedders.0.")) return LF_COMP_TE1;
    if (lf_has_prefix(key, "conditioner.embedders.1.")) return LF_COMP_TE2;
    return LF_COMP_OTHER;
}

/* The last error (about the tag's name or file) prefixed with the tag. Escaped as a whole: it quotes
 * the name, file and directory names, and escaping is idempotent, so text escaped already is kept. */
static lf_status lf_step_tag_err(const lf_tag *t) {
    lf_err_escape(LF_OK);
    return lf_tag_err(t, t->col, "%s", lf_last_error());
}

/* ---- identical tags ------------------------------------------------------------------------------ */

/* first[i] = the first tag identical to tag i (lf_tag_same; with paths, of the same file too), so that
 * identical tags become one adapter. Comparing against the distinct tags found so far is bounded by
 * the limit on them, which is checked here, before any name is resolved or any file opened. */
static lf_status lf_step_group(const lf_prompt *pr, const char *const *paths, size_t *first, size_t *n_distinct) {
    size_t rep[LF_PROMPT_MAX_ADAPTERS], nr = 0;
    for (size_t i = 0; i < pr->n_tags; i++) {
        const lf_tag *t = &pr->tags[i];
        size_t k = 0;
        while (k < nr && !(lf_tag_same(&pr->tags[rep[k]], t) &&
                           (!paths || paths[rep[k]] == paths[i] ||
                            (paths[rep[k]] && paths[i] && !strcmp(paths[rep[k]], paths[i])))))
            k++;
        if (k == nr) {
            if (nr == LF_PROMPT_MAX_ADAPTERS)
                return lf_tag_err(t, t->col, "more than %d different adapters in one prompt (identical tags count "
                                  "once; docs/limits.md)", LF_PROMPT_MAX_ADAPTERS);
            rep[nr++] = i;
        }
        first[i] = rep[k];
    }
    if (n_distinct) *n_distinct = nr;
    return LF_OK;
}

/* 1 when every module's contribution is linear in the strength, C(W0, k*s) = k*C(W0, s) (P2-P4), so
 * that k identical tags are one adapter at k times the coefficient: all but OFT with a rescale (the
 * rescale is interpolated too, s^2) and BOFT with several factors or a rescale (one interpolated
 * rotation per factor). */
static int lf_adapter_linear(const lf_adapter *f) {
    for (size_t i = 0; i < f->n_mods; i++) {
        const lf_module *m = &f->mods[i];
        int rescale = (m->present & (1u << LF_R_RESCALE)) != 0;
        if (m->algo == LF_ALGO_OFT && rescale) return 0;
        if (m->algo == LF_ALGO_BOFT && (rescale || m->t[LF_R_OFT_BLOCKS].shape[0] > 1)) return 0;
    }
    return 1;
}

/* ---- loading ------------------------------------------------------------------------------------- */

/* dyn on the patches of entry a (plan adapters [first, first + n)); one warning when dyn exceeds the
 * rank of some LoRA modules, which then use their full rank (A1111's slicing does the same silently). */
static lf_status lf_step_dyn(lf_step_plan *sp, lf_step_adapter *a) {
    size_t lora = 0, over = 0;
    int max_rank = 0;
    for (size_t j = 0; j < sp->plan->n_jobs; j++) {
        lf_job *job = &sp->plan->jobs[j];
        for (size_t k = 0; k < job->n_patches; k++) {
            lf_patch *p = &job->patches[k];
            if (p->adapter < a->plan_index || p->adapter >= a->plan_index + a->n_plan) continue;
            a->algos |= 1u << p->mod.algo;
            if (p->mod.algo != LF_ALGO_LORA || !a->tag->dyn) continue;
            p->mod.dyn_rank = a->tag->dyn;
            if (p->adapter != a->plan_index) continue;
            lora++;
            if (p->mod.rank < a->tag->dyn) over++;
            if (p->mod.rank > max_rank) max_rank = p->mod.rank;
        }
    }
    if (!a->tag->dyn) return LF_OK;
    char q[LF_ESC_PART];
    if (!lora) return lf_tag_err(a->tag, a->tag->col, "dyn applies to plain LoRA modules; %s has none",
                                 lf_esc(q, sizeof q, a->path, strlen(a->path)));
    if (over) {
        char t[LF_ESC_TAG];
        lf_msgs_add(&sp->warnings, "prompt col %d: %s: dyn=%d is more than the rank of %zu of its %zu LoRA modules "
                    "(largest rank %d): they use their full rank", a->tag->col,
                    lf_esc(t, sizeof t, a->tag->text, strlen(a->tag->text)), a->tag->dyn, over, lora, max_rank);
    }
    return LF_OK;
}

/* Load the non-dropped adapters (one load per distinct path), build the plan, apply dyn. An entry is
 * one adapter of the plan, or `count` of them when its contribution is not linear in the strength. */
static lf_status lf_step_load(lf_step_plan *sp, const lf_step_opts *o) {
    size_t n = sp->n_adapters, np = 0;
    if (o && o->source && o->source->open && o->source->release) sp->source = *o->source;
    lf_adapter **f_of = calloc(n + 1, sizeof *f_of);
    sp->files = calloc(n + 1, sizeof *sp->files);
    lf_status st = LF_OK;
    if (!f_of || !sp->files) st = lf_err(LF_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n && st == LF_OK; i++) {
        lf_step_adapter *a = &sp->adapters[i];
        a->plan_index = SIZE_MAX;
        if (a->dropped) continue;
        lf_adapter *f = NULL;
        for (size_t k = 0; k < sp->n_files && !f; k++)
            if (!strcmp(sp->files[k]->path, a->path)) f = sp->files[k];
        if (!f) {
            st = sp->source.open ? sp->source.open(sp->source.ctx, a->path, &f) : lf_adapter_open(a->path, &f);
            if (st != LF_OK) {
                st = lf_step_tag_err(a->tag);
                break;
            }
            sp->files[sp->n_files++] = f;
        }
        f_of[i] = f;
        a->plan_index = np;
        a->n_plan = a->count > 1 && !lf_adapter_linear(f) ? a->count : 1;
        np += a->n_plan;
        if (np > LF_PROMPT_MAX_ADAPTERS) {
            char q[LF_ESC_PART];
            st = lf_tag_err(a->tag, a->tag->col, "more than %d adapters in one prompt: this tag is written %zu times "
                            "and %s has OFT/BOFT modules whose contribution is not linear in the strength, so each "
                            "copy is an adapter of its own (docs/limits.md)", LF_PROMPT_MAX_ADAPTERS, a->count,
                            lf_esc(q, sizeof q, a->path, strlen(a->path)));
        }
    }
    lf_adapter **list = st == LF_OK ? calloc(np + 1, sizeof *list) : NULL;
    float *ones = st == LF_OK ? calloc(np + 1, sizeof *ones) : NULL;
    if (st == LF_OK && (!list || !ones)) st = lf_err(LF_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n && st == LF_OK; i++)
        for (size_t k = 0; k < sp->adapters[i].n_plan && !sp->adapters[i].dropped; k++) {
            list[sp->adapters[i].plan_index + k] = f_of[i];
            ones[sp->adapters[i].plan_index + k] = 1.0f;
        }
    if (st == LF_OK) st = lf_plan_build(sp->model, list, ones, np, o ? &o->plan : NULL, &sp->plan);
    for (size_t i = 0; i < n && st == LF_OK; i++) {
        lf_step_adapter *a = &sp->adapters[i];
        if (a->plan_index == SIZE_MAX) continue;
        a->modules = sp->plan->matched[a->plan_index];
        st = lf_step_dyn(sp, a);
    }
    free(f_of);
    free(list);
    free(ones);
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
        for (size_t k = 0; k < sp->adapters[i].n_plan && sp->adapters[i].plan_index != SIZE_MAX; k++)
            p2a[sp->adapters[i].plan_index + k] = i;
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
    if (((size_t)sp->n_steps + 1) * (nc ? nc : 1) > LF_STEP_PLAN_MAX_COEFS) {
        free(p2a);
        return lf_err(LF_ERR_ARG, "the plan of %d steps x %zu patches needs %zu coefficients, more than the limit of %d "
                      "(docs/limits.md): use fewer steps or adapters", sp->n_steps, nc,
                      ((size_t)sp->n_steps + 1) * nc, LF_STEP_PLAN_MAX_COEFS);
    }
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
                const lf_step_adapter *a = &sp->adapters[p2a[job->patches[k].adapter]];
                float v = lf_strength_at(&a->str, sp->job_comp[j], sp->job_block[j], t);
                /* identical tags of a linear adapter: one adapter at count times the strength */
                if (a->n_plan == 1 && a->count > 1) v = (float)((double)a->count * (double)v);
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

/* FNV-1a over the bits of the text-encoder coefficients of one step. */
static uint64_t lf_te_hash(const float *row, const size_t *te_idx, size_t n_te) {
    uint64_t h = 1469598103934665603ull;
    for (size_t k = 0; k < n_te; k++) {
        uint32_t b;
        memcpy(&b, &row[te_idx[k]], sizeof b);
        h = (h ^ b) * 1099511628211ull;
    }
    return h;
}

/* Per step: the jobs whose coefficients change, and which text-encoder set it uses. The sets are
 * found through a hash table of the sets seen so far (open addressing, twice the steps in size), so
 * that a schedule with a new set at every step stays linear in the steps. */
static lf_status lf_step_diff(lf_step_plan *sp) {
    const lf_plan *pl = sp->plan;
    size_t nj = pl->n_jobs, nc = sp->n_coef, hcap = 2 * (size_t)sp->n_steps + 2;
    sp->steps = calloc((size_t)sp->n_steps, sizeof *sp->steps);
    int *set_rep = calloc((size_t)sp->n_steps + 1, sizeof *set_rep); /* a step that uses each set */
    size_t *te_idx = calloc(nc + 1, sizeof *te_idx), n_te = 0;
    size_t *slot = malloc(hcap * sizeof *slot); /* set index + 1, 0 = empty */
    size_t *scratch = malloc((nj ? nj : 1) * sizeof *scratch);
    if (!sp->steps || !set_rep || !te_idx || !slot || !scratch) {
        free(set_rep);
        free(te_idx);
        free(slot);
        free(scratch);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    memset(slot, 0, hcap * sizeof *slot);
    for (size_t j = 0; j < nj; j++)
        if (lf_is_te(sp->job_comp[j]))
            for (size_t k = 0; k < pl->jobs[j].n_patches; k++) te_idx[n_te++] = sp->patch_base[j] + k;
    lf_status st = LF_OK;
    for (int t = 1; t <= sp->n_steps && st == LF_OK; t++) {
        lf_step *s = &sp->steps[t - 1];
        const float *cur = sp->coef + (size_t)t * nc, *prev = cur - nc;
        for (size_t j = 0; j < nj; j++) {
            size_t b = sp->patch_base[j], np = pl->jobs[j].n_patches;
            int changed = 0;
            for (size_t k = 0; k < np && !changed; k++) changed = cur[b + k] != prev[b + k];
            if (!changed) continue;
            scratch[s->n_jobs++] = j;
            s->bytes += pl->jobs[j].target->end - pl->jobs[j].target->begin;
        }
        if (s->n_jobs) { /* most steps of a long run change nothing: no list at all */
            if ((s->jobs = malloc(s->n_jobs * sizeof *s->jobs)) == NULL) {
                st = lf_err(LF_ERR_NOMEM, "out of memory");
                break;
            }
            memcpy(s->jobs, scratch, s->n_jobs * sizeof *s->jobs);
        }
        for (size_t k = 0; k < n_te && !s->te_changed; k++) s->te_changed = cur[te_idx[k]] != prev[te_idx[k]];
        /* which text-encoder set: equal bits (coefficients are normalised, -0 is +0) */
        size_t h = (size_t)(lf_te_hash(cur, te_idx, n_te) % hcap), set = sp->n_te_sets;
        for (; slot[h]; h = (h + 1) % hcap) {
            const float *rep = sp->coef + (size_t)set_rep[slot[h] - 1] * nc;
            int same = 1;
            for (size_t k = 0; k < n_te && same; k++) same = rep[te_idx[k]] == cur[te_idx[k]];
            if (same) {
                set = slot[h] - 1;
                break;
            }
        }
        if (set == sp->n_te_sets) {
            set_rep[sp->n_te_sets++] = t;
            slot[h] = sp->n_te_sets;
            s->te_encode = 1;
        }
        s->te_set = set;
    }
    free(set_rep);
    free(te_idx);
    free(slot);
    free(scratch);
    return st;
}

lf_status lf_step_plan_set_prompts(lf_step_plan *sp, const char *prompt, const char *negative) {
    size_t n = (size_t)sp->n_steps, hcap = 2 * n + 1;
    lf_prompt_sched ps[2];
    memset(ps, 0, sizeof ps);
    lf_status st = lf_prompt_sched_build(prompt, sp->n_steps, &ps[0]);
    if (st == LF_OK) st = lf_prompt_sched_build(negative ? negative : "", sp->n_steps, &ps[1]);
    lf_cond_set *sets = malloc(n * sizeof *sets);
    size_t *slot = calloc(hcap, sizeof *slot), n_sets = 0;
    if (st == LF_OK && (!sets || !slot)) st = lf_err(LF_ERR_NOMEM, "out of memory");
    for (size_t t = 0; t < n && st == LF_OK; t++) {
        lf_cond_set c = {sp->steps[t].te_set, {ps[0].at[t], ps[1].at[t]}};
        size_t h = (size_t)((c.te_set * 1000003u + c.text[0]) * 1000003u + c.text[1]) % hcap;
        while (slot[h] && (sets[slot[h] - 1].te_set != c.te_set || sets[slot[h] - 1].text[0] != c.text[0] ||
                           sets[slot[h] - 1].text[1] != c.text[1]))
            h = (h + 1) % hcap;
        sp->steps[t].cond_encode = !slot[h];
        if (!slot[h]) {
            sets[n_sets++] = c;
            slot[h] = n_sets;
        }
        sp->steps[t].cond_set = slot[h] - 1;
    }
    free(slot);
    if (st != LF_OK) {
        free(sets);
        lf_prompt_sched_free(&ps[0]);
        lf_prompt_sched_free(&ps[1]);
        return st;
    }
    lf_prompt_sched_free(&sp->prompts[0]);
    lf_prompt_sched_free(&sp->prompts[1]);
    free(sp->cond_sets);
    sp->prompts[0] = ps[0];
    sp->prompts[1] = ps[1];
    sp->cond_sets = sets;
    sp->n_cond_sets = n_sets;
    return LF_OK;
}

/* The first step where the loractl reading of a lorafuse-dialect tag differs: a warning (once per plan). */
static void lf_step_dialect_note(lf_step_plan *sp, const lf_step_adapter *a, int *noted) {
    const lf_tag *t = a->tag;
    if (*noted || t->dialect != LF_DIALECT_LORAFUSE) return;
    lf_prompt *p = NULL;
    lf_strength s;
    if (lf_prompt_parse_dialect(t->text, LF_DIALECT_LORACTL, &p) != LF_OK || p->n_tags != 1 ||
        lf_strength_resolve(&p->tags[0], sp->model->family, NULL, sp->n_steps, &s, NULL) != LF_OK) {
        lf_prompt_free(p);
        return;
    }
    for (int step = 1; step <= sp->n_steps && !*noted; step++) {
        int unet = 0;
        float here = lf_strength_te(&a->str, LF_COMP_TE1, step), there = lf_strength_te(&s, LF_COMP_TE1, step);
        if (here == there) {
            unet = 1;
            here = lf_strength_at(&a->str, LF_COMP_UNET, LF_BLK_M00, step);
            there = lf_strength_at(&s, LF_COMP_UNET, LF_BLK_M00, step);
        }
        if (here == there) continue;
        char q[LF_ESC_TAG];
        lf_msgs_add(&sp->warnings, "prompt col %d: %s: loractl reads this tag differently (%s at step %d of %d: %g here, "
                    "%g in loractl); lorafuse's reading is used, --tag-dialect loractl selects loractl's "
                    "(docs/prompt-tags.md \"Dialects\")", t->col, lf_esc(q, sizeof q, t->text, strlen(t->text)),
                    unet ? "unet" : "te", step, sp->n_steps, (double)here, (double)there);
        *noted = 1;
    }
    lf_strength_free(&s);
    lf_prompt_free(p);
}

lf_status lf_step_plan_build_files(const lf_model *model, const lf_prompt *prompt, const char *const *paths,
                                   int n_steps, const lf_step_opts *opts, lf_step_plan **out) {
    int noted = 0; /* the dialect warning was given */
    *out = NULL;
    if (n_steps < 1 || n_steps > LF_STEPS_MAX)
        return lf_err(LF_ERR_ARG, "the number of steps must be 1 to %d (got %d)", LF_STEPS_MAX, n_steps);
    size_t n = prompt->n_tags, nd = 0;
    size_t *first = calloc(n + 1, sizeof *first);
    if (!first) return lf_err(LF_ERR_NOMEM, "out of memory");
    lf_status st = lf_step_group(prompt, paths, first, &nd);
    if (st != LF_OK) {
        free(first);
        return st;
    }
    lf_lbw_presets *presets = NULL;
    st = lf_lbw_presets_load(opts ? opts->lbw_presets : NULL, &presets);
    if (st != LF_OK) {
        free(first);
        return lf_err_escape(st); /* it names the file */
    }
    lf_step_plan *sp = calloc(1, sizeof *sp);
    size_t *entry = calloc(n + 1, sizeof *entry); /* entry of each distinct tag's first copy */
    if (!sp || !entry || !(sp->adapters = calloc(nd + 1, sizeof *sp->adapters))) {
        free(sp);
        free(entry);
        free(first);
        lf_lbw_presets_free(presets);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    sp->model = model;
    sp->n_steps = n_steps;
    for (size_t i = 0; i < n && st == LF_OK; i++) {
        if (first[i] != i) {
            sp->adapters[entry[first[i]]].count++;
            continue;
        }
        entry[i] = sp->n_adapters;
        lf_step_adapter *a = &sp->adapters[sp->n_adapters++];
        a->tag = &prompt->tags[i];
        a->count = 1;
        a->plan_index = SIZE_MAX;
        st = lf_strength_resolve(a->tag, model->family, presets, n_steps, &a->str, &sp->warnings);
        if (st != LF_OK) break;
        lf_step_dialect_note(sp, a, &noted);
        a->dropped = lf_strength_all_zero(&a->str);
        if (!paths[i]) st = lf_tag_err(a->tag, a->tag->col, "no file for this tag");
        else if ((a->path = strdup(paths[i])) == NULL) st = lf_err(LF_ERR_NOMEM, "out of memory");
    }
    free(entry);
    free(first);
    lf_lbw_presets_free(presets);
    if (st == LF_OK) st = lf_step_load(sp, opts);
    if (st == LF_OK) st = lf_step_coefs_fill(sp);
    if (st == LF_OK) st = lf_step_diff(sp);
    if (st == LF_OK) st = lf_step_plan_set_prompts(sp, prompt->clean, NULL);
    if (st != LF_OK) {
        lf_step_plan_free(sp);
        return st;
    }
    *out = sp;
    return LF_OK;
}

/* Names are resolved once per distinct tag: identical tags share the path of the first. */
lf_status lf_step_plan_build(const lf_model *model, const lf_prompt *prompt, int n_steps, const lf_step_opts *opts,
                             lf_step_plan **out) {
    *out = NULL;
    size_t n = prompt->n_tags;
    size_t *first = calloc(n + 1, sizeof *first);
    char **paths = calloc(n + 1, sizeof *paths);
    lf_status st = !first || !paths ? lf_err(LF_ERR_NOMEM, "out of memory") : lf_step_group(prompt, NULL, first, NULL);
    lf_lora_dir *dir = NULL;
    lf_lora_dir_opts lo = {opts ? opts->lora_dir_confine : 0};
    if (st == LF_OK && (st = lf_lora_dir_scan(opts ? opts->lora_dir : NULL, &lo, &dir)) != LF_OK) st = lf_err_escape(st);
    for (size_t i = 0; i < n && st == LF_OK; i++) {
        const lf_tag *t = &prompt->tags[i];
        if (first[i] != i) {
            paths[i] = paths[first[i]];
            continue;
        }
        st = lf_lora_dir_resolve(dir, t->name, &paths[i]);
        if (st != LF_OK) st = lf_step_tag_err(t);
    }
    lf_lora_dir_free(dir);
    if (st == LF_OK) st = lf_step_plan_build_files(model, prompt, (const char *const *)paths, n_steps, opts, out);
    for (size_t i = 0; paths && first && i < n; i++)
        if (first[i] == i) free(paths[i]);
    free(paths);
    free(first);
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
