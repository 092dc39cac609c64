/* emu_sample_counts.c: what crosses between host and device per sampler step of a `generate` job on the
 * CUDA compute, counted by the CUDA emulation (label emu; -DLF_CUDA_EMU=ON only): bytes host -> device
 * and device -> host, copies and host synchronisations. A job of S and of 2S steps (SD1.5 mini model,
 * 32x32, CFG 7, a fresh session each) differ by S steps exactly, so (count(2S) - count(S)) / S is one
 * step's, without the weights' first uploads and the decode. Counts, not times (bench/RESULTS.md).
 *
 * Checks (gen_sample.c): a step moves no latent or model output: host -> device at most the timesteps
 * (and, for Euler a, the noise: n floats), device -> host 8 bytes (the two non-finite flags).
 * Usage: emu_sample_counts [--markdown]
 */
#include <stdio.h>
#include <string.h>

#include "host/cuda/compute_cuda.h"
#include "kernels/emu/lf_emu.h"
#include "lf_test.h"
#include "lorafuse/lf_generate.h"

static lf_status drop(void *ctx, const lf_gen_image *img) {
    (void)ctx, (void)img;
    return LF_OK;
}

static int count_job(const char *sampler, int steps, lf_emu_counters *c) {
    lf_gen_opts o;
    lf_gen_opts_default(&o);
    o.model = "models/sd15-mini.safetensors";
    o.prompt = "a red fox";
    o.negative = "blurry";
    o.sampler = sampler;
    o.steps = steps;
    o.width = o.height = 32;
    o.seed = 1234;
    o.write_png = 0;
    o.hash_cache = "";
    o.backend = LF_GEN_CUDA;
    o.cuda = lf_compute_cuda_device;
    lf_gen *g = NULL;
    lf_emu_reset_counters();
    lf_status st = lf_gen_open(&o, &g);
    if (st == LF_OK) st = lf_gen_run(g, drop, NULL);
    lf_gen_free(g);
    lf_emu_get_counters(c);
    LF_CHECK(st == LF_OK, "%s, %d steps: %s", sampler, steps, lf_last_error());
    return st == LF_OK;
}

int main(int argc, char **argv) {
    const int md = argc > 1 && !strcmp(argv[1], "--markdown");
    const char *samplers[] = {"Euler", "Euler a", "DPM++ 2M"};
    const int S = 1;
    const double n = 4.0 * 4 * 4; /* latent floats: 1 image x 4 x (32/8)^2 */
    if (md) {
        printf("| sampler | host -> device B/step | device -> host B/step | copies/step | syncs/step | latent B |\n");
        printf("| --- | ---: | ---: | ---: | ---: | ---: |\n");
    }
    for (size_t k = 0; k < sizeof samplers / sizeof samplers[0]; k++) {
        lf_emu_counters a, b;
        if (!count_job(samplers[k], S, &a) || !count_job(samplers[k], 2 * S, &b)) continue;
        double up = (double)(b.bytes_h2d - a.bytes_h2d) / S, down = (double)(b.bytes_d2h - a.bytes_d2h) / S;
        double copies = (double)(b.copies - a.copies) / S, syncs = (double)(b.syncs - a.syncs) / S;
        if (md)
            printf("| %s | %.0f | %.0f | %.1f | %.1f | %.0f |\n", samplers[k], up, down, copies, syncs, 4.0 * n);
        else
            printf("%-10s per step: host->device %.0f B, device->host %.0f B, %.1f copies, %.1f syncs (latent %.0f B)\n",
                   samplers[k], up, down, copies, syncs, 4.0 * n);
        int noise = !strcmp(samplers[k], "Euler a");
        /* the timesteps of the CFG pair (2 floats) per timestep embedding; Euler a: the noise too */
        LF_CHECK(up <= 64.0 + (noise ? 4.0 * n : 0), "%s: %.0f bytes up per step", samplers[k], up);
        LF_CHECK(down <= 8.0, "%s: %.0f bytes down per step", samplers[k], down);
    }
    return lf_test_finish();
}
