/* test_merge.c: `merge` end to end on small checkpoints with the real SD1.5 / SDXL block structure
 * (tests/data/tiny, written by scripts/make_golden.py with diffusers/PEFT/LyCORIS as the oracle), in
 * every naming scheme; every refusal of docs/semantics.md P9 (family, shapes, NaN, unknown suffixes, unmatched
 * modules), none of which may leave an output behind or touch the inputs; and the output rules (never an
 * input by device and inode, never a FIFO or a directory, an existing file only with overwrite / --force;
 * FIFO inputs refused without blocking). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lf_test.h"
#include "lf_test_data.h"
#include "host/base/util.h"
#include "kernels/common/lf_half.h"
#include "lorafuse/lf_merge.h"

#define TINY_DIR "tests/data/tiny"
#define SD15 "tests/data/tiny/tiny-sd15.safetensors"
#define SDXL TINY_DIR "/tiny-sdxl.safetensors"

static char tmp[256];

static const char *tpath(const char *name) { return lf_test_path(tmp, name); }

static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* FNV-1a of a whole file, to prove inputs are never modified. */
static uint64_t file_hash(const char *p) {
    char *b;
    size_t n;
    if (lf_read_file(p, NULL, (size_t)1 << 30, &b, &n) != LF_OK) return 0;
    uint64_t h = lf_test_fnv1a(b, n);
    free(b);
    return h;
}

static void compare_tensor(const char *ctx, const lf_st_tensor *got, const lf_st_tensor *exp) {
    LF_CHECK(got->dtype == exp->dtype && got->end - got->begin == exp->end - exp->begin, "%s: %s dtype/size differ",
             ctx, exp->name);
    if (got->dtype != exp->dtype || got->end - got->begin != exp->end - exp->begin) return;
    size_t n = (size_t)(exp->end - exp->begin);
    int32_t worst = 0;
    if (exp->dtype == LF_F16 || exp->dtype == LF_BF16) {
        for (size_t i = 0; i < n / 2; i++) {
            uint16_t a, b;
            memcpy(&a, got->data + 2 * i, 2);
            memcpy(&b, exp->data + 2 * i, 2);
            int32_t d = lf_test_ulp16(a, b);
            if (d > worst) worst = d;
        }
        LF_CHECK(worst <= 1, "%s: %s differs by %d ulp", ctx, exp->name, worst);
    } else {
        double maxd = 0;
        for (size_t i = 0; i < n / 4; i++) {
            float a, b;
            memcpy(&a, got->data + 4 * i, 4);
            memcpy(&b, exp->data + 4 * i, 4);
            double d = (a - b) / (1e-6 + (b < 0 ? -b : b));
            if (d < 0) d = -d;
            if (!(d <= maxd)) maxd = d;
        }
        LF_CHECK(maxd <= 1e-4, "%s: %s rel err %g", ctx, exp->name, maxd);
    }
}

