/* lf_emu.cpp: the CUDA emulation of the -DLF_CUDA_EMU=ON build: a fake CUDA runtime (the subset of
 * cuda_runtime.h that host/cuda/ calls) and the executor of kernels compiled as C++ (lf_emu_cuda.h,
 * mma.h). No GPU, no toolkit; one process, one address space.
 *
 * Memory: cudaMalloc / cudaHostAlloc return 256-byte aligned payloads between 512-byte guard zones
 * (0xFD), payloads filled with 0xFF bytes (NaN in f32/f16/bf16) so unwritten data shows; guards are
 * checked at every free and at exit, and live allocations at exit are reported as leaks. Every copy
 * and memset is checked to lie inside one allocation (device side) and to match its cudaMemcpyKind.
 * Streams and events: every operation runs at once, in the order the host issues it (one valid
 * schedule). Ordering is tracked with vector clocks: the legacy default stream waits for prior work
 * of blocking streams and they for it, non-blocking streams (cudaStreamNonBlocking) order with
 * nothing but events; stream / event / device synchronisation and the synchronous calls' documented
 * host behaviour (cudaMemcpy from pageable memory syncs before, not after, the copy; cudaMemset is
 * asynchronous) order the host. Two accesses to overlapping bytes from different streams, one a
 * write, with no order between them are a race (reported, counted, fatal at exit). A kernel's
 * accesses are unknown here, so a kernel conflicts with any unordered access of another stream.
 * An asynchronous copy from device into pinned host memory becomes visible to the host only at a
 * synchronisation that covers it (until then the destination reads 0xFF), so host code that reads
 * pinned results too early sees garbage, as it may on a GPU; an asynchronous copy from pinned memory
 * to the device reads its source as late as allowed (before the next operation ordered after it),
 * so host code that rewrites pinned staging too early sends the new bytes.
 * Kernels: lf_emu::launch runs the blocks in order (LF_EMU_SCHEDULE=reverse: in reverse, and the
 * threads of each block too, the other extreme of the orders a GPU may choose); a block's threads are fibres switched
 * at barriers and warp collectives (see lf_emu_cuda.h for the rules checked). A fibre is made once per thread slot
 * (makecontext) and kept across blocks and launches: it parks between blocks, and every switch is a
 * _setjmp/_longjmp pair, which saves no signal mask (swapcontext's two system calls per switch made a
 * model's forward pass take minutes). A fibre left inside a kernel by a fault is made again.
 * Calls must not overlap: the state is not locked (host/cuda drives the device from one thread at a
 * time; `extract --svd-device cuda` serialises its pool's SVDs with a mutex).
 * Errors: launch configuration errors as cudaGetLastError; a kernel that breaks a rule sets the sticky
 * cudaErrorAssert; error injection on the N-th call (lf_emu.h).
 */
/* fibres switch stacks with _longjmp; glibc's fortified longjmp refuses a jump to another stack */
#undef _FORTIFY_SOURCE
#include <csetjmp>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <ucontext.h>

/* AddressSanitizer must be told about every stack switch (-DLF_SANITIZE=ON with the emulation) */
#if defined(__SANITIZE_ADDRESS__)
#define LF_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LF_EMU_ASAN 1
#endif
#endif
#ifdef LF_EMU_ASAN
#include <sanitizer/common_interface_defs.h>
#define LF_SWITCH_START(save, bottom, size) __sanitizer_start_switch_fiber((save), (bottom), (size))
#define LF_SWITCH_FINISH(save, bottom, size) __sanitizer_finish_switch_fiber((save), (bottom), (size))
#else
#define LF_SWITCH_START(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#define LF_SWITCH_FINISH(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#endif

#include <cuda_runtime.h>

#include "kernels/emu/lf_emu.h"

thread_local uint3 threadIdx, blockIdx;
thread_local dim3 blockDim, gridDim;

namespace {

/* ---- state ----------------------------------------------------------------------------------- */

constexpr size_t GUARD = 512;
constexpr unsigned char GUARD_BYTE = 0xFD, FILL_BYTE = 0xFF;
constexpr size_t SMEM_STATIC_MAX = 48 * 1024, SMEM_MAX = 227 * 1024;

typedef std::vector<uint64_t> vclock;

static uint64_t vc_get(const vclock &v, int i) { return (size_t)i < v.size() ? v[(size_t)i] : 0; }
static void vc_join(vclock &a, const vclock &b) {
    if (a.size() < b.size()) a.resize(b.size(), 0);
    for (size_t i = 0; i < b.size(); i++)
        if (b[i] > a[i]) a[i] = b[i];
}

struct access_rec {
    int sid;
    uint64_t seq;
    size_t off, len; /* len 0: the whole allocation (kernels) */
    bool write;
    const char *op;
};

/* an asynchronous device -> pinned copy not yet visible to the host: its bytes land when the host (or a
 * later operation ordered after it) synchronises with it; until then the destination holds 0xFF */
struct landing {
    unsigned char *dst;
    std::vector<unsigned char> data;
    int sid;
    uint64_t seq;
};

/* an asynchronous pinned -> device copy not yet performed: it reads its source as late as CUDA allows
 * (before the next operation ordered after it, or a host synchronisation covering it), so host code
 * that rewrites pinned staging while the copy may still be in flight sends the new bytes */
struct staged {
    void *dst;
    const void *src;
    size_t n;
    int sid;
    uint64_t seq;
};

struct alloc_rec {
    unsigned char *raw;
    size_t bytes, total;
    bool pinned;
    uint64_t id;
    std::vector<access_rec> recs;
};

} // namespace

struct lf_emu_stream {
    int id;
    unsigned flags;
    uint64_t seq;
    vclock vc;
};

struct lf_emu_event {
    unsigned flags;
    bool recorded;
    vclock vc;
};

