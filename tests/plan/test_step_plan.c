/* test_step_plan.c: the per-step plan and the CPU backend on the tiny SD1.5 and SDXL models
 * (lf_step_plan.h; docs/prompt-tags.md, P5, P7, P10), and LoRA-directory name resolution.
 *
 *   - minimality: step t lists exactly the jobs whose coefficients differ from step t-1 (recomputed
 *     here independently of the plan's table); a constant prompt patches everything once, before step 1;
 *     zero-everywhere jobs and dropped tags never appear;
 *   - text encoders: re-encoded only for a text-encoder set not seen before;
 *   - byte-for-byte: after every step the backend's tensors equal a fresh computation at that step's
 *     strengths (lf_job_apply with the step's coefficients, and a real lf_merge for uniform strengths);
 *   - identical tags: one entry counted N times, one plan adapter at N x the coefficient (bit for bit
 *     the weights of one tag at N x the strength when that product is exact, within one f16 unit of the
 *     copies kept apart), one plan adapter per copy for an OFT adapter with a rescale (bit for bit the
 *     copies kept apart);
 *   - names: stem, subfolder path, ss_output_name alias, ambiguous and unknown names, trigger words.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "lf_test.h"
#include "lf_test_data.h"

#include "lorafuse/lf_lora_dir.h"
#include "lorafuse/lf_merge.h"
#include "lorafuse/lf_step_plan.h"

#define SD15 "tests/data/tiny/tiny-sd15.safetensors"
#define SDXL "tests/data/tiny/tiny-sdxl.safetensors"
#define KOHYA "tests/data/tiny/sd15_kohya.lora.safetensors"
#define LYCO "tests/data/tiny/sd15_lycoris.lora.safetensors"
#define PEFT "tests/data/tiny/sd15_peft.lora.safetensors"
#define XL_KOHYA "tests/data/tiny/sdxl_kohya.lora.safetensors"
#define XL_LOCON "tests/data/tiny/sdxl_locon.lora.safetensors"

static lf_model *g_sd15, *g_sdxl;

/* ---- independent expectations ------------------------------------------------------------------ */

static lf_component comp_of(const char *key) {
    if (!strncmp(key, "model.diffusion_model.", 22)) return LF_COMP_UNET;
    if (!strncmp(key, "cond_stage_model.", 17) || !strncmp(key, "conditioner.embedders.0.", 24)) return LF_COMP_TE1;
    if (!strncmp(key, "conditioner.embedders.1.", 24)) return LF_COMP_TE2;
    return LF_COMP_OTHER;
}

/* Expected coefficient of patch k of job j at step t, from the tag (resolved again here), the component
 * by key prefix and the block of the key; an entry of `count` identical tags that is one plan adapter
 * has count times the strength. */
static float expect_coef(const lf_step_plan *sp, const lf_strength *strs, size_t j, size_t k, int t) {
    const lf_job *job = &sp->plan->jobs[j];
    size_t a = 0, pa = job->patches[k].adapter;
    while (a < sp->n_adapters && (sp->adapters[a].plan_index == SIZE_MAX || pa < sp->adapters[a].plan_index ||
                                  pa >= sp->adapters[a].plan_index + sp->adapters[a].n_plan))
        a++;
    if (t == 0 || a == sp->n_adapters) return 0.0f;
    lf_component c = comp_of(job->target->name);
    float v = lf_strength_at(&strs[a], c, c == LF_COMP_UNET ? lf_block_of_key(job->target->name) : LF_BLK_NONE, t);
    if (sp->adapters[a].n_plan == 1) v = (float)((double)sp->adapters[a].count * v);
    return v == 0.0f ? 0.0f : v;
}

static lf_strength *resolve_all(const lf_step_plan *sp, const char *what) {
    lf_strength *strs = calloc(sp->n_adapters + 1, sizeof *strs);
    for (size_t i = 0; i < sp->n_adapters; i++)
        LF_CHECK(lf_strength_resolve(sp->adapters[i].tag, sp->model->family, NULL, sp->n_steps, &strs[i], NULL) == LF_OK,
                 "%s", what);
    return strs;
}

static void free_all(const lf_step_plan *sp, lf_strength *strs) {
    for (size_t i = 0; i < sp->n_adapters; i++) lf_strength_free(&strs[i]);
    free(strs);
}

