/* batch_jobs.c: a `lorafuse batch` job file -> the expanded, checked job list; its order and shards
 * (lf_batch.h, docs/batch.md).
 *
 * A sweep of axes A1 (n1 values) .. Ak (nk values) expands into n1 * ... * nk jobs, A1 outermost; the
 * count is checked against the job limit before anything is built. A job without a seed (or -1) gets
 * one derived from its id (FNV-1a 32-bit mod 2^32 - 2), so that every run and every shard make the
 * same image for it (a sweep's jobs: derived from the sweep's id, so that its cells share the seed).
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cJSON.h>

#include "host/base/strbuf.h"
#include "host/base/text.h"
#include "host/base/util.h"
#include "lorafuse/lf_batch.h"
#include "lorafuse/lf_prompt_tags.h"
#include "lorafuse/lf_sampler.h"

typedef enum { F_STR, F_INT, F_NUM, F_BOOL } lf_bftype;

static const struct {
    const char *name;
    lf_bftype type;
    double lo, hi;
} lf_bfields[] = {
    {"id", F_STR, 0, 0},          {"model", F_STR, 0, 0},          {"prompt", F_STR, 0, 0},
    {"negative_prompt", F_STR, 0, 0}, {"sampler_name", F_STR, 0, 0}, {"scheduler", F_STR, 0, 0},
    {"seed", F_INT, -1, 9007199254740991.0}, {"steps", F_INT, 1, 10000}, {"width", F_INT, 8, LF_GEN_MAX_SIZE},
    {"height", F_INT, 8, LF_GEN_MAX_SIZE}, {"batch_size", F_INT, 1, 1024}, {"n_iter", F_INT, 1, 100000},
    {"clip_skip", F_INT, 0, 12},  {"cfg_scale", F_NUM, -1000, 1000}, {"batchable", F_BOOL, 0, 0},
};
#define LF_N_BFIELDS (sizeof lf_bfields / sizeof *lf_bfields)
static const char lf_bfield_list[] = "id, model, prompt, negative_prompt, seed, steps, sampler_name, scheduler, "
                                     "cfg_scale, width, height, batch_size, n_iter, clip_skip, batchable, axes";

static int lf_bfield(const char *name) {
    for (size_t i = 0; i < LF_N_BFIELDS; i++)
        if (!strcmp(lf_bfields[i].name, name)) return (int)i;
    return -1;
}

/* Where a job came from, for messages: "FILE:LINE: job 'ID'" or "FILE: sweeps[2] 'ID'". */
typedef struct {
    const char *file;
    int line;          /* 0: a document */
    const char *part;  /* "jobs", "sweeps" or NULL (a line) */
    size_t index;
    char where[512];
} lf_bctx;

static const char *lf_bwhere(lf_bctx *c, const cJSON *job) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(job, "id");
    char q[LF_ESC_PART], qi[LF_ESC_PART];
    const char *kind = cJSON_GetObjectItemCaseSensitive(job, "axes") ? "sweep" : "job";
    lf_esc(q, sizeof q, c->file, strlen(c->file));
    if (cJSON_IsString(id)) lf_esc(qi, sizeof qi, id->valuestring, strlen(id->valuestring));
    if (c->part)
        snprintf(c->where, sizeof c->where, "%s: %s[%zu]%s%s%s", q, c->part, c->index, cJSON_IsString(id) ? " '" : "",
                 cJSON_IsString(id) ? qi : "", cJSON_IsString(id) ? "'" : "");
    else
        snprintf(c->where, sizeof c->where, "%s:%d: %s%s%s%s", q, c->line, kind, cJSON_IsString(id) ? " '" : "",
                 cJSON_IsString(id) ? qi : "", cJSON_IsString(id) ? "'" : "");
    return c->where;
}