namespace {

struct emu_state {
    std::map<uintptr_t, alloc_rec> allocs; /* by payload address */
    uint64_t next_id = 1;
    lf_emu_stream legacy{0, 0, 0, {}};
    std::vector<lf_emu_stream *> streams; /* index = id; [0] = legacy */
    std::set<lf_emu_event *> events;
    std::vector<access_rec> kernel_recs;
    std::vector<landing> pending;
    std::vector<staged> staging;
    vclock host;
    cudaError_t last = cudaSuccess, sticky = cudaSuccess;
    uint64_t fail_at = 0;
    std::string failed_call;
    lf_emu_counters c{};
    bool atexit_set = false;
    long handles = 0;
    int device = 0;
    bool reverse = false; /* LF_EMU_SCHEDULE=reverse: blocks and the threads of a block in reverse order */
    emu_state() {
        streams.push_back(&legacy);
        const char *e = getenv("LF_EMU_FAIL_AT");
        if (e && *e) fail_at = strtoull(e, nullptr, 10);
        const char *o = getenv("LF_EMU_SCHEDULE");
        reverse = o && !strcmp(o, "reverse");
    }
};

static emu_state &S() {
    static emu_state *s = new emu_state; /* never destroyed: the exit report runs after static dtors */
    return *s;
}

static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("lf_emu: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static bool guards_ok(const alloc_rec &a, const char *when) {
    const unsigned char *p = a.raw;
    for (size_t i = 0; i < GUARD; i++)
        if (p[i] != GUARD_BYTE) {
            report("guard zone damaged (%s): %s allocation #%llu of %zu bytes, byte %zu before its start is 0x%02x", when,
                   a.pinned ? "pinned" : "device", (unsigned long long)a.id, a.bytes, GUARD - i, p[i]);
            return false;
        }
    for (size_t i = GUARD + a.bytes; i < a.total; i++)
        if (p[i] != GUARD_BYTE) {
            report("guard zone damaged (%s): %s allocation #%llu of %zu bytes, byte %zu after its end is 0x%02x", when,
                   a.pinned ? "pinned" : "device", (unsigned long long)a.id, a.bytes, i - GUARD - a.bytes, p[i]);
            return false;
        }
    return true;
}

static void at_exit_report() {
    emu_state &s = S();
    int bad = 0;
    uint64_t bytes = 0;
    for (auto &kv : s.allocs) {
        bytes += kv.second.bytes;
        if (!guards_ok(kv.second, "at exit")) bad = 1;
    }
    if (!s.allocs.empty()) {
        report("leak: %zu allocations (%llu bytes) still live at exit:", s.allocs.size(), (unsigned long long)bytes);
        int n = 0;
        for (auto &kv : s.allocs)
            if (n++ < 20)
                fprintf(stderr, "  #%llu %s, %zu bytes at %p\n", (unsigned long long)kv.second.id,
                        kv.second.pinned ? "pinned" : "device", kv.second.bytes, (void *)kv.first);
        bad = 1;
    }
    if (s.handles) {
        report("leak: %ld cuBLAS / cuSOLVER handles still live at exit", s.handles);
        bad = 1;
    }
    if (s.c.races) {
        report("%llu data race(s) between streams were reported above", (unsigned long long)s.c.races);
        bad = 1;
    }
    const char *ok = getenv("LF_EMU_LEAKS_OK");
    if (bad && !(ok && ok[0] == '1')) {
        fflush(stdout);
        _Exit(3);
    }
}

/* every API call: exit report registered; the sticky error; injection */
static cudaError_t enter(const char *name, bool fallible, cudaError_t injected) {
    emu_state &s = S();
    if (!s.atexit_set) {
        s.atexit_set = true;
        atexit(at_exit_report);
    }
    if (s.sticky != cudaSuccess) return s.sticky;
    if (!fallible) return cudaSuccess;
    s.c.calls++;
    if (s.fail_at && s.c.calls == s.fail_at) {
        s.failed_call = name;
        report("injecting %s into call %llu (%s)", cudaGetErrorName(injected), (unsigned long long)s.fail_at, name);
        return injected;
    }
    return cudaSuccess;
}

static cudaError_t ret(cudaError_t e) {
    if (e != cudaSuccess) S().last = e;
    return e;
}

/* ---- memory lookup ---------------------------------------------------------------------------- */

static alloc_rec *find(const void *p, uintptr_t *base) {
    emu_state &s = S();
    uintptr_t a = (uintptr_t)p;
    auto it = s.allocs.upper_bound(a);
    if (it == s.allocs.begin()) return nullptr;
    --it;
    if (a < it->first + (it->second.bytes ? it->second.bytes : 1)) {
        if (base) *base = it->first;
        return &it->second;
    }
    return nullptr;
}

/* [p, p + n) inside one allocation: that allocation (and the offset), else nullptr with a report */
static alloc_rec *range(const char *call, const char *side, const void *p, size_t n, size_t *off) {
    uintptr_t base = 0;
    alloc_rec *a = find(p, &base);
    if (!a) {
        report("%s: %s %p is not in any device or pinned allocation", call, side, p);
        return nullptr;
    }
    *off = (uintptr_t)p - base;
    if (*off + n > a->bytes) {
        report("%s: %s range [%p, +%zu) runs %zu bytes past the end of allocation #%llu (%zu bytes)", call, side, p, n,
               *off + n - a->bytes, (unsigned long long)a->id, a->bytes);
        return nullptr;
    }
    return a;
}

/* ---- ordering ------------------------------------------------------------------------------- */

static lf_emu_stream *stream_of(cudaStream_t st) {
    emu_state &s = S();
    if (!st || st == cudaStreamLegacy || st == cudaStreamPerThread) return &s.legacy;
    for (lf_emu_stream *x : s.streams)
        if (x == st) return x;
    return nullptr;
}

/* a new operation on stream x: its clock (program order, host order, legacy-stream rules) */
static void flush_staged(const vclock &v, int sid);

static void begin_op(lf_emu_stream *x) {
    emu_state &s = S();
    vc_join(x->vc, s.host);
    if (x == &s.legacy) {
        for (lf_emu_stream *t : s.streams)
            if (t && t != x && !(t->flags & cudaStreamNonBlocking)) vc_join(x->vc, t->vc);
    } else if (!(x->flags & cudaStreamNonBlocking)) {
        vc_join(x->vc, s.legacy.vc);
    }
    if (!s.staging.empty()) flush_staged(x->vc, x->id); /* what this operation comes after has happened */
    x->seq++;
    if (x->vc.size() <= (size_t)x->id) x->vc.resize((size_t)x->id + 1, 0);
    x->vc[(size_t)x->id] = x->seq;
}

static bool ordered(const lf_emu_stream *x, const access_rec &r) { return r.sid == x->id || vc_get(x->vc, r.sid) >= r.seq; }

static void race(const lf_emu_stream *x, const char *op, const access_rec &r, const alloc_rec *a) {
    emu_state &s = S();
    s.c.races++;
    if (a)
        report("race: %s on stream %d and %s (%s) on stream %d touch allocation #%llu (%zu bytes) with no "
               "synchronisation between them (a non-blocking stream does not wait for the legacy default stream)",
               op, x->id, r.op, r.write ? "write" : "read", r.sid, (unsigned long long)a->id, a->bytes);
    else
        report("race: %s on stream %d and kernel %s on stream %d with no synchronisation between them", op, x->id, r.op,
               r.sid);
}

/* land the pending device -> pinned copies that clock v (or stream sid's program order) covers */
static void land(const vclock &v, int sid) {
    emu_state &s = S();
    size_t k = 0;
    for (size_t i = 0; i < s.pending.size(); i++) {
        landing &p = s.pending[i];
        if (p.sid == sid || vc_get(v, p.sid) >= p.seq) memcpy(p.dst, p.data.data(), p.data.size());
        else s.pending[k++] = std::move(p);
    }
    s.pending.resize(k);
}

/* perform the staged copies that clock v (or stream sid's program order) covers, in issue order */
static void flush_staged(const vclock &v, int sid) {
    emu_state &s = S();
    size_t k = 0;
    for (size_t i = 0; i < s.staging.size(); i++) {
        const staged &p = s.staging[i];
        if (p.sid == sid || vc_get(v, p.sid) >= p.seq) memmove(p.dst, p.src, p.n);
        else s.staging[k++] = p;
    }
    s.staging.resize(k);
}

static void touch(lf_emu_stream *x, alloc_rec *a, size_t off, size_t len, bool write, const char *op) {
    if (!a) return;
    if (a->pinned && !S().pending.empty()) land(x->vc, x->id); /* stream order makes earlier copies visible */
    for (const access_rec &r : a->recs)
        if (!ordered(x, r) && (r.write || write) && (r.len == 0 || (off < r.off + r.len && r.off < off + len))) {
            race(x, op, r, a);
            break;
        }
    for (const access_rec &r : S().kernel_recs)
        if (!ordered(x, r)) {
            race(x, op, r, nullptr);
            break;
        }
    a->recs.push_back(access_rec{x->id, x->seq, off, len, write, op});
}

static void kernel_touch(lf_emu_stream *x, const char *name) {
    emu_state &s = S();
    bool found = false;
    for (auto &kv : s.allocs) {
        for (const access_rec &r : kv.second.recs)
            if (!ordered(x, r)) {
                race(x, name, r, &kv.second);
                found = true;
                break;
            }
        if (found) break;
    }
    for (const access_rec &r : s.kernel_recs)
        if (!found && !ordered(x, r)) {
            race(x, name, r, nullptr);
            break;
        }
    s.kernel_recs.push_back(access_rec{x->id, x->seq, 0, 0, true, name});
}

/* the host has waited for everything in clock v: drop the records it covers */
static void host_join(const vclock &v) {
    emu_state &s = S();
    vc_join(s.host, v);
    s.c.syncs++;
    if (!s.staging.empty()) flush_staged(s.host, -1);
    if (!s.pending.empty()) land(s.host, -1);
    auto prune = [&](std::vector<access_rec> &recs) {
        size_t k = 0;
        for (size_t i = 0; i < recs.size(); i++)
            if (vc_get(s.host, recs[i].sid) < recs[i].seq) recs[k++] = recs[i];
        recs.resize(k);
    };
    for (auto &kv : s.allocs) prune(kv.second.recs);
    prune(s.kernel_recs);
}

static void host_join_all() {
    emu_state &s = S();
    vclock v;
    for (lf_emu_stream *t : s.streams)
        if (t) vc_join(v, t->vc);
    host_join(v);
}

/* ---- kernels: blocks of fibres ------------------------------------------------------------------- */

enum { F_RUN, F_BWAIT, F_WWAIT, F_DONE };

struct fibre {
    jmp_buf jb;          /* where it resumes */
    bool parked = false; /* between blocks, at the top of fibre_main's loop: jb is valid */
    int state, line;
    uint64_t key;
    unsigned mask;
    const char *file;
};

struct block_run {
    int n = 0, cur = 0;
    std::vector<fibre> f;
    std::vector<char *> stacks;
    jmp_buf sched_jb;
    bool failed = false;
    std::string msg;
    void (*fn)(void *) = nullptr;
    void *ctx = nullptr;
    std::vector<double> wval;
    std::vector<void *> wptr;
    std::vector<std::pair<const void *, size_t>> tags;
    size_t used = 0, smem_limit = SMEM_STATIC_MAX;
    void *asan_fake = nullptr;            /* the scheduler's fake stack while a fibre runs (ASan) */
    const void *sched_bottom = nullptr;   /* the scheduler's stack, for switches back (ASan) */
    size_t sched_size = 0;
    alignas(256) unsigned char arena[SMEM_MAX];
};

constexpr size_t STACK = 128 * 1024;
thread_local block_run *cur_block;

/* a fibre is running again: tell ASan (and learn the scheduler's stack) */
static void switched_in(block_run *b) { LF_SWITCH_FINISH(nullptr, &b->sched_bottom, &b->sched_size); }
/* a fibre hands control back to the scheduler; fake: its fake stack to keep, NULL when it ends */
static void to_scheduler(block_run *b, void **fake) { LF_SWITCH_START(fake, b->sched_bottom, b->sched_size); }

/* a thread slot's fibre: parks, then runs the kernel body for each block it is dispatched to */
static void fibre_main() {
    block_run *const b = cur_block;
    const int me = b->cur;
    switched_in(b);
    for (;;) {
        b->f[(size_t)me].parked = true;
        void *fake = nullptr;
        to_scheduler(b, &fake);
        if (!_setjmp(b->f[(size_t)me].jb)) _longjmp(b->sched_jb, 1);
        switched_in(b);
        b->f[(size_t)me].parked = false;
        b->fn(b->ctx);
        b->f[(size_t)me].state = F_DONE;
    }
}

/* make slot i's fibre (it runs up to its parking place) */
static void boot(block_run *b, int i) {
    static ucontext_t uc; /* read by setcontext only */
    getcontext(&uc);
    uc.uc_stack.ss_sp = b->stacks[(size_t)i];
    uc.uc_stack.ss_size = STACK;
    uc.uc_link = nullptr;
    makecontext(&uc, fibre_main, 0);
    b->cur = i;
    LF_SWITCH_START(&b->asan_fake, b->stacks[(size_t)i], STACK);
    if (!_setjmp(b->sched_jb)) setcontext(&uc);
    LF_SWITCH_FINISH(b->asan_fake, nullptr, nullptr);
}

/* run slot i's fibre until it waits, ends or faults */
static void dispatch(block_run *b, int i) {
    LF_SWITCH_START(&b->asan_fake, b->stacks[(size_t)i], STACK);
    if (!_setjmp(b->sched_jb)) _longjmp(b->f[(size_t)i].jb, 1);
    LF_SWITCH_FINISH(b->asan_fake, nullptr, nullptr);
}

static void set_thread_index(int i) {
    threadIdx.x = (unsigned)i % blockDim.x;
    threadIdx.y = ((unsigned)i / blockDim.x) % blockDim.y;
    threadIdx.z = (unsigned)i / (blockDim.x * blockDim.y);
}

static void wait_here(int state, int line, uint64_t key, unsigned mask, const char *file) {
    block_run *b = cur_block;
    fibre &f = b->f[(size_t)b->cur];
    f.state = state;
    f.line = line;
    f.key = key;
    f.mask = mask;
    f.file = file;
    void *fake = nullptr;
    to_scheduler(b, &fake);
    if (!_setjmp(f.jb)) _longjmp(b->sched_jb, 1);
    switched_in(b);
}

static void block_fail(block_run *b, const std::string &m) {
    if (!b->failed) {
        b->failed = true;
        b->msg = m;
    }
}

/* after every runnable fibre stopped: release a barrier or a warp collective, or find the fault */
static bool release(block_run *b) {
    int nb = 0, nd = 0, nw = 0;
    for (const fibre &f : b->f) nb += f.state == F_BWAIT, nd += f.state == F_DONE, nw += f.state == F_WWAIT;
    char m[512];
    bool any = false;
    /* warp collectives first: a warp whose lanes all wait at one call site proceeds */
    const int nwarps = (b->n + 31) / 32;
    for (int w = 0; w < nwarps && nw; w++) {
        int first = -1;
        for (int l = 0; l < 32 && w * 32 + l < b->n; l++)
            if (b->f[(size_t)(w * 32 + l)].state == F_WWAIT) {
                first = w * 32 + l;
                break;
            }
        if (first < 0) continue;
        const fibre &r = b->f[(size_t)first];
        bool ready = true;
        for (int l = 0; l < 32 && w * 32 + l < b->n; l++) {
            const fibre &f = b->f[(size_t)(w * 32 + l)];
            const bool in = (r.mask >> l) & 1u;
            if (f.state == F_WWAIT && (f.line != r.line || f.key != r.key || f.mask != r.mask)) {
                snprintf(m, sizeof m,
                         "warp %d: lanes at different warp collectives or with different arguments (lane %d at line %d "
                         "key %#llx mask %#x, lane %d at line %d key %#llx mask %#x)",
                         w, first % 32, r.line, (unsigned long long)r.key, r.mask, l, f.line, (unsigned long long)f.key,
                         f.mask);
                block_fail(b, m);
                return false;
            }
            if (in && f.state != F_WWAIT) ready = false;
        }
        if (!ready) continue;
        for (int l = 0; l < 32 && w * 32 + l < b->n; l++)
            if (b->f[(size_t)(w * 32 + l)].state == F_WWAIT) b->f[(size_t)(w * 32 + l)].state = F_RUN;
        any = true;
    }
    if (any) return true;
    if (nb && nb + nd == b->n) {
        if (nd) {
            snprintf(m, sizeof m, "divergent __syncthreads: %d threads wait at line %d, %d threads of the block exited",
                     nb, [&] { for (const fibre &f : b->f) if (f.state == F_BWAIT) return f.line; return 0; }(), nd);
            block_fail(b, m);
            return false;
        }
        const fibre &r = b->f[0];
        for (int i = 1; i < b->n; i++)
            if (b->f[(size_t)i].line != r.line) {
                snprintf(m, sizeof m, "divergent __syncthreads: thread 0 waits at line %d, thread %d at line %d", r.line, i,
                         b->f[(size_t)i].line);
                block_fail(b, m);
                return false;
            }
        for (fibre &f : b->f) f.state = F_RUN;
        S().c.barriers++;
        return true;
    }
    if (nd == b->n) return false;
    /* nothing can proceed */
    int tw = -1, tb = -1, td = -1;
    for (int i = 0; i < b->n; i++) {
        if (b->f[(size_t)i].state == F_WWAIT && tw < 0) tw = i;
        if (b->f[(size_t)i].state == F_BWAIT && tb < 0) tb = i;
        if (b->f[(size_t)i].state == F_DONE && td < 0) td = i;
    }
    snprintf(m, sizeof m,
             "deadlock: %d threads at __syncthreads (first: thread %d, line %d), %d at warp collectives (first: thread "
             "%d, line %d), %d exited (first: thread %d); a warp collective needs every lane of its mask",
             nb, tb, tb >= 0 ? b->f[(size_t)tb].line : 0, nw, tw, tw >= 0 ? b->f[(size_t)tw].line : 0, nd, td);
    block_fail(b, m);
    return false;
}

static block_run *the_block() {
    static block_run *b = new block_run; /* reused: the stacks and the arena are large */
    return b;
}

/* one block; false with b->msg on a fault */
static bool run_block(block_run *b) {
    b->failed = false;
    b->msg.clear();
    b->tags.clear();
    b->used = 0;
    for (int i = 0; i < b->n; i++) {
        fibre &f = b->f[(size_t)i];
        if (!f.parked) boot(b, i);
        f.state = F_RUN;
        f.line = 0;
    }
    for (;;) {
        for (int k = 0; k < b->n && !b->failed; k++) {
            const int i = S().reverse ? b->n - 1 - k : k;
            if (b->f[(size_t)i].state != F_RUN) continue;
            b->cur = i;
            set_thread_index(i);
            dispatch(b, i);
        }
        if (b->failed) return false;
        if (!release(b)) return !b->failed;
    }
}

} // namespace

