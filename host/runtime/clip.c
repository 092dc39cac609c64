/* clip.c: forward pass of the CLIP text encoder and the SD/SDXL text conditioning (lf_clip.h), written
 * once over the compute interface (model_compute.h, host/base/compute.h); lf_clip.h's functions run it
 * on the CPU backend (lf_nn.h's operators).
 *
 * Per layer, x (T, w):  h = LN1(x); qkv = h Wqkvᵀ + b (T, 3w); q, k, v split (T, w) each;
 * a = attention(q, k, v; heads, d = w / heads, scale 1/sqrt(d), causal); x += a Woᵀ + bo;
 * h = LN2(x); x += fc2(act(fc1(h))).
 * Scratch per call (backend memory): ~ (6w + ff) * T floats; the position embeddings are uploaded
 * into h before they are added, so that a device backend needs no resident copy of a table it reads
 * a different length of per call.
 * Textual inversion (A1111 EmbeddingsWithFixes): a fix of a chunk replaces the token embeddings of
 * window positions offset + 1 .. offset + min(vectors, 77 - offset - 1) with its vectors (uploaded
 * over the looked-up rows), before the position embeddings are added; its width must be the encoder's.
 * Emphasis (lf_emphasis_apply) needs a mean over a whole window: it runs on the host, on each window
 * brought back from the backend (the conditioning is small, and the pipeline keeps it on the host).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clip_internal.h"
#include "compute_cpu.h"
#include "model_compute.h"

static float *lf_clip_alloc(lf_compute *c, int64_t n, lf_status *st) {
    return lf_mc_alloc(c, n, "text encoder", st);
}

/* lf_clip_forward_on with rows[t] (host; when rows and rows[t] are not NULL) in place of token t's
 * embedding. */
