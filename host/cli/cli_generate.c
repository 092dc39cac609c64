/* cli_generate.c: `lorafuse generate`, text-to-image with scheduled LoRA tags (lf_generate.h).
 *
 *   lorafuse generate --model PATH --prompt TEXT [--negative TEXT] [--steps N] [--sampler NAME]
 *                     [--cfg X] [--seed N] [--width W --height H] [--batch-size B] [--batch-count C]
 *                     [--lora-dir DIR] [--auto-trigger] [--output-dir DIR] [--vae PATH] [--vae-tiling]
 *                     [--backend auto|cpu|cuda] [--device N] [--dtype f16|bf16|f32] [--vae-dtype f32|f16|bf16]
 *                     [--rng cpu|nv] [--clip-skip N] [--lbw-presets FILE] [--hash-cache FILE] [--quiet]
 *                     [--json] [--tag-dialect lorafuse|loractl] [--embeddings-dir DIR]
 *                     [--memory-limit MIB] [--force-size] [--allow-symlinks-out | --no-symlinks-out]
 *                     [--prompts-file FILE [--batch-lora merged|unmerged]]
 * (usage and --help text: lf_generate_usage_text, lf_generate_help_text; README "generate" shows both)
 *
 * Memory: the call's estimate (lf_gen_info.mem_estimate) must fit --memory-limit, by default the memory
 * the system can give now; --force-size runs anyway. LoRA directory: symbolic links out of it are
 * followed (--allow-symlinks-out, the default, as A1111 and SD.Next) or refused (--no-symlinks-out).
 * Progress goes to stderr: a bar redrawn in place when stderr is a terminal, one plain line per step
 * otherwise ("step 3/20, 2.41 it/s, elapsed 1.2 s, ETA 7.0 s"); --quiet prints nothing but errors.
 * Each image prints its file name on stdout, or with --json one JSON object per line:
 *   {"file", "seed", "index", "width", "height", "steps", "sampler", "cfg",
 *    "timings": {"sample", "decode", "write"},  (seconds; sample = this image's share of its run)
 *    "memory": {"peak_rss", "weights", "adapter_backups", "activations", "scratch"}}  (bytes, lf_gen_memory)
 * --prompts-file FILE (instead of --prompt): one prompt with its own tags per line (blank lines skipped),
 * run in groups of up to --batch-size lines on one loaded model (lf_gen_open_group: one UNet call per step
 * for the whole group on the CPU); line j (0-based) gets seed S + j * C (C = --batch-count images per
 * line, image i of the line S + j * C + i; S = --seed, drawn once when -1), as A1111's consecutive seeds;
 * --json adds "line" (1-based). All lines share every other option.
 * Exit status: 0 success, 1 failure (nothing is loaded or written when a check fails), 2 usage.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>

#include "cli.h"
#include "host/cuda/compute_cuda.h"
#include "host/base/number.h"
#include "host/base/text.h"
#include "host/base/util.h"
#include "lorafuse/lf_generate.h"
#include "lorafuse/lf_step_plan.h"

typedef struct {
    lf_gen_opts o;
    int quiet, json;
    const char *prompts_file;
} lf_generate_args;

static const char lf_generate_usage_text[] =
    "usage: lorafuse generate --model PATH --prompt TEXT [--negative TEXT] [--steps N] [--sampler NAME]\n"
    "                         [--cfg X] [--seed N] [--width W --height H] [--batch-size B] [--batch-count C]\n"
    "                         [--lora-dir DIR] [--auto-trigger] [--output-dir DIR] [--vae PATH] [--vae-tiling]\n"
    "                         [--backend auto|cpu|cuda] [--device N] [--dtype f16|bf16|f32]\n"
    "                         [--vae-dtype f32|f16|bf16] [--rng cpu|nv] [--clip-skip N]\n"
    "                         [--lbw-presets FILE] [--hash-cache FILE] [--quiet]\n"
    "                         [--json] [--tag-dialect lorafuse|loractl] [--embeddings-dir DIR]\n"
    "                         [--memory-limit MIB] [--force-size] [--allow-symlinks-out | --no-symlinks-out]\n"
    "                         [--prompts-file FILE [--batch-lora merged|unmerged]]\n";

static const char lf_generate_help_text[] =
    "Text-to-image with scheduled <lora:...> tags; PNGs named NNNNN-SEED.png with A1111's parameters.\n"
    "defaults: 20 steps, sampler \"" LF_GEN_DEFAULT_SAMPLER "\", CFG 7, random seed (-1), the model's size\n"
    "(512x512 SD1.x/SD2.x, 1024x1024 SDXL, or its lorafuse.default_size), LoRA dir \"models/lora\",\n"
    "output dir \"" LF_GEN_DEFAULT_OUTDIR "\" (created if missing), the checkpoint's own VAE, rng cpu.\n"
    "  --vae PATH          a VAE to decode with instead of the checkpoint's: a .safetensors file or a\n"
    "                      diffusers vae/ folder (recorded as \"VAE hash\" and \"VAE\" in the parameters)\n"
    "  --vae-tiling        decode images larger than 512 px (SDXL: 1024) in overlapping tiles, as diffusers'\n"
    "                      enable_vae_tiling: the decode's memory is one tile's; seams are blended\n"
    "  --hash-cache FILE   the SHA-256 cache of model and LoRA files (default $LF_HASH_CACHE, else\n"
    "                      $XDG_CACHE_HOME/lorafuse/hashes.json or ~/.cache/lorafuse/hashes.json)\n"
    "  --tag-dialect D     how schedules in <lora:...> tags are read: lorafuse (default) or loractl\n"
    "                      (docs/prompt-tags.md)\n"
    "  --embeddings-dir D  textual-inversion embeddings used by name in prompts (default\n"
    "                      \"models/embeddings\")\n"
    "  --backend B         what runs the models: auto (default: CUDA when a device opens, else the\n"
    "                      CPU; the summary line says which and why), cpu, or cuda; --device N picks the GPU\n"
    "  --dtype T           on CUDA, the UNet's and text encoders' weights and activations: f16 (default),\n"
    "                      bf16 (f32's range: for models that overflow f16) or f32 (reference); sums are f32\n"
    "  --vae-dtype T       on CUDA, the VAE's: f32 (default: the SD VAE overflows f16), f16 (an fp16-fix\n"
    "                      VAE) or bf16. The CPU backend ignores both (f32 throughout)\n"
    "  --memory-limit MIB  refuse a call whose memory estimate is larger (default: what is available);\n"
    "                      --force-size runs anyway\n"
    "  --prompts-file FILE instead of --prompt: one prompt with its own <lora:...> tags per line, run in\n"
    "                      groups of --batch-size lines as one batch (each image equal to its line run\n"
    "                      alone); line j gets seed + j x --batch-count\n"
    "  --batch-lora M      how such a batch runs LoRAs: unmerged (default: per-image terms, one call per\n"
    "                      layer, within f32 rounding of the line alone) or merged (weights of each line's\n"
    "                      own, bit for bit the line alone; a patched layer runs once per distinct weight)\n"
    "  --quiet             only errors on stderr;  --json  one JSON object per image on stdout\n"
    "example:\n"
    "  lorafuse generate --model models/sd15-mini.safetensors --steps 8 --seed 42 \\\n"
    "      --prompt 'a house <lora:mini_lora:te=0.5:unet=0.3@0,1@4>' --output-dir out\n";

enum {
    G_MODEL, G_PROMPT, G_NEGATIVE, G_SAMPLER, G_LORA_DIR, G_LBW, G_OUTDIR, G_STEPS, G_WIDTH, G_HEIGHT, G_BSIZE,
    G_BCOUNT, G_CLIPSKIP, G_SEED, G_CFG, G_BACKEND, G_DEVICE, G_RNG, G_MEMLIMIT, G_FORCESIZE, G_SYMOUT, G_NOSYMOUT,
    G_AUTOTRIG, G_QUIET, G_JSON, G_VAE, G_HASHCACHE, G_DIALECT, G_EMBDIR, G_VAETILE, G_PROMPTS, G_BATCH_LORA,
    G_DTYPE, G_VAEDTYPE
};

static const lf_cli_opt lf_generate_cli_opts[] = {
    [G_MODEL] = {"model", 1, 0},         [G_PROMPT] = {"prompt", 1, 0},       [G_NEGATIVE] = {"negative", 1, 0},
    [G_SAMPLER] = {"sampler", 1, 0},     [G_LORA_DIR] = {"lora-dir", 1, 0},   [G_LBW] = {"lbw-presets", 1, 0},
    [G_OUTDIR] = {"output-dir", 1, 0},   [G_STEPS] = {"steps", 1, 0},         [G_WIDTH] = {"width", 1, 0},
    [G_HEIGHT] = {"height", 1, 0},       [G_BSIZE] = {"batch-size", 1, 0},    [G_BCOUNT] = {"batch-count", 1, 0},
    [G_CLIPSKIP] = {"clip-skip", 1, 0},  [G_SEED] = {"seed", 1, 0},           [G_CFG] = {"cfg", 1, 0},
    [G_BACKEND] = {"backend", 1, 0}, [G_DEVICE] = {"device", 1, 0},     [G_RNG] = {"rng", 1, 0},             [G_MEMLIMIT] = {"memory-limit", 1, 0},
    [G_FORCESIZE] = {"force-size", 0, 0}, [G_SYMOUT] = {"allow-symlinks-out", 0, 0},
    [G_NOSYMOUT] = {"no-symlinks-out", 0, 0}, [G_AUTOTRIG] = {"auto-trigger", 0, 0}, [G_QUIET] = {"quiet", 0, 0},
    [G_JSON] = {"json", 0, 0},           [G_VAE] = {"vae", 1, 0},             [G_HASHCACHE] = {"hash-cache", 1, 0},
    [G_DIALECT] = {"tag-dialect", 1, 0}, [G_EMBDIR] = {"embeddings-dir", 1, 0},
    [G_VAETILE] = {"vae-tiling", 0, 0},  [G_PROMPTS] = {"prompts-file", 1, 0},
    [G_BATCH_LORA] = {"batch-lora", 1, 0}, [G_DTYPE] = {"dtype", 1, 0}, [G_VAEDTYPE] = {"vae-dtype", 1, 0},
    {NULL, 0, 0}};

/* One option's value into a->o; 0 after a message when it is bad. */
static int lf_generate_opt(lf_generate_args *a, int o, const char *v) {
    long long n;
    const char *opt = NULL;
    switch (o) {
    case G_MODEL: a->o.model = v; return 1;
    case G_PROMPT: a->o.prompt = v; return 1;
    case G_PROMPTS: a->prompts_file = v; return 1;
    case G_NEGATIVE: a->o.negative = v; return 1;
    case G_SAMPLER: a->o.sampler = v; return 1;
    case G_LORA_DIR: a->o.lora_dir = v; return 1;
    case G_LBW: a->o.lbw_presets = v; return 1;
    case G_OUTDIR: a->o.output_dir = v; return 1;
    case G_VAE: a->o.vae = v; return 1;
    case G_VAETILE: a->o.vae_tiling = 1; return 1;
    case G_HASHCACHE: a->o.hash_cache = v; return 1;
    case G_DIALECT: a->o.tag_dialect = v; return 1;
    case G_EMBDIR: a->o.embeddings_dir = v; return 1;
    case G_STEPS:
        if (!lf_cli_int("generate", "--steps", v, 1, LF_STEPS_MAX, &n)) return 0;
        a->o.steps = (int)n;
        return 1;
    case G_WIDTH:
    case G_HEIGHT:
        opt = o == G_WIDTH ? "--width" : "--height";
        if (!lf_cli_int("generate", opt, v, 8, LF_GEN_MAX_SIZE, &n)) return 0;
        *(o == G_WIDTH ? &a->o.width : &a->o.height) = (int)n;
        return 1;
    case G_BSIZE:
        if (!lf_cli_int("generate", "--batch-size", v, 1, 64, &n)) return 0;
        a->o.batch_size = (int)n;
        return 1;
    case G_BCOUNT:
        if (!lf_cli_int("generate", "--batch-count", v, 1, 10000, &n)) return 0;
        a->o.batch_count = (int)n;
        return 1;
    case G_CLIPSKIP:
        if (!lf_cli_int("generate", "--clip-skip", v, 1, 12, &n)) return 0;
        a->o.clip_skip = (int)n;
        return 1;
    case G_SEED:
        if (lf_num_parse_int(v, strlen(v), -1, LLONG_MAX, &n) != LF_NUM_OK)
            return lf_cli_bad_choice("generate", "--seed", v, "-1 for random, or 0 and up");
        a->o.seed = n;
        return 1;
    case G_CFG: return lf_cli_num("generate", "--cfg", v, 0, 100, &a->o.cfg);
    case G_BACKEND: return lf_cli_backend("generate", v, &a->o.backend);
    case G_DEVICE: return lf_cli_device("generate", v, &a->o.device);
    case G_DTYPE: return lf_cli_dtype("generate", "--dtype", v, &a->o.dtype);
    case G_VAEDTYPE: return lf_cli_dtype("generate", "--vae-dtype", v, &a->o.vae_dtype);
    case G_BATCH_LORA: return lf_cli_batch_lora("generate", v, &a->o.batch_merged);
    case G_RNG: return lf_rng_kind_parse(v, &a->o.rng) == LF_OK || lf_cli_bad_choice("generate", "--rng", v, "cpu or nv");
    case G_MEMLIMIT:
        if (!lf_cli_int("generate", "--memory-limit", v, 1, 1L << 30, &n)) return 0; /* MiB, up to 1 PiB */
        a->o.mem_limit = (uint64_t)n << 20;
        return 1;
    case G_FORCESIZE: a->o.force_size = 1; return 1;
    case G_SYMOUT: a->o.lora_dir_confine = 0; return 1;
    case G_NOSYMOUT: a->o.lora_dir_confine = 1; return 1;
    case G_AUTOTRIG: a->o.auto_trigger = 1; return 1;
    case G_QUIET: a->quiet = 1; return 1;
    case G_JSON: a->json = 1; return 1;
    default: return 0;
    }
}

