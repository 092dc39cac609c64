/* test_prompt_tags.c: the `<lora:...>` grammar and per-step strengths (docs/prompt-tags.md,
 * SD.Next's LoRA page, docs/semantics.md P10): every example of the SD.Next page and of docs/prompt-tags.md with its
 * documented strengths, hold and linear ramps, zero before the first key frame, fraction / percentage
 * rounding, precedence of S / te / te1 / te2 / unet / in / mid / out, LBW lengths and presets for both
 * families, the cleaned prompt, and every error class with its message and column; hostile input: the
 * number grammar in tags (hex, inf, out of range), escaped messages and warnings, the limits on prompt
 * bytes, tags, key frames and presets files (each with its message), a 10000-key-frame schedule and its
 * one summarised warning, and which tags are identical (lf_tag_same).
 */
#include "lf_test.h"

#include "lorafuse/lf_strength.h"
#include "lorafuse/lf_prompt_tags.h"
#include "host/base/strbuf.h"

#define SD1 LF_FAMILY_SD1
#define SDXL LF_FAMILY_SDXL
#define TE1 LF_COMP_TE1
#define TE2 LF_COMP_TE2
#define UNET LF_COMP_UNET

static int feq(float a, float b) {
    return fabsf(a - b) <= 1e-6f * (1.0f + fabsf(b));
}

/* Parse a prompt holding one tag and resolve it; NULL (and a failed check) on error. */
typedef struct {
    lf_prompt *p;
    lf_strength s;
    lf_msgs warn;
} lf_one;

static int one_open(lf_one *o, const char *text, lf_family fam, int n) {
    memset(o, 0, sizeof *o);
    if (lf_prompt_parse(text, &o->p) != LF_OK) {
        LF_CHECK(0, "%s: parse: %s", text, lf_last_error());
        return 0;
    }
    if (o->p->n_tags != 1) {
        LF_CHECK(0, "%s: %zu tags", text, o->p->n_tags);
        return 0;
    }
    if (lf_strength_resolve(&o->p->tags[0], fam, NULL, n, &o->s, &o->warn) != LF_OK) {
        LF_CHECK(0, "%s: resolve: %s", text, lf_last_error());
        return 0;
    }
    return 1;
}

static void one_close(lf_one *o) {
    lf_strength_free(&o->s);
    lf_prompt_free(o->p);
    lf_msgs_free(&o->warn);
}

/* Strength of one tag at step t: component te1/te2 (block ignored) or UNet block. */
static float st(const char *text, lf_family fam, int n, lf_component comp, int block, int t) {
    lf_one o;
    float v = NAN;
    if (one_open(&o, text, fam, n)) v = lf_strength_at(&o.s, comp, block, t);
    one_close(&o);
    return v;
}

/* Check te (te1, and te2 on SDXL) and every UNet block group at every step against expectations given as
 * per-step arrays (NULL: skip). */
static void expect_steps(const char *text, lf_family fam, int n, const float *te, const float *in, const float *mid,
                         const float *out) {
    lf_one o;
    if (!one_open(&o, text, fam, n)) {
        one_close(&o);
        return;
    }
    for (int t = 1; t <= n; t++) {
        if (te) {
            LF_CHECK(feq(lf_strength_at(&o.s, TE1, LF_BLK_NONE, t), te[t - 1]), "%s: te1 step %d = %g, want %g", text, t,
                     (double)lf_strength_at(&o.s, TE1, LF_BLK_NONE, t), (double)te[t - 1]);
            if (fam == SDXL)
                LF_CHECK(feq(lf_strength_at(&o.s, TE2, LF_BLK_NONE, t), te[t - 1]), "%s: te2 step %d", text, t);
        }
        for (int b = 0; b < LF_BLK_COUNT; b++) {
            if (!lf_block_in_family(b, fam)) continue;
            lf_group g = lf_block_group(b);
            const float *want = g == LF_GROUP_IN ? in : g == LF_GROUP_MID ? mid : out;
            if (!want) continue;
            float v = lf_strength_at(&o.s, UNET, b, t);
            LF_CHECK(feq(v, want[t - 1]), "%s: %s step %d = %g, want %g", text, lf_block_name(b), t, (double)v,
                     (double)want[t - 1]);
        }
    }
    one_close(&o);
}

static void expect_const(const char *text, lf_family fam, float te, float in, float mid, float out) {
    float a[8], b[8], c[8], d[8];
    for (int i = 0; i < 8; i++) a[i] = te, b[i] = in, c[i] = mid, d[i] = out;
    expect_steps(text, fam, 8, a, b, c, d);
}

/* The parse must fail with exactly this message (or, when exact = 0, a message containing it). */
static void expect_parse_err(const char *text, const char *msg, int exact) {
    lf_prompt *p = NULL;
    lf_status s = lf_prompt_parse(text, &p);
    LF_CHECK(s == LF_ERR_ARG && !p, "%s: parse should fail with LF_ERR_ARG (got %d)", text, (int)s);
    const char *e = lf_last_error();
    if (exact) LF_CHECK(!strcmp(e, msg), "%s:\n  got  '%s'\n  want '%s'", text, e, msg);
    else LF_CHECK(strstr(e, msg) != NULL, "%s:\n  got '%s'\n  want it to contain '%s'", text, e, msg);
    lf_prompt_free(p);
}

/* Parse succeeds, resolving against fam/n fails with a message containing msg. */
static void expect_resolve_err(const char *text, lf_family fam, int n, const char *msg) {
    lf_prompt *p = NULL;
    if (lf_prompt_parse(text, &p) != LF_OK) {
        LF_CHECK(0, "%s: parse failed: %s", text, lf_last_error());
        return;
    }
    lf_strength s;
    lf_status r = lf_strength_resolve(&p->tags[0], fam, NULL, n, &s, NULL);
    LF_CHECK(r == LF_ERR_ARG, "%s: resolve should fail", text);
    if (r == LF_OK) lf_strength_free(&s);
    LF_CHECK(strstr(lf_last_error(), msg) != NULL, "%s:\n  got '%s'\n  want it to contain '%s'", text, lf_last_error(),
             msg);
    lf_prompt_free(p);
}

static void expect_clean(const char *text, const char *clean, size_t n_tags) {
    lf_prompt *p = NULL;
    if (lf_prompt_parse(text, &p) != LF_OK) {
        LF_CHECK(0, "%s: %s", text, lf_last_error());
        return;
    }
    LF_CHECK(!strcmp(p->clean, clean), "'%s' -> '%s', want '%s'", text, p->clean, clean);
    LF_CHECK(p->n_tags == n_tags, "'%s': %zu tags, want %zu", text, p->n_tags, n_tags);
    lf_prompt_free(p);
}

static int all_zero(const char *text, lf_family fam, int n) {
    lf_one o;
    int z = -1;
    if (one_open(&o, text, fam, n)) z = lf_strength_all_zero(&o.s);
    one_close(&o);
    return z;
}

/* ---- the SD.Next page --------------------------------------------------------------------------- */

static void test_sdnext_page(void) {
    /* "<lora:lora_name:strength>": strength for every part */
    expect_const("<lora:lora_name:0.8>", SD1, 0.8f, 0.8f, 0.8f, 0.8f);
    expect_const("<lora:lora_name:0.8>", SDXL, 0.8f, 0.8f, 0.8f, 0.8f);
    /* "<lora:name:x.x>" is the page's placeholder: a real number works, the literal is reported */
    expect_const("<lora:name:1.3>", SD1, 1.3f, 1.3f, 1.3f, 1.3f);
    expect_parse_err("<lora:name:x.x>", "prompt col 1: <lora:name:x.x>: 'x.x' is not a number or schedule", 1);
    /* ":comp=x.x" is the page's placeholder for te / unet; "comp" itself is no key */
    expect_parse_err("<lora:test_lora:comp=1.0>", "unknown key 'comp'", 0);
    /* Example: <lora:test_lora:te=0.5:unet=1.5> */
    expect_const("<lora:test_lora:te=0.5:unet=1.5>", SD1, 0.5f, 1.5f, 1.5f, 1.5f);
    expect_const("<lora:test_lora:te=0.5:unet=1.5>", SDXL, 0.5f, 1.5f, 1.5f, 1.5f);
    /* Example <lora:test_lora:1.0:in=0:mid=1:out=0> */
    expect_const("<lora:test_lora:1.0:in=0:mid=1:out=0>", SD1, 1.0f, 0.0f, 1.0f, 0.0f);
    expect_const("<lora:test_lora:1.0:in=0:mid=1:out=0>", SDXL, 1.0f, 0.0f, 1.0f, 0.0f);
    /* Example: <lora:test_lora:te=0.1@1,0.6@6>: "strength 0.1 on step 1 and then switch to strength 0.6 on
     * step 6" (hold); the UNet falls back to te (A1111 / SD.Next convention) */
    {
        float te[10] = {0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.6f, 0.6f, 0.6f, 0.6f, 0.6f};
        expect_steps("<lora:test_lora:te=0.1@1,0.6@6>", SD1, 10, te, te, te, te);
        expect_steps("<lora:test_lora:te=0.1@1,0.6@6>", SDXL, 10, te, te, te, te);
    }
    /* combining any number of LoRAs in one prompt */
    expect_clean("a castle <lora:a:0.5> at night <lora:b:te=0.5:unet=1.5>", "a castle at night", 2);
}