/* "FILE:LINE:COL: malformed JSON" for a parse that stopped at err within text (line numbers from base). */
static lf_status lf_bsyntax(const char *file, const char *text, const char *err, int base_line) {
    int line = base_line, col = 1;
    if (!err) err = text + strlen(text);
    /* cJSON stops past the whitespace after the character it could not take: point at that character */
    while (err > text && (!*err || isspace((unsigned char)*err))) err--;
    for (const char *p = text; p < err && *p; p++) {
        if (*p == '\n') line++, col = 1;
        else col++;
    }
    char q[LF_ESC_PART], near[LF_ESC_PART];
    size_t n = strcspn(err, "\n");
    if (n > 20) n = 20;
    lf_esc(near, sizeof near, err, n);
    return lf_err(LF_ERR_FORMAT, "%s:%d:%d: malformed JSON%s%s%s", lf_esc(q, sizeof q, file, strlen(file)), line, col,
                  *near ? " near '" : " (unexpected end)", near, *near ? "'" : "");
}

static int lf_bid_ok(const char *s) {
    size_t n = strlen(s);
    if (!n || n > 100 || s[0] == '.' || s[0] == '-') return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i])) return 0;
    return 1;
}

/* Check each field's name and type. */
static lf_status lf_bcheck_fields(lf_bctx *c, const cJSON *job, int allow_axes) {
    char q[LF_ESC_PART];
    if (!cJSON_IsObject(job)) return lf_err(LF_ERR_FORMAT, "%s: a job must be a JSON object", lf_bwhere(c, job));
    for (const cJSON *f = job->child; f; f = f->next) {
        if (!strcmp(f->string, "axes") && allow_axes) {
            if (!cJSON_IsObject(f) || !f->child)
                return lf_err(LF_ERR_FORMAT, "%s: axes must be an object of non-empty arrays", lf_bwhere(c, job));
            for (const cJSON *a = f->child; a; a = a->next)
                if (!cJSON_IsArray(a) || !a->child)
                    return lf_err(LF_ERR_FORMAT, "%s: axis '%s' must be a non-empty array", lf_bwhere(c, job),
                                  lf_esc(q, sizeof q, a->string, strlen(a->string)));
            continue;
        }
        int k = lf_bfield(f->string);
        if (k < 0)
            return lf_err(LF_ERR_FORMAT, "%s: unknown field '%s' (fields: %s)", lf_bwhere(c, job),
                          lf_esc(q, sizeof q, f->string, strlen(f->string)), lf_bfield_list);
        if (cJSON_IsNull(f)) continue;
        static const char *const tname[] = {"string", "number", "number", "boolean"};
        lf_bftype t = lf_bfields[k].type;
        if (t == F_STR ? !cJSON_IsString(f) : t == F_BOOL ? !cJSON_IsBool(f) : !cJSON_IsNumber(f))
            return lf_err(LF_ERR_FORMAT, "%s: %s must be a %s", lf_bwhere(c, job), f->string, tname[t]);
        if (t == F_INT || t == F_NUM) {
            double v = f->valuedouble;
            if ((lf_bfields[k].type == F_INT && v != floor(v)) || v < lf_bfields[k].lo || v > lf_bfields[k].hi)
                return lf_err(LF_ERR_FORMAT, "%s: %s %g is not %s from %g to %g", lf_bwhere(c, job), f->string, v,
                              lf_bfields[k].type == F_INT ? "an integer" : "a number", lf_bfields[k].lo,
                              lf_bfields[k].hi);
        }
        if (!strcmp(f->string, "id") && !lf_bid_ok(f->valuestring))
            return lf_err(LF_ERR_FORMAT, "%s: id '%s' must be 1 to 100 of A-Z a-z 0-9 . _ - (not starting with . or -)",
                          lf_bwhere(c, job), lf_esc(q, sizeof q, f->valuestring, strlen(f->valuestring)));
    }
    return LF_OK;
}

