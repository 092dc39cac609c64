/* strength.c: per-step strength of a parsed tag (lf_strength.h; docs/prompt-tags.md, P10).
 *
 * Rules implemented (docs/prompt-tags.md):
 *   - "Values and schedules": 1-based steps; a fraction f (percentage p: f = p/100) is step
 *     1 + floor(f*(N-1) + 0.5) (0 % = step 1, 100 % = step N); @0 = step 1; hold = the latest key frame
 *     at or before the step, the later one winning on one step; before the first key frame 0;
 *     ramp=linear interpolates and holds the last value; key frames past step N warn (never reached).
 *     The rounding adds 1e-9 before the floor so that a half written in decimal (0.15 of 11 steps =
 *     1.5) rounds up as written, not down through binary representation error.
 *   - "Form" table: te <- S <- 1.0; te1/te2 <- te (SDXL only, an error on one-encoder models);
 *     unet <- S <- te <- 1.0 (A1111 / SD.Next convention); in/mid/out <- unet.
 *   - "Block groups": in = input_blocks.* (input_blocks.0 included), time_embed.*, label_emb.*;
 *     mid = middle_block.*; out = output_blocks.*, out.*.
 *   - "Block weights (LBW)": lengths 17/26 (SD1.x; SD2.x has the same blocks) and 12/20 (SDXL), entries
 *     mapped to blocks by name, left-out blocks 0, BASE scales the text encoders, numbered blocks scale
 *     the UNet strength, other UNet layers keep the plain UNet strength. Presets: the built-in list of
 *     hako-mikan/sd-webui-lora-block-weight (DEF_WEIGHT_PRESET: 17 values each); a preset applies by
 *     block name to either family, as LBW does (its to26 expansion); a vector typed in the tag must
 *     have a length of the model's family.
 *   - "Dialects": a loractl-dialect schedule is loractl's calculate_weight(m, step, N, step_offset=2)
 *     at lorafuse step t: A1111 sets its sampling_step after each step's model call, so step t (1-based)
 *     sees step = max(0, t - 2); when the schedule's last position is <= 1 positions are fractions and
 *     x = step / (N - 2) (loractl divides by zero at N = 2: an error here), else x = step; the value is
 *     numpy.interp(x, positions, values) in double (clamped at both ends, a position written twice
 *     gives the later value), rounded once to float. Precedence as loractl's params_to_weights: te <- S
 *     <- 1; unet <- the positional UNET or unet= <- te.
 * Linear work (docs/limits.md): lf_strength_resolve fills the value of every schedule at every step
 * in one pass over the key frames and the steps (lf_sched_fill), so lf_strength_at is a lookup;
 * key frames past the last step give one warning per tag; a presets file holds at most
 * LF_LBW_MAX_PRESETS presets of LF_LBW_MAX_PRESET_BYTES bytes in all.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lorafuse/lf_strength.h"
#include "host/base/number.h"
#include "host/base/text.h"
#include "host/base/util.h"

/* ---- blocks ---------------------------------------------------------------------------------- */

static const char *const lf_blk_names[LF_BLK_COUNT] = {
    "IN00", "IN01", "IN02", "IN03", "IN04", "IN05", "IN06", "IN07", "IN08", "IN09", "IN10", "IN11", "M00",
    "OUT00", "OUT01", "OUT02", "OUT03", "OUT04", "OUT05", "OUT06", "OUT07", "OUT08", "OUT09", "OUT10", "OUT11",
    "other", "other_out"};

const char *lf_block_name(int block) {
    return block >= 0 && block < LF_BLK_COUNT ? lf_blk_names[block] : "none";
}

lf_group lf_block_group(int block) {
    if (block == LF_BLK_M00) return LF_GROUP_MID;
    if ((block >= LF_BLK_OUT00 && block < LF_BLK_OTHER) || block == LF_BLK_OTHER_OUT) return LF_GROUP_OUT;
    return LF_GROUP_IN;
}

