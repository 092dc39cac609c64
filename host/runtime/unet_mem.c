/* unet_mem.c: a UNet's structure without its weights, and the peak memory of one forward pass
 * (model_mem.h): the forward itself (lf_unet_forward_on, unet.c) run on a dry counting compute
 * (compute_count.h), which computes nothing and adds up the buffers the pass allocates, so the estimate
 * follows the code by construction.
 */
#include <stdlib.h>
#include <string.h>

#include "compute_count.h"
#include "model_compute.h"
#include "model_mem.h"
#include "unet_internal.h"

lf_status lf_unet_load_shapes(const lf_st_file *st, const lf_unet_opts *opts, lf_unet **out) {
    return lf_un_load_src(st, NULL, 0, NULL, LF_WTS_SHAPES, opts, out);
}

uint64_t lf_unet_forward_peak(const lf_unet *u, int64_t N, int64_t H, int64_t W, int64_t L) {
    lf_compute_count cc;
    lf_compute_count_init(&cc, NULL);
    float *t = calloc((size_t)(N > 0 ? N : 1), sizeof *t);
    static float placeholder; /* the caller's x, context, y and out: a dry compute never reads them */
    float *p = &placeholder;
    lf_status st = t ? lf_unet_forward_on(u, &cc.c, p, p, t, p, L, u->arch.adm_in_channels > 0 ? p : NULL, N, H, W)
                     : LF_ERR_NOMEM;
    double peak = cc.peak;
    free(t);
    lf_compute_count_free(&cc);
    return st == LF_OK ? (uint64_t)peak : LF_MEM_UNKNOWN;
}