/* Check the coefficient table and the job lists of every step; returns the per-step job counts. */
static void check_minimal(const char *what, const lf_step_plan *sp) {
    lf_strength *strs = resolve_all(sp, what);
    int bad_coef = 0, bad_list = 0, never_zero = 0;
    for (size_t j = 0; j < sp->plan->n_jobs; j++) {
        int nonzero = 0;
        for (int t = 1; t <= sp->n_steps; t++)
            for (size_t k = 0; k < sp->plan->jobs[j].n_patches; k++) nonzero |= expect_coef(sp, strs, j, k, t) != 0.0f;
        never_zero += !nonzero;
        int listed_ever = 0;
        for (int t = 1; t <= sp->n_steps; t++) {
            const float *c = lf_step_coefs(sp, t, j);
            int changed = 0;
            for (size_t k = 0; k < sp->plan->jobs[j].n_patches; k++) {
                float e = expect_coef(sp, strs, j, k, t);
                if (c[k] != e && bad_coef++ < 5)
                    LF_CHECK(0, "%s: job %s patch %zu step %d: coef %g, want %g", what, sp->plan->jobs[j].target->name, k, t,
                             (double)c[k], (double)e);
                changed |= e != expect_coef(sp, strs, j, k, t - 1);
            }
            const lf_step *s = &sp->steps[t - 1];
            int listed = 0;
            for (size_t i = 0; i < s->n_jobs; i++) listed |= s->jobs[i] == j;
            listed_ever |= listed;
            if (listed != changed && bad_list++ < 5)
                LF_CHECK(0, "%s: job %s step %d: listed %d, changed %d", what, sp->plan->jobs[j].target->name, t, listed,
                         changed);
        }
        if (!nonzero) LF_CHECK(!listed_ever, "%s: job %s is zero at every step but listed", what, sp->plan->jobs[j].target->name);
    }
    LF_CHECK(bad_coef == 0 && bad_list == 0, "%s: %d coefficient and %d list mismatches", what, bad_coef, bad_list);
    /* job lists ascending, bytes add up */
    for (int t = 1; t <= sp->n_steps; t++) {
        const lf_step *s = &sp->steps[t - 1];
        uint64_t b = 0;
        for (size_t i = 0; i < s->n_jobs; i++) {
            b += sp->plan->jobs[s->jobs[i]].target->end - sp->plan->jobs[s->jobs[i]].target->begin;
            if (i) LF_CHECK(s->jobs[i] > s->jobs[i - 1], "%s: step %d list not ascending", what, t);
        }
        LF_CHECK(b == s->bytes, "%s: step %d bytes %llu, want %llu", what, t, (unsigned long long)s->bytes,
                 (unsigned long long)b);
    }
    free_all(sp, strs);
}

/* Apply every step with the CPU backend; after each, every tensor equals a fresh lf_job_apply at that
 * step's coefficients (recomputed independently), byte for byte. */
static void check_bytes(const char *what, const lf_step_plan *sp, int fast) {
    lf_strength *strs = resolve_all(sp, what);
    lf_cpu_backend *b = NULL;
    if (lf_cpu_backend_new(sp, fast, &b) != LF_OK) {
        LF_CHECK(0, "%s: backend: %s", what, lf_last_error());
        free_all(sp, strs);
        return;
    }
    LF_CHECK(lf_cpu_backend_step(b, 2) == LF_ERR_ARG, "%s: steps must run in order", what);
    int bad = 0;
    size_t maxp = 1, maxb = 1;
    for (size_t j = 0; j < sp->plan->n_jobs; j++) {
        if (sp->plan->jobs[j].n_patches > maxp) maxp = sp->plan->jobs[j].n_patches;
        size_t nb = (size_t)(sp->plan->jobs[j].target->end - sp->plan->jobs[j].target->begin);
        if (nb > maxb) maxb = nb;
    }
    lf_patch *patches = calloc(maxp, sizeof *patches);
    unsigned char *fresh = malloc(maxb);
    for (int t = 1; t <= sp->n_steps; t++) {
        if (lf_cpu_backend_step(b, t) != LF_OK) {
            LF_CHECK(0, "%s: step %d: %s", what, t, lf_last_error());
            break;
        }
        for (size_t j = 0; j < sp->plan->n_jobs; j++) {
            const lf_job *src = &sp->plan->jobs[j];
            for (size_t k = 0; k < src->n_patches; k++) {
                patches[k] = src->patches[k];
                patches[k].coef = expect_coef(sp, strs, j, k, t);
            }
            lf_job job = {src->target, patches, src->n_patches};
            size_t nb = 0;
            const void *w = lf_cpu_backend_weight(b, j, &nb);
            LF_CHECK(lf_job_apply(&job, fast, fresh) == LF_OK, "%s: fresh apply", what);
            if (memcmp(w, fresh, nb) && bad++ < 5)
                LF_CHECK(0, "%s: step %d: %s differs from a fresh merge (fast=%d)", what, t, src->target->name, fast);
        }
    }
    LF_CHECK(bad == 0, "%s: %d tensors differ (fast=%d)", what, bad, fast);
    free(patches);
    free(fresh);
    lf_cpu_backend_free(b);
    free_all(sp, strs);
}

static lf_step_plan *build(const char *what, const lf_model *m, const char *text, const char *const *paths, int n,
                           lf_prompt **pr) {
    lf_step_plan *sp = NULL;
    *pr = NULL;
    if (lf_prompt_parse(text, pr) != LF_OK) {
        LF_CHECK(0, "%s: parse: %s", what, lf_last_error());
        return NULL;
    }
    if (lf_step_plan_build_files(m, *pr, paths, n, NULL, &sp) != LF_OK) {
        LF_CHECK(0, "%s: build: %s", what, lf_last_error());
        return NULL;
    }
    return sp;
}

static size_t count_comp(const lf_step_plan *sp, const lf_step *s, lf_component c) {
    size_t n = 0;
    for (size_t i = 0; i < s->n_jobs; i++) n += sp->job_comp[s->jobs[i]] == c;
    return n;
}

static size_t jobs_of_comp(const lf_step_plan *sp, lf_component c) {
    size_t n = 0;
    for (size_t j = 0; j < sp->plan->n_jobs; j++) n += sp->job_comp[j] == c;
    return n;
}