int lf_block_in_family(int block, lf_family f) {
    if (block < 0 || block >= LF_BLK_COUNT) return 0;
    if (f != LF_FAMILY_SDXL) return 1;
    if (block < LF_BLK_M00) return block <= 8;
    if (block >= LF_BLK_OUT00 && block < LF_BLK_OTHER) return block - LF_BLK_OUT00 <= 8;
    return 1;
}

/* "N." at s: the block number (0..11), else -1 */
static int lf_block_num(const char *s) {
    int n = 0, d = 0;
    while (*s >= '0' && *s <= '9' && d < 3) n = n * 10 + (*s++ - '0'), d++;
    return d && (*s == '.' || *s == '\0') && n < 12 ? n : -1;
}

int lf_block_of_key(const char *key) {
    static const char pre[] = "model.diffusion_model.";
    if (!strncmp(key, pre, sizeof pre - 1)) key += sizeof pre - 1;
    else if (strncmp(key, "input_blocks.", 13) && strncmp(key, "middle_block.", 13) &&
             strncmp(key, "output_blocks.", 14) && strncmp(key, "time_embed.", 11) && strncmp(key, "label_emb.", 10) &&
             strncmp(key, "out.", 4))
        return LF_BLK_NONE;
    int n;
    if (!strncmp(key, "input_blocks.", 13)) return (n = lf_block_num(key + 13)) >= 0 ? LF_BLK_IN00 + n : LF_BLK_OTHER;
    if (!strncmp(key, "middle_block.", 13)) return LF_BLK_M00;
    if (!strncmp(key, "output_blocks.", 14))
        return (n = lf_block_num(key + 14)) >= 0 ? LF_BLK_OUT00 + n : LF_BLK_OTHER_OUT;
    if (!strncmp(key, "out.", 4)) return LF_BLK_OTHER_OUT;
    return LF_BLK_OTHER;
}

/* ---- schedules ------------------------------------------------------------------------------- */

/* numpy.interp(x, xp, fp) for one x, xp sorted (duplicates allowed), as numpy's arr_interp: the j with
 * xp[j] <= x < xp[j + 1], fp at an exact match, else slope * (x - xp[j]) + fp[j] in double. */
static double lf_np_interp(double x, const lf_keyframe *k, size_t n) {
    if (x > k[n - 1].pos) return k[n - 1].value_d;
    if (x < k[0].pos) return k[0].value_d;
    size_t lo = 0, hi = n; /* last j with k[j].pos <= x: in [lo, hi) */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (k[mid].pos <= x) lo = mid;
        else hi = mid;
    }
    size_t j = lo;
    if (j == n - 1 || k[j].pos == x) return k[j].value_d;
    double slope = (k[j + 1].value_d - k[j].value_d) / (k[j + 1].pos - k[j].pos);
    return slope * (x - k[j].pos) + k[j].value_d;
}

/* loractl's x at lorafuse step t of n_steps (see the header comment). */
static double lf_loractl_x(const lf_sched *s, int t, int n_steps) {
    double step = t >= 2 ? (double)(t - 2) : 0.0;
    if (s->kf[s->n_kf - 1].pos <= 1.0) return step / (double)(n_steps - 2);
    return step;
}

int lf_sched_step(lf_pos_kind kind, double pos, int n_steps) {
    if (kind == LF_POS_LORACTL) return 1; /* no single step: read through lf_np_interp */
    if (kind == LF_POS_STEP) return pos < 1 ? 1 : pos > 2e9 ? 2000000000 : (int)pos;
    double x = kind == LF_POS_PERCENT ? pos * (double)(n_steps - 1) / 100.0 : pos * (double)(n_steps - 1);
    return 1 + (int)floor(x + 0.5 + 1e-9);
}