/* 1: run; 0: exit with *rc (0 after --help, 2 after a usage error). */
static int lf_generate_parse_args(int argc, char **argv, lf_generate_args *a, int *rc) {
    memset(a, 0, sizeof *a);
    lf_gen_opts_default(&a->o);
    a->o.cuda = lf_compute_cuda_device; /* --backend cuda / auto */
    lf_cli_parser p;
    lf_cli_parser_init(&p, "generate", lf_generate_usage_text, lf_generate_help_text, lf_generate_cli_opts, argc, argv);
    int o, n;
    char *v, **rest;
    while ((o = lf_cli_next(&p, &v)) >= 0 && lf_generate_opt(a, o, v)) {
    }
    if ((*rc = lf_cli_finish(&p, o < 0 ? o : LF_CLI_BAD, 0, &rest, &n)) >= 0) return 0;
    if (!a->o.model || (!a->o.prompt && !a->prompts_file))
        fprintf(stderr, "lorafuse generate: --model and --prompt are required\n");
    else if (a->o.prompt && a->prompts_file)
        fprintf(stderr, "lorafuse generate: give --prompt or --prompts-file, not both\n");
    else if ((a->o.width != 0) != (a->o.height != 0))
        fprintf(stderr, "lorafuse generate: give --width and --height together\n");
    else
        return 1;
    *rc = lf_cli_bad_usage(&p);
    return 0;
}

