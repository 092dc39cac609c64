/* emu_generate_faults.c: fault injection over one whole `generate` job on the CUDA compute backend
 * (label emu; -DLF_CUDA_EMU=ON only).
 *
 * The job: the SD1.5 mini model at 32x32 with a scheduled LoRA, 2 Euler steps with CFG, on
 * --backend cuda (text encoders, UNet and VAE on the emulated device). It runs once to count its N
 * fallible CUDA calls, then once with each of the first 8 calls failing, 12 spread evenly over the
 * rest and the last 2 (a whole job is ~5500 calls, ~5 s each in the emulation; these reach every kind
 * of call it makes: device and stream set-up, cuBLAS, allocations, uploads, each kernel's launch, the
 * cuBLAS products, downloads and synchronisations). Each run must end
 * without a crash, either with an error whose message names the failed call, or having absorbed it
 * (a cudaMalloc retried after the cached blocks are freed, the synchronisation in destroy) with the
 * clean run's image, or (a cuBLASLt call while making its handle or a Linear's plan: that Linear runs on
 * cuBLAS + a bias kernel; a cuDNN call while building a plan: cudnnCreate, cudnnBackendCreateDescriptor,
 * cudnnBackendFinalize) having run that op on its fallback path, with an image (on the default f16
 * compute the fallback rounds at other points, and this two-step 32x32 job on a random-weight model
 * amplifies that: up to 60 levels from the clean image, measured 2026-12-07, where --dtype f32 against
 * the CPU backend gives 42; so only its completion is checked); and once the job is freed no device
 * allocation may be left (lf_emu_live). Then the same for each of the 16 calls from the first of the
 * device apply of step 1 on (the UNet's adapter layers patched in device memory; found by bisection on
 * the messages).
 * --kept (CTest emu_generate_faults_kept): the device patch model a session keeps across jobs. On one
 * session a LoRA job A, then A' (the same LoRA at other strengths: it takes A's kept model, uploading
 * neither W0 nor factors); then, 4 times, A and A' on A's kept model with one CUDA call after its sampler
 * starts failing (calls 1, 4 and 7 of the 7 of the apply of step 1 on the kept model: the coefficient
 * upload, the launch, the wait; then the UNet's first upload), and A once more: every failure names its call, an apply failure leaves no kept model
 * behind, the next job gives the image of a fresh process bit for bit, and once the session is freed no
 * device allocation is left. Also the bytes uploaded by A' after A against A' on a new model (LF_GEN_DEV_KEEP=0):
 * bench/RESULTS.md.
 * Usage: emu_generate_faults [-v] [--kept]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/cuda/compute_cuda.h"
#include "host/pipeline/generate_internal.h"
#include "kernels/emu/lf_emu.h"
#include "lf_test.h"
#include "lorafuse/lf_generate.h"

static int verbose;

typedef struct {
    uint8_t rgb[3 * 32 * 32];
    int have;
} shot;

static lf_status keep(void *ctx, const lf_gen_image *img) {
    shot *s = ctx;
    memcpy(s->rgb, img->rgb, sizeof s->rgb);
    s->have = 1;
    return LF_OK;
}

/* the call count when the sampler starts (progress at step 0: before the weights of step 1) */
static uint64_t calls_at_start;

static void on_progress(void *ctx, const lf_gen_progress *p) {
    (void)ctx;
    lf_emu_counters c;
    lf_emu_get_counters(&c);
    if (p->step == 0 && p->run == 1) calls_at_start = c.calls;
}

/* --kept: the call to fail, counted from the sampler's start (0: none) */
static uint64_t arm_at;

static void arm_progress(void *ctx, const lf_gen_progress *p) {
    (void)ctx;
    if (p->step == 0 && p->run == 1 && arm_at) lf_emu_fail_at(arm_at);
}

/* one job of prompt `prompt` on session ss (NULL: its own); its status, the message in msg; the bytes
 * its CUDA calls uploaded in *h2d (may be NULL) */
