/* inspect.c: build the `lorafuse inspect` report of an adapter file (see lf_inspect.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "lorafuse/lf_inspect.h"
#include "lorafuse/lf_lora_dir.h"
#include "lorafuse/lf_model.h"

static const char *lf_component_of(const char *name) {
    static const struct { const char *prefix, *comp; } map[] = {
        {"lora_unet_", "unet"}, {"lycoris_", "unet"}, {"oft_unet_", "unet"}, {"unet.", "unet"},
        {"lora_te1_", "te1"}, {"lora_te2_", "te2"}, {"lora_te_", "te"}, {"text_encoder_2.", "te2"},
        {"text_encoder.", "te"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strncmp(name, map[i].prefix, strlen(map[i].prefix)) == 0) return map[i].comp;
    return "other";
}

/* obj[key] += 1 for a counter object */
static void lf_count(cJSON *obj, const char *key) {
    cJSON *c = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (c) cJSON_SetNumberValue(c, c->valuedouble + 1);
    else cJSON_AddNumberToObject(obj, key, 1);
}

static void lf_add_unique(cJSON *arr, double v) {
    cJSON *it;
    cJSON_ArrayForEach(it, arr) if (it->valuedouble == v) return;
    cJSON_AddItemToArray(arr, cJSON_CreateNumber(v));
}

static void lf_inspect_modules(const lf_adapter *a, cJSON *rep) {
    cJSON *algos = cJSON_AddObjectToObject(rep, "algorithms");
    cJSON *comps = cJSON_AddObjectToObject(rep, "components");
    cJSON *ranks = cJSON_AddArrayToObject(rep, "ranks");
    cJSON *alphas = cJSON_AddArrayToObject(rep, "alphas");
    cJSON *dora = cJSON_AddObjectToObject(rep, "dora");
    cJSON *warn = cJSON_GetObjectItemCaseSensitive(rep, "warnings");
    size_t zero_alpha = 0;
    for (size_t i = 0; i < a->n_mods; i++) {
        const lf_module *m = &a->mods[i];
        lf_count(algos, lf_algo_name(m->algo));
        lf_count(comps, lf_component_of(m->name));
        if (m->rank) lf_add_unique(ranks, m->rank);
        if (m->present & (1u << LF_R_ALPHA)) {
            lf_add_unique(alphas, m->alpha);
            if (m->alpha == 0) zero_alpha++;
        }
        if (m->present & (1u << LF_R_DORA)) lf_count(dora, m->dora_axis == 2 ? "input axis" : "output axis");
    }
    if (zero_alpha) {
        char msg[256];
        snprintf(msg, sizeof msg, "%zu module(s) have alpha = 0: applied with scale 1 as kohya/LyCORIS intend "
                 "(ComfyUI and A1111 would disable them)", zero_alpha);
        cJSON_AddItemToArray(warn, cJSON_CreateString(msg));
    }
    if (a->n_ignored) {
        char msg[256];
        snprintf(msg, sizeof msg, "%zu tensor(s) are known but not applied (e.g. '%s')", a->n_ignored, a->ignored[0]);
        cJSON_AddItemToArray(warn, cJSON_CreateString(msg));
    }
    cJSON *unk = cJSON_AddArrayToObject(rep, "unknown_tensors");
    for (size_t i = 0; i < a->n_unknown; i++) cJSON_AddItemToArray(unk, cJSON_CreateString(a->unknown[i]));
}

