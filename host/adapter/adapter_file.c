/* adapter_file.c: read an adapter file and group its tensors into modules.
 *
 * A tensor name is <module>.<suffix>. kohya/LyCORIS module names contain no '.', PEFT/diffusers ones
 * do ("unet.down_blocks.0....to_q.lora_A.weight"), so the split is made at the longest known suffix
 * that follows a '.', not at the first dot. Suffix spellings: kohya/LyCORIS (lora_up.weight, ...),
 * PEFT (lora_A/lora_B, lora_magnitude_vector), older diffusers (lora.up.weight,
 * lora_linear_layer.up.weight, processor "to_q_lora.up.weight" whose module part the keymap knows).
 */
#include <stdlib.h>
#include <string.h>

#include "lorafuse/lf_adapter.h"
#include "lorafuse/lf_safetensors.h"

static const struct {
    const char *suffix;
    int role; /* lf_role, or -2 for known-but-ignored */
} lf_suffixes[] = {
    {"lora_up.weight", LF_R_UP}, {"lora_down.weight", LF_R_DOWN}, {"lora_mid.weight", LF_R_MID},
    {"lora_B.weight", LF_R_UP}, {"lora_A.weight", LF_R_DOWN},
    {"lora.up.weight", LF_R_UP}, {"lora.down.weight", LF_R_DOWN},
    {"lora_linear_layer.up.weight", LF_R_UP}, {"lora_linear_layer.down.weight", LF_R_DOWN},
    {"up.weight", LF_R_UP}, {"down.weight", LF_R_DOWN}, /* processor form: <...>.to_q_lora.up.weight */
    {"hada_w1_a", LF_R_HW1A}, {"hada_w1_b", LF_R_HW1B}, {"hada_w2_a", LF_R_HW2A},
    {"hada_w2_b", LF_R_HW2B}, {"hada_t1", LF_R_HT1}, {"hada_t2", LF_R_HT2},
    {"lokr_w1", LF_R_KW1}, {"lokr_w1_a", LF_R_KW1A}, {"lokr_w1_b", LF_R_KW1B},
    {"lokr_w2", LF_R_KW2}, {"lokr_w2_a", LF_R_KW2A}, {"lokr_w2_b", LF_R_KW2B}, {"lokr_t2", LF_R_KT2},
    {"a1.weight", LF_R_GA1}, {"a2.weight", LF_R_GA2}, {"b1.weight", LF_R_GB1}, {"b2.weight", LF_R_GB2},
    {"bm.weight", -2},
    {"oft_blocks", LF_R_OFT_BLOCKS}, {"oft_diag", LF_R_OFT_DIAG}, {"rescale", LF_R_RESCALE},
    {"weight", LF_R_IA3_W}, {"on_input", LF_R_ON_INPUT},
    {"diff", LF_R_DIFF}, {"diff_b", LF_R_DIFF_B}, {"w_norm", LF_R_W_NORM}, {"b_norm", LF_R_B_NORM},
    {"dora_scale", LF_R_DORA}, {"lora_magnitude_vector", LF_R_DORA},
    {"lora_magnitude_vector.weight", LF_R_DORA},
    {"alpha", LF_R_ALPHA}, {"scale", LF_R_SCALE},
    {"bias_indices", -2}, {"bias_values", -2}, {"bias_size", -2},
};

int lf_role_split(const char *name, size_t *module_len) {
    size_t n = strlen(name), best = 0;
    int role = -1;
    for (size_t i = 0; i < sizeof lf_suffixes / sizeof lf_suffixes[0]; i++) {
        size_t k = strlen(lf_suffixes[i].suffix);
        if (k <= best || k + 2 > n) continue;
        if (name[n - k - 1] != '.' || strcmp(name + n - k, lf_suffixes[i].suffix) != 0) continue;
        best = k;
        role = lf_suffixes[i].role;
    }
    if (role == -1) return -1;
    *module_len = n - best - 1;
    return role;
}

typedef struct {
    const lf_st_tensor *t;
    size_t mlen;
    int role;
} lf_entry;

static int lf_entry_cmp(const void *a, const void *b) {
    const lf_entry *x = a, *y = b;
    size_t n = x->mlen < y->mlen ? x->mlen : y->mlen;
    int c = memcmp(x->t->name, y->t->name, n);
    if (c) return c;
    return (x->mlen > y->mlen) - (x->mlen < y->mlen);
}