static lf_status job_on(lf_gen_session *ss, const char *prompt, shot *s, char *msg, size_t cap, uint64_t *h2d) {
    lf_gen_opts o;
    lf_gen_opts_default(&o);
    o.model = "models/sd15-mini.safetensors";
    o.prompt = prompt;
    o.sampler = "Euler";
    o.steps = 2;
    o.width = o.height = 32;
    o.seed = 7;
    o.lora_dir = "models/lora";
    o.write_png = 0;
    o.hash_cache = "";
    o.backend = LF_GEN_CUDA;
    o.cuda = lf_compute_cuda_device;
    memset(s, 0, sizeof *s);
    lf_gen *g = NULL;
    lf_emu_counters c0, c1;
    lf_emu_get_counters(&c0);
    lf_status st = ss ? lf_gen_open_in(ss, &o, &g) : lf_gen_open(&o, &g);
    if (st == LF_OK) lf_gen_set_progress(g, ss ? arm_progress : on_progress, NULL);
    if (st == LF_OK) st = lf_gen_run(g, keep, s);
    snprintf(msg, cap, "%s", st ? lf_last_error() : "");
    lf_gen_free(g);
    lf_emu_get_counters(&c1);
    if (h2d) *h2d = c1.bytes_h2d - c0.bytes_h2d;
    return st;
}

/* a job with call k (`call`) failing: either absorbed (LF_OK: a call the code may absorb, the clean image)
 * or an error naming the call; 1 when that error is the device apply's of step 1 */
static int judge(uint64_t k, const char *call, lf_status st, const char *msg, const shot *s, const shot *clean) {
    if (st == LF_OK) {
        LF_CHECK(!call[0] || !strcmp(call, "cudaMalloc") || !strcmp(call, "cudaStreamSynchronize"),
                 "call %llu (%s) failed and nothing noticed", (unsigned long long)k, call);
        LF_CHECK(s->have && !memcmp(s->rgb, clean->rgb, sizeof s->rgb), "call %llu (%s) absorbed, but the image differs",
                 (unsigned long long)k, call);
        return 0;
    }
    LF_CHECK(lf_emu_names_call(msg, call), "call %llu (%s): the message does not name it: %s", (unsigned long long)k,
             call, msg);
    if (verbose) printf("call %llu (%s): %s\n", (unsigned long long)k, call, msg);
    return strstr(msg, "adapters on the device at step 1") != NULL;
}

#define PROMPT_A "a red fox <lora:mini_lora:te=0.5:unet=0.8@0,0.3@1>"
#define PROMPT_A2 "a red fox <lora:mini_lora:te=0.5:unet=0.4@0,1.1@1>"

static lf_status job(shot *s, char *msg, size_t cap) { return job_on(NULL, PROMPT_A, s, msg, cap, NULL); }

static lf_gen_session *session(void) {
    lf_gen_session *ss = NULL;
    lf_status st = lf_gen_session_open("models/sd15-mini.safetensors", LF_GEN_CUDA, 0, lf_compute_cuda_device, &ss);
    LF_CHECK(st == LF_OK, "session: %s", lf_last_error());
    return ss;
}

