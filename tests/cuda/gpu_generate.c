/* gpu_generate.c: `generate` end to end on the CUDA compute backend against the CPU backend (label gpu;
 * under -DLF_CUDA_EMU=ON label emu: the whole CUDA path of the model runtime on the emulator).
 *
 * The same job (prompt, negative prompt, seed, sampler, steps, size, adapters) runs with --backend cpu
 * and --backend cuda (lf_compute_cuda_device, device 0); each image's final latent and 8-bit pixels are
 * compared: relative L2 of the latents <= 3e-2 and no 8-bit value more than 8 levels apart. The device
 * runs the UNet and text encoders in f16 (--dtype's default: weights and activations rounded to 2^-11
 * relative at every op, sums f32; docs/cuda.md "Precision") and the VAE in f32, through every layer, both
 * CFG halves (the guidance scale 7 multiplies their difference) and every step. Measured in the
 * emulation with f16 activations (2026-12-07): 2.15e-2 / 7 levels for the text-encoder LoRA on the
 * random-weight SD1.5 mini model, whose output is noise and amplifies it (6.1e-3 with f32 activations
 * and f16 weights), 1.36e-2 / 4 for that model with Euler (was 8.9e-3 / 3), 1.8e-3 to 4.1e-3 / 1-2 levels
 * on the others; the bounds were 2e-2 / 4 with f32 activations. Jobs: the random-weight SD1.5 mini model without and
 * with a scheduled LoRA (Euler, DPM++ 2M), the trained demo model with its LoRA from halfway (an image
 * with structure), and the SDXL mini model (two text encoders, the label embedding) with a scheduled LoRA
 * on both encoders and the UNet; a mixed batch (three jobs: no adapter, a scheduled LoRA as unmerged
 * per-image terms, a LoHa as its own built weights) as one UNet call per step on the device against the
 * same group on the CPU, image by image (measured in the emulation with the segmented kernels, 2026-12-07:
 * 2.5e-3, 1.5e-3, 2.2e-3), the LoRA's Linear terms through lora_terms on the device (segmented_layers > 0;
 * 0 on the CPU). Adapters: the
 * UNet's layers are patched on the device (lf_gen_times.device_updates > 0 exactly for the jobs with a UNet
 * LoRA); a text-encoder-only LoRA (patched on the host) gives the CPU's image and not the one without it;
 * on a cuda session the host UNet keeps W0 after a LoRA job (the same check sees the CPU session's
 * patches) and every job equals a fresh process's, bit for bit, whatever ran before, also on a device
 * patch model kept from an earlier job with the same adapters at other strengths. Also: the backend
 * the job reports, --backend cuda on a device that does not exist is refused with a clear error, and the
 * memory estimate counts the UNet's adapter layers on the device, not on the host.
 * Exits 77 when this build has no CUDA or no device opens.
 * Usage: gpu_generate [-v]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/cuda/compute_cuda.h"
#include "host/pipeline/generate_internal.h"
#include "lf_test.h"
#include "lorafuse/lf_generate.h"
#include "lorafuse/lf_live_weights.h"
#include "lorafuse/lf_safetensors.h"

static int verbose;
static size_t last_kept; /* lf_gen_times.device_kept of the last run_in */

typedef struct shot {
    float *latent;
    uint8_t *rgb;
    size_t n_lat, n_rgb;
} shot;

static lf_status keep(void *ctx, const lf_gen_image *img) {
    shot *s = ctx;
    s->n_lat = (size_t)4 * (size_t)(img->height / 8) * (size_t)(img->width / 8);
    s->n_rgb = (size_t)3 * (size_t)img->height * (size_t)img->width;
    s->latent = malloc(s->n_lat * sizeof *s->latent);
    s->rgb = malloc(s->n_rgb);
    if (!s->latent || !s->rgb) return lf_err(LF_ERR_NOMEM, "test: out of memory");
    memcpy(s->latent, img->latent, s->n_lat * sizeof *s->latent);
    memcpy(s->rgb, img->rgb, s->n_rgb);
    return LF_OK;
}

/* one job on backend be, in session ss (NULL: a job of its own, as a fresh process runs it); the layers
 * the device rewrote in its memory in *dev_updates (may be NULL) */
