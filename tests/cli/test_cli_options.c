/* test_cli_options.c: the conventions every subcommand shares (host/cli/cli_args.c) and the checks
 * before work, through the real binary ($LF_BIN): exit codes and the exact first line of each message
 * for unknown, ambiguous, valueless, value-taking-flag and repeated options; --opt=value; -h/--help on
 * every subcommand (exit 0, usage and an example) and every "$ lorafuse CMD --help" block of README.md
 * and the docs equal to it (the docs and --help in sync); an output folder that cannot be created refused before the model is loaded;
 * merge keeping an existing --output unless --force; a damaged hash cache a warning, then rebuilt;
 * generate --vae with a separate VAE file (same image as the checkpoint's own VAE, "VAE hash"/"VAE" in
 * the parameters) and its refusals; png-info on generate's own output (text and --json round trip).
 */
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cJSON.h>

#include "lf_test.h"
#include "lf_test_data.h"

#include "host/base/util.h"
#include "lorafuse/lf_hash.h"
#include "lorafuse/lf_png.h"

static char g_tmp[256];

typedef struct {
    int rc;
    char first[2048]; /* first line of stderr */
    char *out, *err;
} run_result;

static void run_free(run_result *r) {
    free(r->out);
    free(r->err);
}

/* `$LF_BIN ARGS` (a shell command line). */
static run_result run(const char *args) {
    run_result r;
    memset(&r, 0, sizeof r);
    char cmd[8192], o[512], e[512];
    snprintf(o, sizeof o, "%s/stdout", g_tmp);
    snprintf(e, sizeof e, "%s/stderr", g_tmp);
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s' 2>'%s'", getenv("LF_BIN"), args, o, e);
    int rc = system(cmd);
    r.rc = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    if (lf_read_file(o, "stdout", (size_t)64 << 20, &r.out, NULL)) r.out = calloc(1, 1);
    if (lf_read_file(e, "stderr", (size_t)64 << 20, &r.err, NULL)) r.err = calloc(1, 1);
    snprintf(r.first, sizeof r.first, "%.*s", (int)strcspn(r.err, "\n"), r.err);
    return r;
}

static void expect(const char *args, int rc, const char *first) {
    run_result r = run(args);
    LF_CHECK(r.rc == rc, "%s: exit %d, want %d (%s)", args, r.rc, rc, r.first);
    LF_CHECK(!strcmp(r.first, first), "%s: first line\n  got  '%s'\n  want '%s'", args, r.first, first);
    run_free(&r);
}

