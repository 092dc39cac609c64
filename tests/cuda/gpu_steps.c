/* gpu_steps.c: a prompt's per-step plan executed on the device, against the CPU
 * backend executing the same plan (label gpu; exits 77 without CUDA or a device).
 *
 * For the tiny SD1.5 model and two LoRAs with schedules on the text encoder and the UNet, after every
 * step the device weights of every f16 job equal the CPU backend's within the f16 bound of
 * docs/cuda.md (per element |g - r| <= 1e-3 rms(r) + 2^-9 |r|: an ulp count is no bound near zero,
 * where the tensor-core path's TF32 error relative to dW is many f16 ulps of W), each step rewrites
 * exactly the jobs the step lists, and going back to step 0 gives the checkpoint's W0 bytes exactly
 * (P7). Run twice: with the default options and with every LoRA on the tensor-core path
 * (tc_min_rank 1). Then with the device copies held in another type than the checkpoint's
 * (lf_dev_opts.store, as a CUDA compute's patcher makes them: bf16 and f32 for the tiny model's f16
 * targets, converted on the host at create): every job's device weight within 1e-3 rms(r) + u (|r| + |W0|)
 * of the CPU's (u = 2^-7 for bf16: W0 rounded into bf16, up to 2^-8 |W0|, and the result rounded again, up
 * to 2^-8 |r|; where W0 and dW cancel the first is no fraction of r: |r| alone was exceeded 1.7 times in
 * the emulation, 2026-12-07; u = 2^-9 for f32, the CPU's own f16 rounding) and step 0 the
 * checkpoint rounded once into the store type, exactly.
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

/* element i of a weight stored as dt, as f32 */
static double ld_as(const unsigned char *p, lf_dtype dt, size_t i) {
    if (dt == LF_F32) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return dt == LF_F16 ? lf_f16_to_f32(h) : lf_bf16_to_f32(h);
}

/* the prompt's plan on the tiny model, the CPU backend executing it and a device model of it (opts) */
typedef struct {
    lf_model *m;
    lf_prompt *pr;
    lf_step_plan *sp;
    lf_cpu_backend *cpu;
    lf_dev_model *dm;
} fixture;

enum { STEPS = 6 };

static int fixture_open(fixture *f, lf_device *dev, const lf_dev_opts *opts) {
    const char *text = "a cat <lora:a:0.8:te=0.1@1,0.6@4> <lora:b:unet=1@3:in=0.5@1,1@5>";
    const char *paths[] = {"tests/data/tiny/sd15_kohya.lora.safetensors", "tests/data/tiny/sd15_lycoris.lora.safetensors"};
    memset(f, 0, sizeof *f);
    LF_CHECK(lf_model_open(SD15, &f->m) == LF_OK, "%s", lf_last_error());
    LF_CHECK(f->m && lf_prompt_parse(text, &f->pr) == LF_OK, "%s", lf_last_error());
    LF_CHECK(f->pr && lf_step_plan_build_files(f->m, f->pr, paths, STEPS, NULL, &f->sp) == LF_OK, "%s", lf_last_error());
    LF_CHECK(f->sp && lf_cpu_backend_new(f->sp, 1, &f->cpu) == LF_OK, "%s", lf_last_error());
    LF_CHECK(f->sp && lf_dev_model_create_steps(dev, f->sp, opts, &f->dm) == LF_OK, "%s", lf_last_error());
    return f->cpu && f->dm;
}

static void fixture_close(fixture *f) {
    lf_dev_model_free(f->dm);
    lf_cpu_backend_free(f->cpu);
    lf_step_plan_free(f->sp);
    lf_prompt_free(f->pr);
    lf_model_free(f->m);
}

