/* test_robust_generate.c: `lorafuse generate` (the real binary, $LF_BIN, set by CTest; run from the repo
 * root) against hostile or careless input: seeds at the top of the range, an empty --output-dir, damaged
 * checkpoints (a NaN or Inf weight in the UNet, the VAE or the text encoder, an I16 weight, weights that
 * make the UNet's output overflow), sizes over a memory limit, an invalid default-size metadata, and a
 * LoRA directory with links out of it and link loops.
 *
 * Each case runs the CLI in an empty working directory with --output-dir pointing to a folder that does
 * not exist yet, and asserts the exit status, the first line of stderr, and which files exist afterwards:
 * none at all after a failure (no output folder, nothing in the working directory), exactly the
 * expected PNGs after a success. Damaged models are copies of models/sd15-mini.safetensors written into
 * a temporary folder with the library's safetensors writer, one tensor changed.
 */
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lf_test.h"
#include "lf_test_data.h"

#include "host/base/util.h"
#include "lorafuse/lf_safetensors.h"

#define MINI "models/sd15-mini.safetensors"
#define UNET_W "model.diffusion_model.input_blocks.1.0.in_layers.2.weight"
#define UNET_OUT "model.diffusion_model.out.2.weight"
#define VAE_W "first_stage_model.decoder.conv_in.weight"
#define TE_W "cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1.weight"

static char g_tmp[256], g_mini[4096];
static const char *g_size = "--width 64 --height 64"; /* "" lets the model's default size apply */

/* How a damaged copy changes its one tensor. */
typedef enum { CH_NONE, CH_NAN, CH_INF, CH_I16, CH_HUGE } change;