static int run_in(lf_gen_session *ss, const lf_gen_opts *base, lf_gen_backend be, shot *s, char *backend, size_t cap,
                  size_t *dev_updates) {
    lf_gen_opts o = *base;
    o.backend = be;
    lf_gen *g = NULL;
    memset(s, 0, sizeof *s);
    lf_status st = ss ? lf_gen_open_in(ss, &o, &g) : lf_gen_open(&o, &g);
    if (st == LF_OK) {
        snprintf(backend, cap, "%s", lf_gen_get_info(g)->backend);
        st = lf_gen_run(g, keep, s);
        if (dev_updates) *dev_updates = lf_gen_get_times(g)->device_updates;
        last_kept = lf_gen_get_times(g)->device_kept;
    }
    LF_CHECK(st == LF_OK, "%s on %s: %s", o.prompt, be == LF_GEN_CUDA ? "cuda" : "cpu", lf_last_error());
    lf_gen_free(g);
    return st == LF_OK && s->latent;
}

static int run(const lf_gen_opts *base, lf_gen_backend be, shot *s, char *backend, size_t cap) {
    return run_in(NULL, base, be, s, backend, cap, NULL);
}

static void shot_free(shot *s) {
    free(s->latent);
    free(s->rgb);
    memset(s, 0, sizeof *s);
}

