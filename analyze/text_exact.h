/* text_exact.h — the exact figures on raw text (issue 14): spans of any
 * characters over the raw suffix arrays, and where a prompt ends in the
 * corpus.
 *
 * Characters are Unicode code points of the text as given (no
 * normalisation). A character span is a substring of the completion that
 * occurs inside one document (the 0xFF after each document is never in a
 * pattern, so no span crosses documents); it may start or end inside a word
 * or on whitespace. For every code point start i of the completion, the
 * longest prefix of completion[i..] found in a shard (one binary search per
 * shard), cut back to a code point boundary: the largest over i is
 * longest_span_chars, exactly. */
#ifndef CS_TEXT_EXACT_H
#define CS_TEXT_EXACT_H

#include <stddef.h>
#include <stdint.h>

#include "analyze/text_corpus.h"

/* Documents holding a longest span are listed up to this many occurrences. */
#define CS_TEXT_MAX_HITS 1000

/* One occurrence: shard, document index in it, raw byte offset in the
 * document, and the completion bytes [comp_start, comp_end) that match. */
typedef struct {
    int shard;
    uint64_t doc, doc_off;
    uint64_t comp_start, comp_end;
} cs_text_hit;

typedef struct {
    uint64_t chars;      /* longest_span_chars (0: nothing in common) */
    cs_text_hit source;  /* the occurrence in source_doc (shard < 0 when chars = 0) */
    cs_text_hit *docs;   /* one occurrence per document holding a longest span, by (shard, doc); owned */
    size_t n_docs;
    int truncated;       /* more than CS_TEXT_MAX_HITS occurrences: docs lists those seen */
} cs_text_chars;

/* longest_span_chars of q[0..m) (raw UTF-8). source_doc is the preferred
 * document (pref_shard, pref_doc) when it holds a longest span, else the
 * first in corpus order. pref_shard < 0: no preference. */
int cs_text_longest_chars(const cs_text_corpus *c, const char *q, size_t m, int pref_shard, uint64_t pref_doc,
                          cs_text_chars *out, cs_err *err);
void cs_text_chars_free(cs_text_chars *r);

/* Every occurrence (up to max) of p[0..m) in the raw text, one per
 * (shard, doc, offset), in corpus order. Caller frees *hits. */
int cs_text_raw_hits(const cs_text_corpus *c, const uint8_t *p, size_t m, size_t max, cs_text_hit **hits,
                     size_t *n, cs_err *err);

/* Where the prompt ends: exact = 1 (its raw text, leading and trailing
 * whitespace aside, occurs), 2 (whitespace-tolerant: its normal form occurs
 * as whole words), 0 (not found). Among several places the preferred
 * document wins, else the first in corpus order. *end: raw offset in the
 * document just after the prompt. */
typedef struct {
    int how;
    int shard;
    uint64_t doc, end;
} cs_text_loc;

int cs_text_locate(const cs_text_corpus *c, cs_store *s, const char *prompt, size_t len, int pref_shard,
                   uint64_t pref_doc, cs_text_loc *loc, cs_err *err);

/* The true continuation after loc: from the first non-whitespace character
 * after the prompt, as many words as want_words (>= 1), raw. *out is owned. */
int cs_text_continuation(const cs_text_corpus *c, const cs_text_loc *loc, size_t want_words, char **out, size_t *len,
                         cs_err *err);

#endif