static lf_status lf_clip_forward_rows(const lf_clip *m, lf_compute *cp, const int32_t *ids, const float *const *rows,
                                      int64_t T, const lf_clip_run *run, float *hidden, float *pooled) {
    const lf_clip_config *c = &m->cfg;
    const int64_t w = c->width, ff = c->ff, L = c->layers;
    int skip = run ? run->skip : 1;
    if (T <= 0 || T > c->n_pos)
        return lf_err(LF_ERR_ARG, "text encoder: %lld tokens, the model takes 1..%lld", (long long)T,
                      (long long)c->n_pos);
    if (skip < 1 || skip > L)
        return lf_err(LF_ERR_ARG, "text encoder: clip skip %d outside 1..%lld", skip, (long long)L);
    for (int64_t i = 0; i < T; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab)
            return lf_err(LF_ERR_ARG, "text encoder: token id %d at position %lld is outside the vocabulary of %lld "
                                      "(%s)", ids[i], (long long)i, (long long)c->vocab, m->emb_name);
    const int64_t stop = pooled ? L : L - skip + 1; /* layers to run */
    lf_status st = LF_OK;
    float *x = lf_clip_alloc(cp, T * w, &st), *h = lf_clip_alloc(cp, T * w, &st);
    float *qkv = lf_clip_alloc(cp, T * 3 * w, &st), *q = lf_clip_alloc(cp, 3 * T * w, &st);
    float *a = lf_clip_alloc(cp, T * w, &st), *f = lf_clip_alloc(cp, T * ff, &st);
    if (st != LF_OK || (st = cp->embedding(cp, x, m->tok_emb, ids, T, c->vocab, w))) goto done;
    for (int64_t t = 0; rows && t < T; t++)
        if (rows[t] && (st = cp->upload(cp, x + t * w, rows[t], w))) goto done;
    if ((st = cp->upload(cp, h, m->pos_emb, T * w)) || (st = cp->add(cp, x, x, h, T * w))) goto done;
    const int64_t heads = c->heads, d = w / heads;
    float *k = q + T * w, *v = q + 2 * T * w;
    for (int64_t l = 0; l < stop; l++) {
        const lf_clip_layer *y = &m->layers[l];
        if ((st = cp->layer_norm(cp, h, x, y->ln1_w, y->ln1_b, T, w, c->eps)) ||
            (st = cp->linear(cp, qkv, h, &y->qkv_w, y->qkv_b, T, w, 3 * w)) ||
            (st = cp->copy2d(cp, q, w, qkv, 3 * w, T, w)) || (st = cp->copy2d(cp, k, w, qkv + w, 3 * w, T, w)) ||
            (st = cp->copy2d(cp, v, w, qkv + 2 * w, 3 * w, T, w)) ||
            (st = cp->attention(cp, a, q, k, v, 1, T, T, heads, d, 1.0f / sqrtf((float)d), 1)) ||
            (st = cp->linear(cp, h, a, &y->out_w, y->out_b, T, w, w)) || (st = cp->add(cp, x, x, h, T * w)) ||
            (st = cp->layer_norm(cp, h, x, y->ln2_w, y->ln2_b, T, w, c->eps)) ||
            (st = cp->linear(cp, f, h, &y->fc1_w, y->fc1_b, T, w, ff)) ||
            (st = c->act == LF_CLIP_GELU ? cp->gelu(cp, f, f, T * ff) : cp->quick_gelu(cp, f, f, T * ff)) ||
            (st = cp->linear(cp, h, f, &y->fc2_w, y->fc2_b, T, ff, w)) || (st = cp->add(cp, x, x, h, T * w)))
            goto done;
        if (hidden && l + 1 == L - skip + 1) {
            st = run && run->final_ln ? cp->layer_norm(cp, hidden, x, m->lnf_w, m->lnf_b, T, w, c->eps)
                                      : cp->copy2d(cp, hidden, T * w, x, T * w, 1, T * w);
            if (st) goto done;
        }
    }
    if (pooled) {
        int64_t e = 0; /* first position of the largest id (the first EOS) */
        for (int64_t i = 1; i < T; i++)
            if (ids[i] > ids[e]) e = i;
        float *row = h; /* LN_final(h_L)[e] */
        if ((st = cp->layer_norm(cp, row, x + e * w, m->lnf_w, m->lnf_b, 1, w, c->eps))) goto done;
        if (m->proj_w) {
            lf_view pv = {m->proj_w, LF_F32, 2, {c->proj, w}};
            st = cp->linear(cp, pooled, row, &pv, NULL, 1, w, c->proj);
        } else {
            st = cp->copy2d(cp, pooled, w, row, w, 1, w);
        }
    }
done:
    cp->release(cp, x);
    cp->release(cp, h);
    cp->release(cp, qkv);
    cp->release(cp, q);
    cp->release(cp, a);
    cp->release(cp, f);
    return st;
}

lf_status lf_clip_forward_on(const lf_clip *m, lf_compute *c, const int32_t *ids, int64_t T, const lf_clip_run *run,
                             float *hidden, float *pooled) {
    return lf_clip_forward_rows(m, c, ids, NULL, T, run, hidden, pooled);
}

lf_status lf_clip_forward(const lf_clip *m, const int32_t *ids, int64_t T, const lf_clip_run *run, float *hidden,
                          float *pooled) {
    return lf_clip_forward_rows(m, lf_compute_cpu(), ids, NULL, T, run, hidden, pooled);
}

/* The rows of window k that its fixes replace (rows[t] NULL elsewhere); 0 when it has none. */
static lf_status lf_clip_fix_rows(const lf_clip *m, const lf_prompt_chunks *c, size_t k,
                                  const float *rows[LF_CLIP_CTX], int *any) {
    *any = 0;
    for (int t = 0; t < LF_CLIP_CTX; t++) rows[t] = NULL;
    for (size_t i = 0; i < c->n_fixes; i++) {
        const lf_emb_fix *f = &c->fixes[i];
        if (f->chunk != k) continue;
        if (f->width != m->cfg.width)
            return lf_err(LF_ERR_MODEL, "%s: embedding vectors of width %lld; this text encoder's tokens have width %lld "
                          "(an embedding for another model family)", f->path, (long long)f->width,
                          (long long)m->cfg.width);
        int64_t room = LF_CLIP_CTX - (int64_t)f->offset - 1, n = f->vectors < room ? f->vectors : room;
        for (int64_t j = 0; j < n; j++) rows[f->offset + 1 + (size_t)j] = f->vec + j * f->width;
        *any = 1;
    }
    return LF_OK;
}

