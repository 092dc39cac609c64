/* clip_load.c: load a CLIP text encoder (lf_clip.h) from single-file checkpoint keys: the Linear weights
 * in their stored dtype (weight_load.h), embeddings, norms and biases as f32 (a diffusers/transformers
 * folder, lf_clip_load_dir, is read in model_dir.c).
 *
 * Key layouts (prefix P):
 *   HF (SD1 cond_stage_model.transformer., SDXL conditioner.embedders.0.transformer., folders ""):
 *     P text_model.embeddings.{token_embedding.weight (V, w), position_embedding.weight (n_pos, w)}
 *     P text_model.encoder.layers.N.{layer_norm1, self_attn.{q,k,v,out}_proj, layer_norm2, mlp.fc1, mlp.fc2}
 *     P text_model.final_layer_norm, [P text_projection.weight (proj, w)]
 *     (old SD1 files lack the "text_model." level: accepted)
 *   OpenCLIP (SD2 cond_stage_model.model., SDXL conditioner.embedders.1.model.):
 *     P token_embedding.weight, P positional_embedding (n_pos, w),
 *     P transformer.resblocks.N.{ln_1, attn.in_proj_weight (3w, w) / in_proj_bias, attn.out_proj, ln_2,
 *     mlp.c_fc (ff, w), mlp.c_proj (w, ff)}, P ln_final, [P text_projection (w, proj)]
 * Sizes come from the shapes (V, n_pos, w from the embeddings, L by counting layers, ff from fc1,
 * proj from the projection); heads per lf_clip.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip_internal.h"
#include "host/base/pages.h"
#include "lorafuse/lf_live_weights.h"
#include "lorafuse/lf_tensor.h"

typedef struct loader {
    const lf_st_file *f;
    char prefix[160];
    lf_status st;
    int strip_tm; /* old SD1 HF keys: suffixes are given with "text_model.", the file lacks it */
    lf_wts_entry *e; /* key index of what was loaded (f32 data not owned: the lf_clip frees it; stored-dtype
                      * weights owned by their entries) */
    size_t n, cap;
    int map;         /* stored-dtype weights used in place from the file's mapping */
} loader;

/* Point the index entry of `old` at `now` (+ transpose flag); drop it when now is NULL. */
static void reindex(loader *L, const void *old, void *now, int transpose) {
    for (size_t i = 0; i < L->n; i++)
        if (L->e[i].data == old) {
            if (now) {
                L->e[i].data = now;
                L->e[i].transpose = transpose;
            } else {
                free(L->e[i].key);
                L->e[i] = L->e[--L->n];
            }
            return;
        }
}

static void full_name(const loader *L, const char *suffix, char *name, size_t n) {
    if (L->strip_tm && strncmp(suffix, "text_model.", 11) == 0) suffix += 11;
    snprintf(name, n, "%s%s", L->prefix, suffix);
}

static const lf_st_tensor *find(const loader *L, const char *suffix) {
    char name[512];
    full_name(L, suffix, name, sizeof name);
    return lf_st_find(L->f, name);
}