/* ---- building one job ------------------------------------------------------------------------- */
static const char *lf_bstr(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double lf_bnum(const cJSON *o, const char *name, double def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

static char *lf_bdup(const char *s) { return s ? lf_strndup(s, strlen(s)) : NULL; }

static int lf_bcmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The LoRA tags of the prompt: the adapter names (sorted, one a line) and the tags as written (sorted). */
static lf_status lf_btags(const char *prompt, const char *where, char **names, char **tags) {
    lf_prompt *p = NULL;
    if (lf_prompt_parse(prompt, &p) != LF_OK) return lf_err_wrap(lf_err_escape(LF_ERR_FORMAT), "%s: ", where);
    char **a = calloc(p->n_tags + 1, sizeof *a), **b = calloc(p->n_tags + 1, sizeof *b);
    lf_sbuf sn = {0}, st = {0};
    if (a && b) {
        for (size_t i = 0; i < p->n_tags; i++) a[i] = p->tags[i].name, b[i] = p->tags[i].text;
        qsort(a, p->n_tags, sizeof *a, lf_bcmp_str);
        qsort(b, p->n_tags, sizeof *b, lf_bcmp_str);
        for (size_t i = 0; i < p->n_tags; i++) {
            lf_sb_printf(&sn, "\n%s", a[i]);
            lf_sb_printf(&st, "\n%s", b[i]);
        }
    }
    lf_sb_printf(&sn, "%s", "");
    lf_sb_printf(&st, "%s", "");
    int oom = !a || !b || sn.oom || st.oom;
    free(a);
    free(b);
    lf_prompt_free(p);
    *names = sn.s;
    *tags = st.s;
    return oom ? lf_err(LF_ERR_NOMEM, "out of memory") : LF_OK;
}

/* sampler_name + scheduler as A1111 (scheduler automatic: Karras for DPM++ 2M; karras) -> lorafuse's name. */
static lf_status lf_bsampler(const cJSON *o, const char *where, char **out) {
    const char *name = lf_bstr(o, "sampler_name"), *sch = lf_bstr(o, "scheduler");
    char q[LF_ESC_PART], buf[96];
    if (!name || !*name) name = LF_GEN_DEFAULT_SAMPLER;
    lf_sampler_config c;
    if (lf_sampler_config_from_name(name, &c) != LF_OK) return lf_err_wrap(lf_err_escape(LF_ERR_FORMAT), "%s: ", where);
    int karras = c.karras;
    if (sch && !strcasecmp(sch, "karras")) karras = 1;
    else if (!sch || !*sch || !strcasecmp(sch, "automatic")) karras = c.karras || c.kind == LF_SAMPLER_DPMPP_2M;
    else
        return lf_err(LF_ERR_FORMAT, "%s: scheduler '%s' is not implemented (automatic, karras)", where,
                      lf_esc(q, sizeof q, sch, strlen(sch)));
    snprintf(buf, sizeof buf, "%s%s", name, karras && !c.karras ? " Karras" : "");
    if (lf_sampler_config_from_name(buf, &c) != LF_OK) return lf_err_wrap(lf_err_escape(LF_ERR_FORMAT), "%s: ", where);
    *out = lf_bdup(lf_sampler_config_name(&c));
    return *out ? LF_OK : lf_err(LF_ERR_NOMEM, "out of memory");
}

static int64_t lf_bseed_of(const char *id) {
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) h = (h ^ *p) * 16777619u;
    return (int64_t)(h % 4294967294u);
}

/* A merged, substituted job object -> l->jobs[l->n++]. */
static lf_status lf_bjob_add(lf_batch_list *l, size_t *cap, cJSON *o, const char *id, const char *sweep, int line,
                             const char *where) {
    if (lf_grow(&l->jobs, cap, l->n + 1)) return lf_err(LF_ERR_NOMEM, "out of memory");
    lf_batch_job *j = &l->jobs[l->n];
    memset(j, 0, sizeof *j);
    l->n++;
    j->line = line;
    j->id = lf_bdup(id);
    j->dir = lf_bdup(id);
    j->sweep = lf_bdup(sweep);
    const char *model = lf_bstr(o, "model");
    if (!model || !*model)
        return lf_err(LF_ERR_FORMAT, "%s: no model (set \"model\" in the job or in defaults)", where);
    j->model = lf_bdup(model);
    j->prompt = lf_bdup(lf_bstr(o, "prompt") ? lf_bstr(o, "prompt") : "");
    j->negative = lf_bdup(lf_bstr(o, "negative_prompt") ? lf_bstr(o, "negative_prompt") : "");
    j->steps = (int)lf_bnum(o, "steps", LF_GEN_DEFAULT_STEPS);
    j->width = (int)lf_bnum(o, "width", 0);
    j->height = (int)lf_bnum(o, "height", 0);
    j->batch_size = (int)lf_bnum(o, "batch_size", 1);
    j->n_iter = (int)lf_bnum(o, "n_iter", 1);
    j->clip_skip = (int)lf_bnum(o, "clip_skip", 0);
    j->cfg = lf_bnum(o, "cfg_scale", LF_GEN_DEFAULT_CFG);
    j->seed = (int64_t)lf_bnum(o, "seed", -1);
    j->batchable = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "batchable"));
    if (j->seed < 0) j->seed = lf_bseed_of(sweep ? sweep : id); /* a sweep's cells share it, as in an X/Y plot */
    if (!j->id || !j->dir || (sweep && !j->sweep) || !j->model || !j->prompt || !j->negative)
        return lf_err(LF_ERR_NOMEM, "out of memory");
    lf_status st = lf_bsampler(o, where, &j->sampler);
    if (st == LF_OK) st = lf_btags(j->prompt, where, &j->key, &j->params);
    if (st != LF_OK) return st;
    /* key: model + adapter names; the tags as written go after it in the order's key (params reused
     * for it until the params are printed) */
    char *tags = j->params;
    lf_sbuf k = {0};
    lf_sb_printf(&k, "%s%s\x01%s", j->model, j->key, tags);
    free(j->key);
    free(tags);
    j->key = k.s;
    cJSON_DeleteItemFromObjectCaseSensitive(o, "axes");
    /* how the job runs, not what it makes: records stay valid when it changes (--resume) */
    cJSON_DeleteItemFromObjectCaseSensitive(o, "batchable");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "seed");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "id");
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddNumberToObject(o, "seed", (double)j->seed);
    j->params = cJSON_PrintUnformatted(o);
    return k.oom || !j->key || !j->params ? lf_err(LF_ERR_NOMEM, "out of memory") : LF_OK;
}

