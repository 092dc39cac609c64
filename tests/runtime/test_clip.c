/* test_clip.c: CLIP text encoders against transformers (relative L2 <= 1e-4 in f32).
 *
 * Goldens (scripts/golden/model_clip.py): tests/data/model/clip_encoders.safetensors (last hidden
 * state, penultimate, clip-skip-2 with final LN, pooled, for 3 prompts and the encoders of
 * tests/data/tiny/tiny-sd15.safetensors and tests/data/tiny/tiny-sdxl.safetensors (TE1 HF layout, TE2 OpenCLIP
 * layout with fused in_proj and text_projection), and 3 prompts of its own on the trained
 * models/demo/shapes-sd1.safetensors (full vocabulary, real ids, width 16)); clip_weighted.safetensors (2-window prompt with
 * A1111 "Original" emphasis: SD1 context, SDXL context and pooled). Both loading paths: single-file
 * keys and a diffusers-style folder written from them. Errors name the file and the tensor.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_test.h"
#include "lf_test_data.h"
#include "lorafuse/lf_clip.h"
#include "lorafuse/lf_safetensors.h"

#define ENC "tests/data/model/clip_encoders.safetensors"
#define WTD "tests/data/model/clip_weighted.safetensors"
#define SD15 "tests/data/tiny/tiny-sd15.safetensors"
#define SDXL "tests/data/tiny/tiny-sdxl.safetensors"
#define DEMO "models/demo/shapes-sd1.safetensors"

static const void *gold(const lf_st_file *g, const char *name, lf_dtype dt, int64_t numel) {
    const lf_st_tensor *t = lf_st_find(g, name);
    if (!t || t->dtype != dt) return NULL;
    lf_view v = lf_st_view(t);
    return lf_view_numel(&v) == numel ? t->data : NULL;
}

static double worst_rel;

static void check_close(const float *got, const lf_st_file *g, const char *name, int64_t n) {
    const void *raw = gold(g, name, LF_F32, n);
    LF_CHECK(raw != NULL, "golden %s missing", name);
    if (!raw) return;
    float *want = lf_test_tensor_f32(g, name, NULL);
    double e = lf_test_rel_l2(got, want, n);
    free(want);
    if (e > worst_rel) worst_rel = e;
    LF_CHECK(e <= 1e-4, "%s: rel L2 %.3g", name, e);
}

static void check_encoder(const lf_clip *m, const lf_st_file *g, const char *enc, int with_proj) {
    const lf_clip_config *c = lf_clip_get_config(m);
    float hid[77 * 32], pooled[32];
    for (int p = 0; p < 3; p++) {
        char name[64];
        snprintf(name, sizeof name, "%s.%d.ids", enc, p);
        int32_t ids[77];
        const void *raw = gold(g, name, LF_I32, 77);
        LF_CHECK(raw != NULL, "golden %s", name);
        if (!raw) return;
        memcpy(ids, raw, sizeof ids);
        struct {
            const char *what;
            lf_clip_run run;
        } cases[] = {{"last", {1, 1}}, {"penult", {2, 0}}, {"skip2", {2, 1}}};
        for (int k = 0; k < 3; k++) {
            lf_status st = lf_clip_forward(m, ids, 77, &cases[k].run, hid, k == 0 ? pooled : NULL);
            LF_CHECK(st == LF_OK, "%s forward: %s", enc, lf_last_error());
            snprintf(name, sizeof name, "%s.%d.%s", enc, p, cases[k].what);
            check_close(hid, g, name, 77 * c->width);
        }
        snprintf(name, sizeof name, "%s.%d.pooled", enc, p);
        check_close(pooled, g, name, with_proj ? c->proj : c->width);
    }
}

static void load_chunks(const lf_st_file *w, const char *ids_key, lf_prompt_chunks *c) {
    memset(c, 0, sizeof *c); /* fixes: none */
    int n = 2;
    c->n = (size_t)n;
    c->ids = malloc((size_t)n * 77 * sizeof *c->ids);
    c->mult = malloc((size_t)n * 77 * sizeof *c->mult);
    for (int k = 0; k < n; k++) {
        char name[32];
        snprintf(name, sizeof name, "%s.%d", ids_key, k);
        const void *a = gold(w, name, LF_I32, 77);
        snprintf(name, sizeof name, "mult.%d", k);
        const void *b = gold(w, name, LF_F32, 77);
        LF_CHECK(a && b, "weighted golden window %d", k);
        if (a) memcpy(c->ids + k * 77, a, 77 * sizeof *c->ids);
        if (b) memcpy(c->mult + k * 77, b, 77 * sizeof *c->mult);
    }
}

/* The tensors of src under prefix (prefix stripped) at path, without `drop`, `shrink` cut to 16 rows. */
static int write_subset(const char *src, const char *prefix, const char *path, const char *drop,
                        const char *shrink) {
    lf_test_st_edit e = {.prefix = prefix, .strip = 1, .drop = drop, .shrink = shrink};
    return lf_test_st_copy(src, path, &e);
}

/* The trained demo model's encoder: the real 49408-token vocabulary at width 16 (2 heads by the width / 8
 * rule), on its caption, the caption with the LoRA's trigger word, and "". */
