/* test_tokenizer.c: the CLIP BPE tokenizer against transformers' CLIPTokenizer (ids exact).
 *
 * Goldens: tests/data/model/clip_tokens.safetensors (scripts/golden/model_clip.py): ids.K = BOS +
 * ids of metadata text.K + EOS with the real merges (models/clip/bpe_simple_vocab_16e6.txt.gz),
 * small.ids.K the same through the small vocab.json + merges.txt folder tests/data/model/clip_tok_small,
 * window.long the 77-id window of a long prompt (truncation, EOS padding). Plus error cases.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_test.h"
#include "lf_test_data.h"
#include "lorafuse/lf_safetensors.h"
#include "lorafuse/lf_tokenizer.h"

#define GOLD "tests/data/model/clip_tokens.safetensors"

static int32_t *read_i32(const lf_st_file *f, const char *name, size_t *n) {
    const lf_st_tensor *t = lf_st_find(f, name);
    if (!t || t->dtype != LF_I32 || t->ndim != 1) return NULL;
    *n = (size_t)t->shape[0];
    int32_t *v = malloc((*n ? *n : 1) * sizeof *v);
    memcpy(v, t->data, *n * sizeof *v);
    return v;
}

static void check_set(const lf_tokenizer *tok, const lf_st_file *f, const char *prefix, int count) {
    for (int k = 0; k < count; k++) {
        char key[64];
        snprintf(key, sizeof key, "text.%d", k);
        const char *text = lf_st_meta(f, key);
        snprintf(key, sizeof key, "%sids.%d", prefix, k);
        size_t n = 0;
        int32_t *want = read_i32(f, key, &n);
        LF_CHECK(text && want, "%s: golden %s missing", GOLD, key);
        if (!text || !want) {
            free(want);
            continue;
        }
        /* BOS + encode + EOS */
        lf_tokens got = {0};
        got.ids = malloc(sizeof(int32_t));
        got.cap = 1;
        got.ids[got.n++] = lf_tokenizer_bos(tok);
        lf_status st = lf_tokenizer_encode(tok, text, &got);
        LF_CHECK(st == LF_OK, "encode %s: %s", key, lf_last_error());
        if (st == LF_OK) {
            int32_t eos = lf_tokenizer_eos(tok);
            int same = got.n + 1 == n && memcmp(got.ids, want, got.n * sizeof(int32_t)) == 0 && want[n - 1] == eos;
            LF_CHECK(same, "%s (\"%s\"): %zu ids, expected %zu", key, text, got.n + 1, n);
            if (!same) {
                fprintf(stderr, "  got :");
                for (size_t i = 0; i < got.n; i++) fprintf(stderr, " %d", got.ids[i]);
                fprintf(stderr, " %d\n  want:", eos);
                for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", want[i]);
                fputc('\n', stderr);
            }
        }
        lf_tokens_free(&got);
        free(want);
    }
}

