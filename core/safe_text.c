/* safe_text.c — see safe_text.h. */
#include "core/safe_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cs_utf8_seq(const unsigned char *s) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!n) return 0; /* a continuation byte, an overlong lead (C0, C1) or beyond F4 */
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0; /* NUL included: cut short */
    if (c == 0xE0 && s[1] < 0xA0) return 0;  /* overlong */
    if (c == 0xED && s[1] > 0x9F) return 0;  /* UTF-16 surrogates */
    if (c == 0xF0 && s[1] < 0x90) return 0;  /* overlong */
    if (c == 0xF4 && s[1] > 0x8F) return 0;  /* beyond U+10FFFF */
    return n;
}

char *cs_term_safe(char *dst, size_t dn, const char *s) {
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t o = 0;
    while (*p) {
        int n = cs_utf8_seq(p);
        int ctl = n == 0 || (n == 1 && (*p < 0x20 || *p == 0x7F)) || (n == 2 && p[0] == 0xC2 && p[1] < 0xA0);
        size_t need = ctl ? 4u * (size_t)(n ? n : 1) : (size_t)n;
        if (o + need + 1 > dn) break;
        if (ctl)
            for (int i = 0; i < (n ? n : 1); i++) o += (size_t)snprintf(dst + o, dn - o, "\\x%02x", p[i]);
        else {
            memcpy(dst + o, p, (size_t)n);
            o += (size_t)n;
        }
        p += n ? n : 1;
    }
    if (dn) dst[o < dn ? o : dn - 1] = 0;
    return dst;
}

char *cs_utf8_fix(const char *s, int *changed) {
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t len = strlen((const char *)p);
    char *out = malloc(3 * len + 1), *o = out; /* each bad byte: 3 bytes of U+FFFD */
    if (changed) *changed = 0;
    if (!out) return NULL;
    while (*p) {
        int n = cs_utf8_seq(p);
        if (n) {
            memcpy(o, p, (size_t)n);
            o += n;
            p += n;
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            p++;
            if (changed) *changed = 1;
        }
    }
    *o = 0;
    return out;
}