/* ---- SD1.5 ------------------------------------------------------------------------------------------ */

static void test_sd15_schedule(void) {
    const char *paths[2] = {KOHYA, LYCO};
    lf_prompt *pr;
    const char *text = "a cat <lora:k:te=0.1@1,0.6@6:unet=1@1,0.5@4> <lora:l:0.5:in=0@1,1@3:mid=1:out=0.3>";
    lf_step_plan *sp = build("sd15 schedule", g_sd15, text, paths, 8, &pr);
    if (!sp) {
        lf_prompt_free(pr);
        return;
    }
    check_minimal("sd15 schedule", sp);
    LF_CHECK(sp->n_files == 2 && sp->plan->n_adapters == 2, "two files, two adapters");
    LF_CHECK(sp->adapters[0].algos == (1u << LF_ALGO_LORA) && sp->adapters[0].modules == 264, "kohya: lora, 264 modules (%zu)",
             sp->adapters[0].modules);
    LF_CHECK(sp->steps[1].n_jobs == 0, "step 2 rewrites nothing (%zu)", sp->steps[1].n_jobs);
    /* step 3: only lycoris layers of group in (its in=0 -> 1); kohya is unchanged */
    const lf_step *s3 = &sp->steps[2];
    int ok = s3->n_jobs > 0;
    for (size_t i = 0; i < s3->n_jobs && ok; i++) {
        size_t j = s3->jobs[i];
        int has_l = 0;
        for (size_t k = 0; k < sp->plan->jobs[j].n_patches; k++) has_l |= sp->plan->jobs[j].patches[k].adapter == 1;
        ok = has_l && sp->job_comp[j] == LF_COMP_UNET && lf_block_group(sp->job_block[j]) == LF_GROUP_IN;
    }
    LF_CHECK(ok, "step 3 lists only lycoris in-group layers (%zu)", s3->n_jobs);
    /* step 4: kohya UNet only; step 6: kohya TE only */
    LF_CHECK(sp->steps[3].n_jobs > 0 && count_comp(sp, &sp->steps[3], LF_COMP_UNET) == sp->steps[3].n_jobs, "step 4: UNet");
    LF_CHECK(sp->steps[5].n_jobs == jobs_of_comp(sp, LF_COMP_TE1) && count_comp(sp, &sp->steps[5], LF_COMP_TE1) ==
             sp->steps[5].n_jobs, "step 6: every TE layer and nothing else (%zu)", sp->steps[5].n_jobs);
    for (int t = 1; t <= 8; t++) {
        int want = t == 1 || t == 6;
        LF_CHECK(sp->steps[t - 1].te_encode == want && sp->steps[t - 1].te_changed == want, "step %d te_encode %d", t,
                 sp->steps[t - 1].te_encode);
    }
    LF_CHECK(sp->n_te_sets == 2, "two TE sets");
    check_bytes("sd15 schedule", sp, 0);
    check_bytes("sd15 schedule", sp, 1);
    lf_step_plan_free(sp);
    lf_prompt_free(pr);
}

static void test_sd15_constant(void) {
    const char *paths[2] = {KOHYA, PEFT};
    lf_prompt *pr;
    lf_step_plan *sp = build("constant", g_sd15, "<lora:k:0.8> <lora:p:te=0.5:unet=0.25>", paths, 10, &pr);
    if (sp) {
        check_minimal("constant", sp);
        LF_CHECK(sp->plan->n_jobs > 0 && sp->steps[0].n_jobs == sp->plan->n_jobs, "step 1 patches every job (%zu of %zu)",
                 sp->steps[0].n_jobs, sp->plan->n_jobs);
        size_t later = 0;
        for (int t = 2; t <= 10; t++) later += sp->steps[t - 1].n_jobs + (size_t)sp->steps[t - 1].te_encode;
        LF_CHECK(later == 0, "nothing after step 1 (%zu)", later);
        LF_CHECK(sp->n_te_sets == 1 && sp->steps[0].te_encode, "one TE encode");
        check_bytes("constant", sp, 1);
    }
    lf_step_plan_free(sp);
    lf_prompt_free(pr);
}

static void test_sd15_drop_repeat(void) {
    /* a tag zero everywhere is not loaded: its file does not even exist */
    const char *paths[3] = {"/nonexistent/never-loaded.safetensors", KOHYA, KOHYA};
    lf_prompt *pr;
    lf_step_plan *sp = build("drop+repeat", g_sd15, "<lora:gone:te=0:unet=0> <lora:k:0.5> <lora:k:0.25@1,1@3>", paths, 4,
                             &pr);
    if (sp) {
        LF_CHECK(sp->adapters[0].dropped && sp->adapters[0].plan_index == SIZE_MAX, "dropped");
        LF_CHECK(!sp->adapters[1].dropped && !sp->adapters[2].dropped, "kept");
        LF_CHECK(sp->n_files == 1 && sp->plan->n_adapters == 2, "one file loaded once, two adapters (%zu, %zu)", sp->n_files,
                 sp->plan->n_adapters);
        int two = 1;
        for (size_t j = 0; j < sp->plan->n_jobs; j++) two &= sp->plan->jobs[j].n_patches == 2;
        LF_CHECK(two, "every job has the patches of both tags (contributions add up)");
        check_minimal("drop+repeat", sp);
        LF_CHECK(sp->steps[1].n_jobs == 0 && sp->steps[2].n_jobs == sp->plan->n_jobs, "steps 2 and 3");
        check_bytes("drop+repeat", sp, 0);
    }
    lf_step_plan_free(sp);
    lf_prompt_free(pr);
    /* only dropped tags: an empty plan */
    const char *p1[1] = {"/nonexistent/x.safetensors"};
    sp = build("all dropped", g_sd15, "<lora:x:0>", p1, 3, &pr);
    if (sp) {
        LF_CHECK(sp->plan->n_jobs == 0 && sp->n_files == 0 && sp->steps[0].n_jobs == 0 && sp->steps[0].te_encode,
                 "nothing to do, TEs encode once");
        check_bytes("all dropped", sp, 0);
    }
    lf_step_plan_free(sp);
    lf_prompt_free(pr);
}

