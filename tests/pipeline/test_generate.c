/* test_generate.c: `lorafuse generate`: the pipeline end to end against diffusers, the PNG and
 * its A1111 parameters chunk, SHA-256 (NIST vectors), file names that never overwrite, and the checks
 * that stop bad input before any work.
 * Goldens: tests/data/pipeline/pipeline.safetensors (scripts/golden/model_pipeline.py: diffusers 0.30.3
 * StableDiffusionPipeline on models/sd15-mini.safetensors, with and without models/lora/mini_lora and
 * with per-step schedules) and tests/data/pipeline/pipeline-sdxl.safetensors (scripts/golden/model_pipeline_sdxl.py:
 * StableDiffusionXLPipeline on tests/data/pipeline/sdxl-mini.safetensors with tests/data/pipeline/lora/
 * sdxl_mini_lora, 96x64, also without a negative prompt; plus its SDXL conditioning from encode_prompt)
 * and tests/data/pipeline/pipeline-demo.safetensors (scripts/golden/model_pipeline_demo.py: the same SD1 oracle on
 * the trained models/demo/shapes-sd1.safetensors with models/demo/lora/outline_lora, 64x64, 20 steps; the same
 * bounds hold on it: rel L2 <= 4e-6 measured).
 * pipeline.safetensors' case euler_72x40 runs at its own size (<case>.width/.height metadata): a 9x5 latent,
 * not a multiple of 2^downsamplers (the UNet's upsamplers then go to the skip connections' sizes).
 * Tolerance: relative L2 <= 1e-3 (f32) for final latents and decoded images; 8-bit images at most 1 level
 * apart in at most 1 % of the values.
 */
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lf_test.h"
#include "lf_test_data.h"
#include "host/base/util.h"
#include "lorafuse/lf_clip.h"
#include "lorafuse/lf_generate.h"
#include "lorafuse/lf_hash.h"
#include "lorafuse/lf_png.h"
#include "lorafuse/lf_safetensors.h"
#include "lorafuse/lf_tokenizer.h"
#include "lorafuse/lf_vae.h"

#define TOL 1e-3
#define MODEL "models/sd15-mini.safetensors"
#define GOLDEN "tests/data/pipeline/pipeline.safetensors"
#define GOLDEN_XL "tests/data/pipeline/pipeline-sdxl.safetensors"
#define GOLDEN_DEMO "tests/data/pipeline/pipeline-demo.safetensors"
/* The trained demo model's outline LoRA visibly changes its picture: measured 17.5 % (at 1, Euler) and 36.6 %
 * (from halfway, DPM++ 2M) of the golden's 8-bit values more than LORA_LEVELS from the plain case's. */
#define DEMO_MIN_MOVED 0.05

/* ---- SHA-256 ---------------------------------------------------------------------------------- */
static void sha_hex(const void *p, size_t n, size_t split, char hex[65]) {
    lf_sha256 s;
    unsigned char d[32];
    lf_sha256_init(&s);
    const unsigned char *c = p;
    size_t k = split && split < n ? split : n;
    lf_sha256_update(&s, c, k);
    lf_sha256_update(&s, c + k, n - k);
    lf_sha256_final(&s, d);
    lf_sha256_hex(d, hex);
}

