/* generate_internal.h: the state of one lf_gen (lf_generate.h) and the functions its files share.
 *
 *   generate.c    public lf_gen_* entry points, model loading, per-step weights, the sampling loop
 *   gen_check.c   every check lf_gen_open makes before any work (options, model parts, size, adapters)
 *   gen_cond.c    the prompt text the encoders see, and its conditioning cached per text-encoder set
 *   gen_output.c  what an image leaves behind: decode, PNG file with its A1111 parameters, callback
 *   gen_memory.c  the memory a call will need (estimated from the checkpoint before loading) and may use
 *   gen_vae.c     --vae: a VAE file or diffusers folder in place of the checkpoint's (check and load)
 *   gen_session.c the resident model (lf_gen_session): loading, which loaded weights hold what, and the
 *                 text-encoder outputs kept across jobs
 *   gen_group.c   which jobs may share one call (lf_gen_groupable)
 *   gen_mixed.c   a group's jobs as one batch: one UNet call per step, per-image adapters
 *
 * Calls go generate.c -> gen_session.c, gen_check.c -> gen_cond.c, gen_output.c, gen_memory.c, gen_vae.c
 * gen_group.c and gen_mixed.c (never back up); gen_mixed.c also calls gen_session.c, gen_cond.c, gen_output.c;
 * generate.c also checks a group's memory through gen_memory.c; generate.c also loads through gen_vae.c.
 */
#ifndef LF_GENERATE_INTERNAL_H
#define LF_GENERATE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lorafuse/lf_clip.h"
#include "lorafuse/lf_generate.h"
#include "lorafuse/lf_hash.h"
#include "lorafuse/lf_prompt_tags.h"
#include "lorafuse/lf_sampler.h"
#include "lorafuse/lf_step_plan.h"
#include "lorafuse/lf_tokenizer.h"
#include "lorafuse/lf_unet.h"
#include "lorafuse/lf_vae.h"

typedef struct {
    lf_text_cond cond, uncond; /* context (L, D) each, equal L after padding */
    int have;
} lf_gen_cond;

/* The memory estimate of gen_memory.c, in bytes. */
typedef struct {
    uint64_t weights, patched, buffers, unet, vae, scratch, total;
    uint64_t limit;            /* the limit checked against (0: unknown, not checked) */
    /* device memory of the adapters patched on the device (not in total, which is host memory): each
     * layer's W0 and working copy in its dtype, and the adapters' factors as f32 */
    uint64_t device;
} lf_gen_mem;

/* A checkpoint tensor the loaded models may hold patched, and the signature of the bytes it holds
 * (gen_session.c: all zero = W0, all 0xff = unknown). */
#define LF_GEN_SIG 32
typedef struct {
    const lf_st_tensor *t;
    lf_component comp;
    unsigned char sig[LF_GEN_SIG];
} lf_gen_held;

/* Patch p of a plan job into h: its adapter file's identity aid (lf_gen_adapter_ids), its module's name and
 * every parameter that decides the bytes it gives, and coef (gen_session.c: the patch's coefficient at a
 * step; gen_compute.c's key of a device model, which holds any coefficient: 0). */
static inline void lf_gen_patch_hash(lf_sha256 *h, const unsigned char aid[LF_GEN_SIG], const lf_patch *p, float coef) {
    const lf_module *m = &p->mod;
    struct {
        float coef, gamma;
        double alpha;
        long long row_off, rows;
        int bias, algo, rank, gamma_from_scale, dora_axis, glora_old_layout, ia3_on_input, dyn_rank;
        unsigned present;
    } v;
    memset(&v, 0, sizeof v);
    v.coef = coef, v.gamma = m->gamma, v.alpha = m->alpha, v.row_off = p->row_off, v.rows = p->rows;
    v.bias = p->bias, v.algo = (int)m->algo, v.rank = m->rank, v.gamma_from_scale = m->gamma_from_scale;
    v.dora_axis = m->dora_axis, v.glora_old_layout = m->glora_old_layout, v.ia3_on_input = m->ia3_on_input;
    v.dyn_rank = m->dyn_rank, v.present = m->present;
    lf_sha256_update(h, aid, LF_GEN_SIG);
    lf_sha256_update(h, m->name, strlen(m->name) + 1);
    lf_sha256_update(h, &v, sizeof v);
}

