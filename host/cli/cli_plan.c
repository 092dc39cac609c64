/* cli_plan.c: `lorafuse plan`, the per-step strength plan of a prompt, printed without generating.
 *
 *   lorafuse plan --model CKPT --prompt TEXT --steps N [--lora-dir DIR] [--json] [--auto-trigger]
 *                 [--lbw-presets FILE] [--allow-unmatched] [--allow-family-mismatch]
 *                 [--tag-dialect lorafuse|loractl] [--allow-symlinks-out | --no-symlinks-out]   (LoRA directory links: lf_lora_dir.h)
 *
 * Prints (docs/prompt-tags.md "The per-step plan"): the cleaned prompt (with trigger words
 * appended under --auto-trigger), each adapter with its tag ("xN" for N identical tags), resolved file,
 * algorithm(s) and matched modules (or "dropped"), a table of strengths per step (steps with equal values folded into ranges)
 * for each text encoder and UNet block group (every block when the tag has lbw), and per step the
 * layers and bytes rewritten and whether the text encoders run. --json prints one object:
 *   {"prompt", "model", "family", "steps", "adapters": [{"tag", "name", "col", "count", "file", "dropped",
 *    "algorithms", "modules", "strengths": [{"step", "te" | "te1","te2", "IN00".., "M00", "OUT00"..,
 *    "other", "other_out"}]}], "plan": [{"step", "layers", "bytes", "te_changed", "te_encode",
 *    "te_set"}], "total": {"layers", "bytes", "te_encodes"}, "warnings": [..]}
 * Block keys are those of the model's family (SDXL: IN00-IN08, M00, OUT00-OUT08); "other" is
 * time_embed / label_emb (group in), "other_out" is out.* (group out). Values are effective strengths
 * (of one copy of a merged tag). Text output escapes the prompt, tags and paths (host/base/text.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "cli.h"
#include "host/base/number.h"
#include "host/base/strbuf.h"
#include "host/base/text.h"
#include "lorafuse/lf_step_plan.h"

typedef struct {
    const char *model, *prompt, *lora_dir, *presets, *dialect;
    int steps, json, auto_trigger, confine;
    lf_plan_opts plan;
} lf_plan_args;

static const char lf_plan_usage_text[] =
    "usage: lorafuse plan --model CKPT --prompt TEXT --steps N [--lora-dir DIR] [--json] [--auto-trigger]\n"
    "                     [--lbw-presets FILE] [--allow-unmatched] [--allow-family-mismatch]\n"
    "                     [--tag-dialect lorafuse|loractl] [--allow-symlinks-out | --no-symlinks-out]\n";

static const char lf_plan_help_text[] =
    "Prints the per-step plan of a prompt's <lora:...> tags without generating: the cleaned prompt, each\n"
    "adapter's file and algorithms, strengths per step and block group, layers rewritten per step.\n"
    "LoRA dir: \"models/lora\" by default. --json prints one object (docs/prompt-tags.md).\n"
    "--tag-dialect loractl reads schedules in tags as loractl does (docs/prompt-tags.md).\n"
    "example:\n"
    "  lorafuse plan --model models/sd15-mini.safetensors --steps 8 \\\n"
    "      --prompt 'a house <lora:mini_lora:te=0.5:unet=0.3@0,1@4>'\n";

enum { P_MODEL, P_PROMPT, P_LORA_DIR, P_LBW, P_STEPS, P_JSON, P_AUTOTRIG, P_SYMOUT, P_NOSYMOUT, P_UNMATCHED, P_FAMILY, P_DIALECT };

static const lf_cli_opt lf_plan_cli_opts[] = {
    [P_MODEL] = {"model", 1, 0},           [P_PROMPT] = {"prompt", 1, 0},   [P_LORA_DIR] = {"lora-dir", 1, 0},
    [P_LBW] = {"lbw-presets", 1, 0},       [P_STEPS] = {"steps", 1, 0},     [P_JSON] = {"json", 0, 0},
    [P_AUTOTRIG] = {"auto-trigger", 0, 0}, [P_SYMOUT] = {"allow-symlinks-out", 0, 0},
    [P_NOSYMOUT] = {"no-symlinks-out", 0, 0}, [P_UNMATCHED] = {"allow-unmatched", 0, 0},
    [P_FAMILY] = {"allow-family-mismatch", 0, 0}, [P_DIALECT] = {"tag-dialect", 1, 0}, {NULL, 0, 0}};

/* 1: run; 0: exit with *rc (0 after --help, 2 after a usage error). */
static int lf_plan_parse_args(int argc, char **argv, lf_plan_args *a, int *rc) {
    memset(a, 0, sizeof *a);
    lf_cli_parser p;
    lf_cli_parser_init(&p, "plan", lf_plan_usage_text, lf_plan_help_text, lf_plan_cli_opts, argc, argv);
    int o, ok = 1, n_rest;
    char *v, **rest;
    long long n;
    while (ok && (o = lf_cli_next(&p, &v)) >= 0) {
        switch (o) {
        case P_MODEL: a->model = v; break;
        case P_PROMPT: a->prompt = v; break;
        case P_LORA_DIR: a->lora_dir = v; break;
        case P_LBW: a->presets = v; break;
        case P_DIALECT: a->dialect = v; break;
        case P_STEPS:
            ok = lf_cli_int("plan", "--steps", v, 1, LF_STEPS_MAX, &n);
            a->steps = (int)n;
            break;
        case P_JSON: a->json = 1; break;
        case P_AUTOTRIG: a->auto_trigger = 1; break;
        case P_SYMOUT: a->confine = 0; break;
        case P_NOSYMOUT: a->confine = 1; break;
        case P_UNMATCHED: a->plan.allow_unmatched = 1; break;
        case P_FAMILY: a->plan.allow_family = 1; break;
        default: break;
        }
    }
    if ((*rc = lf_cli_finish(&p, ok ? o : LF_CLI_BAD, 0, &rest, &n_rest)) >= 0) return 0;
    if (a->model && a->prompt && a->steps) return 1;
    fprintf(stderr, "lorafuse plan: --model, --prompt and --steps are required\n");
    *rc = lf_cli_bad_usage(&p);
    return 0;
}