static void test_sd15_te_sets(void) {
    const char *paths[1] = {KOHYA};
    lf_prompt *pr;
    lf_step_plan *sp = build("te sets", g_sd15, "<lora:k:te=0.5@1,1@3,0.5@5:unet=1>", paths, 6, &pr);
    if (sp) {
        check_minimal("te sets", sp);
        int enc[6] = {1, 0, 1, 0, 0, 0}, chg[6] = {1, 0, 1, 0, 1, 0};
        size_t set[6] = {0, 0, 1, 1, 0, 0};
        for (int t = 0; t < 6; t++)
            LF_CHECK(sp->steps[t].te_encode == enc[t] && sp->steps[t].te_changed == chg[t] && sp->steps[t].te_set == set[t],
                     "step %d: encode %d changed %d set %zu", t + 1, sp->steps[t].te_encode, sp->steps[t].te_changed,
                     sp->steps[t].te_set);
        LF_CHECK(sp->n_te_sets == 2, "each distinct TE set encoded once");
        LF_CHECK(sp->steps[2].n_jobs == jobs_of_comp(sp, LF_COMP_TE1) && sp->steps[4].n_jobs == jobs_of_comp(sp, LF_COMP_TE1),
                 "steps 3 and 5 rewrite the TE layers only");
        check_bytes("te sets", sp, 0);
    }
    lf_step_plan_free(sp);
    lf_prompt_free(pr);
    /* an adapter without TE modules: a te schedule changes nothing */
    const char *p2[1] = {LYCO};
    sp = build("te on unet-only", g_sd15, "<lora:l:te=0.5@1,1@3:unet=1>", p2, 4, &pr);
    if (sp) {
        LF_CHECK(sp->n_te_sets == 1 && sp->steps[2].n_jobs == 0 && !sp->steps[2].te_changed && !sp->steps[0].te_changed,
                 "no TE layers: no re-encode, nothing rewritten");
    }
    lf_step_plan_free(sp);
    lf_prompt_free(pr);
}

/* a real lf_merge at each step's (uniform) strength equals the backend's tensors; dyn included */
static void test_sd15_vs_merge(void) {
    struct { const char *text; int n; float s[4]; int dyn; } c[] = {
        {"<lora:k:te=0.3@1,0.9@3,0@4>", 4, {0.3f, 0.3f, 0.9f, 0}, 0},
        {"<lora:k:0.5@0,1.5@50%:ramp=linear:dyn=2>", 3, {0.5f, 1.5f, 1.5f, 0}, 2},
    };
    char dir[256], out[512];
    if (lf_test_tmpdir(dir, sizeof dir, "steps")) {
        LF_CHECK(0, "mkdtemp");
        return;
    }
    snprintf(out, sizeof out, "%s/merged.safetensors", dir);
    for (size_t ci = 0; ci < 2; ci++) {
        const char *paths[1] = {KOHYA};
        lf_prompt *pr;
        lf_step_plan *sp = build("vs merge", g_sd15, c[ci].text, paths, c[ci].n, &pr);
        lf_cpu_backend *b = NULL;
        if (!sp || lf_cpu_backend_new(sp, 0, &b) != LF_OK) {
            LF_CHECK(0, "vs merge setup: %s", lf_last_error());
            lf_step_plan_free(sp);
            lf_prompt_free(pr);
            continue;
        }
        for (int t = 1; t <= c[ci].n; t++) {
            LF_CHECK(lf_cpu_backend_step(b, t) == LF_OK, "step %d", t);
            lf_merge_input in = {KOHYA, c[ci].s[t - 1], c[ci].dyn};
            lf_merge_opts mo;
            memset(&mo, 0, sizeof mo);
            mo.reference = 1;
            mo.threads = 2;
            mo.overwrite = 1; /* one output file, merged again at every step */
            lf_merge_stats ms;
            unlink(out); /* a merge never replaces an existing output silently */
            if (lf_merge(SD15, &in, 1, out, &mo, &ms) != LF_OK) {
                LF_CHECK(0, "merge: %s", lf_last_error());
                break;
            }
            lf_st_file *f = NULL;
            if (lf_st_open(out, &f) != LF_OK) {
                LF_CHECK(0, "open merged: %s", lf_last_error());
                break;
            }
            int bad = 0;
            size_t seen = 0;
            for (size_t i = 0; i < lf_st_count(f); i++) {
                const lf_st_tensor *mt = lf_st_at(f, i);
                const lf_st_tensor *base = lf_st_find(g_sd15->st, mt->name);
                const void *want = NULL;
                size_t nb = (size_t)(mt->end - mt->begin);
                for (size_t j = 0; j < sp->plan->n_jobs && !want; j++)
                    if (sp->plan->jobs[j].target == base) want = lf_cpu_backend_weight(b, j, NULL), seen++;
                if (!want) want = base ? base->data : NULL;
                if ((!want || memcmp(want, mt->data, nb)) && bad++ < 3)
                    LF_CHECK(0, "%s step %d: %s differs from lf_merge at %g", c[ci].text, t, mt->name,
                             (double)c[ci].s[t - 1]);
            }
            LF_CHECK(bad == 0 && seen == sp->plan->n_jobs, "%s step %d: %d tensors differ from lf_merge (%zu jobs seen)",
                     c[ci].text, t, bad, seen);
            lf_st_close(f);
        }
        lf_cpu_backend_free(b);
        lf_step_plan_free(sp);
        lf_prompt_free(pr);
    }
    lf_test_rmtree(dir);
}

