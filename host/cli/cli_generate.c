/* cli_generate.c: `lorafuse generate`, text-to-image with scheduled LoRA tags (lf_generate.h).
 *
 *   lorafuse generate --model PATH --prompt TEXT [--negative TEXT] [--steps N] [--sampler NAME]
 *                     [--cfg X] [--seed N] [--width W --height H] [--batch-size B] [--batch-count C]
 *                     [--lora-dir DIR] [--auto-trigger] [--output-dir DIR] [--backend cpu|cuda]
 *                     [--rng cpu|nv] [--clip-skip N] [--lbw-presets FILE] [--quiet] [--json]
 *                     [--memory-limit MIB] [--force-size] [--allow-symlinks-out | --no-symlinks-out]
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
 * Exit status: 0 success, 1 failure (nothing is loaded or written when a check fails), 2 usage.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>

#include "cli.h"
#include "host/base/number.h"
#include "host/base/text.h"
#include "lorafuse/lf_generate.h"
#include "lorafuse/lf_step_plan.h"

typedef struct {
    lf_gen_opts o;
    int quiet, json;
} lf_generate_args;

static int lf_generate_usage(void) {
    fputs("usage: lorafuse generate --model PATH --prompt TEXT [--negative TEXT] [--steps N] [--sampler NAME]\n"
          "                         [--cfg X] [--seed N] [--width W --height H] [--batch-size B] [--batch-count C]\n"
          "                         [--lora-dir DIR] [--auto-trigger] [--output-dir DIR] [--backend cpu|cuda]\n"
          "                         [--rng cpu|nv] [--clip-skip N] [--lbw-presets FILE] [--quiet] [--json]\n"
          "                         [--memory-limit MIB] [--force-size] [--allow-symlinks-out | --no-symlinks-out]\n"
          "defaults: 20 steps, sampler \"" LF_GEN_DEFAULT_SAMPLER "\", CFG 7, random seed, the model's size\n"
          "(512x512 SD1.x/SD2.x, 1024x1024 SDXL, 256x256 for models/sd15-mini), output dir \"" LF_GEN_DEFAULT_OUTDIR "\"\n",
          stderr);
    return 2;
}

static int lf_generate_parse_args(int argc, char **argv, lf_generate_args *a) {
    memset(a, 0, sizeof *a);
    lf_gen_opts_default(&a->o);
    for (int i = 2; i < argc; i++) {
        const char *s = argv[i];
        int has = i + 1 < argc;
        long long v;
        if (!strcmp(s, "--model") && has) a->o.model = argv[++i];
        else if (!strcmp(s, "--prompt") && has) a->o.prompt = argv[++i];
        else if (!strcmp(s, "--negative") && has) a->o.negative = argv[++i];
        else if (!strcmp(s, "--sampler") && has) a->o.sampler = argv[++i];
        else if (!strcmp(s, "--lora-dir") && has) a->o.lora_dir = argv[++i];
        else if (!strcmp(s, "--lbw-presets") && has) a->o.lbw_presets = argv[++i];
        else if (!strcmp(s, "--output-dir") && has) a->o.output_dir = argv[++i];
        else if (!strcmp(s, "--steps") && has) {
            if (!lf_cli_int("generate", s, argv[++i], 1, LF_STEPS_MAX, &v)) return 0;
            a->o.steps = (int)v;
        } else if (!strcmp(s, "--width") && has) {
            if (!lf_cli_int("generate", s, argv[++i], 8, LF_GEN_MAX_SIZE, &v)) return 0;
            a->o.width = (int)v;
        } else if (!strcmp(s, "--height") && has) {
            if (!lf_cli_int("generate", s, argv[++i], 8, LF_GEN_MAX_SIZE, &v)) return 0;
            a->o.height = (int)v;
        } else if (!strcmp(s, "--batch-size") && has) {
            if (!lf_cli_int("generate", s, argv[++i], 1, 64, &v)) return 0;
            a->o.batch_size = (int)v;
        } else if (!strcmp(s, "--batch-count") && has) {
            if (!lf_cli_int("generate", s, argv[++i], 1, 10000, &v)) return 0;
            a->o.batch_count = (int)v;
        } else if (!strcmp(s, "--clip-skip") && has) {
            if (!lf_cli_int("generate", s, argv[++i], 1, 12, &v)) return 0;
            a->o.clip_skip = (int)v;
        } else if (!strcmp(s, "--seed") && has) {
            long long sd;
            const char *sv = argv[++i];
            if (lf_num_parse_int(sv, strlen(sv), -1, LLONG_MAX, &sd) != LF_NUM_OK) {
                char q[LF_ESC_PART];
                fprintf(stderr, "lorafuse generate: bad --seed '%s' (-1 for random, or 0 and up)\n",
                        lf_esc(q, sizeof q, sv, strlen(sv)));
                return 0;
            }
            a->o.seed = sd;
        } else if (!strcmp(s, "--cfg") && has) {
            double d;
            if (!lf_cli_num("generate", s, argv[++i], 0, 100, &d)) return 0;
            a->o.cfg = d;
        } else if (!strcmp(s, "--backend") && has) {
            const char *b = argv[++i];
            if (!strcmp(b, "cpu")) a->o.backend = LF_GEN_CPU;
            else if (!strcmp(b, "cuda")) a->o.backend = LF_GEN_CUDA;
            else {
                char q[LF_ESC_PART];
                fprintf(stderr, "lorafuse generate: bad --backend '%s' (cpu or cuda)\n", lf_esc(q, sizeof q, b, strlen(b)));
                return 0;
            }
        } else if (!strcmp(s, "--rng") && has) {
            if (lf_rng_kind_parse(argv[++i], &a->o.rng) != LF_OK) {
                char q[LF_ESC_PART];
                fprintf(stderr, "lorafuse generate: bad --rng '%s' (cpu or nv)\n", lf_esc(q, sizeof q, argv[i], strlen(argv[i])));
                return 0;
            }
        } else if (!strcmp(s, "--memory-limit") && has) {
            if (!lf_cli_int("generate", s, argv[++i], 1, 1L << 30, &v)) return 0; /* MiB, up to 1 PiB */
            a->o.mem_limit = (uint64_t)v << 20;
        } else if (!strcmp(s, "--force-size")) a->o.force_size = 1;
        else if (!strcmp(s, "--allow-symlinks-out")) a->o.lora_dir_confine = 0;
        else if (!strcmp(s, "--no-symlinks-out")) a->o.lora_dir_confine = 1;
        else if (!strcmp(s, "--auto-trigger")) a->o.auto_trigger = 1;
        else if (!strcmp(s, "--quiet")) a->quiet = 1;
        else if (!strcmp(s, "--json")) a->json = 1;
        else {
            char q[LF_ESC_PART];
            fprintf(stderr, "lorafuse generate: unexpected argument '%s'\n", lf_esc(q, sizeof q, s, strlen(s)));
            return 0;
        }
    }
    if (!a->o.model || !a->o.prompt) {
        fprintf(stderr, "lorafuse generate: --model and --prompt are required\n");
        return 0;
    }
    if ((a->o.width != 0) != (a->o.height != 0)) {
        fprintf(stderr, "lorafuse generate: give --width and --height together\n");
        return 0;
    }
    return 1;
}

