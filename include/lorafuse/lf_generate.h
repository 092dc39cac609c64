/* lf_generate.h: text-to-image with scheduled LoRA-family adapters (`lorafuse generate`).
 *
 * Pipeline (docs/generate.md), diffusers StableDiffusionPipeline / A1111 txt2img semantics:
 *   1. checks, before any work (lf_gen_open): sampler name, size (multiples of 8), steps, batch, seed
 *      range, model parts (UNet, VAE, text encoder(s), a vocabulary the CLIP tokenizer fits), the
 *      prompt's `<lora:...>` tags against the LoRA directory, the model and the step count
 *      (lf_step_plan_build, P9), the backend, the memory estimate against the memory available. Nothing
 *      is loaded or written when one fails. At load, every weight must be a float tensor with finite
 *      values; during sampling, a NaN or Inf in a latent stops the call at that step.
 *   2. load UNet, VAE and text encoder(s) in f32 (lf_unet.h, lf_vae.h, lf_clip.h).
 *   3. per run of the sampler: the initial latent of each image from its own generator (lf_rng.h,
 *      seed + image index as A1111), then lf_sampler_run; before each step the step plan's CPU backend
 *      rewrites the layers whose coefficients change and the loaded model takes the new weights; the
 *      text encoders run at the steps whose text-encoder set is new (conditioning cached per set).
 *      CFG: one UNet call on [uncond; cond] (both halves share the step's weights), out = u + g (c - u);
 *      cfg <= 1 runs the conditional half only (as diffusers). Deterministic samplers run the whole
 *      batch at once; ancestral / SDE samplers run one image at a time with that image's generator, so
 *      every image is reproducible from its seed alone.
 *   4. VAE decode, then 8-bit as diffusers' image processor: round(clamp(x / 2 + 0.5, 0, 1) * 255).
 *   5. PNG with the A1111 parameters chunk (lf_png.h), DIR/NNNNN-SEED.png, never overwriting.
 *
 * Prompt and negative prompt longer than one 75-token window: the one with fewer windows is padded with
 * the encoding of the empty prompt (A1111 pad_cond_uncond) so that both halves fit one UNet call.
 */
#ifndef LF_GENERATE_H
#define LF_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "lorafuse/lf_rng.h"
#include "lorafuse/lf_status.h"
#include "lorafuse/lf_types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LF_GEN_DEFAULT_STEPS 20
#define LF_GEN_DEFAULT_SAMPLER "DPM++ 2M Karras"
#define LF_GEN_DEFAULT_CFG 7.0
#define LF_GEN_DEFAULT_OUTDIR "outputs"
#define LF_GEN_MAX_SIZE 8192

/* auto (the default): CUDA when this build has it and the device opens, else the CPU (lf_gen_info.backend
 * says which and why). */
typedef enum lf_gen_backend { LF_GEN_AUTO = 0, LF_GEN_CPU, LF_GEN_CUDA } lf_gen_backend;

/* How --backend cuda / auto gets a CUDA compute (host/base/compute.h) on device `device` whose weights and
 * activations are stored as dtype (LF_F16, LF_BF16, LF_F32: --dtype, --vae-dtype), with a description of
 * the device in desc: the caller that links the device library passes lf_compute_cuda_device
 * (host/cuda/compute_cuda.h), as the lorafuse program does; NULL: this process has none (auto runs on the
 * CPU, cuda is refused). The compute's destroy releases the device too. */
struct lf_compute;
typedef lf_status (*lf_gen_cuda_fn)(int device, lf_dtype dtype, struct lf_compute **out, char *desc, size_t cap);

/* Progress report: step (1-based) of total for the sampler run covering images [first, first + n). */
typedef struct lf_gen_progress {
    int step, steps;
    int run, runs;             /* sampler run (1-based) and count */
    int first_image, n_images, total_images;
    double elapsed;            /* seconds since lf_gen_run started */
    double run_elapsed;        /* seconds since this run's first step */
} lf_gen_progress;

typedef void (*lf_gen_progress_fn)(void *ctx, const lf_gen_progress *p);

