/* test_adapter_file.c: tensor-name splitting into (module, role) for every naming scheme, grouping of
 * a file's tensors into modules, and the errors of lf_adapter_open. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_test.h"
#include "lf_test_data.h"
#include "lorafuse/lf_adapter.h"
#include "lorafuse/lf_safetensors.h"

static void check_split(const char *name, const char *module, int role) {
    size_t mlen = 0;
    int r = lf_role_split(name, &mlen);
    LF_CHECK(r == role, "%s: role %d, expected %d", name, r, role);
    if (r >= 0 || r == -2) {
        LF_CHECK(mlen == strlen(module) && strncmp(name, module, mlen) == 0, "%s: module '%.*s', expected '%s'", name,
                 (int)mlen, name, module);
    }
}

static void test_split(void) {
    check_split("lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight",
                "lora_unet_down_blocks_0_attentions_0_proj_in", LF_R_UP);
    check_split("lora_te2_text_model_encoder_layers_0_mlp_fc1.alpha", "lora_te2_text_model_encoder_layers_0_mlp_fc1",
                LF_R_ALPHA);
    check_split("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight",
                "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", LF_R_DOWN);
    check_split("unet.mid_block.attentions.0.proj_in.lora_B.weight", "unet.mid_block.attentions.0.proj_in", LF_R_UP);
    check_split("text_encoder.text_model.encoder.layers.3.self_attn.q_proj.lora_linear_layer.down.weight",
                "text_encoder.text_model.encoder.layers.3.self_attn.q_proj", LF_R_DOWN);
    check_split("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.up.weight",
                "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora", LF_R_UP);
    check_split("x.to_k.lora.down.weight", "x.to_k", LF_R_DOWN);
    check_split("lycoris_down_blocks_1_resnets_0_conv1.hada_w1_a", "lycoris_down_blocks_1_resnets_0_conv1", LF_R_HW1A);
    check_split("m.hada_t2", "m", LF_R_HT2);
    check_split("m.lokr_w1", "m", LF_R_KW1);
    check_split("m.lokr_w2_b", "m", LF_R_KW2B);
    check_split("m.lokr_t2", "m", LF_R_KT2);
    check_split("m.a1.weight", "m", LF_R_GA1);
    check_split("m.b2.weight", "m", LF_R_GB2);
    check_split("m.oft_blocks", "m", LF_R_OFT_BLOCKS);
    check_split("m.oft_diag", "m", LF_R_OFT_DIAG);
    check_split("m.rescale", "m", LF_R_RESCALE);
    check_split("m.on_input", "m", LF_R_ON_INPUT);
    check_split("m.weight", "m", LF_R_IA3_W);
    check_split("m.diff", "m", LF_R_DIFF);
    check_split("m.diff_b", "m", LF_R_DIFF_B);
    check_split("m.w_norm", "m", LF_R_W_NORM);
    check_split("m.b_norm", "m", LF_R_B_NORM);
    check_split("m.dora_scale", "m", LF_R_DORA);
    check_split("unet.a.to_q.lora_magnitude_vector", "unet.a.to_q", LF_R_DORA);
    check_split("m.scale", "m", LF_R_SCALE);
    check_split("m.lora_mid.weight", "m", LF_R_MID);
    check_split("m.bias_indices", "m", -2);
    check_split("m.bm.weight", "m", -2);
    check_split("m.something_else", "", -1);
    check_split("lora_up.weight", "lora_up", LF_R_IA3_W); /* only "weight" follows a dot */
    check_split(".alpha", "", -1);                         /* no module part */
}

static char dir[256];

static const char *write_file(const char *name, const char *const *tensors, const int64_t (*shapes)[2], size_t n) {
    const char *path = lf_test_path(dir, name);
    static float zeros[4096];
    for (int i = 0; i < 4096; i++) zeros[i] = 0.01f * (float)(i % 7);
    lf_st_writer *w = NULL;
    LF_CHECK(lf_st_writer_new(&w) == LF_OK, "writer: %s", lf_last_error());
    for (size_t i = 0; i < n; i++) {
        int nd = shapes[i][1] ? 2 : (shapes[i][0] ? 1 : 0);
        int64_t nel = nd == 0 ? 1 : shapes[i][0] * (nd == 2 ? shapes[i][1] : 1);
        LF_CHECK(lf_st_writer_add(w, tensors[i], LF_F32, nd, shapes[i], zeros, (size_t)nel * 4) == LF_OK, "add %s: %s",
                 tensors[i], lf_last_error());
    }
    LF_CHECK(lf_st_writer_commit(w, path) == LF_OK, "commit: %s", lf_last_error());
    lf_st_writer_free(w);
    return path;
}

