/* lf_strength.h: per-step strength of a parsed `<lora:...>` tag (docs/prompt-tags.md, docs/semantics.md P10).
 *
 * Rules:
 *   - Steps are 1-based, t = 1..N. A step-number position is that step (@0 = step 1); a fraction f or a
 *     percentage p (f = p/100) is step 1 + floor(f*(N-1) + 0.5).
 *   - hold (default): the value of the latest key frame at or before t; before the first key frame 0;
 *     when several key frames land on one step the later one wins. linear: interpolated between the
 *     key frames around t, the last value held after the last key frame, 0 before the first.
 *   - Key frames past step N are a warning (never reached); key frames whose steps go backwards once
 *     rounded (only possible when step numbers and fractions are mixed) are an error.
 *   - Precedence: te <- S <- 1; te1, te2 <- te (SDXL only); unet <- S <- te <- 1; in/mid/out <- unet.
 *   - Block groups (LDM keys): in = input_blocks.* + time_embed.* + label_emb.*; mid = middle_block.*;
 *     out = output_blocks.* + out.*.
 *   - LBW: a vector of 17/26 (SD1.x, SD2.x) or 12/20 (SDXL) values, or a preset (built-in ALL, NONE,
 *     INS, IND, INALL, MIDD, OUTD, OUTS, OUTALL, ALL0.5 from hako-mikan/sd-webui-lora-block-weight,
 *     all 17 values, plus user presets); entries are mapped to blocks by name, blocks a short vector
 *     leaves out get 0; BASE multiplies the text-encoder strength, a numbered block's factor
 *     multiplies the UNet strength of every layer in it, layers outside numbered blocks (time_embed,
 *     label_emb, out.*) keep the plain UNet strength.
 *
 * Data shapes: block ids 0..26 (lf_block); an lf_strength is a tag resolved against a family, the
 * presets and N, with borrowed pointers into the tag (the tag must outlive it).
 */
#ifndef LF_STRENGTH_H
#define LF_STRENGTH_H

#include <stddef.h>

#include "lorafuse/lf_prompt_tags.h"
#include "lorafuse/lf_status.h"
#include "lorafuse/lf_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* UNet blocks: IN00..IN11 = 0..11, M00 = 12, OUT00..OUT11 = 13..24, then the layers outside numbered
 * blocks: LF_BLK_OTHER (time_embed, label_emb; group in) and LF_BLK_OTHER_OUT (out.*; group out). */
enum {
    LF_BLK_IN00 = 0,
    LF_BLK_M00 = 12,
    LF_BLK_OUT00 = 13,
    LF_BLK_OTHER = 25,
    LF_BLK_OTHER_OUT = 26,
    LF_BLK_COUNT = 27,
    LF_BLK_NONE = -1 /* not a UNet key */
};

typedef enum lf_group { LF_GROUP_IN = 0, LF_GROUP_MID, LF_GROUP_OUT } lf_group;

/* Block of a checkpoint key, with or without the "model.diffusion_model." prefix; LF_BLK_NONE for keys
 * outside the UNet. Unknown UNet sub-keys count as LF_BLK_OTHER. */
int lf_block_of_key(const char *key);
/* "IN00".."IN11", "M00", "OUT00".."OUT11", "other", "other_out". */
const char *lf_block_name(int block);
lf_group lf_block_group(int block);
/* 1 if the block exists in the family's UNet (SDXL: IN00-IN08, M00, OUT00-OUT08; others all 12). */
int lf_block_in_family(int block, lf_family f);

/* Step a key frame position lands on for a run of n_steps (>= 1). May exceed n_steps. */
int lf_sched_step(lf_pos_kind kind, double pos, int n_steps);
/* Value of a schedule at step t of n_steps (the schedule must have n_kf >= 1); O(key frames). */
float lf_sched_eval(const lf_sched *s, lf_ramp ramp, int t, int n_steps);
/* out[t - 1] = lf_sched_eval(s, ramp, t, n_steps) for every t = 1..n_steps, bit for bit, in
 * O(key frames + steps). */
