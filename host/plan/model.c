/* model.c: open a single-file checkpoint and build its keymap (docs/semantics.md P8: names come from the
 * model's own key list). */
#include <stdlib.h>

#include "lorafuse/lf_model.h"

lf_status lf_model_open(const char *path, lf_model **out) {
    *out = NULL;
    lf_model *m = calloc(1, sizeof *m);
    if (!m) return lf_err(LF_ERR_NOMEM, "%s: out of memory", path);
    lf_status st = lf_st_open(path, &m->st);
    if (st != LF_OK) {
        free(m);
        return st;
    }
    size_t n = lf_st_count(m->st);
    const char **keys = malloc((n ? n : 1) * sizeof *keys);
    lf_view *views = malloc((n ? n : 1) * sizeof *views);
    if (!keys || !views) {
        st = lf_err(LF_ERR_NOMEM, "%s: out of memory", path);
    } else {
        for (size_t i = 0; i < n; i++) {
            keys[i] = lf_st_at(m->st, i)->name;
            views[i] = lf_st_view(lf_st_at(m->st, i));
        }
        st = lf_keymap_build(keys, views, n, &m->km);
        if (st != LF_OK) lf_err_wrap(st, "%s: ", path);
    }
    free(keys);
    free(views);
    if (st != LF_OK) {
        lf_model_free(m);
        return st;
    }
    m->family = lf_keymap_family(m->km);
    *out = m;
    return LF_OK;
}

void lf_model_free(lf_model *m) {
    if (!m) return;
    lf_keymap_free(m->km);
    lf_st_close(m->st);
    free(m);
}
