/* test_tag_dialects.c: the loractl dialect of prompt tags (docs/prompt-tags.md "Dialects") against
 * tests/data/prompt/loractl.tsv, written by scripts/golden/prompt_golden.py with loractl's own
 * sorted_positions / calculate_weight: every te and UNet strength of every step, bit for bit (float).
 * Also: its separators and keys, the errors where loractl would drop text silently, the 2-step case
 * loractl fails on, and the precedence unet <- te of params_to_weights.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_test.h"

#include "lorafuse/lf_strength.h"

/* Resolve one loractl-dialect tag for SD1.x and n steps; 0 on failure (message in lf_last_error). */
static int resolve(const char *text, int n, lf_prompt **p, lf_strength *s) {
    *p = NULL;
    if (lf_prompt_parse_dialect(text, LF_DIALECT_LORACTL, p) != LF_OK) return 0;
    if ((*p)->n_tags != 1 || lf_strength_resolve(&(*p)->tags[0], LF_FAMILY_SD1, NULL, n, s, NULL) != LF_OK) {
        lf_prompt_free(*p);
        *p = NULL;
        return 0;
    }
    return 1;
}

static void test_golden(void) {
    FILE *f = fopen("tests/data/prompt/loractl.tsv", "r");
    LF_CHECK(f != NULL, "tests/data/prompt/loractl.tsv missing");
    if (!f) return;
    static char line[1 << 16];
    int cases = 0;
    while (fgets(line, sizeof line, f)) {
        char *tab1 = strchr(line, '\t'), *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
        if (!tab2) continue;
        *tab1 = *tab2 = '\0';
        int n = atoi(tab1 + 1);
        static char tag[sizeof line + 16];
        snprintf(tag, sizeof tag, "<lora:x:%s>", line);
        lf_prompt *p;
        lf_strength s;
        if (!resolve(tag, n, &p, &s)) {
            LF_CHECK(0, "%s (%d steps): %s", tag, n, lf_last_error());
            continue;
        }
        char *v = tab2 + 1;
        for (int t = 1; t <= n; t++) {
            float want = strtof(v, &v);
            float te = lf_strength_te(&s, LF_COMP_TE1, t), un = lf_strength_at(&s, LF_COMP_UNET, LF_BLK_M00, t);
            LF_CHECK(te == want && un == want, "%s, %d steps, step %d: te %.9g unet %.9g, loractl %.9g", tag, n, t,
                     (double)te, (double)un, (double)want);
        }
        lf_strength_free(&s);
        lf_prompt_free(p);
        cases++;
    }
    fclose(f);
    LF_CHECK(cases >= 30, "only %d loractl cases read", cases);
}

static float at(const char *text, int n, lf_component c, int t) {
    lf_prompt *p;
    lf_strength s;
    if (!resolve(text, n, &p, &s)) {
        LF_CHECK(0, "%s: %s", text, lf_last_error());
        return -99.0f;
    }
    float v = c == LF_COMP_TE1 ? lf_strength_te(&s, c, t) : lf_strength_at(&s, c, LF_BLK_IN00 + 1, t);
    lf_strength_free(&s);
    lf_prompt_free(p);
    return v;
}

static void expect_err(const char *text, int n, const char *msg) {
    lf_prompt *p;
    lf_strength s;
    LF_CHECK(!resolve(text, n, &p, &s), "%s should fail", text);
    LF_CHECK(strstr(lf_last_error(), msg) != NULL, "%s:\n  got '%s'\n  want it to contain '%s'", text, lf_last_error(),
             msg);
}

static void test_keys(void) {
    /* params_to_weights: te <- positional 1, te=; unet <- positional 2, unet=, else te (after te=) */
    LF_CHECK(at("<lora:a:0.5:te=0.25>", 5, LF_COMP_UNET, 3) == 0.25f, "unet follows te= in loractl");
    LF_CHECK(at("<lora:a:0.5:0.75>", 5, LF_COMP_UNET, 3) == 0.75f && at("<lora:a:0.5:0.75>", 5, LF_COMP_TE1, 3) == 0.5f,
             "positional te and unet");
    LF_CHECK(at("<lora:a:unet=0@0;1@1>", 6, LF_COMP_TE1, 6) == 1.0f && at("<lora:a:unet=0~0;1~1>", 6, LF_COMP_UNET, 6) == 1.0f,
             "te stays 1 when only unet has a schedule");
    LF_CHECK(at("<loractl:a:0@0,1@1>", 6, LF_COMP_UNET, 4) == 0.5f, "<loractl: alias, step 4 of 6 = x 0.5");
    LF_CHECK(at("<lyco:a:1:0.5:8>", 6, LF_COMP_UNET, 1) == 0.5f, "lyco alias, dyn positional");
    expect_err("<lora:a:hr=1>", 10, "'hr' is loractl's strength for a hires pass; lorafuse has no hires pass");
    expect_err("<lora:a:1:hrunet=0.5>", 10, "'hrunet' is loractl's strength for a hires pass");
    expect_err("<lora:a:hrte=0.5>", 10, "'hrte' is loractl's strength");
    expect_err("<lora:a:in=1>", 10, "unknown key 'in' in the loractl dialect (keys: te, unet, dyn;");
    expect_err("<lora:a:1,0.5@3>", 10, "the first entry has no position, so loractl would use its value alone");
    expect_err("<lora:a:1@2@3>", 10, "entry '1@2@3' has more than one '@' or '~'");
    expect_err("<lora:a:1@x>", 10, "'x' in entry '1@x' is not a number");
    expect_err("<lora:a:0@0,1@1>", 2, "which is 0 at 2 steps (loractl fails there)");
    LF_CHECK(at("<lora:a:0@0,1@3>", 2, LF_COMP_UNET, 2) == 0.0f, "step positions at 2 steps are fine");
    LF_CHECK(at("<lora:a:0@0,1@1>", 1, LF_COMP_UNET, 1) == 0.0f, "1 step: x = 0 / -1");
}

int main(void) {
    test_golden();
    test_keys();
    return lf_test_finish();
}