static double rel_l2(const shot *a, const shot *b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a->n_lat && i < b->n_lat; i++) {
        double e = (double)b->latent[i] - a->latent[i];
        num += e * e;
        den += (double)a->latent[i] * a->latent[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

static int same(const shot *a, const shot *b) {
    return a->latent && b->latent && a->n_lat == b->n_lat && a->n_rgb == b->n_rgb &&
           !memcmp(a->latent, b->latent, a->n_lat * sizeof *a->latent) && !memcmp(a->rgb, b->rgb, a->n_rgb);
}

/* the job on the CPU and on the device within the bounds; dev: the UNet layers the device must have
 * rewritten in its own memory (0: none, 1: some); the CPU rewrites none there */
static void compare_keep(const char *name, const lf_gen_opts *o, int dev, shot *keep_dev) {
    shot c, d;
    char bc[256] = "", bd[256] = "";
    size_t uc = 0, ud = 0;
    if (keep_dev) memset(keep_dev, 0, sizeof *keep_dev);
    if (!run_in(NULL, o, LF_GEN_CPU, &c, bc, sizeof bc, &uc) || !run_in(NULL, o, LF_GEN_CUDA, &d, bd, sizeof bd, &ud)) {
        free(c.latent), free(c.rgb), free(d.latent), free(d.rgb);
        return;
    }
    LF_CHECK(!strcmp(bc, "cpu") && !strncmp(bd, "cuda (device 0: ", 16), "%s: backends '%s' and '%s'", name, bc, bd);
    double rel = rel_l2(&c, &d);
    int worst = 0;
    size_t off = 0;
    for (size_t i = 0; i < c.n_rgb; i++) {
        int a = abs((int)c.rgb[i] - (int)d.rgb[i]);
        if (a > worst) worst = a;
        off += a > 1;
    }
    printf("%-28s latent rel L2 %.2e, 8-bit: max %d levels, %zu of %zu values > 1 apart\n", name, rel, worst, off,
           c.n_rgb);
    LF_CHECK(isfinite(rel) && rel <= 3e-2, "%s: latent rel L2 %.3e > 3e-2", name, rel);
    LF_CHECK(worst <= 8, "%s: an 8-bit value %d levels apart", name, worst);
    LF_CHECK(uc == 0 && (dev ? ud > 0 : ud == 0), "%s: %zu UNet layers rewritten on the device (cpu: %zu), expected %s",
             name, ud, uc, dev ? "some" : "none");
    if (verbose) printf("  %zu UNet layer rewrites on the device\n", ud);
    free(c.latent), free(c.rgb);
    if (keep_dev) *keep_dev = d;
    else free(d.latent), free(d.rgb);
}

static void compare(const char *name, const lf_gen_opts *o, int dev) { compare_keep(name, o, dev, NULL); }

/* UNet weights the session's UNet holds in the checkpoint's dtype whose bytes differ from the checkpoint's
 * (W0); *n: how many were compared */
static size_t unet_not_w0(lf_gen_session *ss, const char *model, size_t *n) {
    lf_st_file *f = NULL;
    size_t bad = 0;
    *n = 0;
    if (!ss->unet || lf_st_open(model, &f) != LF_OK) {
        LF_CHECK(0, "%s: no UNet loaded or the file does not open: %s", model, lf_last_error());
        return 0;
    }
    for (size_t i = 0; i < lf_st_count(f); i++) {
        const lf_st_tensor *t = lf_st_at(f, i);
        lf_view v;
        if (strncmp(t->name, "model.diffusion_model.", 22)) continue;
        if (lf_unet_weight_held(ss->unet, t->name, &v) != LF_OK) {
            lf_err_clear();
            continue;
        }
        if (v.dtype != t->dtype) continue; /* held converted */
        (*n)++;
        bad += memcmp(v.data, t->data, (size_t)(t->end - t->begin)) != 0;
    }
    lf_st_close(f);
    return bad;
}

/* A group (lf_gen_open_group: one mixed batch, one UNet call per step, per-image adapters on the per-sample
 * compute) on the device against the same group on the CPU, image by image. */
#define GROUP_MAX 4
typedef struct {
    shot img[GROUP_MAX];
    int n;
} shots;

static lf_status keep_all(void *ctx, const lf_gen_image *img) {
    shots *s = ctx;
    if (s->n >= GROUP_MAX) return lf_err(LF_ERR_ARG, "test: too many images");
    return keep(&s->img[s->n++], img);
}

static int run_group(const lf_gen_opts *jobs, size_t n, lf_gen_backend be, shots *s, size_t *calls, size_t *segmented) {
    lf_gen_opts o[GROUP_MAX];
    for (size_t i = 0; i < n; i++) o[i] = jobs[i], o[i].backend = be;
    memset(s, 0, sizeof *s);
    lf_gen *g = NULL;
    lf_status st = lf_gen_open_group(NULL, o, n, &g);
    if (st == LF_OK) st = lf_gen_run(g, keep_all, s);
    if (st == LF_OK) *calls = lf_gen_get_times(g)->unet_calls, *segmented = lf_gen_get_times(g)->segmented_layers;
    LF_CHECK(st == LF_OK && s->n == (int)n, "group on %s: %s", be == LF_GEN_CUDA ? "cuda" : "cpu", lf_last_error());
    lf_gen_free(g);
    return st == LF_OK && s->n == (int)n;
}

static void compare_group(const char *name, const lf_gen_opts *jobs, size_t n) {
    shots c, d;
    size_t cc = 0, dc = 0, cs = 0, ds = 0;
    if (run_group(jobs, n, LF_GEN_CPU, &c, &cc, &cs) && run_group(jobs, n, LF_GEN_CUDA, &d, &dc, &ds)) {
        LF_CHECK(dc == (size_t)jobs[0].steps && cc == dc, "%s: %zu UNet calls on the device, %zu on the CPU, want %d",
                 name, dc, cc, jobs[0].steps);
        /* the LoRA's Linear layers take the segmented kernels on the device, the per-job products on the CPU */
        printf("%-28s %zu layer calls through the segmented kernels (CPU: %zu)\n", name, ds, cs);
        LF_CHECK(ds > 0 && cs == 0, "%s: %zu segmented layer calls on the device (want > 0), %zu on the CPU (want 0)",
                 name, ds, cs);
        for (size_t k = 0; k < n; k++) {
            double num = 0, den = 0;
            for (size_t i = 0; i < c.img[k].n_lat; i++) {
                double e = (double)d.img[k].latent[i] - c.img[k].latent[i];
                num += e * e;
                den += (double)c.img[k].latent[i] * c.img[k].latent[i];
            }
            double rel = sqrt(num / (den > 0 ? den : 1));
            printf("%-28s image %zu (%s): latent rel L2 %.2e\n", name, k, jobs[k].prompt, rel);
            LF_CHECK(isfinite(rel) && rel <= 2e-2, "%s: image %zu latent rel L2 %.3e > 2e-2", name, k, rel);
        }
    }
    for (int k = 0; k < GROUP_MAX; k++) free(c.img[k].latent), free(c.img[k].rgb), free(d.img[k].latent), free(d.img[k].rgb);
}

static lf_gen_opts job(const char *model, const char *prompt, const char *sampler, int steps, int size,
                       const char *lora_dir) {
    lf_gen_opts o;
    lf_gen_opts_default(&o);
    o.model = model;
    o.prompt = prompt;
    o.negative = "blurry";
    o.sampler = sampler;
    o.steps = steps;
    o.width = o.height = size;
    o.seed = 1234;
    o.lora_dir = lora_dir;
    o.write_png = 0;
    o.hash_cache = "";
    o.cuda = lf_compute_cuda_device;
    return o;
}

/* Adapters patched on the device, on a resident model: the UNet's host weights stay W0 (while on the CPU
 * they hold the last step's patched bytes), and every job's images equal a fresh process's whatever ran
 * before it in the session: A (a LoRA schedule), A' (the same LoRA at other strengths, its UNet schedule
 * at 0 on step 1: the kept device model's layers go back to W0 there), B (another adapter), A, no adapter,
 * A, C (the same LoRA at a constant strength), C. The device patch model is kept across jobs with the same
 * UNet adapters (A -> A', A -> C, C -> C: device_kept, and the session holds one after a job with UNet
 * adapters), made again after B and after the job without adapters (which drops it), and C's repeat
 * rewrites nothing. */
static void session_jobs(void) {
    const char *model = "models/sd15-mini.safetensors";
    enum { A, A2, B, NONE, C, NJOB };
    lf_gen_opts o[NJOB] = {
        job(model, "a red fox <lora:mini_lora:te=0.5:unet=0.8@0,0.3@1>", "Euler", 2, 32, "models/lora"),
        job(model, "a red fox <lora:mini_lora:te=0.2:unet=0@0,1.1@1>", "Euler", 2, 32, "models/lora"),
        job(model, "a red fox <lora:mini_loha:0.7>", "Euler", 2, 32, "models/lora"),
        job(model, "a red fox", "Euler", 2, 32, "models/lora"),
        job(model, "a red fox <lora:mini_lora:0.6>", "Euler", 2, 32, "models/lora")};
    static const char *const names[NJOB] = {"A", "A'", "B", "no adapter", "C"};
    /* the session's jobs, and whether each must find the kept device model */
    static const int seq[] = {A, A2, B, A, NONE, A, C, C};
    static const int kept[] = {0, 1, 0, 0, 0, 0, 1, 1};
    shot fresh[NJOB], got;
    char be[256];
    size_t n = 0, bad, du = 0;
    memset(fresh, 0, sizeof fresh);
    for (int k = 0; k < NJOB; k++)
        if (!run(&o[k], LF_GEN_CUDA, &fresh[k], be, sizeof be)) goto out;
    lf_gen_session *ss = NULL;
    lf_status st = lf_gen_session_open(model, LF_GEN_CUDA, 0, lf_compute_cuda_device, &ss);
    LF_CHECK(st == LF_OK, "session on cuda: %s", lf_last_error());
    for (size_t i = 0; st == LF_OK && i < sizeof seq / sizeof *seq; i++) {
        int k = seq[i];
        if (!run_in(ss, &o[k], LF_GEN_CUDA, &got, be, sizeof be, &du)) break;
        LF_CHECK(same(&got, &fresh[k]), "cuda session, job %zu (%s): differs from a fresh process's (rel L2 %.3e)", i,
                 names[k], rel_l2(&fresh[k], &got));
        LF_CHECK(last_kept == (size_t)kept[i], "cuda session, job %zu (%s): device_kept %zu, expected %d", i, names[k],
                 last_kept, kept[i]);
        LF_CHECK((ss->dkeep != NULL) == (k != NONE), "cuda session, after job %zu (%s): %s kept device model", i,
                 names[k], ss->dkeep ? "a" : "no");
        if (verbose) printf("  job %zu (%s): %zu device rewrites, kept %zu\n", i, names[k], du, last_kept);
        if (i == 0) {
            LF_CHECK(du > 0, "session job with a LoRA: no UNet layer rewritten on the device");
            bad = unet_not_w0(ss, model, &n);
            printf("cuda session after a LoRA job: %zu of %zu stored UNet weights differ from W0 on the host\n", bad, n);
            LF_CHECK(n > 100 && bad == 0, "cuda session: %zu of %zu host UNet weights patched", bad, n);
        }
        if (i == 1) LF_CHECK(du > 0, "A' on A's kept model: no layer rewritten");
        if (i == 7) LF_CHECK(du == 0, "C (a constant strength) again: %zu device layers rewritten", du);
        shot_free(&got);
    }
    lf_gen_session_free(ss);
    /* the check sees host patching: on the CPU the session's UNet keeps the job's patched bytes */
    ss = NULL;
    if (lf_gen_session_open(model, LF_GEN_CPU, 0, NULL, &ss) == LF_OK && run_in(ss, &o[A], LF_GEN_CPU, &got, be, sizeof be, NULL)) {
        bad = unet_not_w0(ss, model, &n);
        printf("cpu session after a LoRA job: %zu of %zu stored UNet weights differ from W0 on the host\n", bad, n);
        LF_CHECK(bad > 0, "cpu session: the W0 check saw no patched UNet weight");
        shot_free(&got);
    }
    lf_gen_session_free(ss);
out:
    for (int k = 0; k < NJOB; k++) shot_free(&fresh[k]);
}

/* Text-encoder layers are patched on the host on a device compute: a LoRA on the text encoder only gives the
 * CPU's image within the bounds, no UNet layer is rewritten on the device, and the image is not the one
 * without the LoRA (an encoder left unpatched would pass the first check). */
static void te_only(void) {
    lf_gen_opts o = job("models/sd15-mini.safetensors", "a red fox <lora:mini_lora:te=1:unet=0>", "Euler", 2, 32,
                        "models/lora");
    lf_gen_opts p = job("models/sd15-mini.safetensors", "a red fox", "Euler", 2, 32, "models/lora");
    /* f32 on the device: this case checks the text encoders' host-patched LoRA layers reaching the device
     * (forget + re-upload), and this 32² two-step job of random weights amplifies rounding: measured in the
     * emulation 2026-12-07, f32 4.3e-3 from the CPU, f16 1.4e-1 once GroupNorm+SiLU and conv+residual
     * round once instead of twice (2.2e-2 before), while the LoRA's own effect is 4.4e-1. The f16 end
     * to end bounds are the other cases'. */
    o.dtype = p.dtype = LF_F32;
    shot d, plain;
    char be[256];
    compare_keep("sd15-mini text-encoder lora", &o, 0, &d);
    if (!d.latent || !run(&p, LF_GEN_CUDA, &plain, be, sizeof be)) {
        shot_free(&d);
        return;
    }
    double r = rel_l2(&plain, &d);
    printf("%-28s latent rel L2 %.2e from the image without it\n", "text-encoder lora effect", r);
    LF_CHECK(r > 0.1, "the text-encoder LoRA changed the cuda latent by only %.3e", r);
    shot_free(&d), shot_free(&plain);
}

static void part_one(void);
static void part_two(void);
static void part_three(void);
static void part_four(void);

/* --part K (1..4): a quarter of the cases (the emulation runs the parts as four tests, in parallel and
 * each within its own time limit); none: all of them */
int main(int argc, char **argv) {
    int part = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-v")) verbose = 1;
        else if (!strcmp(argv[i], "--part") && i + 1 < argc) part = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [-v] [--part 1|2|3|4]\n", argv[0]);
            return 2;
        }
    }
    lf_compute *c = NULL;
    char desc[160];
    if (lf_compute_cuda_device(0, LF_F32, &c, desc, sizeof desc) != LF_OK) {
        printf("gpu_generate: skipped: %s\n", lf_last_error());
        return 77;
    }
    c->destroy(c);
    printf("device: %s\n", desc);
    if (!part || part == 1) part_one();
    if (!part || part == 2) part_two();
    if (!part || part == 3) part_three();
    if (!part || part == 4) part_four();
    return lf_test_finish();
}

