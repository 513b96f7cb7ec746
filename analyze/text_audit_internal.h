/* text_audit_internal.h — the stages of the text audit (text_audit.h),
 * shared by text_audit.c (parse, verdict, the loop), text_audit_score.c
 * (score) and text_audit_write.c (write). Not for other callers. */
#ifndef CS_TEXT_AUDIT_INTERNAL_H
#define CS_TEXT_AUDIT_INTERNAL_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "analyze/text_audit.h"
#include "analyze/text_exact.h"
#include "analyze/text_span.h"
#include "analyze/text_store.h"

/* One input line's fields (pointing into its parsed JSON). */
typedef struct {
    int64_t line;
    const char *id, *prompt, *completion, *continuation, *doc, *model;
    size_t comp_len;
    char idbuf[64];
} cs_text_input;

/* Everything the score stage found for one completion. */
typedef struct {
    cs_text_figures fig;
    uint64_t comp_words;
    cs_text_chars chars;  /* longest_span_chars, source_doc(s) */
    cs_text_norm q;       /* the completion's normal form */
    cs_text_span longest; /* the longest whole-word span (longest_span_words) */
    cs_text_span *spans;  /* maximal spans >= min_span_words */
    size_t n_spans;
    size_t span_bytes, char_bytes; /* how much of the completion was searched */
    char *cont;           /* the true continuation (raw), owned */
    size_t cont_len;
    const char *cont_from; /* given | prompts | located | located-tolerant | none */
    int64_t prompt_row;   /* text_prompts.id, 0: none */
    int pref_shard;       /* the prompt's own document, if known */
    uint64_t pref_doc;
} cs_text_scored;

typedef struct {
    cs_store *s;
    const cs_text_corpus *c;
    const cs_text_audit_opts *o;
    cs_text_audit_stats *st;
    const char *path;
    FILE *out;
    cs_text_writer w;
} cs_text_auditor;

const char *cs_text_parse_line(const char *line, size_t k, cJSON **j, cs_text_input *in);
int cs_text_score(cs_text_auditor *A, const cs_text_input *in, cs_text_scored *sc, cs_err *err);
void cs_text_scored_free(cs_text_scored *sc);
/* The verdict of a scored line, counted in the stats, and its row and
 * results line written (cs_text_write): the one tail of both audit loops. */
int cs_text_judge_write(cs_text_auditor *A, const cs_text_input *in, const cs_text_scored *sc, cs_err *err);
int cs_text_write(cs_text_auditor *A, const cs_text_input *in, const cs_text_scored *sc, cs_text_verdict_kind v,
                  const cs_text_reasons *why, cs_err *err);
/* The audit loop both audits run (cs_text_audit, cs_text_audit_split):
 * opens path and the audit's writer, calls start (if any) once the writer
 * is open, each_line for every non-blank line (with its 1-based number, in
 * file order), end (if any) after the last line when all went well, then
 * commits the audit (rolls it back on an error) and closes. */
typedef struct {
    int (*start)(void *ctx, cs_text_auditor *A, cs_err *err);
    int (*each_line)(void *ctx, cs_text_auditor *A, const char *line, size_t len, int64_t lineno, cs_err *err);
    int (*end)(void *ctx, cs_text_auditor *A, cs_err *err);
} cs_text_loop_fns;
int cs_text_audit_loop(cs_store *s, const cs_text_corpus *c, const char *path, const cs_text_audit_opts *opts,
                       FILE *out, cs_text_audit_stats *stats, const cs_text_loop_fns *fns, void *ctx, cs_err *err);
/* text_audits.settings_json of an audit (malloc'd; NULL: out of memory). */
char *cs_text_audit_settings_json(const cs_text_audit_opts *o);
int cs_text_write_bad(cs_text_auditor *A, const cs_text_input *in, const char *why, cs_err *err);

#endif