/* ---- SDXL ------------------------------------------------------------------------------------------- */

static void test_sdxl(void) {
    const char *paths[1] = {XL_KOHYA};
    lf_prompt *pr;
    lf_step_plan *sp = build("sdxl te2", g_sdxl, "<lora:x:te1=0.5:te2=1@1,0@3:unet=0.7>", paths, 4, &pr);
    if (sp) {
        check_minimal("sdxl te2", sp);
        LF_CHECK(jobs_of_comp(sp, LF_COMP_TE2) > 0 && sp->steps[2].n_jobs == jobs_of_comp(sp, LF_COMP_TE2) &&
                 count_comp(sp, &sp->steps[2], LF_COMP_TE2) == sp->steps[2].n_jobs,
                 "step 3 rewrites exactly the TE2 layers (%zu of %zu)", sp->steps[2].n_jobs, jobs_of_comp(sp, LF_COMP_TE2));
        LF_CHECK(sp->steps[2].te_encode && sp->n_te_sets == 2, "TE2 change re-encodes");
        check_bytes("sdxl te2", sp, 0);
    }
    lf_step_plan_free(sp);
    lf_prompt_free(pr);
    /* lbw (20 values): only IN04 on; zero blocks never appear, other layers keep the plain strength */
    const char *p2[1] = {XL_LOCON};
    sp = build("sdxl lbw", g_sdxl, "<lora:l:unet=0.5@1,1@2:lbw=1,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0>", p2, 3, &pr);
    if (sp) {
        check_minimal("sdxl lbw", sp);
        int ok = sp->steps[0].n_jobs > 0;
        size_t in04 = 0;
        for (int t = 1; t <= 3; t++)
            for (size_t i = 0; i < sp->steps[t - 1].n_jobs; i++) {
                int blk = sp->job_block[sp->steps[t - 1].jobs[i]];
                ok &= blk == 4 || blk >= LF_BLK_OTHER;
                in04 += blk == 4;
            }
        LF_CHECK(ok && in04 > 0, "only IN04 and other layers are patched (%zu IN04 rewrites)", in04);
        check_bytes("sdxl lbw", sp, 1);
    }
    lf_step_plan_free(sp);
    lf_prompt_free(pr);
}

/* ---- errors: nothing loaded, nothing applied ------------------------------------------------------ */

/* ---- identical tags ------------------------------------------------------------------------------ */

/* An OFT adapter with a rescale on one 16x16 layer of the tiny SD1.5 model: its contribution is not
 * linear in the strength (the rescale is interpolated too). */
static int write_oft(const char *path) {
    static float blocks[4 * 4 * 4], rescale[16], alpha = 0;
    for (int i = 0; i < 64; i++) blocks[i] = 0.05f * (float)((i * 7) % 11) - 0.25f;
    for (int i = 0; i < 16; i++) rescale[i] = 1.0f + 0.03f * (float)(i % 5);
    static const char mod[] = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q";
    char n1[128], n2[128], n3[128];
    snprintf(n1, sizeof n1, "%s.oft_blocks", mod);
    snprintf(n2, sizeof n2, "%s.rescale", mod);
    snprintf(n3, sizeof n3, "%s.alpha", mod);
    const int64_t sb[3] = {4, 4, 4}, sr[2] = {16, 1};
    lf_st_writer *w = NULL;
    int ok = lf_st_writer_new(&w) == LF_OK && lf_st_writer_add(w, n1, LF_F32, 3, sb, blocks, sizeof blocks) == LF_OK &&
             lf_st_writer_add(w, n2, LF_F32, 2, sr, rescale, sizeof rescale) == LF_OK &&
             lf_st_writer_add(w, n3, LF_F32, 0, NULL, &alpha, sizeof alpha) == LF_OK && lf_st_writer_commit(w, path) == LF_OK;
    lf_st_writer_free(w);
    return ok;
}