static void part_one(void) {
    lf_gen_opts o = job("models/sd15-mini.safetensors", "a red fox", "Euler", 3, 64, "models/lora");
    compare("sd15-mini euler", &o, 0);
    o = job("models/sd15-mini.safetensors", "a red fox <lora:mini_lora:te=0.5:unet=0.8@0,0.3@2>", "DPM++ 2M", 3, 64,
            "models/lora");
    compare("sd15-mini lora schedule", &o, 1);
    o = job("models/demo/shapes-sd1.safetensors", "a red square on a blue background, outlined "
            "<lora:outline_lora:1@50%>", "Euler", 6, 64, "models/demo/lora");
    compare("demo lora from halfway", &o, 1);
}

static void part_two(void) {
    /* SDXL with a LoRA on both text encoders (TE2's fused in_proj: host) and the UNet (device) */
    lf_gen_opts o = job("tests/data/pipeline/sdxl-mini.safetensors", "a red fox <lora:sdxl_mini_lora:0.8@0,0.4@1>",
                        "Euler", 2, 64, "tests/data/pipeline/lora");
    compare("sdxl-mini lora schedule", &o, 1);
    te_only();
}

/* generate's memory estimate (lf_gen_mem) of a LoRA job on the CPU, on --backend cuda and on auto (which
 * opens the device): on the device the UNet's adapter layers leave the host figure (patched: only the
 * text encoders' layers stay) and count in device (W0 + working copy + the factors as f32) */
