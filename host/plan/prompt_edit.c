/* prompt_edit.c: A1111 prompt editing and alternation (lf_prompt_edit.h), a recursive-descent reading of
 * prompt_parser.py's grammar:
 *
 *   start:      (prompt | /[][():]/+)*           stray brackets and ':' are text at the top level only
 *   prompt:     (emphasized | scheduled | alternate | plain | WHITESPACE)*
 *   emphasized: "(" prompt ")" | "(" prompt ":" prompt ")" | "[" prompt "]"     kept as written
 *   scheduled:  "[" [prompt ":"] prompt ":" [WHITESPACE] NUMBER [WHITESPACE] "]"
 *   alternate:  "[" prompt ("|" [prompt])+ "]"
 *   plain:      /([^\\\[\]():|]|\\.)+/            NUMBER: lark's SIGNED_NUMBER
 *
 * The alternatives of a bracket are told apart by the character after its first prompt (']' '|' ':'),
 * so the only choice is the top level's: a bracket that is no construct is one character of text,
 * which is the parse lark finds. A bracket that failed once is remembered (fail[]), so each position
 * is tried as a construct at most once. WHEN = min(N, int(v)) with v = float(NUMBER), times N when the
 * number has a '.' (CollectSteps). Whitespace is Python's ASCII \s.
 * Evaluation (AtStep): a scheduled part is FROM while step <= WHEN, else TO; an alternation takes
 * option (step - 1) mod count. Texts are found once per distinct schedule end and kept once each
 * (hashed), so memory follows the distinct texts, not the steps. When the prompt has at most
 * LF_PE_SIG_MAX choices (scheduled parts and alternations), the choices taken at an end are its
 * signature: an end whose signature was seen reuses that text without building it again (an
 * alternation over 10,000 steps of a long prompt builds two texts, not 10,000).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lorafuse/lf_prompt_edit.h"
#include "host/base/strbuf.h"
#include "host/base/util.h"

enum { LF_PE_TEXT, LF_PE_SEQ, LF_PE_SCHED, LF_PE_ALT };
#define LF_PE_NONE SIZE_MAX
#define LF_PE_SIG_MAX 64

typedef struct {
    int kind;
    size_t s, n;        /* TEXT: bytes [s, s + n) of the prompt */
    size_t child, last; /* SEQ, ALT: first and last child */
    size_t next;        /* next sibling */
    size_t a, b;        /* SCHED: FROM (or LF_PE_NONE) and TO sequences */
    long long when;     /* SCHED */
} lf_pe_node;

typedef struct {
    const char *p;
    size_t len;
    int steps;
    lf_pe_node *nodes;
    size_t n, cap;
    unsigned char *fail; /* a construct at this position failed */
    int depth, too_deep, nomem;
} lf_pe;

static size_t lf_pe_add(lf_pe *x, int kind, size_t s, size_t n) {
    if (lf_grow(&x->nodes, &x->cap, x->n + 1)) {
        x->nomem = 1;
        return LF_PE_NONE;
    }
    lf_pe_node *d = &x->nodes[x->n];
    memset(d, 0, sizeof *d);
    d->kind = kind;
    d->s = s;
    d->n = n;
    d->child = d->last = d->next = d->a = d->b = LF_PE_NONE;
    return x->n++;
}

static void lf_pe_append(lf_pe *x, size_t parent, size_t child) {
    lf_pe_node *p = &x->nodes[parent];
    if (p->last == LF_PE_NONE) p->child = child;
    else x->nodes[p->last].next = child;
    p->last = child;
}

static int lf_pe_ws(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' || (c >= 0x1c && c <= 0x1f);
}

/* Bytes of plain text at i (0: none): anything but \ [ ] ( ) : |, or '\' and a character not '\n'. */
static size_t lf_pe_plain(const lf_pe *x, size_t i) {
    size_t j = i;
    while (j < x->len) {
        char c = x->p[j];
        if (c == '\\') {
            if (j + 1 >= x->len || x->p[j + 1] == '\n') break;
            j += 2;
        } else if (strchr("[]():|", c)) {
            break;
        } else {
            j++;
        }
    }
    return j - i;
}

static size_t lf_pe_digits(const lf_pe *x, size_t i) {
    size_t j = i;
    while (j < x->len && x->p[j] >= '0' && x->p[j] <= '9') j++;
    return j - i;
}

