/* weight_load.h: private helper of the model loaders (unet_load.c, vae.c, clip_load.c): read named
 * checkpoint tensors with a shape check, one sticky status per load, and keep an index key -> buffer
 * so that a loaded model's weights can be refreshed later (lf_live_weights.h).
 *
 * Memory model (docs/model-runtime.md): the weights of matrix products (lf_wts_load_view: Linear and
 * conv weights, every tensor of 2 or more dims) stay in the checkpoint's dtype when it is F16, BF16 or
 * F32 -- used in place from the file's mapping when the source allows it (w->map: the caller keeps the
 * file open while the model lives), else one owned copy in that dtype -- and the operators convert them
 * to f32 per call (lf_nn.h). Other dtypes (F64, F8) and the small 1-D tensors (biases, norms) are held
 * as f32 (lf_wts_load).
 *
 * Every name is `prefix` + a printf-formatted suffix ("model.diffusion_model." + "out.2.weight").
 * lf_wts_load checks the tensor against an expected shape, where a negative entry accepts any size
 * and is filled with the actual one; (a, b) and (a, b, 1, 1) match each other (Linear vs 1x1 conv
 * spellings of the same weight). The first failure (missing tensor, wrong shape, dtype, non-finite
 * value, memory) is kept in w->status with an lf_err message naming the file and the tensor; later
 * calls do nothing and return NULL, so a loader reads a whole layer and checks w->status once.
 *
 * Tensor source: the lf_st_file, or (lf_wts_set_alias) a name-sorted table of tensors standing for it
 * (a diffusers file under LDM names, or in-memory views); each alias may carry the name it has in its
 * own file, used in error messages. With `borrow`, F32 alias data is used in place (no copy, not
 * owned, not refreshable).
 * With borrow = LF_WTS_SHAPES (any source) nothing is converted or held: lf_wts_load checks the name,
 * shape and dtype, counts the values and returns a placeholder pointer, so a loader builds a model's
 * structure and arch from the keys and shapes alone (model_mem.h: memory estimates before loading).
 * The entries stay owned by the lf_wts until lf_wts_release hands the list (sorted by key) to the model.
 * lf_wts_load_lin / lf_wts_load_norm read the Linear, conv and norm layers the UNet and the VAE are
 * built from (lf_wts_lin, lf_wts_norm).
 */
#ifndef LF_WEIGHT_LOAD_H
#define LF_WEIGHT_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include "lorafuse/lf_safetensors.h"
#include "lorafuse/lf_vae.h"

/* One weight a model holds, under the key suffix it was read as (no prefix). */
typedef struct lf_wts_entry {
    char *key;              /* owned */
    void *data;             /* values in `dtype` (the model's own copy, the file's mapping, or bound) */
    lf_dtype dtype;         /* F32 for lf_wts_load and lf_wts_add; the stored dtype for lf_wts_load_view */
    int64_t numel;
    int ndim;
    int64_t shape[4];       /* shape in the checkpoint */
    int owned;              /* data freed with the list */
    int borrowed;           /* data is the caller's: not refreshable */
    int mapped;             /* data is in the checkpoint's mapping: a refresh first makes an owned copy */
    int bound;              /* data is a caller's tensor (lf_wts_bind): a refresh first makes an owned copy */
    int transpose;          /* stored transposed: checkpoint (a, b) is held as (b, a) (f32 only) */
    lf_view *view;          /* the model's view of this weight (lf_wts_load_view), kept in step by
                             * refresh and bind; NULL for f32 buffers the model reads directly */
} lf_wts_entry;

typedef struct lf_wts_alias {
    lf_st_tensor t;         /* t.name: the name the loader asks for (prefix + suffix) */
    const char *orig;       /* name in its own file (messages), or NULL */
} lf_wts_alias;

/* borrow value of a structure-only load (see above) */
#define LF_WTS_SHAPES (-1)
/* borrow value of a load whose stored-dtype weights stay in st's mapping (w->map; st outlives the model) */
#define LF_WTS_MAP (-2)

typedef struct lf_wts {
    const lf_st_file *st;
    const char *label;      /* file named in messages */
    char prefix[96];
    lf_status status;       /* first failure, LF_OK while all went well */
    lf_wts_entry *e;        /* loaded tensors */
    size_t n, cap;
    size_t loaded;          /* tensors read */
    int64_t floats;         /* f32 values held */
    const lf_wts_alias *alias; /* sorted by t.name; replaces st when set */
    size_t n_alias;
    int borrow;
    int map;                /* stored-dtype weights of st used in place (st outlives the model) */
    int f32;                /* lf_wts_load_view holds every weight as f32 (a model whose device products must
                             * not cut activations to 16 bits: the VAE, lf_vae_opts.f32_weights) */
    int64_t bytes;          /* bytes the model holds in its own memory (copies, f32 buffers) */
    int64_t mapped_bytes;   /* bytes used in place from the mapping */
} lf_wts;

