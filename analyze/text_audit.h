/* text_audit.h — prompts cut from the corpus, and the audit of completions.
 *
 * prompts: for each chosen document, K windows of N + M words spread evenly
 * over it (the first at word 0); the first N words are the prompt, the next M
 * the true continuation, kept in text_prompts. Documents shorter than N + M
 * words are skipped with a note. The prompt_id is the row's key,
 * "d<doc>.w<word>.p<N>.c<M>", so cutting the same prompts again is a no-op.
 *
 * The prompt text written is the normalised prefix (words one space apart).
 *
 * audit: each JSONL line {"prompt_id" or "prompt", "completion"[, "model"]}
 * (the completion is the text after the prompt; a prompt is looked up by id,
 * else by its normalised text) gets a finding:
 *  - spans: the longest verbatim span shared with the corpus and every
 *    maximal span of >= min_span_words words (text_span.h), with their
 *    documents and original byte offsets;
 *  - against the true continuation (the completion cut to as many words):
 *    exact-prefix words, ROUGE-L F1, normalised edit similarity;
 *  - verdict: verbatim if exact prefix >= min(extract_words, continuation
 *    words) or the longest span >= verbatim_span_words words; near-verbatim if
 *    ROUGE-L F1 >= near_rouge, or edit similarity >= near_edit, or the longest
 *    span >= near_span_words words; otherwise novel.
 * An unknown prompt (status unknown_prompt) is judged on its spans alone; an
 * empty completion is recorded (status empty_completion, verdict novel). */
#ifndef CS_TEXT_AUDIT_H
#define CS_TEXT_AUDIT_H

#include <stdint.h>
#include <stdio.h>

#include "analyze/text_corpus.h"

/* Spans are searched in the first 64 KB (normalised) of a completion: one
 * copied whole costs O(length^2) byte comparisons. */
#define CS_TEXT_MAX_SPAN_QUERY ((size_t)65536)

/* Continuations are compared with quadratic algorithms: M is bounded. */
#define CS_TEXT_MAX_CONT_WORDS 2000

typedef struct {
    int prefix_words, cont_words; /* N, M (> 0; M <= CS_TEXT_MAX_CONT_WORDS) */
    int per_doc;                  /* K windows per document (default 1) */
    const int64_t *docs;          /* text_docs ids to use; NULL = every indexed document */
    size_t n_docs;
    void (*note)(void *ctx, const char *msg);
    void *note_ctx;
} cs_text_prompt_opts;

/* Writes the prompts as JSONL lines {"prompt_id", "prompt"} to out and keeps
 * them (with their continuations) in text_prompts. *n_written may be NULL. */
int cs_text_prompts(cs_store *s, const cs_text_corpus *c, const cs_text_prompt_opts *o, FILE *out,
                    int64_t *n_written, cs_err *err);

typedef struct {
    int min_span_words;      /* default 10 */
    int extract_words;       /* default 50 (Carlini et al.) */
    int verbatim_span_words; /* default 50 */
    int near_span_words;     /* default 20 */
    double near_rouge;       /* default 0.7 */
    double near_edit;        /* default 0.7 */
    void (*note)(void *ctx, const char *msg);
    void *note_ctx;
    int progress;
} cs_text_audit_opts;

/* The documented defaults. */
void cs_text_audit_defaults(cs_text_audit_opts *o);

typedef struct {
    int64_t audit_id;
    int64_t completions, verbatim, near_verbatim, novel;
    int64_t unknown_prompt, empty, bad_lines;
    double seconds_spans; /* time spent finding spans */
    uint64_t bytes_spans; /* completion bytes searched */
} cs_text_audit_stats;

/* Audits every line of the completions file into a new text_audits row. */
int cs_text_audit(cs_store *s, const cs_text_corpus *c, const char *path, const cs_text_audit_opts *o,
                  cs_text_audit_stats *st, cs_err *err);

#endif
