/* test_embeddings.c: textual-inversion embeddings (lf_embeddings.h): the conditioning of prompts using
 * them on models/sd15-mini against tests/data/prompt/ti_expect.safetensors (transformers' CLIP with the
 * vectors put in place of the name's tokens, scripts/golden/prompt_golden.py); the chunk layout (an
 * embedding that does not fit moves to the next chunk, weights); the refusals (pickle, SDXL embedding on
 * a one-encoder model, width, a missing directory); TI hashes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_test.h"
#include "lf_test_data.h"

#include "lorafuse/lf_clip.h"
#include "lorafuse/lf_embeddings.h"
#include "lorafuse/lf_hash.h"

#define EMB_DIR "tests/data/prompt/embeddings"
#define EXPECT "tests/data/prompt/ti_expect.safetensors"
#define MODEL "models/sd15-mini.safetensors"

static lf_tokenizer *g_tok;

static void test_golden(lf_embeddings *db) {
    lf_st_file *gf = NULL, *mf = NULL;
    lf_clip *te = NULL;
    const char *p1 = NULL, *p2 = NULL;
    if (lf_st_open(EXPECT, &gf) != LF_OK || lf_st_open(MODEL, &mf) != LF_OK || lf_clip_detect(mf, &p1, &p2) != LF_TE_SD1 ||
        lf_clip_load(mf, p1, NULL, &te) != LF_OK) {
        LF_CHECK(0, "open: %s", lf_last_error());
        goto done;
    }
    static const char *const prompts[4][2] = {{"plain", "a photo of tinyemb cat"},
                                              {"upper", "a photo of TinyEmb, cat"},
                                              {"concept", "tinyconcept in the snow"},
                                              {"weighted", "a photo of (tinyemb:1.3) cat"}};
    for (int i = 0; i < 4; i++) {
        char key[64];
        snprintf(key, sizeof key, "%s.cond", prompts[i][0]);
        const lf_st_tensor *t = lf_st_find(gf, key);
        lf_text_cond c;
        /* the weighted case without the mean rescale (its golden says why) */
        lf_emph_mode mode = i == 3 ? LF_EMPH_NO_NORM : LF_EMPH_ORIGINAL;
        lf_status st = lf_text_encode_sd(te, g_tok, prompts[i][1], 1, lf_tokenizer_eos(g_tok), mode, db, &c);
        LF_CHECK(st == LF_OK && t && c.tokens == 77 && c.width == 32, "%s: %s", prompts[i][1], lf_last_error());
        if (st == LF_OK && t) {
            double e = lf_test_rel_l2(c.context, (const float *)t->data, 77 * 32);
            printf("  %-10s '%s': context rel L2 %.3g\n", prompts[i][0], prompts[i][1], e);
            LF_CHECK(e < 1e-5, "%s: rel L2 %g", prompts[i][0], e);
        }
        if (st == LF_OK) lf_text_cond_free(&c);
    }
    /* the same prompt without the embeddings is another conditioning */
    lf_text_cond c;
    const lf_st_tensor *t = lf_st_find(gf, "plain.cond");
    if (t && lf_text_encode_sd(te, g_tok, "a photo of tinyemb cat", 1, lf_tokenizer_eos(g_tok), LF_EMPH_ORIGINAL, NULL,
                               &c) == LF_OK) {
        LF_CHECK(lf_test_rel_l2(c.context, (const float *)t->data, 77 * 32) > 1e-3, "embedding changes the context");
        lf_text_cond_free(&c);
    }
done:
    lf_clip_free(te);
    lf_st_close(mf);
    lf_st_close(gf);
}