float lf_sched_eval(const lf_sched *s, lf_ramp ramp, int t, int n_steps) {
    if (s->constant) return s->kf[0].value;
    if (ramp == LF_RAMP_LORACTL) return (float)lf_np_interp(lf_loractl_x(s, t, n_steps), s->kf, s->n_kf);
    size_t k = s->n_kf;
    int sk = 0;
    for (size_t i = 0; i < s->n_kf; i++) {
        int si = lf_sched_step(s->kf[i].kind, s->kf[i].pos, n_steps);
        if (si <= t) k = i, sk = si;
    }
    if (k == s->n_kf) return 0.0f; /* before the first key frame: not active yet */
    if (ramp == LF_RAMP_HOLD || k + 1 == s->n_kf) return s->kf[k].value;
    int s1 = lf_sched_step(s->kf[k + 1].kind, s->kf[k + 1].pos, n_steps); /* > t >= sk */
    double v0 = s->kf[k].value, v1 = s->kf[k + 1].value;
    return (float)(v0 + (v1 - v0) * (double)(t - sk) / (double)(s1 - sk));
}

/* The winner at step t is the last key frame (in written order) whose step is <= t, as in
 * lf_sched_eval: the last key frame landing on each step, then a running maximum over the steps. */
lf_status lf_sched_fill(const lf_sched *s, lf_ramp ramp, int n_steps, float *out) {
    if (s->constant || ramp == LF_RAMP_LORACTL) {
        for (int t = 1; t <= n_steps; t++) out[t - 1] = lf_sched_eval(s, ramp, t, n_steps);
        return LF_OK;
    }
    int *kst = malloc((s->n_kf + 1) * sizeof *kst);
    long *last = malloc(((size_t)n_steps + 1) * sizeof *last);
    if (!kst || !last) {
        free(kst);
        free(last);
        return lf_err(LF_ERR_NOMEM, "out of memory for a schedule of %zu key frames over %d steps", s->n_kf, n_steps);
    }
    for (int t = 0; t <= n_steps; t++) last[t] = -1;
    for (size_t i = 0; i < s->n_kf; i++) {
        kst[i] = lf_sched_step(s->kf[i].kind, s->kf[i].pos, n_steps);
        if (kst[i] <= n_steps) last[kst[i]] = (long)i;
    }
    long k = -1;
    for (int t = 1; t <= n_steps; t++) {
        if (last[t] > k) k = last[t];
        float v = 0.0f; /* before the first key frame: not active yet */
        if (k >= 0) {
            size_t i = (size_t)k;
            v = s->kf[i].value;
            if (ramp == LF_RAMP_LINEAR && i + 1 < s->n_kf) { /* kst[i + 1] > t >= kst[i] */
                double v0 = s->kf[i].value, v1 = s->kf[i + 1].value;
                v = (float)(v0 + (v1 - v0) * (double)(t - kst[i]) / (double)(kst[i + 1] - kst[i]));
            }
        }
        out[t - 1] = v;
    }
    free(kst);
    free(last);
    return LF_OK;
}

/* ---- LBW ------------------------------------------------------------------------------------- */

/* Block lists of the four vector lengths (after BASE), as LBW's BLOCKID17/12/20/26. */
static const signed char lf_lbw17[16] = {1, 2, 4, 5, 7, 8, LF_BLK_M00, 16, 17, 18, 19, 20, 21, 22, 23, 24};
static const signed char lf_lbw12[11] = {4, 5, 7, 8, LF_BLK_M00, 13, 14, 15, 16, 17, 18};
static const signed char lf_lbw20[19] = {0, 1, 2, 3, 4, 5, 6, 7, 8, LF_BLK_M00, 13, 14, 15, 16, 17, 18, 19, 20, 21};

int lf_lbw_expand(const float *v, int n, float *base, float blk[LF_BLK_OTHER]) {
    const signed char *map = NULL;
    if (n == 17) map = lf_lbw17;
    else if (n == 12) map = lf_lbw12;
    else if (n == 20) map = lf_lbw20;
    else if (n != 26) return 0;
    for (int b = 0; b < LF_BLK_OTHER; b++) blk[b] = 0.0f;
    *base = v[0];
    for (int i = 1; i < n; i++) blk[map ? map[i - 1] : i - 1] = v[i];
    return 1;
}