/* Load prefix + suffix as f32, shape checked (negative dims: any, filled in). NULL on failure. */
static float *load(loader *L, const char *suffix, int ndim, int64_t *shape) {
    if (L->st) return NULL;
    char name[512];
    full_name(L, suffix, name, sizeof name);
    const lf_st_tensor *t = lf_st_find(L->f, name);
    if (!t) {
        L->st = lf_err(LF_ERR_MODEL, "%s: text encoder tensor %s is missing", lf_st_path(L->f), name);
        return NULL;
    }
    lf_view v = lf_st_view(t);
    int ok = v.ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = shape[i] < 0 || shape[i] == v.shape[i];
    if (!ok) {
        char got[128], want[128] = "(";
        lf_shape_str(&v, got, sizeof got);
        for (int i = 0; i < ndim; i++) {
            char d[32];
            if (shape[i] < 0) snprintf(d, sizeof d, "%s*", i ? ", " : "");
            else snprintf(d, sizeof d, "%s%lld", i ? ", " : "", (long long)shape[i]);
            strncat(want, d, sizeof want - strlen(want) - 2);
        }
        strcat(want, ")");
        L->st = lf_err(LF_ERR_SHAPE, "%s: text encoder tensor %s has shape %s, expected %s", lf_st_path(L->f), name,
                       got, want);
        return NULL;
    }
    if ((L->st = lf_wts_check_dtype(lf_st_path(L->f), name, v.dtype)) != LF_OK) return NULL;
    for (int i = 0; i < ndim; i++) shape[i] = v.shape[i];
    int64_t n = lf_view_numel(&v);
    float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    if (!p) {
        L->st = lf_err(LF_ERR_NOMEM, "%s: out of memory loading %s", lf_st_path(L->f), name);
        return NULL;
    }
    lf_status st = lf_view_to_f32(&v, p);
    if (st) {
        free(p);
        L->st = lf_err(st, "%s: text encoder tensor %s: dtype %s cannot be read as f32", lf_st_path(L->f), name,
                       lf_dtype_name(v.dtype));
        return NULL;
    }
    if (L->map) lf_drop_pages(t->data, (size_t)(t->end - t->begin)); /* the f32 copy is what is read */
    if ((L->st = lf_wts_check_finite(lf_st_path(L->f), name, p, n)) != LF_OK) {
        free(p);
        return NULL;
    }
    if (lf_wts_add(&L->e, &L->n, &L->cap, name + strlen(L->prefix), p, LF_F32, v.ndim, v.shape, 0) != LF_OK) {
        free(p);
        L->st = lf_err(LF_ERR_NOMEM, "%s: out of memory loading %s", lf_st_path(L->f), name);
        return NULL;
    }
    return p;
}

static float *load1(loader *L, const char *suffix, int64_t n) {
    int64_t s[1] = {n};
    return load(L, suffix, 1, s);
}

static float *load2(loader *L, const char *suffix, int64_t a, int64_t b) {
    int64_t s[2] = {a, b};
    return load(L, suffix, 2, s);
}

/* A Linear weight (a, b) into *dst in its stored dtype (F16/BF16/F32: mapped or one owned copy; other
 * dtypes as f32), owned by its index entry. 0 on failure. */
static int loadw(loader *L, const char *suffix, int64_t a, int64_t b, lf_view *dst) {
    memset(dst, 0, sizeof *dst);
    if (L->st) return 0;
    char name[512];
    full_name(L, suffix, name, sizeof name);
    const lf_st_tensor *t = lf_st_find(L->f, name);
    lf_dtype dt = t ? t->dtype : LF_F32;
    if (dt != LF_F16 && dt != LF_BF16 && dt != LF_F32) { /* missing, bad shape or other dtype: as load() */
        float *p = load2(L, suffix, a, b);
        if (!p) return 0;
        L->e[L->n - 1].owned = 1;
        L->e[L->n - 1].view = dst;
        *dst = lf_st_view(t);
        dst->data = p;
        dst->dtype = LF_F32;
        return 1;
    }
    lf_view v = lf_st_view(t);
    if (v.ndim != 2 || (a >= 0 && v.shape[0] != a) || (b >= 0 && v.shape[1] != b)) {
        free(load2(L, suffix, a, b)); /* fails with the shape message */
        return 0;
    }
    if ((L->st = lf_wts_check_finite_view(lf_st_path(L->f), name, &v)) != LF_OK) return 0;
    size_t nb = (size_t)lf_view_numel(&v) * lf_dtype_bits(dt) / 8;
    if (L->map) lf_drop_pages(v.data, nb); /* read back when the encoder runs (weight_load.c) */
    void *buf = (void *)(uintptr_t)v.data;
    if (!L->map) {
        if ((buf = malloc(nb ? nb : 1)) == NULL) {
            L->st = lf_err(LF_ERR_NOMEM, "%s: out of memory loading %s", lf_st_path(L->f), name);
            return 0;
        }
        memcpy(buf, v.data, nb);
    }
    if (lf_wts_add(&L->e, &L->n, &L->cap, name + strlen(L->prefix), buf, dt, v.ndim, v.shape, !L->map) != LF_OK) {
        if (!L->map) free(buf);
        L->st = lf_err(LF_ERR_NOMEM, "%s: out of memory loading %s", lf_st_path(L->f), name);
        return 0;
    }
    L->e[L->n - 1].mapped = L->map;
    L->e[L->n - 1].view = dst;
    *dst = v;
    dst->data = buf;
    return 1;
}

