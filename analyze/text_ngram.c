/* text_ngram.c — the n-gram generator over the suffix arrays. */
#include "analyze/text_ngram.h"

#include <stdlib.h>
#include <string.h>

#include "analyze/text_norm.h"

#define MAX_COUNTED 4096

typedef struct {
    const uint8_t *p;
    size_t len;
} word_ref;

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int word_cmp(const void *a, const void *b) {
    const word_ref *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* The word after the pattern (m bytes) in the suffix at rank r of shard s. */
static word_ref next_word(const cs_text_sa *sa, uint64_t r, size_t m) {
    int b;
    uint32_t v = sa->sa[r];
    const uint8_t *p = cs_text_sa_skip(sa, v, m, &b);
    const uint8_t *end = v & CS_TEXT_SIDE ? sa->text + sa->n : sa->raw + sa->raw_n;
    return (word_ref){p, cs_text_word_len(p, end)}; /* a word reads the same raw or normalised */
}

/* The occurrence with global index g over the shards' intervals. */
static word_ref occurrence(const cs_text_corpus *c, const uint64_t *lo, const uint64_t *hi, uint64_t g, size_t m) {
    for (int s = 0; s < c->n_shards; s++) {
        uint64_t k = hi[s] - lo[s];
        if (g < k) return next_word(&c->shards[s].sa, lo[s] + g, m);
        g -= k;
    }
    return (word_ref){NULL, 0};
}

/* Chooses the next word after pattern pat[0..m); returns 0 with *w set, 1 if
 * the pattern never occurs, -1 on error. */
static int choose(const cs_text_corpus *c, const uint8_t *pat, size_t m, const cs_ngram_opts *o, uint64_t *rng,
                  uint64_t *lo, uint64_t *hi, word_ref *cand, word_ref *w) {
    uint64_t total = 0;
    for (int s = 0; s < c->n_shards; s++) {
        cs_text_sa_range(&c->shards[s].sa, pat, m, &lo[s], &hi[s]);
        total += hi[s] - lo[s];
    }
    if (!total) return 1;
    if (o->sample) {
        *w = occurrence(c, lo, hi, splitmix64(rng) % total, m);
        return w->len ? 0 : 1;
    }
    size_t k = total < MAX_COUNTED ? (size_t)total : MAX_COUNTED, n = 0;
    for (size_t t = 0; t < k; t++) {
        uint64_t g = total <= MAX_COUNTED ? t : (uint64_t)((unsigned __int128)t * total / MAX_COUNTED);
        word_ref r = occurrence(c, lo, hi, g, m);
        if (r.len) cand[n++] = r;
    }
    if (!n) return 1;
    qsort(cand, n, sizeof *cand, word_cmp);
    size_t best = 0, best_n = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && !word_cmp(&cand[i], &cand[j])) j++;
        if (j - i > best_n) best = i, best_n = j - i;
        i = j;
    }
    *w = cand[best];
    return 0;
}

int cs_ngram_generate(const cs_text_corpus *c, const char *prompt, size_t len, const cs_ngram_opts *o, char **out,
                      cs_err *err) {
    *out = NULL;
    cs_ngram_opts d = {.order = 8, .max_words = 50};
    if (!o) o = &d;
    if (o->order < 2) return cs_fail(err, CS_EUSAGE, "ngram: order must be at least 2");
    cs_text_norm n;
    if (cs_text_normalize(&n, prompt, len, err)) {
        cs_text_norm_free(&n);
        return -1;
    }
    /* hist: prompt then generated words, one space apart; woff: word starts */
    size_t cap = n.len + 64 + (size_t)o->max_words * 16, hl = n.len;
    size_t wcap = n.n_words + (size_t)o->max_words + 1, nw = 0;
    uint8_t *hist = malloc(cap), *pat = NULL;
    size_t *woff = malloc(wcap * sizeof *woff);
    uint64_t *lo = calloc((size_t)c->n_shards + 1, sizeof *lo), *hi = calloc((size_t)c->n_shards + 1, sizeof *hi);
    word_ref *cand = malloc(MAX_COUNTED * sizeof *cand);
    int rc = 0;
    if (!hist || !woff || !lo || !hi || !cand) {
        rc = cs_fail(err, CS_ENOMEM, "out of memory");
        goto done;
    }
    memcpy(hist, n.text, n.len);
    for (size_t i = 0; i < n.len; i++)
        if (n.text[i] != ' ' && (i == 0 || n.text[i - 1] == ' ')) woff[nw++] = i;
    size_t gen_start = hl, generated = 0;
    uint64_t rng = o->seed;
    while ((int)generated < o->max_words && nw > 0) {
        int found = 0;
        word_ref w = {0};
        size_t ctx = (size_t)o->order - 1;
        if (ctx > nw) ctx = nw;
        for (; ctx >= 1 && !found; ctx--) {
            size_t ps = woff[nw - ctx], m = hl - ps + 1;
            uint8_t *np = realloc(pat, m);
            if (!np) {
                rc = cs_fail(err, CS_ENOMEM, "out of memory");
                goto done;
            }
            pat = np;
            memcpy(pat, hist + ps, m - 1);
            pat[m - 1] = ' ';
            int r = choose(c, pat, m, o, &rng, lo, hi, cand, &w);
            if (r == 0) found = 1;
        }
        if (!found) break;
        if (hl + w.len + 2 > cap) {
            while (hl + w.len + 2 > cap) cap *= 2;
            uint8_t *nh = realloc(hist, cap);
            if (!nh) {
                rc = cs_fail(err, CS_ENOMEM, "out of memory");
                goto done;
            }
            hist = nh;
        }
        if (hl > 0) hist[hl++] = ' ';
        woff[nw++] = hl;
        memcpy(hist + hl, w.p, w.len);
        hl += w.len;
        generated++;
    }
    /* the continuation: everything after the prompt, without its leading space */
    size_t s0 = gen_start < hl && hist[gen_start] == ' ' ? gen_start + 1 : gen_start;
    if (s0 > hl) s0 = hl;
    *out = malloc(hl - s0 + 1);
    if (!*out) {
        rc = cs_fail(err, CS_ENOMEM, "out of memory");
        goto done;
    }
    memcpy(*out, hist + s0, hl - s0);
    (*out)[hl - s0] = 0;
done:
    cs_text_norm_free(&n);
    free(hist), free(pat), free(woff), free(lo), free(hi), free(cand);
    return rc;
}