/* The value columns of an adapter's strength table: text encoders, then blocks. */
typedef struct {
    int n;
    const char *name[LF_BLK_COUNT + 2];
    int comp[LF_BLK_COUNT + 2];  /* lf_component */
    int block[LF_BLK_COUNT + 2];
} lf_cols;

static void lf_cols_add(lf_cols *c, const char *name, int comp, int block) {
    c->name[c->n] = name;
    c->comp[c->n] = comp;
    c->block[c->n++] = block;
}

/* all_blocks: every block of the family plus other/other_out (JSON, lbw); else the three groups. */
static void lf_cols_make(lf_family f, int all_blocks, lf_cols *c) {
    c->n = 0;
    if (f == LF_FAMILY_SDXL) {
        lf_cols_add(c, "te1", LF_COMP_TE1, LF_BLK_NONE);
        lf_cols_add(c, "te2", LF_COMP_TE2, LF_BLK_NONE);
    } else {
        lf_cols_add(c, "te", LF_COMP_TE1, LF_BLK_NONE);
    }
    if (!all_blocks) {
        lf_cols_add(c, "in", LF_COMP_UNET, LF_BLK_IN00);
        lf_cols_add(c, "mid", LF_COMP_UNET, LF_BLK_M00);
        lf_cols_add(c, "out", LF_COMP_UNET, LF_BLK_OUT00);
        return;
    }
    for (int b = 0; b < LF_BLK_COUNT; b++)
        if (lf_block_in_family(b, f)) lf_cols_add(c, lf_block_name(b), LF_COMP_UNET, b);
}

static float lf_col_value(const lf_strength *s, const lf_cols *c, int i, int t) {
    return lf_strength_at(s, (lf_component)c->comp[i], c->block[i], t);
}

