/* keymap_unet.c: adapter spellings of U-Net modules (docs/semantics.md P8, docs/keymap.md "U-Net", traps T15/T16).
 *
 * The checkpoint names a U-Net weight by its LDM/SGM path P ("model.diffusion_model." + P + ".weight",
 * e.g. P = input_blocks.1.1.transformer_blocks.0.attn1.to_q). Adapters name it either by P (kohya SDXL,
 * ComfyUI) or by the diffusers path D of the same module (kohya SD1/SD2, LyCORIS `lycoris_`, PEFT,
 * older diffusers attention processors). D is derived here from the block structure found in the
 * keys, generalising the SD1.5/SDXL conversion tables of docs/keymap.md "U-Net" so that any level
 * count, resnets-per-level and attention layout works (SD1.5: 4 levels, 2 resnets down / 3 up;
 * SDXL: 3 levels, no attention on level 0; small test models with narrow channels):
 *
 *   input_blocks.0.0 -> conv_in; time_embed.{0,2} -> time_embedding.linear_{1,2};
 *   label_emb.0.{0,2} -> add_embedding.linear_{1,2}; out.{0,2} -> conv_norm_out / conv_out.
 *   input_blocks are walked in order from 1: a block holding a Downsample (`op`) is
 *   down_blocks.L.downsamplers.0.conv and closes level L; any other block is the next index j of
 *   level L: its ResBlock is down_blocks.L.resnets.j, its SpatialTransformer down_blocks.L.attentions.j.
 *   output_blocks are walked from 0 the same way, up_blocks.L.{resnets,attentions}.j, and a block
 *   holding an Upsample (`conv`, at sub-index 1 or 2) also gives up_blocks.L.upsamplers.0.conv and
 *   closes level L. middle_block subs are numbered in order: mid_block.resnets.r / attentions.a.
 *   ResBlock members: in_layers.0 norm1, in_layers.2 conv1, out_layers.0 norm2, out_layers.3 conv2,
 *   emb_layers.1 time_emb_proj, skip_connection conv_shortcut. SpatialTransformer members keep their
 *   names (norm, proj_in, proj_out, transformer_blocks.t.{norm1..3, attn1/2.to_q/k/v/to_out.0, ff.*}).
 *
 * Spellings inserted for every U-Net weight (both kohya forms for every family, since kohya SD1/SD2
 * use D and kohya SDXL uses P):
 *   model.diffusion_model.P, diffusion_model.P, lora_unet_<P_>, oft_unet_<P_>, and when D exists
 *   lora_unet_<D_>, oft_unet_<D_>, lycoris_<D_>, unet.D, D, and for attention projections the older
 *   diffusers processor forms [unet.]<attn>.processor.to_{q,k,v}_lora / .processor.to_out_lora
 *   (X_ = X with '.' -> '_'). The 4-D/2-D factor reshape of T15 is the adapter loader's business.
 */
#include <stdlib.h>
#include <string.h>

#include "host/base/util.h"
#include "keymap_internal.h"

enum { LF_KM_IN, LF_KM_OUT, LF_KM_MID };

/* Parse a decimal index (at most 6 digits) at *p followed by '.'; advance past the dot. */
static int lf_km_parse_index(const char **p, int *v) {
    const char *s = *p;
    int n = 0, d = 0;
    while (s[d] >= '0' && s[d] <= '9') {
        if (d == 6) return 0;
        n = n * 10 + (s[d] - '0');
        d++;
    }
    if (!d || s[d] != '.') return 0;
    *v = n;
    *p = s + d + 1;
    return 1;
}

/* Split a path "input_blocks.N.K.rest" / "output_blocks.N.K.rest" / "middle_block.K.rest" into its
 * parts; *rest points into path. Indices outside the tables are refused. */