/* Text-encoder outputs kept across the jobs of a session (gen_session.c), keyed by what decides them. */
#define LF_GEN_TE_MEMO 16
typedef struct {
    unsigned char key[LF_GEN_SIG];
    lf_text_cond cond, uncond;
    uint64_t last_use;         /* 0: empty slot */
} lf_gen_te_memo;

/* A backend buffer of n floats (gen_compute.c). */
typedef struct lf_gen_dbuf {
    float *p;
    int64_t n;
} lf_gen_dbuf;
#define LF_GEN_DBUFS 2 /* the VAE decode's latent and image */
/* the sampler's buffers in the compute's memory (gen_sample.c): UNet input and output (activation type),
 * the output in f32, conditioning context and SDXL y, the non-finite flags and the latent (f32) */
enum { LF_GS_XIN, LF_GS_OUT, LF_GS_O32, LF_GS_CTX, LF_GS_Y, LF_GS_FLAGS, LF_GS_X, LF_GEN_SBUFS };

struct lf_gen_session {
    char *model;               /* checkpoint path */
    struct lf_compute *cc;     /* the compute the models run on (gen_compute.c) */
    struct lf_compute *vae_cc; /* the VAE's when its precision differs (--vae-dtype; a second CUDA compute on the
                                * same device), else NULL: cc */
    lf_dtype dtype, vae_dtype; /* what cc and the VAE store on CUDA (gen_compute.c) */
    struct lf_compute_count *prof; /* LF_COMPUTE_PROFILE=1: cc is this timed count around prof->inner */
    char *prof_text;
    char backend[224];         /* "cpu", "cpu (auto: ...)", "cuda (device 0: ...)" */
    lf_model *m;
    lf_tokenizer *tok;
    lf_unet *unet;
    lf_vae *vae;
    lf_clip *te1, *te2;
    char model_hash[11];
    const char *family;
    int used;                  /* a job has run on the loaded models */
    lf_gen_held *held;         /* after lf_gen_session_switch: held[j] is the running plan's job j */
    size_t n_held;
    lf_gen_te_memo memo[LF_GEN_TE_MEMO];
    uint64_t memo_tick;
    /* the compute's patch model of the last job's device layers, kept for a next job with the same ones
     * (gen_compute.c): NULL, or a model keyed by dkeep_key (lf_gen_dev_open) holding some coefficients */
    void *dkeep;
    unsigned char dkeep_key[LF_GEN_SIG];
};

