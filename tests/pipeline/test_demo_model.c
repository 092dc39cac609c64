/* test_demo_model.c: what the trained demo model (models/demo/shapes-sd1.safetensors, scripts/train_demo.py)
 * draws, measured on `lorafuse generate`'s PNGs, not looked at.
 * Each pixel is classified as the nearest colour of the training palette (red, green, blue, yellow, white)
 * or black (the outline LoRA's colour). The background is the majority class of the 4-px border ring; the
 * shape's colour is the majority class, other than the background's, inside the central 40x40 square.
 * Each adapter of models/demo/lora/ adds one concept, measured at strength 0 and 1 on the same prompt (its
 * trigger word included) and seed:
 *   outline_lora (kohya LoRA, "outlined"): the fraction of dark pixels (every channel below 120), which the
 *       training data has none of;
 *   stripes_loha (LyCORIS LoHa, "striped"): white horizontal bands every 16 px, measured as the amplitude of
 *       the luminance's (0, 4) Fourier component, A(kx, ky) = 2/4096 |sum L(x,y) exp(-2 pi i (kx x + ky y)/64)|
 *       in 8-bit levels (a sinusoid of amplitude a gives a);
 *   checker_dora (LyCORIS LoRA + DoRA, "checkered"): a checkerboard of 16-px cells, measured as the smaller of
 *       A(2, 2) and A(2, -2) (a checkerboard has both diagonals; an edge or a stripe has at most one).
 * Thresholds are what the shipped model achieves with margins (docs/demo-model.md); 64x64, 20 steps.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "lf_test.h"
#include "lf_test_data.h"
#include "lorafuse/lf_png.h"

#define MODEL "models/demo/shapes-sd1.safetensors"
#define LORA_DIR "models/demo/lora"

static const char *const NAMES[] = {"red", "green", "blue", "yellow", "white", "black"};
static const int PAL[6][3] = {{220, 30, 30}, {30, 170, 50}, {30, 60, 220}, {240, 210, 30}, {245, 245, 245}, {0, 0, 0}};

static int classify(const uint8_t *p) {
    int best = 0;
    long bd = -1;
    for (int c = 0; c < 6; c++) {
        long d = 0;
        for (int k = 0; k < 3; k++) d += (long)(p[k] - PAL[c][k]) * (p[k] - PAL[c][k]);
        if (bd < 0 || d < bd) bd = d, best = c;
    }
    return best;
}

/* The 64x64 image `generate` writes for prompt/seed (malloc'd RGB; NULL on failure, reported). */
static uint8_t *generate(const char *tmp, const char *prompt, long seed) {
    const char *bin = getenv("LF_BIN");
    static int run;
    char dir[512], cmd[2048], file[600];
    snprintf(dir, sizeof dir, "%s/run%d", tmp, run++);
    snprintf(cmd, sizeof cmd,
             "'%s' generate --model " MODEL " --lora-dir " LORA_DIR " --prompt '%s' --steps 20 --seed %ld "
             "--width 64 --height 64 --output-dir '%s' --quiet > /dev/null",
             bin, prompt, seed, dir);
    int rc = system(cmd);
    LF_CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "generate '%s' seed %ld: status %d", prompt, seed, rc);
    snprintf(file, sizeof file, "%s/00000-%ld.png", dir, seed);
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    if (lf_png_read(file, &rgb, &w, &h, NULL, NULL) != LF_OK || w != 64 || h != 64) {
        LF_CHECK(0, "read %s: %s", file, lf_last_error());
        free(rgb);
        return NULL;
    }
    return rgb;
}

/* Background and shape colour classes of an image; returns the fraction of shape-coloured pixels. */
static double colours(const uint8_t *rgb, int *bg, int *fg) {
    int nb[6] = {0}, nc[6] = {0}, all[6] = {0};
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++) {
            int c = classify(rgb + 3 * (y * 64 + x));
            all[c]++;
            if (x < 4 || y < 4 || x >= 60 || y >= 60) nb[c]++;
            if (x >= 12 && x < 52 && y >= 12 && y < 52) nc[c]++;
        }
    *bg = 0;
    for (int c = 1; c < 6; c++)
        if (nb[c] > nb[*bg]) *bg = c;
    *fg = *bg == 0 ? 1 : 0;
    for (int c = 0; c < 6; c++)
        if (c != *bg && nc[c] > nc[*fg]) *fg = c;
    return all[*fg] / 4096.0;
}