/* Replace every "{name}" in s by val (malloc'd; NULL when out of memory); *hit counts replacements. */
static char *lf_bsubst(const char *s, const char *name, const char *val, int *hit) {
    char pat[160];
    snprintf(pat, sizeof pat, "{%s}", name);
    lf_sbuf b = {0};
    lf_sb_printf(&b, "%s", "");
    for (const char *p = s;;) {
        const char *m = strstr(p, pat);
        if (!m) {
            lf_sb_printf(&b, "%s", p);
            break;
        }
        lf_sb_printf(&b, "%.*s%s", (int)(m - p), p, val);
        p = m + strlen(pat);
        (*hit)++;
    }
    if (b.oom) {
        lf_sb_free(&b);
        return NULL;
    }
    return b.s;
}

/* An axis value as text (folder names, templates): a string as is, a number as JSON writes it. */
static char *lf_bval_text(const cJSON *v) {
    if (cJSON_IsString(v)) return lf_bdup(v->valuestring);
    return cJSON_PrintUnformatted(v);
}

/* Expand a sweep (o: merged with the defaults, with "axes") into jobs. */
static lf_status lf_bsweep(lf_batch_list *l, size_t *cap, lf_bctx *c, const cJSON *o, const char *sid,
                           size_t max_jobs) {
    const cJSON *axes = cJSON_GetObjectItemCaseSensitive(o, "axes");
    char where[600];
    snprintf(where, sizeof where, "%s", lf_bwhere(c, o));
    size_t na = (size_t)cJSON_GetArraySize(axes), count = 1;
    char q[LF_ESC_PART];
    for (const cJSON *a = axes->child; a; a = a->next) {
        size_t k = (size_t)cJSON_GetArraySize(a);
        if (count > (max_jobs + 1) / k + 1) count = max_jobs + 1;
        else count *= k;
        int f = lf_bfield(a->string);
        if (f == 0) return lf_err(LF_ERR_FORMAT, "%s: the id cannot be an axis", where);
        for (const cJSON *v = a->child; v; v = v->next)
            if (!cJSON_IsString(v) && !cJSON_IsNumber(v))
                return lf_err(LF_ERR_FORMAT, "%s: axis '%s': values must be strings or numbers", where,
                              lf_esc(q, sizeof q, a->string, strlen(a->string)));
    }
    if (count > max_jobs || l->n + count > max_jobs)
        return lf_err(LF_ERR_ARG, "%s: expands to %s%zu jobs, over the limit of %zu jobs in all (--max-jobs raises it)",
                      where, count > max_jobs ? "more than " : "", count > max_jobs ? max_jobs : count, max_jobs);
    size_t *pos = calloc(na, sizeof *pos);
    if (!pos) return lf_err(LF_ERR_NOMEM, "out of memory");
    lf_status st = LF_OK;
    for (size_t n = 0; n < count && st == LF_OK; n++) {
        /* pos: the mixed-radix digits of n, first axis most significant */
        size_t r = n, ai = na;
        const cJSON *a;
        for (ai = na; ai-- > 0;) {
            a = cJSON_GetArrayItem(axes, (int)ai);
            size_t k = (size_t)cJSON_GetArraySize(a);
            pos[ai] = r % k;
            r /= k;
        }
        cJSON *j = cJSON_Duplicate(o, 1), *ax = cJSON_CreateArray();
        lf_sbuf id = {0};
        lf_sb_printf(&id, "%s/%04zu", sid, n);
        ai = 0;
        for (a = axes->child; a && st == LF_OK; a = a->next, ai++) {
            const cJSON *v = cJSON_GetArrayItem(a, (int)pos[ai]);
            char *txt = lf_bval_text(v);
            if (!txt || !j) {
                free(txt);
                st = lf_err(LF_ERR_NOMEM, "out of memory");
                break;
            }
            cJSON *pair = cJSON_CreateArray();
            cJSON_AddItemToArray(pair, cJSON_CreateString(a->string));
            cJSON_AddItemToArray(pair, cJSON_CreateString(txt));
            cJSON_AddItemToArray(ax, pair);
            lf_sb_printf(&id, "%s%s=", ai ? "_" : "-", a->string);
            for (const char *p = txt; *p && p - txt < 24; p++)
                lf_sb_printf(&id, "%c", isalnum((unsigned char)*p) || strchr(".-", *p) ? *p : '_');
            int f = lf_bfield(a->string);
            if (f >= 0) {
                cJSON_DeleteItemFromObjectCaseSensitive(j, a->string);
                cJSON_AddItemToObject(j, a->string, cJSON_Duplicate(v, 1));
            } else {
                int hit = 0;
                static const char *const sf[] = {"prompt", "negative_prompt", "model", "sampler_name", "scheduler"};
                for (size_t i = 0; i < sizeof sf / sizeof *sf && st == LF_OK; i++) {
                    const char *s = lf_bstr(j, sf[i]);
                    if (!s) continue;
                    char *ns = lf_bsubst(s, a->string, txt, &hit);
                    if (!ns) st = lf_err(LF_ERR_NOMEM, "out of memory");
                    else {
                        cJSON_DeleteItemFromObjectCaseSensitive(j, sf[i]);
                        cJSON_AddStringToObject(j, sf[i], ns);
                        free(ns);
                    }
                }
                if (!hit && st == LF_OK)
                    st = lf_err(LF_ERR_FORMAT,
                                "%s: axis '%s' is neither a job field nor written as {%s} in the prompt, "
                                "negative_prompt, model, sampler_name or scheduler", where,
                                lf_esc(q, sizeof q, a->string, strlen(a->string)), q);
            }
            free(txt);
        }
        if (st == LF_OK && j) st = lf_bcheck_fields(c, j, 1); /* the values a field axis set */
        if (st == LF_OK) {
            if (j) {
                cJSON_DeleteItemFromObjectCaseSensitive(j, "id");
                cJSON_AddStringToObject(j, "id", id.s ? id.s : "");
            }
            st = id.oom || !j ? lf_err(LF_ERR_NOMEM, "out of memory")
                              : lf_bjob_add(l, cap, j, id.s, sid, c->line, lf_bwhere(c, j));
            if (st == LF_OK) {
                l->jobs[l->n - 1].axes = cJSON_PrintUnformatted(ax);
                l->jobs[l->n - 1].sweep_index = n;
                if (!l->jobs[l->n - 1].axes) st = lf_err(LF_ERR_NOMEM, "out of memory");
            }
        }
        cJSON_Delete(ax);
        lf_sb_free(&id);
        cJSON_Delete(j);
    }
    free(pos);
    return st;
}