/* The index entry whose data is p. */
static lf_wts_entry *entry_of(loader *L, const void *p) {
    for (size_t i = 0; i < L->n; i++)
        if (L->e[i].data == p) return &L->e[i];
    return NULL;
}

/* q, k, v (each (w, w), any dtypes) fused into y->qkv_w (3w, w), one buffer the layer owns, in their
 * common dtype (f32 when they differ); the entries of q, k, v point at their rows. */
static void fuse_qkv(loader *L, lf_clip_layer *y, lf_view *q, int64_t w) {
    int ok = !L->st;
    lf_dtype dt = q[0].dtype;
    for (int i = 1; i < 3; i++)
        if (q[i].dtype != dt) dt = LF_F32;
    size_t eb = lf_dtype_bits(dt) / 8, nb = (size_t)(w * w) * eb;
    unsigned char *r = ok ? malloc(3 * nb) : NULL;
    if (ok && !r) L->st = lf_err(LF_ERR_NOMEM, "%s: out of memory", lf_st_path(L->f));
    for (int i = 0; i < 3; i++) {
        lf_wts_entry *e = q[i].data ? entry_of(L, q[i].data) : NULL;
        if (r) {
            if (q[i].dtype == dt) memcpy(r + i * nb, q[i].data, nb);
            else lf_view_to_f32(&q[i], (float *)(void *)(r + i * nb));
        }
        if (!e) continue;
        if (e->mapped) /* the fused copy is what is read */
            lf_drop_pages(e->data, (size_t)e->numel * lf_dtype_bits(e->dtype) / 8);
        if (e->owned) free(e->data);
        if (r) { /* the entry now names rows of the fused buffer, owned by the layer */
            e->data = r + i * nb;
            e->dtype = dt;
            e->owned = e->mapped = 0;
            e->view = NULL;
        } else {
            e->data = NULL;
            reindex(L, NULL, NULL, 0);
        }
    }
    if (!r) return;
    y->qkv_own = r;
    y->qkv_w = q[0];
    y->qkv_w.data = r;
    y->qkv_w.dtype = dt;
    y->qkv_w.shape[0] = 3 * w;
}

void lf_clip_free(lf_clip *m) {
    if (!m) return;
    if (m->layers)
        for (int64_t l = 0; l < m->cfg.layers; l++) {
            lf_clip_layer *y = &m->layers[l];
            void *ps[] = {y->ln1_w, y->ln1_b, y->qkv_own, y->qkv_b, y->out_b, y->ln2_w, y->ln2_b, y->fc1_b, y->fc2_b};
            for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) free(ps[i]);
        }
    free(m->layers);
    free(m->tok_emb);
    free(m->pos_emb);
    free(m->lnf_w);
    free(m->lnf_b);
    free(m->proj_w);
    lf_wts_free_list(m->wts, m->n_wts);
    free(m);
}

const lf_clip_config *lf_clip_get_config(const lf_clip *m) { return &m->cfg; }

/* Concatenate three (n, k) blocks into (3n, k). */
static float *cat3(loader *L, float *a, float *b, float *c, int64_t n) {
    float *r = NULL;
    if (a && b && c) {
        r = malloc((size_t)(3 * n) * sizeof *r);
        if (r) {
            memcpy(r, a, (size_t)n * sizeof *r);
            memcpy(r + n, b, (size_t)n * sizeof *r);
            memcpy(r + 2 * n, c, (size_t)n * sizeof *r);
        } else if (!L->st) {
            L->st = lf_err(LF_ERR_NOMEM, "%s: out of memory", lf_st_path(L->f));
        }
    }
    /* the index follows the rows into the fused copy (or forgets blocks about to be freed) */
    if (a) reindex(L, a, r, 0);
    if (b) reindex(L, b, r ? r + n : NULL, 0);
    if (c) reindex(L, c, r ? r + 2 * n : NULL, 0);
    free(a);
    free(b);
    free(c);
    return r;
}