/* The tensors of two plans after their last step, compared as f16/bf16 words: the largest difference. */
static int max_word_diff(const lf_step_plan *a, const lf_step_plan *b) {
    lf_cpu_backend *ba = NULL, *bb = NULL;
    int worst = -1;
    if (lf_cpu_backend_new(a, 0, &ba) == LF_OK && lf_cpu_backend_new(b, 0, &bb) == LF_OK) {
        worst = 0;
        for (int t = 1; t <= a->n_steps; t++) worst |= (lf_cpu_backend_step(ba, t) | lf_cpu_backend_step(bb, t)) ? 1 << 20 : 0;
        for (size_t j = 0; j < a->plan->n_jobs; j++) {
            size_t j2 = 0;
            while (j2 < b->plan->n_jobs && b->plan->jobs[j2].target != a->plan->jobs[j].target) j2++;
            if (j2 == b->plan->n_jobs) return 1 << 20;
            size_t na, nb;
            const uint16_t *wa = lf_cpu_backend_weight(ba, j, &na), *wb = lf_cpu_backend_weight(bb, j2, &nb);
            for (size_t i = 0; i < na / 2 && na == nb; i++) {
                int d = abs((int)wa[i] - (int)wb[i]);
                if (d > worst) worst = d;
            }
        }
    }
    lf_cpu_backend_free(ba);
    lf_cpu_backend_free(bb);
    return worst;
}

static void test_identical_tags(void) {
    /* three spellings of one tag: one entry counted three times, one plan adapter at 3 x 0.5 */
    const char *paths[4] = {KOHYA, KOHYA, KOHYA, LYCO};
    lf_prompt *pr, *pr1, *pr2;
    const char *pi[4] = {KOHYA, KOHYA, LYCO, KOHYA};
    lf_step_plan *sp = build("identical", g_sd15, "<lora:k:0.5> <lora:k:.5> <lora:l:1> <lora:k : 0.50>", pi, 4, &pr);
    lf_step_plan *one = build("one tag", g_sd15, "<lora:k:1.5> <lora:l:1>", paths + 2, 4, &pr1);
    if (sp && one) {
        LF_CHECK(sp->n_adapters == 2 && sp->adapters[0].count == 3 && sp->adapters[1].count == 1 &&
                 sp->adapters[0].n_plan == 1 && sp->plan->n_adapters == 2 && sp->n_files == 2,
                 "entries %zu, counts %zu/%zu, plan adapters %zu", sp->n_adapters, sp->adapters[0].count,
                 sp->adapters[1].count, sp->plan->n_adapters);
        check_minimal("identical", sp);
        check_bytes("identical", sp, 0);
        check_bytes("identical", sp, 1);
        /* 3 x 0.5 is 1.5 exactly: the same coefficients, the same bytes as one tag at 1.5 */
        LF_CHECK(max_word_diff(sp, one) == 0, "three tags at 0.5 = one tag at 1.5, bit for bit");
    }
    lf_step_plan_free(sp);
    lf_step_plan_free(one);
    lf_prompt_free(pr);
    lf_prompt_free(pr1);
    /* the merged entry against the same two copies kept apart (a ramp that changes nothing makes the
     * second tag different): the same weights up to the rounding of the sum (one f16 unit) */
    sp = build("merged", g_sd15, "<lora:k:te=0.3:unet=0.7> <lora:k:te=0.3:unet=0.7>", paths, 3, &pr);
    one = build("apart", g_sd15, "<lora:k:te=0.3:unet=0.7> <lora:k:te=0.3:unet=0.7:ramp=linear>", paths, 3, &pr1);
    if (sp && one) {
        LF_CHECK(sp->plan->n_adapters == 1 && one->plan->n_adapters == 2, "merged %zu, apart %zu", sp->plan->n_adapters,
                 one->plan->n_adapters);
        int d = max_word_diff(sp, one);
        LF_CHECK(d >= 0 && d <= 1, "merged vs apart: %d f16 units", d);
    }
    lf_step_plan_free(sp);
    lf_step_plan_free(one);
    lf_prompt_free(pr);
    lf_prompt_free(pr1);
    /* an adapter whose contribution is not linear in the strength: one plan adapter per copy, the
     * same bytes as the copies kept apart */
    char dir[] = "/tmp/lf_oft_XXXXXX", oft[256];
    if (!mkdtemp(dir)) return;
    snprintf(oft, sizeof oft, "%s/oft.safetensors", dir);
    if (!write_oft(oft)) {
        LF_CHECK(0, "write oft: %s", lf_last_error());
    } else {
        const char *po[3] = {oft, oft, oft};
        sp = build("oft merged", g_sd15, "<lora:o:0.5> <lora:o:0.5> <lora:o:0.5>", po, 2, &pr);
        one = build("oft apart", g_sd15, "<lora:o:0.5> <lora:o:0.5:ramp=linear> <lora:o:0.5:te=0.5>", po, 2, &pr1);
        lf_step_plan *lin = build("oft scaled", g_sd15, "<lora:o:1.5>", po, 2, &pr2);
        if (sp && one && lin) {
            LF_CHECK(one->n_adapters == 3 && max_word_diff(sp, one) == 0, "oft: merged = apart, bit for bit");
            LF_CHECK(sp->n_adapters == 1 && sp->adapters[0].count == 3 && sp->adapters[0].n_plan == 3 &&
                     sp->plan->n_adapters == 3, "oft: %zu plan adapters", sp->plan->n_adapters);
            check_minimal("oft merged", sp);
            check_bytes("oft merged", sp, 0);
            LF_CHECK(max_word_diff(sp, lin) > 1, "OFT with rescale: 3 x C(0.5) is not C(1.5)");
        }
        lf_step_plan_free(sp);
        lf_step_plan_free(one);
        lf_step_plan_free(lin);
        lf_prompt_free(pr);
        lf_prompt_free(pr1);
        lf_prompt_free(pr2);
    }
    unlink(oft);
    rmdir(dir);
}

