/* compute_mix.c: the per-sample weights compute of compute_mix.h: linear and conv2d of the listed layers
 * split by the weight each sample uses, plus each slot's low-rank terms; everything else is the inner op.
 * Everything goes through the inner compute's own ops (copy2d for gathers and scatters, scale and add for
 * y += scale * term, alloc for scratch), so its memory may be a device's. */
#include <stdlib.h>
#include <string.h>

#include "compute_mix.h"
#include "host/base/util.h"

/* One intercepted product: a linear of r rows per sample, or a conv over single images. */
typedef struct {
    int conv;
    int64_t r, in, out;                                       /* linear */
    int64_t C_in, H, Wd, C_out, kh, kw, stride, pad, Ho, Wo;  /* conv */
    int64_t xs, ys;                                           /* floats per sample in x and y */
} lf_mix_op;

static int lf_mix_cmp(const void *a, const void *b) {
    uintptr_t x = (uintptr_t)((const lf_mix_layer *)a)->w0, y = (uintptr_t)((const lf_mix_layer *)b)->w0;
    return x < y ? -1 : x > y;
}

void lf_compute_mix_sort(lf_mix_layer *layers, size_t n) {
    if (n > 1) qsort(layers, n, sizeof *layers, lf_mix_cmp);
}

static const lf_mix_layer *lf_mix_find(const lf_compute_mix *m, const void *w) {
    size_t lo = 0, hi = m->n_layers;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uintptr_t v = (uintptr_t)m->layers[mid].w0;
        if (v == (uintptr_t)w) return &m->layers[mid];
        if (v < (uintptr_t)w) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* scratch buffer i of at least n floats of the inner compute's memory (contents lost when it grows) */
static lf_status lf_mix_buf(lf_compute_mix *m, int i, int64_t n, float **out) {
    if (m->cap[i] < n) {
        if (m->buf[i] && m->inner->release) m->inner->release(m->inner, m->buf[i]);
        m->buf[i] = NULL;
        m->cap[i] = 0;
        lf_status st = m->inner->alloc(m->inner, n, &m->buf[i]);
        if (st) return st;
        m->cap[i] = n;
    }
    *out = m->buf[i];
    return LF_OK;
}

static lf_view lf_mix_view(const float *p, int64_t a, int64_t b, int64_t kh, int64_t kw, int conv) {
    lf_view v;
    memset(&v, 0, sizeof v);
    v.data = p;
    v.dtype = LF_F32;
    v.ndim = conv ? 4 : 2;
    v.shape[0] = a, v.shape[1] = b, v.shape[2] = kh, v.shape[3] = kw;
    return v;
}

/* The layer's product on n contiguous samples. */
static lf_status lf_mix_base(lf_compute_mix *m, const lf_mix_op *op, float *y, const float *x, const lf_view *W,
                             const float *b, int64_t n) {
    lf_compute *in = m->inner;
    if (!op->conv) return in->linear(in, y, x, W, b, n * op->r, op->in, op->out);
    return in->conv2d(in, y, x, W, b, n, op->C_in, op->H, op->Wd, op->C_out, op->kh, op->kw, op->stride, op->pad);
}

/* t (n samples of op->ys floats) = up(down(x)) of one term (scratch buffers 2..4). */
static lf_status lf_mix_lowrank(lf_compute_mix *m, const lf_mix_op *op, const lf_mix_term *t, const float *x,
                                int64_t n, float **res) {
    lf_compute *in = m->inner;
    int64_t R = t->rank;
    float *t1 = NULL, *t2 = NULL, *t0 = NULL;
    lf_status st;
    if (!op->conv) {
        lf_view d = lf_mix_view(t->down, R, op->in, 1, 1, 0), u = lf_mix_view(t->up, op->out, R, 1, 1, 0);
        if ((st = lf_mix_buf(m, 2, n * op->r * R, &t1)) || (st = lf_mix_buf(m, 3, n * op->ys, &t2))) return st;
        if ((st = in->linear(in, t1, x, &d, NULL, n * op->r, op->in, R))) return st;
        st = in->linear(in, t2, t1, &u, NULL, n * op->r, R, op->out);
    } else {
        int64_t So = op->Ho * op->Wo;
        lf_view u = lf_mix_view(t->up, op->C_out, R, 1, 1, 1);
        if ((st = lf_mix_buf(m, 2, n * R * So, &t1)) || (st = lf_mix_buf(m, 3, n * op->ys, &t2))) return st;
        if (!t->mid) {
            lf_view d = lf_mix_view(t->down, R, op->C_in, op->kh, op->kw, 1);
            st = in->conv2d(in, t1, x, &d, NULL, n, op->C_in, op->H, op->Wd, R, op->kh, op->kw, op->stride, op->pad);
        } else {
            lf_view d = lf_mix_view(t->down, R, op->C_in, 1, 1, 1), mid = lf_mix_view(t->mid, R, R, op->kh, op->kw, 1);
            if ((st = lf_mix_buf(m, 4, n * R * op->H * op->Wd, &t0))) return st;
            st = in->conv2d(in, t0, x, &d, NULL, n, op->C_in, op->H, op->Wd, R, 1, 1, 1, 0);
            if (!st) st = in->conv2d(in, t1, t0, &mid, NULL, n, R, op->H, op->Wd, R, op->kh, op->kw, op->stride, op->pad);
        }
        if (!st) st = in->conv2d(in, t2, t1, &u, NULL, n, R, op->Ho, op->Wo, op->C_out, 1, 1, 1, 0);
    }
    *res = t2;
    return st;
}

/* The samples (in order) whose slot satisfies pick; their count. */
static int64_t lf_mix_pick(const lf_compute_mix *m, int64_t *list, int (*pick)(const lf_compute_mix *, const lf_mix_layer *,
                                                                              int, const void *), const lf_mix_layer *L,
                           const void *arg) {
    int64_t n = 0;
    for (int64_t s = 0; s < m->n_samples; s++)
        if (pick(m, L, m->slot_of[s], arg)) list[n++] = s;
    return n;
}

static int lf_mix_same_weight(const lf_compute_mix *m, const lf_mix_layer *L, int slot, const void *w) {
    (void)m;
    return (const void *)L->slots[slot].weight == w;
}

static int lf_mix_same_slot(const lf_compute_mix *m, const lf_mix_layer *L, int slot, const void *k) {
    (void)m, (void)L;
    return slot == *(const int *)k;
}

/* the length of the run of consecutive sample indices that starts at list[i] (0 when i >= n): the
 * batch rows such a run covers are contiguous, so each run takes one copy or one op */
static int64_t lf_mix_run(const int64_t *list, int64_t n, int64_t i) {
    int64_t j = i;
    while (j < n && (j == i || list[j] == list[j - 1] + 1)) j++;
    return j - i;
}

/* Copy the listed samples' blocks (per floats each) between a packed array and the batch, one copy per
 * run: to_batch 0 gathers batch -> packed, 1 scatters packed -> batch. */
static lf_status lf_mix_move(lf_compute *in, float *packed, float *batch, const int64_t *list, int64_t n, int64_t per,
                             int to_batch) {
    lf_status st = LF_OK;
    for (int64_t i = 0, r; !st && (r = lf_mix_run(list, n, i)) > 0; i += r) {
        float *p = packed + i * per, *b = batch + list[i] * per;
        st = to_batch ? in->copy2d(in, b, per, p, per, r, per) : in->copy2d(in, p, per, b, per, r, per);
    }
    return st;
}

/* y's listed blocks += scale * d (d packed), one scale and one add per run */
static lf_status lf_mix_axpy(lf_compute *in, float *y, float *d, float scale, const int64_t *list, int64_t n,
                             int64_t per) {
    lf_status st = LF_OK;
    for (int64_t i = 0, r; !st && (r = lf_mix_run(list, n, i)) > 0; i += r) {
        float *dp = d + i * per, *yp = y + list[i] * per;
        st = in->scale(in, dp, dp, scale, r * per);
        if (!st) st = in->add(in, yp, yp, dp, r * per);
    }
    return st;
}

/* Every slot's low-rank terms of a linear layer as one lora_terms call: a segment per run of consecutive
 * samples of a slot (its rows), the slot's terms shared by its segments. */
static lf_status lf_mix_segmented(lf_compute_mix *m, const lf_mix_layer *L, const lf_mix_op *op, float *y,
                                  const float *x) {
    size_t nt = 0;
    for (size_t k = 0; k < m->n_slots; k++) nt += L->slots[k].n_terms;
    lf_lora_term *terms = calloc(nt ? nt : 1, sizeof *terms);
    lf_lora_seg *segs = calloc((size_t)m->n_samples, sizeof *segs);
    size_t *first = calloc(m->n_slots, sizeof *first), *count = calloc(m->n_slots, sizeof *count);
    lf_status st = LF_OK;
    if (!terms || !segs || !first || !count) st = lf_err(LF_ERR_NOMEM, "mixed batch: out of memory");
    size_t n = 0, ns = 0;
    for (size_t k = 0; k < m->n_slots && !st; k++) {
        const lf_mix_slot *sl = &L->slots[k];
        first[k] = n;
        for (size_t i = 0; i < sl->n_terms; i++) {
            const lf_mix_term *t = &sl->terms[i];
            if (t->scale == 0.0f) continue;
            terms[n].down = lf_mix_view(t->down, t->rank, op->in, 1, 1, 0);
            terms[n].up = lf_mix_view(t->up, op->out, t->rank, 1, 1, 0);
            terms[n++].scale = t->scale;
        }
        count[k] = n - first[k];
    }
    for (int64_t s = 0; s < m->n_samples && !st;) {
        int64_t e = s + 1;
        while (e < m->n_samples && m->slot_of[e] == m->slot_of[s]) e++;
        size_t k = (size_t)m->slot_of[s];
        if (count[k]) {
            segs[ns].row0 = s * op->r, segs[ns].rows = (e - s) * op->r;
            segs[ns].term0 = first[k], segs[ns++].n_terms = count[k];
        }
        s = e;
    }
    if (!st && ns) {
        st = m->inner->lora_terms(m->inner, y, x, m->n_samples * op->r, op->in, op->out, terms, n, segs, ns);
        if (!st) m->n_segmented++;
    }
    free(terms);
    free(segs);
    free(first);
    free(count);
    return st;
}

static lf_status lf_mix_layer_run(lf_compute_mix *m, const lf_mix_layer *L, const lf_mix_op *op, float *y,
                                  const float *x, const lf_view *W, const float *b) {
    int64_t S = m->n_samples;
    if (S <= 0) return lf_err(LF_ERR_ARG, "mixed batch: no samples");
    for (int64_t s = 0; s < S; s++)
        if (m->slot_of[s] < 0 || (size_t)m->slot_of[s] >= m->n_slots)
            return lf_err(LF_ERR_ARG, "mixed batch: sample %lld has no slot", (long long)s);
    int64_t *list = malloc((size_t)S * sizeof *list);
    unsigned char *done = calloc((size_t)S, 1);
    lf_status st = LF_OK;
    if (!list || !done) st = lf_err(LF_ERR_NOMEM, "mixed batch: out of memory");
    /* the products: one per distinct weight among the samples' slots */
    double t0 = lf_clock_s();
    int split = 0;
    for (int64_t s = 0; s < S && !st; s++) {
        if (done[s]) continue;
        const lf_view *w = L->slots[m->slot_of[s]].weight;
        int64_t n = lf_mix_pick(m, list, lf_mix_same_weight, L, w);
        for (int64_t i = 0; i < n; i++) done[list[i]] = 1;
        const lf_view *use = w ? w : W;
        if (n == S) {
            st = lf_mix_base(m, op, y, x, use, b, S);
            continue;
        }
        split = 1;
        float *gx = NULL, *gy = NULL;
        if ((st = lf_mix_buf(m, 0, n * op->xs, &gx)) || (st = lf_mix_buf(m, 1, n * op->ys, &gy))) break;
        if ((st = lf_mix_move(m->inner, gx, (float *)x, list, n, op->xs, 0))) break;
        if ((st = lf_mix_base(m, op, gy, gx, use, b, n))) break;
        st = lf_mix_move(m->inner, gy, y, list, n, op->ys, 1);
    }
    double t1 = lf_clock_s();
    if (split) m->t_split += t1 - t0;
    /* the low-rank terms: a linear's in one segmented op when the inner compute has one, else slot by slot */
    const int seg = !op->conv && m->inner->lora_terms;
    if (seg && !st) st = lf_mix_segmented(m, L, op, y, x);
    for (size_t k = 0; k < m->n_slots && !st && !seg; k++) {
        const lf_mix_slot *sl = &L->slots[k];
        int any = 0;
        for (size_t i = 0; i < sl->n_terms; i++) any |= sl->terms[i].scale != 0.0f;
        if (!any) continue;
        int key = (int)k;
        int64_t n = lf_mix_pick(m, list, lf_mix_same_slot, L, &key);
        if (!n) continue;
        const float *gx = x;
        if (n < S) {
            float *g = NULL;
            if ((st = lf_mix_buf(m, 0, n * op->xs, &g)) || (st = lf_mix_move(m->inner, g, (float *)x, list, n, op->xs, 0)))
                break;
            gx = g;
        }
        for (size_t i = 0; i < sl->n_terms && !st; i++) {
            const lf_mix_term *t = &sl->terms[i];
            float *d = NULL;
            if (t->scale == 0.0f || (st = lf_mix_lowrank(m, op, t, gx, n, &d))) continue;
            st = lf_mix_axpy(m->inner, y, d, t->scale, list, n, op->ys);
        }
    }
    m->t_terms += lf_clock_s() - t1;
    free(list);
    free(done);
    return st;
}

static lf_status lf_mix_linear(lf_compute *c, float *y, const float *x, const lf_view *W, const float *b, int64_t M,
                               int64_t in, int64_t out) {
    lf_compute_mix *m = (lf_compute_mix *)c;
    const lf_mix_layer *L = m->n_samples > 0 ? lf_mix_find(m, W->data) : NULL;
    if (!L) return m->inner->linear(m->inner, y, x, W, b, M, in, out);
    if (M % m->n_samples)
        return lf_err(LF_ERR_SHAPE, "mixed batch: a product of %lld rows is not %lld samples' rows", (long long)M,
                      (long long)m->n_samples);
    lf_mix_op op;
    memset(&op, 0, sizeof op);
    op.r = M / m->n_samples, op.in = in, op.out = out;
    op.xs = op.r * in, op.ys = op.r * out;
    return lf_mix_layer_run(m, L, &op, y, x, W, b);
}

static lf_status lf_mix_conv2d(lf_compute *c, float *y, const float *x, const lf_view *W, const float *b, int64_t N,
                               int64_t C_in, int64_t H, int64_t Wd, int64_t C_out, int64_t kh, int64_t kw,
                               int64_t stride, int64_t pad) {
    lf_compute_mix *m = (lf_compute_mix *)c;
    const lf_mix_layer *L = m->n_samples > 0 ? lf_mix_find(m, W->data) : NULL;
    if (!L) return m->inner->conv2d(m->inner, y, x, W, b, N, C_in, H, Wd, C_out, kh, kw, stride, pad);
    if (N != m->n_samples)
        return lf_err(LF_ERR_SHAPE, "mixed batch: a convolution over %lld images, %lld samples", (long long)N,
                      (long long)m->n_samples);
    lf_mix_op op;
    memset(&op, 0, sizeof op);
    op.conv = 1, op.C_in = C_in, op.H = H, op.Wd = Wd, op.C_out = C_out, op.kh = kh, op.kw = kw;
    op.stride = stride, op.pad = pad;
    op.Ho = (H + 2 * pad - kh) / stride + 1, op.Wo = (Wd + 2 * pad - kw) / stride + 1;
    op.xs = C_in * H * Wd, op.ys = C_out * op.Ho * op.Wo;
    return lf_mix_layer_run(m, L, &op, y, x, W, b);
}

lf_status lf_compute_mix_init(lf_compute_mix *m, lf_compute *inner) {
    memset(m, 0, sizeof *m);
    if (!inner) return lf_err(LF_ERR_ARG, "mixed batch: no compute");
    m->c = *inner;
    m->c.linear = lf_mix_linear;
    m->c.conv2d = lf_mix_conv2d;
    /* the fused conv + residual add would bypass lf_mix_conv2d: the model composes it through ours */
    m->c.conv2d_add = NULL;
    m->inner = inner;
    return LF_OK;
}

void lf_compute_mix_free(lf_compute_mix *m) {
    for (int i = 0; i < LF_MIX_BUFS; i++)
        if (m->buf[i] && m->inner && m->inner->release) m->inner->release(m->inner, m->buf[i]);
    memset(m, 0, sizeof *m);
}