/* ---- device-side entry points (lf_emu_cuda.h) -------------------------------------------------- */

namespace lf_emu {

void fail(const char *fmt, ...) {
    char m[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    block_run *b = cur_block;
    if (!b) {
        report("%s (outside a kernel)", m);
        abort();
    }
    block_fail(b, m);
    fibre &f = b->f[(size_t)b->cur];
    f.state = F_DONE; /* not parked: the slot's fibre is made again for the next block */
    to_scheduler(b, nullptr);
    _longjmp(b->sched_jb, 1);
}

void barrier(int line, const char *file) { wait_here(F_BWAIT, line, 0, 0, file); }

int lane(void) { return cur_block->cur % 32; }

static void warp_wait(unsigned mask, int line, uint64_t key) {
    block_run *b = cur_block;
    const int w = b->cur / 32, l = b->cur % 32, n = b->n - w * 32;
    if (n < 32) mask &= (1u << n) - 1u;
    if (!((mask >> l) & 1u)) fail("warp collective at line %d: lane %d calls it but is not in mask %#x", line, l, mask);
    S().c.warp_ops++;
    wait_here(F_WWAIT, line, key, mask, nullptr);
}

void warp_sync(unsigned mask, int line, uint64_t key) { warp_wait(mask, line, key); }

double warp_exchange(unsigned mask, int line, uint64_t key, double v, int src) {
    block_run *b = cur_block;
    const int w = b->cur / 32;
    if (!((mask >> src) & 1u)) fail("shuffle at line %d reads lane %d, which is not in mask %#x", line, src, mask);
    b->wval[(size_t)b->cur] = v;
    warp_wait(mask, line, key);
    const double r = b->wval[(size_t)(w * 32 + src)];
    warp_wait(mask, line, key ^ (1ull << 63));
    return r;
}

void *const *warp_ptrs(unsigned mask, int line, uint64_t key, void *mine) {
    block_run *b = cur_block;
    b->wptr[(size_t)b->cur] = mine;
    warp_wait(mask, line, key);
    return &b->wptr[(size_t)(b->cur / 32 * 32)];
}

void *shared(const void *tag, size_t bytes, size_t align) {
    block_run *b = cur_block;
    size_t off = 0;
    for (auto &t : b->tags)
        if (t.first == tag) return b->arena + t.second;
    off = (b->used + align - 1) / align * align;
    if (off + bytes > b->smem_limit)
        fail("__shared__ arrays need %zu bytes, over the %zu-byte limit of this launch", off + bytes, b->smem_limit);
    /* signalling NaN in every float slot: an uninitialised read propagates NaN */
    const uint32_t snan = 0x7fa5a5a5u;
    for (size_t i = off; i + 4 <= off + bytes; i += 4) memcpy(b->arena + i, &snan, 4);
    b->tags.emplace_back(tag, off);
    b->used = off + bytes;
    return b->arena + off;
}

int launch(const char *name, dim3 grid, dim3 block, size_t smem, void *stream, void (*fn)(void *), void *ctx) {
    emu_state &s = S();
    cudaError_t e = enter(name, true, cudaErrorLaunchOutOfResources);
    if (e != cudaSuccess) return ret(e);
    lf_emu_stream *x = stream_of((cudaStream_t)stream);
    if (!x) return ret(cudaErrorInvalidResourceHandle);
    const uint64_t nthr = (uint64_t)block.x * block.y * block.z;
    if (!grid.x || !grid.y || !grid.z || grid.y > 65535 || grid.z > 65535 || grid.x > 2147483647u || !nthr ||
        nthr > 1024 || block.z > 64 || smem > SMEM_MAX - SMEM_STATIC_MAX) {
        report("%s: invalid launch configuration grid (%u, %u, %u) block (%u, %u, %u) smem %zu", name, grid.x, grid.y,
               grid.z, block.x, block.y, block.z, smem);
        return ret(cudaErrorInvalidConfiguration);
    }
    begin_op(x);
    kernel_touch(x, name);
    s.c.launches++;
    block_run *b = the_block();
    b->n = (int)nthr;
    b->smem_limit = SMEM_STATIC_MAX + smem;
    b->fn = fn;
    b->ctx = ctx;
    b->f.resize(nthr); /* exactly the block: release() looks at every entry */
    b->wval.assign(((nthr + 31) / 32) * 32, 0.0);
    b->wptr.assign(((nthr + 31) / 32) * 32, nullptr);
    while (b->stacks.size() < nthr) b->stacks.push_back(static_cast<char *>(malloc(STACK)));
    blockDim = block;
    gridDim = grid;
    block_run *saved = cur_block;
    cur_block = b;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned k = 0; k < grid.x; k++) {
                const unsigned bx = s.reverse ? grid.x - 1 - k : k;
                blockIdx.x = bx, blockIdx.y = y, blockIdx.z = z;
                s.c.blocks++;
                s.c.threads += nthr;
                if (!run_block(b)) {
                    report("kernel %s, block (%u, %u, %u), thread %d: %s", name, bx, y, z, b->cur, b->msg.c_str());
                    s.c.kernel_faults++;
                    s.sticky = cudaErrorAssert;
                    cur_block = saved;
                    return cudaSuccess; /* reported at the next call, as a device-side fault is */
                }
            }
    cur_block = saved;
    return cudaSuccess;
}

} // namespace lf_emu

