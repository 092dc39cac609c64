/* emphasis.c: A1111 prompt emphasis: parser, 75-token chunking with comma backtrack and textual-inversion
 * embeddings (find_embedding_at_position, PromptChunkFix), weighting.
 * The rules, formulas and shapes are in lf_emphasis.h; this file follows them in the same order as
 * A1111's parse_prompt_attention / tokenize_line / EmphasisOriginal.after_transformers.
 */
#include "lorafuse/lf_emphasis.h"

#include <stdlib.h>
#include <string.h>

#include "host/base/util.h"

/* ---------------------------------------------------------------------------------------------- */
/* parser                                                                                         */

typedef struct span_vec {
    lf_emph_span *v;
    size_t n, cap;
} span_vec;

static lf_status span_push(span_vec *s, const char *text, size_t len, double w) {
    if (lf_grow(&s->v, &s->cap, s->n + 1)) return lf_err(LF_ERR_NOMEM, "emphasis: out of memory");
    char *t = malloc(len + 1);
    if (!t) return lf_err(LF_ERR_NOMEM, "emphasis: out of memory");
    memcpy(t, text, len);
    t[len] = 0;
    s->v[s->n].text = t;
    s->v[s->n].weight = w;
    s->n++;
    return LF_OK;
}

void lf_emph_spans_free(lf_emph_spans *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) free(s->v[i].text);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static int is_word(char c) {
    unsigned char u = (unsigned char)c;
    return u >= 0x80 || (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || u == '_';
}

/* else-branch of the parser: split at \s*\bBREAK\b\s*, parts with weight 1, ("BREAK", -1) between. */
static lf_status push_text(span_vec *s, const char *t, size_t n) {
    size_t part = 0, p = 0;
    while (p + 5 <= n) {
        if (memcmp(t + p, "BREAK", 5) == 0 && (p == 0 || !is_word(t[p - 1])) && (p + 5 == n || !is_word(t[p + 5]))) {
            size_t a = p, b = p + 5;
            while (a > part && is_ws(t[a - 1])) a--;
            while (b < n && is_ws(t[b])) b++;
            lf_status st = span_push(s, t + part, a - part, 1.0);
            if (!st) st = span_push(s, "BREAK", 5, -1.0);
            if (st) return st;
            part = p = b;
        } else {
            p++;
        }
    }
    return span_push(s, t + part, n - part, 1.0);
}

typedef struct stack {
    size_t *v;
    size_t n, cap;
} stack;

static int stack_push(stack *s, size_t x) {
    if (lf_grow(&s->v, &s->cap, s->n + 1)) return 0;
    s->v[s->n++] = x;
    return 1;
}

static void multiply_range(span_vec *s, size_t from, double m) {
    for (size_t p = from; p < s->n; p++) s->v[p].weight *= m;
}

/* ':' \s* ([+-]?[.\d]+) \s* ')' at t[i]; on a match sets *end and the parsed weight. */
static int match_weight(const char *t, size_t i, size_t *end, double *w) {
    size_t p = i + 1;
    while (is_ws(t[p])) p++;
    size_t num = p;
    if (t[p] == '+' || t[p] == '-') p++;
    size_t digits = p;
    while (t[p] == '.' || (t[p] >= '0' && t[p] <= '9')) p++;
    if (p == digits) return 0;
    size_t num_end = p;
    while (is_ws(t[p])) p++;
    if (t[p] != ')') return 0;
    char buf[64];
    size_t len = num_end - num;
    if (len >= sizeof buf) return 0;
    memcpy(buf, t + num, len);
    buf[len] = 0;
    char *e;
    *w = strtod(buf, &e);
    if (*e != 0) return 0; /* A1111's float() would raise: keep it as text */
    *end = p + 1;
    return 1;
}

lf_status lf_emphasis_parse(const char *prompt, lf_emph_mode mode, lf_emph_spans *out) {
    out->v = NULL;
    out->n = 0;
    span_vec s = {0};
    stack round = {0}, square = {0};
    lf_status st = LF_OK;
    const double round_mult = 1.1, square_mult = 1 / 1.1;
    if (mode == LF_EMPH_NONE) {
        st = span_push(&s, prompt, strlen(prompt), 1.0);
        if (st) return st;
        out->v = s.v;
        out->n = s.n;
        return LF_OK;
    }
    size_t n = strlen(prompt);
    for (size_t i = 0; i < n && !st;) {
        char c = prompt[i];
        size_t end;
        double w;
        if (c == '\\') {
            char d = prompt[i + 1];
            if (d == '(' || d == ')' || d == '[' || d == ']' || d == '\\') {
                st = span_push(&s, prompt + i + 1, 1, 1.0);
                i += 2;
            } else {
                st = span_push(&s, "", 0, 1.0); /* a lone backslash: text[1:] = "" */
                i += 1;
            }
        } else if (c == '(') {
            if (!stack_push(&round, s.n)) st = lf_err(LF_ERR_NOMEM, "emphasis: out of memory");
            i++;
        } else if (c == '[') {
            if (!stack_push(&square, s.n)) st = lf_err(LF_ERR_NOMEM, "emphasis: out of memory");
            i++;
        } else if (c == ':' && match_weight(prompt, i, &end, &w)) {
            if (round.n) multiply_range(&s, round.v[--round.n], w);
            else st = push_text(&s, prompt + i, end - i);
            i = end;
        } else if (c == ')' && round.n) {
            multiply_range(&s, round.v[--round.n], round_mult);
            i++;
        } else if (c == ']' && square.n) {
            multiply_range(&s, square.v[--square.n], square_mult);
            i++;
        } else if (c == ')' || c == ']' || c == ':') {
            st = push_text(&s, prompt + i, 1);
            i++;
        } else {
            size_t j = i;
            while (j < n && prompt[j] != '\\' && prompt[j] != '(' && prompt[j] != ')' && prompt[j] != '[' &&
                   prompt[j] != ']' && prompt[j] != ':')
                j++;
            st = push_text(&s, prompt + i, j - i);
            i = j;
        }
    }
    for (size_t k = 0; k < round.n; k++) multiply_range(&s, round.v[k], round_mult);
    for (size_t k = 0; k < square.n; k++) multiply_range(&s, square.v[k], square_mult);
    free(round.v);
    free(square.v);
    if (!st && s.n == 0) st = span_push(&s, "", 0, 1.0);
    /* merge runs of identical weights */
    for (size_t i = 0; !st && i + 1 < s.n;) {
        if (s.v[i].weight == s.v[i + 1].weight) {
            size_t la = strlen(s.v[i].text), lb = strlen(s.v[i + 1].text);
            char *t = realloc(s.v[i].text, la + lb + 1);
            if (!t) {
                st = lf_err(LF_ERR_NOMEM, "emphasis: out of memory");
                break;
            }
            memcpy(t + la, s.v[i + 1].text, lb + 1);
            s.v[i].text = t;
            free(s.v[i + 1].text);
            memmove(s.v + i + 1, s.v + i + 2, (s.n - i - 2) * sizeof *s.v);
            s.n--;
        } else {
            i++;
        }
    }
    out->v = s.v;
    out->n = s.n;
    if (st) lf_emph_spans_free(out);
    return st;
}

/* ---------------------------------------------------------------------------------------------- */
/* chunks                                                                                         */

lf_chunk_opts lf_chunk_opts_default(int32_t pad) {
    lf_chunk_opts o = {LF_EMPH_ORIGINAL, 20, pad, NULL, LF_EMB_ONE};
    return o;
}

void lf_prompt_chunks_free(lf_prompt_chunks *c) {
    if (!c) return;
    free(c->ids);
    free(c->mult);
    free(c->fixes);
    c->ids = NULL;
    c->mult = NULL;
    c->fixes = NULL;
    c->n = 0;
    c->n_fixes = 0;
}

typedef struct chunker {
    const lf_tokenizer *tok;
    lf_prompt_chunks *out;
    size_t cap_ids, cap_mult; /* in chunks of LF_CLIP_CTX */
    int32_t cur[LF_CLIP_CHUNK];
    float curm[LF_CLIP_CHUNK];
    size_t len;
    long last_comma;
    size_t cap_fixes;
} chunker;

/* The part of embedding e a chunk of this model uses, checked against what e holds. */
static lf_status lf_emb_fix_add(chunker *c, const lf_chunk_opts *o, const lf_embedding *e) {
    int want2 = o->emb_part != LF_EMB_ONE;
    if (want2 && e->parts != 2)
        return lf_err(LF_ERR_MODEL, "%s: embedding '%s' is for a model with one text encoder (SD1.x/SD2.x); this SDXL "
                      "model needs clip_l and clip_g vectors", e->path, e->name);
    if (!want2 && e->parts != 1)
        return lf_err(LF_ERR_MODEL, "%s: embedding '%s' is an SDXL embedding (clip_l, clip_g); this model has one "
                      "text encoder", e->path, e->name);
    lf_prompt_chunks *out = c->out;
    if (lf_grow(&out->fixes, &c->cap_fixes, out->n_fixes + 1)) return lf_err(LF_ERR_NOMEM, "emphasis: out of memory");
    int k = o->emb_part == LF_EMB_CLIP_G;
    lf_emb_fix f = {out->n, c->len, e->vec[k], e->vectors, e->width[k], e->path};
    out->fixes[out->n_fixes++] = f;
    return LF_OK;
}

static lf_status next_chunk(chunker *c, int is_last) {
    lf_prompt_chunks *o = c->out;
    o->token_count += is_last ? c->len : LF_CLIP_CHUNK;
    /* Growable arrays whose element is a whole chunk (LF_CLIP_CTX values). */
    if (lf_grow_impl(&o->ids, &c->cap_ids, o->n + 1, LF_CLIP_CTX * sizeof *o->ids) ||
        lf_grow_impl(&o->mult, &c->cap_mult, o->n + 1, LF_CLIP_CTX * sizeof *o->mult))
        return lf_err(LF_ERR_NOMEM, "emphasis: out of memory");
    int32_t *w = o->ids + o->n * LF_CLIP_CTX;
    float *wm = o->mult + o->n * LF_CLIP_CTX;
    int32_t eos = lf_tokenizer_eos(c->tok);
    w[0] = lf_tokenizer_bos(c->tok);
    wm[0] = 1.0f;
    for (size_t i = 0; i < LF_CLIP_CHUNK; i++) {
        w[1 + i] = i < c->len ? c->cur[i] : eos;
        wm[1 + i] = i < c->len ? c->curm[i] : 1.0f;
    }
    w[LF_CLIP_CTX - 1] = eos;
    wm[LF_CLIP_CTX - 1] = 1.0f;
    o->n++;
    c->len = 0;
    c->last_comma = -1;
    return LF_OK;
}

lf_status lf_prompt_chunk(const lf_tokenizer *tok, const char *prompt, const lf_chunk_opts *opts,
                          lf_prompt_chunks *out) {
    memset(out, 0, sizeof *out);
    lf_chunk_opts def = lf_chunk_opts_default(lf_tokenizer_eos(tok));
    if (!opts) opts = &def;
    lf_emph_spans spans;
    lf_status st = lf_emphasis_parse(prompt, opts->mode, &spans);
    if (st) return st;
    chunker c = {tok, out, 0, 0, {0}, {0}, 0, -1, 0};
    int32_t comma = lf_tokenizer_id(tok, ",</w>");
    lf_tokens ids = {0};
    for (size_t s = 0; s < spans.n && !st; s++) {
        if (strcmp(spans.v[s].text, "BREAK") == 0 && spans.v[s].weight == -1.0) {
            st = next_chunk(&c, 0);
            continue;
        }
        ids.n = 0;
        st = lf_tokenizer_encode(tok, spans.v[s].text, &ids);
        float w = (float)spans.v[s].weight;
        for (size_t p = 0; p < ids.n && !st; p++) {
            int32_t t = ids.ids[p];
            if (t == comma) {
                c.last_comma = (long)c.len;
            } else if (opts->comma_backtrack != 0 && c.len == LF_CLIP_CHUNK && c.last_comma != -1 &&
                       (long)c.len - c.last_comma <= opts->comma_backtrack) {
                size_t brk = (size_t)c.last_comma + 1, nrel = c.len - brk;
                int32_t rt[LF_CLIP_CHUNK];
                float rm[LF_CLIP_CHUNK];
                memcpy(rt, c.cur + brk, nrel * sizeof *rt);
                memcpy(rm, c.curm + brk, nrel * sizeof *rm);
                c.len = brk;
                st = next_chunk(&c, 0);
                if (st) break;
                memcpy(c.cur, rt, nrel * sizeof *rt);
                memcpy(c.curm, rm, nrel * sizeof *rm);
                c.len = nrel;
            }
            if (c.len == LF_CLIP_CHUNK) {
                st = next_chunk(&c, 0);
                if (st) break;
            }
            lf_embedding *e = NULL;
            if (opts->emb && (st = lf_embeddings_match(opts->emb, ids.ids, ids.n, p, &e)) != LF_OK) break;
            if (e) {
                if (c.len + (size_t)e->vectors > LF_CLIP_CHUNK && (st = next_chunk(&c, 0)) != LF_OK) break;
                if ((st = lf_emb_fix_add(&c, opts, e)) != LF_OK) break;
                for (int64_t v = 0; v < e->vectors; v++, c.len++) {
                    c.cur[c.len] = 0;
                    c.curm[c.len] = w;
                }
                p += e->n_ids - 1;
                continue;
            }
            c.cur[c.len] = t;
            c.curm[c.len] = w;
            c.len++;
        }
    }
    if (!st && (c.len || out->n == 0)) st = next_chunk(&c, 1);
    lf_tokens_free(&ids);
    lf_emph_spans_free(&spans);
    if (!st && opts->pad != lf_tokenizer_eos(tok)) {
        /* SD2 / SDXL TE2: everything after the first EOS of each window becomes the pad id */
        for (size_t k = 0; k < out->n; k++) {
            int32_t *w = out->ids + k * LF_CLIP_CTX;
            size_t e = 0;
            while (e < LF_CLIP_CTX && w[e] != lf_tokenizer_eos(tok)) e++;
            for (size_t i = e + 1; i < LF_CLIP_CTX; i++) w[i] = opts->pad;
        }
    }
    if (st) lf_prompt_chunks_free(out);
    return st;
}

/* ---------------------------------------------------------------------------------------------- */
/* weighting                                                                                      */

static double mean_of(const float *z, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += z[i];
    return n ? s / (double)n : 0.0;
}

void lf_emphasis_apply(float *z, const float *mult, int64_t T, int64_t D, lf_emph_mode mode) {
    if (mode != LF_EMPH_ORIGINAL && mode != LF_EMPH_NO_NORM) return;
    double m0 = mode == LF_EMPH_ORIGINAL ? mean_of(z, T * D) : 0.0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t d = 0; d < D; d++) z[t * D + d] *= mult[t];
    if (mode == LF_EMPH_ORIGINAL) {
        float r = (float)(m0 / mean_of(z, T * D));
        for (int64_t i = 0; i < T * D; i++) z[i] *= r;
    }
}