static lf_status load_layer_hf(loader *L, lf_clip *m, int64_t l) {
    const int64_t w = m->cfg.width;
    lf_clip_layer *y = &m->layers[l];
    char s[160];
#define NAME(x) (snprintf(s, sizeof s, "text_model.encoder.layers.%lld.%s", (long long)l, x), s)
    y->ln1_w = load1(L, NAME("layer_norm1.weight"), w);
    y->ln1_b = load1(L, NAME("layer_norm1.bias"), w);
    lf_view qkv[3];
    loadw(L, NAME("self_attn.q_proj.weight"), w, w, &qkv[0]);
    loadw(L, NAME("self_attn.k_proj.weight"), w, w, &qkv[1]);
    loadw(L, NAME("self_attn.v_proj.weight"), w, w, &qkv[2]);
    fuse_qkv(L, y, qkv, w);
    float *qb = load1(L, NAME("self_attn.q_proj.bias"), w), *kb = load1(L, NAME("self_attn.k_proj.bias"), w),
          *vb = load1(L, NAME("self_attn.v_proj.bias"), w);
    y->qkv_b = cat3(L, qb, kb, vb, w);
    loadw(L, NAME("self_attn.out_proj.weight"), w, w, &y->out_w);
    y->out_b = load1(L, NAME("self_attn.out_proj.bias"), w);
    y->ln2_w = load1(L, NAME("layer_norm2.weight"), w);
    y->ln2_b = load1(L, NAME("layer_norm2.bias"), w);
    loadw(L, NAME("mlp.fc1.weight"), m->cfg.ff, w, &y->fc1_w);
    y->fc1_b = load1(L, NAME("mlp.fc1.bias"), m->cfg.ff);
    loadw(L, NAME("mlp.fc2.weight"), w, m->cfg.ff, &y->fc2_w);
    y->fc2_b = load1(L, NAME("mlp.fc2.bias"), w);
#undef NAME
    return L->st;
}

static lf_status load_layer_oc(loader *L, lf_clip *m, int64_t l) {
    const int64_t w = m->cfg.width;
    lf_clip_layer *y = &m->layers[l];
    char s[160];
#define NAME(x) (snprintf(s, sizeof s, "transformer.resblocks.%lld.%s", (long long)l, x), s)
    y->ln1_w = load1(L, NAME("ln_1.weight"), w);
    y->ln1_b = load1(L, NAME("ln_1.bias"), w);
    loadw(L, NAME("attn.in_proj_weight"), 3 * w, w, &y->qkv_w);
    y->qkv_b = load1(L, NAME("attn.in_proj_bias"), 3 * w);
    loadw(L, NAME("attn.out_proj.weight"), w, w, &y->out_w);
    y->out_b = load1(L, NAME("attn.out_proj.bias"), w);
    y->ln2_w = load1(L, NAME("ln_2.weight"), w);
    y->ln2_b = load1(L, NAME("ln_2.bias"), w);
    loadw(L, NAME("mlp.c_fc.weight"), m->cfg.ff, w, &y->fc1_w);
    y->fc1_b = load1(L, NAME("mlp.c_fc.bias"), m->cfg.ff);
    loadw(L, NAME("mlp.c_proj.weight"), w, m->cfg.ff, &y->fc2_w);
    y->fc2_b = load1(L, NAME("mlp.c_proj.bias"), w);
#undef NAME
    return L->st;
}

static lf_status clip_load(const lf_st_file *f, const char *prefix, const lf_clip_opts *opts, int map,
                           lf_clip **out);

lf_status lf_clip_load(const lf_st_file *f, const char *prefix, const lf_clip_opts *opts, lf_clip **out) {
    return clip_load(f, prefix, opts, 0, out);
}

lf_status lf_clip_load_mapped(const lf_st_file *f, const char *prefix, const lf_clip_opts *opts, lf_clip **out) {
    return clip_load(f, prefix, opts, 1, out);
}

