/* vae_tiled.c: the VAE decode in overlapping tiles (`generate --vae-tiling`), as diffusers'
 * AutoencoderKL.tiled_decode (0.30) computes it, so the memory of a decode is that of one tile.
 *
 * latents (z, h, w) of one image -> img (3, f*h, f*w), f the VAE's factor; T the tile in latent pixels,
 * S = f*T in image pixels, overlap factor 1/4:
 *   overlap = floor(T * 3/4), blend = floor(S / 4), keep = S - blend
 *   tile (i, j) = decode(latents[:, i:i+T, j:j+T]) for i, j = 0, overlap, 2*overlap, ... (edge tiles smaller)
 *   in row-major order each tile is blended in place with the tile above (its last `blend` rows, weight
 *   1 - y/blend for the upper one, y/blend for this one; y the row) and then with the tile to its left
 *   (columns alike), each neighbour as already blended; then its first keep x keep pixels are placed.
 * Weights as torch computes them: (float)(1 - y/blend) and (float)(y/blend) from double, products and
 * sum in f32. Tiles decode on any compute (lf_vae_decode_on) and come back to the host for the blend.
 * Golden: scripts/golden/vae_tiling.py (diffusers' own tiled_decode), tests/runtime/test_vae.c.
 */
#include <stdlib.h>
#include <string.h>

#include "lorafuse/lf_vae.h"
#include "compute_cpu.h"
#include "model_compute.h"
#include "model_mem.h"

/* the tiles' latent step (overlap) and their count down (ni) and across (nj) */
static int64_t lf_vt_grid(int64_t h, int64_t w, int64_t T, int64_t *ni, int64_t *nj) {
    int64_t ov = T * 3 / 4;
    *ni = (h + ov - 1) / ov, *nj = (w + ov - 1) / ov;
    return ov;
}

typedef struct {
    float *p;        /* (3, th, tw) on the host */
    int64_t th, tw;
} lf_vt_tile;

/* b's first rows (v = 1) or columns (v = 0) blended with a's last ones, in place (diffusers blend_v/h) */
static void lf_vt_blend(const lf_vt_tile *a, lf_vt_tile *b, int64_t extent, int v) {
    int64_t e = extent;
    if (v) e = e < a->th ? e : a->th, e = e < b->th ? e : b->th;
    else e = e < a->tw ? e : a->tw, e = e < b->tw ? e : b->tw;
    for (int64_t y = 0; y < e; y++) {
        float wa = (float)(1.0 - (double)y / (double)e), wb = (float)((double)y / (double)e);
        for (int64_t ch = 0; ch < 3; ch++) {
            const float *pa = a->p + ch * a->th * a->tw;
            float *pb = b->p + ch * b->th * b->tw;
            if (v) {
                const float *ra = pa + (a->th - e + y) * a->tw;
                float *rb = pb + y * b->tw;
                for (int64_t x = 0; x < b->tw; x++) rb[x] = ra[x] * wa + rb[x] * wb;
            } else {
                for (int64_t r = 0; r < b->th; r++) pb[r * b->tw + y] = pa[r * a->tw + a->tw - e + y] * wa + pb[r * b->tw + y] * wb;
            }
        }
    }
}

lf_status lf_vae_decode_tiled_on(const lf_vae *v, lf_compute *c, float *img, const float *latents, int64_t h, int64_t w,
                                 int64_t T) {
    const lf_vae_arch *a = lf_vae_get_arch(v);
    const int64_t f = a->factor, z = a->latent_channels, S = f * T;
    const int64_t blend = S / 4, keep = S - blend;
    if (h < 1 || w < 1) return lf_err(LF_ERR_SHAPE, "vae tiled decode: empty latent");
    if (T < 4 || T % 4)
        return lf_err(LF_ERR_ARG, "vae tiled decode: a tile of %lld latent pixels; it must be a multiple of 4 (the "
                      "overlap is a quarter)", (long long)T);
    int64_t ni, nj;
    const int64_t ov = lf_vt_grid(h, w, T, &ni, &nj), H = f * h, W = f * w;
    lf_vt_tile *t = calloc((size_t)(ni * nj), sizeof *t);
    float *hl = malloc((size_t)(z * T * T) * sizeof *hl), *dl = NULL, *di = NULL;
    lf_status st = t && hl ? LF_OK : lf_err(LF_ERR_NOMEM, "vae tiled decode: out of memory");
    if (!st) st = c->alloc(c, z * T * T, &dl);
    if (!st) st = c->alloc(c, 3 * S * S, &di);
    for (int64_t i = 0; i < ni && !st; i++)
        for (int64_t j = 0; j < nj && !st; j++) {
            int64_t th = h - i * ov < T ? h - i * ov : T, tw = w - j * ov < T ? w - j * ov : T;
            for (int64_t ch = 0; ch < z; ch++) /* the tile's latent, gathered on the host */
                for (int64_t r = 0; r < th; r++)
                    memcpy(hl + (ch * th + r) * tw, latents + (ch * h + i * ov + r) * w + j * ov, (size_t)tw * sizeof *hl);
            lf_vt_tile *tt = &t[i * nj + j];
            tt->th = f * th, tt->tw = f * tw;
            if ((tt->p = malloc((size_t)(3 * tt->th * tt->tw) * sizeof *tt->p)) == NULL) {
                st = lf_err(LF_ERR_NOMEM, "vae tiled decode: out of memory");
                break;
            }
            if (!st) st = c->upload(c, dl, hl, z * th * tw);
            if (!st) st = lf_vae_decode_on(v, c, di, dl, 1, th, tw);
            if (!st) st = c->download(c, tt->p, di, 3 * tt->th * tt->tw);
        }
    for (int64_t i = 0; i < ni && !st; i++)
        for (int64_t j = 0; j < nj; j++) {
            lf_vt_tile *tt = &t[i * nj + j];
            if (i > 0) lf_vt_blend(&t[(i - 1) * nj + j], tt, blend, 1);
            if (j > 0) lf_vt_blend(&t[i * nj + j - 1], tt, blend, 0);
            /* its first keep x keep pixels (fewer at the edges) at (i*keep, j*keep) */
            int64_t y0 = i * keep, x0 = j * keep;
            int64_t rh = tt->th < keep ? tt->th : keep, rw = tt->tw < keep ? tt->tw : keep;
            if (y0 + rh > H) rh = H - y0;
            if (x0 + rw > W) rw = W - x0;
            for (int64_t ch = 0; ch < 3 && rh > 0 && rw > 0; ch++)
                for (int64_t r = 0; r < rh; r++)
                    memcpy(img + (ch * H + y0 + r) * W + x0, tt->p + (ch * tt->th + r) * tt->tw, (size_t)rw * sizeof *img);
        }
    for (int64_t k = 0; t && k < ni * nj; k++) free(t[k].p);
    free(t);
    free(hl);
    c->release(c, dl);
    c->release(c, di);
    return st;
}

lf_status lf_vae_decode_tiled(const lf_vae *v, float *img, const float *latents, int64_t h, int64_t w, int64_t T) {
    return lf_vae_decode_tiled_on(v, lf_compute_cpu(), img, latents, h, w, T);
}

uint64_t lf_vae_decode_tiled_peak(const lf_vae *v, int64_t h, int64_t w, int64_t T) {
    int64_t ni, nj, f = lf_vae_get_arch(v)->factor;
    lf_vt_grid(h, w, T, &ni, &nj);
    return lf_vae_decode_peak(v, 1, h < T ? h : T, w < T ? w : T) + (uint64_t)(4 * 3 * f * T * f * T * ni * nj);
}