static void test_sha256(void) {
    static const struct {
        const char *msg, *hex;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    char hex[65];
    for (size_t i = 0; i < sizeof v / sizeof *v; i++)
        for (size_t split = 0; split < 70; split += 13) {
            sha_hex(v[i].msg, strlen(v[i].msg), split, hex);
            LF_CHECK(!strcmp(hex, v[i].hex), "sha256 vector %zu split %zu: %s", i, split, hex);
        }
    /* one million 'a', fed in odd pieces */
    char *m = malloc(1000000);
    memset(m, 'a', 1000000);
    lf_sha256 s;
    unsigned char d[32];
    lf_sha256_init(&s);
    for (size_t o = 0; o < 1000000;) {
        size_t k = 1000000 - o < 997 ? 1000000 - o : 997;
        lf_sha256_update(&s, m + o, k);
        o += k;
    }
    lf_sha256_final(&s, d);
    lf_sha256_hex(d, hex);
    LF_CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"), "million a: %s", hex);
    free(m);
}

/* ---- infotext --------------------------------------------------------------------------------- */
static void test_infotext(void) {
    lf_infotext it;
    memset(&it, 0, sizeof it);
    it.prompt = "a fox <lora:mini_lora:0.2@0,1@3>, snow";
    it.negative = "blurry";
    it.steps = 20;
    it.sampler = "DPM++ 2M Karras";
    it.cfg = 7;
    it.seed = 4294967295LL;
    it.width = 512;
    it.height = 768;
    it.model_hash = "0123456789";
    it.model = "sd15-mini";
    it.clip_skip = 2;
    it.rng = "NV";
    it.lora_hashes = "mini_lora: 0123456789ab, other: ba9876543210";
    it.version = "lorafuse 0.1.0";
    char *s = lf_infotext_format(&it);
    const char *want = "a fox <lora:mini_lora:0.2@0,1@3>, snow\nNegative prompt: blurry\n"
                       "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 4294967295, Size: 512x768, "
                       "Model hash: 0123456789, Model: sd15-mini, Clip skip: 2, RNG: NV, "
                       "Lora hashes: \"mini_lora: 0123456789ab, other: ba9876543210\", Version: lorafuse 0.1.0";
    LF_CHECK(s && !strcmp(s, want), "infotext:\n%s\nwant:\n%s", s ? s : "(null)", want);
    lf_infotext_parsed p;
    LF_CHECK(lf_infotext_parse(s, &p) == LF_OK, "parse: %s", lf_last_error());
    LF_CHECK(!strcmp(p.prompt, it.prompt), "prompt '%s'", p.prompt);
    LF_CHECK(!strcmp(p.negative, "blurry"), "negative '%s'", p.negative);
    const char *keys[] = {"Steps", "Sampler", "CFG scale", "Seed", "Size", "Model hash", "Model", "Clip skip", "RNG",
                          "Lora hashes", "Version"};
    const char *vals[] = {"20", "DPM++ 2M Karras", "7", "4294967295", "512x768", "0123456789", "sd15-mini", "2", "NV",
                          "mini_lora: 0123456789ab, other: ba9876543210", "lorafuse 0.1.0"};
    LF_CHECK(p.n_kv == 11, "%zu pairs", p.n_kv);
    for (int i = 0; i < 11; i++) {
        const char *g = lf_infotext_get(&p, keys[i]);
        LF_CHECK(g && !strcmp(g, vals[i]), "%s = '%s', want '%s'", keys[i], g ? g : "(none)", vals[i]);
    }
    lf_infotext_parsed_free(&p);
    free(s);
    /* no negative, a value that needs quoting, a multi-line prompt */
    it.negative = "";
    it.prompt = "line one\nline two";
    it.model = "my, model";
    it.clip_skip = 1;
    it.rng = NULL;
    it.lora_hashes = NULL;
    s = lf_infotext_format(&it);
    LF_CHECK(s && !strstr(s, "Negative prompt") && strstr(s, "Model: \"my, model\"") && !strstr(s, "Clip skip") &&
                 !strstr(s, "RNG"), "%s", s);
    LF_CHECK(lf_infotext_parse(s, &p) == LF_OK, "parse");
    LF_CHECK(!strcmp(p.prompt, "line one\nline two") && !*p.negative, "prompt '%s' neg '%s'", p.prompt, p.negative);
    LF_CHECK(lf_infotext_get(&p, "Model") && !strcmp(lf_infotext_get(&p, "Model"), "my, model"), "quoted model");
    lf_infotext_parsed_free(&p);
    free(s);
}

/* ---- pipeline vs diffusers -------------------------------------------------------------------- */
typedef struct {
    float *latent, *image;
    uint8_t *rgb;
    size_t nl, ni;
    int64_t seed;
    char *file, *params;
    int count;
} capture;

static lf_status grab(void *ctx, const lf_gen_image *im) {
    capture *c = ctx;
    c->nl = (size_t)4 * (size_t)(im->height / 8) * (size_t)(im->width / 8);
    c->ni = (size_t)3 * (size_t)im->height * (size_t)im->width;
    free(c->latent);
    free(c->image);
    free(c->rgb);
    free(c->file);
    free(c->params);
    c->latent = malloc(c->nl * sizeof(float));
    c->image = malloc(c->ni * sizeof(float));
    c->rgb = malloc(c->ni);
    memcpy(c->latent, im->latent, c->nl * sizeof(float));
    memcpy(c->image, im->image, c->ni * sizeof(float));
    memcpy(c->rgb, im->rgb, c->ni);
    c->file = im->file ? strdup(im->file) : NULL;
    c->params = strdup(im->parameters);
    c->seed = im->seed;
    c->count++;
    return LF_OK;
}

static void capture_free(capture *c) {
    free(c->latent);
    free(c->image);
    free(c->rgb);
    free(c->file);
    free(c->params);
    memset(c, 0, sizeof *c);
}

static float *tensor_f32(const lf_st_file *f, const char *name, size_t *n) {
    const lf_st_tensor *t = lf_st_find(f, name);
    if (!t) return NULL;
    lf_view v = lf_st_view(t);
    size_t k = 1;
    for (int i = 0; i < t->ndim; i++) k *= (size_t)t->shape[i];
    float *p = malloc(k * sizeof(float));
    if (lf_view_to_f32(&v, p) != LF_OK) {
        free(p);
        return NULL;
    }
    *n = k;
    return p;
}

/* Final latents of the cases without a LoRA, by sampler: a LoRA case must differ from the plain case of its
 * sampler far beyond the tolerance, in lorafuse's output and in the golden's (else the test could not see a
 * wrong plan or a LoRA not applied, and the oracle would not show that the LoRA does anything). */
#define MAX_PLAIN 8
typedef struct {
    char sampler[64];
    float *latent, *golden; /* lorafuse's and the golden's final latent */
    const unsigned char *rgb; /* the golden's 8-bit image (in the open golden file) */
    size_t n;
} plain_ref;

/* The 8-bit values of two images more than this many levels apart count as changed by the LoRA: beyond the
 * 1-level rounding differences allowed against diffusers, and the VAE's blur of a one-latent-pixel change. */
#define LORA_LEVELS 16

/* Every case of one golden file (pipeline.safetensors: SD1.5 on MODEL; pipeline-sdxl.safetensors: SDXL on
 * tests/data/pipeline/sdxl-mini; pipeline-demo.safetensors: the trained demo model). The model and LoRA directory
 * come from the golden's metadata. min_moved: the fraction of the golden's 8-bit values that each LoRA case must
 * move by more than LORA_LEVELS from its plain case (0 for the random-weight models, whose images are noise
 * around one colour: there a LoRA schedule moves none of them that far). */
static void test_pipeline(const char *golden, double min_moved) {
    lf_st_file *gf = NULL;
    if (lf_st_open(golden, &gf) != LF_OK) {
        LF_CHECK(0, "open %s: %s", golden, lf_last_error());
        return;
    }
    const char *model = lf_st_meta(gf, "model"), *lora_dir = lf_st_meta(gf, "lora_dir");
    if (!model) model = MODEL;
    if (!lora_dir) lora_dir = "models/lora";
    char cases[512];
    snprintf(cases, sizeof cases, "%s", lf_st_meta(gf, "cases"));
    const char *neg = lf_st_meta(gf, "negative");
    int steps = atoi(lf_st_meta(gf, "steps")), w = atoi(lf_st_meta(gf, "width")), h = atoi(lf_st_meta(gf, "height"));
    int64_t seed = atoll(lf_st_meta(gf, "seed"));
    double cfg = atof(lf_st_meta(gf, "cfg"));
    plain_ref plain[MAX_PLAIN];
    int n_plain = 0, n_effect = 0;
    for (char *save = NULL, *name = strtok_r(cases, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        char key[128];
        snprintf(key, sizeof key, "%s.prompt", name);
        const char *prompt = lf_st_meta(gf, key);
        snprintf(key, sizeof key, "%s.sampler", name);
        const char *sampler = lf_st_meta(gf, key);
        lf_gen_opts o;
        lf_gen_opts_default(&o);
        o.model = model;
        o.prompt = prompt;
        snprintf(key, sizeof key, "%s.negative", name);
        o.negative = lf_st_meta(gf, key) ? lf_st_meta(gf, key) : neg; /* per case: "" = no negative prompt */
        o.sampler = sampler;
        o.steps = steps;
        o.cfg = cfg;
        o.seed = seed;
        snprintf(key, sizeof key, "%s.width", name); /* per case: its own size (euler_72x40) */
        o.width = lf_st_meta(gf, key) ? atoi(lf_st_meta(gf, key)) : w;
        snprintf(key, sizeof key, "%s.height", name);
        o.height = lf_st_meta(gf, key) ? atoi(lf_st_meta(gf, key)) : h;
        o.lora_dir = lora_dir;
        o.write_png = 0;
        lf_gen *g = NULL;
        capture c;
        memset(&c, 0, sizeof c);
        lf_status st = lf_gen_open(&o, &g);
        LF_CHECK(st == LF_OK, "%s: open: %s", name, lf_last_error());
        if (st == LF_OK) {
            st = lf_gen_run(g, grab, &c);
            LF_CHECK(st == LF_OK && c.count == 1, "%s: run: %s", name, lf_last_error());
        }
        if (st == LF_OK && c.count == 1) {
            size_t nl = 0, ni = 0, nr = 0;
            snprintf(key, sizeof key, "%s.latent", name);
            float *rl = tensor_f32(gf, key, &nl);
            snprintf(key, sizeof key, "%s.image", name);
            float *ri = tensor_f32(gf, key, &ni);
            snprintf(key, sizeof key, "%s.rgb", name);
            const lf_st_tensor *rt = lf_st_find(gf, key);
            if (rt) nr = (size_t)(rt->end - rt->begin);
            LF_CHECK(rl && ri && rt && nl == c.nl && ni == c.ni && nr == c.ni, "%s: golden shapes", name);
            if (rl && ri && rt && nl == c.nl && ni == c.ni && nr == c.ni) {
                double el = lf_test_rel_l2(c.latent, rl, nl), ei = lf_test_rel_l2(c.image, ri, ni);
                int maxd = 0;
                size_t off = 0;
                double maxl = 0;
                for (size_t i = 0; i < nl; i++) maxl = fmax(maxl, fabs((double)c.latent[i] - (double)rl[i]));
                for (size_t i = 0; i < nr; i++) {
                    int d = abs((int)c.rgb[i] - (int)rt->data[i]);
                    maxd = d > maxd ? d : maxd;
                    off += d != 0;
                }
                printf("  %-20s %-16s latent rel L2 %.3g (max abs %.2g), image rel L2 %.3g, 8-bit: %zu of %zu differ "
                       "(max %d)\n", name, sampler, el, maxl, ei, off, nr, maxd);
                LF_CHECK(el <= TOL, "%s: latent rel L2 %g", name, el);
                LF_CHECK(ei <= TOL, "%s: image rel L2 %g", name, ei);
                LF_CHECK(maxd <= 1 && off * 100 <= nr, "%s: 8-bit image: %zu values differ, max %d", name, off, maxd);
                if (!strstr(prompt, "<lora:") && n_plain < MAX_PLAIN) {
                    snprintf(plain[n_plain].sampler, sizeof plain[n_plain].sampler, "%s", sampler);
                    plain[n_plain].latent = c.latent;
                    plain[n_plain].golden = rl;
                    plain[n_plain].rgb = rt->data;
                    plain[n_plain++].n = c.nl;
                    c.latent = NULL;
                    rl = NULL;
                } else if (strstr(prompt, "<lora:")) {
                    for (int k = 0; k < n_plain; k++)
                        if (!strcmp(plain[k].sampler, sampler) && plain[k].n == c.nl) {
                            double dl = lf_test_rel_l2(c.latent, plain[k].latent, c.nl);
                            double gl = lf_test_rel_l2(rl, plain[k].golden, c.nl);
                            size_t moved = 0;
                            for (size_t i = 0; i < nr; i++)
                                moved += abs((int)rt->data[i] - (int)plain[k].rgb[i]) > LORA_LEVELS;
                            printf("  %-20s LoRA effect from the plain %s case: latent rel L2 %.3g (golden %.3g), "
                                   "golden 8-bit: %.1f %% of the values > %d levels apart\n",
                                   name, sampler, dl, gl, 100.0 * (double)moved / (double)nr, LORA_LEVELS);
                            LF_CHECK(dl > 20 * TOL, "%s: LoRA effect %g too small to test", name, dl);
                            LF_CHECK(gl > 20 * TOL, "%s: the golden's LoRA effect %g too small to test", name, gl);
                            LF_CHECK((double)moved >= min_moved * (double)nr,
                                     "%s: the golden's LoRA moves %zu of %zu 8-bit values by > %d levels, want %.0f %%",
                                     name, moved, nr, LORA_LEVELS, 100 * min_moved);
                            n_effect++;
                        }
                }
            }
            free(rl);
            free(ri);
        }
        capture_free(&c);
        lf_gen_free(g);
    }
    LF_CHECK(n_effect > 0, "%s: no LoRA case has a plain case of the same sampler", golden);
    for (int k = 0; k < n_plain; k++) {
        free(plain[k].latent);
        free(plain[k].golden);
    }
    lf_st_close(gf);
}

/* SDXL conditioning of the first case against diffusers' encode_prompt: context = [TE1 | TE2] penultimate
 * states (TE1 padded with EOS, TE2 with "!" = id 0), pooled = TE2 projection at the first EOS. */
static void test_sdxl_cond(void) {
    lf_st_file *gf = NULL, *mf = NULL;
    lf_clip *te1 = NULL, *te2 = NULL;
    lf_tokenizer *tok = NULL;
    if (lf_st_open(GOLDEN_XL, &gf) != LF_OK || lf_st_open(lf_st_meta(gf, "model"), &mf) != LF_OK) {
        LF_CHECK(0, "open: %s", lf_last_error());
        lf_st_close(gf);
        return;
    }
    const char *p1 = NULL, *p2 = NULL;
    LF_CHECK(lf_clip_detect(mf, &p1, &p2) == LF_TE_SDXL, "sdxl-mini: not detected as SDXL");
    LF_CHECK(lf_clip_load(mf, p1, NULL, &te1) == LF_OK && lf_clip_load(mf, p2, NULL, &te2) == LF_OK &&
                 lf_tokenizer_load_default(&tok) == LF_OK,
             "load: %s", lf_last_error());
    const char *first = lf_st_meta(gf, "cases");
    char key[128];
    size_t k = strcspn(first, ",");
    snprintf(key, sizeof key, "%.*s.prompt", (int)k, first);
    const char *texts[2] = {lf_st_meta(gf, key), lf_st_meta(gf, "negative")};
    const char *names[2][2] = {{"cond", "cond_pooled"}, {"uncond", "uncond_pooled"}};
    for (int i = 0; i < 2 && te1 && te2 && tok; i++) {
        lf_text_cond c;
        memset(&c, 0, sizeof c);
        LF_CHECK(lf_text_encode_sdxl(te1, te2, tok, texts[i], LF_EMPH_ORIGINAL, NULL, &c) == LF_OK, "encode: %s",
                 lf_last_error());
        size_t nc = 0, np = 0;
        float *rc = tensor_f32(gf, names[i][0], &nc), *rp = tensor_f32(gf, names[i][1], &np);
        LF_CHECK(rc && rp && c.context && nc == (size_t)(c.tokens * c.width) && np == (size_t)c.pooled_dim,
                 "%s: shapes (%zu vs %lld x %lld, pooled %zu vs %lld)", names[i][0], nc, (long long)c.tokens,
                 (long long)c.width, np, (long long)c.pooled_dim);
        if (rc && rp && c.context && nc == (size_t)(c.tokens * c.width) && np == (size_t)c.pooled_dim) {
            double ec = lf_test_rel_l2(c.context, rc, nc), ep = lf_test_rel_l2(c.pooled, rp, np);
            printf("  %-13s context (%lld, %lld) rel L2 %.3g, pooled (%lld) rel L2 %.3g\n", names[i][0],
                   (long long)c.tokens, (long long)c.width, ec, (long long)c.pooled_dim, ep);
            LF_CHECK(ec <= 1e-4 && ep <= 1e-4, "%s: context %g, pooled %g", names[i][0], ec, ep);
        }
        free(rc);
        free(rp);
        lf_text_cond_free(&c);
    }
    lf_tokenizer_free(tok);
    lf_clip_free(te1);
    lf_clip_free(te2);
    lf_st_close(mf);
    lf_st_close(gf);
}

/* ---- PNG files -------------------------------------------------------------------------------- */
static void test_png(const char *tmp) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/out", tmp);
    lf_gen_opts o;
    lf_gen_opts_default(&o);
    o.model = MODEL;
    o.prompt = "a small house <lora:mini_lora:te=0.5:unet=0.3@0,1@2>";
    o.negative = "ugly, dark";
    o.sampler = "Euler";
    o.steps = 3;
    o.seed = 77;
    o.width = 64;
    o.height = 64;
    o.batch_count = 2;
    o.lora_dir = "models/lora";
    o.output_dir = dir;
    o.auto_trigger = 1;
    lf_gen *g = NULL;
    capture c;
    memset(&c, 0, sizeof c);
    LF_CHECK(lf_gen_open(&o, &g) == LF_OK, "open: %s", lf_last_error());
    if (!g) return;
    LF_CHECK(lf_gen_run(g, grab, &c) == LF_OK && c.count == 2, "run: %s", lf_last_error());
    lf_gen_free(g);
    char want[600];
    snprintf(want, sizeof want, "%s/00001-78.png", dir);
    LF_CHECK(c.file && !strcmp(c.file, want), "second image file %s, want %s", c.file ? c.file : "(null)", want);
    LF_CHECK(c.seed == 78, "second seed %lld", (long long)c.seed);
    uint8_t *rgb = NULL;
    char *text = NULL;
    int w = 0, h = 0;
    LF_CHECK(c.file && lf_png_read(c.file, &rgb, &w, &h, "parameters", &text) == LF_OK, "read: %s", lf_last_error());
    if (rgb && text) {
        LF_CHECK(w == 64 && h == 64, "size %dx%d", w, h);
        LF_CHECK(!memcmp(rgb, c.rgb, (size_t)w * (size_t)h * 3), "pixels differ from the pipeline's");
        LF_CHECK(!strcmp(text, c.params), "parameters chunk differs from the infotext");
        lf_infotext_parsed p;
        LF_CHECK(lf_infotext_parse(text, &p) == LF_OK, "parse");
        char mh[11], lh[13], lora[64];
        lf_a1111_model_hash(MODEL, mh);
        lf_a1111_lora_hash("models/lora/mini_lora.safetensors", lh);
        snprintf(lora, sizeof lora, "mini_lora: %s", lh);
        LF_CHECK(!strcmp(p.prompt, "a small house <lora:mini_lora:te=0.5:unet=0.3@0,1@2>, mini style"),
                 "prompt '%s' (tags kept, trigger word appended)", p.prompt);
        LF_CHECK(!strcmp(p.negative, "ugly, dark"), "negative '%s'", p.negative);
        const char *keys[] = {"Steps", "Sampler", "CFG scale", "Seed", "Size", "Model hash", "Model", "RNG", "Lora hashes"};
        const char *vals[] = {"3", "Euler", "7", "78", "64x64", mh, "sd15-mini", "CPU", lora};
        for (int i = 0; i < 9; i++) {
            const char *v = lf_infotext_get(&p, keys[i]);
            LF_CHECK(v && !strcmp(v, vals[i]), "%s = '%s', want '%s'", keys[i], v ? v : "(none)", vals[i]);
        }
        const char *ver = lf_infotext_get(&p, "Version");
        LF_CHECK(ver && !strncmp(ver, "lorafuse ", 9), "version '%s'", ver ? ver : "(none)");
        lf_infotext_parsed_free(&p);
    }
    free(rgb);
    free(text);
    /* the model hash is the sha256 of the file (known for an empty file) */
    char empty[600], mh[11];
    snprintf(empty, sizeof empty, "%s/empty", tmp);
    lf_test_write_text(empty, "");
    LF_CHECK(lf_a1111_model_hash(empty, mh) == LF_OK && !strcmp(mh, "e3b0c44298"), "hash of empty file %s", mh);
    /* never overwrite: a file already holding the next number is left alone */
    char taken[600];
    snprintf(taken, sizeof taken, "%s/00002-5.png", dir);
    lf_test_write_text(taken, "not mine");
    uint8_t px[8 * 8 * 3] = {0};
    char *path = NULL;
    LF_CHECK(lf_png_save_next(dir, 5, px, 8, 8, "x\nSteps: 1, Seed: 5, Size: 8x8", &path) == LF_OK, "save: %s",
             lf_last_error());
    snprintf(want, sizeof want, "%s/00003-5.png", dir);
    LF_CHECK(path && !strcmp(path, want), "next name %s", path ? path : "(null)");
    free(path);
    char *buf = NULL;
    lf_read_file(taken, NULL, 4096, &buf, NULL);
    LF_CHECK(buf && !strcmp(buf, "not mine"), "existing file changed");
    free(buf);
    LF_CHECK(lf_test_count_files(dir, "") == 4, "%d files in the output dir (no temporary left)",
             lf_test_count_files(dir, ""));
    capture_free(&c);
}

/* ---- checks before any work ------------------------------------------------------------------- */
static lf_gen_opts base_opts(const char *dir) {
    lf_gen_opts o;
    lf_gen_opts_default(&o);
    o.model = MODEL;
    o.prompt = "a fox";
    o.lora_dir = "models/lora";
    o.output_dir = dir;
    o.steps = 4;
    return o;
}

static void expect_fail(const char *what, const lf_gen_opts *o, lf_status want, const char *needle) {
    lf_gen *g = NULL;
    lf_status st = lf_gen_open(o, &g);
    const char *msg = lf_last_error();
    LF_CHECK(st == want && !g, "%s: status %d, want %d (%s)", what, (int)st, (int)want, msg);
    LF_CHECK(strstr(msg, needle) != NULL, "%s: message '%s' lacks '%s'", what, msg, needle);
    printf("  %-18s -> %s\n", what, msg);
    lf_gen_free(g);
}

static void test_errors(const char *tmp) {
    char dir[512], novae[512];
    snprintf(dir, sizeof dir, "%s/never", tmp);
    lf_gen_opts o = base_opts(dir);
    o.sampler = "Euler b";
    expect_fail("unknown sampler", &o, LF_ERR_ARG, "Euler b");
    o = base_opts(dir);
    o.width = 100;
    o.height = 64;
    expect_fail("size not /8", &o, LF_ERR_ARG, "multiples of 8");
    o.width = 64;
    o.height = 4;
    expect_fail("size under 8", &o, LF_ERR_ARG, "multiples of 8, from 8");
    o.width = 72; /* any multiple of 8: a 9x5 latent is fine (values: the euler_72x40 golden case) */
    o.height = 40;
    lf_gen *gs = NULL;
    LF_CHECK(lf_gen_open(&o, &gs) == LF_OK, "72x40: %s", lf_last_error());
    lf_gen_free(gs);
    o = base_opts(dir);
    o.prompt = "a fox <lora:mini_lora:tee=1>";
    expect_fail("bad tag key", &o, LF_ERR_ARG, "prompt col 7");
    o.prompt = "a fox <lora:no_such_lora:0.5>";
    expect_fail("unknown LoRA", &o, LF_ERR_ARG, "no_such_lora");
    o.prompt = "a fox <lora:mini_lora:1@9>";
    o.steps = 4;
    lf_gen *g = NULL;
    /* a key frame past the last step is a warning, not an error (docs/prompt-tags.md) */
    LF_CHECK(lf_gen_open(&o, &g) == LF_OK, "late key frame: %s", lf_last_error());
    LF_CHECK(g && lf_gen_get_info(g)->n_warnings >= 1,
             "late key frame: the step plan's warning is in lf_gen_info (%zu)", g ? lf_gen_get_info(g)->n_warnings : 0);
    lf_gen_free(g);
    g = NULL;
    o = base_opts(dir);
    o.backend = LF_GEN_CUDA;
    expect_fail("cuda backend", &o, LF_ERR_UNSUPPORTED, "no CUDA backend linked");
    /* seeds: -1 or 0 .. INT64_MAX, seed + image index in range (never wrapped) */
    o = base_opts(dir);
    o.seed = -2;
    expect_fail("seed -2", &o, LF_ERR_ARG, "-1 (random) or 0 to 9223372036854775807");
    o.seed = INT64_MAX;
    o.batch_size = 2;
    expect_fail("seed overflow", &o, LF_ERR_ARG, "use a seed at most 9223372036854775806");
    o.batch_size = 1;
    o.batch_count = 3;
    o.seed = INT64_MAX - 2; /* the last image gets INT64_MAX exactly */
    LF_CHECK(lf_gen_open(&o, &g) == LF_OK, "seed INT64_MAX - 2 with 3 images: %s", lf_last_error());
    lf_gen_free(g);
    g = NULL;
    o = base_opts(dir);
    o.output_dir = "";
    expect_fail("empty output dir", &o, LF_ERR_ARG, "--output-dir is empty");
    o.write_png = 0; /* nothing written: no directory needed */
    LF_CHECK(lf_gen_open(&o, &g) == LF_OK, "empty output dir without PNG: %s", lf_last_error());
    lf_gen_free(g);
    g = NULL;
    /* an invalid default-size metadata: a warning naming file and value, the family default used */
    char badsize[512];
    snprintf(badsize, sizeof badsize, "%s/badsize.safetensors", tmp);
    const char *const badmeta[] = {"lorafuse.default_size", "512x513", NULL};
    lf_test_st_edit bad_size = {0};
    bad_size.copy_meta = 1;
    bad_size.meta = badmeta;
    LF_CHECK(lf_test_st_copy(MODEL, badsize, &bad_size), "write %s: %s", badsize, lf_last_error());
    o = base_opts(dir);
    o.model = badsize;
    LF_CHECK(lf_gen_open(&o, &g) == LF_OK, "bad default size: %s", lf_last_error());
    if (g) {
        const lf_gen_info *in = lf_gen_get_info(g);
        char want[1024];
        snprintf(want, sizeof want, "%s: metadata lorafuse.default_size \"512x513\" is not WxH with multiples of 8 "
                 "from 8 to 8192; using 512x512", badsize);
        LF_CHECK(in->width == 512 && in->height == 512 && in->n_warnings == 1 &&
                     !strncmp(in->warnings[0], want, strlen(want)),
                 "bad default size: %dx%d, %zu warnings: %s", in->width, in->height, in->n_warnings,
                 in->n_warnings ? in->warnings[0] : "");
    }
    lf_gen_free(g);
    g = NULL;
    /* memory: the estimate against a limit, --force-size */
    o = base_opts(dir);
    o.width = o.height = 64;
    o.mem_limit = 1 << 20;
    expect_fail("memory limit", &o, LF_ERR_ARG, "more than the 1 MiB available (--memory-limit)");
    o.force_size = 1;
    LF_CHECK(lf_gen_open(&o, &g) == LF_OK && lf_gen_get_info(g)->mem_estimate > (1 << 20) &&
                 lf_gen_get_info(g)->mem_limit == (1 << 20), "forced: %s", lf_last_error());
    lf_gen_free(g);
    g = NULL;
    o = base_opts(dir);
    o.width = o.height = 8192;
    o.mem_limit = (uint64_t)1 << 30; /* more than that even with the decode in tiles */
    expect_fail("8192x8192", &o, LF_ERR_ARG, "8192x8192 with 1 image(s) per sampler run needs about ");
    o = base_opts(dir);
    o.model = "tests/data/tiny/tiny-sd15.safetensors";
    expect_fail("small vocabulary", &o, LF_ERR_MODEL, "1000-token vocabulary");
    snprintf(novae, sizeof novae, "%s/novae.safetensors", tmp);
    lf_test_st_edit no_vae = {.skip_prefix = "first_stage_model."}; /* the mini model without its VAE */
    LF_CHECK(lf_test_st_copy(MODEL, novae, &no_vae), "write %s: %s", novae, lf_last_error());
    o = base_opts(dir);
    o.model = novae;
    expect_fail("missing VAE", &o, LF_ERR_MODEL, "no VAE");
    o = base_opts(dir);
    o.model = "tests/data/pipeline/does-not-exist.safetensors";
    expect_fail("missing model", &o, LF_ERR_IO, "does-not-exist");
    struct stat sb;
    LF_CHECK(stat(dir, &sb) != 0, "the output directory was created by a failed call");
    /* the CLI stops with status 1 and writes nothing */
    const char *bin = getenv("LF_BIN");
    if (bin) {
        char cmd[2048];
        snprintf(cmd, sizeof cmd,
                 "'%s' generate --model " MODEL " --prompt 'a fox' --sampler 'Euler b' --output-dir '%s' --quiet "
                 "2>/dev/null",
                 bin, dir);
        int rc = system(cmd);
        LF_CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "CLI unknown sampler: status %d", rc);
        snprintf(cmd, sizeof cmd, "'%s' generate --model " MODEL " --prompt 'a fox' --width 64 2>/dev/null", bin);
        rc = system(cmd);
        LF_CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "CLI --width without --height: status %d", rc);
        LF_CHECK(stat(dir, &sb) != 0, "the CLI created the output directory");
    }
}

