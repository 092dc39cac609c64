/* lf_png_info.h: what A1111 reads out of a `parameters` text, as JSON (`lorafuse png-info --json`).
 * Source: host/pipeline/png_info.c; golden: tests/data/pnginfo/a1111_parse.json, made by A1111's own
 * functions (scripts/golden/a1111_infotext.py); docs/png-info.md.
 */
#ifndef LF_PNG_INFO_H
#define LF_PNG_INFO_H

#include "lorafuse/lf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A parameters text as one line of JSON (malloc'd):
 *   {"fields": {...}, "lora_hashes": {"NAME": "HASH", ...}}
 * fields: what A1111 1.10's infotext_utils.parse_generation_parameters returns with its default options
 * and no styles defined: "Prompt", "Negative prompt", every "Key: value" of the last line (JSON-quoted
 * values unquoted; a "WxH" value split into "Key-1" and "Key-2"; a key with nothing after its colon
 * dropped), then its defaults for absent keys ("Clip skip" "1", "RNG" "GPU", "Hires schedule type", "Schedule type"
 * "Automatic", the hires, inpaint, schedule-sigma, VAE and FP8 fields), "Hires prompt" emptied when it
 * is the prompt, "Emphasis" "Original" when a prompt uses (), [] or weights, the old hires-fix size
 * restore and the version back-compat flags ("Version: v1.6.0" ...). Strings stay strings, as in
 * A1111 (numbers only where A1111 puts numbers: its defaults and the restored sizes).
 * lora_hashes: the "Lora hashes" field split as A1111's Lora extension does (lora_script.infotext_pasted). */
lf_status lf_infotext_json(const char *text, char **json);

#ifdef __cplusplus
}
#endif
#endif