typedef struct {
    char name[64];
    int n;
    float v[LF_LBW_MAX];
} lf_preset;

struct lf_lbw_presets {
    lf_preset *p;
    size_t n, cap;
};

/* hako-mikan/sd-webui-lora-block-weight DEF_WEIGHT_PRESET (17 values: BASE, IN01, IN02, IN04, IN05, IN07,
 * IN08, M00, OUT03..OUT11). */
static const struct {
    const char *name;
    const char *v;
} lf_builtin_presets[] = {
    {"NONE", "0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0"},
    {"ALL", "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1"},
    {"INS", "1,1,1,1,0,0,0,0,0,0,0,0,0,0,0,0,0"},
    {"IND", "1,0,0,0,1,1,1,0,0,0,0,0,0,0,0,0,0"},
    {"INALL", "1,1,1,1,1,1,1,0,0,0,0,0,0,0,0,0,0"},
    {"MIDD", "1,0,0,0,1,1,1,1,1,1,1,1,0,0,0,0,0"},
    {"OUTD", "1,0,0,0,0,0,0,0,1,1,1,1,0,0,0,0,0"},
    {"OUTS", "1,0,0,0,0,0,0,0,0,0,0,0,1,1,1,1,1"},
    {"OUTALL", "1,0,0,0,0,0,0,0,1,1,1,1,1,1,1,1,1"},
    {"ALL0.5", "0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5"},
};

void lf_lbw_presets_free(lf_lbw_presets *p) {
    if (!p) return;
    free(p->p);
    free(p);
}

static int lf_is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Parse "v,v,..." in [s, e) (numbers of number.h, finite as f32) into v (the first LF_LBW_MAX); returns
 * the count, or -1 with *bad (1-based entry) and *why (LF_NUM_SYNTAX / LF_NUM_RANGE) on a bad entry. */
static int lf_parse_vec(const char *s, const char *e, float *v, int *bad, lf_num_res *why) {
    int n = 0;
    const char *p = s;
    while (p <= e) {
        const char *c = memchr(p, ',', (size_t)(e - p)), *q = c ? c : e;
        const char *a = p, *b = q;
        while (a < b && lf_is_ws(*a)) a++;
        while (b > a && lf_is_ws(b[-1])) b--;
        double d;
        lf_num_res r = lf_num_parse(a, (size_t)(b - a), LF_NUM_F32_MAX, &d, NULL);
        if (r != LF_NUM_OK) {
            *bad = n + 1;
            *why = r;
            return -1;
        }
        if (n < LF_LBW_MAX) v[n] = (float)d;
        n++;
        p = q + 1;
    }
    return n;
}

static lf_status lf_presets_put(lf_lbw_presets *ps, const char *name, size_t nl, const float *v, int n) {
    lf_preset *slot = NULL;
    for (size_t i = 0; i < ps->n; i++)
        if (strlen(ps->p[i].name) == nl && !memcmp(ps->p[i].name, name, nl)) slot = &ps->p[i];
    if (!slot) {
        if (lf_grow(&ps->p, &ps->cap, ps->n + 1)) return lf_err(LF_ERR_NOMEM, "out of memory");
        slot = &ps->p[ps->n++];
    }
    memset(slot, 0, sizeof *slot);
    memcpy(slot->name, name, nl);
    slot->n = n;
    memcpy(slot->v, v, (size_t)n * sizeof *v);
    return LF_OK;
}