static void expect_build_err(const lf_model *m, const char *text, const char *const *paths, int n, const char *msg) {
    lf_prompt *pr = NULL;
    lf_step_plan *sp = NULL;
    if (lf_prompt_parse(text, &pr) != LF_OK) {
        LF_CHECK(0, "%s: parse: %s", text, lf_last_error());
        return;
    }
    lf_status st = lf_step_plan_build_files(m, pr, paths, n, NULL, &sp);
    LF_CHECK(st != LF_OK && !sp, "%s: build should fail", text);
    LF_CHECK(strstr(lf_last_error(), msg) != NULL, "%s:\n  got '%s'\n  want it to contain '%s'", text, lf_last_error(), msg);
    lf_step_plan_free(sp);
    lf_prompt_free(pr);
}

static void test_errors(void) {
    const char *missing[2] = {"/nonexistent/a.safetensors", "/nonexistent/b.safetensors"};
    /* tag checks come before any file is opened: the message is about the tag, not the missing file */
    expect_build_err(g_sd15, "<lora:a:1> <lora:b:lbw=1,1,1,1,1,1,1,1,1,1,1,1>", missing, 4,
                     "prompt col 12: <lora:b:lbw=1,1,1,1,1,1,1,1,1,1,1,1>: lbw has 12 values; an SD1 model takes 17 or 26");
    expect_build_err(g_sd15, "<lora:a:te1=1>", missing, 4, "prompt col 1: <lora:a:te1=1>: te1 names one of the two SDXL");
    expect_build_err(g_sdxl, "<lora:a:lbw=NOPE>", missing, 4, "unknown lbw preset 'NOPE'");
    expect_build_err(g_sd15, "<lora:a:unet=1@9,0@0.5>", missing, 10, "key frames must be in increasing order");
    expect_build_err(g_sd15, "<lora:a:1>", missing, 0, "the number of steps must be 1 to");
    expect_build_err(g_sd15, "<lora:a:1>", missing, 4, "prompt col 1: <lora:a:1>: /nonexistent/a.safetensors");
    /* an SDXL LoRA on the SD1.5 model: refused by the plan's P9 check */
    const char *xl[1] = {XL_KOHYA};
    expect_build_err(g_sd15, "<lora:x:1>", xl, 4, "adapter is for SDXL");
}

/* ---- LoRA directory -------------------------------------------------------------------------------- */

/* src with an ss_output_name alias and trigger words in its metadata. */
static int write_alias_lora(const char *src, const char *dst) {
    const char *meta[] = {"ss_output_name", "mychar", "ss_tag_frequency",
                          "{\"10_mychar\": {\"mychar\": 5, \"1girl\": 3}, \"5_blue hair\": {\"blue hair\": 2}}", NULL};
    lf_test_st_edit e = {.copy_meta = 1, .meta = meta};
    return lf_test_st_copy(src, dst, &e);
}

static void resolve_ok(lf_lora_dir *d, const char *dir, const char *name, const char *rel) {
    char *p = NULL, want[512];
    snprintf(want, sizeof want, "%s/%s", dir, rel);
    LF_CHECK(lf_lora_dir_resolve(d, name, &p) == LF_OK && p && !strcmp(p, want), "'%s' -> %s, want %s (%s)", name,
             p ? p : "(error)", want, p ? "" : lf_last_error());
    free(p);
}

static void resolve_err(lf_lora_dir *d, const char *name, const char *msg) {
    char *p = NULL;
    LF_CHECK(lf_lora_dir_resolve(d, name, &p) == LF_ERR_ARG && !p, "'%s' should fail", name);
    LF_CHECK(strstr(lf_last_error(), msg) != NULL, "'%s':\n  got '%s'\n  want it to contain '%s'", name, lf_last_error(), msg);
    free(p);
}

