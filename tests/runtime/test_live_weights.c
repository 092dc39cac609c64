/* test_live_weights.c: adapters on a loaded model through the per-layer interface (lf_live_weights.h).
 *
 * For tiny SD1.5 (kohya LoRA with TE + UNet modules, LyCORIS) and tiny SDXL (kohya LoRA on TE1, TE2
 * fused in_proj rows and the UNet): the base model loaded once and refreshed after each step of a
 * per-step plan (lf_cpu_backend_step + lf_live_apply_step, only the jobs the step lists) gives the
 * same UNet output, text-encoder hidden states and pooled output, bit for bit, as the models loaded
 * from lf_merge's checkpoint at that step's strength. Steps that list no job refresh nothing.
 * Also: unknown key, wrong shape, a job whose model is not loaded (error / skip_missing); the weight
 * watcher (weight_load.h) hears of every weight rewritten, rebound or freed.
 * Run: ctest --test-dir build -R live_weights
 */
#include <unistd.h>

#include "lf_test.h"
#include "lf_test_data.h"
#include "host/runtime/weight_load.h"
#include "lorafuse/lf_merge.h"
#include "lorafuse/lf_live_weights.h"

#define SD15 "tests/data/tiny/tiny-sd15.safetensors"
#define SDXL "tests/data/tiny/tiny-sdxl.safetensors"
#define KOHYA "tests/data/tiny/sd15_kohya.lora.safetensors"
#define LYCO "tests/data/tiny/sd15_lycoris.lora.safetensors"
#define XL_KOHYA "tests/data/tiny/sdxl_kohya.lora.safetensors"

typedef struct models {
    lf_unet *unet;
    lf_clip *te1, *te2;
} models;

static int load_models(const char *path, int xl, models *m) {
    memset(m, 0, sizeof *m);
    lf_st_file *f = NULL;
    if (lf_st_open(path, &f) != LF_OK) {
        LF_CHECK(0, "open %s: %s", path, lf_last_error());
        return 0;
    }
    lf_unet_opts o15 = {NULL, 4, 0, 4}, oxl = {NULL, 0, 8, 4};
    int ok = lf_unet_load(f, xl ? &oxl : &o15, &m->unet) == LF_OK;
    const char *p1, *p2;
    lf_te_family tf = lf_clip_detect(f, &p1, &p2);
    ok = ok && tf == (xl ? LF_TE_SDXL : LF_TE_SD1) && lf_clip_load(f, p1, NULL, &m->te1) == LF_OK;
    if (ok && xl) ok = lf_clip_load(f, p2, NULL, &m->te2) == LF_OK;
    LF_CHECK(ok, "load models of %s: %s", path, lf_last_error());
    lf_st_close(f);
    return ok;
}

static void free_models(models *m) {
    lf_unet_free(m->unet);
    lf_clip_free(m->te1);
    lf_clip_free(m->te2);
    memset(m, 0, sizeof *m);
}

/* Outputs compared: UNet on a fixed input, each text encoder's last and penultimate hidden state and
 * pooled output on fixed ids. Returns the number of differing floats (exact compare). */
#define NOUT 8192
static void run_models(const models *m, int xl, float *out) {
    memset(out, 0, NOUT * sizeof *out);
    const int64_t N = 1, H = 8, W = 8, L = 5, ctx = xl ? 64 : 32;
    float x[4 * 64], t[1] = {321.0f}, c[5 * 64], y[80];
    for (int i = 0; i < 4 * 64; i++) x[i] = sinf(0.37f * (float)i);
    for (int i = 0; i < L * ctx; i++) c[i] = cosf(0.11f * (float)i);
    for (int i = 0; i < 80; i++) y[i] = 0.05f * (float)(i % 9) - 0.2f;
    float *o = out;
    LF_CHECK(lf_unet_forward(m->unet, o, x, t, c, L, xl ? y : NULL, N, H, W) == LF_OK, "unet: %s", lf_last_error());
    o += 4 * 64;
    int32_t ids[12] = {998, 5, 17, 333, 42, 7, 999, 0, 0, 0, 0, 0};
    const lf_clip *te[2] = {m->te1, m->te2};
    for (int e = 0; e < (xl ? 2 : 1); e++) {
        lf_clip_run last = {1, 1}, pen = {2, 0};
        LF_CHECK(lf_clip_forward(te[e], ids, 12, &last, o, o + 12 * 32) == LF_OK, "te%d: %s", e + 1, lf_last_error());
        o += 12 * 32 + 32;
        LF_CHECK(lf_clip_forward(te[e], ids, 12, &pen, o, NULL) == LF_OK, "te%d: %s", e + 1, lf_last_error());
        o += 12 * 32;
    }
}

