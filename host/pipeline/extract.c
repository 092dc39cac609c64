/* extract.c: `lorafuse extract` (lf_extract.h): inputs, checks, the parallel dW + SVD, the LoRA file.
 *
 * 1. Checks that need no file: options, output path different from every input.
 * 2. Open the model (lf_model_open), then either the adapters (lf_adapter_open; one family among them;
 *    lf_plan_build: every module matched and shape-checked, P9) or the tuned checkpoint (same family).
 * 3. Units: the model's weights that have a kohya name (lf_target.kohya: U-Net, text-encoder layers;
 *    a fused TE2 in_proj_weight is one unit of three modules, its q/k/v row slices), 2-D or 4-D, touched
 *    by the adapters (a plan job) or present in the tuned checkpoint with the same shape (else an error
 *    naming the key and both shapes). Each module's rank (cap) is checked against its size here, so
 *    every input error comes before any work.
 * 4. dW of each unit (lf_job_delta_ws, or W_tuned - W_base in f32) and its modules' factors
 *    (extract_module.c), units spread over the operator pool (host/base/pool.h), largest first; each
 *    unit's result is independent of the thread that ran it.
 * 5. Nothing is written unless every unit succeeded: then alpha / lora_down / lora_up of every
 *    nonzero module, sorted by name, and the metadata, through the atomic safetensors writer.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "extract_internal.h"
#include "host/base/pool.h"
#include "host/base/strbuf.h"
#include "host/base/file.h"
#include "host/base/util.h"

typedef struct lf_xunit {
    const lf_st_tensor *t;      /* base weight */
    const lf_job *job;          /* adapters: the plan's job for t */
    const lf_st_tensor *tuned;  /* tuned: the tuned weight */
    size_t first, n;            /* its modules */
    double t_delta;
    lf_status st;
    char msg[512];
} lf_xunit;

/* The largest module a rank applies to: [0] --rank, [1] --conv-rank (k x k convs when it is given). */
typedef struct lf_xbig {
    const char *name;
    int64_t rows, K, p;
} lf_xbig;

typedef struct lf_xrun {
    lf_xcfg cfg;
    lf_xbig big[2];
    lf_xunit *units;
    size_t n_units, cap_units;
    lf_xmod *mods;
    size_t n_mods, cap_mods;
    size_t *order;              /* units, largest first */
    lf_apply_ws ws[LF_PAR_MAX_THREADS];
    lf_st_commit_opts out_opts; /* the output's checks again at commit: overwrite, the inputs */
} lf_xrun;

/* ---- checks without files -------------------------------------------------------------------- */

static lf_status lf_x_check_opts(const lf_extract_opts *o, size_t n_loras, const char *tuned) {
    if ((n_loras == 0) == (tuned == NULL))
        return lf_err(LF_ERR_ARG, "extract: give either adapters (--lora) or a tuned checkpoint (--tuned), not %s",
                      n_loras ? "both" : "neither");
    if (o->rank < 0 || o->conv_rank < 0)
        return lf_err(LF_ERR_ARG, "extract: rank %d / conv rank %d: a rank must be at least 1", o->rank, o->conv_rank);
    if (o->policy == LF_RANK_FIXED && o->rank == 0)
        return lf_err(LF_ERR_ARG, "extract: rank 0: a fixed rank must be at least 1 (or choose a dynamic policy)");
    if (o->policy == LF_RANK_SV_RATIO && !(o->param > 0))
        return lf_err(LF_ERR_ARG, "extract: sv_ratio %g: the ratio must be positive", o->param);
    if ((o->policy == LF_RANK_SV_FRO || o->policy == LF_RANK_SV_CUMULATIVE) && !(o->param > 0 && o->param <= 1))
        return lf_err(LF_ERR_ARG, "extract: %s %g: the fraction must be in (0, 1]", lf_rank_policy_name(o->policy),
                      o->param);
    if (o->policy > LF_RANK_SV_CUMULATIVE || o->svd > LF_SVD_RANDOMIZED)
        return lf_err(LF_ERR_ARG, "extract: rank policy %d / SVD method %d: expected 0 to %d / 0 to %d", (int)o->policy,
                      (int)o->svd, (int)LF_RANK_SV_CUMULATIVE, (int)LF_SVD_RANDOMIZED);
    if (!(o->clamp_quantile >= 0 && o->clamp_quantile < 1))
        return lf_err(LF_ERR_ARG, "extract: clamp quantile %g must be in (0, 1) (0: off)", o->clamp_quantile);
    if (o->dtype != LF_DTYPE_INVALID && o->dtype != LF_F16 && o->dtype != LF_BF16 && o->dtype != LF_F32)
        return lf_err(LF_ERR_ARG, "extract: output dtype %s: F16, BF16 or F32", lf_dtype_name(o->dtype));
    if (o->oversample < 0 || o->power_iters < 0)
        return lf_err(LF_ERR_ARG, "extract: oversampling %d and power iterations %d must not be negative",
                      o->oversample, o->power_iters);
    if (o->svd == LF_SVD_RANDOMIZED && o->policy == LF_RANK_SV_CUMULATIVE)
        return lf_err(LF_ERR_ARG, "extract: sv_cumulative needs the whole spectrum; use the exact SVD");
    if (o->svd == LF_SVD_RANDOMIZED && o->rank == 0)
        return lf_err(LF_ERR_ARG, "extract: the randomized SVD needs a rank (the cap of the dynamic policy)");
    return LF_OK;
}