struct lf_gen {
    lf_gen_opts o;
    lf_gen_info info;
    lf_gen_times times;
    lf_sampler_config scfg;
    lf_model *m;
    lf_prompt *pr;
    lf_step_plan *sp;
    lf_tokenizer *tok;
    lf_te_family tef;
    const char *te_p1, *te_p2;
    int unet_levels;           /* resolution levels (downsamplers + 1) */
    char *prompt;              /* cleaned, trigger words appended */
    char *info_prompt;
    char *lora_hashes;
    char *ti_hashes;           /* the embeddings the prompts use (A1111 "TI hashes"), or NULL */
    lf_embeddings *emb;        /* textual-inversion embeddings (--embeddings-dir) */
    char *model_name;
    char model_hash[11];       /* A1111 short hashes (gen_output.c, through the hash cache) */
    char vae_hash[11];
    char vae_file[4096], vae_dir[4096], vae_name[256]; /* --vae (gen_vae.c); empty: the checkpoint's */
    char sampler_name[64];
    lf_gen_mem mem;
    lf_msgs warnings;          /* the checks' warnings, then the step plan's (lf_gen_info.warnings) */
    size_t n_jobs_total;
    lf_gen_progress_fn progress;
    void *progress_ctx;
    lf_gen_cancel_fn cancel;
    void *cancel_ctx;
    int interrupted;
    lf_gen_session *sess;      /* the loaded model (generate.c); m and tok are its own when set */
    int own_sess;              /* lf_gen_open's session of its own: unloaded after lf_gen_run */
    unsigned char (*aid)[LF_GEN_SIG]; /* per plan adapter: its file's identity (gen_session.c) */
    /* run state */
    lf_unet *unet;
    lf_vae *vae;
    lf_clip *te1, *te2;
    lf_cpu_backend *be;
    lf_gen_cond *cache;        /* per text-encoder set */
    size_t n_cache;
    size_t cur_set;
    /* per sampler run */
    int run_n;                 /* images in this run */
    int lat_h, lat_w;
    float *tin, *ctx, *y;         /* host: timesteps, conditioning (gen_sample.c) */
    size_t ctx_cap;
    lf_gen_dbuf dbuf[LF_GEN_DBUFS]; /* the VAE decode's buffers on a device compute (gen_compute.c) */
    /* the sampler loop on the compute (gen_sample.c): its buffers, and which conditioning ctx/y hold */
    lf_gen_dbuf sbuf[LF_GEN_SBUFS];
    size_t scond_set;
    int scond_n;               /* samples the uploaded conditioning is for; 0: none uploaded */
    lf_gen_dbuf vdbuf[LF_GEN_DBUFS]; /* the same on the VAE's own compute (sess->vae_cc), when it has one */
    /* adapters patched in the compute's memory (gen_compute.c; NULL/0: every job on the host) */
    unsigned char *host_held;  /* per plan job: 1 patched on the host, 0 on the device */
    size_t *dev_jobs, n_dev;   /* the device's plan jobs */
    lf_view *dev_view;         /* per device job: the UNet's host weight its device copy is bound to */
    void *dpatch;              /* the compute's patch model (compute.h lf_compute_patcher) */
    unsigned char dkey[LF_GEN_SIG]; /* its key: the device layers and their patches, coefficients aside */
    int dpatch_ok;             /* its layers hold what its coefficients say (no step of it failed) */
    size_t *host_list;         /* scratch: a step's host jobs */
    double t0, run_t0;
    int run_idx, runs, first_image;
    /* a group (lf_gen_open_group): its jobs on one session; a job's place in its group */
    lf_gen **kids;
    size_t n_kids, cur_kid;
    int job, image_base;       /* job index, index of its first image over the group */
};

/* Ancestral and SDE samplers draw noise per image, so each image is its own sampler run: the images of
 * one sampler run (the memory estimate and the loop both follow this). */
static inline int lf_gen_stochastic(const lf_gen *g) {
    return g->scfg.kind == LF_SAMPLER_EULER_A || g->scfg.kind == LF_SAMPLER_DPMPP_2M_SDE;
}
static inline int lf_gen_per_run(const lf_gen *g) { return lf_gen_stochastic(g) ? 1 : g->o.batch_size; }

/* gen_check.c: fill in defaulted options, then check them, the prompt's tags, the model's parts, the
 * image size and the adapters in that order, and prepare the prompts, tokenizer and output names;
 * the first failure is returned. No model weights are loaded and nothing is written. A model and
 * tokenizer already in g (a session's) are used, not opened again. */
lf_status lf_gen_check(lf_gen *g);

/* gen_session.c */
void lf_gen_session_unload(lf_gen_session *s);
/* A session of g's own around the model and tokenizer its checks opened (g->sess; g borrows them). */
lf_status lf_gen_session_adopt(lf_gen *g);
/* Load the session's UNet, VAE and text encoder(s) with what g's checks found; nothing stays loaded
 * on failure. */
lf_status lf_gen_session_load(lf_gen_session *s, const lf_gen *g);
/* g->aid: the identity of every plan adapter's file. */
lf_status lf_gen_adapter_ids(lf_gen *g);
/* Before a job: restore from W0 what the session holds patched outside sp (*restored tensors), and list
 * sp's tensors; sp NULL: everything back to W0, nothing listed. */
lf_status lf_gen_session_switch(lf_gen_session *s, const lf_step_plan *sp, size_t *restored);
/* At step t of a run whose models may hold anything (a used session, a later sampler run): recompute
 * and hand over exactly the jobs whose bytes at step t differ from what the models hold. */