lf_status lf_lbw_presets_parse(const char *text, const char *label, lf_lbw_presets **out) {
    *out = NULL;
    lf_lbw_presets *ps = calloc(1, sizeof *ps);
    if (!ps) return lf_err(LF_ERR_NOMEM, "out of memory");
    lf_status st = LF_OK;
    float v[LF_LBW_MAX];
    int bad;
    lf_num_res why;
    for (size_t i = 0; i < sizeof lf_builtin_presets / sizeof lf_builtin_presets[0] && st == LF_OK; i++) {
        const char *s = lf_builtin_presets[i].v;
        int n = lf_parse_vec(s, s + strlen(s), v, &bad, &why);
        st = lf_presets_put(ps, lf_builtin_presets[i].name, strlen(lf_builtin_presets[i].name), v, n);
    }
    char lbl[LF_ESC_PART], q[LF_ESC_PART];
    lf_esc(lbl, sizeof lbl, label ? label : "presets", strlen(label ? label : "presets"));
    size_t n_user = 0;
    if (text && strlen(text) > LF_LBW_MAX_PRESET_BYTES)
        st = lf_err(LF_ERR_ARG, "%s: %zu bytes, more than the limit of %d bytes for a presets file (docs/limits.md)", lbl,
                    strlen(text), LF_LBW_MAX_PRESET_BYTES);
    int line = 0;
    for (const char *p = text; p && *p && st == LF_OK;) {
        const char *nl = strchr(p, '\n'), *e = nl ? nl : p + strlen(p);
        const char *s = p;
        line++;
        p = nl ? nl + 1 : e;
        while (s < e && lf_is_ws(*s)) s++;
        while (e > s && lf_is_ws(e[-1])) e--;
        if (s == e || *s == '#') continue;
        const char *colon = memchr(s, ':', (size_t)(e - s));
        if (!colon) {
            st = lf_err(LF_ERR_ARG, "%s:%d: expected NAME:v,v,... (no ':')", lbl, line);
            break;
        }
        const char *ne = colon;
        while (ne > s && lf_is_ws(ne[-1])) ne--;
        size_t nlen = (size_t)(ne - s);
        if (!nlen || nlen >= sizeof ps->p[0].name) {
            st = lf_err(LF_ERR_ARG, "%s:%d: preset name must have 1 to 63 characters", lbl, line);
            break;
        }
        lf_esc(q, sizeof q, s, nlen);
        if (!lf_lbw_name_ok(s, nlen)) {
            st = lf_err(LF_ERR_ARG, "%s:%d: preset name '%s' cannot be written in a tag (lbw=NAME): use letters, "
                        "digits, '_', '.', '-' and '+', and not a number", lbl, line, q);
            break;
        }
        if (++n_user > LF_LBW_MAX_PRESETS) {
            st = lf_err(LF_ERR_ARG, "%s:%d: preset '%s': more than %d presets in one file (docs/limits.md)", lbl, line, q,
                        LF_LBW_MAX_PRESETS);
            break;
        }
        int n = lf_parse_vec(colon + 1, e, v, &bad, &why);
        if (n < 0) {
            st = lf_err(LF_ERR_ARG, "%s:%d: preset '%s': entry %d is %s", lbl, line, q, bad,
                        why == LF_NUM_RANGE ? "out of range (at most 3.4e38 in magnitude)" : "not a number");
            break;
        }
        if (n != 12 && n != 17 && n != 20 && n != 26) {
            st = lf_err(LF_ERR_ARG, "%s:%d: preset '%s' has %d values; a block-weight vector has 17 or 26 (SD1.x) "
                        "or 12 or 20 (SDXL)", lbl, line, q, n);
            break;
        }
        st = lf_presets_put(ps, s, nlen, v, n);
    }
    if (st != LF_OK) {
        lf_lbw_presets_free(ps);
        return st;
    }
    *out = ps;
    return LF_OK;
}