static lf_status clip_load(const lf_st_file *f, const char *prefix, const lf_clip_opts *opts, int map,
                           lf_clip **out) {
    *out = NULL;
    loader L = {f, "", LF_OK, 0, NULL, 0, 0, map};
    if (strlen(prefix) + 16 >= sizeof L.prefix)
        return lf_err(LF_ERR_ARG, "%s: text encoder prefix too long: %s", lf_st_path(f), prefix);
    lf_clip *m = calloc(1, sizeof *m);
    if (!m) return lf_err(LF_ERR_NOMEM, "%s: out of memory", lf_st_path(f));
    lf_clip_config *c = &m->cfg;
    c->eps = 1e-5f;
    snprintf(L.prefix, sizeof L.prefix, "%s", prefix);
    const char *emb = "text_model.embeddings.token_embedding.weight";
    if (find(&L, emb)) {
        c->layout = LF_CLIP_LAYOUT_HF;
    } else if (find(&L, "embeddings.token_embedding.weight")) {
        c->layout = LF_CLIP_LAYOUT_HF; /* old SD1 files: no "text_model." level */
        L.strip_tm = 1;
    } else if (find(&L, "token_embedding.weight")) {
        c->layout = LF_CLIP_LAYOUT_OPENCLIP;
        emb = "token_embedding.weight";
    } else {
        lf_clip_free(m);
        return lf_err(LF_ERR_MODEL, "%s: no text encoder at \"%s\" (neither %stext_model.embeddings.token_embedding.weight "
                                    "nor %stoken_embedding.weight)", lf_st_path(f), prefix, prefix, prefix);
    }
    const int hf = c->layout == LF_CLIP_LAYOUT_HF;
    int64_t es[2] = {-1, -1};
    m->tok_emb = load(&L, emb, 2, es);
    {
        char nm[512];
        full_name(&L, emb, nm, sizeof nm);
        snprintf(m->emb_name, sizeof m->emb_name, "%s: %s", lf_st_path(f), nm);
    }
    c->vocab = es[0];
    c->width = es[1];
    int64_t ps[2] = {-1, c->width};
    m->pos_emb = load(&L, hf ? "text_model.embeddings.position_embedding.weight" : "positional_embedding", 2, ps);
    c->n_pos = ps[0];
    if (L.st) goto fail;
    for (;;) { /* count the layers */
        char s[160];
        if (hf) snprintf(s, sizeof s, "text_model.encoder.layers.%lld.layer_norm1.weight", (long long)c->layers);
        else snprintf(s, sizeof s, "transformer.resblocks.%lld.ln_1.weight", (long long)c->layers);
        if (!find(&L, s)) break;
        c->layers++;
    }
    if (c->layers == 0) {
        L.st = lf_err(LF_ERR_MODEL, "%s: text encoder at \"%s\" has no layers (%s0. missing)", lf_st_path(f), L.prefix,
                      hf ? "text_model.encoder.layers." : "transformer.resblocks.");
        goto fail;
    }
    {
        int64_t fs[2] = {-1, c->width};
        float *probe = load(&L, hf ? "text_model.encoder.layers.0.mlp.fc1.weight" : "transformer.resblocks.0.mlp.c_fc.weight",
                            2, fs);
        reindex(&L, probe, NULL, 0);
        free(probe);
        c->ff = fs[0];
        if (L.st) goto fail;
    }
    c->heads = opts && opts->heads > 0 ? opts->heads : c->width % 64 == 0 ? c->width / 64 : c->width / 8;
    if (c->heads <= 0 || c->width % c->heads) {
        L.st = lf_err(LF_ERR_MODEL, "%s: text encoder width %lld cannot be split into %lld heads (tensor %s)",
                      lf_st_path(f), (long long)c->width, (long long)c->heads, m->emb_name);
        goto fail;
    }
    c->act = opts && opts->act != LF_CLIP_ACT_AUTO ? opts->act : hf ? LF_CLIP_QUICK_GELU : LF_CLIP_GELU;
    m->layers = calloc((size_t)c->layers, sizeof *m->layers);
    if (!m->layers) {
        L.st = lf_err(LF_ERR_NOMEM, "%s: out of memory", lf_st_path(f));
        goto fail;
    }
    for (int64_t l = 0; l < c->layers && !L.st; l++) {
        if (hf) load_layer_hf(&L, m, l);
        else load_layer_oc(&L, m, l);
    }
    if (L.st) goto fail;
    m->lnf_w = load1(&L, hf ? "text_model.final_layer_norm.weight" : "ln_final.weight", c->width);
    m->lnf_b = load1(&L, hf ? "text_model.final_layer_norm.bias" : "ln_final.bias", c->width);
    if (find(&L, "text_projection.weight")) {
        int64_t s[2] = {-1, c->width};
        m->proj_w = load(&L, "text_projection.weight", 2, s);
        c->proj = s[0];
    } else if (!hf && find(&L, "text_projection")) {
        int64_t s[2] = {c->width, -1};
        float *p = load(&L, "text_projection", 2, s);
        if (p) {
            c->proj = s[1];
            m->proj_w = malloc((size_t)(c->proj * c->width) * sizeof *m->proj_w);
            if (!m->proj_w) L.st = lf_err(LF_ERR_NOMEM, "%s: out of memory", lf_st_path(f));
            else
                for (int64_t i = 0; i < c->width; i++)
                    for (int64_t j = 0; j < c->proj; j++) m->proj_w[j * c->width + i] = p[i * c->proj + j];
            reindex(&L, p, m->proj_w, 1);
            free(p);
        }
    }
    if (L.st) goto fail;
    lf_wts_sort(L.e, L.n);
    m->wts = L.e;
    m->n_wts = L.n;
    snprintf(m->prefix, sizeof m->prefix, "%s", prefix);
    snprintf(m->label, sizeof m->label, "%s", lf_st_path(f) ? lf_st_path(f) : "checkpoint");
    *out = m;
    return LF_OK;
fail:
    lf_wts_free_list(L.e, L.n);
    lf_clip_free(m);
    return L.st;
}