void lf_wts_init(lf_wts *w, const lf_st_file *st, const char *prefix);
/* Read from a sorted alias table instead of the file (label: the file named in messages). */
void lf_wts_set_alias(lf_wts *w, const lf_wts_alias *alias, size_t n, const char *label, int borrow);
/* lf_wts_init, then, when alias is not NULL, lf_wts_set_alias(w, alias, n_alias, label, borrow). */
void lf_wts_init_src(lf_wts *w, const lf_st_file *st, const lf_wts_alias *alias, size_t n_alias,
                     const char *label, int borrow, const char *prefix);
/* The key prefix a model part is read under: `given` when not NULL, else `ldm` when the source (st,
 * or the alias table) holds ldm + probe (a single-file checkpoint), else "" (bare keys). */
const char *lf_wts_pick_prefix(const lf_st_file *st, const lf_wts_alias *alias, size_t n_alias,
                               const char *given, const char *ldm, const char *probe);
/* Sort an alias table by t.name (what lf_wts_set_alias expects). */
void lf_wts_alias_sort(lf_wts_alias *alias, size_t n);
/* Look a full name up in the source (file or alias table). */
const lf_st_tensor *lf_wts_lookup(const lf_wts *w, const char *name);
/* The tensor prefix + suffix, or NULL when absent (no error). */
const lf_st_tensor *lf_wts_find(const lf_wts *w, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Load prefix + suffix as f32 with shape (ndim dims, negative = any: filled in). NULL on failure
 * (w->status set, message names file, tensor, found and expected shapes). */
float *lf_wts_load(lf_wts *w, int ndim, int64_t *shape, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Load prefix + suffix (a weight of 2 or more dims) in its stored dtype with shape (as lf_wts_load)
 * into *v: in place from the mapping (w->map, or borrow with F32 aliases), else an owned copy (F16, BF16,
 * F32 kept; other float dtypes converted to f32). The values are checked finite. 0 on failure. The
 * entry keeps a pointer to v, so v must stay where it is (a field of the model). */
int lf_wts_load_view(lf_wts *w, lf_view *v, int ndim, int64_t *shape, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
/* Finite check of a view of any readable dtype (converted in small blocks, no full copy). */
lf_status lf_wts_check_finite_view(const char *file, const char *name, const lf_view *v);
/* What every loaded weight must be, checked once at load (lf_wts_load, and clip_load.c for its own
 * buffers): a float dtype (F16, BF16, F32, F64, F8_E4M3, F8_E5M2) -- an integer or boolean tensor where
 * a weight belongs is a damaged or mislabeled file, not a quantisation lorafuse knows (LF_ERR_DTYPE) --
 * and, after the conversion to f32, finite values (LF_ERR_NONFINITE: a NaN or Inf weight spreads to
 * every pixel). Messages name the file and the tensor (and the first bad element). One pass over the
 * f32 data, no extra memory. */
lf_status lf_wts_check_dtype(const char *file, const char *name, lf_dtype dt);
lf_status lf_wts_check_finite(const char *file, const char *name, const float *x, int64_t n);
/* Index of the first NaN or Inf in x[0..n), or n when every value is finite; and "NaN", "+Inf" or
 * "-Inf" for such a value (messages). Also the per-step latent check of generate. */
int64_t lf_wts_first_nonfinite(const float *x, int64_t n);
const char *lf_wts_nonfinite_name(float v);
/* Record a failure found by the caller (message already set by lf_err); keeps the first one. */
lf_status lf_wts_fail(lf_wts *w, lf_status st);
/* Append an entry (key copied) of dtype dt; used by loaders that keep their own buffers (clip_load.c). */
lf_status lf_wts_add(lf_wts_entry **e, size_t *n, size_t *cap, const char *key, void *data, lf_dtype dt, int ndim,
                     const int64_t *shape, int owned);
/* Sort a list by key (for lf_wts_get). */
void lf_wts_sort(lf_wts_entry *e, size_t n);
/* The watcher: called with the old memory (data, bytes) of every model weight about to be rewritten,
 * replaced, bound elsewhere or freed (lf_wts_refresh, lf_wts_bind, lf_wts_list_own, lf_wts_free*), by
 * any model of the process, possibly from several threads at once (lf_live_apply_step runs jobs on the
 * operator pool). A compute backend that keeps resident copies of weights found by host address
 * (host/base/compute.h forget) follows the models this way, so freed and reused addresses never hit a
 * stale copy. One watcher per process; fn NULL removes it. */
typedef void (*lf_wts_watch_fn)(void *ctx, const void *data, size_t bytes);
void lf_wts_watch(lf_wts_watch_fn fn, void *ctx);

/* Hand the entry list, sorted by key, to the caller; the lf_wts is empty afterwards. */
void lf_wts_release(lf_wts *w, lf_wts_entry **e, size_t *n);
/* Free every entry still owned. */
void lf_wts_free(lf_wts *w);
/* Free a released list (owned data and keys). */
void lf_wts_free_list(lf_wts_entry *e, size_t n);
/* The entry for key (sorted list), or NULL. */
lf_wts_entry *lf_wts_get(lf_wts_entry *e, size_t n, const char *key);
/* Overwrite entry's data from v: the shape must match the checkpoint's ((a, b) ~ (a, b, 1, 1)). An f32
 * entry gets v converted to f32; a stored-dtype entry gets v's bytes in v's dtype (in place when the
 * dtypes match and the memory is the model's own; a mapped or differently typed entry first gets an
 * owned buffer). Either way the operators see exactly v's values. label and key name the model. */
lf_status lf_wts_refresh(lf_wts_entry *en, const lf_view *v, const char *label, const char *key);
/* Point a stored-dtype entry at v's memory (no copy; the model's own buffer is freed): for the CPU
 * backend of a step plan, whose patched tensors outlive the model's use of them (from_file 0: bound,
 * lf_wts_list_own copies it), or for the checkpoint's own tensor in the file mapping the model was
 * loaded from (from_file 1: mapped again, as after the load: a session's W0 costs no memory). v must
 * hold the entry's shape; an f32-only entry (transposed, or a 1-D f32 buffer) is refreshed instead. */
lf_status lf_wts_bind(lf_wts_entry *en, const lf_view *v, int from_file, const char *label, const char *key);
/* Bytes of the list's data held in the model's own memory (owned), and used in place (mapped/bound). */
void lf_wts_list_bytes(const lf_wts_entry *e, size_t n, int64_t *owned, int64_t *in_place);
/* Hand the resident pages of the mapped entries back to the system (lf_drop_pages, host/base/pages.h: the
 * page cache keeps them, the next read faults them back in; the values do not change). Owned and bound
 * memory is left alone. Returns the bytes covered. */
int64_t lf_wts_list_drop_pages(const lf_wts_entry *e, size_t n);
/* Every weight bound to a caller's tensor (lf_wts_bind) gets an owned copy of its bytes, so the caller's
 * tensor may go (a CPU backend freed while the model stays loaded). */
lf_status lf_wts_list_own(lf_wts_entry *e, size_t n, const char *label);

/* ---- layers the UNet and VAE loaders share (unet_load.c, vae.c) ---------------------------------- */

/* A Linear (k = 0) or k x k conv layer: W (out, in[, k, k]) in its stored dtype (w.data NULL: absent),
 * b (out) f32 or NULL. */
typedef struct lf_wts_lin {
    lf_view w;
    const float *b;
    int64_t out, in, k;
} lf_wts_lin;

/* A GroupNorm / LayerNorm: gamma, beta (C). */
typedef struct lf_wts_norm {
    const float *g, *b;
    int64_t C;
} lf_wts_norm;

/* Which bias a layer has: none, "<path>.bias" required, or read only when the file has it. */
enum { LF_WTS_NO_BIAS = 0, LF_WTS_BIAS = 1, LF_WTS_BIAS_OPT = 2 };

/* "<path>.weight" as (out, in) for k = 0 or (out, in, k, k), negative = any (filled in), and the bias
 * per `bias`. On failure w->status is set and the layer is unusable (the load is abandoned). */
void lf_wts_load_lin(lf_wts *w, lf_wts_lin *l, const char *path, int64_t k, int64_t out, int64_t in, int bias);
/* "<path>.weight" and "<path>.bias", both (C) (C < 0: any, filled in). */
void lf_wts_load_norm(lf_wts *w, lf_wts_norm *n, const char *path, int64_t C);
/* snprintf into a key-path buffer (paths are short; an over-long one just fails the lookup). */
void lf_wts_pathf(char *dst, size_t n, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* "(a, b)" / "(a,)" for messages; a negative dim prints as "*". */
void lf_wts_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);
/* Same shape once trailing 1-dims beyond the second are dropped ((a, b) ~ (a, b, 1, 1)). */
int lf_wts_shape_eq(int na, const int64_t *a, int nb, const int64_t *b);

/* vae.c: lf_vae_load over an alias table (NULL: st), for diffusers folders (lf_model_dir.h). */
lf_status lf_va_load_src(const lf_st_file *st, const lf_wts_alias *alias, size_t n_alias, const char *label,
                         lf_family family, const lf_vae_opts *opts, lf_vae **out);

#endif
