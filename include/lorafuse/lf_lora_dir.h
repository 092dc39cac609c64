/* lf_lora_dir.h: find the file a `<lora:NAME>` tag names in a LoRA directory, and its trigger words.
 *
 * Rules (docs/prompt-tags.md "Names"): NAME is, in this order of precedence,
 *   1. a path relative to the directory, with or without ".safetensors" ("styles/ink", "ink.safetensors"),
 *   2. a file stem anywhere under the directory ("ink" for "styles/ink.safetensors"),
 *   3. an `ss_output_name` metadata alias (read only when 1 and 2 find nothing).
 * Several files at the first level that matches: an error listing the candidates; nothing found: an
 * error listing the closest names (case-insensitive edit distance over paths, stems and aliases).
 * The directory is scanned recursively for "*.safetensors" (regular files, names not starting with '.'):
 *   - symbolic links are followed, also out of the directory (A1111 and SD.Next walk with
 *     followlinks=True, and users link LoRA folders from other disks); with opts.confine a link whose
 *     target lies outside the directory (realpath) is refused: a linked folder is not entered (an
 *     unknown-name error counts them), a linked file is listed but resolving to it fails, and its
 *     metadata is not read. The directory itself may be a link.
 *   - every real directory is scanned once (tracked by device and inode), so link loops end; the real
 *     tree is scanned before the folders reached through links, so a folder reachable both ways is
 *     listed under its real path; names are taken in sorted order, so the result does not depend on
 *     the file system's order.
 *   - limits: LF_LORA_DIR_MAX_DEPTH levels below the directory (deeper folders are not entered),
 *     relative paths under LF_LORA_DIR_MAX_PATH bytes (longer ones are skipped), at most
 *     LF_LORA_DIR_MAX_ENTRIES entries read in all (files and folders of any kind): past it the scan
 *     stops and every resolve fails saying so.
 * Error lists show at most LF_LORA_DIR_SHOW_CLOSEST closest names and LF_LORA_DIR_SHOW_AMBIGUOUS
 * candidates, each cut to LF_LORA_DIR_SHOWN_BYTES bytes.
 *
 * Data shapes: an lf_lora_dir holds the sorted relative paths of the files it found (and their
 * aliases once read); resolved paths are DIR + "/" + relative path, caller-owned.
 */
#ifndef LF_LORA_DIR_H
#define LF_LORA_DIR_H

#include <stddef.h>

#include "lorafuse/lf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LF_LORA_DIR_DEFAULT "models/lora"
#define LF_LORA_DIR_MAX_DEPTH 8
#define LF_LORA_DIR_MAX_PATH 4096
#define LF_LORA_DIR_MAX_ENTRIES 100000
#define LF_LORA_DIR_SHOW_CLOSEST 5
#define LF_LORA_DIR_SHOW_AMBIGUOUS 12
#define LF_LORA_DIR_SHOWN_BYTES 120

typedef struct lf_lora_dir lf_lora_dir;

typedef struct lf_lora_dir_opts {
    int confine;  /* refuse symbolic links whose target lies outside the directory (a server's setting;
                   * 0, the command line's default: follow them) */
} lf_lora_dir_opts;

/* Scan dir (NULL: LF_LORA_DIR_DEFAULT); opts may be NULL (links followed). A missing directory is not
 * an error here (it holds no files); resolving a name in it then says so. Errors: LF_ERR_NOMEM. */
lf_status lf_lora_dir_scan(const char *dir, const lf_lora_dir_opts *opts, lf_lora_dir **out);
/* lf_lora_dir_scan(dir, NULL, out). */
lf_status lf_lora_dir_open(const char *dir, lf_lora_dir **out);
void lf_lora_dir_free(lf_lora_dir *d);
size_t lf_lora_dir_count(const lf_lora_dir *d);
/* Relative path of file i (sorted). */
const char *lf_lora_dir_at(const lf_lora_dir *d, size_t i);

/* Resolve NAME to a file path (malloc'd into *path). LF_ERR_ARG with "no LoRA named ..., closest: ...",
 * "'NAME' is ambiguous in DIR: ...", "'NAME' is ..., a symbolic link leading out of the LoRA directory:
 * refused" (confined) or "... holds more than N entries" (no "prompt col" prefix: the caller adds the tag). */
lf_status lf_lora_dir_resolve(lf_lora_dir *d, const char *name, char **path);

/* The trigger words an adapter's metadata and sidecar files hold, in this order and as written (empty
 * words kept: `lorafuse inspect` lists them all):
 *   1. the folder names of `ss_tag_frequency` (tag_frequency: that metadata value, a JSON object;
 *      may be NULL) without their "N_" repeat prefix ("10_sks dog" -> "sks dog");
 *   2. from the sidecars STEM.json, then STEM.civitai.info (STEM: path without its extension), the
 *      "activation text" when not empty and every string of "trainedWords".
 * A missing sidecar, or one that is not JSON or is over 1 MiB, adds nothing. *words is a malloc'd
 * array of malloc'd strings (free with lf_lora_words_free). LF_ERR_NOMEM is the only error. */
lf_status lf_lora_trigger_words(const char *tag_frequency, const char *path, char ***words, size_t *n);
/* The non-empty trigger words of the adapter file at path (its ss_tag_frequency metadata and its
 * sidecars, as above). Errors: those of opening the file (lf_safetensors.h). */
lf_status lf_lora_triggers(const char *path, char ***words, size_t *n);
void lf_lora_words_free(char **words, size_t n);

/* prompt + ", word" for every trigger word of the given files that the prompt does not already contain
 * (case-insensitive), each word once. *out is malloc'd. */
lf_status lf_lora_append_triggers(const char *prompt, const char *const *paths, size_t n, char **out);

#ifdef __cplusplus
}
#endif
#endif