/* ---- control (lf_emu.h) ---------------------------------------------------------------------- */

extern "C" {

void lf_emu_fail_at(uint64_t n) {
    S().fail_at = n;
    S().c.calls = 0;
    S().failed_call.clear();
}
const char *lf_emu_failed_call(void) { return S().failed_call.c_str(); }

int lf_emu_names_call(const char *msg, const char *call) {
    if (!call[0]) return 0;
    if (strstr(msg, call)) return 1;
    size_t n = strlen(call);
    if (n > 2 && !strncmp(call, "lf_cunn_", 8) && !strcmp(call + n - 2, "_k")) {
        char launcher[96];
        snprintf(launcher, sizeof launcher, "%.*s failed", (int)(n - 2), call);
        return strstr(msg, launcher) != nullptr;
    }
    /* the apply kernels (kernels/cuda/apply.cu) fail inside their launcher, whose call the message shows */
    if (strstr(call, "_kernel_v") && strstr(msg, "lf_cuda_apply_launch")) return 1;
    return 0;
}
void lf_emu_get_counters(lf_emu_counters *c) { *c = S().c; }
void lf_emu_reset_counters(void) {
    uint64_t calls = S().c.calls;
    S().c = lf_emu_counters{};
    S().c.calls = calls;
}
size_t lf_emu_live(uint64_t *bytes) {
    uint64_t b = 0;
    for (auto &kv : S().allocs) b += kv.second.bytes;
    if (bytes) *bytes = b;
    return S().allocs.size();
}
size_t lf_emu_check_guards(void) {
    size_t bad = 0;
    for (auto &kv : S().allocs) bad += !guards_ok(kv.second, "at check");
    return bad;
}
int lf_emu_device_op(const char *call, void *stream) {
    cudaError_t e = enter(call, true, cudaErrorLaunchFailure);
    if (e != cudaSuccess) return ret(e);
    lf_emu_stream *x = stream_of((cudaStream_t)stream);
    if (!x) return ret(cudaErrorInvalidResourceHandle);
    begin_op(x);
    kernel_touch(x, call);
    S().c.launches++;
    return cudaSuccess;
}
int lf_emu_dev_range(const char *call, const char *what, const void *p, size_t bytes) {
    size_t off;
    alloc_rec *a = range(call, what, p, bytes ? bytes : 1, &off);
    if (a && a->pinned) {
        report("%s: %s %p is pinned host memory, not device memory", call, what, p);
        return 0;
    }
    return a != nullptr;
}
int lf_emu_inject(const char *call) { return enter(call, true, cudaErrorMemoryAllocation) != cudaSuccess; }
void lf_emu_handles(int delta) {
    enter("handle", false, cudaSuccess);
    S().handles += delta;
}
void lf_emu_reset_device(void) {
    S().sticky = cudaSuccess;
    S().last = cudaSuccess;
}

/* ---- the runtime API --------------------------------------------------------------------------- */

const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
#define N(x) \
    case x: return #x;
        N(cudaSuccess) N(cudaErrorInvalidValue) N(cudaErrorMemoryAllocation) N(cudaErrorInitializationError)
        N(cudaErrorInvalidConfiguration) N(cudaErrorInvalidPitchValue) N(cudaErrorInvalidDevicePointer)
        N(cudaErrorInvalidMemcpyDirection)
        N(cudaErrorNoDevice) N(cudaErrorInvalidDevice) N(cudaErrorInvalidResourceHandle) N(cudaErrorNotReady)
        N(cudaErrorIllegalAddress) N(cudaErrorLaunchOutOfResources) N(cudaErrorAssert) N(cudaErrorLaunchFailure)
        N(cudaErrorUnknown)
#undef N
    }
    return "cudaErrorUnknown";
}

