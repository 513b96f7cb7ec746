/* text_audit.h — prompts cut from the corpus, and the audit of any model's
 * completions.
 *
 * prompts: for each chosen document, K windows of N + M words spread evenly
 * over it (the first at word 0); the first N words are the prompt, the next M
 * the true continuation, kept in text_prompts. Documents shorter than N + M
 * words are skipped with a note. The prompt_id is the row's key,
 * "d<doc>.w<word>.p<N>.c<M>", so cutting the same prompts again is a no-op.
 * The prompt text written is the normalised prefix (words one space apart).
 *
 * audit: each JSONL line {"id" (or "prompt_id"), "prompt", "completion"[,
 * "continuation"][, "doc"][, "model"]} goes through four stages:
 *  1. parse: the fields (a line that is not an object with a "completion"
 *     string, or holds \u0000, is a bad line: noted, skipped, and reported
 *     as {"line", "error"} in the results file);
 *  2. score: the true continuation is "continuation" if given; else the one
 *     kept for a prompt cut by `text prompts` (by id, else by text); else the
 *     text after the prompt's end in the corpus (located exactly, then
 *     whitespace-tolerant; the first non-whitespace character on, as many
 *     words as the completion). Figures (raw text, text_exact.h and
 *     text_metrics.h): longest_span_chars with source_doc(s); 
 *     longest_span_words (whole words on both sides, whitespace between may
 *     differ); every maximal span of >= min_span_words words; against the
 *     continuation: exact_prefix_words, rouge_l, edit_sim (whole texts);
 *  3. verdict (cs_text_verdict, pure): verbatim if exact prefix >=
 *     min(extract_words, continuation words) or longest_span_words >=
 *     verbatim_span_words; near-verbatim if rouge_l >= near_rouge, or
 *     edit_sim >= near_edit, or longest_span_words >= near_span_words;
 *     otherwise novel;
 *  4. write: text_completions/text_findings/text_spans rows (text_store.h)
 *     and, with an output file, one JSON object per input line in order.
 * Without a continuation the status is unknown_prompt (judged on its spans
 * alone); an empty completion is recorded (status empty_completion). */
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
    const char *const *doc_names; /* documents to use, by name (a number naming none: its id); NULL = all */
    size_t n_names;
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

typedef enum { CS_TEXT_NOVEL = 0, CS_TEXT_NEAR_VERBATIM = 1, CS_TEXT_VERBATIM = 2 } cs_text_verdict_kind;

/* What the verdict is decided on. */
typedef struct {
    int has_cont, empty;
    uint64_t cont_words, exact_prefix;
    double rouge, edit;
    uint64_t span_words;
} cs_text_figures;

#define CS_TEXT_MAX_REASONS 6
typedef struct {
    int n;
    char text[CS_TEXT_MAX_REASONS][120];
} cs_text_reasons;

/* The verdict and the reasons that decided it (a pure function). */
cs_text_verdict_kind cs_text_verdict(const cs_text_figures *f, const cs_text_audit_opts *o, cs_text_reasons *r);
const char *cs_text_verdict_name(cs_text_verdict_kind v);

typedef struct {
    int64_t audit_id;
    int64_t completions, verbatim, near_verbatim, novel;
    int64_t unknown_prompt, empty, bad_lines;
    double seconds_spans; /* time spent finding spans */
    uint64_t bytes_spans; /* completion bytes searched */
} cs_text_audit_stats;

/* Audits every line of the completions file into a new text_audits row;
 * out (may be NULL) gets one JSON object per input line, in input order. */
int cs_text_audit(cs_store *s, const cs_text_corpus *c, const char *path, const cs_text_audit_opts *o, FILE *out,
                  cs_text_audit_stats *st, cs_err *err);

/* Audits one text (no prompt) as a text audit of its own, source naming it:
 * `text trace --record`, so that reports show its spans. */
int cs_text_audit_text(cs_store *s, const cs_text_corpus *c, const char *source, const char *text, size_t len,
                       const cs_text_audit_opts *o, cs_text_audit_stats *st, cs_err *err);

/* fn(ctx, the formatted message) when fn is set: the note callbacks of the text commands. */
void cs_text_notef(void (*fn)(void *, const char *), void *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
