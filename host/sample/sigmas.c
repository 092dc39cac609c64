/* sigmas.c: sampler names and configs, and the noise-schedule tables of lf_sampler.h.
 *
 * Every table is computed the way the diffusers 0.30 scheduler class of the sampler computes it in
 * __init__ + set_timesteps(N), including the precision of each intermediate:
 *   betas = linspace(sqrt(b0), sqrt(b1), T) ** 2 in float32 (torch.linspace's two-sided formula),
 *   alphas_cumprod = cumprod(1 - betas) (float32 values, double accumulator as torch's CPU cumprod),
 *   sigma(t) = sqrt((1 - acp) / acp) in float32; timesteps from numpy (float64, then float32 or int64);
 *   sigmas interpolated (np.interp, float64) at the timesteps or Karras (float64) and stored as float32;
 *   Karras timesteps by log-sigma interpolation against log(float32 sigmas).
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sampler_internal.h"

/* ---- names ------------------------------------------------------------------------------------ */

static const char *const a1111_names[LF_SAMPLER_COUNT] = {
    "Euler", "Euler a", "DDIM", "DPM++ 2M", "Heun", "DPM++ 2M SDE", "UniPC"};
static const char *const a1111_karras[LF_SAMPLER_COUNT] = {
    "Euler Karras", NULL, NULL, "DPM++ 2M Karras", "Heun Karras", "DPM++ 2M SDE Karras", "UniPC Karras"};
static const char *const class_names[LF_SAMPLER_COUNT] = {
    "EulerDiscreteScheduler",      "EulerAncestralDiscreteScheduler", "DDIMScheduler",
    "DPMSolverMultistepScheduler", "HeunDiscreteScheduler",           "DPMSolverMultistepScheduler",
    "UniPCMultistepScheduler"};

/* normalised aliases: lower case without ' ', '_', '-', '+' */
static const struct {
    const char *alias;
    lf_sampler_kind kind;
} aliases[] = {
    {"euler", LF_SAMPLER_EULER},
    {"keuler", LF_SAMPLER_EULER},
    {"eulerdiscretescheduler", LF_SAMPLER_EULER},
    {"eulera", LF_SAMPLER_EULER_A},
    {"keulera", LF_SAMPLER_EULER_A},
    {"eulerancestral", LF_SAMPLER_EULER_A},
    {"keulerancestral", LF_SAMPLER_EULER_A},
    {"eulerancestraldiscretescheduler", LF_SAMPLER_EULER_A},
    {"ddim", LF_SAMPLER_DDIM},
    {"ddimscheduler", LF_SAMPLER_DDIM},
    {"dpm2m", LF_SAMPLER_DPMPP_2M},
    {"dpmpp2m", LF_SAMPLER_DPMPP_2M},
    {"kdpmpp2m", LF_SAMPLER_DPMPP_2M},
    {"dpmsolvermultistepscheduler", LF_SAMPLER_DPMPP_2M},
    {"heun", LF_SAMPLER_HEUN},
    {"kheun", LF_SAMPLER_HEUN},
    {"heundiscretescheduler", LF_SAMPLER_HEUN},
    {"dpm2msde", LF_SAMPLER_DPMPP_2M_SDE},
    {"dpmpp2msde", LF_SAMPLER_DPMPP_2M_SDE},
    {"kdpmpp2msde", LF_SAMPLER_DPMPP_2M_SDE},
    {"dpmsolvermultistepschedulersde", LF_SAMPLER_DPMPP_2M_SDE},
    {"unipc", LF_SAMPLER_UNIPC},
    {"unipcmultistepscheduler", LF_SAMPLER_UNIPC},
};

static int has_karras(lf_sampler_kind k) {
    return k != LF_SAMPLER_EULER_A && k != LF_SAMPLER_DDIM;
}

const char *lf_sampler_names(void) {
    return "Euler, Euler a, DDIM, DPM++ 2M, DPM++ 2M Karras, Heun, DPM++ 2M SDE, DPM++ 2M SDE Karras, "
           "UniPC (also Euler Karras, Heun Karras, UniPC Karras and the diffusers class names)";
}