typedef struct {
    int tty, quiet, json;
    int line_open;
    const lf_gen *g;
    const int *lines;          /* --prompts-file: the 1-based line of each job of the group (NULL: no file) */
    int index_base;            /* images of the earlier groups */
} lf_gen_ui;

static void lf_gen_progress_cb(void *ctx, const lf_gen_progress *p) {
    lf_gen_ui *ui = ctx;
    if (ui->quiet) return;
    double rate = p->step > 0 && p->run_elapsed > 0 ? p->step / p->run_elapsed : 0;
    double eta_run = rate > 0 ? (p->steps - p->step) / rate : 0;
    double eta = eta_run + (rate > 0 ? (double)(p->runs - p->run) * p->steps / rate : 0);
    char img[64];
    if (p->n_images > 1) snprintf(img, sizeof img, "images %d-%d/%d", p->first_image + 1, p->first_image + p->n_images, p->total_images);
    else snprintf(img, sizeof img, "image %d/%d", p->first_image + 1, p->total_images);
    if (ui->tty) {
        int width = 30, fill = p->steps ? p->step * width / p->steps : 0;
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r%s [%s] step %d/%d  %.2f it/s  elapsed %.1fs  ETA %.1fs ", img, bar, p->step, p->steps, rate,
                p->elapsed, eta);
        ui->line_open = p->step < p->steps;
        if (!ui->line_open) fputc('\n', stderr);
        fflush(stderr);
    } else if (p->step > 0) {
        fprintf(stderr, "%s: step %d/%d, %.2f it/s, elapsed %.1f s, ETA %.1f s\n", img, p->step, p->steps, rate,
                p->elapsed, eta);
    }
}