/* The files the output must not be: the model, the tuned checkpoint and every adapter (compared by
 * device and inode, so hard links and other spellings count). *list is malloc'd. */
static lf_status lf_x_inputs(const char *model, const lf_merge_input *in, size_t n, const char *tuned,
                             const char ***list, size_t *count) {
    const char **l = calloc(n + 2, sizeof *l);
    if (!l) return lf_err(LF_ERR_NOMEM, "extract: out of memory");
    size_t k = 0;
    l[k++] = model;
    if (tuned) l[k++] = tuned;
    for (size_t i = 0; i < n; i++) l[k++] = in[i].path;
    *list = l;
    *count = k;
    return LF_OK;
}

/* Everything about the output that can be known before the work: not an input, not an existing file
 * unless overwriting, not a special file (lf_file_out_check), and a folder the temporary file can be
 * made in, so that a bad destination is refused before the SVDs, not after. */
static lf_status lf_x_check_output(const char *out, const lf_file_out_opts *fo) {
    if (!out || !*out) return lf_err(LF_ERR_ARG, "extract: no output path");
    lf_status st = lf_file_out_check(out, fo);
    if (st != LF_OK) return lf_err_wrap(st, "extract: ");
    const char *slash = strrchr(out, '/');
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash == out ? 1 : slash - out) : 1, slash ? out : ".");
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || access(dir, W_OK | X_OK) != 0)
        return lf_err(LF_ERR_IO, "extract: cannot write into '%s', the folder of the output '%s'", dir, out);
    return LF_OK;
}

/* Adapters made for different base models cannot be summed into one LoRA, whatever the model is. */
static lf_status lf_x_check_families(lf_adapter *const *ads, size_t n) {
    size_t first = n;
    lf_family f0 = LF_FAMILY_UNKNOWN;
    for (size_t i = 0; i < n; i++) {
        const char *why = "";
        lf_family f = lf_adapter_family(ads[i], &why);
        if (f == LF_FAMILY_UNKNOWN) continue;
        if (first == n) {
            first = i;
            f0 = f;
        } else if (f != f0) {
            return lf_err(LF_ERR_MODEL, "extract: adapters of different base models: '%s' is %s, '%s' is %s (%s)",
                          ads[first]->path, lf_family_name(f0), ads[i]->path, lf_family_name(f), why);
        }
    }
    return LF_OK;
}

/* ---- units ------------------------------------------------------------------------------------- */