/* ---- docs/prompt-tags.md examples ----------------------------------------------------------------- */

static void test_syntax_examples(void) {
    /* <lora:NAME>: 1.0 everywhere */
    expect_const("<lora:NAME>", SD1, 1, 1, 1, 1);
    expect_const("<lora:NAME>", SDXL, 1, 1, 1, 1);
    /* <lora:NAME:S:KEY=V>: S for every part that no KEY names */
    expect_const("<lora:NAME:0.5:te=0.25>", SD1, 0.25f, 0.5f, 0.5f, 0.5f);
    expect_const("<lora:NAME:0.5:unet=2>", SD1, 0.5f, 2, 2, 2);
    expect_const("<lora:NAME:0.5:mid=0>", SDXL, 0.5f, 0.5f, 0, 0.5f);
    /* unet=1@5 switches the LoRA on at step 5 (te stays 1.0: no S, no te) */
    {
        float te[8] = {1, 1, 1, 1, 1, 1, 1, 1}, u[8] = {0, 0, 0, 0, 1, 1, 1, 1};
        expect_steps("<lora:NAME:unet=1@5>", SD1, 8, te, u, u, u);
    }
    /* unet=1@1,0@11 switches it off from step 11 */
    {
        float u[14] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0}, te[14];
        for (int i = 0; i < 14; i++) te[i] = 1;
        expect_steps("<lora:NAME:unet=1@1,0@11>", SD1, 14, te, u, u, u);
    }
    /* te=0:unet=0 everywhere zero: dropped */
    LF_CHECK(all_zero("<lora:NAME:te=0:unet=0>", SD1, 20) == 1, "te=0:unet=0 drops the LoRA");
    LF_CHECK(all_zero("<lora:NAME:te=0:unet=0>", SDXL, 20) == 1, "te=0:unet=0 drops the LoRA (SDXL)");
    LF_CHECK(all_zero("<lora:NAME:0>", SDXL, 20) == 1, "S=0 drops the LoRA");
    LF_CHECK(all_zero("<lora:NAME:0:unet=1@25>", SD1, 20) == 1, "a key frame never reached keeps it dropped");
    LF_CHECK(all_zero("<lora:NAME:te=0:unet=0@1,0.1@20>", SD1, 20) == 0, "on at the last step: kept");
    LF_CHECK(all_zero("<lora:NAME:te1=0:te2=0.5:unet=0>", SDXL, 4) == 0, "te2 alone keeps it");
    LF_CHECK(all_zero("<lora:NAME:0:lbw=NONE>", SD1, 4) == 1, "S=0 with lbw: dropped");
    LF_CHECK(all_zero("<lora:NAME:lbw=NONE>", SD1, 4) == 0, "lbw NONE keeps time_embed/out at the UNet strength");
    /* @1.0 is the last step, @1 the first, @0 the first too (loractl habit) */
    LF_CHECK(feq(st("<lora:n:unet=1@1.0>", SD1, 20, UNET, LF_BLK_M00, 19), 0) &&
             feq(st("<lora:n:unet=1@1.0>", SD1, 20, UNET, LF_BLK_M00, 20), 1), "@1.0 = last step");
    LF_CHECK(feq(st("<lora:n:unet=1@1>", SD1, 20, UNET, LF_BLK_M00, 1), 1), "@1 = first step");
    LF_CHECK(feq(st("<lora:n:unet=1@0>", SD1, 20, UNET, LF_BLK_M00, 1), 1), "@0 = first step");
    LF_CHECK(feq(st("<lora:n:unet=1@0%>", SD1, 20, UNET, LF_BLK_M00, 1), 1), "0%% = first step");
    LF_CHECK(feq(st("<lora:n:unet=1@100%>", SD1, 20, UNET, LF_BLK_M00, 19), 0) &&
             feq(st("<lora:n:unet=1@100%>", SD1, 20, UNET, LF_BLK_M00, 20), 1), "100%% = last step");
    /* 50 % of 20 steps: 1 + floor(0.5*19 + 0.5) = 11 */
    LF_CHECK(feq(st("<lora:n:unet=1@50%>", SD1, 20, UNET, 0, 10), 0) && feq(st("<lora:n:unet=1@50%>", SD1, 20, UNET, 0, 11), 1),
             "50%% of 20 = step 11");
    LF_CHECK(feq(st("<lora:n:unet=1@0.5>", SD1, 20, UNET, 0, 10), 0) && feq(st("<lora:n:unet=1@0.5>", SD1, 20, UNET, 0, 11), 1),
             "0.5 of 20 = step 11");
    /* the same name twice: two tags (two adapters that add up, tested in test_step_plan) */
    expect_clean("<lora:x:0.5> and <lora:x:0.25>", "and", 2);
}

/* ---- schedules --------------------------------------------------------------------------------- */

static void test_ramps(void) {
    /* hold: the latest key frame at or before the step */
    {
        float v[10] = {0, 0.5f, 0.5f, 1, 1, 1, 0.25f, 0.25f, 0.25f, 0.25f};
        expect_steps("<lora:n:unet=0.5@2,1@4,0.25@7>", SD1, 10, NULL, v, v, v);
    }
    /* linear: 0 before the first key frame, interpolated between, held after the last */
    {
        float v[12] = {0, 0, 1, 0.75f, 0.5f, 0.25f, 0, 0.5f, 1, 1, 1, 1};
        expect_steps("<lora:n:unet=1@3,0@7,1@9:ramp=linear>", SD1, 12, NULL, v, v, v);
    }
    {
        float v[11] = {0, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f, 1};
        expect_steps("<lora:n:unet=0@0%,1@100%:ramp=linear>", SD1, 11, NULL, v, v, v);
        expect_steps("<lora:n:te=0@1,1@1.0:ramp=linear>", SD1, 11, v, v, v, v);
    }
    /* linear toward a key frame past the end: interpolates, never reaches it */
    {
        float v[5] = {0, 0.1f, 0.2f, 0.3f, 0.4f};
        expect_steps("<lora:n:unet=0@1,1@11:ramp=linear>", SD1, 5, NULL, v, v, v);
    }
    /* two key frames on one step: the later wins (hold and linear) */
    LF_CHECK(feq(st("<lora:n:unet=0.3@0,0.7@1>", SD1, 5, UNET, 0, 1), 0.7f), "@0 and @1 both step 1, later wins");
    LF_CHECK(feq(st("<lora:n:unet=0.3@0.5,0.9@6>", SD1, 11, UNET, 0, 6), 0.9f), "0.5 of 11 = step 6 = @6, later wins");
    LF_CHECK(feq(st("<lora:n:unet=0.3@3,0.9@50%:ramp=linear>", SD1, 5, UNET, 0, 3), 0.9f), "50%% of 5 = step 3, later wins");
    LF_CHECK(feq(st("<lora:n:unet=0.3@3,0.9@50%:ramp=linear>", SD1, 5, UNET, 0, 2), 0.0f), "before the first: 0");
    /* before the first key frame: 0, for te too */
    LF_CHECK(feq(st("<lora:n:te=0.8@4>", SD1, 6, TE1, LF_BLK_NONE, 3), 0) && feq(st("<lora:n:te=0.8@4>", SD1, 6, TE1, LF_BLK_NONE, 4), 0.8f),
             "te before the first key frame");
    /* a schedule as the positional strength */
    {
        float v[4] = {0.2f, 0.2f, 1, 1};
        expect_steps("<lora:n:0.2@1,1@3>", SDXL, 4, v, v, v, v);
    }
    /* whitespace is allowed around fields, ',' and '@' */
    {
        float v[4] = {0.5f, 0.5f, 1, 1};
        expect_steps("<lora: n : te = 0.5 @ 1 , 1 @ 3 >", SD1, 4, v, v, v, v);
    }
}