typedef struct lf_gen_opts {
    const char *model;         /* single-file checkpoint (required) */
    const char *prompt;        /* with <lora:...> tags (required) */
    const char *negative;      /* NULL: "" */
    int steps;                 /* 0: LF_GEN_DEFAULT_STEPS */
    const char *sampler;       /* NULL: LF_GEN_DEFAULT_SAMPLER (lf_sampler.h names) */
    double cfg;                /* guidance scale (lf_gen_opts_default: 7) */
    int64_t seed;              /* -1: random in [0, 2^32 - 3] (recorded); else 0 .. INT64_MAX, and image i
                                * gets seed + i, which must not pass INT64_MAX (refused up front) */
    int width, height;         /* 0: the model's default (metadata lorafuse.default_size, else 512 SD1/SD2, 1024 SDXL) */
    int batch_size, batch_count; /* 0: 1 */
    const char *lora_dir;      /* NULL: models/lora */
    int lora_dir_confine;      /* refuse symbolic links out of lora_dir (lf_lora_dir.h); 0: follow them */
    const char *lbw_presets;   /* NULL: built-in presets only */
    const char *tag_dialect;   /* how tag values are read: NULL or "lorafuse", "loractl" (lf_prompt_tags.h) */
    const char *embeddings_dir; /* textual-inversion embeddings; NULL: models/embeddings (none if missing) */
    int auto_trigger;          /* append the adapters' trigger words to the prompt */
    const char *output_dir;    /* NULL: LF_GEN_DEFAULT_OUTDIR; "" is refused */
    lf_gen_backend backend;
    int device;                /* CUDA device ordinal (--device N), 0 by default */
    lf_gen_cuda_fn cuda;       /* see lf_gen_cuda_fn; NULL: no CUDA in this process */
    lf_dtype dtype;            /* --dtype: the UNet's and text encoders' weights and activations on CUDA (LF_F16,
                                * LF_BF16, LF_F32); 0: LF_F16. The CPU backend ignores it (f32 activations). */
    lf_dtype vae_dtype;        /* --vae-dtype: the VAE's on CUDA; 0: LF_F32 (the SD VAE overflows f16) */
    lf_rng_kind rng;           /* LF_RNG_TORCH_CPU (diffusers' CPU generator) or LF_RNG_NV */
    int clip_skip;             /* A1111 clip skip (0 or 1: last layer) */
    int write_png;             /* 0: nothing is written (tests) */
    uint64_t mem_limit;        /* bytes the call may use; 0: what the system can give now (MemAvailable,
                                * cgroup v2 memory.max) */
    int force_size;            /* run even when the memory estimate is over the limit */
    const char *vae;           /* NULL: the checkpoint's VAE; else a VAE .safetensors file or diffusers vae/ folder */
    int vae_tiling;            /* decode in overlapping tiles (diffusers' tiled_decode; lf_vae_decode_tiled) of
                                * 64 latent pixels (SD1/SD2, 512 px) or 128 (SDXL, 1024 px) when the image is
                                * larger: the decode's memory is one tile's */
    const char *hash_cache;    /* NULL: lf_hash_cache_default_path() (lorafuse/lf_hash_cache.h); "": no cache */
    const struct lf_adapter_source *adapters; /* adapter files from a cache (lf_step_plan.h); NULL: opened per call */
    int batch_merged;          /* in a mixed batch (lf_gen_open_group), low-rank adapters (LoRA, LoCon) are
                                * merged into per-job weights built from W0 as for the job alone, so every
                                * image is bit for bit the image made alone (CPU backend; a patched layer
                                * runs once per distinct weight); 0: they run as unmerged per-image terms
                                * (one call per layer, within f32 rounding of the image alone). A job alone
                                * ignores it; the jobs of a group must agree on it */
} lf_gen_opts;

void lf_gen_opts_default(lf_gen_opts *o);

/* One finished image, handed to the caller's callback (pointers valid during the call). */
typedef struct lf_gen_image {
    int index;                 /* 0-based over the whole generate call (over every job of a group) */
    int job;                   /* the job it belongs to (lf_gen_open_group; 0 for lf_gen_open / lf_gen_open_in) */
    int job_index;             /* 0-based within its job: its seed is the job's seed + job_index */
    int64_t seed;
    int width, height;
    const float *latent;       /* (4, height/8, width/8), final sampler latent */
    const float *image;        /* (3, height, width) VAE output in [-1, 1], not clamped */
    const uint8_t *rgb;        /* (height, width, 3) */
    const char *file;          /* PNG written, or NULL */
    const char *parameters;    /* the A1111 infotext */
    double t_sample, t_decode, t_write; /* seconds: this image's share of its sampler run, decode, PNG */
} lf_gen_image;

typedef lf_status (*lf_gen_image_fn)(void *ctx, const lf_gen_image *img);

