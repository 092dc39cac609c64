/* gpu_merge.c: `lorafuse merge --backend cuda` (lf_dev_merge_apply, host/cuda/merge_device.c) against the
 * CPU merge (label gpu; under -DLF_CUDA_EMU=ON label emu).
 *
 * The tiny SD1.5 checkpoint merged with a kohya LoRA (TE and UNet) and a LyCORIS file at two strengths,
 * once on the CPU and once on device 0: both outputs hold the same tensors in the same order, dtypes and
 * shapes; every tensor no adapter touches is the model's bytes in both; every patched tensor agrees with
 * the CPU's within the device bounds of the adapter-case comparator (lf_tol_device, docs/cuda.md) and
 * differs from the model's (the adapters did something). Exits 77 without CUDA or a device.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adapter_cases.h"
#include "host/cuda/merge_device.h"
#include "lf_test.h"
#include "lf_test_data.h"
#include "lorafuse/lf_device.h"
#include "lorafuse/lf_merge.h"

#define SD15 "tests/data/tiny/tiny-sd15.safetensors"

int main(void) {
    lf_device *dev = NULL;
    if (lf_device_open(0, &dev) != LF_OK) LF_SKIP(lf_last_error());
    lf_device_close(dev);
    char tmp[256], cpu_out[300], dev_out[300];
    if (lf_test_tmpdir(tmp, sizeof tmp, "gpu_merge")) return 1;
    snprintf(cpu_out, sizeof cpu_out, "%s/cpu.safetensors", tmp);
    snprintf(dev_out, sizeof dev_out, "%s/cuda.safetensors", tmp);
    lf_merge_input in[2] = {{"tests/data/tiny/sd15_kohya.lora.safetensors", 0.8f, 0},
                            {"tests/data/tiny/sd15_lycoris.lora.safetensors", -0.6f, 0}};
    lf_merge_opts o;
    memset(&o, 0, sizeof o);
    LF_CHECK(lf_merge(SD15, in, 2, cpu_out, &o, NULL) == LF_OK, "CPU merge: %s", lf_last_error());
    int device = 0;
    o.apply = lf_dev_merge_apply;
    o.apply_ctx = &device;
    lf_merge_stats ms;
    LF_CHECK(lf_merge(SD15, in, 2, dev_out, &o, &ms) == LF_OK, "device merge: %s", lf_last_error());
    lf_st_file *m = NULL, *c = NULL, *d = NULL;
    if (lf_st_open(SD15, &m) || lf_st_open(cpu_out, &c) || lf_st_open(dev_out, &d)) {
        LF_CHECK(0, "open the outputs: %s", lf_last_error());
        return lf_test_finish();
    }
    LF_CHECK(lf_st_count(c) == lf_st_count(d) && lf_st_count(c) == lf_st_count(m), "tensor counts %zu %zu %zu",
             lf_st_count(m), lf_st_count(c), lf_st_count(d));
    size_t patched = 0, copied = 0;
    for (size_t i = 0; i < lf_st_count(c) && i < lf_st_count(d); i++) {
        const lf_st_tensor *tc = lf_st_at(c, i), *td = lf_st_at(d, i), *tm = lf_st_find(m, tc->name);
        size_t bytes = (size_t)(tc->end - tc->begin);
        int same_meta = tm && !strcmp(tc->name, td->name) && tc->dtype == td->dtype && tc->ndim == td->ndim &&
                        !memcmp(tc->shape, td->shape, sizeof tc->shape) && bytes == (size_t)(td->end - td->begin);
        LF_CHECK(same_meta, "tensor %zu: %s / %s differ in name, dtype or shape", i, tc->name, td->name);
        if (!same_meta) continue;
        if (!memcmp(tc->data, tm->data, bytes)) {
            copied++;
            LF_CHECK(!memcmp(td->data, tm->data, bytes), "%s: untouched by the adapters, but not the model's bytes",
                     td->name);
            continue;
        }
        patched++;
        lf_tol tol = lf_tol_device(tc->dtype);
        lf_cmp r;
        int64_t n = (int64_t)(bytes / (lf_dtype_bits(tc->dtype) / 8));
        LF_CHECK(lf_case_compare(tc->name, td->data, tc->data, n, tc->dtype, &tol, &r), "%s: device merge out of the "
                 "device bounds (rel L2 %.3e)", tc->name, r.rel_l2);
    }
    printf("%zu tensors patched (within the device bounds of the CPU's), %zu copied byte for byte\n", patched, copied);
    LF_CHECK(patched > 20 && patched == ms.tensors_patched, "%zu patched tensors differ from the model, merge says %zu",
             patched, ms.tensors_patched);
    lf_st_close(m), lf_st_close(c), lf_st_close(d);
    unlink(cpu_out), unlink(dev_out), rmdir(tmp);
    return lf_test_finish();
}
