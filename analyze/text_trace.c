/* text_trace.c — maximal word spans of any text, with all their places. */
#include "analyze/text_trace.h"

#include <stdlib.h>
#include <string.h>

#include "analyze/text_span.h"

/* The places of the normal-form words p[0..m) (followed by a space or a
 * document's end) in shard sh, as raw document offsets. */
static int shard_places(const cs_text_corpus *c, int sh, const uint8_t *p, size_t m,
                        cs_text_traced *t, cs_err *err) {
    const cs_text_shard *S = &c->shards[sh];
    uint8_t *pat = malloc(m + 1);
    if (!pat) return cs_fail(err, CS_ENOMEM, "out of memory");
    memcpy(pat, p, m);
    int rc = 0;
    for (int k = 0; k < 2 && !rc; k++) {
        pat[m] = k ? CS_TEXT_SEP : ' ';
        uint64_t lo, hi;
        cs_text_sa_range(&S->sa, pat, m + 1, &lo, &hi);
        t->total_occ += hi - lo;
        for (uint64_t r = lo; r < hi && t->n_occ < CS_TEXT_TRACE_MAX_OCC && !rc; r++) {
            uint64_t rs, re;
            int64_t d = cs_text_shard_word(S, S->sa.sa[r], m, &rs, &re);
            if (d < 0) continue;
            t->occ[t->n_occ++] = (cs_text_hit){sh, (uint64_t)d, rs, rs, re}; /* comp_*: the raw span in the doc */
        }
    }
    free(pat);
    return rc;
}

static int hit_order(const void *a, const void *b) {
    const cs_text_hit *x = a, *y = b;
    if (x->shard != y->shard) return x->shard < y->shard ? -1 : 1;
    if (x->doc != y->doc) return x->doc < y->doc ? -1 : 1;
    return x->doc_off < y->doc_off ? -1 : x->doc_off > y->doc_off;
}

int cs_text_trace(cs_store *s, const cs_text_corpus *c, const char *text, size_t len, int min_words,
                  cs_text_traced **out, size_t *n, cs_err *err) {
    (void)s; /* the places are raw offsets already (the store's offset maps are not needed) */
    *out = NULL;
    *n = 0;
    cs_text_norm q;
    cs_text_span longest, *spans = NULL;
    size_t ns = 0;
    int rc = cs_text_normalize(&q, text, len, err);
    if (!rc) rc = cs_text_spans(c, q.text, q.len, min_words > 0 ? min_words : 1, &longest, &spans, &ns, err);
    cs_text_traced *v = NULL;
    if (!rc && ns && !(v = calloc(ns, sizeof *v))) rc = cs_fail(err, CS_ENOMEM, "out of memory");
    for (size_t i = 0; i < ns && !rc; i++) {
        cs_text_traced *t = &v[i];
        t->start = cs_text_orig_offset(q.anchors, q.n_anchors, spans[i].q_start);
        t->end = cs_text_orig_offset(q.anchors, q.n_anchors, spans[i].q_end);
        t->words = spans[i].words;
        t->chars = cs_text_nchars(text + t->start, t->end - t->start);
        if (!(t->occ = malloc(CS_TEXT_TRACE_MAX_OCC * sizeof *t->occ))) rc = cs_fail(err, CS_ENOMEM, "out of memory");
        for (int sh = 0; sh < c->n_shards && !rc; sh++)
            rc = shard_places(c, sh, (const uint8_t *)q.text + spans[i].q_start, spans[i].q_end - spans[i].q_start,
                              t, err);
        if (!rc) qsort(t->occ, t->n_occ, sizeof *t->occ, hit_order);
    }
    free(spans);
    cs_text_norm_free(&q);
    if (rc) {
        cs_text_trace_free(v, ns);
        return -1;
    }
    *out = v;
    *n = ns;
    return 0;
}

void cs_text_trace_free(cs_text_traced *v, size_t n) {
    for (size_t i = 0; v && i < n; i++) free(v[i].occ);
    free(v);
}