/* What lf_gen_open resolved. */
typedef struct lf_gen_info {
    const char *prompt;        /* cleaned prompt the encoder sees (trigger words appended) */
    const char *infotext_prompt; /* prompt as recorded in the PNG (tags kept, trigger words appended) */
    const char *sampler;       /* A1111 name */
    int steps, width, height, batch_size, batch_count;
    double cfg;
    const char *family;
    size_t n_adapters;         /* adapters not dropped */
    size_t te_encodes;         /* text-encoder runs the plan needs per sampler run */
    uint64_t mem_estimate;     /* bytes the call is expected to need at its peak (docs/generate.md "Memory") */
    uint64_t mem_limit;        /* the limit it was checked against; 0: unknown, not checked */
    const char *const *warnings; /* what the checks noticed but did not refuse (an invalid default-size
                                  * metadata, the step plan's warnings), one line each */
    size_t n_warnings;
    const char *backend;       /* what runs the models: "cpu", "cpu (auto: why not CUDA)", "cuda (device 0: ...)" */
    size_t jobs;               /* jobs of the call (lf_gen_open_group; 1 otherwise); for a group the other fields
                                * are job 0's but n_adapters and te_encodes (summed) and the memory estimate (of
                                * the whole batch when the jobs run as one) */
    int images;                /* images of the call over all its jobs */
} lf_gen_info;

/* Memory of a running call, bytes (docs/model-runtime.md "Memory"): peak_rss is the process's peak
 * resident set so far (getrusage); weights what the loaded models read (own buffers + the checkpoint's
 * mapped pages); adapter_backups the CPU backend's patched tensors (checkpoint dtype); activations the
 * runtime's replayed peak of one UNet forward or VAE decode (the larger); scratch the operators' own
 * buffers now (weight conversion, per-thread bands). */
typedef struct lf_gen_memory {
    uint64_t peak_rss, weights, adapter_backups, activations, scratch;
} lf_gen_memory;

typedef struct lf_gen lf_gen;

/* Every check; on failure nothing was loaded or written and lf_last_error() says why. */
lf_status lf_gen_open(const lf_gen_opts *o, lf_gen **out);
const lf_gen_info *lf_gen_get_info(const lf_gen *g);
void lf_gen_set_progress(lf_gen *g, lf_gen_progress_fn fn, void *ctx);
/* Load the model, sample, decode and write every image; cb (may be NULL) sees each image. */
lf_status lf_gen_run(lf_gen *g, lf_gen_image_fn cb, void *ctx);
void lf_gen_free(lf_gen *g);
/* The memory figures now (valid during lf_gen_run, e.g. from the image callback, and after it). */
void lf_gen_get_memory(const lf_gen *g, lf_gen_memory *out);

/* Resident model (lorafuse serve): the checkpoint opened and its UNet, VAE and text encoders loaded
 * once, then any number of jobs (lf_gen_open_in), one at a time. A job changes only the loaded weights
 * its adapters patch; before it starts, every tensor an earlier job patched and this one does not is
 * restored from the checkpoint's pristine bytes (W0, never by subtraction), and every tensor this one
 * patches whose bytes differ from what it holds is recomputed from W0 (the session keeps a signature of
 * the patches behind each loaded tensor). So a job's images are those of lf_gen_open + lf_gen_run with
 * the same options in a fresh process, byte for byte, whatever ran before (tests/serve/test_serve.py),
 * and a job with the same adapters as the last one rewrites nothing.
 * lf_gen_open is a job on a session of its own that loads at lf_gen_run and unloads when it ends. */
typedef struct lf_gen_session lf_gen_session;

/* Open `model` and load it (every check of lf_gen_open on the model's parts). */
lf_status lf_gen_session_open(const char *model, lf_gen_backend backend, int device, lf_gen_cuda_fn cuda,
                              lf_gen_session **out);
/* The same with the precision of a CUDA compute (lf_gen_opts.dtype, .vae_dtype; 0: the defaults). */
lf_status lf_gen_session_open_prec(const char *model, lf_gen_backend backend, int device, lf_dtype dtype,
                                   lf_dtype vae_dtype, lf_gen_cuda_fn cuda, lf_gen_session **out);
void lf_gen_session_free(lf_gen_session *s);
/* What the session holds: the checkpoint's path and family name, and its A1111 model hash. */
const char *lf_gen_session_model(const lf_gen_session *s);
const char *lf_gen_session_family(const lf_gen_session *s);
const char *lf_gen_session_hash(const lf_gen_session *s);
/* Bytes of UNet and text-encoder weights the session holds in its own memory: the rest is read in place
 * from the checkpoint's mapping. A job's adapters add their patched tensors while it runs (copies kept
 * when it ends); a later job without them gives those tensors back to the mapping. */