/* lark's SIGNED_NUMBER at i: its length (0: none); *dot when it has a '.'. */
static size_t lf_pe_number(const lf_pe *x, size_t i, int *dot) {
    size_t j = i;
    if (j < x->len && (x->p[j] == '+' || x->p[j] == '-')) j++;
    size_t d = lf_pe_digits(x, j), f = 0;
    j += d;
    *dot = 0;
    if (j < x->len && x->p[j] == '.') {
        f = lf_pe_digits(x, j + 1);
        if (d || f) {
            *dot = 1;
            j += 1 + f;
        }
    }
    if (!d && !f) return 0;
    if (j < x->len && (x->p[j] == 'e' || x->p[j] == 'E')) {
        size_t k = j + 1;
        if (k < x->len && (x->p[k] == '+' || x->p[k] == '-')) k++;
        size_t e = lf_pe_digits(x, k);
        if (e) j = k + e;
    }
    return j - i;
}

/* WHEN of a NUMBER [i, i + n): min(steps, int(v)), v times steps when it has a '.'. */
static long long lf_pe_when(const lf_pe *x, size_t i, size_t n, int dot) {
    char buf[64];
    double v;
    if (n < sizeof buf) {
        memcpy(buf, x->p + i, n);
        buf[n] = '\0';
        v = strtod(buf, NULL);
    } else {
        v = x->p[i] == '-' ? -HUGE_VAL : HUGE_VAL; /* more digits than a double holds: far out either way */
    }
    if (dot) v *= x->steps;
    if (v >= x->steps) return x->steps;
    if (v <= -1e18) return (long long)-1e18;
    return (long long)v; /* truncation toward zero, as Python's int() */
}

static size_t lf_pe_construct(lf_pe *x, size_t i, size_t *end);

/* A prompt (possibly empty) from i: a SEQ node, *end after it. */
static size_t lf_pe_seq(lf_pe *x, size_t i, size_t *end) {
    size_t seq = lf_pe_add(x, LF_PE_SEQ, i, 0);
    if (seq == LF_PE_NONE) return LF_PE_NONE;
    while (i < x->len && !x->nomem && !x->too_deep) {
        size_t n = lf_pe_plain(x, i), e, c;
        if (n) {
            if ((c = lf_pe_add(x, LF_PE_TEXT, i, n)) == LF_PE_NONE) break;
            lf_pe_append(x, seq, c);
            i += n;
        } else if ((x->p[i] == '(' || x->p[i] == '[') && (c = lf_pe_construct(x, i, &e)) != LF_PE_NONE) {
            lf_pe_append(x, seq, c);
            i = e;
        } else {
            break;
        }
    }
    *end = i;
    return seq;
}

/* ":" [WS] NUMBER [WS] "]" at i (i at the ':'): the WHEN, *end after the ']'; 0 when absent. */
static int lf_pe_when_tail(lf_pe *x, size_t i, long long *when, size_t *end) {
    if (i >= x->len || x->p[i] != ':') return 0;
    i++;
    while (i < x->len && lf_pe_ws(x->p[i])) i++;
    int dot;
    size_t n = lf_pe_number(x, i, &dot);
    if (!n) return 0;
    size_t j = i + n;
    while (j < x->len && lf_pe_ws(x->p[j])) j++;
    if (j >= x->len || x->p[j] != ']') return 0;
    *when = lf_pe_when(x, i, n, dot);
    *end = j + 1;
    return 1;
}

/* Three TEXT/SEQ parts as one SEQ: open, inner, close (emphasis kept as written). */
static size_t lf_pe_wrap(lf_pe *x, size_t open, size_t inner, size_t close) {
    size_t w = lf_pe_add(x, LF_PE_SEQ, open, 0), a = lf_pe_add(x, LF_PE_TEXT, open, 1), c = lf_pe_add(x, LF_PE_TEXT, close, 1);
    if (w == LF_PE_NONE || a == LF_PE_NONE || c == LF_PE_NONE) return LF_PE_NONE;
    lf_pe_append(x, w, a);
    lf_pe_append(x, w, inner);
    lf_pe_append(x, w, c);
    return w;
}