/* ---- prompt editing ----------------------------------------------------------------------------- */

/* Open and run one job into c; 1 when it gave exactly one image. *g is the job (freed by the caller). */
static int run_one(const lf_gen_opts *o, capture *c, lf_gen **g) {
    memset(c, 0, sizeof *c);
    *g = NULL;
    return lf_gen_open(o, g) == LF_OK && lf_gen_run(*g, grab, c) == LF_OK && c->count == 1;
}

/* The final latent of a 4-step 64x64 run (NULL on failure), and its number of encoder runs. */
static float *seeded_run(const char *prompt, const char *negative, int64_t seed, size_t *n, size_t *encodes) {
    lf_gen_opts o = base_opts("unused");
    o.prompt = prompt;
    o.negative = negative;
    o.width = o.height = 64;
    o.seed = seed;
    o.write_png = 0;
    lf_gen *g = NULL;
    capture c;
    float *r = NULL;
    if (run_one(&o, &c, &g)) {
        r = c.latent;
        c.latent = NULL;
        *n = c.nl;
        *encodes = lf_gen_get_info(g)->te_encodes;
    } else {
        LF_CHECK(0, "'%s': %s", prompt, lf_last_error());
    }
    capture_free(&c);
    lf_gen_free(g);
    return r;
}

static float *edit_run(const char *prompt, const char *negative, size_t *n, size_t *encodes) {
    return seeded_run(prompt, negative, 7, n, encodes);
}