/* One job or sweep object (jobs/sweeps entry or a line), merged over the defaults. */
static lf_status lf_bentry(lf_batch_list *l, size_t *cap, lf_bctx *c, const cJSON *defaults, const cJSON *job,
                           int want_sweep, size_t max_jobs) {
    lf_status st = lf_bcheck_fields(c, job, 1);
    if (st != LF_OK) return st;
    int is_sweep = cJSON_GetObjectItemCaseSensitive(job, "axes") != NULL;
    if (want_sweep >= 0 && is_sweep != want_sweep)
        return lf_err(LF_ERR_FORMAT, "%s: %s", lf_bwhere(c, job),
                      want_sweep ? "a sweep needs \"axes\"" : "a job has no \"axes\" (put it in \"sweeps\")");
    cJSON *o = defaults ? cJSON_Duplicate(defaults, 1) : cJSON_CreateObject();
    if (!o) return lf_err(LF_ERR_NOMEM, "out of memory");
    for (const cJSON *f = job->child; f; f = f->next) {
        cJSON_DeleteItemFromObjectCaseSensitive(o, f->string);
        cJSON_AddItemToObject(o, f->string, cJSON_Duplicate(f, 1));
    }
    char idbuf[32];
    const char *id = lf_bstr(job, "id");
    if (!id) {
        if (c->part) snprintf(idbuf, sizeof idbuf, "%s-%04zu", is_sweep ? "sweep" : "job", c->index);
        else snprintf(idbuf, sizeof idbuf, "%s-line%d", is_sweep ? "sweep" : "job", c->line);
        id = idbuf;
    }
    if (is_sweep) st = lf_bsweep(l, cap, c, o, id, max_jobs);
    else if (l->n + 1 > max_jobs)
        st = lf_err(LF_ERR_ARG, "%s: more than %zu jobs (--max-jobs raises the limit)", lf_bwhere(c, job), max_jobs);
    else st = lf_bjob_add(l, cap, o, id, NULL, c->line, lf_bwhere(c, job));
    cJSON_Delete(o);
    return st;
}