static const lf_job *lf_x_find_job(const lf_plan *plan, const lf_st_tensor *t) {
    size_t lo = 0, hi = plan->n_jobs;
    while (lo < hi) { /* jobs are sorted by offset */
        size_t mid = (lo + hi) / 2;
        const lf_st_tensor *x = plan->jobs[mid].target;
        if (x == t) return &plan->jobs[mid];
        if (x->begin < t->begin || (x->begin == t->begin && x < t)) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* Index of tensor t in its file (tensors are in offset order). */
static size_t lf_x_tensor_index(const lf_st_file *st, const lf_st_tensor *t) {
    size_t lo = 0, hi = lf_st_count(st);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (lf_st_at(st, mid)->begin < t->begin) lo = mid + 1;
        else hi = mid;
    }
    while (lo < lf_st_count(st) && lf_st_at(st, lo) != t) lo++;
    return lo;
}

static lf_status lf_x_tuned_weight(const lf_model *base, const lf_model *tuned, const lf_st_tensor *t,
                                   const lf_st_tensor **out) {
    const lf_st_tensor *u = lf_st_find(tuned->st, t->name);
    char a[96], b[96];
    lf_view va = lf_st_view(t);
    if (!u)
        return lf_err(LF_ERR_SHAPE, "extract: the tuned checkpoint '%s' has no '%s' (%s in the base '%s')",
                      lf_st_path(tuned->st), t->name, lf_shape_str(&va, a, sizeof a), lf_st_path(base->st));
    lf_view vb = lf_st_view(u);
    int same = u->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = u->shape[d] == t->shape[d];
    if (!same)
        return lf_err(LF_ERR_SHAPE, "extract: '%s' is %s in the tuned checkpoint '%s' but %s in the base '%s'", t->name,
                      lf_shape_str(&vb, b, sizeof b), lf_st_path(tuned->st), lf_shape_str(&va, a, sizeof a),
                      lf_st_path(base->st));
    if (!lf_dtype_readable(u->dtype) || !lf_dtype_readable(t->dtype))
        return lf_err(LF_ERR_DTYPE, "extract: '%s' is %s in the base '%s' and %s in the tuned '%s'; both must be a float "
                      "dtype to be read as numbers", t->name, lf_dtype_name(t->dtype), lf_st_path(base->st),
                      lf_dtype_name(u->dtype), lf_st_path(tuned->st));
    *out = u;
    return LF_OK;
}

/* Add the unit of weight t with the modules tg[0..n) (the targets that share t and have a kohya name). */
static lf_status lf_x_add_unit(lf_xrun *run, const lf_extract_opts *o, const lf_st_tensor *t, const lf_target *tg,
                               size_t n, const lf_job *job, const lf_st_tensor *tuned) {
    if (lf_grow(&run->units, &run->cap_units, run->n_units + 1) ||
        lf_grow(&run->mods, &run->cap_mods, run->n_mods + n))
        return lf_err(LF_ERR_NOMEM, "extract: out of memory");
    lf_xunit *u = &run->units[run->n_units++];
    memset(u, 0, sizeof *u);
    u->t = t;
    u->job = job;
    u->tuned = tuned;
    u->first = run->n_mods;
    u->n = n;
    int64_t O = t->shape[0], K = 1;
    for (int d = 1; d < t->ndim; d++) K *= t->shape[d];
    int kxk = t->ndim == 4 && (t->shape[2] > 1 || t->shape[3] > 1);
    for (size_t i = 0; i < n; i++) {
        lf_xmod *m = &run->mods[run->n_mods++];
        memset(m, 0, sizeof *m);
        m->name = tg[i].kohya;
        m->key = t->name;
        m->row_off = tg[i].row_off;
        m->rows = tg[i].rows ? tg[i].rows : O;
        m->slice_rows = tg[i].rows;
        m->K = K;
        m->ndim = t->ndim;
        m->in = t->shape[1];
        m->kh = t->ndim == 4 ? t->shape[2] : 1;
        m->kw = t->ndim == 4 ? t->shape[3] : 1;
        int64_t p = m->rows < K ? m->rows : K;
        int conv = kxk && o->conv_rank;
        int want = conv ? o->conv_rank : o->rank;
        /* a module smaller than the rank is kept whole, at rank min(O, K), as kohya does (LyCORIS files
         * patch conv_out, 4 rows); a rank no module can hold is refused after the walk */
        m->clamped = want > p;
        m->cap = want && want < p ? want : (int)p;
        lf_xbig *big = &run->big[conv];
        if (p > big->p) {
            big->p = p;
            big->name = m->name;
            big->rows = m->rows;
            big->K = K;
        }
    }
    return LF_OK;
}

/* A rank above every module it applies to is a mistake, not a cap. */
static lf_status lf_x_check_ranks(const lf_xrun *run, const lf_extract_opts *o) {
    for (int conv = 0; conv < 2; conv++) {
        const lf_xbig *b = &run->big[conv];
        int want = conv ? o->conv_rank : o->rank;
        if (b->name && want > b->p)
            return lf_err(LF_ERR_ARG, "extract: %s %d is above the size of every module it applies to; the largest, "
                          "'%s', is (%lld, %lld) flattened: at most %lld", conv ? "conv rank" : "rank", want, b->name,
                          (long long)b->rows, (long long)b->K, (long long)b->p);
    }
    return LF_OK;
}

/* Walk the model's targets; covered[i] / excluded[i] mark base tensor i. */
static lf_status lf_x_units(lf_xrun *run, const lf_extract_opts *o, const lf_model *model, const lf_plan *plan,
                            const lf_model *tuned, unsigned char *covered, unsigned char *excluded) {
    const lf_keymap *km = model->km;
    size_t nt = lf_keymap_target_count(km);
    for (size_t i = 0; i < nt;) {
        const lf_target *g = lf_keymap_target_at(km, i);
        size_t n = 1;
        while (i + n < nt && strcmp(lf_keymap_target_at(km, i + n)->weight_key, g->weight_key) == 0) n++;
        size_t next = i + n;
        const lf_st_tensor *t = lf_st_find(model->st, g->weight_key);
        int te = g->component == LF_COMP_TE1 || g->component == LF_COMP_TE2;
        if (t && te && o->unet_only) {
            excluded[lf_x_tensor_index(model->st, t)] = 1;
            const lf_st_tensor *b = g->bias_key ? lf_st_find(model->st, g->bias_key) : NULL;
            if (b) excluded[lf_x_tensor_index(model->st, b)] = 1;
        }
        /* the targets of t that kohya names (a fused in_proj: its slices, not the whole) */
        const lf_target *first = NULL;
        size_t named = 0;
        for (size_t k = 0; k < n; k++) {
            const lf_target *x = lf_keymap_target_at(km, i + k);
            if (!x->kohya) continue;
            if (!first) first = x;
            named++;
        }
        i = next;
        if (!t || !first || (te && o->unet_only) || (t->ndim != 2 && t->ndim != 4)) continue;
        if (g->component != LF_COMP_UNET && !te) continue;
        const lf_job *job = NULL;
        const lf_st_tensor *tt = NULL;
        if (plan) {
            job = lf_x_find_job(plan, t);
            if (!job || !lf_job_active(job)) continue;
        } else {
            lf_status st = lf_x_tuned_weight(model, tuned, t, &tt);
            if (st != LF_OK) return st;
        }
        covered[lf_x_tensor_index(model->st, t)] = 1;
        /* named targets of one weight are consecutive (the whole fused weight comes first) */
        lf_status st = lf_x_add_unit(run, o, t, first, named, job, tt);
        if (st != LF_OK) return st;
    }
    return LF_OK;
}

/* Whether a tensor of the tuned model differs from the base's. A tensor stored in another dtype
 * (an f32 fine-tune of an f16 base) is compared by value, so a dtype change alone is no change and a
 * changed value is counted whatever the dtypes; a tensor of another shape belongs to another
 * architecture and is not compared. */
static bool lf_x_tensor_changed(const lf_st_tensor *t, const lf_st_tensor *u) {
    if (u->ndim != t->ndim) return false;
    for (int d = 0; d < t->ndim; d++)
        if (u->shape[d] != t->shape[d]) return false;
    if (u->dtype == t->dtype) return memcmp(u->data, t->data, (size_t)(t->end - t->begin)) != 0;
    if (!lf_dtype_readable(u->dtype) || !lf_dtype_readable(t->dtype)) return true;
    lf_view vt = lf_st_view(t), vu = lf_st_view(u);
    int64_t n = lf_view_numel(&vt);
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    bool changed = true; /* without memory to compare, report it rather than hide it */
    if (a && b && lf_view_to_f32(&vt, a) == LF_OK && lf_view_to_f32(&vu, b) == LF_OK)
        changed = memcmp(a, b, (size_t)n * sizeof *a) != 0;
    free(a);
    free(b);
    return changed;
}

/* Tensors that change but no unit carries (biases, norms, embeddings, the VAE): counted, named. */
static void lf_x_skipped(const lf_model *model, const lf_plan *plan, const lf_model *tuned,
                         const unsigned char *covered, const unsigned char *excluded, lf_extract_report *rep) {
    const char *first = NULL;
    size_t n = 0;
    if (plan) {
        for (size_t j = 0; j < plan->n_jobs; j++) {
            const lf_job *job = &plan->jobs[j];
            size_t i = lf_x_tensor_index(model->st, job->target);
            if (covered[i] || excluded[i] || !lf_job_active(job)) continue;
            if (!first) first = job->target->name;
            n++;
        }
    } else {
        for (size_t i = 0; i < lf_st_count(model->st); i++) {
            const lf_st_tensor *t = lf_st_at(model->st, i), *u = lf_st_find(tuned->st, t->name);
            if (covered[i] || excluded[i] || !u || !lf_x_tensor_changed(t, u)) continue;
            if (!first) first = t->name;
            n++;
        }
    }
    rep->n_skipped = n;
    snprintf(rep->skipped_first, sizeof rep->skipped_first, "%s", first ? first : "");
}

/* ---- the parallel part ------------------------------------------------------------------------- */

static lf_status lf_x_diff(const lf_st_tensor *base, const lf_st_tensor *tuned, float *dw, lf_apply_ws *ws) {
    lf_view vb = lf_st_view(base), vt = lf_st_view(tuned);
    int64_t n = lf_view_numel(&vb);
    lf_status st = lf_apply_ws_reserve(ws, n, 1, base->name);
    if (st == LF_OK) st = lf_view_to_f32(&vt, dw);
    if (st == LF_OK) st = lf_view_to_f32(&vb, ws->buf);
    for (int64_t i = 0; i < n && st == LF_OK; i++) {
        dw[i] -= ws->buf[i];
        if (!isfinite(dw[i]))
            st = lf_err(LF_ERR_NONFINITE, "'%s': the difference is not finite at element %lld", base->name, (long long)i);
    }
    return st;
}

static lf_status lf_x_unit_run(lf_xrun *run, lf_xunit *u, lf_apply_ws *ws) {
    int64_t n = 1;
    for (int d = 0; d < u->t->ndim; d++) n *= u->t->shape[d];
    float *dw = malloc((size_t)n * sizeof *dw);
    if (!dw) return lf_err(LF_ERR_NOMEM, "'%s': out of memory for %lld elements", u->t->name, (long long)n);
    double t0 = lf_clock_s();
    lf_status st = u->job ? lf_job_delta_ws(u->job, 1, dw, ws) : lf_x_diff(u->t, u->tuned, dw, ws);
    u->t_delta = lf_clock_s() - t0;
    for (size_t i = 0; i < u->n && st == LF_OK; i++) {
        lf_xmod *m = &run->mods[u->first + i];
        st = lf_extract_module(&run->cfg, dw + m->row_off * m->K, m);
    }
    free(dw);
    return st;
}

static void lf_x_chunk(void *ctx, int64_t i0, int64_t i1, int tid) {
    lf_xrun *run = ctx;
    for (int64_t c = i0; c < i1; c++) {
        lf_xunit *u = &run->units[run->order[c]];
        u->st = lf_x_unit_run(run, u, &run->ws[tid]);
        if (u->st != LF_OK) snprintf(u->msg, sizeof u->msg, "%s", lf_last_error());
    }
}

typedef struct {
    uint64_t bytes;
    size_t unit;
} lf_xorder;

static int lf_x_bigger_first(const void *a, const void *b) {
    const lf_xorder *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
    return (x->unit > y->unit) - (x->unit < y->unit);
}

static lf_status lf_x_compute(lf_xrun *run) {
    if (!run->n_units) return LF_OK;
    lf_xorder *ord = malloc(run->n_units * sizeof *ord);
    if (!ord || !(run->order = malloc(run->n_units * sizeof *run->order))) {
        free(ord);
        return lf_err(LF_ERR_NOMEM, "extract: out of memory");
    }
    for (size_t i = 0; i < run->n_units; i++) {
        ord[i].bytes = run->units[i].t->end - run->units[i].t->begin;
        ord[i].unit = i;
    }
    qsort(ord, run->n_units, sizeof *ord, lf_x_bigger_first);
    for (size_t i = 0; i < run->n_units; i++) run->order[i] = ord[i].unit;
    free(ord);
    lf_par_for((int64_t)run->n_units, 1, lf_x_chunk, run);
    for (size_t i = 0; i < run->n_units; i++) /* the first failure in file order */
        if (run->units[i].st != LF_OK) return lf_err(run->units[i].st, "extract: %s", run->units[i].msg);
    return LF_OK;
}

/* ---- output ------------------------------------------------------------------------------------- */

static int lf_x_by_name(const void *a, const void *b) {
    return strcmp((*(const lf_xmod *const *)a)->name, (*(const lf_xmod *const *)b)->name);
}

static char *lf_x_record(const char *model, const lf_merge_input *in, size_t n, const char *tuned,
                         const lf_extract_opts *o, const lf_xcfg *c, size_t layers) {
    static const char *const svd_names[] = {"auto", "exact", "randomized"};
    cJSON *r = cJSON_CreateObject();
    if (!r) return NULL;
    cJSON_AddStringToObject(r, "model", lf_basename(model));
    if (tuned) {
        cJSON_AddStringToObject(r, "tuned", lf_basename(tuned));
    } else {
        cJSON *arr = cJSON_AddArrayToObject(r, "loras");
        for (size_t i = 0; arr && i < n; i++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "file", lf_basename(in[i].path));
            cJSON_AddNumberToObject(x, "strength", (double)in[i].strength);
            if (in[i].dyn_rank) cJSON_AddNumberToObject(x, "dyn", in[i].dyn_rank);
            cJSON_AddItemToArray(arr, x);
        }
    }
    cJSON_AddStringToObject(r, "policy", lf_rank_policy_name(c->policy));
    if (c->policy != LF_RANK_FIXED) cJSON_AddNumberToObject(r, "param", c->param);
    if (o->rank) cJSON_AddNumberToObject(r, "rank", o->rank);
    if (o->conv_rank) cJSON_AddNumberToObject(r, "conv_rank", o->conv_rank);
    if (c->clamp > 0) cJSON_AddNumberToObject(r, "clamp_quantile", c->clamp);
    cJSON_AddStringToObject(r, "svd", svd_names[c->svd]);
    if (c->svd != LF_SVD_EXACT) {
        if (c->oversample) cJSON_AddNumberToObject(r, "oversample", c->oversample);
        cJSON_AddNumberToObject(r, "power_iters", c->power_iters);
    }
    cJSON_AddStringToObject(r, "dtype", lf_dtype_name(c->dtype));
    if (o->unet_only) cJSON_AddBoolToObject(r, "unet_only", 1);
    cJSON_AddNumberToObject(r, "modules", (double)layers);
    char *s = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    return s;
}

