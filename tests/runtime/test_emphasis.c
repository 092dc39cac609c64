/* test_emphasis.c: A1111 prompt emphasis: parser (A1111's own documented examples), chunking with
 * BREAK, comma backtrack and padding (real CLIP tokenizer), and the "Original" weighting formula.
 * The end-to-end weighted conditioning against torch is in test_clip.c.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_test.h"
#include "lorafuse/lf_emphasis.h"
#include "lorafuse/lf_tokenizer.h"

typedef struct exp_span {
    const char *text;
    double w;
} exp_span;

static void check_parse(const char *prompt, const exp_span *want, size_t n) {
    lf_emph_spans s;
    lf_status st = lf_emphasis_parse(prompt, LF_EMPH_ORIGINAL, &s);
    LF_CHECK(st == LF_OK, "parse %s: %s", prompt, lf_last_error());
    if (st) return;
    int ok = s.n == n;
    for (size_t i = 0; ok && i < n; i++)
        ok = strcmp(s.v[i].text, want[i].text) == 0 && fabs(s.v[i].weight - want[i].w) < 1e-12;
    LF_CHECK(ok, "parse \"%s\": %zu spans (expected %zu)", prompt, s.n, n);
    if (!ok)
        for (size_t i = 0; i < s.n; i++) fprintf(stderr, "  [\"%s\", %.17g]\n", s.v[i].text, s.v[i].weight);
    lf_emph_spans_free(&s);
}

#define CHECK_PARSE(prompt, ...)                                                                   \
    do {                                                                                           \
        static const exp_span w_[] = {__VA_ARGS__};                                                \
        check_parse(prompt, w_, sizeof w_ / sizeof w_[0]);                                         \
    } while (0)

static void parser_tests(void) {
    /* the examples of A1111's parse_prompt_attention docstring */
    CHECK_PARSE("normal text", {"normal text", 1.0});
    CHECK_PARSE("an (important) word", {"an ", 1.0}, {"important", 1.1}, {" word", 1.0});
    CHECK_PARSE("(unbalanced", {"unbalanced", 1.1});
    CHECK_PARSE("\\(literal\\]", {"(literal]", 1.0});
    CHECK_PARSE("(unnecessary)(parens)", {"unnecessaryparens", 1.1});
    CHECK_PARSE("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).", {"a ", 1.0},
                {"house", 1.3 * 1.1 * 1.1}, {" ", 1.1}, {"on", 1.0}, {" a ", 1.1}, {"hill", 0.55},
                {", sun, ", 1.1}, {"sky", 1.1 * 1.1 * 1.1 * 1.1}, {".", 1.1});
    /* more rules */
    CHECK_PARSE("", {"", 1.0});
    CHECK_PARSE("[a]", {"a", 1 / 1.1});
    CHECK_PARSE("[[a]] b", {"a", 1 / 1.1 / 1.1}, {" b", 1.0});
    CHECK_PARSE("(a : 1.5 ) b", {"a ", 1.5}, {" b", 1.0});
    CHECK_PARSE("(a:-0.5)", {"a", -0.5});
    CHECK_PARSE("a:1.5) b", {"a:1.5) b", 1.0});     /* weight without '(' is text */
    CHECK_PARSE("a) b] c: d", {"a) b] c: d", 1.0}); /* stray closers and ':' are text */
    CHECK_PARSE("(a:1.2.3)", {"a:1.2.3", 1.1});     /* deviation: A1111 raises; here literal text */
    CHECK_PARSE("a \\ b \\\\ c", {"a  b \\ c", 1.0});
    CHECK_PARSE("a BREAK b", {"a", 1.0}, {"BREAK", -1.0}, {"b", 1.0});
    CHECK_PARSE("a\nBREAK\n\nb BREAKS BREAK_x xBREAK", {"a", 1.0}, {"BREAK", -1.0},
                {"b BREAKS BREAK_x xBREAK", 1.0});
    CHECK_PARSE("BREAK", {"", 1.0}, {"BREAK", -1.0}, {"", 1.0});
    CHECK_PARSE("(a BREAK b)", {"a", 1.1}, {"BREAK", -1.1}, {"b", 1.1}); /* as A1111: no longer a BREAK */

    lf_emph_spans s;
    LF_CHECK(lf_emphasis_parse("(a:1.3) BREAK", LF_EMPH_NONE, &s) == LF_OK && s.n == 1 &&
                 strcmp(s.v[0].text, "(a:1.3) BREAK") == 0 && s.v[0].weight == 1.0,
             "mode None keeps the prompt literal");
    lf_emph_spans_free(&s);
}

static int32_t id_of(const lf_tokenizer *t, const char *word) {
    lf_tokens ids = {0};
    lf_tokenizer_encode(t, word, &ids);
    int32_t r = ids.n == 1 ? ids.ids[0] : -1;
    lf_tokens_free(&ids);
    return r;
}