typedef struct {
    int tty, quiet, json;
    int line_open;
    const lf_gen *g;
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
        cJSON_AddNumberToObject(o, "index", im->index);
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

int lf_cli_generate(int argc, char **argv) {
    lf_generate_args a;
    if (!lf_generate_parse_args(argc, argv, &a)) return lf_generate_usage();
    lf_gen *g = NULL;
    if (lf_gen_open(&a.o, &g) != LF_OK) {
        lf_err_escape(LF_OK); /* library messages may quote paths and names as given */
        fprintf(stderr, "lorafuse generate: %s\n", lf_last_error());
        return 1;
    }
    lf_gen_ui ui = {isatty(2), a.quiet, a.json, 0, g};
    const lf_gen_info *in = lf_gen_get_info(g);
    for (size_t i = 0; i < in->n_warnings && !a.quiet; i++)
        fprintf(stderr, "lorafuse generate: warning: %s\n", in->warnings[i]);
    if (!a.quiet)
        fprintf(stderr,
                "lorafuse generate: %s, %dx%d, %d steps, %s, CFG %g, %d image(s), %zu adapter(s), memory ~%.2f GiB\n",
                in->family, in->width, in->height, in->steps, in->sampler, in->cfg, in->batch_size * in->batch_count,
                in->n_adapters, (double)in->mem_estimate / (1 << 30));
    lf_gen_set_progress(g, lf_gen_progress_cb, &ui);
    lf_status st = lf_gen_run(g, lf_gen_image_cb, &ui);
    if (ui.line_open) fputc('\n', stderr);
    if (st != LF_OK) {
        lf_err_escape(LF_OK); /* library messages may quote paths and names as given */
        fprintf(stderr, "lorafuse generate: %s\n", lf_last_error());
        lf_gen_free(g);
        return 1;
    }
    if (!a.quiet) {
        const lf_gen_times *t = lf_gen_get_times(g);
        fprintf(stderr,
                "lorafuse generate: load %.2f s, text encoders %.2f s (%zu runs), weight updates %.2f s (%zu), "
                "UNet %.2f s (%zu calls), VAE %.2f s, PNG %.2f s\n",
                t->load, t->encode, t->te_runs, t->weights, t->weight_updates, t->unet, t->unet_calls, t->decode,
                t->write);
    }
    lf_gen_free(g);
    return 0;
}