const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidPitchValue: return "invalid pitch argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    case cudaErrorAssert: return "device-side assert triggered";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    default: return "unknown error";
    }
}

cudaError_t cudaGetLastError(void) {
    emu_state &s = S();
    if (s.sticky != cudaSuccess) return s.sticky;
    cudaError_t e = s.last;
    s.last = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) { return S().sticky != cudaSuccess ? S().sticky : S().last; }

cudaError_t cudaGetDeviceCount(int *count) {
    cudaError_t e = enter("cudaGetDeviceCount", true, cudaErrorNoDevice);
    *count = e == cudaSuccess ? 1 : 0;
    return ret(e);
}
cudaError_t cudaSetDevice(int device) {
    cudaError_t e = enter("cudaSetDevice", true, cudaErrorInvalidDevice);
    if (e == cudaSuccess && device != 0) e = cudaErrorInvalidDevice;
    if (e == cudaSuccess) S().device = device;
    return ret(e);
}
cudaError_t cudaGetDevice(int *device) {
    *device = S().device;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int device) {
    cudaError_t e = enter("cudaGetDeviceProperties", true, cudaErrorInvalidDevice);
    if (e == cudaSuccess && device != 0) e = cudaErrorInvalidDevice;
    if (e != cudaSuccess) return ret(e);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "lorafuse CUDA emulation on the CPU");
    p->totalGlobalMem = (size_t)16 << 30;
    p->sharedMemPerBlock = SMEM_STATIC_MAX;
    p->sharedMemPerBlockOptin = SMEM_MAX;
    p->regsPerBlock = 65536;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsDim[0] = p->maxThreadsDim[1] = 1024;
    p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 2147483647;
    p->maxGridSize[1] = p->maxGridSize[2] = 65535;
    p->major = 8;
    p->minor = 0;
    p->multiProcessorCount = 1;
    p->unifiedAddressing = 1;
    p->canMapHostMemory = 1;
    return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int *v) {
    *v = 13000;
    return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int *v) {
    *v = 13000;
    return cudaSuccess;
}