static int same_latent(const float *a, const float *b, size_t n) {
    return a && b && !memcmp(a, b, n * sizeof *a);
}

/* A schedule that never switches is the plain prompt bit for bit; one that switches at step 2 is
 * neither prompt and encodes twice; the negative prompt is scheduled the same way. */
static void test_prompt_editing(void) {
    size_t n = 0, e0 = 0, e1 = 0, e2 = 0, e3 = 0, e4 = 0, e5 = 0;
    float *fox = edit_run("a fox", "", &n, &e0), *cat = edit_run("a cat", "blur", &n, &e0);
    float *never = edit_run("a [fox:cat:9]", "", &n, &e1), *at0 = edit_run("a [fox:cat:0]", "[sharp:blur:0]", &n, &e2);
    float *at2 = edit_run("a [fox:cat:2]", "", &n, &e3), *alt = edit_run("a [fox|cat]", "", &n, &e4);
    float *lyco = edit_run("a [fox:cat:2] <lyco:mini_lora:0:0>", "", &n, &e5);
    LF_CHECK(same_latent(never, fox, n) && e1 == 1, "[fox:cat:9] over 4 steps is 'a fox' (%zu encodes)", e1);
    LF_CHECK(same_latent(at0, cat, n) && e2 == 1, "[fox:cat:0] with [sharp:blur:0] is 'a cat' / 'blur'");
    LF_CHECK(at2 && !same_latent(at2, fox, n) && !same_latent(at2, cat, n) && e3 == 2, "[fox:cat:2]: %zu encodes", e3);
    LF_CHECK(alt && !same_latent(alt, fox, n) && e4 == 2, "[fox|cat]: %zu encodes", e4);
    LF_CHECK(same_latent(lyco, at2, n) && e5 == 2, "an all-zero lyco tag leaves prompt editing as it was");
    free(fox);
    free(cat);
    free(never);
    free(at0);
    free(at2);
    free(alt);
    free(lyco);
    lf_gen_opts o = base_opts("unused");
    o.tag_dialect = "sdnext";
    expect_fail("unknown dialect", &o, LF_ERR_ARG, "unknown tag dialect 'sdnext' (dialects: lorafuse, loractl)");
}