void lf_sampler_config_default(lf_sampler_config *cfg, lf_sampler_kind kind) {
    memset(cfg, 0, sizeof *cfg);
    cfg->kind = kind;
    cfg->karras = 0;
    cfg->spacing = LF_SPACING_LEADING;
    cfg->steps_offset = 1;
    cfg->prediction = LF_PRED_EPSILON;
    cfg->num_train_timesteps = 1000;
    cfg->beta_start = 0.00085;
    cfg->beta_end = 0.012;
}

lf_status lf_sampler_config_from_name(const char *name, lf_sampler_config *cfg) {
    if (!name || !cfg) return lf_err(LF_ERR_ARG, "sampler: no name");
    char norm[96];
    size_t n = 0;
    for (const char *p = name; *p && n + 1 < sizeof norm; p++) {
        if (*p == ' ' || *p == '_' || *p == '-' || *p == '+') continue;
        norm[n++] = (char)tolower((unsigned char)*p);
    }
    norm[n] = 0;
    int karras = 0;
    if (n > 6 && !strcmp(norm + n - 6, "karras")) {
        karras = 1;
        norm[n - 6] = 0;
    }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
        if (strcmp(norm, aliases[i].alias)) continue;
        if (karras && !has_karras(aliases[i].kind))
            return lf_err(LF_ERR_ARG, "sampler '%s': %s has no Karras variant (known: %s)", name,
                          a1111_names[aliases[i].kind], lf_sampler_names());
        lf_sampler_config_default(cfg, aliases[i].kind);
        cfg->karras = karras;
        return LF_OK;
    }
    return lf_err(LF_ERR_ARG, "unknown sampler '%s' (known: %s)", name, lf_sampler_names());
}

const char *lf_sampler_config_name(const lf_sampler_config *cfg) {
    if ((unsigned)cfg->kind >= LF_SAMPLER_COUNT) return "?";
    if (cfg->karras && a1111_karras[cfg->kind]) return a1111_karras[cfg->kind];
    return a1111_names[cfg->kind];
}

const char *lf_sampler_class_name(lf_sampler_kind kind) {
    return (unsigned)kind < LF_SAMPLER_COUNT ? class_names[kind] : "?";
}

lf_status lf_spacing_parse(const char *name, lf_spacing *out) {
    static const char *const names[] = {"leading", "trailing", "linspace"};
    for (int i = 0; i < 3; i++)
        if (name && !strcmp(name, names[i])) {
            *out = (lf_spacing)i;
            return LF_OK;
        }
    return lf_err(LF_ERR_ARG, "unknown timestep spacing '%s' (known: leading, trailing, linspace)",
                  name ? name : "(null)");
}

const char *lf_spacing_name(lf_spacing s) {
    return s == LF_SPACING_TRAILING ? "trailing" : s == LF_SPACING_LINSPACE ? "linspace" : "leading";
}

/* ---- training schedule ------------------------------------------------------------------------ */

/* float32 alphas_cumprod as torch computes it */
static void acp_f32(const lf_sampler_config *cfg, float *acp) {
    int T = cfg->num_train_timesteps;
    float start = (float)sqrt(cfg->beta_start), end = (float)sqrt(cfg->beta_end);
    float step = T > 1 ? (end - start) / (float)(T - 1) : 0.0f;
    int half = T / 2;
    double cum = 1.0;
    for (int i = 0; i < T; i++) {
        float b = i < half ? start + step * (float)i : end - step * (float)(T - i - 1);
        float beta = b * b;
        float alpha = 1.0f - beta;
        cum *= (double)alpha;
        acp[i] = (float)cum;
    }
}

lf_status lf_schedule_alphas_cumprod(const lf_sampler_config *cfg, double *out) {
    if (!cfg || cfg->num_train_timesteps < 2) return lf_err(LF_ERR_ARG, "schedule: num_train_timesteps < 2");
    float *a = malloc((size_t)cfg->num_train_timesteps * sizeof *a);
    if (!a) return lf_err(LF_ERR_NOMEM, "schedule: out of memory");
    acp_f32(cfg, a);
    for (int i = 0; i < cfg->num_train_timesteps; i++) out[i] = a[i];
    free(a);
    return LF_OK;
}

