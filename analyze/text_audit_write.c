/* text_audit_write.c — stage 4 of the audit: the result as JSON (the
 * results file, and the evidence kept in text_findings) and the rows. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/text_audit_internal.h"

static const char *doc_name(const cs_text_corpus *c, int shard, uint64_t doc) {
    return shard >= 0 ? c->shards[shard].name[doc] : NULL;
}

static void add_str_or_null(cJSON *o, const char *k, const char *v) {
    if (v) cJSON_AddStringToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

static void add_strn(cJSON *o, const char *k, const char *s, size_t n) {
    char *t = strndup(s, n);
    if (t) cJSON_AddStringToObject(o, k, t);
    free(t);
}

/* The longest character span and every document holding one. */
static void add_chars(cJSON *r, const cs_text_corpus *c, const cs_text_input *in, const cs_text_chars *ch) {
    cJSON_AddNumberToObject(r, "longest_span_chars", (double)ch->chars);
    add_str_or_null(r, "source_doc", doc_name(c, ch->source.shard, ch->source.doc));
    cJSON *docs = cJSON_AddArrayToObject(r, "source_docs");
    for (size_t i = 0; i < ch->n_docs; i++)
        cJSON_AddItemToArray(docs, cJSON_CreateString(doc_name(c, ch->docs[i].shard, ch->docs[i].doc)));
    if (ch->truncated) cJSON_AddBoolToObject(r, "source_docs_truncated", 1);
    if (!ch->chars) return;
    const cs_text_hit *h = &ch->source;
    cJSON *sp = cJSON_AddObjectToObject(r, "longest_span");
    cJSON_AddStringToObject(sp, "doc", doc_name(c, h->shard, h->doc));
    cJSON_AddNumberToObject(sp, "doc_start", (double)h->doc_off);
    cJSON_AddNumberToObject(sp, "doc_end", (double)(h->doc_off + h->comp_end - h->comp_start));
    cJSON_AddNumberToObject(sp, "comp_start", (double)h->comp_start);
    cJSON_AddNumberToObject(sp, "comp_end", (double)h->comp_end);
    add_strn(sp, "text", in->completion + h->comp_start, h->comp_end - h->comp_start);
}

static void add_figures(cJSON *r, const cs_text_scored *sc) {
    const cs_text_figures *f = &sc->fig;
    cJSON_AddNumberToObject(r, "longest_span_words", (double)sc->longest.words);
    cJSON_AddNumberToObject(r, "completion_words", (double)sc->comp_words);
    cJSON_AddStringToObject(r, "continuation_source", sc->cont_from);
    if (f->has_cont) {
        cJSON_AddNumberToObject(r, "continuation_words", (double)f->cont_words);
        cJSON_AddNumberToObject(r, "exact_prefix_words", (double)f->exact_prefix);
        cJSON_AddNumberToObject(r, "rouge_l", f->rouge);
        cJSON_AddNumberToObject(r, "edit_sim", f->edit);
    } else {
        cJSON_AddNullToObject(r, "exact_prefix_words");
        cJSON_AddNullToObject(r, "rouge_l");
        cJSON_AddNullToObject(r, "edit_sim");
    }
    /* the second, whitespace-tolerant figure: the normal form (NFC, one space) */
    cJSON *t = cJSON_AddObjectToObject(r, "normalised");
    cJSON_AddNumberToObject(t, "longest_span_words", (double)sc->longest.words);
    cJSON_AddNumberToObject(t, "longest_span_chars", (double)sc->longest.chars);
}

/* A span's raw offsets: in the completion through its offset map (the
 * document's are raw already). */
static int span_row(cs_text_auditor *A, const cs_text_input *in, const cs_text_scored *sc, const cs_text_span *sp,
                    cs_text_span_row *r, cs_err *err) {
    (void)A, (void)err;
    r->comp_start = (int64_t)cs_text_orig_offset(sc->q.anchors, sc->q.n_anchors, sp->q_start);
    r->comp_end = (int64_t)cs_text_orig_offset(sc->q.anchors, sc->q.n_anchors, sp->q_end);
    r->chars = (int64_t)cs_text_nchars(in->completion + r->comp_start, (size_t)(r->comp_end - r->comp_start));
    r->words = (int64_t)sp->words;
    r->doc_id = sp->doc_id;
    r->doc_start = (int64_t)sp->doc_start;
    r->doc_end = (int64_t)sp->doc_end;
    r->text = sc->q.text + sp->q_start;
    r->text_len = (int)(sp->q_end - sp->q_start);
    return 0;
}

