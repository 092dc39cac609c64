/* gen_memory.c: the memory one generate call will need, estimated from the checkpoint before anything is
 * loaded, and the memory it may use; lf_gen_check refuses a request over the limit unless forced.
 *
 * Estimate (bytes; docs/generate.md "Memory"):
 *   weights   the UNet, VAE and text-encoder weights in their stored dtype (docs/model-runtime.md: mapped
 *             from the file or one copy), plus f32 copies of the small 1-D tensors and the token embeddings
 *   patched   the adapters' target layers in their checkpoint dtype (the CPU backend's patched copies),
 *             but for those a device compute patches in its own memory (gen_compute.c: UNet layers held
 *             as stored), which count in `device` instead: W0 and the working copy in their dtype and the
 *             factors as f32 (device memory, not in the total)
 *   buffers   per sampler run of R images (R = batch size, 1 for ancestral/SDE samplers), n = R * 4 * h * w
 *             latent values: x, the UNet's input and output pair (2 * 2n), the sampler's six work
 *             arrays (6n): 11n floats; the decoded image 3 * H * W floats and its 8-bit copy
 *   peak      the larger of one UNet forward on 2R latents with CFG (R without) over all the weights and
 *             one VAE decode of one latent over the weights still resident then (the f32 copies and the
 *             VAE's; model_mem.h: the passes themselves on a dry counting compute)
 *   scratch   32 MiB per worker thread (the pool's im2col bands and attention score blocks, OpenBLAS's
 *             per-thread buffer) and the f32 conversion buffer of the largest non-f32 weight
 * Text-encoder activations (77-token windows) and the mapped checkpoint file (page cache, reclaimable)
 * are left out. The UNet and VAE structures come from shapes-only loads, which also refuse a
 * non-float weight before any loading.
 * Limit: lf_gen_opts.mem_limit when set, else what the system can give now: the smaller of
 * /proc/meminfo MemAvailable and the cgroup v2 room (memory.max - memory.current + its page cache), else
 * sysconf(_SC_AVPHYS_PAGES); unknown: no check.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "generate_internal.h"
#include "host/base/pool.h"
#include "host/base/util.h"
#include "host/runtime/model_mem.h"
#include "kernels/cpu/nn/lf_nn.h"

#define LF_GEN_MEM_SCRATCH ((uint64_t)32 << 20) /* per thread: pool scratch and OpenBLAS's buffer */
#define LF_GEN_MEM_TOKENS 77                   /* one prompt window */

lf_unet_opts lf_gen_unet_opts(const lf_gen *g) {
    lf_unet_opts uo;
    memset(&uo, 0, sizeof uo);
    if (g->m->family == LF_FAMILY_SD1) uo.num_heads = 8; /* every SD1.x UNet; the context width may be small */
    else if (g->m->family == LF_FAMILY_SD2 || g->m->family == LF_FAMILY_SDXL) uo.head_dim = 64;
    return uo;
}

/* First number of the line of /proc/meminfo that starts with key, in bytes (0: none). */
static uint64_t lf_meminfo(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    uint64_t v = 0;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            unsigned long long kb = 0;
            if (sscanf(line + kl + 1, "%llu", &kb) == 1 && kb < UINT64_MAX / 1024) v = (uint64_t)kb * 1024;
            break;
        }
    fclose(f);
    return v;
}

/* A number (or "max") read from a cgroup file; UINT64_MAX for "max" or when absent. */
static uint64_t lf_cgroup_value(const char *dir, const char *name) {
    char path[512], buf[64];
    if (snprintf(path, sizeof path, "/sys/fs/cgroup%s/%s", dir, name) >= (int)sizeof path) return UINT64_MAX;
    FILE *f = fopen(path, "r");
    if (!f) return UINT64_MAX;
    unsigned long long v = 0;
    int ok = fgets(buf, sizeof buf, f) && sscanf(buf, "%llu", &v) == 1;
    fclose(f);
    return ok ? (uint64_t)v : UINT64_MAX;
}

/* The "file" line of a cgroup's memory.stat: page cache charged to it, which the kernel reclaims when
 * the cgroup needs memory (0 when absent). */
static uint64_t lf_cgroup_file_cache(const char *dir) {
    char path[512], line[256];
    if (snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.stat", dir) >= (int)sizeof path) return 0;
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    unsigned long long v = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "file ", 5)) {
            if (sscanf(line + 5, "%llu", &v) != 1) v = 0;
            break;
        }
    fclose(f);
    return (uint64_t)v;
}

/* Bytes this process's cgroup (v2) may still allocate: memory.max - (memory.current - page cache);
 * UINT64_MAX when unlimited or unknown. */
