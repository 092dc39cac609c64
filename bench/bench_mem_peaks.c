/* bench_mem_peaks.c: the activation peaks of one UNet forward (batch N, 77 tokens) and one VAE decode
 * (one image) of a checkpoint at given sizes, replayed buffer by buffer from its shapes without loading
 * a weight (host/runtime/model_mem.h, the figures of `generate`'s memory estimate). One JSON line per size.
 *
 *   lf_bench_mem_peaks CHECKPOINT [--batch N] PX [PX ...]
 *
 * The family decides the UNet's heads rule (SD1: 8 heads, else 64-wide heads) and the VAE's scaling.
 * Results: bench/RESULTS.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/runtime/model_mem.h"
#include "lorafuse/lf_safetensors.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s CHECKPOINT [--batch N] PX [PX ...]\n", argv[0]);
        return 2;
    }
    lf_st_file *f = NULL;
    if (lf_st_open(argv[1], &f) != LF_OK) {
        fprintf(stderr, "%s\n", lf_last_error());
        return 1;
    }
    lf_family fam = lf_st_find(f, "conditioner.embedders.1.model.token_embedding.weight") ? LF_FAMILY_SDXL : LF_FAMILY_SD1;
    lf_unet_opts uo;
    memset(&uo, 0, sizeof uo);
    if (fam == LF_FAMILY_SD1) uo.num_heads = 8;
    else uo.head_dim = 64;
    lf_unet *u = NULL;
    lf_vae *v = NULL;
    if (lf_unet_load_shapes(f, &uo, &u) != LF_OK || lf_vae_load_shapes(f, fam, &v) != LF_OK) {
        fprintf(stderr, "%s\n", lf_last_error());
        return 1;
    }
    int64_t N = 2;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
            N = atoi(argv[++i]);
            continue;
        }
        int64_t px = atoi(argv[i]);
        printf("{\"bench\":\"mem_peaks\",\"model\":\"%s\",\"pixels\":%lld,\"unet_batch\":%lld,\"unet_peak_gb\":%.3f,"
               "\"vae_decode_peak_gb\":%.3f}\n", argv[1], (long long)px, (long long)N,
               (double)lf_unet_forward_peak(u, N, px / 8, px / 8, 77) / 1e9,
               (double)lf_vae_decode_peak(v, 1, px / 8, px / 8) / 1e9);
    }
    lf_unet_free(u);
    lf_vae_free(v);
    lf_st_close(f);
    return 0;
}
