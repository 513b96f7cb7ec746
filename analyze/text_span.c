/* text_span.c — matching statistics and maximal spans. */
#include "analyze/text_span.h"

#include <stdlib.h>
#include <string.h>

/* Cuts q[j..j+l) back to its last whole word: the end e must be the end of
 * the completion or followed by ' '. Returns the new length (0: no word). */
static uint64_t whole_words(const uint8_t *q, size_t m, size_t j, uint64_t l) {
    uint64_t e = j + l;
    if (e < m && q[e] != ' ') {
        while (e > j && q[e - 1] != ' ') e--; /* drop the partial word */
    }
    while (e > j && q[e - 1] == ' ') e--;     /* and the space before it */
    return e - j;
}

/* Is p[0..l) followed by ' ' or the separator somewhere in sa? *pos: one. */
static int occurs_as_words(const cs_text_sa *sa, const uint8_t *p, uint64_t l, uint64_t *pos) {
    uint8_t *t = malloc(l + 1);
    if (!t) return 0; /* only costs a word of the span */
    memcpy(t, p, l);
    int found = 0;
    for (int k = 0; k < 2 && !found; k++) {
        t[l] = k ? CS_TEXT_SEP : ' ';
        /* one search, not a range's two: the longest match is all of t at
         * the first row starting with t (the lower bound; the row before
         * it sorts below t), the row the range would start at */
        uint64_t p;
        if (cs_text_sa_longest(sa, t, l + 1, &p) == l + 1) {
            *pos = p;
            found = 1;
        }
    }
    free(t);
    return found;
}

/* Longest run of whole words of q[j..m) that is a run of whole words in sa
 * (words match whole on both sides: "a" never matches the start of "an"). */
static uint64_t word_match(const cs_text_sa *sa, const uint8_t *q, size_t m, size_t j, uint64_t *pos) {
    uint64_t p = 0;
    uint64_t l = cs_text_sa_longest(sa, q + j, m - j, &p);
    uint64_t e = whole_words(q, m, j, l);
    *pos = p;
    if (e == 0 || e < l) return e; /* e < l: the space after it matched too */
    int b;
    cs_text_sa_skip(sa, (uint32_t)p, e, &b);
    if (b < 0 || b == ' ' || b == CS_TEXT_SEP) return e;
    if (occurs_as_words(sa, q + j, e, pos)) return e;
    *pos = p; /* drop the last word: the space before it matched */
    return e > 0 ? whole_words(q, m, j, e - 1) : 0;
}

/* The longest whole-word match at every word start of q over all shards
 * (ties go to the first shard): *len, *shard (-1: none) and *pos per start
 * js[k]. ms_s(j), the longest whole-word match at word start j in shard s,
 * is at most ms_s(j') + (j' - j) for the next word start j' (the match at j
 * less its first word is a whole-word match at j'), so a right-to-left scan
 * searches a shard at a start only when that bound reaches the best match
 * found there in the other shards (the last start's winner is searched
 * first): with several shards, those whose matches are short are searched
 * every few starts instead of at each. Exact: a shard is skipped only when
 * it can neither beat nor (being earlier) tie the best. */
static int match_all(const cs_text_corpus *c, const uint8_t *q, size_t m, const size_t *js, size_t n,
                     uint64_t *len, int *shard, uint64_t *pos) {
    int ns = c->n_shards;
    if (ns == 0) { /* an empty corpus: no match anywhere (shard 0 does not exist) */
        for (size_t k = 0; k < n; k++) len[k] = 0, shard[k] = -1, pos[k] = 0;
        return 0;
    }
    uint64_t *bound = malloc(((size_t)ns + 1) * sizeof *bound); /* per shard: ms (or a bound) at the next start */
    if (!bound) return -1;
    for (size_t k = n; k-- > 0;) {
        size_t j = js[k];
        uint64_t step = k + 1 < n ? js[k + 1] - j : UINT64_MAX / 2;
        int w = k + 1 < n && shard[k + 1] >= 0 ? shard[k + 1] : 0;
        uint64_t best = 0;
        int bs = -1;
        for (int t = -1; t < ns; t++) {
            int s = t < 0 ? w : t;
            if (t >= 0 && s == w) continue;
            uint64_t ub = k + 1 < n ? bound[s] + step : UINT64_MAX;
            if (t >= 0 && (bs < 0 ? ub == 0 : s < bs ? ub < best : ub <= best)) {
                bound[s] = ub;
                continue;
            }
            uint64_t p = 0, l = word_match(&c->shards[s].sa, q, m, j, &p);
            bound[s] = l;
            if (l > 0 && (l > best || (l == best && s < bs))) best = l, bs = s, pos[k] = p;
        }
        len[k] = best;
        shard[k] = bs;
    }
    free(bound);
    return 0;
}