/* Every tensor of out equals expect where expect has it, and the model's bytes everywhere else. */
static void check_output(const char *ctx, const char *model, const char *out, const lf_st_file *expect) {
    lf_st_file *m = NULL, *o = NULL;
    LF_CHECK(lf_st_open(model, &m) == LF_OK, "%s", lf_last_error());
    LF_CHECK(lf_st_open(out, &o) == LF_OK, "%s", lf_last_error());
    if (!m || !o) goto done;
    LF_CHECK(lf_st_count(m) == lf_st_count(o), "%s: tensor count %zu vs %zu", ctx, lf_st_count(o), lf_st_count(m));
    size_t patched = 0;
    for (size_t i = 0; i < lf_st_count(m); i++) {
        const lf_st_tensor *mt = lf_st_at(m, i), *ot = lf_st_find(o, mt->name);
        LF_CHECK(ot != NULL, "%s: output lacks %s", ctx, mt->name);
        if (!ot) continue;
        const lf_st_tensor *et = expect ? lf_st_find(expect, mt->name) : NULL;
        if (et) {
            compare_tensor(ctx, ot, et);
            patched++;
        } else {
            LF_CHECK(ot->end - ot->begin == mt->end - mt->begin &&
                     memcmp(ot->data, mt->data, (size_t)(mt->end - mt->begin)) == 0,
                     "%s: %s should be byte-identical to the model", ctx, mt->name);
        }
    }
    if (expect) {
        size_t n_exp = lf_st_count(expect);
        LF_CHECK(patched == n_exp, "%s: %zu of %zu expected tensors exist in the model", ctx, patched, n_exp);
    }
    const char *rec = lf_st_meta(o, "lorafuse.merged");
    LF_CHECK(rec && strstr(rec, "\"strength\""), "%s: lorafuse.merged metadata missing", ctx);
done:
    lf_st_close(m);
    lf_st_close(o);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void test_golden_merges(void) {
    DIR *d = opendir(TINY_DIR);
    LF_CHECK(d != NULL, "missing %s (run scripts/make_golden.py)", TINY_DIR);
    if (!d) return;
    char *names[256];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256)
        if (lf_has_suffix(e->d_name, ".expect.safetensors")) names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    LF_CHECK(n >= 4, "only %zu merge cases in %s", n, TINY_DIR);
    for (size_t i = 0; i < n; i++) {
        char exp_path[512], lora[512];
        snprintf(exp_path, sizeof exp_path, "%s/%s", TINY_DIR, names[i]);
        snprintf(lora, sizeof lora, "%s/%.*s.lora.safetensors", TINY_DIR,
                 (int)(strlen(names[i]) - strlen(".expect.safetensors")), names[i]);
        lf_st_file *ex = NULL;
        LF_CHECK(lf_st_open(exp_path, &ex) == LF_OK, "%s", lf_last_error());
        if (!ex) continue;
        const char *model = lf_st_meta(ex, "model"), *sstr = lf_st_meta(ex, "strength");
        LF_CHECK(model && sstr, "%s: metadata model/strength missing", exp_path);
        if (model && sstr) {
            lf_merge_input in = {lora, strtof(sstr, NULL), 0};
            uint64_t h0 = file_hash(model), h1 = file_hash(lora);
            for (int reference = 0; reference <= 1; reference++) {
                lf_merge_opts o;
                memset(&o, 0, sizeof o);
                o.reference = reference;
                o.overwrite = 1; /* one output file for every case */
                lf_status st = lf_merge(model, &in, 1, tpath("out.safetensors"), &o, NULL);
                LF_CHECK(st == LF_OK, "%s: %s", names[i], lf_last_error());
                if (st == LF_OK) check_output(names[i], model, tpath("out.safetensors"), ex);
                printf("%-48s strength %s %s: %s\n", names[i], sstr, reference ? "reference" : "fast",
                       st == LF_OK ? "merged" : "FAILED");
            }
            LF_CHECK(file_hash(model) == h0 && file_hash(lora) == h1, "%s: an input changed", names[i]);
            /* strength 0 leaves every byte as it was */
            in.strength = 0.0f;
            lf_merge_opts force;
            memset(&force, 0, sizeof force);
            force.overwrite = 1;
            LF_CHECK(lf_merge(model, &in, 1, tpath("zero.safetensors"), &force, NULL) == LF_OK, "%s", lf_last_error());
            check_output("strength 0", model, tpath("zero.safetensors"), NULL);
        }
        lf_st_close(ex);
        free(names[i]);
    }
}

/* P5 at the checkpoint level: two adapters in one merge give W0 + (E1 - W0) + (E2 - W0), where Ei are
 * the reference merges of each alone (each rounded to f16, so allow 3 units of the largest magnitude). */
