/* test_inspect.c: the `inspect` report: algorithms and components, ranks and alphas (alpha = 0 warned,
 * P1), DoRA axes, base family with its evidence, trigger words from ss_tag_frequency (folder names
 * without the "N_" repeat prefix) and from a sidecar FILE.json, metadata, and against a model the
 * matched / unmatched modules and the shape problems of each module. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "lf_test.h"
#include "lf_test_data.h"
#include "lorafuse/lf_inspect.h"
#include "lorafuse/lf_safetensors.h"

#define SD15 "tests/data/tiny/tiny-sd15.safetensors"

static char dir[256];

/* The writer borrows data until commit, so every tensor gets its own slice of one pool. */
static float pool[1 << 14];
static size_t pool_used;

static void add(lf_st_writer *w, const char *name, int64_t d0, int64_t d1, float v) {
    float *buf = pool + pool_used;
    int64_t shape[2] = {d0, d1};
    int nd = d1 ? 2 : d0 ? 1 : 0;
    int64_t n = nd == 2 ? d0 * d1 : nd == 1 ? d0 : 1;
    pool_used += (size_t)n;
    for (int64_t i = 0; i < n; i++) buf[i] = v + 0.001f * (float)(i % 13);
    LF_CHECK(lf_st_writer_add(w, name, LF_F32, nd, shape, buf, (size_t)n * 4) == LF_OK, "%s", lf_last_error());
}

static int has_string(const cJSON *arr, const char *s) {
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) if (cJSON_IsString(it) && !strcmp(it->valuestring, s)) return 1;
    return 0;
}

/* The report of path (against model, may be NULL) parsed back from its JSON text; NULL on failure. */
static cJSON *report(const char *path, const char *model, lf_status *st) {
    char *text = NULL;
    *st = lf_inspect(path, model, &text);
    cJSON *r = text ? cJSON_Parse(text) : NULL;
    free(text);
    return r;
}

static double num(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

int main(void) {
    if (lf_test_tmpdir(dir, sizeof dir, "test_inspect")) return 1;
    char path[512], side[512];
    snprintf(path, sizeof path, "%s/style.safetensors", dir);
    snprintf(side, sizeof side, "%s/style.json", dir);

    /* Module names of the tiny SD1.5 UNet (channels 16): one LoRA with alpha 0, one DoRA (output
     * axis), one LoHa, one LoRA that matches nothing and one whose down factor has the wrong width. */
    const char *q = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q";
    const char *k = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_k";
    const char *v = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_v";
    const char *o = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0";
    char n[256];
    lf_st_writer *w = NULL;
    lf_st_writer_new(&w);
    lf_st_writer_meta(w, "ss_tag_frequency", "{\"10_sks dog\": {\"dog\": 3}, \"3_blue_sky\": {}, \"plain\": {}}");
    lf_st_writer_meta(w, "ss_network_dim", "4");
#define ADD(mod, suffix, d0, d1, val) (snprintf(n, sizeof n, "%s.%s", mod, suffix), add(w, n, d0, d1, val))
    ADD(q, "lora_up.weight", 16, 4, 0.1f);
    ADD(q, "lora_down.weight", 4, 16, 0.1f);
    ADD(q, "alpha", 0, 0, 0.0f);
    ADD(k, "lora_up.weight", 16, 8, 0.1f);
    ADD(k, "lora_down.weight", 8, 16, 0.1f);
    ADD(k, "alpha", 0, 0, 4.0f);
    ADD(k, "dora_scale", 16, 1, 1.0f);
    ADD(v, "hada_w1_a", 16, 2, 0.1f);
    ADD(v, "hada_w1_b", 2, 16, 0.1f);
    ADD(v, "hada_w2_a", 16, 2, 0.1f);
    ADD(v, "hada_w2_b", 2, 16, 0.1f);
    ADD(o, "lora_up.weight", 16, 4, 0.1f);
    ADD(o, "lora_down.weight", 4, 24, 0.1f);
    ADD("lora_unet_not_a_block_to_q", "lora_up.weight", 16, 4, 0.1f);
    ADD("lora_unet_not_a_block_to_q", "lora_down.weight", 4, 16, 0.1f);
    LF_CHECK(lf_st_writer_commit(w, path) == LF_OK, "%s", lf_last_error());
    lf_st_writer_free(w);
    lf_test_write_text(side, "{\"activation text\": \"in the style of sks\", \"preferred weight\": 0.8}");

    lf_status st;
    cJSON *r = report(path, NULL, &st);
    LF_CHECK(st == LF_OK && r, "%s", lf_last_error());
    if (r) {
        const cJSON *algos = cJSON_GetObjectItemCaseSensitive(r, "algorithms");
        LF_CHECK(num(algos, "lora") == 4 && num(algos, "loha") == 1, "algorithms");
        LF_CHECK(num(cJSON_GetObjectItemCaseSensitive(r, "components"), "unet") == 5, "components");
        LF_CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "ranks")) == 3, "ranks 4, 8, 2");
        LF_CHECK(num(cJSON_GetObjectItemCaseSensitive(r, "dora"), "output axis") == 1, "dora axis");
        const cJSON *trig = cJSON_GetObjectItemCaseSensitive(r, "trigger_words");
        LF_CHECK(has_string(trig, "sks dog") && has_string(trig, "blue_sky") && has_string(trig, "plain") &&
                 has_string(trig, "in the style of sks"), "trigger words");
        const cJSON *warn = cJSON_GetObjectItemCaseSensitive(r, "warnings"), *it;
        int alpha0 = 0;
        cJSON_ArrayForEach(it, warn) alpha0 |= strstr(it->valuestring, "alpha = 0") != NULL;
        LF_CHECK(alpha0, "alpha = 0 warning missing");
        LF_CHECK(!cJSON_GetObjectItemCaseSensitive(r, "model"), "no model section without --model");
        cJSON_Delete(r);
    }

    r = report(path, SD15, &st);
    LF_CHECK(st == LF_OK && r, "%s", lf_last_error());
    if (r) {
        const cJSON *mo = cJSON_GetObjectItemCaseSensitive(r, "model");
        LF_CHECK(num(mo, "matched") == 3, "matched %g", num(mo, "matched"));
        LF_CHECK(has_string(cJSON_GetObjectItemCaseSensitive(mo, "unmatched"), "lora_unet_not_a_block_to_q"),
                 "unmatched list");
        const cJSON *probs = cJSON_GetObjectItemCaseSensitive(mo, "problems");
        LF_CHECK(cJSON_GetArraySize(probs) == 1, "one shape problem, got %d", cJSON_GetArraySize(probs));
        const cJSON *p0 = cJSON_GetArrayItem(probs, 0);
        LF_CHECK(p0 && strstr(p0->valuestring, o) && strstr(p0->valuestring, "(4, 24)") &&
                 strstr(p0->valuestring, "expected"), "problem text: %s", p0 ? p0->valuestring : "");
        cJSON_Delete(r);
    }
    r = report("/nonexistent.safetensors", NULL, &st);
    LF_CHECK(st == LF_ERR_IO && !r, "missing file");

    if (lf_test_rmtree(dir) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return lf_test_finish();
}
