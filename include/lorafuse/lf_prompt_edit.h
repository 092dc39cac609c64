/* lf_prompt_edit.h: A1111 prompt editing and alternation (docs/prompt-tags.md "Prompt editing"): the text
 * the text encoders see at each step of a run, as AUTOMATIC1111's prompt_parser.py computes it
 * (get_learned_conditioning_prompt_schedules, then reconstruct_cond_batch at the sampler's 0-based step).
 *
 *   [FROM:TO:WHEN]  FROM until step WHEN, then TO        [TO:WHEN]  nothing, then TO
 *   [FROM::WHEN]    FROM, then nothing                   [A|B|...]  A at step 1, B at the next, ... in turn
 *   WHEN: an integer is a step; a number with a '.' is a fraction of the run (WHEN * N, truncated);
 *   either is capped at N. Everything else ((a:1.2), [a], \( ...) is left as written, for the emphasis
 *   parser (lf_emphasis.h). A prompt the grammar cannot read (a '|' outside brackets, a trailing '\')
 *   is one text, as written.
 * Step t (1-based) of N uses the schedule entry A1111 picks at sampler step t - 1: the first end >= t - 1
 * among N, every WHEN >= 1, and every step when the prompt alternates; the text is the prompt evaluated
 * at that end.
 *
 * Limits (docs/limits.md "Prompts and tags"): brackets nested at most LF_PROMPT_EDIT_MAX_DEPTH deep; the
 * distinct texts of one prompt at most LF_PROMPT_EDIT_MAX_BYTES bytes together.
 *
 * Data shapes: texts[0..n_texts) in the order of their first step; at[t - 1] indexes the text of step t.
 */
#ifndef LF_PROMPT_EDIT_H
#define LF_PROMPT_EDIT_H

#include <stddef.h>

#include "lorafuse/lf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LF_PROMPT_EDIT_MAX_DEPTH 256
#define LF_PROMPT_EDIT_MAX_BYTES (64 << 20)

typedef struct lf_prompt_sched {
    int n_steps;
    char **texts;
    size_t n_texts;
    size_t *at;   /* n_steps entries */
} lf_prompt_sched;

/* The schedule of text over n_steps (>= 1) steps. Errors (LF_ERR_ARG): nesting or size limits. */
lf_status lf_prompt_sched_build(const char *text, int n_steps, lf_prompt_sched *out);
/* Release (safe on a zeroed or freed struct). */
void lf_prompt_sched_free(lf_prompt_sched *s);

#ifdef __cplusplus
}
#endif
#endif