/* the device weights held as store (another type than the checkpoint's) against the CPU backend's */
static void run_store(lf_device *dev, lf_dtype store) {
    unsigned char *buf = NULL;
    float *w0 = NULL;
    fixture f;
    lf_dev_opts opts;
    lf_dev_opts_default(&opts);
    opts.store = store;
    if (!fixture_open(&f, dev, &opts)) goto done;
    lf_dev_model *dm = f.dm;
    const lf_step_plan *sp = f.sp;
    lf_cpu_backend *cpu = f.cpu;
    const double u = store == LF_BF16 ? 1.0 / 128 : 1.0 / 512;
    const size_t es = store == LF_F32 ? 4 : 2;
    size_t maxn = 0, converted = 0;
    for (size_t j = 0; j < sp->plan->n_jobs; j++) {
        lf_view v = lf_st_view(sp->plan->jobs[j].target);
        if ((size_t)lf_view_numel(&v) > maxn) maxn = (size_t)lf_view_numel(&v);
        converted += sp->plan->jobs[j].target->dtype != store;
    }
    LF_CHECK(converted > 0, "store %s: no job of another dtype", lf_dtype_name(store));
    buf = malloc(maxn * 4 + 1);
    w0 = malloc(maxn * 4 + 4);
    double excess = 0.0;
    for (int t = 1; t <= STEPS && buf; t++) {
        LF_CHECK(lf_cpu_backend_step(cpu, t) == LF_OK, "cpu step %d: %s", t, lf_last_error());
        LF_CHECK(lf_dev_apply_step(dm, sp, t, NULL) == LF_OK, "device step %d: %s", t, lf_last_error());
        for (size_t j = 0; j < sp->plan->n_jobs; j++) {
            size_t nb = 0;
            const lf_st_tensor *tg = sp->plan->jobs[j].target;
            const unsigned char *ref = lf_cpu_backend_weight(cpu, j, &nb);
            const size_t n = nb / (lf_dtype_bits(tg->dtype) / 8);
            lf_view v = lf_st_view(tg);
            LF_CHECK(lf_dev_download(dm, j, buf) == LF_OK && lf_view_to_f32(&v, w0) == LF_OK, "%s", lf_last_error());
            double ss = 0.0, worst = 0.0;
            for (size_t i = 0; i < n; i++) ss += ld_as(ref, tg->dtype, i) * ld_as(ref, tg->dtype, i);
            const double atol = 1e-3 * sqrt(ss / (double)(n ? n : 1));
            for (size_t i = 0; i < n; i++) {
                const double r = ld_as(ref, tg->dtype, i),
                             e = fabs(ld_as(buf, store, i) - r) / (atol + u * (fabs(r) + fabs((double)w0[i])));
                if (!(e <= worst)) worst = e;
            }
            LF_CHECK(worst <= 1.0, "store %s, step %d: layer '%s' (%s) is %.2f times the bound from the CPU's",
                     lf_dtype_name(store), t, tg->name, lf_dtype_name(tg->dtype), worst);
            if (worst > excess) excess = worst;
        }
    }
    printf("store %s: %zu of %zu jobs converted, worst %.3f of the bound\n", lf_dtype_name(store), converted,
           sp->plan->n_jobs, excess);
    LF_CHECK(lf_dev_apply_step(dm, sp, 0, NULL) == LF_OK, "back to step 0: %s", lf_last_error());
    for (size_t j = 0; j < sp->plan->n_jobs && buf && w0; j++) {
        lf_view v = lf_st_view(sp->plan->jobs[j].target);
        const size_t n = (size_t)lf_view_numel(&v);
        LF_CHECK(lf_dev_download(dm, j, buf) == LF_OK && lf_view_to_f32(&v, w0) == LF_OK, "%s", lf_last_error());
        int same = 1;
        for (size_t i = 0; i < n; i++) {
            const uint16_t h = store == LF_F16 ? lf_f32_to_f16(w0[i]) : lf_f32_to_bf16(w0[i]);
            same &= !memcmp(buf + es * i, es == 4 ? (const void *)&w0[i] : (const void *)&h, es);
        }
        LF_CHECK(same, "store %s: step 0 of '%s' is not W0 rounded once", lf_dtype_name(store),
                 sp->plan->jobs[j].target->name);
    }
done:
    free(buf);
    free(w0);
    fixture_close(&f);
}

static void run(lf_device *dev, int tc_min_rank) {
    unsigned char *buf = NULL;
    fixture f;
    lf_dev_opts opts;
    lf_dev_opts_default(&opts);
    if (tc_min_rank) opts.tc_min_rank = tc_min_rank;
    printf("tc_min_rank %d\n", opts.tc_min_rank);
    if (!fixture_open(&f, dev, &opts)) goto done;
    lf_dev_model *dm = f.dm;
    const lf_step_plan *sp = f.sp;
    lf_cpu_backend *cpu = f.cpu;

    size_t maxb = 0;
    for (size_t j = 0; j < sp->plan->n_jobs; j++) {
        size_t nb = (size_t)(sp->plan->jobs[j].target->end - sp->plan->jobs[j].target->begin);
        if (nb > maxb) maxb = nb;
    }
    buf = malloc(maxb + 1);
    for (int t = 1; t <= STEPS; t++) {
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
    fixture_close(&f);
}

int main(void) {
    lf_device *dev = NULL;
    if (lf_device_open(0, &dev) != LF_OK) LF_SKIP(lf_last_error());
    printf("device: %s\n", lf_device_describe(dev));
    run(dev, 0);
    run(dev, 1);
    run_store(dev, LF_BF16);
    run_store(dev, LF_F32);
    lf_device_close(dev);
    return lf_test_finish();
}