static double dark_fraction(const uint8_t *rgb) {
    int n = 0;
    for (int i = 0; i < 4096; i++) n += rgb[3 * i] < 120 && rgb[3 * i + 1] < 120 && rgb[3 * i + 2] < 120;
    return n / 4096.0;
}

/* Amplitude of the luminance's (kx, ky) Fourier component in 8-bit levels (see the file comment). */
static double band(const uint8_t *rgb, int kx, int ky) {
    double re = 0, im = 0;
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++) {
            const uint8_t *p = rgb + 3 * (y * 64 + x);
            double l = (p[0] + p[1] + p[2]) / 3.0, a = 2 * M_PI * (kx * x + ky * y) / 64;
            re += l * cos(a);
            im -= l * sin(a);
        }
    return 2 * sqrt(re * re + im * im) / 4096;
}

static double stripe_amplitude(const uint8_t *rgb) { return band(rgb, 0, 4); }

static double checker_amplitude(const uint8_t *rgb) {
    double a = band(rgb, 2, 2), b = band(rgb, 2, -2);
    return a < b ? a : b;
}

typedef struct {
    const char *shape, *fg, *bg;
    long seed;
} demo_case;

/* One adapter's concept: its file (in LORA_DIR, without .safetensors), trigger word, measure (name and unit
 * for the log) and bounds at strength 0 and 1, on prompts and seeds where the shipped adapter shows it. */
typedef struct {
    const char *lora, *trigger, *measure;
    double (*fn)(const uint8_t *rgb);
    double off_max, on_min;
    const demo_case *cases;
    int n;
} demo_concept;

/* Prompts and seeds the shipped model gets right. It gets many others wrong (24 of 63 right in
 * docs/demo-model.md's sweep): these are regression checks of what it does draw, not of quality. */
static const demo_case COLOUR_CASES[] = {{"circle", "blue", "yellow", 7},
                                         {"square", "red", "blue", 7},
                                         {"square", "green", "blue", 3},
                                         {"triangle", "red", "white", 7}};
/* The outline LoRA darkens these (0-0.1 % -> 7.5-22 % dark pixels); on other prompts and seeds its
 * effect is weak, absent or the other way (docs/demo-model.md). */
static const demo_case OUTLINE_CASES[] = {
    {"triangle", "white", "red", 7}, {"triangle", "white", "red", 3}, {"square", "yellow", "green", 3}};
/* The LoHa's stripes: amplitude 0.3-4.5 -> 48-73 levels on these; on 9 of 24 prompt/seed pairs of a sweep it
 * reaches 15 levels, mostly on seed 7 (docs/demo-model.md). */
static const demo_case STRIPE_CASES[] = {{"square", "red", "blue", 7},
                                         {"circle", "red", "green", 7},
                                         {"square", "green", "blue", 7},
                                         {"triangle", "yellow", "blue", 7}};
/* The DoRA's checkerboard: 0.4-7 -> 50-58 levels on these; 16 of 24 pairs reach 17 levels. */
static const demo_case CHECKER_CASES[] = {{"square", "red", "blue", 7},
                                          {"square", "yellow", "green", 3},
                                          {"circle", "red", "green", 3},
                                          {"triangle", "white", "red", 7}};
#define CASES(a) a, (int)(sizeof a / sizeof a[0])
static const demo_concept CONCEPTS[] = {
    {"outline_lora", "outlined", "dark pixels (fraction)", dark_fraction, 0.03, 0.05, CASES(OUTLINE_CASES)},
    {"stripes_loha", "striped", "stripe amplitude A(0,4) (levels)", stripe_amplitude, 12, 25,
     CASES(STRIPE_CASES)},
    {"checker_dora", "checkered", "checker amplitude min A(2,+-2) (levels)", checker_amplitude, 15, 30,
     CASES(CHECKER_CASES)},
};

