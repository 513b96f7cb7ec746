/* text_metrics.h — a completion against the true continuation.
 *
 * Inputs are normalised texts (text_norm.h): words are split on ' '.
 *  - exact prefix: the number of leading words equal in both (Carlini et
 *    al. call a sample extractable when the first 50 match);
 *  - ROUGE-L F1 on words: LCS-based precision/recall (Lin 2004), beta = 1;
 *  - normalised edit similarity: 1 - Levenshtein(a, b) / max(|a|, |b|) over
 *    code points.
 * Two empty texts score 1 (identical); one empty text scores 0. */
#ifndef CS_TEXT_METRICS_H
#define CS_TEXT_METRICS_H

#include <stddef.h>

#include "core/err.h"

/* Words of s[0..len): offsets and lengths into s. Caller frees *w. */
typedef struct {
    size_t off, len;
} cs_text_word;
int cs_text_words(const char *s, size_t len, cs_text_word **w, size_t *n, cs_err *err);

/* The byte length of the first k words of s (all of s if it has fewer). */
size_t cs_text_prefix_bytes(const char *s, size_t len, size_t k);

size_t cs_text_exact_prefix(const char *a, size_t alen, const char *b, size_t blen);
int cs_text_rouge_l(const char *cand, size_t clen, const char *ref, size_t rlen, double *f1, cs_err *err);
int cs_text_edit_sim(const char *a, size_t alen, const char *b, size_t blen, double *sim, cs_err *err);

/* The same figures on raw text (the exact figures of issue 14): a word is a
 * maximal run of code points outside Unicode White_Space (text_norm.h), no
 * other normalisation. ROUGE-L F1 = 2 LCS / (#cand words + #ref words). */
int cs_text_ws_words(const char *s, size_t len, cs_text_word **w, size_t *n, cs_err *err);
size_t cs_text_ws_count(const char *s, size_t len);
int cs_text_ws_exact_prefix(const char *a, size_t alen, const char *b, size_t blen, size_t *n, cs_err *err);
int cs_text_ws_rouge_l(const char *cand, size_t clen, const char *ref, size_t rlen, double *f1, cs_err *err);

#endif
