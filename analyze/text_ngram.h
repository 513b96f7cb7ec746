/* text_ngram.h — the built-in text model: an order-n word n-gram generator
 * over the indexed corpus, a known memoriser for demos and tests.
 *
 * It needs no training pass: the counts come from the suffix arrays. To pick
 * the next word it looks up the last n-1 words (followed by a space) in every
 * shard; the suffixes that start with them are one interval per shard, and
 * the words that follow are the candidates, counted. If that context never
 * occurs it backs off to n-2 words, ..., 1 word (the longest context seen
 * wins, as in stupid backoff); if even the last word is unseen, generation
 * stops. Greedy picks the most frequent next word (ties: the byte-wise
 * smallest; above 4096 occurrences, 4096 evenly spaced ones are counted);
 * sampling draws one occurrence uniformly with a seeded generator, i.e. a word
 * with probability proportional to its count. Same corpus, prompt and
 * settings give the same text. On a corpus where every (n-1)-word context is
 * unique, greedy generation from a prefix reproduces the document. */
#ifndef CS_TEXT_NGRAM_H
#define CS_TEXT_NGRAM_H

#include <stdint.h>

#include "analyze/text_corpus.h"

typedef struct {
    int order;     /* n >= 2; default 8 (7 words of context) */
    int max_words; /* words to generate; default 50 */
    int sample;    /* 0 greedy, 1 seeded sampling */
    uint64_t seed;
} cs_ngram_opts;

/* Generates the continuation of prompt[0..len) (any text; normalised here).
 * *out (caller frees) is normalised: words joined by single spaces. */
int cs_ngram_generate(const cs_text_corpus *c, const char *prompt, size_t len, const cs_ngram_opts *o, char **out,
                      cs_err *err);

#endif