static void test_option_errors(void) {
    expect("generate --stpes 3", 2, "lorafuse generate: unknown option '--stpes' (closest: --steps)");
    expect("generate --s 3", 2, "lorafuse generate: option '--s' is ambiguous (--sampler, --steps, --seed)");
    expect("generate --model", 2, "lorafuse generate: option --model needs a value");
    expect("generate --model a --model b --prompt x", 2, "lorafuse generate: option --model is given more than once");
    expect("generate --model a --prompt x --json=yes", 2, "lorafuse generate: option --json takes no value");
    expect("generate --model a --prompt x extra", 2, "lorafuse generate: unexpected argument 'extra'");
    expect("generate --prompt x", 2, "lorafuse generate: --model and --prompt are required");
    expect("generate --model a --prompt x --steps=0", 2, "lorafuse generate: bad --steps '0' (1 to 10000)");
    expect("generate --model a --prompt x --backend gpu", 2, "lorafuse generate: bad --backend 'gpu' (auto, cpu or cuda)");
    expect("generate --model a --prompt x --device 1024", 2, "lorafuse generate: bad --device '1024' (0 to 1023)");
    expect("serve --model a --device -1", 2, "lorafuse serve: bad --device '-1' (0 to 1023)");
    expect("merge --model a --lora b --output c --backend auto", 2, "lorafuse merge: bad --backend 'auto' (cpu or cuda)");
    {   /* --backend cuda without a usable device: exit 1 before any work, the reason after the option (on a
         * machine with a GPU the job simply runs) */
        char args[1024];
        snprintf(args, sizeof args, "generate --model models/sd15-mini.safetensors --prompt x --steps 1 --width 64 "
                 "--height 64 --backend cuda --output-dir '%s' --hash-cache ''", g_tmp);
        run_result rc = run(args);
        LF_CHECK(rc.rc == 0 || (rc.rc == 1 && !strncmp(rc.first, "lorafuse generate: --backend cuda: ", 35)),
                 "--backend cuda without a device: exit %d (%s)", rc.rc, rc.first);
        run_free(&rc);
    }
    expect("plan --model m --prompt x --steps 2 --steps 3", 2, "lorafuse plan: option --steps is given more than once");
    expect("plan --modle m", 2, "lorafuse plan: unknown option '--modle' (closest: --model)");
    expect("merge -x", 2, "lorafuse merge: unknown option '-x' (closest: --lora)");
    expect("merge --output", 2, "lorafuse merge: option --output needs a value");
    expect("extract --rank 4 --rank 8", 2, "lorafuse extract: option --rank is given more than once");
    expect("inspect", 2, "lorafuse inspect: no FILE given");
    expect("inspect a b", 2, "lorafuse inspect: unexpected argument 'b'");
    expect("png-info", 2, "lorafuse png-info: no FILE given");
    expect("png-info --jsn x", 2, "lorafuse png-info: unknown option '--jsn' (closest: --json)");
    /* --lora may repeat; a repeated flag is harmless */
    run_result r = run("plan --model=models/sd15-mini.safetensors --prompt=x --steps=2 --json --json");
    LF_CHECK(r.rc == 0 && strstr(r.out, "\"steps\":\t2"), "--opt=value: exit %d (%s)", r.rc, r.first);
    run_free(&r);
}

/* The documents that show `$ lorafuse CMD --help` blocks: each block must be the program's output. */
static const char *const g_docs[] = {"README.md", "docs/generate.md", "docs/png-info.md"};

/* Every subcommand's --help: exit 0, usage first, an example, nothing on stderr; README.md shows it,
 * and every "$ lorafuse CMD --help" block of the docs is followed by exactly that text. */
static void test_help(void) {
    static const char *const cmds[] = {"inspect", "merge", "plan", "generate", "extract", "png-info", "serve", "batch"};
    char *docs[3] = {NULL, NULL, NULL};
    for (size_t d = 0; d < 3; d++)
        LF_CHECK(lf_read_file(g_docs[d], "doc", (size_t)1 << 22, &docs[d], NULL) == LF_OK, "%s", g_docs[d]);
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        char *help = NULL;
        for (int form = 0; form < 2; form++) {
            char args[64], want[64];
            snprintf(args, sizeof args, "%s %s", cmds[i], form ? "-h" : "--help");
            snprintf(want, sizeof want, "usage: lorafuse %s ", cmds[i]);
            run_result r = run(args);
            LF_CHECK(r.rc == 0 && !*r.err, "%s: exit %d, stderr '%s'", args, r.rc, r.first);
            LF_CHECK(!strncmp(r.out, want, strlen(want)) && strstr(r.out, "\nexample:\n  lorafuse "), "%s:\n%s", args,
                     r.out);
            if (!form) help = strdup(r.out);
            else LF_CHECK(help && !strcmp(help, r.out), "-h and --help differ");
            run_free(&r);
        }
        char marker[64];
        snprintf(marker, sizeof marker, "$ lorafuse %s --help\n", cmds[i]);
        LF_CHECK(docs[0] && strstr(docs[0], marker), "README.md has no '%s' block", marker);
        for (size_t d = 0; d < 3; d++)
            for (const char *at = docs[d] ? strstr(docs[d], marker) : NULL; at; at = strstr(at + 1, marker))
                LF_CHECK(help && !strncmp(at + strlen(marker), help, strlen(help)) &&
                             !strncmp(at + strlen(marker) + strlen(help), "```", 3),
                         "%s: the '%s' block is not the program's output (docs out of sync: python3 scripts/sync-help.py):\n%s", g_docs[d], marker,
                         help ? help : "");
        free(help);
    }
    for (size_t d = 0; d < 3; d++) free(docs[d]);
}