static cudaError_t alloc(void **p, size_t bytes, bool pinned, const char *call) {
    cudaError_t e = enter(call, true, cudaErrorMemoryAllocation);
    if (!p) return ret(cudaErrorInvalidValue);
    *p = nullptr;
    if (e != cudaSuccess) return ret(e);
    emu_state &s = S();
    const size_t round = (bytes + 255) / 256 * 256, total = GUARD + round + GUARD;
    if (bytes > ((size_t)1 << 40)) return ret(cudaErrorMemoryAllocation);
    unsigned char *raw = static_cast<unsigned char *>(aligned_alloc(256, total));
    if (!raw) return ret(cudaErrorMemoryAllocation);
    memset(raw, GUARD_BYTE, GUARD);
    memset(raw + GUARD, FILL_BYTE, bytes);
    memset(raw + GUARD + bytes, GUARD_BYTE, total - GUARD - bytes);
    alloc_rec a;
    a.raw = raw;
    a.bytes = bytes;
    a.total = total;
    a.pinned = pinned;
    a.id = s.next_id++;
    s.allocs[(uintptr_t)(raw + GUARD)] = a;
    *p = raw + GUARD;
    return cudaSuccess;
}

static cudaError_t release_alloc(void *p, bool pinned, const char *call) {
    cudaError_t e = enter(call, false, cudaSuccess);
    if (e != cudaSuccess) return e;
    if (!p) return cudaSuccess;
    emu_state &s = S();
    auto it = s.allocs.find((uintptr_t)p);
    if (it == s.allocs.end() || it->second.pinned != pinned) {
        report("%s(%p): not the start of a live %s allocation", call, p, pinned ? "pinned" : "device");
        return ret(cudaErrorInvalidValue);
    }
    host_join_all(); /* cudaFree / cudaFreeHost synchronise the device */
    if (!guards_ok(it->second, call)) {
        s.sticky = cudaErrorIllegalAddress; /* an overrun that real hardware may or may not have faulted on */
        free(it->second.raw);
        s.allocs.erase(it);
        return ret(cudaErrorIllegalAddress);
    }
    free(it->second.raw);
    s.allocs.erase(it);
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t bytes) { return alloc(p, bytes, false, "cudaMalloc"); }
cudaError_t cudaFree(void *p) { return release_alloc(p, false, "cudaFree"); }
cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned int flags) {
    if (flags & ~0x7u) return ret(cudaErrorInvalidValue);
    return alloc(p, bytes, true, "cudaHostAlloc");
}
cudaError_t cudaMallocHost(void **p, size_t bytes) { return alloc(p, bytes, true, "cudaMallocHost"); }
cudaError_t cudaFreeHost(void *p) { return release_alloc(p, true, "cudaFreeHost"); }
cudaError_t cudaHostGetDevicePointer(void **dev, void *host, unsigned int flags) {
    cudaError_t e = enter("cudaHostGetDevicePointer", true, cudaErrorInvalidValue);
    if (e != cudaSuccess) return ret(e);
    alloc_rec *a = find(host, nullptr);
    if (flags || !a || !a->pinned) return ret(cudaErrorInvalidValue);
    *dev = host; /* unified addressing */
    return cudaSuccess;
}

