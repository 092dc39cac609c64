/* embeddings.c: textual-inversion embeddings (lf_embeddings.h): the files of a directory, their names
 * tokenized for matching, vectors read on first use, A1111's TI hashes.
 *
 * Reading a file follows create_embedding_from_data of A1111 for what safetensors can hold: clip_l and
 * clip_g together are an SDXL embedding (vectors = rows of clip_g, clip_l must have as many); otherwise
 * the file must hold exactly one tensor, (vectors, width) or (width) for one vector. Values become f32.
 * Matching (find_embedding_at_position): the names whose tokens start at the position, the longest
 * first; two different files with the same tokens (names differing in case, or one stem in two
 * subfolders) are ambiguous, reported rather than picked by directory order.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lorafuse/lf_embeddings.h"
#include "lorafuse/lf_hash.h"
#include "lorafuse/lf_safetensors.h"
#include "lorafuse/lf_tensor.h"
#include "host/base/strbuf.h"
#include "host/base/text.h"
#include "host/base/util.h"


void lf_embeddings_free(lf_embeddings *db) {
    if (!db) return;
    for (size_t i = 0; i < db->n; i++) {
        lf_embedding *e = &db->v[i];
        free(e->name);
        free(e->path);
        free(e->ids);
        free(e->vec[0]);
        free(e->vec[1]);
    }
    free(db->v);
    free(db);
}

typedef struct {
    lf_embeddings *db;
    size_t cap;
    const lf_tokenizer *tok;
} lf_emb_walk;

/* One file: its stem, kind and tokens, when its extension is one of an embedding. */
static lf_status lf_emb_add(lf_emb_walk *w, const char *path) {
    const char *base = lf_basename(path);
    static const char *const ext[3] = {".safetensors", ".pt", ".bin"};
    int k = -1;
    for (int i = 0; i < 3 && k < 0; i++)
        if (lf_has_suffix(base, ext[i]) && strlen(base) > strlen(ext[i])) k = i;
    if (k < 0) return LF_OK;
    if (w->db->n >= LF_EMB_MAX_FILES)
        return lf_err(LF_ERR_ARG, "more than %d embedding files under the embeddings directory (docs/limits.md)",
                      LF_EMB_MAX_FILES);
    if (lf_grow(&w->db->v, &w->cap, w->db->n + 1)) return lf_err(LF_ERR_NOMEM, "out of memory");
    lf_embedding *e = &w->db->v[w->db->n++];
    memset(e, 0, sizeof *e);
    e->pickle = k > 0;
    e->name = lf_strndup(base, strlen(base) - strlen(ext[k]));
    e->path = lf_strndup(path, strlen(path));
    if (!e->name || !e->path) return lf_err(LF_ERR_NOMEM, "out of memory");
    lf_tokens t = {0};
    lf_status st = lf_tokenizer_encode(w->tok, e->name, &t);
    if (st) return lf_err_wrap(st, "%s: ", path);
    e->ids = t.ids;
    e->n_ids = t.n;
    return LF_OK;
}

static lf_status lf_emb_walk_dir(lf_emb_walk *w, const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d) return lf_err(LF_ERR_IO, "%s: cannot read the embeddings directory", dir);
    lf_status st = LF_OK;
    struct dirent *de;
    lf_sbuf p = {0};
    while (st == LF_OK && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        lf_sb_reset(&p);
        lf_sb_printf(&p, "%s/%s", dir, de->d_name);
        if (p.oom) {
            st = lf_err(LF_ERR_NOMEM, "out of memory");
            break;
        }
        struct stat sb;
        if (stat(p.s, &sb) != 0) continue; /* a dangling link: nothing to read */
        if (S_ISDIR(sb.st_mode)) {
            if (depth + 1 < LF_EMB_MAX_DEPTH) st = lf_emb_walk_dir(w, p.s, depth + 1);
        } else if (S_ISREG(sb.st_mode)) {
            st = lf_emb_add(w, p.s);
        }
    }
    closedir(d);
    lf_sb_free(&p);
    return st;
}

static int lf_emb_cmp_path(const void *a, const void *b) {
    return strcmp(((const lf_embedding *)a)->path, ((const lf_embedding *)b)->path);
}

lf_status lf_embeddings_open(const char *dir, int missing_ok, const lf_tokenizer *tok, lf_embeddings **out) {
    *out = NULL;
    lf_embeddings *db = calloc(1, sizeof *db);
    if (!db) return lf_err(LF_ERR_NOMEM, "out of memory");
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        if (missing_ok) {
            *out = db;
            return LF_OK;
        }
        free(db);
        char q[LF_ESC_PART];
        return lf_err(LF_ERR_IO, "%s: no such embeddings directory", lf_esc(q, sizeof q, dir, strlen(dir)));
    }
    lf_emb_walk w = {db, 0, tok};
    lf_status st = lf_emb_walk_dir(&w, dir, 0);
    if (st) {
        lf_embeddings_free(db);
        return st;
    }
    if (db->n) qsort(db->v, db->n, sizeof *db->v, lf_emb_cmp_path);
    *out = db;
    return LF_OK;
}

/* ---- reading --------------------------------------------------------------------------------- */