/* Textual inversion through generate: the embedding changes the image and is recorded in TI hashes;
 * a pickle, an SDXL embedding on SD1.x and a missing --embeddings-dir stop the run before any work. */
static void test_embeddings(void) {
    const char *dir = "tests/data/prompt/embeddings";
    lf_gen_opts o = base_opts("unused");
    o.prompt = "a tinyemb fox";
    o.embeddings_dir = dir;
    o.width = o.height = 64;
    o.seed = 7;
    o.write_png = 0;
    lf_gen *g = NULL;
    capture c;
    char hex[65], want[96];
    LF_CHECK(lf_sha256_file("tests/data/prompt/embeddings/tinyemb.safetensors", 0, hex) == LF_OK, "sha256");
    snprintf(want, sizeof want, ", TI hashes: \"tinyemb: %.12s\", Version: ", hex);
    if (run_one(&o, &c, &g)) {
        LF_CHECK(strstr(c.params, want) != NULL, "TI hashes in parameters: %s", c.params);
        size_t n = 0, e = 0;
        float *plain = edit_run("a tinyemb fox", "", &n, &e); /* no embeddings directory: the word is text */
        LF_CHECK(plain && n == c.nl && !same_latent(plain, c.latent, n), "the embedding changes the image");
        free(plain);
    } else {
        LF_CHECK(0, "embedding run: %s", lf_last_error());
    }
    capture_free(&c);
    lf_gen_free(g);
    o.prompt = "a fox";
    o.negative = "pickled";
    expect_fail("pickle embedding", &o, LF_ERR_FORMAT,
                "negative prompt: tests/data/prompt/embeddings/pickled.pt: embedding 'pickled' is a pickle file");
    o.negative = "";
    o.prompt = "a [fox:xlemb:2]";
    expect_fail("SDXL embedding", &o, LF_ERR_MODEL, "xlemb.safetensors: embedding 'xlemb' is an SDXL embedding");
    o.embeddings_dir = "tests/data/prompt/none";
    expect_fail("no such dir", &o, LF_ERR_IO, "tests/data/prompt/none: no such embeddings directory");
}