static lf_status lf_inspect_against(const lf_adapter *a, const char *model_path, cJSON *rep) {
    lf_model *model = NULL;
    lf_status st = lf_model_open(model_path, &model);
    if (st != LF_OK) return st;
    cJSON *mo = cJSON_AddObjectToObject(rep, "model");
    cJSON_AddStringToObject(mo, "path", model_path);
    cJSON_AddStringToObject(mo, "family", lf_family_name(model->family));
    cJSON *unmatched = cJSON_CreateArray(), *problems = cJSON_CreateArray();
    size_t matched = 0;
    for (size_t i = 0; i < a->n_mods; i++) {
        lf_adapter one = *a; /* plan one module at a time so every problem is reported, not just the first */
        one.mods = &a->mods[i];
        one.n_mods = 1;
        one.n_unknown = 0;
        lf_adapter *ap = &one;
        float s = 1.0f;
        lf_plan_opts o = {1, 1};
        lf_plan *p = NULL;
        lf_status ps = lf_plan_build(model, &ap, &s, 1, &o, &p);
        if (ps != LF_OK) cJSON_AddItemToArray(problems, cJSON_CreateString(lf_last_error()));
        else if (p->unmatched[0]) cJSON_AddItemToArray(unmatched, cJSON_CreateString(a->mods[i].name));
        else matched++;
        lf_plan_free(p);
    }
    cJSON_AddNumberToObject(mo, "matched", (double)matched);
    cJSON_AddNumberToObject(mo, "unmatched_count", cJSON_GetArraySize(unmatched));
    cJSON_AddItemToObject(mo, "unmatched", unmatched);
    cJSON_AddItemToObject(mo, "problems", problems);
    const char *why = "";
    lf_family af = lf_adapter_family(a, &why);
    if (af != LF_FAMILY_UNKNOWN && model->family != LF_FAMILY_UNKNOWN && af != model->family) {
        char msg[256];
        snprintf(msg, sizeof msg, "adapter is for %s, model is %s", lf_family_name(af), lf_family_name(model->family));
        cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(rep, "warnings"), cJSON_CreateString(msg));
    }
    lf_model_free(model);
    return LF_OK;
}

lf_status lf_inspect(const char *path, const char *model_path, char **json) {
    *json = NULL;
    lf_adapter *a = NULL;
    lf_status st = lf_adapter_open(path, &a);
    if (st != LF_OK) return st;
    cJSON *rep = cJSON_CreateObject();
    cJSON_AddStringToObject(rep, "file", path);
    cJSON_AddNumberToObject(rep, "tensors", (double)lf_st_count(a->st));
    cJSON_AddNumberToObject(rep, "modules", (double)a->n_mods);
    cJSON_AddArrayToObject(rep, "warnings");
    const char *why = "";
    lf_family f = lf_adapter_family(a, &why);
    cJSON *fam = cJSON_AddObjectToObject(rep, "base");
    cJSON_AddStringToObject(fam, "family", lf_family_name(f));
    cJSON_AddStringToObject(fam, "evidence", why);
    lf_inspect_modules(a, rep);
    cJSON *trig = cJSON_AddArrayToObject(rep, "trigger_words");
    char **words = NULL;
    size_t n_words = 0;
    st = lf_lora_trigger_words(lf_st_meta(a->st, "ss_tag_frequency"), path, &words, &n_words);
    for (size_t i = 0; i < n_words; i++) cJSON_AddItemToArray(trig, cJSON_CreateString(words[i]));
    lf_lora_words_free(words, n_words);
    cJSON *meta = cJSON_AddObjectToObject(rep, "metadata");
    for (size_t i = 0; i < lf_st_meta_count(a->st); i++) {
        const lf_st_kv *kv = lf_st_meta_at(a->st, i);
        cJSON_AddStringToObject(meta, kv->key, kv->value);
    }
    if (st == LF_OK && model_path) st = lf_inspect_against(a, model_path, rep);
    lf_adapter_free(a);
    /* copied so the caller frees with free() whatever allocator cJSON was given */
    char *text = st == LF_OK ? cJSON_Print(rep) : NULL;
    cJSON_Delete(rep);
    if (st != LF_OK) return st;
    *json = text ? strdup(text) : NULL;
    cJSON_free(text);
    return *json ? LF_OK : lf_err(LF_ERR_NOMEM, "%s: out of memory for the report", path);
}
