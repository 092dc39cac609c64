/* lf_adapter.h: one adapter module (the tensors of one target layer in an adapter file) and the CPU
 * reference of its contribution to that layer.
 *
 * A module is what shares a name prefix in the file ("lora_unet_..._to_q.lora_up.weight" ->
 * module "lora_unet_..._to_q", role LF_R_UP). Its algorithm is detected from the roles present
 * (docs/adapters.md "Tensor names") and its scale from alpha / rank or a `scale` tensor (docs/semantics.md P1).
 *
 * Contribution of a module with strength s to a weight W0 (O, K), K = in*kh*kw (docs/semantics.md P2-P5):
 *   additive (LoRA/LoCon/LoHa/LoKr/GLoRA/full/norm):  C = s * gamma * dW_raw(W0)
 *   DoRA (any additive algo + dora_scale):             C = s * (m * Wc / (||Wc||_axis + eps) - W0), Wc = W0 + gamma*dW_raw
 *   Diag-OFT / BOFT / legacy oft_diag / IA3:           C = W'(W0, s) - W0
 * Several modules on one weight: W = W0 + sum_i C_i(W0, s_i), accumulated in f32, rounded once (P5, P6).
 */
#ifndef LF_ADAPTER_H
#define LF_ADAPTER_H

#include <stddef.h>
#include <stdint.h>

#include "lorafuse/lf_status.h"
#include "lorafuse/lf_tensor.h"
#include "lorafuse/lf_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lf_algo {
    LF_ALGO_NONE = 0,
    LF_ALGO_LORA,       /* LoRA / LoCon, optional Tucker lora_mid */
    LF_ALGO_LOHA,       /* Hadamard product, optional Tucker t1/t2 */
    LF_ALGO_LOKR,       /* Kronecker product, full or factored w1/w2, optional Tucker t2 */
    LF_ALGO_GLORA,      /* both layouts */
    LF_ALGO_OFT,        /* LyCORIS Diag-OFT / kohya OFT (oft_blocks 3-D) */
    LF_ALGO_OFT_LEGACY, /* LyCORIS <= 2.0 oft_diag = R itself */
    LF_ALGO_BOFT,       /* butterfly OFT (oft_blocks 4-D) */
    LF_ALGO_IA3,
    LF_ALGO_FULL,       /* diff, diff_b */
    LF_ALGO_NORM,       /* w_norm, b_norm */
    LF_ALGO_COUNT
} lf_algo;

const char *lf_algo_name(lf_algo a);

/* Tensor roles inside a module. The suffix table (lf_role_suffixes) maps file suffixes to roles. */
typedef enum lf_role {
    LF_R_UP, LF_R_DOWN, LF_R_MID,                  /* lora_up / lora_A ..., lora_down, lora_mid */
    LF_R_HW1A, LF_R_HW1B, LF_R_HW2A, LF_R_HW2B, LF_R_HT1, LF_R_HT2,
    LF_R_KW1, LF_R_KW1A, LF_R_KW1B, LF_R_KW2, LF_R_KW2A, LF_R_KW2B, LF_R_KT2,
    LF_R_GA1, LF_R_GA2, LF_R_GB1, LF_R_GB2,        /* GLoRA a1, a2, b1, b2 */
    LF_R_OFT_BLOCKS, LF_R_OFT_DIAG, LF_R_RESCALE,
    LF_R_IA3_W, LF_R_ON_INPUT,
    LF_R_DIFF, LF_R_DIFF_B, LF_R_W_NORM, LF_R_B_NORM,
    LF_R_DORA,                                     /* dora_scale / lora_magnitude_vector */
    LF_R_ALPHA, LF_R_SCALE,
    LF_R_COUNT
} lf_role;

/* "lora_up", "hada_w1_a", ... for messages; "?" out of range. */
const char *lf_role_name(lf_role r);

typedef struct lf_module {
    const char *name;           /* module name as in the file (prefix before the role suffix) */
    lf_algo algo;
    unsigned present;           /* bit (1u << role) for each role found */
    lf_view t[LF_R_COUNT];      /* views of the tensors, valid where present */
    int rank;                   /* per docs/semantics.md P1; 0 when the algorithm has none */
    double alpha;               /* as stored (0 if absent) */
    float gamma;                /* resolved scale per P1 (1 for algorithms without one) */
    int gamma_from_scale;       /* 1 if a `scale` tensor replaced alpha / rank */
    int dora_axis;              /* 0 none, 1 output axis (O,1,...)/(O,), 2 input axis (1,I,...) */
    int glora_old_layout;       /* GLoRA: 1 = LyCORIS <= 2.x layout */
    int ia3_on_input;
    int dyn_rank;               /* plain LoRA only: use the first dyn_rank ranks (0 = all); set by callers */
} lf_module;

/* Detect the algorithm, rank, gamma, DoRA axis and GLoRA layout from the roles present; check the
 * factor shapes against each other and against the target weight shape W (O, I[, kh, kw]) (pass
 * wshape = NULL to check only internal consistency). Errors name the module and both shapes. */
lf_status lf_module_resolve(lf_module *m, const lf_view *wshape);

/* CPU reference: acc (O*K f32, holds W0 + contributions so far) += C(W0, s).
 * w0 is the pristine base weight as f32 (O, K); wshape gives its real shape (for conv/Tucker/LoKr
 * index math). For LF_ALGO_FULL / LF_ALGO_NORM targeting a bias (bias=1) the diff_b / b_norm role is
 * used and w0/acc are the bias vector. */
lf_status lf_module_contrib_ref(const lf_module *m, const float *w0, const lf_view *wshape, int bias,
                                float s, float *acc);

/* ---- adapter files ------------------------------------------------------------------------- */

/* Map a tensor-name suffix ("lora_up.weight", "lora_A.weight", "hada_w1_a", ...) to a role; -1 if
 * unknown. lf_role_split finds the longest known suffix that follows a '.' in `name` and returns its
 * role and the length of the module prefix (without the dot). */
int lf_role_split(const char *name, size_t *module_len);

struct lf_st_file;

typedef struct lf_adapter {
    char *path;
    struct lf_st_file *st;
    lf_module *mods;        /* sorted by name */
    size_t n_mods;
    const char **unknown;   /* tensor names with no known role suffix */
    size_t n_unknown;
    const char **ignored;   /* known but unused tensors (LyCORIS sparse bias, GLoRA bm) */
    size_t n_ignored;
} lf_adapter;

/* Open an adapter file, group its tensors into modules and resolve each module (algorithm, rank,
 * gamma, internal shape consistency). Any inconsistency is an error naming the file and module. */
lf_status lf_adapter_open(const char *path, lf_adapter **out);
void lf_adapter_free(lf_adapter *a);
const lf_module *lf_adapter_find(const lf_adapter *a, const char *module_name);

/* Family an adapter was trained for, from metadata, then names (lora_te2_, text_encoder_2,
 * SGM-named UNet), then shapes (attn2 to_k input width). *why gets a short explanation. */
lf_family lf_adapter_family(const lf_adapter *a, const char **why);

#ifdef __cplusplus
}
#endif
#endif
