/* batch_grid.c: grid sheets of sweeps, as A1111's X/Y plot: the first image of each job of a sweep
 * with one or two axes besides "seed", axis values as column and row labels, drawn with cairo.
 *
 * Layout: one axis: columns = its values, rows = the seeds when "seed" is an axis; two axes: columns =
 * the first, rows = the second, one sheet per seed when "seed" is an axis. Sheets are written as
 * OUT/SWEEP/grid.png or OUT/SWEEP/grid-seed-S.png (temporary file, then rename, replacing an older
 * sheet) once every cell's image exists (images of other shards included), so the last shard to finish
 * a sweep draws it. A sweep with more axes gets no sheet.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <cairo.h>
#include <fontconfig/fontconfig.h>

#include "batch_internal.h"
#include "host/base/file.h"
#include "host/base/strbuf.h"
#include "host/base/util.h"
#include "lorafuse/lf_png.h"

#define LF_GRID_MAX 64 /* values per axis on a sheet */

typedef struct {
    char *name;
    char *vals[LF_GRID_MAX];
    int n;
} lf_gaxis;

static int lf_gval(const lf_gaxis *a, const char *v) {
    for (int i = 0; i < a->n; i++)
        if (!strcmp(a->vals[i], v)) return i;
    return -1;
}

/* The value of axis `name` in a job's axes JSON, or NULL. */
static const char *lf_gjob_val(const cJSON *axes, const char *name) {
    for (const cJSON *p = axes ? axes->child : NULL; p; p = p->next)
        if (!strcmp(cJSON_GetArrayItem(p, 0)->valuestring, name)) return cJSON_GetArrayItem(p, 1)->valuestring;
    return NULL;
}

static cairo_status_t lf_gwrite(void *ctx, const unsigned char *data, unsigned int n) {
    lf_sb_put(ctx, (const char *)data, n);
    return ((lf_sbuf *)ctx)->oom ? CAIRO_STATUS_NO_MEMORY : CAIRO_STATUS_SUCCESS;
}

