/* test_infotext.c: prompts in A1111's `parameters` text (host/io/infotext.c, lf_png.h).
 *
 * Prompts go in as A1111's create_infotext writes them, newlines included, and read back exactly
 * through the parser that mirrors A1111's parse_generation_parameters. The one exception, a line that
 * starts (after whitespace, any case, after any line break Python knows) with "Negative prompt:" or
 * "Steps:", gets a space before its colon, so a crafted prompt or negative prompt can neither start
 * the negative prompt early nor forge a parameters line: the parsed prompt, negative prompt and
 * parameters stay what was written. Look-alikes that A1111 would not misread are left alone.
 */
#include "lf_test.h"

#include "lorafuse/lf_png.h"

static lf_infotext info(const char *prompt, const char *negative) {
    lf_infotext it;
    memset(&it, 0, sizeof it);
    it.prompt = prompt;
    it.negative = negative;
    it.steps = 20;
    it.sampler = "Euler a";
    it.cfg = 7;
    it.seed = 42;
    it.width = it.height = 512;
    it.version = "lorafuse test";
    return it;
}

/* Format, compare the text's start with want_head (the prompt part), parse back: the prompt, the
 * negative prompt and the parameters. */
static void expect(const char *prompt, const char *negative, const char *want_head, const char *want_prompt,
                   const char *want_negative) {
    lf_infotext it = info(prompt, negative);
    char *t = lf_infotext_format(&it);
    if (!t) {
        LF_CHECK(0, "format failed");
        return;
    }
    LF_CHECK(!strncmp(t, want_head, strlen(want_head)) && !strncmp(t + strlen(want_head), "\nSteps: 20, ", 12),
             "text:\n%s\nwant it to start with:\n%s\\nSteps: 20, ", t, want_head);
    lf_infotext_parsed p;
    if (lf_infotext_parse(t, &p) != LF_OK) {
        LF_CHECK(0, "parse: %s", lf_last_error());
        free(t);
        return;
    }
    LF_CHECK(!strcmp(p.prompt, want_prompt), "prompt read back '%s', want '%s'", p.prompt, want_prompt);
    LF_CHECK(!strcmp(p.negative, want_negative), "negative read back '%s', want '%s'", p.negative, want_negative);
    const char *st = lf_infotext_get(&p, "Steps"), *sd = lf_infotext_get(&p, "Seed");
    LF_CHECK(st && !strcmp(st, "20") && sd && !strcmp(sd, "42") && p.n_kv == 6, "parameters: Steps %s Seed %s (%zu)",
             st ? st : "-", sd ? sd : "-", p.n_kv);
    lf_infotext_parsed_free(&p);
    free(t);
}

static void test_as_a1111(void) {
    /* newlines stay raw, as A1111 writes them, and read back exactly */
    expect("a cat\nwearing a hat", "blurry\nlow quality", "a cat\nwearing a hat\nNegative prompt: blurry\nlow quality",
           "a cat\nwearing a hat", "blurry\nlow quality");
    expect("a cat", NULL, "a cat", "a cat", "");
    expect("a cat", "", "a cat", "a cat", "");
    expect("", "blurry", "Negative prompt: blurry", "", "blurry");
    /* look-alikes A1111 reads as prompt text are kept as typed */
    expect("a\nNegative prompts: x", NULL, "a\nNegative prompts: x", "a\nNegative prompts: x", "");
    expect("a Negative prompt: x, Steps: 3", NULL, "a Negative prompt: x, Steps: 3", "a Negative prompt: x, Steps: 3", "");
    expect("a\nNegative prompt x", NULL, "a\nNegative prompt x", "a\nNegative prompt x", "");
    expect("(cat:1.2), (dog:0.8)\n(sky:1.1), (sea:0.9), (sun:1.0)", NULL, "(cat:1.2), (dog:0.8)\n(sky:1.1), (sea:0.9), (sun:1.0)",
           "(cat:1.2), (dog:0.8)\n(sky:1.1), (sea:0.9), (sun:1.0)", "");
    /* the negative prompt's own first line follows "Negative prompt: " and needs nothing */
    expect("a", "Negative prompt: x", "a\nNegative prompt: Negative prompt: x", "a", "Negative prompt: x");
}

static void test_injection(void) {
    /* a forged negative prompt in the prompt */
    expect("a cat\nNegative prompt: evil", "good", "a cat\nNegative prompt : evil\nNegative prompt: good",
           "a cat\nNegative prompt : evil", "good");
    expect("Negative prompt: evil", NULL, "Negative prompt : evil", "Negative prompt : evil", "");
    expect("  Negative prompt:evil", NULL, "Negative prompt :evil", "Negative prompt :evil", "");
    expect("a\r\nnegative PROMPT: evil", NULL, "a\r\nnegative PROMPT : evil", "a\nnegative PROMPT : evil", ""); /* lines are stripped */
    expect("a\n \t\xc2\xa0\xe3\x80\x80Negative prompt: evil", NULL, "a\n \t\xc2\xa0\xe3\x80\x80Negative prompt : evil",
           "a\n\xc2\xa0\xe3\x80\x80Negative prompt : evil", "");
    expect("a\rNegative prompt: evil", NULL, "a\rNegative prompt : evil", "a\rNegative prompt : evil", "");
    expect("a\xe2\x80\xa8Negative prompt: evil", NULL, "a\xe2\x80\xa8Negative prompt : evil",
           "a\xe2\x80\xa8Negative prompt : evil", "");
    /* in the negative prompt: its later lines */
    expect("a", "ok\nNegative prompt: more", "a\nNegative prompt: ok\nNegative prompt : more", "a", "ok\nNegative prompt : more");
    /* a forged parameters line, in either */
    expect("a\nSteps: 1, Sampler: x, CFG scale: 1, Seed: 9, Size: 8x8", NULL,
           "a\nSteps : 1, Sampler: x, CFG scale: 1, Seed: 9, Size: 8x8", "a\nSteps : 1, Sampler: x, CFG scale: 1, Seed: 9, Size: 8x8",
           "");
    expect("Steps: 1", "n\nSTEPS: 2, Seed: 3, Size: 4x4", "Steps : 1\nNegative prompt: n\nSTEPS : 2, Seed: 3, Size: 4x4", "Steps : 1",
           "n\nSTEPS : 2, Seed: 3, Size: 4x4");
    /* invalid UTF-8 and control bytes pass as typed (A1111 writes them; only the two prefixes matter) */
    expect("\xff\n\x1b[31mNegative prompt: x", NULL, "\xff\n\x1b[31mNegative prompt: x", "\xff\n\x1b[31mNegative prompt: x", "");
}

static void test_long(void) {
    /* 256 KiB of short lines, every one a forged negative prompt: linear, all neutralised */
    size_t n = 1 << 18, k = 0;
    char *p = malloc(n + 1);
    static const char line[] = "\nNegative prompt: x";
    while (k + sizeof line - 1 <= n) memcpy(p + k, line, sizeof line - 1), k += sizeof line - 1;
    p[0] = 'a';
    p[k] = '\0';
    lf_infotext it = info(p, "n");
    char *t = lf_infotext_format(&it);
    lf_infotext_parsed r;
    LF_CHECK(t && lf_infotext_parse(t, &r) == LF_OK, "long prompt");
    if (t) {
        LF_CHECK(!strcmp(r.negative, "n") && strlen(r.prompt) == k + k / (sizeof line - 1) - 1, "long prompt read back");
        lf_infotext_parsed_free(&r);
    }
    free(t);
    free(p);
}

int main(void) {
    test_as_a1111();
    test_injection();
    test_long();
    return lf_test_finish();
}