/* kohya / ModelSpec metadata (sd-scripts' extract_lora_from_models.py and sai_model_spec.py). ModelSpec is
 * written for SD1 and SDXL, whose architecture ids are certain; modelspec.date is left out so that the
 * same inputs give the same bytes. */
static lf_status lf_x_metadata(lf_st_writer *w, lf_family fam, const char *out, const char *model,
                               const lf_merge_input *in, size_t n, const char *tuned, const lf_extract_opts *o,
                               const lf_xcfg *c, size_t layers, int any_kxk) {
    char dim[32], alpha[32], comment[512], title[256];
    int fixed = c->policy == LF_RANK_FIXED;
    snprintf(dim, sizeof dim, "%d", o->rank);
    snprintf(alpha, sizeof alpha, "%d.0", o->rank);
    lf_status st = lf_st_writer_meta(w, "ss_network_module", "networks.lora");
    if (!st) st = lf_st_writer_meta(w, "ss_network_dim", fixed ? dim : "Dynamic");
    if (!st) st = lf_st_writer_meta(w, "ss_network_alpha", fixed ? alpha : "Dynamic");
    if (!st && fixed && any_kxk) {
        int cr = o->conv_rank ? o->conv_rank : o->rank;
        char args[96];
        snprintf(args, sizeof args, "{\"conv_dim\": \"%d\", \"conv_alpha\": \"%d.0\"}", cr, cr);
        st = lf_st_writer_meta(w, "ss_network_args", args);
    }
    const char *version = fam == LF_FAMILY_SD1 ? "sd_v1" : fam == LF_FAMILY_SD2 ? "sd_v2" : fam == LF_FAMILY_SDXL ? "sdxl_base_v1-0" : NULL;
    if (!st && version) st = lf_st_writer_meta(w, "ss_base_model_version", version);
    if (!st && version) st = lf_st_writer_meta(w, "ss_v2", fam == LF_FAMILY_SD2 ? "True" : "False");
    if (tuned) snprintf(comment, sizeof comment, "lorafuse extract: %s minus %s", lf_basename(tuned), lf_basename(model));
    else snprintf(comment, sizeof comment, "lorafuse extract: %zu adapter(s) on %s", n, lf_basename(model));
    if (!st) st = lf_st_writer_meta(w, "ss_training_comment", comment);
    if (!st && (fam == LF_FAMILY_SD1 || fam == LF_FAMILY_SDXL)) {
        const char *b = lf_basename(out), *dot = strrchr(b, '.');
        snprintf(title, sizeof title, "%.*s", (int)(dot && dot != b ? (size_t)(dot - b) : strlen(b)), b);
        int xl = fam == LF_FAMILY_SDXL;
        st = lf_st_writer_meta(w, "modelspec.sai_model_spec", "1.0.0");
        if (!st) st = lf_st_writer_meta(w, "modelspec.architecture", xl ? "stable-diffusion-xl-v1-base/lora" : "stable-diffusion-v1/lora");
        if (!st)
            st = lf_st_writer_meta(w, "modelspec.implementation",
                                   xl ? "https://github.com/Stability-AI/generative-models" : "diffusers");
        if (!st) st = lf_st_writer_meta(w, "modelspec.title", title);
        if (!st) st = lf_st_writer_meta(w, "modelspec.resolution", xl ? "1024x1024" : "512x512");
        if (!st && !tuned) {
            lf_sbuf from = {0};
            for (size_t i = 0; i < n; i++) lf_sb_printf(&from, "%s%s", i ? ", " : "", lf_basename(in[i].path));
            st = from.oom ? lf_err(LF_ERR_NOMEM, "extract: out of memory")
                          : lf_st_writer_meta(w, "modelspec.merged_from", from.s ? from.s : "");
            lf_sb_free(&from);
        }
    }
    char *rec = st ? NULL : lf_x_record(model, in, n, tuned, o, c, layers);
    if (!st && !rec) st = lf_err(LF_ERR_NOMEM, "extract: out of memory");
    if (!st) st = lf_st_writer_meta(w, "lorafuse.extract", rec);
    free(rec);
    return st;
}

