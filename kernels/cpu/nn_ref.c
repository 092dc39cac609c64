/* nn_ref.c: the f32 CPU reference of the model-runtime operators declared in lorafuse/lf_nn.h.
 *
 * Formulas and shapes are given per function in lf_nn.h; this file follows them literally:
 *   matrix products      cblas_sgemm (row-major); Linear y = x Wᵀ + b; Conv2d = im2col + W @ col;
 *                        attention S = scale q kᵀ, softmax over keys, out = S v (per sample, per head)
 *   normalisation        mean and variance (biased) accumulated in double, applied in f32
 *   activations          expf / erff / tanhf from libm, one element at a time
 * Scratch (im2col columns, attention scores) is bounded by processing bands of output rows / query
 * rows, so a 512x512 VAE decode or a 4096-token attention does not need gigabytes of scratch.
 * BLAS takes int sizes: every matrix dimension handed to it must stay below 2^31.
 * Test: tests/test_nn.c (ctest -R nn).
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lorafuse/lf_nn.h"

/* Upper bound on the floats of one scratch buffer (im2col band, score chunk): 32 MiB. */
#define LF_NN_SCRATCH_FLOATS ((int64_t)8 * 1024 * 1024)

/* ---- matrix products ------------------------------------------------------------------------ */

void lf_nn_linear(float *y, const float *x, const float *W, const float *b, int64_t M, int64_t in,
                  int64_t out) {
    if (M <= 0 || out <= 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)out, (int)in, 1.0f, x, (int)in,
                W, (int)in, 0.0f, y, (int)out);
    if (b) {
        for (int64_t m = 0; m < M; m++) {
            float *row = y + m * out;
            for (int64_t o = 0; o < out; o++) row[o] += b[o];
        }
    }
}

int64_t lf_nn_conv_out(int64_t size, int64_t k, int64_t stride, int64_t pad) {
    return (size + 2 * pad - k) / stride + 1;
}

/* col (K, rows*Wo) for output rows [r0, r0 + rows) of one sample x (C_in, H, Wd). */
static void lf_nn_im2col_band(float *col, const float *x, int64_t C_in, int64_t H, int64_t Wd,
                              int64_t kh, int64_t kw, int64_t stride, int64_t pad, int64_t Wo,
                              int64_t r0, int64_t rows) {
    int64_t ncol = rows * Wo;
    for (int64_t ci = 0; ci < C_in; ci++) {
        const float *xc = x + ci * H * Wd;
        for (int64_t ki = 0; ki < kh; ki++) {
            for (int64_t kj = 0; kj < kw; kj++) {
                float *dst = col + ((ci * kh + ki) * kw + kj) * ncol;
                for (int64_t r = 0; r < rows; r++) {
                    int64_t iy = (r0 + r) * stride - pad + ki;
                    float *d = dst + r * Wo;
                    if (iy < 0 || iy >= H) {
                        for (int64_t c = 0; c < Wo; c++) d[c] = 0.0f;
                        continue;
                    }
                    const float *xrow = xc + iy * Wd;
                    for (int64_t c = 0; c < Wo; c++) {
                        int64_t ix = c * stride - pad + kj;
                        d[c] = (ix >= 0 && ix < Wd) ? xrow[ix] : 0.0f;
                    }
                }
            }
        }
    }
}