lf_status lf_gen_session_apply_changed(lf_gen *g, lf_cpu_backend *be, int t, size_t *refreshed);
/* lf_gen_cond_select for a job on a shared session: the conditioning of text-encoder set `set` comes
 * from the session's memo when the same prompt, negative prompt and clip skip were encoded with the
 * same text-encoder weights (the signatures of the patches they hold) by an earlier job, and what is
 * encoded goes into the memo (LF_GEN_TE_MEMO entries, least recently used replaced). */
lf_status lf_gen_session_cond(lf_gen *g, size_t set);
/* b = a deep copy of a (b's old contents are not freed). */
lf_status lf_gen_cond_copy(const lf_text_cond *a, lf_text_cond *b);
/* Around the plan's own step t (lf_cpu_backend_step + lf_live_apply_step): done = 0 marks its jobs
 * unknown, done = 1 records what they hold now. */
lf_status lf_gen_session_mark_step(lf_gen *g, int t, int done);

/* gen_mixed.c */
/* 1 when the group's jobs can run as one batch (models on the CPU or CUDA compute, a deterministic sampler, no
 * UNet bias or norm adapters); else 0 and why. */
int lf_gen_mixed_ok(const lf_gen *grp, char *why, size_t cap);
/* The group's jobs as one batch: every image of every job in one sampler run, one UNet call per step with
 * each image's own adapters; images handed to cb in job order. The session's models end at W0. */
lf_status lf_gen_run_mixed(lf_gen *grp, lf_gen_image_fn cb, void *cbctx);

/* gen_compute.c */
/* s->cc and s->backend for o->backend on o->device: CUDA when asked (an error when it cannot be had) or, for
 * auto, when o->cuda gives one; else the CPU. */
/* "" or, when the session's UNet compute keeps 16-bit activations, a hint to add to a non-finite error */
const char *lf_gen_nonfinite_hint(const lf_gen *g);
lf_status lf_gen_compute_open(lf_gen_session *s, const lf_gen_opts *o);
void lf_gen_compute_close(lf_gen_session *s);
/* img (3, H, W) = the VAE decode of host latent lat (4, lat_h, lat_w) on the session's compute. */
lf_status lf_gen_vae_call(lf_gen *g, float *img, const float *lat);
/* The VAE tile (latent pixels) when tiling is on and an (h, w) latent needs tiles, else 0. */
int64_t lf_gen_vae_tile(const lf_gen *g, int64_t h, int64_t w, int on);
/* Give back g's backend buffers. */
void lf_gen_stage_free(lf_gen *g);
/* gen_sample.c: a job's sampler loop on the session's compute (host/sample/sampler_compute.h): the latent,
 * the UNet's input and output and the sampler's state stay in the compute's memory. lf_gen_sbuf: buffer
 * i of at least n floats (f32: stored in f32 whatever the activation type; contents lost when it grows).
 * lf_gen_sample_cond: the conditioning of the current set (N samples, CFG's unconditional first) where the
 * compute reads it, uploaded only when the set or N changes. lf_gen_sample_check: the step's model input x
 * and prediction out (tot floats each) finite, else the error of the host check check(check_ctx, ...)
 * (checked on the device, one float each moved back; the flagged array then goes to the host for it). lf_gen_sample_run: the sampler run on host latent x (tot floats; one upload,
 * one download). */
lf_status lf_gen_sbuf(lf_gen *g, int i, int64_t n, int f32, float **out);
void lf_gen_sbuf_free(lf_gen *g);
lf_status lf_gen_sample_cond(lf_gen *g, int N, const float **ctx, const float **y);
typedef lf_status (*lf_gen_check_fn)(const void *ctx, int step, const float *v, size_t n, const char *what);
lf_status lf_gen_sample_check(lf_gen *g, int step, const float *x, const float *out, int64_t tot, lf_gen_check_fn check,
                              const void *check_ctx);