static lf_status lf_gen_image_cb(void *ctx, const lf_gen_image *im) {
    lf_gen_ui *ui = ctx;
    if (ui->json) {
        cJSON *o = cJSON_CreateObject();
        if (!o) return lf_err(LF_ERR_NOMEM, "out of memory");
        if (im->file) cJSON_AddStringToObject(o, "file", im->file);
        else cJSON_AddNullToObject(o, "file");
        char seed[24]; /* exact: a double holds integers only up to 2^53 */
        snprintf(seed, sizeof seed, "%lld", (long long)im->seed);
        cJSON_AddRawToObject(o, "seed", seed);
        cJSON_AddNumberToObject(o, "index", ui->index_base + im->index);
        if (ui->lines) cJSON_AddNumberToObject(o, "line", ui->lines[im->job]);
        cJSON_AddNumberToObject(o, "width", im->width);
        cJSON_AddNumberToObject(o, "height", im->height);
        cJSON *t = cJSON_AddObjectToObject(o, "timings");
        cJSON_AddNumberToObject(t, "sample", im->t_sample);
        cJSON_AddNumberToObject(t, "decode", im->t_decode);
        cJSON_AddNumberToObject(t, "write", im->t_write);
        lf_gen_memory mem;
        lf_gen_get_memory(ui->g, &mem);
        cJSON *mo = cJSON_AddObjectToObject(o, "memory");
        cJSON_AddNumberToObject(mo, "peak_rss", (double)mem.peak_rss);
        cJSON_AddNumberToObject(mo, "weights", (double)mem.weights);
        cJSON_AddNumberToObject(mo, "adapter_backups", (double)mem.adapter_backups);
        cJSON_AddNumberToObject(mo, "activations", (double)mem.activations);
        cJSON_AddNumberToObject(mo, "scratch", (double)mem.scratch);
        char *s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!s) return lf_err(LF_ERR_NOMEM, "out of memory");
        puts(s);
        free(s);
    } else if (im->file) {
        puts(im->file);
    }
    fflush(stdout);
    return LF_OK;
}