/* --kept (see the top) */
static int kept_faults(void) {
    static shot fa, fa2, s;
    char msg[2048];
    uint64_t h_new = 0, h_kept = 0;
    lf_emu_fail_at(0);
    lf_status st = job_on(NULL, PROMPT_A, &fa, msg, sizeof msg, NULL);
    if (st == LF_ERR_UNSUPPORTED) LF_SKIP(msg);
    LF_CHECK(st == LF_OK && job_on(NULL, PROMPT_A2, &fa2, msg, sizeof msg, NULL) == LF_OK, "fresh runs: %s", msg);
    /* what A' uploads after A: on a new model, then on A's kept one (the text encoders' outputs come from
     * the session's memo both times: the same prompt) */
    lf_gen_session *ss = session();
    if (!ss) return lf_test_finish();
    setenv("LF_GEN_DEV_KEEP", "0", 1);
    st = job_on(ss, PROMPT_A, &s, msg, sizeof msg, NULL);
    if (!st) st = job_on(ss, PROMPT_A2, &s, msg, sizeof msg, &h_new);
    LF_CHECK(st == LF_OK && s.have && !memcmp(s.rgb, fa2.rgb, sizeof s.rgb), "A' on a new model: %s", msg);
    unsetenv("LF_GEN_DEV_KEEP");
    st = job_on(ss, PROMPT_A, &s, msg, sizeof msg, NULL);
    LF_CHECK(st == LF_OK && ss->dkeep && !memcmp(s.rgb, fa.rgb, sizeof s.rgb), "A after A': %s",
             st ? msg : ss->dkeep ? "differs from a fresh process's" : "no kept model");
    if (!st) st = job_on(ss, PROMPT_A2, &s, msg, sizeof msg, &h_kept);
    LF_CHECK(st == LF_OK && s.have && !memcmp(s.rgb, fa2.rgb, sizeof s.rgb), "A' on A's kept model: %s", msg);
    printf("A' after A: %llu bytes uploaded on a new device model, %llu on the kept one\n", (unsigned long long)h_new,
           (unsigned long long)h_kept);
    LF_CHECK(h_kept < h_new, "the kept model saved no upload");
    int in_apply = 0;
    /* A (the next job after a failure: a fresh process's image), then A' on A's kept model with call k failing:
     * the apply's coefficient upload, its launch, its wait, then the UNet's first upload (time: each job is
     * seconds in the emulation) */
    static const uint64_t calls[] = {1, 4, 7, 8, 0};
    for (size_t i = 0; i < sizeof calls / sizeof *calls; i++) {
        uint64_t k = calls[i];
        st = job_on(ss, PROMPT_A, &s, msg, sizeof msg, NULL);
        LF_CHECK(st == LF_OK && s.have && !memcmp(s.rgb, fa.rgb, sizeof s.rgb), "after call %llu: the next job: %s",
                 (unsigned long long)(i ? calls[i - 1] : 0), st ? msg : "differs from a fresh process's");
        LF_CHECK(ss->dkeep != NULL, "after call %llu: A kept no model", (unsigned long long)(i ? calls[i - 1] : 0));
        if (!k) break;
        arm_at = k;
        st = job_on(ss, PROMPT_A2, &s, msg, sizeof msg, NULL);
        arm_at = 0;
        char call[128];
        snprintf(call, sizeof call, "%s", lf_emu_failed_call());
        lf_emu_fail_at(0);
        int apply = judge(k, call, st, msg, &s, &fa2);
        in_apply += apply;
        LF_CHECK(!apply || !ss->dkeep, "call %llu (%s): a failed apply's model was kept", (unsigned long long)k, call);
    }
    lf_gen_session_free(ss);
    uint64_t bytes = 0;
    size_t live = lf_emu_live(&bytes);
    LF_CHECK(live == 0, "%zu allocations (%llu bytes) left after the session", live, (unsigned long long)bytes);
    printf("kept device model: %d of 4 failures in the apply of step 1\n", in_apply);
    LF_CHECK(in_apply >= 3, "only %d failures named the device apply of step 1", in_apply);
    return lf_test_finish();
}