/* ---- numpy helpers ---------------------------------------------------------------------------- */

/* np.linspace(0, stop, num) (float64), element i */
static double np_linspace(double stop, int num, int i) {
    if (num <= 1) return 0.0;
    if (i == num - 1) return stop;
    double step = stop / (double)(num - 1);
    return (double)i * step;
}

/* np.arange(start, 0, -step) for float step: length and element i (numpy fills start + i * delta with
 * delta = (start + step) - start) */
static int np_arange_down(double start, double step, double *vals, int max) {
    double len_d = ceil((0.0 - start) / -step);
    int len = len_d > 0 ? (int)len_d : 0;
    double delta = (start + -step) - start;
    for (int i = 0; i < len && i < max; i++) vals[i] = i == 0 ? start : start + (double)i * delta;
    return len;
}

/* np.interp(x, arange(T), fp) */
static double np_interp(double x, const float *fp, int T) {
    if (x <= 0) return fp[0];
    if (x >= T - 1) return fp[T - 1];
    int j = (int)floor(x);
    if (x == (double)j) return fp[j];
    double slope = ((double)fp[j + 1] - (double)fp[j]) / 1.0;
    return slope * (x - (double)j) + (double)fp[j];
}

/* diffusers' _sigma_to_t against float32 log sigmas */
static double sigma_to_t(double sigma, const float *log_sigmas, int T) {
    double ls = log(sigma > 1e-10 ? sigma : 1e-10);
    int low = 0;
    for (int i = 0; i < T; i++)
        if (ls - (double)log_sigmas[i] >= 0) low = i;
    if (low > T - 2) low = T - 2;
    int high = low + 1;
    double lo = log_sigmas[low], hi = log_sigmas[high];
    double w = (lo - ls) / (lo - hi);
    if (w < 0) w = 0;
    if (w > 1) w = 1;
    return (1 - w) * low + w * high;
}

static void karras(double smin, double smax, int n, double *out) {
    double rho = 7.0;
    double min_inv = pow(smin, 1 / rho), max_inv = pow(smax, 1 / rho);
    for (int i = 0; i < n; i++) {
        double ramp = n > 1 ? (i == n - 1 ? 1.0 : (double)i * (1.0 / (double)(n - 1))) : 0.0;
        out[i] = pow(max_inv + ramp * (min_inv - max_inv), rho);
    }
}

/* ---- set_timesteps ---------------------------------------------------------------------------- */

static int is_multistep(lf_sampler_kind k) {
    return k == LF_SAMPLER_DPMPP_2M || k == LF_SAMPLER_DPMPP_2M_SDE || k == LF_SAMPLER_UNIPC;
}

/* integer-or-float timesteps before Karras, as float64, descending; returns the count */
static int base_timesteps(const lf_sampler_config *cfg, int N, double *ts) {
    int T = cfg->num_train_timesteps;
    lf_sampler_kind k = cfg->kind;
    int multi = is_multistep(k);
    int ddim = k == LF_SAMPLER_DDIM;
    switch (cfg->spacing) {
    case LF_SPACING_LINSPACE:
        if (multi) { /* linspace(0, T - 1, N + 1).round()[::-1][:-1] */
            for (int i = 0; i < N; i++) ts[i] = nearbyint(np_linspace(T - 1, N + 1, N - i));
        } else if (ddim) { /* linspace(0, T - 1, N).round()[::-1] */
            for (int i = 0; i < N; i++) ts[i] = nearbyint(np_linspace(T - 1, N, N - 1 - i));
        } else { /* linspace(0, T - 1, N, dtype=float32)[::-1] */
            for (int i = 0; i < N; i++) ts[i] = (float)np_linspace(T - 1, N, N - 1 - i);
        }
        return N;
    case LF_SPACING_LEADING:
        if (multi) {
            int ratio = T / (N + 1);
            for (int i = 0; i < N; i++) ts[i] = (double)((N - i) * ratio + cfg->steps_offset);
        } else {
            int ratio = T / N;
            for (int i = 0; i < N; i++) ts[i] = (double)((N - 1 - i) * ratio + cfg->steps_offset);
        }
        return N;
    case LF_SPACING_TRAILING: {
        double ratio = (double)T / (double)N;
        int len = np_arange_down((double)T, ratio, ts, N + 1);
        if (len > N + 1) len = N + 1;
        for (int i = 0; i < len; i++) ts[i] = nearbyint(ts[i]) - 1.0;
        return len;
    }
    }
    return 0;
}