static lf_status lf_emb_part(lf_embedding *e, const lf_st_tensor *t, int part) {
    int64_t rows = t->ndim == 1 ? 1 : t->shape[0], width = t->shape[t->ndim - 1];
    if (t->ndim < 1 || t->ndim > 2 || rows < 1 || width < 1)
        return lf_err(LF_ERR_FORMAT, "%s: tensor '%s' has %d dimensions; an embedding is (vectors, width)", e->path,
                      t->name, t->ndim);
    if (rows > LF_EMB_MAX_VECTORS)
        return lf_err(LF_ERR_FORMAT, "%s: tensor '%s' has %lld vectors, more than the %d tokens of one chunk",
                      e->path, t->name, (long long)rows, LF_EMB_MAX_VECTORS);
    if (part == 1 && rows != e->vectors)
        return lf_err(LF_ERR_FORMAT, "%s: clip_l has %lld vectors, clip_g %lld", e->path, (long long)e->vectors,
                      (long long)rows);
    float *v = malloc((size_t)(rows * width) * sizeof *v);
    if (!v) return lf_err(LF_ERR_NOMEM, "out of memory");
    lf_view view = lf_st_view(t);
    lf_status st = lf_view_to_f32(&view, v);
    if (st) {
        free(v);
        return lf_err_wrap(st, "%s: tensor '%s': ", e->path, t->name);
    }
    e->vec[part] = v;
    e->width[part] = width;
    e->vectors = rows;
    return LF_OK;
}

lf_status lf_embedding_load(lf_embedding *e) {
    if (e->loaded) return LF_OK;
    if (e->pickle)
        return lf_err(LF_ERR_FORMAT, "%s: embedding '%s' is a pickle file, which lorafuse does not read, for safety; "
                      "convert it to .safetensors", e->path, e->name);
    lf_st_file *f = NULL;
    lf_status st = lf_st_open(e->path, &f);
    if (st) return st;
    const lf_st_tensor *l = lf_st_find(f, "clip_l"), *g = lf_st_find(f, "clip_g");
    if (l && g) {
        e->parts = 2;
        st = lf_emb_part(e, l, 0);
        if (!st) st = lf_emb_part(e, g, 1);
    } else if (lf_st_count(f) == 1) {
        e->parts = 1;
        st = lf_emb_part(e, lf_st_at(f, 0), 0);
    } else {
        lf_sbuf names = {0};
        for (size_t i = 0; i < lf_st_count(f) && i < 8; i++)
            lf_sb_printf(&names, "%s'%s'", i ? ", " : "", lf_st_at(f, i)->name);
        st = lf_err(LF_ERR_FORMAT, "%s: an embedding file holds one tensor (emb_params, string_to_param.*, ...) or "
                    "clip_l and clip_g (SDXL); this one holds %zu: %s%s", e->path, lf_st_count(f),
                    names.s ? names.s : "", lf_st_count(f) > 8 ? ", ..." : "");
        lf_sb_free(&names);
    }
    lf_st_close(f);
    if (st) {
        free(e->vec[0]);
        free(e->vec[1]);
        e->vec[0] = e->vec[1] = NULL;
        return st;
    }
    e->loaded = 1;
    return LF_OK;
}

/* ---- matching -------------------------------------------------------------------------------- */

lf_status lf_embeddings_match(lf_embeddings *db, const int32_t *ids, size_t n, size_t pos, lf_embedding **out) {
    *out = NULL;
    if (!db) return LF_OK;
    lf_embedding *best = NULL, *tie = NULL;
    for (size_t i = 0; i < db->n; i++) {
        lf_embedding *e = &db->v[i];
        if (!e->n_ids || e->n_ids > n - pos || memcmp(e->ids, ids + pos, e->n_ids * sizeof *ids)) continue;
        if (!best || e->n_ids > best->n_ids) best = e, tie = NULL;
        else if (e->n_ids == best->n_ids) tie = e;
    }
    if (!best) return LF_OK;
    if (tie)
        return lf_err(LF_ERR_ARG, "the prompt word '%s' names two embeddings (their names read as the same tokens): %s "
                      "and %s; rename or move one", best->name, best->path, tie->path);
    lf_status st = lf_embedding_load(best);
    if (st) return st;
    best->used = 1;
    *out = best;
    return LF_OK;
}

lf_status lf_embeddings_hashes(const lf_embeddings *db, char **out) {
    *out = NULL;
    if (!db) return LF_OK;
    lf_sbuf b = {0};
    for (size_t i = 0; i < db->n; i++) {
        if (!db->v[i].used) continue;
        char hex[65];
        lf_status st = lf_sha256_file(db->v[i].path, 0, hex);
        if (st) {
            lf_sb_free(&b);
            return st;
        }
        if (b.n) lf_sb_str(&b, ", ");
        for (const char *c = db->v[i].name; *c; c++) /* A1111 drops ':' and ',' from the name */
            if (*c != ':' && *c != ',') lf_sb_put(&b, c, 1);
        lf_sb_printf(&b, ": %.12s", hex);
    }
    if (b.oom) {
        lf_sb_free(&b);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    *out = b.s;
    return LF_OK;
}
