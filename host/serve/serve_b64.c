/* serve_b64.c: base64 (RFC 4648 section 4, "+/" with "=" padding) for the images of the HTTP API and
 * for basic auth, and a comparison whose time does not depend on where two strings differ (credentials).
 */
#include <stdlib.h>
#include <string.h>

#include "serve_request.h"

static const char lf_b64_abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *lf_srv_b64_encode(const uint8_t *p, size_t n) {
    size_t m = (n + 2) / 3 * 4;
    char *o = malloc(m + 1);
    if (!o) return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        o[j++] = lf_b64_abc[(v >> 18) & 63];
        o[j++] = lf_b64_abc[(v >> 12) & 63];
        o[j++] = i + 1 < n ? lf_b64_abc[(v >> 6) & 63] : '=';
        o[j++] = i + 2 < n ? lf_b64_abc[v & 63] : '=';
    }
    o[j] = '\0';
    return o;
}

static int lf_b64_val(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

uint8_t *lf_srv_b64_decode(const char *s, size_t n, size_t *out_len) {
    uint8_t *o = malloc(n / 4 * 3 + 3);
    if (!o) return NULL;
    size_t j = 0;
    uint32_t acc = 0;
    int bits = 0, pad = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
        if (c == '=') {
            pad++;
            continue;
        }
        int v = lf_b64_val(c);
        if (v < 0 || pad) { /* nothing but padding after padding */
            free(o);
            return NULL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[j++] = (uint8_t)(acc >> bits);
        }
    }
    if (bits >= 6 || pad > 2) { /* a lone 6-bit group is not a byte */
        free(o);
        return NULL;
    }
    *out_len = j;
    return o;
}

int lf_srv_const_eq(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    unsigned char d = (unsigned char)(na != nb);
    for (size_t i = 0; i < na; i++) d |= (unsigned char)(a[i] ^ b[nb ? i % nb : 0]);
    return d == 0;
}