/* An --output-dir that cannot be created fails in the checks: its message is the first line (nothing was
 * loaded: the summary line comes after the checks), nothing is created. */
static void test_output_dir(void) {
    char args[1024], want[1024];
    snprintf(args, sizeof args, "generate --model models/sd15-mini.safetensors --prompt x --steps 1 --output-dir "
             "'%s/no/such/dir'", g_tmp);
    snprintf(want, sizeof want, "lorafuse generate: --output-dir %s/no/such/dir cannot be created: %s/no/such does not "
             "exist (one missing level is created, not more)", g_tmp, g_tmp);
    expect(args, 1, want);
    char file[512];
    snprintf(file, sizeof file, "%s/file", g_tmp);
    lf_test_write_text(file, "x");
    snprintf(args, sizeof args, "generate --model models/sd15-mini.safetensors --prompt x --steps 1 --output-dir '%s'",
             file);
    snprintf(want, sizeof want, "lorafuse generate: --output-dir %s exists and is not a directory", file);
    expect(args, 1, want);
}

/* A damaged hash cache is a warning, the first line of a run that goes on; the cache is rebuilt, and
 * the next run finds the model's hash in it (no warning). */
static void test_hash_cache_warning(void) {
    char cache[512], args[2048], want[1024];
    snprintf(cache, sizeof cache, "%s/hashes.json", g_tmp);
    lf_test_write_text(cache, "{\"version\": 1, \"sha256\": [");
    snprintf(args, sizeof args, "generate --model models/sd15-mini.safetensors --prompt x --steps 1 --width 64 --height 64 "
             "--seed 1 --output-dir '%s/hc' --hash-cache '%s'", g_tmp, cache);
    snprintf(want, sizeof want, "lorafuse generate: warning: hash cache %s is not valid JSON; rebuilding it", cache);
    expect(args, 0, want);
    run_result r = run(args);
    LF_CHECK(r.rc == 0 && !strstr(r.err, "warning"), "second run: exit %d, %s", r.rc, r.err);
    run_free(&r);
    char *text = NULL;
    LF_CHECK(lf_read_file(cache, "cache", (size_t)1 << 20, &text, NULL) == LF_OK && strstr(text, "sd15-mini.safetensors"),
             "the rebuilt cache holds the model");
    free(text);
}

/* merge keeps an existing --output unless --force, refused before any work. */
static void test_merge_force(void) {
    char out[512], args[2048], want[1024];
    snprintf(out, sizeof out, "%s/merged.safetensors", g_tmp);
    lf_test_write_text(out, "keep me");
    snprintf(args, sizeof args, "merge --model models/sd15-mini.safetensors --lora models/lora/mini_lora.safetensors "
             "--output '%s'", out);
    snprintf(want, sizeof want, "lorafuse merge: output '%s' already exists; refusing to replace it (--force replaces it)",
             out);
    expect(args, 1, want);
    char *kept = NULL;
    LF_CHECK(lf_read_file(out, "out", 64, &kept, NULL) == LF_OK && !strcmp(kept, "keep me"), "the file was kept");
    free(kept);
    strcat(args, " --force");
    run_result r = run(args);
    LF_CHECK(r.rc == 0 && !strncmp(r.first, "lorafuse merge: 1 adapter(s) -> ", 32), "--force: exit %d (%s)", r.rc, r.first);
    run_free(&r);
}

/* Run generate with extra args into <tmp>/DIR (64x64, 1 step, seed 3) and read the image back. */
static int gen_image(const char *extra, const char *dir, uint8_t **rgb, char **params) {
    char args[4096], png[1024];
    snprintf(args, sizeof args, "generate --prompt 'a hut <lora:mini_lora:0.7>' --steps 1 --seed 3 --width 64 "
             "--height 64 --quiet --output-dir '%s/%s' %s", g_tmp, dir, extra);
    run_result r = run(args);
    int ok = r.rc == 0;
    LF_CHECK(ok, "%s: exit %d (%s)", args, r.rc, r.first);
    run_free(&r);
    snprintf(png, sizeof png, "%s/%s/00000-3.png", g_tmp, dir);
    int w, h;
    return ok && lf_png_read(png, rgb, &w, &h, "parameters", params) == LF_OK && w == 64 && h == 64;
}

