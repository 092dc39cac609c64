/* test_step_cli.c: smoke test of `lorafuse plan` (host/cli/cli_plan.c) through the real binary ($LF_BIN, set
 * by CTest; run from the repo root): text and --json output on the tiny SD1.5 and SDXL models with a
 * temporary LoRA directory, --auto-trigger, warnings, a malformed tag (exit 1, "prompt col" message)
 * and a usage error (exit 2).
 */
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cJSON.h>

#include "lf_test.h"
#include "lf_test_data.h"

#include "lorafuse/lf_safetensors.h"
#include "host/base/util.h"

#define MODEL_ARG "--model tests/data/tiny/tiny-sd15.safetensors"

static char g_dir[256], g_out[512], g_err[512];

/* Run `$LF_BIN SUB ARGS`; returns the exit code, *out / *err get stdout / stderr (caller frees). */
static int run_cmd(const char *sub, const char *args, char **out, char **err) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s %s >%s 2>%s", getenv("LF_BIN"), sub, args, g_out, g_err);
    int rc = system(cmd);
    if (lf_read_file(g_out, "plan's stdout", (size_t)64 << 20, out, NULL)) *out = calloc(1, 1);
    if (lf_read_file(g_err, "plan's stderr", (size_t)64 << 20, err, NULL)) *err = calloc(1, 1);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int run_plan(const char *args, char **out, char **err) {
    return run_cmd("plan", args, out, err);
}

/* src with an SD1 base, an ss_output_name alias and trigger words in its metadata. */
static int write_alias_lora(const char *src, const char *dst) {
    const char *meta[] = {"ss_base_model_version", "sd_v1", "ss_output_name", "heroine", "ss_tag_frequency",
                          "{\"8_heroine\": {\"heroine\": 4}, \"2_red cape\": {}}", NULL};
    lf_test_st_edit e = {.meta = meta};
    return lf_test_st_copy(src, dst, &e);
}

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static int near(double a, double b) {
    return fabs(a - b) < 1e-6;
}

static void test_text(void) {
    char *out, *err, args[1024];
    snprintf(args, sizeof args, MODEL_ARG " --steps 8 --lora-dir %s --prompt 'a cat, "
             "<lora:k:te=0.1@1,0.6@6> wearing a hat <lora:lyco:1.0:in=0:mid=1:out=0> <lora:k:0>'", g_dir);
    int rc = run_plan(args, &out, &err);
    LF_CHECK(rc == 0, "text: exit %d: %s", rc, err);
    LF_CHECK(strstr(out, "prompt: a cat, wearing a hat\n") != NULL, "cleaned prompt:\n%s", out);
    LF_CHECK(strstr(out, "model: tests/data/tiny/tiny-sd15.safetensors (SD1), 8 steps") != NULL, "model line");
    LF_CHECK(strstr(out, "1. <lora:k:te=0.1@1,0.6@6> (col 8)") && strstr(out, "algorithm: lora; 264 modules matched"),
             "adapter 1 lines:\n%s", out);
    LF_CHECK(strstr(out, "dropped: zero at every step (not loaded)") != NULL, "dropped adapter");
    LF_CHECK(strstr(out, "  1-5          0.1    0.1    0.1    0.1\n") && strstr(out, "  6-8          0.6    0.6    0.6    0.6\n"),
             "strength table:\n%s", out);
    LF_CHECK(strstr(out, "  1-8            1      0      1      0\n") != NULL, "in/mid/out table");
    LF_CHECK(strstr(out, "encode (set 1)") && strstr(out, "encode (set 2)") && strstr(out, "text-encoder encode(s)"),
             "plan table");
    free(out);
    free(err);
}