static int ndiff(const float *a, const float *b) {
    int n = 0;
    for (int i = 0; i < NOUT; i++) n += memcmp(&a[i], &b[i], sizeof(float)) != 0;
    return n;
}

static lf_step_plan *build(const lf_model *model, const char *text, const char *path, int n, lf_prompt **pr) {
    lf_step_plan *sp = NULL;
    const char *paths[1] = {path};
    if (lf_prompt_parse(text, pr) != LF_OK || lf_step_plan_build_files(model, *pr, paths, n, NULL, &sp) != LF_OK) {
        LF_CHECK(0, "%s: %s", text, lf_last_error());
        return NULL;
    }
    return sp;
}

/* strengths[t-1]: the uniform strength of step t (for lf_merge). */
static void check_case(const char *base, int xl, const char *lora, const char *text, int n_steps,
                       const float *strengths) {
    printf("%s: %s\n", base, text);
    lf_model *model = NULL;
    if (lf_model_open(base, &model) != LF_OK) {
        LF_CHECK(0, "open %s: %s", base, lf_last_error());
        return;
    }
    lf_prompt *pr = NULL;
    lf_step_plan *sp = build(model, text, lora, n_steps, &pr);
    lf_cpu_backend *b = NULL;
    models live, merged;
    char dir[256], out[512];
    if (!sp || lf_cpu_backend_new(sp, 0, &b) != LF_OK || !load_models(base, xl, &live) ||
        lf_test_tmpdir(dir, sizeof dir, "live")) {
        LF_CHECK(0, "setup: %s", lf_last_error());
        goto done;
    }
    snprintf(out, sizeof out, "%s/merged.safetensors", dir);
    float *o_live = malloc(NOUT * sizeof(float)), *o_ref = malloc(NOUT * sizeof(float));
    float *o_base = malloc(NOUT * sizeof(float));
    run_models(&live, xl, o_base);
    lf_live lv = {live.unet, live.te1, live.te2, 0};
    for (int t = 1; t <= n_steps; t++) {
        lf_live_stats ls;
        LF_CHECK(lf_cpu_backend_step(b, t) == LF_OK, "step %d: %s", t, lf_last_error());
        LF_CHECK(lf_live_apply_step(&lv, sp, b, t, &ls) == LF_OK, "live step %d: %s", t, lf_last_error());
        LF_CHECK(ls.refreshed == sp->steps[t - 1].n_jobs && ls.bytes == sp->steps[t - 1].bytes,
                 "step %d: refreshed %zu of %zu listed jobs", t, ls.refreshed, sp->steps[t - 1].n_jobs);
        run_models(&live, xl, o_live);
        lf_merge_input in = {lora, strengths[t - 1], 0};
        lf_merge_opts mo;
        memset(&mo, 0, sizeof mo);
        mo.reference = 1;
        mo.threads = 2;
        mo.overwrite = 1; /* one output file, merged again at every step */
        lf_merge_stats ms;
        if (lf_merge(base, &in, 1, out, &mo, &ms) != LF_OK || !load_models(out, xl, &merged)) {
            LF_CHECK(0, "merge at %g: %s", (double)strengths[t - 1], lf_last_error());
            break;
        }
        run_models(&merged, xl, o_ref);
        free_models(&merged);
        int d = ndiff(o_live, o_ref), db = ndiff(o_live, o_base);
        printf("  step %d (s = %g): %zu tensors refreshed (%zu TE), %d of %d outputs differ from the merged "
               "model, %d from the base\n", t, (double)strengths[t - 1], ls.refreshed, ls.te_refreshed, d, NOUT, db);
        LF_CHECK(d == 0, "step %d: live model differs from the merged checkpoint in %d outputs", t, d);
        LF_CHECK(strengths[t - 1] == 0.0f ? db == 0 : db > 0, "step %d: base comparison (%d)", t, db);
    }
    lf_test_rmtree(dir);
    free(o_live), free(o_ref), free(o_base);
done:
    free_models(&live);
    lf_cpu_backend_free(b);
    lf_step_plan_free(sp);
    lf_prompt_free(pr);
    lf_model_free(model);
}