static void test_vae(void) {
    char vae[512], novae[512], args[2048];
    snprintf(vae, sizeof vae, "%s/my-vae.safetensors", g_tmp);
    snprintf(novae, sizeof novae, "%s/novae.safetensors", g_tmp);
    lf_test_st_edit only = {.prefix = "first_stage_model.", .strip = 1}, without = {.skip_prefix = "first_stage_model."};
    LF_CHECK(lf_test_st_copy("models/sd15-mini.safetensors", vae, &only), "write the VAE file");
    LF_CHECK(lf_test_st_copy("models/sd15-mini.safetensors", novae, &without), "write the model without VAE");
    uint8_t *a = NULL, *b = NULL;
    char *pa = NULL, *pb = NULL;
    LF_CHECK(gen_image("--model models/sd15-mini.safetensors", "own", &a, &pa), "with its own VAE");
    snprintf(args, sizeof args, "--model '%s' --vae '%s'", novae, vae);
    LF_CHECK(gen_image(args, "sep", &b, &pb), "with --vae");
    LF_CHECK(a && b && !memcmp(a, b, 64 * 64 * 3), "the same VAE weights from a separate file give another image");
    LF_CHECK(pa && !strstr(pa, "VAE"), "no VAE fields without --vae:\n%s", pa ? pa : "");
    LF_CHECK(pb && strstr(pb, ", VAE: my-vae.safetensors, "), "VAE field:\n%s", pb ? pb : "");
    char h[65];
    LF_CHECK(lf_sha256_file(vae, 0, h) == LF_OK, "hash");
    char want[64];
    snprintf(want, sizeof want, "VAE hash: %.10s, VAE: ", h);
    LF_CHECK(pb && strstr(pb, want), "VAE hash field (want '%s'):\n%s", want, pb ? pb : "");
    free(b);
    free(pb);
    /* a diffusers model folder holding vae/ (tests/data/model/tiny-sd15-diffusers: 4 levels, 8x, 4 latent
     * channels): decoded by that VAE, named by the folder, hashed by its weights file */
    b = NULL;
    pb = NULL;
    LF_CHECK(gen_image("--model models/sd15-mini.safetensors --vae tests/data/model/tiny-sd15-diffusers/", "dir", &b,
                       &pb), "with a diffusers folder");
    LF_CHECK(lf_sha256_file("tests/data/model/tiny-sd15-diffusers/vae/diffusion_pytorch_model.safetensors", 0, h) == LF_OK,
             "hash");
    snprintf(want, sizeof want, "VAE hash: %.10s, VAE: tiny-sd15-diffusers, ", h);
    LF_CHECK(pb && strstr(pb, want), "folder VAE fields (want '%s'):\n%s", want, pb ? pb : "");
    LF_CHECK(a && b && memcmp(a, b, 64 * 64 * 3), "another VAE, another image");
    free(a);
    free(b);
    free(pa);
    free(pb);
    /* refusals, all before loading */
    char want1[1024];
    snprintf(args, sizeof args, "generate --model '%s' --prompt x --steps 1", novae);
    snprintf(want1, sizeof want1, "lorafuse generate: %s: no VAE (first_stage_model.decoder.*): give one with --vae (a "
             "VAE .safetensors file or a diffusers vae/ folder)", novae);
    expect(args, 1, want1);
    snprintf(args, sizeof args, "generate --model models/sd15-mini.safetensors --prompt x --steps 1 --vae "
             "models/lora/mini_lora.safetensors");
    expect(args, 1, "lorafuse generate: --vae models/lora/mini_lora.safetensors: no VAE decoder in this file "
           "(decoder.conv_in.weight or first_stage_model.decoder.conv_in.weight)");
    snprintf(args, sizeof args, "generate --model models/sd15-mini.safetensors --prompt x --steps 1 --vae '%s'", g_tmp);
    snprintf(want1, sizeof want1, "lorafuse generate: --vae %s: a folder without config.json: give a diffusers vae/ "
             "folder (config.json + diffusion_pytorch_model.safetensors) or a .safetensors file", g_tmp);
    expect(args, 1, want1);
}