/* SDXL: clip_l vectors into TE1, clip_g into TE2 (sdxl-mini, widths 16 and 16). */
static void test_golden_sdxl(lf_embeddings *db) {
    lf_st_file *gf = NULL, *mf = NULL;
    lf_clip *te1 = NULL, *te2 = NULL;
    const char *p1 = NULL, *p2 = NULL;
    lf_text_cond c;
    memset(&c, 0, sizeof c);
    if (lf_st_open(EXPECT, &gf) != LF_OK || lf_st_open("tests/data/pipeline/sdxl-mini.safetensors", &mf) != LF_OK ||
        lf_clip_detect(mf, &p1, &p2) != LF_TE_SDXL || lf_clip_load(mf, p1, NULL, &te1) != LF_OK ||
        lf_clip_load(mf, p2, NULL, &te2) != LF_OK) {
        LF_CHECK(0, "open sdxl-mini: %s", lf_last_error());
        goto done;
    }
    const lf_st_tensor *tc = lf_st_find(gf, "xl.cond"), *tp = lf_st_find(gf, "xl.pooled");
    lf_status st = lf_text_encode_sdxl(te1, te2, g_tok, "a photo of xltiny cat", LF_EMPH_ORIGINAL, db, &c);
    LF_CHECK(st == LF_OK && tc && tp && c.tokens == 77 && c.width == 32 && c.pooled_dim == 16, "sdxl: %s",
             lf_last_error());
    if (st == LF_OK && tc && tp) {
        double ec = lf_test_rel_l2(c.context, (const float *)tc->data, 77 * 32);
        double ep = lf_test_rel_l2(c.pooled, (const float *)tp->data, 16);
        printf("  %-10s 'a photo of xltiny cat': context rel L2 %.3g, pooled rel L2 %.3g\n", "sdxl", ec, ep);
        LF_CHECK(ec < 1e-5 && ep < 1e-5, "sdxl: rel L2 %g, %g", ec, ep);
    }
    lf_text_cond_free(&c);
    /* the width is checked when encoding: xlemb's vectors are 32 wide */
    LF_CHECK(te1 && te2 && lf_text_encode_sdxl(te1, te2, g_tok, "xlemb", LF_EMPH_ORIGINAL, db, &c) == LF_ERR_MODEL &&
                 strstr(lf_last_error(), "xlemb.safetensors: embedding vectors of width 32; this text encoder's tokens "
                                         "have width 16"),
             "width check: %s", lf_last_error());
done:
    lf_clip_free(te1);
    lf_clip_free(te2);
    lf_st_close(mf);
    lf_st_close(gf);
}

static void test_chunks(lf_embeddings *db) {
    lf_chunk_opts o = lf_chunk_opts_default(lf_tokenizer_eos(g_tok));
    o.emb = db;
    lf_prompt_chunks c;
    /* 74 tokens, then a 2-vector embedding: it does not fit, so the first chunk closes at 74 */
    char buf[1024] = "";
    for (int i = 0; i < 74; i++) strcat(buf, "cat ");
    strcat(buf, "(tinyemb:1.5) dog");
    LF_CHECK(lf_prompt_chunk(g_tok, buf, &o, &c) == LF_OK && c.n == 2 && c.n_fixes == 1 && c.fixes[0].chunk == 1 &&
                 c.fixes[0].offset == 0 && c.fixes[0].vectors == 2 && c.ids[77 + 1] == 0 && c.ids[77 + 2] == 0 &&
                 c.mult[77 + 1] == 1.5f && c.mult[77 + 3] == 1.0f && c.ids[75] == lf_tokenizer_eos(g_tok),
             "an embedding that does not fit moves to the next chunk");
    lf_prompt_chunks_free(&c);
    LF_CHECK(lf_prompt_chunk(g_tok, "tinyemb tinyconcept tinyemb", &o, &c) == LF_OK && c.n_fixes == 3 &&
                 c.fixes[1].offset == 2 && c.fixes[2].offset == 3 && c.token_count == 5,
             "three embeddings: offsets 0, 2, 3; 5 tokens");
    lf_prompt_chunks_free(&c);
    LF_CHECK(lf_prompt_chunk(g_tok, "tinyembx cat", &o, &c) == LF_OK && c.n_fixes == 0, "a longer word is not the name");
    lf_prompt_chunks_free(&c);
    LF_CHECK(lf_prompt_chunk(g_tok, "a pickled cat", &o, &c) == LF_ERR_FORMAT &&
                 !strcmp(lf_last_error(), EMB_DIR "/pickled.pt: embedding 'pickled' is a pickle file, which lorafuse does "
                                                  "not read, for safety; convert it to .safetensors"),
             "pickle refused: %s", lf_last_error());
    LF_CHECK(lf_prompt_chunk(g_tok, "a xlemb cat", &o, &c) == LF_ERR_MODEL &&
                 strstr(lf_last_error(), "xlemb.safetensors: embedding 'xlemb' is an SDXL embedding (clip_l, clip_g); "
                                         "this model has one text encoder"),
             "SDXL embedding on SD1: %s", lf_last_error());
    o.emb_part = LF_EMB_CLIP_G;
    LF_CHECK(lf_prompt_chunk(g_tok, "a xlemb cat", &o, &c) == LF_OK && c.n_fixes == 1 && c.fixes[0].vectors == 3,
             "SDXL embedding, clip_g part: %s", lf_last_error());
    lf_prompt_chunks_free(&c);
    LF_CHECK(lf_prompt_chunk(g_tok, "a tinyemb cat", &o, &c) == LF_ERR_MODEL &&
                 strstr(lf_last_error(), "is for a model with one text encoder (SD1.x/SD2.x); this SDXL model needs"),
             "SD1 embedding on SDXL: %s", lf_last_error());
}