static void test_two_adapters(void) {
    const char *e1p = TINY_DIR "/sd15_kohya.expect.safetensors", *e2p = TINY_DIR "/sd15_peft.expect.safetensors";
    lf_st_file *e1 = NULL, *e2 = NULL, *m = NULL, *o = NULL;
    LF_CHECK(lf_st_open(e1p, &e1) == LF_OK && lf_st_open(e2p, &e2) == LF_OK, "%s", lf_last_error());
    if (!e1 || !e2) goto done;
    lf_merge_input in[2] = {{TINY_DIR "/sd15_kohya.lora.safetensors", strtof(lf_st_meta(e1, "strength"), NULL), 0},
                            {TINY_DIR "/sd15_peft.lora.safetensors", strtof(lf_st_meta(e2, "strength"), NULL), 0}};
    LF_CHECK(lf_merge(SD15, in, 2, tpath("two.safetensors"), NULL, NULL) == LF_OK, "%s", lf_last_error());
    LF_CHECK(lf_st_open(SD15, &m) == LF_OK && lf_st_open(tpath("two.safetensors"), &o) == LF_OK, "%s", lf_last_error());
    if (!m || !o) goto done;
    size_t both = 0, checked = 0;
    int32_t worst = 0;
    for (size_t i = 0; i < lf_st_count(m); i++) {
        const lf_st_tensor *t = lf_st_at(m, i), *a = lf_st_find(e1, t->name), *b = lf_st_find(e2, t->name);
        const lf_st_tensor *got = lf_st_find(o, t->name);
        if ((!a && !b) || !got || t->dtype != LF_F16) continue;
        both += a && b;
        checked++;
        size_t n = (size_t)(t->end - t->begin) / 2;
        for (size_t k = 0; k < n; k++) {
            uint16_t w0, ea, eb, g;
            memcpy(&w0, t->data + 2 * k, 2);
            memcpy(&g, got->data + 2 * k, 2);
            ea = eb = w0;
            if (a) memcpy(&ea, a->data + 2 * k, 2);
            if (b) memcpy(&eb, b->data + 2 * k, 2);
            float x0 = lf_f16_to_f32(w0);
            float want = x0 + (lf_f16_to_f32(ea) - x0) + (lf_f16_to_f32(eb) - x0);
            /* the single merges were each rounded at the scale of their own values: measure the error in
             * units of the largest magnitude involved, not of the (possibly much smaller) result */
            float mag = fabsf(x0) > fabsf(lf_f16_to_f32(ea)) ? fabsf(x0) : fabsf(lf_f16_to_f32(ea));
            if (fabsf(lf_f16_to_f32(eb)) > mag) mag = fabsf(lf_f16_to_f32(eb));
            float unit = mag >= 6.1035156e-05f ? ldexpf(1.0f, ilogbf(mag) - 10) : 5.9604645e-08f;
            int32_t d = (int32_t)ceilf(fabsf(lf_f16_to_f32(g) - want) / unit);
            if (d > worst) worst = d;
        }
    }
    LF_CHECK(both > 0, "the two adapters share no layer");
    /* 0.5 + 0.5 units from the two reference roundings, up to 1 from ours (the sum may be twice as
     * large), and the ceil: 3 */
    LF_CHECK(worst <= 3, "two adapters: worst %d units from the sum of single merges", worst);
    printf("two adapters: %zu tensors (%zu patched by both), worst %d ulp\n", checked, both, worst);
done:
    lf_st_close(e1);
    lf_st_close(e2);
    lf_st_close(m);
    lf_st_close(o);
}

/* Write a one-module LoRA (kohya names) whose factors are given; dims (O, r) and (r, I). */
static const char *write_lora(const char *file, const char *module, int64_t O, int64_t I, int64_t r, float poison,
                              const char *meta_base, const char *extra_tensor) {
    lf_st_writer *w = NULL;
    float *up = calloc((size_t)(O * r), 4), *down = calloc((size_t)(r * I), 4), alpha = (float)r;
    for (int64_t i = 0; i < O * r; i++) up[i] = 0.01f * (float)(i % 5);
    for (int64_t i = 0; i < r * I; i++) down[i] = 0.02f * (float)(i % 3);
    down[0] = poison == 0.0f ? down[0] : poison;
    char k1[256], k2[256], k3[256];
    snprintf(k1, sizeof k1, "%s.lora_up.weight", module);
    snprintf(k2, sizeof k2, "%s.lora_down.weight", module);
    snprintf(k3, sizeof k3, "%s.alpha", module);
    int64_t s_up[2] = {O, r}, s_down[2] = {r, I};
    lf_st_writer_new(&w);
    if (meta_base) lf_st_writer_meta(w, "ss_base_model_version", meta_base);
    lf_st_writer_add(w, k1, LF_F32, 2, s_up, up, (size_t)(O * r) * 4);
    lf_st_writer_add(w, k2, LF_F32, 2, s_down, down, (size_t)(r * I) * 4);
    lf_st_writer_add(w, k3, LF_F32, 0, NULL, &alpha, 4);
    if (extra_tensor) lf_st_writer_add(w, extra_tensor, LF_F32, 0, NULL, &alpha, 4);
    const char *p = tpath(file);
    LF_CHECK(lf_st_writer_commit(w, p) == LF_OK, "%s", lf_last_error());
    lf_st_writer_free(w);
    free(up);
    free(down);
    return p;
}