lf_status lf_lbw_presets_load(const char *path, lf_lbw_presets **out) {
    if (!path) return lf_lbw_presets_parse(NULL, NULL, out);
    *out = NULL;
    char *buf;
    lf_status st = lf_read_file(path, "the LBW presets file", LF_LBW_MAX_PRESET_BYTES, &buf, NULL);
    if (st) return st;
    st = lf_lbw_presets_parse(buf, path, out);
    free(buf);
    return st;
}

const float *lf_lbw_preset_find(const lf_lbw_presets *p, const char *name, int *n) {
    for (size_t i = 0; p && i < p->n; i++)
        if (!strcmp(p->p[i].name, name)) {
            *n = p->p[i].n;
            return p->p[i].v;
        }
    return NULL;
}

const char *lf_lbw_preset_names(const lf_lbw_presets *p, char *buf, size_t n) {
    size_t o = 0;
    if (n) buf[0] = '\0';
    for (size_t i = 0; p && i < p->n && o + 1 < n; i++) {
        char q[LF_ESC_PART];
        int w = snprintf(buf + o, n - o, "%s%s", i ? ", " : "", lf_esc(q, sizeof q, p->p[i].name, strlen(p->p[i].name)));
        if (w < 0) break;
        o += (size_t)w;
    }
    return buf;
}

/* ---- strengths -------------------------------------------------------------------------------- */

static const lf_sched *lf_given(const lf_tag *t, lf_tag_key k) {
    return t->v[k].n_kf ? &t->v[k] : NULL;
}

static void lf_kf_text(const lf_keyframe *kf, char *buf, size_t n) {
    snprintf(buf, n, "%g@%g%s", (double)kf->value, kf->pos, kf->kind == LF_POS_PERCENT ? "%" : "");
}

/* Key frames past the last step of one tag: how many, and the first of them (for one warning). */
typedef struct {
    size_t n;
    lf_tag_key key;
    char text[64];
    int step;
} lf_past;

static lf_status lf_sched_check(const lf_tag *t, lf_tag_key key, int n_steps, lf_past *past) {
    const lf_sched *s = &t->v[key];
    if (s->constant) return LF_OK;
    if (t->ramp == LF_RAMP_LORACTL) {
        if (n_steps == 2 && s->kf[s->n_kf - 1].pos <= 1.0)
            return lf_tag_err(t, t->col, "%s: loractl reads positions up to 1 as fractions of steps - 2, which is 0 "
                              "at 2 steps (loractl fails there); use 3 or more steps or step positions",
                              lf_tag_key_name(key));
        return LF_OK;
    }
    int prev = 0;
    for (size_t i = 0; i < s->n_kf; i++) {
        const lf_keyframe *kf = &s->kf[i];
        int st = lf_sched_step(kf->kind, kf->pos, n_steps);
        if (i && st < prev) {
            char a[64], b[64];
            lf_kf_text(kf, a, sizeof a);
            lf_kf_text(&s->kf[i - 1], b, sizeof b);
            return lf_tag_err(t, t->col, "key frames must be in increasing order: '%s' lands on step %d of %d, "
                              "before '%s' (step %d)", a, st, n_steps, b, prev);
        }
        if (st > n_steps && !past->n++) {
            past->key = key;
            past->step = st;
            lf_kf_text(kf, past->text, sizeof past->text);
        }
        prev = st;
    }
    return LF_OK;
}

/* The rows of lf_strength.steps: te1, te2, unet, in, mid, out. */
enum { LF_ROW_TE1 = 0, LF_ROW_TE2, LF_ROW_UNET, LF_ROW_GRP, LF_ROWS = LF_ROW_GRP + 3 };

