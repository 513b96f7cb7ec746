/* text_metrics.c — exact prefix, ROUGE-L F1, normalised edit similarity. */
#include "analyze/text_metrics.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "analyze/text_norm.h"

int cs_text_words(const char *s, size_t len, cs_text_word **w, size_t *n, cs_err *err) {
    *w = NULL;
    *n = 0;
    size_t k = 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && (i == 0 || s[i - 1] == ' ')) k++;
    if (!k) return 0;
    cs_text_word *v = malloc(k * sizeof *v);
    if (!v) return cs_fail(err, CS_ENOMEM, "out of memory");
    size_t j = 0;
    for (size_t i = 0; i < len;) {
        if (s[i] == ' ') {
            i++;
            continue;
        }
        size_t e = i;
        while (e < len && s[e] != ' ') e++;
        v[j++] = (cs_text_word){i, e - i};
        i = e;
    }
    *w = v;
    *n = k;
    return 0;
}

size_t cs_text_prefix_bytes(const char *s, size_t len, size_t k) {
    size_t words = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != ' ' && (i == 0 || s[i - 1] == ' ')) {
            if (words == k) {
                size_t e = i;
                while (e > 0 && s[e - 1] == ' ') e--;
                return e;
            }
            words++;
        }
    }
    return len;
}

static int word_eq(const char *a, cs_text_word x, const char *b, cs_text_word y) {
    return x.len == y.len && !memcmp(a + x.off, b + y.off, x.len);
}

size_t cs_text_exact_prefix(const char *a, size_t alen, const char *b, size_t blen) {
    size_t i = 0, j = 0, n = 0;
    for (;;) {
        while (i < alen && a[i] == ' ') i++;
        while (j < blen && b[j] == ' ') j++;
        if (i >= alen || j >= blen) return n;
        size_t ie = i, je = j;
        while (ie < alen && a[ie] != ' ') ie++;
        while (je < blen && b[je] != ' ') je++;
        if (ie - i != je - j || memcmp(a + i, b + j, ie - i)) return n;
        n++;
        i = ie;
        j = je;
    }
}

/* Length of the longest common subsequence of two word lists, by dynamic
 * programming over two rows of length nr + 1. */
static int lcs_words(const char *cand, const cs_text_word *cw, size_t nc, const char *ref, const cs_text_word *rw,
                     size_t nr, uint32_t *lcs, cs_err *err) {
    uint32_t *prev = calloc(nr + 1, sizeof *prev), *cur = calloc(nr + 1, sizeof *cur);
    if (!prev || !cur) {
        free(prev), free(cur);
        return cs_fail(err, CS_ENOMEM, "out of memory");
    }
    for (size_t i = 1; i <= nc; i++) {
        for (size_t j = 1; j <= nr; j++) {
            if (word_eq(cand, cw[i - 1], ref, rw[j - 1])) cur[j] = prev[j - 1] + 1;
            else cur[j] = prev[j] > cur[j - 1] ? prev[j] : cur[j - 1];
        }
        uint32_t *t = prev;
        prev = cur;
        cur = t;
    }
    *lcs = prev[nr];
    free(prev), free(cur);
    return 0;
}

int cs_text_rouge_l(const char *cand, size_t clen, const char *ref, size_t rlen, double *f1, cs_err *err) {
    cs_text_word *cw, *rw;
    size_t nc, nr;
    *f1 = 0;
    if (cs_text_words(cand, clen, &cw, &nc, err)) return -1;
    if (cs_text_words(ref, rlen, &rw, &nr, err)) {
        free(cw);
        return -1;
    }
    if (!nc || !nr) {
        *f1 = (!nc && !nr) ? 1.0 : 0.0;
        free(cw);
        free(rw);
        return 0;
    }
    uint32_t n_lcs;
    int rc = lcs_words(cand, cw, nc, ref, rw, nr, &n_lcs, err);
    free(cw), free(rw);
    if (rc) return -1;
    double lcs = n_lcs;
    if (lcs > 0) {
        double p = lcs / (double)nc, r = lcs / (double)nr;
        *f1 = 2 * p * r / (p + r);
    }
    return 0;
}