static int lf_km_parse_block(const char *path, int *which, int *n, int *k, const char **rest) {
    const char *p = path;
    if (lf_has_prefix(p, "input_blocks.")) {
        *which = LF_KM_IN;
        p += strlen("input_blocks.");
    } else if (lf_has_prefix(p, "output_blocks.")) {
        *which = LF_KM_OUT;
        p += strlen("output_blocks.");
    } else if (lf_has_prefix(p, "middle_block.")) {
        *which = LF_KM_MID;
        p += strlen("middle_block.");
    } else {
        return 0;
    }
    *n = 0;
    if (*which != LF_KM_MID && !lf_km_parse_index(&p, n)) return 0;
    if (!lf_km_parse_index(&p, k)) return 0;
    if (*n >= LF_KM_MAX_BLOCKS || *k >= LF_KM_MAX_SUBS) return 0;
    *rest = p;
    return 1;
}

static lf_km_kind lf_km_classify(const char *rest) {
    static const struct {
        const char *first;
        lf_km_kind kind;
    } table[] = {
        {"in_layers", LF_KM_RES},    {"out_layers", LF_KM_RES},          {"emb_layers", LF_KM_RES},
        {"skip_connection", LF_KM_RES}, {"transformer_blocks", LF_KM_ATTN}, {"proj_in", LF_KM_ATTN},
        {"proj_out", LF_KM_ATTN},    {"norm", LF_KM_ATTN},               {"op", LF_KM_DOWN},
        {"conv", LF_KM_UP},          {"weight", LF_KM_PLAIN},            {"bias", LF_KM_PLAIN},
    };
    size_t n = strcspn(rest, ".");
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strlen(table[i].first) == n && memcmp(rest, table[i].first, n) == 0) return table[i].kind;
    return LF_KM_MIXED;
}

static lf_km_sub *lf_km_sub_at(lf_km_unet *u, int which, int n, int k) {
    return which == LF_KM_IN ? &u->in[n][k] : which == LF_KM_OUT ? &u->out[n][k] : &u->mid[k];
}

/* Number the blocks of one path (down: Downsample closes a level and stands alone; up: Upsample
 * closes a level and shares its block with the last ResBlock). */
static void lf_km_walk(lf_km_sub (*blocks)[LF_KM_MAX_SUBS], int first, lf_km_kind closer) {
    int level = 0, j = 0;
    for (int n = first; n < LF_KM_MAX_BLOCKS; n++) {
        lf_km_sub *s = blocks[n];
        int any = 0, closes = 0;
        for (int k = 0; k < LF_KM_MAX_SUBS; k++) {
            if (s[k].kind != LF_KM_NONE) any = 1;
            if (s[k].kind == closer) closes = 1;
        }
        if (!any) continue;
        int used_j = 0;
        for (int k = 0; k < LF_KM_MAX_SUBS; k++) {
            if (s[k].kind == LF_KM_RES || s[k].kind == LF_KM_ATTN) {
                s[k].level = level;
                s[k].idx = j;
                used_j = 1;
            } else if (s[k].kind == closer) {
                s[k].level = level;
                s[k].idx = 0;
            }
        }
        if (used_j) j++;
        if (closes) {
            level++;
            j = 0;
        }
    }
}

lf_status lf_km_unet_scan(lf_km_builder *b) {
    lf_km_unet *u = calloc(1, sizeof *u);
    if (!u) return lf_err(LF_ERR_NOMEM, "keymap: out of memory for the U-Net block table");
    b->unet = u;
    size_t root = strlen(LF_KM_UNET_ROOT);
    for (size_t i = 0; i < b->n; i++) {
        const char *key = b->keys[i];
        if (!lf_has_prefix(key, LF_KM_UNET_ROOT)) continue;
        int which, n, k;
        const char *rest;
        if (!lf_km_parse_block(key + root, &which, &n, &k, &rest)) continue;
        lf_km_kind kind = lf_km_classify(rest);
        lf_km_sub *s = lf_km_sub_at(u, which, n, k);
        if (s->kind == LF_KM_NONE)
            s->kind = (unsigned char)kind;
        else if (s->kind != kind)
            s->kind = LF_KM_MIXED;
    }
    lf_km_walk(u->in, 1, LF_KM_DOWN); /* input_blocks.0 is conv_in */
    lf_km_walk(u->out, 0, LF_KM_UP);
    int r = 0, a = 0;
    for (int k = 0; k < LF_KM_MAX_SUBS; k++) {
        if (u->mid[k].kind == LF_KM_RES) u->mid[k].idx = r++;
        else if (u->mid[k].kind == LF_KM_ATTN) u->mid[k].idx = a++;
    }
    return LF_OK;
}

