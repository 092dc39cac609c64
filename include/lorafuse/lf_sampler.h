/* lf_sampler.h: noise schedules and samplers for Stable Diffusion, matching diffusers' schedulers
 * (docs/samplers.md lists names, defaults and the known differences from A1111's k-diffusion).
 *
 * Schedule: scaled-linear betas (sqrt-linear from beta_start 0.00085 to beta_end 0.012 over 1000 train
 * steps), alphas_cumprod, sigma = sqrt((1 - acp) / acp); inference timesteps by spacing `leading`
 * (steps_offset added), `trailing` or `linspace`, or Karras sigmas (rho 7) mapped back to fractional
 * timesteps, exactly as the diffusers scheduler class of each sampler does in set_timesteps(N).
 *
 * The sampler never sees the model: lf_sampler_run calls
 *     before_step(ctx, step)                        once per step, step = 1..N, before its first eval
 *     denoise(ctx, step, x_in, sigma, t, out)       per model evaluation
 * x_in is the MODEL INPUT (already scaled by the scheduler's scale_model_input, i.e. x / sqrt(sigma^2+1)
 * for the sigma-space samplers); t is the UNet timestep (fractional for Karras schedules); out receives
 * the model output (epsilon or v, as cfg.prediction says) for the whole latent, CFG already applied.
 * Heun evaluates the model twice per step except the last (2N - 1 evals): both evals of step k get
 * step = k. The denoiser may return any non-LF_OK status to abort; lf_sampler_run returns it.
 *
 * Noise: the caller draws the initial latent with lf_sampler_init_latent (randn * init_noise_sigma,
 * one lf_rng_randn call over the whole batch, as diffusers' prepare_latents with one generator), then
 * passes the same lf_rng to lf_sampler_run: the ancestral / SDE samplers draw one randn of the whole
 * latent per step at the same point diffusers' scheduler.step does, so with LF_RNG_TORCH_CPU the final
 * latent equals diffusers' pipeline with generator=torch.Generator("cpu").manual_seed(seed).
 */
#ifndef LF_SAMPLER_H
#define LF_SAMPLER_H

#include <stddef.h>

#include "lorafuse/lf_rng.h"
#include "lorafuse/lf_status.h"
#include "lorafuse/lf_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lf_sampler_kind {
    LF_SAMPLER_EULER = 0,       /* "Euler"            EulerDiscreteScheduler */
    LF_SAMPLER_EULER_A,         /* "Euler a"          EulerAncestralDiscreteScheduler */
    LF_SAMPLER_DDIM,            /* "DDIM"             DDIMScheduler (eta 0) */
    LF_SAMPLER_DPMPP_2M,        /* "DPM++ 2M"         DPMSolverMultistepScheduler (dpmsolver++, order 2) */
    LF_SAMPLER_HEUN,            /* "Heun"             HeunDiscreteScheduler */
    LF_SAMPLER_DPMPP_2M_SDE,    /* "DPM++ 2M SDE"     DPMSolverMultistepScheduler (sde-dpmsolver++) */
    LF_SAMPLER_UNIPC,           /* "UniPC"            UniPCMultistepScheduler (bh2, order 2) */
    LF_SAMPLER_COUNT
} lf_sampler_kind;

typedef enum lf_spacing {
    LF_SPACING_LEADING = 0,     /* arange(0, N) * (T // N) + steps_offset, reversed (SD1.x default) */
    LF_SPACING_TRAILING,        /* round(arange(T, 0, -T / N)) - 1 */
    LF_SPACING_LINSPACE         /* linspace(0, T - 1, N), reversed */
} lf_spacing;

typedef struct lf_sampler_config {
    lf_sampler_kind kind;
    int karras;                 /* Karras sigmas, rho 7 (use_karras_sigmas); not for DDIM */
    lf_spacing spacing;
    int steps_offset;           /* added to `leading` timesteps (1 for SD1.x / SDXL) */
    lf_prediction prediction;
    int num_train_timesteps;    /* 1000 */
    double beta_start;          /* 0.00085 */
    double beta_end;            /* 0.012 */
} lf_sampler_config;

/* Defaults for a kind: no Karras, leading spacing, steps_offset 1, epsilon, 1000 / 0.00085 / 0.012. */
void lf_sampler_config_default(lf_sampler_config *cfg, lf_sampler_kind kind);

