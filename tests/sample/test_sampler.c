/* test_sampler.c: noise schedules and sampling loops against diffusers 0.30.3.
 *
 * Goldens (scripts/golden/model_sampler.py):
 *   tests/data/sampler/tables.safetensors: alphas_cumprod; <kind>[_karras].<spacing>.<N>.timesteps /
 *     .sigmas / .init from scheduler.set_timesteps(N) for every sampler x spacing x N (SD1.x config:
 *     scaled_linear 0.00085..0.012, steps_offset 1; DDIM clip_sample / set_alpha_to_one False).
 *   tests/data/sampler/loops.safetensors: final latents (2, 4, 8, 8) of the diffusers loop with the
 *     fake denoiser out = f32(0.1 x + 0.2 cos(0.01 t + 0.001 i)) and torch.Generator().manual_seed(seed)
 *     for the initial latent and the scheduler's noise.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_test.h"
#include "lorafuse/lf_rng.h"
#include "lorafuse/lf_safetensors.h"
#include "lorafuse/lf_sampler.h"

#define TABLES "tests/data/sampler/tables.safetensors"
#define LOOPS "tests/data/sampler/loops.safetensors"

static const struct {
    const char *key;
    lf_sampler_kind kind;
} kinds[] = {{"euler", LF_SAMPLER_EULER},   {"euler_a", LF_SAMPLER_EULER_A},
             {"ddim", LF_SAMPLER_DDIM},     {"dpmpp_2m", LF_SAMPLER_DPMPP_2M},
             {"heun", LF_SAMPLER_HEUN},     {"dpmpp_2m_sde", LF_SAMPLER_DPMPP_2M_SDE},
             {"unipc", LF_SAMPLER_UNIPC}};

static int kind_of(const char *key, lf_sampler_kind *out) {
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(key, kinds[i].key)) {
            *out = kinds[i].kind;
            return 1;
        }
    return 0;
}

static const float *gold_f32(const lf_st_file *g, const char *name, int64_t *n) {
    const lf_st_tensor *t = lf_st_find(g, name);
    if (!t || t->dtype != LF_F32) return NULL;
    lf_view v = lf_st_view(t);
    *n = lf_view_numel(&v);
    return (const float *)(const void *)t->data; /* safetensors data is 8-aligned after the header */
}

static double worst_t, worst_s, worst_loop;

/* |a - b| / max(|b|, floor) */
static double rel(double a, double b, double floor) {
    double d = fabs(b) > floor ? fabs(b) : floor;
    return fabs(a - b) / d;
}

