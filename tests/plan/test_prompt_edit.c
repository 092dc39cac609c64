/* test_prompt_edit.c: A1111 prompt editing and alternation (lf_prompt_edit.h) against
 * tests/data/prompt/prompt_edit.tsv, written by scripts/golden/prompt_golden.py with AUTOMATIC1111's own
 * prompt_parser.py: the text of every step of every case, byte for byte. Also the limits, and that
 * texts are kept once however many steps use them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_test.h"

#include "lorafuse/lf_prompt_edit.h"

static void strip_nl(char *s) {
    size_t n = strlen(s);
    if (n && s[n - 1] == '\n') s[n - 1] = '\0';
}

static void test_golden(void) {
    FILE *f = fopen("tests/data/prompt/prompt_edit.tsv", "r");
    LF_CHECK(f != NULL, "tests/data/prompt/prompt_edit.tsv missing");
    if (!f) return;
    static char line[1 << 16], prompt[1 << 16];
    int cases = 0, n = 0, ok = 0;
    lf_prompt_sched ps;
    memset(&ps, 0, sizeof ps);
    while (fgets(line, sizeof line, f)) {
        strip_nl(line);
        char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        if (!t2) continue;
        if (line[0] == 'P') {
            lf_prompt_sched_free(&ps);
            n = atoi(t1 + 1);
            snprintf(prompt, sizeof prompt, "%s", t2 + 1);
            ok = lf_prompt_sched_build(prompt, n, &ps) == LF_OK;
            LF_CHECK(ok, "'%s' (%d steps): %s", prompt, n, lf_last_error());
            cases++;
            continue;
        }
        int t = atoi(t1 + 1);
        if (!ok || t < 1 || t > n) continue;
        const char *got = ps.texts[ps.at[t - 1]];
        LF_CHECK(!strcmp(got, t2 + 1), "'%s', %d steps, step %d:\n  got  '%s'\n  want '%s'", prompt, n, t, got, t2 + 1);
    }
    lf_prompt_sched_free(&ps);
    fclose(f);
    LF_CHECK(cases >= 35, "only %d prompt cases read", cases);
}

static void test_shapes(void) {
    lf_prompt_sched ps;
    LF_CHECK(lf_prompt_sched_build("a [b|c] d", 10000, &ps) == LF_OK && ps.n_texts == 2 && ps.at[0] == 0 &&
                 ps.at[1] == 0 && ps.at[2] == 1 && ps.at[9999] == 0, "alternation over 10000 steps keeps 2 texts");
    lf_prompt_sched_free(&ps);
    LF_CHECK(lf_prompt_sched_build("plain (x:1.2) [y]", 5, &ps) == LF_OK && ps.n_texts == 1 &&
                 !strcmp(ps.texts[0], "plain (x:1.2) [y]"), "no editing: one text as written");
    lf_prompt_sched_free(&ps);
    static char deep[2048];
    size_t k = 0;
    for (int i = 0; i < 300; i++) deep[k++] = '[';
    deep[k++] = 'a';
    for (int i = 0; i < 300; i++) deep[k++] = ']';
    deep[k] = '\0';
    LF_CHECK(lf_prompt_sched_build(deep, 5, &ps) == LF_ERR_ARG &&
                 !strcmp(lf_last_error(), "prompt: brackets nested more than 256 deep (docs/limits.md)"),
             "nesting limit: %s", lf_last_error());
    LF_CHECK(lf_prompt_sched_build("a", 0, &ps) == LF_ERR_ARG, "0 steps");
    /* many brackets that are no construct: each is tried once */
    static char many[120001];
    for (size_t i = 0; i < 120000; i += 5) memcpy(many + i, "[a:b]", 5);
    many[120000] = '\0';
    LF_CHECK(lf_prompt_sched_build(many, 20, &ps) == LF_OK && ps.n_texts == 1 && !strcmp(ps.texts[0], many),
             "24000 brackets as text");
    lf_prompt_sched_free(&ps);
    for (size_t i = 0; i < 120000; i += 4) memcpy(many + i, "[a:b", 4);
    LF_CHECK(lf_prompt_sched_build(many, 20, &ps) == LF_ERR_ARG && strstr(lf_last_error(), "nested more than 256"),
             "30000 unclosed brackets: the nesting limit");
}

int main(void) {
    test_golden();
    test_shapes();
    return lf_test_finish();
}
