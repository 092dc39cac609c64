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

/* A value of a fixed-choice option that is none of them: say which ones there are. Returns 0. */
static int lf_x_bad_choice(const char *opt, const char *arg, const char *choices) {
    char q[LF_ESC_PART];
    fprintf(stderr, "lorafuse extract: bad %s '%s' (%s)\n", opt, lf_esc(q, sizeof q, arg, strlen(arg)), choices);
    return 0;
}

int lf_cli_extract(int argc, char **argv) {
    const char *model = NULL, *output = NULL, *tuned = NULL;
    lf_merge_input *in = calloc((size_t)argc, sizeof *in);
    size_t n = 0;
    lf_extract_opts o;
    memset(&o, 0, sizeof o);
    int report = 0, json = 0, policies = 0, rc = 2, on_device = 0;
    lf_x_device dev = {NULL, PTHREAD_MUTEX_INITIALIZER};
    if (!in) return 1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "--model") && val) model = argv[++i];
        else if (!strcmp(a, "--output") && val) output = argv[++i];
        else if (!strcmp(a, "--tuned") && val) tuned = argv[++i];
        else if (!strcmp(a, "--lora") && val) ok = lf_cli_parse_lora("extract", argv[++i], &in[n++]);
        else if (!strcmp(a, "--rank") && val) ok = lf_cli_count("extract", a, argv[++i], 1, &o.rank);
        else if (!strcmp(a, "--conv-rank") && val) ok = lf_cli_count("extract", a, argv[++i], 1, &o.conv_rank);
        else if ((!strcmp(a, "--sv-ratio") || !strcmp(a, "--sv-fro") || !strcmp(a, "--sv-cumulative")) && val) {
            o.policy = !strcmp(a, "--sv-ratio") ? LF_RANK_SV_RATIO : !strcmp(a, "--sv-fro") ? LF_RANK_SV_FRO
                                                                                             : LF_RANK_SV_CUMULATIVE;
            ok = lf_cli_num("extract", a, argv[++i], 1e-12, 1e12, &o.param);
            policies++;
        } else if (!strcmp(a, "--clamp-quantile") && val) {
            ok = lf_cli_num("extract", a, argv[++i], 1e-12, 1.0 - 1e-12, &o.clamp_quantile);
        } else if (!strcmp(a, "--dtype") && val) {
            const char *d = argv[++i];
            o.dtype = !strcmp(d, "f16") ? LF_F16 : !strcmp(d, "bf16") ? LF_BF16 : !strcmp(d, "f32") ? LF_F32
                                                                                                    : LF_DTYPE_INVALID;
            ok = o.dtype != LF_DTYPE_INVALID || lf_x_bad_choice(a, d, "f16, bf16 or f32");
        } else if (!strcmp(a, "--svd-device") && val) {
            const char *d = argv[++i];
            ok = !strcmp(d, "cpu") || !strcmp(d, "cuda") || lf_x_bad_choice(a, d, "cpu or cuda");
            on_device = !strcmp(d, "cuda");
        } else if (!strcmp(a, "--svd") && val) {
            const char *d = argv[++i];
            o.svd = !strcmp(d, "exact") ? LF_SVD_EXACT : !strcmp(d, "randomized") ? LF_SVD_RANDOMIZED : LF_SVD_AUTO;
            ok = o.svd != LF_SVD_AUTO || !strcmp(d, "auto") || lf_x_bad_choice(a, d, "auto, exact or randomized");
        } else if (!strcmp(a, "--oversample") && val) ok = lf_cli_count("extract", a, argv[++i], 1, &o.oversample);
        else if (!strcmp(a, "--power-iters") && val) ok = lf_cli_count("extract", a, argv[++i], 1, &o.power_iters);
        else if (!strcmp(a, "--threads") && val) ok = lf_cli_count("extract", a, argv[++i], 0, &o.threads);
        else if (!strcmp(a, "--unet-only")) o.unet_only = 1;
        else if (!strcmp(a, "--force")) o.overwrite = 1;
        else if (!strcmp(a, "--allow-unmatched")) o.plan.allow_unmatched = 1;
        else if (!strcmp(a, "--allow-family-mismatch")) o.plan.allow_family = 1;
        else if (!strcmp(a, "--report")) report = 1;
        else if (!strcmp(a, "--json")) json = 1;
        else {
            char q[LF_ESC_PART];
            fprintf(stderr, "lorafuse extract: unexpected argument '%s'\n", lf_esc(q, sizeof q, a, strlen(a)));
            goto done;
        }
        if (!ok) goto done; /* the parser said why */
    }
    if (!model || !output || (!n && !tuned) || (n && tuned) || policies > 1 || (!o.rank && !policies)) {
        fprintf(stderr, "lorafuse extract: --model, --output, either --lora (one or more) or --tuned, and --rank or "
                        "one of --sv-ratio / --sv-fro / --sv-cumulative are required\n");
        rc = LF_CLI_USAGE;
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