static void test_rounding(void) {
    /* 1 + floor(f*(N-1) + 0.5), halves rounding up as written in decimal */
    struct { const char *pos; int n, step; } c[] = {
        {"0.15", 11, 3},  /* 1.5 -> 2 -> step 3 */
        {"15%", 11, 3},   {"0.25", 5, 2},  {"0.125", 5, 2}, /* 0.5 -> 1 -> step 2 */
        {"0.1", 20, 3},   /* 1.9 -> 2 */
        {"10%", 20, 3},   {"33%", 4, 2},   {"50%", 10, 6},   /* 4.5 -> 5 */
        {"0.05", 11, 2},  /* 0.5 -> 1 */
        {"0.04", 11, 1},  {"99%", 3, 3},   {"0.75", 3, 3},   /* 1.5 -> 2 */
        {"0.5", 1, 1},    {"100%", 1, 1},  {"1.0", 7, 7},    {"0", 9, 1},    {"3", 9, 3},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char tag[64];
        snprintf(tag, sizeof tag, "<lora:n:unet=1@%s>", c[i].pos);
        int first = 0;
        for (int t = 1; t <= c[i].n && !first; t++)
            if (feq(st(tag, SD1, c[i].n, UNET, 0, t), 1)) first = t;
        LF_CHECK(first == c[i].step, "@%s of %d steps lands on step %d, want %d", c[i].pos, c[i].n, first, c[i].step);
    }
    /* positions past the end: a warning, never reached */
    lf_one o;
    if (one_open(&o, "<lora:n:unet=1@1,0@15>", SD1, 10)) {
        LF_CHECK(o.warn.n == 1 && strstr(o.warn.v[0], "lands on step 15, after the last step (10): never reached"),
                 "past-end warning: %s", o.warn.n ? o.warn.v[0] : "(none)");
        LF_CHECK(feq(lf_strength_at(&o.s, UNET, 0, 10), 1), "past-end key frame never reached");
    }
    one_close(&o);
    /* out of order once rounded (mixed kinds): an error naming both */
    expect_resolve_err("<lora:n:unet=1@5,0@0.1>", SD1, 20,
                       "key frames must be in increasing order: '0@0.1' lands on step 3 of 20, before '1@5' (step 5)");
    /* the same mixed schedule is fine when the fraction lands later */
    LF_CHECK(feq(st("<lora:n:unet=1@5,0@0.5>", SD1, 20, UNET, 0, 11), 0), "mixed kinds in order");
}

/* ---- precedence ---------------------------------------------------------------------------------- */

static void test_precedence(void) {
    /* te <- S <- 1 */
    LF_CHECK(feq(st("<lora:n:0.7>", SD1, 3, TE1, -1, 1), 0.7f), "te <- S");
    LF_CHECK(feq(st("<lora:n:unet=0.2>", SD1, 3, TE1, -1, 1), 1.0f), "te <- 1");
    LF_CHECK(feq(st("<lora:n:0.7:te=0.3>", SD1, 3, TE1, -1, 1), 0.3f), "te over S");
    /* te1 / te2 <- te <- S */
    LF_CHECK(feq(st("<lora:n:0.7:te=0.3:te2=0.9>", SDXL, 3, TE1, -1, 1), 0.3f), "te1 <- te");
    LF_CHECK(feq(st("<lora:n:0.7:te=0.3:te2=0.9>", SDXL, 3, TE2, -1, 1), 0.9f), "te2 given");
    LF_CHECK(feq(st("<lora:n:0.7:te1=0.1>", SDXL, 3, TE1, -1, 1), 0.1f), "te1 given");
    LF_CHECK(feq(st("<lora:n:0.7:te1=0.1>", SDXL, 3, TE2, -1, 1), 0.7f), "te2 <- te <- S");
    LF_CHECK(feq(st("<lora:n:te1=0.1>", SDXL, 3, TE2, -1, 1), 1.0f), "te2 <- 1");
    /* unet <- S <- te <- 1 */
    LF_CHECK(feq(st("<lora:n:0.7:te=0.3>", SD1, 3, UNET, LF_BLK_M00, 1), 0.7f), "unet <- S before te");
    LF_CHECK(feq(st("<lora:n:te=0.3>", SD1, 3, UNET, LF_BLK_M00, 1), 0.3f), "unet <- te");
    LF_CHECK(feq(st("<lora:n:te1=0.3>", SDXL, 3, UNET, LF_BLK_M00, 1), 1.0f), "unet does not fall back to te1");
    LF_CHECK(feq(st("<lora:n:0.7:te=0.3:unet=0.1>", SD1, 3, UNET, LF_BLK_M00, 1), 0.1f), "unet given");
    /* in/mid/out <- unet */
    expect_const("<lora:n:0.5:unet=0.8:in=0.2>", SD1, 0.5f, 0.2f, 0.8f, 0.8f);
    expect_const("<lora:n:in=0.2>", SD1, 1, 0.2f, 1, 1);
    expect_const("<lora:n:te=0.4:out=0>", SDXL, 0.4f, 0.4f, 0.4f, 0);
    /* block groups: time_embed / label_emb are in, out.* is out */
    LF_CHECK(feq(st("<lora:n:in=0.2:mid=0.5:out=0.9>", SD1, 3, UNET, LF_BLK_OTHER, 1), 0.2f), "time_embed in group in");
    LF_CHECK(feq(st("<lora:n:in=0.2:mid=0.5:out=0.9>", SD1, 3, UNET, LF_BLK_OTHER_OUT, 1), 0.9f), "out.* in group out");
    LF_CHECK(feq(st("<lora:n:in=0.2:mid=0.5:out=0.9>", SD1, 3, UNET, LF_BLK_NONE, 1), 0.2f), "no block: other");
    LF_CHECK(feq(st("<lora:n:in=0.2:mid=0.5:out=0.9>", SD1, 3, LF_COMP_OTHER, LF_BLK_NONE, 1), 0.2f), "comp other");
    /* te1/te2 need two text encoders */
    expect_resolve_err("<lora:n:te1=0.5>", SD1, 4, "te1 names one of the two SDXL text encoders; this SD1 model has one "
                       "text encoder: use te");
    expect_resolve_err("<lora:n:te2=0.5>", LF_FAMILY_SD2, 4, "this SD2 model has one text encoder");
    /* schedules in different keys combine per step */
    {
        float te[6] = {0, 0, 0.5f, 0.5f, 0.5f, 0.5f}, in[6] = {1, 1, 1, 0, 0, 0}, u[6] = {0.2f, 0.2f, 0.2f, 0.2f, 0.8f, 0.8f};
        expect_steps("<lora:n:te=0.5@3:unet=0.2@1,0.8@5:in=1@1,0@4>", SD1, 6, te, in, u, u);
    }
}

/* ---- blocks and LBW ------------------------------------------------------------------------------ */