static void test_json(void) {
    char *out, *err, args[1024];
    snprintf(args, sizeof args, MODEL_ARG " --steps 8 --lora-dir %s --json --prompt "
             "'<lora:k:te=0.1@1,0.6@6> <lora:lyco:0.5:lbw=ALL0.5> <lora:k:te=0:unet=1@30>'", g_dir);
    int rc = run_plan(args, &out, &err);
    LF_CHECK(rc == 0, "json: exit %d: %s", rc, err);
    cJSON *j = cJSON_Parse(out);
    LF_CHECK(j != NULL, "json parses:\n%s", out);
    if (j) {
        const cJSON *ads = cJSON_GetObjectItemCaseSensitive(j, "adapters");
        LF_CHECK(cJSON_GetArraySize(ads) == 3, "3 adapters");
        const cJSON *a0 = cJSON_GetArrayItem(ads, 0), *a1 = cJSON_GetArrayItem(ads, 1), *a2 = cJSON_GetArrayItem(ads, 2);
        const cJSON *s0 = cJSON_GetObjectItemCaseSensitive(a0, "strengths");
        LF_CHECK(cJSON_GetArraySize(s0) == 8, "8 steps");
        const cJSON *r5 = cJSON_GetArrayItem(s0, 4), *r6 = cJSON_GetArrayItem(s0, 5);
        LF_CHECK(near(num(r5, "te"), 0.1f) && near(num(r6, "te"), 0.6f) && near(num(r6, "IN00"), 0.6f) &&
                 near(num(r6, "OUT11"), 0.6f) && near(num(r6, "M00"), 0.6f) && near(num(r6, "other"), 0.6f) &&
                 near(num(r6, "other_out"), 0.6f) && near(num(r6, "step"), 6), "adapter 1 step values");
        LF_CHECK(!cJSON_GetObjectItemCaseSensitive(r6, "te1"), "one text encoder: te, not te1");
        const cJSON *l1 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(a1, "strengths"), 0);
        LF_CHECK(near(num(l1, "te"), 0.25) && near(num(l1, "IN01"), 0.25) && near(num(l1, "IN00"), 0) &&
                 near(num(l1, "OUT11"), 0.25) && near(num(l1, "other"), 0.5), "lbw ALL0.5 values");
        LF_CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a2, "dropped")), "te=0:unet=1@30 of 8 steps: dropped");
        const cJSON *al = cJSON_GetObjectItemCaseSensitive(a0, "algorithms");
        LF_CHECK(cJSON_GetArraySize(al) == 1 && !strcmp(cJSON_GetArrayItem(al, 0)->valuestring, "lora"), "algorithms");
        const cJSON *pl = cJSON_GetObjectItemCaseSensitive(j, "plan");
        const cJSON *p1 = cJSON_GetArrayItem(pl, 0), *p2 = cJSON_GetArrayItem(pl, 1), *p6 = cJSON_GetArrayItem(pl, 5);
        LF_CHECK(num(p1, "layers") > 0 && num(p1, "bytes") > 0 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p1, "te_encode")),
                 "step 1");
        LF_CHECK(num(p2, "layers") == 0 && cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(p2, "te_encode")), "step 2");
        LF_CHECK(num(p6, "layers") > 0 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p6, "te_encode")) &&
                 near(num(p6, "te_set"), 1), "step 6");
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(j, "warnings");
        LF_CHECK(cJSON_GetArraySize(w) == 2 &&
                     strstr(cJSON_GetArrayItem(w, 0)->valuestring, "<lora:k:te=0.1@1,0.6@6>: loractl reads this tag "
                            "differently (te at step 4 of 8: 0.1 here, 0.2 in loractl)") &&
                     strstr(cJSON_GetArrayItem(w, 1)->valuestring, "never reached"),
                 "warnings: the dialect warning once (first tag), never reached (third tag)");
        LF_CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(j, "family")->valuestring, "SD1"), "family");
        cJSON_Delete(j);
    }
    free(out);
    free(err);
    /* SDXL: te1 / te2 and the SDXL blocks */
    snprintf(args, sizeof args, "--model tests/data/tiny/tiny-sdxl.safetensors --steps 3 --lora-dir %s --json --prompt "
             "'<lora:xl:te2=0.5:unet=0.25@2>'", g_dir);
    rc = run_plan(args, &out, &err);
    LF_CHECK(rc == 0, "sdxl json: exit %d: %s", rc, err);
    j = cJSON_Parse(out);
    if (j) {
        const cJSON *r1 = cJSON_GetArrayItem(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "adapters"), 0),
                                             "strengths"), 0);
        LF_CHECK(near(num(r1, "te1"), 1) && near(num(r1, "te2"), 0.5) && near(num(r1, "IN08"), 0) &&
                 !cJSON_GetObjectItemCaseSensitive(r1, "IN09") && !cJSON_GetObjectItemCaseSensitive(r1, "te"),
                 "sdxl keys");
        cJSON_Delete(j);
    } else {
        LF_CHECK(0, "sdxl json parses");
    }
    free(out);
    free(err);
}

