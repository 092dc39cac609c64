/* emu_counts.c: what one apply issues on the device, counted by the CUDA emulation (label emu;
 * -DLF_CUDA_EMU=ON only): kernel launches, thread blocks, copies and their bytes, memsets and host
 * synchronisations per step of a prompt's per-step plan (the tiny SD1.5 model and two scheduled
 * LoRAs of gpu_steps), against the bytes an apply cannot avoid (W0 read + W written + factors:
 * lf_dev_apply_stats). Counts, not times.
 * Checks docs/cuda.md "Work list and launches": an apply that rewrites layers is at most 2 kernel
 * launches, 3 uploads (coefficients, work list; BOFT composites where present), 1 memset and 1
 * download, whatever the number of layers; an apply with nothing dirty issues nothing.
 * Usage: emu_counts [--markdown]   (--markdown: the table of bench/RESULTS.md)
 */
#include <stdio.h>
#include <string.h>

#include "kernels/emu/lf_emu.h"
#include "lf_test.h"
#include "lorafuse/lf_device.h"
#include "lorafuse/lf_step_plan.h"

#define SD15 "tests/data/tiny/tiny-sd15.safetensors"

int main(int argc, char **argv) {
    const int md = argc > 1 && !strcmp(argv[1], "--markdown");
    lf_device *dev = NULL;
    if (lf_device_open(0, &dev) != LF_OK) {
        fprintf(stderr, "%s\n", lf_last_error());
        return 1;
    }
    const char *text = "a cat <lora:a:0.8:te=0.1@1,0.6@4> <lora:b:unet=1@3:in=0.5@1,1@5>";
    const char *paths[] = {"tests/data/tiny/sd15_kohya.lora.safetensors", "tests/data/tiny/sd15_lycoris.lora.safetensors"};
    const int steps = 6;
    lf_model *m = NULL;
    lf_prompt *pr = NULL;
    lf_step_plan *sp = NULL;
    lf_dev_model *dm = NULL;
    LF_CHECK(lf_model_open(SD15, &m) == LF_OK, "%s", lf_last_error());
    LF_CHECK(m && lf_prompt_parse(text, &pr) == LF_OK, "%s", lf_last_error());
    LF_CHECK(pr && lf_step_plan_build_files(m, pr, paths, steps, NULL, &sp) == LF_OK, "%s", lf_last_error());
    lf_emu_reset_counters();
    LF_CHECK(sp && lf_dev_model_create_steps(dev, sp, NULL, &dm) == LF_OK, "%s", lf_last_error());
    if (!dm) goto done;
    lf_emu_counters c;
    lf_emu_get_counters(&c);
    uint64_t db = 0, pb = 0;
    lf_dev_memory(dm, &db, &pb);
    printf("create: %zu jobs, %zu patches: %llu launches, %llu copies (%llu B up), %llu memsets, %llu host syncs; "
           "%llu device bytes held\n", lf_dev_n_jobs(dm), lf_dev_n_patches(dm), (unsigned long long)c.launches,
           (unsigned long long)c.copies, (unsigned long long)c.bytes_h2d, (unsigned long long)c.memsets,
           (unsigned long long)c.syncs, (unsigned long long)db);
    if (md)
        printf("| step | layers rewritten | tiles (blocks) | kernel launches | copies up / down | bytes up | bytes down "
               "| memsets | host syncs | W0 read + W written (B) | factors read (B) |\n| --- | --- | --- | --- | --- "
               "| --- | --- | --- | --- | --- | --- |\n");
    for (int t = 1; t <= steps; t++) {
        lf_emu_reset_counters();
        LF_CHECK(lf_dev_apply_step(dm, sp, t, NULL) == LF_OK, "step %d: %s", t, lf_last_error());
        lf_emu_get_counters(&c);
        lf_dev_apply_stats s;
        lf_dev_last_stats(dm, &s);
        /* copies: every upload is host -> device; the flags come back in one download */
        const uint64_t down = c.bytes_d2h ? 1 : 0, up = c.copies - down;
        if (md)
            printf("| %d | %zu | %llu | %llu | %llu / %llu | %llu | %llu | %llu | %llu | %llu | %llu |\n", t,
                   s.jobs_rewritten, (unsigned long long)c.blocks, (unsigned long long)c.launches,
                   (unsigned long long)up, (unsigned long long)down, (unsigned long long)c.bytes_h2d,
                   (unsigned long long)c.bytes_d2h, (unsigned long long)c.memsets, (unsigned long long)c.syncs,
                   (unsigned long long)s.bytes_weights, (unsigned long long)s.bytes_factors);
        else
            printf("step %d: %zu layers, %llu blocks, %llu launches, %llu copies up (%llu B), %llu down (%llu B), "
                   "%llu memsets, %llu syncs; W0+W %llu B, factors %llu B\n", t, s.jobs_rewritten,
                   (unsigned long long)c.blocks, (unsigned long long)c.launches, (unsigned long long)up,
                   (unsigned long long)c.bytes_h2d, (unsigned long long)down, (unsigned long long)c.bytes_d2h,
                   (unsigned long long)c.memsets, (unsigned long long)c.syncs, (unsigned long long)s.bytes_weights,
                   (unsigned long long)s.bytes_factors);
        if (s.jobs_rewritten) {
            LF_CHECK(c.launches >= 1 && c.launches <= 2, "step %d: %llu kernel launches", t, (unsigned long long)c.launches);
            LF_CHECK(up <= 3 && down == 1 && c.memsets == 1, "step %d: %llu uploads, %llu downloads, %llu memsets", t,
                     (unsigned long long)up, (unsigned long long)down, (unsigned long long)c.memsets);
            LF_CHECK(c.blocks == s.tiles, "step %d: %llu blocks for %zu tiles", t, (unsigned long long)c.blocks, s.tiles);
        } else {
            LF_CHECK(c.launches == 0 && c.copies == 0 && c.memsets == 0, "step %d: nothing dirty, but %llu launches, "
                     "%llu copies", t, (unsigned long long)c.launches, (unsigned long long)c.copies);
        }
    }
done:
    lf_dev_model_free(dm);
    lf_step_plan_free(sp);
    lf_prompt_free(pr);
    lf_model_free(m);
    lf_device_close(dev);
    return lf_test_finish();
}