static void test_demo(const lf_st_file *g) {
    lf_st_file *f = NULL;
    LF_CHECK(lf_st_open(DEMO, &f) == LF_OK, "open %s: %s", DEMO, lf_last_error());
    if (!f) return;
    const char *p1, *p2;
    lf_clip *te = NULL;
    LF_CHECK(lf_clip_detect(f, &p1, &p2) == LF_TE_SD1, "detect the demo model's TE");
    LF_CHECK(lf_clip_load(f, p1, NULL, &te) == LF_OK, "load the demo model's TE: %s", lf_last_error());
    if (te) {
        const lf_clip_config *c = lf_clip_get_config(te);
        LF_CHECK(c->vocab == 49408 && c->width == 16 && c->layers == 12 && c->heads == 2 && c->ff == 32 &&
                     c->act == LF_CLIP_QUICK_GELU,
                 "demo config: V %lld w %lld L %lld heads %lld ff %lld", (long long)c->vocab, (long long)c->width,
                 (long long)c->layers, (long long)c->heads, (long long)c->ff);
        double before = worst_rel;
        worst_rel = 0;
        check_encoder(te, g, "demo", 0);
        printf("demo model encoder: largest relative L2 error vs transformers %.3g\n", worst_rel);
        worst_rel = fmax(worst_rel, before);
    }
    lf_clip_free(te);
    lf_st_close(f);
}

