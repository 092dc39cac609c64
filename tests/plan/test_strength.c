/* test_strength.c: the step arithmetic of lf_strength.h (docs/prompt-tags.md "Values and
 * schedules"): the fraction / percentage rounding 1 + floor(f*(N-1) + 0.5) checked exhaustively against
 * exact integer arithmetic for positions written in the prompt, hold and linear evaluation of hand-made
 * schedules (before the first key frame, ties, past the end), lf_sched_fill against lf_sched_eval bit
 * for bit on random schedules, LBW expansion of every length.
 */
#include <stdint.h>

#include "lf_test.h"
#include "lf_test_data.h"

#include "lorafuse/lf_strength.h"

/* Step of a position parsed from prompt text (so the decimal goes through the real number scanner). */
static int step_of(const char *pos, int n) {
    char tag[96];
    snprintf(tag, sizeof tag, "<lora:x:unet=1@%s>", pos);
    lf_prompt *p = NULL;
    if (lf_prompt_parse(tag, &p) != LF_OK) return -1;
    const lf_keyframe *kf = &p->tags[0].v[LF_TK_UNET].kf[0];
    int s = lf_sched_step(kf->kind, kf->pos, n);
    lf_prompt_free(p);
    return s;
}

static void test_rounding_exhaustive(void) {
    int bad = 0, checked = 0;
    for (int n = 1; n <= 60; n++) {
        /* integer percentages: 1 + floor(p*(n-1)/100 + 1/2) = 1 + (2*p*(n-1) + 100) / 200 */
        for (int p = 0; p <= 100; p++) {
            char pos[16];
            snprintf(pos, sizeof pos, "%d%%", p);
            int want = 1 + (2 * p * (n - 1) + 100) / 200;
            int got = step_of(pos, n);
            checked++;
            if (got != want && bad++ < 10) LF_CHECK(0, "%s of %d steps: step %d, want %d", pos, n, got, want);
        }
        /* fractions with three decimals: k/1000 */
        for (int k = 0; k <= 1000; k += 7) {
            char pos[16];
            snprintf(pos, sizeof pos, "%d.%03d", k / 1000, k % 1000);
            int want = 1 + (2 * k * (n - 1) + 1000) / 2000;
            int got = step_of(pos, n);
            checked++;
            if (got != want && bad++ < 10) LF_CHECK(0, "@%s of %d steps: step %d, want %d", pos, n, got, want);
        }
        /* half percentages: 12.5% */
        for (int h = 1; h < 200; h += 2) {
            char pos[16];
            snprintf(pos, sizeof pos, "%d.5%%", h / 2);
            int want = 1 + (2 * h * (n - 1) + 200) / 400;
            int got = step_of(pos, n);
            checked++;
            if (got != want && bad++ < 10) LF_CHECK(0, "%s of %d steps: step %d, want %d", pos, n, got, want);
        }
    }
    LF_CHECK(bad == 0, "%d of %d rounding cases wrong", bad, checked);
    /* step numbers: as written, @0 = 1 */
    LF_CHECK(lf_sched_step(LF_POS_STEP, 0, 20) == 1 && lf_sched_step(LF_POS_STEP, 1, 20) == 1 &&
             lf_sched_step(LF_POS_STEP, 7, 20) == 7 && lf_sched_step(LF_POS_STEP, 30, 20) == 30, "step numbers");
    LF_CHECK(lf_sched_step(LF_POS_FRACTION, 1.0, 20) == 20 && lf_sched_step(LF_POS_PERCENT, 100, 20) == 20 &&
             lf_sched_step(LF_POS_FRACTION, 0.0, 20) == 1, "ends of the run");
}

static lf_sched mk(lf_keyframe *kf, size_t n) {
    lf_sched s;
    memset(&s, 0, sizeof s);
    s.kf = kf;
    s.n_kf = n;
    return s;
}