static void expect_refusal(const char *what, const char *lora, const char *model, lf_status want, const char *needle1,
                           const char *needle2) {
    lf_merge_input in = {lora, 1.0f, 0};
    const char *out = tpath("refused.safetensors");
    uint64_t h = file_hash(model);
    lf_status st = lf_merge(model, &in, 1, out, NULL, NULL);
    const char *msg = lf_last_error();
    LF_CHECK(st == want, "%s: status %s, expected %s (%s)", what, lf_status_str(st), lf_status_str(want), msg);
    LF_CHECK(strstr(msg, needle1) != NULL, "%s: message lacks '%s': %s", what, needle1, msg);
    LF_CHECK(!needle2 || strstr(msg, needle2) != NULL, "%s: message lacks '%s': %s", what, needle2, msg);
    LF_CHECK(!exists(out), "%s: an output was written", what);
    LF_CHECK(file_hash(model) == h, "%s: the model changed", what);
    printf("refused (%s): %s\n", what, msg);
}

static void test_refusals(void) {
    const char *mod = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q";
    lf_model *m = NULL;
    LF_CHECK(lf_model_open(SD15, &m) == LF_OK, "%s", lf_last_error());
    if (!m) return;
    lf_target tg;
    LF_CHECK(lf_keymap_resolve(m->km, mod, &tg) == LF_OK, "tiny SD1.5 lacks %s", mod);
    const lf_st_tensor *t = lf_st_find(m->st, tg.weight_key);
    int64_t O = t->shape[0], I = t->shape[1];
    LF_CHECK(m->family == LF_FAMILY_SD1, "tiny SD1.5 detected as %s", lf_family_name(m->family));
    lf_model_free(m);

    char good[512];
    snprintf(good, sizeof good, "%s", write_lora("good.safetensors", mod, O, I, 4, 0.0f, NULL, NULL));
    lf_merge_input in = {good, 0.7f, 0};
    LF_CHECK(lf_merge(SD15, &in, 1, tpath("good_out.safetensors"), NULL, NULL) == LF_OK, "good: %s", lf_last_error());

    expect_refusal("family", write_lora("xl.safetensors", mod, O, I, 4, 0.0f, "sdxl_base_v1-0", NULL), SD15,
                   LF_ERR_MODEL, "SDXL", "SD1");
    expect_refusal("shape", write_lora("shape.safetensors", mod, O, I + 3, 4, 0.0f, NULL, NULL), SD15, LF_ERR_SHAPE,
                   mod, "expected");
    expect_refusal("nan", write_lora("nan.safetensors", mod, O, I, 4, NAN, NULL, NULL), SD15, LF_ERR_NONFINITE,
                   mod, "nan.safetensors");
    /* finite in f32, but Inf once rounded to the checkpoint's F16 (P6) */
    {
        lf_merge_input huge = {good, 1e9f, 0};
        const char *out = tpath("huge.safetensors");
        lf_status st = lf_merge(SD15, &huge, 1, out, NULL, NULL);
        LF_CHECK(st == LF_ERR_NONFINITE && strstr(lf_last_error(), "not finite in F16") &&
                 strstr(lf_last_error(), "attn1.to_q.weight") && !exists(out), "f16 overflow: %s", lf_last_error());
    }
    expect_refusal("unmatched", write_lora("unmatched.safetensors", "lora_unet_no_such_block_to_q", O, I, 4, 0.0f, NULL, NULL),
                   SD15, LF_ERR_MODEL, "lora_unet_no_such_block_to_q", "match no layer");
    expect_refusal("unknown suffix", write_lora("suffix.safetensors", mod, O, I, 4, 0.0f, NULL, "x.mystery_tensor"), SD15,
                   LF_ERR_FORMAT, "unknown suffix", "x.mystery_tensor");
    expect_refusal("missing adapter", tpath("does-not-exist.safetensors"), SD15, LF_ERR_IO, "does-not-exist", NULL);

    /* unmatched modules are merged anyway when allowed */
    lf_merge_opts o;
    memset(&o, 0, sizeof o);
    o.plan.allow_unmatched = 1;
    lf_merge_input un = {tpath("unmatched.safetensors"), 1.0f, 0};
    LF_CHECK(lf_merge(SD15, &un, 1, tpath("allowed.safetensors"), &o, NULL) == LF_OK, "allow_unmatched: %s",
             lf_last_error());

    /* an output directory that does not exist: error, nothing written */
    LF_CHECK(lf_merge(SD15, &in, 1, tpath("no/such/dir/out.safetensors"), NULL, NULL) == LF_ERR_IO,
             "bad output dir: %s", lf_last_error());
}