/* Code points of s (invalid bytes count as one each). Caller frees. */
static int32_t *codepoints(const char *s, size_t len, size_t *n) {
    int32_t *v = malloc((len ? len : 1) * sizeof *v);
    if (!v) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t l = utf8proc_iterate((const uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &c);
        if (l <= 0) {
            c = 0xFFFD;
            l = 1;
        }
        v[k++] = c;
        i += (size_t)l;
    }
    *n = k;
    return v;
}

int cs_text_edit_sim(const char *a, size_t alen, const char *b, size_t blen, double *sim, cs_err *err) {
    size_t na, nb;
    int32_t *x = codepoints(a, alen, &na), *y = codepoints(b, blen, &nb);
    uint32_t *row = calloc(nb + 1, sizeof *row);
    if (!x || !y || !row) {
        free(x), free(y), free(row);
        return cs_fail(err, CS_ENOMEM, "out of memory");
    }
    if (!na && !nb) {
        *sim = 1.0;
        free(x), free(y), free(row);
        return 0;
    }
    /* Levenshtein, one row: row[j] = distance(x[0..i), y[0..j)). */
    for (size_t j = 0; j <= nb; j++) row[j] = (uint32_t)j;
    for (size_t i = 1; i <= na; i++) {
        uint32_t diag = row[0];
        row[0] = (uint32_t)i;
        for (size_t j = 1; j <= nb; j++) {
            uint32_t up = row[j];
            uint32_t best = diag + (x[i - 1] != y[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    size_t mx = na > nb ? na : nb;
    *sim = 1.0 - (double)row[nb] / (double)mx;
    free(x), free(y), free(row);
    return 0;
}

/* ---- raw text: words split on White_Space ---- */

/* Next word of s at or after *i: [*ws, *we); 0 when none. */
static int next_ws_word(const char *s, size_t len, size_t *i, size_t *ws, size_t *we) {
    const uint8_t *u = (const uint8_t *)s;
    int32_t cp;
    while (*i < len) {
        size_t l = cs_text_decode(u + *i, len - *i, &cp);
        if (!cs_text_is_ws(cp)) break;
        *i += l;
    }
    if (*i >= len) return 0;
    *ws = *i;
    while (*i < len) {
        size_t l = cs_text_decode(u + *i, len - *i, &cp);
        if (cs_text_is_ws(cp)) break;
        *i += l;
    }
    *we = *i;
    return 1;
}

size_t cs_text_ws_count(const char *s, size_t len) {
    size_t i = 0, a, b, n = 0;
    while (next_ws_word(s, len, &i, &a, &b)) n++;
    return n;
}

int cs_text_ws_words(const char *s, size_t len, cs_text_word **w, size_t *n, cs_err *err) {
    *w = NULL;
    *n = cs_text_ws_count(s, len);
    if (!*n) return 0;
    cs_text_word *v = malloc(*n * sizeof *v);
    if (!v) return cs_fail(err, CS_ENOMEM, "out of memory");
    size_t i = 0, a, b, k = 0;
    while (next_ws_word(s, len, &i, &a, &b)) v[k++] = (cs_text_word){a, b - a};
    *w = v;
    return 0;
}

int cs_text_ws_exact_prefix(const char *a, size_t alen, const char *b, size_t blen, size_t *n, cs_err *err) {
    (void)err;
    size_t i = 0, j = 0, x0, x1, y0, y1;
    *n = 0;
    while (next_ws_word(a, alen, &i, &x0, &x1) && next_ws_word(b, blen, &j, &y0, &y1)) {
        if (x1 - x0 != y1 - y0 || memcmp(a + x0, b + y0, x1 - x0)) break;
        (*n)++;
    }
    return 0;
}

int cs_text_ws_rouge_l(const char *cand, size_t clen, const char *ref, size_t rlen, double *f1, cs_err *err) {
    cs_text_word *cw, *rw;
    size_t nc, nr;
    *f1 = 0;
    if (cs_text_ws_words(cand, clen, &cw, &nc, err)) return -1;
    if (cs_text_ws_words(ref, rlen, &rw, &nr, err)) {
        free(cw);
        return -1;
    }
    if (!nc || !nr) {
        *f1 = (!nc && !nr) ? 1.0 : 0.0;
        free(cw), free(rw);
        return 0;
    }
    uint32_t n_lcs;
    int rc = lcs_words(cand, cw, nc, ref, rw, nr, &n_lcs, err);
    free(cw), free(rw);
    if (rc) return -1;
    *f1 = 2.0 * n_lcs / (double)(nc + nr);
    return 0;
}