lf_status lf_clip_encode_chunks_on(const lf_clip *m, lf_compute *cp, const lf_prompt_chunks *c,
                                   const lf_clip_run *run, lf_emph_mode mode, float *hidden, float *pooled) {
    const int64_t w = m->cfg.width, np = m->cfg.proj ? m->cfg.proj : w;
    lf_status st = LF_OK;
    float *hb = lf_clip_alloc(cp, LF_CLIP_CTX * w, &st), *pb = pooled ? lf_clip_alloc(cp, np, &st) : NULL;
    for (size_t k = 0; k < c->n && st == LF_OK; k++) {
        float *hk = hidden + (int64_t)k * LF_CLIP_CTX * w;
        const float *rows[LF_CLIP_CTX];
        int any;
        if (!(st = lf_clip_fix_rows(m, c, k, rows, &any)) &&
            !(st = lf_clip_forward_rows(m, cp, c->ids + k * LF_CLIP_CTX, any ? rows : NULL, LF_CLIP_CTX, run, hb,
                                        k == 0 ? pb : NULL)) &&
            !(st = cp->download(cp, hk, hb, LF_CLIP_CTX * w)) && k == 0 && pb)
            st = cp->download(cp, pooled, pb, np);
        if (st) lf_err_wrap(st, "window %zu of %zu: ", k + 1, c->n);
        else lf_emphasis_apply(hk, c->mult + k * LF_CLIP_CTX, LF_CLIP_CTX, w, mode);
    }
    cp->release(cp, hb);
    cp->release(cp, pb);
    return st;
}

lf_status lf_clip_encode_chunks(const lf_clip *m, const lf_prompt_chunks *c, const lf_clip_run *run,
                                lf_emph_mode mode, float *hidden, float *pooled) {
    return lf_clip_encode_chunks_on(m, lf_compute_cpu(), c, run, mode, hidden, pooled);
}

void lf_text_cond_free(lf_text_cond *c) {
    if (!c) return;
    free(c->context);
    free(c->pooled);
    memset(c, 0, sizeof *c);
}

lf_status lf_text_encode_sd_on(const lf_clip *te, lf_compute *cp, const lf_tokenizer *tok, const char *prompt,
                               int clip_skip, int32_t pad, lf_emph_mode mode, lf_embeddings *emb, lf_text_cond *out) {
    memset(out, 0, sizeof *out);
    lf_chunk_opts o = lf_chunk_opts_default(pad);
    o.mode = mode;
    o.emb = emb;
    lf_prompt_chunks c;
    lf_status st = lf_prompt_chunk(tok, prompt, &o, &c);
    if (st) return st;
    out->width = te->cfg.width;
    out->tokens = (int64_t)c.n * LF_CLIP_CTX;
    out->context = malloc((size_t)(out->tokens * out->width) * sizeof(float));
    if (!out->context) {
        lf_prompt_chunks_free(&c);
        return lf_err(LF_ERR_NOMEM, "text encoder: out of memory");
    }
    lf_clip_run run = {clip_skip, 1};
    st = lf_clip_encode_chunks_on(te, cp, &c, &run, mode, out->context, NULL);
    lf_prompt_chunks_free(&c);
    if (st) lf_text_cond_free(out);
    return st;
}

lf_status lf_text_encode_sd(const lf_clip *te, const lf_tokenizer *tok, const char *prompt, int clip_skip,
                            int32_t pad, lf_emph_mode mode, lf_embeddings *emb, lf_text_cond *out) {
    return lf_text_encode_sd_on(te, lf_compute_cpu(), tok, prompt, clip_skip, pad, mode, emb, out);
}