static int lf_bcmp_id(const void *a, const void *b) {
    return strcmp((*(const lf_batch_job *const *)a)->id, (*(const lf_batch_job *const *)b)->id);
}

static lf_status lf_bunique(const lf_batch_list *l, const char *file) {
    const lf_batch_job **v = malloc((l->n + 1) * sizeof *v);
    if (!v) return lf_err(LF_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < l->n; i++) v[i] = &l->jobs[i];
    qsort(v, l->n, sizeof *v, lf_bcmp_id);
    lf_status st = LF_OK;
    char q[LF_ESC_PART], qf[LF_ESC_PART];
    for (size_t i = 1; i < l->n && st == LF_OK; i++)
        if (!strcmp(v[i]->id, v[i - 1]->id))
            st = lf_err(LF_ERR_FORMAT, "%s: job id '%s' is used twice", lf_esc(qf, sizeof qf, file, strlen(file)),
                        lf_esc(q, sizeof q, v[i]->id, strlen(v[i]->id)));
    free(v);
    return st;
}

/* The document form: {"defaults", "jobs", "sweeps"}. */
static lf_status lf_bdoc(lf_batch_list *l, size_t *cap, const char *file, const cJSON *doc, size_t max_jobs) {
    char q[LF_ESC_PART], qf[LF_ESC_PART];
    lf_esc(qf, sizeof qf, file, strlen(file));
    for (const cJSON *f = doc->child; f; f = f->next)
        if (strcmp(f->string, "defaults") && strcmp(f->string, "jobs") && strcmp(f->string, "sweeps"))
            return lf_err(LF_ERR_FORMAT, "%s: unknown top-level field '%s' (defaults, jobs, sweeps)", qf,
                          lf_esc(q, sizeof q, f->string, strlen(f->string)));
    const cJSON *defaults = cJSON_GetObjectItemCaseSensitive(doc, "defaults");
    lf_bctx c = {file, 0, "defaults", 0, ""};
    if (defaults) {
        lf_status st = lf_bcheck_fields(&c, defaults, 0);
        if (st != LF_OK) return st;
        if (cJSON_GetObjectItemCaseSensitive(defaults, "id"))
            return lf_err(LF_ERR_FORMAT, "%s: defaults cannot set an id", qf);
    }
    static const char *const parts[] = {"jobs", "sweeps"};
    for (int p = 0; p < 2; p++) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(doc, parts[p]);
        if (!arr) continue;
        if (!cJSON_IsArray(arr)) return lf_err(LF_ERR_FORMAT, "%s: %s must be an array", qf, parts[p]);
        c.part = parts[p];
        c.index = 0;
        for (const cJSON *j = arr->child; j; j = j->next, c.index++) {
            lf_status st = lf_bentry(l, cap, &c, defaults, j, p, max_jobs);
            if (st != LF_OK) return st;
        }
    }
    return LF_OK;
}