static void test_group(void) {
    const char *names[] = {"lora_unet_a.lora_up.weight", "lora_unet_a.lora_down.weight", "lora_unet_a.alpha",
                           "unet.b.c.lora_B.weight", "unet.b.c.lora_A.weight", "lora_unet_z.hada_w1_a",
                           "lora_unet_z.hada_w1_b", "lora_unet_z.hada_w2_a", "lora_unet_z.hada_w2_b"};
    const int64_t shapes[][2] = {{8, 4}, {4, 16}, {0, 0}, {8, 2}, {2, 16}, {8, 2}, {2, 16}, {8, 2}, {2, 16}};
    const char *path = write_file("group.safetensors", names, shapes, 9);
    lf_adapter *a = NULL;
    LF_CHECK(lf_adapter_open(path, &a) == LF_OK, "open: %s", lf_last_error());
    if (!a) return;
    LF_CHECK(a->n_mods == 3, "modules %zu", a->n_mods);
    const lf_module *m = lf_adapter_find(a, "lora_unet_a");
    LF_CHECK(m && m->algo == LF_ALGO_LORA && m->rank == 4, "lora_unet_a");
    m = lf_adapter_find(a, "unet.b.c");
    LF_CHECK(m && m->algo == LF_ALGO_LORA && m->rank == 2, "unet.b.c");
    m = lf_adapter_find(a, "lora_unet_z");
    LF_CHECK(m && m->algo == LF_ALGO_LOHA, "lora_unet_z");
    LF_CHECK(a->n_unknown == 0, "unknown %zu", a->n_unknown);
    lf_adapter_free(a);
}

static void test_errors(void) {
    /* two spellings of the same role in one module */
    const char *dup[] = {"m.lora_up.weight", "m.lora_B.weight", "m.lora_down.weight"};
    const int64_t dshape[][2] = {{8, 4}, {8, 4}, {4, 16}};
    lf_adapter *a = NULL;
    lf_status st = lf_adapter_open(write_file("dup.safetensors", dup, dshape, 3), &a);
    LF_CHECK(st == LF_ERR_FORMAT && strstr(lf_last_error(), "two tensors for role lora_up") &&
             strstr(lf_last_error(), "dup.safetensors"), "dup: %s", lf_last_error());
    lf_adapter_free(a);
    /* unknown suffixes are collected, not fatal at open time (merge refuses them, inspect lists them) */
    const char *unk[] = {"m.lora_up.weight", "m.lora_down.weight", "m.something"};
    const int64_t ushape[][2] = {{8, 4}, {4, 16}, {3, 0}};
    a = NULL;
    st = lf_adapter_open(write_file("unk.safetensors", unk, ushape, 3), &a);
    LF_CHECK(st == LF_OK && a && a->n_unknown == 1 && !strcmp(a->unknown[0], "m.something"), "unknown: %s",
             lf_last_error());
    lf_adapter_free(a);
    /* a checkpoint is not an adapter */
    a = NULL;
    st = lf_adapter_open("tests/data/tiny/tiny-sd15.safetensors", &a);
    LF_CHECK(st == LF_ERR_FORMAT && strstr(lf_last_error(), "model checkpoint, not an adapter"), "checkpoint: %s",
             lf_last_error());
    /* a missing file names the path */
    a = NULL;
    st = lf_adapter_open("/nonexistent/x.safetensors", &a);
    LF_CHECK(st == LF_ERR_IO && strstr(lf_last_error(), "/nonexistent/x.safetensors"), "missing: %s", lf_last_error());
}

int main(void) {
    if (lf_test_tmpdir(dir, sizeof dir, "test_adapter")) return 1;
    test_split();
    test_group();
    test_errors();
    if (lf_test_rmtree(dir) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return lf_test_finish();
}