/* One job on a resident session: its final latent (NULL after a failure, which is reported). */
static float *session_run(lf_gen_session *ss, const char *prompt, int batch_count, size_t *n) {
    lf_gen_opts o = base_opts("unused");
    o.prompt = prompt;
    o.width = o.height = 64;
    o.steps = 4;
    o.seed = 7;
    o.batch_count = batch_count;
    o.write_png = 0;
    lf_gen *g = NULL;
    capture c;
    memset(&c, 0, sizeof c);
    float *r = NULL;
    if (lf_gen_open_in(ss, &o, &g) == LF_OK && lf_gen_run(g, grab, &c) == LF_OK && c.count == batch_count) {
        r = c.latent;
        c.latent = NULL;
        *n = c.nl;
    } else {
        LF_CHECK(0, "session job '%s': %s", prompt, lf_last_error());
    }
    capture_free(&c);
    lf_gen_free(g);
    return r;
}

/* LF_COMPUTE_PROFILE=1: the job's ops counted and timed by kind (the same latent: the count only passes
 * the calls on); without it no profile */
static void test_profile(void) {
    size_t n = 0, e = 0;
    float *plain = edit_run("a fox <lora:mini_lora:0.5>", "", &n, &e);
    setenv("LF_COMPUTE_PROFILE", "1", 1);
    lf_gen_opts o = base_opts("unused");
    o.prompt = "a fox <lora:mini_lora:0.5>";
    o.width = o.height = 64;
    o.seed = 7;
    o.write_png = 0;
    lf_gen *g = NULL;
    capture c;
    int ok = run_one(&o, &c, &g);
    LF_CHECK(ok, "profiled job: %s", lf_last_error());
    const char *p = ok ? lf_gen_profile(g) : NULL;
    LF_CHECK(p && strstr(p, "conv2d") && strstr(p, "attention") && strstr(p, "linear") && !strstr(p, "untimed"),
             "profile: %s", p ? p : "(none)");
    LF_CHECK(plain && c.latent && c.nl == n && same_latent(plain, c.latent, n), "a profiled job gives the same latent");
    capture_free(&c);
    lf_gen_free(g);
    unsetenv("LF_COMPUTE_PROFILE");
    g = NULL;
    LF_CHECK(lf_gen_open(&o, &g) == LF_OK && lf_gen_profile(g) == NULL, "no profile without LF_COMPUTE_PROFILE");
    lf_gen_free(g);
    free(plain);
}

