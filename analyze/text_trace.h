/* text_trace.h — tracing any text back to the corpus (as OLMoTrace does for
 * OLMo): every maximal span of at least N whole words that occurs in the
 * corpus as whole words (the whitespace between them may differ), with every
 * document and offset it occurs at. No prompt needed. */
#ifndef CS_TEXT_TRACE_H
#define CS_TEXT_TRACE_H

#include "analyze/text_exact.h"

/* Occurrences listed per span, at most. */
#define CS_TEXT_TRACE_MAX_OCC 100

typedef struct {
    uint64_t start, end;  /* raw byte offsets in the text */
    uint64_t words, chars;
    cs_text_hit *occ;     /* shard, doc, doc_off..doc_off + (comp_end - comp_start) is the raw span there */
    size_t n_occ;
    uint64_t total_occ;   /* occurrences in the corpus (n_occ lists the first CS_TEXT_TRACE_MAX_OCC) */
} cs_text_traced;

/* The spans of text[0..len), in text order. Free with cs_text_trace_free. */
int cs_text_trace(cs_store *s, const cs_text_corpus *c, const char *text, size_t len, int min_words,
                  cs_text_traced **out, size_t *n, cs_err *err);
void cs_text_trace_free(cs_text_traced *v, size_t n);

#endif