static void chunk_tests(const lf_tokenizer *t) {
    const int32_t BOS = 49406, EOS = 49407;
    int32_t cat = id_of(t, "cat"), dog = id_of(t, "dog"), comma = id_of(t, ",");
    LF_CHECK(cat == 2368 && comma == 267 && dog > 0, "ids cat %d comma %d dog %d", cat, comma, dog);
    lf_prompt_chunks c;
    lf_chunk_opts o = lf_chunk_opts_default(EOS);

    LF_CHECK(lf_prompt_chunk(t, "", &o, &c) == LF_OK && c.n == 1 && c.token_count == 0 && c.ids[0] == BOS &&
                 c.ids[1] == EOS && c.ids[76] == EOS && c.mult[0] == 1.0f,
             "empty prompt: one window BOS EOS...");
    lf_prompt_chunks_free(&c);

    LF_CHECK(lf_prompt_chunk(t, "a (cat:1.5) [dog]", &o, &c) == LF_OK && c.n == 1 && c.token_count == 3 &&
                 c.ids[1] == 320 && c.ids[2] == cat && c.ids[3] == dog && c.ids[4] == EOS && c.mult[1] == 1.0f &&
                 c.mult[2] == 1.5f && c.mult[3] == (float)(1 / 1.1) && c.mult[4] == 1.0f,
             "weights per token");
    lf_prompt_chunks_free(&c);

    LF_CHECK(lf_prompt_chunk(t, "cat BREAK dog", &o, &c) == LF_OK && c.n == 2 && c.ids[1] == cat &&
                 c.ids[2] == EOS && c.ids[77] == BOS && c.ids[78] == dog && c.token_count == 75 + 1,
             "BREAK starts a new window");
    lf_prompt_chunks_free(&c);

    LF_CHECK(lf_prompt_chunk(t, "BREAK cat", &o, &c) == LF_OK && c.n == 2 && c.ids[1] == EOS && c.ids[78] == cat,
             "BREAK first: an empty window");
    lf_prompt_chunks_free(&c);

    /* 80 tokens without commas: 75 + 5 */
    char buf[2048] = "";
    for (int i = 0; i < 80; i++) strcat(buf, "cat ");
    LF_CHECK(lf_prompt_chunk(t, buf, &o, &c) == LF_OK && c.n == 2 && c.ids[75] == cat && c.ids[76] == EOS &&
                 c.ids[77 + 5] == cat && c.ids[77 + 6] == EOS && c.token_count == 80,
             "80 tokens: 2 windows (%zu, count %zu)", c.n, c.token_count);
    lf_prompt_chunks_free(&c);

    /* comma backtrack: 70 cats, a comma, 10 dogs -> window 1 ends after the comma, the 4 dogs move */
    buf[0] = 0;
    for (int i = 0; i < 70; i++) strcat(buf, "cat ");
    strcat(buf, ", ");
    for (int i = 0; i < 10; i++) strcat(buf, "dog ");
    LF_CHECK(lf_prompt_chunk(t, buf, &o, &c) == LF_OK && c.n == 2 && c.ids[70] == cat && c.ids[71] == comma &&
                 c.ids[72] == EOS && c.ids[77 + 10] == dog && c.ids[77 + 11] == EOS && c.token_count == 85,
             "comma backtrack (%zu windows, count %zu)", c.n, c.token_count);
    lf_prompt_chunks_free(&c);
    o.comma_backtrack = 0;
    LF_CHECK(lf_prompt_chunk(t, buf, &o, &c) == LF_OK && c.n == 2 && c.ids[71] == comma && c.ids[75] == dog &&
                 c.ids[77 + 6] == dog && c.ids[77 + 7] == EOS && c.token_count == 81,
             "no backtrack");
    lf_prompt_chunks_free(&c);

    /* TE2 / SD2 padding: 0 after the first EOS */
    o = lf_chunk_opts_default(0);
    LF_CHECK(lf_prompt_chunk(t, "a cat", &o, &c) == LF_OK && c.ids[3] == EOS && c.ids[4] == 0 && c.ids[76] == 0,
             "pad 0 after EOS");
    lf_prompt_chunks_free(&c);
}

static void apply_tests(void) {
    float z[4] = {1, 2, 3, 4};
    const float m[2] = {1, 2};
    lf_emphasis_apply(z, m, 2, 2, LF_EMPH_ORIGINAL);
    const float r = 2.5f / 4.25f;
    LF_CHECK(fabsf(z[0] - r) < 1e-6f && fabsf(z[3] - 8 * r) < 1e-6f, "Original: %g %g", z[0], z[3]);
    float y[4] = {1, 2, 3, 4};
    lf_emphasis_apply(y, m, 2, 2, LF_EMPH_NO_NORM);
    LF_CHECK(y[0] == 1 && y[2] == 6 && y[3] == 8, "No norm");
    lf_emphasis_apply(y, m, 2, 2, LF_EMPH_IGNORE);
    LF_CHECK(y[2] == 6, "Ignore leaves z");
}

int main(void) {
    parser_tests();
    apply_tests();
    lf_tokenizer *t = NULL;
    if (lf_tokenizer_load_default(&t) != LF_OK) {
        LF_CHECK(0, "tokenizer: %s", lf_last_error());
        return lf_test_finish();
    }
    chunk_tests(t);
    lf_tokenizer_free(t);
    return lf_test_finish();
}
