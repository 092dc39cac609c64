/* cli_extract.c: `lorafuse extract`: adapters or a fine-tune back into one kohya LoRA (lf_extract.h).
 *
 *   lorafuse extract --model CKPT (--lora PATH[:STRENGTH] [--lora ...] | --tuned CKPT2) --output OUT
 *                    [--rank R] [--conv-rank R] [--sv-ratio X | --sv-fro F | --sv-cumulative F]
 *                    [--clamp-quantile Q] [--unet-only] [--dtype f16|bf16|f32]
 *                    [--svd auto|exact|randomized] [--oversample N] [--power-iters N] [--threads N]
 *                    [--svd-device cpu|cuda] [--force]
 *                    [--allow-unmatched] [--allow-family-mismatch] [--report] [--json]
 *
 * A summary line goes to stderr; --report prints one line per module (rank, share of ||dW||_F kept,
 * relative residual, SVD path) and the totals on stdout, --json the same as one JSON object.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include <pthread.h>

#include "cli.h"
#include "host/base/text.h"
#include "lorafuse/lf_device.h"
#include "lorafuse/lf_extract.h"

/* --svd-device cuda: every module's SVD on the device (lf_dev_svd), one at a time (the pool's threads
 * call in parallel; the device's memory holds one module's work). */
typedef struct {
    lf_device *dev;
    pthread_mutex_t mu;
} lf_x_device;

static lf_status lf_x_device_svd(void *ctx, const float *a, int64_t m, int64_t n, int64_t l, int q, uint64_t seed,
                                 double *s, float *u, float *vt) {
    lf_x_device *d = ctx;
    pthread_mutex_lock(&d->mu);
    lf_status st = lf_dev_svd(d->dev, a, m, n, l, q, seed, s, u, vt);
    pthread_mutex_unlock(&d->mu);
    return st;
}

static void lf_x_print_report(const lf_extract_report *r) {
    printf("%-72s %-22s %5s %8s %10s %s\n", "module", "shape (out, in, k)", "rank", "kept", "residual", "svd");
    for (size_t i = 0; i < r->n_layers; i++) {
        const lf_extract_layer *l = &r->layers[i];
        char shape[64];
        if (l->kh * l->kw > 1)
            snprintf(shape, sizeof shape, "(%lld, %lld, %lldx%lld)", (long long)l->out, (long long)l->in,
                     (long long)l->kh, (long long)l->kw);
        else
            snprintf(shape, sizeof shape, "(%lld, %lld)", (long long)l->out, (long long)l->in);
        printf("%-72s %-22s %5d %7.3f%% %10.3e %s\n", l->name, shape, l->rank, 100.0 * l->kept,
               l->norm > 0 ? l->residual / l->norm : 0.0, l->randomized ? "randomized" : "exact");
    }
    printf("total: %zu modules (%zu smaller than the rank, kept whole), ||dW||_F %.6g, kept %.3f%%, residual %.3e "
           "relative; %zu zero, %zu not representable%s%s\n",
           r->n_layers, r->n_full, r->norm, r->norm > 0 ? 100.0 * sqrt(fmax(0.0, 1.0 - (r->residual / r->norm) * (r->residual / r->norm))) : 100.0,
           r->norm > 0 ? r->residual / r->norm : 0.0, r->n_zero, r->n_skipped, r->n_skipped ? ", first: " : "",
           r->skipped_first);
}

