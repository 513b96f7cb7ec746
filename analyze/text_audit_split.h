/* text_audit_split.h — the text audit with its scoring done elsewhere
 * (copyscope-mpi: by every rank; no MPI here, the CLI moves the bytes).
 *
 * Scoring a completion (the span search over the whole corpus, locating
 * the prompt, the metrics) is nearly all of an audit's CPU and depends only
 * on the line, the corpus and the store's prompts; writing (verdict, rows,
 * results file) is cheap and must happen in line order in one process. So
 * cs_text_audit_split reads the file as cs_text_audit does, hands each
 * round of non-blank lines to a callback that returns every line's scored
 * result packed (cs_text_scorer_line, in any process that opened the same
 * store and corpus), and writes the unpacked results in line order: the
 * same rows, results file and notes as cs_text_audit. */
#ifndef CS_TEXT_AUDIT_SPLIT_H
#define CS_TEXT_AUDIT_SPLIT_H

#include <stdint.h>
#include <stdio.h>

#include "analyze/text_audit.h"
#include "reports/buf.h"

/* Scores lines into packed results. The store may be read-only (it reads
 * text_prompts); its notes are packed with the result (the writer emits
 * them in line order). */
typedef struct cs_text_scorer cs_text_scorer;
int cs_text_scorer_open(cs_text_scorer **x, cs_store *s, const cs_text_corpus *c, const char *path,
                        const cs_text_audit_opts *o, cs_err *err);
/* Appends line lineno's packed result to out (a line that fails to score
 * packs the failure: the writer stops with its message). -1: out of memory. */
int cs_text_scorer_line(cs_text_scorer *x, const char *line, size_t len, int64_t lineno, cs_buf *out);
/* A packed failure record (e.g. a process that could not open the corpus):
 * the writer stops with msg when it reaches it. */
void cs_text_pack_failure(cs_buf *out, int64_t lineno, const char *msg);
void cs_text_scorer_free(cs_text_scorer *x);

/* One round of lines, in file order. */
typedef struct {
    int n;
    const char *const *line;
    const size_t *len;
    const int64_t *lineno;
} cs_text_round;

/* score(ctx, x, r, packed, err): the packed results of r's lines, in order,
 * appended to packed; x scores here (the writer's own scorer). */
typedef int (*cs_text_score_fn)(void *ctx, cs_text_scorer *x, const cs_text_round *r, cs_buf *packed, cs_err *err);

/* cs_text_audit (text_audit.h) with the scoring of every round of up to
 * round_lines lines done by score. */
int cs_text_audit_split(cs_store *s, const cs_text_corpus *c, const char *path, const cs_text_audit_opts *o, FILE *out,
                        int round_lines, cs_text_score_fn score, void *ctx, cs_text_audit_stats *st, cs_err *err);

#endif
