/* gpu_steps.c: a prompt's per-step plan executed on the device, against the CPU
 * backend executing the same plan (label gpu; exits 77 without CUDA or a device).
 *
 * For the tiny SD1.5 model and two LoRAs with schedules on the text encoder and the UNet, after every
 * step the device weights of every job equal the CPU backend's within the f16 bound of docs/cuda.md
 * (2 ulp), each step rewrites exactly the jobs the step lists, and going back to step 0 gives the
 * checkpoint's W0 bytes exactly (P7).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_test.h"
#include "lf_test_data.h"
#include "lorafuse/lf_device.h"
#include "lorafuse/lf_step_plan.h"

#define SD15 "models/tiny-sd15.safetensors"

int main(void) {
    lf_device *dev = NULL;
    if (lf_device_open(0, &dev) != LF_OK) LF_SKIP(lf_last_error());
    printf("device: %s\n", lf_device_describe(dev));

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
    LF_CHECK(sp && lf_dev_model_create_steps(dev, sp, NULL, &dm) == LF_OK, "%s", lf_last_error());
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
        for (size_t j = 0; j < sp->plan->n_jobs; j++) {
            size_t nb = 0;
            const unsigned char *ref = lf_cpu_backend_weight(cpu, j, &nb);
            LF_CHECK(lf_dev_download(dm, j, buf) == LF_OK, "%s", lf_last_error());
            if (sp->plan->jobs[j].target->dtype != LF_F16) continue;
            for (size_t i = 0; i < nb / 2; i++) {
                uint16_t a, b;
                memcpy(&a, buf + 2 * i, 2);
                memcpy(&b, ref + 2 * i, 2);
                int32_t d = lf_test_ulp16(a, b);
                if (d > worst) worst = d;
            }
        }
        LF_CHECK(worst <= 2, "step %d: device differs from the CPU backend by %d ulp", t, worst);
        printf("step %d: %zu jobs rewritten, worst %d ulp\n", t, sp->steps[t - 1].n_jobs, worst);
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
    lf_device_close(dev);
    return lf_test_finish();
}