/* --vae-tiling: an image larger than a tile (576x512 on SD1: a 64x72 latent, 2 x 2 tiles of 64) is the tiled
 * decode of its latent (lf_vae_decode_tiled, checked against diffusers in test_vae), not the whole one */
static void test_vae_tiling(void) {
    lf_gen_opts o = base_opts("unused");
    o.width = 576;
    o.height = 512;
    o.steps = 1;
    o.seed = 3;
    o.write_png = 0;
    o.vae_tiling = 1;
    lf_gen *g = NULL;
    capture c;
    int ok = run_one(&o, &c, &g);
    LF_CHECK(ok, "--vae-tiling: %s", lf_last_error());
    lf_st_file *f = NULL;
    lf_vae *v = NULL;
    if (ok && lf_st_open(MODEL, &f) == LF_OK && lf_vae_load(f, LF_FAMILY_SD1, NULL, &v) == LF_OK) {
        float *t = malloc(c.ni * sizeof *t), *whole = malloc(c.ni * sizeof *whole);
        LF_CHECK(lf_vae_decode_tiled(v, t, c.latent, 64, 72, 64) == LF_OK && !memcmp(t, c.image, c.ni * sizeof *t),
                 "--vae-tiling: the image is not the tiled decode of its latent");
        LF_CHECK(lf_vae_decode(v, whole, c.latent, 1, 64, 72) == LF_OK && memcmp(whole, c.image, c.ni * sizeof *t),
                 "--vae-tiling: the image is the whole decode");
        free(t);
        free(whole);
    }
    lf_vae_free(v);
    lf_st_close(f);
    capture_free(&c);
    lf_gen_free(g);
}