/* the device / host side of a copy: pointer in an allocation of the right kind */
static cudaError_t side(const char *call, const char *what, const void *p, size_t n, int want_dev, alloc_rec **a,
                        size_t *off) {
    *a = nullptr;
    *off = 0;
    alloc_rec *f = find(p, nullptr);
    const bool dev = f && !f->pinned;
    if (want_dev == 1 && !dev) {
        report("%s: %s %p is not device memory (%s)", call, what, p, f ? "pinned host memory" : "host memory");
        return cudaErrorInvalidValue;
    }
    if (want_dev == 0 && dev) {
        report("%s: %s %p is device memory but the copy kind says host", call, what, p);
        return cudaErrorInvalidValue;
    }
    if (!f) return cudaSuccess; /* pageable host memory: not ours to check */
    *a = range(call, what, p, n, off);
    return *a ? cudaSuccess : cudaErrorInvalidValue;
}

static cudaError_t copy(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t st, bool async) {
    const char *call = async ? "cudaMemcpyAsync" : "cudaMemcpy";
    cudaError_t e = enter(call, true, cudaErrorInvalidValue);
    if (e != cudaSuccess) return ret(e);
    emu_state &s = S();
    lf_emu_stream *x = stream_of(async ? st : nullptr);
    if (!x) return ret(cudaErrorInvalidResourceHandle);
    if ((int)kind < 0 || (int)kind > 4) return ret(cudaErrorInvalidMemcpyDirection);
    if (!n) return cudaSuccess;
    const int dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice ? 1 : kind == cudaMemcpyDefault ? -1 : 0;
    const int src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice ? 1 : kind == cudaMemcpyDefault ? -1 : 0;
    alloc_rec *ad, *as;
    size_t od, os;
    if ((e = side(call, "destination", dst, n, dst_dev, &ad, &od)) != cudaSuccess ||
        (e = side(call, "source", src, n, src_dev, &as, &os)) != cudaSuccess)
        return ret(e);
    const bool src_pageable = !as, dst_pageable = !ad;
    if (!async && src_pageable) host_join(x->vc); /* pageable -> device: stream sync before the copy */
    begin_op(x);
    touch(x, as, os, n, false, call);
    touch(x, ad, od, n, true, call);
    const bool from_dev = as && !as->pinned, to_dev = ad && !ad->pinned;
    if (async && from_dev && ad && ad->pinned) {
        /* the host may read it only after a synchronisation that covers this copy */
        const unsigned char *p = static_cast<const unsigned char *>(src);
        s.pending.push_back(landing{static_cast<unsigned char *>(dst), std::vector<unsigned char>(p, p + n), x->id, x->seq});
        memset(dst, 0xFF, n);
    } else if (async && as && as->pinned && to_dev) {
        s.staging.push_back(staged{dst, src, n, x->id, x->seq});
    } else {
        memmove(dst, src, n);
    }
    (from_dev && to_dev ? s.c.bytes_d2d : from_dev ? s.c.bytes_d2h : s.c.bytes_h2d) += n;
    s.c.copies++;
    /* synchronous calls return after the copy unless device -> device or pageable -> device */
    if (!async && !(from_dev && to_dev) && !(src_pageable && to_dev)) host_join(x->vc);
    (void)dst_pageable;
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind) {
    return copy(dst, src, n, kind, nullptr, false);
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t s) {
    return copy(dst, src, n, kind, s, true);
}