static void lf_x_print_json(const lf_extract_report *r) {
    cJSON *o = cJSON_CreateObject(), *mods = cJSON_AddArrayToObject(o, "modules");
    for (size_t i = 0; mods && i < r->n_layers; i++) {
        const lf_extract_layer *l = &r->layers[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", l->name);
        cJSON_AddStringToObject(x, "key", l->key);
        if (l->rows) {
            cJSON_AddNumberToObject(x, "row_off", (double)l->row_off);
            cJSON_AddNumberToObject(x, "rows", (double)l->rows);
        }
        double shape[4] = {(double)l->out, (double)l->in, (double)l->kh, (double)l->kw};
        cJSON_AddItemToObject(x, "shape", cJSON_CreateDoubleArray(shape, l->kh * l->kw > 1 ? 4 : 2));
        cJSON_AddNumberToObject(x, "rank", l->rank);
        cJSON_AddNumberToObject(x, "norm", l->norm);
        cJSON_AddNumberToObject(x, "kept", l->kept);
        cJSON_AddNumberToObject(x, "residual", l->residual);
        cJSON_AddStringToObject(x, "svd", l->randomized ? "randomized" : "exact");
        cJSON_AddNumberToObject(x, "svd_s", l->t_svd);
        cJSON_AddItemToArray(mods, x);
    }
    cJSON *t = cJSON_AddObjectToObject(o, "totals");
    cJSON_AddNumberToObject(t, "modules", (double)r->n_layers);
    cJSON_AddNumberToObject(t, "kept_whole", (double)r->n_full);
    cJSON_AddNumberToObject(t, "zero", (double)r->n_zero);
    cJSON_AddNumberToObject(t, "not_representable", (double)r->n_skipped);
    if (r->n_skipped) cJSON_AddStringToObject(t, "not_representable_first", r->skipped_first);
    cJSON_AddNumberToObject(t, "norm", r->norm);
    cJSON_AddNumberToObject(t, "residual", r->residual);
    cJSON_AddNumberToObject(t, "relative_residual", r->norm > 0 ? r->residual / r->norm : 0.0);
    cJSON_AddNumberToObject(t, "bytes", (double)r->bytes_out);
    cJSON_AddNumberToObject(t, "threads", r->threads);
    cJSON_AddNumberToObject(t, "read_s", r->t_read);
    cJSON_AddNumberToObject(t, "layers_s", r->t_layers);
    cJSON_AddNumberToObject(t, "delta_thread_s", r->t_delta);
    cJSON_AddNumberToObject(t, "svd_thread_s", r->t_svd);
    cJSON_AddNumberToObject(t, "write_s", r->t_write);
    char *s = cJSON_Print(o);
    if (s) puts(s);
    free(s);
    cJSON_Delete(o);
}

static const char lf_extract_usage_text[] =
    "usage: lorafuse extract --model CKPT (--lora PATH[:STRENGTH] [--lora ...] | --tuned CKPT2) --output OUT\n"
    "                        [--rank R] [--conv-rank R] [--sv-ratio X | --sv-fro F | --sv-cumulative F]\n"
    "                        [--clamp-quantile Q] [--unet-only] [--dtype f16|bf16|f32]\n"
    "                        [--svd auto|exact|randomized] [--oversample N] [--power-iters N] [--threads N]\n"
    "                        [--svd-device cpu|cuda] [--force] [--allow-unmatched] [--allow-family-mismatch]\n"
    "                        [--report] [--json]\n";

static const char lf_extract_help_text[] =
    "Adapters (summed as merge adds them) or a fine-tune minus its base, back into one kohya LoRA by\n"
    "truncated SVD. --rank R, or a rank per module by --sv-ratio / --sv-fro / --sv-cumulative (capped by\n"
    "--rank). --report: one line per module; --json: the same as JSON (docs/extract.md).\n"
    "example:\n"
    "  lorafuse extract --model models/sd15-mini.safetensors --lora models/lora/mini_lora.safetensors \\\n"
    "      --lora models/lora/mini_loha.safetensors:0.5 --rank 8 --output combined.safetensors\n";

enum {
    X_MODEL, X_OUTPUT, X_TUNED, X_LORA, X_RANK, X_CONVRANK, X_SVRATIO, X_SVFRO, X_SVCUM, X_CLAMP, X_DTYPE, X_SVDDEV,
    X_SVD, X_OVERSAMPLE, X_POWER, X_THREADS, X_UNETONLY, X_FORCE, X_UNMATCHED, X_FAMILY, X_REPORT, X_JSON
};

static const lf_cli_opt lf_extract_cli_opts[] = {
    [X_MODEL] = {"model", 1, 0},           [X_OUTPUT] = {"output", 1, 0},     [X_TUNED] = {"tuned", 1, 0},
    [X_LORA] = {"lora", 1, 1},             [X_RANK] = {"rank", 1, 0},         [X_CONVRANK] = {"conv-rank", 1, 0},
    [X_SVRATIO] = {"sv-ratio", 1, 0},      [X_SVFRO] = {"sv-fro", 1, 0},      [X_SVCUM] = {"sv-cumulative", 1, 0},
    [X_CLAMP] = {"clamp-quantile", 1, 0},  [X_DTYPE] = {"dtype", 1, 0},       [X_SVDDEV] = {"svd-device", 1, 0},
    [X_SVD] = {"svd", 1, 0},               [X_OVERSAMPLE] = {"oversample", 1, 0}, [X_POWER] = {"power-iters", 1, 0},
    [X_THREADS] = {"threads", 1, 0},       [X_UNETONLY] = {"unet-only", 0, 0}, [X_FORCE] = {"force", 0, 0},
    [X_UNMATCHED] = {"allow-unmatched", 0, 0}, [X_FAMILY] = {"allow-family-mismatch", 0, 0},
    [X_REPORT] = {"report", 0, 0},         [X_JSON] = {"json", 0, 0},         {NULL, 0, 0}};

int lf_cli_extract(int argc, char **argv) {
    const char *model = NULL, *output = NULL, *tuned = NULL;
    lf_merge_input *in = calloc((size_t)argc, sizeof *in);
    size_t n = 0;
    lf_extract_opts o;
    memset(&o, 0, sizeof o);
    int report = 0, json = 0, policies = 0, rc = 2, on_device = 0, k = LF_CLI_END, ok = 1;
    lf_x_device dev = {NULL, PTHREAD_MUTEX_INITIALIZER};
    char *d, **rest;
    if (!in) return 1;
    lf_cli_parser p;
    lf_cli_parser_init(&p, "extract", lf_extract_usage_text, lf_extract_help_text, lf_extract_cli_opts, argc, argv);
    while (ok && (k = lf_cli_next(&p, &d)) >= 0) {
        const char *a = p.lo[k].name; /* for messages: "--" + name below */
        char opt[40];
        snprintf(opt, sizeof opt, "--%s", a);
        switch (k) {
        case X_MODEL: model = d; break;
        case X_OUTPUT: output = d; break;
        case X_TUNED: tuned = d; break;
        case X_LORA: ok = lf_cli_parse_lora("extract", d, &in[n++]); break;
        case X_RANK: ok = lf_cli_count("extract", opt, d, 1, &o.rank); break;
        case X_CONVRANK: ok = lf_cli_count("extract", opt, d, 1, &o.conv_rank); break;
        case X_SVRATIO:
        case X_SVFRO:
        case X_SVCUM:
            o.policy = k == X_SVRATIO ? LF_RANK_SV_RATIO : k == X_SVFRO ? LF_RANK_SV_FRO : LF_RANK_SV_CUMULATIVE;
            ok = lf_cli_num("extract", opt, d, 1e-12, 1e12, &o.param);
            policies++;
            break;
        case X_CLAMP: ok = lf_cli_num("extract", opt, d, 1e-12, 1.0 - 1e-12, &o.clamp_quantile); break;
        case X_DTYPE:
            o.dtype = !strcmp(d, "f16") ? LF_F16 : !strcmp(d, "bf16") ? LF_BF16 : !strcmp(d, "f32") ? LF_F32
                                                                                                    : LF_DTYPE_INVALID;
            ok = o.dtype != LF_DTYPE_INVALID || lf_cli_bad_choice("extract", opt, d, "f16, bf16 or f32");
            break;
        case X_SVDDEV:
            ok = !strcmp(d, "cpu") || !strcmp(d, "cuda") || lf_cli_bad_choice("extract", opt, d, "cpu or cuda");
            on_device = !strcmp(d, "cuda");
            break;
        case X_SVD:
            o.svd = !strcmp(d, "exact") ? LF_SVD_EXACT : !strcmp(d, "randomized") ? LF_SVD_RANDOMIZED : LF_SVD_AUTO;
            ok = o.svd != LF_SVD_AUTO || !strcmp(d, "auto") || lf_cli_bad_choice("extract", opt, d, "auto, exact or randomized");
            break;
        case X_OVERSAMPLE: ok = lf_cli_count("extract", opt, d, 1, &o.oversample); break;
        case X_POWER: ok = lf_cli_count("extract", opt, d, 1, &o.power_iters); break;
        case X_THREADS: ok = lf_cli_count("extract", opt, d, 0, &o.threads); break;
        case X_UNETONLY: o.unet_only = 1; break;
        case X_FORCE: o.overwrite = 1; break;
        case X_UNMATCHED: o.plan.allow_unmatched = 1; break;
        case X_FAMILY: o.plan.allow_family = 1; break;
        case X_REPORT: report = 1; break;
        case X_JSON: json = 1; break;
        default: break;
        }
    }
    int n_rest;
    if ((rc = lf_cli_finish(&p, ok ? k : LF_CLI_BAD, 0, &rest, &n_rest)) >= 0) goto done;
    if (!model || !output || (!n && !tuned) || (n && tuned) || policies > 1 || (!o.rank && !policies)) {
        fprintf(stderr, "lorafuse extract: --model, --output, either --lora (one or more) or --tuned, and --rank or "
                        "one of --sv-ratio / --sv-fro / --sv-cumulative are required\n");
        rc = lf_cli_bad_usage(&p);
        goto done;
    }
    if (on_device) {
        if (lf_device_open(0, &dev.dev) != LF_OK) {
            lf_err_escape(LF_OK);
            fprintf(stderr, "lorafuse extract: --svd-device cuda: %s\n", lf_last_error());
            rc = 1;
            goto done;
        }
        o.svd_fn = lf_x_device_svd;
        o.svd_ctx = &dev;
    }
    lf_extract_report r;
    if (lf_extract(model, in, n, tuned, output, &o, &r) != LF_OK) {
        lf_err_escape(LF_OK);
        fprintf(stderr, "lorafuse extract: %s\n", lf_last_error());
        lf_extract_report_free(&r);
        rc = 1;
        goto done;
    }
    fprintf(stderr, "lorafuse extract: %s -> %s: %zu modules, %.1f KB, kept %.2f%% of ||dW||_F; %zu zero, %zu not "
            "representable (read+check %.2f s, dW + SVD %.2f s on %d threads, write %.2f s)\n",
            tuned ? "tuned - base" : "adapters", output, r.n_layers, (double)r.bytes_out / 1e3,
            r.norm > 0 ? 100.0 * sqrt(fmax(0.0, 1.0 - (r.residual / r.norm) * (r.residual / r.norm))) : 100.0, r.n_zero,
            r.n_skipped, r.t_read, r.t_layers, r.threads, r.t_write);
    if (report) lf_x_print_report(&r);
    if (json) lf_x_print_json(&r);
    lf_extract_report_free(&r);
    rc = 0;
done:
    lf_device_close(dev.dev);
    free(in);
    return rc;
}