void lf_sampler_free(lf_sampler *s) {
    if (!s) return;
    free(s->timesteps);
    free(s->sigmas);
    free(s->acp);
    free(s->ddim_t);
    free(s);
}

lf_status lf_sampler_create(const lf_sampler_config *cfg, int N, lf_sampler **out) {
    *out = NULL;
    if (!cfg || (unsigned)cfg->kind >= LF_SAMPLER_COUNT) return lf_err(LF_ERR_ARG, "sampler: unknown kind");
    int T = cfg->num_train_timesteps;
    if (T < 2 || T > 100000) return lf_err(LF_ERR_ARG, "sampler: num_train_timesteps %d out of range", T);
    if (N < 1 || N > T) return lf_err(LF_ERR_ARG, "sampler: steps %d out of range 1..%d", N, T);
    if (cfg->karras && !has_karras(cfg->kind))
        return lf_err(LF_ERR_ARG, "sampler: %s has no Karras variant", a1111_names[cfg->kind]);
    if ((unsigned)cfg->spacing > LF_SPACING_LINSPACE) return lf_err(LF_ERR_ARG, "sampler: unknown spacing");
    if (!(cfg->beta_start > 0 && cfg->beta_end > cfg->beta_start && cfg->beta_end < 1))
        return lf_err(LF_ERR_ARG, "sampler: bad beta range %g..%g", cfg->beta_start, cfg->beta_end);
    if (cfg->steps_offset < 0 || cfg->steps_offset >= T)
        return lf_err(LF_ERR_ARG, "sampler: steps_offset %d out of range", cfg->steps_offset);

    lf_status st = LF_ERR_NOMEM;
    lf_sampler *s = calloc(1, sizeof *s);
    float *sig_tab = malloc((size_t)T * sizeof *sig_tab), *log_tab = malloc((size_t)T * sizeof *log_tab);
    double *ts = malloc((size_t)(N + 2) * sizeof *ts), *sg = malloc((size_t)(N + 2) * sizeof *sg);
    if (!s || !sig_tab || !log_tab || !ts || !sg) goto fail;
    s->cfg = *cfg;
    s->acp = malloc((size_t)T * sizeof *s->acp);
    if (!s->acp) goto fail;
    acp_f32(cfg, s->acp);
    for (int i = 0; i < T; i++) {
        sig_tab[i] = sqrtf((1.0f - s->acp[i]) / s->acp[i]);
        log_tab[i] = logf(sig_tab[i]);
    }

    int n = base_timesteps(cfg, N, ts);
    if (n != N) {
        st = lf_err(LF_ERR_UNSUPPORTED, "sampler: trailing spacing gives %d timesteps for %d steps", n, N);
        goto fail;
    }
    lf_sampler_kind k = cfg->kind;
    s->n_steps = N;
    float sigma_last = 0.0f;
    if (k == LF_SAMPLER_DDIM) {
        s->ddim_t = malloc((size_t)N * sizeof *s->ddim_t);
        if (!s->ddim_t) goto fail;
        for (int i = 0; i < N; i++) {
            s->ddim_t[i] = (int)ts[i];
            if (s->ddim_t[i] < 0 || s->ddim_t[i] >= T) {
                st = lf_err(LF_ERR_ARG, "sampler: DDIM timestep %d out of range", s->ddim_t[i]);
                goto fail;
            }
            sg[i] = sig_tab[s->ddim_t[i]];
        }
    } else if (cfg->karras) {
        double smin, smax;
        if (is_multistep(k)) { /* from the full training sigmas */
            smin = sig_tab[0];
            smax = sig_tab[T - 1];
        } else { /* from the sigmas at the spaced timesteps */
            smax = np_interp(ts[0], sig_tab, T);
            smin = np_interp(ts[N - 1], sig_tab, T);
        }
        karras(smin, smax, N, sg);
        for (int i = 0; i < N; i++) {
            double t = sigma_to_t(sg[i], log_tab, T);
            ts[i] = is_multistep(k) ? nearbyint(t) : (double)(float)t;
        }
    } else {
        for (int i = 0; i < N; i++) sg[i] = np_interp(ts[i], sig_tab, T);
    }
    for (int i = 0; i < N; i++) {
        if (ts[i] < 0 || ts[i] > T - 1) {
            st = lf_err(LF_ERR_ARG, "sampler: timestep %g out of range (steps_offset?)", ts[i]);
            goto fail;
        }
    }

    if (k == LF_SAMPLER_HEUN) {
        s->n_evals = 2 * N - 1;
        s->n_sigmas = 2 * N;
        s->timesteps = malloc((size_t)s->n_evals * sizeof *s->timesteps);
        s->sigmas = malloc((size_t)s->n_sigmas * sizeof *s->sigmas);
        if (!s->timesteps || !s->sigmas) goto fail;
        s->timesteps[0] = (float)ts[0];
        s->sigmas[0] = (float)sg[0];
        for (int i = 1; i < N; i++) {
            s->timesteps[2 * i - 1] = s->timesteps[2 * i] = (float)ts[i];
            s->sigmas[2 * i - 1] = s->sigmas[2 * i] = (float)sg[i];
        }
        s->sigmas[2 * N - 1] = 0.0f;
    } else {
        s->n_evals = N;
        s->n_sigmas = N + 1;
        s->timesteps = malloc((size_t)N * sizeof *s->timesteps);
        s->sigmas = malloc((size_t)(N + 1) * sizeof *s->sigmas);
        if (!s->timesteps || !s->sigmas) goto fail;
        for (int i = 0; i < N; i++) {
            s->timesteps[i] = (float)ts[i];
            s->sigmas[i] = (float)sg[i];
        }
        s->sigmas[N] = sigma_last;
    }

    if (k == LF_SAMPLER_EULER || k == LF_SAMPLER_EULER_A || k == LF_SAMPLER_HEUN) {
        float mx = 0.0f;
        for (int i = 0; i < s->n_sigmas; i++)
            if (s->sigmas[i] > mx) mx = s->sigmas[i];
        s->init_sigma = cfg->spacing == LF_SPACING_LEADING ? sqrtf(mx * mx + 1.0f) : mx;
    } else {
        s->init_sigma = 1.0f;
    }
    free(sig_tab);
    free(log_tab);
    free(ts);
    free(sg);
    *out = s;
    return LF_OK;
fail:
    if (st == LF_ERR_NOMEM) lf_err(LF_ERR_NOMEM, "sampler: out of memory");
    free(sig_tab);
    free(log_tab);
    free(ts);
    free(sg);
    lf_sampler_free(s);
    return st;
}

const lf_sampler_config *lf_sampler_cfg(const lf_sampler *s) {
    return &s->cfg;
}

int lf_sampler_steps(const lf_sampler *s) {
    return s->n_steps;
}

int lf_sampler_evals(const lf_sampler *s) {
    return s->n_evals;
}

const float *lf_sampler_timesteps(const lf_sampler *s, int *n) {
    if (n) *n = s->n_evals;
    return s->timesteps;
}

const float *lf_sampler_sigmas(const lf_sampler *s, int *n) {
    if (n) *n = s->n_sigmas;
    return s->sigmas;
}

float lf_sampler_init_noise_sigma(const lf_sampler *s) {
    return s->init_sigma;
}