static void lf_print_strengths(const lf_step_adapter *a, lf_family f, int n_steps) {
    lf_cols c;
    lf_cols_make(f, a->str.has_lbw, &c);
    printf("  steps    ");
    for (int i = 0; i < c.n; i++) printf(" %6s", c.name[i]);
    printf("\n");
    int t0 = 1;
    for (int t = 1; t <= n_steps; t++) {
        int same = t < n_steps;
        for (int i = 0; i < c.n && same; i++) same = lf_col_value(&a->str, &c, i, t) == lf_col_value(&a->str, &c, i, t + 1);
        if (same) continue;
        char range[32];
        if (t0 == t) snprintf(range, sizeof range, "%d", t);
        else snprintf(range, sizeof range, "%d-%d", t0, t);
        printf("  %-9s", range);
        for (int i = 0; i < c.n; i++) printf(" %6.4g", (double)lf_col_value(&a->str, &c, i, t));
        printf("\n");
        t0 = t + 1;
    }
}

static void lf_algos_str(unsigned algos, char *buf, size_t n) {
    buf[0] = '\0';
    size_t o = 0;
    for (int k = 1; k < LF_ALGO_COUNT; k++)
        if (algos & (1u << k)) {
            int w = snprintf(buf + o, n - o, "%s%s", o ? ", " : "", lf_algo_name((lf_algo)k));
            if (w < 0 || (size_t)w >= n - o) break;
            o += (size_t)w;
        }
    if (!o) snprintf(buf, n, "none");
}

/* The steps whose prompt text is text k, as ranges ("1-4, 9"; the first 8 ranges). */
static void lf_print_text_steps(const lf_prompt_sched *ps, size_t k) {
    int shown = 0, t = 1, n = ps->n_steps;
    while (t <= n) {
        if (ps->at[t - 1] != k) {
            t++;
            continue;
        }
        int t1 = t;
        while (t1 < n && ps->at[t1] == k) t1++;
        if (shown++ == 8) {
            printf(", ...");
            return;
        }
        printf(shown > 1 ? ", %d" : "%d", t);
        if (t1 > t) printf("-%d", t1);
        t = t1 + 1;
    }
}

/* Prompt editing: the texts the encoders see and their steps. */
static void lf_print_prompt_texts(const lf_step_plan *sp) {
    const lf_prompt_sched *ps = &sp->prompts[0];
    printf("prompt texts (prompt editing):\n");
    for (size_t k = 0; k < ps->n_texts; k++) {
        printf("  %zu. steps ", k + 1);
        lf_print_text_steps(ps, k);
        lf_cli_print_escaped(": %s\n", ps->texts[k]);
    }
}

