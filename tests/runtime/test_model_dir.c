/* test_model_dir.c: diffusers folders (lf_model_dir.h) give the same models as the single files.
 *
 *   tiny SD1.5 folder (tests/data/model/tiny-sd15-diffusers/, diffusers' own save_pretrained of the
 *   checkpoint's F16 values): UNet, VAE and text encoder loaded from the folder produce bit-identical
 *   outputs to the single-file path, and the UNet matches the diffusers golden (rel L2 <= 1e-4);
 *   heads, GroupNorm groups, sample size and the prediction type come from the config files alone.
 *   tiny SDXL: the tensor names our config -> structure -> keymap derivation gives equal diffusers'
 *   own state_dict names and shapes (keys.json); a folder written from the SDXL checkpoint under
 *   those names loads and runs bit-identically to the single file.
 *   errors: missing, unexpected and misshapen tensors, unsupported config fields; prediction type.
 * Run: ctest --test-dir build -R model_dir
 */
#include <cjson/cJSON.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/base/util.h"
#include "host/keymap/keymap_unet.h"
#include "lf_test.h"
#include "lf_test_data.h"
#include "lorafuse/lf_model_dir.h"
#include "lorafuse/lf_live_weights.h"

#define SD15 "tests/data/tiny/tiny-sd15.safetensors"
#define SDXL "tests/data/tiny/tiny-sdxl.safetensors"
#define DIR15 "tests/data/model/tiny-sd15-diffusers"
#define XLLAY "tests/data/model/tiny-sdxl-diffusers-unet"

static int same(const float *a, const float *b, int64_t n) { return memcmp(a, b, (size_t)n * sizeof(float)) == 0; }

/* Forward both UNets on fixed inputs; 1 if bitwise equal. */
static int unet_same(const lf_unet *a, const lf_unet *b, int64_t ctx, int xl) {
    float x[2 * 4 * 64], t[2] = {999.0f, 13.0f}, c[2 * 5 * 64], y[2 * 80], o1[2 * 4 * 64], o2[2 * 4 * 64];
    for (int i = 0; i < 2 * 4 * 64; i++) x[i] = sinf(0.3f * (float)i);
    for (int i = 0; i < 2 * 5 * ctx; i++) c[i] = cosf(0.07f * (float)i);
    for (int i = 0; i < 160; i++) y[i] = 0.01f * (float)(i % 13);
    int ok = lf_unet_forward(a, o1, x, t, c, 5, xl ? y : NULL, 2, 8, 8) == LF_OK &&
             lf_unet_forward(b, o2, x, t, c, 5, xl ? y : NULL, 2, 8, 8) == LF_OK;
    LF_CHECK(ok, "forward: %s", lf_last_error());
    return ok && same(o1, o2, 2 * 4 * 64);
}