lf_te_family lf_clip_detect(const lf_st_file *f, const char **prefix1, const char **prefix2) {
    *prefix1 = *prefix2 = "";
    if (lf_st_find(f, "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight") &&
        lf_st_find(f, "conditioner.embedders.1.model.token_embedding.weight")) {
        *prefix1 = "conditioner.embedders.0.transformer.";
        *prefix2 = "conditioner.embedders.1.model.";
        return LF_TE_SDXL;
    }
    if (lf_st_find(f, "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight") ||
        lf_st_find(f, "cond_stage_model.transformer.embeddings.token_embedding.weight")) {
        *prefix1 = "cond_stage_model.transformer.";
        return LF_TE_SD1;
    }
    if (lf_st_find(f, "cond_stage_model.model.token_embedding.weight")) {
        *prefix1 = "cond_stage_model.model.";
        return LF_TE_SD2;
    }
    return LF_TE_NONE;
}

/* ---- refreshing weights (lf_live_weights.h) ------------------------------------------------------- */

static const char *clip_strip(const lf_clip *m, const char *key) {
    size_t pl = strlen(m->prefix);
    return strncmp(key, m->prefix, pl) == 0 ? key + pl : NULL;
}

int lf_clip_has_weight(const lf_clip *m, const char *key) {
    const char *k = clip_strip(m, key);
    return k && lf_wts_get(m->wts, m->n_wts, k) != NULL;
}

lf_status lf_clip_set_weight(lf_clip *m, const char *key, const lf_view *v) {
    const char *k = clip_strip(m, key);
    lf_wts_entry *e = k ? lf_wts_get(m->wts, m->n_wts, k) : NULL;
    if (!e) return lf_err(LF_ERR_MODEL, "%s: the text encoder at \"%s\" holds no weight \"%s\"", m->label, m->prefix, key);
    return lf_wts_refresh(e, v, m->label, key);
}

uint64_t lf_clip_weight_bytes(const lf_clip *m) {
    if (!m) return 0;
    int64_t a = 0, b = 0; /* the index lists every weight (the fused q/k/v by its rows) */
    lf_wts_list_bytes(m->wts, m->n_wts, &a, &b);
    return (uint64_t)(a + b);
}

uint64_t lf_clip_owned_bytes(const lf_clip *m) {
    int64_t a = 0;
    if (m) lf_wts_list_bytes(m->wts, m->n_wts, &a, NULL);
    return (uint64_t)a;
}

void lf_clip_drop_pages(lf_clip *m) {
    if (m) lf_wts_list_drop_pages(m->wts, m->n_wts);
}

lf_status lf_clip_own_weights(lf_clip *m) { return m ? lf_wts_list_own(m->wts, m->n_wts, m->label) : LF_OK; }

lf_status lf_clip_bind_weight(lf_clip *m, const char *key, const lf_view *v, int from_file) {
    const char *k = clip_strip(m, key);
    lf_wts_entry *e = k ? lf_wts_get(m->wts, m->n_wts, k) : NULL;
    if (!e) return lf_err(LF_ERR_MODEL, "%s: the text encoder at \"%s\" holds no weight \"%s\"", m->label, m->prefix, key);
    return lf_wts_bind(e, v, from_file, m->label, key);
}