/* cudaMemcpy2DAsync, device <-> device only (all lorafuse uses; a host side is refused as not
 * emulated): width <= both pitches (else cudaErrorInvalidPitchValue), both extents pitch * (height - 1)
 * + width inside one device allocation, one stream operation touching both extents. */
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t st) {
    const char *call = "cudaMemcpy2DAsync";
    cudaError_t e = enter(call, true, cudaErrorInvalidValue);
    if (e != cudaSuccess) return ret(e);
    lf_emu_stream *x = stream_of(st);
    if (!x) return ret(cudaErrorInvalidResourceHandle);
    if ((int)kind < 0 || (int)kind > 4) return ret(cudaErrorInvalidMemcpyDirection);
    if (width > dpitch || width > spitch) return ret(cudaErrorInvalidPitchValue);
    if (!width || !height) return cudaSuccess;
    const size_t dn = dpitch * (height - 1) + width, sn = spitch * (height - 1) + width;
    alloc_rec *ad, *as;
    size_t od, os;
    const int want = kind == cudaMemcpyDeviceToDevice || kind == cudaMemcpyDefault ? 1 : -2;
    if (want != 1) {
        report("%s: only device-to-device copies are emulated (kind %d)", call, (int)kind);
        return ret(cudaErrorInvalidValue);
    }
    if ((e = side(call, "destination", dst, dn, 1, &ad, &od)) != cudaSuccess ||
        (e = side(call, "source", src, sn, 1, &as, &os)) != cudaSuccess)
        return ret(e);
    begin_op(x);
    touch(x, as, os, sn, false, call);
    touch(x, ad, od, dn, true, call);
    for (size_t r = 0; r < height; r++)
        memmove(static_cast<char *>(dst) + r * dpitch, static_cast<const char *>(src) + r * spitch, width);
    S().c.bytes_d2d += width * height;
    S().c.copies++;
    return cudaSuccess;
}

static cudaError_t set(void *p, int v, size_t n, cudaStream_t st, bool async) {
    const char *call = async ? "cudaMemsetAsync" : "cudaMemset";
    cudaError_t e = enter(call, true, cudaErrorInvalidValue);
    if (e != cudaSuccess) return ret(e);
    lf_emu_stream *x = stream_of(async ? st : nullptr);
    if (!x) return ret(cudaErrorInvalidResourceHandle);
    if (!n) return cudaSuccess;
    size_t off;
    alloc_rec *a = range(call, "destination", p, n, &off);
    if (!a) return ret(cudaErrorInvalidValue);
    begin_op(x);
    touch(x, a, off, n, true, call);
    memset(p, v, n);
    S().c.bytes_memset += n;
    S().c.memsets++;
    if (!async && a->pinned) host_join(x->vc); /* asynchronous except into pinned memory */
    return cudaSuccess;
}

cudaError_t cudaMemset(void *p, int v, size_t n) { return set(p, v, n, nullptr, false); }
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s) { return set(p, v, n, s, true); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *out, unsigned int flags) {
    cudaError_t e = enter("cudaStreamCreateWithFlags", true, cudaErrorInvalidValue);
    if (e != cudaSuccess) return ret(e);
    emu_state &s = S();
    lf_emu_stream *x = new lf_emu_stream{(int)s.streams.size(), flags, 0, s.host};
    s.streams.push_back(x);
    *out = x;
    return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t *out) { return cudaStreamCreateWithFlags(out, 0); }
cudaError_t cudaStreamDestroy(cudaStream_t st) {
    cudaError_t e = enter("cudaStreamDestroy", false, cudaSuccess);
    if (e != cudaSuccess) return e;
    emu_state &s = S();
    lf_emu_stream *x = stream_of(st);
    if (!x || x == &s.legacy) return ret(cudaErrorInvalidResourceHandle);
    /* its work still completes: keep its clock in the host's view of pending work */
    s.streams[(size_t)x->id] = new lf_emu_stream(*x);
    s.streams[(size_t)x->id]->flags |= 0x100u; /* no longer a handle the host holds */
    delete x;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t st) {
    cudaError_t e = enter("cudaStreamSynchronize", true, cudaErrorInvalidValue);
    if (e != cudaSuccess) return ret(e);
    lf_emu_stream *x = stream_of(st);
    if (!x) return ret(cudaErrorInvalidResourceHandle);
    host_join(x->vc);
    return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t st, cudaEvent_t ev, unsigned int flags) {
    cudaError_t e = enter("cudaStreamWaitEvent", true, cudaErrorInvalidValue);
    if (e != cudaSuccess) return ret(e);
    lf_emu_stream *x = stream_of(st);
    if (!x || !S().events.count(ev) || flags) return ret(cudaErrorInvalidResourceHandle);
    vc_join(x->vc, ev->vc);
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) {
    cudaError_t e = enter("cudaDeviceSynchronize", true, cudaErrorInvalidValue);
    if (e != cudaSuccess) return ret(e);
    host_join_all();
    return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *out, unsigned int flags) {
    cudaError_t e = enter("cudaEventCreateWithFlags", true, cudaErrorMemoryAllocation);
    if (e != cudaSuccess) return ret(e);
    lf_emu_event *ev = new lf_emu_event{flags, false, {}};
    S().events.insert(ev);
    *out = ev;
    return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t *out) { return cudaEventCreateWithFlags(out, 0); }
cudaError_t cudaEventDestroy(cudaEvent_t ev) {
    cudaError_t e = enter("cudaEventDestroy", false, cudaSuccess);
    if (e != cudaSuccess) return e;
    if (!S().events.erase(ev)) return ret(cudaErrorInvalidResourceHandle);
    delete ev;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t ev, cudaStream_t st) {
    cudaError_t e = enter("cudaEventRecord", true, cudaErrorInvalidValue);
    if (e != cudaSuccess) return ret(e);
    lf_emu_stream *x = stream_of(st);
    if (!x || !S().events.count(ev)) return ret(cudaErrorInvalidResourceHandle);
    begin_op(x);
    ev->vc = x->vc;
    ev->recorded = true;
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t ev) {
    cudaError_t e = enter("cudaEventSynchronize", true, cudaErrorInvalidValue);
    if (e != cudaSuccess) return ret(e);
    if (!S().events.count(ev)) return ret(cudaErrorInvalidResourceHandle);
    host_join(ev->vc);
    return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t ev) {
    cudaError_t e = enter("cudaEventQuery", true, cudaErrorInvalidValue);
    if (e != cudaSuccess) return ret(e);
    if (!S().events.count(ev)) return ret(cudaErrorInvalidResourceHandle);
    host_join(ev->vc); /* everything has run: the event is complete */
    return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    cudaError_t e = enter("cudaEventElapsedTime", true, cudaErrorInvalidValue);
    if (e != cudaSuccess) return ret(e);
    if (!S().events.count(a) || !S().events.count(b)) return ret(cudaErrorInvalidResourceHandle);
    if ((a->flags | b->flags) & cudaEventDisableTiming) return ret(cudaErrorInvalidResourceHandle);
    *ms = 0.0f; /* no time on the emulator: counts, not times (lf_emu_get_counters) */
    return cudaSuccess;
}

} // extern "C"