static void memory_estimate(void) {
    lf_gen_opts o = job("models/sd15-mini.safetensors", "a red fox <lora:mini_lora:te=0.5:unet=0.8@0,0.3@1>", "Euler", 2,
                        32, "models/lora");
    static const lf_gen_backend bes[3] = {LF_GEN_CPU, LF_GEN_CUDA, LF_GEN_AUTO};
    lf_gen_mem m[3];
    uint64_t unet_bytes = 0;
    for (int k = 0; k < 3; k++) {
        o.backend = bes[k];
        lf_gen *g = NULL;
        lf_status st = lf_gen_open(&o, &g);
        LF_CHECK(st == LF_OK, "memory estimate, backend %d: %s", (int)bes[k], lf_last_error());
        if (st != LF_OK) return;
        m[k] = g->mem;
        if (k == 0)
            for (size_t j = 0; j < g->sp->plan->n_jobs; j++)
                if (g->sp->job_comp[j] == LF_COMP_UNET)
                    unet_bytes += g->sp->plan->jobs[j].target->end - g->sp->plan->jobs[j].target->begin;
        LF_CHECK(g->info.mem_estimate == g->mem.total, "backend %d: info %llu, estimate %llu", (int)bes[k],
                 (unsigned long long)g->info.mem_estimate, (unsigned long long)g->mem.total);
        lf_gen_free(g);
    }
    printf("memory estimate: adapters' layers on the host cpu %llu, cuda %llu (device %llu), auto %llu (device %llu); "
           "UNet layers %llu\n", (unsigned long long)m[0].patched, (unsigned long long)m[1].patched,
           (unsigned long long)m[1].device, (unsigned long long)m[2].patched, (unsigned long long)m[2].device,
           (unsigned long long)unet_bytes);
    LF_CHECK(unet_bytes > 0 && m[0].device == 0, "cpu: device %llu", (unsigned long long)m[0].device);
    for (int k = 1; k < 3; k++) {
        LF_CHECK(m[k].patched + unet_bytes == m[0].patched, "backend %d: host %llu + UNet %llu != cpu %llu", (int)bes[k],
                 (unsigned long long)m[k].patched, (unsigned long long)unet_bytes, (unsigned long long)m[0].patched);
        LF_CHECK(m[k].device > 2 * unet_bytes, "backend %d: device %llu, not over W0 + working copies (%llu)",
                 (int)bes[k], (unsigned long long)m[k].device, (unsigned long long)(2 * unet_bytes));
        LF_CHECK(m[k].total + unet_bytes == m[0].total, "backend %d: total %llu, cpu %llu", (int)bes[k],
                 (unsigned long long)m[k].total, (unsigned long long)m[0].total);
    }
}

static void part_three(void) {
    memory_estimate();
    session_jobs();
}

static void part_four(void) {
    lf_gen_opts grp[3] = {job("models/sd15-mini.safetensors", "a red fox", "Euler", 3, 64, "models/lora"),
                          job("models/sd15-mini.safetensors", "a red fox <lora:mini_lora:0.8@0,0.3@2>", "Euler", 3,
                              64, "models/lora"),
                          job("models/sd15-mini.safetensors", "a red fox <lora:mini_loha:0.7>", "Euler", 3, 64,
                              "models/lora")};
    grp[1].seed = 1235, grp[2].seed = 1236;
    compare_group("sd15-mini mixed batch", grp, 3);

    lf_gen_opts o = job("models/sd15-mini.safetensors", "a red fox", "Euler", 1, 64, "models/lora");
    o.backend = LF_GEN_CUDA;
    o.device = 999;
    lf_gen *g = NULL;
    lf_status st = lf_gen_open(&o, &g);
    LF_CHECK(st != LF_OK && !g && strstr(lf_last_error(), "--backend cuda: "), "device 999: status %d (%s)", (int)st,
             lf_last_error());
    if (verbose) printf("device 999 -> %s\n", lf_last_error());
    lf_gen_free(g);
}