/* Expect lf_merge(model, lora -> out) to be refused with `want` and `needle` before any work: out keeps
 * its bytes (or stays absent) and the inputs theirs; no temporary file. */
static void expect_out_refused(const char *what, const char *model, const char *lora, const char *out, int overwrite,
                               lf_status want, const char *needle) {
    lf_merge_input in = {lora, 1.0f, 0};
    lf_merge_opts o;
    memset(&o, 0, sizeof o);
    o.overwrite = overwrite;
    uint64_t hm = file_hash(model), hl = file_hash(lora), ho = exists(out) ? file_hash(out) : 0;
    lf_status st = lf_merge(model, &in, 1, out, &o, NULL);
    LF_CHECK(st == want && strstr(lf_last_error(), needle), "%s: status %s (%s)", what, lf_status_str(st),
             lf_last_error());
    LF_CHECK(file_hash(model) == hm && file_hash(lora) == hl, "%s: an input changed", what);
    LF_CHECK(!*out || (exists(out) ? file_hash(out) : 0) == ho, "%s: the destination changed", what);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls %s | grep -q '\\.tmp\\.'", tmp);
    LF_CHECK(system(cmd) != 0, "%s: a temporary file was left", what);
}

/* The output rules of lf_merge.h: never an input (by device and inode), never a non-regular file, never
 * an existing file without overwrite. */
static void test_output_rules(void) {
    const char *lora = TINY_DIR "/sd15_kohya.lora.safetensors";
    char model[512], cwd_rel[600];
    /* a private copy of the model, so that links to it stay inside the temporary directory */
    snprintf(model, sizeof model, "%s", tpath("model.safetensors"));
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp %s %s", SD15, model);
    LF_CHECK(system(cmd) == 0, "%s", cmd);

    expect_out_refused("output = model", model, lora, model, 1, LF_ERR_ARG, "is the same file as the input");
    expect_out_refused("output = adapter", model, lora, lora, 1, LF_ERR_ARG, "is the same file as the input");
    LF_CHECK(link(model, tpath("hard.safetensors")) == 0, "link");
    expect_out_refused("hard link to the model", model, lora, tpath("hard.safetensors"), 1, LF_ERR_ARG,
                       "is the same file as the input");
    LF_CHECK(symlink(model, tpath("sym.safetensors")) == 0, "symlink");
    expect_out_refused("symbolic link to the model", model, lora, tpath("sym.safetensors"), 1, LF_ERR_ARG,
                       "is the same file as the input");
    snprintf(cwd_rel, sizeof cwd_rel, "%s/./sub/../model.safetensors", tmp);
    mkdir(tpath("sub"), 0755);
    expect_out_refused("another spelling of the model", model, lora, cwd_rel, 1, LF_ERR_ARG,
                       "is the same file as the input");
    /* the model given through a link, the output its real name */
    expect_out_refused("model through a link", tpath("sym.safetensors"), lora, model, 1, LF_ERR_ARG,
                       "is the same file as the input");

    /* an existing output: refused without overwrite, replaced with it */
    const char *ex = tpath("existing.safetensors");
    FILE *f = fopen(ex, "wb");
    if (f) {
        fputs("precious", f);
        fclose(f);
    }
    expect_out_refused("existing output", model, lora, ex, 0, LF_ERR_ARG, "already exists");
    lf_merge_input in = {lora, 1.0f, 0};
    lf_merge_opts o;
    memset(&o, 0, sizeof o);
    o.overwrite = 1;
    LF_CHECK(lf_merge(model, &in, 1, ex, &o, NULL) == LF_OK, "overwrite: %s", lf_last_error());
    lf_st_file *m = NULL;
    LF_CHECK(lf_st_open(ex, &m) == LF_OK, "replaced output: %s", lf_last_error());
    lf_st_close(m);

    expect_out_refused("empty output path", model, lora, "", 1, LF_ERR_ARG, "empty");
    expect_out_refused("directory as output", model, lora, tpath("sub"), 1, LF_ERR_ARG, "is a directory");
    LF_CHECK(mkfifo(tpath("fifo"), 0600) == 0, "mkfifo");
    alarm(30);
    expect_out_refused("FIFO as output", model, lora, tpath("fifo"), 1, LF_ERR_ARG, "is a FIFO");
    /* FIFOs as inputs: refused at once, not waited on */
    expect_out_refused("FIFO as model", tpath("fifo"), lora, tpath("never.safetensors"), 0, LF_ERR_IO,
                       "not a regular file (it is a FIFO)");
    expect_out_refused("FIFO as adapter", model, tpath("fifo"), tpath("never.safetensors"), 0, LF_ERR_IO,
                       "not a regular file (it is a FIFO)");
    alarm(0);
    LF_CHECK(!exists(tpath("never.safetensors")), "an output was written for a FIFO input");
}