static cJSON *span_json(const cs_text_corpus *c, const cs_text_span *sp, const cs_text_span_row *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "words", (double)r->words);
    cJSON_AddNumberToObject(o, "chars", (double)r->chars);
    cJSON_AddNumberToObject(o, "comp_start", (double)r->comp_start);
    cJSON_AddNumberToObject(o, "comp_end", (double)r->comp_end);
    int sh;
    uint64_t di;
    add_str_or_null(o, "doc", cs_text_corpus_find_doc(c, sp->doc_id, &sh, &di) ? NULL : c->shards[sh].name[di]);
    cJSON_AddNumberToObject(o, "doc_start", (double)r->doc_start);
    cJSON_AddNumberToObject(o, "doc_end", (double)r->doc_end);
    return o;
}

static cJSON *result_json(cs_text_auditor *A, const cs_text_input *in, const cs_text_scored *sc,
                          cs_text_verdict_kind v, const cs_text_reasons *why, const char *status) {
    cJSON *r = cJSON_CreateObject();
    add_str_or_null(r, "id", in->id);
    cJSON_AddNumberToObject(r, "line", (double)in->line);
    cJSON_AddStringToObject(r, "status", status);
    cJSON_AddStringToObject(r, "verdict", cs_text_verdict_name(v));
    cJSON *rs = cJSON_AddArrayToObject(r, "reasons");
    for (int i = 0; i < why->n; i++) cJSON_AddItemToArray(rs, cJSON_CreateString(why->text[i]));
    add_chars(r, A->c, in, &sc->chars);
    add_figures(r, sc);
    return r;
}

static int emit(cs_text_auditor *A, cJSON *r, cs_err *err) {
    if (!A->out) return 0;
    char *s = cJSON_PrintUnformatted(r);
    int bad = !s || fprintf(A->out, "%s\n", s) < 0;
    free(s);
    return bad ? cs_fail(err, CS_EIO, "results: write failed: %s", strerror(errno)) : 0;
}

static int write_rows(cs_text_auditor *A, const cs_text_input *in, const cs_text_scored *sc, const char *verdict,
                      const char *status, const char *evidence, int64_t *fid, cs_err *err) {
    const cs_text_hit *h = &sc->chars.source;
    int has = sc->chars.chars > 0;
    cs_text_finding_row f = {
        .line = in->line, .key = in->id, .model = in->model, .completion = in->completion,
        .prompt_id = sc->prompt_row, .status = status, .verdict = verdict,
        .longest_chars = (int64_t)sc->chars.chars, .longest_words = (int64_t)sc->longest.words,
        .doc_id = has ? A->c->shards[h->shard].doc_id[h->doc] : 0,
        .doc_start = (int64_t)h->doc_off, .doc_end = (int64_t)(h->doc_off + h->comp_end - h->comp_start),
        .comp_start = (int64_t)h->comp_start, .comp_end = (int64_t)h->comp_end,
        .n_spans = (int64_t)sc->n_spans, .has_cont = sc->fig.has_cont,
        .exact_prefix = (int64_t)sc->fig.exact_prefix, .rouge = sc->fig.rouge, .edit = sc->fig.edit,
        .evidence_json = evidence,
    };
    return cs_text_write_finding(&A->w, &f, fid, err);
}

int cs_text_write(cs_text_auditor *A, const cs_text_input *in, const cs_text_scored *sc, cs_text_verdict_kind v,
                  const cs_text_reasons *why, cs_err *err) {
    const char *status = sc->fig.empty ? "empty_completion" : !sc->cont ? "unknown_prompt" : "ok";
    cJSON *r = result_json(A, in, sc, v, why, status);
    char *evidence = r ? cJSON_PrintUnformatted(r) : NULL; /* the rows hold the spans */
    int64_t fid;
    int rc = evidence ? 0 : cs_fail(err, CS_ENOMEM, "out of memory");
    if (!rc) rc = write_rows(A, in, sc, cs_text_verdict_name(v), status, evidence, &fid, err);
    cJSON *spans = r ? cJSON_AddArrayToObject(r, "spans") : NULL;
    for (size_t i = 0; i < sc->n_spans && !rc; i++) {
        cs_text_span_row row;
        rc = span_row(A, in, sc, &sc->spans[i], &row, err);
        if (!rc) rc = cs_text_write_span(&A->w, fid, (int)i, &row, err);
        if (!rc) cJSON_AddItemToArray(spans, span_json(A->c, &sc->spans[i], &row));
    }
    if (!rc) rc = emit(A, r, err);
    free(evidence);
    cJSON_Delete(r);
    return rc;
}

int cs_text_write_bad(cs_text_auditor *A, const cs_text_input *in, const char *why, cs_err *err) {
    cJSON *r = cJSON_CreateObject();
    add_str_or_null(r, "id", in->id);
    cJSON_AddNumberToObject(r, "line", (double)in->line);
    cJSON_AddStringToObject(r, "error", why);
    int rc = r ? emit(A, r, err) : cs_fail(err, CS_ENOMEM, "out of memory");
    cJSON_Delete(r);
    return rc;
}
