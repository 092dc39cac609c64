/* lf_prompt_tags.h: the `<lora:...>` prompt tags (docs/prompt-tags.md), parsed by a hand-written
 * scanner (no regex) into tag structs; the cleaned prompt is the text with every tag removed.
 *
 * Grammar (docs/prompt-tags.md "Form", "Values and schedules"); `<lyco:` is the same tag (A1111's
 * alias), and the loractl dialect also reads `<loractl:`:
 *   <lora:NAME[:S[:UNET[:DYN]]][:KEY=V]...>   (positional values as A1111: te (and unet), unet, dyn)
 *   KEY   := te | te1 | te2 | unet | in | mid | out | lbw | dyn | ramp    (anything else is an error)
 *   value := number | key_frame ("," key_frame)*      key_frame := number "@" position
 *   position := integer (step, 1-based, @0 = step 1) | number "%" | decimal in [0, 1] (fraction)
 * The loractl dialect (lf_tag_dialect, docs/prompt-tags.md "Dialects") reads values as loractl's
 * sorted_positions / calculate_weight: entries separated by ',' or ';', '@' or '~' before the
 * position, positions <= 1 (the last one decides) fractions of the run, linear interpolation with
 * clamping; keys te, unet, dyn; hr, hrte, hrunet refused by name (no hires pass).
 * Whitespace around fields, values, ',' and '@' is ignored; a `>` ends the tag, a `<` inside a tag is
 * an error. Every malformed tag is LF_ERR_ARG with the message
 *   "prompt col C: <lora:...>: what was expected"
 * where C is the 1-based column (in characters, UTF-8 aware) of the tag's '<' and the message quotes
 * the offending part of the tag.
 *
 * Numbers (strengths, positions, lbw entries) follow one grammar everywhere (docs/limits.md "Numbers"):
 * decimal with an optional sign, decimal point and exponent; no hex, inf or nan; a strength or lbw
 * entry beyond the range of a 32-bit float is an "out of range" error, not a syntax error.
 * Text quoted in messages has its control bytes, invalid UTF-8 and bidi marks escaped.
 *
 * Limits (docs/limits.md "Prompts and tags"), each with its own message: LF_PROMPT_MAX_BYTES,
 * LF_PROMPT_MAX_TAGS, LF_TAG_MAX_KEYFRAMES, LF_TAG_MAX_DYN. The scanner is linear in the prompt.
 *
 * Data shapes: an lf_prompt owns the cleaned text and an array of lf_tag in prompt order; each tag
 * holds one lf_sched per strength key (n_kf = 0: not given), the ramp, dyn, and the lbw vector or
 * preset name as written (checked against the model family later, lf_strength.h).
 */
#ifndef LF_PROMPT_TAGS_H
#define LF_PROMPT_TAGS_H

#include <stddef.h>

#include "lorafuse/lf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Limits: bytes of a prompt (just under the 128 KiB Linux passes as one command-line argument, so the
 * CLI reaches the limit, not E2BIG), tags in one prompt, key frames in one tag (all its keys together),
 * dyn. */
#define LF_PROMPT_MAX_BYTES 128000
#define LF_PROMPT_MAX_TAGS 10000
#define LF_TAG_MAX_KEYFRAMES 10000
#define LF_TAG_MAX_DYN 1048576

/* How values are read: lorafuse's own rules, or loractl's (cheald/sd-webui-loractl, lib/utils.py). */
typedef enum lf_tag_dialect { LF_DIALECT_LORAFUSE = 0, LF_DIALECT_LORACTL } lf_tag_dialect;

/* "lorafuse", "loractl". */
const char *lf_tag_dialect_name(lf_tag_dialect d);
/* The dialect named s; LF_ERR_ARG (naming the choices) for anything else. */
lf_status lf_tag_dialect_parse(const char *s, lf_tag_dialect *out);

/* Strength keys, in the order of the precedence table of docs/prompt-tags.md. LF_TK_S is the positional
 * strength. */
