/* lf_tokenizer.h: the CLIP byte-level BPE tokenizer of Stable Diffusion's text encoders.
 *
 * Reproduces transformers' CLIPTokenizer (the slow one, which diffusers' SD/SDXL pipelines and
 * A1111's CLIP wrappers use; in an environment without ftfy, as the reference one) exactly:
 *   1. text is split at the literal special tokens "<|startoftext|>" / "<|endoftext|>";
 *   2. each piece: drop NUL, U+FFFD and every category-C code point except \t\n\r; whitespace
 *      (Zs, \t\n\r) -> ' '; spaces around CJK ideographs; NFC; split at whitespace; lower-case
 *      each word (Python str.lower: U+0130 -> "i\u0307", final sigma); join with ' ';
 *   3. pre-tokenize with <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+
 *      (case-insensitive, leftmost alternative first; unmatched characters, i.e. spaces, are skipped);
 *   4. each pre-token: its UTF-8 bytes through the bytes_to_unicode map, "</w>" appended to the
 *      last symbol, then BPE: repeatedly merge every occurrence (left to right) of the adjacent
 *      pair with the lowest merge rank until no pair has a rank;
 *   5. symbols -> ids through the vocabulary.
 * Invalid UTF-8 bytes become U+FFFD (and so are dropped). The Unicode tables come from the
 * oracle's own data (scripts/gen_clip_unicode.py).
 *
 * Vocabulary and merges come from either
 *   - the CLIP BPE file bpe_simple_vocab_16e6.txt.gz (OpenAI CLIP / open_clip, MIT; committed as
 *     models/clip/bpe_simple_vocab_16e6.txt.gz): merges = lines 1 .. 48894 after the header line,
 *     vocab = 256 byte symbols, the same + "</w>", one token per merge, "<|startoftext|>" (49406),
 *     "<|endoftext|>" (49407): 49408 ids, as open_clip and the HF vocab.json of every SD model;
 *   - a transformers/diffusers tokenizer folder: vocab.json + merges.txt (same merge-count limit).
 *
 * Windows: a text encoder sees 77 ids = BOS, up to 75 tokens, EOS, padding. SD1.x and SDXL TE1 pad
 * with EOS (CLIPTokenizer pad_token "<|endoftext|>"); SDXL TE2 (tokenizer_2, pad_token "!") and
 * SD2.x (OpenCLIP) pad with id 0. Longer prompts are split into several windows by lf_emphasis.h.
 */
#ifndef LF_TOKENIZER_H
#define LF_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "lorafuse/lf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LF_CLIP_CTX 77          /* ids per window */
#define LF_CLIP_CHUNK 75        /* prompt tokens per window */
#define LF_CLIP_BPE_FILE "bpe_simple_vocab_16e6.txt.gz"

typedef struct lf_tokenizer lf_tokenizer;

/* A growable list of token ids (optionally with a weight per id). */
typedef struct lf_tokens {
    int32_t *ids;
    size_t n, cap;
} lf_tokens;

void lf_tokens_free(lf_tokens *t);

/* Load from a bpe_simple_vocab_16e6.txt.gz (gzip) or the same file uncompressed. */
lf_status lf_tokenizer_load_bpe(const char *path, lf_tokenizer **out);
/* Load from vocab.json + merges.txt. */
lf_status lf_tokenizer_load_files(const char *vocab_json, const char *merges_txt, lf_tokenizer **out);
/* Load dir/vocab.json + dir/merges.txt (a diffusers `tokenizer/` or `tokenizer_2/` folder). */
lf_status lf_tokenizer_load_dir(const char *dir, lf_tokenizer **out);
/* The installed CLIP BPE file: $LF_CLIP_BPE if set, else models/clip/bpe_simple_vocab_16e6.txt.gz
 * relative to the working directory, else the same under the source tree lorafuse was built from.
 * Never touches the network. */
lf_status lf_tokenizer_load_default(lf_tokenizer **out);
void lf_tokenizer_free(lf_tokenizer *t);

size_t lf_tokenizer_vocab_size(const lf_tokenizer *t);
int32_t lf_tokenizer_bos(const lf_tokenizer *t);   /* "<|startoftext|>" (49406) */
int32_t lf_tokenizer_eos(const lf_tokenizer *t);   /* "<|endoftext|>" (49407) */
/* Id of a vocabulary entry ("," + "</w>" -> 267), -1 if absent. */
int32_t lf_tokenizer_id(const lf_tokenizer *t, const char *token);
/* Vocabulary entry of an id (byte-encoded symbols, as in vocab.json) or NULL. */
const char *lf_tokenizer_token(const lf_tokenizer *t, int32_t id);

/* Append the ids of `text` (no BOS/EOS, no truncation) to out. */
lf_status lf_tokenizer_encode(const lf_tokenizer *t, const char *text, lf_tokens *out);

/* One window: out[0] = BOS, then min(n, 75) ids, EOS, then pad up to 77 (longer input is truncated
 * as CLIPTokenizer(truncation=True, max_length=77) does). */
void lf_tokenizer_window(const lf_tokenizer *t, const int32_t *ids, size_t n, int32_t pad,
                         int32_t out[LF_CLIP_CTX]);

#ifdef __cplusplus
}
#endif
#endif