int main(void) {
    lf_st_file *g = NULL, *wt = NULL, *f15 = NULL, *fxl = NULL;
    if (lf_st_open(ENC, &g) || lf_st_open(WTD, &wt) || lf_st_open(SD15, &f15) || lf_st_open(SDXL, &fxl)) {
        LF_CHECK(0, "open: %s", lf_last_error());
        return lf_test_finish();
    }
    const char *p1, *p2;
    lf_clip *te = NULL, *te1 = NULL, *te2 = NULL;

    /* ---- SD1.5 ---- */
    LF_CHECK(lf_clip_detect(f15, &p1, &p2) == LF_TE_SD1 && strcmp(p1, "cond_stage_model.transformer.") == 0,
             "detect SD1: %s", p1);
    LF_CHECK(lf_clip_load(f15, p1, NULL, &te) == LF_OK, "load SD1 TE: %s", lf_last_error());
    if (te) {
        const lf_clip_config *c = lf_clip_get_config(te);
        LF_CHECK(c->vocab == 1000 && c->n_pos == 77 && c->width == 32 && c->layers == 12 && c->heads == 4 &&
                     c->ff == 64 && c->proj == 0 && c->act == LF_CLIP_QUICK_GELU && c->layout == LF_CLIP_LAYOUT_HF,
                 "SD1 config: V %lld pos %lld w %lld L %lld heads %lld ff %lld proj %lld", (long long)c->vocab,
                 (long long)c->n_pos, (long long)c->width, (long long)c->layers, (long long)c->heads,
                 (long long)c->ff, (long long)c->proj);
        check_encoder(te, g, "sd15", 0);

        /* weighted, 2 windows, clip skip 1, "No norm" (the golden explains why not "Original" here) */
        lf_prompt_chunks c1;
        load_chunks(wt, "ids1", &c1);
        float *ctx = malloc(2 * 77 * 32 * sizeof *ctx);
        lf_clip_run run = {1, 1};
        LF_CHECK(lf_clip_encode_chunks(te, &c1, &run, LF_EMPH_NO_NORM, ctx, NULL) == LF_OK, "SD1 weighted: %s",
                 lf_last_error());
        check_close(ctx, wt, "sd15.cond", 2 * 77 * 32);
        free(ctx);
        lf_prompt_chunks_free(&c1);

        /* errors: a real-vocabulary prompt on the 1000-id tiny model names the embedding tensor */
        lf_tokenizer *tok = NULL;
        if (lf_tokenizer_load_default(&tok) == LF_OK) {
            lf_text_cond cond;
            lf_status st = lf_text_encode_sd(te, tok, "a photo of a cat", 1, lf_tokenizer_eos(tok),
                                             LF_EMPH_ORIGINAL, NULL, &cond);
            LF_CHECK(st == LF_ERR_ARG && strstr(lf_last_error(), "49406") &&
                         strstr(lf_last_error(), "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"),
                     "id outside the vocabulary: %s", lf_last_error());
            lf_tokenizer_free(tok);
        }
        int32_t ids[3] = {1, 2, 3};
        lf_clip_run bad = {13, 0};
        float tmp[3 * 32];
        LF_CHECK(lf_clip_forward(te, ids, 3, &bad, tmp, NULL) == LF_ERR_ARG, "clip skip 13 of 12 layers");
    }

    /* ---- diffusers-style folder (text_encoder/: config.json + model.safetensors) ---- */
    char dir[256], path[512];
    lf_test_tmpdir(dir, sizeof dir, "clip_test");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    LF_CHECK(write_subset(SD15, "cond_stage_model.transformer.", path, NULL, NULL), "write folder model");
    snprintf(path, sizeof path, "%s/config.json", dir);
    lf_test_write_text(path, "{\"architectures\": [\"CLIPTextModel\"], \"hidden_act\": \"quick_gelu\", \"hidden_size\": 32, "
                     "\"num_attention_heads\": 4, \"layer_norm_eps\": 1e-05}");
    lf_clip *tf = NULL;
    LF_CHECK(lf_clip_load_dir(dir, NULL, &tf) == LF_OK, "load folder: %s", lf_last_error());
    if (tf) check_encoder(tf, g, "sd15", 0);
    lf_clip_free(tf);
    /* a wrong head count from config.json is an error naming the tensor */
    lf_test_write_text(path, "{\"hidden_act\": \"quick_gelu\", \"num_attention_heads\": 5}");
    tf = NULL;
    LF_CHECK(lf_clip_load_dir(dir, NULL, &tf) == LF_ERR_MODEL && strstr(lf_last_error(), "token_embedding.weight"),
             "5 heads: %s", lf_last_error());
    lf_test_write_text(path, "{\"hidden_act\": \"relu\"}");
    LF_CHECK(lf_clip_load_dir(dir, NULL, &tf) == LF_ERR_UNSUPPORTED && strstr(lf_last_error(), "relu"),
             "relu: %s", lf_last_error());
    /* missing / misshapen tensors */
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    LF_CHECK(write_subset(SD15, "cond_stage_model.transformer.", path, "text_model.encoder.layers.3.mlp.fc2.bias", NULL),
             "write subset");
    lf_st_file *fs = NULL;
    if (lf_st_open(path, &fs) == LF_OK) {
        LF_CHECK(lf_clip_load(fs, "", NULL, &tf) == LF_ERR_MODEL &&
                     strstr(lf_last_error(), "text_model.encoder.layers.3.mlp.fc2.bias") &&
                     strstr(lf_last_error(), "model.safetensors"),
                 "missing tensor: %s", lf_last_error());
        lf_st_close(fs);
    }
    LF_CHECK(write_subset(SD15, "cond_stage_model.transformer.", path, NULL,
                          "text_model.encoder.layers.5.self_attn.k_proj.weight"),
             "write subset");
    if (lf_st_open(path, &fs) == LF_OK) {
        LF_CHECK(lf_clip_load(fs, "", NULL, &tf) == LF_ERR_SHAPE &&
                     strstr(lf_last_error(), "text_model.encoder.layers.5.self_attn.k_proj.weight") &&
                     strstr(lf_last_error(), "(16, 32)"),
                 "misshapen tensor: %s", lf_last_error());
        LF_CHECK(lf_clip_load(fs, "nothing.", NULL, &tf) == LF_ERR_MODEL && strstr(lf_last_error(), "nothing."),
                 "no encoder at prefix: %s", lf_last_error());
        lf_st_close(fs);
    }
    LF_CHECK(tf == NULL, "no model after failures");
    lf_test_rmtree(dir);

    /* ---- SDXL ---- */
    LF_CHECK(lf_clip_detect(fxl, &p1, &p2) == LF_TE_SDXL, "detect SDXL");
    LF_CHECK(lf_clip_load(fxl, p1, NULL, &te1) == LF_OK, "load TE1: %s", lf_last_error());
    LF_CHECK(lf_clip_load(fxl, p2, NULL, &te2) == LF_OK, "load TE2: %s", lf_last_error());
    if (te1 && te2) {
        const lf_clip_config *c2 = lf_clip_get_config(te2);
        LF_CHECK(c2->layers == 32 && c2->heads == 4 && c2->proj == 32 && c2->act == LF_CLIP_GELU &&
                     c2->layout == LF_CLIP_LAYOUT_OPENCLIP,
                 "TE2 config: L %lld heads %lld proj %lld", (long long)c2->layers, (long long)c2->heads,
                 (long long)c2->proj);
        check_encoder(te1, g, "xl1", 0);
        check_encoder(te2, g, "xl2", 1);

        lf_prompt_chunks c1, c2w;
        load_chunks(wt, "ids1", &c1);
        load_chunks(wt, "ids2", &c2w);
        lf_text_cond cond;
        LF_CHECK(lf_text_encode_sdxl_chunks(te1, te2, &c1, &c2w, LF_EMPH_ORIGINAL, &cond) == LF_OK, "SDXL cond: %s",
                 lf_last_error());
        if (cond.context) {
            LF_CHECK(cond.tokens == 154 && cond.width == 64 && cond.pooled_dim == 32, "SDXL cond shape");
            check_close(cond.context, wt, "xl.cond", 154 * 64);
            check_close(cond.pooled, wt, "xl.pooled", 32);
        }
        lf_text_cond_free(&cond);
        lf_prompt_chunks_free(&c1);
        lf_prompt_chunks_free(&c2w);
    }
    test_demo(g);
    lf_clip_free(te);
    lf_clip_free(te1);
    lf_clip_free(te2);
    lf_st_close(g);
    lf_st_close(wt);
    lf_st_close(f15);
    lf_st_close(fxl);
    printf("largest relative L2 error vs transformers: %.3g\n", worst_rel);
    return lf_test_finish();
}