/* A copy of the mini model with tensor `name` changed (and metadata `meta_key` = `meta_val` when given). */
static int write_variant(const char *dst, const char *name, change how, const char *meta_key, const char *meta_val) {
    lf_st_file *f = NULL;
    lf_st_writer *w = NULL;
    void *buf = NULL;
    int ok = lf_st_open(MINI, &f) == LF_OK && lf_st_writer_new(&w) == LF_OK;
    for (size_t i = 0; ok && i < lf_st_meta_count(f); i++) {
        const lf_st_kv *kv = lf_st_meta_at(f, i);
        const char *v = meta_key && !strcmp(kv->key, meta_key) ? meta_val : kv->value;
        ok = lf_st_writer_meta(w, kv->key, v) == LF_OK;
    }
    for (size_t i = 0; ok && i < lf_st_count(f); i++) {
        const lf_st_tensor *t = lf_st_at(f, i);
        size_t nb = (size_t)(t->end - t->begin);
        lf_dtype dt = t->dtype;
        const void *data = t->data;
        if (name && !strcmp(t->name, name) && how != CH_NONE) {
            lf_view v = lf_st_view(t);
            int64_t n = lf_view_numel(&v);
            if (how == CH_I16) {
                dt = LF_I16; /* same bytes, an integer dtype */
            } else if (how == CH_HUGE || how == CH_INF) {
                float *p = malloc((size_t)n * sizeof *p), x = how == CH_HUGE ? 3.0e38f : INFINITY;
                ok = p != NULL && lf_view_to_f32(&v, p) == LF_OK;
                for (int64_t k = 0; ok && k < n; k++) p[k] = how == CH_HUGE ? x : (k == 5 ? x : p[k]);
                buf = p;
                dt = LF_F32;
                nb = (size_t)n * sizeof *p;
            } else { /* CH_NAN: the f16 NaN 0x7e00 at element 0 */
                unsigned char *p = malloc(nb);
                ok = p != NULL && t->dtype == LF_F16;
                if (ok) {
                    memcpy(p, t->data, nb);
                    p[0] = 0x00;
                    p[1] = 0x7e;
                }
                buf = p;
            }
            if (how != CH_I16) data = buf;
        }
        ok = ok && lf_st_writer_add(w, t->name, dt, t->ndim, t->shape, data, nb) == LF_OK;
    }
    ok = ok && lf_st_writer_commit(w, dst) == LF_OK;
    free(buf);
    lf_st_writer_free(w);
    lf_st_close(f);
    return ok;
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

typedef struct {
    int rc;
    char first[1024]; /* stderr's first line */
    char *out;        /* stdout */
    double secs;
} result;

/* Run `$LF_BIN generate ARGS` in the empty folder <tmp>/work, with the model, prompt, 2 steps, the size,
 * seed 7 and --output-dir <tmp>/out unless ARGS gives them. */
static result run(const char *args) {
    result r;
    memset(&r, 0, sizeof r);
    char cmd[16384], work[512], errf[512], outf[512];
    snprintf(work, sizeof work, "%s/work", g_tmp);
    snprintf(errf, sizeof errf, "%s/stderr", g_tmp);
    snprintf(outf, sizeof outf, "%s/stdout", g_tmp);
    mkdir(work, 0755);
    /* the defaults an argument of the case does not give itself (an option given twice is refused) */
    char model[4200] = "", outdir[4200] = "";
    if (!strstr(args, "--model ")) snprintf(model, sizeof model, "--model '%s'", g_mini);
    if (!strstr(args, "--output-dir ")) snprintf(outdir, sizeof outdir, "--output-dir '%s/out'", g_tmp);
    int len = snprintf(cmd, sizeof cmd, "cd '%s' && '%s' generate %s %s %s %s %s %s %s >'%s' 2>'%s'", work, getenv("LF_BIN"), model,
             strstr(args, "--prompt ") ? "" : "--prompt 'a fox'", strstr(args, "--steps ") ? "" : "--steps 2",
             strstr(args, "--width ") ? "" : g_size,
             strstr(args, "--seed ") ? "" : "--seed 7", outdir, args, outf, errf);
    LF_CHECK(len > 0 && (size_t)len < sizeof cmd, "the command of case '%.80s' does not fit %zu bytes", args, sizeof cmd);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = system(cmd);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    r.secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    r.rc = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    char *err = NULL;
    if (lf_read_file(errf, "stderr", (size_t)1 << 20, &err, NULL) == LF_OK) {
        snprintf(r.first, sizeof r.first, "%.*s", (int)strcspn(err, "\n"), err);
        free(err);
    }
    if (lf_read_file(outf, "stdout", (size_t)1 << 20, &r.out, NULL) != LF_OK) r.out = NULL;
    return r;
}

/* The folders after a run: <tmp>/work empty, <tmp>/out holding `pngs` files (-1: absent). Cleans up. */
static void check_files(const char *what, int pngs) {
    char work[512], out[512];
    snprintf(work, sizeof work, "%s/work", g_tmp);
    snprintf(out, sizeof out, "%s/out", g_tmp);
    LF_CHECK(count_entries(work) == 0, "%s: %d stray entries in the working directory", what, count_entries(work));
    LF_CHECK(count_entries(out) == pngs, "%s: output folder holds %d entries, want %d", what, count_entries(out), pngs);
    lf_test_rmtree(work);
    lf_test_rmtree(out);
}

/* A failing case: exit 1, the first line of stderr starts with want (and contains also, when given),
 * no file anywhere. */
static void expect_fail(const char *what, const char *args, const char *want, const char *also) {
    result r = run(args);
    LF_CHECK(r.rc == 1, "%s: exit %d, want 1 (%s)", what, r.rc, r.first);
    LF_CHECK(!strncmp(r.first, want, strlen(want)), "%s: first line\n  '%s'\n  want it to start with '%s'", what,
             r.first, want);
    LF_CHECK(!also || strstr(r.first, also), "%s: first line '%s' lacks '%s'", what, r.first, also);
    LF_CHECK(!r.out || !*r.out, "%s: stdout '%s'", what, r.out ? r.out : "");
    printf("  %-22s %.2f s  %s\n", what, r.secs, r.first);
    free(r.out);
    check_files(what, -1);
}

/* A succeeding case: exit 0, stdout lists files the output folder holds (pngs of them). */
static result expect_ok(const char *what, const char *args, int pngs) {
    result r = run(args);
    LF_CHECK(r.rc == 0, "%s: exit %d (%s)", what, r.rc, r.first);
    printf("  %-22s %.2f s  ok\n", what, r.secs);
    check_files(what, pngs);
    return r;
}

static void test_seeds(void) {
    expect_fail("seed past the range", "--seed 9223372036854775807 --batch-size 2 --quiet",
                "lorafuse generate: seed 9223372036854775807 with 2 images: image i gets seed + i, and the last would "
                "pass 9223372036854775807", "use a seed at most 9223372036854775806");
    expect_fail("seed past the range", "--seed 9223372036854775800 --batch-count 9 --quiet",
                "lorafuse generate: seed 9223372036854775800 with 9 images", NULL);
    result r = expect_ok("seed at the top", "--seed 9223372036854775806 --batch-size 2 --quiet --json --steps 1", 2);
    LF_CHECK(r.out && strstr(r.out, "/00000-9223372036854775806.png\",\"seed\":9223372036854775806,") &&
                 strstr(r.out, "/00001-9223372036854775807.png\",\"seed\":9223372036854775807,"),
             "file names and exact JSON seeds:\n%s", r.out ? r.out : "");
    free(r.out);
}

static void test_output_dir(void) {
    char args[256];
    snprintf(args, sizeof args, "--output-dir ''");
    expect_fail("--output-dir ''", args, "lorafuse generate: --output-dir is empty", NULL);
}

static void test_damaged_models(void) {
    static const struct {
        const char *what, *tensor;
        change how;
        const char *want, *quiet;
    } cases[] = {
        {"NaN UNet weight", UNET_W, CH_NAN, "tensor \"" UNET_W "\" holds a non-finite value (NaN at element 0 of ",
         "--quiet"},
        {"NaN VAE weight", VAE_W, CH_NAN, "tensor \"" VAE_W "\" holds a non-finite value (NaN at element 0 of ",
         "--quiet"},
        {"NaN text-encoder weight", TE_W, CH_NAN,
         "tensor \"" TE_W "\" holds a non-finite value (NaN at element 0 of ", "--quiet"},
        {"Inf UNet weight", UNET_W, CH_INF, "tensor \"" UNET_W "\" holds a non-finite value (+Inf at element 5 of ",
         "--quiet"},
        /* refused by the checks before loading: the first line even without --quiet */
        {"I16 UNet weight", UNET_W, CH_I16, "tensor \"" UNET_W "\" has dtype I16: a model weight must be a float", ""},
        {"I16 VAE weight", VAE_W, CH_I16, "tensor \"" VAE_W "\" has dtype I16: a model weight must be a float", ""},
        {"I16 text-encoder weight", TE_W, CH_I16, "tensor \"" TE_W "\" has dtype I16: a model weight must be a float",
         "--quiet"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char model[512], args[1024], want[1024];
        snprintf(model, sizeof model, "%s/bad%zu.safetensors", g_tmp, i);
        LF_CHECK(write_variant(model, cases[i].tensor, cases[i].how, NULL, NULL), "%s: write: %s", cases[i].what,
                 lf_last_error());
        snprintf(args, sizeof args, "--model '%s' %s", model, cases[i].quiet);
        snprintf(want, sizeof want, "lorafuse generate: %s: %s", model, cases[i].want);
        expect_fail(cases[i].what, args, want, NULL);
    }
    /* finite weights whose output overflows: stopped at the first step, the step named */
    char model[512], args[1024];
    snprintf(model, sizeof model, "%s/huge.safetensors", g_tmp);
    LF_CHECK(write_variant(model, UNET_OUT, CH_HUGE, NULL, NULL), "huge: write: %s", lf_last_error());
    snprintf(args, sizeof args, "--model '%s' --quiet", model);
    expect_fail("UNet output overflows", args, "lorafuse generate: step 1 of 2: the UNet's prediction holds ",
                "(image 1, element ");
}

static void test_memory(void) {
    expect_fail("8192x8192 over 1 GiB", "--width 8192 --height 8192 --memory-limit 1024",
                "lorafuse generate: 8192x8192 with 1 image(s) per sampler run needs about ",
                "more than the 1.00 GiB available (--memory-limit): use a smaller size or batch size, or --force-size");
    expect_fail("64x64 over 1 MiB", "--memory-limit 1",
                "lorafuse generate: 64x64 with 1 image(s) per sampler run needs about ", NULL);
    free(expect_ok("--force-size", "--memory-limit 1 --force-size --quiet --steps 1", 1).out);
}

/* Runs a 512x512 image (the family default): 2 s, but 80 s in the sanitizer build, where it is skipped
 * (tests/pipeline/test_generate.c checks the same warning through the library in every build). */
static void test_default_size(void) {
#ifdef LF_TEST_SANITIZED
    printf("  skipped in the sanitizer build (slow)\n");
    return;
#endif
    char model[512], args[1024], want[1024];
    snprintf(model, sizeof model, "%s/badsize.safetensors", g_tmp);
    LF_CHECK(write_variant(model, NULL, CH_NONE, "lorafuse.default_size", "99999999999999999999x64"), "write: %s",
             lf_last_error());
    /* no --width/--height: the metadata is consulted, found invalid, the family default used */
    snprintf(args, sizeof args, "--model '%s' --steps 1", model);
    g_size = "";
    snprintf(want, sizeof want, "lorafuse generate: warning: %s: metadata lorafuse.default_size "
             "\"99999999999999999999x64\" is not WxH with multiples of 8 from 8 to 8192; using 512x512", model);
    result r = run(args);
    g_size = "--width 64 --height 64";
    LF_CHECK(r.rc == 0, "bad default size: exit %d (%s)", r.rc, r.first);
    LF_CHECK(!strncmp(r.first, want, strlen(want)), "bad default size: first line\n  '%s'\n  want '%s'", r.first, want);
    printf("  %-22s %.2f s  %s\n", "bad default size", r.secs, r.first);
    free(r.out);
    check_files("bad default size", 1);
}

/* LoRA directory: a file and a folder linked from outside, five links back to the directory itself. */
static void test_lora_dir(void) {
    char ld[512], outside[512], p[1024], q[4096], args[2048];
    snprintf(ld, sizeof ld, "%s/loras", g_tmp);
    snprintf(outside, sizeof outside, "%s/elsewhere", g_tmp);
    mkdir(ld, 0755);
    mkdir(outside, 0755);
    snprintf(p, sizeof p, "%s/far.safetensors", outside);
    char cwd[1024];
    LF_CHECK(getcwd(cwd, sizeof cwd) != NULL, "getcwd");
    snprintf(q, sizeof q, "%s/models/lora/mini_lora.safetensors", cwd);
    LF_CHECK(symlink(q, p) == 0, "link %s", p); /* the adapter, reached from outside */
    snprintf(q, sizeof q, "%s/far.safetensors", outside);
    snprintf(p, sizeof p, "%s/linked.safetensors", ld);
    LF_CHECK(symlink(q, p) == 0, "link %s", p);
    snprintf(p, sizeof p, "%s/shelf", ld);
    LF_CHECK(symlink(outside, p) == 0, "link %s", p);
    for (int i = 1; i <= 5; i++) {
        snprintf(p, sizeof p, "%s/l%d", ld, i);
        LF_CHECK(symlink(".", p) == 0, "link %s", p);
    }
    /* the command line's default follows links out of the directory, as A1111 and SD.Next */
    snprintf(args, sizeof args, "--lora-dir '%s' --prompt 'a fox <lora:linked:0.5> <lora:shelf/far:0.5>' --quiet "
             "--steps 1", ld);
    result r = expect_ok("links out followed", args, 1);
    free(r.out);
    snprintf(args, sizeof args, "--lora-dir '%s' --prompt 'a fox <lora:linked:0.5>' --no-symlinks-out", ld);
    expect_fail("link out refused", args, "lorafuse generate: prompt col 7: <lora:linked:0.5>: 'linked' is "
                "linked.safetensors in ", "a symbolic link leading out of the LoRA directory: refused");
    snprintf(args, sizeof args, "--lora-dir '%s' --prompt 'a fox <lora:shelf/far:0.5>' --no-symlinks-out", ld);
    expect_fail("folder link refused", args, "lorafuse generate: prompt col 7: <lora:shelf/far:0.5>: no LoRA named "
                "'shelf/far'", "(1 folder link leading out of the directory not followed: --allow-symlinks-out)");
    /* the loops end: each real folder once, so l1/l2/... are not names */
    snprintf(args, sizeof args, "--lora-dir '%s' --prompt 'a fox <lora:l1/l2/l3/linked:0.5>'", ld);
    result t = run(args);
    LF_CHECK(t.rc == 1 && strstr(t.first, "no LoRA named 'l1/l2/l3/linked'") && strstr(t.first, "(2 files); closest: "),
             "loop: exit %d, %s", t.rc, t.first);
    LF_CHECK(t.secs < 20, "loop: %.1f s", t.secs);
    printf("  %-22s %.2f s  %s\n", "link loops", t.secs, t.first);
    free(t.out);
    check_files("link loops", -1);
}

/* --tag-dialect and --embeddings-dir are checked before any work. */
static void test_prompt_options(void) {
    expect_fail("unknown tag dialect", "--tag-dialect sdnext",
                "lorafuse generate: unknown tag dialect 'sdnext' (dialects: lorafuse, loractl)", NULL);
    char args[600];
    snprintf(args, sizeof args, "--embeddings-dir '%s/none'", g_tmp);
    expect_fail("no embeddings dir", args, "lorafuse generate: ", "/none: no such embeddings directory");
    free(expect_ok("loractl dialect", "--tag-dialect loractl", 1).out);
}

int main(void) {
    if (!getenv("LF_BIN")) LF_SKIP("LF_BIN not set (run through ctest)");
    if (lf_test_tmpdir(g_tmp, sizeof g_tmp, "robust_gen") != 0) return 1;
    if (!realpath(MINI, g_mini)) LF_SKIP(MINI " missing");
    printf("seeds\n");
    test_seeds();
    printf("output folder\n");
    test_output_dir();
    printf("damaged checkpoints\n");
    test_damaged_models();
    printf("memory\n");
    test_memory();
    printf("default size metadata\n");
    test_default_size();
    printf("LoRA directory links\n");
    test_lora_dir();
    printf("prompt options\n");
    test_prompt_options();
    lf_test_rmtree(g_tmp);
    return lf_test_finish();
}
