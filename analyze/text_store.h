/* text_store.h — the SQL of the text audit's tables (text_prompts,
 * text_audits, text_completions, text_findings, text_spans) in one place:
 * the audit stages and the CLI read and write through these. */
#ifndef CS_TEXT_STORE_H
#define CS_TEXT_STORE_H

#include <stdint.h>

#include "core/err.h"
#include "core/store.h"

/* A registered prompt (text_prompts): its row, document and the raw
 * offsets of its true continuation in the document. */
typedef struct {
    int64_t id, doc_id;
    int64_t cont_start, cont_end;
} cs_text_prompt_row;

/* An audit being written: its statements, opened in a transaction. */
typedef struct {
    cs_store *s;
    int64_t audit_id;
    int in_batch;
    void *st[5]; /* sqlite3_stmt: by_key, by_prompt, ins_comp, ins_find, ins_span */
} cs_text_writer;

int cs_text_writer_open(cs_text_writer *w, cs_store *s, const char *source, const char *settings_json, cs_err *err);
/* Only the prompt lookups (cs_text_prompt_find), no audit row and no
 * transaction: another process scoring completions (text_audit_split.h);
 * closed by cs_text_writer_close(w, 0, ...). */
int cs_text_reader_open(cs_text_writer *w, cs_store *s, cs_err *err);
/* Commits (ok) or rolls back (!ok), and finalises. */
int cs_text_writer_close(cs_text_writer *w, int ok, cs_err *err);
/* Commits every 256 completions. */
int cs_text_writer_batch(cs_text_writer *w, cs_err *err);

/* The prompt with this key, else with this normalised text; r->id = 0 when
 * neither is registered. */
int cs_text_prompt_find(cs_text_writer *w, const char *key, const char *norm_prompt, cs_text_prompt_row *r,
                        cs_err *err);

/* One completion and its finding; the ids of the new rows come back. */
typedef struct {
    int64_t line;
    const char *key, *model, *completion;
    int64_t prompt_id; /* 0: none */
    const char *status, *verdict;
    int64_t longest_chars, longest_words;
    int64_t doc_id; /* 0: none */
    int64_t doc_start, doc_end, comp_start, comp_end;
    int64_t n_spans;
    int has_cont;
    int64_t exact_prefix;
    double rouge, edit;
    const char *evidence_json;
} cs_text_finding_row;

int cs_text_write_finding(cs_text_writer *w, const cs_text_finding_row *f, int64_t *finding_id, cs_err *err);

typedef struct {
    int64_t comp_start, comp_end, chars, words, doc_id, doc_start, doc_end;
    const char *text;
    int text_len;
} cs_text_span_row;

int cs_text_write_span(cs_text_writer *w, int64_t finding_id, int rank, const cs_text_span_row *r, cs_err *err);

/* The findings of one audit, in line order, for a listing. */
typedef struct {
    int line;
    const char *key, *verdict, *status, *doc;
    int64_t words, chars, doc_start, doc_end;
    int has_cont;
    int64_t exact;
    double rouge, edit;
} cs_text_listed;

int cs_text_list_findings(cs_store *s, int64_t audit_id, void (*fn)(void *ctx, const cs_text_listed *r), void *ctx,
                          cs_err *err);

/* The text_prompts rows to insert while cutting prompts (text_audit.c). */
int cs_text_prompt_insert_prepare(cs_store *s, void **stmt, cs_err *err);

#endif