static void check_sd15(void) {
    printf("tiny SD1.5 folder:\n");
    lf_st_file *f = NULL, *g = NULL;
    if (lf_st_open(SD15, &f) != LF_OK || lf_st_open("tests/data/model/sd15_unet.safetensors", &g) != LF_OK) {
        LF_CHECK(0, "open: %s", lf_last_error());
        return;
    }
    lf_unet_opts o = {NULL, 4, 0, 4};
    lf_unet *us = NULL, *ud = NULL;
    LF_CHECK(lf_unet_load(f, &o, &us) == LF_OK, "single: %s", lf_last_error());
    LF_CHECK(lf_unet_load_dir(DIR15 "/unet", NULL, &ud) == LF_OK, "folder: %s", lf_last_error());
    if (us && ud) {
        const lf_unet_arch *a = lf_unet_get_arch(ud), *b = lf_unet_get_arch(us);
        LF_CHECK(a->num_heads == 4 && a->norm_groups == 4 && a->sample_size == 8 && a->n_params == b->n_params &&
                     a->n_tensors == b->n_tensors && a->prediction == LF_PRED_EPSILON &&
                     !strcmp(a->prediction_from, "scheduler_config.json"),
                 "folder arch: heads %d groups %d sample %d params %lld/%lld pred %d (%s)", a->num_heads, a->norm_groups,
                 a->sample_size, (long long)a->n_params, (long long)b->n_params, (int)a->prediction, a->prediction_from);
        LF_CHECK(!strcmp(b->prediction_from, "family default") && b->prediction == LF_PRED_EPSILON, "single-file pred");
        LF_CHECK(lf_unet_has_weight(ud, "model.diffusion_model.input_blocks.1.1.proj_in.weight"), "LDM keys");
        LF_CHECK(unet_same(us, ud, 32, 0), "UNet: folder and single file differ");
        int64_t nx, nc, no;
        float *x = lf_test_tensor_f32(g, "x", &nx), *t = lf_test_tensor_f32(g, "t", NULL), *c = lf_test_tensor_f32(g, "context", &nc), *ref = lf_test_tensor_f32(g, "out", &no);
        float *out = malloc((size_t)no * sizeof(float));
        LF_CHECK(lf_unet_forward(ud, out, x, t, c, 77, NULL, 2, 16, 16) == LF_OK, "%s", lf_last_error());
        double e = lf_test_rel_l2(out, ref, no);
        printf("  unet (folder) vs diffusers rel L2 %.3g\n", e);
        LF_CHECK(e <= 1e-4, "folder UNet vs golden: %g", e);
        free(x), free(t), free(c), free(ref), free(out);
        lf_unet_set_prediction(ud, LF_PRED_V);
        LF_CHECK(lf_unet_get_arch(ud)->prediction == LF_PRED_V && !strcmp(lf_unet_get_arch(ud)->prediction_from, "option"),
                 "option overrides");
        lf_unet_default_prediction(ud);
        LF_CHECK(lf_unet_get_arch(ud)->prediction == LF_PRED_EPSILON, "back to the folder's");
    }
    lf_unet_free(us), lf_unet_free(ud);
    /* VAE */
    lf_vae *vs = NULL, *vd = NULL;
    LF_CHECK(lf_vae_load(f, LF_FAMILY_SD1, &(lf_vae_opts){NULL, 4, 0, 0}, &vs) == LF_OK, "%s", lf_last_error());
    LF_CHECK(lf_vae_load_dir(DIR15 "/vae", NULL, &vd) == LF_OK, "vae folder: %s", lf_last_error());
    if (vs && vd) {
        const lf_vae_arch *a = lf_vae_get_arch(vd);
        LF_CHECK(a->norm_groups == 4 && fabsf(a->scaling_factor - 0.18215f) < 1e-7f && a->has_encoder &&
                     a->n_params == lf_vae_get_arch(vs)->n_params,
                 "vae arch from config: groups %d sf %g", a->norm_groups, (double)a->scaling_factor);
        float z[4 * 16], i1[3 * 32 * 32], i2[3 * 32 * 32], m1[4 * 16], m2[4 * 16];
        for (int i = 0; i < 64; i++) z[i] = 0.1f * sinf((float)i);
        LF_CHECK(lf_vae_decode(vs, i1, z, 1, 4, 4) == LF_OK && lf_vae_decode(vd, i2, z, 1, 4, 4) == LF_OK, "decode");
        LF_CHECK(same(i1, i2, 3 * 32 * 32), "VAE decode: folder and single file differ");
        LF_CHECK(lf_vae_encode(vs, m1, NULL, i1, 1, 32, 32) == LF_OK && lf_vae_encode(vd, m2, NULL, i1, 1, 32, 32) == LF_OK,
                 "encode");
        LF_CHECK(same(m1, m2, 64), "VAE encode: folder and single file differ");
    }
    lf_vae_free(vs), lf_vae_free(vd);
    /* text encoder */
    lf_clip *cs = NULL, *cd = NULL;
    LF_CHECK(lf_clip_load(f, "cond_stage_model.transformer.", NULL, &cs) == LF_OK, "%s", lf_last_error());
    LF_CHECK(lf_clip_load_dir(DIR15 "/text_encoder", NULL, &cd) == LF_OK, "%s", lf_last_error());
    if (cs && cd) {
        int32_t ids[8] = {998, 4, 8, 15, 16, 23, 42, 999};
        float h1[8 * 32], h2[8 * 32], p1[32], p2[32];
        lf_clip_run r = {1, 1};
        LF_CHECK(lf_clip_forward(cs, ids, 8, &r, h1, p1) == LF_OK && lf_clip_forward(cd, ids, 8, &r, h2, p2) == LF_OK,
                 "%s", lf_last_error());
        LF_CHECK(same(h1, h2, 8 * 32) && same(p1, p2, 32), "text encoder: folder and single file differ");
    }
    lf_clip_free(cs), lf_clip_free(cd);
    lf_st_close(f), lf_st_close(g);
}