lf_status lf_text_encode_sdxl_chunks_on(const lf_clip *te1, const lf_clip *te2, lf_compute *cp,
                                        const lf_prompt_chunks *c1, const lf_prompt_chunks *c2, lf_emph_mode mode,
                                        lf_text_cond *out) {
    memset(out, 0, sizeof *out);
    if (c1->n != c2->n)
        return lf_err(LF_ERR_ARG, "SDXL conditioning: TE1 has %zu windows, TE2 %zu", c1->n, c2->n);
    const int64_t w1 = te1->cfg.width, w2 = te2->cfg.width, T = (int64_t)c1->n * LF_CLIP_CTX;
    out->tokens = T;
    out->width = w1 + w2;
    out->pooled_dim = te2->cfg.proj ? te2->cfg.proj : w2;
    out->context = malloc((size_t)(T * (w1 + w2)) * sizeof(float));
    out->pooled = malloc((size_t)out->pooled_dim * sizeof(float));
    float *h1 = malloc((size_t)(T * w1) * sizeof(float)), *h2 = malloc((size_t)(T * w2) * sizeof(float));
    lf_status st = LF_OK;
    if (!out->context || !out->pooled || !h1 || !h2) {
        st = lf_err(LF_ERR_NOMEM, "SDXL conditioning: out of memory");
        goto done;
    }
    lf_clip_run run = {2, 0}; /* penultimate, no final LN */
    st = lf_clip_encode_chunks_on(te1, cp, c1, &run, mode, h1, NULL);
    if (st) {
        lf_err_wrap(st, "SDXL TE1: ");
        goto done;
    }
    st = lf_clip_encode_chunks_on(te2, cp, c2, &run, mode, h2, out->pooled);
    if (st) {
        lf_err_wrap(st, "SDXL TE2: ");
        goto done;
    }
    for (int64_t t = 0; t < T; t++) {
        memcpy(out->context + t * (w1 + w2), h1 + t * w1, (size_t)w1 * sizeof(float));
        memcpy(out->context + t * (w1 + w2) + w1, h2 + t * w2, (size_t)w2 * sizeof(float));
    }
done:
    free(h1);
    free(h2);
    if (st) lf_text_cond_free(out);
    return st;
}

lf_status lf_text_encode_sdxl_chunks(const lf_clip *te1, const lf_clip *te2, const lf_prompt_chunks *c1,
                                     const lf_prompt_chunks *c2, lf_emph_mode mode, lf_text_cond *out) {
    return lf_text_encode_sdxl_chunks_on(te1, te2, lf_compute_cpu(), c1, c2, mode, out);
}

lf_status lf_text_encode_sdxl_on(const lf_clip *te1, const lf_clip *te2, lf_compute *cp, const lf_tokenizer *tok,
                                 const char *prompt, lf_emph_mode mode, lf_embeddings *emb, lf_text_cond *out) {
    memset(out, 0, sizeof *out);
    lf_chunk_opts o1 = lf_chunk_opts_default(lf_tokenizer_eos(tok)), o2 = lf_chunk_opts_default(0);
    o1.mode = o2.mode = mode;
    o1.emb = o2.emb = emb;
    o1.emb_part = LF_EMB_CLIP_L;
    o2.emb_part = LF_EMB_CLIP_G;
    lf_prompt_chunks c1, c2;
    lf_status st = lf_prompt_chunk(tok, prompt, &o1, &c1);
    if (st) return st;
    st = lf_prompt_chunk(tok, prompt, &o2, &c2);
    if (st) {
        lf_prompt_chunks_free(&c1);
        return st;
    }
    st = lf_text_encode_sdxl_chunks_on(te1, te2, cp, &c1, &c2, mode, out);
    lf_prompt_chunks_free(&c1);
    lf_prompt_chunks_free(&c2);
    return st;
}

lf_status lf_text_encode_sdxl(const lf_clip *te1, const lf_clip *te2, const lf_tokenizer *tok, const char *prompt,
                              lf_emph_mode mode, lf_embeddings *emb, lf_text_cond *out) {
    return lf_text_encode_sdxl_on(te1, te2, lf_compute_cpu(), tok, prompt, mode, emb, out);
}