lf_status lf_nn_conv2d(float *y, const float *x, const float *W, const float *b, int64_t N,
                       int64_t C_in, int64_t H, int64_t Wd, int64_t C_out, int64_t kh, int64_t kw,
                       int64_t stride, int64_t pad) {
    if (stride < 1 || pad < 0 || kh < 1 || kw < 1)
        return lf_err(LF_ERR_ARG, "conv2d: bad kernel %lldx%lld / stride %lld / pad %lld",
                      (long long)kh, (long long)kw, (long long)stride, (long long)pad);
    int64_t Ho = lf_nn_conv_out(H, kh, stride, pad), Wo = lf_nn_conv_out(Wd, kw, stride, pad);
    if (Ho < 1 || Wo < 1)
        return lf_err(LF_ERR_SHAPE, "conv2d: input %lldx%lld too small for kernel %lldx%lld",
                      (long long)H, (long long)Wd, (long long)kh, (long long)kw);
    int64_t K = C_in * kh * kw, HWo = Ho * Wo;
    if (kh == 1 && kw == 1 && stride == 1 && pad == 0) {
        for (int64_t n = 0; n < N; n++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)C_out, (int)HWo, (int)K, 1.0f,
                        W, (int)K, x + n * C_in * H * Wd, (int)HWo, 0.0f, y + n * C_out * HWo,
                        (int)HWo);
    } else {
        int64_t band = LF_NN_SCRATCH_FLOATS / (K * Wo);
        if (band < 1) band = 1;
        if (band > Ho) band = Ho;
        float *col = malloc((size_t)(K * band * Wo) * sizeof(float));
        if (!col) return lf_err(LF_ERR_NOMEM, "conv2d: im2col scratch of %lld floats",
                                (long long)(K * band * Wo));
        for (int64_t n = 0; n < N; n++) {
            const float *xn = x + n * C_in * H * Wd;
            float *yn = y + n * C_out * HWo;
            for (int64_t r0 = 0; r0 < Ho; r0 += band) {
                int64_t rows = (Ho - r0 < band) ? Ho - r0 : band;
                lf_nn_im2col_band(col, xn, C_in, H, Wd, kh, kw, stride, pad, Wo, r0, rows);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)C_out, (int)(rows * Wo),
                            (int)K, 1.0f, W, (int)K, col, (int)(rows * Wo), 0.0f, yn + r0 * Wo,
                            (int)HWo);
            }
        }
        free(col);
    }
    if (b) lf_nn_add_bias_c(y, b, N, C_out, HWo);
    return LF_OK;
}

/* ---- normalisation -------------------------------------------------------------------------- */

void lf_nn_group_norm(float *y, const float *x, const float *gamma, const float *beta, int64_t N,
                      int64_t C, int64_t S, int64_t groups, float eps) {
    int64_t cg = C / groups;
    for (int64_t n = 0; n < N; n++) {
        for (int64_t g = 0; g < groups; g++) {
            const float *xg = x + (n * C + g * cg) * S;
            float *yg = y + (n * C + g * cg) * S;
            int64_t cnt = cg * S;
            double sum = 0.0;
            for (int64_t i = 0; i < cnt; i++) sum += xg[i];
            double mean = sum / (double)cnt;
            double var = 0.0;
            for (int64_t i = 0; i < cnt; i++) {
                double dv = xg[i] - mean;
                var += dv * dv;
            }
            var /= (double)cnt;
            float fmean = (float)mean;
            float rstd = (float)(1.0 / sqrt(var + (double)eps));
            for (int64_t c = 0; c < cg; c++) {
                float ga = gamma ? gamma[g * cg + c] : 1.0f;
                float be = beta ? beta[g * cg + c] : 0.0f;
                for (int64_t s = 0; s < S; s++) {
                    int64_t i = c * S + s;
                    yg[i] = (xg[i] - fmean) * rstd * ga + be;
                }
            }
        }
    }
}

void lf_nn_layer_norm(float *y, const float *x, const float *gamma, const float *beta, int64_t M,
                      int64_t D, float eps) {
    for (int64_t m = 0; m < M; m++) {
        const float *xr = x + m * D;
        float *yr = y + m * D;
        double sum = 0.0;
        for (int64_t i = 0; i < D; i++) sum += xr[i];
        double mean = sum / (double)D;
        double var = 0.0;
        for (int64_t i = 0; i < D; i++) {
            double dv = xr[i] - mean;
            var += dv * dv;
        }
        var /= (double)D;
        float fmean = (float)mean;
        float rstd = (float)(1.0 / sqrt(var + (double)eps));
        for (int64_t i = 0; i < D; i++)
            yr[i] = (xr[i] - fmean) * rstd * (gamma ? gamma[i] : 1.0f) + (beta ? beta[i] : 0.0f);
    }
}

/* ---- activations ---------------------------------------------------------------------------- */

void lf_nn_silu(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
}

void lf_nn_gelu(float *y, const float *x, int64_t n) {
    const float inv_sqrt2 = 0.70710678118654752440f;
    for (int64_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * inv_sqrt2));
}

