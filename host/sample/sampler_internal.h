/* sampler_internal.h: the lf_sampler object shared by sigmas.c (tables) and sampler.c (loop). */
#ifndef LF_SAMPLER_INTERNAL_H
#define LF_SAMPLER_INTERNAL_H

#include "lorafuse/lf_sampler.h"

struct lf_sampler {
    lf_sampler_config cfg;
    int n_steps;         /* N */
    int n_evals;         /* model evaluations (Heun 2N - 1) */
    float *timesteps;    /* n_evals */
    float *sigmas;       /* n_sigmas */
    int n_sigmas;
    float init_sigma;    /* init_noise_sigma */
    float *acp;          /* alphas_cumprod, float32 as diffusers holds it (num_train_timesteps) */
    int *ddim_t;         /* DDIM integer timesteps (N) */
};

#endif