static void test_lora_dir(void) {
    char dir[256], cwd[2048], path[4096], src[4096];
    if (lf_test_tmpdir(dir, sizeof dir, "loradir") || !getcwd(cwd, sizeof cwd)) {
        LF_CHECK(0, "mkdtemp");
        return;
    }
    const char *sub[3] = {"styles", "other", "trained"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, sub[i]);
        mkdir(path, 0755);
    }
    struct { const char *src, *dst; } links[] = {{KOHYA, "sd15_kohya.safetensors"}, {LYCO, "styles/ink.safetensors"},
                                                 {PEFT, "styles/peft.safetensors"}, {PEFT, "other/ink.safetensors"},
                                                 {KOHYA, "notes.txt"}};
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        snprintf(src, sizeof src, "%s/%s", cwd, links[i].src);
        snprintf(path, sizeof path, "%s/%s", dir, links[i].dst);
        LF_CHECK(symlink(src, path) == 0, "symlink %s", path);
    }
    snprintf(path, sizeof path, "%s/trained/model-000010.safetensors", dir);
    LF_CHECK(write_alias_lora(KOHYA, path), "write alias LoRA: %s", lf_last_error());
    lf_lora_dir *d = NULL;
    LF_CHECK(lf_lora_dir_open(dir, &d) == LF_OK && lf_lora_dir_count(d) == 5, "scan: %zu files", lf_lora_dir_count(d));
    if (d) {
        LF_CHECK(!strcmp(lf_lora_dir_at(d, 0), "other/ink.safetensors"), "sorted: %s", lf_lora_dir_at(d, 0));
        resolve_ok(d, dir, "sd15_kohya", "sd15_kohya.safetensors");
        resolve_ok(d, dir, "sd15_kohya.safetensors", "sd15_kohya.safetensors");
        resolve_ok(d, dir, "styles/ink", "styles/ink.safetensors");
        resolve_ok(d, dir, "other/ink.safetensors", "other/ink.safetensors");
        resolve_ok(d, dir, "peft", "styles/peft.safetensors");
        resolve_ok(d, dir, "model-000010", "trained/model-000010.safetensors");
        resolve_ok(d, dir, "mychar", "trained/model-000010.safetensors");
        resolve_err(d, "ink", "'ink' is ambiguous in ");
        resolve_err(d, "ink", "2 files match by file names: other/ink.safetensors, styles/ink.safetensors (write the path "
                    "relative to the directory)");
        resolve_err(d, "sd15_kohy", "no LoRA named 'sd15_kohy' in ");
        resolve_err(d, "sd15_kohy", "(5 files); closest: sd15_kohya, ");
        resolve_err(d, "mychr", "closest: trained/model-000010 (alias mychar)");
        resolve_err(d, "notes", "no LoRA named 'notes'");
        resolve_err(d, "styles", "no LoRA named 'styles'");
    }
    lf_lora_dir_free(d);
    d = NULL;
    LF_CHECK(lf_lora_dir_open("/nonexistent/loras", &d) == LF_OK, "missing dir opens empty");
    if (d) resolve_err(d, "x", "no LoRA named 'x': /nonexistent/loras holds no .safetensors files (set --lora-dir)");
    lf_lora_dir_free(d);
    /* trigger words: ss_tag_frequency folders without the repeat prefix, appended once */
    char **w = NULL;
    size_t nw = 0;
    snprintf(path, sizeof path, "%s/trained/model-000010.safetensors", dir);
    LF_CHECK(lf_lora_triggers(path, &w, &nw) == LF_OK && nw == 2 && !strcmp(w[0], "mychar") && !strcmp(w[1], "blue hair"),
             "trigger words (%zu)", nw);
    lf_lora_words_free(w, nw);
    const char *tp[2] = {path, path};
    char *out = NULL;
    LF_CHECK(lf_lora_append_triggers("a girl", tp, 2, &out) == LF_OK && !strcmp(out, "a girl, mychar, blue hair"),
             "append: %s", out ? out : lf_last_error());
    free(out);
    LF_CHECK(lf_lora_append_triggers("MyChar in the rain", tp, 1, &out) == LF_OK &&
             !strcmp(out, "MyChar in the rain, blue hair"), "append skips present words: %s", out ? out : "");
    free(out);
    LF_CHECK(lf_lora_append_triggers("", tp, 1, &out) == LF_OK && !strcmp(out, "mychar, blue hair"), "empty prompt: %s",
             out ? out : "");
    free(out);
    /* the whole build through the directory */
    lf_prompt *pr = NULL;
    lf_step_plan *sp = NULL;
    lf_step_opts o;
    memset(&o, 0, sizeof o);
    o.lora_dir = dir;
    if (lf_prompt_parse("<lora:mychar:0.5> <lora:styles/ink:in=1@2> <lora:sd15_kohya:0>", &pr) == LF_OK &&
        lf_step_plan_build(g_sd15, pr, 3, &o, &sp) == LF_OK) {
        LF_CHECK(strstr(sp->adapters[0].path, "trained/model-000010.safetensors") &&
                 strstr(sp->adapters[1].path, "styles/ink.safetensors") && sp->adapters[2].dropped && sp->n_files == 2,
                 "resolved through the directory");
    } else {
        LF_CHECK(0, "build through dir: %s", lf_last_error());
    }
    lf_step_plan_free(sp);
    lf_prompt_free(pr);
    pr = NULL;
    sp = NULL;
    if (lf_prompt_parse("ok <lora:sd15_kohya:1> <lora:ink:1>", &pr) == LF_OK) {
        LF_CHECK(lf_step_plan_build(g_sd15, pr, 3, &o, &sp) == LF_ERR_ARG && !sp, "ambiguous name fails the build");
        LF_CHECK(!strncmp(lf_last_error(), "prompt col 24: <lora:ink:1>: 'ink' is ambiguous", 47), "message: %s",
                 lf_last_error());
    }
    lf_step_plan_free(sp);
    lf_prompt_free(pr);
    lf_test_rmtree(dir);
}

int main(void) {
    if (lf_model_open(SD15, &g_sd15) != LF_OK || lf_model_open(SDXL, &g_sdxl) != LF_OK) {
        fprintf(stderr, "%s\n", lf_last_error());
        LF_SKIP("tiny models missing");
    }
    test_sd15_schedule();
    test_sd15_constant();
    test_sd15_drop_repeat();
    test_sd15_te_sets();
    test_sd15_vs_merge();
    test_sdxl();
    test_identical_tags();
    test_errors();
    test_lora_dir();
    lf_model_free(g_sd15);
    lf_model_free(g_sdxl);
    return lf_test_finish();
}
