/* fuzz_prompt_tags.c: libFuzzer target for the `<lora:...>` tag scanner and the schedule evaluator
 * (lf_prompt_tags.h, lf_strength.h; docs/prompt-tags.md).
 *
 * The input (NUL-terminated copy, at most 8 KiB) is parsed as a prompt. A failure must leave no result
 * and carry a "prompt col N: " message. On success the invariants of the scanner are checked: the
 * cleaned prompt is no longer than the input, every tag's text starts with "<lora:" and ends with '>',
 * names are non-empty, schedules have key frames, lbw lengths are valid, lbw is never combined with
 * in/mid/out. Every tag is then resolved for SD1 and SDXL at a step count taken from the input, and its
 * strength is evaluated for every component and block at every step. The same bytes are also parsed as
 * an LBW presets file (fuzz_lbw_presets.c fuzzes that format on its own). Error messages hold no control
 * byte (quoted input is escaped). The bytes are parsed in the loractl dialect too (tags resolved the same
 * way), and the cleaned prompt is scheduled for prompt editing (lf_prompt_edit.h): every step has a text
 * no longer than the prompt, or the error is one of the documented limits. An invariant violation aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lorafuse/lf_prompt_edit.h"
#include "lorafuse/lf_strength.h"
#include "lorafuse/lf_prompt_tags.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile float lf_fuzz_sink;

static void lf_fuzz_tag(const lf_tag *t, int n_steps) {
    static const lf_family fams[2] = {LF_FAMILY_SD1, LF_FAMILY_SDXL};
    for (int f = 0; f < 2; f++) {
        lf_strength s;
        lf_msgs warn = {0};
        if (lf_strength_resolve(t, fams[f], NULL, n_steps, &s, &warn) != LF_OK) {
            if (strncmp(lf_last_error(), "prompt col ", 11)) abort();
            lf_msgs_free(&warn);
            continue;
        }
        float acc = 0;
        for (int step = 1; step <= n_steps; step++) {
            acc += lf_strength_at(&s, LF_COMP_TE1, LF_BLK_NONE, step) + lf_strength_at(&s, LF_COMP_TE2, LF_BLK_NONE, step);
            for (int b = -1; b < LF_BLK_COUNT; b++) acc += lf_strength_at(&s, LF_COMP_UNET, b, step);
        }
        acc += (float)lf_strength_all_zero(&s);
        lf_fuzz_sink = acc;
        lf_strength_free(&s);
        lf_msgs_free(&warn);
    }
}

/* The prompt-editing schedule of the cleaned prompt: a text per step, none longer than the prompt. */
static void lf_fuzz_edit(const char *clean, int n_steps) {
    lf_prompt_sched s;
    if (lf_prompt_sched_build(clean, n_steps, &s) != LF_OK) {
        if (!strstr(lf_last_error(), "(docs/limits.md)")) abort();
        return;
    }
    for (int t = 0; t < n_steps; t++)
        if (s.at[t] >= s.n_texts || strlen(s.texts[s.at[t]]) > strlen(clean)) abort();
    lf_prompt_sched_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 8192) return 0;
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    lf_prompt *p = NULL;
    if (lf_prompt_parse(text, &p) != LF_OK) {
        if (p) abort();
        if (strncmp(lf_last_error(), "prompt col ", 11)) abort();
        for (const char *m = lf_last_error(); *m; m++) /* quoted input is escaped */
            if ((unsigned char)*m < 0x20 || *m == 0x7f) abort();
    } else {
        if (strlen(p->clean) > strlen(text)) abort();
        int n_steps = 1 + (int)(size % 37);
        for (size_t i = 0; i < p->n_tags; i++) {
            const lf_tag *t = &p->tags[i];
            size_t tl = strlen(t->text);
            if ((strncmp(t->text, "<lora:", 6) && strncmp(t->text, "<lyco:", 6)) || t->text[tl - 1] != '>' ||
                !t->name[0] || t->col < 1)
                abort();
            if (t->lbw_n && t->lbw_n != 12 && t->lbw_n != 17 && t->lbw_n != 20 && t->lbw_n != 26) abort();
            for (int k = 0; k < LF_TK_COUNT; k++)
                if (t->v[k].n_kf && !t->v[k].kf) abort();
            if ((t->lbw_n || t->lbw_preset) && (t->v[LF_TK_IN].n_kf || t->v[LF_TK_MID].n_kf || t->v[LF_TK_OUT].n_kf))
                abort();
            lf_fuzz_tag(t, n_steps);
        }
        lf_fuzz_edit(p->clean, n_steps);
        lf_prompt_free(p);
    }
    if (lf_prompt_parse_dialect(text, LF_DIALECT_LORACTL, &p) == LF_OK) {
        for (size_t i = 0; i < p->n_tags; i++) lf_fuzz_tag(&p->tags[i], 1 + (int)(size % 37));
        lf_prompt_free(p);
    } else if (p || strncmp(lf_last_error(), "prompt col ", 11)) {
        abort();
    }
    lf_lbw_presets *ps = NULL;
    if (lf_lbw_presets_parse(text, "fuzz", &ps) == LF_OK) lf_lbw_presets_free(ps);
    else if (ps) abort();
    lf_err_clear();
    free(text);
    return 0;
}