static lf_status lf_strength_fill(lf_strength *s) {
    const lf_sched *rows[LF_ROWS] = {s->te1, s->te2, s->unet, s->grp[0], s->grp[1], s->grp[2]};
    size_t n = (size_t)s->n_steps;
    float *v = malloc(LF_ROWS * n * sizeof *v);
    if (!v) return lf_err(LF_ERR_NOMEM, "out of memory for the strengths of %d steps", s->n_steps);
    lf_status st = LF_OK;
    for (int r = 0; r < LF_ROWS && st == LF_OK; r++) {
        int same = -1; /* rows often share one schedule (in/mid/out <- unet <- S) */
        for (int q = 0; q < r && same < 0; q++)
            if (rows[q] == rows[r]) same = q;
        if (same >= 0) memcpy(v + (size_t)r * n, v + (size_t)same * n, n * sizeof *v);
        else if (!rows[r])
            for (size_t t = 0; t < n; t++) v[(size_t)r * n + t] = 1.0f;
        else st = lf_sched_fill(rows[r], s->ramp, s->n_steps, v + (size_t)r * n);
    }
    if (st != LF_OK) {
        free(v);
        return st;
    }
    s->steps = v;
    return LF_OK;
}

void lf_strength_free(lf_strength *s) {
    if (!s) return;
    free(s->steps);
    s->steps = NULL;
}

/* The preset or vector of the tag, checked against the family, into base / blk. */
static lf_status lf_strength_lbw(const lf_tag *t, lf_family family, const lf_lbw_presets *presets, lf_strength *out) {
    const float *v = t->lbw;
    int n = t->lbw_n;
    if (t->lbw_preset) {
        lf_lbw_presets *builtin = NULL;
        if (!presets) {
            lf_status st = lf_lbw_presets_parse(NULL, NULL, &builtin);
            if (st != LF_OK) return st;
        }
        const lf_lbw_presets *use = presets ? presets : builtin;
        v = lf_lbw_preset_find(use, t->lbw_preset, &n);
        if (v) lf_lbw_expand(v, n, &out->base, out->blk);
        char names[1024], q[LF_ESC_PART];
        if (!v) lf_lbw_preset_names(use, names, sizeof names);
        lf_lbw_presets_free(builtin);
        if (!v)
            return lf_tag_err(t, t->col, "unknown lbw preset '%s' (presets: %s)",
                              lf_esc(q, sizeof q, t->lbw_preset, strlen(t->lbw_preset)), names);
        out->has_lbw = 1;
        return LF_OK;
    }
    if (family == LF_FAMILY_SDXL && n != 12 && n != 20)
        return lf_tag_err(t, t->col, "lbw has %d values; an SDXL model takes 12 or 20", n);
    if ((family == LF_FAMILY_SD1 || family == LF_FAMILY_SD2) && n != 17 && n != 26)
        return lf_tag_err(t, t->col, "lbw has %d values; an %s model takes 17 or 26", n, lf_family_name(family));
    lf_lbw_expand(v, n, &out->base, out->blk);
    out->has_lbw = 1;
    return LF_OK;
}

