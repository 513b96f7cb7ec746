/* text_norm.c — NFC + whitespace-run normalisation with an offset map. */
#include "analyze/text_norm.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

typedef struct {
    cs_text_norm *n;
    size_t cap, acap;
    int64_t delta; /* orig - norm after the last anchor */
} normer;

static int out_reserve(normer *w, size_t extra) {
    cs_text_norm *n = w->n;
    if (n->len + extra + 1 <= w->cap) return 0;
    size_t cap = w->cap ? w->cap : 64;
    while (cap < n->len + extra + 1) cap *= 2;
    char *t = realloc(n->text, cap);
    if (!t) return -1;
    n->text = t;
    w->cap = cap;
    return 0;
}

static int out_put(normer *w, const void *p, size_t k) {
    if (out_reserve(w, k)) return -1;
    memcpy(w->n->text + w->n->len, p, k);
    w->n->len += k;
    return 0;
}

/* Records that normalised offset np corresponds to original offset op. */
static int anchor(normer *w, size_t np, size_t op) {
    cs_text_norm *n = w->n;
    if ((int64_t)op - (int64_t)np == w->delta) return 0;
    w->delta = (int64_t)op - (int64_t)np;
    if (n->n_anchors && n->anchors[n->n_anchors - 1].norm == np) {
        n->anchors[n->n_anchors - 1].orig = (uint32_t)op;
        return 0;
    }
    if (n->n_anchors == w->acap) {
        size_t c = w->acap ? w->acap * 2 : 16;
        cs_text_anchor *a = realloc(n->anchors, c * sizeof *a);
        if (!a) return -1;
        n->anchors = a;
        w->acap = c;
    }
    n->anchors[n->n_anchors++] = (cs_text_anchor){(uint32_t)np, (uint32_t)op};
    return 0;
}

/* Decodes one code point at s[0..len): returns its byte length (>= 1) and
 * sets *cp; an invalid sequence gives length 1 and cp = -1. */
size_t cs_text_decode(const uint8_t *s, size_t len, int32_t *cp) {
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    utf8proc_int32_t c;
    utf8proc_ssize_t k = utf8proc_iterate(s, len > 4 ? 4 : (utf8proc_ssize_t)len, &c);
    if (k <= 0) {
        *cp = -1;
        return 1;
    }
    *cp = c;
    return (size_t)k;
}

/* White_Space, and NUL (read as space in the normal form). */
static int is_space(int32_t cp) {
    return cp == 0 || (cp > 0 && cs_text_is_ws(cp));
}

/* Appends the word s[ws..we) (no spaces inside) in NFC, invalid bytes replaced. */
static int put_word(normer *w, const uint8_t *s, size_t ws, size_t we, int ascii) {
    cs_text_norm *n = w->n;
    size_t np = n->len;
    if (anchor(w, np, ws)) return -1;
    if (ascii) return out_put(w, s + ws, we - ws);
    /* Valid UTF-8 copy with replacements, then NFC. */
    size_t cap = (we - ws) * 3 + 1, k = 0;
    uint8_t *tmp = malloc(cap);
    if (!tmp) return -1;
    for (size_t i = ws; i < we;) {
        int32_t cp;
        size_t l = cs_text_decode(s + i, we - i, &cp);
        if (cp < 0) {
            memcpy(tmp + k, "\xEF\xBF\xBD", 3);
            k += 3;
            n->n_invalid++;
        } else {
            memcpy(tmp + k, s + i, l);
            k += l;
        }
        i += l;
    }
    utf8proc_uint8_t *nfc = NULL;
    utf8proc_ssize_t r = utf8proc_map(tmp, (utf8proc_ssize_t)k, &nfc, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    int rc = 0;
    if (r < 0) rc = out_put(w, tmp, k); /* cannot happen for valid UTF-8; keep the text */
    else rc = out_put(w, nfc, (size_t)r);
    free(nfc);
    free(tmp);
    if (rc) return -1;
    return anchor(w, n->len, we);
}

int cs_text_normalize(cs_text_norm *out, const char *buf, size_t len, cs_err *err) {
    memset(out, 0, sizeof *out);
    if (len > CS_TEXT_MAX_DOC) return cs_fail(err, CS_ELIMIT, "text of %zu bytes exceeds the 2 GiB limit", len);
    normer w = {.n = out};
    if (out_reserve(&w, len + len / 16 + 16)) goto oom;
    const uint8_t *s = (const uint8_t *)buf;
    size_t i = 0;
    while (i < len) {
        /* whitespace run */
        size_t ss = i;
        int32_t cp = 0;
        size_t l = 0;
        while (i < len) {
            l = cs_text_decode(s + i, len - i, &cp);
            if (!is_space(cp)) break;
            if (cp == 0) out->n_nul++;
            i += l;
        }
        if (i >= len) break; /* trailing whitespace: dropped */
        if (i > ss && out->len > 0) {
            if (anchor(&w, out->len, ss) || out_put(&w, " ", 1) || anchor(&w, out->len, i)) goto oom;
        }
        /* word */
        size_t ws = i;
        int ascii = 1;
        while (i < len) {
            l = cs_text_decode(s + i, len - i, &cp);
            if (is_space(cp)) break;
            if (cp < 0 || cp >= 0x80) ascii = 0;
            i += l;
        }
        if (put_word(&w, s, ws, i, ascii)) goto oom;
        out->n_words++;
    }
    out->text[out->len] = 0;
    return 0;
oom:
    return cs_fail(err, CS_ENOMEM, "out of memory normalising %zu bytes of text", len);
}

void cs_text_norm_free(cs_text_norm *n) {
    if (!n) return;
    free(n->text);
    free(n->anchors);
    memset(n, 0, sizeof *n);
}

uint64_t cs_text_orig_offset(const cs_text_anchor *a, size_t n, uint64_t p) {
    size_t lo = 0, hi = n; /* first anchor with norm > p */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid].norm <= p) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0) return p;
    return a[lo - 1].orig + (p - a[lo - 1].norm);
}

size_t cs_text_nchars(const char *s, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += ((uint8_t)s[i] & 0xC0) != 0x80;
    return n;
}

int cs_text_is_ws(int32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 9 && cp <= 13);
    if (cp < 0x1680) return cp == 0x85 || cp == 0xA0;
    return cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

size_t cs_text_check(const char *buf, size_t len) {
    const uint8_t *s = (const uint8_t *)buf;
    for (size_t i = 0; i < len;) {
        if (s[i] >= 1 && s[i] < 0x80) {
            i++;
            continue;
        }
        int32_t cp;
        size_t l = cs_text_decode(s + i, len - i, &cp);
        if (cp <= 0) return i;
        i += l;
    }
    return (size_t)-1;
}