static void test_trigger_and_errors(void) {
    char *out, *err, args[1024];
    snprintf(args, sizeof args, MODEL_ARG " --steps 2 --lora-dir %s --auto-trigger --prompt "
             "'a heroine flying <lora:heroine:0.7>'", g_dir);
    int rc = run_plan(args, &out, &err);
    LF_CHECK(rc == 0 && strstr(out, "prompt: a heroine flying, red cape\n"), "auto-trigger (exit %d):\n%s%s", rc, out, err);
    free(out);
    free(err);
    snprintf(args, sizeof args, MODEL_ARG " --steps 4 --lora-dir %s --prompt "
             "'a photo of a cat, <lora:k:te=abc>'", g_dir);
    rc = run_plan(args, &out, &err);
    LF_CHECK(rc == 1 && !strcmp(err, "lorafuse plan: prompt col 19: <lora:k:te=abc>: 'abc' is not a number or schedule\n"),
             "bad tag: exit %d, stderr '%s'", rc, err);
    LF_CHECK(!*out, "nothing on stdout when a tag is wrong");
    free(out);
    free(err);
    snprintf(args, sizeof args, MODEL_ARG " --steps 4 --lora-dir %s --prompt '<lora:kk>'", g_dir);
    rc = run_plan(args, &out, &err);
    LF_CHECK(rc == 1 && strstr(err, "no LoRA named 'kk'") && strstr(err, "closest: k,"), "unknown name: %s", err);
    free(out);
    free(err);
    rc = run_plan(MODEL_ARG " --prompt x", &out, &err);
    LF_CHECK(rc == 2 && strstr(err, "--steps"), "usage: exit %d", rc);
    free(out);
    free(err);
    rc = run_plan(MODEL_ARG " --prompt x --steps 0", &out, &err);
    LF_CHECK(rc == 2 && strstr(err, "bad --steps '0'"), "bad steps: exit %d", rc);
    free(out);
    free(err);
}

/* --tag-dialect: loractl's ramp in the plan, no dialect warning under it, an unknown dialect refused. */
static void test_dialect(void) {
    char *out, *err, args[1024];
    snprintf(args, sizeof args, MODEL_ARG " --steps 6 --lora-dir %s --json --tag-dialect "
             "loractl --prompt '<lyco:k:1:0@0;1~1>'", g_dir);
    int rc = run_plan(args, &out, &err);
    LF_CHECK(rc == 0 && !*err, "loractl dialect: exit %d: %s", rc, err);
    cJSON *j = cJSON_Parse(out);
    const cJSON *s0 = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "adapters"), 0),
                                                       "strengths");
    double want[6] = {0, 0, 0.25, 0.5, 0.75, 1}; /* x = max(0, t - 2) / (6 - 2) */
    LF_CHECK(cJSON_GetArraySize(s0) == 6, "6 steps of strengths");
    for (int t = 0; t < 6 && cJSON_GetArraySize(s0) == 6; t++) {
        const cJSON *row = cJSON_GetArrayItem(s0, t);
        LF_CHECK(near(num(row, "IN01"), want[t]) && near(num(row, "te"), 1), "loractl step %d: unet %g", t + 1,
                 num(row, "IN01"));
    }
    cJSON_Delete(j);
    free(out);
    free(err);
    snprintf(args, sizeof args, MODEL_ARG " --steps 6 --lora-dir %s --tag-dialect sdnext "
             "--prompt '<lora:k:1>'", g_dir);
    rc = run_plan(args, &out, &err);
    LF_CHECK(rc == 1 && !strcmp(err, "lorafuse plan: unknown tag dialect 'sdnext' (dialects: lorafuse, loractl)\n"),
             "unknown dialect: exit %d: %s", rc, err);
    free(out);
    free(err);
}

