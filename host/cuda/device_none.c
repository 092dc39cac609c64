/* device_none.c: the device API (include/lorafuse/lf_device.h) and the CUDA compute backend
 * (compute_cuda.h) in a build without CUDA. Every entry
 * point that would need a device answers LF_ERR_UNSUPPORTED with a message saying so, so callers and
 * tests link in both builds and skip (exit 77) here. Built instead of device_cuda.c when
 * LF_HAVE_CUDA is 0 (CMakeLists.txt, block "lf_gpu: the device API"). */
#include <math.h>
#include <string.h>

#include "compute_cuda.h"
#include "lorafuse/lf_device.h"

static lf_status lf_no_cuda(void) {
    return lf_err(LF_ERR_UNSUPPORTED, "this build of lorafuse has no CUDA backend (configured with LF_CUDA=OFF or "
                  "without nvcc)");
}

int lf_device_compiled(void) { return 0; }
lf_status lf_device_open(int ordinal, lf_device **out) {
    (void)ordinal;
    *out = NULL;
    return lf_no_cuda();
}
void lf_device_close(lf_device *dev) { (void)dev; }
const char *lf_device_describe(const lf_device *dev) {
    (void)dev;
    return "(no CUDA in this build)";
}
void lf_dev_opts_default(lf_dev_opts *o) {
    memset(o, 0, sizeof *o);
    o->max_backup_mb = -1;
    o->tc_min_rank = 16;
    o->tf32_split_f32 = 1;
}
lf_status lf_dev_model_create(lf_device *dev, const lf_job *jobs, size_t n_jobs, const lf_dev_opts *opts,
                              lf_dev_model **out) {
    (void)dev, (void)jobs, (void)n_jobs, (void)opts;
    *out = NULL;
    return lf_no_cuda();
}
lf_status lf_dev_model_create_plan(lf_device *dev, const lf_plan *plan, const lf_dev_opts *opts, lf_dev_model **out) {
    (void)dev, (void)plan, (void)opts;
    *out = NULL;
    return lf_no_cuda();
}
void lf_dev_model_free(lf_dev_model *dm) { (void)dm; }
size_t lf_dev_n_jobs(const lf_dev_model *dm) { return (void)dm, 0; }
size_t lf_dev_n_patches(const lf_dev_model *dm) { return (void)dm, 0; }
size_t lf_dev_job_patch0(const lf_dev_model *dm, size_t job) { return (void)dm, (void)job, 0; }
void *lf_dev_weight(const lf_dev_model *dm, size_t job) { return (void)dm, (void)job, NULL; }
lf_status lf_dev_set_coef(lf_dev_model *dm, size_t job, size_t patch, float coef) {
    (void)dm, (void)job, (void)patch, (void)coef;
    return lf_no_cuda();
}
lf_status lf_dev_set_coefs(lf_dev_model *dm, const float *coefs) {
    (void)dm, (void)coefs;
    return lf_no_cuda();
}
lf_status lf_dev_set_adapter_coef(lf_dev_model *dm, size_t adapter, float coef) {
    (void)dm, (void)adapter, (void)coef;
    return lf_no_cuda();
}
float lf_dev_get_coef(const lf_dev_model *dm, size_t job, size_t patch) { return (void)dm, (void)job, (void)patch, NAN; }
lf_status lf_dev_apply_async(lf_dev_model *dm, void *stream) { return (void)dm, (void)stream, lf_no_cuda(); }
lf_status lf_dev_apply_wait(lf_dev_model *dm) { return (void)dm, lf_no_cuda(); }
lf_status lf_dev_apply(lf_dev_model *dm, void *stream) { return (void)dm, (void)stream, lf_no_cuda(); }
lf_status lf_dev_restore_all(lf_dev_model *dm, void *stream) { return (void)dm, (void)stream, lf_no_cuda(); }
void lf_dev_last_stats(const lf_dev_model *dm, lf_dev_apply_stats *st) {
    (void)dm;
    memset(st, 0, sizeof *st);
}
void lf_dev_memory(const lf_dev_model *dm, uint64_t *device_bytes, uint64_t *pinned_bytes) {
    (void)dm;
    if (device_bytes) *device_bytes = 0;
    if (pinned_bytes) *pinned_bytes = 0;
}
lf_status lf_dev_download(lf_dev_model *dm, size_t job, void *host_out) {
    return (void)dm, (void)job, (void)host_out, lf_no_cuda();
}
lf_status lf_dev_guard_check(lf_dev_model *dm) { return (void)dm, lf_no_cuda(); }
lf_status lf_dev_poison(lf_dev_model *dm) { return (void)dm, lf_no_cuda(); }

lf_status lf_dev_svd(lf_device *dev, const float *a, int64_t m, int64_t n, int64_t l, int q, uint64_t seed,
                     double *s, float *u, float *vt) {
    (void)dev, (void)a, (void)m, (void)n, (void)l, (void)q, (void)seed, (void)s, (void)u, (void)vt;
    return lf_no_cuda();
}

lf_status lf_compute_cuda_open(lf_device *dev, lf_compute **out) {
    (void)dev;
    *out = NULL;
    return lf_no_cuda();
}

lf_status lf_compute_cuda_open_as(lf_device *dev, lf_dtype act, lf_dtype wdt, lf_compute **out) {
    (void)act, (void)wdt;
    return lf_compute_cuda_open(dev, out);
}

lf_status lf_compute_cuda_device(int ordinal, lf_dtype dtype, lf_compute **out, char *desc, size_t cap) {
    (void)ordinal, (void)dtype, (void)desc, (void)cap;
    *out = NULL;
    return lf_no_cuda();
}

void lf_compute_cuda_paths_get(const lf_compute *c, lf_compute_cuda_paths *out) {
    (void)c;
    memset(out, 0, sizeof *out);
}

int lf_compute_cuda_uses_cudnn(const lf_compute *c, const lf_cop_desc *d) {
    (void)c, (void)d;
    return 0;
}

int lf_compute_cuda_uses_cublaslt(const lf_compute *c, const lf_cop_desc *d) {
    (void)c, (void)d;
    return 0;
}