/* The diffusers path of the module at LDM path p into d; 0 when it has none. */
static int lf_km_diffusers_path(lf_km_unet *u, const char *p, lf_sbuf *d) {
    static const struct {
        const char *ldm, *dif;
    } fixed[] = {
        {"input_blocks.0.0", "conv_in"},          {"time_embed.0", "time_embedding.linear_1"},
        {"time_embed.2", "time_embedding.linear_2"}, {"label_emb.0.0", "add_embedding.linear_1"},
        {"label_emb.0.2", "add_embedding.linear_2"}, {"out.0", "conv_norm_out"},
        {"out.2", "conv_out"},
    };
    static const struct {
        const char *ldm, *dif;
    } resnet[] = {
        {"in_layers.0", "norm1"},  {"in_layers.2", "conv1"},          {"out_layers.0", "norm2"},
        {"out_layers.3", "conv2"}, {"emb_layers.1", "time_emb_proj"}, {"skip_connection", "conv_shortcut"},
    };
    lf_sb_reset(d);
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (strcmp(p, fixed[i].ldm) == 0) {
            lf_sb_str(d, fixed[i].dif);
            return 1;
        }
    int which, n, k;
    const char *rest;
    if (!lf_km_parse_block(p, &which, &n, &k, &rest)) return 0;
    const lf_km_sub *s = lf_km_sub_at(u, which, n, k);
    if (which == LF_KM_MID) {
        lf_sb_str(d, "mid_block");
    } else {
        lf_sb_str(d, which == LF_KM_IN ? "down_blocks." : "up_blocks.");
        lf_sb_u64(d, (unsigned long long)s->level);
    }
    switch (s->kind) {
    case LF_KM_RES:
        for (size_t i = 0; i < sizeof resnet / sizeof resnet[0]; i++)
            if (strcmp(rest, resnet[i].ldm) == 0) {
                lf_sb_str(d, ".resnets.");
                lf_sb_u64(d, (unsigned long long)s->idx);
                lf_sb_str(d, ".");
                lf_sb_str(d, resnet[i].dif);
                return 1;
            }
        return 0;
    case LF_KM_ATTN:
        lf_sb_str(d, ".attentions.");
        lf_sb_u64(d, (unsigned long long)s->idx);
        lf_sb_str(d, ".");
        lf_sb_str(d, rest);
        return 1;
    case LF_KM_DOWN:
        if (which != LF_KM_IN || strcmp(rest, "op") != 0) return 0;
        lf_sb_str(d, ".downsamplers.0.conv");
        return 1;
    case LF_KM_UP:
        if (which != LF_KM_OUT || strcmp(rest, "conv") != 0) return 0;
        lf_sb_str(d, ".upsamplers.0.conv");
        return 1;
    default:
        return 0;
    }
}

/* Older diffusers attention-processor spellings of D = <attn>.to_{q,k,v} / <attn>.to_out.0. */
static lf_status lf_km_add_processor_names(lf_km_builder *b, uint32_t idx, const char *d, size_t n) {
    static const struct {
        const char *tail, *proc;
    } forms[] = {
        {".to_q", ".processor.to_q_lora"},
        {".to_k", ".processor.to_k_lora"},
        {".to_v", ".processor.to_v_lora"},
        {".to_out.0", ".processor.to_out_lora"},
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        size_t t = strlen(forms[i].tail);
        if (n <= t || memcmp(d + n - t, forms[i].tail, t) != 0) continue;
        lf_status st = lf_km_add_name(b, idx, "", d, n - t, 0, forms[i].proc);
        if (!st) st = lf_km_add_name(b, idx, "unet.", d, n - t, 0, forms[i].proc);
        return st;
    }
    return LF_OK;
}