static void test_eval(void) {
    lf_keyframe a[3] = {{0.5f, LF_POS_STEP, 3, 0, 0}, {1.0f, LF_POS_STEP, 5, 0, 0}, {0.0f, LF_POS_PERCENT, 100, 0, 0}};
    lf_sched s = mk(a, 3);
    /* N = 9: key frames at steps 3, 5, 9 */
    float hold[9] = {0, 0, 0.5f, 0.5f, 1, 1, 1, 1, 0};
    float lin[9] = {0, 0, 0.5f, 0.75f, 1, 0.75f, 0.5f, 0.25f, 0};
    for (int t = 1; t <= 9; t++) {
        LF_CHECK(lf_sched_eval(&s, LF_RAMP_HOLD, t, 9) == hold[t - 1], "hold t=%d: %g", t,
                 (double)lf_sched_eval(&s, LF_RAMP_HOLD, t, 9));
        LF_CHECK(fabsf(lf_sched_eval(&s, LF_RAMP_LINEAR, t, 9) - lin[t - 1]) < 1e-6f, "linear t=%d: %g", t,
                 (double)lf_sched_eval(&s, LF_RAMP_LINEAR, t, 9));
    }
    /* N = 4: 100% = step 4 lands before step 5 (the mixed schedule is out of order there; eval still
     * takes the last key frame at or before t) */
    LF_CHECK(lf_sched_eval(&s, LF_RAMP_HOLD, 4, 4) == 0.0f, "100%% of 4 = step 4, later in the list");
    /* ties: three key frames on step 2, the last one wins; linear then runs from it */
    lf_keyframe b[4] = {{0.1f, LF_POS_STEP, 0, 0, 0}, {0.2f, LF_POS_STEP, 2, 0, 0}, {0.3f, LF_POS_FRACTION, 0.25, 0, 0},
                        {0.7f, LF_POS_STEP, 6, 0, 0}};
    s = mk(b, 4); /* N = 5: 0.25 -> 1 + floor(1 + 0.5) = 2 */
    LF_CHECK(lf_sched_eval(&s, LF_RAMP_HOLD, 1, 5) == 0.1f, "t1");
    LF_CHECK(lf_sched_eval(&s, LF_RAMP_HOLD, 2, 5) == 0.3f, "tie: later wins");
    LF_CHECK(fabsf(lf_sched_eval(&s, LF_RAMP_LINEAR, 4, 5) - 0.5f) < 1e-6f, "linear from the winning key frame: %g",
             (double)lf_sched_eval(&s, LF_RAMP_LINEAR, 4, 5));
    LF_CHECK(fabsf(lf_sched_eval(&s, LF_RAMP_LINEAR, 5, 5) - 0.6f) < 1e-6f, "toward a key frame past the end");
    /* constant */
    lf_keyframe c[1] = {{0.25f, LF_POS_STEP, 0, 0, 0}};
    s = mk(c, 1);
    s.constant = 1;
    LF_CHECK(lf_sched_eval(&s, LF_RAMP_LINEAR, 1, 3) == 0.25f && lf_sched_eval(&s, LF_RAMP_HOLD, 3, 3) == 0.25f, "constant");
    /* one key frame: 0 before, held after (both ramps) */
    lf_keyframe d[1] = {{2.0f, LF_POS_STEP, 4, 0, 0}};
    s = mk(d, 1);
    LF_CHECK(lf_sched_eval(&s, LF_RAMP_LINEAR, 3, 9) == 0.0f && lf_sched_eval(&s, LF_RAMP_LINEAR, 4, 9) == 2.0f &&
             lf_sched_eval(&s, LF_RAMP_LINEAR, 9, 9) == 2.0f, "single key frame, linear");
    /* N = 1: every fraction is step 1 */
    lf_keyframe e[2] = {{1.0f, LF_POS_FRACTION, 0.0, 0, 0}, {3.0f, LF_POS_FRACTION, 1.0, 0, 0}};
    s = mk(e, 2);
    LF_CHECK(lf_sched_eval(&s, LF_RAMP_HOLD, 1, 1) == 3.0f && lf_sched_eval(&s, LF_RAMP_LINEAR, 1, 1) == 3.0f, "N = 1");
}

/* lf_sched_fill against lf_sched_eval, bit for bit, on random schedules of every kind: steps, fractions
 * and percentages mixed (so out of order once rounded), ties, key frames past the end, both ramps. */
static void test_fill(void) {
    uint32_t seed = 12345;
    int bad = 0, cases = 0;
    for (int c = 0; c < 400; c++) {
        lf_keyframe kf[24];
        seed = seed * 1664525u + 1013904223u;
        size_t n = 1 + (seed >> 8) % 24;
        int n_steps = 1 + (int)((seed >> 16) % 40);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1664525u + 1013904223u;
            kf[i].value = (float)((int)(seed >> 20) % 21 - 10) / 8.0f;
            kf[i].kind = (lf_pos_kind)((seed >> 4) % 3);
            kf[i].pos = kf[i].kind == LF_POS_STEP ? (double)((seed >> 9) % 50)
                        : kf[i].kind == LF_POS_FRACTION ? (double)((seed >> 9) % 1001) / 1000.0
                                                        : (double)((seed >> 9) % 101);
            kf[i].col = 0;
        }
        lf_sched s = mk(kf, n);
        s.constant = n == 1 && c % 7 == 0;
        float out[40];
        for (int r = 0; r < 2; r++) {
            lf_ramp ramp = r ? LF_RAMP_LINEAR : LF_RAMP_HOLD;
            cases++;
            if (lf_sched_fill(&s, ramp, n_steps, out) != LF_OK) {
                LF_CHECK(0, "fill failed: %s", lf_last_error());
                continue;
            }
            for (int t = 1; t <= n_steps; t++) {
                float e = lf_sched_eval(&s, ramp, t, n_steps);
                if (memcmp(&e, &out[t - 1], sizeof e) && bad++ < 5)
                    LF_CHECK(0, "case %d ramp %d step %d of %d: fill %g, eval %g", c, r, t, n_steps, (double)out[t - 1],
                             (double)e);
            }
        }
    }
    LF_CHECK(bad == 0, "fill = eval on %d random schedules (%d differ)", cases, bad);
}