static size_t lf_pe_construct_at(lf_pe *x, size_t i, size_t *end) {
    size_t e1, e2;
    size_t s1 = lf_pe_seq(x, i + 1, &e1);
    if (s1 == LF_PE_NONE || e1 >= x->len || x->too_deep) return LF_PE_NONE;
    char c = x->p[e1];
    if (x->p[i] == '(') {
        if (c == ')') {
            *end = e1 + 1;
            return lf_pe_wrap(x, i, s1, e1);
        }
        if (c != ':') return LF_PE_NONE;
        size_t s2 = lf_pe_seq(x, e1 + 1, &e2);
        if (s2 == LF_PE_NONE || e2 >= x->len || x->p[e2] != ')') return LF_PE_NONE;
        size_t w = lf_pe_wrap(x, i, s1, e2), colon = lf_pe_add(x, LF_PE_TEXT, e1, 1);
        if (w == LF_PE_NONE || colon == LF_PE_NONE) return LF_PE_NONE;
        /* ( s1 : s2 ): put ':' and s2 between s1 and ')' */
        lf_pe_node *W = &x->nodes[w];
        size_t close = W->last;
        x->nodes[s1].next = colon;
        x->nodes[colon].next = s2;
        x->nodes[s2].next = close;
        *end = e2 + 1;
        return w;
    }
    if (c == ']') {
        *end = e1 + 1;
        return lf_pe_wrap(x, i, s1, e1);
    }
    if (c == '|') {
        size_t alt = lf_pe_add(x, LF_PE_ALT, i, 0);
        if (alt == LF_PE_NONE) return LF_PE_NONE;
        lf_pe_append(x, alt, s1);
        size_t e = e1;
        while (e < x->len && x->p[e] == '|') {
            size_t s = lf_pe_seq(x, e + 1, &e);
            if (s == LF_PE_NONE) return LF_PE_NONE;
            lf_pe_append(x, alt, s);
        }
        if (e >= x->len || x->p[e] != ']') return LF_PE_NONE;
        *end = e + 1;
        return alt;
    }
    if (c != ':') return LF_PE_NONE;
    long long when;
    size_t sched = lf_pe_add(x, LF_PE_SCHED, i, 0);
    if (sched == LF_PE_NONE) return LF_PE_NONE;
    if (lf_pe_when_tail(x, e1, &when, end)) { /* [TO:WHEN] */
        x->nodes[sched].b = s1;
        x->nodes[sched].when = when;
        return sched;
    }
    size_t s2 = lf_pe_seq(x, e1 + 1, &e2); /* [FROM:TO:WHEN] */
    if (s2 == LF_PE_NONE || !lf_pe_when_tail(x, e2, &when, end)) return LF_PE_NONE;
    x->nodes[sched].a = s1;
    x->nodes[sched].b = s2;
    x->nodes[sched].when = when;
    return sched;
}

/* A bracket construct at i ('(' or '['): its node, *end after it; LF_PE_NONE (nothing added) if it is none. */
static size_t lf_pe_construct(lf_pe *x, size_t i, size_t *end) {
    if (x->fail[i]) return LF_PE_NONE;
    if (++x->depth > LF_PROMPT_EDIT_MAX_DEPTH) {
        x->too_deep = 1;
        x->depth--;
        return LF_PE_NONE;
    }
    size_t mark = x->n;
    size_t r = lf_pe_construct_at(x, i, end);
    x->depth--;
    if (r == LF_PE_NONE) {
        x->n = mark;
        x->fail[i] = 1;
    }
    return r;
}

/* The whole prompt: 0 when the grammar cannot read it (then it is one text, as written). */
static int lf_pe_parse(lf_pe *x, size_t *root) {
    size_t top = lf_pe_add(x, LF_PE_SEQ, 0, 0), i = 0;
    *root = top;
    while (i < x->len && !x->nomem && !x->too_deep) {
        size_t e, c;
        size_t n = lf_pe_plain(x, i);
        char ch = x->p[i];
        if (n) {
            c = lf_pe_add(x, LF_PE_TEXT, i, n);
            i += n;
        } else if ((ch == '(' || ch == '[') && (c = lf_pe_construct(x, i, &e)) != LF_PE_NONE) {
            i = e;
        } else if (strchr("[]():", ch)) {
            c = lf_pe_add(x, LF_PE_TEXT, i, 1);
            i++;
        } else {
            return 0; /* '|' outside brackets, or a '\' before a newline or at the end */
        }
        if (c != LF_PE_NONE) lf_pe_append(x, top, c);
    }
    return 1;
}

