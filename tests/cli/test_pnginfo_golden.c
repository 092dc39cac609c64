/* test_pnginfo_golden.c: `lorafuse png-info --json` against A1111's own reader: every case of
 * tests/data/pnginfo/a1111_parse.json (texts written by lorafuse, A1111 and Forge; the expected fields
 * made by A1111 1.10's parse_generation_parameters and its Lora extension's hash split, executed by
 * scripts/golden/a1111_infotext.py) must give the same JSON (keys, values and their types) through
 * lf_infotext_json.
 */
#include <cJSON.h>

#include "lf_test.h"

#include "host/base/util.h"
#include "lorafuse/lf_png_info.h"

int main(void) {
    char *text = NULL;
    LF_CHECK(lf_read_file("tests/data/pnginfo/a1111_parse.json", "golden", (size_t)1 << 22, &text, NULL) == LF_OK,
             "read the golden");
    cJSON *g = cJSON_Parse(text ? text : "");
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(g, "cases"), *c;
    LF_CHECK(cJSON_GetArraySize(cases) >= 20, "cases: %d", cJSON_GetArraySize(cases));
    int i = 0;
    cJSON_ArrayForEach(c, cases) {
        const char *in = cJSON_GetObjectItemCaseSensitive(c, "text")->valuestring;
        char *js = NULL;
        LF_CHECK(lf_infotext_json(in, &js) == LF_OK, "case %d: %s", i, lf_last_error());
        cJSON *got = cJSON_Parse(js ? js : "");
        for (int k = 0; k < 2; k++) {
            const char *key = k ? "lora_hashes" : "fields";
            const cJSON *w = cJSON_GetObjectItemCaseSensitive(c, key), *h = cJSON_GetObjectItemCaseSensitive(got, key);
            int same = cJSON_Compare(w, h, 1);
            if (!same) {
                char *ws = cJSON_PrintUnformatted(w), *hs = cJSON_PrintUnformatted(h);
                LF_CHECK(0, "case %d %s of\n%s\n  got  %s\n  want %s", i, key, in, hs ? hs : "(null)", ws ? ws : "(null)");
                free(ws);
                free(hs);
            }
        }
        cJSON_Delete(got);
        free(js);
        i++;
    }
    cJSON_Delete(g);
    free(text);
    return lf_test_finish();
}