static void lf_print_text(const lf_plan_args *a, const char *prompt, const lf_step_plan *sp) {
    lf_family f = sp->model->family;
    lf_cli_print_escaped("prompt: %s\n", prompt);
    lf_cli_print_escaped("model: %s", a->model);
    printf(" (%s), %d steps\n", lf_family_name(f), sp->n_steps);
    printf("adapters:\n");
    for (size_t i = 0; i < sp->n_adapters; i++) {
        const lf_step_adapter *ad = &sp->adapters[i];
        printf("  %zu. ", i + 1);
        lf_cli_print_escaped("%s", ad->tag->text);
        printf(" (col %d)", ad->tag->col);
        if (ad->count > 1) printf(" x%zu (identical tags, added up)", ad->count);
        printf("\n");
        lf_cli_print_escaped("     file: %s\n", ad->path);
        if (ad->dropped) {
            printf("     dropped: zero at every step (not loaded)\n");
            continue;
        }
        char algos[256];
        lf_algos_str(ad->algos, algos, sizeof algos);
        printf("     algorithm: %s; %zu modules matched", algos, ad->modules);
        if (ad->tag->dyn) printf("; dyn %d", ad->tag->dyn);
        if (ad->str.has_lbw) printf("; lbw %s", ad->tag->lbw_preset ? ad->tag->lbw_preset : "vector");
        printf("\n");
    }
    for (size_t i = 0; i < sp->n_adapters; i++) {
        if (sp->adapters[i].dropped) continue;
        printf("strengths of adapter %zu (", i + 1);
        lf_cli_print_escaped("%s", sp->adapters[i].tag->name);
        printf(")%s:\n", sp->adapters[i].count > 1 ? ", of one copy" : "");
        lf_print_strengths(&sp->adapters[i], f, sp->n_steps);
    }
    int editing = sp->prompts[0].n_texts > 1;
    if (editing) lf_print_prompt_texts(sp);
    printf("plan:\n  step   layers        bytes  text encoders%s\n", editing ? "       prompt text" : "");
    size_t layers = 0, encodes = 0;
    unsigned long long bytes = 0;
    for (int t = 1; t <= sp->n_steps; t++) {
        const lf_step *s = &sp->steps[t - 1];
        char te[64];
        int enc = editing ? s->cond_encode : s->te_encode, prev = t > 1 ? (int)sp->steps[t - 2].cond_set : -1;
        if (enc) snprintf(te, sizeof te, "encode (set %zu)", s->te_set + 1);
        else if (s->te_changed || (editing && (int)s->cond_set != prev)) snprintf(te, sizeof te, "reuse set %zu", s->te_set + 1);
        else snprintf(te, sizeof te, "-");
        if (editing) printf("  %-5d %7zu %12llu  %-18s %zu\n", t, s->n_jobs, (unsigned long long)s->bytes, te,
                            sp->prompts[0].at[t - 1] + 1);
        else printf("  %-5d %7zu %12llu  %s\n", t, s->n_jobs, (unsigned long long)s->bytes, te);
        layers += s->n_jobs;
        bytes += s->bytes;
        encodes += (size_t)enc;
    }
    printf("total: %zu layer rewrites, %llu bytes, %zu text-encoder encode(s)\n", layers, bytes, encodes);
    /* warnings quote tags escaped already */
    for (size_t i = 0; i < sp->warnings.n; i++) fprintf(stderr, "lorafuse plan: warning: %s\n", sp->warnings.v[i]);
}

static cJSON *lf_plan_json(const lf_plan_args *a, const char *prompt, const lf_step_plan *sp) {
    lf_family f = sp->model->family;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "prompt", prompt);
    cJSON_AddStringToObject(r, "model", a->model);
    cJSON_AddStringToObject(r, "family", lf_family_name(f));
    cJSON_AddNumberToObject(r, "steps", sp->n_steps);
    cJSON *ads = cJSON_AddArrayToObject(r, "adapters");
    lf_cols c;
    lf_cols_make(f, 1, &c);
    for (size_t i = 0; i < sp->n_adapters; i++) {
        const lf_step_adapter *ad = &sp->adapters[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(ads, o);
        cJSON_AddStringToObject(o, "tag", ad->tag->text);
        cJSON_AddStringToObject(o, "name", ad->tag->name);
        cJSON_AddNumberToObject(o, "col", ad->tag->col);
        cJSON_AddNumberToObject(o, "count", (double)ad->count);
        cJSON_AddStringToObject(o, "file", ad->path);
        cJSON_AddBoolToObject(o, "dropped", ad->dropped);
        cJSON *al = cJSON_AddArrayToObject(o, "algorithms");
        for (int k = 1; k < LF_ALGO_COUNT; k++)
            if (ad->algos & (1u << k)) cJSON_AddItemToArray(al, cJSON_CreateString(lf_algo_name((lf_algo)k)));
        cJSON_AddNumberToObject(o, "modules", (double)ad->modules);
        if (ad->tag->dyn) cJSON_AddNumberToObject(o, "dyn", ad->tag->dyn);
        cJSON_AddStringToObject(o, "ramp", ad->tag->ramp == LF_RAMP_LINEAR    ? "linear"
                                           : ad->tag->ramp == LF_RAMP_LORACTL ? "loractl"
                                                                              : "hold");
        cJSON_AddStringToObject(o, "dialect", lf_tag_dialect_name(ad->tag->dialect));
        cJSON *st = cJSON_AddArrayToObject(o, "strengths");
        for (int t = 1; t <= sp->n_steps; t++) {
            cJSON *row = cJSON_CreateObject();
            cJSON_AddItemToArray(st, row);
            cJSON_AddNumberToObject(row, "step", t);
            for (int k = 0; k < c.n; k++) cJSON_AddNumberToObject(row, c.name[k], (double)lf_col_value(&ad->str, &c, k, t));
        }
    }
    cJSON *pl = cJSON_AddArrayToObject(r, "plan");
    double layers = 0, bytes = 0, enc = 0;
    for (int t = 1; t <= sp->n_steps; t++) {
        const lf_step *s = &sp->steps[t - 1];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(pl, o);
        cJSON_AddNumberToObject(o, "step", t);
        cJSON_AddNumberToObject(o, "layers", (double)s->n_jobs);
        cJSON_AddNumberToObject(o, "bytes", (double)s->bytes);
        cJSON_AddBoolToObject(o, "te_changed", s->te_changed);
        cJSON_AddBoolToObject(o, "te_encode", s->te_encode);
        cJSON_AddNumberToObject(o, "te_set", (double)s->te_set);
        cJSON_AddNumberToObject(o, "prompt_text", (double)sp->prompts[0].at[t - 1]);
        cJSON_AddNumberToObject(o, "cond_set", (double)s->cond_set);
        cJSON_AddBoolToObject(o, "cond_encode", s->cond_encode);
        layers += (double)s->n_jobs;
        bytes += (double)s->bytes;
        enc += s->cond_encode;
    }
    cJSON *texts = cJSON_AddArrayToObject(r, "prompt_texts");
    for (size_t k = 0; k < sp->prompts[0].n_texts; k++) cJSON_AddItemToArray(texts, cJSON_CreateString(sp->prompts[0].texts[k]));
    cJSON *tot = cJSON_AddObjectToObject(r, "total");
    cJSON_AddNumberToObject(tot, "layers", layers);
    cJSON_AddNumberToObject(tot, "bytes", bytes);
    cJSON_AddNumberToObject(tot, "te_encodes", enc);
    cJSON *w = cJSON_AddArrayToObject(r, "warnings");
    for (size_t i = 0; i < sp->warnings.n; i++) cJSON_AddItemToArray(w, cJSON_CreateString(sp->warnings.v[i]));
    return r;
}