static uint64_t count_words(const uint8_t *q, uint64_t a, uint64_t b) {
    uint64_t w = a < b;
    for (uint64_t i = a; i < b; i++) w += q[i] == ' ';
    return w;
}

int cs_text_spans(const cs_text_corpus *c, const char *qs, size_t m, int min_words, cs_text_span *longest,
                  cs_text_span **spans, size_t *n_spans, cs_err *err) {
    const uint8_t *q = (const uint8_t *)qs;
    memset(longest, 0, sizeof *longest);
    longest->doc_id = -1;
    longest->shard = -1;
    *spans = NULL;
    *n_spans = 0;
    size_t cap = 0, n = 0;
    uint64_t reach = 0; /* end of the furthest span so far */
    for (size_t j = 0; j < m; j++) n += q[j] != ' ' && (j == 0 || q[j - 1] == ' ');
    size_t *js = malloc((n + 1) * sizeof *js);
    uint64_t *ml = malloc((n + 1) * sizeof *ml), *mp = malloc((n + 1) * sizeof *mp);
    int *msh = malloc((n + 1) * sizeof *msh);
    n = 0;
    for (size_t j = 0; js && j < m; j++)
        if (q[j] != ' ' && (j == 0 || q[j - 1] == ' ')) js[n++] = j; /* word starts only */
    if (!js || !ml || !mp || !msh || match_all(c, q, m, js, n, ml, msh, mp)) {
        free(js), free(ml), free(mp), free(msh);
        return cs_fail(err, CS_ENOMEM, "out of memory");
    }
    for (size_t k = 0; k < n; k++) {
        size_t j = js[k];
        int s = msh[k];
        uint64_t pos = mp[k];
        uint64_t l = ml[k];
        if (s < 0 || l == 0) continue;
        const cs_text_shard *sh = &c->shards[s];
        uint64_t ds, de;
        int64_t d = cs_text_shard_word(sh, pos, l, &ds, &de);
        if (d < 0) continue; /* a damaged row (never for a sound index) */
        cs_text_span sp = {
            .q_start = j,
            .q_end = j + l,
            .words = count_words(q, j, j + l),
            .chars = cs_text_nchars(qs + j, l),
            .shard = s,
            .doc_id = sh->doc_id[d],
            .doc_start = ds,
            .doc_end = de,
        };
        /* the longest run of words (not the most characters: issue 14) */
        if (sp.words > longest->words || (sp.words == longest->words && sp.chars > longest->chars)) *longest = sp;
        if (sp.q_end <= reach) continue; /* inside an earlier span */
        reach = sp.q_end;
        if ((int64_t)sp.words < min_words) continue;
        if (*n_spans == cap) {
            cap = cap ? cap * 2 : 16;
            cs_text_span *v = realloc(*spans, cap * sizeof *v);
            if (!v) {
                free(*spans);
                *spans = NULL;
                *n_spans = 0;
                free(js), free(ml), free(mp), free(msh);
                return cs_fail(err, CS_ENOMEM, "out of memory");
            }
            *spans = v;
        }
        (*spans)[(*n_spans)++] = sp;
    }
    free(js), free(ml), free(mp), free(msh);
    return 0;
}