static void lf_pe_eval(const lf_pe *x, size_t node, long long step, lf_sbuf *sb) {
    if (node == LF_PE_NONE) return;
    const lf_pe_node *d = &x->nodes[node];
    switch (d->kind) {
    case LF_PE_TEXT:
        lf_sb_put(sb, x->p + d->s, d->n);
        break;
    case LF_PE_SEQ:
        for (size_t c = d->child; c != LF_PE_NONE; c = x->nodes[c].next) lf_pe_eval(x, c, step, sb);
        break;
    case LF_PE_SCHED:
        lf_pe_eval(x, step <= d->when ? d->a : d->b, step, sb);
        break;
    default: {
        size_t k = 0, c;
        for (c = d->child; c != LF_PE_NONE; c = x->nodes[c].next) k++;
        size_t want = (size_t)((step - 1) % (long long)k);
        for (c = d->child; want--; c = x->nodes[c].next) {
        }
        lf_pe_eval(x, c, step, sb);
    }
    }
}

void lf_prompt_sched_free(lf_prompt_sched *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n_texts; i++) free(s->texts[i]);
    free(s->texts);
    free(s->at);
    memset(s, 0, sizeof *s);
}

static uint64_t lf_pe_hash(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

/* The choices taken at end e (one per SCHED/ALT node, in node order) and the text they give. */
typedef struct {
    size_t n_choice, *choice;  /* node indices */
    size_t n, hcap;            /* signatures kept, table size */
    size_t *sig;               /* n x n_choice */
    size_t *text;              /* per signature */
    size_t *slot;              /* hcap: signature index + 1 */
} lf_pe_sigs;

static void lf_pe_sig_of(const lf_pe *x, const lf_pe_sigs *g, long long e, size_t *sig) {
    for (size_t i = 0; i < g->n_choice; i++) {
        const lf_pe_node *d = &x->nodes[g->choice[i]];
        if (d->kind == LF_PE_SCHED) {
            sig[i] = e <= d->when;
        } else {
            size_t k = 0;
            for (size_t c = d->child; c != LF_PE_NONE; c = x->nodes[c].next) k++;
            sig[i] = (size_t)((e - 1) % (long long)k);
        }
    }
}

/* Keep text [s, s + n) once: its index in out->texts. */
static lf_status lf_pe_keep(lf_prompt_sched *out, size_t *slot, uint64_t *hash, size_t hcap, const char *s, size_t n,
                            size_t *bytes, size_t *idx) {
    uint64_t h = lf_pe_hash(s, n);
    size_t k = (size_t)(h % hcap);
    for (; slot[k]; k = (k + 1) % hcap)
        if (hash[k] == h && !strcmp(out->texts[slot[k] - 1], s)) {
            *idx = slot[k] - 1;
            return LF_OK;
        }
    if ((*bytes += n + 1) > LF_PROMPT_EDIT_MAX_BYTES)
        return lf_err(LF_ERR_ARG, "prompt editing gives more than %d MiB of different prompt texts over %d steps "
                      "(docs/limits.md)", LF_PROMPT_EDIT_MAX_BYTES >> 20, out->n_steps);
    char *t = malloc(n + 1);
    if (!t) return lf_err(LF_ERR_NOMEM, "out of memory");
    memcpy(t, s, n);
    t[n] = '\0';
    out->texts[out->n_texts] = t;
    *idx = out->n_texts++;
    slot[k] = *idx + 1;
    hash[k] = h;
    return LF_OK;
}

lf_status lf_prompt_sched_build(const char *text, int n_steps, lf_prompt_sched *out) {
    memset(out, 0, sizeof *out);
    if (!text) text = "";
    if (n_steps < 1) return lf_err(LF_ERR_ARG, "the number of steps must be at least 1 (got %d)", n_steps);
    lf_pe x;
    memset(&x, 0, sizeof x);
    x.p = text;
    x.len = strlen(text);
    x.steps = n_steps;
    size_t N = (size_t)n_steps, hcap = 2 * N + 1, root = LF_PE_NONE;
    x.fail = calloc(x.len + 1, 1);
    unsigned char *end_at = calloc(N + 1, 1);
    size_t *slot = calloc(hcap, sizeof *slot);
    uint64_t *hash = calloc(hcap, sizeof *hash);
    out->n_steps = n_steps;
    out->at = calloc(N, sizeof *out->at);
    out->texts = calloc(N, sizeof *out->texts);
    lf_sbuf sb;
    memset(&sb, 0, sizeof sb);
    lf_status st = LF_OK;
    if (!x.fail || !end_at || !slot || !hash || !out->at || !out->texts) st = lf_err(LF_ERR_NOMEM, "out of memory");
    int parsed = st == LF_OK && lf_pe_parse(&x, &root);
    if (st == LF_OK && x.nomem) st = lf_err(LF_ERR_NOMEM, "out of memory");
    if (st == LF_OK && x.too_deep)
        st = lf_err(LF_ERR_ARG, "prompt: brackets nested more than %d deep (docs/limits.md)", LF_PROMPT_EDIT_MAX_DEPTH);
    /* the ends of A1111's schedule: N, every WHEN >= 1, every step when the prompt alternates */
    if (st == LF_OK && parsed) {
        end_at[N] = 1;
        for (size_t i = 0; i < x.n; i++) {
            if (x.nodes[i].kind == LF_PE_SCHED && x.nodes[i].when >= 1) end_at[x.nodes[i].when] = 1;
            if (x.nodes[i].kind == LF_PE_ALT) memset(end_at + 1, 1, N);
        }
    }
    lf_pe_sigs g;
    memset(&g, 0, sizeof g);
    size_t sig[LF_PE_SIG_MAX];
    if (st == LF_OK && parsed) {
        for (size_t i = 0; i < x.n; i++) g.n_choice += x.nodes[i].kind == LF_PE_SCHED || x.nodes[i].kind == LF_PE_ALT;
        if (g.n_choice > LF_PE_SIG_MAX) {
            g.n_choice = 0; /* build every end's text */
        } else if (g.n_choice) {
            g.hcap = hcap;
            g.choice = malloc(g.n_choice * sizeof *g.choice);
            g.sig = malloc(N * g.n_choice * sizeof *g.sig);
            g.text = malloc(N * sizeof *g.text);
            g.slot = calloc(hcap, sizeof *g.slot);
            if (!g.choice || !g.sig || !g.text || !g.slot) st = lf_err(LF_ERR_NOMEM, "out of memory");
            for (size_t i = 0, k = 0; i < x.n && st == LF_OK; i++)
                if (x.nodes[i].kind == LF_PE_SCHED || x.nodes[i].kind == LF_PE_ALT) g.choice[k++] = i;
        }
    }
    size_t bytes = 0, e = 1, last_e = 0, last_idx = 0;
    for (size_t t = 1; t <= N && st == LF_OK; t++) {
        if (!parsed) {
            if (t == 1) st = lf_pe_keep(out, slot, hash, hcap, text, x.len, &bytes, &last_idx);
            out->at[t - 1] = last_idx;
            continue;
        }
        /* sampler step t - 1 takes the first end >= t - 1 */
        if (e < t - 1) e = t - 1;
        while (!end_at[e]) e++;
        if (e != last_e) {
            size_t k = 0;
            last_e = e;
            if (g.n_choice) { /* a signature seen before: its text */
                lf_pe_sig_of(&x, &g, (long long)e, sig);
                k = (size_t)(lf_pe_hash(sig, g.n_choice * sizeof *sig) % g.hcap);
                while (g.slot[k] && memcmp(g.sig + (g.slot[k] - 1) * g.n_choice, sig, g.n_choice * sizeof *sig))
                    k = (k + 1) % g.hcap;
                if (g.slot[k]) {
                    last_idx = g.text[g.slot[k] - 1];
                    out->at[t - 1] = last_idx;
                    continue;
                }
            }
            lf_sb_reset(&sb);
            lf_pe_eval(&x, root, (long long)e, &sb);
            if (sb.oom) st = lf_err(LF_ERR_NOMEM, "out of memory");
            else st = lf_pe_keep(out, slot, hash, hcap, sb.s ? sb.s : "", sb.n, &bytes, &last_idx);
            if (st == LF_OK && g.n_choice) {
                memcpy(g.sig + g.n * g.n_choice, sig, g.n_choice * sizeof *sig);
                g.text[g.n++] = last_idx;
                g.slot[k] = g.n;
            }
        }
        out->at[t - 1] = last_idx;
    }
    lf_sb_free(&sb);
    free(g.choice);
    free(g.sig);
    free(g.text);
    free(g.slot);
    free(x.nodes);
    free(x.fail);
    free(end_at);
    free(slot);
    free(hash);
    if (st != LF_OK) lf_prompt_sched_free(out);
    return st;
}