/* One sheet: cells[r * nc + c] is the image file of that cell. 1 written, 0 a cell missing. */
static lf_status lf_gsheet(const char *path, const lf_gaxis *col, const lf_gaxis *row, char **cells, int *written) {
    int nc = col->n, nr = row ? row->n : 1, W = 0, H = 0;
    *written = 0;
    if (nc < 1 || nr < 1) return LF_OK;
    size_t cellsn = (size_t)nc * (size_t)nr;
    for (int i = 0; i < nc * nr; i++)
        if (!cells[i] || !lf_file_exists(cells[i])) return LF_OK;
    uint8_t **rgb = calloc(cellsn, sizeof *rgb);
    int *w = calloc(cellsn, sizeof *w), *h = calloc(cellsn, sizeof *h);
    lf_status st = rgb && w && h ? LF_OK : lf_err(LF_ERR_NOMEM, "out of memory");
    for (int i = 0; i < nc * nr && st == LF_OK; i++) {
        st = lf_png_read(cells[i], &rgb[i], &w[i], &h[i], NULL, NULL);
        if (w[i] > W) W = w[i];
        if (h[i] > H) H = h[i];
    }
    if (st == LF_OK) {
        double fs = H / 8.0 < 12 ? 12 : H / 8.0; /* labels readable at 64 px, in proportion above */
        cairo_surface_t *probe = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 1, 1);
        cairo_t *cr = cairo_create(probe);
        cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
        cairo_set_font_size(cr, fs);
        double lw = 0;
        cairo_text_extents_t te;
        for (int r = 0; row && r < nr; r++) {
            char lab[256];
            snprintf(lab, sizeof lab, "%s=%s", row->name, row->vals[r]);
            cairo_text_extents(cr, lab, &te);
            if (te.x_advance > lw) lw = te.x_advance;
        }
        cairo_destroy(cr);
        cairo_surface_destroy(probe);
        int left = row ? (int)lw + (int)fs : 0, top = (int)(fs * 2);
        int cw = W, cwidth = left + nc * cw, cheight = top + nr * H;
        cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, cwidth, cheight);
        cr = cairo_create(s);
        cairo_set_source_rgb(cr, 1, 1, 1);
        cairo_paint(cr);
        cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
        cairo_set_font_size(cr, fs);
        cairo_set_source_rgb(cr, 0, 0, 0);
        for (int c = 0; c < nc; c++) { /* column labels, centred, clipped to their column */
            char lab[256];
            snprintf(lab, sizeof lab, "%s=%s", col->name, col->vals[c]);
            cairo_text_extents(cr, lab, &te);
            cairo_save(cr);
            cairo_rectangle(cr, left + c * cw, 0, cw, top);
            cairo_clip(cr);
            double x = left + c * cw + (cw - te.x_advance) / 2;
            cairo_move_to(cr, x < left + c * cw ? left + c * cw : x, top * 0.65);
            cairo_show_text(cr, lab);
            cairo_restore(cr);
        }
        for (int r = 0; row && r < nr; r++) {
            char lab[256];
            snprintf(lab, sizeof lab, "%s=%s", row->name, row->vals[r]);
            cairo_move_to(cr, fs / 2, top + r * H + H / 2.0 + fs / 3);
            cairo_show_text(cr, lab);
        }
        cairo_surface_flush(s);
        unsigned char *px = cairo_image_surface_get_data(s);
        int stride = cairo_image_surface_get_stride(s);
        for (int i = 0; i < nc * nr && px; i++) { /* RGB -> cairo's native-endian xRGB words */
            int x0 = left + (i % nc) * cw, y0 = top + (i / nc) * H;
            for (int y = 0; y < h[i]; y++)
                for (int x = 0; x < w[i]; x++) {
                    const uint8_t *p = rgb[i] + ((size_t)y * (size_t)w[i] + (size_t)x) * 3;
                    uint32_t v = 0xff000000u | (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
                    memcpy(px + (size_t)(y0 + y) * (size_t)stride + (size_t)(x0 + x) * 4, &v, 4);
                }
        }
        cairo_surface_mark_dirty(s);
        lf_sbuf png = {0};
        if (cairo_surface_write_to_png_stream(s, lf_gwrite, &png) != CAIRO_STATUS_SUCCESS || png.oom)
            st = lf_err(LF_ERR_NOMEM, "%s: cairo could not encode the grid sheet", path);
        cairo_destroy(cr);
        cairo_surface_destroy(s);
        lf_file_out_opts fo = {1, NULL, 0};
        lf_file_out *f = NULL;
        if (st == LF_OK) st = lf_file_out_open(path, &fo, &f);
        if (st == LF_OK) {
            st = lf_file_out_write(f, png.s, png.n);
            if (st != LF_OK) lf_file_out_abort(f);
            else st = lf_file_out_commit(f);
        }
        lf_sb_free(&png);
        *written = st == LF_OK;
    }
    for (int i = 0; rgb && i < nc * nr; i++) free(rgb[i]);
    free(rgb), free(w), free(h);
    return st;
}