static lf_status lf_x_write(lf_xrun *run, const lf_model *model, const char *out, const char *model_path,
                            const lf_merge_input *in, size_t n, const char *tuned, const lf_extract_opts *o,
                            lf_extract_report *rep) {
    size_t nz = 0;
    int any_kxk = 0;
    lf_xmod **v = malloc((run->n_mods + 1) * sizeof *v);
    if (!v) return lf_err(LF_ERR_NOMEM, "extract: out of memory");
    for (size_t i = 0; i < run->n_mods; i++) {
        const lf_xmod *m = &run->mods[i];
        if (m->zero) {
            rep->n_zero++;
            continue;
        }
        v[nz++] = &run->mods[i];
        any_kxk |= m->kh * m->kw > 1;
        rep->n_full += (size_t)m->clamped;
    }
    qsort(v, nz, sizeof *v, lf_x_by_name);
    lf_st_writer *w = NULL;
    lf_status st = nz ? lf_st_writer_new(&w)
                      : lf_err(LF_ERR_MODEL, "extract: nothing to write: %s no module a LoRA can carry (%zu modules "
                               "unchanged, %zu tensors changed that a LoRA cannot hold)",
                               tuned ? "the tuned checkpoint changes" : "the adapters change", rep->n_zero, rep->n_skipped);
    if (!st) st = lf_x_metadata(w, model->family, out, model_path, in, n, tuned, o, &run->cfg, nz, any_kxk);
    size_t esz = lf_dtype_bits(run->cfg.dtype) / 8;
    unsigned char *alphas = malloc((nz + 1) * 4);
    char *name = NULL;
    size_t name_cap = 0;
    if (!alphas) st = lf_err(LF_ERR_NOMEM, "extract: out of memory");
    rep->bytes_out = 0;
    for (size_t i = 0; i < nz && st == LF_OK; i++) {
        const lf_xmod *m = v[i];
        size_t need = strlen(m->name) + sizeof ".lora_down.weight";
        if (need > name_cap) {
            char *nb = realloc(name, need);
            if (!nb) {
                st = lf_err(LF_ERR_NOMEM, "extract: out of memory");
                break;
            }
            name = nb;
            name_cap = need;
        }
        float a = (float)m->rank;
        st = lf_f32_to_dtype(&a, 1, run->cfg.dtype, alphas + i * 4);
        int64_t r = m->rank, none[1] = {0};
        int64_t dshape[4] = {r, m->ndim == 4 ? m->in : m->K, m->kh, m->kw};
        int64_t ushape[4] = {m->rows, r, 1, 1};
        snprintf(name, name_cap, "%s.alpha", m->name);
        if (!st) st = lf_st_writer_add(w, name, run->cfg.dtype, 0, none, alphas + i * 4, esz);
        snprintf(name, name_cap, "%s.lora_down.weight", m->name);
        if (!st) st = lf_st_writer_add(w, name, run->cfg.dtype, m->ndim, dshape, m->down, (size_t)(r * m->K) * esz);
        snprintf(name, name_cap, "%s.lora_up.weight", m->name);
        if (!st) st = lf_st_writer_add(w, name, run->cfg.dtype, m->ndim, ushape, m->up, (size_t)(m->rows * r) * esz);
        rep->bytes_out += esz * (size_t)(1 + r * m->K + m->rows * r);
    }
    if (st == LF_OK) st = lf_st_writer_commit_opts(w, out, &run->out_opts);
    free(name);
    free(alphas);
    lf_st_writer_free(w);
    /* the report: the modules as written */
    if (st == LF_OK && nz && !(rep->layers = calloc(nz, sizeof *rep->layers))) st = lf_err(LF_ERR_NOMEM, "extract: out of memory");
    double nn = 0, rr = 0;
    for (size_t i = 0; i < nz && st == LF_OK; i++) {
        const lf_xmod *m = v[i];
        lf_extract_layer *l = &rep->layers[rep->n_layers++];
        l->name = strdup(m->name);
        l->key = strdup(m->key);
        if (!l->name || !l->key) st = lf_err(LF_ERR_NOMEM, "extract: out of memory");
        l->row_off = m->row_off;
        l->rows = m->slice_rows;
        l->out = m->rows;
        l->in = m->ndim == 4 ? m->in : m->K;
        l->kh = m->kh;
        l->kw = m->kw;
        l->rank = m->rank;
        l->randomized = m->randomized;
        l->norm = m->norm;
        l->kept = m->kept;
        l->residual = m->residual;
        l->t_svd = m->t_svd;
        nn += m->norm * m->norm;
        rr += m->residual * m->residual;
    }
    rep->norm = sqrt(nn);
    rep->residual = sqrt(rr);
    free(v);
    return st;
}

