/* text_exact.c — longest character span on raw text; locating a prompt. */
#include "analyze/text_exact.h"

#include <stdlib.h>
#include <string.h>

#include "analyze/text_norm.h"

static int hit_cmp(const void *a, const void *b) {
    const cs_text_hit *x = a, *y = b;
    if (x->shard != y->shard) return x->shard < y->shard ? -1 : 1;
    if (x->doc != y->doc) return x->doc < y->doc ? -1 : 1;
    if (x->doc_off != y->doc_off) return x->doc_off < y->doc_off ? -1 : 1;
    return x->comp_start < y->comp_start ? -1 : x->comp_start > y->comp_start;
}

typedef struct {
    cs_text_hit *v;
    size_t n, cap;
} hit_list;

static int hits_push(hit_list *h, cs_text_hit x) {
    if (h->n == h->cap) {
        size_t c = h->cap ? h->cap * 2 : 16;
        cs_text_hit *v = realloc(h->v, c * sizeof *v);
        if (!v) return -1;
        h->v = v;
        h->cap = c;
    }
    h->v[h->n++] = x;
    return 0;
}

/* Appends the occurrences of p[0..m) in shard s (rows of its raw suffix
 * array), at most *budget of them. */
static int shard_hits(const cs_text_corpus *c, int s, const uint8_t *p, size_t m, uint64_t comp_start,
                      size_t *budget, hit_list *h) {
    const cs_text_shard *sh = &c->shards[s];
    uint64_t lo, hi;
    cs_text_sa_range(&sh->raw, p, m, &lo, &hi);
    for (uint64_t r = lo; r < hi && *budget; r++, (*budget)--) {
        uint64_t pos = sh->raw.sa[r];
        int64_t d = cs_text_shard_raw_doc(sh, pos);
        if (d < 0) continue;
        cs_text_hit x = {s, (uint64_t)d, pos - sh->raw_start[d], comp_start, comp_start + m};
        if (hits_push(h, x)) return -1;
    }
    return 0;
}

int cs_text_raw_hits(const cs_text_corpus *c, const uint8_t *p, size_t m, size_t max, cs_text_hit **hits,
                     size_t *n, cs_err *err) {
    hit_list h = {0};
    size_t budget = max;
    for (int s = 0; s < c->n_shards && m; s++)
        if (shard_hits(c, s, p, m, 0, &budget, &h)) {
            free(h.v);
            return cs_fail(err, CS_ENOMEM, "out of memory");
        }
    if (h.n) qsort(h.v, h.n, sizeof *h.v, hit_cmp);
    *hits = h.v;
    *n = h.n;
    return 0;
}

/* A longest span found so far: completion bytes [i, i + len). */
typedef struct {
    uint64_t i, len;
} cand;

/* The longest match at q[i..seg) over all shards, in whole code points:
 * its characters, and (for ties) each shard's length in bytes. */
static uint64_t match_at(const cs_text_corpus *c, const uint8_t *q, size_t m, size_t i, size_t seg,
                         const uint64_t *cpc, uint64_t *len) {
    uint64_t best = 0;
    for (int s = 0; s < c->n_shards; s++) {
        uint64_t pos, l = cs_text_sa_longest(&c->shards[s].raw, q + i, seg - i, &pos);
        while (l > 0 && i + l < m && (q[i + l] & 0xC0) == 0x80) l--; /* whole code points */
        len[s] = l;
        uint64_t ch = cpc[i + l] - cpc[i];
        if (ch > best) best = ch;
    }
    return best;
}

/* The end of the run without 0xFF from i (0xFF is never text: it would match
 * a separator). */
static size_t seg_end(const uint8_t *q, size_t m, size_t i) {
    while (i < m && q[i] != CS_TEXT_SEP) i++;
    return i;
}

/* The largest span in characters and every (start, length) that reaches it.
 * ms_s(i), the longest match at code point i in shard s, is at most
 * ms_s(next) + 1 (a match at i minus its first character is a match at the
 * next), so a right-to-left scan skips, shard by shard, every start whose
 * bound in that shard is below the best so far; a first pass over every
 * 16th start makes that best large early. With several shards the best
 * comes from one of them, and the others, whose matches are short, are
 * searched only every (best - their match) starts instead of at every one.
 * Exact: a shard is only skipped at a start when it cannot reach the best. */