/* inspect --embeddings: the list, its JSON, a missing directory. */
static void test_inspect_embeddings(void) {
    char *out, *err;
    int rc = run_cmd("inspect", "--embeddings tests/data/prompt/embeddings", &out, &err);
    const char *head = "embeddings in tests/data/prompt/embeddings (5):\n  pickled ";
    LF_CHECK(rc == 0 && !*err && !strncmp(out, head, strlen(head)) &&
                 strstr(out, "\n  tinyemb          2 vectors, width 32 (one text encoder") &&
                 strstr(out, "\n  xlemb            3 vectors, SDXL (clip_l 32, clip_g 32)"),
             "inspect --embeddings: exit %d:\n%s%s", rc, out, err);
    free(out);
    free(err);
    rc = run_cmd("inspect", "--embeddings tests/data/prompt/embeddings --json", &out, &err);
    cJSON *j = cJSON_Parse(out);
    const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "embeddings"), 2);
    LF_CHECK(rc == 0 && e && !strcmp(cJSON_GetObjectItemCaseSensitive(e, "name")->valuestring, "tinyemb") &&
                 num(e, "vectors") == 2 && !strcmp(cJSON_GetObjectItemCaseSensitive(e, "kind")->valuestring, "one-encoder"),
             "inspect --embeddings --json: %s", out);
    cJSON_Delete(j);
    free(out);
    free(err);
    rc = run_cmd("inspect", "--embeddings tests/data/prompt/none", &out, &err);
    LF_CHECK(rc == 1 && !strcmp(err, "lorafuse inspect: tests/data/prompt/none: no such embeddings directory\n"),
             "missing directory: exit %d: %s", rc, err);
    free(out);
    free(err);
}

int main(void) {
    if (!getenv("LF_BIN")) LF_SKIP("LF_BIN not set (run through ctest)");
    char cwd[2048], src[4096], dst[4096];
    if (lf_test_tmpdir(g_dir, sizeof g_dir, "plancli") || !getcwd(cwd, sizeof cwd)) LF_SKIP("no temp dir");
    snprintf(g_out, sizeof g_out, "%s/out.txt", g_dir);
    snprintf(g_err, sizeof g_err, "%s/err.txt", g_dir);
    const char *links[3][2] = {{"tests/data/tiny/sd15_kohya.lora.safetensors", "k.safetensors"},
                               {"tests/data/tiny/sd15_lycoris.lora.safetensors", "lyco.safetensors"},
                               {"tests/data/tiny/sdxl_kohya.lora.safetensors", "xl.safetensors"}};
    for (int i = 0; i < 3; i++) {
        snprintf(src, sizeof src, "%s/%s", cwd, links[i][0]);
        snprintf(dst, sizeof dst, "%s/%s", g_dir, links[i][1]);
        LF_CHECK(symlink(src, dst) == 0, "symlink");
    }
    snprintf(dst, sizeof dst, "%s/epoch10.safetensors", g_dir);
    LF_CHECK(write_alias_lora("tests/data/tiny/sd15_kohya.lora.safetensors", dst), "alias LoRA");
    test_text();
    test_json();
    test_trigger_and_errors();
    test_dialect();
    test_inspect_embeddings();
    lf_test_rmtree(g_dir);
    return lf_test_finish();
}