static void test_lbw_expand(void) {
    float v[26], base, blk[LF_BLK_OTHER];
    for (int i = 0; i < 26; i++) v[i] = (float)(i + 1);
    struct { int n; const char *last_block; int zeros; } c[] = {{12, "OUT05", 25 - 11}, {17, "OUT11", 25 - 16},
                                                                {20, "OUT08", 25 - 19}, {26, "OUT11", 0}};
    for (size_t k = 0; k < 4; k++) {
        LF_CHECK(lf_lbw_expand(v, c[k].n, &base, blk) && base == 1.0f, "expand %d", c[k].n);
        int zeros = 0, last = -1;
        for (int b = 0; b < LF_BLK_OTHER; b++) {
            if (blk[b] == 0) zeros++;
            if (blk[b] == (float)c[k].n) last = b;
        }
        LF_CHECK(zeros == c[k].zeros, "length %d: %d blocks left at 0, want %d", c[k].n, zeros, c[k].zeros);
        LF_CHECK(last >= 0 && !strcmp(lf_block_name(last), c[k].last_block), "length %d: last entry on %s", c[k].n,
                 last >= 0 ? lf_block_name(last) : "none");
    }
    lf_lbw_expand(v, 17, &base, blk);
    LF_CHECK(blk[1] == 2 && blk[2] == 3 && blk[4] == 4 && blk[LF_BLK_M00] == 8 && blk[LF_BLK_OUT00 + 3] == 9 &&
             blk[0] == 0 && blk[3] == 0, "17: IN01 IN02 IN04 .. M00 OUT03");
    lf_lbw_expand(v, 12, &base, blk);
    LF_CHECK(blk[4] == 2 && blk[8] == 5 && blk[LF_BLK_M00] == 6 && blk[LF_BLK_OUT00] == 7 && blk[1] == 0, "12: IN04.. M00 OUT00");
    lf_lbw_expand(v, 20, &base, blk);
    LF_CHECK(blk[0] == 2 && blk[8] == 10 && blk[LF_BLK_M00] == 11 && blk[LF_BLK_OUT00 + 8] == 20 && blk[9] == 0, "20");
    lf_lbw_expand(v, 26, &base, blk);
    LF_CHECK(blk[11] == 13 && blk[LF_BLK_M00] == 14 && blk[LF_BLK_OUT00 + 11] == 26, "26");
    LF_CHECK(!lf_lbw_expand(v, 18, &base, blk) && !lf_lbw_expand(v, 0, &base, blk), "bad lengths");
    /* built-in preset names */
    lf_lbw_presets *ps = NULL;
    LF_CHECK(lf_lbw_presets_load(NULL, &ps) == LF_OK, "built-ins");
    char names[256];
    LF_CHECK(!strcmp(lf_lbw_preset_names(ps, names, sizeof names), "NONE, ALL, INS, IND, INALL, MIDD, OUTD, OUTS, OUTALL, ALL0.5"),
             "names: %s", names);
    int n = 0;
    const float *all05 = lf_lbw_preset_find(ps, "ALL0.5", &n);
    LF_CHECK(all05 && n == 17 && all05[0] == 0.5f && all05[16] == 0.5f, "ALL0.5");
    LF_CHECK(!lf_lbw_preset_find(ps, "all", &n), "preset names are case-sensitive");
    lf_lbw_presets_free(ps);
    /* a presets file on disk */
    char dir[256];
    const char *path = lf_test_tmpdir(dir, sizeof dir, "presets") ? NULL : lf_test_path(dir, "presets.txt");
    if (path && !lf_test_write_text(path, "# user presets\nHALF:0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5\n")) {
        ps = NULL;
        LF_CHECK(lf_lbw_presets_load(path, &ps) == LF_OK && lf_lbw_preset_find(ps, "HALF", &n) && n == 12, "file presets: %s",
                 lf_last_error());
        lf_lbw_presets_free(ps);
    }
    if (path) lf_test_rmtree(dir);
}

int main(void) {
    test_rounding_exhaustive();
    test_eval();
    test_fill();
    test_lbw_expand();
    return lf_test_finish();
}