/* Print the summary line and the warnings of a call. */
static void lf_gen_summary(const lf_gen *g, const char *what) {
    const lf_gen_info *in = lf_gen_get_info(g);
    for (size_t i = 0; i < in->n_warnings; i++) fprintf(stderr, "lorafuse generate: warning: %s\n", in->warnings[i]);
    fprintf(stderr,
            "lorafuse generate: %s%s, %dx%d, %d steps, %s, CFG %g, %d image(s), %zu adapter(s), memory ~%.2f GiB, "
            "backend %s\n",
            what, in->family, in->width, in->height, in->steps, in->sampler, in->cfg, in->images, in->n_adapters,
            (double)in->mem_estimate / (1 << 30), in->backend);
}

static void lf_gen_print_times(const lf_gen *g) {
    const lf_gen_times *t = lf_gen_get_times(g);
    fprintf(stderr,
            "lorafuse generate: load %.2f s, text encoders %.2f s (%zu runs), weight updates %.2f s (%zu), "
            "UNet %.2f s (%zu calls), VAE %.2f s, PNG %.2f s\n",
            t->load, t->encode, t->te_runs, t->weights, t->weight_updates, t->unet, t->unet_calls, t->decode, t->write);
}

/* --prompts-file: the lines in groups of --batch-size on one loaded model (a session of the file's own
 * without --vae, which a session would refuse: then each group loads its own). */