static int scan_longest(const cs_text_corpus *c, const uint8_t *q, size_t m, uint64_t *best, cand **cv,
                        size_t *nc) {
    size_t cap = 0, ns = (size_t)c->n_shards;
    *best = 0;
    *cv = NULL;
    *nc = 0;
    uint64_t *cpc = malloc((m + 1) * sizeof *cpc), *len = malloc((ns + 1) * sizeof *len);
    uint64_t *next = calloc(ns + 1, sizeof *next); /* per shard: ms (or a bound on it) of the code point after i */
    if (!cpc || !len || !next) {
        free(cpc), free(len), free(next);
        return -1;
    }
    cpc[0] = 0; /* code points before each byte */
    for (size_t i = 0; i < m; i++) cpc[i + 1] = cpc[i] + ((q[i] & 0xC0) != 0x80);
    for (size_t i = 0, k = 0; i < m; i++) /* pass 1: a lower bound */
        if ((q[i] & 0xC0) != 0x80 && q[i] != CS_TEXT_SEP && k++ % 16 == 0) {
            uint64_t ch = match_at(c, q, m, i, seg_end(q, m, i), cpc, len);
            if (ch > *best) *best = ch;
        }
    int rc = 0;
    size_t seg = m;
    for (size_t i = m; i-- > 0 && !rc;) {
        if ((q[i] & 0xC0) == 0x80) continue;
        if (q[i] == CS_TEXT_SEP) {
            memset(next, 0, ns * sizeof *next), seg = i;
            continue;
        }
        for (size_t s = 0; s < ns && !rc; s++) {
            uint64_t ub = next[s] + 1;
            if (ub < *best) {
                next[s] = ub;
                continue;
            }
            uint64_t pos, l = cs_text_sa_longest(&c->shards[s].raw, q + i, seg - i, &pos);
            while (l > 0 && i + l < m && (q[i + l] & 0xC0) == 0x80) l--; /* whole code points */
            uint64_t ch = cpc[i + l] - cpc[i];
            next[s] = ch;
            if (ch == 0 || ch < *best) continue;
            if (ch > *best) *nc = 0, *best = ch;
            if (*nc && (*cv)[*nc - 1].i == i) continue; /* this start is listed (by an earlier shard) */
            if (*nc == cap) {
                cap = cap ? cap * 2 : 8;
                cand *v = realloc(*cv, cap * sizeof *v);
                if (!v) rc = -1;
                else *cv = v;
            }
            if (!rc) (*cv)[(*nc)++] = (cand){i, l};
        }
    }
    free(cpc);
    free(len);
    free(next);
    return rc;
}

int cs_text_longest_chars(const cs_text_corpus *c, const char *qs, size_t m, int pref_shard, uint64_t pref_doc,
                          cs_text_chars *out, cs_err *err) {
    memset(out, 0, sizeof *out);
    out->source.shard = -1;
    const uint8_t *q = (const uint8_t *)qs;
    cand *cv;
    size_t nc;
    hit_list h = {0};
    if (scan_longest(c, q, m, &out->chars, &cv, &nc)) goto oom;
    size_t budget = CS_TEXT_MAX_HITS;
    for (size_t k = 0; k < nc; k++)
        for (int s = 0; s < c->n_shards; s++)
            if (shard_hits(c, s, q + cv[k].i, cv[k].len, cv[k].i, &budget, &h)) goto oom;
    out->truncated = budget == 0;
    free(cv);
    cv = NULL;
    if (h.n) qsort(h.v, h.n, sizeof *h.v, hit_cmp);
    /* one occurrence per document: its first */
    size_t k = 0;
    for (size_t i = 0; i < h.n; i++)
        if (!k || h.v[k - 1].shard != h.v[i].shard || h.v[k - 1].doc != h.v[i].doc) h.v[k++] = h.v[i];
    out->docs = h.v;
    out->n_docs = k;
    if (k) out->source = h.v[0];
    for (size_t i = 0; i < k; i++)
        if (h.v[i].shard == pref_shard && h.v[i].doc == pref_doc) out->source = h.v[i];
    return 0;
oom:
    free(cv);
    free(h.v);
    return cs_fail(err, CS_ENOMEM, "out of memory");
}

void cs_text_chars_free(cs_text_chars *r) {
    free(r->docs);
    memset(r, 0, sizeof *r);
}

/* ---- where a prompt ends ---- */

static size_t skip_ws(const uint8_t *s, size_t i, size_t n) {
    while (i < n) {
        int32_t cp;
        size_t l = cs_text_decode(s + i, n - i, &cp);
        if (!cs_text_is_ws(cp)) break;
        i += l;
    }
    return i;
}

/* Trailing whitespace of s[0..n): the length without it. */
static size_t trim_end(const uint8_t *s, size_t n) {
    size_t e = 0;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        size_t l = cs_text_decode(s + i, n - i, &cp);
        i += l;
        if (!cs_text_is_ws(cp)) e = i;
    }
    return e;
}