uint64_t lf_gen_session_owned_bytes(const lf_gen_session *s);
/* With LF_COMPUTE_PROFILE=1 in the environment when the model was loaded: a table of the job's compute
 * ops by kind (calls, GFLOP, GB, seconds with a sync around each op, achieved GFLOP/s and GB/s; the text
 * encoders, UNet and VAE of every job so far), else NULL. Valid until the next call or lf_gen_free. */
const char *lf_gen_profile(const lf_gen *g);
/* The compute the session's models run on (lf_gen_info.backend). */
const char *lf_gen_session_backend(const lf_gen_session *s);

/* A job on the session: the checks of lf_gen_open against the loaded model (o->model is ignored: the
 * session's), then lf_gen_run samples with the resident weights. The session must outlive the job and
 * run one job at a time. The memory estimate is not checked against the system (the weights are
 * already loaded; the caller bounds sizes). */
lf_status lf_gen_open_in(lf_gen_session *s, const lf_gen_opts *o, lf_gen **out);

/* Several jobs in one call (docs/generate.md "Mixed batches"): jobs[0..n) must agree on everything that
 * shapes the sampler's batch (lf_gen_groupable: model, size, steps, sampler, CFG scale, clip skip, RNG,
 * VAE and VAE tiling, backend and device, batch_merged); they may differ in prompt, negative prompt and their adapter
 * tags, seed, batch size and count, LoRA directory and output directory. Each job's images are those of
 * the same job run alone (its seeds follow A1111: image i of a job gets the job's seed + i; seed -1 is
 * drawn per job), and lf_gen_run hands every image to the callback with its own job, seed and
 * parameters text. s: a loaded session (lf_gen_open_in's rules) or NULL for a session of the call's own,
 * loaded at lf_gen_run (lf_gen_open's rules; the memory check is job 0's, then, when the jobs run as one
 * batch, job 0's for a batch of every image of the group). Every job's checks run before any
 * work; a refusal names the job ("job 2: ...") and, for a mismatch, the field. lf_gen_get_info gives job
 * 0's summary with jobs and images over the call; lf_gen_get_job_info each job's own. */
lf_status lf_gen_open_group(lf_gen_session *s, const lf_gen_opts *jobs, size_t n, lf_gen **out);
/* 1 when a and b may run in one call (defaults resolved as lf_gen_open does: steps 0 = 20, sampler NULL
 * = the default, seed and batch fields ignored); else 0 with the first differing field and both values
 * in why (cap bytes, may be NULL), e.g. "steps: 20 vs 30". Sizes left 0 match only sizes left 0 (the
 * model's default is resolved at open, where lf_gen_open_group compares the resolved sizes). */
int lf_gen_groupable(const lf_gen_opts *a, const lf_gen_opts *b, char *why, size_t cap);
const lf_gen_info *lf_gen_get_job_info(const lf_gen *g, size_t job);

/* Stop a running lf_gen_run early: fn (called before every sampler step and every image, from the
 * thread running the job) returns nonzero to stop. lf_gen_run then returns LF_OK with the images
 * finished before (lf_gen_interrupted says it stopped early). */
typedef int (*lf_gen_cancel_fn)(void *ctx);
void lf_gen_set_cancel(lf_gen *g, lf_gen_cancel_fn fn, void *ctx);
int lf_gen_interrupted(const lf_gen *g);

/* Seconds spent so far in loading, text encoding, weight updates (plan + refresh), UNet, decode.
 * weight_updates: loaded tensors rewritten (restores included); device_updates: of those, UNet layers
 * the device rewrote in its own memory (--backend cuda; never uploaded again). */
typedef struct lf_gen_times {
    double load, encode, weights, unet, decode, write;
    size_t unet_calls, te_runs, weight_updates, device_updates;
    double unet_extra;         /* of unet: a mixed batch's per-image adapters (low-rank terms, split layers) */
    size_t segmented_layers;   /* a mixed batch's Linear layers whose low-rank terms ran as one segmented op
                                  (the CUDA compute's kernels), counted per UNet call */
    size_t device_kept;        /* 1: the UNet's device patch model was the session's, kept from an earlier job
                                  with the same adapters (W0 and factors not uploaded again); 0 otherwise */
} lf_gen_times;
const lf_gen_times *lf_gen_get_times(const lf_gen *g);

#ifdef __cplusplus
}
#endif
#endif