static int lf_generate_file(lf_generate_args *a) {
    char *text = NULL;
    size_t len = 0;
    if (lf_read_file(a->prompts_file, "prompts file", 1 << 24, &text, &len) != LF_OK) {
        lf_err_escape(LF_OK);
        fprintf(stderr, "lorafuse generate: %s\n", lf_last_error());
        return 1;
    }
    size_t cap = 16, n = 0;
    char **lines = malloc(cap * sizeof *lines);
    int *lineno = malloc(cap * sizeof *lineno);
    int no = 0;
    for (char *p = text; p && *p && lines && lineno;) {
        char *e = strchr(p, '\n');
        if (e) *e = '\0';
        no++;
        size_t l = strlen(p);
        if (l && p[l - 1] == '\r') p[--l] = '\0';
        size_t sp = strspn(p, " \t");
        if (p[sp]) {
            if (n == cap) {
                cap *= 2;
                char **nl = realloc(lines, cap * sizeof *lines);
                int *nn = nl ? realloc(lineno, cap * sizeof *lineno) : NULL;
                if (nl) lines = nl;
                if (!nn) break;
                lineno = nn;
            }
            lines[n] = p;
            lineno[n++] = no;
        }
        p = e ? e + 1 : NULL;
    }
    int rc = 0;
    if (!lines || !lineno) {
        fprintf(stderr, "lorafuse generate: out of memory\n");
        rc = 1;
    } else if (!n) {
        fprintf(stderr, "lorafuse generate: %s holds no prompt\n", a->prompts_file);
        rc = 1;
    }
    /* A1111: consecutive seeds from one base over the whole file */
    int64_t seed = a->o.seed;
    if (!rc && seed == -1) {
        lf_rng r;
        if (lf_rng_init(&r, a->o.rng, -1) == LF_OK) seed = r.seed;
    }
    int per = a->o.batch_count, group = a->o.batch_size;
    if (!rc && seed > INT64_MAX - (int64_t)n * per) {
        fprintf(stderr, "lorafuse generate: --seed %lld leaves no room for %zu lines of %d image(s)\n", (long long)seed, n,
                per);
        rc = 1;
    }
    lf_gen_session *ss = NULL;
    if (!rc && !a->o.vae && lf_gen_session_open_prec(a->o.model, a->o.backend, a->o.device, a->o.dtype, a->o.vae_dtype, a->o.cuda, &ss) != LF_OK) {
        lf_err_escape(LF_OK);
        fprintf(stderr, "lorafuse generate: %s\n", lf_last_error());
        rc = 1;
    }
    lf_gen_opts *jobs = rc ? NULL : malloc((size_t)group * sizeof *jobs);
    if (!rc && !jobs) rc = 1;
    for (size_t j0 = 0; j0 < n && !rc; j0 += (size_t)group) {
        size_t k = n - j0 < (size_t)group ? n - j0 : (size_t)group;
        for (size_t i = 0; i < k; i++) {
            jobs[i] = a->o;
            jobs[i].prompt = lines[j0 + i];
            jobs[i].batch_size = 1;
            jobs[i].seed = seed + (int64_t)(j0 + i) * per;
        }
        lf_gen *g = NULL;
        if (lf_gen_open_group(ss, jobs, k, &g) != LF_OK) {
            lf_err_escape(LF_OK);
            fprintf(stderr, "lorafuse generate: %s line %d: %s\n", a->prompts_file, lineno[j0], lf_last_error());
            rc = 1;
            break;
        }
        lf_gen_ui ui = {isatty(2), a->quiet, a->json, 0, g, lineno + j0, (int)j0 * per};
        if (!a->quiet) {
            char what[64];
            snprintf(what, sizeof what, "lines %d-%d: ", lineno[j0], lineno[j0 + k - 1]);
            lf_gen_summary(g, what);
        }
        lf_gen_set_progress(g, lf_gen_progress_cb, &ui);
        lf_status st = lf_gen_run(g, lf_gen_image_cb, &ui);
        if (ui.line_open) fputc('\n', stderr);
        if (st != LF_OK) {
            lf_err_escape(LF_OK);
            fprintf(stderr, "lorafuse generate: %s\n", lf_last_error());
            rc = 1;
        } else if (!a->quiet) {
            lf_gen_print_times(g);
        }
        lf_gen_free(g);
    }
    free(jobs);
    lf_gen_session_free(ss);
    free(lines);
    free(lineno);
    free(text);
    return rc;
}

int lf_cli_generate(int argc, char **argv) {
    lf_generate_args a;
    int rc;
    if (!lf_generate_parse_args(argc, argv, &a, &rc)) return rc;
    if (a.prompts_file) return lf_generate_file(&a);
    lf_gen *g = NULL;
    if (lf_gen_open(&a.o, &g) != LF_OK) {
        lf_err_escape(LF_OK); /* library messages may quote paths and names as given */
        fprintf(stderr, "lorafuse generate: %s\n", lf_last_error());
        return 1;
    }
    lf_gen_ui ui = {isatty(2), a.quiet, a.json, 0, g, NULL, 0};
    if (!a.quiet) lf_gen_summary(g, "");
    lf_gen_set_progress(g, lf_gen_progress_cb, &ui);
    lf_status st = lf_gen_run(g, lf_gen_image_cb, &ui);
    if (ui.line_open) fputc('\n', stderr);
    if (st != LF_OK) {
        lf_err_escape(LF_OK); /* library messages may quote paths and names as given */
        fprintf(stderr, "lorafuse generate: %s\n", lf_last_error());
        lf_gen_free(g);
        return 1;
    }
    const char *prof = lf_gen_profile(g);
    if (prof) fprintf(stderr, "lorafuse generate: compute profile (LF_COMPUTE_PROFILE=1):\n%s", prof);
    if (!a.quiet) lf_gen_print_times(g);
    lf_gen_free(g);
    return 0;
}