int lf_cli_plan(int argc, char **argv) {
    lf_plan_args a;
    int rc0;
    if (!lf_plan_parse_args(argc, argv, &a, &rc0)) return rc0;
    lf_prompt *pr = NULL;
    lf_model *m = NULL;
    lf_step_plan *sp = NULL;
    char *prompt = NULL;
    int rc = 1;
    lf_tag_dialect dialect = LF_DIALECT_LORAFUSE;
    if ((a.dialect && lf_tag_dialect_parse(a.dialect, &dialect) != LF_OK) ||
        lf_prompt_parse_dialect(a.prompt, dialect, &pr) != LF_OK || lf_model_open(a.model, &m) != LF_OK)
        goto fail;
    lf_step_opts o;
    memset(&o, 0, sizeof o);
    o.lora_dir = a.lora_dir;
    o.lora_dir_confine = a.confine;
    o.lbw_presets = a.presets;
    o.plan = a.plan;
    if (lf_step_plan_build(m, pr, a.steps, &o, &sp) != LF_OK) goto fail;
    if (a.auto_trigger && lf_step_plan_auto_trigger(sp, pr->clean, &prompt) != LF_OK) goto fail;
    const char *shown = prompt ? prompt : pr->clean;
    if (prompt && lf_step_plan_set_prompts(sp, prompt, NULL) != LF_OK) goto fail;
    if (a.json) {
        cJSON *j = lf_plan_json(&a, shown, sp);
        char *s = j ? cJSON_Print(j) : NULL;
        if (!s) {
            cJSON_Delete(j);
            lf_err(LF_ERR_NOMEM, "out of memory");
            goto fail;
        }
        puts(s);
        free(s);
        cJSON_Delete(j);
    } else {
        lf_print_text(&a, shown, sp);
    }
    rc = 0;
    goto done;
fail:
    lf_err_escape(LF_OK); /* library messages may quote paths and names as given */
    fprintf(stderr, "lorafuse plan: %s\n", lf_last_error());
done:
    free(prompt);
    lf_step_plan_free(sp);
    lf_model_free(m);
    lf_prompt_free(pr);
    return rc;
}
