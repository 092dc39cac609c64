/* lf_png.h: the image files `lorafuse generate` writes: 8-bit RGB PNG (libpng) carrying A1111's
 * `parameters` tEXt chunk, and a reader for both (tests, tools).
 *
 * Infotext (AUTOMATIC1111 modules/processing.py create_infotext, infotext_utils.quote):
 *   PROMPT
 *   Negative prompt: NEG                              (line omitted when NEG is empty)
 *   Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x512,
 *   Model hash: 0123456789, Model: NAME, VAE hash: 0123456789, VAE: FILE, Clip skip: 2, RNG: NV,
 *   Lora hashes: "a: 0123456789ab, b: ...", Version: lorafuse 0.1.0
 * in A1111's field order (1.9+: the sampler and its schedule type apart; Clip skip only when > 1, RNG
 * only when not "GPU", VAE fields only with a VAE of its own); a value containing ',', ':' or a
 * newline is written as a JSON string (quote()), others as is. PROMPT and NEG are written as
 * typed, newlines included, as A1111 does; a line of them that starts (after whitespace, any case)
 * with "Negative prompt:" or "Steps:" gets a space before the colon, so that no prompt can forge the
 * negative prompt or a parameters line (CLIP tokenizes both spellings the same). The model and LoRA hashes are
 * lf_hash.h's; LoRA hashes are listed as "NAME: HASH" with ':' and ',' removed from NAME
 * (extra_networks_lora.py). The infotext is in host/io/infotext.c, the PNG files in host/io/png_write.c.
 *
 * Files: lf_png_save_next writes DIR/NNNNN-SEED.png, NNNNN = 1 + the largest leading number of the
 * files in DIR (A1111 get_next_sequence_number, 5 digits); the image is written to a temporary file
 * "NAME.tmp.XXXXXX" in DIR (host/base/file.h: removed on any error, and on a signal in a program whose
 * handlers call its cleanup), then hard-linked to its name, which fails instead of replacing an
 * existing file (the number is then bumped and the link retried), so an existing file is never
 * overwritten.
 */
#ifndef LF_PNG_H
#define LF_PNG_H

#include <stddef.h>
#include <stdint.h>

#include "lorafuse/lf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- infotext --------------------------------------------------------------------------------- */
typedef struct lf_infotext {
    const char *prompt;
    const char *negative;      /* NULL or "": no line */
    int steps;
    const char *sampler;       /* A1111 (1.9+) sampler name, "DPM++ 2M" */
    const char *schedule_type; /* A1111 "Schedule type", "Karras"; NULL: omitted */
    double cfg;
    int64_t seed;
    int width, height;
    const char *model_hash;    /* NULL: omitted */
    const char *model;         /* checkpoint name without directory and extension; NULL: omitted */
    const char *vae_hash;      /* --vae: 10 hex digits of its SHA-256; NULL: omitted */
    const char *vae;           /* --vae: its file name; NULL: omitted */
    int clip_skip;             /* written when > 1 */
    const char *rng;           /* "CPU" / "NV"; NULL: omitted (A1111's default "GPU") */
    const char *lora_hashes;   /* "name: hash, ..." or NULL */
    const char *version;       /* "lorafuse 0.1.0" */
    const char *ti_hashes;     /* textual-inversion embeddings, "name: hash, ..." or NULL (after Lora hashes) */
} lf_infotext;

/* The parameters text (malloc'd) or NULL (out of memory). */
char *lf_infotext_format(const lf_infotext *p);

/* A parsed parameters text (A1111 infotext_utils.parse_generation_parameters: the last line holds
 * "Key: value" pairs, a line starting with "Negative prompt:" starts the negative prompt, JSON-quoted
 * values are unquoted). */
typedef struct lf_infotext_kv {
    char *key, *value;
    size_t raw_len;            /* length of the value as written (0: nothing after the colon) */
} lf_infotext_kv;

typedef struct lf_infotext_parsed {
    char *prompt, *negative;
    lf_infotext_kv *kv;
    size_t n_kv;
} lf_infotext_parsed;

lf_status lf_infotext_parse(const char *text, lf_infotext_parsed *out);
/* Value of a key or NULL. */
const char *lf_infotext_get(const lf_infotext_parsed *p, const char *key);
void lf_infotext_parsed_free(lf_infotext_parsed *p);


/* ---- PNG -------------------------------------------------------------------------------------- */
/* Write rgb (h rows of w*3 bytes) to path with text chunks keys[i] = texts[i] (UTF-8): a tEXt chunk
 * (Latin-1, as PNG requires) when every character of the text is in Latin-1, else an iTXt chunk (UTF-8),
 * as PIL's PngInfo.add_text does for A1111; through a temporary file renamed into place:
 * an existing regular file is replaced, anything else (a device, a FIFO, a directory) refused. */
lf_status lf_png_write(const char *path, const uint8_t *rgb, int w, int h, const char *const *keys,
                       const char *const *texts, size_t n_text);

/* The bytes lf_png_write would write, into *buf (malloc'd, *len bytes). */
lf_status lf_png_encode_mem(const uint8_t *rgb, int w, int h, const char *const *keys, const char *const *texts,
                            size_t n_text, uint8_t **buf, size_t *len);

/* Write DIR/NNNNN-SEED.png (see above); *path_out (malloc'd) gets the name used. DIR is created if
 * missing (one level). */
lf_status lf_png_save_next(const char *dir, int64_t seed, const uint8_t *rgb, int w, int h,
                           const char *parameters, char **path_out);

/* Read a PNG back as 8-bit RGB (rgb may be NULL) and the text of chunk `key` (tEXt/zTXt/iTXt; *text
 * NULL when absent; text may be NULL; tEXt and zTXt are Latin-1 and come back as UTF-8). All outputs
 * malloc'd. */
lf_status lf_png_read(const char *path, uint8_t **rgb, int *w, int *h, const char *key, char **text);
/* lf_png_read from len bytes in memory. */
lf_status lf_png_read_mem(const uint8_t *buf, size_t len, uint8_t **rgb, int *w, int *h, const char *key,
                          char **text);

#ifdef __cplusplus
}
#endif
#endif
