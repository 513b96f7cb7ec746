/* test_uri_fixture.h — a PNG data URI, as the reports embed pictures, back
 * to pixels, with a base64 reader of the tests' own (independent of
 * reports/escape.c's encoder). */
#ifndef TEST_URI_FIXTURE_H
#define TEST_URI_FIXTURE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/image.h"

/* 0 and the pixels in img (free with cs_image_free); -1 when uri is not a
 * base64 PNG data URI or the PNG does not decode. */
static inline int decode_uri(const char *uri, cs_image *img) {
    const char *pre = "data:image/png;base64,";
    const char *tab = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (!uri || strncmp(uri, pre, strlen(pre))) return -1;
    const char *s = uri + strlen(pre);
    size_t n = strlen(s), o = 0;
    uint8_t *buf = malloc(n + 1);
    if (!buf) return -1;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n && s[i] != '='; i++) {
        const char *p = strchr(tab, s[i]);
        if (!p) {
            free(buf);
            return -1;
        }
        acc = acc << 6 | (uint32_t)(p - tab);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (uint8_t)(acc >> bits);
        }
    }
    int rc = cs_image_decode(img, buf, o, "uri", NULL, NULL);
    free(buf);
    return rc;
}

#endif