void lf_nn_gelu_tanh(float *y, const float *x, int64_t n) {
    const float k = 0.79788456080286535588f; /* sqrt(2/pi) */
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
    }
}

void lf_nn_quick_gelu(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
}

void lf_nn_geglu(float *y, const float *x, int64_t M, int64_t F) {
    const float inv_sqrt2 = 0.70710678118654752440f;
    for (int64_t m = 0; m < M; m++) {
        const float *h = x + m * 2 * F, *g = h + F;
        float *yr = y + m * F;
        for (int64_t f = 0; f < F; f++) {
            float gl = 0.5f * g[f] * (1.0f + erff(g[f] * inv_sqrt2));
            yr[f] = h[f] * gl;
        }
    }
}

/* ---- arithmetic ----------------------------------------------------------------------------- */

void lf_nn_add(float *y, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void lf_nn_mul(float *y, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = a[i] * b[i];
}

void lf_nn_scale(float *y, const float *x, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * s;
}

void lf_nn_add_bias_c(float *x, const float *b, int64_t N, int64_t C, int64_t S) {
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            float *xc = x + (n * C + c) * S;
            for (int64_t s = 0; s < S; s++) xc[s] += b[c];
        }
}

void lf_nn_add_bias_nc(float *x, const float *b, int64_t N, int64_t C, int64_t S) {
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            float *xc = x + (n * C + c) * S;
            float bv = b[n * C + c];
            for (int64_t s = 0; s < S; s++) xc[s] += bv;
        }
}

/* ---- softmax and attention ------------------------------------------------------------------ */

void lf_nn_softmax_rows(float *x, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++) {
        float *row = x + r * cols;
        float mx = -INFINITY;
        for (int64_t c = 0; c < cols; c++)
            if (row[c] > mx) mx = row[c];
        if (mx == -INFINITY) {
            for (int64_t c = 0; c < cols; c++) row[c] = 0.0f;
            continue;
        }
        double sum = 0.0;
        for (int64_t c = 0; c < cols; c++) {
            row[c] = expf(row[c] - mx);
            sum += row[c];
        }
        float inv = (float)(1.0 / sum);
        for (int64_t c = 0; c < cols; c++) row[c] *= inv;
    }
}

lf_status lf_nn_attention(float *out, const float *q, const float *k, const float *v, int64_t N,
                          int64_t Lq, int64_t Lk, int64_t heads, int64_t d, float scale, int causal) {
    if (Lq <= 0 || N <= 0) return LF_OK;
    if (Lk <= 0) return lf_err(LF_ERR_ARG, "attention: no keys (Lk = %lld)", (long long)Lk);
    int64_t ld = heads * d;
    int64_t chunk = LF_NN_SCRATCH_FLOATS / Lk;
    if (chunk < 1) chunk = 1;
    if (chunk > Lq) chunk = Lq;
    float *S = malloc((size_t)(chunk * Lk) * sizeof(float));
    if (!S) return lf_err(LF_ERR_NOMEM, "attention: score scratch of %lld floats",
                          (long long)(chunk * Lk));
    for (int64_t n = 0; n < N; n++) {
        for (int64_t h = 0; h < heads; h++) {
            const float *kh = k + n * Lk * ld + h * d;
            const float *vh = v + n * Lk * ld + h * d;
            for (int64_t i0 = 0; i0 < Lq; i0 += chunk) {
                int64_t rows = (Lq - i0 < chunk) ? Lq - i0 : chunk;
                const float *qh = q + (n * Lq + i0) * ld + h * d;
                float *oh = out + (n * Lq + i0) * ld + h * d;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)Lk, (int)d, scale,
                            qh, (int)ld, kh, (int)ld, 0.0f, S, (int)Lk);
                if (causal)
                    for (int64_t r = 0; r < rows; r++)
                        for (int64_t j = i0 + r + 1; j < Lk; j++) S[r * Lk + j] = -INFINITY;
                lf_nn_softmax_rows(S, rows, Lk);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)d, (int)Lk, 1.0f,
                            S, (int)Lk, vh, (int)ld, 0.0f, oh, (int)ld);
            }
        }
    }
    free(S);
    return LF_OK;
}