/* over the memory limit only because of the whole-image decode: the job decodes in tiles and says so;
 * below even the tiled estimate it is refused */
static uint64_t estimate(lf_gen_opts o) {
    lf_gen *g = NULL;
    uint64_t e = 0;
    if (lf_gen_open(&o, &g) == LF_OK) e = lf_gen_get_info(g)->mem_estimate;
    LF_CHECK(e > 0, "estimate at %dx%d: %s", o.width, o.height, lf_last_error());
    lf_gen_free(g);
    return e;
}

static void test_auto_tiling(void) {
    lf_gen_opts o = base_opts("unused");
    o.width = o.height = 1024;
    o.write_png = 0;
    o.mem_limit = (uint64_t)1 << 40;
    uint64_t whole = estimate(o);
    o.vae_tiling = 1;
    uint64_t tiled = estimate(o);
    LF_CHECK(tiled < whole, "1024x1024 on the mini model: tiled estimate %llu, whole %llu", (unsigned long long)tiled,
             (unsigned long long)whole);
    o.vae_tiling = 0;
    o.mem_limit = (whole + tiled) / 2;
    lf_gen *g = NULL;
    int ok = lf_gen_open(&o, &g) == LF_OK;
    const lf_gen_info *in = ok ? lf_gen_get_info(g) : NULL;
    int warned = 0;
    for (size_t i = 0; in && i < in->n_warnings; i++) warned |= strstr(in->warnings[i], "decoding in tiles") != NULL;
    LF_CHECK(ok && warned && in->mem_estimate == tiled, "between the estimates: %s (warned %d)", ok ? "" : lf_last_error(),
             warned);
    lf_gen_free(g);
    o.mem_limit = tiled / 2;
    expect_fail("below the tiled estimate", &o, LF_ERR_ARG, "more than the");
}

/* Jobs on one resident model equal fresh runs: a scheduled LoRA over two sampler runs (the backend is
 * rewound, not rebuilt), then the same tags again (nothing recomputed: the models read the copies they
 * took when the last job's backend went), then no LoRA (and the session's own memory is back to what it
 * was after the load); a job cannot change the session's VAE. */
static void test_session(void) {
    const char *lora = "a fox <lora:mini_lora:0.4@1,1@3>";
    size_t n = 0, m = 0;
    lf_gen_session *ss = NULL;
    if (lf_gen_session_open(MODEL, LF_GEN_AUTO, 0, NULL, &ss) != LF_OK) {
        LF_CHECK(0, "session: %s", lf_last_error());
        return;
    }
    uint64_t owned0 = lf_gen_session_owned_bytes(ss);
    float *two = session_run(ss, lora, 2, &n), *again = session_run(ss, lora, 1, &m);
    uint64_t owned_lora = lf_gen_session_owned_bytes(ss);
    float *none = session_run(ss, "a fox", 1, &m);
    /* the LoRA's tensors were kept as copies when its jobs ended; the job without it gives them back
     * to the checkpoint's mapping (read in place as after the load), not to more copies of W0 */
    LF_CHECK(owned_lora > owned0, "session: the LoRA jobs left copies of their tensors (%llu -> %llu bytes)",
             (unsigned long long)owned0, (unsigned long long)owned_lora);
    LF_CHECK(lf_gen_session_owned_bytes(ss) == owned0, "session: back at W0 it owns %llu bytes, %llu after the load",
             (unsigned long long)lf_gen_session_owned_bytes(ss), (unsigned long long)owned0);
    size_t e = 0;
    float *fresh_lora = edit_run(lora, "", &m, &e), *fresh_none = edit_run("a fox", "", &m, &e);
    float *fresh8 = seeded_run(lora, "", 8, &m, &e);
    /* `two` keeps its second image (seed 8, the second sampler run on the rewound backend) */
    LF_CHECK(n == m && same_latent(two, fresh8, m), "the second sampler run of a job equals a fresh run");
    LF_CHECK(same_latent(again, fresh_lora, m), "the same LoRA again on the session equals a fresh run");
    LF_CHECK(same_latent(none, fresh_none, m), "no LoRA after LoRA jobs equals a fresh run");
    free(two);
    free(again);
    free(none);
    free(fresh_lora);
    free(fresh_none);
    free(fresh8);
    lf_gen_opts o = base_opts("unused");
    o.vae = MODEL;
    lf_gen *g = NULL;
    lf_status st = lf_gen_open_in(ss, &o, &g);
    LF_CHECK(st == LF_ERR_UNSUPPORTED && !g && strstr(lf_last_error(), "decodes with the model's VAE"),
             "--vae on a session job: status %d (%s)", (int)st, lf_last_error());
    lf_gen_session_free(ss);
}

int main(void) {
    char tmp[256];
    if (lf_test_tmpdir(tmp, sizeof tmp, "test_generate")) return 1;
    printf("sha256\n");
    test_sha256();
    printf("infotext\n");
    test_infotext();
    printf("errors before any work\n");
    test_errors(tmp);
    printf("prompt editing\n");
    test_prompt_editing();
    printf("textual inversion\n");
    test_embeddings();
    printf("jobs on a resident model\n");
    test_auto_tiling();
    test_vae_tiling();
    test_profile();
    test_session();
    printf("pipeline vs diffusers (%s)\n", GOLDEN);
    test_pipeline(GOLDEN, 0);
    printf("SDXL conditioning vs diffusers (%s)\n", GOLDEN_XL);
    test_sdxl_cond();
    printf("SDXL pipeline vs diffusers (%s)\n", GOLDEN_XL);
    test_pipeline(GOLDEN_XL, 0);
    printf("pipeline vs diffusers on the trained demo model (%s)\n", GOLDEN_DEMO);
    test_pipeline(GOLDEN_DEMO, DEMO_MIN_MOVED);
    printf("png files\n");
    test_png(tmp);
    if (lf_test_rmtree(tmp) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return lf_test_finish();
}