static void test_cli(void) {
    const char *bin = getenv("LF_BIN");
    if (!bin) return;
    char cmd[2048];
    int rc;
    snprintf(cmd, sizeof cmd, "%s inspect %s --model %s --json > %s", bin, tpath("good.safetensors"), SD15,
             tpath("inspect.json"));
    LF_CHECK(system(cmd) == 0, "%s", cmd);
    char *buf = NULL;
    if (lf_read_file(tpath("inspect.json"), NULL, (size_t)16 << 20, &buf, NULL) != LF_OK) buf = calloc(1, 1);
    LF_CHECK(buf && strstr(buf, "\"algorithms\"") && strstr(buf, "\"lora\"") && strstr(buf, "\"matched\":\t1"),
             "inspect --json output: %s", buf ? buf : "");
    free(buf);
    snprintf(cmd, sizeof cmd, "%s merge --model %s --lora %s:0.5:dyn=2 --output %s 2>/dev/null", bin, SD15,
             tpath("good.safetensors"), tpath("cli.safetensors"));
    LF_CHECK(system(cmd) == 0 && exists(tpath("cli.safetensors")), "%s", cmd);
    rc = system(cmd); /* the same again: the output exists now */
    LF_CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "existing output without --force: exit %d", WEXITSTATUS(rc));
    snprintf(cmd, sizeof cmd, "%s merge --model %s --lora %s:0.5:dyn=2 --output %s --force 2>/dev/null", bin, SD15,
             tpath("good.safetensors"), tpath("cli.safetensors"));
    rc = system(cmd);
    LF_CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "existing output with --force: exit %d", WEXITSTATUS(rc));
    snprintf(cmd, sizeof cmd, "%s merge --model %s 2>/dev/null", bin, SD15);
    rc = system(cmd);
    LF_CHECK(WEXITSTATUS(rc) == 2, "usage error exit %d", WEXITSTATUS(rc));
    snprintf(cmd, sizeof cmd, "%s merge --model %s --lora %s --output %s 2>/dev/null", bin, SD15,
             tpath("xl.safetensors"), tpath("cli2.safetensors"));
    rc = system(cmd);
    LF_CHECK(WEXITSTATUS(rc) == 1 && !exists(tpath("cli2.safetensors")), "refused merge exit %d", WEXITSTATUS(rc));
}

int main(void) {
    if (lf_test_tmpdir(tmp, sizeof tmp, "test_merge")) return 1;
    test_golden_merges();
    test_two_adapters();
    test_refusals();
    test_output_rules();
    test_cli();
    if (lf_test_rmtree(tmp) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return lf_test_finish();
}