int main(int argc, char **argv) {
    int kept = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-v")) verbose = 1;
        else if (!strcmp(argv[i], "--kept")) kept = 1;
    }
    if (kept) return kept_faults();
    static shot clean, s;
    char msg[2048];
    lf_emu_fail_at(0);
    lf_status st = job(&clean, msg, sizeof msg);
    if (st == LF_ERR_UNSUPPORTED) LF_SKIP(msg);
    LF_CHECK(st == LF_OK && clean.have, "clean run: %s", msg);
    lf_emu_counters cnt;
    lf_emu_get_counters(&cnt);
    const uint64_t n = cnt.calls, c0 = calls_at_start;
    printf("%llu fallible CUDA calls in the job\n", (unsigned long long)n);
    LF_CHECK(n > 100, "only %llu calls counted", (unsigned long long)n);
    uint64_t at[24];
    int na = 0;
    for (uint64_t i = 1; i <= 8; i++) at[na++] = i;
    for (int k = 1; k <= 12; k++) at[na++] = 8 + (n - 10) * (uint64_t)k / 13;
    at[na++] = n - 1, at[na++] = n;
    int failed = 0, absorbed = 0;
    char seen[1024] = "";
    for (int k = 0; k < na; k++) {
        lf_emu_fail_at(at[k]);
        st = job(&s, msg, sizeof msg);
        const char *call = lf_emu_failed_call();
        uint64_t bytes = 0;
        size_t live = lf_emu_live(&bytes);
        LF_CHECK(live == 0, "call %llu (%s): %zu allocations (%llu bytes) left after the job", (unsigned long long)at[k],
                 call, live, (unsigned long long)bytes);
        if (call[0] && !strstr(seen, call) && strlen(seen) + strlen(call) + 3 < sizeof seen)
            strcat(strcat(seen, seen[0] ? ", " : ""), call);
        if (st == LF_OK && (!strcmp(call, "cudnnCreate") || !strcmp(call, "cudnnBackendCreateDescriptor") ||
                            !strcmp(call, "cudnnBackendFinalize"))) {
            absorbed++; /* no cuDNN, or a plan refused: that op ran on its fallback */
            int worst = 0;
            for (size_t i = 0; i < sizeof s.rgb; i++) {
                const int dv = abs((int)s.rgb[i] - (int)clean.rgb[i]);
                worst = dv > worst ? dv : worst;
            }
            LF_CHECK(s.have, "call %llu (%s) absorbed by a fallback, but no image", (unsigned long long)at[k], call);
            if (verbose) printf("call %llu (%s) absorbed by a fallback: %d levels from the clean image\n",
                                (unsigned long long)at[k], call, worst);
            continue;
        }
        if (st == LF_OK) {
            /* a cuBLASLt call while making the handle or a Linear's plan: that Linear ran on cuBLAS, which
             * in the emulation sums alike, but with 16-bit activations (generate's default) rounds the
             * product before the bias kernel where cuBLASLt's epilogue rounds once: an image, not the same
             * bytes; cublasLtMatmul itself must be an error */
            const int lt_plan = !strncmp(call, "cublasLt", 8) && strcmp(call, "cublasLtMatmul");
            absorbed++;
            LF_CHECK(!call[0] || !strcmp(call, "cudaMalloc") || !strcmp(call, "cudaStreamSynchronize") || lt_plan,
                     "call %llu (%s) failed and nothing noticed", (unsigned long long)at[k], call);
            LF_CHECK(s.have && (lt_plan || !memcmp(s.rgb, clean.rgb, sizeof s.rgb)),
                     "call %llu (%s) absorbed, but %s", (unsigned long long)at[k], call,
                     s.have ? "the image differs" : "no image");
            continue;
        }
        failed++;
        LF_CHECK(lf_emu_names_call(msg, call), "call %llu (%s): the message does not name it: %s",
                 (unsigned long long)at[k], call, msg);
        if (verbose) printf("call %llu (%s): %s\n", (unsigned long long)at[k], call, msg);
    }
    lf_emu_fail_at(0);
    printf("%d runs: %d failed with the call named, %d absorbed; calls hit: %s\n", na, failed, absorbed, seen);

    /* The UNet's adapter layers patched on the device: the first calls after the sampler starts make the
     * device model (messages "adapters on the device: "), then step 1's apply ("... at step 1"). Find
     * the first apply call by bisection, then fail each of the apply's calls in turn. */
    uint64_t lo = c0 + 1, hi = c0 + (n - c0) / 2; /* lo: a creation call; hi: past the apply */
    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        lf_emu_fail_at(mid);
        st = job(&s, msg, sizeof msg);
        if (st != LF_OK && strstr(msg, "adapters on the device: ")) lo = mid;
        else hi = mid;
    }
    int in_apply = 0;
    for (uint64_t k = hi; k < hi + 16; k++) {
        lf_emu_fail_at(k);
        st = job(&s, msg, sizeof msg);
        const char *call = lf_emu_failed_call();
        uint64_t bytes = 0;
        size_t live = lf_emu_live(&bytes);
        LF_CHECK(live == 0, "call %llu (%s): %zu allocations (%llu bytes) left after the job", (unsigned long long)k, call,
                 live, (unsigned long long)bytes);
        in_apply += judge(k, call, st, msg, &s, &clean);
    }
    lf_emu_fail_at(0);
    printf("device apply: calls %llu.. of the job; %d of 16 failed in the apply of step 1\n", (unsigned long long)hi,
           in_apply);
    LF_CHECK(in_apply >= 3, "only %d failures named the device apply of step 1", in_apply);
    return lf_test_finish();
}
