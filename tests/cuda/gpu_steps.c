/* gpu_steps.c: a prompt's per-step plan executed on the device, against the CPU
 * backend executing the same plan (label gpu; exits 77 without CUDA or a device).
 *
 * For the tiny SD1.5 model and two LoRAs with schedules on the text encoder and the UNet, after every
 * step the device weights of every f16 job equal the CPU backend's within the f16 bound of
 * docs/cuda.md (per element |g - r| <= 1e-3 rms(r) + 2^-9 |r|: an ulp count is no bound near zero,
 * where the tensor-core path's TF32 error relative to dW is many f16 ulps of W), each step rewrites
 * exactly the jobs the step lists, and going back to step 0 gives the checkpoint's W0 bytes exactly
 * (P7). Run twice: with the default options and with every LoRA on the tensor-core path
 * (tc_min_rank 1).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/common/lf_half.h"
#include "lf_test.h"
#include "lf_test_data.h"
#include "lorafuse/lf_device.h"
#include "lorafuse/lf_step_plan.h"

#define SD15 "tests/data/tiny/tiny-sd15.safetensors"

/* the worst ratio |g - r| / (1e-3 rms(r) + 2^-9 |r|) over an f16 weight (> 1: out of bounds), and its ulps */
static double f16_excess(const unsigned char *got, const unsigned char *ref, size_t n, int32_t *ulp) {
    double ss = 0.0, worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        uint16_t b;
        memcpy(&b, ref + 2 * i, 2);
        double r = lf_f16_to_f32(b);
        ss += r * r;
    }
    const double atol = 1e-3 * sqrt(ss / (double)(n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        uint16_t a, b;
        memcpy(&a, got + 2 * i, 2);
        memcpy(&b, ref + 2 * i, 2);
        const double g = lf_f16_to_f32(a), r = lf_f16_to_f32(b), e = fabs(g - r) / (atol + fabs(r) / 512.0);
        if (!(e <= worst)) worst = e; /* NaN counts as out of bounds */
        const int32_t d = lf_test_ulp16(a, b);
        if (d > *ulp) *ulp = d;
    }
    return worst;
}

static void run(lf_device *dev, int tc_min_rank) {

    const char *text = "a cat <lora:a:0.8:te=0.1@1,0.6@4> <lora:b:unet=1@3:in=0.5@1,1@5>";
    const char *paths[] = {"tests/data/tiny/sd15_kohya.lora.safetensors", "tests/data/tiny/sd15_lycoris.lora.safetensors"};
    const int steps = 6;
    lf_model *m = NULL;
    lf_prompt *pr = NULL;
    lf_step_plan *sp = NULL;
    lf_cpu_backend *cpu = NULL;
    lf_dev_model *dm = NULL;
    unsigned char *buf = NULL;
    LF_CHECK(lf_model_open(SD15, &m) == LF_OK, "%s", lf_last_error());
    LF_CHECK(m && lf_prompt_parse(text, &pr) == LF_OK, "%s", lf_last_error());
    LF_CHECK(pr && lf_step_plan_build_files(m, pr, paths, steps, NULL, &sp) == LF_OK, "%s", lf_last_error());
    LF_CHECK(sp && lf_cpu_backend_new(sp, 1, &cpu) == LF_OK, "%s", lf_last_error());
    lf_dev_opts opts;
    lf_dev_opts_default(&opts);
    if (tc_min_rank) opts.tc_min_rank = tc_min_rank;
    printf("tc_min_rank %d\n", opts.tc_min_rank);
    LF_CHECK(sp && lf_dev_model_create_steps(dev, sp, &opts, &dm) == LF_OK, "%s", lf_last_error());
    if (!cpu || !dm) goto done;

    size_t maxb = 0;
    for (size_t j = 0; j < sp->plan->n_jobs; j++) {
        size_t nb = (size_t)(sp->plan->jobs[j].target->end - sp->plan->jobs[j].target->begin);
        if (nb > maxb) maxb = nb;
    }
    buf = malloc(maxb + 1);
    for (int t = 1; t <= steps; t++) {
        LF_CHECK(lf_cpu_backend_step(cpu, t) == LF_OK, "cpu step %d: %s", t, lf_last_error());
        LF_CHECK(lf_dev_apply_step(dm, sp, t, NULL) == LF_OK, "device step %d: %s", t, lf_last_error());
        lf_dev_apply_stats stats;
        lf_dev_last_stats(dm, &stats);
        LF_CHECK(stats.jobs_rewritten == sp->steps[t - 1].n_jobs, "step %d: device rewrote %zu jobs, plan lists %zu", t,
                 stats.jobs_rewritten, sp->steps[t - 1].n_jobs);
        int32_t worst = 0;
        double excess = 0.0;
        for (size_t j = 0; j < sp->plan->n_jobs; j++) {
            size_t nb = 0;
            const unsigned char *ref = lf_cpu_backend_weight(cpu, j, &nb);
            LF_CHECK(lf_dev_download(dm, j, buf) == LF_OK, "%s", lf_last_error());
            if (sp->plan->jobs[j].target->dtype != LF_F16) continue;
            const double e = f16_excess(buf, ref, nb / 2, &worst);
            LF_CHECK(e <= 1.0, "step %d: layer '%s' differs from the CPU backend by %.2f times the f16 bound", t,
                     sp->plan->jobs[j].target->name, e);
            if (!(e <= excess)) excess = e;
        }
        printf("step %d: %zu jobs rewritten, worst %.3f of the bound (%d ulp)\n", t, sp->steps[t - 1].n_jobs, excess,
               worst);
    }
    LF_CHECK(lf_dev_apply_step(dm, sp, 0, NULL) == LF_OK, "back to step 0: %s", lf_last_error());
    int restored = 1;
    for (size_t j = 0; j < sp->plan->n_jobs; j++) {
        const lf_st_tensor *t = sp->plan->jobs[j].target;
        LF_CHECK(lf_dev_download(dm, j, buf) == LF_OK, "%s", lf_last_error());
        restored &= memcmp(buf, t->data, (size_t)(t->end - t->begin)) == 0;
    }
    LF_CHECK(restored, "step 0 does not give back the checkpoint's bytes");
    LF_CHECK(lf_dev_guard_check(dm) == LF_OK, "%s", lf_last_error());
done:
    free(buf);
    lf_dev_model_free(dm);
    lf_cpu_backend_free(cpu);
    lf_step_plan_free(sp);
    lf_prompt_free(pr);
    lf_model_free(m);
}

int main(void) {
    lf_device *dev = NULL;
    if (lf_device_open(0, &dev) != LF_OK) LF_SKIP(lf_last_error());
    printf("device: %s\n", lf_device_describe(dev));
    run(dev, 0);
    run(dev, 1);
    lf_device_close(dev);
    return lf_test_finish();
}