/* ---- layout and resampling ------------------------------------------------------------------ */

void lf_nn_nchw_to_nlc(float *y, const float *x, int64_t N, int64_t C, int64_t S) {
    for (int64_t n = 0; n < N; n++) {
        const float *xn = x + n * C * S;
        float *yn = y + n * C * S;
        for (int64_t c = 0; c < C; c++)
            for (int64_t s = 0; s < S; s++) yn[s * C + c] = xn[c * S + s];
    }
}

void lf_nn_nlc_to_nchw(float *y, const float *x, int64_t N, int64_t C, int64_t S) {
    for (int64_t n = 0; n < N; n++) {
        const float *xn = x + n * C * S;
        float *yn = y + n * C * S;
        for (int64_t s = 0; s < S; s++)
            for (int64_t c = 0; c < C; c++) yn[c * S + s] = xn[s * C + c];
    }
}

void lf_nn_upsample_nearest2x(float *y, const float *x, int64_t N, int64_t C, int64_t H, int64_t W) {
    int64_t W2 = 2 * W;
    for (int64_t p = 0; p < N * C; p++) {
        const float *xp = x + p * H * W;
        float *yp = y + p * 4 * H * W;
        for (int64_t i = 0; i < 2 * H; i++) {
            const float *xr = xp + (i / 2) * W;
            float *yr = yp + i * W2;
            for (int64_t j = 0; j < W2; j++) yr[j] = xr[j / 2];
        }
    }
}

void lf_nn_pad2d(float *y, const float *x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t left,
                 int64_t right, int64_t top, int64_t bottom) {
    int64_t Hp = H + top + bottom, Wp = W + left + right;
    for (int64_t p = 0; p < N * C; p++) {
        const float *xp = x + p * H * W;
        float *yp = y + p * Hp * Wp;
        for (int64_t i = 0; i < Hp; i++) {
            float *yr = yp + i * Wp;
            int64_t iy = i - top;
            for (int64_t j = 0; j < Wp; j++) {
                int64_t ix = j - left;
                yr[j] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? xp[iy * W + ix] : 0.0f;
            }
        }
    }
}

void lf_nn_concat_c(float *y, const float *a, const float *b, int64_t N, int64_t Ca, int64_t Cb,
                    int64_t S) {
    for (int64_t n = 0; n < N; n++) {
        float *yn = y + n * (Ca + Cb) * S;
        memcpy(yn, a + n * Ca * S, (size_t)(Ca * S) * sizeof(float));
        memcpy(yn + Ca * S, b + n * Cb * S, (size_t)(Cb * S) * sizeof(float));
    }
}

/* ---- embeddings ----------------------------------------------------------------------------- */

void lf_nn_timestep_embedding(float *emb, const float *t, int64_t N, int64_t dim,
                              int flip_sin_to_cos, float shift, float max_period) {
    int64_t half = dim / 2;
    /* diffusers: exponent = -math.log(max_period) * arange(half, f32); exponent / (half - shift);
     * emb = exp(exponent); then t[:, None] * emb[None, :] -- all f32 in that order. */
    float neg_log = -(float)log((double)max_period);
    float denom = (float)half - shift;
    for (int64_t n = 0; n < N; n++) {
        float *e = emb + n * dim;
        for (int64_t i = 0; i < half; i++) {
            float exponent = (neg_log * (float)i) / denom;
            float arg = t[n] * expf(exponent);
            float s = sinf(arg), c = cosf(arg);
            e[i] = flip_sin_to_cos ? c : s;
            e[half + i] = flip_sin_to_cos ? s : c;
        }
        if (dim % 2) e[dim - 1] = 0.0f;
    }
}

lf_status lf_nn_embedding(float *y, const float *table, const int32_t *ids, int64_t L, int64_t V,
                          int64_t D) {
    for (int64_t i = 0; i < L; i++) {
        if (ids[i] < 0 || ids[i] >= V)
            return lf_err(LF_ERR_ARG, "embedding: id %d at position %lld outside the vocabulary [0, %lld)",
                          (int)ids[i], (long long)i, (long long)V);
        memcpy(y + i * D, table + (int64_t)ids[i] * D, (size_t)D * sizeof(float));
    }
    return LF_OK;
}