static uint64_t lf_cgroup_room(void) {
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f) return UINT64_MAX;
    char line[512], dir[512] = "";
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "0::", 3)) {
            snprintf(dir, sizeof dir, "%s", line + 3);
            dir[strcspn(dir, "\n")] = '\0';
            break;
        }
    fclose(f);
    if (!*dir) return UINT64_MAX;
    if (!strcmp(dir, "/")) dir[0] = '\0';
    uint64_t max = lf_cgroup_value(dir, "memory.max"), cur = lf_cgroup_value(dir, "memory.current");
    if (max == UINT64_MAX) return UINT64_MAX;
    if (cur == UINT64_MAX) return max;
    uint64_t cache = lf_cgroup_file_cache(dir);
    cur = cache < cur ? cur - cache : 0;
    return cur >= max ? 0 : max - cur;
}

/* Memory the system can give now, and where the number comes from; 0 when unknown. */
static uint64_t lf_mem_available(const char **from) {
    uint64_t v = lf_meminfo("MemAvailable"), room = lf_cgroup_room();
    *from = "MemAvailable";
    if (!v) {
        long pages = sysconf(_SC_AVPHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
        if (pages > 0 && psz > 0) v = (uint64_t)pages * (uint64_t)psz;
        *from = "free physical memory";
    }
    if (room < v || (!v && room != UINT64_MAX)) {
        v = room;
        *from = "the cgroup's memory.max";
    }
    return v;
}

/* Bytes the models hold for the float tensors of the file (weight_load.h): weights of 2 or more dims in
 * their stored dtype (F64/F8 as f32), 1-D tensors and text-encoder embeddings ("embedding" in the name)
 * as f32; *conv gets 4 * the values of the largest weight the operators convert (not F32); *decode what
 * stays resident while the VAE decodes (the f32 copies and the VAE's "first_stage_model." weights: the
 * UNet's and text encoders' mapped pages are handed back then, generate.c). */
static uint64_t lf_weight_bytes(const lf_st_file *st, uint64_t *conv, uint64_t *decode) {
    uint64_t n = 0;
    *conv = *decode = 0;
    for (size_t i = 0; i < lf_st_count(st); i++) {
        const lf_st_tensor *t = lf_st_at(st, i);
        if (t->dtype != LF_F16 && t->dtype != LF_BF16 && t->dtype != LF_F32 && t->dtype != LF_F64 &&
            t->dtype != LF_F8_E4M3 && t->dtype != LF_F8_E5M2)
            continue;
        uint64_t k = 1;
        for (int d = 0; d < t->ndim; d++) k *= (uint64_t)t->shape[d];
        int kept = t->dtype == LF_F16 || t->dtype == LF_BF16 || t->dtype == LF_F32;
        uint64_t b = t->ndim < 2 || strstr(t->name, "embedding") || !kept ? 4 * k : t->end - t->begin;
        n += b;
        if (b != t->end - t->begin || lf_has_prefix(t->name, "first_stage_model.")) *decode += b;
        if (t->ndim >= 2 && t->dtype != LF_F32 && 4 * k > *conv) *conv = 4 * k;
    }
    return n;
}

/* "1.25 GiB", "310 MiB" */
typedef struct {
    char s[32];
} lf_size_str;

static lf_size_str lf_size(uint64_t b) {
    lf_size_str r;
    if (b >= (uint64_t)1 << 30) snprintf(r.s, sizeof r.s, "%.2f GiB", (double)b / (double)((uint64_t)1 << 30));
    else snprintf(r.s, sizeof r.s, "%.0f MiB", (double)b / (double)(1 << 20));
    return r;
}

/* the VAE decode's peak: in tiles of T latent pixels (T > 0, vae_tiled.c), else the whole image's */
static uint64_t lf_gen_vae_peak(const lf_vae *v, int64_t h, int64_t w, int64_t T) {
    return T ? lf_vae_decode_tiled_peak(v, h, w, T) : lf_vae_decode_peak(v, 1, h, w);
}

/* m->patched and m->device: the adapters' layers on the host and, where the UNet's are patched on the
 * device, on the device. The UNet holds as stored (so a device patches in place, gen_compute.c) the F16,
 * BF16 and F32 weights of 2 or more dimensions and F32 1-D ones; 16-bit 1-D ones as f32 copies. */
static void lf_gen_mem_adapters(const lf_gen *g, lf_gen_mem *m) {
    const lf_step_plan *sp = g->sp;
    int dev = lf_gen_dev_patches(g);
    for (size_t j = 0; j < sp->plan->n_jobs; j++) {
        const lf_job *job = &sp->plan->jobs[j];
        const lf_st_tensor *t = job->target;
        uint64_t b = t->end - t->begin;
        int stored = t->dtype == LF_F32 || ((t->dtype == LF_F16 || t->dtype == LF_BF16) && t->ndim >= 2);
        if (!dev || sp->job_comp[j] != LF_COMP_UNET || !stored) {
            m->patched += b;
            continue;
        }
        m->device += 2 * b;
        for (size_t k = 0; k < job->n_patches; k++)
            for (int r = 0; r < LF_R_COUNT; r++)
                if (job->patches[k].mod.present & (1u << r))
                    m->device += 4 * (uint64_t)lf_view_numel(&job->patches[k].mod.t[r]);
    }
}

/* the UNet phase holds every weight, the decode only what decode_w counts */
static uint64_t lf_gen_mem_total(const lf_gen_mem *m, uint64_t decode_w) {
    uint64_t unet_phase = m->weights + m->unet, vae_phase = decode_w + m->vae;
    return m->patched + m->buffers + (unet_phase > vae_phase ? unet_phase : vae_phase) + m->scratch;
}

lf_status lf_gen_check_memory(lf_gen *g) {
    const lf_gen_opts *o = &g->o;
    lf_unet_opts uo = lf_gen_unet_opts(g);
    lf_unet *u = NULL;
    lf_vae *v = NULL;
    lf_status st = lf_unet_load_shapes(g->m->st, &uo, &u);
    if (st == LF_OK) st = lf_gen_vae_shapes(g, &v);
    if (st != LF_OK) {
        lf_unet_free(u);
        return st;
    }
    int64_t R = lf_gen_per_run(g), h = o->height / 8, w = o->width / 8;
    uint64_t n = (uint64_t)R * 4 * (uint64_t)h * (uint64_t)w, px = (uint64_t)o->width * (uint64_t)o->height;
    lf_gen_mem *m = &g->mem;
    memset(m, 0, sizeof *m);
    uint64_t conv = 0, decode_w = 0;
    m->weights = lf_weight_bytes(g->m->st, &conv, &decode_w);
    lf_gen_mem_adapters(g, m);
    m->buffers = 4 * 11 * n + 4 * 3 * px + 3 * px;
    m->unet = lf_unet_forward_peak(u, (o->cfg > 1.0 ? 2 : 1) * R, h, w, LF_GEN_MEM_TOKENS);
    m->vae = lf_gen_vae_peak(v, h, w, lf_gen_vae_tile(g, h, w, o->vae_tiling));
    m->scratch = (uint64_t)lf_par_threads() * LF_GEN_MEM_SCRATCH + conv;
    m->total = lf_gen_mem_total(m, decode_w);
    const char *from = "--memory-limit";
    m->limit = o->mem_limit ? o->mem_limit : lf_mem_available(&from);
    /* over the limit only because of the whole-image decode: decode in tiles instead (as A1111 falls back
     * to a tiled VAE), and say so */
    int64_t T = lf_gen_vae_tile(g, h, w, 1);
    if (m->limit && m->total > m->limit && !o->force_size && !o->vae_tiling && T) {
        lf_gen_mem tiled = *m;
        tiled.vae = lf_gen_vae_peak(v, h, w, T);
        tiled.total = lf_gen_mem_total(&tiled, decode_w);
        if (tiled.total <= m->limit) {
            lf_msgs_add(&g->warnings, "the whole-image VAE decode would need about %s, more than the %s available "
                        "(%s): decoding in tiles (--vae-tiling)", lf_size(m->total).s, lf_size(m->limit).s, from);
            *m = tiled;
            g->o.vae_tiling = 1;
        }
    }
    lf_unet_free(u);
    lf_vae_free(v);
    if (!m->limit || m->total <= m->limit || o->force_size) return LF_OK;
    return lf_err(LF_ERR_ARG,
                  "%dx%d with %" PRId64 " image(s) per sampler run needs about %s (weights %s, UNet peak %s, VAE decode "
                  "peak %s, buffers %s), more than the %s available (%s): use a smaller size or batch size, or "
                  "--force-size to run anyway",
                  o->width, o->height, R, lf_size(m->total).s, lf_size(m->weights + m->patched).s, lf_size(m->unet).s,
                  lf_size(m->vae).s, lf_size(m->buffers + m->scratch).s, lf_size(m->limit).s, from);
}

void lf_gen_get_memory(const lf_gen *g, lf_gen_memory *out) {
    memset(out, 0, sizeof *out);
    if (g->n_kids) g = g->kids[g->cur_kid]; /* a group: the job running (or that ran last) */
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) out->peak_rss = (uint64_t)ru.ru_maxrss * 1024; /* Linux: KiB */
    out->weights = lf_unet_weight_bytes(g->unet) + lf_vae_weight_bytes(g->vae) + lf_clip_weight_bytes(g->te1) +
                   lf_clip_weight_bytes(g->te2);
    out->adapter_backups = g->be ? g->mem.patched : 0;
    out->activations = g->mem.unet > g->mem.vae ? g->mem.unet : g->mem.vae;
    out->scratch = lf_nn_scratch_bytes();
}