/* A checkpoint given where an adapter is expected: its keys are LDM/SGM weight keys. */
static const char *lf_checkpoint_key(const lf_st_file *st) {
    static const char *const prefixes[] = {"model.diffusion_model.", "first_stage_model.", "cond_stage_model.",
                                           "conditioner.embedders."};
    for (size_t i = 0; i < lf_st_count(st); i++)
        for (size_t k = 0; k < sizeof prefixes / sizeof prefixes[0]; k++)
            if (!strncmp(lf_st_at(st, i)->name, prefixes[k], strlen(prefixes[k]))) return lf_st_at(st, i)->name;
    return NULL;
}

static int lf_module_cmp(const void *a, const void *b) {
    return strcmp(((const lf_module *)a)->name, ((const lf_module *)b)->name);
}

void lf_adapter_free(lf_adapter *a) {
    if (!a) return;
    for (size_t i = 0; i < a->n_mods; i++) free((char *)a->mods[i].name);
    free(a->mods);
    free(a->unknown);
    free(a->ignored);
    lf_st_close(a->st);
    free(a->path);
    free(a);
}

lf_status lf_adapter_open(const char *path, lf_adapter **out) {
    *out = NULL;
    lf_adapter *a = calloc(1, sizeof *a);
    if (!a || !(a->path = strdup(path))) {
        free(a);
        return lf_err(LF_ERR_NOMEM, "%s: out of memory", path);
    }
    lf_status st = lf_st_open(path, &a->st);
    if (st != LF_OK) {
        lf_adapter_free(a);
        return st;
    }
    const char *ck = lf_checkpoint_key(a->st);
    if (ck) {
        st = lf_err(LF_ERR_FORMAT, "%s: this is a model checkpoint, not an adapter (it has model weights such as '%s')",
                    path, ck);
        lf_adapter_free(a);
        return st;
    }
    size_t n = lf_st_count(a->st);
    lf_entry *e = calloc(n ? n : 1, sizeof *e);
    a->unknown = calloc(n ? n : 1, sizeof *a->unknown);
    a->ignored = calloc(n ? n : 1, sizeof *a->ignored);
    a->mods = calloc(n ? n : 1, sizeof *a->mods);
    if (!e || !a->unknown || !a->ignored || !a->mods) {
        free(e);
        lf_adapter_free(a);
        return lf_err(LF_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t ne = 0;
    for (size_t i = 0; i < n; i++) {
        const lf_st_tensor *t = lf_st_at(a->st, i);
        size_t mlen = 0;
        int role = lf_role_split(t->name, &mlen);
        if (role == -1) a->unknown[a->n_unknown++] = t->name;
        else if (role == -2) a->ignored[a->n_ignored++] = t->name;
        else e[ne++] = (lf_entry){t, mlen, role};
    }
    qsort(e, ne, sizeof *e, lf_entry_cmp);
    st = LF_OK;
    for (size_t i = 0; i < ne && st == LF_OK;) {
        size_t j = i;
        lf_module *m = &a->mods[a->n_mods];
        char *name = malloc(e[i].mlen + 1);
        if (!name) { st = lf_err(LF_ERR_NOMEM, "%s: out of memory", path); break; }
        memcpy(name, e[i].t->name, e[i].mlen);
        name[e[i].mlen] = '\0';
        m->name = name;
        a->n_mods++;
        for (; j < ne && lf_entry_cmp(&e[i], &e[j]) == 0; j++) {
            unsigned bit = 1u << e[j].role;
            if (m->present & bit) {
                st = lf_err(LF_ERR_FORMAT, "%s: module '%s' has two tensors for role %s (second: '%s')",
                            path, name, lf_role_name((lf_role)e[j].role), e[j].t->name);
                break;
            }
            m->present |= bit;
            m->t[e[j].role] = lf_st_view(e[j].t);
        }
        i = j;
        if (st == LF_OK) {
            st = lf_module_resolve(m, NULL);
            if (st != LF_OK) lf_err_wrap(st, "%s: ", path);
        }
    }
    free(e);
    if (st != LF_OK) {
        lf_adapter_free(a);
        return st;
    }
    qsort(a->mods, a->n_mods, sizeof *a->mods, lf_module_cmp);
    *out = a;
    return LF_OK;
}

const lf_module *lf_adapter_find(const lf_adapter *a, const char *module_name) {
    lf_module key;
    memset(&key, 0, sizeof key);
    key.name = module_name;
    return bsearch(&key, a->mods, a->n_mods, sizeof *a->mods, lf_module_cmp);
}