lf_status lf_batch_load(const char *path, size_t max_jobs, lf_batch_list *out) {
    memset(out, 0, sizeof *out);
    char *text = NULL;
    size_t len = 0;
    lf_status st = lf_read_file(path, "the job file", (size_t)1 << 30, &text, &len);
    if (st != LF_OK) return st;
    st = lf_batch_parse(path, text, len, max_jobs, out);
    free(text);
    return st;
}

lf_status lf_batch_parse(const char *path, const char *text, size_t len, size_t max_jobs, lf_batch_list *out) {
    memset(out, 0, sizeof *out);
    size_t cap = 0;
    lf_status st = LF_OK;
    char q[LF_ESC_PART];
    if (strlen(text) != len)
        return lf_err(LF_ERR_FORMAT, "%s: the job file contains a NUL byte", lf_esc(q, sizeof q, path, strlen(path)));
    /* one JSON object for the whole file (with defaults/jobs/sweeps: a document), else JSON Lines; a
     * file whose first line is not a whole JSON value but that starts with '{' is a broken document */
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithOpts(text, &end, 1);
    size_t first = strcspn(text, "\n");
    int is_doc = doc && cJSON_IsObject(doc) &&
                 (cJSON_GetObjectItemCaseSensitive(doc, "jobs") || cJSON_GetObjectItemCaseSensitive(doc, "sweeps") ||
                  cJSON_GetObjectItemCaseSensitive(doc, "defaults"));
    if (!doc && first < len) {
        char *line = lf_strndup(text, first);
        cJSON *one = line ? cJSON_Parse(line) : NULL;
        const char *t = text;
        while (isspace((unsigned char)*t)) t++;
        /* on failure cJSON leaves `end` at the whole-file parse's error */
        if (!one && *t == '{') st = lf_bsyntax(path, text, end, 1);
        cJSON_Delete(one);
        free(line);
        if (st != LF_OK) return st;
    }
    if (is_doc) st = lf_bdoc(out, &cap, path, doc, max_jobs);
    else {
        int lineno = 0;
        for (const char *p = text; *p && st == LF_OK;) {
            const char *nl = strchr(p, '\n');
            size_t n = nl ? (size_t)(nl - p) : strlen(p);
            lineno++;
            char *line = lf_strndup(p, n);
            if (!line) st = lf_err(LF_ERR_NOMEM, "out of memory");
            else {
                const char *t = line;
                while (isspace((unsigned char)*t)) t++;
                if (*t) {
                    const char *e = NULL;
                    cJSON *j = cJSON_ParseWithOpts(line, &e, 1);
                    if (!j) st = lf_bsyntax(path, line, cJSON_GetErrorPtr(), lineno);
                    else {
                        lf_bctx c = {path, lineno, NULL, 0, ""};
                        st = lf_bentry(out, &cap, &c, NULL, j, -1, max_jobs);
                    }
                    cJSON_Delete(j);
                }
                free(line);
            }
            p = nl ? nl + 1 : p + n;
        }
    }
    cJSON_Delete(doc);
    if (st == LF_OK && out->n == 0) st = lf_err(LF_ERR_FORMAT, "%s: no jobs", lf_esc(q, sizeof q, path, strlen(path)));
    if (st == LF_OK) st = lf_bunique(out, path);
    if (st != LF_OK) lf_batch_list_free(out);
    return st;
}

