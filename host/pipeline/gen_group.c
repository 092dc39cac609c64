/* gen_group.c: which jobs may share one call (lf_gen_groupable, lf_generate.h; docs/generate.md "Mixed
 * batches"): the fields that shape the sampler's batch, the UNet call and the decode must agree; what
 * only feeds a job's conditioning, adapters, seeds or output may differ. */
#include <stdio.h>
#include <string.h>

#include "generate_internal.h"

static int lf_gen_str_eq(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

/* Write "field: a vs b" into why; always returns 0 (the jobs differ). */
static int lf_gen_differ(char *why, size_t cap, const char *field, const char *a, const char *b) {
    if (why && cap) snprintf(why, cap, "%s: %s vs %s", field, a ? a : "(default)", b ? b : "(default)");
    return 0;
}

static int lf_gen_differ_i(char *why, size_t cap, const char *field, long long a, long long b) {
    char x[32], y[32];
    snprintf(x, sizeof x, "%lld", a);
    snprintf(y, sizeof y, "%lld", b);
    return lf_gen_differ(why, cap, field, x, y);
}

int lf_gen_groupable(const lf_gen_opts *a, const lf_gen_opts *b, char *why, size_t cap) {
    if (why && cap) why[0] = '\0';
    if (!lf_gen_str_eq(a->model, b->model)) return lf_gen_differ(why, cap, "model", a->model, b->model);
    if (a->width != b->width) return lf_gen_differ_i(why, cap, "width", a->width, b->width);
    if (a->height != b->height) return lf_gen_differ_i(why, cap, "height", a->height, b->height);
    int sa = a->steps ? a->steps : LF_GEN_DEFAULT_STEPS, sb = b->steps ? b->steps : LF_GEN_DEFAULT_STEPS;
    if (sa != sb) return lf_gen_differ_i(why, cap, "steps", sa, sb);
    const char *pa = a->sampler ? a->sampler : LF_GEN_DEFAULT_SAMPLER;
    const char *pb = b->sampler ? b->sampler : LF_GEN_DEFAULT_SAMPLER;
    if (strcmp(pa, pb)) return lf_gen_differ(why, cap, "sampler", pa, pb);
    if (a->cfg != b->cfg) {
        char x[32], y[32];
        snprintf(x, sizeof x, "%.17g", a->cfg);
        snprintf(y, sizeof y, "%.17g", b->cfg);
        return lf_gen_differ(why, cap, "cfg scale", x, y);
    }
    int ca = a->clip_skip > 1 ? a->clip_skip : 1, cb = b->clip_skip > 1 ? b->clip_skip : 1;
    if (ca != cb) return lf_gen_differ_i(why, cap, "clip skip", ca, cb);
    if (a->rng != b->rng)
        return lf_gen_differ(why, cap, "rng", a->rng == LF_RNG_NV ? "NV" : "CPU", b->rng == LF_RNG_NV ? "NV" : "CPU");
    if (!lf_gen_str_eq(a->vae, b->vae)) return lf_gen_differ(why, cap, "vae", a->vae, b->vae);
    if (!a->vae_tiling != !b->vae_tiling) return lf_gen_differ_i(why, cap, "vae tiling", !!a->vae_tiling, !!b->vae_tiling);
    if (a->backend != b->backend) {
        static const char *const nm[] = {"auto", "cpu", "cuda"};
        return lf_gen_differ(why, cap, "backend", nm[a->backend % 3], nm[b->backend % 3]);
    }
    if (a->device != b->device) return lf_gen_differ_i(why, cap, "device", a->device, b->device);
    if (a->dtype != b->dtype) return lf_gen_differ(why, cap, "dtype", lf_dtype_name(a->dtype), lf_dtype_name(b->dtype));
    if (a->vae_dtype != b->vae_dtype)
        return lf_gen_differ(why, cap, "vae dtype", lf_dtype_name(a->vae_dtype), lf_dtype_name(b->vae_dtype));
    if (!a->batch_merged != !b->batch_merged)
        return lf_gen_differ(why, cap, "batch merged", a->batch_merged ? "merged" : "unmerged",
                             b->batch_merged ? "merged" : "unmerged");
    return 1;
}