lf_status lf_gen_sample_run(lf_gen *g, lf_sampler *smp, float *x, int64_t tot, lf_rng *rng, const lf_sampler_cb *cb);
/* Adapters on the device, at a job's first step: when the compute patches in its own memory (compute.h
 * patch), every UNet job whose weight the UNet holds as the checkpoint stores it goes to a patch model
 * of the compute (holding W0) and the UNet's weight is bound to the device copy; the host never patches
 * those (they stay W0 there), the other jobs (text encoders, converted weights) stay on the host
 * (g->host_held). The model is the session's kept one when its key (the device layers, their patches'
 * adapter files, modules and parameters) is this job's (retargeted to this job's step plan: the first
 * step then rewrites the layers whose coefficients differ), else a new one (the kept one freed first).
 * Nothing to do on the CPU or without UNet jobs. */
lf_status lf_gen_dev_open(lf_gen *g);
/* The device jobs to step t (from W0, those whose coefficients differ from what they hold); *n: how
 * many were rewritten. */
lf_status lf_gen_dev_step(lf_gen *g, int t, size_t *n);
/* Unbind the UNet's weights (the compute uploads W0 again on their next use) and hand the patch model to
 * the session (s->dkeep, for the next job with the same device layers and patches) or, when a step of it
 * failed, free it. */
void lf_gen_dev_close(lf_gen *g);
/* Free the session's kept patch model (the adapters change, the models or the compute go). */
void lf_gen_dev_drop(lf_gen_session *s);
/* 1 when g's UNet layers that fit are patched on the device: its session's compute has a patcher, or,
 * before a compute is open, --backend cuda was asked for (auto is decided when the device opens). */
int lf_gen_dev_patches(const lf_gen *g);

/* gen_memory.c */
/* The UNet options of the checkpoint's family (heads rule). */
lf_unet_opts lf_gen_unet_opts(const lf_gen *g);
/* Fill g->mem and refuse (LF_ERR_ARG, the estimate and its parts in the message) when the estimate is
 * over the limit and force_size is not set. Needs the step plan and the checked size. */
lf_status lf_gen_check_memory(lf_gen *g);

/* gen_cond.c */
/* g->prompt (tags removed, with --auto-trigger the adapters' trigger words appended) and
 * g->info_prompt (the prompt as given, with the same words) for the step plan's live adapters. */
lf_status lf_gen_prompts(lf_gen *g);
/* Open the embeddings directory and find, load and check the embeddings every prompt text of the plan
 * uses (their kind against the model's text encoders; widths when encoding), with their TI hashes. */
lf_status lf_gen_embeddings(lf_gen *g);
/* An empty conditioning slot for each text-encoder set of the step plan (g->cache). */
lf_status lf_gen_cond_cache_new(lf_gen *g);
void lf_gen_cond_cache_free(lf_gen *g);
/* Make set `set` the conditioning of the next denoiser calls, encoding it if it is not cached. */
lf_status lf_gen_cond_select(lf_gen *g, size_t set);

/* gen_output.c */
/* g->model_name: the checkpoint's file name without its folder and ".safetensors". */
lf_status lf_gen_model_name(lf_gen *g);
/* g->model_hash, g->vae_hash (with --vae) and g->lora_hashes ("name: hash, ..." over the distinct tag
 * names of the adapters not dropped), through the hash cache of g->o.hash_cache (lf_hash_cache.h);
 * its warnings join g->warnings. */
lf_status lf_gen_hashes(lf_gen *g);
/* Decode latent `lat` (4, lat_h, lat_w) into img (3, H, W) and rgb (H, W, 3), write the PNG with its
 * parameters when write_png is set, then hand everything to cb (may be NULL). */
lf_status lf_gen_finish_image(lf_gen *g, int index, int64_t seed, const float *lat, float *img, uint8_t *rgb,
                              double t_sample, const char *model_hash, lf_gen_image_fn cb, void *cbctx);

/* gen_vae.c */
/* --vae: what it names (file or diffusers folder) and that it holds a VAE decoder; sets vae_file,
 * vae_dir, vae_name. LF_OK without --vae. */
lf_status lf_gen_check_vae(lf_gen *g);
/* g->vae from --vae, else from the checkpoint. */
lf_status lf_gen_load_vae(const lf_gen *g, lf_vae **out);
/* The VAE's structure for the memory estimate (shapes only; a diffusers folder is loaded whole). */
lf_status lf_gen_vae_shapes(lf_gen *g, lf_vae **out);

#endif