/* Write <root>/unet/{config.json, diffusion_pytorch_model.safetensors} from the SDXL checkpoint under the
 * derived diffusers names; drop / extra / reshape one tensor on request. config_edit: JSON field to add. */
static int write_xl_folder(const char *root, const char *drop, const char *extra, const char *reshape,
                           const char *config_edit) {
    char path[512], *cfgtxt = NULL;
    lf_unet_spec spec;
    if (lf_unet_spec_from_config(XLLAY "/config.json", &spec, NULL, NULL) != LF_OK) return 0;
    snprintf(path, sizeof path, "%s/unet", root);
    mkdir(root, 0700);
    mkdir(path, 0700);
    if (lf_read_file(XLLAY "/config.json", NULL, (size_t)1 << 20, &cfgtxt, NULL) != LF_OK) return 0;
    cJSON *cj = cJSON_Parse(cfgtxt);
    free(cfgtxt);
    if (config_edit) {
        cJSON_DeleteItemFromObjectCaseSensitive(cj, config_edit);
        cJSON_AddStringToObject(cj, config_edit, "something");
    }
    char *out = cJSON_Print(cj);
    cJSON_Delete(cj);
    snprintf(path, sizeof path, "%s/unet/config.json", root);
    lf_test_write_text(path, out);
    free(out);
    lf_unet_tensor *ts = NULL;
    size_t n = 0;
    lf_unet_spec_tensors(&spec, &ts, &n);
    char **keys = calloc(n, sizeof *keys), **dn = calloc(n, sizeof *dn);
    for (size_t i = 0; i < n; i++) {
        keys[i] = malloc(200);
        snprintf(keys[i], 200, "model.diffusion_model.%s", ts[i].name);
    }
    lf_km_unet_diffusers_names((const char *const *)keys, n, dn);
    lf_st_file *f = NULL;
    lf_st_open(SDXL, &f);
    lf_st_writer *w = NULL;
    lf_st_writer_new(&w);
    for (size_t i = 0; i < n; i++) {
        const lf_st_tensor *t = lf_st_find(f, keys[i]);
        if (!t || !dn[i] || (drop && !strcmp(dn[i], drop))) continue;
        int64_t sh[LF_MAX_DIMS];
        memcpy(sh, t->shape, sizeof sh);
        if (reshape && !strcmp(dn[i], reshape)) sh[0] /= 2, sh[1] *= 2;
        lf_st_writer_add(w, dn[i], t->dtype, t->ndim, sh, t->data, (size_t)(t->end - t->begin));
    }
    if (extra) lf_st_writer_add(w, extra, lf_st_at(f, 0)->dtype, lf_st_at(f, 0)->ndim, lf_st_at(f, 0)->shape,
                                lf_st_at(f, 0)->data, (size_t)(lf_st_at(f, 0)->end - lf_st_at(f, 0)->begin));
    snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.safetensors", root);
    int ok = lf_st_writer_commit(w, path) == LF_OK;
    lf_st_writer_free(w);
    lf_st_close(f);
    for (size_t i = 0; i < n; i++) free(keys[i]), free(dn[i]);
    free(keys), free(dn), free(ts);
    return ok;
}

