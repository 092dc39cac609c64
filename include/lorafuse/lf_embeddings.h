/* lf_embeddings.h: textual-inversion embeddings (docs/prompt-tags.md "Textual-inversion embeddings"), as
 * AUTOMATIC1111 reads and uses them (modules/textual_inversion/textual_inversion.py, sd_hijack_clip.py):
 *
 *   - The embeddings are the files of a directory and its subdirectories; an embedding's name is its file
 *     stem. Its name, tokenized like prompt text, is matched against the tokens of each prompt span: where
 *     the tokens of a name start (the longest name when several do), the embedding's vectors take the
 *     place of those tokens (lf_emphasis.h "Chunks").
 *   - A .safetensors file holds one tensor (kohya `emb_params`, `string_to_param.*`, a diffusers concept:
 *     (vectors, width), or (width) for one vector), or `clip_l` and `clip_g` (SDXL: (vectors, 768) and
 *     (vectors, 1280)). .pt and .bin files are pickles: listed, and refused with a message when a prompt
 *     uses them (they are never opened).
 *   - An embedding has at most 75 vectors (one chunk).
 *   - TI hashes (A1111 infotext): "name: first 12 hex digits of the file's SHA-256", ':' and ',' dropped
 *     from the name (sd_hijack_clip.py).
 * Limits: LF_EMB_MAX_FILES files, directories LF_EMB_MAX_DEPTH deep.
 */
#ifndef LF_EMBEDDINGS_H
#define LF_EMBEDDINGS_H

#include <stddef.h>
#include <stdint.h>

#include "lorafuse/lf_status.h"
#include "lorafuse/lf_tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LF_EMB_DIR_DEFAULT "models/embeddings"
#define LF_EMB_MAX_FILES 10000
#define LF_EMB_MAX_DEPTH 8
#define LF_EMB_MAX_VECTORS 75

typedef struct lf_embedding {
    char *name;        /* file stem: the word that inserts it */
    char *path;
    int pickle;        /* .pt / .bin: never opened, refused when used */
    int32_t *ids;      /* the name tokenized */
    size_t n_ids;
    int loaded;
    int parts;         /* 1: one tensor (one text encoder), 2: clip_l and clip_g (SDXL) */
    int64_t vectors;
    int64_t width[2];  /* part 0 (the tensor, or clip_l), part 1 (clip_g) */
    float *vec[2];     /* (vectors, width[k]) */
    int used;          /* matched in a prompt since the set was opened */
} lf_embedding;

typedef struct lf_embeddings {
    lf_embedding *v;   /* sorted by path */
    size_t n;
} lf_embeddings;

/* List the embeddings under dir (nothing is read but the names). A missing dir is an empty set when
 * missing_ok, else an error. */
lf_status lf_embeddings_open(const char *dir, int missing_ok, const lf_tokenizer *tok, lf_embeddings **out);
void lf_embeddings_free(lf_embeddings *db);

/* Read e's vectors (once). Errors name the file and what it holds. */
lf_status lf_embedding_load(lf_embedding *e);

/* The embedding whose name's tokens start at ids[pos] (the longest), loaded and marked used; *out NULL
 * when none. Two files whose names tokenize the same are an error naming both; a pickle is refused. */
lf_status lf_embeddings_match(lf_embeddings *db, const int32_t *ids, size_t n, size_t pos, lf_embedding **out);

/* A1111's "TI hashes" value of the used embeddings ("a: 0123456789ab, b: ..."), each hashed once, in
 * path order; *out NULL when none was used. */
lf_status lf_embeddings_hashes(const lf_embeddings *db, char **out);

#ifdef __cplusplus
}
#endif
#endif