static void check_errors(void) {
    lf_model *model = NULL;
    models m;
    if (lf_model_open(SDXL, &model) != LF_OK || !load_models(SDXL, 1, &m)) {
        LF_CHECK(0, "setup: %s", lf_last_error());
        lf_model_free(model);
        return;
    }
    float buf[3 * 32 * 32];
    memset(buf, 0, sizeof buf);
    lf_view v = {buf, LF_F32, 2, {3 * 32, 32}};
    const char *qkv = "conditioner.embedders.1.model.transformer.resblocks.3.attn.in_proj_weight";
    LF_CHECK(lf_clip_has_weight(m.te2, qkv) && !lf_clip_has_weight(m.te1, qkv), "TE2 holds the fused in_proj");
    LF_CHECK(lf_clip_set_weight(m.te2, qkv, &v) == LF_OK, "%s", lf_last_error());
    v.shape[0] = 32;
    LF_CHECK(lf_clip_set_weight(m.te2, qkv, &v) == LF_ERR_SHAPE && strstr(lf_last_error(), qkv), "shape: %s",
             lf_last_error());
    LF_CHECK(lf_clip_set_weight(m.te1, qkv, &v) == LF_ERR_MODEL && strstr(lf_last_error(), qkv), "foreign key: %s",
             lf_last_error());
    const char *k = "model.diffusion_model.input_blocks.4.1.proj_in.weight";
    LF_CHECK(lf_unet_has_weight(m.unet, k) && lf_unet_has_weight(m.unet, k + 22), "unet key with and without prefix");
    LF_CHECK(!lf_unet_has_weight(m.unet, "model.diffusion_model.nope.weight"), "unknown unet key");
    /* a plan touching TE2 while only the UNet is loaded */
    lf_prompt *pr = NULL;
    lf_step_plan *sp = build(model, "<lora:x:0.5>", XL_KOHYA, 1, &pr);
    lf_cpu_backend *b = NULL;
    if (sp && lf_cpu_backend_new(sp, 0, &b) == LF_OK && lf_cpu_backend_step(b, 1) == LF_OK) {
        lf_live lv = {m.unet, NULL, NULL, 0};
        LF_CHECK(lf_live_apply_step(&lv, sp, b, 1, NULL) == LF_ERR_MODEL && strstr(lf_last_error(), "not loaded"),
                 "missing TE: %s", lf_last_error());
        lv.skip_missing = 1;
        lf_live_stats ls;
        LF_CHECK(lf_live_apply_step(&lv, sp, b, 1, &ls) == LF_OK && ls.skipped > 0 && ls.te_refreshed == 0 &&
                     ls.refreshed + ls.skipped == sp->steps[0].n_jobs,
                 "skip_missing: %zu refreshed %zu skipped", ls.refreshed, ls.skipped);
    }
    lf_cpu_backend_free(b);
    lf_step_plan_free(sp);
    lf_prompt_free(pr);
    free_models(&m);
    lf_model_free(model);
}

/* what the watcher heard */
typedef struct watched {
    int calls;
    size_t last_bytes;
    const void *last;
} watched;

static void on_change(void *ctx, const void *data, size_t bytes) {
    watched *w = ctx;
    w->calls++;
    w->last = data;
    w->last_bytes = bytes;
}

static void check_watcher(void) {
    models m;
    if (!load_models(SD15, 0, &m)) return;
    watched w = {0, 0, NULL};
    lf_wts_watch(on_change, &w);
    /* proj_in of input block 1: (16, 16, 1, 1) in the tiny model, f16 in the file */
    const char *k = "model.diffusion_model.input_blocks.1.1.proj_in.weight";
    static float buf[16 * 16];
    lf_view v = {buf, LF_F32, 4, {16, 16, 1, 1}};
    LF_CHECK(lf_unet_set_weight(m.unet, k, &v) == LF_OK, "set %s: %s", k, lf_last_error());
    LF_CHECK(w.calls == 1 && w.last && w.last_bytes > 0 && w.last_bytes % (16 * 16) == 0,
             "a refresh is heard once with the old memory: %d calls, %zu bytes", w.calls, w.last_bytes);
    const void *first = w.last;
    LF_CHECK(lf_unet_set_weight(m.unet, k, &v) == LF_OK && w.calls == 2 && w.last_bytes == 16 * 16 * 4,
             "the second refresh rewrites the model's own f32 copy: %d calls, %zu bytes", w.calls, w.last_bytes);
    LF_CHECK(w.last != first, "the first refresh replaced the memory the watcher heard of");
    int before = w.calls;
    free_models(&m);
    LF_CHECK(w.calls > before + 100, "freeing the models is heard per weight (%d calls)", w.calls - before);
    lf_wts_watch(NULL, NULL);
}

int main(void) {
    if (access(SD15, R_OK) != 0 || access(KOHYA, R_OK) != 0) LF_SKIP("tiny models missing (run from the source tree)");
    const float s1[4] = {0.5f, 0.5f, 1.25f, 0.0f};
    check_case(SD15, 0, KOHYA, "<lora:k:0.5@1,1.25@3,0@4>", 4, s1);
    const float s2[2] = {0.8f, -0.6f};
    check_case(SD15, 0, LYCO, "<lora:l:0.8@1,-0.6@2>", 2, s2);
    const float s3[2] = {0.7f, 1.5f};
    check_case(SDXL, 1, XL_KOHYA, "<lora:x:0.7@1,1.5@2>", 2, s3);
    check_errors();
    check_watcher();
    return lf_test_finish();
}