/* Picks the preferred document among sorted hits, else the first. */
static const cs_text_hit *pick(const cs_text_hit *v, size_t n, int pref_shard, uint64_t pref_doc) {
    for (size_t i = 0; i < n; i++)
        if (v[i].shard == pref_shard && v[i].doc == pref_doc) return &v[i];
    return n ? &v[0] : NULL;
}

static int locate_exact(const cs_text_corpus *c, const uint8_t *p, size_t len, int pref_shard, uint64_t pref_doc,
                        cs_text_loc *loc, cs_err *err) {
    size_t a = skip_ws(p, 0, len), e = trim_end(p, len);
    if (e <= a) return 0;
    cs_text_hit *v;
    size_t n;
    if (cs_text_raw_hits(c, p + a, e - a, 100000, &v, &n, err)) return -1;
    const cs_text_hit *h = pick(v, n, pref_shard, pref_doc);
    if (h) *loc = (cs_text_loc){1, h->shard, h->doc, h->doc_off + (e - a)};
    free(v);
    return 0;
}

/* The normal form of the prompt as whole words in the corpus's normal form;
 * the word rows give the raw end in the document. */
static int locate_tolerant(const cs_text_corpus *c, cs_store *s, const char *p, size_t len, int pref_shard,
                           uint64_t pref_doc, cs_text_loc *loc, cs_err *err) {
    (void)s;
    cs_text_norm n;
    if (cs_text_normalize(&n, p, len, err)) {
        cs_text_norm_free(&n);
        return -1;
    }
    int rc = 0;
    uint8_t *t = malloc(n.len + 1);
    hit_list h = {0};
    if (!t) rc = cs_fail(err, CS_ENOMEM, "out of memory");
    for (int sh = 0; !rc && n.len && sh < c->n_shards; sh++)
        for (int k = 0; k < 2 && !rc; k++) { /* followed by a space, or the document's end */
            memcpy(t, n.text, n.len);
            t[n.len] = k ? CS_TEXT_SEP : ' ';
            const cs_text_shard *S = &c->shards[sh];
            uint64_t lo, hi;
            cs_text_sa_range(&S->sa, t, n.len + 1, &lo, &hi);
            for (uint64_t r = lo; r < hi && r < lo + 100000 && !rc; r++) {
                uint64_t rs, re;
                int64_t d = cs_text_shard_word(S, S->sa.sa[r], n.len, &rs, &re);
                if (d >= 0 && hits_push(&h, (cs_text_hit){sh, (uint64_t)d, rs, re, 0}))
                    rc = cs_fail(err, CS_ENOMEM, "out of memory");
            }
        }
    if (!rc && h.n) {
        qsort(h.v, h.n, sizeof *h.v, hit_cmp);
        const cs_text_hit *x = pick(h.v, h.n, pref_shard, pref_doc);
        *loc = (cs_text_loc){2, x->shard, x->doc, x->comp_start}; /* comp_start: the raw end (above) */
    }
    free(h.v);
    free(t);
    cs_text_norm_free(&n);
    return rc;
}

int cs_text_locate(const cs_text_corpus *c, cs_store *s, const char *prompt, size_t len, int pref_shard,
                   uint64_t pref_doc, cs_text_loc *loc, cs_err *err) {
    memset(loc, 0, sizeof *loc);
    loc->shard = -1;
    if (locate_exact(c, (const uint8_t *)prompt, len, pref_shard, pref_doc, loc, err)) return -1;
    if (loc->how) return 0;
    return locate_tolerant(c, s, prompt, len, pref_shard, pref_doc, loc, err);
}

int cs_text_continuation(const cs_text_corpus *c, const cs_text_loc *loc, size_t want_words, char **out, size_t *len,
                         cs_err *err) {
    *out = NULL;
    *len = 0;
    const cs_text_shard *sh = &c->shards[loc->shard];
    const uint8_t *d = sh->raw.text + sh->raw_start[loc->doc];
    size_t n = sh->raw_len[loc->doc];
    size_t a = skip_ws(d, loc->end < n ? loc->end : n, n), e = a, words = 0;
    if (want_words < 1) want_words = 1;
    for (size_t i = a; i < n && words < want_words;) {
        int32_t cp;
        size_t l = cs_text_decode(d + i, n - i, &cp);
        if (cs_text_is_ws(cp)) {
            i = skip_ws(d, i, n);
            continue;
        }
        while (i < n) { /* the word */
            l = cs_text_decode(d + i, n - i, &cp);
            if (cs_text_is_ws(cp)) break;
            i += l;
        }
        e = i;
        words++;
    }
    *out = malloc(e - a + 1);
    if (!*out) return cs_fail(err, CS_ENOMEM, "out of memory");
    memcpy(*out, d + a, e - a);
    (*out)[e - a] = 0;
    *len = e - a;
    return 0;
}
