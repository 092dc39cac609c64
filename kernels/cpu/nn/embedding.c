/* embedding.c: sinusoidal timestep embedding and token embedding lookup.
 *
 *   timestep   t (N) -> emb (N, dim), half = dim / 2 (diffusers get_timestep_embedding):
 *              freq[i] = exp(-ln(max_period) * i / (half - shift)), arg = t[n] * freq[i],
 *              emb[n] = [sin(arg), cos(arg)] (flip_sin_to_cos: [cos, sin]); odd dim: last = 0
 *   token      y (L, D)[i] = table (V, D)[ids[i]]; an id outside [0, V) is LF_ERR_ARG
 *
 * All f32 in diffusers' operation order (libm expf / sinf / cosf).
 * Threads: none; both are small and run on the calling thread.
 * Test: tests/kernels/test_nn.c (ctest -R nn).
 */
#include <math.h>
#include <string.h>

#include "lf_nn.h"

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
