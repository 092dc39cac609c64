/* gen_cond.c: text conditioning for lf_gen: the prompt the encoders see (tags removed, trigger words
 * appended under --auto-trigger, then scheduled with the negative prompt for prompt editing,
 * lf_step_plan_set_prompts) and the (cond, uncond) contexts, cached per cond set of the step plan
 * (text-encoder set, prompt text, negative text) for the whole lf_gen_run: the encoders re-run only
 * at a step whose cond set has not been encoded yet. Prompt and negative are padded with empty-prompt windows to the same token count,
 * so that one UNet call takes both (classifier-free guidance).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate_internal.h"
#include "host/base/util.h"
#include "host/runtime/model_compute.h"

static char *lf_dup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

lf_status lf_gen_prompts(lf_gen *g) {
    const lf_gen_opts *o = &g->o;
    lf_status st = LF_OK;
    if (o->auto_trigger) {
        st = lf_step_plan_auto_trigger(g->sp, g->pr->clean, &g->prompt);
        if (!st) {
            /* the recorded prompt keeps the tags and gets the same words */
            const char *extra = g->prompt + strlen(g->pr->clean);
            size_t n = strlen(o->prompt) + strlen(extra) + 1;
            if ((g->info_prompt = malloc(n)) != NULL) snprintf(g->info_prompt, n, "%s%s", o->prompt, extra);
        }
    } else {
        g->prompt = lf_dup(g->pr->clean);
        g->info_prompt = lf_dup(o->prompt);
    }
    if (st) return st;
    if (!g->prompt || !g->info_prompt) return lf_err(LF_ERR_NOMEM, "out of memory");
    return lf_step_plan_set_prompts(g->sp, g->prompt, o->negative);
}

lf_status lf_gen_embeddings(lf_gen *g) {
    const char *dir = g->o.embeddings_dir ? g->o.embeddings_dir : LF_EMB_DIR_DEFAULT;
    lf_status st = lf_embeddings_open(dir, g->o.embeddings_dir == NULL, g->tok, &g->emb);
    if (st || !g->emb->n) return st;
    lf_chunk_opts o = lf_chunk_opts_default(lf_tokenizer_eos(g->tok));
    o.emb = g->emb;
    o.emb_part = g->tef == LF_TE_SDXL ? LF_EMB_CLIP_L : LF_EMB_ONE;
    for (int k = 0; k < 2 && !st; k++) {
        const lf_prompt_sched *ps = &g->sp->prompts[k];
        for (size_t i = 0; i < ps->n_texts && !st; i++) {
            lf_prompt_chunks c;
            st = lf_prompt_chunk(g->tok, ps->texts[i], &o, &c);
            if (!st) lf_prompt_chunks_free(&c);
            else lf_err_wrap(st, "%s: ", k ? "negative prompt" : "prompt");
        }
    }
    if (!st) st = lf_embeddings_hashes(g->emb, &g->ti_hashes);
    return st;
}

static void lf_gen_cond_clear(lf_gen_cond *c) {
    lf_text_cond_free(&c->cond);
    lf_text_cond_free(&c->uncond);
    c->have = 0;
}

lf_status lf_gen_cond_cache_new(lf_gen *g) {
    g->n_cache = g->sp->n_cond_sets ? g->sp->n_cond_sets : 1;
    if ((g->cache = calloc(g->n_cache, sizeof *g->cache)) == NULL) return lf_err(LF_ERR_NOMEM, "out of memory");
    return LF_OK;
}

void lf_gen_cond_cache_free(lf_gen *g) {
    for (size_t i = 0; i < g->n_cache; i++) lf_gen_cond_clear(&g->cache[i]);
    free(g->cache);
    g->cache = NULL;
    g->n_cache = 0;
}