static void check_sdxl(void) {
    printf("tiny SDXL folder:\n");
    /* derived names and shapes == diffusers' state_dict */
    lf_unet_spec spec;
    lf_unet_opts ho;
    int sample = 0;
    LF_CHECK(lf_unet_spec_from_config(XLLAY "/config.json", &spec, &ho, &sample) == LF_OK, "%s", lf_last_error());
    LF_CHECK(spec.n_levels == 3 && spec.depth[0] == 0 && spec.depth[1] == 2 && spec.depth[2] == 3 && spec.depth_mid == 3 &&
                 spec.linear_proj && spec.adm_in_channels == 80 && spec.context_dim == 64 && ho.head_dim == 8 &&
                 ho.num_heads == 0 && ho.norm_groups == 4 && sample == 8,
             "sdxl spec from config");
    lf_unet_tensor *ts = NULL;
    size_t n = 0;
    LF_CHECK(lf_unet_spec_tensors(&spec, &ts, &n) == LF_OK, "%s", lf_last_error());
    char *txt = NULL;
    LF_CHECK(lf_read_file(XLLAY "/keys.json", NULL, (size_t)16 << 20, &txt, NULL) == LF_OK, "%s", lf_last_error());
    cJSON *keys = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    char **full = calloc(n, sizeof *full), **dn = calloc(n, sizeof *dn);
    for (size_t i = 0; i < n; i++) {
        full[i] = malloc(200);
        snprintf(full[i], 200, "model.diffusion_model.%s", ts[i].name);
    }
    LF_CHECK(lf_km_unet_diffusers_names((const char *const *)full, n, dn) == LF_OK, "names");
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const cJSON *s = dn[i] ? cJSON_GetObjectItemCaseSensitive(keys, dn[i]) : NULL;
        int ok = cJSON_IsArray(s);
        int nd = ts[i].ndim;
        while (nd > 2 && ts[i].shape[nd - 1] == 1) nd--;
        for (int d = 0; ok && d < cJSON_GetArraySize(s); d++) {
            int64_t want = d < nd ? ts[i].shape[d] : 1;
            ok = (int64_t)cJSON_GetArrayItem(s, d)->valuedouble == want;
        }
        if (!ok && bad++ < 5) LF_CHECK(0, "%s -> %s: not in diffusers' state_dict with that shape", ts[i].name, dn[i] ? dn[i] : "?");
    }
    printf("  %zu tensors derived, diffusers has %d\n", n, cJSON_GetArraySize(keys));
    LF_CHECK(bad == 0 && (int)n == cJSON_GetArraySize(keys), "derived names: %d bad, %zu vs %d", bad, n,
             cJSON_GetArraySize(keys));
    cJSON_Delete(keys);
    for (size_t i = 0; i < n; i++) free(full[i]), free(dn[i]);
    free(full), free(dn), free(ts);

    char root[256], unet[300], sched[300];
    if (lf_test_tmpdir(root, sizeof root, "test_mdir")) return;
    snprintf(unet, sizeof unet, "%s/unet", root);
    lf_st_file *f = NULL;
    lf_st_open(SDXL, &f);
    lf_unet_opts oxl = {NULL, 0, 8, 4};
    lf_unet *us = NULL, *ud = NULL;
    LF_CHECK(f && lf_unet_load(f, &oxl, &us) == LF_OK, "%s", lf_last_error());
    LF_CHECK(write_xl_folder(root, NULL, NULL, NULL, NULL), "write folder");
    LF_CHECK(lf_unet_load_dir(unet, NULL, &ud) == LF_OK, "sdxl folder: %s", lf_last_error());
    if (us && ud) {
        LF_CHECK(unet_same(us, ud, 64, 1), "SDXL UNet: folder and single file differ");
        LF_CHECK(lf_unet_get_arch(ud)->head_dim == 8 && lf_unet_get_arch(ud)->adm_in_channels == 80, "sdxl arch");
    }
    lf_unet_free(ud);
    ud = NULL;
    /* prediction from scheduler_config.json */
    snprintf(sched, sizeof sched, "%s/scheduler", root);
    mkdir(sched, 0700);
    snprintf(sched, sizeof sched, "%s/scheduler/scheduler_config.json", root);
    lf_test_write_text(sched, "{\"_class_name\": \"EulerDiscreteScheduler\", \"prediction_type\": \"v_prediction\"}");
    lf_prediction p = LF_PRED_EPSILON;
    int found = 0;
    LF_CHECK(lf_model_dir_prediction(root, &p, &found) == LF_OK && found && p == LF_PRED_V, "v_prediction");
    LF_CHECK(lf_unet_load_dir(unet, NULL, &ud) == LF_OK && lf_unet_get_arch(ud)->prediction == LF_PRED_V &&
                 !strcmp(lf_unet_get_arch(ud)->prediction_from, "scheduler_config.json"),
             "folder prediction: %s", lf_last_error());
    lf_unet_free(ud);
    ud = NULL;
    lf_test_write_text(sched, "{\"prediction_type\": \"sample\"}");
    LF_CHECK(lf_model_dir_prediction(root, &p, &found) == LF_ERR_UNSUPPORTED && strstr(lf_last_error(), "sample"),
             "unknown prediction type: %s", lf_last_error());
    remove(sched);
    LF_CHECK(lf_prediction_default(LF_FAMILY_SD2) == LF_PRED_V && lf_prediction_default(LF_FAMILY_SDXL) == LF_PRED_EPSILON,
             "family defaults");
    /* errors */
    const char *miss = "down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_k.weight";
    write_xl_folder(root, miss, NULL, NULL, NULL);
    LF_CHECK(lf_unet_load_dir(unet, NULL, &ud) == LF_ERR_MODEL && strstr(lf_last_error(), miss) &&
                 strstr(lf_last_error(), "missing"),
             "missing: %s", lf_last_error());
    write_xl_folder(root, NULL, "down_blocks.0.attentions.0.proj_in.weight", NULL, NULL);
    LF_CHECK(lf_unet_load_dir(unet, NULL, &ud) == LF_ERR_MODEL && strstr(lf_last_error(), "unexpected tensor") &&
                 strstr(lf_last_error(), "down_blocks.0.attentions.0.proj_in.weight"),
             "extra: %s", lf_last_error());
    const char *shp = "up_blocks.0.resnets.1.conv1.weight";
    write_xl_folder(root, NULL, NULL, shp, NULL);
    LF_CHECK(lf_unet_load_dir(unet, NULL, &ud) == LF_ERR_SHAPE && strstr(lf_last_error(), shp), "shape: %s",
             lf_last_error());
    write_xl_folder(root, NULL, NULL, NULL, "class_embed_type");
    LF_CHECK(lf_unet_load_dir(unet, NULL, &ud) == LF_ERR_UNSUPPORTED && strstr(lf_last_error(), "class_embed_type"),
             "config: %s", lf_last_error());
    LF_CHECK(ud == NULL, "no model on error");
    lf_test_rmtree(root);
    lf_unet_free(us);
    lf_st_close(f);
}

int main(void) {
    if (access(DIR15 "/unet/config.json", R_OK) != 0 || access(SDXL, R_OK) != 0)
        LF_SKIP("diffusers test folders missing (run from the source tree)");
    check_sd15();
    check_sdxl();
    return lf_test_finish();
}