lf_status lf_km_unet_add(lf_km_builder *b, size_t i) {
    const char *key = b->keys[i];
    size_t root = strlen(LF_KM_UNET_ROOT);
    size_t mlen = strlen(key) - strlen(".weight"); /* "model.diffusion_model." + P */
    if (mlen <= root) return LF_OK;
    const char *bias = lf_km_sibling(b, key, mlen, ".bias");
    uint32_t idx;
    lf_status st = lf_km_add_target(b, key, bias, 0, 0, LF_COMP_UNET, &idx);
    if (st) return st;

    const char *p = key + root;
    size_t plen = mlen - root;
    if ((st = lf_km_add_name(b, idx, "", key, mlen, 0, ""))) return st;
    if ((st = lf_km_add_name(b, idx, "diffusion_model.", p, plen, 0, ""))) return st;
    if ((st = lf_km_add_name(b, idx, "lora_unet_", p, plen, 1, ""))) return st;
    if ((st = lf_km_add_name(b, idx, "oft_unet_", p, plen, 1, ""))) return st;

    lf_sb_reset(&b->tmp);
    lf_sb_put(&b->tmp, p, plen);
    if (b->tmp.oom) return lf_err(LF_ERR_NOMEM, "keymap: out of memory");
    int has_d = lf_km_diffusers_path(b->unet, b->tmp.s, &b->path);
    if (b->path.oom) return lf_err(LF_ERR_NOMEM, "keymap: out of memory");
    /* kohya names SDXL modules by their SGM path and SD1/SD2 modules by their diffusers path */
    if (has_d && b->m->family != LF_FAMILY_SDXL) st = lf_km_set_kohya(b, idx, "lora_unet_", b->path.s, b->path.n);
    else st = lf_km_set_kohya(b, idx, "lora_unet_", p, plen);
    if (st || !has_d) return st;
    const char *d = b->path.s;
    size_t dlen = b->path.n;
    if ((st = lf_km_add_name(b, idx, "lora_unet_", d, dlen, 1, ""))) return st;
    if ((st = lf_km_add_name(b, idx, "oft_unet_", d, dlen, 1, ""))) return st;
    if ((st = lf_km_add_name(b, idx, "lycoris_", d, dlen, 1, ""))) return st;
    if ((st = lf_km_add_name(b, idx, "unet.", d, dlen, 0, ""))) return st;
    if ((st = lf_km_add_name(b, idx, "", d, dlen, 0, ""))) return st;
    return lf_km_add_processor_names(b, idx, d, dlen);
}

/* The diffusers name of every UNet tensor key (exported for diffusers-folder loading, unet_dir.c):
 * the same LDM -> diffusers derivation the spellings above use, applied to "<P>.weight|bias". */
lf_status lf_km_unet_diffusers_names(const char *const *keys, size_t n, char **out) {
    lf_km_builder b;
    memset(&b, 0, sizeof b);
    b.keys = keys;
    b.n = n;
    lf_status st = lf_km_unet_scan(&b);
    size_t root = strlen(LF_KM_UNET_ROOT);
    for (size_t i = 0; i < n && !st; i++) {
        out[i] = NULL;
        const char *key = keys[i], *dot = strrchr(key, '.');
        if (!lf_has_prefix(key, LF_KM_UNET_ROOT) || !dot || (size_t)(dot - key) <= root) continue;
        lf_sb_reset(&b.tmp);
        lf_sb_put(&b.tmp, key + root, (size_t)(dot - key) - root);
        if (b.tmp.oom) st = lf_err(LF_ERR_NOMEM, "keymap: out of memory");
        else if (lf_km_diffusers_path(b.unet, b.tmp.s, &b.path)) {
            lf_sb_str(&b.path, dot);
            if (b.path.oom || !(out[i] = malloc(b.path.n + 1))) st = lf_err(LF_ERR_NOMEM, "keymap: out of memory");
            else memcpy(out[i], b.path.s, b.path.n + 1);
        }
    }
    free(b.unet);
    lf_sb_free(&b.tmp);
    lf_sb_free(&b.path);
    return st;
}