static void test_blocks(void) {
    struct { const char *key; int block; } c[] = {
        {"model.diffusion_model.input_blocks.0.0.weight", 0},
        {"model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight", 4},
        {"model.diffusion_model.input_blocks.10.0.in_layers.2.weight", 10},
        {"model.diffusion_model.input_blocks.11.0.emb_layers.1.weight", 11},
        {"model.diffusion_model.middle_block.1.proj_in.weight", LF_BLK_M00},
        {"model.diffusion_model.output_blocks.0.0.skip_connection.weight", LF_BLK_OUT00},
        {"model.diffusion_model.output_blocks.11.1.proj_out.weight", LF_BLK_OUT00 + 11},
        {"model.diffusion_model.time_embed.0.weight", LF_BLK_OTHER},
        {"model.diffusion_model.label_emb.0.0.weight", LF_BLK_OTHER},
        {"model.diffusion_model.out.2.weight", LF_BLK_OTHER_OUT},
        {"model.diffusion_model.out.0.bias", LF_BLK_OTHER_OUT},
        {"output_blocks.5.2.conv.weight", LF_BLK_OUT00 + 5},
        {"cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1.weight", LF_BLK_NONE},
        {"conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight", LF_BLK_NONE},
        {"first_stage_model.decoder.conv_out.weight", LF_BLK_NONE},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        LF_CHECK(lf_block_of_key(c[i].key) == c[i].block, "%s -> %d (%s), want %s", c[i].key, lf_block_of_key(c[i].key),
                 lf_block_name(lf_block_of_key(c[i].key)), lf_block_name(c[i].block));
    LF_CHECK(!strcmp(lf_block_name(0), "IN00") && !strcmp(lf_block_name(LF_BLK_M00), "M00") &&
             !strcmp(lf_block_name(LF_BLK_OUT00 + 11), "OUT11") && !strcmp(lf_block_name(LF_BLK_OTHER), "other"),
             "block names");
    LF_CHECK(lf_block_in_family(8, SDXL) && !lf_block_in_family(9, SDXL) && lf_block_in_family(LF_BLK_OUT00 + 8, SDXL) &&
             !lf_block_in_family(LF_BLK_OUT00 + 9, SDXL) && lf_block_in_family(11, SD1), "blocks per family");
}

/* expected factor of a block under an lbw vector given by names: value of the listed block, else 0 */
static void expect_lbw(const char *text, lf_family fam, float s, float base, const char *const *names, const float *vals,
                       int n) {
    lf_one o;
    if (!one_open(&o, text, fam, 3)) {
        one_close(&o);
        return;
    }
    LF_CHECK(feq(lf_strength_at(&o.s, TE1, LF_BLK_NONE, 2), s * base), "%s: te = %g, want %g", text,
             (double)lf_strength_at(&o.s, TE1, LF_BLK_NONE, 2), (double)(s * base));
    for (int b = 0; b < LF_BLK_COUNT; b++) {
        float want = s; /* other, other_out: plain UNet strength */
        if (b < LF_BLK_OTHER) {
            want = 0;
            for (int i = 0; i < n; i++)
                if (!strcmp(names[i], lf_block_name(b))) want = s * vals[i];
        }
        float v = lf_strength_at(&o.s, UNET, b, 2);
        LF_CHECK(feq(v, want), "%s: %s = %g, want %g", text, lf_block_name(b), (double)v, (double)want);
    }
    one_close(&o);
}

static void test_lbw(void) {
    static const char *const b17[16] = {"IN01", "IN02", "IN04", "IN05", "IN07", "IN08", "M00", "OUT03",
                                        "OUT04", "OUT05", "OUT06", "OUT07", "OUT08", "OUT09", "OUT10", "OUT11"};
    static const char *const b12[11] = {"IN04", "IN05", "IN07", "IN08", "M00", "OUT00", "OUT01", "OUT02", "OUT03",
                                        "OUT04", "OUT05"};
    static const char *const b20[19] = {"IN00", "IN01", "IN02", "IN03", "IN04", "IN05", "IN06", "IN07", "IN08", "M00",
                                        "OUT00", "OUT01", "OUT02", "OUT03", "OUT04", "OUT05", "OUT06", "OUT07", "OUT08"};
    const char *b26[25];
    char names26[25][8];
    float v[25];
    for (int i = 0; i < 25; i++) {
        snprintf(names26[i], sizeof names26[i], "%s", lf_block_name(i));
        b26[i] = names26[i];
        v[i] = 0.05f * (float)(i + 1);
    }
    /* SD1.x 17 and 26, S = 2: BASE scales te, blocks scale the UNet, left-out blocks 0 */
    expect_lbw("<lora:n:2:lbw=0.5,0.05,0.1,0.15,0.2,0.25,0.3,0.35,0.4,0.45,0.5,0.55,0.6,0.65,0.7,0.75,0.8>", SD1, 2,
               0.5f, b17, v, 16);
    expect_lbw("<lora:n:2:lbw=0.5,0.05,0.1,0.15,0.2,0.25,0.3,0.35,0.4,0.45,0.5,0.55,0.6,0.65,0.7,0.75,0.8,0.85,0.9,"
               "0.95,1,1.05,1.1,1.15,1.2,1.25>", SD1, 2, 0.5f, b26, v, 25);
    /* SDXL 12 and 20 */
    expect_lbw("<lora:n:lbw=0.5,0.05,0.1,0.15,0.2,0.25,0.3,0.35,0.4,0.45,0.5,0.55>", SDXL, 1, 0.5f, b12, v, 11);
    expect_lbw("<lora:n:0.5:lbw=1,0.05,0.1,0.15,0.2,0.25,0.3,0.35,0.4,0.45,0.5,0.55,0.6,0.65,0.7,0.75,0.8,0.85,0.9,0.95>",
               SDXL, 0.5f, 1, b20, v, 19);
    /* te2 gets BASE too */
    LF_CHECK(feq(st("<lora:n:te2=0.8:lbw=0.5,1,1,1,1,1,1,1,1,1,1,1>", SDXL, 2, TE2, -1, 1), 0.4f), "BASE scales te2");
    /* a schedule on unet with lbw: factor times the scheduled value */
    LF_CHECK(feq(st("<lora:n:unet=0.5@1,1@2:lbw=1,0,0,0,0,0,0,2,0,0,0,0,0,0,0,0,0>", SD1, 3, UNET, LF_BLK_M00, 1), 1.0f) &&
             feq(st("<lora:n:unet=0.5@1,1@2:lbw=1,0,0,0,0,0,0,2,0,0,0,0,0,0,0,0,0>", SD1, 3, UNET, LF_BLK_M00, 2), 2.0f),
             "lbw x scheduled unet");
    /* lengths of the wrong family */
    expect_resolve_err("<lora:n:lbw=1,1,1,1,1,1,1,1,1,1,1,1>", SD1, 4, "lbw has 12 values; an SD1 model takes 17 or 26");
    expect_resolve_err("<lora:n:lbw=1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1>", SDXL, 4,
                       "lbw has 17 values; an SDXL model takes 12 or 20");
    expect_resolve_err("<lora:n:lbw=1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1>", SD1, 4, "an SD1 model takes 17 or 26");
    expect_resolve_err("<lora:n:lbw=1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1>", SDXL, 4,
                       "an SDXL model takes 12 or 20");
    /* built-in presets (17 values, LBW's DEF_WEIGHT_PRESET), applied by block name to both families */
    struct { const char *name; float base; const char *on[16]; int n; float val; } pr[] = {
        {"ALL", 1, {"IN01", "IN02", "IN04", "IN05", "IN07", "IN08", "M00", "OUT03", "OUT04", "OUT05", "OUT06", "OUT07", "OUT08",
                    "OUT09", "OUT10", "OUT11"}, 16, 1},
        {"NONE", 0, {NULL}, 0, 1},
        {"INS", 1, {"IN01", "IN02", "IN04"}, 3, 1},
        {"IND", 1, {"IN05", "IN07", "IN08"}, 3, 1},
        {"INALL", 1, {"IN01", "IN02", "IN04", "IN05", "IN07", "IN08"}, 6, 1},
        {"MIDD", 1, {"IN05", "IN07", "IN08", "M00", "OUT03", "OUT04", "OUT05", "OUT06"}, 8, 1},
        {"OUTD", 1, {"OUT03", "OUT04", "OUT05", "OUT06"}, 4, 1},
        {"OUTS", 1, {"OUT07", "OUT08", "OUT09", "OUT10", "OUT11"}, 5, 1},
        {"OUTALL", 1, {"OUT03", "OUT04", "OUT05", "OUT06", "OUT07", "OUT08", "OUT09", "OUT10", "OUT11"}, 9, 1},
        {"ALL0.5", 0.5f, {"IN01", "IN02", "IN04", "IN05", "IN07", "IN08", "M00", "OUT03", "OUT04", "OUT05", "OUT06", "OUT07",
                          "OUT08", "OUT09", "OUT10", "OUT11"}, 16, 0.5f},
    };
    for (size_t i = 0; i < sizeof pr / sizeof pr[0]; i++) {
        char tag[96];
        float vals[16];
        for (int k = 0; k < 16; k++) vals[k] = pr[i].val;
        snprintf(tag, sizeof tag, "<lora:n:0.8:lbw=%s>", pr[i].name);
        expect_lbw(tag, SD1, 0.8f, pr[i].base, pr[i].on, vals, pr[i].n);
        expect_lbw(tag, SDXL, 0.8f, pr[i].base, pr[i].on, vals, pr[i].n);
    }
    expect_resolve_err("<lora:n:lbw=FOO>", SD1, 4, "unknown lbw preset 'FOO' (presets: NONE, ALL, INS, IND, INALL, MIDD, "
                       "OUTD, OUTS, OUTALL, ALL0.5)");
    /* user presets: NAME:v,... lines, comments, overriding a built-in */
    lf_lbw_presets *ps = NULL;
    const char *text = "# my presets\n\nXLMID:0,0,0,0,0,1,0,0,0,0,0,0\n  INS : 0.5,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1\r\n";
    LF_CHECK(lf_lbw_presets_parse(text, "mine.txt", &ps) == LF_OK, "user presets: %s", lf_last_error());
    int n = 0;
    const float *pv = ps ? lf_lbw_preset_find(ps, "XLMID", &n) : NULL;
    LF_CHECK(pv && n == 12 && pv[5] == 1 && pv[4] == 0, "user preset XLMID");
    pv = ps ? lf_lbw_preset_find(ps, "INS", &n) : NULL;
    LF_CHECK(pv && n == 17 && pv[0] == 0.5f && pv[16] == 1, "user preset replaces built-in INS");
    LF_CHECK(ps && lf_lbw_preset_find(ps, "OUTALL", &n) != NULL, "built-ins kept next to user presets");
    if (ps) {
        lf_prompt *p = NULL;
        lf_strength s;
        if (lf_prompt_parse("<lora:n:lbw=XLMID>", &p) == LF_OK &&
            lf_strength_resolve(&p->tags[0], SDXL, ps, 4, &s, NULL) == LF_OK) {
            LF_CHECK(feq(lf_strength_at(&s, UNET, LF_BLK_M00, 1), 1) && feq(lf_strength_at(&s, UNET, 4, 1), 0) &&
                     feq(lf_strength_at(&s, TE1, -1, 1), 0), "user preset applied");
            lf_strength_free(&s);
        } else {
            LF_CHECK(0, "user preset resolve: %s", lf_last_error());
        }
        lf_prompt_free(p);
    }
    lf_lbw_presets_free(ps);
    struct { const char *text, *msg; } bad[] = {
        {"A:1,1,1\n", "mine.txt:1: preset 'A' has 3 values; a block-weight vector has 17 or 26 (SD1.x) or 12 or 20 (SDXL)"},
        {"# c\nA 1,1\n", "mine.txt:2: expected NAME:v,v,... (no ':')"},
        {"A:1,x,1,1,1,1,1,1,1,1,1,1\n", "mine.txt:1: preset 'A': entry 2 is not a number"},
        {":1,1,1,1,1,1,1,1,1,1,1,1\n", "mine.txt:1: preset name must have 1 to 63 characters"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ps = NULL;
        LF_CHECK(lf_lbw_presets_parse(bad[i].text, "mine.txt", &ps) == LF_ERR_ARG && !ps, "bad presets %zu", i);
        LF_CHECK(!strcmp(lf_last_error(), bad[i].msg), "presets error:\n  got  '%s'\n  want '%s'", lf_last_error(),
                 bad[i].msg);
    }
    ps = NULL;
    LF_CHECK(lf_lbw_presets_load("/nonexistent/lbwpresets.txt", &ps) == LF_ERR_IO && !ps, "missing presets file");
    float base, blk[LF_BLK_OTHER];
    LF_CHECK(!lf_lbw_expand(v, 13, &base, blk), "length 13 rejected");
}

/* ---- the cleaned prompt ------------------------------------------------------------------------ */

static void test_clean(void) {
    expect_clean("a cat, <lora:x:1> wearing a hat", "a cat, wearing a hat", 1);
    expect_clean("<lora:x>a cat", "a cat", 1);
    expect_clean("  a cat <lora:x>  ", "a cat", 1);
    expect_clean("a <lora:x> <lora:y>\tb", "a b", 2);
    expect_clean("a<lora:x>b", "ab", 1);
    expect_clean("no tags at all", "no tags at all", 0);
    expect_clean("keep <hypernet:foo:1> and <lor> and < lora:x> as text", "keep <hypernet:foo:1> and <lor> and < lora:x> as "
                 "text", 0);
    expect_clean("", "", 0);
    expect_clean("<lora:x>", "", 1);
    lf_prompt *p = NULL;
    if (lf_prompt_parse("ünïcödé <lora:sub/my lora v2 : 0.5 : dyn=8 : ramp=linear>", &p) == LF_OK) {
        const lf_tag *t = &p->tags[0];
        LF_CHECK(!strcmp(t->name, "sub/my lora v2"), "name '%s'", t->name);
        LF_CHECK(t->col == 9, "UTF-8 column %d, want 9", t->col);
        LF_CHECK(t->dyn == 8 && t->ramp == LF_RAMP_LINEAR, "dyn %d ramp %d", t->dyn, (int)t->ramp);
        LF_CHECK(t->v[LF_TK_S].n_kf == 1 && t->v[LF_TK_S].constant && t->v[LF_TK_S].kf[0].value == 0.5f, "S");
        LF_CHECK(!strcmp(t->text, "<lora:sub/my lora v2 : 0.5 : dyn=8 : ramp=linear>"), "text '%s'", t->text);
        LF_CHECK(!strcmp(p->clean, "ünïcödé"), "clean '%s'", p->clean);
    } else {
        LF_CHECK(0, "unicode prompt: %s", lf_last_error());
    }
    lf_prompt_free(p);
    /* schedule parse details */
    if (lf_prompt_parse("<lora:x:te=0.1@1,0.6@6:unet=1@25%,0@0.75:in=-0.5>", &p) == LF_OK) {
        const lf_sched *te = &p->tags[0].v[LF_TK_TE], *u = &p->tags[0].v[LF_TK_UNET], *in = &p->tags[0].v[LF_TK_IN];
        LF_CHECK(te->n_kf == 2 && !te->constant && te->kf[1].kind == LF_POS_STEP && te->kf[1].pos == 6 &&
                 te->kf[1].value == 0.6f, "te schedule");
        LF_CHECK(u->n_kf == 2 && u->kf[0].kind == LF_POS_PERCENT && u->kf[0].pos == 25 && u->kf[1].kind == LF_POS_FRACTION &&
                 u->kf[1].pos == 0.75, "unet schedule");
        LF_CHECK(in->constant && in->kf[0].value == -0.5f, "negative strength");
        LF_CHECK(!p->tags[0].v[LF_TK_S].n_kf && !p->tags[0].v[LF_TK_MID].n_kf, "unset keys");
    } else {
        LF_CHECK(0, "schedule parse: %s", lf_last_error());
    }
    lf_prompt_free(p);
}

/* ---- errors --------------------------------------------------------------------------------------- */

static void test_errors(void) {
    /* the message format of docs/prompt-tags.md, with the tag's column */
    expect_parse_err("a photo of a cat, <lora:foo:te=abc>",
                     "prompt col 19: <lora:foo:te=abc>: 'abc' is not a number or schedule", 1);
    expect_parse_err("ünï <lora:foo:te=abc>", "prompt col 5: <lora:foo:te=abc>: 'abc' is not a number or schedule", 1);
    expect_parse_err("<lora:ok:1> then <lora:foo:tee=1>",
                     "prompt col 18: <lora:foo:tee=1>: unknown key 'tee' (keys: te, te1, te2, unet, in, mid, out, lbw, dyn, "
                     "ramp)", 1);
    expect_parse_err("<lora:foo:w=1>", "unknown key 'w'", 0);
    expect_parse_err("<lora:foo:TE=1>", "unknown key 'TE'", 0);
    expect_parse_err("<lora:foo:te=1:te=2>", "prompt col 1: <lora:foo:te=1:te=2>: key 'te' is given twice", 1);
    expect_parse_err("<lora:foo:ramp=hold:ramp=linear>", "key 'ramp' is given twice", 0);
    expect_parse_err("x <lora:foo:0.5", "prompt col 3: <lora:foo:0.5: tag is not closed with '>'", 1);
    expect_parse_err("<lora:foo:0.5 <lora:bar>", "prompt col 1: <lora:foo:0.5 <lora:bar>: '<' inside a tag (is a '>' "
                     "missing?)", 1);
    expect_parse_err("<lora:>", "prompt col 1: <lora:>: empty LoRA name", 1);
    expect_parse_err("<lora: :1>", "empty LoRA name", 0);
    expect_parse_err("<lora:foo::te=1>", "prompt col 1: <lora:foo::te=1>: empty field (two ':' in a row, or a ':' before '>')",
                     1);
    expect_parse_err("<lora:foo:>", "empty field", 0);
    expect_parse_err("<lora:foo:0.5:0.7:8:1>", "prompt col 1: <lora:foo:0.5:0.7:8:1>: '1' is a fourth plain value (at most "
                     "three: STRENGTH, UNET, DYN)", 1);
    expect_parse_err("<lora:foo:te=1:0.5>", "prompt col 1: <lora:foo:te=1:0.5>: '0.5' has no KEY= (plain values come "
                     "first: STRENGTH, then UNET, then DYN)", 1);
    expect_parse_err("<lora:foo:1:0.5:unet=1>", "key 'unet' is given twice (a second plain value is unet, a third dyn)", 0);
    expect_parse_err("<lora:foo:1:0.5:4:dyn=8>", "key 'dyn' is given twice", 0);
    expect_parse_err("<lora:foo:1:0.5:x>", "dyn must be a positive integer", 0);
    expect_parse_err("<lora:foo:0@0;1@1>", "prompt col 1: <lora:foo:0@0;1@1>: '0@0;1@1': ';' and '~' are loractl's "
                     "separators; write VALUE@POSITION,... or use --tag-dialect loractl", 1);
    expect_parse_err("<lora:foo:unet=0~0,1~1>", "';' and '~' are loractl's separators", 0);
    expect_parse_err("<lora:foo:hr=1>", "prompt col 1: <lora:foo:hr=1>: 'hr' is loractl's strength for a hires pass; "
                     "lorafuse has no hires pass", 1);
    expect_parse_err("<lora:foo:=1>", "'=1' has no key before '='", 0);
    expect_parse_err("<lora:foo:te=>", "prompt col 1: <lora:foo:te=>: empty value for 'te'", 1);
    expect_parse_err("<lora:foo:te=0.5,1>", "'0.5,1' is not a number or schedule (a schedule is VALUE@POSITION,"
                     "VALUE@POSITION,...)", 0);
    expect_parse_err("<lora:foo:te=0.1@1,0.6>", "key frame '0.6' has no '@position' (a schedule is VALUE@POSITION,...)", 0);
    expect_parse_err("<lora:foo:te=0.1@1,,0.6@6>", "empty key frame in '0.1@1,,0.6@6'", 0);
    expect_parse_err("<lora:foo:te=0.1@1,>", "empty key frame", 0);
    expect_parse_err("<lora:foo:te=@3>", "key frame '@3' has no value before '@'", 0);
    expect_parse_err("<lora:foo:te=a@3>", "'a' in key frame 'a@3' is not a number", 0);
    expect_parse_err("<lora:foo:te=1@>", "key frame '1@' has no position after '@'", 0);
    expect_parse_err("<lora:foo:te=1@2@3>", "key frame '1@2@3' has more than one '@'", 0);
    expect_parse_err("<lora:foo:te=1@x>", "'x' is not a step number, percentage or fraction", 0);
    expect_parse_err("<lora:foo:te=1@1e1>", "'1e1' is not a step number, percentage or fraction", 0);
    expect_parse_err("<lora:foo:te=1@+2>", "'+2' is not a step number, percentage or fraction", 0);
    expect_parse_err("<lora:foo:te=1@x%>", "'x%' is not a step number, percentage or fraction", 0);
    expect_parse_err("<lora:foo:te=1@-1>", "negative position '-1'", 0);
    expect_parse_err("<lora:foo:te=1@-0.5>", "negative position '-0.5'", 0);
    expect_parse_err("<lora:foo:te=1@-5%>", "negative position '-5%'", 0);
    expect_parse_err("<lora:foo:te=1@1.5>", "fraction '1.5' is above 1", 0);
    expect_parse_err("<lora:foo:te=1@150%>", "percentage '150%' is above 100%", 0);
    expect_parse_err("<lora:foo:te=1@99999999999>", "step number '99999999999' is too large", 0);
    expect_parse_err("<lora:foo:te=0@5,1@3>", "key frames must be in increasing order of position: '1@3' comes after a key "
                     "frame at the same or a later position", 0);
    expect_parse_err("<lora:foo:te=0@3,1@3>", "increasing order", 0);
    expect_parse_err("<lora:foo:te=0@0.5,1@50%>", "increasing order", 0);
    expect_parse_err("<lora:foo:te=0@60%,1@0.5>", "increasing order", 0);
    expect_parse_err("<lora:foo:te=1e999>", "'1e999' is out of range (strengths are at most 3.4e38 in magnitude", 0);
    expect_parse_err("<lora:foo:te=nan>", "'nan' is not a number or schedule", 0);
    expect_parse_err("<lora:foo:te=inf>", "'inf' is not a number or schedule", 0);
    expect_parse_err("<lora:foo:te=0x10>", "'0x10' is not a number or schedule", 0);
    expect_parse_err("<lora:foo:ramp=cubic>", "ramp must be 'hold' or 'linear', not 'cubic'", 0);
    expect_parse_err("<lora:foo:ramp=>", "empty value for 'ramp'", 0);
    expect_parse_err("<lora:foo:dyn=0>", "dyn must be a positive integer (the number of rank components), not '0'", 0);
    expect_parse_err("<lora:foo:dyn=-2>", "dyn must be a positive integer", 0);
    expect_parse_err("<lora:foo:dyn=4.5>", "dyn must be a positive integer", 0);
    expect_parse_err("<lora:foo:dyn=99999999999999999999>", "dyn=99999999999999999999 is out of range (at most 1048576 "
                     "rank components)", 0);
    expect_parse_err("<lora:foo:lbw=1,1,1,1,1>", "lbw has 5 values; a block-weight vector has 17 or 26 (SD1.x) or 12 or 20 "
                     "(SDXL)", 0);
    expect_parse_err("<lora:foo:lbw=1>", "lbw has 1 values", 0);
    expect_parse_err("<lora:foo:lbw=1,R,1,1,1,1,1,1,1,1,1,1>", "'R' in lbw is not a number (LBW's random and inherited "
                     "weights R, U, X are not supported)", 0);
    expect_parse_err("<lora:foo:lbw=1,a,1,1,1,1,1,1,1,1,1,1>", "'a' in lbw is not a number", 0);
    expect_parse_err("<lora:foo:lbw=1,,1,1,1,1,1,1,1,1,1,1>", "empty entry in lbw vector", 0);
    expect_parse_err("<lora:foo:lbw=MY PRESET>", "'MY PRESET' is neither a block-weight vector nor a preset name", 0);
    expect_parse_err("<lora:foo:lbw=>", "empty value for 'lbw'", 0);
    expect_parse_err("<lora:foo:lbw=ALL:in=0>", "prompt col 1: <lora:foo:lbw=ALL:in=0>: lbw cannot be combined with "
                     "in/mid/out (both set UNet block strengths)", 1);
    expect_parse_err("<lora:foo:out=1:lbw=ALL>", "lbw cannot be combined with in/mid/out", 0);
    expect_parse_err("a <LoRA:foo:1>", "prompt col 3: <LoRA:foo:1>: write tags as '<lora:NAME...>' or '<lyco:NAME...>' "
                     "(lower case)", 1);
    expect_parse_err("<LyCO:foo:1>", "write tags as '<lora:NAME...>'", 0);
    /* the first error stops the parse: a later good tag does not matter, an earlier one is not kept */
    expect_parse_err("<lora:a:1> <lora:b:x> <lora:c:1>", "prompt col 12: <lora:b:x>: 'x' is not a number or schedule", 1);
    /* long tags are shortened in the message */
    char longtag[600];
    memset(longtag, 'a', sizeof longtag);
    memcpy(longtag, "<lora:", 6);
    memcpy(longtag + 590, ":te=zz>", 8);
    lf_prompt *p = NULL;
    LF_CHECK(lf_prompt_parse(longtag, &p) == LF_ERR_ARG && strstr(lf_last_error(), "...: 'zz' is not a number"),
             "long tag message: %s", lf_last_error());
    lf_prompt_free(p);
    LF_CHECK(lf_prompt_parse(NULL, &p) == LF_ERR_ARG && !p, "NULL prompt");
}

/* ---- hostile input: numbers, escaping, limits, identical tags ------------------------------------ */

static char *repeat(const char *unit, size_t n, const char *prefix, const char *suffix) {
    size_t ul = strlen(unit), pl = strlen(prefix), sl = strlen(suffix);
    char *s = malloc(pl + ul * n + sl + 1);
    if (!s) return NULL;
    memcpy(s, prefix, pl);
    for (size_t i = 0; i < n; i++) memcpy(s + pl + i * ul, unit, ul);
    memcpy(s + pl + ul * n, suffix, sl + 1);
    return s;
}

static void test_numbers_in_tags(void) {
    /* the one grammar: what strtod reads but the grammar refuses is no number; too large says so */
    expect_parse_err("<lora:foo:0x10>", "prompt col 1: <lora:foo:0x10>: '0x10' is not a number or schedule", 1);
    expect_parse_err("<lora:foo:-inf>", "'-inf' is not a number or schedule", 0);
    expect_parse_err("<lora:foo:1e39>", "'1e39' is out of range (strengths are at most 3.4e38 in magnitude", 0);
    expect_parse_err("<lora:foo:-1e999@1>", "'-1e999' in key frame '-1e999@1' is out of range", 0);
    expect_parse_err("<lora:foo:1@1,inf@2>", "'inf' in key frame 'inf@2' is not a number", 0);
    expect_parse_err("<lora:foo:lbw=1,1e39,1,1,1,1,1,1,1,1,1,1>", "'1e39' in lbw is out of range", 0);
    expect_parse_err("<lora:foo:lbw=1e999>", "'1e999' in lbw is out of range", 0);
    expect_parse_err("<lora:foo:1@0x3>", "'0x3' is not a step number, percentage or fraction", 0);
    expect_parse_err("<lora:foo:1@1e999>", "'1e999' is not a step number, percentage or fraction", 0);
    expect_parse_err("<lora:foo:1@1e999%>", "'1e999%' is not a step number, percentage or fraction", 0);
    expect_parse_err("<lora:foo:dyn=0x10>", "dyn must be a positive integer (the number of rank components), not '0x10'", 0);
    expect_parse_err("<lora:foo:dyn=2000000>", "dyn=2000000 is out of range (at most 1048576 rank components)", 0);
    expect_const("<lora:foo:3.4e38>", SD1, 3.4e38f, 3.4e38f, 3.4e38f, 3.4e38f);
    expect_const("<lora:foo:1e-999>", SD1, 0, 0, 0, 0);
    expect_const("<lora:foo:+.5e1>", SD1, 5, 5, 5, 5);
    lf_prompt *p = NULL;
    LF_CHECK(lf_prompt_parse("<lora:foo:dyn=+7>", &p) == LF_OK && p->tags[0].dyn == 7, "dyn=+7");
    lf_prompt_free(p);
}

static void test_escaped_messages(void) {
    /* control bytes and invalid UTF-8 of the tag and of the quoted part are escaped */
    expect_parse_err("<lora:\x1b[31mEVIL\x1b[0m:x>",
                     "prompt col 1: <lora:\\x1b[31mEVIL\\x1b[0m:x>: 'x' is not a number or schedule", 1);
    expect_parse_err("<lora:a:te=\x1b]0;pwned\x07>",
                     "prompt col 1: <lora:a:te=\\x1b]0;pwned\\x07>: '\\x1b]0;pwned\\x07' is not a number or schedule", 1);
    expect_parse_err("\xff\xfe <lora:a:\xc3(>", "prompt col 4: <lora:a:\\xc3(>: '\\xc3(' is not a number or schedule", 1);
    expect_parse_err("<lora:a\r\nNegative prompt:1:foo=2>", "prompt col 1: <lora:a\\r\\nNegative prompt:1:foo=2>: "
                     "unknown key 'foo'", 0);
    expect_parse_err("<lora:a:\xe2\x80\xae" "1>", "'\\u202e1' is not a number or schedule", 0);
    /* a long tag: cut at a character boundary, never inside an escape */
    char *t = repeat("\x1b", 300, "<lora:", ":zz>");
    lf_prompt *p = NULL;
    LF_CHECK(t && lf_prompt_parse(t, &p) == LF_ERR_ARG, "long escaped tag");
    const char *e = lf_last_error();
    LF_CHECK(!strncmp(e, "prompt col 1: <lora:\\x1b\\x1b", 28) && strstr(e, "\\x1b...: 'zz' is not a number") &&
             strlen(e) < 400 && !strchr(e, 0x1b), "long escaped tag: %s", e);
    free(t);
    /* warnings quote the tag escaped too */
    lf_one o;
    if (one_open(&o, "<lora:\x1b[2J:unet=1@1,0@15>", SD1, 10))
        LF_CHECK(o.warn.n == 1 && !strchr(o.warn.v[0], 0x1b) && strstr(o.warn.v[0], "<lora:\\x1b[2J:"), "warning: %s",
                 o.warn.n ? o.warn.v[0] : "(none)");
    one_close(&o);
}

static void test_limits(void) {
    /* prompt bytes */
    char *t = repeat("a", LF_PROMPT_MAX_BYTES + 1, "", "");
    lf_prompt *p = NULL;
    LF_CHECK(t && lf_prompt_parse(t, &p) == LF_ERR_ARG && !p &&
                 !strcmp(lf_last_error(), "prompt of 128001 bytes is longer than the limit of 128000 bytes (docs/limits.md)"),
             "prompt bytes: %s", lf_last_error());
    t[LF_PROMPT_MAX_BYTES] = '\0';
    LF_CHECK(lf_prompt_parse(t, &p) == LF_OK && p, "a prompt at the limit");
    lf_prompt_free(p);
    p = NULL;
    free(t);
    /* tags per prompt: the first tag past the limit is named */
    t = repeat("<lora:a:.1>", LF_PROMPT_MAX_TAGS + 1, "", "");
    LF_CHECK(t && lf_prompt_parse(t, &p) == LF_ERR_ARG && !p &&
                 !strcmp(lf_last_error(), "prompt col 110001: <lora:a:.1>: more than 10000 tags in one prompt (docs/limits.md)"),
             "tags: %s", lf_last_error());
    t[11 * LF_PROMPT_MAX_TAGS] = '\0';
    LF_CHECK(lf_prompt_parse(t, &p) == LF_OK && p && p->n_tags == LF_PROMPT_MAX_TAGS, "10000 tags");
    if (p) LF_CHECK(lf_tag_same(&p->tags[0], &p->tags[9999]), "identical tags");
    lf_prompt_free(p);
    p = NULL;
    free(t);
    /* key frames per tag, over all its keys */
    /* key frames per tag count over all its keys: 10000 in unet, one more in te */
    lf_sbuf kb = {0};
    lf_sb_str(&kb, "<lora:a:unet=");
    for (int i = 1; i <= LF_TAG_MAX_KEYFRAMES; i++) lf_sb_printf(&kb, "%s0@%d", i > 1 ? "," : "", i);
    lf_sb_str(&kb, ":te=1@1>");
    LF_CHECK(!kb.oom && lf_prompt_parse(kb.s, &p) == LF_ERR_ARG &&
                 strstr(lf_last_error(), "...: more than 10000 key frames in one tag (docs/limits.md)"),
             "key frames: %s", lf_last_error());
    lf_sb_free(&kb);
    /* a schedule of 10000 key frames (the limit) over 10000 steps: linear, so quick */
    lf_sbuf b = {0};
    lf_sb_str(&b, "<lora:a:unet=");
    for (int i = 1; i <= LF_TAG_MAX_KEYFRAMES; i++) lf_sb_printf(&b, "%s%d@%d", i > 1 ? "," : "", i % 2, i);
    lf_sb_str(&b, ":ramp=linear>");
    lf_one o;
    if (!b.oom && one_open(&o, b.s, SD1, LF_TAG_MAX_KEYFRAMES)) {
        int ok = 1;
        for (int s = 1; s <= LF_TAG_MAX_KEYFRAMES && ok; s++) ok = lf_strength_at(&o.s, UNET, 0, s) == (float)(s % 2);
        LF_CHECK(ok && o.warn.n == 0, "10000 key frames: value of each step");
    }
    one_close(&o);
    /* the same 10000 key frames at 4 steps: one warning for the 9996 past the end */
    if (!b.oom && one_open(&o, b.s, SD1, 4))
        LF_CHECK(o.warn.n == 1 && strstr(o.warn.v[0], ": 9996 key frames land after the last step (4) and are never "
                                                      "reached, the first unet: '1@5' on step 5") &&
                     strlen(o.warn.v[0]) < 400,
                 "summarised warning: %s", o.warn.n ? o.warn.v[0] : "(none)");
    one_close(&o);
    lf_sb_free(&b);
    /* presets file: bytes and count */
    lf_lbw_presets *ps = NULL;
    t = repeat("#", LF_LBW_MAX_PRESET_BYTES + 1, "", "");
    LF_CHECK(t && lf_lbw_presets_parse(t, "big.txt", &ps) == LF_ERR_ARG && !ps &&
                 !strcmp(lf_last_error(), "big.txt: 1048577 bytes, more than the limit of 1048576 bytes for a presets file "
                                          "(docs/limits.md)"), "presets bytes: %s", lf_last_error());
    free(t);
    lf_sbuf pf = {0};
    for (int i = 0; i <= LF_LBW_MAX_PRESETS; i++) lf_sb_printf(&pf, "P%d:1,1,1,1,1,1,1,1,1,1,1,1\n", i);
    LF_CHECK(lf_lbw_presets_parse(pf.s, "many.txt", &ps) == LF_ERR_ARG &&
                 !strcmp(lf_last_error(), "many.txt:1001: preset 'P1000': more than 1000 presets in one file (docs/limits.md)"),
             "presets count: %s", lf_last_error());
    lf_sb_free(&pf);
    LF_CHECK(lf_lbw_presets_parse("A:1,1e39,1,1,1,1,1,1,1,1,1,1\n", "r.txt", &ps) == LF_ERR_ARG &&
                 !strcmp(lf_last_error(), "r.txt:1: preset 'A': entry 2 is out of range (at most 3.4e38 in magnitude)"),
             "presets range: %s", lf_last_error());
    LF_CHECK(lf_lbw_presets_parse("\x1b[1mA:0x1,1,1,1,1,1,1,1,1,1,1,1\n", "\x1b.txt", &ps) == LF_ERR_ARG &&
                 !strcmp(lf_last_error(), "\\x1b.txt:1: preset name '\\x1b[1mA' cannot be written in a tag "
                                          "(lbw=NAME): use letters, digits, '_', '.', '-' and '+', and not a number"),
             "presets escaped: %s", lf_last_error());
    LF_CHECK(lf_lbw_presets_parse("A\x1b:0x1,1,1,1,1,1,1,1,1,1,1,1\n", "\x1b.txt", &ps) == LF_ERR_ARG,
             "presets name with ESC refused");
    LF_CHECK(lf_lbw_presets_parse("B:0x1,1,1,1,1,1,1,1,1,1,1,1\n", "\x1b.txt", &ps) == LF_ERR_ARG &&
                 !strcmp(lf_last_error(), "\\x1b.txt:1: preset 'B': entry 1 is not a number"),
             "presets file name escaped: %s", lf_last_error());
    /* a name a tag could not reference (it reads as a number there) is refused in the file (found by fuzzing) */
    LF_CHECK(lf_lbw_presets_parse("\n\n1:1,1,1,1,1,1,1,1,1,\t1,1,1\r\n", "p.txt", &ps) == LF_ERR_ARG &&
                 strstr(lf_last_error(), "p.txt:3: preset name '1' cannot be written in a tag"),
             "numeric preset name: %s", lf_last_error());
    LF_CHECK(lf_lbw_name_ok("ALL0.5", 6) && lf_lbw_name_ok("my-preset_2", 11) && !lf_lbw_name_ok("1e3", 3) &&
                 !lf_lbw_name_ok("a b", 3) && !lf_lbw_name_ok("", 0),
             "lf_lbw_name_ok");
}

static void test_same(void) {
    static const struct {
        const char *a, *b;
        int same;
    } c[] = {
        {"<lora:a:.1>", "<lora:a:0.1>", 1},
        {"<lora:a : 0.1 >", "<lora:a:1e-1>", 1},
        {"<lora:a:te=1@1,0@50%:dyn=4>", "<lora:a:dyn=4:te=1@0,0@50%>", 0}, /* @0 and @1 are both step 1, written apart */
        {"<lora:a:te=1@1,0@50%:dyn=4>", "<lora:a:dyn=4:te=1@1, 0@50%>", 1},
        {"<lora:a:0.1>", "<lora:b:0.1>", 0},
        {"<lora:a:0.1>", "<lora:a:te=0.1:unet=0.1>", 0},
        {"<lora:a:0.1>", "<lora:a:0.1:ramp=linear>", 0},
        {"<lora:a:0.1>", "<lora:a:0.1:dyn=2>", 0},
        {"<lora:a:lbw=ALL>", "<lora:a:lbw=ALL>", 1},
        {"<lora:a:lbw=ALL>", "<lora:a:lbw=INS>", 0},
        {"<lora:a:lbw=1,1,1,1,1,1,1,1,1,1,1,1>", "<lora:a:lbw=1,1,1,1,1,1,1,1,1,1,1,0.5>", 0},
        {"<lora:a:0.5@50%>", "<lora:a:0.5@0.5>", 0},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "%s %s", c[i].a, c[i].b);
        lf_prompt *p = NULL;
        if (lf_prompt_parse(text, &p) != LF_OK) {
            LF_CHECK(0, "%s: %s", text, lf_last_error());
            continue;
        }
        LF_CHECK(lf_tag_same(&p->tags[0], &p->tags[1]) == c[i].same && lf_tag_same(&p->tags[1], &p->tags[0]) == c[i].same,
                 "%s: same %d", text, c[i].same);
        LF_CHECK(lf_tag_same(&p->tags[0], &p->tags[0]), "%s: a tag is the same as itself", text);
        lf_prompt_free(p);
    }
}

/* A1111's positional forms <lora:NAME:TE:UNET:DYN> and the <lyco:> alias (extra_networks_lora.py:
 * te = positional 1 or te=, unet = positional 2 or unet= or te, dyn = positional 3 or dyn=). */
static void test_a1111_positional(void) {
    expect_const("<lora:a:0.5:0.7>", SD1, 0.5f, 0.7f, 0.7f, 0.7f);
    expect_const("<lora:a:0.5:0.7:te=0.25>", SD1, 0.25f, 0.7f, 0.7f, 0.7f);
    expect_const("<lyco:a:0.5:0:16>", SD1, 0.5f, 0.0f, 0.0f, 0.0f);
    expect_const("<lora:a:te=0.5>", SD1, 0.5f, 0.5f, 0.5f, 0.5f);
    lf_prompt *p = NULL;
    LF_CHECK(lf_prompt_parse("x <lyco:sub/a : 0.5 : 0.7 : 16> y", &p) == LF_OK && p->n_tags == 1 &&
                 !strcmp(p->tags[0].name, "sub/a") && p->tags[0].dyn == 16 && !strcmp(p->clean, "x y"),
             "lyco alias with three positional values: %s", p ? "" : lf_last_error());
    lf_prompt_free(p);
    LF_CHECK(lf_prompt_parse("<lora:a:1:1:0>", &p) == LF_ERR_ARG && strstr(lf_last_error(), "dyn must be a positive"),
             "positional dyn 0");
    LF_CHECK(lf_prompt_parse("<loractl:a:1>", &p) == LF_OK && p->n_tags == 0, "<loractl: is text in the lorafuse dialect");
    lf_prompt_free(p);
}

int main(void) {
    test_a1111_positional();
    test_sdnext_page();
    test_syntax_examples();
    test_ramps();
    test_rounding();
    test_precedence();
    test_blocks();
    test_lbw();
    test_clean();
    test_errors();
    test_numbers_in_tags();
    test_escaped_messages();
    test_limits();
    test_same();
    return lf_test_finish();
}