typedef enum lf_tag_key {
    LF_TK_S = 0,
    LF_TK_TE,
    LF_TK_TE1,
    LF_TK_TE2,
    LF_TK_UNET,
    LF_TK_IN,
    LF_TK_MID,
    LF_TK_OUT,
    LF_TK_COUNT
} lf_tag_key;

/* "S", "te", "te1", "te2", "unet", "in", "mid", "out". */
const char *lf_tag_key_name(lf_tag_key k);

typedef enum lf_pos_kind {
    LF_POS_STEP = 0, /* integer step number as written (0 means step 1) */
    LF_POS_FRACTION, /* decimal in [0, 1] */
    LF_POS_PERCENT,  /* number in [0, 100] followed by '%' */
    LF_POS_LORACTL   /* loractl dialect: the number as written (a fraction when the schedule's last is <= 1) */
} lf_pos_kind;

typedef struct lf_keyframe {
    float value;
    lf_pos_kind kind;
    double pos;   /* as written: step number, fraction or percentage */
    int col;      /* 1-based prompt column of the key frame */
    double value_d; /* the value as written, in double (loractl interpolates in double) */
} lf_keyframe;

/* A value: a plain number (constant = 1, one key frame whose position is unused) or a schedule. */
typedef struct lf_sched {
    size_t n_kf;      /* 0: the key was not given */
    lf_keyframe *kf;
    int constant;     /* 1: plain number, kf[0].value everywhere */
    int col;          /* column of the value */
} lf_sched;

/* LF_RAMP_LORACTL: every tag of the loractl dialect (np.interp over its key frames, lf_strength.h). */
typedef enum lf_ramp { LF_RAMP_HOLD = 0, LF_RAMP_LINEAR, LF_RAMP_LORACTL } lf_ramp;

#define LF_LBW_MAX 26

typedef struct lf_tag {
    char *name;                 /* NAME, trimmed */
    char *text;                 /* the whole tag as written, "<lora:...>" */
    int col;                    /* column of its '<' */
    lf_sched v[LF_TK_COUNT];
    lf_ramp ramp;
    int dyn;                    /* 0: full rank */
    int lbw_n;                  /* 0: no lbw; else the vector's length (12, 17, 20 or 26) */
    float lbw[LF_LBW_MAX];
    char *lbw_preset;           /* lbw=NAME (a preset), else NULL */
    int lbw_col;
    lf_tag_dialect dialect;     /* how its values were read */
} lf_tag;

typedef struct lf_prompt {
    char *clean;                /* prompt text without the tags (whitespace at each cut collapsed, ends trimmed) */
    lf_tag *tags;
    size_t n_tags;
} lf_prompt;

/* Parse a prompt (lorafuse dialect). On error *out is NULL and lf_last_error() has the
 * "prompt col C: TAG: ..." message. */
lf_status lf_prompt_parse(const char *text, lf_prompt **out);
/* Same, reading the tags' values in dialect d. */
lf_status lf_prompt_parse_dialect(const char *text, lf_tag_dialect d, lf_prompt **out);
void lf_prompt_free(lf_prompt *p);

/* 1 when s[0..n) can name an LBW preset in a tag (lbw=NAME): letters, digits, '_', '.', '-', '+', and
 * not a number (a number there is a one-entry vector). Preset files accept only such names. */
int lf_lbw_name_ok(const char *s, size_t n);

/* "prompt col C: TAG: " + message, as LF_ERR_ARG (used by later stages that check a tag against the
 * model, the number of steps or the LoRA directory). */
lf_status lf_tag_err(const lf_tag *t, int col, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* 1 if two tags mean the same (name, every value and key frame, ramp, dyn, lbw), however they are
 * spelled ("<lora:a:.1>" and "<lora:a:0.1>"); columns and text are not compared. Identical tags are
 * one adapter counted several times (lf_step_plan.h). */
int lf_tag_same(const lf_tag *a, const lf_tag *b);

/* A growing list of warning lines (positions past the last step, ...). */
typedef struct lf_msgs {
    char **v;
    size_t n;
} lf_msgs;

void lf_msgs_add(lf_msgs *m, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void lf_msgs_free(lf_msgs *m);

#ifdef __cplusplus
}
#endif
#endif