static lf_status lf_gen_encode_one(lf_gen *g, const char *text, lf_text_cond *c) {
    lf_compute *cc = g->sess->cc;
    if (g->tef == LF_TE_SDXL)
        return lf_text_encode_sdxl_on(g->te1, g->te2, cc, g->tok, text, LF_EMPH_ORIGINAL, g->emb, c);
    if (g->tef == LF_TE_SD2) return lf_text_encode_sd_on(g->te1, cc, g->tok, text, 2, 0, LF_EMPH_ORIGINAL, g->emb, c);
    int skip = g->o.clip_skip > 1 ? g->o.clip_skip : 1;
    return lf_text_encode_sd_on(g->te1, cc, g->tok, text, skip, lf_tokenizer_eos(g->tok), LF_EMPH_ORIGINAL, g->emb, c);
}

/* Append copies of one empty-prompt window to c until it has `tokens` tokens. */
static lf_status lf_gen_pad(lf_text_cond *c, const lf_text_cond *empty, int64_t tokens) {
    if (c->tokens >= tokens) return LF_OK;
    size_t cap = (size_t)(c->tokens * c->width);
    if (lf_grow(&c->context, &cap, (size_t)(tokens * c->width))) return lf_err(LF_ERR_NOMEM, "out of memory");
    float *p = c->context;
    for (int64_t t = c->tokens; t < tokens; t += LF_CLIP_CTX)
        memcpy(p + t * c->width, empty->context, (size_t)(LF_CLIP_CTX * c->width) * sizeof *p);
    c->tokens = tokens;
    return LF_OK;
}

/* SDXL without a negative prompt: zero context and pooled of the prompt's shape, as diffusers'
 * StableDiffusionXLPipeline (force_zeros_for_empty_prompt) and A1111 (force_zero_negative_prompt) do. */
static lf_status lf_gen_zero_like(const lf_text_cond *src, lf_text_cond *z) {
    memset(z, 0, sizeof *z);
    z->tokens = src->tokens;
    z->width = src->width;
    z->pooled_dim = src->pooled_dim;
    z->context = calloc((size_t)(src->tokens * src->width), sizeof *z->context);
    z->pooled = src->pooled ? calloc((size_t)src->pooled_dim, sizeof *z->pooled) : NULL;
    if (!z->context || (src->pooled && !z->pooled)) {
        lf_text_cond_free(z);
        return lf_err(LF_ERR_NOMEM, "out of memory");
    }
    return LF_OK;
}

static lf_status lf_gen_encode(lf_gen *g, size_t set) {
    double t0 = lf_clock_s();
    lf_status s = LF_OK;
    lf_gen_cond *c = &g->cache[set];
    lf_gen_cond_clear(c);
    const lf_step_plan *sp = g->sp;
    const char *prompt = g->prompt, *negative = g->o.negative;
    if (set < sp->n_cond_sets) {
        prompt = sp->prompts[0].texts[sp->cond_sets[set].text[0]];
        negative = sp->prompts[1].texts[sp->cond_sets[set].text[1]];
    }
    if (!s) s = lf_gen_encode_one(g, prompt, &c->cond);
    if (!s && g->tef == LF_TE_SDXL && !*g->o.negative) s = lf_gen_zero_like(&c->cond, &c->uncond);
    else if (!s) s = lf_gen_encode_one(g, negative, &c->uncond);
    if (!s && c->cond.tokens != c->uncond.tokens) {
        lf_text_cond e;
        memset(&e, 0, sizeof e);
        s = lf_gen_encode_one(g, "", &e);
        int64_t L = c->cond.tokens > c->uncond.tokens ? c->cond.tokens : c->uncond.tokens;
        if (!s) s = lf_gen_pad(&c->cond, &e, L);
        if (!s) s = lf_gen_pad(&c->uncond, &e, L);
        lf_text_cond_free(&e);
    }
    c->have = !s;
    g->times.encode += lf_clock_s() - t0;
    g->times.te_runs++;
    return s;
}

lf_status lf_gen_cond_select(lf_gen *g, size_t set) {
    if (set >= g->n_cache) return lf_err(LF_ERR_ARG, "generate: cond set %zu out of range", set);
    lf_status s;
    if (!g->cache[set].have && (s = lf_gen_encode(g, set)) != LF_OK) return s;
    g->cur_set = set;
    return LF_OK;
}