/* The asked-for colours: the background by the border, the shape's colour in the middle. */
static void test_colours(const char *tmp, const demo_case *cases, int n) {
    for (int i = 0; i < n; i++) {
        char prompt[256];
        snprintf(prompt, sizeof prompt, "a %s %s on a %s background", cases[i].fg, cases[i].shape, cases[i].bg);
        uint8_t *rgb = generate(tmp, prompt, cases[i].seed);
        if (!rgb) continue;
        int bg, fg;
        double frac = colours(rgb, &bg, &fg);
        printf("  '%s' seed %ld: background %s, shape %s (%.1f %% of the image)\n", prompt, cases[i].seed, NAMES[bg],
               NAMES[fg], 100 * frac);
        LF_CHECK(!strcmp(NAMES[bg], cases[i].bg), "'%s' seed %ld: background %s", prompt, cases[i].seed, NAMES[bg]);
        LF_CHECK(!strcmp(NAMES[fg], cases[i].fg), "'%s' seed %ld: shape colour %s", prompt, cases[i].seed, NAMES[fg]);
        LF_CHECK(frac >= 0.05, "'%s' seed %ld: the shape covers %.1f %% of the image", prompt, cases[i].seed, 100 * frac);
        free(rgb);
    }
}

/* The adapter at strength 1 shows its concept (measure >= on_min); at strength 0 (same prompt, trigger word
 * included) it does not (measure <= off_max). LF_DEMO_STRENGTHS="A,B" replaces the strengths 0 and 1 (to show
 * that the check fails when the adapter is off in both or on in both). */
static void test_concept(const char *tmp, const demo_concept *c) {
    const char *env = getenv("LF_DEMO_STRENGTHS");
    double s[2] = {0, 1};
    if (env && sscanf(env, "%lf,%lf", &s[0], &s[1]) != 2) LF_CHECK(0, "LF_DEMO_STRENGTHS='%s': want A,B", env);
    for (int i = 0; i < c->n; i++) {
        const demo_case *k = &c->cases[i];
        double m[2];
        for (int on = 0; on < 2; on++) {
            char prompt[256];
            snprintf(prompt, sizeof prompt, "a %s %s on a %s background, %s <lora:%s:%g>", k->fg, k->shape, k->bg,
                     c->trigger, c->lora, s[on]);
            uint8_t *rgb = generate(tmp, prompt, k->seed);
            m[on] = rgb ? c->fn(rgb) : -1;
            free(rgb);
        }
        printf("  %s %s on %s seed %ld: %s %.3f at strength %g, %.3f at %g\n", k->fg, k->shape, k->bg, k->seed,
               c->measure, m[0], s[0], m[1], s[1]);
        LF_CHECK(m[0] >= 0 && m[0] <= c->off_max, "%s, %s %s on %s seed %ld, strength %g: %s %.3f > %g", c->lora,
                 k->fg, k->shape, k->bg, k->seed, s[0], c->measure, m[0], c->off_max);
        LF_CHECK(m[1] >= c->on_min, "%s, %s %s on %s seed %ld, strength %g: %s %.3f < %g", c->lora, k->fg, k->shape,
                 k->bg, k->seed, s[1], c->measure, m[1], c->on_min);
    }
}

int main(void) {
    if (!getenv("LF_BIN")) {
        printf("LF_BIN not set (run through ctest)\n");
        return 77;
    }
    char tmp[512];
    LF_CHECK(lf_test_tmpdir(tmp, sizeof tmp, "demo") == 0, "temporary directory");
    printf("colours\n");
    test_colours(tmp, COLOUR_CASES, (int)(sizeof COLOUR_CASES / sizeof COLOUR_CASES[0]));
    for (size_t i = 0; i < sizeof CONCEPTS / sizeof CONCEPTS[0]; i++) {
        printf("%s (trigger '%s')\n", CONCEPTS[i].lora, CONCEPTS[i].trigger);
        test_concept(tmp, &CONCEPTS[i]);
    }
    if (lf_test_rmtree(tmp) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return lf_test_finish();
}