lf_status lf_strength_resolve(const lf_tag *t, lf_family family, const lf_lbw_presets *presets, int n_steps,
                              lf_strength *out, lf_msgs *warn) {
    memset(out, 0, sizeof *out);
    if (n_steps < 1) return lf_err(LF_ERR_ARG, "the number of steps must be at least 1 (got %d)", n_steps);
    out->tag = t;
    out->family = family;
    out->n_steps = n_steps;
    out->ramp = t->ramp;
    if (family != LF_FAMILY_SDXL && family != LF_FAMILY_UNKNOWN) {
        for (int k = LF_TK_TE1; k <= LF_TK_TE2; k++)
            if (t->v[k].n_kf)
                return lf_tag_err(t, t->col, "%s names one of the two SDXL text encoders; this %s model has one "
                                  "text encoder: use te", lf_tag_key_name((lf_tag_key)k), lf_family_name(family));
    }
    lf_past past = {0, LF_TK_S, "", 0};
    for (int k = 0; k < LF_TK_COUNT; k++) {
        if (!t->v[k].n_kf) continue;
        lf_status st = lf_sched_check(t, (lf_tag_key)k, n_steps, &past);
        if (st != LF_OK) return st;
    }
    const lf_sched *S = lf_given(t, LF_TK_S), *te = lf_given(t, LF_TK_TE);
    const lf_sched *te_eff = te ? te : S;
    out->te1 = lf_given(t, LF_TK_TE1) ? lf_given(t, LF_TK_TE1) : te_eff;
    out->te2 = lf_given(t, LF_TK_TE2) ? lf_given(t, LF_TK_TE2) : te_eff;
    const lf_sched *u = lf_given(t, LF_TK_UNET);
    if (t->dialect == LF_DIALECT_LORACTL) out->unet = u ? u : te_eff; /* params_to_weights: unet <- te */
    else out->unet = u ? u : S ? S : te;
    for (int g = 0; g < 3; g++) {
        const lf_sched *gs = lf_given(t, (lf_tag_key)(LF_TK_IN + g));
        out->grp[g] = gs ? gs : out->unet;
    }
    out->base = 1.0f;
    for (int b = 0; b < LF_BLK_OTHER; b++) out->blk[b] = 1.0f;
    if (t->lbw_preset || t->lbw_n) {
        lf_status st = lf_strength_lbw(t, family, presets, out);
        if (st != LF_OK) return st;
    }
    lf_status st = lf_strength_fill(out);
    if (st != LF_OK) return st;
    if (past.n && warn) {
        char q[LF_ESC_TAG];
        lf_esc(q, sizeof q, t->text, strlen(t->text));
        if (past.n == 1)
            lf_msgs_add(warn, "prompt col %d: %s: %s: key frame '%s' lands on step %d, after the last step (%d): "
                        "never reached", t->col, q, lf_tag_key_name(past.key), past.text, past.step, n_steps);
        else
            lf_msgs_add(warn, "prompt col %d: %s: %zu key frames land after the last step (%d) and are never reached, "
                        "the first %s: '%s' on step %d", t->col, q, past.n, n_steps, lf_tag_key_name(past.key),
                        past.text, past.step);
    }
    return LF_OK;
}

static float lf_eval_or_one(const lf_strength *s, const lf_sched *sc, int row, int t) {
    if (s->steps && t >= 1 && t <= s->n_steps) return s->steps[(size_t)row * (size_t)s->n_steps + (size_t)(t - 1)];
    return sc ? lf_sched_eval(sc, s->ramp, t, s->n_steps) : 1.0f;
}

float lf_strength_te(const lf_strength *s, lf_component comp, int t) {
    int two = comp == LF_COMP_TE2;
    return lf_eval_or_one(s, two ? s->te2 : s->te1, two ? LF_ROW_TE2 : LF_ROW_TE1, t) * s->base;
}

float lf_strength_at(const lf_strength *s, lf_component comp, int block, int t) {
    if (comp == LF_COMP_TE1 || comp == LF_COMP_TE2) return lf_strength_te(s, comp, t);
    if (block < 0 || block >= LF_BLK_COUNT) block = LF_BLK_OTHER;
    if (s->has_lbw) {
        float u = lf_eval_or_one(s, s->unet, LF_ROW_UNET, t);
        return block < LF_BLK_OTHER ? u * s->blk[block] : u;
    }
    lf_group g = lf_block_group(block);
    return lf_eval_or_one(s, s->grp[g], LF_ROW_GRP + (int)g, t);
}

int lf_strength_all_zero(const lf_strength *s) {
    for (int t = 1; t <= s->n_steps; t++) {
        if (lf_strength_te(s, LF_COMP_TE1, t) != 0.0f) return 0;
        if (s->family != LF_FAMILY_SD1 && s->family != LF_FAMILY_SD2 && lf_strength_te(s, LF_COMP_TE2, t) != 0.0f)
            return 0;
        for (int b = 0; b < LF_BLK_COUNT; b++)
            if (lf_block_in_family(b, s->family) && lf_strength_at(s, LF_COMP_UNET, b, t) != 0.0f) return 0;
    }
    return 1;
}
