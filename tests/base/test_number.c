/* test_number.c: the number grammar of host/base/number.h (every form it takes and refuses, range
 * errors apart from syntax errors, integers up to the ends of long long, the command-line messages)
 * and the escaping of user text in host/base/text.h / strbuf.h (control bytes, DEL, invalid UTF-8 of
 * every kind, C1 and bidi marks, valid UTF-8 kept, cutting at a character boundary, idempotence,
 * the last error escaped in place).
 */
#include <float.h>
#include <limits.h>

#include "lf_test.h"
#include "host/base/number.h"
#include "host/base/strbuf.h"
#include "host/base/text.h"

static lf_num_res num(const char *s, double max, double *v, unsigned *form) {
    return lf_num_parse(s, strlen(s), max, v, form);
}

static void test_numbers(void) {
    static const struct {
        const char *s;
        double v;
        unsigned form;
    } ok[] = {{"0", 0, 0},           {"1", 1, 0},           {"-1", -1, LF_NUM_SIGN},
              {"+2", 2, LF_NUM_SIGN}, {".5", 0.5, LF_NUM_DOT}, {"5.", 5, LF_NUM_DOT},
              {"0.25", 0.25, LF_NUM_DOT}, {"1e3", 1000, LF_NUM_EXP}, {"1E-2", 0.01, LF_NUM_EXP},
              {"-2.5e+1", -25, LF_NUM_SIGN | LF_NUM_DOT | LF_NUM_EXP}, {"007", 7, 0},
              {"3.4028234663852886e38", 3.4028234663852886e38, LF_NUM_DOT | LF_NUM_EXP}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        double v = -99;
        unsigned f = 99;
        LF_CHECK(num(ok[i].s, LF_NUM_F32_MAX, &v, &f) == LF_NUM_OK && v == ok[i].v && f == ok[i].form,
                 "'%s' -> %g form %u", ok[i].s, v, f);
    }
    static const char *const syntax[] = {"",     "+",     "-",    ".",   "e3",   "1e",   "1e+",  "0x10", "0X1p3",
                                         "inf",  "-inf",  "nan",  "NaN", "infinity", " 1", "1 ",  "1,5", "1_000",
                                         "1.2.3", "--1",  "+-1",  "1e3.5", "1f", "\xd9\xa1" /* Arabic-Indic 1 */};
    for (size_t i = 0; i < sizeof syntax / sizeof syntax[0]; i++) {
        double v = 7;
        LF_CHECK(num(syntax[i], LF_NUM_F32_MAX, &v, NULL) == LF_NUM_SYNTAX && v == 7, "'%s' is no number", syntax[i]);
    }
    double v = 7;
    LF_CHECK(num("1e999", 1e308, &v, NULL) == LF_NUM_RANGE && v == 7, "1e999: out of range, not a syntax error");
    LF_CHECK(num("-1e999", DBL_MAX, &v, NULL) == LF_NUM_RANGE, "-1e999");
    LF_CHECK(num("1e39", LF_NUM_F32_MAX, &v, NULL) == LF_NUM_RANGE, "1e39 is beyond an f32");
    LF_CHECK(num("3.5e38", LF_NUM_F32_MAX, &v, NULL) == LF_NUM_RANGE, "3.5e38 is beyond an f32");
    LF_CHECK(num("101", 100, &v, NULL) == LF_NUM_RANGE && num("-101", 100, &v, NULL) == LF_NUM_RANGE, "max_abs");
    LF_CHECK(num("1e-999", LF_NUM_F32_MAX, &v, NULL) == LF_NUM_OK && v == 0, "1e-999 reads as 0");
    /* the length of the text is what counts, not a NUL: "12" of "123" */
    LF_CHECK(lf_num_parse("123", 2, 1e9, &v, NULL) == LF_NUM_OK && v == 12, "exact span");
    /* long numbers are numbers (heap copy) */
    char big[400];
    memset(big, '0', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    big[sizeof big - 2] = '5';
    LF_CHECK(num(big, 10, &v, NULL) == LF_NUM_OK && v == 5, "398 zeros then 5");
    big[0] = '1';
    LF_CHECK(num(big, DBL_MAX, &v, NULL) == LF_NUM_RANGE, "a 399-digit number is beyond a double");
}

static void test_integers(void) {
    long long v = 7;
    LF_CHECK(lf_num_parse_int("42", 2, 0, 100, &v) == LF_NUM_OK && v == 42, "42");
    LF_CHECK(lf_num_parse_int("-1", 2, -1, 100, &v) == LF_NUM_OK && v == -1, "-1");
    LF_CHECK(lf_num_parse_int("+3", 2, 0, 100, &v) == LF_NUM_OK && v == 3, "+3");
    LF_CHECK(lf_num_parse_int("9223372036854775807", 19, LLONG_MIN, LLONG_MAX, &v) == LF_NUM_OK && v == LLONG_MAX,
             "LLONG_MAX");
    LF_CHECK(lf_num_parse_int("-9223372036854775808", 20, LLONG_MIN, LLONG_MAX, &v) == LF_NUM_OK && v == LLONG_MIN,
             "LLONG_MIN");
    v = 7;
    LF_CHECK(lf_num_parse_int("9223372036854775808", 19, LLONG_MIN, LLONG_MAX, &v) == LF_NUM_RANGE && v == 7,
             "LLONG_MAX + 1 overflows");
    LF_CHECK(lf_num_parse_int("-9223372036854775809", 20, LLONG_MIN, LLONG_MAX, &v) == LF_NUM_RANGE, "LLONG_MIN - 1");
    LF_CHECK(lf_num_parse_int("99999999999999999999999", 23, 0, 10, &v) == LF_NUM_RANGE, "20+ digits");
    LF_CHECK(lf_num_parse_int("0", 1, 1, 10, &v) == LF_NUM_RANGE && lf_num_parse_int("11", 2, 1, 10, &v) == LF_NUM_RANGE,
             "range");
    static const char *const bad[] = {"", "-", "+", "1.0", "1e3", "0x10", " 1", "1 ", "1a", "--1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        LF_CHECK(lf_num_parse_int(bad[i], strlen(bad[i]), LLONG_MIN, LLONG_MAX, &v) == LF_NUM_SYNTAX, "'%s'", bad[i]);
    /* the command-line forms */
    LF_CHECK(lf_num_arg_int("--steps", "20", 1, 10000, &v) == LF_OK && v == 20, "--steps 20");
    LF_CHECK(lf_num_arg_int("--steps", "0x10", 1, 10000, &v) == LF_ERR_ARG &&
                 !strcmp(lf_last_error(), "bad --steps '0x10' (1 to 10000)"), "%s", lf_last_error());
    LF_CHECK(lf_num_arg_int("--steps", "\x1b[31m", 1, 10000, &v) == LF_ERR_ARG &&
                 !strcmp(lf_last_error(), "bad --steps '\\x1b[31m' (1 to 10000)"), "escaped: %s", lf_last_error());
    double d;
    LF_CHECK(lf_num_arg("--cfg", "7.5", 0, 100, &d) == LF_OK && d == 7.5, "--cfg 7.5");
    LF_CHECK(lf_num_arg("--cfg", "inf", 0, 100, &d) == LF_ERR_ARG && !strcmp(lf_last_error(), "bad --cfg 'inf' (0 to 100)"),
             "%s", lf_last_error());
    LF_CHECK(lf_num_arg("--cfg", "-1", 0, 100, &d) == LF_ERR_ARG && lf_num_arg("--cfg", "101", 0, 100, &d) == LF_ERR_ARG,
             "--cfg range");
}

static const char *esc(const char *s) {
    static char out[256];
    return lf_esc(out, sizeof out, s, strlen(s));
}

static void test_escape(void) {
    static const struct {
        const char *in, *out;
    } c[] = {
        {"plain text <lora:a:1>", "plain text <lora:a:1>"},
        {"tab\there\nnl\rcr", "tab\\there\\nnl\\rcr"},
        {"\x1b[31mEVIL\x1b[0m", "\\x1b[31mEVIL\\x1b[0m"},
        {"bell\x07 del\x7f nul-free \x01", "bell\\x07 del\\x7f nul-free \\x01"},
        {"back\\slash \\(kept\\)", "back\\slash \\(kept\\)"},
        {"\xc3\xbc" "n\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
         "\xc3\xbc" "n\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        {"stray \x80 cont", "stray \\x80 cont"},
        {"lone lead \xc3", "lone lead \\xc3"},
        {"cut \xe2\x82 short", "cut \\xe2\\x82 short"},
        {"overlong \xc0\xaf \xe0\x80\xaf", "overlong \\xc0\\xaf \\xe0\\x80\\xaf"},
        {"surrogate \xed\xa0\x80", "surrogate \\xed\\xa0\\x80"},
        {"beyond \xf4\x90\x80\x80 \xf5\x80", "beyond \\xf4\\x90\\x80\\x80 \\xf5\\x80"},
        {"\xff\xfe", "\\xff\\xfe"},
        {"csi \xc2\x9b" "31m", "csi \\u009b31m"},
        {"rlo \xe2\x80\xae gnp.exe", "rlo \\u202e gnp.exe"},
        {"isolate \xe2\x81\xa6x\xe2\x81\xa9 lrm \xe2\x80\x8e ls \xe2\x80\xa8", "isolate \\u2066x\\u2069 lrm \\u200e ls \\u2028"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        const char *e = esc(c[i].in);
        LF_CHECK(!strcmp(e, c[i].out), "escape %zu: '%s', want '%s'", i, e, c[i].out);
        char twice[256];
        LF_CHECK(!strcmp(lf_esc(twice, sizeof twice, e, strlen(e)), e), "escaping is idempotent (%zu)", i);
        lf_sbuf b = {0};
        lf_sb_escape(&b, c[i].in, strlen(c[i].in));
        LF_CHECK(!b.oom && !strcmp(b.s ? b.s : "", c[i].out), "lf_sb_escape %zu: '%s'", i, b.s ? b.s : "(null)");
        lf_sb_free(&b);
    }
    /* every output byte is printable ASCII or part of valid, visible UTF-8 */
    char all[256 * 2], out[2048];
    for (int i = 0; i < 255; i++) all[i] = (char)(i + 1);
    lf_esc(out, sizeof out, all, 255);
    for (const char *p = out; *p; p++) {
        unsigned char u = (unsigned char)*p;
        LF_CHECK(u >= 0x20 && u < 0x7f, "byte 0x%02x in the escape of every byte", u);
    }
    /* cutting: at a character or escape boundary, ending with "..." */
    char small[12];
    LF_CHECK(!strcmp(lf_esc(small, sizeof small, "abcdefghijklmnop", 16), "abcdefgh..."), "cut: %s", small);
    LF_CHECK(!strcmp(lf_esc(small, sizeof small, "abcdefghijk", 11), "abcdefghijk"), "fits exactly: %s", small);
    LF_CHECK(!strcmp(lf_esc(small, sizeof small, "abcdef\x1b\x1b\x1b", 9), "abcdef..."), "no half escape: %s", small);
    LF_CHECK(!strcmp(lf_esc(small, sizeof small, "abcdefg\xe2\x82\xac\xe2\x82\xac", 13), "abcdefg..."),
             "no half character: %s", small);
    char tiny[4];
    LF_CHECK(!strcmp(lf_esc(tiny, sizeof tiny, "abcdef", 6), "..."), "cap 4: %s", tiny);
    LF_CHECK(!strcmp(lf_esc(tiny, sizeof tiny, "", 0), ""), "empty");
    /* the last error, escaped in place; escaping twice changes nothing */
    LF_CHECK(lf_err(LF_ERR_IO, "cannot open '%s'", "/tmp/\x1b[2Jx") == LF_ERR_IO && lf_err_escape(LF_ERR_IO) == LF_ERR_IO &&
                 !strcmp(lf_last_error(), "cannot open '/tmp/\\x1b[2Jx'") && lf_err_escape(LF_OK) == LF_OK &&
                 !strcmp(lf_last_error(), "cannot open '/tmp/\\x1b[2Jx'"), "lf_err_escape: %s", lf_last_error());
    /* lf_utf8_next */
    unsigned cp;
    LF_CHECK(lf_utf8_next("\xf0\x9f\x98\x80", 4, &cp) == 4 && cp == 0x1F600, "U+1F600");
    LF_CHECK(lf_utf8_next("\xf0\x9f\x98", 3, &cp) == 0, "truncated by n");
    LF_CHECK(lf_utf8_next("\xef\xbf\xbf", 3, &cp) == 3 && cp == 0xFFFF, "U+FFFF");
}

int main(void) {
    test_numbers();
    test_integers();
    test_escape();
    return lf_test_finish();
}