int main(void) {
    lf_st_file *f = NULL;
    if (lf_st_open(GOLD, &f) != LF_OK) {
        fprintf(stderr, "%s\n", lf_last_error());
        LF_CHECK(0, "cannot open %s", GOLD);
        return lf_test_finish();
    }
    int count = atoi(lf_st_meta(f, "count") ? lf_st_meta(f, "count") : "0");
    LF_CHECK(count > 20, "golden count %d", count);

    lf_tokenizer *tok = NULL;
    lf_status st = lf_tokenizer_load_default(&tok);
    LF_CHECK(st == LF_OK, "load default BPE: %s", lf_last_error());
    if (tok) {
        LF_CHECK(lf_tokenizer_vocab_size(tok) == 49408, "vocab %zu", lf_tokenizer_vocab_size(tok));
        LF_CHECK(lf_tokenizer_bos(tok) == 49406 && lf_tokenizer_eos(tok) == 49407, "specials %d %d",
                 lf_tokenizer_bos(tok), lf_tokenizer_eos(tok));
        LF_CHECK(lf_tokenizer_id(tok, ",</w>") == 267, "comma id %d", lf_tokenizer_id(tok, ",</w>"));
        LF_CHECK(lf_tokenizer_id(tok, "!") == 0, "'!' id %d", lf_tokenizer_id(tok, "!"));
        const char *t0 = lf_tokenizer_token(tok, 320);
        LF_CHECK(t0 && strcmp(t0, "a</w>") == 0, "token 320 = %s", t0 ? t0 : "(null)");
        check_set(tok, f, "", count);

        /* the 77-id window of the long prompt: BOS, 75 ids, EOS (truncation), as the pipelines build it */
        size_t nw = 0;
        int32_t *want = read_i32(f, "window.long", &nw);
        char key[32];
        snprintf(key, sizeof key, "text.%d", count - 1);
        lf_tokens ids = {0};
        st = lf_tokenizer_encode(tok, lf_st_meta(f, key), &ids);
        int32_t win[LF_CLIP_CTX];
        lf_tokenizer_window(tok, ids.ids, ids.n, lf_tokenizer_eos(tok), win);
        LF_CHECK(st == LF_OK && want && nw == LF_CLIP_CTX && memcmp(win, want, sizeof win) == 0,
                 "window of the long prompt differs (%zu ids)", ids.n);
        /* a short one is EOS padded (SD1/TE1) or 0 padded (TE2) */
        lf_tokens_free(&ids);
        st = lf_tokenizer_encode(tok, "a cat", &ids);
        lf_tokenizer_window(tok, ids.ids, ids.n, 0, win);
        LF_CHECK(st == LF_OK && ids.n == 2 && win[0] == 49406 && win[1] == 320 && win[2] == 2368 &&
                     win[3] == 49407 && win[4] == 0 && win[76] == 0,
                 "short window: %d %d %d %d %d", win[0], win[1], win[2], win[3], win[4]);
        lf_tokens_free(&ids);
        free(want);
    }
    lf_tokenizer_free(tok);

    /* the same texts through a diffusers-style folder (vocab.json + merges.txt, 300 merges) */
    tok = NULL;
    st = lf_tokenizer_load_dir("tests/data/model/clip_tok_small", &tok);
    LF_CHECK(st == LF_OK, "load folder: %s", lf_last_error());
    if (tok) {
        LF_CHECK(lf_tokenizer_bos(tok) == 812 && lf_tokenizer_eos(tok) == 813, "small specials %d %d",
                 lf_tokenizer_bos(tok), lf_tokenizer_eos(tok));
        check_set(tok, f, "small.", count);
    }
    lf_tokenizer_free(tok);
    lf_st_close(f);

    /* errors name the file */
    tok = NULL;
    st = lf_tokenizer_load_bpe("tests/data/model/no-such.txt.gz", &tok);
    LF_CHECK(st == LF_ERR_IO && strstr(lf_last_error(), "no-such.txt.gz"), "missing file: %s", lf_last_error());
    st = lf_tokenizer_load_bpe("tests/data/model/clip_tok_small/merges.txt", &tok);
    LF_CHECK(st == LF_ERR_FORMAT && strstr(lf_last_error(), "merges.txt") && strstr(lf_last_error(), "48894"),
             "short BPE file: %s", lf_last_error());
    char dir[256], vj[512], mt[512];
    lf_test_tmpdir(dir, sizeof dir, "tok");
    snprintf(vj, sizeof vj, "%s/vocab.json", dir);
    snprintf(mt, sizeof mt, "%s/merges.txt", dir);
    lf_test_write_text(vj, "{\"a\": 0, \"b\": 1}");
    lf_test_write_text(mt, "#version: 0.2\na b\n");
    st = lf_tokenizer_load_files(vj, mt, &tok);
    LF_CHECK(st == LF_ERR_FORMAT && strstr(lf_last_error(), "byte symbol"), "incomplete vocab: %s",
             lf_last_error());
    lf_test_write_text(vj, "[1, 2]");
    st = lf_tokenizer_load_files(vj, mt, &tok);
    LF_CHECK(st == LF_ERR_FORMAT && strstr(lf_last_error(), vj), "vocab not an object: %s", lf_last_error());
    lf_test_rmtree(dir);
    LF_CHECK(tok == NULL, "no tokenizer after failures");
    return lf_test_finish();
}