/* png-info reads back what generate wrote: the text as is, and --json fields that match it. */
static void test_png_info(void) {
    char args[2048];
    snprintf(args, sizeof args, "generate --model models/sd15-mini.safetensors --prompt 'caf\xc3\xa9 <lora:mini_lora:0.5>' "
             "--negative 'dark, \"blurry\"' --steps 1 --seed 5 --width 64 --height 64 --clip-skip 2 --quiet "
             "--output-dir '%s/pi'", g_tmp);
    run_result r = run(args);
    LF_CHECK(r.rc == 0, "generate: exit %d (%s)", r.rc, r.first);
    run_free(&r);
    char png[512], *params = NULL;
    snprintf(png, sizeof png, "%s/pi/00000-5.png", g_tmp);
    LF_CHECK(lf_png_read(png, NULL, NULL, NULL, "parameters", &params) == LF_OK && params, "read back");
    LF_CHECK(params && strstr(params, "Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 5, Size: 64x64, "),
             "A1111 1.9+ sampler fields:\n%s", params ? params : "");
    snprintf(args, sizeof args, "png-info '%s'", png);
    r = run(args);
    char *want = malloc(strlen(params ? params : "") + 2);
    sprintf(want, "%s\n", params ? params : "");
    LF_CHECK(r.rc == 0 && !strcmp(r.out, want), "png-info text:\n%s\nwant:\n%s", r.out, want);
    free(want);
    run_free(&r);
    snprintf(args, sizeof args, "png-info --json '%s' '%s/missing.png'", png, g_tmp);
    r = run(args);
    char wfirst[1024];
    snprintf(wfirst, sizeof wfirst, "lorafuse png-info: %s/missing.png: cannot open: No such file or directory", g_tmp);
    LF_CHECK(r.rc == 1 && !strcmp(r.first, wfirst), "a missing file: exit %d, '%s'", r.rc, r.first);
    cJSON *j = cJSON_Parse(r.out);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "fields"), *lh = cJSON_GetObjectItemCaseSensitive(j, "lora_hashes");
    static const char *const kv[][2] = {{"Prompt", "caf\xc3\xa9 <lora:mini_lora:0.5>"}, {"Negative prompt", "dark, \"blurry\""},
                                        {"Steps", "1"}, {"Sampler", "DPM++ 2M"}, {"Schedule type", "Karras"},
                                        {"Seed", "5"}, {"Size-1", "64"}, {"Size-2", "64"}, {"Clip skip", "2"},
                                        {"Model", "sd15-mini"}, {"RNG", "CPU"}};
    for (size_t i = 0; i < sizeof kv / sizeof *kv; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(f, kv[i][0]);
        LF_CHECK(cJSON_IsString(v) && !strcmp(v->valuestring, kv[i][1]), "--json %s: %s", kv[i][0],
                 cJSON_IsString(v) ? v->valuestring : "(absent)");
    }
    const cJSON *mh = cJSON_GetObjectItemCaseSensitive(lh, "mini_lora");
    char h[13];
    LF_CHECK(lf_a1111_lora_hash("models/lora/mini_lora.safetensors", h) == LF_OK && cJSON_IsString(mh) &&
                 !strcmp(mh->valuestring, h), "lora_hashes.mini_lora: %s, want %s", cJSON_IsString(mh) ? mh->valuestring : "-", h);
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(j, "parameters");
    LF_CHECK(cJSON_IsString(pp) && params && !strcmp(pp->valuestring, params), "--json parameters");
    cJSON_Delete(j);
    run_free(&r);
    free(params);
}

int main(void) {
    if (!getenv("LF_BIN")) LF_SKIP("LF_BIN not set (run through ctest)");
    LF_CHECK(lf_test_tmpdir(g_tmp, sizeof g_tmp, "cliopt") == 0, "tmpdir");
    test_option_errors();
    test_help();
    test_output_dir();
    test_merge_force();
    test_hash_cache_warning();
    test_vae();
    test_png_info();
    lf_test_rmtree(g_tmp);
    return lf_test_finish();
}
