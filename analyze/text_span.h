/* text_span.h — verbatim spans shared by a (normalised) completion and the
 * corpus.
 *
 * Matching statistics over the word-aligned suffix arrays: for each word start
 * j of the completion, the longest prefix of completion[j..] that starts a
 * word somewhere in the corpus (one binary search per shard, neighbours'
 * lcps kept). The match is then cut back to the last whole word of the
 * completion, so a span is a run of whole completion words. A span at j is
 * maximal when it ends after every span that starts before it. Spans never
 * cross a document boundary: the separator byte 0xFF is never in a pattern,
 * and each span is checked against its document's end. */
#ifndef CS_TEXT_SPAN_H
#define CS_TEXT_SPAN_H

#include <stddef.h>
#include <stdint.h>

#include "analyze/text_corpus.h"

typedef struct {
    uint64_t q_start, q_end; /* byte offsets in the normalised completion */
    uint64_t words, chars;   /* whole words; code points */
    int shard;               /* index into corpus->shards */
    int64_t doc_id;          /* text_docs.id */
    uint64_t doc_start, doc_end; /* raw byte offsets in the document */
} cs_text_span;

/* Finds the longest span (*longest: the most words, then the most
 * characters; words = 0 when there is none) and every
 * maximal span of at least min_words words (*spans, caller frees, in
 * completion order). q[0..m) must be normalised (text_norm.h). */
int cs_text_spans(const cs_text_corpus *c, const char *q, size_t m, int min_words, cs_text_span *longest,
                  cs_text_span **spans, size_t *n_spans, cs_err *err);

#endif