/* Sampler by name: A1111 / SD.Next spellings ("Euler", "Euler a", "DDIM", "DPM++ 2M",
 * "DPM++ 2M Karras", "Heun", "DPM++ 2M SDE", "DPM++ 2M SDE Karras", "UniPC"), case-insensitive, and
 * diffusers' class names (EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, DDIMScheduler,
 * DPMSolverMultistepScheduler, HeunDiscreteScheduler, UniPCMultistepScheduler; a " Karras" suffix
 * or "DPMSolverMultistepScheduler SDE" selects the variants). Fills cfg with the defaults of the kind,
 * then karras. LF_ERR_ARG (message lists the known names) for an unknown name. */
lf_status lf_sampler_config_from_name(const char *name, lf_sampler_config *cfg);
/* A1111 name of a config ("DPM++ 2M Karras", ...) for the PNG `Sampler` field. */
const char *lf_sampler_config_name(const lf_sampler_config *cfg);
/* diffusers class name of a kind. */
const char *lf_sampler_class_name(lf_sampler_kind kind);
/* Comma-separated A1111 names, for error messages and --help. */
const char *lf_sampler_names(void);
/* "leading" | "trailing" | "linspace" <-> lf_spacing (lf_prediction_parse: lf_types.h). */
lf_status lf_spacing_parse(const char *name, lf_spacing *out);
const char *lf_spacing_name(lf_spacing s);

/* ---- schedule tables (host/sample/sigmas.c) ------------------------------------------------ */

/* alphas_cumprod of the training schedule, n = cfg->num_train_timesteps values (double). */
lf_status lf_schedule_alphas_cumprod(const lf_sampler_config *cfg, double *out);

typedef struct lf_sampler lf_sampler;

/* Build the tables of cfg for n_steps inference steps (set_timesteps(n_steps)). */
lf_status lf_sampler_create(const lf_sampler_config *cfg, int n_steps, lf_sampler **out);
void lf_sampler_free(lf_sampler *s);

const lf_sampler_config *lf_sampler_cfg(const lf_sampler *s);
int lf_sampler_steps(const lf_sampler *s);          /* N */
int lf_sampler_evals(const lf_sampler *s);          /* model evaluations: N, Heun 2N - 1 */
/* diffusers' scheduler.timesteps (evals entries; Heun repeats as diffusers does) as float32. */
const float *lf_sampler_timesteps(const lf_sampler *s, int *n);
/* diffusers' scheduler.sigmas as float32 (evals + 1 entries, the last 0; DPM++/UniPC: N + 1 entries
 * with the final sigma as their final_sigmas_type says). DDIM: sqrt((1-acp)/acp) of its timesteps then 0,
 * for information only (DDIM has no sigmas attribute). */
const float *lf_sampler_sigmas(const lf_sampler *s, int *n);
/* Scale of the initial noise (diffusers' init_noise_sigma). */
float lf_sampler_init_noise_sigma(const lf_sampler *s);

/* ---- sampling loop (host/sample/sampler.c) ----------------------------------------------------------- */

typedef struct lf_sampler_cb {
    void *ctx;
    /* optional (NULL): runs once before the first model evaluation of each step (apply LoRA plans) */
    lf_status (*before_step)(void *ctx, int step);
    /* required: out = model(x, t) for the whole latent (n floats), CFG applied */
    lf_status (*denoise)(void *ctx, int step, const float *x, float sigma, float t, float *out);
} lf_sampler_cb;

/* x = randn(n) * init_noise_sigma: one lf_rng_randn call of n values. */
void lf_sampler_init_latent(const lf_sampler *s, lf_rng *rng, float *x, size_t n);

/* Run all steps on x (n floats, the initial latent from lf_sampler_init_latent, updated in place to
 * the final latent). rng feeds the ancestral / SDE noise (may be NULL for the deterministic samplers;
 * LF_ERR_ARG if a stochastic sampler gets NULL). LF_ERR_NOMEM, or the callback's status. */
lf_status lf_sampler_run(lf_sampler *s, float *x, size_t n, lf_rng *rng, const lf_sampler_cb *cb);

/* The same with one noise source per image, A1111-style (image k seeded seed + k): x is n_rngs equal
 * chunks, and every noise draw is one lf_rng_randn(n / n_rngs) per chunk from rngs[k] (draw each image's
 * initial latent from its own generator too: lf_sampler_init_latent on each chunk). n_rngs 1 is
 * lf_sampler_run; n_rngs 0 only for the deterministic samplers. LF_ERR_ARG if n % n_rngs != 0. */
lf_status lf_sampler_run_rngs(lf_sampler *s, float *x, size_t n, lf_rng *rngs, int n_rngs, const lf_sampler_cb *cb);

#ifdef __cplusplus
}
#endif
#endif