lf_status lf_sched_fill(const lf_sched *s, lf_ramp ramp, int n_steps, float *out);

/* ---- LBW presets ---------------------------------------------------------------------------- */

typedef struct lf_lbw_presets lf_lbw_presets;

/* Limits of a presets file (docs/limits.md "Prompts and tags"). */
#define LF_LBW_MAX_PRESETS 1000
#define LF_LBW_MAX_PRESET_BYTES (1 << 20)

/* Built-in presets, plus, when text is not NULL, the user presets in it: "NAME:v,v,..." lines (12, 17,
 * 20 or 26 values), blank lines and '#' comments skipped; a user preset replaces a built-in of the same
 * name. label names the text in error messages ("FILE:LINE: ..."). At most LF_LBW_MAX_PRESETS user
 * presets and LF_LBW_MAX_PRESET_BYTES bytes. */
lf_status lf_lbw_presets_parse(const char *text, const char *label, lf_lbw_presets **out);
/* Same, reading the user presets from a file (path NULL: built-ins only). */
lf_status lf_lbw_presets_load(const char *path, lf_lbw_presets **out);
void lf_lbw_presets_free(lf_lbw_presets *p);
/* Values and length of a preset, NULL if unknown. */
const float *lf_lbw_preset_find(const lf_lbw_presets *p, const char *name, int *n);
/* Comma-separated list of preset names into buf. */
const char *lf_lbw_preset_names(const lf_lbw_presets *p, char *buf, size_t n);

/* Expand a vector of length 12, 17, 20 or 26 to BASE + per-block factors (blocks the vector leaves out
 * get 0). Returns 0 for any other length. */
int lf_lbw_expand(const float *v, int n, float *base, float blk[LF_BLK_OTHER]);

/* ---- a tag resolved for a model and a run ----------------------------------------------------- */

typedef struct lf_strength {
    const lf_tag *tag;
    lf_family family;
    int n_steps;
    lf_ramp ramp;
    const lf_sched *te1, *te2; /* NULL: 1.0 */
    const lf_sched *unet;      /* NULL: 1.0 */
    const lf_sched *grp[3];    /* in, mid, out; NULL: 1.0 */
    int has_lbw;
    float base;                /* BASE factor (1 without lbw) */
    float blk[LF_BLK_OTHER];   /* per numbered block factor (1 without lbw) */
    float *steps;              /* owned: te1, te2, unet, in, mid, out at steps 1..n_steps (6 rows of n_steps) */
} lf_strength;

/* Resolve the precedence rules, check te1/te2 against the family, the lbw vector length or preset, the
 * key frame order after rounding to n_steps, and fill the value of every schedule at every step (so
 * that lf_strength_at is a lookup; free with lf_strength_free). Key frames past the last step give one
 * warning per tag in warn (may be NULL). Errors are LF_ERR_ARG "prompt col C: TAG: ..."; on error
 * nothing needs freeing. */
lf_status lf_strength_resolve(const lf_tag *tag, lf_family family, const lf_lbw_presets *presets, int n_steps,
                              lf_strength *out, lf_msgs *warn);
/* Release what lf_strength_resolve allocated (safe on a zeroed or already freed struct). */
void lf_strength_free(lf_strength *s);

/* Coefficient at step t for a layer of component comp (LF_COMP_TE1/TE2: text encoders; UNET and OTHER:
 * UNet rules) in block (lf_block_of_key; LF_BLK_NONE counts as LF_BLK_OTHER). */
float lf_strength_at(const lf_strength *s, lf_component comp, int block, int t);

/* Text-encoder strength at step t (comp LF_COMP_TE1 or LF_COMP_TE2). */
float lf_strength_te(const lf_strength *s, lf_component comp, int t);

/* 1 if every component and every block is 0 at every step (the adapter is dropped, not loaded). */
int lf_strength_all_zero(const lf_strength *s);

#ifdef __cplusplus
}
#endif
#endif