/* The sheets of one sweep (jobs: its jobs, in product order). */
static lf_status lf_gsweep(const lf_batch_job *const *jobs, size_t n, const char *out, size_t *n_grids) {
    cJSON *ax0 = cJSON_Parse(jobs[0]->axes);
    lf_gaxis ax[3];
    memset(ax, 0, sizeof ax);
    int na = 0, seed = -1;
    for (const cJSON *p = ax0 ? ax0->child : NULL; p; p = p->next) {
        if (na == 3) {
            na = 4;
            break;
        }
        if (!strcmp(cJSON_GetArrayItem(p, 0)->valuestring, "seed")) seed = na;
        ax[na++].name = cJSON_GetArrayItem(p, 0)->valuestring;
    }
    lf_status st = LF_OK;
    int other = na - (seed >= 0);
    if (na > 3 || other < 1 || other > 2) {
        cJSON_Delete(ax0);
        return LF_OK;
    }
    cJSON **jax = calloc(n, sizeof *jax);
    if (!jax) st = lf_err(LF_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < n && st == LF_OK; k++) {
        jax[k] = cJSON_Parse(jobs[k]->axes);
        for (int a = 0; a < na; a++) {
            const char *v = lf_gjob_val(jax[k], ax[a].name);
            if (v && lf_gval(&ax[a], v) < 0 && ax[a].n < LF_GRID_MAX) ax[a].vals[ax[a].n++] = (char *)v;
        }
    }
    /* roles: columns, rows (or none), pages (or none) */
    int nons[2], m = 0;
    for (int a = 0; a < na; a++)
        if (a != seed) nons[m++] = a;
    const lf_gaxis *col = &ax[nons[0]];
    const lf_gaxis *row = other == 2 ? &ax[nons[1]] : seed >= 0 ? &ax[seed] : NULL;
    const lf_gaxis *page = other == 2 && seed >= 0 ? &ax[seed] : NULL;
    int nr = row ? row->n : 1;
    char **cells = calloc((size_t)(col->n * nr), sizeof *cells);
    if (!cells && st == LF_OK) st = lf_err(LF_ERR_NOMEM, "out of memory");
    for (int pg = 0; pg < (page ? page->n : 1) && st == LF_OK; pg++) {
        for (size_t k = 0; k < n; k++) {
            const char *pv = page ? lf_gjob_val(jax[k], page->name) : NULL;
            if (page && (!pv || strcmp(pv, page->vals[pg]))) continue;
            int c = lf_gval(col, lf_gjob_val(jax[k], col->name));
            int r = row ? lf_gval(row, lf_gjob_val(jax[k], row->name)) : 0;
            if (c < 0 || r < 0) continue;
            free(cells[r * col->n + c]);
            lf_sbuf f = {0};
            lf_sb_printf(&f, "%s/%s/%05d-%lld.png", out, jobs[k]->dir, 0, (long long)jobs[k]->seed);
            cells[r * col->n + c] = f.s;
        }
        lf_sbuf path = {0};
        if (page) lf_sb_printf(&path, "%s/%s/grid-seed-%s.png", out, jobs[0]->sweep, page->vals[pg]);
        else lf_sb_printf(&path, "%s/%s/grid.png", out, jobs[0]->sweep);
        int w = 0;
        st = path.oom ? lf_err(LF_ERR_NOMEM, "out of memory") : lf_gsheet(path.s, col, row, cells, &w);
        *n_grids += (size_t)w;
        lf_sb_free(&path);
        for (int i = 0; i < col->n * nr; i++) free(cells[i]), cells[i] = NULL;
    }
    free(cells);
    for (size_t k = 0; jax && k < n; k++) cJSON_Delete(jax[k]);
    free(jax);
    cJSON_Delete(ax0);
    return st;
}

static int lf_gcmp(const void *pa, const void *pb) {
    const lf_batch_job *a = *(const lf_batch_job *const *)pa, *b = *(const lf_batch_job *const *)pb;
    int c = strcmp(a->sweep, b->sweep);
    return c ? c : (a->sweep_index > b->sweep_index) - (a->sweep_index < b->sweep_index);
}

lf_status lf_batch_grids(const lf_batch_list *l, const size_t *idx, size_t n_idx, const char *out, size_t *n_grids) {
    *n_grids = 0;
    const lf_batch_job **v = malloc((l->n + 1) * sizeof *v);
    if (!v) return lf_err(LF_ERR_NOMEM, "out of memory");
    size_t n = 0;
    for (size_t k = 0; k < l->n; k++)
        if (l->jobs[k].sweep && l->jobs[k].axes) v[n++] = &l->jobs[k];
    qsort(v, n, sizeof *v, lf_gcmp);
    lf_status st = LF_OK;
    int drew = 0;
    for (size_t a = 0; a < n && st == LF_OK;) {
        size_t b = a + 1;
        while (b < n && !strcmp(v[b]->sweep, v[a]->sweep)) b++;
        int mine = 0; /* only the sweeps this shard ran a job of */
        for (size_t k = 0; k < n_idx && !mine; k++)
            mine = l->jobs[idx[k]].sweep && !strcmp(l->jobs[idx[k]].sweep, v[a]->sweep);
        if (mine) st = lf_gsweep(v + a, b - a, out, n_grids);
        if (mine) drew = 1;
        a = b;
    }
    free(v);
    if (drew) { /* cairo's and fontconfig's font caches live until released (they are set up again if needed) */
        cairo_debug_reset_static_data();
        FcFini();
    }
    return st;
}