static void test_dir_and_hashes(void) {
    lf_embeddings *db = NULL;
    LF_CHECK(lf_embeddings_open("tests/data/prompt/no-such-dir", 1, g_tok, &db) == LF_OK && db && db->n == 0,
             "a missing default directory is an empty set");
    lf_embeddings_free(db);
    LF_CHECK(lf_embeddings_open("tests/data/prompt/no-such-dir", 0, g_tok, &db) == LF_ERR_IO &&
                 !strcmp(lf_last_error(), "tests/data/prompt/no-such-dir: no such embeddings directory"),
             "a missing given directory: %s", lf_last_error());
    LF_CHECK(lf_embeddings_open(EMB_DIR, 0, g_tok, &db) == LF_OK && db->n == 5 && !strcmp(db->v[0].name, "pickled") &&
                 db->v[0].pickle && !strcmp(db->v[2].name, "tinyemb"),
             "5 files, sorted by path");
    char *h = NULL;
    LF_CHECK(lf_embeddings_hashes(db, &h) == LF_OK && !h, "no hashes before use");
    lf_chunk_opts o = lf_chunk_opts_default(lf_tokenizer_eos(g_tok));
    o.emb = db;
    lf_prompt_chunks c;
    LF_CHECK(lf_prompt_chunk(g_tok, "tinyemb and tinyconcept", &o, &c) == LF_OK, "chunk");
    lf_prompt_chunks_free(&c);
    char a[65], b[65], want[128];
    LF_CHECK(lf_sha256_file(EMB_DIR "/tinyemb.safetensors", 0, a) == LF_OK &&
                 lf_sha256_file(EMB_DIR "/tinyconcept.safetensors", 0, b) == LF_OK, "sha256");
    snprintf(want, sizeof want, "tinyconcept: %.12s, tinyemb: %.12s", b, a);
    LF_CHECK(lf_embeddings_hashes(db, &h) == LF_OK && h && !strcmp(h, want), "TI hashes '%s', want '%s'", h ? h : "",
             want);
    free(h);
    lf_embeddings_free(db);
}

int main(void) {
    if (lf_tokenizer_load_default(&g_tok) != LF_OK) LF_SKIP("no tokenizer");
    lf_embeddings *db = NULL;
    LF_CHECK(lf_embeddings_open(EMB_DIR, 0, g_tok, &db) == LF_OK, "open: %s", lf_last_error());
    if (db) {
        printf("conditioning vs transformers\n");
        test_golden(db);
        test_golden_sdxl(db);
        test_chunks(db);
    }
    lf_embeddings_free(db);
    test_dir_and_hashes();
    lf_tokenizer_free(g_tok);
    return lf_test_finish();
}