/* ---- entry ---------------------------------------------------------------------------------------- */

static void lf_x_run_free(lf_xrun *run) {
    for (size_t i = 0; i < run->n_mods; i++) {
        free(run->mods[i].up);
        free(run->mods[i].down);
    }
    for (int t = 0; t < LF_PAR_MAX_THREADS; t++) lf_apply_ws_free(&run->ws[t]);
    free(run->mods);
    free(run->units);
    free(run->order);
}

void lf_extract_report_free(lf_extract_report *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_layers; i++) {
        free(r->layers[i].name);
        free(r->layers[i].key);
    }
    free(r->layers);
    memset(r, 0, sizeof *r);
}

lf_status lf_extract(const char *model_path, const lf_merge_input *loras, size_t n_loras, const char *tuned_path,
                     const char *out_path, const lf_extract_opts *opts, lf_extract_report *report) {
    static const lf_extract_opts defaults = {.rank = 0};
    const lf_extract_opts *o = opts ? opts : &defaults;
    lf_extract_report local;
    lf_extract_report *rep = report ? report : &local;
    memset(rep, 0, sizeof *rep);
    lf_xrun run;
    memset(&run, 0, sizeof run);
    const char **inputs = NULL;
    size_t n_inputs = 0;
    lf_status st = lf_x_check_opts(o, n_loras, tuned_path);
    if (st == LF_OK) st = lf_x_inputs(model_path, loras, n_loras, tuned_path, &inputs, &n_inputs);
    lf_file_out_opts fo = {o->overwrite, inputs, n_inputs};
    if (st == LF_OK) st = lf_x_check_output(out_path, &fo);
    if (st != LF_OK) {
        free(inputs);
        return st;
    }
    run.out_opts.overwrite = o->overwrite;
    run.out_opts.inputs = inputs;
    run.out_opts.n_inputs = n_inputs;

    double t0 = lf_clock_s();
    run.cfg.policy = o->policy;
    run.cfg.param = o->param;
    run.cfg.clamp = o->clamp_quantile;
    run.cfg.dtype = o->dtype == LF_DTYPE_INVALID ? LF_F16 : o->dtype;
    run.cfg.svd = o->svd;
    run.cfg.oversample = o->oversample;
    run.cfg.power_iters = o->power_iters ? o->power_iters : LF_X_POWER_ITERS;
    run.cfg.svd_fn = o->svd_fn;
    run.cfg.svd_ctx = o->svd_ctx;
    lf_model *model = NULL, *tuned = NULL;
    lf_adapter **ads = calloc(n_loras + 1, sizeof *ads);
    float *strengths = calloc(n_loras + 1, sizeof *strengths);
    lf_plan *plan = NULL;
    unsigned char *covered = NULL, *excluded = NULL;
    if (!ads || !strengths) st = lf_err(LF_ERR_NOMEM, "extract: out of memory");
    if (st == LF_OK) st = lf_model_open(model_path, &model);
    if (st == LF_OK && tuned_path) {
        st = lf_model_open(tuned_path, &tuned);
        if (st == LF_OK && tuned->family != model->family && tuned->family != LF_FAMILY_UNKNOWN &&
            model->family != LF_FAMILY_UNKNOWN)
            st = lf_err(LF_ERR_MODEL, "extract: the tuned checkpoint '%s' is %s, the base '%s' is %s", tuned_path,
                        lf_family_name(tuned->family), model_path, lf_family_name(model->family));
    }
    for (size_t i = 0; i < n_loras && st == LF_OK; i++) {
        st = lf_adapter_open(loras[i].path, &ads[i]);
        strengths[i] = loras[i].strength;
        if (st == LF_OK && loras[i].dyn_rank)
            for (size_t m = 0; m < ads[i]->n_mods; m++) ads[i]->mods[m].dyn_rank = loras[i].dyn_rank;
    }
    if (st == LF_OK && n_loras) st = lf_x_check_families(ads, n_loras);
    if (st == LF_OK && n_loras) st = lf_plan_build(model, ads, strengths, n_loras, &o->plan, &plan);
    if (st == LF_OK) {
        size_t nt = lf_st_count(model->st) + 1;
        covered = calloc(nt, 1);
        excluded = calloc(nt, 1);
        if (!covered || !excluded) st = lf_err(LF_ERR_NOMEM, "extract: out of memory");
    }
    if (st == LF_OK) st = lf_x_units(&run, o, model, plan, tuned, covered, excluded);
    if (st == LF_OK) st = lf_x_check_ranks(&run, o);
    if (st == LF_OK) lf_x_skipped(model, plan, tuned, covered, excluded, rep);
    if (st == LF_OK && o->threads > 0) lf_par_set_threads(o->threads);
    rep->threads = lf_par_threads();
    double t1 = lf_clock_s();
    rep->t_read = t1 - t0;

    if (st == LF_OK) st = lf_x_compute(&run);
    double t2 = lf_clock_s();
    rep->t_layers = t2 - t1;
    for (size_t i = 0; i < run.n_units; i++) rep->t_delta += run.units[i].t_delta;
    for (size_t i = 0; i < run.n_mods; i++) rep->t_svd += run.mods[i].t_svd;

    if (st == LF_OK) st = lf_x_write(&run, model, out_path, model_path, loras, n_loras, tuned_path, o, rep);
    rep->t_write = lf_clock_s() - t2;

    lf_x_run_free(&run);
    free(covered);
    free(excluded);
    lf_plan_free(plan);
    for (size_t i = 0; ads && i < n_loras; i++) lf_adapter_free(ads[i]);
    free(ads);
    free(strengths);
    free((void *)run.out_opts.inputs);
    lf_model_free(tuned);
    lf_model_free(model);
    if (rep == &local) lf_extract_report_free(&local);
    return st;
}
