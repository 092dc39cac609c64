/* test_extract_cli.c: `lorafuse extract` (host/cli/cli_extract.c) through the real binary ($LF_BIN, set by
 * CTest; run from the repo root) on the fixtures of tests/data/extract/: --report and --json output, an
 * adapter with a strength, a dynamic policy, a tuned checkpoint, the file `inspect` reads back, a
 * failure (exit 1, the library's message, no file) and usage errors (exit 2).
 */
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cJSON.h>

#include "lf_test.h"
#include "lf_test_data.h"

#include "host/base/util.h"

#define DATA "tests/data/extract/"

static char g_dir[256], g_out[512], g_err[512];

/* Run `$LF_BIN CMD ARGS`; returns the exit code, *out / *err get stdout / stderr (caller frees). */
static int run_cli(const char *cmd_args, char **out, char **err) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s >%s 2>%s", getenv("LF_BIN"), cmd_args, g_out, g_err);
    int rc = system(cmd);
    if (lf_read_file(g_out, "stdout", (size_t)64 << 20, out, NULL)) *out = calloc(1, 1);
    if (lf_read_file(g_err, "stderr", (size_t)64 << 20, err, NULL)) *err = calloc(1, 1);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static void test_report(void) {
    char args[2048], *out, *err;
    snprintf(args, sizeof args, "extract --model " DATA "base.safetensors --lora " DATA "lora_r8.safetensors:0.8 "
             "--lora " DATA "loha.safetensors --rank 4 --dtype f32 --output %s/a.safetensors --report", g_dir);
    int rc = run_cli(args, &out, &err);
    LF_CHECK(rc == 0, "report: exit %d: %s", rc, err);
    LF_CHECK(strstr(out, "lora_unet_down_blocks_0_resnets_0_conv1") && strstr(out, "(24, 16, 3x3)") &&
                 strstr(out, "total: 4 modules"),
             "report:\n%s", out);
    LF_CHECK(strstr(err, "lorafuse extract: adapters -> ") && strstr(err, "4 modules"), "summary line: %s", err);
    free(out);
    free(err);
    /* inspect reads the file back: 4 LoRA modules of rank 4, SD1 from the metadata */
    snprintf(args, sizeof args, "inspect %s/a.safetensors --model " DATA "base.safetensors", g_dir);
    rc = run_cli(args, &out, &err);
    LF_CHECK(rc == 0 && strstr(out, "algorithms: lora 4") && strstr(out, "ranks (1): 4") &&
                 strstr(out, "base model: SD1 (metadata ss_base_model_version)"),
             "inspect (exit %d):\n%s%s", rc, out, err);
    free(out);
    free(err);
}

static void test_json(void) {
    char args[2048], *out, *err;
    snprintf(args, sizeof args, "extract --model " DATA "base.safetensors --tuned " DATA "tuned.safetensors "
             "--sv-fro 0.9 --rank 16 --output %s/t.safetensors --json", g_dir);
    int rc = run_cli(args, &out, &err);
    LF_CHECK(rc == 0, "json: exit %d: %s", rc, err);
    cJSON *j = cJSON_Parse(out);
    LF_CHECK(j != NULL, "json parses:\n%s", out);
    if (j) {
        const cJSON *mods = cJSON_GetObjectItemCaseSensitive(j, "modules"),
                    *tot = cJSON_GetObjectItemCaseSensitive(j, "totals");
        LF_CHECK(cJSON_GetArraySize(mods) == 4, "4 modules");
        const cJSON *m;
        cJSON_ArrayForEach(m, mods) {
            const cJSON *k = cJSON_GetObjectItemCaseSensitive(m, "kept");
            LF_CHECK(cJSON_IsNumber(k) && k->valuedouble >= 0.9, "sv_fro 0.9 keeps at least 90 %% (%g)",
                     cJSON_IsNumber(k) ? k->valuedouble : -1.0);
        }
        const cJSON *nr = cJSON_GetObjectItemCaseSensitive(tot, "not_representable");
        LF_CHECK(cJSON_IsNumber(nr) && nr->valueint == 2, "the norm and the bias are counted");
        cJSON_Delete(j);
    }
    free(out);
    free(err);
}

static void test_errors(void) {
    char args[2048], *out, *err, path[512];
    snprintf(path, sizeof path, "%s/e.safetensors", g_dir);
    snprintf(args, sizeof args, "extract --model " DATA "base.safetensors --lora " DATA "lora_r4.safetensors "
             "--rank 100 --output %s", path);
    int rc = run_cli(args, &out, &err);
    LF_CHECK(rc == 1 && strstr(err, "above the size of every module") && !exists(path), "rank 100: exit %d: %s", rc,
             err);
    free(out);
    free(err);
    static const char *const usage[] = {
        "extract --model " DATA "base.safetensors --lora " DATA "lora_r4.safetensors --output x.safetensors",
        "extract --model " DATA "base.safetensors --rank 4 --output x.safetensors",
        "extract --model " DATA "base.safetensors --lora " DATA "lora_r4.safetensors --rank 4 --sv-fro 0.5 "
        "--sv-ratio 2 --output x.safetensors",
        "extract --model " DATA "base.safetensors --lora " DATA "lora_r4.safetensors --rank 0 --output x.safetensors",
        "extract --model " DATA "base.safetensors --lora " DATA "lora_r4.safetensors --rank 4 --dtype f8 "
        "--output x.safetensors",
        "extract --model " DATA "base.safetensors --lora " DATA "lora_r4.safetensors --rank 4 --bogus",
    };
    for (size_t i = 0; i < sizeof usage / sizeof usage[0]; i++) {
        rc = run_cli(usage[i], &out, &err);
        LF_CHECK(rc == 2 && !exists("x.safetensors"), "usage %zu: exit %d: %s", i, rc, err);
        free(out);
        free(err);
    }
}

int main(void) {
    if (!getenv("LF_BIN")) LF_SKIP("LF_BIN is not set (run through ctest)");
    if (lf_test_tmpdir(g_dir, sizeof g_dir, "extract_cli") != 0) LF_SKIP("no temporary directory");
    snprintf(g_out, sizeof g_out, "%s/stdout", g_dir);
    snprintf(g_err, sizeof g_err, "%s/stderr", g_dir);
    test_report();
    test_json();
    test_errors();
    lf_test_rmtree(g_dir);
    return lf_test_finish();
}
