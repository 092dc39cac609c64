/* lf_emphasis.h: A1111 prompt emphasis: the attention syntax, 75-token chunks, per-token weights.
 *
 * Syntax (AUTOMATIC1111 modules/prompt_parser.py parse_prompt_attention, reproduced rule by rule):
 *   (text)          weight x 1.1            [text]        weight / 1.1
 *   (text:1.3)      weight x 1.3 (the number: [+-]?[.0-9]+, spaces allowed around it before ')')
 *   \( \) \[ \] \\  the literal character;  a lone '\' is dropped;  ':' elsewhere is text
 *   unclosed ( or [ applies its factor up to the end; a stray ) or ] is text
 *   BREAK           (upper case, a whole word, surrounding whitespace removed) ends the chunk
 *   adjacent spans with equal weight are merged; an empty prompt is one empty span.
 * Weights are products of doubles as in Python. Deviation: a number A1111's float() would reject
 * ("1.2.3") makes the whole ":1.2.3)" literal text here (A1111 raises an error). BREAK's word
 * boundary treats every non-ASCII byte as a word character (Python: Unicode \w).
 *
 * Chunks (modules/sd_hijack_clip.py TextConditionalModel.tokenize_line): each span is tokenized on
 * its own (no BOS/EOS); tokens are appended to the current chunk with the span's weight; a full chunk
 * (75 tokens) is closed; if a comma (",</w>") was among its last `comma_backtrack` (A1111 option
 * comma_padding_backtrack, default 20) tokens when the next token would overflow it, the tokens after
 * that comma move to the next chunk. BREAK closes the current chunk (even an empty one). A closed chunk
 * becomes the 77-id window BOS + tokens + EOS-padding (weights 1 on BOS/EOS/padding); models padding
 * with another id (SDXL TE2, SD2: 0) get it after the first EOS of each window. The prompt always
 * yields at least one chunk.
 * Textual-inversion embeddings (lf_embeddings.h), when opts->emb is set: at each token of a span, an
 * embedding whose name's tokens start there (after the comma backtrack and the full-chunk check, as
 * A1111) takes `vectors` places of id 0 with the span's weight, in the next chunk if they do not fit
 * in this one, and is recorded as a fix (chunk, offset) whose vectors replace the token embeddings of
 * window positions offset + 1 .. (lf_clip_encode_chunks); its name's tokens are skipped. As in A1111, a
 * comma backtrack moves the placeholder ids but not the fix.
 *
 * Weighting of the encoder output z (77, D) of each chunk (modules/sd_emphasis.py):
 *   Original: m0 = mean(z); z[t, :] *= w[t]; z *= m0 / mean(z)      (mean over all 77*D values)
 *   No norm:  z[t, :] *= w[t]
 *   Ignore:   z unchanged (syntax parsed, weights ignored);  None: syntax not parsed, z unchanged.
 * The pooled output (SDXL) is never weighted.
 */
#ifndef LF_EMPHASIS_H
#define LF_EMPHASIS_H

#include <stddef.h>
#include <stdint.h>

#include "lorafuse/lf_embeddings.h"
#include "lorafuse/lf_status.h"
#include "lorafuse/lf_tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lf_emph_mode {
    LF_EMPH_ORIGINAL = 0, /* A1111 default */
    LF_EMPH_NO_NORM,
    LF_EMPH_IGNORE,
    LF_EMPH_NONE
} lf_emph_mode;

/* One parsed span; BREAK is the span ("BREAK", -1) exactly as in A1111. */
typedef struct lf_emph_span {
    char *text;
    double weight;
} lf_emph_span;

typedef struct lf_emph_spans {
    lf_emph_span *v;
    size_t n;
} lf_emph_spans;

/* Parse the attention syntax (mode LF_EMPH_NONE: the whole prompt is one span of weight 1). */
lf_status lf_emphasis_parse(const char *prompt, lf_emph_mode mode, lf_emph_spans *out);
void lf_emph_spans_free(lf_emph_spans *s);

typedef struct lf_chunk_opts {
    lf_emph_mode mode;
    int comma_backtrack; /* A1111 comma_padding_backtrack (default 20; 0 = off) */
    int32_t pad;         /* padding id after the first EOS: EOS (SD1, SDXL TE1) or 0 (SDXL TE2, SD2) */
    lf_embeddings *emb;  /* textual-inversion embeddings, or NULL */
    int emb_part;        /* which vectors: LF_EMB_ONE (one-encoder model), LF_EMB_CLIP_L, LF_EMB_CLIP_G (SDXL) */
} lf_chunk_opts;

enum { LF_EMB_ONE = 0, LF_EMB_CLIP_L, LF_EMB_CLIP_G };

/* An embedding placed in a chunk: window `chunk`, its vectors from window position offset + 1 on. */
typedef struct lf_emb_fix {
    size_t chunk, offset;
    const float *vec;    /* (vectors, width) */
    int64_t vectors, width;
    const char *path;    /* for messages */
} lf_emb_fix;

/* A1111 defaults for a model padding with `pad`. */
lf_chunk_opts lf_chunk_opts_default(int32_t pad);

typedef struct lf_prompt_chunks {
    size_t n;            /* chunks (>= 1) */
    int32_t *ids;        /* (n, 77) */
    float *mult;         /* (n, 77) weights */
    size_t token_count;  /* A1111's count shown in the UI: 75 per full chunk + tokens of the last */
    lf_emb_fix *fixes;   /* embeddings placed, in prompt order */
    size_t n_fixes;
} lf_prompt_chunks;

lf_status lf_prompt_chunk(const lf_tokenizer *tok, const char *prompt, const lf_chunk_opts *opts,
                          lf_prompt_chunks *out);
void lf_prompt_chunks_free(lf_prompt_chunks *c);

/* Weight one chunk's encoder output z (T, D) by mult (T) in place, per `mode` (see above). */
void lf_emphasis_apply(float *z, const float *mult, int64_t T, int64_t D, lf_emph_mode mode);

#ifdef __cplusplus
}
#endif
#endif