void lf_batch_list_free(lf_batch_list *l) {
    for (size_t i = 0; i < l->n; i++) {
        lf_batch_job *j = &l->jobs[i];
        free(j->id), free(j->dir), free(j->model), free(j->prompt), free(j->negative), free(j->sampler);
        free(j->params), free(j->key), free(j->sweep), free(j->axes);
    }
    free(l->jobs);
    memset(l, 0, sizeof *l);
}

size_t lf_batch_job_images(const lf_batch_job *j) { return (size_t)j->batch_size * (size_t)j->n_iter; }

/* ---- order and shards ------------------------------------------------------------------------- */
/* The group key: the part of key before the \x01 (model + adapter names). */
static size_t lf_bgroup_len(const char *key) { return strcspn(key, "\x01"); }

static int lf_bcmp_order(const void *pa, const void *pb) {
    const lf_batch_job *a = pa, *b = pb;
    int c = strcmp(a->key, b->key);
    if (!c) c = strcmp(a->prompt, b->prompt);
    if (!c) c = strcmp(a->negative, b->negative);
    if (!c) c = (a->line > b->line) - (a->line < b->line);
    if (!c) c = strcmp(a->id, b->id); /* total: ids are unique, so the order never depends on qsort */
    return c;
}

void lf_batch_order(lf_batch_list *l) { qsort(l->jobs, l->n, sizeof *l->jobs, lf_bcmp_order); }

lf_status lf_batch_shard(const lf_batch_list *l, int i, int n, size_t **idx, size_t *n_idx) {
    *idx = NULL;
    *n_idx = 0;
    if (n < 1 || i < 0 || i >= n) return lf_err(LF_ERR_ARG, "shard %d/%d: want 0 <= I < N", i, n);
    size_t groups = 0;
    double total = 0;
    for (size_t k = 0; k < l->n; k++) {
        total += (double)lf_batch_job_images(&l->jobs[k]);
        size_t g = lf_bgroup_len(l->jobs[k].key);
        if (!k || lf_bgroup_len(l->jobs[k - 1].key) != g || strncmp(l->jobs[k - 1].key, l->jobs[k].key, g)) groups++;
    }
    int whole = groups >= (size_t)n; /* whole groups per shard, else jobs */
    size_t *v = malloc((l->n + 1) * sizeof *v);
    if (!v) return lf_err(LF_ERR_NOMEM, "out of memory");
    /* a unit (group or job) goes to shard floor(n * (images before its middle) / total) */
    double before = 0;
    for (size_t k = 0; k < l->n;) {
        size_t e = k + 1;
        if (whole) {
            size_t g = lf_bgroup_len(l->jobs[k].key);
            while (e < l->n && lf_bgroup_len(l->jobs[e].key) == g && !strncmp(l->jobs[e].key, l->jobs[k].key, g)) e++;
        }
        double w = 0;
        for (size_t t = k; t < e; t++) w += (double)lf_batch_job_images(&l->jobs[t]);
        int s = (int)floor((double)n * (before + w / 2) / total);
        if (s >= n) s = n - 1;
        if (s == i)
            for (size_t t = k; t < e; t++) v[(*n_idx)++] = t;
        before += w;
        k = e;
    }
    *idx = v;
    return LF_OK;
}