static void check_tables(void) {
    lf_st_file *g = NULL;
    if (lf_st_open(TABLES, &g) != LF_OK) {
        LF_CHECK(0, "cannot open %s: %s", TABLES, lf_last_error());
        return;
    }
    lf_sampler_config cfg;
    lf_sampler_config_default(&cfg, LF_SAMPLER_EULER);
    int64_t na = 0;
    const float *acp_g = gold_f32(g, "alphas_cumprod", &na);
    LF_CHECK(acp_g && na == 1000, "alphas_cumprod golden");
    if (acp_g) {
        double acp[1000], w = 0;
        lf_schedule_alphas_cumprod(&cfg, acp);
        for (int i = 0; i < 1000; i++) w = fmax(w, rel(acp[i], acp_g[i], 0));
        LF_CHECK(w <= 1e-6, "alphas_cumprod rel %.3g", w);
    }
    const char *cases = lf_st_meta(g, "cases");
    LF_CHECK(cases != NULL, "cases metadata");
    int n_cases = 0;
    while (cases && *cases) {
        const char *end = strchr(cases, ',');
        size_t len = end ? (size_t)(end - cases) : strlen(cases);
        char name[96], kind[48], spacing[16];
        int N = 0;
        snprintf(name, sizeof name, "%.*s", (int)len, cases);
        cases = end ? end + 1 : cases + len;
        char *d1 = strchr(name, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
        if (!d1 || !d2) continue;
        snprintf(kind, sizeof kind, "%.*s", (int)(d1 - name), name);
        snprintf(spacing, sizeof spacing, "%.*s", (int)(d2 - d1 - 1), d1 + 1);
        N = atoi(d2 + 1);
        int karras = 0;
        size_t kl = strlen(kind);
        if (kl > 7 && !strcmp(kind + kl - 7, "_karras")) {
            karras = 1;
            kind[kl - 7] = 0;
        }
        lf_sampler_kind k = LF_SAMPLER_EULER;
        if (!kind_of(kind, &k)) {
            LF_CHECK(0, "unknown kind in %s", name);
            continue;
        }
        lf_sampler_config_default(&cfg, k);
        cfg.karras = karras;
        LF_CHECK(lf_spacing_parse(spacing, &cfg.spacing) == LF_OK, "spacing %s", spacing);
        lf_sampler *s = NULL;
        lf_status st = lf_sampler_create(&cfg, N, &s);
        LF_CHECK(st == LF_OK, "%s: create: %s", name, lf_last_error());
        if (st) continue;
        n_cases++;
        char key[128];
        int64_t ng = 0;
        int nt = 0, ns = 0;
        const float *ts = lf_sampler_timesteps(s, &nt), *sg = lf_sampler_sigmas(s, &ns);
        snprintf(key, sizeof key, "%s.timesteps", name);
        const float *g_ts = gold_f32(g, key, &ng);
        LF_CHECK(g_ts && ng == nt, "%s: %d timesteps, diffusers %lld", name, nt, (long long)ng);
        if (g_ts && ng == nt) {
            double w = 0;
            for (int i = 0; i < nt; i++) w = fmax(w, rel(ts[i], g_ts[i], 1.0));
            if (w > worst_t) worst_t = w;
            LF_CHECK(w <= 1e-6, "%s: timesteps rel %.3g", name, w);
        }
        if (k != LF_SAMPLER_DDIM) {
            snprintf(key, sizeof key, "%s.sigmas", name);
            const float *g_sg = gold_f32(g, key, &ng);
            LF_CHECK(g_sg && ng == ns, "%s: %d sigmas, diffusers %lld", name, ns, (long long)ng);
            if (g_sg && ng == ns) {
                double w = 0;
                for (int i = 0; i < ns; i++) w = fmax(w, rel(sg[i], g_sg[i], 1e-30));
                if (w > worst_s) worst_s = w;
                LF_CHECK(w <= 1e-6, "%s: sigmas rel %.3g", name, w);
            }
        }
        snprintf(key, sizeof key, "%s.init", name);
        const float *g_in = gold_f32(g, key, &ng);
        LF_CHECK(g_in && ng == 1 && rel(lf_sampler_init_noise_sigma(s), g_in[0], 0) <= 1e-6,
                 "%s: init_noise_sigma %.9g vs %.9g", name, lf_sampler_init_noise_sigma(s), g_in ? g_in[0] : 0);
        lf_sampler_free(s);
    }
    LF_CHECK(n_cases >= 200, "only %d table cases", n_cases);
    printf("tables: %d cases, worst timestep rel %.3g, worst sigma rel %.3g\n", n_cases, worst_t, worst_s);
    lf_st_close(g);
}

/* ---- loops ------------------------------------------------------------------------------------ */

typedef struct fake_ctx {
    int evals, before, last_step, bad_order;
    int abort_at;
} fake_ctx;

static lf_status fake_before(void *ctx, int step) {
    fake_ctx *f = ctx;
    if (step != f->last_step + 1) f->bad_order++;
    f->last_step = step;
    f->before++;
    return LF_OK;
}

static size_t fake_n;

static lf_status fake_denoise(void *ctx, int step, const float *x, float sigma, float t, float *out) {
    fake_ctx *f = ctx;
    (void)sigma;
    if (step != f->last_step) f->bad_order++;
    f->evals++;
    if (f->abort_at && f->evals == f->abort_at) return LF_ERR_DEVICE;
    for (size_t i = 0; i < fake_n; i++)
        out[i] = (float)(0.1 * (double)x[i] + 0.2 * cos(0.01 * (double)t + 0.001 * (double)i));
    return LF_OK;
}

static void check_loops(void) {
    lf_st_file *g = NULL;
    if (lf_st_open(LOOPS, &g) != LF_OK) {
        LF_CHECK(0, "cannot open %s: %s", LOOPS, lf_last_error());
        return;
    }
    const char *cases = lf_st_meta(g, "cases");
    LF_CHECK(cases != NULL, "cases metadata");
    int n_cases = 0;
    while (cases && *cases) {
        const char *end = strchr(cases, ';');
        size_t len = end ? (size_t)(end - cases) : strlen(cases);
        char entry[160], name[64], kind[32], spacing[16], pred[16];
        int karras = 0, N = 0, G = 1;
        long long seed = 0;
        snprintf(entry, sizeof entry, "%.*s", (int)len, cases);
        cases = end ? end + 1 : cases + len;
        for (char *p = entry; *p; p++)
            if (*p == ':') *p = ' ';
        if (sscanf(entry, "%63s %31s %d %15s %15s %d %lld %d", name, kind, &karras, spacing, pred, &N, &seed, &G) != 8 ||
            G < 1 || G > 8 || 512 % G) {
            LF_CHECK(0, "bad case %s", entry);
            continue;
        }
        lf_sampler_kind k = LF_SAMPLER_EULER;
        LF_CHECK(kind_of(kind, &k), "kind %s", kind);
        lf_sampler_config cfg;
        lf_sampler_config_default(&cfg, k);
        cfg.karras = karras;
        LF_CHECK(lf_spacing_parse(spacing, &cfg.spacing) == LF_OK, "spacing");
        LF_CHECK(lf_prediction_parse(pred, &cfg.prediction) == LF_OK, "prediction");
        int64_t n = 0;
        const float *want = gold_f32(g, name, &n);
        LF_CHECK(want && n == 512, "golden %s", name);
        if (!want) continue;
        lf_sampler *s = NULL;
        LF_CHECK(lf_sampler_create(&cfg, N, &s) == LF_OK, "%s: create: %s", name, lf_last_error());
        if (!s) continue;
        lf_rng rng[8];
        float x[512];
        size_t chunk = (size_t)n / (size_t)G;
        for (int img = 0; img < G; img++) {
            lf_rng_init(&rng[img], LF_RNG_TORCH_CPU, seed + img);
            lf_sampler_init_latent(s, &rng[img], x + (size_t)img * chunk, chunk);
        }
        fake_n = (size_t)n;
        fake_ctx f = {0, 0, 0, 0, 0};
        lf_sampler_cb cb = {&f, fake_before, fake_denoise};
        lf_status st = G == 1 ? lf_sampler_run(s, x, (size_t)n, &rng[0], &cb)
                              : lf_sampler_run_rngs(s, x, (size_t)n, rng, G, &cb);
        LF_CHECK(st == LF_OK, "%s: run: %s", name, lf_last_error());
        LF_CHECK(f.evals == lf_sampler_evals(s) && f.before == N && f.bad_order == 0,
                 "%s: %d evals (want %d), %d before_step (want %d), %d out of order", name, f.evals,
                 lf_sampler_evals(s), f.before, N, f.bad_order);
        double num = 0, den = 0;
        for (int64_t i = 0; i < n; i++) {
            num += ((double)x[i] - want[i]) * ((double)x[i] - want[i]);
            den += (double)want[i] * want[i];
        }
        double e = sqrt(num / den);
        if (e > worst_loop) worst_loop = e;
        LF_CHECK(e <= 1e-5, "%s: final latent rel L2 %.3g", name, e);
        printf("  %-24s rel L2 %.3g\n", name, e);
        n_cases++;
        lf_sampler_free(s);
    }
    LF_CHECK(n_cases >= 20, "only %d loop cases", n_cases);
    printf("loops: %d cases, worst rel L2 %.3g\n", n_cases, worst_loop);
    lf_st_close(g);
}

static void check_names(void) {
    static const struct {
        const char *name;
        lf_sampler_kind kind;
        int karras;
        const char *canon;
    } ok[] = {
        {"Euler", LF_SAMPLER_EULER, 0, "Euler"},
        {"Euler a", LF_SAMPLER_EULER_A, 0, "Euler a"},
        {"euler_ancestral", LF_SAMPLER_EULER_A, 0, "Euler a"},
        {"DDIM", LF_SAMPLER_DDIM, 0, "DDIM"},
        {"DPM++ 2M", LF_SAMPLER_DPMPP_2M, 0, "DPM++ 2M"},
        {"DPM++ 2M Karras", LF_SAMPLER_DPMPP_2M, 1, "DPM++ 2M Karras"},
        {"dpmpp_2m_karras", LF_SAMPLER_DPMPP_2M, 1, "DPM++ 2M Karras"},
        {"Heun", LF_SAMPLER_HEUN, 0, "Heun"},
        {"DPM++ 2M SDE", LF_SAMPLER_DPMPP_2M_SDE, 0, "DPM++ 2M SDE"},
        {"DPM++ 2M SDE Karras", LF_SAMPLER_DPMPP_2M_SDE, 1, "DPM++ 2M SDE Karras"},
        {"UniPC", LF_SAMPLER_UNIPC, 0, "UniPC"},
        {"EulerDiscreteScheduler", LF_SAMPLER_EULER, 0, "Euler"},
        {"EulerAncestralDiscreteScheduler", LF_SAMPLER_EULER_A, 0, "Euler a"},
        {"DDIMScheduler", LF_SAMPLER_DDIM, 0, "DDIM"},
        {"DPMSolverMultistepScheduler", LF_SAMPLER_DPMPP_2M, 0, "DPM++ 2M"},
        {"DPMSolverMultistepScheduler Karras", LF_SAMPLER_DPMPP_2M, 1, "DPM++ 2M Karras"},
        {"DPMSolverMultistepScheduler SDE Karras", LF_SAMPLER_DPMPP_2M_SDE, 1, "DPM++ 2M SDE Karras"},
        {"HeunDiscreteScheduler", LF_SAMPLER_HEUN, 0, "Heun"},
        {"UniPCMultistepScheduler", LF_SAMPLER_UNIPC, 0, "UniPC"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        lf_sampler_config cfg;
        lf_status st = lf_sampler_config_from_name(ok[i].name, &cfg);
        LF_CHECK(st == LF_OK && cfg.kind == ok[i].kind && cfg.karras == ok[i].karras &&
                     !strcmp(lf_sampler_config_name(&cfg), ok[i].canon),
                 "name '%s' -> %d/%d '%s'", ok[i].name, (int)cfg.kind, cfg.karras, lf_sampler_config_name(&cfg));
        LF_CHECK(cfg.spacing == LF_SPACING_LEADING && cfg.steps_offset == 1 && cfg.num_train_timesteps == 1000,
                 "defaults");
    }
    lf_sampler_config cfg;
    LF_CHECK(lf_sampler_config_from_name("Euler a Karras", &cfg) == LF_ERR_ARG, "Euler a has no Karras");
    LF_CHECK(lf_sampler_config_from_name("LMS", &cfg) == LF_ERR_ARG && strstr(lf_last_error(), "DPM++ 2M Karras"),
             "unknown sampler lists the names: %s", lf_last_error());
    LF_CHECK(!strcmp(lf_sampler_class_name(LF_SAMPLER_UNIPC), "UniPCMultistepScheduler"), "class name");
    lf_sampler *s = NULL;
    lf_sampler_config_default(&cfg, LF_SAMPLER_EULER);
    LF_CHECK(lf_sampler_create(&cfg, 0, &s) == LF_ERR_ARG && !s, "0 steps rejected");
    cfg.spacing = LF_SPACING_TRAILING;
    LF_CHECK(lf_sampler_create(&cfg, 61, &s) == LF_ERR_UNSUPPORTED && !s,
             "trailing N=61 (numpy gives 62 timesteps) rejected");
    /* the callback's status aborts the run */
    lf_sampler_config_default(&cfg, LF_SAMPLER_HEUN);
    LF_CHECK(lf_sampler_create(&cfg, 5, &s) == LF_OK, "heun");
    float x[16] = {0};
    fake_n = 16;
    fake_ctx f = {0, 0, 0, 0, 4};
    lf_sampler_cb cb = {&f, fake_before, fake_denoise};
    LF_CHECK(lf_sampler_run(s, x, 16, NULL, &cb) == LF_ERR_DEVICE && f.evals == 4 && f.before == 2,
             "abort: %d evals %d steps", f.evals, f.before);
    lf_sampler_free(s);
    lf_sampler_config_default(&cfg, LF_SAMPLER_EULER_A);
    LF_CHECK(lf_sampler_create(&cfg, 5, &s) == LF_OK, "euler a");
    LF_CHECK(lf_sampler_run(s, x, 16, NULL, &cb) == LF_ERR_ARG, "ancestral without rng rejected");
    lf_sampler_free(s);
}

int main(void) {
    check_names();
    check_tables();
    check_loops();
    return lf_test_finish();
}
