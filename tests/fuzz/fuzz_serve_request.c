/* fuzz_serve_request.c: libFuzzer target for the request side of `lorafuse serve` (host/serve/
 * serve_request.h; docs/serve.md): the txt2img body parser (JSON -> checked request), the options
 * parser and base64.
 *
 * The input is parsed as a txt2img body with the default limits and with tight ones (so that the limit
 * checks are reached), as an options body, and decoded as base64. Invariants: a parse either gives a
 * request and status 0, or no request and a 413/422/500 response with a JSON body; a 422 body is
 * {"detail": [{"loc": ["body", ...], "msg": string, "type": string}]}; an accepted request has every
 * value inside its limits (steps, sizes multiple of 8, pixels, images, prompt length, cfg, seed, a
 * sampler name that lf_sampler_config_from_name takes). Base64: re-encoding what was decoded and
 * decoding again gives the same bytes. An invariant violation aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/serve/serve_request.h"
#include "lorafuse/lf_sampler.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void lf_fuzz_check_resp(const lf_srv_resp *r) {
    if (r->status != 413 && r->status != 422 && r->status != 500) abort();
    if (!r->body) abort();
    if (r->status == 422) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(r->body, "detail");
        const cJSON *e = cJSON_GetArrayItem(d, 0);
        const cJSON *loc = cJSON_GetObjectItemCaseSensitive(e, "loc");
        if (!cJSON_IsArray(d) || !e || !cJSON_IsArray(loc) || strcmp(cJSON_GetArrayItem(loc, 0)->valuestring, "body") ||
            !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "msg")) ||
            !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "type")))
            abort();
    }
}

static void lf_fuzz_txt2img(const char *s, size_t n, const lf_serve_limits *lim) {
    lf_srv_settings set = {1, LF_RNG_TORCH_CPU, "m.safetensors [0123456789]", "m.safetensors", "m", "out"};
    lf_srv_req *q = NULL;
    lf_srv_resp r = lf_srv_parse_txt2img(s, n, lim, &set, (int)(n & 1), &q);
    if (!q) {
        lf_fuzz_check_resp(&r);
        cJSON_Delete(r.body);
        return;
    }
    if (r.status != 0 || r.body) abort();
    lf_sampler_config c;
    if (q->steps < 1 || q->steps > lim->max_steps || q->width % 8 || q->height % 8 || q->width < 8 ||
        q->height < 8 || (int64_t)q->width * q->height * q->batch_size > lim->max_pixels ||
        q->batch_size * q->n_iter > lim->max_images || strlen(q->prompt) > lim->max_prompt ||
        strlen(q->negative) > lim->max_prompt || !(q->cfg >= 0 && q->cfg <= 100) || q->seed < -1 ||
        q->clip_skip < 1 || q->clip_skip > 12 || !cJSON_IsObject(q->params) ||
        lf_sampler_config_from_name(q->sampler, &c) != LF_OK || (q->save_images && !(n & 1)))
        abort();
    lf_srv_req_free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1u << 16)) return 0;
    const char *s = (const char *)data;
    lf_serve_limits lim;
    lf_serve_limits_default(&lim);
    lf_fuzz_txt2img(s, size, &lim);
    lf_serve_limits tight = {256, 16, 1, 4096, 4, 2};
    lf_fuzz_txt2img(s, size, &tight);
    lf_srv_settings set = {1, LF_RNG_TORCH_CPU, "m.safetensors [0123456789]", "m.safetensors", "m", "out"};
    lf_srv_resp r = lf_srv_parse_options(s, size, &set);
    if (r.status != 200 && r.status != 422) abort();
    if (set.clip_skip < 1 || set.clip_skip > 12) abort();
    cJSON_Delete(r.body);
    size_t n = 0;
    uint8_t *dec = lf_srv_b64_decode(s, size, &n);
    if (dec) {
        char *enc = lf_srv_b64_encode(dec, n);
        size_t n2 = 0;
        uint8_t *dec2 = enc ? lf_srv_b64_decode(enc, strlen(enc), &n2) : NULL;
        if (enc && (!dec2 || n2 != n || memcmp(dec, dec2, n))) abort();
        free(dec2);
        free(enc);
        free(dec);
    }
    return 0;
}
